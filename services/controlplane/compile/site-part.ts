// A host's desired state travels in two parts (desired_state.proto): the host part under
// `<site>.<host>` and the site part — what is the same for every host of the site, today the IPVS
// timeouts of every Director — once under `<site>._site`. A site-wide change is then one KV put and
// one small message to each agent, instead of a compile, a row and a put per host (with 1 000
// Directors, two timeout changes a second kept the relay a few seconds behind: docs/benchmarks.md).
//
//   compileSite(topo)  = whole states (what a host must realise; what KernelBackend applies)
//   hostPart(whole)    = whole without director.timeouts            → key <site>.<host>
//   compileSitePart()  = the site's timeouts                         → key <site>._site
//   join(host, site)   = whole again (agents/hostagent/sync/combine.ts; site-part.test.ts checks
//                        join(hostPart(x), compileSitePart(t)) == x for random topologies)
//
// Pure: no I/O.
import { create, toBinary } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import {
  HostDesiredStateSchema,
  SiteDesiredStateSchema,
  type HostDesiredState,
  type SiteDesiredState,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { IpvsTimeoutsSchema } from "../../../gen/lvsfleet/v1/types_pb.js";
import { hashDesiredState, type SiteTopology } from "./compile.js";
import { siteId } from "./names.js";

/**
 * The "host id" of the site part: its desired_states row and its KV key `<site>._site`. Host ids
 * start with a letter (domain/names.ts), so it is never a host's.
 */
export const SITE_PART = "_site";

/** The site part of every host's state in `topo` (unstamped; hash set). */
export function compileSitePart(topo: Pick<SiteTopology, "site">): SiteDesiredState {
  const t = topo.site.ipvsTimeouts;
  const part = create(SiteDesiredStateSchema, {
    site: siteId(topo.site.name),
    // Always set, zeros included: compile gives every Director a timeouts message.
    timeouts: create(IpvsTimeoutsSchema, { tcpSeconds: t?.tcpSeconds ?? 0, tcpFinSeconds: t?.tcpFinSeconds ?? 0, udpSeconds: t?.udpSeconds ?? 0 }),
  });
  part.hash = hashSitePart(part);
  return part;
}

/** The site part of a site that no longer exists: no timeouts (its hosts get empty host parts). */
export function emptySitePart(site: string): SiteDesiredState {
  const part = create(SiteDesiredStateSchema, { site });
  part.hash = hashSitePart(part);
  return part;
}

/** Hex SHA-256 of the site part without revision, hash and host_revisions (what it makes the kernel do). */
export function hashSitePart(p: SiteDesiredState): string {
  const bare = create(SiteDesiredStateSchema, { site: p.site, timeouts: p.timeouts });
  return createHash("sha256").update(toBinary(SiteDesiredStateSchema, bare)).digest("hex");
}

/**
 * The host part of a whole state: the same message without `director.timeouts` (those come from
 * the site part), its hash recomputed. Shallow copies (protobuf-es v2 messages are plain objects):
 * the relay runs this for every host it compiles, and only the top level and the DirectorState
 * differ; the nested messages are shared with `whole`, which must not be changed afterwards.
 */
export function hostPart(whole: HostDesiredState): HostDesiredState {
  // Unstamped, so hashDesiredState hashes it as is (a stamped message it would deep-copy first).
  const part: HostDesiredState = { ...whole, revision: 0n, hash: "", siteRevision: 0n };
  if (whole.director) part.director = { ...whole.director, timeouts: undefined };
  part.hash = hashDesiredState(part);
  part.revision = whole.revision;
  part.siteRevision = whole.siteRevision;
  return part;
}
