// `llm-router explain`: the decision for a sample request, computed by the real router and
// upstream phases in-process (no network, no provider keys: credentials show where they come from).
// It shows the whole plan: route, strategy, chain, skipped targets and why, the chosen cluster and
// retries, and what each attempt along the chain would send (as a replica with no observations).
// The admin port's /debug/explain runs the same code against the live policy, whose credentials are
// real: explain() therefore never returns a resolved provider credential.
import { readFileSync } from "node:fs";
import pino from "pino";
import { RequestHeaders } from "../api/request-headers";
import { MemoryCacheStore } from "../cache/cache-store";
import { ResponseCache } from "../cache/response-cache";
import { ContextSigner } from "../context/routing-context";
import type { ExtProcMessage, PhaseReply } from "../extproc/messages";
import { ATTEMPT_COUNT_HEADER, METADATA_NAMESPACE, TARGET_ATTRIBUTE } from "../phases/gateway-headers";
import { RouterPhase } from "../phases/router-phase";
import { DISCARD } from "../phases/request-summary";
import { UpstreamPhase } from "../phases/upstream-phase";
import { compilePolicyText, type CompiledPolicy } from "../policy/compile";
import { QuotaGate } from "../quota/quota-gate";
import { LoadShedder } from "../overload/load-shedder";
import { TargetObservations } from "../routing/observations";
import type { SkippedTarget } from "../routing/plan";
import { parseOptions, requireString, UsageError, type OptionSpec } from "./options";

export const DEFAULT_EXPLAIN_PATH = "/v1/chat/completions";
export const DEFAULT_EXPLAIN_METHOD = "POST";

const OPTIONS: OptionSpec = {
  policy: { type: "string", env: "LLM_ROUTER_POLICY" },
  path: { type: "string", default: DEFAULT_EXPLAIN_PATH },
  method: { type: "string", default: DEFAULT_EXPLAIN_METHOD },
  body: { type: "string" },
  header: { type: "string", multiple: true, short: "H" },
  key: { type: "string" },
};

export interface ExplainedAttempt {
  attempt: number;
  target: string;
  upstream: { headers: PhaseReply; body?: PhaseReply };
  upstreamRequest: { path: string; headers: Record<string, string>; body: unknown };
}

export interface Explanation {
  /** One-line answer: who, which route and target, what goes upstream. */
  decision: string;
  request: { method: string; path: string; headers: Record<string, string> };
  router: PhaseReply;
  plan?: {
    route: string;
    strategy: string;
    chain: string[];
    why: string;
    skipped: SkippedTarget[];
    cluster: string;
    /** The order Envoy walks on retries (priority 0 first). */
    order: string[];
    retries: number;
    retriesLimited: boolean;
  };
  cluster?: string;
  /** What each attempt along the cluster's order would send, if the ones before it failed. */
  attempts?: ExplainedAttempt[];
}

/** A sample request as the CLI flags and the /debug/explain endpoint describe it. */
export interface ExplainRequest {
  method?: string | undefined;
  path?: string | undefined;
  headers?: ReadonlyArray<readonly [string, string]> | undefined;
  body?: Buffer | undefined;
  /** A gateway key, sent as `Authorization: Bearer <key>`. */
  key?: string | undefined;
}

/** Fills in the defaults both front ends share: method, path, the key's header and a JSON content type. */
export function explainRequest(policy: CompiledPolicy, req: ExplainRequest): Promise<Explanation> {
  const headerList: Array<[string, string]> = req.headers === undefined ? [] : req.headers.map(([k, v]): [string, string] => [k, v]);
  if (req.key !== undefined) headerList.push(["authorization", `Bearer ${req.key}`]);
  if (req.body !== undefined && !headerList.some(([k]) => k.toLowerCase() === "content-type")) headerList.push(["content-type", "application/json"]);
  return explain(policy, req.method ?? DEFAULT_EXPLAIN_METHOD, req.path ?? DEFAULT_EXPLAIN_PATH, headerList, req.body);
}

/** The printed form: bodies held as Buffers show as their text. */
export function formatExplanation(result: Explanation): string {
  return JSON.stringify(result, (_k, v: unknown) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? Buffer.from((v as { data: number[] }).data).toString("utf8") : v), 2);
}

export async function explain(policy: CompiledPolicy, method: string, path: string, headerList: Array<[string, string]>, body: Buffer | undefined): Promise<Explanation> {
  const result = await runPhases(policy, method, path, headerList, body);
  // Header-name redaction covers the credentials adapters set today; scrubbing every value is the
  // second line for a credential that lands anywhere else (a new header name, a path, a body).
  return scrubSecrets(result, resolvedCredentials(policy)) as Explanation;
}

