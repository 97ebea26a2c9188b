//! Throw-away databases on the local PostgreSQL and MariaDB/MySQL servers, for tests of this
//! and other crates.
//!
//! The admin URLs come from `OPS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `OPS_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). Each call creates its own database `ops_ds_<uuid>`, so
//! tests can run in parallel. Drop it afterwards ([`drop_postgres`], [`drop_mysql`] or
//! `cleanup()`); a test that panics before that leaves it behind (`ops_ds_…` names make such
//! leftovers easy to find).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ops_datasets::DatasetError> {
//! let db = ops_datasets::testing::loaded_postgres().await?;
//! let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ci_master").fetch_one(&db.pool).await
//!     .map_err(|e| ops_datasets::DatasetError::Database { context: "count".into(), source: e })?;
//! assert_eq!(n, 64);
//! db.cleanup().await?;
//! # Ok(()) }
//! ```

use sqlx::mysql::{MySqlConnection, MySqlPoolOptions};
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlPool, PgPool};

use crate::{DatasetError, LoadReport};

/// Environment variable with the PostgreSQL admin URL.
pub const POSTGRES_URL_ENV: &str = "OPS_TEST_POSTGRES_URL";
/// Used when [`POSTGRES_URL_ENV`] is unset or empty.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Environment variable with the MariaDB/MySQL admin URL.
pub const MYSQL_URL_ENV: &str = "OPS_TEST_MYSQL_URL";
/// Used when [`MYSQL_URL_ENV`] is unset or empty.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Connections in the pools handed out here.
const POOL_SIZE: u32 = 5;

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The PostgreSQL admin URL ([`POSTGRES_URL_ENV`] or [`DEFAULT_POSTGRES_URL`]).
pub fn postgres_admin_url() -> String {
    env_or(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
}

/// The MariaDB/MySQL admin URL ([`MYSQL_URL_ENV`] or [`DEFAULT_MYSQL_URL`]).
pub fn mysql_admin_url() -> String {
    env_or(MYSQL_URL_ENV, DEFAULT_MYSQL_URL)
}

/// A fresh database name, `ops_ds_<uuid without hyphens>`.
pub fn fresh_database_name() -> String {
    format!("ops_ds_{}", uuid::Uuid::new_v4().simple())
}

fn check_name(name: &str) -> Result<(), DatasetError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DatasetError::InvalidDatabaseName(name.to_owned()))
    }
}

/// `url` with its password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

/// `url` (`scheme://[user[:password]@]host[:port][/database][?params]`) pointing at database
/// `database` instead; query parameters are kept.
pub fn url_with_database(url: &str, database: &str) -> Result<String, DatasetError> {
    let invalid = || DatasetError::InvalidUrl(redact_url(url));
    let scheme_end = url.find("://").ok_or_else(invalid)?;
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[authority_end..];
    let query = after.find('?').map_or("", |q| &after[q..]);
    Ok(format!(
        "{}{}/{}{}",
        &url[..rest_start],
        &rest[..authority_end],
        database,
        query
    ))
}

/// Creates a fresh, empty PostgreSQL database and returns a pool on it, its name and the
/// admin URL it was created through (pass both to [`drop_postgres`]).
pub async fn fresh_postgres() -> Result<(PgPool, String, String), DatasetError> {
    let admin_url = postgres_admin_url();
    let name = fresh_database_name();
    let shown = redact_url(&admin_url);
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .map_err(DatasetError::db(format!(
            "connecting to postgres at {shown}"
        )))?;
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" ENCODING 'UTF8'"
        ))))
        .await
        .map_err(DatasetError::db(format!(
            "creating postgres database {name}"
        )))?;
    admin
        .close()
        .await
        .map_err(DatasetError::db("closing the postgres admin connection"))?;
    let url = url_with_database(&admin_url, &name)?;
    match PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(&url)
        .await
    {
        Ok(pool) => Ok((pool, name, admin_url)),
        Err(source) => {
            let _ = drop_database_postgres(&admin_url, &name).await;
            Err(DatasetError::Database {
                context: format!("connecting to postgres database {name}"),
                source,
            })
        }
    }
}

async fn drop_database_postgres(admin_url: &str, name: &str) -> Result<(), DatasetError> {
    check_name(name)?;
    let mut admin = PgConnection::connect(admin_url)
        .await
        .map_err(DatasetError::db(format!(
            "connecting to postgres at {}",
            redact_url(admin_url)
        )))?;
    // FORCE: also ends sessions that other pools (e.g. of a server under test) still hold.
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        ))))
        .await
        .map_err(DatasetError::db(format!(
            "dropping postgres database {name}"
        )))?;
    admin
        .close()
        .await
        .map_err(DatasetError::db("closing the postgres admin connection"))
}

/// Closes `pool` and drops the database `name` (from [`fresh_postgres`]).
pub async fn drop_postgres(pool: PgPool, name: &str, admin_url: &str) -> Result<(), DatasetError> {
    pool.close().await;
    drop_database_postgres(admin_url, name).await
}

