// One ext_proc Process stream, the way Envoy's filter uses it: messages are sent in order and each
// waits for the next response (or a timeout). Every message sent and received is recorded.
import * as grpc from "@grpc/grpc-js";
import { GRPC_MESSAGE_LIMIT_OPTIONS, PROCESS_PATH, extProcProto } from "./ext-proc-proto";
import type { ProcessingRequestMsg, ProcessingResponseMsg } from "./ext-proc-types";

/** What one ext_proc filter instance exchanged on its stream (exposed to tests as-is). */
export interface ExtProcRecord {
  filter: "downstream" | "upstream";
  /** The filter's name in the bootstrap. */
  name: string;
  /** Upstream filters: the attempt's cluster. */
  cluster?: string;
  /** Upstream filters: 1-based attempt number. */
  attempt?: number;
  /** Call metadata sent when the stream opened (grpc_service.initial_metadata). */
  metadata: Record<string, string>;
  /** Messages as the server decodes them (see ext-proc-types.ts for the shape). */
  sent: unknown[];
  received: unknown[];
  /** Why processing stopped early, if it did (timeout, gRPC error, spurious message...). */
  outcome?: string;
}

export type StreamEvent =
  | { type: "response"; message: ProcessingResponseMsg }
  | { type: "timeout" }
  | { type: "error"; code: number; details: string }
  | { type: "closed" };

interface Connection {
  client: grpc.Client;
  /** Streams opened on it so far. */
  opened: number;
  /** Streams still open. */
  active: number;
  retired: boolean;
}

/**
 * One HTTP/2 connection per ext_proc address, shared by all streams of a harness, renewed after
 * the gRPC cluster's max_requests_per_connection streams as Envoy does (the old connection drains:
 * its open streams finish, then it closes). Every client gets its own subchannel pool, so a new
 * client really is a new connection.
 */
export class ExtProcChannels {
  private readonly current = new Map<string, Connection>();
  private readonly all = new Set<Connection>();

  constructor(private readonly maxStreamsFor: (address: string) => number | undefined = () => undefined) {}

  /** A client for one new stream; call `done` when the stream ends. */
  open(address: string): { client: grpc.Client; done: () => void } {
    let conn = this.current.get(address);
    const max = this.maxStreamsFor(address);
    if (conn !== undefined && max !== undefined && conn.opened >= max) {
      conn.retired = true;
      if (conn.active === 0) this.closeConnection(conn);
      conn = undefined;
    }
    if (conn === undefined) {
      conn = { client: new grpc.Client(address, grpc.credentials.createInsecure(), { ...GRPC_MESSAGE_LIMIT_OPTIONS, "grpc.use_local_subchannel_pool": 1 }), opened: 0, active: 0, retired: false };
      this.current.set(address, conn);
      this.all.add(conn);
    }
    const c = conn;
    c.opened++;
    c.active++;
    let ended = false;
    return {
      client: c.client,
      done: () => {
        if (ended) return;
        ended = true;
        c.active--;
        if (c.retired && c.active === 0) this.closeConnection(c);
      },
    };
  }

  /** Connections opened so far (for tests of the renewal itself). */
  get connectionsOpened(): number {
    return this.all.size;
  }

  closeAll(): void {
    for (const conn of this.all) conn.client.close();
    this.current.clear();
  }

  private closeConnection(conn: Connection): void {
    conn.client.close();
  }
}

export class ExtProcStream {
  private readonly call: grpc.ClientDuplexStream<ProcessingRequestMsg, ProcessingResponseMsg>;
  private readonly queue: ProcessingResponseMsg[] = [];
  private terminal: StreamEvent | undefined;
  private waiter: ((event: StreamEvent) => void) | undefined;
  private closed = false;

  constructor(
    private readonly connection: { client: grpc.Client; done: () => void },
    metadata: ReadonlyArray<readonly [string, string]>,
    private readonly record: ExtProcRecord,
  ) {
    const md = new grpc.Metadata();
    for (const [k, v] of metadata) md.add(k, v);
    const proto = extProcProto();
    this.call = connection.client.makeBidiStreamRequest(PROCESS_PATH, proto.serializeRequest, proto.deserializeResponse, md, {});
    this.call.on("data", (message: ProcessingResponseMsg) => {
      this.record.received.push(message);
      this.queue.push(message);
      this.wake();
    });
    this.call.on("status", (status: grpc.StatusObject) => {
      this.connection.done();
      if (this.closed) return;
      // A clean close (OK) and an error are different events for Envoy (onGrpcClose / onGrpcError).
      this.terminal =
        status.code === grpc.status.OK ? { type: "closed" } : { type: "error", code: status.code, details: status.details };
      this.wake();
    });
    // Errors are reported through "status"; this listener only keeps them from being unhandled.
    this.call.on("error", () => undefined);
  }

  send(message: ProcessingRequestMsg): void {
    // Recorded as the server decodes it (oneof name in `request`, bytes as Buffers).
    const proto = extProcProto();
    this.record.sent.push(proto.deserializeRequest(proto.serializeRequest(message)));
    if (!this.closed) this.call.write(message);
  }

  /** The next response, or why there is none within `timeoutMs`. */
  next(timeoutMs: number): Promise<StreamEvent> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve({ type: "response", message: queued });
    if (this.terminal !== undefined) return Promise.resolve(this.terminal);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve({ type: "timeout" });
      }, timeoutMs);
      this.waiter = (event) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(event);
      };
    });
  }

  /** Envoy's closeStream(): half-close, then reset (the server sees end-of-stream or a cancel). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
    this.call.cancel();
    const waiter = this.waiter;
    if (waiter !== undefined) waiter({ type: "closed" });
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    const queued = this.queue.shift();
    if (queued !== undefined) waiter({ type: "response", message: queued });
    else if (this.terminal !== undefined) waiter(this.terminal);
  }
}
