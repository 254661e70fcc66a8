import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { countTokens as cl100k } from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens as o200k } from "gpt-tokenizer/encoding/o200k_base";
import type { Operation } from "../src/api/operations";
import type { JsonObject } from "../src/api/request-body";
import type { Capability } from "../src/policy/schema";
import { DEFAULT_OUTPUT_RESERVE, eligibleTargets, fitsContext, ineligibility } from "../src/routing/eligibility";
import { ESTIMATES, TEXT_CAP, encodingForModel, requestFeatures } from "../src/routing/request-features";
import type { RequestFeatures, TargetStats, TargetView } from "../src/routing/strategy-types";

// Models without a known tokenizer use ceil(UTF-8 bytes / 3), which makes expected counts exact.
const APPROX = "claude-sonnet-4-5";
const approx = (...texts: string[]): number => Math.ceil(Buffer.byteLength(texts.join(""), "utf8") / ESTIMATES.approxBytesPerToken);
const { messageOverhead: MSG, replyPriming: PRIME } = ESTIMATES;

describe("encodingForModel", () => {
  const table: Array<[string, string | undefined]> = [
    ["gpt-4o", "o200k_base"],
    ["gpt-4o-mini-2024-07-18", "o200k_base"],
    ["gpt-4.1", "o200k_base"],
    ["gpt-5-mini", "o200k_base"],
    ["gpt-oss-120b", "o200k_base"],
    ["o1", "o200k_base"],
    ["o3-mini", "o200k_base"],
    ["o4-mini-2025-04-16", "o200k_base"],
    ["chatgpt-4o-latest", "o200k_base"],
    ["GPT-4O", "o200k_base"],
    ["openai/gpt-4o", "o200k_base"],
    ["ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"],
    ["gpt-4", "cl100k_base"],
    ["gpt-4-0613", "cl100k_base"],
    ["gpt-4-turbo", "cl100k_base"],
    ["gpt-3.5-turbo", "cl100k_base"],
    ["gpt-35-turbo", "cl100k_base"],
    ["text-embedding-ada-002", "cl100k_base"],
    ["text-embedding-3-small", "cl100k_base"],
    ["claude-sonnet-4-5", undefined],
    ["llama-3.1-70b", undefined],
    ["gemini-2.5-pro", undefined],
    ["openchat", undefined],
    ["", undefined],
  ];
  for (const [model, encoding] of table) it(`${model || "(empty)"} -> ${encoding ?? "approximation"}`, () => assert.equal(encodingForModel(model), encoding));
});

describe("tokenizer sanity (counts from OpenAI's tiktoken cookbook)", () => {
  const table: Array<[string, number, number]> = [
    // text, o200k_base, cl100k_base
    ["tiktoken is great!", 6, 6],
    ["antidisestablishmentarianism", 6, 6],
    ["2 + 2 = 4", 7, 7],
    ["お誕生日おめでとう", 8, 9],
    ["hello world", 2, 2],
  ];
  for (const [text, o200k, cl100k] of table) {
    it(JSON.stringify(text), () => {
      // completions has no per-message overhead: promptTokens is the tokenizer's count.
      assert.equal(requestFeatures("completions", { prompt: text }, "gpt-4o").promptTokens, o200k);
      assert.equal(requestFeatures("completions", { prompt: text }, "gpt-4").promptTokens, cl100k);
    });
  }
  it("special-token strings are plain text, not an error", () => {
    const n = requestFeatures("completions", { prompt: "a <|endoftext|> b <|im_start|>" }, "gpt-4o").promptTokens;
    assert.ok(n > 4, `${n}`);
  });
  it("lone surrogates do not throw", () => {
    assert.ok(requestFeatures("completions", { prompt: "x\ud800y\udc00" }, "gpt-4o").promptTokens > 0);
  });
  it("chat adds the per-message overhead and reply priming", () => {
    const body = { messages: [{ role: "system", content: "hello world" }, { role: "user", content: "hello world", name: "bob" }] };
    // 2 x (overhead + 2) + name ("bob" = 1 token, + 1) + priming
    assert.equal(requestFeatures("chat.completions", body, "gpt-4o").promptTokens, 2 * (MSG + 2) + 2 + PRIME);
  });
  it("approximation: ceil(UTF-8 bytes / 3)", () => {
    assert.equal(requestFeatures("completions", { prompt: "x".repeat(30) }, APPROX).promptTokens, 10);
    assert.equal(requestFeatures("completions", { prompt: "é".repeat(4) }, APPROX).promptTokens, 3); // 8 bytes
  });
});

