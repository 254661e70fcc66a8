// /metrics on the admin port: the exposition parses with Prometheus's own parser (promtool), every
// series of the router's metrics exists from the start, and e2e traffic through the Envoy harness
// (success, fallback, quota 429, cache hit, streams whole and truncated) moves the stream, request
// and GenAI metrics, and writes one log line per request, as it should.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { GatewayMetrics } from "../src/metrics/metrics";
import { NO_PROMTOOL, promtoolFindings, samples, sum } from "./support/exposition";
import { examplePolicy, REPO_ROOT } from "./support/service";
import { startStack, type Doc, type Stack } from "./support/stack";

async function scrape(port: number | undefined): Promise<{ type: string | null; text: string }> {
  assert.ok(port !== undefined, "the admin port is on");
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return { type: res.headers.get("content-type"), text: await res.text() };
}

describe("GatewayMetrics", () => {
  it("exposes every router series from the start, and the exposition parses and lints clean", { skip: NO_PROMTOOL }, async () => {
    const m = new GatewayMetrics();
    m.policyLoaded("h1");
    const { body } = await m.text();
    const s = samples(body);
    for (const phase of ["router", "upstream"]) {
      for (const end of ["ok", "cancelled", "error"]) assert.equal(s.get(`llm_router_ext_proc_streams_total{phase="${phase}",end="${end}"}`), 0);
      assert.equal(s.get(`llm_router_ext_proc_streams_active{phase="${phase}"}`), 0);
    }
    for (const result of ["applied", "unchanged", "rejected"]) assert.equal(s.get(`llm_router_policy_reloads_total{result="${result}"}`), 0);
    assert.equal(s.get('llm_router_policy_info{hash="h1"}'), 1);
    assert.deepEqual(promtoolFindings(body), []);
  });

  it("README lists every metric the service registers", () => {
    const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const names = new GatewayMetrics({ processMetrics: false }).registry.getMetricsAsArray().map((m) => m.name);
    assert.ok(names.length > 25);
    for (const name of names) assert.ok(readme.includes(`\`${name}\``), `${name} is not in README "Metrics"`);
  });

  it("counts a stream's messages and end, and keeps one policy_info series", async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    const st = m.stream("upstream");
    st.opened();
    st.answered("request_headers", 0.00003);
    st.answered("request_headers", 0.002);
    assert.equal(samples((await m.text()).body).get('llm_router_ext_proc_streams_active{phase="upstream"}'), 1);
    st.ended("cancelled");
    m.policyLoaded("h1");
    m.policyLoaded("h2");
    const s = samples((await m.text()).body);
    assert.equal(s.get('llm_router_ext_proc_streams_active{phase="upstream"}'), 0);
    assert.equal(s.get('llm_router_ext_proc_streams_total{phase="upstream",end="cancelled"}'), 1);
    assert.equal(s.get('llm_router_ext_proc_message_duration_seconds_count{phase="upstream",message="request_headers"}'), 2);
    assert.equal(s.get('llm_router_ext_proc_message_duration_seconds_bucket{le="0.00005",phase="upstream",message="request_headers"}'), 1);
    assert.equal(s.get('llm_router_policy_info{hash="h1"}'), undefined, "the old policy's series is gone");
    assert.equal(s.get('llm_router_policy_info{hash="h2"}'), 1);
  });
});

