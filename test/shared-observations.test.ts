// Target observations shared between replicas through a real Redis: failures counted across
// replicas, cooldowns reaching every replica, in-flight counts and latencies merged, a silent
// replica forgotten, and a replica that loses Redis keeping its own view.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import pino from "pino";
import type { CooldownSettings } from "../src/policy/compile";
import { createRedisClient, redisReady, type RedisConnection } from "../src/redis/client";
import { LATENCY_WEIGHT_CAP, TargetObservations, mergeLatency } from "../src/routing/observations";
import { ObservationExchange, mergeOthers } from "../src/routing/shared-observations";
import { describeWithRedis } from "./support/redis";

const settings: CooldownSettings = { failures: 3, windowMs: 30_000, durationMs: 30_000, maxRetryAfterMs: 300_000 };
const silent = pino({ level: "silent" });
const fail = (o: TargetObservations, target: string, status = 503) => o.responded(target, { status, latencyMs: 5, retryAfterMs: undefined });

describe("mergeOthers", () => {
  it("sums in-flight counts and averages latencies by capped samples, skipping itself and bad snapshots", () => {
    const pairs = [
      "me",
      JSON.stringify({ a: [1000, 10, 7] }),
      "r1",
      JSON.stringify({ a: [100, 10, 2], b: [null, 0, 4] }),
      "r2",
      JSON.stringify({ a: [300, 30, 1] }),
      "r3",
      "{not json",
      "r4",
      JSON.stringify({ a: ["x", 1, 1], b: [5, -1, 1], c: [5, 1] }),
      "r5",
      "null",
    ];
    const m = mergeOthers(pairs, "me");
    assert.deepEqual(m.get("a"), { latencyMs: 250, samples: 40, inFlight: 3 });
    assert.deepEqual(m.get("b"), { latencyMs: undefined, samples: 0, inFlight: 4 });
    assert.equal(m.has("c"), false);
  });

  it("mergeLatency caps each side's weight", () => {
    assert.equal(mergeLatency(undefined, 0, 7, 1), 7);
    assert.equal(mergeLatency(7, 1, undefined, 0), 7);
    assert.equal(mergeLatency(100, 10_000, 200, LATENCY_WEIGHT_CAP), 150);
  });
});

describe("TargetObservations with a shared view", () => {
  it("adds the others' in-flight counts, merges latency, and takes the later cooldown", () => {
    let now = 1000;
    const o = new TargetObservations(() => settings, () => now);
    o.attemptStarted("a");
    o.responded("a", { status: 200, latencyMs: 100, retryAfterMs: undefined });
    o.setOthers(new Map([["a", { latencyMs: 300, samples: 1, inFlight: 5 }]]));
    assert.deepEqual(o.stats("a"), { latencyMs: 200, samples: 2, inFlight: 6, cooldownUntil: undefined, lastFailureAt: undefined });
    assert.equal(o.sharedCooldown("a", 5000), true);
    assert.equal(o.sharedCooldown("a", 4000), false, "an earlier end than known is not news");
    assert.equal(o.stats("a").cooldownUntil, 5000);
    now = 5000;
    assert.equal(o.stats("a").cooldownUntil, undefined);
    assert.equal(o.sharedCooldown("a", 4000), false, "an ended cooldown is ignored");
  });
});

