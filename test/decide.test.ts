import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "../src/api/errors";
import type { Operation } from "../src/api/operations";
import { compilePolicyText, type CompiledConsumer } from "../src/policy/compile";
import { decidePassthrough, decideRoute, type RequestFacts } from "../src/routing/decide";
import { planRoute } from "../src/routing/plan";
import type { RequestFeatures } from "../src/routing/strategy-types";
import { examplePolicy } from "./support/service";

const policy = compilePolicyText(JSON.stringify(examplePolicy()), { file: "example.json", resolveSecrets: false });
const consumer = (id: string): CompiledConsumer => {
  const c = [...policy.document.consumers].find((x) => x.id === id);
  assert.ok(c);
  return { id: c.id, team: c.team, labels: c.labels, allowRoutes: c.allow?.routes ? new Set(c.allow.routes) : undefined, allowModels: c.allow?.models ? new Set(c.allow.models) : undefined };
};

const FEATURES: RequestFeatures = { promptTokens: 10, maxOutputTokens: undefined, required: new Set(), messageCount: 1, text: "", user: undefined, stream: false };

/** The route, then the plan's first target (no observations). */
function decide(facts: RequestFacts) {
  const route = decideRoute(facts, policy);
  const plan = planRoute(route, { ...facts, body: {}, features: FEATURES, stats: () => ({ latencyMs: undefined, samples: 0, inFlight: 0, cooldownUntil: undefined, lastFailureAt: undefined }), now: 0, random: () => 0 });
  return { route, target: plan.first };
}

describe("decideRoute", () => {
  const table: Array<{ name: string; op: Operation; model: string; who: string; headers?: Record<string, string>; route?: string; target?: string; error?: string }> = [
    { name: "alias", op: "chat.completions", model: "smart", who: "alice", route: "smart", target: "openai-gpt-4o" },
    { name: "real model name", op: "chat.completions", model: "gpt-4o", who: "alice", route: "smart", target: "openai-gpt-4o" },
    { name: "header + consumer condition wins first", op: "chat.completions", model: "smart", who: "ci", headers: { "x-llm-task": "coding" }, route: "smart-coding-ci", target: "local-llama" },
    { name: "header condition not met falls through", op: "chat.completions", model: "smart", who: "ci", headers: { "x-llm-task": "chat" }, route: "smart" },
    { name: "consumer condition not met falls through", op: "chat.completions", model: "smart", who: "alice", headers: { "x-llm-task": "coding" }, route: "smart" },
    { name: "team condition", op: "chat.completions", model: "gpt-4o-azure", who: "alice", route: "azure-enterprise", target: "azure-gpt-4o" },
    { name: "team condition not met", op: "chat.completions", model: "gpt-4o-azure", who: "ci", error: "model_not_found" },
    { name: "path condition", op: "embeddings", model: "embed", who: "alice", route: "embeddings" },
    { name: "path condition not met", op: "chat.completions", model: "embed", who: "alice", error: "model_not_found" },
    { name: "path restricts smart to chat", op: "responses", model: "smart", who: "alice", error: "model_not_found" },
    { name: "anthropic messages", op: "messages", model: "claude", who: "bob", route: "claude", target: "claude-sonnet" },
    { name: "an Anthropic client reaches an OpenAI target (translated)", op: "messages", model: "fast", who: "alice", route: "fast", target: "openai-gpt-4o-mini" },
    { name: "route allow-list", op: "chat.completions", model: "smart", who: "bob", error: "route_not_allowed" },
    { name: "route allow-list passes", op: "chat.completions", model: "fast", who: "bob", route: "fast" },
    { name: "unknown model", op: "chat.completions", model: "nope", who: "alice", error: "model_not_found" },
  ];
  for (const t of table) {
    it(t.name, () => {
      const facts = { operation: t.op, model: t.model, header: (n: string) => t.headers?.[n], consumer: consumer(t.who) };
      if (t.error) {
        assert.throws(() => decide(facts), (e: unknown) => e instanceof GatewayError && e.code === t.error);
        return;
      }
      const d = decide(facts);
      assert.equal(d.route.name, t.route);
      if (t.target) assert.equal(d.target.id, t.target);
    });
  }

  it("model allow-list is checked against the requested name", () => {
    const restricted: CompiledConsumer = { ...consumer("alice"), allowModels: new Set(["fast"]) };
    assert.throws(() => decideRoute({ operation: "chat.completions", model: "smart", header: () => undefined, consumer: restricted }, policy), /model_not_allowed/);
    assert.equal(decideRoute({ operation: "chat.completions", model: "fast", header: () => undefined, consumer: restricted }, policy).name, "fast");
  });
});

describe("decidePassthrough", () => {
  const table: Array<[string, string | undefined]> = [
    ["/v1/models", "openai-gpt-4o"],
    ["/v1/models/gpt-4o", "openai-gpt-4o"],
    ["/v1/modelsX", undefined],
    ["/v1/files", undefined],
  ];
  for (const [path, target] of table) {
    it(path, () => assert.equal(decidePassthrough(path, policy)?.target.id, target));
  }
});