async function runPhases(policy: CompiledPolicy, method: string, path: string, headerList: Array<[string, string]>, body: Buffer | undefined): Promise<Explanation> {
  const deps = {
    currentPolicy: () => policy,
    signer: new ContextSigner([Buffer.alloc(32, 1)], 60_000),
    maxBodyBytes: 64 * 1024 * 1024,
    log: pino({ level: "silent" }),
    now: Date.now,
    observations: new TargetObservations(() => policy.cooldown),
    random: () => 0.5,
    // A fresh in-memory store: explain shows the rules a request meets, never a live counter.
    quota: new QuotaGate(undefined, pino({ level: "silent" })),
    // Likewise an empty cache: explain shows the request going upstream.
    cache: new ResponseCache(new MemoryCacheStore(1024 * 1024), pino({ level: "silent" })),
    // Nothing is served: no metrics, no request log.
    requests: DISCARD,
    // No load to shed: explain answers as an idle replica would.
    load: new LoadShedder(),
  };
  const headers = new Map<string, string>([[":method", method], [":path", path], [":authority", "gateway"], [":scheme", "https"]]);
  for (const [k, v] of headerList) headers.set(k.toLowerCase(), v);
  if (body !== undefined && !headers.has("content-length")) headers.set("content-length", String(body.length));
  const requestEcho = { method, path, headers: redactHeaders(Object.fromEntries(headers)) };

  const toMessage = (kind: "request_headers", eos: boolean, extra: Partial<ExtProcMessage> = {}): ExtProcMessage =>
    ({ kind, headers: RequestHeaders.from(Object.fromEntries(headers)), endOfStream: eos, attributes: undefined, metadata: undefined, ...extra }) as ExtProcMessage;
  const bodyMessage = (b: Buffer, extra: Partial<ExtProcMessage> = {}): ExtProcMessage =>
    ({ kind: "request_body", body: b, endOfStream: true, attributes: undefined, metadata: undefined, ...extra }) as ExtProcMessage;

  const router = new RouterPhase(deps);
  const reply = await router.handle(toMessage("request_headers", body === undefined));
  let currentBody = body;
  const apply = (r: PhaseReply) => {
    if (r.kind !== "continue") return;
    for (const h of r.headers?.remove ?? []) headers.delete(h);
    for (const [k, v] of r.headers?.set ?? []) headers.set(k, v);
    if (r.body) currentBody = r.body;
  };
  apply(reply);
  let routed = reply;
  if (reply.kind === "continue" && body !== undefined && !reply.clearRouteCache) {
    routed = await router.handle(bodyMessage(body));
    apply(routed);
  }
  if (routed.kind !== "continue") {
    return { decision: `rejected: ${routed.status} ${routed.details}`, request: requestEcho, router: redactReply(routed) };
  }

  const cluster = headers.get(policy.clusterHeader);
  const metadata = routed.dynamicMetadata ? { [METADATA_NAMESPACE]: routed.dynamicMetadata[METADATA_NAMESPACE] ?? {} } : undefined;
  const token = routed.dynamicMetadata?.[METADATA_NAMESPACE]?.ctx;
  const verified = token ? deps.signer.verify(token, Date.now()) : undefined;
  const ctx = verified && !("invalid" in verified) ? verified : undefined;
  const routedBody = currentBody;
  // Attempts share one header map, as in Envoy; each gets a fresh copy of the routed body.
  const attempts: ExplainedAttempt[] = [];
  for (const [i, target] of (ctx?.ch ?? []).entries()) {
    currentBody = routedBody;
    headers.set(ATTEMPT_COUNT_HEADER, String(i + 1));
    const attributes = { "xds.cluster_name": cluster ?? "", [TARGET_ATTRIBUTE]: target };
    const upstream = new UpstreamPhase(deps);
    const upHeaders = await upstream.handle(toMessage("request_headers", currentBody === undefined, { metadata, attributes }));
    apply(upHeaders);
    let upBody: PhaseReply | undefined;
    if (upHeaders.kind === "continue" && currentBody !== undefined) {
      upBody = await upstream.handle(bodyMessage(currentBody, { metadata, attributes }));
      apply(upBody);
    }
    let shownBody: unknown = currentBody?.toString("utf8");
    try {
      if (typeof shownBody === "string") shownBody = JSON.parse(shownBody);
    } catch {
      // shown as text
    }
    attempts.push({
      attempt: i + 1,
      target,
      upstream: { headers: redactReply(upHeaders), ...(upBody ? { body: redactReply(upBody) } : {}) },
      upstreamRequest: { path: headers.get(":path") ?? path, headers: redactHeaders(Object.fromEntries(headers)), body: shownBody },
    });
  }
  const plan = router.plan;
  const route = ctx?.r === undefined ? undefined : policy.routes.find((r) => r.name === ctx.r);
  const first = attempts[0];
  const decision = ctx
    ? `consumer ${ctx.c} -> ${ctx.r ? `route ${ctx.r}` : "passthrough"} -> target ${ctx.t} (cluster ${cluster ?? "?"}, then ${ctx.ch.slice(1).join(", ") || "no fallback"}) -> ${
        first === undefined ? "?" : first.upstream.headers.kind === "continue" ? `${method} ${first.upstreamRequest.path}` : "rejected upstream"
      }`
    : "routed";
  return {
    decision,
    request: requestEcho,
    router: redactReply(routed),
    ...(plan && route
      ? {
          plan: {
            route: route.name,
            strategy: route.strategy.type,
            chain: route.chain.map((t) => t.id),
            why: plan.ranking.reason,
            skipped: plan.skipped,
            cluster: plan.cluster.name,
            order: plan.cluster.order.map((t) => t.id),
            retries: plan.retries,
            retriesLimited: plan.retriesLimited,
          },
        }
      : {}),
    ...(cluster ? { cluster } : {}),
    attempts,
  };
}

