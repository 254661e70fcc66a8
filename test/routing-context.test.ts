import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ContextSigner, parseKeys, type RoutingContext } from "../src/context/routing-context";

const k1 = Buffer.alloc(32, 1);
const k2 = Buffer.alloc(32, 2);
const ctx: RoutingContext = { rid: "r", c: "alice", t: "openai-gpt-4o", ch: ["openai-gpt-4o", "azure-gpt-4o"], cl: "chain_openai-gpt-4o_0123abcd", p: "/v1/chat/completions", r: "smart", op: "chat.completions", m: "smart", iat: 1_000_000 };

describe("routing context", () => {
  it("round-trips", () => {
    const s = new ContextSigner([k1], 60_000);
    assert.deepEqual(s.verify(s.sign(ctx), 1_000_500), ctx);
  });
  it("rejects a different key, tampering, garbage and expiry", () => {
    const s = new ContextSigner([k1], 60_000);
    const token = s.sign(ctx);
    assert.deepEqual(new ContextSigner([k2], 60_000).verify(token, 1_000_000), { invalid: "bad signature" });
    const [v, p, sig] = token.split(".");
    const tampered = `${v}.${Buffer.from(JSON.stringify({ ...ctx, t: "other" })).toString("base64url")}.${sig}`;
    assert.deepEqual(s.verify(tampered, 1_000_000), { invalid: "bad signature" });
    assert.deepEqual(s.verify(`${v}.${p}`, 1_000_000), { invalid: "malformed" });
    assert.deepEqual(s.verify("", 1_000_000), { invalid: "malformed" });
    assert.deepEqual(s.verify("v1.%%%.%%%", 1_000_000), { invalid: "bad signature" });
    assert.deepEqual(s.verify(token, 1_000_000 + 60_001), { invalid: "expired" });
  });
  it("rejects a signed payload of the wrong shape", () => {
    const s = new ContextSigner([k1], 60_000);
    const token = s.sign({ ...ctx, c: 5 } as unknown as RoutingContext);
    assert.deepEqual(s.verify(token, 1_000_000), { invalid: "malformed payload" });
  });
  it("supports key rotation: the first key signs, any verifies", () => {
    const old = new ContextSigner([k1], 60_000).sign(ctx);
    const rotated = new ContextSigner([k2, k1], 60_000);
    assert.deepEqual(rotated.verify(old, 1_000_000), ctx);
    assert.deepEqual(new ContextSigner([k1], 60_000).verify(rotated.sign(ctx), 1_000_000), { invalid: "bad signature" });
  });
  it("refuses short keys and parses hex or text keys", () => {
    assert.throws(() => new ContextSigner([Buffer.alloc(8)], 1000), /at least 32 bytes/);
    const [hex, text] = parseKeys(`${"ab".repeat(32)}, some-long-shared-secret-text-of-32-bytes!`);
    assert.equal(hex?.length, 32);
    assert.equal(text?.toString(), "some-long-shared-secret-text-of-32-bytes!");
  });
});
