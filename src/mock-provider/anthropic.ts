// Anthropic Messages API: POST /v1/messages (https://docs.anthropic.com/en/api/messages and
// https://docs.anthropic.com/en/api/messages-streaming). The stream follows the documented event
// flow: message_start, content_block_start, ping, content_block_delta (text_delta) per word,
// content_block_stop, message_delta (stop_reason + cumulative usage.output_tokens), message_stop.
import { type MockHandler, sendError, sendJson } from "./context";
import { buildReply, isRecord, lastUserText, positiveInt } from "./reply";

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
    const reply = buildReply({
      bodyChars: ctx.bodyChars,
      prompt: lastUserText(body["messages"]),
      streamChunks: ctx.streamChunks,
      maxTokens,
    });
    const id = `msg_mock_${ctx.seq}`;
    const stopReason = reply.truncated ? "max_tokens" : "end_turn";
    if (body["stream"] !== true) {
      return sendJson(ctx.res, 200, {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [{ type: "text", text: reply.text }],
        stop_reason: stopReason,
        stop_sequence: null,
        usage: { input_tokens: reply.inputTokens, output_tokens: reply.outputTokens },
      });
    }
    const sse = ctx.openStream();
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
          usage: { input_tokens: reply.inputTokens, output_tokens: 1 },
        },
      },
      "message_start",
    );
    await sse.json({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }, "content_block_start");
    await sse.json({ type: "ping" }, "ping");
    for (const text of reply.pieces) {
      await sse.json({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }, "content_block_delta");
    }
    await sse.json({ type: "content_block_stop", index: 0 }, "content_block_stop");
    await sse.json(
      {
        type: "message_delta",
        delta: { stop_reason: stopReason, stop_sequence: null },
        usage: { output_tokens: reply.outputTokens },
      },
      "message_delta",
    );
    await sse.json({ type: "message_stop" }, "message_stop");
    sse.end();
  };
}
