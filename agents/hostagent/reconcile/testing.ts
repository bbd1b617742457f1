// Test support (pure): an in-memory kernel model that executes Ops with the kernel's errors (EEXIST,
// ESRCH, ENOENT, EADDRNOTAVAIL), so a wrong order or a non-minimal plan shows up as an error; and a
// checker for the ordering rules of reconcile.ts. Used by the unit and property tests and the bench.
import { addressKey, destinationKey, fouKey, serviceKey } from "./keys.js";
import type { DestinationSpec, FwmarkRule, ObservedAddress, ObservedFouPort, ObservedHost, ObservedLink, Op, ServiceSpec, ServiceState, Timeouts } from "./types.js";

export class ModelError extends Error {
  constructor(readonly code: string, readonly op: Op) {
    super(`${code}: ${op.kind} ${op.object}`);
  }
}

export class KernelModel {
  services = new Map<string, { service: ServiceSpec; destinations: Map<string, DestinationSpec> }>();
  addresses = new Map<string, ObservedAddress>();
  links = new Map<string, ObservedLink>();
  sysctls = new Map<string, string>();
  fwmark: { rules: FwmarkRule[]; problems: string[] } | null = null;
  timeouts: Timeouts = { tcp: 900, tcpFin: 120, udp: 300 };
  /** fou ports by fouKey (FOU_CMD_ADD of an existing (port, family) fails, as in the kernel). */
  fou = new Map<string, ObservedFouPort>();
  /** Every op executed, in order. */
  readonly log: Op[] = [];

  /** Puts a service in as someone else would (ipvsadm). */
  addService(s: ServiceState): void {
    this.services.set(serviceKey(s.service), { service: { ...s.service }, destinations: new Map(s.destinations.map((d) => [destinationKey(d), { ...d }])) });
  }

  observe(): ObservedHost {
    const services: ServiceState[] = [...this.services.values()].map((s) => ({ service: { ...s.service }, destinations: [...s.destinations.values()].map((d) => ({ ...d })) }));
    return {
      ipvs: { services, timeouts: { ...this.timeouts } },
      addresses: [...this.addresses.values()].map((a) => ({ ...a })),
      links: [...this.links.values()].map((l) => ({ ...l })),
      fwmark: this.fwmark && structuredClone(this.fwmark),
      sysctls: new Map(this.sysctls),
      fouPorts: [...this.fou.values()].map((p) => ({ ...p })),
    };
  }

  /** Executes one op; throws ModelError like the kernel would. */
  exec(op: Op): void {
    this.log.push(op);
    const fail = (code: string): never => {
      throw new ModelError(code, op);
    };
    switch (op.kind) {
      case "link-up": {
        const l = this.links.get(op.tunnel.name);
        if (l) l.up = true;
        else this.links.set(op.tunnel.name, { name: op.tunnel.name, kind: op.tunnel.type, up: true });
        return;
      }
      case "link-down": {
        const l = this.links.get(op.name) ?? fail("ENODEV");
        l.up = false;
        return;
      }
      case "sysctl-set":
        this.sysctls.set(op.key, op.value);
        return;
      case "fwmark-apply":
        this.fwmark = { rules: structuredClone(op.rules), problems: [] };
        return;
      case "fwmark-clear":
        this.fwmark = null;
        return;
      case "ipvs-timeouts":
        for (const k of ["tcp", "tcpFin", "udp"] as const) if (op.timeouts[k] !== 0) this.timeouts[k] = op.timeouts[k];
        return;
      case "service-add":
        if (this.services.has(op.key)) fail("EEXIST");
        this.services.set(op.key, { service: { ...op.service, flags: op.service.flags | 0x2 }, destinations: new Map() });
        return;
      case "service-edit": {
        const s = this.services.get(op.key) ?? fail("ESRCH");
        s.service = { ...op.service, flags: op.service.flags | 0x2 };
        return;
      }
      case "service-del":
        if (!this.services.delete(op.key)) fail("ESRCH");
        return;
      case "dest-add": {
        const s = this.services.get(serviceKey(op.service)) ?? fail("ESRCH");
        if (s.destinations.has(op.key)) fail("EEXIST");
        s.destinations.set(op.key, { ...op.destination });
        return;
      }
      case "dest-edit": {
        const s = this.services.get(serviceKey(op.service)) ?? fail("ESRCH");
        if (!s.destinations.has(op.key)) fail("ENOENT");
        s.destinations.set(op.key, { ...op.destination });
        return;
      }
      case "dest-del": {
        const s = this.services.get(serviceKey(op.service)) ?? fail("ESRCH");
        if (!s.destinations.delete(op.key)) fail("ENOENT");
        return;
      }
      case "address-add": {
        const k = addressKey(op.vip);
        if (this.addresses.has(k)) fail("EEXIST");
        this.addresses.set(k, { ...op.vip, owned: true });
        return;
      }
      case "address-del": {
        const k = addressKey(op.vip);
        const a = this.addresses.get(k);
        if (!a || a.prefixLen !== op.vip.prefixLen) fail("EADDRNOTAVAIL");
        this.addresses.delete(k);
        return;
      }
      case "fou-add": {
        const k = fouKey(op.port);
        if (this.fou.has(k)) fail("EEXIST");
        this.fou.set(k, { ...op.port, encap: "gue" });
        return;
      }
      case "fou-del":
        if (!this.fou.delete(fouKey(op.port))) fail("ENOENT");
        return;
    }
  }

