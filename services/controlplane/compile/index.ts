export {
  affectedHosts,
  changedHosts,
  compileHosts,
  compileSite,
  compileSiteWithNotes,
  confKey,
  DIRECTOR_IPVS_SYSCTLS,
  hashDesiredState,
  LOOPBACK,
  TUNNEL_DEVICES,
  tunnelDevice,
  type CompileNote,
  type CompileResult,
  type SiteIndex,
  type SiteTopology,
} from "./compile.js";
export { desiredStateKey } from "./names.js";
export { affectedByChange, hostsReading, MutableTopology, resourceKind, type ResourceKind, type ResourceRef } from "./incremental.js";
export { compileSitePart, emptySitePart, hashSitePart, hostPart, SITE_PART } from "./site-part.js";
