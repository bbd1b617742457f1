// The real KernelBackend: snapshot → reconcile → execute, on this host's kernel.
//
//   snapshot   one read per object type: IpvsClient.snapshot() (one service dump + the destination
//              dumps), IPVS timeouts when managed, one address dump, the link list and lvsfleet's nft
//              table when they matter, the sysctls desired or owned
//   reconcile  pure (../reconcile): ordered, make-before-break ops + drift + foreign objects
//   execute    runs of consecutive IPVS ops go out as one netlink batch (IpvsClient.batch: few
//              sendmsg calls, one result per op); addresses, links, nft and sysctls one by one.
//              Each failure is an ObjectError for that object; nothing aborts the rest.
//
// Ownership: IPVS has no owner field, so the OwnedSet (what lvsfleet created or adopted) is persisted
// in <stateDir>/agent-<site>.<host>.owned.json, next to the sync loop's applied-revision file, written
// atomically and only when it changed. A restart reads it back, snapshots the kernel and adopts what
// already matches: zero writes, no connection dropped.
//
// Drift: resync() re-runs the cycle against the last applied desired state. It runs periodically
// (startResync), rate-bounded: one at a time, never overlapping an apply, and while each run keeps
// finding drift (someone fighting the agent) the interval doubles, up to 8×. Drift found by a resync
// is handed to the report through takeDrift().
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { IpvsClient, type IpvsOperation } from "../netlink/ipvs/client.js";
import { NetlinkSocket, NETLINK_ROUTE } from "../netlink/socket.js";
import { RtnlAddressManager, RtnlLinkManager, RtnlRouteManager } from "../netlink/rtnetlink/index.js";
import { checkNatReturnPaths, type RouteReader } from "./nat-return-path.js";
import {
  desiredFromProto,
  emptyOwned,
  nextOwned,
  parseOwned,
  reconcile,
  serializeOwned,
  type DesiredHost,
  type ForeignObject,
  type ObservedHost,
  type Op,
  type OwnedSet,
  type ServiceState,
  type Timeouts,
} from "../reconcile/index.js";
import type { Log } from "../sync/log.js";
import type { ApplyResult, DriftRepair, KernelBackend, ObjectError, ServiceCountersSample } from "./backend.js";
import { countersFromSnapshot } from "./counters.js";
import type { IpvsServiceState } from "../netlink/ipvs/client.js";
import { SysctlNotFoundError } from "./errors.js";
import { canonicalFwmarkRules, NftFwmarkManager } from "./nftables.js";
import { parseSysctlKey, ProcSysctlManager } from "./sysctl.js";
import type { AddressManager, FwmarkManager, LinkManager, SysctlManager } from "./types.js";
import { fallbackKindOf, TUNNEL_FALLBACK_DEVICES } from "./types.js";

/** What the backend needs of IPVS; IpvsClient has it, FakeIpvs (fake-ipvs.ts) too. */
export interface IpvsPort {
  /** `{ stats: true }` decodes the counters (stats/stats64, active/inactive conns) too. */
  snapshot(opts?: { stats?: boolean }): Promise<ServiceState[]>;
  getConfig(): Promise<Timeouts>;
  setConfig(t: Partial<Timeouts>): Promise<void>;
  batch(ops: IpvsOperation[]): Promise<(Error | undefined)[]>;
  /** Netlink messages sent so far. */
  readonly requests: number;
  close(): void;
}

export interface LinuxBackendOptions {
  site: string;
  host: string;
  /** Where the owned-set file lives (the agent's state dir). */
  stateDir: string;
  /** Opens IPVS (default IpvsClient.open(), which loads ip_vs). Called only when IPVS is needed. */
  openIpvs?: () => Promise<IpvsPort>;
  /** Whether ip_vs is already loaded here (default: /proc/net/ip_vs exists) — then foreign services are reported even on hosts with no IPVS role. */
  ipvsLoaded?: () => boolean;
  links?: LinkManager;
  addresses?: AddressManager;
  fwmarks?: FwmarkManager;
  sysctls?: SysctlManager;
  /** Routes, for the NAT return-path check (default: rtnetlink). */
  routes?: RouteReader;
  log?: Log;
  now?: () => Date;
}

