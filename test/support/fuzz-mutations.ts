// The rules every header mutation the service sends must keep for Envoy to apply it as meant
// (/work/shared/envoy-notes.md, mutation rules): shared by the header and the stream fuzz suites.
import assert from "node:assert/strict";
import { MAX_RETRIES_HEADER } from "../../src/phases/gateway-headers";

export interface EncodedMutation {
  set_headers?: Array<{ header: { key: string; value?: string; raw_value?: Buffer }; append?: { value: boolean }; append_action?: string }>;
  remove_headers?: string[];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Envoy ignores these without mutation_rules (and x-envoy-* without allow_envoy). */
const NEVER_SET = new Set(["host", ":authority", ":scheme", ":method"]);

/**
 * raw_value only (value and raw_value together is a 500), explicit overwrite, no NUL/CR/LF, no
 * header the filter may not touch: x-envoy-* only x-envoy-max-retries, from the router phase (its
 * filter has allow_envoy), in reply to the request body; pseudo-headers and host never removed.
 */
export function checkMutation(m: EncodedMutation | undefined, phase: "router" | "upstream", kind: string): void {
  if (m === undefined) return;
  const setNames = new Set<string>();
  for (const h of m.set_headers ?? []) {
    const key = h.header.key;
    assert.ok(TOKEN.test(key) || /^:(path|status)$/.test(key), `set header name ${JSON.stringify(key)}`);
    assert.ok(h.header.value === undefined || h.header.value === "", "raw_value only (value and raw_value together is a 500)");
    // proto3 leaves empty bytes off the wire: an empty value arrives without raw_value (Envoy reads "").
    assert.ok(h.header.raw_value === undefined || Buffer.isBuffer(h.header.raw_value), `${key}: raw_value is bytes`);
    const raw = h.header.raw_value ?? Buffer.alloc(0);
    assert.ok(!raw.includes(0x0d) && !raw.includes(0x0a) && !raw.includes(0x00), `${key} value has CR, LF or NUL: ${JSON.stringify(raw.toString("latin1").slice(0, 200))}`);
    // A BoolValue that is present: proto3 leaves a false `value` off the wire, so it decodes as {}
    // (defaults off) and Envoy reads has_append() true, value() false.
    assert.ok(h.append !== undefined && h.append !== null && (h.append.value ?? false) === false, `${key}: append is set and false`);
    assert.equal(h.append_action, "OVERWRITE_IF_EXISTS_OR_ADD");
    assert.ok(!NEVER_SET.has(key), `sets ${key}`);
    if (key.startsWith("x-envoy-")) assert.ok(phase === "router" && key === MAX_RETRIES_HEADER && kind === "request_body", `sets ${key} (${phase}, ${kind})`);
    setNames.add(key);
  }
  for (const name of m.remove_headers ?? []) {
    assert.ok(!name.startsWith(":") && name !== "host", `removes ${name}`);
    assert.ok(!setNames.has(name), `${name} is both removed and set`);
  }
}
