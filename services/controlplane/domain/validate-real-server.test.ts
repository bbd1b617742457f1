import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { Host, RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, HostRole, TunnelConfigSchema, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { backendHost, codes, director, fwmarkService, realServer, rsContext, tcpService } from "./testing.js";
import { normalizeRealServer, validateRealServer } from "./validate.js";

const F = "real_server";

type Case = [title: string, mutate: (rs: RealServer) => void, expected: string[], svc?: () => VirtualService, host?: Host];

const v6service = () => {
  const vs = tcpService();
  vs.address = "2001:db8::10";
  return vs;
};
const port0service = () => {
  const vs = tcpService();
  vs.port = 0;
  vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 };
  return vs;
};
const fwm6 = () => {
  const vs = fwmarkService();
  vs.addressFamily = AddressFamily.IPV6;
  return vs;
};
const tun = (over: Partial<{ type: TunnelType; port: number; noChecksum: boolean; checksum: boolean; remoteChecksum: boolean }>) => create(TunnelConfigSchema, over);

const valid: Case[] = [
  ["DR, same port", () => {}, []],
  ["DR, port 0 = the service port", (rs) => (rs.port = 0), []],
  ["NAT remapping the port", (rs) => ((rs.forwardMethod = ForwardMethod.NAT), (rs.port = 8080)), []],
  ["default forward method (DR) and weight (1)", (rs) => ((rs.forwardMethod = ForwardMethod.UNSPECIFIED), (rs.weight = undefined)), []],
  ["weight 0 (quiesced) and 65535", (rs) => (rs.weight = 0), []],
  ["weight 65535", (rs) => (rs.weight = 65535), []],
  ["thresholds lower ≤ upper", (rs) => ((rs.upperThreshold = 2 ** 31 - 1), (rs.lowerThreshold = 100)), []],
  ["upper threshold alone", (rs) => (rs.upperThreshold = 10), []],
  ["TUN with default tunnel (IPIP)", (rs) => (rs.forwardMethod = ForwardMethod.TUN), []],
  ["TUN IPv6 behind an IPv4 service (the kernel allows mixed families for tunnels)", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.address = "2001:db8::20")), []],
  ["TUN IPv4 behind an IPv6 service", (rs) => (rs.forwardMethod = ForwardMethod.TUN), [], v6service],
  ["GUE with port and checksum", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GUE, port: 6080, checksum: true }))), []],
  ["GUE with remote checksum", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GUE, port: 6080, remoteChecksum: true }))), []],
  ["GRE with no_checksum", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GRE, noChecksum: true }))), []],
  ["IPv6 DR behind IPv6 service", (rs) => (rs.address = "2001:DB8::20"), [], v6service],
  ["DR port 0 behind a port-0 service", (rs) => (rs.port = 0), [], port0service],
  ["NAT with a port behind a port-0 service (all ports → one)", (rs) => ((rs.port = 8080), (rs.forwardMethod = ForwardMethod.NAT)), [], port0service],
  ["DR port 0 behind a fwmark service", (rs) => (rs.port = 0), [], fwmarkService],
  ["NAT with a port behind a fwmark service", (rs) => ((rs.port = 8443), (rs.forwardMethod = ForwardMethod.NAT)), [], fwmarkService],
  ["IPv6 NAT behind an IPv6 fwmark service", (rs) => ((rs.port = 0), (rs.address = "2001:db8::20"), (rs.forwardMethod = ForwardMethod.NAT)), [], fwm6],
  ["host with REAL_SERVER role", (rs) => (rs.host = "sites/fra/hosts/web1"), [], undefined, backendHost("web1")],
  ["no name yet (create): site from the service", (rs) => ((rs.name = ""), (rs.host = "sites/fra/hosts/web1")), [], undefined, backendHost("web1")],
];