interface Case {
  name: string;
  op: Operation;
  body: JsonObject;
  tokens?: number;
  required?: Capability[];
  messages?: number;
  maxOut?: number;
  text?: string;
  user?: string;
  stream?: boolean;
}

const img = { type: "image_url", image_url: { url: "data:image/png;base64," + "A".repeat(10_000) } };
const cases: Case[] = [
  // Chat Completions
  {
    name: "chat: string contents, user, stream, max_completion_tokens wins over max_tokens",
    op: "chat.completions",
    body: { messages: [{ role: "system", content: "Be terse." }, { role: "user", content: "Hi THERE" }], user: "u-1", stream: true, max_completion_tokens: 100, max_tokens: 50 },
    tokens: 2 * MSG + approx("Be terse.", "Hi THERE") + PRIME,
    required: ["streaming"],
    messages: 2,
    maxOut: 100,
    text: "hi there",
    user: "u-1",
    stream: true,
  },
  { name: "chat: max_tokens when max_completion_tokens is invalid", op: "chat.completions", body: { messages: [], max_completion_tokens: "9", max_tokens: 50 }, maxOut: 50, tokens: PRIME, messages: 0 },
  {
    name: "chat: text and image parts (image bytes never counted)",
    op: "chat.completions",
    body: { messages: [{ role: "user", content: [{ type: "text", text: "What is this?" }, img, { type: "image_url", image_url: { url: "https://x/y.png", detail: "low" } }] }] },
    tokens: MSG + approx("What is this?") + ESTIMATES.imageTokens + ESTIMATES.lowDetailImageTokens + PRIME,
    required: ["vision"],
    text: "what is this?",
  },
  {
    name: "chat: tools definitions counted as JSON",
    op: "chat.completions",
    body: { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f", parameters: {} } }] },
    tokens: MSG + PRIME + approx("x", JSON.stringify([{ type: "function", function: { name: "f", parameters: {} } }])),
    required: ["tools"],
  },
  { name: "chat: legacy functions", op: "chat.completions", body: { messages: [], functions: [{ name: "f" }] }, required: ["tools"] },
  { name: "chat: empty tools, no tool_choice", op: "chat.completions", body: { messages: [], tools: [] }, required: [] },
  { name: "chat: tool_choice none", op: "chat.completions", body: { messages: [], tool_choice: "none" }, required: [] },
  { name: "chat: tool_choice required without tools", op: "chat.completions", body: { messages: [], tool_choice: "required" }, required: ["tools"] },
  {
    name: "chat: assistant tool_calls and tool results in the history",
    op: "chat.completions",
    body: {
      messages: [
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "get", arguments: '{"a":1}' } }] },
        { role: "tool", tool_call_id: "c1", content: "42" },
      ],
    },
    tokens: 2 * MSG + approx("get", '{"a":1}', "42") + PRIME,
    required: ["tools"],
    text: "",
  },
  { name: "chat: json_object", op: "chat.completions", body: { messages: [], response_format: { type: "json_object" } }, required: ["json"] },
  {
    name: "chat: json_schema counts the schema",
    op: "chat.completions",
    body: { messages: [], response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object" } } } },
    tokens: PRIME + approx(JSON.stringify({ type: "json_schema", json_schema: { name: "s", schema: { type: "object" } } })),
    required: ["json"],
  },
  { name: "chat: response_format text", op: "chat.completions", body: { messages: [], response_format: { type: "text" } }, required: [] },
  {
    name: "chat: text is user messages only, lowercased, newest last",
    op: "chat.completions",
    body: { messages: [{ role: "system", content: "SYSTEM" }, { role: "user", content: "First" }, { role: "assistant", content: "REPLY" }, { role: "user", content: [{ type: "text", text: "Second" }] }] },
    text: "first\nsecond",
    messages: 4,
  },
  // Completions
  { name: "completions: string prompt + suffix", op: "completions", body: { prompt: "Say hi", suffix: "end", max_tokens: 16 }, tokens: approx("Say hi", "end"), messages: 1, maxOut: 16, text: "say hi" },
  { name: "completions: prompt strings", op: "completions", body: { prompt: ["a", "b"] }, tokens: approx("a", "b"), messages: 2 },
  { name: "completions: token array", op: "completions", body: { prompt: [1, 2, 3] }, tokens: 3, messages: 1, text: "" },
  { name: "completions: token arrays", op: "completions", body: { prompt: [[1, 2], [3]] }, tokens: 3, messages: 2 },
  // Embeddings
  { name: "embeddings: string", op: "embeddings", body: { input: "Hello", user: "e" }, tokens: approx("Hello"), required: ["embeddings"], messages: 1, text: "hello", user: "e" },
  { name: "embeddings: strings", op: "embeddings", body: { input: ["abc", "def"] }, tokens: approx("abcdef"), required: ["embeddings"], messages: 2 },
  { name: "embeddings: token arrays; max_tokens is not an output budget", op: "embeddings", body: { input: [[1, 2, 3], [4]], max_tokens: 10 }, tokens: 4, messages: 2 },
  // Responses
  {
    name: "responses: string input + instructions",
    op: "responses",
    body: { input: "Hello", instructions: "Be nice", max_output_tokens: 300, user: "r" },
    tokens: 2 * MSG + PRIME + approx("Hello", "Be nice"),
    messages: 1,
    maxOut: 300,
    text: "hello",
    user: "r",
  },
  {
    name: "responses: items with input_text, input_image, function call and output",
    op: "responses",
    body: {
      input: [
        { role: "user", content: [{ type: "input_text", text: "Look" }, { type: "input_image", image_url: "data:..." }] },
        { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
        { type: "function_call_output", call_id: "c", output: "done" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "ok" }] },
      ],
    },
    tokens: 4 * MSG + PRIME + ESTIMATES.imageTokens + approx("Look", "f", "{}", "done", "ok"),
    required: ["tools", "vision"],
    messages: 4,
    text: "look",
  },
  { name: "responses: text.format json_schema", op: "responses", body: { input: "x", text: { format: { type: "json_schema", name: "s", schema: {} } } }, required: ["json"] },
  { name: "responses: built-in tools", op: "responses", body: { input: "x", tools: [{ type: "web_search" }] }, required: ["tools"] },
  // Anthropic Messages
  {
    name: "messages: system string, user text, metadata.user_id, max_tokens",
    op: "messages",
    body: { system: "Sys", messages: [{ role: "user", content: "Hi" }], max_tokens: 1024, metadata: { user_id: "a-1" }, stream: true },
    tokens: 2 * MSG + approx("Sys", "Hi"),
    required: ["streaming"],
    messages: 1,
    maxOut: 1024,
    text: "hi",
    user: "a-1",
    stream: true,
  },
  {
    name: "messages: system blocks, image, tool_use, tool_result with nested image, thinking",
    op: "messages",
    body: {
      system: [{ type: "text", text: "S1" }],
      messages: [
        { role: "user", content: [{ type: "text", text: "Q" }, { type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } }] },
        { role: "assistant", content: [{ type: "thinking", thinking: "hmm", signature: "sig" }, { type: "tool_use", id: "t", name: "f", input: { a: 1 } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: "R" }, { type: "image", source: {} }] }] },
      ],
      max_tokens: 10,
    },
    tokens: 4 * MSG + 2 * ESTIMATES.anthropicImageTokens + approx("S1", "Q", "hmm", "f", '{"a":1}', "R"),
    required: ["tools", "vision"],
    messages: 3,
    text: "q",
  },
  { name: "messages: tools", op: "messages", body: { messages: [], tools: [{ name: "f", input_schema: {} }] }, required: ["tools"] },
  { name: "messages: tool_choice none", op: "messages", body: { messages: [], tool_choice: { type: "none" } }, required: [] },
  { name: "messages: tool_choice any", op: "messages", body: { messages: [], tool_choice: { type: "any" } }, required: ["tools"] },
  { name: "messages: OpenAI user field is not the user", op: "messages", body: { messages: [], user: "x" }, user: undefined },
  {
    name: "messages: text documents count, PDFs do not",
    op: "messages",
    body: { messages: [{ role: "user", content: [{ type: "document", source: { type: "text", media_type: "text/plain", data: "Doc" } }, { type: "document", source: { type: "base64", data: "JVBERi0" } }] }] },
    tokens: MSG + approx("Doc"),
    text: "",
  },
  // Hostile shapes: ignored, never thrown on.
  { name: "hostile: messages not an array", op: "chat.completions", body: { messages: "nope", max_tokens: -1, user: 42, stream: "true" }, tokens: 0, messages: 0, maxOut: undefined, user: undefined, stream: false },
  {
    name: "hostile: junk messages and parts",
    op: "chat.completions",
    body: { messages: [null, 1, "x", [], { role: 7, content: 5 }, { role: "user", content: [null, 3, { type: 5 }, { type: "text", text: 7 }, { type: "image_url" }, { type: "text", text: "ok" }] }] },
    tokens: 6 * MSG + ESTIMATES.imageTokens + approx("ok") + PRIME,
    required: ["vision"],
    messages: 6,
    text: "ok",
  },
  { name: "hostile: fractional, huge and string output limits", op: "completions", body: { prompt: 5, max_tokens: 1.5 }, maxOut: undefined, tokens: 0, messages: 0 },
  { name: "hostile: unsafe integer output limit", op: "messages", body: { messages: null, max_tokens: 1e300, metadata: "x" }, maxOut: undefined, user: undefined },
  { name: "hostile: tools as an object, tool_choice null, response_format string", op: "chat.completions", body: { messages: [], tools: { a: 1 }, tool_choice: null, response_format: "json_object" }, required: [] },
  { name: "hostile: tool_calls not an array", op: "chat.completions", body: { messages: [{ role: "assistant", tool_calls: { x: 1 } }] }, required: [] },
  { name: "hostile: responses input object", op: "responses", body: { input: { role: "user" }, instructions: ["x"], text: "json" }, tokens: 0, messages: 0 },
  { name: "hostile: embeddings input of junk", op: "embeddings", body: { input: [null, {}, true, "ok"] }, tokens: approx("ok"), messages: 1 },
  { name: "hostile: empty user", op: "chat.completions", body: { messages: [], user: "" }, user: undefined },
];

