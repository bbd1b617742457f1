/**
 * `lvsfleet import ipvsadm|keepalived` and `lvsfleet export ipvsadm`: the OperatorService from the
 * command line. The file is read here and sent as text; parsing, validation and the one-transaction
 * write happen in the control plane (the CLI talks to the API like any client).
 *
 *   lvsfleet import ipvsadm --site S --director H FILE [--dry-run]      (FILE "-" = stdin)
 *   lvsfleet import keepalived --site S [--director H] FILE [--dry-run]
 *   lvsfleet export ipvsadm --site S --director H                       (stdout: ipvsadm -R input)
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { OperatorService, type ImportWarning } from "../gen/lvsfleet/v1/operator_service_pb.js";
import type { RealServer, VirtualService } from "../gen/lvsfleet/v1/topology_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { RpcError } from "../lib/grpc/status.js";
import { DEFAULT_ADDR } from "./args.js";
import { formatError, formatTable, serviceKey } from "./format.js";
import { GLOBAL_FLAGS } from "./usage.js";

export type OperatorClient = Client<typeof OperatorService>;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads FILE ("-" = standard input). */
  readFile?(path: string): Promise<string>;
}

export const IMPORT_USAGE = `Usage:
  lvsfleet import ipvsadm --site SITE --director HOST FILE [--dry-run]
  lvsfleet import keepalived --site SITE [--director HOST] FILE [--dry-run]

Creates the virtual services and real servers of an \`ipvsadm -S\` / \`ipvsadm-save\` file (with or
without -n) or of a keepalived.conf in one transaction: all of it, or nothing. FILE "-" reads stdin.
Errors name the line; keepalived directives lvsfleet does not model are listed as warnings.
The audit log records the file name (and --reason).

  --site SITE        the site (id or sites/SITE)
  --director HOST    the Director host the rules are from (id or sites/SITE/hosts/HOST)
  --dry-run          validate and print what would be created; write nothing

${GLOBAL_FLAGS}`;

export const EXPORT_USAGE = `Usage:
  lvsfleet export ipvsadm --site SITE --director HOST > rules

Prints what the Director should hold in exactly the format \`ipvsadm -S -n\` prints, for
\`ipvsadm -R < rules\` on a host without an agent (break-glass).

${GLOBAL_FLAGS}`;

const CALL_TIMEOUT_MS = 120_000;

/** A parsed import/export command line (the file read), ready to send. */
export interface OperatorCommand {
  verb: "import" | "export";
  format: "ipvsadm" | "keepalived";
  addr: string;
  json: boolean;
  opts: CallOptions;
  /** For import: the request (dryRun from --dry-run). For export: parent and director only. */
  request: { parent: string; director: string; text: string; fileName: string; dryRun: boolean };
}

/**
 * Parses an import/export command line and reads its FILE. Returns the command, an exit code (usage
 * or I/O error already printed, or --help printed), or undefined when argv is not import/export.
 */
