//! The control plane's database: SQLite (embedded default) or PostgreSQL (scale-out), one code
//! path through `sqlx::Any`. Statements use `$N` placeholders, which both drivers accept.
//! Migrations are embedded per backend and applied at startup under the migrator's lock;
//! a file-backed SQLite database is first copied with `VACUUM INTO`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported storage url {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How far a trace commit has reached before the answer goes out. Registry writes (assets,
/// sources, plugins) always wait for the disk; this setting is for traces only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceSync {
    /// The trace is in the database's write-ahead log (SQLite WAL with `synchronous = NORMAL`,
    /// PostgreSQL `synchronous_commit = off`): it survives opsd crashing or being killed; an
    /// operating-system crash or power loss can lose the last moments of traces, never
    /// corrupt the database. Saves an fsync (≈ 1–2 ms) on every answer.
    #[default]
    Normal,
    /// Every commit group is fsynced before its answers go out.
    Full,
}

/// A pool plus the backend it talks to (for the few statements that differ).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Options of a file-backed SQLite database, for a connection of the trace writer's own.
    sqlite_file: Option<AnyConnectOptions>,
}

impl Db {
    /// Connects and applies pending migrations.
    pub async fn open(
        url: &str,
        max_connections: u32,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl(redact_url(url)));
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite
            && !in_memory
            && let Some(dir) = data_dir
        {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let options: AnyConnectOptions = url.parse()?;
        // Every in-memory SQLite connection is its own database: keep exactly one.
        let max_connections = if in_memory { 1 } else { max_connections };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        prepare_sqlite(conn, in_memory, "FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        let sqlite_file = (backend == Backend::Sqlite && !in_memory).then_some(options);
        let db = Self {
            pool,
            backend,
            sqlite_file,
        };
        db.migrate(data_dir.filter(|_| !in_memory)).await?;
        Ok(db)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`)
    /// so two writers queue on `busy_timeout` instead of failing when one upgrades its lock.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// A connection outside the pool for the trace writer, when traces may commit with less
    /// than a full sync and the database is a SQLite file (`synchronous` is per connection, so
    /// registry writes on the pool keep `FULL`). `None`: write traces through the pool.
    pub async fn trace_connection(
        &self,
        sync: TraceSync,
    ) -> Result<Option<AnyConnection>, sqlx::Error> {
        let Some(options) = self
            .sqlite_file
            .as_ref()
            .filter(|_| sync == TraceSync::Normal)
        else {
            return Ok(None);
        };
        let mut conn = options.connect().await?;
        prepare_sqlite(&mut conn, false, "NORMAL").await?;
        Ok(Some(conn))
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    async fn migrate(&self, backup_dir: Option<&std::path::Path>) -> Result<(), StorageError> {
        let migrator = self.migrator();
        if let (Backend::Sqlite, Some(dir)) = (self.backend, backup_dir) {
            self.backup_sqlite_before_migrating(migrator, dir).await?;
        }
        // The migrator takes an advisory lock on PostgreSQL, so replicas starting together
        // apply each migration once.
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Copies an existing SQLite database aside before applying new migrations to it.
    async fn backup_sqlite_before_migrating(
        &self,
        migrator: &Migrator,
        dir: &std::path::Path,
    ) -> Result<(), StorageError> {
        let has_table: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await?;
        if has_table == 0 {
            return Ok(());
        }
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        let newest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied = applied.unwrap_or(0);
        if applied >= newest {
            return Ok(());
        }
        let backup = dir.join(format!(
            "ops.db.before-migration-{newest}.{}.bak",
            unix_micros()
        ));
        tracing::info!(backup = %backup.display(), from = applied, to = newest, "backing up sqlite before migrating");
        sqlx::query("VACUUM INTO $1")
            .bind(backup.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Per-connection SQLite settings: foreign keys, waiting on the write lock, WAL for a file.
async fn prepare_sqlite(
    conn: &mut AnyConnection,
    in_memory: bool,
    synchronous: &str,
) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    if !in_memory {
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "PRAGMA synchronous = {synchronous}"
        )))
        .await?;
    }
    Ok(())
}

/// The URL without its `user:password@` part, for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Microseconds since the Unix epoch: the time unit of every timestamp column.
pub fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// In SQL, when a row with `started_at` (unix micros) and `duration_ms` finished — a trace or
/// a regression run; `table` is the alias to qualify the columns with, or "".
pub fn finished_at(table: &str) -> String {
    let qualify = if table.is_empty() {
        String::new()
    } else {
        format!("{table}.")
    };
    format!("({qualify}started_at + CAST({qualify}duration_ms * 1000 AS BIGINT))")
}

/// One offset page of a listing: `page_size` (0 for the default, capped) and the
/// `next_page_token` of a previous response (the offset of the next page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub size: i64,
    pub offset: i64,
}

/// What a listing says about a `page_token` it did not hand out.
pub const PAGE_TOKEN_MESSAGE: &str = "expected the next_page_token of a previous response";

impl Page {
    /// The page asked for; `Err` carries [`PAGE_TOKEN_MESSAGE`] for a token that is no offset.
    pub fn parse(
        page_size: u32,
        page_token: &str,
        default: i64,
        max: i64,
    ) -> Result<Self, &'static str> {
        let size = match i64::from(page_size) {
            0 => default,
            n => n.min(max),
        };
        let offset = if page_token.is_empty() {
            0
        } else {
            page_token.parse().map_err(|_| PAGE_TOKEN_MESSAGE)?
        };
        Ok(Self { size, offset })
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn limit(&self) -> i64 {
        self.size + 1
    }

    /// Drops the extra row fetched by [`Page::limit`]; the next page's token, or "" at the end.
    pub fn finish<T>(&self, rows: &mut Vec<T>) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            (self.offset + self.size).to_string()
        } else {
            String::new()
        }
    }
}

/// `($1, $2, …), (…)` for `rows` rows of `columns` binds each.
pub fn values_clause(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let binds: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", binds.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A query whose binds are added row by row.
pub type RowsQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A value bound to a [`Filtered`] statement.
#[derive(Debug, Clone)]
pub enum Bound {
    Text(String),
    Number(i64),
}

/// A statement and its binds, numbered as clauses are appended (for listings whose filters
/// are optional).
#[derive(Debug, Clone)]
pub struct Filtered {
    pub sql: String,
    pub binds: Vec<Bound>,
}

impl Filtered {
    /// Appends `clause`, its `?` becoming the next `$n`.
    pub fn push(&mut self, clause: &str, bound: Bound) {
        self.binds.push(bound);
        self.sql
            .push_str(&clause.replace('?', &format!("${}", self.binds.len())));
    }

    /// The statement with its binds.
    pub fn query(self) -> RowsQuery<'static> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for bound in self.binds {
            query = match bound {
                Bound::Text(t) => query.bind(t),
                Bound::Number(n) => query.bind(n),
            };
        }
        query
    }
}

/// Most binds in one statement: below SQLite's (32766) and PostgreSQL's (65535) limits.
pub const MAX_BINDS: usize = 30_000;

/// `INSERT INTO {into} VALUES (…), (…) {tail}` for every row, binding each row's `columns`
/// values with `bind`: one statement per chunk instead of a round trip per row.
pub async fn insert_rows<'q, R>(
    conn: &mut sqlx::AnyConnection,
    into: &str,
    tail: &str,
    columns: usize,
    rows: &'q [R],
    mut bind: impl FnMut(RowsQuery<'q>, &'q R) -> RowsQuery<'q>,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks((MAX_BINDS / columns).max(1)) {
        let sql = format!(
            "INSERT INTO {into} VALUES {} {tail}",
            values_clause(chunk.len(), columns)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_parse_their_token_and_say_whether_more_follow() {
        assert_eq!(
            Page::parse(0, "", 50, 500),
            Ok(Page {
                size: 50,
                offset: 0
            })
        );
        let page = Page::parse(900, "20", 50, 500).unwrap_or(Page { size: 0, offset: 0 });
        assert_eq!((page.size, page.offset, page.limit()), (500, 20, 501));
        assert_eq!(Page::parse(5, "x", 50, 500), Err(PAGE_TOKEN_MESSAGE));
        let page = Page { size: 2, offset: 4 };
        let mut rows = vec![1, 2, 3];
        assert_eq!(page.finish(&mut rows), "6");
        assert_eq!(rows, [1, 2]);
        assert_eq!(page.finish(&mut rows), "");
    }

    #[test]
    fn values_clauses_number_binds_row_by_row() {
        assert_eq!(values_clause(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_clause(1, 1), "($1)");
    }

    async fn synchronous(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(conn)
            .await
    }

    #[tokio::test]
    async fn only_the_trace_connection_skips_the_fsync() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ops.db").display());
        let db = Db::open(&url, 2, Some(dir.path())).await?;
        let mut pooled = db.pool().acquire().await?;
        // 2 = FULL, 1 = NORMAL (SQLite's numbering).
        assert_eq!(
            synchronous(&mut pooled).await?,
            2,
            "registry writes are fsynced"
        );
        let mut traces = db
            .trace_connection(TraceSync::Normal)
            .await?
            .ok_or("a file database gets a trace connection of its own")?;
        assert_eq!(synchronous(&mut traces).await?, 1);
        assert!(
            db.trace_connection(TraceSync::Full).await?.is_none(),
            "full sync writes traces through the pool"
        );
        let memory = Db::open("sqlite::memory:", 1, None).await?;
        assert!(
            memory.trace_connection(TraceSync::Normal).await?.is_none(),
            "an in-memory database is one connection"
        );
        Ok(())
    }

    #[test]
    fn unsupported_urls_are_reported_without_credentials() {
        assert_eq!(
            redact_url("mysql://root:hunter2@db/ops"),
            "mysql://***@db/ops"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[tokio::test]
    async fn in_memory_sqlite_migrates_and_creates_every_table() -> Result<(), StorageError> {
        let db = Db::open("sqlite::memory:", 4, None).await?;
        for table in [
            "assets",
            "asset_drafts",
            "asset_versions",
            "asset_audit",
            "traces",
            "trace_assets",
            "tasks",
            "user_queries",
            "execution_plans",
            "subtasks",
            "constraint_violations",
            "user_feedback",
            "performance_metrics",
            "alert_configs",
            "llm_usage_log",
            "golden_queries",
            "regression_runs",
            "api_keys",
            "audit_log",
            "rate_counts",
        ] {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(table)
            .fetch_one(db.pool())
            .await?;
            assert_eq!(n, 1, "table {table} missing");
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_file_database_is_backed_up_before_a_pending_migration()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ops.db").display());
        let db = Db::open(&url, 2, Some(dir.path())).await?;
        // Pretend the newest migration (0009: the usage log's columns) has not been applied.
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version >= 9")
            .execute(db.pool())
            .await?;
        sqlx::query("DROP INDEX llm_usage_by_tenant_time")
            .execute(db.pool())
            .await?;
        for undo in [
            "ALTER TABLE llm_usage_log DROP COLUMN purpose",
            "ALTER TABLE llm_usage_log DROP COLUMN provider",
            "ALTER TABLE llm_usage_log DROP COLUMN cost_usd",
            "ALTER TABLE llm_usage_log DROP COLUMN outcome",
            "ALTER TABLE llm_usage_log DROP COLUMN error",
        ] {
            sqlx::query(undo).execute(db.pool()).await?;
        }
        db.close().await;
        let reopened = Db::open(&url, 2, Some(dir.path())).await?;
        let backups: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("before-migration"))
            .collect();
        assert_eq!(backups.len(), 1, "exactly one backup expected");
        reopened.close().await;
        Ok(())
    }
}
