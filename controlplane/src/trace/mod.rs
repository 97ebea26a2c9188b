//! Execution traces: the durable record of every run (writer with group commit, the
//! orchestration mirror tables, retention) and the reads the Inspector serves.

pub mod diff;
pub mod feedback;
pub mod judge;
pub mod orchestration;
pub mod rca;
pub mod read;
pub mod rollup;
pub mod writer;

pub use ops_proto::convert::enum_slug;
use ops_proto::v1::TraceStatus;

pub use orchestration::Retention;
pub use read::TraceError;
pub use writer::{TraceWriteError, TraceWriter};

/// The status name stored beside a trace.
pub(crate) fn writer_status(status: i32) -> String {
    let status = TraceStatus::try_from(status).unwrap_or_default();
    enum_slug(status.as_str_name(), "TRACE_STATUS_")
}
