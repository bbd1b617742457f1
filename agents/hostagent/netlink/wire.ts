// Netlink wire format, pure (no I/O): nlmsghdr framing and TLV attributes (rtnetlink and generic
// netlink both use these). Netlink is host byte order; lvsfleet runs on little-endian hosts
// (x86_64, arm64), asserted below so a big-endian port fails loudly instead of sending garbage.
// Multi-byte fields that the kernel keeps in network order (ports, IPv4 masks) are written
// big-endian explicitly by the codecs.
//
// Reference: include/uapi/linux/netlink.h, lib/nlattr.c, mdlayher/netlink (message.go, attribute.go).
import { endianness } from "node:os";
import { NetlinkDecodeError, NetlinkEncodeError } from "./errors.js";

if (endianness() !== "LE") throw new Error("lvsfleet netlink codec supports little-endian hosts only");

// include/uapi/linux/netlink.h
export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

export const NLMSG_NOOP = 0x1;
export const NLMSG_ERROR = 0x2;
export const NLMSG_DONE = 0x3;
export const NLMSG_OVERRUN = 0x4;
export const NLMSG_MIN_TYPE = 0x10;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
// GET modifiers
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_ATOMIC = 0x400;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
// NEW modifiers
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
// ACK flags
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

export const align4 = (n: number): number => (n + 3) & ~3;

/** One netlink message as received (payload = bytes after the 16-byte nlmsghdr). */
export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

/** Frame one message: nlmsghdr (len, type, flags, seq, pid) + payload, padded to 4 bytes. */
export function encodeMessage(m: { type: number; flags: number; seq: number; pid: number; payload: Uint8Array }): Buffer {
  const len = NLMSG_HDRLEN + m.payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(m.type & 0xffff, 4);
  out.writeUInt16LE(m.flags & 0xffff, 6);
  out.writeUInt32LE(m.seq >>> 0, 8);
  out.writeUInt32LE(m.pid >>> 0, 12);
  out.set(m.payload, NLMSG_HDRLEN);
  return out;
}

