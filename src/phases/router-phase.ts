// Router phase: the ext_proc filter in the HTTP connection manager (request headers SEND, request
// body BUFFERED, response headers SEND). Authenticates on headers (no body needed to refuse), parses
// the body once, decides the route and its plan (first target, chain cluster, retries), admits the
// request against its quotas, and answers the body with the routing headers plus clear_route_cache
// so that Envoy re-matches the route on them. On the response it adds the x-ratelimit-* headers,
// reads the usage from the body the client receives (STREAMED by mode_override, LLM answers only)
// and settles the quota reservation; a client that goes away is settled from what was relayed.
// Routes with a cache answer hits from it (an ImmediateResponse, no upstream call) and store the
// complete 200 answers of their misses. A stream that ends without its terminal event gets a final
// error event in the client's API format. When the stream closes, the request's summary (outcome,
// target, attempts, tokens, cost, timings) goes to the request sink: metrics and the log line.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { GatewayError, renderStreamError } from "../api/errors";
import { cacheKey, cacheMode } from "../cache/cache-key";
import type { CachedAnswer } from "../cache/cache-store";
import { CACHE_WAIT_MARGIN_MS, type CacheFill } from "../cache/response-cache";
import { formatForPath, parsePath, type ApiFormat, type Operation } from "../api/operations";
import type { RequestHeaders } from "../api/request-headers";
import { checkContentEncoding, checkContentType, decodeBody, parseJsonObject, requestedModel, type JsonObject } from "../api/request-body";
import { authenticate } from "../auth/authenticate";
import type { RoutingContext } from "../context/routing-context";
import { CONTINUE, ProtocolError, type ExtProcMessage, type HeaderEdits, type MessageKind, type PhaseReply, type StreamControl, type StreamOutcome, type StreamProcessor } from "../extproc/messages";
import type { CompiledCluster, CompiledConsumer, CompiledPolicy, CompiledRoute, CompiledTarget } from "../policy/compile";
import type { Admission } from "../overload/load-shedder";
import type { QuotaTicket } from "../quota/quota-gate";
import type { Reservation } from "../quota/limit-rules";
import type { RequestFeatures } from "../routing/strategy-types";
import { costNanoUsd, type Usage } from "../usage/usage";
import { UsageReader } from "../usage/usage-reader";
import { decidePassthrough, decideRoute } from "../routing/decide";
import { featuresFor, planRoute, type RoutePlan } from "../routing/plan";
import { attemptNumber, ATTEMPT_RESPONSE_HEADER, CACHE_HEADER, CONTEXT_HEADER, gatewayHeadersIn, MAX_RETRIES_HEADER, METADATA_CONTEXT_KEY, METADATA_NAMESPACE, PASSTHROUGH_ROUTE, TARGET_RESPONSE_HEADER } from "./gateway-headers";
import type { PhaseDeps } from "./phase-deps";
import { answering } from "./replies";
import type { RequestOutcome, RequestSummary } from "./request-summary";

/** A client's x-request-id is kept when it is this tame (it goes into logs and upstream requests). */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
export const REQUEST_ID_HEADER = "x-request-id";
/** Response header (routes with responseHeaders): the router phase's time before the request left, ms. */
export const OVERHEAD_HEADER = "x-llm-router-overhead-ms";
const ERROR_CODE_HEADER = "x-llm-router-error";

/** Headers whose repetition would make the request ambiguous to us or to the provider. */
const SINGLE_HEADERS = ["content-type", "content-encoding", "content-length", "anthropic-version"];

interface Pending {
  operation: Operation;
  pathAndQuery: string;
  headers: RequestHeaders;
  consumer: CompiledConsumer;
  encoding: string | undefined;
  requestId: string;
}

/** What the response side needs of a routed LLM request. */
interface Routed {
  operation: Operation;
  route: CompiledRoute;
  first: CompiledTarget;
  ticket: QuotaTicket;
  /** The gateway added stream_options.include_usage: its extra chunk is not the client's. */
  stripUsageChunk: boolean;
}

