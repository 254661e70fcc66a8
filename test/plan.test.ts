// The routing plan (first target, chain cluster, retry cap) and the observations behind cooldowns.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "../src/api/errors";
import type { Operation } from "../src/api/operations";
import { compilePolicyText, type CompiledConsumer, type CompiledPolicy } from "../src/policy/compile";
import { TargetObservations, retryAfterMs } from "../src/routing/observations";
import { needsExactCount, planRoute } from "../src/routing/plan";
import type { RequestFeatures, TargetStats } from "../src/routing/strategy-types";
import { examplePolicy } from "./support/service";

const policy: CompiledPolicy = compilePolicyText(JSON.stringify(examplePolicy()), { file: "p.json", resolveSecrets: false });
const smart = policy.routes.find((r) => r.name === "smart")!;
const ALICE: CompiledConsumer = { id: "alice", team: "enterprise", labels: {}, allowRoutes: undefined, allowModels: undefined };
const FRESH: TargetStats = { latencyMs: undefined, samples: 0, inFlight: 0, cooldownUntil: undefined, lastFailureAt: undefined };
const NOW = 1_000_000;

function features(over: Partial<RequestFeatures> = {}): RequestFeatures {
  return { promptTokens: 100, maxOutputTokens: undefined, required: new Set(), messageCount: 1, text: "", user: undefined, stream: false, ...over };
}

function plan(f: RequestFeatures, stats: Record<string, Partial<TargetStats>> = {}, operation: Operation = "chat.completions") {
  return planRoute(smart, {
    operation,
    body: {},
    features: f,
    consumer: ALICE,
    header: () => undefined,
    stats: (id) => ({ ...FRESH, ...stats[id] }),
    now: NOW,
    random: () => 0,
  });
}

describe("planRoute", () => {
  const table: Array<{ name: string; f?: Partial<RequestFeatures>; stats?: Record<string, Partial<TargetStats>>; first?: string; order?: string[]; retries?: number; limited?: boolean; skipped?: string[]; error?: string }> = [
    { name: "healthy chain: written order, all retries", first: "openai-gpt-4o", order: ["openai-gpt-4o", "azure-gpt-4o", "local-llama"], retries: 2, limited: false },
    {
      name: "first target cooling down: the next goes first, the cooled one stays a fallback",
      stats: { "openai-gpt-4o": { cooldownUntil: NOW + 5000 } },
      first: "azure-gpt-4o",
      order: ["azure-gpt-4o", "openai-gpt-4o", "local-llama"],
      retries: 2,
      skipped: ["openai-gpt-4o"],
    },
    {
      name: "an expired cooldown is ignored",
      stats: { "openai-gpt-4o": { cooldownUntil: NOW - 1 } },
      first: "openai-gpt-4o",
    },
    {
      name: "everything cooling down: the one that recovers first",
      stats: { "openai-gpt-4o": { cooldownUntil: NOW + 9000 }, "azure-gpt-4o": { cooldownUntil: NOW + 3000 }, "local-llama": { cooldownUntil: NOW + 6000 } },
      first: "azure-gpt-4o",
    },
    {
      name: "too long for the local model: retries stop before it",
      f: { promptTokens: 40_000 },
      first: "openai-gpt-4o",
      retries: 1,
      limited: true,
      skipped: ["local-llama"],
    },
    {
      name: "needs vision: the local model (no vision) is never reached",
      f: { required: new Set(["vision"] as const) },
      retries: 1,
      limited: true,
      skipped: ["local-llama"],
    },
    {
      name: "cooling first + later target impossible: cap counts from the new first",
      f: { promptTokens: 40_000 },
      stats: { "openai-gpt-4o": { cooldownUntil: NOW + 5000 } },
      first: "azure-gpt-4o",
      order: ["azure-gpt-4o", "openai-gpt-4o", "local-llama"],
      retries: 1,
      limited: true,
    },
    { name: "fits nowhere", f: { promptTokens: 500_000 }, error: "context_length_exceeded" },
    { name: "a capability no target has", f: { required: new Set(["embeddings"] as const) }, error: "capability_not_supported" },
    { name: "output limit no target can give", f: { maxOutputTokens: 200_000 }, error: "context_length_exceeded" },
  ];
  for (const t of table) {
    it(t.name, () => {
      if (t.error !== undefined) {
        assert.throws(() => plan(features(t.f), t.stats), (e: unknown) => e instanceof GatewayError && e.code === t.error);
        return;
      }
      const p = plan(features(t.f), t.stats);
      if (t.first !== undefined) assert.equal(p.first.id, t.first);
      if (t.order !== undefined) assert.deepEqual(p.cluster.order.map((x) => x.id), t.order);
      if (t.retries !== undefined) assert.equal(p.retries, t.retries);
      if (t.limited !== undefined) assert.equal(p.retriesLimited, t.limited);
      if (t.skipped !== undefined) assert.deepEqual(p.skipped.map((s) => s.target), t.skipped);
    });
  }

  it("an operation no chain target serves, natively or translated", () => {
    // Anthropic has no Responses API and no translation to it.
    const claude = policy.routes.find((r) => r.name === "claude")!;
    const input = { operation: "responses" as const, body: {}, features: features(), consumer: ALICE, header: () => undefined, stats: () => FRESH, now: NOW, random: () => 0 };
    assert.throws(() => planRoute(claude, input), /api_not_supported_by_target/);
  });

  it("a client of the other API is served through translation; a request no target can express is a 400 naming the field", () => {
    const p = plan(features(), {}, "messages");
    assert.equal(p.first.id, "openai-gpt-4o");
    const claude = policy.routes.find((r) => r.name === "claude")!;
    const input = { operation: "chat.completions" as const, body: { n: 2, messages: [{ role: "user", content: "hi" }] }, features: features(), consumer: ALICE, header: () => undefined, stats: () => FRESH, now: NOW, random: () => 0 };
    assert.throws(
      () => planRoute(claude, input),
      (e: unknown) => e instanceof GatewayError && e.code === "field_not_supported_by_target" && /\bn\b/.test(e.message) && /anthropic/.test(e.message),
    );
    // Without the field the same route takes it, translated.
    assert.equal(planRoute(claude, { ...input, body: { messages: [{ role: "user", content: "hi" }] } }).first.id, "claude-sonnet");
  });

  it("asks for an exact token count only near a context window", () => {
    assert.equal(needsExactCount(smart, features({ promptTokens: 1000 })), false);
    // Within half of the local model's 32k window.
    assert.equal(needsExactCount(smart, features({ promptTokens: 17_000 })), true);
  });
});

