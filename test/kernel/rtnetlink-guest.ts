// Entry bundled by test/kernel/rtnetlink.test.ts (bundleForGuest) and run on the IPVS kernel target
// (Debian's 6.1 in the VM, which has ipip) inside a namespace the test's script made. One node
// process (JS is slow under TCG): it drives the adapters and, between steps, captures iproute2's
// view (`ip -j ...`, the oracle, a separate program) verbatim for the test to compare.
import { execFileSync } from "node:child_process";
import { NetlinkSocket, NETLINK_ROUTE } from "../../agents/hostagent/netlink/socket.js";
import { RtnlAddressManager, RtnlLinkManager } from "../../agents/hostagent/netlink/rtnetlink/index.js";

const sock = NetlinkSocket.open(NETLINK_ROUTE);
const links = new RtnlLinkManager(sock);
const addrs = new RtnlAddressManager(sock);
const out: Record<string, unknown> = {};
const oracle: Record<string, unknown> = {};
const ip = (...args: string[]) => JSON.parse(execFileSync("ip", ["-j", ...args], { encoding: "utf8" }));
const err = (e: any) => ({ name: e?.name, code: e?.code, errno: e?.errno, op: e?.op });
try {
  out.created = await links.createIpip({ name: "tunl-vip", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 });
  await links.setUp("tunl-vip", true);
  out.after = await links.get("tunl-vip");
  await addrs.add({ ifname: "tunl-vip", address: "198.51.100.50" });
  await addrs.add({ ifname: "tunl-vip", address: "2001:db8::50" });
  out.owned = await addrs.list({ ifname: "tunl-vip", ownedOnly: true });
  out.duplicate = await links.createIpip({ name: "tunl-vip" }).then(() => "created twice?", err);
  // any/any is taken by the fallback device tunl0 that loading ipip created in this namespace
  out.anyAny = await links.createIpip({ name: "tunl-any" }).then(() => "created?", err);
  out.fallback = await links.ensureIpipFallback();
  out.fallbackAgain = await links.ensureIpipFallback();
  await links.setUp("tunl0", true);
  await addrs.add({ ifname: "tunl0", address: "198.51.100.51" });
  oracle.link = ip("-d", "link", "show", "tunl-vip");
  oracle.addr = ip("addr", "show", "dev", "tunl-vip");
  oracle.tunl0 = ip("addr", "show", "dev", "tunl0");
  await links.delete("tunl-vip");
  out.deleted = (await links.get("tunl-vip")) ?? null;
  oracle.linksAfter = ip("link", "show");
} catch (e) {
  out.error = { ...err(e), message: (e as Error).message };
}
sock.close();
process.stdout.write(JSON.stringify({ out, oracle }) + "\n");
