// TUN with GUE encapsulation end to end on a real kernel (Debian 6.1 in the VM): the control plane's
// compile turns a topology into per-host desired states, and the host agent's LinuxBackend (real
// adapters: IPVS genl, rtnetlink, generic netlink "fou", /proc/sys) applies them — the Director's
// IPVS service with `--tun-type gue --tun-port 6080` destinations, and on each real server the tunl0
// fallback device, the fou receive port in GUE mode and the VIP. Nothing here types `ip fou add`
// for lvsfleet's port: iproute2 only reads (the oracle) and plays "someone behind the agent's back".
//
//   lvsg-client 198.18.2.2 ── bridge lvsgbr0 ── 198.18.2.1 director (the target's namespace, VIP on lo)
//                                           ├── lvsg-rs1 198.18.2.11  tunl0 192.0.2.160/32, fou 6080 gue
//                                           └── lvsg-rs2 198.18.2.12  tunl0 192.0.2.160/32, fou 6080 gue
//
// The Director wraps each packet in IP-in-UDP/GUE to <rs>:6080; the fou port strips UDP + GUE and hands
// the inner IPIP packet to tunl0, where the VIP is; the real server answers the client directly.
import { toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, TunnelType } from "../../gen/lvsfleet/v1/types_pb.js";
import { compileSite } from "../../services/controlplane/compile/compile.js";
import { director, realServerHost, rs, topology, vs } from "../../services/controlplane/compile/testing.js";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import type { AgentStep } from "./guest/agent-backend.js";

interface Cycle {
  errors: { object: string; operation: string; message: string }[];
  drift: { object: string; found: string }[];
  foreign: { object: string; note: string }[];
  ops: number;
  writes: number;
  thrown?: string;
}

const N = 10;
// Each step starts node processes in the TCG guest (seconds each, tens of seconds under load).
const SLOW = 400_000;
const VIP = "192.0.2.160";

function states(withService = true): Map<string, HostDesiredState> {
  const t = topology({
    hosts: [
      director("dir", { lvsgbr0: ["198.18.2.1/24"] }),
      realServerHost("rs1", { eth0: ["198.18.2.11/24"] }),
      realServerHost("rs2", { eth0: ["198.18.2.12/24"] }),
    ],
    virtualServices: withService ? [vs("gue", { address: VIP, port: 80, scheduler: "rr", directors: ["dir"] })] : [],
    realServers: withService
      ? ["rs1", "rs2"].map((h, i) =>
          rs("gue", h, { address: `198.18.2.1${i + 1}`, forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.GUE, port: 6080 }, host: h }),
        )
      : [],
  });
  return compileSite(t, withService ? 1n : 2n);
}

const b64 = (d: HostDesiredState) => Buffer.from(toBinary(HostDesiredStateSchema, d)).toString("base64");
const apply = (d: HostDesiredState): AgentStep => ({ do: "apply", desired: b64(d) });
const exec = (cmd: string): AgentStep => ({ do: "exec", cmd });

const SETUP = `
set -e
ipvsadm -C
for n in lvsg-client lvsg-rs1 lvsg-rs2; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
ip link del lvsgbr0 2>/dev/null || true
ip addr del ${VIP}/32 dev lo 2>/dev/null || true
ip link add lvsgbr0 type bridge && ip link set lvsgbr0 up
ip addr add 198.18.2.1/24 dev lvsgbr0
ip link add lvsgc type veth peer name eth0 netns lvsg-client
ip link set lvsgc master lvsgbr0 && ip link set lvsgc up
ip -n lvsg-client addr add 198.18.2.2/24 dev eth0 && ip -n lvsg-client link set eth0 up
ip -n lvsg-client route add 192.0.2.0/24 via 198.18.2.1
i=10
for r in rs1 rs2; do
  i=$((i+1))
  ip link add lvsg$r type veth peer name eth0 netns lvsg-$r
  ip link set lvsg$r master lvsgbr0 && ip link set lvsg$r up
  ip -n lvsg-$r addr add 198.18.2.$i/24 dev eth0 && ip -n lvsg-$r link set eth0 up
  ip -n lvsg-$r route add default via 198.18.2.1
done
`;

