// What one request and one upstream attempt were, once they end: the single record both the metrics
// and the request log line are made from, so the two can never disagree. The router phase builds a
// RequestSummary when its stream closes; the upstream phase an AttemptSummary per attempt. Envoy
// shows the router phase only the answer of the last attempt, so the statuses of earlier attempts
// live in their own attempt records (joined to the request by requestId).
import type { Operation } from "../api/operations";
import type { CompiledConsumer, CompiledPolicy, CompiledTarget } from "../policy/compile";
import type { Reservation } from "../quota/limit-rules";
import type { Usage } from "../usage/usage";

/**
 * How a request ended:
 * - success: a 2xx answer from a target, relayed whole;
 * - upstream_error: a target's non-2xx answer (after any retries), or an error event inside a 2xx stream;
 * - refused: the gateway answered itself with an error (auth, validation, quota...);
 * - cache_hit: answered from the response cache;
 * - truncated: a 2xx stream that ended without its terminal event (the client got an error event);
 * - cancelled: the stream ended before the answer did (client gone, upstream reset, Envoy timeout);
 * - error: the service failed the ext_proc stream (a protocol violation or a bug).
 */
export const REQUEST_OUTCOMES = ["success", "upstream_error", "refused", "cache_hit", "truncated", "cancelled", "error"] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

export interface RequestSummary {
  requestId: string;
  /** The policy the request was served under (labels are bounded by it). */
  policy: CompiledPolicy;
  consumer: CompiledConsumer | undefined;
  /** Route name, the passthrough route, or undefined when refused before routing. */
  route: string | undefined;
  operation: Operation | undefined;
  /** The body's `model`, as the client sent it (bounded before it becomes a label). */
  requestedModel: string | undefined;
  /** The target the plan started with. */
  firstTarget: CompiledTarget | undefined;
  /** The target that answered (the first one when none answered). */
  target: CompiledTarget | undefined;
  /** Envoy's attempt number of the answer (1 = no retry); undefined when no target answered. */
  attempts: number | undefined;
  /** HTTP status the client got; undefined when it got none. */
  status: number | undefined;
  outcome: RequestOutcome;
  /** Error catalogue code of a refusal. */
  errorCode: string | undefined;
  cache: "hit" | "miss" | "bypass" | undefined;
  streaming: boolean;
  /** The answer's own `model` field. */
  responseModel: string | undefined;
  /** Tokens as reported by the provider, else estimated (usageReported false); undefined for no answer. */
  usage: Usage | undefined;
  usageReported: boolean;
  /** Cost at the answering target's price, nano-dollars. */
  nanoUsd: number;
  /** What quotas held for the request while it ran (undefined when it never reached admission). */
  reserved: Reservation | undefined;
  /** From the request headers reaching the router phase to the end of the answer, ms. */
  durationMs: number;
  /** Streams: from the request headers to the first chunk carrying output, ms. */
  ttftMs: number | undefined;
  /** Streams: (end - first output) / (output tokens - 1), ms; undefined below 2 output tokens. */
  tpotMs: number | undefined;
  /** Time the router phase took to answer its messages (routing, admission, cache, usage), ms. */
  overheadMs: number;
}

export interface AttemptSummary {
  requestId: string;
  route: string | undefined;
  target: CompiledTarget;
  /** Envoy's x-envoy-attempt-count, when the virtual host sends it. */
  attempt: number | undefined;
  /** The attempt's response status; undefined when it ended without one (reset, timeout, cancel). */
  status: number | undefined;
  /** From sending the rewritten request to its response headers, ms. */
  latencyMs: number | undefined;
  /** This attempt put its target into a cooldown. */
  cooldownEntered: boolean;
  /** Time the upstream phase took to answer this attempt's messages, ms. */
  overheadMs: number;
}

/** Where finished requests and attempts go: metrics and the log (service.ts wires both). */
export interface RequestSink {
  completed(summary: RequestSummary): void;
  attempted(summary: AttemptSummary): void;
}

export const DISCARD: RequestSink = { completed: () => {}, attempted: () => {} };