const invalid: Case[] = [
  ["no address", (rs) => (rs.address = ""), [`${F}.address REQUIRED`]],
  ["malformed address", (rs) => (rs.address = "198.51.100"), [`${F}.address INVALID_ADDRESS`]],
  ["multicast address", (rs) => (rs.address = "239.1.1.1"), [`${F}.address ADDRESS_NOT_ALLOWED`]],
  ["link-local IPv6", (rs) => (rs.address = "fe80::20"), [`${F}.address ADDRESS_NOT_ALLOWED`], v6service],
  ["IPv6 DR behind an IPv4 service", (rs) => (rs.address = "2001:db8::20"), [`${F}.address ADDRESS_FAMILY_MISMATCH`]],
  ["IPv4 NAT behind an IPv6 service", (rs) => (rs.forwardMethod = ForwardMethod.NAT), [`${F}.address ADDRESS_FAMILY_MISMATCH`], v6service],
  ["IPv4 DR behind an IPv6 fwmark service", (rs) => (rs.port = 0), [`${F}.address ADDRESS_FAMILY_MISMATCH`], fwm6],
  ["DR remapping the port", (rs) => (rs.port = 8080), [`${F}.port PORT_REMAP_NOT_ALLOWED`]],
  ["TUN remapping the port", (rs) => ((rs.port = 8080), (rs.forwardMethod = ForwardMethod.TUN)), [`${F}.port PORT_REMAP_NOT_ALLOWED`]],
  ["DR with a port behind a port-0 service", (rs) => (rs.port = 80), [`${F}.port PORT_REMAP_NOT_ALLOWED`], port0service],
  ["DR with a port behind a fwmark service", (rs) => (rs.port = 80), [`${F}.port PORT_REMAP_NOT_ALLOWED`], fwmarkService],
  ["port above 65535", (rs) => ((rs.port = 65536), (rs.forwardMethod = ForwardMethod.NAT)), [`${F}.port PORT_OUT_OF_RANGE`]],
  ["unknown forward method", (rs) => (rs.forwardMethod = 4 as ForwardMethod), [`${F}.forward_method INVALID_ENUM`]],
  ["weight above 65535", (rs) => (rs.weight = 65536), [`${F}.weight WEIGHT_OUT_OF_RANGE`]],
  ["negative weight", (rs) => (rs.weight = -1), [`${F}.weight WEIGHT_OUT_OF_RANGE`]],
  ["thresholds above 2^31-1", (rs) => ((rs.upperThreshold = 2 ** 31), (rs.lowerThreshold = 2 ** 32)), [`${F}.lower_threshold THRESHOLD_OUT_OF_RANGE`, `${F}.upper_threshold THRESHOLD_OUT_OF_RANGE`]],
  ["lower above upper", (rs) => ((rs.upperThreshold = 10), (rs.lowerThreshold = 11)), [`${F}.lower_threshold THRESHOLD_ORDER`]],
  ["lower without upper (the kernel checks l_threshold > u_threshold unconditionally)", (rs) => (rs.lowerThreshold = 5), [`${F}.lower_threshold THRESHOLD_ORDER`]],
  ["tunnel options without TUN", (rs) => (rs.tunnel = tun({ type: TunnelType.GUE, port: 6080 })), [`${F}.tunnel TUNNEL_REQUIRES_TUN`]],
  ["GUE without a port", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GUE }))), [`${F}.tunnel.port REQUIRED`]],
  ["GUE port above 65535", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GUE, port: 70000 }))), [`${F}.tunnel.port PORT_OUT_OF_RANGE`]],
  ["IPIP with a port", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.IPIP, port: 6080 }))), [`${F}.tunnel.port NOT_ALLOWED`]],
  ["IPIP with checksum options", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.IPIP, checksum: true }))), [`${F}.tunnel.checksum NOT_ALLOWED`]],
  [
    "GUE with two checksum options",
    (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GUE, port: 6080, checksum: true, noChecksum: true }))),
    [`${F}.tunnel CHECKSUM_FLAGS_EXCLUSIVE`],
  ],
  ["GRE with remote checksum", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: TunnelType.GRE, remoteChecksum: true }))), [`${F}.tunnel.remote_checksum NOT_ALLOWED`]],
  ["unknown tunnel type", (rs) => ((rs.forwardMethod = ForwardMethod.TUN), (rs.tunnel = tun({ type: 9 as TunnelType }))), [`${F}.tunnel.type INVALID_ENUM`]],
  ["host malformed", (rs) => (rs.host = "web1"), [`${F}.host INVALID_NAME`]],
  ["host missing", (rs) => (rs.host = "sites/fra/hosts/web9"), [`${F}.host HOST_NOT_FOUND`]],
  ["host in another site", (rs) => (rs.host = "sites/ams/hosts/web1"), [`${F}.host WRONG_SITE`], undefined, backendHost("web1")],
  ["host without the REAL_SERVER role", (rs) => (rs.host = "sites/fra/hosts/lb1"), [`${F}.host HOST_NOT_REAL_SERVER`], undefined, director("lb1")],
  ["malformed name", (rs) => (rs.name = "sites/fra/virtualServices/web/backends/rs1"), [`${F}.name INVALID_NAME`]],
  [
    "everything wrong at once",
    (rs) => {
      rs.address = "2001:db8::20";
      rs.port = 81;
      rs.weight = 1e9;
      rs.lowerThreshold = 3;
      rs.tunnel = tun({ type: TunnelType.IPIP });
    },
    [`${F}.address ADDRESS_FAMILY_MISMATCH`, `${F}.lower_threshold THRESHOLD_ORDER`, `${F}.port PORT_REMAP_NOT_ALLOWED`, `${F}.tunnel TUNNEL_REQUIRES_TUN`, `${F}.weight WEIGHT_OUT_OF_RANGE`],
  ],
];

