// A TCP proxy for fault tests, put between the service and a real server (Redis): it forwards bytes
// unchanged and can add latency, black-hole the traffic (bytes are held, as a partition that heals
// holds them in TCP's retransmissions, and delivered in order when it heals), drop every
// connection, refuse new ones (the port stops listening: ECONNREFUSED) and accept them again on the
// same port.
import net from "node:net";

interface Held {
  due: number;
  data: Buffer;
}

/** One direction of one connection: chunks leave in order, each no earlier than its due time. */
class Pipe {
  readonly #queue: Held[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly to: net.Socket,
    private readonly proxy: TcpProxy,
  ) {}

  push(data: Buffer): void {
    this.#queue.push({ due: Date.now() + this.proxy.latencyMs, data });
    this.pump();
  }

  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.proxy.blackholed) return;
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.#queue.shift();
      if (!this.to.destroyed) this.to.write(head.data);
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }
}

export class TcpProxy {
  /** Added to every chunk, both directions. */
  latencyMs = 0;
  #blackholed = false;
  readonly #server: net.Server;
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket; pipes: Pipe[] }>();
  #port = 0;
  /** Connections accepted since start (a client reconnecting shows here). */
  accepted = 0;
  /** The last bytes clients sent (latin1, at most 64 KiB), to see which commands reached the proxy. */
  #sent = "";
  #sentTotal = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.#server = net.createServer((client) => this.#accept(client));
  }

  /** Listens on a free port of 127.0.0.1 and forwards to `target` ("host:port" or a redis:// URL). */
  static async start(target: string): Promise<TcpProxy> {
    const url = new URL(target.includes("://") ? target : `tcp://${target}`);
    const proxy = new TcpProxy(url.hostname, Number(url.port));
    await proxy.#listen(0);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /** The proxy's address as a redis:// URL. */
  get redisUrl(): string {
    return `redis://127.0.0.1:${this.#port}`;
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** A mark for sentSince(). */
  mark(): number {
    return this.#sentTotal;
  }

  /** What clients sent since `mark` (as far as the last 64 KiB reach), held or not. */
  sentSince(mark: number): string {
    return this.#sent.slice(Math.max(0, this.#sent.length - (this.#sentTotal - mark)));
  }

  /** Holds every byte (new connections are accepted but hear nothing) until heal(). */
  blackhole(): void {
    this.#blackholed = true;
  }

  /** Ends the black hole: held bytes go on, in order; latency stays as set. */
  heal(): void {
    this.#blackholed = false;
    for (const p of this.#pairs) for (const pipe of p.pipes) pipe.pump();
  }

  /** Resets every open connection (both sides); the port keeps accepting. */
  dropAll(): void {
    for (const p of [...this.#pairs]) this.#close(p);
  }

  /** Drops every connection and stops listening: connecting is refused until accept(). */
  async refuse(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.dropAll();
    await closed;
  }

  /** Listens again on the same port. */
  async accept(): Promise<void> {
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    this.dropAll();
    if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, "127.0.0.1", () => {
        this.#server.off("error", reject);
        const addr = this.#server.address();
        if (typeof addr === "object" && addr !== null) this.#port = addr.port;
        resolve();
      });
    });
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    const toUpstream = new Pipe(upstream, this);
    const toClient = new Pipe(client, this);
    const pair = { client, upstream, pipes: [toUpstream, toClient] };
    this.#pairs.add(pair);
    client.on("data", (d: Buffer) => {
      this.#sent = (this.#sent + d.toString("latin1")).slice(-65536);
      this.#sentTotal += d.length;
      toUpstream.push(d);
    });
    upstream.on("data", (d: Buffer) => toClient.push(d));
    const close = () => this.#close(pair);
    for (const s of [client, upstream]) {
      s.on("error", close);
      s.on("close", close);
    }
  }

  #close(pair: { client: net.Socket; upstream: net.Socket; pipes: Pipe[] }): void {
    if (!this.#pairs.delete(pair)) return;
    for (const pipe of pair.pipes) pipe.stop();
    // A reset, not a clean FIN: the way a crashed peer or a dropped route looks to the client.
    for (const s of [pair.client, pair.upstream]) if (!s.destroyed) s.resetAndDestroy();
  }
}
