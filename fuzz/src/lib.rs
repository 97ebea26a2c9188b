//! The fuzz targets' properties (see [`cases`]), over the planner knowledge the planner tests
//! build (`tests/planner_support`).

#[path = "../../tests/planner_support/mod.rs"]
pub mod planner_support;

pub mod cases;
