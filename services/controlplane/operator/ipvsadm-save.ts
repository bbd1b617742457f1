/**
 * `ipvsadm -S` / `ipvsadm-save` output (with or without `-n`) → lvsfleet VirtualServices and
 * RealServers for one site and one Director. Pure.
 *
 * The format, from ipvsadm 1.31 (Debian bookworm; checked against the real binary in the VM harness,
 * test/kernel/ipvsadm-roundtrip.test.ts):
 *
 *   -A -t 192.0.2.10:80 -s wlc [-p 300] [-M 255.255.255.0] [--pe sip] [-o] [-b sh-fallback,sh-port]
 *   -a -t 192.0.2.10:80 -r 198.51.100.11:80 -g|-i|-m -w 1 [--tun-type gue --tun-port 6080 --tun-nocsum]
 *   -A -u [2001:db8::1]:53 …     -A --sctp-service 192.0.2.1:9000 …     -A -f 10 [-6] …
 *
 * What `ipvsadm -R` also takes and hand-edited files contain is accepted too: long option names
 * (`--tcp-service`, `--weight=5`), options in any order, `-p` without a timeout (ipvsadm 1.31's
 * default, 360 s), a real server without a port (the service's), `-x`/`-y` thresholds (which -S never
 * writes), `-E`/`-e` editing a service / real server defined on an earlier line, blank lines and `#`
 * comments. Anything else — other commands (`-C`, `--set`, daemons), unknown options, a real server
 * before its service — is an error naming the line and the token.
 *
 * Names: without `-n`, ipvsadm prints ports through getservbyport(3) (`192.0.2.10:http`); those are
 * looked up in a built-in table of well-known names (service-names.ts). Host names
 * (`www.example.com:http`) are refused: the control plane never resolves DNS — resolving at import
 * time would freeze whatever the resolver said then into the topology.
 *
 * Semantics (scheduler names, port rules of DR/TUN, persistence bounds, tunnel options…) are the
 * domain validators' (services/controlplane/domain), run by the store on import with the line
 * number of each resource; this parser checks syntax and token values.
 */
import { create } from "@bufbuild/protobuf";
import { PersistenceSchema, RealServerSchema, VirtualServiceSchema, type RealServer, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelConfigSchema, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { parseAddress, type ParsedAddress } from "../domain/address.js";
import { LineErrors, realServerId, splitText, tok, virtualServiceId, type ImportedVirtualService, type ImportResult } from "./common.js";
import { servicePort } from "./service-names.js";

export interface IpvsadmImportOptions {
  /** Host resource name of the Director these rules are from (`sites/{site}/hosts/{host}`); set as the services' director. */
  director?: string;
}

/** ipvsadm 1.31: `-p` without a value (checked in the VM: `-A … -p` saves as `-p 360`). */
export const DEFAULT_PERSISTENCE_TIMEOUT = 360;
/** ipvsadm's default weight (`ce.dest.weight = 1`). */
const DEFAULT_WEIGHT = 1;

type Arg = "none" | "required" | "optional";
interface OptionSpec {
  key: string;
  arg: Arg;
  /** Applies to service lines (-A/-E), server lines (-a/-e), or both (the service selector). */
  scope: "service" | "server" | "both";
}

/**
 * Lookup tables keyed by tokens of the imported text have no prototype: a token such as `valueOf` or
 * `constructor` must be an unknown option, not Object.prototype's member (hostile.property.test found it).
 */
function table<T>(entries: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, entries);
}

const COMMANDS = table<"A" | "E" | "a" | "e">({
  "-A": "A",
  "--add-service": "A",
  "-E": "E",
  "--edit-service": "E",
  "-a": "a",
  "--add-server": "a",
  "-e": "e",
  "--edit-server": "e",
});

/** ipvsadm commands that are not rules: refused with a message saying so. */
const OTHER_COMMANDS = new Set([
  "-D", "--delete-service", "-d", "--delete-server", "-C", "--clear", "-R", "--restore", "-S", "--save",
  "-L", "-l", "--list", "-Z", "--zero", "--set", "--start-daemon", "--stop-daemon", "-h", "--help", "-v", "--version",
]);

