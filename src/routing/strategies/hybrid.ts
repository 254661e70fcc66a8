// Filter, then score. Targets over `maxCostPerRequest` (estimated as in `cost`) or over
// `maxLatencyMs` (observed average) go last, as do targets that cannot serve the request. The rest
// are scored by the preference weights of the request's task:
//   score = w_cost * costTerm + w_latency * latencyTerm + w_quality * quality
// where costTerm and latencyTerm map the cheapest / fastest remaining target to 1 and the most
// expensive / slowest to 0 (min-max over the remaining targets, so the weights compare like with
// like whatever the units), and quality is the configured 0..1 value. Highest score first.
// Unknowns are neutral (0.5) rather than best or worst: an unpriced or unmeasured target should be
// neither preferred blindly nor starved, and unknown values pass the filters for the same reason.
import type { HybridStrategyConfig } from "../../policy/strategy-schema";
import type { TargetView } from "../strategy-types";
import { canServe, estimateCostUsd } from "./fit";
import { sortIds, type RankFn } from "./rank";

const PASSES = 0;
const OVER_LIMIT = 1;
const CANNOT_SERVE = 2;
const NEUTRAL = 0.5;

interface Weights {
  name: string;
  cost: number;
  latency: number;
  quality: number;
}

export function compileHybrid(config: HybridStrategyConfig): RankFn {
  const preferences = new Map<string, Weights>(Object.entries(config.preferences).map(([name, p]) => [name, { name, cost: p.cost ?? 0, latency: p.latency ?? 0, quality: p.quality ?? 0 }]));
  const fallback = preferences.get("default") ?? { name: "equal weights", cost: 1, latency: 1, quality: 1 };
  const quality = new Map(Object.entries(config.quality));
  const { maxCostPerRequest, maxLatencyMs, assumedOutputTokens } = config;
  const taskHeader = config.task?.header;

  return (input) => {
    const { targets, features } = input;
    const n = targets.length;
    const task = taskHeader === undefined ? undefined : input.header(taskHeader);
    const weights = (task !== undefined ? preferences.get(task) : undefined) ?? fallback;
    const cost = new Array<number>(n);
    const latency = new Array<number>(n);
    const group = new Array<number>(n);
    let minCost = Infinity;
    let maxCost = -Infinity;
    let minLatency = Infinity;
    let maxLatency = -Infinity;
    for (let i = 0; i < n; i++) {
      const t = targets[i] as TargetView;
      const usd = estimateCostUsd(t, features, assumedOutputTokens);
      const s = input.stats(t.id);
      const ms = s.samples > 0 ? s.latencyMs : undefined;
      cost[i] = usd ?? NaN;
      latency[i] = ms ?? NaN;
      if (!canServe(t, features)) group[i] = CANNOT_SERVE;
      else if ((maxCostPerRequest !== undefined && usd !== undefined && usd > maxCostPerRequest) || (maxLatencyMs !== undefined && ms !== undefined && ms > maxLatencyMs)) group[i] = OVER_LIMIT;
      else {
        group[i] = PASSES;
        if (usd !== undefined) {
          if (usd < minCost) minCost = usd;
          if (usd > maxCost) maxCost = usd;
        }
        if (ms !== undefined) {
          if (ms < minLatency) minLatency = ms;
          if (ms > maxLatency) maxLatency = ms;
        }
      }
    }
    // Sort key: negated score for passing targets; 0 for the rest, which then keep chain order.
    const key = new Array<number>(n);
    let best = -Infinity;
    for (let i = 0; i < n; i++) {
      if (group[i] !== PASSES) {
        key[i] = 0;
        continue;
      }
      const q = quality.get((targets[i] as TargetView).id) ?? NEUTRAL;
      const score = weights.cost * lowerIsBetter(cost[i] as number, minCost, maxCost) + weights.latency * lowerIsBetter(latency[i] as number, minLatency, maxLatency) + weights.quality * q;
      key[i] = -score;
      if (score > best) best = score;
    }
    const order = sortIds(targets, key, group);
    const reason = best === -Infinity ? "hybrid: no target within limits; chain order" : `hybrid (${weights.name}): best score ${best.toFixed(2)}`;
    return { order, reason };
  };
}

/** 1 for the lowest known value (or when all are equal), 0 for the highest, NEUTRAL when unknown (NaN). */
function lowerIsBetter(v: number, min: number, max: number): number {
  if (Number.isNaN(v)) return NEUTRAL;
  if (max === min) return 1;
  return (max - v) / (max - min);
}
