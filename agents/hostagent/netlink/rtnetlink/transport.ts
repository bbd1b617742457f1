// What the rtnetlink adapters need from the netlink transport (../socket.ts NetlinkSocket):
// request + dump. Kept as a structural type so the adapters can be driven by a scripted transport.
import { NetlinkDumpInterruptedError, type NetlinkMessage, type NetlinkRequest } from "../socket.js";

export interface RtTransport {
  request(req: NetlinkRequest): Promise<NetlinkMessage[]>;
  dump(req: NetlinkRequest): Promise<NetlinkMessage[]>;
}

/**
 * A dump that the kernel flagged NLM_F_DUMP_INTR (the table changed while it was walked) is run
 * again, up to `attempts` times; the last NetlinkDumpInterruptedError is rethrown.
 */
export async function dumpConsistent(t: RtTransport, req: NetlinkRequest, attempts = 5): Promise<NetlinkMessage[]> {
  for (let i = 1; ; i++) {
    try {
      return await t.dump(req);
    } catch (e) {
      if (!(e instanceof NetlinkDumpInterruptedError) || i >= attempts) throw e;
    }
  }
}
