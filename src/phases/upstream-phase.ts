// Upstream phase: the ext_proc filter among a chain cluster's upstream HTTP filters, so it runs
// once per attempt (retries included). The attempt's target is the one its endpoint's metadata names
// (a retry reaches the next priority of the chain cluster, i.e. the next target). It rewrites the
// request for that target: path, credentials, model, content-length; and removes the client's
// credentials and every gateway header. Envoy gives every attempt a fresh copy of the body but the
// SAME header map the previous attempt rewrote, so each attempt rebuilds path and credentials from
// the signed context and always clears every provider header, never trusting what the map holds.
// On the attempt's response headers it records what the target did (latency, failures, cooldowns)
// and names the target and attempt number for the router phase (which shows them to the client
// where the route says so). When the attempt's stream closes, its summary goes to the request sink.
import { GatewayError, renderError } from "../api/errors";
import { OPERATIONS, parsePath, type ApiFormat } from "../api/operations";
import type { RequestHeaders } from "../api/request-headers";
import { replaceTopLevelString } from "../api/json-splice";
import { parseJsonObject } from "../api/request-body";
import type { RoutingContext } from "../context/routing-context";
import { CONTINUE, ProtocolError, type ExtProcMessage, type JsonValue, type MessageKind, type PhaseReply, type StreamOutcome, type StreamProcessor } from "../extproc/messages";
import type { CompiledPolicy, CompiledTarget } from "../policy/compile";
import { PROVIDER_HEADERS } from "../providers/types";
import { translationFor } from "../translate/registry";
import type { ResponseTranslator, TranslatedRequest, Translation } from "../translate/types";
import { retryAfterMs } from "../routing/observations";
import {
  attemptNumber,
  ATTEMPT_COUNT_HEADER,
  ATTEMPT_RESPONSE_HEADER,
  CONTEXT_HEADER,
  isGatewayHeader,
  METADATA_CONTEXT_KEY,
  METADATA_NAMESPACE,
  TARGET_ATTRIBUTE,
  TARGET_RESPONSE_HEADER,
} from "./gateway-headers";
import type { PhaseDeps } from "./phase-deps";

const PROVIDER_HEADER_SET: ReadonlySet<string> = new Set(PROVIDER_HEADERS);
const EMPTY = Buffer.alloc(0);

/** Path of a disarmed attempt (see #failingClosed); providers answer it with 404. */
export const REJECTED_PATH_PREFIX = "/__llm_router_refused__/";

/** Output limit sent to a provider that requires one (Anthropic) when neither client nor target sets it. */
export const DEFAULT_MAX_TOKENS = 4096;

/** A translated non-streamed answer (JSON or error) is held until complete, up to this size. */
const MAX_HELD_RESPONSE_BYTES = 64 * 1024 * 1024;

/** request_attributes key naming the cluster of this attempt. */
export const CLUSTER_ATTRIBUTE = "xds.cluster_name";

export class UpstreamPhase implements StreamProcessor {
  readonly #policy: CompiledPolicy;
  #state: "headers" | "body" | "rejected" | "done" = "headers";
  #ctx: RoutingContext | undefined;
  #target: CompiledTarget | undefined;
  /** Provider headers this attempt set on its request headers. */
  #credentialsSet: string[] = [];
  /** The path this attempt was rewritten to (SigV4 signs it). */
  #path = "";
  /** Envoy's attempt number (x-envoy-attempt-count), when the virtual host sends it. */
  #attempt: string | undefined;
  /** performance.now() when the attempt was rewritten and sent on; undefined until then. */
  #sentAt: number | undefined;
  #status: number | undefined;
  #latencyMs: number | undefined;
  #cooldownEntered = false;
  /** The upstream phase's own time for this attempt, ms. */
  #overheadMs = 0;
  /** Set when the target does not serve the client's API natively: this attempt is translated. */
  #translation: Translation | undefined;
  #translated: TranslatedRequest | undefined;
  /** The answer's translation: a stream chunk by chunk, or a whole JSON or error body. */
  #answer: { translator: ResponseTranslator; mode: "stream" | "json" | "error"; status: number; headers: RequestHeaders; held: Buffer[]; heldBytes: number } | undefined;

  constructor(private readonly deps: PhaseDeps) {
    this.#policy = deps.currentPolicy();
  }

