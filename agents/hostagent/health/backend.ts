// A KernelBackend decorator that runs the health checks: the sync loop hands it the configured
// desired state; it starts/stops checks (scheduler.ts) and gives the inner backend
// applyHealth(desired, health) on every desired state.
//
// A health transition costs O(services using that check), not a pass over the whole state: the
// services that use the check (an index per configured state) are recomputed (serviceWithHealth) and
// handed to the inner backend's applyServices() (LinuxBackend: reconciled against what it last
// applied to them; a quiesce is one IPVS request). The whole applyHealth(desired, health) goes to
// apply() instead when the inner backend has no such method or declines (nothing applied yet, a
// service not cleanly applied), and for the first transition after a restart or a new configured
// state not yet applied: a full apply puts the inner backend in step with this checker again.
//
// Restarts: the sync loop does not re-apply an already-applied revision, so the configured state
// (<stateDir>/agent-<site>.<host>.health.desired.pb, written once per state) and which checks were
// down (<...>.health.json, written on each transition: small) are persisted and loaded by load():
// checks resume after a restart, and a real server that was down starts down (it needs `rise`
// successes, instead of getting its weight back until `fall` failures).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostDesiredStateSchema, type HostDesiredState, type IpvsService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { ApplyResult, DriftRepair, KernelBackend, RealServerHealthSample, ServiceCountersSample } from "../kernel/backend.js";
import { silentLog, type Log } from "../sync/log.js";
import { applyHealth, serviceWithHealth } from "./apply.js";
import { HealthScheduler, type SchedulerOptions, type Transition } from "./scheduler.js";
import { effectiveCheck } from "./spec.js";

export interface HealthCheckedBackendOptions {
  log?: Log;
  /** Where the configured state and the down checks are kept across restarts (unset: not kept). */
  stateDir?: string;
  site?: string;
  host?: string;
  /** Test seams of the scheduler (probe, random). */
  scheduler?: Pick<SchedulerOptions, "probe" | "random">;
}

/**
 * The inner backend's fast path for a transition (LinuxBackend has it): `services` replace those with
 * the same keys in the state it last applied. Resolves undefined, having done nothing, when it cannot
 * do that safely — then the whole state is applied.
 */
export interface ServicePatcher {
  applyServices(services: readonly IpvsService[]): Promise<ApplyResult | undefined>;
}

function patcherOf(b: KernelBackend): ServicePatcher | undefined {
  const p = b as KernelBackend & Partial<ServicePatcher>;
  return typeof p.applyServices === "function" ? (p as ServicePatcher) : undefined;
}

export class HealthCheckedBackend implements KernelBackend {
  readonly scheduler: HealthScheduler;
  counters?: () => Promise<ServiceCountersSample[]>;
  takeDrift?: () => DriftRepair[];
  standingErrors?: () => ApplyResult["errors"];
  private desired: HostDesiredState | undefined;
  /** The configured state the inner backend last got in full (as applyHealth of it): transitions of this state can take the fast path. */
  private appliedInFull: HostDesiredState | undefined;
  /** Check key → indexes of the configured services using it (built on the first transition per state). */
  private byCheck: { desired: HostDesiredState; services: Map<string, number[]> } | undefined;
  /** Checks that changed since the last (coalesced) re-apply. */
  private changedChecks = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private reapplyQueued = false;
  private readonly initialDown = new Set<string>();
  private readonly listeners = new Set<(t: Transition) => void>();
  private readonly log: Log;
  private readonly path: string | undefined;
  private readonly desiredPath: string | undefined;
  /** What the state files hold: the configured state written (identity or hash) and the down set. */
  private persistedDesired: HostDesiredState | string | undefined;
  private persistedDown: string | undefined;
  private closed = false;
  /** Transitions applied through the inner backend's applyServices() / as a whole apply (tests, bench). */
  readonly stats = { fast: 0, full: 0 };

  constructor(
    readonly inner: KernelBackend,
    opts: HealthCheckedBackendOptions = {},
  ) {
    this.log = opts.log ?? silentLog;
    this.path = opts.stateDir ? join(opts.stateDir, `agent-${opts.site ?? "site"}.${opts.host ?? "host"}.health.json`) : undefined;
    this.desiredPath = this.path?.replace(/\.json$/, ".desired.pb");
    this.scheduler = new HealthScheduler({ ...opts.scheduler, initialDown: this.initialDown, onTransition: (t) => this.onTransition(t) });
    if (inner.counters) this.counters = () => inner.counters!();
    if (inner.takeDrift) this.takeDrift = () => inner.takeDrift!();
    const standing = (inner as { standingErrors?: () => ApplyResult["errors"] }).standingErrors;
    if (standing) this.standingErrors = () => standing.call(inner);
  }

  /** Resumes the checks of the last configured state (after an agent restart). */
  async load(): Promise<void> {
    if (!this.path || this.desired) return;
    try {
      // { down } and the configured state beside it; older files held it inline ({ desired: base64 }).
      const saved = JSON.parse(await readFile(this.path, "utf8")) as { desired?: string; down: string[] };
      const ds = fromBinary(HostDesiredStateSchema, saved.desired !== undefined ? Buffer.from(saved.desired, "base64") : await readFile(this.desiredPath!));
      for (const k of saved.down) this.initialDown.add(k);
      this.desired = ds;
      if (saved.desired === undefined) this.persistedDesired = ds.hash || ds;
      this.persistedDown = [...saved.down].sort().join(",");
      this.scheduler.update(ds);
      this.initialDown.clear();
      this.log.info({ checks: this.scheduler.size, down: saved.down.length }, "health checks resumed from the state file");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn({ err: String(err), path: this.path }, "health state file unreadable; checks start with the next desired state");
    }
  }

