// Fallback along a route's chain, end to end: client -> Envoy harness (a bootstrap rendered from
// the policy by render-envoy) -> llm-router (both phases, real gRPC) -> one mock provider per
// provider host, each failing on demand. Route "smart" of the example policy chains
// OpenAI gpt-4o -> Azure OpenAI gpt-4o (deployment) -> a local vLLM Llama.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import type { RecordedRequest } from "../src/mock-provider/server";
import { EnvoyHarness } from "./harness/envoy-harness";
import { describeWithRedis } from "./support/redis";
import { examplePolicy, startTestService, type TestService } from "./support/service";
import { renderedEnvoyYaml, startStack, type Doc, type Stack } from "./support/stack";

const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const chat = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "tell me a story" }], ...extra });

function header(r: RecordedRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join("|") : v;
}

/** Nothing gateway-internal, no client key, and no other provider's credential reached a provider. */
function assertClean(r: RecordedRequest, allowed: "authorization" | "api-key" | "none"): void {
  for (const name of Object.keys(r.headers)) assert.ok(!name.startsWith("x-llm-router-"), `gateway header ${name} leaked`);
  assert.ok(!JSON.stringify(r.headers).includes("sk-demo-"), "client gateway key leaked");
  for (const h of ["authorization", "api-key", "x-api-key"]) if (h !== allowed) assert.equal(header(r, h), undefined, `${h} must not reach this provider`);
  assert.equal(header(r, "content-length"), String(r.body.length));
}

describe("fallback along the chain (example policy, route smart)", () => {
  let s: Stack;
  before(async () => {
    // Failures alone never start a cooldown here, so each test starts from a fresh chain; a 429
    // with retry-after still does (last test).
    const doc = examplePolicy() as Doc;
    doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 1000 } };
    s = await startStack(doc);
  });
  after(() => s.close());
  beforeEach(() => {
    for (const m of [s.openai, s.azure, s.vllm]) m.reset();
  });

  it("a 429 from OpenAI is answered by Azure with Azure's path, credentials and model, in one client request", async () => {
    s.openai.failNext(1, 429, { headers: { "x-ratelimit-remaining-requests": "0" } });
    const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
    assert.equal(res.status, 200, res.text());
    assert.equal(res.attempts.length, 2);
    assert.deepEqual(res.attempts.map((a) => [a.priority, a.status]), [[0, 429], [1, 200]]);
    const [first] = s.openai.requests;
    const [second] = s.azure.requests;
    assert.ok(first && second);
    assert.equal(header(first, "authorization"), "Bearer sk-provider-openai-SECRET");
    assertClean(first, "authorization");
    // Attempt 2: nothing of attempt 1's path, credentials or host.
    assert.equal(second.path, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert.equal(header(second, "api-key"), "azure-provider-SECRET");
    assert.equal(header(second, "host"), "my-resource.openai.azure.com");
    assertClean(second, "api-key");
    assert.equal((second.json as { model: string }).model, "gpt-4o");
    // The client sees the final attempt only, and who answered.
    assert.equal(res.headers["x-llm-router-target"], "azure-gpt-4o");
    assert.equal(res.headers["x-llm-router-attempt"], "2");
    assert.equal(res.headers["x-ratelimit-remaining-requests"], undefined);
    assert.match(res.text(), /mock reply/);
  });

  it("503 then 529 walk the whole chain to the local model (its model name, no credentials)", async () => {
    s.openai.failNext(1, 503);
    s.azure.failNext(1, 529);
    const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
    assert.equal(res.status, 200, res.text());
    assert.deepEqual(res.attempts.map((a) => a.endpointHostname), ["api.openai.com", "my-resource.openai.azure.com", "vllm.internal"]);
    const [local] = s.vllm.requests;
    assert.ok(local);
    assert.equal(local.path, "/v1/chat/completions");
    assert.equal((local.json as { model: string }).model, "meta-llama/Llama-3.1-8B-Instruct");
    assertClean(local, "none");
    assert.equal(res.headers["x-llm-router-target"], "local-llama");
    assert.equal(res.headers["x-llm-router-attempt"], "3");
    // Every attempt got the client's body afresh, only the model differing.
    const bodies = [s.openai.requests[0]!, s.azure.requests[0]!, local].map((r) => ({ ...(r.json as object), model: "" }));
    assert.deepEqual(bodies[0], bodies[1]);
    assert.deepEqual(bodies[0], bodies[2]);
  });

  it("streaming: a 429 before the stream starts falls back and the client gets one whole SSE stream", async () => {
    s.openai.failNext(1, 429);
    const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart", { stream: true }) });
    assert.equal(res.status, 200, res.text());
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    const text = res.text();
    assert.ok(text.trimEnd().endsWith("data: [DONE]"));
    assert.equal(text.match(/data: \[DONE\]/g)?.length, 1);
    assert.equal(res.headers["x-llm-router-target"], "azure-gpt-4o");
    assert.equal((s.azure.requests[0]!.json as { stream: boolean }).stream, true);
  });

  it("a non-retriable answer (400) is returned as is, without fallback", async () => {
    s.openai.failNext(1, 400);
    const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
    assert.equal(res.status, 400);
    assert.equal(res.attempts.length, 1);
    assert.equal(s.azure.requests.length, 0);
    assert.equal(res.headers["x-llm-router-target"], "openai-gpt-4o");
  });

  it("a 429 with retry-after cools OpenAI down: the next request starts with Azure", async () => {
    s.openai.failNext(1, 429, { headers: { "retry-after": "30" } });
    const first = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
    assert.equal(first.status, 200);
    s.openai.reset();
    s.azure.reset();
    const next = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
    assert.equal(next.status, 200);
    assert.equal(s.openai.requests.length, 0, "the cooling target is not tried first");
    assert.equal(next.attempts.length, 1);
    assert.match(next.route?.cluster ?? "", /^chain_azure-gpt-4o_/);
    // The cluster order keeps the cooled target as a fallback, after the new first.
    assert.deepEqual(next.attempts.map((a) => a.hostMetadata?.["llm_router"]), [{ target: "azure-gpt-4o" }]);
  });
});