/** One reconcile cycle's outcome: ApplyResult plus what it did. */
export interface CycleResult extends ApplyResult {
  drift: DriftRepair[];
  /** Objects lvsfleet did not create: reported, left alone. */
  foreign: ForeignObject[];
  /** Ops planned (= attempted). */
  ops: number;
  /** Write requests sent: IPVS netlink messages of the execute phase + address/link/nft/sysctl writes. */
  writes: number;
  /** IPVS netlink messages of the whole cycle (snapshot dumps included). */
  ipvsRequests: number;
  /** Services adopted without a write. */
  adopted: number;
  snapshotMs: number;
  /** The pure diff alone. */
  reconcileMs: number;
  totalMs: number;
}

const silent: Log = { debug() {}, info() {}, warn() {}, error() {} };

export class LinuxBackend implements KernelBackend {
  readonly statePath: string;
  /** The last desired state handed to apply(), so resyncs keep working after a restart (the sync loop does not re-apply a revision it already applied). */
  readonly desiredPath: string;
  private lastHash: string | undefined;
  private owned: OwnedSet = emptyOwned();
  private loaded = false;
  private last: DesiredHost | undefined;
  /** The desired state as handed to apply() (names of services and real servers, for counters()). */
  private lastProto: HostDesiredState | undefined;
  private ipvs: IpvsPort | undefined;
  private ipvsOpening: Promise<IpvsPort> | undefined;
  private rtnl: NetlinkSocket | undefined;
  private readonly links: LinkManager;
  private readonly addresses: AddressManager;
  private readonly fwmarks: FwmarkManager;
  private readonly sysctls: SysctlManager;
  private readonly routes: RouteReader | undefined;
  private readonly log: Log;
  private readonly now: () => Date;
  private chain: Promise<unknown> = Promise.resolve();
  private pendingDrift: DriftRepair[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Outcome of the latest cycle (apply or resync), for tests and the bench. */
  lastCycle: CycleResult | undefined;

  constructor(private readonly opts: LinuxBackendOptions) {
    this.statePath = join(opts.stateDir, `agent-${opts.site}.${opts.host}.owned.json`);
    this.desiredPath = join(opts.stateDir, `agent-${opts.site}.${opts.host}.desired.pb`);
    if (!opts.links || !opts.addresses) this.rtnl = NetlinkSocket.open(NETLINK_ROUTE);
    this.links = opts.links ?? new RtnlLinkManager(this.rtnl!);
    this.addresses = opts.addresses ?? new RtnlAddressManager(this.rtnl!);
    this.fwmarks = opts.fwmarks ?? new NftFwmarkManager();
    this.sysctls = opts.sysctls ?? new ProcSysctlManager();
    this.routes = opts.routes ?? (this.rtnl ? new RtnlRouteManager(this.rtnl) : undefined);
    this.log = opts.log ?? silent;
    this.now = opts.now ?? (() => new Date());
  }

  /** The owned set as the backend holds it now (after the last cycle). */
  ownedSet(): OwnedSet {
    return this.owned;
  }

  async apply(desired: HostDesiredState): Promise<ApplyResult> {
    let host: DesiredHost;
    try {
      host = desiredFromProto(desired, { canonicalFwmarkRules });
    } catch (e) {
      return { errors: [{ object: "desired-state", operation: "parse", message: (e as Error).message }] };
    }
    // The newest desired state is what resyncs hold the kernel to (they also retry what failed). Set
    // inside the serial section, before the cycle: a resync queued behind this apply must not run
    // with the state this apply replaces (it would undo the change until the next resync).
    const r = await this.serial(() => {
      this.last = host;
      this.lastProto = desired;
      return this.cycle(host);
    });
    // NAT real server: its replies must route back through a Director (nat-return-path.ts).
    const natPaths = desired.realServer?.natReturnPaths ?? [];
    if (natPaths.length > 0) {
      const bad = await this.serial(() => checkNatReturnPaths(natPaths, this.routes));
      if (bad.length > 0) this.log.warn({ errors: bad }, "NAT return path does not go through a Director");
      r.errors.push(...bad);
    }
    const hash = desired.hash || Buffer.from(toBinary(HostDesiredStateSchema, desired)).toString("base64");
    if (hash !== this.lastHash) {
      try {
        await this.atomicWrite(this.desiredPath, toBinary(HostDesiredStateSchema, desired));
        this.lastHash = hash;
      } catch (e) {
        this.log.warn({ err: String(e), path: this.desiredPath }, "cannot persist the desired state for resyncs after a restart");
      }
    }
    return r;
  }

  /**
   * Re-reads the kernel and repairs it against the last applied desired state. Coalesced with any
   * cycle in progress; undefined when nothing was applied yet.
   */
  async resync(): Promise<CycleResult | undefined> {
    if (!this.last) await this.serial(() => this.loadOwned());
    if (!this.last || this.closed) return undefined;
    // The desired state is read when the cycle runs, not when it is queued (an apply may be ahead).
    const r = await this.serial(() => this.cycle(this.last!));
    if (r.drift.length > 0) {
      this.pendingDrift.push(...r.drift);
      this.log.warn({ drift: r.drift.map((d) => `${d.object}: ${d.found}`) }, "repaired changes made behind the agent's back");
    }
    return r;
  }

  /**
   * IPVS counters of the desired services: one snapshot with stats (services + destinations), mapped
   * to the desired state's names. Empty when this host has no Director role (IPVS is not opened).
   */
  async counters(): Promise<ServiceCountersSample[]> {
    if (!this.lastProto) await this.serial(() => this.loadOwned());
    const desired = this.lastProto;
    if (!desired?.director?.services.length || this.closed) return [];
    // Serialised with apply/resync: they share the IPVS sockets.
    const snap = await this.serial(async () => (await (await this.ipvsPort()).snapshot({ stats: true })) as IpvsServiceState[]);
    return countersFromSnapshot(desired, snap);
  }

  /** Drift repaired by resyncs since the last call (the report carries it once). */
  takeDrift(): DriftRepair[] {
    const d = this.pendingDrift;
    this.pendingDrift = [];
    return d;
  }

  /** Periodic resync every `intervalMs` (doubling, up to 8×, while each run finds drift). */
  startResync(intervalMs: number): void {
    let factor = 1;
    const tick = async () => {
      if (this.closed) return;
      try {
        const r = await this.resync();
        factor = r && r.drift.length > 0 ? Math.min(8, factor * 2) : 1;
      } catch (e) {
        this.log.warn({ err: String(e) }, "resync failed");
      }
      if (!this.closed) {
        this.timer = setTimeout(() => void tick(), intervalMs * factor);
        this.timer.unref();
      }
    };
    this.timer = setTimeout(() => void tick(), intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.chain.catch(() => undefined);
    this.ipvs?.close();
    this.rtnl?.close();
  }

  // ------------------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async loadOwned(): Promise<void> {
    if (this.loaded) return;
    try {
      this.owned = parseOwned(await readFile(this.statePath, "utf8"));
    } catch (e) {
      // No file: a first start. A bad file: start empty — nothing is ever deleted because of an
      // empty owned set (desired objects are adopted by key; the rest is reported as foreign).
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(e), path: this.statePath }, "owned-set file unreadable; starting empty");
      this.owned = emptyOwned();
    }
    if (!this.last) {
      try {
        const ds = fromBinary(HostDesiredStateSchema, await readFile(this.desiredPath));
        this.last = desiredFromProto(ds, { canonicalFwmarkRules });
        this.lastProto = ds;
        this.lastHash = ds.hash || undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(e), path: this.desiredPath }, "last desired state unreadable; resync waits for the next apply");
      }
    }
    this.loaded = true;
  }

  private async saveOwned(): Promise<void> {
    await this.atomicWrite(this.statePath, serializeOwned(this.owned));
  }

  /** temp file + rename: a crash leaves the old or the new file, never half of one. */
  private async atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
    await mkdir(this.opts.stateDir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, path);
  }

  private ipvsPort(): Promise<IpvsPort> {
    if (this.ipvs) return Promise.resolve(this.ipvs);
    this.ipvsOpening ??= (this.opts.openIpvs ?? (() => IpvsClient.open()))().then(
      (p) => (this.ipvs = p),
      (e) => {
        this.ipvsOpening = undefined;
        throw e;
      },
    );
    return this.ipvsOpening;
  }

  private async snapshot(d: DesiredHost, errors: ObjectError[]): Promise<{ observed: ObservedHost; ipvs?: IpvsPort; requestsBefore: number }> {
    const o = this.owned;
    const observed: ObservedHost = { addresses: [], links: [], sysctls: new Map() };
    let port: IpvsPort | undefined;
    let requestsBefore = 0;
    const needIpvs = d.services.length > 0 || o.services.size > 0 || d.timeouts !== undefined || (this.opts.ipvsLoaded ?? (() => existsSync("/proc/net/ip_vs")))();
    const tasks: Promise<void>[] = [];
    if (needIpvs) {
      tasks.push(
        (async () => {
          try {
            port = await this.ipvsPort();
            requestsBefore = port.requests;
            const services = await port.snapshot();
            observed.ipvs = { services };
            if (d.timeouts || o.timeouts) observed.ipvs.timeouts = await port.getConfig();
          } catch (e) {
            observed.ipvs = undefined;
            // Only fatal when this host has IPVS work; otherwise it was a look for foreign services.
            if (d.services.length > 0 || o.services.size > 0 || d.timeouts) {
              errors.push({ object: "ipvs", operation: "read", message: String((e as Error).message ?? e) });
              throw e;
            }
          }
        })(),
      );
    }
    tasks.push(
      (async () => {
        const list = await this.addresses.list();
        observed.addresses = list.map((a) => ({ ifname: a.ifname, address: a.address, prefixLen: a.prefixLen, owned: a.owned }));
      })(),
    );
    if (d.tunnels.length > 0 || o.links.size > 0) {
      tasks.push(
        (async () => {
          observed.links = (await this.links.list()).map((l) => ({ name: l.name, kind: l.kind, up: l.up }));
        })(),
      );
    }
    if (d.fwmarkRules.length > 0 || o.fwmark) {
      tasks.push(
        (async () => {
          const st = await this.fwmarks.read();
          observed.fwmark = st ? { rules: st.rules, problems: st.problems } : null;
        })(),
      );
    }
    const keys = new Set([...d.sysctls.map((s) => s.key), ...o.sysctls.keys()]);
    for (const k of keys) {
      tasks.push(
        this.sysctls.read(parseSysctlKey(k)).then(
          (v) => void observed.sysctls.set(k, v),
          (e) => {
            if (e instanceof SysctlNotFoundError) observed.sysctls.set(k, undefined);
            else throw e;
          },
        ),
      );
    }
    await Promise.all(tasks);
    return { observed, ipvs: port, requestsBefore };
  }

  private async cycle(d: DesiredHost): Promise<CycleResult> {
    const t0 = performance.now();
    await this.loadOwned();
    const errors: ObjectError[] = [];
    let snap;
    try {
      snap = await this.snapshot(d, errors);
    } catch (e) {
      if (errors.length === 0) errors.push({ object: "kernel", operation: "read", message: String((e as Error).message ?? e) });
      const r: CycleResult = { errors, drift: [], foreign: [], ops: 0, writes: 0, ipvsRequests: 0, adopted: 0, snapshotMs: performance.now() - t0, reconcileMs: 0, totalMs: performance.now() - t0 };
      this.lastCycle = r;
      return r;
    }
    const snapshotMs = performance.now() - t0;
    const plan = reconcile(d, snap.observed, this.owned);
    const reconcileMs = performance.now() - t0 - snapshotMs;
    const failed = new Set<Op>();
    let otherWrites = 0;
    const ipvsAtExec = snap.ipvs?.requests ?? 0;

    const fail = (op: Op, e: unknown) => {
      failed.add(op);
      errors.push({ object: op.object, operation: op.kind, message: String((e as Error)?.message ?? e) });
    };
    for (let i = 0; i < plan.ops.length; ) {
      const op = plan.ops[i]!;
      if (isIpvsOp(op)) {
        let j = i;
        while (j < plan.ops.length && isIpvsOp(plan.ops[j]!)) j++;
        const run = plan.ops.slice(i, j);
        try {
          const port = snap.ipvs ?? (await this.ipvsPort());
          const results = await port.batch(run.map(toIpvsOperation));
          results.forEach((err, k) => err && fail(run[k]!, err));
        } catch (e) {
          for (const o of run) fail(o, e);
        }
        i = j;
        continue;
      }
      try {
        await this.execOther(op, snap.ipvs);
        otherWrites++;
      } catch (e) {
        fail(op, e);
      }
      i++;
    }

    const upd = nextOwned(this.owned, d, plan, failed);
    this.owned = upd.owned;
    if (upd.changed) {
      try {
        await this.saveOwned();
      } catch (e) {
        errors.push({ object: "owned-set", operation: "save", message: `${this.statePath}: ${(e as Error).message}` });
      }
    }
    const now = this.now();
    const port = snap.ipvs ?? this.ipvs;
    const ipvsAfter = port?.requests ?? 0;
    const r: CycleResult = {
      errors,
      drift: plan.drift.map((x) => ({ object: x.object, found: x.found, time: now })),
      foreign: plan.foreign,
      ops: plan.ops.length,
      writes: ipvsAfter - ipvsAtExec + otherWrites,
      ipvsRequests: ipvsAfter - snap.requestsBefore,
      adopted: plan.adopted.length,
      snapshotMs,
      reconcileMs,
      totalMs: performance.now() - t0,
    };
    this.lastCycle = r;
    if (plan.foreign.length > 0) this.log.debug({ foreign: plan.foreign.map((f) => f.object) }, "foreign kernel objects left alone");
    if (errors.length > 0) this.log.warn({ errors: errors.slice(0, 20), count: errors.length }, "some kernel objects could not be applied");
    return r;
  }

  private async execOther(op: Op, ipvs: IpvsPort | undefined): Promise<void> {
    switch (op.kind) {
      case "link-up": {
        const t = op.tunnel;
        // The control plane names the kernel's wildcard device of the tunnel kind (compile/
        // tunnelDevice: tunl0, sit0, ip6tnl0, gre0, ip6gre0); the agent makes sure it exists.
        const kind = fallbackKindOf(t.name);
        if (kind) await this.links.ensureTunnelFallback(kind);
        else if (!(await this.links.get(t.name))) {
          throw new Error(`tunnel device ${t.name} does not exist and is not a fallback device lvsfleet can create (${Object.values(TUNNEL_FALLBACK_DEVICES).join(", ")})`);
        }
        await this.links.setUp(t.name, true);
        return;
      }
      case "link-down":
        await this.links.setUp(op.name, false);
        return;
      case "sysctl-set":
        await this.sysctls.write(parseSysctlKey(op.key), op.value);
        return;
      case "fwmark-apply":
        await this.fwmarks.apply(op.rules);
        return;
      case "fwmark-clear":
        await this.fwmarks.clear();
        return;
      case "ipvs-timeouts":
        await (ipvs ?? (await this.ipvsPort())).setConfig(op.timeouts);
        return;
      case "address-add":
        await this.addresses.add({ ifname: op.vip.ifname, address: op.vip.address, prefixLen: op.vip.prefixLen });
        return;
      case "address-del":
        await this.addresses.remove({ ifname: op.vip.ifname, address: op.vip.address, prefixLen: op.vip.prefixLen });
        return;
      default:
        throw new Error(`not an address/link/nft/sysctl op: ${op.kind}`);
    }
  }
}

function isIpvsOp(op: Op): boolean {
  return op.kind === "service-add" || op.kind === "service-edit" || op.kind === "service-del" || op.kind === "dest-add" || op.kind === "dest-edit" || op.kind === "dest-del";
}

function toIpvsOperation(op: Op): IpvsOperation {
  switch (op.kind) {
    case "service-add":
      return { op: "newService", service: op.service };
    case "service-edit":
      return { op: "setService", service: op.service };
    case "service-del":
      return { op: "delService", service: op.service };
    case "dest-add":
      return { op: "newDestination", service: op.service, destination: op.destination };
    case "dest-edit":
      return { op: "setDestination", service: op.service, destination: op.destination };
    case "dest-del":
      return { op: "delDestination", service: op.service, destination: op.destination };
    default:
      throw new Error(`not an IPVS op: ${op.kind}`);
  }
}
