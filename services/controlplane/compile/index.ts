export {
  affectedHosts,
  changedHosts,
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
  type SiteTopology,
} from "./compile.js";
export { desiredStateKey } from "./names.js";
