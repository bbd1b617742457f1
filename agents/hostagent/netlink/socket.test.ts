import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { CTRL_CMD_GETFAMILY, CTRL_VERSION, GENL_ID_CTRL, decodeFamily, encodeGetFamily, genlPayload, resolveFamily } from "./genl.js";
import {
  NETLINK_GENERIC,
  NETLINK_ROUTE,
  NetlinkDumpInterruptedError,
  NetlinkError,
  NetlinkSocket,
  NetlinkTimeoutError,
  type RawTransport,
} from "./socket.js";
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  decodeMessages,
  encodeMessage,
  type NetlinkMessage,
} from "./wire.js";

const open: NetlinkSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
function track(s: NetlinkSocket): NetlinkSocket {
  open.push(s);
  return s;
}

// ---- against the running kernel (nlctrl and rtnetlink need no privileges) ----

describe("NetlinkSocket on the host kernel", () => {
  it("request: nlctrl answers with a reply and an ACK", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const fam = await resolveFamily(s, "nlctrl");
    expect(fam.id).toBe(GENL_ID_CTRL);
    expect(fam.name).toBe("nlctrl");
    expect(s.counters).toMatchObject({ messages: 1, sends: 1, stray: 0 });
  });

  it("kernel errors become NetlinkError with errno name and operation", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const err = await resolveFamily(s, "no-such-family").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: "ENOENT", errno: 2, op: "CTRL_CMD_GETFAMILY(no-such-family)", retryable: false });
  });

  it("dump: collects every NLM_F_MULTI part up to NLMSG_DONE", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const msgs = await s.dump({ type: GENL_ID_CTRL, payload: genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION), op: "CTRL_CMD_GETFAMILY(dump)" });
    const names = msgs.map((m) => decodeFamily(m).name);
    expect(names).toContain("nlctrl");
    expect(msgs.every((m) => m.flags & NLM_F_MULTI)).toBe(true);
    const r = track(NetlinkSocket.open(NETLINK_ROUTE));
    const links = await r.dump({ type: 18 /* RTM_GETLINK */, payload: Buffer.alloc(16), op: "RTM_GETLINK" });
    expect(links.length).toBeGreaterThanOrEqual(1); // at least lo
  });

  it("parallel dumps on one socket are serialised instead of failing with EBUSY", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const req = { type: GENL_ID_CTRL, payload: genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION), op: "dump" };
    const all = await Promise.all([s.dump(req), s.dump(req), s.dump(req)]);
    expect(all.map((x) => x.length)).toEqual([all[0]!.length, all[0]!.length, all[0]!.length]);
  });

  it("dumpMany: several dumps back to back on one socket, one result each", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const req = { type: GENL_ID_CTRL, payload: genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION), op: "dump" };
    const single = await s.dump(req);
    const res = await s.dumpMany([req, req, req]);
    expect(res.map((r) => [r.error, r.replies.length])).toEqual([[undefined, single.length], [undefined, single.length], [undefined, single.length]]);
    expect(res[2]!.replies.map((m) => decodeFamily(m).name)).toContain("nlctrl");
    expect(s.counters.dumps).toBe(4);
  });

  it("dumpMany with onPart on a socket with a fixed receive buffer (recvMessageSize, no peeking): the same parts, in place", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC, { recvMessageSize: 32768 }));
    const req = { type: GENL_ID_CTRL, payload: genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION), op: "dump" };
    const collected = await s.dumpMany([req]);
    const seen: { index: number; payload: Buffer }[] = [];
    const res = await s.dumpMany([req, req], {
      onPart: (index, buf, start, end) => seen.push({ index, payload: Buffer.from(buf.subarray(start, end)) }), // copy: buf is the datagram
    });
    expect(res.map((r) => [r.error, r.replies.length])).toEqual([[undefined, 0], [undefined, 0]]);
    const want = collected[0]!.replies.map((m) => m.payload.toString("hex"));
    expect(want.length).toBeGreaterThan(0);
    expect(seen.filter((p) => p.index === 0).map((p) => p.payload.toString("hex"))).toEqual(want);
    expect(seen.filter((p) => p.index === 1).map((p) => p.payload.toString("hex"))).toEqual(want);
    expect((await resolveFamily(s, "nlctrl")).id).toBe(GENL_ID_CTRL); // requests work on it too
  });

  it("batch: one sendmsg for several requests, per-request results in order", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const get = (name: string) => ({ type: GENL_ID_CTRL, payload: encodeGetFamily(name), op: `get ${name}` });
    const res = await s.batch([get("nlctrl"), get("no-such-family"), get("nlctrl")]);
    expect(s.counters.sends).toBe(1);
    expect(s.counters.messages).toBe(3);
    expect(res.map((r) => r.error?.code)).toEqual([undefined, "ENOENT", undefined]);
    expect(res[1]!.error!.op).toBe("get no-such-family");
    expect(res.map((r) => r.replies.length)).toEqual([1, 0, 1]);
    expect(decodeFamily(res[2]!.replies[0]!).name).toBe("nlctrl");
  });

  it("batch: splits into chunks of maxMessages and still answers every request", async () => {
    const s = track(NetlinkSocket.open(NETLINK_GENERIC));
    const reqs = Array.from({ length: 50 }, (_, i) => ({ type: GENL_ID_CTRL, payload: encodeGetFamily(i % 5 === 0 ? "nope" : "nlctrl"), op: `r${i}` }));
    const res = await s.batch(reqs, { maxMessages: 8 });
    expect(s.counters.sends).toBe(7);
    expect(res.filter((r) => r.error).map((r) => r.error!.op)).toEqual(["r0", "r5", "r10", "r15", "r20", "r25", "r30", "r35", "r40", "r45"]);
    expect(res.filter((r) => !r.error).every((r) => r.replies.length === 1)).toBe(true);
  });
});

