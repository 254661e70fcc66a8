import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import type { JsonObject } from "../src/api/request-body";
import { mockVector } from "../src/mock-provider/reply";
import { type MockProvider, startMockProvider } from "../src/mock-provider/server";
import { adapterFor } from "../src/providers/registry";
import { embeddingFamily, openAiEmbeddingsToBedrock } from "../src/translate/openai-embeddings-to-bedrock";
import { serves, translationFor } from "../src/translate/registry";
import type { TranslationMeta } from "../src/translate/types";
import { REPO_ROOT } from "./support/service";

const FIXTURES = path.join(REPO_ROOT, "test/fixtures/translate/openai-bedrock-embeddings");
const t = openAiEmbeddingsToBedrock;

function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as T;
}

interface RequestVectors {
  nowMs: number;
  vectors: Array<{ name: string; model: string; input: JsonObject; expected: { body: unknown; dropped: string[] } }>;
}
interface ResponseVectors {
  meta: TranslationMeta;
  vectors: Array<{ name: string; model?: string; base64?: boolean; input: unknown; expected: unknown }>;
}
interface ErrorVectors {
  vectors: Array<{ name: string; status: number; headers: Record<string, string>; body: string; expected: unknown }>;
}

const requests = fixture<RequestVectors>("requests.json");
const responses = fixture<ResponseVectors>("responses.json");
const errors = fixture<ErrorVectors>("errors.json");

const TITAN = "amazon.titan-embed-text-v2:0";
const COHERE = "cohere.embed-english-v3";
const target = (model: string) => ({ model, defaultMaxTokens: 4096, nowMs: requests.nowMs });
const metaFor = (v: { model?: string; base64?: boolean }): TranslationMeta => ({
  ...responses.meta,
  extra: { ...responses.meta.extra, ...(v.model === undefined ? {} : { model: v.model }), base64: v.base64 === true },
});
const parse = (b: Buffer): Record<string, unknown> => JSON.parse(b.toString("utf8")) as Record<string, unknown>;

describe("OpenAI embeddings -> Bedrock InvokeModel: requests", () => {
  for (const v of requests.vectors) {
    it(v.name, () => {
      assert.equal(t.check(v.input, v.model), undefined);
      const r = t.request(v.input, target(v.model));
      assert.deepEqual(JSON.parse(r.body.toString("utf8")), v.expected.body);
      assert.deepEqual(r.dropped, v.expected.dropped);
      assert.equal(r.stream, false);
      assert.equal(r.meta.created, Math.floor(requests.nowMs / 1000));
      assert.equal(r.meta.clientModel, v.input["model"]);
      assert.equal(r.meta.extra?.["model"], v.model);
      assert.equal(r.meta.extra?.["base64"], v.input["encoding_format"] === "base64");
    });
  }

  it("is the registry's one translation for OpenAI embeddings on Bedrock, sent to /model/{id}/invoke", () => {
    const bedrock = adapterFor("bedrock");
    assert.equal(translationFor(bedrock, "embeddings"), t);
    assert.ok(serves(bedrock, "embeddings"));
    const r = bedrock.rewrite({
      provider: { type: "bedrock", region: "us-east-1" },
      credential: undefined,
      target: { model: "us.cohere.embed-v4:0", deployment: undefined },
      operation: "embeddings",
      originalPathname: "/v1/embeddings",
      originalQuery: "?ignored=1",
      stream: false,
      clientAnthropicVersion: undefined,
      clientAnthropicBeta: undefined,
    });
    assert.equal(r.path, "/model/us.cohere.embed-v4%3A0/invoke");
  });
});

describe("OpenAI embeddings -> Bedrock InvokeModel: model families", () => {
  const table: Array<[string, string | undefined]> = [
    ["amazon.titan-embed-text-v2:0", "Amazon Titan Text Embeddings V2"],
    ["us.amazon.titan-embed-text-v2:0", "Amazon Titan Text Embeddings V2"],
    ["arn:aws:bedrock:eu-west-1::foundation-model/amazon.titan-embed-text-v2:0", "Amazon Titan Text Embeddings V2"],
    ["amazon.titan-embed-text-v1", "Amazon Titan Embeddings G1"],
    ["amazon.titan-embed-g1-text-02", "Amazon Titan Embeddings G1"],
    ["cohere.embed-english-v3", "Cohere Embed v3"],
    ["eu.cohere.embed-multilingual-v3", "Cohere Embed v3"],
    ["cohere.embed-v4:0", "Cohere Embed v4"],
    ["global.cohere.embed-v4:0", "Cohere Embed v4"],
    ["arn:aws:bedrock:us-east-1:123456789012:inference-profile/apac.cohere.embed-v4:0", "Cohere Embed v4"],
    ["anthropic.claude-3-5-haiku-20241022-v1:0", undefined],
    ["amazon.nova-pro-v1:0", undefined],
    ["arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", undefined],
  ];
  for (const [model, label] of table) it(model, () => assert.equal(embeddingFamily(model)?.label, label));
});

