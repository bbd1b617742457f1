import { clone, create, equals, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  HostDesiredStateSchema,
  IpvsServiceSchema,
  type HostDesiredState,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import {
  AddressFamily,
  FailureAction,
  ForwardMethod,
  HostRole,
  Protocol,
  TunnelConfigSchema,
  TunnelType,
} from "../../../gen/lvsfleet/v1/types_pb.js";
import { affectedHosts, changedHosts, compileSite, compileSiteWithNotes, hashDesiredState, type SiteTopology } from "./compile.js";
import { desiredStateKey } from "./names.js";
import { director, fm, host, hostName, realServerHost, rs, rsName, site, SITE, topology, vs, vsName } from "./testing.js";

type StateInit = Omit<Exclude<MessageInitShape<typeof HostDesiredStateSchema>, HostDesiredState>, "site" | "host" | "revision" | "hash">;

/** The full expected state of one host (revision and hash are checked separately). */
function expected(hostId: string, init: StateInit = {}): HostDesiredState {
  return create(HostDesiredStateSchema, { site: SITE, host: hostId, ...init });
}

function stripped(s: HostDesiredState | undefined): HostDesiredState {
  expect(s, "host has a state").toBeDefined();
  const c = clone(HostDesiredStateSchema, s!);
  c.revision = 0n;
  c.hash = "";
  return c;
}

function expectStates(topo: SiteTopology, want: HostDesiredState[]): Map<string, HostDesiredState> {
  const got = compileSite(topo, 7n);
  expect([...got.keys()]).toEqual(want.map((w) => w.host).sort());
  for (const w of want) {
    expect(stripped(got.get(w.host))).toEqual(w);
    expect(got.get(w.host)!.revision).toBe(7n);
    expect(got.get(w.host)!.hash).toBe(hashDesiredState(w));
  }
  return got;
}

const DIRECTOR_SYSCTLS = [
  { key: "net.ipv4.vs.conn_reuse_mode", value: "1" },
  { key: "net.ipv4.vs.expire_nodest_conn", value: "1" },
  { key: "net.ipv4.vs.expire_quiescent_template", value: "1" },
];
const arp = (...ifs: string[]) =>
  ifs.flatMap((i) => [
    { key: `net.ipv4.conf.${i}.arp_announce`, value: "2" },
    { key: `net.ipv4.conf.${i}.arp_ignore`, value: "1" },
  ]);
const byKey = (xs: { key: string; value: string }[]) => [...xs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

describe("compileSite: forwarding methods", () => {
  it("DR: Director holds the VIP on the interface whose prefix contains it; real servers hold it on lo with ARP sysctls", () => {
    const topo = topology({
      site: site({ ipvsTimeouts: { tcpSeconds: 900, tcpFinSeconds: 120, udpSeconds: 300 } }),
      hosts: [
        director("lb1", { eth0: ["192.0.2.10/24"] }),
        realServerHost("web1", { eth0: ["192.0.2.21/24"] }),
        realServerHost("web2", { eth0: ["192.0.2.22/24"], eth1: ["198.51.100.22/24"] }),
      ],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, addressFamily: AddressFamily.IPV4, directors: ["lb1"] })],
      realServers: [
        rs("web", "b", { address: "192.0.2.22", forwardMethod: ForwardMethod.DR, weight: 5, host: "web2" }),
        rs("web", "a", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, weight: 3, upperThreshold: 100, lowerThreshold: 50, host: "web1" }),
      ],
    });
    expectStates(topo, [
      expected("lb1", {
        director: {
          services: [
            {
              virtualService: vsName("web"),
              addressFamily: AddressFamily.IPV4,
              protocol: Protocol.TCP,
              address: "192.0.2.100",
              port: 80,
              scheduler: "wlc",
              persistencePrefixLength: 32,
              failureAction: FailureAction.QUIESCE,
              destinations: [
                { realServer: rsName("web", "a"), addressFamily: AddressFamily.IPV4, address: "192.0.2.21", port: 80, forwardMethod: ForwardMethod.DR, weight: 3, upperThreshold: 100, lowerThreshold: 50 },
                { realServer: rsName("web", "b"), addressFamily: AddressFamily.IPV4, address: "192.0.2.22", port: 80, forwardMethod: ForwardMethod.DR, weight: 5 },
              ],
            },
          ],
          timeouts: { tcpSeconds: 900, tcpFinSeconds: 120, udpSeconds: 300 },
          addresses: [{ interface: "eth0", address: "192.0.2.100", prefixLength: 32 }],
        },
        sysctls: DIRECTOR_SYSCTLS,
      }),
      expected("web1", {
        realServer: { addresses: [{ interface: "lo", address: "192.0.2.100", prefixLength: 32 }] },
        sysctls: arp("eth0"),
      }),
      expected("web2", {
        realServer: { addresses: [{ interface: "lo", address: "192.0.2.100", prefixLength: 32 }] },
        sysctls: byKey(arp("eth0", "eth1")),
      }),
    ]);
  });

  it("NAT: Director forwards (ip_forward, no redirects); real servers get a return path via the Directors, no VIP, no ARP sysctls", () => {
    const topo = topology({
      hosts: [
        // Dual-stack Director: only the IPv4 addresses are return paths for an IPv4 real server.
        director("lb1", { eth0: ["203.0.113.10/24", "2001:db8::10/64"], eth1: ["198.51.100.1/24"] }),
        director("lb2", { eth0: ["203.0.113.11/24"], eth1: ["198.51.100.2/24"] }),
        realServerHost("app1", { eth0: ["198.51.100.21/24"] }),
      ],
      virtualServices: [
        vs("api", { address: "203.0.113.100", port: 443, scheduler: "rr", directors: ["lb2", "lb1"] }),
      ],
      realServers: [rs("api", "app1", { address: "198.51.100.21", port: 8443, forwardMethod: ForwardMethod.NAT, host: "app1" })],
    });
    const d = {
      services: [
        {
          virtualService: vsName("api"),
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "203.0.113.100",
          port: 443,
          scheduler: "rr",
          persistencePrefixLength: 32,
          failureAction: FailureAction.QUIESCE,
          destinations: [
            { realServer: rsName("api", "app1"), addressFamily: AddressFamily.IPV4, address: "198.51.100.21", port: 8443, forwardMethod: ForwardMethod.NAT, weight: 1 },
          ],
        },
      ],
      timeouts: {},
      addresses: [{ interface: "eth0", address: "203.0.113.100", prefixLength: 32 }],
    };
    const natSysctls = byKey([
      ...DIRECTOR_SYSCTLS,
      { key: "net.ipv4.ip_forward", value: "1" },
      { key: "net.ipv4.conf.all.send_redirects", value: "0" },
      { key: "net.ipv4.conf.eth0.send_redirects", value: "0" },
      { key: "net.ipv4.conf.eth1.send_redirects", value: "0" },
    ]);
    expectStates(topo, [
      expected("app1", {
        realServer: {
          natReturnPaths: [
            { virtualService: vsName("api"), directorAddresses: ["198.51.100.1", "198.51.100.2", "203.0.113.10", "203.0.113.11"] },
          ],
        },
      }),
      expected("lb1", { director: d, sysctls: natSysctls }),
      expected("lb2", { director: d, sysctls: natSysctls }),
    ]);
  });

  it("TUN (IPIP, IPv4): VIP on tunl0, rp_filter loose on tunl0 and all, ARP sysctls on listed interfaces", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("far1", { ens3: ["198.51.100.31/24"] })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
      realServers: [rs("web", "far1", { address: "198.51.100.31", forwardMethod: ForwardMethod.TUN, host: "far1" })],
    });
    const got = expectStates(topo, [
      expected("far1", {
        realServer: {
          addresses: [{ interface: "tunl0", address: "192.0.2.100", prefixLength: 32 }],
          tunnels: [{ name: "tunl0", type: TunnelType.IPIP }],
        },
        sysctls: byKey([
          ...arp("ens3"),
          { key: "net.ipv4.conf.all.rp_filter", value: "2" },
          { key: "net.ipv4.conf.tunl0.rp_filter", value: "2" },
        ]),
      }),
      expected("lb1", {
        director: {
          services: [
            {
              virtualService: vsName("web"),
              addressFamily: AddressFamily.IPV4,
              protocol: Protocol.TCP,
              address: "192.0.2.100",
              port: 80,
              scheduler: "wlc",
              persistencePrefixLength: 32,
              failureAction: FailureAction.QUIESCE,
              destinations: [
                {
                  realServer: rsName("web", "far1"),
                  addressFamily: AddressFamily.IPV4,
                  address: "198.51.100.31",
                  port: 80,
                  forwardMethod: ForwardMethod.TUN,
                  weight: 1,
                  tunnel: { type: TunnelType.IPIP },
                },
              ],
            },
          ],
          timeouts: {},
          addresses: [{ interface: "eth0", address: "192.0.2.100", prefixLength: 32 }],
        },
        sysctls: DIRECTOR_SYSCTLS,
      }),
    ]);
    // No IP forwarding for a TUN-only Director.
    expect(got.get("lb1")!.sysctls.map((s) => s.key)).not.toContain("net.ipv4.ip_forward");
  });

  it.each([
    { name: "GRE over IPv4", rsAddr: "198.51.100.31", vip: "192.0.2.100", tun: TunnelType.GRE, dev: "gre0", rp: true, arp: true, fou: undefined },
    { name: "GUE over IPv4", rsAddr: "198.51.100.31", vip: "192.0.2.100", tun: TunnelType.GUE, dev: "tunl0", rp: true, arp: true, fou: AddressFamily.IPV4 },
    { name: "GUE, IPv6 service", rsAddr: "2001:db8:2::31", vip: "2001:db8:1::100", tun: TunnelType.GUE, dev: "ip6tnl0", rp: false, arp: false, fou: AddressFamily.IPV6 },
    { name: "GUE, IPv4 outer, IPv6 inner", rsAddr: "198.51.100.31", vip: "2001:db8:1::100", tun: TunnelType.GUE, dev: "sit0", rp: false, arp: false, fou: AddressFamily.IPV4 },
    { name: "IPIP, IPv6 service", rsAddr: "2001:db8:2::31", vip: "2001:db8:1::100", tun: TunnelType.IPIP, dev: "ip6tnl0", rp: false, arp: false, fou: undefined },
    { name: "GRE, IPv6 service", rsAddr: "2001:db8:2::31", vip: "2001:db8:1::100", tun: TunnelType.GRE, dev: "ip6gre0", rp: false, arp: false, fou: undefined },
    { name: "IPv6 outer, IPv4 inner", rsAddr: "2001:db8:2::31", vip: "192.0.2.100", tun: TunnelType.IPIP, dev: "ip6tnl0", rp: true, arp: true, fou: undefined },
    { name: "IPv4 outer, IPv6 inner", rsAddr: "198.51.100.31", vip: "2001:db8:1::100", tun: TunnelType.IPIP, dev: "sit0", rp: false, arp: false, fou: undefined },
  ])("TUN $name → device $dev", ({ rsAddr, vip, tun, dev, rp, arp: wantArp, fou }) => {
    const v6 = vip.includes(":");
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24", "2001:db8:1::10/64"] }), realServerHost("far1", { eth0: [`${rsAddr}/24`] })],
      virtualServices: [vs("web", { address: vip, port: 80, addressFamily: v6 ? AddressFamily.IPV6 : AddressFamily.IPV4, directors: ["lb1"] })],
      realServers: [rs("web", "far1", { address: rsAddr, forwardMethod: ForwardMethod.TUN, tunnel: { type: tun, port: tun === TunnelType.GUE ? 5555 : 0 }, host: "far1" })],
    });
    const got = compileSite(topo, 1n);
    const far = got.get("far1")!;
    expect(far.realServer!.tunnels).toEqual([expect.objectContaining({ name: dev, type: tun })]);
    expect(far.realServer!.addresses).toEqual([expect.objectContaining({ interface: dev, address: vip, prefixLength: v6 ? 128 : 32 })]);
    const keys = far.sysctls.map((s) => s.key);
    expect(keys.includes(`net.ipv4.conf.${dev}.rp_filter`)).toBe(rp);
    expect(keys.includes("net.ipv4.conf.all.rp_filter")).toBe(rp);
    expect(keys.includes("net.ipv4.conf.eth0.arp_ignore")).toBe(wantArp);
    // GUE: a fou receive port on the tunnel port, of the real server's (outer) family; nothing else needs one.
    expect(far.realServer!.fouPorts).toEqual(fou === undefined ? [] : [expect.objectContaining({ port: 5555, addressFamily: fou })]);
    expect(got.get("lb1")!.realServer).toBeUndefined();
    const dest = got.get("lb1")!.director!.services[0].destinations[0];
    expect(dest.tunnel).toEqual(expect.objectContaining({ type: tun, port: tun === TunnelType.GUE ? 5555 : 0 }));
    expect(dest.addressFamily).toBe(rsAddr.includes(":") ? AddressFamily.IPV6 : AddressFamily.IPV4);
  });

  it("tunnel options of a DR/NAT real server do not reach the destination (they would only perturb the hash)", () => {
    const mk = (tunnelPort: number) =>
      topology({
        hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
        virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
        realServers: [rs("web", "a", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, tunnel: { type: TunnelType.GUE, port: tunnelPort } })],
      });
    const a = compileSite(mk(1), 1n).get("lb1")!;
    const b = compileSite(mk(2), 1n).get("lb1")!;
    expect(a.director!.services[0].destinations[0].tunnel).toBeUndefined();
    expect(a.hash).toBe(b.hash);
  });
});

