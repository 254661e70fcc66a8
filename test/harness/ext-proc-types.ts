// Plain-object shapes of Envoy's ext_proc messages as @grpc/proto-loader produces and accepts them
// with {keepCase: true, longs: String, enums: String, defaults: false, oneofs: true}.
// Note: protobufjs defines the well-known types (Struct, Value, Duration, BoolValue) itself, in
// camelCase, so Value fields are `stringValue`, `structValue`... even with keepCase.

export interface StructMsg {
  fields?: Record<string, ValueMsg>;
}

export interface ValueMsg {
  nullValue?: string | number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMsg;
  listValue?: { values?: ValueMsg[] };
  kind?: string;
}

export interface HeaderValueMsg {
  key?: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

export interface HeaderMapMsg {
  headers?: HeaderValueMsg[];
}

export interface HeaderValueOptionMsg {
  header?: HeaderValueMsg;
  append?: { value?: boolean };
  append_action?: string | number;
  keep_empty_value?: boolean;
}

export interface HeaderMutationMsg {
  set_headers?: HeaderValueOptionMsg[];
  remove_headers?: string[];
}

export interface BodyMutationMsg {
  body?: Buffer | Uint8Array;
  clear_body?: boolean;
  mutation?: "body" | "clear_body";
}

export interface CommonResponseMsg {
  status?: string | number;
  header_mutation?: HeaderMutationMsg;
  body_mutation?: BodyMutationMsg;
  trailers?: HeaderMapMsg;
  clear_route_cache?: boolean;
}

export interface HeadersResponseMsg {
  response?: CommonResponseMsg;
}

export interface BodyResponseMsg {
  response?: CommonResponseMsg;
}

export interface TrailersResponseMsg {
  header_mutation?: HeaderMutationMsg;
}

export interface ImmediateResponseMsg {
  status?: { code?: string | number };
  headers?: HeaderMutationMsg;
  body?: Buffer | Uint8Array | string;
  grpc_status?: { status?: number };
  details?: string;
}

export interface ProcessingModeMsg {
  request_header_mode?: string | number;
  response_header_mode?: string | number;
  request_body_mode?: string | number;
  response_body_mode?: string | number;
  request_trailer_mode?: string | number;
  response_trailer_mode?: string | number;
}

export interface DurationMsg {
  seconds?: string | number;
  nanos?: number;
}

export type ResponseKind =
  | "request_headers"
  | "response_headers"
  | "request_body"
  | "response_body"
  | "request_trailers"
  | "response_trailers"
  | "immediate_response";

export interface ProcessingResponseMsg {
  request_headers?: HeadersResponseMsg;
  response_headers?: HeadersResponseMsg;
  request_body?: BodyResponseMsg;
  response_body?: BodyResponseMsg;
  request_trailers?: TrailersResponseMsg;
  response_trailers?: TrailersResponseMsg;
  immediate_response?: ImmediateResponseMsg;
  /** The oneof's virtual field: which of the above is set. */
  response?: ResponseKind;
  dynamic_metadata?: StructMsg;
  mode_override?: ProcessingModeMsg;
  override_message_timeout?: DurationMsg;
}

export interface HttpHeadersMsg {
  headers?: HeaderMapMsg;
  end_of_stream?: boolean;
}

export interface HttpBodyMsg {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}

export interface HttpTrailersMsg {
  trailers?: HeaderMapMsg;
}

export type RequestKind =
  | "request_headers"
  | "response_headers"
  | "request_body"
  | "response_body"
  | "request_trailers"
  | "response_trailers";

export interface ProcessingRequestMsg {
  request_headers?: HttpHeadersMsg;
  response_headers?: HttpHeadersMsg;
  request_body?: HttpBodyMsg;
  response_body?: HttpBodyMsg;
  request_trailers?: HttpTrailersMsg;
  response_trailers?: HttpTrailersMsg;
  request?: RequestKind;
  metadata_context?: { filter_metadata?: Record<string, StructMsg> };
  attributes?: Record<string, StructMsg>;
  observability_mode?: boolean;
}
