// The `limits` section of the policy: quota rules (rates, budgets, concurrency) and how they are
// kept. README "Quotas and budgets" documents the window semantics these names promise.
import { z } from "zod";
import { comment, duration, identifier } from "./schema-parts";

export const LIMIT_SCOPES = ["consumer", "team", "route", "target", "all"] as const;
export type LimitScope = (typeof LIMIT_SCOPES)[number];

export const FAIL_MODES = ["open", "closed", "local"] as const;
export type FailMode = (typeof FAIL_MODES)[number];

const count = z.number().int().positive();
const usd = z.number().positive().max(1e6, "at most 1,000,000 USD per rule");

export const limitRuleSchema = z
  .strictObject({
    ...comment,
    /** Named in 429 answers (x-llm-router-limit) and logs. */
    name: identifier,
    /**
     * Whose counter a request draws from: one counter per consumer, per team, per route, per
     * target (the target a request is sent to first), or one for every request the rule matches.
     */
    per: z.enum(LIMIT_SCOPES).default("consumer"),
    /** Which requests the rule applies to (all criteria must hold; absent: every LLM request). */
    match: z
      .strictObject({
        ...comment,
        consumers: z.array(identifier).min(1).optional(),
        teams: z.array(identifier).min(1).optional(),
        routes: z.array(identifier).min(1).optional(),
        targets: z.array(identifier).min(1).optional(),
        labels: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
    /** Token bucket: bursts up to the limit, refills continuously over a minute. */
    requestsPerMinute: count.optional(),
    tokensPerMinute: count.optional(),
    /** Calendar windows in UTC: a day starts at 00:00, a month on the 1st. */
    tokensPerDay: count.optional(),
    usdPerDay: usd.optional(),
    usdPerMonth: usd.optional(),
    /** Requests in flight at once. */
    concurrent: count.optional(),
    /**
     * When the quota store (Redis) cannot be reached: `open` admits (counting in this replica only),
     * `closed` answers 503, `local` enforces this process's share (limit / (limits.replicas x the
     * `serve --workers` count)).
     */
    failMode: z.enum(FAIL_MODES).default("open"),
  })
  .refine(
    (r) => [r.requestsPerMinute, r.tokensPerMinute, r.tokensPerDay, r.usdPerDay, r.usdPerMonth, r.concurrent].some((v) => v !== undefined),
    "a rule needs at least one of requestsPerMinute, tokensPerMinute, tokensPerDay, usdPerDay, usdPerMonth, concurrent",
  );

export const limitsSchema = z
  .strictObject({
    ...comment,
    rules: z.array(limitRuleSchema).default([]),
    /**
     * Replicas (pods, machines) sharing the store, not processes: with failMode `local` each replica
     * enforces limit / replicas meanwhile, split again over its `serve --workers` by itself.
     */
    replicas: count.default(1),
    /**
     * Output tokens reserved for a request that names no max_tokens (a route may set its own
     * `reserveOutputTokens`); capped by the target's maxOutputTokens. Settled to the real usage.
     */
    reserveOutputTokens: count.default(4096),
    /** How long a concurrency slot stays taken when its request never reports its end (a crashed replica). */
    leaseTtl: duration.default("15m"),
  })
  .default({ rules: [], replicas: 1, reserveOutputTokens: 4096, leaseTtl: "15m" });

export type LimitRuleConfig = z.infer<typeof limitRuleSchema>;
export type LimitsConfig = z.infer<typeof limitsSchema>;
