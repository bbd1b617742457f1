import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NetlinkDecodeError, NetlinkEncodeError } from "../errors.js";
import { canonicalAddress } from "../inet.js";
import { decodeAttrs, decodeErrorPayload, decodeMessages } from "../wire.js";
import {
  decodeDaemon,
  decodeDestination,
  decodeDestinationAt,
  decodeInfo,
  decodeIpvsMessage,
  decodeService,
  decodeTimeouts,
  encodeDelDaemon,
  encodeDelDest,
  encodeDelService,
  encodeDumpDaemons,
  encodeDumpDests,
  encodeDumpServices,
  encodeFlush,
  encodeGetConfig,
  encodeGetInfo,
  encodeGetService,
  encodeIpvsMessage,
  encodeNewDaemon,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  encodeSetDest,
  encodeSetService,
  encodeZero,
  packDumpDestsFromServiceReplies,
  v4Netmask,
  type IpvsDaemon,
  type IpvsDestination,
  type IpvsFamily,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsStats,
} from "./codec.js";
import * as C from "./constants.js";

// ---- arbitraries ----

const u32 = fc.nat({ max: 0xffffffff });
const u16 = fc.nat({ max: 0xffff });
const u8 = fc.nat({ max: 0xff });
const bigU32 = fc.bigInt({ min: 0n, max: 0xffffffffn });
const bigU64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
const family = fc.constantFrom<IpvsFamily>("ipv4", "ipv6");
const addr = (f: IpvsFamily) => (f === "ipv4" ? fc.ipV4() : fc.ipV6()).map(canonicalAddress);
const NAME_CHARS = [..."abcdefghijklmnopqrstuvwxyz0123456789_-"];
const name = (max: number) => fc.array(fc.constantFrom(...NAME_CHARS), { minLength: 1, maxLength: max }).map((cs) => cs.join(""));
const scheduler = fc.oneof(fc.constantFrom("rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos"), name(15));

const stats32 = fc.record<IpvsStats>({
  conns: bigU32, inPkts: bigU32, outPkts: bigU32, inBytes: bigU64, outBytes: bigU64,
  cps: bigU32, inPps: bigU32, outPps: bigU32, inBps: bigU32, outBps: bigU32,
});
const stats64 = fc.record<IpvsStats>({
  conns: bigU64, inPkts: bigU64, outPkts: bigU64, inBytes: bigU64, outBytes: bigU64,
  cps: bigU64, inPps: bigU64, outPps: bigU64, inBps: bigU64, outBps: bigU64,
});

const serviceKey: fc.Arbitrary<IpvsServiceKey> = family.chain((f) =>
  fc.oneof(
    fc.record({ family: fc.constant(f), fwmark: fc.integer({ min: 1, max: 0xffffffff }) }),
    fc.record({ family: fc.constant(f), protocol: fc.constantFrom("tcp", "udp", "sctp"), address: addr(f), port: u16 }),
  ),
);

const service: fc.Arbitrary<IpvsService> = serviceKey.chain((k) =>
  fc.record(
    {
      scheduler,
      flags: u32,
      timeout: u32,
      netmask: k.family === "ipv4" ? u32 : fc.nat({ max: 128 }),
      peName: name(15),
      stats: stats32,
      stats64: stats64,
    },
    { requiredKeys: ["scheduler", "flags", "timeout", "netmask"] },
  ).map((rest) => ({ ...k, ...rest })),
);

const destination: fc.Arbitrary<IpvsDestination> = family.chain((f) =>
  fc.record(
    {
      family: fc.constant(f),
      address: addr(f),
      port: u16,
      forward: fc.constantFrom("masq", "local", "tunnel", "route", "bypass"),
      weight: fc.nat({ max: 0x7fffffff }),
      upperThreshold: u32,
      lowerThreshold: u32,
      tunnelType: fc.constantFrom("ipip", "gue", "gre"),
      tunnelPort: u16,
      tunnelFlags: fc.nat({ max: 3 }),
      activeConns: u32,
      inactiveConns: u32,
      persistentConns: u32,
      stats: stats32,
      stats64: stats64,
    },
    { requiredKeys: ["family", "address", "port", "forward", "weight", "upperThreshold", "lowerThreshold"] },
  ),
);

