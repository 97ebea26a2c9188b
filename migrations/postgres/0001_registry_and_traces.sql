-- OPS control-plane schema (PostgreSQL, for scale-out replicas). Times are unix microseconds.
-- Keep in step with ../sqlite/0001_registry_and_traces.sql: same tables, same columns.

-- ── asset registry ────────────────────────────────────────────────────────────────────────
CREATE TABLE assets (
  asset_id        TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL,
  asset_type      TEXT NOT NULL,
  name            TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('active', 'archived')),
  revision        BIGINT NOT NULL,
  latest_version  BIGINT NOT NULL DEFAULT 0,
  created_at      BIGINT NOT NULL,
  updated_at      BIGINT NOT NULL,
  created_by      TEXT NOT NULL,
  updated_by      TEXT NOT NULL,
  UNIQUE (tenant_id, asset_type, name)
);

-- The single mutable working copy of an asset. `content` is an encoded ops.v1.AssetContent.
CREATE TABLE asset_drafts (
  asset_id        TEXT PRIMARY KEY REFERENCES assets (asset_id),
  base_version    BIGINT NOT NULL,
  scope           TEXT NOT NULL,
  content         BYTEA NOT NULL,
  content_json    TEXT NOT NULL,
  content_sha256  TEXT NOT NULL,
  updated_at      BIGINT NOT NULL,
  updated_by      TEXT NOT NULL
);

-- Published versions: immutable (the triggers below refuse any change).
CREATE TABLE asset_versions (
  asset_id          TEXT NOT NULL REFERENCES assets (asset_id),
  version           BIGINT NOT NULL,
  scope             TEXT NOT NULL,
  content           BYTEA NOT NULL,
  content_json      TEXT NOT NULL,
  content_sha256    TEXT NOT NULL,
  rolled_back_from  BIGINT NOT NULL DEFAULT 0,
  note              TEXT NOT NULL DEFAULT '',
  published_at      BIGINT NOT NULL,
  published_by      TEXT NOT NULL,
  PRIMARY KEY (asset_id, version)
);
CREATE FUNCTION ops_asset_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'published asset versions are immutable';
END
$$;
CREATE TRIGGER asset_versions_immutable BEFORE UPDATE OR DELETE ON asset_versions
FOR EACH ROW EXECUTE FUNCTION ops_asset_versions_immutable();

CREATE TABLE asset_audit (
  audit_id      TEXT PRIMARY KEY,
  tenant_id     TEXT NOT NULL,
  asset_id      TEXT NOT NULL,
  asset_type    TEXT NOT NULL,
  name          TEXT NOT NULL,
  action        TEXT NOT NULL,
  principal     TEXT NOT NULL,
  at            BIGINT NOT NULL,
  from_version  BIGINT NOT NULL,
  to_version    BIGINT NOT NULL,
  revision      BIGINT NOT NULL,
  detail        TEXT NOT NULL
);
CREATE INDEX asset_audit_asset_idx ON asset_audit (tenant_id, asset_type, name, at);
CREATE INDEX asset_audit_tenant_idx ON asset_audit (tenant_id, at);

-- ── execution traces ─────────────────────────────────────────────────────────────────────
-- `trace` is an encoded ops.v1.Trace; the other columns are the filterable summary.
CREATE TABLE traces (
  trace_id         TEXT PRIMARY KEY,
  parent_trace_id  TEXT,
  tenant_id        TEXT NOT NULL,
  principal        TEXT NOT NULL,
  question         TEXT NOT NULL,
  mode             TEXT NOT NULL,
  route            TEXT NOT NULL,
  status           TEXT NOT NULL,
  started_at       BIGINT NOT NULL,
  duration_ms      DOUBLE PRECISION NOT NULL,
  replans          BIGINT NOT NULL DEFAULT 0,
  test_mode        BOOLEAN NOT NULL DEFAULT FALSE,
  answer           TEXT NOT NULL DEFAULT '',
  trace            BYTEA NOT NULL
);
CREATE INDEX traces_tenant_started_idx ON traces (tenant_id, started_at);
CREATE INDEX traces_parent_idx ON traces (parent_trace_id);

