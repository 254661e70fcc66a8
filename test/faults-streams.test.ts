// Fault injection on the ext_proc streams themselves, over real gRPC against the real service:
// Envoy cancelling a stream at every message of both phases (the client went away, an upstream
// reset, a timeout), a stream cancelled while its Redis call is in flight, and messages out of
// order, duplicated or empty. Each fault gets a defined answer (a reply, or a gRPC error that ends
// that one stream: Envoy then answers that one client 500), never an exception out of the handler
// and never a hang; afterwards concurrent healthy streams complete and nothing stays open.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import Redis from "ioredis";
import { sum } from "./support/exposition";
import { bodyMessage, ExtProcTestClient, headersMessage, immediateJson, setHeaders, type ExtProcStream } from "./support/ext-proc-client";
import {
  attemptAttributes,
  CHAT_HEADERS,
  chatBody,
  contextMetadata,
  drive,
  healthyStreams,
  KEYS,
  metricSamples,
  openaiStreamEvents,
  responseBodyMessage,
  responseHeadersMessage,
  routeRequest,
  settledService,
  waitFor,
  within,
  type Routed,
} from "./support/ext-proc-flows";
import { describeWithRedis } from "./support/redis";
import { examplePolicy, startTestService, type TestService } from "./support/service";
import { TcpProxy } from "./support/tcp-proxy";

const HEALTHY = 8;
const TARGETS = ["openai-gpt-4o-mini", "openai-gpt-4o", "azure-gpt-4o", "local-llama"];

// Anything thrown out of a handler would surface here instead of as a gRPC status.
const escaped: unknown[] = [];
const onEscape = (err: unknown) => void escaped.push(err);
process.on("uncaughtException", onEscape);
process.on("unhandledRejection", onEscape);
after(() => {
  process.off("uncaughtException", onEscape);
  process.off("unhandledRejection", onEscape);
  assert.deepEqual(escaped, [], "no exception escaped a stream handler");
});

/** The example policy; consumer ci may have one request in flight (a lease that must be released). */
function policy(extra: { cacheFast?: object } = {}) {
  const doc = examplePolicy() as ReturnType<typeof examplePolicy> & { routes: Array<Record<string, unknown>> };
  (doc as Record<string, unknown>).limits = { rules: [{ name: "ci-one", per: "consumer", match: { consumers: ["ci"] }, concurrent: 1 }] };
  if (extra.cacheFast) for (const r of doc.routes) if (r.name === "fast") r.cache = extra.cacheFast;
  return doc;
}

const routed = (r: Awaited<ReturnType<typeof routeRequest>>): Routed => {
  assert.ok("bodyReply" in r, `expected the request to be routed, got ${"refused" in r ? JSON.stringify(immediateJson(r.refused).body) : "?"}`);
  return r;
};

/** ci's one slot is free: a ci request is routed (then ended, which frees the slot again). */
async function ciSlotFree(client: ExtProcTestClient): Promise<boolean> {
  const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.ci }, chatBody("fast"));
  const status = r.router.status();
  r.router.end();
  await within(status, 5000, "ci stream end");
  if ("refused" in r) {
    assert.equal(immediateJson(r.refused).status, 429, "only the concurrency rule may refuse ci");
    return false;
  }
  return true;
}

