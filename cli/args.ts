/**
 * Command line → API request, as a pure function: no I/O, no client. `parseCommandLine(argv, env)`
 * returns what to call (a TopologyService method and its request message) or throws UsageError.
 * Flags speak ipvsadm where ipvsadm has a word for it (-t -u -f -s -p -M -o, -r -g -m -i -w -x -y).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { isIP } from "node:net";
import { create, type MessageShape } from "@bufbuild/protobuf";
import { FieldMaskSchema, DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import {
  FirewallMarkMatchSchema,
  FirewallMarkSchema,
  HostSchema,
  NetworkInterfaceSchema,
  PersistenceSchema,
  RealServerSchema,
  SiteSchema,
  SorryServerSchema,
  VirtualServiceSchema,
  type FirewallMarkMatch,
} from "../gen/lvsfleet/v1/topology_pb.js";
import {
  AddressFamily,
  DnsCheckSchema,
  ExecCheckSchema,
  FailureAction,
  ForwardMethod,
  HealthCheckSchema,
  HostRole,
  HttpCheckSchema,
  IpvsTimeoutsSchema,
  PortRangeSchema,
  Protocol,
  TcpCheckSchema,
  TunnelConfigSchema,
  TunnelType,
  type HealthCheck,
} from "../gen/lvsfleet/v1/types_pb.js";
import { expandHostRef, expandName, siteOf, splitName, type Kind } from "./names.js";
import { AUDIT_USAGE, HOST_USAGE, LIST_USAGE, MAIN_USAGE, MARK_USAGE, RS_USAGE, SITE_USAGE, UsageError, VS_USAGE } from "./usage.js";

type Methods = (typeof TopologyService)["method"];
export type MethodName = keyof Methods;
/** One RPC: the method and its request message. */
export type Call = { [K in MethodName]: { method: K; request: MessageShape<Methods[K]["input"]> } }[MethodName];

export interface GlobalOptions {
  addr: string;
  json: boolean;
  reason?: string;
}

export type Command =
  | { kind: "help"; text: string }
  /** A single RPC; list methods are paged through by the runner unless `limit` is set. */
  | { kind: "rpc"; call: Call; limit?: number }
  /** `lvsfleet list <site>`: virtual services of the site and their real servers. */
  | { kind: "ipvs-list"; site: string };

export interface CommandLine {
  global: GlobalOptions;
  command: Command;
}

export const DEFAULT_ADDR = "127.0.0.1:50051";
export const RESOURCES = ["site", "host", "vs", "rs", "mark"] as const;
const VERBS = ["create", "get", "list", "update", "delete"] as const;
type Verb = (typeof VERBS)[number];

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

