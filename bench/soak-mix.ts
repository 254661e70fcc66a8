// The soak's traffic (bench/soak.ts): which request each slot of the schedule sends, how the
// Envoy-like driver plays it (envoyRequest), and what counts as a right answer. Four kinds, in a
// fixed interleaved pattern so that every second carries the whole mix:
// - json: alice, model "smart" (chain OpenAI -> Azure -> local), a 1 KiB chat request, one JSON answer;
// - stream: the same as a `stream: true` request answered by 200 SSE chunks (+ usage, [DONE]);
// - limited: as json, from consumer ci, whose requests-per-minute rule (bench/policy.ts soakPolicy)
//   refuses a known share with 429;
// - cached: alice, model "cached" (a route with a 30 s response cache), one of 16 prompts in turn:
//   hits, with a miss (stored) whenever an answer has expired.
// Every FALLBACK_EVERY-th request sent on "smart" has its first attempt fail with 503 (the
// provider's answer, played by the driver), so Envoy retries it on the chain's next target.
//
// A request fails when the driver gets a gRPC error or an answer it cannot validate: a disarmed
// attempt (REJECTED_PATH_PREFIX), a wrong attempt target or number in the upstream phase's reply, a
// response body not relayed intact, an ImmediateResponse other than the expected 429 or cache hit.
import { chatBody } from "./body";
import { UPSTREAM_CLUSTER, type EnvoyLikeClient, type EnvoyOutcome, type RequestCase } from "./envoy-client";
import { SOAK_CACHED_MODEL, SOAK_LIMIT_RULE, SOAK_LIMITED_KEY } from "./policy";
import { jsonAnswer, sseAnswer } from "./response";
import { immediateJson, setHeaders, type EnvoyResponse } from "../test/support/ext-proc-client";
import { ATTEMPT_RESPONSE_HEADER, CACHE_HEADER, TARGET_RESPONSE_HEADER } from "../src/phases/gateway-headers";
import { REJECTED_PATH_PREFIX } from "../src/phases/upstream-phase";

export const KINDS = ["json", "stream", "limited", "cached"] as const;
export type Kind = (typeof KINDS)[number];

/** Requests of each kind per 20 of the mix (streams cost ~9 JSON requests of service CPU each). */
export const MIX: Readonly<Record<Kind, number>> = { json: 8, stream: 2, limited: 4, cached: 6 };
/** Every this many requests routed on "smart", one has a failing first attempt. */
export const FALLBACK_EVERY = 10;
export const FAILED_ATTEMPT_STATUS = 503;
export const CACHED_PROMPTS = 16;
const STREAM_CHUNKS = 200;

export type Result = "ok" | "refused" | "hit" | "miss";

/** One request's outcome; failures are thrown. */
export interface Sent {
  kind: Kind;
  result: Result;
  /** Answered by the chain's next target after a failed attempt. */
  fallback: boolean;
  /** A cache miss that waited for an identical request's answer (coalesced). */
  waited: boolean;
}

/** Smooth weighted round robin: each kind as evenly spread over the pattern as its weight allows. */
function interleave(weights: Readonly<Record<Kind, number>>): Kind[] {
  const total = KINDS.reduce((n, k) => n + weights[k], 0);
  const credit: Record<Kind, number> = { json: 0, stream: 0, limited: 0, cached: 0 };
  const out: Kind[] = [];
  for (let n = 0; n < total; n++) {
    for (const k of KINDS) credit[k] += weights[k];
    const pick = KINDS.reduce((a, b) => (credit[b] > credit[a] ? b : a));
    credit[pick] -= total;
    out.push(pick);
  }
  return out;
}

/** The kinds' share of the mix. */
export const share = (kind: Kind): number => MIX[kind] / KINDS.reduce((n, k) => n + MIX[k], 0);

export class SoakTraffic {
  readonly #pattern = interleave(MIX);
  readonly #json: RequestCase = { body: chatBody(1024), answer: jsonAnswer() };
  readonly #stream: RequestCase = { body: chatBody(1024, { stream: true }), answer: sseAnswer(STREAM_CHUNKS) };
  readonly #cached: RequestCase[] = Array.from({ length: CACHED_PROMPTS }, (_, k) => ({ body: chatBody(1024 + k, { model: SOAK_CACHED_MODEL }), answer: jsonAnswer() }));
  #smartSent = 0;
  #cachedSent = 0;

  /** `chains`: the policy's chain clusters (bench/policy.ts chainOrders of the soak policy). */
  constructor(private readonly chains: ReadonlyMap<string, readonly string[]>) {
    if ((chains.get(UPSTREAM_CLUSTER)?.length ?? 0) < 2) throw new Error(`soak policy: ${UPSTREAM_CLUSTER} is no chain with a fallback`);
  }