/// Creates a fresh, empty MariaDB/MySQL database (`CHARACTER SET utf8mb4`) and returns a pool
/// on it, its name and the admin URL it was created through (pass both to [`drop_mysql`]).
pub async fn fresh_mysql() -> Result<(MySqlPool, String, String), DatasetError> {
    let admin_url = mysql_admin_url();
    let name = fresh_database_name();
    let shown = redact_url(&admin_url);
    let mut admin = MySqlConnection::connect(&admin_url)
        .await
        .map_err(DatasetError::db(format!("connecting to mysql at {shown}")))?;
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        ))))
        .await
        .map_err(DatasetError::db(format!("creating mysql database {name}")))?;
    admin
        .close()
        .await
        .map_err(DatasetError::db("closing the mysql admin connection"))?;
    let url = url_with_database(&admin_url, &name)?;
    match MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(&url)
        .await
    {
        Ok(pool) => Ok((pool, name, admin_url)),
        Err(source) => {
            let _ = drop_database_mysql(&admin_url, &name).await;
            Err(DatasetError::Database {
                context: format!("connecting to mysql database {name}"),
                source,
            })
        }
    }
}

async fn drop_database_mysql(admin_url: &str, name: &str) -> Result<(), DatasetError> {
    check_name(name)?;
    let mut admin = MySqlConnection::connect(admin_url)
        .await
        .map_err(DatasetError::db(format!(
            "connecting to mysql at {}",
            redact_url(admin_url)
        )))?;
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{name}`"
        ))))
        .await
        .map_err(DatasetError::db(format!("dropping mysql database {name}")))?;
    admin
        .close()
        .await
        .map_err(DatasetError::db("closing the mysql admin connection"))
}

/// Closes `pool` and drops the database `name` (from [`fresh_mysql`]).
pub async fn drop_mysql(pool: MySqlPool, name: &str, admin_url: &str) -> Result<(), DatasetError> {
    pool.close().await;
    drop_database_mysql(admin_url, name).await
}

/// A fresh PostgreSQL database with plant-ops loaded. Call [`LoadedPostgres::cleanup`] at the
/// end of the test.
#[derive(Debug)]
pub struct LoadedPostgres {
    pub pool: PgPool,
    /// The database name, `ops_ds_<uuid>`.
    pub db_name: String,
    /// A URL of the database (the admin URL's credentials and parameters), for code under test
    /// that opens its own connections.
    pub url: String,
    /// The admin URL the database was created through.
    pub admin_url: String,
    pub report: LoadReport,
}

impl LoadedPostgres {
    /// Closes the pool and drops the database.
    pub async fn cleanup(self) -> Result<(), DatasetError> {
        drop_postgres(self.pool, &self.db_name, &self.admin_url).await
    }
}

/// A fresh MariaDB/MySQL database with plant-ops loaded. Call [`LoadedMySql::cleanup`] at
/// the end of the test.
#[derive(Debug)]
pub struct LoadedMySql {
    pub pool: MySqlPool,
    /// The database name, `ops_ds_<uuid>`.
    pub db_name: String,
    /// A URL of the database (the admin URL's credentials and parameters).
    pub url: String,
    /// The admin URL the database was created through.
    pub admin_url: String,
    pub report: LoadReport,
}

impl LoadedMySql {
    /// Closes the pool and drops the database.
    pub async fn cleanup(self) -> Result<(), DatasetError> {
        drop_mysql(self.pool, &self.db_name, &self.admin_url).await
    }
}

/// [`fresh_postgres`] + [`crate::load_postgres`]; the database is dropped again if loading
/// fails.
pub async fn loaded_postgres() -> Result<LoadedPostgres, DatasetError> {
    let (pool, db_name, admin_url) = fresh_postgres().await?;
    match crate::load_postgres(&pool).await {
        Ok(report) => Ok(LoadedPostgres {
            url: url_with_database(&admin_url, &db_name)?,
            pool,
            db_name,
            admin_url,
            report,
        }),
        Err(e) => {
            let _ = drop_postgres(pool, &db_name, &admin_url).await;
            Err(e)
        }
    }
}

/// [`fresh_mysql`] + [`crate::load_mysql`]; the database is dropped again if loading fails.
pub async fn loaded_mysql() -> Result<LoadedMySql, DatasetError> {
    let (pool, db_name, admin_url) = fresh_mysql().await?;
    match crate::load_mysql(&pool).await {
        Ok(report) => Ok(LoadedMySql {
            url: url_with_database(&admin_url, &db_name)?,
            pool,
            db_name,
            admin_url,
            report,
        }),
        Err(e) => {
            let _ = drop_mysql(pool, &db_name, &admin_url).await;
            Err(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = |url, db| url_with_database(url, db).expect("url");
        assert_eq!(
            u("postgres://postgres@127.0.0.1:5432/postgres", "ops_ds_x"),
            "postgres://postgres@127.0.0.1:5432/ops_ds_x"
        );
        assert_eq!(
            u("mysql://root:pw@localhost/test?ssl-mode=disabled", "d"),
            "mysql://root:pw@localhost/d?ssl-mode=disabled"
        );
        assert_eq!(u("postgres://h:5432", "d"), "postgres://h:5432/d");
        assert_eq!(
            u("postgres://h?sslmode=disable", "d"),
            "postgres://h/d?sslmode=disable"
        );
        assert!(url_with_database("nonsense", "d").is_err());
        assert_eq!(
            redact_url("mysql://root:secret@localhost:3306/test"),
            "mysql://root:***@localhost:3306/test"
        );
        assert_eq!(
            redact_url("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
    }

    #[test]
    fn names() {
        let name = fresh_database_name();
        assert_eq!(name.len(), "ops_ds_".len() + 32);
        check_name(&name).expect("valid");
        assert!(check_name("x\"; DROP").is_err());
        assert!(check_name("").is_err());
    }
}
