// The routing policy file, as a zod schema. Types are inferred from it (never written twice), and
// `llm-router schema` prints it as JSON Schema for editors. Objects are strict so that a typo is an
// error, not a silently ignored key; `$comment` is allowed everywhere for annotations.
import { z } from "zod";
import { OPERATION_PATHS } from "../api/operations";
import { comment, duration, headerName, identifier } from "./schema-parts";
import { routeCacheSchema } from "./cache-schema";
import { limitsSchema } from "./limits-schema";
import { strategySchema } from "./strategy-schema";

/** Where a secret comes from. The value itself never appears in the policy file. */
export const credentialSchema = z.union([
  z.strictObject({ ...comment, env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name") }),
  z.strictObject({ ...comment, file: z.string().min(1) }),
]);

const providerCommon = {
  ...comment,
  credential: credentialSchema.optional(),
  /**
   * Where Envoy reaches the provider: scheme, host and optional port, e.g. "https://api.openai.com"
   * or "http://vllm.internal:8000". `render-envoy` turns it into endpoints, SNI and SAN checks.
   * OpenAI and Anthropic default to their public APIs.
   */
  endpoint: z
    .url({ protocol: /^https?$/, hostname: z.regexes.hostname })
    .refine((u) => {
      // zod runs refinements after a failed check too: a string that is no URL at all (a missing
      // scheme, "api.openai.com") is reported by .url() already, and new URL() would throw a
      // TypeError instead of a PolicyError (found by test/fuzz-policy.test.ts).
      if (!URL.canParse(u)) return true;
      const p = new URL(u);
      return (p.pathname === "/" || p.pathname === "") && p.search === "" && p.username === "";
    }, "scheme://host[:port] only: the API path comes from basePath / the provider type")
    .optional(),
  /** Envoy's connect_timeout for this provider's endpoints (default 5s). */
  connectTimeout: duration.optional(),
  /**
   * The provider accepts OpenAI's `stream_options.include_usage` (default true). The gateway adds
   * it to streaming requests to learn their usage; set false for an API that rejects it (usage of
   * its streams is then estimated).
   */
  streamUsage: z.boolean().optional(),
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
  z.strictObject({
    ...providerCommon,
    /** Google Gemini API (generativelanguage.googleapis.com); `credential` is the API key. */
    type: z.literal("gemini"),
    apiVersion: z.enum(["v1", "v1beta", "v1alpha"]).default("v1beta"),
  }),
  z.strictObject({
      ...providerCommon,
      /**
       * AWS Bedrock Runtime (Converse / ConverseStream). Either `awsCredentials` (requests are signed
       * with SigV4 over the final body) or `credential` (a Bedrock API key, sent as a bearer token).
       */
      type: z.literal("bedrock"),
      region: z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-\d+$/, "an AWS region such as us-east-1"),
      awsCredentials: z
        .strictObject({
          ...comment,
          accessKeyId: credentialSchema,
          secretAccessKey: credentialSchema,
          sessionToken: credentialSchema.optional(),
        })
        .optional(),
    }),
]);

export const CAPABILITIES = ["tools", "vision", "json", "streaming", "embeddings", "reasoning"] as const;
export type Capability = (typeof CAPABILITIES)[number];

