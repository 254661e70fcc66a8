// ext_proc messages as protobufjs decodes them (field names as in the .proto files, oneof names as
// getters naming the field set, bytes as Buffers, unset fields at their defaults) -> the plain forms
// in messages.ts; and replies -> objects protobufjs encodes as they are (proto.ts): enums as numbers,
// bytes as Buffers, only the fields that are set.
import { RequestHeaders } from "../api/request-headers";
import type { ExtProcMessage, HeaderEdits, JsonValue, MessageKind, PhaseReply } from "./messages";
import { asBuffer, extProcProtos } from "./proto";

/** The attribute key Envoy uses for request_attributes in ProcessingRequest.attributes. */
export const EXT_PROC_ATTRIBUTES_KEY = "envoy.filters.http.ext_proc";

interface ProtoHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}
interface ProtoHeaderMap {
  headers?: ProtoHeaderValue[];
}
interface ProtoValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}
interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}
export interface ProtoProcessingRequest {
  request?: string;
  request_headers?: { headers?: ProtoHeaderMap; end_of_stream?: boolean };
  response_headers?: { headers?: ProtoHeaderMap; end_of_stream?: boolean };
  request_body?: { body?: Uint8Array; end_of_stream?: boolean };
  response_body?: { body?: Uint8Array; end_of_stream?: boolean };
  request_trailers?: unknown;
  response_trailers?: unknown;
  attributes?: Record<string, ProtoStruct>;
  metadata_context?: { filter_metadata?: Record<string, ProtoStruct> };
  /** Set instead of the rest when the bytes were not a ProcessingRequest (proto.ts). */
  undecodable?: string;
}

export class MalformedMessage extends Error {
  override name = "MalformedMessage";
}

/** The characters a header field value may not hold. */
const CONTROL_CHARACTER = /[\0\r\n]/;

export function decodeRequest(req: ProtoProcessingRequest): ExtProcMessage {
  if (req.undecodable !== undefined) throw new MalformedMessage(`not a ProcessingRequest: ${req.undecodable}`);
  const attributesStruct = req.attributes?.[EXT_PROC_ATTRIBUTES_KEY];
  const attributes = attributesStruct ? structToJson(attributesStruct) : undefined;
  const fm = req.metadata_context?.filter_metadata;
  let metadata: Record<string, Record<string, JsonValue>> | undefined;
  if (fm) {
    metadata = {};
    for (const ns in fm) metadata[ns] = structToJson(fm[ns]!);
  }
  // Object literals of one fixed shape per kind (no spreads): this runs for every message.
  switch (req.request) {
    case "request_headers":
    case "response_headers": {
      const h = req.request === "request_headers" ? req.request_headers : req.response_headers;
      return { kind: req.request, headers: decodeHeaders(h?.headers), endOfStream: h?.end_of_stream === true, attributes, metadata };
    }
    case "request_body":
    case "response_body": {
      const b = req.request === "request_body" ? req.request_body : req.response_body;
      // An unset bytes field decodes as protobufjs's shared empty array, not a Buffer.
      const body = b?.body;
      return { kind: req.request, body: body !== undefined && body.length > 0 ? asBuffer(body) : Buffer.alloc(0), endOfStream: b?.end_of_stream === true, attributes, metadata };
    }
    case "request_trailers":
    case "response_trailers":
      return { kind: req.request, attributes, metadata };
    default:
      throw new MalformedMessage("ProcessingRequest without a request");
  }
}

function decodeHeaders(map: ProtoHeaderMap | undefined): RequestHeaders {
  const out = new RequestHeaders();
  const list = map?.headers;
  if (list === undefined) return out;
  for (let i = 0; i < list.length; i++) {
    const h = list[i]!;
    if (typeof h.key !== "string" || h.key === "") throw new MalformedMessage("header without a name");
    // Current Envoy sends raw_value; old versions only `value`.
    const value = h.raw_value !== undefined && h.raw_value.length > 0 ? asBuffer(h.raw_value).toString("latin1") : (h.value ?? "");
    // Envoy's codecs refuse NUL, CR and LF in field values (RFC 9110 section 5.5), so a message
    // holding one is not Envoy's. Refused here, such a value can never reach a header mutation
    // (:path, anthropic-version and -beta are relayed): Envoy rejects those as invalid
    // (test/fuzz-headers.test.ts found them relayed).
    if (CONTROL_CHARACTER.test(value)) throw new MalformedMessage(`header ${h.key} has a NUL, CR or LF in its value`);
    out.add(h.key, value);
  }
  return out;
}

function structToJson(s: ProtoStruct): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: ProtoValue): JsonValue {
  switch (v.kind) {
    case "stringValue":
      return v.stringValue ?? "";
    case "numberValue":
      return v.numberValue ?? 0;
    case "boolValue":
      return v.boolValue ?? false;
    case "structValue":
      return structToJson(v.structValue ?? {});
    case "listValue":
      return (v.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

function headerMutation(edits: HeaderEdits): object {
  const overwrite = extProcProtos().appendOverwriteIfExistsOrAdd;
  return {
    // Explicit overwrite: an unset `append` means append on newer Envoy versions, which would turn
    // a rewritten authorization into two values. raw_value only: value+raw_value is a 500.
    set_headers: edits.set.map(([key, value]) => ({
      header: { key, raw_value: Buffer.from(value, "latin1") },
      append: { value: false },
      append_action: overwrite,
    })),
    remove_headers: edits.remove,
  };
}

function stringStruct(ns: Record<string, Record<string, string>>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [name, entries] of Object.entries(ns)) {
    const inner: Record<string, ProtoValue> = {};
    for (const [k, v] of Object.entries(entries)) inner[k] = { stringValue: v };
    fields[name] = { structValue: { fields: inner } };
  }
  return { fields };
}

/** A ProcessingResponse that only asks for more time (google.protobuf.Duration). */
export function encodeTimeoutOverride(ms: number): object {
  const whole = Math.max(1, Math.round(ms));
  return { override_message_timeout: { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 } };
}

/** Encodes the reply to `kind` as a ProcessingResponse. */
export function encodeReply(kind: MessageKind, reply: PhaseReply): object {
  if (reply.kind === "immediate") {
    return {
      immediate_response: {
        status: { code: reply.status },
        headers: headerMutation({ set: reply.headers, remove: [] }),
        body: reply.body,
        details: reply.details,
      },
    };
  }
  const dynamic = reply.dynamicMetadata ? { dynamic_metadata: stringStruct(reply.dynamicMetadata) } : {};
  if (kind === "request_trailers" || kind === "response_trailers") {
    return { [kind]: reply.headers ? { header_mutation: headerMutation(reply.headers) } : {}, ...dynamic };
  }
  const common: Record<string, unknown> = {};
  if (reply.headers && (reply.headers.set.length > 0 || reply.headers.remove.length > 0)) common.header_mutation = headerMutation(reply.headers);
  if (reply.body !== undefined) common.body_mutation = { body: reply.body };
  if (reply.clearRouteCache) common.clear_route_cache = true;
  // mode_override is a whole ProcessingMode; the unset fields keep their defaults (headers SEND,
  // bodies NONE, trailers SKIP), and only the response body and trailers are still ahead.
  const override = reply.streamResponseBody ? { mode_override: { response_body_mode: extProcProtos().bodyModeStreamed } } : {};
  return { [kind]: { response: common }, ...dynamic, ...override };
}
