import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { JsonObject } from "../src/api/request-body";
import { openAiToAnthropic } from "../src/translate/openai-to-anthropic";
import type { TranslationMeta, TranslationTarget } from "../src/translate/types";
import { UsageReader } from "../src/usage/usage-reader";
import { REPO_ROOT } from "./support/service";

// ---- golden vectors ----

interface SseEvent {
  event?: string;
  data: unknown;
}

interface Vector {
  description: string;
  target?: TranslationTarget;
  request?: JsonObject;
  expectedRequest?: { body: JsonObject; stream: boolean; dropped: string[]; meta: TranslationMeta };
  meta: TranslationMeta;
  response?: unknown;
  expectedResponse?: unknown;
  stream?: SseEvent[];
  /** OpenAI chunks, "[DONE]" for the terminal line. */
  expectedStream?: unknown[];
  errors?: Array<{ status: number; body: string; expectedStatus: number; expected: unknown }>;
}

const FIXTURES = path.join(REPO_ROOT, "test/fixtures/translate/openai-anthropic");
const VECTORS: Array<[string, Vector]> = readdirSync(FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => [f, JSON.parse(readFileSync(path.join(FIXTURES, f), "utf8")) as Vector]);

/**
 * Events as Anthropic sends them: compact JSON on one data line. `spread` pretty-prints the JSON
 * over several data lines instead, which the translator cannot read on its fast path for deltas.
 */
function anthropicSse(events: SseEvent[], spread = false): Buffer {
  const data = (d: unknown): string => (spread ? JSON.stringify(d, null, 1).split("\n").map((l) => `data: ${l}\n`).join("") : `data: ${JSON.stringify(d)}\n`);
  return Buffer.from(events.map((e) => `${e.event === undefined ? "" : `event: ${e.event}\n`}${data(e.data)}\n`).join(""));
}

function openAiSse(chunks: unknown[]): string {
  return chunks.map((c) => `data: ${c === "[DONE]" ? c : JSON.stringify(c)}\n\n`).join("");
}

/** Feeds `body` cut at `cuts` (stream offsets), then an empty end chunk, and joins what comes out. */
function translateStream(meta: TranslationMeta, body: Buffer, cuts: number[] = []): Buffer {
  const t = openAiToAnthropic.response(meta, true);
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of [...points, body.length]) {
    out.push(t.streamChunk(body.subarray(at, p), false));
    at = p;
  }
  out.push(t.streamChunk(Buffer.alloc(0), true));
  return Buffer.concat(out);
}

const TARGET: TranslationTarget = { model: "claude-sonnet-4-20250514", defaultMaxTokens: 4096, nowMs: 1_700_000_000_123 };
const META: TranslationMeta = { clientModel: "gpt-4o", created: 1_700_000_000, includeUsage: false };

function translate(body: JsonObject, target: TranslationTarget = TARGET): { body: Record<string, unknown>; dropped: string[]; meta: TranslationMeta } {
  assert.equal(openAiToAnthropic.check(body, "claude-sonnet-4-5"), undefined);
  const r = openAiToAnthropic.request(body, target);
  return { body: JSON.parse(r.body.toString("utf8")) as Record<string, unknown>, dropped: r.dropped, meta: r.meta };
}

