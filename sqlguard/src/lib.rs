//! The SQL guard, self-contained: nothing here knows about assets, tenants' data or gRPC.
//!
//! `sql_guard` checks a statement against the allowlist; `sql_prepare` then scopes it to the
//! caller's tenant, clamps it to the Policy's row limit, numbers its binds and regenerates the
//! text that alone executes; `sql_build` is how the planner writes SQL (as an AST).

pub mod sql_build;
pub mod sql_guard;
pub mod sql_prepare;
