/** Host handlers: plain functions over the injected store (https://google.aip.dev/131..135). */
import { create } from "@bufbuild/protobuf";
import { HostSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  CreateHostResponseSchema,
  DeleteHostResponseSchema,
  GetHostResponseSchema,
  ListHostsResponseSchema,
  UpdateHostResponseSchema,
  type CreateHostRequest,
  type CreateHostResponse,
  type DeleteHostRequest,
  type DeleteHostResponse,
  type GetHostRequest,
  type GetHostResponse,
  type ListHostsRequest,
  type ListHostsResponse,
  type UpdateHostRequest,
  type UpdateHostResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { throwIfInvalid } from "../domain/errors.js";
import { parseHostName, parseSiteName, validateId } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { getBytes, listBytes } from "./encoded.js";
import { withEncoding } from "../../../lib/grpc/encoded.js";
import { required, siteParent } from "./fields.js";

export async function createHost(store: TopologyStore, req: CreateHostRequest, ctx: RequestContext): Promise<CreateHostResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  throwIfInvalid(validateId(req.hostId, "host_id"));
  const w = await store.hosts.create(writeMeta(ctx, "CreateHost"), site, req.hostId, req.host ?? create(HostSchema), {
    validateOnly: req.validateOnly,
  });
  return create(CreateHostResponseSchema, { host: w.resource, revision: w.revision });
}

export async function getHost(store: TopologyStore, req: GetHostRequest): Promise<GetHostResponse> {
  const n = parseHostName(req.name, "name");
  const r = await store.reads.host(n.site, n.host);
  return withEncoding(create(GetHostResponseSchema, { host: r.resource, revision: r.revision }), getBytes(r));
}

export async function listHosts(store: TopologyStore, req: ListHostsRequest): Promise<ListHostsResponse> {
  const site = siteParent(req.parent);
  const p = await store.reads.hosts(site, { pageSize: req.pageSize, pageToken: req.pageToken });
  return withEncoding(create(ListHostsResponseSchema, { hosts: p.items, nextPageToken: p.nextPageToken, revision: p.revision }), listBytes(p));
}

export async function updateHost(store: TopologyStore, req: UpdateHostRequest, ctx: RequestContext): Promise<UpdateHostResponse> {
  const patch = required(req.host, "host");
  const n = parseHostName(patch.name, "host.name");
  const w = await store.hosts.update(writeMeta(ctx, "UpdateHost"), n.site, n.host, patch, {
    paths: req.updateMask?.paths ?? [],
    validateOnly: req.validateOnly,
  });
  return create(UpdateHostResponseSchema, { host: w.resource, revision: w.revision });
}

export async function deleteHost(store: TopologyStore, req: DeleteHostRequest, ctx: RequestContext): Promise<DeleteHostResponse> {
  const n = parseHostName(req.name, "name");
  const d = await store.hosts.delete(writeMeta(ctx, "DeleteHost"), n.site, n.host, { etag: req.etag, force: req.force });
  return create(DeleteHostResponseSchema, { revision: d.revision });
}
