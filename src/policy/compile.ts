// Policy document -> the runtime form the hot path uses: lookup maps built once per load, with
// cross-references checked. A CompiledPolicy is immutable; reload swaps the whole object.
import { createHash } from "node:crypto";
import { z } from "zod";
import { OPERATION_NAMES, OPERATIONS, type Operation } from "../api/operations";
import { KeyDigestIndex } from "../auth/key-digest-index";
import { adapterFor } from "../providers/registry";
import { serves } from "../translate/registry";
import type { AwsCredentials, ProviderAdapter } from "../providers/types";
import { compileLimits, type CompiledLimits } from "../quota/limit-rules";
import { compileStrategy, type RankFn } from "../routing/strategies";
import type { TargetView } from "../routing/strategy-types";
import type { CacheScope } from "./cache-schema";
import { parseDuration } from "./duration";
import { jsonPath, PolicyError, showValue, type PolicyIssue } from "./policy-error";
import { policySchema, type ConsumerConfig, type Credential, type PolicyDocument, type ProviderConfig, type ProviderType, type RouteConfig, type TargetConfig } from "./schema";
import { resolveCredential, Secret } from "./secret";
import type { StrategyConfig } from "./strategy-schema";
import { validateStrategy } from "./strategy-schema";

/** Where Envoy connects for a provider (from `endpoint`). */
export interface ProviderOrigin {
  tls: boolean;
  host: string;
  port: number;
  /** "host:port", the transport-socket match key in envoy.yaml. */
  key: string;
}

export interface CompiledProvider {
  id: string;
  config: ProviderConfig;
  adapter: ProviderAdapter;
  credential: Secret | undefined;
  /** Bedrock with awsCredentials: the keys each attempt is signed with (SigV4). */
  aws: AwsCredentials | undefined;
  origin: ProviderOrigin;
  connectTimeoutMs: number;
}

export interface CompiledTarget {
  id: string;
  config: TargetConfig;
  provider: CompiledProvider;
  /** The target as routing strategies see it. */
  view: TargetView;
}

/**
 * An Envoy cluster rendered for a chain order: its endpoints are these targets at priorities
 * 0..n-1, so Envoy's previous_priorities retry walks the chain in this order.
 */
export interface CompiledCluster {
  name: string;
  order: readonly CompiledTarget[];
}

export interface CompiledRetry {
  retries: number;
  statusCodes: readonly number[];
  conditions: readonly string[];
  perTryTimeoutMs: number | undefined;
  perTryIdleTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  honorRetryAfter: boolean;
  retryAfterMaxMs: number;
}

export interface CooldownSettings {
  failures: number;
  windowMs: number;
  durationMs: number;
  maxRetryAfterMs: number;
}

/** Public endpoints of the providers that have one. */
const DEFAULT_ENDPOINTS: Partial<Record<ProviderType, string>> = {
  openai: "https://api.openai.com",
  anthropic: "https://api.anthropic.com",
  gemini: "https://generativelanguage.googleapis.com",
};

/** The default endpoint of a provider: its public API (Bedrock's depends on the region). */
function defaultEndpoint(config: ProviderConfig): string | undefined {
  if (config.type === "bedrock") return `https://bedrock-runtime.${config.region}.amazonaws.com`;
  return DEFAULT_ENDPOINTS[config.type];
}

export interface CompiledRoute {
  index: number;
  name: string;
  config: RouteConfig;
  operations: ReadonlySet<Operation> | undefined;
  consumers: ReadonlySet<string> | undefined;
  teams: ReadonlySet<string> | undefined;
  headers: ReadonlyArray<readonly [string, ReadonlySet<string>]>;
  labels: ReadonlyArray<readonly [string, string]>;
  /** The fallback chain, in the order written. */
  chain: readonly CompiledTarget[];
  strategy: StrategyConfig;
  /** The strategy, compiled once per policy load. */
  rank: RankFn;
  retry: CompiledRetry;
  /** The cluster whose order starts with a given target (that target, then the chain's others). */
  clusterStartingWith: ReadonlyMap<string, CompiledCluster>;
  responseHeaders: boolean;
  /** Output tokens quotas reserve when a request names no max_tokens. */
  reserveOutputTokens: number;
  /** Every provider of the chain accepts stream_options.include_usage. */
  streamUsage: boolean;
  /** The response cache of this route; undefined: nothing cached. */
  cache: CompiledRouteCache | undefined;
}

