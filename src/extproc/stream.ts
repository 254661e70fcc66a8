// The ext_proc stream loop: one gRPC stream per HTTP request per filter. Every message gets exactly
// one reply, in order, even when a reply is computed asynchronously. Anything wrong with one stream
// (malformed message, unexpected order, a bug) ends that stream with a gRPC error; Envoy then
// answers that one client (500, since failure_mode_allow is false) and other streams are untouched.
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { StreamMetrics } from "../metrics/metrics";
import { decodeRequest, encodeReply, encodeTimeoutOverride, MalformedMessage, type ProtoProcessingRequest } from "./codec";
import { ProtocolError, type ExtProcMessage, type PhaseReply, type StreamControl, type StreamOutcome, type StreamProcessor } from "./messages";

export type ProcessCall = grpc.ServerDuplexStream<ProtoProcessingRequest, object>;

export function serveStream(call: ProcessCall, phase: string, processor: StreamProcessor, log: Logger, metrics?: StreamMetrics): void {
  let queue: Promise<void> | undefined;
  let finished = false;
  metrics?.opened();

  const finish = (outcome: StreamOutcome, status?: { code: grpc.status; details: string }) => {
    if (finished) return;
    finished = true;
    metrics?.ended(outcome);
    try {
      processor.close?.(outcome);
    } catch (err) {
      log.error({ err, phase }, "ext_proc stream close hook failed");
    }
    if (status) {
      // Sends the status trailer and ends the call.
      call.emit("error", { code: status.code, details: status.details, metadata: new grpc.Metadata() });
    } else if (outcome === "ok") {
      call.end();
    }
  };

  const fail = (err: unknown) => {
    if (err instanceof ProtocolError || err instanceof MalformedMessage) {
      log.warn({ phase, reason: err.message }, "ext_proc stream rejected");
      finish("error", { code: grpc.status.INVALID_ARGUMENT, details: err.message });
    } else {
      log.error({ err, phase }, "ext_proc stream failed");
      finish("error", { code: grpc.status.INTERNAL, details: "internal error" });
    }
  };

  /** `received`: when the message arrived (performance.now()), for the answer-time histogram. */
  const write = (message: ExtProcMessage, reply: PhaseReply, received: number) => {
    if (finished) return;
    try {
      call.write(encodeReply(message.kind, reply));
    } catch (err) {
      // Thrown from inside a promise callback or an event handler, this would be an unhandled
      // rejection or an uncaught exception, and either ends the whole process.
      fail(err);
      return;
    }
    const seconds = (performance.now() - received) / 1000;
    metrics?.answered(message.kind, seconds);
    processor.answered?.(message.kind, seconds);
  };

  const control: StreamControl = {
    extendTimeout: (ms) => {
      if (!finished) call.write(encodeTimeoutOverride(ms));
    },
  };

  const process = (raw: ProtoProcessingRequest, received: number): void | Promise<void> => {
    if (finished) return;
    let message: ExtProcMessage;
    let reply: PhaseReply | Promise<PhaseReply>;
    try {
      message = decodeRequest(raw);
      reply = processor.handle(message, control);
    } catch (err) {
      fail(err);
      return;
    }
    if (reply instanceof Promise) return reply.then((r) => write(message, r, received), fail);
    write(message, reply, received);
  };

  // Replies are written as soon as they are ready; an asynchronous reply makes later messages wait
  // behind it so that the order of replies is the order of messages.
  call.on("data", (raw: ProtoProcessingRequest) => {
    if (finished) return;
    const received = performance.now();
    const run = queue ? queue.then(() => process(raw, received)) : process(raw, received);
    if (!run) return;
    const q: Promise<void> = run.finally(() => {
      if (queue === q) queue = undefined;
    });
    queue = q;
  });
  // Envoy half-closes when the HTTP request is done with this filter; finish after pending replies.
  call.on("end", () => {
    if (queue) void queue.then(() => finish("ok"));
    else finish("ok");
  });
  call.on("cancelled", () => finish("cancelled"));
  call.on("error", (err) => {
    if (!finished) {
      log.debug({ err, phase }, "ext_proc stream error");
      finish("cancelled");
    }
  });
}
