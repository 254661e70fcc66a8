// A load generator cheap enough to share two cores with the server it measures: one Envoy-like
// request (both phases, as bench/envoy-client.ts sends it, with a JSON or a streamed answer passed
// through untranslated) made of ext_proc messages encoded once and written as gRPC frames (a
// message is a 5-byte prefix, flag and length, then its bytes:
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) over a hand-made HTTP/2
// connection (h2-connection.ts); replies are counted, not decoded. The sequence is Envoy's: each
// message waits for the reply to the one before, except a STREAMED response body, whose chunks go
// out without waiting (replies awaited in order); the upstream stream of the attempt runs between
// the router stream's request body and response headers.
//
// A probe request, decoded, checks every reply and yields the routing (signed context, header
// mutations, rewritten body) the later requests reuse: a context stays valid for
// --context-max-age-seconds.
import { TARGET_ATTRIBUTE, TARGET_RESPONSE_HEADER } from "../src/phases/gateway-headers";
import { envoyExtProcDefinition } from "../test/support/envoy-protos";
import { bodyMessage, headersMessage, type EnvoyResponse } from "../test/support/ext-proc-client";
import { clientHeaders, PASSTHROUGH, routingOf, upstreamHeaders } from "./envoy-client";
import { H2Connection, hpackLiterals, type H2StreamHandler } from "./h2-connection";
import type { Answer } from "./response";

const PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
const NOTHING = Buffer.alloc(0);

interface Codec {
  encode(message: object): Buffer;
  decode(bytes: Buffer): EnvoyResponse;
}

let codec: Codec | undefined;
function extProcCodec(): Codec {
  if (codec === undefined) {
    const service = envoyExtProcDefinition()["envoy.service.ext_proc.v3.ExternalProcessor"] as unknown as Record<string, { requestSerialize(m: object): Buffer; responseDeserialize(b: Buffer): EnvoyResponse }>;
    const process = service.Process;
    if (process === undefined) throw new Error("ext_proc definition has no Process method");
    codec = { encode: (m) => process.requestSerialize(m), decode: (b) => process.responseDeserialize(b) };
  }
  return codec;
}

/** A message as one gRPC frame: uncompressed flag, 32-bit big-endian length, the bytes. */
function frame(message: object): Buffer {
  const bytes = extProcCodec().encode(message);
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  bytes.copy(out, 5);
  return out;
}

/** One ext_proc stream: write frames, wait for as many replies; half-close, wait for the server's end. */
class ExtProcStream implements H2StreamHandler {
  readonly #conn: H2Connection;
  readonly #id: number;
  /** Bytes of the current message's 5-byte prefix still to come, and its length so far. */
  #prefixLeft = 5;
  #length = 0;
  #messageLeft = 0;
  #message: Buffer[] | undefined;
  #replies = 0;
  #wanted = 0;
  #wake: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #done: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #ended = false;
  #failed: Error | undefined;
  /** The replies' bytes, with `keep` (the probe). */
  readonly kept: Buffer[] = [];

  constructor(
    conn: H2Connection,
    headerBlock: Buffer,
    private readonly keep = false,
  ) {
    this.#conn = conn;
    this.#id = conn.open(headerBlock, this);
  }