-- Exact asset versions each trace applied (Inspector's asset filter).
CREATE TABLE trace_assets (
  trace_id    TEXT NOT NULL REFERENCES traces (trace_id) ON DELETE CASCADE,
  asset_type  TEXT NOT NULL,
  name        TEXT NOT NULL,
  version     BIGINT NOT NULL,
  PRIMARY KEY (trace_id, asset_type, name)
);
CREATE INDEX trace_assets_asset_idx ON trace_assets (asset_type, name, version);

-- ── orchestration tables (mirrors of the trace, filled by the pipeline) ──────────────────
CREATE TABLE tasks (
  task_id      TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  trace_id     TEXT NOT NULL,
  kind         TEXT NOT NULL,
  status       TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  finished_at  BIGINT
);
CREATE INDEX tasks_trace_idx ON tasks (trace_id);

CREATE TABLE user_queries (
  query_id    TEXT PRIMARY KEY,
  tenant_id   TEXT NOT NULL,
  task_id     TEXT NOT NULL REFERENCES tasks (task_id),
  principal   TEXT NOT NULL,
  question    TEXT NOT NULL,
  mode        TEXT NOT NULL,
  as_of       BIGINT,
  created_at  BIGINT NOT NULL
);

CREATE TABLE execution_plans (
  plan_id        TEXT PRIMARY KEY,
  tenant_id      TEXT NOT NULL,
  task_id        TEXT NOT NULL REFERENCES tasks (task_id),
  plan_raw       TEXT NOT NULL,
  plan_validated TEXT,
  -- The task DAG: {"nodes": [...], "edges": [[from, to], ...]}.
  task_dag       TEXT NOT NULL,
  created_at     BIGINT NOT NULL
);

CREATE TABLE subtasks (
  subtask_id   TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  task_id      TEXT NOT NULL REFERENCES tasks (task_id),
  stage        TEXT NOT NULL,
  agent        TEXT NOT NULL DEFAULT '',
  status       TEXT NOT NULL,
  duration_ms  DOUBLE PRECISION NOT NULL DEFAULT 0,
  retry_count  BIGINT NOT NULL DEFAULT 0,
  error        TEXT,
  started_at   BIGINT NOT NULL
);
CREATE INDEX subtasks_task_idx ON subtasks (task_id);

CREATE TABLE constraint_violations (
  violation_id    TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL,
  trace_id        TEXT,
  asset_type      TEXT,
  asset_name      TEXT,
  violation_type  TEXT NOT NULL,
  rule            TEXT NOT NULL,
  field           TEXT NOT NULL DEFAULT '',
  message         TEXT NOT NULL,
  expected        TEXT NOT NULL DEFAULT '',
  actual          TEXT NOT NULL DEFAULT '',
  severity        TEXT NOT NULL,
  blocking        BOOLEAN NOT NULL,
  created_at      BIGINT NOT NULL
);
CREATE INDEX constraint_violations_trace_idx ON constraint_violations (trace_id);

CREATE TABLE user_feedback (
  feedback_id  TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  trace_id     TEXT NOT NULL,
  principal    TEXT NOT NULL,
  rating       TEXT NOT NULL,
  comment      TEXT NOT NULL DEFAULT '',
  created_at   BIGINT NOT NULL
);

CREATE TABLE performance_metrics (
  metric_id    TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  trace_id     TEXT,
  name         TEXT NOT NULL,
  value        DOUBLE PRECISION NOT NULL,
  unit         TEXT NOT NULL DEFAULT '',
  labels       TEXT NOT NULL DEFAULT '{}',
  recorded_at  BIGINT NOT NULL
);
CREATE INDEX performance_metrics_name_idx ON performance_metrics (tenant_id, name, recorded_at);

CREATE TABLE alert_configs (
  alert_id     TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  name         TEXT NOT NULL,
  metric       TEXT NOT NULL,
  condition    TEXT NOT NULL,
  threshold    DOUBLE PRECISION NOT NULL,
  enabled      BOOLEAN NOT NULL DEFAULT TRUE,
  created_at   BIGINT NOT NULL,
  UNIQUE (tenant_id, name)
);

CREATE TABLE llm_usage_log (
  usage_id           TEXT PRIMARY KEY,
  tenant_id          TEXT NOT NULL,
  trace_id           TEXT,
  stage              TEXT NOT NULL,
  model              TEXT NOT NULL,
  prompt_tokens      BIGINT NOT NULL DEFAULT 0,
  completion_tokens  BIGINT NOT NULL DEFAULT 0,
  latency_ms         DOUBLE PRECISION NOT NULL DEFAULT 0,
  created_at         BIGINT NOT NULL
);

-- ── regression watch ─────────────────────────────────────────────────────────────────────
CREATE TABLE golden_queries (
  golden_query_id    TEXT PRIMARY KEY,
  tenant_id          TEXT NOT NULL,
  name               TEXT NOT NULL,
  request            BYTEA NOT NULL,
  baseline_trace_id  TEXT,
  expected_values    TEXT NOT NULL DEFAULT '[]',
  created_at         BIGINT NOT NULL,
  UNIQUE (tenant_id, name)
);

CREATE TABLE regression_runs (
  run_id       TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL,
  started_at   BIGINT NOT NULL,
  duration_ms  DOUBLE PRECISION NOT NULL DEFAULT 0,
  run          BYTEA NOT NULL
);
