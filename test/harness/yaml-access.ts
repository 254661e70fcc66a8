// Typed access to the untyped YAML tree, with errors that name the path inside the bootstrap.

export class BootstrapError extends Error {
  constructor(path: string, message: string) {
    super(`envoy bootstrap ${path}: ${message}`);
    this.name = "BootstrapError";
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function obj(value: unknown, path: string): Record<string, unknown> {
  if (!isObject(value)) throw new BootstrapError(path, `expected an object, got ${JSON.stringify(value)}`);
  return value;
}

export function optObj(value: unknown, path: string): Record<string, unknown> | undefined {
  return value === undefined || value === null ? undefined : obj(value, path);
}

export function arr(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new BootstrapError(path, `expected a list, got ${JSON.stringify(value)}`);
  return value;
}

export function optStr(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new BootstrapError(path, `expected a string, got ${JSON.stringify(value)}`);
  return value;
}

export function str(value: unknown, path: string): string {
  const s = optStr(value, path);
  if (s === undefined) throw new BootstrapError(path, "is required");
  return s;
}

/** Numbers; proto JSON also allows 64-bit integers as strings. Wrapper messages ({value}) too. */
export function optNum(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (isObject(value) && "value" in value) return optNum(value["value"], path);
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) throw new BootstrapError(path, `expected a number, got ${JSON.stringify(value)}`);
  return n;
}

/** Booleans, including google.protobuf.BoolValue written as {value: true}. */
export function optBool(value: unknown, path: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (isObject(value) && "value" in value) return optBool(value["value"], path);
  if (typeof value !== "boolean") throw new BootstrapError(path, `expected a boolean, got ${JSON.stringify(value)}`);
  return value;
}

export function strList(value: unknown, path: string): string[] {
  return arr(value, path).map((v, i) => str(v, `${path}[${i}]`));
}

/** google.protobuf.Duration in proto JSON ("1.5s") or object ({seconds, nanos}) form, in ms. */
export function optDurationMs(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(value.trim());
    if (m === null) throw new BootstrapError(path, `invalid duration "${value}" (expected e.g. "0.25s")`);
    return Math.round(Number(m[1]) * 1000);
  }
  const o = obj(value, path);
  const seconds = optNum(o["seconds"], `${path}.seconds`) ?? 0;
  const nanos = optNum(o["nanos"], `${path}.nanos`) ?? 0;
  return Math.round(seconds * 1000 + nanos / 1e6);
}

/** Fails on keys the harness does not model, so a config never silently means something else. */
export function rejectUnmodelled(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const key of keys) {
    if (o[key] !== undefined) throw new BootstrapError(`${path}.${key}`, "is not modelled by the test harness");
  }
}
