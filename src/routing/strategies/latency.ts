// Lowest observed latency (EWMA of time to response headers) first.
// A target with fewer than `minSamples` samples has no trustworthy average; it goes first so that it
// gets measured (a new or just-reloaded target would otherwise never be tried once the others have
// numbers). Among such targets, the one with the fewest samples plus attempts in flight goes first:
// during a burst the in-flight attempts have not produced samples yet, and counting them spreads the
// burst over the unknown targets instead of sending all of it to the first.
// Once everything is measured, with probability `explore` one random non-best target is promoted:
// averages only move when a target is used, so a target that was slow and has recovered would
// otherwise keep its stale, bad average forever.
import type { LatencyStrategyConfig } from "../../policy/strategy-schema";
import type { TargetView } from "../strategy-types";
import { sortIds, type RankFn } from "./rank";

const UNKNOWN = 0;
const KNOWN = 1;

export function compileLatency(config: LatencyStrategyConfig): RankFn {
  const { minSamples, explore } = config;
  return (input) => {
    const { targets } = input;
    const n = targets.length;
    const key = new Array<number>(n);
    const group = new Array<number>(n);
    let unknown = 0;
    let fastest = Infinity;
    for (let i = 0; i < n; i++) {
      const s = input.stats((targets[i] as TargetView).id);
      if (s.latencyMs === undefined || s.samples < minSamples || s.samples === 0) {
        group[i] = UNKNOWN;
        key[i] = s.samples + s.inFlight;
        unknown++;
      } else {
        group[i] = KNOWN;
        key[i] = s.latencyMs;
        if (s.latencyMs < fastest) fastest = s.latencyMs;
      }
    }
    const order = sortIds(targets, key, group);
    if (unknown > 0) return { order, reason: "exploring: too few latency samples" };
    // One random() per ranking of measured targets (two when exploring), so that a scripted random
    // in tests lines up with requests.
    if (n > 1 && input.random() < explore) {
      const pick = 1 + Math.min(n - 2, Math.floor(input.random() * (n - 1)));
      const [chosen] = order.splice(pick, 1);
      order.unshift(chosen as string);
      return { order, reason: "exploring: random slower target" };
    }
    return { order, reason: `lowest latency (${Math.round(fastest)} ms)` };
  };
}
