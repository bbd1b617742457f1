// Real TCP through IPVS services that lvsfleet's IpvsClient programmed, inside the kernel target:
// namespaces lvsf-client, lvsf-rs1, lvsf-rs2 around the director (the target's own namespace).
//
//   lvsf-client                         director                          lvsf-rs1 / lvsf-rs2
//   203.0.113.2 ── veth ── 203.0.113.1   VIPs on lo:                       198.51.100.11 / .12
//   198.51.100.2 ─┐                      192.0.2.100 (NAT)                 DR VIP 192.0.2.101/32 on lo,
//                 └──── bridge lvsfbr0 ── 198.51.100.1 ────────────────── arp_ignore=1, arp_announce=2
//
// NAT: the client reaches 192.0.2.100 over the veth; real servers answer through the director
// (default route), which rewrites the replies. DR: the client reaches 192.0.2.101 over the bridge;
// real servers hold the VIP and answer the client directly on the bridge, so the director sees no
// outgoing packets. IPVS refreshes its counters from a 2 s timer, so the stats are polled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IpvsServiceState } from "../../agents/hostagent/netlink/ipvs/client.js";
import type { IpvsDestination, IpvsService, IpvsStats } from "../../agents/hostagent/netlink/ipvs/codec.js";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import { ok, parseListStats, runClient } from "./ipvs-lib.js";

const N = 20;
const NAT: IpvsService = { family: "ipv4", protocol: "tcp", address: "192.0.2.100", port: 80, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff };
const DR: IpvsService = { ...NAT, address: "192.0.2.101" };
const rs = (address: string, forward: IpvsDestination["forward"]): IpvsDestination => ({ family: "ipv4", address, port: 80, forward, weight: 1, upperThreshold: 0, lowerThreshold: 0 });

const SETUP = `
set -e
ipvsadm -C
for n in lvsf-client lvsf-rs1 lvsf-rs2; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
ip link del lvsfbr0 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1
ip link add lvsfbr0 type bridge && ip link set lvsfbr0 up
ip addr add 198.51.100.1/24 dev lvsfbr0
ip addr add 192.0.2.100/32 dev lo
ip addr add 192.0.2.101/32 dev lo
# client: veth to the director (NAT path) and a leg on the bridge (DR path)
ip link add lvsfc0 type veth peer name eth0 netns lvsf-client
ip addr add 203.0.113.1/24 dev lvsfc0 && ip link set lvsfc0 up
ip -n lvsf-client addr add 203.0.113.2/24 dev eth0 && ip -n lvsf-client link set eth0 up
ip link add lvsfc1 type veth peer name eth1 netns lvsf-client
ip link set lvsfc1 master lvsfbr0 && ip link set lvsfc1 up
ip -n lvsf-client addr add 198.51.100.2/24 dev eth1 && ip -n lvsf-client link set eth1 up
ip -n lvsf-client route add 192.0.2.100/32 via 203.0.113.1
ip -n lvsf-client route add 192.0.2.101/32 via 198.51.100.1
i=10
for r in rs1 rs2; do
  i=$((i+1))
  ip link add lvsf$r type veth peer name eth0 netns lvsf-$r
  ip link set lvsf$r master lvsfbr0 && ip link set lvsf$r up
  ip -n lvsf-$r addr add 198.51.100.$i/24 dev eth0 && ip -n lvsf-$r link set eth0 up
  ip -n lvsf-$r route add default via 198.51.100.1
  ip netns exec lvsf-$r sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
  ip -n lvsf-$r addr add 192.0.2.101/32 dev lo
done
`;

const CLEANUP = `
ipvsadm -C
for n in lvsf-client lvsf-rs1 lvsf-rs2; do ip netns del $n 2>/dev/null; done
ip link del lvsfbr0 2>/dev/null; ip link del lvsfc0 2>/dev/null; ip link del lvsfc1 2>/dev/null
ip addr del 192.0.2.100/32 dev lo 2>/dev/null; ip addr del 192.0.2.101/32 dev lo 2>/dev/null
true
`;

let target: KernelTarget;
let probe: string;
beforeAll(async () => {
  target = await kernelTarget();
  probe = await bundleForGuest("test/kernel/guest/tcp-probe.ts");
  await mustExec(target, SETUP);
});
afterAll(async () => {
  await target?.exec(CLEANUP);
});

function findService(snap: IpvsServiceState[], address: string): IpvsServiceState {
  const s = snap.find((x) => x.service.address === address);
  if (!s) throw new Error(`service ${address} not in snapshot`);
  return s;
}