describe("fallback on connection failures and timeouts", () => {
  it("OpenAI unreachable: Azure answers", async () => {
    const s = await startStack(examplePolicy() as Doc, { unreachable: ["api.openai.com"] });
    try {
      const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
      assert.equal(res.status, 200, res.text());
      assert.match(res.attempts[0]!.error ?? "", /connect_failure/);
      assert.equal(res.headers["x-llm-router-target"], "azure-gpt-4o");
      assert.equal(s.azure.requests.length, 1);
    } finally {
      await s.close();
    }
  });

  it("OpenAI silent past the per-try idle timeout: Azure answers (streaming too)", async () => {
    const doc = examplePolicy() as Doc;
    doc.routes.find((r) => r.name === "smart")!.retry = { perTryIdleTimeout: "300ms" };
    const s = await startStack(doc);
    try {
      for (const stream of [false, true]) {
        s.openai.delayNext(1, 3000);
        const started = Date.now();
        const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart", { stream }) });
        assert.equal(res.status, 200, res.text());
        assert.equal(res.attempts[0]!.failure?.kind, "per_try_timeout");
        assert.equal(res.headers["x-llm-router-target"], "azure-gpt-4o");
        assert.ok(Date.now() - started < 2500, "the slow attempt was abandoned, not waited for");
      }
    } finally {
      await s.close();
    }
  });
});

describe("the plan keeps retries away from targets that cannot take the request", () => {
  it("a prompt too long for the local model: the chain stops before it", async () => {
    const s = await startStack(examplePolicy() as Doc);
    try {
      s.openai.failNext(1, 503);
      s.azure.failNext(1, 503);
      // ~40k tokens by any estimate: fits GPT-4o's 128k window, not Llama's 32k.
      const long = "word ".repeat(40_000);
      const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "smart", messages: [{ role: "user", content: long }] }) });
      assert.equal(res.status, 503);
      assert.equal(res.attempts.length, 2);
      assert.equal(s.vllm.requests.length, 0);
      assert.equal(res.headers["x-llm-router-target"], "azure-gpt-4o");
    } finally {
      await s.close();
    }
  });

  it("a prompt too long for every target is refused before anything is sent", async () => {
    const s = await startStack(examplePolicy() as Doc);
    try {
      const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "smart", messages: [{ role: "user", content: "lorem ipsum ".repeat(200_000) }] }) });
      assert.equal(res.status, 400);
      assert.equal((res.json() as { error: { code: string } }).error.code, "context_length_exceeded");
      assert.equal(res.attempts.length, 0);
    } finally {
      await s.close();
    }
  });
});

