// Builders for compile tests: short ways to write a site's topology as the store would hand it over
// (validated and normalised). Used only by *.test.ts in this directory.

import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  FirewallMarkSchema,
  HostSchema,
  RealServerSchema,
  SiteSchema,
  VirtualServiceSchema,
  type FirewallMark,
  type Host,
  type RealServer,
  type VirtualService,
} from "../../../gen/lvsfleet/v1/topology_pb.js";
import fc from "fast-check";
import { AddressFamily, ForwardMethod, HostRole, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import type { SiteTopology } from "./compile.js";

export const SITE = "fra1";

/** The plain-object half of a message init (MessageInitShape is "message | plain object"). */
type Init<S extends DescMessage, K extends PropertyKey> = Omit<Exclude<MessageInitShape<S>, MessageShape<S>>, K>;

export const hostName = (id: string) => `sites/${SITE}/hosts/${id}`;
export const vsName = (id: string) => `sites/${SITE}/virtualServices/${id}`;
export const rsName = (vs: string, id: string) => `sites/${SITE}/virtualServices/${vs}/realServers/${id}`;
export const fmName = (id: string) => `sites/${SITE}/firewallMarks/${id}`;

export function site(init: Init<typeof SiteSchema, "name"> = {}) {
  return create(SiteSchema, { name: `sites/${SITE}`, ...init });
}

export interface HostSpec {
  roles?: HostRole[];
  /** name → CIDR addresses */
  interfaces?: Record<string, string[]>;
  addresses?: string[];
}

export function host(id: string, spec: HostSpec = {}): Host {
  return create(HostSchema, {
    name: hostName(id),
    roles: spec.roles ?? [],
    addresses: spec.addresses ?? Object.values(spec.interfaces ?? {}).flat().map((a) => a.split("/")[0]),
    interfaces: Object.entries(spec.interfaces ?? {}).map(([name, addresses]) => ({ name, addresses })),
  });
}

export const director = (id: string, interfaces: Record<string, string[]>, extra: HostSpec = {}) =>
  host(id, { roles: [HostRole.DIRECTOR], interfaces, ...extra });
export const realServerHost = (id: string, interfaces: Record<string, string[]>, extra: HostSpec = {}) =>
  host(id, { roles: [HostRole.REAL_SERVER], interfaces, ...extra });

export function vs(
  id: string,
  init: Init<typeof VirtualServiceSchema, "name" | "directors"> & { directors?: string[] },
): VirtualService {
  return create(VirtualServiceSchema, {
    protocol: init.fwmark ? Protocol.UNSPECIFIED : Protocol.TCP,
    scheduler: "wlc",
    ...init,
    name: vsName(id),
    directors: (init.directors ?? []).map(hostName),
  });
}

export function rs(
  vsId: string,
  id: string,
  init: Init<typeof RealServerSchema, "name" | "host"> & { host?: string },
): RealServer {
  return create(RealServerSchema, {
    weight: 1,
    ...init,
    name: rsName(vsId, id),
    host: init.host ? hostName(init.host) : "",
  });
}

export function fm(id: string, mark: number, matches: MessageInitShape<typeof FirewallMarkSchema>["matches"]): FirewallMark {
  return create(FirewallMarkSchema, { name: fmName(id), mark, matches });
}

export function topology(parts: Partial<SiteTopology>): SiteTopology {
  return {
    site: parts.site ?? site(),
    hosts: parts.hosts ?? [],
    virtualServices: parts.virtualServices ?? [],
    realServers: parts.realServers ?? [],
    firewallMarks: parts.firewallMarks ?? [],
  };
}

/** Deterministic PRNG (mulberry32) for shuffles driven by a fast-check seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// --- fast-check generators of valid, normalised site topologies (compile.property.test.ts,
// incremental.test.ts) ---------------------------------------------------------------------------------

const hostArb = fc.record({
  roles: fc.subarray([HostRole.DIRECTOR, HostRole.REAL_SERVER]),
  eth1: fc.boolean(),
  vlan: fc.boolean(),
  noInterfaces: fc.boolean(),
});

const rsArb = fc.record({
  host: fc.option(fc.nat(9), { nil: undefined }),
  method: fc.constantFrom(ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN),
  weight: fc.nat(100),
  tun: fc.constantFrom(TunnelType.IPIP, TunnelType.GRE, TunnelType.GUE),
  guePort: fc.constantFrom(5555, 6080),
  addr: fc.integer({ min: 1, max: 200 }),
  port: fc.constantFrom(0, 8080),
});

const vsArb = fc.record({
  v6: fc.boolean(),
  fwmark: fc.boolean(),
  routedVip: fc.boolean(),
  port: fc.constantFrom(0, 80, 443),
  persistence: fc.nat(3600),
  scheduler: fc.constantFrom("rr", "wlc", "sh", "mh", "lblc"),
  flags: fc.subarray(["sh-fallback", "sh-port"]),
  directors: fc.array(fc.nat(9), { maxLength: 3 }),
  realServers: fc.array(rsArb, { maxLength: 5 }),
  sorry: fc.boolean(),
});

export const topoSpecArb = fc.record({
  hosts: fc.array(hostArb, { minLength: 1, maxLength: 8 }),
  vss: fc.array(vsArb, { maxLength: 8 }),
  tcpTimeout: fc.constantFrom(0, 900),
});

export type TopoSpec = typeof topoSpecArb extends fc.Arbitrary<infer T> ? T : never;

export const hex = (n: number) => n.toString(16);

export function build(spec: TopoSpec): SiteTopology {
  const H = spec.hosts.length;
  const hosts = spec.hosts.map((h, i) => {
    const interfaces: Record<string, string[]> = {};
    if (!h.noInterfaces) {
      interfaces.eth0 = [`192.0.2.${10 + i}/24`, `2001:db8::${hex(0x10 + i)}/64`];
      if (h.eth1) interfaces.eth1 = [`198.51.100.${10 + i}/24`];
      if (h.vlan) interfaces["eth0.100"] = [`198.18.0.${10 + i}/24`];
    }
    return host(`h${i}`, { roles: h.roles, interfaces, addresses: [`192.0.2.${10 + i}`, `2001:db8::${hex(0x10 + i)}`] });
  });
  const vss = [];
  const rss = [];
  const fms = [];
  for (const [j, v] of spec.vss.entries()) {
    const id = `v${j}`;
    const vip = v.v6 ? `2001:db8:${v.routedVip ? "ff" : "0"}::${hex(0x100 + j)}` : `${v.routedVip ? "203.0.113" : "192.0.2"}.${100 + j}`;
    const persistent = v.port === 0 || v.fwmark ? Math.max(1, v.persistence) : v.persistence;
    const directors = [...new Set(v.directors.map((d) => `h${d % H}`))];
    const common = {
      addressFamily: v.v6 ? AddressFamily.IPV6 : AddressFamily.IPV4,
      scheduler: v.scheduler,
      schedulerFlags: v.scheduler === "sh" ? v.flags : [],
      persistence: persistent > 0 ? { timeoutSeconds: persistent, prefixLength: v.v6 ? 64 : 24 } : undefined,
      sorryServer: v.sorry ? { address: v.v6 ? "2001:db8:5::1" : "198.51.100.250", forwardMethod: ForwardMethod.DR } : undefined,
      directors,
    };
    if (v.fwmark) {
      const mark = 1000 + j;
      fms.push(
        fm(`m${j}`, mark, [
          { destinations: [vip, v.v6 ? "2001:db8:99::/64" : "198.18.99.0/24"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] },
        ]),
      );
      vss.push(vs(id, { ...common, fwmark: mark }));
    } else {
      vss.push(vs(id, { ...common, protocol: Protocol.TCP, address: vip, port: v.port }));
    }
    for (const [k, r] of v.realServers.entries()) {
      const hostIdx = r.host === undefined ? undefined : r.host % H;
      const address =
        hostIdx !== undefined
          ? v.v6
            ? `2001:db8::${hex(0x10 + hostIdx)}`
            : `192.0.2.${10 + hostIdx}`
          : v.v6
            ? `2001:db8:1::${hex(r.addr)}`
            : `198.51.100.${r.addr}`;
      rss.push(
        rs(id, `r${k}`, {
          address,
          // Only NAT may remap the port (validation rule); DR/TUN use 0 = the service port.
          port: r.method === ForwardMethod.NAT && !v.fwmark && v.port !== 0 ? r.port : 0,
          forwardMethod: r.method,
          tunnel: r.method === ForwardMethod.TUN ? { type: r.tun, port: r.tun === TunnelType.GUE ? r.guePort : 0 } : undefined,
          weight: r.weight,
          host: hostIdx === undefined ? undefined : `h${hostIdx}`,
        }),
      );
    }
  }
  return topology({ site: site({ ipvsTimeouts: { tcpSeconds: spec.tcpTimeout } }), hosts, virtualServices: vss, realServers: rss, firewallMarks: fms });
}

