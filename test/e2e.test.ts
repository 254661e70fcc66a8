// End to end: client -> Envoy harness (reading envoy/envoy.yaml, Envoy's protos) -> llm-router
// (both phases, real gRPC) -> mock provider. What the provider receives is asserted byte by byte.
import assert from "node:assert/strict";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { after, before, beforeEach, describe, it } from "node:test";
import { startMockProvider, type MockProvider, type RecordedRequest } from "../src/mock-provider/server";
import { EnvoyHarness } from "./harness/envoy-harness";
import { REPO_ROOT, startTestService, type TestService } from "./support/service";

const JSON_HEADERS = { "content-type": "application/json" };
const ALICE = { ...JSON_HEADERS, authorization: "Bearer sk-demo-alice" };
const chat = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "tell me a story" }], ...extra });

let svc: TestService;
let mock: MockProvider;
let envoy: EnvoyHarness;

before(async () => {
  svc = await startTestService();
  mock = await startMockProvider({ streamChunks: 5 });
  envoy = await EnvoyHarness.start({
    envoyYaml: path.join(REPO_ROOT, "envoy/envoy.yaml"),
    extProcAddress: svc.address,
    hostEndpoints: { "api.openai.com": mock.url, "api.anthropic.com": mock.url, "my-resource.openai.azure.com": mock.url, "vllm.internal": mock.url },
  });
});
after(async () => {
  await envoy.close();
  await mock.close();
  await svc.stop();
});
beforeEach(() => mock.reset());

function header(r: RecordedRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join("|") : v;
}

/** Nothing gateway-internal and none of the client's credentials reach a provider. */
function assertClean(r: RecordedRequest): void {
  for (const name of Object.keys(r.headers)) assert.ok(!name.startsWith("x-llm-router-"), `gateway header ${name} leaked`);
  assert.ok(!JSON.stringify(r.headers).includes("sk-demo-"), "client gateway key leaked");
  assert.equal(header(r, "content-length"), String(r.body.length));
}

