// The service over real gRPC (port 0) with Envoy's own protos: both phases, bad input, protocol
// errors, isolation between streams.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { bodyMessage, ExtProcTestClient, headersMessage, immediateJson, setHeaders, type EnvoyResponse } from "./support/ext-proc-client";
import { TARGET_ATTRIBUTE } from "../src/phases/gateway-headers";
import { compilePolicyText } from "../src/policy/compile";
import { examplePolicy, startTestService, type TestService } from "./support/service";

const CHAT = { ":method": "POST", ":path": "/v1/chat/completions", ":authority": "gw", ":scheme": "https", "content-type": "application/json", "x-request-id": "req-1" };
const ALICE = { authorization: "Bearer sk-demo-alice" };
const chatBody = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], ...extra });

const EXAMPLE = compilePolicyText(JSON.stringify(examplePolicy()), { file: "example.json", resolveSecrets: false });
/** The chain cluster of route "smart" that starts with OpenAI (its first target). */
const SMART = EXAMPLE.routes.find((r) => r.name === "smart")!.clusterStartingWith.get("openai-gpt-4o")!.name;
const FAST = "tgt_openai-gpt-4o-mini";

let svc: TestService;
let client: ExtProcTestClient;
before(async () => {
  svc = await startTestService();
  client = new ExtProcTestClient(svc.address);
});
after(async () => {
  client.close();
  await svc.stop();
});

/** Runs the router phase for one request; returns the reply to headers and (if sent) to the body. */
async function routerPhase(headers: Record<string, string>, body?: Buffer | string): Promise<{ headers: EnvoyResponse; body?: EnvoyResponse }> {
  const s = client.open("router");
  const h = await s.send(headersMessage(headers, body === undefined));
  if (h.immediate_response || body === undefined) {
    s.end();
    return { headers: h };
  }
  const b = await s.send(bodyMessage(body));
  s.end();
  return { headers: h, body: b };
}

function metadataCtx(r: EnvoyResponse): string {
  const v = r.dynamic_metadata?.fields?.llm_router?.structValue?.fields?.ctx?.stringValue;
  assert.ok(v, "router phase returns the routing context as dynamic metadata");
  return v;
}

