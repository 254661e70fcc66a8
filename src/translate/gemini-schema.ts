// JSON Schema (what OpenAI clients send for tool parameters and json_schema response formats) as
// Gemini's Schema, "a select subset of an OpenAPI 3.0 schema object"
// (https://ai.google.dev/api/caching#Schema). Gemini answers 400 for any key outside that subset,
// so the conversion keeps a fixed list of keys and rewrites what has an equivalent:
//
// - kept: type (upper-cased), format (only float/double, int32/int64, enum/date-time, per type),
//   title, description, nullable, enum (as strings), properties, required, items, anyOf,
//   min/maxItems, min/maxLength, min/maxProperties, pattern, minimum, maximum, example, default,
//   propertyOrdering;
// - rewritten: a type list (["string", "null"]) becomes one type plus nullable (several non-null
//   types become anyOf); `null` in enum and a {type: "null"} anyOf branch become nullable; const
//   becomes a one-value enum; oneOf becomes anyOf; allOf members are merged; local $ref
//   ("#/$defs/X", "#/definitions/X", any JSON pointer into the same document) is inlined, and a
//   recursive one ends as a plain object of the referenced type;
// - stripped: everything else, notably $schema, $id, $defs/definitions (once inlined),
//   additionalProperties, patternProperties, unevaluatedProperties, not, if/then/else,
//   exclusiveMinimum/Maximum, multipleOf, uniqueItems, contains, prefixItems, examples, readOnly,
//   writeOnly, deprecated, and formats Gemini does not list (email, uri, uuid...).
import type { JsonObject } from "../api/request-body";
import { isRecord } from "../api/json";

const KEPT = ["title", "description", "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "pattern", "minimum", "maximum", "example", "default", "propertyOrdering"];
const FORMATS: Record<string, readonly string[]> = { STRING: ["enum", "date-time"], NUMBER: ["float", "double"], INTEGER: ["int32", "int64"] };
const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object", "null"]);
/** Inlining repeated $refs can multiply a schema; past this many nodes the rest is left open. */
const MAX_NODES = 4000;
const MAX_DEPTH = 40;

interface Walk {
  root: unknown;
  nodes: number;
  /** $refs being inlined on the current path: meeting one again means the schema is recursive. */
  refs: string[];
}

export function toGeminiSchema(schema: unknown): JsonObject {
  return convert(schema, { root: schema, nodes: 0, refs: [] }, 0);
}

/** Whether a converted schema is an object without properties (Gemini rejects those as function parameters). */
export function isEmptyObjectSchema(schema: JsonObject): boolean {
  const props = schema["properties"];
  return schema["type"] === "OBJECT" && (!isRecord(props) || Object.keys(props).length === 0) && schema["anyOf"] === undefined;
}

function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#")) return undefined;
  let at: unknown = root;
  for (const raw of ref.slice(1).split("/").slice(1)) {
    let key: string;
    try {
      key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    } catch {
      return undefined;
    }
    at = isRecord(at) ? at[key] : Array.isArray(at) ? at[Number(key)] : undefined;
    if (at === undefined) return undefined;
  }
  return at;
}

/** allOf members merged into one schema: properties and required united, other keys first one wins. */
function mergeAll(parts: unknown[], walk: Walk): JsonObject {
  const out: JsonObject = {};
  const props: JsonObject = {};
  const required: string[] = [];
  for (let part of parts) {
    for (let hops = 0; isRecord(part) && typeof part["$ref"] === "string" && hops < 8; hops++) {
      const { $ref, ...rest } = part;
      const target = resolvePointer(walk.root, $ref as string);
      part = { ...(isRecord(target) ? target : {}), ...rest };
    }
    if (!isRecord(part)) continue;
    for (const [k, v] of Object.entries(part)) {
      if (k === "properties" && isRecord(v)) Object.assign(props, v);
      else if (k === "required" && Array.isArray(v)) required.push(...v.filter((r): r is string => typeof r === "string" && !required.includes(r)));
      else if (!(k in out)) out[k] = v;
    }
  }
  if (Object.keys(props).length > 0) out["properties"] = props;
  if (required.length > 0) out["required"] = required;
  return out;
}

