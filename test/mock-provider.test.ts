import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, beforeEach, describe, it } from "node:test";
import { parseMockProviderArgs } from "../src/mock-provider/main";
import { type MockProvider, startMockProvider } from "../src/mock-provider/server";

interface Sse {
  event?: string;
  data: string;
}

function parseSse(text: string): Sse[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const out: Sse = { data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) out.event = line.slice(7);
        if (line.startsWith("data: ")) out.data = line.slice(6);
      }
      return out;
    });
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Raw HTTP/1.1 read that reports whether the response completed (fetch hides truncation). */
function rawPost(url: string, body: string): Promise<{ status: number; text: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const r = request(url, { method: "POST", headers: { "content-type": "application/json" }, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("error", () => undefined);
      res.on("close", () => resolve({ status: res.statusCode ?? 0, text, complete: res.complete }));
    });
    r.on("error", reject);
    r.end(body);
  });
}

describe("mock provider", () => {
  let mock: MockProvider;
  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });
  beforeEach(() => mock.reset());

  it("answers OpenAI chat completions with deterministic text and usage", async () => {
    const body = { model: "gpt-4o-mini", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "Hello there, how are you?" }] };
    const raw = JSON.stringify(body);
    const res = await post(`${mock.url}/v1/chat/completions`, raw, { authorization: "Bearer sk-test" });
    assert.equal(res.status, 200);
    const json = (await res.json()) as Record<string, unknown>;
    assert.equal(json["object"], "chat.completion");
    assert.equal(json["model"], "gpt-4o-mini");
    const choice = (json["choices"] as Array<Record<string, unknown>>)[0];
    assert.deepEqual(choice?.["message"], { role: "assistant", content: "mock reply to Hello there, how are you?", refusal: null });
    assert.equal(choice?.["finish_reason"], "stop");
    const input = Math.ceil(raw.length / 4);
    assert.deepEqual(json["usage"], { prompt_tokens: input, completion_tokens: 8, total_tokens: input + 8 });

    assert.equal(mock.requests.length, 1);
    const rec = mock.requests[0];
    assert.equal(rec?.method, "POST");
    assert.equal(rec?.path, "/v1/chat/completions");
    assert.equal(rec?.headers["authorization"], "Bearer sk-test");
    assert.equal(rec?.body.toString(), raw);
    assert.deepEqual(rec?.json, body);
  });

  it("streams OpenAI chat chunks, a usage chunk with include_usage, then [DONE]", async () => {
    const raw = JSON.stringify({ model: "gpt-4o", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "one two" }] });
    const res = await post(`${mock.url}/v1/chat/completions`, raw);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.data, "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    for (const c of chunks) {
      assert.equal(c["object"], "chat.completion.chunk");
      assert.equal(c["model"], "gpt-4o");
    }
    const deltas = chunks.map((c) => (c["choices"] as Array<{ delta?: { content?: string } }>)[0]?.delta?.content ?? "").join("");
    assert.equal(deltas, "mock reply to one two");
    const last = chunks.at(-1);
    assert.deepEqual(last?.["choices"], []);
    const input = Math.ceil(raw.length / 4);
    assert.deepEqual(last?.["usage"], { prompt_tokens: input, completion_tokens: 5, total_tokens: input + 5 });
    // Every other chunk carries usage: null, as OpenAI does with include_usage.
    assert.ok(chunks.slice(0, -1).every((c) => c["usage"] === null));
  });

  it("answers and streams Anthropic messages with the documented event sequence", async () => {
    const base = { model: "claude-3-5-sonnet", max_tokens: 100, messages: [{ role: "user", content: [{ type: "text", text: "hi there" }] }] };
    const res = await post(`${mock.url}/v1/messages`, base, { "x-api-key": "k", "anthropic-version": "2023-06-01" });
    const json = (await res.json()) as Record<string, unknown>;
    assert.equal(json["type"], "message");
    assert.equal(json["model"], "claude-3-5-sonnet");
    assert.deepEqual(json["content"], [{ type: "text", text: "mock reply to hi there" }]);
    assert.equal(json["stop_reason"], "end_turn");
    assert.deepEqual(json["usage"], { input_tokens: Math.ceil(JSON.stringify(base).length / 4), output_tokens: 5 });

    const streamed = await post(`${mock.url}/v1/messages`, { ...base, stream: true });
    const events = parseSse(await streamed.text());
    assert.deepEqual(
      events.map((e) => e.event),
      ["message_start", "content_block_start", "ping", ...Array(5).fill("content_block_delta"), "content_block_stop", "message_delta", "message_stop"],
    );
    for (const e of events) assert.equal((JSON.parse(e.data) as { type: string }).type, e.event);
    const delta = JSON.parse(events.at(-2)?.data ?? "{}") as { delta: { stop_reason: string }; usage: { output_tokens: number } };
    assert.equal(delta.delta.stop_reason, "end_turn");
    assert.equal(delta.usage.output_tokens, 5);
  });

  it("validates Anthropic requests with Anthropic-shaped errors", async () => {
    const res = await post(`${mock.url}/v1/messages`, { model: "claude", messages: [{ role: "user", content: "x" }] });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { type: "error", error: { type: "invalid_request_error", message: "max_tokens: Field required" } });
  });

  it("honours max_tokens with finish reasons length / max_tokens", async () => {
    const chat = (await (await post(`${mock.url}/v1/chat/completions`, { model: "m", max_tokens: 2, messages: [{ role: "user", content: "a b c" }] })).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    assert.equal(chat.choices[0]?.message.content, "mock reply");
    assert.equal(chat.choices[0]?.finish_reason, "length");
    assert.equal(chat.usage.completion_tokens, 2);
  });

  it("answers the Azure deployment paths like OpenAI, and 404 without api-version", async () => {
    const ok = await post(`${mock.url}/openai/deployments/gpt4-prod/chat/completions?api-version=2024-06-01`, { messages: [{ role: "user", content: "x" }] });
    assert.equal(ok.status, 200);
    const json = (await ok.json()) as { model: string; object: string };
    assert.equal(json.object, "chat.completion");
    assert.equal(json.model, "gpt4-prod", "no model in the body: the deployment name");
    assert.equal(mock.requests[0]?.path, "/openai/deployments/gpt4-prod/chat/completions?api-version=2024-06-01");

    const emb = await post(`${mock.url}/openai/deployments/emb/embeddings?api-version=2024-06-01`, { input: ["a", "b", "c"] });
    const embJson = (await emb.json()) as { data: Array<{ index: number; embedding: number[] }> };
    assert.deepEqual(embJson.data.map((d) => d.index), [0, 1, 2]);
    assert.equal(embJson.data[0]?.embedding.length, 8);

    const missing = await post(`${mock.url}/openai/deployments/gpt4-prod/chat/completions`, { messages: [{ role: "user", content: "x" }] });
    assert.equal(missing.status, 404);
  });

  it("streams the Responses API events", async () => {
    const res = await post(`${mock.url}/v1/responses`, { model: "gpt-4.1", stream: true, input: "tell me" });
    const events = parseSse(await res.text());
    assert.equal(events[0]?.event, "response.created");
    assert.equal(events.at(-1)?.event, "response.completed");
    const deltas = events.filter((e) => e.event === "response.output_text.delta").map((e) => (JSON.parse(e.data) as { delta: string }).delta);
    assert.equal(deltas.join(""), "mock reply to tell me");
    const done = JSON.parse(events.at(-1)?.data ?? "{}") as { response: { status: string; model: string; usage: { output_tokens: number } } };
    assert.equal(done.response.status, "completed");
    assert.equal(done.response.model, "gpt-4.1");
    assert.equal(done.response.usage.output_tokens, 5);
  });

  it("returns JSON 404 for unknown paths and serves /healthz (unrecorded)", async () => {
    const res = await post(`${mock.url}/v2/nothing`, {});
    assert.equal(res.status, 404);
    assert.ok(((await res.json()) as { error: { message: string } }).error.message.includes("/v2/nothing"));
    const health = await fetch(`${mock.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(mock.requests.map((r) => r.path), ["/v2/nothing"]);
  });

  it("failNext queues forced failures in the provider's error shape", async () => {
    mock.failNext(2, 529);
    mock.failNext(1, 429, { headers: { "retry-after": "7" }, body: "slow down" });
    const body = { model: "c", max_tokens: 5, messages: [{ role: "user", content: "x" }] };
    const first = await post(`${mock.url}/v1/messages`, body);
    assert.equal(first.status, 529);
    assert.deepEqual(((await first.json()) as { error: { type: string } }).error.type, "overloaded_error");
    assert.equal((await post(`${mock.url}/v1/messages`, body)).status, 529);
    const third = await post(`${mock.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(third.status, 429);
    assert.equal(third.headers.get("retry-after"), "7");
    assert.equal(await third.text(), "slow down");
    assert.equal((await post(`${mock.url}/v1/messages`, body)).status, 200);
    assert.equal(mock.requests.length, 4, "failed requests are recorded too");
  });

  it("failNext sends the given headers (retry-after-ms) with the forced status", async () => {
    mock.failNext(1, 429, { headers: { "retry-after-ms": "1500", "x-ratelimit-reset-requests": "2s" } });
    const res = await post(`${mock.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after-ms"), "1500");
    assert.equal(res.headers.get("x-ratelimit-reset-requests"), "2s");
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "rate_limit_exceeded");
  });

  it("delayNext holds the response headers of the next requests", async () => {
    mock.delayNext(1, 150);
    const body = { model: "m", messages: [{ role: "user", content: "x" }] };
    const started = Date.now();
    const slow = await post(`${mock.url}/v1/chat/completions`, body);
    assert.equal(slow.status, 200);
    assert.ok(Date.now() - started >= 140, "headers came after the delay");
    const fast = Date.now();
    assert.equal((await post(`${mock.url}/v1/chat/completions`, body)).status, 200);
    assert.ok(Date.now() - fast < 140, "only the next request is delayed");
    assert.equal(mock.requests.length, 2, "a delayed request is recorded when it arrives");
  });

  it("delayNext ends early when the client gives up", async () => {
    mock.delayNext(1, 60_000);
    const aborted = await fetch(`${mock.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "e", input: "x" }),
      signal: AbortSignal.timeout(100),
    }).catch((err: unknown) => err);
    assert.ok(aborted instanceof Error);
    assert.equal(mock.requests.length, 1);
    // The queue moved on: the next request is answered at once.
    assert.equal((await post(`${mock.url}/v1/embeddings`, { model: "e", input: "x" })).status, 200);
  });

  it("resetNext destroys the connection after reading the request", async () => {
    mock.resetNext(1);
    const failed = await rawPost(`${mock.url}/v1/chat/completions`, JSON.stringify({ model: "m", messages: [] })).catch((err: unknown) => err);
    assert.ok(failed instanceof Error);
    assert.match((failed as NodeJS.ErrnoException).code ?? "", /ECONNRESET/);
    assert.equal(mock.requests.length, 1);
    assert.equal((await post(`${mock.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] })).status, 200);
  });

  it("dropNextStream cuts the next stream after N events", async () => {
    mock.dropNextStream(2);
    const raw = JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "a b c d e" }] });
    const cut = await rawPost(`${mock.url}/v1/chat/completions`, raw);
    assert.equal(cut.status, 200);
    assert.equal(cut.complete, false);
    assert.equal(parseSse(cut.text).length, 2);
    assert.ok(!cut.text.includes("[DONE]"));
    const whole = await rawPost(`${mock.url}/v1/chat/completions`, raw);
    assert.equal(whole.complete, true);
    assert.ok(whole.text.includes("[DONE]"));
  });

  it("keeps repeated request headers as arrays", async () => {
    await new Promise<void>((resolve, reject) => {
      const r = request(`${mock.url}/v1/embeddings`, { method: "POST", agent: false, headers: [["host", "mock"], ["authorization", "Bearer a"], ["authorization", "Bearer b"], ["content-type", "application/json"]].flat() }, (res) => {
        res.resume();
        res.on("end", resolve);
      });
      r.on("error", reject);
      r.end(JSON.stringify({ model: "e", input: "x" }));
    });
    assert.deepEqual(mock.requests[0]?.headers["authorization"], ["Bearer a", "Bearer b"]);
  });
});

describe("mock provider options", () => {
  it("streamChunks fixes the number of words; latency delays replies", async () => {
    const mock = await startMockProvider({ streamChunks: 12, latencyMs: 30 });
    try {
      const started = Date.now();
      const res = await post(`${mock.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "hi" }] });
      assert.ok(Date.now() - started >= 25);
      const json = (await res.json()) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
      assert.equal(json.usage.completion_tokens, 12);
      assert.equal(json.choices[0]?.message.content.split(" ").length, 12);
    } finally {
      await mock.close();
    }
  });

  it("close() does not wait for a delayed request", async () => {
    const mock = await startMockProvider();
    mock.delayNext(1, 60_000);
    const pending = post(`${mock.url}/v1/embeddings`, { model: "e", input: "x" }).catch((err: unknown) => err);
    while (mock.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const started = Date.now();
    await mock.close();
    assert.ok(Date.now() - started < 1000);
    assert.ok((await pending) instanceof Error, "the client sees the connection close");
  });

  it("failureRate 1 fails every request (503 OpenAI, 529 Anthropic)", async () => {
    const mock = await startMockProvider({ failureRate: 1 });
    try {
      assert.equal((await post(`${mock.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] })).status, 503);
      assert.equal((await post(`${mock.url}/v1/messages`, { model: "m", max_tokens: 1, messages: [{ role: "user", content: "x" }] })).status, 529);
    } finally {
      await mock.close();
    }
  });

  it("parses CLI flags and environment variables", () => {
    assert.deepEqual(parseMockProviderArgs(["--port", "9000", "--latency-ms=5", "--failure-rate", "0.5"], { MOCK_HOST: "127.0.0.1", MOCK_STREAM_CHUNKS: "4" }), {
      port: 9000,
      host: "127.0.0.1",
      latencyMs: 5,
      streamChunks: 4,
      failureRate: 0.5,
    });
    assert.throws(() => parseMockProviderArgs(["--port", "x"], {}), /--port/);
    assert.throws(() => parseMockProviderArgs(["--bogus"], {}), /unknown argument/);
  });
});

describe("mock provider: Anthropic tool use", () => {
  let mock: MockProvider;
  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });

  const tools = [
    { name: "search", description: "Search the web", input_schema: { type: "object", properties: { query: { type: "string" } } } },
    { name: "other", input_schema: { type: "object" } },
  ];
  const ask = { role: "user", content: "find one two three four five six seven eight nine ten" };
  const base = { model: "claude-x", max_tokens: 100, tools, messages: [ask] };

  async function anthropic(body: unknown): Promise<Record<string, unknown>> {
    return (await (await post(`${mock.url}/v1/messages`, body)).json()) as Record<string, unknown>;
  }

  it("calls the first tool with the first 8 words of the last user text", async () => {
    const json = await anthropic(base);
    assert.equal(json["stop_reason"], "tool_use");
    const content = json["content"] as Array<Record<string, unknown>>;
    assert.equal(content.length, 1);
    assert.equal(content[0]?.["type"], "tool_use");
    assert.match(String(content[0]?.["id"]), /^toolu_mock_\d+$/);
    assert.equal(content[0]?.["name"], "search");
    assert.deepEqual(content[0]?.["input"], { query: "find one two three four five six seven" });
  });

  it("streams the call as a tool_use block with input_json_delta pieces", async () => {
    const res = await post(`${mock.url}/v1/messages`, { ...base, stream: true, tool_choice: { type: "auto" } });
    const events = parseSse(await res.text());
    assert.deepEqual(
      events.map((e) => e.event),
      ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
    );
    const start = JSON.parse(events[1]?.data ?? "{}") as { content_block: Record<string, unknown> };
    assert.equal(start.content_block["type"], "tool_use");
    assert.equal(start.content_block["name"], "search");
    assert.deepEqual(start.content_block["input"], {});
    const json = events
      .filter((e) => e.event === "content_block_delta")
      .map((e) => (JSON.parse(e.data) as { delta: { type: string; partial_json: string } }).delta)
      .map((d) => (assert.equal(d.type, "input_json_delta"), d.partial_json))
      .join("");
    assert.deepEqual(JSON.parse(json), { query: "find one two three four five six seven" });
    const delta = JSON.parse(events.at(-2)?.data ?? "{}") as { delta: { stop_reason: string }; usage: { output_tokens: number } };
    assert.equal(delta.delta.stop_reason, "tool_use");
    assert.equal(delta.usage.output_tokens, 3);
  });

  it("answers in text with tool_choice none, or after a tool result", async () => {
    const none = await anthropic({ ...base, tool_choice: { type: "none" } });
    assert.equal(none["stop_reason"], "end_turn");
    assert.equal((none["content"] as Array<{ type: string }>)[0]?.type, "text");

    const call = { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "search", input: { query: "x" } }] };
    const result = { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "found it" }] };
    const after = await anthropic({ ...base, messages: [ask, call, result] });
    assert.equal(after["stop_reason"], "end_turn");
    // The last user message holds no text, so the usual reply quotes nothing.
    assert.deepEqual(after["content"], [{ type: "text", text: "mock reply to" }]);
  });
});

describe("mock provider: OpenAI chat tool calls", () => {
  let mock: MockProvider;
  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });
  beforeEach(() => mock.reset());

  const tools = [
    { type: "function", function: { name: "lookup", description: "Look something up", parameters: { type: "object", properties: { query: { type: "string" } } } } },
    { type: "function", function: { name: "other", parameters: { type: "object" } } },
  ];
  const ask = { role: "user", content: "find one two three four five six seven eight nine" };
  const base = { model: "gpt-4o", tools, messages: [ask] };

  async function chat(body: unknown): Promise<Record<string, unknown>> {
    const res = await post(`${mock.url}/v1/chat/completions`, body);
    assert.equal(res.status, 200);
    return (await res.json()) as Record<string, unknown>;
  }

  it("calls the first function tool with the first 8 words of the last user text", async () => {
    const raw = JSON.stringify(base);
    const json = await chat(raw);
    const choice = (json["choices"] as Array<Record<string, unknown>>)[0];
    assert.equal(choice?.["finish_reason"], "tool_calls");
    assert.deepEqual(choice?.["message"], {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_mock_1", type: "function", function: { name: "lookup", arguments: '{"query":"find one two three four five six seven"}' } }],
      refusal: null,
    });
    const input = Math.ceil(raw.length / 4);
    assert.deepEqual(json["usage"], { prompt_tokens: input, completion_tokens: 3, total_tokens: input + 3 });
  });

  it("streams the call: id, type and name first, arguments in pieces, finish, usage, [DONE]", async () => {
    const res = await post(`${mock.url}/v1/chat/completions`, { ...base, stream: true, stream_options: { include_usage: true } });
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.data, "[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as { choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }>; usage: unknown });
    const first = chunks[0]?.choices[0]?.delta;
    assert.equal(first?.["role"], "assistant");
    const calls = first?.["tool_calls"] as Array<{ id: string }>;
    assert.match(calls[0]?.id ?? "", /^call_mock_\d+$/);
    assert.deepEqual(calls, [{ index: 0, id: calls[0]?.id, type: "function", function: { name: "lookup", arguments: "" } }]);
    const pieces = chunks.slice(1, -2).map((c) => (c.choices[0]?.delta["tool_calls"] as Array<{ index: number; function: { arguments: string } }>)[0]!);
    assert.ok(pieces.length >= 2 && pieces.length <= 3);
    assert.ok(pieces.every((p) => p.index === 0 && p.function.arguments !== ""));
    assert.deepEqual(JSON.parse(pieces.map((p) => p.function.arguments).join("")), { query: "find one two three four five six seven" });
    assert.equal(chunks.at(-2)?.choices[0]?.finish_reason, "tool_calls");
    assert.deepEqual(chunks.at(-1)?.choices, []);
    assert.equal((chunks.at(-1)?.usage as { completion_tokens: number }).completion_tokens, pieces.length);
  });

  it("answers in text with tool_choice none, or after a tool message", async () => {
    const none = await chat({ ...base, tool_choice: "none" });
    assert.equal((none["choices"] as Array<{ finish_reason: string }>)[0]?.finish_reason, "stop");
    const after = await chat({
      ...base,
      messages: [
        ask,
        { role: "assistant", content: null, tool_calls: [{ id: "call_mock_1", type: "function", function: { name: "lookup", arguments: "{}" } }] },
        { role: "tool", tool_call_id: "call_mock_1", content: "found" },
      ],
    });
    const choice = (after["choices"] as Array<{ finish_reason: string; message: { content: string } }>)[0];
    assert.equal(choice?.finish_reason, "stop");
    assert.match(choice?.message.content ?? "", /^mock reply to find/);
  });
});
