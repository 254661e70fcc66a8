// Fewest attempts in flight first. In-flight counts are this replica's (or the shared count when
// stats come from Redis); ties keep chain order so an idle route behaves like `ordered`.
import type { TargetView } from "../strategy-types";
import { sortIds, type RankFn } from "./rank";

export function compileLeastBusy(): RankFn {
  return (input) => {
    const { targets } = input;
    const busy = new Array<number>(targets.length);
    let least = Infinity;
    for (let i = 0; i < targets.length; i++) {
      const b = input.stats((targets[i] as TargetView).id).inFlight;
      busy[i] = b;
      if (b < least) least = b;
    }
    return { order: sortIds(targets, busy), reason: `least busy (${least} in flight)` };
  };
}
