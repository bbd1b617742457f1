// Foo-over-UDP / GUE receive ports (generic netlink family "fou", net/ipv4/fou_core.c) — what an LVS
// real server needs for IPVS TUN with tun_type gue: `ip fou add port 6080 gue` makes the kernel
// strip the UDP+GUE header of packets to that port and hand the inner packet (IPIP → tunl0, see
// rtnetlink/link.ts TUNNEL_FALLBACKS) on. "direct" FOU ports carry one fixed inner protocol.
//
//   const fou = await FouClient.open();          // resolves "fou"; runs `modprobe fou` when missing
//   await fou.ensurePort({ port: 6080, encap: "gue" });   // idempotent
//   await fou.list(); await fou.deletePort({ port: 6080 });
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { NetlinkError } from "./errors.js";
import { decodeGenl, genlPayload, resolveFamily } from "./genl.js";
import { NETLINK_GENERIC, NetlinkSocket, type NetlinkSocketOptions } from "./socket.js";
import { NetlinkDecodeError, NetlinkEncodeError } from "./errors.js";
import { attrMap } from "./wire.js";

export const FOU_GENL_NAME = "fou";
export const FOU_GENL_VERSION = 1;
export const FOU_CMD_ADD = 1;
export const FOU_CMD_DEL = 2;
export const FOU_CMD_GET = 3;
export const FOU_ATTR_PORT = 1; // be16
export const FOU_ATTR_AF = 2; // u8
export const FOU_ATTR_IPPROTO = 3; // u8
export const FOU_ATTR_TYPE = 4; // u8
export const FOU_ENCAP_DIRECT = 1;
export const FOU_ENCAP_GUE = 2;
const AF_INET = 2;
const AF_INET6 = 10;

export interface FouPort {
  /** UDP port the kernel listens on (1..65535). */
  port: number;
  encap: "gue" | "direct";
  /** Outer family; default 4. */
  family?: 4 | 6;
  /** Inner IP protocol of a "direct" port (4 = IPIP, 41 = IPv6, 47 = GRE); unused for GUE. */
  ipproto?: number;
}

function checkPort(p: FouPort | { port: number; family?: 4 | 6 }): void {
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new NetlinkEncodeError(`fou port: ${p.port} is not 1..65535`);
  if (p.family !== undefined && p.family !== 4 && p.family !== 6) throw new NetlinkEncodeError(`fou family: ${String(p.family)} is not 4 or 6`);
}

export function encodeFouAdd(p: FouPort): Buffer {
  checkPort(p);
  if (p.encap === "direct" && (!Number.isInteger(p.ipproto) || p.ipproto! < 1 || p.ipproto! > 255)) {
    throw new NetlinkEncodeError(`fou direct port ${p.port}: ipproto must be 1..255`);
  }
  return genlPayload(FOU_CMD_ADD, FOU_GENL_VERSION, (w) => {
    w.be16(FOU_ATTR_PORT, p.port);
    w.u8(FOU_ATTR_AF, p.family === 6 ? AF_INET6 : AF_INET);
    w.u8(FOU_ATTR_TYPE, p.encap === "gue" ? FOU_ENCAP_GUE : FOU_ENCAP_DIRECT);
    if (p.encap === "direct") w.u8(FOU_ATTR_IPPROTO, p.ipproto!);
  });
}

export function encodeFouDel(p: { port: number; family?: 4 | 6 }): Buffer {
  checkPort(p);
  return genlPayload(FOU_CMD_DEL, FOU_GENL_VERSION, (w) => {
    w.be16(FOU_ATTR_PORT, p.port);
    w.u8(FOU_ATTR_AF, p.family === 6 ? AF_INET6 : AF_INET);
  });
}

export function decodeFouPort(payload: Buffer): FouPort {
  const m = attrMap(decodeGenl(payload).attrs);
  const port = m.get(FOU_ATTR_PORT);
  const type = m.get(FOU_ATTR_TYPE);
  if (!port || port.data.length < 2 || !type || type.data.length < 1) throw new NetlinkDecodeError("fou reply without port or type");
  const af = m.get(FOU_ATTR_AF)?.data[0] ?? AF_INET;
  const t = type.data[0]!;
  const out: FouPort = { port: port.data.readUInt16BE(0), encap: t === FOU_ENCAP_GUE ? "gue" : "direct", family: af === AF_INET6 ? 6 : 4 };
  const proto = m.get(FOU_ATTR_IPPROTO)?.data[0];
  if (t !== FOU_ENCAP_GUE && proto !== undefined) out.ipproto = proto;
  return out;
}

