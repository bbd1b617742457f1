// Runs the real kernel adapters inside a network namespace for tests: started by NetnsPool.worker()
// as `ip netns exec <ns> node --import tsx test/harness/netns-worker.ts`. See netns.ts for the why.
//
// Protocol: one JSON object per line on stdin { id, target, method, args, options }, one answer per
// line on stdout { id, ok: true, value } | { id, ok: false, error: { name, message, stack, props } }.
// Adapters are constructed lazily per (target, options). Exits when stdin closes.

import { createInterface } from "node:readline";

type Factory = (options: any) => Promise<object>;

const factories: Record<string, Factory> = {
  worker: async () => ({ ping: () => ({ pid: process.pid }) }),
  sysctl: async (o) => new (await import("../../agents/hostagent/kernel/sysctl.js")).ProcSysctlManager(o),
  fwmark: async (o) => new (await import("../../agents/hostagent/kernel/nftables.js")).NftFwmarkManager(o),
  links: async (o) => new (await import("../../agents/hostagent/netlink/rtnetlink/index.js")).RtnlLinkManager(await rtSocket()),
  addresses: async (o) => new (await import("../../agents/hostagent/netlink/rtnetlink/index.js")).RtnlAddressManager(await rtSocket(), o),
  routes: async (o) => new (await import("../../agents/hostagent/netlink/rtnetlink/index.js")).RtnlRouteManager(await rtSocket(), o),
  // readNetKernelState over the real adapters: { read(sysctlKeys) }
  snapshot: async () => {
    const { readNetKernelState } = await import("../../agents/hostagent/kernel/snapshot.js");
    const managers = {
      links: await instance("links", undefined),
      addresses: await instance("addresses", undefined),
      routes: await instance("routes", undefined),
      fwmarks: await instance("fwmark", undefined),
      sysctls: await instance("sysctl", undefined),
    };
    return { read: (keys: string[][]) => readNetKernelState(managers, keys) };
  },
};

let rtSock: unknown;
async function rtSocket(): Promise<any> {
  if (!rtSock) {
    const { NetlinkSocket, NETLINK_ROUTE } = await import("../../agents/hostagent/netlink/socket.js");
    rtSock = NetlinkSocket.open(NETLINK_ROUTE);
  }
  return rtSock;
}

const instances = new Map<string, Promise<any>>();

function instance(target: string, options: unknown): Promise<any> {
  const key = `${target}\0${JSON.stringify(options ?? null)}`;
  let p = instances.get(key);
  if (!p) {
    const f = factories[target];
    if (!f) return Promise.reject(new Error(`unknown target ${target}`));
    p = f(options ?? {});
    instances.set(key, p);
  }
  return p;
}

function serialiseError(e: unknown) {
  if (e instanceof Error) {
    const props: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e)) if (typeof v !== "function" && typeof v !== "bigint") props[k] = v;
    return { name: e.name, message: e.message, stack: e.stack, props };
  }
  return { name: "Error", message: String(e), props: {} };
}

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let req: { id: number; target: string; method: string; args: unknown[]; options?: unknown };
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  try {
    const obj = await instance(req.target, req.options);
    const fn = obj[req.method];
    if (typeof fn !== "function") throw new Error(`${req.target} has no method ${req.method}`);
    const value = await fn.apply(obj, req.args ?? []);
    process.stdout.write(JSON.stringify(value === undefined ? { id: req.id, ok: true, undefined: true } : { id: req.id, ok: true, value }, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: serialiseError(e) }) + "\n");
  }
});
rl.on("close", () => process.exit(0));
