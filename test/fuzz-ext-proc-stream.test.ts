// Fuzzing the ext_proc stream handler as a whole: the real service (startTestService, port 0) over
// real gRPC with Envoy's own protos, fed generated sequences of ProcessingRequest messages for both
// phases: valid requests with random answers behind them (provider streams of every dialect, odd
// statuses and headers), valid prefixes followed by messages in the wrong order, and anything at
// all (no oneof, unknown phases, nameless headers, random end_of_stream, cancelled streams). Every
// stream ends with its replies or a clean gRPC status within a deadline, never INTERNAL (a handler
// threw) and never a hang; every reply keeps Envoy's mutation rules and no provider credential goes
// back towards the client; and a healthy request running alongside each sequence still routes.
// Each case is a whole gRPC stream, so this suite runs far fewer cases than the pure ones.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { EXT_PROC_ATTRIBUTES_KEY } from "../src/extproc/codec";
import { METADATA_CONTEXT_KEY, METADATA_NAMESPACE, TARGET_ATTRIBUTE } from "../src/phases/gateway-headers";
import { CLUSTER_ATTRIBUTE } from "../src/phases/upstream-phase";
import { hostileKey, jsonTree, renderJson } from "./support/fuzz-arbitraries";
import { FuzzSuite } from "./support/fuzz-budget";
import { checkMutation, type EncodedMutation } from "./support/fuzz-mutations";
import { CLIENT_KEYS, fuzzPolicyDocument, FUZZ_ENV, FUZZ_ROUTE_HEADER, PROVIDER_SECRETS, ROUTED_MODELS } from "./support/fuzz-service";
import { anthropicAnswer, answerModel, bedrockAnswer, bedrockFrames, geminiAnswer, openAiAnswer, type AnswerModel } from "./support/fuzz-translate-arbitraries";
import { bodyMessage, ExtProcTestClient, headersMessage, setHeaders, type EnvoyResponse } from "./support/ext-proc-client";
import { HealthClient } from "./support/health-client";
import { startTestService, type TestService } from "./support/service";

const suite = new FuzzSuite("stream");

/** A stream that has neither answered every message nor ended by then is a hang. */
const STREAM_DEADLINE_MS = 5_000;

let svc: TestService;
let client: ExtProcTestClient;

/** A routed request's context, as the router phase handed it to Envoy: what the upstream phase starts from. */
interface Routed {
  model: string;
  path: string;
  cluster: string;
  chain: string[];
  ctx: string;
}
const routed: Routed[] = [];
const POLICY = fuzzPolicyDocument() as { targets: Record<string, { provider: string }>; providers: Record<string, { type: string }> };

const CHAT_HEADERS = { ":method": "POST", ":authority": "gw", ":scheme": "https", "content-type": "application/json", authorization: "Bearer sk-demo-alice" };
const bodyFor = (model: string, path: string, stream = false): string =>
  JSON.stringify(path === "/v1/embeddings" ? { model, input: "hi" } : path === "/v1/messages" ? { model, max_tokens: 16, messages: [{ role: "user", content: "hi" }], stream } : path === "/v1/responses" ? { model, input: "hi", stream } : path === "/v1/completions" ? { model, prompt: "hi", stream } : { model, messages: [{ role: "user", content: "hi" }], stream });

/** One router-phase request that must route: the health probe of the service under fuzzing. */
async function healthyRequest(model = "fast"): Promise<void> {
  const s = client.open("router");
  const h = await s.send(headersMessage({ ...CHAT_HEADERS, ":path": "/v1/chat/completions" }));
  assert.equal(h.immediate_response, undefined, "a healthy request is not refused");
  const b = await s.send(bodyMessage(bodyFor(model, "/v1/chat/completions")));
  s.end();
  assert.equal(setHeaders(b.request_body?.response)["x-llm-router-cluster"], "tgt_openai-gpt-4o-mini", "a healthy request routes");
}

