// Bench child: a do-nothing ext_proc server on the same grpc-js stack, service definition and
// message limits as the service. Every message gets an empty CONTINUE reply of the matching kind.
//
// `--workers N` (N > 1) runs it as `serve --workers N` runs the service: a node:cluster primary
// and N workers on one port (the primary deals out connections), the baseline for the open loop
// against `serve --workers N` (bench/open-loop-workers.ts). The CPU it reports is the primary's
// plus its workers' (Linux /proc).
import cluster from "node:cluster";
import * as grpc from "@grpc/grpc-js";
import { loadExtProcService } from "../src/extproc/proto";
import { reportFailure, reportReady, serveIpc, SERVER_MAX_MESSAGE_BYTES } from "./ipc";
import { freePort, processCpuUs } from "./serve-child";

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

/** Binds the do-nothing server to 127.0.0.1:`port` (0: any); resolves its port and its shutdown. */
async function listen(port: number): Promise<{ port: number; stop: () => Promise<void> }> {
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
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const stop = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 1000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  return { port: bound, stop };
}

/** `--workers N` from argv (default 1). */
function workersArg(): number {
  const i = process.argv.indexOf("--workers");
  const n = i < 0 ? 1 : Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--workers takes a positive integer (got ${process.argv[i + 1]})`);
  return n;
}

async function main(): Promise<void> {
  if (cluster.isWorker) {
    const { port } = await listen(Number(process.env.NOOP_PORT));
    process.send?.({ type: "listening", port });
    return;
  }
  const workers = workersArg();
  if (workers === 1) {
    const { port, stop } = await listen(0);
    serveIpc(stop);
    reportReady(port);
    return;
  }
  // The workers share one address, so the primary names the port.
  const port = await freePort();
  cluster.setupPrimary({ exec: __filename, args: [] });
  const forked = Array.from({ length: workers }, () => cluster.fork({ NOOP_PORT: String(port) }));
  await Promise.all(
    forked.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("exit", (code) => reject(new Error(`a do-nothing worker exited with code ${code}`)));
        }),
    ),
  );
  const stop = async () => {
    await Promise.all(forked.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : (w.once("exit", () => resolve()), w.kill())))));
  };
  serveIpc(stop, () => forked.reduce((us, w) => us + (w.process.pid === undefined ? 0 : processCpuUs(w.process.pid)), 0));
  reportReady(port);
}

main().catch(reportFailure);
