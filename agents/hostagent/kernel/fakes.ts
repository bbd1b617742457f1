// In-memory fakes of the kernel interfaces in types.ts, for the reconciler's unit tests and
// benchmarks with thousands of simulated agents. They behave like the real adapters where a
// reconciler can tell the difference: the same typed errors (NetlinkError EEXIST / ENODEV /
// EADDRNOTAVAIL / ESRCH / EOPNOTSUPP, SysctlNotFoundError, FwmarkInputError), the same ownership
// marking, canonical fwmark read-back, a link's addresses, routes and conf sysctls vanishing with it.
// Every mutating call is appended to `calls` so tests can assert "minimal changes".
// The real adapters are tested against the kernel in test/kernel/; these fakes in fakes.test.ts.

import { constants as os } from "node:os";
import { NetlinkError, NetlinkEncodeError } from "../netlink/errors.js";
import { SysctlError, SysctlNotFoundError } from "./errors.js";
import { canonicalAddress, ipFamily, parseCidr } from "./ipaddr.js";
import { canonicalFwmarkRules, validateFwmarkRules } from "./nftables.js";
import { isValidIfname, sysctlKeyToString, SYSCTL_RANGES } from "./sysctl.js";
import type {
  AddressManager,
  FouManager,
  FouPortInfo,
  FwmarkManager,
  FwmarkRule,
  FwmarkState,
  InterfaceAddress,
  IpFamily,
  IpipTunnelSpec,
  LinkInfo,
  LinkManager,
  RouteInfo,
  RouteManager,
  RouteSpec,
  SysctlKey,
  SysctlManager,
  TunnelFallbackKind,
  VipSpec,
} from "./types.js";
import { TUNNEL_FALLBACK_DEVICES } from "./types.js";

const LVSFLEET_PROTO = 76;
const IFF_UP = 1;
const IFF_LOOPBACK = 8;
const errno = (name: keyof typeof os.errno): number => os.errno[name];

/** The shared in-memory "kernel" of one host: links, addresses, routes, sysctls, nft table. */
export class FakeKernel {
  readonly calls: string[] = [];
  readonly links = new Map<string, LinkInfo>();
  readonly addresses: InterfaceAddress[] = [];
  readonly routes: RouteInfo[] = [];
  readonly sysctls = new Map<string, string>();
  fwmarkTable: FwmarkRule[] | undefined;
  /** Whether createIpip works (the real kernel needs CONFIG_NET_IPIP). */
  ipipSupported = true;
  /** Tunnel kinds other than ipip whose fallback device can be created (all, like a stock kernel). */
  tunnelKindsSupported = new Set<TunnelFallbackKind>(["ip6tnl", "sit", "gre", "ip6gre"]);
  /** Whether net.ipv4.vs.* exist (ip_vs loaded). */
  ipvsLoaded = false;
  /** fou ports by "<family> <port>" (the kernel keys them so). */
  readonly fou = new Map<string, FouPortInfo>();
  /** Whether the kernel has fou (CONFIG_NET_FOU); false: opening it fails with ENOENT. */
  fouSupported = true;
  /** UDP ports ("<family> <port>") bound by some other socket: FOU_CMD_ADD fails with EADDRINUSE. */
  readonly udpHeld = new Set<string>();
  private nextIndex = 1;

  constructor() {
    this.addLink("lo", undefined, IFF_LOOPBACK | IFF_UP);
    this.addresses.push(
      { ifindex: 1, ifname: "lo", family: 4, address: "127.0.0.1", prefixLen: 8, label: "lo", proto: 0, flags: 0x80, scope: 254, owned: false },
      { ifindex: 1, ifname: "lo", family: 6, address: "::1", prefixLen: 128, proto: 1, flags: 0x80, scope: 254, owned: false },
    );
    this.sysctls.set("net.ipv4.ip_forward", "0");
    for (const c of ["all", "default"]) this.addConfSysctls(c);
  }

  /** Adds a link as if something else created it (a NIC, a veth). */
  addLink(name: string, kind?: string, flags = 0): LinkInfo {
    const link: LinkInfo = { index: this.nextIndex++, name, flags, up: (flags & IFF_UP) !== 0, mtu: name === "lo" ? 65536 : 1500, operState: "unknown" };
    if (kind) link.kind = kind;
    this.links.set(name, link);
    this.addConfSysctls(name);
    return link;
  }

  private addConfSysctls(ifname: string): void {
    for (const k of ["arp_ignore", "arp_announce", "rp_filter", "accept_local", "send_redirects", "forwarding"]) this.sysctls.set(`net.ipv4.conf.${ifname.replaceAll(".", "/")}.${k}`, "0");
    this.sysctls.set(`net.ipv6.conf.${ifname.replaceAll(".", "/")}.forwarding`, "0");
  }

