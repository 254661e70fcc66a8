// AWS Bedrock Runtime: the Converse API (POST /model/{modelId}/converse and /converse-stream, a
// binary AWS event stream) for chat, and InvokeModel (POST /model/{modelId}/invoke, the model's
// native body: Titan or Cohere, see translate/openai-embeddings-to-bedrock.ts) for embeddings.
// Authentication is either a Bedrock API key (a bearer token) or AWS keys: each attempt is then
// signed with SigV4 over its final, translated body (sign(), from the body reply).
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
// https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { ProviderConfig } from "../policy/schema";
import type { AwsCredentials, ProviderAdapter } from "./types";

type BedrockConfig = Extract<ProviderConfig, { type: "bedrock" }>;

/** SigV4 service name of the Bedrock Runtime API. */
const SERVICE = "bedrock";

const signers = new WeakMap<AwsCredentials, { region: string; signer: SignatureV4 }>();

export const bedrockAdapter: ProviderAdapter<BedrockConfig> = {
  type: "bedrock",
  operations: new Set(),
  rewrite({ credential, target, operation, stream, originalPathname, originalQuery }) {
    const setHeaders: Array<[string, string]> = [];
    if (credential) setHeaders.push(["authorization", `Bearer ${credential.reveal()}`]);
    // Model ids carry ':' (anthropic.claude-3-5-sonnet-20240620-v1:0) and ARNs carry '/': one
    // path segment, percent-encoded once on the wire (SigV4 encodes it again for its canonical form).
    const model = encodeURIComponent(target.model);
    const path =
      operation === "chat.completions"
        ? `/model/${model}/${stream ? "converse-stream" : "converse"}`
        : operation === "embeddings"
          ? `/model/${model}/invoke`
          : `${originalPathname}${originalQuery}`;
    return { path, setHeaders };
  },
  async sign({ provider, aws, host, path, headers, body, now }) {
    // One signer per compiled credential set (a policy reload makes new ones): it caches the day's
    // signing key, which would otherwise be derived again (four HMACs) for every attempt.
    const cached = signers.get(aws);
    let signer = cached?.region === provider.region ? cached.signer : undefined;
    if (signer === undefined) {
      signer = new SignatureV4({
        service: SERVICE,
        region: provider.region,
        sha256: Sha256,
        credentials: {
          accessKeyId: aws.accessKeyId.reveal(),
          secretAccessKey: aws.secretAccessKey.reveal(),
          ...(aws.sessionToken ? { sessionToken: aws.sessionToken.reveal() } : {}),
        },
      });
      signers.set(aws, { region: provider.region, signer });
    }
    const q = path.indexOf("?");
    const query: Record<string, string> = {};
    if (q !== -1) for (const [k, v] of new URLSearchParams(path.slice(q + 1))) query[k] = v;
    const signed = await signer.sign(
      {
        method: "POST",
        protocol: "https:",
        hostname: host,
        path: q === -1 ? path : path.slice(0, q),
        query,
        headers: { host, ...Object.fromEntries(headers) },
        body,
      },
      { signingDate: now },
    );
    const out: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(signed.headers)) {
      const n = name.toLowerCase();
      if (n === "authorization" || n.startsWith("x-amz-")) out.push([n, value]);
    }
    return out;
  },
};
