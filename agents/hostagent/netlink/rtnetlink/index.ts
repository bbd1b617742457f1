// rtnetlink: links, addresses (VIPs) and routes over the netlink transport (../socket.ts).
export * from "./constants.js";
export * from "./codec.js";
export { RtnlLinkManager, IPIP_FALLBACK } from "./link.js";
export { RtnlAddressManager, vipLabel, type RtnlAddressOptions } from "./address.js";
export { RtnlRouteManager, type RtnlRouteOptions } from "./route.js";
export { dumpConsistent, type RtTransport } from "./transport.js";