const STREAM_USAGE_OPERATIONS: ReadonlySet<Operation> = new Set(["chat.completions", "completions"]);

const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0 };
const NOTHING: Reservation = { tokens: 0, minTokens: 0, nanoUsd: 0, minNanoUsd: 0 };

/** What the answer used and cost, once settled. */
interface Accounted {
  usage: Usage;
  reported: boolean;
  nanoUsd: number;
  /** The answer's own `model`. */
  model: string | undefined;
}

/** The cache's part in a request that went upstream. */
interface CacheTrack {
  /** x-llm-cache on the answer. */
  header: "miss" | "bypass";
  /** Present while the answer may still be stored. */
  fill: CacheFill | undefined;
  ttlMs: number;
  maxBytes: number;
  chunks: Buffer[];
  bytes: number;
  contentType: string;
}

export class RouterPhase implements StreamProcessor {
  readonly #policy: CompiledPolicy;
  #state: "headers" | "body" | "forwarding" | "done" = "headers";
  #format: ApiFormat = "openai";
  #pending: Pending | undefined;
  #plan: RoutePlan | undefined;
  #routed: Routed | undefined;
  /** Reads the answer's usage once its headers said it is a success. */
  #reader: UsageReader | undefined;
  /** The target that answered (x-llm-router-target from the upstream phase). */
  #answeredBy: CompiledTarget | undefined;
  #cache: CacheTrack | undefined;

  // What the request summary needs, filled in as the request goes.
  readonly #start = performance.now();
  #requestId = "";
  #consumer: CompiledConsumer | undefined;
  #routeName: string | undefined;
  #operation: Operation | undefined;
  #model: string | undefined;
  #first: CompiledTarget | undefined;
  #status: number | undefined;
  #outcome: RequestOutcome | undefined;
  #errorCode: string | undefined;
  #attempts: number | undefined;
  #streaming = false;
  /** performance.now() of the answer's end, of the first output of a stream. */
  #endAt: number | undefined;
  #firstOutputAt: number | undefined;
  #accounted: Accounted | undefined;
  /** The router phase's own time so far (all messages answered), ms. */
  #overheadMs = 0;
  /** With --log-bodies: the first bytes of the answer, logged when it ends. */
  #answerBody: { parts: Buffer[]; bytes: number; total: number } | undefined;
  /** The stream closed; a Redis call it started may still complete after that. */
  #closed = false;
  /** Its place among the requests in flight (gateway.overload), given back when the stream ends. */
  #admission: Admission | undefined;

  constructor(private readonly deps: PhaseDeps) {
    this.#policy = deps.currentPolicy();
  }

  /** The plan made for this request (for `explain`), once the body was routed. */
  get plan(): RoutePlan | undefined {
    return this.#plan;
  }

