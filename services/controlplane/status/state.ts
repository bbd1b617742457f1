// Host state from what was published and what the agent last reported. Pure (the clock is a
// parameter): derived when read, because OFFLINE depends on time and STALE on the latest publish.
import { AgentPhase } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { HostState } from "../../../gen/lvsfleet/v1/fleet_service_pb.js";

/** Heartbeats missed before a host counts as OFFLINE. */
export const MISSED_HEARTBEATS = 3;

export interface StatusFacts {
  desiredRevision: bigint;
  desiredHash: string;
  appliedRevision: bigint;
  appliedHash: string;
  seenRevision: bigint;
  phase: AgentPhase;
  /** Undefined = never reported. */
  lastSeen: Date | undefined;
  heartbeatSeconds: number;
}

/** Has the agent applied the latest desired state published for it? */
export function upToDate(f: Pick<StatusFacts, "desiredRevision" | "desiredHash" | "appliedRevision" | "appliedHash">): boolean {
  // Equal hashes are equal kernel state, whatever revision they were stamped with.
  return f.appliedRevision >= f.desiredRevision || (f.appliedHash !== "" && f.appliedHash === f.desiredHash);
}

export function deriveState(f: StatusFacts, now: Date): HostState {
  if (!f.lastSeen) return HostState.OFFLINE;
  const window = MISSED_HEARTBEATS * Math.max(1, f.heartbeatSeconds) * 1000;
  if (now.getTime() - f.lastSeen.getTime() > window) return HostState.OFFLINE;
  if (upToDate(f)) return HostState.CONVERGED;
  if (f.phase === AgentPhase.ERROR) return HostState.ERROR;
  if (f.phase === AgentPhase.APPLYING || f.seenRevision >= f.desiredRevision) return HostState.APPLYING;
  return HostState.STALE;
}
