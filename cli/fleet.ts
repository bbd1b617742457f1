/**
 * `lvsfleet hosts` and `lvsfleet rollout wait`: the FleetService (distribution status) from the
 * command line.
 *
 *   lvsfleet hosts [--site S] [--state CONVERGED|APPLYING|ERROR|STALE|OFFLINE …]
 *   lvsfleet rollout wait [--revision N] [--site S] [--timeout 60s]
 *
 * `rollout wait` asks WaitForRollout (one call per site: the RPC is scoped to a site) for the
 * verdict and follows WatchHostStatuses meanwhile for a progress line: `\r3/50 hosts at revision
 * 1234` rewritten in place on a terminal, one plain line per change otherwise (logs, CI).
 * Formatting is pure and exported for the unit tests; the runner is the only I/O.
 */
import { parseArgs } from "node:util";
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  FleetService,
  GetHostStatusResponseSchema,
  HostState,
  ListHostStatusesResponseSchema,
  type HostStatus,
  type WaitForRolloutResponse,
} from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { reportCallError } from "./command.js";
import { DEFAULT_ADDR } from "./args.js";
import { formatTable } from "./format.js";
import { GLOBAL_FLAGS } from "./usage.js";

export type FleetClient = Client<typeof FleetService>;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether stdout is a terminal: the progress line is then rewritten in place. */
  isTTY?: boolean;
}

export const HOSTS_USAGE = `Usage: lvsfleet hosts [--site SITE] [--state STATE …]

Lists each host's distribution status: the desired state the control plane published against what
the host's agent reports having applied.
  --site SITE     only this site's hosts
  --state STATE   CONVERGED, APPLYING, ERROR, STALE or OFFLINE; repeatable or comma-separated

${GLOBAL_FLAGS}`;

export const ROLLOUT_USAGE = `Usage: lvsfleet rollout wait [--revision N] [--site SITE] [--timeout 60s]

Waits until every host (of SITE, or of every site) has applied revision N (default: the newest
desired revision published to those hosts). Shows "3/50 hosts at revision N" while waiting.
Exit 0 when done; 1 with the hosts that have not, at the deadline.
  --revision N    the revision a write returned
  --site SITE     only this site's hosts
  --timeout DUR   how long to wait: 90s, 2m, 500ms (default 60s)

${GLOBAL_FLAGS}`;

const STATE_NAMES: Record<string, HostState> = Object.assign(Object.create(null), {
  CONVERGED: HostState.CONVERGED,
  APPLYING: HostState.APPLYING,
  ERROR: HostState.ERROR,
  STALE: HostState.STALE,
  OFFLINE: HostState.OFFLINE,
});

// ---------------------------------------------------------------------------------------------
// Pure parts

export function stateName(s: HostState): string {
  return Object.entries(STATE_NAMES).find(([, v]) => v === s)?.[0] ?? "UNKNOWN";
}

/** `CONVERGED`, `converged`, `HOST_STATE_CONVERGED` → HostState; comma-separated lists allowed. */
export function parseStates(values: readonly string[]): HostState[] {
  const out: HostState[] = [];
  for (const v of values.flatMap((x) => x.split(","))) {
    const key = v.trim().toUpperCase().replace(/^HOST_STATE_/, "");
    const s = STATE_NAMES[key];
    if (s === undefined) throw new Error(`unknown state ${JSON.stringify(v)}: ${Object.keys(STATE_NAMES).join(", ")}`);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** `60s`, `2m`, `500ms`, `1h`, `1m30s`, or bare seconds → milliseconds. */
export function parseDuration(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text))) {
    ms += Number(m[1]) * unit[m[2]!]!;
    end = re.lastIndex;
  }
  if (text === "" || end !== text.length) throw new Error(`bad duration ${JSON.stringify(text)}: e.g. 60s, 2m, 500ms`);
  return Math.round(ms);
}

