/** RealServer handlers: plain functions over the injected store (https://google.aip.dev/131..135). */
import { create } from "@bufbuild/protobuf";
import { RealServerSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  CreateRealServerResponseSchema,
  DeleteRealServerResponseSchema,
  GetRealServerResponseSchema,
  ListRealServersResponseSchema,
  UpdateRealServerResponseSchema,
  type CreateRealServerRequest,
  type CreateRealServerResponse,
  type DeleteRealServerRequest,
  type DeleteRealServerResponse,
  type GetRealServerRequest,
  type GetRealServerResponse,
  type ListRealServersRequest,
  type ListRealServersResponse,
  type UpdateRealServerRequest,
  type UpdateRealServerResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { throwIfInvalid } from "../domain/errors.js";
import { parseRealServerName, parseVirtualServiceName, validateId } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { getBytes, listBytes } from "./encoded.js";
import { withEncoding } from "../../../lib/grpc/encoded.js";
import { required, virtualServiceParent } from "./fields.js";

export async function createRealServer(store: TopologyStore, req: CreateRealServerRequest, ctx: RequestContext): Promise<CreateRealServerResponse> {
  const { site, virtualService } = parseVirtualServiceName(req.parent, "parent");
  throwIfInvalid(validateId(req.realServerId, "real_server_id"));
  const w = await store.realServers.create(writeMeta(ctx, "CreateRealServer"), site, virtualService, req.realServerId, req.realServer ?? create(RealServerSchema), {
    validateOnly: req.validateOnly,
  });
  return create(CreateRealServerResponseSchema, { realServer: w.resource, revision: w.revision });
}

export async function getRealServer(store: TopologyStore, req: GetRealServerRequest): Promise<GetRealServerResponse> {
  const n = parseRealServerName(req.name, "name");
  const r = await store.reads.realServer(n.site, n.virtualService, n.realServer);
  return withEncoding(create(GetRealServerResponseSchema, { realServer: r.resource, revision: r.revision }), getBytes(r));
}

export async function listRealServers(store: TopologyStore, req: ListRealServersRequest): Promise<ListRealServersResponse> {
  const { site, virtualService } = virtualServiceParent(req.parent);
  const p = await store.reads.realServers(site, virtualService, { pageSize: req.pageSize, pageToken: req.pageToken });
  return withEncoding(create(ListRealServersResponseSchema, { realServers: p.items, nextPageToken: p.nextPageToken, revision: p.revision }), listBytes(p));
}

export async function updateRealServer(store: TopologyStore, req: UpdateRealServerRequest, ctx: RequestContext): Promise<UpdateRealServerResponse> {
  const patch = required(req.realServer, "real_server");
  const n = parseRealServerName(patch.name, "real_server.name");
  const w = await store.realServers.update(writeMeta(ctx, "UpdateRealServer"), n.site, n.virtualService, n.realServer, patch, {
    paths: req.updateMask?.paths ?? [],
    validateOnly: req.validateOnly,
  });
  return create(UpdateRealServerResponseSchema, { realServer: w.resource, revision: w.revision });
}

export async function deleteRealServer(store: TopologyStore, req: DeleteRealServerRequest, ctx: RequestContext): Promise<DeleteRealServerResponse> {
  const n = parseRealServerName(req.name, "name");
  const d = await store.realServers.delete(writeMeta(ctx, "DeleteRealServer"), n.site, n.virtualService, n.realServer, { etag: req.etag });
  return create(DeleteRealServerResponseSchema, { revision: d.revision });
}
