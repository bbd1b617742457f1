/**
 * Property tests (fast-check): hostile input — random bytes, truncations and mutations of the golden
 * files, token soup — never makes an importer throw anything but LvsfleetError INVALID_ARGUMENT whose
 * violations are all on `text` and name a line; and export → import → export is a fixed point for
 * generated tables.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PersistenceSchema, RealServerSchema, VirtualServiceSchema, type RealServer, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelConfigSchema, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "../domain/errors.js";
import type { ImportResult } from "./common.js";
import { formatIpvsadmSave } from "./ipvsadm-export.js";
import { parseIpvsadmSave } from "./ipvsadm-save.js";
import { parseKeepalivedConf } from "./keepalived.js";

const SAVE_N = readFileSync(new URL("./testdata/ipvsadm-1.31-save-n.rules", import.meta.url), "utf8");
const KEEPALIVED = readFileSync(new URL("./testdata/keepalived-full.conf", import.meta.url), "utf8");

/** Runs a parser; it must succeed or fail with a well-formed INVALID_ARGUMENT. */
function wellBehaved(parse: (t: string) => ImportResult, text: string): void {
  try {
    parse(text);
  } catch (err) {
    if (!(err instanceof LvsfleetError)) throw new Error(`threw a ${String((err as Error)?.name)}: ${String((err as Error)?.message)}`);
    expect(err.code).toBe("INVALID_ARGUMENT");
    const v = err.details.fieldViolations ?? [];
    expect(v.length).toBeGreaterThan(0);
    for (const x of v) {
      expect(x.field).toBe("text");
      expect(x.description).toMatch(/^(line \d+: |the file |… and \d+ more$)/);
    }
  }
}

const ipvsadm = (t: string) => parseIpvsadmSave(t, { director: "sites/s/hosts/h" });
const keepalived = (t: string) => parseKeepalivedConf(t);

/** A mutation of a valid file: truncated, a line dropped/duplicated, a token replaced, bytes injected. */
function mutated(base: string): fc.Arbitrary<string> {
  const lines = base.split("\n");
  return fc.oneof(
    fc.nat(base.length).map((n) => base.slice(0, n)),
    fc.tuple(fc.nat(lines.length - 1), fc.nat(lines.length - 1)).map(([a, b]) => [...lines.slice(0, a), ...lines.slice(b)].join("\n")),
    fc.tuple(fc.nat(lines.length - 1), fc.string({ maxLength: 30 })).map(([i, s]) => lines.map((l, j) => (j === i ? l.replace(/\S+$/, s) : l)).join("\n")),
    fc.tuple(fc.nat(base.length), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([i, b]) => base.slice(0, i) + Buffer.from(b).toString("latin1") + base.slice(i)),
    fc.tuple(fc.nat(lines.length - 1), fc.constantFrom("{", "}", '"', "-A", "-a", "-t", "-p", "--tun-port", "real_server", "include x", "::", "[", "]")).map(([i, s]) =>
      lines.map((l, j) => (j === i ? `${l} ${s}` : l)).join("\n"),
    ),
  );
}

const tokenSoup = fc
  .array(
    fc.oneof(
      fc.constantFrom("-A", "-a", "-E", "-e", "-t", "-u", "-f", "-6", "-s", "rr", "-p", "-M", "-b", "--pe", "-o", "-r", "-g", "-i", "-m", "-w", "-x", "-y", "--tun-type", "gue", "--tun-port", "--tun-csum"),
      fc.constantFrom("192.0.2.1:80", "[2001:db8::1]:80", "198.51.100.1", "0", "65536", "http", "255.255.255.0", "\n", "{", "}", "virtual_server", "real_server", "TCP_CHECK", "lb_kind", "DR", "weight"),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 60 },
  )
  .map((t) => t.join(" "));

describe("hostile input never throws anything but INVALID_ARGUMENT on text", () => {
  it("ipvsadm: mutated goldens, token soup, random bytes", () => {
    fc.assert(
      fc.property(fc.oneof(mutated(SAVE_N), tokenSoup, fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString("utf8"))), (t) => wellBehaved(ipvsadm, t)),
      { numRuns: 400 },
    );
  });

  it("ipvsadm and keepalived: tokens named like Object.prototype members are unknown words, not lookups", () => {
    // Found by the property above (seed 769735375): "--tun-port 6080 valueOf" threw a TypeError.
    for (const word of ["valueOf", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      for (const text of [
        `${word} -t 192.0.2.1:80 -s rr\n`,
        `-A -t 192.0.2.1:80 -s rr ${word}\n`,
        `-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -i --tun-type ${word}\n`,
      ]) {
        expect(() => ipvsadm(text), text).toThrow(LvsfleetError);
        wellBehaved(ipvsadm, text);
      }
      wellBehaved(keepalived, `virtual_server 192.0.2.1 80 {\n  lb_kind ${word}\n  protocol ${word}\n}\n`);
    }
  });

  it("keepalived: mutated sample, token soup, random bytes, deep nesting", () => {
    fc.assert(
      fc.property(
        fc.oneof(mutated(KEEPALIVED), tokenSoup, fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString("utf8")), fc.nat(5000).map((n) => "a {".repeat(n))),
        (t) => wellBehaved(keepalived, t),
      ),
      { numRuns: 400 },
    );
  });
});

