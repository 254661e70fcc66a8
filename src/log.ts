// The process logger (pino, JSON lines). Credentials are never logged on purpose; redaction is the
// second line of defence should a header map or error ever reach a log call.
import pino, { type Logger } from "pino";

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
