//! The fuzz targets' properties. The planner's needs the control plane (and so the wasm plugin
//! build), hence its feature: `cargo +nightly fuzz run sql_guard` needs only the SQL guard;
//! the planner target is built with `--features planner`.

pub mod guard_case;

#[cfg(feature = "planner")]
#[path = "../../tests/planner_support/mod.rs"]
pub mod planner_support;

#[cfg(feature = "planner")]
pub mod planner_case;