describe("faults: a stream cancelled at each message of each phase", () => {
  let svc: TestService;
  let client: ExtProcTestClient;
  before(async () => {
    svc = await startTestService(policy());
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    client.close();
    await svc.stop();
  });

  const ciChat = { ...CHAT_HEADERS, authorization: KEYS.ci };
  const streamBody = chatBody("fast", { stream: true });
  const anthropicClient = { ...CHAT_HEADERS, ":path": "/v1/messages", "x-api-key": "sk-demo-ci", "anthropic-version": "2023-06-01" };
  const anthropicBody = JSON.stringify({ model: "fast", max_tokens: 64, stream: true, messages: [{ role: "user", content: "tell me a story" }] });
  const sse = { ":status": "200", "content-type": "text/event-stream" };

  /** Routes a ci request and opens its upstream attempt to the reply to request_headers. */
  async function attempt(headers: Record<string, string>, body: string): Promise<{ r: Routed; upstream: ExtProcStream }> {
    const r = routed(await routeRequest(client, headers, body));
    const upstream = client.open("upstream");
    const ctx = { ...attemptAttributes(r.cluster, "openai-gpt-4o-mini"), ...contextMetadata(r.token) };
    const h = await within(upstream.send(headersMessage({ ...headers, ...r.set }, false, ctx)), 5000, "upstream request_headers");
    assert.equal(setHeaders(h.request_headers?.response).authorization, "Bearer sk-provider-openai-SECRET");
    return { r, upstream };
  }

  // Each case ends with the cancels Envoy would make: the phases' streams it had open.
  const cases: Array<{ name: string; cancelled: { router: number; upstream: number }; run: () => Promise<void> }> = [
    {
      name: "router phase, after request_headers",
      cancelled: { router: 1, upstream: 0 },
      run: async () => {
        const s = client.open("router");
        await within(s.send(headersMessage(ciChat)), 5000, "request_headers");
        s.cancel();
      },
    },
    {
      name: "router phase, while its request_body is answered",
      cancelled: { router: 1, upstream: 0 },
      run: async () => {
        const s = client.open("router");
        await within(s.send(headersMessage(ciChat)), 5000, "request_headers");
        s.call.write(bodyMessage(streamBody));
        s.cancel();
      },
    },
    {
      name: "router phase, after request_body (routed and admitted, nothing sent upstream yet)",
      cancelled: { router: 1, upstream: 0 },
      run: async () => routed(await routeRequest(client, ciChat, streamBody)).router.cancel(),
    },
    {
      name: "router phase, after response_headers",
      cancelled: { router: 1, upstream: 0 },
      run: async () => {
        const { router } = routed(await routeRequest(client, ciChat, streamBody));
        const rh = await within(router.send(responseHeadersMessage({ ...sse, "x-llm-router-target": "openai-gpt-4o-mini" })), 5000, "response_headers");
        assert.equal(rh.mode_override?.response_body_mode, "STREAMED");
        router.cancel();
      },
    },
    {
      name: "router phase, mid response_body of a stream",
      cancelled: { router: 1, upstream: 0 },
      run: async () => {
        const { router } = routed(await routeRequest(client, ciChat, streamBody));
        await within(router.send(responseHeadersMessage({ ...sse, "x-llm-router-target": "openai-gpt-4o-mini" })), 5000, "response_headers");
        const events = openaiStreamEvents("gpt-4o-mini", ["one", "two", "three", "four"]);
        for (const e of events.slice(0, 2)) await within(router.send(responseBodyMessage(e, false)), 5000, "response_body");
        router.cancel();
      },
    },
    {
      name: "upstream phase, after request_headers",
      cancelled: { router: 1, upstream: 1 },
      run: async () => {
        const { r, upstream } = await attempt(ciChat, streamBody);
        upstream.cancel();
        r.router.cancel();
      },
    },
    {
      name: "upstream phase, after request_body",
      cancelled: { router: 1, upstream: 1 },
      run: async () => {
        const { r, upstream } = await attempt(ciChat, streamBody);
        await within(upstream.send(bodyMessage(streamBody, contextMetadata(r.token))), 5000, "upstream request_body");
        upstream.cancel();
        r.router.cancel();
      },
    },
    {
      name: "upstream phase, after response_headers",
      cancelled: { router: 1, upstream: 1 },
      run: async () => {
        const { r, upstream } = await attempt(ciChat, streamBody);
        await within(upstream.send(bodyMessage(streamBody, contextMetadata(r.token))), 5000, "upstream request_body");
        await within(upstream.send(responseHeadersMessage(sse)), 5000, "upstream response_headers");
        upstream.cancel();
        r.router.cancel();
      },
    },
    {
      name: "upstream phase, mid response_body of a translated stream (Anthropic client, OpenAI target)",
      cancelled: { router: 1, upstream: 1 },
      run: async () => {
        const { r, upstream } = await attempt(anthropicClient, anthropicBody);
        await within(upstream.send(bodyMessage(anthropicBody, contextMetadata(r.token))), 5000, "upstream request_body");
        const uh = await within(upstream.send(responseHeadersMessage(sse)), 5000, "upstream response_headers");
        assert.equal(uh.mode_override?.response_body_mode, "STREAMED", "a translated answer is read chunk by chunk");
        const events = openaiStreamEvents("gpt-4o-mini", ["one", "two", "three"]);
        const first = await within(upstream.send(responseBodyMessage(events[0]!, false)), 5000, "upstream response_body");
        assert.match(first.response_body?.response?.body_mutation?.body?.toString() ?? "", /event: message_start/);
        // Half an event: the translator holds it when the stream goes.
        await within(upstream.send(responseBodyMessage(events[1]!.slice(0, 20), false)), 5000, "upstream response_body");
        upstream.cancel();
        r.router.cancel();
      },
    },
  ];

  for (const c of cases) {
    it(`${c.name}: counted cancelled, its quota slot freed, nothing left open, and ${HEALTHY} concurrent healthy streams complete`, async () => {
      const before_ = await metricSamples(svc);
      await c.run();
      await settledService(svc, TARGETS);
      assert.ok(await ciSlotFree(client), "the cancelled request's concurrency slot was released");
      await healthyStreams(client, HEALTHY);
      await settledService(svc, TARGETS);
      const after_ = await metricSamples(svc);
      const delta = (phase: string, end: string) => sum(after_, "llm_router_ext_proc_streams_total", { phase, end }) - sum(before_, "llm_router_ext_proc_streams_total", { phase, end });
      // Every stream ended, none with an error. grpc-js delivers a reset as a half-close ("end")
      // before "cancelled", so an idle stream's reset is counted under end="ok"; Envoy half-closes
      // before every reset anyway. Which requests were abandoned is the request outcome below.
      assert.equal(delta("router", "error") + delta("upstream", "error"), 0);
      assert.equal(delta("router", "ok") + delta("router", "cancelled"), HEALTHY + 1 + c.cancelled.router, "the cancelled stream, the ci probe and the healthy streams");
      assert.equal(delta("upstream", "ok") + delta("upstream", "cancelled"), HEALTHY + c.cancelled.upstream);
      // The router phase's request summary counts the abandoned requests: this one and the ci probe
      // (routed, then ended without a response); the healthy ones succeeded.
      const outcome = (o: string) => sum(after_, "llm_router_requests_total", { outcome: o }) - sum(before_, "llm_router_requests_total", { outcome: o });
      assert.equal(outcome("cancelled"), 2);
      assert.equal(outcome("success"), HEALTHY);
    });
  }

  it("many streams cancelled at random points while others run: all of those complete, nothing stays open", async () => {
    const victims = Array.from({ length: 24 }, async (_, i) => {
      const s = client.open(i % 3 === 2 ? "upstream" : "router");
      s.call.write(headersMessage({ ...CHAT_HEADERS, authorization: KEYS.alice }));
      if (i % 2 === 0) s.call.write(bodyMessage(chatBody("fast")));
      await new Promise((r) => setTimeout(r, i % 5));
      s.cancel();
    });
    await Promise.all([...victims, healthyStreams(client, HEALTHY)]);
    await settledService(svc, TARGETS);
  });
});

