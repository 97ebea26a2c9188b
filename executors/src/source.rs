//! Connection pools, one per Source, and the credentials they connect with.
//!
//! A pool is keyed by the source id and a digest of its connection settings, so a changed Source
//! gets a new pool while an unchanged one reuses its connections. Passwords are resolved from
//! their reference (`env:NAME`, `file:PATH`) only when a pool is built, are never logged, and are
//! scrubbed from every error message that leaves this crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_proto::executor::{Engine, SourceConfig};
use ops_proto::executor_api::{ExecutorError, ExecutorErrorKind};
use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::config::Limits;

/// A resolved password. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

/// Resolves a credential reference. The error names the reference kind, never its content.
pub fn resolve_secret(reference: &str) -> Result<Option<Secret>, ExecutorError> {
    if reference.is_empty() {
        return Ok(None);
    }
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map(|v| Some(Secret(v)))
            .map_err(|_| ExecutorError {
                field: Some("source.password_ref".into()),
                ..ExecutorError::new(
                    ExecutorErrorKind::FailedPrecondition,
                    format!(
                        "source.password_ref names environment variable {name}, which is not set"
                    ),
                )
            });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|v| Some(Secret(v.trim_end_matches(['\r', '\n']).to_owned())))
            .map_err(|e| ExecutorError {
                field: Some("source.password_ref".into()),
                ..ExecutorError::new(
                    ExecutorErrorKind::FailedPrecondition,
                    format!(
                        "source.password_ref names file {path}, which cannot be read: {}",
                        e.kind()
                    ),
                )
            });
    }
    Err(ExecutorError::invalid(
        "source.password_ref",
        "must be a reference, env:NAME or file:PATH (literal passwords are refused)",
    ))
}

/// A pool for one Source, typed by engine.
#[derive(Clone, Debug)]
pub enum SourcePool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

impl SourcePool {
    pub fn engine(&self) -> Engine {
        match self {
            Self::Postgres(_) => Engine::Postgres,
            Self::MySql(_) => Engine::Mysql,
            Self::Sqlite(_) => Engine::Sqlite,
        }
    }
}

/// A pool together with what is needed to report its errors safely.
#[derive(Clone, Debug)]
pub struct SourceHandle {
    pub source_id: String,
    pub pool: SourcePool,
    pub secret: Option<Secret>,
}

impl SourceHandle {
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// Maps a driver error to an executor error, with the password scrubbed from the message.
    pub fn error(&self, error: sqlx::Error) -> ExecutorError {
        let mut mapped = crate::error::from_sqlx(&self.source_id, error);
        if let Some(secret) = &self.secret {
            mapped.message = secret.scrub(&mapped.message);
        }
        mapped
    }
}

struct Entry {
    handle: SourceHandle,
    last_used: Instant,
}

/// Pools keyed by source identity and settings, at most `limits.max_pools` of them.
pub struct SourcePools {
    limits: Limits,
    pools: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for SourcePools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourcePools").finish_non_exhaustive()
    }
}

impl SourcePools {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the pool for `source`, building it (lazily connecting) on first use.
    pub fn get(&self, source: Option<&SourceConfig>) -> Result<SourceHandle, ExecutorError> {
        let source =
            source.ok_or_else(|| ExecutorError::invalid("source", "a source is required"))?;
        let key = pool_key(source);
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| ExecutorError::internal("source pool registry is poisoned"))?;
        if let Some(entry) = pools.get_mut(&key) {
            entry.last_used = Instant::now();
            return Ok(entry.handle.clone());
        }
        let handle = build(source, &self.limits)?;
        if pools.len() >= self.limits.max_pools {
            // Evict the least recently used pool; its connections close when the last
            // in-flight request holding a clone finishes.
            if let Some(oldest) = pools
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            {
                pools.remove(&oldest);
            }
        }
        tracing::info!(source_id = %source.source_id, engine = ?handle.engine(), "source pool created");
        pools.insert(
            key,
            Entry {
                handle: handle.clone(),
                last_used: Instant::now(),
            },
        );
        Ok(handle)
    }
}