const GLOBAL_OPTIONS = {
  addr: { type: "string" },
  json: { type: "boolean" },
  reason: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

const WRITE = { "validate-only": { type: "boolean" }, etag: { type: "string" } } satisfies Options;
const DELETE = { force: { type: "boolean" }, etag: { type: "string" } } satisfies Options;

const SITE_OPTIONS = {
  "display-name": { type: "string" },
  "tcp-timeout": { type: "string" },
  "tcpfin-timeout": { type: "string" },
  "udp-timeout": { type: "string" },
  label: { type: "string", multiple: true },
} satisfies Options;

const HOST_OPTIONS = {
  role: { type: "string", multiple: true },
  address: { type: "string", multiple: true },
  interface: { type: "string", multiple: true },
  label: { type: "string", multiple: true },
} satisfies Options;

const CHECK_OPTIONS = {
  check: { type: "string" },
  "no-check": { type: "boolean" },
  "check-path": { type: "string" },
  "check-status": { type: "string" },
  "check-host": { type: "string" },
  "check-body": { type: "string" },
  "check-insecure": { type: "boolean" },
  "check-query": { type: "string" },
  "check-query-type": { type: "string" },
  "check-command": { type: "string" },
  "check-port": { type: "string" },
  interval: { type: "string" },
  timeout: { type: "string" },
  rise: { type: "string" },
  fall: { type: "string" },
} satisfies Options;

const VS_OPTIONS = {
  tcp: { type: "string", short: "t" },
  udp: { type: "string", short: "u" },
  sctp: { type: "string" },
  fwmark: { type: "string", short: "f" },
  ipv6: { type: "boolean", short: "6" },
  scheduler: { type: "string", short: "s" },
  "sched-flags": { type: "string", short: "b" },
  persistent: { type: "string", short: "p" },
  netmask: { type: "string", short: "M" },
  "one-packet": { type: "boolean", short: "o" },
  "no-one-packet": { type: "boolean" },
  pe: { type: "string" },
  director: { type: "string", multiple: true },
  "on-failure": { type: "string" },
  sorry: { type: "string" },
  "sorry-forward": { type: "string" },
  ...CHECK_OPTIONS,
} satisfies Options;

const RS_OPTIONS = {
  address: { type: "string", short: "r" },
  port: { type: "string" },
  dr: { type: "boolean", short: "g" },
  nat: { type: "boolean", short: "m" },
  tun: { type: "boolean", short: "i" },
  // ipvsadm's long names for the same three.
  gatewaying: { type: "boolean" },
  masquerading: { type: "boolean" },
  ipip: { type: "boolean" },
  "tun-type": { type: "string" },
  "tun-port": { type: "string" },
  "tun-nocsum": { type: "boolean" },
  "tun-csum": { type: "boolean" },
  "tun-remcsum": { type: "boolean" },
  weight: { type: "string", short: "w" },
  "u-threshold": { type: "string", short: "x" },
  "l-threshold": { type: "string", short: "y" },
  host: { type: "string" },
} satisfies Options;

const MARK_OPTIONS = {
  mark: { type: "string" },
  match: { type: "string", multiple: true },
} satisfies Options;

const AUDIT_OPTIONS = {
  site: { type: "string" },
  resource: { type: "string" },
  limit: { type: "string" },
  "page-token": { type: "string" },
} satisfies Options;

const USAGE: Record<(typeof RESOURCES)[number], string> = { site: SITE_USAGE, host: HOST_USAGE, vs: VS_USAGE, rs: RS_USAGE, mark: MARK_USAGE };

// ---------------------------------------------------------------------------------------------
// Entry point

/**
 * Parses a full command line (process.argv.slice(2)). Global flags may appear anywhere; the first
 * one or two plain words pick the command (`vs create`, `list`, `audit`).
 */
export function parseCommandLine(argv: readonly string[], env: Record<string, string | undefined> = {}): CommandLine {
  const { words, rest } = splitWords(argv);
  const [first, second] = words;
  const help = (text: string): CommandLine => ({ global: globalsFrom({}, env), command: { kind: "help", text } });

  if (first === undefined || first === "help") {
    if (first === "help" && second !== undefined) return help(usageFor(second) ?? MAIN_USAGE);
    if (rest.length === 0 || rest.some((a) => a === "--help" || a === "-h") || first === "help") return help(MAIN_USAGE);
    const flag = rest.find((a) => a.startsWith("-") && !/^--(addr|reason|json)(=|$)/.test(a));
    throw new UsageError(flag ? `missing command before ${flag} (a command's own flags go after it: lvsfleet vs create … ${flag})` : "missing command", MAIN_USAGE);
  }

  if (first === "list" || first === "ls") {
    return withUsage(LIST_USAGE, () => {
      const { values, positionals } = parseFlags(rest, {}, LIST_USAGE);
      if (values.help) return help(LIST_USAGE);
      const site = exactlyOne(positionals, "a site id");
      return { global: globalsFrom(values, env), command: { kind: "ipvs-list", site: siteOf(expandName("site", site)) } };
    });
  }

  if (first === "audit") {
    return withUsage(AUDIT_USAGE, () => {
      const { values, positionals } = parseFlags(rest, AUDIT_OPTIONS, AUDIT_USAGE);
      if (values.help) return help(AUDIT_USAGE);
      if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
      const limit = values.limit !== undefined ? uint("--limit", values.limit as string, 1000) : 50;
      const request = create(TopologyService.method.listAuditEntries.input, {
        parent: values.site ? expandName("site", values.site as string) : "",
        resourceName: (values.resource as string | undefined) ?? "",
        pageSize: limit,
        pageToken: (values["page-token"] as string | undefined) ?? "",
      });
      return { global: globalsFrom(values, env), command: { kind: "rpc", call: { method: "listAuditEntries", request }, limit } };
    });
  }

  if (!isResource(first)) throw new UsageError(`unknown command ${JSON.stringify(first)}`, MAIN_USAGE);
  const usage = USAGE[first];
  if (second === undefined) {
    if (rest.some((a) => a === "--help" || a === "-h")) return help(usage);
    throw new UsageError(`missing verb: ${VERBS.join("|")}`, usage);
  }
  if (!(VERBS as readonly string[]).includes(second)) throw new UsageError(`unknown verb ${JSON.stringify(second)} for ${first}`, usage);
  return withUsage(usage, () => {
    const verb = second as Verb;
    const { values, positionals } = parseFlags(rest, optionsFor(first, verb), usage);
    if (values.help) return help(usage);
    const call = buildCall(first, verb, values, positionals);
    return { global: globalsFrom(values, env), command: { kind: "rpc", call } };
  });
}

function usageFor(word: string): string | undefined {
  if (isResource(word)) return USAGE[word];
  if (word === "list" || word === "ls") return LIST_USAGE;
  if (word === "audit") return AUDIT_USAGE;
  return undefined;
}

function isResource(w: string): w is (typeof RESOURCES)[number] {
  return (RESOURCES as readonly string[]).includes(w);
}

/** Runs `fn`, attaching `usage` to any UsageError it throws without one. */
function withUsage<T>(usage: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError && !err.usage) err.usage = usage;
    throw err;
  }
}

