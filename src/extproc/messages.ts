// Plain TypeScript forms of the ext_proc messages. Only src/extproc/ sees proto objects; the phases
// work with these.
import type { RequestHeaders } from "../api/request-headers";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

interface Common {
  /** `ProcessingRequest.attributes["envoy.filters.http.ext_proc"]`: request_attributes by expression. */
  attributes: Record<string, JsonValue> | undefined;
  /** `metadata_context.filter_metadata`: forwarded dynamic metadata, by namespace. */
  metadata: Record<string, Record<string, JsonValue>> | undefined;
}

export type ExtProcMessage =
  | (Common & { kind: "request_headers" | "response_headers"; headers: RequestHeaders; endOfStream: boolean })
  | (Common & { kind: "request_body" | "response_body"; body: Buffer; endOfStream: boolean })
  | (Common & { kind: "request_trailers" | "response_trailers" });

export type MessageKind = ExtProcMessage["kind"];

export interface HeaderEdits {
  /** Set with explicit overwrite semantics. */
  set: Array<[string, string]>;
  remove: string[];
}

export type PhaseReply =
  | {
      kind: "continue";
      headers?: HeaderEdits;
      /** Replaces the body (only valid in reply to a BUFFERED body). */
      body?: Buffer;
      clearRouteCache?: boolean;
      /** Returned as ProcessingResponse.dynamic_metadata: namespace -> key -> string. */
      dynamicMetadata?: Record<string, Record<string, string>>;
      /**
       * In a reply to response headers: have Envoy send the response body, one message per chunk
       * (mode_override; the filter needs allow_mode_override).
       */
      streamResponseBody?: boolean;
    }
  | { kind: "immediate"; status: number; headers: Array<[string, string]>; body: Buffer; details: string };

export const CONTINUE: PhaseReply = { kind: "continue" };

/** A message that does not fit the stream's state (ends the stream with a gRPC error). */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** What a processor may do on its stream besides answering. */
export interface StreamControl {
  /**
   * Asks Envoy to wait up to `ms` for the reply to the current message instead of message_timeout
   * (ProcessingResponse.override_message_timeout: at most once per message, and only within the
   * filter's max_message_timeout).
   */
  extendTimeout(ms: number): void;
}

/** One ext_proc stream's logic: answers each message exactly once. */
export interface StreamProcessor {
  handle(message: ExtProcMessage, control: StreamControl): PhaseReply | Promise<PhaseReply>;
  /**
   * The reply to a message was written, `seconds` after the message arrived (Redis and cache waits
   * included): the gateway's own time, which phases add up per request.
   */
  answered?(kind: MessageKind, seconds: number): void;
  /** The stream ended (Envoy closed it, cancelled it, or it failed); called once, after the last answered(). */
  close?(outcome: StreamOutcome): void;
}

export type StreamOutcome = "ok" | "cancelled" | "error";
