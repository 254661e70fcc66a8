// A tiny scriptable ext_proc server on Envoy's own protos, for tests of the harness (and anything
// else that needs a fake ext_proc service). Each message goes to `handler`; its result decides the
// reply: a ProcessingResponse, the default "continue" reply (undefined), no reply, a clean close,
// or a gRPC error.
import * as grpc from "@grpc/grpc-js";
import { GRPC_MESSAGE_LIMIT_OPTIONS, extProcProto } from "./ext-proc-proto";
import type { HeaderValueOptionMsg, ProcessingRequestMsg, ProcessingResponseMsg } from "./ext-proc-types";

export interface ExtProcCall {
  /** Stream number, from 0, in arrival order. */
  index: number;
  /** Call metadata (e.g. x-llm-router-phase). */
  metadata: Record<string, string>;
  /** Messages received on this stream so far (the current one included). */
  received: ProcessingRequestMsg[];
}

export type HandlerResult =
  | ProcessingResponseMsg
  | { noReply: true }
  | { close: true }
  | { error: grpc.status; details?: string }
  | undefined;

export type ExtProcHandler = (message: ProcessingRequestMsg, call: ExtProcCall) => HandlerResult | Promise<HandlerResult>;

export interface TestExtProcServer {
  /** host:port to give the harness as extProcAddress. */
  address: string;
  calls: ExtProcCall[];
  setHandler(handler: ExtProcHandler): void;
  close(): Promise<void>;
}

/** The reply that changes nothing: an empty CommonResponse of the matching kind. */
export function continueReply(message: ProcessingRequestMsg): ProcessingResponseMsg {
  const kind = message.request ?? "request_headers";
  return kind === "request_trailers" || kind === "response_trailers" ? { [kind]: {} } : { [kind]: { response: {} } };
}

/** set_headers entries that overwrite, spelled out the way Envoy needs (raw_value only). */
export function overwrite(headers: Record<string, string>): HeaderValueOptionMsg[] {
  return Object.entries(headers).map(([key, value]) => ({
    header: { key, raw_value: Buffer.from(value) },
    append: { value: false },
    append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
  }));
}

/** A header value from a request_headers / response_headers message. */
export function headerOf(message: ProcessingRequestMsg, name: string): string | undefined {
  const list = (message.request_headers ?? message.response_headers)?.headers?.headers ?? [];
  const entry = list.find((h) => h.key === name);
  return entry?.raw_value === undefined ? undefined : Buffer.from(entry.raw_value).toString("utf8");
}

function metadataRecord(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = typeof v === "string" ? v : v.toString("utf8");
  return out;
}

export async function startTestExtProcServer(handler: ExtProcHandler = () => undefined): Promise<TestExtProcServer> {
  let current = handler;
  const calls: ExtProcCall[] = [];
  const server = new grpc.Server(GRPC_MESSAGE_LIMIT_OPTIONS);
  server.addService(extProcProto().service, {
    Process: (stream: grpc.ServerDuplexStream<ProcessingRequestMsg, ProcessingResponseMsg>) => {
      const call: ExtProcCall = { index: calls.length, metadata: metadataRecord(stream.metadata), received: [] };
      calls.push(call);
      let done = false;
      let chain = Promise.resolve();
      stream.on("error", () => undefined);
      stream.on("cancelled", () => {
        done = true;
      });
      stream.on("end", () => {
        if (!done) {
          done = true;
          stream.end();
        }
      });
      stream.on("data", (message: ProcessingRequestMsg) => {
        call.received.push(message);
        // One message at a time, in order, like a real server loop.
        chain = chain.then(async () => {
          if (done) return;
          let result: HandlerResult;
          try {
            result = await current(message, call);
          } catch (err) {
            result = { error: grpc.status.INTERNAL, details: `handler threw: ${err instanceof Error ? err.message : String(err)}` };
          }
          if (done) return;
          if (result !== undefined && "noReply" in result) return;
          if (result !== undefined && "close" in result) {
            done = true;
            stream.end();
            return;
          }
          if (result !== undefined && "error" in result) {
            done = true;
            stream.emit("error", { code: result.error, details: result.details ?? "test error" });
            return;
          }
          stream.write(result ?? continueReply(message));
        });
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    address: `127.0.0.1:${port}`,
    calls,
    setHandler(next) {
      current = next;
    },
    close() {
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}
