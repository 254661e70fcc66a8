// Anthropic Messages API: POST /v1/messages (https://docs.anthropic.com/en/api/messages and
// https://docs.anthropic.com/en/api/messages-streaming). The stream follows the documented event
// flow: message_start, content_block_start, ping, content_block_delta (text_delta) per word,
// content_block_stop, message_delta (stop_reason + cumulative usage.output_tokens), message_stop.
//
// With tools (and tool_choice not {type: "none"}) the mock calls the first tool, unless the last
// message already returns tool results: then it answers in text, as a model would after a tool
// round trip. The call is tool_use id toolu_mock_<seq> with input {"query": <first 8 words of the
// last user text>}, stop_reason tool_use; a stream sends the input as input_json_delta pieces, and
// output tokens count those pieces (one per delta event, as text counts one per word).
import { type MockContext, type MockHandler, sendError, sendJson } from "./context";
import { buildReply, inputTokensFor, isRecord, jsonPieces, lastUserText, positiveInt, toolQuery } from "./reply";
import type { SseWriter } from "./sse";

/** The first tool's name when the mock should call it, else undefined. */
function toolToCall(body: Record<string, unknown>, messages: unknown[]): string | undefined {
  const tools = body["tools"];
  if (!Array.isArray(tools) || tools.length === 0) return undefined;
  const first: unknown = tools[0];
  if (!isRecord(first) || typeof first["name"] !== "string") return undefined;
  if (isRecord(body["tool_choice"]) && body["tool_choice"]["type"] === "none") return undefined;
  const last: unknown = messages[messages.length - 1];
  if (isRecord(last) && last["role"] === "user" && Array.isArray(last["content"])) {
    if (last["content"].some((b) => isRecord(b) && b["type"] === "tool_result")) return undefined;
  }
  return first["name"];
}

/** A whole (non-streamed) Messages answer. */
function message(id: string, model: string, content: unknown[], stopReason: string, inputTokens: number, outputTokens: number): Record<string, unknown> {
  return { id, type: "message", role: "assistant", model, content, stop_reason: stopReason, stop_sequence: null, usage: { input_tokens: inputTokens, output_tokens: outputTokens } };
}

async function messageStart(sse: SseWriter, id: string, model: string, inputTokens: number): Promise<void> {
  // As in Anthropic's documented example, message_start already reports output_tokens: 1; the
  // message_delta usage is cumulative, so a client must not add the two.
  await sse.json(
    {
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: 1 },
      },
    },
    "message_start",
  );
}

async function messageEnd(sse: SseWriter, stopReason: string, outputTokens: number): Promise<void> {
  await sse.json(
    {
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: outputTokens },
    },
    "message_delta",
  );
  await sse.json({ type: "message_stop" }, "message_stop");
  sse.end();
}

async function toolUse(ctx: MockContext, body: Record<string, unknown>, model: string, name: string, messages: unknown[]): Promise<void> {
  const id = `msg_mock_${ctx.seq}`;
  const call = { type: "tool_use", id: `toolu_mock_${ctx.seq}`, name };
  const input = toolQuery(lastUserText(messages));
  const pieces = jsonPieces(JSON.stringify(input));
  const inputTokens = inputTokensFor(ctx.bodyChars);
  if (body["stream"] !== true) {
    return sendJson(ctx.res, 200, message(id, model, [{ ...call, input }], "tool_use", inputTokens, pieces.length));
  }
  const sse = ctx.openStream();
  await messageStart(sse, id, model, inputTokens);
  await sse.json({ type: "content_block_start", index: 0, content_block: { ...call, input: {} } }, "content_block_start");
  for (const piece of pieces) {
    await sse.json({ type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: piece } }, "content_block_delta");
  }
  await sse.json({ type: "content_block_stop", index: 0 }, "content_block_stop");
  await messageEnd(sse, "tool_use", pieces.length);
}

export function messages(): MockHandler {
  return async (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "anthropic", 400, "The request body is not valid JSON.");
    const body = ctx.json;
    const model = body["model"];
    if (typeof model !== "string" || model === "") return sendError(ctx.res, "anthropic", 400, "model: Field required");
    const maxTokens = positiveInt(body["max_tokens"]);
    if (maxTokens === undefined) return sendError(ctx.res, "anthropic", 400, "max_tokens: Field required");
    if (!Array.isArray(body["messages"]) || body["messages"].length === 0) {
      return sendError(ctx.res, "anthropic", 400, "messages: at least one message is required");
    }
    const tool = toolToCall(body, body["messages"]);
    if (tool !== undefined) return toolUse(ctx, body, model, tool, body["messages"]);
    const reply = buildReply({
      bodyChars: ctx.bodyChars,
      prompt: lastUserText(body["messages"]),
      streamChunks: ctx.streamChunks,
      maxTokens,
    });
    const id = `msg_mock_${ctx.seq}`;
    const stopReason = reply.truncated ? "max_tokens" : "end_turn";
    if (body["stream"] !== true) {
      return sendJson(ctx.res, 200, message(id, model, [{ type: "text", text: reply.text }], stopReason, reply.inputTokens, reply.outputTokens));
    }
    const sse = ctx.openStream();
    await messageStart(sse, id, model, reply.inputTokens);
    await sse.json({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }, "content_block_start");
    await sse.json({ type: "ping" }, "ping");
    for (const text of reply.pieces) {
      await sse.json({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }, "content_block_delta");
    }
    await sse.json({ type: "content_block_stop", index: 0 }, "content_block_stop");
    await messageEnd(sse, stopReason, reply.outputTokens);
  };
}
