// Whole ext_proc exchanges for fault tests, over real gRPC: what Envoy sends for one request (the
// router phase's stream and one upstream attempt's stream), plus deadlines and the service's own
// stream gauges, so a test can check that every other stream still completes and nothing is left
// open after a fault.
import assert from "node:assert/strict";
import type * as grpc from "@grpc/grpc-js";
import { TARGET_ATTRIBUTE } from "../../src/phases/gateway-headers";
import { samples, sum } from "./exposition";
import { bodyMessage, headersMessage, setHeaders, type EnvoyResponse, type ExtProcStream, type ExtProcTestClient } from "./ext-proc-client";
import type { TestService } from "./service";

export const CHAT_HEADERS = { ":method": "POST", ":path": "/v1/chat/completions", ":authority": "gw", ":scheme": "https", "content-type": "application/json" };
export const KEYS = { alice: "Bearer sk-demo-alice", bob: "Bearer sk-demo-bob", ci: "Bearer sk-demo-ci" } as const;
export const chatBody = (model: string, extra: object = {}) => JSON.stringify({ model, messages: [{ role: "user", content: "tell me a story" }], ...extra });

/** Rejects when `p` takes longer than `ms`: a hang is a failure with a name, not a stuck test. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what} (no answer within ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it holds, failing with `what` after `ms` (a recovery, not a duration, is asserted). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function metricSamples(svc: TestService): Promise<Map<string, number>> {
  return samples((await svc.metrics.text()).body);
}

/** llm_router_ext_proc_streams_active of both phases. */
export async function openStreams(svc: TestService): Promise<{ router: number; upstream: number }> {
  const s = await metricSamples(svc);
  return { router: sum(s, "llm_router_ext_proc_streams_active", { phase: "router" }), upstream: sum(s, "llm_router_ext_proc_streams_active", { phase: "upstream" }) };
}

/** Waits until the service has closed every ext_proc stream and no attempt is in flight on `targets`. */
export async function settledService(svc: TestService, targets: readonly string[] = []): Promise<void> {
  await waitFor(async () => {
    const open = await openStreams(svc);
    return open.router === 0 && open.upstream === 0 && targets.every((t) => svc.observations.stats(t).inFlight === 0);
  }, 5000, "the open-stream gauges and attempts in flight return to 0");
}

/** Request attributes Envoy sends the upstream phase: the attempt's cluster and its endpoint's target. */
export function attemptAttributes(cluster: string, target: string): object {
  return { attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: cluster }, [TARGET_ATTRIBUTE]: { stringValue: target } } } } };
}

export function contextMetadata(token: string): object {
  return { metadata_context: { filter_metadata: { llm_router: { fields: { ctx: { stringValue: token } } } } } };
}

export function responseHeadersMessage(headers: Record<string, string>, endOfStream = false): object {
  return { response_headers: { headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: endOfStream } };
}

export function responseBodyMessage(body: string, endOfStream: boolean): object {
  return { response_body: { body: Buffer.from(body), end_of_stream: endOfStream } };
}

/** An OpenAI chat stream as a provider sends it (with include_usage): one chunk per event. */
export function openaiStreamEvents(model: string, words: readonly string[]): string[] {
  const base = { id: "chatcmpl-fault", object: "chat.completion.chunk", created: 1, model };
  const events: object[] = words.map((w, i) => ({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content: w } : { content: ` ${w}` }, finish_reason: null }], usage: null }));
  events.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null });
  const usage = { ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: words.length, total_tokens: 9 + words.length } };
  return [...events, usage].map((e) => `data: ${JSON.stringify(e)}\n\n`).concat("data: [DONE]\n\n");
}

/** The router phase routed a request: its stream (still open), the reply to the body and what it set. */
export interface Routed {
  router: ExtProcStream;
  bodyReply: EnvoyResponse;
  set: Record<string, string>;
  token: string;
  cluster: string;
}

