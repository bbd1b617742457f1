/** ListAuditEntries: the append-only audit log, newest first. */
import { create } from "@bufbuild/protobuf";
import {
  ListAuditEntriesResponseSchema,
  type ListAuditEntriesRequest,
  type ListAuditEntriesResponse,
} from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { LvsfleetError } from "../domain/errors.js";
import { parseSiteName } from "../domain/names.js";
import type { TopologyStore } from "../store/index.js";

export async function listAuditEntries(store: TopologyStore, req: ListAuditEntriesRequest): Promise<ListAuditEntriesResponse> {
  const site = req.parent ? parseSiteName(req.parent, "parent").site : undefined;
  if (req.resourceName && !/^sites\/[^\s]*$/.test(req.resourceName)) {
    throw LvsfleetError.invalid([
      { field: "resource_name", reason: "INVALID_NAME", description: "resource_name must be a resource name (sites/…), or a prefix ending in /" },
    ]);
  }
  const p = await store.audit.list({ site, resourceName: req.resourceName || undefined }, { pageSize: req.pageSize, pageToken: req.pageToken });
  return create(ListAuditEntriesResponseSchema, { auditEntries: p.items, nextPageToken: p.nextPageToken });
}
