// Fuzzing SSE framing (src/usage/sse-events.ts) and usage reading (src/usage/usage-reader.ts):
// arbitrary byte streams cut at arbitrary boundaries read the same as whole, and the same as an
// independent line-by-line model of the framer; CR, LF and CRLF mix freely, a BOM may lead, lines
// may be huge; and usage read from generated OpenAI, Responses and Anthropic streams (any
// formatting, any chunking) equals the totals they were generated with.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Operation } from "../src/api/operations";
import { SseFramer, type SseSink } from "../src/usage/sse-events";
import type { Usage } from "../src/usage/usage";
import { UsageReader, type UsageReport } from "../src/usage/usage-reader";
import { chunksOf, feedSplit, splits, type Splits } from "./support/fuzz-arbitraries";
import { FuzzSuite } from "./support/fuzz-budget";

const suite = new FuzzSuite("sse");

type Ev = [type: string, data: string | undefined, start: number, end: number];

/** Frames `body` in the given chunks; declines the data of types `decline` says no to. */
function frame(chunks: readonly Buffer[], max: number, decline: (type: string) => boolean = () => false): { events: Ev[]; framer: SseFramer } {
  const events: Ev[] = [];
  const sink: SseSink = { wantsData: (t) => !decline(t), onEvent: (type, data, start, end) => void events.push([type, data, start, end]) };
  const framer = new SseFramer(sink, max);
  chunks.forEach((c, i) => framer.feed(c, i === chunks.length - 1));
  return { events, framer };
}

function frameSplit(body: Buffer, s: Splits, max: number, decline?: (type: string) => boolean): Ev[] {
  const chunks = chunksOf(body, s.cuts, s.empties);
  if (s.emptyEnd) chunks.push(Buffer.alloc(0));
  const { events, framer } = frame(chunks, max, decline);
  assert.equal(framer.offset, body.length);
  assert.equal(framer.pendingFrom, framer.offset, "everything is dispatched at the end");
  return events;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * An independent model of the framer: the whole body split into lines first (CR, LF, CRLF; a CR at
 * the very end is a line break), then read by the spec's field rules plus the framer's documented
 * choices (an unfinished last line and block are still read; data over `max` bytes is dropped).
 */
function model(body: Buffer, max: number, decline: (type: string) => boolean = () => false): Ev[] {
  const lines: Array<[number, number, number]> = [];
  let s = 0;
  for (let i = 0; i < body.length; ) {
    const c = body[i];
    if (c === LF) {
      lines.push([s, i, i + 1]);
      s = ++i;
    } else if (c === CR) {
      const next = body[i + 1] === LF ? i + 2 : i + 1;
      lines.push([s, i, next]);
      s = i = next;
    } else {
      i++;
    }
  }
  if (s < body.length) lines.push([s, body.length, body.length]);
  const events: Ev[] = [];
  let blockAt = 0;
  let type = "";
  let data: string[] = [];
  let dataBytes = 0;
  let hasData = false;
  let hasLines = false;
  let broken = false;
  const dispatch = (endAt: number) => {
    if (hasData) {
      const t = type === "" ? "message" : type;
      events.push([t, broken || decline(t) ? undefined : data.join("\n"), blockAt, endAt]);
    }
    blockAt = endAt;
    type = "";
    data = [];
    dataBytes = 0;
    hasData = hasLines = broken = false;
  };
  const field = (ls: number, le: number, name: string): number | undefined => {
    const n = name.length;
    if (le - ls < n || body.toString("latin1", ls, ls + n) !== name) return undefined;
    if (le - ls === n) return le;
    if (body[ls + n] !== 0x3a) return undefined;
    return body[ls + n + 1] === 0x20 && ls + n + 1 < le ? ls + n + 2 : ls + n + 1;
  };
  lines.forEach(([ls0, le, endAt], k) => {
    let ls = ls0;
    if (k === 0 && le - ls >= 3 && body[ls] === 0xef && body[ls + 1] === 0xbb && body[ls + 2] === 0xbf) ls += 3;
    if (ls === le) return dispatch(endAt);
    hasLines = true;
    const dataAt = field(ls, le, "data");
    if (dataAt !== undefined) {
      if (le - ls > max) {
        hasData = broken = true;
      } else if (!broken) {
        dataBytes += le - dataAt;
        if (dataBytes > max) hasData = broken = true;
        else {
          data.push(body.toString("utf8", dataAt, le));
          hasData = true;
        }
      }
      return;
    }
    const eventAt = field(ls, le, "event");
    if (eventAt !== undefined && le - ls <= max) type = body.toString("utf8", eventAt, le);
  });
  if (hasLines) dispatch(body.length);
  return events;
}

/** Bytes that make SSE: field names, separators, every line break, a BOM, multi-byte UTF-8. */
const sseBytes = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom("data", "data:", "data: ", "event", "event:", "event: ", ":", " ", "\n", "\r", "\r\n", "\n\n", "\r\r", "\ufeff", "x", "message", "é", "日", "\u{1F642}", "[DONE]", "{}", "id: 1", "retry: 9").map((p) => Buffer.from(p)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)) },
    ),
    { maxLength: 60 },
  )
  .map((parts) => Buffer.concat(parts));

