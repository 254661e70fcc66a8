// Before measuring: one both-phase request per bench case against the service, checking that it
// does the work the bench means to measure (routing, the upstream rewrite, the response body asked
// for and relayed intact), so that a quietly broken path cannot pass for a fast one.
import { UPSTREAM_CLUSTER, type EnvoyLikeClient, type RequestCase } from "./envoy-client";

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
