// Strict validation of an Envoy bootstrap (parsed YAML/JSON) against Envoy's own protos, the way Envoy
// reads it: YAML -> JSON -> protobuf JSON parser with unknown fields rejected. Message types come from
// the API snapshot in @grpc/grpc-js-xds (see envoy-protos.ts); typed_config payloads are resolved
// through their "@type" and loaded on demand.
//
// Not checked: protoc-gen-validate constraints other than "required" (ranges, lengths, patterns),
// deprecation, and whether an extension is compiled into the Envoy binary.
import fs from "node:fs";
import path from "node:path";
import { Enum, Field, MapField, Root, Type } from "protobufjs";
import { ENVOY_PROTO_INCLUDE_DIRS } from "./envoy-protos";
import { newRootWithIncludes, PARSE_OPTIONS } from "./proto-subset";

/** A field newer than the 1.31 API snapshot, accepted anyway. */
export interface NewerEnvoyField {
  /** `<message full name>.<field name>`, the field name in snake_case. */
  readonly path: string;
  /** Scalar type name (`bool`, `uint32`, ...) or full name of a message/enum in the snapshot. */
  readonly type: string;
  readonly repeated?: boolean;
  /** First Envoy release whose API has the field (from Envoy's changelogs). */
  readonly since: string;
}

/**
 * Fields our configs may use that the snapshot lacks. Keep it short: every entry is a field that the
 * pinned Envoy (envoy/envoy.yaml names it) has but 1.31 does not, so configs using it need >= `since`.
 */
export const NEWER_ENVOY_FIELDS: readonly NewerEnvoyField[] = [
  {
    // changelogs/1.32.0.yaml, area ext_proc: "Added support for send_body_without_waiting_for_header_response".
    path: "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor.send_body_without_waiting_for_header_response",
    type: "bool",
    since: "1.32.0",
  },
];

export interface ValidateOptions {
  /** Replaces NEWER_ENVOY_FIELDS (tests). */
  readonly newerFields?: readonly NewerEnvoyField[];
}

const BOOTSTRAP_PROTO = "envoy/config/bootstrap/v3/bootstrap.proto";
const BOOTSTRAP_TYPE = "envoy.config.bootstrap.v3.Bootstrap";
const TYPE_URL_PREFIX = "type.googleapis.com/";

// ---------------------------------------------------------------------------------------------------
// Envoy's type universe, loaded lazily: bootstrap.proto first, then one file per new "@type".

let rootCache: Root | undefined;
let fileIndexCache: Map<string, string> | undefined;

function envoyRoot(): Root {
  if (rootCache === undefined) {
    const root = newRootWithIncludes(ENVOY_PROTO_INCLUDE_DIRS);
    root.loadSync(BOOTSTRAP_PROTO, PARSE_OPTIONS);
    rootCache = root;
  }
  return rootCache;
}

/**
 * Top-level message full name -> include-relative .proto path, from a one-time text scan of the
 * include dirs. Envoy's protos are clang-formatted: `package` and top-level `message` declarations
 * start at column 0, nested ones are indented. The first include dir wins, as with protoc.
 */
function fileIndex(): Map<string, string> {
  if (fileIndexCache !== undefined) return fileIndexCache;
  const index = new Map<string, string>();
  for (const dir of ENVOY_PROTO_INCLUDE_DIRS) {
    for (const rel of fs.readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      if (!rel.endsWith(".proto")) continue;
      const text = fs.readFileSync(path.join(dir, rel), "utf8");
      const pkg = /^package\s+([\w.]+)\s*;/m.exec(text)?.[1];
      for (const match of text.matchAll(/^message\s+(\w+)/gm)) {
        const name = pkg ? `${pkg}.${match[1]}` : `${match[1]}`;
        if (!index.has(name)) index.set(name, rel.split(path.sep).join("/"));
      }
    }
  }
  fileIndexCache = index;
  return index;
}

function lookupLoaded(root: Root, fullName: string): Type | Enum | undefined {
  const found = root.lookup(`.${fullName}`);
  return found instanceof Type || found instanceof Enum ? found : undefined;
}

/** The message or enum `fullName`, loading the file that declares it (or its outer message) if needed. */
function resolveEnvoyType(fullName: string): Type | Enum | undefined {
  const root = envoyRoot();
  const loaded = lookupLoaded(root, fullName);
  if (loaded !== undefined) return loaded;
  const parts = fullName.split(".");
  for (let n = parts.length; n > 0; n--) {
    const file = fileIndex().get(parts.slice(0, n).join("."));
    if (file === undefined) continue;
    root.loadSync(file, PARSE_OPTIONS);
    return lookupLoaded(root, fullName);
  }
  return undefined;
}

