// OpenAI chat completions request -> Bedrock Converse request body
// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html). The model
// and the choice between converse and converse-stream live in the path (the adapter builds it), so
// the body carries neither.
import { createHash } from "node:crypto";
import type { JsonObject } from "../api/request-body";
import type { TranslatedRequest, TranslationTarget } from "./types";
import { isRecord, jsonText } from "../api/json";

type Block = Record<string, unknown>;

interface Turn {
  role: "user" | "assistant";
  content: Block[];
}

/** What the response side needs beyond TranslationMeta's own fields. */
export interface BedrockExtra {
  /** The provider's model name, echoed as `model` (Converse answers carry none). */
  model: string;
  /** Completion id: Converse answers have none, and the translation has no randomness. */
  id: string;
}

/**
 * Fields with no Converse equivalent whose absence only changes sampling or bookkeeping, never the
 * shape of the answer the client parses.
 */
const DROPPED = new Set([
  "presence_penalty",
  "frequency_penalty",
  "seed",
  "logit_bias",
  "user",
  "service_tier",
  "store",
  "metadata",
  "parallel_tool_calls",
  "prediction",
  "reasoning_effort",
  "verbosity",
  "prompt_cache_key",
  "safety_identifier",
]);

/** Fields read by the translation (or checked to be at their default); everything else is reported dropped. */
const HANDLED = new Set([
  "model",
  "messages",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "stop",
  "tools",
  "tool_choice",
  "n",
  "logprobs",
  "top_logprobs",
  "response_format",
  "audio",
  "modalities",
]);

/** Converse ImageBlock formats, by the subtype of a data: URL's media type. */
const IMAGE_FORMATS: Record<string, string> = { png: "png", jpeg: "jpeg", jpg: "jpeg", gif: "gif", webp: "webp" };

const present = (v: unknown): boolean => v !== undefined && v !== null;

interface DataImage {
  format: string;
  base64: string;
}

/** A base64 data: URL of a Converse-supported image type; only the header is scanned, never the payload. */
function dataImage(url: string): DataImage | string {
  if (!url.startsWith("data:")) return "Bedrock Converse takes images as inline bytes only: send `image_url.url` as a base64 data: URL, not a link.";
  const comma = url.indexOf(",", 5);
  const header = comma === -1 ? "" : url.slice(5, comma).toLowerCase();
  const m = /^image\/([a-z]+)(?:;[^,]*)?;base64$/.exec(header);
  const format = m?.[1] === undefined ? undefined : IMAGE_FORMATS[m[1]];
  if (format === undefined) return "Bedrock Converse takes png, jpeg, gif or webp images as base64 data: URLs (`image_url.url`).";
  return { format, base64: url.slice(comma + 1) };
}

/** Why a message's content cannot be expressed, or undefined. */
function checkContent(content: unknown): string | undefined {
  if (!Array.isArray(content)) return undefined;
  for (const part of content) {
    if (!isRecord(part)) continue;
    const type = part["type"];
    if (type === "image_url") {
      const url = isRecord(part["image_url"]) ? part["image_url"]["url"] : undefined;
      if (typeof url !== "string") return "A message content part of type `image_url` has no `image_url.url`.";
      const img = dataImage(url);
      if (typeof img === "string") return img;
    } else if (type === "input_audio") {
      return "Audio input (`input_audio` content parts) is not supported by Bedrock Converse.";
    } else if (type === "file") {
      return "File content parts (`file`) are not supported on Bedrock targets.";
    }
  }
  return undefined;
}

