// x-ratelimit-* headers in OpenAI's style (limit, remaining, reset per family), from the checks a
// request went through. With several rules of one family, the one with the least left is shown.
// Families: requests, tokens, usd (dollars, 4 decimals), concurrent.
import { KIND_UNIT, NANO_USD_PER_USD, resetDuration, type LimitUnit } from "./limit-kinds";
import type { Check, CheckState } from "./quota-store";

export function rateLimitHeaders(checks: readonly Check[], states: readonly CheckState[], now: number): Array<[string, string]> {
  const tightest = new Map<LimitUnit, { check: Check; state: CheckState }>();
  checks.forEach((check, i) => {
    const state = states[i];
    if (state === undefined || check.limit >= Number.MAX_SAFE_INTEGER) return;
    const unit = KIND_UNIT[check.kind];
    const held = tightest.get(unit);
    if (held === undefined || state.remaining / check.limit < held.state.remaining / held.check.limit) tightest.set(unit, { check, state });
  });
  const out: Array<[string, string]> = [];
  for (const [unit, { check, state }] of tightest) {
    const amount = (v: number) => (unit === "usd" ? (v / NANO_USD_PER_USD).toFixed(4) : String(v));
    out.push([`x-ratelimit-limit-${unit}`, amount(check.limit)]);
    out.push([`x-ratelimit-remaining-${unit}`, amount(state.remaining)]);
    if (unit !== "concurrent") out.push([`x-ratelimit-reset-${unit}`, resetDuration(state.resetAt - now)]);
  }
  return out;
}