describe("compileSite: GUE receive ports (fou)", () => {
  // far1 serves four TUN services: two GUE on port 6080 (one IPv4, one IPv6 VIP — both IPv4 outer),
  // one GUE on 7000, one plain IPIP; far2 (IPv6 address) one GUE on 6080; near1 GRE only.
  const gue = (port: number) => ({ type: TunnelType.GUE, port });
  const topo = (drop: string[] = []) =>
    topology({
      hosts: [
        director("lb1", { eth0: ["192.0.2.10/24", "2001:db8:1::10/64"] }),
        realServerHost("far1", { eth0: ["198.51.100.31/24"] }),
        realServerHost("far2", { eth0: ["2001:db8:2::32/64"] }),
        realServerHost("near1", { eth0: ["198.51.100.33/24"] }),
      ],
      virtualServices: [
        vs("a", { address: "192.0.2.100", port: 80, directors: ["lb1"] }),
        vs("b", { address: "2001:db8:1::100", port: 80, addressFamily: AddressFamily.IPV6, directors: ["lb1"] }),
        vs("c", { address: "192.0.2.101", port: 443, directors: ["lb1"] }),
        vs("d", { address: "192.0.2.102", port: 80, directors: ["lb1"] }),
        vs("e", { address: "2001:db8:1::101", port: 80, addressFamily: AddressFamily.IPV6, directors: ["lb1"] }),
        vs("f", { address: "192.0.2.103", port: 80, directors: ["lb1"] }),
      ].filter((v) => !drop.includes(v.name.split("/").pop()!)),
      realServers: [
        rs("a", "far1", { address: "198.51.100.31", forwardMethod: ForwardMethod.TUN, tunnel: gue(6080), host: "far1" }),
        rs("b", "far1", { address: "198.51.100.31", forwardMethod: ForwardMethod.TUN, tunnel: gue(6080), host: "far1" }),
        rs("c", "far1", { address: "198.51.100.31", forwardMethod: ForwardMethod.TUN, tunnel: gue(7000), host: "far1" }),
        rs("d", "far1", { address: "198.51.100.31", forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.IPIP }, host: "far1" }),
        rs("e", "far2", { address: "2001:db8:2::32", forwardMethod: ForwardMethod.TUN, tunnel: gue(6080), host: "far2" }),
        rs("f", "near1", { address: "198.51.100.33", forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.GRE }, host: "near1" }),
      ].filter((r) => !drop.includes(r.name.split("/")[3]!)),
    });
  const fouOf = (states: Map<string, HostDesiredState>, h: string) => (states.get(h)!.realServer?.fouPorts ?? []).map((p) => [p.addressFamily, p.port]);

  it("one fou port per (outer family, port) on each GUE real-server host, sorted; GRE and IPIP hosts and the Director get none", () => {
    const got = compileSite(topo(), 1n);
    expect(fouOf(got, "far1")).toEqual([
      [AddressFamily.IPV4, 6080],
      [AddressFamily.IPV4, 7000],
    ]);
    expect(fouOf(got, "far2")).toEqual([[AddressFamily.IPV6, 6080]]);
    expect(fouOf(got, "near1")).toEqual([]);
    expect(got.get("lb1")!.realServer).toBeUndefined();
    // The devices the ports feed: tunl0 (IPv4 in GUE/IPv4), sit0 (IPv6 in GUE/IPv4), ip6tnl0 (GUE/IPv6).
    expect(got.get("far1")!.realServer!.tunnels.map((t) => [t.name, t.type])).toEqual([
      ["sit0", TunnelType.GUE],
      ["tunl0", TunnelType.IPIP],
      ["tunl0", TunnelType.GUE],
    ]);
    expect(got.get("far2")!.realServer!.tunnels.map((t) => t.name)).toEqual(["ip6tnl0"]);
  });

  it("a port stays while any GUE service uses it, and goes with the last one; only the real-server hosts involved are affected", () => {
    const before = topo();
    // a goes: b still holds 6080/IPv4 on far1 — far1 changes (VIP) but keeps its ports.
    const noA = compileSite(topo(["a"]), 2n);
    expect(fouOf(noA, "far1")).toEqual([
      [AddressFamily.IPV4, 6080],
      [AddressFamily.IPV4, 7000],
    ]);
    // a and b go: 6080/IPv4 goes from far1; far2's 6080/IPv6 is another port and stays.
    const noAB = compileSite(topo(["a", "b"]), 3n);
    expect(fouOf(noAB, "far1")).toEqual([[AddressFamily.IPV4, 7000]]);
    expect(fouOf(noAB, "far2")).toEqual([[AddressFamily.IPV6, 6080]]);
    // Every GUE service gone: no fou port anywhere; far1 keeps only its IPIP tunnel.
    const noGue = compileSite(topo(["a", "b", "c", "e"]), 4n);
    for (const h of ["far1", "far2", "near1", "lb1"]) expect(fouOf(noGue, h)).toEqual([]);
    expect(noGue.get("far2")!.realServer).toBeUndefined();
    expect(noGue.get("far1")!.realServer!.tunnels.map((t) => t.name)).toEqual(["tunl0"]);
    expect(affectedHosts(before, topo(["e"]))).toEqual(["far2", "lb1"]);
  });

  it("changing a GUE port moves the fou port (Director and that real server affected); GUE → GRE drops it", () => {
    const before = topo(["b", "c", "d", "e", "f"]);
    const after = topo(["b", "c", "d", "e", "f"]);
    after.realServers[0]!.tunnel!.port = 6081;
    expect(fouOf(compileSite(after, 1n), "far1")).toEqual([[AddressFamily.IPV4, 6081]]);
    expect(affectedHosts(before, after)).toEqual(["far1", "lb1"]);
    after.realServers[0]!.tunnel = create(TunnelConfigSchema, { type: TunnelType.GRE });
    const gre = compileSite(after, 2n).get("far1")!;
    expect(gre.realServer!.fouPorts).toEqual([]);
    expect(gre.realServer!.tunnels.map((t) => t.name)).toEqual(["gre0"]);
  });
});

