/**
 * keepalived.conf → lvsfleet VirtualServices (with their health check) and RealServers. Pure.
 *
 * Grammar (keepalived.conf(5)): statements of whitespace-separated words, one per line; `{ … }` opens
 * a block (on the statement's line or the next); `#` and `!` start comments; "double quotes" group
 * words. Taken in:
 *
 *   virtual_server IP PORT | fwmark N | group NAME {
 *     delay_loop N                        → health_check.interval (keepalived's default 60 s)
 *     lb_algo | lvs_sched S               → scheduler
 *     lb_kind | lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]
 *                                         → every real server's forward method (and tunnel)
 *     persistence_timeout [N]             → persistence.timeout_seconds (alone: 360, keepalived's default)
 *     persistence_granularity MASK        → persistence.prefix_length (255.255.255.0 or a v6 length)
 *     persistence_engine NAME             → persistence_engine
 *     protocol TCP|UDP|SCTP               → protocol (default TCP)
 *     ip_family inet|inet6                → address_family of a fwmark service (else: its real servers')
 *     ops, sh-port, sh-fallback, mh-port, mh-fallback → one_packet, scheduler_flags
 *     sorry_server IP PORT, sorry_server_lvs_method M → sorry_server
 *     connect_timeout, retry, delay_loop  → defaults of the checkers below
 *     real_server IP PORT {
 *       weight N, uthreshold N, lthreshold N, inhibit_on_failure
 *       TCP_CHECK | HTTP_GET | SSL_GET | MISC_CHECK | DNS_CHECK { … }   (every one of them parsed)
 *     }
 *   }
 *   virtual_server_group NAME { IP PORT | IP-RANGE PORT | fwmark N … }
 *
 * Checkers → the lvsfleet HealthCheck (one per virtual service):
 *   connect_timeout → timeout (default 5 s), delay_loop → interval, retry / nb_get_retry → fall =
 *   retry + 1 (keepalived retries `retry` times after the first failure before it takes the server
 *   out), connect_port → port; HTTP_GET/SSL_GET url { path → path, status_code → expected_status
 *   (a range 200-299 → 0 = any 2xx), virtualhost → host_header, regex → body_regex }; SSL_GET → tls
 *   with tls_skip_verify (keepalived does not verify certificates unless configured); MISC_CHECK
 *   misc_path "cmd args" → exec argv (split like a shell word list, no shell), misc_timeout → timeout;
 *   DNS_CHECK type → query_type (default SOA), name → query_name (default ".").
 *
 * lvsfleet models one health check and one failure action per virtual service; keepalived has them
 * per real server, and a real server may have several checkers (keepalived takes it out when any
 * fails). The first checker of the first real server that has one is used. Every other checker is
 * still parsed (errors and unsupported directives inside it are reported by line) and listed as a
 * warning on its line, with what it checks: a further checker on a real server ("not imported"), or
 * a real server whose first checker differs from the one used. inhibit_on_failure on every real server → failure_action QUIESCE (weight 0),
 * on none → REMOVE (keepalived's default); mixed → QUIESCE with a warning.
 *
 * A virtual_server_group becomes one lvsfleet virtual service per member (lvsfleet has no groups),
 * each with the same options and real servers; that is listed as a warning too.
 *
 * Behind fwmark and port-0 services, DR and TUN real servers get port 0 (the packet's own port — the
 * kernel ignores the port there; lvsfleet requires 0), and their keepalived port becomes the health
 * check port unless connect_port says otherwise.
 *
 * Unsupported directives (notify_up, digest, delay_before_retry, quorum, VRRP blocks, …) are returned
 * as warnings with their line, never dropped silently. `include` is an error: the importer reads one
 * text, it does not open files. Errors name the line and the token.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { PersistenceSchema, RealServerSchema, SorryServerSchema, VirtualServiceSchema, type RealServer, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  AddressFamily,
  DnsCheckSchema,
  ExecCheckSchema,
  FailureAction,
  ForwardMethod,
  HealthCheckSchema,
  HttpCheckSchema,
  Protocol,
  TcpCheckSchema,
  TunnelConfigSchema,
  TunnelType,
  type HealthCheck,
} from "../../../gen/lvsfleet/v1/types_pb.js";
import { parseAddress, type ParsedAddress } from "../domain/address.js";
import { LineErrors, realServerId, splitText, tok, virtualServiceId, type ImportedRealServer, type ImportedVirtualService, type ImportResult, type ImportWarning } from "./common.js";

export interface KeepalivedImportOptions {
  /** Host resource name of the Director running this keepalived; set as every service's director. */
  director?: string;
}

/** keepalived defaults (keepalived.conf(5)). */
export const KEEPALIVED_DELAY_LOOP = 60;
export const KEEPALIVED_CONNECT_TIMEOUT = 5;
export const KEEPALIVED_PERSISTENCE_TIMEOUT = 360;
/** A group range like 192.0.2.1-200 expands to at most this many addresses. */
const MAX_RANGE = 256;
const MAX_DEPTH = 16;