/** Split a datagram into messages. Throws only NetlinkDecodeError. */
export function decodeMessages(buf: Uint8Array): NetlinkMessage[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > b.length) throw new NetlinkDecodeError(`bad nlmsg_len ${len}`, off);
    out.push({
      type: b.readUInt16LE(off + 4),
      flags: b.readUInt16LE(off + 6),
      seq: b.readUInt32LE(off + 8),
      pid: b.readUInt32LE(off + 12),
      payload: b.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  if (off < b.length && b.length - off >= 1 && !isZero(b.subarray(off))) {
    throw new NetlinkDecodeError(`${b.length - off} trailing bytes after last message`, off);
  }
  return out;
}

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** Payload of NLMSG_ERROR: errno (negative, 0 = ACK), the echoed request header, extack TLVs. */
export interface NetlinkErrorPayload {
  errno: number; // positive errno, 0 for ACK
  request: { len: number; type: number; flags: number; seq: number; pid: number };
  extack?: string;
}

export function decodeErrorPayload(msg: NetlinkMessage): NetlinkErrorPayload {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new NetlinkDecodeError(`NLMSG_ERROR payload too short (${p.length})`);
  const err = p.readInt32LE(0);
  const request = {
    len: p.readUInt32LE(4),
    type: p.readUInt16LE(8),
    flags: p.readUInt16LE(10),
    seq: p.readUInt32LE(12),
    pid: p.readUInt32LE(16),
  };
  let extack: string | undefined;
  if (msg.flags & NLM_F_ACK_TLVS) {
    // Without NLM_F_CAPPED the whole original request is echoed before the TLVs.
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(Math.max(request.len, NLMSG_HDRLEN));
    const start = 4 + echoed;
    if (start <= p.length) {
      for (const a of decodeAttrs(p, start, p.length)) {
        if (a.type === NLMSGERR_ATTR_MSG) extack = attrString(a);
      }
    }
  }
  return { errno: err < 0 ? -err : err, request, extack };
}

// ---------------------------------------------------------------------------------------------
// Attributes (struct nlattr: u16 nla_len, u16 nla_type, value, pad to 4)

export interface NetlinkAttr {
  type: number; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
  nested: boolean;
  data: Buffer;
}

/** Parse TLVs in b[start, end). Throws only NetlinkDecodeError. */
export function decodeAttrs(b: Buffer, start = 0, end = b.length): NetlinkAttr[] {
  const out: NetlinkAttr[] = [];
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = b.readUInt16LE(off);
    const rawType = b.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > end) throw new NetlinkDecodeError(`bad nla_len ${len}`, off);
    out.push({ type: rawType & NLA_TYPE_MASK, nested: (rawType & NLA_F_NESTED) !== 0, data: b.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  // Fewer than NLA_HDRLEN bytes left over: ignored, as the kernel's nla_parse does.
  return out;
}

/** Last attribute of each type (kernel nla_parse semantics: a later duplicate wins). */
export function attrMap(attrs: NetlinkAttr[]): Map<number, NetlinkAttr> {
  const m = new Map<number, NetlinkAttr>();
  for (const a of attrs) m.set(a.type, a);
  return m;
}

function need(a: NetlinkAttr, n: number, what: string): void {
  if (a.data.length < n) throw new NetlinkDecodeError(`attribute ${a.type} (${what}) has ${a.data.length} bytes, want ${n}`);
}
export const attrU8 = (a: NetlinkAttr): number => (need(a, 1, "u8"), a.data.readUInt8(0));
export const attrU16 = (a: NetlinkAttr): number => (need(a, 2, "u16"), a.data.readUInt16LE(0));
export const attrBe16 = (a: NetlinkAttr): number => (need(a, 2, "be16"), a.data.readUInt16BE(0));
export const attrU32 = (a: NetlinkAttr): number => (need(a, 4, "u32"), a.data.readUInt32LE(0));
export const attrS32 = (a: NetlinkAttr): number => (need(a, 4, "s32"), a.data.readInt32LE(0));
export const attrBe32 = (a: NetlinkAttr): number => (need(a, 4, "be32"), a.data.readUInt32BE(0));
export const attrU64 = (a: NetlinkAttr): bigint => (need(a, 8, "u64"), a.data.readBigUInt64LE(0));
/** NUL-terminated (or not) string attribute. */
export function attrString(a: NetlinkAttr): string {
  const nul = a.data.indexOf(0);
  return a.data.subarray(0, nul < 0 ? a.data.length : nul).toString("utf8");
}
export function attrNested(a: NetlinkAttr): NetlinkAttr[] {
  return decodeAttrs(a.data, 0, a.data.length);
}

/**
 * Append-only attribute writer (like libnl's nla_put_*). Values are checked: an out-of-range
 * number throws NetlinkEncodeError rather than being silently truncated. Writes go straight into
 * one growing buffer (no per-attribute allocation: bulk programming encodes ~10^5 messages).
 */
/**
 * `buf` if it has room for `n` more bytes after the first `used`, else a buffer of doubled size
 * holding those `used` bytes (the growth rule of every growable writer here).
 */
export function ensureCapacity(buf: Buffer, used: number, n: number): Buffer {
  if (used + n <= buf.length) return buf;
  let size = buf.length * 2;
  while (size < used + n) size *= 2;
  const nb = Buffer.allocUnsafe(size);
  buf.copy(nb, 0, 0, used);
  return nb;
}

export class AttrWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private reserve(n: number): void {
    this.buf = ensureCapacity(this.buf, this.len, n);
  }

  /** Start an attribute of `valueLen` bytes; returns the value offset. Padding is zeroed. */
  private head(type: number, valueLen: number): number {
    const len = NLA_HDRLEN + valueLen;
    if (len > 0xffff) throw new NetlinkEncodeError(`attribute ${type} too long (${valueLen} bytes)`);
    const total = align4(len);
    this.reserve(total);
    const b = this.buf;
    const off = this.len;
    b.writeUInt16LE(len, off);
    b.writeUInt16LE(type, off + 2);
    for (let i = off + len; i < off + total; i++) b[i] = 0;
    this.len += total;
    return off + NLA_HDRLEN;
  }

  /** Raw bytes (e.g. a fixed family header such as genlmsghdr) before the attributes. */
  raw(bytes: Uint8Array): this {
    const total = align4(bytes.length);
    this.reserve(total);
    this.buf.set(bytes, this.len);
    for (let i = this.len + bytes.length; i < this.len + total; i++) this.buf[i] = 0;
    this.len += total;
    return this;
  }

  bytes(type: number, value: Uint8Array): this {
    const off = this.head(type, value.length);
    this.buf.set(value, off);
    return this;
  }

  u8(type: number, v: number): this {
    checkInt(v, 0, 0xff, type);
    const off = this.head(type, 1);
    this.buf[off] = v;
    return this;
  }
  u16(type: number, v: number): this {
    checkInt(v, 0, 0xffff, type);
    const off = this.head(type, 2);
    this.buf.writeUInt16LE(v, off);
    return this;
  }
  be16(type: number, v: number): this {
    checkInt(v, 0, 0xffff, type);
    const off = this.head(type, 2);
    this.buf.writeUInt16BE(v, off);
    return this;
  }
  u32(type: number, v: number): this {
    checkInt(v, 0, 0xffffffff, type);
    const off = this.head(type, 4);
    this.buf.writeUInt32LE(v, off);
    return this;
  }
  s32(type: number, v: number): this {
    checkInt(v, -0x80000000, 0x7fffffff, type);
    const off = this.head(type, 4);
    this.buf.writeInt32LE(v, off);
    return this;
  }
  be32(type: number, v: number): this {
    checkInt(v, 0, 0xffffffff, type);
    const off = this.head(type, 4);
    this.buf.writeUInt32BE(v, off);
    return this;
  }
  u64(type: number, v: bigint): this {
    if (v < 0n || v > 0xffffffffffffffffn) throw new NetlinkEncodeError(`attribute ${type}: ${v} out of u64 range`);
    const off = this.head(type, 8);
    this.buf.writeBigUInt64LE(v, off);
    return this;
  }
  /** An attribute of `len` bytes filled by `fill(buf, offset)` (offset of the zeroed value). */
  put(type: number, len: number, fill: (buf: Buffer, off: number) => void): this {
    const off = this.head(type, len);
    this.buf.fill(0, off, off + len);
    fill(this.buf, off);
    return this;
  }
  /** Two u32 in one attribute (struct ip_vs_flags and the like). */
  u32pair(type: number, a: number, b: number): this {
    checkInt(a, 0, 0xffffffff, type);
    checkInt(b, 0, 0xffffffff, type);
    const off = this.head(type, 8);
    this.buf.writeUInt32LE(a, off);
    this.buf.writeUInt32LE(b, off + 4);
    return this;
  }
  /** NUL-terminated string (NLA_NUL_STRING / NLA_STRING as libnl's NLA_PUT_STRING writes it). */
  string(type: number, s: string, maxLen?: number): this {
    const n = Buffer.byteLength(s, "utf8");
    if (maxLen !== undefined && n + 1 > maxLen) throw new NetlinkEncodeError(`attribute ${type}: "${s}" longer than ${maxLen - 1} bytes`);
    if (s.includes("\0")) throw new NetlinkEncodeError(`attribute ${type}: string contains NUL`);
    const off = this.head(type, n + 1);
    this.buf.write(s, off, "utf8");
    this.buf[off + n] = 0;
    return this;
  }
  /** Nested attribute. The kernel sends these without NLA_F_NESTED; libnl (ipvsadm) sets it. */
  nested(type: number, fill: (w: AttrWriter) => void, flagNested = false): this {
    const start = this.len;
    this.reserve(NLA_HDRLEN);
    this.len += NLA_HDRLEN;
    fill(this);
    const len = this.len - start;
    if (len > 0xffff) throw new NetlinkEncodeError(`nested attribute ${type} too long`);
    this.buf.writeUInt16LE(len, start);
    this.buf.writeUInt16LE(type | (flagNested ? NLA_F_NESTED : 0), start + 2);
    return this;
  }

  get length(): number {
    return this.len;
  }

  /** The encoded bytes (a view on the writer's buffer: do not write more afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function checkInt(v: number, min: number, max: number, type: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new NetlinkEncodeError(`attribute ${type}: ${v} out of range [${min}, ${max}]`);
}