  removeLink(name: string): void {
    const link = this.links.get(name);
    if (!link) return;
    this.links.delete(name);
    for (let i = this.addresses.length - 1; i >= 0; i--) if (this.addresses[i].ifindex === link.index) this.addresses.splice(i, 1);
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i].ifindex === link.index) this.routes.splice(i, 1);
    const prefix = [`net.ipv4.conf.${name.replaceAll(".", "/")}.`, `net.ipv6.conf.${name.replaceAll(".", "/")}.`];
    for (const k of [...this.sysctls.keys()]) if (prefix.some((p) => k.startsWith(p))) this.sysctls.delete(k);
  }

  link(name: string, op: string): LinkInfo {
    const l = this.links.get(name);
    if (!l) throw new NetlinkError(op, errno("ENODEV"));
    return l;
  }
}

export class FakeLinkManager implements LinkManager {
  constructor(readonly k: FakeKernel) {}

  async list(): Promise<LinkInfo[]> {
    return [...this.k.links.values()].map((l) => structuredClone(l));
  }

  async get(name: string): Promise<LinkInfo | undefined> {
    const l = this.k.links.get(name);
    return l && structuredClone(l);
  }

  async createIpip(spec: IpipTunnelSpec): Promise<LinkInfo> {
    const op = `RTM_NEWLINK ipip ${spec.name}`;
    if (!isValidIfname(spec.name)) throw new NetlinkEncodeError(`name: invalid interface name ${JSON.stringify(spec.name)}`);
    for (const [f, v] of [["local", spec.local], ["remote", spec.remote]] as const) {
      if (v !== undefined && ipFamily(v) !== 4) throw new NetlinkEncodeError(`${f}: ipip endpoints are IPv4, got ${JSON.stringify(v)}`);
    }
    this.k.calls.push(`link add ipip ${spec.name}`);
    if (!this.k.ipipSupported) throw new NetlinkError(op, errno("EOPNOTSUPP"));
    if (this.k.links.has(spec.name)) throw new NetlinkError(op, errno("EEXIST"));
    // The kernel keys ipip tunnels by (local, remote): a second tunnel with the same pair is EEXIST.
    const key = `${spec.local ?? "0.0.0.0"} ${spec.remote ?? "0.0.0.0"}`;
    if ([...this.k.links.values()].some((x) => x.tunnel && `${x.tunnel.local} ${x.tunnel.remote}` === key)) throw new NetlinkError(op, errno("EEXIST"));
    const l = this.k.addLink(spec.name, "ipip");
    l.mtu = spec.mtu ?? 1480;
    l.tunnel = { local: spec.local ?? "0.0.0.0", remote: spec.remote ?? "0.0.0.0", ttl: spec.ttl ?? 0 };
    return structuredClone(l);
  }

  async ensureIpipFallback(): Promise<LinkInfo> {
    return this.ensureTunnelFallback("ipip");
  }

  async ensureTunnelFallback(kind: TunnelFallbackKind): Promise<LinkInfo> {
    const name = TUNNEL_FALLBACK_DEVICES[kind];
    const l = this.k.links.get(name);
    if (l) return structuredClone(l);
    this.k.calls.push(`link add ${kind} ${name}`);
    const supported = kind === "ipip" ? this.k.ipipSupported : this.k.tunnelKindsSupported.has(kind);
    if (!supported) throw new NetlinkError(`RTM_NEWLINK ${kind} ${name}`, errno("EOPNOTSUPP"));
    const t = this.k.addLink(name, kind);
    if (kind === "ipip") {
      t.mtu = 1480;
      t.tunnel = { local: "0.0.0.0", remote: "0.0.0.0", ttl: 0 };
    }
    return structuredClone(t);
  }

  async setUp(name: string, up: boolean): Promise<void> {
    const l = this.k.link(name, `RTM_GETLINK ${name}`);
    this.k.calls.push(`link set ${name} ${up ? "up" : "down"}`);
    l.up = up;
    l.flags = up ? l.flags | IFF_UP : l.flags & ~IFF_UP;
  }

  async delete(name: string): Promise<void> {
    this.k.link(name, `RTM_GETLINK ${name}`);
    this.k.calls.push(`link del ${name}`);
    this.k.removeLink(name);
  }
}

export class FakeAddressManager implements AddressManager {
  constructor(readonly k: FakeKernel) {}

  async list(filter: { ifname?: string; family?: IpFamily; ownedOnly?: boolean } = {}): Promise<InterfaceAddress[]> {
    return this.k.addresses
      .filter((a) => (!filter.ifname || a.ifname === filter.ifname) && (!filter.family || a.family === filter.family) && (!filter.ownedOnly || a.owned))
      .map((a) => ({ ...a })); // flat: a copy is a deep copy (structuredClone cost 10,000-VIP resyncs ~100 ms)
  }

