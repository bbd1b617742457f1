// The real KernelBackend: snapshot → reconcile → execute, on this host's kernel.
//
//   snapshot   one read per object type: IpvsClient.snapshot() (one service dump + the destination
//              dumps), IPVS timeouts when managed, one address dump, the link list and lvsfleet's nft
//              table when they matter, the sysctls desired or owned, the fou port dump when a GUE
//              port is desired or owned (fou is opened only then; a failed read is an error on
//              "fou" and the cycle goes on without fou ops)
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
// is handed to the report through takeDrift(). The NAT return-path check (nat-return-path.ts) runs on
// every apply and every resync: a route changed behind the agent's back stands as an ObjectError
// (standingErrors(), in every report) until a check finds it fixed.
//
// Health fast path: applyServices() takes a few services of the last applied state with new
// destinations (health/backend.ts: weight 0, left out, sorry server, weight back) and reconciles just
// those against what was last applied to them (the owned set) — a quiesce is one IPVS request, not a
// snapshot and diff of the whole table. Their new versions are persisted in a patch file next to
// desired.pb (<...>.desired.patch.json, tagged with the base it applies to), not by rewriting the whole
// state: a restart reads base + patch. The next apply() rewrites the base and drops the patch.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostDesiredStateSchema, IpvsServiceSchema, type HostDesiredState, type IpvsService as PbService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
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
  serviceKey,
  serviceStateFromProto,
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
import type { AddressManager, FouManager, FwmarkManager, LinkManager, SysctlManager } from "./types.js";
import { GenlFouManager } from "./fou.js";
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
  /** Opens fou (GUE receive ports; default GenlFouManager.open()). Called only when a fou port is desired or owned. */
  openFou?: () => Promise<FouManager>;
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
  /** Services changed by applyServices() since desired.pb was written: { base: tag of that desired.pb, services: [key, base64 IpvsService][] }. */
  readonly patchPath: string;
  /** Tag of the desired state in desired.pb (its hash, or a digest of its bytes when it has none). */
  private baseTag: string | undefined;
  /** The patch over desired.pb: service key → base64 of the IpvsService as last applied by applyServices(). */
  private patch = new Map<string, string>();
  /** Service key → index in last.services (and lastProto's services), built on the first applyServices() per state. */
  private index: Map<string, number> | undefined;
  /** NAT return-path errors found by the latest check (apply or resync). */
  private standing: ObjectError[] = [];
  private owned: OwnedSet = emptyOwned();
  private loaded = false;
  private last: DesiredHost | undefined;
  /** The desired state as handed to apply() (names of services and real servers, for counters()). */
  private lastProto: HostDesiredState | undefined;
  private ipvs: IpvsPort | undefined;
  private ipvsOpening: Promise<IpvsPort> | undefined;
  private rtnl: NetlinkSocket | undefined;
  private fou: FouManager | undefined;
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
    this.patchPath = join(opts.stateDir, `agent-${opts.site}.${opts.host}.desired.patch.json`);
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
    // The state file is written in the same serial section, so an applyServices() patch is never
    // tagged with a base that is about to be replaced.
    return this.serial(async () => {
      this.last = host;
      this.lastProto = desired;
      this.index = undefined;
      const r = await this.cycle(host);
      r.errors.push(...(await this.checkReturnPaths(desired)));
      await this.persistDesired(desired);
      return r;
    });
  }

  /**
   * The health checker's fast path (health/backend.ts): `services` replace the services with the same
   * keys in the last applied desired state — typically only their destinations differ (weight 0, left
   * out, a sorry server, the configured weight again). Only these are reconciled, against what this
   * backend last applied to them (the owned set; the periodic resync is what compares with the kernel),
   * and only their IPVS requests are sent. The last desired state and the owned set are updated for
   * these services and persisted as a patch (O(services), not a rewrite of the whole state).
   *
   * Resolves undefined, having done nothing, when that would not be safe — nothing applied yet, a key
   * not in the last applied state, a service whose last apply did not land as desired (unclean) — then
   * the caller applies the whole state. When a request fails (the kernel differs from what was last
   * applied: changed behind the agent's back), a full cycle runs against the updated state.
   */
  async applyServices(services: readonly PbService[]): Promise<ApplyResult | undefined> {
    return this.serial(async () => {
      const t0 = performance.now();
      await this.loadOwned();
      const last = this.last;
      const proto = this.lastProto;
      if (!last || !proto || this.closed || this.baseTag === undefined) return undefined;
      const protoServices = proto.director?.services ?? [];
      if (protoServices.length !== last.services.length) return undefined; // duplicate keys: indexes differ
      if (!this.index) {
        this.index = new Map();
        last.services.forEach((s, i) => this.index!.set(serviceKey(s.service), i));
      }
      const want: ServiceState[] = [];
      const at: number[] = [];
      const subOwned = emptyOwned();
      for (const svc of services) {
        let st: ServiceState;
        try {
          st = serviceStateFromProto(svc);
        } catch {
          return undefined; // apply() reports it
        }
        const key = serviceKey(st.service);
        const i = this.index.get(key);
        const own = this.owned.services.get(key);
        if (i === undefined || subOwned.services.has(key) || !own?.clean) return undefined;
        // The owned record must be what was last applied for this service (after a restart it is
        // read from a file, hence the structural comparison).
        if (own.state !== last.services[i] && JSON.stringify(own.state) !== JSON.stringify(last.services[i])) return undefined;
        subOwned.services.set(key, own);
        want.push(st);
        at.push(i);
      }
      if (want.length === 0) return { errors: [] };
      const sub: DesiredHost = { services: want, addresses: [], fwmarkRules: [], sysctls: [], tunnels: [] };
      const observed: ObservedHost = { ipvs: { services: [...subOwned.services.values()].map((o) => o.state) }, addresses: [], links: [], sysctls: new Map() };
      const plan = reconcile(sub, observed, subOwned);
      const reconcileMs = performance.now() - t0;

      // The new last desired state: the same arrays with these entries replaced (copied, since the
      // caller may hold the previous ones).
      const hostServices = last.services.slice();
      const pbServices = protoServices.slice();
      at.forEach((i, k) => {
        hostServices[i] = want[k]!;
        pbServices[i] = services[k]!;
      });
      this.last = { ...last, services: hostServices };
      // Not the base's hash any more (a full persist of it must not take it for the base).
      this.lastProto = { ...proto, hash: "", director: { ...proto.director!, services: pbServices } };

      let port: IpvsPort | undefined;
      let before = 0;
      let failed = plan.ops.length > 0 && plan.ops.some((op) => !isIpvsOp(op));
      if (plan.ops.length > 0 && !failed) {
        try {
          port = await this.ipvsPort();
          before = port.requests;
          failed = (await port.batch(plan.ops.map(toIpvsOperation))).some((e) => e !== undefined);
        } catch {
          failed = true;
        }
      }
      if (failed) {
        // Something was not as last applied: the whole cycle re-reads the kernel and repairs it.
        this.log.info({ services: want.length }, "health change: the kernel differs from what was applied; full reconcile");
        const r = await this.cycle(this.last);
        await this.persistDesired(this.lastProto);
        return r;
      }
      for (let k = 0; k < want.length; k++) {
        const key = serviceKey(want[k]!.service);
        this.owned.services.set(key, { state: want[k]!, clean: true });
        this.patch.set(key, Buffer.from(toBinary(IpvsServiceSchema, services[k]!)).toString("base64"));
      }
      const errors: ObjectError[] = [];
      try {
        await this.atomicWrite(this.patchPath, JSON.stringify({ version: 1, base: this.baseTag, services: [...this.patch] }));
      } catch (e) {
        errors.push({ object: "desired-state", operation: "save", message: `${this.patchPath}: ${(e as Error).message}` });
      }
      const writes = port ? port.requests - before : 0;
      this.lastCycle = { errors, drift: [], foreign: [], ops: plan.ops.length, writes, ipvsRequests: writes, adopted: 0, snapshotMs: 0, reconcileMs, totalMs: performance.now() - t0 };
      return { errors };
    });
  }

  /**
   * Re-reads the kernel and repairs it against the last applied desired state. Coalesced with any
   * cycle in progress; undefined when nothing was applied yet.
   */
  async resync(): Promise<CycleResult | undefined> {
    if (!this.last) await this.serial(() => this.loadOwned());
    if (!this.last || this.closed) return undefined;
    // The desired state is read when the cycle runs, not when it is queued (an apply may be ahead).
    const r = await this.serial(async () => {
      const r = await this.cycle(this.last!);
      // A route changed behind the agent's back is found here, at the resync's pace.
      r.errors.push(...(await this.checkReturnPaths(this.lastProto)));
      return r;
    });
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

  /**
   * Errors that stand until a later check finds them fixed, whatever the sync loop applied: the NAT
   * return path as the latest apply or resync found it. Every report carries them.
   */
  standingErrors(): ObjectError[] {
    return this.standing;
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
    this.fou?.close();
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
        const bytes = await readFile(this.desiredPath);
        let ds = fromBinary(HostDesiredStateSchema, bytes);
        const tag = tagOf(ds, bytes);
        ds = await this.loadPatch(ds, tag);
        this.last = desiredFromProto(ds, { canonicalFwmarkRules });
        this.lastProto = ds;
        this.baseTag = tag;
        this.index = undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(e), path: this.desiredPath }, "last desired state unreadable; resync waits for the next apply");
      }
    }
    this.loaded = true;
  }

  /** desired.pb's services as applyServices() last changed them (the patch, when it is for this base); the owned set too. */
  private async loadPatch(ds: HostDesiredState, tag: string): Promise<HostDesiredState> {
    let f: { version: number; base: string; services: [string, string][] };
    try {
      f = JSON.parse(await readFile(this.patchPath, "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(e), path: this.patchPath }, "desired-state patch unreadable; ignored");
      return ds;
    }
    // Another base: the crash came between writing a new desired.pb and removing the patch.
    if (f?.version !== 1 || f.base !== tag || !Array.isArray(f.services) || !ds.director) return ds;
    const byKey = new Map<string, number>();
    ds.director.services.forEach((s, i) => {
      try {
        byKey.set(serviceKey(serviceStateFromProto(s).service), i);
      } catch {
        // desiredFromProto reports it
      }
    });
    const services = ds.director.services.slice();
    for (const [key, b64] of f.services) {
      const i = byKey.get(key);
      if (i === undefined) continue;
      const svc = fromBinary(IpvsServiceSchema, Buffer.from(b64, "base64"));
      services[i] = svc;
      this.owned.services.set(key, { state: serviceStateFromProto(svc), clean: true });
      this.patch.set(key, b64);
    }
    return this.patch.size > 0 ? { ...ds, hash: "", director: { ...ds.director, services } } : ds;
  }

  /**
   * desired.pb := `desired` when it is another state than the one there, then the patch goes (a crash
   * in between leaves a patch tagged with the old base, which the next start ignores).
   */
  private async persistDesired(desired: HostDesiredState): Promise<void> {
    let bytes: Uint8Array | undefined;
    const tag = desired.hash || tagOf(desired, (bytes = toBinary(HostDesiredStateSchema, desired)));
    if (tag !== this.baseTag) {
      try {
        await this.atomicWrite(this.desiredPath, bytes ?? toBinary(HostDesiredStateSchema, desired));
        this.baseTag = tag;
      } catch (e) {
        // The old base and its patch stay as they were (the old state); no patch is written meanwhile.
        this.baseTag = undefined;
        this.patch.clear();
        this.log.warn({ err: String(e), path: this.desiredPath }, "cannot persist the desired state for resyncs after a restart");
        return;
      }
    }
    this.patch.clear();
    try {
      await unlink(this.patchPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(e), path: this.patchPath }, "cannot remove the desired-state patch");
    }
  }

  /** NAT real server: its replies must route back through a Director (nat-return-path.ts). */
  private async checkReturnPaths(desired: HostDesiredState | undefined): Promise<ObjectError[]> {
    const paths = desired?.realServer?.natReturnPaths ?? [];
    const bad = paths.length > 0 ? await checkNatReturnPaths(paths, this.routes) : [];
    if (bad.length > 0 && JSON.stringify(bad) !== JSON.stringify(this.standing)) this.log.warn({ errors: bad }, "NAT return path does not go through a Director");
    this.standing = bad;
    return bad;
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

  /** fou, opened on first need (a retry after a failed open opens again). */
  private async fouManager(): Promise<FouManager> {
    this.fou ??= await (this.opts.openFou ?? (() => GenlFouManager.open()))();
    return this.fou;
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
        // The adapter's objects as they are (fresh per call; reconcile reads ifname/address/prefixLen/owned).
        observed.addresses = await this.addresses.list();
      })(),
    );
    if (d.tunnels.length > 0 || o.links.size > 0) {
      tasks.push(
        (async () => {
          observed.links = (await this.links.list()).map((l) => ({ name: l.name, kind: l.kind, up: l.up }));
        })(),
      );
    }
    if ((d.fouPorts?.length ?? 0) > 0 || (o.fouPorts?.size ?? 0) > 0) {
      tasks.push(
        (async () => {
          try {
            const ports = await (await this.fouManager()).list();
            observed.fouPorts = ports.map((p) => ({ ...p, family: p.family === 6 ? ("ipv6" as const) : ("ipv4" as const) }));
          } catch (e) {
            // Not fatal for the rest: reconcile plans no fou ops and keeps the ownership records.
            observed.fouPorts = undefined;
            errors.push({ object: "fou", operation: "read", message: String((e as Error).message ?? e) });
          }
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
      case "fou-add":
        await (await this.fouManager()).ensureGue(op.port.port, op.port.family === "ipv6" ? 6 : 4);
        return;
      case "fou-del":
        await (await this.fouManager()).remove(op.port.port, op.port.family === "ipv6" ? 6 : 4);
        return;
      default:
        throw new Error(`not an address/link/nft/sysctl op: ${op.kind}`);
    }
  }
}

/** What identifies a persisted desired state: its hash, or a digest of its bytes when it has none. */
function tagOf(ds: HostDesiredState, bytes: Uint8Array): string {
  return ds.hash || `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
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