  handle(message: ExtProcMessage): PhaseReply | Promise<PhaseReply> {
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
      case "response_headers":
        return this.#onResponseHeaders(message.headers);
      case "response_body":
        return this.#onResponseBody(message.body, message.endOfStream);
      default:
        return CONTINUE;
    }
  }

  answered(_kind: MessageKind, seconds: number): void {
    this.#overheadMs += seconds * 1000;
  }

  close(_outcome: StreamOutcome): void {
    const target = this.#target;
    if (target === undefined || this.#sentAt === undefined) return;
    // An attempt that ends without response headers (connect failure, reset, timeout) is not
    // counted against the target: the client going away looks the same from here. Envoy's outlier
    // detection, which sees the connection itself, ejects such a target from the chain cluster.
    this.deps.observations.attemptEnded(target.id);
    this.deps.requests.attempted({
      requestId: this.#ctx?.rid ?? "",
      route: this.#ctx?.r,
      target,
      attempt: attemptNumber(this.#attempt),
      status: this.#status,
      latencyMs: this.#latencyMs,
      cooldownEntered: this.#cooldownEntered,
      overheadMs: this.#overheadMs,
    });
  }

  #onResponseHeaders(headers: RequestHeaders): PhaseReply {
    const target = this.#target;
    const ctx = this.#ctx;
    if (target === undefined || ctx === undefined || this.#sentAt === undefined) return CONTINUE;
    const status = Number(headers.get(":status"));
    const header = (n: string) => headers.get(n);
    const wait = retryAfterMs(header);
    const latencyMs = performance.now() - this.#sentAt;
    this.#status = Number.isInteger(status) ? status : undefined;
    this.#latencyMs = latencyMs;
    const effect = this.deps.observations.responded(target.id, { status, latencyMs, retryAfterMs: wait });
    this.#cooldownEntered = effect.cooldownEntered;
    this.#logEffect(target, effect, `status ${status}`);
    const set: Array<[string, string]> = [];
    // Envoy's rate-limited back-off reads retry-after in seconds; OpenAI and Azure may send only
    // retry-after-ms. The router sees these headers before it decides on a retry.
    if (wait !== undefined && headers.get("retry-after") === undefined) set.push(["retry-after", String(Math.ceil(wait / 1000))]);
    // The router phase needs the answering target for cost and quotas; it removes the header from
    // the client's response unless the route shows it.
    set.push([TARGET_RESPONSE_HEADER, target.id]);
    if (this.#attempt !== undefined) set.push([ATTEMPT_RESPONSE_HEADER, this.#attempt]);
    if (this.#translation === undefined || this.#translated === undefined) return { kind: "continue", headers: { set, remove: [] } };

    // A translated answer: the body is rewritten (so its length changes) and, for errors and JSON,
    // held until complete; Envoy sends it chunk by chunk (mode_override) and frames it itself.
    const translator = this.#translation.response(this.#translated.meta, this.#translated.stream);
    const ok = status >= 200 && status < 300;
    const mode = !ok ? "error" : this.#translated.stream ? "stream" : "json";
    this.#answer = { translator, mode, status, headers, held: [], heldBytes: 0 };
    const clientStatus = translator.status(status);
    if (clientStatus !== status) set.push([":status", String(clientStatus)]);
    set.push(["content-type", mode === "stream" ? translator.contentType(true) : mode === "json" ? translator.contentType(false) : "application/json"]);
    return { kind: "continue", headers: { set, remove: ["content-length", "content-encoding"] }, streamResponseBody: true };
  }

  #onResponseBody(chunk: Buffer, end: boolean): PhaseReply {
    const answer = this.#answer;
    if (answer === undefined) return CONTINUE;
    if (answer.mode === "stream") return { kind: "continue", body: answer.translator.streamChunk(chunk, end) };
    if (answer.heldBytes + chunk.length > MAX_HELD_RESPONSE_BYTES) {
      // Past the cap the answer cannot be translated whole; the client gets an error in its format.
      this.#answer = undefined;
      this.deps.log.warn({ requestId: this.#ctx?.rid, target: this.#target?.id, bytes: answer.heldBytes + chunk.length }, "provider answer too large to translate");
      return { kind: "continue", body: renderError(new GatewayError("upstream_response_invalid"), this.#clientFormat()).body };
    }
    answer.held.push(chunk);
    answer.heldBytes += chunk.length;
    if (!end) return { kind: "continue", body: EMPTY };
    const whole = answer.held.length === 1 ? answer.held[0]! : Buffer.concat(answer.held, answer.heldBytes);
    answer.held = [];
    const header = (name: string) => answer.headers.get(name);
    if (answer.mode === "json") return { kind: "continue", body: answer.translator.json(whole, header) };
    return { kind: "continue", body: answer.translator.error(answer.status, whole, header) };
  }

  #clientFormat(): ApiFormat {
    const op = this.#ctx?.op;
    return op === undefined ? "openai" : OPERATIONS[op].format;
  }

  #logEffect(target: CompiledTarget, effect: { cooldownEntered: boolean; cooldownUntil: number | undefined }, cause: string): void {
    if (!effect.cooldownEntered || effect.cooldownUntil === undefined) return;
    this.deps.log.warn({ target: target.id, until: new Date(effect.cooldownUntil).toISOString(), cause }, "target cooling down");
  }

  /**
   * Envoy ignores ImmediateResponse from an upstream ext_proc filter (ext_proc.cc counts it in
   * send_immediate_resp_upstream_ignored and the attempt stalls until a timeout), and a gRPC error
   * ends the same way. So a refused attempt is not answered, it is disarmed: it continues with no
   * credentials at all (neither the client's nor the provider's), no gateway headers, an empty body
   * and a reserved path that no provider serves. Nothing of the prompt or of any key leaves; the
   * provider answers 404/401, which is not retried. The reason is logged with the request id.
   */
  #failingClosed(headers: RequestHeaders | undefined, endOfStream: boolean, step: () => PhaseReply | Promise<PhaseReply>): PhaseReply | Promise<PhaseReply> {
    try {
      const reply = step();
      return reply instanceof Promise ? reply.catch((err: unknown) => this.#refused(err, headers, endOfStream)) : reply;
    } catch (err) {
      return this.#refused(err, headers, endOfStream);
    }
  }

  #refused(err: unknown, headers: RequestHeaders | undefined, endOfStream: boolean): PhaseReply {
    if (!(err instanceof GatewayError)) throw err;
    this.deps.log.warn({ requestId: this.#ctx?.rid, code: err.code, target: this.#target?.id }, "upstream attempt refused and disarmed");
    // A disarmed attempt's answer (the 404 for the reserved path) is not translated.
    this.#translation = undefined;
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

  #onHeaders(
    headers: RequestHeaders,
    endOfStream: boolean,
    metadata: Record<string, Record<string, JsonValue>> | undefined,
    attributes: Record<string, JsonValue> | undefined,
  ): PhaseReply {
    const ctx = this.#context(headers, metadata);
    this.#ctx = ctx;

    const cluster = attributes?.[CLUSTER_ATTRIBUTE];
    if (typeof cluster === "string" && cluster !== ctx.cl) {
      this.deps.log.error({ requestId: ctx.rid, cluster, expected: ctx.cl }, "attempt reached a cluster the router phase did not choose");
      throw new GatewayError("gateway_misconfigured");
    }
    const targetId = this.#attemptTarget(ctx, attributes);
    const target = this.#policy.targets.get(targetId);
    if (target === undefined) {
      this.deps.log.warn({ requestId: ctx.rid, target: targetId }, "routed target is not in the current policy");
      throw new GatewayError("target_unavailable");
    }
    this.#target = target;
    this.#attempt = headers.get(ATTEMPT_COUNT_HEADER);

    const { pathname, query } = parsePath(ctx.p);
    const provider = target.provider;
    const op = ctx.op;
    if (op !== undefined) {
      this.#translation = translationFor(provider.adapter, op);
      // The router phase never routes an API to a target that cannot serve it; a policy reload
      // between the phases can.
      if (this.#translation === undefined && !provider.adapter.operations.has(op)) throw new GatewayError("api_not_supported_by_target");
    }
    const rewrite = provider.adapter.rewrite({
      provider: provider.config,
      credential: provider.credential,
      target: { model: target.config.model, deployment: target.config.deployment },
      operation: this.#translation?.to ?? op,
      originalPathname: pathname,
      // The client's query string belongs to the client's API; a translated request drops it.
      originalQuery: this.#translation === undefined ? query : "",
      stream: ctx.s === 1,
      clientAnthropicVersion: ctx.av,
      clientAnthropicBeta: ctx.ab,
    });
    const set: Array<[string, string]> = [[":path", rewrite.path], ...rewrite.setHeaders];
    const remove = this.#strippable(headers, set);
    // The translation reads the answer's bytes: ask for them uncompressed.
    if (this.#translation !== undefined && headers.get("accept-encoding") !== undefined) remove.push("accept-encoding");
    this.#path = rewrite.path;
    this.#credentialsSet = rewrite.setHeaders.map(([k]) => k);
    this.#state = endOfStream ? "done" : "body";
    this.#sentAt = performance.now();
    this.deps.observations.attemptStarted(target.id);
    this.deps.log.debug({ requestId: ctx.rid, target: target.id, attempt: this.#attempt, path: rewrite.path }, "attempt rewritten");
    return { kind: "continue", headers: { set, remove } };
  }

  /**
   * The target of this attempt: the one the chosen endpoint's metadata names, which must be in the
   * chain the router phase signed. A bootstrap without that metadata (hand-written, one target per
   * cluster) still works for single-target chains.
   */
  #attemptTarget(ctx: RoutingContext, attributes: Record<string, JsonValue> | undefined): string {
    const named = attributes?.[TARGET_ATTRIBUTE];
    if (typeof named === "string") {
      if (ctx.ch.includes(named)) return named;
      this.deps.log.error({ requestId: ctx.rid, target: named, chain: ctx.ch, cluster: ctx.cl }, "attempt reached an endpoint whose target is not in the signed chain");
      throw new GatewayError("gateway_misconfigured");
    }
    if (ctx.ch.length === 1 && ctx.ch[0] !== undefined) return ctx.ch[0];
    this.deps.log.error({ requestId: ctx.rid, cluster: ctx.cl }, `upstream phase needs request_attributes ${TARGET_ATTRIBUTE} on chain clusters (render envoy.yaml with render-envoy)`);
    throw new GatewayError("gateway_misconfigured");
  }

  /**
   * Headers present that must not reach the provider: provider credentials and settings (including
   * ones an earlier attempt set in the shared header map) and every gateway header, except those
   * this attempt sets itself.
   */
  #strippable(headers: RequestHeaders, set: ReadonlyArray<readonly [string, string]>): string[] {
    const remove: string[] = [];
    for (const name of headers.names()) {
      if ((PROVIDER_HEADER_SET.has(name) || isGatewayHeader(name, this.#policy)) && !set.some(([k]) => k === name)) remove.push(name);
    }
    return remove;
  }

  #onBody(body: Buffer, endOfStream: boolean): PhaseReply | Promise<PhaseReply> {
    this.#state = "done";
    const ctx = this.#ctx;
    const target = this.#target;
    if (ctx === undefined || target === undefined) throw new ProtocolError("request_body before request_headers");
    if (!endOfStream) {
      this.deps.log.error("upstream phase received a partial body: configure request_body_mode: BUFFERED");
      throw new GatewayError("gateway_misconfigured");
    }
    if (this.#translation !== undefined) return this.#translateBody(ctx, target, this.#translation, body);
    // content-length is always restated: an earlier attempt may have changed it in the shared map.
    if (ctx.op === undefined || ctx.m === target.config.model) {
      return { kind: "continue", headers: { set: [["content-length", String(body.length)]], remove: [] } };
    }
    const rewritten = replaceTopLevelString(body, "model", target.config.model) ?? reserialiseWithModel(body, target.config.model);
    return { kind: "continue", headers: { set: [["content-length", String(rewritten.length)]], remove: [] }, body: rewritten };
  }

  /** The client's body in the provider's API; signed over the result where the provider signs requests. */
  #translateBody(ctx: RoutingContext, target: CompiledTarget, translation: Translation, body: Buffer): PhaseReply | Promise<PhaseReply> {
    const json = parseJsonObject(body);
    const problem = translation.check(json, target.config.model);
    // The router phase checked the chain's targets already; only a policy change in between gets here.
    if (problem !== undefined) throw new GatewayError("field_not_supported_by_target", `${problem} (${target.provider.config.type})`);
    const translated = translation.request(json, {
      model: target.config.model,
      defaultMaxTokens: target.config.maxOutputTokens ?? DEFAULT_MAX_TOKENS,
      nowMs: this.deps.now(),
      provider: target.provider.config.type,
      streamUsage: target.provider.config.streamUsage !== false,
    });
    this.#translated = translated;
    if (translated.dropped.length > 0) {
      this.deps.log.warn({ requestId: ctx.rid, target: target.id, provider: target.provider.config.type, dropped: translated.dropped }, "request fields the provider cannot take were dropped");
    }
    const set: Array<[string, string]> = [
      ["content-length", String(translated.body.length)],
      ["content-type", "application/json"],
    ];
    const reply = (signed: Array<[string, string]>): PhaseReply => ({ kind: "continue", headers: { set: [...set, ...signed], remove: [] }, body: translated.body });
    const provider = target.provider;
    if (provider.aws === undefined || provider.adapter.sign === undefined) return reply([]);
    const { host, port, tls } = provider.origin;
    return provider.adapter
      .sign({
        provider: provider.config,
        aws: provider.aws,
        host: port === (tls ? 443 : 80) ? host : `${host}:${port}`,
        path: this.#path,
        headers: [["content-type", "application/json"]],
        body: translated.body,
        now: new Date(this.deps.now()),
      })
      .then((signed) => {
        this.#credentialsSet.push(...signed.map(([k]) => k));
        return reply(signed);
      });
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