const BOM = Buffer.from("\ufeff");

const maxBytes = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(16 * 1024 * 1024));

/** Some event types decline their data, as the usage reader's sinks do. */
const declines = fc.constantFrom<((t: string) => boolean) | undefined>(undefined, (t) => t === "message", (t) => t.length % 2 === 1);

describe("fuzz: SSE framing", () => {
  it("arbitrary bytes at arbitrary boundaries: same events as whole, and as the line model", () => {
    fc.assert(
      fc.property(
        fc.oneof(sseBytes, sseBytes.map((b) => Buffer.concat([BOM, b])), fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b))),
        maxBytes,
        splits,
        declines,
        suite.counted((body, max, s, decline) => {
          const whole = frameSplit(body, { cuts: [], empties: [], emptyEnd: false }, max, decline);
          assert.deepEqual(frameSplit(body, s, max, decline), whole);
          assert.deepEqual(whole, model(body, max, decline));
          let at = 0;
          for (const [, , start, end] of whole) {
            assert.ok(at <= start && start < end && end <= body.length, "blocks are ordered and inside the body");
            at = end;
          }
        }),
      ),
      // Regression: a first line with a BOM, carried across chunks, was measured with its BOM
      // against the size cap (3 bytes more than the same line read whole, which has it stripped).
      suite.params<[Buffer, number, Splits, ((t: string) => boolean) | undefined]>(10_000, { examples: [[Buffer.from("\ufeffdata: abcd\n\n"), 10, { cuts: [11], empties: [], emptyEnd: false }, undefined]] }),
    );
  });

  // Events written the way providers write them: the generator knows each event's type and data.
  const value = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 8 })).map((v) => v.replace(/[\r\n]/g, ""));
  const eol = fc.constantFrom("\n", "\r\n", "\r");
  const line = (name: string, v: string, sep: string, end: string) => `${name}${sep}${v}${end}`;
  const event = fc.record({
    comments: fc.array(fc.tuple(value, eol), { maxLength: 2 }),
    type: fc.option(fc.tuple(fc.oneof(value, fc.constantFrom("message_start", "message", "ping")), eol), { nil: undefined }),
    data: fc.array(fc.tuple(value, eol), { minLength: 0, maxLength: 3 }),
    extra: fc.array(fc.tuple(fc.constantFrom("id", "retry", "foo", "dat", "datax", "Data"), value, eol), { maxLength: 2 }),
    sep: fc.constantFrom(":", ": "),
    blank: eol,
    typeLast: fc.boolean(),
  });
  type Gen = typeof event extends fc.Arbitrary<infer T> ? T : never;
  /** The value a field line reads as: one space after the colon is not part of it. */
  const read = (sep: string, v: string) => (sep === ": " ? v : v.startsWith(" ") ? v.slice(1) : v);

  it("generated events (CR/LF/CRLF per line, comments, BOM, unknown fields) are read as written, however cut", () => {
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        splits,
        suite.counted((events: Gen[], bom, lastBlank, s) => {
          const parts: string[] = [];
          const expected: Array<[string, string]> = [];
          events.forEach((e, k) => {
            const lines: string[] = e.comments.map(([v, end]) => `:${v}${end}`);
            const typeLine = e.type === undefined ? [] : [line("event", e.type[0], e.sep, e.type[1])];
            if (!e.typeLast) lines.push(...typeLine);
            for (const [name, v, end] of e.extra) lines.push(line(name, v, e.sep, end));
            lines.push(...e.data.map(([v, end]) => line("data", v, e.sep, end)));
            if (e.typeLast) lines.push(...typeLine);
            const last = k === events.length - 1;
            // A block needs at least one line: an empty one would be a blank line of its own.
            if (lines.length === 0) lines.push(":\n");
            const body = lines.join("");
            // A CR ending the last line and an LF blank line are one CRLF line break, not two.
            const blank = body.endsWith("\r") && e.blank === "\n" ? "\r\n" : e.blank;
            parts.push(body, last && !lastBlank ? "" : blank);
            if (e.data.length > 0) {
              const type = e.type === undefined ? "" : read(e.sep, e.type[0]);
              expected.push([type === "" ? "message" : type, e.data.map(([v]) => read(e.sep, v)).join("\n")]);
            }
          });
          const text = (bom ? "\ufeff" : "") + parts.join("");
          const body = Buffer.from(text);
          const whole = frameSplit(body, { cuts: [], empties: [], emptyEnd: false }, 1 << 24);
          assert.deepEqual(
            whole.map(([t, d]) => [t, d]),
            expected,
          );
          assert.deepEqual(frameSplit(body, s, 1 << 24), whole);
        }),
      ),
      suite.params(5_000),
    );
  });

  it("huge lines, over and under the size cap, at arbitrary boundaries", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("data: ", "event: ", ": ", "data:"), fc.integer({ min: 0, max: 400_000 }), fc.constantFrom("\n", "\r\n", "\r", "\n\n")), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(0, 1, 100, 65_536, 200_000, 16 * 1024 * 1024),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        suite.counted((lines, max, cuts, bom) => {
          const body = Buffer.concat([Buffer.from(bom ? "\ufeff" : ""), ...lines.map(([f, n, end]) => Buffer.concat([Buffer.from(f), Buffer.alloc(n, 0x61), Buffer.from(end)]))]);
          const whole = frameSplit(body, { cuts: [], empties: [], emptyEnd: false }, max);
          assert.deepEqual(frameSplit(body, { cuts, empties: [], emptyEnd: false }, max), whole);
          assert.deepEqual(whole, model(body, max));
        }),
      ),
      suite.params(150),
    );
  });
});