describe("requestFeatures: shapes", () => {
  for (const t of cases) {
    it(t.name, () => {
      const f = requestFeatures(t.op, t.body, APPROX);
      if (t.tokens !== undefined) assert.equal(f.promptTokens, t.tokens, "promptTokens");
      if (t.required !== undefined) assert.deepEqual([...f.required].sort(), [...t.required].sort(), "required");
      if (t.messages !== undefined) assert.equal(f.messageCount, t.messages, "messageCount");
      if ("maxOut" in t) assert.equal(f.maxOutputTokens, t.maxOut, "maxOutputTokens");
      if (t.text !== undefined) assert.equal(f.text, t.text, "text");
      if ("user" in t) assert.equal(f.user, t.user, "user");
      if (t.stream !== undefined) assert.equal(f.stream, t.stream, "stream");
    });
  }

  it("embeddings always requires the embeddings capability", () => {
    assert.deepEqual([...requestFeatures("embeddings", {}, APPROX).required], ["embeddings"]);
  });

  it("user ids are capped at 256 characters", () => {
    assert.equal(requestFeatures("chat.completions", { messages: [], user: "u".repeat(1000) }, APPROX).user, "u".repeat(256));
  });

  it("text keeps the newest TEXT_CAP characters", () => {
    const old = "OLD ".repeat(TEXT_CAP);
    const f = requestFeatures("chat.completions", { messages: [{ role: "user", content: old }, { role: "user", content: "Newest question" }] }, APPROX);
    assert.equal(f.text.length, TEXT_CAP);
    assert.ok(f.text.endsWith("old \nnewest question"));
  });

  it("text drops old messages once newer ones fill the cap", () => {
    const messages = Array.from({ length: 5000 }, (_, i) => ({ role: "user", content: `M${i} ${"x".repeat(20)}` }));
    const f = requestFeatures("chat.completions", { messages }, APPROX);
    assert.ok(f.text.length <= TEXT_CAP);
    assert.ok(f.text.endsWith(`m4999 ${"x".repeat(20)}`));
    assert.ok(!f.text.includes("m0 "));
  });

  it("nesting deeper than JSON.stringify's stack is ignored, not thrown", () => {
    const deep = JSON.parse("[".repeat(200_000) + "]".repeat(200_000)) as unknown;
    const f = requestFeatures("chat.completions", { messages: [], tools: [deep] }, "gpt-4o");
    assert.ok(f.required.has("tools"));
  });

  it("huge arrays are walked (messageCount is exact) in bounded time", () => {
    const messages = Array.from({ length: 200_000 }, (_, i) => (i % 3 === 0 ? null : { role: "user", content: `hi ${i}` }));
    const t0 = performance.now();
    const f = requestFeatures("chat.completions", { messages }, "gpt-4o");
    assert.equal(f.messageCount, 200_000);
    assert.ok(f.promptTokens > 200_000 * MSG);
    assert.ok(performance.now() - t0 < 2000);
  });

  it("never throws on arbitrary JSON (property)", () => {
    const ops: Operation[] = ["chat.completions", "completions", "embeddings", "responses", "messages"];
    const keys = ["messages", "prompt", "input", "instructions", "system", "tools", "functions", "tool_choice", "function_call", "response_format", "text", "max_tokens", "max_completion_tokens", "max_output_tokens", "user", "metadata", "stream", "suffix"];
    const body = fc.record(Object.fromEntries(keys.map((k) => [k, fc.jsonValue({ maxDepth: 5 })])), { requiredKeys: [] });
    fc.assert(
      fc.property(fc.constantFrom(...ops), body, fc.constantFrom("gpt-4o", "gpt-4", APPROX), (op, b, model) => {
        const f = requestFeatures(op, b as JsonObject, model);
        assert.ok(Number.isSafeInteger(f.promptTokens) && f.promptTokens >= 0);
        assert.ok(f.text.length <= TEXT_CAP);
      }),
      { numRuns: 500 },
    );
  });
});

