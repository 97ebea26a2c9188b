//! OPS executor sidecars. The control plane never touches customer data: EXECUTE goes over gRPC
//! to these processes, one binary per kind (SQL, metrics, graph) on this shared library.

pub mod config;
pub mod error;
pub mod graph;
pub mod ident;
pub mod metrics;
pub mod scan;
pub mod server;
pub mod service;
pub mod source;
pub mod sql;
pub mod values;

pub use service::LocalExecutor;
