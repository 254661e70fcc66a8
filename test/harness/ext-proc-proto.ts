// Loads Envoy's own ext_proc protos (from @grpc/grpc-js-xds, see test/support/envoy-protos.ts):
// the harness and the test ext_proc server speak exactly what Envoy speaks, not the project's
// proto/ copy.
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { envoyExtProcDefinition } from "../support/envoy-protos";
import type { ProcessingRequestMsg, ProcessingResponseMsg } from "./ext-proc-types";

export const EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor";
export const PROCESS_PATH = `/${EXT_PROC_SERVICE}/Process`;

/** Envoy's ext_proc client allows large messages; grpc-js defaults to 4 MiB, so raise it. */
export const GRPC_MESSAGE_LIMIT_OPTIONS: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 64 * 1024 * 1024,
};

export interface ExtProcProto {
  service: grpc.ServiceDefinition;
  serializeRequest: (msg: ProcessingRequestMsg) => Buffer;
  deserializeRequest: (bytes: Buffer) => ProcessingRequestMsg;
  deserializeResponse: (bytes: Buffer) => ProcessingResponseMsg;
  /** envoy.type.v3.StatusCode names ("TooManyRequests") -> numbers (429). */
  statusCodes: ReadonlyMap<string, number>;
}

let cached: ExtProcProto | undefined;

interface EnumDescriptor {
  value?: Array<{ name?: string; number?: number }>;
}

export function extProcProto(): ExtProcProto {
  if (cached !== undefined) return cached;
  const def = envoyExtProcDefinition();
  const service = def[EXT_PROC_SERVICE] as unknown as grpc.ServiceDefinition;
  const process = service["Process"];
  if (process === undefined) throw new Error("ext_proc proto has no Process method");
  const statusCodes = new Map<string, number>();
  const enumDef = def["envoy.type.v3.StatusCode"] as protoLoader.EnumTypeDefinition | undefined;
  for (const v of (enumDef?.type as EnumDescriptor | undefined)?.value ?? []) {
    if (v.name !== undefined && v.number !== undefined) statusCodes.set(v.name, v.number);
  }
  cached = {
    service,
    serializeRequest: process.requestSerialize as (msg: ProcessingRequestMsg) => Buffer,
    deserializeRequest: process.requestDeserialize as (bytes: Buffer) => ProcessingRequestMsg,
    deserializeResponse: process.responseDeserialize as (bytes: Buffer) => ProcessingResponseMsg,
    statusCodes,
  };
  return cached;
}

/** An ImmediateResponse status code (enum name or number) as a number. */
export function statusCodeNumber(code: string | number | undefined): number | undefined {
  if (code === undefined) return undefined;
  if (typeof code === "number") return code;
  return extProcProto().statusCodes.get(code);
}