describe("/metrics after traffic through the Envoy harness", () => {
  let s: Stack;
  const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
  const chat = JSON.stringify({ model: "smart", messages: [{ role: "user", content: "hi" }] });
  before(async () => {
    s = await startStack(examplePolicy() as Doc);
  });
  after(() => s.close());

  it("counts both phases' streams and messages, and policy reloads by result", { skip: NO_PROMTOOL }, async () => {
    const before = samples((await scrape(s.svc.adminPort)).text);
    for (let i = 0; i < 3; i++) assert.equal((await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat })).status, 200);
    const refused = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { ...ALICE, authorization: "Bearer nope" }, body: chat });
    assert.equal(refused.status, 401);
    // A rejected reload (invalid JSON), then the original content again (unchanged).
    const original = JSON.stringify(examplePolicy());
    writeFileSync(s.svc.policyFile, "{ not json");
    assert.equal((await s.svc.policy.reload()).ok, false);
    writeFileSync(s.svc.policyFile, original);
    await s.svc.policy.reload();

    const { type, text } = await scrape(s.svc.adminPort);
    assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
    assert.deepEqual(promtoolFindings(text), []);
    const after = samples(text);
    const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
    // Four router streams (three routed, one refused on its headers), three upstream attempts.
    assert.equal(delta('llm_router_ext_proc_streams_total{phase="router",end="ok"}'), 4);
    assert.equal(delta('llm_router_ext_proc_streams_total{phase="upstream",end="ok"}'), 3);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="router",message="request_headers"}'), 4);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="router",message="request_body"}'), 3);
    assert.equal(delta('llm_router_ext_proc_message_duration_seconds_count{phase="upstream",message="response_headers"}'), 3);
    assert.equal(after.get('llm_router_ext_proc_streams_active{phase="router"}'), 0);
    assert.equal(delta('llm_router_policy_reloads_total{result="rejected"}'), 1);
    assert.equal(after.get(`llm_router_policy_info{hash="${s.svc.policy.current.hash}"}`), 1);
    assert.ok(after.has("process_cpu_seconds_total"), "Node process metrics under their usual names");
  });
});

