// reconcile(desired, observed, owned) → Plan: the ordered kernel operations that make the host match
// its desired state, pure (no I/O, no clock, no netlink imports; kube-proxy's proxier shape, Seesaw's
// ordering rules written down as code).
//
// Ordering — make before break. Ops are emitted in phases, in this order:
//
//   1 link-up          tunnel devices exist and are up      before the sysctls and VIPs that live on them
//   1b fou-add         GUE receive ports (fou)              before the VIPs they deliver to: the first GUE
//                                                           packet a VIP attracts is decapsulated (a port
//                                                           repaired from "direct" to GUE: del, then add)
//   2 sysctl-set       ip_forward, arp_ignore/arp_announce, before the services that need them (NAT needs
//                      rp_filter, net.ipv4.vs.*             ip_forward) and before real-server VIPs (a VIP
//                                                           on lo without arp_ignore steals the Director's ARP)
//   3 fwmark-apply     lvsfleet's nftables table            before fwmark services: the mark exists before
//                                                           a service keyed by it (when marks also go away
//                                                           while their services are removed, this is the
//                                                           union of old and new, and phase 11 trims it)
//   4 ipvs-timeouts
//   5 service-add/edit a service exists before its destinations; a scheduler or persistence change is
//                      one edit (IPVS_CMD_SET_SERVICE), destinations are never re-created for it
//   6 dest-add/edit    new destinations are in before any old one goes; a changed weight is one edit
//   7 address-add      VIPs appear after the service (and its destinations) that uses them: the first
//                      packet a VIP attracts finds IPVS ready
//   8 dest-del         old destinations go only after the new ones are in
//   9 service-del      destinations are removed before their service
//  10 address-del      VIPs go after the service that used them
//  11 fwmark-apply/clear  the final table, after the fwmark services that used removed marks are gone
//  12 sysctl-restore   put back what lvsfleet changed and no longer needs, after what needed it left
//  12b fou-del        GUE receive ports lvsfleet created and no longer needs, after the VIPs they fed
//  13 link-down        tunnel devices lvsfleet brought up and no longer needs, after their VIPs went
//
// Ownership. IPVS has no owner field: the OwnedSet remembers the services lvsfleet created or adopted.
// A service is ours when it is in the OwnedSet or when its key is desired (the control plane gave
// this host that VIP:port — an existing service with that key is taken over, which is how a host
// moves from hand-made ipvsadm rules to lvsfleet). Destinations belong to their service: a service's
// destination list is desired state. Addresses are ours when they carry the rtnetlink marker; an
// unmarked address that is desired is left as it is (present is present) and never removed.
// Everything else — services neither owned nor desired, unmarked addresses — is reported as foreign
// and never touched. Nothing is ever flushed. fou ports have no owner field and no marker: only the
// ones lvsfleet created (OwnedSet.fouPorts) are ever deleted or repaired; any other port — desired
// (someone's `ip fou add` already there: it works, it is kept) or not — is reported as foreign.
//
// Adoption. A desired service that the kernel already holds exactly as desired costs no write: it is
// adopted (existing connections keep flowing — nothing is deleted and re-added).
//
// Drift. An object whose last applied version (OwnedSet) equals what is desired now, but which the
// kernel holds differently, was changed behind the agent's back: it is repaired and reported, with
// what was found ("weight 5 (want 1)", "missing", "scheduler rr (want wlc)").
import {
  FWMARK_OBJECT,
  TIMEOUTS_OBJECT,
  addressKey,
  addressObject,
  canonicalIp,
  computeServiceKey,
  fouKey,
  fouObject,
  destinationDiff,
  destinationEqual,
  destinationKey,
  destinationObject,
  linkObject,
  sameSysctlValue,
  serviceDiff,
  serviceEqual,
  serviceKey,
  serviceObject,
  sysctlObject,
  timeoutsDiff,
} from "./keys.js";
import type {
  DesiredHost,
  DestinationSpec,
  Drift,
  ForeignObject,
  FwmarkRule,
  ObservedAddress,
  ObservedHost,
  Op,
  OwnedSet,
  Plan,
  ServiceKey,
  ServiceState,
  Timeouts,
} from "./types.js";

/** Phase of each op kind (see the table above); `reconcile` emits ops sorted by phase. */
export const PHASES = [
  "link-up",
  "fou-add",
  "sysctl-set",
  "fwmark-early",
  "ipvs-timeouts",
  "service-add-edit",
  "dest-add-edit",
  "address-add",
  "dest-del",
  "service-del",
  "address-del",
  "fwmark-late",
  "sysctl-restore",
  "fou-del",
  "link-down",
] as const;
export type Phase = (typeof PHASES)[number];

export function emptyOwned(): OwnedSet {
  return { services: new Map(), sysctls: new Map(), links: new Set(), addresses: new Set(), fouPorts: new Set() };
}