interface Token {
  text: string;
  line: number;
  quoted: boolean;
}

export interface Statement {
  line: number;
  key: string;
  args: string[];
  block?: Statement[];
}

function tokenize(lines: string[], errors: LineErrors): Token[] {
  const out: Token[] = [];
  lines.forEach((raw, i) => {
    const line = i + 1;
    let j = 0;
    while (j < raw.length) {
      const c = raw[j]!;
      if (c === " " || c === "\t") {
        j++;
      } else if (c === "#" || c === "!") {
        break;
      } else if (c === "{" || c === "}") {
        out.push({ text: c, line, quoted: false });
        j++;
      } else if (c === '"') {
        const end = raw.indexOf('"', j + 1);
        if (end < 0) {
          errors.add(line, "unterminated quoted string", "INVALID_SYNTAX");
          return;
        }
        out.push({ text: raw.slice(j + 1, end), line, quoted: true });
        j = end + 1;
      } else {
        let k = j;
        while (k < raw.length && !" \t{}\"".includes(raw[k]!)) k++;
        out.push({ text: raw.slice(j, k), line, quoted: false });
        j = k;
      }
    }
  });
  return out;
}

/** Statements and blocks; unbalanced braces are errors naming where the block opened. */
export function parseStatements(text: string, errors: LineErrors): Statement[] {
  const lines = splitText(text, "keepalived.conf");
  const toks = tokenize(lines, errors);
  let i = 0;
  const block = (depth: number, open?: Token): Statement[] => {
    const stmts: Statement[] = [];
    while (i < toks.length) {
      const t = toks[i]!;
      if (t.text === "}" && !t.quoted) {
        if (!open) errors.add(t.line, `"}" without a matching "{"`, "UNBALANCED_BRACES");
        i++;
        if (open) return stmts;
        continue;
      }
      if (t.text === "{" && !t.quoted) {
        errors.add(t.line, `"{" without a directive before it`, "INVALID_SYNTAX");
        i++;
        if (depth < MAX_DEPTH) block(depth + 1, t);
        continue;
      }
      const st: Statement = { line: t.line, key: t.text, args: [] };
      i++;
      while (i < toks.length && toks[i]!.line === t.line && (toks[i]!.quoted || (toks[i]!.text !== "{" && toks[i]!.text !== "}"))) st.args.push(toks[i++]!.text);
      if (i < toks.length && toks[i]!.text === "{" && !toks[i]!.quoted) {
        const o = toks[i]!;
        i++;
        if (depth >= MAX_DEPTH) {
          errors.add(o.line, `blocks nested deeper than ${MAX_DEPTH}`, "TOO_DEEP");
          i = toks.length;
          return stmts;
        }
        st.block = block(depth + 1, o);
      }
      stmts.push(st);
    }
    if (open) errors.add(open.line, `the block opened here is never closed (missing "}" — truncated file?)`, "UNBALANCED_BRACES");
    return stmts;
  };
  return block(0);
}

