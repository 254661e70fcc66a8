// The per-request state of one ext_proc filter instance and its single message/response exchange,
// with Envoy's failure semantics (source/extensions/filters/http/ext_proc/ext_proc.cc):
// - no response within message_timeout: 504 local reply (failure_mode_allow: continue unchanged);
// - gRPC error status: 500 local reply (failure_mode_allow: continue unchanged);
// - the server closing the stream with status OK: processing stops, the request CONTINUES unchanged
//   (onGrpcClose) - whatever failure_mode_allow says;
// - a response of the wrong kind ("spurious"): Envoy ignores the ext_proc server for the rest of the
//   request and CONTINUES unchanged - whatever failure_mode_allow says;
// - a processing error (bad mutation, content-length mismatch): 500 local reply.
// In an UPSTREAM filter chain Envoy ignores every local reply of ext_proc (stat
// send_immediate_resp_upstream_ignored; Envoy 1.31-1.35, envoyproxy/envoy#41231 proposes to change
// it): the attempt then hangs until a timeout fires.
import { type AttributeFacts, evaluateAttributes } from "./attributes";
import type { ExtProcConfig, ProcessingModeModel } from "./bootstrap-filters";
import { parseProcessingMode } from "./bootstrap-filters";
import { type ExtProcChannels, type ExtProcRecord, ExtProcStream } from "./ext-proc-client";
import { statusCodeNumber } from "./ext-proc-proto";
import type {
  CommonResponseMsg,
  ImmediateResponseMsg,
  ProcessingRequestMsg,
  ProcessingResponseMsg,
  ResponseKind,
  StructMsg,
} from "./ext-proc-types";
import { type LocalReply, localReply } from "./local-reply";
import type { MutationContext, RejectedMutation } from "./mutations";
import { fromStruct, toStruct } from "./struct";

export const EXT_PROC_FILTER_NAME = "envoy.filters.http.ext_proc";

/** Dynamic metadata of one request: namespace -> fields (shared by downstream and upstream filters). */
export type DynamicMetadata = Record<string, Record<string, unknown>>;

export interface ExtProcEnv {
  role: "downstream" | "upstream";
  config: ExtProcConfig;
  address: string;
  channels: ExtProcChannels;
  record: ExtProcRecord;
  dynamicMetadata: DynamicMetadata;
  maxHeadersCount: number;
  maxHeadersKb: number;
  /** Facts for request/response attributes, read when the first message of a direction is sent. */
  facts: () => AttributeFacts;
  onRejected: (rejected: RejectedMutation) => void;
  onNote: (note: string) => void;
}

export type FilterOutcome =
  | { type: "continue"; clearRouteCache: boolean }
  | { type: "local_reply"; reply: LocalReply }
  /** Upstream filters only: Envoy dropped the local reply and the attempt waits for a timeout. */
  | { type: "stall"; reason: string };

export type Exchange =
  | { type: "reply"; common: CommonResponseMsg }
  /** Processing is over (or never waited for): carry on unchanged. */
  | { type: "skip" }
  | { type: "stop"; outcome: FilterOutcome };

const HEADER_REPLIES: ReadonlySet<ResponseKind> = new Set(["request_headers", "response_headers"]);

function durationMs(d: { seconds?: string | number; nanos?: number }): number {
  return Number(d.seconds ?? 0) * 1000 + (d.nanos ?? 0) / 1e6;
}

export class ExtProcSession {
  /** Envoy's processing_complete_: nothing more is sent on (or expected from) the stream. */
  complete = false;
  mode: ProcessingModeModel;
  private stream: ExtProcStream | undefined;
  private sentAttributes = { request: false, response: false };

  constructor(readonly env: ExtProcEnv) {
    this.mode = { ...env.config.processingMode };
  }

  get filterLabel(): string {
    return this.env.role === "upstream" ? `${this.env.record.name} (upstream)` : this.env.record.name;
  }

  mutationContext(replacingMessage: boolean): MutationContext {
    return {
      rules: this.env.config.mutationRules,
      replacingMessage,
      maxHeadersCount: this.env.maxHeadersCount,
      maxHeadersKb: this.env.maxHeadersKb,
      onRejected: (op, header, reason) => this.env.onRejected({ filter: this.filterLabel, op, header, reason }),
      onNote: (note) => this.env.onNote(`${this.filterLabel}: ${note}`),
    };
  }

  note(text: string): void {
    this.env.onNote(`${this.filterLabel}: ${text}`);
  }

  /** A local reply the filter wants to send; upstream filters cannot (Envoy ignores it). */
  fail(reply: LocalReply): FilterOutcome {
    this.finish(`local reply ${reply.status} (${reply.details})`);
    if (this.env.role === "upstream") {
      return {
        type: "stall",
        reason: `${this.filterLabel}: Envoy ignores local replies from upstream ext_proc filters (wanted ${reply.status}: ${reply.details})`,
      };
    }
    return { type: "local_reply", reply };
  }

  /** Sends one message and waits for its response; see the file comment for the failure rules. */
  async exchange(message: ProcessingRequestMsg, direction: "request" | "response", expect: ResponseKind): Promise<Exchange> {
    if (!this.send(message, direction)) return { type: "skip" };
    return this.awaitReply(expect);
  }

  /** Sends without waiting (STREAMED bodies are pipelined); false when nothing is to be awaited. */
  send(message: ProcessingRequestMsg, direction: "request" | "response"): boolean {
    if (this.complete) return false;
    this.open().send(this.decorate(message, direction));
    return !this.env.config.observabilityMode;
  }

