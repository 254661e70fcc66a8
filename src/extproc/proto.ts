// The project's own ext_proc protos (proto/), a subset of Envoy's checked by a conformance test, and
// the gRPC service definition built on them.
//
// The definition is made here rather than by @grpc/proto-loader because of what proto-loader adds
// on top of protobufjs: it turns every decoded message into a plain object (toObject) and every reply
// back into a message (fromObject) before encoding. The stream loop reads the decoded messages as
// they are (codec.ts) and the replies it writes are already in the shape protobufjs encodes (enums
// as their numbers, bytes as Buffers), so both conversions were pure cost: 10 to 20 µs per reply
// with header mutations, several replies per request.
import fs from "node:fs";
import path from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { Root, type Type } from "protobufjs";

/** proto/ at the package root; this file runs from dist/src/extproc/. */
export const PROTO_DIR = path.resolve(__dirname, "../../../proto");

/** protobufjs's own directory: google/protobuf/*.proto beyond the well-known types it bundles. */
const PROTOBUFJS_DIR = path.dirname(require.resolve("protobufjs/package.json"));

const PACKAGE = "envoy.service.ext_proc.v3";
const PROCESS_PATH = `/${PACKAGE}.ExternalProcessor/Process`;

export interface ExtProcProtos {
  request: Type;
  response: Type;
  /** Enum numbers the replies need, looked up by name in Envoy's enums. */
  appendOverwriteIfExistsOrAdd: number;
  bodyModeStreamed: number;
}

let loaded: ExtProcProtos | undefined;

/** The ext_proc message types, loaded once per process. */
export function extProcProtos(): ExtProcProtos {
  if (loaded !== undefined) return loaded;
  const root = new Root();
  // Imports are include-root-relative (`protoc -I proto`), never relative to the importing file.
  root.resolvePath = (_origin, target) => {
    for (const dir of [PROTO_DIR, PROTOBUFJS_DIR]) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`proto import not found: ${target}`);
  };
  root.loadSync("envoy/service/ext_proc/v3/external_processor.proto", { keepCase: true });
  root.resolveAll();
  const enumValue = (enumName: string, value: string): number => {
    const n = root.lookupEnum(enumName).values[value];
    if (n === undefined) throw new Error(`${enumName} has no ${value}`);
    return n;
  };
  loaded = {
    request: root.lookupType(`${PACKAGE}.ProcessingRequest`),
    response: root.lookupType(`${PACKAGE}.ProcessingResponse`),
    appendOverwriteIfExistsOrAdd: enumValue("envoy.config.core.v3.HeaderValueOption.HeaderAppendAction", "OVERWRITE_IF_EXISTS_OR_ADD"),
    bodyModeStreamed: enumValue("envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode", "STREAMED"),
  };
  return loaded;
}

/**
 * protobufjs's bytes as a Buffer: they are Buffers in Node already; a plain Uint8Array is wrapped, not
 * copied. (An unset bytes field decodes as a shared empty plain array: callers test the length first.)
 */
export const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));

/**
 * ExternalProcessor's one method for grpc-js: requests decoded to protobufjs messages (codec.ts reads
 * them), replies encoded from the plain objects codec.ts builds. The client half (serialize a
 * request, deserialize a reply), which the service never calls, converts as proto-loader would.
 */
export function loadExtProcService(): grpc.ServiceDefinition {
  const { request, response } = extProcProtos();
  const method: grpc.MethodDefinition<object, object> = {
    path: PROCESS_PATH,
    requestStream: true,
    responseStream: true,
    originalName: "process",
    requestSerialize: (m) => asBuffer(request.encode(request.fromObject(m)).finish()),
    requestDeserialize: (bytes) => {
      // Thrown here, grpc-js would end the stream with INTERNAL; as a value, the stream loop refuses
      // it like any other malformed message (INVALID_ARGUMENT). protobufjs also refuses strings that
      // are not UTF-8, which Envoy's own encoder never writes.
      try {
        return request.decode(bytes);
      } catch (err) {
        return { undecodable: err instanceof Error ? err.message : String(err) };
      }
    },
    responseSerialize: (m) => asBuffer(response.encode(m).finish()),
    responseDeserialize: (bytes) => response.toObject(response.decode(bytes), { enums: String, longs: String, oneofs: true }),
  };
  return { Process: method };
}