  kindOf(i: number): Kind {
    return this.#pattern[i % this.#pattern.length]!;
  }

  /** Sends request `i` of the schedule; resolves with what happened, rejects when it failed. */
  async send(client: EnvoyLikeClient, i: number, signal?: AbortSignal): Promise<Sent> {
    const kind = this.kindOf(i);
    let c: RequestCase;
    let failures: number[] = [];
    if (kind === "cached") c = this.#cached[this.#cachedSent++ % CACHED_PROMPTS]!;
    else {
      c = kind === "stream" ? this.#stream : this.#json;
      if (this.#smartSent++ % FALLBACK_EVERY === FALLBACK_EVERY - 1) failures = [FAILED_ATTEMPT_STATUS];
    }
    const o = await client.envoyRequest(c, { key: kind === "limited" ? SOAK_LIMITED_KEY : undefined, failures, chains: this.chains, signal });
    if (o.immediate !== undefined) return { kind, result: answeredByRouter(kind, o.immediate, c), fallback: false, waited: o.waited };
    this.#checkRouted(kind, o, c, failures.length);
    return { kind, result: kind === "cached" ? "miss" : "ok", fallback: failures.length > 0, waited: o.waited };
  }

  #checkRouted(kind: Kind, o: EnvoyOutcome, c: RequestCase, failed: number): void {
    if (kind !== "cached" && o.cluster !== UPSTREAM_CLUSTER) throw new Error(`${kind}: routed to ${o.cluster}, expected ${UPSTREAM_CLUSTER}`);
    if (o.attempts.length !== failed + 1) throw new Error(`${kind}: ${o.attempts.length} attempts, expected ${failed + 1}`);
    o.attempts.forEach((a, n) => {
      const path = setHeaders(a.replies[0]?.request_headers?.response)[":path"];
      if (path === undefined || path.startsWith(REJECTED_PATH_PREFIX)) throw new Error(`${kind}: attempt ${n + 1} on ${a.target} was not rewritten for its target (:path ${String(path)})`);
      const named = setHeaders(a.replies[2]?.response_headers?.response);
      if (named[TARGET_RESPONSE_HEADER] !== a.target || named[ATTEMPT_RESPONSE_HEADER] !== String(n + 1)) {
        throw new Error(`${kind}: the upstream phase named ${named[TARGET_RESPONSE_HEADER]} attempt ${named[ATTEMPT_RESPONSE_HEADER]} for attempt ${n + 1} on ${a.target}`);
      }
    });
    const router = o.router;
    if (router === undefined || router.responseBody.length !== c.answer.chunks.length) {
      throw new Error(`${kind}: the router phase took ${router?.responseBody.length ?? 0} of ${c.answer.chunks.length} response body chunks`);
    }
    const cache = setHeaders(router.responseHeaders.response_headers?.response)[CACHE_HEADER];
    if (kind === "cached" && cache !== "miss") throw new Error(`cached: a routed request's ${CACHE_HEADER} is ${String(cache)}, expected miss`);
    // A stream's usage-only chunk is the gateway's (it asked for usage), not the client's.
    const relayed = o.clientBody ?? Buffer.alloc(0);
    const streaming = c.answer.contentType === "text/event-stream";
    const expected = Buffer.concat(streaming ? c.answer.chunks.filter((ch) => !ch.includes('"choices":[]')) : c.answer.chunks);
    if (!relayed.equals(expected)) throw new Error(`${kind}: the client would get ${relayed.length} bytes of the answer, expected ${expected.length}`);
  }
}

/** An ImmediateResponse to the request body: a 429 for ci's rule, a cache hit on "cached"; anything else fails. */
function answeredByRouter(kind: Kind, reply: EnvoyResponse, c: RequestCase): Result {
  const answer = immediateJson(reply);
  if (kind === "limited" && answer.status === 429 && answer.headers["x-llm-router-limit"] === SOAK_LIMIT_RULE) return "refused";
  if (kind === "cached" && answer.status === 200 && answer.headers[CACHE_HEADER] === "hit") {
    if (!(reply.immediate_response?.body ?? Buffer.alloc(0)).equals(Buffer.concat(c.answer.chunks))) throw new Error("cached: a hit's body differs from the stored answer");
    return "hit";
  }
  throw new Error(`${kind}: the router phase answered ${answer.status} itself: ${JSON.stringify(answer.body).slice(0, 300)}`);
}