describe("TargetObservations", () => {
  const settings = { failures: 3, windowMs: 10_000, durationMs: 30_000, maxRetryAfterMs: 60_000 };

  it("N failures within the window start a cooldown; older ones fall out of the window", () => {
    let now = 0;
    const o = new TargetObservations(() => settings, () => now);
    o.responded("t", { status: 503, latencyMs: 5, retryAfterMs: undefined });
    now = 11_000; // the first failure leaves the window
    o.responded("t", { status: 500, latencyMs: 5, retryAfterMs: undefined });
    assert.equal(o.responded("t", { status: 529, latencyMs: 5, retryAfterMs: undefined }).cooldownEntered, false);
    const third = o.responded("t", { status: 502, latencyMs: 5, retryAfterMs: undefined });
    assert.equal(third.cooldownEntered, true);
    assert.equal(o.stats("t").cooldownUntil, 41_000);
    now = 41_001;
    assert.equal(o.stats("t").cooldownUntil, undefined);
  });

  it("a 429 with retry-after cools down at once, capped; without it, it counts as a failure", () => {
    const now = 0;
    const o = new TargetObservations(() => settings, () => now);
    assert.equal(o.responded("a", { status: 429, latencyMs: 1, retryAfterMs: 5000 }).cooldownUntil, 5000);
    assert.equal(o.responded("b", { status: 429, latencyMs: 1, retryAfterMs: 3_600_000 }).cooldownUntil, 60_000);
    assert.equal(o.responded("c", { status: 429, latencyMs: 1, retryAfterMs: undefined }).cooldownEntered, false);
  });

  it("successes feed the latency average; 4xx other than 429 are neither failures nor samples", () => {
    const o = new TargetObservations(() => settings, () => 0);
    o.responded("t", { status: 200, latencyMs: 100, retryAfterMs: undefined });
    o.responded("t", { status: 200, latencyMs: 200, retryAfterMs: undefined });
    for (let i = 0; i < 5; i++) o.responded("t", { status: 400, latencyMs: 9999, retryAfterMs: undefined });
    const s = o.stats("t");
    assert.equal(s.samples, 2);
    assert.equal(s.latencyMs, 120);
    assert.equal(s.cooldownUntil, undefined);
  });

  it("counts attempts in flight, never below zero", () => {
    const o = new TargetObservations(() => settings, () => 0);
    o.attemptStarted("t");
    o.attemptStarted("t");
    o.attemptEnded("t");
    assert.equal(o.stats("t").inFlight, 1);
    o.attemptEnded("t");
    o.attemptEnded("t");
    assert.equal(o.stats("t").inFlight, 0);
  });

  it("reads retry-after-ms before retry-after; dates and junk are ignored", () => {
    const h = (m: Record<string, string>) => (n: string) => m[n];
    assert.equal(retryAfterMs(h({ "retry-after-ms": "1500", "retry-after": "9" })), 1500);
    assert.equal(retryAfterMs(h({ "retry-after": "2" })), 2000);
    assert.equal(retryAfterMs(h({ "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT" })), undefined);
    assert.equal(retryAfterMs(h({ "retry-after-ms": "-5" })), undefined);
  });
});