const daemon: fc.Arbitrary<IpvsDaemon> = fc.record(
  {
    state: fc.constantFrom("master", "backup"),
    mcastInterface: name(15),
    syncId: u32,
    syncMaxLen: u16,
    mcastGroup: family.chain(addr),
    mcastPort: u16,
    mcastTtl: u8,
  },
  { requiredKeys: ["state", "mcastInterface", "syncId"] },
);

const timeouts = fc.record({ tcp: u32, tcpFin: u32, udp: u32 });

const keyOf = (s: IpvsServiceKey): IpvsServiceKey =>
  s.fwmark !== undefined ? { family: s.family, fwmark: s.fwmark } : { family: s.family, protocol: s.protocol, address: s.address, port: s.port };
const fullOf = (s: IpvsService) => ({ ...keyOf(s), scheduler: s.scheduler, flags: s.flags, timeout: s.timeout, netmask: s.netmask, ...(s.peName ? { peName: s.peName } : {}) });
const destReq = (d: IpvsDestination) => ({
  family: d.family, address: d.address, port: d.port, forward: d.forward, weight: d.weight,
  upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold,
  // Always sent, as ipvsadm does: 0 = ipip, no port, no flags.
  tunnelType: d.tunnelType ?? "ipip", tunnelPort: d.tunnelPort ?? 0, tunnelFlags: d.tunnelFlags ?? 0,
});

const RUNS = { numRuns: 300 };

// ---- round trips ----