  private resolve(vip: VipSpec) {
    const family = ipFamily(vip.address);
    if (!family) throw new NetlinkEncodeError(`address: not an IP address: ${JSON.stringify(vip.address)}`);
    return { family, address: canonicalAddress(vip.address), prefixLen: vip.prefixLen ?? (family === 4 ? 32 : 128) };
  }

  async add(vip: VipSpec): Promise<void> {
    const { family, address, prefixLen } = this.resolve(vip);
    const link = this.k.link(vip.ifname, `RTM_GETLINK ${vip.ifname}`);
    this.k.calls.push(`addr add ${address}/${prefixLen} dev ${vip.ifname}`);
    if (this.k.addresses.some((a) => a.ifindex === link.index && a.address === address)) {
      throw new NetlinkError(`RTM_NEWADDR ${address}/${prefixLen} dev ${vip.ifname}`, errno("EEXIST"));
    }
    const label = vip.ifname + ":lvsf";
    const a: InterfaceAddress = { ifindex: link.index, ifname: vip.ifname, family, address, prefixLen, proto: LVSFLEET_PROTO, flags: family === 6 ? 0x82 : 0x80, scope: 0, owned: true };
    if (family === 4) a.label = Buffer.byteLength(label) < 16 ? label : vip.ifname;
    this.k.addresses.push(a);
  }

  async remove(vip: VipSpec): Promise<void> {
    const { address, prefixLen } = this.resolve(vip);
    const link = this.k.link(vip.ifname, `RTM_GETLINK ${vip.ifname}`);
    this.k.calls.push(`addr del ${address}/${prefixLen} dev ${vip.ifname}`);
    const i = this.k.addresses.findIndex((a) => a.ifindex === link.index && a.address === address && a.prefixLen === prefixLen);
    if (i < 0) throw new NetlinkError(`RTM_DELADDR ${address}/${prefixLen} dev ${vip.ifname}`, errno("EADDRNOTAVAIL"));
    this.k.addresses.splice(i, 1);
  }
}

export class FakeRouteManager implements RouteManager {
  constructor(readonly k: FakeKernel) {}

  async list(filter: { family?: IpFamily; table?: number; ownedOnly?: boolean } = {}): Promise<RouteInfo[]> {
    return this.k.routes
      .filter((r) => (!filter.family || r.family === filter.family) && (filter.table === undefined || r.table === filter.table) && (!filter.ownedOnly || r.owned))
      .map((r) => structuredClone(r));
  }

  private resolve(route: RouteSpec): RouteInfo {
    let dst;
    try {
      dst = parseCidr(route.destination);
    } catch (e) {
      throw new NetlinkEncodeError(`destination: ${(e as Error).message}`);
    }
    if (!route.gateway && !route.ifname) throw new NetlinkEncodeError("route needs a gateway or an ifname");
    const r: RouteInfo = { family: dst.family, destination: `${dst.address}/${dst.prefixLen}`, table: route.table ?? 254, protocol: LVSFLEET_PROTO, scope: route.gateway ? 0 : 253, type: 1, owned: true };
    if (route.gateway) r.gateway = canonicalAddress(route.gateway);
    if (route.ifname) {
      const l = this.k.link(route.ifname, `RTM_GETLINK ${route.ifname}`);
      r.ifname = l.name;
      r.ifindex = l.index;
    }
    if (route.metric !== undefined) r.metric = route.metric;
    return r;
  }

  private same(a: RouteInfo, b: RouteInfo): boolean {
    return a.destination === b.destination && a.table === b.table && (a.metric ?? 0) === (b.metric ?? 0);
  }

  async add(route: RouteSpec): Promise<void> {
    const r = this.resolve(route);
    this.k.calls.push(`route add ${r.destination}`);
    if (this.k.routes.some((x) => this.same(x, r))) throw new NetlinkError(`RTM_NEWROUTE ${r.destination}`, errno("EEXIST"));
    this.k.routes.push(r);
  }

  async remove(route: RouteSpec): Promise<void> {
    const r = this.resolve(route);
    this.k.calls.push(`route del ${r.destination}`);
    // Like fib_table_delete: the protocol must match too, so foreign routes are never removed.
    const i = this.k.routes.findIndex(
      (x) => this.same(x, r) && x.protocol === r.protocol && (!r.gateway || x.gateway === r.gateway) && (r.ifindex === undefined || x.ifindex === r.ifindex),
    );
    if (i < 0) throw new NetlinkError(`RTM_DELROUTE ${r.destination}`, errno("ESRCH"));
    this.k.routes.splice(i, 1);
  }
}

export class FakeFwmarkManager implements FwmarkManager {
  constructor(readonly k: FakeKernel) {}

