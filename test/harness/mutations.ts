// Applying an ext_proc HeaderMutation / BodyMutation the way Envoy's ext_proc filter does
// (source/extensions/filters/http/ext_proc/mutation_utils.cc, filters/common/mutation_rules).
import type { MutationRulesModel } from "./bootstrap-filters";
import type { BodyMutationMsg, HeaderMutationMsg, HeaderValueOptionMsg } from "./ext-proc-types";
import type { HeaderMap } from "./header-map";

export type MutationOp = "set" | "append" | "remove";

export interface RejectedMutation {
  /** Name of the ext_proc filter (plus "(upstream)" for upstream filters). */
  filter: string;
  op: MutationOp;
  header: string;
  reason: string;
}

export interface MutationContext {
  rules: MutationRulesModel;
  /** CONTINUE_AND_REPLACE: Envoy lets :method change then, for compatibility. */
  replacingMessage: boolean;
  maxHeadersCount: number;
  maxHeadersKb: number;
  onRejected: (op: MutationOp, header: string, reason: string) => void;
  /** Things that are accepted but probably not what the server meant. */
  onNote: (note: string) => void;
}

/** ok, or the reason Envoy turns the mutation into a local reply (500). */
export type MutationResult = { ok: true } | { ok: false; error: string };

/** Envoy's routing headers: changed only with mutation_rules.allow_all_routing. */
const ROUTING_HEADERS = new Set(["host", ":authority", ":method", ":scheme"]);
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/;
const BAD_VALUE = /[\r\n\0]/;

function isAllowed(rules: MutationRulesModel, name: string): boolean {
  if (rules.disallowExpression?.test(name)) return false;
  if (rules.allowExpression?.test(name)) return true;
  if (rules.disallowAll) return false;
  if (!rules.allowAllRouting && ROUTING_HEADERS.has(name)) return false;
  if (rules.disallowSystem && name.startsWith(":")) return false;
  if (!rules.allowEnvoy && name.startsWith("x-envoy")) return false;
  return true;
}

export function checkMutation(rules: MutationRulesModel, op: MutationOp, name: string, value: string): "ok" | "ignore" | "fail" {
  let allowed = isAllowed(rules, name);
  // Pseudo-headers and host can never be removed, whatever the rules say.
  if (op === "remove" && (name.startsWith(":") || name === "host")) allowed = false;
  if (allowed && op !== "remove" && name === ":status") {
    const code = Number(value);
    allowed = Number.isInteger(code) && code >= 200 && code <= 599;
  }
  if (allowed) return "ok";
  return rules.disallowIsError ? "fail" : "ignore";
}

function actionName(option: HeaderValueOptionMsg): string {
  const action = option.append_action;
  if (action === undefined || action === 0) return "APPEND_IF_EXISTS_OR_ADD";
  if (typeof action === "string") return action;
  return ["APPEND_IF_EXISTS_OR_ADD", "ADD_IF_ABSENT", "OVERWRITE_IF_EXISTS_OR_ADD", "OVERWRITE_IF_EXISTS"][action] ?? String(action);
}

/**
 * What one set_headers entry does: "append", "overwrite", or "skip".
 * APPEND_IF_EXISTS_OR_ADD with `append` unset (or true) appends: that is the newer Envoy behaviour
 * and is modelled on purpose, so a server that forgets `append: {value: false}` is caught by tests
 * (older Envoy treated unset `append` as overwrite in ext_proc).
 */
function setMode(option: HeaderValueOptionMsg, exists: boolean): "append" | "overwrite" | "skip" {
  switch (actionName(option)) {
    case "ADD_IF_ABSENT":
      return exists ? "skip" : "overwrite";
    case "OVERWRITE_IF_EXISTS_OR_ADD":
      return "overwrite";
    case "OVERWRITE_IF_EXISTS":
      return exists ? "overwrite" : "skip";
    default:
      // As Envoy's C++ protobuf reads it: a present BoolValue whose false value proto3 left off the
      // wire (decoded here as {}) is has_append() true, value() false.
      return option.append != null && option.append.value !== true ? "overwrite" : "append";
  }
}

