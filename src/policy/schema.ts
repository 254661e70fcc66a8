// The routing policy file, as a zod schema. Types are inferred from it (never written twice), and
// `llm-router schema` prints it as JSON Schema for editors. Objects are strict so that a typo is an
// error, not a silently ignored key; `$comment` is allowed everywhere for annotations.
import { z } from "zod";
import { OPERATION_PATHS } from "../api/operations";

const comment = { $comment: z.string().optional() };

const identifier = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "use letters, digits, '.', '_', ':' or '-' (max 128), starting with a letter or digit");

const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, "use a lowercase HTTP header name");

/** Where a secret comes from. The value itself never appears in the policy file. */
export const credentialSchema = z.union([
  z.strictObject({ ...comment, env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name") }),
  z.strictObject({ ...comment, file: z.string().min(1) }),
]);

const providerCommon = {
  ...comment,
  credential: credentialSchema.optional(),
};

export const providerSchema = z.discriminatedUnion("type", [
  z.strictObject({
    ...providerCommon,
    type: z.literal("openai"),
    basePath: z.string().startsWith("/").default("/v1"),
    organization: z.string().optional(),
    project: z.string().optional(),
  }),
  z.strictObject({
    ...providerCommon,
    type: z.literal("azure-openai"),
    apiVersion: z.string().min(1),
  }),
  z.strictObject({
    ...providerCommon,
    type: z.literal("anthropic"),
    anthropicVersion: z.string().default("2023-06-01"),
  }),
  z.strictObject({
    ...providerCommon,
    type: z.literal("openai-compatible"),
    basePath: z.string().startsWith("/").default("/v1"),
  }),
]);

export const CAPABILITIES = ["tools", "vision", "json", "streaming", "embeddings", "reasoning"] as const;

export const targetSchema = z.strictObject({
  ...comment,
  provider: identifier,
  /** The model name the provider expects. */
  model: z.string().min(1),
  /** Azure OpenAI deployment name (defaults to `model`). */
  deployment: z.string().min(1).optional(),
  /** The Envoy cluster that reaches this provider deployment. */
  cluster: identifier,
  price: z
    .strictObject({
      ...comment,
      inputPerMTok: z.number().nonnegative(),
      outputPerMTok: z.number().nonnegative(),
      cachedInputPerMTok: z.number().nonnegative().optional(),
    })
    .optional(),
  contextWindow: z.number().int().positive().optional(),
  maxOutputTokens: z.number().int().positive().optional(),
  capabilities: z.array(z.enum(CAPABILITIES)).default([]),
});

const headerMatchValue = z.union([z.string(), z.array(z.string()).min(1)]);

export const routeSchema = z.strictObject({
  ...comment,
  name: identifier,
  match: z
    .strictObject({
      ...comment,
      /** Model names (aliases or real names) clients send in `model`. Absent: any model. */
      models: z.array(z.string().min(1)).min(1).optional(),
      /** Request paths. Absent: every LLM path the gateway understands. */
      paths: z.array(z.enum(OPERATION_PATHS as [string, ...string[]])).min(1).optional(),
      /** Request headers that must all match (exact value, or any of a list). */
      headers: z.record(headerName, headerMatchValue).optional(),
      consumers: z.array(identifier).min(1).optional(),
      teams: z.array(identifier).min(1).optional(),
      /** Consumer labels that must all match. */
      labels: z.record(z.string(), z.string()).optional(),
    })
    .default({}),
  /** The target (see `targets`) that serves this route. */
  target: identifier,
});

export const consumerSchema = z.strictObject({
  ...comment,
  id: identifier,
  team: identifier.optional(),
  /** SHA-256 (hex) of each gateway API key of this consumer: `printf %s "$KEY" | sha256sum`. */
  keySha256: z.array(z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex characters (a SHA-256 digest)")).min(1),
  allow: z
    .strictObject({
      ...comment,
      routes: z.array(identifier).optional(),
      models: z.array(z.string().min(1)).optional(),
    })
    .optional(),
  labels: z.record(z.string(), z.string()).default({}),
});

export const passthroughSchema = z.strictObject({
  ...comment,
  /** Requests whose path starts with this prefix are forwarded as they are (no body needed). */
  pathPrefix: z.string().startsWith("/"),
  /** Target whose cluster and credentials serve them. */
  target: identifier,
});

export const policySchema = z.strictObject({
  ...comment,
  $schema: z.string().optional(),
  version: z.literal(1),
  gateway: z
    .strictObject({
      ...comment,
      /** The request header Envoy's route uses as `cluster_header`. */
      clusterHeader: headerName.default("x-llm-router-cluster"),
      /** Require a gateway API key (default). When false, unauthenticated requests run as consumer "anonymous". */
      requireApiKey: z.boolean().default(true),
    })
    .default({ clusterHeader: "x-llm-router-cluster", requireApiKey: true }),
  providers: z.record(identifier, providerSchema),
  targets: z.record(identifier, targetSchema),
  routes: z.array(routeSchema),
  consumers: z.array(consumerSchema).default([]),
  /** Non-LLM paths forwarded untouched (e.g. GET /v1/models); all other paths get 404. */
  passthrough: z.array(passthroughSchema).default([]),
});

export type PolicyDocument = z.infer<typeof policySchema>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type ProviderType = ProviderConfig["type"];
export type TargetConfig = z.infer<typeof targetSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type ConsumerConfig = z.infer<typeof consumerSchema>;
export type Credential = z.infer<typeof credentialSchema>;

/** JSON Schema (draft 2020-12) for editors: `llm-router schema > policy.schema.json`. */
export function policyJsonSchema(): unknown {
  return z.toJSONSchema(policySchema, { io: "input", unrepresentable: "any" });
}
