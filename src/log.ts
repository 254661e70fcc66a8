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
