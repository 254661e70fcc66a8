// The bench's load generator speaks HTTP/2 by hand, over a plain TCP socket: node:http2's client
// costs a few hundred microseconds of CPU per request of two streams (stream objects, header
// validation and conversion, async hooks), which on a 2-core machine is CPU taken from the server
// being measured. A client that only ever sends the same few header blocks and counts replies
// needs little of HTTP/2 (RFC 9113): the preface and SETTINGS, HEADERS with a header block encoded
// once (HPACK literals, RFC 7541 section 6.2.2: no table, no Huffman), DATA within the peer's flow-control
// windows, WINDOW_UPDATE for what it receives, SETTINGS and PING acknowledgements. It never reads
// the response header blocks (that would take an HPACK decoder): a stream ends with the server's
// END_STREAM, fails on RST_STREAM or GOAWAY, and the caller counts gRPC messages in the DATA; the
// bench checks the service's own counts of successful requests at the end instead of grpc-status.
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const enum Type {
  Data = 0x0,
  Headers = 0x1,
  RstStream = 0x3,
  Settings = 0x4,
  Ping = 0x6,
  GoAway = 0x7,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65_535;

/** What a stream's owner hears: response DATA payloads, the end, or a failure. */
export interface H2StreamHandler {
  data(payload: Buffer): void;
  end(): void;
  fail(err: Error): void;
}

interface Stream {
  handler: H2StreamHandler;
  /** What the peer lets us send on this stream. */
  window: number;
  queue: Array<{ data: Buffer; end: boolean }>;
  /** END_STREAM seen on a header block still waiting for its CONTINUATION. */
  ending: boolean;
}

/** A header block of literal fields without indexing, new names (RFC 7541 6.2.2). */
export function hpackLiterals(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  }
  return Buffer.concat(parts);
}

