// The one Redis connection of a process, shared by the quota store and the response cache: a
// single node (or a primary) by URL, or a Redis Cluster from seed URLs.
//
// Failing fast matters more than retrying: with the offline queue off and a command timeout, a
// Redis that is down or slow costs a request at most `commandTimeoutMs` before the caller falls
// back (quota failModes, cache misses). ioredis keeps reconnecting in the background, so Redis
// coming back needs no restart of the service.
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Cluster, Redis, type Command } from "ioredis";

export type RedisConnection = Redis | Cluster;

export interface RedisClientOptions {
  /** redis://host:port; with `cluster`, seed nodes separated by commas. */
  url: string;
  /** Redis Cluster: keys are routed by slot (see quota/redis-store.ts for multi-key scripts). */
  cluster?: boolean;
  /** A request waits at most this long for Redis (default 200 ms). */
  commandTimeoutMs?: number;
}

// Reconnect forever, backing off to 2 s.
const backoff = (times: number) => Math.min(100 * times, 2000);

export function createRedisClient(opts: RedisClientOptions): RedisConnection {
  const commandTimeout = opts.commandTimeoutMs ?? 200;
  let redis: RedisConnection;
  if (opts.cluster) {
    const seeds = opts.url.split(",").map((u) => new URL(u.trim()));
    const nodes = seeds.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) }));
    // Every node takes the credentials of the first seed.
    const first = seeds[0]!;
    redis = new Cluster(nodes, {
      enableOfflineQueue: false,
      clusterRetryStrategy: backoff,
      redisOptions: {
        maxRetriesPerRequest: 0,
        commandTimeout,
        connectTimeout: 2000,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      },
    });
  } else {
    redis = new Redis(opts.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout, connectTimeout: 2000, retryStrategy: backoff, lazyConnect: false });
  }
  // Errors reach callers through rejected commands; without a listener ioredis logs each one.
  redis.on("error", () => undefined);
  return redis;
}

/** Told of every command's round trip: its name (a script's defineCommand name for EVALSHA), seconds, success. */
export type CommandObserver = (command: string, seconds: number, ok: boolean) => void;

/**
 * Times every command the connection sends. Installed before the stores define their scripts, so
 * that an EVALSHA is named for its script (quota admission, cache release, ...) rather than all
 * scripts sharing one "evalsha" series. Replies are observed, never changed.
 */
export function observeCommands(redis: RedisConnection, observe: CommandObserver): void {
  const scripts = new Map<string, string>();
  const define = redis.defineCommand.bind(redis);
  redis.defineCommand = (name: string, definition: { lua: string; numberOfKeys?: number; readOnly?: boolean }) => {
    scripts.set(createHash("sha1").update(definition.lua).digest("hex"), name);
    define(name, definition);
  };
  const send = redis.sendCommand.bind(redis) as (command: Command, ...rest: unknown[]) => unknown;
  (redis as { sendCommand: (command: Command, ...rest: unknown[]) => unknown }).sendCommand = (command: Command, ...rest: unknown[]) => {
    const start = performance.now();
    const name = command.name === "evalsha" ? (scripts.get(String(command.args[0])) ?? "evalsha") : command.name;
    const done = (ok: boolean) => () => observe(name, (performance.now() - start) / 1000, ok);
    command.promise.then(done(true), done(false));
    return send(command, ...rest);
  };
}

/** Resolves once connected, or rejects after timeoutMs (`serve` waits for it at start). */
export async function redisReady(redis: RedisConnection, timeoutMs: number): Promise<void> {
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

/**
 * The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. Keys
 * with the same tag share a slot, so one script may touch them together.
 */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}
