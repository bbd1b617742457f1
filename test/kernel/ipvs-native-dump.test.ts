// The netlink dump addon (agents/hostagent/netlink/native/dump.c) on the IPVS kernel: snapshot()
// through the addon must return exactly what the `netlink` package path returns for the same table
// (every decoded field, counters included), and a dump list with a refused request must give the
// same per-dump parts and typed errors both ways. The addon is required: a target where it is missing
// or does not load fails here (CI included) — it is never skipped. (IPVS dumps never carry
// NLM_F_DUMP_INTR — ip_vs_ctl.c does not track a dump generation — so that flag is covered only by
// the addon's C path being the same check as socket.ts; the host unit test covers kernel errors and
// transport failures.)
import { beforeAll, describe, expect, it } from "vitest";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";

let target: KernelTarget;
let guest: string;
beforeAll(async () => {
  target = await kernelTarget();
  guest = await bundleForGuest("test/kernel/guest/ipvs-native-dump.ts");
});

// 60 services (TCP, UDP, IPv6, fwmark) with 0..12 destinations: some dumps need several parts.
function rules(): string {
  const out: string[] = [];
  for (let i = 0; i < 60; i++) {
    const kind = i % 4;
    const sel = kind === 0 ? `-t 198.18.1.${i}:80` : kind === 1 ? `-u 198.18.1.${i}:53` : kind === 2 ? `-t [2001:db8::${(i + 1).toString(16)}]:443` : `-f ${2000 + i}`;
    out.push(`-A ${sel} -s ${i % 2 ? "wrr" : "sh"}${i % 5 === 0 ? " -p 120" : ""}`);
    for (let j = 0; j < i % 13; j++) {
      const addr = kind === 2 ? `[2001:db8:2::${(j + 1).toString(16)}]` : `198.51.100.${j + 1}`;
      out.push(`-a ${sel} -r ${addr}:${9000 + j} ${["-m", "-g", "-i"][j % 3]} -w ${(i + j) % 9}`);
    }
  }
  return out.join("\n") + "\n";
}

describe("netlink dump addon on the IPVS kernel", () => {
  it("snapshot() through the addon equals the netlink-package path; per-dump parts and errors match too", async () => {
    await mustExec(target, "ipvsadm -C && ipvsadm -R", { stdin: rules() });
    try {
      const out = await mustExec(target, `node ${guest}`, { timeoutMs: 300_000 });
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as {
        ok: boolean;
        loadError?: string;
        error?: { message: string };
        nativeUsed: boolean;
        nativeRequests: number;
        services: number;
        snapshotNative: string;
        snapshotPlain: string;
        dumps: { native: { parts: string[][]; errors: unknown[]; stray: number }; socket: { parts: string[][]; errors: unknown[] } };
      };
      expect(r.error, r.loadError).toBeUndefined();
      expect(r.nativeUsed).toBe(true);
      expect(r.services).toBe(60);
      expect(r.nativeRequests).toBe(61); // one service dump + one destination dump per service
      expect(JSON.parse(r.snapshotNative)).toEqual(JSON.parse(r.snapshotPlain));
      expect((JSON.parse(r.snapshotNative) as { destinations: unknown[] }[]).reduce((n, s) => n + s.destinations.length, 0)).toBeGreaterThan(300);

      expect(r.dumps.native.parts).toEqual(r.dumps.socket.parts);
      expect(r.dumps.native.errors).toEqual(r.dumps.socket.errors);
      expect(r.dumps.native.errors[1]).toMatchObject({ name: "NetlinkError", code: expect.stringMatching(/^E(OPNOTSUPP|NOTSUP)$/), op: "IPVS_CMD_GET_DEST(dump)" });
      expect(r.dumps.native.parts[0]!.length).toBeGreaterThan(0);
      expect(r.dumps.native.parts[2]).toEqual([]); // no such service: an empty dump, not an error
      expect(r.dumps.native.stray).toBe(0);
    } finally {
      await mustExec(target, "ipvsadm -C");
    }
  });
});
