// Decodes a site part (SiteDesiredState, key `<site>._site`) for one host: every field, but of the
// host_revisions map only this host's entry. The map has one entry per host of the site; decoding
// all of it in each agent on every site change is O(hosts) allocations per agent (with 1 000
// simulated agents in one process, bench:fanout spent most of its CPU in protobuf-es map decoding).
// Here each map entry's key is compared as bytes, without making a string; only the match is read.
//
// Wire (proto3, desired_state.proto):
//   SiteDesiredState: 1 site (LEN) | 2 revision (VARINT) | 3 hash (LEN) | 4 timeouts (LEN) |
//                     5 host_revisions entry (LEN, repeated) → MapEntry { 1 key (LEN), 2 value (VARINT) }
// Unknown fields are skipped (a newer control plane may add some).
//
// Many agents in one process (bench:fanout: 1 000 in a few processes; tests) get the same site part,
// each as bytes of its own: the second time the same bytes come, the whole part is decoded once and
// later calls with equal bytes are a compare (memcmp) and a lookup. An agent alone in its process
// (production) sees a site part from its subscription and again on each resync: at most one whole
// decode per site change.
import { create, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { SiteDesiredStateSchema, type SiteDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { IpvsTimeoutsSchema } from "../../../gen/lvsfleet/v1/types_pb.js";

const utf8 = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Seen {
  /** A copy: the caller's buffer may be reused for other bytes. */
  bytes: Buffer;
  whole?: SiteDesiredState;
}
let last: Seen | undefined;

/** fromBinary(SiteDesiredStateSchema, bytes) with host_revisions cut down to `host`'s entry (if any). */
export function decodeSitePartFor(bytes: Uint8Array, host: string): SiteDesiredState {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (last === undefined || !last.bytes.equals(b)) {
    last = { bytes: Buffer.from(b) };
    return scanFor(bytes, host);
  }
  const whole = (last.whole ??= fromBinary(SiteDesiredStateSchema, bytes));
  const out = create(SiteDesiredStateSchema, { site: whole.site, revision: whole.revision, hash: whole.hash });
  // A message of each caller's own (agents do not share objects).
  if (whole.timeouts) out.timeouts = create(IpvsTimeoutsSchema, whole.timeouts);
  const rev = Object.hasOwn(whole.hostRevisions, host) ? whole.hostRevisions[host] : undefined;
  if (rev !== undefined) out.hostRevisions[host] = rev;
  return out;
}

function scanFor(bytes: Uint8Array, host: string): SiteDesiredState {
  const want = utf8.encode(host);
  const out = create(SiteDesiredStateSchema);
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) out.site = r.string();
    else if (no === 2 && wt === WireType.Varint) out.revision = BigInt(r.int64());
    else if (no === 3 && wt === WireType.LengthDelimited) out.hash = r.string();
    else if (no === 4 && wt === WireType.LengthDelimited) out.timeouts = fromBinary(IpvsTimeoutsSchema, r.bytes());
    else if (no === 5 && wt === WireType.LengthDelimited) {
      // Fast path, what protobuf-es writes: <len> 0x0a <keylen> key 0x10 <varint value>, looked at
      // in place (no subarray per entry: with 1 000 entries and 1 000 agents in one process those
      // views were most of the cost). Only a matching key is decoded; other shapes take the
      // general reader.
      const start = r.pos;
      const len = r.uint32();
      const at = r.pos;
      const n = bytes[at + 1]!;
      if (len < 0x80 && bytes[at] === 0x0a && n < 0x80 && bytes[at + 2 + n] === 0x10 && at + len <= r.len) {
        let same = n === want.length;
        for (let i = 0; same && i < n; i++) same = bytes[at + 2 + i] === want[i];
        r.pos = at + len;
        if (!same) continue;
      }
      r.pos = start;
      const e = new BinaryReader(r.bytes());
      let mine = false;
      let value = 0n;
      while (e.pos < e.len) {
        const [eno, ewt] = e.tag();
        if (eno === 1 && ewt === WireType.LengthDelimited) mine = sameBytes(e.bytes(), want);
        else if (eno === 2 && ewt === WireType.Varint) value = BigInt(e.int64());
        else e.skip(ewt, eno);
      }
      if (mine) out.hostRevisions[host] = value;
    } else r.skip(wt, no);
  }
  return out;
}
