// Rules on who is asking and how: request headers (e.g. `x-llm-task: coding` -> a coding model),
// the consumer, its team and labels. The first matching rule's target goes first; no match keeps the
// chain order. Matching mirrors route `match`: exact values, any of a list, every condition given.
import type { ConditionsStrategyConfig } from "../../policy/strategy-schema";
import type { StrategyInput } from "../strategy-types";
import { chainOrder, promoteOrChain, type RankFn } from "./rank";

interface CompiledRule {
  target: string;
  headers: ReadonlyArray<readonly [string, ReadonlySet<string>]>;
  labels: ReadonlyArray<readonly [string, string]>;
  teams: ReadonlySet<string> | undefined;
  consumers: ReadonlySet<string> | undefined;
}

export function compileConditions(config: ConditionsStrategyConfig): RankFn {
  const rules = config.rules.map(compileRule);
  return (input) => {
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as CompiledRule;
      if (ruleMatches(rule, input)) return promoteOrChain(input.targets, rule.target, `condition rule ${i}`);
    }
    return { order: chainOrder(input.targets), reason: "no condition rule matched; chain order" };
  };
}

function compileRule(rule: ConditionsStrategyConfig["rules"][number]): CompiledRule {
  const { headers, labels, teams, consumers } = rule.when;
  return {
    target: rule.target,
    headers: Object.entries(headers ?? {}).map(([name, v]) => [name, new Set(typeof v === "string" ? [v] : v)] as const),
    labels: Object.entries(labels ?? {}),
    teams: teams ? new Set(teams) : undefined,
    consumers: consumers ? new Set(consumers) : undefined,
  };
}

function ruleMatches(rule: CompiledRule, input: StrategyInput): boolean {
  const { consumer } = input;
  if (rule.consumers && !rule.consumers.has(consumer.id)) return false;
  if (rule.teams && (consumer.team === undefined || !rule.teams.has(consumer.team))) return false;
  for (const [k, v] of rule.labels) if (consumer.labels[k] !== v) return false;
  for (const [name, values] of rule.headers) {
    const v = input.header(name);
    if (v === undefined || !values.has(v)) return false;
  }
  return true;
}