describe("router phase", () => {
  it("routes an alias to its target's cluster and clears the route cache", async () => {
    const r = await routerPhase({ ...CHAT, ...ALICE, "x-llm-router-cluster": "tgt_claude-sonnet", "x-llm-router-route": "claude", "x-envoy-max-retries": "9" }, chatBody("smart"));
    // The client's own routing header is removed on headers...
    assert.deepEqual(r.headers.request_headers?.response?.header_mutation?.remove_headers, ["x-llm-router-cluster", "x-llm-router-route", "x-envoy-max-retries"]);
    const common = r.body?.request_body?.response;
    assert.equal(common?.clear_route_cache, true);
    const set = setHeaders(common);
    // ...and overwritten on the body with the policy's choice.
    assert.equal(set["x-llm-router-cluster"], SMART);
    assert.equal(set["x-llm-router-route"], "smart");
    assert.equal(set["x-envoy-max-retries"], undefined, "the whole chain can take the request");
    assert.match(set["x-llm-router-ctx"] ?? "", /^v1\./);
    assert.equal(metadataCtx(r.body!), set["x-llm-router-ctx"]);
    for (const h of common?.header_mutation?.set_headers ?? []) {
      assert.equal(h.header.value, undefined, "raw_value only");
      // Present and false (proto3 leaves a false value off the wire; Envoy reads has_append() true).
      assert.ok(h.append !== undefined && h.append !== null);
      assert.equal(h.append.value ?? false, false);
      assert.equal(h.append_action, "OVERWRITE_IF_EXISTS_OR_ADD");
    }
    assert.equal(common?.body_mutation, undefined, "plain JSON bodies are not rewritten by the router phase");
  });

  it("routes on headers and consumer (first matching route wins)", async () => {
    const ci = { authorization: "Bearer sk-demo-ci" };
    const coding = await routerPhase({ ...CHAT, ...ci, "x-llm-task": "coding" }, chatBody("smart"));
    assert.equal(setHeaders(coding.body?.request_body?.response)["x-llm-router-cluster"], "tgt_local-llama");
    const plain = await routerPhase({ ...CHAT, ...ci }, chatBody("smart"));
    assert.equal(setHeaders(plain.body?.request_body?.response)["x-llm-router-cluster"], SMART);
  });

  it("accepts the Anthropic SDK's x-api-key on /v1/messages", async () => {
    const r = await routerPhase({ ...CHAT, ":path": "/v1/messages", "x-api-key": "sk-demo-bob", "anthropic-version": "2023-06-01" }, JSON.stringify({ model: "claude", max_tokens: 5, messages: [] }));
    assert.equal(setHeaders(r.body?.request_body?.response)["x-llm-router-cluster"], "tgt_claude-sonnet");
  });

  it("decodes gzip bodies and forwards plain JSON with a correct content-length", async () => {
    const plain = Buffer.from(chatBody("fast"));
    const r = await routerPhase({ ...CHAT, ...ALICE, "content-encoding": "gzip" }, gzipSync(plain));
    const common = r.body?.request_body?.response;
    assert.deepEqual(common?.body_mutation?.body, plain);
    assert.equal(setHeaders(common)["content-length"], String(plain.length));
    assert.ok(common?.header_mutation?.remove_headers?.includes("content-encoding"));
  });

  it("passes through configured non-LLM paths without a body", async () => {
    const r = await routerPhase({ ":method": "GET", ":path": "/v1/models", ":authority": "gw", ...ALICE });
    const common = r.headers.request_headers?.response;
    assert.equal(common?.clear_route_cache, true);
    assert.equal(setHeaders(common)["x-llm-router-cluster"], "tgt_openai-gpt-4o");
    assert.equal(setHeaders(common)["x-llm-router-route"], "__passthrough");
  });

  const openaiError = (code: string) => (body: unknown) => assert.equal((body as { error: { code: string } }).error.code, code);
  const anthropicError = (type: string) => (body: unknown) => {
    assert.equal((body as { type: string }).type, "error");
    assert.equal((body as { error: { type: string } }).error.type, type);
  };
  const cases: Array<{ name: string; headers: Record<string, string>; body?: string | Buffer; status: number; check: (b: unknown) => void }> = [
    { name: "malformed JSON", headers: { ...CHAT, ...ALICE }, body: "{not json", status: 400, check: openaiError("invalid_json") },
    { name: "JSON that is not an object", headers: { ...CHAT, ...ALICE }, body: "[1,2]", status: 400, check: openaiError("body_not_object") },
    { name: "wrong content type", headers: { ...CHAT, ...ALICE, "content-type": "text/plain" }, body: chatBody("smart"), status: 415, check: openaiError("unsupported_media_type") },
    { name: "missing model", headers: { ...CHAT, ...ALICE }, body: JSON.stringify({ messages: [] }), status: 400, check: openaiError("missing_model") },
    { name: "non-string model", headers: { ...CHAT, ...ALICE }, body: JSON.stringify({ model: 42 }), status: 400, check: openaiError("invalid_model") },
    { name: "unknown model", headers: { ...CHAT, ...ALICE }, body: chatBody("gpt-9-ultra"), status: 404, check: openaiError("model_not_found") },
    { name: "missing key", headers: { ...CHAT }, body: chatBody("smart"), status: 401, check: openaiError("missing_api_key") },
    { name: "invalid key", headers: { ...CHAT, authorization: "Bearer sk-wrong" }, body: chatBody("smart"), status: 401, check: openaiError("invalid_api_key") },
    { name: "invalid key, Anthropic format", headers: { ...CHAT, ":path": "/v1/messages", "x-api-key": "nope" }, body: "{}", status: 401, check: anthropicError("authentication_error") },
    { name: "route not allowed for consumer", headers: { ...CHAT, authorization: "Bearer sk-demo-bob" }, body: chatBody("smart"), status: 403, check: openaiError("route_not_allowed") },
    { name: "model on an API its target cannot serve", headers: { ...CHAT, ...ALICE }, body: chatBody("claude"), status: 404, check: openaiError("model_not_found") },
    { name: "uncovered path", headers: { ...CHAT, ...ALICE, ":path": "/v1/audio/speech" }, body: "{}", status: 404, check: openaiError("path_not_supported") },
    { name: "GET on an LLM endpoint", headers: { ...CHAT, ...ALICE, ":method": "GET" }, status: 405, check: openaiError("method_not_allowed") },
    { name: "POST without body", headers: { ...CHAT, ...ALICE }, status: 400, check: openaiError("missing_body") },
    { name: "unsupported content-encoding", headers: { ...CHAT, ...ALICE, "content-encoding": "zstd" }, body: "x", status: 415, check: openaiError("unsupported_content_encoding") },
    { name: "corrupt gzip", headers: { ...CHAT, ...ALICE, "content-encoding": "gzip" }, body: "not gzip", status: 400, check: openaiError("invalid_content_encoding") },
    { name: "gzip bomb over the limit", headers: { ...CHAT, ...ALICE, "content-encoding": "gzip" }, body: gzipSync(Buffer.alloc(17 * 1024 * 1024, 32)), status: 413, check: openaiError("body_too_large") },
    { name: "different keys in Authorization and x-api-key", headers: { ...CHAT, ...ALICE, "x-api-key": "sk-demo-bob" }, body: chatBody("smart"), status: 400, check: openaiError("ambiguous_api_key") },
    { name: "oversized authorization header", headers: { ...CHAT, authorization: `Bearer ${"a".repeat(9000)}` }, body: chatBody("smart"), status: 431, check: openaiError("header_too_large") },
  ];
  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} in the caller's format`, async () => {
      const r = await routerPhase(c.headers, c.body);
      const reply = r.body ?? r.headers;
      const { status, body, headers } = immediateJson(reply);
      assert.equal(status, c.status);
      assert.equal(headers["content-type"], "application/json");
      c.check(body);
    });
  }

  it("answers duplicated authorization headers with 400", async () => {
    const s = client.open("router");
    const msg = headersMessage({ ...CHAT, ...ALICE }) as { request_headers: { headers: { headers: object[] } } };
    msg.request_headers.headers.headers.push({ key: "authorization", raw_value: Buffer.from("Bearer sk-demo-bob") });
    const { status, body } = immediateJson(await s.send(msg));
    s.end();
    assert.equal(status, 400);
    assert.equal((body as { error: { code: string } }).error.code, "duplicate_header");
  });

  it("reads header values from `value` when an old Envoy sends no raw_value", async () => {
    const s = client.open("router");
    await s.send({ request_headers: { headers: { headers: Object.entries({ ...CHAT, ...ALICE }).map(([key, value]) => ({ key, value })) } } });
    const b = await s.send(bodyMessage(chatBody("fast")));
    s.end();
    assert.equal(setHeaders(b.request_body?.response)["x-llm-router-cluster"], FAST);
  });

  it("handles a body just under the limit in one gRPC message (above grpc-js's 4 MiB default)", async () => {
    const big = chatBody("fast", { padding: "x".repeat(12 * 1024 * 1024) });
    const r = await routerPhase({ ...CHAT, ...ALICE }, big);
    assert.equal(setHeaders(r.body?.request_body?.response)["x-llm-router-cluster"], FAST);
  });
});

