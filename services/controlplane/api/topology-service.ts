/**
 * The TopologyService implementation: the handlers bound to one store, and the only place in api/
 * that knows what a gRPC call context looks like (metadata → RequestContext). The transport itself
 * (grpc-js, status mapping) lives in lib/grpc.
 */
import type { TopologyService } from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import type { CallContext, ServiceImpl } from "../../../lib/grpc/server.js";
import type { TopologyStore } from "../store/index.js";
import { listAuditEntries } from "./audit.js";
import { ANONYMOUS, REASON_METADATA_KEY, type RequestContext } from "./context.js";
import { createFirewallMark, deleteFirewallMark, getFirewallMark, listFirewallMarks, updateFirewallMark } from "./firewall-marks.js";
import { createHost, deleteHost, getHost, listHosts, updateHost } from "./hosts.js";
import { createRealServer, deleteRealServer, getRealServer, listRealServers, updateRealServer } from "./real-servers.js";
import { createSite, deleteSite, getSite, listSites, updateSite } from "./sites.js";
import { createVirtualService, deleteVirtualService, getVirtualService, listVirtualServices, updateVirtualService } from "./virtual-services.js";

/** Caller identity and audit reason from request metadata. Authentication will set the actor here. */
export function requestContext(call: Pick<CallContext, "metadata">): RequestContext {
  const reason = call.metadata[REASON_METADATA_KEY];
  return { actor: ANONYMOUS, reason: reason || undefined };
}

export function topologyService(store: TopologyStore): ServiceImpl<typeof TopologyService> {
  const rc = requestContext;
  return {
    createSite: (req, call) => createSite(store, req, rc(call)),
    getSite: (req) => getSite(store, req),
    listSites: (req) => listSites(store, req),
    updateSite: (req, call) => updateSite(store, req, rc(call)),
    deleteSite: (req, call) => deleteSite(store, req, rc(call)),
    createHost: (req, call) => createHost(store, req, rc(call)),
    getHost: (req) => getHost(store, req),
    listHosts: (req) => listHosts(store, req),
    updateHost: (req, call) => updateHost(store, req, rc(call)),
    deleteHost: (req, call) => deleteHost(store, req, rc(call)),
    createVirtualService: (req, call) => createVirtualService(store, req, rc(call)),
    getVirtualService: (req) => getVirtualService(store, req),
    listVirtualServices: (req) => listVirtualServices(store, req),
    updateVirtualService: (req, call) => updateVirtualService(store, req, rc(call)),
    deleteVirtualService: (req, call) => deleteVirtualService(store, req, rc(call)),
    createRealServer: (req, call) => createRealServer(store, req, rc(call)),
    getRealServer: (req) => getRealServer(store, req),
    listRealServers: (req) => listRealServers(store, req),
    updateRealServer: (req, call) => updateRealServer(store, req, rc(call)),
    deleteRealServer: (req, call) => deleteRealServer(store, req, rc(call)),
    createFirewallMark: (req, call) => createFirewallMark(store, req, rc(call)),
    getFirewallMark: (req) => getFirewallMark(store, req),
    listFirewallMarks: (req) => listFirewallMarks(store, req),
    updateFirewallMark: (req, call) => updateFirewallMark(store, req, rc(call)),
    deleteFirewallMark: (req, call) => deleteFirewallMark(store, req, rc(call)),
    listAuditEntries: (req) => listAuditEntries(store, req),
  };
}
