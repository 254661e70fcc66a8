// Cheapest estimated cost first. Three classes, never interleaved: targets that can serve the
// request with a price (by cost), then those without a price (cost unknown: not assumed free, since
// an unpriced hosted model would otherwise attract all traffic), then those that cannot serve it.
import type { CostStrategyConfig } from "../../policy/strategy-schema";
import type { TargetView } from "../strategy-types";
import { canServe, estimateCostUsd } from "./fit";
import { sortIds, type RankFn } from "./rank";

const PRICED = 0;
const UNPRICED = 1;
const CANNOT_SERVE = 2;

export function compileCost(config: CostStrategyConfig): RankFn {
  const assumed = config.assumedOutputTokens;
  return (input) => {
    const { targets, features } = input;
    const n = targets.length;
    const cost = new Array<number>(n);
    const group = new Array<number>(n);
    let best = Infinity;
    let firstGroup = CANNOT_SERVE;
    for (let i = 0; i < n; i++) {
      const t = targets[i] as TargetView;
      const serves = canServe(t, features);
      const usd = serves ? estimateCostUsd(t, features, assumed) : undefined;
      const g = !serves ? CANNOT_SERVE : usd === undefined ? UNPRICED : PRICED;
      cost[i] = usd ?? 0;
      group[i] = g;
      if (g < firstGroup) firstGroup = g;
      if (usd !== undefined && usd < best) best = usd;
    }
    const order = sortIds(targets, cost, group);
    const reason = firstGroup === PRICED ? `cheapest estimate $${best.toPrecision(3)}` : firstGroup === UNPRICED ? "no priced target can serve it; chain order" : "no target fits or has the capabilities; chain order";
    return { order, reason };
  };
}
