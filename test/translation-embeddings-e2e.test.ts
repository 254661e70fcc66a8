// OpenAI embeddings on Bedrock end to end: client -> Envoy harness (bootstrap rendered by
// render-envoy) -> llm-router (both phases, real gRPC) -> the mock Bedrock endpoint. The upstream
// phase sends InvokeModel (/model/{id}/invoke) with the model's own body, SigV4-signed over it; the
// client gets OpenAI's embeddings JSON. A batch Titan cannot take in one call never reaches it.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { mockVector } from "../src/mock-provider/reply";
import { startMockProvider, type MockProvider, type RecordedRequest } from "../src/mock-provider/server";
import { EnvoyHarness } from "./harness/envoy-harness";
import { examplePolicy, startTestService, TEST_ENV, type TestService } from "./support/service";
import { renderedEnvoyYaml } from "./support/stack";

const ENV = { ...TEST_ENV, AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const ALICE = { "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const HOST = "bedrock-runtime.us-east-1.amazonaws.com";

function policy(): Record<string, unknown> {
  const doc = examplePolicy();
  delete doc.passthrough;
  doc.consumers = (doc.consumers as Array<{ id: string }>).filter((c) => c.id === "alice");
  doc.gateway = { ...(doc.gateway as object), cooldown: { failures: 1000 } };
  doc.providers = {
    bedrock: { type: "bedrock", region: "us-east-1", awsCredentials: { accessKeyId: { env: "AWS_ACCESS_KEY_ID" }, secretAccessKey: { env: "AWS_SECRET_ACCESS_KEY" } } },
  };
  doc.targets = {
    titan: { provider: "bedrock", model: "amazon.titan-embed-text-v2:0", capabilities: ["embeddings"] },
    cohere: { provider: "bedrock", model: "us.cohere.embed-v4:0", capabilities: ["embeddings"] },
  };
  doc.routes = [
    { name: "titan-only", match: { models: ["titan"], paths: ["/v1/embeddings"] }, targets: ["titan"] },
    { name: "titan-then-cohere", match: { models: ["embed"], paths: ["/v1/embeddings"] }, targets: ["titan", "cohere"] },
  ];
  return doc;
}

function header(r: RecordedRequest, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join("|") : v;
}

interface EmbeddingList {
  object: string;
  data: Array<{ object: string; index: number; embedding: number[] }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

describe("OpenAI embeddings on Bedrock through the Envoy harness", () => {
  let svc: TestService;
  let envoy: EnvoyHarness;
  let bedrock: MockProvider;

  before(async () => {
    const doc = policy();
    svc = await startTestService(doc, ENV);
    bedrock = await startMockProvider();
    envoy = await EnvoyHarness.start({ envoyYaml: renderedEnvoyYaml(doc), extProcAddress: svc.address, hostEndpoints: { [HOST]: bedrock.url } });
  });
  after(async () => {
    await envoy.close();
    await bedrock.close();
    await svc.stop();
  });
  beforeEach(() => bedrock.reset());

  it("Titan: InvokeModel with Titan's body, SigV4 over it, OpenAI's embeddings JSON back", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/embeddings", headers: ALICE, body: JSON.stringify({ model: "titan", input: "hello bedrock", dimensions: 256, user: "u-1" }) });
    assert.equal(res.status, 200, res.text());
    assert.equal(res.headers["x-llm-router-target"], "titan");
    const out = res.json() as EmbeddingList;
    assert.equal(out.object, "list");
    assert.equal(out.model, "amazon.titan-embed-text-v2:0");
    assert.deepEqual(out.data, [{ object: "embedding", index: 0, embedding: mockVector("hello bedrock", 256) }]);
    const sent = bedrock.requests.at(-1);
    assert.ok(sent);
    assert.equal(sent.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert.deepEqual(sent.json, { inputText: "hello bedrock", dimensions: 256 });
    assert.equal(header(sent, "content-length"), String(sent.body.length));
    // Titan counts the tokens in its body: they reach the client as usage.
    assert.ok(out.usage.prompt_tokens > 0 && out.usage.total_tokens === out.usage.prompt_tokens, JSON.stringify(out.usage));
    // Recompute the signature over what the provider received (host, date, body): it must match.
    const auth = header(sent, "authorization") ?? "";
    assert.match(auth, /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/);
    const signer = new SignatureV4({ service: "bedrock", region: "us-east-1", sha256: Sha256, credentials: { accessKeyId: ENV.AWS_ACCESS_KEY_ID, secretAccessKey: ENV.AWS_SECRET_ACCESS_KEY } });
    const amzDate = header(sent, "x-amz-date") ?? "";
    const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
    const again = await signer.sign(
      { method: "POST", protocol: "https:", hostname: HOST, path: "/model/amazon.titan-embed-text-v2%3A0/invoke", query: {}, headers: { host: header(sent, "host") ?? "", "content-type": header(sent, "content-type") ?? "" }, body: sent.body },
      { signingDate: date },
    );
    assert.equal(again.headers["authorization"], auth);
    assert.ok(!JSON.stringify(sent.headers).includes(ENV.AWS_SECRET_ACCESS_KEY), "the secret key never leaves");
    assert.ok(!JSON.stringify(sent.headers).includes("sk-demo-"), "client key leaked");
  });

  it("several inputs on a Titan-only route: 400 field_not_supported_by_target, nothing sent", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/embeddings", headers: ALICE, body: JSON.stringify({ model: "titan", input: ["one", "two"] }) });
    assert.equal(res.status, 400, res.text());
    const out = res.json() as { error: { code: string; message: string } };
    assert.equal(out.error.code, "field_not_supported_by_target");
    assert.match(out.error.message, /`input` holds 2 texts.*one text per request.*\(bedrock\)/);
    assert.equal(bedrock.requests.length, 0);
  });

  it("several inputs on a Titan -> Cohere chain: Titan is skipped, Cohere embeds the batch", async () => {
    const res = await envoy.request({ method: "POST", path: "/v1/embeddings", headers: ALICE, body: JSON.stringify({ model: "embed", input: ["one", "two", "three"], dimensions: 512 }) });
    assert.equal(res.status, 200, res.text());
    assert.equal(res.headers["x-llm-router-target"], "cohere");
    assert.equal(bedrock.requests.length, 1);
    const sent = bedrock.requests[0]!;
    assert.equal(sent.path, "/model/us.cohere.embed-v4%3A0/invoke");
    assert.deepEqual(sent.json, { texts: ["one", "two", "three"], input_type: "search_document", embedding_types: ["float"], output_dimension: 512 });
    const out = res.json() as EmbeddingList;
    assert.deepEqual(out.data.map((d) => [d.index, d.embedding.length]), [[0, 512], [1, 512], [2, 512]]);
    assert.deepEqual(out.data[2]!.embedding, mockVector("three", 512));
    // Bedrock's Cohere body has no token count: it comes from InvokeModel's input-token header.
    assert.ok(out.usage.prompt_tokens > 0 && out.usage.total_tokens === out.usage.prompt_tokens, JSON.stringify(out.usage));
  });

  it("a Bedrock error reaches the client as OpenAI error JSON", async () => {
    bedrock.failNext(1, 400);
    const res = await envoy.request({ method: "POST", path: "/v1/embeddings", headers: ALICE, body: JSON.stringify({ model: "titan", input: "x" }) });
    assert.equal(res.status, 400, res.text());
    const out = res.json() as { error: { message: string; type: string; code: string } };
    assert.equal(out.error.type, "invalid_request_error");
    assert.equal(out.error.code, "ValidationException");
    assert.match(out.error.message, /mock forced failure/);
  });
});