describe("openai -> anthropic golden vectors", () => {
  for (const [file, v] of VECTORS) {
    describe(file, () => {
      if (v.request !== undefined && v.expectedRequest !== undefined) {
        const request = v.request;
        const expected = v.expectedRequest;
        it("translates the request", () => {
          assert.equal(openAiToAnthropic.check(request, "claude-sonnet-4-5"), undefined);
          const r = openAiToAnthropic.request(request, v.target ?? TARGET);
          assert.deepEqual(JSON.parse(r.body.toString("utf8")), expected.body);
          assert.equal(r.stream, expected.stream);
          assert.deepEqual([...r.dropped].sort(), expected.dropped);
          assert.deepEqual(r.meta, expected.meta);
        });
      }
      if (v.response !== undefined) {
        it("translates the JSON answer", () => {
          const t = openAiToAnthropic.response(v.meta, false);
          assert.equal(t.contentType(false), "application/json");
          assert.deepEqual(JSON.parse(t.json(Buffer.from(JSON.stringify(v.response))).toString("utf8")), v.expectedResponse);
        });
      }
      if (v.stream !== undefined && v.expectedStream !== undefined) {
        const body = anthropicSse(v.stream);
        const expected = openAiSse(v.expectedStream);
        it("translates the stream (whole, and one byte at a time)", () => {
          assert.equal(translateStream(v.meta, body).toString("utf8"), expected);
          const everyByte = Array.from({ length: body.length }, (_, i) => i);
          assert.equal(translateStream(v.meta, body, everyByte).toString("utf8"), expected);
        });
        it("translates the stream the same when its JSON is not in Anthropic's compact form", () => {
          assert.equal(translateStream(v.meta, anthropicSse(v.stream!, true)).toString("utf8"), expected);
        });
        it("gives the same bytes however the stream is split", () => {
          const whole = translateStream(v.meta, body);
          fc.assert(
            fc.property(fc.array(fc.integer({ min: 1, max: body.length - 1 }), { maxLength: 40 }), (cuts) => {
              assert.ok(translateStream(v.meta, body, cuts).equals(whole));
            }),
            { numRuns: 300 },
          );
        });
      }
      for (const e of v.errors ?? []) {
        it(`translates an HTTP ${e.status} error body`, () => {
          const t = openAiToAnthropic.response(v.meta, false);
          assert.equal(t.status(e.status), e.expectedStatus);
          assert.deepEqual(JSON.parse(t.error(e.status, Buffer.from(e.body), () => undefined).toString("utf8")), e.expected);
        });
      }
    });
  }

  it("has the vectors the suite is meant to cover", () => {
    assert.deepEqual(
      VECTORS.map(([f]) => f),
      ["stream-error.json", "stream-truncated.json", "text.json", "tool-use.json"],
    );
  });
});

// ---- check() ----

const USER = [{ role: "user", content: "hi" }];

describe("openai -> anthropic check()", () => {
  const accepted: Array<[string, JsonObject]> = [
    ["a plain request", { model: "m", messages: USER }],
    ["n: 1, logprobs: false, top_logprobs: 0", { model: "m", messages: USER, n: 1, logprobs: false, top_logprobs: 0 }],
    ["null optional fields", { model: "m", messages: USER, n: null, audio: null, response_format: null, tools: null, tool_choice: null }],
    ["response_format text", { model: "m", messages: USER, response_format: { type: "text" } }],
    ["modalities [text]", { model: "m", messages: USER, modalities: ["text"] }],
    ["a named tool_choice", { model: "m", messages: USER, tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "f" } } }],
    ["empty tool arguments", { model: "m", messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "" } }] }] }],
    ["a PDF file part", { model: "m", messages: [{ role: "user", content: [{ type: "file", file: { filename: "a.pdf", file_data: "data:application/pdf;base64,JVBERi0=" } }] }] }],
  ];
  for (const [name, body] of accepted) it(`accepts ${name}`, () => assert.equal(openAiToAnthropic.check(body, "claude-sonnet-4-5"), undefined));

  const rejected: Array<[string, JsonObject, RegExp]> = [
    ["n > 1", { model: "m", messages: USER, n: 2 }, /`n`/],
    ["logprobs", { model: "m", messages: USER, logprobs: true }, /`logprobs`/],
    ["top_logprobs", { model: "m", messages: USER, top_logprobs: 3 }, /`top_logprobs`/],
    ["response_format json_object", { model: "m", messages: USER, response_format: { type: "json_object" } }, /`response_format`/],
    ["response_format json_schema", { model: "m", messages: USER, response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } } }, /`response_format`/],
    ["audio output", { model: "m", messages: USER, audio: { voice: "alloy", format: "wav" } }, /`audio`/],
    ["audio modality", { model: "m", messages: USER, modalities: ["text", "audio"] }, /`modalities`/],
    ["web search", { model: "m", messages: USER, web_search_options: {} }, /`web_search_options`/],
    ["deprecated functions", { model: "m", messages: USER, functions: [{ name: "f" }] }, /`functions`/],
    ["a custom tool", { model: "m", messages: USER, tools: [{ type: "custom", custom: { name: "x" } }] }, /tools\[0\].*"function"/],
    ["a tool without a name", { model: "m", messages: USER, tools: [{ type: "function", function: {} }] }, /tools\[0\]\.function\.name/],
    ["allowed_tools tool_choice", { model: "m", messages: USER, tool_choice: { type: "allowed_tools", allowed_tools: {} } }, /`tool_choice`/],
    ["unparseable tool arguments", { model: "m", messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{oops" } }] }] }, /messages\[0\]\.tool_calls\[0\]\.function\.arguments/],
    ["non-object tool arguments", { model: "m", messages: [{ role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "[1]" } }] }] }, /arguments must be a JSON object/],
    ["a function-role message", { model: "m", messages: [{ role: "function", name: "f", content: "x" }] }, /"function" role/],
    ["an unknown role", { model: "m", messages: [{ role: "critic", content: "x" }] }, /messages\[0\]\.role/],
    ["an input_audio part", { model: "m", messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "", format: "wav" } }] }] }, /"input_audio"/],
    ["an image in a system message", { model: "m", messages: [{ role: "system", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }] }, /messages\[0\]\.content\[0\]/],
    ["a file_id", { model: "m", messages: [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }] }, /file_id/],
    ["an ftp image", { model: "m", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "ftp://x/y.png" } }] }] }, /image_url\.url/],
    ["a tool message without tool_call_id", { model: "m", messages: [{ role: "tool", content: "x" }] }, /tool_call_id/],
    ["messages not an array", { model: "m", messages: "hi" }, /`messages`/],
  ];
  for (const [name, body, re] of rejected) {
    it(`rejects ${name}`, () => {
      const why = openAiToAnthropic.check(body, "claude-sonnet-4-5");
      assert.ok(why !== undefined, "rejected");
      assert.match(why, re);
      assert.match(why, /\.$/, "a sentence");
    });
  }
});