// ---- protocol logic against a scripted raw socket ----

class ScriptedRaw extends EventEmitter implements RawTransport {
  sent: NetlinkMessage[][] = [];
  onSend: (msgs: NetlinkMessage[]) => void = () => {};
  closed = false;
  send(msg: Uint8Array, _o: { port?: number }, cb: (e?: { errno?: number }) => void): void {
    const msgs = decodeMessages(msg);
    this.sent.push(msgs);
    setImmediate(() => {
      cb();
      this.onSend(msgs);
    });
  }
  deliver(msgs: Buffer[], port = 0): void {
    this.emit("message", Buffer.concat(msgs), { port, groups: 0 });
  }
  address() {
    return { port: 4242 };
  }
  close() {
    this.closed = true;
  }
  ref() {}
  unref() {}
  getRecvBufferSize() {
    return 212992;
  }
  getSendBufferSize() {
    return 212992;
  }
}

function ack(req: NetlinkMessage, errno = 0, pid = 4242): Buffer {
  const p = Buffer.alloc(20);
  p.writeInt32LE(-errno, 0);
  p.writeUInt32LE(16, 4);
  p.writeUInt16LE(req.type, 8);
  p.writeUInt16LE(req.flags, 10);
  p.writeUInt32LE(req.seq, 12);
  p.writeUInt32LE(req.pid, 16);
  return encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: req.seq, pid, payload: p });
}
const part = (req: NetlinkMessage, flags = NLM_F_MULTI, body = "x") => encodeMessage({ type: 0x20, flags, seq: req.seq, pid: 4242, payload: Buffer.from(body) });
const done = (req: NetlinkMessage, status = 0) => {
  const p = Buffer.alloc(4);
  p.writeInt32LE(status);
  return encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: req.seq, pid: 4242, payload: p });
};

function scripted(timeoutMs = 2000) {
  const raw = new ScriptedRaw();
  return { raw, sock: track(NetlinkSocket.fromRaw(NETLINK_GENERIC, raw, { timeoutMs })) };
}

