// Generic netlink: the 4-byte genlmsghdr and the nlctrl controller's family lookup.
// Pure codec functions plus resolveFamily(), which needs a socket.
// Reference: include/uapi/linux/genetlink.h.
//
//   0               1               2               3
//   +---------------+---------------+-------------------------------+
//   |      cmd      |    version    |          reserved (0)         |
//   +---------------+---------------+-------------------------------+
//   | attributes ...
import { NetlinkDecodeError, NetlinkError } from "./errors.js";
import type { NetlinkSocket } from "./socket.js";
import { AttrWriter, attrMap, attrNested, attrString, attrU16, attrU32, decodeAttrs, type NetlinkAttr, type NetlinkMessage } from "./wire.js";

export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_VERSION = 2; // what libnl's genl_ctrl_resolve sends
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

export interface GenlHeader {
  cmd: number;
  version: number;
}

/** genlmsghdr + attributes: the payload that follows nlmsghdr. */
export function genlPayload(cmd: number, version: number, attrs?: (w: AttrWriter) => void): Buffer {
  const w = new AttrWriter();
  w.raw(Uint8Array.of(cmd, version, 0, 0));
  attrs?.(w);
  return w.finish();
}

/** Split a genl message payload into its header and top-level attributes. */
export function decodeGenl(payload: Buffer): { header: GenlHeader; attrs: NetlinkAttr[] } {
  if (payload.length < GENL_HDRLEN) throw new NetlinkDecodeError(`genl payload too short (${payload.length})`);
  return { header: { cmd: payload[0]!, version: payload[1]! }, attrs: decodeAttrs(payload, GENL_HDRLEN, payload.length) };
}

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  maxAttr: number;
  mcastGroups: Map<string, number>;
}

export function encodeGetFamily(name: string): Buffer {
  return genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION, (w) => w.string(CTRL_ATTR_FAMILY_NAME, name));
}

export function decodeFamily(msg: NetlinkMessage): GenlFamily {
  const { attrs } = decodeGenl(msg.payload);
  const m = attrMap(attrs);
  const id = m.get(CTRL_ATTR_FAMILY_ID);
  const name = m.get(CTRL_ATTR_FAMILY_NAME);
  if (!id || !name) throw new NetlinkDecodeError("nlctrl reply without family id/name");
  const mcastGroups = new Map<string, number>();
  const groups = m.get(CTRL_ATTR_MCAST_GROUPS);
  if (groups) {
    for (const g of attrNested(groups)) {
      const gm = attrMap(attrNested(g));
      const gn = gm.get(CTRL_ATTR_MCAST_GRP_NAME);
      const gi = gm.get(CTRL_ATTR_MCAST_GRP_ID);
      if (gn && gi) mcastGroups.set(attrString(gn), attrU32(gi));
    }
  }
  const version = m.get(CTRL_ATTR_VERSION);
  const maxAttr = m.get(CTRL_ATTR_MAXATTR);
  return {
    id: attrU16(id),
    name: attrString(name),
    version: version ? attrU32(version) : 0,
    maxAttr: maxAttr ? attrU32(maxAttr) : 0,
    mcastGroups,
  };
}

/** Ask nlctrl for a family by name. ENOENT (NetlinkError) when the kernel has no such family. */
export async function resolveFamily(sock: NetlinkSocket, name: string): Promise<GenlFamily> {
  const op = `CTRL_CMD_GETFAMILY(${name})`;
  const replies = await sock.request({ type: GENL_ID_CTRL, payload: encodeGetFamily(name), op });
  const first = replies[0];
  if (!first) throw new NetlinkError(op, 61 /* ENODATA */, { message: `${op}: no reply` });
  return decodeFamily(first);
}