describe("requestFeatures: bounded work", () => {
  // Deterministic English-like prose and code-like text; the sample must not be fooled by a
  // prefix of one kind followed by megabytes of the other.
  const words = "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when what if will more no out so said about up them into than its some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three".split(" ");
  function prose(bytes: number, seed: number): string {
    let x = seed;
    const out: string[] = [];
    let n = 0;
    while (n < bytes) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const w = words[x % words.length] ?? "the";
      const piece = x % 11 === 0 ? `${w}. ` : x % 17 === 0 ? `${w}, ` : `${w} `;
      out.push(piece);
      n += piece.length;
    }
    return out.join("");
  }
  function code(bytes: number, seed: number): string {
    let x = seed;
    const out: string[] = [];
    let n = 0;
    while (n < bytes) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const line = `  const v${x % 997} = await fetchItem(${x % 4093}, { retries: ${x % 7} }); // ${words[x % words.length] ?? ""}\n`;
      out.push(line);
      n += line.length;
    }
    return out.join("");
  }
  // Ground truth: the tokenizer itself on 64 KiB slices cut at spaces.
  const exactCount = (text: string, model: string): number => {
    const count = model === "gpt-4" ? cl100k : o200k;
    let total = 0;
    for (let i = 0; i < text.length; ) {
      let j = Math.min(text.length, i + 65536);
      const space = text.lastIndexOf(" ", j);
      if (j < text.length && space > i) j = space;
      total += count(text.slice(i, j));
      i = j;
    }
    return total;
  };

  it("a 5 MB prompt finishes fast and its estimate is within 5% of the exact count", () => {
    const text = prose(200_000, 1) + code(2_400_000, 2) + prose(2_400_000, 3);
    for (const model of ["gpt-4o", "gpt-4"]) {
      const t0 = performance.now();
      const est = requestFeatures("completions", { prompt: text }, model).promptTokens;
      const ms = performance.now() - t0;
      const exact = exactCount(text, model);
      assert.ok(Math.abs(est / exact - 1) < 0.05, `${model}: estimate ${est}, exact ${exact}`);
      assert.ok(ms < 1000, `${model}: ${ms} ms`);
    }
  });

  it("many messages of mixed text: estimate within 5%", () => {
    const messages = Array.from({ length: 400 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: i % 2 ? code(3000, i) : prose(3000, i) }));
    const est = requestFeatures("chat.completions", { messages }, "gpt-4o").promptTokens;
    const exact = messages.reduce((sum, m) => sum + requestFeatures("completions", { prompt: m.content }, "gpt-4o").promptTokens, 0) + 400 * MSG + PRIME;
    assert.ok(Math.abs(est / exact - 1) < 0.05, `estimate ${est}, exact ${exact}`);
  });

  it("text within the exact budget is counted exactly, string by string", () => {
    const a = prose(4000, 9);
    const b = code(4000, 10);
    const sep = requestFeatures("completions", { prompt: a }, "gpt-4o").promptTokens + requestFeatures("completions", { prompt: b }, "gpt-4o").promptTokens;
    assert.equal(requestFeatures("completions", { prompt: [a, b] }, "gpt-4o").promptTokens, sep);
  });

  it("pathological runs (BPE is quadratic in piece length) stay fast", () => {
    const inputs = ["a".repeat(1 << 20), " ".repeat(1 << 20), "=".repeat(1 << 20), "語".repeat(1 << 18), "😀".repeat(1 << 18)];
    for (const s of inputs) {
      const t0 = performance.now();
      const n = requestFeatures("completions", { prompt: s }, "gpt-4o").promptTokens;
      const ms = performance.now() - t0;
      assert.ok(n > 0);
      assert.ok(ms < 1000, `${JSON.stringify(s.slice(0, 2))}: ${ms} ms`);
    }
  });

  it("cutting long runs overestimates by little", () => {
    const s = "a".repeat(4096);
    const est = requestFeatures("completions", { prompt: s }, "gpt-4o").promptTokens;
    // Exact for 4096 'a's in o200k_base is 512 (8 per token); a cut every 64 bytes costs nothing here.
    assert.ok(est >= 512 && est <= 512 * 1.1, `${est}`);
  });
});

