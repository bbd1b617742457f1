-- Up Migration

-- Fleet distribution (issue 3): transactional outbox → relay → JetStream KV, and agent status.
--
-- outbox: the write transaction (store after-write hook, services/controlplane/relay/outbox.ts)
-- inserts one row per site whose topology it changed, in the same transaction as the change, so a
-- change is recorded if and only if it commits. `host` NULL = "recompile every host of the site";
-- the relay publishes only hosts whose compiled state (hash) actually changed.
--
-- The relay consumes rows by DELETE in the transaction that records their result, never by a
-- cursor (id > last): ids and revisions are handed out before commit and commit in any order (the
-- outbox trap), so a cursor could pass a row that commits later; a deleted-when-done row cannot be
-- skipped. xid (pg_current_xact_id) is kept for diagnosis and for readers that want snapshot order.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  revision   bigint NOT NULL,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  site       text NOT NULL,
  host       text,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- What the relay compiled for each host: the source of every KV value (so a NATS that lost its data
-- is refilled from here) and the record of the revision stamped on it. `revision` strictly increases
-- per host whenever `hash` changes; `published` = the KV holds this revision.
CREATE TABLE desired_states (
  site       text NOT NULL,
  host       text NOT NULL,
  revision   bigint NOT NULL,
  hash       text NOT NULL,
  state      bytea NOT NULL,
  -- False for a host removed from the topology (its state is the empty one: remove everything).
  present    boolean NOT NULL,
  published  boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, host)
);
CREATE INDEX desired_states_unpublished ON desired_states (revision) WHERE NOT published;

-- Per host, the last AgentReport the control plane ingested (services/controlplane/status).
CREATE TABLE host_status (
  site               text NOT NULL,
  host               text NOT NULL,
  agent_id           text NOT NULL,
  applied_revision   bigint NOT NULL,
  applied_hash       text NOT NULL,
  seen_revision      bigint NOT NULL,
  -- lvsfleet.v1.AgentPhase number.
  phase              smallint NOT NULL,
  errors             jsonb NOT NULL DEFAULT '[]',
  heartbeat_seconds  integer NOT NULL,
  report_time        timestamptz NOT NULL,
  last_seen          timestamptz NOT NULL,
  PRIMARY KEY (site, host)
);

-- Down Migration

DROP TABLE host_status;
DROP TABLE desired_states;
DROP TABLE outbox;
