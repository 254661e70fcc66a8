// OpenAI chat completions -> Gemini generateContent / streamGenerateContent
// (https://ai.google.dev/api/generate-content). The model and the stream choice travel in the
// path (the Gemini adapter builds it), so the body carries neither. The response side is in
// gemini-response.ts.
//
// Gemini has no place for a tool call id: calls and results pair by name and order. So a tool
// message's name is looked up from the assistant tool call it answers, and ids are not sent.
// Gemini 3 rejects a replayed function call without the thought signature it came with; the
// response side hands it to the client the way Gemini's own OpenAI-compatible endpoint does
// (tool_calls[].extra_content.google.thought_signature), and it is sent back from there. A call
// without one (history from another model, or a client that kept only id/type/function) gets the
// placeholder Gemini documents for that case.
import type { JsonObject } from "../api/request-body";
import { isEmptyObjectSchema, toGeminiSchema } from "./gemini-schema";
import { geminiChatResponse } from "./gemini-response";
import type { TranslatedRequest, Translation, TranslationTarget } from "./types";
import { isRecord, jsonText } from "../api/json";

/** https://ai.google.dev/gemini-api/docs/thought-signatures (for calls Gemini did not produce). */
const SKIP_SIGNATURE = "skip_thought_signature_validator";

/** Fields this translation maps; any other non-null field is dropped with a warning (unless check() rejects it). */
const MAPPED = new Set([
  "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n",
  "presence_penalty", "frequency_penalty", "seed", "response_format", "logprobs", "top_logprobs", "tools", "tool_choice",
]);
/** Rejected by check(): nothing Gemini can do with them without changing what the client gets. */
const REJECTED: Record<string, string> = {
  audio: "`audio` (audio output) is not supported by Gemini through this API.",
  functions: "`functions` is not supported for Gemini targets; send `tools` instead.",
  function_call: "`function_call` is not supported for Gemini targets; send `tool_choice` instead.",
  web_search_options: "`web_search_options` is not supported for Gemini targets.",
};
const AUDIO_FORMATS: Record<string, string> = { wav: "audio/wav", mp3: "audio/mp3" };

type Part = JsonObject;
interface Content {
  role: "user" | "model";
  parts: Part[];
}

/** OpenAI clients send null for "not set" as often as they leave a field out. */
function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** A base64 data URL's media type and payload; undefined for anything else (https URLs, percent-encoded data). */
function dataUrl(url: unknown): { mimeType: string; data: string } | undefined {
  if (typeof url !== "string" || !url.startsWith("data:")) return undefined;
  const comma = url.indexOf(",");
  if (comma < 0) return undefined;
  const params = url.slice(5, comma).split(";");
  if (params.length < 2 || params[params.length - 1]!.toLowerCase() !== "base64" || params[0] === "") return undefined;
  return { mimeType: params[0]!, data: url.slice(comma + 1) };
}

/** Why one content part of a message cannot be sent, or undefined. */
function checkPart(part: unknown, role: unknown, at: string): string | undefined {
  if (typeof part === "string") return undefined;
  if (!isRecord(part)) return `${at} must be an object.`;
  const type = part["type"];
  if (type === "text" || (type === "refusal" && role === "assistant")) return undefined;
  if (role !== "user") return `${at} has type \`${jsonText(type)}\`, which Gemini only accepts in user messages.`;
  if (type === "image_url") {
    if (dataUrl(field(part["image_url"], "url")) !== undefined) return undefined;
    return `${at}.image_url.url must be a base64 data: URL for Gemini targets; Gemini does not fetch image URLs (it needs the file uploaded to it first).`;
  }
  if (type === "input_audio") {
    const format = field(part["input_audio"], "format");
    return typeof format === "string" && format in AUDIO_FORMATS ? undefined : `${at}.input_audio.format must be wav or mp3 for Gemini targets.`;
  }
  if (type === "file") {
    if (dataUrl(field(part["file"], "file_data")) !== undefined) return undefined;
    return `${at}.file must carry file_data as a base64 data: URL for Gemini targets; OpenAI file ids mean nothing to Gemini.`;
  }
  return `${at} has type \`${jsonText(type)}\`, which Gemini targets do not support.`;
}

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

