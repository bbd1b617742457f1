// Guest side of the IPVS kernel tests: runs a list of IpvsClient calls (read from the JSON file
// given as argv[2]) on the kernel it runs on and prints one JSON document with every result.
// Bundled on the host with bundleForGuest() and run with `node` in the kernel target.
import { readFileSync } from "node:fs";
import { NetlinkError } from "../../../agents/hostagent/netlink/errors.js";
import { IpvsClient, type IpvsOperation } from "../../../agents/hostagent/netlink/ipvs/client.js";

export type Step =
  | { do: "flush" | "snapshot" | "listServices" | "getConfig" | "getInfo" | "listDaemons" }
  | { do: "newService" | "setService"; service: Parameters<IpvsClient["newService"]>[0] }
  | { do: "delService" | "getService" | "listDestinations"; service: Parameters<IpvsClient["delService"]>[0] }
  | { do: "zero"; service?: Parameters<IpvsClient["zero"]>[0] }
  | { do: "newDestination" | "setDestination"; service: Parameters<IpvsClient["delService"]>[0]; destination: Parameters<IpvsClient["newDestination"]>[1] }
  | { do: "delDestination"; service: Parameters<IpvsClient["delService"]>[0]; destination: Parameters<IpvsClient["delDestination"]>[1] }
  | { do: "setConfig"; timeouts: Parameters<IpvsClient["setConfig"]>[0] }
  | { do: "newDaemon"; daemon: Parameters<IpvsClient["newDaemon"]>[0] }
  | { do: "delDaemon"; state: "master" | "backup" }
  | { do: "batch"; ops: IpvsOperation[] };

export type StepResult =
  | { ok: true; value?: unknown; requests: number }
  | { ok: false; error: { name: string; code?: string; op?: string; message: string }; requests: number };

async function run(c: IpvsClient, s: Step): Promise<unknown> {
  switch (s.do) {
    case "flush": return c.flush();
    case "snapshot": return c.snapshot();
    case "listServices": return c.listServices();
    case "getConfig": return c.getConfig();
    case "getInfo": return c.getInfo();
    case "listDaemons": return c.listDaemons();
    case "newService": return c.newService(s.service);
    case "setService": return c.setService(s.service);
    case "delService": return c.delService(s.service);
    case "getService": return c.getService(s.service);
    case "listDestinations": return c.listDestinations(s.service);
    case "zero": return c.zero(s.service);
    case "newDestination": return c.newDestination(s.service, s.destination);
    case "setDestination": return c.setDestination(s.service, s.destination);
    case "delDestination": return c.delDestination(s.service, s.destination);
    case "setConfig": return c.setConfig(s.timeouts);
    case "newDaemon": return c.newDaemon(s.daemon);
    case "delDaemon": return c.delDaemon(s.state);
    case "batch": {
      const errs = await c.batch(s.ops);
      return errs.map((e) => (e ? { name: e.name, code: e.code, op: e.op } : null));
    }
  }
}

const steps = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Step[];
const client = await IpvsClient.open();
const results: StepResult[] = [];
for (const step of steps) {
  const before = client.requests;
  try {
    const value = await run(client, step);
    results.push({ ok: true, value, requests: client.requests - before });
  } catch (e) {
    const err = e as Error;
    results.push({
      ok: false,
      error: { name: err.name, code: e instanceof NetlinkError ? e.code : undefined, op: e instanceof NetlinkError ? e.op : undefined, message: err.message },
      requests: client.requests - before,
    });
  }
}
client.close();
process.stdout.write(JSON.stringify({ results }, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)) + "\n");
