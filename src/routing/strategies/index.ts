// Routing strategies: rank a route's candidate targets for one request. Each strategy compiles its
// config once (maps, sets, keyword regexes) into a RankFn the hot path calls per request.
// Use `compileStrategy` when compiling the policy and keep the RankFn on the compiled route;
// `rankTargets` is the same thing for callers holding only the config (explain, tests), and caches
// the compiled form per config object, which is stable for the life of a loaded policy.
import type { StrategyConfig } from "../../policy/strategy-schema";
import type { Ranking, StrategyInput } from "../strategy-types";
import { compileComplexity } from "./complexity";
import { compileConditions } from "./conditions";
import { compileCost } from "./cost";
import { compileHybrid } from "./hybrid";
import { compileLatency } from "./latency";
import { compileLeastBusy } from "./least-busy";
import { compileOrdered } from "./ordered";
import type { RankFn } from "./rank";
import { compileWeighted } from "./weighted";

export type { RankFn } from "./rank";

export function compileStrategy(config: StrategyConfig): RankFn {
  switch (config.type) {
    case "ordered":
      return compileOrdered();
    case "weighted":
      return compileWeighted(config);
    case "cost":
      return compileCost(config);
    case "latency":
      return compileLatency(config);
    case "least-busy":
      return compileLeastBusy();
    case "complexity":
      return compileComplexity(config);
    case "conditions":
      return compileConditions(config);
    case "hybrid":
      return compileHybrid(config);
  }
}

const compiled = new WeakMap<StrategyConfig, RankFn>();

export function rankTargets(config: StrategyConfig, input: StrategyInput): Ranking {
  let rank = compiled.get(config);
  if (rank === undefined) {
    rank = compileStrategy(config);
    compiled.set(config, rank);
  }
  return rank(input);
}
