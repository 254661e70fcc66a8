// The policy the bench's service runs (bench/server-service.ts) and its client addresses
// (bench/envoy-client.ts): examples/policy.json with Azure's key read from the environment, large
// context windows, and one more route so that an OpenAI chat client reaches Anthropic through the
// upstream phase's translation.
import { readFileSync } from "node:fs";
import path from "node:path";
import { compilePolicyText, type CompiledPolicy } from "../src/policy/compile";

/** examples/policy.json at the repo root; this file runs from dist/bench/. */
export const EXAMPLE_POLICY = path.resolve(__dirname, "../../examples/policy.json");

export interface PolicyDoc {
  providers: Record<string, Record<string, unknown>>;
  targets: Record<string, Record<string, unknown>>;
  routes: Array<Record<string, unknown>>;
  limits?: unknown;
}

/** The route the bench's untranslated chat requests (model "smart") match: first target OpenAI. */
export const PASSTHROUGH_ROUTE = "smart";
export const PASSTHROUGH_TARGET = "openai-gpt-4o";

/**
 * The bench's own route for OpenAI chat requests naming an Anthropic model: the example's
 * "claude-sonnet" target (provider anthropic), reached through the openai -> anthropic translation.
 * It matches by model only: the example's "claude" route (the same model, /v1/messages only) still
 * wins for Anthropic clients. (It does not name `paths: ["/v1/chat/completions"]`: the policy
 * compiler refuses that path for an Anthropic target, though the router translates it.)
 */
export const TRANSLATED_ROUTE = "bench-claude-chat";
export const TRANSLATED_MODEL = "claude-sonnet-4-5";
export const TRANSLATED_TARGET = "claude-sonnet";

/** The example policy as the bench runs it. */
export function benchPolicy(): PolicyDoc {
  const policy = JSON.parse(readFileSync(EXAMPLE_POLICY, "utf8")) as PolicyDoc;
  // The example reads Azure's key from a file; the bench copy reads it from the environment.
  const azure = policy.providers.azure;
  if (azure === undefined) throw new Error(`${EXAMPLE_POLICY} has no provider "azure"`);
  azure.credential = { env: "AZURE_BENCH_KEY" };
  // The bench's text bodies go up to 1 MiB (~350k tokens): more than any example target's context
  // window, which the router phase would rightly refuse. Large windows keep every body routable
  // and the decision on its common path (byte estimate, no tokenizer).
  for (const t of Object.values(policy.targets)) t.contextWindow = 2_000_000;
  if (policy.targets[TRANSLATED_TARGET]?.provider !== "anthropic") throw new Error(`${EXAMPLE_POLICY}: target "${TRANSLATED_TARGET}" is not an Anthropic target`);
  // Last: routes are indexed by model, so requests for other models never look at it.
  policy.routes.push({ name: TRANSLATED_ROUTE, match: { models: [TRANSLATED_MODEL] }, targets: [TRANSLATED_TARGET] });
  return policy;
}

let compiled: CompiledPolicy | undefined;

/** The chain cluster the router phase picks on `route` when `target` goes first (no observations). */
export function clusterOf(route: string, target: string): string {
  compiled ??= compilePolicyText(JSON.stringify(benchPolicy()), { file: EXAMPLE_POLICY, resolveSecrets: false });
  const cluster = compiled.routes.find((r) => r.name === route)?.clusterStartingWith.get(target)?.name;
  if (cluster === undefined) throw new Error(`bench policy: route "${route}" has no chain starting with ${target}`);
  return cluster;
}
