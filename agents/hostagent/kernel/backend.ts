// The seam between the agent's sync loop and the kernel (kube-proxy style: desired state in, the
// adapter does the netlink/nftables/sysctl work). The real adapters live next to this file and come
// from the kernel issue; kernel/fake-backend.ts records calls for tests and benchmarks.
//
// Deliberately small: the agent hands over a whole HostDesiredState and gets per-object errors back.
// Diffing against the kernel (what to add/remove, in which order) is the backend's business.
import type { HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";

/** One object the backend could not realise (maps to lvsfleet.v1.ObjectError). */
export interface ObjectError {
  /** E.g. "ipvs-service tcp 192.0.2.1:80", "address lo 192.0.2.1/32". */
  object: string;
  /** E.g. "add", "update", "delete". */
  operation: string;
  message: string;
}

/** A change found behind the agent's back and repaired during apply (lvsfleet.v1.DriftRepair). */
export interface DriftRepair {
  object: string;
  /** What was found, e.g. "weight 5 (want 1)", "missing". */
  found: string;
  time?: Date;
}

export interface ApplyResult {
  /** Empty = the kernel now matches `desired`. */
  errors: ObjectError[];
  drift?: DriftRepair[];
}

/** Counters of one service and its destinations (mirrors lvsfleet.v1.ServiceCounters). */
export interface ServiceCountersSample {
  virtualService: string;
  /** "tcp 192.0.2.1:80", "fwmark ipv4 7" (reconcile/keys.ts computeServiceKey). */
  ipvsService?: string;
  totals?: CountersSample;
  destinations?: Array<{
    realServer: string;
    address: string;
    port: number;
    counters?: CountersSample;
    activeConnections?: number;
    inactiveConnections?: number;
    persistentConnections?: number;
    weight?: number;
  }>;
}

export interface CountersSample {
  connections?: bigint;
  inPackets?: bigint;
  outPackets?: bigint;
  inBytes?: bigint;
  outBytes?: bigint;
  connectionRate?: bigint;
  inPacketRate?: bigint;
  outPacketRate?: bigint;
  inByteRate?: bigint;
  outByteRate?: bigint;
}

/** Health of one real server as this Director's checks see it (lvsfleet.v1.RealServerHealth). */
export interface RealServerHealthSample {
  virtualService: string;
  realServer: string;
  address: string;
  port: number;
  healthy: boolean;
  weight: number;
  since?: Date;
  lastResult?: string;
}

export interface KernelBackend {
  /**
   * Makes the kernel match `desired` (the whole state of this host; anything the agent owns that is
   * not in it is removed). Must be idempotent. Rejects only for failures that say nothing about
   * individual objects (e.g. netlink socket gone); those are reported as one error and retried.
   */
  apply(desired: HostDesiredState): Promise<ApplyResult>;
  /** IPVS counters, when the backend can read them; sent every `countersSeconds` (agent config). */
  counters?(): Promise<ServiceCountersSample[]>;
  /** Real-server health, when the backend runs checks; sent with heartbeats. */
  health?(): Promise<RealServerHealthSample[]>;
  /** Drift repaired by the backend's own periodic resync since the last call; sent with heartbeats. */
  takeDrift?(): DriftRepair[];
  /**
   * Errors the backend's own checks found since the last apply and that stand until a check finds
   * them fixed (LinuxBackend: the NAT return path, checked on every resync); in every report.
   */
  standingErrors?(): ObjectError[];
  close?(): Promise<void>;
}