/** A message of Envoy's API snapshot, e.g. to check whether it has a field yet. */
export function lookupEnvoyMessage(fullName: string): Type | undefined {
  const found = resolveEnvoyType(fullName);
  return found instanceof Type ? found : undefined;
}

// ---------------------------------------------------------------------------------------------------
// JSON paths in messages: `a.b[0].c`, map entries and non-identifier keys as `["key"]`.

const childPath = (parent: string, key: string): string =>
  /^[A-Za-z_]\w*$/.test(key) ? (parent === "" ? key : `${parent}.${key}`) : `${parent}[${JSON.stringify(key)}]`;
const mapEntryPath = (parent: string, key: string): string => `${parent}[${JSON.stringify(key)}]`;
const indexPath = (parent: string, i: number): string => `${parent}[${i}]`;

type JsonObject = { [key: string]: unknown };
const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

const show = (v: unknown): string => (Array.isArray(v) ? "an array" : v === null ? "null" : `${typeof v} ${JSON.stringify(v)}`);

/** protoc's default JSON name: underscores dropped, the following letter upper-cased. */
const jsonName = (name: string): string => name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

// ---------------------------------------------------------------------------------------------------
// Scalars, following the proto3 JSON mapping that Envoy's config loader applies.

const INT_RANGES: Record<string, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

