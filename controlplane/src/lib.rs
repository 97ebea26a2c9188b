//! The OPS control plane (`opsd`): the asset registry, the five-stage pipeline and traces.
//!
//! One module per stage (`route_plan`, `validate`, …) and per service (`registry`, …).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
#[cfg(test)]
mod docs_reference;
pub mod execute;
pub mod http_client;
pub mod llm;
pub mod metrics;
pub mod model;
pub mod opsctl;
pub mod pipeline;
pub mod plugins;
pub mod registry;
pub mod route_plan;
pub mod secrets;
pub mod server;
pub mod services;
pub mod storage;
pub mod telemetry;
pub mod trace;
pub mod validate;
pub mod watch;
