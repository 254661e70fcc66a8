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
import { resolveTransportSocket } from "./harness/transport-socket";

const ENVOY_YAML = path.join(__dirname, "..", "..", "envoy", "envoy.yaml");
const CHAT = JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] });
const JSON_HEADERS = { authorization: "Bearer client-key", "content-type": "application/json" };

type Upstream = (msg: ProcessingRequestMsg, call: ExtProcCall) => HandlerResult | Promise<HandlerResult>;

/** envoy.yaml's router phase: drop a client-sent cluster header, pick the cluster from the body. */
/** Single-target clusters of envoy/envoy.yaml (rendered from the example policy). */
const ANTHROPIC = "tgt_claude-sonnet";
const OPENAI = "tgt_openai-gpt-4o";

/** A stand-in router phase: picks `cluster` (on the Envoy route of policy route "claude"). */
function routerPhase(cluster: string, upstream: Upstream = () => undefined): ExtProcHandler {
  return (msg, call) => {
    if (call.metadata["x-llm-router-phase"] !== "router") return upstream(msg, call);
    if (msg.request === "request_headers") {
      return { request_headers: { response: { header_mutation: { remove_headers: ["x-llm-router-cluster"] } } } };
    }
    if (msg.request === "request_body") {
      return {
        request_body: { response: { header_mutation: { set_headers: overwrite({ "x-llm-router-cluster": cluster, "x-llm-router-route": "claude" }) }, clear_route_cache: true } },
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
      hostEndpoints: { "api.openai.com": openai.url, "api.anthropic.com": anthropic.url },
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
    extProc.setHandler(routerPhase(ANTHROPIC));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: { ...JSON_HEADERS, host: "gw.example" }, body: CHAT });
    assert.equal(res.status, 200);
    assert.deepEqual(res.route, { name: "claude", virtualHost: "llm", cluster: ANTHROPIC });
    assert.equal(res.attempts.length, 1);
    assert.equal(res.attempts[0]?.cluster, ANTHROPIC);
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
    assert.equal(upstream?.cluster, ANTHROPIC);
    assert.deepEqual(upstream?.metadata, { "x-llm-router-phase": "upstream" });
    const attrs = sentOf(upstream)[0]?.attributes?.["envoy.filters.http.ext_proc"];
    assert.deepEqual(attrs?.fields?.["xds.cluster_name"]?.stringValue, ANTHROPIC);
    assert.equal(sentOf(upstream)[1]?.attributes, undefined, "attributes only on the first message");
  });

  it("keeps the cached route when the cluster header changes without clear_route_cache", async () => {
    extProc.setHandler((msg, call) => {
      if (call.metadata["x-llm-router-phase"] === "router" && msg.request === "request_body") {
        return { request_body: { response: { header_mutation: { set_headers: overwrite({ "x-llm-router-cluster": OPENAI }) } } } };
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
      routerPhase(OPENAI, (msg) => {
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
    extProc.setHandler(routerPhase(OPENAI));
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
    extProc.setHandler(routerPhase(OPENAI, setAuth(false)));
    await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.deepEqual(openai.requests[0]?.headers["authorization"], ["Bearer client-key", "Bearer provider-key"]);

    openai.reset();
    extProc.setHandler(routerPhase(OPENAI, setAuth(true)));
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
    extProc.setHandler(routerPhase(OPENAI, mutate(false)));
    const bad = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    // Envoy would ignore the upstream filter's local reply; the downstream case is tested below.
    assert.equal(bad.status, 504);
    assert.match(bad.stalled ?? "", /content-length mismatch/);

    extProc.setHandler(routerPhase(OPENAI, mutate(true)));
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
      routerPhase(OPENAI, (msg, call) => {
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
      routerPhase(OPENAI, (msg) => (msg.request === "request_headers" ? { immediate_response: { status: { code: 401 } } } : undefined)),
    );
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 504);
    assert.equal(res.localReplyReason, "upstream_per_try_idle_timeout");
    // Route "claude" (one target): num_retries 1, `reset` in retry_on: two attempts of 300 s each.
    assert.equal(res.attempts.length, 2);
    assert.match(res.stalled ?? "", /600000 ms/);
    assert.equal(openai.requests.length, 0);
  });

  it("treats a cluster without an endpoint override as connect-failure and retries", async () => {
    extProc.setHandler(routerPhase("tgt_azure-gpt-4o"));
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: JSON_HEADERS, body: CHAT });
    assert.equal(res.status, 503);
    assert.equal(res.localReplyReason, "upstream_reset_before_response_started{connection_failure}");
    assert.equal(res.attempts.length, 2);
    assert.match(res.text(), /retried and the latest reset reason: connection failure/);
  });

  it("keeps dynamic metadata only for receiving namespaces and forwards it to upstream filters", async () => {
    extProc.setHandler((msg, call) => {
      const router = routerPhase(OPENAI)(msg, call) as ProcessingResponseMsg | undefined;
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
    const res = await harness.request({ method: "POST", path: "/v1/chat/completions", headers: { ...JSON_HEADERS, "x-llm-router-cluster": OPENAI, "x-llm-router-route": "fast" }, body: CHAT });
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
    extProc.setHandler(routerPhase(OPENAI));
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

describe("cross-provider fallback: one cluster, one priority per target", () => {
  const TARGET_ATTR = "xds.upstream_host_metadata.filter_metadata['llm_router']['target']";
  const GATEWAY_HOST = "gateway.example";

  interface ChainOptions {
    /** Extra retry_policy lines (YAML, 20-space indent). */
    retry?: string;
    updateFrequency?: number;
    /** upstream_http_protocol_options body. */
    upstreamHttp?: string;
  }

  /** The bootstrap shape the project generates: route per policy route, cluster per chain. */
  function chainYaml(o: ChainOptions = {}): string {
    const endpoint = (priority: number, host: string, port: number, target: string): string => `
      - priority: ${priority}
        lb_endpoints:
        - endpoint:
            hostname: ${host}
            address: { socket_address: { address: ${host}, port_value: ${port} } }
          metadata:
            filter_metadata:
              llm_router: { target: ${target} }
              envoy.transport_socket_match: { endpoint: "${host}:${port}" }`;
    const tls = (host: string, port: number): string => `
    - name: tls-${host}
      match: { endpoint: "${host}:${port}" }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: ${host}
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            validation_context:
              trusted_ca: { filename: /etc/ssl/certs/ca-certificates.crt }
              match_typed_subject_alt_names:
              - { san_type: DNS, matcher: { exact: ${host} } }`;
    return `
static_resources:
  listeners:
  - name: gateway
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          route_config:
            name: llm_routes
            virtual_hosts:
            - name: llm
              domains: ["*"]
              include_request_attempt_count: true
              include_attempt_count_in_response: true
              include_is_timeout_retry_header: true
              routes:
              - name: chat
                match:
                  prefix: "/"
                  headers:
                  - name: x-llm-router-route
                    string_match: { exact: chat }
                route:
                  cluster_header: x-llm-router-cluster
                  auto_host_rewrite: true
                  timeout: 0s
                  retry_policy:
                    retry_on: connect-failure,refused-stream,reset,retriable-status-codes
                    retriable_status_codes: [429, 500, 502, 503, 504, 529]
                    num_retries: 2
                    per_try_idle_timeout: 300s
                    retry_back_off: { base_interval: 0.25s, max_interval: 2s }
                    rate_limited_retry_back_off:
                      reset_headers:
                      - { name: retry-after, format: SECONDS }
                      - { name: x-ratelimit-reset, format: UNIX_TIMESTAMP }
                      max_interval: 10s
                    retry_priority:
                      name: envoy.retry_priorities.previous_priorities
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
                        update_frequency: ${o.updateFrequency ?? 1}
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                    host_selection_retry_max_attempts: 3
${o.retry ?? ""}
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: { cluster_name: llm_router }
                initial_metadata: [{ key: x-llm-router-phase, value: router }]
              processing_mode: { request_header_mode: SEND, response_header_mode: SKIP }
              mutation_rules: { allow_envoy: true }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
  clusters:
  - name: llm_router
    type: STRICT_DNS
    load_assignment:
      cluster_name: llm_router
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 50051 } } } }] }]
  - name: chain-chat
    type: STRICT_DNS
    connect_timeout: 5s
    lb_policy: ROUND_ROBIN
    common_lb_config: { healthy_panic_threshold: { value: 0 } }
    outlier_detection:
      consecutive_5xx: 3
      consecutive_local_origin_failure: 2
      split_external_local_origin_errors: true
      interval: 10s
      base_ejection_time: 30s
      max_ejection_percent: 100
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { idle_timeout: 300s }
        auto_config:
          http2_protocol_options: { connection_keepalive: { interval: 30s, timeout: 10s } }
          http_protocol_options: {}
        upstream_http_protocol_options: { ${o.upstreamHttp ?? ""} }
        http_filters:
        - name: envoy.filters.http.ext_proc
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
            grpc_service:
              envoy_grpc: { cluster_name: llm_router }
              initial_metadata: [{ key: x-llm-router-phase, value: upstream }]
            processing_mode: { request_header_mode: SEND, response_header_mode: SEND }
            request_attributes: [xds.cluster_name, "${TARGET_ATTR}"]
            response_attributes: [response.code]
        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
    transport_socket_matches:${tls("api.openai.com", 443)}${tls("api.anthropic.com", 443)}
    - name: plain-vllm.internal
      match: { endpoint: "vllm.internal:8000" }
      transport_socket:
        name: envoy.transport_sockets.raw_buffer
        typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }
    load_assignment:
      cluster_name: chain-chat
      endpoints:${endpoint(0, "api.openai.com", 443, "openai-gpt-4o")}${endpoint(1, "api.anthropic.com", 443, "anthropic-sonnet")}${endpoint(2, "vllm.internal", 8000, "local-llama")}
`;
  }

  const CHAT_HEADERS = { host: GATEWAY_HOST, "content-type": "application/json", "x-llm-router-route": "chat", "x-llm-router-cluster": "chain-chat" };

  let dir: string;
  let extProc: TestExtProcServer;
  let openai: MockProvider;
  let anthropic: MockProvider;
  let vllm: MockProvider;

  function targetOf(call: ExtProcCall): string | undefined {
    return call.received[0]?.attributes?.["envoy.filters.http.ext_proc"]?.fields?.[TARGET_ATTR]?.stringValue;
  }

  /**
   * Router phase: continue (optionally setting headers). Upstream phase, on response headers:
   * tag the response with the attempt's target, and turn a provider's retry-after-ms into the
   * retry-after that rate_limited_retry_back_off reads.
   */
  function phases(routerHeaders: Record<string, string> = {}): ExtProcHandler {
    return (msg, call) => {
      if (call.metadata["x-llm-router-phase"] === "router") {
        if (msg.request !== "request_headers" || Object.keys(routerHeaders).length === 0) return undefined;
        return { request_headers: { response: { header_mutation: { set_headers: overwrite(routerHeaders) } } } };
      }
      if (msg.request !== "response_headers") return undefined;
      const set: Record<string, string> = { "x-llm-router-target": targetOf(call) ?? "?" };
      const ms = headerOf(msg, "retry-after-ms");
      if (ms !== undefined && headerOf(msg, "retry-after") === undefined) set["retry-after"] = String(Math.ceil(Number(ms) / 1000));
      return { response_headers: { response: { header_mutation: { set_headers: overwrite(set) } } } };
    };
  }

  async function withChain(o: ChainOptions, run: (h: EnvoyHarness) => Promise<void>, hostEndpoints?: Record<string, string>): Promise<void> {
    const file = path.join(dir, `chain-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, chainYaml(o));
    const h = await EnvoyHarness.start({
      envoyYaml: file,
      extProcAddress: extProc.address,
      hostEndpoints: hostEndpoints ?? { "api.openai.com": openai.url, "api.anthropic.com": anthropic.url, "vllm.internal": vllm.url },
    });
    try {
      await run(h);
    } finally {
      await h.close();
    }
  }

  const chat = (h: EnvoyHarness, headers: Record<string, string> = {}): ReturnType<EnvoyHarness["request"]> =>
    h.request({ method: "POST", path: "/v1/chat/completions", headers: { ...CHAT_HEADERS, ...headers }, body: CHAT });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "envoy-chain-"));
    extProc = await startTestExtProcServer();
    [openai, anthropic, vllm] = await Promise.all([startMockProvider(), startMockProvider(), startMockProvider()]);
  });
  after(async () => {
    await extProc.close();
    await Promise.all([openai.close(), anthropic.close(), vllm.close()]);
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const m of [openai, anthropic, vllm]) m.reset();
    extProc.setHandler(phases());
  });

  it("loads the bootstrap: priorities, hostnames, metadata namespaces, transport socket matches", () => {
    const bootstrap = parseBootstrap(chainYaml(), "chain");
    const cluster = bootstrap.clusters.get("chain-chat");
    assert.deepEqual(
      cluster?.endpoints.map((e) => [e.priority, e.hostname, e.port]),
      [[0, "api.openai.com", 443], [1, "api.anthropic.com", 443], [2, "vllm.internal", 8000]],
    );
    assert.deepEqual(cluster?.endpoints[1]?.filterMetadata, {
      llm_router: { target: "anthropic-sonnet" },
      "envoy.transport_socket_match": { endpoint: "api.anthropic.com:443" },
    });
    assert.deepEqual(
      cluster?.transportSocketMatches.map((m) => [m.name, m.socket.tls, m.socket.sni, m.socket.subjectAltNames]),
      [["tls-api.openai.com", true, "api.openai.com", ["api.openai.com"]], ["tls-api.anthropic.com", true, "api.anthropic.com", ["api.anthropic.com"]], ["plain-vllm.internal", false, "", []]],
    );
    const route = bootstrap.listener.hcm.routeConfig.virtualHosts[0]?.routes[0]?.action;
    assert.equal(route?.type === "route" ? route.retryPolicy?.rateLimitedBackOff?.maxIntervalMs : undefined, 10_000);
    assert.equal(route?.type === "route" ? route.retryPolicy?.hostSelectionRetryMaxAttempts : undefined, 3);
  });

  it("resolves transport sockets: first full match, then locality metadata, then the cluster's socket", () => {
    const yaml = `
static_resources:
  listeners:
  - filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config: { virtual_hosts: [] }
          http_filters: [{ name: envoy.filters.http.router }]
  clusters:
  - name: c
    transport_socket: { name: envoy.transport_sockets.tls, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: default.example } }
    transport_socket_matches:
    - { name: both, match: { tls: "on", region: eu }, transport_socket: { name: envoy.transport_sockets.raw_buffer } }
    - { name: tls-only, match: { tls: "on" }, transport_socket: { name: envoy.transport_sockets.tls, typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: m.example } } }
    load_assignment:
      endpoints:
      - metadata: { filter_metadata: { envoy.transport_socket_match: { tls: "on" } } }
        lb_endpoints:
        - { endpoint: { hostname: a, address: { socket_address: { address: a, port_value: 1 } } }, metadata: { filter_metadata: { envoy.transport_socket_match: { tls: "on", region: eu } } } }
        - { endpoint: { hostname: b, address: { socket_address: { address: b, port_value: 1 } } }, metadata: { filter_metadata: { envoy.transport_socket_match: { tls: "off" } } } }
      - lb_endpoints:
        - { endpoint: { hostname: c, address: { socket_address: { address: c, port_value: 1 } } } }
`;
    const cluster = parseBootstrap(yaml, "inline").clusters.get("c");
    assert.ok(cluster !== undefined);
    const [a, b, c] = cluster.endpoints;
    assert.deepEqual(resolveTransportSocket(cluster, a, {}), { name: "both", socket: "envoy.transport_sockets.raw_buffer", tls: false });
    // b's own metadata matches nothing; its locality's does.
    assert.deepEqual(resolveTransportSocket(cluster, b, {}), { name: "tls-only", socket: "envoy.transport_sockets.tls", tls: true, sni: "m.example" });
    assert.deepEqual(resolveTransportSocket(cluster, c, {}), { name: "envoy.transport_sockets.tls", socket: "envoy.transport_sockets.tls", tls: true, sni: "default.example" });
    assert.equal(resolveTransportSocket(cluster, c, { sni: "auto.example" }).sni, "auto.example", "auto_sni overrides the context's sni");
  });

  it("falls back across priorities in one request: 429, reset, then 200", async () => {
    openai.failNext(1, 429);
    anthropic.resetNext(1);
    await withChain({}, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 200);
      assert.equal((res.json() as { model: string }).model, "gpt-4o");
      assert.deepEqual([openai, anthropic, vllm].map((m) => m.requests.length), [1, 1, 1]);
      assert.deepEqual(res.attempts.map((a) => a.priority), [0, 1, 2]);
      assert.deepEqual(res.attempts.map((a) => a.endpointHostname), ["api.openai.com", "api.anthropic.com", "vllm.internal"]);
      assert.deepEqual(res.attempts.map((a) => a.requestHeaders["host"]), ["api.openai.com", "api.anthropic.com", "vllm.internal"], "auto_host_rewrite per attempt");
      assert.deepEqual(res.attempts.map((a) => a.transportSocket), [
        { name: "tls-api.openai.com", socket: "envoy.transport_sockets.tls", tls: true, sni: "api.openai.com", subjectAltNames: ["api.openai.com"] },
        { name: "tls-api.anthropic.com", socket: "envoy.transport_sockets.tls", tls: true, sni: "api.anthropic.com", subjectAltNames: ["api.anthropic.com"] },
        { name: "plain-vllm.internal", socket: "envoy.transport_sockets.raw_buffer", tls: false },
      ]);
      assert.deepEqual(res.attempts.map((a) => (a.hostMetadata?.["llm_router"] as { target: string }).target), ["openai-gpt-4o", "anthropic-sonnet", "local-llama"]);
      assert.deepEqual(res.attempts.map((a) => a.requestHeaders["x-envoy-attempt-count"]), ["1", "2", "3"]);
      assert.deepEqual(res.attempts.map((a) => a.failure), [{ kind: "status", status: 429 }, { kind: "reset" }, undefined]);
      assert.deepEqual(res.attempts.map((a) => [a.backoff, a.backoffMs]), [[undefined, undefined], ["exponential", 250], ["exponential", 500]]);
      assert.equal(res.attempts[1]?.status, undefined);
      assert.equal(res.headers["x-envoy-attempt-count"], "3");
      assert.equal(res.headers["x-llm-router-target"], "local-llama", "the upstream filter's response mutation reaches the client");

      // The upstream filter ran once per attempt and saw the attempt count and the endpoint's target.
      const upstream = recordsOf(res.extProc, "upstream");
      assert.deepEqual(upstream.map((r) => r.attempt), [1, 2, 3]);
      assert.deepEqual(upstream.map((r) => headerOf(sentOf(r)[0] ?? {}, "x-envoy-attempt-count")), ["1", "2", "3"]);
      assert.deepEqual(
        upstream.map((r) => sentOf(r)[0]?.attributes?.["envoy.filters.http.ext_proc"]?.fields?.[TARGET_ATTR]?.stringValue),
        ["openai-gpt-4o", "anthropic-sonnet", "local-llama"],
      );
      // response_header_mode SEND: response headers (with response.code) for attempts that got a response.
      assert.deepEqual(
        upstream.map((r) => sentOf(r).map((m) => m.request)),
        [["request_headers", "response_headers"], ["request_headers"], ["request_headers", "response_headers"]],
      );
      const codes = upstream.map((r) => sentOf(r).find((m) => m.request === "response_headers")?.attributes?.["envoy.filters.http.ext_proc"]?.fields?.["response.code"]?.numberValue);
      assert.deepEqual(codes, [429, undefined, 200]);
    });
  });

  it("fires per_try_timeout on an endpoint that does not answer in time and moves on", async () => {
    openai.delayNext(1, 10_000);
    await withChain({ retry: "                    per_try_timeout: 0.2s" }, async (h) => {
      const started = Date.now();
      const res = await chat(h);
      assert.ok(Date.now() - started < 2000, "the timer really fired");
      assert.equal(res.status, 200);
      assert.deepEqual(res.attempts.map((a) => a.endpointHostname), ["api.openai.com", "api.anthropic.com"]);
      assert.deepEqual(res.attempts[0]?.failure, { kind: "per_try_timeout", timer: "per_try_timeout" });
      assert.match(res.attempts[0]?.error ?? "", /per_try_timeout/);
      assert.equal(res.attempts[0]?.status, undefined);
      assert.equal(res.attempts[1]?.requestHeaders["x-envoy-is-timeout-retry"], "true");
      assert.equal(openai.requests.length, 1, "the provider got the request; the answer never came");
    });
  });

  it("answers 504 upstream_per_try_timeout when the timed-out attempt is not retried", async () => {
    openai.delayNext(1, 10_000);
    extProc.setHandler(phases({ "x-envoy-max-retries": "0" }));
    await withChain({ retry: "                    per_try_timeout: 0.2s" }, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 504);
      assert.equal(res.text(), "upstream request timeout");
      assert.equal(res.localReplyReason, "upstream_per_try_timeout");
      assert.equal(res.headers["x-envoy-attempt-count"], "1", "local replies of the router carry it too");
      assert.equal(res.attempts.length, 1);
    });
  });

  it("fires per_try_idle_timeout before response headers", async () => {
    anthropic.delayNext(1, 10_000);
    extProc.setHandler(phases({ "x-envoy-max-retries": "1" }));
    const file = path.join(dir, "idle.yaml");
    writeFileSync(file, chainYaml().replace("per_try_idle_timeout: 300s", "per_try_idle_timeout: 0.2s"));
    openai.failNext(1, 503);
    const h = await EnvoyHarness.start({ envoyYaml: file, extProcAddress: extProc.address, hostEndpoints: { "api.openai.com": openai.url, "api.anthropic.com": anthropic.url } });
    try {
      const res = await chat(h);
      assert.equal(res.status, 504);
      assert.equal(res.localReplyReason, "upstream_per_try_idle_timeout");
      assert.deepEqual(res.attempts.map((a) => a.failure), [{ kind: "status", status: 503 }, { kind: "per_try_timeout", timer: "per_try_idle_timeout" }]);
    } finally {
      await h.close();
    }
  });

  it("rate_limited_retry_back_off waits retry-after instead of the exponential back-off", async () => {
    openai.failNext(1, 429, { headers: { "retry-after": "3" } });
    await withChain({}, async (h) => {
      const started = Date.now();
      const res = await chat(h);
      assert.ok(Date.now() - started < 1000, "the real sleep is capped");
      assert.equal(res.status, 200);
      assert.deepEqual(res.attempts.map((a) => [a.endpointHostname, a.backoff, a.backoffMs]), [
        ["api.openai.com", undefined, undefined],
        ["api.anthropic.com", "rate_limited", 3000],
      ]);
    });
  });

  it("rate_limited_retry_back_off skips a value over max_interval, reads the next header, else backs off exponentially", async () => {
    const reset = Math.floor(Date.now() / 1000) + 5;
    openai.failNext(1, 429, { headers: { "retry-after": "60", "x-ratelimit-reset": String(reset) } });
    anthropic.failNext(1, 529, { headers: { "retry-after": "600" } });
    await withChain({}, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 200);
      const [, second, third] = res.attempts;
      assert.equal(second?.backoff, "rate_limited");
      assert.ok((second?.backoffMs ?? 0) >= 3000 && (second?.backoffMs ?? 0) <= 5000, `x-ratelimit-reset used: ${second?.backoffMs}`);
      // 600 s is over max_interval and nothing else parses: the first exponential step.
      assert.deepEqual([third?.backoff, third?.backoffMs], ["exponential", 250]);
    });
  });

  it("reads the retry-after an upstream filter added to the response headers", async () => {
    openai.failNext(1, 429, { headers: { "retry-after-ms": "1500" } });
    await withChain({}, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 200);
      assert.deepEqual([res.attempts[1]?.backoff, res.attempts[1]?.backoffMs], ["rate_limited", 2000]);
      assert.equal(res.headers["x-llm-router-target"], "anthropic-sonnet");
      assert.equal(res.headers["retry-after"], undefined, "only the retried attempt's response had it");
    });
  });

  it("x-envoy-max-retries: 0 set by the router phase stops after the first attempt", async () => {
    openai.failNext(1, 429, { headers: { "retry-after": "1" } });
    extProc.setHandler(phases({ "x-envoy-max-retries": "0" }));
    await withChain({}, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 429);
      assert.equal(res.attempts.length, 1);
      assert.deepEqual(res.attempts[0]?.failure, { kind: "status", status: 429 });
      assert.equal(res.attempts[0]?.requestHeaders["x-envoy-max-retries"], undefined, "the router consumes it");
      assert.equal(res.headers["x-envoy-attempt-count"], "1");
      assert.equal(res.headers["retry-after"], "1", "the client gets the provider's answer");
      assert.ok(res.notes.some((n) => n.includes("x-envoy-max-retries 0 overrides num_retries 2")));
      assert.equal(anthropic.requests.length, 0);
    });
  });

  it("treats endpoints without an override as connect failures; clusterEndpoints wins over hostEndpoints", async () => {
    await withChain(
      {},
      async (h) => {
        const res = await chat(h);
        assert.equal(res.status, 200);
        assert.deepEqual(res.attempts.map((a) => a.failure?.kind), ["connect_failure", "connect_failure", undefined]);
        assert.deepEqual(res.attempts.map((a) => a.endpoint), [undefined, undefined, vllm.url]);
      },
      { "vllm.internal": vllm.url },
    );
    const file = path.join(dir, "both.yaml");
    writeFileSync(file, chainYaml());
    const h = await EnvoyHarness.start({
      envoyYaml: file,
      extProcAddress: extProc.address,
      clusterEndpoints: { "chain-chat": [anthropic.url] },
      hostEndpoints: { "api.openai.com": openai.url },
    });
    try {
      const res = await chat(h);
      assert.equal(res.status, 200);
      assert.equal(res.attempts[0]?.endpoint, anthropic.url);
      assert.equal(openai.requests.length, 0);
    } finally {
      await h.close();
    }
    await assert.rejects(
      EnvoyHarness.start({ envoyYaml: file, extProcAddress: extProc.address, hostEndpoints: { "api.nope.example": openai.url } }),
      /no endpoint with hostname "api.nope.example"/,
    );
  });

  it("previous_priorities update_frequency 2 keeps the original load for the first retry", async () => {
    openai.failNext(2, 503);
    await withChain({ updateFrequency: 2 }, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 200);
      assert.deepEqual(res.attempts.map((a) => a.priority), [0, 0, 1]);
    });
  });

  it("auto_sni takes the name from the request's host once, for every priority", async () => {
    openai.failNext(1, 503);
    await withChain({ upstreamHttp: "auto_sni: true, auto_san_validation: true" }, async (h) => {
      const res = await chat(h);
      assert.equal(res.status, 200);
      assert.deepEqual(res.attempts.map((a) => [a.transportSocket?.sni, a.transportSocket?.subjectAltNames]), [
        [GATEWAY_HOST, [GATEWAY_HOST]],
        [GATEWAY_HOST, [GATEWAY_HOST]],
      ]);
      assert.ok(res.notes.some((n) => n.includes(`auto_sni uses "${GATEWAY_HOST}"`)));
    });
  });
});

describe("harness: ext_proc connections", () => {
  it("renews the connection after max_requests_per_connection streams, as Envoy does, closing the old one once drained", async () => {
    const { ExtProcChannels } = await import("./harness/ext-proc-client.js");
    const channels = new ExtProcChannels(() => 3);
    const streams = Array.from({ length: 7 }, () => channels.open("127.0.0.1:1"));
    assert.equal(channels.connectionsOpened, 3, "streams 1-3, 4-6, 7");
    assert.equal(new Set(streams.map((s) => s.client)).size, 3);
    for (const s of streams) s.done();
    channels.closeAll();
    const unlimited = new ExtProcChannels();
    for (let i = 0; i < 10; i++) unlimited.open("127.0.0.1:1").done();
    assert.equal(unlimited.connectionsOpened, 1);
    unlimited.closeAll();
  });
});
