// A route's response cache (`routes[].cache`). README "Response cache" documents what is cached and
// how concurrent misses behave; where answers live (memory or Redis) is a `serve` option.
import { z } from "zod";
import { comment, duration } from "./schema-parts";

export const CACHE_SCOPES = ["consumer", "team", "all"] as const;
export type CacheScope = (typeof CACHE_SCOPES)[number];

export const routeCacheSchema = z.strictObject({
  ...comment,
  /** How long an answer is served from the cache. */
  ttl: duration,
  /**
   * Who shares cached answers: each consumer only its own (default), a team, or every consumer of
   * the route. Consumers without a team share nothing under `team`.
   */
  scope: z.enum(CACHE_SCOPES).default("consumer"),
  /** Answers larger than this (bytes, as the client receives them) are not stored. */
  maxEntryBytes: z.number().int().positive().max(16 * 1024 * 1024).default(1024 * 1024),
  /**
   * Identical requests arriving while the first is still upstream wait for its answer instead of
   * each calling the provider (stampede protection); false: every miss goes upstream.
   */
  coalesce: z.boolean().default(true),
  /**
   * How long a coalesced request waits before going upstream itself. Needs the router phase's
   * max_message_timeout to be at least this plus 1 s (checked by `validate`).
   */
  coalesceWait: duration.default("30s"),
});

export type RouteCacheConfig = z.infer<typeof routeCacheSchema>;
