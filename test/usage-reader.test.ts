import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Operation } from "../src/api/operations";
import { UsageReader, type UsageReaderOptions, type UsageReport as FullReport } from "../src/usage/usage-reader";

/** Reports compared without `model` (checked on its own in "the answer's model"). */
type UsageReport = Omit<FullReport, "model">;
import { type Price, type Usage, costNanoUsd } from "../src/usage/usage";

// ---- building SSE bodies ----

type SseEvent = { event?: string; data: unknown };
interface Framing {
  eol: "\n" | "\r\n" | "\r";
  /** "data:" instead of "data: ". */
  tight?: boolean;
  /** A comment line before every event, and one comment-only block up front. */
  comments?: boolean;
  /** JSON pretty-printed over several data lines (the data lines join back with \n). */
  multiline?: boolean;
}

function render(e: SseEvent, f: Framing): string {
  const sp = f.tight ? "" : " ";
  const text = typeof e.data === "string" ? e.data : JSON.stringify(e.data, null, f.multiline ? 1 : undefined);
  let out = f.comments ? `: keep-alive${f.eol}` : "";
  if (e.event !== undefined) out += `event:${sp}${e.event}${f.eol}`;
  for (const line of text.split("\n")) out += `data:${sp}${line}${f.eol}`;
  return out + f.eol;
}

function sse(events: SseEvent[], f: Framing = { eol: "\n" }): Buffer {
  return Buffer.from((f.comments ? `: hello${f.eol}${f.eol}` : "") + events.map((e) => render(e, f)).join(""));
}

const FRAMINGS: Array<[string, Framing]> = [
  ["lf", { eol: "\n" }],
  ["crlf", { eol: "\r\n" }],
  ["cr", { eol: "\r" }],
  ["tight crlf with comments", { eol: "\r\n", tight: true, comments: true }],
  ["multi-line data", { eol: "\n", multiline: true }],
  ["multi-line data, cr, comments", { eol: "\r", multiline: true, comments: true }],
];

// ---- feeding ----

interface Run {
  report: UsageReport;
  model: string | undefined;
  forwarded: Buffer;
  returns: Array<Buffer | undefined>;
}

function run(opts: UsageReaderOptions, body: Buffer, cuts: number[] = [], emptyEnd = false): Run {
  const reader = new UsageReader(opts);
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const p of [...points, body.length]) {
    pieces.push(body.subarray(at, p));
    at = p;
  }
  if (emptyEnd) pieces.push(Buffer.alloc(0));
  const returns: Array<Buffer | undefined> = [];
  const out: Buffer[] = [];
  pieces.forEach((piece, i) => {
    const r = reader.push(piece, i === pieces.length - 1);
    returns.push(r);
    out.push(r ?? piece);
  });
  const { model, ...rest } = reader.report();
  return { report: rest, model, forwarded: Buffer.concat(out), returns };
}

const streamOf = (operation: Operation, stripUsageChunk = false): UsageReaderOptions => ({ operation, streaming: true, stripUsageChunk });
const jsonOf = (operation: Operation): UsageReaderOptions => ({ operation, streaming: false, stripUsageChunk: false });

function usage(inputTokens: number, outputTokens: number, cachedInputTokens = 0, cacheWriteInputTokens = 0, reasoningTokens = 0): Usage {
  return { inputTokens, outputTokens, cachedInputTokens, cacheWriteInputTokens, reasoningTokens };
}

function report(u: Usage | undefined, terminal: boolean, estimatedOutputTokens: number, inputTokensSeen: number | undefined, errorSeen = false): UsageReport {
  return { usage: u, terminal, estimatedOutputTokens, inputTokensSeen, errorSeen };
}

// ---- golden streams, written from the providers' documented shapes ----

const chatChunk = (choices: unknown[], usageObj: unknown = null): SseEvent => ({
  data: { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1700000000, model: "gpt-4o-2024-08-06", system_fingerprint: "fp_1", choices, usage: usageObj },
});
const chatDelta = (delta: unknown, finish: string | null = null): SseEvent => chatChunk([{ index: 0, delta, logprobs: null, finish_reason: finish }]);
const CHAT_USAGE = chatChunk([], {
  prompt_tokens: 2006,
  completion_tokens: 300,
  total_tokens: 2306,
  prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 192, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
});
// "Hello" (5) + ", wörld 日本語 🙂" (14 UTF-16 units, 3- and 4-byte UTF-8 characters) = 19 chars over 2 deltas.
const CHAT_CONTENT = [chatDelta({ role: "assistant", content: "" }), chatDelta({ content: "Hello" }), chatDelta({ content: ", wörld 日本語 🙂" }), chatDelta({}, "stop")];
const CHAT = [...CHAT_CONTENT, CHAT_USAGE, { data: "[DONE]" }];

