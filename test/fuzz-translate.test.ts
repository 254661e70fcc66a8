// Fuzzing the translations (src/translate/*), every pair registry.ts translatedPairs() lists:
// - request(): generated client bodies (the right shape mostly, odd values and prototype keys mixed
//   in) that check() accepts translate without throwing into one JSON object, and the client's body
//   is left as it was; check() itself never throws.
// - answers: provider answers generated from a model of what they say (text, tool calls, usage,
//   stop), as JSON and as streams cut anywhere, reach the client saying the same: its text, its tool
//   arguments, and the usage the router's own UsageReader reads from the translated bytes. The same
//   answers with values replaced by odd ones at random places never make a translator throw, and
//   what comes out is still well-formed JSON or SSE, the same however the stream is cut.
// - errors: provider error bodies of each dialect (and garbage) become the client's error shape.
// The per-pair tests (translate-*.test.ts) cover golden vectors and random bytes; this goes broader.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isRecord } from "../src/api/json";
import type { Operation } from "../src/api/operations";
import type { JsonObject } from "../src/api/request-body";
import type { ProviderType } from "../src/policy/schema";
import { adapterFor } from "../src/providers/registry";
import { translatedPairs, translationFor } from "../src/translate/registry";
import type { Translation, TranslationMeta } from "../src/translate/types";
import type { Usage } from "../src/usage/usage";
import { UsageReader } from "../src/usage/usage-reader";
import { assertPrototypesClean, feedSplit, splits, type Splits } from "./support/fuzz-arbitraries";
import { FuzzSuite } from "./support/fuzz-budget";
import {
  anthropicAnswer,
  answerModel,
  bedrockAnswer,
  bedrockFrames,
  chatRequest,
  embeddingsRequest,
  geminiAnswer,
  messagesRequest,
  odd,
  openAiAnswer,
  sse,
  type AnswerModel,
} from "./support/fuzz-translate-arbitraries";

const suite = new FuzzSuite("translate");

interface Pair {
  name: string;
  operation: Operation;
  provider: ProviderType;
  translation: Translation;
}

const PAIRS: Pair[] = translatedPairs().map((p) => ({ ...p, name: `${p.operation} -> ${p.provider}`, translation: translationFor(adapterFor(p.provider), p.operation)! }));

/** Target models: Bedrock embeddings serve two model families, told apart by the model id. */
function targetModels(p: Pair): fc.Arbitrary<string> {
  if (p.provider === "bedrock" && p.operation === "embeddings") return fc.constantFrom("amazon.titan-embed-text-v1", "amazon.titan-embed-text-v2:0", "us.cohere.embed-english-v3", "cohere.embed-v4:0", "meta.llama3");
  return fc.constantFrom("target-model", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "anthropic.claude-3-5-sonnet-20240620-v1:0");
}

function requestsFor(op: Operation): fc.Arbitrary<Record<string, unknown>> {
  if (op === "messages") return messagesRequest;
  if (op === "embeddings") return embeddingsRequest;
  return chatRequest;
}

const clientFormat = (p: Pair): "openai" | "anthropic" => (p.operation === "messages" ? "anthropic" : "openai");

// ---- the client's side of the bytes ----

type Event = { event?: string; data: unknown };

