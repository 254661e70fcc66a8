// Tests of the Envoy stand-in itself (test/harness): each test drives a behaviour Envoy documents,
// with a tiny ext_proc server on Envoy's protos and the mock provider as upstream.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { stringify } from "yaml";
import { type MockProvider, startMockProvider } from "../src/mock-provider/server";
import { parseBootstrap } from "./harness/bootstrap";
import { EnvoyHarness, type ExtProcRecord } from "./harness/envoy-harness";
import type { ProcessingRequestMsg, ProcessingResponseMsg } from "./harness/ext-proc-types";
import {
  type ExtProcCall,
  type ExtProcHandler,
  type HandlerResult,
  type TestExtProcServer,
  headerOf,
  overwrite,
  startTestExtProcServer,
} from "./harness/test-ext-proc-server";
import { HeaderMap } from "./harness/header-map";
import { matchRoute } from "./harness/router";

const ENVOY_YAML = path.join(__dirname, "..", "..", "envoy", "envoy.yaml");
const CHAT = JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] });
const JSON_HEADERS = { authorization: "Bearer client-key", "content-type": "application/json" };

type Upstream = (msg: ProcessingRequestMsg, call: ExtProcCall) => HandlerResult | Promise<HandlerResult>;

/** envoy.yaml's router phase: drop a client-sent cluster header, pick the cluster from the body. */
function routerPhase(cluster: string, upstream: Upstream = () => undefined): ExtProcHandler {
  return (msg, call) => {
    if (call.metadata["x-llm-router-phase"] !== "router") return upstream(msg, call);
    if (msg.request === "request_headers") {
      return { request_headers: { response: { header_mutation: { remove_headers: ["x-llm-router-cluster"] } } } };
    }
    if (msg.request === "request_body") {
      return {
        request_body: { response: { header_mutation: { set_headers: overwrite({ "x-llm-router-cluster": cluster }) }, clear_route_cache: true } },
      };
    }
    return undefined;
  };
}

function recordsOf(records: ExtProcRecord[], filter: "downstream" | "upstream"): ExtProcRecord[] {
  return records.filter((r) => r.filter === filter);
}

function sentOf(record: ExtProcRecord | undefined): ProcessingRequestMsg[] {
  return (record?.sent ?? []) as ProcessingRequestMsg[];
}

