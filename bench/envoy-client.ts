// Drives an ext_proc server the way Envoy does for one chat completion. The router phase stream
// stays open for the whole request, as the downstream filter's does: request_headers, the BUFFERED
// request_body, then (while it waits) the upstream phase stream of the attempt: request_headers
// after the router's mutations, with request attributes and the routing context in
// metadata_context, request_body, the attempt's response headers. Back on the router stream:
// response_headers and, only if the reply asks for it with mode_override (response_body_mode
// STREAMED), the response body one chunk per message. Built on the integration tests' client
// (Envoy's own protos).
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { TARGET_ATTRIBUTE, TARGET_RESPONSE_HEADER } from "../src/phases/gateway-headers";
import { compilePolicyText } from "../src/policy/compile";
import { bodyMessage, ExtProcTestClient, headersMessage, type ExtProcStream, type EnvoyCommon, type EnvoyResponse } from "../test/support/ext-proc-client";
import type { Answer } from "./response";

/**
 * "cache-hit": the router stream's request headers and body, whose reply ends the request (the
 * service answers from its cache with an ImmediateResponse; the do-nothing server continues and the
 * client stops there: the same two messages).
 */
export type Flow = "both" | "router" | "upstream" | "cache-hit";

/** One request: the client's body and what the provider answers. */
export interface RequestCase {
  body: Buffer;
  answer: Answer;
}

/** What the router phase decided: header mutations, the signed context, the body it forwards. */
export interface Routing {
  set: Array<[string, string]>;
  remove: string[];
  token: string;
  /** The request body the router phase replaced (e.g. stream_options.include_usage added). */
  body: Buffer | undefined;
}

/** The router stream's replies, message by message. */
export interface RouterReplies {
  requestHeaders: EnvoyResponse;
  requestBody: EnvoyResponse;
  responseHeaders: EnvoyResponse;
  /** One per response body chunk; empty when the server did not ask for the body. */
  responseBody: EnvoyResponse[];
}

/** What one request saw (for checks). */
export interface Trace {
  router: RouterReplies | undefined;
  /** The reply to request_body of a "cache-hit" request. */
  bodyReply?: EnvoyResponse;
  upstream: EnvoyResponse[] | undefined;
  routing: Routing | undefined;
}

/** Client-side timings, ms: whole requests and, optionally, the router phase's reply to the body. */
export interface Timings {
  request: number[];
  /** From sending request_body to its reply: where the router phase admits against quotas. */
  bodyReply?: number[];
}

/** The example policy's "smart" route: a chain whose first target is openai-gpt-4o. */
export const UPSTREAM_TARGET = "openai-gpt-4o";

/** The chain cluster the router phase picks for "smart" with no observations (first: OpenAI). */
export const UPSTREAM_CLUSTER = (() => {
  const file = path.resolve(__dirname, "../../examples/policy.json");
  const policy = compilePolicyText(readFileSync(file, "utf8"), { file, resolveSecrets: false });
  const cluster = policy.routes.find((r) => r.name === "smart")?.clusterStartingWith.get(UPSTREAM_TARGET)?.name;
  if (cluster === undefined) throw new Error(`${file}: route "smart" has no chain starting with ${UPSTREAM_TARGET}`);
  return cluster;
})();

/**
 * The provider's response headers as Envoy sends them: to the upstream phase as they arrive, to the
 * router phase with the upstream phase's x-llm-router-target added.
 */
function responseHeadersMessage(answer: Answer, routerSide: boolean): object {
  const headers: Record<string, string> = {
    ":status": "200",
    "content-type": answer.contentType,
    "x-request-id": "req_0123456789abcdef",
    "openai-processing-ms": "412",
    "x-ratelimit-remaining-requests": "9999",
  };
  if (routerSide) headers[TARGET_RESPONSE_HEADER] = UPSTREAM_TARGET;
  return {
    response_headers: {
      headers: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
      end_of_stream: false,
    },
  };
}

/** Whether a reply to response headers switches this request's response body to STREAMED. */
function asksForBody(reply: EnvoyResponse): boolean {
  return reply.mode_override?.response_body_mode === "STREAMED";
}

export function clientHeaders(body: Buffer): Record<string, string> {
  return {
    ":method": "POST",
    ":path": "/v1/chat/completions",
    ":authority": "llm-gateway.internal:8080",
    ":scheme": "http",
    "content-type": "application/json",
    authorization: "Bearer sk-demo-alice",
    accept: "application/json",
    "user-agent": "OpenAI/Python 1.54.4",
    "x-stainless-lang": "python",
    "x-forwarded-proto": "http",
    "x-request-id": randomUUID(),
    "content-length": String(body.length),
  };
}

