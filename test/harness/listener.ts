// A real HTTP/1.1 server on 127.0.0.1 that feeds requests into the harness, so curl or fetch can
// go "through Envoy".
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { HarnessRequest } from "./hcm";
import type { HeaderRecord } from "./header-map";

export interface ListenerResponse {
  status: number;
  headers: HeaderRecord;
  body: Buffer;
  /** True when Envoy would reset the downstream stream after sending what it had. */
  reset?: boolean;
}

export type RequestHandler = (req: HarnessRequest) => Promise<ListenerResponse>;

function rawHeaderRecord(req: IncomingMessage): HeaderRecord {
  const out: HeaderRecord = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values !== undefined) out[name] = values.length === 1 ? (values[0] ?? "") : [...values];
  }
  return out;
}

async function serve(handler: RequestHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const out = await handler({
    method: req.method ?? "GET",
    path: req.url ?? "/",
    headers: rawHeaderRecord(req),
    body: Buffer.concat(chunks),
  });
  for (const [name, value] of Object.entries(out.headers)) res.setHeader(name, value);
  res.writeHead(out.status);
  if (out.reset === true) {
    res.write(out.body, () => res.socket?.destroy());
    return;
  }
  res.end(out.body);
}

export async function startListener(handler: RequestHandler, port: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    serve(handler, req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`envoy harness error: ${err instanceof Error ? err.message : String(err)}`);
      } else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
