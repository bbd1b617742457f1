// Helpers for the fleet-distribution tests (test/integration/fleet-*.test.ts): a private
// nats-server with JetStream on a free port in a temp dir (for kill / restart / wipe), unique names
// on the shared server, and polling.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

export const SHARED_NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
export const NATS_SERVER_BIN = process.env.LVSFLEET_NATS_SERVER ?? "/usr/sbin/nats-server";

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect({ port, host: "127.0.0.1" });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A nats-server with JetStream of our own, on a fixed free port, storing in a temp dir. */
export class PrivateNats {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateNats> {
    const dir = await mkdtemp(join(tmpdir(), "lvsfleet-nats-"));
    const n = new PrivateNats(await freePort(), dir);
    await n.startProcess();
    return n;
  }

  async startProcess(): Promise<void> {
    const p = spawn(NATS_SERVER_BIN, ["-js", "-sd", join(this.dir, "js"), "-a", "127.0.0.1", "-p", String(this.port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    p.stderr!.on("data", (d) => (stderr = (stderr + String(d)).slice(-4000)));
    this.proc = p;
    await waitFor(`nats-server on ${this.port}`, async () => {
      if (p.exitCode !== null) throw new Error(`nats-server exited ${p.exitCode}: ${stderr}`);
      return (await portOpen(this.port)) && stderr.includes("Server is ready");
    }, 15_000, 20);
  }

  /** SIGKILL (no clean shutdown) and wait for the exit. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.startProcess();
  }

  /** Kill, delete the JetStream store, start again: the server comes back knowing nothing. */
  async wipeAndRestart(): Promise<void> {
    await this.kill();
    await rm(join(this.dir, "js"), { recursive: true, force: true });
    await this.startProcess();
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
