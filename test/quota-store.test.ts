// One table of quota cases run against both stores: the in-memory store and the Redis store (real
// Redis, see support/redis.ts). The Lua scripts and the JS must agree to the unit.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { MemoryQuotaStore, type BucketCheck, type LeaseCheck, type QuotaStore, type WindowCheck } from "../src/quota/quota-store";
import { RedisQuotaStore } from "../src/quota/redis-store";
import { describeWithRedis } from "./support/redis";

// Tomorrow (UTC), from the real clock: Redis expires keys at real times, so a fixed date would turn
// every window into an already-expired one once it has passed.
const DAY_START = (() => {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
})();
const T0 = DAY_START + 12 * 3600_000;
const DAY_END = DAY_START + 24 * 3600_000;

const bucket = (key: string, limit: number, cost: number): BucketCheck => ({ rule: "r", kind: cost === 1 ? "requests_per_minute" : "tokens_per_minute", key, limit, cost, algo: "bucket", periodMs: 60_000 });
const window = (key: string, limit: number, cost: number): WindowCheck => ({ rule: "r", kind: "tokens_per_day", key, limit, cost, algo: "window", endsAt: DAY_END });
const lease = (key: string, limit: number, ttlMs = 60_000): LeaseCheck => ({ rule: "r", kind: "concurrent", key, limit, algo: "lease", ttlMs });

type Case = (store: QuotaStore) => Promise<void>;

