// Upstream phase: the ext_proc filter among a provider cluster's upstream HTTP filters, so it runs
// once per attempt (retries included). It rewrites the request for the target of this attempt:
// path, credentials, model, content-length; and removes the client's credentials and every
// gateway header. Envoy gives every attempt a fresh copy of the body but the SAME header map the
// previous attempt rewrote, so each attempt rebuilds path and credentials from the signed context
// and always clears every provider header, never trusting what the map holds.
import { GatewayError } from "../api/errors";
import { parsePath } from "../api/operations";
import type { RequestHeaders } from "../api/request-headers";
import { replaceTopLevelString } from "../api/json-splice";
import { parseJsonObject } from "../api/request-body";
import type { RoutingContext } from "../context/routing-context";
import { CONTINUE, ProtocolError, type ExtProcMessage, type JsonValue, type PhaseReply, type StreamProcessor } from "../extproc/messages";
import type { CompiledPolicy, CompiledTarget } from "../policy/compile";
import { PROVIDER_HEADERS } from "../providers/types";

const PROVIDER_HEADER_SET: ReadonlySet<string> = new Set(PROVIDER_HEADERS);
import { CONTEXT_HEADER, isGatewayHeader, METADATA_CONTEXT_KEY, METADATA_NAMESPACE } from "./gateway-headers";
import type { PhaseDeps } from "./phase-deps";

/** Path of a disarmed attempt (see #failingClosed); providers answer it with 404. */
export const REJECTED_PATH_PREFIX = "/__llm_router_refused__/";

/** request_attributes key naming the cluster of this attempt. */
export const CLUSTER_ATTRIBUTE = "xds.cluster_name";

export class UpstreamPhase implements StreamProcessor {
  readonly #policy: CompiledPolicy;
  #state: "headers" | "body" | "rejected" | "done" = "headers";
  #ctx: RoutingContext | undefined;
  #target: CompiledTarget | undefined;
  /** Provider headers this attempt set on its request headers. */
  #credentialsSet: string[] = [];

  constructor(private readonly deps: PhaseDeps) {
    this.#policy = deps.currentPolicy();
  }

