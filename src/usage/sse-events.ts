// Incremental server-sent-events framing over raw bytes
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
// It works on bytes, not decoded text, for two reasons: a chunk boundary inside a multi-byte UTF-8
// character or between the \r and \n of one line break must change nothing, and the usage reader
// must be able to cut the original bytes at exact event boundaries to drop one event.
//
// Chunks are referenced rather than copied until their bytes are consumed (only a line split across
// chunks is joined): callers must not reuse a chunk's memory after feeding it. Envoy body chunks
// decoded by grpc-js are fresh buffers, so nothing needs copying on the hot path.

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const EMPTY = Buffer.alloc(0);
const DATA = Buffer.from("data");
const EVENT = Buffer.from("event");
/** Enough of a line to tell a data field, even behind a byte order mark. */
const HEAD_BYTES = 3 + DATA.length + 1;

export interface SseSink {
  /** Whether the data of an event of this type is worth decoding; the answer no skips the decode. */
  wantsData(type: string): boolean;
  /**
   * One dispatched event (a block with at least one data line). `type` is the event field or
   * "message"; `data` joins the data lines with \n, and is undefined when declined or when the
   * event outgrew the size cap. [start, end) are the stream offsets of the whole block, from the
   * end of the previous block (so comment lines before the data belong to it) through the blank
   * line that ended it.
   */
  onEvent(type: string, data: string | undefined, start: number, end: number): void;
}

export class SseFramer {
  private fed = 0;
  private blockAt = 0;
  /** An unfinished line carried over to the next chunk (views into earlier chunks). */
  private carry: Buffer[] | undefined;
  private carryBytes = 0;
  /** The carried line outgrew the cap: its bytes are dropped, but it still ends where it ends. */
  private carryDropped: "no" | "data" | "other" = "no";
  /**
   * The carried line ended with \r at the very end of a chunk: whether a \n follows, and so
   * whether it belongs to the same line break, is only known from the next chunk.
   */
  private carryEndsWithCR = false;
  private firstLine = true;
  private type = "";
  /** The last event field's bytes and string: consecutive events mostly share a type, so it is decoded once. */
  private lastTypeBytes: Buffer = EMPTY;
  private lastType = "";
  /** The first data line as a range of its buffer (the common single-line case needs no view), the others as views. */
  private dataBuf: Buffer = EMPTY;
  private dataStart = 0;
  private dataEnd = 0;
  private moreData: Buffer[] = [];
  private dataBytes = 0;
  private hasData = false;
  private hasLines = false;
  /** Some of the block's bytes were dropped for the size cap: its data is not trustworthy. */
  private broken = false;

  constructor(
    private readonly sink: SseSink,
    private readonly maxEventBytes: number,
  ) {}

  /** Stream bytes fed so far. */
  get offset(): number {
    return this.fed;
  }

  /** Stream offset where the block not yet dispatched begins (equals offset between blocks). */
  get pendingFrom(): number {
    return this.blockAt;
  }

  feed(chunk: Buffer, end: boolean): void {
    const base = this.fed;
    const n = chunk.length;
    let i = 0;
    if (this.carryEndsWithCR) {
      if (n === 0 && !end) return;
      if (n > 0 && chunk[0] === LF) i = 1;
      this.carryEndsWithCR = false;
      this.line(chunk, 0, 0, base + i);
    }
    // Each indexOf result is reused until the scan passes it, so a chunk is searched once per byte
    // kind however many lines it holds; -1 means "none left in this chunk".
    let lf = -2;
    let cr = -2;
    while (i < n) {
      if (lf !== -1 && lf < i) lf = chunk.indexOf(LF, i);
      if (cr !== -1 && cr < i) cr = chunk.indexOf(CR, i);
      const eol = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (eol === -1) break;
      if (eol === lf) {
        this.line(chunk, i, eol, base + eol + 1);
        i = eol + 1;
      } else if (eol + 1 === n && !end) {
        this.keep(chunk, i, eol);
        this.carryEndsWithCR = true;
        i = n;
      } else {
        const next = chunk[eol + 1] === LF ? eol + 2 : eol + 1;
        this.line(chunk, i, eol, base + next);
        i = next;
      }
    }
    if (i < n) this.keep(chunk, i, n);
    this.fed = base + n;
    if (end) this.finish();
  }

  /**
   * At the end of the body an unfinished line or block is still read. The spec discards an event
   * whose blank line never came, but a provider that ends its body without one still reported
   * what it reported, and that is what accounting needs.
   */
  private finish(): void {
    if (this.carry !== undefined) this.line(EMPTY, 0, 0, this.fed);
    if (this.hasLines) this.dispatch(this.fed);
  }