describe("stream protocol", () => {
  it("ends a stream that sends a body before headers with INVALID_ARGUMENT, and others keep working", async () => {
    const bad = client.open("router");
    const status = bad.status();
    bad.call.write(bodyMessage(chatBody("smart")));
    assert.equal((await status).code, grpc.status.INVALID_ARGUMENT);
    const ok = await routerPhase({ ...CHAT, ...ALICE }, chatBody("fast"));
    assert.equal(setHeaders(ok.body?.request_body?.response)["x-llm-router-cluster"], FAST);
  });

  it("ends a stream on a message with no request set", async () => {
    const bad = client.open("router");
    const status = bad.status();
    bad.call.write({});
    assert.equal((await status).code, grpc.status.INVALID_ARGUMENT);
  });

  it("rejects an unknown phase", async () => {
    const bad = client.open("sideways");
    const status = bad.status();
    bad.call.write(headersMessage(CHAT));
    assert.equal((await status).code, grpc.status.INVALID_ARGUMENT);
  });

  it("survives streams cancelled mid-request while others run", async () => {
    const streams = Array.from({ length: 20 }, () => client.open("router"));
    await Promise.all(streams.map((s) => s.send(headersMessage({ ...CHAT, ...ALICE }))));
    streams.forEach((s, i) => {
      if (i % 2 === 0) s.call.cancel();
    });
    const rest = await Promise.all(streams.filter((_, i) => i % 2 === 1).map((s) => s.send(bodyMessage(chatBody("fast")))));
    for (const r of rest) assert.equal(setHeaders(r.request_body?.response)["x-llm-router-cluster"], FAST);
    streams.forEach((s) => s.end());
  });

  it("answers response-direction messages even though envoy.yaml does not send them", async () => {
    const s = client.open("router");
    await s.send(headersMessage({ ...CHAT, ...ALICE }));
    await s.send(bodyMessage(chatBody("fast")));
    const rh = await s.send({ response_headers: { headers: { headers: [{ key: ":status", raw_value: Buffer.from("200") }] } } });
    assert.equal(rh.response, "response_headers");
    s.end();
  });
});

