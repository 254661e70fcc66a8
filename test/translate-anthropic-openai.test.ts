import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { startMockProvider } from "../src/mock-provider/server";
import { anthropicToOpenAi } from "../src/translate/anthropic-to-openai";
import type { TranslationMeta } from "../src/translate/types";
import { UsageReader } from "../src/usage/usage-reader";

// ---- golden vectors ----

const FIXTURES = path.join(__dirname, "..", "..", "test", "fixtures", "translate", "anthropic-openai");

type Json = Record<string, unknown>;
interface Vector {
  name: string;
  kind: "request" | "json" | "stream" | "error";
  about: string;
  [key: string]: unknown;
}

const vectors: Vector[] = readdirSync(FIXTURES)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ ...(JSON.parse(readFileSync(path.join(FIXTURES, f), "utf8")) as Vector), name: f.replace(/\.json$/, "") }));
const ofKind = (kind: Vector["kind"]): Vector[] => vectors.filter((v) => v.kind === kind);

const META: TranslationMeta = { clientModel: "claude-sonnet-4-5", created: 1700000000, includeUsage: false };

/** A stream fixture's provider bytes: objects as data lines, strings as verbatim data, {sse} as raw SSE text. */
function providerStream(v: Vector): Buffer {
  const eol = v["crlf"] === true ? "\r\n" : "\n";
  let text = "";
  for (const item of v["input"] as unknown[]) {
    if (typeof item === "string") text += `data: ${item}${eol}${eol}`;
    else if (typeof (item as Json)["sse"] === "string") text += (item as Json)["sse"] as string;
    else text += `data: ${JSON.stringify(item)}${eol}${eol}`;
  }
  return Buffer.from(text);
}

interface Event {
  event: string | undefined;
  data: unknown;
}

/** Parses the translator's own output (LF only, one data line per event). */
function parseEvents(out: Buffer): Event[] {
  const text = out.toString("utf8");
  if (text === "") return [];
  assert.ok(text.endsWith("\n\n"), "output ends on an event boundary");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.length === 2 && lines[0]!.startsWith("event: ") ? lines[0]!.slice(7) : undefined;
      const data = lines[lines.length - 1]!;
      assert.ok(data.startsWith("data: "), `a data line: ${block}`);
      return { event, data: JSON.parse(data.slice(6)) as unknown };
    });
}

function translateStream(body: Buffer, cuts: number[] = [], meta: TranslationMeta = META): Buffer {
  const t = anthropicToOpenAi.response(meta, true);
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(t.streamChunk(body.subarray(at, p), false));
    at = p;
  }
  out.push(t.streamChunk(body.subarray(at), true));
  return Buffer.concat(out);
}

function readUsage(body: Buffer, streaming: boolean): ReturnType<UsageReader["report"]> {
  const reader = new UsageReader({ operation: "messages", streaming, stripUsageChunk: false });
  assert.equal(reader.push(body, true), undefined);
  return reader.report();
}

const TARGET = { model: "gpt-4o-mini", defaultMaxTokens: 4096, nowMs: 1700000000000 };

