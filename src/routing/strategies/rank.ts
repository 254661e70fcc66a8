// Helpers every strategy shares: the compiled form of a strategy, and turning per-target sort keys
// into the best-first id list. Chains hold at most 16 targets (usually 2-5), so an insertion sort on
// a few numbers beats Array.prototype.sort with a comparator closure and is stable by construction:
// ties always keep chain order, which is what an operator reading the chain expects.
import type { Ranking, StrategyInput, TargetView } from "../strategy-types";

/** A strategy compiled from its config: called once per request, pure apart from input.random(). */
export type RankFn = (input: StrategyInput) => Ranking;

/**
 * Ids of `targets` sorted by (group, key) ascending, ties in chain order. `group` separates classes
 * that must never interleave (e.g. 0 = priced, 1 = unpriced, 2 = does not fit) whatever their keys.
 */
export function sortIds(targets: readonly TargetView[], key: ArrayLike<number>, group?: ArrayLike<number>): string[] {
  const n = targets.length;
  const idx: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let j = i;
    while (j > 0) {
      const prev = idx[j - 1] as number;
      const dg = group === undefined ? 0 : (group[prev] as number) - (group[i] as number);
      if (dg < 0 || (dg === 0 && (key[prev] as number) <= (key[i] as number))) break;
      idx[j] = prev;
      j--;
    }
    idx[j] = i;
  }
  const order: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) order[i] = (targets[idx[i] as number] as TargetView).id;
  return order;
}

export function chainOrder(targets: readonly TargetView[]): string[] {
  const order: string[] = new Array<string>(targets.length);
  for (let i = 0; i < targets.length; i++) order[i] = (targets[i] as TargetView).id;
  return order;
}

/** Chain order with `id` moved to the front; undefined when `id` is not a candidate. */
export function promote(targets: readonly TargetView[], id: string): string[] | undefined {
  const order: string[] = [id];
  let found = false;
  for (const t of targets) {
    if (t.id === id) found = true;
    else order.push(t.id);
  }
  return found ? order : undefined;
}

/** Ranking for the rule-style strategies: `id` first when it is a candidate, else chain order. */
export function promoteOrChain(targets: readonly TargetView[], id: string, why: string): Ranking {
  const order = promote(targets, id);
  if (order !== undefined) return { order, reason: why };
  // The rule's target can be absent when the router offers only eligible targets.
  return { order: chainOrder(targets), reason: `${why}; ${id} not a candidate, chain order` };
}