/** Error text for `value` as scalar `type`, or undefined when valid. */
function scalarError(type: string, value: unknown): string | undefined {
  const range = INT_RANGES[type];
  if (range !== undefined) {
    // proto3 JSON: integers as numbers or decimal strings (64-bit ones usually as strings).
    let n: bigint | undefined;
    if (typeof value === "number" && Number.isInteger(value)) n = BigInt(value);
    else if (typeof value === "string" && /^-?\d+$/.test(value)) n = BigInt(value);
    if (n === undefined) return `expected ${type} (integer or integer string), got ${show(value)}`;
    if (n < range[0] || n > range[1]) return `${value} is out of range for ${type}`;
    return undefined;
  }
  switch (type) {
    case "double":
    case "float":
      if (typeof value === "number") return undefined;
      if (typeof value === "string" && /^(NaN|-?Infinity|-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/.test(value)) return undefined;
      return `expected ${type}, got ${show(value)}`;
    case "bool":
      return typeof value === "boolean" ? undefined : `expected bool, got ${show(value)}`;
    case "string":
      return typeof value === "string" ? undefined : `expected string, got ${show(value)}`;
    case "bytes":
      // Standard or URL-safe base64, padding optional.
      return typeof value === "string" && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value) && value.length % 4 !== 1
        ? undefined
        : `expected base64 bytes, got ${show(value)}`;
    default:
      return `unsupported scalar type ${type}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Well-known types with their own JSON form.

// Max |Duration| per duration.proto: 10,000 years in seconds.
const MAX_DURATION_SECONDS = 315_576_000_000n;
const WRAPPERS = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map((t) => `google.protobuf.${t}Value`),
);

/**
 * Validates `value` as a well-known type that has a special JSON form; returns false if `fullName`
 * is not such a type (then it is an ordinary message, e.g. google.protobuf.Empty as `{}`).
 */
function validateWellKnown(fullName: string, type: Type, value: unknown, at: string, ctx: Ctx): boolean {
  const fail = (msg: string): true => (ctx.errors.push(`${at}: ${msg}`), true);
  if (WRAPPERS.has(fullName)) {
    // A wrapper is written as its bare scalar (`max_requests: 5`), never as `{value: 5}`.
    const inner = type.fields["value"];
    const err = inner && scalarError(inner.type, value);
    return err === undefined ? true : fail(`${fullName}: ${err}`);
  }
  switch (fullName) {
    case "google.protobuf.Duration": {
      // Decimal seconds with an "s" suffix and at most 9 fractional digits: "1s", "0.25s", "-2.5s".
      const m = typeof value === "string" ? /^-?(\d+)(\.\d{1,9})?s$/.exec(value) : null;
      if (m === null) return fail(`expected a duration like "1s" or "0.25s", got ${show(value)}`);
      return BigInt(m[1] ?? "0") > MAX_DURATION_SECONDS ? fail(`duration ${String(value)} is out of range`) : true;
    }
    case "google.protobuf.Timestamp":
      return typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(value)
        ? true
        : fail(`expected an RFC 3339 timestamp, got ${show(value)}`);
    case "google.protobuf.FieldMask":
      return typeof value === "string" ? true : fail(`expected a field mask string, got ${show(value)}`);
    case "google.protobuf.Struct":
      return isObject(value) ? true : fail(`expected an object (Struct), got ${show(value)}`);
    case "google.protobuf.ListValue":
      return Array.isArray(value) ? true : fail(`expected an array (ListValue), got ${show(value)}`);
    case "google.protobuf.Value":
      return true;
    case "google.protobuf.Any":
      validateAny(value, at, ctx);
      return true;
    default:
      return false;
  }
}

/** True for types whose JSON form is not an object of fields, which then sits in Any as "value". */
const hasSpecialJson = (fullName: string): boolean =>
  WRAPPERS.has(fullName) ||
  ["Duration", "Timestamp", "FieldMask", "Struct", "ListValue", "Value", "Any"].some((t) => fullName === `google.protobuf.${t}`);

function validateAny(value: unknown, at: string, ctx: Ctx): void {
  if (!isObject(value)) {
    ctx.errors.push(`${at}: expected an object with "@type" (Any), got ${show(value)}`);
    return;
  }
  const typeUrl = value["@type"];
  const typeAt = childPath(at, "@type");
  if (typeof typeUrl !== "string" || !typeUrl.startsWith(TYPE_URL_PREFIX)) {
    ctx.errors.push(`${typeAt}: expected "${TYPE_URL_PREFIX}<message full name>", got ${show(typeUrl)}`);
    return;
  }
  const fullName = typeUrl.slice(TYPE_URL_PREFIX.length);
  const type = resolveEnvoyType(fullName);
  if (!(type instanceof Type)) {
    ctx.errors.push(`${typeAt}: unknown message type ${fullName} (not in Envoy's API snapshot)`);
    return;
  }
  const { "@type": _typeUrl, ...rest } = value;
  if (hasSpecialJson(fullName)) {
    // proto3 JSON: an Any holding e.g. a Duration is {"@type": ".../google.protobuf.Duration", "value": "1s"}.
    for (const key of Object.keys(rest)) {
      if (key !== "value") ctx.errors.push(`${childPath(at, key)}: unknown field in Any of ${fullName}`);
    }
    if ("value" in rest) validateMessage(type, rest["value"], childPath(at, "value"), ctx);
    return;
  }
  validateMessage(type, rest, at, ctx);
}

// ---------------------------------------------------------------------------------------------------
// Messages, fields, enums.

interface Ctx {
  readonly errors: string[];
  readonly newer: readonly NewerEnvoyField[];
}

function validateEnum(type: Enum, value: unknown, at: string, ctx: Ctx): void {
  // Names are case-sensitive; numbers must be declared values too.
  if (typeof value === "string" && Object.prototype.hasOwnProperty.call(type.values, value)) return;
  if (typeof value === "number" && Object.values(type.values).includes(value)) return;
  const names = Object.keys(type.values).join(", ");
  ctx.errors.push(`${at}: ${show(value)} is not a value of enum ${type.fullName.slice(1)} (${names})`);
}

/** A single (non-repeated) value of `typeName`: scalar name or resolved message/enum. */
function validateSingle(typeName: string, resolved: Type | Enum | null | undefined, value: unknown, at: string, ctx: Ctx): void {
  if (resolved instanceof Type) validateMessage(resolved, value, at, ctx);
  else if (resolved instanceof Enum) validateEnum(resolved, value, at, ctx);
  else {
    const err = scalarError(typeName, value);
    if (err !== undefined) ctx.errors.push(`${at}: ${err}`);
  }
}

function validateField(field: Field, value: unknown, at: string, ctx: Ctx): void {
  if (field instanceof MapField) {
    if (!isObject(value)) {
      ctx.errors.push(`${at}: expected an object (map<${field.keyType}, ${field.type}>), got ${show(value)}`);
      return;
    }
    for (const [key, entry] of Object.entries(value)) {
      const entryAt = mapEntryPath(at, key);
      // JSON map keys are always strings; non-string key types are written in their string form.
      const badKey =
        field.keyType === "bool" ? key !== "true" && key !== "false" : field.keyType !== "string" && scalarError(field.keyType, key) !== undefined;
      if (badKey) {
        ctx.errors.push(`${entryAt}: map key is not a ${field.keyType}`);
      }
      if (entry !== null) validateSingle(field.type, field.resolvedType, entry, entryAt, ctx);
    }
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      ctx.errors.push(`${at}: expected an array (repeated ${field.type}), got ${show(value)}`);
      return;
    }
    value.forEach((item, i) => validateSingle(field.type, field.resolvedType, item, indexPath(at, i), ctx));
    return;
  }
  validateSingle(field.type, field.resolvedType, value, at, ctx);
}

/** The field `key` names in `type`: proto name (snake_case) or JSON name (lowerCamelCase). */
function findField(type: Type, key: string): Field | undefined {
  return type.fields[key] ?? type.fieldsArray.find((f) => (f.jsonName ?? jsonName(f.name)) === key);
}