  handle(message: ExtProcMessage): PhaseReply {
    switch (message.kind) {
      case "request_headers":
        if (this.#state !== "headers") throw new ProtocolError(`request_headers received in state ${this.#state}`);
        return this.#failingClosed(message.headers, message.endOfStream, () => this.#onHeaders(message.headers, message.endOfStream, message.metadata, message.attributes));
      case "request_body":
        if (this.#state === "rejected") {
          this.#state = "done";
          return emptyBody([], []);
        }
        if (this.#state !== "body") throw new ProtocolError(`request_body received in state ${this.#state}`);
        return this.#failingClosed(undefined, true, () => this.#onBody(message.body, message.endOfStream));
      case "request_trailers":
        if (this.#state === "headers") throw new ProtocolError("request_trailers before request_headers");
        return CONTINUE;
      default:
        return CONTINUE;
    }
  }

  /**
   * Envoy ignores ImmediateResponse from an upstream ext_proc filter (ext_proc.cc counts it in
   * send_immediate_resp_upstream_ignored and the attempt stalls until a timeout), and a gRPC error
   * ends the same way. So a refused attempt is not answered, it is disarmed: it continues with no
   * credentials at all (neither the client's nor the provider's), no gateway headers, an empty body
   * and a reserved path that no provider serves. Nothing of the prompt or of any key leaves; the
   * provider answers 404/401, which is not retried. The reason is logged with the request id.
   */
  #failingClosed(headers: RequestHeaders | undefined, endOfStream: boolean, step: () => PhaseReply): PhaseReply {
    try {
      return step();
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      this.deps.log.warn({ requestId: this.#ctx?.rid, code: err.code, target: this.#target?.id }, "upstream attempt refused and disarmed");
      const path: [string, string] = [":path", `${REJECTED_PATH_PREFIX}${err.code}`];
      if (headers === undefined) {
        // Refused on the body: with BUFFERED bodies Envoy still holds the headers, so the
        // credentials this attempt set on its headers can be taken back here.
        this.#state = "done";
        return emptyBody([path], this.#credentialsSet);
      }
      this.#state = endOfStream ? "done" : "rejected";
      return { kind: "continue", headers: { set: [path], remove: this.#strippable(headers, []) } };
    }
  }

  #onHeaders(
    headers: RequestHeaders,
    endOfStream: boolean,
    metadata: Record<string, Record<string, JsonValue>> | undefined,
    attributes: Record<string, JsonValue> | undefined,
  ): PhaseReply {
    const ctx = this.#context(headers, metadata);
    this.#ctx = ctx;

    const target = this.#policy.targets.get(ctx.t);
    if (target === undefined) {
      this.deps.log.warn({ requestId: ctx.rid, target: ctx.t }, "routed target is not in the current policy");
      throw new GatewayError("target_unavailable");
    }
    this.#target = target;
    const cluster = attributes?.[CLUSTER_ATTRIBUTE];
    if (typeof cluster === "string" && cluster !== target.config.cluster) {
      this.deps.log.error({ requestId: ctx.rid, cluster, target: target.id, expected: target.config.cluster }, "attempt reached a cluster that does not serve its target");
      throw new GatewayError("gateway_misconfigured");
    }

    const { pathname, query } = parsePath(ctx.p);
    const provider = target.provider;
    const rewrite = provider.adapter.rewrite({
      provider: provider.config,
      credential: provider.credential,
      target: { model: target.config.model, deployment: target.config.deployment },
      operation: ctx.op,
      originalPathname: pathname,
      originalQuery: query,
      clientAnthropicVersion: ctx.av,
      clientAnthropicBeta: ctx.ab,
    });
    const set: Array<[string, string]> = [[":path", rewrite.path], ...rewrite.setHeaders];
    const remove = this.#strippable(headers, set);
    this.#credentialsSet = rewrite.setHeaders.map(([k]) => k);
    this.#state = endOfStream ? "done" : "body";
    this.deps.log.debug({ requestId: ctx.rid, target: target.id, path: rewrite.path }, "attempt rewritten");
    return { kind: "continue", headers: { set, remove } };
  }

  /**
   * Headers present that must not reach the provider: provider credentials and settings (including
   * ones an earlier attempt set in the shared header map) and every gateway header, except those
   * this attempt sets itself.
   */
  #strippable(headers: RequestHeaders, set: ReadonlyArray<readonly [string, string]>): string[] {
    const remove: string[] = [];
    for (const name of headers.names()) {
      if ((PROVIDER_HEADER_SET.has(name) || isGatewayHeader(name, this.#policy.clusterHeader)) && !set.some(([k]) => k === name)) remove.push(name);
    }
    return remove;
  }

  #onBody(body: Buffer, endOfStream: boolean): PhaseReply {
    this.#state = "done";
    const ctx = this.#ctx;
    const target = this.#target;
    if (ctx === undefined || target === undefined) throw new ProtocolError("request_body before request_headers");
    if (!endOfStream) {
      this.deps.log.error("upstream phase received a partial body: configure request_body_mode: BUFFERED");
      throw new GatewayError("gateway_misconfigured");
    }
    // content-length is always restated: an earlier attempt may have changed it in the shared map.
    if (ctx.op === undefined || ctx.m === target.config.model) {
      return { kind: "continue", headers: { set: [["content-length", String(body.length)]], remove: [] } };
    }
    const rewritten = replaceTopLevelString(body, "model", target.config.model) ?? reserialiseWithModel(body, target.config.model);
    return { kind: "continue", headers: { set: [["content-length", String(rewritten.length)]], remove: [] }, body: rewritten };
  }

  #context(headers: RequestHeaders, metadata: Record<string, Record<string, JsonValue>> | undefined): RoutingContext {
    // Dynamic metadata first: the header is gone after an earlier attempt stripped it.
    const fromMetadata = metadata?.[METADATA_NAMESPACE]?.[METADATA_CONTEXT_KEY];
    const token = typeof fromMetadata === "string" ? fromMetadata : headers.get(CONTEXT_HEADER);
    if (token === undefined) {
      this.deps.log.error("upstream phase got a request without routing context: is the router phase configured on this listener?");
      throw new GatewayError("gateway_misconfigured");
    }
    if (headers.isRepeated(CONTEXT_HEADER)) throw new GatewayError("invalid_routing_context");
    const verified = this.deps.signer.verify(token, this.deps.now());
    if ("invalid" in verified) {
      this.deps.log.warn({ reason: verified.invalid }, "routing context rejected");
      throw new GatewayError("invalid_routing_context");
    }
    return verified;
  }
}

/** Slow path for bodies the splice does not handle: parse, set, serialise. */
function reserialiseWithModel(body: Buffer, model: string): Buffer {
  const json = parseJsonObject(body);
  json.model = model;
  return Buffer.from(JSON.stringify(json));
}

/** A body reply that withholds the body (content-length restated to 0). */
function emptyBody(set: Array<[string, string]>, remove: string[]): PhaseReply {
  return { kind: "continue", headers: { set: [...set, ["content-length", "0"]], remove }, body: Buffer.alloc(0) };
}
