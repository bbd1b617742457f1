// PipelinedPublisher on the shared nats-server (JetStream): a batch reports per message whether the
// stream confirmed it, and a message that was lost (no PubAck), rejected, or had no stream is never
// reported as stored.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { PipelinedPublisher } from "./publisher.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const bucket = `lvsfleet-test-publisher-${process.pid}-${Date.now().toString(36)}`;
let nc: NatsConnection;
let kv: KV;
let pub: PipelinedPublisher;

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  kv = await new Kvm(nc).create(bucket, { history: 1, maxValueSize: 1024 });
  pub = new PipelinedPublisher(nc, `KV_${bucket}`);
});

afterAll(async () => {
  pub?.close();
  await kv?.destroy().catch(() => undefined);
  await nc?.close();
});

const value = (i: number, size = 16) => {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, i);
  return b;
};

describe("PipelinedPublisher", () => {
  it("1,000 puts in flight: every one confirmed, in publish order, and readable", async () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ subject: `$KV.${bucket}.site.h${i}`, data: value(i) }));
    const res = await pub.publish(items, { window: 1024, timeoutMs: 10_000 });
    expect(res.every((r) => r.ok)).toBe(true);
    const seqs = res.map((r) => (r.ok ? r.seq : -1));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    for (const i of [0, 499, 999]) {
      const e = await kv.get(`site.h${i}`);
      expect(new DataView(e!.value.buffer, e!.value.byteOffset).getUint32(0)).toBe(i);
    }
  });

  it("a message the stream rejects, one no stream listens for, and one nobody acknowledges are each reported as not stored; the rest are", async () => {
    // A core subscriber on a subject outside any stream: it swallows the message and never answers,
    // as a message lost on the way would (no PubAck ever comes).
    const sink = nc.subscribe("lvsfleet.test.publisher.void");
    await nc.flush();
    const items = Array.from({ length: 50 }, (_, i) => ({ subject: `$KV.${bucket}.lost.h${i}`, data: value(i) }));
    items[7] = { subject: `$KV.${bucket}.lost.h7`, data: value(7, 4096) }; // > maxValueSize
    items[23] = { subject: `$KV.${bucket}-missing.lost.h23`, data: value(23) }; // no such stream: 503
    items[41] = { subject: "lvsfleet.test.publisher.void", data: value(41) }; // no PubAck at all
    const t0 = performance.now();
    const res = await pub.publish(items, { timeoutMs: 500 });
    sink.unsubscribe();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    const failed = res.flatMap((r, i) => (r.ok ? [] : [i]));
    expect(failed).toEqual([7, 23, 41]);
    expect(res[7]).toMatchObject({ ok: false, error: expect.stringMatching(/JetStream/) });
    expect(res[23]).toMatchObject({ ok: false, error: expect.stringMatching(/503/) });
    expect(res[41]).toMatchObject({ ok: false, error: expect.stringMatching(/no PubAck/) });
    expect(await kv.get("lost.h7")).toBeNull();
    expect((await kv.get("lost.h6"))?.value.length).toBe(16);
    expect((await kv.get("lost.h49"))?.value.length).toBe(16);
  });

  it("a PubAck from another stream does not count", async () => {
    const other = await new Kvm(nc).create(`${bucket}-other`, { history: 1 });
    try {
      const res = await pub.publish([{ subject: `$KV.${bucket}-other.a`, data: value(1) }]);
      expect(res[0]).toMatchObject({ ok: false, error: expect.stringMatching(/expected KV_/) });
    } finally {
      await other.destroy();
    }
  });
});
