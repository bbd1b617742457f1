// Host side of the IPVS kernel tests: run IpvsClient steps in the kernel target (guest/ipvs-client.ts,
// bundled once) and small parsers for ipvsadm output.
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import type { Step, StepResult } from "./guest/ipvs-client.js";

export type { Step, StepResult };

let bundle: Promise<string> | undefined;

export async function runClient(target: KernelTarget, steps: Step[], timeoutMs = 120_000): Promise<StepResult[]> {
  bundle ??= bundleForGuest("test/kernel/guest/ipvs-client.ts");
  const file = join(target.shareDir, `ipvs-steps-${randomUUID()}.json`);
  await writeFile(file, JSON.stringify(steps));
  const out = await mustExec(target, `node ${await bundle} ${file}`, { timeoutMs });
  const doc = JSON.parse(out, (_k, v) => (typeof v === "string" && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v)) as { results: StepResult[] };
  return doc.results;
}

/** The value of a step that must have succeeded (throws with the error otherwise). */
export function ok<T = unknown>(r: StepResult | undefined): T {
  if (!r) throw new Error("missing step result");
  if (!r.ok) throw new Error(`step failed: ${r.error.name} ${r.error.code ?? ""} ${r.error.message}`);
  return r.value as T;
}

/** `ipvsadm -Sn` as a sorted list of non-empty lines. */
export async function ipvsadmSave(target: KernelTarget): Promise<string[]> {
  const out = await mustExec(target, "ipvsadm -Sn");
  return out.split("\n").map((l) => l.trim()).filter(Boolean).sort();
}

export interface ListedStats {
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
}

/**
 * `ipvsadm -Ln --stats --exact`: per service ("TCP  192.0.2.1:80") and per destination
 * ("TCP  192.0.2.1:80 -> 198.51.100.1:80") the five counters.
 */
export function parseListStats(out: string): Map<string, ListedStats> {
  const m = new Map<string, ListedStats>();
  let svc = "";
  for (const line of out.split("\n")) {
    const s = /^(TCP|UDP|SCTP|FWM)\s+(\S+)(?:\s+IPv6)?\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    const d = /^\s+->\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (s) {
      svc = `${s[1]}  ${s[2]}`;
      m.set(svc, { conns: BigInt(s[3]!), inPkts: BigInt(s[4]!), outPkts: BigInt(s[5]!), inBytes: BigInt(s[6]!), outBytes: BigInt(s[7]!) });
    } else if (d && svc) {
      m.set(`${svc} -> ${d[1]}`, { conns: BigInt(d[2]!), inPkts: BigInt(d[3]!), outPkts: BigInt(d[4]!), inBytes: BigInt(d[5]!), outBytes: BigInt(d[6]!) });
    }
  }
  return m;
}
