//! The registry suite on PostgreSQL (scale-out). Needs a server: `OPS_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); each case creates its own database.

mod common;
#[path = "registry_cases.rs"]
mod registry_cases;
mod suites {
    pub mod registry;
}

registry_suite!(crate::common::Backend::Postgres);
