import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ERROR_CATALOGUE, GatewayError, renderError, type ErrorCode } from "../src/api/errors";
import { REPO_ROOT } from "./support/service";

describe("error catalogue", () => {
  const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    it(`${code} is documented in the README with its status`, () => {
      assert.match(readme, new RegExp(`\\| \`${code}\` \\| ${spec.status} \\|`));
    });
  }

  it("renders OpenAI and Anthropic shapes", () => {
    const e = new GatewayError("invalid_api_key" satisfies ErrorCode);
    const o = renderError(e, "openai");
    assert.equal(o.status, 401);
    assert.deepEqual(JSON.parse(o.body.toString()), { error: { message: ERROR_CATALOGUE.invalid_api_key.message, type: "invalid_request_error", param: null, code: "invalid_api_key" } });
    const a = renderError(e, "anthropic");
    assert.deepEqual(JSON.parse(a.body.toString()), { type: "error", error: { type: "authentication_error", message: ERROR_CATALOGUE.invalid_api_key.message } });
  });
});
