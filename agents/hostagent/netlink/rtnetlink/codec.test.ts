// Byte-exact golden messages: what iproute2 6.1 sends for the same operation, captured with
//   strace -e trace=sendmsg -xx -s 400 ip -n <ns> <command>
// (the payload after the 16-byte nlmsghdr; seq/pid are filled in by the socket). Plus decoding
// round trips and garbage that must only ever produce NetlinkDecodeError.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { NLM_F_CREATE, NLM_F_EXCL } from "../wire.js";
import { NetlinkDecodeError, NetlinkEncodeError } from "../errors.js";
import * as C from "./constants.js";
import { addressToBytes } from "../../kernel/ipaddr.js";
import {
  decodeAddress,
  decodeLink,
  decodeRoute,
  delAddressRequest,
  delLinkRequest,
  delRouteRequest,
  newAddressRequest,
  newIpipRequest,
  newRouteRequest,
  setLinkUpRequest,
} from "./codec.js";

/** strace's "\x.." string → Buffer */
const hex = (u: Uint8Array): string => Buffer.from(u).toString("hex");
const sx = (s: string): Buffer => Buffer.from(s.replaceAll("\\x", ""), "hex");

describe("golden: same bytes as iproute2", () => {
  it("ip link add name tun0 type ipip local 192.0.2.1 remote 203.0.113.9 ttl 64", () => {
    const r = newIpipRequest({ name: "tun0", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 });
    expect(r.type).toBe(C.RTM_NEWLINK);
    expect(r.flags).toBe(NLM_F_CREATE | NLM_F_EXCL);
    expect(hex(r.payload)).toBe(
      sx(
        "\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x09\\x00\\x03\\x00\\x74\\x75\\x6e\\x30\\x00\\x00\\x00\\x00\\x70\\x00\\x12\\x00\\x08\\x00\\x01\\x00\\x69\\x70\\x69\\x70\\x64\\x00\\x02\\x00\\x05\\x00\\x09\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x02\\x00\\xc0\\x00\\x02\\x01\\x08\\x00\\x03\\x00\\xcb\\x00\\x71\\x09\\x05\\x00\\x0a\\x00\\x01\\x00\\x00\\x00\\x05\\x00\\x05\\x00\\x00\\x00\\x00\\x00\\x05\\x00\\x04\\x00\\x40\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x14\\x00\\x00\\x00\\x00\\x00\\x06\\x00\\x0f\\x00\\x00\\x00\\x00\\x00\\x06\\x00\\x10\\x00\\x00\\x00\\x00\\x00\\x06\\x00\\x11\\x00\\x00\\x00\\x00\\x00\\x06\\x00\\x12\\x00\\x00\\x00\\x00\\x00",
      ).toString("hex"),
    );
  });

  it("ip addr add 198.51.100.10/32 dev lo label lo:lvsf (+ IFA_PROTO 76, which iproute2 6.1 cannot send)", () => {
    const r = newAddressRequest({ index: 1, ifname: "lo", address: "198.51.100.10", prefixLen: 32, label: "lo:lvsf", proto: C.LVSFLEET_PROTO });
    expect([r.type, r.flags]).toEqual([C.RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL]);
    const iproute2 = sx("\\x02\\x20\\x00\\x00\\x01\\x00\\x00\\x00\\x08\\x00\\x02\\x00\\xc6\\x33\\x64\\x0a\\x0c\\x00\\x03\\x00\\x6c\\x6f\\x3a\\x6c\\x76\\x73\\x66\\x00\\x08\\x00\\x01\\x00\\xc6\\x33\\x64\\x0a");
    const ifaProto = Buffer.from([5, 0, C.IFA_PROTO, 0, 76, 0, 0, 0]);
    expect(hex(r.payload)).toBe(Buffer.concat([iproute2, ifaProto]).toString("hex"));
  });

  it("ip -6 addr add 2001:db8::10/128 dev lo nodad (+ IFA_PROTO) and ip -6 addr del", () => {
    const add = newAddressRequest({ index: 1, ifname: "lo", address: "2001:db8::10", prefixLen: 128, proto: 76, flags: C.IFA_F_NODAD });
    const iproute2 = sx(
      "\\x0a\\x80\\x02\\x00\\x01\\x00\\x00\\x00\\x14\\x00\\x02\\x00\\x20\\x01\\x0d\\xb8\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10\\x14\\x00\\x01\\x00\\x20\\x01\\x0d\\xb8\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10",
    );
    expect(hex(add.payload)).toBe(Buffer.concat([iproute2, Buffer.from([5, 0, 11, 0, 76, 0, 0, 0])]).toString("hex"));
    const del = delAddressRequest({ index: 1, ifname: "lo", address: "2001:db8::10", prefixLen: 128 });
    expect([del.type, del.flags ?? 0]).toEqual([C.RTM_DELADDR, 0]);
    expect(hex(del.payload)).toBe(
      sx(
        "\\x0a\\x80\\x00\\x00\\x01\\x00\\x00\\x00\\x14\\x00\\x02\\x00\\x20\\x01\\x0d\\xb8\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10\\x14\\x00\\x01\\x00\\x20\\x01\\x0d\\xb8\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10",
      ).toString("hex"),
    );
    expect(() => newAddressRequest({ index: 1, ifname: "lo", address: "2001:db8::10", prefixLen: 128, label: "lo:x" })).toThrow(NetlinkEncodeError);
  });

  it("ip route add 198.51.100.0/24 via 192.0.2.2 proto 76; ip route del (wildcard scope/type)", () => {
    const spec = { family: 4 as const, dst: "198.51.100.0", dstLen: 24, gateway: "192.0.2.2", table: 254, protocol: 76 };
    const add = newRouteRequest(spec);
    expect([add.type, add.flags]).toEqual([C.RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL]);
    expect(hex(add.payload)).toBe(sx("\\x02\\x18\\x00\\x00\\xfe\\x4c\\x00\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\xc6\\x33\\x64\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x02").toString("hex"));
    const del = delRouteRequest(spec);
    expect([del.type, del.flags]).toEqual([C.RTM_DELROUTE, 0]);
    expect(hex(del.payload)).toBe(sx("\\x02\\x18\\x00\\x00\\xfe\\x4c\\xff\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\xc6\\x33\\x64\\x00\\x08\\x00\\x05\\x00\\xc0\\x00\\x02\\x02").toString("hex"));
  });

  it("ip route add 203.0.113.0/24 dev d0 metric 50 proto 76 (d0 = ifindex 3)", () => {
    const add = newRouteRequest({ family: 4, dst: "203.0.113.0", dstLen: 24, oif: 3, metric: 50, table: 254, protocol: 76 });
    expect(hex(add.payload)).toBe(
      sx("\\x02\\x18\\x00\\x00\\xfe\\x4c\\xfd\\x01\\x00\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\xcb\\x00\\x71\\x00\\x08\\x00\\x06\\x00\\x32\\x00\\x00\\x00\\x08\\x00\\x04\\x00\\x03\\x00\\x00\\x00").toString("hex"),
    );
  });

  it("ip link set dev d0 down; ip link del dev d0", () => {
    const down = setLinkUpRequest(3, "d0", false);
    expect([down.type, down.flags ?? 0]).toEqual([C.RTM_NEWLINK, 0]);
    expect(hex(down.payload)).toBe(sx("\\x00\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x00\\x00\\x00").toString("hex"));
    expect(Buffer.from(setLinkUpRequest(3, "d0", true).payload).readUInt32LE(8)).toBe(C.IFF_UP);
    const del = delLinkRequest(3, "d0");
    expect([del.type, hex(del.payload)]).toEqual([C.RTM_DELLINK, sx("\\x00\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00").toString("hex")]);
  });
});

