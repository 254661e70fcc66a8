// The Bedrock adapter's SigV4 signature, checked against a computation written from the AWS
// documentation alone (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html):
// canonical request (each path segment URI-encoded twice for services other than S3), string to
// sign, derived signing key, and the Authorization header built from them.
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { describe, it } from "node:test";
import type { ProviderConfig } from "../src/policy/schema";
import { Secret } from "../src/policy/secret";
import { bedrockAdapter } from "../src/providers/bedrock";
import type { AttemptInput, AwsCredentials } from "../src/providers/types";

type BedrockConfig = Extract<ProviderConfig, { type: "bedrock" }>;

const provider = { type: "bedrock", region: "us-east-1" } as BedrockConfig;
const AKID = "AKIDEXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const aws: AwsCredentials = { accessKeyId: new Secret(AKID), secretAccessKey: new Secret(SECRET) };
const host = "bedrock-runtime.us-east-1.amazonaws.com";
const now = new Date("2024-06-10T12:34:56.789Z");
const MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";

const sha256Hex = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string): Buffer => createHmac("sha256", key).update(data, "utf8").digest();

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ as %XX, uppercase hex. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

interface Expected {
  authorization: string;
  signedHeaders: string[];
  canonicalRequest: string;
}

/** The documented algorithm, from the request as it goes on the wire. */
function expectedSignature(opts: {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  secret?: string;
  region?: string;
}): Expected {
  const q = opts.path.indexOf("?");
  const rawPath = q === -1 ? opts.path : opts.path.slice(0, q);
  // The wire path is already encoded once; the canonical URI encodes each segment again.
  const canonicalUri = rawPath
    .split("/")
    .map((seg) => uriEncode(seg))
    .join("/");
  const query = q === -1 ? [] : [...new URLSearchParams(opts.path.slice(q + 1))];
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const names = Object.keys(opts.headers).map((n) => n.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(opts.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonicalHeaders = names.map((n) => `${n}:${(lower[n] ?? "").trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = ["POST", canonicalUri, canonicalQuery, canonicalHeaders, signedHeaders, sha256Hex(opts.body)].join("\n");
  const amzDate = lower["x-amz-date"] ?? "";
  const date = amzDate.slice(0, 8);
  const region = opts.region ?? "us-east-1";
  const scope = `${date}/${region}/bedrock/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
  const kDate = hmac(`AWS4${opts.secret ?? SECRET}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, "bedrock");
  const kSigning = hmac(kService, "aws4_request");
  const signature = createHmac("sha256", kSigning).update(stringToSign, "utf8").digest("hex");
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signedHeaders: names,
    canonicalRequest,
  };
}

async function sign(path: string, body: Buffer, creds: AwsCredentials = aws, region = "us-east-1"): Promise<Record<string, string>> {
  const out = await bedrockAdapter.sign?.({
    provider: { ...provider, region },
    aws: creds,
    host,
    path,
    headers: [["content-type", "application/json"]],
    body,
    now,
  });
  assert.ok(out !== undefined, "the bedrock adapter signs");
  const map: Record<string, string> = {};
  for (const [k, v] of out) {
    assert.equal(map[k], undefined, `header ${k} returned once`);
    map[k] = v;
  }
  return map;
}

/** Every header the request carries when it is signed: host, content-type and the x-amz-* ones. */
function wireHeaders(signed: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { host, "content-type": "application/json" };
  for (const [k, v] of Object.entries(signed)) if (k !== "authorization") out[k] = v;
  return out;
}

const converse = `/model/${encodeURIComponent(MODEL)}/converse`;
const body = Buffer.from(JSON.stringify({ messages: [{ role: "user", content: [{ text: "Hello, wörld" }] }] }));

describe("Bedrock SigV4 signing", () => {
  it("matches the documented algorithm (model id with ':' double-encoded in the canonical URI)", async () => {
    const signed = await sign(converse, body);
    assert.deepEqual(Object.keys(signed).sort(), ["authorization", "x-amz-content-sha256", "x-amz-date"]);
    assert.equal(signed["x-amz-date"], "20240610T123456Z");
    assert.equal(signed["x-amz-content-sha256"], sha256Hex(body));
    const expected = expectedSignature({ path: converse, headers: wireHeaders(signed), body });
    assert.match(expected.canonicalRequest, /^POST\n\/model\/anthropic\.claude-3-5-sonnet-20240620-v1%253A0\/converse\n\n/);
    assert.deepEqual(expected.signedHeaders, ["content-type", "host", "x-amz-content-sha256", "x-amz-date"]);
    assert.equal(signed["authorization"], expected.authorization);
  });

  it("signs the session token as x-amz-security-token", async () => {
    const token = "FQoGZXIvYXdzEXAMPLETOKEN//+=";
    const signed = await sign(converse, body, { ...aws, sessionToken: new Secret(token) });
    assert.equal(signed["x-amz-security-token"], token);
    const expected = expectedSignature({ path: converse, headers: wireHeaders(signed), body });
    assert.ok(expected.signedHeaders.includes("x-amz-security-token"));
    assert.equal(signed["authorization"], expected.authorization);
  });

  it("changes the signature when the body changes", async () => {
    const a = await sign(converse, body);
    const other = Buffer.from(body.toString("utf8").replace("Hello", "Hallo"));
    const b = await sign(converse, other);
    assert.notEqual(a["authorization"], b["authorization"]);
    assert.notEqual(a["x-amz-content-sha256"], b["x-amz-content-sha256"]);
    assert.equal(b["authorization"], expectedSignature({ path: converse, headers: wireHeaders(b), body: other }).authorization);
  });

  it("signs streams, ARNs ('/' and ':' in one segment), queries and other regions", async () => {
    const arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0";
    const path = `/model/${encodeURIComponent(arn)}/converse-stream?b=2&a=x%20y`;
    const signed = await sign(path, body, aws, "eu-west-3");
    const expected = expectedSignature({ path, headers: wireHeaders(signed), body, region: "eu-west-3" });
    assert.match(expected.canonicalRequest, /%253Ainference-profile%252Feu\./);
    assert.match(expected.canonicalRequest, /\na=x%20y&b=2\n/);
    assert.match(signed["authorization"] ?? "", /\/eu-west-3\/bedrock\/aws4_request,/);
    assert.equal(signed["authorization"], expected.authorization);
  });

  it("changes the signature with the secret (the check is not vacuous)", async () => {
    const signed = await sign(converse, body);
    assert.notEqual(signed["authorization"], expectedSignature({ path: converse, headers: wireHeaders(signed), body, secret: `${SECRET}x` }).authorization);
  });
});

describe("Bedrock rewrite()", () => {
  const input = (over: Partial<AttemptInput<BedrockConfig>>): AttemptInput<BedrockConfig> => ({
    provider,
    credential: undefined,
    target: { model: MODEL, deployment: undefined },
    operation: "chat.completions",
    originalPathname: "/v1/chat/completions",
    originalQuery: "",
    stream: false,
    clientAnthropicVersion: undefined,
    clientAnthropicBeta: undefined,
    ...over,
  });

  it("builds converse and converse-stream paths with ':' encoded as %3A", () => {
    assert.equal(bedrockAdapter.rewrite(input({})).path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    assert.equal(bedrockAdapter.rewrite(input({ stream: true })).path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
  });

  it("keeps an ARN in one path segment", () => {
    const arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
    assert.equal(bedrockAdapter.rewrite(input({ target: { model: arn, deployment: undefined } })).path, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse");
  });

  it("sends a Bedrock API key as a bearer token, and nothing without one", () => {
    assert.deepEqual(bedrockAdapter.rewrite(input({ credential: new Secret("bedrock-api-key") })).setHeaders, [["authorization", "Bearer bedrock-api-key"]]);
    assert.deepEqual(bedrockAdapter.rewrite(input({})).setHeaders, []);
  });

  it("passes other paths through", () => {
    assert.equal(bedrockAdapter.rewrite(input({ operation: undefined, originalPathname: "/foo", originalQuery: "?a=1" })).path, "/foo?a=1");
  });
});