const CLEANUP = `
ipvsadm -C
for n in lvsg-client lvsg-rs1 lvsg-rs2; do ip netns del $n 2>/dev/null; done
ip link del lvsgbr0 2>/dev/null; ip link del lvsgc 2>/dev/null
ip addr del ${VIP}/32 dev lo 2>/dev/null
true
`;

let target: KernelTarget;
let entry: string;
let probe: string;
let runId: string;

/** One agent process life in namespace `ns` ("" = the Director's, the target's own); its state dir is per host. */
async function agentRun(ns: string, host: string, steps: AgentStep[]): Promise<unknown[]> {
  const file = join(target.shareDir, `fou-steps-${randomUUID()}.json`);
  await writeFile(file, JSON.stringify(steps));
  const stateDir = join(target.shareDir, `fou-state-${runId}-${host}`);
  const out = await mustExec(target, `${ns ? `ip netns exec ${ns} ` : ""}node ${entry} ${file} ${stateDir}`, { timeoutMs: 240_000 });
  const { results } = JSON.parse(out) as { results: unknown[] };
  for (const r of results) if (r && typeof r === "object" && "thrown" in r) throw new Error(`guest step threw: ${(r as Cycle).thrown}`);
  return results;
}

/** N connections through the VIP from the client; the names of the real servers that answered. */
async function traffic(): Promise<Record<string, number>> {
  const share = target.shareDir;
  const out = await mustExec(
    target,
    `set -e
     rm -f ${share}/lvsg-rs1.ready ${share}/lvsg-rs2.ready
     ip netns exec lvsg-rs1 node ${probe} serve 80 rs1 ${share}/lvsg-rs1.ready </dev/null >/dev/null 2>&1 & S1=$!
     ip netns exec lvsg-rs2 node ${probe} serve 80 rs2 ${share}/lvsg-rs2.ready </dev/null >/dev/null 2>&1 & S2=$!
     trap 'kill $S1 $S2 2>/dev/null' EXIT
     for i in $(seq 600); do [ -e ${share}/lvsg-rs1.ready ] && [ -e ${share}/lvsg-rs2.ready ] && break; sleep 0.1; done
     ip netns exec lvsg-client node ${probe} get ${VIP} 80 ${N}`,
    { timeoutMs: 180_000 },
  );
  return JSON.parse(out.trim().split("\n").pop()!) as Record<string, number>;
}

beforeAll(async () => {
  target = await kernelTarget();
  runId = randomUUID();
  [entry, probe] = await Promise.all([bundleForGuest("test/kernel/guest/agent-backend.ts"), bundleForGuest("test/kernel/guest/tcp-probe.ts")]);
  await mustExec(target, SETUP);
});
afterAll(async () => {
  await target?.exec(CLEANUP);
});

