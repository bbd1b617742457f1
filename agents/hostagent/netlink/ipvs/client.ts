// Typed IPVS API over generic netlink: socket.ts moves bytes, codec.ts builds and reads them, this
// file only pairs requests with decoders and names the operations.
//
// Request budget (asserted by bench/ipvs.ts): one destination change is one IPVS_CMD_SET_DEST
// message; `requests` counts every netlink message this client sent (all sockets).
import { NetlinkError, NetlinkDumpInterruptedError } from "../errors.js";
import { resolveFamily } from "../genl.js";
import { NETLINK_GENERIC, NetlinkSocket, type BatchOptions, type NetlinkSocketOptions } from "../socket.js";
import {
  cmdName,
  decodeDaemon,
  decodeDestination,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  encodeDelDaemon,
  encodeDelDest,
  encodeDelService,
  encodeDumpDaemons,
  encodeDumpDests,
  encodeDumpServices,
  encodeFlush,
  encodeGetConfig,
  encodeGetInfo,
  encodeGetService,
  encodeNewDaemon,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  encodeSetDest,
  encodeSetService,
  encodeZero,
  type DecodeOptions,
  type IpvsDaemon,
  type IpvsDaemonState,
  type IpvsDestination,
  type IpvsDestinationKey,
  type IpvsInfo,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsTimeouts,
} from "./codec.js";
import * as C from "./constants.js";

export * from "./codec.js";

/** NEW/SET_SERVICE failed with ENOENT: the kernel has no such scheduler (or persistence engine). */
export class IpvsSchedulerUnavailableError extends NetlinkError {
  override name = "IpvsSchedulerUnavailableError";
  readonly scheduler: string;
  constructor(op: string, scheduler: string, peName: string | undefined) {
    super(op, 2 /* ENOENT */, {
      message: `${op}: scheduler "${scheduler}"${peName ? ` or persistence engine "${peName}"` : ""} is not available in this kernel (ENOENT; module ip_vs_${scheduler} missing?)`,
      retryable: false,
    });
    this.scheduler = scheduler;
  }
}

export interface IpvsServiceState {
  service: IpvsService;
  destinations: IpvsDestination[];
}

/** One change for IpvsClient.batch(). Order matters: services before their destinations. */
export type IpvsOperation =
  | { op: "newService"; service: IpvsService }
  | { op: "setService"; service: IpvsService }
  | { op: "delService"; service: IpvsServiceKey }
  | { op: "newDestination"; service: IpvsServiceKey; destination: IpvsDestination }
  | { op: "setDestination"; service: IpvsServiceKey; destination: IpvsDestination }
  | { op: "delDestination"; service: IpvsServiceKey; destination: IpvsDestinationKey };

export interface IpvsClientOptions extends NetlinkSocketOptions {
  /** Sockets used to run per-service destination dumps side by side in snapshot(). Default 8. */
  dumpParallelism?: number;
  /** Attempts for a dump that comes back with NLM_F_DUMP_INTR. Default 3. */
  dumpAttempts?: number;
}

export class IpvsClient {
  readonly familyId: number;
  private readonly sock: NetlinkSocket;
  private readonly extra: NetlinkSocket[] = [];
  private readonly opts: IpvsClientOptions;

  private constructor(sock: NetlinkSocket, familyId: number, opts: IpvsClientOptions) {
    this.sock = sock;
    this.familyId = familyId;
    this.opts = opts;
  }

  /** Open a generic netlink socket and resolve the "IPVS" family (ENOENT: no ip_vs in this kernel). */
  static async open(opts: IpvsClientOptions = {}): Promise<IpvsClient> {
    const sock = NetlinkSocket.open(NETLINK_GENERIC, opts);
    try {
      const fam = await resolveFamily(sock, C.IPVS_GENL_NAME);
      return new IpvsClient(sock, fam.id, opts);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  /** Netlink messages sent by this client so far (family lookup included). */
  get requests(): number {
    return this.sock.counters.messages + this.extra.reduce((n, s) => n + s.counters.messages, 0);
  }

  close(): void {
    this.sock.close();
    for (const s of this.extra) s.close();
  }

  // ---- services ----

  /** All virtual services, one dump. `{ stats: false }` skips decoding the counters. */
  async listServices(opts: DecodeOptions = {}): Promise<IpvsService[]> {
    const msgs = await this.dump(this.sock, encodeDumpServices(), "IPVS_CMD_GET_SERVICE(dump)");
    return msgs.map((m) => decodeService(m.payload, opts));
  }

  /** One service, or undefined when the kernel has none with this key (ESRCH). */
  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    try {
      const [reply] = await this.do(encodeGetService(key), C.IPVS_CMD_GET_SERVICE);
      return reply ? decodeService(reply) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === "ESRCH") return undefined;
      throw e;
    }
  }

