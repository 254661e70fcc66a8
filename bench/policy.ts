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
  gateway?: Record<string, unknown>;
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

/** The soak's cached route (bench/soak.ts): chat requests for SOAK_CACHED_MODEL, answers kept 30 s. */
export const SOAK_CACHED_ROUTE = "bench-cached";
export const SOAK_CACHED_MODEL = "cached";
/** The soak's quota rule: the example's consumer `ci` (key sk-demo-ci), requests per minute only. */
export const SOAK_LIMIT_RULE = "soak-ci";
export const SOAK_LIMITED_KEY = "sk-demo-ci";

/**
 * The bench policy as the soak runs it (bench/soak.ts): a requests-per-minute rule on consumer `ci`
 * (so that a known share of ci's requests is refused with 429 at a known rate); a cached route; and
 * cooldowns that failures never start, so that the chain's first target stays first and the share
 * of attempts the driver fails on it stays the share of fallbacks (by default three failures in 30 s
 * would cool OpenAI down and the chain would start with Azure: no more fallbacks to count).
 */
export function soakPolicy(limitedRequestsPerMinute: number): PolicyDoc {
  const policy = benchPolicy();
  policy.gateway = { ...policy.gateway, cooldown: { failures: 1_000_000, window: "10s" } };
  policy.limits = {
    rules: [{ name: SOAK_LIMIT_RULE, per: "consumer", match: { consumers: ["ci"] }, requestsPerMinute: limitedRequestsPerMinute, failMode: "closed" }],
  };
  // Answers expire during the soak, so misses (storing) keep happening among the hits.
  policy.routes.push({ name: SOAK_CACHED_ROUTE, match: { models: [SOAK_CACHED_MODEL] }, targets: [PASSTHROUGH_TARGET], cache: { ttl: "30s", scope: "all" } });
  return policy;
}

/** Every chain cluster of `policy` -> its targets in priority order (what a retry reaches next). */
export function chainOrders(policy: PolicyDoc): Map<string, string[]> {
  const c = compilePolicyText(JSON.stringify(policy), { file: EXAMPLE_POLICY, resolveSecrets: false });
  const out = new Map<string, string[]>();
  for (const route of c.routes) for (const cluster of route.clusterStartingWith.values()) out.set(cluster.name, cluster.order.map((t) => t.id));
  return out;
}

let compiled: CompiledPolicy | undefined;

/** The chain cluster the router phase picks on `route` when `target` goes first (no observations). */
export function clusterOf(route: string, target: string): string {
  compiled ??= compilePolicyText(JSON.stringify(benchPolicy()), { file: EXAMPLE_POLICY, resolveSecrets: false });
  const cluster = compiled.routes.find((r) => r.name === route)?.clusterStartingWith.get(target)?.name;
  if (cluster === undefined) throw new Error(`bench policy: route "${route}" has no chain starting with ${target}`);
  return cluster;
}
