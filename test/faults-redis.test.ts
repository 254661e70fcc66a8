// Fault injection on Redis, against the real service over real gRPC: a TCP proxy (test/support/
// tcp-proxy.ts) in front of a real Redis adds latency, black-holes the traffic (commands time out)
// and drops every connection then refuses new ones; and a private redis-server is killed and started
// again on its port. During each fault every quota rule follows its failMode as README "Redis
// unreachable" says (open admits and counts in memory, closed answers 503 quota_store_unavailable,
// local enforces limit / replicas in memory), requests that need no Redis keep flowing, a slow
// Redis costs a request at most the command timeout, and once Redis answers again the shared
// counters (and the response cache) are used again without restarting the service.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sum } from "./support/exposition";
import { ExtProcTestClient, immediateJson, setHeaders, type EnvoyResponse } from "./support/ext-proc-client";
import { CHAT_HEADERS, chatBody, healthyStreams, KEYS, metricSamples, responseBodyMessage, responseHeadersMessage, routeRequest, settledService, waitFor, within } from "./support/ext-proc-flows";
import { describeWithRedis, startRedisServer, type OwnRedis } from "./support/redis";
import { examplePolicy, startTestService, type TestService } from "./support/service";
import { TcpProxy } from "./support/tcp-proxy";

/** Redis command timeout of the services here (ms). */
const TIMEOUT_MS = 3000;
const DAVE = "Bearer sk-demo-dave";

/**
 * The example policy plus consumer dave, and one rule per failMode: alice open, bob closed, dave
 * local (4 a minute over 2 replicas: 2 a minute from this replica's memory during an outage).
 * ci has no rule: its requests need no Redis to be admitted.
 */
function policy(cacheFast = false) {
  const doc = examplePolicy() as ReturnType<typeof examplePolicy> & { routes: Array<Record<string, unknown>>; consumers: Array<Record<string, unknown>> };
  doc.consumers.push({ id: "dave", keySha256: ["a55ecf722458a83fbc5139aa0b92c4da10b0167783777c63beeb1aea8a92bd00"] });
  (doc as Record<string, unknown>).limits = {
    replicas: 2,
    rules: [
      { name: "alice-open", per: "consumer", match: { consumers: ["alice"] }, requestsPerMinute: 100000, failMode: "open" },
      { name: "bob-closed", per: "consumer", match: { consumers: ["bob"] }, requestsPerMinute: 100000, failMode: "closed" },
      { name: "dave-local", per: "consumer", match: { consumers: ["dave"] }, requestsPerMinute: 4, failMode: "local" },
    ],
  };
  if (cacheFast) for (const r of doc.routes) if (r.name === "fast") r.cache = { ttl: "10m" };
  return doc;
}

/** What the router phase answered a request of `key`: routed (then ended), or the refusal's status and code. */
async function ask(client: ExtProcTestClient, key: string, ms = TIMEOUT_MS + 5000): Promise<{ routed: boolean; status?: number; code?: string }> {
  const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: key }, chatBody("fast"), ms);
  const ended = r.router.status();
  r.router.end();
  await within(ended, 5000, "router stream end");
  if ("refused" in r) {
    const { status, headers } = immediateJson(r.refused);
    return { routed: false, status, code: headers["x-llm-router-error"] };
  }
  return { routed: true };
}

async function decisions(svc: TestService, rule: string): Promise<{ admitted: number; rejected: number; fail_open: number; fail_closed: number }> {
  const s = await metricSamples(svc);
  const n = (outcome: string) => sum(s, "llm_router_quota_decisions_total", { rule, outcome });
  return { admitted: n("admitted"), rejected: n("rejected"), fail_open: n("fail_open"), fail_closed: n("fail_closed") };
}

