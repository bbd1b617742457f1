// Real TCP through IPVS services that lvsfleet's IpvsClient programmed, inside the kernel target:
// TUN (ipip) real servers, and fwmark services grouping two ports, with and without persistence.
// Companion of ipvs-traffic.test.ts (NAT, DR); own namespaces, bridge and addresses so the two never
// meet.
//
//   lvsft-client                director (the target's own namespace)          lvsft-rs1 / lvsft-rs2
//   198.18.0.2 ── bridge lvsftbr0 ── 198.18.0.1                    ──────────── 198.18.0.11 / .12
//                                   VIPs on lo: 192.0.2.102 (TUN)               tunl0: 192.0.2.102/32
//                                   192.0.2.103 (fwmark 1, persistent 300)      lo: 192.0.2.103/32,
//                                   192.0.2.104 (fwmark 2, no persistence)          192.0.2.104/32
//                                   nft: daddr .103 dport {80,443} → mark 1,    arp_ignore=1, arp_announce=2,
//                                        daddr .104 dport {80,443} → mark 2     rp_filter 0 (tunl0, all)
//
// TUN: the director wraps each packet in ipip to the real server's own address; tunl0 there unwraps
// it (source = the client, hence rp_filter relaxed) and the real server answers the client directly
// on the bridge. The fwmark services forward by DR. IPVS refreshes counters from a 2 s timer: polled.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IpvsServiceState } from "../../agents/hostagent/netlink/ipvs/client.js";
import type { IpvsDestination, IpvsService } from "../../agents/hostagent/netlink/ipvs/codec.js";
import { IP_VS_SVC_F_PERSISTENT } from "../../agents/hostagent/netlink/ipvs/constants.js";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import { ok, runClient } from "./ipvs-lib.js";

const N = 10; // TUN connections
const ROUNDS = 3; // fwmark: rounds of (port 80, port 443) per client process
const RS1 = "198.18.0.11";
const RS2 = "198.18.0.12";

const TUN: IpvsService = { family: "ipv4", protocol: "tcp", address: "192.0.2.102", port: 80, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff };
const FWM_PERSIST: IpvsService = { family: "ipv4", fwmark: 1, scheduler: "rr", flags: IP_VS_SVC_F_PERSISTENT, timeout: 300, netmask: 0xffffffff };
const FWM_RR: IpvsService = { family: "ipv4", fwmark: 2, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff };
const dest = (address: string, port: number, forward: IpvsDestination["forward"], extra: Partial<IpvsDestination> = {}): IpvsDestination => ({
  family: "ipv4", address, port, forward, weight: 1, upperThreshold: 0, lowerThreshold: 0, ...extra,
});

const SETUP = `
set -e
ipvsadm -C
modprobe ipip
for n in lvsft-client lvsft-rs1 lvsft-rs2; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
ip link del lvsftbr0 2>/dev/null || true
nft delete table ip lvsft 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1
ip link add lvsftbr0 type bridge && ip link set lvsftbr0 up
ip addr add 198.18.0.1/24 dev lvsftbr0
for v in 102 103 104; do ip addr add 192.0.2.$v/32 dev lo; done
ip link add lvsftc type veth peer name eth0 netns lvsft-client
ip link set lvsftc master lvsftbr0 && ip link set lvsftc up
ip -n lvsft-client addr add 198.18.0.2/24 dev eth0 && ip -n lvsft-client link set eth0 up
ip -n lvsft-client route add 192.0.2.0/24 via 198.18.0.1
i=10
for r in rs1 rs2; do
  i=$((i+1))
  ip link add lvsft$r type veth peer name eth0 netns lvsft-$r
  ip link set lvsft$r master lvsftbr0 && ip link set lvsft$r up
  ip -n lvsft-$r addr add 198.18.0.$i/24 dev eth0 && ip -n lvsft-$r link set eth0 up
  ip -n lvsft-$r route add default via 198.18.0.1
  ip netns exec lvsft-$r sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
  # TUN: the fallback ipip device exists in every namespace once ipip is loaded
  ip -n lvsft-$r link set tunl0 up
  ip -n lvsft-$r addr add 192.0.2.102/32 dev tunl0
  ip netns exec lvsft-$r sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
  # fwmark services forward by DR
  ip -n lvsft-$r addr add 192.0.2.103/32 dev lo
  ip -n lvsft-$r addr add 192.0.2.104/32 dev lo
done
nft -f - <<'NFT'
table ip lvsft {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    ip daddr 192.0.2.103 tcp dport { 80, 443 } meta mark set 1
    ip daddr 192.0.2.104 tcp dport { 80, 443 } meta mark set 2
  }
}
NFT
`;

