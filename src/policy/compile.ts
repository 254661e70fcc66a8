// Policy document -> the runtime form the hot path uses: lookup maps built once per load, with
// cross-references checked. A CompiledPolicy is immutable; reload swaps the whole object.
import { createHash } from "node:crypto";
import { z } from "zod";
import { OPERATIONS, type Operation } from "../api/operations";
import { KeyDigestIndex } from "../auth/key-digest-index";
import { adapterFor } from "../providers/registry";
import type { ProviderAdapter } from "../providers/types";
import { jsonPath, PolicyError, showValue, type PolicyIssue } from "./policy-error";
import { policySchema, type ConsumerConfig, type PolicyDocument, type ProviderConfig, type RouteConfig, type TargetConfig } from "./schema";
import { resolveCredential, Secret } from "./secret";

export interface CompiledProvider {
  id: string;
  config: ProviderConfig;
  adapter: ProviderAdapter;
  credential: Secret | undefined;
}

export interface CompiledTarget {
  id: string;
  config: TargetConfig;
  provider: CompiledProvider;
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
  target: CompiledTarget;
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
  requireApiKey: boolean;
  targets: ReadonlyMap<string, CompiledTarget>;
  routes: readonly CompiledRoute[];
  /** Candidate routes for a model name, in file order (model-specific and any-model routes). */
  routesForModel(model: string): readonly CompiledRoute[];
  /** The consumer whose gateway key has this SHA-256 digest. */
  consumerForKeyDigest(digest: Buffer): CompiledConsumer | undefined;
  passthrough: ReadonlyArray<{ prefix: string; target: CompiledTarget }>;
  clusters: ReadonlySet<string>;
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
    let credential: Secret | undefined;
    if (config.credential && !options.resolveSecrets && options.secretPlaceholders) {
      const ref = config.credential;
      credential = new Secret(`<credential from ${"env" in ref ? `env ${ref.env}` : `file ${ref.file}`}>`);
    } else if (config.credential && options.resolveSecrets) {
      try {
        credential = resolveCredential(config.credential, env);
      } catch (err) {
        issues.push({ path: jsonPath(["providers", id, "credential"]), message: (err as Error).message });
      }
    }
    providers.set(id, { id, config, adapter: adapterFor(config.type), credential });
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
    targets.set(id, { id, config, provider });
  }

  const routes: CompiledRoute[] = [];
  const routeNames = new Set<string>();
  doc.routes.forEach((config, index) => {
    const at = (...rest: PropertyKey[]) => jsonPath(["routes", index, ...rest]);
    if (routeNames.has(config.name)) {
      issues.push({ path: at("name"), message: "duplicate route name", value: showValue(config.name), fix: "give every route a unique name" });
    }
    routeNames.add(config.name);
    const target = targets.get(config.target);
    if (!target) {
      if (!(config.target in doc.targets)) {
        issues.push({ path: at("target"), message: "unknown target", value: showValue(config.target), fix: `use one of the keys of "targets": ${Object.keys(doc.targets).join(", ") || "(none defined)"}` });
      }
      return;
    }
    const operations = config.match.paths ? new Set(config.match.paths.map(operationForPath)) : undefined;
    const served = target.provider.adapter.operations;
    for (const op of operations ?? []) {
      if (!served.has(op)) {
        issues.push({
          path: at("match", "paths"),
          message: `target "${target.id}" (${target.provider.config.type}) cannot serve ${OPERATIONS[op].path}`,
          fix: `restrict the route to ${[...served].map((o) => OPERATIONS[o].path).join(", ")}`,
        });
      }
    }
    routes.push({
      index,
      name: config.name,
      config,
      operations,
      consumers: config.match.consumers ? new Set(config.match.consumers) : undefined,
      teams: config.match.teams ? new Set(config.match.teams) : undefined,
      headers: Object.entries(config.match.headers ?? {}).map(([k, v]) => [k, new Set(Array.isArray(v) ? v : [v])] as const),
      labels: Object.entries(config.match.labels ?? {}),
      target,
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

  const passthrough: Array<{ prefix: string; target: CompiledTarget }> = [];
  doc.passthrough.forEach((p, index) => {
    const target = targets.get(p.target);
    if (!target) {
      issues.push({ path: jsonPath(["passthrough", index, "target"]), message: "unknown target", value: showValue(p.target), fix: `use one of: ${Object.keys(doc.targets).join(", ")}` });
      return;
    }
    if (Object.values(OPERATIONS).some((o) => o.path.startsWith(p.pathPrefix))) {
      issues.push({ path: jsonPath(["passthrough", index, "pathPrefix"]), message: "covers an LLM path that routes must serve", value: showValue(p.pathPrefix), fix: "use a narrower prefix such as /v1/models" });
    }
    passthrough.push({ prefix: p.pathPrefix, target });
  });

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
    requireApiKey: doc.gateway.requireApiKey,
    targets,
    routes,
    routesForModel: (model) => byModel.get(model) ?? anyModel,
    consumerForKeyDigest: (digest) => keyIndex.find(digest),
    passthrough,
    clusters: new Set([...targets.values()].map((t) => t.config.cluster)),
  };
}

function operationForPath(path: string): Operation {
  for (const [op, spec] of Object.entries(OPERATIONS)) if (spec.path === path) return op as Operation;
  throw new Error(`unreachable: schema admitted unknown path ${path}`);
}
