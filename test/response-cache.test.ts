// The response cache below the router phase: which requests are cacheable and under which key
// (pure, table tests), the stores (one case table run against memory and a real Redis), and the
// stampede protection of ResponseCache (waiting, taking over, timing out, store failures).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, it } from "node:test";
import pino from "pino";
import type { Operation } from "../src/api/operations";
import { cacheKey, cacheMode, canonicalBody } from "../src/cache/cache-key";
import { MemoryCacheStore, type CachedAnswer, type CacheStore } from "../src/cache/cache-store";
import { decodeAnswer, encodeAnswer, RedisCacheStore } from "../src/cache/redis-cache-store";
import { ResponseCache } from "../src/cache/response-cache";
import type { CompiledConsumer, CompiledRouteCache } from "../src/policy/compile";
import { createRedisClient, redisReady } from "../src/redis/client";
import { describeWithRedis, freePort } from "./support/redis";

const silent = pino({ level: "silent" });
const consumer = (id: string, team?: string): CompiledConsumer => ({ id, team, labels: {}, allowRoutes: undefined, allowModels: undefined });
const settings = (scope: CompiledRouteCache["scope"]): CompiledRouteCache => ({ ttlMs: 60_000, scope, maxEntryBytes: 1 << 20, coalesceWaitMs: 1000 });
const answer = (text: string, storedAt = 1): CachedAnswer => ({ body: Buffer.from(text), contentType: "application/json", target: "openai-gpt-4o", storedAt });

describe("cacheMode", () => {
  const cases: Array<[string, Operation, Record<string, unknown>, string | undefined, string]> = [
    ["plain chat", "chat.completions", { model: "m" }, undefined, "lookup"],
    ["stream: false", "chat.completions", { model: "m", stream: false }, undefined, "lookup"],
    ["streams are not cached", "chat.completions", { model: "m", stream: true }, undefined, "bypass"],
    ["messages", "messages", { model: "m" }, undefined, "lookup"],
    ["embeddings", "embeddings", { model: "m" }, undefined, "lookup"],
    ["completions", "completions", { model: "m" }, undefined, "lookup"],
    ["the Responses API is stateful", "responses", { model: "m" }, undefined, "bypass"],
    ["no-cache: go upstream, store the answer", "chat.completions", { model: "m" }, "no-cache", "refresh"],
    ["no-store wins over no-cache", "chat.completions", { model: "m" }, "No-Cache, NO-STORE", "bypass"],
    ["other directives are ignored", "chat.completions", { model: "m" }, "max-age=0", "lookup"],
  ];
  for (const [name, op, body, cc, want] of cases) it(name, () => assert.equal(cacheMode(op, body, cc), want));
});

describe("cacheKey", () => {
  const alice = consumer("alice", "research");
  const key = (body: Record<string, unknown>, opts: { scope?: CompiledRouteCache["scope"]; who?: CompiledConsumer; op?: Operation; av?: string; route?: string } = {}) =>
    cacheKey(settings(opts.scope ?? "consumer"), opts.route ?? "fast", opts.who ?? alice, opts.op ?? "chat.completions", body, opts.av);
  const base = { model: "m", messages: [{ role: "user", content: "hi" }], temperature: 0 };

  it("ignores key order, whitespace and number spelling", () => {
    const reordered = JSON.parse('{ "temperature" : 0.0, "messages":[{"content":"hi","role":"user"}], "model":"m" }') as Record<string, unknown>;
    assert.equal(key(reordered), key(base));
    assert.equal(canonicalBody(reordered), '{"messages":[{"content":"hi","role":"user"}],"model":"m","temperature":0}');
  });
  it("treats stream: false as absent and leaves stream_options out", () => {
    assert.equal(key({ ...base, stream: false, stream_options: { include_usage: true } }), key(base));
  });
  it("tells apart anything else that can change the answer", () => {
    const k = key(base);
    assert.notEqual(key({ ...base, temperature: 1 }), k);
    assert.notEqual(key({ ...base, messages: [{ role: "user", content: "hi!" }] }), k);
    assert.notEqual(key({ ...base, messages: [{ content: "hi", role: "user", name: "x" }] }), k);
    assert.notEqual(key(base, { op: "completions" }), k);
    assert.notEqual(key(base, { av: "2023-06-01" }), k);
    assert.notEqual(key(base, { route: "smart" }), k);
    assert.notEqual(key({ ...base, n: 2 }), k);
  });
  it("scopes answers to the consumer, the team, or everyone", () => {
    const bob = consumer("bob", "research");
    const loner = consumer("carol");
    assert.notEqual(key(base, { who: bob }), key(base));
    assert.equal(key(base, { scope: "team", who: bob }), key(base, { scope: "team" }));
    assert.notEqual(key(base, { scope: "team", who: loner }), key(base, { scope: "team" }), "no team: nothing shared");
    assert.equal(key(base, { scope: "all", who: loner }), key(base, { scope: "all" }));
    assert.match(key(base), /^cache:c=alice:fast:[A-Za-z0-9_-]{43}$/);
    assert.doesNotMatch(key(base), /[{}]/, "no Redis hash tag: entries spread over cluster slots");
  });
});

