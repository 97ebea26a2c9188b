//! The hospital-fm data set (`datasets/hospital-fm`): a hospital facilities estate of two
//! tenants (`org_code` seoulmed and busanmed), the second demo source. Its assets were
//! written from `docs/assets.md` alone; nothing in the planner knows it.

use std::path::Path;

use crate::{DatasetError, LoadReport};

pub const README: &str = include_str!("../hospital-fm/README.md");
pub const SCHEMA_SQLITE: &str = include_str!("../hospital-fm/schema.sqlite.sql");
pub const FM_ASSET_CSV: &str = include_str!("../hospital-fm/fm_asset.csv");
pub const FM_LINK_CSV: &str = include_str!("../hospital-fm/fm_link.csv");
pub const FM_READING_CSV: &str = include_str!("../hospital-fm/fm_reading.csv");
pub const WORK_ORDER_CSV: &str = include_str!("../hospital-fm/work_order.csv");
pub const SOP_DOC_CSV: &str = include_str!("../hospital-fm/sop_doc.csv");

/// The question file, with expectations computed from the CSVs (`questions.py`).
pub const QUESTIONS_JSONL: &str = include_str!("../hospital-fm/questions/hospital-fm.jsonl");

/// The tenants that own rows.
pub const TENANTS: [&str; 2] = ["seoulmed", "busanmed"];

/// Tables in load order (referenced tables first) with their CSV.
pub const TABLES: &[(&str, &str)] = &[
    ("fm_asset", FM_ASSET_CSV),
    ("fm_link", FM_LINK_CSV),
    ("fm_reading", FM_READING_CSV),
    ("work_order", WORK_ORDER_CSV),
    ("sop_doc", SOP_DOC_CSV),
];

/// Creates the SQLite file `path` and loads every table.
pub async fn load_sqlite(path: &Path) -> Result<LoadReport, DatasetError> {
    crate::csv_sqlite::load(path, SCHEMA_SQLITE, TABLES).await
}