/** How long ago, short: `4s ago`, `3m ago`, `2h ago`, `5d ago`; `never` when unset. */
export function formatAge(last: Date | undefined, now: Date): string {
  if (!last) return "never";
  const s = Math.max(0, Math.floor((now.getTime() - last.getTime()) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.floor(s / 60)}m ago`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

function rev(r: bigint): string {
  return r > 0n ? r.toString() : "-";
}

/** The `lvsfleet hosts` table, ordered by site then host. */
export function formatHostStatuses(statuses: readonly HostStatus[], now: Date): string {
  if (statuses.length === 0) return "no hosts\n";
  const sorted = [...statuses].sort((a, b) => a.site.localeCompare(b.site) || a.host.localeCompare(b.host));
  const rows = sorted.map((s) => [
    `${s.site}/${s.host}`,
    stateName(s.state),
    rev(s.appliedRevision),
    rev(s.desiredRevision),
    formatAge(s.lastSeen ? timestampDate(s.lastSeen) : undefined, now),
    String(s.errors.length),
  ]);
  let out = formatTable(["HOST", "STATE", "APPLIED", "DESIRED", "LAST SEEN", "ERRORS"], rows);
  for (const s of sorted) for (const e of s.errors) out += `error: ${s.site}/${s.host}: ${e.object}: ${e.operation ? e.operation + ": " : ""}${e.message}\n`;
  return out;
}

/** Whether a host has `revision`, as far as its status shows (WaitForRollout has the last word). */
export function hasRevision(s: HostStatus, revision: bigint): boolean {
  return s.appliedRevision >= revision || (s.state === HostState.CONVERGED && s.appliedHash !== "" && s.appliedHash === s.desiredHash && s.desiredRevision > 0n);
}

/** `3/50 hosts at revision 1234`. */
export function formatProgress(done: number, total: number, revision: bigint): string {
  return `${done}/${total} hosts at revision ${revision}`;
}

/** The verdict of one or more WaitForRollout calls (one per site), summed. */
export interface RolloutOutcome {
  revision: bigint;
  complete: boolean;
  totalHosts: number;
  doneHosts: number;
  pending: HostStatus[];
}

export function mergeRollouts(revision: bigint, results: readonly WaitForRolloutResponse[]): RolloutOutcome {
  return {
    revision,
    complete: results.every((r) => r.complete),
    totalHosts: results.reduce((n, r) => n + r.totalHosts, 0),
    doneHosts: results.reduce((n, r) => n + r.doneHosts, 0),
    pending: results.flatMap((r) => r.pending),
  };
}

/** Final text of `rollout wait`. */
export function formatRolloutOutcome(o: RolloutOutcome, timeoutMs: number, now: Date): string {
  if (o.complete) return `rollout complete: ${formatProgress(o.totalHosts, o.totalHosts, o.revision)}\n`;
  return (
    `rollout of revision ${o.revision} not complete after ${timeoutMs / 1000}s: ${formatProgress(o.doneHosts, o.totalHosts, o.revision)}; ` +
    `${o.pending.length} ${o.pending.length === 1 ? "host has" : "hosts have"} not:\n` +
    formatHostStatuses(o.pending, now)
  );
}

/**
 * The progress line as text to write: on a terminal `\r` + the line padded over the previous one
 * (no newline until the end); otherwise the line with a newline, only when it changed.
 */
export class ProgressLine {
  private last = "";
  constructor(private readonly tty: boolean) {}

  update(line: string): string {
    if (line === this.last) return "";
    const prev = this.last;
    this.last = line;
    return this.tty ? `\r${line.padEnd(prev.length)}` : `${line}\n`;
  }

  /** Ends a line rewritten in place (terminal only). */
  finish(): string {
    return this.tty && this.last !== "" ? "\n" : "";
  }
}

// ---------------------------------------------------------------------------------------------
// Runner

const CALL_TIMEOUT_MS = 30_000;

/**
 * Runs the command if argv is a `hosts` or `rollout` command line; undefined otherwise (the caller
 * then runs the other commands). Resolves to the exit code: 0 ok, 1 RPC error or rollout not
 * complete, 2 usage.
 */
export async function runFleet(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: Io,
  connect: (addr: string) => FleetClient = (addr) => createClient(FleetService, addr),
  now: () => Date = () => new Date(),
): Promise<number | undefined> {
  const verb = commandWord(argv);
  if (verb !== "hosts" && verb !== "rollout") return undefined;
  const usage = verb === "hosts" ? HOSTS_USAGE : ROLLOUT_USAGE;
  const usageError = (m: string) => {
    io.stderr(`error: ${m}\n\n${usage}\n`);
    return 2;
  };
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        site: { type: "string" },
        state: { type: "string", multiple: true },
        revision: { type: "string" },
        timeout: { type: "string" },
        addr: { type: "string" },
        json: { type: "boolean" },
        reason: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    io.stdout(usage + "\n");
    return 0;
  }
  const site = typeof values.site === "string" ? values.site.replace(/^sites\//, "") : "";
  const json = values.json === true;
  const addr = (values.addr as string | undefined) ?? env.LVSFLEET_ADDR ?? DEFAULT_ADDR;

  let states: HostState[] = [];
  let revision = 0n;
  let timeoutMs = 60_000;
  if (verb === "hosts") {
    if (positionals.length > 1) return usageError(`unexpected argument ${JSON.stringify(positionals[1])}`);
    if (values.revision !== undefined || values.timeout !== undefined) return usageError("--revision and --timeout belong to `rollout wait`");
    try {
      states = parseStates((values.state as string[] | undefined) ?? []);
    } catch (err) {
      return usageError((err as Error).message);
    }
  } else {
    if (positionals[1] !== "wait") return usageError(positionals[1] ? `unknown rollout command ${JSON.stringify(positionals[1])}: wait` : "missing command: rollout wait");
    if (positionals.length > 2) return usageError(`unexpected argument ${JSON.stringify(positionals[2])}`);
    if (values.state !== undefined) return usageError("--state belongs to `hosts`");
    if (typeof values.revision === "string") {
      if (!/^\d+$/.test(values.revision) || BigInt(values.revision) <= 0n) return usageError(`--revision must be a positive integer, got ${JSON.stringify(values.revision)}`);
      revision = BigInt(values.revision);
    }
    if (typeof values.timeout === "string") {
      try {
        timeoutMs = parseDuration(values.timeout);
      } catch (err) {
        return usageError((err as Error).message);
      }
    }
  }

  const client = connect(addr);
  const opts: CallOptions = { timeoutMs: CALL_TIMEOUT_MS, metadata: typeof values.reason === "string" ? { "x-lvsfleet-reason": values.reason } : {} };
  try {
    if (verb === "hosts") {
      const statuses = await listAll(client, site, states, opts);
      io.stdout(json ? toJsonString(ListHostStatusesResponseSchema, create(ListHostStatusesResponseSchema, { statuses }), { prettySpaces: 2 }) + "\n" : formatHostStatuses(statuses, now()));
      return 0;
    }
    return await rolloutWait(client, { site, revision, timeoutMs, json, tty: io.isTTY === true }, io, opts, now);
  } catch (err) {
    return reportCallError(err, addr, io);
  } finally {
    client.close();
  }
}

async function listAll(client: FleetClient, site: string, states: HostState[], opts: CallOptions): Promise<HostStatus[]> {
  const out: HostStatus[] = [];
  let pageToken = "";
  do {
    const res = await client.listHostStatuses({ site, states, pageSize: 1000, pageToken }, opts);
    out.push(...res.statuses);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return out;
}

interface RolloutArgs {
  site: string;
  revision: bigint;
  timeoutMs: number;
  json: boolean;
  tty: boolean;
}

async function rolloutWait(client: FleetClient, a: RolloutArgs, io: Io, opts: CallOptions, now: () => Date): Promise<number> {
  // Scope: the site given, or every site that has hosts. The revision defaults to the newest one
  // published to a host in scope.
  const known = await listAll(client, a.site, [], opts);
  const sites = a.site ? [a.site] : [...new Set(known.map((s) => s.site))].sort();
  let revision = a.revision;
  if (revision === 0n) revision = known.reduce((m, s) => (s.desiredRevision > m ? s.desiredRevision : m), 0n);
  if (sites.length === 0 || revision === 0n) {
    io.stderr(`nothing to wait for: no host${a.site ? ` of site ${a.site}` : ""} has a published desired state\n`);
    return a.revision === 0n ? 0 : 1;
  }

  // Progress: follow status changes until the verdict is in.
  const stopWatch = new AbortController();
  const progress = new ProgressLine(a.tty);
  const hosts = new Map<string, HostStatus>();
  for (const s of known) hosts.set(`${s.site}/${s.host}`, s);
  const show = () => {
    if (a.json) return;
    const inScope = [...hosts.values()].filter((s) => s.desiredRevision > 0n);
    io.stdout(progress.update(formatProgress(inScope.filter((s) => hasRevision(s, revision)).length, inScope.length, revision)));
  };
  show();
  const watching = (async () => {
    try {
      for await (const m of client.watchHostStatuses({ site: a.site }, { signal: stopWatch.signal, metadata: opts.metadata })) {
        if (!m.status) continue;
        hosts.set(`${m.status.site}/${m.status.host}`, m.status);
        show();
      }
    } catch {
      // Cancelled at the end, or the watch failed: the progress line is a nicety, the verdict below is not.
    }
  })();

  try {
    const timeout = { seconds: BigInt(Math.floor(a.timeoutMs / 1000)), nanos: (a.timeoutMs % 1000) * 1e6 };
    const results = await Promise.all(
      sites.map((site) => client.waitForRollout({ revision, site, timeout }, { timeoutMs: a.timeoutMs + CALL_TIMEOUT_MS, metadata: opts.metadata })),
    );
    const outcome = mergeRollouts(revision, results);
    if (a.json) {
      const pending = outcome.pending.map((s) => (JSON.parse(toJsonString(GetHostStatusResponseSchema, create(GetHostStatusResponseSchema, { status: s }))) as { status: unknown }).status);
      io.stdout(JSON.stringify({ revision: String(revision), complete: outcome.complete, totalHosts: outcome.totalHosts, doneHosts: outcome.doneHosts, pending }, null, 2) + "\n");
    } else {
      io.stdout(progress.update(formatProgress(outcome.doneHosts, outcome.totalHosts, revision)) + progress.finish());
      io.stdout(formatRolloutOutcome(outcome, a.timeoutMs, now()));
    }
    return outcome.complete ? 0 : 1;
  } finally {
    stopWatch.abort();
    await watching;
  }
}

/** The first word that is not a global flag (global flags may come before the command word). */
function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--addr" || a === "--reason") i++;
    else if (a !== "--json" && !a.startsWith("--addr=") && !a.startsWith("--reason=")) return a;
  }
  return undefined;
}