describe("OpenAI embeddings -> Bedrock InvokeModel: check()", () => {
  const many = (n: number): string[] => Array.from({ length: n }, (_, i) => `text ${i}`);
  const table: Array<[string, string, JsonObject, RegExp | undefined]> = [
    ["Titan: one string", TITAN, { input: "a" }, undefined],
    ["Titan: a one-element array", TITAN, { input: ["a"] }, undefined],
    ["Titan: two texts", TITAN, { input: ["a", "b"] }, /`input` holds 2 texts; Amazon Titan Text Embeddings V2 embeds one text per request/],
    ["Titan G1: two texts", "amazon.titan-embed-text-v1", { input: ["a", "b"] }, /one text per request/],
    ["Titan V2: dimensions 1024", TITAN, { input: "a", dimensions: 1024 }, undefined],
    ["Titan V2: dimensions 768", TITAN, { input: "a", dimensions: 768 }, /`dimensions` must be one of 256, 512, 1024/],
    ["Titan V2: dimensions as a string", TITAN, { input: "a", dimensions: "256" }, /`dimensions` must be one of/],
    ["Titan G1: any dimensions", "amazon.titan-embed-text-v1", { input: "a", dimensions: 1536 }, /`dimensions` cannot be set for Amazon Titan Embeddings G1/],
    ["Cohere: 96 texts", COHERE, { input: many(96) }, undefined],
    ["Cohere: 97 texts", COHERE, { input: many(97) }, /`input` holds 97 texts; Cohere Embed v3 on Bedrock takes at most 96/],
    ["Cohere v3: dimensions", COHERE, { input: "a", dimensions: 1024 }, /`dimensions` cannot be set for Cohere Embed v3/],
    ["Cohere v4: dimensions 1536", "cohere.embed-v4:0", { input: "a", dimensions: 1536 }, undefined],
    ["Cohere v4: dimensions 100", "cohere.embed-v4:0", { input: "a", dimensions: 100 }, /256, 512, 1024, 1536/],
    ["token ids", COHERE, { input: [1, 2, 3] }, /token ids/],
    ["token id arrays", TITAN, { input: [[1, 2]] }, /token ids/],
    ["an empty array", COHERE, { input: [] }, /`input` is empty/],
    ["no input", TITAN, {}, /`input` must be a string or an array of strings/],
    ["objects in input", COHERE, { input: [{ text: "a" }] }, /`input` must be a string or an array of strings/],
    ["encoding_format base64", COHERE, { input: "a", encoding_format: "base64" }, undefined],
    ["encoding_format int8", COHERE, { input: "a", encoding_format: "int8" }, /encoding_format `int8`/],
    ["a chat model", "anthropic.claude-3-5-haiku-20241022-v1:0", { input: "a" }, /model family is not supported for embeddings/],
  ];
  for (const [name, model, body, expected] of table) {
    it(name, () => {
      const why = t.check(body, model);
      if (expected === undefined) assert.equal(why, undefined);
      else assert.match(why ?? "", expected);
    });
  }

  it("never names the target's model (the sentence is shown to clients)", () => {
    const model = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/secret-name";
    assert.ok(!(t.check({ input: "a" }, model) ?? "").includes("secret-name"));
  });
});

