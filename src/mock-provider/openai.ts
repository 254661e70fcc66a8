// OpenAI-shaped endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings
// (https://platform.openai.com/docs/api-reference). Azure OpenAI deployments reuse them with the
// deployment name as the model when the body has none.
import { type MockContext, type MockHandler, nowSeconds, sendError, sendJson } from "./context";
import { buildReply, contentText, inputTokensFor, isRecord, jsonPieces, lastUserText, mockVector, type MockReply, positiveInt, toolQuery } from "./reply";

/** `model` from the body, else the Azure deployment; undefined means "reject: model required". */
function modelOf(body: Record<string, unknown>, fallback: string | undefined): string | undefined {
  return typeof body["model"] === "string" && body["model"] !== "" ? body["model"] : fallback;
}

function requestBody(ctx: MockContext): Record<string, unknown> | undefined {
  if (!isRecord(ctx.json)) {
    sendError(ctx.res, "openai", 400, "We could not parse the JSON body of your request.");
    return undefined;
  }
  return ctx.json;
}

function includeUsage(body: Record<string, unknown>): boolean {
  const opts = body["stream_options"];
  return isRecord(opts) && opts["include_usage"] === true;
}

/** chat.completion.chunk objects of one stream; with include_usage every chunk carries "usage": null except the extra last one. */
function chunkMaker(id: string, created: number, model: string, withUsage: boolean): (choices: unknown[], extra?: Record<string, unknown>) => Record<string, unknown> {
  return (choices, extra = {}) => ({ id, object: "chat.completion.chunk", created, model, choices, ...(withUsage ? { usage: null } : {}), ...extra });
}

export function chatCompletions(deployment?: string): MockHandler {
  return async (ctx) => {
    const body = requestBody(ctx);
    if (body === undefined) return;
    const model = modelOf(body, deployment);
    if (model === undefined) return sendError(ctx.res, "openai", 400, "you must provide a model parameter");
    const messages = body["messages"];
    if (!Array.isArray(messages) || messages.length === 0) {
      return sendError(ctx.res, "openai", 400, "'messages' must be a non-empty array");
    }
    const tool = toolToCall(body, messages);
    if (tool !== undefined) return toolCallReply(ctx, body, model, tool, lastUserText(messages));
    const reply = buildReply({
      bodyChars: ctx.bodyChars,
      prompt: lastUserText(messages),
      streamChunks: ctx.streamChunks,
      maxTokens: positiveInt(body["max_completion_tokens"]) ?? positiveInt(body["max_tokens"]),
    });
    const id = `chatcmpl-mock-${ctx.seq}`;
    const created = nowSeconds();
    const finishReason = reply.truncated ? "length" : "stop";
    const usage = openaiUsage(reply);
    if (body["stream"] !== true) {
      return sendJson(ctx.res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: reply.text, refusal: null },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage,
      });
    }
    const withUsage = includeUsage(body);
    const chunk = chunkMaker(id, created, model, withUsage);
    const sse = ctx.openStream();
    await sse.json(chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]));
    for (const piece of reply.pieces) {
      await sse.json(chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }]));
    }
    await sse.json(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }]));
    if (withUsage) await sse.json(chunk([], { usage }));
    await sse.send("[DONE]");
    sse.end();
  };
}

/**
 * The function to call instead of answering: the first function tool, when the request offers
 * tools, does not forbid them (tool_choice "none") and does not already carry a tool result as its
 * last message (then the model answers in text, which ends a client's tool loop).
 */
function toolToCall(body: Record<string, unknown>, messages: unknown[]): string | undefined {
  const tools = body["tools"];
  if (!Array.isArray(tools) || body["tool_choice"] === "none") return undefined;
  const last: unknown = messages[messages.length - 1];
  if (isRecord(last) && last["role"] === "tool") return undefined;
  for (const tool of tools) {
    const fn = isRecord(tool) && tool["type"] === "function" ? tool["function"] : undefined;
    if (isRecord(fn) && typeof fn["name"] === "string") return fn["name"];
  }
  return undefined;
}

/**
 * One tool call, arguments {"query": <first 8 words of the last user text>}. Output tokens are the
 * number of argument pieces streamed (as a text reply counts one token per content chunk).
 */
