// Load shedding (policy gateway.overload): the decision as a table, the in-flight count and the
// event-loop delay of LoadShedder (Node's real delay histogram, the loop really blocked), and the
// service refusing at request headers with 503 `overloaded` in the caller's format, a retry-after
// and the request id, then taking requests again once a place is free.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GatewayError } from "../src/api/errors";
import { LoadShedder, shedReason, type ShedReason } from "../src/overload/load-shedder";
import type { OverloadSettings } from "../src/policy/compile";
import { compilePolicyText } from "../src/policy/compile";
import { ExtProcTestClient, headersMessage, immediateJson, type ExtProcStream } from "./support/ext-proc-client";
import { CHAT_HEADERS, chatBody, healthyStream, KEYS, metricSamples, routeRequest, settledService, waitFor, within } from "./support/ext-proc-flows";
import { examplePolicy, startTestService, type TestService } from "./support/service";

const settings = (o: Partial<OverloadSettings>): OverloadSettings => ({ maxInFlight: undefined, maxEventLoopDelayMs: undefined, retryAfterS: 1, ...o });

describe("shedReason", () => {
  const table: Array<[string, OverloadSettings, { inFlight: number; processes: number; eventLoopDelayMs: number | undefined }, ShedReason | undefined]> = [
    ["under the in-flight limit", settings({ maxInFlight: 10 }), { inFlight: 9, processes: 1, eventLoopDelayMs: undefined }, undefined],
    ["at the in-flight limit", settings({ maxInFlight: 10 }), { inFlight: 10, processes: 1, eventLoopDelayMs: undefined }, "in-flight"],
    ["two processes: each holds half", settings({ maxInFlight: 10 }), { inFlight: 5, processes: 2, eventLoopDelayMs: undefined }, "in-flight"],
    ["two processes: four of five", settings({ maxInFlight: 10 }), { inFlight: 4, processes: 2, eventLoopDelayMs: undefined }, undefined],
    ["an odd limit rounds each share up", settings({ maxInFlight: 3 }), { inFlight: 1, processes: 2, eventLoopDelayMs: undefined }, undefined],
    ["more processes than places: one each", settings({ maxInFlight: 2 }), { inFlight: 0, processes: 4, eventLoopDelayMs: undefined }, undefined],
    ["delay over the limit", settings({ maxEventLoopDelayMs: 100 }), { inFlight: 0, processes: 1, eventLoopDelayMs: 101 }, "event-loop-delay"],
    ["delay at the limit", settings({ maxEventLoopDelayMs: 100 }), { inFlight: 0, processes: 1, eventLoopDelayMs: 100 }, undefined],
    ["delay not measured yet", settings({ maxEventLoopDelayMs: 100 }), { inFlight: 0, processes: 1, eventLoopDelayMs: undefined }, undefined],
    ["no delay limit: a long delay is fine", settings({ maxInFlight: 10 }), { inFlight: 0, processes: 1, eventLoopDelayMs: 5000 }, undefined],
    ["both limits, in flight first", settings({ maxInFlight: 1, maxEventLoopDelayMs: 100 }), { inFlight: 1, processes: 1, eventLoopDelayMs: 500 }, "in-flight"],
  ];
  for (const [name, s, now, want] of table) it(name, () => assert.equal(shedReason(s, now), want));
});

describe("LoadShedder", () => {
  it("counts admissions, gives each place back once, and refuses with 503 overloaded and retry-after", () => {
    const shedder = new LoadShedder();
    const s = settings({ maxInFlight: 2, retryAfterS: 3 });
    const a = shedder.admit(s);
    const b = shedder.admit(s);
    assert.equal(shedder.inFlight, 2);
    assert.throws(
      () => shedder.admit(s),
      (e: unknown) => e instanceof GatewayError && e.code === "overloaded" && e.status === 503 && e.headers.some(([k, v]) => k === "retry-after" && v === "3"),
    );
    a.release();
    a.release();
    assert.equal(shedder.inFlight, 1, "a second release gives nothing back");
    shedder.admit(s).release();
    b.release();
    assert.equal(shedder.inFlight, 0);
  });

  it("counts nothing when the policy sets no limit", () => {
    const shedder = new LoadShedder();
    for (let i = 0; i < 5; i++) shedder.admit(undefined);
    assert.equal(shedder.inFlight, 0);
  });

  it("splits the replica's limit among its processes", () => {
    const shedder = new LoadShedder(2);
    const s = settings({ maxInFlight: 4 });
    shedder.admit(s);
    shedder.admit(s);
    assert.throws(() => shedder.admit(s), GatewayError);
  });

  it("refuses while the event loop is behind, and takes requests again once it has caught up", async () => {
    // 100 ms windows of 10 ms samples: a 1.5 s block is one sample against at most ten others, an
    // average delay over 100 ms whichever window it lands in; an idle loop, even on a busy machine,
    // stays far below.
    const shedder = new LoadShedder(1, 100);
    const s = settings({ maxEventLoopDelayMs: 100 });
    try {
      shedder.admit(s).release(); // starts the measurement; nothing measured yet
      await waitFor(() => shedder.eventLoopDelayMs !== undefined, 2000, "a first window measured");
      assert.ok(shedder.eventLoopDelayMs! <= 100, `an idle loop is not behind (${shedder.eventLoopDelayMs} ms)`);
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        // The loop blocked, as by a CPU-bound backlog.
      }
      await waitFor(() => shedder.eventLoopDelayMs! > 100, 2000, "the blocked loop is seen");
      assert.throws(() => shedder.admit(s), (e: unknown) => e instanceof GatewayError && e.code === "overloaded" && /short of CPU/.test(e.detail ?? ""));
      await waitFor(() => shedder.eventLoopDelayMs! <= 100, 3000, "the loop caught up");
      shedder.admit(s).release();
    } finally {
      shedder.stop();
    }
  });
});

