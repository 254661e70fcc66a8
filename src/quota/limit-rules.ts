// Quota rules: compiled from the policy's `limits` once per load, then turned into the checks a
// request must pass (pure: no store, no clock of its own). Which counter a request draws from is
// the rule's `per` scope; keys are hash-tagged by that scope ({c:alice}, {t:team}, {r:route},
// {g:target}, {all}) so that one consumer's counters share a Redis Cluster slot.
import type { CompiledConsumer } from "../policy/compile";
import { parseDuration } from "../policy/duration";
import type { LimitsConfig, LimitRuleConfig, FailMode, LimitScope } from "../policy/limits-schema";
import { jsonPath, showValue, type PolicyIssue } from "../policy/policy-error";
import { calendarWindow, KIND_KEY, MINUTE_MS, NANO_USD_PER_USD, type LimitKind } from "./limit-kinds";
import type { Check } from "./quota-store";

export interface CompiledLimitRule {
  name: string;
  per: LimitScope;
  failMode: FailMode;
  consumers: ReadonlySet<string> | undefined;
  teams: ReadonlySet<string> | undefined;
  routes: ReadonlySet<string> | undefined;
  targets: ReadonlySet<string> | undefined;
  labels: ReadonlyArray<readonly [string, string]>;
  /** In units (requests, tokens, nano-dollars, slots). */
  limits: ReadonlyArray<{ kind: LimitKind; limit: number }>;
}

export interface CompiledLimits {
  rules: readonly CompiledLimitRule[];
  replicas: number;
  reserveOutputTokens: number;
  leaseTtlMs: number;
}

export interface PolicyNames {
  consumers: ReadonlySet<string>;
  teams: ReadonlySet<string>;
  routes: ReadonlySet<string>;
  targets: ReadonlySet<string>;
}

export function compileLimits(config: LimitsConfig, names: PolicyNames, issues: PolicyIssue[]): CompiledLimits {
  const seen = new Set<string>();
  const rules = config.rules.map((r, index): CompiledLimitRule => {
    const at = (...p: Array<string | number>) => jsonPath(["limits", "rules", index, ...p]);
    if (seen.has(r.name)) issues.push({ path: at("name"), message: "duplicate rule name", value: showValue(r.name), fix: "give every rule a unique name (answers and counters use it)" });
    seen.add(r.name);
    const check = (field: "consumers" | "teams" | "routes" | "targets") => {
      for (const v of r.match?.[field] ?? []) {
        if (!names[field].has(v)) issues.push({ path: at("match", field), message: `unknown ${field.slice(0, -1)}`, value: showValue(v), fix: `use one of: ${[...names[field]].join(", ") || "(none defined)"}` });
      }
    };
    check("consumers");
    check("teams");
    check("routes");
    check("targets");
    return {
      name: r.name,
      per: r.per,
      failMode: r.failMode,
      consumers: setOf(r.match?.consumers),
      teams: setOf(r.match?.teams),
      routes: setOf(r.match?.routes),
      targets: setOf(r.match?.targets),
      labels: Object.entries(r.match?.labels ?? {}),
      limits: limitsOf(r),
    };
  });
  return { rules, replicas: config.replicas, reserveOutputTokens: config.reserveOutputTokens, leaseTtlMs: parseDuration(config.leaseTtl) ?? 900_000 };
}

function setOf(values: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return values === undefined ? undefined : new Set(values);
}

function limitsOf(r: LimitRuleConfig): Array<{ kind: LimitKind; limit: number }> {
  const out: Array<{ kind: LimitKind; limit: number }> = [];
  if (r.requestsPerMinute !== undefined) out.push({ kind: "requests_per_minute", limit: r.requestsPerMinute });
  if (r.tokensPerMinute !== undefined) out.push({ kind: "tokens_per_minute", limit: r.tokensPerMinute });
  if (r.tokensPerDay !== undefined) out.push({ kind: "tokens_per_day", limit: r.tokensPerDay });
  if (r.usdPerDay !== undefined) out.push({ kind: "usd_per_day", limit: Math.round(r.usdPerDay * NANO_USD_PER_USD) });
  if (r.usdPerMonth !== undefined) out.push({ kind: "usd_per_month", limit: Math.round(r.usdPerMonth * NANO_USD_PER_USD) });
  if (r.concurrent !== undefined) out.push({ kind: "concurrent", limit: r.concurrent });
  return out;
}

