// The routing decision's own cost, in-process: route match, request features, eligibility and the
// strategy's ranking, on a policy with 50 targets and 16-target chains (one route per strategy).
// run.ts sets it next to the service's measured CPU per request.
import { performance } from "node:perf_hooks";
import { parseJsonObject, requestedModel } from "../src/api/request-body";
import { compilePolicyText, type CompiledConsumer, type CompiledPolicy } from "../src/policy/compile";
import { decideRoute } from "../src/routing/decide";
import { TargetObservations } from "../src/routing/observations";
import { featuresFor, planRoute } from "../src/routing/plan";

const CHAIN = 16;

/** 50 OpenAI-compatible targets over 5 providers; one route per strategy, each a 16-target chain. */
export function fiftyTargetPolicy(): { policy: CompiledPolicy; strategies: string[] } {
  const providers: Record<string, object> = {};
  for (let p = 0; p < 5; p++) providers[`p${p}`] = { type: "openai-compatible", endpoint: `https://llm${p}.example.com` };
  const targets: Record<string, object> = {};
  const ids: string[] = [];
  for (let t = 0; t < 50; t++) {
    const id = `t${t}`;
    ids.push(id);
    targets[id] = {
      provider: `p${t % 5}`,
      model: `model-${t}`,
      price: { inputPerMTok: 0.1 + (t % 7), outputPerMTok: 0.4 + (t % 11) },
      contextWindow: 32_000 + 8_000 * (t % 4),
      capabilities: ["tools", "json", "streaming"],
    };
  }
  const chain = (k: number) => Array.from({ length: CHAIN }, (_, i) => ids[(k * 3 + i) % ids.length]!);
  // Plain objects: the policy compiler parses them (and fills defaults) like any policy file.
  const strategies: Array<[string, (c: string[]) => object]> = [
    ["ordered", () => ({ type: "ordered" })],
    ["weighted", (c) => ({ type: "weighted", weights: Object.fromEntries(c.map((id, i) => [id, i + 1])), stickyBy: "consumer" })],
    ["cost", () => ({ type: "cost", assumedOutputTokens: 500 })],
    ["latency", () => ({ type: "latency", minSamples: 5, explore: 0.05 })],
    ["least-busy", () => ({ type: "least-busy" })],
    [
      "complexity",
      (c) => ({
        type: "complexity",
        tiers: [
          { name: "hard", target: c[2]!, when: { keywordsAny: ["prove", "step by step", "architecture"] } },
          { name: "short", target: c[1]!, when: { maxPromptTokens: 400, maxMessages: 4 } },
        ],
        otherwise: c[0]!,
      }),
    ],
    ["conditions", (c) => ({ type: "conditions", rules: [{ when: { headers: { "x-llm-task": "coding" } }, target: c[3]! }] })],
    ["hybrid", (c) => ({ type: "hybrid", maxCostPerRequest: 0.05, preferences: { default: { cost: 1, latency: 1, quality: 2 } }, quality: Object.fromEntries(c.map((id, i) => [id, (i % 10) / 10])) })],
  ];
  // Filler routes first so that route matching has work to do too.
  const routes: object[] = Array.from({ length: 20 }, (_, i) => ({ name: `other-${i}`, match: { models: [`other-${i}`] }, targets: chain(i + 8) }));
  strategies.forEach(([name, make], k) => routes.push({ name, match: { models: ["smart"], headers: { "x-strategy": name } }, targets: chain(k), strategy: make(chain(k)) }));
  const doc = { version: 1, providers, targets, routes, consumers: [{ id: "alice", keySha256: ["32a642c5fd761670c7f9989b70138c93c56ea519529eb544d46b91a8e59f3075"] }] };
  return { policy: compilePolicyText(JSON.stringify(doc), { file: "bench-50.json", resolveSecrets: false }), strategies: strategies.map(([n]) => n) };
}

export interface DecisionCost {
  strategy: string;
  /** Mean µs per decision (features + route + plan), parse excluded (the router parses anyway). */
  us: number;
}

/** Mean cost of one decision per strategy, over `iterations` requests with `body`. */
export function measureDecisions(body: Buffer, iterations: number): DecisionCost[] {
  const { policy, strategies } = fiftyTargetPolicy();
  const consumer: CompiledConsumer = { id: "alice", team: undefined, labels: {}, allowRoutes: undefined, allowModels: undefined };
  const obs = new TargetObservations(() => policy.cooldown);
  // Some history, so latency-based strategies have numbers to compare.
  for (let t = 0; t < 50; t++) for (let i = 0; i < 6; i++) obs.responded(`t${t}`, { status: 200, latencyMs: 100 + ((t * 37) % 400), retryAfterMs: undefined });
  const json = parseJsonObject(body);
  const model = requestedModel(json);
  const out: DecisionCost[] = [];
  for (const strategy of strategies) {
    const headers = new Map([["x-strategy", strategy]]);
    const once = () => {
      const header = (n: string) => headers.get(n);
      const route = decideRoute({ operation: "chat.completions", model, header, consumer }, policy);
      const features = featuresFor(route, "chat.completions", json, model);
      const plan = planRoute(route, { operation: "chat.completions", body: json, features, consumer, header, stats: (id) => obs.stats(id), now: Date.now(), random: Math.random });
      if (plan.cluster.order.length !== CHAIN) throw new Error(`strategy ${strategy}: unexpected plan`);
    };
    for (let i = 0; i < Math.min(2000, iterations); i++) once();
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) once();
    out.push({ strategy, us: ((performance.now() - t0) * 1000) / iterations });
  }
  return out;
}