describe("compileSite: fwmark services", () => {
  it("80+443 affinity: one fwmark service, an nftables rule, the VIP on the Director and on the DR real servers", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("web1", { eth0: ["192.0.2.21/24"] })],
      firewallMarks: [
        fm("https-affinity", 1, [{ destinations: ["192.0.2.100"], protocol: Protocol.TCP, ports: [{ start: 443, end: 443 }, { start: 80, end: 80 }] }]),
      ],
      virtualServices: [
        vs("shop", { fwmark: 1, addressFamily: AddressFamily.IPV4, persistence: { timeoutSeconds: 300, prefixLength: 32 }, directors: ["lb1"] }),
      ],
      realServers: [rs("shop", "web1", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" })],
    });
    expectStates(topo, [
      expected("lb1", {
        director: {
          services: [
            {
              virtualService: vsName("shop"),
              addressFamily: AddressFamily.IPV4,
              fwmark: 1,
              scheduler: "wlc",
              persistenceTimeout: 300,
              persistencePrefixLength: 32,
              failureAction: FailureAction.QUIESCE,
              destinations: [
                // Port 0: IPVS keeps the port the client used (80 or 443).
                { realServer: rsName("shop", "web1"), addressFamily: AddressFamily.IPV4, address: "192.0.2.21", port: 0, forwardMethod: ForwardMethod.DR, weight: 1 },
              ],
            },
          ],
          timeouts: {},
          addresses: [{ interface: "eth0", address: "192.0.2.100", prefixLength: 32 }],
          fwmarkRules: [
            { mark: 1, matches: [{ destinations: ["192.0.2.100"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] },
          ],
        },
        sysctls: DIRECTOR_SYSCTLS,
      }),
      expected("web1", {
        realServer: { addresses: [{ interface: "lo", address: "192.0.2.100", prefixLength: 32 }] },
        sysctls: arp("eth0"),
      }),
    ]);
  });

  it("FTP 21 + passive 10000-20000: rule carries both ranges; prefix destinations are marked but not held as VIPs", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("ftp1", { eth0: ["192.0.2.31/24"] })],
      firewallMarks: [
        fm("ftp", 21, [
          { destinations: ["192.0.2.50", "198.18.0.0/24"], protocol: Protocol.TCP, ports: [{ start: 10000, end: 20000 }, { start: 21, end: 21 }] },
        ]),
      ],
      virtualServices: [vs("ftp", { fwmark: 21, addressFamily: AddressFamily.IPV4, persistence: { timeoutSeconds: 600, prefixLength: 32 }, scheduler: "lc", directors: ["lb1"] })],
      realServers: [rs("ftp", "ftp1", { address: "192.0.2.31", forwardMethod: ForwardMethod.DR, host: "ftp1" })],
    });
    const { states, notes } = compileSiteWithNotes(topo, 3n);
    const lb = states.get("lb1")!.director!;
    expect(lb.fwmarkRules).toHaveLength(1);
    expect(lb.fwmarkRules[0].mark).toBe(21);
    expect(lb.fwmarkRules[0].matches[0].destinations).toEqual(["192.0.2.50", "198.18.0.0/24"]);
    expect(lb.fwmarkRules[0].matches[0].ports.map((p) => [p.start, p.end])).toEqual([[21, 21], [10000, 20000]]);
    expect(lb.services[0]).toEqual(
      expect.objectContaining({ fwmark: 21, port: 0, address: "", protocol: Protocol.UNSPECIFIED, scheduler: "lc", persistenceTimeout: 600 }),
    );
    expect(lb.addresses.map((a) => a.address)).toEqual(["192.0.2.50"]);
    expect(states.get("ftp1")!.realServer!.addresses.map((a) => `${a.interface} ${a.address}/${a.prefixLength}`)).toEqual(["lo 192.0.2.50/32"]);
    expect(notes.some((n) => n.resource.endsWith("/firewallMarks/ftp") && n.message.includes("198.18.0.0/24"))).toBe(true);
  });

  it("a mark shared by an IPv4 and an IPv6 fwmark service: one rule, each service holds only its family's addresses", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24", "2001:db8::10/64"] }), realServerHost("web1", { eth0: ["192.0.2.21/24", "2001:db8::21/64"] })],
      firewallMarks: [fm("web", 7, [{ destinations: ["2001:db8::100", "192.0.2.100"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }] }])],
      virtualServices: [
        vs("web4", { fwmark: 7, addressFamily: AddressFamily.IPV4, directors: ["lb1"] }),
        vs("web6", { fwmark: 7, addressFamily: AddressFamily.IPV6, directors: ["lb1"] }),
      ],
      realServers: [
        rs("web4", "a", { address: "192.0.2.21", host: "web1", forwardMethod: ForwardMethod.DR }),
        rs("web6", "a", { address: "2001:db8::21", host: "web1", forwardMethod: ForwardMethod.DR }),
      ],
    });
    const got = compileSite(topo, 1n);
    const d = got.get("lb1")!.director!;
    expect(d.fwmarkRules.map((r) => r.mark)).toEqual([7]);
    expect(d.fwmarkRules[0].matches[0].destinations).toEqual(["192.0.2.100", "2001:db8::100"]);
    expect(d.addresses.map((a) => `${a.interface} ${a.address}/${a.prefixLength}`)).toEqual(["eth0 192.0.2.100/32", "eth0 2001:db8::100/128"]);
    expect(d.services.map((s) => [s.virtualService, s.addressFamily, s.persistencePrefixLength])).toEqual([
      [vsName("web4"), AddressFamily.IPV4, 32],
      [vsName("web6"), AddressFamily.IPV6, 128],
    ]);
    expect(got.get("web1")!.realServer!.addresses.map((a) => `${a.address}/${a.prefixLength}`)).toEqual(["192.0.2.100/32", "2001:db8::100/128"]);
  });

  it("fwmark rule matches are sorted and de-duplicated; input order of matches, destinations and ports does not matter", () => {
    const mk = (reverse: boolean) => {
      const matches = [
        { destinations: ["192.0.2.101", "192.0.2.100"], protocol: Protocol.TCP, ports: [{ start: 443, end: 443 }, { start: 80, end: 80 }] },
        { destinations: ["192.0.2.100"], protocol: Protocol.UDP, ports: [{ start: 443, end: 443 }] },
        { destinations: ["192.0.2.100", "192.0.2.101"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] },
      ];
      const ms = reverse ? [...matches].reverse().map((m) => ({ ...m, destinations: [...m.destinations].reverse(), ports: [...m.ports].reverse() })) : matches;
      return topology({
        hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
        firewallMarks: [fm("m", 9, ms)],
        virtualServices: [vs("m", { fwmark: 9, addressFamily: AddressFamily.IPV4, persistence: { timeoutSeconds: 60, prefixLength: 32 }, directors: ["lb1"] })],
      });
    };
    const a = compileSite(mk(false), 1n).get("lb1")!;
    const b = compileSite(mk(true), 1n).get("lb1")!;
    expect(a.hash).toBe(b.hash);
    expect(a.director!.fwmarkRules[0].matches).toHaveLength(2);
    expect(a.director!.addresses.map((x) => x.address)).toEqual(["192.0.2.100", "192.0.2.101"]);
  });
});

