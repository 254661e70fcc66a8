// What the cost-based strategies (cost, hybrid) need to know about a target for one request. They
// are defined by "cheapest target that can serve this", so a cheap target that cannot take the
// prompt, or lacks a capability the request needs, must not rank first: the router would skip it
// anyway, but the ranking and its `reason` would name the wrong winner.
import type { RequestFeatures, TargetView } from "../strategy-types";

/** The request fits the context window (when known) and the target has every required capability. */
export function canServe(target: TargetView, features: RequestFeatures): boolean {
  if (target.contextWindow !== undefined && features.promptTokens + (features.maxOutputTokens ?? 0) > target.contextWindow) return false;
  for (const c of features.required) if (!target.capabilities.has(c)) return false;
  return true;
}

/**
 * Estimated US dollars for the request on this target; undefined when the target has no price.
 * Output is the client's limit, else `assumedOutputTokens`, never more than the target can produce.
 * Cached-input prices are ignored: which part of the prompt a provider has cached is unknown here.
 */
export function estimateCostUsd(target: TargetView, features: RequestFeatures, assumedOutputTokens: number): number | undefined {
  const price = target.price;
  if (price === undefined) return undefined;
  let output = features.maxOutputTokens ?? assumedOutputTokens;
  if (target.maxOutputTokens !== undefined && output > target.maxOutputTokens) output = target.maxOutputTokens;
  return (features.promptTokens * price.inputPerMTok + output * price.outputPerMTok) / 1_000_000;
}
