/** VirtualService handlers: plain functions over the injected store (https://google.aip.dev/131..135). */
import { create } from "@bufbuild/protobuf";
import { VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  CreateVirtualServiceResponseSchema,
  DeleteVirtualServiceResponseSchema,
  GetVirtualServiceResponseSchema,
  ListVirtualServicesResponseSchema,
  UpdateVirtualServiceResponseSchema,
  type CreateVirtualServiceRequest,
  type CreateVirtualServiceResponse,
  type DeleteVirtualServiceRequest,
  type DeleteVirtualServiceResponse,
  type GetVirtualServiceRequest,
  type GetVirtualServiceResponse,
  type ListVirtualServicesRequest,
  type ListVirtualServicesResponse,
  type UpdateVirtualServiceRequest,
  type UpdateVirtualServiceResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { throwIfInvalid } from "../domain/errors.js";
import { parseVirtualServiceName, parseSiteName, validateId } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { getBytes, listBytes } from "./encoded.js";
import { withEncoding } from "../../../lib/grpc/encoded.js";
import { required, siteParent } from "./fields.js";

export async function createVirtualService(store: TopologyStore, req: CreateVirtualServiceRequest, ctx: RequestContext): Promise<CreateVirtualServiceResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  throwIfInvalid(validateId(req.virtualServiceId, "virtual_service_id"));
  const w = await store.virtualServices.create(writeMeta(ctx, "CreateVirtualService"), site, req.virtualServiceId, req.virtualService ?? create(VirtualServiceSchema), {
    validateOnly: req.validateOnly,
  });
  return create(CreateVirtualServiceResponseSchema, { virtualService: w.resource, revision: w.revision });
}

export async function getVirtualService(store: TopologyStore, req: GetVirtualServiceRequest): Promise<GetVirtualServiceResponse> {
  const n = parseVirtualServiceName(req.name, "name");
  const r = await store.reads.virtualService(n.site, n.virtualService);
  return withEncoding(create(GetVirtualServiceResponseSchema, { virtualService: r.resource, revision: r.revision }), getBytes(r));
}

export async function listVirtualServices(store: TopologyStore, req: ListVirtualServicesRequest): Promise<ListVirtualServicesResponse> {
  const site = siteParent(req.parent);
  const p = await store.reads.virtualServices(site, { pageSize: req.pageSize, pageToken: req.pageToken });
  return withEncoding(create(ListVirtualServicesResponseSchema, { virtualServices: p.items, nextPageToken: p.nextPageToken, revision: p.revision }), listBytes(p));
}

export async function updateVirtualService(store: TopologyStore, req: UpdateVirtualServiceRequest, ctx: RequestContext): Promise<UpdateVirtualServiceResponse> {
  const patch = required(req.virtualService, "virtual_service");
  const n = parseVirtualServiceName(patch.name, "virtual_service.name");
  const w = await store.virtualServices.update(writeMeta(ctx, "UpdateVirtualService"), n.site, n.virtualService, patch, {
    paths: req.updateMask?.paths ?? [],
    validateOnly: req.validateOnly,
  });
  return create(UpdateVirtualServiceResponseSchema, { virtualService: w.resource, revision: w.revision });
}

export async function deleteVirtualService(store: TopologyStore, req: DeleteVirtualServiceRequest, ctx: RequestContext): Promise<DeleteVirtualServiceResponse> {
  const n = parseVirtualServiceName(req.name, "name");
  const d = await store.virtualServices.delete(writeMeta(ctx, "DeleteVirtualService"), n.site, n.virtualService, { etag: req.etag, force: req.force });
  return create(DeleteVirtualServiceResponseSchema, { revision: d.revision });
}
