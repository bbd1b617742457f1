// A check spec with the proto defaults applied, its probe, and the canonical key that makes one
// check per (real server address:port, spec) shared by every service using it.
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { IpvsDestination, IpvsService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { HealthCheck } from "../../../gen/lvsfleet/v1/types_pb.js";
import { dnsProbe } from "./dns.js";
import { execProbe } from "./exec.js";
import { httpProbe } from "./http.js";
import { tcpProbe } from "./tcp.js";
import type { Probe, Target } from "./types.js";

/** Defaults from types.proto: interval 5s, timeout 3s, rise 2, fall 3. */
export const DEFAULTS = { intervalMs: 5000, timeoutMs: 3000, rise: 2, fall: 3 } as const;

export interface EffectiveCheck {
  key: string;
  target: Target;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  spec: HealthCheck;
}

function ms(d: Duration | undefined, dflt: number): number {
  if (!d) return dflt;
  const v = Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
  return v > 0 ? v : dflt;
}

/** IPv6 in one spelling so "2001:DB8::1" and "2001:db8::1" share a check. */
function canonicalAddress(a: string): string {
  return a.toLowerCase();
}

interface SpecPart {
  /** JSON of the kind's fields and the effective timing: the spec half of the key. */
  part: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

// Computed once per HealthCheck message (a desired state has one per service, shared by its
// destinations): 100,000 destinations cost one string concatenation each, not a JSON.stringify.
const specParts = new WeakMap<HealthCheck, SpecPart>();

function specPart(hc: HealthCheck): SpecPart {
  const cached = specParts.get(hc);
  if (cached) return cached;
  const intervalMs = ms(hc.interval, DEFAULTS.intervalMs);
  // A timeout longer than the interval would overlap checks: clamp it.
  const timeoutMs = Math.min(ms(hc.timeout, DEFAULTS.timeoutMs), intervalMs);
  const rise = hc.rise > 0 ? hc.rise : DEFAULTS.rise;
  const fall = hc.fall > 0 ? hc.fall : DEFAULTS.fall;
  const kind = hc.kind;
  let what: unknown;
  switch (kind.case) {
    case "tcp":
      what = ["tcp"];
      break;
    case "http": {
      const h = kind.value;
      what = ["http", h.path, h.expectedStatus, h.bodyRegex, h.hostHeader, h.tls, h.tlsSkipVerify];
      break;
    }
    case "dns":
      what = ["dns", kind.value.queryName, kind.value.queryType.toUpperCase() || "A"];
      break;
    case "exec":
      what = ["exec", kind.value.argv];
      break;
  }
  const sp = { part: JSON.stringify([what, intervalMs, timeoutMs, rise, fall]), intervalMs, timeoutMs, rise, fall };
  specParts.set(hc, sp);
  return sp;
}

/** The check that guards `dst` in `svc`, or undefined when the service has none (or it cannot run). */
export function effectiveCheck(svc: IpvsService, dst: IpvsDestination): EffectiveCheck | undefined {
  const hc = svc.healthCheck;
  if (!hc || hc.kind.case === undefined) return undefined;
  const port = hc.port !== 0 ? hc.port : dst.port;
  // A port-0 destination (fwmark / all-ports service) has no port to probe: only exec can check it.
  if (port === 0 && hc.kind.case !== "exec") return undefined;
  const sp = specPart(hc);
  const target = { address: canonicalAddress(dst.address), port };
  // Address and port never contain a space; the spec part is JSON.
  const key = `${target.address} ${port} ${sp.part}`;
  return { key, target, intervalMs: sp.intervalMs, timeoutMs: sp.timeoutMs, rise: sp.rise, fall: sp.fall, spec: hc };
}

export function probeFor(hc: HealthCheck): Probe {
  const kind = hc.kind;
  switch (kind.case) {
    case "tcp":
      return tcpProbe;
    case "http":
      return httpProbe(kind.value);
    case "dns":
      return dnsProbe(kind.value);
    case "exec":
      return execProbe(kind.value);
    default:
      return async () => ({ ok: false, detail: "no check kind" });
  }
}