function geminiType(t: unknown): string | undefined {
  return typeof t === "string" && TYPES.has(t.toLowerCase()) ? t.toUpperCase() : undefined;
}

function convert(s: unknown, walk: Walk, depth: number): JsonObject {
  if (!isRecord(s) || ++walk.nodes > MAX_NODES || depth > MAX_DEPTH) return {};
  const ref = s["$ref"];
  if (typeof ref === "string") {
    const { $ref: _ref, ...siblings } = s;
    const target = resolvePointer(walk.root, ref);
    if (walk.refs.includes(ref)) return { type: (isRecord(target) && geminiType(target["type"])) || "OBJECT" };
    walk.refs.push(ref);
    const out = convert({ ...(isRecord(target) ? target : {}), ...siblings }, walk, depth + 1);
    walk.refs.pop();
    return out;
  }
  if (Array.isArray(s["allOf"])) {
    const { allOf, ...rest } = s;
    return convert(mergeAll([rest, ...(allOf as unknown[])], walk), walk, depth + 1);
  }

  const out: JsonObject = {};
  let nullable = s["nullable"] === true;
  const rawType = s["type"];
  const types = Array.isArray(rawType) ? rawType : rawType === undefined ? [] : [rawType];
  const nonNull = types.filter((t) => t !== "null");
  if (types.length > nonNull.length) nullable = nonNull.length > 0 || nullable;
  if (types.length > 0 && nonNull.length === 0) out["type"] = "NULL";
  else if (nonNull.length === 1) {
    const t = geminiType(nonNull[0]);
    if (t !== undefined) out["type"] = t;
  }
  const anyOf: JsonObject[] = nonNull.length > 1 ? nonNull.flatMap((t) => (geminiType(t) ? [{ type: geminiType(t) }] : [])) : [];

  const values = Array.isArray(s["enum"]) ? s["enum"] : "const" in s ? [s["const"]] : undefined;
  if (values !== undefined) {
    if (values.includes(null)) nullable = true;
    out["enum"] = values.filter((v) => v !== null).map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  }
  const type = out["type"];
  if (typeof s["format"] === "string" && typeof type === "string" && FORMATS[type]?.includes(s["format"])) out["format"] = s["format"];
  for (const k of KEPT) if (s[k] !== undefined) out[k] = s[k];

  const props = s["properties"];
  if (isRecord(props)) {
    const converted: JsonObject = {};
    for (const [name, sub] of Object.entries(props)) converted[name] = convert(sub, walk, depth + 1);
    out["properties"] = converted;
    if (Array.isArray(s["required"])) out["required"] = s["required"].filter((r) => typeof r === "string" && r in converted);
  }
  const items = Array.isArray(s["items"]) ? s["items"][0] : s["items"];
  if (isRecord(items)) out["items"] = convert(items, walk, depth + 1);

  const branches = Array.isArray(s["anyOf"]) ? s["anyOf"] : Array.isArray(s["oneOf"]) ? s["oneOf"] : [];
  for (const b of branches) {
    if (isRecord(b) && b["type"] === "null" && Object.keys(b).length === 1) nullable = true;
    else anyOf.push(convert(b, walk, depth + 1));
  }
  // Optional[X] arrives as anyOf [X, null]: X itself, made nullable, is what Gemini reads best.
  if (anyOf.length === 1 && out["type"] === undefined) Object.assign(out, { ...anyOf[0], ...out });
  else if (anyOf.length > 0) out["anyOf"] = anyOf;

  if (out["type"] === undefined && out["anyOf"] === undefined) {
    if (out["properties"] !== undefined) out["type"] = "OBJECT";
    else if (out["items"] !== undefined) out["type"] = "ARRAY";
    // Gemini's enum values are strings (a const or untyped enum arrives here without a type).
    else if (out["enum"] !== undefined) out["type"] = "STRING";
  }
  if (nullable) out["nullable"] = true;
  return out;
}