describe("compileSite: service details", () => {
  it("port-0 persistent service: service and destinations on port 0, persistence netmask kept", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
      virtualServices: [
        vs("all", { address: "192.0.2.100", port: 0, persistence: { timeoutSeconds: 1800, prefixLength: 24 }, scheduler: "sh", schedulerFlags: ["sh-port", "sh-fallback"], directors: ["lb1"] }),
      ],
      realServers: [rs("all", "a", { address: "192.0.2.21", port: 0, forwardMethod: ForwardMethod.DR })],
    });
    const svc = compileSite(topo, 1n).get("lb1")!.director!.services[0];
    expect(
      equals(
        IpvsServiceSchema,
        svc,
        create(IpvsServiceSchema, {
          virtualService: vsName("all"),
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.100",
          port: 0,
          scheduler: "sh",
          schedulerFlags: ["sh-fallback", "sh-port"],
          persistenceTimeout: 1800,
          persistencePrefixLength: 24,
          failureAction: FailureAction.QUIESCE,
          destinations: [{ realServer: rsName("all", "a"), addressFamily: AddressFamily.IPV4, address: "192.0.2.21", port: 0, forwardMethod: ForwardMethod.DR, weight: 1 }],
        }),
      ),
    ).toBe(true);
  });

  it("non-persistent service: a stray persistence prefix does not reach the kernel state or the hash", () => {
    const mk = (prefixLength: number | undefined) =>
      topology({
        hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
        virtualServices: [vs("web", { address: "192.0.2.100", port: 80, persistence: { timeoutSeconds: 0, prefixLength }, directors: ["lb1"] })],
      });
    const a = compileSite(mk(undefined), 1n).get("lb1")!;
    const b = compileSite(mk(16), 1n).get("lb1")!;
    expect(a.director!.services[0].persistencePrefixLength).toBe(32);
    expect(a.hash).toBe(b.hash);
  });

  it("health check, failure action, sorry server (port 0 → service port), one-packet UDP, persistence engine, quiesced weight 0", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
      virtualServices: [
        vs("sip", {
          protocol: Protocol.UDP,
          address: "192.0.2.60",
          port: 5060,
          onePacket: true,
          persistenceEngine: "sip",
          persistence: { timeoutSeconds: 60, prefixLength: 32 },
          healthCheck: { kind: { case: "dns", value: { queryName: "example.test.", queryType: "SOA" } }, rise: 2, fall: 3, interval: { seconds: 5n } },
          failureAction: FailureAction.REMOVE,
          sorryServer: { address: "192.0.2.250", port: 0, forwardMethod: ForwardMethod.NAT },
          directors: ["lb1"],
        }),
      ],
      realServers: [
        rs("sip", "a", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, weight: 0 }),
        rs("sip", "b", { address: "192.0.2.9", forwardMethod: ForwardMethod.DR, weight: undefined }),
      ],
    });
    const st = compileSite(topo, 1n).get("lb1")!;
    const svc = st.director!.services[0];
    expect(svc.onePacket).toBe(true);
    expect(svc.persistenceEngine).toBe("sip");
    expect(svc.failureAction).toBe(FailureAction.REMOVE);
    expect(svc.healthCheck?.kind).toEqual(expect.objectContaining({ case: "dns", value: expect.objectContaining({ queryName: "example.test.", queryType: "SOA" }) }));
    expect(svc.healthCheck?.interval?.seconds).toBe(5n);
    expect(svc.sorryServer).toEqual(
      expect.objectContaining({ realServer: "", address: "192.0.2.250", port: 5060, forwardMethod: ForwardMethod.NAT, weight: 1, addressFamily: AddressFamily.IPV4 }),
    );
    // Numeric order (192.0.2.9 before 192.0.2.21), weight 0 kept (quiesced), unset weight → 1.
    expect(svc.destinations.map((d) => [d.address, d.weight])).toEqual([["192.0.2.9", 1], ["192.0.2.21", 0]]);
    // A NAT sorry server makes the Director forward.
    expect(st.sysctls).toContainEqual(expect.objectContaining({ key: "net.ipv4.ip_forward", value: "1" }));
  });

  it("the health check in the output is a copy: mutating the topology afterwards does not change it", () => {
    const v = vs("web", { address: "192.0.2.100", port: 80, healthCheck: { kind: { case: "tcp", value: {} }, port: 8080 }, directors: ["lb1"] });
    const st = compileSite(topology({ hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })], virtualServices: [v] }), 1n).get("lb1")!;
    v.healthCheck!.port = 9999;
    expect(st.director!.services[0].healthCheck!.port).toBe(8080);
    expect(hashDesiredState(st)).toBe(st.hash);
  });
});

