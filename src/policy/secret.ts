// Provider credentials are held in a Secret so that no log line, JSON dump or error message can
// print them by accident: every stringification yields "[redacted]".
import { closeSync, openSync, readSync } from "node:fs";
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

/**
 * The most a credential file may hold. Keys and tokens are tens to a few thousand bytes (an AWS session
 * token ~2 KB); a reference to the wrong file (a log, a device such as /dev/zero) must fail the load,
 * not read without end.
 */
export const MAX_CREDENTIAL_FILE_BYTES = 16 * 1024;

/**
 * A character a credential may not hold inside it (surrounding whitespace is trimmed): it goes into an
 * HTTP header, where a line break would be header injection and Envoy refuses any control character.
 */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Reads a credential reference. Throws an Error whose message names the source, never the value. */
export function resolveCredential(ref: Credential, env: NodeJS.ProcessEnv): Secret {
  if ("env" in ref) {
    const value = env[ref.env];
    if (value === undefined || value.trim() === "") {
      throw new Error(`environment variable ${ref.env} is not set (or empty); export it before starting the router`);
    }
    return checked(value.trim(), `environment variable ${ref.env}`);
  }
  const value = readBounded(ref.file).trim();
  if (value === "") throw new Error(`credential file ${ref.file} is empty`);
  return checked(value, `credential file ${ref.file}`);
}

function checked(value: string, source: string): Secret {
  if (hasControlCharacter(value)) throw new Error(`${source} holds a line break or another control character inside the credential; a credential is one line`);
  return new Secret(value);
}

/** The file's text, at most MAX_CREDENTIAL_FILE_BYTES (one more byte read tells a larger file). */
function readBounded(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const buf = Buffer.alloc(MAX_CREDENTIAL_FILE_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buf.length; length += n) n = readSync(fd, buf, length, buf.length - length, null);
    if (length > MAX_CREDENTIAL_FILE_BYTES) throw new Error(`credential file ${file} is larger than ${MAX_CREDENTIAL_FILE_BYTES / 1024} KiB: is the reference pointing at the right file?`);
    return buf.toString("utf8", 0, length);
  } catch (err) {
    if (!(err as NodeJS.ErrnoException).code) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`credential file ${file} cannot be read (${code}); mount it or fix the path`, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
