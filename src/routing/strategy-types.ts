// The shapes routing strategies work on. A strategy is a pure function: it ranks the targets of a
// route's chain for one request, from the request's features, the consumer, and what this replica
// (or the replicas, through Redis) observed about each target. It never does I/O.
import type { Capability, ProviderType } from "../policy/schema";

/** A target as strategies see it (from the compiled policy). */
export interface TargetView {
  id: string;
  /** Provider id (key of `providers`) and its type. */
  provider: string;
  providerType: ProviderType;
  /** The model the provider is asked for. */
  model: string;
  /** US dollars per million tokens. */
  price: { inputPerMTok: number; outputPerMTok: number; cachedInputPerMTok?: number } | undefined;
  contextWindow: number | undefined;
  maxOutputTokens: number | undefined;
  capabilities: ReadonlySet<Capability>;
}

/** What the router phase learnt from the request body (see request-features.ts). */
export interface RequestFeatures {
  /** Estimated prompt tokens (tokenizer for OpenAI models, documented approximation otherwise). */
  promptTokens: number;
  /** The output limit the client asked for (max_tokens, max_completion_tokens, max_output_tokens). */
  maxOutputTokens: number | undefined;
  /** Capabilities the request needs (tools, vision, json, streaming, embeddings). */
  required: ReadonlySet<Capability>;
  /** Number of messages (chat / messages / responses input items); 1 for a plain prompt. */
  messageCount: number;
  /** Lowercased prompt text for keyword rules, capped (see request-features.ts). */
  text: string;
  /** The end user the client named: OpenAI `user`, Anthropic `metadata.user_id`. */
  user: string | undefined;
  stream: boolean;
}

/** What is known about a target's recent behaviour. All fields may be absent (no data yet). */
export interface TargetStats {
  /** Exponentially weighted moving average of time to response headers (ms). */
  latencyMs: number | undefined;
  /** Number of latency samples behind the average (0: never observed). */
  samples: number;
  /** Attempts in flight to this target right now. */
  inFlight: number;
  /** Unix ms until which the target is cooling down (absent: not cooling down). */
  cooldownUntil: number | undefined;
  /** Unix ms of the last failed attempt. */
  lastFailureAt: number | undefined;
}

export interface ConsumerView {
  id: string;
  team: string | undefined;
  labels: Readonly<Record<string, string>>;
}

export interface StrategyInput {
  /** The route's name (part of sticky hashing so two routes split independently). */
  route: string;
  /** Candidate targets, in the route's chain order. Never empty. */
  targets: readonly TargetView[];
  features: RequestFeatures;
  consumer: ConsumerView;
  header(name: string): string | undefined;
  stats(targetId: string): TargetStats;
  /** Uniform [0, 1): injected so tests are deterministic. */
  random(): number;
  now: number;
}

export interface Ranking {
  /** Every candidate target id, best first. */
  order: string[];
  /** Why the first one won (short, for `explain` and debug logs). */
  reason: string;
}