describe("IPVS codec round trips (fast-check)", () => {
  it("service requests: NEW_SERVICE, SET_SERVICE carry the full service; DEL/GET/ZERO the key", () => {
    fc.assert(
      fc.property(service, (s) => {
        expect(decodeIpvsMessage(encodeNewService(s))).toEqual({ cmd: C.IPVS_CMD_NEW_SERVICE, version: 1, service: fullOf(s) });
        expect(decodeIpvsMessage(encodeSetService(s))).toEqual({ cmd: C.IPVS_CMD_SET_SERVICE, version: 1, service: fullOf(s) });
        expect(decodeIpvsMessage(encodeDelService(s))).toEqual({ cmd: C.IPVS_CMD_DEL_SERVICE, version: 1, service: keyOf(s) });
        expect(decodeIpvsMessage(encodeGetService(s))).toEqual({ cmd: C.IPVS_CMD_GET_SERVICE, version: 1, service: keyOf(s) });
        expect(decodeIpvsMessage(encodeZero(s))).toEqual({ cmd: C.IPVS_CMD_ZERO, version: 1, service: keyOf(s) });
        expect(decodeIpvsMessage(encodeDumpDests(s))).toEqual({ cmd: C.IPVS_CMD_GET_DEST, version: 1, service: keyOf(s) });
      }),
      RUNS,
    );
  });

  it("service replies (kernel's NEW_SERVICE with stats and stats64) decode to the same IpvsService", () => {
    fc.assert(
      fc.property(service, (s) => {
        const bytes = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: s });
        expect(decodeService(bytes)).toEqual(s);
      }),
      RUNS,
    );
  });

  it("destination requests: NEW_DEST, SET_DEST full; DEL_DEST key; always with the service key", () => {
    fc.assert(
      fc.property(serviceKey, destination, (k, d) => {
        expect(decodeIpvsMessage(encodeNewDest(k, d))).toEqual({ cmd: C.IPVS_CMD_NEW_DEST, version: 1, service: keyOf(k), dest: destReq(d) });
        expect(decodeIpvsMessage(encodeSetDest(k, d))).toEqual({ cmd: C.IPVS_CMD_SET_DEST, version: 1, service: keyOf(k), dest: destReq(d) });
        expect(decodeIpvsMessage(encodeDelDest(k, d))).toEqual({
          cmd: C.IPVS_CMD_DEL_DEST, version: 1, service: keyOf(k), dest: { family: d.family, address: d.address, port: d.port },
        });
      }),
      RUNS,
    );
  });

  it("destination replies (kernel's NEW_DEST with conns, stats, stats64) decode to the same IpvsDestination", () => {
    fc.assert(
      fc.property(destination, (d) => {
        const bytes = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, dest: d });
        expect(decodeDestination(bytes)).toEqual(d);
        const { stats: _a, stats64: _b, ...config } = d;
        expect(decodeDestination(bytes, undefined, { stats: false })).toStrictEqual(config);
      }),
      RUNS,
    );
  });

  it("decodeDestinationAt decodes a reply in place inside a larger buffer (as dumpMany's onPart hands it over)", () => {
    fc.assert(
      fc.property(destination, fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), fc.boolean(), (d, before, after, stats) => {
        const bytes = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, dest: d });
        const datagram = Buffer.concat([before, bytes, after]);
        const got = decodeDestinationAt(datagram, before.length, before.length + bytes.length, undefined, { stats });
        expect(got).toStrictEqual(decodeDestination(bytes, undefined, { stats }));
      }),
      RUNS,
    );
    // The same IPv4 address decoded twice (the address strings are cached) and a different one.
    const at = (a: string) => {
      const b = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, dest: { family: "ipv4", address: a, port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 } });
      return decodeDestinationAt(b, 0, b.length).address;
    };
    expect([at("198.51.100.7"), at("198.51.100.7"), at("255.0.0.1"), at("0.0.0.0")]).toEqual(["198.51.100.7", "198.51.100.7", "255.0.0.1", "0.0.0.0"]);
    // A range outside the buffer is a decode error, not a RangeError.
    const b = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, dest: { family: "ipv4", address: "192.0.2.1", port: 80, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0 } });
    expect(() => decodeDestinationAt(b, 0, b.length + 8)).toThrow(NetlinkDecodeError);
    expect(() => decodeDestinationAt(b, 8, 4)).toThrow(NetlinkDecodeError);
  });

  it("packDumpDestsFromServiceReplies turns service dump replies into GET_DEST dump requests for the same services", () => {
    fc.assert(
      fc.property(fc.array(service, { minLength: 1, maxLength: 5 }), (svcs) => {
        const replies = svcs.map((s) => encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: s }));
        const packed = packDumpDestsFromServiceReplies(replies, 1);
        let off = 0;
        for (let i = 1; i < svcs.length; i++) {
          const len = packed.readUInt32LE(off);
          const req = packed.subarray(off + 4, off + 4 + len);
          const m = decodeIpvsMessage(req);
          expect(m.cmd).toBe(C.IPVS_CMD_GET_DEST);
          // The service's key, as encodeDumpDests would send it, is what the kernel reads.
          const key = decodeIpvsMessage(encodeDumpDests(svcs[i]!)).service!;
          for (const k of ["family", "protocol", "address", "port", "fwmark"] as const) expect(m.service![k]).toEqual(key[k]);
          expect(packed.subarray(off + 4 + len, off + 4 + ((len + 3) & ~3)).every((x) => x === 0)).toBe(true);
          off += 4 + ((len + 3) & ~3);
        }
        expect(off).toBe(packed.length);
      }),
      RUNS,
    );
    expect(() => packDumpDestsFromServiceReplies([encodeDelService({ family: "ipv4", fwmark: 3 })])).toThrow(NetlinkDecodeError);
  });

  it("{ stats: false } leaves the counters out of services too, and still checks their bytes", () => {
    fc.assert(
      fc.property(service, (s) => {
        const { stats: _a, stats64: _b, ...config } = s;
        expect(decodeService(encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: s }), { stats: false })).toStrictEqual(config);
      }),
      RUNS,
    );
    // A counter attribute too short for its type is refused even when not decoded.
    const bytes = Buffer.from(encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, dest: { family: "ipv4", address: "192.0.2.1", port: 1, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0, stats64: { conns: 1n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n } } }));
    const i = bytes.indexOf(Buffer.from([12, 0, C.IPVS_STATS_ATTR_CONNS, 0])); // first u64 counter header
    bytes.writeUInt16LE(8, i); // claim 4 value bytes for a u64
    expect(() => decodeDestination(bytes, "ipv4", { stats: false })).toThrow(NetlinkDecodeError);
  });

  it("config: SET_CONFIG request and the kernel's SET_CONFIG reply to GET_CONFIG", () => {
    fc.assert(
      fc.property(timeouts, (t) => {
        expect(decodeIpvsMessage(encodeSetConfig(t))).toEqual({ cmd: C.IPVS_CMD_SET_CONFIG, version: 1, timeouts: t });
        expect(decodeTimeouts(encodeIpvsMessage({ cmd: C.IPVS_CMD_SET_CONFIG, timeouts: t }))).toEqual(t);
      }),
      RUNS,
    );
  });

  it("info: the kernel's SET_INFO reply (attribute numbers shared with SERVICE/DEST)", () => {
    fc.assert(
      fc.property(u32, u32, (version, size) => {
        const info = decodeInfo(encodeIpvsMessage({ cmd: C.IPVS_CMD_SET_INFO, info: { version, versionString: "", connTableSize: size } }));
        expect(info.version).toBe(version);
        expect(info.connTableSize).toBe(size);
        expect(info.versionString).toBe(`${(version >> 16) & 255}.${(version >> 8) & 255}.${version & 255}`);
      }),
      RUNS,
    );
  });

  it("sync daemons: NEW_DAEMON request = kernel's GET_DAEMON reply shape; DEL_DAEMON state", () => {
    fc.assert(
      fc.property(daemon, (d) => {
        expect(decodeIpvsMessage(encodeNewDaemon(d))).toEqual({ cmd: C.IPVS_CMD_NEW_DAEMON, version: 1, daemon: d });
        expect(decodeDaemon(encodeNewDaemon(d))).toEqual(d);
        expect(decodeIpvsMessage(encodeDelDaemon({ state: d.state }))).toEqual({ cmd: C.IPVS_CMD_DEL_DAEMON, version: 1, daemon: { state: d.state } });
      }),
      RUNS,
    );
  });

  it("attribute-less commands: dumps, GET_CONFIG, GET_INFO, ZERO all, FLUSH", () => {
    const cases: [Buffer, number][] = [
      [encodeDumpServices(), C.IPVS_CMD_GET_SERVICE],
      [encodeGetConfig(), C.IPVS_CMD_GET_CONFIG],
      [encodeGetInfo(), C.IPVS_CMD_GET_INFO],
      [encodeDumpDaemons(), C.IPVS_CMD_GET_DAEMON],
      [encodeZero(), C.IPVS_CMD_ZERO],
      [encodeFlush(), C.IPVS_CMD_FLUSH],
    ];
    for (const [bytes, cmd] of cases) {
      expect([...bytes]).toEqual([cmd, C.IPVS_GENL_VERSION, 0, 0]);
      expect(decodeIpvsMessage(bytes)).toEqual({ cmd, version: 1 });
    }
  });
});

