/**
 * `lvsfleet stats <site> [--vs VS] [--json]`: the IPVS counters each Director of a site last
 * reported (FleetService.GetStats), printed per Director the way `ipvsadm -Ln --stats --exact` does:
 *
 *   Director lb1  (counters read 2026-11-25T19:30:00.000Z)
 *   Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
 *     -> RemoteAddress:Port
 *   TCP  192.0.2.1:80                      203     2030     1624   203000   812000
 *     -> 10.0.0.1:80                       101     1010      808   101000   404000
 *
 * Formatting is pure and exported for the unit tests; runStats is the only I/O.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { IpvsCounters } from "../gen/lvsfleet/v1/agent_report_pb.js";
import { FleetService, GetStatsResponseSchema, type DirectorStats } from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { parseCommand, reportCallError } from "./command.js";
import { DEFAULT_ADDR } from "./args.js";
import { GLOBAL_FLAGS } from "./usage.js";

export type StatsClient = Pick<Client<typeof FleetService>, "getStats" | "close">;

export const STATS_USAGE = `Usage: lvsfleet stats <site> [--vs VS] [--json]

The IPVS counters each Director of SITE last reported (agents send them every --counters-seconds),
per Director like \`ipvsadm -Ln --stats --exact\`: connections, packets and bytes per service and
real server. --json also has the rates and the active/inactive connections of each real server.
  --vs VS         only this virtual service (id or sites/SITE/virtualServices/VS)

${GLOBAL_FLAGS}`;

const CALL_TIMEOUT_MS = 15_000;

/** "tcp 192.0.2.1:80" → "TCP  192.0.2.1:80"; "fwmark ipv4 7" → "FWM  7". */
export function ipvsadmService(key: string, fallback: string): string {
  const m = /^(tcp|udp|sctp) (.+)$/.exec(key);
  if (m) return `${m[1]!.toUpperCase()}  ${m[2]!}`;
  const f = /^fwmark \S+ (\d+)$/.exec(key);
  if (f) return `FWM  ${f[1]!}`;
  return `?    ${fallback}`;
}

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function statCols(c: IpvsCounters | undefined): string {
  const v = [c?.connections, c?.inPackets, c?.outPackets, c?.inBytes, c?.outBytes];
  return v.map((n) => " " + String(n ?? 0n).padStart(8)).join("");
}

export const STATS_HEADER = `Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n`;

/** One Director's counters as `ipvsadm -Ln --stats --exact` prints them. */
export function formatDirectorStats(d: DirectorStats): string {
  const at = d.time ? ` (counters read ${timestampDate(d.time).toISOString()})` : "";
  let out = `Director ${d.host}${at}\n${STATS_HEADER}`;
  for (const s of d.services) {
    out += `${ipvsadmService(s.ipvsService, s.virtualService).padEnd(33)}${statCols(s.totals)}\n`;
    for (const dst of s.destinations) out += `  -> ${hostPort(dst.address, dst.port).padEnd(28)}${statCols(dst.counters)}\n`;
  }
  return out;
}

export function formatStats(site: string, ds: readonly DirectorStats[]): string {
  if (ds.length === 0) return `no counters reported for site ${site} yet (Directors report every --counters-seconds)\n`;
  return ds.map(formatDirectorStats).join("\n");
}

/** Runs `lvsfleet stats …`; undefined when argv is another command. Exit 0 ok, 1 RPC error, 2 usage. */
export async function runStats(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: { stdout(text: string): void; stderr(text: string): void },
  connect: (addr: string) => StatsClient = (addr) => createClient(FleetService, addr),
): Promise<number | undefined> {
  const first = argv.findIndex((a, i) => !a.startsWith("-") && !["--addr", "--reason"].includes(argv[i - 1] ?? ""));
  if (first < 0 || argv[first] !== "stats") return undefined;
  const parsed = parseCommand(argv, io, STATS_USAGE, { vs: { type: "string" } });
  if (typeof parsed === "number") return parsed;
  const { values, positionals, usageError } = parsed;
  if (positionals.length < 2) return usageError("missing <site>");
  if (positionals.length > 2) return usageError(`unexpected argument ${JSON.stringify(positionals[2])}`);
  const site = positionals[1]!.replace(/^sites\//, "");
  const vs = typeof values.vs === "string" ? values.vs : "";
  const addr = (values.addr as string | undefined) ?? env.LVSFLEET_ADDR ?? DEFAULT_ADDR;
  const client = connect(addr);
  const opts: CallOptions = { timeoutMs: CALL_TIMEOUT_MS, metadata: typeof values.reason === "string" ? { "x-lvsfleet-reason": values.reason } : {} };
  try {
    const r = await client.getStats({ site, virtualService: vs }, opts);
    io.stdout(values.json === true ? toJsonString(GetStatsResponseSchema, create(GetStatsResponseSchema, r), { prettySpaces: 2 }) + "\n" : formatStats(site, r.directors));
    return 0;
  } catch (err) {
    return reportCallError(err, addr, io);
  } finally {
    client.close();
  }
}
