// Bench child: a do-nothing ext_proc server on the same grpc-js stack, service definition and
// message limits as the service. Every message gets an empty CONTINUE reply of the matching kind.
import * as grpc from "@grpc/grpc-js";
import { loadExtProcService } from "../src/extproc/proto";
import { reportFailure, reportReady, serveIpc, SERVER_MAX_MESSAGE_BYTES } from "./ipc";

interface ProcessingRequest {
  request?: string;
}

/** ProcessingRequest oneof -> the ProcessingResponse field answering it. */
const REPLY_FIELD: Record<string, string> = {
  request_headers: "request_headers",
  response_headers: "response_headers",
  request_body: "request_body",
  response_body: "response_body",
  request_trailers: "request_trailers",
  response_trailers: "response_trailers",
};

async function main(): Promise<void> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": SERVER_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": SERVER_MAX_MESSAGE_BYTES,
  });
  server.addService(loadExtProcService(), {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, object>) => {
      call.on("data", (req: ProcessingRequest) => {
        const field = req.request === undefined ? undefined : REPLY_FIELD[req.request];
        if (field === undefined) {
          call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: "ProcessingRequest without a request", metadata: new grpc.Metadata() });
          return;
        }
        call.write({ [field]: {} });
      });
      call.on("end", () => call.end());
      call.on("error", () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  serveIpc(
    () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  );
  reportReady(port);
}

main().catch(reportFailure);
