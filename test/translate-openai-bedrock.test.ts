import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { EventStreamCodec, type MessageHeaders } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import fc from "fast-check";
import type { JsonObject } from "../src/api/request-body";
import { type MockProvider, startMockProvider } from "../src/mock-provider/server";
import { EventStreamSplitter, stringHeader } from "../src/translate/event-stream";
import { openAiToBedrock } from "../src/translate/openai-to-bedrock";
import type { TranslationMeta, TranslationTarget } from "../src/translate/types";

const FIXTURES = path.resolve(__dirname, "../../test/fixtures/translate/openai-bedrock");
const codec = new EventStreamCodec(toUtf8, fromUtf8);

function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as T;
}

// ---- event stream bytes ----

interface StreamEvent {
  event?: string;
  exception?: string;
  error?: { code: string; message: string };
  payload?: unknown;
}

function str(value: string): { type: "string"; value: string } {
  return { type: "string", value };
}

function encodeEvent(e: StreamEvent): Buffer {
  let headers: MessageHeaders;
  if (e.exception !== undefined) {
    headers = { ":exception-type": str(e.exception), ":content-type": str("application/json"), ":message-type": str("exception") };
  } else if (e.error !== undefined) {
    headers = { ":error-code": str(e.error.code), ":error-message": str(e.error.message), ":message-type": str("error") };
  } else {
    headers = { ":event-type": str(e.event ?? ""), ":content-type": str("application/json"), ":message-type": str("event") };
  }
  const body = e.payload === undefined ? new Uint8Array(0) : fromUtf8(JSON.stringify(e.payload));
  return Buffer.from(codec.encode({ headers, body }));
}

const encodeEvents = (events: StreamEvent[]): Buffer => Buffer.concat(events.map(encodeEvent));

// ---- translating ----

function feed(meta: TranslationMeta, bytes: Buffer, cuts: number[] = []): Buffer {
  const t = openAiToBedrock.response(meta, true);
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(t.streamChunk(bytes.subarray(at, p), false));
    at = p;
  }
  out.push(t.streamChunk(bytes.subarray(at), true));
  return Buffer.concat(out);
}

type SseData = "[DONE]" | Record<string, unknown>;

/** The data of every event; each must be exactly `data: <json>\n\n`. */
function parseSse(buf: Buffer): SseData[] {
  const text = buf.toString("utf8");
  if (text === "") return [];
  assert.ok(text.endsWith("\n\n"), "the output ends with a complete event");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((block) => {
      assert.ok(block.startsWith("data: ") && !block.includes("\n"), `one data line per event: ${block}`);
      const data = block.slice(6);
      return data === "[DONE]" ? "[DONE]" : (JSON.parse(data) as Record<string, unknown>);
    });
}

const target: TranslationTarget = { model: "anthropic.claude-3-5-sonnet-20240620-v1:0", defaultMaxTokens: 4096, nowMs: 1718000000123 };

// ---- golden vectors ----

interface RequestVectors {
  target: TranslationTarget;
  vectors: Array<{
    name: string;
    input: JsonObject;
    expected: { body: unknown; stream: boolean; includeUsage: boolean; dropped: string[]; created: number };
  }>;
}

interface ResponseVectors {
  meta: TranslationMeta;
  vectors: Array<{ name: string; input: unknown; expected: unknown }>;
}

interface StreamVectors {
  meta: TranslationMeta;
  vectors: Array<{ name: string; includeUsage?: boolean; events: StreamEvent[]; expected: SseData[] }>;
}

interface ErrorVectors {
  vectors: Array<{ name: string; status: number; headers: Record<string, string>; body: string; expected: unknown }>;
}

const requests = fixture<RequestVectors>("requests.json");
const responses = fixture<ResponseVectors>("responses.json");
const streams = fixture<StreamVectors>("streams.json");
const errors = fixture<ErrorVectors>("errors.json");

const metaFor = (v: { includeUsage?: boolean }): TranslationMeta => ({ ...streams.meta, includeUsage: v.includeUsage ?? streams.meta.includeUsage });