const OPTIONS = table<OptionSpec>({});
function opt(names: string[], key: string, arg: Arg, scope: OptionSpec["scope"]): void {
  for (const n of names) OPTIONS[n] = { key, arg, scope };
}
opt(["-t", "--tcp-service"], "tcp", "required", "both");
opt(["-u", "--udp-service"], "udp", "required", "both");
opt(["--sctp-service"], "sctp", "required", "both");
opt(["-f", "--fwmark-service"], "fwmark", "required", "both");
opt(["-6", "--ipv6"], "ipv6", "none", "both");
opt(["-s", "--scheduler"], "scheduler", "required", "service");
opt(["-p", "--persistent"], "persistent", "optional", "service");
opt(["-M", "--netmask"], "netmask", "required", "service");
opt(["-b", "--sched-flags"], "schedFlags", "required", "service");
opt(["--pe"], "pe", "required", "service");
opt(["-o", "--ops"], "ops", "none", "service");
opt(["-r", "--real-server"], "real", "required", "server");
opt(["-g", "--gatewaying"], "fwd-g", "none", "server");
opt(["-i", "--ipip"], "fwd-i", "none", "server");
opt(["-m", "--masquerading"], "fwd-m", "none", "server");
opt(["-w", "--weight"], "weight", "required", "server");
opt(["-x", "--u-threshold"], "uthreshold", "required", "server");
opt(["-y", "--l-threshold"], "lthreshold", "required", "server");
opt(["--tun-type"], "tunType", "required", "server");
opt(["--tun-port"], "tunPort", "required", "server");
opt(["--tun-nocsum"], "tunNocsum", "none", "server");
opt(["--tun-csum"], "tunCsum", "none", "server");
opt(["--tun-remcsum"], "tunRemcsum", "none", "server");

const SELECTORS = ["tcp", "udp", "sctp", "fwmark"] as const;
const FORWARD = table<ForwardMethod>({ "fwd-g": ForwardMethod.DR, "fwd-i": ForwardMethod.TUN, "fwd-m": ForwardMethod.NAT });
const TUNNEL_TYPES = table<TunnelType>({ ipip: TunnelType.IPIP, gue: TunnelType.GUE, gre: TunnelType.GRE });

interface Parsed {
  cmd: "A" | "E" | "a" | "e";
  /** By option key ("selector" and "fwd" group the alternatives): the flag as written, its spec key, its value. */
  values: Map<string, { flag: string; spec: string; value: string | undefined }>;
}

/** Splits one rule into its command and options; undefined (after reporting) when it is not one. */
function parseRule(tokens: string[], line: number, errors: LineErrors): Parsed | undefined {
  const first = tokens[0]!;
  const cmd = COMMANDS[first];
  if (!cmd) {
    if (OTHER_COMMANDS.has(first) || OTHER_COMMANDS.has(first.split("=")[0]!)) {
      errors.add(line, `${tok(first)} is not a rule: an import takes the -A/-a lines ipvsadm -S writes (and -E/-e)`, "UNSUPPORTED_COMMAND");
    } else if (first.startsWith("-")) errors.add(line, `unknown command ${tok(first)}: expected -A or -a`, "UNKNOWN_OPTION");
    else errors.add(line, `${tok(first)} is not an ipvsadm rule: expected -A or -a`, "INVALID_SYNTAX");
    return undefined;
  }
  const values: Parsed["values"] = new Map();
  let ok = true;
  for (let i = 1; i < tokens.length; i++) {
    const t = tokens[i]!;
    let flag = t;
    let inline: string | undefined;
    if (t.startsWith("--") && t.includes("=")) {
      flag = t.slice(0, t.indexOf("="));
      inline = t.slice(t.indexOf("=") + 1);
    }
    const spec = OPTIONS[flag];
    if (!spec) {
      if (COMMANDS[flag] || OTHER_COMMANDS.has(flag)) errors.add(line, `a second command ${tok(flag)} on one line`, "INVALID_SYNTAX");
      else if (flag.startsWith("-")) errors.add(line, `unknown option ${tok(flag)}`, "UNKNOWN_OPTION");
      else errors.add(line, `unexpected argument ${tok(t)}`, "INVALID_SYNTAX");
      ok = false;
      continue;
    }
    const isService = cmd === "A" || cmd === "E";
    if ((spec.scope === "service" && !isService) || (spec.scope === "server" && isService)) {
      errors.add(line, `option ${tok(flag)} does not apply to ${isService ? "a service (-A/-E)" : "a real server (-a/-e)"} line`, "OPTION_NOT_ALLOWED");
      ok = false;
    }
    const key = spec.key.startsWith("fwd-") ? "fwd" : SELECTORS.includes(spec.key as never) ? "selector" : spec.key;
    if (values.has(key)) {
      const prev = values.get(key)!.flag;
      errors.add(line, prev === flag ? `option ${tok(flag)} given twice` : `option ${tok(flag)} conflicts with ${tok(prev)}`, "DUPLICATE_OPTION");
      ok = false;
    }
    let value: string | undefined = inline;
    if (spec.arg === "none" && inline !== undefined) {
      errors.add(line, `option ${tok(flag)} takes no value`, "INVALID_SYNTAX");
      ok = false;
    } else if (spec.arg === "required" && value === undefined) {
      const next = tokens[i + 1];
      if (next === undefined) {
        errors.add(line, `option ${tok(flag)} needs a value (the line ends there: truncated?)`, "MISSING_VALUE");
        ok = false;
      } else {
        value = next;
        i++;
      }
    } else if (spec.arg === "optional" && value === undefined) {
      // popt's optional argument: the next word, unless it is an option.
      const next = tokens[i + 1];
      if (next !== undefined && !next.startsWith("-")) {
        value = next;
        i++;
      }
    }
    values.set(key, { flag, spec: spec.key, value });
  }
  if (!values.has("selector")) {
    errors.add(line, "no service: expected -t, -u, --sctp-service or -f", "MISSING_OPTION");
    ok = false;
  }
  if ((cmd === "a" || cmd === "e") && !values.has("real")) {
    errors.add(line, "no real server: expected -r ADDRESS[:PORT]", "MISSING_OPTION");
    ok = false;
  }
  return ok ? { cmd, values } : undefined;
}

