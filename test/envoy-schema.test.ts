// Every Envoy bootstrap in envoy/ must be accepted by Envoy's config parser: a typo in a key or enum
// only shows up when Envoy starts, so these configs are checked against Envoy's own protos instead.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { lookupEnvoyMessage, NEWER_ENVOY_FIELDS, validateEnvoyBootstrap } from "./support/envoy-config-schema";
import type { ValidateOptions } from "./support/envoy-config-schema";

function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json")) || !fs.existsSync(path.join(dir, "envoy"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no repo root above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

const ENVOY_DIR = path.join(repoRoot(), "envoy");

/** YAML as Envoy reads it; anchors/aliases (the shared upstream filters) resolve to copies. */
function parseYaml(text: string): unknown {
  const value: unknown = parse(text, { maxAliasCount: -1 });
  return value;
}

const validateYaml = (text: string, options?: ValidateOptions): string[] => validateEnvoyBootstrap(parseYaml(text), options);

describe("envoy/*.yaml are valid Envoy bootstraps", () => {
  const files = fs.readdirSync(ENVOY_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();

  it("finds the bootstrap files", () => {
    assert.ok(files.includes("envoy.yaml"), `envoy/ has: ${files.join(", ")}`);
  });

  for (const file of files) {
    it(`envoy/${file}`, () => {
      assert.deepEqual(validateYaml(fs.readFileSync(path.join(ENVOY_DIR, file), "utf8")), []);
    });
  }

  it("an error in an aliased filter is reported at every place the alias is used", () => {
    const text = fs.readFileSync(path.join(ENVOY_DIR, "envoy.yaml"), "utf8");
    assert.match(text, /request_body_mode: BUFFERED/);
    const errors = validateYaml(text.replaceAll("request_body_mode: BUFFERED", "request_body_mode: BUFFERD"));
    const clusters = (parseYaml(text) as { static_resources: { clusters: Array<{ name: string }> } }).static_resources.clusters;
    const generated = clusters.map((c, i) => [c.name, i] as const).filter(([name]) => name !== "llm_router");
    const upstream = (i: number): string =>
      `static_resources.clusters[${i}].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]` +
      ".http_filters[0].typed_config.processing_mode.request_body_mode";
    // The listener's router phase + every generated cluster sharing the aliased upstream filters.
    assert.equal(errors.length, 1 + generated.length, errors.join("\n"));
    for (const [, i] of generated) assert.ok(errors.some((e) => e.startsWith(`${upstream(i)}: string "BUFFERD" is not a value of enum`)), `clusters[${i}]`);
  });
});

// A minimal listener with an ext_proc filter; `extProc` lines go into the ext_proc typed_config.
const LISTENER = "static_resources.listeners[0]";
const HCM = `${LISTENER}.filter_chains[0].filters[0].typed_config`;
const EXT_PROC = `${HCM}.http_filters[0].typed_config`;
function snippet(extProc = "", hcm = "route_config: { name: r }"): string {
  const indent = (lines: string, n: number): string =>
    lines.split("\n").filter((l) => l.trim() !== "").map((l) => " ".repeat(n) + l).join("\n");
  return `
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
${indent(hcm, 10)}
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service: { envoy_grpc: { cluster_name: c } }
${indent(extProc, 14)}
`;
}

/** Asserts exactly one error, at `at`, whose text matches `re`. */
function expectError(errors: string[], at: string, re: RegExp = /./): void {
  assert.equal(errors.length, 1, errors.join("\n"));
  const [error = ""] = errors;
  assert.ok(error.startsWith(`${at}: `), `expected path ${at}, got: ${error}`);
  assert.match(error.slice(at.length + 2), re);
}

describe("validateEnvoyBootstrap rejects what Envoy rejects", () => {
  it("accepts the minimal snippet (control)", () => {
    assert.deepEqual(validateYaml(snippet("processing_mode: { request_body_mode: BUFFERED }\nmessage_timeout: 0.25s")), []);
  });

  it("unknown key at the top level", () => {
    expectError(validateYaml("admin: {}\nbogus: 1\n"), "bogus", /unknown field "bogus" in envoy\.config\.bootstrap\.v3\.Bootstrap/);
  });

  it("unknown key deep inside a typed_config", () => {
    expectError(
      validateYaml(snippet("processing_mode: { request_body_mod: BUFFERED }")),
      `${EXT_PROC}.processing_mode.request_body_mod`,
      /unknown field .* in envoy\.extensions\.filters\.http\.ext_proc\.v3\.ProcessingMode/,
    );
  });

  it("enum: misspelt name, wrong case, undeclared number; declared number is fine", () => {
    const at = `${EXT_PROC}.processing_mode.request_body_mode`;
    expectError(validateYaml(snippet("processing_mode: { request_body_mode: BUFFERD }")), at, /not a value of enum .*BodySendMode/);
    expectError(validateYaml(snippet("processing_mode: { request_body_mode: buffered }")), at);
    expectError(validateYaml(snippet("processing_mode: { request_body_mode: 99 }")), at);
    assert.deepEqual(validateYaml(snippet("processing_mode: { request_body_mode: 1 }")), []);
  });

  it("unresolvable or malformed @type", () => {
    const filter = `${HCM}.http_filters[0].typed_config["@type"]`;
    const nope = snippet().replace("ext_proc.v3.ExternalProcessor", "nope.v3.Nope");
    expectError(validateYaml(nope), filter, /unknown message type envoy\.extensions\.filters\.http\.nope\.v3\.Nope/);
    const noPrefix = snippet().replace("type.googleapis.com/envoy.extensions.filters.http", "envoy.extensions.filters.http");
    expectError(validateYaml(noPrefix), filter, /expected "type\.googleapis\.com\/<message full name>"/);
  });

  it("Duration must be decimal seconds with an s suffix", () => {
    const cluster = (timeout: string): string => `static_resources:\n  clusters:\n  - name: c\n    connect_timeout: ${timeout}\n`;
    for (const bad of ["5 seconds", "5", "1m", "0.1234567891s"]) {
      expectError(validateYaml(cluster(JSON.stringify(bad))), "static_resources.clusters[0].connect_timeout", /expected a duration/);
    }
    for (const good of ["1s", "0.25s", "600s", "0s"]) assert.deepEqual(validateYaml(cluster(good)), []);
  });

  it("repeated field given a single value", () => {
    expectError(validateYaml("static_resources:\n  clusters: { name: c }\n"), "static_resources.clusters", /expected an array/);
    expectError(validateYaml(snippet("request_attributes: xds.cluster_name")), `${EXT_PROC}.request_attributes`, /expected an array/);
  });

  it("two members of a oneof", () => {
    const routes = [
      "route_config:",
      "  virtual_hosts:",
      "  - name: v",
      "    domains: ['*']",
      "    routes:",
      "    - match: { prefix: / }",
      "      route: { cluster: a, cluster_header: x-c }",
    ].join("\n");
    expectError(
      validateYaml(snippet("", routes)),
      `${HCM}.route_config.virtual_hosts[0].routes[0].route`,
      /oneof cluster_specifier .* got cluster, cluster_header/,
    );
  });

  it("scalars are type-checked", () => {
    const port = `${LISTENER}.address.socket_address.port_value`;
    expectError(validateYaml(snippet().replace("port_value: 10000", "port_value: http")), port, /expected uint32/);
    expectError(validateYaml(snippet().replace("port_value: 10000", "port_value: 4294967296")), port, /out of range/);
    expectError(validateYaml(snippet().replace("name: l", "name: 5")), `${LISTENER}.name`, /expected string/);
    expectError(validateYaml(snippet("failure_mode_allow: 'false'")), `${EXT_PROC}.failure_mode_allow`, /expected bool/);
    // Wrapper types are written as the bare scalar.
    const limit = `${LISTENER}.per_connection_buffer_limit_bytes`;
    expectError(validateYaml(snippet().replace("- name: l", "- name: l\n    per_connection_buffer_limit_bytes: { value: 5 }")), limit);
    assert.deepEqual(validateYaml(snippet().replace("- name: l", "- name: l\n    per_connection_buffer_limit_bytes: 1024")), []);
    // 64-bit integers may be strings; bytes are base64.
    const opt = (v: string): string => `
static_resources:
  clusters:
  - name: c
    upstream_bind_config:
      source_address: { address: 0.0.0.0, port_value: 0 }
      socket_options: [{ level: 1, name: 2, ${v} }]
`;
    assert.deepEqual(validateYaml(opt('int_value: "9007199254740993"')), []);
    assert.deepEqual(validateYaml(opt("buf_value: AAEC")), []);
    const buf = "static_resources.clusters[0].upstream_bind_config.socket_options[0].buf_value";
    expectError(validateYaml(opt("buf_value: not base64!")), buf, /expected base64/);
  });

  it("camelCase JSON names are accepted, but not alongside the snake_case name", () => {
    assert.deepEqual(validateYaml("staticResources:\n  clusters:\n  - { name: c, connectTimeout: 1s }\n"), []);
    expectError(validateYaml("static_resources:\n  clusters:\n  - { name: c, connect_timeout: 1s, connectTimeout: 2s }\n"),
      "static_resources.clusters[0].connectTimeout", /also set as "connect_timeout"/);
  });

  it("Struct is free-form, null means unset, Any can hold a well-known type", () => {
    assert.deepEqual(validateYaml("node: { id: n, metadata: { a: [1, { b: null }], c: true } }\nadmin: ~\n"), []);
    expectError(validateYaml("node: { metadata: [1] }\n"), "node.metadata", /expected an object \(Struct\)/);
    const any = (v: string): string => `
static_resources:
  clusters:
  - name: c
    typed_extension_protocol_options:
      x: { "@type": type.googleapis.com/google.protobuf.Duration, value: ${v} }
`;
    assert.deepEqual(validateYaml(any("1s")), []);
    const value = 'static_resources.clusters[0].typed_extension_protocol_options["x"].value';
    expectError(validateYaml(any("1 s")), value, /expected a duration/);
  });

  it("protoc-gen-validate required fields and oneofs", () => {
    const noGrpc = snippet().replace(/^ *grpc_service:.*\n/m, "");
    expectError(validateYaml(noGrpc), EXT_PROC, /missing required field grpc_service/);
    const emptyGrpc = snippet().replace("grpc_service: { envoy_grpc: { cluster_name: c } }", "grpc_service: {}");
    expectError(validateYaml(emptyGrpc), `${EXT_PROC}.grpc_service`, /oneof target_specifier .* is required/);
  });

  it("a non-object bootstrap", () => {
    expectError(validateEnvoyBootstrap("admin"), "<root>", /expected an object/);
  });
});

describe("NEWER_ENVOY_FIELDS", () => {
  it("each entry is missing from the API snapshot, in a message the snapshot has", () => {
    for (const { path: fieldPath } of NEWER_ENVOY_FIELDS) {
      const cut = fieldPath.lastIndexOf(".");
      const message = lookupEnvoyMessage(fieldPath.slice(0, cut));
      assert.ok(message, `${fieldPath}: message not in the snapshot`);
      assert.equal(message.fields[fieldPath.slice(cut + 1)], undefined, `${fieldPath} is in the snapshot: drop the entry`);
    }
  });

  it("accepts an allow-listed field (snake or camel case) and type-checks its value", () => {
    const field = "send_body_without_waiting_for_header_response";
    assert.deepEqual(validateYaml(snippet(`${field}: true`)), []);
    assert.deepEqual(validateYaml(snippet("sendBodyWithoutWaitingForHeaderResponse: false")), []);
    expectError(validateYaml(snippet(`${field}: "yes"`)), `${EXT_PROC}.${field}`, /expected bool/);
    expectError(validateYaml(snippet(`${field}: true`), { newerFields: [] }), `${EXT_PROC}.${field}`, /unknown field/);
  });

  it("supports message-typed entries", () => {
    const newerFields = [{ path: "envoy.config.bootstrap.v3.Bootstrap.shiny_timeout", type: "google.protobuf.Duration", since: "9.99.0" }];
    assert.deepEqual(validateYaml("shiny_timeout: 1s\n", { newerFields }), []);
    expectError(validateYaml("shiny_timeout: soon\n", { newerFields }), "shiny_timeout", /expected a duration/);
  });
});
