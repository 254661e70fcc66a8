// A real grpc-js client speaking Envoy's own ext_proc protos (not the project's subset), for
// integration tests against the service on port 0.
import * as grpc from "@grpc/grpc-js";
import { envoyExtProcDefinition } from "./envoy-protos";

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client & {
  Process(metadata: grpc.Metadata): grpc.ClientDuplexStream<object, EnvoyResponse>;
};

let ctor: Ctor | undefined;
/** Envoy's StatusCode enum names (the client decodes enums as names) -> HTTP status numbers. */
const statusCodes = new Map<string, number>();
function clientCtor(): Ctor {
  if (!ctor) {
    const def = envoyExtProcDefinition();
    const statusEnum = def["envoy.type.v3.StatusCode"] as unknown as { type: { value: Array<{ name: string; number: number }> } };
    for (const v of statusEnum.type.value) statusCodes.set(v.name, v.number);
    const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { ext_proc: { v3: { ExternalProcessor: Ctor } } } } };
    ctor = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
  }
  return ctor;
}

export interface EnvoyHeaderValueOption {
  header: { key: string; value?: string; raw_value?: Buffer };
  append?: { value: boolean };
  append_action?: string;
}
export interface EnvoyCommon {
  status?: string;
  header_mutation?: { set_headers?: EnvoyHeaderValueOption[]; remove_headers?: string[] };
  body_mutation?: { body?: Buffer; clear_body?: boolean };
  clear_route_cache?: boolean;
}
export interface EnvoyResponse {
  response?: string;
  request_headers?: { response?: EnvoyCommon };
  request_body?: { response?: EnvoyCommon };
  response_headers?: { response?: EnvoyCommon };
  response_body?: { response?: EnvoyCommon };
  request_trailers?: object;
  immediate_response?: { status?: { code?: string | number }; headers?: EnvoyCommon["header_mutation"]; body?: Buffer; details?: string };
  dynamic_metadata?: { fields?: Record<string, { structValue?: { fields?: Record<string, { stringValue?: string }> } }> };
  mode_override?: { response_body_mode?: string };
}

export class ExtProcTestClient {
  readonly client: InstanceType<Ctor>;
  constructor(address: string) {
    this.client = new (clientCtor())(address, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": 64 * 1024 * 1024,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
    });
  }

  /** Opens a stream for one phase; returns a handle that sends a message and awaits its reply. */
  open(phase: "router" | "upstream" | string): ExtProcStream {
    const md = new grpc.Metadata();
    md.set("x-llm-router-phase", phase);
    return new ExtProcStream(this.client.Process(md));
  }

  close(): void {
    this.client.close();
  }
}

export class ExtProcStream {
  readonly #replies: EnvoyResponse[] = [];
  readonly #waiters: Array<{ resolve: (r: EnvoyResponse) => void; reject: (e: Error) => void }> = [];
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(readonly call: grpc.ClientDuplexStream<object, EnvoyResponse>) {
    call.on("data", (r: EnvoyResponse) => {
      const w = this.#waiters.shift();
      if (w) w.resolve(r);
      else this.#replies.push(r);
    });
    call.on("error", (e: grpc.ServiceError) => {
      this.error = e;
      for (const w of this.#waiters.splice(0)) w.reject(e);
    });
    call.on("end", () => {
      this.ended = true;
      for (const w of this.#waiters.splice(0)) w.reject(new Error("stream ended"));
    });
  }

  next(): Promise<EnvoyResponse> {
    const r = this.#replies.shift();
    if (r) return Promise.resolve(r);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Sends one ProcessingRequest and waits for its reply. */
  send(message: object): Promise<EnvoyResponse> {
    this.call.write(message);
    return this.next();
  }

  /** Resolves with the gRPC status once the server ends the call. */
  status(): Promise<grpc.StatusObject> {
    return new Promise((resolve) => this.call.on("status", resolve));
  }

  end(): void {
    this.call.end();
  }

  /** Envoy resetting the stream (the client went away mid-response). */
  cancel(): void {
    this.call.cancel();
  }
}

/** Envoy's request_headers message: every value as raw_value bytes, as current Envoy sends. */
export function headersMessage(headers: Record<string, string>, endOfStream = false, extra: object = {}): object {
  return {
    request_headers: {
      headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
      end_of_stream: endOfStream,
    },
    ...extra,
  };
}

export function bodyMessage(body: Buffer | string, extra: object = {}): object {
  return { request_body: { body: Buffer.isBuffer(body) ? body : Buffer.from(body), end_of_stream: true }, ...extra };
}

/** Set headers of a reply as name -> value (raw_value decoded). */
export function setHeaders(common: EnvoyCommon | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of common?.header_mutation?.set_headers ?? []) out[h.header.key] = (h.header.raw_value ?? Buffer.alloc(0)).toString("latin1");
  return out;
}

export function immediateJson(r: EnvoyResponse): { status: number; body: unknown; headers: Record<string, string> } {
  const ir = r.immediate_response;
  if (!ir) throw new Error(`expected an immediate_response, got ${r.response}`);
  return {
    status: typeof ir.status?.code === "string" ? (statusCodes.get(ir.status.code) ?? Number(ir.status.code)) : Number(ir.status?.code),
    body: JSON.parse((ir.body ?? Buffer.alloc(0)).toString("utf8")),
    headers: setHeaders({ header_mutation: ir.headers ?? {} }),
  };
}
