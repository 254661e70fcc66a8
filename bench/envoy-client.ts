// Drives an ext_proc server the way Envoy does for one chat completion. The router phase stream
// stays open for the whole request, as the downstream filter's does: request_headers, the BUFFERED
// request_body, then (while it waits) the upstream phase stream of the attempt: request_headers
// after the router's mutations, with request attributes and the routing context in
// metadata_context, request_body, the attempt's response headers. Back on the router stream:
// response_headers and, only if the reply asks for it with mode_override (response_body_mode
// STREAMED), the response body one chunk per message. Built on the integration tests' client
// (Envoy's own protos).
//
// A translated attempt (an OpenAI client on an Anthropic target) differs in one place: the upstream
// phase's reply to response_headers asks for the body too, so the upstream stream stays open. The
// router stream gets its response_headers; then the provider's chunks go to the upstream phase one
// per response_body message, and each chunk as its reply rewrote it goes on to the router stream,
// as Envoy passes it down the filter chain (see #relayBody).
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { TARGET_ATTRIBUTE, TARGET_RESPONSE_HEADER } from "../src/phases/gateway-headers";
import { bodyMessage, ExtProcTestClient, headersMessage, type ExtProcStream, type EnvoyCommon, type EnvoyResponse } from "../test/support/ext-proc-client";
import { clusterOf, PASSTHROUGH_ROUTE, PASSTHROUGH_TARGET, TRANSLATED_ROUTE, TRANSLATED_TARGET } from "./policy";
import type { Answer } from "./response";

/**
 * "cache-hit": the router stream's request headers and body, whose reply ends the request (the
 * service answers from its cache with an ImmediateResponse; the do-nothing server continues and the
 * client stops there: the same two messages).
 */
export type Flow = "both" | "router" | "upstream" | "cache-hit";

/**
 * Where the router phase sends a request (no observations yet: the chain's first target) and what
 * the router phase then sees of the answer's headers.
 */
export interface Destination {
  route: string;
  /** The attempt's target, as the endpoint's metadata names it to the upstream phase. */
  target: string;
  /** The chain cluster the router phase picks (x-llm-router-cluster; the attempt's xds.cluster_name). */
  cluster: string;
  /**
   * Set for a translated attempt: the content-type the upstream phase gives the translated answer,
   * which Envoy applies before the router phase sees the response headers. Otherwise the
   * provider's passes through.
   */
  clientContentType?: string;
}

/** One request: the client's body, what the provider answers, and where it goes. */
export interface RequestCase {
  body: Buffer;
  answer: Answer;
  /** Default: PASSTHROUGH (OpenAI, served natively). */
  destination?: Destination;
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
  /** The upstream phase's replies to response_body: a translated attempt only (it asks for the body). */
  upstreamBody?: EnvoyResponse[];
  /**
   * The response body as Envoy passes it on after the upstream phase's mutations (chunks it emptied
   * are not passed on, see #relayBody): what the router phase received, when upstreamBody is set.
   */
  passedOn?: Buffer[];
  routing: Routing | undefined;
}

/** Client-side timings, ms: whole requests and, optionally, the router phase's reply to the body. */
export interface Timings {
  request: number[];
  /** From sending request_body to its reply: where the router phase admits against quotas. */
  bodyReply?: number[];
}

/** The example policy's "smart" route: a chain whose first target is openai-gpt-4o. */
export const UPSTREAM_TARGET = PASSTHROUGH_TARGET;

/** The chain cluster the router phase picks for "smart" with no observations (first: OpenAI). */
export const UPSTREAM_CLUSTER = clusterOf(PASSTHROUGH_ROUTE, UPSTREAM_TARGET);

/** Chat requests for model "smart": OpenAI, no translation. */
export const PASSTHROUGH: Destination = { route: PASSTHROUGH_ROUTE, target: UPSTREAM_TARGET, cluster: UPSTREAM_CLUSTER };

/**
 * Chat requests for the Anthropic model (bench/policy.ts): the Anthropic target, the answer
 * translated to OpenAI chunks (the content-type src/translate/openai-to-anthropic-response.ts gives a
 * translated stream).
 */
export const TRANSLATED: Destination = {
  route: TRANSLATED_ROUTE,
  target: TRANSLATED_TARGET,
  cluster: clusterOf(TRANSLATED_ROUTE, TRANSLATED_TARGET),
  clientContentType: "text/event-stream; charset=utf-8",
};

const destinationOf = (c: RequestCase): Destination => c.destination ?? PASSTHROUGH;

/**
 * The provider's response headers as Envoy sends them: to the upstream phase as they arrive, to the
 * router phase with the upstream phase's x-llm-router-target added (and, translated, its
 * content-type). The same for both servers, so that both get the same messages.
 */
