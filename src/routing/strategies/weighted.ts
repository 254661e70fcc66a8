// Weighted split with stickiness, by weighted rendezvous hashing (highest random weight): each
// target draws u = hash(route, key, target) in (0, 1) and scores -ln(u) / weight; lowest score wins.
// -ln(u) is an Exp(1) draw, so the scores are independent Exp(weight) variables and the minimum
// falls on target i with probability weight_i / sum(weights): the configured split.
// Why this and not a hash-into-cumulative-ranges table: a key's score for a target depends only on
// that target's weight. Raising one weight lowers only that target's scores, so the only keys that
// move are those that move *to* it; lowering one moves only keys *away* from it; adding or removing a
// target moves only the keys it takes or held. Ranges would shift every boundary after the changed one.
// The full ascending order is a sticky fallback order too: a user's second choice is stable as well.
// https://en.wikipedia.org/wiki/Rendezvous_hashing#Weighted_rendezvous_hash
import type { WeightedStrategyConfig } from "../../policy/strategy-schema";
import type { StrategyInput, TargetView } from "../strategy-types";
import { sortIds, type RankFn } from "./rank";
import { absorb, initialState, resetState, unitInterval } from "./sticky-hash";

export function compileWeighted(config: WeightedStrategyConfig): RankFn {
  const weights = new Map(Object.entries(config.weights));
  const keyOf = stickyKey(config.stickyBy);
  // One state object per compiled strategy, reused: ranking is synchronous, so calls never overlap.
  const state = initialState();
  return (input) => {
    const { targets } = input;
    const [key, by] = keyOf(input);
    resetState(state);
    absorb(state, input.route);
    absorb(state, key);
    const a0 = state.a;
    const b0 = state.b;
    const n = targets.length;
    const score = new Array<number>(n);
    const group = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const id = (targets[i] as TargetView).id;
      const w = weights.get(id) ?? 0;
      // Weight 0 (or none): only a fallback, kept after every weighted target in chain order.
      if (!(w > 0)) {
        score[i] = 0;
        group[i] = 1;
        continue;
      }
      state.a = a0;
      state.b = b0;
      absorb(state, id);
      score[i] = -Math.log(unitInterval(state)) / w;
      group[i] = 0;
    }
    return { order: sortIds(targets, score, group), reason: `weighted split, sticky by ${by}` };
  };
}

type KeyOf = (input: StrategyInput) => readonly [key: string, by: string];

/** The sticky key and a word for the reason; a missing or empty key falls back to the consumer. */
function stickyKey(stickyBy: WeightedStrategyConfig["stickyBy"]): KeyOf {
  if (stickyBy === "consumer") return (input) => [input.consumer.id, "consumer"];
  if (stickyBy === "user") {
    return (input) => {
      const user = input.features.user;
      return user ? [user, "user"] : [input.consumer.id, "consumer (no user)"];
    };
  }
  const header = stickyBy.header;
  return (input) => {
    const v = input.header(header);
    return v ? [v, header] : [input.consumer.id, `consumer (no ${header})`];
  };
}
