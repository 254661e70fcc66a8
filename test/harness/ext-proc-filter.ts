// The ext_proc HTTP filter's request (decode) and response (encode) paths, following Envoy's
// ext_proc.cc / processor_state.cc. The same class runs as a downstream filter (HCM http_filters)
// and as an upstream filter (cluster http_filters, one instance per attempt).
import type { BodySendMode } from "./bootstrap-filters";
import type { CommonResponseMsg, HttpHeadersMsg } from "./ext-proc-types";
import type { HeaderMap } from "./header-map";
import { localReply } from "./local-reply";
import { applyBodyMutation, applyHeaderMutation, mutatedBodyLength } from "./mutations";
import { type ExtProcEnv, ExtProcSession, type FilterOutcome } from "./ext-proc-session";

export interface RequestState {
  /** The request header map (for upstream filters: shared by every attempt). */
  headers: HeaderMap;
  body: Buffer;
}

export interface ResponseState {
  headers: HeaderMap;
  /** Body chunks as they arrived from upstream. */
  chunks: Buffer[];
  /** False when the upstream connection broke before the end of the body. */
  complete: boolean;
  /** No content-length upstream: HTTP/1.1 chunked, so the end arrives as an empty last chunk. */
  chunked: boolean;
}

type BodyResult = { ok: true; body: Buffer } | { ok: false; outcome: FilterOutcome };

const CONTINUE_AND_REPLACE = "CONTINUE_AND_REPLACE";

