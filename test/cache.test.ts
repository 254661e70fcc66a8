// The response cache end to end: client -> Envoy harness -> llm-router -> mock providers. Hits are
// answered by the router phase without an upstream call; misses are stored once complete; identical
// concurrent requests make one upstream call, across replicas sharing Redis, even when the first
// answer takes longer than the router phase's message_timeout (override_message_timeout).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { checkPolicyAgainstEnvoy, parseEnvoyYaml } from "../src/envoy/bootstrap-check";
import { compilePolicyText } from "../src/policy/compile";
import { ledgerKey } from "../src/quota/quota-gate";
import { EnvoyHarness, type HarnessResponse } from "./harness/envoy-harness";
import { describeWithRedis } from "./support/redis";
import { examplePolicy, REPO_ROOT, startTestService, type TestService } from "./support/service";
import { renderedEnvoyYaml, startStack, type Doc, type Stack } from "./support/stack";

const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const BOB = { "content-type": "application/json", authorization: "Bearer sk-demo-bob" };
const ANTHROPIC_ALICE = { "content-type": "application/json", "x-api-key": "sk-demo-alice", "anthropic-version": "2023-06-01" };

function withCache(cache: object, limits?: object): Doc {
  const doc = examplePolicy() as Doc;
  for (const r of doc.routes) if (r.name === "fast" || r.name === "claude") r.cache = cache;
  if (limits) (doc as Record<string, unknown>).limits = limits;
  return doc;
}

const chat = (content = "what is a cache?", extra: object = {}) => JSON.stringify({ model: "fast", messages: [{ role: "user", content }], ...extra });
const post = (s: { envoy: EnvoyHarness }, body: string, headers: Record<string, string> = ALICE, p = "/v1/chat/completions"): Promise<HarnessResponse> =>
  s.envoy.request({ method: "POST", path: p, headers, body });