/** Who is asking and where the request goes. */
export interface QuotaSubject {
  consumer: CompiledConsumer;
  route: string;
  /** The target the request is sent to first. */
  target: string;
}

/**
 * What a request reserves. `min*` is the part it certainly uses (the prompt): a rule whose limit is
 * below it can never admit the request. The rest (output not yet generated) is capped at each
 * rule's limit, so a default output reservation never makes a request impossible by itself.
 */
export interface Reservation {
  tokens: number;
  minTokens: number;
  nanoUsd: number;
  minNanoUsd: number;
}

/** The rules that apply to a request, in policy order. */
export function applicableRules(limits: CompiledLimits, s: QuotaSubject): CompiledLimitRule[] {
  return limits.rules.filter((r) => {
    if (r.consumers && !r.consumers.has(s.consumer.id)) return false;
    if (r.teams && (s.consumer.team === undefined || !r.teams.has(s.consumer.team))) return false;
    if (r.routes && !r.routes.has(s.route)) return false;
    if (r.targets && !r.targets.has(s.target)) return false;
    for (const [k, v] of r.labels) if (s.consumer.labels[k] !== v) return false;
    // A per-team rule does not apply to consumers without a team.
    return r.per !== "team" || s.consumer.team !== undefined;
  });
}

export function scopeTag(rule: CompiledLimitRule, s: QuotaSubject): string {
  switch (rule.per) {
    case "consumer":
      return `{c:${s.consumer.id}}`;
    case "team":
      return `{t:${s.consumer.team ?? ""}}`;
    case "route":
      return `{r:${s.route}}`;
    case "target":
      return `{g:${s.target}}`;
    case "all":
      return "{all}";
  }
}

/** A check that can never pass: the certain part of the request is over the rule's limit. */
export interface Impossible {
  rule: string;
  kind: LimitKind;
  limit: number;
  needed: number;
}

/**
 * The checks for a request under some rules. `share` divides every limit (a replica enforcing its
 * part while the store is down); `unlimited` rules are counted but never refuse.
 */
export function checksFor(
  rules: readonly CompiledLimitRule[],
  s: QuotaSubject,
  r: Reservation,
  now: number,
  leaseTtlMs: number,
  share: (rule: CompiledLimitRule) => number = () => 1,
): { checks: Check[]; impossible: Impossible | undefined } {
  const checks: Check[] = [];
  let impossible: Impossible | undefined;
  for (const rule of rules) {
    const tag = scopeTag(rule, s);
    const divisor = share(rule);
    for (const { kind, limit: full } of rule.limits) {
      const limit = divisor === Infinity ? Number.MAX_SAFE_INTEGER : Math.max(1, Math.floor(full / divisor));
      const key = `${tag}:${rule.name}:${KIND_KEY[kind]}`;
      const base = { rule: rule.name, kind, limit };
      const charge = (amount: number, certain: number): number => {
        if (certain > limit && impossible === undefined) impossible = { rule: rule.name, kind, limit, needed: certain };
        return Math.min(amount, limit);
      };
      switch (kind) {
        case "requests_per_minute":
          checks.push({ ...base, key, algo: "bucket", cost: 1, periodMs: MINUTE_MS });
          break;
        case "tokens_per_minute":
          checks.push({ ...base, key, algo: "bucket", cost: charge(r.tokens, r.minTokens), periodMs: MINUTE_MS });
          break;
        case "tokens_per_day": {
          const w = calendarWindow("day", now);
          checks.push({ ...base, key: `${key}:${w.id}`, algo: "window", cost: charge(r.tokens, r.minTokens), endsAt: w.end });
          break;
        }
        case "usd_per_day":
        case "usd_per_month": {
          const w = calendarWindow(kind === "usd_per_day" ? "day" : "month", now);
          checks.push({ ...base, key: `${key}:${w.id}`, algo: "window", cost: charge(r.nanoUsd, r.minNanoUsd), endsAt: w.end });
          break;
        }
        case "concurrent":
          checks.push({ ...base, key, algo: "lease", ttlMs: leaseTtlMs });
          break;
      }
    }
  }
  return { checks, impossible };
}
