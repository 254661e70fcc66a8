// Quota store on Redis (ioredis). Every admission and every settlement is one script call. Keys of
// one request can belong to several scopes ({c:consumer}, {t:team}, {r:route}, {g:target}, {all});
// on a single Redis node one script takes them all. (Redis Cluster would need the keys of one call
// in one slot: see README "Quotas and budgets" for the current limit.) The connection's failure
// behaviour (no offline queue, command timeout, background reconnect) is src/redis/client.ts's.
import type Redis from "ioredis";
import { createRedisClient, redisReady } from "../redis/client";
import type { Adjustment, AdmitOutcome, Check, CheckState, QuotaStore, Tally } from "./quota-store";
import { ADMIT_SCRIPT, SETTLE_SCRIPT } from "./redis-scripts";

export interface RedisStoreOptions {
  url: string;
  /** A request waits at most this long for Redis (default 200 ms). */
  commandTimeoutMs?: number;
  /** Prefix of every key (default "llmr:"); tests use one per run. */
  keyPrefix?: string;
  /** A connection to share (the service's); the store then leaves closing it to its owner. */
  client?: Redis;
}

type ScriptCall = (numKeys: number, ...args: Array<string | number>) => Promise<unknown>;

export class RedisQuotaStore implements QuotaStore {
  readonly #redis: Redis;
  readonly #owned: boolean;
  readonly prefix: string;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix ?? "llmr:";
    this.#owned = opts.client === undefined;
    this.#redis = opts.client ?? createRedisClient(opts);
    this.#redis.defineCommand("llmrAdmit", { lua: ADMIT_SCRIPT });
    this.#redis.defineCommand("llmrSettle", { lua: SETTLE_SCRIPT });
  }

  /** Resolves once connected (or rejects after timeoutMs). */
  ready(timeoutMs: number): Promise<void> {
    return redisReady(this.#redis, timeoutMs);
  }

  get connected(): boolean {
    return this.#redis.status === "ready";
  }

  async admit(checks: readonly Check[], leaseId: string, now: number): Promise<AdmitOutcome> {
    const call = (this.#redis as unknown as { llmrAdmit: ScriptCall }).llmrAdmit;
    const raw = (await call.call(this.#redis, checks.length, ...this.#keys(checks), now, leaseId, ...checks.flatMap((c) => scriptArgs(c, c.algo === "lease" ? 1 : c.cost)))) as number[];
    const refused = Number(raw[0]);
    const retryAt = Number(raw[1]);
    const states: CheckState[] = [];
    for (let i = 0; i < checks.length; i++) states.push({ remaining: Number(raw[2 + 2 * i]), resetAt: Number(raw[3 + 2 * i]) });
    return { refused: refused === 0 ? undefined : refused - 1, retryAt: retryAt < 0 ? undefined : retryAt, states };
  }

  async settle(adjustments: readonly Adjustment[], tally: Tally | undefined, leaseId: string, now: number): Promise<void> {
    const live = adjustments.filter((a) => a.check.algo === "lease" || a.delta !== 0);
    if (live.length === 0 && tally === undefined) return;
    const keys = this.#keys(live.map((a) => a.check));
    const args: Array<string | number> = [now, leaseId, live.length, ...live.flatMap((a) => scriptArgs(a.check, a.delta))];
    if (tally !== undefined) {
      keys.push(this.prefix + tally.key);
      args.push(tally.expiresAt);
      for (const [f, v] of tally.fields) args.push(f, Math.round(v));
    }
    const call = (this.#redis as unknown as { llmrSettle: ScriptCall }).llmrSettle;
    await call.call(this.#redis, keys.length, ...keys, ...args);
  }

  async ledger(key: string): Promise<Record<string, number>> {
    const raw = await this.#redis.hgetall(this.prefix + key);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  close(): Promise<void> {
    if (this.#owned) this.#redis.disconnect();
    return Promise.resolve();
  }

  #keys(checks: readonly Check[]): string[] {
    return checks.map((c) => this.prefix + c.key);
  }
}

function scriptArgs(c: Check, amount: number): Array<string | number> {
  switch (c.algo) {
    case "bucket":
      return ["b", c.limit, amount, c.periodMs];
    case "window":
      return ["w", c.limit, amount, c.endsAt];
    case "lease":
      return ["l", c.limit, amount, c.ttlMs];
  }
}