describe("encoded answers", () => {
  it("round-trip binary bodies and reject foreign values", () => {
    const a: CachedAnswer = { body: Buffer.from([0, 1, 2, 255, 10]), contentType: "application/json; charset=utf-8", target: "t", storedAt: 1234 };
    assert.deepEqual(decodeAnswer(encodeAnswer(a)), a);
    assert.equal(decodeAnswer(Buffer.from("hello")), undefined);
    assert.equal(decodeAnswer(Buffer.from([0, 0, 0, 3, 0x7b, 0x7d, 0x7d])), undefined);
  });
});

type StoreCase = (s: CacheStore) => Promise<void>;
const STORE_CASES: Record<string, StoreCase> = {
  "an answer stored is read back whole": async (s) => {
    assert.equal(await s.get("k1"), undefined);
    await s.set("k1", answer('{"id":"x"}', 42), 60_000);
    assert.deepEqual(await s.get("k1"), answer('{"id":"x"}', 42));
  },
  "a second store replaces the first": async (s) => {
    await s.set("k2", answer("one"), 60_000);
    await s.set("k2", answer("two"), 60_000);
    assert.equal((await s.get("k2"))?.body.toString(), "two");
  },
  "a claim is exclusive until released by its holder": async (s) => {
    assert.equal(await s.claim("k3", "a", 60_000), true);
    assert.equal(await s.claim("k3", "b", 60_000), false);
    await s.release("k3", "b");
    assert.equal(await s.claim("k3", "c", 60_000), false, "a non-holder cannot release");
    await s.release("k3", "a");
    assert.equal(await s.claim("k3", "c", 60_000), true);
  },
  "answers and claims expire": async (s) => {
    await s.set("k4", answer("x"), 40);
    assert.equal(await s.claim("k4", "a", 40), true);
    await sleep(80);
    assert.equal(await s.get("k4"), undefined);
    assert.equal(await s.claim("k4", "b", 40), true);
  },
};

function runStoreCases(name: string, make: () => Promise<CacheStore>): void {
  describe(name, () => {
    for (const [title, run] of Object.entries(STORE_CASES)) {
      it(title, async () => {
        const s = await make();
        try {
          await run(s);
        } finally {
          await s.close();
        }
      });
    }
  });
}

runStoreCases("memory cache store", () => Promise.resolve(new MemoryCacheStore(1 << 20)));

describe("memory cache store bounds", () => {
  it("evicts the least recently used answers to stay within its bytes", async () => {
    const s = new MemoryCacheStore(3 * (1000 + 300));
    const big = (c: string) => answer(c.repeat(1000));
    await s.set("a", big("a"), 60_000);
    await s.set("b", big("b"), 60_000);
    await s.set("c", big("c"), 60_000);
    assert.equal(s.size, 3);
    await s.get("a"); // a is now the most recently used
    await s.set("d", big("d"), 60_000);
    assert.equal(await s.get("b"), undefined, "b was the least recently used");
    assert.ok(await s.get("a"));
    assert.ok(await s.get("d"));
    assert.ok(s.bytes <= s.maxBytes);
    assert.equal(s.evictions, 1);
  });
  it("does not keep an answer larger than the whole budget", async () => {
    const s = new MemoryCacheStore(500);
    await s.set("a", answer("x".repeat(1000)), 60_000);
    assert.equal(s.size, 0);
    assert.equal(s.bytes, 0);
  });
  it("expires by its clock", async () => {
    let now = 1000;
    const s = new MemoryCacheStore(1 << 20, () => now);
    await s.set("a", answer("x"), 500);
    now = 1499;
    assert.ok(await s.get("a"));
    now = 1500;
    assert.equal(await s.get("a"), undefined);
    assert.equal(s.bytes, 0);
  });
});

