// Server-sent events writer (https://html.spec.whatwg.org/multipage/server-sent-events.html).
// One write per event, so every event is a separate chunk on the wire. A cut simulates a provider
// failing mid-stream after that many events: "drop" destroys the socket (the connection dies),
// "end" ends the response cleanly without the rest (a stream missing its terminal event).
// Binary streams (Bedrock's AWS event stream) use the same writer and cuts, one frame per event.
import type { ServerResponse } from "node:http";
import { setImmediate as nextTick } from "node:timers/promises";

export interface StreamCut {
  after: number;
  how: "drop" | "end";
}

export class SseWriter {
  private written = 0;
  private destroyed = false;
  /** An "end" cut happened: later events are not written, end() still ends the response. */
  private silenced = false;
  private readonly dropAfter: number | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly cut: StreamCut | undefined,
    contentType = "text/event-stream; charset=utf-8",
  ) {
    this.dropAfter = cut?.how === "drop" ? cut.after : undefined;
    res.writeHead(200, {
      "content-type": contentType,
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    res.flushHeaders();
    if (this.dropAfter !== undefined && this.dropAfter <= 0) {
      // Socket writes are ordered: this callback runs once the headers have left.
      this.destroyed = true;
      res.socket?.write("", () => res.socket?.destroy());
    }
  }

  /** True once the socket was destroyed on purpose (or the client went away). */
  get dropped(): boolean {
    return this.destroyed || this.res.destroyed;
  }

  /** Writes one event; `data` is written as a single `data:` line. */
  async send(data: string, event?: string): Promise<void> {
    await this.write(event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`);
  }

  /** Writes one already encoded binary frame (an AWS event stream message); it counts as one event. */
  async frame(bytes: Uint8Array): Promise<void> {
    await this.write(bytes);
  }

  private async write(payload: string | Uint8Array): Promise<void> {
    if (this.dropped || this.silenced) return;
    if (this.cut?.how === "end" && this.written >= this.cut.after) {
      this.silenced = true;
      return;
    }
    this.written++;
    const drop = this.dropAfter !== undefined && this.written >= this.dropAfter;
    if (drop) this.destroyed = true;
    // Destroy only after the bytes were handed to the OS, so exactly `dropAfter` events arrive.
    this.res.write(payload, () => {
      if (drop) this.res.socket?.destroy();
    });
    // Yield between events so they leave as separate writes instead of one coalesced buffer.
    await nextTick();
  }

  async json(value: unknown, event?: string): Promise<void> {
    await this.send(JSON.stringify(value), event);
  }

  end(): void {
    if (!this.dropped) this.res.end();
  }
}