// Tool-call arguments (7 + 9 + 2 chars) and a refusal (8): 26 chars over 4 deltas.
const TOOL_CONTENT = [
  chatDelta({ role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "weather", arguments: "" } }] }),
  chatDelta({ tool_calls: [{ index: 0, function: { arguments: '{"city"' } }] }),
  chatDelta({ tool_calls: [{ index: 0, function: { arguments: ': "Paris"' } }] }),
  chatDelta({ tool_calls: [{ index: 0, function: { arguments: "}\n" } }] }),
  chatDelta({ refusal: "I cannot" }),
  chatDelta({}, "tool_calls"),
];
const TOOL_USAGE = chatChunk([], { prompt_tokens: 80, completion_tokens: 20, total_tokens: 100 });
const TOOLS = [...TOOL_CONTENT, TOOL_USAGE, { data: "[DONE]" }];

const cmplChunk = (text: string, finish: string | null = null): SseEvent => ({
  data: { id: "cmpl-1", object: "text_completion", created: 1700000000, model: "gpt-3.5-turbo-instruct", choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] },
});
const CMPL_CONTENT = [cmplChunk("Once"), cmplChunk(" upon"), cmplChunk(" a time"), cmplChunk("", "length")];
const CMPL_USAGE: SseEvent = {
  data: { id: "cmpl-1", object: "text_completion", created: 1700000000, model: "gpt-3.5-turbo-instruct", choices: [], usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } },
};
const CMPL = [...CMPL_CONTENT, CMPL_USAGE, { data: "[DONE]" }];

const respEvent = (type: string, body: Record<string, unknown>): SseEvent => ({ event: type, data: { type, ...body } });
const RESPONSE_USAGE = {
  input_tokens: 5200,
  input_tokens_details: { cached_tokens: 4096 },
  output_tokens: 900,
  output_tokens_details: { reasoning_tokens: 640 },
  total_tokens: 6100,
};
const response = (status: string, usageObj: unknown) => ({ id: "resp_1", object: "response", created_at: 1700000000, status, model: "o4-mini", output: [], usage: usageObj });
const RESPONSES_BODY = (final: string, status: string): SseEvent[] => [
  respEvent("response.created", { sequence_number: 0, response: response("in_progress", null) }),
  respEvent("response.in_progress", { sequence_number: 1, response: response("in_progress", null) }),
  respEvent("response.output_text.delta", { sequence_number: 2, item_id: "msg_1", output_index: 0, content_index: 0, delta: "Bonjour" }),
  respEvent("response.output_text.delta", { sequence_number: 3, item_id: "msg_1", output_index: 0, content_index: 0, delta: " à tous" }),
  respEvent("response.function_call_arguments.delta", { sequence_number: 4, item_id: "fc_1", output_index: 1, delta: '{"x":1}' }),
  // .done events repeat the whole text: not output to count again.
  respEvent("response.output_text.done", { sequence_number: 5, item_id: "msg_1", output_index: 0, content_index: 0, text: "Bonjour à tous" }),
  respEvent(final, { sequence_number: 6, response: response(status, RESPONSE_USAGE) }),
];
const RESPONSES = RESPONSES_BODY("response.completed", "completed");

