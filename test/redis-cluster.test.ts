// Quotas and the response cache on a real Redis Cluster (three primaries started for the suite).
// One request's rules can live in several slots ({c:consumer}, {t:team}, {all}); each slot group is
// admitted by its own script, and a refusal in one group gives back what the others took.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RedisQuotaStore } from "../src/quota/redis-store";
import type { BucketCheck, LeaseCheck } from "../src/quota/quota-store";
import { hashTag } from "../src/redis/client";
import { examplePolicy } from "./support/service";
import { describeWithRedisCluster } from "./support/redis";
import { startStack, type Doc, type Stack } from "./support/stack";

// Noon tomorrow (UTC), from the real clock: Redis expires keys at real times.
const T0 = (() => {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 12);
})();
const rpm = (key: string, limit: number): BucketCheck => ({ rule: key, kind: "requests_per_minute", key, limit, cost: 1, algo: "bucket", periodMs: 60_000 });
const tpm = (key: string, limit: number, cost: number): BucketCheck => ({ rule: key, kind: "tokens_per_minute", key, limit, cost, algo: "bucket", periodMs: 60_000 });
const lease = (key: string, limit: number): LeaseCheck => ({ rule: key, kind: "concurrent", key, limit, algo: "lease", ttlMs: 60_000 });

describe("hashTag", () => {
  const cases: Array<[string, string]> = [
    ["llmr:{c:alice}:r:rpm", "c:alice"],
    ["llmr:{all}:r:rpm", "all"],
    ["{}x{y}", "{}x{y}"],
    ["a{b", "a{b"],
    ["a{b}{c}", "b"],
    ["plain", "plain"],
  ];
  for (const [key, tag] of cases) it(`${key} -> ${tag}`, () => assert.equal(hashTag(key), tag));
});

describeWithRedisCluster("Redis Cluster", (cluster) => {
  describe("quota store across slots", () => {
    const stores: RedisQuotaStore[] = [];
    let n = 0;
    const make = async () => {
      const s = new RedisQuotaStore({ url: cluster().url, cluster: true, keyPrefix: `llmr-test${n++}:`, commandTimeoutMs: 5000 });
      await s.ready(5000);
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });

    it("admits a request whose rules span three slots, charging each", async () => {
      const s = await make();
      const checks = [rpm("{c:alice}:a", 10), tpm("{t:research}:b", 1000, 300), rpm("{all}:c", 5)];
      const out = await s.admit(checks, "l1", T0);
      assert.equal(out.refused, undefined);
      assert.deepEqual(out.states.map((st) => st.remaining), [9, 700, 4]);
    });

    it("a refusal in one slot gives back what the other slots took, leases included", async () => {
      const s = await make();
      const consumer = rpm("{c:bob}:rpm", 100);
      const slot = lease("{c:bob}:conc", 1);
      const team = rpm("{t:research}:rpm", 1);
      assert.equal((await s.admit([consumer, team], "a", T0)).refused, undefined);
      const refused = await s.admit([consumer, slot, team], "b", T0);
      assert.equal(refused.refused, 2, "the team rule refused");
      assert.equal(refused.retryAt, T0 + 60_000);
      // The consumer bucket lost only the first request, and the lease slot is free again.
      const probe = await s.admit([consumer, slot], "c", T0);
      assert.equal(probe.refused, undefined);
      assert.deepEqual(probe.states.map((st) => st.remaining), [98, 0]);
    });

    it("settlement adjusts every slot and writes the ledger with the consumer's keys", async () => {
      const s = await make();
      const own = tpm("{c:carol}:tpm", 1000, 500);
      const all = tpm("{all}:tpm", 1000, 500);
      assert.equal((await s.admit([own, all], "x", T0)).refused, undefined);
      await s.settle([{ check: own, delta: -400 }, { check: all, delta: -400 }], { key: "{c:carol}:usage:d20261121", fields: [["requests", 1], ["input_tokens", 100]], expiresAt: T0 + 86_400_000 }, "x", T0);
      const after = await s.admit([tpm("{c:carol}:tpm", 1000, 1), tpm("{all}:tpm", 1000, 1)], "y", T0);
      assert.deepEqual(after.states.map((st) => st.remaining), [899, 899]);
      assert.deepEqual(await s.ledger("{c:carol}:usage:d20261121"), { requests: 1, input_tokens: 100 });
    });

    it("two stores, 500 concurrent requests, rules in two slots: exactly the limit is admitted", async () => {
      const prefix = "llmr-test-race:";
      const a = new RedisQuotaStore({ url: cluster().url, cluster: true, keyPrefix: prefix, commandTimeoutMs: 5000 });
      const b = new RedisQuotaStore({ url: cluster().url, cluster: true, keyPrefix: prefix, commandTimeoutMs: 5000 });
      stores.push(a, b);
      await Promise.all([a.ready(5000), b.ready(5000)]);
      const checks = [rpm("{c:dave}:rpm", 100), rpm("{t:ops}:rpm", 1000)];
      const results = await Promise.all(Array.from({ length: 500 }, (_, i) => (i % 2 ? a : b).admit(checks, `l${i}`, T0)));
      assert.equal(results.filter((r) => r.refused === undefined).length, 100);
      // The team slot kept only the admitted ones: the refused 400 were given back.
      const probe = await a.admit([rpm("{t:ops}:rpm", 1000)], "probe", T0);
      assert.equal(probe.states[0]!.remaining, 1000 - 100 - 1);
    });
  });

  describe("the service on a cluster", () => {
    const doc = examplePolicy() as Doc;
    (doc as Record<string, unknown>).limits = {
      rules: [
        { name: "alice-rpm", per: "consumer", match: { consumers: ["alice"] }, requestsPerMinute: 3 },
        { name: "team-tokens", per: "team", tokensPerDay: 1_000_000 },
      ],
    };
    for (const r of doc.routes) if (r.name === "fast") r.cache = { ttl: "1m" };
    let s: Stack;
    before(async () => {
      s = await startStack(doc, { redisUrl: cluster().url, redisCluster: true, redisKeyPrefix: "llmr-e2e:", redisTimeoutMs: 5000 });
    });
    after(() => s.close());

    it("enforces rules that span slots and serves cache hits", async () => {
      const send = () => s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", authorization: "Bearer sk-demo-alice" }, body: JSON.stringify({ model: "fast", messages: [{ role: "user", content: "hello cluster" }] }) });
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await send());
      assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 429]);
      assert.deepEqual(results.slice(0, 3).map((r) => r.headers["x-llm-cache"]), ["miss", "hit", "hit"]);
      assert.equal(results[3]!.headers["x-llm-router-limit"], "alice-rpm");
      assert.equal(s.openai.requests.length, 1);
      assert.equal(s.svc.quota.stats.storeErrors, 0);
      assert.equal(s.svc.cache.stats.storeErrors, 0);
    });
  });
});
