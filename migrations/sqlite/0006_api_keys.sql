-- API keys: a SHA-256 of the secret, the tenant and roles it acts with, expiry and revocation.
CREATE TABLE api_keys (
  key_id         TEXT PRIMARY KEY,
  tenant_id      TEXT NOT NULL,
  name           TEXT NOT NULL,
  roles          TEXT NOT NULL,
  secret_sha256  TEXT NOT NULL,
  created_by     TEXT NOT NULL,
  created_at     BIGINT NOT NULL,
  expires_at     BIGINT NOT NULL DEFAULT 0,
  revoked_at     BIGINT NOT NULL DEFAULT 0,
  last_used_at   BIGINT NOT NULL DEFAULT 0,
  UNIQUE (tenant_id, name)
);
