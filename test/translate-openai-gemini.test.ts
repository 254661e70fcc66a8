import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { type MockProvider, startMockProvider } from "../src/mock-provider/server";
import { toGeminiSchema } from "../src/translate/gemini-schema";
import { openAiEmbeddingsToGemini } from "../src/translate/openai-embeddings-to-gemini";
import { openAiToGemini } from "../src/translate/openai-to-gemini";
import type { Translation, TranslationMeta, TranslationTarget } from "../src/translate/types";
import { REPO_ROOT } from "./support/service";

// ---- golden vectors (test/fixtures/translate/openai-gemini) ----

const FIXTURES = path.join(REPO_ROOT, "test/fixtures/translate/openai-gemini");

type Json = Record<string, unknown>;
interface Vector {
  file: string;
  kind: "request" | "json" | "stream" | "error";
  translation: "chat" | "embeddings";
  target?: TranslationTarget;
  meta?: TranslationMeta;
  openai: unknown;
  gemini: unknown;
  stream?: boolean;
  dropped?: string[];
  status?: number;
  body?: unknown;
}

const vectors: Vector[] = readdirSync(FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((file) => ({ file, ...(JSON.parse(readFileSync(path.join(FIXTURES, file), "utf8")) as Omit<Vector, "file">) }));

const of = (v: Vector): Translation => (v.translation === "chat" ? openAiToGemini : openAiEmbeddingsToGemini);
const byKind = (kind: Vector["kind"]): Vector[] => vectors.filter((v) => v.kind === kind);

/** The provider stream of a vector: one `data:` event per Gemini response, with the given line break. */
function geminiStream(v: Vector, eol: "\n" | "\r\n" = "\n"): Buffer {
  return Buffer.from((v.gemini as unknown[]).map((e) => `data: ${JSON.stringify(e)}${eol}${eol}`).join(""));
}

/** An OpenAI SSE body as its data payloads, parsed (the [DONE] marker kept as a string). */
function sseData(body: Buffer): unknown[] {
  const text = body.toString("utf8");
  assert.ok(text === "" || text.endsWith("\n\n"), "every event is complete");
  return text
    .split("\n\n")
    .filter((block) => block !== "")
    .map((block) => {
      assert.ok(block.startsWith("data: ") && !block.includes("\n"), `one data line per event: ${block}`);
      const data = block.slice("data: ".length);
      return data === "[DONE]" ? data : (JSON.parse(data) as unknown);
    });
}

function translateStream(t: Translation, meta: TranslationMeta, pieces: Buffer[]): Buffer {
  const r = t.response(meta, true);
  const out = pieces.map((p, i) => r.streamChunk(p, i === pieces.length - 1));
  return Buffer.concat(out);
}

describe("OpenAI -> Gemini golden vectors", () => {
  it("has vectors of every kind", () => {
    for (const kind of ["request", "json", "stream", "error"] as const) assert.ok(byKind(kind).length > 0, kind);
  });

  for (const v of byKind("request")) {
    it(`request: ${v.file}`, () => {
      const t = of(v);
      const body = v.openai as Json;
      assert.equal(t.check(body, "gemini-2.5-flash"), undefined);
      const out = t.request(body, v.target!);
      assert.deepEqual(JSON.parse(out.body.toString("utf8")), v.gemini);
      assert.equal(out.stream, v.stream);
      assert.deepEqual([...out.dropped].sort(), v.dropped);
      assert.deepEqual(out.meta, v.meta);
    });
  }

  for (const v of byKind("json")) {
    it(`json response: ${v.file}`, () => {
      const r = of(v).response(v.meta!, false);
      assert.equal(r.contentType(false), "application/json");
      assert.deepEqual(JSON.parse(r.json(Buffer.from(JSON.stringify(v.gemini))).toString("utf8")), v.openai);
    });
  }

  for (const v of byKind("stream")) {
    it(`stream: ${v.file}`, () => {
      for (const eol of ["\n", "\r\n"] as const) {
        const whole = translateStream(of(v), v.meta!, [geminiStream(v, eol)]);
        assert.deepEqual(sseData(whole), v.openai);
        // Event by event, then an empty end-of-stream chunk: the same bytes.
        const pieces = (v.gemini as unknown[]).map((e) => Buffer.from(`data: ${JSON.stringify(e)}${eol}${eol}`));
        assert.deepEqual(translateStream(of(v), v.meta!, [...pieces, Buffer.alloc(0)]), whole);
      }
    });
  }

  for (const v of byKind("error")) {
    it(`error: ${v.file}`, () => {
      const r = of(v).response({ clientModel: "m", created: 0, includeUsage: false }, false);
      const raw = typeof v.body === "string" ? v.body : JSON.stringify(v.body);
      assert.equal(r.status(v.status!), v.status);
      assert.deepEqual(JSON.parse(r.error(v.status!, Buffer.from(raw), () => undefined).toString("utf8")), v.openai);
    });
  }
});

describe("OpenAI -> Gemini stream details", () => {
  const meta: TranslationMeta = { clientModel: "alias", created: 1, includeUsage: true, extra: { model: "gemini-2.5-flash" } };

  it("answers an unreadable event with an error chunk and stops", () => {
    const r = openAiToGemini.response(meta, true);
    const first = r.streamChunk(Buffer.from('data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"responseId":"x"}\n\ndata: {oops\n\n'), false);
    const events = sseData(first);
    assert.equal(events.length, 2);
    assert.deepEqual((events[1] as Json)["error"], {
      message: "The provider's answer could not be read or translated into this API.",
      type: "server_error",
      param: null,
      code: "upstream_response_invalid",
    });
    const rest = r.streamChunk(Buffer.from('data: {"candidates":[{"content":{"parts":[{"text":"more"}]},"finishReason":"STOP"}]}\n\n'), true);
    assert.equal(rest.length, 0);
  });

  it("reads an event the provider did not end with a blank line", () => {
    const r = openAiToGemini.response({ ...meta, includeUsage: false }, true);
    const out = r.streamChunk(Buffer.from('data: {"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"responseId":"x"}'), true);
    const events = sseData(out);
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(((events[1] as Json)["choices"] as Json[])[0]!["finish_reason"], "stop");
  });

  it("finishes only when every started candidate has finished", () => {
    const ev = (index: number, text: string, finish?: string): string =>
      `data: ${JSON.stringify({ candidates: [{ index, content: { parts: [{ text }] }, ...(finish ? { finishReason: finish } : {}) }], responseId: "n2" })}\n\n`;
    const cut = translateStream(openAiToGemini, meta, [Buffer.from(ev(0, "a") + ev(1, "b") + ev(0, "", "STOP"))]);
    assert.notEqual(sseData(cut).at(-1), "[DONE]");
    const whole = translateStream(openAiToGemini, meta, [Buffer.from(ev(0, "a") + ev(1, "b") + ev(0, "", "STOP") + ev(1, "c", "MAX_TOKENS"))]);
    const events = sseData(whole);
    assert.equal(events.at(-1), "[DONE]");
    const finishes = events.flatMap((e) => (typeof e === "object" && e !== null ? ((e as Json)["choices"] as Json[]) : [])).filter((c) => c["finish_reason"] !== null);
    assert.deepEqual(finishes.map((c) => [c["index"], c["finish_reason"]]), [[0, "stop"], [1, "length"]]);
  });

  it("skips thought parts and keeps tool call indexes across events", () => {
    const events = [
      { candidates: [{ content: { parts: [{ text: "secret", thought: true }, { functionCall: { name: "a", args: { x: 1 } } }] } }], responseId: "t" },
      { candidates: [{ content: { parts: [{ functionCall: { name: "b", args: {} } }] }, finishReason: "STOP" }], responseId: "t" },
    ];
    const out = sseData(translateStream(openAiToGemini, { ...meta, includeUsage: false }, [Buffer.from(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join(""))]));
    const deltas = out.slice(0, 2).map((e) => ((e as Json)["choices"] as Json[])[0]!["delta"] as Json);
    assert.deepEqual(deltas[0], { role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_t_0", type: "function", function: { name: "a", arguments: '{"x":1}' } }] });
    assert.deepEqual(deltas[1], { tool_calls: [{ index: 1, id: "call_t_1", type: "function", function: { name: "b", arguments: "{}" } }] });
    assert.ok(!JSON.stringify(out).includes("secret"));
  });

  it("gives the same bytes however the provider stream is split (multi-byte UTF-8 included)", () => {
    const streams = byKind("stream").flatMap((v) => (["\n", "\r\n"] as const).map((eol) => ({ v, body: geminiStream(v, eol) })));
    const wholes = streams.map(({ v, body }) => translateStream(of(v), v.meta!, [body]));
    fc.assert(
      fc.property(fc.nat(streams.length - 1), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 16 }), fc.boolean(), (which, fractions, emptyEnd) => {
        const { v, body } = streams[which]!;
        const cuts = [...new Set(fractions.map((f) => Math.floor(f * body.length)))].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let at = 0;
        for (const c of [...cuts, body.length]) {
          pieces.push(body.subarray(at, c));
          at = c;
        }
        if (emptyEnd) pieces.push(Buffer.alloc(0));
        assert.deepEqual(translateStream(of(v), v.meta!, pieces), wholes[which]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("OpenAI -> Gemini never throws on what the provider sends", () => {
  const meta: TranslationMeta = { clientModel: "m", created: 1, includeUsage: true };
  const translations = [openAiToGemini, openAiEmbeddingsToGemini];
  const part = fc.oneof(
    fc.record({ text: fc.string(), thought: fc.boolean() }, { requiredKeys: [] }),
    fc.record({ functionCall: fc.oneof(fc.record({ name: fc.string(), args: fc.jsonValue(), id: fc.string() }, { requiredKeys: [] }), fc.jsonValue()), thoughtSignature: fc.jsonValue() }, { requiredKeys: [] }),
    fc.jsonValue(),
  );
  const response = fc.record(
    {
      candidates: fc.oneof(
        fc.array(fc.record({ content: fc.record({ parts: fc.oneof(fc.array(part), fc.jsonValue()) }, { requiredKeys: [] }), finishReason: fc.oneof(fc.constantFrom("STOP", "MAX_TOKENS", "SAFETY", ""), fc.jsonValue()), index: fc.oneof(fc.nat(3), fc.jsonValue()), logprobsResult: fc.jsonValue() }, { requiredKeys: [] })),
        fc.jsonValue(),
      ),
      usageMetadata: fc.oneof(fc.record({ promptTokenCount: fc.jsonValue(), candidatesTokenCount: fc.integer(), totalTokenCount: fc.integer() }, { requiredKeys: [] }), fc.jsonValue()),
      promptFeedback: fc.jsonValue(),
      responseId: fc.oneof(fc.string(), fc.jsonValue()),
      modelVersion: fc.jsonValue(),
      error: fc.jsonValue(),
      embeddings: fc.oneof(fc.array(fc.record({ values: fc.oneof(fc.array(fc.double()), fc.jsonValue()) })), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );

  it("json() and error() on arbitrary bytes and shapes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), response.map((r) => Buffer.from(JSON.stringify(r)))), fc.integer({ min: 100, max: 599 }), (body, status) => {
        for (const t of translations) {
          const r = t.response(meta, false);
          JSON.parse(r.json(body).toString("utf8"));
          JSON.parse(r.error(status, body, () => undefined).toString("utf8"));
        }
      }),
      { numRuns: 400 },
    );
  });

  it("streamChunk() on arbitrary bytes and events, in arbitrary pieces", () => {
    const event = fc.oneof(response.map((r) => `data: ${JSON.stringify(r)}\n\n`), fc.string().map((s) => `data: ${s}\n\n`), fc.string());
    fc.assert(
      fc.property(fc.oneof(fc.array(event, { maxLength: 6 }).map((e) => Buffer.from(e.join(""))), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), fc.array(fc.nat(), { maxLength: 5 }), (body, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let at = 0;
        for (const c of [...points, body.length]) {
          pieces.push(body.subarray(at, c));
          at = c;
        }
        const out = translateStream(openAiToGemini, meta, pieces);
        for (const e of sseData(out)) assert.ok(e === "[DONE]" || typeof e === "object");
      }),
      { numRuns: 400 },
    );
  });

  it("request() takes whatever check() lets through", () => {
    const message = fc.record(
      {
        role: fc.oneof(fc.constantFrom("system", "developer", "user", "assistant", "tool"), fc.jsonValue()),
        content: fc.oneof(fc.string(), fc.array(fc.oneof(fc.record({ type: fc.constant("text"), text: fc.jsonValue() }), fc.jsonValue())), fc.jsonValue()),
        tool_calls: fc.oneof(fc.array(fc.record({ id: fc.string(), function: fc.record({ name: fc.jsonValue(), arguments: fc.oneof(fc.string(), fc.jsonValue()) }, { requiredKeys: [] }) }, { requiredKeys: [] })), fc.jsonValue()),
        tool_call_id: fc.string(),
      },
      { requiredKeys: [] },
    );
    const body = fc.record(
      {
        messages: fc.oneof(fc.array(message, { maxLength: 5 }), fc.jsonValue()),
        tools: fc.oneof(fc.array(fc.record({ type: fc.constant("function"), function: fc.record({ name: fc.string(), parameters: fc.jsonValue() }, { requiredKeys: [] }) })), fc.jsonValue()),
        tool_choice: fc.jsonValue(),
        response_format: fc.oneof(fc.record({ type: fc.constant("json_schema"), json_schema: fc.record({ schema: fc.jsonValue() }) }), fc.jsonValue()),
        stop: fc.jsonValue(),
        stream_options: fc.jsonValue(),
        input: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    const target: TranslationTarget = { model: "gemini-2.5-flash", defaultMaxTokens: 1024, nowMs: 0 };
    fc.assert(
      fc.property(body, (b) => {
        for (const t of translations) {
          if (t.check(b as Json, target.model) !== undefined) continue;
          JSON.parse(t.request(b as Json, target).body.toString("utf8"));
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("OpenAI -> Gemini check()", () => {
  const user = (content: unknown): Json => ({ model: "m", messages: [{ role: "user", content }] });
  const cases: Array<[string, Translation, Json, RegExp | undefined]> = [
    ["plain chat", openAiToGemini, user("hi"), undefined],
    ["null optional fields", openAiToGemini, { ...user("hi"), audio: null, functions: null, tools: null, modalities: ["text"] }, undefined],
    ["base64 image", openAiToGemini, user([{ type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }]), undefined],
    ["https image", openAiToGemini, user([{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }]), /data: URL.*uploaded/],
    ["percent-encoded data URL", openAiToGemini, user([{ type: "image_url", image_url: { url: "data:image/svg+xml,%3Csvg%3E" } }]), /base64 data: URL/],
    ["image in an assistant message", openAiToGemini, { messages: [{ role: "assistant", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }] }, /only accepts in user messages/],
    ["flac audio", openAiToGemini, user([{ type: "input_audio", input_audio: { data: "AA==", format: "flac" } }]), /wav or mp3/],
    ["file by id", openAiToGemini, user([{ type: "file", file: { file_id: "file-abc" } }]), /file ids/],
    ["unknown part type", openAiToGemini, user([{ type: "video_url", video_url: {} }]), /`video_url`/],
    ["audio output", openAiToGemini, { ...user("hi"), audio: { voice: "alloy", format: "wav" } }, /`audio`/],
    ["audio modality", openAiToGemini, { ...user("hi"), modalities: ["text", "audio"] }, /`modalities`/],
    ["legacy functions", openAiToGemini, { ...user("hi"), functions: [{ name: "f" }] }, /`functions`/],
    ["legacy function_call", openAiToGemini, { ...user("hi"), function_call: "auto" }, /`function_call`/],
    ["web search", openAiToGemini, { ...user("hi"), web_search_options: {} }, /`web_search_options`/],
    ["custom tool", openAiToGemini, { ...user("hi"), tools: [{ type: "custom", custom: { name: "x" } }] }, /tools\[0\].*function tools only/],
    ["custom tool choice", openAiToGemini, { ...user("hi"), tool_choice: { type: "custom", custom: { name: "x" } } }, /tool_choice/],
    ["unknown response format", openAiToGemini, { ...user("hi"), response_format: { type: "grammar" } }, /response_format/],
    ["function role", openAiToGemini, { messages: [{ role: "function", name: "f", content: "1" }] }, /role `function`/],
    ["assistant audio", openAiToGemini, { messages: [{ role: "assistant", audio: { id: "audio_1" } }] }, /messages\[0\]\.audio/],
    ["image in a system message", openAiToGemini, { messages: [{ role: "system", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }] }, /system instructions/],
    ["tool result without its call", openAiToGemini, { messages: [{ role: "tool", tool_call_id: "call_x", content: "1" }] }, /tool_call_id/],
    ["tool result after its call", openAiToGemini, { messages: [{ role: "assistant", tool_calls: [{ id: "call_x", type: "function", function: { name: "f", arguments: "{}" } }] }, { role: "tool", tool_call_id: "call_x", content: "1" }] }, undefined],
    ["embeddings text", openAiEmbeddingsToGemini, { model: "e", input: ["a", "b"], encoding_format: "base64" }, undefined],
    ["embeddings token ids", openAiEmbeddingsToGemini, { model: "e", input: [1, 2, 3] }, /token ids/],
    ["embeddings token id arrays", openAiEmbeddingsToGemini, { model: "e", input: [[1, 2], [3]] }, /token ids/],
    ["embeddings odd encoding", openAiEmbeddingsToGemini, { model: "e", input: "a", encoding_format: "int8" }, /encoding_format/],
  ];
  for (const [name, t, body, expected] of cases) {
    it(name, () => {
      const problem = t.check(body, "gemini-2.5-flash");
      if (expected === undefined) assert.equal(problem, undefined);
      else assert.match(problem ?? "", expected);
    });
  }
});

describe("JSON Schema -> Gemini Schema", () => {
  it("inlines a recursive $ref once and stops", () => {
    const schema = { $defs: { Node: { type: "object", properties: { value: { type: "string" }, next: { $ref: "#/$defs/Node" } } } }, $ref: "#/$defs/Node" };
    assert.deepEqual(toGeminiSchema(schema), { type: "OBJECT", properties: { value: { type: "STRING" }, next: { type: "OBJECT" } } });
  });

  it("merges allOf and turns several types into anyOf", () => {
    const schema = { allOf: [{ type: "object", properties: { a: { type: ["string", "integer"] } }, required: ["a"] }, { properties: { b: { oneOf: [{ type: "boolean" }, { type: "null" }] } } }] };
    assert.deepEqual(toGeminiSchema(schema), {
      type: "OBJECT",
      properties: { a: { anyOf: [{ type: "STRING" }, { type: "INTEGER" }] }, b: { type: "BOOLEAN", nullable: true } },
      required: ["a"],
    });
  });
});

// ---- the mock Gemini endpoint, end to end through the translation ----

describe("mock provider: Gemini endpoints", () => {
  let mock: MockProvider;
  const target = (model: string): TranslationTarget => ({ model, defaultMaxTokens: 1024, nowMs: 1_750_000_000_000 });
  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });

  async function post(pathAndQuery: string, body: Buffer | string): Promise<Response> {
    return fetch(`${mock.url}${pathAndQuery}`, { method: "POST", headers: { "content-type": "application/json", "x-goog-api-key": "test-key" }, body });
  }

  it("generateContent answers a translated chat request", async () => {
    const req = openAiToGemini.request({ model: "alias", messages: [{ role: "system", content: "Be nice." }, { role: "user", content: "hello gemini mock" }] }, target("gemini-2.5-flash"));
    const res = await post("/v1beta/models/gemini-2.5-flash:generateContent", req.body);
    assert.equal(res.status, 200);
    const raw = Buffer.from(await res.arrayBuffer());
    const native = JSON.parse(raw.toString("utf8")) as Json;
    assert.equal(native["modelVersion"], "gemini-2.5-flash");
    const out = JSON.parse(openAiToGemini.response(req.meta, false).json(raw).toString("utf8")) as Json;
    const choice = (out["choices"] as Json[])[0]!;
    assert.deepEqual(choice["message"], { role: "assistant", content: "mock reply to hello gemini mock", refusal: null });
    assert.equal(choice["finish_reason"], "stop");
    const usage = out["usage"] as Json;
    assert.equal(usage["completion_tokens"], 6);
    assert.equal(usage["prompt_tokens"], Math.ceil(req.body.toString("utf8").length / 4));
  });

  it("honours maxOutputTokens with MAX_TOKENS", async () => {
    const req = openAiToGemini.request({ messages: [{ role: "user", content: "one two three four" }], max_tokens: 2 }, target("gemini-2.5-flash"));
    const raw = Buffer.from(await (await post("/v1beta/models/gemini-2.5-flash:generateContent", req.body)).arrayBuffer());
    const native = JSON.parse(raw.toString("utf8")) as { candidates: Json[] };
    assert.equal(native.candidates[0]!["finishReason"], "MAX_TOKENS");
    const out = JSON.parse(openAiToGemini.response(req.meta, false).json(raw).toString("utf8")) as { choices: Json[] };
    assert.equal(out.choices[0]!["finish_reason"], "length");
  });

  it("streamGenerateContent?alt=sse streams one event per word, ending with finishReason and usage", async () => {
    const req = openAiToGemini.request({ messages: [{ role: "user", content: "stream these words please" }], stream: true, stream_options: { include_usage: true } }, target("gemini-2.5-flash"));
    const res = await post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", req.body);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const raw = Buffer.from(await res.arrayBuffer());
    const native = raw.toString("utf8").split("\n\n").filter((b) => b !== "").map((b) => JSON.parse(b.slice("data: ".length)) as { candidates: Json[]; usageMetadata: Json });
    assert.equal(native.length, 7);
    assert.equal(native.at(-1)!.candidates[0]!["finishReason"], "STOP");
    assert.equal(native.at(-1)!.usageMetadata["candidatesTokenCount"], 7);
    const events = sseData(translateStream(openAiToGemini, req.meta, [raw]));
    assert.equal(events.at(-1), "[DONE]");
    const text = events.flatMap((e) => (typeof e === "object" ? ((e as Json)["choices"] as Json[]) : [])).map((c) => ((c["delta"] as Json)["content"] as string | undefined) ?? "").join("");
    assert.equal(text, "mock reply to stream these words please");
    assert.equal(((events.at(-2) as Json)["usage"] as Json)["completion_tokens"], 7);
  });

  it("a truncated stream has no finishReason, so the translation ends without [DONE]", async () => {
    mock.truncateNextStream(2);
    const req = openAiToGemini.request({ messages: [{ role: "user", content: "cut me short" }], stream: true }, target("gemini-2.5-flash"));
    const raw = Buffer.from(await (await post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", req.body)).arrayBuffer());
    const events = sseData(translateStream(openAiToGemini, req.meta, [raw]));
    assert.equal(events.length, 2);
    assert.ok(!events.includes("[DONE]"));
  });

  it("calls the first declared function, then answers its result", async () => {
    const tools = [
      { type: "function", function: { name: "search_docs", description: "Search", parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"], additionalProperties: false } } },
      { type: "function", function: { name: "other", parameters: { type: "object", properties: { x: { type: "number" } } } } },
    ];
    const messages: Json[] = [{ role: "user", content: "find the gemini translation docs for me now please" }];
    const req = openAiToGemini.request({ messages, tools }, target("gemini-2.5-flash"));
    const raw = Buffer.from(await (await post("/v1beta/models/gemini-2.5-flash:generateContent", req.body)).arrayBuffer());
    const out = JSON.parse(openAiToGemini.response(req.meta, false).json(raw).toString("utf8")) as { choices: Array<{ message: Json; finish_reason: string }> };
    const message = out.choices[0]!.message;
    assert.equal(out.choices[0]!.finish_reason, "tool_calls");
    const calls = message["tool_calls"] as Array<{ id: string; function: { name: string; arguments: string } }>;
    assert.equal(calls[0]!.function.name, "search_docs");
    assert.deepEqual(JSON.parse(calls[0]!.function.arguments), { query: "find the gemini translation docs for me now" });

    const next = [...messages, message, { role: "tool", tool_call_id: calls[0]!.id, content: "three results" }];
    assert.equal(openAiToGemini.check({ messages: next, tools }, "gemini-2.5-flash"), undefined);
    const req2 = openAiToGemini.request({ messages: next, tools }, target("gemini-2.5-flash"));
    const sent = JSON.parse(req2.body.toString("utf8")) as { contents: Array<{ role: string; parts: Json[] }> };
    assert.deepEqual(sent.contents.at(-1), { role: "user", parts: [{ functionResponse: { name: "search_docs", response: { content: "three results" } } }] });
    const raw2 = Buffer.from(await (await post("/v1beta/models/gemini-2.5-flash:generateContent", req2.body)).arrayBuffer());
    const out2 = JSON.parse(openAiToGemini.response(req2.meta, false).json(raw2).toString("utf8")) as { choices: Array<{ message: Json; finish_reason: string }> };
    assert.equal(out2.choices[0]!.finish_reason, "stop");
    assert.equal(out2.choices[0]!.message["content"], "mock reply to find the gemini translation docs for me now");
  });

  it("tool_choice none keeps the mock from calling", async () => {
    const req = openAiToGemini.request({ messages: [{ role: "user", content: "hi" }], tools: [{ type: "function", function: { name: "f" } }], tool_choice: "none" }, target("gemini-2.5-flash"));
    const native = (await (await post("/v1beta/models/gemini-2.5-flash:generateContent", req.body)).json()) as { candidates: Array<{ content: { parts: Json[] } }> };
    assert.deepEqual(native.candidates[0]!.content.parts, [{ text: "mock reply to hi" }]);
  });

  it("batchEmbedContents answers one vector per input", async () => {
    const req = openAiEmbeddingsToGemini.request({ model: "text-embedding-004", input: ["alpha", "beta"] }, target("models/gemini-embedding-001"));
    const res = await post("/v1beta/models/gemini-embedding-001:batchEmbedContents", req.body);
    assert.equal(res.status, 200);
    const out = JSON.parse(openAiEmbeddingsToGemini.response(req.meta, false).json(Buffer.from(await res.arrayBuffer())).toString("utf8")) as { data: Array<{ index: number; embedding: number[] }>; model: string };
    assert.equal(out.model, "gemini-embedding-001");
    assert.deepEqual(out.data.map((d) => [d.index, d.embedding.length]), [[0, 8], [1, 8]]);
    assert.notDeepEqual(out.data[0]!.embedding, out.data[1]!.embedding);
  });

  it("rejects a request without contents with 400 INVALID_ARGUMENT", async () => {
    const res = await post("/v1beta/models/gemini-2.5-flash:generateContent", JSON.stringify({ generationConfig: {} }));
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: Json };
    assert.equal(body.error["status"], "INVALID_ARGUMENT");
    assert.equal(body.error["code"], 400);
  });

  it("a forced failure has Gemini's error shape, translated to OpenAI's", async () => {
    mock.failNext(1, 429);
    const res = await post("/v1beta/models/gemini-2.5-flash:generateContent", JSON.stringify({ contents: [{ role: "user", parts: [{ text: "x" }] }] }));
    assert.equal(res.status, 429);
    const raw = Buffer.from(await res.arrayBuffer());
    assert.deepEqual(JSON.parse(raw.toString("utf8")), { error: { code: 429, message: "mock forced failure (429)", status: "RESOURCE_EXHAUSTED" } });
    const out = JSON.parse(openAiToGemini.response({ clientModel: "m", created: 0, includeUsage: false }, false).error(429, raw, () => undefined).toString("utf8"));
    assert.deepEqual(out, { error: { message: "mock forced failure (429)", type: "rate_limit_error", param: null, code: "RESOURCE_EXHAUSTED" } });
  });
});
