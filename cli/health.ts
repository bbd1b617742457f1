/**
 * `lvsfleet health <site> [--vs VS] [--json]`: real server health as each Director checks it
 * (FleetService.ListRealServerHealth), printed like `ipvsadm -Ln` with the Director and a health column:
 *
 *   Prot LocalAddress:Port
 *     -> RemoteAddress:Port           Director         Weight Health       Since                    LastResult
 *   TCP  192.0.2.1:80
 *     -> 10.0.0.1:80                  lb1              0      unhealthy    2026-11-25T19:30:00.000Z connect ECONNREFUSED
 *
 * Weight is what the Director has set now (0 = quiesced by its check). "unknown" = the Director is
 * OFFLINE (last known state in brackets) or has not reported yet; "not-checked" = no check runs.
 * Formatting is pure and exported; runHealth is the only I/O.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  FleetService,
  HealthState,
  HostState,
  ListRealServerHealthResponseSchema,
  type RealServerHealthStatus,
} from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { parseCommand, reportCallError } from "./command.js";
import { DEFAULT_ADDR } from "./args.js";
import { ipvsadmService } from "./stats.js";
import { GLOBAL_FLAGS } from "./usage.js";

export type HealthClient = Pick<Client<typeof FleetService>, "listRealServerHealth" | "close">;

export const HEALTH_USAGE = `Usage: lvsfleet health <site> [--vs VS] [--json]

Real server health as each Director's checks see it, like \`ipvsadm -Ln\` with the Director, the
weight it has set now (0 = quiesced by a failed check), the health and since when. "unknown" means
the Director is OFFLINE (its last known state in brackets) or has not reported yet — never healthy;
"not-checked" means the Director runs no check for that real server.
  --vs VS         only this virtual service (id or sites/SITE/virtualServices/VS)

${GLOBAL_FLAGS}`;

const CALL_TIMEOUT_MS = 15_000;

const WORDS: Record<HealthState, string> = {
  [HealthState.UNSPECIFIED]: "?",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.UNHEALTHY]: "unhealthy",
  [HealthState.UNKNOWN]: "unknown",
  [HealthState.NOT_CHECKED]: "not-checked",
};

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export const HEALTH_HEADER = `Prot LocalAddress:Port\n  -> RemoteAddress:Port           Director         Weight Health       Since                    LastResult\n`;

function healthWord(h: RealServerHealthStatus): string {
  if (h.state !== HealthState.UNKNOWN) return WORDS[h.state];
  const why = h.hostState === HostState.OFFLINE ? "offline" : "";
  const last = h.lastKnownState !== HealthState.UNSPECIFIED ? WORDS[h.lastKnownState] : "";
  return `unknown${why || last ? ` (${[why, last && `was ${last}`].filter(Boolean).join(", ")})` : ""}`;
}

/** The entries grouped per IPVS service (in the order given), one line per (real server, Director). */
export function formatHealth(site: string, hs: readonly RealServerHealthStatus[]): string {
  if (hs.length === 0) return `no real servers in site ${site}\n`;
  let out = HEALTH_HEADER;
  let current: string | undefined;
  for (const h of hs) {
    if (h.virtualService !== current) {
      current = h.virtualService;
      out += `${h.ipvsService ? ipvsadmService(h.ipvsService, h.virtualService) : `?    ${h.virtualService}`}\n`;
    }
    const since = h.since ? timestampDate(h.since).toISOString() : "-";
    const weight = h.state === HealthState.HEALTHY || h.state === HealthState.UNHEALTHY ? String(h.weight) : "-";
    out += `  -> ${hostPort(h.address, h.port).padEnd(28)} ${h.host.padEnd(16)} ${weight.padEnd(6)} ${healthWord(h).padEnd(12)} ${since.padEnd(24)} ${h.lastResult}`.trimEnd() + "\n";
  }
  return out;
}

/** Runs `lvsfleet health …`; undefined when argv is another command. Exit 0 ok, 1 RPC error, 2 usage. */
export async function runHealth(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: { stdout(text: string): void; stderr(text: string): void },
  connect: (addr: string) => HealthClient = (addr) => createClient(FleetService, addr),
): Promise<number | undefined> {
  const first = argv.findIndex((a, i) => !a.startsWith("-") && !["--addr", "--reason"].includes(argv[i - 1] ?? ""));
  if (first < 0 || argv[first] !== "health") return undefined;
  const parsed = parseCommand(argv, io, HEALTH_USAGE, { vs: { type: "string" } });
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
    const r = await client.listRealServerHealth({ site, virtualService: vs }, opts);
    io.stdout(
      values.json === true
        ? toJsonString(ListRealServerHealthResponseSchema, create(ListRealServerHealthResponseSchema, r), { prettySpaces: 2 }) + "\n"
        : formatHealth(site, r.realServers),
    );
    return 0;
  } catch (err) {
    return reportCallError(err, addr, io);
  } finally {
    client.close();
  }
}
