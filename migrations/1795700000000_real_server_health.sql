-- Up Migration

-- Real server health (issue 5, Health checks): per Director, the latest result of its checks of each
-- real server (AgentReport.health), with the time of the last transition, and a short history of
-- transitions. A report that carries health (AgentReport.health_reported) replaces the Director's
-- whole set: an entry it no longer has is deleted (the check is gone). Whether a Director is OFFLINE
-- is derived when read (host_status.last_seen), and its rows then read as UNKNOWN.
CREATE TABLE real_server_health (
  site            text NOT NULL,
  -- The Director that checks.
  host            text NOT NULL,
  -- Resource names: sites/{site}/virtualServices/{vs} and …/realServers/{rs}.
  virtual_service text NOT NULL,
  real_server     text NOT NULL,
  address         text NOT NULL,
  port            integer NOT NULL,
  healthy         boolean NOT NULL,
  -- The weight the Director has set now (0 when quiesced).
  weight          bigint NOT NULL,
  -- Time of the last transition (the agent's, else when the control plane first saw this state).
  since           timestamptz NOT NULL,
  last_result     text NOT NULL DEFAULT '',
  -- The report that last changed this row (the Director's latest is host_status.health_time).
  report_time     timestamptz NOT NULL,
  PRIMARY KEY (site, host, virtual_service, real_server)
);
CREATE INDEX real_server_health_vs ON real_server_health (site, virtual_service);

-- Transitions seen by the control plane (new check, up → down, down → up, gone); pruned after 7 days.
CREATE TABLE real_server_health_transitions (
  id              bigserial PRIMARY KEY,
  site            text NOT NULL,
  host            text NOT NULL,
  virtual_service text NOT NULL,
  real_server     text NOT NULL,
  -- NULL = the check is gone (the Director no longer reports it).
  healthy         boolean,
  time            timestamptz NOT NULL,
  last_result     text NOT NULL DEFAULT ''
);
CREATE INDEX real_server_health_transitions_site ON real_server_health_transitions (site, id);
CREATE INDEX real_server_health_transitions_time ON real_server_health_transitions (time);

-- When the Director last reported its health set (NULL: never; e.g. agents without checks).
ALTER TABLE host_status ADD COLUMN health_time timestamptz;

-- Down Migration

ALTER TABLE host_status DROP COLUMN health_time;
DROP TABLE real_server_health_transitions;
DROP TABLE real_server_health;