const anth = (type: string, body: Record<string, unknown> = {}): SseEvent => ({ event: type, data: { type, ...body } });
const ANTHROPIC_START = anth("message_start", {
  message: {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5",
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 12, cache_creation_input_tokens: 2048, cache_read_input_tokens: 8192, output_tokens: 1 },
  },
});
const ANTHROPIC_CONTENT = [
  anth("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "", signature: "" } }),
  anth("ping"),
  anth("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "Let me think" } }),
  anth("content_block_delta", { index: 0, delta: { type: "signature_delta", signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds" } }),
  anth("content_block_stop", { index: 0 }),
  anth("content_block_start", { index: 1, content_block: { type: "text", text: "" } }),
  anth("content_block_delta", { index: 1, delta: { type: "text_delta", text: "Hi there" } }),
  anth("content_block_stop", { index: 1 }),
  anth("content_block_start", { index: 2, content_block: { type: "tool_use", id: "toolu_1", name: "search", input: {} } }),
  anth("content_block_delta", { index: 2, delta: { type: "input_json_delta", partial_json: '{"q": "x"}' } }),
  anth("content_block_stop", { index: 2 }),
];
const anthropicStream = (deltaUsage: Record<string, unknown>): SseEvent[] => [
  ANTHROPIC_START,
  ...ANTHROPIC_CONTENT,
  anth("message_delta", { delta: { stop_reason: "tool_use", stop_sequence: null }, usage: deltaUsage }),
  anth("message_stop"),
];
const ANTHROPIC = anthropicStream({ output_tokens: 87 });
// Newer API versions repeat the input counts in message_delta; nulls do not erase what came before.
const ANTHROPIC_NEWER = anthropicStream({ input_tokens: 15, cache_creation_input_tokens: null, cache_read_input_tokens: 8192, output_tokens: 90, server_tool_use: { web_search_requests: 0 } });

// The Anthropic stream's output: "Let me think" 12, "Hi there" 8, '{"q": "x"}' 10 = 30 chars over 3
// deltas (a signature_delta is not output).
const GOLDEN_STREAMS: Array<{ name: string; operation: Operation; events: SseEvent[]; expected: UsageReport }> = [
  { name: "chat.completions", operation: "chat.completions", events: CHAT, expected: report(usage(2006, 300, 1920, 0, 192), true, 5, 2006) },
  { name: "chat.completions tool calls", operation: "chat.completions", events: TOOLS, expected: report(usage(80, 20), true, 7, 80) },
  { name: "chat.completions without include_usage", operation: "chat.completions", events: [...CHAT_CONTENT, { data: "[DONE]" }], expected: report(undefined, true, 5, undefined) },
  { name: "completions", operation: "completions", events: CMPL, expected: report(usage(5, 4), true, 4, 5) },
  { name: "responses completed", operation: "responses", events: RESPONSES, expected: report(usage(5200, 900, 4096, 0, 640), true, 6, 5200) },
  {
    name: "responses incomplete",
    operation: "responses",
    events: RESPONSES_BODY("response.incomplete", "incomplete"),
    expected: report(usage(5200, 900, 4096, 0, 640), true, 6, 5200),
  },
  { name: "responses failed", operation: "responses", events: RESPONSES_BODY("response.failed", "failed"), expected: report(usage(5200, 900, 4096, 0, 640), true, 6, 5200) },
  { name: "messages", operation: "messages", events: ANTHROPIC, expected: report(usage(10252, 87, 8192, 2048), true, 8, 10252) },
  { name: "messages, newer message_delta", operation: "messages", events: ANTHROPIC_NEWER, expected: report(usage(10255, 90, 8192, 2048), true, 8, 10255) },
];

describe("UsageReader: golden streams", () => {
  for (const g of GOLDEN_STREAMS) {
    for (const [framing, f] of FRAMINGS) {
      it(`${g.name} (${framing})`, () => {
        const body = sse(g.events, f);
        const r = run(streamOf(g.operation), body);
        assert.deepEqual(r.report, g.expected);
        assert.ok(r.returns.every((x) => x === undefined));
      });
    }
  }

  it("the answer's model: the first chunk's (chat), message_start's (messages), the final response's (responses), the body's (JSON)", () => {
    assert.equal(run(streamOf("chat.completions"), sse(CHAT)).model, "gpt-4o-2024-08-06");
    assert.equal(run(streamOf("completions"), sse(CMPL)).model, "gpt-3.5-turbo-instruct");
    assert.equal(run(streamOf("messages"), sse(ANTHROPIC)).model, "claude-sonnet-4-5");
    assert.equal(run(streamOf("responses"), sse(RESPONSES)).model, "o4-mini");
    assert.equal(run(jsonOf("chat.completions"), Buffer.from('{"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":1,"completion_tokens":2}}')).model, "gpt-4o-mini-2024-07-18");
    assert.equal(run(jsonOf("messages"), Buffer.from('{"type":"message","model":7}')).model, undefined);
    assert.equal(run(streamOf("chat.completions"), sse([{ data: "[DONE]" }])).model, undefined);
  });

  it("output has started once a delta carries text, not on role-only or empty chunks", () => {
    const reader = new UsageReader(streamOf("chat.completions"));
    reader.push(sse([chatDelta({ role: "assistant", content: "" })]), false);
    assert.equal(reader.outputStarted, false);
    reader.push(sse([chatDelta({ content: "Hi" })]), false);
    assert.equal(reader.outputStarted, true);
    assert.equal(new UsageReader(jsonOf("chat.completions")).outputStarted, false);
  });

  it("responses events without event: lines are typed from their data", () => {
    const body = sse(RESPONSES.map((e) => ({ data: e.data })));
    assert.deepEqual(run(streamOf("responses"), body).report, report(usage(5200, 900, 4096, 0, 640), true, 6, 5200));
  });

  it("anthropic events without event: lines are typed from their data", () => {
    const body = sse(ANTHROPIC.map((e) => ({ data: e.data })));
    assert.deepEqual(run(streamOf("messages"), body).report, report(usage(10252, 87, 8192, 2048), true, 8, 10252));
  });

  it("a usage-free chat stream reports nothing but still counts output", () => {
    const body = sse([...TOOL_CONTENT, { data: "[DONE]" }]);
    assert.deepEqual(run(streamOf("chat.completions"), body).report, report(undefined, true, 7, undefined));
  });

  it("reads an error event mid-stream", () => {
    const anthropicError: SseEvent = { event: "error", data: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } };
    const a = run(streamOf("messages"), sse([ANTHROPIC_START, ...ANTHROPIC_CONTENT.slice(0, 3), anthropicError]));
    assert.deepEqual(a.report, report(undefined, false, 3, 10252, true));
    const openAiError: SseEvent = { data: { error: { message: "The server had an error", type: "server_error" } } };
    const o = run(streamOf("chat.completions"), sse([...CHAT_CONTENT.slice(0, 2), openAiError]));
    assert.deepEqual(o.report, report(undefined, false, 2, undefined, true));
    const responsesError: SseEvent = { event: "error", data: { type: "error", code: "server_error", message: "Something went wrong", param: null } };
    const r = run(streamOf("responses"), sse([...RESPONSES.slice(0, 3), responsesError]));
    assert.deepEqual(r.report, report(undefined, false, 2, undefined, true));
  });

  it("a UTF-8 byte order mark before the first line is ignored", () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), sse(CMPL)]);
    assert.deepEqual(run(streamOf("completions"), body).report, report(usage(5, 4), true, 4, 5));
  });

  it("a body ending without its last blank line is still read", () => {
    const body = Buffer.from(sse(CMPL).toString().replace(/\n\n$/, ""));
    assert.deepEqual(run(streamOf("completions"), body).report, report(usage(5, 4), true, 4, 5));
  });

  it("continuous usage on content chunks: the latest wins", () => {
    const events = [
      chatChunk([{ index: 0, delta: { content: "ab" } }], { prompt_tokens: 10, completion_tokens: 1 }),
      chatChunk([{ index: 0, delta: { content: "cd" } }], { prompt_tokens: 10, completion_tokens: 2 }),
      { data: "[DONE]" },
    ];
    assert.deepEqual(run(streamOf("chat.completions"), sse(events)).report, report(usage(10, 2), true, 2, 10));
  });
});

