// Captures what the real ipvsadm sends for each golden case (strace -e write=all in the kernel
// target) and checks it against the fixtures in agents/hostagent/netlink/ipvs/testdata/, which the
// unit test golden.test.ts compares with codec.ts byte for byte. LVSFLEET_UPDATE_GOLDEN=1 rewrites
// the fixtures from the capture instead (then review the diff and commit it).
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { GENL_ID_CTRL } from "../../agents/hostagent/netlink/genl.js";
import { GOLDEN_CASES, normalise, type GoldenFixture } from "../../agents/hostagent/netlink/ipvs/golden-cases.js";
import { decodeMessages } from "../../agents/hostagent/netlink/wire.js";
import { mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";

const TESTDATA = fileURLToPath(new URL("../../agents/hostagent/netlink/ipvs/testdata/", import.meta.url));
const UPDATE = process.env.LVSFLEET_UPDATE_GOLDEN === "1";

/** Bytes of every sendmsg in an `strace -e trace=sendmsg -e write=all` log, one Buffer per call. */
export function parseStraceWrites(log: string): Buffer[] {
  const out: Buffer[] = [];
  let cur: number[] | undefined;
  for (const line of log.split("\n")) {
    if (/^(\d+\s+)?sendmsg\(/.test(line)) {
      if (cur) out.push(Buffer.from(cur));
      cur = [];
    } else if (cur && /^ \| [0-9a-f]{5}  /.test(line)) {
      for (const h of line.slice(10, 59).match(/[0-9a-f]{2}/g) ?? []) cur.push(parseInt(h, 16));
    }
  }
  if (cur) out.push(Buffer.from(cur));
  return out;
}

let target: KernelTarget;
let kernelRelease: string;
let ipvsadmVersion: string;
beforeAll(async () => {
  target = await kernelTarget();
  kernelRelease = (await mustExec(target, "uname -r")).trim();
  ipvsadmVersion = (await mustExec(target, "ipvsadm --version")).trim();
});

describe("ipvsadm wire captures match the checked-in goldens", () => {
  for (const c of GOLDEN_CASES) {
    it(`${c.name}: ipvsadm ${c.args}`, async () => {
      const log = join(target.shareDir, `golden-${c.name}.strace`);
      const setup = c.setup.map((s) => `ipvsadm ${s}`).join(" && ");
      await mustExec(target, `ipvsadm -C ${setup ? `&& ${setup}` : ""} && strace -qq -e trace=sendmsg -e write=all -o ${log} ipvsadm ${c.args}`);
      const sends = parseStraceWrites(await readFile(log, "utf8"));
      const messages = sends.flatMap((b) => decodeMessages(b).map((m, i, all) => ({ m, raw: frame(b, all, i) }))).filter((x) => x.m.type !== GENL_ID_CTRL);
      expect(messages.length, "no IPVS message in the capture").toBeGreaterThan(0);
      const fx: GoldenFixture = {
        command: `ipvsadm ${c.args}`,
        ipvsadm: ipvsadmVersion,
        kernelRelease,
        familyId: messages[0]!.m.type,
        messages: messages.map((x) => x.raw.toString("hex")),
      };
      const file = join(TESTDATA, `${c.name}.json`);
      if (UPDATE) {
        await writeFile(file, JSON.stringify(fx, null, 2) + "\n");
        return;
      }
      expect(existsSync(file), `${file} missing: run with LVSFLEET_UPDATE_GOLDEN=1`).toBe(true);
      const old = JSON.parse(await readFile(file, "utf8")) as GoldenFixture;
      const norm = (f: GoldenFixture) => f.messages.map((h) => normalise(Buffer.from(h, "hex"), true));
      expect(norm(fx)).toEqual(norm(old));
      expect(fx.command).toBe(old.command);
    });
  }
});

/** The bytes of message i of a datagram (messages are 4-byte aligned, nlmsg_len first). */
function frame(buf: Buffer, all: unknown[], i: number): Buffer {
  let off = 0;
  for (let k = 0; k < i; k++) off += (buf.readUInt32LE(off) + 3) & ~3;
  void all;
  return buf.subarray(off, off + buf.readUInt32LE(off));
}