describe("decoding", () => {
  it("decodes what it encodes: an ipip link as the kernel would echo the request", () => {
    const l = decodeLink(Buffer.from(newIpipRequest({ name: "tun0", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 }).payload));
    expect(l).toMatchObject({ name: "tun0", kind: "ipip", up: false, tunnel: { local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 } });
  });

  it("decodes addresses and routes of both families", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), fc.integer({ min: 1, max: 1 << 20 }), (bytes, index) => {
        const address = bytes.length === 4 ? Array.from(bytes).join(".") : (Buffer.from(bytes).toString("hex").match(/.{4}/g) as string[]).join(":");
        const prefixLen = bytes.length * 8;
        const a = decodeAddress(Buffer.from(newAddressRequest({ index, ifname: "x", address, prefixLen, proto: 76 }).payload));
        expect(a).toMatchObject({ index, family: bytes.length === 4 ? 4 : 6, prefixLen, proto: 76 });
        expect(addressToBytes(a!.address).equals(Buffer.from(bytes))).toBe(true);
        const r = decodeRoute(Buffer.from(newRouteRequest({ family: bytes.length === 4 ? 4 : 6, dst: address, dstLen: prefixLen, oif: index, table: 1000, protocol: 76 }).payload));
        expect(r).toMatchObject({ dstLen: prefixLen, oif: index, table: 1000, protocol: 76 });
      }),
    );
  });

  it("throws only NetlinkDecodeError on garbage", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        for (const dec of [decodeLink, decodeAddress, decodeRoute]) {
          try {
            dec(Buffer.from(junk));
          } catch (e) {
            expect(e).toBeInstanceOf(NetlinkDecodeError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
