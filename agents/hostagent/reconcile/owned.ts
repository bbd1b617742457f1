// The OwnedSet after a plan ran, and its persisted form — pure (the backend reads and writes the file).
//
// IPVS has no owner field, so what lvsfleet manages must be remembered: a service is recorded when
// lvsfleet created, edited or adopted it, and forgotten once it deleted it (or found it gone). Ops
// that failed leave the previous record (a failed delete stays owned, so the next apply retries it)
// and mark the service unclean: after a partial failure, differences are not "drift".
import { addressKey, fouKey, serviceKey } from "./keys.js";
import { emptyOwned } from "./reconcile.js";
import type { DesiredHost, Op, OwnedService, OwnedSet, Plan, ServiceState, Timeouts, FwmarkRule } from "./types.js";

export interface OwnedUpdate {
  owned: OwnedSet;
  /** false when nothing worth persisting changed. */
  changed: boolean;
}

/** `failed`: the ops of `plan` that did not succeed (by identity). */
export function nextOwned(prev: OwnedSet, desired: DesiredHost, plan: Plan, failed: ReadonlySet<Op> = new Set()): OwnedUpdate {
  let changed = false;
  const services = new Map(prev.services);
  const opsBySvc = new Map<string, Op[]>();
  for (const op of plan.ops) {
    if (op.kind === "service-add" || op.kind === "service-edit" || op.kind === "service-del") push(opsBySvc, op.key, op);
    else if (op.kind === "dest-add" || op.kind === "dest-edit" || op.kind === "dest-del") push(opsBySvc, serviceKey(op.service), op);
  }
  let stillOwned = 0; // desired keys found in prev: when all of prev is desired, nothing was dropped
  for (const want of desired.services) {
    const key = serviceKey(want.service);
    const ops = opsBySvc.get(key);
    const own = prev.services.get(key);
    if (own) stillOwned++;
    // The no-change resync's case (every service): the record is already this one.
    if (!ops && own?.clean && own.state === want) continue;
    if (!ops && own && own.clean && sameState(own.state, want)) {
      services.set(key, { state: want, clean: true }); // same content, the current object (the next resync takes the line above)
      continue;
    }
    const bad = ops !== undefined && ops.some((o) => failed.has(o));
    const addFailed = ops !== undefined && ops.some((o) => o.kind === "service-add" && failed.has(o));
    if (addFailed && !own) continue; // never existed: nothing to remember
    const next: OwnedService = { state: want, clean: !bad };
    if (!own || own.clean !== next.clean || ops !== undefined || !sameState(own.state, want)) changed = true;
    services.set(key, next);
  }
  const wanted = stillOwned === prev.services.size ? undefined : new Set(desired.services.map((w) => serviceKey(w.service)));
  for (const key of wanted ? prev.services.keys() : []) {
    if (wanted!.has(key)) continue;
    const del = (opsBySvc.get(key) ?? []).find((o) => o.kind === "service-del");
    if (del && failed.has(del)) continue; // retried next time
    services.delete(key);
    changed = true;
  }

  const sysctls = new Map(prev.sysctls);
  const setOps = new Map<string, Extract<Op, { kind: "sysctl-set" }>>();
  for (const op of plan.ops) if (op.kind === "sysctl-set") setOps.set(op.key, op);
  const wantSys = new Set<string>();
  for (const s of desired.sysctls) {
    wantSys.add(s.key);
    const op = setOps.get(s.key);
    const own = prev.sysctls.get(s.key);
    if (op) {
      if (failed.has(op)) continue;
      const rec: { value: string; was?: string } = { value: s.value };
      const was = own?.was ?? op.was;
      if (was !== undefined) rec.was = was;
      sysctls.set(s.key, rec);
      changed = true;
    } else if (!own || own.value !== s.value) {
      // Found as desired: adopted; there is nothing lvsfleet would have to put back.
      sysctls.set(s.key, { value: s.value, was: own?.was ?? s.value });
      changed = true;
    }
  }
  for (const key of prev.sysctls.keys()) {
    if (wantSys.has(key)) continue;
    const op = setOps.get(key);
    if (op && failed.has(op)) continue;
    sysctls.delete(key);
    changed = true;
  }

  const links = new Set(prev.links);
  const wantLinks = new Set(desired.tunnels.map((t) => t.name));
  for (const op of plan.ops) {
    if (op.kind === "link-up" && !failed.has(op)) {
      links.add(op.tunnel.name);
      changed = true;
    }
  }
  for (const name of prev.links) {
    if (wantLinks.has(name)) continue;
    const op = plan.ops.find((o) => o.kind === "link-down" && o.name === name);
    if (op && failed.has(op)) continue;
    links.delete(name);
    changed = true;
  }

  const fwOps = plan.ops.filter((o) => o.kind === "fwmark-apply" || o.kind === "fwmark-clear");
  let fwmark = prev.fwmark;
  if (!fwOps.some((o) => failed.has(o))) {
    const next = desired.fwmarkRules.length > 0 ? desired.fwmarkRules : undefined;
    if (JSON.stringify(next) !== JSON.stringify(fwmark)) changed = true;
    fwmark = next;
  }

  let timeouts = prev.timeouts;
  const tOp = plan.ops.find((o) => o.kind === "ipvs-timeouts");
  if (!(tOp && failed.has(tOp))) {
    if (JSON.stringify(desired.timeouts) !== JSON.stringify(timeouts)) changed = true;
    timeouts = desired.timeouts;
  }

  const addresses = new Set<string>();
  const failedAdds = new Set<string>();
  for (const op of plan.ops) if (op.kind === "address-add" && failed.has(op)) failedAdds.add(addressKey(op.vip));
  for (const v of desired.addresses) if (!failedAdds.has(addressKey(v))) addresses.add(addressKey(v));
  if (addresses.size !== prev.addresses.size || [...addresses].some((a) => !prev.addresses.has(a))) changed = true;

  // fou ports: what lvsfleet added is its own, what it deleted (or found gone) is forgotten. In op
  // order, so a repair (del, then add) ends owned. Unread (the read failed): the record stays.
  const prevFou = prev.fouPorts ?? new Set<string>();
  const fouPorts = new Set(prevFou);
  if (!plan.unread?.includes("fou")) {
    const wantFou = new Set((desired.fouPorts ?? []).map(fouKey));
    const delOps = new Set<string>();
    for (const op of plan.ops) {
      if (op.kind !== "fou-add" && op.kind !== "fou-del") continue;
      const k = fouKey(op.port);
      if (op.kind === "fou-del") delOps.add(k);
      if (failed.has(op)) continue;
      if (op.kind === "fou-add") fouPorts.add(k);
      else fouPorts.delete(k);
    }
    // Owned, not desired, and no delete planned: already gone from the kernel.
    for (const k of prevFou) if (!wantFou.has(k) && !delOps.has(k)) fouPorts.delete(k);
    if (fouPorts.size !== prevFou.size || [...fouPorts].some((k) => !prevFou.has(k))) changed = true;
  }

  const owned: OwnedSet = { services, sysctls, links, addresses, fouPorts };
  if (fwmark) owned.fwmark = fwmark;
  if (timeouts) owned.timeouts = timeouts;
  return { owned, changed };
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function sameState(a: ServiceState, b: ServiceState): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

// ---- persisted form ---------------------------------------------------------------------------

interface OwnedFileV1 {
  version: 1;
  services: Array<[string, boolean, ServiceState]>;
  sysctls: Array<[string, { value: string; was?: string }]>;
  links: string[];
  addresses: string[];
  fwmark?: FwmarkRule[];
  timeouts?: Timeouts;
  /** fou ports lvsfleet created (fouKey); absent in files written before fou was managed. */
  fouPorts?: string[];
}

export function serializeOwned(o: OwnedSet): string {
  const f: OwnedFileV1 = {
    version: 1,
    services: [...o.services].map(([k, s]) => [k, s.clean, s.state]),
    sysctls: [...o.sysctls],
    links: [...o.links],
    addresses: [...o.addresses],
  };
  if (o.fwmark) f.fwmark = o.fwmark;
  if (o.timeouts) f.timeouts = o.timeouts;
  if (o.fouPorts && o.fouPorts.size > 0) f.fouPorts = [...o.fouPorts];
  return JSON.stringify(f);
}

export class OwnedFileError extends Error {
  override name = "OwnedFileError";
}

export function parseOwned(text: string): OwnedSet {
  let f: OwnedFileV1;
  try {
    f = JSON.parse(text) as OwnedFileV1;
  } catch (e) {
    throw new OwnedFileError(`owned-set file is not JSON: ${(e as Error).message}`);
  }
  if (!f || f.version !== 1 || !Array.isArray(f.services) || !Array.isArray(f.sysctls) || !Array.isArray(f.links)) {
    throw new OwnedFileError("owned-set file has an unknown format");
  }
  const o = emptyOwned();
  for (const [k, clean, state] of f.services) o.services.set(k, { state, clean });
  for (const [k, v] of f.sysctls) o.sysctls.set(k, v);
  for (const l of f.links) o.links.add(l);
  for (const a of f.addresses ?? []) o.addresses.add(a);
  if (f.fwmark) o.fwmark = f.fwmark;
  if (f.timeouts) o.timeouts = f.timeouts;
  for (const k of Array.isArray(f.fouPorts) ? f.fouPorts : []) o.fouPorts!.add(k);
  return o;
}
