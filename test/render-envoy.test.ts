// render-envoy: envoy.yaml generated from the policy. The committed bootstraps equal their render,
// every render passes the strict Envoy-schema check and `validate`, and the generated pieces say
// what the README promises (chain clusters by priority, per-route retry policies, TLS per origin).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { checkPolicyAgainstEnvoy } from "../src/envoy/bootstrap-check";
import { renderEnvoy, RenderError } from "../src/envoy/render";
import { compilePolicyText, type CompiledPolicy } from "../src/policy/compile";
import { validateEnvoyBootstrap } from "./support/envoy-config-schema";
import { examplePolicy, REPO_ROOT } from "./support/service";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const read = (rel: string) => fs.readFileSync(path.join(REPO_ROOT, rel), "utf8");
const compile = (doc: object | string, file = "policy.json"): CompiledPolicy =>
  compilePolicyText(typeof doc === "string" ? doc : JSON.stringify(doc), { file, resolveSecrets: false });
const BASE = read("envoy/envoy.base.yaml");

function render(doc: object): { text: string; yaml: Obj; policy: CompiledPolicy } {
  const policy = compile(doc);
  const text = renderEnvoy(policy, BASE, { policyFile: "policy.json", baseFile: "envoy/envoy.base.yaml" });
  return { text, yaml: parse(text, { maxAliasCount: -1 }) as Obj, policy };
}

const clusterNamed = (yaml: Obj, name: string): Obj => {
  const c = (yaml.static_resources.clusters as Obj[]).find((x) => x.name === name);
  assert.ok(c, `cluster ${name}`);
  return c;
};
const routes = (yaml: Obj): Obj[] => yaml.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes as Obj[];