/** Polls until bob's closed rule is admitted by Redis again (no restart of the service). */
async function sharedCountersBack(svc: TestService, client: ExtProcTestClient): Promise<void> {
  await waitFor(async () => (await ask(client, KEYS.bob)).routed, 10_000, "bob's closed rule admits again once Redis answers");
  const before_ = await decisions(svc, "bob-closed");
  const beforeOpen = await decisions(svc, "alice-open");
  assert.ok((await ask(client, KEYS.bob)).routed);
  assert.ok((await ask(client, KEYS.alice)).routed);
  const after_ = await decisions(svc, "bob-closed");
  const afterOpen = await decisions(svc, "alice-open");
  assert.equal(after_.admitted - before_.admitted, 1, "decided by the shared store");
  assert.equal(after_.fail_closed - before_.fail_closed, 0);
  assert.equal(afterOpen.fail_open - beforeOpen.fail_open, 0, "alice's open rule is no longer decided in memory");
}

describeWithRedis("faults: Redis behind a TCP proxy (slow, black-holed, dropping connections)", (redis) => {
  let proxy: TcpProxy;
  let svc: TestService;
  let client: ExtProcTestClient;
  before(async () => {
    proxy = await TcpProxy.start(redis.url);
    svc = await startTestService(policy(), undefined, { redisUrl: proxy.redisUrl, redisKeyPrefix: redis.prefix(), redisTimeoutMs: TIMEOUT_MS });
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    client.close();
    await svc.stop();
    await proxy.close();
  });

  it("200 ms more per round trip (under the command timeout): every rule is still decided by Redis and nothing fails", async () => {
    proxy.latencyMs = 100; // each way
    try {
      const errors = svc.quota.stats.storeErrors;
      const before_ = await decisions(svc, "bob-closed");
      const results = await Promise.all([ask(client, KEYS.alice), ask(client, KEYS.bob), ask(client, DAVE), ask(client, KEYS.ci)]);
      assert.deepEqual(results.map((r) => r.routed), [true, true, true, true]);
      const after_ = await decisions(svc, "bob-closed");
      assert.equal(after_.admitted - before_.admitted, 1);
      assert.equal(svc.quota.stats.storeErrors, errors, "slow is not failed");
      await healthyStreams(client, 4, KEYS.ci);
    } finally {
      proxy.latencyMs = 0;
    }
    await settledService(svc);
  });

  it("black hole: streams that need no Redis keep flowing; the others wait at most the command timeout, then follow their failMode; healing restores Redis", async () => {
    const before_ = { alice: await decisions(svc, "alice-open"), dave: await decisions(svc, "dave-local") };
    proxy.blackhole();
    try {
      // Every request that needs Redis waits for it at once...
      let answered = 0;
      const waiting = [ask(client, KEYS.bob), ask(client, KEYS.alice), ask(client, DAVE), ask(client, DAVE), ask(client, DAVE)].map((p) => p.finally(() => answered++));
      // ...while ci's requests, which need none, complete (the command timeout is 3 s).
      await healthyStreams(client, 4, KEYS.ci);
      assert.equal(answered, 0, "the admissions are still waiting for Redis");
      const [closed, open, ...local] = await within(Promise.all(waiting), TIMEOUT_MS + 5000, "the command timeout bounds the wait");
      assert.deepEqual(closed, { routed: false, status: 503, code: "quota_store_unavailable" }, "closed: 503");
      assert.equal(open?.routed, true, "open: admitted from memory");
      // local: 4 a minute over 2 replicas = 2 from this replica's memory.
      assert.deepEqual(local.map((r) => r.routed).sort(), [false, true, true]);
      assert.equal(local.find((r) => !r.routed)?.status, 429);
      const alice = await decisions(svc, "alice-open");
      const dave = await decisions(svc, "dave-local");
      assert.equal(alice.fail_open - before_.alice.fail_open, 1);
      assert.equal(dave.fail_open - before_.dave.fail_open, 3, "local counts as fail_open, then admitted or rejected from memory");
      assert.equal(dave.rejected - before_.dave.rejected, 1);
    } finally {
      proxy.heal();
    }
    await sharedCountersBack(svc, client);
    await settledService(svc);
  });

  it("every connection dropped, then refused: failModes apply at once (no offline queue); accepted again: ioredis reconnects by itself", async () => {
    const accepted = proxy.accepted;
    await proxy.refuse();
    try {
      const bob = await ask(client, KEYS.bob);
      assert.deepEqual(bob, { routed: false, status: 503, code: "quota_store_unavailable" });
      assert.equal((await ask(client, KEYS.alice)).routed, true);
      await healthyStreams(client, 4, KEYS.ci);
    } finally {
      await proxy.accept();
    }
    await sharedCountersBack(svc, client);
    assert.ok(proxy.accepted > accepted, "the service opened a new connection by itself");
    await settledService(svc);
  });
});

