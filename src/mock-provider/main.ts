// CLI: `node dist/src/mock-provider/main.js --port 8080 --host 0.0.0.0 --latency-ms 20
//        --stream-chunks 16 --failure-rate 0.05`; every flag also reads from the environment
// (MOCK_PORT, MOCK_HOST, MOCK_LATENCY_MS, MOCK_STREAM_CHUNKS, MOCK_FAILURE_RATE); flags win.
import { type MockProvider, type MockProviderOptions, startMockProvider } from "./server";

const USAGE = `usage: mock-provider [--port N] [--host H] [--latency-ms N] [--stream-chunks N] [--failure-rate F]
  env: MOCK_PORT MOCK_HOST MOCK_LATENCY_MS MOCK_STREAM_CHUNKS MOCK_FAILURE_RATE
  defaults: port 8080, host 0.0.0.0, no latency, natural reply length, no random failures`;

interface FlagSpec {
  env: string;
  key: keyof MockProviderOptions;
  kind: "int" | "float" | "string";
}

export const FLAGS: Record<string, FlagSpec> = {
  "--port": { env: "MOCK_PORT", key: "port", kind: "int" },
  "--host": { env: "MOCK_HOST", key: "host", kind: "string" },
  "--latency-ms": { env: "MOCK_LATENCY_MS", key: "latencyMs", kind: "int" },
  "--stream-chunks": { env: "MOCK_STREAM_CHUNKS", key: "streamChunks", kind: "int" },
  "--failure-rate": { env: "MOCK_FAILURE_RATE", key: "failureRate", kind: "float" },
};

function convert(flag: string, spec: FlagSpec, raw: string): string | number {
  if (spec.kind === "string") return raw;
  const value = Number(raw);
  const ok = spec.kind === "int" ? Number.isInteger(value) && value >= 0 : value >= 0 && value <= 1;
  if (raw.trim() === "" || !ok) {
    throw new Error(`${flag} (${spec.env}): invalid value "${raw}"; expected ${spec.kind === "int" ? "a non-negative integer" : "a number between 0 and 1"}`);
  }
  return value;
}

/** Parses flags (and their environment variables) into provider options. */
export function parseMockProviderArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): MockProviderOptions {
  const values: Record<string, string | number> = { port: 8080, host: "0.0.0.0" };
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const raw = env[spec.env];
    if (raw !== undefined && raw !== "") values[spec.key] = convert(flag, spec, raw);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const spec = FLAGS[flag];
    if (spec === undefined) throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
    values[spec.key] = convert(flag, spec, raw);
  }
  return values as MockProviderOptions;
}

/**
 * Starts the mock provider from command-line arguments and stops it on SIGINT/SIGTERM.
 * Resolves to undefined after printing the usage for --help.
 */
export async function runMockProviderCli(argv: readonly string[]): Promise<MockProvider | undefined> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return undefined;
  }
  const options = parseMockProviderArgs(argv);
  const provider = await startMockProvider(options);
  console.log(`mock provider listening on ${options.host ?? "127.0.0.1"}:${provider.port} (${provider.url})`);
  const stop = (): void => {
    provider.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return provider;
}

if (require.main === module) {
  runMockProviderCli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  });
}
