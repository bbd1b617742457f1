/**
 * bench:agent — the host agent's kernel backend at scale, with the fake kernel.
 *
 *   npm run bench:agent [-- --services 10000 --reals 10 --runs 7]
 *
 * A Director desired state of `--services` TCP services (one VIP each, 198.18.0.0/15) × `--reals`
 * NAT real servers, applied through LinuxBackend with the in-memory kernel (FakeIpvs for IPVS,
 * kernel/fakes.ts for addresses, nft and sysctls) in this process. Then `--runs` full no-change
 * resyncs: each one snapshots everything (IPVS dump, address dump, sysctls), reconciles and writes
 * nothing. Reported: the median resync time, the writes of the last one (goal 0), and the process RSS
 * after the apply (it includes the fake kernel's own copy of the table, so it overstates the agent).
 *
 * quiesce_ms: health-check failure → weight 0. The same backend, wrapped in HealthCheckedBackend
 * (what `--kernel linux` runs), gets one more service whose real server is a real TCP listener on
 * 127.0.0.1 with a tcp check (--interval-ms 1000, --fall 3, rise 2). Each of --quiesce-runs trials
 * closes the listener and measures until the fake kernel's IPVS table holds weight 0 for it (the
 * checker's transition, then LinuxBackend.applyServices for the one service using that check: one
 * IPVS request, no dump or diff of the other 10,000), then reopens it and waits for the configured
 * weight again. `path` says how the transitions were applied (fast = applyServices, full = whole state). The reference is fall × interval: a failure is seen between
 * (fall − 1) × interval and fall × interval after the close (checks run every interval), plus the
 * apply.
 * Last line: rss_mb=… resync_ms=… writes=… quiesce_ms=… fall_x_interval_ms=…
 */
import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HostDesiredStateSchema, IpvsServiceSchema } from "../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "../agents/hostagent/kernel/fake-ipvs.js";
import { createFakeKernel } from "../agents/hostagent/kernel/fakes.js";
import { LinuxBackend } from "../agents/hostagent/kernel/linux-backend.js";
import { HealthCheckedBackend } from "../agents/hostagent/health/backend.js";
import { tcpServer } from "../agents/hostagent/health/testing.js";

const { values: args } = parseArgs({
  options: {
    services: { type: "string", default: "10000" },
    reals: { type: "string", default: "10" },
    runs: { type: "string", default: "7" },
    "quiesce-runs": { type: "string", default: "3" },
    "interval-ms": { type: "string", default: "1000" },
    fall: { type: "string", default: "3" },
  },
});
const nServices = Number(args.services);
const nReals = Number(args.reals);
const runs = Number(args.runs);
const quiesceRuns = Number(args["quiesce-runs"]);
const intervalMs = Number(args["interval-ms"]);
const fall = Number(args.fall);

/** The i-th address of 198.18.0.0/15 (131,072 of them). */
const net1518 = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

const desired = create(HostDesiredStateSchema, {
  site: "bench",
  host: "lb1",
  revision: 1n,
  director: {
    services: Array.from({ length: nServices }, (_, i) => ({
      virtualService: `vs-${i}`,
      addressFamily: AddressFamily.IPV4,
      protocol: Protocol.TCP,
      address: net1518(i),
      port: 80,
      scheduler: "wlc",
      persistencePrefixLength: 32,
      destinations: Array.from({ length: nReals }, (_, j) => ({
        realServer: `rs-${i}-${j}`,
        addressFamily: AddressFamily.IPV4,
        address: net1518(65536 + ((i * nReals + j) % 65536)),
        port: 8080 + Math.floor((i * nReals + j) / 65536),
        forwardMethod: ForwardMethod.NAT,
        weight: 1 + (j % 5),
      })),
    })),
    timeouts: {},
    addresses: Array.from({ length: nServices }, (_, i) => ({ interface: "lo", address: net1518(i), prefixLength: 32 })),
  },
  sysctls: [
    { key: "net.ipv4.ip_forward", value: "1" },
    { key: "net.ipv4.vs.conn_reuse_mode", value: "1" },
    { key: "net.ipv4.vs.expire_nodest_conn", value: "1" },
    { key: "net.ipv4.vs.expire_quiescent_template", value: "1" },
  ],
});