describe("validateRealServer", () => {
  it.each(valid)("valid: %s", (_t, mutate, expected, svc, host) => {
    const rs = realServer();
    mutate(rs);
    expect(codes(validateRealServer(rs, rsContext(svc?.(), host), F))).toEqual(expected);
  });

  it.each(invalid)("invalid: %s", (_t, mutate, expected, svc, host) => {
    const rs = realServer();
    mutate(rs);
    expect(codes(validateRealServer(rs, rsContext(svc?.(), host), F))).toEqual(expected);
  });

  it("a host with both roles may be a real server", () => {
    const h = director("lb1");
    h.roles = [HostRole.DIRECTOR, HostRole.REAL_SERVER];
    const rs = realServer();
    rs.host = "sites/fra/hosts/lb1";
    expect(validateRealServer(rs, rsContext(undefined, h), F)).toEqual([]);
  });
});

describe("normalizeRealServer", () => {
  it("defaults weight 1, DR, IPIP for TUN, canonical address; input untouched", () => {
    const rs = realServer();
    rs.weight = undefined;
    rs.forwardMethod = ForwardMethod.UNSPECIFIED;
    rs.address = "2001:0DB8::0020";
    const n = normalizeRealServer(rs);
    expect(rs.weight).toBeUndefined();
    expect(n).toMatchObject({ weight: 1, forwardMethod: ForwardMethod.DR, address: "2001:db8::20" });
    expect(n.tunnel).toBeUndefined();
    rs.forwardMethod = ForwardMethod.TUN;
    expect(normalizeRealServer(rs).tunnel?.type).toBe(TunnelType.IPIP);
    rs.tunnel = tun({ type: TunnelType.UNSPECIFIED });
    expect(normalizeRealServer(rs).tunnel?.type).toBe(TunnelType.IPIP);
    rs.tunnel = tun({ type: TunnelType.GRE });
    expect(normalizeRealServer(rs).tunnel?.type).toBe(TunnelType.GRE);
  });

  it("keeps weight 0 (quiesced) as 0", () => {
    const rs = realServer();
    rs.weight = 0;
    expect(normalizeRealServer(rs).weight).toBe(0);
  });
});
