// AWS Bedrock Runtime Converse API: POST /model/{modelId}/converse and /converse-stream
// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html).
// The stream is a binary AWS event stream: messageStart, contentBlockStart (tool use only),
// contentBlockDelta per word (or per piece of the tool input JSON), contentBlockStop, messageStop,
// then metadata with the usage. Like Bedrock, the mock refuses keys Converse does not know (a
// translated body that still carried `model` or `stream` would be a bug) and turns that do not
// alternate.
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import { type MockContext, type MockHandler, sendError, sendJson } from "./context";
import { buildReply, isRecord, jsonPieces, lastUserText, positiveInt, toolQuery } from "./reply";

const codec = new EventStreamCodec(toUtf8, fromUtf8);

const CONVERSE_KEYS = new Set([
  "messages",
  "system",
  "inferenceConfig",
  "toolConfig",
  "guardrailConfig",
  "additionalModelRequestFields",
  "additionalModelResponseFieldPaths",
  "promptVariables",
  "requestMetadata",
  "performanceConfig",
  "serviceTier",
]);

/** One ConverseStream event as an encoded frame. */
export function converseFrame(eventType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "event" },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

/** Why Bedrock would answer 400 to this body, or undefined. */
function validate(body: Record<string, unknown>, modelId: string): string | undefined {
  if (modelId === "") return "The provided model identifier is invalid.";
  for (const key of Object.keys(body)) if (!CONVERSE_KEYS.has(key)) return `extraneous key [${key}] is not permitted`;
  const messages = body["messages"];
  if (!Array.isArray(messages) || messages.length === 0) return "A conversation must start with a user message.";
  let expected = "user";
  for (const m of messages) {
    if (!isRecord(m) || m["role"] !== expected) return "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";
    if (!Array.isArray(m["content"]) || m["content"].length === 0) return "The content field in the Message object is empty.";
    expected = expected === "user" ? "assistant" : "user";
  }
  return undefined;
}

/** The tool the mock calls: the named one of toolChoice.tool, else the first; none after a tool result. */
function toolToCall(body: Record<string, unknown>): string | undefined {
  const config = body["toolConfig"];
  if (!isRecord(config) || !Array.isArray(config["tools"])) return undefined;
  const messages = body["messages"] as unknown[];
  const last = messages[messages.length - 1];
  if (isRecord(last) && Array.isArray(last["content"]) && last["content"].some((b) => isRecord(b) && b["toolResult"] !== undefined)) return undefined;
  const choice = config["toolChoice"];
  if (isRecord(choice) && isRecord(choice["tool"]) && typeof choice["tool"]["name"] === "string") return choice["tool"]["name"];
  for (const t of config["tools"]) {
    if (isRecord(t) && isRecord(t["toolSpec"]) && typeof t["toolSpec"]["name"] === "string") return t["toolSpec"]["name"];
  }
  return undefined;
}

interface Answer {
  /** Text pieces (one per word), or undefined for a tool call. */
  pieces: readonly string[] | undefined;
  tool: { toolUseId: string; name: string; input: { query: string } } | undefined;
  stopReason: string;
  usage: { inputTokens: number; outputTokens: number; totalTokens: number };
}

function answer(ctx: MockContext, body: Record<string, unknown>): Answer {
  const prompt = lastUserText(body["messages"]);
  const config = body["inferenceConfig"];
  const maxTokens = isRecord(config) ? positiveInt(config["maxTokens"]) : undefined;
  const reply = buildReply({ bodyChars: ctx.bodyChars, prompt, streamChunks: ctx.streamChunks, maxTokens });
  const name = toolToCall(body);
  if (name !== undefined) {
    const input = toolQuery(prompt);
    // Tool input tokens, by the same chars/4 rule as the input count.
    const outputTokens = Math.max(1, Math.ceil(JSON.stringify(input).length / 4));
    return {
      pieces: undefined,
      tool: { toolUseId: `tooluse_mock_${ctx.seq}`, name, input },
      stopReason: "tool_use",
      usage: { inputTokens: reply.inputTokens, outputTokens, totalTokens: reply.inputTokens + outputTokens },
    };
  }
  return {
    pieces: reply.pieces,
    tool: undefined,
    stopReason: reply.truncated ? "max_tokens" : "end_turn",
    usage: { inputTokens: reply.inputTokens, outputTokens: reply.outputTokens, totalTokens: reply.inputTokens + reply.outputTokens },
  };
}

export function bedrockConverse(stream: boolean, modelId: string): MockHandler {
  return async (ctx) => {
    if (!isRecord(ctx.json)) return sendError(ctx.res, "bedrock", 400, "The request body is not valid JSON.");
    const body = ctx.json;
    const invalid = validate(body, modelId);
    if (invalid !== undefined) return sendError(ctx.res, "bedrock", 400, invalid);
    const a = answer(ctx, body);
    const metrics = { latencyMs: 0 };
    if (!stream) {
      const content = a.tool !== undefined ? [{ toolUse: a.tool }] : [{ text: (a.pieces ?? []).join("") }];
      return sendJson(ctx.res, 200, { output: { message: { role: "assistant", content } }, stopReason: a.stopReason, usage: a.usage, metrics });
    }
    const out = ctx.openStream("application/vnd.amazon.eventstream");
    await out.frame(converseFrame("messageStart", { role: "assistant" }));
    if (a.tool !== undefined) {
      const { toolUseId, name, input } = a.tool;
      await out.frame(converseFrame("contentBlockStart", { contentBlockIndex: 0, start: { toolUse: { toolUseId, name } } }));
      for (const piece of jsonPieces(JSON.stringify(input))) {
        await out.frame(converseFrame("contentBlockDelta", { contentBlockIndex: 0, delta: { toolUse: { input: piece } } }));
      }
    } else {
      for (const text of a.pieces ?? []) await out.frame(converseFrame("contentBlockDelta", { contentBlockIndex: 0, delta: { text } }));
    }
    await out.frame(converseFrame("contentBlockStop", { contentBlockIndex: 0 }));
    await out.frame(converseFrame("messageStop", { stopReason: a.stopReason }));
    await out.frame(converseFrame("metadata", { usage: a.usage, metrics }));
    out.end();
  };
}
