// Before measuring: one both-phase request per bench case against the service, checking that it
// does the work the bench means to measure (routing, the upstream rewrite, the response body asked
// for and relayed intact), so that a quietly broken path cannot pass for a fast one.
import { bodyAfter, UPSTREAM_CLUSTER, type EnvoyLikeClient, type RequestCase } from "./envoy-client";

export async function checkService(client: EnvoyLikeClient, c: RequestCase): Promise<void> {
  const { router, upstream, routing } = await client.request("both", c);
  if (routing === undefined || router === undefined || upstream === undefined) throw new Error("service made no routing decision");
  const set = new Map(routing.set);
  if (set.get("x-llm-router-cluster") !== UPSTREAM_CLUSTER || !set.has("x-llm-router-ctx")) {
    throw new Error(`unexpected router mutations: ${JSON.stringify(routing.set)}`);
  }
  const [uh, ub] = upstream;
  const uset = new Map(uh?.request_headers?.response?.header_mutation?.set_headers?.map((x) => [x.header.key, x.header.raw_value?.toString("latin1")]));
  if (uset.get(":path") !== "/v1/chat/completions" || uset.get("authorization") !== "Bearer sk-bench-openai") {
    throw new Error(`unexpected upstream header mutations: ${JSON.stringify([...uset])}`);
  }
  const rewritten = ub?.request_body?.response?.body_mutation?.body;
  const json = rewritten ? (JSON.parse(rewritten.toString("utf8")) as { model?: unknown; stream_options?: { include_usage?: unknown } }) : undefined;
  if (json?.model !== "gpt-4o") throw new Error(`upstream phase did not rewrite the model (got ${String(json?.model)})`);
  const streaming = c.answer.contentType === "text/event-stream";
  if (streaming && json.stream_options?.include_usage !== true) throw new Error("router phase did not add stream_options.include_usage");

  const chunks = c.answer.chunks;
  if (router.responseBody.length !== chunks.length) {
    throw new Error(`service took ${router.responseBody.length} of ${chunks.length} response body chunks (expected mode_override to STREAMED)`);
  }
  // What the client receives: each chunk, or its replacement where the reply carries one. The
  // usage-only chunk of a stream is the gateway's (it added include_usage), not the client's.
  const relayed = Buffer.concat(router.responseBody.map((r, i) => r.response_body?.response?.body_mutation?.body ?? chunks[i]!));
  const expected = Buffer.concat(streaming ? chunks.filter((ch) => !ch.includes('"choices":[]')) : chunks);
  if (!relayed.equals(expected)) throw new Error(`relayed response body differs from the expected one (${relayed.length} vs ${expected.length} bytes)`);
}

