// Network namespaces for kernel tests on the host kernel (rtnetlink, nftables, sysctls).
//
// How the adapters run inside a namespace
// ---------------------------------------
// A netlink socket, /proc/sys/net and `nft` all act on the network namespace of the process that
// opens / runs them, and Node cannot setns(2) a thread. So the test process never enters a
// namespace: for each namespace it starts ONE long-lived worker process,
//
//     ip netns exec <ns> node --import tsx test/harness/netns-worker.ts
//
// (tsx compiles the TypeScript adapters on the fly, ~0.3 s once per worker, no bundle step), and
// talks to it over stdin/stdout with newline-delimited JSON: { id, target, method, args } →
// { id, ok, value | error }. `worker.adapter<FwmarkManager>("fwmark")` returns a proxy with the
// adapter's interface, so a test calls the real adapter exactly like the reconciler will; typed
// errors come back as instances of their classes (name → class map below). The adapters stay free
// of any netns code: on a Director the agent simply runs in the namespace it manages.
//
// The oracle is independent of the adapters: `ip -n <ns> -j ...`, `ip netns exec <ns> nft -j ...`,
// `ip netns exec <ns> cat /proc/sys/...` — other binaries, run from the test process.
//
// Cleanup: every namespace and worker is tracked by the NetnsPool that made it. Call
// `pool.cleanup()` in afterAll (it kills the workers and deletes the namespaces — veths inside go
// with them). As a backstop, a process 'exit' hook deletes anything still tracked synchronously,
// a worker exits when its stdin closes (the test process died), and `sweepStaleNamespaces()` removes
// namespaces left by test processes that no longer exist (names carry the creating pid).