describe("anthropic -> openai: request golden vectors", () => {
  for (const v of ofKind("request")) {
    it(`${v.name}: ${v.about}`, () => {
      const input = v["input"] as Json;
      assert.equal(anthropicToOpenAi.check(input, "gpt-4o"), undefined);
      const expected = v["expected"] as Json;
      const out = anthropicToOpenAi.request(input, v["target"] as typeof TARGET);
      assert.deepEqual(JSON.parse(out.body.toString("utf8")), expected["body"]);
      assert.equal(out.stream, expected["stream"]);
      assert.deepEqual([...out.dropped].sort(), [...(expected["dropped"] as string[])].sort());
      assert.deepEqual(out.meta, expected["meta"]);
    });
  }

  it("is the messages -> chat.completions pair", () => {
    assert.equal(anthropicToOpenAi.from, "messages");
    assert.equal(anthropicToOpenAi.to, "chat.completions");
  });

  it("maps every tool_choice, and sends neither tool_choice nor parallel_tool_calls without tools", () => {
    const tools = [{ name: "f", input_schema: { type: "object" } }];
    const body = (extra: Json): Json => JSON.parse(anthropicToOpenAi.request({ model: "m", max_tokens: 5, messages: [{ role: "user", content: "hi" }], ...extra }, TARGET).body.toString()) as Json;
    assert.equal(body({ tools, tool_choice: { type: "auto" } })["tool_choice"], "auto");
    assert.equal(body({ tools, tool_choice: { type: "any" } })["tool_choice"], "required");
    assert.equal(body({ tools, tool_choice: { type: "none" } })["tool_choice"], "none");
    assert.deepEqual(body({ tools, tool_choice: { type: "tool", name: "f" } })["tool_choice"], { type: "function", function: { name: "f" } });
    assert.equal(body({ tools, tool_choice: { type: "auto", disable_parallel_tool_use: true } })["parallel_tool_calls"], false);
    assert.equal(body({ tools, tool_choice: { type: "auto", disable_parallel_tool_use: false } })["parallel_tool_calls"], undefined);
    const none = body({ tool_choice: { type: "any", disable_parallel_tool_use: true } });
    assert.equal(none["tool_choice"], undefined);
    assert.equal(none["parallel_tool_calls"], undefined);
    assert.equal(none["tools"], undefined);
  });

  it("sends OpenAI max_completion_tokens and other servers max_tokens; stream_options only where the server takes it", () => {
    const send = (target: Partial<typeof TARGET> & { provider?: "openai" | "azure-openai" | "openai-compatible"; streamUsage?: boolean }, stream = false): Json =>
      JSON.parse(anthropicToOpenAi.request({ model: "m", max_tokens: 7, stream, messages: [{ role: "user", content: "hi" }] }, { ...TARGET, ...target }).body.toString()) as Json;
    const cases: Array<[string | undefined, string]> = [
      ["openai", "max_completion_tokens"],
      ["azure-openai", "max_tokens"],
      ["openai-compatible", "max_tokens"],
      [undefined, "max_tokens"],
    ];
    for (const [provider, field] of cases) {
      const out = send(provider === undefined ? {} : { provider: provider as "openai" });
      assert.equal(out[field], 7, `${provider}: ${JSON.stringify(out)}`);
      assert.equal(out[field === "max_tokens" ? "max_completion_tokens" : "max_tokens"], undefined, String(provider));
    }
    assert.deepEqual(send({ provider: "openai-compatible" }, true)["stream_options"], { include_usage: true });
    assert.equal(send({ provider: "openai-compatible", streamUsage: false }, true)["stream_options"], undefined);
  });

  it("drops the fields OpenAI has no equivalent for, silently ignores cache_control", () => {
    const out = anthropicToOpenAi.request(
      {
        model: "m",
        max_tokens: 5,
        top_k: 5,
        thinking: { type: "enabled", budget_tokens: 2000 },
        service_tier: "auto",
        container: "c1",
        mcp_servers: [{ type: "url", url: "https://mcp.example.com", name: "x" }],
        messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }] }],
      },
      TARGET,
    );
    assert.deepEqual([...out.dropped].sort(), ["container", "mcp_servers", "service_tier", "thinking", "top_k"]);
    assert.deepEqual((JSON.parse(out.body.toString()) as Json)["messages"], [{ role: "user", content: "hi" }]);
  });
});