before(async () => {
  svc = await startTestService(fuzzPolicyDocument(), FUZZ_ENV);
  client = new ExtProcTestClient(svc.address);
  for (const [model, path] of ROUTED_MODELS) {
    const s = client.open("router");
    const h = await s.send(headersMessage({ ...CHAT_HEADERS, ":path": path, ...(path === "/v1/messages" ? { "anthropic-version": "2023-06-01" } : {}) }));
    if (h.immediate_response) continue;
    const b = await s.send(bodyMessage(bodyFor(model, path)));
    s.end();
    const set = setHeaders(b.request_body?.response);
    const ctx = b.dynamic_metadata?.fields?.[METADATA_NAMESPACE]?.structValue?.fields?.[METADATA_CONTEXT_KEY]?.stringValue;
    const cluster = set["x-llm-router-cluster"];
    if (ctx === undefined || cluster === undefined) continue;
    const chain = (JSON.parse(Buffer.from(ctx.split(".")[1]!, "base64url").toString("utf8")) as { ch: string[] }).ch;
    routed.push({ model, path, cluster, chain, ctx });
  }
  assert.ok(routed.length >= 10, `the fuzz policy routes its models (${routed.map((r) => r.model).join(", ")})`);
});

after(async () => {
  client.close();
  await svc.stop();
});

// ---- messages ----

type Message = Record<string, unknown>;

const headerName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(":path", ":method", ":status", "content-type", "content-encoding", "authorization", "x-api-key", "x-request-id", "anthropic-version", "x-llm-router-ctx", "x-llm-router-cluster", "x-llm-router-target", "x-llm-router-attempt", FUZZ_ROUTE_HEADER, "x-envoy-max-retries", "retry-after", "retry-after-ms", "cache-control") },
  { weight: 2, arbitrary: fc.oneof(fc.stringMatching(/^[a-z-]{1,12}$/), hostileKey.filter((k) => k !== "")) },
  // Envoy never sends a nameless header: a malformed message, rarely.
  { weight: 1, arbitrary: fc.constant("") },
);
const headerValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("POST", "GET", "/v1/chat/completions", "/v1/messages", "/v1/models", "application/json", "text/event-stream", "gzip", "Bearer sk-demo-alice", "sk-demo-bob", "200", "429", "503", "1", "tgt_openai-gpt-4o-mini", "openai-gpt-4o-mini", "v1.x.y") },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b).toString("latin1")) },
);
const headerList = fc.array(fc.tuple(headerName, headerValue, fc.constantFrom("raw_value", "raw_value", "value")), { maxLength: 8 });

function headerMap(list: ReadonlyArray<readonly [string, string, string]>): object {
  return { headers: list.map(([key, v, field]) => (field === "value" ? { key, value: v } : { key, raw_value: Buffer.from(v, "latin1") })) };
}

const struct = jsonTree(2).map((t) => {
  const toValue = (v: unknown): object =>
    v === null ? { nullValue: "NULL_VALUE" } : typeof v === "number" ? { numberValue: v } : typeof v === "string" ? { stringValue: v } : typeof v === "boolean" ? { boolValue: v } : Array.isArray(v) ? { listValue: { values: v.map(toValue) } } : { structValue: { fields: Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, toValue(x)])) } };
  const v = JSON.parse(renderJson(t)) as unknown;
  return { fields: Object.fromEntries(Object.entries(typeof v === "object" && v !== null && !Array.isArray(v) ? v : { v }).map(([k, x]) => [k, toValue(x)])) };
});

/** Bodies that once made a phase throw out of its stream (regressions), among the generated ones. */
const HOSTILE_BODIES = [
  // 3,000 levels of nesting: re-serialised for stream_options, it overflowed JSON.stringify.
  `{"model":"fast","stream":true,"stream_options":{},"messages":[{"role":"user","content":"hi"}],"x":${"[".repeat(3_000)}${"]".repeat(3_000)}}`,
  // A value whose own toString is no function, where a translation called String() on it.
  '{"model":"gemini","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":{"toString":1}}}]}',
  '{"model":"gpt-4o-mini-msg","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":{"toString":1}}]}]}',
  '{"model":"bedrock","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"tool","tool_call_id":{"toString":1},"content":"x"}]}',
];

const bodyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.constantFrom(...ROUTED_MODELS.map(([m, p]) => bodyFor(m, p)), "{}", "", "[]", '{"model":"smart","stream":true,"stream_options":{},"messages":[]}', ...HOSTILE_BODIES).map((s) => Buffer.from(s)),
  jsonTree(3).map((t) => Buffer.from(renderJson(t))),
);

/** Any single ProcessingRequest, in any place of a stream. */
const anyMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ kind: fc.constantFrom("request_headers", "response_headers"), list: headerList, eos: fc.boolean() }).map(({ kind, list, eos }) => ({ [kind]: { headers: headerMap(list), end_of_stream: eos } })),
  fc.record({ kind: fc.constantFrom("request_body", "response_body"), body: bodyBytes, eos: fc.boolean() }).map(({ kind, body, eos }) => ({ [kind]: { body, end_of_stream: eos } })),
  fc.record({ kind: fc.constantFrom("request_trailers", "response_trailers"), list: headerList }).map(({ kind, list }) => ({ [kind]: { trailers: headerMap(list) } })),
  fc.constant({}),
  fc.record({ list: headerList, attrs: struct, meta: struct }).map(({ list, attrs, meta }) => ({ request_headers: { headers: headerMap(list) }, attributes: { [EXT_PROC_ATTRIBUTES_KEY]: attrs }, metadata_context: { filter_metadata: { [METADATA_NAMESPACE]: meta } } })),
);

/** A provider's answer in its own dialect (the upstream phase's input), or the client's (the router phase's). */
function answerBytes(dialect: string, a: AnswerModel, stream: boolean): Buffer {
  const render = dialect === "anthropic" ? anthropicAnswer : dialect === "gemini" ? geminiAnswer : dialect === "bedrock" ? bedrockAnswer : openAiAnswer;
  const r = render(a);
  return stream ? r.stream : Buffer.from(JSON.stringify(r.json));
}

/** An answer cut into response_body messages (the last one ends the stream, or not). */
const responseBody = fc.tuple(answerModel, fc.boolean(), fc.array(fc.nat(), { maxLength: 4 }), fc.boolean(), fc.option(bedrockFrames, { nil: undefined }));

function bodyMessages(bytes: Buffer, cuts: number[], endLast: boolean): Message[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const out: Message[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    out.push({ response_body: { body: bytes.subarray(at, p), end_of_stream: false } });
    at = p;
  }
  if (endLast) (out[out.length - 1]!["response_body"] as { end_of_stream: boolean }).end_of_stream = true;
  return out;
}

/** Response headers as Envoy passes them on: values without NUL, CR or LF (its codecs refuse those). */
const responseHeaders = fc.record({
  status: fc.constantFrom("200", "200", "200", "429", "500", "529", "404", "abc", ""),
  sse: fc.boolean(),
  extra: headerList.map((l) => l.filter(([k]) => k !== "").map(([k, v, f]) => [k, v.replace(/[\0\r\n]/g, ""), f] as const)),
  eos: fc.boolean(),
});

/** undefined mostly, a value one time in `odds` + 1. */
function rarely<T>(a: fc.Arbitrary<T>, odds = 7): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: odds, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
}

interface Sequence {
  phase: string;
  messages: Message[];
  /** Cancel the stream before this message (Envoy resetting it); undefined: half-close after the last. */
  cancelAt: number | undefined;
}

