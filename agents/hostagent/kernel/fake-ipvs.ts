// An in-memory IPVS table behind the IpvsPort the Linux backend uses, with the kernel's errors
// (EEXIST / ESRCH / ENOENT as NetlinkError) and a request counter like IpvsClient.requests. For the
// backend's unit tests and bench/agent.ts (10,000 services without a VM); the real table is tested in
// test/kernel/agent-reconcile.test.ts.
import { constants as os } from "node:os";
import { NetlinkError } from "../netlink/errors.js";
import type { IpvsOperation } from "../netlink/ipvs/client.js";
import type { IpvsDestination, IpvsService, IpvsServiceKey, IpvsTimeouts } from "../netlink/ipvs/codec.js";
import type { IpvsPort } from "./linux-backend.js";

const errno = (n: keyof typeof os.errno) => os.errno[n];

function key(k: IpvsServiceKey): string {
  return k.fwmark ? `fwm ${k.family} ${k.fwmark}` : `${k.protocol} ${k.address} ${k.port}`;
}

export class FakeIpvs implements IpvsPort {
  readonly table = new Map<string, { service: IpvsService; dests: Map<string, IpvsDestination> }>();
  timeouts: IpvsTimeouts = { tcp: 900, tcpFin: 120, udp: 300 };
  /** Netlink messages a real client would have sent (dumps: 1 + one per service; each op: 1). */
  requests = 0;
  /** Mutating messages only. */
  writes = 0;

  async snapshot() {
    this.requests += 1 + this.table.size;
    return [...this.table.values()].map((s) => ({ service: { ...s.service }, destinations: [...s.dests.values()].map((d) => ({ ...d })) }));
  }

  async getConfig(): Promise<IpvsTimeouts> {
    this.requests++;
    return { ...this.timeouts };
  }

  async setConfig(t: Partial<IpvsTimeouts>): Promise<void> {
    this.requests++;
    this.writes++;
    for (const k of ["tcp", "tcpFin", "udp"] as const) if (t[k]) this.timeouts[k] = t[k]!;
  }

  async batch(ops: IpvsOperation[]): Promise<(NetlinkError | undefined)[]> {
    return ops.map((o) => {
      this.requests++;
      this.writes++;
      try {
        this.exec(o);
        return undefined;
      } catch (e) {
        if (e instanceof NetlinkError) return e;
        throw e;
      }
    });
  }

  exec(o: IpvsOperation): void {
    const fail = (n: keyof typeof os.errno): never => {
      throw new NetlinkError(o.op, errno(n));
    };
    const k = key(o.service);
    switch (o.op) {
      case "newService":
        if (this.table.has(k)) fail("EEXIST");
        this.table.set(k, { service: { ...o.service, flags: o.service.flags | 2 }, dests: new Map() });
        return;
      case "setService": {
        const s = this.table.get(k) ?? fail("ESRCH");
        s.service = { ...o.service, flags: o.service.flags | 2 };
        return;
      }
      case "delService":
        if (!this.table.delete(k)) fail("ESRCH");
        return;
      case "newDestination": {
        const s = this.table.get(k) ?? fail("ESRCH");
        const dk = `${o.destination.address} ${o.destination.port}`;
        if (s.dests.has(dk)) fail("EEXIST");
        s.dests.set(dk, { ...o.destination, activeConns: 0, inactiveConns: 0 });
        return;
      }
      case "setDestination": {
        const s = this.table.get(k) ?? fail("ESRCH");
        const dk = `${o.destination.address} ${o.destination.port}`;
        const old = s.dests.get(dk) ?? fail("ENOENT");
        s.dests.set(dk, { ...old, ...o.destination });
        return;
      }
      case "delDestination": {
        const s = this.table.get(k) ?? fail("ESRCH");
        if (!s.dests.delete(`${o.destination.address} ${o.destination.port}`)) fail("ENOENT");
        return;
      }
    }
  }

  close(): void {}
}
