// Which requests the response cache may answer, and under which key. Pure: table-tested in
// test/response-cache.test.ts.
//
// The key is the cache scope (who may share the answer), the route, and a SHA-256 of the request
// in a normal form: the operation, the Anthropic API version (it changes the answer's shape), and
// the JSON body with object keys sorted, so that key order and whitespace do not matter. JSON
// numbers are compared as numbers (1 and 1.0 are one request). `stream: false` equals an absent
// `stream`, and `stream_options` (meaningless without a stream) is left out.
import { createHash } from "node:crypto";
import type { Operation } from "../api/operations";
import type { JsonObject } from "../api/request-body";
import type { CompiledConsumer, CompiledRouteCache } from "../policy/compile";

/** What the cache does for one request on a route that has a cache. */
export type CacheMode =
  /** Answer from the cache when it can; otherwise store the upstream answer. */
  | "lookup"
  /** The client sent Cache-Control: no-cache: go upstream, then store the fresh answer. */
  | "refresh"
  /** Not cacheable (a stream, a stateful API, Cache-Control: no-store): neither read nor stored. */
  | "bypass";

/**
 * Operations whose answer depends only on the request. The Responses API is left out: its answers
 * are stored objects with their own ids that later requests refer to.
 */
const CACHEABLE: ReadonlySet<Operation> = new Set(["chat.completions", "completions", "messages", "embeddings"]);

export function cacheMode(operation: Operation, json: JsonObject, cacheControl: string | undefined): CacheMode {
  if (!CACHEABLE.has(operation) || json["stream"] === true) return "bypass";
  if (cacheControl !== undefined) {
    const directives = cacheControl.toLowerCase().split(",").map((d) => d.trim());
    if (directives.includes("no-store")) return "bypass";
    if (directives.includes("no-cache")) return "refresh";
  }
  return "lookup";
}

/** The cache key of a request (without the store's prefix). */
export function cacheKey(cache: CompiledRouteCache, route: string, consumer: CompiledConsumer, operation: Operation, json: JsonObject, anthropicVersion: string | undefined): string {
  const hash = createHash("sha256");
  hash.update(operation);
  hash.update("\n");
  hash.update(anthropicVersion ?? "");
  hash.update("\n");
  hash.update(canonicalBody(json));
  return `cache:${scopeOf(cache, consumer)}:${route}:${hash.digest("base64url")}`;
}

/**
 * Consumers without a team share nothing under scope "team". No Redis hash tag: entries are read
 * and written one key at a time, so spreading them over Redis Cluster slots is what we want.
 */
function scopeOf(cache: CompiledRouteCache, consumer: CompiledConsumer): string {
  if (cache.scope === "all") return "all";
  if (cache.scope === "team" && consumer.team !== undefined) return `t=${consumer.team}`;
  return `c=${consumer.id}`;
}

/** The body in normal form (see the file comment). */
export function canonicalBody(json: JsonObject): string {
  let out = "{";
  let first = true;
  for (const k of Object.keys(json).sort()) {
    const v = json[k];
    if (v === undefined || k === "stream_options" || (k === "stream" && v === false)) continue;
    out += `${first ? "" : ","}${JSON.stringify(k)}:${canonical(v)}`;
    first = false;
  }
  return `${out}}`;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
