// What a quota store does, and the in-memory store (one replica, or a replica's fallback while
// Redis is unreachable). The Redis store (redis-store.ts) runs the same arithmetic in Lua
// (redis-scripts.ts); test/quota-store.test.ts runs one table of cases against both.
//
// Three algorithms:
// - bucket: a token bucket of `limit` units refilled continuously over `periodMs` (bursts up to
//   the limit). Settlement adds back what a reservation did not use, or takes what it overran
//   (the level may go below zero: the debt delays later requests).
// - window: a counter for one calendar window (its key names the window), reset by starting a new
//   key. Settlement adjusts the counter of the window the request was admitted in.
// - lease: a set of in-flight request ids, each with an expiry (a crashed replica's leases lapse).
import type { LimitKind } from "./limit-kinds";

interface CheckBase {
  /** Rule name and kind (for answers and logs; stores ignore them). */
  rule: string;
  kind: LimitKind;
  key: string;
  /** In units: requests, tokens, nano-dollars, slots. */
  limit: number;
}

export type BucketCheck = CheckBase & { algo: "bucket"; cost: number; periodMs: number };
export type WindowCheck = CheckBase & { algo: "window"; cost: number; endsAt: number };
export type LeaseCheck = CheckBase & { algo: "lease"; ttlMs: number };
export type Check = BucketCheck | WindowCheck | LeaseCheck;

export interface CheckState {
  /** Units left after this admission (or before it, for the check that refused). */
  remaining: number;
  /** Unix ms when the counter is back to its full limit. */
  resetAt: number;
}

export interface AdmitOutcome {
  /** Index of the first check that refused; undefined when admitted (then every check was charged). */
  refused: number | undefined;
  /** When the refused check could admit this request (unix ms); undefined: never (cost over the limit). */
  retryAt: number | undefined;
  states: CheckState[];
}

/** A settlement: `delta` = used - reserved for buckets and windows; leases are released. */
export interface Adjustment {
  check: Check;
  delta: number;
}

/** Usage added to a ledger hash (per consumer and UTC day): field -> amount. */
export interface Tally {
  key: string;
  fields: ReadonlyArray<readonly [string, number]>;
  expiresAt: number;
}

export interface QuotaStore {
  /** Evaluates every check; charges all of them or none. One round trip for remote stores. */
  admit(checks: readonly Check[], leaseId: string, now: number): Promise<AdmitOutcome>;
  /** Settles a request's checks and adds its usage to the ledger. One round trip for remote stores. */
  settle(adjustments: readonly Adjustment[], tally: Tally | undefined, leaseId: string, now: number): Promise<void>;
  /** A ledger hash (for reports and tests). */
  ledger(key: string): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** How long a refused lease check asks the client to wait: slots free up at unknown times. */
export const LEASE_RETRY_MS = 1000;

interface BucketState {
  level: number;
  at: number;
}

export class MemoryQuotaStore implements QuotaStore {
  readonly #buckets = new Map<string, BucketState>();
  readonly #windows = new Map<string, { used: number; expiresAt: number }>();
  readonly #leases = new Map<string, Map<string, number>>();
  readonly #ledgers = new Map<string, { fields: Map<string, number>; expiresAt: number }>();
  #sweptAt = 0;

  admit(checks: readonly Check[], leaseId: string, now: number): Promise<AdmitOutcome> {
    return Promise.resolve(this.admitNow(checks, leaseId, now));
  }

  settle(adjustments: readonly Adjustment[], tally: Tally | undefined, leaseId: string, now: number): Promise<void> {
    this.settleNow(adjustments, leaseId, now);
    if (tally !== undefined) {
      let l = this.#ledgers.get(tally.key);
      if (l === undefined) this.#ledgers.set(tally.key, (l = { fields: new Map(), expiresAt: tally.expiresAt }));
      for (const [f, v] of tally.fields) l.fields.set(f, (l.fields.get(f) ?? 0) + v);
    }
    return Promise.resolve();
  }