describe("upstream phase", () => {
  async function routed(headers: Record<string, string>, body: string): Promise<{ token: string; cluster: string; headersAfterRouter: Record<string, string> }> {
    const r = await routerPhase(headers, body);
    const set = setHeaders(r.body?.request_body?.response);
    const after: Record<string, string> = { ...headers, ...set };
    return { token: metadataCtx(r.body!), cluster: set["x-llm-router-cluster"]!, headersAfterRouter: after };
  }
  /** Request attributes of an attempt: its cluster and the target its endpoint names (default: the cluster's first). */
  const attrs = (cluster: string, target?: string) => {
    const first = target ?? [...EXAMPLE.clusters.values()].find((c) => c.name === cluster)?.order[0]?.id;
    const fields: Record<string, { stringValue: string }> = { "xds.cluster_name": { stringValue: cluster } };
    if (first !== undefined) fields[TARGET_ATTRIBUTE] = { stringValue: first };
    return { attributes: { "envoy.filters.http.ext_proc": { fields } } };
  };
  const meta = (token: string) => ({ metadata_context: { filter_metadata: { llm_router: { fields: { ctx: { stringValue: token } } } } } });

  it("rewrites model, path and credentials and strips client and gateway headers", async () => {
    const body = chatBody("smart");
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE, "x-api-key": "sk-demo-alice", cookie: "session=1", "openai-organization": "client-org" }, body);
    const s = client.open("upstream");
    const h = await s.send(headersMessage(headersAfterRouter, false, { ...attrs(cluster), ...meta(token) }));
    const common = h.request_headers?.response;
    const set = setHeaders(common);
    assert.equal(set[":path"], "/v1/chat/completions");
    assert.equal(set.authorization, "Bearer sk-provider-openai-SECRET");
    const removed = common?.header_mutation?.remove_headers ?? [];
    for (const name of ["x-llm-router-ctx", "x-llm-router-cluster", "cookie", "openai-organization", "x-api-key"]) assert.ok(removed.includes(name), name);
    assert.ok(!removed.includes("authorization"), "a header that is set is not also removed");
    assert.ok(!removed.includes("anthropic-version"), "only headers present are removed");
    const b = await s.send(bodyMessage(body, { ...attrs(cluster), ...meta(token) }));
    s.end();
    const rewritten = b.request_body?.response?.body_mutation?.body;
    assert.ok(rewritten);
    assert.equal((JSON.parse(rewritten.toString()) as { model: string }).model, "gpt-4o");
    assert.equal(setHeaders(b.request_body?.response)["content-length"], String(rewritten.length));
  });

  it("builds Azure paths and api-key auth", async () => {
    const body = chatBody("gpt-4o-azure");
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, body);
    assert.equal(cluster, "tgt_azure-gpt-4o");
    const s = client.open("upstream");
    const set = setHeaders((await s.send(headersMessage(headersAfterRouter, false, { ...attrs(cluster), ...meta(token) }))).request_headers?.response);
    s.end();
    assert.equal(set[":path"], "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert.equal(set["api-key"], "azure-provider-SECRET");
  });

  it("sets x-api-key and keeps the client's anthropic-version for Anthropic", async () => {
    const body = JSON.stringify({ model: "claude", max_tokens: 5, messages: [] });
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ":path": "/v1/messages", "x-api-key": "sk-demo-alice", "anthropic-version": "2023-01-01" }, body);
    const s = client.open("upstream");
    const h = await s.send(headersMessage(headersAfterRouter, false, { ...attrs(cluster), ...meta(token) }));
    s.end();
    const set = setHeaders(h.request_headers?.response);
    assert.equal(set["x-api-key"], "sk-ant-provider-SECRET");
    assert.equal(set["anthropic-version"], "2023-01-01");
    assert.ok(!(h.request_headers?.response?.header_mutation?.remove_headers ?? []).includes("x-api-key"));
  });

  it("works from the header alone when metadata is not forwarded, and a retry after the header was stripped uses metadata", async () => {
    const body = chatBody("smart");
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, body);
    const first = client.open("upstream");
    const h1 = await first.send(headersMessage(headersAfterRouter, false, attrs(cluster)));
    first.end();
    assert.equal(setHeaders(h1.request_headers?.response).authorization, "Bearer sk-provider-openai-SECRET");
    // Attempt 2 sees the header map attempt 1 left: context header gone, rewritten path and auth.
    const leftover: Record<string, string> = { ...headersAfterRouter, ...setHeaders(h1.request_headers?.response) };
    delete leftover["x-llm-router-ctx"];
    const second = client.open("upstream");
    const h2 = await second.send(headersMessage(leftover, false, { ...attrs(cluster), ...meta(token) }));
    second.end();
    assert.equal(setHeaders(h2.request_headers?.response)[":path"], "/v1/chat/completions");
  });

  // Envoy ignores ImmediateResponse from upstream filters, so refusals disarm the attempt instead.
  function assertDisarmed(r: EnvoyResponse, code: string, present = ["authorization", "x-llm-router-ctx", "x-llm-router-cluster"]): void {
    assert.equal(r.immediate_response, undefined);
    const common = r.request_headers?.response;
    const set = setHeaders(common);
    assert.deepEqual(Object.keys(set), [":path"]);
    assert.equal(set[":path"], `/__llm_router_refused__/${code}`);
    const removed = common?.header_mutation?.remove_headers ?? [];
    for (const h of present) assert.ok(removed.includes(h), h);
  }

  it("disarms an attempt with a forged or tampered context: no credentials, no body, a reserved path", async () => {
    const { headersAfterRouter, cluster } = await routed({ ...CHAT, ...ALICE }, chatBody("fast"));
    const [v, payload, sig] = headersAfterRouter["x-llm-router-ctx"]!.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>;
    claims.t = "azure-gpt-4o";
    const forged = `${v}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
    const s = client.open("upstream");
    assertDisarmed(await s.send(headersMessage({ ...headersAfterRouter, "x-llm-router-ctx": forged }, false, attrs(cluster))), "invalid_routing_context");
    const b = await s.send(bodyMessage(chatBody("fast")));
    s.end();
    assert.equal(b.request_body?.response?.body_mutation?.body?.length, 0);
    assert.equal(setHeaders(b.request_body?.response)["content-length"], "0");
  });

  it("disarms a request that never passed the router phase", async () => {
    const s = client.open("upstream");
    assertDisarmed(await s.send(headersMessage({ ...CHAT, ...ALICE, "x-llm-router-cluster": FAST }, true, attrs(FAST))), "gateway_misconfigured", ["authorization", "x-llm-router-cluster"]);
    s.end();
  });

  it("disarms an attempt that reached a cluster other than the one chosen", async () => {
    const { headersAfterRouter, token } = await routed({ ...CHAT, ...ALICE }, chatBody("fast"));
    const s = client.open("upstream");
    assertDisarmed(await s.send(headersMessage(headersAfterRouter, false, { ...attrs("tgt_claude-sonnet"), ...meta(token) })), "gateway_misconfigured");
    s.end();
  });

  it("disarms an attempt whose endpoint names a target outside the signed chain", async () => {
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, chatBody("smart"));
    const s = client.open("upstream");
    assertDisarmed(await s.send(headersMessage(headersAfterRouter, false, { ...attrs(cluster, "claude-sonnet"), ...meta(token) })), "gateway_misconfigured");
    s.end();
  });

  it("rewrites each attempt for the chain target its endpoint names", async () => {
    const body = chatBody("smart");
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, body);
    const s = client.open("upstream");
    const h = await s.send(headersMessage({ ...headersAfterRouter, "x-envoy-attempt-count": "2" }, false, { ...attrs(cluster, "azure-gpt-4o"), ...meta(token) }));
    const set = setHeaders(h.request_headers?.response);
    assert.equal(set[":path"], "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert.equal(set["api-key"], "azure-provider-SECRET");
    assert.ok(h.request_headers?.response?.header_mutation?.remove_headers?.includes("authorization"), "the client's key never goes to Azure");
    await s.send(bodyMessage(body, meta(token)));
    // The attempt's response: target and attempt for the client; retry-after-ms restated in seconds.
    const rh = await s.send({ response_headers: { headers: { headers: [{ key: ":status", raw_value: Buffer.from("429") }, { key: "retry-after-ms", raw_value: Buffer.from("1500") }] } } });
    s.end();
    const out = setHeaders(rh.response_headers?.response);
    assert.equal(out["x-llm-router-target"], "azure-gpt-4o");
    assert.equal(out["x-llm-router-attempt"], "2");
    assert.equal(out["retry-after"], "2");
  });

  it("takes back the credentials it set when the body cannot be rewritten", async () => {
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, chatBody("smart"));
    const s = client.open("upstream");
    await s.send(headersMessage(headersAfterRouter, false, { ...attrs(cluster), ...meta(token) }));
    const b = await s.send(bodyMessage("{not json", meta(token)));
    s.end();
    const common = b.request_body?.response;
    assert.equal(setHeaders(common)[":path"], "/__llm_router_refused__/invalid_json");
    assert.deepEqual(common?.header_mutation?.remove_headers, ["authorization"]);
    assert.equal(common?.body_mutation?.body?.length, 0);
  });

  it("restates content-length without rewriting when the model already matches", async () => {
    const body = chatBody("gpt-4o-mini");
    const { headersAfterRouter, cluster, token } = await routed({ ...CHAT, ...ALICE }, body);
    const s = client.open("upstream");
    await s.send(headersMessage({ ...headersAfterRouter, "content-length": "999" }, false, { ...attrs(cluster), ...meta(token) }));
    const b = await s.send(bodyMessage(body, meta(token)));
    s.end();
    assert.equal(b.request_body?.response?.body_mutation, undefined);
    assert.equal(setHeaders(b.request_body?.response)["content-length"], String(Buffer.byteLength(body)));
  });
});

describe("health", () => {
  it("serves grpc.health.v1", async () => {
    const { HealthClient } = await import("./support/health-client.js");
    const status = await new HealthClient(svc.address).check("envoy.service.ext_proc.v3.ExternalProcessor");
    assert.equal(status, "SERVING");
  });
});

describe("two replicas", () => {
  it("the upstream phase on another replica (same HMAC key) serves an attempt routed by this one", async () => {
    const other = await startTestService();
    const otherClient = new ExtProcTestClient(other.address);
    try {
      const body = chatBody("smart");
      const r = await routerPhase({ ...CHAT, ...ALICE }, body);
      const set = setHeaders(r.body?.request_body?.response);
      const s = otherClient.open("upstream");
      const h = await s.send(headersMessage({ ...CHAT, ...ALICE, ...set }, false, { attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: SMART }, [TARGET_ATTRIBUTE]: { stringValue: "openai-gpt-4o" } } } } }));
      const b = await s.send(bodyMessage(body));
      s.end();
      assert.equal(setHeaders(h.request_headers?.response).authorization, "Bearer sk-provider-openai-SECRET");
      assert.equal((JSON.parse(b.request_body!.response!.body_mutation!.body!.toString()) as { model: string }).model, "gpt-4o");
    } finally {
      otherClient.close();
      await other.stop();
    }
  });
});
