-- The audit log: asks (written with their traces), refused calls and changes.
CREATE TABLE audit_log (
  audit_id    TEXT PRIMARY KEY,
  tenant_id   TEXT NOT NULL,
  at_micros   BIGINT NOT NULL,
  kind        TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  principal   TEXT NOT NULL,
  rpc         TEXT NOT NULL,
  code        TEXT NOT NULL,
  reason      TEXT NOT NULL,
  route       TEXT NOT NULL,
  status      TEXT NOT NULL,
  violations  TEXT NOT NULL,
  trace_id    TEXT NOT NULL,
  target      TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant_time ON audit_log (tenant_id, at_micros, audit_id);
