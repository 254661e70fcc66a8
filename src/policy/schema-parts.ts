// Building blocks shared by the policy schema (schema.ts) and the strategy schema
// (strategy-schema.ts). They live apart from both because schema.ts imports strategy-schema.ts:
// importing back would be a require cycle that hands one of them an unfinished module.
import { z } from "zod";
import { DURATION_PATTERN, parseDuration } from "./duration";

/** Spread into every object: `$comment` is allowed everywhere for annotations. */
export const comment = { $comment: z.string().optional() };

export const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "use letters, digits, '.', '_', ':' or '-' (max 128), starting with a letter or digit");

export const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, "use a lowercase HTTP header name");

/**
 * google.protobuf.Duration's range, the longest Envoy takes. Longer durations rendered as
 * "3.6e+23s" or (past Number's range) read as Infinity ms (found by test/fuzz-policy.test.ts).
 */
export const MAX_DURATION_MS = 315_576_000_000_000;

/** "250ms", "30s", "5m", "1h". */
export const duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), 'a duration such as "250ms", "30s" or "5m"')
  .refine((d) => (parseDuration(d) ?? 0) > 0, "must be longer than 0")
  .refine((d) => (parseDuration(d) ?? 0) <= MAX_DURATION_MS, "must be at most 315576000000s (Envoy's longest duration)");