const HOSTNAME_RE = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i;

/** An address literal; host names get the "no DNS" explanation. */
function address(text: string, line: number, errors: LineErrors, what: string): ParsedAddress | undefined {
  const a = parseAddress(text);
  if (!("reason" in a)) return a;
  if (HOSTNAME_RE.test(text)) {
    errors.add(line, `${what} ${tok(text)} is a host name: lvsfleet does not resolve DNS; save the rules with ipvsadm -S -n`, "HOST_NAME_NOT_ALLOWED");
  } else errors.add(line, `${what} ${tok(text)} is not an IP address: ${a.description}`, "INVALID_ADDRESS");
  return undefined;
}

function port(text: string, proto: "tcp" | "udp" | "sctp", line: number, errors: LineErrors, what: string): number | undefined {
  if (/^\d{1,5}$/.test(text) && Number(text) <= 65535) return Number(text);
  if (/^\d+$/.test(text)) {
    errors.add(line, `${what} port ${tok(text)} is not in 0..65535`, "PORT_OUT_OF_RANGE");
    return undefined;
  }
  const p = servicePort(text, proto);
  if (p === undefined) {
    errors.add(line, `${what} port ${tok(text)} is not a number or a well-known ${proto} service name; save the rules with ipvsadm -S -n`, "UNKNOWN_SERVICE_NAME");
  }
  return p;
}

/** ADDRESS[:PORT] or [IPV6][:PORT] (ipvsadm parse_service). */
function endpoint(text: string, proto: "tcp" | "udp" | "sctp", line: number, errors: LineErrors, what: string): { addr: ParsedAddress; port: number | undefined } | undefined {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) {
      errors.add(line, `${what} ${tok(text)}: "[" without "]"`, "INVALID_ADDRESS");
      return undefined;
    }
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":") || rest.length === 1) {
        errors.add(line, `${what} ${tok(text)}: expected [IPV6]:PORT`, "INVALID_ADDRESS");
        return undefined;
      }
      portText = rest.slice(1);
    }
  } else {
    const colons = text.split(":").length - 1;
    if (colons === 1) {
      [host, portText] = text.split(":") as [string, string];
      if (portText === "") {
        errors.add(line, `${what} ${tok(text)}: empty port`, "INVALID_ADDRESS");
        return undefined;
      }
    } else if (colons > 1) {
      // ipvsadm -S writes IPv6 in brackets; a bare IPv6 address has no port.
      host = text;
    }
  }
  const addr = address(host, line, errors, what);
  const p = portText === undefined ? undefined : port(portText, proto, line, errors, what);
  if (!addr || (portText !== undefined && p === undefined)) return undefined;
  return { addr, port: p };
}

function uint(text: string | undefined, max: number, line: number, errors: LineErrors, flag: string): number | undefined {
  if (text === undefined || !/^\d+$/.test(text) || Number(text) > max) {
    errors.add(line, `option ${tok(flag)}: ${tok(text ?? "")} is not a number in 0..${max}`, "INVALID_NUMBER");
    return undefined;
  }
  return Number(text);
}

