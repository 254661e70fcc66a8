// AWS event stream framing (application/vnd.amazon.eventstream) over chunks cut anywhere: Envoy
// hands the body over in arbitrary pieces, so a frame may arrive in many chunks and one chunk may
// hold many frames. Only the framing is done here (buffering until the length-prefixed frame is
// whole); decoding and both CRC checks are EventStreamCodec's.
// https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html#streaming-event-stream
import { EventStreamCodec, type Message, type MessageHeaders } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";

/** Prelude (total length, headers length, prelude CRC) plus the message CRC. */
const MIN_FRAME_BYTES = 16;
/**
 * Event stream messages carry at most 16 MiB of payload and 128 KiB of headers; a prefix above
 * that is a corrupt length, and waiting for that many bytes would only hold the stream open.
 */
const MAX_FRAME_BYTES = 16 * 1024 * 1024 + 128 * 1024 + MIN_FRAME_BYTES;

/**
 * Header names and string values are short ASCII (":event-type", "contentBlockDelta"): decoding
 * them without a Buffer per string halves the cost of a frame. Anything else takes the full decoder.
 */
function headerText(bytes: Uint8Array): string {
  if (bytes.length > 64) return toUtf8(bytes);
  let s = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b >= 0x80) return toUtf8(bytes);
    s += String.fromCharCode(b);
  }
  return s;
}

export const eventStreamCodec = new EventStreamCodec(headerText, fromUtf8);

/** A string header's value (`:event-type`, `:message-type`...), or undefined. */
export function stringHeader(headers: MessageHeaders, name: string): string | undefined {
  const h = headers[name];
  return h !== undefined && h.type === "string" ? h.value : undefined;
}

export class EventStreamSplitter {
  /** Bytes of an unfinished frame, kept as views until the frame is complete. */
  private carry: Buffer[] = [];
  private carryBytes = 0;

  /**
   * Why the stream is unreadable (a bad length prefix, a failed CRC), once it is: push() then
   * returns nothing more.
   */
  corrupt: string | undefined;

  /**
   * The frames completed by `chunk`, decoded once each. On corruption, the frames before the bad
   * one and `corrupt` set, so the caller can still forward what was sound.
   */
  push(chunk: Buffer): Message[] {
    if (this.corrupt !== undefined) return [];
    let buf = chunk;
    if (this.carryBytes > 0) {
      const total = this.carryBytes + chunk.length;
      // Joining only once the frame can be whole keeps a large frame in many small chunks linear.
      const need = this.carryBytes >= 4 ? frameLength(this.carry) : 4;
      if (total < need) {
        this.hold(chunk);
        return [];
      }
      buf = Buffer.concat([...this.carry, chunk], total);
      this.carry = [];
      this.carryBytes = 0;
    }
    const out: Message[] = [];
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUInt32BE(at);
      if (len < MIN_FRAME_BYTES || len > MAX_FRAME_BYTES) return this.fail(out, `frame length ${len}`);
      if (buf.length - at < len) break;
      try {
        out.push(eventStreamCodec.decode(buf.subarray(at, at + len)));
      } catch (err) {
        return this.fail(out, err instanceof Error ? err.message : String(err));
      }
      at += len;
    }
    if (at < buf.length) this.hold(buf.subarray(at));
    return out;
  }

  private fail(frames: Message[], reason: string): Message[] {
    this.corrupt = reason;
    this.carry = [];
    this.carryBytes = 0;
    return frames;
  }

  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.carry.push(bytes);
    this.carryBytes += bytes.length;
  }
}

/**
 * The length prefix of the carried bytes (at least 4 of them), read across chunk boundaries. An
 * impossible one reads as 4, so the next chunk is joined at once and push() reports it.
 */
function frameLength(parts: Buffer[]): number {
  let value = 0;
  let got = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length && got < 4; i++, got++) value = value * 256 + (p[i] ?? 0);
    if (got === 4) break;
  }
  return value < MIN_FRAME_BYTES || value > MAX_FRAME_BYTES ? 4 : value;
}
