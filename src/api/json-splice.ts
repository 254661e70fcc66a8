// Rewrites one top-level string field of a JSON object without parsing and re-serialising the whole
// body. The upstream phase changes only `model`; for a 1 MiB prompt JSON.parse + JSON.stringify
// costs ~4.5 ms of CPU, while this scan jumps from quote to quote with Buffer.indexOf (native) and
// only walks the bytes between strings, which are few in chat bodies.
//
// The body was validated by the router phase (JSON.parse), but this function must still never
// throw or mis-edit on odd input: anything it does not fully understand returns undefined and the
// caller falls back to parse + stringify.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Index of the quote closing the string whose content starts at `from`, or -1. */
function stringEnd(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const q = buf.indexOf(QUOTE, i);
    if (q === -1) return -1;
    let backslashes = 0;
    for (let b = q - 1; b >= from && buf[b] === BACKSLASH; b--) backslashes++;
    if (backslashes % 2 === 0) return q;
    i = q + 1;
  }
}

function keyEquals(buf: Buffer, open: number, close: number, key: Buffer): boolean {
  const raw = buf.subarray(open + 1, close);
  if (raw.indexOf(BACKSLASH) === -1) return raw.equals(key);
  // An escaped key ("mod\u0065l") means "model" to JSON.parse, and so to the router's decision.
  try {
    return JSON.parse(buf.toString("utf8", open, close + 1)) === key.toString("utf8");
  } catch {
    return false;
  }
}

/**
 * Spans [start, end) of every string value of `key` in the top-level object (JSON.parse honours the
 * last duplicate, a provider might take the first: all are rewritten). undefined when the body is
 * not a well-formed object or a value of `key` is not a string.
 */
export function topLevelStringSpans(buf: Buffer, key: string): Array<[number, number]> | undefined {
  const keyBytes = Buffer.from(key, "utf8");
  const spans: Array<[number, number]> = [];
  let depth = 0;
  let i = 0;
  while (i < buf.length) {
    const open = buf.indexOf(QUOTE, i);
    const segmentEnd = open === -1 ? buf.length : open;
    for (let j = i; j < segmentEnd; j++) {
      const c = buf[j];
      if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
      else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
    }
    if (open === -1) break;
    if (depth < 1) return undefined;
    const close = stringEnd(buf, open + 1);
    if (close === -1) return undefined;
    i = close + 1;
    if (depth !== 1) continue;
    let k = close + 1;
    while (isSpace(buf[k])) k++;
    if (buf[k] !== COLON || !keyEquals(buf, open, close, keyBytes)) continue;
    k++;
    while (isSpace(buf[k])) k++;
    if (buf[k] !== QUOTE) return undefined;
    const valueEnd = stringEnd(buf, k + 1);
    if (valueEnd === -1) return undefined;
    spans.push([k, valueEnd + 1]);
    i = valueEnd + 1;
  }
  return depth === 0 && spans.length > 0 ? spans : undefined;
}

/** The body with every top-level `key` string value replaced by `value`, or undefined (see above). */
export function replaceTopLevelString(buf: Buffer, key: string, value: string): Buffer | undefined {
  const spans = topLevelStringSpans(buf, key);
  if (spans === undefined) return undefined;
  const replacement = Buffer.from(JSON.stringify(value), "utf8");
  const parts: Buffer[] = [];
  let at = 0;
  for (const [start, end] of spans) {
    parts.push(buf.subarray(at, start), replacement);
    at = end;
  }
  parts.push(buf.subarray(at));
  return Buffer.concat(parts);
}
