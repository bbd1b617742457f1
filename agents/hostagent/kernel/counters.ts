// IPVS counters → ServiceCountersSample: one snapshot with stats (IpvsClient.snapshot({ stats: true }))
// matched against the desired state, so each service and destination carries the names the control
// plane knows (IpvsService.virtual_service, IpvsDestination.real_server). Only services of the desired
// state are reported (foreign services are not lvsfleet's); stats64 when the kernel sends it, else the
// 32-bit stats.
import type { HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { IpvsServiceState } from "../netlink/ipvs/client.js";
import type { IpvsStats } from "../netlink/ipvs/codec.js";
import { destinationKey, destinationSpecFromProto, serviceKey, serviceSpecFromProto } from "../reconcile/index.js";
import type { CountersSample, ServiceCountersSample } from "./backend.js";

export function countersSample(s: IpvsStats | undefined): CountersSample | undefined {
  if (!s) return undefined;
  return {
    connections: s.conns,
    inPackets: s.inPkts,
    outPackets: s.outPkts,
    inBytes: s.inBytes,
    outBytes: s.outBytes,
    connectionRate: s.cps,
    inPacketRate: s.inPps,
    outPacketRate: s.outPps,
    inByteRate: s.inBps,
    outByteRate: s.outBps,
  };
}

export function countersFromSnapshot(desired: HostDesiredState | undefined, snapshot: readonly IpvsServiceState[]): ServiceCountersSample[] {
  const byKey = new Map<string, IpvsServiceState>();
  for (const e of snapshot) byKey.set(serviceKey(e.service), e);
  const out: ServiceCountersSample[] = [];
  for (const svc of desired?.director?.services ?? []) {
    let key: string;
    try {
      key = serviceKey(serviceSpecFromProto(svc));
    } catch {
      continue; // the apply reported it already
    }
    const found = byKey.get(key);
    if (!found) continue;
    const names = new Map<string, string>();
    for (const d of [...svc.destinations, ...(svc.sorryServer ? [svc.sorryServer] : [])]) {
      try {
        names.set(destinationKey(destinationSpecFromProto(d)), d.realServer);
      } catch {
        /* skipped by the apply too */
      }
    }
    out.push({
      virtualService: svc.virtualService,
      ipvsService: key,
      totals: countersSample(found.service.stats64 ?? found.service.stats),
      destinations: found.destinations.map((d) => ({
        realServer: names.get(destinationKey(d)) ?? "",
        address: d.address,
        port: d.port,
        counters: countersSample(d.stats64 ?? d.stats),
        activeConnections: d.activeConns ?? 0,
        inactiveConnections: d.inactiveConns ?? 0,
        persistentConnections: d.persistentConns ?? 0,
        weight: d.weight,
      })),
    });
  }
  return out;
}
