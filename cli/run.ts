/**
 * Runs a parsed command line against the control plane and writes the result. The only I/O of the
 * CLI besides bin/lvsfleet.mjs; parsing (./args.ts) and output (./format.ts) are pure.
 */
import { toJson, toJsonString, type JsonObject, type Message } from "@bufbuild/protobuf";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import { RealServerSchema, VirtualServiceSchema, type RealServer, type VirtualService } from "../gen/lvsfleet/v1/topology_pb.js";
import { createClient, type CallOptions, type Client } from "../lib/grpc/client.js";
import { RpcError } from "../lib/grpc/status.js";
import { parseCommandLine, type Call, type CommandLine, type MethodName } from "./args.js";
import * as fmt from "./format.js";
import { UsageError } from "./usage.js";

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

export type TopologyClient = Client<typeof TopologyService>;

/** Per-call deadline: a CLI should fail, not hang, when the control plane does not answer. */
const CALL_TIMEOUT_MS = 30_000;

/** Runs `lvsfleet <argv>`; resolves to the exit code (0 ok, 1 RPC or runtime error, 2 usage). */
export async function run(argv: readonly string[], env: Record<string, string | undefined>, io: Io, connect = defaultConnect): Promise<number> {
  let line: CommandLine;
  try {
    line = parseCommandLine(argv, env);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`error: ${err.message}\n\n${err.usage || ""}\n`);
      return 2;
    }
    throw err;
  }
  const { global, command } = line;
  if (command.kind === "help") {
    io.stdout(command.text + "\n");
    return 0;
  }
  const client = connect(global.addr);
  const opts: CallOptions = { timeoutMs: CALL_TIMEOUT_MS, metadata: global.reason !== undefined ? { "x-lvsfleet-reason": global.reason } : {} };
  try {
    if (command.kind === "ipvs-list") {
      io.stdout(await ipvsList(client, command.site, global.json, opts));
    } else {
      const res = await callAll(client, command.call, opts, command.limit === undefined);
      if (!global.json && typeof res.nextPageToken === "string" && res.nextPageToken !== "") {
        io.stderr(`(more entries: --page-token ${res.nextPageToken})\n`);
      }
      io.stdout(global.json ? toJsonString(TopologyService.method[command.call.method].output, res as never, { prettySpaces: 2 }) + "\n" : render(command.call.method, res));
    }
    return 0;
  } catch (err) {
    if (err instanceof RpcError) io.stderr(fmt.formatError(err.codeName === "UNAVAILABLE" ? unreachable(err, global.addr) : err));
    else io.stderr(fmt.formatError({ message: (err as Error)?.message ?? String(err) }));
    return 1;
  } finally {
    client.close();
  }
}

/** grpc-js's UNAVAILABLE text is long and internal; say what the operator can do about it. */
function unreachable(err: RpcError, addr: string): fmt.ErrorLike {
  const cause = /Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(err.message)?.[1] ?? err.message;
  return { codeName: err.codeName, message: `cannot reach the control plane at ${addr} (${cause}); is it running? (--addr, LVSFLEET_ADDR)` };
}

function defaultConnect(addr: string): TopologyClient {
  return createClient(TopologyService, addr);
}

/** The repeated field each List method pages over. */
const LIST_FIELD: Partial<Record<MethodName, string>> = {
  listSites: "sites",
  listHosts: "hosts",
  listVirtualServices: "virtualServices",
  listRealServers: "realServers",
  listFirewallMarks: "firewallMarks",
  listAuditEntries: "auditEntries",
};

type AnyResponse = Message & Record<string, unknown>;

/** Calls the method; for List methods (when `allPages`), follows next_page_token and concatenates. */
async function callAll(client: TopologyClient, call: Call, opts: CallOptions, allPages: boolean): Promise<AnyResponse> {
  const fn = client[call.method] as unknown as (req: unknown, o: CallOptions) => Promise<AnyResponse>;
  const first = await fn(call.request, opts);
  const field = LIST_FIELD[call.method];
  if (!field || !allPages) return first;
  let page = first;
  while (typeof page.nextPageToken === "string" && page.nextPageToken !== "") {
    page = await fn({ ...call.request, pageToken: page.nextPageToken }, opts);
    (first[field] as unknown[]).push(...(page[field] as unknown[]));
    if ("revision" in page) first.revision = page.revision;
  }
  first.nextPageToken = "";
  return first;
}

function render(method: MethodName, res: AnyResponse): string {
  const r = res as unknown as Record<string, never>;
  switch (method) {
    case "createSite":
    case "getSite":
    case "updateSite":
      return fmt.formatSite(r.site);
    case "createHost":
    case "getHost":
    case "updateHost":
      return fmt.formatHost(r.host);
    case "createVirtualService":
    case "getVirtualService":
    case "updateVirtualService":
      return fmt.formatVirtualService(r.virtualService);
    case "createRealServer":
    case "getRealServer":
    case "updateRealServer":
      return fmt.formatRealServer(r.realServer);
    case "createFirewallMark":
    case "getFirewallMark":
    case "updateFirewallMark":
      return fmt.formatFirewallMark(r.firewallMark);
    case "listSites":
      return fmt.formatSites(r.sites);
    case "listHosts":
      return fmt.formatHosts(r.hosts);
    case "listVirtualServices":
      return fmt.formatVirtualServices(r.virtualServices);
    case "listRealServers":
      return fmt.formatRealServers(r.realServers);
    case "listFirewallMarks":
      return fmt.formatFirewallMarks(r.firewallMarks);
    case "listAuditEntries":
      return fmt.formatAuditEntries(r.auditEntries);
    case "deleteSite":
    case "deleteHost":
    case "deleteVirtualService":
    case "deleteRealServer":
    case "deleteFirewallMark":
      return `deleted (revision ${String(res.revision)})\n`;
  }
}

/** `lvsfleet list <site>`: the site's services with their real servers, like ipvsadm -Ln. */
async function ipvsList(client: TopologyClient, site: string, json: boolean, opts: CallOptions): Promise<string> {
  const parent = `sites/${site}`;
  await client.getSite({ name: parent }, opts); // NOT_FOUND for a site that does not exist, rather than an empty list
  const vsRes = await callAll(client, { method: "listVirtualServices", request: { parent, pageSize: 1000 } as never }, opts, true);
  const services = vsRes.virtualServices as VirtualService[];
  const listings = await Promise.all(
    services.map(async (vs) => {
      const rsRes = await callAll(client, { method: "listRealServers", request: { parent: vs.name, pageSize: 1000 } as never }, opts, true);
      return { virtualService: vs, realServers: rsRes.realServers as RealServer[] };
    }),
  );
  const revision = vsRes.revision as bigint;
  if (!json) return fmt.formatIpvsList(site, revision, listings);
  const out: JsonObject = {
    site: parent,
    revision: String(revision),
    virtualServices: listings.map((l) => ({
      virtualService: toJson(VirtualServiceSchema, l.virtualService),
      realServers: l.realServers.map((rs) => toJson(RealServerSchema, rs)),
    })),
  };
  return JSON.stringify(out, null, 2) + "\n";
}