/** One `data:` event of an OpenAI stream: a chat.completion.chunk (or [DONE]). */
interface OpenAiChunk {
  object?: unknown;
  choices?: Array<{ delta?: { content?: unknown } }>;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

/** Every event of an OpenAI chat stream, checked to be `data: <chat.completion.chunk>` or `data: [DONE]`. */
function openAiEvents(stream: string, what: string): Array<OpenAiChunk | "[DONE]"> {
  if (!stream.endsWith("\n\n")) throw new Error(`${what} does not end with a blank line`);
  return stream
    .slice(0, -2)
    .split("\n\n")
    .map((event) => {
      if (!event.startsWith("data: ") || event.includes("\n")) throw new Error(`${what} has an event that is not one OpenAI data line: ${event.slice(0, 200)}`);
      const data = event.slice("data: ".length);
      if (data === "[DONE]") return "[DONE]";
      const chunk = JSON.parse(data) as OpenAiChunk;
      if (chunk.object !== "chat.completion.chunk") throw new Error(`${what} has an event that is not a chat.completion.chunk: ${data.slice(0, 200)}`);
      return chunk;
    });
}

/**
 * The translated case (an OpenAI stream request on an Anthropic target): the router phase routes
 * it to the Anthropic target, the upstream phase rewrites it for the Messages API and asks for the
 * answer's body, every provider chunk's reply carries its translation (a chunk without one would
 * pass Anthropic's bytes on), what Envoy passes on to the router phase is OpenAI chunks ending in
 * `data: [DONE]` (the usage chunk included: the router phase added include_usage), the router phase
 * asks for it and cuts the usage chunk out (it read the usage there), and the client gets the same
 * text as from the untranslated answer, ending in `data: [DONE]`.
 */
export async function checkTranslated(client: EnvoyLikeClient, c: RequestCase, expectedText: string): Promise<void> {
  const destination = c.destination;
  if (destination?.clientContentType === undefined) throw new Error("checkTranslated: not a translated case");
  const { router, upstream, upstreamBody, passedOn, routing } = await client.request("both", c);
  if (routing === undefined || router === undefined || upstream === undefined) throw new Error("service made no routing decision");
  const set = new Map(routing.set);
  if (set.get("x-llm-router-cluster") !== destination.cluster) throw new Error(`translated request routed to ${set.get("x-llm-router-cluster")}, expected ${destination.cluster}`);
  const [uh, ub, urh] = upstream;
  const uset = new Map(uh?.request_headers?.response?.header_mutation?.set_headers?.map((x) => [x.header.key, x.header.raw_value?.toString("latin1")]));
  if (uset.get(":path") !== "/v1/messages" || uset.get("x-api-key") !== "sk-ant-bench" || !uset.has("anthropic-version")) {
    throw new Error(`unexpected upstream header mutations for Anthropic: ${JSON.stringify([...uset].filter(([k]) => k !== "x-api-key"))}`);
  }
  const rewritten = ub?.request_body?.response?.body_mutation?.body;
  const json = rewritten ? (JSON.parse(rewritten.toString("utf8")) as { model?: unknown; stream?: unknown; messages?: unknown; max_tokens?: unknown }) : undefined;
  if (json?.model !== "claude-sonnet-4-5" || json.stream !== true || !Array.isArray(json.messages) || typeof json.max_tokens !== "number") {
    throw new Error(`upstream phase did not translate the request to an Anthropic Messages stream request: ${rewritten?.toString("utf8").slice(0, 200)}`);
  }
  if (urh?.mode_override?.response_body_mode !== "STREAMED") throw new Error("upstream phase did not ask for the translated answer's body");
  const contentType = urh.response_headers?.response?.header_mutation?.set_headers?.find((h) => h.header.key === "content-type")?.header.raw_value?.toString("latin1");
  if (contentType !== destination.clientContentType) throw new Error(`upstream phase set content-type ${contentType}, expected ${destination.clientContentType}`);
  if (upstreamBody?.length !== c.answer.chunks.length || passedOn === undefined) throw new Error(`upstream phase answered ${upstreamBody?.length ?? 0} of ${c.answer.chunks.length} response body chunks`);
  const untranslated = upstreamBody.findIndex((r) => r.response_body?.response?.body_mutation === undefined);
  if (untranslated !== -1) throw new Error(`upstream phase left provider chunk ${untranslated} untranslated: ${c.answer.chunks[untranslated]!.toString("utf8").slice(0, 200)}`);

  const translated = Buffer.concat(passedOn).toString("utf8");
  const events = openAiEvents(translated, "the translated stream");
  if (events.at(-1) !== "[DONE]" || events.indexOf("[DONE]") !== events.length - 1) throw new Error("the translated stream does not end with data: [DONE] (once)");
  const usage = events.find((e): e is OpenAiChunk => e !== "[DONE]" && e.choices?.length === 0)?.usage;
  if (typeof usage?.prompt_tokens !== "number" || typeof usage.completion_tokens !== "number") throw new Error("the translated stream has no usage chunk (include_usage was added)");

  if (router.responseBody.length !== passedOn.length) {
    throw new Error(`router phase took ${router.responseBody.length} of ${passedOn.length} translated chunks (expected mode_override to STREAMED)`);
  }
  const relayed = Buffer.concat(router.responseBody.map((r, i) => bodyAfter(r, passedOn[i]!))).toString("utf8");
  const clientEvents = openAiEvents(relayed, "the client's stream");
  if (clientEvents.at(-1) !== "[DONE]") throw new Error("the client's stream does not end with data: [DONE]");
  if (clientEvents.some((e) => e !== "[DONE]" && e.choices?.length === 0)) throw new Error("router phase did not cut out the usage chunk (it reads usage there)");
  const text = clientEvents.map((e) => (e === "[DONE]" ? "" : (e.choices?.map((ch) => (typeof ch.delta?.content === "string" ? ch.delta.content : "")).join("") ?? ""))).join("");
  if (text !== expectedText) throw new Error(`the client's translated stream carries other text than the provider's (${text.length} vs ${expectedText.length} characters)`);
}
