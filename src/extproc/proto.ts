// Loads the project's own ext_proc protos (proto/), a subset of Envoy's checked by a conformance test.
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** proto/ at the package root; this file runs from dist/src/extproc/. */
export const PROTO_DIR = path.resolve(__dirname, "../../../proto");

export function loadExtProcService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync("envoy/service/ext_proc/v3/external_processor.proto", {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
  };
  return pkg.envoy.service.ext_proc.v3.ExternalProcessor.service;
}