/** Headers as the upstream filter chain sees them: the router phase's mutations applied. */
export function upstreamHeaders(client: Record<string, string>, routing: Routing): Record<string, string> {
  const out: Record<string, string> = { ...client };
  for (const name of routing.remove) delete out[name];
  for (const [name, value] of routing.set) out[name] = value;
  out["x-envoy-expected-rq-timeout-ms"] = "60000";
  out["x-envoy-attempt-count"] = "1";
  return out;
}

function upstreamExtras(token: string): object {
  return {
    attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: UPSTREAM_CLUSTER }, [TARGET_ATTRIBUTE]: { stringValue: UPSTREAM_TARGET } } } },
    metadata_context: { filter_metadata: { llm_router: { fields: { ctx: { stringValue: token } } } } },
  };
}

function mutationsOf(common: EnvoyCommon | undefined): { set: Array<[string, string]>; remove: string[] } {
  const set: Array<[string, string]> = (common?.header_mutation?.set_headers ?? []).map((h) => [
    h.header.key,
    (h.header.raw_value ?? Buffer.alloc(0)).toString("latin1"),
  ]);
  return { set, remove: common?.header_mutation?.remove_headers ?? [] };
}

/** The routing decision in the router phase's replies, or undefined if the server made none. */
export function routingOf(headersReply: EnvoyResponse, bodyReply: EnvoyResponse): Routing | undefined {
  const token = bodyReply.dynamic_metadata?.fields?.llm_router?.structValue?.fields?.ctx?.stringValue;
  if (token === undefined) return undefined;
  const a = mutationsOf(headersReply.request_headers?.response);
  const b = mutationsOf(bodyReply.request_body?.response);
  return { set: [...a.set, ...b.set], remove: [...a.remove, ...b.remove], token, body: bodyReply.request_body?.response?.body_mutation?.body };
}

/** Sends one message and checks that the reply answers it. */
async function exchange(s: ExtProcStream, phase: string, message: object): Promise<EnvoyResponse> {
  const expected = Object.keys(message)[0];
  return expectKind(await s.send(message), expected, phase);
}

function expectKind(r: EnvoyResponse, expected: string | undefined, phase: string): EnvoyResponse {
  if (r.response !== expected) throw new Error(`${phase} phase answered ${expected} with ${r.response ?? "nothing"}: ${JSON.stringify(r).slice(0, 500)}`);
  return r;
}

/** Half-closes the stream and waits for the server's OK status. */
async function finish(s: ExtProcStream, status: Promise<grpc.StatusObject>, phase: string): Promise<void> {
  s.end();
  const st = await status;
  if (st.code !== grpc.status.OK) throw new Error(`${phase} stream ended with status ${st.code}: ${st.details}`);
}

export class EnvoyLikeClient {
  readonly #client: ExtProcTestClient;
  /**
   * Routing used when the server answers without one (the do-nothing server), so that its upstream
   * streams carry the same headers, body and metadata as the service's.
   */
  template: Routing | undefined;

  constructor(address: string) {
    this.#client = new ExtProcTestClient(address);
  }

  /** One request of `flow`. */
  async request(flow: Flow, c: RequestCase, timings?: Timings): Promise<Trace> {
    const t0 = performance.now();
    let trace: Trace;
    if (flow === "cache-hit") {
      trace = { router: undefined, upstream: undefined, routing: undefined, bodyReply: await this.#requestOnly(c, timings) };
    } else if (flow === "upstream") {
      const routing = this.#orTemplate(undefined);
      trace = { router: undefined, upstream: await this.#upstreamPhase(upstreamHeaders(clientHeaders(c.body), routing), routing, c), routing };
    } else {
      trace = await this.#routerPhase(flow === "both", c, timings);
    }
    timings?.request.push(performance.now() - t0);
    return trace;
  }

  /** The server's routing, else the template (the do-nothing server; upstream-only requests). */
  #orTemplate(routing: Routing | undefined): Routing {
    const r = routing ?? this.template;
    if (r === undefined) throw new Error("the server made no routing decision and there is no template");
    return r;
  }

  async #routerPhase(withUpstream: boolean, c: RequestCase, timings: Timings | undefined): Promise<Trace> {
    const s = this.#client.open("router");
    const status = s.status();
    const headers = clientHeaders(c.body);
    const requestHeaders = await exchange(s, "router", headersMessage(headers));
    const bodySent = performance.now();
    const requestBody = await exchange(s, "router", bodyMessage(c.body));
    timings?.bodyReply?.push(performance.now() - bodySent);
    let routing = routingOf(requestHeaders, requestBody);
    let upstream: EnvoyResponse[] | undefined;
    if (withUpstream) {
      routing = this.#orTemplate(routing);
      upstream = await this.#upstreamPhase(upstreamHeaders(headers, routing), routing, c);
    }
    const responseHeaders = await exchange(s, "router", responseHeadersMessage(c.answer, true));
    const responseBody = asksForBody(responseHeaders) ? await this.#streamBody(s, c.answer.chunks) : [];
    await finish(s, status, "router");
    return { router: { requestHeaders, requestBody, responseHeaders, responseBody }, upstream, routing };
  }