/** IPv4 netmask 255.255.255.0 → 24; non-contiguous masks have no prefix length. */
function netmaskPrefix(text: string, family: 4 | 6, line: number, errors: LineErrors): number | undefined {
  if (family === 6) {
    if (/^\d{1,3}$/.test(text) && Number(text) <= 128) return Number(text);
    errors.add(line, `option "-M": ${tok(text)} is not an IPv6 prefix length 0..128`, "INVALID_NETMASK");
    return undefined;
  }
  const a = parseAddress(text);
  if ("reason" in a || a.family !== 4) {
    errors.add(line, `option "-M": ${tok(text)} is not an IPv4 netmask like 255.255.255.0`, "INVALID_NETMASK");
    return undefined;
  }
  const n = ((a.bytes[0]! << 24) | (a.bytes[1]! << 16) | (a.bytes[2]! << 8) | a.bytes[3]!) >>> 0;
  const plen = 32 - Math.log2((~n >>> 0) + 1);
  if (!Number.isInteger(plen)) {
    errors.add(line, `option "-M": ${tok(text)} is not a contiguous netmask (lvsfleet stores a prefix length)`, "INVALID_NETMASK");
    return undefined;
  }
  return plen;
}

interface ServiceKey {
  key: string;
  text: string;
  fields: Pick<VirtualService, "protocol" | "address" | "port" | "fwmark" | "addressFamily">;
}

const PROTOS = { tcp: Protocol.TCP, udp: Protocol.UDP, sctp: Protocol.SCTP } as const;

function serviceKey(p: Parsed, line: number, errors: LineErrors): ServiceKey | undefined {
  const sel = p.values.get("selector")!;
  const ipv6 = p.values.has("ipv6");
  if (sel.spec === "fwmark") {
    const mark = uint(sel.value, 0xffffffff, line, errors, "-f");
    if (mark === undefined) return undefined;
    if (mark === 0) {
      errors.add(line, `option "-f": fwmark 0 is not a mark (1..4294967295)`, "MARK_OUT_OF_RANGE");
      return undefined;
    }
    const fam = ipv6 ? AddressFamily.IPV6 : AddressFamily.IPV4;
    return { key: `f/${mark}/${fam}`, text: `-f ${mark}${ipv6 ? " -6" : ""}`, fields: { protocol: Protocol.UNSPECIFIED, address: "", port: 0, fwmark: mark, addressFamily: fam } };
  }
  if (ipv6) {
    errors.add(line, `option "-6" only applies to fwmark services (-f); an address service takes its family from the VIP`, "OPTION_NOT_ALLOWED");
    return undefined;
  }
  const proto = sel.spec as "tcp" | "udp" | "sctp";
  const ep = endpoint(sel.value!, proto, line, errors, "service");
  if (!ep) return undefined;
  const prt = ep.port ?? 0;
  const fam = ep.addr.family === 4 ? AddressFamily.IPV4 : AddressFamily.IPV6;
  return {
    key: `${proto}/${ep.addr.canonical}/${prt}`,
    text: `${sel.flag} ${sel.value}`,
    fields: { protocol: PROTOS[proto], address: ep.addr.canonical, port: prt, fwmark: 0, addressFamily: fam },
  };
}

/** Service options of an -A/-E line onto `vs` (which holds the key fields). */
function applyServiceOptions(vs: VirtualService, p: Parsed, line: number, errors: LineErrors): void {
  const v = p.values;
  vs.scheduler = v.get("scheduler")?.value ?? "wlc";
  const persistent = v.get("persistent");
  const family = vs.addressFamily === AddressFamily.IPV6 ? 6 : 4;
  if (persistent) {
    const t = persistent.value === undefined ? DEFAULT_PERSISTENCE_TIMEOUT : uint(persistent.value, 0xffffffff, line, errors, "-p");
    if (t !== undefined) vs.persistence = create(PersistenceSchema, { timeoutSeconds: t });
  }
  const mask = v.get("netmask");
  if (mask) {
    const plen = netmaskPrefix(mask.value!, family, line, errors);
    if (plen !== undefined) {
      vs.persistence ??= create(PersistenceSchema, { timeoutSeconds: 0 });
      vs.persistence.prefixLength = plen;
    }
  }
  const flags = v.get("schedFlags");
  vs.schedulerFlags = flags ? flags.value!.split(",") : [];
  if (flags && flags.value!.split(",").some((f) => f === "")) errors.add(line, `option "-b": ${tok(flags.value!)} has an empty flag`, "INVALID_SCHEDULER_FLAG");
  vs.persistenceEngine = v.get("pe")?.value ?? "";
  vs.onePacket = v.has("ops");
}

