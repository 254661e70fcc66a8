// Flag parsing shared by the commands: every serve flag has an environment variable twin.
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {
  override name = "UsageError";
}

export type OptionSpec = Record<string, { type: "string" | "boolean"; env?: string; default?: string; multiple?: boolean; short?: string }>;

export function parseOptions(argv: string[], spec: OptionSpec, env: NodeJS.ProcessEnv): Record<string, string | string[] | boolean | undefined> {
  const options: ParseArgsConfig["options"] = {};
  for (const [name, s] of Object.entries(spec)) {
    options[name] = { type: s.type, ...(s.multiple ? { multiple: true } : {}), ...(s.short ? { short: s.short } : {}) };
  }
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, allowPositionals: false, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const out: Record<string, string | string[] | boolean | undefined> = {};
  for (const [name, s] of Object.entries(spec)) {
    const v = values[name];
    if (v !== undefined) out[name] = v as string | string[] | boolean;
    else if (s.env !== undefined && env[s.env] !== undefined && env[s.env] !== "") out[name] = s.type === "boolean" ? env[s.env] === "true" || env[s.env] === "1" : (env[s.env] as string);
    else out[name] = s.default;
  }
  return out;
}

export function requireString(values: Record<string, unknown>, name: string, hint: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required (${hint})`);
  return v;
}

export function nonNegativeInt(values: Record<string, unknown>, name: string): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < 0) throw new UsageError(`--${name} must be 0 or a positive integer (got ${String(values[name])})`);
  return v;
}

export function positiveInt(values: Record<string, unknown>, name: string): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v <= 0) throw new UsageError(`--${name} must be a positive integer (got ${String(values[name])})`);
  return v;
}