describe("response cache (in-memory store)", () => {
  let s: Stack;
  before(async () => {
    s = await startStack(withCache({ ttl: "10m" }, { rules: [{ name: "bob-rpm", match: { consumers: ["bob"] }, requestsPerMinute: 3 }] }));
  });
  after(() => s.close());

  it("answers a repeated request from the cache, without calling the provider", async () => {
    s.openai.reset();
    const first = await post(s, chat("q1"));
    assert.equal(first.status, 200);
    assert.equal(first.headers["x-llm-cache"], "miss");
    // The same request written differently: key order and whitespace do not matter.
    const again = await post(s, JSON.stringify(JSON.parse(`{ "messages": [{"content": "q1", "role": "user"}],  "model": "fast" }`)));
    assert.equal(again.status, 200);
    assert.equal(again.headers["x-llm-cache"], "hit");
    assert.equal(again.text(), first.text(), "the client gets the stored answer byte for byte");
    assert.match(String(again.headers["content-type"]), /^application\/json/);
    assert.match(String(again.headers.age), /^\d+$/);
    assert.equal(again.headers["x-llm-router-target"], first.headers["x-llm-router-target"]);
    assert.equal(s.openai.requests.length, 1, "one upstream call for two requests");
  });

  it("keeps consumers apart under the default scope", async () => {
    s.openai.reset();
    assert.equal((await post(s, chat("q2"))).headers["x-llm-cache"], "miss");
    assert.equal((await post(s, chat("q2"), BOB)).headers["x-llm-cache"], "miss");
    assert.equal(s.openai.requests.length, 2);
  });

  it("passes streams by (bypass) and never stores them", async () => {
    s.openai.reset();
    const body = chat("q3", { stream: true });
    const a = await post(s, body);
    const b = await post(s, body);
    assert.equal(a.headers["x-llm-cache"], "bypass");
    assert.equal(b.headers["x-llm-cache"], "bypass");
    assert.match(b.text(), /data: \[DONE\]/);
    assert.equal(s.openai.requests.length, 2);
  });

  it("never stores an error answer", async () => {
    s.openai.reset();
    s.openai.failNext(1, 400);
    const failed = await post(s, chat("q4"));
    assert.equal(failed.status, 400);
    assert.equal(failed.headers["x-llm-cache"], "miss");
    const next = await post(s, chat("q4"));
    assert.equal(next.status, 200);
    assert.equal(next.headers["x-llm-cache"], "miss", "the error was not cached");
    assert.equal((await post(s, chat("q4"))).headers["x-llm-cache"], "hit");
    assert.equal(s.openai.requests.length, 2);
  });

  it("Cache-Control: no-cache goes upstream and refreshes the entry; no-store neither reads nor stores", async () => {
    s.openai.reset();
    await post(s, chat("q5"));
    const refreshed = await post(s, chat("q5"), { ...ALICE, "cache-control": "no-cache" });
    assert.equal(refreshed.headers["x-llm-cache"], "miss");
    const skipped = await post(s, chat("q5"), { ...ALICE, "cache-control": "no-store" });
    assert.equal(skipped.headers["x-llm-cache"], "bypass");
    assert.equal(s.openai.requests.length, 3);
    assert.equal((await post(s, chat("q5"))).headers["x-llm-cache"], "hit");
  });

  it("serves Anthropic-format clients from the cache in their format", async () => {
    s.anthropic.reset();
    const body = JSON.stringify({ model: "claude", max_tokens: 32, messages: [{ role: "user", content: "q6" }] });
    const first = await post(s, body, ANTHROPIC_ALICE, "/v1/messages");
    const hit = await post(s, body, ANTHROPIC_ALICE, "/v1/messages");
    assert.equal(first.headers["x-llm-cache"], "miss");
    assert.equal(hit.headers["x-llm-cache"], "hit");
    assert.equal((hit.json() as { type: string }).type, "message");
    assert.equal(hit.text(), first.text());
    // Another API version is another request.
    assert.equal((await post(s, body, { ...ANTHROPIC_ALICE, "anthropic-version": "2024-01-01" }, "/v1/messages")).headers["x-llm-cache"], "miss");
    assert.equal(s.anthropic.requests.length, 2);
  });

  it("a hit counts as a request against quotas but uses no tokens and costs nothing", async () => {
    s.openai.reset();
    const ledger = async () => {
      await s.svc.quota.idle();
      return s.svc.quota.local.ledger(ledgerKey("bob", Date.now()));
    };
    const before = await ledger();
    const miss = await post(s, chat("q7"), BOB);
    const usage = (miss.json() as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    const afterMiss = await ledger();
    const hit = await post(s, chat("q7"), BOB);
    assert.equal(hit.headers["x-llm-cache"], "hit");
    const afterHit = await ledger();
    assert.equal((afterMiss.requests ?? 0) - (before.requests ?? 0), 1);
    assert.equal((afterMiss.input_tokens ?? 0) - (before.input_tokens ?? 0), usage.prompt_tokens);
    assert.equal((afterMiss.output_tokens ?? 0) - (before.output_tokens ?? 0), usage.completion_tokens);
    assert.ok((afterMiss.nano_usd ?? 0) > (before.nano_usd ?? 0));
    assert.deepEqual({ ...afterHit, requests: (afterHit.requests ?? 0) - 1 }, afterMiss, "the hit added one request and nothing else");
    // bob-rpm allows 3 a minute: one in the scope test above, the miss and the hit here.
    assert.equal(hit.headers["x-ratelimit-remaining-requests"], "0");
    const refused = await post(s, chat("q7"), BOB);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["x-llm-router-limit"], "bob-rpm");
    assert.equal(refused.headers["x-llm-cache"], undefined);
    assert.equal(s.openai.requests.length, 1);
  });
});

describe("response cache expiry and size", () => {
  let s: Stack;
  before(async () => {
    s = await startStack(withCache({ ttl: "300ms", maxEntryBytes: 5000 }));
  });
  after(() => s.close());

  it("an entry lives for the route's ttl", async () => {
    assert.equal((await post(s, chat("t1"))).headers["x-llm-cache"], "miss");
    assert.equal((await post(s, chat("t1"))).headers["x-llm-cache"], "hit");
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await post(s, chat("t1"))).headers["x-llm-cache"], "miss");
  });

  it("answers over maxEntryBytes are not stored", async () => {
    // The mock echoes the prompt: a long prompt makes a long answer.
    const long = "x".repeat(6000);
    assert.equal((await post(s, chat(long))).headers["x-llm-cache"], "miss");
    assert.equal((await post(s, chat(long))).headers["x-llm-cache"], "miss");
  });
});

