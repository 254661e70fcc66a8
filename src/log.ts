// The process logger (pino, JSON lines). Credentials are never logged on purpose; redaction is the
// second line of defence should a header map or error ever reach a log call.
import pino, { type Logger } from "pino";
import type { AttemptSummary, RequestSummary } from "./phases/request-summary";
import { isFailureStatus } from "./routing/observations";

export const REDACTED_PATHS = [
  "authorization",
  "headers.authorization",
  'headers["x-api-key"]',
  'headers["api-key"]',
  "*.authorization",
  '*["x-api-key"]',
  '*["api-key"]',
  "apiKey",
  "*.apiKey",
  "credential",
  "*.credential",
  'headers["x-goog-api-key"]',
  '*["x-goog-api-key"]',
  '*["x-amz-security-token"]',
  "aws",
  "*.aws",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "llm-router" },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * Logs a recurring failure (a store down for minutes) at most once per interval, with the number of
 * failures suppressed since the last line, instead of once per request.
 */
export class ThrottledErrorLog {
  #last = -Infinity;
  #suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly message: string,
  ) {}

  error(err: unknown, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++;
      return;
    }
    this.log.error({ ...fields, err: err instanceof Error ? err.message : String(err), failuresSinceLastLog: this.#suppressed }, this.message);
    this.#last = now;
    this.#suppressed = 0;
  }
}

const ms = (v: number | undefined): number | undefined => (v === undefined ? undefined : Math.round(v * 1000) / 1000);

/**
 * Per logger, a child with the same destination, bindings and level but no redaction, for the request
 * line only. Its fields are fixed names, none of which a redaction path names (test/request-log.test.ts
 * checks every field of a complete line), so redacting it could never change it; and redaction is by
 * far the dearest part of a log call (pino's redactor copies the object: about 75 µs of a 90 µs line,
 * most of the log's share of a request's CPU).
 */
const unredactedChildren = new WeakMap<Logger, Logger>();

function unredacted(log: Logger): Logger {
  let child = unredactedChildren.get(log);
  if (child === undefined) {
    child = log.child({}, { redact: { paths: [] } });
    unredactedChildren.set(log, child);
  }
  // A child keeps the level it was made with; /debug/log-level changes the parent's.
  if (child.level !== log.level) child.level = log.level;
  return child;
}

/**
 * The one line per request (info): who, which route and targets, how it ended, what it used and
 * cost, and where the time went. Never a header or a body.
 */
export function logRequest(log: Logger, s: RequestSummary): void {
  if (!log.isLevelEnabled("info")) return;
  unredacted(log).info(requestLine(s), "request");
}

/** The request line's fields; those that do not apply are left undefined (pino omits them). */
export function requestLine(s: RequestSummary): Record<string, unknown> {
  const usage = s.usage;
  return {
    requestId: s.requestId,
    consumer: s.consumer?.id,
    team: s.consumer?.team,
    route: s.route,
    operation: s.operation,
    model: s.requestedModel,
    target: s.target?.id,
    firstTarget: s.firstTarget !== undefined && s.firstTarget !== s.target ? s.firstTarget.id : undefined,
    attempts: s.attempts,
    status: s.status,
    outcome: s.outcome,
    error: s.errorCode,
    cache: s.cache,
    stream: s.streaming || undefined,
    responseModel: s.responseModel,
    tokens: usage && { input: usage.inputTokens, output: usage.outputTokens, cached: usage.cachedInputTokens, reasoning: usage.reasoningTokens, estimated: !s.usageReported || undefined },
    costUsd: s.nanoUsd > 0 ? s.nanoUsd / 1e9 : undefined,
    ttftMs: ms(s.ttftMs),
    durationMs: ms(s.durationMs),
    overheadMs: ms(s.overheadMs),
  };
}

/**
 * One line per upstream attempt: info when it failed (Envoy shows the router phase only the last
 * attempt's answer, so this is where earlier attempts' statuses are seen), debug when it answered.
 */
export function logAttempt(log: Logger, a: AttemptSummary): void {
  const failed = a.status === undefined || isFailureStatus(a.status);
  if (!failed && !log.isLevelEnabled("debug")) return;
  const line = { requestId: a.requestId, route: a.route, target: a.target.id, attempt: a.attempt, status: a.status ?? "no response", latencyMs: ms(a.latencyMs), overheadMs: ms(a.overheadMs), cooldown: a.cooldownEntered || undefined };
  if (failed) log.info(line, "upstream attempt failed");
  else log.debug(line, "upstream attempt");
}
