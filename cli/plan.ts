/**
 * `lvsfleet plan <write command>`: what the write would change in the kernel of each host (the
 * OperatorService PlanChange), and with --apply the write itself, refused (ABORTED) if the site's
 * topology moved since the plan was computed.
 *
 *   lvsfleet plan rs update ams1/web/rs1 --weight 0
 *   lvsfleet plan rs update ams1/web/rs1 --weight 0 --apply [--expected-revision N]
 *   lvsfleet plan import ipvsadm --site ams1 --director lb1 lb1.rules [--apply]
 *
 * The write command is parsed by the ordinary parser (cli/args.ts), an import by the import parser
 * (cli/import-export.ts), so they take exactly the same arguments. --apply without --expected-revision plans, prints the plan, then applies it with the
 * plan's revision as the expected one.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import {
  ImportIpvsadmRequestSchema,
  ImportKeepalivedRequestSchema,
  OperatorService,
  PlanAction,
  type PlanChangeRequest,
  type PlanChangeResponse,
} from "../gen/lvsfleet/v1/operator_service_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { RpcError } from "../lib/grpc/status.js";
import { parseCommandLine, type Call } from "./args.js";
import { formatError } from "./format.js";
import { parseOperatorCommand } from "./import-export.js";
import { UsageError } from "./usage.js";

export type PlanClient = Client<typeof OperatorService>;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const PLAN_USAGE = `Usage:
  lvsfleet plan <write command> [--apply [--expected-revision N]]
  lvsfleet plan import ipvsadm|keepalived --site SITE [--director HOST] FILE [--apply [--expected-revision N]]

Shows what the write (or the import of FILE) would change in the kernel of each host of its site
(IPVS services and destinations, addresses, fwmark rules, sysctls), with warnings, and writes
nothing. The write command is any of: site create|update|delete, host create|update|delete,
mark create|update|delete, vs create|update|delete, rs create|update|delete, with its usual
arguments (deletes refused without --force are refused here too), e.g.
  lvsfleet plan rs update ams1/web/rs1 --weight 0

  --apply                 then perform exactly that write, unless the site's topology moved since
                          the plan (ABORTED: plan again)
  --expected-revision N   with --apply: the revision of a plan printed earlier (default: the plan
                          just computed)`;

const PLANNABLE = new Set<string>([
  "createSite",
  "deleteSite",
  "createHost",
  "updateHost",
  "deleteHost",
  "createFirewallMark",
  "updateFirewallMark",
  "deleteFirewallMark",
  "createVirtualService",
  "updateVirtualService",
  "deleteVirtualService",
  "createRealServer",
  "updateRealServer",
  "deleteRealServer",
  "updateSite",
]);

const PLAN_IMPORT_NOTE = `

With plan: shows what the import would change on each host and writes nothing; --apply then
imports it (one transaction), unless the site moved since the plan.`;

const reasonMetadata = (g: { reason?: string }): Record<string, string> => (g.reason ? { "x-lvsfleet-reason": g.reason } : {});

/** The first word that is not a global flag, and its index. */
function commandWord(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--addr" || a === "--reason") i++;
    else if (a !== "--json" && !a.startsWith("--addr=") && !a.startsWith("--reason=")) return i;
  }
  return -1;
}

const SIGN: Record<number, string> = { [PlanAction.ADD]: "+", [PlanAction.CHANGE]: "~", [PlanAction.REMOVE]: "-" };

export function formatPlan(res: PlanChangeResponse): string {
  let out = "";
  if (res.hosts.length === 0) out += "no kernel changes on any host\n";
  for (const h of res.hosts) {
    out += `${h.host}:\n`;
    for (const i of h.items) {
      const values = i.action === PlanAction.CHANGE ? `${i.before} → ${i.after}` : i.action === PlanAction.ADD ? i.after : i.before;
      out += `  ${SIGN[i.action] ?? "?"} ${i.kind.padEnd(16)} ${i.object}${values ? `  ${values}` : ""}\n`;
    }
  }
  for (const w of res.warnings) out += `warning: ${w}\n`;
  for (const w of res.importWarnings) out += `warning: line ${w.line}: ${w.directive}: ${w.message}\n`;
  return out;
}