describeWithRedis("response cache on Redis, two replicas", (redis) => {
  const prefix = redis.prefix();
  const doc = withCache({ ttl: "10m", scope: "all", coalesceWait: "10s" });
  let stack: Stack;
  let second: TestService;
  let envoy2: EnvoyHarness;
  before(async () => {
    stack = await startStack(doc, { redisUrl: redis.url, redisKeyPrefix: prefix, redisTimeoutMs: 5000 });
    second = await startTestService(doc, undefined, { redisUrl: redis.url, redisKeyPrefix: prefix, redisTimeoutMs: 5000 });
    envoy2 = await EnvoyHarness.start({ envoyYaml: renderedEnvoyYaml(doc), extProcAddress: second.address, hostEndpoints: { "api.openai.com": stack.openai.url } });
  });
  after(async () => {
    await envoy2.close();
    await second.stop();
    await stack.close();
  });

  it("an answer stored by one replica is a hit on the other", async () => {
    stack.openai.reset();
    assert.equal((await post(stack, chat("r1"))).headers["x-llm-cache"], "miss");
    const hit = await post({ envoy: envoy2 }, chat("r1"), BOB);
    assert.equal(hit.headers["x-llm-cache"], "hit", "scope all: shared by consumers and replicas");
    assert.equal(stack.openai.requests.length, 1);
  });

  it("identical concurrent misses on both replicas make one upstream call, even past message_timeout", async () => {
    stack.openai.reset();
    // The first answer takes longer than the router phase's message_timeout (2 s): the waiters
    // survive only because they asked Envoy for more time.
    stack.openai.delayNext(1, 2500);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? { envoy: envoy2 } : stack, chat("r2"), i % 3 ? ALICE : BOB)));
    for (const r of results) assert.equal(r.status, 200, r.text());
    assert.equal(stack.openai.requests.length, 1, "one upstream call for ten requests");
    const states = results.map((r) => r.headers["x-llm-cache"]).sort();
    assert.deepEqual(states, ["hit", "hit", "hit", "hit", "hit", "hit", "hit", "hit", "hit", "miss"]);
    for (const r of results) assert.equal(r.text(), results[0]!.text());
    assert.equal(stack.svc.cache.stats.coalescedHits + second.cache.stats.coalescedHits, 9);
  });
});

describe("validate: the router phase must grant the cache's wait", () => {
  const base = readFileSync(path.join(REPO_ROOT, "envoy/envoy.base.yaml"), "utf8");
  const policyOf = (cache: object) => compilePolicyText(JSON.stringify(withCache(cache)), { file: "p.json", resolveSecrets: false });
  const errorsFor = (cache: object, yamlText: string) => {
    const rendered = readFileSync(renderedEnvoyYaml(withCache(cache)), "utf8").replace("max_message_timeout: 60s", yamlText);
    return checkPolicyAgainstEnvoy(policyOf(cache), parseEnvoyYaml(rendered), 16 * 1024 * 1024).errors.filter((e) => e.includes("max_message_timeout"));
  };
  it("accepts the base config's 60 s for the default 30 s wait", () => {
    assert.match(base, /max_message_timeout: 60s/);
    assert.deepEqual(errorsFor({ ttl: "1m" }, "max_message_timeout: 60s"), []);
  });
  it("names the setting when Envoy would refuse the wait", () => {
    const errors = errorsFor({ ttl: "1m", coalesceWait: "45s" }, "max_message_timeout: 10s");
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /at least 46s/);
  });
  it("needs nothing when waiting is off", () => {
    assert.deepEqual(errorsFor({ ttl: "1m", coalesce: false }, "max_message_timeout: 0.5s"), []);
  });
});
