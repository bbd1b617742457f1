// The effect of health on the desired state, pure: (desired, health) → the state the kernel gets.
//  - a real server whose check is down: weight 0 (QUIESCE, the default: no new connections,
//    established ones drain) or left out (REMOVE), per service — the same real server can be
//    quiesced in one service and removed from another;
//  - a service with no live real server (all down, or none configured) and a sorry server: the sorry
//    server is added (weight from the spec, 1 when 0, since weight 0 would send nothing to it);
//  - recovery needs nothing special: everything is derived from the configured state each time,
//    so an up real server simply has its configured weight again.
// Handing the result to the KernelBackend makes a quiesce one weight-edit request (reconcile/).
import { createHash } from "node:crypto";
import { clone } from "@bufbuild/protobuf";
import {
  IpvsDestinationSchema,
  type HostDesiredState,
  type IpvsDestination,
  type IpvsService,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { FailureAction } from "../../../gen/lvsfleet/v1/types_pb.js";
import { effectiveCheck } from "./spec.js";

/** What applyHealth needs to know of one check: down = false. Unknown keys count as up. */
export interface CheckHealth {
  up: boolean;
}

export type HealthView = ReadonlyMap<string, CheckHealth>;

/**
 * The state the kernel gets. Pure: `desired` is not modified; the result shares the unchanged parts
 * (services without a change are the same objects), so treat both as immutable.
 */
export function applyHealth(desired: HostDesiredState, health: HealthView): HostDesiredState {
  const director = desired.director;
  if (!director) return desired;
  const changes: string[] = [];
  let services: IpvsService[] | undefined;
  // The common case — every check up — only concerns services without real servers (sorry server).
  let anyDown = false;
  for (const h of health.values()) {
    if (!h.up) {
      anyDown = true;
      break;
    }
  }
  director.services.forEach((svc, i) => {
    if (!anyDown && svc.destinations.length > 0) return;
    const next = serviceWithHealth(svc, health, changes);
    if (next !== svc) {
      services ??= director.services.slice();
      services[i] = next;
    }
  });
  if (!services) return desired;
  // `hash` means "equal hashes, equal kernel state": an adjusted state must not share the
  // configured state's hash (the backend persists what it applies by hash).
  const hash = desired.hash === "" ? "" : `${desired.hash}+health-${createHash("sha256").update(changes.join("\n")).digest("hex").slice(0, 16)}`;
  return { ...desired, hash, director: { ...director, services } };
}

/**
 * One service as the kernel gets it (the part of applyHealth a transition needs: health/backend.ts
 * recomputes only the services that use the check that changed). `svc` itself when nothing changes.
 */
export function serviceWithHealth(svc: IpvsService, health: HealthView, changes: string[] = []): IpvsService {
  let kept: IpvsDestination[] | undefined; // copied on the first change
  let live = 0;
  svc.destinations.forEach((dst, i) => {
    const check = svc.healthCheck ? effectiveCheck(svc, dst) : undefined;
    const down = check !== undefined && health.get(check.key)?.up === false;
    if (!down) {
      live++;
      kept?.push(dst);
      return;
    }
    kept ??= svc.destinations.slice(0, i);
    if (svc.failureAction !== FailureAction.REMOVE) {
      changes.push(`${svc.virtualService} ${dst.address}:${dst.port} quiesce`);
      kept.push(dst.weight === 0 ? dst : { ...dst, weight: 0 });
    } else {
      changes.push(`${svc.virtualService} ${dst.address}:${dst.port} remove`);
    }
  });
  const sorry = svc.sorryServer;
  if (live === 0 && sorry && sorry.address !== "") {
    kept ??= svc.destinations.slice();
    const s = clone(IpvsDestinationSchema, sorry);
    if (s.weight === 0) s.weight = 1;
    // A sorry server that is also a (quiesced) real server of the service takes that slot.
    const clash = kept.findIndex((d) => d.address.toLowerCase() === s.address.toLowerCase() && d.port === s.port);
    if (clash >= 0) kept[clash] = s;
    else kept.push(s);
    changes.push(`${svc.virtualService} sorry ${s.address}:${s.port}`);
  }
  return kept ? { ...svc, destinations: kept } : svc;
}