  /** Executes every op, collecting the failed ones (the backend does the same: per-object errors). */
  run(ops: Op[]): { failed: Set<Op>; errors: ModelError[] } {
    const failed = new Set<Op>();
    const errors: ModelError[] = [];
    for (const op of ops) {
      try {
        this.exec(op);
      } catch (e) {
        if (!(e instanceof ModelError)) throw e;
        failed.add(op);
        errors.push(e);
      }
    }
    return { failed, errors };
  }
}

/** The ordering rules of reconcile.ts, checked on any op list; returns the violations. */
export function orderingViolations(ops: Op[]): string[] {
  const out: string[] = [];
  const svcOf = (o: Op): string | undefined =>
    o.kind === "service-add" || o.kind === "service-edit" || o.kind === "service-del" ? o.key : o.kind === "dest-add" || o.kind === "dest-edit" || o.kind === "dest-del" ? serviceKey(o.service) : undefined;
  ops.forEach((o, i) => {
    const s = svcOf(o);
    if (o.kind === "dest-add" || o.kind === "dest-edit") {
      const add = ops.findIndex((x) => x.kind === "service-add" && x.key === s);
      if (add > i) out.push(`${o.object}: ${o.kind} at ${i} before its service-add at ${add}`);
      const del = ops.findIndex((x, j) => j < i && x.kind === "dest-del" && svcOf(x) === s);
      if (del >= 0) out.push(`${o.object}: ${o.kind} at ${i} after a dest-del of the same service at ${del} (break before make)`);
    }
    if (o.kind === "service-del") {
      const later = ops.findIndex((x, j) => j > i && x.kind === "dest-del" && svcOf(x) === s);
      if (later >= 0) out.push(`${o.object}: service-del at ${i} before its dest-del at ${later}`);
    }
    if (o.kind === "address-add") {
      const after = ops.findIndex((x, j) => j > i && (x.kind === "service-add" || x.kind === "service-edit" || x.kind === "dest-add" || x.kind === "dest-edit" || (x.kind === "sysctl-set" && !x.restore) || x.kind === "link-up"));
      if (after >= 0) out.push(`${o.object}: address-add at ${i} before ${ops[after]!.kind} ${ops[after]!.object} at ${after}`);
    }
    if (o.kind === "address-del" && !ops.slice(i + 1).some((x) => x.kind === "address-add" && addressKey(x.vip) === addressKey(o.vip))) {
      const after = ops.findIndex((x, j) => j > i && x.kind === "service-del");
      if (after >= 0) out.push(`${o.object}: address-del at ${i} before service-del ${ops[after]!.object} at ${after}`);
    }
    if (o.kind === "sysctl-set" && !o.restore) {
      const before = ops.findIndex((x, j) => j < i && (x.kind === "service-add" || x.kind === "address-add"));
      if (before >= 0) out.push(`${o.object}: sysctl-set at ${i} after ${ops[before]!.kind} at ${before}`);
    }
    if (o.kind === "sysctl-set" && o.restore) {
      const after = ops.findIndex((x, j) => j > i && (x.kind === "service-del" || x.kind === "address-del" || x.kind === "dest-del"));
      if (after >= 0) out.push(`${o.object}: sysctl restore at ${i} before ${ops[after]!.kind} at ${after}`);
    }
    if (o.kind === "service-add" && o.service.fwmark) {
      const fw = ops.findIndex((x, j) => j > i && x.kind === "fwmark-apply" && x.rules.some((r) => r.mark === o.service.fwmark) && !ops.slice(0, i).some((y) => y.kind === "fwmark-apply"));
      if (fw >= 0) out.push(`${o.object}: fwmark service added at ${i} before the table at ${fw}`);
    }
    if (o.kind === "service-del" && o.service.fwmark) {
      const fw = ops.findIndex((x, j) => j < i && ((x.kind === "fwmark-apply" && !x.rules.some((r) => r.mark === o.service.fwmark)) || x.kind === "fwmark-clear"));
      if (fw >= 0) out.push(`${o.object}: fwmark ${o.service.fwmark} left the table at ${fw} before its service went at ${i}`);
    }
    if (o.kind === "link-up") {
      const before = ops.findIndex(
        (x, j) => j < i && ((x.kind === "address-add" && x.vip.ifname === o.tunnel.name) || (x.kind === "sysctl-set" && x.key.split(".").includes(o.tunnel.name.replaceAll(".", "/")))),
      );
      if (before >= 0) out.push(`${o.object}: link-up at ${i} after ${ops[before]!.object} at ${before} that needs it`);
    }
    // fou ports: a port is in before any VIP is added (the VIP attracts GUE packets only the port can
    // decapsulate), and goes only after the VIPs that went (a repair — del then add — is one step).
    if (o.kind === "fou-add") {
      const before = ops.findIndex((x, j) => j < i && x.kind === "address-add");
      if (before >= 0) out.push(`${o.object}: fou-add at ${i} after address-add ${ops[before]!.object} at ${before}`);
    }
    if (o.kind === "fou-del" && !ops.slice(i + 1).some((x) => x.kind === "fou-add" && fouKey(x.port) === fouKey(o.port))) {
      const after = ops.findIndex((x, j) => j > i && x.kind === "address-del");
      if (after >= 0) out.push(`${o.object}: fou-del at ${i} before address-del ${ops[after]!.object} at ${after}`);
    }
    if (o.kind === "link-down") {
      const after = ops.findIndex((x, j) => j > i && x.kind === "address-del" && x.vip.ifname === o.name);
      if (after >= 0) out.push(`${o.object}: link-down at ${i} before its address goes at ${after}`);
    }
  });
  return out;
}
