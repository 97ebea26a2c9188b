//! ROUTE+PLAN: resolving entities and planning. The planner itself lands with the pipeline.

pub mod resolver;