fn pool_key(source: &SourceConfig) -> String {
    let mut hasher = Sha256::new();
    for part in [
        source.source_id.as_str(),
        &source.engine.to_string(),
        &source.host,
        &source.port.to_string(),
        &source.database,
        &source.path,
        &source.user,
        &source.password_ref,
        &source.tls.to_string(),
        &source.max_connections.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (k, v) in &source.options {
        hasher.update(k.as_bytes());
        hasher.update([1]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    format!("{}:{}", source.source_id, hex::encode(hasher.finalize()))
}

fn build(source: &SourceConfig, limits: &Limits) -> Result<SourceHandle, ExecutorError> {
    let engine = Engine::try_from(source.engine)
        .map_err(|_| ExecutorError::invalid("source.engine", "unknown engine"))?;
    let max_connections = match source.max_connections {
        0 => limits.max_connections_per_source,
        n => n.min(limits.max_connections_per_source),
    };
    let acquire = Duration::from_millis(limits.connect_timeout_ms);
    let secret = resolve_secret(&source.password_ref)?;
    let pool = match engine {
        Engine::Postgres => {
            let mut options = PgConnectOptions::new()
                .host(non_empty(&source.host, "source.host")?)
                .port(port(source.port, 5432)?)
                .database(non_empty(&source.database, "source.database")?)
                .application_name("ops-executor")
                .ssl_mode(if source.tls {
                    PgSslMode::Require
                } else {
                    PgSslMode::Prefer
                });
            if !source.user.is_empty() {
                options = options.username(&source.user);
            }
            if let Some(secret) = &secret {
                options = options.password(secret.expose());
            }
            SourcePool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_lazy_with(options),
            )
        }
        Engine::Mysql => {
            let mut options = MySqlConnectOptions::new()
                .host(non_empty(&source.host, "source.host")?)
                .port(port(source.port, 3306)?)
                .database(non_empty(&source.database, "source.database")?)
                .charset("utf8mb4")
                .ssl_mode(if source.tls {
                    MySqlSslMode::Required
                } else {
                    MySqlSslMode::Preferred
                });
            if !source.user.is_empty() {
                options = options.username(&source.user);
            }
            if let Some(secret) = &secret {
                options = options.password(secret.expose());
            }
            SourcePool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_lazy_with(options),
            )
        }
        Engine::Sqlite => {
            let path = non_empty(&source.path, "source.path")?;
            // Read-only at two levels: the file is opened read-only and `query_only` refuses
            // any write even through a bug elsewhere.
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                .map_err(|_| ExecutorError::invalid("source.path", "not a usable SQLite path"))?
                .read_only(true)
                .create_if_missing(false)
                .pragma("query_only", "ON");
            SourcePool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire)
                    .connect_lazy_with(options),
            )
        }
        Engine::Unspecified => {
            return Err(ExecutorError::invalid(
                "source.engine",
                "must be ENGINE_POSTGRES, ENGINE_MYSQL or ENGINE_SQLITE",
            ));
        }
    };
    Ok(SourceHandle {
        source_id: source.source_id.clone(),
        pool,
        secret,
    })
}

fn non_empty<'a>(value: &'a str, field: &str) -> Result<&'a str, ExecutorError> {
    if value.is_empty() {
        Err(ExecutorError::invalid(
            field,
            format!("{field} is required for this engine"),
        ))
    } else {
        Ok(value)
    }
}

fn port(value: u32, default: u16) -> Result<u16, ExecutorError> {
    match value {
        0 => Ok(default),
        n => u16::try_from(n)
            .map_err(|_| ExecutorError::invalid("source.port", format!("{n} is not a TCP port"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_passwords_are_refused_without_echo() {
        let error = resolve_secret("hunter2").err();
        let error = error.map(|e| e.message).unwrap_or_default();
        assert!(error.contains("env:NAME"), "{error}");
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn secrets_are_scrubbed_and_hidden_from_debug() {
        let secret = Secret("s3cr3t".into());
        assert_eq!(secret.scrub("auth s3cr3t failed"), "auth *** failed");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn changed_settings_get_a_new_pool_key() {
        let mut source = SourceConfig {
            source_id: "source:a@1".into(),
            ..Default::default()
        };
        let first = pool_key(&source);
        source.host = "other".into();
        assert_ne!(first, pool_key(&source));
    }
}