  async apply(rules: FwmarkRule[]): Promise<void> {
    validateFwmarkRules(rules);
    this.k.calls.push(`nft apply ${rules.length} marks`);
    this.k.fwmarkTable = canonicalFwmarkRules(rules);
  }

  async read(): Promise<FwmarkState | undefined> {
    return this.k.fwmarkTable && { rules: structuredClone(this.k.fwmarkTable), problems: [] };
  }

  async clear(): Promise<void> {
    this.k.calls.push("nft clear");
    this.k.fwmarkTable = undefined;
  }
}

/** FouManager over FakeKernel.fou, with the kernel's errors (EADDRINUSE, EEXIST, ENOENT). */
export class FakeFouManager implements FouManager {
  constructor(private readonly k: FakeKernel) {}

  /** What LinuxBackend's `fou` option wants: fails like FouClient.open when the kernel has no fou. */
  static opener(k: FakeKernel): () => Promise<FouManager> {
    return async () => {
      if (!k.fouSupported) throw new NetlinkError("CTRL_CMD_GETFAMILY fou", errno("ENOENT"), { message: "no fou in this kernel" });
      return new FakeFouManager(k);
    };
  }

  async list(): Promise<FouPortInfo[]> {
    return [...this.k.fou.values()].map((p) => ({ ...p }));
  }

  async ensureGue(port: number, family: IpFamily): Promise<void> {
    const key = `${family} ${port}`;
    const op = `FOU_CMD_ADD gue ${port}`;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new NetlinkEncodeError(`fou port: ${port} is not 1..65535`);
    const have = this.k.fou.get(key);
    if (have?.encap === "gue") return;
    if (have) throw new NetlinkError(op, errno("EEXIST"), { message: `fou port ${port} exists as direct ipproto ${have.ipproto}, not gue` });
    if (this.k.udpHeld.has(key)) throw new NetlinkError(op, errno("EADDRINUSE"));
    this.k.calls.push(`fou add port ${port} gue${family === 6 ? " -6" : ""}`);
    this.k.fou.set(key, { port, family, encap: "gue" });
  }

  async remove(port: number, family: IpFamily): Promise<void> {
    const key = `${family} ${port}`;
    if (!this.k.fou.has(key)) throw new NetlinkError(`FOU_CMD_DEL ${port}`, errno("ENOENT"));
    this.k.calls.push(`fou del port ${port}${family === 6 ? " -6" : ""}`);
    this.k.fou.delete(key);
  }

  close(): void {}
}

export class FakeSysctlManager implements SysctlManager {
  constructor(readonly k: FakeKernel) {}

  private lookup(key: SysctlKey): string {
    const k = sysctlKeyToString(key);
    if (key[0] === "net" && key[1] === "ipv4" && key[2] === "vs") {
      if (!this.k.ipvsLoaded) throw new SysctlNotFoundError(k, "ip_vs is not loaded in this network namespace");
      if (!this.k.sysctls.has(k)) this.k.sysctls.set(k, "0");
    }
    if (!this.k.sysctls.has(k)) throw new SysctlNotFoundError(k, key[2] === "conf" ? `no interface ${key[3]}` : "not provided by this kernel");
    return k;
  }

  async read(key: SysctlKey): Promise<string> {
    return this.k.sysctls.get(this.lookup(key))!;
  }

  async write(key: SysctlKey, value: string | number): Promise<void> {
    const k = this.lookup(key);
    const text = String(value).trim();
    const range = SYSCTL_RANGES[key[key.length - 1]];
    if (range) {
      const n = Number(text);
      if (!Number.isInteger(n) || n < range[0] || n > range[1]) throw new SysctlError("invalid-value", k, `${k} must be an integer in ${range[0]}..${range[1]}, got ${JSON.stringify(text)}`);
    } else if (!/^-?\d+(\s+-?\d+)*$/.test(text)) {
      throw new SysctlError("invalid-value", k, `kernel rejected ${JSON.stringify(text)} for ${k}`, "EINVAL");
    }
    this.k.calls.push(`sysctl ${k}=${text}`);
    this.k.sysctls.set(k, text.split(/\s+/).join("\t"));
  }
}

/** All fakes over one FakeKernel. */
export function createFakeKernel(): {
  kernel: FakeKernel;
  links: FakeLinkManager;
  addresses: FakeAddressManager;
  routes: FakeRouteManager;
  fwmarks: FakeFwmarkManager;
  sysctls: FakeSysctlManager;
} {
  const kernel = new FakeKernel();
  return {
    kernel,
    links: new FakeLinkManager(kernel),
    addresses: new FakeAddressManager(kernel),
    routes: new FakeRouteManager(kernel),
    fwmarks: new FakeFwmarkManager(kernel),
    sysctls: new FakeSysctlManager(kernel),
  };
}
