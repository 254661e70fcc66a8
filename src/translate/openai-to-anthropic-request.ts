// OpenAI chat-completions request -> Anthropic Messages request
// (https://platform.openai.com/docs/api-reference/chat/create, https://docs.anthropic.com/en/api/messages).
//
// check() rejects what Anthropic cannot express faithfully, so request() can assume a well-formed
// body; request() still never throws on odd values, it skips them.
import type { JsonObject } from "../api/request-body";
import type { TranslatedRequest, TranslationTarget } from "./types";
import { isRecord } from "../api/json";

type Block = Record<string, unknown>;
interface Turn {
  role: "user" | "assistant";
  /** A plain string while the turn is one unmerged string message (the common case stays compact). */
  content: string | Block[];
}

const present = (v: unknown): boolean => v !== undefined && v !== null;

/**
 * Fields request() reads, or check() vetted as equivalent to their absence. Every other field is
 * dropped and reported: the ones OpenAI documents (presence_penalty, frequency_penalty, logit_bias,
 * seed, service_tier, store, metadata, prediction, reasoning_effort, verbosity, prompt_cache_key)
 * nudge sampling or configure OpenAI-side storage and billing, so the answer keeps its meaning.
 */
const HANDLED = new Set([
  "model",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "stop",
  "temperature",
  "top_p",
  "stream",
  "stream_options",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "user",
  "safety_identifier",
  "n",
  "logprobs",
  "top_logprobs",
  "modalities",
  "audio",
  "response_format",
  "web_search_options",
  "functions",
  "function_call",
]);

const DATA_URL = /^data:([^;,]+);base64,/;