export interface CompiledRouteCache {
  ttlMs: number;
  scope: CacheScope;
  maxEntryBytes: number;
  /** How long identical concurrent misses wait for the first one's answer; 0: they do not wait. */
  coalesceWaitMs: number;
}

export interface CompiledConsumer {
  id: string;
  team: string | undefined;
  labels: Readonly<Record<string, string>>;
  allowRoutes: ReadonlySet<string> | undefined;
  allowModels: ReadonlySet<string> | undefined;
}

export interface CompiledPolicy {
  /** SHA-256 of the file bytes: identifies the loaded version in logs and metrics. */
  hash: string;
  file: string;
  document: PolicyDocument;
  clusterHeader: string;
  routeHeader: string;
  requireApiKey: boolean;
  cooldown: CooldownSettings;
  targets: ReadonlyMap<string, CompiledTarget>;
  routes: readonly CompiledRoute[];
  /** Candidate routes for a model name, in file order (model-specific and any-model routes). */
  routesForModel(model: string): readonly CompiledRoute[];
  /** The consumer whose gateway key has this SHA-256 digest. */
  consumerForKeyDigest(digest: Buffer): CompiledConsumer | undefined;
  passthrough: ReadonlyArray<{ prefix: string; target: CompiledTarget; cluster: CompiledCluster }>;
  /** Every cluster the policy routes to, by name (what render-envoy writes). */
  clusters: ReadonlyMap<string, CompiledCluster>;
  limits: CompiledLimits;
  /** Model names the policy itself writes (route matches, target models): the only model label values. */
  knownModels: ReadonlySet<string>;
  /** Count cost and tokens per consumer in the metrics. */
  perConsumerMetrics: boolean;
  /** Load shedding (gateway.overload); undefined: never. */
  overload: OverloadSettings | undefined;
}

export interface OverloadSettings {
  /** Requests in flight per replica (all its processes). */
  maxInFlight: number | undefined;
  maxEventLoopDelayMs: number | undefined;
  /** Whole seconds, at least 1. */
  retryAfterS: number;
}

export interface CompileOptions {
  file: string;
  /** Read credentials now (serve). `validate` and `explain` run without provider keys. */
  resolveSecrets: boolean;
  /** With resolveSecrets false: stand-ins naming where each credential would come from (explain). */
  secretPlaceholders?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Parses JSON text into a compiled policy or throws a PolicyError listing every problem. */
export function compilePolicyText(text: string, options: CompileOptions): CompiledPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PolicyError(options.file, [
      { path: "", message: `not valid JSON: ${(err as Error).message}`, fix: "check commas, quotes and brackets (comments are not JSON; use \"$comment\" keys)" },
    ]);
  }
  const parsed = policySchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new PolicyError(options.file, parsed.error.issues.map(zodIssue));
  const hash = createHash("sha256").update(text).digest("hex");
  return compileDocument(parsed.data, hash, options);
}

