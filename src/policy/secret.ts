// Provider credentials are held in a Secret so that no log line, JSON dump or error message can
// print them by accident: every stringification yields "[redacted]".
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import type { Credential } from "./schema";

export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[redacted]";
  }
  toJSON(): string {
    return "[redacted]";
  }
  [inspect.custom](): string {
    return "[redacted]";
  }
}

/** Reads a credential reference. Throws an Error whose message names the source, never the value. */
export function resolveCredential(ref: Credential, env: NodeJS.ProcessEnv): Secret {
  if ("env" in ref) {
    const value = env[ref.env];
    if (value === undefined || value.trim() === "") {
      throw new Error(`environment variable ${ref.env} is not set (or empty); export it before starting the router`);
    }
    return new Secret(value.trim());
  }
  let text: string;
  try {
    text = readFileSync(ref.file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "read error";
    throw new Error(`credential file ${ref.file} cannot be read (${code}); mount it or fix the path`, { cause: err });
  }
  const value = text.trim();
  if (value === "") throw new Error(`credential file ${ref.file} is empty`);
  return new Secret(value);
}