describe("compileSite: Director VIP placement", () => {
  it.each<{ name: string; ifs: Record<string, string[]>; vip: string; want: string; note: boolean }>([
    { name: "VIP in eth0's /24", ifs: { eth0: ["192.0.2.10/24"] }, vip: "192.0.2.100", want: "eth0", note: false },
    { name: "longest prefix wins", ifs: { bond0: ["192.0.2.10/16"], "bond0.42": ["192.0.2.10/25"] }, vip: "192.0.2.100", want: "bond0.42", note: false },
    { name: "equal prefixes: interface name order", ifs: { eth1: ["192.0.2.11/24"], eth0: ["192.0.2.10/24"] }, vip: "192.0.2.100", want: "eth0", note: false },
    { name: "no containing prefix → lo with a note", ifs: { eth0: ["198.51.100.10/24"] }, vip: "192.0.2.100", want: "lo", note: true },
    { name: "family must match", ifs: { eth0: ["2001:db8::10/64"] }, vip: "192.0.2.100", want: "lo", note: true },
    { name: "IPv6 VIP in eth0's /64", ifs: { eth0: ["192.0.2.10/24", "2001:db8::10/64"] }, vip: "2001:db8::100", want: "eth0", note: false },
    { name: "lo's own prefix never holds a VIP", ifs: { lo: ["192.0.2.0/24"] }, vip: "192.0.2.100", want: "lo", note: true },
  ])("$name", ({ ifs, vip, want, note }) => {
    const topo = topology({
      hosts: [director("lb1", ifs)],
      virtualServices: [vs("web", { address: vip, port: 80, directors: ["lb1"] })],
    });
    const { states, notes } = compileSiteWithNotes(topo, 1n);
    expect(states.get("lb1")!.director!.addresses).toEqual([
      expect.objectContaining({ interface: want, address: vip, prefixLength: vip.includes(":") ? 128 : 32 }),
    ]);
    expect(notes.some((n) => n.host === "lb1" && n.message.includes(vip))).toBe(note);
  });

  it("a host listed as director without the DIRECTOR role carries nothing; unknown directors are ignored", () => {
    const topo = topology({
      hosts: [host("notlb", { roles: [HostRole.REAL_SERVER], interfaces: { eth0: ["192.0.2.10/24"] } })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["notlb", "ghost"] })],
    });
    const { states, notes } = compileSiteWithNotes(topo, 1n);
    expect(stripped(states.get("notlb"))).toEqual(expected("notlb"));
    expect(notes.some((n) => n.host === "notlb" && n.message.includes("no DIRECTOR role"))).toBe(true);
    expect(notes.some((n) => n.message.includes(hostName("ghost")))).toBe(true);
  });
});