// ---- wire details the kernel and ipvsadm agree on ----

describe("IPVS codec wire details", () => {
  const svcAttrs = (bytes: Buffer) => {
    const top = decodeAttrs(bytes, 4);
    const svc = top.find((a) => a.type === C.IPVS_CMD_ATTR_SERVICE)!;
    return new Map(decodeAttrs(svc.data).map((a) => [a.type, [...a.data]]));
  };

  it("IPv4 service: 16-byte address, big-endian port, network-order netmask", () => {
    const m = svcAttrs(
      encodeNewService({ family: "ipv4", protocol: "tcp", address: "192.0.2.10", port: 80, scheduler: "wlc", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 300, netmask: v4Netmask(24) }),
    );
    expect(m.get(C.IPVS_SVC_ATTR_AF)).toEqual([2, 0]);
    expect(m.get(C.IPVS_SVC_ATTR_PROTOCOL)).toEqual([6, 0]);
    expect(m.get(C.IPVS_SVC_ATTR_ADDR)).toEqual([192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(m.get(C.IPVS_SVC_ATTR_PORT)).toEqual([0, 80]);
    expect(m.get(C.IPVS_SVC_ATTR_SCHED_NAME)).toEqual([...Buffer.from("wlc\0")]);
    expect(m.get(C.IPVS_SVC_ATTR_FLAGS)).toEqual([1, 0, 0, 0, 255, 255, 255, 255]);
    expect(m.get(C.IPVS_SVC_ATTR_TIMEOUT)).toEqual([44, 1, 0, 0]);
    expect(m.get(C.IPVS_SVC_ATTR_NETMASK)).toEqual([255, 255, 255, 0]);
  });

  it("IPv6 service: netmask is a host-order prefix length; fwmark services carry no address", () => {
    const m = svcAttrs(encodeNewService({ family: "ipv6", fwmark: 7, scheduler: "rr", flags: 0, timeout: 0, netmask: 64 }));
    expect(m.get(C.IPVS_SVC_ATTR_AF)).toEqual([10, 0]);
    expect(m.get(C.IPVS_SVC_ATTR_FWMARK)).toEqual([7, 0, 0, 0]);
    expect(m.has(C.IPVS_SVC_ATTR_ADDR)).toBe(false);
    expect(m.has(C.IPVS_SVC_ATTR_PORT)).toBe(false);
    expect(m.get(C.IPVS_SVC_ATTR_NETMASK)).toEqual([64, 0, 0, 0]);
  });

  it("flags decode as libipvs does: flags & mask", () => {
    const bytes = encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: { family: "ipv4", fwmark: 1, scheduler: "rr", flags: 0b111, flagsMask: 0b101, timeout: 0, netmask: 0 } });
    expect(decodeIpvsMessage(bytes).service).toMatchObject({ flags: 0b101, flagsMask: 0b101 });
  });

  it("refuses to encode what the kernel could not take", () => {
    const base = { family: "ipv4" as const, protocol: "tcp" as const, address: "192.0.2.1", port: 80, flags: 0, timeout: 0, netmask: 0xffffffff };
    expect(() => encodeNewService({ ...base, scheduler: "a-scheduler-name-too-long" })).toThrow(NetlinkEncodeError);
    expect(() => encodeNewService({ ...base, scheduler: "rr", port: 70000 })).toThrow(NetlinkEncodeError);
    expect(() => encodeNewService({ ...base, scheduler: "rr", address: "2001:db8::1" })).toThrow(NetlinkEncodeError);
    expect(() => encodeNewService({ ...base, family: "ipv6", address: "2001:db8::1", scheduler: "rr", netmask: 129 })).toThrow(NetlinkEncodeError);
    expect(() => encodeDelService({ family: "ipv4", protocol: "tcp", port: 80 })).toThrow(NetlinkEncodeError);
    expect(() => encodeNewService({ ...base, fwmark: 0, scheduler: "rr" })).toThrow(NetlinkEncodeError);
  });

  it("reply decoders reject replies missing what the kernel always sends", () => {
    expect(() => decodeService(encodeDelService({ family: "ipv4", fwmark: 3 }))).toThrow(NetlinkDecodeError);
    expect(() => decodeDestination(encodeDelDest({ family: "ipv4", fwmark: 3 }, { address: "192.0.2.1", port: 0 }))).toThrow(NetlinkDecodeError);
    expect(() => decodeTimeouts(encodeGetConfig())).toThrow(NetlinkDecodeError);
    expect(() => decodeInfo(encodeGetInfo())).toThrow(NetlinkDecodeError);
    expect(() => decodeDaemon(encodeDelDaemon({ state: "master" }))).toThrow(NetlinkDecodeError);
  });
});