// ---- Eligibility ------------------------------------------------------------------------------

function target(id: string, o: Partial<Omit<TargetView, "capabilities">> & { caps?: Capability[] } = {}): TargetView {
  return {
    id,
    provider: "p",
    providerType: "openai",
    model: "m",
    price: undefined,
    contextWindow: o.contextWindow,
    maxOutputTokens: o.maxOutputTokens,
    capabilities: new Set(o.caps ?? ["tools", "vision", "json", "streaming"]),
  };
}

function features(o: Partial<Omit<RequestFeatures, "required">> & { required?: Capability[] } = {}): RequestFeatures {
  return {
    promptTokens: o.promptTokens ?? 1000,
    maxOutputTokens: o.maxOutputTokens,
    required: new Set(o.required ?? []),
    messageCount: o.messageCount ?? 1,
    text: "",
    user: undefined,
    stream: false,
  };
}

const NOW = Date.UTC(2025, 0, 1);
const healthy: TargetStats = { latencyMs: undefined, samples: 0, inFlight: 0, cooldownUntil: undefined, lastFailureAt: undefined };
const cooling = (untilOffsetMs: number, lastFailureAt?: number): TargetStats => ({ ...healthy, cooldownUntil: NOW + untilOffsetMs, lastFailureAt });

describe("ineligibility", () => {
  const table: Array<{ name: string; t: TargetView; f: RequestFeatures; s?: TargetStats; reason?: RegExp }> = [
    { name: "fits", t: target("a", { contextWindow: 128_000, maxOutputTokens: 16_384 }), f: features({ maxOutputTokens: 1000 }) },
    { name: "unknown window and limit fit anything", t: target("a"), f: features({ promptTokens: 10_000_000, maxOutputTokens: 1_000_000 }) },
    { name: "missing capabilities are listed in order", t: target("a", { caps: ["json"] }), f: features({ required: ["vision", "streaming", "tools"] }), reason: /^missing capabilities: tools, vision, streaming$/ },
    { name: "one missing capability", t: target("a", { caps: [] }), f: features({ required: ["embeddings"] }), reason: /^missing capability: embeddings$/ },
    { name: "output limit above the target's", t: target("a", { maxOutputTokens: 4096 }), f: features({ maxOutputTokens: 8000 }), reason: /8000 output tokens, the target allows 4096/ },
    { name: "exactly fills the window", t: target("a", { contextWindow: 2000 }), f: features({ promptTokens: 1000, maxOutputTokens: 1000 }) },
    { name: "one token over the window", t: target("a", { contextWindow: 2000 }), f: features({ promptTokens: 1001, maxOutputTokens: 1000 }), reason: /~1001 prompt \+ 1000 output tokens exceed the 2000-token context window/ },
    { name: "no output limit: reserve the default", t: target("a", { contextWindow: 1000 + DEFAULT_OUTPUT_RESERVE }), f: features({ promptTokens: 1001 }), reason: /context window/ },
    { name: "no output limit: reserve fits", t: target("a", { contextWindow: 1000 + DEFAULT_OUTPUT_RESERVE }), f: features({ promptTokens: 1000 }) },
    { name: "no output limit: a smaller target limit is the reserve", t: target("a", { contextWindow: 1100, maxOutputTokens: 100 }), f: features({ promptTokens: 1000 }) },
    { name: "embedding batch: per-input limit, not checked", t: target("e", { contextWindow: 8191, caps: ["embeddings"] }), f: features({ promptTokens: 50_000, required: ["embeddings"], messageCount: 10 }) },
    { name: "single embedding input over the window", t: target("e", { contextWindow: 8191, caps: ["embeddings"] }), f: features({ promptTokens: 9000, required: ["embeddings"] }), reason: /~9000 prompt \+ 0 output/ },
    { name: "cooling down", t: target("a"), f: features(), s: cooling(30_000), reason: /^cooling down until 2025-01-01T00:00:30\.000Z$/ },
    { name: "cooldown over", t: target("a"), f: features(), s: cooling(-1) },
    { name: "cooldown ends exactly now", t: target("a"), f: features(), s: cooling(0) },
    { name: "absurd cooldown time does not throw", t: target("a"), f: features(), s: { ...healthy, cooldownUntil: 1e300 }, reason: /^cooling down until 1e\+300 ms$/ },
    { name: "hard reasons come before the cooldown", t: target("a", { caps: [] }), f: features({ required: ["tools"] }), s: cooling(1000), reason: /^missing capability/ },
  ];
  for (const c of table) {
    it(c.name, () => {
      const r = ineligibility(c.t, c.f, c.s ?? healthy, NOW);
      if (c.reason === undefined) assert.equal(r, undefined);
      else assert.match(r ?? "(eligible)", c.reason);
    });
  }
  it("fitsContext agrees", () => {
    assert.equal(fitsContext(target("a", { contextWindow: 2000 }), features({ promptTokens: 1000, maxOutputTokens: 1000 })), true);
    assert.equal(fitsContext(target("a", { contextWindow: 1999 }), features({ promptTokens: 1000, maxOutputTokens: 1000 })), false);
  });
});

