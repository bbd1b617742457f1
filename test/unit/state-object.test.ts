// The state-object codec, both sides: the relay packs a host part into an object + KV reference
// (services/controlplane/relay/state-object.ts), the agent checks and unpacks it
// (agents/hostagent/sync/state-object.ts). Every kind of damage is refused, never half-decoded.
import { createHash } from "node:crypto";
import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { hashDesiredState } from "../../services/controlplane/compile/index.js";
import { inlineLimit, objectHostKey, objectStoreDigest, packStateObject, readStamp } from "../../services/controlplane/relay/state-object.js";
import { StateObjectError, unpackStateObject } from "../../agents/hostagent/sync/state-object.js";

/** A Director host part with `n` services of 10 real servers each, stamped like the relay stamps it. */
function director(n: number, revision = 42n): HostDesiredState {
  const ds = create(HostDesiredStateSchema, {
    site: "fra1",
    host: "lb1",
    director: {
      services: Array.from({ length: n }, (_, i) => ({
        virtualService: `sites/fra1/virtualServices/web${i}`,
        protocol: Protocol.TCP,
        address: `203.0.113.${i % 250}`,
        port: 1000 + i,
        scheduler: "wlc",
        destinations: Array.from({ length: 10 }, (_, j) => ({
          realServer: `sites/fra1/virtualServices/web${i}/realServers/r${j}`,
          address: `198.18.${i % 250}.${j + 1}`,
          port: 8080,
          forwardMethod: ForwardMethod.NAT,
          weight: 1 + j,
        })),
      })),
    },
    sysctls: [{ key: "net.ipv4.vs.conntrack", value: "1" }],
  });
  ds.hash = hashDesiredState(ds);
  ds.revision = revision;
  ds.siteRevision = revision - 1n;
  return ds;
}

const ref = (reference: Uint8Array) => fromBinary(HostDesiredStateSchema, reference);

describe("state object codec", () => {
  for (const deflate of [true, false]) {
    it(`round trip (deflate ${deflate}): the agent gets back exactly the relay's host part`, async () => {
      const ds = director(300);
      const state = toBinary(HostDesiredStateSchema, ds);
      expect(state.length).toBeGreaterThan(100_000);
      const so = await packStateObject(state, { deflate });
      const r = ref(so.reference);
      // The KV value is small and carries the stamp; the object is what the agent decodes.
      expect(so.reference.length).toBeLessThan(400);
      expect({ site: r.site, host: r.host, revision: r.revision, hash: r.hash, siteRevision: r.siteRevision }).toEqual({ site: "fra1", host: "lb1", revision: 42n, hash: ds.hash, siteRevision: 41n });
      expect(r.director).toBeUndefined();
      expect(r.stateObject).toMatchObject({ name: `fra1.lb1.${so.sha256}`, size: BigInt(so.bytes.length), deflate, stateSize: BigInt(state.length) });
      if (deflate) expect(so.bytes.length).toBeLessThan(state.length / 4);
      else expect(Buffer.from(so.bytes).equals(Buffer.from(state))).toBe(true);
      const back = await unpackStateObject(r, so.bytes);
      expect(toBinary(HostDesiredStateSchema, back)).toEqual(state);
      expect(hashDesiredState(back)).toBe(ds.hash);
    });
  }

  it("same state, same object name (republishing is idempotent); another revision, another name", async () => {
    const a = await packStateObject(toBinary(HostDesiredStateSchema, director(20)), { deflate: true });
    const b = await packStateObject(toBinary(HostDesiredStateSchema, director(20)), { deflate: true });
    const c = await packStateObject(toBinary(HostDesiredStateSchema, director(20, 43n)), { deflate: true });
    expect(b.name).toBe(a.name);
    expect(c.name).not.toBe(a.name);
    expect(objectHostKey(a.name)).toBe("fra1.lb1");
    expect(objectHostKey("fra1.lb1.notahash")).toBeUndefined();
  });

  it("readStamp reads the stamp without the large fields", () => {
    const ds = director(5);
    expect(readStamp(toBinary(HostDesiredStateSchema, ds))).toEqual({ site: "fra1", host: "lb1", revision: 42n, hash: ds.hash, siteRevision: 41n });
  });

  it("inline limit leaves headroom below max_payload; the digest is the Object Store's format", () => {
    expect(inlineLimit(1024 * 1024)).toBe(983_040);
    expect(inlineLimit(65_536)).toBe(61_440);
    const hex = createHash("sha256").update("x").digest("hex");
    // @nats-io/obj: "SHA-256=" + base64url with padding.
    expect(objectStoreDigest(hex)).toBe(`SHA-256=${Buffer.from(hex, "hex").toString("base64url")}=`);
  });

  describe("the agent refuses", () => {
    async function packed() {
      const ds = director(50);
      const so = await packStateObject(toBinary(HostDesiredStateSchema, ds), { deflate: true });
      return { ds, so, r: ref(so.reference) };
    }
    const refused = async (p: Promise<unknown>, msg: RegExp) => {
      const err = await p.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StateObjectError);
      expect(String((err as Error).message)).toMatch(msg);
    };

    it("a missing object", async () => {
      const { r } = await packed();
      await refused(unpackStateObject(r, null), /missing/);
    });

    it("a truncated object", async () => {
      const { r, so } = await packed();
      await refused(unpackStateObject(r, so.bytes.subarray(0, so.bytes.length - 1)), /bytes, reference says/);
    });

    it("a corrupt object of the right length", async () => {
      const { r, so } = await packed();
      const bad = Uint8Array.from(so.bytes);
      bad[bad.length >> 1]! ^= 0xff;
      await refused(unpackStateObject(r, bad), /SHA-256/);
    });

    it("an object that inflates to more than the reference says (digest right: a broken relay)", async () => {
      const { r, so } = await packed();
      const big = deflateSync(Buffer.concat([Buffer.from(so.bytes), Buffer.alloc(1000)]));
      r.stateObject!.size = BigInt(big.length);
      r.stateObject!.sha256 = createHash("sha256").update(big).digest("hex");
      await refused(unpackStateObject(r, big), /does not inflate|state bytes/);
    });

    it("an object holding another revision or host than the reference", async () => {
      const { r, so } = await packed();
      const other = await packStateObject(toBinary(HostDesiredStateSchema, director(50, 41n)), { deflate: true });
      r.stateObject = ref(other.reference).stateObject;
      await refused(unpackStateObject(r, other.bytes), /revision 41, reference says 42/);
      const elsewhere = ref(so.reference);
      elsewhere.host = "lb2";
      await refused(unpackStateObject(elsewhere, so.bytes), /host lb1, reference says lb2/);
    });

    it("bytes that are not a HostDesiredState", async () => {
      const { r } = await packed();
      const junk = deflateSync(Buffer.from([0xff, 0xff, 0xff, 0xff]));
      r.stateObject!.size = BigInt(junk.length);
      r.stateObject!.sha256 = createHash("sha256").update(junk).digest("hex");
      r.stateObject!.stateSize = 4n;
      await refused(unpackStateObject(r, junk), /does not decode/);
    });
  });
});