describe("TUN with GUE: the agent puts the real servers' fou receive port there, TCP flows through the VIP", () => {
  it("compiled states applied by the agents: GUE destinations, tunl0 + fou 6080 gue + VIP on each real server; requests reach both", async () => {
    const s = states();
    // What compile asks of the real servers (the agent's input).
    for (const h of ["rs1", "rs2"]) {
      expect(s.get(h)!.realServer!.fouPorts.map((p) => [p.port, p.addressFamily])).toEqual([[6080, AddressFamily.IPV4]]);
    }
    const [dirApply, save] = (await agentRun("", "dir", [apply(s.get("dir")!), exec("ipvsadm -Sn")])) as [Cycle, string];
    expect(dirApply.errors).toEqual([]);
    for (const r of ["198.18.2.11", "198.18.2.12"]) expect(save).toMatch(new RegExp(`-a -t 192\\.0\\.2\\.160:80 -r ${r.replaceAll(".", "\\.")}:80 -i .*--tun-type gue --tun-port 6080`));

    for (const h of ["rs1", "rs2"]) {
      const [first, fou, link, addr, again] = (await agentRun(`lvsg-${h}`, h, [
        apply(s.get(h)!),
        exec("ip fou show"),
        exec("ip -j -d link show tunl0"),
        exec("ip -j addr show dev tunl0"),
        apply(s.get(h)!),
      ])) as [Cycle, string, string, string, Cycle];
      expect(first.errors, h).toEqual([]);
      // iproute2's view: one GUE port 6080 (IPv4), the fallback ipip device up, the VIP on it.
      expect(fou.trim(), h).toBe("port 6080 gue");
      const l = (JSON.parse(link) as { ifname: string; flags: string[]; linkinfo?: { info_kind?: string } }[])[0]!;
      expect(l.linkinfo?.info_kind).toBe("ipip");
      expect(l.flags).toContain("UP");
      expect((JSON.parse(addr) as { addr_info: { local: string; prefixlen: number }[] }[])[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${VIP}/32`]);
      // Applied again: nothing to write.
      expect(again.errors).toEqual([]);
      expect(again.writes).toBe(0);
      expect(again.foreign).toEqual([]);
    }

    expect(await traffic()).toEqual({ rs1: N / 2, rs2: N / 2 });
    // IPVS refreshes its counters from a 2 s timer: poll until every connection is counted, per real server.
    let stats = "";
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 1000))) {
      stats = await mustExec(target, "ipvsadm -Ln --stats");
      if (/192\.0\.2\.160:80\s+10\s/.test(stats)) break;
    }
    expect(stats).toMatch(/192\.0\.2\.160:80\s+10\s/);
    expect(stats).toMatch(/198\.18\.2\.11:80\s+5\s/);
    expect(stats).toMatch(/198\.18\.2\.12:80\s+5\s/);
  }, SLOW);

  it("a restarted agent adopts the port (zero writes); a port deleted by hand is found and repaired by resync; traffic flows again", async () => {
    const s = states();
    const [restart, removed, resync, fouAfter, again] = (await agentRun("lvsg-rs1", "rs1", [
      apply(s.get("rs1")!),
      exec("ip fou del port 6080 && ip fou show"),
      { do: "resync" },
      exec("ip fou show"),
      { do: "resync" },
    ])) as [Cycle, string, Cycle, string, Cycle];
    expect(restart.errors).toEqual([]);
    expect(restart.writes).toBe(0);
    expect(restart.drift).toEqual([]);
    expect(removed.trim()).toBe("");
    expect(resync.errors).toEqual([]);
    expect(resync.drift).toEqual([{ object: "fou ipv4 port 6080", found: "missing", time: expect.any(String) }]);
    expect(resync.writes).toBe(1);
    expect(fouAfter.trim()).toBe("port 6080 gue");
    expect(again.writes).toBe(0);
    expect(await traffic()).toEqual({ rs1: N / 2, rs2: N / 2 });
  }, SLOW);

  it("the GUE service deleted: the real server's VIP, fou port and device state go; someone else's fou port stays", async () => {
    const gone = states(false);
    expect(gone.get("rs1")!.realServer).toBeUndefined();
    const [hand, removal, fou, addr] = (await agentRun("lvsg-rs1", "rs1", [
      exec("ip fou add port 5555 ipproto 4 && ip fou show"),
      apply(gone.get("rs1")!),
      exec("ip fou show"),
      exec("ip -j addr show dev tunl0"),
    ])) as [string, Cycle, string, string];
    expect(hand).toContain("port 5555 ipproto 4");
    expect(removal.errors).toEqual([]);
    expect(fou.trim()).toBe("port 5555 ipproto 4");
    expect((JSON.parse(addr) as { addr_info: unknown[] }[])[0]!.addr_info).toEqual([]);
    const [dirRemoval, save] = (await agentRun("", "dir", [apply(gone.get("dir")!), exec("ipvsadm -Sn")])) as [Cycle, string];
    expect(dirRemoval.errors).toEqual([]);
    expect(save.trim()).toBe("");
  }, SLOW);
});
