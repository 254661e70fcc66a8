// A sidecar listening on a unix: socket survives its own crash: the restarted process removes the
// socket file the dead one left (nothing answers on it) instead of failing to bind, and it never
// removes a live socket or a file that is not a socket.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import pino from "pino";
import { startService, type RunningService } from "../src/service";
import { removeStaleSocket, unixSocketPath } from "../src/unix-socket";
import { HealthClient } from "./support/health-client";
import { examplePolicy, TEST_ENV, TEST_HMAC_KEY } from "./support/service";

const dir = mkdtempSync(path.join(tmpdir(), "llm-router-sock-"));
const policyFile = path.join(dir, "policy.json");
writeFileSync(policyFile, JSON.stringify(examplePolicy()));

/** A socket file whose owner was SIGKILLed while listening: what an OOM-killed sidecar leaves. */
function staleSocket(file: string): void {
  const r = spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, "SIGKILL"))`]);
  assert.equal(r.signal, "SIGKILL");
  assert.ok(statSync(file).isSocket());
}

function start(listen: string): Promise<RunningService> {
  return startService({
    policyFile,
    grpcListen: listen,
    adminListen: undefined,
    hmacKeys: [TEST_HMAC_KEY],
    contextMaxAgeMs: 60_000,
    maxBodyBytes: 1024 * 1024,
    log: pino({ level: "silent" }),
    watchPolicy: false,
    env: TEST_ENV,
  });
}

describe("unix: listen addresses", () => {
  const services: RunningService[] = [];
  after(async () => {
    for (const s of services) await s.shutdown(1000);
  });

  it("reads the socket path of every unix: form grpc-js takes", () => {
    assert.equal(unixSocketPath("unix:/run/x.sock"), "/run/x.sock");
    assert.equal(unixSocketPath("unix:///run/x.sock"), "/run/x.sock");
    assert.equal(unixSocketPath("unix:rel.sock"), "rel.sock");
    assert.equal(unixSocketPath("0.0.0.0:50051"), undefined);
  });

  it("a restarted service binds over the socket file its killed predecessor left, and opens it to the group", async () => {
    const file = path.join(dir, "stale.sock");
    staleSocket(file);
    const svc = await start(`unix:${file}`);
    services.push(svc);
    assert.equal(await new HealthClient(`unix:${file}`).check(""), "SERVING");
    assert.equal(statSync(file).mode & 0o777, 0o660);
  });

  it("a live socket is left alone (bind then reports it), and so is a file that is not a socket", async () => {
    const live = path.join(dir, "live.sock");
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(live, resolve));
    try {
      assert.equal(await removeStaleSocket(`unix:${live}`), false);
      assert.ok(statSync(live).isSocket());
      await assert.rejects(start(`unix:${live}`));
    } finally {
      server.close();
    }
    const plain = path.join(dir, "plain.sock");
    writeFileSync(plain, "not a socket");
    assert.equal(await removeStaleSocket(`unix:${plain}`), false);
    assert.ok(statSync(plain).isFile());
  });
});