const SCHED_FLAG_WORDS = new Set(["sh-port", "sh-fallback", "mh-port", "mh-fallback"]);
// No prototype: keyed by tokens of the imported text (see ipvsadm-save.ts `table`).
const FORWARD: Record<string, ForwardMethod> = Object.assign(Object.create(null), { NAT: ForwardMethod.NAT, DR: ForwardMethod.DR, TUN: ForwardMethod.TUN });
const PROTOCOLS: Record<string, Protocol> = Object.assign(Object.create(null), { TCP: Protocol.TCP, UDP: Protocol.UDP, SCTP: Protocol.SCTP });
const CHECKERS = new Set(["TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "DNS_CHECK"]);
const OTHER_CHECKERS = new Set(["SMTP_CHECK", "BFD_CHECK", "UDP_CHECK", "PING_CHECK", "FILE_CHECK"]);

class Ctx {
  readonly warnings: ImportWarning[] = [];
  constructor(readonly errors: LineErrors) {}
  warn(st: Statement, message: string): void {
    this.warnings.push({ line: st.line, directive: st.key, message });
  }
  unsupported(st: Statement, where: string): void {
    this.warn(st, `${st.key} in ${where} is not supported by lvsfleet; not imported`);
  }
  err(st: Statement, message: string, reason = "INVALID_VALUE"): void {
    this.errors.add(st.line, message, reason);
  }
  /** Exactly `n` arguments, else an error. */
  args(st: Statement, n: number, shape: string): string[] | undefined {
    if (st.args.length !== n) {
      this.err(st, `${tok(st.key)} takes ${shape}${st.args.length === 0 ? ", got nothing" : `, got ${tok(st.args.join(" "))}`}`, "INVALID_ARGUMENTS");
      return undefined;
    }
    return st.args;
  }
  uint(st: Statement, text: string | undefined, max: number): number | undefined {
    if (text === undefined || !/^\d+$/.test(text) || Number(text) > max) {
      this.err(st, `${tok(st.key)}: ${tok(text ?? "")} is not a number in 0..${max}`, "INVALID_NUMBER");
      return undefined;
    }
    return Number(text);
  }
  /** Seconds, keepalived style: integers or decimals ("2.5"). */
  seconds(st: Statement): number | undefined {
    const a = this.args(st, 1, "a number of seconds");
    if (!a) return undefined;
    if (!/^\d+(\.\d+)?$/.test(a[0]!) || Number(a[0]) > 86400) {
      this.err(st, `${tok(st.key)}: ${tok(a[0]!)} is not a number of seconds`, "INVALID_NUMBER");
      return undefined;
    }
    return Number(a[0]);
  }
  address(st: Statement, text: string): ParsedAddress | undefined {
    const a = parseAddress(text);
    if ("reason" in a) {
      this.err(st, `${tok(st.key)}: ${tok(text)} is not an IP address${/[a-z]/i.test(text) && !text.includes(":") ? " (host names are not resolved)" : ""}`, "INVALID_ADDRESS");
      return undefined;
    }
    return a;
  }
  port(st: Statement, text: string | undefined): number | undefined {
    return this.uint(st, text, 65535);
  }
}

function duration(seconds: number) {
  const whole = Math.floor(seconds);
  return create(DurationSchema, { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) });
}

/** Shell-like word splitting (quotes and backslashes, no expansion) for misc_path. */
export function splitWords(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let q: "'" | '"' | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = undefined;
      else if (c === "\\" && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (c === " " || c === "\t") {
      if (has) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (q) return undefined;
  if (has) out.push(cur);
  return out;
}

interface Checker {
  line: number;
  kind: string;
  hc: HealthCheck;
  /** connect_port given explicitly. */
  explicitPort: boolean;
}

interface CheckerDefaults {
  interval: number;
  timeout: number;
  retry?: number;
}

function checker(c: Ctx, st: Statement, d: CheckerDefaults): Checker {
  let interval = d.interval;
  let timeout = d.timeout;
  let retry = d.retry;
  let port = 0;
  let explicitPort = false;
  const hc = create(HealthCheckSchema, {});
  if (st.key === "TCP_CHECK") hc.kind = { case: "tcp", value: create(TcpCheckSchema, {}) };
  else if (st.key === "MISC_CHECK") hc.kind = { case: "exec", value: create(ExecCheckSchema, {}) };
  // keepalived's DNS_CHECK defaults: type SOA, name "." (the root).
  else if (st.key === "DNS_CHECK") hc.kind = { case: "dns", value: create(DnsCheckSchema, { queryName: ".", queryType: "SOA" }) };
  else hc.kind = { case: "http", value: create(HttpCheckSchema, { tls: st.key === "SSL_GET", tlsSkipVerify: st.key === "SSL_GET" }) };
  let urls = 0;
  for (const s of st.block ?? []) {
    switch (s.key) {
      case "connect_timeout":
      case "misc_timeout": {
        const v = c.seconds(s);
        if (v !== undefined) timeout = v;
        break;
      }
      case "delay_loop": {
        const v = c.seconds(s);
        if (v !== undefined) interval = v;
        break;
      }
      case "retry":
      case "nb_get_retry": {
        const a = c.args(s, 1, "a number");
        if (a) retry = c.uint(s, a[0], 99);
        break;
      }
      case "connect_port": {
        const a = c.args(s, 1, "a port");
        const p = a && c.port(s, a[0]);
        if (p !== undefined) {
          port = p;
          explicitPort = true;
        }
        break;
      }
      case "url": {
        if (hc.kind.case !== "http") {
          c.unsupported(s, st.key);
          break;
        }
        urls++;
        if (urls > 1) {
          c.warn(s, "lvsfleet checks one URL per service; only the first url block is imported");
          break;
        }
        for (const u of s.block ?? []) {
          const a = u.args;
          if (u.key === "path") {
            const v = c.args(u, 1, "a path");
            if (v) hc.kind.value.path = v[0]!;
          } else if (u.key === "status_code") {
            if (a.length !== 1) c.args(u, 1, "a status code or range");
            else if (/^\d+$/.test(a[0]!)) hc.kind.value.expectedStatus = Number(a[0]);
            else if (a[0] === "200-299") hc.kind.value.expectedStatus = 0;
            else {
              c.warn(u, `status_code ${a[0]}: lvsfleet checks one status or any 2xx; using any 2xx`);
              hc.kind.value.expectedStatus = 0;
            }
          } else if (u.key === "virtualhost") {
            const v = c.args(u, 1, "a host name");
            if (v) hc.kind.value.hostHeader = v[0]!;
          } else if (u.key === "regex") {
            const v = c.args(u, 1, "a regular expression");
            if (v) hc.kind.value.bodyRegex = v[0]!;
          } else if (u.key === "digest") {
            c.warn(u, "digest (MD5 of the body) is not supported by lvsfleet; not imported — use regex / body_regex instead");
          } else c.unsupported(u, "url");
        }
        break;
      }
      case "virtualhost":
        if (hc.kind.case === "http") {
          const v = c.args(s, 1, "a host name");
          if (v && !hc.kind.value.hostHeader) hc.kind.value.hostHeader = v[0]!;
        } else c.unsupported(s, st.key);
        break;
      case "misc_path": {
        if (hc.kind.case !== "exec") {
          c.unsupported(s, st.key);
          break;
        }
        const v = c.args(s, 1, 'a command (quote it: misc_path "/path/to/check arg")');
        const argv = v && splitWords(v[0]!);
        if (v && !argv) c.err(s, "misc_path: unbalanced quotes", "INVALID_SYNTAX");
        if (argv) hc.kind.value.argv = argv;
        break;
      }
      case "type":
      case "name": {
        if (hc.kind.case !== "dns") {
          c.unsupported(s, st.key);
          break;
        }
        const v = c.args(s, 1, s.key === "type" ? "a query type" : "a DNS name");
        if (v && s.key === "type") hc.kind.value.queryType = v[0]!.toUpperCase();
        else if (v) hc.kind.value.queryName = v[0]!;
        break;
      }
      case "misc_dynamic":
        c.warn(s, "misc_dynamic (weight from the exit code) is not supported by lvsfleet; the check is pass/fail");
        break;
      default:
        c.unsupported(s, st.key);
    }
  }
  hc.interval = duration(interval);
  hc.timeout = duration(timeout);
  if (retry !== undefined) hc.fall = retry + 1;
  hc.port = port;
  return { line: st.line, kind: st.key, hc, explicitPort };
}

interface RsDraft {
  st: Statement;
  addr: ParsedAddress;
  port: number;
  rs: RealServer;
  checker?: Checker;
  inhibit: boolean;
}

interface VsDraft {
  st: Statement;
  vs: VirtualService;
  forward: ForwardMethod;
  tunnel?: RealServer["tunnel"];
  sorry?: { st: Statement; addr: ParsedAddress; port: number; forward?: ForwardMethod };
  realServers: RsDraft[];
  family?: AddressFamily;
}

function forwardOf(c: Ctx, st: Statement): { forward: ForwardMethod; tunnel?: RealServer["tunnel"] } | undefined {
  const [m, ...rest] = st.args;
  const f = m === undefined ? undefined : FORWARD[m.toUpperCase()];
  if (f === undefined) {
    c.err(st, `${tok(st.key)}: ${tok(m ?? "")} is not NAT, DR or TUN`, "INVALID_FORWARD_METHOD");
    return undefined;
  }
  if (rest.length === 0) return { forward: f };
  if (f !== ForwardMethod.TUN) {
    c.err(st, `${tok(st.key)}: options ${tok(rest.join(" "))} only apply to TUN`, "INVALID_ARGUMENTS");
    return undefined;
  }
  const t = create(TunnelConfigSchema, { type: TunnelType.IPIP });
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i]!;
    if (w === "type") {
      const ty = { ipip: TunnelType.IPIP, gue: TunnelType.GUE, gre: TunnelType.GRE }[rest[++i] ?? ""];
      if (ty === undefined) c.err(st, `${tok(st.key)}: tunnel type ${tok(rest[i] ?? "")} is not ipip, gue or gre`, "INVALID_TUNNEL_TYPE");
      else t.type = ty;
    } else if (w === "port") {
      t.port = c.port(st, rest[++i]) ?? 0;
    } else if (w === "nocsum") t.noChecksum = true;
    else if (w === "csum") t.checksum = true;
    else if (w === "remcsum") t.remoteChecksum = true;
    else c.err(st, `${tok(st.key)}: unknown tunnel option ${tok(w)}`, "INVALID_ARGUMENTS");
  }
  return { forward: f, tunnel: t };
}

/** 255.255.255.0 → 24 (IPv4), "64" → 64 (IPv6, or IPv4 written as a length). */
function granularity(c: Ctx, st: Statement): number | undefined {
  const a = c.args(st, 1, "a netmask (255.255.255.0) or prefix length");
  if (!a) return undefined;
  const text = a[0]!.replace(/^\//, "");
  if (/^\d{1,3}$/.test(text) && Number(text) <= 128) return Number(text);
  const p = parseAddress(text);
  if (!("reason" in p) && p.family === 4) {
    const n = ((p.bytes[0]! << 24) | (p.bytes[1]! << 16) | (p.bytes[2]! << 8) | p.bytes[3]!) >>> 0;
    const plen = 32 - Math.log2((~n >>> 0) + 1);
    if (Number.isInteger(plen)) return plen;
  }
  c.err(st, `persistence_granularity: ${tok(a[0]!)} is not a contiguous netmask or prefix length`, "INVALID_NETMASK");
  return undefined;
}

/** Members of a virtual_server_group: address services (ranges expanded) and fwmarks. */
interface Member {
  line: number;
  address?: ParsedAddress;
  port?: number;
  fwmark?: number;
}

function groupMembers(c: Ctx, st: Statement): Member[] {
  const out: Member[] = [];
  for (const m of st.block ?? []) {
    if (m.key === "fwmark") {
      const a = c.args(m, 1, "a mark");
      const mark = a && c.uint(m, a[0], 0xffffffff);
      if (mark !== undefined && mark !== null) out.push({ line: m.line, fwmark: mark });
      continue;
    }
    if (m.block) {
      c.unsupported(m, "virtual_server_group");
      continue;
    }
    if (m.args.length !== 1) {
      c.err(m, `virtual_server_group member ${tok([m.key, ...m.args].join(" "))}: expected "IP PORT", "IP-RANGE PORT" or "fwmark N"`, "INVALID_ARGUMENTS");
      continue;
    }
    const port = c.port(m, m.args[0]);
    if (port === undefined) continue;
    const whole = parseAddress(m.key);
    if (!("reason" in whole)) {
      out.push({ line: m.line, address: whole, port });
      continue;
    }
    const range = /^(.*?)-([0-9a-fA-F]+)$/.exec(m.key);
    const base = range ? parseAddress(range[1]) : whole;
    if (!range || "reason" in base) {
      c.err(m, `${tok(m.key)} is not an IP address or range (e.g. 192.0.2.1-10)`, "INVALID_ADDRESS");
      continue;
    }
    // keepalived ranges vary the last byte (IPv4) or the last 16-bit group (IPv6, hex).
    const v4 = base.family === 4;
    const last = v4 ? base.bytes[3]! : (base.bytes[14]! << 8) | base.bytes[15]!;
    const end = v4 ? Number(range[2]) : parseInt(range[2]!, 16);
    if (!(v4 ? /^\d+$/.test(range[2]!) && end <= 255 : end <= 0xffff) || end < last || end - last + 1 > MAX_RANGE) {
      c.err(m, `range ${tok(m.key)}: the end must be ≥ the start's last ${v4 ? "byte" : "group"} and at most ${MAX_RANGE} addresses`, "INVALID_RANGE");
      continue;
    }
    for (let x = last; x <= end; x++) {
      const b = Uint8Array.from(base.bytes);
      if (v4) b[3] = x;
      else {
        b[14] = x >> 8;
        b[15] = x & 255;
      }
      const text = v4 ? [...b].join(".") : [...Array(8)].map((_, k) => ((b[2 * k]! << 8) | b[2 * k + 1]!).toString(16)).join(":");
      const a = parseAddress(text);
      if (!("reason" in a)) out.push({ line: m.line, address: a, port });
    }
  }
  return out;
}

const IGNORED_TOP = new Set(["global_defs", "vrrp_instance", "vrrp_sync_group", "vrrp_script", "vrrp_track_process", "static_ipaddress", "static_routes", "static_rules", "linkbeat_interfaces", "garp_group", "bfd_instance"]);

/**
 * Parses keepalived.conf text. Throws LvsfleetError INVALID_ARGUMENT listing every problem as `text`
 * violations `line N: …`; unsupported directives come back as warnings.
 */
export function parseKeepalivedConf(text: string, opts: KeepalivedImportOptions = {}): ImportResult {
  const errors = new LineErrors();
  const stmts = parseStatements(text, errors);
  errors.throwIfAny("keepalived.conf");
  const c = new Ctx(errors);
  const groups = new Map<string, { st: Statement; members: Member[] }>();
  for (const st of stmts) {
    if (st.key === "virtual_server_group") {
      const a = c.args(st, 1, "a group name");
      if (!a) continue;
      if (groups.has(a[0]!)) c.err(st, `virtual_server_group ${tok(a[0]!)} is already defined on line ${groups.get(a[0]!)!.st.line}`, "DUPLICATE_GROUP");
      else groups.set(a[0]!, { st, members: groupMembers(c, st) });
    }
  }
  const out: ImportedVirtualService[] = [];
  const byId = new Map<string, number>();
  for (const st of stmts) {
    if (st.key === "virtual_server_group") continue;
    if (st.key === "include") {
      c.err(st, `include ${tok(st.args.join(" "))}: includes are not followed — the import reads one text; paste the included file in its place`, "INCLUDE_NOT_SUPPORTED");
      continue;
    }
    if (st.key.startsWith("$") || st.key.startsWith("@")) {
      c.err(st, `${tok(st.key)}: keepalived variables and conditional configuration are not supported; expand the configuration first (keepalived --config-test / -d)`, "UNSUPPORTED_SYNTAX");
      continue;
    }
    if (IGNORED_TOP.has(st.key)) {
      c.warn(st, `${st.key} is not part of the LVS topology (VRRP and global settings are not imported)`);
      continue;
    }
    if (st.key !== "virtual_server") {
      if (st.key === "real_server" || CHECKERS.has(st.key)) c.err(st, `${tok(st.key)} outside a virtual_server block`, "INVALID_SYNTAX");
      else c.warn(st, `unknown top-level directive ${st.key}; not imported`);
      continue;
    }
    for (const v of virtualServer(c, st, groups, opts)) {
      const prev = byId.get(v.id);
      if (prev !== undefined) {
        c.err({ ...st, line: v.line }, `virtual service ${v.id} is already defined on line ${prev}`, "DUPLICATE_SERVICE");
        continue;
      }
      byId.set(v.id, v.line);
      out.push(v);
    }
  }
  errors.throwIfAny("keepalived.conf");
  return { virtualServices: out, warnings: c.warnings.sort((a, b) => a.line - b.line) };
}

function virtualServer(c: Ctx, st: Statement, groups: Map<string, { st: Statement; members: Member[] }>, opts: KeepalivedImportOptions): ImportedVirtualService[] {
  // --- what the block applies to
  let members: Member[];
  if (st.args[0] === "group") {
    const a = c.args(st, 2, "IP PORT, fwmark N or group NAME");
    if (!a) return [];
    const g = groups.get(a[1]!);
    if (!g) {
      c.err(st, `virtual_server group ${tok(a[1]!)}: no virtual_server_group of that name`, "GROUP_NOT_DEFINED");
      return [];
    }
    members = g.members;
    c.warn(st, `group ${a[1]} becomes ${members.length} lvsfleet virtual service(s), one per member (lvsfleet has no groups)`);
  } else if (st.args[0] === "fwmark") {
    const a = c.args(st, 2, "IP PORT, fwmark N or group NAME");
    const mark = a && c.uint(st, a[1], 0xffffffff);
    if (mark === undefined || mark === null) return [];
    members = [{ line: st.line, fwmark: mark }];
  } else {
    const a = c.args(st, 2, "IP PORT, fwmark N or group NAME");
    if (!a) return [];
    const addr = c.address(st, a[0]!);
    const port = c.port(st, a[1]);
    if (!addr || port === undefined) return [];
    members = [{ line: st.line, address: addr, port }];
  }

  // --- the block's directives
  const d: VsDraft = { st, vs: create(VirtualServiceSchema, { scheduler: "wlc", directors: opts.director ? [opts.director] : [] }), forward: ForwardMethod.NAT, realServers: [] };
  let protocol = Protocol.TCP;
  const defaults: CheckerDefaults = { interval: KEEPALIVED_DELAY_LOOP, timeout: KEEPALIVED_CONNECT_TIMEOUT };
  let sorryMethod: ForwardMethod | undefined;
  let prefix: number | undefined;
  let timeout: number | undefined;
  const rsStatements: Statement[] = [];
  for (const s of st.block ?? []) {
    switch (s.key) {
      case "delay_loop": {
        const v = c.seconds(s);
        if (v !== undefined) defaults.interval = v;
        break;
      }
      case "connect_timeout": {
        const v = c.seconds(s);
        if (v !== undefined) defaults.timeout = v;
        break;
      }
      case "retry": {
        const a = c.args(s, 1, "a number");
        if (a) defaults.retry = c.uint(s, a[0], 99);
        break;
      }
      case "lb_algo":
      case "lvs_sched": {
        const a = c.args(s, 1, "a scheduler");
        if (a) d.vs.scheduler = a[0]!;
        break;
      }
      case "lb_kind":
      case "lvs_method": {
        const f = forwardOf(c, s);
        if (f) {
          d.forward = f.forward;
          d.tunnel = f.tunnel;
        }
        break;
      }
      case "persistence_timeout": {
        if (s.args.length === 0) timeout = KEEPALIVED_PERSISTENCE_TIMEOUT;
        else {
          const a = c.args(s, 1, "seconds");
          if (a) timeout = c.uint(s, a[0], 0xffffffff);
        }
        break;
      }
      case "persistence_granularity":
        prefix = granularity(c, s);
        break;
      case "persistence_engine": {
        const a = c.args(s, 1, "an engine name");
        if (a) d.vs.persistenceEngine = a[0]!;
        break;
      }
      case "protocol": {
        const a = c.args(s, 1, "TCP, UDP or SCTP");
        const p = a && PROTOCOLS[a[0]!.toUpperCase()];
        if (a && p === undefined) c.err(s, `protocol ${tok(a[0]!)} is not TCP, UDP or SCTP`, "INVALID_PROTOCOL");
        if (p !== undefined && p !== null) protocol = p;
        break;
      }
      case "ip_family": {
        const a = c.args(s, 1, "inet or inet6");
        if (a && a[0] === "inet") d.family = AddressFamily.IPV4;
        else if (a && a[0] === "inet6") d.family = AddressFamily.IPV6;
        else if (a) c.err(s, `ip_family ${tok(a[0]!)} is not inet or inet6`, "INVALID_VALUE");
        break;
      }
      case "ops":
        d.vs.onePacket = true;
        break;
      case "sh-port":
      case "sh-fallback":
      case "mh-port":
      case "mh-fallback":
        d.vs.schedulerFlags.push(s.key);
        break;
      case "sorry_server": {
        const a = c.args(s, 2, "IP PORT");
        const addr = a && c.address(s, a[0]!);
        const port = a && c.port(s, a[1]);
        if (addr && port !== undefined && port !== null) d.sorry = { st: s, addr, port };
        break;
      }
      case "sorry_server_lvs_method": {
        const f = forwardOf(c, s);
        if (f) sorryMethod = f.forward;
        break;
      }
      case "real_server":
        rsStatements.push(s);
        break;
      default:
        if (SCHED_FLAG_WORDS.has(s.key)) break;
        if (CHECKERS.has(s.key) || OTHER_CHECKERS.has(s.key)) c.err(s, `${s.key} belongs inside a real_server block`, "INVALID_SYNTAX");
        else c.unsupported(s, "virtual_server");
    }
  }
  for (const s of rsStatements) {
    const r = realServerDraft(c, s, defaults);
    if (r) d.realServers.push(r);
  }
  if (d.sorry) d.sorry.forward = sorryMethod ?? d.forward;

  // --- health check and failure action from the real servers' checkers
  const first = d.realServers.find((r) => r.checker);
  for (const r of d.realServers) {
    if (!first) break;
    if (!r.checker) c.warn(r.st, `real_server has no checker while line ${first.checker!.line}'s has one; lvsfleet checks every real server of the service with it`);
    else if (r !== first && (r.checker.kind !== first.checker!.kind || comparable(r) !== comparable(first))) {
      c.warn(
        r.st,
        `${r.checker.kind} on line ${r.checker.line} (${describeCheck(r.checker.hc)}) differs from line ${first.checker!.line}'s; lvsfleet runs one health check per virtual service (line ${first.checker!.line}'s: ${describeCheck(first.checker!.hc)})`,
      );
    }
  }
  const inhibit = d.realServers.filter((r) => r.inhibit).length;
  if (d.realServers.length > 0) {
    d.vs.failureAction = inhibit > 0 ? FailureAction.QUIESCE : FailureAction.REMOVE;
    if (inhibit > 0 && inhibit < d.realServers.length) {
      for (const r of d.realServers.filter((x) => !x.inhibit)) {
        c.warn(r.st, "real_server without inhibit_on_failure while others have it; lvsfleet has one failure action per service: QUIESCE (weight 0)");
      }
    }
  }

  // --- one lvsfleet service per member
  const out: ImportedVirtualService[] = [];
  for (const m of members) {
    const vs = create(VirtualServiceSchema, { ...d.vs, schedulerFlags: [...d.vs.schedulerFlags], directors: [...d.vs.directors] });
    const spansPorts = m.fwmark !== undefined || m.port === 0;
    if (m.fwmark !== undefined) {
      vs.fwmark = m.fwmark;
      const rsFam = d.realServers[0]?.addr.family;
      vs.addressFamily = d.family ?? (rsFam === 6 ? AddressFamily.IPV6 : AddressFamily.IPV4);
    } else {
      vs.protocol = protocol;
      vs.address = m.address!.canonical;
      vs.port = m.port!;
    }
    if (timeout !== undefined || prefix !== undefined) vs.persistence = create(PersistenceSchema, { timeoutSeconds: timeout ?? 0, prefixLength: prefix });
    const dr = d.forward === ForwardMethod.DR || d.forward === ForwardMethod.TUN;
    if (first?.checker) {
      const hc = create(HealthCheckSchema, first.checker.hc);
      // keepalived probes the real_server's port; where the service spans ports lvsfleet needs that
      // port on the check (DR/TUN real servers have port 0 there).
      if (!first.checker.explicitPort && spansPorts) hc.port = first.port;
      vs.healthCheck = hc;
    }
    if (d.sorry) {
      const sdr = d.sorry.forward === ForwardMethod.DR || d.sorry.forward === ForwardMethod.TUN;
      vs.sorryServer = create(SorryServerSchema, { address: d.sorry.addr.canonical, port: sdr && spansPorts ? 0 : d.sorry.port, forwardMethod: d.sorry.forward });
    }
    const realServers: ImportedRealServer[] = [];
    const seen = new Map<string, number>();
    for (const r of d.realServers) {
      const rs = create(RealServerSchema, { ...r.rs, forwardMethod: d.forward, tunnel: d.tunnel ? create(TunnelConfigSchema, d.tunnel) : undefined });
      rs.port = dr && spansPorts ? 0 : r.port;
      const id = realServerId(rs);
      const prev = seen.get(id);
      if (prev !== undefined) {
        c.err(r.st, `real_server ${r.addr.canonical} is already defined on line ${prev}${dr && spansPorts ? " (behind a fwmark or port-0 DR/TUN service the port is 0)" : ""}`, "DUPLICATE_REAL_SERVER");
        continue;
      }
      seen.set(id, r.st.line);
      realServers.push({ line: r.st.line, id, realServer: rs });
    }
    out.push({ line: m.line, id: virtualServiceId(vs), virtualService: vs, realServers });
  }
  return out;
}

/** A health check in a few words, e.g. "http GET /healthz expect 200, port 8080, every 6s, timeout 3s, fall 4". */
export function describeCheck(hc: HealthCheck): string {
  const k = hc.kind;
  const what =
    k.case === "tcp"
      ? "tcp connect"
      : k.case === "http"
        ? `${k.value.tls ? "https" : "http"} GET ${k.value.path || "/"} expect ${k.value.expectedStatus || "2xx"}${k.value.hostHeader ? ` host ${k.value.hostHeader}` : ""}${k.value.bodyRegex ? ` body ~ ${k.value.bodyRegex}` : ""}`
        : k.case === "dns"
          ? `dns ${k.value.queryType} ${k.value.queryName}`
          : k.case === "exec"
            ? `exec ${k.value.argv.join(" ")}`
            : "no check";
  const secs = (d: { seconds: bigint; nanos: number } | undefined) => (d ? `${Number(d.seconds) + d.nanos / 1e9}s` : "?");
  return [what, hc.port ? `port ${hc.port}` : "", `every ${secs(hc.interval)}`, `timeout ${secs(hc.timeout)}`, hc.fall ? `fall ${hc.fall}` : ""].filter(Boolean).join(", ");
}

/** A checker as text, for "differs from the first one" (the real server's own port is not a difference). */
function comparable(r: RsDraft): string {
  const c = r.checker!;
  return `${c.explicitPort}/${toJsonString(HealthCheckSchema, c.hc)}`;
}

function realServerDraft(c: Ctx, st: Statement, defaults: CheckerDefaults): RsDraft | undefined {
  const a = c.args(st, 2, "IP PORT");
  const addr = a && c.address(st, a[0]!);
  const port = a && c.port(st, a[1]);
  const rs = create(RealServerSchema, { weight: 1 });
  let chk: Checker | undefined;
  let inhibit = false;
  const d = { ...defaults };
  for (const s of st.block ?? []) {
    if (CHECKERS.has(s.key)) {
      // Every checker is parsed (its errors and unsupported directives are reported by line); the
      // first one is the real server's check, each further one is listed with what it would check.
      const parsed = checker(c, s, d);
      if (chk) {
        c.warn(
          s,
          `${s.key} (${describeCheck(parsed.hc)}) not imported: lvsfleet runs one health check per virtual service and this real server's is its first checker (${chk.kind} on line ${chk.line}); keepalived would take it out when any of its checkers fails`,
        );
      } else chk = parsed;
      continue;
    }
    switch (s.key) {
      case "weight": {
        const v = c.args(s, 1, "a number");
        const w = v && c.uint(s, v[0], 0xffffffff);
        if (w !== undefined && w !== null) rs.weight = w;
        break;
      }
      case "uthreshold":
      case "lthreshold": {
        const v = c.args(s, 1, "a number");
        const n = v && c.uint(s, v[0], 0xffffffff);
        if (n !== undefined && n !== null) {
          if (s.key === "uthreshold") rs.upperThreshold = n;
          else rs.lowerThreshold = n;
        }
        break;
      }
      case "inhibit_on_failure":
        inhibit = true;
        break;
      case "delay_loop": {
        const v = c.seconds(s);
        if (v !== undefined) d.interval = v;
        break;
      }
      case "connect_timeout": {
        const v = c.seconds(s);
        if (v !== undefined) d.timeout = v;
        break;
      }
      case "retry": {
        const v = c.args(s, 1, "a number");
        if (v) d.retry = c.uint(s, v[0], 99);
        break;
      }
      default:
        if (OTHER_CHECKERS.has(s.key)) c.warn(s, `${s.key} is not supported by lvsfleet (tcp, http(s), dns and exec checks are); not imported`);
        else c.unsupported(s, "real_server");
    }
  }
  if (!addr || port === undefined || port === null) return undefined;
  rs.address = addr.canonical;
  return { st, addr, port, rs, checker: chk, inhibit };
}