const dir = await mkdtemp(join(tmpdir(), "lvsfleet-bench-agent-"));
try {
  const ipvs = new FakeIpvs();
  const fk = createFakeKernel();
  fk.kernel.ipvsLoaded = true;
  const backend = new LinuxBackend({
    site: "bench",
    host: "lb1",
    stateDir: dir,
    openIpvs: async () => ipvs,
    ipvsLoaded: () => true,
    links: fk.links,
    addresses: fk.addresses,
    fwmarks: fk.fwmarks,
    sysctls: fk.sysctls,
  });

  const t0 = performance.now();
  const first = await backend.apply(desired);
  const applyMs = performance.now() - t0;
  if (first.errors.length) throw new Error(`apply failed: ${JSON.stringify(first.errors.slice(0, 3))}`);
  const applied = backend.lastCycle!;
  console.log(`apply: services=${nServices} reals=${nReals} ops=${applied.ops} writes=${applied.writes} ms=${applyMs.toFixed(0)}`);
  globalThis.gc?.();
  const rssMb = process.memoryUsage().rss / 2 ** 20;

  const times: number[] = [];
  const cpu: number[] = [];
  let last = backend.lastCycle!;
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    const c = process.cpuUsage();
    const r = await backend.resync();
    times.push(performance.now() - s);
    const cu = process.cpuUsage(c);
    cpu.push((cu.user + cu.system) / 1000);
    last = r!;
    if (r!.errors.length) throw new Error(`resync failed: ${JSON.stringify(r!.errors.slice(0, 3))}`);
    console.log(`resync ${i + 1}: ms=${times[i]!.toFixed(1)} cpu_ms=${cpu[i]!.toFixed(1)} snapshot_ms=${r!.snapshotMs.toFixed(1)} reconcile_ms=${r!.reconcileMs.toFixed(1)} ops=${r!.ops} writes=${r!.writes} ipvs_requests=${r!.ipvsRequests}`);
  }
  const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const cpuMedian = [...cpu].sort((a, b) => a - b)[Math.floor(cpu.length / 2)]!;
  // Wall time on a shared machine includes waiting for a CPU; the process's own CPU time does not.
  console.log(`median: wall ${median.toFixed(0)} ms, cpu ${cpuMedian.toFixed(0)} ms, load average ${(await import("node:os")).loadavg()[0]!.toFixed(1)}`);

  // --- quiesce: health-check failure → weight 0 in the (fake) kernel's IPVS table -----------------
  const listener = await tcpServer();
  const WEIGHT = 5;
  const checked = create(HostDesiredStateSchema, {
    ...desired,
    revision: 2n,
    hash: "bench-quiesce",
    director: {
      ...desired.director!,
      services: [
        ...desired.director!.services,
        create(IpvsServiceSchema, {
          virtualService: "vs-checked",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "198.19.255.254",
          port: 80,
          scheduler: "wlc",
          persistencePrefixLength: 32,
          destinations: [{ realServer: "rs-checked", addressFamily: AddressFamily.IPV4, address: "127.0.0.1", port: listener.port, forwardMethod: ForwardMethod.NAT, weight: WEIGHT }],
          healthCheck: {
            kind: { case: "tcp", value: {} },
            interval: { seconds: BigInt(Math.floor(intervalMs / 1000)), nanos: (intervalMs % 1000) * 1e6 },
            timeout: { seconds: BigInt(Math.floor(intervalMs / 1000)), nanos: (intervalMs % 1000) * 1e6 },
            rise: 2,
            fall,
          },
        }),
      ],
    },
  });
  const health = new HealthCheckedBackend(backend);
  let detectedAt = 0;
  health.onHealthChange((t) => {
    if (!t.up) detectedAt = performance.now();
  });
  /** The weight the fake IPVS table holds for the checked real server. */
  const kernelWeight = () => {
    for (const s of ipvs.table.values()) for (const d of s.dests.values()) if (d.address === "127.0.0.1" && d.port === listener.port) return d.weight;
    return undefined;
  };
  const until = async (what: string, pred: () => boolean, timeoutMs = 180_000) => {
    const end = performance.now() + timeoutMs;
    while (!pred()) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    return performance.now();
  };
  const r2 = await health.apply(checked);
  if (r2.errors.length) throw new Error(`apply failed: ${JSON.stringify(r2.errors.slice(0, 3))}`);
  const quiesce: number[] = [];
  const detect: number[] = [];
  for (let i = 0; i < quiesceRuns; i++) {
    await until("the configured weight", () => kernelWeight() === WEIGHT);
    // Let a few checks pass so the failure lands at a random phase of the check interval.
    await new Promise((r) => setTimeout(r, intervalMs * (2 + Math.random())));
    detectedAt = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await listener.stop();
    const t1 = await until("weight 0", () => kernelWeight() === 0);
    const cu = process.cpuUsage(c0);
    quiesce.push(t1 - t0);
    detect.push(detectedAt - t0);
    // The kernel holds weight 0 a moment before the backend has recorded the cycle: wait for it.
    await until("the transition recorded", () => health.stats.fast + health.stats.full === 2 * i + 1);
    const c = backend.lastCycle!;
    console.log(`quiesce ${i + 1}: close → weight 0 ms=${(t1 - t0).toFixed(0)} (check down after ${(detectedAt - t0).toFixed(0)} ms, apply ${(t1 - detectedAt).toFixed(0)} ms; process cpu ${((cu.user + cu.system) / 1000).toFixed(0)} ms; last cycle ops=${c.ops} ipvs_requests=${c.ipvsRequests} path fast=${health.stats.fast} full=${health.stats.full})`);
    await listener.start();
  }
  await until("the configured weight back", () => kernelWeight() === WEIGHT);
  await listener.stop();
  const qMedian = [...quiesce].sort((a, b) => a - b)[Math.floor(quiesce.length / 2)]!;
  const dMedian = [...detect].sort((a, b) => a - b)[Math.floor(detect.length / 2)]!;
  console.log(`quiesce median: ${qMedian.toFixed(0)} ms (check down ${dMedian.toFixed(0)} ms + apply ${(qMedian - dMedian).toFixed(0)} ms); reference fall × interval = ${fall} × ${intervalMs} = ${fall * intervalMs} ms; load average ${(await import("node:os")).loadavg()[0]!.toFixed(1)}`);
  await health.close();
  console.log(`(rss includes the fake kernel's table)`);
  console.log(`rss_mb=${rssMb.toFixed(0)} resync_ms=${median.toFixed(0)} resync_cpu_ms=${cpuMedian.toFixed(0)} writes=${last.writes} quiesce_ms=${qMedian.toFixed(0)} fall_x_interval_ms=${fall * intervalMs}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