  ledger(key: string): Promise<Record<string, number>> {
    return Promise.resolve(Object.fromEntries(this.#ledgers.get(key)?.fields ?? []));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  admitNow(checks: readonly Check[], leaseId: string, now: number): AdmitOutcome {
    this.#sweep(now);
    const before: number[] = [];
    let refused: number | undefined;
    let retryAt: number | undefined;
    checks.forEach((c, i) => {
      const value = this.#current(c, now);
      before.push(value);
      if (refused !== undefined) return;
      if (c.algo === "bucket") {
        if (value < c.cost) {
          refused = i;
          retryAt = c.cost > c.limit ? undefined : now + Math.ceil(((c.cost - value) * c.periodMs) / c.limit);
        }
      } else if (c.algo === "window") {
        if (value + c.cost > c.limit) {
          refused = i;
          retryAt = c.cost > c.limit ? undefined : c.endsAt;
        }
      } else if (value + 1 > c.limit) {
        refused = i;
        retryAt = now + LEASE_RETRY_MS;
      }
    });
    const states = checks.map((c, i) => {
      const v = before[i] ?? 0;
      const charged = refused === undefined;
      if (c.algo === "bucket") {
        const level = charged ? v - c.cost : v;
        if (charged) this.#buckets.set(c.key, { level, at: now });
        return { remaining: Math.max(0, Math.floor(level)), resetAt: now + Math.ceil(((c.limit - level) * c.periodMs) / c.limit) };
      }
      if (c.algo === "window") {
        const used = charged ? v + c.cost : v;
        if (charged) this.#windows.set(c.key, { used, expiresAt: c.endsAt });
        return { remaining: Math.max(0, c.limit - used), resetAt: c.endsAt };
      }
      let held = v;
      if (charged) {
        let set = this.#leases.get(c.key);
        if (set === undefined) this.#leases.set(c.key, (set = new Map()));
        set.set(leaseId, now + c.ttlMs);
        held = set.size;
      }
      return { remaining: Math.max(0, c.limit - held), resetAt: now };
    });
    return { refused, retryAt, states };
  }

  settleNow(adjustments: readonly Adjustment[], leaseId: string, now: number): void {
    for (const { check: c, delta } of adjustments) {
      if (c.algo === "bucket") {
        if (delta === 0) continue;
        const level = Math.min(c.limit, this.#current(c, now) - delta);
        this.#buckets.set(c.key, { level, at: now });
      } else if (c.algo === "window") {
        const w = this.#windows.get(c.key);
        if (w !== undefined && delta !== 0) w.used = Math.max(0, w.used + delta);
      } else {
        this.#leases.get(c.key)?.delete(leaseId);
      }
    }
  }

  /** Bucket level refilled to now; window units used; leases held (expired ones dropped). */
  #current(c: Check, now: number): number {
    if (c.algo === "bucket") {
      const s = this.#buckets.get(c.key);
      if (s === undefined) return c.limit;
      return Math.min(c.limit, s.level + (Math.max(0, now - s.at) * c.limit) / c.periodMs);
    }
    if (c.algo === "window") return this.#windows.get(c.key)?.used ?? 0;
    const set = this.#leases.get(c.key);
    if (set === undefined) return 0;
    for (const [id, expiresAt] of set) if (expiresAt <= now) set.delete(id);
    return set.size;
  }

  /** Drops windows that ended and full buckets, once a minute, so that memory follows live keys. */
  #sweep(now: number): void {
    if (now - this.#sweptAt < 60_000) return;
    this.#sweptAt = now;
    for (const [k, w] of this.#windows) if (w.expiresAt <= now) this.#windows.delete(k);
    for (const [k, l] of this.#ledgers) if (l.expiresAt <= now) this.#ledgers.delete(k);
    for (const [k, s] of this.#buckets) if (now - s.at > 3_600_000) this.#buckets.delete(k);
    for (const [k, set] of this.#leases) {
      for (const [id, expiresAt] of set) if (expiresAt <= now) set.delete(id);
      if (set.size === 0) this.#leases.delete(k);
    }
  }
}