describe("faults: messages out of order, duplicated or empty", () => {
  let svc: TestService;
  let client: ExtProcTestClient;
  before(async () => {
    svc = await startTestService(policy());
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    client.close();
    await svc.stop();
  });

  const alice = { ...CHAT_HEADERS, authorization: KEYS.alice };
  const body = bodyMessage(chatBody("fast"));
  const ok200 = responseHeadersMessage({ ":status": "200", "content-type": "application/json", "x-llm-router-target": "openai-gpt-4o-mini" });
  const json = responseBodyMessage('{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}', true);
  const INVALID = grpc.status.INVALID_ARGUMENT;

  // Each case: the messages Envoy (mis)sends, the reply kinds in order, and the final gRPC status.
  const cases: Array<{ name: string; phase: "router" | "upstream"; messages: object[]; replies: string[]; status: grpc.status; check?: (replies: Awaited<ReturnType<typeof drive>>["replies"]) => void }> = [
    { name: "an empty ProcessingRequest", phase: "router", messages: [{}], replies: [], status: INVALID },
    { name: "an empty ProcessingRequest", phase: "upstream", messages: [{}], replies: [], status: INVALID },
    { name: "a header without a name", phase: "router", messages: [{ request_headers: { headers: { headers: [{ key: "", raw_value: Buffer.from("x") }] } } }], replies: [], status: INVALID },
    { name: "request_body before request_headers", phase: "router", messages: [body], replies: [], status: INVALID },
    { name: "request_body before request_headers", phase: "upstream", messages: [body], replies: [], status: INVALID },
    { name: "request_trailers before request_headers", phase: "router", messages: [{ request_trailers: {} }], replies: [], status: INVALID },
    { name: "request_trailers before request_headers", phase: "upstream", messages: [{ request_trailers: {} }], replies: [], status: INVALID },
    { name: "request_headers twice", phase: "router", messages: [headersMessage(alice), headersMessage(alice)], replies: ["request_headers"], status: INVALID },
    { name: "request_headers twice", phase: "upstream", messages: [headersMessage(alice), headersMessage(alice)], replies: ["request_headers"], status: INVALID },
    { name: "request_body after the body's end_of_stream", phase: "router", messages: [headersMessage(alice), body, body], replies: ["request_headers", "request_body"], status: INVALID },
    { name: "request_body after a passthrough's headers ended the request", phase: "router", messages: [headersMessage({ ":method": "GET", ":path": "/v1/models", ":authority": "gw", authorization: KEYS.alice }, true), body], replies: ["request_headers"], status: INVALID },
    {
      name: "request_headers again after the first were refused",
      phase: "router",
      messages: [headersMessage({ ...alice, authorization: "Bearer sk-wrong" }), headersMessage(alice), body],
      replies: ["immediate_response"],
      status: INVALID,
    },
    {
      name: "a partial request body (end_of_stream false: not BUFFERED)",
      phase: "router",
      messages: [headersMessage(alice), { request_body: { body: Buffer.from("{"), end_of_stream: false } }],
      replies: ["request_headers", "immediate_response"],
      status: grpc.status.OK,
      check: (r) => assert.equal(immediateJson(r[1]!).status, 500),
    },
    { name: "request_trailers after the body", phase: "router", messages: [headersMessage(alice), body, { request_trailers: {} }], replies: ["request_headers", "request_body", "request_trailers"], status: grpc.status.OK },
    { name: "response_trailers after the response", phase: "router", messages: [headersMessage(alice), body, ok200, json, { response_trailers: {} }], replies: ["request_headers", "request_body", "response_headers", "response_body", "response_trailers"], status: grpc.status.OK },
    {
      name: "response_body before request_headers",
      phase: "router",
      messages: [responseBodyMessage("data: x\n\n", false)],
      replies: ["response_body"],
      status: grpc.status.OK,
      check: (r) => assert.equal(r[0]?.response_body?.response?.body_mutation, undefined, "nothing to read: passed on untouched"),
    },
    {
      name: "response_headers before request_headers (a local reply of an earlier filter)",
      phase: "router",
      messages: [ok200],
      replies: ["response_headers"],
      status: grpc.status.OK,
      check: (r) => assert.deepEqual(setHeaders(r[0]?.response_headers?.response), {}, "no request seen: nothing to add (no empty x-request-id)"),
    },
    { name: "response_headers before request_headers", phase: "upstream", messages: [ok200], replies: ["response_headers"], status: grpc.status.OK },
    { name: "response_body before anything", phase: "upstream", messages: [responseBodyMessage("x", true)], replies: ["response_body"], status: grpc.status.OK },
    { name: "response_headers twice", phase: "router", messages: [headersMessage(alice), body, ok200, ok200, json], replies: ["request_headers", "request_body", "response_headers", "response_headers", "response_body"], status: grpc.status.OK },
    { name: "response_body after the last chunk", phase: "router", messages: [headersMessage(alice), body, ok200, json, json], replies: ["request_headers", "request_body", "response_headers", "response_body", "response_body"], status: grpc.status.OK },
  ];

  let errors = 0;
  for (const c of cases) {
    it(`${c.phase} phase, ${c.name}: ${c.status === grpc.status.OK ? "answered" : "the stream ends with INVALID_ARGUMENT"}, no hang`, async () => {
      const { replies, status } = await drive(client, c.phase, c.messages);
      assert.deepEqual(replies.map((r) => r.response), c.replies);
      assert.equal(status.code, c.status, status.details);
      if (c.status !== grpc.status.OK) errors++;
      c.check?.(replies);
    });
  }

  it(`afterwards ${HEALTHY} concurrent healthy streams complete, errors are counted, and no stream stays open`, async () => {
    await healthyStreams(client, HEALTHY);
    await settledService(svc, TARGETS);
    const s = await metricSamples(svc);
    assert.equal(sum(s, "llm_router_ext_proc_streams_total", { end: "error" }), errors);
  });
});