/** check(): a single pass over top-level fields and message parts, no allocation of the result. */
export function checkOpenAiForBedrock(body: JsonObject): string | undefined {
  if (present(body["n"]) && body["n"] !== 1) return "`n` other than 1 is not supported by Bedrock Converse (one choice per request).";
  const top = body["top_logprobs"];
  if (body["logprobs"] === true || (typeof top === "number" && top > 0)) return "`logprobs` / `top_logprobs` are not supported by Bedrock Converse.";
  const rf = body["response_format"];
  if (isRecord(rf) && rf["type"] !== "text") return "`response_format` json_object / json_schema is not supported on Bedrock targets.";
  if (present(body["audio"]) || (Array.isArray(body["modalities"]) && body["modalities"].includes("audio"))) {
    return "Audio output (`audio`, `modalities: [\"audio\"]`) is not supported by Bedrock Converse.";
  }
  if (present(body["functions"]) || present(body["function_call"])) return "The legacy `functions` / `function_call` fields are not supported on Bedrock targets; use `tools`.";
  if (present(body["web_search_options"])) return "`web_search_options` is not supported by Bedrock Converse.";
  const tools = body["tools"];
  if (Array.isArray(tools)) {
    for (const t of tools) {
      if (!isRecord(t) || t["type"] !== "function" || !isRecord(t["function"]) || typeof t["function"]["name"] !== "string") {
        return "Only `tools` of type `function` with a `function.name` are supported on Bedrock targets.";
      }
    }
  }
  const choice = body["tool_choice"];
  if (isRecord(choice) && (choice["type"] !== "function" || !isRecord(choice["function"]) || typeof choice["function"]["name"] !== "string")) {
    return "`tool_choice` must be \"auto\", \"required\", \"none\" or a named function on Bedrock targets.";
  }
  const messages = body["messages"];
  if (!Array.isArray(messages)) return undefined;
  let toolHistory = false;
  for (const m of messages) {
    if (!isRecord(m)) continue;
    const role = m["role"];
    if (role === "function") return "Messages with role `function` (legacy function calling) are not supported on Bedrock targets; use `tool`.";
    if (role === "tool" || (role === "assistant" && Array.isArray(m["tool_calls"]) && m["tool_calls"].length > 0)) toolHistory = true;
    const why = checkContent(m["content"]);
    if (why !== undefined) return why;
  }
  // Converse refuses toolUse / toolResult blocks without a toolConfig, and has no "none" (the
  // translation omits the tools instead): either way a tool history needs the tools sent along.
  if (toolHistory && !(Array.isArray(tools) && tools.length > 0)) {
    return "The conversation holds tool calls or tool results but the request has no `tools`; Bedrock Converse needs the tool definitions to accept them.";
  }
  if (choice === "none" && toolHistory) {
    return "`tool_choice: \"none\"` with tool calls in the conversation is not supported by Bedrock Converse.";
  }
  return undefined;
}

/** Text (and, outside system prompts, image) blocks of a message's content. */
function textBlocks(content: unknown, out: Block[], images = true): void {
  if (typeof content === "string") {
    // Converse rejects blank text blocks; OpenAI clients send "" next to tool calls.
    if (content !== "") out.push({ text: content });
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (!isRecord(part)) continue;
    const type = part["type"];
    if (type === "text" && typeof part["text"] === "string" && part["text"] !== "") out.push({ text: part["text"] });
    else if (type === "refusal" && typeof part["refusal"] === "string" && part["refusal"] !== "") out.push({ text: part["refusal"] });
    else if (images && type === "image_url" && isRecord(part["image_url"]) && typeof part["image_url"]["url"] === "string") {
      const img = dataImage(part["image_url"]["url"]);
      if (typeof img !== "string") out.push({ image: { format: img.format, source: { bytes: img.base64 } } });
    }
  }
}

/** Converse wants a JSON object as tool input; arguments the model produced unparseable become {}. */
function toolInput(args: unknown): unknown {
  if (typeof args !== "string") return isRecord(args) ? args : {};
  try {
    const v: unknown = JSON.parse(args);
    return isRecord(v) ? v : {};
  } catch {
    return {};
  }
}

function toolResultContent(content: unknown): Block[] {
  const out: Block[] = [];
  if (typeof content === "string") {
    if (content !== "") out.push({ text: content });
  } else if (Array.isArray(content)) {
    for (const part of content) if (isRecord(part) && typeof part["text"] === "string" && part["text"] !== "") out.push({ text: part["text"] });
  }
  return out;
}