  async awaitReply(expect: ResponseKind): Promise<Exchange> {
    const stream = this.stream;
    if (this.complete || stream === undefined) return { type: "skip" };
    let timeoutMs = this.env.config.messageTimeoutMs;
    let extended = false;
    for (;;) {
      const event = await stream.next(timeoutMs);
      if (this.complete) return { type: "skip" };
      if (event.type === "timeout") return this.streamFailure(504, "ext_proc_error_per-message_timeout_exceeded", "message timeout");
      if (event.type === "error") {
        return this.streamFailure(500, `ext_proc_error_gRPC_error_${event.code}`, `gRPC error ${event.code}: ${event.details}`);
      }
      if (event.type === "closed") {
        this.finish("server closed the stream (status OK) before answering: request continues unprocessed");
        return { type: "skip" };
      }
      const response = event.message;
      if (response.override_message_timeout !== undefined) {
        // The server asks for more time: honoured once per message, within max_message_timeout.
        const ms = durationMs(response.override_message_timeout);
        if (!extended && ms >= 1 && ms <= this.env.config.maxMessageTimeoutMs) {
          timeoutMs = ms;
          extended = true;
        } else this.note(`override_message_timeout ${ms} ms ignored`);
        continue;
      }
      return this.handleResponse(response, expect);
    }
  }

  /** Envoy's closeStream() on filter destruction. */
  close(): void {
    this.stream?.close();
    this.stream = undefined;
  }

  finish(outcome: string): void {
    this.complete = true;
    if (this.env.record.outcome === undefined) this.env.record.outcome = outcome;
    this.close();
  }

  private handleResponse(response: ProcessingResponseMsg, expect: ResponseKind): Exchange {
    const kind = response.response;
    if (this.env.config.allowModeOverride && HEADER_REPLIES.has(expect) && response.mode_override !== undefined) {
      // mode_override is a whole ProcessingMode: unset fields fall back to their defaults.
      this.mode = parseProcessingMode(response.mode_override, "mode_override");
    }
    if (kind === "immediate_response" && !this.env.config.disableImmediateResponse && response.immediate_response !== undefined) {
      this.storeDynamicMetadata(response.dynamic_metadata);
      return { type: "stop", outcome: this.fail(this.immediateReply(response.immediate_response)) };
    }
    if (kind !== expect) {
      this.finish(`spurious ${kind ?? "empty"} response while waiting for ${expect}: ext_proc ignored for the rest of the request`);
      return { type: "skip" };
    }
    this.storeDynamicMetadata(response.dynamic_metadata);
    const body = response[kind] as { response?: CommonResponseMsg } | undefined;
    return { type: "reply", common: body?.response ?? {} };
  }

  private immediateReply(ir: ImmediateResponseMsg): LocalReply {
    let status = statusCodeNumber(ir.status?.code) ?? 200;
    // MutationUtils::isValidHttpStatus: anything below 200 becomes the default 200.
    if (status < 200) status = 200;
    const reply: LocalReply = {
      status,
      body: ir.body === undefined ? Buffer.alloc(0) : Buffer.from(ir.body),
      // Envoy replaces whitespace in details (StringUtil::replaceAllEmptySpace).
      details: ir.details?.replace(/\s/g, "_") || "ext_proc_immediate_response",
    };
    if (ir.headers !== undefined) reply.headerMutation = ir.headers;
    return reply;
  }

  private streamFailure(status: number, details: string, outcome: string): Exchange {
    if (this.env.config.failureModeAllow) {
      this.finish(`${outcome}; failure_mode_allow: request continues unprocessed`);
      return { type: "skip" };
    }
    return { type: "stop", outcome: this.fail(localReply(status, "", details)) };
  }

  /** Only namespaces in metadata_options.receiving_namespaces.untyped are kept; fields merge. */
  private storeDynamicMetadata(struct: StructMsg | undefined): void {
    if (struct === undefined) return;
    for (const [ns, fields] of Object.entries(fromStruct(struct))) {
      if (!this.env.config.receivingNamespaces.includes(ns)) {
        this.note(`dynamic metadata namespace "${ns}" dropped (not in receiving_namespaces)`);
        continue;
      }
      if (typeof fields !== "object" || fields === null || Array.isArray(fields)) continue;
      this.env.dynamicMetadata[ns] = { ...this.env.dynamicMetadata[ns], ...(fields as Record<string, unknown>) };
    }
  }

  private decorate(message: ProcessingRequestMsg, direction: "request" | "response"): ProcessingRequestMsg {
    const filterMetadata: Record<string, StructMsg> = {};
    for (const ns of this.env.config.forwardingNamespaces) {
      const fields = this.env.dynamicMetadata[ns];
      if (fields !== undefined) filterMetadata[ns] = toStruct(fields);
    }
    const out: ProcessingRequestMsg = { ...message, metadata_context: { filter_metadata: filterMetadata } };
    // Attributes go with the first message of each direction only (ProcessorState::sendAttributes).
    const expressions = direction === "request" ? this.env.config.requestAttributes : this.env.config.responseAttributes;
    if (expressions.length > 0 && !this.sentAttributes[direction]) {
      this.sentAttributes[direction] = true;
      out.attributes = { [EXT_PROC_FILTER_NAME]: evaluateAttributes(expressions, this.env.facts()) };
    }
    if (this.env.config.observabilityMode) out.observability_mode = true;
    return out;
  }

  private open(): ExtProcStream {
    if (this.stream === undefined) {
      this.stream = new ExtProcStream(this.env.channels.open(this.env.address), this.env.config.initialMetadata, this.env.record);
    }
    return this.stream;
  }
}
