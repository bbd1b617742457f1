/**
 * Builders of valid resources for tests (domain, store, api). Each returns a fresh message that
 * passes validation with the matching context; tests change one thing and look at the violations.
 */
import { create } from "@bufbuild/protobuf";
import {
  FirewallMarkSchema,
  HostSchema,
  RealServerSchema,
  SiteSchema,
  VirtualServiceSchema,
  type FirewallMark,
  type Host,
  type RealServer,
  type Site,
  type VirtualService,
} from "../../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import type { FieldViolation } from "./errors.js";
import { firewallMarkName, hostName, realServerName, siteName, virtualServiceName } from "./names.js";
import type { RealServerContext, VirtualServiceContext } from "./validate.js";

export const SITE = "fra";

export function site(): Site {
  return create(SiteSchema, { name: siteName(SITE), displayName: "Frankfurt", labels: { env: "prod" }, ipvsTimeouts: { tcpSeconds: 900, tcpFinSeconds: 120, udpSeconds: 300 } });
}

export function director(id = "lb1"): Host {
  return create(HostSchema, {
    name: hostName(SITE, id),
    roles: [HostRole.DIRECTOR],
    addresses: ["198.51.100.1"],
    interfaces: [{ name: "eth0", addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }],
  });
}

export function backendHost(id = "web1"): Host {
  return create(HostSchema, { name: hostName(SITE, id), roles: [HostRole.REAL_SERVER], addresses: ["198.51.100.20"] });
}

export function firewallMark(mark = 80443): FirewallMark {
  return create(FirewallMarkSchema, {
    name: firewallMarkName(SITE, "web"),
    mark,
    matches: [{ destinations: ["203.0.113.10"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }],
  });
}

export function tcpService(): VirtualService {
  return create(VirtualServiceSchema, {
    name: virtualServiceName(SITE, "web"),
    protocol: Protocol.TCP,
    address: "203.0.113.10",
    port: 80,
    scheduler: "wlc",
    directors: [hostName(SITE, "lb1")],
  });
}

export function fwmarkService(mark = 80443): VirtualService {
  return create(VirtualServiceSchema, { name: virtualServiceName(SITE, "web-fwm"), fwmark: mark, scheduler: "rr", persistence: { timeoutSeconds: 300 } });
}

export function realServer(): RealServer {
  return create(RealServerSchema, { name: realServerName(SITE, "web", "rs1"), address: "198.51.100.20", port: 80, forwardMethod: ForwardMethod.DR, weight: 1 });
}

export function vsContext(over: Partial<VirtualServiceContext> = {}): VirtualServiceContext {
  return { firewallMarks: [firewallMark()], hosts: [director("lb1"), director("lb2"), backendHost("web1")], realServers: [], ...over };
}

export function rsContext(vs: VirtualService = tcpService(), host?: Host): RealServerContext {
  return { virtualService: vs, host };
}

/** "field REASON" pairs, sorted: compact and exact for assertions. */
export function codes(vs: FieldViolation[]): string[] {
  return vs.map((v) => `${v.field} ${v.reason}`).sort();
}