export const targetSchema = z.strictObject({
  ...comment,
  provider: identifier,
  /** The model name the provider expects. */
  model: z.string().min(1),
  /** Azure OpenAI deployment name (defaults to `model`). */
  deployment: z.string().min(1).optional(),
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
  /**
   * The targets (see `targets`) that serve this route, as a fallback chain: when an attempt fails
   * with a retriable error, Envoy retries on the next target, whatever its provider.
   */
  targets: z.array(identifier).min(1).max(16),
  /** Which target of the chain goes first for each request (default: the order written). */
  strategy: strategySchema.default({ type: "ordered" }),
  retry: z
    .strictObject({
      ...comment,
      /** Retries after the first attempt (default: one per remaining target of the chain, at least 1). */
      retries: z.number().int().min(0).max(10).optional(),
      /** Statuses that move on to the next attempt. Anthropic answers 529 when overloaded. */
      statusCodes: z.array(z.number().int().min(400).max(599)).default([429, 500, 502, 503, 504, 529]),
      /** Envoy retry_on conditions besides the status codes; "reset" also covers per-try timeouts. */
      conditions: z.array(z.enum(["connect-failure", "reset", "refused-stream", "5xx", "gateway-error", "retriable-4xx"])).default(["connect-failure", "refused-stream", "reset"]),
      /** Whole-attempt limit (until the response is complete: cuts long streams; unset by default). */
      perTryTimeout: duration.optional(),
      /** Limit on silence per attempt: time to first response byte, then between chunks. */
      perTryIdleTimeout: duration.default("300s"),
      backoff: z.strictObject({ ...comment, base: duration.default("250ms"), max: duration.default("2s") }).default({ base: "250ms", max: "2s" }),
      /**
       * Wait what a 429's retry-after asks before retrying, up to `max` (longer waits fall back to
       * `backoff`). Default: on for single-target routes, off for chains (the next target is tried
       * at once, and the target that asked to wait cools down instead).
       */
      retryAfter: z.strictObject({ ...comment, honor: z.boolean().optional(), max: duration.default("10s") }).optional(),
    })
    .optional(),
  /** Tell clients which target answered (x-llm-router-target) and after how many attempts. */
  responseHeaders: z.boolean().default(true),
  /** Output tokens quotas reserve for a request without max_tokens (default: limits.reserveOutputTokens). */
  reserveOutputTokens: z.number().int().positive().optional(),
  /** Exact-match cache of non-streaming answers (README "Response cache"); absent: nothing cached. */
  cache: routeCacheSchema.optional(),
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
      /** The request header Envoy's routes match to pick the route's retry policy. */
      routeHeader: headerName.default("x-llm-router-route"),
      /** CA bundle Envoy verifies provider certificates with (render-envoy). */
      caFile: z.string().min(1).default("/etc/ssl/certs/ca-certificates.crt"),
      /** When a target is skipped by the router phase after failing (per replica, see README). */
      cooldown: z
        .strictObject({
          ...comment,
          /** Failed attempts (5xx, 429, 529, timeouts, resets) within `window` that start a cooldown. */
          failures: z.number().int().min(1).default(3),
          window: duration.default("30s"),
          /** How long the target is skipped. */
          duration: duration.default("30s"),
          /** A 429 with retry-after cools the target down for that long, capped here. */
          maxRetryAfter: duration.default("5m"),
        })
        .default({ failures: 3, window: "30s", duration: "30s", maxRetryAfter: "5m" }),
      /**
       * Load shedding (README "Overload"): while this replica is past a limit, new requests are
       * answered 503 `overloaded` with retry-after, before their body is read. Off unless set.
       */
      overload: z
        .strictObject({
          ...comment,
          /**
           * Requests this replica holds at once, from their request headers to the end of their
           * answer (streams included); split evenly among `serve --workers` processes.
           */
          maxInFlight: z.number().int().min(1).optional(),
          /**
           * Average event-loop delay over the last second past which new requests are refused: the
           * process is short of CPU, and every request it takes on waits behind the others.
           */
          maxEventLoopDelay: duration.optional(),
          /** The retry-after of the refusal, rounded up to whole seconds (default 1s). */
          retryAfter: duration.default("1s"),
        })
        .optional(),
    })
    .default({
      clusterHeader: "x-llm-router-cluster",
      requireApiKey: true,
      routeHeader: "x-llm-router-route",
      caFile: "/etc/ssl/certs/ca-certificates.crt",
      cooldown: { failures: 3, window: "30s", duration: "30s", maxRetryAfter: "5m" },
    }),
  providers: z.record(identifier, providerSchema),
  targets: z.record(identifier, targetSchema),
  routes: z.array(routeSchema),
  consumers: z.array(consumerSchema).default([]),
  /** Non-LLM paths forwarded untouched (e.g. GET /v1/models); all other paths get 404. */
  passthrough: z.array(passthroughSchema).default([]),
  /** Quotas and budgets (README "Quotas and budgets"). */
  limits: limitsSchema,
  /** What /metrics breaks down (README "Metrics"). */
  metrics: z
    .strictObject({
      ...comment,
      /**
       * Also count cost and tokens per consumer (llm_router_consumer_*). Off by default: one series
       * per consumer is a cardinality an operator should choose.
       */
      perConsumer: z.boolean().default(false),
    })
    .default({ perConsumer: false }),
});

export type PolicyDocument = z.infer<typeof policySchema>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type ProviderType = ProviderConfig["type"];
export type TargetConfig = z.infer<typeof targetSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type RetryConfig = NonNullable<RouteConfig["retry"]>;
export type ConsumerConfig = z.infer<typeof consumerSchema>;
export type Credential = z.infer<typeof credentialSchema>;

/** JSON Schema (draft 2020-12) for editors: `llm-router schema > policy.schema.json`. */
export function policyJsonSchema(): unknown {
  return z.toJSONSchema(policySchema, { io: "input", unrepresentable: "any" });
}