describe("OpenAI embeddings -> Bedrock InvokeModel: answers", () => {
  for (const v of responses.vectors) {
    it(v.name, () => {
      const r = t.response(metaFor(v), false);
      assert.equal(r.contentType(false), "application/json");
      assert.deepEqual(parse(r.json(Buffer.from(JSON.stringify(v.input)))), v.expected);
    });
  }

  it("answers an unreadable body with upstream_response_invalid", () => {
    const r = t.response(responses.meta, false);
    for (const body of ["not json", "[]", "{}", '{"embedding":"x"}', '{"embedding":null,"inputTextTokenCount":1}', '{"embeddings":[["a"]]}', '{"embeddings":{"int8":[[1]]}}']) {
      const out = parse(r.json(Buffer.from(body))) as { error: { code: string } };
      assert.equal(out.error.code, "upstream_response_invalid", body);
    }
  });

  it("base64 is the float32 little-endian bytes of each value", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { maxLength: 64 }), (values) => {
        const out = parse(t.response(metaFor({ base64: true }), false).json(Buffer.from(JSON.stringify({ embedding: values, inputTextTokenCount: 1 })))) as { data: Array<{ embedding: string }> };
        const bytes = Buffer.from(out.data[0]!.embedding, "base64");
        assert.equal(bytes.length, values.length * 4);
        // What the provider sent, as JSON carries it (-0 arrives as 0).
        const sent = JSON.parse(JSON.stringify(values)) as number[];
        sent.forEach((x, i) => assert.ok(Object.is(bytes.readFloatLE(i * 4), Math.fround(x))));
      }),
      { numRuns: 200 },
    );
  });
});

describe("OpenAI embeddings -> Bedrock InvokeModel: errors", () => {
  for (const v of errors.vectors) {
    it(v.name, () => {
      const r = t.response(responses.meta, false);
      assert.equal(r.status(v.status), v.status);
      assert.deepEqual(parse(r.error(v.status, Buffer.from(v.body), (name) => v.headers[name])), v.expected);
    });
  }
});

describe("OpenAI embeddings -> Bedrock InvokeModel: never throws", () => {
  it("json() and error() on arbitrary bytes, and json() on arbitrary JSON shapes", () => {
    const shapes = fc.oneof(
      fc.jsonValue(),
      fc.record({ embedding: fc.jsonValue(), inputTextTokenCount: fc.jsonValue(), embeddingsByType: fc.jsonValue() }, { requiredKeys: [] }),
      fc.record({ embeddings: fc.oneof(fc.array(fc.array(fc.double())), fc.record({ float: fc.jsonValue() }), fc.jsonValue()), meta: fc.jsonValue() }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), shapes, fc.integer({ min: 100, max: 599 }), fc.option(fc.string()), fc.boolean(), (raw, shape, status, header, base64) => {
        const r = t.response(metaFor({ base64 }), false);
        const bytes = Buffer.from(raw);
        for (const body of [bytes, Buffer.from(JSON.stringify(shape) ?? "null")]) {
          const out = parse(r.json(body));
          assert.ok(out["object"] === "list" || out["error"] !== undefined);
        }
        assert.ok(parse(r.error(status, bytes, () => header ?? undefined))["error"]);
        assert.deepEqual(r.streamChunk(bytes, true), bytes);
      }),
      { numRuns: 300 },
    );
  });

  it("check() never throws and request() takes whatever check() lets through", () => {
    const models = fc.constantFrom(TITAN, "amazon.titan-embed-text-v1", COHERE, "cohere.embed-v4:0", "amazon.nova-pro-v1:0");
    const body = fc.record(
      {
        model: fc.jsonValue(),
        input: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 100 }), fc.jsonValue()),
        dimensions: fc.oneof(fc.constantFrom(256, 512, 1024, 1536), fc.jsonValue()),
        encoding_format: fc.oneof(fc.constantFrom("float", "base64"), fc.jsonValue()),
        user: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(body, models, (b, model) => {
        if (t.check(b as JsonObject, model) !== undefined) return;
        const sent = JSON.parse(t.request(b as JsonObject, target(model)).body.toString("utf8")) as Record<string, unknown>;
        assert.ok(typeof sent["inputText"] === "string" || (Array.isArray(sent["texts"]) && sent["texts"].length <= 96));
      }),
      { numRuns: 400 },
    );
  });
});

// ---- the mock Bedrock InvokeModel endpoint, through the translation ----

