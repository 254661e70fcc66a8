// Fuzzing the request body parser (src/api/request-body.ts) and the model splice
// (src/api/json-splice.ts): whatever the bytes, the parser answers with a JSON object or a
// GatewayError of the codes it documents, agrees with JSON.parse on what it accepts, hands on only
// what the service can serialise again, and leaves Object.prototype alone.
import assert from "node:assert/strict";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GatewayError, type ErrorCode } from "../src/api/errors";
import { replaceTopLevelString } from "../src/api/json-splice";
import { checkContentEncoding, checkContentType, decodeBody, MAX_JSON_DEPTH, parseJsonObject, requestedModel, type JsonObject } from "../src/api/request-body";
import {
  assertPrototypesClean,
  hostileKey,
  jsonObjectTree,
  jsonSpace,
  jsonTree,
  numberLiteral,
  POLLUTION_PAYLOADS,
  PROTOTYPE_KEYS,
  renderJson,
  type JsonTree,
} from "./support/fuzz-arbitraries";
import { FuzzSuite } from "./support/fuzz-budget";

const suite = new FuzzSuite("body");

/** fn's value, or undefined when it threw a GatewayError with one of `codes`; anything else fails. */
function gatewayOutcome<T>(fn: () => T, codes: readonly ErrorCode[]): { value: T } | { code: ErrorCode } {
  try {
    return { value: fn() };
  } catch (err) {
    assert.ok(err instanceof GatewayError, `threw ${String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}`);
    return { code: err.code };
  }
}

const PARSE_CODES: readonly ErrorCode[] = ["invalid_json", "body_not_object"];

/** Nesting depth of arrays and objects (the top object is 1), without recursion. */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    max = Math.max(max, d);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** The parser's whole contract on one body. */
function checkParse(body: Buffer): JsonObject | undefined {
  let expected: unknown;
  let valid = true;
  try {
    expected = JSON.parse(body.toString("utf8"));
  } catch {
    valid = false;
  }
  const r = gatewayOutcome(() => parseJsonObject(body), PARSE_CODES);
  if (!valid) {
    assert.deepEqual(r, { code: "invalid_json" });
    return undefined;
  }
  if (typeof expected !== "object" || expected === null || Array.isArray(expected)) {
    assert.deepEqual(r, { code: "body_not_object" });
    return undefined;
  }
  // Valid JSON is refused only for nesting deeper than the service could serialise again.
  const deep = depthOf(expected) > MAX_JSON_DEPTH;
  if ("code" in r) {
    assert.equal(r.code, "invalid_json");
    assert.ok(deep, "a refused valid object nests deeper than MAX_JSON_DEPTH");
    return undefined;
  }
  assert.ok(!deep, "an accepted object nests no deeper than MAX_JSON_DEPTH");
  // What the parser accepts, the service can serialise again (translations, cache keys,
  // stream_options and the model rewrite all do).
  assert.doesNotThrow(() => JSON.stringify(r.value));
  assert.deepEqual(r.value, expected);
  checkModel(r.value);
  return r.value;
}

function checkModel(json: JsonObject): void {
  const model = json.model;
  const r = gatewayOutcome(() => requestedModel(json), ["missing_model", "invalid_model"]);
  if (model === undefined || model === null) assert.deepEqual(r, { code: "missing_model" });
  else if (typeof model !== "string" || model.trim() === "") assert.deepEqual(r, { code: "invalid_model" });
  else assert.deepEqual(r, { value: model });
}

/** Bytes biased towards JSON's own characters, so that random input gets past the first token. */
const jsonishBytes = fc
  .array(
    fc.oneof(
      fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)),
      fc.constantFrom("{", "}", "[", "]", ":", ",", '"', '"model"', '"m"', "\\", "\\u", "0", "-", "1e9", "true", "null", " ", "\n", "\ufeff", "\xc3", "\xff").map((s) => Buffer.from(s, s.length === 1 && s.charCodeAt(0) > 0x7f && s !== "\ufeff" ? "latin1" : "utf8")),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.concat(parts));

