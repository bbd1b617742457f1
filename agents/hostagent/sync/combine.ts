// Joins the two parts of a host's desired state (proto/lvsfleet/v1/desired_state.proto):
//
//   <site>.<host>  host part  (revision h, site_revision = the site part current when it was published)
//   <site>._site   site part  (revision s, host_revisions[host] = this host part's revision then)
//
// They arrive on two watches, in any order. The join is the whole state of revision max(h, s) only
// when each part is at least as new as the other one says: site.revision ≥ host.site_revision and
// host.revision ≥ site.host_revisions[host]. Why that is exact: the relay publishes parts in
// compile transactions T1 < T2 < …; say the host part came from Ti and the site part from Tj. If
// i ≥ j, the host part names the site part current at Ti, and a site part from Tj ≤ Ti can be no
// newer than that — so the check leaves exactly the site part of Ti. If j > i, symmetrically with
// host_revisions. So a half-arrived change (the site part of a change that also changed this host's
// part, before that host part arrived) waits instead of being applied with a stale half.
// The relay stamps so that every publish raises max(h, s) for each host it concerns
// (services/controlplane/relay/README.md), which keeps the agent's "never older" rule working on
// the joined revision.
//
// A host part with site_revision 0 is a whole state on its own (published whole, e.g. by a test or
// a tool): it is used as is.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { HostDesiredState, SiteDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { IpvsTimeoutsSchema } from "../../../gen/lvsfleet/v1/types_pb.js";

/** Hash of a joined state: hex SHA-256 of "<host part hash>:<site part hash>" (the control plane computes the same). */
export function joinedHash(hostHash: string, siteHash: string): string {
  return createHash("sha256").update(`${hostHash}:${siteHash}`).digest("hex");
}

/** The whole state from its two parts, or undefined while one part is older than the other needs. */
export function joinDesiredState(host: HostDesiredState, site: SiteDesiredState | undefined): HostDesiredState | undefined {
  if (host.siteRevision === 0n) return host;
  if (!site || site.revision < host.siteRevision) return undefined;
  const want = site.hostRevisions[host.host];
  if (want !== undefined && host.revision < want) return undefined;
  // Shallow copies (protobuf-es v2 messages are plain objects): a Director's host part may hold
  // 10 000 services, and only the timeouts differ.
  const whole: HostDesiredState = {
    ...host,
    revision: host.revision > site.revision ? host.revision : site.revision,
    hash: joinedHash(host.hash, site.hash),
    siteRevision: 0n,
  };
  if (host.director) whole.director = { ...host.director, timeouts: site.timeouts ?? create(IpvsTimeoutsSchema) };
  return whole;
}

/** Keeps the newest of each part as they arrive; `offer*` return the joined state when there is one. */
export class DesiredStateJoin {
  private host: HostDesiredState | undefined;
  private site: SiteDesiredState | undefined;

  offerHost(h: HostDesiredState): HostDesiredState | undefined {
    if (this.host && h.revision <= this.host.revision) return undefined;
    this.host = h;
    return this.current();
  }

  offerSite(s: SiteDesiredState): HostDesiredState | undefined {
    if (this.site && s.revision <= this.site.revision) return undefined;
    this.site = s;
    return this.current();
  }

  current(): HostDesiredState | undefined {
    return this.host ? joinDesiredState(this.host, this.site) : undefined;
  }
}