describe("EnvoyHarness with envoy/envoy.yaml", () => {
  let openai: MockProvider;
  let anthropic: MockProvider;
  let extProc: TestExtProcServer;
  let harness: EnvoyHarness;

  before(async () => {
    openai = await startMockProvider();
    anthropic = await startMockProvider();
    extProc = await startTestExtProcServer();
    harness = await EnvoyHarness.start({
      envoyYaml: ENVOY_YAML,
      extProcAddress: extProc.address,
      clusterEndpoints: { openai: openai.url, anthropic: anthropic.url },
    });
  });
  after(async () => {
    await harness.close();
    await extProc.close();
    await openai.close();
    await anthropic.close();
  });
  beforeEach(() => {
    openai.reset();
    anthropic.reset();
  });

  it("routes via cluster_header set on the body reply with clear_route_cache", async () => {
    extProc.setHandler(routerPhase("anthropic"));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: { ...JSON_HEADERS, host: "gw.example" }, body: CHAT });
    assert.equal(res.status, 200);
    assert.deepEqual(res.route, { name: "", virtualHost: "llm", cluster: "anthropic" });
    assert.equal(res.attempts.length, 1);
    assert.equal(res.attempts[0]?.cluster, "anthropic");
    // auto_host_rewrite: Host is the endpoint's hostname.
    assert.equal(res.attempts[0]?.requestHeaders["host"], "api.anthropic.com");
    assert.equal(anthropic.requests.length, 1);
    assert.equal(openai.requests.length, 0);
    assert.equal(anthropic.requests[0]?.headers["host"], "api.anthropic.com");
    // always_set_request_id_in_response, and the generated id reached the upstream.
    const requestId = res.headers["x-request-id"];
    assert.equal(typeof requestId, "string");
    assert.equal(anthropic.requests[0]?.headers["x-request-id"], requestId);

    const [router] = recordsOf(res.extProc, "downstream");
    assert.deepEqual(router?.metadata, { "x-llm-router-phase": "router" });
    const first = sentOf(router)[0];
    const entries = first?.request_headers?.headers?.headers ?? [];
    assert.deepEqual(
      entries.slice(0, 4).map((h) => h.key),
      [":authority", ":path", ":method", ":scheme"],
    );
    assert.ok(entries.every((h) => h.value === undefined && h.raw_value !== undefined), "values only in raw_value");
    assert.equal(headerOf(first ?? {}, ":authority"), "gw.example");
    assert.equal(headerOf(first ?? {}, "content-length"), String(CHAT.length));
    assert.equal(first?.request_headers?.end_of_stream, false);
    const body = sentOf(router)[1];
    assert.equal(Buffer.from(body?.request_body?.body ?? []).toString(), CHAT);
    assert.equal(body?.request_body?.end_of_stream, true);

    const [upstream] = recordsOf(res.extProc, "upstream");
    assert.equal(upstream?.cluster, "anthropic");
    assert.deepEqual(upstream?.metadata, { "x-llm-router-phase": "upstream" });
    const attrs = sentOf(upstream)[0]?.attributes?.["envoy.filters.http.ext_proc"];
    assert.deepEqual(attrs?.fields?.["xds.cluster_name"]?.stringValue, "anthropic");
    assert.equal(sentOf(upstream)[1]?.attributes, undefined, "attributes only on the first message");
  });

  it("keeps the cached route when the cluster header changes without clear_route_cache", async () => {
    extProc.setHandler((msg, call) => {
      if (call.metadata["x-llm-router-phase"] === "router" && msg.request === "request_body") {
        return { request_body: { response: { header_mutation: { set_headers: overwrite({ "x-llm-router-cluster": "openai" }) } } } };
      }
      return undefined;
    });
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 404);
    assert.equal(res.localReplyReason, "direct_response");
    assert.equal((res.json() as { error: { code: string } }).error.code, "route_not_found");
    assert.equal(openai.requests.length, 0);
  });

  it("ignores clear_route_cache in a reply without header_mutation", async () => {
    extProc.setHandler((msg, call) => {
      if (call.metadata["x-llm-router-phase"] === "router" && msg.request === "request_body") {
        return { request_body: { response: { clear_route_cache: true } } };
      }
      return undefined;
    });
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 404);
    assert.ok(res.notes.some((n) => n.includes("no header_mutation")));
  });

  it("answers cluster_not_found_response_code for an unknown cluster", async () => {
    extProc.setHandler(routerPhase("no-such-cluster"));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 503);
    assert.equal(res.localReplyReason, "cluster_not_found");
  });

  it("silently ignores mutations of host, :authority, :method and x-envoy-*, but lets :path change", async () => {
    extProc.setHandler(
      routerPhase("openai", (msg) => {
        if (msg.request !== "request_headers") return undefined;
        return {
          request_headers: {
            response: {
              header_mutation: {
                set_headers: overwrite({ host: "evil.example", ":authority": "evil.example", ":method": "PUT", "x-envoy-foo": "1", ":path": "/v1/chat/completions?x=1", "x-ok": "yes" }),
                remove_headers: [":path", "host"],
              },
            },
          },
        };
      }),
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 200);
    const sent = openai.requests[0];
    assert.equal(sent?.path, "/v1/chat/completions?x=1");
    assert.equal(sent?.method, "POST");
    assert.equal(sent?.headers["host"], "api.openai.com");
    assert.equal(sent?.headers["x-envoy-foo"], undefined);
    assert.equal(sent?.headers["x-ok"], "yes");
    assert.deepEqual(
      res.rejectedMutations.map((r) => `${r.op} ${r.header}`).sort(),
      ["remove :path", "remove host", "set :authority", "set :method", "set host", "set x-envoy-foo"],
    );
  });

  it("strips client x-envoy-* headers before the filters see them", async () => {
    extProc.setHandler(routerPhase("openai"));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: { ...JSON_HEADERS, "x-envoy-retry-on": "5xx", "X-Custom": "a" }, body: CHAT });
    const first = sentOf(recordsOf(res.extProc, "downstream")[0])[0] ?? {};
    assert.equal(headerOf(first, "x-envoy-retry-on"), undefined);
    assert.equal(headerOf(first, "x-custom"), "a");
    assert.equal(openai.requests[0]?.headers["x-envoy-retry-on"], undefined);
  });

  it("answers 500 when a HeaderValue sets both value and raw_value", async () => {
    extProc.setHandler((msg) =>
      msg.request === "request_headers"
        ? { request_headers: { response: { header_mutation: { set_headers: [{ header: { key: "x-a", value: "1", raw_value: Buffer.from("1") }, append: { value: false } }] } } } }
        : undefined,
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 500);
    assert.match(res.localReplyReason ?? "", /Only one of value or raw_value/);
    assert.equal(res.attempts.length, 0);
  });

  it("appends when append is unset, overwrites with append: false", async () => {
    const setAuth = (explicit: boolean): Upstream => (msg) =>
      msg.request === "request_headers"
        ? {
            request_headers: {
              response: {
                header_mutation: {
                  set_headers: [{ header: { key: "authorization", raw_value: Buffer.from("Bearer provider-key") }, ...(explicit ? { append: { value: false } } : {}) }],
                },
              },
            },
          }
        : undefined;
    extProc.setHandler(routerPhase("openai", setAuth(false)));
    await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.deepEqual(openai.requests[0]?.headers["authorization"], ["Bearer client-key", "Bearer provider-key"]);

    openai.reset();
    extProc.setHandler(routerPhase("openai", setAuth(true)));
    await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(openai.requests[0]?.headers["authorization"], "Bearer provider-key");
  });

  it("rejects a BUFFERED body mutation whose content-length disagrees, accepts a corrected one", async () => {
    const newBody = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] });
    const mutate = (fixLength: boolean): Upstream => (msg) =>
      msg.request === "request_body"
        ? {
            request_body: {
              response: {
                ...(fixLength ? { header_mutation: { set_headers: overwrite({ "content-length": String(newBody.length) }) } } : {}),
                body_mutation: { body: Buffer.from(newBody) },
              },
            },
          }
        : undefined;
    extProc.setHandler(routerPhase("openai", mutate(false)));
    const bad = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    // Envoy would ignore the upstream filter's local reply; the downstream case is tested below.
    assert.equal(bad.status, 504);
    assert.match(bad.stalled ?? "", /content-length mismatch/);

    extProc.setHandler(routerPhase("openai", mutate(true)));
    const good = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(good.status, 200);
    assert.equal(openai.requests.at(-1)?.body.toString(), newBody);
    assert.equal(openai.requests.at(-1)?.headers["content-length"], String(newBody.length));
  });

  it("answers 500 on a content-length mismatch in the downstream filter", async () => {
    extProc.setHandler((msg) =>
      msg.request === "request_body" ? { request_body: { response: { body_mutation: { body: Buffer.from("{}") } } } } : undefined,
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 500);
    assert.equal(res.localReplyReason, "ext_proc content-length mismatch");
  });

  it("sends an ImmediateResponse to the client and ends the request", async () => {
    extProc.setHandler((msg) =>
      msg.request === "request_headers"
        ? {
            immediate_response: {
              status: { code: "TooManyRequests" },
              headers: { set_headers: overwrite({ "content-type": "application/json", "retry-after": "3" }) },
              body: Buffer.from('{"error":"slow down"}'),
              details: "quota exceeded",
            },
          }
        : undefined,
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 429);
    assert.deepEqual(res.json(), { error: "slow down" });
    assert.equal(res.headers["content-type"], "application/json");
    assert.equal(res.headers["retry-after"], "3");
    assert.equal(typeof res.headers["x-request-id"], "string");
    assert.equal(res.localReplyReason, "quota_exceeded");
    assert.equal(res.attempts.length, 0);
  });

  it("retries a 503 and re-runs the upstream filter on the SAME header map, with a fresh body", async () => {
    openai.failNext(1, 503);
    const seen: Array<{ marker: string | undefined; body?: string }> = [];
    extProc.setHandler(
      routerPhase("openai", (msg, call) => {
        if (msg.request === "request_headers") {
          seen[call.index] = { marker: headerOf(msg, "x-attempt-marker") };
          return { request_headers: { response: { header_mutation: { set_headers: overwrite({ "x-attempt-marker": `set-by-stream-${call.index}` }) } } } };
        }
        if (msg.request === "request_body") {
          const entry = seen[call.index];
          if (entry !== undefined) entry.body = Buffer.from(msg.request_body?.body ?? []).toString();
        }
        return undefined;
      }),
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 200);
    assert.deepEqual(res.attempts.map((a) => a.status), [503, 200]);
    const upstream = recordsOf(res.extProc, "upstream");
    assert.deepEqual(upstream.map((r) => r.attempt), [1, 2]);
    const markers = seen.filter((s) => s !== undefined);
    assert.equal(markers.length, 2);
    assert.equal(markers[0]?.marker, undefined, "attempt 1 starts clean");
    assert.match(markers[1]?.marker ?? "", /^set-by-stream-/, "attempt 2 sees attempt 1's header");
    assert.equal(markers[1]?.body, CHAT, "each attempt gets the downstream body again");
    assert.equal(openai.requests.length, 2);
  });

  it("ignores an upstream filter's ImmediateResponse: the attempt hangs until per-try timeouts", async () => {
    extProc.setHandler(
      routerPhase("openai", (msg) => (msg.request === "request_headers" ? { immediate_response: { status: { code: 401 } } } : undefined)),
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 504);
    assert.equal(res.localReplyReason, "upstream_per_try_idle_timeout");
    // num_retries 2, `reset` in retry_on: three attempts of 300 s each.
    assert.equal(res.attempts.length, 3);
    assert.match(res.stalled ?? "", /900000 ms/);
    assert.equal(openai.requests.length, 0);
  });

  it("treats a cluster without an endpoint override as connect-failure and retries", async () => {
    extProc.setHandler(routerPhase("azure_openai"));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 503);
    assert.equal(res.localReplyReason, "upstream_reset_before_response_started{connection_failure}");
    assert.equal(res.attempts.length, 3);
    assert.match(res.text(), /retried and the latest reset reason: connection failure/);
  });

  it("keeps dynamic metadata only for receiving namespaces and forwards it to upstream filters", async () => {
    extProc.setHandler((msg, call) => {
      const router = routerPhase("openai")(msg, call) as ProcessingResponseMsg | undefined;
      if (call.metadata["x-llm-router-phase"] === "router" && msg.request === "request_body" && router !== undefined) {
        return {
          ...router,
          dynamic_metadata: {
            fields: {
              llm_router: { structValue: { fields: { ctx: { stringValue: "signed-context" }, n: { numberValue: 2 } } } },
              other_ns: { structValue: { fields: { x: { stringValue: "dropped" } } } },
            },
          },
        };
      }
      return router;
    });
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 200);
    assert.deepEqual(res.dynamicMetadata, { llm_router: { ctx: "signed-context", n: 2 } });
    const upstreamFirst = sentOf(recordsOf(res.extProc, "upstream")[0])[0];
    const fm = upstreamFirst?.metadata_context?.filter_metadata ?? {};
    assert.deepEqual(Object.keys(fm), ["llm_router"]);
    assert.equal(fm["llm_router"]?.fields?.["ctx"]?.stringValue, "signed-context");
    // The router phase forwards nothing (no forwarding_namespaces).
    assert.deepEqual(sentOf(recordsOf(res.extProc, "downstream")[0])[0]?.metadata_context, {});
  });

  it("fails OPEN on a spurious (wrong-kind) reply: a client-sent cluster header routes", async () => {
    // Envoy ignores the ext_proc server after a spurious message, whatever failure_mode_allow says.
    extProc.setHandler((msg, call) =>
      call.metadata["x-llm-router-phase"] === "router" && msg.request === "request_headers" ? { request_body: { response: {} } } : undefined,
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: { ...JSON_HEADERS, "x-llm-router-cluster": "openai" }, body: CHAT });
    assert.equal(res.status, 200);
    assert.equal(openai.requests.length, 1);
    assert.match(recordsOf(res.extProc, "downstream")[0]?.outcome ?? "", /spurious/);
  });

  it("answers 500 when the ext_proc stream fails with a gRPC error", async () => {
    extProc.setHandler(() => ({ error: 13, details: "boom" }));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 500);
    assert.equal(res.localReplyReason, "ext_proc_error_gRPC_error_13");
  });

  it("serves real HTTP with listen()", async () => {
    extProc.setHandler(routerPhase("openai"));
    const url = await harness.listen();
    const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("server"), "envoy");
    assert.equal(((await res.json()) as { model: string }).model, "gpt-4o");
  });
});

