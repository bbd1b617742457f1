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
  HostDesiredStateSchema,
  IpvsDestinationSchema,
  type HostDesiredState,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { FailureAction } from "../../../gen/lvsfleet/v1/types_pb.js";
import { effectiveCheck } from "./spec.js";

/** What applyHealth needs to know of one check: down = false. Unknown keys count as up. */
export interface CheckHealth {
  up: boolean;
}

export type HealthView = ReadonlyMap<string, CheckHealth>;

export function applyHealth(desired: HostDesiredState, health: HealthView): HostDesiredState {
  const out = clone(HostDesiredStateSchema, desired);
  const changes: string[] = [];
  for (const svc of out.director?.services ?? []) {
    const kept = [];
    let live = 0;
    for (const dst of svc.destinations) {
      const check = effectiveCheck(svc, dst);
      const down = check !== undefined && health.get(check.key)?.up === false;
      if (!down) {
        live++;
        kept.push(dst);
      } else if (svc.failureAction !== FailureAction.REMOVE) {
        changes.push(`${svc.virtualService} ${dst.address}:${dst.port} quiesce`);
        dst.weight = 0;
        kept.push(dst);
      } else {
        changes.push(`${svc.virtualService} ${dst.address}:${dst.port} remove`);
      }
    }
    svc.destinations = kept;
    const sorry = svc.sorryServer;
    if (live === 0 && sorry && sorry.address !== "") {
      const clash = kept.findIndex((d) => d.address.toLowerCase() === sorry.address.toLowerCase() && d.port === sorry.port);
      const s = clone(IpvsDestinationSchema, sorry);
      if (s.weight === 0) s.weight = 1;
      // A sorry server that is also a (quiesced) real server of the service takes that slot.
      if (clash >= 0) kept[clash] = s;
      else kept.push(s);
      changes.push(`${svc.virtualService} sorry ${s.address}:${s.port}`);
    }
  }
  // `hash` means "equal hashes, equal kernel state": an adjusted state must not share the
  // configured state's hash (the backend persists what it applies by hash).
  if (changes.length > 0 && out.hash !== "") {
    out.hash = `${out.hash}+health-${createHash("sha256").update(changes.join("\n")).digest("hex").slice(0, 16)}`;
  }
  return out;
}
