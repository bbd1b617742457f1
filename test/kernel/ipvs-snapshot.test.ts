// IpvsClient.snapshot() on a real kernel: the full read (one service dump + one destination dump per
// service, through the netlink dump addon, or spread over sockets and optionally dump worker threads) returns exactly the table that
// ipvsadm -R programmed, whatever the split between this thread and the workers.
import { beforeAll, describe, expect, it } from "vitest";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";

let target: KernelTarget;
let guest: string;
let worker: string;
beforeAll(async () => {
  target = await kernelTarget();
  [guest, worker] = await Promise.all([bundleForGuest("test/kernel/guest/ipvs-snapshot.ts"), bundleForGuest("agents/hostagent/netlink/ipvs/dump-worker.ts")]);
});

interface Read {
  ok: boolean;
  lines?: string[];
  services?: number;
  requests?: number;
  native?: boolean;
  error?: { name: string; code?: string; message: string };
}

async function read(opts: Record<string, unknown>): Promise<Read> {
  const out = await mustExec(target, `node ${guest} '${JSON.stringify(opts)}'`, { timeoutMs: 300_000 });
  return JSON.parse(out.trim().split("\n").at(-1)!) as Read;
}

// 240 services: IPv4 TCP/UDP, IPv6, fwmark; 0..5 destinations each with varying forward/weight.
const S = 240;
const fwd = ["-m", "-g", "-i"] as const;
const fwdName = { "-m": "masq", "-g": "route", "-i": "tunnel" } as const;
function table(): { rules: string; lines: string[] } {
  const rules: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < S; i++) {
    const kind = i % 4;
    const sel =
      kind === 0 ? `-t 198.18.${i >> 8}.${i & 255}:80` : kind === 1 ? `-u 198.18.${i >> 8}.${i & 255}:53` : kind === 2 ? `-t [2001:db8::${i.toString(16)}]:443` : `-f ${1000 + i}`;
    const key =
      kind === 0 ? `tcp 198.18.${i >> 8}.${i & 255} 80` : kind === 1 ? `udp 198.18.${i >> 8}.${i & 255} 53` : kind === 2 ? `tcp 2001:db8::${i.toString(16)} 443` : `f${1000 + i}/ipv4`;
    const sched = i % 3 === 0 ? "rr" : "wlc";
    rules.push(`-A ${sel} -s ${sched}`);
    lines.push(`S ${key} ${sched}`);
    for (let j = 0; j < i % 6; j++) {
      const f = fwd[(i + j) % 3]!;
      const weight = (i * 7 + j) % 50;
      const v6 = kind === 2;
      const addr = v6 ? `2001:db8:1::${(j + 1).toString(16)}` : `198.51.100.${j + 1}`;
      // ipvsadm gives non-NAT destinations of a non-fwmark service the service's port.
      const svcPort = [80, 53, 443, 0][kind]!;
      const port = f === "-m" || kind === 3 ? 8000 + j : svcPort;
      rules.push(`-a ${sel} -r ${v6 ? `[${addr}]` : addr}:${8000 + j} ${f} -w ${weight}`);
      lines.push(`D ${key} -> ${addr} ${port} ${fwdName[f]} ${weight}`);
    }
  }
  return { rules: rules.join("\n") + "\n", lines };
}

describe("IpvsClient.snapshot on the kernel", () => {
  it("reads back exactly what ipvsadm -R programmed: on this thread, and with a dump worker taking part or most of it", async () => {
    const { rules, lines } = table();
    await mustExec(target, "ipvsadm -C && ipvsadm -R", { stdin: rules });
    const want = [...lines].sort();
    // Default: the netlink dump addon (must be built and load in the guest — checked, never skipped);
    // then the netlink-package paths it replaces: this thread alone, and with a dump worker.
    const runs: Record<string, unknown>[] = [
      {},
      { nativeDumpThreads: 2, nativeDumpBatch: 16 },
      { nativeDumps: false },
      { nativeDumps: false, dumpWorkers: 1, dumpWorkerScript: worker },
      { nativeDumps: false, dumpWorkers: 1, dumpWorkerScript: worker, dumpWorkerShare: 0.9, dumpWorkerParallelism: 3, dumpParallelism: 2 },
    ];
    for (const opts of runs) {
      const r = await read(opts);
      expect(r.error, JSON.stringify(opts)).toBeUndefined();
      expect(r.native, JSON.stringify(opts)).toBe(opts.nativeDumps !== false);
      expect(r.services).toBe(S);
      expect([...r.lines!].sort(), JSON.stringify(opts)).toEqual(want);
      // One service dump + one destination dump per service, wherever they ran (workers report theirs).
      expect(r.requests, JSON.stringify(opts)).toBe(1 + S);
    }
    await mustExec(target, "ipvsadm -C");
  });

  it("a dump worker that cannot start fails open() with the worker's error, not a hang", async () => {
    const r = await read({ nativeDumps: false, dumpWorkers: 1, dumpWorkerScript: "/nonexistent/dump-worker.mjs" });
    expect(r.ok).toBe(false);
    expect(r.error!.message).toMatch(/nonexistent|Cannot find|ERR_MODULE_NOT_FOUND/);
  });
});