describe("anthropic -> openai: check()", () => {
  const user = (content: unknown): Json => ({ model: "m", max_tokens: 5, messages: [{ role: "user", content }] });
  const table: Array<[string, Json, RegExp | undefined]> = [
    ["plain text", user("hi"), undefined],
    ["base64 and url images", user([{ type: "image", source: { type: "base64", media_type: "image/png", data: "AA==" } }, { type: "image", source: { type: "url", url: "https://x/y.png" } }]), undefined],
    ["custom and untyped tools", { ...user("hi"), tools: [{ name: "a", input_schema: {} }, { type: "custom", name: "b", input_schema: {} }] }, undefined],
    ["thinking blocks in history", { model: "m", messages: [{ role: "assistant", content: [{ type: "thinking", thinking: "x", signature: "s" }, { type: "redacted_thinking", data: "x" }] }] }, undefined],
    ["a tool_result with text and image", user([{ type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: "a" }, { type: "image", source: { type: "url", url: "https://x" } }] }]), undefined],
    ["a PDF document", user([{ type: "document", source: { type: "base64", media_type: "application/pdf", data: "AA==" } }]), /Document \(PDF\)/],
    ["a document inside a tool_result", user([{ type: "tool_result", tool_use_id: "t", content: [{ type: "document", source: { type: "text", data: "x" } }] }]), /Document \(PDF\)/],
    ["the web_search server tool", { ...user("hi"), tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 5 }] }, /`web_search_20250305`/],
    ["Anthropic's bash tool", { ...user("hi"), tools: [{ type: "bash_20250124", name: "bash" }] }, /`bash_20250124`/],
    ["an image by file id", user([{ type: "image", source: { type: "file", file_id: "file_011" } }]), /`file`/],
    ["a search_result block", user([{ type: "search_result", source: "https://x", title: "t", content: [] }]), /`search_result`/],
    ["a server_tool_use block in history", { model: "m", messages: [{ role: "assistant", content: [{ type: "server_tool_use", id: "s", name: "web_search", input: {} }] }] }, /`server_tool_use`/],
  ];
  for (const [name, body, expected] of table) {
    it(`${expected === undefined ? "accepts" : "rejects"} ${name}`, () => {
      const problem = anthropicToOpenAi.check(body, "gpt-4o");
      if (expected === undefined) assert.equal(problem, undefined);
      else {
        assert.match(problem ?? "", expected);
        assert.ok(!/[{}]/.test(problem ?? ""), "a sentence, not a dump");
      }
    });
  }

  it("does not throw on odd shapes", () => {
    for (const body of [{}, { messages: "x" }, { messages: [null, 1, { content: [null, 1, "s"] }] }, { tools: "x" }, { tools: [null, 1] }]) {
      assert.doesNotThrow(() => anthropicToOpenAi.check(body, "gpt-4o"));
      assert.doesNotThrow(() => anthropicToOpenAi.request(body, TARGET));
    }
  });
});

