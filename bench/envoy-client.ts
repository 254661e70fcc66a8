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
//
// envoyRequest (the soak) plays the same request whatever the server answers: an ImmediateResponse
// to the request body (a cache hit, a 429) ends it, and attempts may fail (an upstream 5xx), which
// Envoy retries on the next priority of the chain cluster with a new upstream stream.
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

/** The example policy's gateway.clusterHeader: where the router phase names the chain cluster. */
const CLUSTER_HEADER = "x-llm-router-cluster";

/** What envoyRequest plays (see there). */
export interface EnvoyRequestOptions {
  /** The client's gateway key (default alice's). */
  key?: string;
  /** The provider's HTTP status for each failing attempt in turn (e.g. [503]: the first attempt fails, the retry answers). */
  failures?: readonly number[];
  /** Chain cluster -> its targets in priority order, of the policy the server runs (bench/policy.ts chainOrders). */
  chains: ReadonlyMap<string, readonly string[]>;
  /** Aborting cancels the request's open streams (for a server that never answers). */
  signal?: AbortSignal;
}

/** One attempt as envoyRequest played it. */
export interface AttemptTrace {
  target: string;
  /** What the provider answered (the failing status, or 200). */
  status: number;
  /** The upstream phase's replies to request_headers, request_body and response_headers. */
  replies: EnvoyResponse[];
}

/** What one envoyRequest saw. */
export interface EnvoyOutcome {
  /** The router phase's reply to request_body when it answered the request itself (ImmediateResponse). */
  immediate: EnvoyResponse | undefined;
  /** The router phase asked for more time (override_message_timeout) before it answered the body: a coalesced cache miss. */
  waited: boolean;
  routing: Routing | undefined;
  cluster: string | undefined;
  attempts: AttemptTrace[];
  router: RouterReplies | undefined;
  /** The response body the client gets: each chunk after the router phase's reply to it. */
  clientBody: Buffer | undefined;
}

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
  return responseHeadersFrom(headers);
}