import { execFile, execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import * as kernelErrors from "../../agents/hostagent/kernel/errors.js";
import * as netlinkErrors from "../../agents/hostagent/netlink/errors.js";

const NAME_PREFIX = "lvsft";
const WORKER = fileURLToPath(new URL("./netns-worker.ts", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<RunResult & { code: number }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
      if (err && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(" ")} failed (${code}): ${stderr || err.message}`));
        return;
      }
      resolve({ stdout, stderr, code });
    });
  });
}

export class Netns {
  constructor(readonly name: string) {}

  /** Runs a command inside the namespace (ip netns exec). */
  exec(cmd: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}) {
    return run("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }

  /** `ip -n <ns> -j <args>` parsed. */
  async ip<T = any>(...args: string[]): Promise<T> {
    const r = await run("ip", ["-n", this.name, "-j", ...args]);
    return (r.stdout.trim() === "" ? [] : JSON.parse(r.stdout)) as T;
  }

  /** `nft -j <args>` inside the namespace, parsed. */
  async nftJson(...args: string[]): Promise<any> {
    const r = await this.exec("nft", ["-j", ...args]);
    return JSON.parse(r.stdout);
  }

  /** Plain `nft <args>` (text) inside the namespace. */
  nft(...args: string[]) {
    return this.exec("nft", args);
  }

  /** Reads /proc/sys/<path> as seen from inside the namespace (cat runs there). */
  async procSys(path: string): Promise<string> {
    return (await this.exec("cat", [`/proc/sys/${path}`])).stdout.trim();
  }
}

export interface VethPair {
  a: { ns: Netns; ifname: string; address?: string };
  b: { ns: Netns; ifname: string; address?: string };
}

/** A typed proxy of an adapter living in a worker. */
export type Remote<T> = { [K in keyof T]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never };

const ERROR_CLASSES: Record<string, new (...a: any[]) => Error> = {};
for (const mod of [kernelErrors, netlinkErrors] as Record<string, unknown>[]) {
  for (const [k, v] of Object.entries(mod)) {
    if (typeof v === "function" && (v as { prototype?: unknown }).prototype instanceof Error) ERROR_CLASSES[k] = v as new (...a: any[]) => Error;
  }
}

function reviveError(e: { name: string; message: string; stack?: string; props: Record<string, unknown> }): Error {
  const cls = ERROR_CLASSES[e.name];
  const err: Error = cls ? Object.create(cls.prototype) : new Error(e.message);
  Object.assign(err, e.props, { message: e.message, name: e.name });
  Object.defineProperty(err, "stack", { value: `${e.name}: ${e.message}\n    (in netns worker)\n${e.stack ?? ""}`, enumerable: false });
  return err;
}

export class NetnsWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited = false;
  private stderr = "";

  constructor(readonly ns: Netns, private readonly child: ChildProcessWithoutNullStreams) {
    const rl = createInterface({ input: child.stdout });
    rl.on("line", (line) => {
      let msg: any;
      try {
        msg = JSON.parse(line);
      } catch {
        return; // stray output (e.g. a warning) — ignore
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.undefined ? undefined : msg.value);
      else p.reject(reviveError(msg.error));
    });
    child.stderr.on("data", (d) => {
      this.stderr = (this.stderr + d.toString()).slice(-8192);
    });
    child.on("exit", (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) p.reject(new Error(`netns worker in ${ns.name} exited (${code ?? signal}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  call(target: string, method: string, args: unknown[], options?: unknown): Promise<any> {
    if (this.exited) return Promise.reject(new Error(`netns worker in ${this.ns.name} has exited: ${this.stderr}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(JSON.stringify({ id, target, method, args, options }) + "\n");
    });
  }

  /**
   * Proxy of adapter `target` ("sysctl", "fwmark", "links", "addresses", "routes"; see netns-worker.ts)
   * constructed in the worker with `options`.
   */
  adapter<T extends object>(target: string, options?: unknown): Remote<T> {
    return new Proxy({} as Remote<T>, {
      get: (_t, method) => (typeof method === "string" && method !== "then" ? (...args: unknown[]) => this.call(target, method, args, options) : undefined),
    });
  }

  /** Ends the worker: closes stdin (it exits on EOF), SIGKILL after 2 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    await done;
    clearTimeout(t);
  }
}

const liveNamespaces = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const name of liveNamespaces) {
      try {
        execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
      } catch {
        /* already gone */
      }
    }
  });
}

/** Deletes lvsft-<pid>-* namespaces whose creating process is gone (crashed earlier runs). */
export function sweepStaleNamespaces(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync("/run/netns");
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = new RegExp(`^${NAME_PREFIX}-(\\d+)-`).exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (alive) continue;
    try {
      execFileSync("ip", ["netns", "del", n], { stdio: "ignore" });
      removed.push(n);
    } catch {
      /* ignore */
    }
  }
  return removed;
}

let counter = 0;

export class NetnsPool {
  readonly namespaces: Netns[] = [];
  readonly workers: NetnsWorker[] = [];

  constructor() {
    installExitHook();
    sweepStaleNamespaces();
  }

  /** A fresh namespace named lvsft-<pid>-<n>-<rand>, with lo up. */
  async create(): Promise<Netns> {
    const name = `${NAME_PREFIX}-${process.pid}-${++counter}-${randomBytes(2).toString("hex")}`;
    await run("ip", ["netns", "add", name]);
    liveNamespaces.add(name);
    const ns = new Netns(name);
    this.namespaces.push(ns);
    await run("ip", ["-n", name, "link", "set", "lo", "up"]);
    // A new namespace copies the host's IPv4 conf (net.core.devconf_inherit_init_net=0), so a host
    // with ip_forward=1 would hand every test namespace a router. Start from the kernel defaults.
    await run("ip", ["netns", "exec", name, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    return ns;
  }

  /**
   * A veth pair between two namespaces, both ends up, with optional addresses (CIDR, e.g.
   * "192.0.2.1/24"). The peer end is created in `b` directly, so nothing appears in the host namespace.
   */
  async veth(a: Netns, aIf: string, b: Netns, bIf: string, addrs: { a?: string; b?: string } = {}): Promise<VethPair> {
    await run("ip", ["-n", a.name, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.name]);
    for (const [ns, ifname, addr] of [[a, aIf, addrs.a], [b, bIf, addrs.b]] as const) {
      if (addr) await run("ip", ["-n", ns.name, "addr", "add", addr, "dev", ifname]);
      await run("ip", ["-n", ns.name, "link", "set", ifname, "up"]);
    }
    return { a: { ns: a, ifname: aIf, address: addrs.a }, b: { ns: b, ifname: bIf, address: addrs.b } };
  }

  /** Starts the adapter worker inside `ns` and waits until it answers. */
  async worker(ns: Netns): Promise<NetnsWorker> {
    const child = spawn("ip", ["netns", "exec", ns.name, process.execPath, "--import", "tsx", WORKER], {
      cwd: REPO_ROOT,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    const w = new NetnsWorker(ns, child);
    this.workers.push(w);
    await w.call("worker", "ping", []);
    return w;
  }

  /** Stops all workers, deletes all namespaces. Safe to call twice; never throws. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.workers.splice(0).map((w) => w.stop()));
    for (const ns of this.namespaces.splice(0)) {
      await run("ip", ["netns", "del", ns.name], { allowFail: true });
      liveNamespaces.delete(ns.name);
    }
  }
}

/** Names of namespaces existing right now (for the tests' own leak checks). */
export async function listNamespaces(): Promise<string[]> {
  try {
    return readdirSync("/run/netns");
  } catch {
    return [];
  }
}