// ---- request details ----

describe("openai -> anthropic request", () => {
  it("uses the target's default max_tokens, prefers max_completion_tokens, and maps the target model", () => {
    assert.equal(translate({ model: "gpt-4o", messages: USER }).body["max_tokens"], 4096);
    assert.equal(translate({ model: "gpt-4o", messages: USER, max_tokens: 10, max_completion_tokens: 20 }).body["max_tokens"], 20);
    const r = translate({ model: "gpt-4o", messages: USER });
    assert.equal(r.body["model"], "claude-sonnet-4-20250514");
    assert.equal(r.meta.clientModel, "gpt-4o");
    assert.equal(r.meta.created, 1_700_000_000);
  });

  it("clamps temperature into Anthropic's 0..1 and keeps values inside it", () => {
    assert.equal(translate({ model: "m", messages: USER, temperature: 2 }).body["temperature"], 1);
    assert.equal(translate({ model: "m", messages: USER, temperature: 0.3 }).body["temperature"], 0.3);
    assert.equal(translate({ model: "m", messages: USER, temperature: 0 }).body["temperature"], 0);
  });

  it("maps every tool_choice form", () => {
    const tools = [{ type: "function", function: { name: "f", parameters: { type: "object" } } }];
    const choice = (extra: JsonObject): unknown => translate({ model: "m", messages: USER, tools, ...extra }).body["tool_choice"];
    assert.deepEqual(choice({ tool_choice: "auto" }), { type: "auto" });
    assert.deepEqual(choice({ tool_choice: "required" }), { type: "any" });
    assert.deepEqual(choice({ tool_choice: "none" }), { type: "none" });
    assert.deepEqual(choice({ tool_choice: "none", parallel_tool_calls: false }), { type: "none" });
    assert.deepEqual(choice({ tool_choice: { type: "function", function: { name: "f" } } }), { type: "tool", name: "f" });
    assert.deepEqual(choice({ parallel_tool_calls: false }), { type: "auto", disable_parallel_tool_use: true });
    assert.equal(choice({}), undefined);
    assert.equal(choice({ parallel_tool_calls: true }), undefined);
    // Without tools Anthropic would reject a tool_choice, and there is nothing to choose from.
    assert.equal(translate({ model: "m", messages: USER, tool_choice: "auto" }).body["tool_choice"], undefined);
  });

  it("reports unknown fields, strict tools and stream options it drops, and honours include_usage", () => {
    const r = openAiToAnthropic.request(
      {
        model: "m",
        messages: USER,
        stream: true,
        stream_options: { include_usage: true, include_obfuscation: false },
        tools: [{ type: "function", function: { name: "f", strict: true } }],
        top_k: 5,
        seed: null,
      },
      TARGET,
    );
    assert.deepEqual([...r.dropped].sort(), ["stream_options.include_obfuscation", "tools[].function.strict", "top_k"]);
    assert.equal(r.stream, true);
    assert.equal(r.meta.includeUsage, true);
    const body = JSON.parse(r.body.toString()) as Record<string, unknown>;
    assert.equal(body["stream_options"], undefined);
    assert.equal(body["top_k"], undefined);
    assert.equal(openAiToAnthropic.request({ model: "m", messages: USER, stream_options: { include_usage: true } }, TARGET).meta.includeUsage, false, "only for streams");
  });

  it("merges same-role turns, skips empty content and maps stop arrays, PDFs and safety_identifier", () => {
    const body = translate({
      model: "m",
      safety_identifier: "hash-1",
      user: "ignored",
      stop: ["END", "STOP"],
      messages: [
        { role: "user", content: "" },
        { role: "user", content: "a" },
        { role: "assistant", content: "" },
        { role: "assistant", content: [{ type: "text", text: "b" }, { type: "refusal", refusal: "no" }] },
        { role: "assistant", content: "c" },
        { role: "user", content: [{ type: "file", file: { file_data: "data:application/pdf;base64,JVBERi0=" } }] },
        { role: "system", content: "late system" },
      ],
    }).body;
    assert.deepEqual(body["messages"], [
      { role: "user", content: "a" },
      { role: "assistant", content: [{ type: "text", text: "b" }, { type: "text", text: "no" }, { type: "text", text: "c" }] },
      { role: "user", content: [{ type: "document", source: { type: "base64", media_type: "application/pdf", data: "JVBERi0=" } }] },
    ]);
    assert.equal(body["system"], "late system");
    assert.deepEqual(body["stop_sequences"], ["END", "STOP"]);
    assert.deepEqual(body["metadata"], { user_id: "hash-1" });
    assert.equal(body["stream"], undefined);
  });

  it("keeps assistant text next to its tool calls, and empty arguments as an empty input", () => {
    const body = translate({
      model: "m",
      messages: [
        { role: "user", content: "go" },
        { role: "assistant", content: "Let me look.", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "" } }] },
        { role: "tool", tool_call_id: "c1", content: "" },
      ],
    }).body;
    assert.deepEqual(body["messages"], [
      { role: "user", content: "go" },
      { role: "assistant", content: [{ type: "text", text: "Let me look." }, { type: "tool_use", id: "c1", name: "f", input: {} }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "c1" }] },
    ]);
  });
});