const CASES: Record<string, Case> = {
  "a request bucket admits its limit at once, then one more per refill interval": async (s) => {
    const c = bucket("rpm", 3, 1);
    for (let i = 0; i < 3; i++) assert.equal((await s.admit([c], `l${i}`, T0)).refused, undefined);
    const refused = await s.admit([c], "l3", T0);
    assert.equal(refused.refused, 0);
    assert.equal(refused.retryAt, T0 + 20_000, "one request refills in 60 s / 3");
    assert.equal((await s.admit([c], "l4", T0 + 19_999)).refused, 0);
    const ok = await s.admit([c], "l5", T0 + 20_000);
    assert.equal(ok.refused, undefined);
    assert.deepEqual(ok.states, [{ remaining: 0, resetAt: T0 + 20_000 + 60_000 }]);
  },
  "a token bucket is settled to the real usage: unused tokens come back": async (s) => {
    const c = bucket("tpm", 1000, 600);
    const first = await s.admit([c], "a", T0);
    assert.deepEqual(first.states, [{ remaining: 400, resetAt: T0 + 36_000 }]);
    const second = await s.admit([c], "b", T0);
    assert.equal(second.refused, 0);
    assert.equal(second.retryAt, T0 + 12_000, "200 missing tokens at 1000/min");
    await s.settle([{ check: c, delta: 100 - 600 }], undefined, "a", T0);
    assert.equal((await s.admit([c], "c", T0)).refused, undefined, "400 + 500 returned >= 600");
  },
  "an overrun leaves a debt that delays later requests": async (s) => {
    const c = bucket("tpm-debt", 1000, 500);
    await s.admit([c], "a", T0);
    await s.settle([{ check: c, delta: 1500 - 500 }], undefined, "a", T0);
    const r = await s.admit([{ ...c, cost: 100 }], "b", T0);
    assert.equal(r.refused, 0);
    assert.equal(r.retryAt, T0 + 36_000, "level -500: 600 tokens to refill before 100 fit");
    assert.deepEqual(r.states, [{ remaining: 0, resetAt: T0 + 90_000 }]);
  },
  "a bucket never refills above its limit": async (s) => {
    const c = bucket("cap", 10, 10);
    await s.admit([c], "a", T0);
    await s.settle([{ check: c, delta: -10 }], undefined, "a", T0 + 3_600_000);
    const r = await s.admit([{ ...c, cost: 11 }], "b", T0 + 3_600_000);
    assert.equal(r.refused, 0);
    assert.equal(r.retryAt, undefined, "a cost above the limit can never pass");
  },
  "a calendar window counts until its end and settles in place": async (s) => {
    const c = window("tpd:d20261121", 100, 60);
    const a = await s.admit([c], "a", T0);
    assert.deepEqual(a.states, [{ remaining: 40, resetAt: DAY_END }]);
    const b = await s.admit([{ ...c, cost: 50 }], "b", T0);
    assert.equal(b.refused, 0);
    assert.equal(b.retryAt, DAY_END);
    await s.settle([{ check: c, delta: 30 - 60 }], undefined, "a", T0);
    const again = await s.admit([{ ...c, cost: 50 }], "c", T0);
    assert.deepEqual(again.states, [{ remaining: 20, resetAt: DAY_END }]);
  },
  "a settlement never takes a window below zero": async (s) => {
    const c = window("tpd-floor:d20261121", 100, 10);
    await s.admit([c], "a", T0);
    await s.settle([{ check: c, delta: -50 }], undefined, "a", T0);
    assert.deepEqual((await s.admit([{ ...c, cost: 100 }], "b", T0)).states, [{ remaining: 0, resetAt: DAY_END }]);
  },
  "leases hold a slot until released or expired": async (s) => {
    const c = lease("cc", 2, 10_000);
    assert.equal((await s.admit([c], "a", T0)).refused, undefined);
    const second = await s.admit([c], "b", T0);
    assert.deepEqual(second.states, [{ remaining: 0, resetAt: T0 }]);
    const third = await s.admit([c], "c", T0);
    assert.equal(third.refused, 0);
    assert.equal(third.retryAt, T0 + 1000);
    await s.settle([{ check: c, delta: 0 }], undefined, "a", T0);
    assert.equal((await s.admit([c], "c", T0)).refused, undefined, "released slot");
    assert.equal((await s.admit([c], "d", T0 + 10_001)).refused, undefined, "expired slots (b, c) free up");
  },
  "admission is all or nothing": async (s) => {
    const ok = bucket("aon-b", 10, 5);
    const full = window("aon-w:d20261121", 10, 11);
    const r = await s.admit([ok, full], "a", T0);
    assert.equal(r.refused, 1);
    assert.deepEqual(r.states[0], { remaining: 10, resetAt: T0 }, "the bucket was not charged");
    const l = lease("aon-l", 1);
    assert.equal((await s.admit([l, full], "b", T0)).refused, 1);
    assert.equal((await s.admit([l], "c", T0)).refused, undefined, "the lease was not taken");
  },
  "the ledger adds up usage": async (s) => {
    const tally = (n: number) => ({ key: "ledger", fields: [["requests", 1], ["nano_usd", n]] as Array<[string, number]>, expiresAt: DAY_END });
    await s.settle([], tally(2_500_000), "a", T0);
    await s.settle([], tally(7_500_001), "b", T0);
    assert.deepEqual(await s.ledger("ledger"), { requests: 2, nano_usd: 10_000_001 });
  },
};

function runCases(name: string, make: () => QuotaStore | Promise<QuotaStore>): void {
  describe(name, () => {
    for (const [title, run] of Object.entries(CASES)) {
      it(title, async () => {
        const store = await make();
        try {
          await run(store);
        } finally {
          await store.close();
        }
      });
    }
  });
}

runCases("memory quota store", () => new MemoryQuotaStore());

describeWithRedis("redis quota store", (redis) => {
    const stores: RedisQuotaStore[] = [];
    const make = async () => {
      const s = new RedisQuotaStore({ url: redis.url, keyPrefix: redis.prefix() });
      await s.ready(2000);
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });
    runCases("same cases as memory", make);

    it("two stores on one Redis admit exactly the limit among 500 concurrent requests", async () => {
      const prefix = redis.prefix();
      const a = new RedisQuotaStore({ url: redis.url, keyPrefix: prefix, commandTimeoutMs: 5000 });
      const b = new RedisQuotaStore({ url: redis.url, keyPrefix: prefix, commandTimeoutMs: 5000 });
      await Promise.all([a.ready(2000), b.ready(2000)]);
      try {
        const c = bucket("rpm", 100, 1);
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => (i % 2 ? a : b).admit([c], `l${i}`, T0)));
        assert.equal(results.filter((r) => r.refused === undefined).length, 100);
      } finally {
        await a.close();
        await b.close();
      }
    });
});
