/**
 * `lvsfleet drain <site>/<vs>/<rs> [--wait] [--deadline 5m] [--keep]` and `lvsfleet undrain …`
 * (FleetService.DrainRealServer / UndrainRealServer). Drain sets weight 0 on every Director carrying
 * the real server (the configured weight is kept); with --wait it follows ActiveConn per Director —
 * one progress line rewritten in place on a terminal, a line per change otherwise — and removes the
 * real server at 0 (or leaves it drained with --keep). At the deadline nothing is removed (exit 1).
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import {
  DrainPhase,
  DrainRealServerResponseSchema,
  FleetService,
  UndrainRealServerResponseSchema,
  type DrainRealServerResponse,
} from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { parseCommand, reportCallError } from "./command.js";
import { DEFAULT_ADDR } from "./args.js";
import { ProgressLine, parseDuration } from "./fleet.js";
import { expandName } from "./names.js";
import { GLOBAL_FLAGS } from "./usage.js";

export type DrainClient = Pick<Client<typeof FleetService>, "drainRealServer" | "undrainRealServer" | "close">;

export const DRAIN_USAGE = `Usage:
  lvsfleet drain <site>/<vs>/<rs> [--wait] [--deadline 5m] [--keep]
  lvsfleet undrain <site>/<vs>/<rs>

drain: weight 0 for the real server on every Director carrying its virtual service (no new
connections; existing ones finish); the configured weight is kept. With --wait, follow its
ActiveConn on each Director (from counters read after the Director applied the drain) until it is 0
everywhere, then delete the real server — or, with --keep, leave it drained. At the deadline nothing
is deleted (exit 1). undrain: the configured weight again.
  --wait            wait for ActiveConn 0 (a live progress line), then delete
  --deadline DUR    how long to wait at most (default 5m; e.g. 90s, 1h)
  --keep            with --wait: leave it drained instead of deleting it

${GLOBAL_FLAGS}`;

function elapsedText(m: DrainRealServerResponse): string {
  const s = Number(m.elapsed?.seconds ?? 0n);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** Per Director: "lb1 3 active", "lb2 applying", "lb3 waiting for counters". */
export function directorsText(m: DrainRealServerResponse): string {
  if (m.directors.length === 0) return "no Directors carry it";
  return m.directors
    .map((d) => `${d.host} ${!d.applied ? "applying" : !d.countersFresh ? "waiting for counters" : `${d.activeConnections} active`}`)
    .join(", ");
}

/** The progress line of a WAITING message (`withTime` on a terminal, where it is rewritten in place). */
export function progressText(name: string, m: DrainRealServerResponse, withTime: boolean): string {
  return `draining ${name}${withTime ? ` ${elapsedText(m)}` : ""}: ${m.activeConnections} active connections (${directorsText(m)})`;
}

/** The closing line of a drain. */
export function resultText(name: string, m: DrainRealServerResponse): string {
  switch (m.phase) {
    case DrainPhase.DRAINING:
      return `${name} draining (weight 0 on its Directors, configured weight ${m.realServer?.weight ?? 1} kept) at revision ${m.revision}`;
    case DrainPhase.REMOVED:
      return `${name} drained in ${elapsedText(m)} and deleted at revision ${m.deleteRevision}`;
    case DrainPhase.DRAINED:
      return `${name} drained in ${elapsedText(m)}; kept (weight 0), revision ${m.revision}`;
    case DrainPhase.DEADLINE_EXCEEDED:
      return `deadline exceeded after ${elapsedText(m)}: ${m.activeConnections} active connections (${directorsText(m)}); ${name} left drained, not deleted`;
    default:
      return `${name}: ${DrainPhase[m.phase] ?? m.phase}`;
  }
}

/** Runs `lvsfleet drain|undrain …`; undefined when argv is another command. Exit 0 ok, 1 error/deadline, 2 usage. */
export async function runDrain(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: { stdout(text: string): void; stderr(text: string): void; isTTY?: boolean },
  connect: (addr: string) => DrainClient = (addr) => createClient(FleetService, addr),
): Promise<number | undefined> {
  const first = argv.findIndex((a, i) => !a.startsWith("-") && !["--addr", "--reason", "--deadline"].includes(argv[i - 1] ?? ""));
  const cmd = first < 0 ? undefined : argv[first];
  if (cmd !== "drain" && cmd !== "undrain") return undefined;
  const parsed = parseCommand(argv, io, DRAIN_USAGE, { wait: { type: "boolean" }, keep: { type: "boolean" }, deadline: { type: "string" } });
  if (typeof parsed === "number") return parsed;
  const { values, positionals, usageError } = parsed;
  if (positionals.length < 2) return usageError("missing <site>/<vs>/<rs>");
  if (positionals.length > 2) return usageError(`unexpected argument ${JSON.stringify(positionals[2])}`);
  let name: string;
  let deadlineMs: number | undefined;
  try {
    name = expandName("rs", positionals[1]!);
    if (typeof values.deadline === "string") deadlineMs = parseDuration(values.deadline);
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (cmd === "undrain" && (values.wait || values.keep || values.deadline !== undefined)) return usageError("undrain takes no --wait, --keep or --deadline");
  if (values.keep && !values.wait) return usageError("--keep needs --wait");
  const json = values.json === true;
  const addr = (values.addr as string | undefined) ?? env.LVSFLEET_ADDR ?? DEFAULT_ADDR;
  const client = connect(addr);
  const metadata: Record<string, string> = typeof values.reason === "string" ? { "x-lvsfleet-reason": values.reason } : {};
  try {
    if (cmd === "undrain") {
      const r = await client.undrainRealServer({ name }, { timeoutMs: 15_000, metadata });
      io.stdout(
        json
          ? toJsonString(UndrainRealServerResponseSchema, create(UndrainRealServerResponseSchema, r), { prettySpaces: 2 }) + "\n"
          : r.revision === 0n
            ? `${name} was not draining; nothing written\n`
            : `${name} undrained: weight ${r.realServer?.weight ?? 1} again at revision ${r.revision}\n`,
      );
      return 0;
    }
    const deadline = deadlineMs === undefined ? undefined : { seconds: BigInt(Math.floor(deadlineMs / 1000)), nanos: (deadlineMs % 1000) * 1e6 };
    // The server ends the stream at the deadline; the call deadline only guards against a hung server.
    const opts: CallOptions = { metadata, ...(values.wait ? { timeoutMs: (deadlineMs ?? 300_000) + 30_000 } : { timeoutMs: 15_000 }) };
    const progress = new ProgressLine(io.isTTY === true);
    let last: DrainRealServerResponse | undefined;
    for await (const m of client.drainRealServer({ name, wait: values.wait === true, keep: values.keep === true, deadline }, opts)) {
      last = m;
      if (json) {
        io.stdout(toJsonString(DrainRealServerResponseSchema, create(DrainRealServerResponseSchema, m)) + "\n");
        continue;
      }
      if (m.phase === DrainPhase.WAITING) io.stdout(progress.update(progressText(name, m, io.isTTY === true)));
      else if (m.phase === DrainPhase.DRAINING && values.wait) io.stdout(progress.update(`${name} draining at revision ${m.revision}: waiting for its Directors`));
    }
    if (!last) throw new Error("the drain stream ended without a message");
    if (!json) io.stdout(progress.finish() + resultText(name, last) + "\n");
    return last.phase === DrainPhase.DEADLINE_EXCEEDED ? 1 : 0;
  } catch (err) {
    return reportCallError(err, addr, io);
  } finally {
    client.close();
  }
}