/** The translated stream as the client parses it; every event is well-formed, nothing follows the end. */
function clientEvents(p: Pair, out: Buffer): Event[] {
  const text = out.toString("utf8");
  if (text === "") return [];
  assert.ok(text.endsWith("\n\n"), `the stream ends with a whole event: ${JSON.stringify(text.slice(-80))}`);
  const events = text
    .slice(0, -2)
    .split("\n\n")
    .map((block): Event => {
      const lines = block.split("\n");
      if (clientFormat(p) === "anthropic") {
        assert.equal(lines.length, 2, `an event line and a data line: ${block.slice(0, 200)}`);
        assert.ok(lines[0]!.startsWith("event: ") && lines[1]!.startsWith("data: "), block.slice(0, 200));
        const data = JSON.parse(lines[1]!.slice(6)) as Record<string, unknown>;
        assert.equal(data["type"], lines[0]!.slice(7), "the data's type is the event's");
        return { event: lines[0]!.slice(7), data };
      }
      assert.ok(lines.length === 1 && lines[0]!.startsWith("data: "), `one data line per event: ${block.slice(0, 200)}`);
      const raw = lines[0]!.slice(6);
      return { data: raw === "[DONE]" ? "[DONE]" : (JSON.parse(raw) as unknown) };
    });
  const end = events.findIndex((e) => e.data === "[DONE]" || e.event === "message_stop" || e.event === "error" || (isRecord(e.data) && isRecord(e.data["error"])));
  assert.ok(end === -1 || end === events.length - 1, "nothing follows the stream's end");
  return events;
}

/** What the client's SDK would assemble: text, and tool calls by index (name, joined arguments). */
function assemble(p: Pair, events: Event[]): { text: string; tools: Array<{ name: string; args: string }> } {
  let text = "";
  const tools: Array<{ name: string; args: string }> = [];
  if (clientFormat(p) === "anthropic") {
    const blocks = new Map<number, { name: string; args: string } | "text">();
    for (const e of events) {
      const d = e.data as Record<string, unknown>;
      if (e.event === "content_block_start") {
        const b = d["content_block"] as Record<string, unknown>;
        const entry = b["type"] === "tool_use" ? { name: String(b["name"]), args: "" } : "text";
        blocks.set(d["index"] as number, entry);
        if (entry !== "text") tools.push(entry);
      } else if (e.event === "content_block_delta") {
        const delta = d["delta"] as Record<string, unknown>;
        const b = blocks.get(d["index"] as number);
        assert.ok(b !== undefined, "a delta belongs to a started block");
        if (delta["type"] === "text_delta") text += delta["text"] as string;
        else if (delta["type"] === "input_json_delta" && b !== "text") b.args += delta["partial_json"] as string;
      }
    }
    return { text, tools };
  }
  const byIndex = new Map<number, { name: string; args: string }>();
  for (const e of events) {
    if (!isRecord(e.data)) continue;
    const choice = (e.data["choices"] as unknown[] | undefined)?.[0];
    const delta = isRecord(choice) ? choice["delta"] : undefined;
    if (!isRecord(delta)) continue;
    if (typeof delta["content"] === "string") text += delta["content"];
    for (const call of (delta["tool_calls"] as Array<Record<string, unknown>> | undefined) ?? []) {
      const index = call["index"] as number;
      let entry = byIndex.get(index);
      if (entry === undefined) {
        entry = { name: "", args: "" };
        byIndex.set(index, entry);
        tools.push(entry);
      }
      const fn = call["function"] as Record<string, unknown> | undefined;
      if (typeof fn?.["name"] === "string") entry.name = fn["name"];
      if (typeof fn?.["arguments"] === "string") entry.args += fn["arguments"];
    }
  }
  return { text, tools };
}

/** The usage the router reads from what the client receives (its UsageReader, the client's API). */
function readUsage(p: Pair, out: Buffer, streaming: boolean): { usage: Usage | undefined; terminal: boolean } {
  const reader = new UsageReader({ operation: p.operation, streaming, stripUsageChunk: false });
  assert.equal(reader.push(out, true), undefined);
  const r = reader.report();
  return { usage: r.usage, terminal: r.terminal };
}

function usage(input: number, output: number, cached: number, reasoning = 0): Usage {
  const cachedInputTokens = Math.min(cached, input);
  return { inputTokens: input, outputTokens: output, cachedInputTokens, cacheWriteInputTokens: 0, reasoningTokens: Math.min(reasoning, output) };
}

// ---- answers per provider dialect ----