describe("compileSite: real servers", () => {
  it("IPv6 DR: VIP on lo as /128, no ARP sysctls (NDP does not answer for lo addresses); IPv6 NAT turns on IPv6 forwarding", () => {
    const topo = topology({
      hosts: [
        director("lb1", { eth0: ["2001:db8:1::10/64"], eth1: ["2001:db8:2::1/64"] }),
        realServerHost("web1", { eth0: ["2001:db8:1::21/64"] }),
        realServerHost("app1", { eth0: ["2001:db8:2::21/64"] }),
      ],
      virtualServices: [
        vs("web6", { address: "2001:db8:1::100", port: 443, addressFamily: AddressFamily.IPV6, directors: ["lb1"] }),
        vs("api6", { address: "2001:db8:1::200", port: 443, addressFamily: AddressFamily.IPV6, directors: ["lb1"] }),
      ],
      realServers: [
        rs("web6", "web1", { address: "2001:db8:1::21", forwardMethod: ForwardMethod.DR, host: "web1" }),
        rs("api6", "app1", { address: "2001:db8:2::21", port: 8443, forwardMethod: ForwardMethod.NAT, host: "app1" }),
      ],
    });
    const got = compileSite(topo, 1n);
    expect(stripped(got.get("web1"))).toEqual(
      expected("web1", { realServer: { addresses: [{ interface: "lo", address: "2001:db8:1::100", prefixLength: 128 }] } }),
    );
    expect(stripped(got.get("app1"))).toEqual(
      expected("app1", { realServer: { natReturnPaths: [{ virtualService: vsName("api6"), directorAddresses: ["2001:db8:1::10", "2001:db8:2::1"] }] } }),
    );
    const lb = got.get("lb1")!;
    expect(lb.sysctls).toEqual(byKey([...DIRECTOR_SYSCTLS, { key: "net.ipv6.conf.all.forwarding", value: "1" }]).map((s) => expect.objectContaining(s)));
    expect(lb.director!.addresses.map((a) => `${a.interface} ${a.address}/${a.prefixLength}`)).toEqual([
      "eth0 2001:db8:1::100/128",
      "eth0 2001:db8:1::200/128",
    ]);
    expect(lb.director!.services.map((s) => s.persistencePrefixLength)).toEqual([128, 128]);
  });

  it("a real server serving many VIPs: one lo address per VIP in numeric order, ARP sysctls once", () => {
    const n = 40;
    const vss = Array.from({ length: n }, (_, i) => vs(`v${i}`, { address: `192.0.2.${100 + ((i * 7) % n)}`, port: 80 + i, directors: ["lb1"] }));
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("web1", { eth0: ["192.0.2.21/24"], "eth0.100": ["198.51.100.21/24"] })],
      virtualServices: vss,
      realServers: vss.map((v, i) => rs(`v${i}`, "web1", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" })),
    });
    const web1 = compileSite(topo, 1n).get("web1")!;
    expect(web1.realServer!.addresses.map((a) => a.address)).toEqual(Array.from({ length: n }, (_, i) => `192.0.2.${100 + i}`));
    expect(web1.realServer!.addresses.every((a) => a.interface === "lo" && a.prefixLength === 32)).toBe(true);
    // "eth0.100" is spelled "eth0/100" in a dotted sysctl key (sysctl(8)).
    expect(web1.sysctls).toEqual(byKey(arp("eth0", "eth0/100")).map((s) => expect.objectContaining(s)));
  });

  it("two services on one VIP (80 and 443) give one address on each side", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("web1", { eth0: ["192.0.2.21/24"] })],
      virtualServices: [vs("http", { address: "192.0.2.100", port: 80, directors: ["lb1"] }), vs("https", { address: "192.0.2.100", port: 443, directors: ["lb1"] })],
      realServers: [
        rs("http", "w", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" }),
        rs("https", "w", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" }),
      ],
    });
    const got = compileSite(topo, 1n);
    expect(got.get("lb1")!.director!.addresses).toHaveLength(1);
    expect(got.get("lb1")!.director!.services).toHaveLength(2);
    expect(got.get("web1")!.realServer!.addresses).toHaveLength(1);
  });

  it("a real server without listed interfaces gets the ARP sysctls on 'all' (the only safe choice), with a note", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), host("bare", { roles: [HostRole.REAL_SERVER], addresses: ["192.0.2.21"] })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
      realServers: [rs("web", "bare", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "bare" })],
    });
    const { states, notes } = compileSiteWithNotes(topo, 1n);
    expect(states.get("bare")!.sysctls).toEqual(arp("all").map((s) => expect.objectContaining(s)));
    expect(notes.some((n) => n.host === "bare" && n.message.includes('"all"'))).toBe(true);
  });

  it("a real server without a host link produces a destination but no real-server state anywhere", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("web1", { eth0: ["192.0.2.21/24"] })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
      realServers: [rs("web", "x", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR })],
    });
    const got = compileSite(topo, 1n);
    expect(got.get("lb1")!.director!.services[0].destinations).toHaveLength(1);
    expect(stripped(got.get("web1"))).toEqual(expected("web1"));
  });

  it("a host with both roles gets both parts, sysctls merged in key order", () => {
    const topo = topology({
      hosts: [
        host("combo", { roles: [HostRole.DIRECTOR, HostRole.REAL_SERVER], interfaces: { eth0: ["192.0.2.10/24"] } }),
        director("lb2", { eth0: ["192.0.2.11/24"] }),
      ],
      virtualServices: [
        vs("front", { address: "192.0.2.100", port: 80, directors: ["combo"] }),
        vs("back", { address: "192.0.2.200", port: 8080, directors: ["lb2"] }),
      ],
      realServers: [
        rs("front", "x", { address: "198.51.100.5", port: 8080, forwardMethod: ForwardMethod.NAT }),
        rs("back", "combo", { address: "192.0.2.10", forwardMethod: ForwardMethod.DR, host: "combo" }),
      ],
    });
    const combo = compileSite(topo, 1n).get("combo")!;
    expect(combo.director!.services.map((s) => s.virtualService)).toEqual([vsName("front")]);
    expect(combo.director!.addresses.map((a) => `${a.interface} ${a.address}`)).toEqual(["eth0 192.0.2.100"]);
    expect(combo.realServer!.addresses.map((a) => `${a.interface} ${a.address}`)).toEqual(["lo 192.0.2.200"]);
    expect(combo.sysctls.map((s) => `${s.key}=${s.value}`)).toEqual([
      "net.ipv4.conf.all.send_redirects=0",
      "net.ipv4.conf.eth0.arp_announce=2",
      "net.ipv4.conf.eth0.arp_ignore=1",
      "net.ipv4.conf.eth0.send_redirects=0",
      "net.ipv4.ip_forward=1",
      "net.ipv4.vs.conn_reuse_mode=1",
      "net.ipv4.vs.expire_nodest_conn=1",
      "net.ipv4.vs.expire_quiescent_template=1",
    ]);
  });

  it("a host that is Director and DR/TUN real server of the same VIP holds it once (Director side), keeping the tunnel", () => {
    const topo = topology({
      hosts: [
        host("both", { roles: [HostRole.DIRECTOR, HostRole.REAL_SERVER], interfaces: { eth0: ["192.0.2.10/24"] } }),
        director("lb2", { eth0: ["192.0.2.11/24"] }),
      ],
      virtualServices: [
        vs("web", { address: "192.0.2.100", port: 80, directors: ["both", "lb2"] }),
        vs("tun", { address: "192.0.2.101", port: 80, directors: ["both", "lb2"] }),
      ],
      realServers: [
        rs("web", "self", { address: "192.0.2.10", forwardMethod: ForwardMethod.DR, host: "both" }),
        rs("tun", "self", { address: "192.0.2.10", forwardMethod: ForwardMethod.TUN, host: "both" }),
      ],
    });
    const both = compileSite(topo, 1n).get("both")!;
    expect(both.director!.addresses.map((a) => `${a.interface} ${a.address}`)).toEqual(["eth0 192.0.2.100", "eth0 192.0.2.101"]);
    expect(both.realServer!.addresses).toEqual([]);
    expect(both.realServer!.tunnels.map((t) => t.name)).toEqual(["tunl0"]);
    // No lo/tunnel VIP left → no ARP sysctls (they would not hurt, but nothing needs them).
    expect(both.sysctls.some((x) => x.key.endsWith(".arp_ignore"))).toBe(false);
    expect(both.sysctls.map((x) => x.key)).toContain("net.ipv4.conf.tunl0.rp_filter");
  });

  it("real servers of several methods on one host: lo, tunnel and NAT paths side by side", () => {
    const topo = topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"], eth1: ["198.51.100.1/24"] }), realServerHost("multi", { eth0: ["198.51.100.40/24"] })],
      virtualServices: [
        vs("dr", { address: "192.0.2.101", port: 80, directors: ["lb1"] }),
        vs("tun", { address: "192.0.2.102", port: 80, directors: ["lb1"] }),
        vs("nat", { address: "192.0.2.103", port: 80, directors: ["lb1"] }),
      ],
      realServers: [
        rs("dr", "m", { address: "198.51.100.40", forwardMethod: ForwardMethod.DR, host: "multi" }),
        rs("tun", "m", { address: "198.51.100.40", forwardMethod: ForwardMethod.TUN, host: "multi" }),
        rs("nat", "m", { address: "198.51.100.40", port: 8080, forwardMethod: ForwardMethod.NAT, host: "multi" }),
      ],
    });
    const m = compileSite(topo, 1n).get("multi")!;
    expect(m.realServer!.addresses.map((a) => `${a.interface} ${a.address}`)).toEqual(["lo 192.0.2.101", "tunl0 192.0.2.102"]);
    expect(m.realServer!.tunnels.map((t) => t.name)).toEqual(["tunl0"]);
    expect(m.realServer!.natReturnPaths).toEqual([
      expect.objectContaining({ virtualService: vsName("nat"), directorAddresses: ["192.0.2.10", "198.51.100.1"] }),
    ]);
  });
});

