// Anthropic Messages request -> OpenAI chat completions request
// (https://docs.anthropic.com/en/api/messages, https://platform.openai.com/docs/api-reference/chat/create).
// The target is any OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, Ollama), so the output
// keeps to the fields they all accept rather than OpenAI's newest spellings.
import { createHash } from "node:crypto";
import type { JsonObject } from "../api/request-body";
import type { TranslatedRequest, TranslationTarget } from "./types";
import { isRecord, jsonText } from "../api/json";

type Json = Record<string, unknown>;

// Fields read below. Anything else at the top level has no OpenAI equivalent and is reported as
// dropped (top_k, thinking, service_tier, container, mcp_servers, context_management...).
const MAPPED = new Set([
  "model",
  "messages",
  "system",
  "max_tokens",
  "stop_sequences",
  "temperature",
  "top_p",
  "stream",
  "metadata",
  "tools",
  "tool_choice",
]);

// Blocks the translation expresses. thinking/redacted_thinking come back in the history when an
// earlier turn was answered by Anthropic itself; they carry Anthropic signatures no other model
// can use, so they are dropped.
const BLOCK_TYPES = new Set(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"]);

/** OpenAI rejects a `user` longer than this ("Invalid 'user': string too long"). */
const MAX_USER_CHARS = 64;

/** Why a block cannot be expressed, or undefined. Nested tool_result content is checked too. */
function blockProblem(block: unknown, nested: boolean): string | undefined {
  if (!isRecord(block)) return undefined;
  const type = block["type"];
  if (type === "document") return "Document (PDF) content blocks are not supported by this model's provider.";
  if (typeof type !== "string" || !BLOCK_TYPES.has(type) || (nested && type !== "text" && type !== "image")) {
    return `Content blocks of type \`${jsonText(type)}\` are not supported by this model's provider.`;
  }
  if (type === "image") {
    const source = block["source"];
    const kind = isRecord(source) ? source["type"] : undefined;
    if (kind !== "base64" && kind !== "url") return `Image sources of type \`${jsonText(kind)}\` are not supported by this model's provider; send base64 or url images.`;
  } else if (type === "tool_result" && Array.isArray(block["content"])) {
    for (const inner of block["content"]) {
      const problem = blockProblem(inner, true);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

export function checkAnthropicForOpenAi(body: JsonObject): string | undefined {
  const tools = body["tools"];
  if (Array.isArray(tools)) {
    for (const tool of tools) {
      const type = isRecord(tool) ? tool["type"] : undefined;
      // Server tools (web_search, code_execution...) and Anthropic-defined client tools (bash,
      // text_editor, computer) have no schema here for the provider to call them by.
      if (type !== undefined && type !== null && type !== "custom") return `The tool type \`${jsonText(type)}\` is not supported by this model's provider.`;
    }
  }
  const messages = body["messages"];
  if (!Array.isArray(messages)) return undefined;
  for (const message of messages) {
    const content = isRecord(message) ? message["content"] : undefined;
    if (!Array.isArray(content)) continue;
    for (const block of content) {
      const problem = blockProblem(block, false);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

function imagePart(block: Json): Json | undefined {
  const source = block["source"];
  if (!isRecord(source)) return undefined;
  if (source["type"] === "url" && typeof source["url"] === "string") return { type: "image_url", image_url: { url: source["url"] } };
  if (source["type"] === "base64" && typeof source["data"] === "string") {
    return { type: "image_url", image_url: { url: `data:${jsonText(source["media_type"] ?? "image/png")};base64,${source["data"]}` } };
  }
  return undefined;
}

/** One text block alone is sent as a plain string, which every OpenAI-compatible server accepts. */
function contentOf(parts: Json[]): unknown {
  if (parts.length === 1 && parts[0]!["type"] === "text") return parts[0]!["text"];
  return parts;
}

/** A tool_result's content as the text of a tool message; its images go to the next user message. */
function toolResultText(content: unknown, images: Json[]): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const texts: string[] = [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    if (block["type"] === "text" && typeof block["text"] === "string") texts.push(block["text"]);
    else if (block["type"] === "image") {
      const part = imagePart(block);
      if (part !== undefined) images.push(part);
    }
  }
  return texts.join("\n");
}

function userMessages(content: unknown[], out: Json[], drop: (field: string) => void): void {
  const parts: Json[] = [];
  const toolImages: Json[] = [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    switch (block["type"]) {
      case "text":
        if (typeof block["text"] === "string") parts.push({ type: "text", text: block["text"] });
        break;
      case "image": {
        const part = imagePart(block);
        if (part !== undefined) parts.push(part);
        break;
      }
      case "tool_result":
        // OpenAI has no error flag on tool messages; the content itself says what went wrong.
        out.push({ role: "tool", tool_call_id: jsonText(block["tool_use_id"] ?? ""), content: toolResultText(block["content"], toolImages) });
        break;
      case "thinking":
      case "redacted_thinking":
        drop("thinking blocks");
        break;
    }
  }
  // Tool messages must directly follow the assistant's tool_calls, so any user text of the same
  // message comes after them; OpenAI tool messages cannot hold images, so those go with it.
  const all = toolImages.length > 0 ? [...toolImages, ...parts] : parts;
  if (all.length > 0) out.push({ role: "user", content: contentOf(all) });
}

function assistantMessage(content: unknown[], out: Json[], drop: (field: string) => void): void {
  const parts: Json[] = [];
  const calls: Json[] = [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    const type = block["type"];
    if (type === "text" && typeof block["text"] === "string") parts.push({ type: "text", text: block["text"] });
    else if (type === "tool_use") {
      calls.push({ id: jsonText(block["id"] ?? ""), type: "function", function: { name: jsonText(block["name"] ?? ""), arguments: JSON.stringify(block["input"] ?? {}) } });
    } else if (type === "thinking" || type === "redacted_thinking") drop("thinking blocks");
  }
  const message: Json = { role: "assistant", content: parts.length === 0 ? null : contentOf(parts) };
  if (calls.length > 0) message["tool_calls"] = calls;
  // An assistant turn of thinking blocks alone says nothing the provider can read.
  if (parts.length > 0 || calls.length > 0) out.push(message);
}

function systemText(system: unknown): string | undefined {
  if (typeof system === "string") return system;
  if (!Array.isArray(system)) return undefined;
  // Joined into one string: some OpenAI-compatible servers take only strings for system content.
  const texts: string[] = [];
  for (const block of system) if (isRecord(block) && typeof block["text"] === "string") texts.push(block["text"]);
  return texts.length === 0 ? undefined : texts.join("\n\n");
}

function toolChoice(choice: Json): unknown {
  switch (choice["type"]) {
    case "auto": return "auto";
    case "any": return "required";
    case "none": return "none";
    case "tool": return { type: "function", function: { name: jsonText(choice["name"] ?? "") } };
    default: return undefined;
  }
}

/** metadata.user_id as OpenAI's `user`: Claude Code's ids are longer than OpenAI takes, so those are hashed to a stable 64-char id. */
function userId(metadata: unknown): string | undefined {
  const id = isRecord(metadata) ? metadata["user_id"] : undefined;
  if (typeof id !== "string" || id === "") return undefined;
  return id.length <= MAX_USER_CHARS ? id : createHash("sha256").update(id).digest("hex");
}

export function anthropicRequestToOpenAi(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  const dropped = new Set<string>();
  const drop = (field: string): void => void dropped.add(field);
  for (const key of Object.keys(body)) if (!MAPPED.has(key)) drop(key);

  const messages: Json[] = [];
  const system = systemText(body["system"]);
  if (system !== undefined) messages.push({ role: "system", content: system });
  const input = Array.isArray(body["messages"]) ? body["messages"] : [];
  for (const m of input) {
    if (!isRecord(m)) continue;
    const assistant = m["role"] === "assistant";
    const content = m["content"];
    if (!Array.isArray(content)) messages.push({ role: assistant ? "assistant" : "user", content: typeof content === "string" ? content : "" });
    else if (assistant) assistantMessage(content, messages, drop);
    else userMessages(content, messages, drop);
  }

  const out: Json = { model: target.model, messages };
  const stream = body["stream"] === true;
  // OpenAI deprecated max_tokens and its reasoning models (o-series, GPT-5) refuse it, so OpenAI
  // gets max_completion_tokens; vLLM, Ollama and older Azure API versions only know max_tokens.
  // https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_completion_tokens
  if (typeof body["max_tokens"] === "number") out[target.provider === "openai" ? "max_completion_tokens" : "max_tokens"] = body["max_tokens"];
  if (Array.isArray(body["stop_sequences"]) && body["stop_sequences"].length > 0) out["stop"] = body["stop_sequences"];
  if (typeof body["temperature"] === "number") out["temperature"] = body["temperature"];
  if (typeof body["top_p"] === "number") out["top_p"] = body["top_p"];
  if (stream) {
    out["stream"] = true;
    // OpenAI reports a stream's usage only when asked; the Anthropic client always gets it, unless
    // the server refuses stream_options (the router phase then settles from its estimate).
    if (target.streamUsage !== false) out["stream_options"] = { include_usage: true };
  }
  const user = userId(body["metadata"]);
  if (user !== undefined) out["user"] = user;

  const tools: Json[] = [];
  if (Array.isArray(body["tools"])) {
    for (const t of body["tools"]) {
      if (!isRecord(t)) continue;
      const fn: Json = { name: t["name"] };
      if (typeof t["description"] === "string") fn["description"] = t["description"];
      fn["parameters"] = t["input_schema"] ?? { type: "object", properties: {} };
      tools.push({ type: "function", function: fn });
    }
  }
  // OpenAI rejects tool_choice and parallel_tool_calls without tools.
  if (tools.length > 0) {
    out["tools"] = tools;
    const choice = body["tool_choice"];
    if (isRecord(choice)) {
      const mapped = toolChoice(choice);
      if (mapped !== undefined) out["tool_choice"] = mapped;
      if (choice["disable_parallel_tool_use"] === true && mapped !== "none") out["parallel_tool_calls"] = false;
    }
  }

  return {
    body: Buffer.from(JSON.stringify(out)),
    stream,
    dropped: [...dropped],
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : target.model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: false,
    },
  };
}