function zodIssue(issue: z.core.$ZodIssue): PolicyIssue {
  const path = jsonPath(issue.path);
  const value = "input" in issue && issue.input !== undefined ? showValue(issue.input) : undefined;
  let fix: string | undefined;
  switch (issue.code) {
    case "unrecognized_keys":
      fix = `remove or rename ${issue.keys.map((k) => `"${k}"`).join(", ")} (see \`llm-router schema\` for the allowed keys)`;
      break;
    case "invalid_union":
      fix = "see `llm-router schema` for the accepted shapes";
      break;
    case "invalid_value":
      fix = `use one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
      break;
    case "invalid_type":
      fix = `give a ${issue.expected}`;
      break;
    default:
      break;
  }
  const out: PolicyIssue = { path, message: issue.message };
  if (value !== undefined) out.value = value;
  if (fix !== undefined) out.fix = fix;
  return out;
}

function compileDocument(doc: PolicyDocument, hash: string, options: CompileOptions): CompiledPolicy {
  const issues: PolicyIssue[] = [];
  const env = options.env ?? process.env;

  const providers = new Map<string, CompiledProvider>();
  for (const [id, config] of Object.entries(doc.providers)) {
    // Reads one credential now (serve), names where it would come from (explain), or skips it (validate).
    const secret = (ref: Credential | undefined, path: Array<string | number>): Secret | undefined => {
      if (ref === undefined) return undefined;
      if (!options.resolveSecrets) return options.secretPlaceholders ? new Secret(`<credential from ${"env" in ref ? `env ${ref.env}` : `file ${ref.file}`}>`) : undefined;
      try {
        return resolveCredential(ref, env);
      } catch (err) {
        issues.push({ path: jsonPath(path), message: (err as Error).message });
        return undefined;
      }
    };
    const credential = secret(config.credential, ["providers", id, "credential"]);
    let aws: AwsCredentials | undefined;
    if (config.type === "bedrock" && config.awsCredentials !== undefined) {
      if (config.credential !== undefined) {
        issues.push({ path: jsonPath(["providers", id]), message: "set awsCredentials (SigV4) or credential (a Bedrock API key), not both" });
      }
      const c = config.awsCredentials;
      const at = (k: string): Array<string | number> => ["providers", id, "awsCredentials", k];
      const accessKeyId = secret(c.accessKeyId, at("accessKeyId"));
      const secretAccessKey = secret(c.secretAccessKey, at("secretAccessKey"));
      if (accessKeyId !== undefined && secretAccessKey !== undefined) aws = { accessKeyId, secretAccessKey, sessionToken: secret(c.sessionToken, at("sessionToken")) };
    }
    const endpoint = config.endpoint ?? defaultEndpoint(config);
    if (endpoint === undefined) {
      issues.push({ path: jsonPath(["providers", id, "endpoint"]), message: `a ${config.type} provider needs an endpoint`, fix: 'add "endpoint": "https://host" (scheme, host and optional port)' });
      continue;
    }
    providers.set(id, { id, config, adapter: adapterFor(config.type), credential, aws, origin: originOf(endpoint), connectTimeoutMs: config.connectTimeout === undefined ? 5000 : ms(config.connectTimeout) });
  }

  const targets = new Map<string, CompiledTarget>();
  for (const [id, config] of Object.entries(doc.targets)) {
    const provider = providers.get(config.provider);
    if (!provider) {
      issues.push({
        path: jsonPath(["targets", id, "provider"]),
        message: "unknown provider",
        value: showValue(config.provider),
        fix: `use one of the keys of "providers": ${[...providers.keys()].join(", ") || "(none defined)"}`,
      });
      continue;
    }
    if (config.deployment !== undefined && provider.config.type !== "azure-openai") {
      issues.push({ path: jsonPath(["targets", id, "deployment"]), message: "only Azure OpenAI targets have a deployment", fix: "remove it" });
    }
    targets.set(id, { id, config, provider, view: targetView(id, config, provider) });
  }

  const clusters = new Map<string, CompiledCluster>();
  const routes: CompiledRoute[] = [];
  const routeNames = new Set<string>();
  doc.routes.forEach((config, index) => {
    const at = (...rest: PropertyKey[]) => jsonPath(["routes", index, ...rest]);
    if (routeNames.has(config.name)) {
      issues.push({ path: at("name"), message: "duplicate route name", value: showValue(config.name), fix: "give every route a unique name" });
    }
    routeNames.add(config.name);
    const chain: CompiledTarget[] = [];
    config.targets.forEach((id, k) => {
      const target = targets.get(id);
      if (target === undefined) {
        if (!(id in doc.targets)) {
          issues.push({ path: at("targets", k), message: "unknown target", value: showValue(id), fix: `use one of the keys of "targets": ${Object.keys(doc.targets).join(", ") || "(none defined)"}` });
        }
      } else if (chain.includes(target)) {
        issues.push({ path: at("targets", k), message: "target listed twice in the chain", value: showValue(id), fix: "list each target once (retries covers trying one again)" });
      } else {
        chain.push(target);
      }
    });
    for (const issue of validateStrategy(config.strategy, config.targets)) {
      issues.push({ path: at("strategy", ...issue.path), message: issue.message, ...(issue.fix === undefined ? {} : { fix: issue.fix }) });
    }
    if (chain.length !== config.targets.length) return;
    const operations = config.match.paths ? new Set(config.match.paths.map(operationForPath)) : undefined;
    for (const target of chain) {
      const adapter = target.provider.adapter;
      for (const op of operations ?? []) {
        // Served natively or through a translation (an Anthropic target for OpenAI chat clients...).
        if (!serves(adapter, op)) {
          const served = OPERATION_NAMES.filter((o) => serves(adapter, o));
          issues.push({
            path: at("match", "paths"),
            message: `target "${target.id}" (${target.provider.config.type}) cannot serve ${OPERATIONS[op].path}`,
            fix: `restrict the route to ${served.map((o) => OPERATIONS[o].path).join(", ")}, or drop the target from the chain`,
          });
        }
      }
    }
    const clusterStartingWith = new Map<string, CompiledCluster>();
    for (const first of chain) clusterStartingWith.set(first.id, clusterFor([first, ...chain.filter((t) => t !== first)], clusters));
    routes.push({
      index,
      name: config.name,
      config,
      operations,
      consumers: config.match.consumers ? new Set(config.match.consumers) : undefined,
      teams: config.match.teams ? new Set(config.match.teams) : undefined,
      headers: Object.entries(config.match.headers ?? {}).map(([k, v]) => [k, new Set(Array.isArray(v) ? v : [v])] as const),
      labels: Object.entries(config.match.labels ?? {}),
      chain,
      strategy: config.strategy,
      rank: compileStrategy(config.strategy),
      retry: compileRetry(config, chain.length),
      clusterStartingWith,
      responseHeaders: config.responseHeaders,
      reserveOutputTokens: config.reserveOutputTokens ?? doc.limits.reserveOutputTokens,
      streamUsage: chain.every((t) => t.provider.config.streamUsage !== false),
      cache: config.cache && {
        ttlMs: ms(config.cache.ttl),
        scope: config.cache.scope,
        maxEntryBytes: config.cache.maxEntryBytes,
        coalesceWaitMs: config.cache.coalesce ? ms(config.cache.coalesceWait) : 0,
      },
    });
  });

  const keyIndex = new KeyDigestIndex();
  const consumerIds = new Set<string>();
  doc.consumers.forEach((c: ConsumerConfig, index) => {
    if (consumerIds.has(c.id)) issues.push({ path: jsonPath(["consumers", index, "id"]), message: "duplicate consumer id", value: showValue(c.id), fix: "give every consumer a unique id" });
    consumerIds.add(c.id);
    for (const r of c.allow?.routes ?? []) {
      if (!routeNames.has(r)) issues.push({ path: jsonPath(["consumers", index, "allow", "routes"]), message: "unknown route", value: showValue(r), fix: `use route names: ${[...routeNames].join(", ")}` });
    }
    const compiled: CompiledConsumer = {
      id: c.id,
      team: c.team,
      labels: c.labels,
      allowRoutes: c.allow?.routes ? new Set(c.allow.routes) : undefined,
      allowModels: c.allow?.models ? new Set(c.allow.models) : undefined,
    };
    c.keySha256.forEach((h, k) => {
      if (!keyIndex.add(h, compiled)) {
        issues.push({ path: jsonPath(["consumers", index, "keySha256", k]), message: "this key hash already belongs to a consumer", fix: "each API key identifies exactly one consumer" });
      }
    });
  });

  const passthrough: Array<{ prefix: string; target: CompiledTarget; cluster: CompiledCluster }> = [];
  doc.passthrough.forEach((p, index) => {
    const target = targets.get(p.target);
    if (!target) {
      issues.push({ path: jsonPath(["passthrough", index, "target"]), message: "unknown target", value: showValue(p.target), fix: `use one of: ${Object.keys(doc.targets).join(", ")}` });
      return;
    }
    if (Object.values(OPERATIONS).some((o) => o.path.startsWith(p.pathPrefix))) {
      issues.push({ path: jsonPath(["passthrough", index, "pathPrefix"]), message: "covers an LLM path that routes must serve", value: showValue(p.pathPrefix), fix: "use a narrower prefix such as /v1/models" });
    }
    passthrough.push({ prefix: p.pathPrefix, target, cluster: clusterFor([target], clusters) });
  });

  const limits = compileLimits(
    doc.limits,
    {
      consumers: consumerIds,
      teams: new Set(doc.consumers.flatMap((c) => (c.team === undefined ? [] : [c.team]))),
      routes: routeNames,
      targets: new Set(targets.keys()),
    },
    issues,
  );

  if (issues.length > 0) throw new PolicyError(options.file, issues);

  const anyModel = routes.filter((r) => !r.config.match.models);
  const byModel = new Map<string, CompiledRoute[]>();
  for (const r of routes) {
    for (const m of r.config.match.models ?? []) {
      if (!byModel.has(m)) byModel.set(m, routes.filter((x) => !x.config.match.models || x.config.match.models.includes(m)));
    }
  }

  return {
    hash,
    file: options.file,
    document: doc,
    clusterHeader: doc.gateway.clusterHeader,
    routeHeader: doc.gateway.routeHeader,
    requireApiKey: doc.gateway.requireApiKey,
    cooldown: {
      failures: doc.gateway.cooldown.failures,
      windowMs: ms(doc.gateway.cooldown.window),
      durationMs: ms(doc.gateway.cooldown.duration),
      maxRetryAfterMs: ms(doc.gateway.cooldown.maxRetryAfter),
    },
    targets,
    routes,
    routesForModel: (model) => byModel.get(model) ?? anyModel,
    consumerForKeyDigest: (digest) => keyIndex.find(digest),
    passthrough,
    clusters,
    limits,
    knownModels: new Set([...byModel.keys(), ...[...targets.values()].map((t) => t.config.model)]),
    perConsumerMetrics: doc.metrics.perConsumer,
    overload: compileOverload(doc.gateway.overload),
  };
}

function compileOverload(o: PolicyDocument["gateway"]["overload"]): OverloadSettings | undefined {
  if (o === undefined || (o.maxInFlight === undefined && o.maxEventLoopDelay === undefined)) return undefined;
  return {
    maxInFlight: o.maxInFlight,
    maxEventLoopDelayMs: o.maxEventLoopDelay === undefined ? undefined : ms(o.maxEventLoopDelay),
    retryAfterS: Math.max(1, Math.ceil(ms(o.retryAfter) / 1000)),
  };
}

/** Durations were validated by the schema. */
function ms(d: string): number {
  const v = parseDuration(d);
  if (v === undefined) throw new Error(`unreachable: schema admitted duration ${d}`);
  return v;
}

function originOf(endpoint: string): ProviderOrigin {
  const u = new URL(endpoint);
  const tls = u.protocol === "https:";
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = u.port === "" ? (tls ? 443 : 80) : Number(u.port);
  return { tls, host, port, key: `${host}:${port}` };
}

function targetView(id: string, config: TargetConfig, provider: CompiledProvider): TargetView {
  return {
    id,
    provider: provider.id,
    providerType: provider.config.type,
    model: config.model,
    price: config.price,
    contextWindow: config.contextWindow,
    maxOutputTokens: config.maxOutputTokens,
    capabilities: new Set(config.capabilities),
  };
}

/**
 * The cluster for a chain order, shared by every route that needs the same order. Names are
 * stable while the order is: `tgt_<id>` for one target, `chain_<first>_<hash of the order>`.
 */
function clusterFor(order: readonly CompiledTarget[], clusters: Map<string, CompiledCluster>): CompiledCluster {
  const first = order[0];
  if (first === undefined) throw new Error("unreachable: empty chain");
  const name = order.length === 1 ? `tgt_${first.id}` : `chain_${first.id}_${createHash("sha256").update(order.map((t) => t.id).join("\n")).digest("hex").slice(0, 8)}`;
  let cluster = clusters.get(name);
  if (cluster === undefined) {
    cluster = { name, order };
    clusters.set(name, cluster);
  }
  return cluster;
}

function compileRetry(route: RouteConfig, chainLength: number): CompiledRetry {
  const r = route.retry;
  return {
    retries: r?.retries ?? Math.max(1, chainLength - 1),
    statusCodes: r?.statusCodes ?? [429, 500, 502, 503, 504, 529],
    conditions: r?.conditions ?? ["connect-failure", "refused-stream", "reset"],
    perTryTimeoutMs: r?.perTryTimeout === undefined ? undefined : ms(r.perTryTimeout),
    perTryIdleTimeoutMs: ms(r?.perTryIdleTimeout ?? "300s"),
    backoffBaseMs: ms(r?.backoff.base ?? "250ms"),
    backoffMaxMs: ms(r?.backoff.max ?? "2s"),
    honorRetryAfter: r?.retryAfter?.honor ?? chainLength === 1,
    retryAfterMaxMs: ms(r?.retryAfter?.max ?? "10s"),
  };
}

function operationForPath(path: string): Operation {
  for (const [op, spec] of Object.entries(OPERATIONS)) if (spec.path === path) return op as Operation;
  throw new Error(`unreachable: schema admitted unknown path ${path}`);
}