function realServer(p: Parsed, svc: ServiceKey, line: number, errors: LineErrors): RealServer | undefined {
  const v = p.values;
  const proto = svc.fields.fwmark !== 0 ? "tcp" : (Object.keys(PROTOS).find((k) => PROTOS[k as keyof typeof PROTOS] === svc.fields.protocol) as "tcp" | "udp" | "sctp");
  const ep = endpoint(v.get("real")!.value!, proto, line, errors, "real server");
  const rs = create(RealServerSchema, {});
  rs.forwardMethod = FORWARD[v.get("fwd")?.spec ?? "fwd-g"]!;
  const w = v.get("weight");
  rs.weight = w ? uint(w.value, 0xffffffff, line, errors, "-w") : DEFAULT_WEIGHT;
  const x = v.get("uthreshold");
  const y = v.get("lthreshold");
  if (x) rs.upperThreshold = uint(x.value, 0xffffffff, line, errors, "-x") ?? 0;
  if (y) rs.lowerThreshold = uint(y.value, 0xffffffff, line, errors, "-y") ?? 0;
  const tt = v.get("tunType");
  const tp = v.get("tunPort");
  const csum = ["tunNocsum", "tunCsum", "tunRemcsum"].filter((k) => v.has(k));
  if (tt || tp || csum.length > 0) {
    const type = tt ? TUNNEL_TYPES[tt.value!] : TunnelType.IPIP;
    if (type === undefined) errors.add(line, `option "--tun-type": ${tok(tt!.value!)} is not one of ipip, gue, gre`, "INVALID_TUNNEL_TYPE");
    rs.tunnel = create(TunnelConfigSchema, {
      type: type ?? TunnelType.UNSPECIFIED,
      port: tp ? uint(tp.value, 65535, line, errors, "--tun-port") ?? 0 : 0,
      noChecksum: v.has("tunNocsum"),
      checksum: v.has("tunCsum"),
      remoteChecksum: v.has("tunRemcsum"),
    });
  }
  if (!ep) return undefined;
  rs.address = ep.addr.canonical;
  // ipvsadm: a real server without a port gets the service's.
  rs.port = ep.port ?? svc.fields.port;
  return rs;
}

/**
 * Parses the text of an `ipvsadm -S` file. Throws LvsfleetError INVALID_ARGUMENT listing every
 * problem as `text` violations `line N: …`; nothing else.
 */
export function parseIpvsadmSave(text: string, opts: IpvsadmImportOptions = {}): ImportResult {
  const what = "ipvsadm rules";
  const lines = splitText(text, what);
  const errors = new LineErrors();
  const services = new Map<string, ImportedVirtualService & { svc: ServiceKey }>();
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const p = parseRule(trimmed.split(/[ \t]+/), line, errors);
    if (!p) return;
    const svc = serviceKey(p, line, errors);
    if (!svc) return;
    const existing = services.get(svc.key);
    if (p.cmd === "A" || p.cmd === "E") {
      if (p.cmd === "A" && existing) {
        errors.add(line, `service ${svc.text} is already defined on line ${existing.line}`, "DUPLICATE_SERVICE");
        return;
      }
      if (p.cmd === "E" && !existing) {
        errors.add(line, `-E edits service ${svc.text}, which no earlier -A line defines`, "SERVICE_NOT_DEFINED");
        return;
      }
      const vs = existing?.virtualService ?? create(VirtualServiceSchema, { ...svc.fields, directors: opts.director ? [opts.director] : [] });
      applyServiceOptions(vs, p, line, errors);
      if (!existing) services.set(svc.key, { line, id: virtualServiceId(vs), virtualService: vs, realServers: [], svc });
      return;
    }
    if (!existing) {
      errors.add(line, `real server of service ${svc.text}, which no earlier -A line defines`, "SERVICE_NOT_DEFINED");
      return;
    }
    const rs = realServer(p, svc, line, errors);
    if (!rs) return;
    const id = realServerId(rs);
    const prev = existing.realServers.find((r) => r.id === id);
    if (p.cmd === "a") {
      if (prev) errors.add(line, `real server ${rs.address.includes(":") ? `[${rs.address}]` : rs.address}:${rs.port} of ${svc.text} is already defined on line ${prev.line}`, "DUPLICATE_REAL_SERVER");
      else existing.realServers.push({ line, id, realServer: rs });
    } else if (!prev) {
      errors.add(line, `-e edits a real server of ${svc.text} that no earlier -a line defines`, "REAL_SERVER_NOT_DEFINED");
    } else prev.realServer = rs;
  });
  errors.throwIfAny(what);
  return { virtualServices: [...services.values()].map(({ svc: _s, ...rest }) => rest), warnings: [] };
}
