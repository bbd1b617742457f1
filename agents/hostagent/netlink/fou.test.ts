import { describe, expect, it } from "vitest";
import { NetlinkDecodeError, NetlinkEncodeError } from "./errors.js";
import { decodeGenl, genlPayload } from "./genl.js";
import { FOU_ATTR_AF, FOU_ATTR_IPPROTO, FOU_ATTR_PORT, FOU_ATTR_TYPE, FOU_CMD_ADD, FOU_CMD_GET, decodeFouPort, encodeFouAdd, encodeFouDel } from "./fou.js";
import { newLinkOfKindRequest } from "./rtnetlink/codec.js";
import * as RC from "./rtnetlink/constants.js";
import { NLM_F_CREATE, NLM_F_EXCL, attrMap, attrNested, decodeAttrs } from "./wire.js";

describe("fou (GUE receive ports) codec", () => {
  it("FOU_CMD_ADD for a GUE port: port big-endian, AF_INET, type GUE, no ipproto", () => {
    const { header, attrs } = decodeGenl(encodeFouAdd({ port: 6080, encap: "gue" }));
    expect(header.cmd).toBe(FOU_CMD_ADD);
    const m = attrMap(attrs);
    expect(m.get(FOU_ATTR_PORT)!.data.readUInt16BE(0)).toBe(6080);
    expect(m.get(FOU_ATTR_AF)!.data[0]).toBe(2);
    expect(m.get(FOU_ATTR_TYPE)!.data[0]).toBe(2);
    expect(m.has(FOU_ATTR_IPPROTO)).toBe(false);
    const d = attrMap(decodeGenl(encodeFouAdd({ port: 5555, encap: "direct", ipproto: 4, family: 6 })).attrs);
    expect([d.get(FOU_ATTR_AF)!.data[0], d.get(FOU_ATTR_TYPE)!.data[0], d.get(FOU_ATTR_IPPROTO)!.data[0]]).toEqual([10, 1, 4]);
    expect(attrMap(decodeGenl(encodeFouDel({ port: 6080 })).attrs).get(FOU_ATTR_PORT)!.data.readUInt16BE(0)).toBe(6080);
  });

  it("rejects bad ports, families and a direct port without its inner protocol", () => {
    expect(() => encodeFouAdd({ port: 0, encap: "gue" })).toThrow(NetlinkEncodeError);
    expect(() => encodeFouAdd({ port: 65536, encap: "gue" })).toThrow(NetlinkEncodeError);
    expect(() => encodeFouAdd({ port: 1, encap: "gue", family: 5 as 4 })).toThrow(NetlinkEncodeError);
    expect(() => encodeFouAdd({ port: 1, encap: "direct" })).toThrow(/ipproto/);
    expect(() => encodeFouDel({ port: -1 })).toThrow(NetlinkEncodeError);
  });

  it("decodes the kernel's FOU_CMD_GET replies; a reply without port/type is a decode error", () => {
    const reply = (f: Parameters<typeof genlPayload>[2]) => genlPayload(FOU_CMD_GET, 1, f);
    expect(decodeFouPort(reply((w) => w.be16(FOU_ATTR_PORT, 6080).u8(FOU_ATTR_AF, 2).u8(FOU_ATTR_TYPE, 2).u8(FOU_ATTR_IPPROTO, 0)))).toEqual({ port: 6080, encap: "gue", family: 4 });
    expect(decodeFouPort(reply((w) => w.be16(FOU_ATTR_PORT, 5555).u8(FOU_ATTR_AF, 10).u8(FOU_ATTR_TYPE, 1).u8(FOU_ATTR_IPPROTO, 41)))).toEqual({ port: 5555, encap: "direct", family: 6, ipproto: 41 });
    expect(() => decodeFouPort(reply((w) => w.u8(FOU_ATTR_AF, 2)))).toThrow(NetlinkDecodeError);
  });
});

describe("newLinkOfKindRequest (tunnel fallback devices)", () => {
  it("ip link add NAME type KIND: create-exclusive, name and IFLA_LINKINFO with only the kind", () => {
    const r = newLinkOfKindRequest("ip6tnl0", "ip6tnl");
    expect(r.type).toBe(RC.RTM_NEWLINK);
    expect(r.flags).toBe(NLM_F_CREATE | NLM_F_EXCL);
    const a = attrMap(decodeAttrs(r.payload as Buffer, 16));
    expect(a.get(RC.IFLA_IFNAME)!.data.toString()).toBe("ip6tnl0\0");
    const li = attrMap(attrNested(a.get(RC.IFLA_LINKINFO)!));
    expect(li.get(RC.IFLA_INFO_KIND)!.data.toString()).toBe("ip6tnl");
    expect(li.size).toBe(1);
    expect(() => newLinkOfKindRequest("x", "Bad Kind")).toThrow(NetlinkEncodeError);
    expect(() => newLinkOfKindRequest("a/b", "sit")).toThrow(NetlinkEncodeError);
  });
});