describe("UsageReader: JSON bodies", () => {
  const table: Array<[string, Operation, unknown, UsageReport]> = [
    [
      "chat.completions",
      "chat.completions",
      {
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1700000000,
        model: "o3",
        choices: [{ index: 0, message: { role: "assistant", content: "Hi", refusal: null }, logprobs: null, finish_reason: "stop" }],
        usage: {
          prompt_tokens: 1500,
          completion_tokens: 700,
          total_tokens: 2200,
          prompt_tokens_details: { cached_tokens: 1280, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 512, audio_tokens: 0 },
        },
      },
      report(usage(1500, 700, 1280, 0, 512), true, 0, 1500),
    ],
    [
      "completions",
      "completions",
      { id: "cmpl-1", object: "text_completion", created: 1, model: "m", choices: [{ text: "x", index: 0, logprobs: null, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } },
      report(usage(3, 1), true, 0, 3),
    ],
    [
      "embeddings",
      "embeddings",
      { object: "list", data: [{ object: "embedding", index: 0, embedding: [0.1, -0.2] }], model: "text-embedding-3-small", usage: { prompt_tokens: 8, total_tokens: 8 } },
      report(usage(8, 0), true, 0, 8),
    ],
    [
      "responses",
      "responses",
      { ...response("completed", RESPONSE_USAGE), output: [{ type: "message", id: "msg_1", status: "completed", role: "assistant", content: [{ type: "output_text", text: "Hi", annotations: [] }] }] },
      report(usage(5200, 900, 4096, 0, 640), true, 0, 5200),
    ],
    [
      "messages with cache reads and writes",
      "messages",
      {
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5",
        content: [{ type: "text", text: "Hi" }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 21, cache_creation_input_tokens: 188, cache_read_input_tokens: 1024, output_tokens: 393 },
      },
      report(usage(1233, 393, 1024, 188), true, 0, 1233),
    ],
    [
      "messages without cache fields",
      "messages",
      { id: "msg_1", type: "message", role: "assistant", content: [], usage: { input_tokens: 10, output_tokens: 25 } },
      report(usage(10, 25), true, 0, 10),
    ],
    [
      "OpenAI error",
      "chat.completions",
      { error: { message: "Rate limit reached", type: "requests", param: null, code: "rate_limit_exceeded" } },
      report(undefined, true, 0, undefined, true),
    ],
    ["Anthropic error", "messages", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, report(undefined, true, 0, undefined, true)],
    [
      "cached tokens above the total are clamped",
      "chat.completions",
      { usage: { prompt_tokens: 10, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 50 }, completion_tokens_details: { reasoning_tokens: 9 } } },
      report(usage(10, 5, 10, 0, 5), true, 0, 10),
    ],
    ["negative and non-numeric counts are not reported", "chat.completions", { usage: { prompt_tokens: -3, completion_tokens: "7" } }, report(undefined, true, 0, undefined)],
  ];
  for (const [name, operation, body, expected] of table) {
    it(name, () => {
      const bytes = Buffer.from(JSON.stringify(body, null, 2));
      assert.deepEqual(run(jsonOf(operation), bytes).report, expected);
      // Any split, including inside multi-byte characters, reads the same.
      const cuts = [1, 7, Math.floor(bytes.length / 2), bytes.length - 1];
      assert.deepEqual(run(jsonOf(operation), bytes, cuts, true).report, expected);
    });
  }

  it("an unparsable body: not terminal, no usage", () => {
    assert.deepEqual(run(jsonOf("chat.completions"), Buffer.from('{"usage": {"prompt_tokens": 1')).report, report(undefined, false, 0, undefined));
    assert.deepEqual(run(jsonOf("messages"), Buffer.from("")).report, report(undefined, false, 0, undefined));
  });

  it("a body over maxJsonBytes is not kept", () => {
    const body = Buffer.from(JSON.stringify({ pad: "x".repeat(300), usage: { prompt_tokens: 1, completion_tokens: 2 } }));
    const opts = { ...jsonOf("chat.completions"), maxJsonBytes: 256 };
    assert.deepEqual(run(opts, body, [100, 200]).report, report(undefined, false, 0, undefined));
    assert.deepEqual(run({ ...opts, maxJsonBytes: body.length }, body, [100, 200]).report, report(usage(1, 2), true, 0, 1));
  });

  it("never rewrites a JSON body", () => {
    const r = run({ ...jsonOf("chat.completions"), stripUsageChunk: true }, Buffer.from(JSON.stringify({ choices: [], usage: { prompt_tokens: 1 } })), [3]);
    assert.ok(r.returns.every((x) => x === undefined));
  });
});

