import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { replaceTopLevelString } from "../src/api/json-splice";

const splice = (s: string, v = "gpt-4o") => replaceTopLevelString(Buffer.from(s), "model", v)?.toString();

describe("replaceTopLevelString", () => {
  const table: Array<[string, string | undefined]> = [
    ['{"model":"smart","messages":[]}', '{"model":"gpt-4o","messages":[]}'],
    ['{ "messages" : [ {"model":"inner"} ] , "model" : "smart" }', '{ "messages" : [ {"model":"inner"} ] , "model" : "gpt-4o" }'],
    ['{"a":"x\\"model\\":\\"no\\"","model":"s"}', '{"a":"x\\"model\\":\\"no\\"","model":"gpt-4o"}'],
    ['{"model":"a","model":"b"}', '{"model":"gpt-4o","model":"gpt-4o"}'],
    ['{"mod\\u0065l":"smart"}', '{"mod\\u0065l":"gpt-4o"}'],
    ['{"a":"\\\\","model":"s"}', '{"a":"\\\\","model":"gpt-4o"}'],
    ['{"meta":{"model":"x"}}', undefined],
    ['{"model":42}', undefined],
    ['[{"model":"x"}]', undefined],
    ['{"model":"unterminated}', undefined],
    ["", undefined],
  ];
  for (const [input, expected] of table) it(JSON.stringify(input), () => assert.equal(splice(input), expected));

  it("escapes the new value", () => assert.equal(splice('{"model":"x"}', 'a"b\\c'), '{"model":"a\\"b\\\\c"}'));

  it("agrees with JSON.parse on generated objects (any key order, nesting, escapes, whitespace)", () => {
    const json = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(fc.dictionary(fc.string(), json), fc.string(), fc.string(), fc.boolean(), (obj, model, target, pretty) => {
        delete (obj as Record<string, unknown>).model;
        const doc = { ...obj, model };
        const text = pretty ? JSON.stringify(doc, null, 2) : JSON.stringify(doc);
        const out = replaceTopLevelString(Buffer.from(text), "model", target);
        assert.ok(out, text);
        assert.deepEqual(JSON.parse(out.toString()), { ...(JSON.parse(text) as object), model: target });
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => void replaceTopLevelString(Buffer.from(bytes), "model", "m")), { numRuns: 5000 });
  });
});