// ---- usage from generated provider streams ----

const tokens = fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 200_000 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2 ** 31, Number.MAX_SAFE_INTEGER) });
const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "grapheme", maxLength: 6 }), fc.string({ unit: "binary", maxLength: 6 }));
const modelName = fc.oneof(fc.constantFrom("gpt-4o", "claude-sonnet-4-5", "m"), fc.string({ maxLength: 10 }));

interface Block {
  /** The event: field, when the dialect names its events. */
  event?: string;
  data: string;
}

interface Format {
  sep: ":" | ": ";
  eol: "\n" | "\r\n" | "\r";
  /** Pretty-printed JSON over several data lines. */
  spread: boolean;
  comment: boolean;
  /** Leave out the event: lines (Anthropic and Responses then read the type from the data). */
  noEventLines: boolean;
  lastBlank: boolean;
}

const format: fc.Arbitrary<Format> = fc.record({
  sep: fc.constantFrom(":", ": "),
  eol: fc.constantFrom("\n", "\r\n", "\r"),
  spread: fc.boolean(),
  comment: fc.boolean(),
  noEventLines: fc.boolean(),
  lastBlank: fc.boolean(),
});

/** The stream's bytes and each block's [start, end). */
function render(blocks: Block[], f: Format): { body: Buffer; spans: Array<[number, number]> } {
  const parts: Buffer[] = [];
  const spans: Array<[number, number]> = [];
  let at = 0;
  blocks.forEach((b, k) => {
    let s = f.comment && k % 2 === 0 ? `: keep-alive${f.eol}` : "";
    if (b.event !== undefined && !f.noEventLines) s += `event${f.sep}${b.event}${f.eol}`;
    const data = f.spread && b.data !== "[DONE]" ? JSON.stringify(JSON.parse(b.data), null, 1) : b.data;
    for (const l of data.split("\n")) s += `data${f.sep}${f.sep === ":" && l.startsWith(" ") ? " " : ""}${l}${f.eol}`;
    if (k < blocks.length - 1 || f.lastBlank) s += f.eol;
    const buf = Buffer.from(s);
    parts.push(buf);
    spans.push([at, at + buf.length]);
    at += buf.length;
  });
  return { body: Buffer.concat(parts), spans };
}

function usage(input: number, output: number, cached: number, cacheWrite: number, reasoning: number): Usage {
  const cachedInputTokens = Math.min(cached, input);
  return { inputTokens: input, outputTokens: output, cachedInputTokens, cacheWriteInputTokens: Math.min(cacheWrite, input - cachedInputTokens), reasoningTokens: Math.min(reasoning, output) };
}