describeWithRedis("faults: a stream cancelled while its Redis call is in flight", (redis) => {
  let svc: TestService;
  let client: ExtProcTestClient;
  let proxy: TcpProxy;
  let direct: Redis;
  const prefix = redis.prefix();
  before(async () => {
    proxy = await TcpProxy.start(redis.url);
    direct = new Redis(redis.url);
    // A long command timeout: the call stays in flight while the proxy holds it.
    svc = await startTestService(policy({ cacheFast: { ttl: "10m", coalesceWait: "20s" } }), undefined, { redisUrl: proxy.redisUrl, redisKeyPrefix: prefix, redisTimeoutMs: 10_000, observationsSyncMs: 0 });
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    proxy.heal();
    client.close();
    await svc.stop();
    await proxy.close();
    direct.disconnect();
  });

  /**
   * Sends a request whose body makes the service call Redis, holds that call in the proxy (seen by
   * `command`, a key it names), cancels the stream, and lets Redis answer only once the service has
   * closed the stream: the answer arrives for a request that is gone.
   */
  async function cancelledInFlight(key: string, body: string, command: string): Promise<void> {
    await svc.quota.idle();
    const mark = proxy.mark();
    proxy.blackhole();
    try {
      const s = client.open("router");
      await within(s.send(headersMessage({ ...CHAT_HEADERS, authorization: key })), 5000, "request_headers");
      s.call.write(bodyMessage(body));
      await waitFor(() => proxy.sentSince(mark).includes(command), 5000, `the service sent its Redis call (${command})`);
      s.cancel();
      await settledService(svc);
    } finally {
      proxy.heal();
    }
  }

  async function admitted(rule: string): Promise<number> {
    return sum(await metricSamples(svc), "llm_router_quota_decisions_total", { rule, outcome: "admitted" });
  }

  it("quota admission: the concurrency slot taken after the stream went is given back", async () => {
    const before_ = await admitted("ci-one");
    await cancelledInFlight(KEYS.ci, chatBody("llama"), `${prefix}{c:ci}:ci-one`);
    // The admission the cancelled stream started completes in Redis after the stream closed.
    await waitFor(async () => (await admitted("ci-one")) === before_ + 1, 5000, "the in-flight admission completed");
    await waitFor(() => ciSlotFree(client), 5000, "ci's one slot is free again (not held for leaseTtl)");
    await healthyStreams(client, HEALTHY);
    await settledService(svc, TARGETS);
  });

  it("cache lookup: the fill claim taken after the stream went is released, identical requests do not wait for it", async () => {
    const misses = svc.cache.stats.misses;
    const body = chatBody("fast", { messages: [{ role: "user", content: "a cached question" }] });
    await cancelledInFlight(KEYS.alice, body, `${prefix}cache:`);
    await waitFor(() => svc.cache.stats.misses === misses + 1, 5000, "the in-flight lookup completed (a miss that claimed the key)");
    await waitFor(async () => (await direct.keys(`${prefix}cache:*:fill`)).length === 0, 5000, "no fill claim is left in Redis (it would hold identical requests for coalesceWait, 20 s)");
    const again = routed(await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.alice }, body));
    assert.equal(again.cluster, "tgt_openai-gpt-4o-mini");
    again.router.cancel();
    await settledService(svc, TARGETS);
  });
});
