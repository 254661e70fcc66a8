// The routing plan for one request on its route: which targets of the chain can take it, which goes
// first (the route's strategy), and so which chain cluster Envoy uses and how many retries it may
// make. Pure: everything observed about targets comes in through `stats`.
//
// Envoy walks the chosen cluster's order (first target, then the chain's others in written order)
// on retries. A later target that cannot take the request at all (wrong API, missing capability,
// prompt too long) must never be reached, so the plan caps the retries before it; a target that is
// only cooling down stays in the fallback order (Envoy's outlier detection also skips it).
import { GatewayError } from "../api/errors";
import { OPERATIONS, type Operation } from "../api/operations";
import type { CompiledCluster, CompiledConsumer, CompiledRoute, CompiledTarget } from "../policy/compile";
import type { JsonObject } from "../api/request-body";
import { translationFor } from "../translate/registry";
import { eligibleTargets, missingCapabilities, outputBudget } from "./eligibility";
import { encodingForModel, requestFeatures } from "./request-features";
import type { Ranking, RequestFeatures, TargetStats } from "./strategy-types";

export interface PlanInput {
  operation: Operation;
  /** The client's body: a target reached through a translation must be able to express it. */
  body: JsonObject;
  features: RequestFeatures;
  consumer: CompiledConsumer;
  header(name: string): string | undefined;
  stats(targetId: string): TargetStats;
  now: number;
  random(): number;
}

export interface SkippedTarget {
  target: string;
  reason: string;
  /** The request cannot succeed there (as opposed to a cooldown). */
  hard: boolean;
}

export interface RoutePlan {
  first: CompiledTarget;
  cluster: CompiledCluster;
  /** Retries Envoy may make (the route's, or fewer when a later target cannot take the request). */
  retries: number;
  retriesLimited: boolean;
  ranking: Ranking;
  skipped: SkippedTarget[];
}

export function planRoute(route: CompiledRoute, input: PlanInput): RoutePlan {
  const { operation, features, now } = input;
  const skipped: SkippedTarget[] = [];
  const served: CompiledTarget[] = [];
  let untranslatable: string | undefined;
  for (const t of route.chain) {
    const adapter = t.provider.adapter;
    const translation = translationFor(adapter, operation);
    if (translation === undefined && !adapter.operations.has(operation)) {
      skipped.push({ target: t.id, reason: `${t.provider.config.type} does not serve ${OPERATIONS[operation].path}`, hard: true });
      continue;
    }
    // Checked once per provider type, model and request would do; chains are short and check() is cheap.
    const problem = translation?.check(input.body, t.config.model);
    if (problem === undefined) served.push(t);
    else {
      untranslatable ??= `${problem} (${t.provider.config.type})`;
      skipped.push({ target: t.id, reason: `${t.provider.config.type} cannot express the request: ${problem}`, hard: true });
    }
  }
  if (served.length === 0) {
    // The sentence names a field and a provider type, never a target or key: safe to show.
    if (untranslatable !== undefined) throw new GatewayError("field_not_supported_by_target", untranslatable);
    throw new GatewayError("api_not_supported_by_target");
  }
  const split = eligibleTargets(
    served.map((t) => t.view),
    features,
    input.stats,
    now,
  );
  for (const s of split.skipped) skipped.push({ target: s.id, reason: s.reason, hard: s.hard });
  if (split.eligible.length === 0) {
    if (served.every((t) => missingCapabilities(t.view, features).length > 0)) throw new GatewayError("capability_not_supported", `Needs: ${[...features.required].join(", ")}.`);
    // The reasons name limits, never targets, so they are safe to show.
    const why = skipped.find((x) => x.hard && !x.reason.includes("does not serve") && !x.reason.includes("cannot express"))?.reason;
    throw new GatewayError("context_length_exceeded", why === undefined ? undefined : `(${why})`);
  }
  const candidates = split.eligible;

  const ranking =
    candidates.length === 1
      ? { order: [candidates[0]!.id], reason: split.note ?? "the only target that can take it now" }
      : route.rank({
          route: route.name,
          targets: candidates,
          features,
          consumer: input.consumer,
          header: input.header,
          stats: input.stats,
          random: input.random,
          now,
        });
  const first = byId(route, ranking.order[0] ?? candidates[0]!.id);
  const cluster = route.clusterStartingWith.get(first.id);
  if (cluster === undefined) throw new Error(`unreachable: no cluster starts with ${first.id} on route ${route.name}`);

  const impossible = new Set(skipped.filter((s) => s.hard).map((s) => s.target));
  let reachable = 0;
  while (reachable < cluster.order.length && !impossible.has(cluster.order[reachable]!.id)) reachable++;
  const limited = reachable < cluster.order.length && route.retry.retries > reachable - 1;
  return {
    first,
    cluster,
    retries: limited ? reachable - 1 : route.retry.retries,
    retriesLimited: limited,
    ranking,
    skipped,
  };
}

function byId(route: CompiledRoute, id: string): CompiledTarget {
  const t = route.chain.find((x) => x.id === id);
  if (t === undefined) throw new Error(`unreachable: ${id} is not in route ${route.name}'s chain`);
  return t;
}

/**
 * Whether the request is close enough to a chain target's context window that the byte-based
 * estimate should be replaced by a tokenizer count. Tokenizing costs ~100 µs per 2 KB; the estimate
 * costs ~2 µs. Within half of a window the estimate decides (an error of 2x in the estimate would be
 * needed to change the answer; it overestimates OpenAI tokenizers on prose and code).
 */
export function needsExactCount(route: CompiledRoute, approximate: RequestFeatures): boolean {
  for (const t of route.chain) {
    const window = t.view.contextWindow;
    if (window !== undefined && 2 * (approximate.promptTokens + outputBudget(t.view, approximate)) > window) return true;
  }
  return false;
}

/**
 * The request's features for planning on `route`: the byte estimate, replaced by a count with the
 * tokenizer of the chain's first model only when the estimate comes near a context window.
 */
export function featuresFor(route: CompiledRoute, operation: Operation, body: JsonObject, requestedModel: string): RequestFeatures {
  const approximate = requestFeatures(operation, body, "");
  const firstModel = route.chain[0]?.config.model ?? requestedModel;
  if (encodingForModel(firstModel) === undefined || !needsExactCount(route, approximate)) return approximate;
  return requestFeatures(operation, body, firstModel);
}
