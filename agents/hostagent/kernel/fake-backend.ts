// A recording KernelBackend: remembers every desired state it was handed and can be told to fail.
// For tests and the fan-out benchmark (thousands of agents in one process); the real kernel is tested
// separately with the real adapters.
import type { HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { ApplyResult, KernelBackend, ObjectError, ServiceCountersSample } from "./backend.js";

export interface FakeApply {
  revision: bigint;
  hash: string;
  desired: HostDesiredState;
  at: number;
}

export class FakeBackend implements KernelBackend {
  readonly applies: FakeApply[] = [];
  /** The state the "kernel" holds now (the last successful apply). */
  current: HostDesiredState | undefined;
  /** When set, apply returns these errors (and does not change `current`). */
  failWith: ObjectError[] | undefined;
  /** Artificial apply latency in ms. */
  delayMs = 0;
  private listeners: Array<(a: FakeApply) => void> = [];

  async apply(desired: HostDesiredState): Promise<ApplyResult> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const rec: FakeApply = { revision: desired.revision, hash: desired.hash, desired, at: Date.now() };
    this.applies.push(rec);
    if (this.failWith && this.failWith.length > 0) return { errors: [...this.failWith] };
    this.current = desired;
    for (const l of this.listeners) l(rec);
    return { errors: [] };
  }

  /**
   * Deterministic counters: service i (0-based, desired order), destination j get
   * connections 100·(i+1)+j+1, packets ×10 (in) / ×8 (out), bytes ×1000 (in) / ×4000 (out); totals are
   * the destinations' sums; active = j+1, inactive = j. `countersReads` counts the calls.
   */
  async counters(): Promise<ServiceCountersSample[]> {
    this.countersReads++;
    return (this.current?.director?.services ?? []).map((s, i) => {
      const destinations = s.destinations.map((d, j) => {
        const c = BigInt(100 * (i + 1) + j + 1);
        return {
          realServer: d.realServer,
          address: d.address,
          port: d.port,
          counters: { connections: c, inPackets: c * 10n, outPackets: c * 8n, inBytes: c * 1000n, outBytes: c * 4000n },
          activeConnections: j + 1,
          inactiveConnections: j,
          persistentConnections: 0,
          weight: d.weight,
        };
      });
      const sum = (k: "connections" | "inPackets" | "outPackets" | "inBytes" | "outBytes") => destinations.reduce((n, d) => n + d.counters[k], 0n);
      const proto = s.protocol === 1 ? "tcp" : s.protocol === 2 ? "udp" : "sctp";
      const host = s.address.includes(":") ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
      return {
        virtualService: s.virtualService,
        ipvsService: s.fwmark ? `fwmark ${s.address.includes(":") ? "ipv6" : "ipv4"} ${s.fwmark}` : `${proto} ${host}`,
        totals: { connections: sum("connections"), inPackets: sum("inPackets"), outPackets: sum("outPackets"), inBytes: sum("inBytes"), outBytes: sum("outBytes") },
        destinations,
      };
    });
  }
  countersReads = 0;

  /** Resolves once a successful apply satisfies `pred` (checked against past applies first). */
  waitFor(pred: (a: FakeApply) => boolean, timeoutMs = 10_000): Promise<FakeApply> {
    const done = this.applies.find((a) => a.desired === this.current && pred(a));
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== on);
        reject(new Error(`fake backend: no matching apply within ${timeoutMs} ms (last ${this.current?.revision ?? "none"})`));
      }, timeoutMs);
      const on = (a: FakeApply) => {
        if (!pred(a)) return;
        clearTimeout(t);
        this.listeners = this.listeners.filter((l) => l !== on);
        resolve(a);
      };
      this.listeners.push(on);
    });
  }
}