describe("eligibleTargets", () => {
  const ids = (ts: TargetView[]): string[] => ts.map((t) => t.id);
  const run = (targets: TargetView[], f: RequestFeatures, stats: Record<string, TargetStats>) => eligibleTargets(targets, f, (id) => stats[id] ?? healthy, NOW);

  it("keeps order, skips with reasons", () => {
    const r = run([target("a", { caps: [] }), target("b"), target("c"), target("d", { contextWindow: 10 })], features({ required: ["tools"] }), { c: cooling(5000) });
    assert.deepEqual(ids(r.eligible), ["b"]);
    assert.deepEqual(
      r.skipped.map((s) => s.id),
      ["a", "c", "d"],
    );
    assert.equal(r.note, undefined);
  });

  it("all cooling down: the one whose cooldown ends first is kept", () => {
    const r = run([target("a"), target("b"), target("c")], features(), { a: cooling(30_000), b: cooling(5000), c: cooling(60_000) });
    assert.deepEqual(ids(r.eligible), ["b"]);
    assert.deepEqual(
      r.skipped.map((s) => s.id),
      ["a", "c"],
    );
    assert.match(r.note ?? "", /trying b/);
  });

  it("equal cooldowns: the one that failed longest ago, then chain order", () => {
    let r = run([target("a"), target("b")], features(), { a: cooling(5000, NOW - 1000), b: cooling(5000, NOW - 9000) });
    assert.deepEqual(ids(r.eligible), ["b"]);
    r = run([target("a"), target("b")], features(), { a: cooling(5000, NOW - 1000), b: cooling(5000, NOW - 1000) });
    assert.deepEqual(ids(r.eligible), ["a"]);
  });

  it("hard-skipped targets are never brought back; a cooling one still is", () => {
    const r = run([target("a", { caps: [] }), target("b")], features({ required: ["vision"] }), { b: cooling(5000) });
    assert.deepEqual(ids(r.eligible), ["b"]);
    assert.deepEqual(
      r.skipped.map((s) => s.id),
      ["a"],
    );
  });

  it("nothing can serve the request: eligible is empty", () => {
    const r = run([target("a", { caps: [] }), target("b", { contextWindow: 100 })], features({ required: ["tools"], promptTokens: 5000 }), { a: cooling(5000) });
    assert.deepEqual(r.eligible, []);
    assert.equal(r.skipped.length, 2);
    assert.match(r.skipped[0]?.reason ?? "", /missing capability: tools/);
    assert.deepEqual(r.skipped.map((s) => s.hard), [true, true]);
  });

  it("a healthy target wins over reviving a cooling one", () => {
    const r = run([target("a"), target("b")], features(), { a: cooling(1) });
    assert.deepEqual(ids(r.eligible), ["b"]);
    assert.deepEqual(r.skipped, [{ id: "a", reason: "cooling down until 2025-01-01T00:00:00.001Z", hard: false }]);
  });
});