describe("request and GenAI metrics, and the request log, after traffic through the Envoy harness", () => {
  let s: Stack;
  const lines: Array<Record<string, unknown>> = [];
  const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
  const BOB = { "content-type": "application/json", authorization: "Bearer sk-demo-bob" };
  const ANTHROPIC_ALICE = { "content-type": "application/json", "x-api-key": "sk-demo-alice", "anthropic-version": "2023-06-01" };
  const chat = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "tell me a story" }], ...extra });
  const post = (body: string, headers: Record<string, string> = ALICE, path = "/v1/chat/completions") => s.envoy.request({ method: "POST", path, headers, body });
  let before_: Map<string, number>;
  let after_: Map<string, number>;
  let text = "";
  const delta = (name: string, want: Record<string, string> = {}) => sum(after_, name, want) - sum(before_, name, want);
  const requestLines = () => lines.filter((l) => l.msg === "request");

  before(async () => {
    const doc = examplePolicy() as Doc;
    for (const r of doc.routes) if (r.name === "fast") r.cache = { ttl: "10m" };
    (doc as Record<string, unknown>).limits = { rules: [{ name: "bob-rpm", match: { consumers: ["bob"] }, requestsPerMinute: 1 }] };
    (doc as Record<string, unknown>).metrics = { perConsumer: true };
    // Failures alone never cool a target down here, so each request starts at the chain's head.
    doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 1000 } };
    // Debug: the log checks below also show that no body is logged without --log-bodies.
    const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    s = await startStack(doc, { log, streamChunks: 6 });
    before_ = samples((await scrape(s.svc.adminPort)).text);
  });
  after(() => s.close());

  /** Waits until every router stream so far has closed (its summary is recorded at close). */
  async function settled(count: number): Promise<void> {
    for (let i = 0; i < 200 && requestLines().length < count; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(requestLines().length, count);
  }

  it("serves the traffic: success, fallback, a quota 429, a cache hit, streams whole and cut", async () => {
    assert.equal((await post(chat("smart"))).status, 200);
    s.openai.failNext(1, 503);
    const fallback = await post(chat("smart"));
    assert.equal(fallback.status, 200);
    assert.equal(fallback.headers["x-llm-router-target"], "azure-gpt-4o");
    assert.equal((await post(chat("fast", { messages: [{ role: "user", content: "bob" }] }), BOB)).status, 200);
    const refused = await post(chat("fast", { messages: [{ role: "user", content: "bob again" }] }), BOB);
    assert.equal(refused.status, 429);
    assert.match(String(refused.headers["x-request-id"]), /^[\w-]{8,}/, "refusals carry the request id");
    assert.equal((await post(chat("fast"))).headers["x-llm-cache"], "miss");
    const hit = await post(chat("fast"));
    assert.equal(hit.headers["x-llm-cache"], "hit");
    const whole = await post(chat("smart", { stream: true }));
    assert.match(whole.text(), /data: \[DONE\]/);
    s.openai.truncateNextStream(3);
    const cut = await post(chat("smart", { stream: true }));
    assert.equal(cut.status, 200);
    assert.doesNotMatch(cut.text(), /\[DONE\]/);
    const last = cut.text().trim().split("\n\n").at(-1) ?? "";
    assert.match(last, /^data: /);
    const event = JSON.parse(last.slice("data: ".length)) as { error: { type: string; code: string } };
    assert.deepEqual([event.error.type, event.error.code], ["server_error", "upstream_stream_truncated"]);
    // message_start, content_block_start, ping, then two deltas: cut before content_block_stop.
    s.anthropic.truncateNextStream(5);
    const cutMessages = await post(JSON.stringify({ model: "claude", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] }), ANTHROPIC_ALICE, "/v1/messages");
    assert.equal(cutMessages.status, 200);
    assert.match(cutMessages.text(), /event: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"The provider's stream ended/);
    assert.equal((await post(chat("no-such-model"))).status, 404);
    // Passthrough: the mock provider serves no /v1/models, so its own 404 comes back.
    const models = await s.envoy.request({ method: "GET", path: "/v1/models", headers: { authorization: "Bearer sk-demo-alice" } });
    assert.equal(models.status, 404);
    assert.equal(models.headers["x-llm-router-error"], undefined, "the provider's answer, not the gateway's");
    assert.match(String(models.headers["x-request-id"]), /./, "passthrough answers carry the request id");
    await settled(11);
    const scraped = await scrape(s.svc.adminPort);
    text = scraped.text;
    after_ = samples(text);
  });

  it("the exposition parses and lints clean with the request and GenAI metrics in it", { skip: NO_PROMTOOL }, () => {
    assert.deepEqual(promtoolFindings(text), []);
    for (const type of ["# TYPE gen_ai_client_token_usage_token histogram", "# TYPE gen_ai_server_request_duration_seconds histogram", "# TYPE gen_ai_server_time_to_first_token_seconds histogram", "# TYPE gen_ai_server_time_per_output_token_seconds histogram", "# TYPE llm_router_requests_total counter", "# TYPE llm_router_upstream_latency_seconds histogram"]) {
      assert.ok(text.includes(type), type);
    }
  });

  it("counts requests by route, answering target, outcome and status class", () => {
    const req = "llm_router_requests_total";
    assert.equal(delta(req, { route: "smart", target: "openai-gpt-4o", provider: "openai", outcome: "success", status_class: "2xx" }), 2, "one JSON, one whole stream");
    assert.equal(delta(req, { route: "smart", target: "azure-gpt-4o", provider: "azure", outcome: "success" }), 1);
    assert.equal(delta(req, { route: "fast", outcome: "refused", status_class: "4xx", target: "openai-gpt-4o-mini" }), 1, "the 429");
    assert.equal(delta(req, { route: "fast", outcome: "cache_hit", status_class: "2xx" }), 1);
    assert.equal(delta(req, { route: "smart", outcome: "truncated", status_class: "2xx" }), 1);
    assert.equal(delta(req, { route: "claude", outcome: "truncated", target: "claude-sonnet", provider: "anthropic" }), 1);
    assert.equal(delta(req, { route: "none", target: "none", outcome: "refused", status_class: "4xx" }), 1, "model_not_found: refused before routing");
    assert.equal(delta(req, { route: "__passthrough", target: "openai-gpt-4o", outcome: "upstream_error", status_class: "4xx" }), 1);
    assert.equal(delta(req), 11);
    assert.equal(delta("llm_router_gateway_errors_total", { code: "rate_limit_exceeded" }), 1);
    assert.equal(delta("llm_router_gateway_errors_total", { code: "model_not_found" }), 1);
  });

  it("counts attempts, fallbacks, truncations, quota decisions, cache lookups and Redis-free cost", () => {
    assert.equal(delta("llm_router_upstream_attempts_total", { route: "smart", target: "openai-gpt-4o", status_class: "5xx" }), 1);
    assert.equal(delta("llm_router_upstream_attempts_total", { route: "smart", target: "azure-gpt-4o", status_class: "2xx" }), 1);
    assert.equal(delta("llm_router_upstream_attempts_total"), 9, "eight answered requests went upstream (one a passthrough), one of them twice");
    assert.equal(delta("llm_router_upstream_latency_seconds_count", { target: "openai-gpt-4o" }), 5, "four chat requests and the passthrough");
    assert.equal(delta("llm_router_fallbacks_total", { route: "smart", target: "azure-gpt-4o" }), 1);
    assert.equal(delta("llm_router_fallbacks_total"), 1);
    assert.equal(delta("llm_router_truncated_streams_total", { route: "smart", target: "openai-gpt-4o", provider: "openai" }), 1);
    assert.equal(delta("llm_router_truncated_streams_total"), 2);
    assert.equal(delta("llm_router_quota_decisions_total", { rule: "bob-rpm", outcome: "admitted" }), 1);
    assert.equal(delta("llm_router_quota_decisions_total", { rule: "bob-rpm", outcome: "rejected" }), 1);
    assert.equal(delta("llm_router_cache_lookups_total", { route: "fast", result: "miss" }), 3, "bob's two (the lookup comes before admission) and alice's first");
    assert.equal(delta("llm_router_cache_lookups_total", { route: "fast", result: "hit" }), 1);
    assert.equal(delta("llm_router_cache_events_total", { event: "stored" }), 2);
    assert.equal(delta("llm_router_request_overhead_seconds_count", { phase: "router" }), 11);
    assert.equal(delta("llm_router_request_overhead_seconds_count", { phase: "upstream" }), 9);
    // Every answer that went upstream was settled; tokens reserved and settled are both counted.
    assert.ok(delta("llm_router_quota_reserved_tokens_total", { route: "smart" }) > 0);
    assert.ok(delta("llm_router_quota_settled_tokens_total", { route: "smart" }) > 0);
    assert.ok(delta("llm_router_cost_usd_total", { provider: "openai", model: "gpt-4o" }) > 0);
    assert.ok(delta("llm_router_consumer_cost_usd_total", { consumer: "alice" }) > 0, "per-consumer cost: the policy opts in");
    assert.equal(delta("llm_router_consumer_cost_usd_total", { consumer: "unknown" }), 0);
  });

  it("records the GenAI instruments with Envoy AI Gateway's names and labels", () => {
    const chatSmart = { gen_ai_operation_name: "chat", gen_ai_provider_name: "openai", gen_ai_original_model: "smart", gen_ai_request_model: "gpt-4o" };
    // Reported usage only: the JSON answer and the whole stream (the cut stream's usage is estimated).
    assert.equal(delta("gen_ai_client_token_usage_token_count", { ...chatSmart, gen_ai_token_type: "input" }), 2);
    assert.equal(delta("gen_ai_client_token_usage_token_count", { ...chatSmart, gen_ai_token_type: "output" }), 2);
    assert.ok(delta("gen_ai_client_token_usage_token_sum", { ...chatSmart, gen_ai_token_type: "output" }) > 0);
    assert.equal(delta("gen_ai_server_request_duration_seconds_count", { ...chatSmart, error_type: "" }), 2);
    assert.equal(delta("gen_ai_server_request_duration_seconds_count", { ...chatSmart, error_type: "truncated" }), 1);
    assert.equal(delta("gen_ai_server_request_duration_seconds_count", { gen_ai_provider_name: "azure.ai.openai", gen_ai_request_model: "gpt-4o", error_type: "" }), 1);
    assert.equal(delta("gen_ai_server_request_duration_seconds_count", { gen_ai_provider_name: "anthropic", gen_ai_original_model: "claude", error_type: "truncated" }), 1);
    // Streams only: the whole one and both cut ones had output before they ended.
    assert.equal(delta("gen_ai_server_time_to_first_token_seconds_count", chatSmart), 2);
    assert.equal(delta("gen_ai_server_time_to_first_token_seconds_count"), 3);
    assert.equal(delta("gen_ai_server_time_per_output_token_seconds_count", chatSmart), 1, "successful streams only");
    // The mock answers with the model it was asked for, so the response model is the upstream one.
    assert.equal(delta("gen_ai_server_request_duration_seconds_count", { gen_ai_response_model: "gpt-4o" }), 4);
  });

  it("times a stream from the request to its first output, and returns the id and overhead to the client", async () => {
    s.openai.delayNext(1, 150);
    const res = await post(chat("smart", { stream: true }), { ...ALICE, "x-request-id": "req-ttft-1" });
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-request-id"], "req-ttft-1");
    const overhead = Number(res.headers["x-llm-router-overhead-ms"]);
    assert.ok(overhead > 0 && overhead < 150, `overhead ${overhead} ms`);
    await settled(12);
    const line = requestLines().find((l) => l.requestId === "req-ttft-1");
    assert.ok(line);
    const ttft = line.ttftMs as number;
    assert.ok(ttft >= 150, `ttft ${ttft} ms includes the provider's 150 ms before its headers`);
    assert.ok((line.durationMs as number) >= ttft);
    assert.ok((line.overheadMs as number) >= overhead, "the whole request's overhead includes the part before the answer");
    // A client's id that is not tame (too long, spaces) is replaced, and the replacement returned.
    const odd = await post(chat("smart"), { ...ALICE, "x-request-id": "a b" });
    assert.notEqual(odd.headers["x-request-id"], "a b");
    assert.match(String(odd.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
  });

  it("writes one JSON line per request, with the id the client got, and never a credential", () => {
    const reqs = requestLines();
    const fallback = reqs.find((l) => l.target === "azure-gpt-4o");
    assert.ok(fallback, "the fallback's line");
    assert.equal(fallback.firstTarget, "openai-gpt-4o");
    assert.equal(fallback.attempts, 2);
    assert.equal(fallback.status, 200);
    assert.equal(fallback.consumer, "alice");
    assert.equal(fallback.route, "smart");
    assert.equal(fallback.model, "smart");
    assert.equal(typeof fallback.overheadMs, "number");
    assert.ok((fallback.tokens as { input: number }).input > 0);
    const failedAttempt = lines.find((l) => l.msg === "upstream attempt failed" && l.requestId === fallback.requestId);
    assert.ok(failedAttempt, "the failed first attempt has its own line, joined by request id");
    assert.deepEqual([failedAttempt.target, failedAttempt.status, failedAttempt.attempt], ["openai-gpt-4o", 503, 1]);
    const refused = reqs.find((l) => l.outcome === "refused" && l.error === "rate_limit_exceeded");
    assert.ok(refused);
    assert.equal(refused.consumer, "bob");
    assert.equal(refused.status, 429);
    const truncated = reqs.filter((l) => l.outcome === "truncated");
    assert.equal(truncated.length, 2);
    assert.ok(truncated.every((l) => typeof l.ttftMs === "number" && (l.tokens as { estimated?: boolean }).estimated === true));
    assert.ok(lines.some((l) => l.msg === "upstream stream ended without its terminal event"));
    assert.ok(!lines.some((l) => l.msg === "request body" || l.msg === "response body"), "no body without --log-bodies, even at debug");
    assert.ok(lines.some((l) => l.msg === "upstream attempt" && l.status === 200), "successful attempts at debug");
    const all = JSON.stringify(lines);
    for (const secret of ["sk-demo-alice", "sk-demo-bob", "sk-provider-openai-SECRET", "azure-provider-SECRET", "sk-ant-provider-SECRET"]) assert.ok(!all.includes(secret), `${secret} in the logs`);
  });
});

describe("--log-bodies: bodies at debug level, only when asked for, cut at the limit", () => {
  let s: Stack;
  const lines: Array<Record<string, unknown>> = [];
  before(async () => {
    const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    s = await startStack(examplePolicy() as Doc, { log, logBodyBytes: 64 });
  });
  after(() => s.close());

  it("logs the first 64 bytes of the request and of the answer under the request id, and never a header", async () => {
    const prompt = "a prompt long enough to be cut at sixty-four bytes, and then some more";
    const body = JSON.stringify({ model: "fast", messages: [{ role: "user", content: prompt }] });
    const res = await s.envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", authorization: "Bearer sk-demo-alice", "x-request-id": "req-bodies-1" }, body });
    assert.equal(res.status, 200);
    for (let i = 0; i < 100 && !lines.some((l) => l.msg === "request"); i++) await new Promise((r) => setTimeout(r, 10));
    const request = lines.find((l) => l.msg === "request body");
    assert.ok(request);
    assert.deepEqual([request.requestId, request.body, request.bytes, request.truncated], ["req-bodies-1", body.slice(0, 64), body.length, true]);
    const answer = lines.find((l) => l.msg === "response body");
    assert.ok(answer);
    assert.equal(answer.requestId, "req-bodies-1");
    assert.equal(answer.body, res.text().slice(0, 64));
    const all = JSON.stringify(lines);
    for (const secret of ["sk-demo-alice", "sk-provider-openai-SECRET"]) assert.ok(!all.includes(secret), `${secret} in the logs`);
  });
});
