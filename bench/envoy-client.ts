// Drives an ext_proc server the way Envoy does for one chat completion: the router phase stream
// (request_headers, then the BUFFERED request_body), then the upstream phase stream of the attempt
// (request_headers after the router's mutations, with request attributes and the routing context in
// metadata_context, then request_body, then the response headers). Built on the integration tests' client (Envoy's own protos).
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { TARGET_ATTRIBUTE } from "../src/phases/gateway-headers";
import { compilePolicyText } from "../src/policy/compile";
import { bodyMessage, ExtProcTestClient, headersMessage, type EnvoyCommon, type EnvoyResponse } from "../test/support/ext-proc-client";

export type Flow = "both" | "router" | "upstream";

/** What the router phase decided: header mutations and the signed context. */
export interface Routing {
  set: Array<[string, string]>;
  remove: string[];
  token: string;
}

/** The example policy's "smart" route: a chain whose first target is openai-gpt-4o. */
export const UPSTREAM_TARGET = "openai-gpt-4o";

/** The chain cluster the router phase picks for "smart" with no observations (first: OpenAI). */
export const UPSTREAM_CLUSTER = (() => {
  const file = path.resolve(__dirname, "../../examples/policy.json");
  const policy = compilePolicyText(readFileSync(file, "utf8"), { file, resolveSecrets: false });
  const cluster = policy.routes.find((r) => r.name === "smart")?.clusterStartingWith.get(UPSTREAM_TARGET)?.name;
  if (cluster === undefined) throw new Error(`${file}: route "smart" has no chain starting with ${UPSTREAM_TARGET}`);
  return cluster;
})();

/** What Envoy sends the upstream phase when the attempt's response headers arrive. */
const RESPONSE_HEADERS = {
  response_headers: {
    headers: {
      headers: Object.entries({ ":status": "200", "content-type": "application/json", "x-request-id": "req_0123456789abcdef", "openai-processing-ms": "412", "x-ratelimit-remaining-requests": "9999" }).map(([key, value]) => ({
        key,
        raw_value: Buffer.from(value),
      })),
    },
    end_of_stream: false,
  },
};

export function clientHeaders(body: Buffer): Record<string, string> {
  return {
    ":method": "POST",
    ":path": "/v1/chat/completions",
    ":authority": "llm-gateway.internal:8080",
    ":scheme": "http",
    "content-type": "application/json",
    authorization: "Bearer sk-demo-alice",
    accept: "application/json",
    "user-agent": "OpenAI/Python 1.54.4",
    "x-stainless-lang": "python",
    "x-forwarded-proto": "http",
    "x-request-id": randomUUID(),
    "content-length": String(body.length),
  };
}

/** Headers as the upstream filter chain sees them: the router phase's mutations applied. */
export function upstreamHeaders(client: Record<string, string>, routing: Routing): Record<string, string> {
  const out: Record<string, string> = { ...client };
  for (const name of routing.remove) delete out[name];
  for (const [name, value] of routing.set) out[name] = value;
  out["x-envoy-expected-rq-timeout-ms"] = "60000";
  out["x-envoy-attempt-count"] = "1";
  return out;
}

function upstreamExtras(token: string): object {
  return {
    attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: UPSTREAM_CLUSTER }, [TARGET_ATTRIBUTE]: { stringValue: UPSTREAM_TARGET } } } },
    metadata_context: { filter_metadata: { llm_router: { fields: { ctx: { stringValue: token } } } } },
  };
}

function mutationsOf(common: EnvoyCommon | undefined): { set: Array<[string, string]>; remove: string[] } {
  const set: Array<[string, string]> = (common?.header_mutation?.set_headers ?? []).map((h) => [
    h.header.key,
    (h.header.raw_value ?? Buffer.alloc(0)).toString("latin1"),
  ]);
  return { set, remove: common?.header_mutation?.remove_headers ?? [] };
}

