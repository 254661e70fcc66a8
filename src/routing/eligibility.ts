// Can this target take this request at all? Pure functions of the target (compiled policy), the
// request's features and what is known about the target right now.
// Two kinds of "no": a hard one (missing capability, prompt too long, output limit too high) means
// the request cannot succeed there, so that target is never tried; a cooldown only means "not
// now", so when every usable target is cooling down the one that recovers first is still tried: a
// route never fails for cooldowns alone.
import { CAPABILITIES, type Capability } from "../policy/schema";
import type { RequestFeatures, TargetStats, TargetView } from "./strategy-types";

/**
 * Output room reserved in the context window when the client set no output limit: a reply needs
 * some room, and OpenAI then lets the model write up to the rest of the window. Capped by the
 * target's own output limit when that is smaller.
 */
export const DEFAULT_OUTPUT_RESERVE = 256;

export interface Skipped {
  id: string;
  reason: string;
  /** The request cannot succeed there (false: only cooling down). */
  hard: boolean;
}

export interface Eligibility {
  /** Targets that can take the request, in the order given. Empty: nothing can (answer an error). */
  eligible: TargetView[];
  skipped: Skipped[];
  /** Set when a cooling-down target was kept because nothing else could take the request. */
  note?: string;
}

/** Undefined when the target can take the request now, else a short reason. */
export function ineligibility(target: TargetView, features: RequestFeatures, stats: TargetStats, now: number): string | undefined {
  return hardIneligibility(target, features) ?? cooldown(stats, now);
}

/** Reasons the request cannot succeed on the target whatever its health. */
export function hardIneligibility(target: TargetView, features: RequestFeatures): string | undefined {
  const missing = missingCapabilities(target, features);
  if (missing.length > 0) return `missing ${missing.length === 1 ? "capability" : "capabilities"}: ${missing.join(", ")}`;
  const asked = features.maxOutputTokens;
  if (asked !== undefined && target.maxOutputTokens !== undefined && asked > target.maxOutputTokens) {
    return `asks for ${asked} output tokens, the target allows ${target.maxOutputTokens}`;
  }
  if (!fitsContext(target, features)) {
    return `~${features.promptTokens} prompt + ${outputBudget(target, features)} output tokens exceed the ${target.contextWindow}-token context window`;
  }
  return undefined;
}

/** Required capabilities the target lacks, in CAPABILITIES order. */
export function missingCapabilities(target: TargetView, features: RequestFeatures): Capability[] {
  return CAPABILITIES.filter((c) => features.required.has(c) && !target.capabilities.has(c));
}

/** The output tokens the request must leave room for in the context window. */
export function outputBudget(target: TargetView, features: RequestFeatures): number {
  if (features.required.has("embeddings")) return 0;
  return features.maxOutputTokens ?? Math.min(target.maxOutputTokens ?? DEFAULT_OUTPUT_RESERVE, DEFAULT_OUTPUT_RESERVE);
}

/**
 * Prompt + output budget within the target's context window (an unknown window always fits).
 * Embedding models limit each input, not the batch, and promptTokens is the batch's total: only a
 * single-input request is checked.
 */
export function fitsContext(target: TargetView, features: RequestFeatures): boolean {
  if (target.contextWindow === undefined) return true;
  if (features.required.has("embeddings") && features.messageCount > 1) return true;
  return features.promptTokens + outputBudget(target, features) <= target.contextWindow;
}

/**
 * Splits the route's candidates (in chain order) into the ones that can take the request and the
 * skipped ones with their reasons. If none is eligible but some were skipped only for cooling
 * down, the one whose cooldown ends first (then: whose last failure is oldest, then: chain order)
 * is kept. Targets skipped for hard reasons are never brought back.
 */
export function eligibleTargets(targets: readonly TargetView[], features: RequestFeatures, stats: (targetId: string) => TargetStats, now: number): Eligibility {
  const eligible: TargetView[] = [];
  const skipped: Skipped[] = [];
  const cooling: Array<{ target: TargetView; stats: TargetStats; index: number }> = [];
  for (const target of targets) {
    const hard = hardIneligibility(target, features);
    if (hard !== undefined) {
      skipped.push({ id: target.id, reason: hard, hard: true });
      continue;
    }
    const s = stats(target.id);
    const cool = cooldown(s, now);
    if (cool === undefined) {
      eligible.push(target);
      continue;
    }
    cooling.push({ target, stats: s, index: skipped.length });
    skipped.push({ id: target.id, reason: cool, hard: false });
  }
  if (eligible.length > 0 || cooling.length === 0) return { eligible, skipped };

  let best = cooling[0];
  for (const c of cooling) if (best === undefined || recoversSooner(c.stats, best.stats)) best = c;
  if (best === undefined) return { eligible, skipped };
  skipped.splice(best.index, 1);
  return {
    eligible: [best.target],
    skipped,
    note: `every usable target is cooling down; trying ${best.target.id}, whose cooldown ends first`,
  };
}

function cooldown(stats: TargetStats, now: number): string | undefined {
  const until = stats.cooldownUntil;
  if (until === undefined || !(until > now)) return undefined;
  return `cooling down until ${isoTime(until)}`;
}

/** Strictly sooner, so ties keep the earlier target in chain order. */
function recoversSooner(a: TargetStats, b: TargetStats): boolean {
  const ua = a.cooldownUntil ?? 0;
  const ub = b.cooldownUntil ?? 0;
  if (ua !== ub) return ua < ub;
  return (a.lastFailureAt ?? -Infinity) < (b.lastFailureAt ?? -Infinity);
}

/** toISOString throws on times outside the Date range (a corrupt Redis value must not). */
function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${ms} ms` : d.toISOString();
}
