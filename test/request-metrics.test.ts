// Request metrics in isolation: label bounding (a client inventing model names, or a provider
// answering with ever new ones, never grows the exposition), the label helpers, quota decisions
// through the real QuotaGate, and Redis command timing against the real Redis.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate } from "node:timers/promises";
import pino from "pino";
import { RequestHeaders } from "../src/api/request-headers";
import { MemoryCacheStore } from "../src/cache/cache-store";
import { ResponseCache } from "../src/cache/response-cache";
import { ContextSigner } from "../src/context/routing-context";
import type { ExtProcMessage } from "../src/extproc/messages";
import { genAiOperation, modelLabel, OTHER, RESPONSE_MODELS_PER_TARGET, ResponseModelLabels, statusClass, UNKNOWN } from "../src/metrics/labels";
import { GatewayMetrics } from "../src/metrics/metrics";
import { RouterPhase } from "../src/phases/router-phase";
import type { PhaseDeps } from "../src/phases/phase-deps";
import { compilePolicyText, type CompiledPolicy } from "../src/policy/compile";
import { QuotaGate } from "../src/quota/quota-gate";
import { createRedisClient, observeCommands, redisReady } from "../src/redis/client";
import { LoadShedder } from "../src/overload/load-shedder";
import { TargetObservations } from "../src/routing/observations";
import { describeWithRedis } from "./support/redis";
import { examplePolicy } from "./support/service";
import type { Doc } from "./support/stack";
import { samples } from "./support/exposition";

const silent = pino({ level: "silent" });

/** The example policy plus a last route that takes any model (the case where clients pick names). */
function anyModelPolicy(limits?: object): CompiledPolicy {
  const doc = examplePolicy() as Doc;
  doc.routes.push({ name: "anything", match: {}, targets: ["local-llama"] });
  if (limits !== undefined) (doc as Record<string, unknown>).limits = limits;
  return compilePolicyText(JSON.stringify(doc), { file: "p.json", resolveSecrets: false });
}

function depsFor(policy: CompiledPolicy, metrics: GatewayMetrics): PhaseDeps {
  metrics.requests.policyLoaded(policy);
  return {
    currentPolicy: () => policy,
    signer: new ContextSigner([Buffer.alloc(32, 3)], 60_000),
    maxBodyBytes: 1024 * 1024,
    log: silent,
    now: Date.now,
    observations: new TargetObservations(() => policy.cooldown),
    random: () => 0.5,
    quota: new QuotaGate(undefined, silent, { decided: (rule, d) => metrics.requests.quotaDecided(rule, d) }),
    cache: new ResponseCache(new MemoryCacheStore(1024 * 1024), silent),
    requests: { completed: (s) => metrics.requests.completed(s), attempted: (a) => metrics.requests.attempted(a) },
    load: new LoadShedder(),
  };
}

const headersMessage = (kind: "request_headers" | "response_headers", h: Record<string, string>, endOfStream = false): ExtProcMessage => ({
  kind,
  headers: RequestHeaders.from(h),
  endOfStream,
  attributes: undefined,
  metadata: undefined,
});
const bodyMessage = (kind: "request_body" | "response_body", body: string): ExtProcMessage => ({ kind, body: Buffer.from(body), endOfStream: true, attributes: undefined, metadata: undefined });
const control = { extendTimeout: () => undefined };

/**
 * One chat completion through the real router phase, answered by local-llama. The provider echoes
 * the client's model name back, as many OpenAI-compatible servers do.
 */
async function serve(deps: PhaseDeps, model: string): Promise<void> {
  const phase = new RouterPhase(deps);
  await phase.handle(headersMessage("request_headers", { ":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", authorization: "Bearer sk-demo-alice" }), control);
  const routed = await phase.handle(bodyMessage("request_body", JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] })), control);
  if (routed.kind === "immediate") {
    // Refused (a quota): Envoy answers the client and ends the stream.
    phase.close("ok");
    return;
  }
  await phase.handle(headersMessage("response_headers", { ":status": "200", "content-type": "application/json", "x-llm-router-target": "local-llama", "x-llm-router-attempt": "1" }), control);
  await phase.handle(bodyMessage("response_body", JSON.stringify({ id: "x", object: "chat.completion", model, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2 } })), control);
  phase.close("ok");
}

/** Series per metric family in the exposition. */
function seriesByFamily(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const series of samples(text).keys()) {
    const name = series.split("{")[0]!.replace(/_(bucket|sum|count)$/, "");
    out.set(name, (out.get(name) ?? 0) + 1);
  }
  return out;
}

function labelValues(text: string, label: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(new RegExp(`${label}="([^"]*)"`, "g"))) out.add(m[1]!);
  return out;
}