describe("compileSite: removal and empty states", () => {
  const full = () =>
    topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] }), realServerHost("web1", { eth0: ["192.0.2.21/24"] }), realServerHost("idle", { eth0: ["192.0.2.99/24"] })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
      realServers: [rs("web", "web1", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" })],
    });

  it("a host with nothing gets an empty state with only site and host", () => {
    const got = compileSite(full(), 1n);
    expect(stripped(got.get("idle"))).toEqual(expected("idle"));
  });

  it("removal of everything: every host gets an empty state, and exactly the hosts that had something are affected", () => {
    const before = full();
    const after = topology({ hosts: before.hosts });
    expectStates(after, [expected("idle"), expected("lb1"), expected("web1")]);
    expect(affectedHosts(before, after)).toEqual(["lb1", "web1"]);
    // Empty states of different hosts differ (site/host are in the hash), but are stable.
    const a = compileSite(after, 1n);
    expect(a.get("lb1")!.hash).not.toBe(a.get("web1")!.hash);
  });

  it("a deleted host and a new host are both affected", () => {
    const before = full();
    const after = { ...full(), hosts: [...full().hosts.filter((h) => !h.name.endsWith("/idle")), realServerHost("fresh", {})] };
    expect(affectedHosts(before, after)).toEqual(["fresh", "idle"]);
  });

  it("an empty site compiles to no states", () => {
    expect(compileSite(topology({}), 1n).size).toBe(0);
  });
});