describe("faults: a real redis-server killed and started again on its port", () => {
  let own: OwnRedis | undefined;
  let svc: TestService;
  let client: ExtProcTestClient;
  let skip: string | false = false;
  before(async () => {
    try {
      own = await startRedisServer();
    } catch (err) {
      if (process.env.LLM_ROUTER_REQUIRE_REDIS === "1") throw err;
      skip = `no redis-server could be started (${(err as Error).message})`;
      return;
    }
    svc = await startTestService(policy(true), undefined, { redisUrl: own.url, redisTimeoutMs: TIMEOUT_MS });
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    if (own === undefined) return;
    client.close();
    await svc.stop();
    await own.stop();
  });

  const question = chatBody("fast", { messages: [{ role: "user", content: "is the cache back?" }] });
  const ANSWER = '{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"yes"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}';

  /** A cacheable request that went upstream: its answer passes the router phase whole (and is stored). */
  async function answeredUpstream(): Promise<EnvoyResponse> {
    const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.ci }, question);
    assert.ok("bodyReply" in r, "routed upstream");
    const rh = await within(r.router.send(responseHeadersMessage({ ":status": "200", "content-type": "application/json", "x-llm-router-target": "openai-gpt-4o-mini" })), 5000, "response_headers");
    await within(r.router.send(responseBodyMessage(ANSWER, true)), 5000, "response_body");
    const ended = r.router.status();
    r.router.end();
    await within(ended, 5000, "router stream end");
    return rh;
  }

  it("while it is down: failModes apply, the cache answers as misses and requests keep being served; once it is back, quotas and the cache work again", async (t) => {
    if (skip || own === undefined) return t.skip(skip || "no redis-server");
    assert.ok((await ask(client, KEYS.bob)).routed);
    await own.stop();
    const down = await Promise.all([ask(client, KEYS.bob), ask(client, KEYS.alice), ask(client, KEYS.ci)]);
    assert.deepEqual(down[0], { routed: false, status: 503, code: "quota_store_unavailable" });
    assert.equal(down[1]?.routed, true);
    assert.equal(down[2]?.routed, true);
    // The cached route still serves: the lookup is a miss, the answer goes through, nothing is stored.
    assert.equal(setHeaders((await answeredUpstream()).response_headers?.response)["x-llm-cache"], "miss");
    await healthyStreams(client, 4, KEYS.ci);

    await own.restart();
    await sharedCountersBack(svc, client);
    // The cache stores again, and the next identical request is a hit, from Redis.
    await waitFor(async () => {
      await answeredUpstream();
      const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.ci }, question);
      r.router.end();
      return "refused" in r && r.refused.immediate_response !== undefined && immediateJson(r.refused).headers["x-llm-cache"] === "hit";
    }, 10_000, "an answer stored after the restart is served from the cache");
    await settledService(svc);
  });

  it("a stream open across the outage still ends cleanly: its settlement fails quietly and the service keeps no stream open", async (t) => {
    if (skip || own === undefined) return t.skip(skip || "no redis-server");
    const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.bob }, chatBody("fast", { stream: true }));
    assert.ok("bodyReply" in r);
    const errors = svc.quota.stats.storeErrors;
    await own.stop();
    await within(r.router.send(responseHeadersMessage({ ":status": "200", "content-type": "text/event-stream", "x-llm-router-target": "openai-gpt-4o-mini" })), 5000, "response_headers");
    await within(r.router.send(responseBodyMessage("data: [DONE]\n\n", true)), 5000, "response_body");
    const ended = r.router.status();
    r.router.end();
    assert.equal((await within(ended, 5000, "router stream end")).code, 0);
    await waitFor(() => svc.quota.stats.storeErrors > errors, 5000, "the settlement's failure is counted");
    await own.restart();
    await sharedCountersBack(svc, client);
    await settledService(svc);
  });
});
