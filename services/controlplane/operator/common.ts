/**
 * What the importers (ipvsadm-save.ts, keepalived.ts) produce and how they fail. Pure: no grpc, pg
 * or nats — the domain and the generated messages only.
 *
 * Errors: the one error type, LvsfleetError INVALID_ARGUMENT, with field violations on the request
 * field `text` whose description starts with the line: `line 12: unknown option "--foo"`. Every
 * problem found is reported (up to MAX_REPORTED), never just the first.
 */
import type { RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError, type FieldViolation } from "../domain/errors.js";
import { parseAddress } from "../domain/address.js";

/** The request field that carries the file. */
export const TEXT_FIELD = "text";
/**
 * Larger inputs are refused before parsing (a Director's table of 10,000 services is ~1 MB). Below
 * grpc-js's default 4 MiB message limit, so an oversized file gets this clear error rather than the
 * transport's RESOURCE_EXHAUSTED (which is what a request over 4 MiB gets).
 */
export const MAX_IMPORT_BYTES = 3 * 1024 * 1024;
/** A line longer than this is not a rule (ipvsadm's own restore buffer is 4 KiB per line). */
export const MAX_LINE_LENGTH = 4096;
/** Violations reported before "… and N more". */
export const MAX_REPORTED = 50;

export interface ImportedRealServer {
  /** 1-based line of the file the real server came from. */
  line: number;
  id: string;
  realServer: RealServer;
}

export interface ImportedVirtualService {
  line: number;
  id: string;
  virtualService: VirtualService;
  realServers: ImportedRealServer[];
}

/** A directive or option the import did not carry over: listed, never silently dropped. */
export interface ImportWarning {
  line: number;
  /** The directive or option, e.g. "digest", "notify_up". */
  directive: string;
  message: string;
}

export interface ImportResult {
  virtualServices: ImportedVirtualService[];
  warnings: ImportWarning[];
}

/** Collects `line N: …` problems; `throwIfAny` raises them as one INVALID_ARGUMENT. */
export class LineErrors {
  readonly list: FieldViolation[] = [];
  private extra = 0;

  add(line: number, description: string, reason = "INVALID_SYNTAX"): void {
    if (this.list.length >= MAX_REPORTED) {
      this.extra++;
      return;
    }
    this.list.push({ field: TEXT_FIELD, reason, description: line > 0 ? `line ${line}: ${description}` : description });
  }

  get count(): number {
    return this.list.length + this.extra;
  }

  throwIfAny(what: string): void {
    if (this.list.length === 0) return;
    const list = [...this.list];
    if (this.extra > 0) list.push({ field: TEXT_FIELD, reason: "TOO_MANY_ERRORS", description: `… and ${this.extra} more` });
    const first = this.list[0]!.description;
    throw LvsfleetError.invalid(list, this.count === 1 ? `${what}: ${first}` : `${what}: ${this.count} errors, first ${first}`);
  }
}

/** A token for an error message: quoted, control characters escaped, clipped. */
export function tok(s: string): string {
  const clipped = s.length > 60 ? `${s.slice(0, 60)}…` : s;
  return JSON.stringify(clipped);
}

// eslint-disable-next-line no-control-regex
const BINARY_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/;

/**
 * Refuses what is not a text file before any parsing: too large, or binary (NUL and other control
 * characters, or U+FFFD from bytes that were not UTF-8). Returns the lines.
 */
export function splitText(text: unknown, what: string): string[] {
  const errors = new LineErrors();
  if (typeof text !== "string" || text.length === 0) {
    errors.add(0, "the file is empty", "REQUIRED");
    errors.throwIfAny(what);
  }
  const s = text as string;
  if (Buffer.byteLength(s, "utf8") > MAX_IMPORT_BYTES) {
    errors.add(0, `the file is larger than ${MAX_IMPORT_BYTES} bytes`, "TOO_LARGE");
    errors.throwIfAny(what);
  }
  const lines = s.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  lines.forEach((l, i) => {
    const m = BINARY_RE.exec(l);
    if (m) {
      const code = m[0].codePointAt(0)!;
      errors.add(i + 1, `not text: character U+${code.toString(16).toUpperCase().padStart(4, "0")} at column ${m.index + 1} (is this a binary file?)`, "BINARY_DATA");
    } else if (l.length > MAX_LINE_LENGTH) {
      errors.add(i + 1, `line longer than ${MAX_LINE_LENGTH} characters`, "LINE_TOO_LONG");
    }
  });
  errors.throwIfAny(what);
  return lines;
}

/** "192.0.2.10" → "192-0-2-10", "2001:db8::1" → "2001-db8--1". */
function addressSlug(address: string): string {
  return address.replace(/[.:]/g, "-");
}

const PROTO_WORD: Partial<Record<Protocol, string>> = { [Protocol.TCP]: "tcp", [Protocol.UDP]: "udp", [Protocol.SCTP]: "sctp" };

/**
 * The id of an imported virtual service: `tcp-192-0-2-10-80`, `udp-2001-db8--1-53`, `fwmark-10`,
 * `fwmark-10-v6`. Unique per (protocol, VIP, port) / (fwmark, family) — the service's IPVS key —
 * and at most 50 characters (sctp + the longest IPv6 text + port), so always a valid id.
 */
export function virtualServiceId(vs: Pick<VirtualService, "fwmark" | "addressFamily" | "protocol" | "address" | "port">): string {
  if (vs.fwmark !== 0) return `fwmark-${vs.fwmark}${vs.addressFamily === AddressFamily.IPV6 ? "-v6" : ""}`;
  return `${PROTO_WORD[vs.protocol] ?? "svc"}-${addressSlug(canonical(vs.address))}-${vs.port}`;
}

/** The id of an imported real server: `rs-198-51-100-11-80`. Unique per address and port in its service. */
export function realServerId(rs: Pick<RealServer, "address" | "port">): string {
  return `rs-${addressSlug(canonical(rs.address))}-${rs.port}`;
}

function canonical(address: string): string {
  const a = parseAddress(address);
  return "reason" in a ? address.toLowerCase() : a.canonical;
}
