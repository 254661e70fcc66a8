// A route's routing strategy: which target of its chain goes first for each request. The schema
// checks shapes only; `validateStrategy` checks what needs the route's chain (target references)
// and what is well-formed but cannot do what the author meant (all-zero weights, unreachable rules).
import { z } from "zod";
import { comment, headerName, identifier } from "./schema-parts";

const headerRef = z.strictObject({ ...comment, header: headerName });

/** Output tokens assumed for a cost estimate when the request sets no limit. */
const assumedOutputTokens = z.number().int().nonnegative().default(500);

const keywordList = z.array(z.string().trim().min(1)).min(1);

export const orderedStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("ordered"),
});

export const weightedStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("weighted"),
  /** Relative share of requests per target id. Chain targets without a weight only serve as fallbacks. */
  weights: z.record(identifier, z.number().nonnegative().finite()),
  /** Whose requests stick to one target. Without a `user` field / the header: the consumer. */
  stickyBy: z.union([z.enum(["consumer", "user"]), headerRef]).default("consumer"),
});

export const costStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("cost"),
  assumedOutputTokens,
});

export const latencyStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("latency"),
  /** Below this many samples a target's average is not trusted and the target is tried first. */
  minSamples: z.number().int().nonnegative().default(5),
  /** Share of requests sent to a random slower target, so that a recovered target is noticed. */
  explore: z.number().min(0).max(1).default(0.05),
});

export const leastBusyStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("least-busy"),
});

export const complexityTierSchema = z.strictObject({
  ...comment,
  name: identifier,
  target: identifier,
  /** Every condition given must hold; `{}` matches every request. */
  when: z.strictObject({
    ...comment,
    maxPromptTokens: z.number().int().nonnegative().optional(),
    minPromptTokens: z.number().int().nonnegative().optional(),
    maxMessages: z.number().int().positive().optional(),
    /** Whole words or phrases, case-insensitive: at least one must occur in the prompt. */
    keywordsAny: keywordList.optional(),
    /** Whole words or phrases, case-insensitive: none may occur in the prompt. */
    keywordsNone: keywordList.optional(),
  }),
});

export const complexityStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("complexity"),
  /** Checked in order; the first tier whose conditions all hold puts its target first. */
  tiers: z.array(complexityTierSchema).min(1),
  /** The target first when no tier matches. */
  otherwise: identifier,
});

export const conditionRuleSchema = z.strictObject({
  ...comment,
  /** Every condition given must hold; within a list, any value matches. */
  when: z.strictObject({
    ...comment,
    headers: z.record(headerName, z.union([z.string(), z.array(z.string()).min(1)])).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    teams: z.array(identifier).min(1).optional(),
    consumers: z.array(identifier).min(1).optional(),
  }),
  target: identifier,
});

export const conditionsStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("conditions"),
  /** Checked in order; the first matching rule's target goes first, else the chain order holds. */
  rules: z.array(conditionRuleSchema).min(1),
});

const preferenceSchema = z.strictObject({
  ...comment,
  cost: z.number().nonnegative().optional(),
  latency: z.number().nonnegative().optional(),
  quality: z.number().nonnegative().optional(),
});

export const hybridStrategySchema = z.strictObject({
  ...comment,
  type: z.literal("hybrid"),
  /** US dollars; targets whose estimated cost for the request is higher go last. */
  maxCostPerRequest: z.number().positive().optional(),
  /** Targets whose observed average latency is higher go last (unknown latency passes). */
  maxLatencyMs: z.number().positive().optional(),
  assumedOutputTokens,
  /** Where the task name comes from; it selects an entry of `preferences`. */
  task: headerRef.optional(),
  /** Score weights per task name, and "default" for any other task. Absent: all three weigh 1. */
  preferences: z.record(identifier, preferenceSchema).default({}),
  /** Per target, 0 (worst) to 1 (best). Targets not listed count as 0.5. */
  quality: z.record(identifier, z.number().min(0).max(1)).default({}),
});

export const strategySchema = z.discriminatedUnion("type", [
  orderedStrategySchema,
  weightedStrategySchema,
  costStrategySchema,
  latencyStrategySchema,
  leastBusyStrategySchema,
  complexityStrategySchema,
  conditionsStrategySchema,
  hybridStrategySchema,
]);

