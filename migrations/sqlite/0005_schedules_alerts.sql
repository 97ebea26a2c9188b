-- Regression runs say what started them; each judgment is also a row, for a golden query's trend.
ALTER TABLE regression_runs ADD COLUMN run_trigger TEXT NOT NULL DEFAULT 'manual';
CREATE TABLE regression_results (
  run_id           TEXT NOT NULL,
  tenant_id        TEXT NOT NULL,
  golden_query_id  TEXT NOT NULL,
  started_at       BIGINT NOT NULL,
  judgment         TEXT NOT NULL,
  verdict_reason   TEXT NOT NULL DEFAULT '',
  trace_id         TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, golden_query_id)
);
CREATE INDEX regression_results_golden_idx ON regression_results (tenant_id, golden_query_id, started_at);

-- One row per cron occurrence: the replica whose insert succeeds runs it.
CREATE TABLE scheduled_runs (
  tenant_id   TEXT NOT NULL,
  fire_at     BIGINT NOT NULL,
  claimed_at  BIGINT NOT NULL,
  run_id      TEXT,
  PRIMARY KEY (tenant_id, fire_at)
);

-- Alerts: a rule, a webhook, and the evaluation cursor replicas advance with compare-and-set.
ALTER TABLE alert_configs ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_configs ADD COLUMN window_minutes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alert_configs ADD COLUMN secret_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_configs ADD COLUMN state TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE alert_configs ADD COLUMN cursor_at BIGINT NOT NULL DEFAULT 0;
CREATE TABLE alert_deliveries (
  delivery_id  TEXT PRIMARY KEY,
  alert_id     TEXT NOT NULL,
  tenant_id    TEXT NOT NULL,
  event        TEXT NOT NULL,
  payload      TEXT NOT NULL,
  status       TEXT NOT NULL,
  attempts     BIGINT NOT NULL DEFAULT 0,
  http_status  BIGINT NOT NULL DEFAULT 0,
  last_error   TEXT NOT NULL DEFAULT '',
  created_at   BIGINT NOT NULL,
  finished_at  BIGINT
);
CREATE INDEX alert_deliveries_tenant_idx ON alert_deliveries (tenant_id, created_at);

-- The trace's data-quality flags, comma-delimited (",fallback_source,truncated,"), so alert
-- rules and rollups can filter traces without decoding them.
ALTER TABLE traces ADD COLUMN data_quality TEXT NOT NULL DEFAULT '';
-- Per-minute rollups and alert rules read every tenant's traces of a time range.
CREATE INDEX traces_started_idx ON traces (started_at);
