// Cached answers in Redis, shared by every replica: one string per answer (a small JSON header and
// the body bytes, with Redis expiring it), one string per fill claim (SET NX PX).
import type { RedisConnection } from "../redis/client";
import type { CachedAnswer, CacheStore } from "./cache-store";

// Deletes a claim only if it is still the caller's: an expired claim re-taken by another request
// must not be dropped by the request that held it before.
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type ScriptCall = (numKeys: number, ...args: string[]) => Promise<unknown>;

export class RedisCacheStore implements CacheStore {
  constructor(
    private readonly redis: RedisConnection,
    readonly prefix: string,
  ) {
    redis.defineCommand("llmrCacheRelease", { lua: RELEASE_SCRIPT });
  }

  async get(key: string): Promise<CachedAnswer | undefined> {
    const raw = await this.redis.getBuffer(this.prefix + key);
    return raw === null ? undefined : decodeAnswer(raw);
  }

  async set(key: string, answer: CachedAnswer, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, encodeAnswer(answer), "PX", Math.max(1, Math.round(ttlMs)));
  }

  async claim(key: string, token: string, ttlMs: number): Promise<boolean> {
    const ok = await this.redis.set(`${this.prefix}${key}:fill`, token, "PX", Math.max(1, Math.round(ttlMs)), "NX");
    return ok === "OK";
  }

  async release(key: string, token: string): Promise<void> {
    const call = (this.redis as unknown as { llmrCacheRelease: ScriptCall }).llmrCacheRelease;
    await call.call(this.redis, 1, `${this.prefix}${key}:fill`, token);
  }

  close(): Promise<void> {
    // The connection belongs to the service (src/redis/client.ts).
    return Promise.resolve();
  }
}

/** 4-byte big-endian header length, the header as JSON, then the body. */
export function encodeAnswer(a: CachedAnswer): Buffer {
  const header = Buffer.from(JSON.stringify({ ct: a.contentType, t: a.target, at: a.storedAt }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length);
  return Buffer.concat([len, header, a.body]);
}

/** undefined for anything that is not an encoded answer (a foreign value under our prefix). */
export function decodeAnswer(raw: Buffer): CachedAnswer | undefined {
  if (raw.length < 4) return undefined;
  const n = raw.readUInt32BE(0);
  if (4 + n > raw.length) return undefined;
  try {
    const h = JSON.parse(raw.subarray(4, 4 + n).toString("utf8")) as { ct?: unknown; t?: unknown; at?: unknown };
    if (typeof h.ct !== "string" || typeof h.t !== "string" || typeof h.at !== "number") return undefined;
    return { contentType: h.ct, target: h.t, storedAt: h.at, body: raw.subarray(4 + n) };
  } catch {
    return undefined;
  }
}
