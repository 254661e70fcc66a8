// Target observations shared between replicas through Redis (README "Cooldowns"), so that a target
// failing on one replica cools down on all of them, failures count across replicas, and the
// latency and least-busy strategies see the whole fleet's in-flight attempts and latencies.
//
// Nothing here is on a request's path: failures and cooldowns are sent as they happen without being
// awaited, and every `intervalMs` one script publishes this replica's snapshot and reads everyone
// else's and the cooldowns. When Redis is away the replica keeps deciding from its own view; the
// other replicas' in-flight and latency figures are dropped once older than three intervals (they
// would only grow wrong), while cooldowns already learnt run to their end (they were facts).
//
// Keys share the `{obs}` hash tag, so each script's keys sit in one Redis Cluster slot; the traffic
// is a few commands per replica per interval plus one per failure, which one slot carries easily.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { ThrottledErrorLog } from "../log";
import type { CooldownSettings } from "../policy/compile";
import type { RedisConnection } from "../redis/client";
import { mergeLatency, type LocalSnapshot, type ObservationSink, type SharedTargetView, type TargetObservations } from "./observations";

// KEYS: failures zset of the target, cooldowns hash. ARGV: now, unique member, window ms, threshold,
// cooldown ms, target id. Counts the failure within the window; at the threshold clears the count
// and starts (or extends) the target's cooldown. Returns the cooldown's end, or 0.
const FAILED_SCRIPT = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then return 0 end
redis.call('DEL', KEYS[1])
local ends = now + tonumber(ARGV[5])
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[6]) or '0')
if current > ends then ends = current end
redis.call('HSET', KEYS[2], ARGV[6], ends)
return ends
`;

// KEYS: cooldowns hash. ARGV: target id, ends. Keeps the later end. Returns it.
const COOL_SCRIPT = `
local ends = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if current > ends then return current end
redis.call('HSET', KEYS[1], ARGV[1], ends)
return ends
`;

// KEYS: snapshots hash, their times hash, cooldowns hash. ARGV: now, replica id, snapshot JSON,
// stale ms, keys ttl ms. Publishes this replica's snapshot, forgets replicas silent for longer than
// `stale` and cooldowns that ended, and returns { snapshots (id, json, ...), cooldowns (id, ends, ...) }.
const EXCHANGE_SCRIPT = `
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], now)
local times = redis.call('HGETALL', KEYS[2])
for i = 1, #times, 2 do
  if tonumber(times[i + 1]) < now - tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[1], times[i])
    redis.call('HDEL', KEYS[2], times[i])
  end
