-- Rate-limit windows counted in the shared database, so the Policy's limits hold across
-- replicas (used on PostgreSQL; one SQLite process counts in memory).
CREATE TABLE rate_counts (
  bucket        TEXT NOT NULL,
  window_start  BIGINT NOT NULL,
  hits          BIGINT NOT NULL,
  PRIMARY KEY (bucket, window_start)
);