describe("OpenAI -> Bedrock Converse: requests", () => {
  for (const v of requests.vectors) {
    it(v.name, () => {
      assert.equal(openAiToBedrock.check(v.input, requests.target.model), undefined);
      const r = openAiToBedrock.request(v.input, requests.target);
      assert.deepEqual(JSON.parse(r.body.toString("utf8")), v.expected.body);
      assert.equal(r.stream, v.expected.stream);
      assert.deepEqual(r.dropped, v.expected.dropped);
      assert.equal(r.meta.includeUsage, v.expected.includeUsage);
      assert.equal(r.meta.created, v.expected.created);
      assert.equal(r.meta.clientModel, v.input["model"]);
      assert.equal(r.meta.extra?.["model"], requests.target.model);
      assert.match(String(r.meta.extra?.["id"]), /^chatcmpl-bedrock-[0-9a-f]{24}$/);
    });
  }

  it("gives a deterministic id: same request and instant, same id; another instant, another id", () => {
    const body = requests.vectors[0]?.input ?? {};
    const a = openAiToBedrock.request(body, target).meta.extra?.["id"];
    const b = openAiToBedrock.request(body, target).meta.extra?.["id"];
    const c = openAiToBedrock.request(body, { ...target, nowMs: target.nowMs + 1 }).meta.extra?.["id"];
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  it("never puts model or stream in the body", () => {
    const r = openAiToBedrock.request({ model: "x", stream: true, messages: [{ role: "user", content: "hi" }] }, target);
    const body = JSON.parse(r.body.toString("utf8")) as JsonObject;
    assert.equal("model" in body, false);
    assert.equal("stream" in body, false);
  });

  it("tolerates odd shapes without throwing", () => {
    const odd: JsonObject[] = [
      {},
      { messages: "hello" },
      { messages: [null, 1, { role: "alien" }, { role: "assistant", tool_calls: [null, { function: { name: "f", arguments: "not json" } }] }] },
      { messages: [{ role: "tool", content: [{ type: "text", text: "r" }, 3] }], tools: [null], stop: [1, "x"] },
    ];
    for (const body of odd) assert.doesNotThrow(() => openAiToBedrock.request(body, target));
    const r = openAiToBedrock.request(odd[2] ?? {}, target);
    assert.deepEqual(JSON.parse(r.body.toString("utf8")), { messages: [{ role: "assistant", content: [{ toolUse: { toolUseId: "", name: "f", input: {} } }] }] });
  });
});

describe("OpenAI -> Bedrock Converse: check()", () => {
  const user = [{ role: "user", content: "hi" }];
  const table: Array<[string, JsonObject, RegExp | undefined]> = [
    ["plain chat", { model: "m", messages: user }, undefined],
    ["n: 1", { messages: user, n: 1 }, undefined],
    ["n: 2", { messages: user, n: 2 }, /`n`/],
    ["logprobs", { messages: user, logprobs: true }, /logprobs/],
    ["top_logprobs", { messages: user, top_logprobs: 2 }, /logprobs/],
    ["top_logprobs 0", { messages: user, logprobs: false, top_logprobs: 0 }, undefined],
    ["response_format text", { messages: user, response_format: { type: "text" } }, undefined],
    ["response_format json_object", { messages: user, response_format: { type: "json_object" } }, /response_format/],
    ["response_format json_schema", { messages: user, response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } } }, /response_format/],
    ["audio output", { messages: user, audio: { voice: "alloy", format: "mp3" } }, /Audio/],
    ["audio modality", { messages: user, modalities: ["text", "audio"] }, /Audio/],
    ["text modality", { messages: user, modalities: ["text"] }, undefined],
    ["legacy functions", { messages: user, functions: [{ name: "f" }] }, /functions/],
    ["web search", { messages: user, web_search_options: {} }, /web_search_options/],
    ["custom tool", { messages: user, tools: [{ type: "custom", custom: { name: "x" } }] }, /tools/],
    ["allowed_tools choice", { messages: user, tools: [{ type: "function", function: { name: "a" } }], tool_choice: { type: "allowed_tools", allowed_tools: {} } }, /tool_choice/],
    ["image data: URL png", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }] }, undefined],
    ["image data: URL webp", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/webp;base64,AAAA" } }] }] }, undefined],
    ["image https URL", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }] }] }, /data: URL/],
    ["image http URL", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://example.com/cat.png" } }] }] }, /data: URL/],
    ["image svg", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/svg+xml;base64,AAAA" } }] }] }, /png, jpeg, gif or webp/],
    ["image not base64", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png,rawbytes" } }] }] }, /png, jpeg, gif or webp/],
    ["input audio", { messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "AAAA", format: "wav" } }] }] }, /input_audio/],
    ["file part", { messages: [{ role: "user", content: [{ type: "file", file: { file_id: "f" } }] }] }, /file/i],
    ["function role", { messages: [...user, { role: "function", name: "f", content: "x" }] }, /function/],
    ["tool_choice none without history", { messages: user, tools: [{ type: "function", function: { name: "a" } }], tool_choice: "none" }, undefined],
    [
      "tool_choice none with tool history",
      {
        messages: [...user, { role: "assistant", tool_calls: [{ id: "1", type: "function", function: { name: "a", arguments: "{}" } }] }, { role: "tool", tool_call_id: "1", content: "r" }],
        tools: [{ type: "function", function: { name: "a" } }],
        tool_choice: "none",
      },
      /none/,
    ],
    [
      "tool history without tools",
      { messages: [...user, { role: "assistant", tool_calls: [{ id: "1", type: "function", function: { name: "a", arguments: "{}" } }] }, { role: "tool", tool_call_id: "1", content: "r" }] },
      /no `tools`/,
    ],
    ["a tool result alone without tools", { messages: [...user, { role: "tool", tool_call_id: "1", content: "r" }], tools: [] }, /no `tools`/],
    [
      "tool history with tools",
      { messages: [...user, { role: "assistant", tool_calls: [{ id: "1", type: "function", function: { name: "a", arguments: "{}" } }] }, { role: "tool", tool_call_id: "1", content: "r" }], tools: [{ type: "function", function: { name: "a" } }] },
      undefined,
    ],
    ["nulls are defaults", { messages: user, n: null, logprobs: null, top_logprobs: null, audio: null, response_format: null }, undefined],
  ];
  for (const [name, body, expected] of table) {
    it(name, () => {
      const why = openAiToBedrock.check(body, target.model);
      if (expected === undefined) assert.equal(why, undefined);
      else assert.match(why ?? "", expected);
    });
  }
});