end
local cooldowns = redis.call('HGETALL', KEYS[3])
local live = {}
for i = 1, #cooldowns, 2 do
  if tonumber(cooldowns[i + 1]) > now then
    live[#live + 1] = cooldowns[i]
    live[#live + 1] = cooldowns[i + 1]
  else
    redis.call('HDEL', KEYS[3], cooldowns[i])
  end
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[5])) end
return { redis.call('HGETALL', KEYS[1]), live }
`;

type ScriptRedis = RedisConnection & {
  llmrObsFailed(failures: string, cooldowns: string, ...args: Array<string | number>): Promise<number>;
  llmrObsCool(cooldowns: string, target: string, until: number): Promise<number>;
  llmrObsExchange(snapshots: string, times: string, cooldowns: string, ...args: Array<string | number>): Promise<[string[], string[]]>;
};

export interface ObservationExchangeOptions {
  redis: RedisConnection;
  keyPrefix: string;
  observations: TargetObservations;
  /** How often the snapshots are exchanged (ms). */
  intervalMs: number;
  log: Logger;
  now?: () => number;
  /** Distinguishes this replica's snapshot (default: random). */
  replicaId?: string;
  /** Told of each cooldown learnt from another replica (metrics). */
  onSharedCooldown?: (targetId: string) => void;
}

export class ObservationExchange implements ObservationSink {
  readonly replicaId: string;
  readonly #redis: ScriptRedis;
  readonly #obs: TargetObservations;
  readonly #keys: { snapshots: string; times: string; cooldowns: string; failures: string };
  readonly #intervalMs: number;
  readonly #log: Logger;
  readonly #onSharedCooldown: ((targetId: string) => void) | undefined;
  readonly #errors: ThrottledErrorLog;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastExchange = -Infinity;
  #seq = 0;
  /** Exchanges and Redis errors so far (for tests and, later, metrics). */
  readonly stats = { exchanges: 0, errors: 0, sharedCooldowns: 0 };

  constructor(opts: ObservationExchangeOptions) {
    this.replicaId = opts.replicaId ?? randomBytes(6).toString("hex");
    this.#redis = opts.redis as ScriptRedis;
    this.#obs = opts.observations;
    this.#intervalMs = opts.intervalMs;
    this.#log = opts.log;
    this.#onSharedCooldown = opts.onSharedCooldown;
    this.#now = opts.now ?? Date.now;
    this.#errors = new ThrottledErrorLog(opts.log, 30_000, "shared target observations: Redis call failed; deciding from this replica's own view");
    const p = `${opts.keyPrefix}{obs}:`;
    this.#keys = { snapshots: `${p}replicas`, times: `${p}seen`, cooldowns: `${p}cooldowns`, failures: `${p}failures:` };
    this.#redis.defineCommand("llmrObsFailed", { numberOfKeys: 2, lua: FAILED_SCRIPT });
    this.#redis.defineCommand("llmrObsCool", { numberOfKeys: 1, lua: COOL_SCRIPT });
    this.#redis.defineCommand("llmrObsExchange", { numberOfKeys: 3, lua: EXCHANGE_SCRIPT });
  }

  /** Starts reporting and the periodic exchange (the first one at once). */
  start(): void {
    this.#obs.share(this);
    const tick = () => {
      this.#running = this.exchange().finally(() => {
        this.#running = undefined;
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, this.#intervalMs).unref();
      });
    };
    this.#timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#obs.share(undefined);
    await this.#running;
  }

  failed(targetId: string, at: number, s: CooldownSettings): void {
    const member = `${at}:${this.replicaId}:${this.#seq++}`;
    this.#redis
      .llmrObsFailed(this.#keys.failures + targetId, this.#keys.cooldowns, at, member, s.windowMs, s.failures, s.durationMs, targetId)
      .then((until) => {
        if (until > 0) this.#learnt(targetId, Number(until), "failures across replicas");
      })
      .catch((err: unknown) => this.#failedCall(err));
  }

  cooledUntil(targetId: string, until: number): void {
    this.#redis.llmrObsCool(this.#keys.cooldowns, targetId, until).catch((err: unknown) => this.#failedCall(err));
  }

  /** One exchange: publish this replica's snapshot, read the others' and the cooldowns. */
  async exchange(): Promise<void> {
    const now = this.#now();
    const snapshot = this.#obs.snapshot();
    try {
      const [snapshots, cooldowns] = await this.#redis.llmrObsExchange(
        this.#keys.snapshots,
        this.#keys.times,
        this.#keys.cooldowns,
        now,
        this.replicaId,
        JSON.stringify(snapshot),
        3 * this.#intervalMs,
        Math.max(60_000, 10 * this.#intervalMs),
      );
      this.#obs.setOthers(mergeOthers(snapshots, this.replicaId));
      for (let i = 0; i + 1 < cooldowns.length; i += 2) this.#learnt(cooldowns[i]!, Number(cooldowns[i + 1]), "another replica");
      this.#lastExchange = now;
      this.stats.exchanges++;
    } catch (err) {
      this.#failedCall(err);
      // Others' in-flight counts and latencies go stale; this replica's own view remains.
      if (now - this.#lastExchange > 3 * this.#intervalMs) this.#obs.setOthers(new Map());
    }
  }

  #learnt(targetId: string, until: number, cause: string): void {
    if (!Number.isFinite(until) || !this.#obs.sharedCooldown(targetId, until)) return;
    this.stats.sharedCooldowns++;
    this.#onSharedCooldown?.(targetId);
    this.#log.warn({ target: targetId, until: new Date(until).toISOString(), cause }, "target cooling down");
  }

  #failedCall(err: unknown): void {
    this.stats.errors++;
    this.#errors.error(err);
  }
}

/**
 * The other replicas' snapshots (HGETALL pairs: replica id, JSON) summed per target: in-flight
 * counts added, latencies averaged by their (capped) sample counts. A malformed snapshot is skipped.
 */
export function mergeOthers(pairs: readonly string[], self: string): Map<string, SharedTargetView> {
  const out = new Map<string, SharedTargetView>();
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    if (pairs[i] === self) continue;
    let snapshot: LocalSnapshot;
    try {
      snapshot = JSON.parse(pairs[i + 1]!) as LocalSnapshot;
    } catch {
      continue;
    }
    if (snapshot === null || typeof snapshot !== "object") continue;
    for (const [target, v] of Object.entries(snapshot)) {
      if (!Array.isArray(v) || v.length !== 3) continue;
      const [latency, samples, inFlight] = v;
      if (latency !== null && typeof latency !== "number") continue;
      if (typeof samples !== "number" || typeof inFlight !== "number" || !(samples >= 0) || !(inFlight >= 0)) continue;
      const lat = typeof latency === "number" && Number.isFinite(latency) ? latency : undefined;
      const prev = out.get(target);
      if (prev === undefined) out.set(target, { latencyMs: samples > 0 ? lat : undefined, samples, inFlight });
      else {
        prev.latencyMs = mergeLatency(prev.latencyMs, prev.samples, samples > 0 ? lat : undefined, samples);
        prev.samples += samples;
        prev.inFlight += inFlight;
      }
    }
  }
  return out;
}
