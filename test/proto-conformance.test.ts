// The project's reduced ext_proc protos (proto/) must be a faithful subset of Envoy's published ones:
// if a field number, type or label drifted, the service would silently mis-encode what Envoy reads.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { parse, Root } from "protobufjs";
import { ENVOY_PROTO_INCLUDE_DIRS, envoyApiFile } from "./support/envoy-protos";
import { compareProtoSubset, loadProtos, PARSE_OPTIONS } from "./support/proto-subset";

/** The repo root, found from this file whether it runs compiled (dist/test) or from source (test). */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, "package.json")) || !fs.existsSync(path.join(dir, "proto"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no repo root above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

/** Every .proto under proto/, as include-root-relative paths (the same paths Envoy's tree uses). */
function projectProtoFiles(protoDir: string): string[] {
  return fs
    .readdirSync(protoDir, { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".proto"))
    .map((file) => file.split(path.sep).join("/"))
    .sort();
}

const PROTO_DIR = path.join(repoRoot(), "proto");
const PROJECT_FILES = projectProtoFiles(PROTO_DIR);

// Envoy's originals of the same files (their imports pull in validate/udpa/xds annotations too).
let envoyRootCache: Root | undefined;
function envoyRoot(): Root {
  envoyRootCache ??= loadProtos(PROJECT_FILES, ENVOY_PROTO_INCLUDE_DIRS);
  return envoyRootCache;
}

/** Runs the checker on a synthetic "project" proto given as source text. */
function checkSource(source: string): string[] {
  const root = parse(source, new Root(), PARSE_OPTIONS).root;
  root.resolveAll();
  return compareProtoSubset(root, envoyRoot());
}

describe("project protos are a subset of Envoy's", () => {
  it("finds the project's proto files, each with an Envoy original", () => {
    assert.ok(PROJECT_FILES.includes("envoy/service/ext_proc/v3/external_processor.proto"), PROJECT_FILES.join(", "));
    for (const file of PROJECT_FILES) assert.ok(fs.existsSync(envoyApiFile(file)), `Envoy has no ${file}`);
  });

  it("every declaration in proto/ matches Envoy's", () => {
    // Project dir only: google/protobuf/* comes from protobufjs's bundled well-known types.
    const project = loadProtos(PROJECT_FILES, [PROTO_DIR]);
    assert.ok(project.lookup(".envoy.service.ext_proc.v3.ExternalProcessor"), "project service not loaded");
    assert.deepEqual(compareProtoSubset(project, envoyRoot()), []);
  });

  it("Envoy's protos are a subset of themselves (checker handles options, extensions, nesting)", () => {
    assert.deepEqual(compareProtoSubset(envoyRoot(), envoyRoot()), []);
  });
});

describe("compareProtoSubset reports each kind of drift", () => {
  const header = 'syntax = "proto3";\npackage envoy.service.ext_proc.v3;\n';

  /** Asserts that `body` yields exactly the errors matching `expected`, in order. */
  function expectErrors(body: string, expected: RegExp[]): void {
    const errors = checkSource(header + body);
    assert.equal(errors.length, expected.length, errors.join("\n"));
    expected.forEach((re, i) => assert.match(errors[i] ?? "", re));
  }

  it("accepts a correct partial declaration (control)", () => {
    expectErrors(
      `message HttpBody { bool end_of_stream = 2; }
       message BodyMutation { oneof mutation { bool clear_body = 2; } }
       message CommonResponse { enum ResponseStatus { CONTINUE_AND_REPLACE = 1; } }`,
      [],
    );
  });

  it("wrong field number", () => {
    expectErrors("message HttpBody { bytes body = 2; }", [/HttpBody\.body: field number 2, Envoy has 1/]);
  });

  it("wrong scalar type", () => {
    expectErrors("message HttpBody { string body = 1; }", [/HttpBody\.body: type string, Envoy has bytes/]);
  });

  it("wrong message type", () => {
    expectErrors("message HttpBody {}\nmessage HeadersResponse { HttpBody response = 1; }", [
      /HeadersResponse\.response: type envoy\.service\.ext_proc\.v3\.HttpBody, Envoy has envoy\.service\.ext_proc\.v3\.CommonResponse/,
    ]);
  });

  it("field Envoy does not have", () => {
    expectErrors("message HttpBody { bool compressed = 9; }", [/HttpBody\.compressed: field not in Envoy/]);
  });

  it("wrong label: singular vs repeated", () => {
    expectErrors("message HeaderMutation { string remove_headers = 2; }", [
      /HeaderMutation\.remove_headers: label singular, Envoy has repeated/,
    ]);
  });

  it("wrong label: proto3 optional vs implicit presence", () => {
    expectErrors("message HttpBody { optional bool end_of_stream = 2; }", [
      /HttpBody\.end_of_stream: label optional, Envoy has singular/,
    ]);
  });

  it("wrong map value type", () => {
    expectErrors("message ProcessingRequest { map<string, string> attributes = 9; }", [
      /ProcessingRequest\.attributes: type string, Envoy has google\.protobuf\.Struct/,
      /label map<string, string>, Envoy has map<string, google\.protobuf\.Struct>/,
    ]);
  });

  it("oneof membership, both directions", () => {
    expectErrors("message BodyMutation { bytes body = 1; }", [/BodyMutation\.body: oneof \(none\), Envoy has mutation/]);
    expectErrors("message HttpBody { oneof x { bytes body = 1; } }", [
      /HttpBody\.body: oneof x, Envoy has \(none\)/,
      /HttpBody\.x: oneof not in Envoy/,
    ]);
  });

  it("wrong enum value number, and a value Envoy does not have", () => {
    expectErrors("message CommonResponse { enum ResponseStatus { CONTINUE = 0; CONTINUE_AND_REPLACE = 2; SKIP = 3; } }", [
      /ResponseStatus\.CONTINUE_AND_REPLACE: value 2, Envoy has 1/,
      /ResponseStatus\.SKIP: enum value not in Envoy/,
    ]);
  });

  it("message, enum and package Envoy does not have; message/enum kind swapped", () => {
    expectErrors("message NotInEnvoy {}\nenum AlsoNot { A = 0; }\nenum HttpBody { X = 0; }", [
      /ext_proc\.v3\.NotInEnvoy: message in the project, nothing in Envoy/,
      /ext_proc\.v3\.AlsoNot: enum in the project, nothing in Envoy/,
      /ext_proc\.v3\.HttpBody: enum in the project, message in Envoy/,
    ]);
    const errors = checkSource('syntax = "proto3";\npackage envoy.service.ext_proc.v9;\nmessage HttpBody {}');
    assert.deepEqual(errors, ["envoy.service.ext_proc.v9.HttpBody: message in the project, nothing in Envoy"]);
  });

  it("rpc: missing, wrong streaming flag, wrong message type", () => {
    const messages = "message ProcessingRequest {}\nmessage ProcessingResponse {}\n";
    expectErrors(messages + "service ExternalProcessor { rpc Process(ProcessingRequest) returns (stream ProcessingResponse); }", [
      /ExternalProcessor\.Process: rpc \(envoy\.service\.ext_proc\.v3\.ProcessingRequest\) returns .*, Envoy has \(stream /,
    ]);
    expectErrors(messages + "service ExternalProcessor { rpc Process(stream ProcessingResponse) returns (stream ProcessingResponse); }", [
      /ExternalProcessor\.Process: rpc \(stream envoy\.service\.ext_proc\.v3\.ProcessingResponse\)/,
    ]);
    expectErrors(messages + "service ExternalProcessor { rpc Other(ProcessingRequest) returns (ProcessingResponse); }", [
      /ExternalProcessor\.Other: rpc not in Envoy/,
    ]);
  });
});
