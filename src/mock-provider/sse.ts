// Server-sent events writer (https://html.spec.whatwg.org/multipage/server-sent-events.html).
// One write per event, so every event is a separate chunk on the wire; `dropAfter` destroys the
// socket after that many events to simulate a provider that dies mid-stream.
import type { ServerResponse } from "node:http";
import { setImmediate as nextTick } from "node:timers/promises";

export class SseWriter {
  private written = 0;
  private destroyed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly dropAfter: number | undefined,
  ) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    res.flushHeaders();
    if (dropAfter !== undefined && dropAfter <= 0) {
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
    if (this.dropped) return;
    const lines = event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`;
    this.written++;
    const drop = this.dropAfter !== undefined && this.written >= this.dropAfter;
    if (drop) this.destroyed = true;
    // Destroy only after the bytes were handed to the OS, so exactly `dropAfter` events arrive.
    this.res.write(lines, () => {
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
