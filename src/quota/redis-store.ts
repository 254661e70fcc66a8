// Quota store on Redis (ioredis). Keys of one request can belong to several scopes ({c:consumer},
// {t:team}, {r:route}, {g:target}, {all}); the scope is the key's hash tag. On a single node every
// admission and every settlement is one script call over all its keys: all rules charged or none.
//
// On Redis Cluster one script may only touch one slot, so the checks are grouped by hash tag and
// each group is admitted by its own script call, all in parallel (still one round trip of latency).
// When a group refuses (or fails), the groups that admitted are compensated: their charges are
// given back and their leases released. The result never admits beyond a limit; under contention
// a request refused by one group may hold another group's capacity for the moment before its
// compensation, which can refuse a concurrent request that would have fitted.
//
// The connection's failure behaviour (no offline queue, command timeout, background reconnect) is
// src/redis/client.ts's.
import { createRedisClient, hashTag, redisReady, type RedisConnection } from "../redis/client";
import type { Adjustment, AdmitOutcome, Check, CheckState, QuotaStore, Tally } from "./quota-store";
import { ADMIT_SCRIPT, SETTLE_SCRIPT } from "./redis-scripts";

export interface RedisStoreOptions {
  url: string;
  /** A request waits at most this long for Redis (default 200 ms). */
  commandTimeoutMs?: number;
  /** Prefix of every key (default "llmr:"); tests use one per run. */
  keyPrefix?: string;
  /** Redis Cluster: `url` lists seed nodes separated by commas. */
  cluster?: boolean;
  /** A connection to share (the service's); the store then leaves closing it to its owner. */
  client?: RedisConnection;
}

type ScriptCall = (numKeys: number, ...args: Array<string | number>) => Promise<unknown>;

export class RedisQuotaStore implements QuotaStore {
  readonly #redis: RedisConnection;
  readonly #owned: boolean;
  /** Keys of one script call must share a hash tag. */
  readonly #bySlot: boolean;
  readonly prefix: string;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix ?? "llmr:";
    this.#owned = opts.client === undefined;
    this.#redis = opts.client ?? createRedisClient(opts);
    this.#bySlot = this.#redis.isCluster;
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
    const groups = this.#bySlot ? groupBySlot(checks, (c) => this.prefix + c.key) : undefined;
    if (groups === undefined || groups.length <= 1) return this.#admitGroup(checks, leaseId, now);
    const results = await Promise.allSettled(groups.map((g) => this.#admitGroup(g.items, leaseId, now)));
    const states: CheckState[] = new Array<CheckState>(checks.length);
    let refused: number | undefined;
    let retryAt: number | undefined = -Infinity;
    let failure: unknown;
    results.forEach((r, gi) => {
      const g = groups[gi]!;
      if (r.status === "rejected") {
        failure ??= r.reason;
        return;
      }
      r.value.states.forEach((st, i) => (states[g.indexes[i]!] = st));
      if (r.value.refused === undefined) return;
      const at = g.indexes[r.value.refused]!;
      if (refused === undefined || at < refused) refused = at;
      // The request fits again only when every refusing group would take it.
      retryAt = r.value.retryAt === undefined || retryAt === undefined ? undefined : Math.max(retryAt, r.value.retryAt);
    });
    if (failure === undefined && refused === undefined) return { refused: undefined, retryAt: undefined, states };
    // Give back what the groups that admitted took.
    const admitted = groups.filter((_, gi) => {
      const r = results[gi]!;
      return r.status === "fulfilled" && r.value.refused === undefined;
    });
    await Promise.allSettled(admitted.map((g) => this.#settleGroup(g.items.map((c) => ({ check: c, delta: c.algo === "lease" ? 0 : -c.cost })), undefined, leaseId, now)));
    if (failure !== undefined) throw failure;
    return { refused, retryAt: retryAt === -Infinity ? undefined : retryAt, states };
  }

  async settle(adjustments: readonly Adjustment[], tally: Tally | undefined, leaseId: string, now: number): Promise<void> {
    const live = adjustments.filter((a) => a.check.algo === "lease" || a.delta !== 0);
    if (live.length === 0 && tally === undefined) return;
    if (!this.#bySlot) return this.#settleGroup(live, tally, leaseId, now);
    const groups = groupBySlot(live, (a) => this.prefix + a.check.key);
    const tallyTag = tally === undefined ? undefined : hashTag(this.prefix + tally.key);
    const withTally = groups.find((g) => g.tag === tallyTag);
    const calls = groups.map((g) => this.#settleGroup(g.items, g === withTally ? tally : undefined, leaseId, now));
    if (tally !== undefined && withTally === undefined) calls.push(this.#settleGroup([], tally, leaseId, now));
    const results = await Promise.allSettled(calls);
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  async #admitGroup(checks: readonly Check[], leaseId: string, now: number): Promise<AdmitOutcome> {
    const call = (this.#redis as unknown as { llmrAdmit: ScriptCall }).llmrAdmit;
    const raw = (await call.call(this.#redis, checks.length, ...this.#keys(checks), now, leaseId, ...checks.flatMap((c) => scriptArgs(c, c.algo === "lease" ? 1 : c.cost)))) as number[];
    const refused = Number(raw[0]);
    const retryAt = Number(raw[1]);
    const states: CheckState[] = [];
    for (let i = 0; i < checks.length; i++) states.push({ remaining: Number(raw[2 + 2 * i]), resetAt: Number(raw[3 + 2 * i]) });
    return { refused: refused === 0 ? undefined : refused - 1, retryAt: retryAt < 0 ? undefined : retryAt, states };
  }

  async #settleGroup(live: readonly Adjustment[], tally: Tally | undefined, leaseId: string, now: number): Promise<void> {
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

interface SlotGroup<T> {
  tag: string;
  items: T[];
  /** Position of each item in the caller's list. */
  indexes: number[];
}

function groupBySlot<T>(items: readonly T[], keyOf: (item: T) => string): Array<SlotGroup<T>> {
  const groups = new Map<string, SlotGroup<T>>();
  items.forEach((item, i) => {
    const tag = hashTag(keyOf(item));
    let g = groups.get(tag);
    if (g === undefined) groups.set(tag, (g = { tag, items: [], indexes: [] }));
    g.items.push(item);
    g.indexes.push(i);
  });
  return [...groups.values()];
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