describe("request metrics: bounded labels", () => {
  it("10,000 distinct model names from clients (echoed back by the provider) add no series after the first few", async () => {
    const policy = anyModelPolicy();
    const metrics = new GatewayMetrics({ processMetrics: false });
    const deps = depsFor(policy, metrics);
    // Enough requests for every per-target cap to fill.
    for (let i = 0; i < 100; i++) await serve(deps, `client-model-${i}`);
    const early = (await metrics.text()).body;
    for (let i = 100; i < 10_000; i++) {
      await serve(deps, `client-model-${i}`);
      // The phase answers synchronously here: yield now and then so other suites' I/O runs.
      if (i % 100 === 0) await setImmediate();
    }
    const late = (await metrics.text()).body;
    assert.deepEqual(seriesByFamily(late), seriesByFamily(early), "no family gained a series");
    assert.deepEqual([...labelValues(late, "gen_ai_original_model")], [UNKNOWN], "client-invented names are `unknown`");
    const responseModels = labelValues(late, "gen_ai_response_model");
    assert.equal(responseModels.size, RESPONSE_MODELS_PER_TARGET + 1, "the first 16 answers' models, then `other`");
    assert.ok(responseModels.has(OTHER));
    const s = samples(late);
    assert.equal(s.get('llm_router_requests_total{route="anything",target="local-llama",provider="vllm",outcome="success",status_class="2xx"}'), 10_000);
    // A name the policy writes keeps its own label.
    await serve(deps, "llama");
    assert.ok(labelValues((await metrics.text()).body, "gen_ai_original_model").has("llama"));
  });

  it("label helpers: status classes, GenAI operation names, model names the policy knows", () => {
    assert.deepEqual([200, 204, 301, 429, 503, 529, undefined, 0, 600, 99.5].map(statusClass), ["2xx", "2xx", "3xx", "4xx", "5xx", "5xx", "none", "none", "none", "none"]);
    assert.deepEqual((["chat.completions", "messages", "responses", "completions", "embeddings", undefined] as const).map(genAiOperation), ["chat", "chat", "chat", "text_completion", "embeddings", "unknown"]);
    const policy = anyModelPolicy();
    assert.equal(modelLabel(policy, "smart"), "smart", "a route's model name");
    assert.equal(modelLabel(policy, "gpt-4o-mini"), "gpt-4o-mini", "a target's upstream model");
    assert.equal(modelLabel(policy, "made-up"), UNKNOWN);
    assert.equal(modelLabel(policy, undefined), UNKNOWN);
    const labels = new ResponseModelLabels();
    for (let i = 0; i < RESPONSE_MODELS_PER_TARGET; i++) assert.equal(labels.label("t1", `m${i}`), `m${i}`);
    assert.equal(labels.label("t1", "one-more"), OTHER);
    assert.equal(labels.label("t1", "m3"), "m3", "a value seen before keeps its label");
    assert.equal(labels.label("t2", "one-more"), "one-more", "each target has its own cap");
    assert.equal(labels.label("t2", undefined), UNKNOWN);
  });

  it("quota decisions: admitted per rule once, the refusing rule rejected, a request over a whole limit rejected", async () => {
    const policy = anyModelPolicy({
      rules: [
        { name: "alice-rpm", match: { consumers: ["alice"] }, requestsPerMinute: 2 },
        { name: "alice-tokens", match: { consumers: ["alice"] }, tokensPerMinute: 100_000, tokensPerDay: 1_000_000 },
      ],
    });
    const metrics = new GatewayMetrics({ processMetrics: false });
    const deps = depsFor(policy, metrics);
    for (let i = 0; i < 3; i++) await serve(deps, "llama");
    const s = samples((await metrics.text()).body);
    assert.equal(s.get('llm_router_quota_decisions_total{rule="alice-rpm",outcome="admitted"}'), 2);
    assert.equal(s.get('llm_router_quota_decisions_total{rule="alice-rpm",outcome="rejected"}'), 1);
    assert.equal(s.get('llm_router_quota_decisions_total{rule="alice-tokens",outcome="admitted"}'), 2, "one decision per rule, not per limit kind");
    assert.equal(s.get('llm_router_quota_decisions_total{rule="alice-tokens",outcome="fail_open"}'), 0, "every rule's series exists from the policy load");
    assert.equal(s.get('llm_router_requests_total{route="local",target="local-llama",provider="vllm",outcome="refused",status_class="4xx"}'), 1);
    assert.equal(s.get('llm_router_gateway_errors_total{code="rate_limit_exceeded"}'), 1);
  });
});

describeWithRedis("request metrics: Redis commands", (redis) => {
  it("times every command against the real Redis, a script named for its definition, failures counted", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const client = createRedisClient({ url: redis.url, commandTimeoutMs: 1000 });
    observeCommands(client, (command, seconds, ok) => metrics.requests.redisCommand(command, seconds, ok));
    try {
      await redisReady(client, 2000);
      const key = `${redis.prefix()}obs-test`;
      client.defineCommand("llmrTestIncr", { numberOfKeys: 1, lua: "return redis.call('INCR', KEYS[1])" });
      const scripted = client as typeof client & { llmrTestIncr(key: string): Promise<number> };
      assert.equal(await client.set(key, "1"), "OK");
      assert.equal(await scripted.llmrTestIncr(key), 2);
      assert.equal(await scripted.llmrTestIncr(key), 3);
      await assert.rejects(client.call("hincrby", key, "f", "1"), /WRONGTYPE/);
      await client.del(key);
      const s = samples((await metrics.text()).body);
      assert.equal(s.get('llm_router_redis_command_duration_seconds_count{command="set"}'), 1);
      // The first call loads the script (EVALSHA fails with NOSCRIPT, ioredis falls back to EVAL).
      assert.ok((s.get('llm_router_redis_command_duration_seconds_count{command="llmrTestIncr"}') ?? 0) >= 2);
      assert.equal(s.get('llm_router_redis_command_errors_total{command="hincrby"}'), 1);
      assert.equal(s.get('llm_router_redis_command_errors_total{command="set"}'), undefined);
    } finally {
      client.disconnect();
    }
  });
});
