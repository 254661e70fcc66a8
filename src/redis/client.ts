// The one Redis connection of a process, shared by the quota store and the response cache.
//
// Failing fast matters more than retrying: with the offline queue off and a command timeout, a
// Redis that is down or slow costs a request at most `commandTimeoutMs` before the caller falls
// back (quota failModes, cache misses). ioredis keeps reconnecting in the background, so Redis
// coming back needs no restart of the service.
import Redis from "ioredis";

export interface RedisClientOptions {
  url: string;
  /** A request waits at most this long for Redis (default 200 ms). */
  commandTimeoutMs?: number;
}

export function createRedisClient(opts: RedisClientOptions): Redis {
  const redis = new Redis(opts.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 200,
    connectTimeout: 2000,
    // Reconnect forever, backing off to 2 s.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
  });
  // Errors reach callers through rejected commands; without a listener ioredis logs each one.
  redis.on("error", () => undefined);
  return redis;
}

/** Resolves once connected, or rejects after timeoutMs (`serve` waits for it at start). */
export async function redisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
    };
    redis.on("ready", onReady);
  });
}
