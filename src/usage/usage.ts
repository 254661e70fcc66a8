// Token usage as the router accounts for it, normalised from each provider's own field names, and
// its price. Conventions follow OpenAI's: input counts every prompt token (cached ones included)
// and output counts reasoning tokens, because that is how both providers bill.
import { isRecord } from "../api/json";

export interface Usage {
  /** All prompt tokens, cached ones included (OpenAI's prompt_tokens convention). */
  inputTokens: number;
  /** Reasoning tokens included (they are billed as output). */
  outputTokens: number;
  /** Subset of inputTokens read from a prompt cache. */
  cachedInputTokens: number;
  /** Anthropic cache_creation_input_tokens (subset of inputTokens), 0 elsewhere. */
  cacheWriteInputTokens: number;
  /** Subset of outputTokens. */
  reasoningTokens: number;
}

export interface Price {
  inputPerMTok: number;
  outputPerMTok: number;
  cachedInputPerMTok?: number | undefined;
  /**
   * Anthropic bills cache writes above the base input price (1.25x for the 5-minute cache, 2x for
   * the 1-hour one: https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing);
   * defaults to inputPerMTok.
   */
  cacheWritePerMTok?: number | undefined;
}

/**
 * Cost in integer nano-dollars (1e-9 USD), rounded once per request. Cached input at
 * cachedInputPerMTok (else inputPerMTok); cache writes at cacheWritePerMTok (else inputPerMTok).
 */
export function costNanoUsd(usage: Usage, price: Price): number {
  // Clamped so that a provider reporting a subset larger than its total can not make a cost negative.
  const cached = Math.min(usage.cachedInputTokens, usage.inputTokens);
  const writes = Math.min(usage.cacheWriteInputTokens, usage.inputTokens - cached);
  const plain = usage.inputTokens - cached - writes;
  // tokens * USD-per-million-tokens is micro-dollars; rounding only the total keeps the error of
  // any sum of costs below half a nano-dollar per request.
  const microUsd =
    plain * price.inputPerMTok +
    cached * (price.cachedInputPerMTok ?? price.inputPerMTok) +
    writes * (price.cacheWritePerMTok ?? price.inputPerMTok) +
    usage.outputTokens * price.outputPerMTok;
  return Math.round(microUsd * 1000);
}

/** A token count from provider JSON; anything but a non-negative finite number is "not reported". */
function tokens(v: unknown): number | undefined {
  if (typeof v !== "number" || !(v >= 0) || v === Infinity) return undefined;
  return Math.min(Math.floor(v), Number.MAX_SAFE_INTEGER);
}

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function build(input: number, output: number, cached: number, cacheWrite: number, reasoning: number): Usage {
  const cachedInputTokens = Math.min(cached, input);
  return {
    inputTokens: input,
    outputTokens: output,
    cachedInputTokens,
    cacheWriteInputTokens: Math.min(cacheWrite, input - cachedInputTokens),
    reasoningTokens: Math.min(reasoning, output),
  };
}

/**
 * The `usage` object of OpenAI chat completions, completions and embeddings
 * (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage).
 */
export function usageFromOpenAi(raw: unknown): Usage | undefined {
  const input = tokens(field(raw, "prompt_tokens"));
  const output = tokens(field(raw, "completion_tokens"));
  if (input === undefined && output === undefined) return undefined;
  const cached = tokens(field(field(raw, "prompt_tokens_details"), "cached_tokens")) ?? 0;
  const reasoning = tokens(field(field(raw, "completion_tokens_details"), "reasoning_tokens")) ?? 0;
  return build(input ?? 0, output ?? 0, cached, 0, reasoning);
}

/** The `usage` object of an OpenAI Responses API response (https://platform.openai.com/docs/api-reference/responses/object). */
export function usageFromResponses(raw: unknown): Usage | undefined {
  const input = tokens(field(raw, "input_tokens"));
  const output = tokens(field(raw, "output_tokens"));
  if (input === undefined && output === undefined) return undefined;
  const cached = tokens(field(field(raw, "input_tokens_details"), "cached_tokens")) ?? 0;
  const reasoning = tokens(field(field(raw, "output_tokens_details"), "reasoning_tokens")) ?? 0;
  return build(input ?? 0, output ?? 0, cached, 0, reasoning);
}

/**
 * Anthropic's usage counts as last reported. A stream reports them in two places (message_start,
 * then message_delta), and message_delta may repeat or omit any of them, so each keeps its latest
 * non-null value (https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types).
 */
export interface AnthropicCounts {
  input: number | undefined;
  output: number | undefined;
  cacheRead: number | undefined;
  cacheWrite: number | undefined;
}

export function emptyAnthropicCounts(): AnthropicCounts {
  return { input: undefined, output: undefined, cacheRead: undefined, cacheWrite: undefined };
}

export function mergeAnthropicUsage(counts: AnthropicCounts, raw: unknown): void {
  if (!isRecord(raw)) return;
  counts.input = tokens(raw["input_tokens"]) ?? counts.input;
  counts.output = tokens(raw["output_tokens"]) ?? counts.output;
  counts.cacheRead = tokens(raw["cache_read_input_tokens"]) ?? counts.cacheRead;
  counts.cacheWrite = tokens(raw["cache_creation_input_tokens"]) ?? counts.cacheWrite;
}

/** All prompt tokens: Anthropic's input_tokens excludes cache reads and writes. */
export function anthropicInputTokens(counts: AnthropicCounts): number | undefined {
  if (counts.input === undefined && counts.cacheRead === undefined && counts.cacheWrite === undefined) return undefined;
  return (counts.input ?? 0) + (counts.cacheRead ?? 0) + (counts.cacheWrite ?? 0);
}

/** Anthropic counts in the router's convention; thinking tokens are billed inside output_tokens and not reported apart. */
export function usageFromAnthropic(counts: AnthropicCounts): Usage | undefined {
  const input = anthropicInputTokens(counts);
  if (input === undefined && counts.output === undefined) return undefined;
  return build(input ?? 0, counts.output ?? 0, counts.cacheRead ?? 0, counts.cacheWrite ?? 0, 0);
}
