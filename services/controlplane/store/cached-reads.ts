/**
 * The API's Get/List reads through the read cache (read-cache.ts). Each result comes with `encoded`:
 * the protobuf bytes of the Get/List response without its last field, the revision (every
 * Get*Response is `resource = 1, revision = 2`, every List*Response `items = 1, next_page_token = 2,
 * revision = 3`), so the API appends the revision and hands the bytes to gRPC as they are
 * (lib/grpc/encoded.ts). Misses run the same statements as the repositories' get/list (rows.ts).
 *
 * The returned messages are shared by every reader of the entry and are frozen: copy before changing.
 * Internal code that reads to write (validation, plans, exports) uses the repositories, never this.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type pg from "pg";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { ReadCache } from "./read-cache.js";
import { decodePageToken, getRow, listRows, pageSize, type TableSpec } from "./rows.js";
import { FIREWALL_MARK_TABLE, HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { ListOptions } from "./types.js";

export interface CachedGet<T> {
  resource: T;
  /** The revision to report (see ReadCache.revisionFor). */
  revision: bigint;
  /** Response bytes without the revision field: field 1 = the resource. */
  encoded: Uint8Array;
}

export interface CachedPage<T> {
  items: T[];
  nextPageToken: string;
  revision: bigint;
  /** Response bytes without the revision field: field 1 per item, field 2 = next_page_token. */
  encoded: Uint8Array;
}

interface Filled<V> {
  value: V;
  readAt: bigint;
  encoded: Uint8Array;
}

/** Freezes a message tree (messages, arrays, maps as objects); typed arrays cannot be frozen. */
function deepFreeze<T>(v: T): T {
  if (typeof v !== "object" || v === null || ArrayBuffer.isView(v) || Object.isFrozen(v)) return v;
  for (const x of Object.values(v as object)) deepFreeze(x);
  return Object.freeze(v);
}

/** Rough memory of an entry: the messages take a few times their encoding. */
const footprint = (f: Filled<unknown>) => 512 + 4 * f.encoded.byteLength;

export class CachedReads {
  constructor(
    private readonly pool: pg.Pool,
    readonly cache: ReadCache,
  ) {}

  private async get<D extends DescMessage>(spec: TableSpec<D>, keys: readonly string[]): Promise<CachedGet<MessageShape<D>>> {
    const name = spec.name(keys);
    const f = await this.cache.read(
      `get ${name}`,
      [name],
      async (): Promise<Filled<MessageShape<D>>> => {
        const r = await getRow(this.pool, spec, keys);
        const w = new BinaryWriter();
        w.tag(1, WireType.LengthDelimited).bytes(toBinary(spec.schema, r.resource));
        return { value: deepFreeze(r.resource), readAt: r.revision, encoded: w.finish() };
      },
      footprint,
    );
    return { resource: f.value, revision: this.cache.revisionFor(f.readAt), encoded: f.encoded };
  }

  private async list<D extends DescMessage>(spec: TableSpec<D>, prefix: readonly string[], opts: ListOptions): Promise<CachedPage<MessageShape<D>>> {
    // Bad page sizes and tokens fail here, as in listRows, and are never cached.
    const size = pageSize(opts.pageSize);
    if (opts.pageToken) decodePageToken(opts.pageToken, spec.keys.length);
    const sample = spec.name(spec.keys.map(() => "x")).split("/");
    const kind = sample[sample.length - 2]!;
    const deps =
      prefix.length === spec.keys.length - 1
        ? [`coll:${spec.name([...prefix, "x"]).slice(0, -2)}`]
        : prefix.length > 0
          ? [`site:${prefix[0]}`]
          : [`kind:${kind}`];
    const f = await this.cache.read(
      `list ${JSON.stringify([kind, prefix, size, opts.pageToken ?? ""])}`,
      deps,
      async (): Promise<Filled<{ items: MessageShape<D>[]; nextPageToken: string }>> => {
        const p = await listRows(this.pool, spec, { prefix, pageSize: size, pageToken: opts.pageToken });
        const w = new BinaryWriter();
        for (const item of p.items) w.tag(1, WireType.LengthDelimited).bytes(toBinary(spec.schema, item));
        if (p.nextPageToken) w.tag(2, WireType.LengthDelimited).string(p.nextPageToken);
        return { value: deepFreeze({ items: p.items, nextPageToken: p.nextPageToken }), readAt: p.revision, encoded: w.finish() };
      },
      footprint,
    );
    return { items: f.value.items, nextPageToken: f.value.nextPageToken, revision: this.cache.revisionFor(f.readAt), encoded: f.encoded };
  }

  site(site: string): Promise<CachedGet<Site>> {
    return this.get(SITE_TABLE, [site]);
  }

  sites(opts: ListOptions): Promise<CachedPage<Site>> {
    return this.list(SITE_TABLE, [], opts);
  }

  host(site: string, host: string): Promise<CachedGet<Host>> {
    return this.get(HOST_TABLE, [site, host]);
  }

  /** `site` "-" lists every site's. */
  hosts(site: string, opts: ListOptions): Promise<CachedPage<Host>> {
    return this.list(HOST_TABLE, site === "-" ? [] : [site], opts);
  }

  firewallMark(site: string, fm: string): Promise<CachedGet<FirewallMark>> {
    return this.get(FIREWALL_MARK_TABLE, [site, fm]);
  }

  firewallMarks(site: string, opts: ListOptions): Promise<CachedPage<FirewallMark>> {
    return this.list(FIREWALL_MARK_TABLE, site === "-" ? [] : [site], opts);
  }

  virtualService(site: string, vs: string): Promise<CachedGet<VirtualService>> {
    return this.get(VIRTUAL_SERVICE_TABLE, [site, vs]);
  }

  virtualServices(site: string, opts: ListOptions): Promise<CachedPage<VirtualService>> {
    return this.list(VIRTUAL_SERVICE_TABLE, site === "-" ? [] : [site], opts);
  }

  realServer(site: string, vs: string, rs: string): Promise<CachedGet<RealServer>> {
    return this.get(REAL_SERVER_TABLE, [site, vs, rs]);
  }

  /** `site` "-" with `vs` "-" lists all; `vs` "-" every service of the site. */
  realServers(site: string, vs: string, opts: ListOptions): Promise<CachedPage<RealServer>> {
    return this.list(REAL_SERVER_TABLE, site === "-" ? [] : vs === "-" ? [site] : [site, vs], opts);
  }
}
