// Policy problems are reported so that an operator can fix them without reading our code:
// the file, the JSON path, the bad value and what to do about it.

export interface PolicyIssue {
  /** JSON path such as routes[2].target. Empty for the whole document. */
  path: string;
  message: string;
  /** The offending value, already shortened for display. Never a credential (the policy holds none). */
  value?: string;
  fix?: string;
}

export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly issues: PolicyIssue[],
  ) {
    super(formatIssues(file, issues));
    this.name = "PolicyError";
  }
}

export function formatIssues(file: string, issues: PolicyIssue[]): string {
  const lines = issues.map((i) => {
    const where = i.path === "" ? "(document)" : i.path;
    const got = i.value === undefined ? "" : ` (got ${i.value})`;
    const fix = i.fix ? ` Fix: ${i.fix}` : "";
    return `  ${file}: ${where}: ${i.message}${got}.${fix}`;
  });
  return `invalid policy ${file}:\n${lines.join("\n")}`;
}

export function jsonPath(segments: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (typeof s === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(String(s))}]`;
  }
  return out;
}

export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