export function checkChat(body: JsonObject): string | undefined {
  for (const key in REJECTED) if (present(body[key])) return REJECTED[key];
  const modalities = body["modalities"];
  if (Array.isArray(modalities) && modalities.some((m) => m !== "text")) return "`modalities` other than text are not supported by Gemini through this API.";
  const tools = body["tools"];
  if (Array.isArray(tools)) {
    for (let i = 0; i < tools.length; i++) {
      if (field(tools[i], "type") !== "function") return `tools[${i}] has type \`${jsonText(field(tools[i], "type"))}\`; Gemini targets take function tools only.`;
    }
  }
  const choice = body["tool_choice"];
  if (isRecord(choice) && choice["type"] !== "function" && choice["type"] !== "allowed_tools") return `tool_choice of type \`${jsonText(choice["type"])}\` is not supported for Gemini targets.`;
  const format = field(body["response_format"], "type");
  if (format !== undefined && format !== "text" && format !== "json_object" && format !== "json_schema") return `response_format type \`${jsonText(format)}\` is not supported for Gemini targets.`;
  const messages = body["messages"];
  if (!Array.isArray(messages)) return undefined;
  const callIds = new Set<unknown>();
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    const role = field(m, "role");
    if (role === "function") return `messages[${i}] has role \`function\`; Gemini targets take tool messages instead.`;
    if (role === "assistant" && present(field(m, "audio"))) return `messages[${i}].audio is not supported by Gemini through this API.`;
    if (role === "system" || role === "developer") {
      const content = field(m, "content");
      if (Array.isArray(content) && content.some((p) => field(p, "type") !== "text")) return `messages[${i}].content: Gemini takes text only in system instructions.`;
      continue;
    }
    if (role === "tool" && !callIds.has(field(m, "tool_call_id"))) return `messages[${i}].tool_call_id matches no tool call of an earlier assistant message.`;
    const calls = field(m, "tool_calls");
    if (Array.isArray(calls)) for (const c of calls) callIds.add(field(c, "id"));
    const content = field(m, "content");
    if (!Array.isArray(content)) continue;
    for (let j = 0; j < content.length; j++) {
      const problem = checkPart(content[j], role, `messages[${i}].content[${j}]`);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

/** Text of a content that may be a string or an array of text parts. */
function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let out = "";
  for (const p of content) {
    const t = typeof p === "string" ? p : field(p, "text") ?? field(p, "refusal");
    if (typeof t === "string") out += t;
  }
  return out;
}

function userParts(content: unknown, dropped: Set<string>): Part[] {
  if (!Array.isArray(content)) return typeof content === "string" && content !== "" ? [{ text: content }] : [];
  const parts: Part[] = [];
  for (const p of content) {
    if (typeof p === "string" || field(p, "type") === "text") {
      const text = typeof p === "string" ? p : field(p, "text");
      if (typeof text === "string" && text !== "") parts.push({ text });
      continue;
    }
    const type = field(p, "type");
    if (type === "image_url") {
      const image = field(p, "image_url");
      if (present(field(image, "detail"))) dropped.add("messages[].content[].image_url.detail");
      const inline = dataUrl(field(image, "url"));
      if (inline !== undefined) parts.push({ inlineData: inline });
    } else if (type === "input_audio") {
      const audio = field(p, "input_audio");
      parts.push({ inlineData: { mimeType: AUDIO_FORMATS[jsonText(field(audio, "format"))] ?? "audio/wav", data: jsonText(field(audio, "data") ?? "") } });
    } else if (type === "file") {
      const inline = dataUrl(field(field(p, "file"), "file_data"));
      if (inline !== undefined) parts.push({ inlineData: inline });
    }
  }
  return parts;
}

function parseArgs(args: unknown): JsonObject {
  if (isRecord(args)) return args;
  if (typeof args !== "string") return {};
  try {
    const v: unknown = JSON.parse(args);
    return isRecord(v) ? v : {};
  } catch {
    return {};
  }
}

function assistantParts(m: JsonObject): Part[] {
  const parts: Part[] = [];
  const text = textOf(m["content"]) || (typeof m["refusal"] === "string" ? m["refusal"] : "");
  if (text !== "") parts.push({ text });
  const calls = Array.isArray(m["tool_calls"]) ? m["tool_calls"] : [];
  let signed = false;
  const first = parts.length;
  for (const c of calls) {
    const fn = field(c, "function");
    const part: Part = { functionCall: { name: jsonText(field(fn, "name") ?? ""), args: parseArgs(field(fn, "arguments")) } };
    const signature = field(field(field(c, "extra_content"), "google"), "thought_signature");
    if (typeof signature === "string" && signature !== "") {
      part["thoughtSignature"] = signature;
      signed = true;
    }
    parts.push(part);
  }
  // Gemini validates the signature of the first call of a step; the others may go unsigned.
  if (!signed && parts.length > first) parts[first]!["thoughtSignature"] = SKIP_SIGNATURE;
  return parts;
}

/** A tool result as Gemini's functionResponse: a JSON object result as it is, anything else wrapped. */
function toolResponse(content: unknown): JsonObject {
  const text = textOf(content);
  if (text.trimStart().startsWith("{")) {
    try {
      const v: unknown = JSON.parse(text);
      if (isRecord(v)) return v;
    } catch {
      // Not JSON after all: sent as text.
    }
  }
  return { content: text };
}

function buildContents(messages: unknown[], dropped: Set<string>): { contents: Content[]; system: Part[] } {
  const contents: Content[] = [];
  const system: Part[] = [];
  const names = new Map<unknown, string>();
  const push = (role: Content["role"], parts: Part[]): void => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    // Gemini expects turns to alternate; consecutive messages of one side become one turn.
    if (last !== undefined && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of messages) {
    if (!isRecord(m)) continue;
    if (present(m["name"])) dropped.add("messages[].name");
    switch (m["role"]) {
      case "system":
      case "developer": {
        const text = textOf(m["content"]);
        if (text !== "") system.push({ text });
        break;
      }
      case "assistant":
        if (Array.isArray(m["tool_calls"])) for (const c of m["tool_calls"]) names.set(field(c, "id"), jsonText(field(field(c, "function"), "name") ?? ""));
        push("model", assistantParts(m));
        break;
      case "tool":
        push("user", [{ functionResponse: { name: names.get(m["tool_call_id"]) ?? "", response: toolResponse(m["content"]) } }]);
        break;
      default:
        push("user", userParts(m["content"], dropped));
    }
  }
  return { contents, system };
}

function functionDeclaration(fn: unknown, dropped: Set<string>): JsonObject {
  const decl: JsonObject = { name: jsonText(field(fn, "name") ?? "") };
  const description = field(fn, "description");
  if (typeof description === "string") decl["description"] = description;
  if (field(fn, "strict") === true) dropped.add("tools[].function.strict");
  const params = field(fn, "parameters");
  if (isRecord(params)) {
    const schema = toGeminiSchema(params);
    // Gemini answers 400 to an object schema without properties; a function without arguments has none.
    if (!isEmptyObjectSchema(schema)) decl["parameters"] = schema;
  }
  return decl;
}

function toolConfig(choice: unknown): { config: JsonObject; only?: Set<string> } | undefined {
  if (choice === "none") return { config: { functionCallingConfig: { mode: "NONE" } } };
  if (choice === "auto") return { config: { functionCallingConfig: { mode: "AUTO" } } };
  if (choice === "required") return { config: { functionCallingConfig: { mode: "ANY" } } };
  if (!isRecord(choice)) return undefined;
  if (choice["type"] === "function") {
    return { config: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: [jsonText(field(choice["function"], "name") ?? "")] } } };
  }
  const allowed = choice["allowed_tools"];
  const tools = field(allowed, "tools");
  const names = Array.isArray(tools) ? tools.map((t) => jsonText(field(field(t, "function"), "name") ?? "")) : [];
  // Gemini restricts names only when a call is forced; for "auto" the other tools are left undeclared.
  if (field(allowed, "mode") === "required") return { config: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: names } } };
  return { config: { functionCallingConfig: { mode: "AUTO" } }, only: new Set(names) };
}

