// Quotas, budgets and the usage ledger end to end against a real Redis: client -> Envoy harness ->
// llm-router (router phase admits and settles, upstream phase names the answering target) -> mock
// providers that report usage. Expected spend is the price table applied to the usage the mock
// reported, never a number the gateway computed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Redis from "ioredis";
import { ledgerKey } from "../src/quota/quota-gate";
import { EnvoyHarness, type HarnessResponse } from "./harness/envoy-harness";
import { describeWithRedis, startRedisServer, type OwnRedis } from "./support/redis";
import { examplePolicy, startTestService, type TestService } from "./support/service";
import { renderedEnvoyYaml, startStack, type Doc, type Stack } from "./support/stack";

const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const BOB = { "content-type": "application/json", authorization: "Bearer sk-demo-bob" };
const ANTHROPIC_BOB = { "content-type": "application/json", "x-api-key": "sk-demo-bob", "anthropic-version": "2023-06-01" };

function withLimits(limits: object): Doc {
  const doc = examplePolicy() as Doc;
  (doc as Record<string, unknown>).limits = limits;
  return doc;
}

const chat = (extra: object = {}) => JSON.stringify({ model: "fast", messages: [{ role: "user", content: "count the stars" }], ...extra });
const messages = (extra: object = {}) => JSON.stringify({ model: "claude", max_tokens: 64, messages: [{ role: "user", content: "count the stars" }], ...extra });

interface SseUsage {
  input: number;
  output: number;
}

/** Usage the client saw: OpenAI JSON/stream (include_usage) or Anthropic JSON/stream. */
function clientUsage(res: HarnessResponse): SseUsage {
  const text = res.text();
  if (!(res.headers["content-type"] ?? "").toString().startsWith("text/event-stream")) {
    const u = (res.json() as { usage: Record<string, number> }).usage;
    return { input: u.prompt_tokens ?? u.input_tokens ?? 0, output: u.completion_tokens ?? u.output_tokens ?? 0 };
  }
  let input = 0;
  let output = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const ev = JSON.parse(line.slice(6)) as Record<string, unknown> & { usage?: Record<string, number> | null; message?: { usage: Record<string, number> } };
    if (ev.usage && typeof ev.usage.prompt_tokens === "number") return { input: ev.usage.prompt_tokens, output: ev.usage.completion_tokens ?? 0 };
    if (ev.type === "message_start" && ev.message) input = ev.message.usage.input_tokens ?? 0;
    if (ev.type === "message_delta" && ev.usage) output = ev.usage.output_tokens ?? 0;
  }
  return { input, output };
}

const nano = (u: SseUsage, inPrice: number, outPrice: number) => u.input * inPrice * 1000 + u.output * outPrice * 1000;

