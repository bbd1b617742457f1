// The host agent's LinuxBackend on a real kernel (Debian 6.1 in the VM), ipvsadm / ip / nft / sysctl
// as oracles. Each guest run (guest/agent-backend.ts) is one agent process; its owned-set file lives
// in the share, so a second run is an agent restart.
//
//   lvsa-client 203.0.113.2 ── veth ── 203.0.113.1  director (the target's namespace)   bridge lvsabr0 198.51.100.1
//                                       VIPs on lo (added by the agent)                  ├─ lvsa-rs1 198.51.100.11
//                                                                                        └─ lvsa-rs2 198.51.100.12
// NAT 192.0.2.100:80 → rs1, rs2 (the rs route back through the director; the agent turns on ip_forward)
// DR 192.0.2.101:80, IPv6 NAT [2001:db8::100]:80, fwmark 5 (nft marks 192.0.2.102 tcp 80,443).
import { create, toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, RealServerStateSchema, SysctlSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelType } from "../../gen/lvsfleet/v1/types_pb.js";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import type { AgentStep } from "./guest/agent-backend.js";

interface Cycle {
  errors: { object: string; operation: string; message: string }[];
  drift: { object: string; found: string }[];
  foreign: { object: string }[];
  ops: number;
  writes: number;
  ipvsRequests: number;
  adopted: number;
  thrown?: string;
}

const dest = (address: string, forwardMethod: ForwardMethod, weight = 1, port = 80) => ({
  addressFamily: address.includes(":") ? AddressFamily.IPV6 : AddressFamily.IPV4,
  address,
  port,
  forwardMethod,
  weight,
});

