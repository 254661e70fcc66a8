// Fault injection on the providers, through the Envoy harness (test/harness) and the mock providers:
// a provider drops the TCP connection in the middle of a stream (the client gets the documented
// reset, truncated stream; the usage is settled from estimates, README "Admission, reservation,
// settlement" and "Truncated streams"), or before its response headers (Envoy falls back to the next
// target of the chain). Streams to other providers run at the same time and are unaffected, and
// nothing stays open in the service afterwards.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { sum } from "./support/exposition";
import { metricSamples, settledService, waitFor } from "./support/ext-proc-flows";
import { examplePolicy } from "./support/service";
import { startStack, type Doc, type Stack } from "./support/stack";

const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const CI = { "content-type": "application/json", authorization: "Bearer sk-demo-ci" };
const ANTHROPIC_ALICE = { "content-type": "application/json", "x-api-key": "sk-demo-alice", "anthropic-version": "2023-06-01" };
const TARGETS = ["openai-gpt-4o", "openai-gpt-4o-mini", "azure-gpt-4o", "local-llama", "claude-sonnet"];
/** alice's daily tokens: a window counter (no refill), so what a request settled shows in the next one's headers. */
const ALICE_TPD = 1_000_000;
/** Output reserved for a request without max_tokens (limits.reserveOutputTokens default). */
const RESERVE_OUTPUT = 4096;

const chat = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "tell me a long story about the sea" }], ...extra });

/** The data: payloads of an SSE body (the [DONE] marker as the string). */
function events(text: string): unknown[] {
  return text
    .split("\n\n")
    .flatMap((e) => e.split("\n").filter((l) => l.startsWith("data: ")))
    .map((l) => l.slice(6))
    .map((d) => (d === "[DONE]" ? d : (JSON.parse(d) as unknown)));
}