interface Dialect {
  render(a: AnswerModel): { json: unknown; stream: Buffer };
  /** The usage the client's reader should find in a translated whole answer. */
  jsonUsage(a: AnswerModel): Usage | undefined;
  /** ...and in a translated stream, and whether it ends with its terminal event. */
  streamUsage(a: AnswerModel, includeUsage: boolean): { usage: Usage | undefined; terminal: boolean };
}

const estimateWhole = (a: AnswerModel): number => {
  const chars = a.text.join("").length + a.tools.reduce((n, t) => n + t.args.join("").length, 0);
  return Math.max(chars > 0 ? 1 : 0, Math.ceil(chars / 4));
};

const estimate = (a: AnswerModel): number => {
  const pieces = [...a.text, ...a.tools.flatMap((t) => t.args)].filter((x) => x !== "");
  return Math.max(pieces.length, Math.ceil(pieces.reduce((n, x) => n + x.length, 0) / 4));
};

const DIALECTS: Partial<Record<ProviderType, Dialect>> = {
  // Anthropic answers for OpenAI chat clients.
  anthropic: {
    render: anthropicAnswer,
    jsonUsage: (a) => (a.withUsage ? usage(a.input + a.cacheRead + a.cacheWrite, a.output, a.cacheRead) : usage(0, 0, 0)),
    streamUsage: (a, include) => ({
      usage: include && a.terminal ? usage(a.input + a.cacheRead + a.cacheWrite, a.finished && a.withUsage ? a.output : 1, a.cacheRead) : undefined,
      terminal: a.terminal,
    }),
  },
  // OpenAI-compatible answers for Anthropic clients.
  openai: {
    render: openAiAnswer,
    // A whole answer without usage is estimated as one delta of all its characters.
    jsonUsage: (a) => (a.withUsage ? usage(a.input, a.output, a.cacheRead) : usage(0, estimateWhole(a), 0)),
    streamUsage: (a) => {
      const ends = a.finished || a.terminal;
      return { usage: !ends ? undefined : a.withUsage ? usage(a.input, a.output, a.cacheRead) : usage(0, estimate(a), 0), terminal: ends };
    },
  },
  gemini: {
    render: geminiAnswer,
    jsonUsage: (a) => (a.withUsage ? usage(a.input, a.output + a.reasoning, a.cacheRead, a.reasoning) : undefined),
    streamUsage: (a, include) => ({ usage: a.finished && include && a.withUsage ? usage(a.input, a.output + a.reasoning, a.cacheRead, a.reasoning) : undefined, terminal: a.finished }),
  },
  bedrock: {
    render: bedrockAnswer,
    jsonUsage: (a) => (a.withUsage ? usage(a.input + a.cacheRead + a.cacheWrite, a.output, a.cacheRead) : undefined),
    streamUsage: (a, include) => ({
      usage: include && a.finished && a.terminal ? (a.withUsage ? usage(a.input + a.cacheRead + a.cacheWrite, a.output, a.cacheRead) : usage(0, 0, 0)) : undefined,
      terminal: a.finished,
    }),
  },
};
DIALECTS["azure-openai"] = DIALECTS.openai;
DIALECTS["openai-compatible"] = DIALECTS.openai;

const CHAT_PAIRS = PAIRS.filter((p) => p.operation !== "embeddings" && DIALECTS[p.provider] !== undefined);

function meta(includeUsage: boolean, extra: Record<string, unknown> = {}): TranslationMeta {
  return { clientModel: "client-model", created: 1_700_000_000, includeUsage, extra: { model: "target-model", id: "chatcmpl-fuzz", ...extra } };
}

function translateStream(p: Pair, m: TranslationMeta, body: Buffer, s: Splits): Buffer {
  const t = p.translation.response(m, true);
  return feedSplit(body, s, (c, end) => t.streamChunk(c, end));
}

