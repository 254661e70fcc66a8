// Router phase: the ext_proc filter in the HTTP connection manager (request headers SEND, request
// body BUFFERED). Authenticates on headers (no body needed to refuse), parses the body once, decides
// the route and its plan (first target, chain cluster, retries), and answers the body with the
// routing headers plus clear_route_cache so that Envoy re-matches the route on them.
import { randomUUID } from "node:crypto";
import { GatewayError } from "../api/errors";
import { formatForPath, parsePath, type ApiFormat, type Operation } from "../api/operations";
import type { RequestHeaders } from "../api/request-headers";
import { checkContentEncoding, checkContentType, decodeBody, parseJsonObject, requestedModel } from "../api/request-body";
import { authenticate } from "../auth/authenticate";
import type { RoutingContext } from "../context/routing-context";
import { CONTINUE, ProtocolError, type ExtProcMessage, type HeaderEdits, type PhaseReply, type StreamProcessor } from "../extproc/messages";
import type { CompiledCluster, CompiledConsumer, CompiledPolicy } from "../policy/compile";
import { decidePassthrough, decideRoute } from "../routing/decide";
import { featuresFor, planRoute, type RoutePlan } from "../routing/plan";
import { CONTEXT_HEADER, gatewayHeadersIn, MAX_RETRIES_HEADER, METADATA_CONTEXT_KEY, METADATA_NAMESPACE, PASSTHROUGH_ROUTE } from "./gateway-headers";
import type { PhaseDeps } from "./phase-deps";
import { answering } from "./replies";

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

export class RouterPhase implements StreamProcessor {
  readonly #policy: CompiledPolicy;
  #state: "headers" | "body" | "forwarding" | "done" = "headers";
  #format: ApiFormat = "openai";
  #pending: Pending | undefined;
  #plan: RoutePlan | undefined;

  constructor(private readonly deps: PhaseDeps) {
    this.#policy = deps.currentPolicy();
  }

  /** The plan made for this request (for `explain`), once the body was routed. */
  get plan(): RoutePlan | undefined {
    return this.#plan;
  }

  handle(message: ExtProcMessage): PhaseReply {
    switch (message.kind) {
      case "request_headers":
        if (this.#state !== "headers") throw new ProtocolError(`request_headers received in state ${this.#state}`);
        return answering(() => this.#format, () => this.#onHeaders(message.headers, message.endOfStream));
      case "request_body":
        if (this.#state === "forwarding") return CONTINUE;
        if (this.#state !== "body") throw new ProtocolError(`request_body received in state ${this.#state}`);
        return answering(() => this.#format, () => this.#onBody(message.body, message.endOfStream));
      case "request_trailers":
        if (this.#state === "headers") throw new ProtocolError("request_trailers before request_headers");
        return CONTINUE;
      default:
        // Response messages: this filter is configured not to send them; answering keeps a
        // differently configured Envoy working.
        return CONTINUE;
    }
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
    const requestId = headers.get("x-request-id") ?? randomUUID();

    if (operation === undefined) {
      const rule = decidePassthrough(pathname, policy);
      if (rule === undefined) throw new GatewayError("path_not_supported");
      const consumer = authenticate(headers, policy);
      this.#state = endOfStream ? "done" : "forwarding";
      const { target, cluster } = rule;
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
    if (endOfStream) throw new GatewayError("missing_body");
    this.#pending = { operation, pathAndQuery: `${pathname}${query}`, headers, consumer, encoding, requestId };
    this.#state = "body";
    return strip.remove.length > 0 ? { kind: "continue", headers: strip } : CONTINUE;
  }

  #onBody(received: Buffer, endOfStream: boolean): PhaseReply {
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
    const json = parseJsonObject(body);
    const model = requestedModel(json);
    const header = (n: string) => p.headers.get(n);
    const route = decideRoute({ operation: p.operation, model, header, consumer: p.consumer }, this.#policy);
    const now = this.deps.now();
    const { observations } = this.deps;
    const plan = planRoute(route, {
      operation: p.operation,
      features: featuresFor(route, p.operation, json, model),
      consumer: p.consumer,
      header,
      stats: (id) => observations.stats(id),
      now,
      random: this.deps.random,
    });
    this.#plan = plan;
    const { first: target, cluster } = plan;
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
    if (route.responseHeaders) ctx.rh = 1;
    if (p.consumer.team !== undefined) ctx.tm = p.consumer.team;
    const av = p.headers.get("anthropic-version");
    if (av !== undefined) ctx.av = av;
    const ab = p.headers.get("anthropic-beta");
    if (ab !== undefined) ctx.ab = ab;
    log.debug({ requestId: p.requestId, consumer: p.consumer.id, route: route.name, target: target.id, cluster: cluster.name, why: plan.ranking.reason, skipped: plan.skipped, model }, "routed");

    // Client-sent gateway headers were already removed in the reply to the request headers.
    const edits: HeaderEdits = { set: [], remove: [] };
    if (p.encoding) {
      // Forward the decoded body so the upstream phase and the provider see plain JSON.
      edits.remove.push("content-encoding");
      edits.set.push(["content-length", String(body.length)]);
    }
    const reply = this.#routeTo(route.name, cluster, plan.retriesLimited ? plan.retries : undefined, ctx, edits);
    if (p.encoding) reply.body = body;
    return reply;
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
