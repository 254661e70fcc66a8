// Where Envoy's own published API protos live: the npm package @grpc/grpc-js-xds ships a snapshot
// (about Envoy 1.31) under deps/. Tests load them from there; they are never copied into the repo.
import path from "node:path";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { loadExtProcService } from "../../src/extproc/proto";

const XDS_PACKAGE_ROOT = path.dirname(require.resolve("@grpc/grpc-js-xds/package.json"));

export const ENVOY_PROTO_INCLUDE_DIRS: readonly string[] = [
  "deps/envoy-api",
  "deps/xds",
  "deps/protoc-gen-validate",
  "deps/googleapis",
].map((dir) => path.join(XDS_PACKAGE_ROOT, dir));

/** The ext_proc service definition, as Envoy publishes it. */
export const ENVOY_EXT_PROC_PROTO = "envoy/service/ext_proc/v3/external_processor.proto";

/** Resolves a path relative to Envoy's API root (deps/envoy-api). */
export function envoyApiFile(relative: string): string {
  const root = ENVOY_PROTO_INCLUDE_DIRS[0];
  if (root === undefined) throw new Error("no Envoy API include dir");
  return path.join(root, relative);
}

let extProcDefinition: PackageDefinition | undefined;

/** Envoy's own ext_proc service definition, loaded once (options as the tests' clients use them). */
export function envoyExtProcDefinition(): PackageDefinition {
  extProcDefinition ??= loadSync(ENVOY_EXT_PROC_PROTO, {
    includeDirs: [...ENVOY_PROTO_INCLUDE_DIRS],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  return extProcDefinition;
}

let serviceSerializer: ((reply: object) => Buffer) | undefined;

/**
 * A reply as Envoy reads it: encoded by the service's own serializer (src/extproc/proto.ts), decoded
 * with Envoy's protos (enums by name, unset fields absent).
 */
export function asEnvoyReads(reply: object): Record<string, unknown> {
  serviceSerializer ??= loadExtProcService().Process!.responseSerialize as (reply: object) => Buffer;
  const envoy = envoyExtProcDefinition()["envoy.service.ext_proc.v3.ExternalProcessor"] as unknown as Record<string, { responseDeserialize(b: Buffer): Record<string, unknown> }>;
  return envoy.Process!.responseDeserialize(serviceSerializer(reply));
}