describe("EnvoyHarness with small inline bootstraps", () => {
  let dir: string;
  let extProc: TestExtProcServer;
  let backend: MockProvider;

  /** A one-route bootstrap: everything to cluster `backend`, one downstream ext_proc filter. */
  function bootstrap(o: {
    extProc?: Record<string, unknown>;
    listener?: Record<string, unknown>;
    hcm?: Record<string, unknown>;
    route?: Record<string, unknown>;
    backend?: Record<string, unknown>;
  }): string {
    const doc = {
      static_resources: {
        listeners: [
          {
            name: "test",
            ...o.listener,
            filter_chains: [
              {
                filters: [
                  {
                    name: "envoy.filters.network.http_connection_manager",
                    typed_config: {
                      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                      stat_prefix: "test",
                      ...o.hcm,
                      route_config: {
                        virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: "backend", ...o.route } }] }],
                      },
                      http_filters: [
                        {
                          name: "envoy.filters.http.ext_proc",
                          typed_config: {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                            grpc_service: { envoy_grpc: { cluster_name: "ext_proc" } },
                            ...o.extProc,
                          },
                        },
                        { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
        clusters: [
          { name: "ext_proc", load_assignment: { cluster_name: "ext_proc", endpoints: [] } },
          { name: "backend", load_assignment: { cluster_name: "backend", endpoints: [] }, ...o.backend },
        ],
      },
    };
    const file = path.join(dir, `bootstrap-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify(doc));
    return file;
  }

  async function withHarness(file: string, run: (h: EnvoyHarness) => Promise<void>): Promise<void> {
    const h = await EnvoyHarness.start({ envoyYaml: file, extProcAddress: extProc.address, clusterEndpoints: { backend: backend.url } });
    try {
      await run(h);
    } finally {
      await h.close();
    }
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "envoy-harness-"));
    extProc = await startTestExtProcServer();
    backend = await startMockProvider();
  });
  after(async () => {
    await extProc.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    backend.reset();
    extProc.setHandler(() => undefined);
  });

  it("answers 413 when a BUFFERED body exceeds per_connection_buffer_limit_bytes", async () => {
    const file = bootstrap({ listener: { per_connection_buffer_limit_bytes: 1024 }, extProc: { processing_mode: { request_body_mode: "BUFFERED" } } });
    await withHarness(file, async (h) => {
      const res = await h.request({ method: "POST", path: "/v1/embeddings", headers: { "content-type": "application/json" }, body: "x".repeat(2048) });
      assert.equal(res.status, 413);
      assert.equal(res.localReplyReason, "request_payload_too_large");
      assert.deepEqual(sentOf(res.extProc[0]).map((m) => m.request), ["request_headers"]);
      const ok = await h.request({ method: "POST", path: "/v1/embeddings", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "e", input: "x" }) });
      assert.equal(ok.status, 200);
    });
  });

  it("answers 504 when the server does not answer within message_timeout", async () => {
    extProc.setHandler(() => ({ noReply: true }));
    const file = bootstrap({ extProc: { message_timeout: "0.05s" } });
    await withHarness(file, async (h) => {
      const started = Date.now();
      const res = await h.request({ method: "GET", path: "/v1/models" });
      assert.equal(res.status, 504);
      assert.equal(res.localReplyReason, "ext_proc_error_per-message_timeout_exceeded");
      assert.ok(Date.now() - started < 1000);
    });
  });

  it("continues unprocessed after a timeout with failure_mode_allow", async () => {
    extProc.setHandler(() => ({ noReply: true }));
    const file = bootstrap({ extProc: { message_timeout: "0.05s", failure_mode_allow: true } });
    await withHarness(file, async (h) => {
      const res = await h.request({ method: "POST", path: "/v1/embeddings", body: JSON.stringify({ model: "e", input: "x" }) });
      assert.equal(res.status, 200);
    });
  });

  it("continues unprocessed when the server closes the stream cleanly", async () => {
    extProc.setHandler(() => ({ close: true }));
    const file = bootstrap({});
    await withHarness(file, async (h) => {
      const res = await h.request({ method: "POST", path: "/v1/embeddings", body: JSON.stringify({ model: "e", input: "x" }) });
      assert.equal(res.status, 200);
      assert.match(res.extProc[0]?.outcome ?? "", /closed the stream/);
    });
  });

  it("answers 431 over max_headers_count and max_request_headers_kb", async () => {
    const file = bootstrap({ hcm: { max_request_headers_kb: 1, common_http_protocol_options: { max_headers_count: 3 } } });
    await withHarness(file, async (h) => {
      const many = await h.request({ path: "/", headers: { a: "1", b: "2", c: "3", d: "4" } });
      assert.equal(many.status, 431);
      const big = await h.request({ path: "/", headers: { a: "x".repeat(2000) } });
      assert.equal(big.status, 431);
      assert.equal(big.localReplyReason, "http1.headers_too_large");
    });
  });

  it("streams the response body one message per chunk and drops content-length", async () => {
    const responseChunks: Array<{ size: number; end: boolean }> = [];
    extProc.setHandler((msg) => {
      if (msg.request === "response_body") {
        responseChunks.push({ size: msg.response_body?.body?.length ?? 0, end: msg.response_body?.end_of_stream === true });
        const upper = Buffer.from(msg.response_body?.body ?? []).toString().replaceAll('"content":"mock"', '"content":"MOCK"');
        return { response_body: { response: { body_mutation: { body: Buffer.from(upper) } } } };
      }
      return undefined;
    });
    const file = bootstrap({ extProc: { processing_mode: { response_header_mode: "SEND", response_body_mode: "STREAMED" } } });
    await withHarness(file, async (h) => {
      const res = await h.request({
        method: "POST",
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "a b" }] }),
      });
      assert.equal(res.status, 200);
      assert.ok(responseChunks.length >= 2);
      assert.deepEqual(responseChunks.at(-1), { size: 0, end: true }, "chunked upstream: empty end_of_stream message");
      assert.ok(responseChunks.slice(0, -1).every((c) => !c.end));
      assert.equal(res.headers["content-length"], undefined);
      assert.match(res.text(), /"content":"MOCK"/);
      assert.match(res.text(), /data: \[DONE\]/);
    });
  });

  it("sends upstream attributes: cluster, route, request facts and the endpoint's metadata", async () => {
    const file = bootstrap({
      extProc: { processing_mode: { request_header_mode: "SKIP", response_header_mode: "SKIP" } },
      backend: {
        load_assignment: {
          cluster_name: "backend",
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: { hostname: "backend.example", address: { socket_address: { address: "backend.example", port_value: 443 } } },
                  metadata: { filter_metadata: { llm: { provider: "openai", tier: 2 } } },
                },
              ],
            },
          ],
        },
        typed_extension_protocol_options: {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            http_filters: [
              {
                name: "upstream-ext-proc",
                typed_config: {
                  "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                  grpc_service: { envoy_grpc: { cluster_name: "ext_proc" }, initial_metadata: [{ key: "phase", value: "up" }] },
                  processing_mode: { response_header_mode: "SKIP" },
                  request_attributes: [
                    "xds.upstream_host_metadata.filter_metadata['llm']['provider']",
                    "xds.upstream_host_metadata.filter_metadata['llm']",
                    "xds.cluster_name",
                    "xds.route_name",
                    "request.path",
                    "request.method",
                    "request.id",
                    "no.such.attribute",
                  ],
                },
              },
              { name: "envoy.filters.http.upstream_codec", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" } },
            ],
          },
        },
      },
    });
    await withHarness(file, async (h) => {
      const res = await h.request({ method: "POST", path: "/v1/embeddings?x=1", headers: { "x-request-id": "rid-1" }, body: JSON.stringify({ model: "e", input: "x" }) });
      assert.equal(res.status, 200);
      const upstream = res.extProc.find((r) => r.filter === "upstream");
      assert.deepEqual(upstream?.metadata, { phase: "up" });
      const attrs = sentOf(upstream)[0]?.attributes?.["envoy.filters.http.ext_proc"]?.fields ?? {};
      assert.deepEqual(Object.keys(attrs).sort(), [
        "request.id",
        "request.method",
        "request.path",
        "xds.cluster_name",
        "xds.route_name",
        "xds.upstream_host_metadata.filter_metadata['llm']",
        "xds.upstream_host_metadata.filter_metadata['llm']['provider']",
      ]);
      assert.equal(attrs["xds.upstream_host_metadata.filter_metadata['llm']['provider']"]?.stringValue, "openai");
      assert.equal(attrs["xds.upstream_host_metadata.filter_metadata['llm']"]?.structValue?.fields?.["tier"]?.numberValue, 2);
      assert.equal(attrs["xds.cluster_name"]?.stringValue, "backend");
      assert.equal(attrs["request.path"]?.stringValue, "/v1/embeddings?x=1");
      assert.equal(attrs["request.id"]?.stringValue, "rid-1");
    });
  });

  it("answers 500 when the ext_proc service is down (gRPC UNAVAILABLE)", async () => {
    const file = bootstrap({});
    const h = await EnvoyHarness.start({ envoyYaml: file, extProcAddress: "127.0.0.1:1", clusterEndpoints: { backend: backend.url } });
    try {
      const res = await h.request({ path: "/v1/models" });
      assert.equal(res.status, 500);
      assert.equal(res.localReplyReason, "ext_proc_error_gRPC_error_14");
    } finally {
      await h.close();
    }
  });

  it("delivers a provider stream cut mid-body as a truncated, reset response (no retry)", async () => {
    backend.dropNextStream(2);
    const file = bootstrap({ route: { retry_policy: { retry_on: "5xx,reset", num_retries: 2 } }, extProc: { processing_mode: { request_header_mode: "SKIP", response_header_mode: "SKIP" } } });
    await withHarness(file, async (h) => {
      const res = await h.request({ method: "POST", path: "/v1/chat/completions", body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "a b c" }] }) });
      assert.equal(res.status, 200);
      assert.equal(res.reset, true);
      assert.equal(res.attempts.length, 1);
      assert.ok(!res.text().includes("[DONE]"));
      assert.equal(res.extProc[0]?.sent.length, 0, "header mode SKIP, no body modes: no stream at all");
    });
  });
});

describe("route matching", () => {
  const yaml = `
static_resources:
  listeners:
  - filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config:
            virtual_hosts:
            - name: api
              domains: ["api.example.com", "*.api.example.com"]
              routes:
              - name: exact
                match: { path: "/v1/models" }
                direct_response: { status: 200, body: { inline_string: "models" } }
              - name: regex
                match: { safe_regex: { regex: "/v1/(chat|embeddings)/.*" }, headers: [{ name: x-tenant, string_match: { exact: acme } }] }
                route: { cluster: acme }
              - name: by-header
                match: { prefix: "/v1/", headers: [{ name: x-cluster, present_match: true }, { name: x-beta, exact_match: "1" }] }
                route: { cluster_header: x-cluster, cluster_not_found_response_code: NOT_FOUND }
              - name: prefix
                match: { prefix: "/v1/", headers: [{ name: x-plan, prefix_match: "pro" }] }
                route: { cluster: pro }
            - name: fallback
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: default }
          http_filters:
          - name: envoy.filters.http.router
  clusters: []
`;
  const config = parseBootstrap(yaml, "inline").listener.hcm.routeConfig;
  const match = (headers: Record<string, string>): string | undefined => {
    const d = matchRoute(config, HeaderMap.fromRecord({ ":authority": "api.example.com", ...headers }));
    return d === undefined ? undefined : `${d.route.name}->${d.clusterName ?? "-"}`;
  };

  it("picks the virtual host by domain and the first matching route", () => {
    assert.equal(match({ ":path": "/v1/models?limit=1" }), "exact->-");
    assert.equal(match({ ":path": "/v1/chat/completions", "x-tenant": "acme" }), "regex->acme");
    assert.equal(match({ ":path": "/v1/chat/completions", "x-cluster": "openai", "x-beta": "1" }), "by-header->openai");
    assert.equal(match({ ":path": "/v1/chat/completions", "x-cluster": "openai" }), undefined);
    assert.equal(match({ ":path": "/v1/x", "x-plan": "pro-annual" }), "prefix->pro");
    assert.equal(match({ ":path": "/v1/x", ":authority": "eu.api.example.com", "x-plan": "pro" }), "prefix->pro");
    assert.equal(match({ ":path": "/v1/x", ":authority": "other.example" }), "->default");
  });
});
