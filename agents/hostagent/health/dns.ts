// UDP DNS check: one query, healthy on a response with the same id, QR set and RCODE NOERROR.
// The packet is built here (RFC 1035 §4.1), no resolver library:
//
//    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
//   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//   |                      ID                       |
//   |QR|  Opcode   |AA|TC|RD|RA|   Z    |   RCODE   |
//   |                QDCOUNT (1)                    |
//   |        ANCOUNT | NSCOUNT | ARCOUNT (0)        |
//   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//   | QNAME: length-prefixed labels, then 0         |
//   | QTYPE (16 bits)      | QCLASS IN = 1 (16 bits)|
//   +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
import { createSocket } from "node:dgram";
import { randomInt } from "node:crypto";
import { isIP } from "node:net";
import type { DnsCheck } from "../../../gen/lvsfleet/v1/types_pb.js";
import { errorDetail, timeoutResult, type CheckResult, type Probe } from "./types.js";

/** QTYPE values (RFC 1035 §3.2.2, RFC 3596 for AAAA, RFC 2782 for SRV). */
export const QTYPES: Readonly<Record<string, number>> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, ANY: 255,
};

/** RCODE names for the detail (RFC 1035 §4.1.1, RFC 2136). */
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"];

export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `RCODE ${rcode}`;
}

/** The query packet; throws on a name DNS cannot carry (label > 63 bytes, name > 255). */
export function buildQuery(id: number, name: string, qtype: number): Buffer {
  const labels = name === "" || name === "." ? [] : name.replace(/\.$/, "").split(".");
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // standard query, RD (recursion desired)
  header.writeUInt16BE(1, 4); // QDCOUNT
  parts.push(header);
  let nameLength = 1;
  for (const label of labels) {
    const b = Buffer.from(label, "utf8");
    if (b.length === 0 || b.length > 63) throw new Error(`bad label ${JSON.stringify(label)} in ${JSON.stringify(name)}`);
    parts.push(Buffer.from([b.length]), b);
    nameLength += 1 + b.length;
  }
  if (nameLength > 255) throw new Error(`name longer than 255 bytes: ${JSON.stringify(name)}`);
  const tail = Buffer.alloc(5);
  tail.writeUInt8(0, 0); // root label
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(1, 3); // QCLASS IN
  parts.push(tail);
  return Buffer.concat(parts);
}

export function dnsProbe(spec: Pick<DnsCheck, "queryName" | "queryType">): Probe {
  const typeName = (spec.queryType === "" ? "A" : spec.queryType).toUpperCase();
  const qtype = QTYPES[typeName];
  return (target, timeoutMs) =>
    new Promise<CheckResult>((resolve) => {
      if (qtype === undefined) return resolve({ ok: false, detail: `unknown query_type ${JSON.stringify(spec.queryType)}` });
      const id = randomInt(0, 0x10000);
      let query: Buffer;
      try {
        query = buildQuery(id, spec.queryName, qtype);
      } catch (err) {
        return resolve({ ok: false, detail: `bad query_name: ${(err as Error).message}` });
      }
      const socket = createSocket(isIP(target.address) === 6 ? "udp6" : "udp4");
      let settled = false;
      const finish = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.close();
        resolve(r);
      };
      const timer = setTimeout(() => finish(timeoutResult(timeoutMs)), timeoutMs);
      // Connected socket: only the real server's answers arrive, and an ICMP port unreachable
      // surfaces as ECONNREFUSED instead of a timeout.
      socket.once("error", (err) => finish({ ok: false, detail: errorDetail("dns", err) }));
      socket.on("message", (msg) => {
        if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg[2]! & 0x80) === 0) return; // not our answer: keep waiting
        const rcode = msg[3]! & 0x0f;
        finish({ ok: rcode === 0, detail: rcodeName(rcode) });
      });
      socket.connect(target.port, target.address, () => {
        socket.send(query, (err) => {
          if (err) finish({ ok: false, detail: errorDetail("dns send", err) });
        });
      });
    });
}
