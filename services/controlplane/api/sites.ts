/** Site handlers: plain functions over the injected store (https://google.aip.dev/131..135). */
import { create } from "@bufbuild/protobuf";
import { SiteSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  CreateSiteResponseSchema,
  DeleteSiteResponseSchema,
  GetSiteResponseSchema,
  ListSitesResponseSchema,
  UpdateSiteResponseSchema,
  type CreateSiteRequest,
  type CreateSiteResponse,
  type DeleteSiteRequest,
  type DeleteSiteResponse,
  type GetSiteRequest,
  type GetSiteResponse,
  type ListSitesRequest,
  type ListSitesResponse,
  type UpdateSiteRequest,
  type UpdateSiteResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { throwIfInvalid } from "../domain/errors.js";
import { parseSiteName, validateId } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { getBytes, listBytes } from "./encoded.js";
import { withEncoding } from "../../../lib/grpc/encoded.js";
import { required } from "./fields.js";

export async function createSite(store: TopologyStore, req: CreateSiteRequest, ctx: RequestContext): Promise<CreateSiteResponse> {
  throwIfInvalid(validateId(req.siteId, "site_id"));
  const w = await store.sites.create(writeMeta(ctx, "CreateSite"), req.siteId, req.site ?? create(SiteSchema), { validateOnly: req.validateOnly });
  return create(CreateSiteResponseSchema, { site: w.resource, revision: w.revision });
}

export async function getSite(store: TopologyStore, req: GetSiteRequest): Promise<GetSiteResponse> {
  const { site } = parseSiteName(req.name, "name");
  const r = await store.reads.site(site);
  return withEncoding(create(GetSiteResponseSchema, { site: r.resource, revision: r.revision }), getBytes(r));
}

export async function listSites(store: TopologyStore, req: ListSitesRequest): Promise<ListSitesResponse> {
  const p = await store.reads.sites({ pageSize: req.pageSize, pageToken: req.pageToken });
  return withEncoding(create(ListSitesResponseSchema, { sites: p.items, nextPageToken: p.nextPageToken, revision: p.revision }), listBytes(p));
}

export async function updateSite(store: TopologyStore, req: UpdateSiteRequest, ctx: RequestContext): Promise<UpdateSiteResponse> {
  const patch = required(req.site, "site");
  const { site } = parseSiteName(patch.name, "site.name");
  const w = await store.sites.update(writeMeta(ctx, "UpdateSite"), site, patch, {
    paths: req.updateMask?.paths ?? [],
    validateOnly: req.validateOnly,
  });
  return create(UpdateSiteResponseSchema, { site: w.resource, revision: w.revision });
}

export async function deleteSite(store: TopologyStore, req: DeleteSiteRequest, ctx: RequestContext): Promise<DeleteSiteResponse> {
  const { site } = parseSiteName(req.name, "name");
  const d = await store.sites.delete(writeMeta(ctx, "DeleteSite"), site, { etag: req.etag, force: req.force });
  return create(DeleteSiteResponseSchema, { revision: d.revision });
}
