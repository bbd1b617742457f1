// Entry bundled by test/kernel/rtnetlink.test.ts ("tunnel devices for TUN real servers") and run on
// the IPVS kernel target inside a namespace the test's script made: creates the tunnel fallback
// devices (ip6tnl0, sit0, gre0, ip6gre0) and GUE / direct FOU ports through the adapters, and
// captures iproute2's view (the oracle, a separate program) between steps.
import { execFileSync } from "node:child_process";
import { FouClient } from "../../agents/hostagent/netlink/fou.js";
import { NetlinkSocket, NETLINK_ROUTE } from "../../agents/hostagent/netlink/socket.js";
import { RtnlAddressManager, RtnlLinkManager } from "../../agents/hostagent/netlink/rtnetlink/index.js";
import type { TunnelFallbackKind } from "../../agents/hostagent/netlink/rtnetlink/link.js";

const sock = NetlinkSocket.open(NETLINK_ROUTE);
const links = new RtnlLinkManager(sock);
const addrs = new RtnlAddressManager(sock);
const out: Record<string, unknown> = {};
const oracle: Record<string, unknown> = {};
const ipj = (...args: string[]) => JSON.parse(execFileSync("ip", ["-j", ...args], { encoding: "utf8" }));
const ipText = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });
const err = (e: any) => ({ name: e?.name, code: e?.code, errno: e?.errno, op: e?.op, message: e?.message });
const vip: Record<string, string> = { ip6tnl: "2001:db8:6::50", sit: "2001:db8:5::50", gre: "198.51.100.60", ip6gre: "2001:db8:7::50" };
try {
  oracle.before = ipj("link", "show").map((l: any) => l.ifname);
  for (const kind of ["ip6tnl", "sit", "gre", "ip6gre"] as TunnelFallbackKind[]) {
    try {
      const first = await links.ensureTunnelFallback(kind);
      const again = await links.ensureTunnelFallback(kind);
      await links.setUp(first.name, true);
      await addrs.add({ ifname: first.name, address: vip[kind]! });
      out[kind] = { first, again, owned: await addrs.list({ ifname: first.name, ownedOnly: true }) };
      oracle[kind] = ipj("-d", "addr", "show", "dev", first.name);
    } catch (e) {
      out[kind] = { error: err(e) };
    }
  }
  const fou = await FouClient.open();
  await fou.ensurePort({ port: 6080, encap: "gue" });
  await fou.ensurePort({ port: 6080, encap: "gue" }); // idempotent
  out.fouConflict = await fou.ensurePort({ port: 6080, encap: "direct", ipproto: 4 }).then(() => "changed?", err);
  await fou.ensurePort({ port: 5555, encap: "direct", ipproto: 4 });
  out.fouList = await fou.list();
  oracle.fou = ipText("fou", "show");
  await fou.deletePort({ port: 5555 });
  out.fouAfterDelete = await fou.list();
  out.fouDeleteAgain = await fou.deletePort({ port: 5555 }).then(() => "deleted twice?", err);
  fou.close();
} catch (e) {
  out.error = err(e);
}
sock.close();
process.stdout.write(JSON.stringify({ out, oracle }) + "\n");
