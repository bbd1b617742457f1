/**
 * The Postgres store of the topology. Handlers get a TopologyStore injected; everything that touches
 * pg lives under store/. Writes go through withTransaction (db.ts): one transaction, one revision,
 * audit rows, after-write hooks (the outbox of the distribution issue plugs in there), COMMIT — or,
 * for concurrent real-server creates of a site, withWriteGroup (group commit, group-commit.ts): one
 * transaction and COMMIT for the group, a revision, audit row and outcome per write.
 */
import type pg from "pg";
import { AuditRepository } from "./audit.js";
import { CachedReads } from "./cached-reads.js";
import { createDatabase, READ_REVISION_SQL, type AfterWriteHook, type Database } from "./db.js";
import { FirewallMarkRepository } from "./firewall-marks.js";
import { HostRepository } from "./hosts.js";
import type { ReadCacheListener } from "./read-cache.js";
import { RealServerRepository } from "./real-servers.js";
import { SiteRepository } from "./sites.js";
import { VirtualServiceRepository } from "./virtual-services.js";

export class TopologyStore {
  readonly db: Database;
  readonly sites: SiteRepository;
  readonly hosts: HostRepository;
  readonly virtualServices: VirtualServiceRepository;
  readonly realServers: RealServerRepository;
  readonly firewallMarks: FirewallMarkRepository;
  readonly audit: AuditRepository;
  /** The API's Get/List reads, through the read cache once startReadCache() runs (cached-reads.ts). */
  readonly reads: CachedReads;

  constructor(pool: pg.Pool) {
    this.db = createDatabase(pool);
    this.sites = new SiteRepository(this.db);
    this.hosts = new HostRepository(this.db);
    this.virtualServices = new VirtualServiceRepository(this.db);
    this.realServers = new RealServerRepository(this.db);
    this.firewallMarks = new FirewallMarkRepository(this.db);
    this.audit = new AuditRepository(this.db);
    this.reads = new CachedReads(pool, this.db.readCache);
  }

  /**
   * Turns the read cache on while a LISTEN connection to `connectionString` (the pool's database) is
   * up; without it every read goes to Postgres. See read-cache.ts for what a cached read promises.
   */
  startReadCache(connectionString: string, onError?: (err: unknown) => void): ReadCacheListener {
    return this.db.readCache.startListener({ connectionString, onError });
  }

  /** Registers a hook that runs inside every write transaction before COMMIT (see AfterWriteHook). */
  onWrite(hook: AfterWriteHook): void {
    this.db.afterWrite.push(hook);
  }

  /** The highest committed revision visible now. */
  async currentRevision(): Promise<bigint> {
    const r = await this.db.pool.query<{ r: string }>(READ_REVISION_SQL);
    return BigInt(r.rows[0]!.r);
  }
}

export { createPool, withTransaction } from "./db.js";
export type { AfterWriteHook, Change, GroupTx, HookTx, WriteMeta, WriteRecord, WriteTx } from "./db.js";
export { migrate } from "./migrate.js";
export type * from "./types.js";