describe("hash", () => {
  const topo = () =>
    topology({
      hosts: [director("lb1", { eth0: ["192.0.2.10/24"] })],
      virtualServices: [vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] })],
      realServers: [rs("web", "a", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR })],
    });

  it("is the hex SHA-256 of toBinary with revision and hash cleared", () => {
    const s = compileSite(topo(), 42n).get("lb1")!;
    const c = clone(HostDesiredStateSchema, s);
    c.revision = 0n;
    c.hash = "";
    expect(s.hash).toBe(createHash("sha256").update(toBinary(HostDesiredStateSchema, c)).digest("hex"));
    expect(s.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("does not depend on the revision, or on a previously set hash; the input message is not mutated", () => {
    const a = compileSite(topo(), 1n).get("lb1")!;
    const b = compileSite(topo(), 99999n).get("lb1")!;
    expect(a.revision).toBe(1n);
    expect(b.revision).toBe(99999n);
    expect(a.hash).toBe(b.hash);
    const h = a.hash;
    expect(hashDesiredState(a)).toBe(h);
    expect(a.hash).toBe(h);
    expect(a.revision).toBe(1n);
  });

  it("changes when anything in the kernel state changes", () => {
    const base = compileSite(topo(), 1n).get("lb1")!;
    const t = topo();
    t.realServers[0].upperThreshold = 10;
    expect(compileSite(t, 1n).get("lb1")!.hash).not.toBe(base.hash);
    const u = topo();
    u.site.ipvsTimeouts = { $typeName: "lvsfleet.v1.IpvsTimeouts", tcpSeconds: 1, tcpFinSeconds: 0, udpSeconds: 0 };
    expect(compileSite(u, 1n).get("lb1")!.hash).not.toBe(base.hash);
  });

  it("ignores unknown fields carried in from a newer peer", () => {
    const s = compileSite(topo(), 1n).get("lb1")!;
    const c = clone(HostDesiredStateSchema, s);
    c.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([1]) }];
    expect(hashDesiredState(c)).toBe(s.hash);
  });

  it("KV key is <site>.<host>", () => {
    expect(desiredStateKey(SITE, "lb1")).toBe("fra1.lb1");
  });
});

describe("affectedHosts: table", () => {
  const base = () =>
    topology({
      site: site({ ipvsTimeouts: { tcpSeconds: 900 } }),
      hosts: [
        director("lb1", { eth0: ["192.0.2.10/24"] }),
        director("lb2", { eth0: ["192.0.2.11/24"] }),
        realServerHost("web1", { eth0: ["192.0.2.21/24"] }),
        realServerHost("web2", { eth0: ["192.0.2.22/24"] }),
        realServerHost("app1", { eth0: ["198.51.100.21/24"] }),
        realServerHost("other", { eth0: ["192.0.2.99/24"] }),
      ],
      virtualServices: [
        vs("web", { address: "192.0.2.100", port: 80, directors: ["lb1"] }),
        vs("api", { address: "192.0.2.200", port: 443, directors: ["lb1"] }),
      ],
      realServers: [
        rs("web", "web1", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, host: "web1" }),
        rs("web", "web2", { address: "192.0.2.22", forwardMethod: ForwardMethod.DR, host: "web2" }),
        rs("api", "app1", { address: "198.51.100.21", port: 8443, forwardMethod: ForwardMethod.NAT, host: "app1" }),
      ],
    });
  const find = <T extends { name: string }>(xs: T[], suffix: string) => xs.find((x) => x.name.endsWith(suffix))!;

  it.each<{ name: string; mutate: (t: SiteTopology) => void; want: string[] }>([
    { name: "nothing changes", mutate: () => {}, want: [] },
    { name: "DR weight → only the Director", mutate: (t) => void (find(t.realServers, "/web1").weight = 9), want: ["lb1"] },
    { name: "NAT weight → only the Director", mutate: (t) => void (find(t.realServers, "/app1").weight = 0), want: ["lb1"] },
    { name: "DR VIP → Director and both DR real servers", mutate: (t) => void (find(t.virtualServices, "/web").address = "192.0.2.101"), want: ["lb1", "web1", "web2"] },
    { name: "scheduler → only the Director", mutate: (t) => void (find(t.virtualServices, "/web").scheduler = "rr"), want: ["lb1"] },
    {
      name: "a second Director for the NAT service → it, and the NAT real server's return path",
      mutate: (t) => void find(t.virtualServices, "/api").directors.push(hostName("lb2")),
      want: ["app1", "lb2"],
    },
    {
      name: "a second Director for the DR service → only it",
      mutate: (t) => void find(t.virtualServices, "/web").directors.push(hostName("lb2")),
      want: ["lb2"],
    },
    { name: "site timeouts → every Director carrying services", mutate: (t) => void (t.site.ipvsTimeouts!.tcpSeconds = 60), want: ["lb1"] },
    {
      name: "delete the DR service with its real servers",
      mutate: (t) => {
        t.virtualServices = t.virtualServices.filter((v) => !v.name.endsWith("/web"));
        t.realServers = t.realServers.filter((r) => !r.name.includes("/web/"));
      },
      want: ["lb1", "web1", "web2"],
    },
    {
      name: "DR → TUN for one real server: Director and that host",
      mutate: (t) => void (find(t.realServers, "/web2").forwardMethod = ForwardMethod.TUN),
      want: ["lb1", "web2"],
    },
    { name: "an unrelated host's labels", mutate: (t) => void (find(t.hosts, "/other").labels = { rack: "r1" }), want: [] },
    {
      name: "a real server's interfaces (ARP sysctls follow)",
      mutate: (t) => void find(t.hosts, "/web1").interfaces.push({ $typeName: "lvsfleet.v1.NetworkInterface", name: "eth1", addresses: [] }),
      want: ["web1"],
    },
  ])("$name → $want", ({ mutate, want }) => {
    const before = base();
    const after = base();
    mutate(after);
    expect(affectedHosts(before, after)).toEqual(want);
    expect(affectedHosts(after, before)).toEqual(want);
    // Same answer from already compiled states (a caller keeping its last compilation).
    expect(changedHosts(compileSite(before, 1n), compileSite(after, 2n))).toEqual(want);
  });
});