function fwmarkEqual(a: FwmarkRule[], b: FwmarkRule[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function timeoutsEqualOn(found: Timeouts | undefined, want: Timeouts): boolean {
  return timeoutsDiff(found, want).length === 0;
}

export function reconcile(desired: DesiredHost, observed: ObservedHost, owned: OwnedSet): Plan {
  const phase = new Map<Phase, Op[]>(PHASES.map((p) => [p, []]));
  const put = (p: Phase, op: Op) => phase.get(p)!.push(op);
  const drift: Drift[] = [];
  const foreign: ForeignObject[] = [];
  const adopted: string[] = [];

  // ---- tunnel devices ------------------------------------------------------------------------
  const links = new Map(observed.links.map((l) => [l.name, l]));
  const wantLinks = new Set(desired.tunnels.map((t) => t.name));
  for (const t of desired.tunnels) {
    const l = links.get(t.name);
    if (!l || !l.up) {
      put("link-up", { kind: "link-up", object: linkObject(t.name), tunnel: t });
      if (owned.links.has(t.name)) drift.push({ object: linkObject(t.name), found: l ? "down" : "missing" });
    }
  }
  for (const name of owned.links) {
    if (wantLinks.has(name)) continue;
    const l = links.get(name);
    if (l?.up) put("link-down", { kind: "link-down", object: linkObject(name), name });
  }

  // ---- fou (GUE receive ports) ---------------------------------------------------------------
  let unread: Plan["unread"];
  const ownedFou = owned.fouPorts ?? EMPTY_SET;
  if (observed.fouPorts) {
    const obsFou = new Map(observed.fouPorts.map((p) => [fouKey(p), p]));
    const wantFou = new Set<string>();
    for (const p of desired.fouPorts ?? []) {
      const k = fouKey(p);
      if (wantFou.has(k)) continue;
      wantFou.add(k);
      const o = obsFou.get(k);
      const object = fouObject(p);
      if (!o) {
        put("fou-add", { kind: "fou-add", object, port: { port: p.port, family: p.family } });
        if (ownedFou.has(k)) drift.push({ object, found: "missing" });
      } else if (o.encap === "gue") {
        if (!ownedFou.has(k)) foreign.push({ object, note: "desired, but not created by lvsfleet: kept as it is and never removed" });
      } else if (ownedFou.has(k)) {
        // Ours, turned into a direct port behind our back: the kernel keys ports by (port, family),
        // so it goes before it comes back as GUE.
        put("fou-add", { kind: "fou-del", object, port: { port: p.port, family: p.family } });
        put("fou-add", { kind: "fou-add", object, port: { port: p.port, family: p.family } });
        drift.push({ object, found: `direct ipproto ${o.ipproto ?? "?"} (want gue)` });
      } else {
        foreign.push({ object, note: `not created by lvsfleet: a direct port (ipproto ${o.ipproto ?? "?"}), wanted gue; left alone` });
      }
    }
    for (const k of ownedFou) {
      if (wantFou.has(k)) continue;
      const o = obsFou.get(k);
      if (o?.encap === "gue") put("fou-del", { kind: "fou-del", object: fouObject(o), port: { port: o.port, family: o.family } });
      // Made a direct port by someone since lvsfleet created it: theirs now (like a sysctl someone
      // changed since), forgotten and left alone.
      else if (o) foreign.push({ object: fouObject(o), note: `created by lvsfleet, changed since to a direct port (ipproto ${o.ipproto ?? "?"}); left alone` });
    }
    for (const [k, o] of obsFou) {
      if (wantFou.has(k) || ownedFou.has(k)) continue;
      foreign.push({ object: fouObject(o), note: `not created by lvsfleet (${o.encap === "gue" ? "gue" : `direct ipproto ${o.ipproto ?? "?"}`}); left alone` });
    }
  } else if ((desired.fouPorts?.length ?? 0) > 0 || ownedFou.size > 0) {
    unread = ["fou"];
  }

  // ---- sysctls -------------------------------------------------------------------------------
  const wantSysctls = new Set<string>();
  for (const s of desired.sysctls) {
    wantSysctls.add(s.key);
    const cur = observed.sysctls.get(s.key);
    if (sameSysctlValue(cur, s.value)) continue;
    const own = owned.sysctls.get(s.key);
    const op: Op = { kind: "sysctl-set", object: sysctlObject(s.key), key: s.key, value: s.value };
    // Remember the value found before lvsfleet first changed it, to restore it on a role change.
    const was = own ? own.was : cur;
    if (was !== undefined) op.was = was;
    put("sysctl-set", op);
    if (own && sameSysctlValue(own.value, s.value)) drift.push({ object: op.object, found: cur === undefined ? "missing" : `${cur} (want ${s.value})` });
  }
  for (const [key, own] of owned.sysctls) {
    if (wantSysctls.has(key)) continue;
    const cur = observed.sysctls.get(key);
    // Restore only what is still as lvsfleet left it; a value someone else set since is theirs.
    if (own.was !== undefined && cur !== undefined && sameSysctlValue(cur, own.value) && !sameSysctlValue(own.was, own.value)) {
      put("sysctl-restore", { kind: "sysctl-set", object: sysctlObject(key), key, value: own.was, restore: true });
    }
  }

  // ---- IPVS ----------------------------------------------------------------------------------
  const observedServices = observed.ipvs?.services ?? [];
  const obsByKey = new Map<string, ServiceState>();
  for (const s of observedServices) obsByKey.set(computeServiceKey(s.service), s); // fresh objects each snapshot
  const wantKeys = new Set<string>();
  const fwmarksBeingDeleted = new Set<number>();

  if (desired.timeouts && !timeoutsEqualOn(observed.ipvs?.timeouts, desired.timeouts)) {
    put("ipvs-timeouts", { kind: "ipvs-timeouts", object: TIMEOUTS_OBJECT, timeouts: desired.timeouts });
    if (owned.timeouts && timeoutsEqualOn(owned.timeouts, desired.timeouts) && observed.ipvs?.timeouts) {
      drift.push({ object: TIMEOUTS_OBJECT, found: timeoutsDiff(observed.ipvs.timeouts, desired.timeouts).join(", ") });
    }
  }

  for (const want of desired.services) {
    const key = serviceKey(want.service);
    wantKeys.add(key);
    const obs = obsByKey.get(key);
    const own = owned.services.get(key);
    const clean = own?.clean === true;
    if (!obs) {
      const svcObj = serviceObject(key);
      put("service-add-edit", { kind: "service-add", object: svcObj, key, service: want.service });
      for (const d of want.destinations) {
        const dk = destinationKey(d);
        put("dest-add-edit", { kind: "dest-add", object: destinationObject(key, dk), key: dk, service: want.service, destination: d });
      }
      if (clean && serviceDiff(own.state.service, want.service).length === 0) drift.push({ object: svcObj, found: "missing" });
      continue;
    }
    let changed = false;
    if (!serviceEqual(obs.service, want.service)) {
      changed = true;
      const svcObj = serviceObject(key);
      put("service-add-edit", { kind: "service-edit", object: svcObj, key, service: want.service });
      if (clean && serviceDiff(own.state.service, want.service).length === 0) drift.push({ object: svcObj, found: serviceDiff(obs.service, want.service).join(", ") });
    }
    // Destinations are matched by address and port; lists are short, so a linear match (no Map, no
    // key strings) keeps a no-change resync of 100,000 destinations cheap.
    const obsDests = obs.destinations;
    const matched = obsDests.length > 0 ? new Uint8Array(obsDests.length) : EMPTY;
    for (const d of want.destinations) {
      const at = findDest(obsDests, d);
      if (at < 0) {
        changed = true;
        const dk = destinationKey(d);
        const dObj = destinationObject(key, dk);
        put("dest-add-edit", { kind: "dest-add", object: dObj, key: dk, service: want.service, destination: d });
        const od = clean ? own.state.destinations[findDest(own.state.destinations, d)] : undefined;
        if (od && destinationEqual(od, d)) drift.push({ object: dObj, found: "missing" });
        continue;
      }
      matched[at] = 1;
      const o = obsDests[at]!;
      if (!destinationEqual(o, d)) {
        changed = true;
        const dk = destinationKey(d);
        const dObj = destinationObject(key, dk);
        put("dest-add-edit", { kind: "dest-edit", object: dObj, key: dk, service: want.service, destination: d });
        const od = clean ? own.state.destinations[findDest(own.state.destinations, d)] : undefined;
        if (od && destinationEqual(od, d)) drift.push({ object: dObj, found: destinationDiff(o, d).join(", ") });
      }
    }
    for (let i = 0; i < obsDests.length; i++) {
      if (matched[i]) continue;
      const d = obsDests[i]!;
      changed = true;
      const dk = destinationKey(d);
      const dObj = destinationObject(key, dk);
      put("dest-del", { kind: "dest-del", object: dObj, key: dk, service: want.service, destination: { address: d.address, port: d.port, family: d.family } });
      // Not in what we last applied either: someone added it behind our back.
      if (clean && findDest(own.state.destinations, d) < 0) drift.push({ object: dObj, found: `not desired (weight ${d.weight})` });
    }
    if (!changed && !own) adopted.push(key);
  }

  // Owned services that are no longer desired: destinations first, then the service.
  for (const key of owned.services.keys()) {
    if (wantKeys.has(key)) continue;
    const obs = obsByKey.get(key);
    if (!obs) continue; // already gone (someone else removed it): nothing to do, forget it
    for (const d of obs.destinations) {
      const dk = destinationKey(d);
      put("dest-del", { kind: "dest-del", object: destinationObject(key, dk), key: dk, service: obs.service, destination: { address: d.address, port: d.port, family: d.family } });
    }
    put("service-del", { kind: "service-del", object: serviceObject(key), key, service: keyOnly(obs.service) });
    if (obs.service.fwmark) fwmarksBeingDeleted.add(obs.service.fwmark);
  }
  for (const [key, obs] of obsByKey) {
    if (wantKeys.has(key) || owned.services.has(key)) continue;
    foreign.push({ object: serviceObject(key), note: `not created by lvsfleet (${obs.destinations.length} destinations); left alone` });
  }

  // ---- fwmark table --------------------------------------------------------------------------
  const fw = observed.fwmark;
  if (desired.fwmarkRules.length > 0) {
    const same = fw != null && fw.problems.length === 0 && fwmarkEqual(fw.rules, desired.fwmarkRules);
    if (!same) {
      const wantMarks = new Set(desired.fwmarkRules.map((r) => r.mark));
      // Marks of fwmark services still being removed stay until those services are gone.
      const keep = (fw?.rules ?? []).filter((r) => !wantMarks.has(r.mark) && fwmarksBeingDeleted.has(r.mark));
      if (keep.length > 0) {
        put("fwmark-early", { kind: "fwmark-apply", object: FWMARK_OBJECT, rules: [...desired.fwmarkRules, ...keep], interim: true });
        put("fwmark-late", { kind: "fwmark-apply", object: FWMARK_OBJECT, rules: desired.fwmarkRules });
      } else {
        put("fwmark-early", { kind: "fwmark-apply", object: FWMARK_OBJECT, rules: desired.fwmarkRules });
      }
      if (owned.fwmark && fwmarkEqual(owned.fwmark, desired.fwmarkRules) && fw !== undefined) {
        drift.push({ object: FWMARK_OBJECT, found: fw === null ? "missing" : fw.problems.length > 0 ? fw.problems.join("; ") : "rules differ" });
      }
    }
  } else if (fw) {
    // lvsfleet's table (ours by name) with nothing left to mark.
    put("fwmark-late", { kind: "fwmark-clear", object: FWMARK_OBJECT });
  }

  // ---- addresses -----------------------------------------------------------------------------
  const obsAddr = new Map<string, ObservedAddress>();
  for (const a of observed.addresses) {
    const c = canonicalIp(a.address);
    obsAddr.set(addressKey({ ifname: a.ifname, address: c }), c === a.address ? a : { ...a, address: c });
  }
  const wantAddr = new Set<string>();
  for (const v of desired.addresses) {
    const k = addressKey(v);
    wantAddr.add(k);
    const a = obsAddr.get(k);
    if (!a) {
      put("address-add", { kind: "address-add", object: addressObject(v), vip: v });
      if (owned.addresses.has(k)) drift.push({ object: addressObject(v), found: "missing" });
      continue;
    }
    if (a.prefixLen === v.prefixLen) {
      if (!a.owned) foreign.push({ object: addressObject(a), note: "desired, but not created by lvsfleet: kept as it is and never removed" });
      continue;
    }
    if (a.owned) {
      // Same address, other prefix: the kernel keys it by address, so it must go before it comes back.
      put("address-add", { kind: "address-del", object: addressObject(a), vip: { ifname: a.ifname, address: a.address, prefixLen: a.prefixLen } });
      put("address-add", { kind: "address-add", object: addressObject(v), vip: v });
    } else {
      foreign.push({ object: addressObject(a), note: `not created by lvsfleet; wanted /${v.prefixLen}, left alone` });
    }
  }
  for (const [k, a] of obsAddr) {
    if (wantAddr.has(k)) continue;
    if (a.owned) put("address-del", { kind: "address-del", object: addressObject(a), vip: { ifname: a.ifname, address: a.address, prefixLen: a.prefixLen } });
  }

  const ops: Op[] = [];
  for (const p of PHASES) ops.push(...phase.get(p)!);
  const plan: Plan = { ops, drift, foreign, adopted };
  if (unread) plan.unread = unread;
  return plan;
}

const EMPTY = new Uint8Array(0);
const EMPTY_SET: ReadonlySet<string> = new Set();

/** Index of the destination with d's address and port (canonical text on both sides), or -1. */
function findDest(list: DestinationSpec[], d: { address: string; port: number }): number {
  for (let i = 0; i < list.length; i++) if (list[i]!.port === d.port && list[i]!.address === d.address) return i;
  return -1;
}

function keyOnly(s: ServiceState["service"]): ServiceKey {
  return s.fwmark ? { family: s.family, fwmark: s.fwmark } : { family: s.family, protocol: s.protocol, address: s.address, port: s.port };
}