function bytesToString(bytes: Buffer | Uint8Array | undefined): string {
  return bytes === undefined ? "" : Buffer.from(bytes).toString("utf8");
}

export function applyHeaderMutation(headers: HeaderMap, mutation: HeaderMutationMsg | undefined, ctx: MutationContext): MutationResult {
  if (mutation === undefined) return { ok: true };
  const removes = mutation.remove_headers ?? [];
  const sets = mutation.set_headers ?? [];
  if (removes.length > ctx.maxHeadersCount || sets.length > ctx.maxHeadersCount) {
    ctx.onRejected("set", "*", "mutation has more entries than max_headers_count");
    return { ok: false, error: "Header mutation count exceeds the HCM header count limit" };
  }
  for (const raw of removes) {
    if (!HEADER_NAME.test(raw)) {
      ctx.onRejected("remove", raw, "invalid header name");
      return { ok: false, error: "Invalid character in remove_headers mutation." };
    }
    const name = raw.toLowerCase();
    const result = checkMutation(ctx.rules, "remove", name, "");
    if (result === "ok") headers.remove(name);
    else {
      ctx.onRejected("remove", name, "not allowed by mutation rules");
      if (result === "fail") return { ok: false, error: `Invalid attempt to remove ${name}` };
    }
  }
  for (const option of sets) {
    const hv = option.header;
    if (hv === undefined) continue;
    const key = hv.key ?? "";
    const hasValue = (hv.value ?? "") !== "";
    const hasRaw = hv.raw_value !== undefined && hv.raw_value.length > 0;
    if (hasValue && hasRaw) {
      ctx.onRejected("set", key, "both value and raw_value set");
      return { ok: false, error: "Only one of value or raw_value in the HeaderValue message should be set." };
    }
    // Current Envoy (runtime flag send_header_raw_value, on by default) reads raw_value only.
    if (hasValue) ctx.onNote(`set_headers "${key}" uses \`value\`; Envoy reads raw_value only, so the header is set to ""`);
    const value = bytesToString(hv.raw_value);
    if (!HEADER_NAME.test(key) || BAD_VALUE.test(value)) {
      ctx.onRejected("set", key, "invalid header name or value");
      return { ok: false, error: "Invalid character in set_headers mutation." };
    }
    const name = key.toLowerCase();
    const mode = setMode(option, headers.has(name));
    if (mode === "skip") continue;
    const op: MutationOp = mode === "append" && headers.has(name) ? "append" : "set";
    let result = checkMutation(ctx.rules, op, name, value);
    if (ctx.replacingMessage && name === ":method") result = "ok";
    if (result !== "ok") {
      ctx.onRejected(op, name, "not allowed by mutation rules");
      if (result === "fail") return { ok: false, error: `Invalid attempt to modify ${name}` };
      continue;
    }
    if (mode === "append") headers.add(name, value);
    else headers.set(name, value);
  }
  if (headers.byteSize() > ctx.maxHeadersKb * 1024 || headers.size > ctx.maxHeadersCount) {
    ctx.onRejected("set", "*", "headers exceed the HCM limits after mutation");
    return { ok: false, error: "Header mutation causes end result header count or size to exceed the limits" };
  }
  return { ok: true };
}

/** BodyMutation: `body` replaces, `clear_body: true` empties, nothing set keeps the body. */
export function applyBodyMutation(body: Buffer, mutation: BodyMutationMsg | undefined): Buffer {
  if (mutation === undefined) return body;
  if (mutation.body !== undefined || mutation.mutation === "body") return Buffer.from(mutation.body ?? Buffer.alloc(0));
  if (mutation.clear_body === true) return Buffer.alloc(0);
  return body;
}

/** The length Envoy compares content-length with: body_mutation().body().size(). */
export function mutatedBodyLength(mutation: BodyMutationMsg): number {
  return mutation.body?.length ?? 0;
}
