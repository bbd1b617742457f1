// A KernelBackend decorator that runs the health checks: the sync loop hands it the configured
// desired state; it starts/stops checks (scheduler.ts) and gives the inner backend
// applyHealth(desired, health) — on every desired state and again on every health transition, so a
// real server going down is one weight edit in the kernel (the reconciler's diff), not a resync.
//
// Restarts: the sync loop does not re-apply an already-applied revision, so the configured state
// and which checks were down are persisted here (<stateDir>/agent-<site>.<host>.health.json) and
// loaded by load(): checks resume after a restart, and a real server that was down starts down (it
// needs `rise` successes, instead of getting its weight back until `fall` failures).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { ApplyResult, DriftRepair, KernelBackend, RealServerHealthSample, ServiceCountersSample } from "../kernel/backend.js";
import { silentLog, type Log } from "../sync/log.js";
import { applyHealth } from "./apply.js";
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

export class HealthCheckedBackend implements KernelBackend {
  readonly scheduler: HealthScheduler;
  counters?: () => Promise<ServiceCountersSample[]>;
  takeDrift?: () => DriftRepair[];
  private desired: HostDesiredState | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private reapplyQueued = false;
  private readonly initialDown = new Set<string>();
  private readonly listeners = new Set<(t: Transition) => void>();
  private readonly log: Log;
  private readonly path: string | undefined;
  private persistedHash: string | undefined;
  private encoded: { desired: HostDesiredState; base64: string } | undefined;
  private closed = false;

  constructor(
    readonly inner: KernelBackend,
    opts: HealthCheckedBackendOptions = {},
  ) {
    this.log = opts.log ?? silentLog;
    this.path = opts.stateDir ? join(opts.stateDir, `agent-${opts.site ?? "site"}.${opts.host ?? "host"}.health.json`) : undefined;
    this.scheduler = new HealthScheduler({ ...opts.scheduler, initialDown: this.initialDown, onTransition: (t) => this.onTransition(t) });
    if (inner.counters) this.counters = () => inner.counters!();
    if (inner.takeDrift) this.takeDrift = () => inner.takeDrift!();
  }

  /** Resumes the checks of the last configured state (after an agent restart). */
  async load(): Promise<void> {
    if (!this.path || this.desired) return;
    try {
      const saved = JSON.parse(await readFile(this.path, "utf8")) as { desired: string; down: string[] };
      const ds = fromBinary(HostDesiredStateSchema, Buffer.from(saved.desired, "base64"));
      for (const k of saved.down) this.initialDown.add(k);
      this.desired = ds;
      this.persistedHash = `${ds.hash}|${[...saved.down].sort().join(",")}`;
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
      const r = await this.inner.apply(applyHealth(desired, this.scheduler.health()));
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
    // Bursts of transitions (a rack going away) coalesce into one apply of the newest health.
    if (!this.desired || this.reapplyQueued) return;
    this.reapplyQueued = true;
    void this.serial(async () => {
      this.reapplyQueued = false;
      const ds = this.desired!;
      const r = await this.inner.apply(applyHealth(ds, this.scheduler.health()));
      if (r.errors.length) this.log.warn({ errors: r.errors }, "applying a health change failed; the backend's resync retries it");
      await this.persist();
    }).catch((err) => this.log.error({ err: String(err) }, "applying a health change failed"));
  }

  /**
   * The configured state, encoded once per state: a health transition changes only `down`, and
   * re-encoding a 10 000-service state on each one cost more CPU than the reconcile it triggers.
   */
  private encodedDesired(): string {
    const ds = this.desired!;
    if (this.encoded?.desired !== ds) this.encoded = { desired: ds, base64: Buffer.from(toBinary(HostDesiredStateSchema, ds)).toString("base64") };
    return this.encoded.base64;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async persist(): Promise<void> {
    if (!this.path || !this.desired) return;
    const down = [...this.scheduler.health()].filter(([, s]) => !s.up).map(([k]) => k).sort();
    const stamp = `${this.desired.hash}|${down.join(",")}`;
    if (this.desired.hash !== "" && stamp === this.persistedHash) return;
    try {
      await mkdir(join(this.path, ".."), { recursive: true });
      const tmp = `${this.path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      await writeFile(tmp, JSON.stringify({ desired: this.encodedDesired(), down }));
      await rename(tmp, this.path);
      this.persistedHash = stamp;
    } catch (err) {
      this.log.warn({ err: String(err), path: this.path }, "cannot persist health state");
    }
  }
}