function generationConfig(body: JsonObject, dropped: Set<string>): JsonObject {
  const g: JsonObject = {};
  const maxTokens = body["max_completion_tokens"] ?? body["max_tokens"];
  if (present(maxTokens)) g["maxOutputTokens"] = maxTokens;
  if (present(body["temperature"])) g["temperature"] = body["temperature"];
  if (present(body["top_p"])) g["topP"] = body["top_p"];
  const stop = body["stop"];
  if (typeof stop === "string") g["stopSequences"] = [stop];
  else if (Array.isArray(stop) && stop.length > 0) g["stopSequences"] = stop;
  if (present(body["n"])) g["candidateCount"] = body["n"];
  if (present(body["presence_penalty"])) g["presencePenalty"] = body["presence_penalty"];
  if (present(body["frequency_penalty"])) g["frequencyPenalty"] = body["frequency_penalty"];
  if (present(body["seed"])) g["seed"] = body["seed"];
  const format = body["response_format"];
  const type = field(format, "type");
  if (type === "json_object") g["responseMimeType"] = "application/json";
  if (type === "json_schema") {
    g["responseMimeType"] = "application/json";
    const spec = field(format, "json_schema");
    const schema = field(spec, "schema");
    if (isRecord(schema)) g["responseSchema"] = toGeminiSchema(schema);
    if (field(spec, "strict") === true) dropped.add("response_format.json_schema.strict");
  }
  if (body["logprobs"] === true) {
    g["responseLogprobs"] = true;
    if (present(body["top_logprobs"])) g["logprobs"] = body["top_logprobs"];
  }
  return g;
}

