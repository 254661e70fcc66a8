// The chain as written: the first target, then the fallbacks in order.
import { chainOrder, type RankFn } from "./rank";

export function compileOrdered(): RankFn {
  return (input) => ({ order: chainOrder(input.targets), reason: "chain order" });
}