  handle(message: ExtProcMessage, control?: StreamControl): PhaseReply | Promise<PhaseReply> {
    switch (message.kind) {
      case "request_headers":
        if (this.#state !== "headers") throw new ProtocolError(`request_headers received in state ${this.#state}`);
        return this.#stamped(answering(() => this.#format, () => this.#onHeaders(message.headers, message.endOfStream)));
      case "request_body":
        if (this.#state === "forwarding") return CONTINUE;
        if (this.#state !== "body") throw new ProtocolError(`request_body received in state ${this.#state}`);
        return this.#stamped(answering(() => this.#format, () => this.#onBody(message.body, message.endOfStream, control)));
      case "request_trailers":
        if (this.#state === "headers") throw new ProtocolError("request_trailers before request_headers");
        return CONTINUE;
      case "response_headers":
        return this.#onResponseHeaders(message.headers, message.endOfStream);
      case "response_body":
        return this.#onResponseBody(message.body, message.endOfStream);
      default:
        return CONTINUE;
    }
  }

  answered(_kind: MessageKind, seconds: number): void {
    this.#overheadMs += seconds * 1000;
  }

  close(outcome: StreamOutcome): void {
    this.#closed = true;
    this.#admission?.release();
    // When the stream ends before the response did (client gone, upstream reset, Envoy timeout),
    // the cache entry is given up and the reservation settled from what was relayed.
    void this.#cache?.fill?.abandon();
    const routed = this.#routed;
    if (routed !== undefined && !routed.ticket.settled) this.#settle(routed);
    this.#outcome ??= outcome === "error" ? "error" : "cancelled";
    this.deps.requests.completed(this.#summary());
  }

  #summary(): RequestSummary {
    const end = this.#endAt ?? performance.now();
    const accounted = this.#accounted;
    const first = this.#first;
    const ttft = this.#streaming && this.#firstOutputAt !== undefined ? this.#firstOutputAt - this.#start : undefined;
    const output = accounted?.usage.outputTokens ?? 0;
    const tpot = ttft !== undefined && this.#outcome === "success" && output > 1 ? (end - this.#start - ttft) / (output - 1) : undefined;
    return {
      requestId: this.#requestId,
      policy: this.#policy,
      consumer: this.#consumer,
      route: this.#routeName,
      operation: this.#operation,
      requestedModel: this.#model,
      firstTarget: first,
      target: this.#answeredBy ?? first,
      attempts: this.#attempts,
      status: this.#status,
      outcome: this.#outcome ?? "cancelled",
      errorCode: this.#errorCode,
      cache: this.#cache?.header ?? (this.#outcome === "cache_hit" ? "hit" : undefined),
      streaming: this.#streaming,
      responseModel: accounted?.model,
      usage: accounted?.usage,
      usageReported: accounted?.reported ?? false,
      nanoUsd: accounted?.nanoUsd ?? 0,
      reserved: this.#routed?.ticket.reservation,
      durationMs: end - this.#start,
      ttftMs: ttft,
      tpotMs: tpot,
      overheadMs: this.#overheadMs,
    };
  }

  /**
   * Every answer the gateway gives itself (errors, cache hits) carries the request id, and ends the
   * request: an error reply is a refusal.
   */
  #stamped(reply: PhaseReply | Promise<PhaseReply>): PhaseReply | Promise<PhaseReply> {
    const stamp = (r: PhaseReply): PhaseReply => {
      if (r.kind !== "immediate") return r;
      // The request is over: another request message on this stream (a second request_headers
      // after a refusal on the first) is out of order, not a new request.
      this.#state = "done";
      this.#endAt = performance.now();
      this.#status = r.status;
      if (this.#outcome === undefined) {
        this.#outcome = "refused";
        this.#errorCode = r.headers.find(([k]) => k === ERROR_CODE_HEADER)?.[1];
      }
      if (this.#requestId !== "") r.headers.push([REQUEST_ID_HEADER, this.#requestId]);
      return r;
    };
    return reply instanceof Promise ? reply.then(stamp) : stamp(reply);
  }

  #onHeaders(headers: RequestHeaders, endOfStream: boolean): PhaseReply {
    const rawPath = headers.get(":path");
    if (rawPath === undefined) throw new ProtocolError("request_headers without :path");
    const { pathname, query, operation } = parsePath(rawPath);
    this.#format = formatForPath(pathname);
    const policy = this.#policy;
    // Clients never set routing headers, nor Envoy's retry cap (Envoy strips x-envoy-* from
    // external clients; this covers a listener that trusts them).
    const remove = gatewayHeadersIn(headers.names(), policy);
    if (headers.get(MAX_RETRIES_HEADER) !== undefined) remove.push(MAX_RETRIES_HEADER);
    const strip: HeaderEdits = { set: [], remove };
    // Envoy generates one unless told not to; a missing or untamed one is replaced, and the
    // provider, the logs and the client all see the same id.
    const sentId = headers.get(REQUEST_ID_HEADER);
    const requestId = sentId !== undefined && REQUEST_ID.test(sentId) ? sentId : randomUUID();
    if (requestId !== sentId) strip.set.push([REQUEST_ID_HEADER, requestId]);
    this.#requestId = requestId;
    // Shed load before any work on the request: no authentication, no body.
    this.#admission = this.deps.load.admit(policy.overload);

    if (operation === undefined) {
      const rule = decidePassthrough(pathname, policy);
      if (rule === undefined) throw new GatewayError("path_not_supported");
      const consumer = authenticate(headers, policy);
      this.#consumer = consumer;
      this.#state = endOfStream ? "done" : "forwarding";
      const { target, cluster } = rule;
      this.#routeName = PASSTHROUGH_ROUTE;
      this.#first = target;
      const ctx: RoutingContext = { rid: requestId, c: consumer.id, t: target.id, ch: [target.id], cl: cluster.name, p: rawPath, iat: this.deps.now() };
      if (consumer.team !== undefined) ctx.tm = consumer.team;
      this.deps.log.debug({ requestId, consumer: consumer.id, target: target.id, path: pathname }, "passthrough");
      return this.#routeTo(PASSTHROUGH_ROUTE, cluster, undefined, ctx, strip);
    }

    if (headers.get(":method") !== "POST") throw new GatewayError("method_not_allowed");
    for (const h of SINGLE_HEADERS) if (headers.isRepeated(h)) throw new GatewayError("duplicate_header", `Send \`${h}\` once.`);
    checkContentType(headers.get("content-type"));
    const encoding = checkContentEncoding(headers.get("content-encoding"));
    const consumer = authenticate(headers, policy);
    this.#consumer = consumer;
    this.#operation = operation;
    if (endOfStream) throw new GatewayError("missing_body");
    this.#pending = { operation, pathAndQuery: `${pathname}${query}`, headers, consumer, encoding, requestId };
    this.#state = "body";
    return strip.remove.length + strip.set.length > 0 ? { kind: "continue", headers: strip } : CONTINUE;
  }

  #onBody(received: Buffer, endOfStream: boolean, control: StreamControl | undefined): PhaseReply | Promise<PhaseReply> {
    const p = this.#pending;
    if (p === undefined) throw new ProtocolError("request_body without request_headers");
    this.#state = "done";
    const { maxBodyBytes, log } = this.deps;
    if (received.length > maxBodyBytes) throw new GatewayError("body_too_large");
    if (!endOfStream) {
      // BUFFERED delivers the whole body at once; a partial one means STREAMED / BUFFERED_PARTIAL.
      log.error("router phase received a partial body: configure request_body_mode: BUFFERED");
      throw new GatewayError("gateway_misconfigured");
    }
    const body = p.encoding ? decodeBody(received, p.encoding, maxBodyBytes) : received;
    this.#logBody("request body", body);
    const json = parseJsonObject(body);
    const model = requestedModel(json);
    this.#model = model;
    const header = (n: string) => p.headers.get(n);
    const route = decideRoute({ operation: p.operation, model, header, consumer: p.consumer }, this.#policy);
    this.#routeName = route.name;
    const now = this.deps.now();
    const { observations } = this.deps;
    const features = featuresFor(route, p.operation, json, model);
    const plan = planRoute(route, {
      operation: p.operation,
      body: json,
      features,
      consumer: p.consumer,
      header,
      stats: (id) => observations.stats(id),
      now,
      random: this.deps.random,
    });
    this.#plan = plan;
    const { first: target, cluster } = plan;
    this.#first = target;
    const ctx: RoutingContext = {
      rid: p.requestId,
      c: p.consumer.id,
      r: route.name,
      t: target.id,
      ch: cluster.order.map((t) => t.id),
      cl: cluster.name,
      op: p.operation,
      p: p.pathAndQuery,
      m: model,
      iat: now,
    };
    if (p.consumer.team !== undefined) ctx.tm = p.consumer.team;
    if (features.stream) ctx.s = 1;
    const av = p.headers.get("anthropic-version");
    if (av !== undefined) ctx.av = av;
    const ab = p.headers.get("anthropic-beta");
    if (ab !== undefined) ctx.ab = ab;
    log.debug({ requestId: p.requestId, consumer: p.consumer.id, route: route.name, target: target.id, cluster: cluster.name, why: plan.ranking.reason, skipped: plan.skipped, model }, "routed");

    // Client-sent gateway headers were already removed in the reply to the request headers.
    const edits: HeaderEdits = { set: [], remove: [] };
    let forward = p.encoding ? body : undefined;
    // Usage of a stream comes only in a last chunk the client must ask for; ask on its behalf.
    const stripUsageChunk = route.streamUsage && STREAM_USAGE_OPERATIONS.has(p.operation) && features.stream && !asksForUsage(json);
    if (stripUsageChunk) forward = withStreamUsage(body, json);
    if (forward !== undefined) {
      // Forward the decoded (and amended) body so the upstream phase and the provider see plain JSON.
      if (p.encoding) edits.remove.push("content-encoding");
      edits.set.push(["content-length", String(forward.length)]);
    }
    const reply = this.#routeTo(route.name, cluster, plan.retriesLimited ? plan.retries : undefined, ctx, edits);
    if (forward !== undefined) reply.body = forward;

    const subject = { consumer: p.consumer, route: route.name, target: target.id };
    const upstream = (): PhaseReply | Promise<PhaseReply> => {
      const admitted = this.deps.quota.admit(this.#policy.limits, subject, reservationFor(p.operation, route, target, features), now);
      const routed = (ticket: QuotaTicket): PhaseReply => {
        // The stream closed while the admission waited for Redis: close() had nothing to settle and
        // the reply goes nowhere, so the charge and any concurrency lease are given back now
        // (otherwise a lease stays held until leaseTtl).
        if (this.#closed) {
          void ticket.settle(undefined, this.deps.now());
          return reply;
        }
        this.#routed = { operation: p.operation, route, first: target, ticket, stripUsageChunk };
        return reply;
      };
      return admitted instanceof Promise ? admitted.then(routed) : routed(admitted);
    };

    const cache = route.cache;
    if (cache === undefined) return upstream();
    const mode = cacheMode(p.operation, json, header("cache-control"));
    const track = (header: CacheTrack["header"], fill: CacheFill | undefined) => {
      this.#cache = { header, fill, ttlMs: cache.ttlMs, maxBytes: cache.maxEntryBytes, chunks: [], bytes: 0, contentType: "" };
    };
    if (mode === "bypass") {
      track("bypass", undefined);
      return upstream();
    }
    const key = cacheKey(cache, route.name, p.consumer, p.operation, json, av);
    const lookup = this.deps.cache.lookup(key, {
      read: mode === "lookup",
      waitMs: cache.coalesceWaitMs,
      onWait: () => control?.extendTimeout(cache.coalesceWaitMs + CACHE_WAIT_MARGIN_MS),
    });
    return lookup.then((found) => {
      if (this.#closed) {
        // The stream closed while the lookup waited for Redis (or for an identical request): a
        // claim taken now would hold identical requests for coalesceWait, so it is given up at once.
        if (found.kind === "miss") void found.fill.abandon();
        return CONTINUE;
      }
      if (found.kind === "hit") return this.#answerFromCache(found.answer, route, subject);
      track("miss", found.fill);
      // A refusal by the quotas must not keep identical requests waiting for this one.
      const released = (err: unknown) => {
        void found.fill.abandon();
        throw err;
      };
      try {
        const r = upstream();
        return r instanceof Promise ? r.catch(released) : r;
      } catch (err) {
        return released(err);
      }
    });
  }

  /**
   * A cache hit: no upstream call. It still counts against request limits (and concurrency, for
   * the moment it is answered) but uses no tokens and costs nothing.
   */
  async #answerFromCache(answer: CachedAnswer, route: CompiledRoute, subject: { consumer: CompiledConsumer; route: string; target: string }): Promise<PhaseReply> {
    const now = this.deps.now();
    const ticket = await this.deps.quota.admit(this.#policy.limits, subject, NOTHING, now);
    void ticket.settle({ usage: NO_USAGE, nanoUsd: 0, target: answer.target }, now);
    this.#outcome = "cache_hit";
    this.#answeredBy = this.#policy.targets.get(answer.target);
    const headers: Array<[string, string]> = [
      ["content-type", answer.contentType],
      [CACHE_HEADER, "hit"],
      ["age", String(Math.max(0, Math.floor((Date.now() - answer.storedAt) / 1000)))],
      ...ticket.headers,
    ];
    if (route.responseHeaders) headers.push([TARGET_RESPONSE_HEADER, answer.target]);
    return { kind: "immediate", status: 200, headers, body: answer.body, details: "llm_router_cache_hit" };
  }

  #onResponseHeaders(headers: RequestHeaders, endOfStream: boolean): PhaseReply {
    const status = Number(headers.get(":status"));
    const success = status >= 200 && status < 300;
    this.#status = Number.isInteger(status) ? status : undefined;
    // The upstream phase names the answering target and Envoy's attempt number on every answer a
    // target gave; an answer without them is Envoy's own (no target answered).
    const named = headers.get(TARGET_RESPONSE_HEADER);
    const answeredBy = named === undefined ? undefined : this.#policy.targets.get(named);
    if (answeredBy !== undefined) {
      this.#answeredBy = answeredBy;
      this.#attempts = attemptNumber(headers.get(ATTEMPT_RESPONSE_HEADER)) ?? 1;
    }
    const routed = this.#routed;
    // Only a routed success streams its body through this phase; any other answer ends here.
    if (!success || endOfStream || routed === undefined) {
      this.#outcome = success ? "success" : "upstream_error";
      this.#endAt = performance.now();
    }
    // Envoy returns the id too where always_set_request_id_in_response is on; this covers the rest.
    const requestId: [string, string] = [REQUEST_ID_HEADER, this.#requestId];
    if (routed === undefined) {
      // Passthrough: nothing to account, and the target stays internal. No request id at all: Envoy
      // runs encoder filters on local replies made before this filter saw the request (envoyproxy/envoy#11447),
      // so there is none to return, and an empty x-request-id would be worse than none.
      return { kind: "continue", headers: { set: this.#requestId === "" ? [] : [requestId], remove: named === undefined ? [] : [TARGET_RESPONSE_HEADER, ATTEMPT_RESPONSE_HEADER] } };
    }
    const set: Array<[string, string]> = [...routed.ticket.headers, requestId];
    const remove: string[] = [];
    const cache = this.#cache;
    if (cache !== undefined) set.push([CACHE_HEADER, cache.header]);
    this.#answeredBy ??= routed.first;
    // Quotas and cost need the target; clients see it, the attempt and the overhead only where the
    // route says so.
    if (routed.route.responseHeaders) set.push([OVERHEAD_HEADER, this.#overheadMs.toFixed(3)]);
    else if (named !== undefined) remove.push(TARGET_RESPONSE_HEADER, ATTEMPT_RESPONSE_HEADER);
    if (cache?.fill !== undefined && (endOfStream || !storable(status, headers))) {
      void cache.fill.abandon();
      cache.fill = undefined;
    }
    if (!success || endOfStream) {
      // Failed answers (and empty ones) used nothing: the reservation is released.
      void routed.ticket.settle(undefined, this.deps.now());
      return set.length + remove.length === 0 ? CONTINUE : { kind: "continue", headers: { set, remove } };
    }
    if (cache !== undefined) cache.contentType = headers.get("content-type") ?? "application/json";
    const streaming = (headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream");
    this.#streaming = streaming;
    this.#reader = new UsageReader({ operation: routed.operation, streaming, stripUsageChunk: routed.stripUsageChunk, maxJsonBytes: this.deps.maxBodyBytes });
    return { kind: "continue", headers: { set, remove }, streamResponseBody: true };
  }

  #onResponseBody(chunk: Buffer, endOfStream: boolean): PhaseReply {
    const reader = this.#reader;
    const routed = this.#routed;
    if (reader === undefined || routed === undefined) return CONTINUE;
    const replacement = reader.push(chunk, endOfStream);
    this.#keepLoggedBody(replacement ?? chunk, endOfStream);
    if (this.#firstOutputAt === undefined && reader.outputStarted) this.#firstOutputAt = performance.now();
    const cache = this.#cache;
    if (cache?.fill !== undefined) this.#keep(cache, chunk, endOfStream);
    if (!endOfStream) return replacement === undefined ? CONTINUE : { kind: "continue", body: replacement };
    this.#endAt = performance.now();
    this.#settle(routed);
    const report = reader.report();
    if (!this.#streaming || report.terminal || report.errorSeen) {
      this.#outcome = report.errorSeen ? "upstream_error" : "success";
      return replacement === undefined ? CONTINUE : { kind: "continue", body: replacement };
    }
    // The provider ended a stream without its terminal event: the client would take the partial
    // answer for a whole one. It gets an error event instead, after a line break when the stream
    // stopped inside an event, so that the error is an event of its own.
    this.#outcome = "truncated";
    this.deps.log.warn({ requestId: this.#requestId, route: routed.route.name, target: this.#answeredBy?.id }, "upstream stream ended without its terminal event");
    const event = renderStreamError(new GatewayError("upstream_stream_truncated"), routed.operation);
    const parts = [replacement ?? chunk, ...(reader.midEvent ? [Buffer.from("\n\n")] : []), event];
    return { kind: "continue", body: Buffer.concat(parts) };
  }

  /** With --log-bodies: the (decoded) body at debug, cut at logBodyBytes. */
  #logBody(what: string, body: Buffer): void {
    const max = this.deps.logBodyBytes ?? 0;
    if (max === 0 || !this.deps.log.isLevelEnabled("debug")) return;
    this.deps.log.debug({ requestId: this.#requestId, bytes: body.length, body: body.subarray(0, max).toString("utf8"), truncated: body.length > max || undefined }, what);
  }

  /** With --log-bodies: the answer as relayed to the client, logged once it ends (first logBodyBytes bytes kept). */
  #keepLoggedBody(chunk: Buffer, endOfStream: boolean): void {
    const max = this.deps.logBodyBytes ?? 0;
    if (max === 0 || !this.deps.log.isLevelEnabled("debug")) return;
    const kept = (this.#answerBody ??= { parts: [], bytes: 0, total: 0 });
    kept.total += chunk.length;
    if (kept.bytes < max && chunk.length > 0) {
      const part = chunk.subarray(0, max - kept.bytes);
      kept.parts.push(Buffer.from(part));
      kept.bytes += part.length;
    }
    if (!endOfStream) return;
    const body = Buffer.concat(kept.parts, kept.bytes);
    this.deps.log.debug({ requestId: this.#requestId, bytes: kept.total, body: body.toString("utf8"), truncated: kept.total > max || undefined }, "response body");
  }

  /** Collects a miss's answer; stores it once whole and complete (never an error or a partial body). */
  #keep(cache: CacheTrack, chunk: Buffer, endOfStream: boolean): void {
    const fill = cache.fill;
    if (fill === undefined) return;
    cache.bytes += chunk.length;
    if (cache.bytes > cache.maxBytes) {
      void fill.abandon();
      cache.fill = undefined;
      cache.chunks = [];
      return;
    }
    if (chunk.length > 0) cache.chunks.push(chunk);
    if (!endOfStream) return;
    cache.fill = undefined;
    const report = this.#reader?.report();
    if (report === undefined || !report.terminal || report.errorSeen) {
      void fill.abandon();
      return;
    }
    const target = (this.#answeredBy ?? this.#routed?.first)?.id ?? "";
    void fill.store({ body: Buffer.concat(cache.chunks, cache.bytes), contentType: cache.contentType, target, storedAt: Date.now() }, cache.ttlMs);
    cache.chunks = [];
  }

  /** Settles the reservation from the usage read (or estimated, for an answer cut short). */
  #settle(routed: Routed): void {
    this.#accounted = this.#settlement(routed);
  }

  #settlement(routed: Routed): Accounted | undefined {
    const now = this.deps.now();
    const reader = this.#reader;
    if (reader === undefined) {
      void routed.ticket.settle(undefined, now);
      return undefined;
    }
    const report = reader.report();
    const usage: Usage = report.usage ?? {
      inputTokens: report.inputTokensSeen ?? routed.ticket.reservation.minTokens,
      outputTokens: report.estimatedOutputTokens,
      cachedInputTokens: 0,
      cacheWriteInputTokens: 0,
      reasoningTokens: 0,
    };
    const target = this.#answeredBy ?? routed.first;
    const price = target.config.price;
    if (report.usage === undefined) this.deps.log.debug({ requestId: this.#requestId, target: target.id, usage }, "no usage reported: settled from estimates");
    const nanoUsd = price === undefined ? 0 : costNanoUsd(usage, price);
    void routed.ticket.settle({ usage, nanoUsd, target: target.id }, now);
    return { usage, reported: report.usage !== undefined, nanoUsd, model: report.model };
  }

  #routeTo(routeName: string, cluster: CompiledCluster, maxRetries: number | undefined, ctx: RoutingContext, edits: HeaderEdits): PhaseReply & { kind: "continue" } {
    const token = this.deps.signer.sign(ctx);
    const policy = this.#policy;
    const set: Array<[string, string]> = [
      [policy.routeHeader, routeName],
      [policy.clusterHeader, cluster.name],
      [CONTEXT_HEADER, token],
    ];
    if (maxRetries !== undefined) set.push([MAX_RETRIES_HEADER, String(maxRetries)]);
    // Headers we set are not also removed (Envoy applies removals and sets in its own order).
    const remove = edits.remove.filter((h) => !set.some(([k]) => k === h));
    return {
      kind: "continue",
      headers: { set: [...edits.set, ...set], remove },
      clearRouteCache: true,
      dynamicMetadata: { [METADATA_NAMESPACE]: { [METADATA_CONTEXT_KEY]: token } },
    };
  }
}

/**
 * What a request reserves: its prompt estimate plus the output it may produce (max_tokens, else the
 * route's default, capped by the target), and their cost at the first target's price.
 */
export function reservationFor(operation: Operation, route: CompiledRoute, target: CompiledTarget, features: RequestFeatures): Reservation {
  const prompt = features.promptTokens;
  const output = operation === "embeddings" ? 0 : Math.min(features.maxOutputTokens ?? route.reserveOutputTokens, target.config.maxOutputTokens ?? Infinity);
  const price = target.config.price;
  const usage = (outputTokens: number): Usage => ({ inputTokens: prompt, outputTokens, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0 });
  return {
    tokens: prompt + output,
    minTokens: prompt,
    nanoUsd: price === undefined ? 0 : costNanoUsd(usage(output), price),
    minNanoUsd: price === undefined ? 0 : costNanoUsd(usage(0), price),
  };
}

/** Only whole, plain JSON successes are cached: no errors, no streams, no encoded bodies. */
function storable(status: number, headers: RequestHeaders): boolean {
  if (status !== 200) return false;
  const type = (headers.get("content-type") ?? "").toLowerCase();
  const encoding = (headers.get("content-encoding") ?? "identity").toLowerCase();
  return type.startsWith("application/json") && encoding === "identity";
}

function asksForUsage(json: JsonObject): boolean {
  const opts = json["stream_options"];
  return typeof opts === "object" && opts !== null && (opts as Record<string, unknown>)["include_usage"] === true;
}

/** The body with stream_options.include_usage set: spliced in when absent, else re-serialised. */
function withStreamUsage(body: Buffer, json: JsonObject): Buffer {
  const opts = json["stream_options"];
  if (opts === undefined) {
    let end = body.length - 1;
    while (end > 0 && body[end] !== 0x7d) end--;
    if (end > 0) return Buffer.concat([body.subarray(0, end), Buffer.from(',"stream_options":{"include_usage":true}'), body.subarray(end)]);
  }
  const base = typeof opts === "object" && opts !== null && !Array.isArray(opts) ? opts : {};
  return Buffer.from(JSON.stringify({ ...json, stream_options: { ...base, include_usage: true } }));
}
