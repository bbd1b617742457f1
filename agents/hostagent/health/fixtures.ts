// Desired-state builders for the health tests.
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  HostDesiredStateSchema,
  IpvsDestinationSchema,
  IpvsServiceSchema,
  type HostDesiredState,
  type IpvsDestination,
  type IpvsService,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, FailureAction, ForwardMethod, HealthCheckSchema, Protocol, type HealthCheck } from "../../../gen/lvsfleet/v1/types_pb.js";

export function dest(address: string, port: number, weight = 1, realServer = `${address}:${port}`): IpvsDestination {
  return create(IpvsDestinationSchema, { realServer, addressFamily: AddressFamily.IPV4, address, port, forwardMethod: ForwardMethod.NAT, weight });
}

export function tcpCheck(o: { intervalMs?: number; timeoutMs?: number; rise?: number; fall?: number; port?: number } = {}): HealthCheck {
  return create(HealthCheckSchema, {
    kind: { case: "tcp", value: {} },
    interval: o.intervalMs ? durationFromMs(o.intervalMs) : undefined,
    timeout: o.timeoutMs ? durationFromMs(o.timeoutMs) : undefined,
    rise: o.rise ?? 0,
    fall: o.fall ?? 0,
    port: o.port ?? 0,
  });
}

export function service(
  vs: string,
  vipPort: number,
  destinations: IpvsDestination[],
  o: { check?: HealthCheck; action?: FailureAction; sorry?: IpvsDestination } = {},
): IpvsService {
  return create(IpvsServiceSchema, {
    virtualService: vs,
    addressFamily: AddressFamily.IPV4,
    protocol: Protocol.TCP,
    address: "192.0.2.10",
    port: vipPort,
    scheduler: "wlc",
    persistencePrefixLength: 32,
    destinations,
    healthCheck: o.check,
    failureAction: o.action ?? FailureAction.UNSPECIFIED,
    sorryServer: o.sorry,
  });
}

export function host(services: IpvsService[], revision = 1n): HostDesiredState {
  return create(HostDesiredStateSchema, {
    site: "s1",
    host: "d1",
    revision,
    hash: `hash-${revision}`,
    director: { services, addresses: [{ interface: "lo", address: "192.0.2.10", prefixLength: 32 }] },
  });
}