function desired(o: { weight?: number; scheduler?: string; empty?: boolean; tunReal?: boolean } = {}): HostDesiredState {
  if (o.empty) return create(HostDesiredStateSchema, { site: "vm", host: "director", revision: 9n });
  const ds = create(HostDesiredStateSchema, {
    site: "vm",
    host: "director",
    revision: 1n,
    director: {
      services: [
        {
          virtualService: "nat",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.100",
          port: 80,
          scheduler: o.scheduler ?? "wlc",
          persistencePrefixLength: 32,
          destinations: [dest("198.51.100.11", ForwardMethod.NAT, o.weight ?? 1), dest("198.51.100.12", ForwardMethod.NAT)],
        },
        {
          virtualService: "dr",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.101",
          port: 80,
          scheduler: "wlc",
          persistencePrefixLength: 32,
          destinations: [dest("198.51.100.11", ForwardMethod.DR), dest("198.51.100.12", ForwardMethod.DR)],
        },
        {
          virtualService: "v6",
          addressFamily: AddressFamily.IPV6,
          protocol: Protocol.TCP,
          address: "2001:db8::100",
          port: 80,
          scheduler: "wlc",
          persistencePrefixLength: 128,
          destinations: [dest("2001:db8:1::11", ForwardMethod.NAT)],
        },
        { virtualService: "fwm", addressFamily: AddressFamily.IPV4, fwmark: 5, scheduler: "rr", persistencePrefixLength: 32, destinations: [dest("198.51.100.11", ForwardMethod.DR, 1, 0)] },
      ],
      timeouts: {},
      addresses: [
        { interface: "lo", address: "192.0.2.100", prefixLength: 32 },
        { interface: "lo", address: "192.0.2.101", prefixLength: 32 },
        { interface: "lo", address: "192.0.2.102", prefixLength: 32 },
        { interface: "lo", address: "2001:db8::100", prefixLength: 128 },
      ],
      fwmarkRules: [{ mark: 5, matches: [{ destinations: ["192.0.2.102/32"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] }],
    },
    sysctls: [
      { key: "net.ipv4.ip_forward", value: "1" },
      { key: "net.ipv4.vs.conn_reuse_mode", value: "1" },
      { key: "net.ipv4.vs.expire_nodest_conn", value: "1" },
      { key: "net.ipv6.conf.all.forwarding", value: "1" },
    ],
  });
  if (o.tunReal) {
    // Both roles: also a TUN real server of someone else's VIP, held on the ipip fallback device.
    ds.realServer = create(RealServerStateSchema, {
      addresses: [{ interface: "tunl0", address: "192.0.2.200", prefixLength: 32 }],
      tunnels: [{ name: "tunl0", type: TunnelType.IPIP }],
    });
    ds.sysctls.push(create(SysctlSchema, { key: "net.ipv4.conf.all.rp_filter", value: "2" }), create(SysctlSchema, { key: "net.ipv4.conf.tunl0.rp_filter", value: "2" }));
  }
  return ds;
}

const b64 = (d: HostDesiredState) => Buffer.from(toBinary(HostDesiredStateSchema, d)).toString("base64");
const apply = (d: HostDesiredState): AgentStep => ({ do: "apply", desired: b64(d) });
const exec = (cmd: string): AgentStep => ({ do: "exec", cmd });
const lines = (out: unknown) => String(out).split("\n").map((l) => l.trim()).filter(Boolean).sort();

function expectedSave(o: { weight?: number; scheduler?: string } = {}): string[] {
  return [
    `-A -t 192.0.2.100:80 -s ${o.scheduler ?? "wlc"}`,
    `-a -t 192.0.2.100:80 -r 198.51.100.11:80 -m -w ${o.weight ?? 1}`,
    "-a -t 192.0.2.100:80 -r 198.51.100.12:80 -m -w 1",
    "-A -t 192.0.2.101:80 -s wlc",
    "-a -t 192.0.2.101:80 -r 198.51.100.11:80 -g -w 1",
    "-a -t 192.0.2.101:80 -r 198.51.100.12:80 -g -w 1",
    "-A -t [2001:db8::100]:80 -s wlc",
    "-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 -m -w 1",
    "-A -f 5 -s rr",
    "-a -f 5 -r 198.51.100.11:0 -g -w 1",
  ].sort();
}

const SETUP = `
set -e
ipvsadm -C
nft delete table inet lvsfleet 2>/dev/null || true
for n in lvsa-client lvsa-rs1 lvsa-rs2; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
ip link del lvsabr0 2>/dev/null || true
for a in 192.0.2.100/32 192.0.2.101/32 192.0.2.102/32 2001:db8::100/128; do ip addr del $a dev lo 2>/dev/null || true; done
sysctl -qw net.ipv4.ip_forward=0
ip link add lvsabr0 type bridge && ip link set lvsabr0 up
ip addr add 198.51.100.1/24 dev lvsabr0
ip link add lvsac0 type veth peer name eth0 netns lvsa-client
ip addr add 203.0.113.1/24 dev lvsac0 && ip link set lvsac0 up
ip -n lvsa-client addr add 203.0.113.2/24 dev eth0 && ip -n lvsa-client link set eth0 up
ip -n lvsa-client route add default via 203.0.113.1
i=10
for r in rs1 rs2; do
  i=$((i+1))
  ip link add lvsa$r type veth peer name eth0 netns lvsa-$r
  ip link set lvsa$r master lvsabr0 && ip link set lvsa$r up
  ip -n lvsa-$r addr add 198.51.100.$i/24 dev eth0 && ip -n lvsa-$r link set eth0 up
  ip -n lvsa-$r route add default via 198.51.100.1
done
`;

const CLEANUP = `
pkill -f agent-tcp-hold 2>/dev/null
ipvsadm -C
nft delete table inet lvsfleet 2>/dev/null
for n in lvsa-client lvsa-rs1 lvsa-rs2; do ip netns del $n 2>/dev/null; done
ip link del lvsabr0 2>/dev/null; ip link del lvsac0 2>/dev/null
for a in 192.0.2.100/32 192.0.2.101/32 192.0.2.102/32 2001:db8::100/128; do ip addr del $a dev lo 2>/dev/null; done
true
`;

let target: KernelTarget;
let entry: string;
let hold: string;
let stateDir: string;
let rpFilterBefore = "";

/** One agent process life in the guest: runs the steps, returns one result per step. */
async function agentRun(steps: AgentStep[]): Promise<unknown[]> {
  const file = join(target.shareDir, `agent-steps-${randomUUID()}.json`);
  await writeFile(file, JSON.stringify(steps));
  const out = await mustExec(target, `node ${entry} ${file} ${stateDir}`, { timeoutMs: 240_000 });
  const { results } = JSON.parse(out) as { results: unknown[] };
  for (const r of results) if (r && typeof r === "object" && "thrown" in r) throw new Error(`guest step threw: ${(r as Cycle).thrown}`);
  return results;
}

beforeAll(async () => {
  target = await kernelTarget();
  [entry, hold] = await Promise.all([bundleForGuest("test/kernel/guest/agent-backend.ts"), bundleForGuest("test/kernel/guest/agent-tcp-hold.ts")]);
  stateDir = join(target.shareDir, `agent-state-${randomUUID()}`);
  await mustExec(target, SETUP);
});
afterAll(async () => {
  await target?.exec(CLEANUP);
});

describe("host agent LinuxBackend on a real kernel", () => {
  it("programs NAT, DR, IPv6 and fwmark exactly; re-apply writes nothing; a weight change is one request", async () => {
    const [first, save, addrs, nft, sysctl, again, weight, save2] = (await agentRun([
      apply(desired()),
      exec("ipvsadm -Sn"),
      exec("ip -j addr show dev lo"),
      exec("nft -j list table inet lvsfleet"),
      exec("sysctl -n net.ipv4.ip_forward net.ipv4.vs.expire_nodest_conn net.ipv6.conf.all.forwarding"),
      apply(desired()),
      apply(desired({ weight: 5 })),
      exec("ipvsadm -Sn"),
    ])) as [Cycle, string, string, string, string, Cycle, Cycle, string];
    expect(first.errors).toEqual([]);
    // 4 services + 6 destinations, 4 VIPs, 1 nft transaction, sysctls not already right (ip_forward, v6 forwarding, ...).
    expect(first.ops).toBeGreaterThanOrEqual(4 + 6 + 4 + 1 + 2);
    expect(lines(save)).toEqual(expectedSave());
    const lo = (JSON.parse(addrs) as { addr_info: { local: string; prefixlen: number; label?: string }[] }[])[0]!.addr_info;
    for (const a of ["192.0.2.100", "192.0.2.101", "192.0.2.102"]) expect(lo).toContainEqual(expect.objectContaining({ local: a, prefixlen: 32, label: "lo:lvsf" }));
    expect(lo).toContainEqual(expect.objectContaining({ local: "2001:db8::100", prefixlen: 128 }));
    expect(nft).toContain('"mark"');
    expect(nft).toContain("192.0.2.102");
    expect(sysctl.trim().split(/\s+/)).toEqual(["1", "1", "1"]);

    // Same state again: the snapshot's dumps only (1 service dump + 4 destination dumps), zero writes.
    expect(again.errors).toEqual([]);
    expect(again.ops).toBe(0);
    expect(again.writes).toBe(0);
    expect(again.ipvsRequests).toBe(1 + 4);

    expect(weight.errors).toEqual([]);
    expect(weight.ops).toBe(1);
    expect(weight.writes).toBe(1);
    expect(weight.ipvsRequests).toBe(1 + 4 + 1);
    expect(lines(save2)).toEqual(expectedSave({ weight: 5 }));
  });

  it("a foreign service added with ipvsadm survives and is reported", async () => {
    await mustExec(target, "ipvsadm -A -u 203.0.113.53:53 -s rr && ipvsadm -a -u 203.0.113.53:53 -r 198.51.100.12:53 -m");
    const [r, save] = (await agentRun([apply(desired({ weight: 5 })), exec("ipvsadm -Sn")])) as [Cycle, string];
    expect(r.errors).toEqual([]);
    expect(r.writes).toBe(0);
    expect(r.foreign.map((f) => f.object)).toEqual(["ipvs-service udp 203.0.113.53:53"]);
    expect(lines(save)).toEqual([...expectedSave({ weight: 5 }), "-A -u 203.0.113.53:53 -s rr", "-a -u 203.0.113.53:53 -r 198.51.100.12:53 -m -w 1"].sort());
  });

  it("ipvsadm -e behind the agent's back: resync repairs it and reports the drift", async () => {
    const [adopt, , resync, save, resync2] = (await agentRun([
      apply(desired({ weight: 5 })),
      exec("ipvsadm -e -t 192.0.2.101:80 -r 198.51.100.12:80 -g -w 9 && ipvsadm -E -t 192.0.2.100:80 -s rr"),
      { do: "resync" },
      exec("ipvsadm -Sn"),
      { do: "resync" },
    ])) as [Cycle, string, Cycle, string, Cycle];
    expect(adopt.writes).toBe(0);
    expect(resync.errors).toEqual([]);
    expect(resync.drift.map((d) => `${d.object}: ${d.found}`).sort()).toEqual([
      "ipvs-destination tcp 192.0.2.101:80 -> 198.51.100.12:80: weight 9 (want 1)",
      "ipvs-service tcp 192.0.2.100:80: scheduler rr (want wlc)",
    ]);
    expect(resync.writes).toBe(2);
    expect(lines(save)).toEqual([...expectedSave({ weight: 5 }), "-A -u 203.0.113.53:53 -s rr", "-a -u 203.0.113.53:53 -r 198.51.100.12:53 -m -w 1"].sort());
    expect(resync2.writes).toBe(0);
    expect(resync2.drift).toEqual([]);
  });

  it("a scheduler change and an agent restart keep an established NAT connection and its destination", async () => {
    const s = target.shareDir;
    const id = randomUUID().slice(0, 8);
    const f = (n: string) => `${s}/${n}-${id}`;
    // Echo servers in the real-server namespaces, one long-lived client connection through the NAT VIP.
    await mustExec(
      target,
      `set -e
       (ip netns exec lvsa-rs1 setsid node ${hold} serve 80 rs1 ${f("rs1")} </dev/null >/dev/null 2>&1 &)
       (ip netns exec lvsa-rs2 setsid node ${hold} serve 80 rs2 ${f("rs2")} </dev/null >/dev/null 2>&1 &)
       for i in $(seq 600); do [ -e ${f("rs1")} ] && [ -e ${f("rs2")} ] && break; sleep 0.1; done
       (ip netns exec lvsa-client setsid node ${hold} hold 192.0.2.100 80 ${f("ready")} ${f("stop")} ${f("out")} </dev/null >/dev/null 2>&1 &)
       for i in $(seq 600); do [ -e ${f("ready")} ] && break; sleep 0.1; done
       test -e ${f("ready")}`,
      { timeoutMs: 120_000 },
    );
    const server = (await readFile(f("ready"), "utf8")).trim();
    const rsAddr = server === "rs1" ? "198.51.100.11" : "198.51.100.12";
    const activeOf = (list: string) => {
      const m = new RegExp(`->\\s+${rsAddr.replaceAll(".", "\\.")}:80\\s+\\S+\\s+\\d+\\s+(\\d+)`).exec(list.split("TCP  192.0.2.101")[0]!);
      return m ? Number(m[1]) : -1;
    };
    const before = await mustExec(target, "ipvsadm -Ln -t 192.0.2.100:80");
    expect(activeOf(before)).toBe(1);

    const [sched, during] = (await agentRun([apply(desired({ weight: 5, scheduler: "rr" })), exec("ipvsadm -Ln -t 192.0.2.100:80")])) as [Cycle, string];
    expect(sched.errors).toEqual([]);
    expect(sched.ops).toBe(1); // IPVS_CMD_SET_SERVICE only: destinations are not re-created
    expect(sched.writes).toBe(1);
    expect(during).toContain("192.0.2.100:80 rr");
    expect(activeOf(during)).toBe(1); // the destination (and its connection) is the same one

    // Restart: a new agent process adopts everything, writes nothing — its periodic resync (from the
    // persisted desired state, before any apply) and the apply the sync loop may still hand it.
    const [restartResync, restart] = (await agentRun([{ do: "resync" }, apply(desired({ weight: 5, scheduler: "rr" }))])) as [Cycle | null, Cycle];
    expect(restartResync).not.toBeNull();
    expect(restartResync!.errors).toEqual([]);
    expect(restartResync!.ops).toBe(0);
    expect(restartResync!.writes).toBe(0);
    expect(restart.errors).toEqual([]);
    expect(restart.writes).toBe(0);
    expect(restart.drift).toEqual([]);

    await new Promise((r) => setTimeout(r, 1000));
    await mustExec(target, `touch ${f("stop")}; for i in $(seq 300); do [ -e ${f("out")} ] && break; sleep 0.1; done; test -e ${f("out")}`, { timeoutMs: 60_000 });
    const out = JSON.parse(await readFile(f("out"), "utf8")) as { server: string; sent: number; received: number; error: string };
    expect(out.error).toBe("");
    expect(out.server).toBe(server);
    expect(out.sent).toBeGreaterThan(10);
    expect(out.received).toBe(out.sent); // every line answered on the same connection, through both changes
    await target.exec("pkill -f agent-tcp-hold; true");
  });

  it("both roles on one host: a TUN real-server VIP on tunl0 (brought up, rp_filter loose) next to the Director's table", async () => {
    const [before, r, link, addr, rp, again, save] = (await agentRun([
      exec("sysctl -n net.ipv4.conf.all.rp_filter"),
      apply(desired({ weight: 5, scheduler: "rr", tunReal: true })),
      exec("ip -j link show dev tunl0"),
      exec("ip -j addr show dev tunl0"),
      exec("sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.tunl0.rp_filter"),
      apply(desired({ weight: 5, scheduler: "rr", tunReal: true })),
      exec("ipvsadm -Sn"),
    ])) as [string, Cycle, string, string, string, Cycle, string];
    rpFilterBefore = before.trim();
    expect(r.errors).toEqual([]);
    expect(r.writes).toBeGreaterThanOrEqual(4); // link up, 2 sysctls (or 1 if all was already 2), the VIP
    expect((JSON.parse(link) as { flags: string[] }[])[0]!.flags).toContain("UP");
    expect((JSON.parse(addr) as { addr_info: { local: string; prefixlen: number; label?: string }[] }[])[0]!.addr_info).toContainEqual(
      expect.objectContaining({ local: "192.0.2.200", prefixlen: 32, label: "tunl0:lvsf" }),
    );
    expect(rp.trim().split(/\s+/)).toEqual(["2", "2"]);
    expect(again.writes).toBe(0);
    expect(lines(save)).toEqual([...expectedSave({ weight: 5, scheduler: "rr" }), "-A -u 203.0.113.53:53 -s rr", "-a -u 203.0.113.53:53 -r 198.51.100.12:53 -m -w 1"].sort());
  });

  it("role change to nothing: everything lvsfleet made goes, the foreign service and the old ip_forward stay", async () => {
    const [r, save, addrs, nft, fwd, again, tun, rp] = (await agentRun([
      apply(desired({ empty: true })),
      exec("ipvsadm -Sn"),
      exec("ip -j addr show dev lo"),
      exec("nft list table inet lvsfleet 2>&1; true"),
      exec("sysctl -n net.ipv4.ip_forward"),
      apply(desired({ empty: true })),
      exec("ip -j addr show dev tunl0"),
      exec("sysctl -n net.ipv4.conf.all.rp_filter"),
    ])) as [Cycle, string, string, string, string, Cycle, string, string];
    const t = (JSON.parse(tun) as { flags: string[]; addr_info: { local: string }[] }[])[0]!;
    expect(t.addr_info.map((a) => a.local)).not.toContain("192.0.2.200");
    expect(t.flags).not.toContain("UP"); // lvsfleet brought it up, lvsfleet takes it down (the fallback device itself stays)
    expect(rp.trim()).toBe(rpFilterBefore); // restored to what lvsfleet found
    expect(r.errors).toEqual([]);
    expect(lines(save)).toEqual(["-A -u 203.0.113.53:53 -s rr", "-a -u 203.0.113.53:53 -r 198.51.100.12:53 -m -w 1"]);
    const lo = (JSON.parse(addrs) as { addr_info: { local: string }[] }[])[0]!.addr_info.map((a) => a.local);
    expect(lo.filter((a) => a.startsWith("192.0.2.") || a.startsWith("2001:db8"))).toEqual([]);
    expect(nft).toMatch(/No such file or directory/);
    expect(fwd.trim()).toBe("0"); // what SETUP left before the agent turned it on
    expect(again.writes).toBe(0);
    expect(again.foreign.map((f) => f.object)).toEqual(["ipvs-service udp 203.0.113.53:53"]);
  });
});