function findNewerField(type: Type, key: string, ctx: Ctx): NewerEnvoyField | undefined {
  const prefix = `${type.fullName.slice(1)}.`;
  for (const spec of ctx.newer) {
    if (!spec.path.startsWith(prefix)) continue;
    const name = spec.path.slice(prefix.length);
    if (name === key || jsonName(name) === key) return spec;
  }
  return undefined;
}

function validateNewerField(spec: NewerEnvoyField, value: unknown, at: string, ctx: Ctx): void {
  const isScalar = INT_RANGES[spec.type] !== undefined || ["double", "float", "bool", "string", "bytes"].includes(spec.type);
  const resolved = isScalar ? undefined : resolveEnvoyType(spec.type);
  if (!isScalar && resolved === undefined) {
    ctx.errors.push(`${at}: NEWER_ENVOY_FIELDS entry ${spec.path} names unknown type ${spec.type}`);
    return;
  }
  if (spec.repeated !== true) return validateSingle(spec.type, resolved, value, at, ctx);
  if (!Array.isArray(value)) ctx.errors.push(`${at}: expected an array (repeated ${spec.type}), got ${show(value)}`);
  else value.forEach((item, i) => validateSingle(spec.type, resolved, item, indexPath(at, i), ctx));
}

function validateMessage(type: Type, value: unknown, at: string, ctx: Ctx): void {
  const fullName = type.fullName.slice(1);
  if (validateWellKnown(fullName, type, value, at, ctx)) return;
  if (!isObject(value)) {
    ctx.errors.push(`${at || "<root>"}: expected an object (${fullName}), got ${show(value)}`);
    return;
  }
  const seen = new Map<string, string>(); // field name -> key used
  const present = new Set<string>(); // fields set to something other than null
  const setOneofMembers = new Map<string, string[]>();
  for (const [key, fieldValue] of Object.entries(value)) {
    const keyAt = childPath(at, key);
    const field = findField(type, key);
    if (field === undefined) {
      const newer = findNewerField(type, key, ctx);
      if (newer !== undefined) validateNewerField(newer, fieldValue, keyAt, ctx);
      else ctx.errors.push(`${keyAt}: unknown field "${key}" in ${fullName}`);
      continue;
    }
    const previous = seen.get(field.name);
    if (previous !== undefined) ctx.errors.push(`${keyAt}: field ${field.name} is also set as "${previous}"`);
    seen.set(field.name, key);
    // proto3 JSON: null means "not set" for every field type except google.protobuf.Value.
    if (fieldValue === null && field.resolvedType?.fullName !== ".google.protobuf.Value") continue;
    present.add(field.name);
    const oneof = field.partOf;
    if (oneof && !oneof.isProto3Optional) setOneofMembers.set(oneof.name, [...(setOneofMembers.get(oneof.name) ?? []), key]);
    validateField(field, fieldValue, keyAt, ctx);
  }
  const here = at || "<root>";
  for (const [oneof, keys] of setOneofMembers) {
    if (keys.length > 1) ctx.errors.push(`${here}: oneof ${oneof} of ${fullName} allows one member, got ${keys.join(", ")}`);
  }
  // protoc-gen-validate "required" rules: Envoy runs them when it loads the config. PGV applies a
  // oneof member's rules only when that member is the one set, so those are skipped here.
  for (const field of type.fieldsArray) {
    if (field.partOf && !field.partOf.isProto3Optional) continue;
    if (field.options?.["(validate.rules).message.required"] === true && !present.has(field.name)) {
      ctx.errors.push(`${here}: missing required field ${field.name} of ${fullName}`);
    }
  }
  for (const oneof of type.oneofsArray) {
    if (oneof.options?.["(validate.required)"] === true && !setOneofMembers.has(oneof.name)) {
      ctx.errors.push(`${here}: one of ${oneof.oneof.join(", ")} (oneof ${oneof.name} of ${fullName}) is required`);
    }
  }
}

/**
 * Errors in an Envoy bootstrap (YAML parsed to plain data, aliases resolved), each prefixed with the
 * JSON path of the offending value. An empty list means Envoy's config parser would accept it.
 */
export function validateEnvoyBootstrap(config: unknown, options: ValidateOptions = {}): string[] {
  const ctx: Ctx = { errors: [], newer: options.newerFields ?? NEWER_ENVOY_FIELDS };
  const bootstrap = lookupEnvoyMessage(BOOTSTRAP_TYPE);
  if (bootstrap === undefined) throw new Error(`${BOOTSTRAP_TYPE} not found in ${BOOTSTRAP_PROTO}`);
  validateMessage(bootstrap, config, "", ctx);
  return ctx.errors;
}