export class FouClient {
  private constructor(
    private readonly sock: NetlinkSocket,
    readonly familyId: number,
  ) {}

  /**
   * Resolves the "fou" family. Kernels before ~6.4 do not load fou.ko on a family lookup (no
   * "net-pf-16-proto-16-family-fou" alias; iproute2's `ip fou add` fails the same way), so on ENOENT
   * this runs `modprobe fou` (asynchronously; `modprobe: false` skips it) and looks again.
   * NetlinkError ENOENT when the kernel still has no fou (CONFIG_NET_FOU).
   */
  static async open(opts: NetlinkSocketOptions & { modprobe?: string | false } = {}): Promise<FouClient> {
    const sock = NetlinkSocket.open(NETLINK_GENERIC, opts);
    try {
      try {
        return new FouClient(sock, (await resolveFamily(sock, FOU_GENL_NAME)).id);
      } catch (e) {
        if (!(e instanceof NetlinkError && e.code === "ENOENT") || opts.modprobe === false) throw e;
        const loaded = await promisify(execFile)(opts.modprobe ?? "modprobe", ["fou"], { timeout: 30_000 }).then(
          () => undefined,
          (err: Error) => err.message.split("\n")[0],
        );
        try {
          return new FouClient(sock, (await resolveFamily(sock, FOU_GENL_NAME)).id);
        } catch (e2) {
          if (e2 instanceof NetlinkError && e2.code === "ENOENT" && loaded) {
            throw new NetlinkError(e2.op, e2.errno, { message: `${e2.message}: no fou in this kernel (modprobe fou: ${loaded})` });
          }
          throw e2;
        }
      }
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  async list(): Promise<FouPort[]> {
    const msgs = await this.sock.dump({ type: this.familyId, payload: genlPayload(FOU_CMD_GET, FOU_GENL_VERSION), op: "FOU_CMD_GET(dump)" });
    return msgs.map((m) => decodeFouPort(m.payload));
  }

  /** Add a port; EEXIST when the (port, family) is already configured. */
  async addPort(p: FouPort): Promise<void> {
    await this.sock.request({ type: this.familyId, payload: encodeFouAdd(p), op: `FOU_CMD_ADD ${p.encap} ${p.port}` });
  }

  /**
   * The port exists with this encapsulation afterwards. Adding a port twice fails in the kernel with
   * EADDRINUSE (the UDP bind; EEXIST on kernels that check their list first): then the port list
   * decides. An existing port with a different encapsulation (or inner protocol) is not changed —
   * EEXIST saying so; a UDP port held by something other than fou keeps the kernel's error.
   */
  async ensurePort(p: FouPort): Promise<void> {
    let addError: NetlinkError;
    try {
      await this.addPort(p);
      return;
    } catch (e) {
      if (!(e instanceof NetlinkError && (e.code === "EEXIST" || e.code === "EADDRINUSE"))) throw e;
      addError = e;
    }
    const fam = p.family ?? 4;
    const have = (await this.list()).find((x) => x.port === p.port && (x.family ?? 4) === fam);
    if (!have) throw addError;
    if (have.encap === p.encap && (p.encap === "gue" || have.ipproto === p.ipproto)) return;
    throw new NetlinkError(`FOU_CMD_ADD ${p.encap} ${p.port}`, 17 /* EEXIST */, {
      message: `fou port ${p.port} exists as ${have.encap}${have.ipproto ? ` ipproto ${have.ipproto}` : ""}, not ${p.encap}`,
    });
  }

  async deletePort(p: { port: number; family?: 4 | 6 }): Promise<void> {
    await this.sock.request({ type: this.familyId, payload: encodeFouDel(p), op: `FOU_CMD_DEL ${p.port}` });
  }

  close(): void {
    this.sock.close();
  }
}