  async newService(svc: IpvsService): Promise<void> {
    await this.doService(C.IPVS_CMD_NEW_SERVICE, svc);
  }

  async setService(svc: IpvsService): Promise<void> {
    await this.doService(C.IPVS_CMD_SET_SERVICE, svc);
  }

  async delService(key: IpvsServiceKey): Promise<void> {
    await this.do(encodeDelService(key), C.IPVS_CMD_DEL_SERVICE);
  }

  // ---- destinations ----

  async listDestinations(key: IpvsServiceKey, opts: DecodeOptions = {}): Promise<IpvsDestination[]> {
    return this.destsOn(this.sock, key, opts);
  }

  async newDestination(key: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.do(encodeNewDest(key, dest), C.IPVS_CMD_NEW_DEST);
  }

  async setDestination(key: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.do(encodeSetDest(key, dest), C.IPVS_CMD_SET_DEST);
  }

  async delDestination(key: IpvsServiceKey, dest: IpvsDestinationKey): Promise<void> {
    await this.do(encodeDelDest(key, dest), C.IPVS_CMD_DEL_DEST);
  }

  // ---- config, info, counters ----

  async getConfig(): Promise<IpvsTimeouts> {
    const [reply] = await this.do(encodeGetConfig(), C.IPVS_CMD_GET_CONFIG);
    if (!reply) throw new NetlinkError("IPVS_CMD_GET_CONFIG", 61 /* ENODATA */, { message: "IPVS_CMD_GET_CONFIG: no reply" });
    return decodeTimeouts(reply);
  }

  /** Set connection timeouts (seconds); 0 or missing leaves a value unchanged. */
  async setConfig(t: Partial<IpvsTimeouts>): Promise<void> {
    await this.do(encodeSetConfig(t), C.IPVS_CMD_SET_CONFIG);
  }

  async getInfo(): Promise<IpvsInfo> {
    const [reply] = await this.do(encodeGetInfo(), C.IPVS_CMD_GET_INFO);
    if (!reply) throw new NetlinkError("IPVS_CMD_GET_INFO", 61 /* ENODATA */, { message: "IPVS_CMD_GET_INFO: no reply" });
    return decodeInfo(reply);
  }

  /** Zero the counters of one service, or of all services. */
  async zero(key?: IpvsServiceKey): Promise<void> {
    await this.do(encodeZero(key), C.IPVS_CMD_ZERO);
  }

  /** Remove every service and destination. */
  async flush(): Promise<void> {
    await this.do(encodeFlush(), C.IPVS_CMD_FLUSH);
  }

  // ---- sync daemons ----

  async listDaemons(): Promise<IpvsDaemon[]> {
    const msgs = await this.dump(this.sock, encodeDumpDaemons(), "IPVS_CMD_GET_DAEMON(dump)");
    return msgs.map((m) => decodeDaemon(m.payload));
  }

  async newDaemon(d: IpvsDaemon): Promise<void> {
    await this.do(encodeNewDaemon(d), C.IPVS_CMD_NEW_DAEMON);
  }

  async delDaemon(state: IpvsDaemonState): Promise<void> {
    await this.do(encodeDelDaemon({ state }), C.IPVS_CMD_DEL_DAEMON);
  }

  // ---- bulk ----

  /**
   * Apply many changes with few sendmsg calls (socket.batch). Returns one entry per operation:
   * undefined on success, the typed error otherwise. The kernel runs them in the given order.
   */
  async batch(ops: IpvsOperation[], opts?: BatchOptions): Promise<(NetlinkError | undefined)[]> {
    const reqs = ops.map((o) => {
      const [payload, cmd] = encodeOperation(o);
      return { type: this.familyId, payload, op: cmdName(cmd) };
    });
    const results = await this.sock.batch(reqs, opts);
    return results.map((r, i) => (r.error ? this.mapError(r.error, ops[i]!) : undefined));
  }