/** Runs `lvsfleet plan …`; undefined when argv is not a plan command line. */
export async function runPlan(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  io: Io,
  connect: (addr: string) => PlanClient = (addr) => createClient(OperatorService, addr),
): Promise<number | undefined> {
  const at = commandWord(argv);
  if (at < 0 || argv[at] !== "plan") return undefined;
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];
  let apply = false;
  let expected: bigint | undefined;
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--apply") apply = true;
    else if (a === "--expected-revision" || a.startsWith("--expected-revision=")) {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : rest[++i];
      if (!v || !/^(0|[1-9][0-9]{0,18})$/.test(v)) {
        io.stderr(`error: --expected-revision needs a revision number\n\n${PLAN_USAGE}\n`);
        return 2;
      }
      expected = BigInt(v);
    } else args.push(a);
  }
  if (args.length === 0) {
    io.stderr(`error: missing write command\n\n${PLAN_USAGE}\n`);
    return 2;
  }
  if (expected !== undefined && !apply) {
    io.stderr(`error: --expected-revision only applies with --apply\n\n${PLAN_USAGE}\n`);
    return 2;
  }
  let change: PlanChangeRequest["change"];
  let global: { addr: string; json: boolean };
  let opts: CallOptions;
  if (args[commandWord(args)] === "import") {
    const cmd = await parseOperatorCommand(args, env, io, PLAN_IMPORT_NOTE);
    if (typeof cmd === "number") return cmd;
    if (cmd === undefined) return 2;
    if (cmd.request.dryRun) {
      io.stderr(`error: plan never writes; --dry-run does not apply\n\n${PLAN_USAGE}\n`);
      return 2;
    }
    change = cmd.format === "ipvsadm" ? { case: "importIpvsadm", value: create(ImportIpvsadmRequestSchema, cmd.request) } : { case: "importKeepalived", value: create(ImportKeepalivedRequestSchema, cmd.request) };
    global = { addr: cmd.addr, json: cmd.json };
    opts = cmd.opts;
  } else {
    let call: Call;
    try {
      const cl = parseCommandLine(args, env);
      if (cl.command.kind === "help") {
        io.stdout(`${PLAN_USAGE}\n\n${cl.command.text}\n`);
        return 0;
      }
      if (cl.command.kind !== "rpc" || !PLANNABLE.has(cl.command.call.method)) {
        io.stderr(`error: plan takes a write command (site|host|mark|vs|rs create|update|delete) or an import\n\n${PLAN_USAGE}\n`);
        return 2;
      }
      call = cl.command.call;
      global = cl.global;
      opts = { metadata: reasonMetadata(cl.global) };
    } catch (err) {
      if (err instanceof UsageError) {
        io.stderr(`error: ${err.message}\n\n${PLAN_USAGE}\n`);
        return 2;
      }
      throw err;
    }
    change = { case: call.method, value: call.request } as PlanChangeRequest["change"];
  }
  const client = connect(global.addr);
  const print = (res: PlanChangeResponse) =>
    io.stdout(global.json ? toJsonString(OperatorService.method.planChange.output, res, { prettySpaces: 2 }) + "\n" : formatPlan(res));
  try {
    let revision = expected;
    if (revision === undefined) {
      const plan = await client.planChange({ change, apply: false }, opts);
      print(plan);
      revision = plan.revision;
      if (!apply) {
        if (!global.json) io.stdout(`planned against revision ${plan.revision}; nothing written (--apply to perform it)\n`);
        return 0;
      }
    }
    const res = await client.planChange({ change, apply: true, expectedRevision: revision }, opts);
    if (expected !== undefined || global.json) print(res);
    if (!global.json) io.stdout(`applied at revision ${res.appliedRevision} (planned against ${res.revision})\n`);
    return 0;
  } catch (err) {
    if (err instanceof RpcError) io.stderr(formatError(err));
    else io.stderr(formatError({ message: (err as Error)?.message ?? String(err) }));
    return 1;
  } finally {
    client.close();
  }
}
