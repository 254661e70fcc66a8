// Tiers by request complexity: prompt size, message count and keywords decide which target goes
// first (e.g. short prompts to a small model, "prove" / "refactor" to a large one). Tiers are checked
// in order; the rest of the chain keeps its order as fallbacks.
import type { ComplexityStrategyConfig } from "../../policy/strategy-schema";
import type { RequestFeatures } from "../strategy-types";
import { keywordMatcher } from "./keywords";
import { promoteOrChain, type RankFn } from "./rank";

interface CompiledTier {
  name: string;
  target: string;
  matches(features: RequestFeatures): boolean;
}

export function compileComplexity(config: ComplexityStrategyConfig): RankFn {
  const tiers = config.tiers.map(compileTier);
  const { otherwise } = config;
  return (input) => {
    for (const tier of tiers) {
      if (tier.matches(input.features)) return promoteOrChain(input.targets, tier.target, `complexity tier ${tier.name}`);
    }
    return promoteOrChain(input.targets, otherwise, "complexity: no tier matched");
  };
}

function compileTier(tier: ComplexityStrategyConfig["tiers"][number]): CompiledTier {
  const { maxPromptTokens, minPromptTokens, maxMessages, keywordsAny, keywordsNone } = tier.when;
  const any = keywordsAny ? keywordMatcher(keywordsAny) : undefined;
  const none = keywordsNone ? keywordMatcher(keywordsNone) : undefined;
  return {
    name: tier.name,
    target: tier.target,
    // Cheap numeric checks before the regexes.
    matches: (f) =>
      (maxPromptTokens === undefined || f.promptTokens <= maxPromptTokens) &&
      (minPromptTokens === undefined || f.promptTokens >= minPromptTokens) &&
      (maxMessages === undefined || f.messageCount <= maxMessages) &&
      (any === undefined || any.test(f.text)) &&
      (none === undefined || !none.test(f.text)),
  };
}