  /**
   * Everything IPVS holds: one dump of all services, then the destinations of each service. IPVS
   * can only dump the destinations of one service at a time (IPVS_CMD_GET_DEST needs a service
   * and has no doit), so those dumps are spread over `dumpParallelism` sockets, each running its
   * share back to back (NetlinkSocket.dumpMany: no promise or timer per dump). A dump interrupted
   * by a concurrent change (NLM_F_DUMP_INTR) is run again, up to `dumpAttempts` times in all.
   */
  async snapshot(opts: DecodeOptions = {}): Promise<IpvsServiceState[]> {
    const services = await this.listServices(opts);
    const parallel = Math.max(1, Math.min(this.opts.dumpParallelism ?? 8, services.length));
    while (this.extra.length < parallel - 1) this.extra.push(NetlinkSocket.open(NETLINK_GENERIC, this.opts));
    const socks = [this.sock, ...this.extra.slice(0, parallel - 1)];
    const out: IpvsServiceState[] = services.map((service) => ({ service, destinations: [] }));
    const op = "IPVS_CMD_GET_DEST(dump)";
    await Promise.all(
      socks.map(async (s, k) => {
        // Socket k takes a contiguous share of the services.
        const from = Math.floor((k * out.length) / socks.length);
        const to = Math.floor(((k + 1) * out.length) / socks.length);
        const reqs = [];
        for (let i = from; i < to; i++) reqs.push({ type: this.familyId, payload: encodeDumpDests(out[i]!.service), op });
        const results = await s.dumpMany(reqs);
        for (let i = from; i < to; i++) {
          const entry = out[i]!;
          const r = results[i - from]!;
          if (r.error) {
            if (!(r.error instanceof NetlinkDumpInterruptedError) || (this.opts.dumpAttempts ?? 3) <= 1) throw r.error;
            // dump() makes the remaining attempts.
            entry.destinations = await this.destsOn(s, entry.service, opts, 1);
            continue;
          }
          const family = entry.service.family;
          const dests: IpvsDestination[] = new Array(r.replies.length);
          for (let j = 0; j < dests.length; j++) dests[j] = decodeDestination(r.replies[j]!.payload, family, opts);
          entry.destinations = dests;
        }
      }),
    );
    return out;
  }

  // ------------------------------------------------------------------------------------------

  private async destsOn(sock: NetlinkSocket, key: IpvsServiceKey, opts: DecodeOptions, attemptsMade = 0): Promise<IpvsDestination[]> {
    const msgs = await this.dump(sock, encodeDumpDests(key), "IPVS_CMD_GET_DEST(dump)", attemptsMade);
    return msgs.map((m) => decodeDestination(m.payload, key.family, opts));
  }

  private async dump(sock: NetlinkSocket, payload: Buffer, op: string, attemptsMade = 0) {
    const attempts = Math.max(1, this.opts.dumpAttempts ?? 3);
    for (let i = attemptsMade + 1; ; i++) {
      try {
        return await sock.dump({ type: this.familyId, payload, op });
      } catch (e) {
        if (!(e instanceof NetlinkDumpInterruptedError) || i >= attempts) throw e;
      }
    }
  }

  private async do(payload: Buffer, cmd: number) {
    const replies = await this.sock.request({ type: this.familyId, payload, op: cmdName(cmd) });
    return replies.map((r) => r.payload);
  }

  private async doService(cmd: number, svc: IpvsService): Promise<void> {
    // HASHED is the kernel's own bookkeeping bit: passing it to NEW_SERVICE would make the kernel
    // believe the service is already hashed and never insert it (ip_vs_svc_hash).
    const clean = { ...svc, flags: svc.flags & ~C.IP_VS_SVC_F_HASHED };
    const payload = cmd === C.IPVS_CMD_NEW_SERVICE ? encodeNewService(clean) : encodeSetService(clean);
    try {
      await this.do(payload, cmd);
    } catch (e) {
      throw e instanceof NetlinkError ? this.mapError(e, { op: cmd === C.IPVS_CMD_NEW_SERVICE ? "newService" : "setService", service: clean }) : e;
    }
  }

  private mapError(e: NetlinkError, o: IpvsOperation): NetlinkError {
    if (e.code === "ENOENT" && (o.op === "newService" || o.op === "setService")) {
      return new IpvsSchedulerUnavailableError(e.op, o.service.scheduler, o.service.peName);
    }
    return e;
  }
}

function encodeOperation(o: IpvsOperation): [Buffer, number] {
  switch (o.op) {
    case "newService":
      return [encodeNewService({ ...o.service, flags: o.service.flags & ~C.IP_VS_SVC_F_HASHED }), C.IPVS_CMD_NEW_SERVICE];
    case "setService":
      return [encodeSetService({ ...o.service, flags: o.service.flags & ~C.IP_VS_SVC_F_HASHED }), C.IPVS_CMD_SET_SERVICE];
    case "delService":
      return [encodeDelService(o.service), C.IPVS_CMD_DEL_SERVICE];
    case "newDestination":
      return [encodeNewDest(o.service, o.destination), C.IPVS_CMD_NEW_DEST];
    case "setDestination":
      return [encodeSetDest(o.service, o.destination), C.IPVS_CMD_SET_DEST];
    case "delDestination":
      return [encodeDelDest(o.service, o.destination), C.IPVS_CMD_DEL_DEST];
  }
}
