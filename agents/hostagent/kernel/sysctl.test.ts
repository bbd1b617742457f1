// Key mapping and error typing of ProcSysctlManager, over a scratch directory standing in for
// /proc/sys. The adapter against the real /proc/sys is tested in test/kernel/sysctl.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcSysctlManager, ipv4ConfKey, ipv6ForwardingKey, ipvsKey, parseSysctlKey, sysctlKeyToString } from "./sysctl.js";
import { SysctlError, SysctlNotFoundError } from "./errors.js";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "lvsf-sysctl-"));
  mkdirSync(join(root, "net/ipv4/conf/eth0.100"), { recursive: true });
  writeFileSync(join(root, "net/ipv4/conf/eth0.100/arp_ignore"), "0\n");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("sysctl keys", () => {
  it("keeps dots of interface names in the path and writes them as '/' in the dotted key (sysctl(8))", () => {
    const key = ipv4ConfKey("eth0.100", "arp_ignore");
    expect(key).toEqual(["net", "ipv4", "conf", "eth0.100", "arp_ignore"]);
    expect(sysctlKeyToString(key)).toBe("net.ipv4.conf.eth0/100.arp_ignore");
    expect(parseSysctlKey("net.ipv4.conf.eth0/100.arp_ignore")).toEqual(key);
    expect(sysctlKeyToString(ipv6ForwardingKey("all"))).toBe("net.ipv6.conf.all.forwarding");
    expect(sysctlKeyToString(ipvsKey("expire_nodest_conn"))).toBe("net.ipv4.vs.expire_nodest_conn");
  });

  it("refuses names that could escape /proc/sys or are not interface names", () => {
    for (const bad of ["..", "a/b", "", "x".repeat(16), "a b", "eth0:1"]) {
      expect(() => ipv4ConfKey(bad, "rp_filter")).toThrow(SysctlError);
    }
    expect(() => ipvsKey("../../x")).toThrow(SysctlError);
  });
});

describe("ProcSysctlManager on a scratch tree", () => {
  it("writes, then reads back through the file", async () => {
    const m = new ProcSysctlManager({ root });
    await m.write(ipv4ConfKey("eth0.100", "arp_ignore"), 1);
    expect(readFileSync(join(root, "net/ipv4/conf/eth0.100/arp_ignore"), "utf8")).toBe("1\n");
    expect(await m.read(ipv4ConfKey("eth0.100", "arp_ignore"))).toBe("1");
  });

  it("types ENOENT as SysctlNotFoundError with a hint per subsystem", async () => {
    const m = new ProcSysctlManager({ root });
    await expect(m.read(ipvsKey("conntrack"))).rejects.toThrow(/ip_vs is not loaded/);
    await expect(m.read(ipvsKey("conntrack"))).rejects.toBeInstanceOf(SysctlNotFoundError);
    await expect(m.write(ipv4ConfKey("eth9", "rp_filter"), 1)).rejects.toThrow(/no interface eth9/);
  });

  it("checks documented ranges before writing", async () => {
    const m = new ProcSysctlManager({ root });
    await expect(m.write(ipv4ConfKey("eth0.100", "arp_ignore"), 9)).rejects.toMatchObject({ reason: "invalid-value" });
    await expect(m.write(ipv4ConfKey("eth0.100", "arp_ignore"), "1.5")).rejects.toMatchObject({ reason: "invalid-value" });
  });
});