// ---- generated tables: export → import → export is a fixed point
const octet = fc.integer({ min: 1, max: 254 });
const v4 = fc.tuple(fc.constantFrom("192.0.2", "198.51.100", "203.0.113"), octet).map(([p, o]) => `${p}.${o}`);
const v6 = fc.tuple(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })).map(([a, b]) => `2001:db8:${a.toString(16)}::${b.toString(16)}`);
const sched = fc.constantFrom("rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf");

const serviceArb = fc
  .record({
    fam: fc.constantFrom(4, 6),
    v4,
    v6,
    kind: fc.constantFrom("tcp", "udp", "sctp", "fwmark"),
    port: fc.integer({ min: 0, max: 65535 }),
    mark: fc.integer({ min: 1, max: 0xffffffff }),
    sched,
    timeout: fc.option(fc.integer({ min: 1, max: 2678400 })),
    prefix: fc.option(fc.integer({ min: 1, max: 32 })),
    ops: fc.boolean(),
    dests: fc.array(
      fc.record({ fam: fc.constantFrom(4, 6), v4, v6, port: fc.integer({ min: 0, max: 65535 }), fwd: fc.constantFrom(ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN), weight: fc.integer({ min: 0, max: 65535 }), tun: fc.constantFrom("ipip", "gue", "gre") }),
      { maxLength: 4 },
    ),
  })
  .map((r) => {
    const vs = create(VirtualServiceSchema, { scheduler: r.sched, onePacket: r.ops });
    if (r.kind === "fwmark") {
      vs.fwmark = r.mark;
      vs.addressFamily = r.fam === 6 ? AddressFamily.IPV6 : AddressFamily.IPV4;
    } else {
      vs.protocol = { tcp: Protocol.TCP, udp: Protocol.UDP, sctp: Protocol.SCTP }[r.kind]!;
      vs.address = r.fam === 6 ? r.v6 : r.v4;
      vs.port = r.port;
    }
    if (r.timeout !== null) vs.persistence = create(PersistenceSchema, { timeoutSeconds: r.timeout, prefixLength: r.prefix ?? undefined });
    const seen = new Set<string>();
    const realServers: RealServer[] = [];
    for (const d of r.dests) {
      const address = d.fwd === ForwardMethod.TUN && d.fam === 6 ? d.v6 : r.fam === 6 ? d.v6 : d.v4;
      const port = r.kind === "fwmark" ? (d.fwd === ForwardMethod.NAT ? d.port : 0) : d.fwd === ForwardMethod.NAT ? d.port : r.port;
      if (seen.has(`${address}/${port}`)) continue;
      seen.add(`${address}/${port}`);
      const rs = create(RealServerSchema, { address, port, forwardMethod: d.fwd, weight: d.weight });
      if (d.fwd === ForwardMethod.TUN) {
        const type = { ipip: TunnelType.IPIP, gue: TunnelType.GUE, gre: TunnelType.GRE }[d.tun]!;
        rs.tunnel = create(TunnelConfigSchema, { type, port: type === TunnelType.GUE ? 6080 : 0, checksum: type !== TunnelType.IPIP });
      }
      realServers.push(rs);
    }
    return { virtualService: vs, realServers };
  });

function key(vs: VirtualService): string {
  return vs.fwmark ? `f${vs.fwmark}/${vs.addressFamily}` : `${vs.protocol}/${vs.address}/${vs.port}`;
}

describe("export → import → export", () => {
  it("is a fixed point for generated tables", () => {
    fc.assert(
      fc.property(fc.uniqueArray(serviceArb, { selector: (s) => key(s.virtualService), maxLength: 12 }), (services) => {
        const text = formatIpvsadmSave(services);
        if (services.length === 0) return;
        const back = parseIpvsadmSave(text).virtualServices.map((v) => ({ virtualService: v.virtualService, realServers: v.realServers.map((x) => x.realServer) }));
        expect(formatIpvsadmSave(back)).toBe(text);
        expect(back).toHaveLength(services.length);
      }),
      { numRuns: 200 },
    );
  });
});