// ---- garbage ----

function onlyTypedErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof NetlinkDecodeError)) throw new Error(`untyped error ${String(e)}`, { cause: e });
  }
}

const decoders: [string, (b: Uint8Array) => unknown][] = [
  ["decodeIpvsMessage", decodeIpvsMessage],
  ["decodeService", decodeService],
  ["decodeDestination", (b) => decodeDestination(b)],
  ["decodeDestination(v6)", (b) => decodeDestination(b, "ipv6")],
  ["decodeDestination(no stats)", (b) => decodeDestination(b, "ipv4", { stats: false })],
  ["decodeDestinationAt(in place, no stats)", (b) => decodeDestinationAt(Buffer.concat([Buffer.alloc(3), b, Buffer.alloc(5)]), 3, 3 + b.length, "ipv4", { stats: false })],
  ["decodeService(no stats)", (b) => decodeService(b, { stats: false })],
  ["decodeTimeouts", decodeTimeouts],
  ["decodeInfo", decodeInfo],
  ["decodeDaemon", decodeDaemon],
  ["decodeMessages", decodeMessages],
  ["decodeErrorPayload", (b) => decodeErrorPayload({ type: 2, flags: 0x300, seq: 0, pid: 0, payload: Buffer.from(b) })],
];

describe("decoding garbage throws only NetlinkDecodeError", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const [, d] of decoders) onlyTypedErrors(() => d(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("valid messages with random bytes overwritten or cut short (reaches the nested decoders)", () => {
    const valid = fc.oneof(
      service.map((s) => encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: s })),
      fc.tuple(serviceKey, destination).map(([k, d]) => encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, service: k, dest: d })),
      daemon.map(encodeNewDaemon),
      timeouts.map(encodeSetConfig),
    );
    fc.assert(
      fc.property(valid, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 8 }), fc.nat(), (bytes, edits, cut) => {
        const b = Buffer.from(bytes);
        for (const [pos, val] of edits) b[pos % b.length] = val;
        const cutB = b.subarray(0, cut % (b.length + 1));
        for (const [, d] of decoders) {
          onlyTypedErrors(() => d(b));
          onlyTypedErrors(() => d(cutB));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