describe("faults: providers dropping connections", () => {
  let s: Stack;
  const lines: Array<Record<string, unknown>> = [];
  before(async () => {
    const doc = examplePolicy() as Doc;
    (doc as Record<string, unknown>).limits = { rules: [{ name: "alice-tpd", per: "consumer", match: { consumers: ["alice"] }, tokensPerDay: ALICE_TPD }] };
    // Failures alone never cool a target down here: each test starts at the head of its chain.
    doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 1000 } };
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    s = await startStack(doc, { log, streamChunks: 12 });
  });
  after(() => s.close());

  const post = (body: string, headers: Record<string, string> = ALICE, path = "/v1/chat/completions") => s.envoy.request({ method: "POST", path, headers, body });

  /** `n` streams to the providers a test does not break (vLLM, OpenAI's mini, Anthropic): all whole. */
  async function others(n: number, providers: ReadonlyArray<"vllm" | "openai" | "anthropic">): Promise<void> {
    const send = (p: (typeof providers)[number]) =>
      p === "anthropic"
        ? post(JSON.stringify({ model: "claude", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] }), { ...ANTHROPIC_ALICE, "x-api-key": "sk-demo-ci" }, "/v1/messages")
        : post(chat(p === "vllm" ? "llama" : "fast", { stream: true }), CI);
    const results = await Promise.all(Array.from({ length: n }, (_, i) => send(providers[i % providers.length]!)));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.reset, undefined, "not cut");
      const last = events(r.text()).at(-1);
      assert.ok(last === "[DONE]" || (last as { type?: string }).type === "message_stop", "whole");
    }
  }

  /** The request log line of `requestId`, once the router phase's stream closed. */
  async function requestLine(requestId: string): Promise<Record<string, unknown>> {
    let line: Record<string, unknown> | undefined;
    await waitFor(() => (line = lines.find((l) => l.msg === "request" && l.requestId === requestId)) !== undefined, 5000, `the request log line of ${requestId}`);
    return line!;
  }

  async function idle(): Promise<void> {
    await settledService(s.svc, TARGETS);
  }

  it("mid-stream: the client gets the relayed events then a reset (no [DONE], no retry); usage is settled from the estimates; other streams are unaffected", async () => {
    const before_ = await metricSamples(s.svc);
    s.openai.dropNextStream(3);
    const [cut] = await Promise.all([post(chat("smart", { stream: true })), others(6, ["vllm", "anthropic"])]);
    assert.equal(cut.status, 200);
    assert.equal(cut.reset, true, "the client's stream is reset too: it cannot be amended");
    assert.equal(cut.attempts.length, 1, "the response had started: no retry");
    const got = events(cut.text());
    assert.equal(got.length, 3);
    assert.ok(!got.includes("[DONE]"));
    assert.doesNotMatch(cut.text(), /upstream_stream_truncated/, "a reset stream gets no error event (that is for streams that end cleanly)");

    // Settlement: the input as estimated at admission (the prompt), the output estimated from the
    // deltas relayed: the larger of their count and characters / 4.
    const line = await requestLine(String(cut.headers["x-request-id"]));
    assert.equal(line.outcome, "cancelled");
    assert.equal(line.target, "openai-gpt-4o");
    const text = got.map((e) => ((e as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]?.delta?.content ?? "")).filter((c) => c !== "");
    const output = Math.max(text.length, Math.ceil(text.join("").length / 4));
    const reserved = ALICE_TPD - Number(cut.headers["x-ratelimit-remaining-tokens"]);
    assert.deepEqual(line.tokens, { input: reserved - RESERVE_OUTPUT, output, cached: 0, reasoning: 0, estimated: true });
    // The reservation was given back down to that: the next request is admitted with exactly the
    // settled tokens (and its own reservation) taken from alice's day.
    const next = await post(chat("smart", { stream: true }));
    assert.equal(next.status, 200);
    const settled = Number(cut.headers["x-ratelimit-remaining-tokens"]) - Number(next.headers["x-ratelimit-remaining-tokens"]);
    assert.equal(settled, reserved - RESERVE_OUTPUT + output);
    assert.ok(settled < reserved);

    await idle();
    const after_ = await metricSamples(s.svc);
    const delta = (name: string, labels: Record<string, string>) => sum(after_, name, labels) - sum(before_, name, labels);
    assert.equal(delta("llm_router_requests_total", { route: "smart", outcome: "cancelled" }), 1);
    assert.equal(delta("llm_router_requests_total", { route: "smart", outcome: "success" }), 1, "the next one");
    assert.equal(delta("llm_router_requests_total", { outcome: "success" }), 7, "the six others and the next one");
    assert.equal(delta("llm_router_truncated_streams_total", {}), 0, "a reset is cancelled, not truncated");
  });

  it("mid-stream on Anthropic after message_start: input tokens from message_start, output estimated", async () => {
    // message_start, content_block_start, ping, one text delta: then the connection goes.
    s.anthropic.dropNextStream(4);
    const body = JSON.stringify({ model: "claude", max_tokens: 256, stream: true, messages: [{ role: "user", content: "tell me a long story about the sea" }] });
    const [cut] = await Promise.all([post(body, ANTHROPIC_ALICE, "/v1/messages"), others(4, ["vllm", "openai"])]);
    assert.equal(cut.status, 200);
    assert.equal(cut.reset, true);
    const got = events(cut.text()) as Array<{ type: string; message?: { usage: { input_tokens: number } }; delta?: { text?: string } }>;
    assert.deepEqual(got.map((e) => e.type), ["message_start", "content_block_start", "ping", "content_block_delta"]);
    const line = await requestLine(String(cut.headers["x-request-id"]));
    const deltaText = got[3]?.delta?.text ?? "";
    assert.equal(line.outcome, "cancelled");
    assert.deepEqual(line.tokens, { input: got[0]?.message?.usage.input_tokens, output: Math.max(1, Math.ceil(deltaText.length / 4)), cached: 0, reasoning: 0, estimated: true });
    await idle();
  });

  it("mid-stream of a translated answer (Anthropic client, OpenAI target): the input is estimated, not the zeros of the translated message_start", async () => {
    s.openai.dropNextStream(3);
    const body = JSON.stringify({ model: "fast", max_tokens: 256, stream: true, messages: [{ role: "user", content: "tell me a long story about the sea" }] });
    const [cut] = await Promise.all([post(body, ANTHROPIC_ALICE, "/v1/messages"), others(4, ["vllm", "anthropic"])]);
    assert.equal(cut.status, 200);
    assert.equal(cut.reset, true);
    const got = events(cut.text()) as Array<{ type: string; message?: { usage: { input_tokens: number } }; delta?: { text?: string } }>;
    assert.equal(got[0]?.type, "message_start");
    assert.equal(got[0]?.message?.usage.input_tokens, 0, "OpenAI reports usage only at its end");
    const deltas = got.filter((e) => e.type === "content_block_delta").map((e) => e.delta?.text ?? "");
    assert.ok(deltas.length > 0);
    const line = await requestLine(String(cut.headers["x-request-id"]));
    assert.equal(line.outcome, "cancelled");
    const tokens = line.tokens as { input: number; output: number; estimated: boolean };
    assert.equal(tokens.output, Math.max(deltas.length, Math.ceil(deltas.join("").length / 4)));
    assert.equal(tokens.estimated, true);
    assert.ok(tokens.input > 0, "the prompt estimate");
    // What was settled is what the log says: the next identical request finds exactly that taken.
    const next = await post(body, ANTHROPIC_ALICE, "/v1/messages");
    assert.equal(Number(cut.headers["x-ratelimit-remaining-tokens"]) - Number(next.headers["x-ratelimit-remaining-tokens"]), tokens.input + tokens.output);
    await idle();
  });

  it("before the response headers: Envoy retries on the next target of the chain, and the answer is whole", async () => {
    const before_ = await metricSamples(s.svc);
    s.openai.resetNext(2);
    const [json, stream] = await Promise.all([post(chat("smart")), post(chat("smart", { stream: true })), others(4, ["vllm", "anthropic"])]);
    for (const r of [json, stream]) {
      assert.equal(r.status, 200, r.text());
      assert.equal(r.reset, undefined);
      assert.deepEqual(r.attempts.map((a) => a.failure?.kind ?? a.status), ["reset", 200]);
      assert.equal(r.headers["x-llm-router-target"], "azure-gpt-4o");
      assert.equal(r.headers["x-llm-router-attempt"], "2");
    }
    assert.equal((json.json() as { object: string }).object, "chat.completion");
    assert.equal(events(stream.text()).at(-1), "[DONE]");
    await idle();
    const after_ = await metricSamples(s.svc);
    const delta = (name: string, labels: Record<string, string>) => sum(after_, name, labels) - sum(before_, name, labels);
    assert.equal(delta("llm_router_upstream_attempts_total", { target: "openai-gpt-4o", status_class: "none" }), 2, "the dropped attempts: no response");
    assert.equal(delta("llm_router_fallbacks_total", { route: "smart", target: "azure-gpt-4o" }), 2);
    // The answers' own usage was reported: nothing estimated.
    for (const r of [json, stream]) assert.equal(((await requestLine(String(r.headers["x-request-id"]))).tokens as { estimated?: boolean }).estimated, undefined);
    const failed = lines.filter((l) => l.msg === "upstream attempt failed" && l.target === "openai-gpt-4o" && l.status === "no response");
    assert.ok(failed.length >= 2, "each dropped attempt is logged");
  });

  it("every target of the chain drops before headers: Envoy's 503, the reservation released, nothing left open", async () => {
    for (const m of [s.openai, s.azure, s.vllm]) m.resetNext(1);
    const [res] = await Promise.all([post(chat("smart")), others(2, ["anthropic"])]);
    assert.equal(res.status, 503);
    assert.equal(res.attempts.length, 3);
    assert.equal(res.headers["x-llm-router-target"], undefined, "no target answered");
    const line = await requestLine(String(res.headers["x-request-id"]));
    assert.equal(line.outcome, "upstream_error");
    // Released: the next identical request is admitted with the same tokens left as the failed one was.
    const next = await post(chat("smart"));
    assert.equal(next.status, 200);
    assert.equal(next.headers["x-ratelimit-remaining-tokens"], res.headers["x-ratelimit-remaining-tokens"]);
    await idle();
  });
});
