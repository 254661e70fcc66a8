// The driver's handle on a server child process (bench/server-*.ts): its port once it serves, its
// CPU time and memory on request (over IPC), and its shutdown.
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { FromServer, ToServer } from "./ipc";

/** process.memoryUsage() of a child, bytes; `gcRan`: taken right after a full GC. */
export type MemorySample = Omit<Extract<FromServer, { type: "memory" }>, "type" | "id">;

export class ServerChild {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (us: number) => void>();
  readonly #pendingMemory = new Map<number, (m: MemorySample) => void>();
  #nextId = 0;
  readonly port: Promise<number>;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    entry: string,
    args: string[] = [],
    /** Node options for the child besides the driver's own (e.g. --expose-gc). */
    execArgv: string[] = [],
  ) {
    this.#child = fork(path.join(__dirname, entry), args, { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [...process.execArgv, ...execArgv] });
    this.exited = new Promise((resolve) => this.#child.once("exit", () => resolve()));
    this.port = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} server did not start within 30 s`)), 30_000);
      this.#child.once("exit", (code) => reject(new Error(`${name} server exited with code ${code}`)));
      this.#child.on("message", (raw: unknown) => {
        const m = raw as FromServer;
        if (m.type === "ready") {
          clearTimeout(timer);
          resolve(m.port);
        } else if (m.type === "failed") {
          clearTimeout(timer);
          reject(new Error(`${name} server failed: ${m.message}`));
        } else if (m.type === "cpu") {
          this.#pending.get(m.id)?.(m.user + m.system);
          this.#pending.delete(m.id);
        } else if (m.type === "memory") {
          const { type: _type, id: _id, ...sample } = m;
          this.#pendingMemory.get(m.id)?.(sample);
          this.#pendingMemory.delete(m.id);
        }
      });
    });
    this.port.catch(() => undefined);
  }

  /** The child's total CPU time so far (user + system), µs. */
  cpu(): Promise<number> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, resolve);
      this.#send({ type: "cpu", id }, reject);
    });
  }

  /** The child's memory; with `gc`, after a full GC (if the child runs with --expose-gc). */
  memory(gc = false): Promise<MemorySample> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pendingMemory.set(id, resolve);
      this.#send({ type: "memory", id, gc }, reject);
    });
  }

  #send(m: ToServer, onError: (e: Error) => void = () => undefined): void {
    if (!this.#child.connected) {
      onError(new Error(`${this.name} server is gone`));
      return;
    }
    this.#child.send(m, (err) => (err ? onError(err) : undefined));
  }

  /** Asks the child to shut down; kills it if it is still there after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#send({ type: "stop" });
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