/** Pulls the leading command words out of argv, stepping over global flags (and their values). */
function splitWords(argv: readonly string[]): { words: string[]; rest: string[] } {
  const words: string[] = [];
  const rest: string[] = [];
  let i = 0;
  for (; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a === "--addr" || a === "--reason") {
      rest.push(a);
      if (i + 1 < argv.length) rest.push(argv[++i]!);
      continue;
    }
    if (a.startsWith("--addr=") || a.startsWith("--reason=") || a === "--json" || a === "--help" || a === "-h") {
      rest.push(a);
      continue;
    }
    if (a.startsWith("-")) break;
    words.push(a);
    // `list <site>` and `audit` take no verb: the next word is an argument.
    if (words.length === 1 && (a === "list" || a === "ls" || a === "audit")) {
      i++;
      break;
    }
  }
  return { words, rest: [...rest, ...argv.slice(i)] };
}

function parseFlags(args: string[], options: Options, usage: string): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (err) {
    // node:util's messages are good ("Unknown option '--tpc'"); keep them, drop the code prefix.
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""), usage);
  }
}

function globalsFrom(values: Values, env: Record<string, string | undefined>): GlobalOptions {
  const g: GlobalOptions = { addr: (values.addr as string | undefined) ?? (env.LVSFLEET_ADDR || DEFAULT_ADDR), json: values.json === true };
  if (typeof values.reason === "string") g.reason = values.reason;
  return g;
}

function optionsFor(resource: (typeof RESOURCES)[number], verb: Verb): Options {
  if (verb === "get") return {};
  if (verb === "list") return {};
  if (verb === "delete") return resource === "rs" ? { etag: DELETE.etag } : DELETE;
  const own = { site: SITE_OPTIONS, host: HOST_OPTIONS, vs: VS_OPTIONS, rs: RS_OPTIONS, mark: MARK_OPTIONS }[resource];
  return verb === "create" ? { ...own, "validate-only": WRITE["validate-only"] } : { ...own, ...WRITE };
}

function exactlyOne(positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${what}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}`);
  return positionals[0]!;
}

function atMostOne(positionals: string[]): string | undefined {
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}`);
  return positionals[0];
}

// ---------------------------------------------------------------------------------------------
// Per resource

const KIND_WORD: Record<Kind, string> = { site: "site", host: "host", vs: "virtual service", rs: "real server", mark: "firewall mark" };
const ID_EXAMPLE: Record<Kind, string> = { site: "<site>", host: "<site>/<host>", vs: "<site>/<vs>", rs: "<site>/<vs>/<rs>", mark: "<site>/<mark>" };

function buildCall(kind: Kind, verb: Verb, v: Values, positionals: string[]): Call {
  if (verb === "list") return listCall(kind, atMostOne(positionals));
  const name = expandName(kind, exactlyOne(positionals, `a ${KIND_WORD[kind]} id (${ID_EXAMPLE[kind]})`));
  const [parent, id] = splitName(name);
  const validateOnly = v["validate-only"] === true;
  const etag = entityTag((v.etag as string | undefined) ?? "");
  const force = v.force === true;
  switch (kind) {
    case "site": {
      if (verb === "get") return { method: "getSite", request: create(TopologyService.method.getSite.input, { name }) };
      if (verb === "delete") return { method: "deleteSite", request: create(TopologyService.method.deleteSite.input, { name, etag, force }) };
      const { site, paths } = siteFromFlags(v);
      if (verb === "create") return { method: "createSite", request: create(TopologyService.method.createSite.input, { siteId: id, site, validateOnly }) };
      site.name = name;
      site.etag = etag;
      return { method: "updateSite", request: create(TopologyService.method.updateSite.input, { site, updateMask: mask(paths), validateOnly }) };
    }
    case "host": {
      if (verb === "get") return { method: "getHost", request: create(TopologyService.method.getHost.input, { name }) };
      if (verb === "delete") return { method: "deleteHost", request: create(TopologyService.method.deleteHost.input, { name, etag, force }) };
      const { host, paths } = hostFromFlags(v);
      if (verb === "create") return { method: "createHost", request: create(TopologyService.method.createHost.input, { parent, hostId: id, host, validateOnly }) };
      host.name = name;
      host.etag = etag;
      return { method: "updateHost", request: create(TopologyService.method.updateHost.input, { host, updateMask: mask(paths), validateOnly }) };
    }
    case "vs": {
      if (verb === "get") return { method: "getVirtualService", request: create(TopologyService.method.getVirtualService.input, { name }) };
      if (verb === "delete")
        return { method: "deleteVirtualService", request: create(TopologyService.method.deleteVirtualService.input, { name, etag, force }) };
      const { virtualService, paths } = virtualServiceFromFlags(v, siteOf(name), verb === "create");
      if (verb === "create")
        return {
          method: "createVirtualService",
          request: create(TopologyService.method.createVirtualService.input, { parent, virtualServiceId: id, virtualService, validateOnly }),
        };
      virtualService.name = name;
      virtualService.etag = etag;
      return {
        method: "updateVirtualService",
        request: create(TopologyService.method.updateVirtualService.input, { virtualService, updateMask: mask(paths), validateOnly }),
      };
    }
    case "rs": {
      if (verb === "get") return { method: "getRealServer", request: create(TopologyService.method.getRealServer.input, { name }) };
      if (verb === "delete") return { method: "deleteRealServer", request: create(TopologyService.method.deleteRealServer.input, { name, etag }) };
      const { realServer, paths } = realServerFromFlags(v, siteOf(name), verb === "create");
      if (verb === "create")
        return {
          method: "createRealServer",
          request: create(TopologyService.method.createRealServer.input, { parent, realServerId: id, realServer, validateOnly }),
        };
      realServer.name = name;
      realServer.etag = etag;
      return { method: "updateRealServer", request: create(TopologyService.method.updateRealServer.input, { realServer, updateMask: mask(paths), validateOnly }) };
    }
    case "mark": {
      if (verb === "get") return { method: "getFirewallMark", request: create(TopologyService.method.getFirewallMark.input, { name }) };
      if (verb === "delete")
        return { method: "deleteFirewallMark", request: create(TopologyService.method.deleteFirewallMark.input, { name, etag, force }) };
      const { firewallMark, paths } = firewallMarkFromFlags(v, verb === "create");
      if (verb === "create")
        return {
          method: "createFirewallMark",
          request: create(TopologyService.method.createFirewallMark.input, { parent, firewallMarkId: id, firewallMark, validateOnly }),
        };
      firewallMark.name = name;
      firewallMark.etag = etag;
      return {
        method: "updateFirewallMark",
        request: create(TopologyService.method.updateFirewallMark.input, { firewallMark, updateMask: mask(paths), validateOnly }),
      };
    }
  }
}

