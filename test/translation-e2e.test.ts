// Translation end to end: client -> Envoy harness (bootstrap rendered by render-envoy) -> llm-router
// (both phases, real gRPC) -> one mock provider per provider host. A route chains OpenAI ->
// Anthropic -> Gemini; failing the first targets makes each attempt reach the next provider in its
// own API, and the client must always get a valid OpenAI answer (SSE with usage, or JSON, tools
// included). Anthropic clients reach an OpenAI target; Bedrock attempts are SigV4-signed.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { startMockProvider, type MockProvider, type RecordedRequest } from "../src/mock-provider/server";
import { EnvoyHarness } from "./harness/envoy-harness";
import { examplePolicy, startTestService, TEST_ENV, type TestService } from "./support/service";
import { renderedEnvoyYaml } from "./support/stack";

const ENV = {
  ...TEST_ENV,
  GEMINI_API_KEY: "gemini-provider-SECRET",
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const CAPS = ["tools", "vision", "json", "streaming"];
const TOOLS = [{ type: "function", function: { name: "lookup", description: "Look something up", parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] } } }];

function policy(): Record<string, unknown> {
  const doc = examplePolicy();
  delete doc.passthrough;
  doc.consumers = (doc.consumers as Array<{ id: string }>).filter((c) => c.id === "alice");
  doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 1000 } };
  doc.providers = {
    openai: { type: "openai", credential: { env: "OPENAI_API_KEY" } },
    anthropic: { type: "anthropic", credential: { env: "ANTHROPIC_API_KEY" } },
    gemini: { type: "gemini", credential: { env: "GEMINI_API_KEY" } },
    bedrock: { type: "bedrock", region: "us-east-1", awsCredentials: { accessKeyId: { env: "AWS_ACCESS_KEY_ID" }, secretAccessKey: { env: "AWS_SECRET_ACCESS_KEY" } } },
  };
  doc.targets = {
    gpt: { provider: "openai", model: "gpt-4o", capabilities: CAPS },
    claude: { provider: "anthropic", model: "claude-sonnet-4-5", maxOutputTokens: 2048, capabilities: CAPS },
    flash: { provider: "gemini", model: "gemini-2.0-flash", capabilities: CAPS },
    haiku: { provider: "bedrock", model: "anthropic.claude-3-5-haiku-20241022-v1:0", capabilities: CAPS },
  };
  doc.routes = [
    { name: "mixed", match: { models: ["mixed"] }, targets: ["gpt", "claude", "flash"] },
    { name: "aws", match: { models: ["aws"] }, targets: ["haiku"] },
    { name: "oai", match: { models: ["oai"] }, targets: ["gpt"] },
    { name: "claude-only", match: { models: ["claude-only"] }, targets: ["claude"] },
  ];
  return doc;
}

