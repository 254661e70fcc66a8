// The stream loop itself (src/extproc/stream.ts), with a stand-in for grpc-js's call object: a reply
// that cannot be written (here the transport throws) ends that one stream with a gRPC error, whether
// the reply was computed synchronously or asynchronously, and never escapes as an uncaught exception
// or an unhandled rejection (either would end the whole process).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import pino from "pino";
import type { ProcessCall } from "../src/extproc/stream";
import { serveStream } from "../src/extproc/stream";
import type { PhaseReply, StreamProcessor } from "../src/extproc/messages";

class BrokenCall extends EventEmitter {
  errors: Array<{ code: number; details: string }> = [];
  constructor() {
    super();
    this.on("error", (e: { code?: number; details?: string }) => {
      if (e.code !== undefined) this.errors.push({ code: e.code, details: e.details ?? "" });
    });
  }
  write(): boolean {
    throw new Error("transport gone");
  }
  end(): void {}
}

const HEADERS = { request: "request_headers", request_headers: { headers: { headers: [{ key: ":path", raw_value: Buffer.from("/") }] }, end_of_stream: true } };

for (const kind of ["synchronous", "asynchronous"] as const) {
  describe(`a reply that cannot be written (${kind})`, () => {
    it("ends the stream with INTERNAL and nothing escapes", async () => {
      const escaped: unknown[] = [];
      const onRejection = (e: unknown) => escaped.push(e);
      process.on("unhandledRejection", onRejection);
      process.on("uncaughtException", onRejection);
      try {
        const call = new BrokenCall();
        const reply: PhaseReply = { kind: "continue" };
        const processor: StreamProcessor = { handle: () => (kind === "synchronous" ? reply : Promise.resolve(reply)) };
        serveStream(call as unknown as ProcessCall, "router", processor, pino({ level: "silent" }));
        call.emit("data", HEADERS);
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(call.errors, [{ code: 13, details: "internal error" }]);
        assert.deepEqual(escaped, []);
      } finally {
        process.off("unhandledRejection", onRejection);
        process.off("uncaughtException", onRejection);
      }
    });
  });
}