describeWithRedis("shared observations on Redis", (redis) => {
  const clients: RedisConnection[] = [];
  const exchanges: ObservationExchange[] = [];
  after(async () => {
    for (const e of exchanges) await e.stop();
    for (const c of clients) c.disconnect();
  });

  /** One replica on its own connection, reporting to Redis (closed after the suite). */
  async function replica(prefix: string, replicaId: string, intervalMs: number, commandTimeoutMs = 5000) {
    const client = createRedisClient({ url: redis.url, commandTimeoutMs });
    clients.push(client);
    await redisReady(client, 5000);
    const obs = new TargetObservations(() => settings);
    const ex = new ObservationExchange({ redis: client, keyPrefix: prefix, observations: obs, intervalMs, log: silent, replicaId });
    obs.share(ex);
    exchanges.push(ex);
    return { obs, ex, client };
  }

  /** `count` replicas on one key prefix; exchanges run by hand (interval far away) unless started. */
  async function replicas(count: number, intervalMs = 60_000) {
    const prefix = redis.prefix();
    const out: Array<{ obs: TargetObservations; ex: ObservationExchange }> = [];
    for (let i = 0; i < count; i++) out.push(await replica(prefix, `r${i}`, intervalMs));
    return out;
  }

  const settle = () => new Promise((r) => setTimeout(r, 100));

  it("counts failures across replicas: two on one and one on the other cool the target down on both", async () => {
    const [a, b] = await replicas(2);
    fail(a!.obs, "t");
    fail(a!.obs, "t");
    await settle();
    assert.equal(a!.obs.stats("t").cooldownUntil, undefined);
    fail(b!.obs, "t");
    await settle();
    assert.ok(b!.obs.stats("t").cooldownUntil! > Date.now(), "the replica whose failure reached the threshold learns it from the script");
    assert.equal(a!.obs.stats("t").cooldownUntil, undefined, "the other one at its next exchange");
    await a!.ex.exchange();
    const until = a!.obs.stats("t").cooldownUntil;
    assert.ok(until !== undefined && Math.abs(until - (Date.now() + settings.durationMs)) < 5000, `cooldown ends ~30 s from now (${until})`);
    assert.equal(a!.ex.stats.sharedCooldowns, 1);
  });

  it("a 429 with retry-after on one replica cools the target on the other", async () => {
    const [a, b] = await replicas(2);
    a!.obs.responded("t", { status: 429, latencyMs: 1, retryAfterMs: 20_000 });
    await settle();
    await b!.ex.exchange();
    const until = b!.obs.stats("t").cooldownUntil;
    assert.ok(until !== undefined && until > Date.now() + 15_000, `cooling ~20 s (${until})`);
    assert.equal(b!.obs.stats("other").cooldownUntil, undefined);
  });

  it("merges the other replicas' in-flight attempts and latencies", async () => {
    const [a, b, c] = await replicas(3);
    for (let i = 0; i < 4; i++) a!.obs.attemptStarted("t");
    a!.obs.responded("t", { status: 200, latencyMs: 100, retryAfterMs: undefined });
    b!.obs.attemptStarted("t");
    b!.obs.responded("t", { status: 200, latencyMs: 300, retryAfterMs: undefined });
    await a!.ex.exchange();
    await b!.ex.exchange();
    await c!.ex.exchange();
    await a!.ex.exchange();
    assert.deepEqual(c!.obs.stats("t"), { latencyMs: 200, samples: 2, inFlight: 5, cooldownUntil: undefined, lastFailureAt: undefined });
    assert.equal(a!.obs.stats("t").inFlight, 5, "its own 4 plus the other's 1, not itself twice");
    for (let i = 0; i < 4; i++) a!.obs.attemptEnded("t");
    await a!.ex.exchange();
    await c!.ex.exchange();
    assert.equal(c!.obs.stats("t").inFlight, 1);
  });

  it("forgets a replica that stopped exchanging", async () => {
    const [a, b] = await replicas(2, 100);
    for (let i = 0; i < 3; i++) a!.obs.attemptStarted("t");
    await a!.ex.exchange();
    await b!.ex.exchange();
    assert.equal(b!.obs.stats("t").inFlight, 3);
    // a is gone (no more exchanges); past three intervals b's exchange drops its snapshot.
    await new Promise((r) => setTimeout(r, 400));
    await b!.ex.exchange();
    assert.equal(b!.obs.stats("t").inFlight, 0);
  });

  it("runs on its own timer once started, and stops", async () => {
    const [a, b] = await replicas(2, 50);
    a!.obs.attemptStarted("t");
    a!.ex.start();
    b!.ex.start();
    const deadline = Date.now() + 3000;
    while (b!.obs.stats("t").inFlight !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(b!.obs.stats("t").inFlight, 1);
    await a!.ex.stop();
    await b!.ex.stop();
    const n = b!.ex.stats.exchanges;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(b!.ex.stats.exchanges, n, "no exchange after stop");
  });

  it("without Redis a replica keeps its own view, drops the others' stale figures and keeps learnt cooldowns", async () => {
    const prefix = redis.prefix();
    const { obs: peer, ex: peerEx } = await replica(prefix, "peer", 60_000);
    peer.attemptStarted("t");
    peer.responded("u", { status: 429, latencyMs: 1, retryAfterMs: 60_000 });
    await settle();
    await peerEx.exchange();

    const { obs, ex, client } = await replica(prefix, "me", 50, 300);
    await ex.exchange();
    assert.equal(obs.stats("t").inFlight, 1);
    assert.ok(obs.stats("u").cooldownUntil !== undefined);

    client.disconnect(); // Redis "goes away" for this replica
    fail(obs, "v");
    fail(obs, "v");
    fail(obs, "v");
    assert.ok(obs.stats("v").cooldownUntil !== undefined, "local counting still cools a target down");
    await new Promise((r) => setTimeout(r, 200));
    await ex.exchange();
    assert.ok(ex.stats.errors >= 1);
    assert.equal(obs.stats("t").inFlight, 0, "others' in-flight figures are dropped once stale");
    assert.ok(obs.stats("u").cooldownUntil !== undefined, "a learnt cooldown runs to its end");
  });
});