function listCall(kind: Kind, parentArg: string | undefined): Call {
  const site = () => (parentArg === undefined ? "sites/-" : expandName("site", parentArg));
  switch (kind) {
    case "site":
      if (parentArg !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(parentArg)}`);
      return { method: "listSites", request: create(TopologyService.method.listSites.input, { pageSize: 1000 }) };
    case "host":
      return { method: "listHosts", request: create(TopologyService.method.listHosts.input, { parent: site(), pageSize: 1000 }) };
    case "vs":
      return { method: "listVirtualServices", request: create(TopologyService.method.listVirtualServices.input, { parent: site(), pageSize: 1000 }) };
    case "mark":
      return { method: "listFirewallMarks", request: create(TopologyService.method.listFirewallMarks.input, { parent: site(), pageSize: 1000 }) };
    case "rs":
      if (parentArg === undefined) throw new UsageError("missing a virtual service id (<site>/<vs>)");
      return {
        method: "listRealServers",
        request: create(TopologyService.method.listRealServers.input, { parent: expandName("vs", parentArg), pageSize: 1000 }),
      };
  }
}

function mask(paths: string[]) {
  if (paths.length === 0) throw new UsageError("nothing to update: give at least one field flag");
  return create(FieldMaskSchema, { paths });
}

// --- Site -------------------------------------------------------------------------------------

function siteFromFlags(v: Values) {
  const site = create(SiteSchema);
  const paths: string[] = [];
  if (v["display-name"] !== undefined) {
    site.displayName = v["display-name"] as string;
    paths.push("display_name");
  }
  const timeouts = create(IpvsTimeoutsSchema);
  const t: [flag: string, key: "tcpSeconds" | "tcpFinSeconds" | "udpSeconds", path: string][] = [
    ["tcp-timeout", "tcpSeconds", "ipvs_timeouts.tcp_seconds"],
    ["tcpfin-timeout", "tcpFinSeconds", "ipvs_timeouts.tcp_fin_seconds"],
    ["udp-timeout", "udpSeconds", "ipvs_timeouts.udp_seconds"],
  ];
  for (const [flag, key, path] of t) {
    if (v[flag] === undefined) continue;
    timeouts[key] = uint(`--${flag}`, v[flag] as string, 0xffffffff);
    paths.push(path);
  }
  if (paths.some((p) => p.startsWith("ipvs_timeouts."))) site.ipvsTimeouts = timeouts;
  if (v.label !== undefined) {
    site.labels = labels(v.label as string[]);
    paths.push("labels");
  }
  return { site, paths };
}

function labels(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new UsageError(`--label ${JSON.stringify(s)}: expected KEY=VALUE`);
    out[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return out;
}

// --- Host -------------------------------------------------------------------------------------

// Lookup tables keyed by command-line words have no prototype ("constructor" is not a role).
const ROLES: Record<string, HostRole> = Object.assign(Object.create(null), {
  director: HostRole.DIRECTOR,
  "real-server": HostRole.REAL_SERVER,
  real_server: HostRole.REAL_SERVER,
  realserver: HostRole.REAL_SERVER,
  rs: HostRole.REAL_SERVER,
});

function hostFromFlags(v: Values) {
  const host = create(HostSchema);
  const paths: string[] = [];
  if (v.role !== undefined) {
    host.roles = list(v.role as string[]).map((r) => {
      const role = ROLES[r.toLowerCase()];
      if (role === undefined) throw new UsageError(`--role ${JSON.stringify(r)}: expected director or real-server`);
      return role;
    });
    paths.push("roles");
  }
  if (v.address !== undefined) {
    host.addresses = list(v.address as string[]);
    paths.push("addresses");
  }
  if (v.interface !== undefined) {
    host.interfaces = (v.interface as string[]).map((spec) => {
      const eq = spec.indexOf("=");
      const name = eq < 0 ? spec : spec.slice(0, eq);
      if (name === "") throw new UsageError(`--interface ${JSON.stringify(spec)}: expected NAME=CIDR[,CIDR]`);
      return create(NetworkInterfaceSchema, { name, addresses: eq < 0 ? [] : list([spec.slice(eq + 1)]) });
    });
    paths.push("interfaces");
  }
  if (v.label !== undefined) {
    host.labels = labels(v.label as string[]);
    paths.push("labels");
  }
  return { host, paths };
}

/** Repeatable flags that also take comma-separated lists. */
function list(values: string[]): string[] {
  return values.flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s !== "");
}

// --- VirtualService ---------------------------------------------------------------------------

const PROTOCOL_FLAGS: [flag: "tcp" | "udp" | "sctp", Protocol][] = [
  ["tcp", Protocol.TCP],
  ["udp", Protocol.UDP],
  ["sctp", Protocol.SCTP],
];

const FORWARD: Record<string, ForwardMethod> = Object.assign(Object.create(null), {
  dr: ForwardMethod.DR,
  nat: ForwardMethod.NAT,
  tun: ForwardMethod.TUN,
  route: ForwardMethod.DR,
  masq: ForwardMethod.NAT,
  tunnel: ForwardMethod.TUN,
});

function virtualServiceFromFlags(v: Values, site: string, creating: boolean) {
  const vs = create(VirtualServiceSchema);
  const paths: string[] = [];
  const given = PROTOCOL_FLAGS.filter(([f]) => v[f] !== undefined);
  if (given.length + (v.fwmark !== undefined ? 1 : 0) > 1) throw new UsageError("give one of --tcp, --udp, --sctp or --fwmark");
  if (given.length === 1) {
    const [flag, protocol] = given[0]!;
    const ep = endpoint(`--${flag}`, v[flag] as string);
    vs.protocol = protocol;
    vs.address = ep.address;
    vs.port = ep.port;
    paths.push("protocol", "address", "port");
    if (v.ipv6 === true) throw new UsageError("--ipv6 is for --fwmark services; an address service's family follows its VIP");
  } else if (v.fwmark !== undefined) {
    vs.fwmark = uint("--fwmark", v.fwmark as string, 0xffffffff);
    vs.addressFamily = v.ipv6 === true ? AddressFamily.IPV6 : AddressFamily.IPV4;
    paths.push("fwmark", "address_family");
    if (!creating) paths.push("protocol", "address", "port"); // clears the VIP when switching kinds
  } else if (creating) {
    throw new UsageError("give the service: --tcp VIP:PORT, --udp VIP:PORT, --sctp VIP:PORT or --fwmark MARK");
  } else if (v.ipv6 === true) {
    vs.addressFamily = AddressFamily.IPV6;
    paths.push("address_family");
  }
  if (given.length === 1 && !creating) paths.push("fwmark"); // switching from fwmark to an address clears the mark

  if (v.scheduler !== undefined) {
    vs.scheduler = v.scheduler as string;
    paths.push("scheduler");
  }
  if (v["sched-flags"] !== undefined) {
    vs.schedulerFlags = list([v["sched-flags"] as string]);
    paths.push("scheduler_flags");
  }
  if (v.persistent !== undefined || v.netmask !== undefined) {
    const p = create(PersistenceSchema);
    if (v.persistent !== undefined) {
      p.timeoutSeconds = uint("--persistent", v.persistent as string, 0xffffffff);
      paths.push("persistence.timeout_seconds");
    }
    if (v.netmask !== undefined) {
      p.prefixLength = prefixLength(v.netmask as string);
      paths.push("persistence.prefix_length");
    }
    vs.persistence = p;
  }
  if (v["one-packet"] === true && v["no-one-packet"] === true) throw new UsageError("--one-packet and --no-one-packet contradict each other");
  if (v["one-packet"] === true || v["no-one-packet"] === true) {
    vs.onePacket = v["one-packet"] === true;
    paths.push("one_packet");
  }
  if (v.pe !== undefined) {
    vs.persistenceEngine = v.pe as string;
    paths.push("persistence_engine");
  }
  if (v.director !== undefined) {
    vs.directors = list(v.director as string[]).map((d) => expandHostRef(site, d));
    paths.push("directors");
  }
  if (v["on-failure"] !== undefined) {
    const a = (v["on-failure"] as string).toLowerCase();
    if (a !== "quiesce" && a !== "remove") throw new UsageError(`--on-failure ${JSON.stringify(a)}: expected quiesce or remove`);
    vs.failureAction = a === "quiesce" ? FailureAction.QUIESCE : FailureAction.REMOVE;
    paths.push("failure_action");
  }
  if (v.sorry !== undefined) {
    const ep = endpoint("--sorry", v.sorry as string);
    vs.sorryServer = create(SorryServerSchema, { address: ep.address, port: ep.port, forwardMethod: forwardName("--sorry-forward", v["sorry-forward"] as string | undefined) });
    paths.push("sorry_server");
  } else if (v["sorry-forward"] !== undefined) {
    throw new UsageError("--sorry-forward needs --sorry ADDR:PORT");
  }
  const check = healthCheck(v);
  if (check !== undefined) {
    if (check !== null) vs.healthCheck = check;
    paths.push("health_check");
  }
  return { virtualService: vs, paths };
}

function forwardName(flag: string, s: string | undefined): ForwardMethod {
  if (s === undefined) return ForwardMethod.UNSPECIFIED;
  const f = FORWARD[s.toLowerCase()];
  if (f === undefined) throw new UsageError(`${flag} ${JSON.stringify(s)}: expected dr, nat or tun`);
  return f;
}

/** The health check from the --check* flags: undefined when none given, null for --no-check. */
function healthCheck(v: Values): HealthCheck | null | undefined {
  const flags = Object.keys(CHECK_OPTIONS).filter((k) => k !== "check" && k !== "no-check" && v[k] !== undefined);
  if (v["no-check"] === true) {
    if (v.check !== undefined || flags.length > 0) throw new UsageError("--no-check takes no other --check flags");
    return null;
  }
  if (v.check === undefined) {
    if (flags.length > 0) throw new UsageError(`--${flags[0]} needs --check tcp|http|https|dns|exec`);
    return undefined;
  }
  const kind = (v.check as string).toLowerCase();
  const hc = create(HealthCheckSchema);
  const only = (allowed: string[]) => {
    const bad = flags.find((f) => f.startsWith("check-") && f !== "check-port" && !allowed.includes(f));
    if (bad) throw new UsageError(`--${bad} does not apply to --check ${kind}`);
  };
  switch (kind) {
    case "tcp":
      only([]);
      hc.kind = { case: "tcp", value: create(TcpCheckSchema) };
      break;
    case "http":
    case "https":
      only(["check-path", "check-status", "check-host", "check-body", "check-insecure"]);
      hc.kind = {
        case: "http",
        value: create(HttpCheckSchema, {
          path: (v["check-path"] as string | undefined) ?? "",
          expectedStatus: v["check-status"] !== undefined ? uint("--check-status", v["check-status"] as string, 999) : 0,
          hostHeader: (v["check-host"] as string | undefined) ?? "",
          bodyRegex: (v["check-body"] as string | undefined) ?? "",
          tls: kind === "https",
          tlsSkipVerify: v["check-insecure"] === true,
        }),
      };
      break;
    case "dns":
      only(["check-query", "check-query-type"]);
      hc.kind = {
        case: "dns",
        value: create(DnsCheckSchema, { queryName: (v["check-query"] as string | undefined) ?? "", queryType: (v["check-query-type"] as string | undefined) ?? "" }),
      };
      break;
    case "exec": {
      only(["check-command"]);
      const cmd = (v["check-command"] as string | undefined)?.trim();
      if (!cmd) throw new UsageError("--check exec needs --check-command CMD");
      hc.kind = { case: "exec", value: create(ExecCheckSchema, { argv: cmd.split(/\s+/) }) };
      break;
    }
    default:
      throw new UsageError(`--check ${JSON.stringify(v.check)}: expected tcp, http, https, dns or exec`);
  }
  if (v.interval !== undefined) hc.interval = duration("--interval", v.interval as string);
  if (v.timeout !== undefined) hc.timeout = duration("--timeout", v.timeout as string);
  if (v.rise !== undefined) hc.rise = uint("--rise", v.rise as string, 1000);
  if (v.fall !== undefined) hc.fall = uint("--fall", v.fall as string, 1000);
  if (v["check-port"] !== undefined) hc.port = port("--check-port", v["check-port"] as string);
  return hc;
}

// --- RealServer -------------------------------------------------------------------------------

const TUNNEL_TYPES: Record<string, TunnelType> = Object.assign(Object.create(null), { ipip: TunnelType.IPIP, gue: TunnelType.GUE, gre: TunnelType.GRE });

function realServerFromFlags(v: Values, site: string, creating: boolean) {
  const rs = create(RealServerSchema);
  const paths: string[] = [];
  if (v.address !== undefined) {
    const raw = v.address as string;
    // `--address 198.51.100.11:8080` (or [v6]:port) sets the port too, like ipvsadm -r.
    const ep = isIP(raw) !== 0 ? { address: raw, port: undefined } : endpoint("--address", raw);
    rs.address = ep.address;
    paths.push("address");
    if (ep.port !== undefined && ep.port !== 0) {
      if (v.port !== undefined) throw new UsageError("give the port either in --address ADDR:PORT or with --port, not both");
      rs.port = ep.port;
      paths.push("port");
    }
  } else if (creating) {
    throw new UsageError("missing --address ADDR");
  }
  if (v.port !== undefined) {
    rs.port = port("--port", v.port as string);
    paths.push("port");
  }
  const methods = [
    v.dr === true || v.gatewaying === true ? ForwardMethod.DR : undefined,
    v.nat === true || v.masquerading === true ? ForwardMethod.NAT : undefined,
    v.tun === true || v.ipip === true ? ForwardMethod.TUN : undefined,
  ].filter((m) => m !== undefined);
  if (methods.length > 1) throw new UsageError("give one of --dr (-g), --nat (-m) or --tun (-i)");
  if (methods.length === 1) {
    rs.forwardMethod = methods[0]!;
    paths.push("forward_method");
  }
  const tunFlags = ["tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum"].filter((f) => v[f] !== undefined);
  if (tunFlags.length > 0) {
    if (rs.forwardMethod !== ForwardMethod.TUN && (creating || methods.length === 1))
      throw new UsageError(`--${tunFlags[0]} needs --tun (-i)`);
    const t = create(TunnelConfigSchema);
    if (v["tun-type"] !== undefined) {
      const type = TUNNEL_TYPES[(v["tun-type"] as string).toLowerCase()];
      if (type === undefined) throw new UsageError(`--tun-type ${JSON.stringify(v["tun-type"])}: expected ipip, gue or gre`);
      t.type = type;
    }
    if (v["tun-port"] !== undefined) t.port = port("--tun-port", v["tun-port"] as string);
    t.noChecksum = v["tun-nocsum"] === true;
    t.checksum = v["tun-csum"] === true;
    t.remoteChecksum = v["tun-remcsum"] === true;
    rs.tunnel = t;
    paths.push("tunnel");
  }
  if (v.weight !== undefined) {
    rs.weight = uint("--weight", v.weight as string, 65535);
    paths.push("weight");
  }
  if (v["u-threshold"] !== undefined) {
    rs.upperThreshold = uint("-x/--u-threshold", v["u-threshold"] as string, 0xffffffff);
    paths.push("upper_threshold");
  }
  if (v["l-threshold"] !== undefined) {
    rs.lowerThreshold = uint("-y/--l-threshold", v["l-threshold"] as string, 0xffffffff);
    paths.push("lower_threshold");
  }
  if (v.host !== undefined) {
    rs.host = (v.host as string) === "" ? "" : expandHostRef(site, v.host as string);
    paths.push("host");
  }
  return { realServer: rs, paths };
}

// --- FirewallMark -----------------------------------------------------------------------------

function firewallMarkFromFlags(v: Values, creating: boolean) {
  const fm = create(FirewallMarkSchema);
  const paths: string[] = [];
  if (v.mark !== undefined) {
    fm.mark = uint("--mark", v.mark as string, 0xffffffff);
    paths.push("mark");
  } else if (creating) {
    throw new UsageError("missing --mark N");
  }
  if (v.match !== undefined) {
    fm.matches = (v.match as string[]).map(parseMatch);
    paths.push("matches");
  }
  return { firewallMark: fm, paths };
}

const MATCH_PROTOCOLS: Record<string, Protocol> = Object.assign(Object.create(null), { tcp: Protocol.TCP, udp: Protocol.UDP, sctp: Protocol.SCTP });

/**
 * `[PROTO:]DESTS[:PORTS]`, e.g. `tcp:192.0.2.10:80,443`, `tcp:192.0.2.0/24,192.0.2.99:10000-20000`,
 * `udp:[2001:db8::1]:53`, `192.0.2.10` (any protocol, any port).
 */
export function parseMatch(spec: string): FirewallMarkMatch {
  const bad = (why: string) => new UsageError(`--match ${JSON.stringify(spec)}: ${why} (expected [PROTO:]DESTS[:PORTS], e.g. tcp:192.0.2.10:80,443)`);
  let rest = spec.trim();
  let protocol = Protocol.UNSPECIFIED;
  const colon = rest.indexOf(":");
  const head = colon < 0 ? "" : rest.slice(0, colon).toLowerCase();
  if (head in MATCH_PROTOCOLS) {
    protocol = MATCH_PROTOCOLS[head]!;
    rest = rest.slice(colon + 1);
  }
  // Split DESTS from PORTS at the last ':' outside brackets; an unbracketed IPv6 list (several ':'
  // and no brackets) has no ports.
  let dests = rest;
  let ports = "";
  let depth = 0;
  let split = -1;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === ":" && depth === 0) split = i;
  }
  const unbracketedV6 = !rest.includes("[") && (rest.match(/:/g)?.length ?? 0) > 1;
  if (split >= 0 && !unbracketedV6) {
    dests = rest.slice(0, split);
    ports = rest.slice(split + 1);
  }
  const destinations = dests
    .split(",")
    .map((d) => d.trim().replace(/^\[(.*)\]$/, "$1"))
    .filter((d) => d !== "");
  if (destinations.length === 0) throw bad("no destination");
  const ranges = ports
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "")
    .map((p) => {
      const m = /^(\d+)(?:-(\d+))?$/.exec(p);
      if (!m) throw bad(`${JSON.stringify(p)} is not a port or port range`);
      const start = Number(m[1]);
      const end = m[2] !== undefined ? Number(m[2]) : start;
      return create(PortRangeSchema, { start, end });
    });
  return create(FirewallMarkMatchSchema, { destinations, protocol, ports: ranges });
}

// ---------------------------------------------------------------------------------------------
// Values

/**
 * Etags are HTTP entity tags (RFC 9110 §8.8.3), quoted: `"7"`. Shells eat the quotes, so a bare
 * `--etag 7` is taken as `"7"`; quoted and weak (`W/"7"`) tags pass through unchanged.
 */
export function entityTag(s: string): string {
  const v = s.trim();
  if (v === "" || v.startsWith('"') || v.startsWith('W/"')) return v;
  return `"${v}"`;
}

/** A non-negative integer flag value, at most `max`. */
export function uint(flag: string, s: string, max: number): number {
  if (!/^\d+$/.test(s.trim())) throw new UsageError(`${flag} ${JSON.stringify(s)}: expected a non-negative integer`);
  const n = Number(s.trim());
  if (n > max) throw new UsageError(`${flag} ${s}: at most ${max}`);
  return n;
}

function port(flag: string, s: string): number {
  return uint(flag, s, 65535);
}

/**
 * `192.0.2.10:80`, `[2001:db8::1]:53`, `192.0.2.10` (port 0), `2001:db8::1` (port 0). The address
 * itself is checked by the server (it names the field); here only the shape is split.
 */
export function endpoint(flag: string, s: string): { address: string; port: number } {
  const v = s.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  if (bracket) return { address: bracket[1]!, port: bracket[2] !== undefined ? port(flag, bracket[2]) : 0 };
  if (isIP(v) === 6) return { address: v, port: 0 };
  const colon = v.lastIndexOf(":");
  if (colon < 0) return { address: v, port: 0 };
  if (v.indexOf(":") !== colon) throw new UsageError(`${flag} ${JSON.stringify(s)}: write IPv6 with a port as [ADDR]:PORT`);
  return { address: v.slice(0, colon), port: port(flag, v.slice(colon + 1)) };
}

/** `-M 24`, `-M 255.255.255.0` (IPv4 dotted mask, as ipvsadm takes it) or `-M 64` for IPv6. */
export function prefixLength(s: string): number {
  const v = s.trim();
  if (/^\d+$/.test(v)) return uint("--netmask", v, 128);
  if (isIP(v) === 4) {
    const n = v.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
    const bits = n.toString(2).padStart(32, "0");
    if (!/^1*0*$/.test(bits)) throw new UsageError(`--netmask ${v}: not a contiguous netmask`);
    return bits.indexOf("0") < 0 ? 32 : bits.indexOf("0");
  }
  throw new UsageError(`--netmask ${JSON.stringify(s)}: expected a prefix length or a dotted IPv4 netmask`);
}

const UNIT_NANOS: Record<string, bigint> = { ns: 1n, us: 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/** Go-style durations: `5s`, `500ms`, `1m30s`, `1.5s`; a bare number means seconds. */
export function duration(flag: string, s: string): Duration {
  const v = s.trim();
  let nanos = 0n;
  if (/^\d+$/.test(v)) nanos = BigInt(v) * UNIT_NANOS.s!;
  else {
    const re = /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/gy;
    let m: RegExpExecArray | null;
    let pos = 0;
    while ((m = re.exec(v)) !== null) {
      const [int, frac = ""] = m[1]!.split(".");
      const unit = UNIT_NANOS[m[2]!]!;
      nanos += BigInt(int!) * unit + (frac ? (BigInt(frac) * unit) / 10n ** BigInt(frac.length) : 0n);
      pos = re.lastIndex;
    }
    if (pos !== v.length || v === "") throw new UsageError(`${flag} ${JSON.stringify(s)}: expected a duration like 5s, 500ms or 1m30s`);
  }
  return create(DurationSchema, { seconds: nanos / 1_000_000_000n, nanos: Number(nanos % 1_000_000_000n) });
}