describe("responseHeaders: false", () => {
  it("hides which target answered from the client, while cost still follows the answering target", async () => {
    const doc = examplePolicy() as Doc;
    for (const r of doc.routes) if (r.name === "smart") r.responseHeaders = false;
    const s = await startStack(doc);
    try {
      s.openai.failNext(1, 503);
      s.azure.failNext(1, 503);
      const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
      assert.equal(res.status, 200);
      assert.equal(s.vllm.requests.length, 1);
      assert.equal(res.headers["x-llm-router-target"], undefined);
      assert.equal(res.headers["x-llm-router-attempt"], undefined);
      await s.svc.quota.idle();
      const { ledgerKey } = await import("../src/quota/quota-gate.js");
      const ledger = await s.svc.quota.local.ledger(ledgerKey("alice", Date.now()));
      const usage = (res.json() as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
      assert.equal(ledger.input_tokens, usage.prompt_tokens);
      // The local model's price ($0), not the first target's (GPT-4o, $2.5 / $10 per MTok).
      assert.equal(ledger.nano_usd, 0);
    } finally {
      await s.close();
    }
  });
});

describeWithRedis("two replicas sharing target observations through Redis", (redis) => {
  let s: Stack;
  let second: TestService;
  let envoy2: EnvoyHarness;
  const SYNC_MS = 50;
  before(async () => {
    const doc = examplePolicy() as Doc;
    // Two failures within the window cool a target down, wherever they were seen.
    doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 2, window: "1m", duration: "1m" } };
    const shared = { redisUrl: redis.url, redisKeyPrefix: redis.prefix(), redisTimeoutMs: 5000, observationsSyncMs: SYNC_MS };
    s = await startStack(doc, shared);
    second = await startTestService(doc, undefined, shared);
    envoy2 = await EnvoyHarness.start({
      envoyYaml: renderedEnvoyYaml(doc),
      extProcAddress: second.address,
      hostEndpoints: { "api.openai.com": s.openai.url, "my-resource.openai.azure.com": s.azure.url, "vllm.internal": s.vllm.url },
    });
  });
  after(async () => {
    await envoy2.close();
    await second.stop();
    await s.close();
  });
  beforeEach(() => {
    for (const m of [s.openai, s.azure, s.vllm]) m.reset();
  });
  const viaFirst = () => s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
  const viaSecond = () => envoy2.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("smart") });
  /** Until `replica` sees `target` cooling down (at most a few exchanges). */
  async function coolingOn(replica: { observations: { stats(id: string): { cooldownUntil: number | undefined } } }, target: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (replica.observations.stats(target).cooldownUntil === undefined) {
      if (Date.now() > deadline) assert.fail(`${target} never cooled down on this replica`);
      await new Promise((r) => setTimeout(r, SYNC_MS / 2));
    }
  }

  it("one 503 on each replica cools OpenAI down on both: the next request on either starts with Azure", async () => {
    s.openai.failNext(1, 503);
    assert.equal((await viaFirst()).status, 200);
    assert.equal(s.svc.observations.stats("openai-gpt-4o").cooldownUntil, undefined, "one failure is not enough");
    s.openai.failNext(1, 503);
    assert.equal((await viaSecond()).status, 200);
    await coolingOn(s.svc, "openai-gpt-4o");
    await coolingOn(second, "openai-gpt-4o");
    s.openai.reset();
    for (const next of [await viaFirst(), await viaSecond()]) {
      assert.equal(next.status, 200);
      assert.match(next.route?.cluster ?? "", /^chain_azure-gpt-4o_/);
    }
    assert.equal(s.openai.requests.length, 0, "neither replica tries the cooling target first");
  });

  it("a 429 with retry-after seen by one replica makes the other start with the next target", async () => {
    s.azure.failNext(1, 429, { headers: { "retry-after": "30" } });
    // OpenAI is still cooling from the previous test, so this request starts at Azure, which 429s.
    const first = await viaFirst();
    assert.equal(first.status, 200);
    assert.match(first.route?.cluster ?? "", /^chain_azure-gpt-4o_/);
    assert.equal(s.azure.requests.length, 1);
    await coolingOn(second, "azure-gpt-4o");
    const next = await viaSecond();
    assert.equal(next.status, 200);
    // Both earlier targets cooling: the chain starts at the local model.
    assert.match(next.route?.cluster ?? "", /^chain_local-llama_/);
    assert.equal(next.headers["x-llm-router-target"], "local-llama");
  });
});
