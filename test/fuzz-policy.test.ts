// Fuzzing the policy loader (src/policy/compile.ts compilePolicyText): arbitrary text, arbitrary
// JSON, and the example policies mutated at random JSON paths (fields dropped, replaced, retyped,
// renamed, added, prototype keys, huge and regex-hostile strings, truncated text). The loader either
// returns a compiled policy whose runtime values are sane, or throws PolicyError whose every issue
// names a JSON path the message shows; never another exception, never a slow case, and never a
// credential's value in the message.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compilePolicyText, type CompiledPolicy, type CompileOptions } from "../src/policy/compile";
import { PolicyError } from "../src/policy/policy-error";
import { MAX_DURATION_MS } from "../src/policy/schema-parts";
import { assertPrototypesClean, hostileKey, jsonTree, PROTOTYPE_KEYS, renderJson, type JsonTree } from "./support/fuzz-arbitraries";
import { FuzzSuite } from "./support/fuzz-budget";
import { fuzzPolicyDocument, FUZZ_ENV } from "./support/fuzz-service";
import { examplePolicy, REPO_ROOT } from "./support/service";

const suite = new FuzzSuite("policy");
const FILE = "fuzz/policy.json";


/** A path as policy-error.ts jsonPath() writes it: a.b[2]["odd key"]. */
const JSON_PATH = /^(?:[A-Za-z_$][A-Za-z0-9_$]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])(?:\.[A-Za-z_$][A-Za-z0-9_$]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*$/;

const OPTIONS: CompileOptions[] = [
  { file: FILE, resolveSecrets: false },
  { file: FILE, resolveSecrets: false, secretPlaceholders: true },
  { file: FILE, resolveSecrets: true, env: FUZZ_ENV },
];
const SECRET_VALUES = Object.values(FUZZ_ENV).filter((v): v is string => typeof v === "string" && v.length > 8);

function finiteMs(v: number | undefined, what: string): void {
  if (v === undefined) return;
  assert.ok(Number.isFinite(v) && v >= 0 && v <= MAX_DURATION_MS, `${what} is ${v} ms`);
}

/** What the hot path relies on in a compiled policy. */
function checkCompiled(p: CompiledPolicy): void {
  assert.match(p.hash, /^[0-9a-f]{64}$/);
  for (const d of [p.cooldown.windowMs, p.cooldown.durationMs, p.cooldown.maxRetryAfterMs]) finiteMs(d, "a cooldown duration");
  for (const t of p.targets.values()) finiteMs(t.provider.connectTimeoutMs, `${t.id} connectTimeout`);
  for (const r of p.routes) {
    assert.ok(r.chain.length > 0 && r.chain.length === r.config.targets.length, `${r.name} has its chain`);
    for (const t of r.chain) {
      assert.equal(p.targets.get(t.id), t);
      assert.ok(r.clusterStartingWith.get(t.id)?.order[0] === t);
    }
    const q = r.retry;
    for (const [k, v] of Object.entries({ perTry: q.perTryTimeoutMs, idle: q.perTryIdleTimeoutMs, base: q.backoffBaseMs, max: q.backoffMaxMs, retryAfter: q.retryAfterMaxMs })) finiteMs(v, `${r.name} retry ${k}`);
    assert.ok(Number.isInteger(q.retries) && q.retries >= 0);
    if (r.cache) for (const v of [r.cache.ttlMs, r.cache.coalesceWaitMs]) finiteMs(v, `${r.name} cache`);
  }
  for (const c of p.clusters.values()) assert.ok(c.order.length > 0 && c.order.every((t) => p.targets.get(t.id) === t));
  for (const pt of p.passthrough) assert.equal(p.targets.get(pt.target.id), pt.target);
  p.routesForModel("smart");
  p.routesForModel("__proto__");
  p.consumerForKeyDigest(Buffer.alloc(32));
}

/** The loader's contract on one text. */
function checkLoad(text: string, options: CompileOptions): void {
  let compiled: CompiledPolicy;
  try {
    compiled = compilePolicyText(text, options);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `threw ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(err.file, FILE);
    assert.ok(err.issues.length > 0, "a PolicyError lists its issues");
    for (const issue of err.issues) {
      assert.ok(issue.path === "" || JSON_PATH.test(issue.path), `issue path ${JSON.stringify(issue.path)}`);
      assert.ok(typeof issue.message === "string" && issue.message !== "", "every issue says what is wrong");
      assert.ok(err.message.includes(`${FILE}: ${issue.path === "" ? "(document)" : issue.path}: `), "the message names the path");
    }
    for (const s of SECRET_VALUES) assert.ok(!err.message.includes(s), "a credential's value is in the error message");
    return;
  }
  checkCompiled(compiled);
}

// ---- mutations of real policies ----

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = Array<string | number>;

const BASES: Array<[string, Json]> = [
  ["examples/policy.json", JSON.parse(readFileSync(path.join(REPO_ROOT, "examples/policy.json"), "utf8")) as Json],
  ["examples/policy.demo.json", JSON.parse(readFileSync(path.join(REPO_ROOT, "examples/policy.demo.json"), "utf8")) as Json],
  ["example, Azure key from env", examplePolicy() as unknown as Json],
  ["the fuzz policy (every provider type, cache, limits)", fuzzPolicyDocument() as unknown as Json],
];

function pathsOf(v: Json, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...at, i], out));
  else if (v !== null && typeof v === "object") for (const k of Object.keys(v)) pathsOf(v[k]!, [...at, k], out);
  return out;
}

function get(v: Json, p: Path): Json {
  let cur = v;
  for (const k of p) cur = (cur as Record<string | number, Json>)[k]!;
  return cur;
}

/** Sets an own data property (so "__proto__" stays a key, as JSON.parse makes it). */
function put(obj: Json, key: string | number, value: Json): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A value of another JSON type, built from the old one. */
function retype(v: Json): Json {
  if (typeof v === "string") return v.length;
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? "true" : 0;
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x])) as Json;
  return Object.values(v);
}

/** Strings that cost regexes, URL parsers and number parsers the most. */
const hostileString = fc.oneof(
  fc.tuple(fc.constantFrom("1", "9", "a", "a.", "-", "0.", "http://a", "https://", "x".repeat(3), "/", "\\", "é", "\ud800"), fc.integer({ min: 100, max: 60_000 }), fc.constantFrom("", "!", "s", "ms", "h", "x", "\n")).map(([unit, n, end]) => unit.repeat(n) + end),
  fc.constantFrom("30s", "0s", "0.5ms", "1e3s", "99999999999999999999999999h", `${"9".repeat(400)}s`, "-1s", "Infinity", "NaN", "https://api.openai.com", "http://[::1]:8080", "http://exa mple.com", "https://u:p@host", "ftp://x", "/v1", "/v1/chat/completions", "/v1/models", "", " ", "__proto__", "us-east-1", "x-llm-router-cluster", "Content-Type"),
);

const newValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: jsonTree(3).map((t) => JSON.parse(renderJson(t)) as Json) },
  { weight: 2, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.constantFrom<Json>(0, -1, 0.5, 1e308, -0, 2 ** 53 + 1, 1e21, true, null, [], {}, [""], { env: "OPENAI_API_KEY" }, { file: "/nonexistent/key" }, { env: "NOT_SET_ANYWHERE" }) },
);

/** Near-valid values of the same kind as the one they replace: they get past the schema's shape checks. */
const DURATIONS = ["0s", "0ms", "0.0001ms", "1ms", "0.5s", "999999999999h", "99999999999999999999999999h", `${"9".repeat(400)}s`, "10000000000s", "1.5m", "1e3s", "+1s", " 1s"];
const NUMBERS = [0, -1, 1, 0.5, 1e308, 2 ** 31, 2 ** 53 + 1, 1e21, 5e-324, -0];
const URLS = ["api.openai.com", "https://api.openai.com/v1", "https://api.openai.com:99999", "http://[::1]:8080", "https://a", "https://exa_mple.com", "https://xn--nxasmq6b.com", "http://10.0.0.1:0", "https://host?x=1", "https://u@host"];

const mutation = fc.record({
  kind: fc.constantFrom("delete", "replace", "retype", "add", "rename", "duplicate", "swap", "tweak", "tweak"),
  at: fc.nat(),
  other: fc.nat(),
  key: fc.oneof(hostileKey, fc.constantFrom(...PROTOTYPE_KEYS, "$comment", "name", "targets", "match", "retry", "cache", "credential", "endpoint")),
  value: newValue,
});
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(doc: Json, m: Mutation): Json {
  const paths = pathsOf(doc);
  const p = paths[m.at % paths.length]!;
  if (p.length === 0) return m.kind === "retype" ? retype(doc) : m.kind === "replace" ? m.value : doc;
  const parent = get(doc, p.slice(0, -1)) as Json[] | Record<string, Json>;
  const key = p[p.length - 1]!;
  const old = get(doc, p);
  switch (m.kind) {
    case "delete":
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
      break;
    case "replace":
      put(parent, key, m.value);
      break;
    case "retype":
      put(parent, key, retype(old));
      break;
    case "add":
      if (Array.isArray(old)) old.push(m.value);
      else if (old !== null && typeof old === "object") put(old, m.key, m.value);
      else put(parent, key, m.value);
      break;
    case "rename":
      if (!Array.isArray(parent)) {
        delete parent[key as string];
        put(parent, m.key, old);
      }
      break;
    case "duplicate":
      if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(old));
      break;
    case "tweak": {
      // The m.at-th value of a kind the schema parses further (durations, numbers, endpoints).
      const tweakable = paths.filter((q) => {
        const v = get(doc, q);
        return q.length > 0 && (typeof v === "number" || (typeof v === "string" && (/^\d+(\.\d+)?(ms|s|m|h)$/.test(v) || /^https?:/.test(v))));
      });
      if (tweakable.length === 0) break;
      const q = tweakable[m.other % tweakable.length]!;
      const v = get(doc, q);
      const pick = <T>(list: readonly T[]): T => list[m.at % list.length]!;
      put(get(doc, q.slice(0, -1)), q[q.length - 1]!, typeof v === "number" ? pick(NUMBERS) : /^https?:/.test(v as string) ? pick(URLS) : pick(DURATIONS));
      break;
    }
    case "swap": {
      // Move a value somewhere else in the document (valid shapes in the wrong place).
      const q = paths[m.other % paths.length]!;
      if (q.length > 0) put(parent, key, structuredClone(get(doc, q)));
      break;
    }
  }
  return doc;
}

describe("fuzz: policy loader", () => {
  it("arbitrary text: a compiled policy or a PolicyError at the document", () => {
    const fragments = fc.array(fc.constantFrom("{", "}", "[", "]", '"routes"', '"providers"', ":", ",", "null", "1", '"x"', "//", "/*", "\ufeff", " "), { maxLength: 30 }).map((p) => p.join(""));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 100 }), fragments),
        fc.constantFrom(...OPTIONS),
        suite.counted((text, options) => checkLoad(text, options)),
      ),
      suite.params(1_500),
    );
    assertPrototypesClean();
  });

  it("arbitrary JSON documents, and the policy's top-level keys with arbitrary values", () => {
    const sections = ["version", "gateway", "providers", "targets", "routes", "consumers", "passthrough", "limits", "metrics", "$schema", "$comment"];
    const doc = fc.oneof(
      jsonTree(4),
      fc.array(fc.tuple(fc.oneof(fc.constantFrom(...sections), hostileKey), jsonTree(3)), { maxLength: 8 }).map((entries): JsonTree => ({ t: "obj", entries })),
    );
    fc.assert(
      fc.property(
        doc,
        fc.constantFrom(...OPTIONS),
        suite.counted((tree, options) => checkLoad(renderJson(tree), options)),
      ),
      suite.params(1_500),
    );
    assertPrototypesClean();
  });

  it("the example policies mutated at random JSON paths", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...BASES),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.constantFrom(...OPTIONS),
        // Text damage on one case in six.
        fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.constantFrom("", "}", "{", ",", '"', "\u0000")) }),
        suite.counted(([, base], mutations, options, textEdit) => {
          let doc = structuredClone(base);
          for (const m of mutations) doc = mutate(doc, m);
          let text = JSON.stringify(doc, null, mutations.length % 2 === 0 ? 2 : undefined) ?? "null";
          if (textEdit !== undefined) {
            // Text damage on top: a cut, or a stray character.
            const at = textEdit[0] % (text.length + 1);
            text = textEdit[1] === "" ? text.slice(0, at) : text.slice(0, at) + textEdit[1] + text.slice(at);
          }
          checkLoad(text, options);
          assertPrototypesClean();
        }),
      ),
      suite.params(6_000),
    );
  });

  it("regressions: an endpoint that is no URL (no scheme) and a duration past Envoy's range are PolicyErrors naming them", () => {
    // zod ran the endpoint's refinement after .url() had failed, and new URL() threw out of the loader.
    const doc = examplePolicy() as unknown as { routes: Array<Record<string, unknown>> };
    // A duration past Envoy's range compiled to 3.6e18 ms (or Infinity) and rendered as "3.6e+15s".
    doc.routes[1]!.retry = { perTryIdleTimeout: "999999999999h" };
    assert.throws(() => compilePolicyText(JSON.stringify(doc), OPTIONS[0]!), (err: unknown) => err instanceof PolicyError && err.issues.some((i) => i.path === "routes[1].retry.perTryIdleTimeout"));
    for (const endpoint of ["api.openai.com", "30s", "http://vllm.internal:8000,"]) {
      const doc = examplePolicy() as unknown as { providers: Record<string, Record<string, unknown>> };
      doc.providers.openai!.endpoint = endpoint;
      assert.throws(() => compilePolicyText(JSON.stringify(doc), OPTIONS[0]!), (err: unknown) => err instanceof PolicyError && err.issues.some((i) => i.path === "providers.openai.endpoint"));
      checkLoad(JSON.stringify(doc), OPTIONS[0]!);
    }
  });

  it("the unmutated bases compile", () => {
    for (const [name, base] of BASES) {
      // The example files name credential files that exist only in a deployment.
      for (const options of OPTIONS.filter((o) => !o.resolveSecrets || !name.startsWith("examples/"))) {
        assert.doesNotThrow(() => checkCompiled(compilePolicyText(JSON.stringify(base), options)), name);
      }
    }
  });
});

suite.summary();