describe("render-envoy", () => {
  for (const [policyFile, baseFile, out] of [
    ["examples/policy.json", "envoy/envoy.base.yaml", "envoy/envoy.yaml"],
    ["examples/policy.demo.json", "envoy/envoy.demo.base.yaml", "envoy/envoy.demo.yaml"],
  ] as const) {
    it(`${out} is the render of ${policyFile} on ${baseFile}`, () => {
      const policy = compile(read(policyFile), policyFile);
      assert.equal(renderEnvoy(policy, read(baseFile), { policyFile, baseFile }), read(out), `run: llm-router render-envoy --policy ${policyFile} --base ${baseFile} --out ${out}`);
    });
  }

  it("a chain becomes one cluster per first target, the chain's targets at priorities 0..n-1", () => {
    const { yaml, policy } = render(examplePolicy());
    const smart = policy.routes.find((r) => r.name === "smart")!;
    for (const first of smart.chain) {
      const compiled = smart.clusterStartingWith.get(first.id)!;
      assert.equal(compiled.order[0], first);
      const cluster = clusterNamed(yaml, compiled.name);
      const groups = cluster.load_assignment.endpoints as Obj[];
      assert.deepEqual(
        groups.map((g) => [g.priority, g.lb_endpoints[0].metadata.filter_metadata.llm_router.target]),
        compiled.order.map((t, i) => [i, t.id]),
      );
      // The remaining targets keep the chain's written order.
      assert.deepEqual(compiled.order.slice(1).map((t) => t.id), smart.chain.filter((t) => t !== first).map((t) => t.id));
    }
  });

  it("each origin gets its own transport socket: TLS with SNI and SAN, or plaintext", () => {
    const { yaml, policy } = render(examplePolicy());
    const name = policy.routes.find((r) => r.name === "smart")!.clusterStartingWith.get("openai-gpt-4o")!.name;
    const cluster = clusterNamed(yaml, name);
    const sockets = Object.fromEntries((cluster.transport_socket_matches as Obj[]).map((m) => [m.name, m]));
    assert.deepEqual(Object.keys(sockets).sort(), ["api.openai.com:443", "my-resource.openai.azure.com:443", "vllm.internal:8000"]);
    const azure = sockets["my-resource.openai.azure.com:443"]!;
    assert.deepEqual(azure.match, { origin: "my-resource.openai.azure.com:443" });
    assert.equal(azure.transport_socket.typed_config.sni, "my-resource.openai.azure.com");
    assert.equal(azure.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.exact, "my-resource.openai.azure.com");
    assert.equal(sockets["vllm.internal:8000"]!.transport_socket.name, "envoy.transport_sockets.raw_buffer");
    // A plaintext origin in the cluster: HTTP/1.1 for all (auto_config needs ALPN on every socket).
    assert.ok(cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config);
    const single = clusterNamed(yaml, "tgt_openai-gpt-4o");
    assert.equal(single.transport_socket.typed_config.sni, "api.openai.com");
    assert.ok(single.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].auto_config);
  });

  it("each policy route gets an Envoy route on the route header, with its retry policy", () => {
    const doc = examplePolicy();
    const r = (doc.routes as Obj[]).find((x) => x.name === "smart")!;
    r.retry = { retries: 1, statusCodes: [429, 503], conditions: ["connect-failure"], perTryTimeout: "45s", perTryIdleTimeout: "20s", backoff: { base: "100ms", max: "1s" }, retryAfter: { honor: true, max: "3s" } };
    const { yaml } = render(doc);
    const all = routes(yaml);
    const smart = all.find((x) => x.name === "smart")!;
    assert.deepEqual(smart.match, { prefix: "/", headers: [{ name: "x-llm-router-route", string_match: { exact: "smart" } }] });
    assert.equal(smart.route.cluster_header, "x-llm-router-cluster");
    assert.equal(smart.route.timeout, "0s");
    assert.equal(smart.route.auto_host_rewrite, true);
    const p = smart.route.retry_policy;
    assert.equal(p.retry_on, "connect-failure,retriable-status-codes");
    assert.deepEqual(p.retriable_status_codes, [429, 503]);
    assert.equal(p.num_retries, 1);
    assert.equal(p.per_try_timeout, "45s");
    assert.equal(p.per_try_idle_timeout, "20s");
    assert.deepEqual(p.retry_back_off, { base_interval: "0.1s", max_interval: "1s" });
    assert.deepEqual(p.rate_limited_retry_back_off, { reset_headers: [{ name: "retry-after", format: "SECONDS" }], max_interval: "3s" });
    assert.equal(p.retry_priority.name, "envoy.retry_priorities.previous_priorities");
    // Defaults: a 3-target chain retries twice on 429/5xx/529 and does not wait on retry-after; a
    // single target honours it.
    const fast = all.find((x) => x.name === "fast")!.route.retry_policy;
    assert.equal(fast.num_retries, 1);
    assert.deepEqual(fast.retriable_status_codes, [429, 500, 502, 503, 504, 529]);
    assert.ok(fast.rate_limited_retry_back_off);
    const defaults = render(examplePolicy()).yaml;
    const chain = routes(defaults).find((x) => x.name === "smart")!.route.retry_policy;
    assert.equal(chain.num_retries, 2);
    assert.equal(chain.rate_limited_retry_back_off, undefined);
    // Passthrough and the base's final 404 come after the policy routes.
    assert.deepEqual(all.slice(-2).map((x) => x.name ?? x.direct_response?.status), ["__passthrough", 404]);
  });

  it("renders of assorted policies pass Envoy's schema and `validate`", () => {
    const variants: Array<[string, (d: Obj) => void]> = [
      ["example", () => undefined],
      ["weighted canary over three providers", (d) => {
        d.routes[1].strategy = { type: "weighted", weights: { "openai-gpt-4o": 90, "azure-gpt-4o": 10, "local-llama": 0 } };
      }],
      ["an IP endpoint over TLS and a custom CA", (d) => {
        d.providers.vllm.endpoint = "https://10.0.0.7:8443";
        d.gateway = { caFile: "/etc/llm/ca.pem" };
      }],
      ["no passthrough", (d) => {
        d.passthrough = [];
      }],
    ];
    for (const [name, mutate] of variants) {
      const doc = examplePolicy() as Obj;
      mutate(doc);
      const { yaml, policy } = render(doc);
      assert.deepEqual(validateEnvoyBootstrap(yaml), [], name);
      const report = checkPolicyAgainstEnvoy(policy, yaml, 16 * 1024 * 1024);
      assert.deepEqual(report.errors, [], name);
      assert.deepEqual(report.warnings, [], name);
    }
  });

  it("validate catches a hand-edited cluster whose priorities no longer follow the chain", () => {
    const { yaml, policy } = render(examplePolicy());
    const name = policy.routes.find((r) => r.name === "smart")!.clusterStartingWith.get("openai-gpt-4o")!.name;
    const groups = clusterNamed(yaml, name).load_assignment.endpoints as Obj[];
    [groups[0]!.priority, groups[1]!.priority] = [1, 0];
    const errors = checkPolicyAgainstEnvoy(policy, yaml, 16 * 1024 * 1024).errors;
    assert.ok(errors.some((e) => e.includes(`cluster ${name}: priority 0 must be target openai-gpt-4o`)), errors.join("\n"));
  });

  it("validate requires the router phase to see responses and the gRPC connection to be renewed", () => {
    const { yaml, policy } = render(examplePolicy());
    const grpcCluster = clusterNamed(yaml, "llm_router") as Obj;
    const options = (grpcCluster.typed_extension_protocol_options as Obj)["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] as Obj;
    delete options.common_http_protocol_options;
    const hcm = JSON.stringify(yaml).replace('"response_header_mode":"SEND","response_body_mode":"NONE"', '"response_header_mode":"SKIP","response_body_mode":"NONE"');
    const errors = checkPolicyAgainstEnvoy(policy, JSON.parse(hcm) as Obj, 16 * 1024 * 1024).errors;
    assert.ok(errors.some((e) => e.includes('ext_proc gRPC cluster "llm_router": set') && e.includes("max_requests_per_connection")), errors.join("\n"));
    assert.ok(errors.some((e) => e.includes("router phase needs processing_mode.response_header_mode: SEND and allow_mode_override: true")), errors.join("\n"));
  });

  it("refuses a base that already defines a generated cluster, or has no router phase", () => {
    const policy = compile(examplePolicy());
    const clash = BASE.replace("  - name: llm_router\n", "  - name: tgt_openai-gpt-4o\n    type: STATIC\n  - name: llm_router\n");
    assert.throws(() => renderEnvoy(policy, clash, { policyFile: "p", baseFile: "b" }), (e: unknown) => e instanceof RenderError && /tgt_openai-gpt-4o.*generated/.test(e.message));
    const noRouter = BASE.replace("x-llm-router-phase, value: router", "x-llm-router-phase, value: upstream");
    assert.throws(() => renderEnvoy(policy, noRouter, { policyFile: "p", baseFile: "b" }), /no router-phase ext_proc filter/);
  });
});
