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
import { HostRole, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
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