const SENSITIVE = new Set(["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token", "x-llm-router-ctx", "cookie"]);
const REDACTED = "[redacted]";
/** What compilePolicyText puts in place of a credential with secretPlaceholders (never a real key). */
const PLACEHOLDER = /^<credential from (env|file) [^>]*>$/;
const PLACEHOLDER_IN_VALUE = /^(Bearer )?<credential from (env|file) [^>]*>$/;

function redactHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  // A placeholder is shown because it tells where the credential comes from; anything else in a
  // sensitive header (a client's gateway key, a live provider key) is not.
  for (const [k, v] of Object.entries(h)) out[k] = SENSITIVE.has(k) && !PLACEHOLDER_IN_VALUE.test(v) ? REDACTED : v;
  return out;
}

/** The provider credentials of a policy compiled with resolveSecrets (none with placeholders). */
function resolvedCredentials(policy: CompiledPolicy): string[] {
  const values = new Set<string>();
  for (const target of policy.targets.values()) {
    const { credential, aws } = target.provider;
    for (const secret of [credential, aws?.accessKeyId, aws?.secretAccessKey, aws?.sessionToken]) {
      const value = secret?.reveal();
      if (value !== undefined && value !== "" && !PLACEHOLDER.test(value)) values.add(value);
    }
  }
  // Longest first, so a credential that contains another is replaced whole.
  return [...values].sort((a, b) => b.length - a.length);
}

function scrubText(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, secret) => t.split(secret).join(REDACTED), text);
}

/** A deep copy with every occurrence of each secret replaced, in strings, object keys and Buffers. */
function scrubSecrets(value: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return value;
  if (typeof value === "string") return scrubText(value, secrets);
  if (Buffer.isBuffer(value)) return secrets.some((s) => value.includes(s)) ? Buffer.from(scrubText(value.toString("utf8"), secrets)) : value;
  if (Array.isArray(value)) return value.map((v: unknown) => scrubSecrets(v, secrets));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [scrubText(k, secrets), scrubSecrets(v, secrets)]));
  }
  return value;
}

function redactReply(r: PhaseReply): PhaseReply {
  if (r.kind !== "continue") return { ...r, body: r.body };
  const copy = { ...r };
  if (copy.headers) copy.headers = { set: copy.headers.set.map(([k, v]) => [k, redactHeaders({ [k]: v })[k] ?? ""]), remove: copy.headers.remove };
  if (copy.dynamicMetadata) copy.dynamicMetadata = { [METADATA_NAMESPACE]: { ctx: "[signed routing context]" } };
  if (copy.body) copy.body = Buffer.from(`<${copy.body.length} bytes>`);
  return copy;
}

export async function explainCommand(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): Promise<number> {
  const o = parseOptions(argv, OPTIONS, env);
  const file = requireString(o, "policy", "the routing policy JSON file");
  const policy = compilePolicyText(readFileSync(file, "utf8"), { file, resolveSecrets: false, secretPlaceholders: true });
  const headers: Array<[string, string]> = [];
  for (const h of (o.header as string[] | undefined) ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`--header must be "name: value" (got "${h}")`);
    headers.push([h.slice(0, i).trim(), h.slice(i + 1).trim()]);
  }
  let body: Buffer | undefined;
  if (typeof o.body === "string") body = o.body.startsWith("@") ? readFileSync(o.body.slice(1)) : Buffer.from(o.body);
  const key = typeof o.key === "string" ? o.key : undefined;
  const result = await explainRequest(policy, { method: String(o.method), path: String(o.path), headers, body, key });
  out(formatExplanation(result));
  return result.router.kind === "continue" ? 0 : 2;
}