describe("OpenAI -> Bedrock Converse: JSON answers", () => {
  for (const v of responses.vectors) {
    it(v.name, () => {
      const t = openAiToBedrock.response(responses.meta, false);
      assert.equal(t.contentType(false), "application/json");
      assert.deepEqual(JSON.parse(t.json(Buffer.from(JSON.stringify(v.input))).toString("utf8")), v.expected);
    });
  }

  it("answers an unreadable body with upstream_response_invalid", () => {
    const t = openAiToBedrock.response(responses.meta, false);
    for (const body of ["not json", "[]", "{}", '{"output":{}}']) {
      const out = JSON.parse(t.json(Buffer.from(body)).toString("utf8")) as { error: { code: string } };
      assert.equal(out.error.code, "upstream_response_invalid");
    }
  });
});

describe("OpenAI -> Bedrock Converse: errors", () => {
  for (const v of errors.vectors) {
    it(v.name, () => {
      const t = openAiToBedrock.response(responses.meta, false);
      assert.equal(t.status(v.status), v.status);
      const out = t.error(v.status, Buffer.from(v.body), (name) => v.headers[name]);
      assert.deepEqual(JSON.parse(out.toString("utf8")), v.expected);
    });
  }
});

describe("OpenAI -> Bedrock Converse: streams", () => {
  const headOf = (meta: TranslationMeta) => ({
    id: meta.extra?.["id"],
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.extra?.["model"],
  });

  for (const v of streams.vectors) {
    it(v.name, () => {
      const meta = metaFor(v);
      const out = parseSse(feed(meta, encodeEvents(v.events)));
      const expected = v.expected.map((e) => (e === "[DONE]" || "error" in e ? e : { ...headOf(meta), ...e }));
      assert.deepEqual(out, expected);
    });
  }

  it("has the SSE content-type", () => {
    assert.equal(openAiToBedrock.response(streams.meta, true).contentType(true), "text/event-stream; charset=utf-8");
  });

  it("gives the same output for every split of every golden stream (fed byte by byte too)", () => {
    for (const v of streams.vectors) {
      const meta = metaFor(v);
      const bytes = encodeEvents(v.events);
      const whole = feed(meta, bytes);
      const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
      assert.deepEqual(feed(meta, bytes, everyByte), whole, v.name);
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 24 }), (cuts) => {
          assert.deepEqual(feed(meta, bytes, cuts), whole);
        }),
        { numRuns: 300 },
      );
    }
  });

  it("drops empty chunks and ignores bytes after the end", () => {
    const v = streams.vectors[0];
    assert.ok(v !== undefined);
    const meta = metaFor(v);
    const bytes = encodeEvents(v.events);
    const t = openAiToBedrock.response(meta, true);
    assert.equal(t.streamChunk(Buffer.alloc(0), false).length, 0);
    const out = t.streamChunk(bytes, false);
    assert.deepEqual(out, feed(meta, bytes));
    assert.equal(t.streamChunk(bytes, true).length, 0);
  });

  describe("corrupt frames: one stream error, no throw, nothing after", () => {
    const events: StreamEvent[] = [
      { event: "messageStart", payload: { role: "assistant" } },
      { event: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Hello" } } },
      { event: "messageStop", payload: { stopReason: "end_turn" } },
    ];
    const first = encodeEvent(events[0] ?? {});
    const meta = streams.meta;

    function expectOneError(bytes: Buffer): void {
      let out: Buffer = Buffer.alloc(0);
      assert.doesNotThrow(() => {
        out = feed(meta, bytes);
      });
      const parsed = parseSse(out);
      const errorsSeen = parsed.filter((p) => p !== "[DONE]" && "error" in p);
      assert.equal(errorsSeen.length, 1);
      const last = parsed[parsed.length - 1] as { error: { code: string; type: string } };
      assert.equal(last.error.code, "upstream_response_invalid");
      assert.equal(last.error.type, "server_error");
      assert.ok(!parsed.includes("[DONE]"));
    }

    it("a flipped payload byte (message CRC)", () => {
      const bytes = encodeEvents(events);
      bytes[first.length + 40] = (bytes[first.length + 40] ?? 0) ^ 0xff;
      expectOneError(bytes);
      // Frames before the corrupt one are still translated.
      const parsed = parseSse(feed(meta, bytes));
      assert.equal(parsed.length, 2);
    });

    it("a flipped header-length byte (prelude CRC)", () => {
      const bytes = encodeEvents(events);
      bytes[first.length + 6] = (bytes[first.length + 6] ?? 0) ^ 0x01;
      expectOneError(bytes);
    });

    it("an absurd length prefix", () => {
      const bytes = encodeEvents(events);
      bytes.writeUInt32BE(0xfffffff0, first.length);
      expectOneError(bytes);
      const tiny = encodeEvents(events);
      tiny.writeUInt32BE(3, 0);
      expectOneError(tiny);
    });

    it("a payload that is not JSON (valid CRCs)", () => {
      const bad = Buffer.from(
        codec.encode({
          headers: { ":event-type": str("contentBlockDelta"), ":content-type": str("application/json"), ":message-type": str("event") },
          body: fromUtf8('{"contentBlockIndex":0,"delta":'),
        }),
      );
      expectOneError(Buffer.concat([first, bad, encodeEvent(events[2] ?? {})]));
    });

    it("a corrupt frame in the middle of a chunk split", () => {
      const bytes = encodeEvents(events);
      bytes[first.length + 30] = (bytes[first.length + 30] ?? 0) ^ 0x10;
      const t = openAiToBedrock.response(meta, true);
      const outs = [t.streamChunk(bytes.subarray(0, first.length + 20), false), t.streamChunk(bytes.subarray(first.length + 20), false), t.streamChunk(Buffer.alloc(0), true)];
      const parsed = parseSse(Buffer.concat(outs));
      assert.equal(parsed.filter((p) => p !== "[DONE]" && "error" in p).length, 1);
      assert.equal(outs[2]?.length, 0);
    });
  });

  it("never throws on arbitrary bytes (json, error, streamChunk)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 100, max: 599 }), fc.option(fc.string()), (raw, status, header) => {
        const bytes = Buffer.from(raw);
        const t = openAiToBedrock.response(streams.meta, true);
        const json = openAiToBedrock.response(streams.meta, false).json(bytes);
        assert.ok(JSON.parse(json.toString("utf8")));
        const err = t.error(status, bytes, () => header ?? undefined);
        assert.ok((JSON.parse(err.toString("utf8")) as { error: unknown }).error);
        parseSse(Buffer.concat([t.streamChunk(bytes.subarray(0, 7), false), t.streamChunk(bytes.subarray(7), true)]));
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on well-framed events with arbitrary payloads", () => {
    const kinds = ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata", "other"];
    const event = fc.record({ event: fc.constantFrom(...kinds), payload: fc.jsonValue() });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), fc.boolean(), (list, includeUsage) => {
        const out = parseSse(feed({ ...streams.meta, includeUsage }, encodeEvents(list)));
        const done = out.indexOf("[DONE]");
        assert.ok(done === -1 || done === out.length - 1);
      }),
      { numRuns: 300 },
    );
  });

  it("survives a throwing header reader in error()", () => {
    const t = openAiToBedrock.response(streams.meta, false);
    const out = t.error(500, Buffer.from('{"message":"x"}'), () => {
      throw new Error("no headers");
    });
    assert.equal((JSON.parse(out.toString("utf8")) as { error: { message: string } }).error.message, "x");
  });
});

