// `llm-router explain`: the decision for a sample request, computed by the real router and
// upstream phases in-process (no network, no provider keys: credentials show where they come from).
// It shows the whole plan: route, strategy, chain, skipped targets and why, the chosen cluster and
// retries, and what each attempt along the chain would send (as a replica with no observations).
import { readFileSync } from "node:fs";
import pino from "pino";
import { RequestHeaders } from "../api/request-headers";
import { MemoryCacheStore } from "../cache/cache-store";
import { ResponseCache } from "../cache/response-cache";
import { ContextSigner } from "../context/routing-context";
import type { ExtProcMessage, PhaseReply } from "../extproc/messages";
import { ATTEMPT_COUNT_HEADER, METADATA_NAMESPACE, TARGET_ATTRIBUTE } from "../phases/gateway-headers";
import { RouterPhase } from "../phases/router-phase";
import { UpstreamPhase } from "../phases/upstream-phase";
import { compilePolicyText, type CompiledPolicy } from "../policy/compile";
import { QuotaGate } from "../quota/quota-gate";
import { TargetObservations } from "../routing/observations";
import type { SkippedTarget } from "../routing/plan";
import { parseOptions, requireString, UsageError, type OptionSpec } from "./options";

const OPTIONS: OptionSpec = {
  policy: { type: "string", env: "LLM_ROUTER_POLICY" },
  path: { type: "string", default: "/v1/chat/completions" },
  method: { type: "string", default: "POST" },
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

export async function explain(policy: CompiledPolicy, method: string, path: string, headerList: Array<[string, string]>, body: Buffer | undefined): Promise<Explanation> {
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
  const attempts: ExplainedAttempt[] = (ctx?.ch ?? []).map((target, i) => {
    currentBody = routedBody;
    headers.set(ATTEMPT_COUNT_HEADER, String(i + 1));
    const attributes = { "xds.cluster_name": cluster ?? "", [TARGET_ATTRIBUTE]: target };
    const upstream = new UpstreamPhase(deps);
    const upHeaders = upstream.handle(toMessage("request_headers", currentBody === undefined, { metadata, attributes }));
    apply(upHeaders);
    let upBody: PhaseReply | undefined;
    if (upHeaders.kind === "continue" && currentBody !== undefined) {
      upBody = upstream.handle(bodyMessage(currentBody, { metadata, attributes }));
      apply(upBody);
    }
    let shownBody: unknown = currentBody?.toString("utf8");
    try {
      if (typeof shownBody === "string") shownBody = JSON.parse(shownBody);
    } catch {
      // shown as text
    }
    return {
      attempt: i + 1,
      target,
      upstream: { headers: redactReply(upHeaders), ...(upBody ? { body: redactReply(upBody) } : {}) },
      upstreamRequest: { path: headers.get(":path") ?? path, headers: redactHeaders(Object.fromEntries(headers)), body: shownBody },
    };
  });
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

const SENSITIVE = new Set(["authorization", "x-api-key", "api-key", "x-llm-router-ctx", "cookie"]);

function redactHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k] = SENSITIVE.has(k) && !v.includes("<credential from") ? "[redacted]" : v;
  return out;
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
  const headerList: Array<[string, string]> = [];
  for (const h of (o.header as string[] | undefined) ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`--header must be "name: value" (got "${h}")`);
    headerList.push([h.slice(0, i).trim(), h.slice(i + 1).trim()]);
  }
  if (typeof o.key === "string") headerList.push(["authorization", `Bearer ${o.key}`]);
  if (!headerList.some(([k]) => k.toLowerCase() === "content-type") && o.body !== undefined) headerList.push(["content-type", "application/json"]);
  let body: Buffer | undefined;
  if (typeof o.body === "string") body = o.body.startsWith("@") ? readFileSync(o.body.slice(1)) : Buffer.from(o.body);
  const result = await explain(policy, String(o.method), String(o.path), headerList, body);
  out(JSON.stringify(result, (_k, v: unknown) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? Buffer.from((v as { data: number[] }).data).toString("utf8") : v), 2));
  return result.router.kind === "continue" ? 0 : 2;
}