describe("UsageReader: stripping the usage-only chunk", () => {
  const cases: Array<[string, Operation, SseEvent[], SseEvent[]]> = [
    ["chat.completions", "chat.completions", CHAT, [...CHAT_CONTENT, { data: "[DONE]" }]],
    ["chat.completions tool calls", "chat.completions", TOOLS, [...TOOL_CONTENT, { data: "[DONE]" }]],
    ["completions", "completions", CMPL, [...CMPL_CONTENT, { data: "[DONE]" }]],
  ];
  for (const [name, operation, events, without] of cases) {
    for (const [framing, f] of FRAMINGS) {
      it(`${name} (${framing}): forwarded = input minus exactly that event`, () => {
        const whole = run(streamOf(operation, true), sse(events, f));
        assert.equal(whole.forwarded.toString(), sse(without, f).toString());
        // The usage is still read from the dropped chunk.
        assert.deepEqual(whole.report, run(streamOf(operation), sse(events, f)).report);
      });
    }
  }

  it("keeps everything when there is no usage-only chunk", () => {
    const body = sse([...CHAT_CONTENT, { data: "[DONE]" }]);
    const r = run(streamOf("chat.completions", true), body, [10, 200, 201]);
    assert.ok(r.forwarded.equals(body));
  });

  it("keeps a usage chunk that also carries choices", () => {
    const events = [chatChunk([{ index: 0, delta: { content: "x" }, finish_reason: "stop" }], { prompt_tokens: 1, completion_tokens: 1 }), { data: "[DONE]" }];
    const body = sse(events);
    assert.ok(run(streamOf("chat.completions", true), body).forwarded.equals(body));
  });

  it("drops only the first usage-only chunk", () => {
    const body = sse([...CHAT_CONTENT, CHAT_USAGE, CHAT_USAGE, { data: "[DONE]" }]);
    const expected = sse([...CHAT_CONTENT, CHAT_USAGE, { data: "[DONE]" }]);
    assert.ok(run(streamOf("chat.completions", true), body).forwarded.equals(expected));
  });

  it("returns undefined for a chunk made of whole events", () => {
    const events = CHAT.map((e) => sse([e]));
    const reader = new UsageReader(streamOf("chat.completions", true));
    const returns = events.map((chunk, i) => reader.push(chunk, i === events.length - 1));
    // Only the chunk holding the usage-only event changes (to nothing).
    assert.deepEqual(
      returns.map((r) => r?.length),
      [undefined, undefined, undefined, undefined, 0, undefined],
    );
  });

  it("holds back only the unfinished event", () => {
    const body = sse(CHAT);
    const firstEnd = sse([CHAT[0]!]).length;
    const reader = new UsageReader(streamOf("chat.completions", true));
    const out = reader.push(body.subarray(0, firstEnd + 10), false);
    assert.equal(out?.toString(), body.subarray(0, firstEnd).toString());
  });

  it("is ignored for other operations and for JSON", () => {
    for (const operation of ["responses", "messages", "embeddings"] as const) {
      const r = run(streamOf(operation, true), sse(CHAT), [5, 50]);
      assert.ok(r.returns.every((x) => x === undefined), operation);
    }
  });

  it("never changes bytes when stripUsageChunk is false", () => {
    const r = run(streamOf("chat.completions", false), sse(CHAT), [1, 2, 3, 100, 500]);
    assert.ok(r.returns.every((x) => x === undefined));
  });

  it("forwards a block too large to be the usage-only chunk instead of holding it", () => {
    const big = chatDelta({ content: "y".repeat(200_000) });
    const body = sse([big, ...CHAT]);
    const reader = new UsageReader(streamOf("chat.completions", true));
    const first = reader.push(body.subarray(0, 150_000), false);
    assert.equal(first, undefined);
    const rest = reader.push(body.subarray(150_000), true);
    assert.equal(Buffer.concat([body.subarray(0, 150_000), rest ?? Buffer.alloc(0)]).toString(), sse([big, ...CHAT_CONTENT, { data: "[DONE]" }]).toString());
  });
});