/** A routed request through the router phase, then an answer and anything after it. */
const routerSequence: fc.Arbitrary<Sequence> = fc
  .record({ which: fc.nat(), key: fc.constantFrom(...CLIENT_KEYS, "nope"), stream: fc.boolean(), rh: responseHeaders, body: responseBody, tail: rarely(fc.array(anyMessage, { minLength: 1, maxLength: 2 }), 2), cancelAt: rarely(fc.nat(8)) })
  .map((g): Sequence => {
    const [model, path] = ROUTED_MODELS[g.which % ROUTED_MODELS.length]!;
    const target = routed.find((r) => r.model === model && r.path === path)?.chain[0] ?? "openai-gpt-4o-mini";
    const [a, stream, cuts, endLast] = g.body;
    const messages: Message[] = [
      headersMessage({ ...CHAT_HEADERS, ":path": path, authorization: `Bearer ${g.key}` }) as Message,
      bodyMessage(bodyFor(model, path, g.stream)) as Message,
      { response_headers: { headers: headerMap([[":status", g.rh.status, "raw_value"], ["content-type", g.rh.sse ? "text/event-stream" : "application/json", "raw_value"], ["x-llm-router-target", target, "raw_value"], ...g.rh.extra]), end_of_stream: g.rh.eos } },
      ...bodyMessages(answerBytes(path === "/v1/messages" ? "anthropic" : "openai", a, stream), cuts, endLast),
      ...(g.tail ?? []),
    ];
    return { phase: "router", messages, cancelAt: g.cancelAt };
  });

/** An attempt of a routed request through the upstream phase: context, body, the provider's answer. */
const upstreamSequence: fc.Arbitrary<Sequence> = fc
  .record({ which: fc.nat(), targetPick: fc.nat(), wrongTarget: fc.boolean(), viaHeader: fc.boolean(), body: rarely(bodyBytes, 3), rh: responseHeaders, answer: responseBody, tail: rarely(fc.array(anyMessage, { minLength: 1, maxLength: 2 }), 2), cancelAt: rarely(fc.nat(8)) })
  .map((g): Sequence => {
    const r = routed[g.which % routed.length]!;
    const target = g.wrongTarget ? "not-in-chain" : r.chain[g.targetPick % r.chain.length]!;
    const type = POLICY.providers[POLICY.targets[target]?.provider ?? "openai"]?.type ?? "openai";
    const [a, stream, cuts, endLast, frames] = g.answer;
    const attributes = { [EXT_PROC_ATTRIBUTES_KEY]: { fields: { [CLUSTER_ATTRIBUTE]: { stringValue: r.cluster }, [TARGET_ATTRIBUTE]: { stringValue: target } } } };
    const ctx: Record<string, string> = g.viaHeader ? { "x-llm-router-ctx": r.ctx } : {};
    const metadata = g.viaHeader ? {} : { metadata_context: { filter_metadata: { [METADATA_NAMESPACE]: { fields: { [METADATA_CONTEXT_KEY]: { stringValue: r.ctx } } } } } };
    const answer = type === "bedrock" && frames !== undefined && stream ? frames : answerBytes(type === "azure-openai" || type === "openai-compatible" ? "openai" : type, a, stream);
    const messages: Message[] = [
      headersMessage({ ...CHAT_HEADERS, ":path": r.path, "x-envoy-attempt-count": "1", ...ctx }, false, { attributes, ...metadata }) as Message,
      { request_body: { body: g.body ?? Buffer.from(bodyFor(r.model, r.path, stream)), end_of_stream: true } },
      { response_headers: { headers: headerMap([[":status", g.rh.status, "raw_value"], ["content-type", g.rh.sse ? "text/event-stream" : "application/json", "raw_value"], ...g.rh.extra]), end_of_stream: g.rh.eos } },
      ...bodyMessages(answer, cuts, endLast),
      ...(g.tail ?? []),
    ];
    return { phase: "upstream", messages, cancelAt: g.cancelAt };
  });

/** Anything: any phase name, any messages in any order. */
const randomSequence: fc.Arbitrary<Sequence> = fc.record({
  phase: fc.oneof({ weight: 6, arbitrary: fc.constantFrom("router", "upstream") }, { weight: 1, arbitrary: fc.constantFrom("", "ROUTER", "x") }),
  messages: fc.array(anyMessage, { minLength: 0, maxLength: 8 }),
  cancelAt: rarely(fc.nat(8)),
});