  /** Writes `frames` (one message or more) and resolves once `replies` more replies are in. */
  exchange(frames: Buffer, replies = 1): Promise<void> {
    this.#wanted += replies;
    this.#conn.send(this.#id, frames, false);
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#replies >= this.#wanted) return Promise.resolve();
    return new Promise((resolve, reject) => (this.#wake = { resolve, reject }));
  }

  /** Half-closes; resolves when the server ends the stream. */
  finish(): Promise<void> {
    this.#conn.send(this.#id, NOTHING, true);
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve, reject) => (this.#done = { resolve, reject }));
  }

  data(payload: Buffer): void {
    let i = 0;
    while (i < payload.length) {
      if (this.#messageLeft > 0) {
        const n = Math.min(this.#messageLeft, payload.length - i);
        this.#message?.push(payload.subarray(i, i + n));
        this.#messageLeft -= n;
        i += n;
        if (this.#messageLeft === 0) this.#replied();
        continue;
      }
      // The first byte is the compression flag (always 0 here), the next four the length.
      if (this.#prefixLeft < 5) this.#length = this.#length * 256 + payload[i]!;
      i++;
      if (--this.#prefixLeft === 0) {
        this.#prefixLeft = 5;
        this.#messageLeft = this.#length;
        this.#length = 0;
        this.#message = this.keep ? [] : undefined;
        if (this.#messageLeft === 0) this.#replied();
      }
    }
  }

  end(): void {
    this.#ended = true;
    // A stream the service failed ends early: a trailers-only answer carries no message.
    if (this.#replies < this.#wanted) this.fail(new Error(`stream ended after ${this.#replies} of ${this.#wanted} replies (a gRPC error?)`));
    else this.#done?.resolve();
  }

  fail(err: Error): void {
    this.#failed = err;
    this.#wake?.reject(err);
    this.#done?.reject(err);
  }

  #replied(): void {
    if (this.#message !== undefined) this.kept.push(Buffer.concat(this.#message));
    if (++this.#replies < this.#wanted) return;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }
}

/** The request's messages as gRPC frames (a streamed response body: all its chunks in one buffer). */
interface Frames {
  router: { headers: Buffer; body: Buffer; responseHeaders: Buffer };
  /** Undefined when the router phase does not ask for the response body. */
  responseBody: { frames: Buffer; count: number } | undefined;
  upstream: Buffer[];
}

function responseHeaders(answer: Answer, routerSide: boolean): object {
  const headers: Record<string, string> = { ":status": "200", "content-type": answer.contentType, ...answer.headers };
  // Envoy passes the upstream phase's x-llm-router-target on to the router phase.
  if (routerSide) headers[TARGET_RESPONSE_HEADER] = PASSTHROUGH.target;
  return { response_headers: { headers: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) }, end_of_stream: false } };
}

/** The probe's exchange: the replies decoded, each checked to answer its message. */
async function checked(s: ExtProcStream, frames: Buffer, kind: string, phase: string, count = 1): Promise<EnvoyResponse[]> {
  await s.exchange(frames, count);
  return s.kept.splice(0).map((bytes) => {
    const reply = extProcCodec().decode(bytes);
    if (reply.response !== kind) throw new Error(`${phase} phase answered ${kind} with ${reply.response ?? "nothing"}: ${JSON.stringify(reply).slice(0, 300)}`);
    return reply;
  });
}

/**
 * Streams per connection before it is replaced: the shipped envoy.yaml's
 * max_requests_per_connection for the llm_router cluster. Besides what it is there for (README
 * "envoy.yaml walk-through"), it keeps new connections coming, which is what spreads the load over
 * the workers of `serve --workers N` (the primary deals connections, not streams, to whichever
 * worker is free): a fixed set opened in a burst can land unevenly and stay so.
 */
const STREAMS_PER_CONNECTION = 500;

export class RawDriver {
  readonly #to: { host: string; port: number } | { path: string };
  readonly #connections: H2Connection[];
  readonly #blocks: { router: Buffer; upstream: Buffer };
  #frames: Frames | undefined;
  #next = 0;

  /**
   * `connections` HTTP/2 connections to host:port or a Unix socket: the cluster's primary hands out
   * connections, not streams.
   */
  constructor(to: { host: string; port: number } | { path: string }, connections: number) {
    this.#to = to;
    this.#connections = Array.from({ length: connections }, () => new H2Connection(to));
    const authority = "path" in to ? "localhost" : `${to.host}:${to.port}`;
    const block = (phase: string) =>
      hpackLiterals([[":method", "POST"], [":scheme", "http"], [":path", PROCESS_PATH], [":authority", authority], ["content-type", "application/grpc"], ["te", "trailers"], ["x-llm-router-phase", phase]]);
    this.#blocks = { router: block("router"), upstream: block("upstream") };
  }

  /**
   * Sends one request, decoded and checked, and encodes the messages every later request reuses.
   * A streamed answer's chunks go to the router phase as Envoy sends STREAMED chunks.
   */
  async probe(body: Buffer, answer: Answer): Promise<void> {
    await Promise.all(this.#connections.map((c) => c.ready));
    const conn = this.#connections[0]!;
    const client = clientHeaders(body);
    const r = new ExtProcStream(conn, this.#blocks.router, true);
    const router = { headers: frame(headersMessage(client)), body: frame(bodyMessage(body)), responseHeaders: frame(responseHeaders(answer, true)) };
    const [headersReply] = await checked(r, router.headers, "request_headers", "router");
    const [bodyReply] = await checked(r, router.body, "request_body", "router");
    const routing = routingOf(headersReply!, bodyReply!);
    if (routing === undefined) throw new Error("the router phase made no routing decision");
    const extras = {
      attributes: { "envoy.filters.http.ext_proc": { fields: { "xds.cluster_name": { stringValue: PASSTHROUGH.cluster }, [TARGET_ATTRIBUTE]: { stringValue: PASSTHROUGH.target } } } },
      metadata_context: { filter_metadata: { llm_router: { fields: { ctx: { stringValue: routing.token } } } } },
    };
    const upstream = [frame(headersMessage(upstreamHeaders(client, routing), false, extras)), frame(bodyMessage(routing.body ?? body)), frame(responseHeaders(answer, false))];
    const u = new ExtProcStream(conn, this.#blocks.upstream, true);
    for (const [i, kind] of ["request_headers", "request_body", "response_headers"].entries()) {
      const [reply] = await checked(u, upstream[i]!, kind, "upstream");
      if (kind === "response_headers" && reply?.mode_override !== undefined) throw new Error("the upstream phase asks for the response body: the raw driver relays none");
    }
    await u.finish();
    const [headersAnswer] = await checked(r, router.responseHeaders, "response_headers", "router");
    let responseBody: Frames["responseBody"];
    if (headersAnswer?.mode_override?.response_body_mode === "STREAMED") {
      const last = answer.chunks.length - 1;
      responseBody = { frames: Buffer.concat(answer.chunks.map((chunk, i) => frame({ response_body: { body: chunk, end_of_stream: i === last } }))), count: answer.chunks.length };
      await checked(r, responseBody.frames, "response_body", "router", responseBody.count);
    }
    await r.finish();
    this.#frames = { router, responseBody, upstream };
  }

  /**
   * Sends the requests `other` probed, unchecked: the do-nothing server makes no routing decision
   * to probe, and gets the same messages as the service (the probe's signed context included).
   */
  reuse(other: RawDriver): void {
    if (other.#frames === undefined) throw new Error("probe() the other driver first");
    this.#frames = other.#frames;
  }

  /**
   * The request's frames as probe() built and checked them, each phase's concatenated in the order
   * Envoy sends them (the router phase: request headers, request body, response headers, then the
   * streamed response body's chunks if it asked for them), with the replies each stream gets: what a
   * load generator that sends a stream's whole body at once (h2load -d, bench/h2load.ts) needs.
   */
  frames(): { router: Buffer; upstream: Buffer; routerReplies: number; upstreamReplies: number } {
    const f = this.#frames;
    if (f === undefined) throw new Error("probe() first");
    const rb = f.responseBody;
    return {
      router: Buffer.concat([f.router.headers, f.router.body, f.router.responseHeaders, ...(rb === undefined ? [] : [rb.frames])]),
      upstream: Buffer.concat(f.upstream),
      routerReplies: 3 + (rb?.count ?? 0),
      upstreamReplies: f.upstream.length,
    };
  }

  /** One request (after probe()), on the next connection in turn. */
  async request(): Promise<void> {
    const f = this.#frames;
    if (f === undefined) throw new Error("probe() first");
    const i = this.#next++ % this.#connections.length;
    let conn = this.#connections[i]!;
    if (conn.opened >= STREAMS_PER_CONNECTION) {
      conn.closeWhenIdle();
      conn = this.#connections[i] = new H2Connection(this.#to);
    }
    const r = new ExtProcStream(conn, this.#blocks.router);
    await r.exchange(f.router.headers);
    await r.exchange(f.router.body);
    const u = new ExtProcStream(conn, this.#blocks.upstream);
    for (const m of f.upstream) await u.exchange(m);
    await u.finish();
    await r.exchange(f.router.responseHeaders);
    if (f.responseBody !== undefined) await r.exchange(f.responseBody.frames, f.responseBody.count);
    await r.finish();
  }

  close(): void {
    for (const c of this.#connections) c.close();
  }
}
