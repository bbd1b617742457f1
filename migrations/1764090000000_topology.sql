-- Up Migration

-- The topology store. Each resource is one row: key columns that the database constrains (ids,
-- VIP/protocol/port, fwmark, real-server address/port, parent foreign keys) and the resource itself
-- as JSONB in its protobuf JSON form (output-only fields stripped; they live in columns).
--
-- Revisions: every write transaction takes exactly one value of revision_seq (nextval) and stamps it
-- on every row it writes and on its audit entries. A sequence, not a counter row, so concurrent writes
-- never queue on one row lock. Sequence values are handed out in call order but commit in any order
-- (the "outbox trap"): whoever tails audit_log (or the outbox of the distribution issue) must not
-- assume that seeing revision N means every revision < N has committed. Each audit row therefore also
-- records its transaction id (pg_current_xact_id(), xid8) so a reader can use pg_snapshot visibility
-- (pg_snapshot_xmin / pg_visible_in_snapshot) to know which revisions may still appear.
CREATE SEQUENCE revision_seq AS bigint MINVALUE 1 START 1;

CREATE TABLE sites (
  site_id     text PRIMARY KEY,
  resource    jsonb NOT NULL,
  revision    bigint NOT NULL,
  create_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL
);

CREATE TABLE hosts (
  site_id     text NOT NULL REFERENCES sites (site_id),
  host_id     text NOT NULL,
  resource    jsonb NOT NULL,
  revision    bigint NOT NULL,
  create_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL,
  PRIMARY KEY (site_id, host_id)
);

CREATE TABLE firewall_marks (
  site_id          text NOT NULL REFERENCES sites (site_id),
  firewall_mark_id text NOT NULL,
  -- uint32 mark value, unique in the site.
  mark             bigint NOT NULL CHECK (mark BETWEEN 1 AND 4294967295),
  resource         jsonb NOT NULL,
  revision         bigint NOT NULL,
  create_time      timestamptz NOT NULL,
  update_time      timestamptz NOT NULL,
  PRIMARY KEY (site_id, firewall_mark_id),
  CONSTRAINT firewall_marks_mark_key UNIQUE (site_id, mark)
);

CREATE TABLE virtual_services (
  site_id            text NOT NULL REFERENCES sites (site_id),
  virtual_service_id text NOT NULL,
  -- Address services: protocol (lvsfleet.v1.Protocol number) + VIP + port; fwmark IS NULL.
  protocol           smallint NOT NULL,
  address            inet,
  port               integer NOT NULL CHECK (port BETWEEN 0 AND 65535),
  -- Fwmark services (ipvsadm -f): the mark, which must exist as a FirewallMark of the site.
  fwmark             bigint,
  -- lvsfleet.v1.AddressFamily number.
  address_family     smallint NOT NULL,
  resource           jsonb NOT NULL,
  revision           bigint NOT NULL,
  create_time        timestamptz NOT NULL,
  update_time        timestamptz NOT NULL,
  PRIMARY KEY (site_id, virtual_service_id),
  CONSTRAINT virtual_services_fwmark_fkey FOREIGN KEY (site_id, fwmark)
    REFERENCES firewall_marks (site_id, mark)
);
-- One IPVS service per VIP + protocol + port in a site (ipvsadm -A refuses duplicates).
CREATE UNIQUE INDEX virtual_services_vip_key
  ON virtual_services (site_id, address, protocol, port) WHERE fwmark IS NULL;
-- One fwmark service per mark in a site. IPVS keys fwmark services by (family, mark), so an IPv4 and
-- an IPv6 service may share a mark (ipvsadm -f 1 and ipvsadm -6 -f 1).
CREATE UNIQUE INDEX virtual_services_fwmark_key
  ON virtual_services (site_id, fwmark, address_family) WHERE fwmark IS NOT NULL;

-- Directors carrying a virtual service: mirrors VirtualService.directors so the database refuses a
-- reference to a missing host and "is this host still a Director of something" is an index lookup.
CREATE TABLE virtual_service_directors (
  site_id            text NOT NULL,
  virtual_service_id text NOT NULL,
  host_id            text NOT NULL,
  PRIMARY KEY (site_id, virtual_service_id, host_id),
  FOREIGN KEY (site_id, virtual_service_id)
    REFERENCES virtual_services (site_id, virtual_service_id) ON DELETE CASCADE,
  FOREIGN KEY (site_id, host_id) REFERENCES hosts (site_id, host_id)
);
CREATE INDEX virtual_service_directors_host ON virtual_service_directors (site_id, host_id);

CREATE TABLE real_servers (
  site_id            text NOT NULL,
  virtual_service_id text NOT NULL,
  real_server_id     text NOT NULL,
  address            inet NOT NULL,
  port               integer NOT NULL CHECK (port BETWEEN 0 AND 65535),
  -- The Host this real server is, if any.
  host_id            text,
  resource           jsonb NOT NULL,
  revision           bigint NOT NULL,
  create_time        timestamptz NOT NULL,
  update_time        timestamptz NOT NULL,
  PRIMARY KEY (site_id, virtual_service_id, real_server_id),
  FOREIGN KEY (site_id, virtual_service_id)
    REFERENCES virtual_services (site_id, virtual_service_id),
  CONSTRAINT real_servers_host_fkey FOREIGN KEY (site_id, host_id) REFERENCES hosts (site_id, host_id)
);
-- An IPVS destination is keyed by address + port within its service.
CREATE UNIQUE INDEX real_servers_address_key
  ON real_servers (site_id, virtual_service_id, address, port);
CREATE INDEX real_servers_host ON real_servers (site_id, host_id) WHERE host_id IS NOT NULL;

-- Append-only audit log: one row per resource written, all rows of one write transaction share its
-- revision and xid.
CREATE TABLE audit_log (
  id            bigserial PRIMARY KEY,
  revision      bigint NOT NULL,
  xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  time          timestamptz NOT NULL DEFAULT now(),
  actor         text NOT NULL,
  operation     text NOT NULL,
  resource_name text NOT NULL,
  site_id       text NOT NULL,
  before        jsonb,
  after         jsonb,
  reason        text NOT NULL DEFAULT ''
);
-- max(revision) for "the revision a read saw" is an index-only backward scan.
CREATE INDEX audit_log_revision ON audit_log (revision);
CREATE INDEX audit_log_site ON audit_log (site_id, revision);
CREATE INDEX audit_log_resource ON audit_log (resource_name text_pattern_ops, revision);

-- Append-only: the application role may insert and read, never change history.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Down Migration

DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE real_servers;
DROP TABLE virtual_service_directors;
DROP TABLE virtual_services;
DROP TABLE firewall_marks;
DROP TABLE hosts;
DROP TABLE sites;
DROP SEQUENCE revision_seq;
