// Request body handling for the router phase: undo content-encoding (bounded), parse JSON once.
import { brotliDecompressSync, gunzipSync, inflateSync, constants as zlib } from "node:zlib";
import { GatewayError } from "./errors";

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Only JSON bodies are accepted on LLM endpoints; a missing content-type is read as JSON. */
export function checkContentType(contentType: string | undefined): void {
  if (contentType === undefined || contentType.trim() === "") return;
  if (!JSON_MEDIA_TYPE.test(contentType.trim())) throw new GatewayError("unsupported_media_type");
}

/** Supported codings, validated on request headers so an unsupported one fails before the body. */
export function checkContentEncoding(encoding: string | undefined): string | undefined {
  if (encoding === undefined) return undefined;
  const e = encoding.trim().toLowerCase();
  if (e === "" || e === "identity") return undefined;
  if (e === "gzip" || e === "x-gzip" || e === "deflate" || e === "br") return e;
  throw new GatewayError("unsupported_content_encoding");
}

/** Decodes the body; output over `maxBytes` is a 413 (a zip bomb stops at the limit). */
export function decodeBody(body: Buffer, encoding: string, maxBytes: number): Buffer {
  try {
    switch (encoding) {
      case "gzip":
      case "x-gzip":
        return gunzipSync(body, { maxOutputLength: maxBytes });
      case "deflate":
        return inflateSync(body, { maxOutputLength: maxBytes });
      case "br":
        return brotliDecompressSync(body, { maxOutputLength: maxBytes });
      default:
        throw new GatewayError("unsupported_content_encoding");
    }
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || (err as { code?: unknown }).code === zlib.Z_BUF_ERROR) {
      throw new GatewayError("body_too_large");
    }
    if (err instanceof RangeError) throw new GatewayError("body_too_large");
    throw new GatewayError("invalid_content_encoding");
  }
}

export type JsonObject = Record<string, unknown>;

export function parseJsonObject(body: Buffer): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new GatewayError("invalid_json");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new GatewayError("body_not_object");
  return value as JsonObject;
}

export function requestedModel(body: JsonObject): string {
  const model = body.model;
  if (model === undefined || model === null) throw new GatewayError("missing_model");
  if (typeof model !== "string" || model.trim() === "") throw new GatewayError("invalid_model");
  return model;
}
