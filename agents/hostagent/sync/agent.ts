// The agent's sync loop: NATS connection → own-key watch → KernelBackend.apply → state file → report.
//
// Rules (issue 3):
//  - never apply a revision ≤ the one applied (the relay's publish is idempotent and may repeat or
//    arrive late; a replayed old value after a NATS restore must not roll the kernel back);
//  - newest wins: states that arrive while an apply runs are coalesced, only the latest is applied;
//  - the applied revision/hash is persisted before it is reported, so a restart resumes from it;
//  - one report per apply (its result); APPLYING is reported only when an apply is still running
//    after `applyingReportMs` — a fast apply's APPLYING report would be superseded within
//    milliseconds, and it doubled the reports per change (bench:fanout: 1 000 agents × 2 timeout
//    changes/s);
//  - a failed apply (per-object errors) is retried every retrySeconds until it succeeds or a newer
//    state replaces it; the report says ERROR with the errors meanwhile.
import { randomUUID } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AgentPhase } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import type { AgentConfig } from "../config.js";
import type { KernelBackend, ObjectError } from "../kernel/backend.js";
import { ReportPublisher } from "../report/publisher.js";
import { jitteredBackoff, sleep } from "./backoff.js";
import { silentLog, type Log } from "./log.js";
import { StateStore, type AppliedState } from "./state.js";
import { DesiredStateWatch } from "./watch.js";

export interface StartAgentOptions {
  config: AgentConfig;
  backend: KernelBackend;
  log?: Log;
  /** An apply still running after this long is reported as APPLYING (default 200 ms). */
  applyingReportMs?: number;
}

const APPLYING_REPORT_MS = 200;

export interface Agent {
  readonly agentId: string;
  applied(): AppliedState;
  seenRevision(): bigint;
  /** Stops watching and reporting and closes the NATS connection (the backend stays as it is). */
  stop(): Promise<void>;
}

export async function startAgent(opts: StartAgentOptions): Promise<Agent> {
  const { config: cfg, backend } = opts;
  const log = opts.log ?? silentLog;
  const applyingReportMs = opts.applyingReportMs ?? APPLYING_REPORT_MS;
  const agentId = randomUUID();
  const store = new StateStore(cfg.stateDir, cfg.site, cfg.host);
  let applied = await store.load();
  let seen = applied.revision;
  let phase = AgentPhase.IDLE;
  let errors: ObjectError[] = [];
  /** The desired state could not be fetched (a missing or corrupt state object, watch.ts). */
  let syncErrors: ObjectError[] = [];
  let pending: HostDesiredState | undefined;
  let applying = false;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  const stop = new AbortController();

  const nc = await connectWithRetry(cfg, agentId, stop.signal, log);

  const reports = new ReportPublisher({
    nc,
    site: cfg.site,
    host: cfg.host,
    agentId,
    subjectPrefix: cfg.statusSubjectPrefix,
    heartbeatSeconds: cfg.heartbeatSeconds,
    countersSeconds: cfg.countersSeconds,
    backend,
    view: () => {
      // The backend's standing errors (a NAT return path broken behind the agent's back) count like an apply's.
      const standing = [...syncErrors, ...(backend.standingErrors?.() ?? [])].filter((s) => !errors.some((e) => e.object === s.object && e.message === s.message));
      if (standing.length === 0) return { appliedRevision: applied.revision, appliedHash: applied.hash, seenRevision: seen, phase, errors };
      return { appliedRevision: applied.revision, appliedHash: applied.hash, seenRevision: seen, phase: phase === AgentPhase.IDLE ? AgentPhase.ERROR : phase, errors: [...errors, ...standing] };
    },
    log,
  });

  function offer(ds: HostDesiredState): void {
    if (ds.revision > seen) seen = ds.revision;
    if (ds.revision <= applied.revision) return; // never older, never the same again
    if (pending && pending.revision >= ds.revision) return;
    pending = ds;
    void drain();
  }

  async function drain(): Promise<void> {
    if (applying) return;
    applying = true;
    try {
      while (!stopped && pending && pending.revision > applied.revision) {
        const ds = pending;
        pending = undefined;
        clearTimeout(retryTimer);
        phase = AgentPhase.APPLYING;
        const slow = setTimeout(() => reports.publish(), applyingReportMs);
        let result;
        try {
          result = await backend.apply(ds);
        } catch (err) {
          result = { errors: [{ object: "kernel", operation: "apply", message: String((err as Error)?.message ?? err) }] };
        } finally {
          clearTimeout(slow);
        }
        if (stopped) return;
        if (result.drift?.length) reports.addDrift(result.drift);
        if (result.errors.length === 0) {
          const next = { revision: ds.revision, hash: ds.hash };
          try {
            store.save(next);
          } catch (err) {
            log.error({ err: String(err), path: store.path }, "cannot persist applied revision");
          }
          applied = next;
          errors = [];
          phase = AgentPhase.IDLE;
          log.info({ revision: ds.revision.toString(), hash: ds.hash }, "applied desired state");
        } else {
          errors = result.errors;
          phase = AgentPhase.ERROR;
          log.warn({ revision: ds.revision.toString(), errors: result.errors.length }, "apply failed; will retry");
          retryTimer = setTimeout(() => {
            if (!pending || pending.revision < ds.revision) pending = ds;
            void drain();
          }, cfg.retrySeconds * 1000);
          retryTimer.unref();
        }
        reports.publish();
      }
    } finally {
      applying = false;
    }
  }

  const watch = new DesiredStateWatch({
    nc,
    bucket: cfg.bucket,
    site: cfg.site,
    host: cfg.host,
    onState: offer,
    onSyncError: (e) => {
      if (!e && syncErrors.length === 0) return;
      syncErrors = e ? [e] : [];
      reports.publish();
    },
    resyncMs: cfg.resyncSeconds * 1000,
    backoffBaseMs: cfg.backoffBaseMs,
    backoffMaxMs: cfg.backoffMaxMs,
    log,
  });
  watch.start();
  reports.start();
  reports.publish();

  return {
    agentId,
    applied: () => applied,
    seenRevision: () => seen,
    async stop() {
      if (stopped) return;
      stopped = true;
      stop.abort();
      clearTimeout(retryTimer);
      reports.close();
      await watch.close();
      store.close();
      await nc.close().catch(() => undefined);
    },
  };
}

/** First connect retried with jittered backoff; afterwards the client reconnects forever, jittered. */
async function connectWithRetry(cfg: AgentConfig, agentId: string, signal: AbortSignal, log: Log): Promise<NatsConnection> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect({
        servers: cfg.natsServers,
        name: `lvsfleet-agent ${cfg.site}.${cfg.host} ${agentId}`,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: cfg.backoffBaseMs,
        reconnectJitter: cfg.backoffBaseMs,
        pingInterval: 10_000,
        timeout: 5_000,
        // nats.js otherwise builds an Error (for its stack) up front for every request — the
        // watch's two resync gets per period — whether or not it ever fails.
        noAsyncTraces: true,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const wait = jitteredBackoff(attempt, cfg.backoffBaseMs, cfg.backoffMaxMs);
      log.warn({ err: String(err), retryInMs: wait }, "cannot connect to NATS");
      await sleep(wait, signal);
    }
  }
}