describe("UsageReader: chunk boundaries", () => {
  const bodies = GOLDEN_STREAMS.flatMap((g) =>
    FRAMINGS.map(([framing, f]) => ({ name: `${g.name} (${framing})`, operation: g.operation, body: sse(g.events, f) })),
  );

  it("every two-piece split reads and forwards like the whole body", () => {
    // The responses variants differ from "responses completed" only in their last event.
    for (const { name, operation, body } of bodies.filter((b) => !/^responses (incomplete|failed)/.test(b.name))) {
      // Stripping applies to chat and completions streams only.
      for (const strip of operation === "chat.completions" || operation === "completions" ? [false, true] : [false]) {
        const whole = run(streamOf(operation, strip), body);
        for (let cut = 1; cut < body.length; cut++) {
          const r = run(streamOf(operation, strip), body, [cut]);
          assert.deepEqual(r.report, whole.report, `${name} cut at ${cut}`);
          assert.equal(r.model, whole.model, `${name} cut at ${cut}`);
          assert.ok(r.forwarded.equals(whole.forwarded), `${name} cut at ${cut}`);
        }
      }
    }
  });

  it("byte-by-byte feeding reads and forwards like the whole body", () => {
    for (const { name, operation, body } of bodies) {
      const whole = run(streamOf(operation, true), body);
      const r = run(streamOf(operation, true), body, Array.from({ length: body.length }, (_, i) => i), true);
      assert.deepEqual(r.report, whole.report, name);
      assert.ok(r.forwarded.equals(whole.forwarded), name);
    }
  });

  // Offsets between the \r and \n of a line break, or inside a multi-byte UTF-8 character.
  const tricky = bodies.map(({ body }) => {
    const at: number[] = [];
    for (let i = 1; i < body.length; i++) if ((body[i - 1] === 0x0d && body[i] === 0x0a) || (body[i]! & 0xc0) === 0x80) at.push(i);
    return at;
  });

  it("random splits read and forward like the whole body (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: bodies.length - 1 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.boolean(),
        fc.boolean(),
        (which, rawCuts, trickyPicks, strip, emptyEnd) => {
          const { operation, body } = bodies[which]!;
          const candidates = tricky[which]!;
          const cuts = rawCuts.map((c) => c % (body.length + 1));
          if (candidates.length > 0) cuts.push(...trickyPicks.map((p) => candidates[p % candidates.length]!));
          const whole = run(streamOf(operation, strip), body);
          const r = run(streamOf(operation, strip), body, cuts, emptyEnd);
          assert.deepEqual(r.report, whole.report);
          assert.ok(r.forwarded.equals(whole.forwarded));
          if (!strip) assert.ok(r.returns.every((x) => x === undefined));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("UsageReader: streams cut short", () => {
  it("chat stream without usage or [DONE]", () => {
    // Cut in the middle of the third event: two whole deltas arrived, "Hello" and ", wörld 日本語 🙂".
    const whole = sse(CHAT_CONTENT.slice(0, 3));
    const body = Buffer.concat([whole, sse([CHAT_CONTENT[1]!]).subarray(0, 40)]);
    for (const strip of [false, true]) {
      const r = run(streamOf("chat.completions", strip), body, [17, 300]);
      assert.deepEqual(r.report, report(undefined, false, 5, undefined));
      // What was held back is released at the end.
      assert.ok(r.forwarded.equals(body));
    }
  });

  it("many short deltas: the event count is the estimate", () => {
    const events = Array.from({ length: 40 }, () => chatDelta({ content: "a" }));
    assert.deepEqual(run(streamOf("chat.completions"), sse(events)).report, report(undefined, false, 40, undefined));
  });

  it("long deltas: characters / 4 is the estimate", () => {
    const events = [chatDelta({ content: "x".repeat(401) })];
    assert.equal(run(streamOf("chat.completions"), sse(events)).report.estimatedOutputTokens, 101);
  });

  it("anthropic cut after message_start", () => {
    assert.deepEqual(run(streamOf("messages"), sse([ANTHROPIC_START])).report, report(undefined, false, 0, 10252));
    assert.deepEqual(run(streamOf("messages"), sse([ANTHROPIC_START, ...ANTHROPIC_CONTENT])).report, report(undefined, false, 8, 10252));
  });

  it("anthropic cut after a message_start with zero input tokens (translated from an API that reports usage at the end): input not known", () => {
    const start = anth("message_start", { message: { id: "msg_t", type: "message", role: "assistant", model: "gpt-4o", content: [], usage: { input_tokens: 0, output_tokens: 0 } } });
    assert.equal(run(streamOf("messages"), sse([start, ...ANTHROPIC_CONTENT])).report.inputTokensSeen, undefined);
  });

  it("anthropic cut after message_delta: usage known, not terminal", () => {
    assert.deepEqual(run(streamOf("messages"), sse(ANTHROPIC.slice(0, -1))).report, report(usage(10252, 87, 8192, 2048), false, 8, 10252));
  });

  it("responses cut before response.completed", () => {
    assert.deepEqual(run(streamOf("responses"), sse(RESPONSES.slice(0, -1))).report, report(undefined, false, 6, undefined));
  });

  it("an empty body", () => {
    for (const operation of ["chat.completions", "responses", "messages"] as const) {
      assert.deepEqual(run(streamOf(operation, true), Buffer.alloc(0)).report, report(undefined, false, 0, undefined));
    }
  });
});

describe("UsageReader: garbage never throws", () => {
  const operations: Operation[] = ["chat.completions", "completions", "embeddings", "responses", "messages"];
  const anyOptions = fc.record({
    operation: fc.constantFrom(...operations),
    streaming: fc.boolean(),
    stripUsageChunk: fc.boolean(),
    maxJsonBytes: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
  });

  it("random bytes pass through unchanged", () => {
    fc.assert(
      fc.property(anyOptions, fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 10 }), (opts, bytes, cuts) => {
        const body = Buffer.from(bytes);
        const r = run(opts, body, cuts.map((c) => c % (body.length + 1)));
        assert.ok(r.forwarded.equals(body));
      }),
      { numRuns: 3000 },
    );
  });

  // Text assembled from SSE and JSON fragments hits the parser's branches far more often than
  // random bytes do, usage-only chunks included.
  const fragment = fc.constantFrom(
    "data:", "data: ", "event: ", "event:message_stop", ":", "\n", "\r", "\r\n", "\n\n", "{", "}", "[", "]", ",", '"',
    '"choices":[]', '"choices":[{"delta":{"content":"é"}}]', '"usage":{"prompt_tokens":3,"completion_tokens":2}', '"usage":null',
    '"type":"message_start"', '"type":"message_delta"', '"message":{"usage":{"input_tokens":4}}', '"usage":{"output_tokens":9}',
    '"type":"response.completed"', '"response":{"usage":{"input_tokens":1,"output_tokens":1}}', "[DONE]", "日本", "\u{1F642}", "retry: 5", "id: 1",
  );
  const sseish = fc.array(fragment, { maxLength: 60 }).map((parts) => Buffer.from(parts.join("")));

  it("SSE-shaped garbage: never throws, and chunk boundaries change nothing", () => {
    fc.assert(
      fc.property(anyOptions, sseish, fc.array(fc.nat(), { maxLength: 12 }), (opts, body, cuts) => {
        const whole = run(opts, body);
        const r = run(opts, body, cuts.map((c) => c % (body.length + 1)));
        assert.deepEqual(r.report, whole.report);
        assert.ok(r.forwarded.equals(whole.forwarded));
        if (!opts.stripUsageChunk || !opts.streaming) assert.ok(r.forwarded.equals(body));
      }),
      { numRuns: 3000 },
    );
  });

  it("invalid JSON in events and bodies", () => {
    const body = Buffer.from('data: {"choices": [\n\ndata: {"usage": {"prompt_tokens": }}\n\ndata: null\n\ndata: 42\n\ndata: [1,2]\n\ndata: "[DONE]"\n\n');
    for (const operation of operations) {
      for (const streaming of [true, false]) {
        const r = run({ operation, streaming, stripUsageChunk: true }, body, [3, 30]);
        assert.equal(r.report.usage, undefined);
        assert.equal(r.report.terminal, false);
        assert.ok(r.forwarded.equals(body));
      }
    }
  });

  it("huge lines: over the cap they are skipped, and the events after them still read", () => {
    const huge = Buffer.alloc(3 * 1024 * 1024, "a");
    for (const strip of [false, true]) {
      const reader = new UsageReader({ ...streamOf("chat.completions", strip), maxJsonBytes: 1024 * 1024 });
      const out: Buffer[] = [];
      const push = (b: Buffer, end = false): void => void out.push(reader.push(b, end) ?? b);
      push(Buffer.from("data: "));
      for (let i = 0; i < huge.length; i += 64 * 1024) push(huge.subarray(i, i + 64 * 1024));
      push(Buffer.from("\n\n: and a huge comment "));
      push(huge);
      push(Buffer.from("\r\n\r\n"));
      const tail = sse(CHAT);
      push(tail, true);
      assert.deepEqual(reader.report(), { ...report(usage(2006, 300, 1920, 0, 192), true, 5, 2006), model: "gpt-4o-2024-08-06" });
      const forwarded = Buffer.concat(out);
      const expectedTail = strip ? sse([...CHAT_CONTENT, { data: "[DONE]" }]) : tail;
      assert.equal(forwarded.length, 6 + huge.length + 23 + huge.length + 4 + expectedTail.length);
      assert.ok(forwarded.subarray(forwarded.length - expectedTail.length).equals(expectedTail));
    }
  });

  it("pushing after the end is ignored", () => {
    const reader = new UsageReader(streamOf("chat.completions", true));
    reader.push(sse(CHAT), true);
    assert.equal(reader.push(sse([CHAT_USAGE]), false), undefined);
    assert.deepEqual(reader.report(), { ...report(usage(2006, 300, 1920, 0, 192), true, 5, 2006), model: "gpt-4o-2024-08-06" });
  });
});

describe("costNanoUsd", () => {
  const table: Array<[string, Usage, Price, number]> = [
    ["one million input tokens at $2.50", usage(1_000_000, 0), { inputPerMTok: 2.5, outputPerMTok: 10 }, 2_500_000_000],
    ["input and output", usage(1000, 500), { inputPerMTok: 2.5, outputPerMTok: 10 }, 7_500_000],
    ["cached input at the cached price", usage(2006, 300, 1920, 0, 192), { inputPerMTok: 2.5, outputPerMTok: 10, cachedInputPerMTok: 1.25 }, 5_615_000],
    ["cached input at the input price when there is no cached price", usage(2006, 300, 1920), { inputPerMTok: 2.5, outputPerMTok: 10 }, 8_015_000],
    ["cache writes at the input price", usage(10252, 87, 8192, 2048), { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3 }, 9_942_600],
    ["cache writes at their own price", usage(10252, 87, 8192, 2048), { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, cacheWritePerMTok: 3.75 }, 11_478_600],
    ["reasoning is already inside output", usage(0, 1000, 0, 0, 900), { inputPerMTok: 1.1, outputPerMTok: 4.4 }, 4_400_000],
    ["fractions of a nano-dollar add up before the one rounding", usage(1, 1), { inputPerMTok: 0.0004, outputPerMTok: 0.0004 }, 1],
    ["tiny prices stay exact", usage(7, 3), { inputPerMTok: 0.15, outputPerMTok: 0.6 }, 2850],
    ["nothing costs nothing", usage(0, 0), { inputPerMTok: 3, outputPerMTok: 15 }, 0],
  ];
  for (const [name, u, price, expected] of table) it(name, () => assert.equal(costNanoUsd(u, price), expected));

  it("the sum of 1,000 costs matches the exact decimal sum far below a cent", () => {
    // Prices as decimal strings so the exact cost can be computed in integers (units of 1e-10 USD).
    const prices = ["0.075", "0.15", "0.6", "2.5", "10", "1.25", "3", "15", "0.3", "3.75", "0.0375", "1.1", "4.4"];
    const e4 = (p: string): bigint => BigInt(Math.round(Number(p) * 1e4));
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let sumNano = 0;
    let exact = 0n; // tokens * (USD per MTok * 1e4) = units of 1e-10 USD
    for (let i = 0; i < 1000; i++) {
      const input = rand(200_000);
      const cached = rand(input + 1);
      const output = rand(20_000);
      const [pin, pout, pcached] = [prices[rand(prices.length)]!, prices[rand(prices.length)]!, prices[rand(prices.length)]!];
      sumNano += costNanoUsd(usage(input, output, cached), { inputPerMTok: Number(pin), outputPerMTok: Number(pout), cachedInputPerMTok: Number(pcached) });
      exact += BigInt(input - cached) * e4(pin) + BigInt(cached) * e4(pcached) + BigInt(output) * e4(pout);
    }
    assert.ok(Number.isSafeInteger(sumNano));
    // Rounding once per request: at most half a nano-dollar (5 units) off per request.
    const diff = BigInt(sumNano) * 10n - exact;
    assert.ok(diff <= 5000n && diff >= -5000n, `off by ${diff} x 1e-10 USD`);
    // And so to the cent.
    const cents = (units: bigint): bigint => (units + 50_000_000n) / 100_000_000n;
    assert.equal(cents(BigInt(sumNano) * 10n), cents(exact));
  });
});