/** The routing decision in the router phase's replies, or undefined if the server made none. */
export function routingOf(headersReply: EnvoyResponse, bodyReply: EnvoyResponse): Routing | undefined {
  const token = bodyReply.dynamic_metadata?.fields?.llm_router?.structValue?.fields?.ctx?.stringValue;
  if (token === undefined) return undefined;
  const a = mutationsOf(headersReply.request_headers?.response);
  const b = mutationsOf(bodyReply.request_body?.response);
  return { set: [...a.set, ...b.set], remove: [...a.remove, ...b.remove], token };
}

export class EnvoyLikeClient {
  readonly #client: ExtProcTestClient;
  /**
   * Routing used when the server answers without one (the do-nothing server), so that its upstream
   * streams carry the same headers and metadata as the service's.
   */
  template: Routing | undefined;

  constructor(address: string) {
    this.#client = new ExtProcTestClient(address);
  }

  /** One stream: each message awaits its reply, then half-close and wait for the OK status. */
  async stream(phase: "router" | "upstream", messages: object[], latencies?: number[]): Promise<EnvoyResponse[]> {
    const t0 = performance.now();
    const s = this.#client.open(phase);
    const status = s.status();
    const replies: EnvoyResponse[] = [];
    for (const m of messages) {
      const expected = Object.keys(m)[0];
      const r = await s.send(m);
      if (r.response !== expected) throw new Error(`${phase} phase answered ${expected} with ${r.response ?? "nothing"}: ${JSON.stringify(r).slice(0, 500)}`);
      replies.push(r);
    }
    s.end();
    const st = await status;
    if (st.code !== grpc.status.OK) throw new Error(`${phase} stream ended with status ${st.code}: ${st.details}`);
    latencies?.push(performance.now() - t0);
    return replies;
  }

  async routerPhase(headers: Record<string, string>, body: Buffer, latencies?: number[]): Promise<Routing> {
    const [h, b] = await this.stream("router", [headersMessage(headers), bodyMessage(body)], latencies);
    const routing = h && b ? routingOf(h, b) : undefined;
    if (routing !== undefined) return routing;
    if (this.template === undefined) throw new Error("router phase made no routing decision");
    return this.template;
  }

  upstreamPhase(headers: Record<string, string>, token: string, body: Buffer, latencies?: number[]): Promise<EnvoyResponse[]> {
    // Request headers, body, and the attempt's response headers (response_header_mode SEND).
    return this.stream("upstream", [headersMessage(headers, false, upstreamExtras(token)), bodyMessage(body), RESPONSE_HEADERS], latencies);
  }

  /** One request of `flow`; stream latencies (ms) go to `latencies`. */
  async request(flow: Flow, body: Buffer, latencies?: number[]): Promise<void> {
    if (flow === "upstream") {
      const routing = this.template;
      if (routing === undefined) throw new Error("upstream-only flow needs a routing template");
      await this.upstreamPhase(upstreamHeaders(clientHeaders(body), routing), routing.token, body, latencies);
      return;
    }
    const headers = clientHeaders(body);
    const routing = await this.routerPhase(headers, body, latencies);
    if (flow === "both") await this.upstreamPhase(upstreamHeaders(headers, routing), routing.token, body, latencies);
  }

  close(): void {
    this.#client.close();
  }
}

export interface DriveResult {
  requests: number;
  wallMs: number;
  /** Per-stream latencies, ms. */
  latencies: number[];
}

/** `count` requests of `flow` with `concurrency` requests in flight. */
export async function drive(client: EnvoyLikeClient, flow: Flow, body: Buffer, count: number, concurrency: number): Promise<DriveResult> {
  const latencies: number[] = [];
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await client.request(flow, body, latencies);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { requests: count, wallMs: performance.now() - t0, latencies };
}

/** Keeps `concurrency` requests in flight for `ms`. */
export async function driveFor(client: EnvoyLikeClient, flow: Flow, body: Buffer, ms: number, concurrency: number): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await client.request(flow, body);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done;
}