const CLEANUP = `
ipvsadm -C
for n in lvsft-client lvsft-rs1 lvsft-rs2; do ip netns del $n 2>/dev/null; done
ip link del lvsftbr0 2>/dev/null; ip link del lvsftc 2>/dev/null
for v in 102 103 104; do ip addr del 192.0.2.$v/32 dev lo 2>/dev/null; done
nft delete table ip lvsft 2>/dev/null
true
`;

let target: KernelTarget;
let probe: string;
let ports: string;
beforeAll(async () => {
  target = await kernelTarget();
  [probe, ports] = await Promise.all([bundleForGuest("test/kernel/guest/tcp-probe.ts"), bundleForGuest("test/kernel/guest/tcp-ports.ts")]);
  await mustExec(target, SETUP);
});
afterAll(async () => {
  await target?.exec(CLEANUP);
});

function find(snap: IpvsServiceState[], key: IpvsService): IpvsServiceState {
  const s = snap.find((x) => (key.fwmark ? x.service.fwmark === key.fwmark : x.service.address === key.address && x.service.port === key.port));
  if (!s) throw new Error(`service ${key.fwmark ? `fwmark ${key.fwmark}` : `${key.address}:${key.port}`} not in snapshot`);
  return s;
}
const conns = (st: IpvsServiceState, address: string): bigint => {
  const d = st.destinations.find((x) => x.address === address);
  if (!d) throw new Error(`destination ${address} missing`);
  return d.stats64!.conns;
};

type Seen = { port: number; name: string }[];

