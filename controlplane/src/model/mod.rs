//! The tenant model: what every stage reads and nothing above it defines. Asset references,
//! the snapshot of a tenant's published assets, the one mapping from a Source's kind to its
//! SQL dialect and executor engine, the executor requests built from assets, and the plan's
//! mode, intent, view and aggregation as types.
//!
//! Imports: the proto crate, the SQL guard and the planner's leaf types; never a stage, the
//! pipeline or a service.

pub mod plan_kind;
pub mod refs;
pub mod requests;
pub mod schedule;
pub mod sentences;
pub mod snapshot;
pub mod stages;
pub mod task;
pub mod tool_config;

use ops_proto::executor::Engine;
use ops_proto::v1::{AssetRef, AssetType, SourceKind};

use ops_sqlguard::sql_guard::Dialect;

/// `type:name@version` of an applied asset.
pub fn asset_label(reference: &AssetRef) -> String {
    let t = AssetType::try_from(reference.r#type).unwrap_or(AssetType::Unspecified);
    format!(
        "{}:{}@{}",
        refs::type_slug(t),
        reference.name,
        reference.version
    )
}

/// The SQL dialect of a Source's kind; `None` for a kind that is not a SQL database.
pub fn source_dialect(kind: SourceKind) -> Option<Dialect> {
    match kind {
        SourceKind::Postgres => Some(Dialect::Postgres),
        SourceKind::Mysql => Some(Dialect::MySql),
        SourceKind::Sqlite => Some(Dialect::Sqlite),
        SourceKind::Unspecified => None,
    }
}

/// The executor engine that reads a Source's kind.
pub fn source_engine(kind: SourceKind) -> Engine {
    match kind {
        SourceKind::Postgres => Engine::Postgres,
        SourceKind::Mysql => Engine::Mysql,
        SourceKind::Sqlite => Engine::Sqlite,
        SourceKind::Unspecified => Engine::Unspecified,
    }
}