// ---- response details ----

function sse(events: SseEvent[]): Buffer {
  return anthropicSse(events);
}

describe("openai -> anthropic response", () => {
  it("maps statuses and content types", () => {
    const t = openAiToAnthropic.response(META, true);
    assert.equal(t.status(529), 503);
    assert.equal(t.status(429), 429);
    assert.equal(t.status(200), 200);
    assert.match(t.contentType(true), /^text\/event-stream/);
  });

  it("maps stop reasons to finish reasons", () => {
    const reasons: Array<[string, string]> = [["end_turn", "stop"], ["stop_sequence", "stop"], ["max_tokens", "length"], ["tool_use", "tool_calls"], ["refusal", "content_filter"], ["pause_turn", "stop"]];
    for (const [stop, finish] of reasons) {
      const msg = { id: "msg_1", type: "message", role: "assistant", model: "c", content: [], stop_reason: stop, usage: { input_tokens: 1, output_tokens: 1 } };
      const out = JSON.parse(openAiToAnthropic.response(META, false).json(Buffer.from(JSON.stringify(msg))).toString()) as {
        choices: Array<{ finish_reason: string; message: { content: unknown } }>;
      };
      assert.equal(out.choices[0]?.finish_reason, finish, stop);
      assert.equal(out.choices[0]?.message.content, null, "no text is null content");
    }
  });

  it("answers an unreadable JSON body with an OpenAI server error instead of throwing", () => {
    for (const body of ["", "not json", "[1,2]", `{"type":"message"}`, `{"type":"message","content":"x"}`]) {
      const out = JSON.parse(openAiToAnthropic.response(META, false).json(Buffer.from(body)).toString()) as { error: { type: string; message: string; code: string } };
      assert.equal(out.error.type, "server_error", body);
      assert.equal(out.error.code, "upstream_response_invalid");
      assert.match(out.error.message, /could not be read/);
    }
  });

  it("ends the stream with an upstream_response_invalid chunk on an unreadable event, and ignores what follows", () => {
    const body = Buffer.concat([
      sse([{ event: "message_start", data: { type: "message_start", message: { id: "msg_x", model: "c", usage: { input_tokens: 1 } } } }]),
      Buffer.from("event: content_block_delta\ndata: {broken\n\n"),
      sse([{ event: "message_stop", data: { type: "message_stop" } }]),
    ]);
    const lines = translateStream(META, body).toString().split("\n\n").filter((l) => l !== "");
    assert.equal(lines.length, 2);
    const err = JSON.parse(lines[1]!.slice("data: ".length)) as { error: { code: string; type: string } };
    assert.deepEqual([err.error.code, err.error.type], ["upstream_response_invalid", "server_error"]);
  });

  it("skips ping and unknown event types without decoding them", () => {
    const t = openAiToAnthropic.response(META, true);
    const out = t.streamChunk(Buffer.from("event: ping\ndata: {not json\n\nevent: some_future_event\ndata: {also not json\n\n"), false);
    assert.equal(out.length, 0);
    assert.equal(t.streamChunk(sse([{ event: "message_stop", data: { type: "message_stop" } }]), true).toString(), "data: [DONE]\n\n");
  });

  it("produces streams and bodies the usage reader accounts for", () => {
    const [, tools] = VECTORS.find(([f]) => f === "tool-use.json")!;
    const out = translateStream(tools.meta, anthropicSse(tools.stream!));
    const reader = new UsageReader({ operation: "chat.completions", streaming: true, stripUsageChunk: false });
    assert.equal(reader.push(out, true), undefined);
    const report = reader.report();
    assert.equal(report.terminal, true);
    assert.equal(report.errorSeen, false);
    assert.equal(report.model, "claude-sonnet-4-20250514");
    assert.deepEqual(report.usage, { inputTokens: 472, outputTokens: 89, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0 });

    const stripping = new UsageReader({ operation: "chat.completions", streaming: true, stripUsageChunk: true });
    const stripped = stripping.push(out, true);
    assert.ok(stripped !== undefined && !stripped.toString().includes('"choices":[]'), "the usage chunk can be stripped");

    const [, text] = VECTORS.find(([f]) => f === "text.json")!;
    const json = openAiToAnthropic.response(text.meta, false).json(Buffer.from(JSON.stringify(text.response)));
    const jsonReader = new UsageReader({ operation: "chat.completions", streaming: false, stripUsageChunk: false });
    jsonReader.push(json, true);
    assert.deepEqual(jsonReader.report().usage, { inputTokens: 2215, outputTokens: 503, cachedInputTokens: 100, cacheWriteInputTokens: 0, reasoningTokens: 0 });

    const [, failed] = VECTORS.find(([f]) => f === "stream-error.json")!;
    const errReader = new UsageReader({ operation: "chat.completions", streaming: true, stripUsageChunk: false });
    errReader.push(translateStream(failed.meta, anthropicSse(failed.stream!)), true);
    assert.equal(errReader.report().errorSeen, true);
    assert.equal(errReader.report().terminal, false);
  });
});

