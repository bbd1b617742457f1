-- Up Migration

-- IPVS counters (issue 5, Counters): per Director, the latest counters its agent reported
-- (AgentReport.counters, every --counters-seconds). `counters` is a binary lvsfleet.v1.DirectorStats
-- (services with totals and per-destination counters); only the latest row per host is kept.
CREATE TABLE host_counters (
  site        text NOT NULL,
  host        text NOT NULL,
  agent_id    text NOT NULL,
  -- When the agent read the counters (the report's time).
  report_time timestamptz NOT NULL,
  counters    bytea NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, host)
);

-- Down Migration

DROP TABLE host_counters;