describe("ResponseCache stampede protection (memory store)", () => {
  const make = () => new ResponseCache(new MemoryCacheStore(1 << 20), silent);

  it("identical requests wait for the first one's answer", async () => {
    const cache = make();
    const first = await cache.lookup("k", { read: true, waitMs: 5000, onWait: () => assert.fail("the first does not wait") });
    assert.equal(first.kind, "miss");
    let waited = 0;
    const others = Array.from({ length: 5 }, () => cache.lookup("k", { read: true, waitMs: 5000, onWait: () => waited++ }));
    await sleep(30);
    assert.equal(waited, 5, "each waiter asked Envoy for more time once");
    const t0 = Date.now();
    if (first.kind === "miss") await first.fill.store(answer("A"), 60_000);
    const results = await Promise.all(others);
    assert.ok(Date.now() - t0 < 100, "waiters in this process are woken at once");
    for (const r of results) {
      assert.equal(r.kind, "hit");
      if (r.kind === "hit") {
        assert.equal(r.answer.body.toString(), "A");
        assert.equal(r.coalesced, true);
      }
    }
    assert.deepEqual({ hits: cache.stats.hits, coalesced: cache.stats.coalescedHits, misses: cache.stats.misses, fills: cache.stats.fills }, { hits: 5, coalesced: 5, misses: 1, fills: 1 });
  });

  it("when the first one fails, one waiter takes over and the others wait for it", async () => {
    const cache = make();
    const first = await cache.lookup("k", { read: true, waitMs: 5000, onWait: () => undefined });
    const others = Array.from({ length: 3 }, () => cache.lookup("k", { read: true, waitMs: 5000, onWait: () => undefined }));
    await sleep(30);
    if (first.kind === "miss") await first.fill.abandon();
    const settled: Array<Awaited<(typeof others)[number]>> = [];
    others.forEach((p) => void p.then((r) => settled.push(r)));
    await sleep(100);
    assert.equal(settled.length, 1, "one waiter took the claim over");
    const taker = settled[0]!;
    assert.equal(taker.kind, "miss");
    if (taker.kind === "miss") await taker.fill.store(answer("B"), 60_000);
    const rest = await Promise.all(others);
    assert.equal(rest.filter((r) => r.kind === "hit").length, 2);
  });

  it("a wait that runs out goes upstream without the claim", async () => {
    const cache = make();
    const first = await cache.lookup("k", { read: true, waitMs: 150, onWait: () => undefined });
    const t0 = Date.now();
    const late = await cache.lookup("k", { read: true, waitMs: 150, onWait: () => undefined });
    const waited = Date.now() - t0;
    assert.equal(late.kind, "miss");
    assert.ok(waited >= 140 && waited < 1000, `waited ${waited} ms`);
    assert.equal(cache.stats.waitTimeouts, 1);
    // Both may store; the answer is the same request's.
    if (late.kind === "miss") await late.fill.store(answer("late"), 60_000);
    if (first.kind === "miss") await first.fill.store(answer("first"), 60_000);
    const hit = await cache.lookup("k", { read: true, waitMs: 150, onWait: () => undefined });
    assert.equal(hit.kind, "hit");
  });

  it("waitMs 0 never waits: every miss goes upstream", async () => {
    const cache = make();
    const a = await cache.lookup("k", { read: true, waitMs: 0, onWait: () => assert.fail() });
    const b = await cache.lookup("k", { read: true, waitMs: 0, onWait: () => assert.fail() });
    assert.equal(a.kind, "miss");
    assert.equal(b.kind, "miss");
  });

  it("read: false (no-cache) skips the stored answer but refreshes it", async () => {
    const cache = make();
    await cache.store.set("k", answer("old"), 60_000);
    const r = await cache.lookup("k", { read: false, waitMs: 1000, onWait: () => undefined });
    assert.equal(r.kind, "miss");
    if (r.kind === "miss") await r.fill.store(answer("new"), 60_000);
    assert.equal((await cache.store.get("k"))?.body.toString(), "new");
  });
});

describe("ResponseCache with an unreachable Redis", () => {
  it("answers misses, never throws, and counts the errors", async () => {
    const redis = createRedisClient({ url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 100 });
    try {
      const cache = new ResponseCache(new RedisCacheStore(redis, "llmr-test:"), silent);
      const r = await cache.lookup("k", { read: true, waitMs: 1000, onWait: () => assert.fail("nothing to wait for") });
      assert.equal(r.kind, "miss");
      if (r.kind === "miss") await r.fill.store(answer("x"), 60_000);
      assert.ok(cache.stats.storeErrors >= 1);
    } finally {
      redis.disconnect();
    }
  });
});

describeWithRedis("redis cache store", (redis) => {
  const clients: Array<ReturnType<typeof createRedisClient>> = [];
  const client = async () => {
    const c = createRedisClient({ url: redis.url, commandTimeoutMs: 2000 });
    await redisReady(c, 2000);
    clients.push(c);
    return c;
  };
  after(() => {
    for (const c of clients) c.disconnect();
  });
  runStoreCases("same cases as memory", async () => new RedisCacheStore(await client(), redis.prefix()));

  it("a request on one replica waits for the identical request upstream on another", async () => {
    const prefix = redis.prefix();
    const a = new ResponseCache(new RedisCacheStore(await client(), prefix), silent);
    const b = new ResponseCache(new RedisCacheStore(await client(), prefix), silent);
    const first = await a.lookup("k", { read: true, waitMs: 5000, onWait: () => assert.fail() });
    assert.equal(first.kind, "miss");
    let waited = 0;
    const second = b.lookup("k", { read: true, waitMs: 5000, onWait: () => waited++ });
    await sleep(100);
    assert.equal(waited, 1);
    if (first.kind === "miss") await first.fill.store(answer("shared"), 60_000);
    const r = await second;
    assert.equal(r.kind, "hit");
    if (r.kind === "hit") assert.equal(r.answer.body.toString(), "shared");
    assert.equal(b.stats.coalescedHits, 1);
  });
});