/** Runs the router phase to its body reply; the stream stays open for the response direction. */
export async function routeRequest(client: ExtProcTestClient, headers: Record<string, string>, body: string, ms = 5000): Promise<Routed | { router: ExtProcStream; refused: EnvoyResponse }> {
  const router = client.open("router");
  const h = await within(router.send(headersMessage(headers)), ms, "router phase: reply to request_headers");
  if (h.immediate_response) return { router, refused: h };
  const b = await within(router.send(bodyMessage(body)), ms, "router phase: reply to request_body");
  if (b.immediate_response) return { router, refused: b };
  const set = setHeaders(b.request_body?.response);
  const token = b.dynamic_metadata?.fields?.llm_router?.structValue?.fields?.ctx?.stringValue ?? "";
  return { router, bodyReply: b, set, token, cluster: set["x-llm-router-cluster"] ?? "" };
}

/**
 * One whole streaming chat request as Envoy drives it: router phase (headers, body), one upstream
 * attempt (headers, body, response headers), the response through the router phase chunk by chunk,
 * then both streams half-closed. Asserts every step's answer; resolves when both streams ended OK.
 */
export async function healthyStream(client: ExtProcTestClient, key: string = KEYS.alice, model = "fast"): Promise<void> {
  const headers = { ...CHAT_HEADERS, authorization: key };
  const body = chatBody(model, { stream: true });
  const routed = await routeRequest(client, headers, body);
  assert.ok("bodyReply" in routed, `routed, not refused: ${JSON.stringify("refused" in routed ? routed.refused.immediate_response?.body?.toString() : "")}`);
  const { router, set, token, cluster } = routed;
  assert.equal(cluster, "tgt_openai-gpt-4o-mini");
  const upstream = client.open("upstream");
  const ctx = { ...attemptAttributes(cluster, "openai-gpt-4o-mini"), ...contextMetadata(token) };
  const uh = await within(upstream.send(headersMessage({ ...headers, ...set }, false, ctx)), 5000, "upstream phase: request_headers");
  assert.equal(setHeaders(uh.request_headers?.response).authorization, "Bearer sk-provider-openai-SECRET");
  const ub = await within(upstream.send(bodyMessage(body, contextMetadata(token))), 5000, "upstream phase: request_body");
  const forwarded = JSON.parse((ub.request_body?.response?.body_mutation?.body ?? Buffer.from(body)).toString()) as { model: string };
  assert.equal(forwarded.model, "gpt-4o-mini");
  const providerHeaders = { ":status": "200", "content-type": "text/event-stream" };
  const urh = await within(upstream.send(responseHeadersMessage(providerHeaders)), 5000, "upstream phase: response_headers");
  const named = setHeaders(urh.response_headers?.response);
  assert.equal(named["x-llm-router-target"], "openai-gpt-4o-mini");
  const statusStream = upstream.status();
  upstream.end();
  assert.equal((await within(statusStream, 5000, "upstream stream end")).code, 0);
  const rh = await within(router.send(responseHeadersMessage({ ...providerHeaders, ...named })), 5000, "router phase: response_headers");
  assert.equal(rh.mode_override?.response_body_mode, "STREAMED");
  const events = openaiStreamEvents("gpt-4o-mini", ["once", "upon", "a", "time"]);
  for (let i = 0; i < events.length; i++) {
    const r = await within(router.send(responseBodyMessage(events[i]!, i === events.length - 1)), 5000, "router phase: response_body");
    assert.equal(r.response, "response_body");
    assert.doesNotMatch(r.response_body?.response?.body_mutation?.body?.toString() ?? "", /upstream_stream_truncated/);
  }
  const routerStatus = router.status();
  router.end();
  assert.equal((await within(routerStatus, 5000, "router stream end")).code, 0);
}

/** `n` healthy streams at once; all must complete. */
export async function healthyStreams(client: ExtProcTestClient, n: number, key: string = KEYS.alice): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => healthyStream(client, key)));
}

/** Writes `messages` on a new stream without waiting, half-closes, and collects every reply and the final status. */
export async function drive(client: ExtProcTestClient, phase: string, messages: object[], ms = 5000): Promise<{ replies: EnvoyResponse[]; status: grpc.StatusObject }> {
  const s = client.open(phase);
  const replies: EnvoyResponse[] = [];
  s.call.on("data", (r: EnvoyResponse) => replies.push(r));
  const status = s.status();
  for (const m of messages) s.call.write(m);
  s.end();
  return { replies, status: await within(status, ms, `${phase} stream status after ${messages.length} messages`) };
}