function responseHeadersFrom(headers: Record<string, string>): object {
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

/** The client's request headers; `key`: its gateway key (default alice's). */
export function clientHeaders(body: Buffer, key = "sk-demo-alice"): Record<string, string> {
  return {
    ":method": "POST",
    ":path": "/v1/chat/completions",
    ":authority": "llm-gateway.internal:8080",
    ":scheme": "http",
    "content-type": "application/json",
    authorization: `Bearer ${key}`,
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

function upstreamExtras(token: string, destination: Pick<Destination, "cluster" | "target">): object {
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

/** A header map as Envoy leaves it after a reply's header mutation (set replaces, remove deletes). */
function applyMutation(headers: Record<string, string>, common: EnvoyCommon | undefined): void {
  const { set, remove } = mutationsOf(common);
  for (const name of remove) delete headers[name];
  for (const [name, value] of set) headers[name] = value;
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

  /**
   * One chat request as Envoy plays it whatever the server answers. The router stream's request
   * headers and body; an ImmediateResponse to the body (a cache hit, a 429) ends the request (a
   * reply asking for more time first, override_message_timeout, is waited through). Otherwise the
   * attempts, on the chain cluster the router phase chose, each on its own upstream stream with the
   * next target of the chain (the endpoint of the next priority): request headers (Envoy's one
   * header map, with every earlier attempt's mutations left in it, and x-envoy-attempt-count),
   * the body the router phase forwarded, and the provider's response headers. A failing attempt
   * (`failures`) answers its status and Envoy resets it (its stream is closed) and retries; its
   * back-off is not waited, since the server sees nothing of it. The answering attempt's response
   * headers go to the router stream with the upstream phase's mutations applied, then the body as
   * in request().
   */
  async envoyRequest(c: RequestCase, o: EnvoyRequestOptions): Promise<EnvoyOutcome> {
    const open: ExtProcStream[] = [];
    const cancel = () => {
      for (const st of open) st.cancel();
    };
    o.signal?.addEventListener("abort", cancel, { once: true });
    try {
      return await this.#envoyRequest(c, o, (phase) => {
        const st = this.#client.open(phase);
        open.push(st);
        return st;
      });
    } catch (err) {
      cancel();
      throw err;
    } finally {
      o.signal?.removeEventListener("abort", cancel);
    }
  }

  async #envoyRequest(c: RequestCase, o: EnvoyRequestOptions, openStream: (phase: "router" | "upstream") => ExtProcStream): Promise<EnvoyOutcome> {
    const s = openStream("router");
    const status = s.status();
    const headers = clientHeaders(c.body, o.key);
    const requestHeaders = await exchange(s, "router", headersMessage(headers));
    let requestBody = await s.send(bodyMessage(c.body));
    const outcome: EnvoyOutcome = { immediate: undefined, waited: false, routing: undefined, cluster: undefined, attempts: [], router: undefined, clientBody: undefined };
    // override_message_timeout sets no `response`: the answer follows.
    while (requestBody.response === undefined) {
      outcome.waited = true;
      requestBody = await s.next();
    }
    if (requestBody.response === "immediate_response") {
      await finish(s, status, "router");
      return { ...outcome, immediate: requestBody };
    }
    expectKind(requestBody, "request_body", "router");
    const routing = routingOf(requestHeaders, requestBody);
    if (routing === undefined) throw new Error("router phase made no routing decision");
    const cluster = new Map(routing.set).get(CLUSTER_HEADER);
    const order = cluster === undefined ? undefined : o.chains.get(cluster);
    if (cluster === undefined || order === undefined) throw new Error(`router phase chose cluster ${String(cluster)}, which is no chain cluster of the policy`);
    outcome.routing = routing;
    outcome.cluster = cluster;
    // Envoy's one request header map for every attempt of the request.
    const shared = upstreamHeaders(headers, routing);
    for (let n = 1; ; n++) {
      const target = order[n - 1];
      if (target === undefined) throw new Error(`chain cluster ${cluster} has no target for attempt ${n}`);
      const failure = o.failures?.[n - 1];
      shared["x-envoy-attempt-count"] = String(n);
      const up = openStream("upstream");
      const upStatus = up.status();
      const rh = await exchange(up, "upstream", headersMessage(shared, false, upstreamExtras(routing.token, { cluster, target })));
      applyMutation(shared, rh.request_headers?.response);
      const rb = await exchange(up, "upstream", bodyMessage(routing.body ?? c.body));
      applyMutation(shared, rb.request_body?.response);
      const answer: Record<string, string> =
        failure === undefined ? { ":status": "200", "content-type": c.answer.contentType, ...c.answer.headers } : { ":status": String(failure), "content-type": "application/json" };
      const resp = await exchange(up, "upstream", responseHeadersFrom(answer));
      outcome.attempts.push({ target, status: failure ?? 200, replies: [rh, rb, resp] });
      if (failure !== undefined) {
        // Envoy's closeStream() as the attempt is reset (as the test harness does).
        up.end();
        up.cancel();
        continue;
      }
      applyMutation(answer, resp.response_headers?.response);
      const relay = asksForBody(resp);
      if (!relay) await finish(up, upStatus, "upstream");
      const responseHeaders = await exchange(s, "router", responseHeadersFrom(answer));
      const router = asksForBody(responseHeaders) ? s : undefined;
      let responseBody: EnvoyResponse[];
      let passedOn = c.answer.chunks;
      if (relay) {
        const body = await this.#relayBody(up, router, c.answer.chunks);
        await finish(up, upStatus, "upstream");
        responseBody = body.router;
        passedOn = body.passedOn;
      } else {
        responseBody = router === undefined ? [] : await this.#streamBody(s, c.answer.chunks);
      }
      await finish(s, status, "router");
      outcome.router = { requestHeaders, requestBody, responseHeaders, responseBody };
      outcome.clientBody = Buffer.concat(router === undefined ? passedOn : responseBody.map((r, i) => bodyAfter(r, passedOn[i] ?? Buffer.alloc(0))));
      return outcome;
    }
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