export function requestChat(body: JsonObject, target: TranslationTarget): TranslatedRequest {
  const dropped = new Set<string>();
  for (const key of Object.keys(body)) {
    if (!MAPPED.has(key) && present(body[key]) && !(key === "modalities")) dropped.add(key);
  }
  const streamOptions = body["stream_options"];
  if (isRecord(streamOptions) && Object.keys(streamOptions).some((k) => k !== "include_usage")) dropped.add("stream_options");
  const { contents, system } = buildContents(Array.isArray(body["messages"]) ? body["messages"] : [], dropped);
  const out: JsonObject = { contents };
  if (system.length > 0) out["systemInstruction"] = { parts: system };

  const choice = toolConfig(body["tool_choice"]);
  const tools = Array.isArray(body["tools"]) ? body["tools"] : [];
  const declarations = tools
    .map((t) => functionDeclaration(field(t, "function"), dropped))
    .filter((d) => choice?.only === undefined || choice.only.has(d["name"] as string));
  if (declarations.length > 0) out["tools"] = [{ functionDeclarations: declarations }];
  if (choice !== undefined && tools.length > 0) out["toolConfig"] = choice.config;

  const generation = generationConfig(body, dropped);
  if (Object.keys(generation).length > 0) out["generationConfig"] = generation;

  const stream = body["stream"] === true;
  const model = target.model.startsWith("models/") ? target.model.slice("models/".length) : target.model;
  return {
    body: Buffer.from(JSON.stringify(out)),
    stream,
    dropped: [...dropped],
    meta: {
      clientModel: typeof body["model"] === "string" ? body["model"] : model,
      created: Math.floor(target.nowMs / 1000),
      includeUsage: stream && field(streamOptions, "include_usage") === true,
      extra: { model },
    },
  };
}

export const openAiToGemini: Translation = {
  from: "chat.completions",
  to: "chat.completions",
  check: checkChat,
  request: requestChat,
  response: geminiChatResponse,
};