/** Replaces values at random places of a JSON value (a fresh copy): odd values where fields were. */
function perturb(value: unknown, edits: ReadonlyArray<readonly [number, unknown]>): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  for (const [at, v] of edits) {
    const slots: Array<[Record<string, unknown> | unknown[], string | number]> = [];
    const walk = (x: unknown): void => {
      if (Array.isArray(x)) {
        x.forEach((y, i) => {
          slots.push([x, i]);
          walk(y);
        });
      } else if (isRecord(x)) {
        for (const k of Object.keys(x)) {
          slots.push([x, k]);
          walk(x[k]);
        }
      }
    };
    walk(copy);
    if (slots.length === 0) return v;
    const [holder, key] = slots[at % slots.length]!;
    Object.defineProperty(holder, key, { value: JSON.parse(JSON.stringify(v) ?? "null") as unknown, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/** An SSE body's events with their data perturbed (the Bedrock event stream is generated apart). */
function perturbSse(body: Buffer, edits: ReadonlyArray<readonly [number, number, unknown]>): Buffer {
  const blocks = body.toString("utf8").split("\n\n").filter((b) => b !== "");
  return sse(
    blocks.map((b, i) => {
      const lines = b.split("\n");
      const event = lines.length === 2 ? lines[0]!.slice(7) : undefined;
      const raw = lines[lines.length - 1]!.slice(6);
      const mine = edits.filter(([k]) => k % blocks.length === i).map(([, at, v]) => [at, v] as const);
      const data = raw === "[DONE]" || mine.length === 0 ? raw : perturb(JSON.parse(raw), mine);
      return event === undefined ? { data } : { event, data };
    }),
  );
}

// ---- properties ----

describe("fuzz: translations", () => {
  it("regressions: values whose own toString is no function, and deep nesting, found by these properties", () => {
    const pair = (name: string) => PAIRS.find((p) => p.name === name)!;
    const target = { model: "cohere.embed-v4:0", defaultMaxTokens: 4096, nowMs: 0 };
    // String(v) threw "Cannot convert object to primitive value" out of check() / request().
    const bodies: Array<[string, string]> = [
      ["messages -> openai", '{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":{"toString":1}}]}]}'],
      ["messages -> openai", '{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"","name":{"toString":""},"input":{}}]}]}'],
      ["messages -> openai", '{"model":"m","messages":[{"role":"user","content":[{"type":{"toString":1}}]}]}'],
      ["embeddings -> gemini", '{"model":"m","input":"","encoding_format":{"toString":1}}'],
      ["embeddings -> bedrock", '{"model":"m","input":"","encoding_format":{"toString":1}}'],
      ["chat.completions -> gemini", '{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":{"toString":1},"arguments":"{}"}}]}]}'],
      ["chat.completions -> bedrock", '{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"tool","tool_call_id":{"toString":1},"content":"x"}]}'],
    ];
    for (const [name, text] of bodies) {
      const body = JSON.parse(text) as JsonObject;
      const t = pair(name).translation;
      if (t.check(body, target.model) === undefined) JSON.parse(t.request(body, target).body.toString("utf8"));
    }
    // The Bedrock stream and JSON answer: a tool call id with its own toString, and a tool input nested 10,000 deep.
    const bedrock = pair("chat.completions -> bedrock").translation;
    const frame = Buffer.from([0,0,0,133,0,0,0,54,211,158,117,18,13,58,109,101,115,115,97,103,101,45,116,121,112,101,7,0,5,101,118,101,110,116,11,58,101,118,101,110,116,45,116,121,112,101,7,0,17,99,111,110,116,101,110,116,66,108,111,99,107,83,116,97,114,116,123,34,115,116,97,114,116,34,58,123,34,116,111,111,108,85,115,101,34,58,123,34,116,111,111,108,85,115,101,73,100,34,58,123,125,44,34,110,97,109,101,34,58,123,34,116,111,83,116,114,105,110,103,34,58,110,117,108,108,125,125,125,125,254,128,57,103]);
    clientEvents(pair("chat.completions -> bedrock"), bedrock.response(meta(false), true).streamChunk(frame, true));
    const deep = `{"output":{"message":{"content":[{"toolUse":{"toolUseId":{"toString":1},"name":"f","input":{"a":${"[".repeat(10_000)}${"]".repeat(10_000)}}}}]}}}`;
    JSON.parse(bedrock.response(meta(false), false).json(Buffer.from(deep)).toString("utf8"));
  });

  it("covers every translated pair", () => {
    assert.ok(PAIRS.length >= 7, PAIRS.map((p) => p.name).join(", "));
    for (const p of PAIRS) assert.ok(p.translation !== undefined, p.name);
  });

  for (const p of PAIRS) {
    describe(p.name, () => {
      it("check() never throws; request() on what it accepts gives one JSON object and leaves the client's body alone", () => {
        fc.assert(
          fc.property(
            requestsFor(p.operation),
            targetModels(p),
            fc.integer({ min: 0, max: 4_000_000_000_000 }),
            suite.counted((generated, model, nowMs) => {
              // As the service has it: parsed from JSON, prototype keys as own properties.
              const body = JSON.parse(JSON.stringify(generated)) as JsonObject;
              const before = JSON.stringify(body);
              const problem = p.translation.check(body, model);
              assert.ok(problem === undefined || (typeof problem === "string" && problem !== ""), "check() answers undefined or a sentence");
              if (problem === undefined) {
                const r = p.translation.request(body, { model, defaultMaxTokens: 4096, nowMs });
                const out = JSON.parse(r.body.toString("utf8")) as unknown;
                assert.ok(isRecord(out), "the provider's body is a JSON object");
                assert.equal(typeof r.stream, "boolean");
                assert.ok(Array.isArray(r.dropped) && r.dropped.every((d) => typeof d === "string"));
                assert.equal(typeof r.meta.clientModel, "string");
                assert.ok(Number.isInteger(r.meta.created));
                JSON.stringify(r.meta);
              }
              assert.equal(JSON.stringify(body), before, "the client's body is unchanged");
              assertPrototypesClean();
            }),
          ),
          suite.params(900),
        );
      });

      it("error(): provider error bodies of every dialect, and garbage, become the client's error JSON", () => {
        const message = fc.oneof(fc.string({ maxLength: 20 }), odd);
        const body = fc.oneof(
          fc.record({ error: fc.record({ message, type: fc.oneof(fc.constantFrom("rate_limit_error", "invalid_request_error", "overloaded_error"), odd), code: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), odd), param: odd }, { requiredKeys: [] }) }).map((v) => JSON.stringify(v)),
          fc.record({ type: fc.constant("error"), error: fc.record({ type: fc.oneof(fc.string({ maxLength: 8 }), odd), message }) }).map((v) => JSON.stringify(v)),
          fc.record({ error: fc.record({ code: fc.oneof(fc.integer({ min: 100, max: 599 }), odd), message, status: fc.oneof(fc.constantFrom("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"), odd) }) }).map((v) => JSON.stringify([v])),
          fc.record({ message, Message: message, __type: fc.oneof(fc.constantFrom("ThrottlingException", "com.amazon#ValidationException:x"), odd) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
          fc.oneof(odd.map((v) => JSON.stringify(v) ?? "null"), fc.string({ maxLength: 40 }), fc.constantFrom("", "<html>502</html>", "upstream connect error")),
        );
        fc.assert(
          fc.property(
            body,
            fc.integer({ min: 100, max: 599 }),
            fc.option(fc.oneof(fc.constantFrom("ThrottlingException:http://x", "ValidationException", ":", "#"), fc.string({ maxLength: 10 })), { nil: undefined }),
            suite.counted((text, status, errorType) => {
              const t = p.translation.response(meta(false), false);
              const clientStatus = t.status(status);
              assert.ok(Number.isInteger(clientStatus) && clientStatus >= 100 && clientStatus <= 599);
              const out = JSON.parse(t.error(status, Buffer.from(text), (n) => (n === "x-amzn-errortype" ? errorType : undefined)).toString("utf8")) as Record<string, unknown>;
              const e = out["error"] as Record<string, unknown>;
              // The provider's own message when it gave one (even an empty one), else a fallback.
              assert.ok(isRecord(e) && typeof e["message"] === "string" && typeof e["type"] === "string", JSON.stringify(out));
              if (clientFormat(p) === "anthropic") assert.equal(out["type"], "error");
            }),
          ),
          suite.params(600),
        );
      });
    });
  }

  for (const p of CHAT_PAIRS) {
    const dialect = DIALECTS[p.provider]!;
    describe(`${p.name}: generated answers`, () => {
      it("say the same to the client (text, tool arguments, usage), whole and streamed however cut", () => {
        fc.assert(
          fc.property(
            answerModel,
            fc.boolean(),
            splits,
            suite.counted((a, includeUsage, s) => {
              const { json, stream } = dialect.render(a);
              const m = meta(includeUsage);
              // Whole answer.
              const whole = JSON.parse(p.translation.response(m, false).json(Buffer.from(JSON.stringify(json))).toString("utf8")) as Record<string, unknown>;
              const said = clientFormat(p) === "anthropic" ? anthropicMessage(whole) : openAiMessage(whole);
              assert.equal(said.text, a.text.join(""));
              assert.deepEqual(
                said.tools.map((t) => [t.name, JSON.parse(t.args) as unknown]),
                a.tools.map((t) => [t.name, JSON.parse(t.args.join("")) as unknown]),
              );
              assert.deepEqual(readUsage(p, Buffer.from(JSON.stringify(whole)), false).usage, dialect.jsonUsage(a));
              // Stream, whole and cut.
              const out = translateStream(p, m, stream, { cuts: [], empties: [], emptyEnd: false });
              assert.ok(translateStream(p, m, stream, s).equals(out), "chunk boundaries change nothing");
              const events = clientEvents(p, out);
              const streamed = assemble(p, events);
              assert.equal(streamed.text, a.text.join(""));
              assert.deepEqual(
                streamed.tools.map((t) => [t.name, JSON.parse(t.args) as unknown]),
                a.tools.map((t) => [t.name, JSON.parse(t.args.join("")) as unknown]),
              );
              const read = readUsage(p, out, true);
              assert.deepEqual(read, dialect.streamUsage(a, includeUsage));
            }),
          ),
          suite.params(900),
        );
      });

      it("with odd values at random places: never throws, well-formed output, the same however cut", () => {
        const edits = fc.array(fc.tuple(fc.nat(), fc.nat(), odd), { minLength: 1, maxLength: 3 });
        fc.assert(
          fc.property(
            fc.oneof(answerModel.map((a) => ({ a, frames: undefined })), bedrockFrames.map((frames) => ({ a: undefined, frames }))),
            edits,
            fc.boolean(),
            splits,
            suite.counted(({ a, frames }, e, includeUsage, s) => {
              const m = meta(includeUsage);
              const rendered = a === undefined ? undefined : dialect.render(a);
              if (rendered !== undefined) {
                const json = perturb(rendered.json, e.map(([, at, v]) => [at, v] as const));
                JSON.parse(p.translation.response(m, false).json(Buffer.from(JSON.stringify(json) ?? "null")).toString("utf8"));
              }
              const body = p.provider === "bedrock" ? (frames ?? rendered!.stream) : perturbSse(rendered?.stream ?? sse([{ data: "{}" }]), e);
              const out = translateStream(p, m, body, { cuts: [], empties: [], emptyEnd: false });
              assert.ok(translateStream(p, m, body, s).equals(out), "chunk boundaries change nothing");
              clientEvents(p, out);
              assertPrototypesClean();
            }),
          ),
          suite.params(900),
        );
      });
    });
  }

  it("deeply nested values in provider answers never make json() or streamChunk() throw", () => {
    const DEEP = '"@@DEEP@@"';
    fc.assert(
      fc.property(
        fc.constantFrom(...CHAT_PAIRS),
        answerModel,
        fc.integer({ min: 1_000, max: 20_000 }),
        fc.constantFrom("[", '{"a":'),
        suite.counted((p, a, depth, open) => {
          const model: AnswerModel = { ...a, tools: [{ id: "t1", name: "f", args: ['{"deep":', DEEP, "}"] }] };
          const { json, stream } = DIALECTS[p.provider]!.render(model);
          const deep = open.repeat(depth) + (open === "[" ? "]" : "}").repeat(depth);
          const m = meta(true);
          JSON.parse(p.translation.response(m, false).json(Buffer.from(JSON.stringify(json).split(DEEP).join(deep))).toString("utf8"));
          if (p.provider !== "bedrock") clientEvents(p, translateStream(p, m, Buffer.from(stream.toString("utf8").split(DEEP).join(deep)), { cuts: [], empties: [], emptyEnd: false }));
        }),
      ),
      suite.params(200),
    );
  });

  for (const p of PAIRS.filter((x) => x.operation === "embeddings")) {
    it(`${p.name}: generated embedding answers keep every vector`, () => {
      const vector = fc.array(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1, max: 1 }), { minLength: 1, maxLength: 8 });
      fc.assert(
        fc.property(
          fc.array(vector, { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          fc.nat(1000),
          fc.option(fc.tuple(fc.nat(), odd), { nil: undefined }),
          suite.counted((generated, base64, tokens, edit) => {
            // As JSON carries them (-0 is written 0).
            const vectors = JSON.parse(JSON.stringify(generated)) as number[][];
            const answers =
              p.provider === "gemini"
                ? [{ embeddings: vectors.map((values) => ({ values })) }]
                : [{ embedding: vectors[0], inputTextTokenCount: tokens }, { embeddings: { float: vectors } }, { embeddings: vectors, meta: { billed_units: { input_tokens: tokens } } }];
            for (const answer of answers) {
              const m = meta(false, { base64 });
              const body = edit === undefined ? answer : perturb(answer, [edit]);
              const out = JSON.parse(p.translation.response(m, false).json(Buffer.from(JSON.stringify(body)), () => String(tokens)).toString("utf8")) as Record<string, unknown>;
              if (edit !== undefined) continue;
              const expected = "embedding" in answer ? [vectors[0]!] : vectors;
              const data = out["data"] as Array<{ embedding: unknown; index: number }>;
              assert.equal(data.length, expected.length);
              data.forEach((d, i) => {
                assert.equal(d.index, i);
                const got = typeof d.embedding === "string" ? [...new Float32Array(new Uint8Array(Buffer.from(d.embedding, "base64")).buffer)] : (d.embedding as number[]);
                assert.deepEqual(got, base64 ? [...new Float32Array(expected[i]!)] : expected[i]);
              });
            }
          }),
        ),
        suite.params(600),
      );
    });
  }
});

/** Text and tool calls of an OpenAI chat.completion (what an OpenAI SDK shows). */
function openAiMessage(v: Record<string, unknown>): { text: string; tools: Array<{ name: string; args: string }> } {
  const choice = (v["choices"] as Array<Record<string, unknown>>)[0]!;
  const message = choice["message"] as Record<string, unknown>;
  const calls = (message["tool_calls"] as Array<{ function: { name: string; arguments: string } }> | undefined) ?? [];
  return { text: (message["content"] as string | null) ?? "", tools: calls.map((c) => ({ name: c.function.name, args: c.function.arguments })) };
}

/** Text and tool_use blocks of an Anthropic message. */
function anthropicMessage(v: Record<string, unknown>): { text: string; tools: Array<{ name: string; args: string }> } {
  const content = v["content"] as Array<Record<string, unknown>>;
  return {
    text: content.filter((b) => b["type"] === "text").map((b) => b["text"] as string).join(""),
    tools: content.filter((b) => b["type"] === "tool_use").map((b) => ({ name: b["name"] as string, args: JSON.stringify(b["input"]) })),
  };
}

suite.summary();