// ---- the mock Bedrock endpoint ----

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  chunks: Buffer[];
  complete: boolean;
}

/** Raw HTTP read: keeps the wire chunks and reports truncation (fetch hides both). */
function rawPost(url: string, body: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(url, { method: "POST", headers: { "content-type": "application/json" }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => undefined);
      res.on("close", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks, complete: res.complete }));
    });
    r.on("error", reject);
    r.end(body);
  });
}

describe("mock provider: Bedrock Converse", () => {
  let mock: MockProvider;
  const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  const url = (stream: boolean): string => `${mock.url}/model/${encodeURIComponent(MODEL)}/${stream ? "converse-stream" : "converse"}`;
  const tools = [
    { type: "function", function: { name: "top_song", parameters: { type: "object", properties: { sign: { type: "string" } } } } },
    { type: "function", function: { name: "other" } },
  ];

  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });
  beforeEach(() => mock.reset());

  async function call(body: JsonObject): Promise<{ answer: RawAnswer; translated: Buffer; meta: TranslationMeta; sent: Buffer }> {
    assert.equal(openAiToBedrock.check(body, target.model), undefined);
    const r = openAiToBedrock.request(body, target);
    const answer = await rawPost(url(r.stream), r.body);
    const t = openAiToBedrock.response(r.meta, r.stream);
    let translated: Buffer;
    if (answer.status !== 200) {
      translated = t.error(answer.status, Buffer.concat(answer.chunks), (n) => {
        const v = answer.headers[n];
        return Array.isArray(v) ? v[0] : v;
      });
    } else if (r.stream) {
      translated = Buffer.concat([...answer.chunks.map((c) => t.streamChunk(c, false)), t.streamChunk(Buffer.alloc(0), true)]);
    } else {
      translated = t.json(Buffer.concat(answer.chunks));
    }
    return { answer, translated, meta: r.meta, sent: r.body };
  }

  it("answers converse with deterministic text and usage", async () => {
    const { answer, translated, sent } = await call({ model: "claude", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "Hello there, how are you?" }] });
    assert.equal(answer.status, 200);
    const native = JSON.parse(Buffer.concat(answer.chunks).toString("utf8")) as { output: { message: { content: Array<{ text: string }> } }; stopReason: string; usage: { inputTokens: number } };
    assert.equal(native.output.message.content[0]?.text, "mock reply to Hello there, how are you?");
    assert.equal(native.stopReason, "end_turn");
    assert.equal(native.usage.inputTokens, Math.ceil(sent.toString("utf8").length / 4));
    const out = JSON.parse(translated.toString("utf8")) as { choices: Array<{ message: { content: string }; finish_reason: string }>; usage: { prompt_tokens: number; completion_tokens: number } };
    assert.equal(out.choices[0]?.message.content, "mock reply to Hello there, how are you?");
    assert.equal(out.choices[0]?.finish_reason, "stop");
    assert.deepEqual([out.usage.prompt_tokens, out.usage.completion_tokens], [native.usage.inputTokens, 8]);
    assert.equal(mock.requests[0]?.path, `/model/${encodeURIComponent(MODEL)}/converse`);
  });

  it("streams converse-stream as event stream frames that translate back to OpenAI chunks", async () => {
    const { answer, translated } = await call({ model: "claude", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 5 });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-type"], "application/vnd.amazon.eventstream");
    const frames = new EventStreamSplitter().push(Buffer.concat(answer.chunks));
    const types = frames.map((f) => stringHeader(f.headers, ":event-type"));
    assert.deepEqual(types, ["messageStart", ...Array<string>(5).fill("contentBlockDelta"), "contentBlockStop", "messageStop", "metadata"]);
    for (const f of frames) assert.equal(stringHeader(f.headers, ":message-type"), "event");
    const sse = parseSse(translated) as Array<Record<string, unknown> | "[DONE]">;
    const text = sse
      .flatMap((c) => (c === "[DONE]" ? [] : ((c["choices"] as Array<{ delta: { content?: string } }>) ?? [])))
      .map((ch) => ch.delta.content ?? "")
      .join("");
    assert.equal(text, "mock reply to Tell me");
    const finish = sse.find((c) => c !== "[DONE]" && (c["choices"] as Array<{ finish_reason: string | null }>)[0]?.finish_reason != null) as { choices: Array<{ finish_reason: string }> };
    assert.equal(finish.choices[0]?.finish_reason, "length");
    const usage = sse[sse.length - 2] as { choices: unknown[]; usage: { completion_tokens: number } };
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.completion_tokens, 5);
    assert.equal(sse[sse.length - 1], "[DONE]");
  });

  it("calls the first tool, and answers in text after a tool result", async () => {
    const ask = { model: "claude", messages: [{ role: "user", content: "What is the most popular song on WZPZ right now please tell me" }], tools };
    const { answer, translated } = await call(ask);
    const native = JSON.parse(Buffer.concat(answer.chunks).toString("utf8")) as { output: { message: { content: Array<{ toolUse: { toolUseId: string; name: string; input: unknown } }> } }; stopReason: string };
    const use = native.output.message.content[0]?.toolUse;
    assert.match(use?.toolUseId ?? "", /^tooluse_mock_\d+$/);
    assert.equal(use?.name, "top_song");
    assert.deepEqual(use?.input, { query: "What is the most popular song on WZPZ" });
    assert.equal(native.stopReason, "tool_use");
    const out = JSON.parse(translated.toString("utf8")) as { choices: Array<{ message: { content: null; tool_calls: Array<{ id: string; function: { name: string; arguments: string } }> }; finish_reason: string }> };
    const call0 = out.choices[0]?.message.tool_calls[0];
    assert.equal(call0?.id, use?.toolUseId);
    assert.deepEqual(JSON.parse(call0?.function.arguments ?? ""), use?.input);
    assert.equal(out.choices[0]?.finish_reason, "tool_calls");
    assert.equal(out.choices[0]?.message.content, null);

    const followUp = {
      ...ask,
      messages: [
        ...ask.messages,
        { role: "assistant", content: null, tool_calls: [{ id: call0?.id, type: "function", function: { name: "top_song", arguments: call0?.function.arguments } }] },
        { role: "tool", tool_call_id: call0?.id, content: "Elemental Hotel" },
      ],
    };
    const second = await call(followUp);
    const text = JSON.parse(second.translated.toString("utf8")) as { choices: Array<{ message: { content: string }; finish_reason: string }> };
    assert.equal(text.choices[0]?.finish_reason, "stop");
    assert.match(text.choices[0]?.message.content ?? "", /^mock reply to/);
  });

  it("streams a tool call as contentBlockStart + partial input deltas", async () => {
    const { answer, translated } = await call({ model: "claude", stream: true, messages: [{ role: "user", content: "find songs" }], tools, tool_choice: { type: "function", function: { name: "other" } } });
    const frames = new EventStreamSplitter().push(Buffer.concat(answer.chunks));
    assert.deepEqual(
      frames.map((f) => stringHeader(f.headers, ":event-type")),
      ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"],
    );
    const sse = parseSse(translated).filter((c): c is Record<string, unknown> => c !== "[DONE]");
    const calls = sse.flatMap((c) => ((c["choices"] as Array<{ delta: { tool_calls?: Array<{ id?: string; function: { name?: string; arguments: string } }> } }>)[0]?.delta.tool_calls ?? []));
    assert.equal(calls[0]?.function.name, "other");
    assert.deepEqual(JSON.parse(calls.map((c) => c.function.arguments).join("")), { query: "find songs" });
  });

  it("names the error type in x-amzn-errortype on forced failures", async () => {
    mock.failNext(1, 429);
    const { answer, translated } = await call({ model: "claude", messages: [{ role: "user", content: "hi" }] });
    assert.equal(answer.status, 429);
    assert.match(String(answer.headers["x-amzn-errortype"]), /^ThrottlingException:/);
    assert.deepEqual(JSON.parse(Buffer.concat(answer.chunks).toString("utf8")), { message: "mock forced failure (429)" });
    assert.deepEqual(JSON.parse(translated.toString("utf8")), { error: { message: "mock forced failure (429)", type: "rate_limit_error", param: null, code: "ThrottlingException" } });
  });

  it("refuses keys Converse does not know, and turns that do not alternate", async () => {
    const a = await rawPost(url(false), Buffer.from(JSON.stringify({ model: "x", messages: [{ role: "user", content: [{ text: "hi" }] }] })));
    assert.equal(a.status, 400);
    assert.match(String(a.headers["x-amzn-errortype"]), /^ValidationException:/);
    assert.match(Buffer.concat(a.chunks).toString("utf8"), /extraneous key \[model\]/);
    const b = await rawPost(url(false), Buffer.from(JSON.stringify({ messages: [{ role: "user", content: [{ text: "a" }] }, { role: "user", content: [{ text: "b" }] }] })));
    assert.equal(b.status, 400);
  });

  it("honours dropNextStream and truncateNextStream: the translated stream has no [DONE]", async () => {
    const body = { model: "claude", stream: true, messages: [{ role: "user", content: "one two three" }] };
    mock.dropNextStream(3);
    const dropped = await call(body);
    assert.equal(dropped.answer.complete, false);
    assert.equal(new EventStreamSplitter().push(Buffer.concat(dropped.answer.chunks)).length, 3);
    assert.ok(!parseSse(dropped.translated).includes("[DONE]"));

    mock.truncateNextStream(4);
    const truncated = await call(body);
    assert.equal(truncated.answer.complete, true);
    assert.equal(new EventStreamSplitter().push(Buffer.concat(truncated.answer.chunks)).length, 4);
    assert.ok(!parseSse(truncated.translated).includes("[DONE]"));
  });
});
