// Arbitraries shared by the fuzz suites: JSON documents as text (so duplicate keys, `__proto__`,
// numbers JSON.parse turns into Infinity and any whitespace survive into what the service parses),
// hostile object keys, and ways to cut a byte stream into chunks.
import assert from "node:assert/strict";
import fc from "fast-check";

/**
 * Keys that break naive code: prototype pollution (`__proto__`, `constructor`), and `toString` /
 * `valueOf`, which make String(obj) and `${obj}` throw when JSON gives them a non-function value.
 */
export const PROTOTYPE_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "toJSON", "__defineGetter__", "isPrototypeOf"] as const;

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 6 }) },
);

/** Number literals, including ones JSON.parse reads as Infinity, -0 or an imprecise double. */
export const numberLiteral: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom("1e400", "-1e400", "1E+999999", "-0", "0.0000000000000000000000001e-330", "9007199254740993", "123456789012345678901234567890123456789", "1.7976931348623157e308", "5e-324", "0e0", "-0.0e-0"),
  fc.tuple(fc.boolean(), fc.stringMatching(/^[1-9][0-9]{0,400}$/), fc.option(fc.stringMatching(/^[0-9]{1,50}$/)), fc.option(fc.integer({ min: -99999, max: 99999 }))).map(
    ([neg, int, frac, exp]) => `${neg ? "-" : ""}${int}${frac === null ? "" : `.${frac}`}${exp === null ? "" : `e${exp}`}`,
  ),
);

/** A JSON document as a tree that renders to text: keys may repeat, numbers are literal text. */
export type JsonTree =
  | { t: "lit"; text: string }
  | { t: "str"; v: string }
  | { t: "arr"; items: JsonTree[] }
  | { t: "obj"; entries: Array<[string, JsonTree]> };

const jsonString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom("\\", '"', "\u2028", "\ud800", "\udc00", "\u0000", "\n", "é", "\u{1F642}"), maxLength: 6 }) },
);

const leaf: fc.Arbitrary<JsonTree> = fc.oneof(
  fc.constantFrom("null", "true", "false").map((text): JsonTree => ({ t: "lit", text })),
  numberLiteral.map((text): JsonTree => ({ t: "lit", text })),
  jsonString.map((v): JsonTree => ({ t: "str", v })),
);

export function jsonTree(maxDepth = 4, keys: fc.Arbitrary<string> = hostileKey): fc.Arbitrary<JsonTree> {
  const { node } = fc.letrec<{ node: JsonTree; arr: JsonTree; obj: JsonTree }>((tie) => ({
    node: fc.oneof({ maxDepth, depthIdentifier: "json" }, leaf, tie("arr"), tie("obj")),
    arr: fc.array(tie("node"), { maxLength: 4, depthIdentifier: "json" }).map((items): JsonTree => ({ t: "arr", items })),
    obj: fc.array(fc.tuple(keys, tie("node")), { maxLength: 5, depthIdentifier: "json" }).map((entries): JsonTree => ({ t: "obj", entries })),
  }));
  return node;
}

/** An object at the top, with some of `fields` forced in (so documents look like API bodies). */
export function jsonObjectTree(fields: Record<string, fc.Arbitrary<JsonTree>>, maxDepth = 3): fc.Arbitrary<JsonTree> {
  const named = Object.entries(fields).map(([k, v]) => fc.option(v.map((tree): [string, JsonTree] => [k, tree]), { nil: undefined, freq: 3 }));
  return fc
    .tuple(fc.tuple(...named), fc.array(fc.tuple(hostileKey, jsonTree(maxDepth)), { maxLength: 3 }), fc.boolean())
    .map(([picked, extra, extraFirst]): JsonTree => {
      const chosen = picked.filter((e): e is [string, JsonTree] => e !== undefined);
      return { t: "obj", entries: extraFirst ? [...extra, ...chosen] : [...chosen, ...extra] };
    });
}

/** Whitespace JSON allows between tokens (and nothing else: no BOM, no form feed). */
export const jsonSpace: fc.Arbitrary<string> = fc.constantFrom("", " ", "\n", "\t", "\r\n", "  \n\t ");

export function renderJson(tree: JsonTree, space = ""): string {
  switch (tree.t) {
    case "lit":
      return tree.text;
    case "str":
      return JSON.stringify(tree.v);
    case "arr":
      return `[${space}${tree.items.map((i) => renderJson(i, space)).join(`${space},${space}`)}${space}]`;
    case "obj":
      return `{${space}${tree.entries.map(([k, v]) => `${JSON.stringify(k)}${space}:${space}${renderJson(v, space)}`).join(`${space},${space}`)}${space}}`;
  }
}

/** Cut points for a body of `length` bytes (sorted, distinct, inside the body). */
function cutsFor(rawCuts: readonly number[], length: number): number[] {
  return [...new Set(rawCuts.map((c) => (length === 0 ? 0 : c % (length + 1))))].filter((c) => c > 0 && c < length).sort((a, b) => a - b);
}

/** The body in pieces at `cuts`, with empty chunks wherever `empties` says (Envoy may send them). */
export function chunksOf(body: Buffer, cuts: readonly number[], empties: readonly number[] = []): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  const points = cutsFor(cuts, body.length);
  for (const p of [...points, body.length]) {
    if (empties.includes(out.length)) out.push(Buffer.alloc(0));
    out.push(body.subarray(at, p));
    at = p;
  }
  return out;
}

/** Raw cut offsets and empty-chunk positions, reduced modulo the body length by chunksOf. */
export const splits = fc.record({ cuts: fc.array(fc.nat(), { maxLength: 24 }), empties: fc.array(fc.nat({ max: 8 }), { maxLength: 2 }), emptyEnd: fc.boolean() });
export type Splits = { cuts: number[]; empties: number[]; emptyEnd: boolean };

/** Feeds `body` to `push` in the chunks `s` describes (end set on the last call); joins what it returns. */
export function feedSplit(body: Buffer, s: Splits, push: (chunk: Buffer, end: boolean) => Buffer | undefined): Buffer {
  const chunks = chunksOf(body, s.cuts, s.empties);
  if (s.emptyEnd) chunks.push(Buffer.alloc(0));
  const out: Buffer[] = [];
  chunks.forEach((c, i) => {
    const r = push(c, i === chunks.length - 1);
    out.push(r ?? c);
  });
  return Buffer.concat(out);
}

const PROTOTYPE_SNAPSHOT = Object.getOwnPropertyNames(Object.prototype).sort().join(",");
const ARRAY_PROTOTYPE_SNAPSHOT = Object.getOwnPropertyNames(Array.prototype).sort().join(",");

/** Nothing added to Object.prototype or Array.prototype (prototype pollution). */
export function assertPrototypesClean(): void {
  assert.equal(Object.getOwnPropertyNames(Object.prototype).sort().join(","), PROTOTYPE_SNAPSHOT, "Object.prototype was modified");
  assert.equal(Object.getOwnPropertyNames(Array.prototype).sort().join(","), ARRAY_PROTOTYPE_SNAPSHOT, "Array.prototype was modified");
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
  for (const k of ["polluted", "isAdmin", "x"]) assert.equal(({} as Record<string, unknown>)[k], undefined, `({}).${k} is set`);
}

/** Values a polluting document would plant, for assertPrototypesClean to look for. */
export const POLLUTION_PAYLOADS = [
  '{"__proto__":{"polluted":1,"isAdmin":true}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"__proto__":{"__proto__":{"x":1}}}',
  '[{"__proto__":{"polluted":1}}]',
];
