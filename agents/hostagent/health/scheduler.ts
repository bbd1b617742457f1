// Runs the Director's health checks: one per (real server address:port, check spec), shared by every
// service that uses it (spec.ts makes the key), each on its own timer.
//
// State machine per check, like keepalived: a new check starts UP (keepalived without `alpha`), so
// adding a real server never waits rise × interval before it gets traffic; the price is that a dead
// new server receives connections until `fall` checks have failed. `initialDown` (e.g. what was down
// before an agent restart) starts those checks DOWN, needing `rise` successes. Then:
//   UP:   a failure counts; `fall` consecutive failures → DOWN; a success resets the count.
//   DOWN: a success counts; `rise` consecutive successes → UP; a failure resets the count.
// Timers: the first run is at a random point in [0, interval) so checks created together (a new
// desired state with 1,000 real servers) do not fire in lockstep; after that every `interval` from
// the start of the previous run, never overlapping (the timeout is clamped to the interval).
// update() keeps checks whose key is unchanged — counters, state and timer — and stops the rest.
import type { HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { CheckHealth } from "./apply.js";
import { effectiveCheck, probeFor, type EffectiveCheck } from "./spec.js";
import type { Probe, Target } from "./types.js";

export interface CheckStatus extends CheckHealth {
  up: boolean;
  /** When `up` last changed (or the check started). */
  since: Date;
  /** Detail of the last result; "" before the first run. */
  lastResult: string;
  target: Target;
}

export interface Transition {
  key: string;
  target: Target;
  up: boolean;
  detail: string;
  at: Date;
}

export interface SchedulerOptions {
  onTransition?: (t: Transition) => void;
  /** Keys that start DOWN (default: every check starts UP). */
  initialDown?: ReadonlySet<string>;
  /** Test seam: the probe for a check (default: the real one for its kind). */
  probe?: (c: EffectiveCheck) => Probe;
  random?: () => number;
}

interface Running {
  check: EffectiveCheck;
  probe: Probe;
  status: CheckStatus;
  successes: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

export class HealthScheduler {
  private readonly checks = new Map<string, Running>();
  private readonly status = new Map<string, CheckStatus>();
  private closed = false;

  constructor(private readonly opts: SchedulerOptions = {}) {}

  /** Starts checks new in `desired`, stops those gone, leaves the rest running untouched. */
  update(desired: HostDesiredState): void {
    if (this.closed) return;
    const wanted = new Map<string, EffectiveCheck>();
    for (const svc of desired.director?.services ?? []) {
      for (const dst of svc.destinations) {
        const c = effectiveCheck(svc, dst);
        if (c && !wanted.has(c.key)) wanted.set(c.key, c);
      }
    }
    for (const [key, r] of this.checks) {
      if (!wanted.has(key)) this.stopOne(key, r);
    }
    for (const [key, c] of wanted) {
      if (!this.checks.has(key)) this.startOne(c);
    }
  }

  /** Current status per check key (a live view; applyHealth reads `up`). */
  health(): ReadonlyMap<string, CheckStatus> {
    return this.status;
  }

  /** Number of checks running. */
  get size(): number {
    return this.checks.size;
  }

  stop(): void {
    this.closed = true;
    for (const [key, r] of this.checks) this.stopOne(key, r);
  }

  private startOne(c: EffectiveCheck): void {
    const up = !this.opts.initialDown?.has(c.key);
    const r: Running = {
      check: c,
      probe: (this.opts.probe ?? ((x: EffectiveCheck) => probeFor(x.spec)))(c),
      status: { up, since: new Date(), lastResult: "", target: c.target },
      successes: 0,
      failures: 0,
      timer: undefined,
      stopped: false,
    };
    this.checks.set(c.key, r);
    this.status.set(c.key, r.status);
    const jitter = Math.floor((this.opts.random ?? Math.random)() * c.intervalMs);
    this.schedule(r, jitter);
  }

  private stopOne(key: string, r: Running): void {
    r.stopped = true;
    clearTimeout(r.timer);
    this.checks.delete(key);
    this.status.delete(key);
  }

  private schedule(r: Running, delayMs: number): void {
    r.timer = setTimeout(() => void this.runOnce(r), delayMs);
    r.timer.unref();
  }

  private async runOnce(r: Running): Promise<void> {
    const started = Date.now();
    let result;
    try {
      result = await r.probe(r.check.target, r.check.timeoutMs);
    } catch (err) {
      result = { ok: false, detail: `check error: ${(err as Error)?.message ?? String(err)}` };
    }
    if (r.stopped) return; // removed while it ran: the result belongs to nobody
    const s = r.status;
    s.lastResult = result.detail;
    let flipped = false;
    if (result.ok) {
      r.failures = 0;
      r.successes++;
      if (!s.up && r.successes >= r.check.rise) flipped = true;
    } else {
      r.successes = 0;
      r.failures++;
      if (s.up && r.failures >= r.check.fall) flipped = true;
    }
    if (flipped) {
      s.up = !s.up;
      s.since = new Date();
      r.successes = 0;
      r.failures = 0;
      this.opts.onTransition?.({ key: r.check.key, target: r.check.target, up: s.up, detail: result.detail, at: s.since });
    }
    if (!r.stopped) this.schedule(r, Math.max(0, r.check.intervalMs - (Date.now() - started)));
  }
}