function convertMessages(messages: unknown, dropped: Set<string>): { system: Block[]; turns: Turn[] } {
  const system: Block[] = [];
  const turns: Turn[] = [];
  // Converse requires user and assistant turns to alternate; OpenAI allows runs (several tool
  // results in a row, a user message after them), which become one turn.
  const add = (role: Turn["role"], blocks: Block[]): void => {
    if (blocks.length === 0) return;
    const last = turns[turns.length - 1];
    if (last !== undefined && last.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };
  if (!Array.isArray(messages)) return { system, turns };
  for (const m of messages) {
    if (!isRecord(m)) continue;
    if (present(m["name"])) dropped.add("messages[].name");
    const role = m["role"];
    if (role === "system" || role === "developer") {
      // Converse system blocks hold text only; OpenAI has no images in system messages either.
      textBlocks(m["content"], system, false);
    } else if (role === "user") {
      const blocks: Block[] = [];
      textBlocks(m["content"], blocks);
      add("user", blocks);
    } else if (role === "assistant") {
      const blocks: Block[] = [];
      textBlocks(m["content"], blocks);
      const calls = m["tool_calls"];
      if (Array.isArray(calls)) {
        for (const c of calls) {
          if (!isRecord(c) || !isRecord(c["function"])) continue;
          const fn = c["function"];
          blocks.push({ toolUse: { toolUseId: jsonText(c["id"] ?? ""), name: jsonText(fn["name"] ?? ""), input: toolInput(fn["arguments"]) } });
        }
      }
      add("assistant", blocks);
    } else if (role === "tool") {
      add("user", [{ toolResult: { toolUseId: jsonText(m["tool_call_id"] ?? ""), content: toolResultContent(m["content"]) } }]);
    }
  }
  return { system, turns };
}

function toolConfig(body: JsonObject, dropped: Set<string>): Block | undefined {
  const tools = body["tools"];
  const choice = body["tool_choice"];
  if (!Array.isArray(tools) || tools.length === 0 || choice === "none") return undefined;
  const specs: Block[] = [];
  for (const t of tools) {
    if (!isRecord(t) || !isRecord(t["function"])) continue;
    const fn = t["function"];
    if (fn["strict"] === true) dropped.add("tools[].function.strict");
    const spec: Block = { name: fn["name"] };
    if (typeof fn["description"] === "string" && fn["description"] !== "") spec["description"] = fn["description"];
    spec["inputSchema"] = { json: isRecord(fn["parameters"]) ? fn["parameters"] : { type: "object", properties: {} } };
    specs.push({ toolSpec: spec });
  }
  const config: Block = { tools: specs };
  if (choice === "auto") config["toolChoice"] = { auto: {} };
  else if (choice === "required") config["toolChoice"] = { any: {} };
  else if (isRecord(choice) && isRecord(choice["function"])) config["toolChoice"] = { tool: { name: choice["function"]["name"] } };
  return config;
}

function inferenceConfig(body: JsonObject): Block | undefined {
  const cfg: Block = {};
  const max = present(body["max_completion_tokens"]) ? body["max_completion_tokens"] : body["max_tokens"];
  if (typeof max === "number") cfg["maxTokens"] = max;
  if (typeof body["temperature"] === "number") cfg["temperature"] = body["temperature"];
  if (typeof body["top_p"] === "number") cfg["topP"] = body["top_p"];
  const stop = body["stop"];
  if (typeof stop === "string") cfg["stopSequences"] = [stop];
  else if (Array.isArray(stop) && stop.length > 0) cfg["stopSequences"] = stop.filter((s) => typeof s === "string");
  return Object.keys(cfg).length > 0 ? cfg : undefined;
}

export function openAiToBedrockRequest(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  const dropped = new Set<string>();
  for (const key of Object.keys(body)) {
    if (!present(body[key])) continue;
    if (DROPPED.has(key) || !HANDLED.has(key)) dropped.add(key);
  }
  const rf = body["response_format"];
  if (isRecord(rf) && rf["type"] === "text") dropped.add("response_format");
  const so = body["stream_options"];
  // include_usage is honoured by the translation itself (meta.includeUsage); other options are not.
  if (isRecord(so) && Object.keys(so).some((k) => k !== "include_usage")) dropped.add("stream_options");

  const { system, turns } = convertMessages(body["messages"], dropped);
  const out: Block = { messages: turns };
  if (system.length > 0) out["system"] = system;
  const inference = inferenceConfig(body);
  if (inference !== undefined) out["inferenceConfig"] = inference;
  const tools = toolConfig(body, dropped);
  if (tools !== undefined) out["toolConfig"] = tools;

  const bytes = Buffer.from(JSON.stringify(out));
  const stream = body["stream"] === true;
  // Pure and stable for one attempt: the same request at the same instant gets the same id.
  const id = `chatcmpl-bedrock-${createHash("sha256").update(String(target.nowMs)).update(bytes).digest("hex").slice(0, 24)}`;
  const extra: BedrockExtra = { model: target.model, id };
  return {
    body: bytes,
    stream,
    dropped: [...dropped],
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : target.model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: stream && isRecord(so) && so["include_usage"] === true,
      extra: { ...extra },
    },
  };
}