describe("NetlinkSocket protocol checks (scripted kernel)", () => {
  it("sets REQUEST|ACK, our port id and fresh sequence numbers", async () => {
    const { raw, sock } = scripted();
    raw.onSend = ([m]) => raw.deliver([ack(m!)]);
    await sock.request({ type: 0x30, payload: Buffer.alloc(4), op: "a" });
    await sock.request({ type: 0x30, flags: 0x400, payload: Buffer.alloc(4), op: "b" });
    const [[a], [b]] = raw.sent as [[NetlinkMessage], [NetlinkMessage]];
    expect(a.flags).toBe(NLM_F_REQUEST | NLM_F_ACK);
    expect(b.flags).toBe(NLM_F_REQUEST | NLM_F_ACK | 0x400);
    expect(a.pid).toBe(4242);
    expect(b.seq).not.toBe(a.seq);
  });

  it("drops replies with a foreign seq, a foreign port id, or from a non-kernel sender", async () => {
    const { raw, sock } = scripted();
    raw.onSend = ([m]) => {
      raw.deliver([ack({ ...m!, seq: m!.seq + 1000 }, 17)]); // unknown seq
      raw.deliver([ack(m!, 17, 9999)]); // nlmsg_pid not ours
      raw.deliver([ack(m!, 17)], 1234); // sent by a user-space process
      raw.deliver([ack(m!, 0)]); // the real answer
    };
    await expect(sock.request({ type: 0x30, payload: Buffer.alloc(0), op: "x" })).resolves.toEqual([]);
    expect(sock.counters.stray).toBe(3);
  });

  it("maps errno to names: EEXIST, ESRCH, ENOENT", async () => {
    const { raw, sock } = scripted();
    const codes = [17, 3, 2];
    raw.onSend = ([m]) => raw.deliver([ack(m!, codes.shift()!)]);
    const errs = [];
    for (const op of ["IPVS_CMD_NEW_SERVICE", "IPVS_CMD_DEL_SERVICE", "IPVS_CMD_DEL_DEST"]) {
      errs.push(await sock.request({ type: 0x30, payload: Buffer.alloc(0), op }).catch((e: NetlinkError) => `${e.op}:${e.code}`));
    }
    expect(errs).toEqual(["IPVS_CMD_NEW_SERVICE:EEXIST", "IPVS_CMD_DEL_SERVICE:ESRCH", "IPVS_CMD_DEL_DEST:ENOENT"]);
  });

  it("NLM_F_DUMP_INTR on any part → NetlinkDumpInterruptedError (retryable); the next dump works", async () => {
    const { raw, sock } = scripted();
    let n = 0;
    raw.onSend = ([m]) => {
      expect(m!.flags & NLM_F_DUMP).toBe(NLM_F_DUMP);
      if (n++ === 0) raw.deliver([part(m!), part(m!, NLM_F_MULTI | NLM_F_DUMP_INTR), done(m!)]);
      else raw.deliver([part(m!), part(m!), done(m!)]);
    };
    const err = await sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "dumpit" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkDumpInterruptedError);
    expect(err).toMatchObject({ retryable: true, op: "dumpit" });
    await expect(sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "dumpit" })).resolves.toHaveLength(2);
  });

  it("multipart parts may arrive over several datagrams; NLMSG_DONE with a negative status is an error", async () => {
    const { raw, sock } = scripted();
    let n = 0;
    raw.onSend = ([m]) => {
      if (n++ === 0) {
        raw.deliver([part(m!, NLM_F_MULTI, "a")]);
        setImmediate(() => raw.deliver([part(m!, NLM_F_MULTI, "b"), done(m!)]));
      } else raw.deliver([part(m!), done(m!, -16)]);
    };
    const msgs = await sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "d" });
    expect(msgs.map((m) => m.payload.toString())).toEqual(["a", "b"]);
    await expect(sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "d" })).rejects.toMatchObject({ code: "EBUSY", retryable: true });
  });

  it("times out with NetlinkTimeoutError and ignores the late answer", async () => {
    const { raw, sock } = scripted(50);
    let late: NetlinkMessage | undefined;
    raw.onSend = ([m]) => (late = m);
    const t0 = Date.now();
    const err = await sock.request({ type: 0x30, payload: Buffer.alloc(0), op: "slow" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkTimeoutError);
    expect(err).toMatchObject({ code: "ETIMEDOUT", op: "slow" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    raw.deliver([ack(late!)]);
    expect(sock.counters.stray).toBe(1);
  });

  it("a dump that timed out keeps the socket's dump slot until its NLMSG_DONE arrives", async () => {
    const { raw, sock } = scripted();
    const sentDumps: NetlinkMessage[] = [];
    raw.onSend = ([m]) => sentDumps.push(m!);
    const first = sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "d1" }, { timeoutMs: 30 }).catch((e: unknown) => e);
    expect(await first).toBeInstanceOf(NetlinkTimeoutError);
    const second = sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "d2" });
    await new Promise((r) => setTimeout(r, 20));
    expect(sentDumps).toHaveLength(1); // d2 waits: the kernel still runs d1
    raw.onSend = ([m]) => raw.deliver([part(m!), done(m!)]);
    raw.deliver([done(sentDumps[0]!)]);
    await expect(second).resolves.toHaveLength(1);
  });

  it("dumpMany: the next dump is sent only after the previous NLMSG_DONE; per-dump errors and DUMP_INTR", async () => {
    const { raw, sock } = scripted();
    let n = 0;
    raw.onSend = ([m]) => {
      expect(m!.flags & NLM_F_DUMP).toBe(NLM_F_DUMP);
      expect(raw.sent).toHaveLength(n + 1); // nothing else was sent while this dump ran
      const k = n++;
      if (k === 1) raw.deliver([part(m!), part(m!, NLM_F_MULTI | NLM_F_DUMP_INTR), done(m!)]);
      else if (k === 2) raw.deliver([ack(m!, 22)]); // EINVAL as NLMSG_ERROR
      else if (k === 3) raw.deliver([part(m!), done(m!, -16)]); // EBUSY in NLMSG_DONE
      else {
        raw.deliver([part(m!, NLM_F_MULTI, `p${k}`)]);
        setImmediate(() => raw.deliver([part(m!, NLM_F_MULTI, `q${k}`), done(m!)]));
      }
    };
    const reqs = ["d0", "d1", "d2", "d3", "d4"].map((op) => ({ type: 0x30, payload: Buffer.alloc(4), op }));
    const res = await sock.dumpMany(reqs);
    expect(res[0]!.replies.map((m) => m.payload.toString())).toEqual(["p0", "q0"]);
    expect(res[1]!.error).toBeInstanceOf(NetlinkDumpInterruptedError);
    expect(res[1]!.error).toMatchObject({ op: "d1", retryable: true });
    expect(res[2]!.error).toMatchObject({ op: "d2", code: "EINVAL", retryable: false });
    expect(res[3]!.error).toMatchObject({ op: "d3", code: "EBUSY", retryable: true });
    expect(res[4]!.replies.map((m) => m.payload.toString())).toEqual(["p4", "q4"]);
    const seqs = raw.sent.map(([m]) => m!.seq);
    expect(new Set(seqs).size).toBe(5);
    expect(sock.counters).toMatchObject({ dumps: 5, messages: 5, stray: 0 });
    await expect(sock.dumpMany([])).resolves.toEqual([]);
  });

  it("dumpMany onPart: parts in place with their dump index; DUMP_INTR and errors still per dump; framing checked per datagram", async () => {
    const { raw, sock } = scripted();
    let n = 0;
    raw.onSend = ([m]) => {
      const k = n++;
      if (k === 0) {
        raw.deliver([part(m!, NLM_F_MULTI, "a0"), part(m!, NLM_F_MULTI, "b0")]);
        raw.deliver([Buffer.concat([part(m!, NLM_F_MULTI, "lost"), Buffer.from([1, 2, 3, 4])])]); // trailing garbage: dropped whole
        raw.deliver([done(m!)]);
      } else if (k === 1) raw.deliver([part(m!, NLM_F_MULTI, "a1"), part(m!, NLM_F_MULTI | NLM_F_DUMP_INTR, "b1"), done(m!)]);
      else if (k === 2) raw.deliver([ack(m!, 22)]);
      else raw.deliver([part(m!, NLM_F_MULTI, `a${k}`), done(m!)]);
    };
    const seen: string[] = [];
    const reqs = ["d0", "d1", "d2", "d3"].map((op) => ({ type: 0x30, payload: Buffer.alloc(4), op }));
    const res = await sock.dumpMany(reqs, { onPart: (i, buf, start, end) => seen.push(`${i}:${buf.toString("utf8", start, end)}`) });
    expect(seen).toEqual(["0:a0", "0:b0", "1:a1", "1:b1", "3:a3"]);
    expect(res.map((r) => r.replies.length)).toEqual([0, 0, 0, 0]);
    expect(res[0]!.error).toBeUndefined();
    expect(res[1]!.error).toBeInstanceOf(NetlinkDumpInterruptedError);
    expect(res[2]!.error).toMatchObject({ op: "d2", code: "EINVAL" });
    expect(res[3]!.error).toBeUndefined();
    expect(sock.counters.stray).toBe(1);
  });

  it("dumpMany onPart: a sink that throws fails the call with its error after the running dump; no further dump is sent", async () => {
    const { raw, sock } = scripted();
    raw.onSend = ([m]) => raw.deliver([part(m!, NLM_F_MULTI, "x"), part(m!, NLM_F_MULTI, "y"), done(m!)]);
    const boom = new RangeError("bad part");
    let calls = 0;
    const reqs = [0, 1, 2].map((i) => ({ type: 0x30, payload: Buffer.alloc(0), op: `s${i}` }));
    await expect(
      sock.dumpMany(reqs, {
        onPart: (i) => {
          calls++;
          if (i === 1) throw boom;
        },
      }),
    ).rejects.toBe(boom);
    expect(calls).toBe(3); // 0:x, 0:y, 1:x — nothing after the throw
    expect(raw.sent).toHaveLength(2);
    // The socket's dump slot is free again.
    await expect(sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "after" })).resolves.toHaveLength(2);
  });

  it("dumpMany: a dump that stalls → NetlinkTimeoutError; the socket's dump slot stays taken until its NLMSG_DONE", async () => {
    const { raw, sock } = scripted();
    const sent: NetlinkMessage[] = [];
    raw.onSend = ([m]) => {
      sent.push(m!);
      if (sent.length === 1) raw.deliver([part(m!), done(m!)]); // the second one never answers
    };
    const t0 = Date.now();
    const err = await sock.dumpMany([0, 1, 2].map((i) => ({ type: 0x30, payload: Buffer.alloc(0), op: `m${i}` })), { timeoutMs: 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkTimeoutError);
    expect(err).toMatchObject({ op: "m1", code: "ETIMEDOUT" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    const next = sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "after" });
    await new Promise((r) => setTimeout(r, 20));
    expect(sent).toHaveLength(2); // m2 was never sent, "after" waits for m1's NLMSG_DONE
    raw.onSend = ([m]) => raw.deliver([part(m!), done(m!)]);
    raw.deliver([done(sent[1]!)]);
    await expect(next).resolves.toHaveLength(1);
  });

  it("dumpMany: a receive-queue overrun fails the call as retryable and frees the socket", async () => {
    const { raw, sock } = scripted();
    raw.onSend = () => raw.emit("error", { errno: 105, code: "ENOBUFS", syscall: "recvmsg" });
    await expect(sock.dumpMany([{ type: 0x30, payload: Buffer.alloc(0), op: "o" }])).rejects.toMatchObject({ code: "ENOBUFS", retryable: true, op: "o" });
    raw.onSend = ([m]) => raw.deliver([part(m!), done(m!)]);
    await expect(sock.dump({ type: 0x30, payload: Buffer.alloc(0), op: "again" })).resolves.toHaveLength(1);
  });

  it("a receive-queue overrun (ENOBUFS) fails everything in flight as retryable", async () => {
    const { raw, sock } = scripted();
    raw.onSend = () => raw.emit("error", { errno: 105, code: "ENOBUFS", syscall: "recvmsg" });
    await expect(sock.request({ type: 0x30, payload: Buffer.alloc(0), op: "r" })).rejects.toMatchObject({ code: "ENOBUFS", retryable: true, op: "r" });
  });

  it("batch: only the last message of a chunk asks for an ACK; errors land on the right request", async () => {
    const { raw, sock } = scripted();
    raw.onSend = (msgs) => {
      const replies = msgs.flatMap((m, i) => (i === 1 ? [ack(m, 17)] : m.flags & NLM_F_ACK ? [ack(m)] : []));
      raw.deliver(replies);
    };
    const reqs = ["a", "b", "c", "d", "e"].map((op) => ({ type: 0x30, payload: Buffer.alloc(8), op }));
    const res = await sock.batch(reqs, { maxMessages: 3 });
    expect(raw.sent.map((c) => c.map((m) => (m.flags & NLM_F_ACK ? "A" : "-")).join(""))).toEqual(["--A", "-A"]);
    expect(res.map((r) => r.error?.code ?? "ok")).toEqual(["ok", "EEXIST", "ok", "ok", "EEXIST"]);
    expect(res[1]!.error!.op).toBe("b");
    expect(sock.counters).toMatchObject({ messages: 5, sends: 2 });
  });

  it("batch: respects maxBytes", async () => {
    const { raw, sock } = scripted();
    raw.onSend = (msgs) => raw.deliver([ack(msgs[msgs.length - 1]!)]);
    const reqs = Array.from({ length: 10 }, (_, i) => ({ type: 0x30, payload: Buffer.alloc(100), op: `m${i}` }));
    await sock.batch(reqs, { maxBytes: 1024 });
    expect(raw.sent.map((c) => c.length)).toEqual([8, 2]); // 116 bytes each
  });

  it("close() rejects what is in flight and later calls", async () => {
    const { sock } = scripted();
    const p = sock.request({ type: 0x30, payload: Buffer.alloc(0), op: "pending" });
    sock.close();
    await expect(p).rejects.toMatchObject({ code: "EBADF", op: "pending" });
    expect(() => sock.request({ type: 0x30, payload: Buffer.alloc(0), op: "after" })).toThrow(NetlinkError);
  });
});
