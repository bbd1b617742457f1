// FouManager (types.ts) over the generic netlink "fou" family (netlink/fou.ts FouClient): the GUE
// receive ports of TUN real servers. Opened lazily by LinuxBackend, only on hosts that need or own one
// (FouClient.open runs `modprobe fou` on kernels that do not autoload the family).
import { FouClient } from "../netlink/fou.js";
import type { NetlinkSocketOptions } from "../netlink/socket.js";
import type { FouManager, FouPortInfo, IpFamily } from "./types.js";

export class GenlFouManager implements FouManager {
  private constructor(private readonly client: FouClient) {}

  static async open(opts: NetlinkSocketOptions & { modprobe?: string | false } = {}): Promise<GenlFouManager> {
    return new GenlFouManager(await FouClient.open(opts));
  }

  async list(): Promise<FouPortInfo[]> {
    return (await this.client.list()).map((p) => {
      const out: FouPortInfo = { port: p.port, family: p.family ?? 4, encap: p.encap };
      if (p.ipproto !== undefined) out.ipproto = p.ipproto;
      return out;
    });
  }

  ensureGue(port: number, family: IpFamily): Promise<void> {
    return this.client.ensurePort({ port, family, encap: "gue" });
  }

  remove(port: number, family: IpFamily): Promise<void> {
    return this.client.deletePort({ port, family });
  }

  close(): void {
    this.client.close();
  }
}