/** Tool call arguments as Anthropic's `input` object, or undefined when they are not a JSON object. */
function parseArguments(args: unknown): Record<string, unknown> | undefined {
  if (args === undefined || args === null || args === "") return {};
  if (typeof args !== "string") return undefined;
  try {
    const v: unknown = JSON.parse(args);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function checkPart(part: unknown, where: string, role: string): string | undefined {
  if (typeof part === "string") return undefined;
  if (!isRecord(part)) return `${where} must be an object.`;
  const type = part["type"];
  if (type === "text" || (type === "refusal" && role === "assistant")) return undefined;
  if (role === "user" && type === "image_url") {
    const url = isRecord(part["image_url"]) ? part["image_url"]["url"] : part["image_url"];
    if (typeof url !== "string") return `${where}.image_url.url must be a string.`;
    if (DATA_URL.test(url) || /^https?:\/\//i.test(url)) return undefined;
    return `${where}.image_url.url must be an http(s) URL or a base64 data: URL for this model.`;
  }
  if (role === "user" && type === "file") {
    const file = part["file"];
    const data = isRecord(file) ? file["file_data"] : undefined;
    if (typeof data === "string" && DATA_URL.exec(data)?.[1] === "application/pdf") return undefined;
    return `${where}: only PDF files sent inline as base64 file_data are supported for this model (no file_id).`;
  }
  return `${where}: content parts of type ${JSON.stringify(type)} are not supported for this model.`;
}

function checkMessage(m: unknown, i: number): string | undefined {
  const where = `messages[${i}]`;
  if (!isRecord(m)) return `${where} must be an object.`;
  const role = m["role"];
  if (role !== "system" && role !== "developer" && role !== "user" && role !== "assistant" && role !== "tool") {
    return role === "function"
      ? `${where}: the deprecated "function" role is not supported for this model; use tools and "tool" messages.`
      : `${where}.role ${JSON.stringify(role)} is not supported for this model.`;
  }
  const content = m["content"];
  if (Array.isArray(content)) {
    // System and tool messages can only carry text to Anthropic.
    const partRole = role === "user" || role === "assistant" ? role : "text-only";
    for (let k = 0; k < content.length; k++) {
      const err = checkPart(content[k], `${where}.content[${k}]`, partRole);
      if (err !== undefined) return err;
    }
  } else if (present(content) && typeof content !== "string") {
    return `${where}.content must be a string or an array of content parts.`;
  }
  if (role === "tool" && typeof m["tool_call_id"] !== "string") return `${where}.tool_call_id must be a string.`;
  if (role === "assistant") {
    if (present(m["function_call"])) return `${where}.function_call (deprecated) is not supported for this model; use tool_calls.`;
    if (present(m["audio"])) return `${where}.audio is not supported for this model.`;
    const calls = m["tool_calls"];
    if (present(calls) && !Array.isArray(calls)) return `${where}.tool_calls must be an array.`;
    if (Array.isArray(calls)) {
      for (let k = 0; k < calls.length; k++) {
        const c: unknown = calls[k];
        const cw = `${where}.tool_calls[${k}]`;
        if (!isRecord(c) || !isRecord(c["function"])) return `${cw} must be a function tool call.`;
        if (present(c["type"]) && c["type"] !== "function") return `${cw}: tool calls of type ${JSON.stringify(c["type"])} are not supported for this model.`;
        if (typeof c["id"] !== "string" || typeof c["function"]["name"] !== "string") return `${cw} needs a string id and function.name.`;
        if (parseArguments(c["function"]["arguments"]) === undefined) return `${cw}.function.arguments must be a JSON object serialised as a string for this model.`;
      }
    }
  }
  return undefined;
}

/** Why Anthropic cannot take this chat-completions request, or undefined. */
export function checkRequest(body: JsonObject): string | undefined {
  const n = body["n"];
  if (typeof n === "number" && n > 1) return "`n` greater than 1 is not supported for this model (it returns one choice).";
  if (body["logprobs"] === true) return "`logprobs` is not supported for this model.";
  if (typeof body["top_logprobs"] === "number" && body["top_logprobs"] > 0) return "`top_logprobs` is not supported for this model.";
  const format = body["response_format"];
  if (present(format) && !(isRecord(format) && format["type"] === "text")) {
    return "`response_format` json_schema and json_object are not supported for this model; describe the format in the prompt or use a tool.";
  }
  if (present(body["audio"])) return "Audio output (`audio`) is not supported for this model.";
  const modalities = body["modalities"];
  if (Array.isArray(modalities) && modalities.some((x) => x !== "text")) return "`modalities` other than text are not supported for this model.";
  if (present(body["web_search_options"])) return "`web_search_options` is not supported for this model.";
  if (present(body["functions"]) || present(body["function_call"])) {
    return "`functions` and `function_call` (deprecated) are not supported for this model; use `tools` and `tool_choice`.";
  }
  const tools = body["tools"];
  if (present(tools)) {
    if (!Array.isArray(tools)) return "`tools` must be an array.";
    for (let i = 0; i < tools.length; i++) {
      const t: unknown = tools[i];
      if (!isRecord(t) || t["type"] !== "function") return `tools[${i}]: only tools of type "function" are supported for this model.`;
      if (!isRecord(t["function"]) || typeof t["function"]["name"] !== "string") return `tools[${i}].function.name must be a string.`;
      const params = t["function"]["parameters"];
      if (present(params) && !isRecord(params)) return `tools[${i}].function.parameters must be a JSON schema object.`;
    }
  }
  const choice = body["tool_choice"];
  if (present(choice) && choice !== "auto" && choice !== "none" && choice !== "required") {
    const named = isRecord(choice) && choice["type"] === "function" && isRecord(choice["function"]) && typeof choice["function"]["name"] === "string";
    if (!named) return "`tool_choice` must be \"auto\", \"none\", \"required\" or a named function for this model.";
  }
  const messages = body["messages"];
  if (!Array.isArray(messages)) return "`messages` must be an array.";
  for (let i = 0; i < messages.length; i++) {
    const err = checkMessage(messages[i], i);
    if (err !== undefined) return err;
  }
  return undefined;
}

// ---- request ----

function imageBlock(url: string): Block {
  const m = DATA_URL.exec(url);
  if (m === null) return { type: "image", source: { type: "url", url } };
  return { type: "image", source: { type: "base64", media_type: m[1], data: url.slice(m[0].length) } };
}

/** Anthropic blocks of an OpenAI content array; empty text is skipped because Anthropic rejects empty text blocks. */
function blocksOf(content: unknown[]): Block[] {
  const out: Block[] = [];
  for (const part of content) {
    if (typeof part === "string") {
      if (part !== "") out.push({ type: "text", text: part });
      continue;
    }
    if (!isRecord(part)) continue;
    const type = part["type"];
    if (type === "text" || type === "refusal") {
      const text = part[type];
      if (typeof text === "string" && text !== "") out.push({ type: "text", text });
    } else if (type === "image_url") {
      const url = isRecord(part["image_url"]) ? part["image_url"]["url"] : part["image_url"];
      if (typeof url === "string") out.push(imageBlock(url));
    } else if (type === "file" && isRecord(part["file"])) {
      const data = part["file"]["file_data"];
      const m = typeof data === "string" ? DATA_URL.exec(data) : null;
      if (m !== null && typeof data === "string") out.push({ type: "document", source: { type: "base64", media_type: m[1], data: data.slice(m[0].length) } });
    }
  }
  return out;
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const part of content) {
    if (isRecord(part) && typeof part["text"] === "string") text += part["text"];
    else if (typeof part === "string") text += part;
  }
  return text;
}

function asBlocks(content: string | Block[]): Block[] {
  return typeof content === "string" ? [{ type: "text", text: content }] : content;
}

/** Appends a message, merging it into the previous one of the same role: Anthropic requires roles to alternate. */
function push(turns: Turn[], role: Turn["role"], content: string | Block[]): void {
  if (content === "" || content.length === 0) return;
  const last = turns[turns.length - 1];
  if (last !== undefined && last.role === role) last.content = [...asBlocks(last.content), ...asBlocks(content)];
  else turns.push({ role, content });
}

function toolResult(m: Record<string, unknown>): Block {
  const block: Block = { type: "tool_result", tool_use_id: m["tool_call_id"] };
  const content = m["content"];
  if (typeof content === "string") {
    if (content !== "") block["content"] = content;
  } else if (Array.isArray(content)) {
    const blocks = blocksOf(content);
    if (blocks.length > 0) block["content"] = blocks;
  }
  return block;
}

function assistantContent(m: Record<string, unknown>): string | Block[] {
  const content = m["content"];
  const calls = m["tool_calls"];
  const hasCalls = Array.isArray(calls) && calls.length > 0;
  if (typeof content === "string" && !hasCalls) return content;
  const blocks = typeof content === "string" ? (content === "" ? [] : [{ type: "text", text: content }]) : Array.isArray(content) ? blocksOf(content) : [];
  if (!hasCalls) return blocks;
  for (const c of calls) {
    if (!isRecord(c) || !isRecord(c["function"])) continue;
    blocks.push({ type: "tool_use", id: c["id"], name: c["function"]["name"], input: parseArguments(c["function"]["arguments"]) ?? {} });
  }
  return blocks;
}

function toolChoice(body: JsonObject, hasTools: boolean): Block | undefined {
  if (!hasTools) return undefined;
  const choice = body["tool_choice"];
  let out: Block | undefined;
  if (choice === "auto") out = { type: "auto" };
  else if (choice === "required") out = { type: "any" };
  else if (choice === "none") return { type: "none" };
  else if (isRecord(choice) && isRecord(choice["function"])) out = { type: "tool", name: choice["function"]["name"] };
  if (body["parallel_tool_calls"] === false) {
    out ??= { type: "auto" };
    out["disable_parallel_tool_use"] = true;
  }
  return out;
}

const finiteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

export function buildRequest(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  const dropped: string[] = [];
  for (const key of Object.keys(body)) {
    if (!HANDLED.has(key) && present(body[key])) dropped.push(key);
  }
  if (isRecord(body["response_format"])) dropped.push("response_format");

  const system: string[] = [];
  const turns: Turn[] = [];
  let namesDropped = false;
  const messages = Array.isArray(body["messages"]) ? body["messages"] : [];
  for (const m of messages) {
    if (!isRecord(m)) continue;
    if (!namesDropped && present(m["name"])) {
      namesDropped = true;
      dropped.push("messages[].name");
    }
    const role = m["role"];
    const content = m["content"];
    // Anthropic has one system prompt: system and developer messages anywhere in the conversation
    // are hoisted into it, in order.
    if (role === "system" || role === "developer") {
      const text = textOf(content);
      if (text !== "") system.push(text);
    } else if (role === "user") {
      push(turns, "user", typeof content === "string" ? content : Array.isArray(content) ? blocksOf(content) : []);
    } else if (role === "assistant") {
      push(turns, "assistant", assistantContent(m));
    } else if (role === "tool") {
      push(turns, "user", [toolResult(m)]);
    }
  }

  const out: Record<string, unknown> = { model: target.model };
  if (system.length > 0) out["system"] = system.join("\n\n");
  out["messages"] = turns;
  const maxTokens = body["max_completion_tokens"] ?? body["max_tokens"];
  out["max_tokens"] = finiteNumber(maxTokens) ? maxTokens : target.defaultMaxTokens;
  const stop = body["stop"];
  const stops = typeof stop === "string" ? [stop] : Array.isArray(stop) ? stop.filter((s): s is string => typeof s === "string") : [];
  if (stops.length > 0) out["stop_sequences"] = stops;
  // OpenAI's temperature runs 0..2, Anthropic's 0..1: values above 1 are clamped rather than
  // rescaled, so that the common 0..1 settings keep their meaning exactly.
  const temperature = body["temperature"];
  if (finiteNumber(temperature)) out["temperature"] = Math.min(Math.max(temperature, 0), 1);
  if (finiteNumber(body["top_p"])) out["top_p"] = body["top_p"];

  const tools = Array.isArray(body["tools"]) ? body["tools"] : [];
  const converted: Block[] = [];
  let strictDropped = false;
  for (const t of tools) {
    if (!isRecord(t) || !isRecord(t["function"])) continue;
    const fn = t["function"];
    const tool: Block = { name: fn["name"] };
    if (typeof fn["description"] === "string") tool["description"] = fn["description"];
    tool["input_schema"] = isRecord(fn["parameters"]) ? fn["parameters"] : { type: "object", properties: {} };
    if (fn["strict"] === true && !strictDropped) {
      strictDropped = true;
      dropped.push("tools[].function.strict");
    }
    converted.push(tool);
  }
  if (converted.length > 0) out["tools"] = converted;
  const choice = toolChoice(body, converted.length > 0);
  if (choice !== undefined) out["tool_choice"] = choice;

  const user = body["safety_identifier"] ?? body["user"];
  if (typeof user === "string" && user !== "") out["metadata"] = { user_id: user };
  const stream = body["stream"] === true;
  if (stream) out["stream"] = true;

  // include_usage is honoured (meta.includeUsage); any other stream option has no equivalent.
  const streamOptions = body["stream_options"];
  let includeUsage = false;
  if (isRecord(streamOptions)) {
    for (const key of Object.keys(streamOptions)) {
      if (key === "include_usage") includeUsage = streamOptions[key] === true;
      else if (present(streamOptions[key])) dropped.push(`stream_options.${key}`);
    }
  }

  return {
    body: Buffer.from(JSON.stringify(out)),
    stream,
    dropped,
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : target.model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: stream && includeUsage,
    },
  };
}