describe("fuzz: request body parser", () => {
  it("arbitrary bytes: an object, invalid_json or body_not_object, as JSON.parse decides", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), jsonishBytes),
        suite.counted((body) => void checkParse(body)),
      ),
      suite.params(8_000),
    );
    assertPrototypesClean();
  });

  it("generated documents (hostile keys, duplicates, huge numbers, any whitespace) parse as JSON.parse does", () => {
    const doc = fc.oneof({ weight: 3, arbitrary: jsonObjectTree({ model: fc.oneof(jsonTree(1), fc.string().map((v): JsonTree => ({ t: "str", v }))) }) }, { weight: 1, arbitrary: jsonTree(4) });
    fc.assert(
      fc.property(
        doc,
        jsonSpace,
        suite.counted((tree, space) => {
          const parsed = checkParse(Buffer.from(renderJson(tree, space)));
          if (parsed === undefined || tree.t !== "obj") return;
          // Duplicate keys: the last one wins, as JSON.parse documents; no key is lost or invented.
          const last = new Map<string, JsonTree>();
          for (const [k, v] of tree.entries) last.set(k, v);
          assert.deepEqual(Object.keys(parsed).sort(), [...last.keys()].sort());
          for (const [k, v] of last) assert.deepEqual(Object.getOwnPropertyDescriptor(parsed, k)?.value, JSON.parse(renderJson(v)));
        }),
      ),
      suite.params(6_000),
    );
    assertPrototypesClean();
  });

  it("deep nesting: never throws out, and what is accepted can be serialised again", () => {
    const deep = fc.record({
      depth: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(127, 128, 129, 255, 256, 257), fc.integer({ min: 600, max: 5_000 }), fc.integer({ min: 5_000, max: 120_000 })),
      open: fc.constantFrom("[", '{"a":', '{"__proto__":', '{"messages":[', "[{}"),
      truncate: fc.boolean(),
    });
    fc.assert(
      fc.property(
        deep,
        suite.counted(({ depth, open, truncate }) => {
          const close = open === "[" ? "]" : open === '{"messages":[' ? "]}" : open === "[{}" ? "]" : "}";
          const inner = open === "[{}" ? "" : "1";
          let text = `{"model":"m","x":${open.repeat(depth)}${inner}${close.repeat(depth)}}`;
          if (truncate) text = text.slice(0, text.length - 1 - (depth % 7));
          checkParse(Buffer.from(text));
        }),
      ),
      // Regression: 764 levels of {"messages":[ parsed, then made JSON.stringify-based code throw
      // (withStreamUsage, cache keys, translations) until parseJsonObject refused such depth.
      suite.params(300, { examples: [[{ depth: 764, open: '{"messages":[', truncate: false }]] }),
    );
    assertPrototypesClean();
  });

  it("huge and odd numbers, as model and as values", () => {
    fc.assert(
      fc.property(
        numberLiteral,
        hostileKey,
        suite.counted((num, key) => {
          checkParse(Buffer.from(`{"model":${num}}`));
          checkParse(Buffer.from(`{${JSON.stringify(key)}:${num},"model":"m","n":[${num},${num}]}`));
          checkParse(Buffer.from(num));
        }),
      ),
      suite.params(3_000),
    );
  });

  it("invalid UTF-8 inside strings reads as U+FFFD; outside them it is invalid_json", () => {
    const badUtf8 = fc.oneof(
      fc.constantFrom([0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x99], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => [...b].map((x) => x | 0x80)),
    );
    fc.assert(
      fc.property(
        fc.string({ maxLength: 10 }),
        badUtf8,
        fc.nat(),
        suite.counted((prefix, bad, at) => {
          const head = Buffer.from(`{"model":${JSON.stringify(prefix)},"content":"`);
          const inString = Buffer.concat([head, Buffer.from(bad), Buffer.from('"}')]);
          const parsed = checkParse(inString);
          const valid = (() => {
            try {
              new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(bad));
              return true;
            } catch {
              return false;
            }
          })();
          assert.ok(parsed !== undefined && typeof parsed.content === "string");
          if (!valid) assert.ok(parsed.content.includes("\ufffd"), "invalid sequences read as U+FFFD");
          const doc = Buffer.from(`{"model":"m","a":[1,2]}`);
          const pos = at % (doc.length + 1);
          checkParse(Buffer.concat([doc.subarray(0, pos), Buffer.from(bad), doc.subarray(pos)]));
        }),
      ),
      suite.params(3_000),
    );
  });

  it("every cut of a valid object is invalid_json", () => {
    fc.assert(
      fc.property(
        jsonObjectTree({ model: fc.string().map((v): JsonTree => ({ t: "str", v })), messages: jsonTree(3) }),
        jsonSpace,
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        suite.counted((tree, space, cuts) => {
          const text = Buffer.from(renderJson(tree, space));
          for (const c of cuts) {
            const prefix = text.subarray(0, c % text.length);
            assert.deepEqual(gatewayOutcome(() => parseJsonObject(prefix), PARSE_CODES), { code: "invalid_json" });
          }
        }),
      ),
      suite.params(3_000),
    );
  });

  it("prototype keys stay plain data and never reach Object.prototype", () => {
    const polluting = fc.oneof(
      fc.constantFrom(...POLLUTION_PAYLOADS),
      fc.tuple(fc.constantFrom(...PROTOTYPE_KEYS), fc.constantFrom(...PROTOTYPE_KEYS), jsonTree(2)).map(([a, b, v]) => `{${JSON.stringify(a)}:{${JSON.stringify(b)}:${renderJson(v)}},"model":"m"}`),
    );
    fc.assert(
      fc.property(
        polluting,
        suite.counted((text) => {
          const parsed = checkParse(Buffer.from(text));
          if (parsed !== undefined) {
            // What the phases do with a body: spread it, set the model, serialise it, splice it.
            const copy: JsonObject = { ...parsed, stream_options: { include_usage: true } };
            copy.model = "x";
            assert.deepEqual(Object.getPrototypeOf(copy), Object.prototype);
            JSON.parse(JSON.stringify(copy));
            replaceTopLevelString(Buffer.from(text), "model", "y");
          }
          assertPrototypesClean();
        }),
      ),
      suite.params(2_000),
    );
  });

  it("decodeBody: arbitrary bytes and real encodings give a body, invalid_content_encoding or body_too_large", () => {
    const encodings = ["gzip", "x-gzip", "deflate", "br"] as const;
    const encode = (e: (typeof encodings)[number], b: Buffer): Buffer => (e === "br" ? brotliCompressSync(b) : e === "deflate" ? deflateSync(b) : gzipSync(b));
    fc.assert(
      fc.property(
        fc.constantFrom(...encodings),
        fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
        fc.integer({ min: 1, max: 600 }),
        fc.nat({ max: 20 }),
        suite.counted((encoding, bytes, maxBytes, flip) => {
          // Garbage: decoded or refused, never another exception.
          gatewayOutcome(() => decodeBody(bytes, encoding, maxBytes), ["invalid_content_encoding", "body_too_large"]);
          // A real encoding round-trips within the limit and is body_too_large beyond it.
          const packed = encode(encoding, bytes);
          const r = gatewayOutcome(() => decodeBody(packed, encoding, maxBytes), ["body_too_large", "invalid_content_encoding"]);
          if (bytes.length <= maxBytes) assert.ok("value" in r && r.value.equals(bytes), "decodes within the limit");
          else assert.deepEqual(r, { code: "body_too_large" });
          // A corrupted encoding: decoded, invalid or too large, never a crash.
          const corrupt = Buffer.from(packed);
          if (corrupt.length > 0) corrupt[flip % corrupt.length] = corrupt[flip % corrupt.length]! ^ 0x5a;
          gatewayOutcome(() => decodeBody(corrupt, encoding, maxBytes), ["invalid_content_encoding", "body_too_large"]);
        }),
      ),
      suite.params(2_000),
    );
  });

  it("content-type and content-encoding headers: any value is accepted or refused with 415", () => {
    const headerValue = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 20 }),
      fc.constantFrom("application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json", "application/json\r\nx: y", "text/plain", "gzip", " GZIP ", "br, gzip", "identity", "\u0000"),
      fc.tuple(fc.constantFrom("application/", "application/json", "gzip"), fc.string({ maxLength: 3000 })).map(([a, b]) => a + b),
    );
    fc.assert(
      fc.property(
        headerValue,
        suite.counted((v) => {
          gatewayOutcome(() => checkContentType(v), ["unsupported_media_type"]);
          const e = gatewayOutcome(() => checkContentEncoding(v), ["unsupported_content_encoding"]);
          if ("value" in e && e.value !== undefined) assert.ok(["gzip", "x-gzip", "deflate", "br"].includes(e.value));
        }),
      ),
      suite.params(2_000),
    );
  });

  it("replaceTopLevelString agrees with JSON.parse on generated documents (escaped keys, duplicates, nesting, whitespace)", () => {
    // "model" written in any of the spellings JSON.parse reads as "model".
    const modelKey = fc.constantFrom('"model"', '"mod\\u0065l"', '"\\u006dodel"', '"model\\u0000"', '"Model"', '"model "');
    const value = fc.oneof(jsonTree(2), fc.string({ unit: "binary", maxLength: 8 }).map((v): JsonTree => ({ t: "str", v })));
    const entry = fc.oneof(
      fc.tuple(modelKey, value),
      fc.tuple(hostileKey.map((k) => JSON.stringify(k)), jsonTree(3)),
      fc.tuple(fc.constant('"nested"'), jsonTree(2).map((t): JsonTree => ({ t: "obj", entries: [["model", t]] }))),
    );
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 6 }),
        jsonSpace,
        fc.string({ unit: "binary", maxLength: 10 }),
        suite.counted((entries, space, target) => {
          const text = `{${space}${entries.map(([k, v]) => `${k}${space}:${space}${renderJson(v, space)}`).join(`${space},${space}`)}${space}}`;
          const original = JSON.parse(text) as JsonObject;
          const out = replaceTopLevelString(Buffer.from(text), "model", target);
          const models = entries.filter(([k]) => JSON.parse(k) === "model").map(([, v]) => v);
          if (out === undefined) {
            // Refused only when the last word on `model` is missing or not a string... or an
            // earlier duplicate is not a string (it would be left for a first-wins provider).
            assert.ok(models.length === 0 || models.some((v) => v.t !== "str"), `refused ${text}`);
            return;
          }
          assert.ok(models.length > 0 && models.every((v) => v.t === "str"), `rewrote ${text}`);
          assert.deepEqual(JSON.parse(out.toString("utf8")), { ...original, model: target });
          // Every duplicate was rewritten, not only the one JSON.parse reads.
          const again = replaceTopLevelString(out, "model", "probe");
          assert.ok(again !== undefined);
          assert.equal(out.toString("utf8").split(JSON.stringify(target)).length - 1 >= models.length, true);
        }),
      ),
      suite.params(4_000),
    );
  });
});

suite.summary();