async function toolCallReply(ctx: MockContext, body: Record<string, unknown>, model: string, name: string, prompt: string): Promise<void> {
  const id = `chatcmpl-mock-${ctx.seq}`;
  const callId = `call_mock_${ctx.seq}`;
  const created = nowSeconds();
  const args = JSON.stringify(toolQuery(prompt));
  const pieces = jsonPieces(args);
  const input = inputTokensFor(ctx.bodyChars);
  const usage = { prompt_tokens: input, completion_tokens: pieces.length, total_tokens: input + pieces.length };
  if (body["stream"] !== true) {
    return sendJson(ctx.res, 200, {
      id,
      object: "chat.completion",
      created,
      model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: null, tool_calls: [{ id: callId, type: "function", function: { name, arguments: args } }], refusal: null },
          logprobs: null,
          finish_reason: "tool_calls",
        },
      ],
      usage,
    });
  }
  const withUsage = includeUsage(body);
  const chunk = chunkMaker(id, created, model, withUsage);
  const sse = ctx.openStream();
  const first = { role: "assistant", content: null, tool_calls: [{ index: 0, id: callId, type: "function", function: { name, arguments: "" } }] };
  await sse.json(chunk([{ index: 0, delta: first, logprobs: null, finish_reason: null }]));
  for (const piece of pieces) {
    await sse.json(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: piece } }] }, logprobs: null, finish_reason: null }]));
  }
  await sse.json(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "tool_calls" }]));
  if (withUsage) await sse.json(chunk([], { usage }));
  await sse.send("[DONE]");
  sse.end();
}

export function completions(deployment?: string): MockHandler {
  return async (ctx) => {
    const body = requestBody(ctx);
    if (body === undefined) return;
    const model = modelOf(body, deployment);
    if (model === undefined) return sendError(ctx.res, "openai", 400, "you must provide a model parameter");
    const prompt = Array.isArray(body["prompt"]) ? contentText(body["prompt"].slice(0, 1)) : contentText(body["prompt"]);
    const reply = buildReply({
      bodyChars: ctx.bodyChars,
      prompt,
      streamChunks: ctx.streamChunks,
      maxTokens: positiveInt(body["max_tokens"]),
    });
    const id = `cmpl-mock-${ctx.seq}`;
    const created = nowSeconds();
    const finishReason = reply.truncated ? "length" : "stop";
    const usage = openaiUsage(reply);
    const base = { id, object: "text_completion", created, model };
    if (body["stream"] !== true) {
      return sendJson(ctx.res, 200, {
        ...base,
        choices: [{ text: reply.text, index: 0, logprobs: null, finish_reason: finishReason }],
        usage,
      });
    }
    const sse = ctx.openStream();
    for (const piece of reply.pieces) {
      await sse.json({ ...base, choices: [{ text: piece, index: 0, logprobs: null, finish_reason: null }] });
    }
    await sse.json({ ...base, choices: [{ text: "", index: 0, logprobs: null, finish_reason: finishReason }] });
    if (includeUsage(body)) await sse.json({ ...base, choices: [], usage });
    await sse.send("[DONE]");
    sse.end();
  };
}

/** A small deterministic vector derived from the input text. */
function embeddingInputs(input: unknown): string[] | undefined {
  if (typeof input === "string") return [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  // A flat array of token ids is one input; an array of strings or of token arrays is many.
  if (input.every((v) => typeof v === "number")) return [input.join(" ")];
  return input.map((v) => (typeof v === "string" ? v : Array.isArray(v) ? v.join(" ") : String(v)));
}

export function embeddings(deployment?: string): MockHandler {
  return (ctx) => {
    const body = requestBody(ctx);
    if (body === undefined) return;
    const model = modelOf(body, deployment);
    if (model === undefined) return sendError(ctx.res, "openai", 400, "you must provide a model parameter");
    const inputs = embeddingInputs(body["input"]);
    if (inputs === undefined) return sendError(ctx.res, "openai", 400, "'input' must be a string or a non-empty array");
    const dimensions = positiveInt(body["dimensions"]) || 8;
    const base64 = body["encoding_format"] === "base64";
    const data = inputs.map((text, index) => {
      const vector = mockVector(text, dimensions);
      const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector;
      return { object: "embedding", index, embedding };
    });
    const tokens = inputTokensFor(ctx.bodyChars);
    sendJson(ctx.res, 200, { object: "list", data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  };
}

/** The `usage` object of OpenAI chat and text completions. */
function openaiUsage(reply: MockReply): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: reply.inputTokens, completion_tokens: reply.outputTokens, total_tokens: reply.inputTokens + reply.outputTokens };
}