function headersMessage(headers: HeaderMap, endOfStream: boolean): HttpHeadersMsg {
  // Current Envoy sends header values only in raw_value (runtime flag send_header_raw_value).
  return {
    headers: { headers: headers.entries().map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
    end_of_stream: endOfStream,
  };
}

/**
 * ProcessorState::shouldRemoveContentLength: in STREAMED and BUFFERED_PARTIAL modes, and in
 * BUFFERED mode without a headers message, Envoy cannot keep content-length right after a body
 * mutation, so it drops the header (HTTP/1.1 upstream then uses chunked encoding).
 */
function removesContentLength(sendHeaders: boolean, mode: BodySendMode): boolean {
  return mode === "STREAMED" || mode === "BUFFERED_PARTIAL" || (mode === "BUFFERED" && !sendHeaders);
}

function isReplace(common: CommonResponseMsg): boolean {
  return common.status === CONTINUE_AND_REPLACE || common.status === 1;
}

export class ExtProcFilter {
  readonly session: ExtProcSession;

  constructor(
    env: ExtProcEnv,
    private readonly bufferLimitBytes: number,
  ) {
    this.session = new ExtProcSession(env);
  }

  close(): void {
    this.session.close();
  }

  /** The attempt was reset under the filter (per-try timeout): pending exchanges end quietly. */
  abort(reason: string): void {
    this.session.finish(reason);
  }

  /** Request path: request_headers, then request_body by request_body_mode. */
  async decode(state: RequestState): Promise<FilterOutcome> {
    const s = this.session;
    const hasBody = state.body.length > 0;
    let clearRouteCache = false;
    let headersSent = false;
    if (s.mode.requestHeaderMode === "SEND" && !s.complete) {
      const ex = await s.exchange({ request_headers: headersMessage(state.headers, !hasBody) }, "request", "request_headers");
      if (ex.type === "stop") return ex.outcome;
      if (ex.type === "reply") {
        const failed = this.applyHeaders(ex.common, state.headers);
        if (failed !== undefined) return failed;
        clearRouteCache = this.clearsRouteCache(ex.common);
        headersSent = true;
        if (isReplace(ex.common)) {
          // CONTINUE_AND_REPLACE: the reply is the whole request; nothing more is sent.
          if (ex.common.body_mutation !== undefined) {
            state.body = applyBodyMutation(state.body, ex.common.body_mutation);
            state.headers.remove("content-length");
          }
          s.mode.requestBodyMode = "NONE";
        }
      }
    }
    if (!s.complete && removesContentLength(s.mode.requestHeaderMode === "SEND", s.mode.requestBodyMode)) {
      state.headers.remove("content-length");
    }
    const mode = s.mode.requestBodyMode;
    if (!hasBody || s.complete || mode === "NONE") return { type: "continue", clearRouteCache };

    if (mode === "STREAMED") {
      // The router has already used the headers by the time body replies arrive.
      const result = await this.streamChunks([state.body], true, false, "request");
      if (!result.ok) return result.outcome;
      state.body = result.body;
      return { type: "continue", clearRouteCache };
    }
    if (mode === "BUFFERED" && state.body.length > this.bufferLimitBytes && s.env.role === "downstream") {
      // The filter manager's buffer overflows while ext_proc buffers: HCM answers 413.
      s.finish("request body over the buffer limit");
      return { type: "local_reply", reply: localReply(413, "Payload Too Large", "request_payload_too_large") };
    }
    // BUFFERED sends the whole body; BUFFERED_PARTIAL at most the buffer limit, the rest passes.
    const limit = mode === "BUFFERED_PARTIAL" ? this.bufferLimitBytes : state.body.length;
    const part = state.body.subarray(0, limit);
    const rest = state.body.subarray(limit);
    const ex = await s.exchange({ request_body: { body: part, end_of_stream: rest.length === 0 } }, "request", "request_body");
    if (ex.type === "stop") return ex.outcome;
    if (ex.type === "skip") return { type: "continue", clearRouteCache };
    // Envoy keeps the request headers (headers_) while a BUFFERED / BUFFERED_PARTIAL body is
    // processed, so header mutations in the body reply still apply, and the route can be cleared.
    const result = this.applyBody(ex.common, state.headers, headersSent, mode === "BUFFERED", part);
    if (!result.ok) return result.outcome;
    state.body = Buffer.concat([result.body, rest]);
    return { type: "continue", clearRouteCache: clearRouteCache || this.clearsRouteCache(ex.common) };
  }

  /** Response path: response_headers, then response_body by response_body_mode. */
  async encode(state: ResponseState): Promise<FilterOutcome> {
    const s = this.session;
    const total = state.chunks.reduce((n, c) => n + c.length, 0);
    const headersEnd = state.complete && !state.chunked && total === 0;
    let headersSent = false;
    if (s.mode.responseHeaderMode === "SEND" && !s.complete) {
      const ex = await s.exchange({ response_headers: headersMessage(state.headers, headersEnd) }, "response", "response_headers");
      if (ex.type === "stop") return ex.outcome;
      if (ex.type === "reply") {
        const failed = this.applyHeaders(ex.common, state.headers);
        if (failed !== undefined) return failed;
        if (ex.common.clear_route_cache === true) s.note("clear_route_cache ignored in the response direction");
        headersSent = true;
        if (isReplace(ex.common)) {
          if (ex.common.body_mutation !== undefined) {
            state.chunks = [applyBodyMutation(Buffer.concat(state.chunks), ex.common.body_mutation)];
            state.headers.remove("content-length");
          }
          s.mode.responseBodyMode = "NONE";
        }
      }
    }
    if (!s.complete && removesContentLength(s.mode.responseHeaderMode === "SEND", s.mode.responseBodyMode)) {
      state.headers.remove("content-length");
    }
    const mode = s.mode.responseBodyMode;
    if (headersEnd || s.complete || mode === "NONE") return { type: "continue", clearRouteCache: false };

    if (mode === "STREAMED") {
      const result = await this.streamChunks(state.chunks, state.complete, state.chunked, "response");
      if (!result.ok) return result.outcome;
      state.chunks = [result.body];
      return { type: "continue", clearRouteCache: false };
    }
    // A BUFFERED body that never completes (upstream reset) is never sent to the server.
    if (!state.complete && mode === "BUFFERED") return { type: "continue", clearRouteCache: false };
    const body = Buffer.concat(state.chunks);
    if (mode === "BUFFERED" && body.length > this.bufferLimitBytes && s.env.role === "downstream") {
      s.finish("response body over the buffer limit");
      return { type: "local_reply", reply: localReply(500, "Internal Server Error", "response_payload_too_large") };
    }
    const limit = mode === "BUFFERED_PARTIAL" ? this.bufferLimitBytes : body.length;
    const part = body.subarray(0, limit);
    const rest = body.subarray(limit);
    const end = state.complete && rest.length === 0;
    const ex = await s.exchange({ response_body: { body: part, end_of_stream: end } }, "response", "response_body");
    if (ex.type === "stop") return ex.outcome;
    if (ex.type === "skip") return { type: "continue", clearRouteCache: false };
    const result = this.applyBody(ex.common, state.headers, headersSent, mode === "BUFFERED", part);
    if (!result.ok) return result.outcome;
    state.chunks = [Buffer.concat([result.body, rest])];
    return { type: "continue", clearRouteCache: false };
  }

  private applyHeaders(common: CommonResponseMsg, headers: HeaderMap): FilterOutcome | undefined {
    const result = applyHeaderMutation(headers, common.header_mutation, this.session.mutationContext(isReplace(common)));
    return result.ok ? undefined : this.session.fail(localReply(500, "", result.error));
  }

  /** A reply to a BUFFERED / BUFFERED_PARTIAL body message. */
  private applyBody(common: CommonResponseMsg, headers: HeaderMap, headersHeld: boolean, checkLength: boolean, body: Buffer): BodyResult {
    if (common.header_mutation !== undefined) {
      if (!headersHeld) this.session.note("header_mutation in a body reply ignored: the headers were not sent (header mode SKIP)");
      else {
        const failed = this.applyHeaders(common, headers);
        if (failed !== undefined) return { ok: false, outcome: failed };
      }
    }
    const mutation = common.body_mutation;
    if (mutation !== undefined && checkLength && headersHeld) {
      const declared = headers.get("content-length");
      // processor_state.cc: a body mutation must agree with a content-length still present.
      if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) !== mutatedBodyLength(mutation)) {
        return { ok: false, outcome: this.session.fail(localReply(500, "", "ext_proc content-length mismatch")) };
      }
    }
    return { ok: true, body: applyBodyMutation(body, mutation) };
  }

  /** STREAMED: one message per chunk (pipelined), each reply may replace its chunk. */
  private async streamChunks(chunks: Buffer[], complete: boolean, chunked: boolean, direction: "request" | "response"): Promise<BodyResult> {
    const s = this.session;
    const messages = chunks.map((body, i) => ({ body, end: complete && !chunked && i === chunks.length - 1 }));
    // A chunked HTTP/1.1 body ends with the zero-length chunk: Envoy passes it as an empty
    // data frame with end_stream, hence an empty last body message.
    if (complete && chunked) messages.push({ body: Buffer.alloc(0), end: true });
    const kind = direction === "request" ? "request_body" : "response_body";
    // Everything is sent first, as Envoy forwards chunks without waiting for earlier replies.
    const awaiting = messages.map((m) => s.send({ [kind]: { body: m.body, end_of_stream: m.end } }, direction));
    const out: Buffer[] = [];
    for (let i = 0; i < messages.length; i++) {
      const original = messages[i]?.body ?? Buffer.alloc(0);
      const ex = awaiting[i] === true ? await s.awaitReply(kind) : ({ type: "skip" } as const);
      if (ex.type === "stop") return { ok: false, outcome: ex.outcome };
      if (ex.type === "skip") {
        out.push(original);
        continue;
      }
      if (ex.common.header_mutation !== undefined) s.note("header_mutation in a STREAMED body reply ignored");
      if (ex.common.clear_route_cache === true) s.note("clear_route_cache in a STREAMED body reply has no effect (route already chosen)");
      out.push(applyBodyMutation(original, ex.common.body_mutation));
    }
    return { ok: true, body: Buffer.concat(out) };
  }

  /** DecodingProcessorState::clearRouteCache. */
  private clearsRouteCache(common: CommonResponseMsg): boolean {
    const s = this.session;
    const requested = common.clear_route_cache === true;
    if (s.env.role === "upstream") {
      if (requested) s.note("clear_route_cache ignored in an upstream filter");
      return false;
    }
    if (common.header_mutation === undefined) {
      if (requested) s.note("clear_route_cache ignored: the reply has no header_mutation");
      return false;
    }
    const action = s.env.config.routeCacheAction;
    if (action === "RETAIN" && requested) s.note("clear_route_cache ignored: route_cache_action RETAIN");
    return action === "CLEAR" || (action === "DEFAULT" && requested);
  }
}