  async #requestOnly(c: RequestCase, timings: Timings | undefined): Promise<EnvoyResponse> {
    const s = this.#client.open("router");
    const status = s.status();
    await exchange(s, "router", headersMessage(clientHeaders(c.body)));
    const bodySent = performance.now();
    const reply = await s.send(bodyMessage(c.body));
    timings?.bodyReply?.push(performance.now() - bodySent);
    if (reply.response !== "immediate_response") expectKind(reply, "request_body", "router");
    await finish(s, status, "router");
    return reply;
  }

  /**
   * STREAMED: Envoy sends each chunk as it arrives without waiting for the previous reply, and
   * applies the replies in order. Promise.all rather than a loop of awaits, so that every reply
   * promise has a handler if the stream fails.
   */
  async #streamBody(s: ExtProcStream, chunks: Buffer[]): Promise<EnvoyResponse[]> {
    const last = chunks.length - 1;
    const replies = await Promise.all(chunks.map((body, i) => s.send({ response_body: { body, end_of_stream: i === last } })));
    return replies.map((r) => expectKind(r, "response_body", "router"));
  }

  /** The attempt's stream: request headers, the body the router phase forwards, response headers. */
  async #upstreamPhase(headers: Record<string, string>, routing: Routing, c: RequestCase): Promise<EnvoyResponse[]> {
    const s = this.#client.open("upstream");
    const status = s.status();
    const replies: EnvoyResponse[] = [];
    for (const m of [headersMessage(headers, false, upstreamExtras(routing.token)), bodyMessage(routing.body ?? c.body), responseHeadersMessage(c.answer, false)]) {
      replies.push(await exchange(s, "upstream", m));
    }
    await finish(s, status, "upstream");
    return replies;
  }

  close(): void {
    this.#client.close();
  }
}

export interface DriveResult {
  requests: number;
  wallMs: number;
  timings: Timings;
}

/** `count` requests of `flow` with `concurrency` requests in flight. */
export async function drive(client: EnvoyLikeClient, flow: Flow, c: RequestCase, count: number, concurrency: number): Promise<DriveResult> {
  const timings: Timings = { request: [], bodyReply: [] };
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await client.request(flow, c, timings);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { requests: count, wallMs: performance.now() - t0, timings };
}

/**
 * Open loop: starts `count` requests at `perSecond`, on schedule whether or not earlier ones have
 * finished (as independent clients would), so a slow reply delays no later request's start.
 */
export async function driveAtRate(client: EnvoyLikeClient, flow: Flow, c: RequestCase, count: number, perSecond: number): Promise<DriveResult> {
  const timings: Timings = { request: [], bodyReply: [] };
  const interval = 1000 / perSecond;
  const inFlight: Array<Promise<unknown>> = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(count, Math.floor((performance.now() - t0) / interval) + 1);
      while (inFlight.length < due) {
        const p = client.request(flow, c, timings);
        p.catch(() => undefined); // reported by Promise.all below, not as an unhandled rejection
        inFlight.push(p);
      }
      if (inFlight.length < count) setTimeout(tick, Math.max(0, t0 + inFlight.length * interval - performance.now()));
      else resolve();
    };
    tick();
  });
  await Promise.all(inFlight);
  return { requests: count, wallMs: performance.now() - t0, timings };
}

/** Keeps `concurrency` requests in flight for `ms`. */
export async function driveFor(client: EnvoyLikeClient, flow: Flow, c: RequestCase, ms: number, concurrency: number): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await client.request(flow, c);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done;
}