describe("IPVS real traffic (TUN, fwmark with persistence) programmed by lvsfleet", () => {
  it("TUN carries TCP to both real servers; one fwmark service groups ports 80+443 with persistence, another alternates", async () => {
    const prog = await runClient(target, [
      { do: "newService", service: TUN },
      { do: "newDestination", service: TUN, destination: dest(RS1, 80, "tunnel", { tunnelType: "ipip" }) },
      { do: "newDestination", service: TUN, destination: dest(RS2, 80, "tunnel", { tunnelType: "ipip" }) },
      { do: "newService", service: FWM_PERSIST },
      { do: "newDestination", service: FWM_PERSIST, destination: dest(RS1, 0, "route") },
      { do: "newDestination", service: FWM_PERSIST, destination: dest(RS2, 0, "route") },
      { do: "newService", service: FWM_RR },
      { do: "newDestination", service: FWM_RR, destination: dest(RS1, 0, "route") },
      { do: "newDestination", service: FWM_RR, destination: dest(RS2, 0, "route") },
    ]);
    expect(prog.map((r) => (r.ok ? "ok" : `${r.error.name} ${r.error.message}`))).toEqual(prog.map(() => "ok"));
    // What lvsfleet programmed, as ipvsadm reads it.
    const saved = await mustExec(target, "ipvsadm -Sn");
    expect(saved).toContain(`-a -t 192.0.2.102:80 -r ${RS1}:80 -i`);
    expect(saved).toMatch(/-A -f 1 -s rr -p 300/);
    expect(saved).toMatch(/-A -f 2 -s rr\s*$/m);

    const share = target.shareDir;
    const out = await mustExec(
      target,
      `set -e
       rm -f ${share}/lvsft-rs1.ready ${share}/lvsft-rs2.ready
       ip netns exec lvsft-rs1 node ${ports} serve rs1 ${share}/lvsft-rs1.ready 80 443 </dev/null >/dev/null 2>&1 & S1=$!
       ip netns exec lvsft-rs2 node ${ports} serve rs2 ${share}/lvsft-rs2.ready 80 443 </dev/null >/dev/null 2>&1 & S2=$!
       trap 'kill $S1 $S2 2>/dev/null' EXIT
       for i in $(seq 600); do [ -e ${share}/lvsft-rs1.ready ] && [ -e ${share}/lvsft-rs2.ready ] && break; sleep 0.1; done
       ip netns exec lvsft-client node ${probe} get 192.0.2.102 80 ${N}
       ip netns exec lvsft-client node ${ports} seq 192.0.2.103 80,443 ${ROUNDS}
       ip netns exec lvsft-client node ${ports} seq 192.0.2.103 80,443 ${ROUNDS}
       ip netns exec lvsft-client node ${ports} seq 192.0.2.104 80,443 ${ROUNDS}`,
      { timeoutMs: 180_000 },
    );
    const lines = out.trim().split("\n");
    const tun = JSON.parse(lines[0]!) as Record<string, number>;
    const [persistA, persistB, alternating] = lines.slice(1).map((l) => JSON.parse(l) as Seen);

    // TUN, round robin: both real servers answered (their own names), half each, no errors.
    expect(tun).toEqual({ rs1: N / 2, rs2: N / 2 });

    // fwmark 1 (persistent 300): every connection of the client — port 80 and 443, from two client
    // processes (new source ports) — lands on the one real server the first connection chose.
    const ports80443 = Array.from({ length: 2 * ROUNDS }, (_, i) => (i % 2 ? 443 : 80));
    expect(persistA!.map((s) => s.port)).toEqual(ports80443);
    expect(persistB!.map((s) => s.port)).toEqual(ports80443);
    const chosen = persistA![0]!.name;
    expect(["rs1", "rs2"]).toContain(chosen);
    expect([...persistA!, ...persistB!].map((s) => s.name)).toEqual(Array(4 * ROUNDS).fill(chosen));

    // fwmark 2 (same ports, no persistence): rr alternates connection by connection, across the ports.
    expect(alternating!.map((s) => s.port)).toEqual(ports80443);
    const names = alternating!.map((s) => s.name);
    for (const n of names) expect(["rs1", "rs2"]).toContain(n);
    for (let i = 1; i < names.length; i++) expect(names[i], `connection ${i} of ${JSON.stringify(names)}`).not.toBe(names[i - 1]);

    // Counters refresh every 2 s: poll lvsfleet's snapshot until every connection is counted.
    const want: [IpvsService, bigint][] = [[TUN, BigInt(N)], [FWM_PERSIST, BigInt(4 * ROUNDS)], [FWM_RR, BigInt(2 * ROUNDS)]];
    let snap: IpvsServiceState[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      snap = ok<IpvsServiceState[]>((await runClient(target, [{ do: "snapshot" }]))[0]);
      if (want.every(([s, n]) => (find(snap, s).service.stats64?.conns ?? 0n) >= n) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const [s, n] of want) expect(find(snap, s).service.stats64!.conns, JSON.stringify(s)).toBe(n);

    const tunS = find(snap, TUN);
    expect(tunS.service.stats64!.inPkts).toBeGreaterThan(0n);
    expect(tunS.service.stats64!.inBytes).toBeGreaterThan(0n);
    expect(tunS.service.stats64!.outPkts).toBe(0n); // replies go from the real servers straight to the client
    expect(conns(tunS, RS1)).toBe(BigInt(N / 2));
    expect(conns(tunS, RS2)).toBe(BigInt(N / 2));
    for (const d of tunS.destinations) {
      expect(d.forward).toBe("tunnel");
      expect(d.tunnelType).toBe("ipip");
    }

    const persistS = find(snap, FWM_PERSIST);
    const [hit, other] = chosen === "rs1" ? [RS1, RS2] : [RS2, RS1];
    expect(conns(persistS, hit)).toBe(BigInt(4 * ROUNDS));
    expect(conns(persistS, other)).toBe(0n);
    // The persistence template (client → real server, 300 s) still holds the chosen one.
    expect(persistS.destinations.find((d) => d.address === hit)!.persistentConns).toBeGreaterThanOrEqual(1);
    expect(persistS.destinations.find((d) => d.address === other)!.persistentConns).toBe(0);

    const rrS = find(snap, FWM_RR);
    expect(conns(rrS, RS1)).toBe(BigInt(ROUNDS));
    expect(conns(rrS, RS2)).toBe(BigInt(ROUNDS));
    expect(rrS.destinations.every((d) => d.persistentConns === 0)).toBe(true);
  });
});