export async function parseOperatorCommand(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: Io,
  extraUsage = "",
): Promise<OperatorCommand | number | undefined> {
  const verb = commandWord(argv);
  if (verb !== "import" && verb !== "export") return undefined;
  const usage = (verb === "import" ? IMPORT_USAGE : EXPORT_USAGE) + extraUsage;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        site: { type: "string" },
        director: { type: "string" },
        "dry-run": { type: "boolean" },
        addr: { type: "string" },
        json: { type: "boolean" },
        reason: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\n\n${usage}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(usage + "\n");
    return 0;
  }
  const [, format, file, ...extra] = positionals;
  const usageError = (m: string) => {
    io.stderr(`error: ${m}\n\n${usage}\n`);
    return 2;
  };
  const formats = verb === "import" ? ["ipvsadm", "keepalived"] : ["ipvsadm"];
  if (!format || !formats.includes(format)) return usageError(format ? `unknown format ${JSON.stringify(format)}: ${formats.join(" or ")}` : `missing format: ${formats.join(" or ")}`);
  if (typeof values.site !== "string" || values.site === "") return usageError("--site is required");
  const parent = values.site.startsWith("sites/") ? values.site : `sites/${values.site}`;
  const director = typeof values.director === "string" ? values.director : "";
  if (!director && (verb === "export" || format === "ipvsadm")) return usageError("--director is required");
  if (verb === "import" && !file) return usageError("missing FILE (\"-\" for standard input)");
  if (verb === "export" && file) return usageError(`unexpected argument ${JSON.stringify(file)}`);
  if (extra.length > 0) return usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (verb === "export" && values["dry-run"]) return usageError("--dry-run only applies to import");

  let text = "";
  if (verb === "import") {
    try {
      text = await (io.readFile ?? readInput)(file!);
    } catch (err) {
      io.stderr(formatError({ message: `cannot read ${file}: ${(err as Error).message}` }));
      return 1;
    }
  }
  const addr = (values.addr as string | undefined) ?? env.LVSFLEET_ADDR ?? DEFAULT_ADDR;
  const opts: CallOptions = { timeoutMs: CALL_TIMEOUT_MS, metadata: typeof values.reason === "string" ? { "x-lvsfleet-reason": values.reason } : {} };
  return {
    verb,
    format: format as "ipvsadm" | "keepalived",
    addr,
    json: values.json === true,
    opts,
    request: { parent, director, text, fileName: verb === "import" ? (file === "-" ? "(stdin)" : file!) : "", dryRun: values["dry-run"] === true },
  };
}

/**
 * Runs the command if argv is an import/export command line; undefined otherwise (the caller then
 * runs the other commands). Resolves to the exit code: 0 ok, 1 RPC or I/O error, 2 usage.
 */
export async function runImportExport(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: Io,
  connect: (addr: string) => OperatorClient = (addr) => createClient(OperatorService, addr),
): Promise<number | undefined> {
  const cmd = await parseOperatorCommand(argv, env, io);
  if (cmd === undefined || typeof cmd === "number") return cmd;
  const { verb, format, opts, request: req } = cmd;
  const client = connect(cmd.addr);
  try {
    if (verb === "export") {
      const res = await client.exportIpvsadm({ parent: req.parent, director: req.director }, opts);
      io.stdout(cmd.json ? toJsonString(OperatorService.method.exportIpvsadm.output, res, { prettySpaces: 2 }) + "\n" : res.text);
      return 0;
    }
    const res = format === "ipvsadm" ? await client.importIpvsadm(req, opts) : await client.importKeepalived(req, opts);
    if (cmd.json) {
      const schema = format === "ipvsadm" ? OperatorService.method.importIpvsadm.output : OperatorService.method.importKeepalived.output;
      io.stdout(toJsonString(schema, res as never, { prettySpaces: 2 }) + "\n");
    } else io.stdout(formatImport(res));
    return 0;
  } catch (err) {
    if (err instanceof RpcError) io.stderr(formatError(err));
    else io.stderr(formatError({ message: (err as Error)?.message ?? String(err) }));
    return 1;
  } finally {
    client.close();
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

async function readInput(path: string): Promise<string> {
  if (path !== "-") return readFile(path, "utf8");
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function formatImport(res: { virtualServices: VirtualService[]; realServers: RealServer[]; warnings: ImportWarning[]; revision: bigint; dryRun: boolean }): string {
  const count = new Map<string, number>();
  for (const rs of res.realServers) {
    const parent = rs.name.slice(0, rs.name.indexOf("/realServers/"));
    count.set(parent, (count.get(parent) ?? 0) + 1);
  }
  const rows = res.virtualServices.map((vs) => [vs.name.split("/").pop()!, serviceKey(vs), vs.scheduler, String(count.get(vs.name) ?? 0)]);
  let out = formatTable(["VIRTUAL SERVICE", "SERVICE", "SCHEDULER", "REAL SERVERS"], rows);
  for (const w of res.warnings) out += `warning: line ${w.line}: ${w.directive}: ${w.message}\n`;
  out += res.dryRun
    ? `dry run: would create ${res.virtualServices.length} virtual services and ${res.realServers.length} real servers; nothing written\n`
    : `created ${res.virtualServices.length} virtual services and ${res.realServers.length} real servers (revision ${res.revision})\n`;
  return out;
}
