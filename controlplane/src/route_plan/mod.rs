//! ROUTE+PLAN: the resolver, the planner's vocabulary and the deterministic planner.

pub mod knowledge;
pub mod planner;
pub mod resolver;
pub mod text;
pub mod vocabulary;
