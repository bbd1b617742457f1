-- Up Migration

-- real_servers_address_key (one IPVS destination per address:port in a service) led with
-- (site_id, virtual_service_id), like the primary key. On a table the planner has no statistics for
-- yet (fresh, or grown fast since the last autoanalyze) a primary-key lookup could be planned on it,
-- "Index Cond: site_id, virtual_service_id — Filter: real_server_id", reading every real server of
-- the service per lookup. Measured: the relay's re-read of 500 real servers named by the outbox in a
-- 5 000-server service took 969 ms (1.9 ms per lookup), so under a stream of creates each relay batch
-- grew slower than the last. With address and port first, only the primary key serves a key lookup;
-- the uniqueness enforced, its name (store/pg-errors.ts maps it) and the duplicate check's lookup
-- (site, service, address, port: every column) stay the same.
DROP INDEX real_servers_address_key;
CREATE UNIQUE INDEX real_servers_address_key
  ON real_servers (address, port, site_id, virtual_service_id);

-- Down Migration

DROP INDEX real_servers_address_key;
CREATE UNIQUE INDEX real_servers_address_key
  ON real_servers (site_id, virtual_service_id, address, port);