  private keep(chunk: Buffer, s: number, e: number): void {
    const carry = (this.carry ??= []);
    if (this.carryDropped !== "no") return;
    if (e > s) carry.push(chunk.subarray(s, e));
    this.carryBytes += e - s;
    // Dropped only once its start tells whether it was a data line (past a possible byte order
    // mark), so that it counts exactly as the same line read whole would.
    if (this.carryBytes > this.maxEventBytes && this.carryBytes >= HEAD_BYTES) {
      const head = Buffer.concat(carry.slice(0, HEAD_BYTES)).subarray(0, HEAD_BYTES);
      const start = this.firstLine ? bomEnd(head, 0, head.length) : 0;
      // A leading byte order mark is not part of the line (line() measures it without): counting it
      // here dropped a first line that fits when it was cut across chunks (test/fuzz-sse.test.ts).
      if (this.carryBytes - start <= this.maxEventBytes) return;
      this.carryDropped = isField(head, start, head.length, DATA) ? "data" : "other";
      this.carry = [];
    }
  }

  /** One complete line: bytes [s, e) of buf, after any carried-over start; endAt is the stream offset after its line break. */
  private line(buf: Buffer, s: number, e: number, endAt: number): void {
    const carry = this.carry;
    if (carry !== undefined) {
      const dropped = this.carryDropped;
      this.carry = undefined;
      this.carryBytes = 0;
      this.carryDropped = "no";
      if (dropped !== "no") {
        this.firstLine = false;
        this.hasLines = true;
        if (dropped === "data") this.overflow();
        return;
      }
      if (e > s) carry.push(buf.subarray(s, e));
      buf = carry.length === 1 ? carry[0]! : Buffer.concat(carry);
      s = 0;
      e = buf.length;
    }
    if (this.firstLine) {
      this.firstLine = false;
      s = bomEnd(buf, s, e);
    }
    if (s === e) return this.dispatch(endAt);
    this.hasLines = true;
    // Only two fields matter here; `id` and `retry` are for reconnecting clients.
    if (isField(buf, s, e, DATA)) {
      if (e - s > this.maxEventBytes) this.overflow();
      else this.dataLine(buf, valueStart(buf, s + DATA.length, e), e);
    } else if (isField(buf, s, e, EVENT) && e - s <= this.maxEventBytes) {
      this.eventLine(buf, valueStart(buf, s + EVENT.length, e), e);
    }
  }

  private eventLine(buf: Buffer, s: number, e: number): void {
    const last = this.lastTypeBytes;
    let same = e - s === last.length;
    for (let k = 0; same && k < last.length; k++) same = buf[s + k] === last[k];
    if (!same) {
      this.lastTypeBytes = Buffer.from(buf.subarray(s, e));
      this.lastType = this.lastTypeBytes.toString("utf8");
    }
    this.type = this.lastType;
  }

  /** The event lost data to the size cap: it still dispatches, without data. */
  private overflow(): void {
    this.hasData = true;
    this.broken = true;
    this.dataBuf = EMPTY;
    this.moreData.length = 0;
  }

  private dataLine(buf: Buffer, s: number, e: number): void {
    if (this.broken) return;
    this.dataBytes += e - s;
    if (this.dataBytes > this.maxEventBytes) return this.overflow();
    if (!this.hasData) {
      this.dataBuf = buf;
      this.dataStart = s;
      this.dataEnd = e;
    } else {
      this.moreData.push(buf.subarray(s, e));
    }
    this.hasData = true;
  }

  private dataText(): string {
    const first = this.dataBuf.toString("utf8", this.dataStart, this.dataEnd);
    if (this.moreData.length === 0) return first;
    return [first, ...this.moreData.map((p) => p.toString("utf8"))].join("\n");
  }

  private dispatch(endAt: number): void {
    if (this.hasData) {
      // An empty event field dispatches as "message", as a browser would.
      const type = this.type === "" ? "message" : this.type;
      let data: string | undefined;
      if (!this.broken && this.sink.wantsData(type)) data = this.dataText();
      this.sink.onEvent(type, data, this.blockAt, endAt);
    }
    this.blockAt = endAt;
    this.type = "";
    this.dataBuf = EMPTY;
    if (this.moreData.length > 0) this.moreData.length = 0;
    this.dataBytes = 0;
    this.hasData = false;
    this.hasLines = false;
    this.broken = false;
  }
}

/** Whether line [s, e) is the field `name`: the name alone, or followed by a colon. */
function isField(buf: Buffer, s: number, e: number, name: Buffer): boolean {
  const n = name.length;
  if (e - s < n || (e - s > n && buf[s + n] !== COLON)) return false;
  for (let k = 0; k < n; k++) if (buf[s + k] !== name[k]) return false;
  return true;
}

/** A UTF-8 byte order mark before the first line is not part of it. */
function bomEnd(buf: Buffer, s: number, e: number): number {
  return e - s >= 3 && buf[s] === 0xef && buf[s + 1] === 0xbb && buf[s + 2] === 0xbf ? s + 3 : s;
}

/** Where a field's value starts: after the colon and one optional space; a line without a colon has an empty value. */
function valueStart(buf: Buffer, colonAt: number, e: number): number {
  if (colonAt >= e) return e;
  return buf[colonAt + 1] === SPACE && colonAt + 1 < e ? colonAt + 2 : colonAt + 1;
}