export type StrategyConfig = z.infer<typeof strategySchema>;
export type StrategyType = StrategyConfig["type"];
export type OrderedStrategyConfig = z.infer<typeof orderedStrategySchema>;
export type WeightedStrategyConfig = z.infer<typeof weightedStrategySchema>;
export type CostStrategyConfig = z.infer<typeof costStrategySchema>;
export type LatencyStrategyConfig = z.infer<typeof latencyStrategySchema>;
export type LeastBusyStrategyConfig = z.infer<typeof leastBusyStrategySchema>;
export type ComplexityStrategyConfig = z.infer<typeof complexityStrategySchema>;
export type ConditionsStrategyConfig = z.infer<typeof conditionsStrategySchema>;
export type HybridStrategyConfig = z.infer<typeof hybridStrategySchema>;

export interface StrategyIssue {
  /** Relative to the strategy object, e.g. ["tiers", 1, "target"]. */
  path: (string | number)[];
  message: string;
  fix?: string;
}

/** Problems a parsed strategy has in the context of its route's chain. Empty: fine. */
export function validateStrategy(config: StrategyConfig, chainTargetIds: readonly string[]): StrategyIssue[] {
  const chain = new Set(chainTargetIds);
  const issues: StrategyIssue[] = [];
  const ref = (path: (string | number)[], id: string): void => {
    if (!chain.has(id)) {
      issues.push({ path, message: `target "${id}" is not in this route's targets (${chainTargetIds.join(", ")})`, fix: `add "${id}" to the route's targets, or name one of them` });
    }
  };
  switch (config.type) {
    case "ordered":
    case "cost":
    case "latency":
    case "least-busy":
      break;
    case "weighted": {
      for (const id of Object.keys(config.weights)) ref(["weights", id], id);
      const positive = Object.entries(config.weights).some(([id, w]) => w > 0 && chain.has(id));
      if (!positive) {
        issues.push({ path: ["weights"], message: "no target of the route's chain has a weight above 0, so nothing can be chosen", fix: "give at least one of the route's targets a weight above 0" });
      }
      break;
    }
    case "complexity": {
      const names = new Set<string>();
      let catchAll: number | undefined;
      config.tiers.forEach((tier, i) => {
        ref(["tiers", i, "target"], tier.target);
        if (names.has(tier.name)) issues.push({ path: ["tiers", i, "name"], message: `tier name "${tier.name}" is used twice`, fix: "give each tier its own name (it appears in `explain` and logs)" });
        names.add(tier.name);
        const { minPromptTokens: min, maxPromptTokens: max } = tier.when;
        if (min !== undefined && max !== undefined && min > max) {
          issues.push({ path: ["tiers", i, "when"], message: `minPromptTokens ${min} is above maxPromptTokens ${max}, so this tier never matches`, fix: "swap or correct the two limits" });
        }
        if (catchAll !== undefined) {
          issues.push({ path: ["tiers", i], message: `never reached: tier ${catchAll} matches every request`, fix: "move the tier without conditions last, or use `otherwise`" });
        } else if (isEmptyWhen(tier.when)) {
          catchAll = i;
        }
      });
      ref(["otherwise"], config.otherwise);
      break;
    }
    case "conditions": {
      let catchAll: number | undefined;
      config.rules.forEach((rule, i) => {
        ref(["rules", i, "target"], rule.target);
        if (catchAll !== undefined) {
          issues.push({ path: ["rules", i], message: `never reached: rule ${catchAll} matches every request`, fix: "move the rule without conditions last" });
        } else if (isEmptyWhen(rule.when)) {
          catchAll = i;
        }
      });
      break;
    }
    case "hybrid": {
      for (const id of Object.keys(config.quality)) ref(["quality", id], id);
      for (const [task, p] of Object.entries(config.preferences)) {
        if (!((p.cost ?? 0) > 0 || (p.latency ?? 0) > 0 || (p.quality ?? 0) > 0)) {
          issues.push({ path: ["preferences", task], message: "every weight is 0 or absent, so all targets score the same", fix: "give cost, latency or quality a weight above 0" });
        }
      }
      if (config.task !== undefined && Object.keys(config.preferences).length === 0) {
        issues.push({ path: ["task"], message: "a task header is read but no `preferences` are given, so it changes nothing", fix: "add `preferences` per task name, or remove `task`" });
      }
      break;
    }
  }
  return issues;
}

/** True when a `when` object holds no condition ($comment aside), i.e. matches every request. */
function isEmptyWhen(when: object): boolean {
  return Object.entries(when).every(([k, v]) => k === "$comment" || v === undefined);
}