interface Generated {
  operation: Operation;
  blocks: Block[];
  /** Index of the usage-only chunk (OpenAI), for stripping. */
  usageBlock: number | undefined;
  expected: Pick<UsageReport, "usage" | "terminal" | "estimatedOutputTokens" | "model">;
}

const estimate = (events: number, chars: number) => Math.max(events, Math.ceil(chars / 4));

/** An OpenAI chat.completions (or completions) stream: deltas, a finish chunk, the usage chunk, [DONE]. */
const openAiStream: fc.Arbitrary<Generated> = fc
  .record({
    operation: fc.constantFrom<Operation>("chat.completions", "completions"),
    model: modelName,
    deltas: fc.array(
      fc.record({ content: fc.option(text, { nil: undefined }), refusal: fc.option(text, { nil: undefined }), reasoning: fc.option(text, { nil: undefined }), args: fc.array(text, { maxLength: 2 }), completionText: fc.option(text, { nil: undefined }) }),
      { maxLength: 8 },
    ),
    prompt: tokens,
    completion: tokens,
    cached: tokens,
    reasoningTokens: tokens,
    withUsage: fc.boolean(),
    done: fc.boolean(),
  })
  .map((g): Generated => {
    const blocks: Block[] = [];
    let events = 0;
    let chars = 0;
    const id = "chatcmpl-1";
    for (const d of g.deltas) {
      const delta: Record<string, unknown> = {};
      if (d.content !== undefined) delta["content"] = d.content;
      if (d.refusal !== undefined) delta["refusal"] = d.refusal;
      if (d.reasoning !== undefined) delta["reasoning_content"] = d.reasoning;
      if (d.args.length > 0) delta["tool_calls"] = d.args.map((a, index) => ({ index, function: { arguments: a } }));
      const choice: Record<string, unknown> = g.operation === "completions" ? { index: 0, text: d.completionText ?? "" } : { index: 0, delta, finish_reason: null };
      const n = g.operation === "completions" ? (d.completionText ?? "").length : (d.content ?? "").length + (d.refusal ?? "").length + (d.reasoning ?? "").length + d.args.reduce((a, b) => a + b.length, 0);
      if (n > 0) events++;
      chars += n;
      blocks.push({ data: JSON.stringify({ id, object: "chat.completion.chunk", model: g.model, choices: [choice] }) });
    }
    blocks.push({ data: JSON.stringify({ id, model: g.model, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }) });
    let usageBlock: number | undefined;
    if (g.withUsage) {
      usageBlock = blocks.length;
      blocks.push({
        data: JSON.stringify({ id, model: g.model, choices: [], usage: { prompt_tokens: g.prompt, completion_tokens: g.completion, total_tokens: g.prompt + g.completion, prompt_tokens_details: { cached_tokens: g.cached }, completion_tokens_details: { reasoning_tokens: g.reasoningTokens } } }),
      });
    }
    if (g.done) blocks.push({ data: "[DONE]" });
    return {
      operation: g.operation,
      blocks,
      usageBlock,
      expected: { usage: g.withUsage ? usage(g.prompt, g.completion, g.cached, 0, g.reasoningTokens) : undefined, terminal: g.done, estimatedOutputTokens: estimate(events, chars), model: g.model },
    };
  });