/** A valid prefix with its messages shuffled or repeated: out of order. */
const disorderedSequence: fc.Arbitrary<Sequence> = fc.tuple(fc.oneof(routerSequence, upstreamSequence), fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 3 }), fc.boolean()).map(([s, swaps, duplicate]) => {
  const messages = [...s.messages];
  for (const [i, j] of swaps) {
    const a = i % messages.length;
    const b = j % messages.length;
    [messages[a], messages[b]] = [messages[b]!, messages[a]!];
  }
  if (duplicate) messages.splice(swaps[0]![0] % messages.length, 0, messages[swaps[0]![1] % messages.length]!);
  return { ...s, messages };
});

const sequence = fc.oneof({ weight: 3, arbitrary: routerSequence }, { weight: 3, arbitrary: upstreamSequence }, { weight: 2, arbitrary: disorderedSequence }, { weight: 2, arbitrary: randomSequence });

// ---- running one stream ----

interface Outcome {
  status: grpc.StatusObject;
  replies: EnvoyResponse[];
  cancelled: boolean;
  /** Messages sent before the stream was half-closed. */
  sent: number;
}

/**
 * Sends the sequence: pipelined (every message at once, as Envoy does with streamed chunks), or in
 * lockstep as Envoy does for headers and buffered bodies (each message after the previous reply,
 * nothing after an immediate response). Resolves with the stream's status, or fails at the deadline.
 */
function runStream(s: Sequence, lockstep = false): Promise<Outcome> {
  const md = new grpc.Metadata();
  md.set("x-llm-router-phase", s.phase);
  const call = client.client.Process(md);
  const replies: EnvoyResponse[] = [];
  let ended: grpc.StatusObject | undefined;
  let wake: (() => void) | undefined;
  const changed = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on("data", (r: EnvoyResponse) => {
    replies.push(r);
    changed();
  });
  // The status event carries the outcome; an error event without a listener would throw.
  call.on("error", () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) =>
    call.on("status", (st: grpc.StatusObject) => {
      ended = st;
      changed();
      resolve(st);
    }),
  );
  const answered = () => replies.filter((r) => r.response !== "override_message_timeout").length;
  let cancelled = false;
  const send = async () => {
    for (let i = 0; i < s.messages.length; i++) {
      if (s.cancelAt === i) {
        cancelled = true;
        call.cancel();
        return;
      }
      call.write(s.messages[i]!);
      if (!lockstep) continue;
      while (answered() <= i && ended === undefined) await new Promise<void>((resolve) => (wake = resolve));
      if (ended !== undefined || replies.some((r) => r.immediate_response)) break;
    }
    call.end();
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`the stream did not end within ${STREAM_DEADLINE_MS} ms (${replies.length} replies to ${s.messages.length} messages)`));
    }, STREAM_DEADLINE_MS);
  });
  return Promise.race([send().then(() => status), deadline])
    .then((st) => ({ status: st, replies, cancelled, sent: lockstep ? Math.min(s.messages.length, answered()) : s.messages.length }))
    .finally(() => clearTimeout(timer));
}

/** The header mutation of a reply, by the kind of message it answers. */
function mutationOf(r: EnvoyResponse): { kind: string; m: EncodedMutation | undefined } {
  if (r.immediate_response) return { kind: "immediate_response", m: r.immediate_response.headers as EncodedMutation | undefined };
  const kind = r.response ?? "";
  const body = (r as Record<string, unknown>)[kind] as { response?: { header_mutation?: EncodedMutation }; header_mutation?: EncodedMutation } | undefined;
  return { kind, m: body?.response?.header_mutation ?? body?.header_mutation };
}

/** How the streams ended, by gRPC status (shown in the summary: the mix says what was exercised). */
const outcomes = new Map<string, number>();