  async apply(desired: HostDesiredState): Promise<ApplyResult> {
    this.desired = desired;
    this.scheduler.update(desired);
    // Persisting inside the serial section keeps state-file writes in order with the applies.
    return this.serial(async () => {
      this.changedChecks.clear(); // this apply has the newest health
      const r = await this.inner.apply(applyHealth(desired, this.scheduler.health()));
      this.appliedInFull = desired;
      await this.persist();
      return r;
    });
  }

  /** Called on every transition (the report publisher sends a report right away). */
  onHealthChange(fn: (t: Transition) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async health(): Promise<RealServerHealthSample[]> {
    const out: RealServerHealthSample[] = [];
    const status = this.scheduler.health();
    for (const svc of this.desired?.director?.services ?? []) {
      for (const dst of svc.destinations) {
        const c = effectiveCheck(svc, dst);
        const s = c && status.get(c.key);
        if (!s) continue;
        out.push({
          virtualService: svc.virtualService,
          realServer: dst.realServer,
          address: dst.address,
          port: dst.port,
          healthy: s.up,
          weight: s.up ? dst.weight : 0,
          since: s.since,
          lastResult: s.lastResult,
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    // Finish queued applies (and their state-file writes) before the checks and their state go.
    this.closed = true;
    await this.queue.catch(() => undefined);
    this.scheduler.stop();
    await this.inner.close?.();
  }

  private onTransition(t: Transition): void {
    if (this.closed) return;
    this.log.info({ check: t.key, up: t.up, result: t.detail }, t.up ? "real server up" : "real server down");
    for (const fn of this.listeners) {
      try {
        fn(t);
      } catch (err) {
        this.log.warn({ err: String(err) }, "health listener failed");
      }
    }
    // Bursts of transitions (a rack going away) coalesce into one re-apply of the newest health.
    if (!this.desired) return;
    this.changedChecks.add(t.key);
    if (this.reapplyQueued) return;
    this.reapplyQueued = true;
    void this.serial(async () => {
      this.reapplyQueued = false;
      const ds = this.desired!;
      const keys = this.changedChecks;
      if (keys.size === 0) return; // an apply() since took the newest health
      this.changedChecks = new Set();
      let r = await this.applyChecks(ds, keys);
      if (r) this.stats.fast++;
      else {
        r = await this.inner.apply(applyHealth(ds, this.scheduler.health()));
        this.appliedInFull = ds;
        this.stats.full++;
      }
      if (r.errors.length) this.log.warn({ errors: r.errors }, "applying a health change failed; the backend's resync retries it");
      await this.persist();
    }).catch((err) => this.log.error({ err: String(err) }, "applying a health change failed"));
  }

  /**
   * The fast path: the services using `keys`, recomputed with the current health, through the inner
   * backend's applyServices(). undefined when it does not apply (see the header).
   */
  private async applyChecks(ds: HostDesiredState, keys: ReadonlySet<string>): Promise<ApplyResult | undefined> {
    const patcher = patcherOf(this.inner);
    if (!patcher || this.appliedInFull !== ds) return undefined;
    const configured = ds.director?.services ?? [];
    if (this.byCheck?.desired !== ds) {
      const services = new Map<string, number[]>();
      configured.forEach((svc, i) => {
        if (!svc.healthCheck) return;
        for (const dst of svc.destinations) {
          const c = effectiveCheck(svc, dst);
          if (!c) continue;
          const l = services.get(c.key);
          if (!l) services.set(c.key, [i]);
          else if (l[l.length - 1] !== i) l.push(i);
        }
      });
      this.byCheck = { desired: ds, services };
    }
    const at = new Set<number>();
    for (const k of keys) for (const i of this.byCheck.services.get(k) ?? []) at.add(i);
    if (at.size === 0) return { errors: [] };
    const health = this.scheduler.health();
    return patcher.applyServices([...at].sort((a, b) => a - b).map((i) => serviceWithHealth(configured[i]!, health)));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The configured state (once per state) and the down set (when it changed). Written in this order:
   * check keys name the real server and the check, so a down set read with the other configured state
   * (a crash in between) is still right for every check the two share.
   */
  private async persist(): Promise<void> {
    if (!this.path || !this.desiredPath || !this.desired) return;
    const ds = this.desired;
    const down = [...this.scheduler.health()].filter(([, s]) => !s.up).map(([k]) => k).sort();
    const downStamp = down.join(",");
    try {
      if (this.persistedDesired !== ds && (ds.hash === "" || this.persistedDesired !== ds.hash)) {
        await atomicWrite(this.desiredPath, toBinary(HostDesiredStateSchema, ds));
        this.persistedDesired = ds.hash || ds;
        this.persistedDown = undefined; // an older file may still hold the state inline
      }
      if (downStamp !== this.persistedDown) {
        await atomicWrite(this.path, JSON.stringify({ down }));
        this.persistedDown = downStamp;
      }
    } catch (err) {
      this.log.warn({ err: String(err), path: this.path }, "cannot persist health state");
    }
  }
}

/** temp file + rename: a crash leaves the old or the new file. */
async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}