describe("mock provider: Bedrock InvokeModel for embeddings", () => {
  let mock: MockProvider;
  before(async () => {
    mock = await startMockProvider();
  });
  after(async () => {
    await mock.close();
  });
  beforeEach(() => mock.reset());

  async function call(model: string, body: JsonObject, raw?: unknown): Promise<{ status: number; native: Record<string, unknown>; out: Record<string, unknown>; headers: Headers }> {
    assert.equal(t.check(body, model), undefined);
    const r = t.request(body, target(model));
    const res = await fetch(`${mock.url}/model/${encodeURIComponent(model)}/invoke`, { method: "POST", headers: { "content-type": "application/json" }, body: raw === undefined ? r.body : JSON.stringify(raw) });
    const answer = Buffer.from(await res.arrayBuffer());
    const translator = t.response(r.meta, false);
    const header = (n: string) => res.headers.get(n) ?? undefined;
    const out = res.ok ? translator.json(answer, header) : translator.error(res.status, answer, header);
    return { status: res.status, native: parse(answer), out: parse(out), headers: res.headers };
  }

  it("Titan V2 answers one deterministic vector of the asked size, with its token count", async () => {
    const { status, native, out, headers } = await call(TITAN, { model: "embed", input: "hello titan", dimensions: 256 });
    assert.equal(status, 200);
    assert.deepEqual(native["embedding"], mockVector("hello titan", 256));
    assert.ok(native["embeddingsByType"]);
    const tokens = Number(headers.get("x-amzn-bedrock-input-token-count"));
    assert.ok(tokens > 0);
    assert.equal(native["inputTextTokenCount"], tokens);
    const data = out["data"] as Array<{ index: number; embedding: number[] }>;
    assert.deepEqual(data.map((d) => [d.index, d.embedding.length]), [[0, 256]]);
    assert.deepEqual(out["usage"], { prompt_tokens: tokens, total_tokens: tokens });
    assert.equal(mock.requests[0]?.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
  });

  it("Cohere answers a batch by type; usage is Bedrock's input-token header (the body has no count)", async () => {
    const { status, native, out, headers } = await call(COHERE, { model: "embed", input: ["alpha", "beta", "gamma"], encoding_format: "base64" });
    assert.equal(status, 200);
    assert.equal(native["response_type"], "embeddings_by_type");
    assert.ok(Number(headers.get("x-amzn-bedrock-input-token-count")) > 0);
    const data = out["data"] as Array<{ index: number; embedding: string }>;
    assert.deepEqual(data.map((d) => d.index), [0, 1, 2]);
    const first = Buffer.from(data[0]!.embedding, "base64");
    assert.deepEqual(Array.from({ length: first.length / 4 }, (_, i) => first.readFloatLE(i * 4)), mockVector("alpha", 8).map(Math.fround));
    const tokens = Number(headers.get("x-amzn-bedrock-input-token-count"));
    assert.deepEqual(out["usage"], { prompt_tokens: tokens, total_tokens: tokens });
  });

  it("Cohere v4 honours output_dimension", async () => {
    const { out } = await call("cohere.embed-v4:0", { model: "embed", input: ["x"], dimensions: 512 });
    assert.equal((out["data"] as Array<{ embedding: number[] }>)[0]?.embedding.length, 512);
  });

  it("Cohere without embedding_types answers embeddings_floats, which reads the same", async () => {
    const { native, out } = await call(COHERE, { model: "embed", input: ["alpha"] }, { texts: ["alpha"], input_type: "search_document" });
    assert.equal(native["response_type"], "embeddings_floats");
    assert.deepEqual((out["data"] as Array<{ embedding: number[] }>)[0]?.embedding, mockVector("alpha", 8));
  });

  it("refuses keys the model does not know, in Bedrock's error shape, translated to OpenAI's", async () => {
    const { status, native, out } = await call(TITAN, { model: "embed", input: "a" }, { inputText: "a", model: "embed" });
    assert.equal(status, 400);
    assert.match(String(native["message"]), /extraneous key \[model\]/);
    assert.deepEqual((out as { error: { type: string; code: string } }).error.code, "ValidationException");
    const v1 = await call("amazon.titan-embed-text-v1", { model: "embed", input: "a" }, { inputText: "a", dimensions: 256 });
    assert.equal(v1.status, 400);
  });

  it("a forced failure has Bedrock's error shape, translated to OpenAI's", async () => {
    mock.failNext(1, 429);
    const { status, out } = await call(COHERE, { model: "embed", input: "a" });
    assert.equal(status, 429);
    assert.deepEqual(out, { error: { message: "mock forced failure (429)", type: "rate_limit_error", param: null, code: "ThrottlingException" } });
  });
});