/** A string literal without Huffman coding: its length as a 7-bit-prefix integer, then the bytes. */
function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, "latin1");
  const length: number[] = [];
  if (bytes.length < 127) length.push(bytes.length);
  else {
    length.push(127);
    let n = bytes.length - 127;
    while (n >= 128) {
      length.push((n % 128) + 128);
      n = Math.floor(n / 128);
    }
    length.push(n);
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

function frameHeader(length: number, type: Type, flags: number, id: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return h;
}

export class H2Connection {
  readonly #socket: net.Socket;
  readonly #streams = new Map<number, Stream>();
  #nextId = 1;
  #sendWindow = DEFAULT_WINDOW;
  #initialStreamWindow = DEFAULT_WINDOW;
  #maxFrame = 16_384;
  /** DATA bytes received since the last connection-level WINDOW_UPDATE. */
  #received = 0;
  #in: Buffer = Buffer.alloc(0);
  #out: Buffer[] = [];
  #flushing = false;
  #dead: Error | undefined;
  readonly #blocked = new Set<Stream>();
  #acked: () => void = () => undefined;
  #closing = false;
  /** Streams opened so far. */
  opened = 0;
  /** The peer acknowledged our SETTINGS (our stream windows apply from then on). */
  readonly ready: Promise<void>;

  /** host and port, or the path of a Unix socket. */
  constructor(to: { host: string; port: number } | { path: string }) {
    this.#socket = net.connect({ ...to, noDelay: true });
    let settled: (err?: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => (settled = (err) => (err ? reject(err) : resolve())));
    this.#acked = () => settled();
    this.#socket.on("data", (chunk: Buffer) => this.#read(chunk));
    this.#socket.on("error", (err) => this.#die(err));
    this.#socket.on("close", () => {
      this.#die(new Error("connection closed"));
      settled(this.#dead);
    });
    // Our streams take whatever the server sends; the connection's window is opened as wide and
    // topped up as it is used.
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
    settings.writeUInt32BE(MAX_WINDOW, 2);
    this.#write(PREFACE, frameHeader(6, Type.Settings, 0, 0), settings, this.#windowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW));
  }

  /** Opens a stream with a header block (HEADERS, END_HEADERS); its id. */
  open(headerBlock: Buffer, handler: H2StreamHandler): number {
    if (this.#dead) throw this.#dead;
    const id = this.#nextId;
    this.#nextId += 2;
    this.opened++;
    this.#streams.set(id, { handler, window: this.#initialStreamWindow, queue: [], ending: false });
    this.#write(frameHeader(headerBlock.length, Type.Headers, END_HEADERS, id), headerBlock);
    return id;
  }

  /** DATA on a stream (an empty one with `end` half-closes it), as the flow-control windows allow. */
  send(id: number, data: Buffer, end: boolean): void {
    const s = this.#streams.get(id);
    if (s === undefined) return;
    s.queue.push({ data, end });
    this.#drain(s, id);
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Closes once the open streams have ended (a connection retired, as Envoy retires them). */
  closeWhenIdle(): void {
    this.#closing = true;
    if (this.#streams.size === 0) this.close();
  }

  #drain(s: Stream, id: number): void {
    while (s.queue.length > 0) {
      const item = s.queue[0]!;
      const n = Math.min(item.data.length, s.window, this.#sendWindow, this.#maxFrame);
      if (n <= 0 && item.data.length > 0) {
        this.#blocked.add(s);
        return;
      }
      const last = n === item.data.length;
      this.#write(frameHeader(n, Type.Data, last && item.end ? END_STREAM : 0, id), item.data.subarray(0, n));
      s.window -= n;
      this.#sendWindow -= n;
      if (last) s.queue.shift();
      else item.data = item.data.subarray(n);
    }
    this.#blocked.delete(s);
  }

  #unblock(): void {
    for (const [id, s] of this.#streams) if (this.#blocked.has(s)) this.#drain(s, id);
  }

  #read(chunk: Buffer): void {
    let buf = this.#in.length === 0 ? chunk : Buffer.concat([this.#in, chunk]);
    let off = 0;
    while (buf.length - off >= 9) {
      const length = buf.readUIntBE(off, 3);
      if (buf.length - off < 9 + length) break;
      const type = buf[off + 3]!;
      const flags = buf[off + 4]!;
      const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
      const payload = buf.subarray(off + 9, off + 9 + length);
      off += 9 + length;
      this.#frame(type, flags, id, payload);
    }
    buf = buf.subarray(off);
    // A partial frame keeps only its own bytes, not the whole chunk it came in.
    this.#in = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  }

  #frame(type: number, flags: number, id: number, payload: Buffer): void {
    const s = this.#streams.get(id);
    switch (type) {
      case Type.Data: {
        this.#received += payload.length;
        if (this.#received >= 2 ** 30) {
          this.#write(this.#windowUpdate(0, this.#received));
          this.#received = 0;
        }
        if (s === undefined) return;
        const data = flags & PADDED ? payload.subarray(1, payload.length - payload[0]!) : payload;
        if (data.length > 0) s.handler.data(data);
        if (flags & END_STREAM) this.#ended(id, s);
        return;
      }
      case Type.Headers:
      case Type.Continuation:
        if (s === undefined) return;
        if (type === Type.Headers && flags & END_STREAM) s.ending = true;
        if (flags & END_HEADERS && s.ending) this.#ended(id, s);
        return;
      case Type.RstStream:
        if (s === undefined) return;
        this.#streams.delete(id);
        this.#blocked.delete(s);
        s.handler.fail(new Error(`stream ${id} reset by the server (code ${payload.readUInt32BE(0)})`));
        return;
      case Type.Settings:
        if (flags & ACK) {
          this.#acked();
          return;
        }
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const key = payload.readUInt16BE(i);
          const value = payload.readUInt32BE(i + 2);
          if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
            // Applies to the open streams too, by the difference (RFC 9113 6.9.2).
            for (const st of this.#streams.values()) st.window += value - this.#initialStreamWindow;
            this.#initialStreamWindow = value;
          } else if (key === SETTINGS_MAX_FRAME_SIZE) this.#maxFrame = value;
        }
        this.#write(frameHeader(0, Type.Settings, ACK, 0));
        this.#unblock();
        return;
      case Type.Ping:
        if (!(flags & ACK)) this.#write(frameHeader(8, Type.Ping, ACK, 0), payload);
        return;
      case Type.GoAway:
        this.#die(new Error(`the server sent GOAWAY (code ${payload.readUInt32BE(4)})`));
        return;
      case Type.WindowUpdate: {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          this.#sendWindow += increment;
          this.#unblock();
        } else if (s !== undefined) {
          s.window += increment;
          this.#drain(s, id);
        }
        return;
      }
      default:
      // PRIORITY, PUSH_PROMISE (Node's server never pushes), unknown types: nothing to do.
    }
  }

  #ended(id: number, s: Stream): void {
    this.#streams.delete(id);
    this.#blocked.delete(s);
    s.handler.end();
    if (this.#closing && this.#streams.size === 0) this.close();
  }

  #windowUpdate(id: number, increment: number): Buffer {
    const b = Buffer.allocUnsafe(13);
    frameHeader(4, Type.WindowUpdate, 0, id).copy(b, 0);
    b.writeUInt32BE(increment, 9);
    return b;
  }

  /** Frames written in one turn of the event loop leave in one write. */
  #write(...bufs: Buffer[]): void {
    for (const b of bufs) this.#out.push(b);
    if (this.#flushing) return;
    this.#flushing = true;
    process.nextTick(() => {
      this.#flushing = false;
      const out = this.#out;
      this.#out = [];
      if (!this.#dead) this.#socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    });
  }

  #die(err: Error): void {
    if (this.#dead) return;
    this.#dead = err;
    for (const s of this.#streams.values()) s.handler.fail(err);
    this.#streams.clear();
    this.#socket.destroy();
  }
}