describe("end to end through envoy.yaml", () => {
  it("OpenAI chat: alias routed, model, path and credentials rewritten", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { ...ALICE, "x-request-id": "e2e-1" }, body: chat("smart") });
    assert.equal(res.status, 200, res.text());
    const body = res.json() as { model: string; choices: Array<{ message: { content: string } }> };
    assert.equal(body.model, "gpt-4o");
    assert.match(body.choices[0]!.message.content, /mock reply/);
    assert.equal(mock.requests.length, 1);
    const sent = mock.requests[0]!;
    assert.equal(sent.path, "/v1/chat/completions");
    assert.equal(header(sent, "authorization"), "Bearer sk-provider-openai-SECRET");
    assert.equal((sent.json as { model: string }).model, "gpt-4o");
    assert.equal(header(sent, "host"), "api.openai.com");
    assertClean(sent);
    assert.deepEqual(res.rejectedMutations, [], "no mutation the service sends is refused by Envoy's rules");
  });

  it("OpenAI streaming: the SSE stream passes through to the client", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("fast", { stream: true }) });
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    const text = res.text();
    assert.match(text, /"model":"gpt-4o-mini"/);
    assert.ok(text.trimEnd().endsWith("data: [DONE]"));
  });

  it("Anthropic messages with the Anthropic SDK's x-api-key", async () => {
    const res = await envoy.request({
      method: "POST",
      path: "/v1/messages",
      headers: { ...JSON_HEADERS, "x-api-key": "sk-demo-bob", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({ model: "claude", max_tokens: 50, messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 200, res.text());
    const sent = mock.requests[0]!;
    assert.equal(header(sent, "x-api-key"), "sk-ant-provider-SECRET");
    assert.equal(header(sent, "anthropic-version"), "2023-06-01");
    assert.equal(header(sent, "authorization"), undefined);
    assert.equal((sent.json as { model: string }).model, "claude-sonnet-4-5");
    assertClean(sent);
  });

  it("Azure OpenAI: deployment path, api-version and api-key", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("gpt-4o-azure") });
    assert.equal(res.status, 200, res.text());
    const sent = mock.requests[0]!;
    assert.equal(sent.path, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert.equal(header(sent, "api-key"), "azure-provider-SECRET");
    assert.equal(header(sent, "authorization"), undefined);
    assertClean(sent);
  });

  it("embeddings and the Responses API", async () => {
    const emb = await envoy.request({ method: "POST", path: "/v1/embeddings", headers: ALICE, body: JSON.stringify({ model: "embed", input: ["a", "b"] }) });
    assert.equal(emb.status, 200, emb.text());
    assert.equal((mock.requests[0]!.json as { model: string }).model, "text-embedding-3-small");
    const resp = await envoy.request({ method: "POST", path: "/v1/responses", headers: ALICE, body: JSON.stringify({ model: "fast", input: "hi" }) });
    assert.equal(resp.status, 200, resp.text());
    assert.equal(mock.requests[1]!.path, "/v1/responses");
  });

  it("a retried attempt starts from the original request (shared header map, fresh body)", async () => {
    mock.failNext(1, 503);
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: ALICE, body: chat("fast") });
    assert.equal(res.status, 200, res.text());
    assert.equal(res.attempts.length, 2);
    assert.equal(mock.requests.length, 2);
    for (const sent of mock.requests) {
      assert.equal(sent.path, "/v1/chat/completions");
      assert.equal(header(sent, "authorization"), "Bearer sk-provider-openai-SECRET", "exactly one provider credential");
      assert.equal((sent.json as { model: string }).model, "gpt-4o-mini");
      assertClean(sent);
    }
    assert.deepEqual(mock.requests[0]!.body, mock.requests[1]!.body);
  });

  it("a client cannot choose its cluster or forge the routing context", async () => {
    const res = await envoy.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: { ...ALICE, "x-llm-router-cluster": "tgt_claude-sonnet", "x-llm-router-route": "claude", "x-llm-router-ctx": "v1.e30.AAAA", "x-envoy-retry-on": "5xx", "x-envoy-max-retries": "7" },
      body: chat("fast"),
    });
    assert.equal(res.status, 200, res.text());
    assert.equal(res.route?.cluster, "tgt_openai-gpt-4o-mini");
    assert.equal(res.route?.name, "fast");
    assert.equal(res.attempts[0]!.cluster, "tgt_openai-gpt-4o-mini");
    assertClean(mock.requests[0]!);
  });

  it("gzip request bodies are decoded once and forwarded as JSON", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/chat/completions", headers: { ...ALICE, "content-encoding": "gzip" }, body: gzipSync(chat("smart")) });
    assert.equal(res.status, 200, res.text());
    const sent = mock.requests[0]!;
    assert.equal(header(sent, "content-encoding"), undefined);
    assert.equal((sent.json as { model: string }).model, "gpt-4o");
    assertClean(sent);
  });

  it("passthrough: GET /v1/models with the gateway's credentials", async () => {
    const res = await envoy.request({ method: "GET", path: "/v1/models", headers: { authorization: "Bearer sk-demo-alice" } });
    const sent = mock.requests[0];
    assert.ok(sent, `no upstream request (status ${res.status})`);
    assert.equal(sent.path, "/v1/models");
    assert.equal(header(sent, "authorization"), "Bearer sk-provider-openai-SECRET");
    assert.equal(res.headers["x-llm-router-target"], undefined, "the target stays internal on passthrough");
  });

  const errors: Array<{ name: string; path?: string; headers: Record<string, string>; body?: string; status: number; code: string; anthropic?: boolean }> = [
    { name: "no key", headers: JSON_HEADERS, body: chat("smart"), status: 401, code: "missing_api_key" },
    { name: "bad JSON", headers: ALICE, body: "{", status: 400, code: "invalid_json" },
    { name: "unknown model", headers: ALICE, body: chat("gpt-99"), status: 404, code: "model_not_found" },
    { name: "forbidden route", headers: { ...JSON_HEADERS, authorization: "Bearer sk-demo-bob" }, body: chat("smart"), status: 403, code: "route_not_allowed" },
    { name: "uncovered path", path: "/v1/images/generations", headers: ALICE, body: "{}", status: 404, code: "path_not_supported" },
    { name: "Anthropic caller with a bad key", path: "/v1/messages", headers: { ...JSON_HEADERS, "x-api-key": "wrong" }, body: "{}", status: 401, code: "authentication_error", anthropic: true },
  ];
  for (const e of errors) {
    it(`answers ${e.name} itself (${e.status}) without calling a provider`, async () => {
      const res = await envoy.request({ method: "POST", path: e.path ?? "/v1/chat/completions", headers: e.headers, ...(e.body !== undefined ? { body: e.body } : {}) });
      assert.equal(res.status, e.status, res.text());
      const body = res.json() as { error: { code?: string; type: string }; type?: string };
      if (e.anthropic) {
        assert.equal(body.type, "error");
        assert.equal(body.error.type, e.code);
      } else {
        assert.equal(body.error.code, e.code);
      }
      assert.equal(mock.requests.length, 0);
    });
  }
});
