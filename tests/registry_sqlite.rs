//! The registry suite on SQLite (the embedded default).

mod common;
#[path = "registry_cases.rs"]
mod registry_cases;
mod suites {
    pub mod registry;
}

registry_suite!(crate::common::Backend::Sqlite);
