// OpenAI Responses API: POST /v1/responses (https://platform.openai.com/docs/api-reference/responses).
// Streaming sends `event:` + `data:` lines: response.created, one response.output_text.delta per
// word, response.completed (which carries the usage; response.incomplete when max_output_tokens hit).
import { type MockHandler, nowSeconds, sendError, sendJson } from "./context";
import { buildReply, isRecord, lastUserText, positiveInt } from "./reply";

export function responses(): MockHandler {
  return async (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "openai", 400, "We could not parse the JSON body of your request.");
    const body = ctx.json;
    const model = body["model"];
    if (typeof model !== "string" || model === "") {
      return sendError(ctx.res, "openai", 400, "you must provide a model parameter");
    }
    if (body["input"] === undefined) return sendError(ctx.res, "openai", 400, "Missing required parameter: 'input'.");
    const reply = buildReply({
      bodyChars: ctx.bodyChars,
      prompt: lastUserText(body["input"]),
      streamChunks: ctx.streamChunks,
      maxTokens: positiveInt(body["max_output_tokens"]),
    });
    const id = `resp_mock_${ctx.seq}`;
    const itemId = `msg_mock_${ctx.seq}`;
    const createdAt = nowSeconds();
    const usage = {
      input_tokens: reply.inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: reply.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: reply.inputTokens + reply.outputTokens,
    };
    const response = (status: "in_progress" | "completed" | "incomplete", done: boolean): Record<string, unknown> => ({
      id,
      object: "response",
      created_at: createdAt,
      status,
      error: null,
      incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
      model,
      output: done
        ? [
            {
              type: "message",
              id: itemId,
              status: status === "incomplete" ? "incomplete" : "completed",
              role: "assistant",
              content: [{ type: "output_text", text: reply.text, annotations: [] }],
            },
          ]
        : [],
      usage: done ? usage : null,
    });
    const finalStatus = reply.truncated ? "incomplete" : "completed";
    if (body["stream"] !== true) return sendJson(ctx.res, 200, response(finalStatus, true));

    const sse = ctx.openStream();
    let seq = 0;
    await sse.json({ type: "response.created", sequence_number: seq++, response: response("in_progress", false) }, "response.created");
    for (const delta of reply.pieces) {
      await sse.json(
        { type: "response.output_text.delta", sequence_number: seq++, item_id: itemId, output_index: 0, content_index: 0, delta },
        "response.output_text.delta",
      );
    }
    // A reply cut by max_output_tokens ends with response.incomplete instead of response.completed.
    const finalEvent = reply.truncated ? "response.incomplete" : "response.completed";
    await sse.json({ type: finalEvent, sequence_number: seq, response: response(finalStatus, true) }, finalEvent);
    sse.end();
  };
}
