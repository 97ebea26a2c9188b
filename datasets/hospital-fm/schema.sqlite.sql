-- hospital-fm: a hospital facilities estate (SQLite). Timestamps are ISO-8601 UTC text.
CREATE TABLE fm_asset (
  asset_key     TEXT PRIMARY KEY,
  org_code      TEXT NOT NULL,
  tag_no        TEXT NOT NULL,
  asset_name    TEXT NOT NULL,
  asset_name_ko TEXT NOT NULL,
  category      TEXT NOT NULL,
  building      TEXT NOT NULL,
  floor_no      TEXT,
  service_state TEXT NOT NULL,
  criticality   TEXT NOT NULL,
  maker         TEXT,
  rated_kw      REAL,
  installed_on  TEXT NOT NULL,
  UNIQUE (org_code, tag_no)
);
CREATE TABLE fm_link (
  org_code  TEXT NOT NULL,
  from_key  TEXT NOT NULL REFERENCES fm_asset(asset_key),
  link_kind TEXT NOT NULL,
  to_key    TEXT NOT NULL REFERENCES fm_asset(asset_key)
);
CREATE TABLE fm_reading (
  org_code  TEXT NOT NULL,
  asset_key TEXT NOT NULL REFERENCES fm_asset(asset_key),
  quantity  TEXT NOT NULL,
  read_at   TEXT NOT NULL,
  amount    REAL NOT NULL
);
CREATE TABLE work_order (
  wo_no     TEXT PRIMARY KEY,
  org_code  TEXT NOT NULL,
  asset_key TEXT NOT NULL REFERENCES fm_asset(asset_key),
  wo_kind   TEXT NOT NULL,
  priority  TEXT NOT NULL,
  summary   TEXT NOT NULL,
  opened_at TEXT NOT NULL,
  closed_at TEXT
);
CREATE TABLE sop_doc (
  doc_no    TEXT PRIMARY KEY,
  org_code  TEXT NOT NULL,
  title     TEXT NOT NULL,
  topic     TEXT NOT NULL,
  body      TEXT NOT NULL,
  issued_at TEXT NOT NULL
);
CREATE INDEX fm_reading_idx ON fm_reading (org_code, quantity, read_at);
CREATE INDEX work_order_idx ON work_order (org_code, asset_key, opened_at);
