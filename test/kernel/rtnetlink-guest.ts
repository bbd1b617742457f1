// Entry bundled by test/kernel/rtnetlink.test.ts (bundleForGuest) and run on the IPVS kernel target
// (Debian's 6.1 in the VM, which has ipip) inside a namespace the test's script made:
//   node <bundle> create | delete
// Prints one JSON line with what the adapters returned; the test checks it against iproute2.
import { NetlinkSocket, NETLINK_ROUTE } from "../../agents/hostagent/netlink/socket.js";
import { RtnlAddressManager, RtnlLinkManager } from "../../agents/hostagent/netlink/rtnetlink/index.js";

const sock = NetlinkSocket.open(NETLINK_ROUTE);
const links = new RtnlLinkManager(sock);
const addrs = new RtnlAddressManager(sock);
const out: Record<string, unknown> = {};
const err = (e: any) => ({ name: e?.name, code: e?.code, errno: e?.errno, op: e?.op });
try {
  if (process.argv[2] === "create") {
    out.created = await links.createIpip({ name: "tunl-vip", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 });
    await links.setUp("tunl-vip", true);
    out.after = await links.get("tunl-vip");
    await addrs.add({ ifname: "tunl-vip", address: "198.51.100.50" });
    await addrs.add({ ifname: "tunl-vip", address: "2001:db8::50" });
    out.owned = await addrs.list({ ifname: "tunl-vip", ownedOnly: true });
    out.duplicate = await links.createIpip({ name: "tunl-vip" }).then(() => "created twice?", err);
  } else {
    await links.delete("tunl-vip");
    out.after = (await links.get("tunl-vip")) ?? null;
  }
} catch (e) {
  out.error = { ...err(e), message: (e as Error).message };
}
sock.close();
process.stdout.write(JSON.stringify(out) + "\n");