function checkOutcome(s: Sequence, o: Outcome): void {
  const code = o.status.code;
  const key = `${s.phase === "router" || s.phase === "upstream" ? s.phase : "other"} ${o.sent < s.messages.length && !o.cancelled ? "lockstep " : ""}${grpc.status[code]}${o.replies.some((r) => r.immediate_response) ? " (immediate)" : ""}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  const allowed = [grpc.status.OK, grpc.status.INVALID_ARGUMENT, ...(o.cancelled ? [grpc.status.CANCELLED] : [])];
  assert.ok(allowed.includes(code), `stream ended with ${grpc.status[code]}: ${o.status.details} (a handler threw, or the stream failed)`);
  const answers = o.replies.filter((r) => r.response !== "override_message_timeout");
  assert.ok(answers.length <= o.sent, "at most one reply per message");
  if (code === grpc.status.OK && !o.cancelled) assert.equal(answers.length, o.sent, "a stream that ends well answered every message");
  for (const r of o.replies) {
    const { kind, m } = mutationOf(r);
    checkMutation(m, s.phase === "upstream" ? "upstream" : "router", kind);
    // Towards the client: everything the router phase says, and the upstream phase's answers.
    const clientBound = s.phase !== "upstream" || kind.startsWith("response_") || kind === "immediate_response";
    if (clientBound) {
      const text = JSON.stringify(r, (_k, v: unknown) => (isBufferJson(v) ? Buffer.from(v.data).toString("latin1") : v));
      for (const secret of PROVIDER_SECRETS) assert.ok(!text.includes(secret), `a provider credential in a ${kind} reply of the ${s.phase} phase`);
    }
  }
}

function isBufferJson(v: unknown): v is { type: "Buffer"; data: number[] } {
  return typeof v === "object" && v !== null && (v as { type?: unknown }).type === "Buffer" && Array.isArray((v as { data?: unknown }).data);
}

describe("fuzz: the ext_proc stream handler against the real service", () => {
  it("every generated stream ends cleanly within its deadline, and a healthy request alongside still routes", { timeout: 600_000 }, async (t) => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        sequence,
        fc.boolean(),
        suite.countedAsync(async (s, lockstep) => {
          const [outcome] = await Promise.all([runStream(s, lockstep), healthyRequest()]);
          checkOutcome(s, outcome);
          if (++runs % 100 === 0) assert.equal(await new HealthClient(svc.address).check(""), "SERVING");
        }, STREAM_DEADLINE_MS + 1_000),
      ),
      suite.params(600),
    );
    // After everything: the service still serves both phases.
    await healthyRequest();
    assert.equal(await new HealthClient(svc.address).check(""), "SERVING");
    t.diagnostic(`stream outcomes: ${[...outcomes].sort().map(([k, n]) => `${k}: ${n}`).join(", ")}`);
  });

  it("regression bodies end cleanly through both phases", async () => {
    for (const body of HOSTILE_BODIES) {
      const model = (JSON.parse(body.replace(/\[+\]+/, "[]")) as { model: string }).model;
      const r = routed.find((x) => x.model === model) ?? routed[0]!;
      const attributes = { [EXT_PROC_ATTRIBUTES_KEY]: { fields: { [CLUSTER_ATTRIBUTE]: { stringValue: r.cluster }, [TARGET_ATTRIBUTE]: { stringValue: r.chain[0]! } } } };
      const metadata = { metadata_context: { filter_metadata: { [METADATA_NAMESPACE]: { fields: { [METADATA_CONTEXT_KEY]: { stringValue: r.ctx } } } } } };
      for (const s of [
        { phase: "router", messages: [headersMessage({ ...CHAT_HEADERS, ":path": r.path }) as Message, bodyMessage(body) as Message], cancelAt: undefined },
        { phase: "upstream", messages: [headersMessage({ ...CHAT_HEADERS, ":path": r.path }, false, { attributes, ...metadata }) as Message, bodyMessage(body) as Message], cancelAt: undefined },
      ]) {
        const o = await runStream(s);
        checkOutcome(s, o);
        assert.equal(o.status.code, grpc.status.OK, `${s.phase}: ${o.status.details}`);
      }
    }
  });
});

suite.summary();
