// `serve --workers N` without Redis: quota counters would live in each worker's memory, so every
// worker would admit up to the full limit and the service N times the limit. A policy with quota
// rules is refused then, at start and on reload (PolicyStore requirements), with the fix.
import type { CompiledPolicy } from "../policy/compile";
import { PolicyError } from "../policy/policy-error";
import type { PolicyRequirement } from "../policy/policy-store";
import type { ServeConfig } from "../cli/serve";

export function quotaNeedsRedis(workers: number): PolicyRequirement {
  return (policy: CompiledPolicy) => {
    const rules = policy.limits.rules;
    if (rules.length === 0) return;
    throw new PolicyError(policy.file, [
      {
        path: "limits.rules",
        message: `quota rules are counted in each process's memory without Redis: with --workers ${workers} every worker would admit up to the whole limit (${workers}x the limit in total)`,
        value: rules.map((r) => r.name).join(", "),
        fix: "set --redis-url (LLM_ROUTER_REDIS_URL) so that the workers share one count, or run with --workers 1",
      },
    ]);
  };
}

/** What the policy must meet in a process of `serve --workers N` (the primary and every worker). */
export function clusterRequirements(config: ServeConfig): PolicyRequirement[] {
  return config.service.redisUrl === undefined ? [quotaNeedsRedis(config.workers)] : [];
}
