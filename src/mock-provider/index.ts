// Public surface of the mock LLM provider.
export { startMockProvider } from "./server";
export type { ForcedFailureOptions, MockProvider, MockProviderOptions, RecordedRequest } from "./server";
export { parseMockProviderArgs, runMockProviderCli } from "./main";
