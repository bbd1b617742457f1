// Agent configuration: defaults < JSON config file < environment < command-line flags.
//
//   lvsfleet-agent --site fra1 --host lb1 [--nats nats://127.0.0.1:4222] [--config /etc/lvsfleet/agent.json]
//                  [--state-dir /var/lib/lvsfleet] [--heartbeat 5] [--counters-seconds 10] [--bucket lvsfleet-desired] [--kernel linux|fake]
//   env: LVSFLEET_SITE, LVSFLEET_HOST, NATS_URL, LVSFLEET_DESIRED_BUCKET, LVSFLEET_AGENT_CONFIG, LVSFLEET_STATE_DIR,
//        LVSFLEET_HEARTBEAT_SECONDS, LVSFLEET_COUNTERS_SECONDS (0 = no counters), LVSFLEET_KERNEL
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

export interface AgentConfig {
  site: string;
  host: string;
  /** NATS server URL(s), comma-separated in flags/env. */
  natsServers: string[];
  /** JetStream KV bucket holding one HostDesiredState per host (`<site>.<host>`). */
  bucket: string;
  /** Reports go to `<statusSubjectPrefix>.<site>.<host>`. */
  statusSubjectPrefix: string;
  /** Directory of the agent's small state file (last applied revision). */
  stateDir: string;
  heartbeatSeconds: number;
  /** A report with IPVS counters this often (seconds); 0 = counters off. */
  countersSeconds: number;
  /** Safety net besides the watch: re-read the key this often (seconds). */
  resyncSeconds: number;
  /** Retry of a failed apply (seconds). */
  retrySeconds: number;
  /** Reconnect/rewatch backoff: base and cap in ms; each wait is jittered (full jitter). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Which KernelBackend: "linux" (netlink, nftables, sysctls) or "fake" (records only, changes nothing). */
  kernel: KernelKind;
}

export type KernelKind = "linux" | "fake";

export const DEFAULTS: Omit<AgentConfig, "site" | "host"> = {
  natsServers: ["nats://127.0.0.1:4222"],
  bucket: "lvsfleet-desired",
  statusSubjectPrefix: "lvsfleet.status",
  stateDir: "/var/lib/lvsfleet",
  heartbeatSeconds: 5,
  countersSeconds: 10,
  resyncSeconds: 30,
  retrySeconds: 10,
  backoffBaseMs: 250,
  backoffMaxMs: 10_000,
  kernel: "linux",
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Site and host ids become one NATS subject token each: no dots, wildcards or spaces. */
const TOKEN = /^[A-Za-z0-9_-]{1,63}$/;

type FileConfig = Partial<Omit<AgentConfig, "natsServers">> & { natsServers?: string[] | string; natsUrl?: string };

function num(name: string, v: unknown): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

function nonNegative(name: string, v: unknown): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${name} must be a number ≥ 0 (0 = off), got ${JSON.stringify(v)}`);
  return n;
}

function servers(v: string | string[]): string[] {
  const list = (Array.isArray(v) ? v : v.split(",")).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError("NATS URL is empty");
  return list;
}

export function loadConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      site: { type: "string" },
      host: { type: "string" },
      nats: { type: "string" },
      config: { type: "string" },
      "state-dir": { type: "string" },
      heartbeat: { type: "string" },
      "counters-seconds": { type: "string" },
      bucket: { type: "string" },
      kernel: { type: "string" },
    },
    strict: true,
  });

  let file: FileConfig = {};
  const path = values.config ?? env.LVSFLEET_AGENT_CONFIG;
  if (path) {
    try {
      file = JSON.parse(readFileSync(path, "utf8")) as FileConfig;
    } catch (err) {
      throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
    }
    if (typeof file !== "object" || file === null || Array.isArray(file)) throw new ConfigError(`config file ${path}: not a JSON object`);
  }

  const site = values.site ?? env.LVSFLEET_SITE ?? file.site;
  const host = values.host ?? env.LVSFLEET_HOST ?? file.host;
  if (!site) throw new ConfigError("site is required (--site, LVSFLEET_SITE or \"site\" in the config file)");
  if (!host) throw new ConfigError("host is required (--host, LVSFLEET_HOST or \"host\" in the config file)");
  if (!TOKEN.test(site)) throw new ConfigError(`site ${JSON.stringify(site)}: use letters, digits, '-' or '_' (it is one NATS subject token)`);
  if (!TOKEN.test(host)) throw new ConfigError(`host ${JSON.stringify(host)}: use letters, digits, '-' or '_' (it is one NATS subject token)`);

  const nats = values.nats ?? env.NATS_URL ?? file.natsServers ?? file.natsUrl;
  const kernel = values.kernel ?? env.LVSFLEET_KERNEL ?? file.kernel ?? DEFAULTS.kernel;
  if (kernel !== "linux" && kernel !== "fake") throw new ConfigError(`kernel must be linux or fake, got ${JSON.stringify(kernel)}`);

  const cfg: AgentConfig = {
    ...DEFAULTS,
    ...file,
    site,
    host,
    natsServers: nats ? servers(nats) : DEFAULTS.natsServers,
    bucket: values.bucket ?? env.LVSFLEET_DESIRED_BUCKET ?? file.bucket ?? DEFAULTS.bucket,
    stateDir: values["state-dir"] ?? env.LVSFLEET_STATE_DIR ?? file.stateDir ?? DEFAULTS.stateDir,
    heartbeatSeconds: num("heartbeat", values.heartbeat ?? env.LVSFLEET_HEARTBEAT_SECONDS ?? file.heartbeatSeconds ?? DEFAULTS.heartbeatSeconds),
    countersSeconds: nonNegative(
      "counters-seconds",
      values["counters-seconds"] ?? env.LVSFLEET_COUNTERS_SECONDS ?? file.countersSeconds ?? DEFAULTS.countersSeconds,
    ),
    kernel,
  };
  for (const k of ["resyncSeconds", "retrySeconds", "backoffBaseMs", "backoffMaxMs"] as const) cfg[k] = num(k, cfg[k]);
  return cfg;
}