describeWithRedis("quotas on Redis, end to end", (redis) => {
  describe("two replicas share one request limit", () => {
    const rpm = withLimits({ rules: [{ name: "alice-rpm", per: "consumer", match: { consumers: ["alice"] }, requestsPerMinute: 100 }] });
    const prefix = redis.prefix();
    let services: TestService[] = [];
    let envoys: EnvoyHarness[] = [];
    let stack: Stack;
    before(async () => {
      // One stack (mocks + replica 1) and a second replica with its own "Envoy", same Redis.
      // Exactness is the point here, not timeouts: a busy CI machine must not push admissions into
      // their failMode (the Redis-down cases below keep the 200 ms default).
      stack = await startStack(rpm, { redisUrl: redis.url, redisKeyPrefix: prefix, redisTimeoutMs: 5000 });
      const second = await startTestService(rpm, undefined, { redisUrl: redis.url, redisKeyPrefix: prefix, redisTimeoutMs: 5000 });
      const envoy2 = await EnvoyHarness.start({ envoyYaml: renderedEnvoyYaml(rpm), extProcAddress: second.address, hostEndpoints: { "api.openai.com": stack.openai.url } });
      services = [stack.svc, second];
      envoys = [stack.envoy, envoy2];
    });
    after(async () => {
      await envoys[1]?.close();
      await services[1]?.stop();
      await stack.close();
    });

    it("500 concurrent requests against 100/min: exactly 100 admitted (plus the bucket's refill while they ran), the rest answered 429 with the headers", async () => {
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) => envoys[i % 2]!.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat() })),
      );
      // requestsPerMinute is a token bucket: it refills one request every 600 ms, so a burst that a
      // slow machine spreads over more than that legitimately admits one more per 600 ms elapsed.
      const refill = Math.floor((performance.now() - started) / 600);
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status === 429);
      assert.ok(ok.length >= 100 && ok.length <= 100 + refill, `${ok.length} admitted in a burst with ${refill} refills`);
      assert.equal(refused.length, 500 - ok.length);
      assert.equal(stack.openai.requests.length, ok.length, "refused requests never reach a provider");
      for (const r of refused) {
        assert.equal(r.headers["x-llm-router-limit"], "alice-rpm");
        assert.equal(r.headers["x-llm-router-error"], "rate_limit_exceeded");
        assert.equal(r.headers["x-ratelimit-limit-requests"], "100");
        assert.equal(r.headers["x-ratelimit-remaining-requests"], "0");
        assert.match(String(r.headers["x-ratelimit-reset-requests"]), /^\d+(\.\d+)?(ms|s)$/);
        const wait = Number(r.headers["retry-after"]);
        assert.ok(wait >= 1 && wait <= 60, `retry-after ${wait}`);
        const err = (r.json() as { error: { code: string; type: string; message: string } }).error;
        assert.equal(err.code, "rate_limit_exceeded");
        assert.match(err.message, /alice-rpm.*100 requests per minute/);
      }
      // Admitted answers say what is left.
      for (const r of ok) assert.equal(r.headers["x-ratelimit-limit-requests"], "100");
      assert.ok(ok.some((r) => r.headers["x-ratelimit-remaining-requests"] === "0"));
    });
  });

  describe("token budgets under concurrency, settled to real usage", () => {
    const prefix = redis.prefix();
    const doc = withLimits({ rules: [{ name: "bob-tokens", per: "consumer", match: { consumers: ["bob"] }, tokensPerMinute: 10_000, tokensPerDay: 1_000_000 }] });
    let s: Stack;
    let client: Redis;
    before(async () => {
      s = await startStack(doc, { redisUrl: redis.url, redisKeyPrefix: prefix, latencyMs: 300, streamChunks: 20, redisTimeoutMs: 5000 });
      client = new Redis(redis.url);
    });
    after(async () => {
      client.disconnect();
      await s.close();
    });

    it("50 streams in flight never take more than the reservations allow; the counters end at the reported usage", async () => {
      const maxTokens = 400;
      const body = chat({ stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens });
      const results = await Promise.all(Array.from({ length: 50 }, () => s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: BOB, body })));
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status === 429);
      assert.equal(ok.length + refused.length, 50);
      // Each reservation is at least max_tokens, so at most 10,000 / 400 = 25 fit in the minute
      // (plus what refills while the 50 are admitted: under a second, < 170 tokens, not a 26th).
      assert.ok(ok.length > 0 && ok.length <= 25, `admitted ${ok.length}`);
      for (const r of refused) assert.equal(r.headers["x-llm-router-limit"], "bob-tokens");
      await s.svc.quota.idle();
      const used = ok.map(clientUsage).reduce((n, u) => n + u.input + u.output, 0);
      assert.ok(used > 0);
      const day = await client.get(`${prefix}{c:bob}:bob-tokens:tpd:${ledgerKey("bob", Date.now()).split(":").pop()}`);
      assert.equal(Number(day), used, "the daily counter holds exactly the reported usage");
      const ledger = await client.hgetall(`${prefix}${ledgerKey("bob", Date.now())}`);
      assert.equal(Number(ledger.requests), ok.length);
      assert.equal(Number(ledger.input_tokens) + Number(ledger.output_tokens), used);
    });
  });

  describe("spend per consumer", () => {
    const prefix = redis.prefix();
    // A budget rule makes dollars part of admission too; the ledger is kept for every request.
    const doc = withLimits({ rules: [{ name: "bob-budget", per: "consumer", match: { consumers: ["bob"] }, usdPerDay: 1000 }] });
    let s: Stack;
    let client: Redis;
    before(async () => {
      s = await startStack(doc, { redisUrl: redis.url, redisKeyPrefix: prefix, streamChunks: 7, redisTimeoutMs: 5000 });
      client = new Redis(redis.url);
    });
    after(async () => {
      client.disconnect();
      await s.close();
    });

    it("1,000 mixed requests (JSON and streams, OpenAI and Anthropic) cost the price table applied to the usage, to the cent", async () => {
      let expectedNano = 0;
      let done = 0;
      const kinds = [
        { path: "/v1/chat/completions", headers: BOB, body: () => chat(), price: [0.15, 0.6] },
        { path: "/v1/chat/completions", headers: BOB, body: () => chat({ stream: true, stream_options: { include_usage: true } }), price: [0.15, 0.6] },
        { path: "/v1/messages", headers: ANTHROPIC_BOB, body: () => messages(), price: [3, 15] },
        { path: "/v1/messages", headers: ANTHROPIC_BOB, body: () => messages({ stream: true }), price: [3, 15] },
      ] as const;
      const worker = async () => {
        while (done < 1000) {
          const k = kinds[done++ % kinds.length]!;
          const res = await s.envoy.request({ method: "POST", path: k.path, headers: k.headers, body: k.body() });
          assert.equal(res.status, 200, `${k.path} ${res.text()} ${res.localReplyReason ?? ""} ${JSON.stringify(res.extProc.map((e) => e.outcome))}`);
          expectedNano += nano(clientUsage(res), k.price[0], k.price[1]);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      await s.svc.quota.idle();
      const ledger = await client.hgetall(`${prefix}${ledgerKey("bob", Date.now())}`);
      assert.equal(Number(ledger.requests), 1000);
      const spentUsd = Number(ledger.nano_usd) / 1e9;
      assert.ok(Math.abs(spentUsd - expectedNano / 1e9) < 0.005, `ledger $${spentUsd} vs price table $${expectedNano / 1e9}`);
      assert.ok(spentUsd > 0.01, "the run cost something measurable");
    });

    it("a stream the client did not ask usage for reaches it without the usage chunk, and is still charged exactly", async () => {
      const before = await client.hgetall(`${prefix}${ledgerKey("bob", Date.now())}`);
      const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: BOB, body: chat({ stream: true }) });
      assert.equal(res.status, 200);
      const sent = s.openai.requests.at(-1)!.json as { stream_options?: { include_usage?: boolean } };
      assert.equal(sent.stream_options?.include_usage, true, "the gateway asked the provider for usage");
      const text = res.text();
      assert.ok(text.trimEnd().endsWith("data: [DONE]"));
      assert.ok(!/"choices":\[\]/.test(text), "no usage-only chunk for a client that did not ask");
      await s.svc.quota.idle();
      const afterL = await client.hgetall(`${prefix}${ledgerKey("bob", Date.now())}`);
      assert.equal(Number(afterL.requests) - Number(before.requests), 1);
      assert.ok(Number(afterL.output_tokens) - Number(before.output_tokens) === 7, "the mock's 7 words");
    });
  });

  describe("Redis stopped mid-run", () => {
    let own: OwnRedis;
    let s: Stack;
    const doc = withLimits({
      replicas: 2,
      rules: [
        { name: "alice-open", per: "consumer", match: { consumers: ["alice"] }, requestsPerMinute: 1000, failMode: "open" },
        { name: "bob-closed", per: "consumer", match: { consumers: ["bob"] }, requestsPerMinute: 1000, failMode: "closed" },
        { name: "ci-local", per: "consumer", match: { consumers: ["ci"] }, requestsPerMinute: 10, failMode: "local" },
      ],
    });
    const CI = { "content-type": "application/json", authorization: "Bearer sk-demo-ci" };
    before(async () => {
      own = await startRedisServer();
      s = await startStack(doc, { redisUrl: own.url });
    });
    after(async () => {
      await s.close();
      await own.stop();
    });
    const send = (headers: Record<string, string>) => s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers, body: chat() });

    it("each rule follows its failMode, and a restarted Redis is used again without restarting the service", async () => {
      assert.equal((await send(BOB)).status, 200);
      await own.stop();
      const open = await send(ALICE);
      assert.equal(open.status, 200, "open: admitted");
      const closed = await send(BOB);
      assert.equal(closed.status, 503);
      assert.equal(closed.headers["x-llm-router-error"], "quota_store_unavailable");
      // local: this replica enforces 10 / 2 replicas = 5 per minute.
      const local = [];
      for (let i = 0; i < 7; i++) local.push((await send(CI)).status);
      assert.deepEqual(local, [200, 200, 200, 200, 200, 429, 429]);
      assert.ok(s.svc.quota.stats.storeErrors > 0);

      await own.restart();
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await send(BOB)).status;
      }
      assert.equal(status, 200, "closed rule admits again once Redis is back");
      // The shared counter (empty after the restart) is what counts now, not the local share.
      const afterRestart = [];
      for (let i = 0; i < 6; i++) afterRestart.push((await send(CI)).status);
      assert.deepEqual(afterRestart, [200, 200, 200, 200, 200, 200]);
    });
  });

  describe("concurrency and the Anthropic format", () => {
    const prefix = redis.prefix();
    const doc = withLimits({ rules: [{ name: "bob-inflight", per: "consumer", match: { consumers: ["bob"] }, concurrent: 2 }] });
    let s: Stack;
    before(async () => {
      s = await startStack(doc, { redisUrl: redis.url, redisKeyPrefix: prefix, latencyMs: 300 });
    });
    after(() => s.close());

    it("a third request in flight is refused in the caller's format; finished requests free their slot", async () => {
      const results = await Promise.all([0, 1, 2].map(() => s.envoy.request({ method: "POST", path: "/v1/messages", headers: ANTHROPIC_BOB, body: messages() })));
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 429]);
      const refused = results.find((r) => r.status === 429)!;
      assert.deepEqual(refused.json(), {
        type: "error",
        error: { type: "rate_limit_error", message: "Too many requests of this key are in flight at once. Rule `bob-inflight`: 2 requests in flight. Retry in 1s." },
      });
      assert.equal(refused.headers["x-ratelimit-limit-concurrent"], "2");
      const again = await Promise.all([0, 1].map(() => s.envoy.request({ method: "POST", path: "/v1/messages", headers: ANTHROPIC_BOB, body: messages() })));
      assert.deepEqual(again.map((r) => r.status), [200, 200]);
    });
  });
});
