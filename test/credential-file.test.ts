// Credential references (src/policy/secret.ts): a file is read with a bound, and a credential that
// would put a line break or another control character into a header is refused at load, naming the
// source and never the value.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { MAX_CREDENTIAL_FILE_BYTES, resolveCredential } from "../src/policy/secret";

const dir = mkdtempSync(path.join(tmpdir(), "llm-router-credential-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** The error resolveCredential throws; the test fails if it does not throw. */
function refusal(run: () => unknown): Error {
  try {
    run();
  } catch (err) {
    return err as Error;
  }
  assert.fail("expected a refusal");
}

describe("credential references", () => {
  it("reads a file's one line, surrounding whitespace and the final newline trimmed", () => {
    assert.equal(resolveCredential({ file: file("ok", "  sk-file-key\n") }, {}).reveal(), "sk-file-key");
    const exact = "k".repeat(MAX_CREDENTIAL_FILE_BYTES);
    assert.equal(resolveCredential({ file: file("exact", exact) }, {}).reveal(), exact);
  });

  it("refuses a file larger than the bound, and a device that never ends, without reading it all", () => {
    const big = refusal(() => resolveCredential({ file: file("big", Buffer.alloc(MAX_CREDENTIAL_FILE_BYTES + 1, 0x6b)) }, {}));
    assert.match(big.message, /larger than 16 KiB/);
    const zero = refusal(() => resolveCredential({ file: "/dev/zero" }, {}));
    assert.match(zero.message, /credential file \/dev\/zero is larger than/);
  });

  it("refuses a line break or control character inside the value, from a file or the environment, without printing it", () => {
    for (const secret of ["sk-one\nX-Injected: yes", "sk-two\r\nmore", "sk\u0000nul", "sk\ttab", "sk\u007fdel"]) {
      const fromFile = refusal(() => resolveCredential({ file: file("ctl", `${secret}\n`) }, {}));
      assert.match(fromFile.message, /credential file .*ctl holds a line break or another control character/);
      const fromEnv = refusal(() => resolveCredential({ env: "KEY" }, { KEY: secret }));
      assert.match(fromEnv.message, /environment variable KEY holds a line break/);
      for (const err of [fromFile, fromEnv]) assert.ok(!err.message.includes("sk"), err.message);
    }
  });

  it("names a missing file and an empty one", () => {
    assert.match(refusal(() => resolveCredential({ file: path.join(dir, "absent") }, {})).message, /cannot be read \(ENOENT\)/);
    assert.match(refusal(() => resolveCredential({ file: file("empty", " \n") }, {})).message, /is empty/);
    assert.match(refusal(() => resolveCredential({ file: dir }, {})).message, /cannot be read \(EISDIR\)/);
  });
});