describe("the service sheds load at request headers (gateway.overload.maxInFlight)", () => {
  let svc: TestService;
  let client: ExtProcTestClient;
  before(async () => {
    const doc = examplePolicy() as { gateway?: object };
    doc.gateway = { ...doc.gateway, overload: { maxInFlight: 2, retryAfter: "2s" } };
    svc = await startTestService(doc);
    client = new ExtProcTestClient(svc.address);
  });
  after(async () => {
    client.close();
    await svc.stop();
  });

  /** A router stream whose request headers were taken on (it then holds its place). */
  async function held(): Promise<ExtProcStream> {
    const s = client.open("router");
    const r = await within(s.send(headersMessage({ ...CHAT_HEADERS, authorization: KEYS.alice })), 5000, "request_headers");
    assert.equal(r.immediate_response, undefined, "taken on");
    return s;
  }

  async function refused(headers: Record<string, string>): Promise<ReturnType<typeof immediateJson>> {
    const s = client.open("router");
    const r = await within(s.send(headersMessage(headers)), 5000, "request_headers");
    s.end();
    return immediateJson(r);
  }

  it("past the limit a request gets 503 in its caller's format with retry-after, and a freed place is taken again", async () => {
    const a = await held();
    const b = await held();

    const openai = await refused({ ...CHAT_HEADERS, authorization: KEYS.alice, "x-request-id": "req-overload-1" });
    assert.equal(openai.status, 503);
    assert.deepEqual(openai.body, { error: { message: "The gateway is overloaded; retry after the seconds in retry-after. Too many requests are in flight on this replica.", type: "server_error", param: null, code: "overloaded" } });
    assert.equal(openai.headers["retry-after"], "2");
    assert.equal(openai.headers["x-llm-router-error"], "overloaded");
    assert.equal(openai.headers["x-request-id"], "req-overload-1");

    // Refused before authentication: a request without a key learns nothing about keys.
    const anthropic = await refused({ ...CHAT_HEADERS, ":path": "/v1/messages" });
    assert.equal(anthropic.status, 503);
    assert.deepEqual(anthropic.body, { type: "error", error: { type: "overloaded_error", message: "The gateway is overloaded; retry after the seconds in retry-after. Too many requests are in flight on this replica." } });

    a.end();
    await within(a.status(), 5000, "a ends");
    const r = await routeRequest(client, { ...CHAT_HEADERS, authorization: KEYS.alice }, chatBody("fast"));
    assert.ok("bodyReply" in r, "routed once a place is free");
    r.router.end();
    await within(r.router.status(), 5000, "router stream end");
    b.cancel();
    await settledService(svc);

    const samples = await metricSamples(svc);
    assert.equal(samples.get('llm_router_gateway_errors_total{code="overloaded"}'), 2);
  });

  it("a request refused for another reason, or cancelled, gives its place back", async () => {
    for (let i = 0; i < 3; i++) {
      const noKey = await refused({ ...CHAT_HEADERS });
      assert.equal(noKey.status, 401);
      const s = client.open("router");
      await within(s.send(headersMessage({ ...CHAT_HEADERS, authorization: KEYS.alice })), 5000, "request_headers");
      s.cancel();
    }
    await settledService(svc);
    await healthyStream(client);
    await healthyStream(client);
  });

  it("the policy check refuses a limit that is not a positive integer", () => {
    const bad = examplePolicy() as { gateway?: object };
    bad.gateway = { ...bad.gateway, overload: { maxInFlight: 0 } };
    assert.throws(() => compilePolicyText(JSON.stringify(bad), { file: "p.json", resolveSecrets: false }), /maxInFlight/);
  });
});