function responseHeadersMessage(c: RequestCase, routerSide: boolean): object {
  const destination = destinationOf(c);
  const headers: Record<string, string> = {
    ":status": "200",
    "content-type": (routerSide ? destination.clientContentType : undefined) ?? c.answer.contentType,
    ...c.answer.headers,
  };
  if (routerSide) headers[TARGET_RESPONSE_HEADER] = destination.target;
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

function upstreamExtras(token: string, destination: Destination): object {
  return {
    attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: destination.cluster }, [TARGET_ATTRIBUTE]: { stringValue: destination.target } } } },
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
      const attempt = await this.#openAttempt(upstreamHeaders(clientHeaders(c.body), routing), routing, c);
      // Upstream only, a body the upstream phase asks for goes to it and no further.
      const body = attempt.open ? await this.#relayBody(attempt.stream, undefined, c.answer.chunks) : undefined;
      await finish(attempt.stream, attempt.status, "upstream");
      trace = { router: undefined, upstream: attempt.replies, upstreamBody: body?.upstream, passedOn: body?.passedOn, routing };
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
    let attempt: Attempt | undefined;
    if (withUpstream) {
      routing = this.#orTemplate(routing);
      attempt = await this.#openAttempt(upstreamHeaders(headers, routing), routing, c);
      // As before translation: an attempt that does not ask for the body ends at its response
      // headers, before the router stream gets them.
      if (!attempt.open) await finish(attempt.stream, attempt.status, "upstream");
    }
    const responseHeaders = await exchange(s, "router", responseHeadersMessage(c, true));
    const router = asksForBody(responseHeaders) ? s : undefined;
    let trace: Trace;
    if (attempt?.open === true) {
      const body = await this.#relayBody(attempt.stream, router, c.answer.chunks);
      await finish(attempt.stream, attempt.status, "upstream");
      trace = {
        router: { requestHeaders, requestBody, responseHeaders, responseBody: body.router },
        upstream: attempt.replies,
        upstreamBody: body.upstream,
        passedOn: body.passedOn,
        routing,
      };
    } else {
      const responseBody = router === undefined ? [] : await this.#streamBody(s, c.answer.chunks);
      trace = { router: { requestHeaders, requestBody, responseHeaders, responseBody }, upstream: attempt?.replies, routing };
    }
    await finish(s, status, "router");
    return trace;
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

  /**
   * The attempt's stream: request headers, the body the router phase forwards, response headers.
   * Left open (the caller finishes it): `open` when the reply to response headers asks for the body.
   */
  async #openAttempt(headers: Record<string, string>, routing: Routing, c: RequestCase): Promise<Attempt> {
    const s = this.#client.open("upstream");
    const status = s.status();
    const replies: EnvoyResponse[] = [];
    for (const m of [headersMessage(headers, false, upstreamExtras(routing.token, destinationOf(c))), bodyMessage(routing.body ?? c.body), responseHeadersMessage(c, false)]) {
      replies.push(await exchange(s, "upstream", m));
    }
    return { stream: s, status, replies, open: asksForBody(replies[2]!) };
  }

  /**
   * A body the upstream phase asked for: the provider's chunks to the upstream stream as Envoy
   * sends them (STREAMED, without waiting for replies), and each chunk as its reply leaves it (the
   * body mutation's bytes; the chunk itself when the reply has none) on to the router stream, if
   * the router phase asked for the body, as soon as its reply is in, in order.
   *
   * A chunk the upstream phase empties (a translated event with no client counterpart: ping,
   * content_block_start/stop) is not passed on: Envoy's ext_proc injects a streamed chunk into the
   * filter chain only when it has data left (ProcessorState::handleBodyResponse in
   * source/extensions/filters/http/ext_proc/processor_state.cc); the last chunk always goes on,
   * since it carries end_of_stream.
   */
  async #relayBody(up: ExtProcStream, router: ExtProcStream | undefined, chunks: Buffer[]): Promise<{ upstream: EnvoyResponse[]; router: EnvoyResponse[]; passedOn: Buffer[] }> {
    const last = chunks.length - 1;
    const passedOn: Buffer[] = [];
    const routerReplies: Array<Promise<EnvoyResponse>> = [];
    const upstream = await Promise.all(
      chunks.map((body, i) =>
        up.send({ response_body: { body, end_of_stream: i === last } }).then((r) => {
          const out = bodyAfter(expectKind(r, "response_body", "upstream"), body);
          if (out.length === 0 && i !== last) return r;
          passedOn.push(out);
          if (router !== undefined) {
            const p = router.send({ response_body: { body: out, end_of_stream: i === last } });
            p.catch(() => undefined); // reported by Promise.all below, not as an unhandled rejection
            routerReplies.push(p);
          }
          return r;
        }),
      ),
    );
    const replies = await Promise.all(routerReplies);
    return { upstream, router: replies.map((r) => expectKind(r, "response_body", "router")), passedOn };
  }

  close(): void {
    this.#client.close();
  }
}

/** An upstream stream past its response headers. */
interface Attempt {
  stream: ExtProcStream;
  status: Promise<grpc.StatusObject>;
  /** The replies to request_headers, request_body and response_headers. */
  replies: EnvoyResponse[];
  /** The reply to response_headers asked for the body (a translated answer). */
  open: boolean;
}

/** A body chunk as Envoy applies a reply to it: replaced by the body mutation, emptied by clear_body, else unchanged. */
export function bodyAfter(reply: EnvoyResponse, chunk: Buffer): Buffer {
  const mutation = reply.response_body?.response?.body_mutation;
  if (mutation === undefined) return chunk;
  if (mutation.clear_body === true) return Buffer.alloc(0);
  return mutation.body ?? chunk;
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