describe("anthropic -> openai: JSON and error golden vectors", () => {
  for (const v of ofKind("json")) {
    it(`${v.name}: ${v.about}`, () => {
      const t = anthropicToOpenAi.response(META, false);
      assert.equal(t.contentType(false), "application/json");
      const out = t.json(Buffer.from(JSON.stringify(v["input"])));
      const expected = v["expected"] as Json;
      assert.deepEqual(JSON.parse(out.toString("utf8")), expected);
      // The router reads usage from this body: all prompt tokens, cached ones included.
      const usage = readUsage(out, false).usage;
      const raw = (v["input"] as Json)["usage"] as Json;
      assert.equal(usage?.inputTokens, raw["prompt_tokens"]);
      assert.equal(usage?.outputTokens, raw["completion_tokens"]);
    });
  }

  for (const v of ofKind("error")) {
    it(`${v.name}: ${v.about}`, () => {
      const t = anthropicToOpenAi.response(META, false);
      const status = v["status"] as number;
      const input = v["input"];
      const body = Buffer.from(typeof input === "string" ? input : JSON.stringify(input));
      const expected = v["expected"] as Json;
      assert.equal(t.status(status), expected["status"]);
      assert.deepEqual(JSON.parse(t.error(status, body, () => undefined).toString("utf8")), expected["body"]);
    });
  }

  it("answers api_error JSON for an unreadable 2xx body, and translates an error object sent with 200", () => {
    const t = anthropicToOpenAi.response(META, false);
    for (const bad of ["", "not json", "[]", "null", '{"object":"chat.completion"}']) {
      const out = JSON.parse(t.json(Buffer.from(bad)).toString()) as Json;
      assert.deepEqual(out, { type: "error", error: { type: "api_error", message: "The provider's answer could not be read or translated into this API." } }, bad);
    }
    const wrapped = JSON.parse(t.json(Buffer.from('{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}')).toString()) as Json;
    assert.deepEqual(wrapped, { type: "error", error: { type: "rate_limit_error", message: "quota" } });
  });

  it("maps stop to tool_use when the answer carries tool calls, keeps no-argument calls as {}", () => {
    const t = anthropicToOpenAi.response(META, false);
    const body = {
      id: "x",
      model: "llama3",
      choices: [{ index: 0, message: { role: "assistant", content: "", tool_calls: [{ id: "c", type: "function", function: { name: "now", arguments: "" } }] }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 4 },
    };
    const out = JSON.parse(t.json(Buffer.from(JSON.stringify(body))).toString()) as Json;
    assert.equal(out["stop_reason"], "tool_use");
    assert.deepEqual(out["content"], [{ type: "tool_use", id: "c", name: "now", input: {} }]);
  });
});

describe("anthropic -> openai: stream golden vectors", () => {
  for (const v of ofKind("stream")) {
    it(`${v.name}: ${v.about}`, () => {
      const out = translateStream(providerStream(v));
      const events = parseEvents(out);
      assert.deepEqual(events, v["expected"]);
      for (const e of events) assert.equal(e.event, (e.data as Json)["type"], "event name matches data.type");

      const report = readUsage(out, true);
      const want = v["usage"] as Json;
      assert.equal(report.terminal, want["terminal"]);
      if (want["errorSeen"] !== undefined) assert.equal(report.errorSeen, want["errorSeen"]);
      if (want["inputTokens"] === undefined) assert.equal(report.usage, undefined);
      else {
        assert.equal(report.usage?.inputTokens, want["inputTokens"]);
        assert.equal(report.usage?.outputTokens, want["outputTokens"]);
        assert.equal(report.usage?.cachedInputTokens, want["cachedInputTokens"]);
      }
    });
  }

  it("answers text/event-stream and keeps the status", () => {
    const t = anthropicToOpenAi.response(META, true);
    assert.match(t.contentType(true), /^text\/event-stream/);
    for (const s of [200, 400, 429, 500, 503]) assert.equal(t.status(s), s);
  });

  it("ends a finished stream whose [DONE] never came with message_stop", () => {
    const chunks = [
      { id: "a", model: "m", choices: [{ index: 0, delta: { content: "x" }, finish_reason: null }] },
      { id: "a", model: "m", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    ];
    const events = parseEvents(translateStream(Buffer.from(chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join(""))));
    assert.deepEqual(events.slice(-2).map((e) => e.event), ["message_delta", "message_stop"]);
  });

  it("answers a bare [DONE] with the invalid-answer error, and ignores what follows a finished message", () => {
    assert.deepEqual(parseEvents(translateStream(Buffer.from("data: [DONE]\n\n"))).map((e) => e.event), ["error"]);
    const t = anthropicToOpenAi.response(META, true);
    const text = providerStream(ofKind("stream").find((v) => v.name === "stream-text")!);
    assert.ok(t.streamChunk(text, false).length > 0);
    assert.equal(t.streamChunk(Buffer.from('data: {"choices":[{"index":0,"delta":{"content":"late"}}]}\n\n'), false).length, 0);
    assert.equal(t.streamChunk(Buffer.alloc(0), true).length, 0);
  });

  it("skips choices other than 0 and argument fragments of no known call", () => {
    const chunks = [
      { id: "a", model: "m", choices: [{ index: 1, delta: { content: "other" }, finish_reason: null }] },
      { id: "a", model: "m", choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: "{}" } }] }, finish_reason: null }] },
      { id: "a", model: "m", choices: [{ index: 0, delta: { content: "mine" }, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1 } },
    ];
    const events = parseEvents(translateStream(Buffer.from(chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join(""))));
    assert.deepEqual(
      events.map((e) => e.event),
      ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
    );
    assert.deepEqual((events[2]!.data as Json)["delta"], { type: "text_delta", text: "mine" });
  });

  it("gives the same output whatever the chunk boundaries (random byte splits, multi-byte UTF-8 included)", () => {
    const streams = ofKind("stream").map((v) => providerStream(v));
    const whole = streams.map((s) => translateStream(s));
    fc.assert(
      fc.property(fc.nat({ max: streams.length - 1 }), fc.array(fc.nat({ max: 4096 }), { maxLength: 40 }), (i, cuts) => {
        const body = streams[i]!;
        const split = translateStream(body, cuts.map((c) => c % (body.length + 1)));
        assert.ok(split.equals(whole[i]!), split.toString());
      }),
      { numRuns: 300 },
    );
    // And every single byte boundary of the UTF-8 vector at once.
    const utf8 = streams[ofKind("stream").findIndex((v) => v.name === "stream-utf8")]!;
    const everyByte = Array.from({ length: utf8.length }, (_, k) => k);
    assert.ok(translateStream(utf8, everyByte).equals(translateStream(utf8)));
  });
});