// ---- robustness ----

describe("openai -> anthropic never throws on provider bytes", () => {
  it("json() and error() return OpenAI JSON for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 400, max: 599 }), (bytes, status) => {
        const t = openAiToAnthropic.response(META, false);
        const json = JSON.parse(t.json(Buffer.from(bytes)).toString()) as Record<string, unknown>;
        assert.ok(typeof json === "object" && json !== null);
        const err = JSON.parse(t.error(status, Buffer.from(bytes), () => undefined).toString()) as { error: { message: unknown } };
        assert.equal(typeof err.error.message, "string");
      }),
      { numRuns: 300 },
    );
  });

  it("json() survives well-formed JSON of the wrong shape", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const t = openAiToAnthropic.response(META, false);
        JSON.parse(t.json(Buffer.from(JSON.stringify(value) ?? "null")).toString());
        JSON.parse(t.json(Buffer.from(JSON.stringify({ type: "message", content: [value], usage: value, stop_reason: value }))).toString());
        JSON.parse(t.error(500, Buffer.from(JSON.stringify({ type: "error", error: value })), () => undefined).toString());
      }),
      { numRuns: 300 },
    );
  });

  it("streamChunk() takes arbitrary bytes and arbitrary events", () => {
    const eventTypes = ["message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop", "error", "ping", "message"];
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 }),
        fc.array(fc.record({ event: fc.constantFrom(...eventTypes), data: fc.jsonValue() }), { maxLength: 6 }),
        (chunks, events) => {
          const t = openAiToAnthropic.response({ ...META, includeUsage: true }, true);
          for (const c of chunks) assert.ok(Buffer.isBuffer(t.streamChunk(Buffer.from(c), false)));
          assert.ok(Buffer.isBuffer(t.streamChunk(sse(events), true)));
          const t2 = openAiToAnthropic.response(META, true);
          t2.streamChunk(sse(events.map((e) => ({ event: e.event, data: { type: e.event, index: 0, message: e.data, content_block: e.data, delta: e.data, error: e.data } }))), true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
