// Small JSON helpers shared by everything that reads untrusted JSON (request bodies, provider
// answers): a plain-object test and a parse that never throws.

/** A JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The JSON object in `text`, or undefined when it is not valid JSON or not an object. */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * String(v) for a value read from untrusted JSON. JSON can give an object its own `toString` that
 * is no function ({"toString": 1}); String(), `${}` and + throw a TypeError on it, which escaped the
 * translations as a failed ext_proc stream (found by test/fuzz-translate.test.ts).
 */
export function jsonText(v: unknown): string {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