describe("anthropic -> openai: never throws", () => {
  it("json(), error() and streamChunk() take arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 100, max: 599 }), fc.array(fc.nat({ max: 512 }), { maxLength: 6 }), (bytes, status, cuts) => {
        const body = Buffer.from(bytes);
        const t = anthropicToOpenAi.response(META, false);
        JSON.parse(t.json(body).toString("utf8"));
        JSON.parse(t.error(status, body, () => undefined).toString("utf8"));
        translateStream(body, cuts);
        // The same bytes as a data line, and as a chunk's JSON values.
        translateStream(Buffer.concat([Buffer.from("data: "), body, Buffer.from("\n\n")]), cuts);
      }),
      { numRuns: 300 },
    );
  });

  it("streamChunk() takes arbitrary JSON chunks", () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 5 }), (values) => {
        const body = Buffer.from(values.map((v) => `data: ${JSON.stringify(v)}\n\n`).join("") + "data: [DONE]\n\n");
        parseEvents(translateStream(body));
      }),
      { numRuns: 300 },
    );
  });

  it("streamChunk() takes odd chunk shapes", () => {
    const odd = [
      { choices: [{ index: 0, delta: { content: 5, tool_calls: [null, { index: "x", function: null }, { id: 5 }, { id: "c", function: { arguments: 7 } }] } }] },
      { choices: "x", usage: { prompt_tokens: -5, completion_tokens: "3", prompt_tokens_details: { cached_tokens: 99 } } },
      { error: "plain string" },
    ];
    const body = Buffer.from(odd.map((c) => `data: ${JSON.stringify(c)}\n\n`).join(""));
    const events = parseEvents(translateStream(body));
    assert.equal(events[events.length - 1]!.event, "error");
  });
});

describe("anthropic -> openai: through the mock OpenAI provider", () => {
  it("an Anthropic tool request comes back as a tool_use turn, JSON and streamed, with usage the router reads", async () => {
    const mock = await startMockProvider();
    try {
      const request = {
        model: "claude-sonnet-4-5",
        max_tokens: 256,
        tools: [{ name: "search", description: "Search the web", input_schema: { type: "object", properties: { query: { type: "string" } } } }],
        messages: [{ role: "user", content: "find the tallest building in the world today please" }],
      };
      for (const stream of [false, true]) {
        const translated = anthropicToOpenAi.request({ ...request, stream }, TARGET);
        const res = await fetch(`${mock.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: translated.body });
        assert.equal(res.status, 200);
        const bytes = Buffer.from(await res.arrayBuffer());
        const t = anthropicToOpenAi.response(translated.meta, stream);
        const inputTokens = Math.ceil(translated.body.toString().length / 4);
        if (!stream) {
          const message = JSON.parse(t.json(bytes).toString()) as Json;
          assert.equal(message["stop_reason"], "tool_use");
          assert.deepEqual(message["content"], [{ type: "tool_use", id: "call_mock_1", name: "search", input: { query: "find the tallest building in the world today" } }]);
          assert.equal(readUsage(t.json(bytes), false).usage?.inputTokens, inputTokens);
        } else {
          const out = translateStream(bytes, [7, 100, 333], translated.meta);
          const events = parseEvents(out);
          const partial = events.filter((e) => e.event === "content_block_delta").map((e) => ((e.data as Json)["delta"] as Json)["partial_json"]).join("");
          // The mock quotes the first 8 words.
          assert.deepEqual(JSON.parse(partial), { query: "find the tallest building in the world today" });
          const delta = events.find((e) => e.event === "message_delta")!.data as Json;
          assert.equal((delta["delta"] as Json)["stop_reason"], "tool_use");
          const report = readUsage(out, true);
          assert.equal(report.terminal, true);
          assert.equal(report.usage?.inputTokens, inputTokens);
          assert.equal(report.usage?.outputTokens, 3);
        }
      }
      // With the tool's result as the last message, the mock answers in text.
      const followUp = anthropicToOpenAi.request(
        {
          ...request,
          messages: [
            ...request.messages,
            { role: "assistant", content: [{ type: "tool_use", id: "call_mock_1", name: "search", input: { query: "tallest" } }] },
            { role: "user", content: [{ type: "tool_result", tool_use_id: "call_mock_1", content: "Burj Khalifa" }] },
          ],
        },
        TARGET,
      );
      const res = await fetch(`${mock.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: followUp.body });
      const message = JSON.parse(anthropicToOpenAi.response(followUp.meta, false).json(Buffer.from(await res.arrayBuffer())).toString()) as Json;
      assert.equal(message["stop_reason"], "end_turn");
      assert.equal((message["content"] as Json[])[0]!["type"], "text");
    } finally {
      await mock.close();
    }
  });
});