describe("IPVS real traffic (NAT and DR) programmed by lvsfleet", () => {
  it("carries TCP to both real servers and the client reads the counters ipvsadm shows", async () => {
    const prog = await runClient(target, [
      { do: "newService", service: NAT },
      { do: "newDestination", service: NAT, destination: rs("198.51.100.11", "masq") },
      { do: "newDestination", service: NAT, destination: rs("198.51.100.12", "masq") },
      { do: "newService", service: DR },
      { do: "newDestination", service: DR, destination: rs("198.51.100.11", "route") },
      { do: "newDestination", service: DR, destination: rs("198.51.100.12", "route") },
    ]);
    expect(prog.every((r) => r.ok)).toBe(true);

    const share = target.shareDir;
    const out = await mustExec(
      target,
      `set -e
       rm -f ${share}/rs1.ready ${share}/rs2.ready
       ip netns exec lvsf-rs1 node ${probe} serve 80 rs1 ${share}/rs1.ready </dev/null >/dev/null 2>&1 & S1=$!
       ip netns exec lvsf-rs2 node ${probe} serve 80 rs2 ${share}/rs2.ready </dev/null >/dev/null 2>&1 & S2=$!
       trap 'kill $S1 $S2 2>/dev/null' EXIT
       for i in $(seq 300); do [ -e ${share}/rs1.ready ] && [ -e ${share}/rs2.ready ] && break; sleep 0.1; done
       ip netns exec lvsf-client node ${probe} get 192.0.2.100 80 ${N}
       ip netns exec lvsf-client node ${probe} get 192.0.2.101 80 ${N}`,
      { timeoutMs: 120_000 },
    );
    const [nat, dr] = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    // Round robin: both real servers, half each, no errors.
    expect(nat).toEqual({ rs1: N / 2, rs2: N / 2 });
    expect(dr).toEqual({ rs1: N / 2, rs2: N / 2 });

    // Counters refresh every 2 s: poll the client until both services show every connection.
    let snap: IpvsServiceState[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      snap = ok<IpvsServiceState[]>((await runClient(target, [{ do: "snapshot" }]))[0]);
      const done = [NAT, DR].every((s) => (findService(snap, s.address!).service.stats64?.conns ?? 0n) >= BigInt(N));
      if (done || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const natS = findService(snap, NAT.address!);
    const drS = findService(snap, DR.address!);
    expect(natS.service.stats64!.conns).toBe(BigInt(N));
    expect(drS.service.stats64!.conns).toBe(BigInt(N));
    expect(natS.service.stats64!.inPkts).toBeGreaterThan(0n);
    expect(natS.service.stats64!.outPkts).toBeGreaterThan(0n); // NAT replies pass the director
    expect(drS.service.stats64!.inPkts).toBeGreaterThan(0n);
    expect(drS.service.stats64!.outPkts).toBe(0n); // DR replies bypass it
    for (const d of [...natS.destinations, ...drS.destinations]) expect(d.stats64!.conns).toBe(BigInt(N / 2));
    // The 32-bit stats nest agrees with stats64 at these magnitudes.
    expect(natS.service.stats!.conns).toBe(natS.service.stats64!.conns);

    // Traffic has stopped and the counters settled: ipvsadm must show exactly what the client read.
    const fresh = ok<IpvsServiceState[]>((await runClient(target, [{ do: "snapshot" }]))[0]);
    const listed = parseListStats(await mustExec(target, "ipvsadm -Ln --stats --exact"));
    const five = (s: IpvsStats) => ({ conns: s.conns, inPkts: s.inPkts, outPkts: s.outPkts, inBytes: s.inBytes, outBytes: s.outBytes });
    for (const svc of [NAT, DR]) {
      const st = findService(fresh, svc.address!);
      expect(listed.get(`TCP  ${svc.address}:80`)).toEqual(five(st.service.stats64!));
      for (const d of st.destinations) expect(listed.get(`TCP  ${svc.address}:80 -> ${d.address}:80`)).toEqual(five(d.stats64!));
    }

    // ZERO clears them, for ipvsadm too.
    const z = await runClient(target, [{ do: "zero" }, { do: "snapshot" }]);
    const zs = ok<IpvsServiceState[]>(z[1]);
    expect(findService(zs, NAT.address!).service.stats64!.conns).toBe(0n);
    expect(parseListStats(await mustExec(target, "ipvsadm -Ln --stats --exact")).get("TCP  192.0.2.100:80")?.conns).toBe(0n);
  });
});
