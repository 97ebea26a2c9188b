-- Uploaded WASM plugins (Mapping and Screen), content-addressed per tenant. Rows are never
-- updated: the same bytes always have the same digest, so a re-upload is a no-op.
CREATE TABLE plugin_blobs (
  tenant_id    TEXT NOT NULL,
  digest       TEXT NOT NULL,
  world        TEXT NOT NULL CHECK (world IN ('mapper', 'screen')),
  size_bytes   BIGINT NOT NULL,
  wasm         BYTEA NOT NULL,
  name         TEXT NOT NULL,
  version      TEXT NOT NULL,
  description  TEXT NOT NULL,
  contract     TEXT NOT NULL,
  uploaded_at  BIGINT NOT NULL,
  uploaded_by  TEXT NOT NULL,
  PRIMARY KEY (tenant_id, digest)
);