/** An Anthropic messages stream: message_start, blocks of text / tool / thinking deltas, pings, message_delta, message_stop. */
const anthropicStream: fc.Arbitrary<Generated> = fc
  .record({
    model: modelName,
    input: tokens,
    cacheRead: fc.option(tokens, { nil: undefined }),
    cacheWrite: fc.option(tokens, { nil: undefined }),
    startOutput: tokens,
    output: tokens,
    repeatInput: fc.boolean(),
    blocks: fc.array(fc.record({ kind: fc.constantFrom("text", "tool_use", "thinking"), deltas: fc.array(text, { maxLength: 4 }), ping: fc.boolean() }), { maxLength: 5 }),
    stop: fc.boolean(),
    withDelta: fc.boolean(),
  })
  .map((g): Generated => {
    const ev = (type: string, body: Record<string, unknown>): Block => ({ event: type, data: JSON.stringify({ type, ...body }) });
    const startUsage: Record<string, unknown> = { input_tokens: g.input, output_tokens: g.startOutput };
    if (g.cacheRead !== undefined) startUsage["cache_read_input_tokens"] = g.cacheRead;
    if (g.cacheWrite !== undefined) startUsage["cache_creation_input_tokens"] = g.cacheWrite;
    const blocks: Block[] = [ev("message_start", { message: { id: "msg_1", type: "message", role: "assistant", model: g.model, content: [], stop_reason: null, usage: startUsage } })];
    let events = 0;
    let chars = 0;
    g.blocks.forEach((b, index) => {
      blocks.push(ev("content_block_start", { index, content_block: b.kind === "text" ? { type: "text", text: "" } : b.kind === "thinking" ? { type: "thinking", thinking: "" } : { type: "tool_use", id: "t", name: "f", input: {} } }));
      for (const d of b.deltas) {
        const delta = b.kind === "text" ? { type: "text_delta", text: d } : b.kind === "thinking" ? { type: "thinking_delta", thinking: d } : { type: "input_json_delta", partial_json: d };
        blocks.push(ev("content_block_delta", { index, delta }));
        if (d.length > 0) events++;
        chars += d.length;
      }
      if (b.ping) blocks.push(ev("ping", {}));
      blocks.push(ev("content_block_stop", { index }));
    });
    const deltaUsage: Record<string, unknown> = { output_tokens: g.output };
    if (g.repeatInput) deltaUsage["input_tokens"] = g.input;
    if (g.withDelta) blocks.push(ev("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: deltaUsage }));
    if (g.stop) blocks.push(ev("message_stop", {}));
    const input = g.input + (g.cacheRead ?? 0) + (g.cacheWrite ?? 0);
    return {
      operation: "messages",
      blocks,
      usageBlock: undefined,
      expected: { usage: g.withDelta ? usage(input, g.output, g.cacheRead ?? 0, g.cacheWrite ?? 0, 0) : undefined, terminal: g.stop, estimatedOutputTokens: estimate(events, chars), model: g.model },
    };
  });

/** A Responses API stream: created, output deltas of every kind, then completed / incomplete / failed. */
const responsesStream: fc.Arbitrary<Generated> = fc
  .record({
    model: modelName,
    deltas: fc.array(fc.tuple(fc.constantFrom("response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta", "response.output_text.done"), text), { maxLength: 8 }),
    final: fc.option(fc.constantFrom("response.completed", "response.incomplete", "response.failed"), { nil: undefined }),
    input: tokens,
    output: tokens,
    cached: tokens,
    reasoning: tokens,
  })
  .map((g): Generated => {
    const ev = (type: string, body: Record<string, unknown>): Block => ({ event: type, data: JSON.stringify({ type, ...body }) });
    const blocks: Block[] = [ev("response.created", { response: { id: "resp_1", model: "created-model", status: "in_progress" } })];
    let events = 0;
    let chars = 0;
    for (const [type, d] of g.deltas) {
      blocks.push(ev(type, type.endsWith(".done") ? { text: d } : { delta: d }));
      if (!type.endsWith(".done")) {
        if (d.length > 0) events++;
        chars += d.length;
      }
    }
    if (g.final !== undefined) {
      blocks.push(ev(g.final, { response: { id: "resp_1", model: g.model, status: "completed", usage: { input_tokens: g.input, output_tokens: g.output, total_tokens: g.input + g.output, input_tokens_details: { cached_tokens: g.cached }, output_tokens_details: { reasoning_tokens: g.reasoning } } } }));
    }
    return {
      operation: "responses",
      blocks,
      usageBlock: undefined,
      expected: {
        usage: g.final === undefined ? undefined : usage(g.input, g.output, g.cached, 0, g.reasoning),
        terminal: g.final !== undefined,
        estimatedOutputTokens: estimate(events, chars),
        model: g.final === undefined ? undefined : g.model,
      },
    };
  });

function readAll(g: Generated, body: Buffer, s: Splits, strip: boolean): { report: UsageReport; forwarded: Buffer } {
  const reader = new UsageReader({ operation: g.operation, streaming: true, stripUsageChunk: strip });
  const forwarded = feedSplit(body, s, (c, end) => reader.push(c, end));
  return { report: reader.report(), forwarded };
}

describe("fuzz: usage from generated provider streams", () => {
  for (const [name, stream] of [
    ["OpenAI chat/completions", openAiStream],
    ["Anthropic messages", anthropicStream],
    ["OpenAI Responses", responsesStream],
  ] as const) {
    it(`${name}: usage, terminal, estimate and model equal the generated ones, however formatted and cut`, () => {
      fc.assert(
        fc.property(
          stream,
          format,
          splits,
          fc.boolean(),
          suite.counted((g, f, s, strip) => {
            const { body, spans } = render(g.blocks, f);
            const r = readAll(g, body, s, strip);
            const { usage: u, terminal, estimatedOutputTokens, model } = r.report;
            assert.deepEqual({ usage: u, terminal, estimatedOutputTokens, model }, g.expected);
            const stripping = strip && (g.operation === "chat.completions" || g.operation === "completions") && g.usageBlock !== undefined;
            if (stripping) {
              // Exactly the usage-only chunk is gone: from the end of the block before it through its blank line.
              const [a, b] = spans[g.usageBlock!]!;
              assert.ok(r.forwarded.equals(Buffer.concat([body.subarray(0, a), body.subarray(b)])), "only the usage chunk is dropped");
            } else {
              assert.ok(r.forwarded.equals(body), "the body passes unchanged");
            }
          }),
        ),
        suite.params(2_000),
      );
    });
  }

  it("whole JSON bodies, any chunking: the usage object of each dialect", () => {
    const body = fc.record({
      operation: fc.constantFrom<Operation>("chat.completions", "completions", "embeddings", "responses", "messages"),
      input: tokens,
      output: tokens,
      cached: tokens,
      extra: tokens,
      model: modelName,
      spread: fc.boolean(),
    });
    fc.assert(
      fc.property(
        body,
        splits,
        suite.counted((g, s) => {
          let json: Record<string, unknown>;
          let expected: Usage;
          if (g.operation === "messages") {
            json = { id: "m", type: "message", model: g.model, content: [], usage: { input_tokens: g.input, output_tokens: g.output, cache_read_input_tokens: g.cached, cache_creation_input_tokens: g.extra } };
            expected = usage(g.input + g.cached + g.extra, g.output, g.cached, g.extra, 0);
          } else if (g.operation === "responses") {
            json = { id: "r", model: g.model, output: [], usage: { input_tokens: g.input, output_tokens: g.output, input_tokens_details: { cached_tokens: g.cached }, output_tokens_details: { reasoning_tokens: g.extra } } };
            expected = usage(g.input, g.output, g.cached, 0, g.extra);
          } else {
            json = { id: "c", model: g.model, choices: [], usage: { prompt_tokens: g.input, completion_tokens: g.output, prompt_tokens_details: { cached_tokens: g.cached }, completion_tokens_details: { reasoning_tokens: g.extra } } };
            expected = usage(g.input, g.output, g.cached, 0, g.extra);
          }
          const bytes = Buffer.from(JSON.stringify(json, null, g.spread ? 2 : undefined));
          const reader = new UsageReader({ operation: g.operation, streaming: false, stripUsageChunk: true });
          const forwarded = feedSplit(bytes, s, (c, end) => reader.push(c, end));
          assert.ok(forwarded.equals(bytes));
          const r = reader.report();
          assert.deepEqual(r.usage, expected);
          assert.equal(r.terminal, true);
          assert.equal(r.model, g.model);
        }),
      ),
      suite.params(3_000),
    );
  });

  it("arbitrary bytes for every reader configuration: never throws, same report however cut", () => {
    const operations: Operation[] = ["chat.completions", "completions", "embeddings", "responses", "messages"];
    fc.assert(
      fc.property(
        fc.constantFrom(...operations),
        fc.boolean(),
        fc.boolean(),
        fc.option(fc.integer({ min: 0, max: 64 }), { nil: undefined }),
        fc.oneof(sseBytes, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))),
        splits,
        suite.counted((operation, streaming, strip, maxJsonBytes, body, s) => {
          const run = (sp: Splits) => {
            const reader = new UsageReader({ operation, streaming, stripUsageChunk: strip, ...(maxJsonBytes === undefined ? {} : { maxJsonBytes }) });
            const forwarded = feedSplit(body, sp, (c, end) => reader.push(c, end));
            return { report: reader.report(), forwarded, midEvent: reader.midEvent };
          };
          const whole = run({ cuts: [], empties: [], emptyEnd: false });
          const split = run(s);
          assert.deepEqual(split.report, whole.report);
          assert.ok(split.forwarded.equals(whole.forwarded));
          assert.equal(split.midEvent, whole.midEvent);
        }),
      ),
      suite.params(1_850),
    );
  });
});

suite.summary();
