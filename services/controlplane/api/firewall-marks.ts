/** FirewallMark handlers: plain functions over the injected store (https://google.aip.dev/131..135). */
import { create } from "@bufbuild/protobuf";
import { FirewallMarkSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  CreateFirewallMarkResponseSchema,
  DeleteFirewallMarkResponseSchema,
  GetFirewallMarkResponseSchema,
  ListFirewallMarksResponseSchema,
  UpdateFirewallMarkResponseSchema,
  type CreateFirewallMarkRequest,
  type CreateFirewallMarkResponse,
  type DeleteFirewallMarkRequest,
  type DeleteFirewallMarkResponse,
  type GetFirewallMarkRequest,
  type GetFirewallMarkResponse,
  type ListFirewallMarksRequest,
  type ListFirewallMarksResponse,
  type UpdateFirewallMarkRequest,
  type UpdateFirewallMarkResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { throwIfInvalid } from "../domain/errors.js";
import { parseFirewallMarkName, parseSiteName, validateId } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { getBytes, listBytes } from "./encoded.js";
import { withEncoding } from "../../../lib/grpc/encoded.js";
import { required, siteParent } from "./fields.js";

export async function createFirewallMark(store: TopologyStore, req: CreateFirewallMarkRequest, ctx: RequestContext): Promise<CreateFirewallMarkResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  throwIfInvalid(validateId(req.firewallMarkId, "firewall_mark_id"));
  const w = await store.firewallMarks.create(writeMeta(ctx, "CreateFirewallMark"), site, req.firewallMarkId, req.firewallMark ?? create(FirewallMarkSchema), {
    validateOnly: req.validateOnly,
  });
  return create(CreateFirewallMarkResponseSchema, { firewallMark: w.resource, revision: w.revision });
}

export async function getFirewallMark(store: TopologyStore, req: GetFirewallMarkRequest): Promise<GetFirewallMarkResponse> {
  const n = parseFirewallMarkName(req.name, "name");
  const r = await store.reads.firewallMark(n.site, n.firewallMark);
  return withEncoding(create(GetFirewallMarkResponseSchema, { firewallMark: r.resource, revision: r.revision }), getBytes(r));
}

export async function listFirewallMarks(store: TopologyStore, req: ListFirewallMarksRequest): Promise<ListFirewallMarksResponse> {
  const site = siteParent(req.parent);
  const p = await store.reads.firewallMarks(site, { pageSize: req.pageSize, pageToken: req.pageToken });
  return withEncoding(create(ListFirewallMarksResponseSchema, { firewallMarks: p.items, nextPageToken: p.nextPageToken, revision: p.revision }), listBytes(p));
}

export async function updateFirewallMark(store: TopologyStore, req: UpdateFirewallMarkRequest, ctx: RequestContext): Promise<UpdateFirewallMarkResponse> {
  const patch = required(req.firewallMark, "firewall_mark");
  const n = parseFirewallMarkName(patch.name, "firewall_mark.name");
  const w = await store.firewallMarks.update(writeMeta(ctx, "UpdateFirewallMark"), n.site, n.firewallMark, patch, {
    paths: req.updateMask?.paths ?? [],
    validateOnly: req.validateOnly,
  });
  return create(UpdateFirewallMarkResponseSchema, { firewallMark: w.resource, revision: w.revision });
}

export async function deleteFirewallMark(store: TopologyStore, req: DeleteFirewallMarkRequest, ctx: RequestContext): Promise<DeleteFirewallMarkResponse> {
  const n = parseFirewallMarkName(req.name, "name");
  const d = await store.firewallMarks.delete(writeMeta(ctx, "DeleteFirewallMark"), n.site, n.firewallMark, { etag: req.etag, force: req.force });
  return create(DeleteFirewallMarkResponseSchema, { revision: d.revision });
}