interface Chunk {
  object?: string;
  choices?: Array<{ delta?: { content?: string; role?: string; tool_calls?: Array<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> }; finish_reason?: string | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  error?: unknown;
}

/** Parses an OpenAI SSE body strictly: data lines of chunks, ending with [DONE]. */
function openAiStream(text: string): { chunks: Chunk[]; content: string; finish: string | undefined; usage: Chunk["usage"]; toolArgs: string; toolName: string | undefined } {
  const events = text.split("\n\n").filter((e) => e.trim() !== "");
  assert.ok(events.length > 2, text);
  assert.equal(events[events.length - 1], "data: [DONE]", "the stream ends with [DONE]");
  const chunks = events.slice(0, -1).map((e) => {
    assert.match(e, /^data: /, e);
    return JSON.parse(e.slice(6)) as Chunk;
  });
  let content = "";
  let finish: string | undefined;
  let usage: Chunk["usage"];
  let toolArgs = "";
  let toolName: string | undefined;
  for (const c of chunks) {
    assert.equal(c.error, undefined, JSON.stringify(c));
    assert.equal(c.object, "chat.completion.chunk");
    for (const choice of c.choices ?? []) {
      content += choice.delta?.content ?? "";
      if (choice.finish_reason) finish = choice.finish_reason;
      for (const call of choice.delta?.tool_calls ?? []) {
        toolName ??= call.function?.name;
        toolArgs += call.function?.arguments ?? "";
      }
    }
    if (c.usage) usage = c.usage;
  }
  return { chunks, content, finish, usage, toolArgs, toolName };
}

function header(r: RecordedRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join("|") : v;
}

describe("translation through the Envoy harness (chain OpenAI -> Anthropic -> Gemini)", () => {
  let svc: TestService;
  let envoy: EnvoyHarness;
  let openai: MockProvider, anthropic: MockProvider, gemini: MockProvider, bedrock: MockProvider;

  before(async () => {
    const doc = policy();
    svc = await startTestService(doc, ENV);
    const mock = () => startMockProvider({ streamChunks: 6 });
    [openai, anthropic, gemini, bedrock] = await Promise.all([mock(), mock(), mock(), mock()]);
    envoy = await EnvoyHarness.start({
      envoyYaml: renderedEnvoyYaml(doc),
      extProcAddress: svc.address,
      hostEndpoints: {
        "api.openai.com": openai.url,
        "api.anthropic.com": anthropic.url,
        "generativelanguage.googleapis.com": gemini.url,
        "bedrock-runtime.us-east-1.amazonaws.com": bedrock.url,
      },
    });
  });
  after(async () => {
    await envoy.close();
    await Promise.all([openai, anthropic, gemini, bedrock].map((m) => m.close()));
    await svc.stop();
  });
  beforeEach(() => {
    for (const m of [openai, anthropic, gemini, bedrock]) m.reset();
  });

  const streamBody = (extra: object = {}) =>
    JSON.stringify({ model: "mixed", stream: true, stream_options: { include_usage: true }, messages: [{ role: "system", content: "be brief" }, { role: "user", content: "tell me a story" }], ...extra });

  for (const [name, failures, target, provider] of [
    ["OpenAI answers first", 0, "gpt", "openai"],
    ["OpenAI fails (503): Anthropic answers", 1, "claude", "anthropic"],
    ["OpenAI 503, Anthropic 529: Gemini answers", 2, "flash", "gemini"],
  ] as const) {
    it(`stream: ${name}, and the client gets a valid OpenAI SSE stream with usage`, async () => {
      if (failures >= 1) openai.failNext(1, 503);
      if (failures >= 2) anthropic.failNext(1, 529);
      const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: streamBody() });
      assert.equal(res.status, 200, res.text());
      assert.equal(res.attempts.length, failures + 1);
      assert.equal(res.headers["x-llm-router-target"], target);
      assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
      assert.equal(res.headers["content-length"], undefined);
      const s = openAiStream(res.text());
      assert.match(s.content, /^mock reply to tell me a/);
      assert.equal(s.finish, "stop");
      assert.ok(s.usage && s.usage.prompt_tokens > 0 && s.usage.completion_tokens === 6 && s.usage.total_tokens === s.usage.prompt_tokens + 6, JSON.stringify(s.usage));
      // The provider that answered got its own API, path and credentials, and nothing else's.
      const got = { openai, anthropic, gemini }[provider].requests.at(-1);
      assert.ok(got);
      const json = got.json as Record<string, unknown>;
      if (provider === "anthropic") {
        assert.equal(got.path, "/v1/messages");
        assert.equal(header(got, "x-api-key"), "sk-ant-provider-SECRET");
        assert.equal(header(got, "authorization"), undefined);
        assert.equal(json.model, "claude-sonnet-4-5");
        assert.equal(json.system, "be brief");
        assert.equal(json.max_tokens, 2048, "the target's maxOutputTokens when the client gives none");
        assert.equal(json.stream, true);
      } else if (provider === "gemini") {
        assert.equal(got.path, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
        assert.equal(header(got, "x-goog-api-key"), "gemini-provider-SECRET");
        assert.equal(header(got, "authorization"), undefined);
        assert.equal(header(got, "x-api-key"), undefined);
        assert.equal(json.model, undefined);
        assert.deepEqual(json.systemInstruction, { parts: [{ text: "be brief" }] });
      } else {
        assert.equal(got.path, "/v1/chat/completions");
      }
      assert.equal(header(got, "content-length"), String(got.body.length));
      assert.ok(!JSON.stringify(got.headers).includes("sk-demo-"), "client key leaked");
    });
  }

  for (const [name, failures, target] of [
    ["Anthropic", 1, "claude"],
    ["Gemini", 2, "flash"],
  ] as const) {
    it(`JSON with tools: ${name} answers with a tool call in OpenAI shape`, async () => {
      openai.failNext(1, 503);
      if (failures >= 2) anthropic.failNext(1, 529);
      const body = JSON.stringify({ model: "mixed", messages: [{ role: "user", content: "find the weather in Paris" }], tools: TOOLS, tool_choice: "auto" });
      const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body });
      assert.equal(res.status, 200, res.text());
      assert.equal(res.headers["x-llm-router-target"], target);
      assert.match(String(res.headers["content-type"]), /^application\/json/);
      const out = res.json() as { object: string; choices: Array<{ finish_reason: string; message: { role: string; tool_calls: Array<{ id: string; type: string; function: { name: string; arguments: string } }> } }>; usage: { prompt_tokens: number; completion_tokens: number } };
      assert.equal(out.object, "chat.completion");
      const choice = out.choices[0]!;
      assert.equal(choice.finish_reason, "tool_calls");
      assert.equal(choice.message.role, "assistant");
      const call = choice.message.tool_calls[0]!;
      assert.equal(call.type, "function");
      assert.equal(call.function.name, "lookup");
      assert.deepEqual(JSON.parse(call.function.arguments), { query: "find the weather in Paris" });
      assert.ok(typeof call.id === "string" && call.id !== "");
      assert.ok(out.usage.prompt_tokens > 0);
      // The translated body's length is not known from the provider's headers: Envoy frames it.
      assert.equal(res.headers["content-length"], undefined);
    });
  }

  it("stream with tools: Anthropic's input_json_delta arrives as OpenAI tool-call deltas", async () => {
    openai.failNext(1, 503);
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: streamBody({ messages: [{ role: "user", content: "find the weather in Paris" }], tools: TOOLS }) });
    assert.equal(res.status, 200, res.text());
    const s = openAiStream(res.text());
    assert.equal(s.finish, "tool_calls");
    assert.equal(s.toolName, "lookup");
    assert.deepEqual(JSON.parse(s.toolArgs), { query: "find the weather in Paris" });
    assert.ok(s.usage && s.usage.prompt_tokens > 0);
  });

  it("a tool result goes back to Anthropic as a tool_result block", async () => {
    openai.failNext(1, 503);
    const messages = [
      { role: "user", content: "find the weather in Paris" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: '{"query":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "sunny, 21C" },
    ];
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "mixed", messages, tools: TOOLS }) });
    assert.equal(res.status, 200, res.text());
    const sent = anthropic.requests.at(-1)?.json as { messages: Array<{ role: string; content: Array<Record<string, unknown>> }> };
    assert.equal(sent.messages.length, 3);
    assert.equal(sent.messages[1]!.content[0]!.type, "tool_use");
    assert.deepEqual(sent.messages[2]!.content[0], { type: "tool_result", tool_use_id: "call_1", content: "sunny, 21C" });
    const out = res.json() as { choices: Array<{ finish_reason: string; message: { content: string } }> };
    assert.equal(out.choices[0]!.finish_reason, "stop");
    assert.match(out.choices[0]!.message.content, /^mock reply/);
  });

  it("every target failing: the client gets the last provider's error as OpenAI error JSON", async () => {
    openai.failNext(1, 503);
    anthropic.failNext(1, 529);
    gemini.failNext(1, 400);
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "mixed", messages: [{ role: "user", content: "hi" }] }) });
    assert.equal(res.status, 400);
    const out = res.json() as { error: { message: string; type: string } };
    assert.equal(out.error.type, "invalid_request_error");
    assert.match(out.error.message, /mock forced failure/);
  });

  it("Anthropic's 529 (overloaded) reaches an OpenAI client as 503 with OpenAI error JSON", async () => {
    anthropic.failNext(2, 529);
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "claude-only", messages: [{ role: "user", content: "hi" }] }) });
    assert.equal(res.status, 503, res.text());
    const out = res.json() as { error: { message: string; type: string } };
    assert.equal(out.error.type, "server_error");
    assert.match(out.error.message, /mock forced failure/);
  });

  it("an Anthropic client on an OpenAI-only route: OpenAI's API goes out, an Anthropic message comes back", async () => {
    const res = await envoy.request({
      method: "POST",
      path: "/v1/messages",
      headers: { ...ALICE, "anthropic-version": "2023-06-01" },
      body: JSON.stringify({ model: "oai", max_tokens: 100, system: "be brief", messages: [{ role: "user", content: "tell me a story" }] }),
    });
    assert.equal(res.status, 200, res.text());
    const sent = openai.requests.at(-1);
    assert.ok(sent);
    assert.equal(sent.path, "/v1/chat/completions");
    assert.equal(header(sent, "authorization"), "Bearer sk-provider-openai-SECRET");
    assert.equal(header(sent, "anthropic-version"), undefined);
    const json = sent.json as { model: string; messages: Array<{ role: string }> };
    assert.equal(json.model, "gpt-4o");
    assert.deepEqual(json.messages.map((m) => m.role), ["system", "user"]);
    const out = res.json() as { type: string; role: string; content: Array<{ type: string; text: string }>; stop_reason: string; usage: { input_tokens: number; output_tokens: number } };
    assert.equal(out.type, "message");
    assert.equal(out.content[0]!.type, "text");
    assert.match(out.content[0]!.text, /^mock reply to tell me a/);
    assert.equal(out.stop_reason, "end_turn");
    assert.ok(out.usage.input_tokens > 0 && out.usage.output_tokens === 6);
  });

  it("an Anthropic streaming client on an OpenAI target gets Anthropic events with usage", async () => {
    const res = await envoy.request({
      method: "POST",
      path: "/v1/messages",
      headers: { ...ALICE, "anthropic-version": "2023-06-01" },
      body: JSON.stringify({ model: "oai", max_tokens: 100, stream: true, messages: [{ role: "user", content: "tell me a story" }] }),
    });
    assert.equal(res.status, 200, res.text());
    const events = res.text().split("\n\n").filter((e) => e.trim() !== "").map((e) => /^event: (\S+)/.exec(e)?.[1]);
    assert.equal(events[0], "message_start");
    assert.equal(events.at(-1), "message_stop");
    assert.ok(events.includes("content_block_delta") && events.includes("message_delta"));
  });

  it("Bedrock: SigV4 over the translated body, ConverseStream decoded into OpenAI SSE", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "aws", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "tell me a story" }] }) });
    assert.equal(res.status, 200, res.text());
    const s = openAiStream(res.text());
    assert.match(s.content, /^mock reply to tell me a/);
    assert.ok(s.usage && s.usage.completion_tokens === 6);
    const sent = bedrock.requests.at(-1);
    assert.ok(sent);
    assert.equal(sent.path, "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream");
    const auth = header(sent, "authorization") ?? "";
    assert.match(auth, /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/);
    // Recompute the signature over what the provider received (host, date, body): it must match.
    const signer = new SignatureV4({ service: "bedrock", region: "us-east-1", sha256: Sha256, credentials: { accessKeyId: ENV.AWS_ACCESS_KEY_ID!, secretAccessKey: ENV.AWS_SECRET_ACCESS_KEY! } });
    const amzDate = header(sent, "x-amz-date") ?? "";
    const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
    const again = await signer.sign(
      { method: "POST", protocol: "https:", hostname: "bedrock-runtime.us-east-1.amazonaws.com", path: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream", query: {}, headers: { host: header(sent, "host") ?? "", "content-type": header(sent, "content-type") ?? "" }, body: sent.body },
      { signingDate: date },
    );
    assert.equal(again.headers["authorization"], auth);
    assert.equal(header(sent, "host"), "bedrock-runtime.us-east-1.amazonaws.com");
    assert.ok(!JSON.stringify(sent.headers).includes(ENV.AWS_SECRET_ACCESS_KEY!), "the secret key never leaves");
  });

  it("a request no target of the route can express is refused with a clear 400 before any attempt", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: JSON.stringify({ model: "aws", n: 3, messages: [{ role: "user", content: "hi" }] }) });
    assert.equal(res.status, 400, res.text());
    const out = res.json() as { error: { code: string; message: string } };
    assert.equal(out.error.code, "field_not_supported_by_target");
    assert.match(out.error.message, /\bn\b/);
    assert.equal(bedrock.requests.length, 0);
  });
});
