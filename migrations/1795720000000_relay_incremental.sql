-- Up Migration

-- Incremental compile in the relay (issue 3, fan-out latency).
--
-- outbox.kind / outbox.resource: the resource a write changed (store Change kind and full name), one
-- row per (write, resource). The relay re-reads only those resources and recompiles only the hosts
-- that can read them (services/controlplane/compile/incremental.ts). NULL resource (rows from before
-- this migration, or a write that changed very many resources of a site) = recompile the whole site.
-- outbox.host stays unused (NULL): affected hosts are derived from the resources.
ALTER TABLE outbox ADD COLUMN kind text, ADD COLUMN resource text;

-- The relay keeps each site's topology and desired-state hashes in memory between compile
-- transactions. That cache is only valid if no other relay compiled in between (a deposed leader
-- finishing a transaction, a takeover and back): every compile transaction bumps this one row and
-- reads who bumped it last; not itself → drop the cache and reload from the snapshot. The row lock
-- also serialises compile transactions (a concurrent one fails with a serialization error and retries).
CREATE TABLE relay_compile_token (
  id    integer PRIMARY KEY CHECK (id = 1),
  relay text NOT NULL,
  n     bigint NOT NULL
);
INSERT INTO relay_compile_token (id, relay, n) VALUES (1, '', 0);

-- Down Migration

DROP TABLE relay_compile_token;
ALTER TABLE outbox DROP COLUMN resource, DROP COLUMN kind;
