//! The executor service as a tonic-free trait, in the manner of quickwit-proto: the control plane
//! talks to [`ExecutorApi`], which is either a sidecar behind a gRPC channel or an in-process
//! implementation, so the same code serves tests and production.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic_types::{ErrorDetails, StatusExt};

use crate::executor::{
    DescribeRequest, DescribeResponse, ExecuteRequest, ExecuteResponse, ExecutorKind,
    ScanSchemaRequest, ScanSchemaResponse, TestConnectionRequest, TestConnectionResponse,
    executor_server,
};

/// The line a sidecar prints on stdout once it accepts connections, followed by its address;
/// supervisors read it to learn the bound port.
pub const LISTENING_PREFIX: &str = "listening on ";

/// Metadata header carrying the trace id of the run a call belongs to.
pub const TRACE_ID_HEADER: &str = "x-ops-trace-id";

impl ExecutorKind {
    /// The three kinds a control plane runs.
    pub const ALL: [ExecutorKind; 3] = [
        ExecutorKind::Sql,
        ExecutorKind::Metrics,
        ExecutorKind::Graph,
    ];

    /// Short name, as in configuration keys (`sql_endpoints`) and logs.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Sql => "sql",
            ExecutorKind::Metrics => "metrics",
            ExecutorKind::Graph => "graph",
            ExecutorKind::Unspecified => "unspecified",
        }
    }

    /// The sidecar binary that serves this kind.
    pub fn binary(self) -> &'static str {
        match self {
            ExecutorKind::Sql | ExecutorKind::Unspecified => "ops-sql-executor",
            ExecutorKind::Metrics => "ops-metrics-executor",
            ExecutorKind::Graph => "ops-graph-executor",
        }
    }
}

/// Per-call context that travels with every executor call.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// Time left for the call; the executor turns it into statement timeouts.
    pub timeout: Option<Duration>,
    /// Trace id for log correlation.
    pub trace_id: String,
}

/// The closed set of executor error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorErrorKind {
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
    NotFound,
    DeadlineExceeded,
    ResourceExhausted,
    Unavailable,
    Internal,
}

/// An executor failure: a kind, a message a person can act on and, for invalid input, the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecutorError {
    pub kind: ExecutorErrorKind,
    pub message: String,
    pub field: Option<String>,
}

impl ExecutorError {
    pub fn new(kind: ExecutorErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ExecutorErrorKind::InvalidArgument,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ExecutorErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ExecutorErrorKind::Internal, message)
    }

    /// Whether the same read may succeed if sent again: later, to another endpoint, or to
    /// another source. The one rule for the client's retries, EXECUTE's failover and the
    /// control loop's `tool_error_retryable`. Executor calls are read-only, so retrying is safe;
    /// a deadline that ran out may not run out on a less loaded peer, and callers stop when
    /// their own budget is spent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ExecutorErrorKind::Unavailable
                | ExecutorErrorKind::ResourceExhausted
                | ExecutorErrorKind::DeadlineExceeded
        )
    }

    /// A failure of the source's own settings (a credential reference that does not resolve):
    /// another source may not share it, so failover tries the next one.
    pub fn is_source_setting(&self) -> bool {
        self.kind == ExecutorErrorKind::FailedPrecondition
            && self
                .field
                .as_deref()
                .is_some_and(|f| f.starts_with("source."))
    }

    pub fn code(&self) -> tonic::Code {
        match self.kind {
            ExecutorErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ExecutorErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
            ExecutorErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ExecutorErrorKind::NotFound => tonic::Code::NotFound,
            ExecutorErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ExecutorErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ExecutorErrorKind::Unavailable => tonic::Code::Unavailable,
            ExecutorErrorKind::Internal => tonic::Code::Internal,
        }
    }
}

impl From<ExecutorError> for tonic::Status {
    fn from(error: ExecutorError) -> Self {
        match &error.field {
            Some(field) => tonic::Status::with_error_details(
                error.code(),
                error.message.clone(),
                ErrorDetails::with_bad_request_violation(field.clone(), error.message.clone()),
            ),
            None => tonic::Status::new(error.code(), error.message),
        }
    }
}

impl From<tonic::Status> for ExecutorError {
    fn from(status: tonic::Status) -> Self {
        let kind = match status.code() {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => {
                ExecutorErrorKind::InvalidArgument
            }
            tonic::Code::FailedPrecondition => ExecutorErrorKind::FailedPrecondition,
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                ExecutorErrorKind::PermissionDenied
            }
            tonic::Code::NotFound => ExecutorErrorKind::NotFound,
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                ExecutorErrorKind::DeadlineExceeded
            }
            tonic::Code::ResourceExhausted => ExecutorErrorKind::ResourceExhausted,
            tonic::Code::Unavailable | tonic::Code::Aborted => ExecutorErrorKind::Unavailable,
            _ => ExecutorErrorKind::Internal,
        };
        let field = status
            .get_details_bad_request()
            .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()));
        Self {
            kind,
            message: status.message().to_owned(),
            field,
        }
    }
}

/// The executor service, free of transport concerns.
#[async_trait::async_trait]
pub trait ExecutorApi: Send + Sync + 'static {
    async fn execute(
        &self,
        ctx: CallContext,
        request: ExecuteRequest,
    ) -> Result<ExecuteResponse, ExecutorError>;
    async fn describe(&self, ctx: CallContext) -> Result<DescribeResponse, ExecutorError>;
    async fn test_connection(
        &self,
        ctx: CallContext,
        request: TestConnectionRequest,
    ) -> Result<TestConnectionResponse, ExecutorError>;
    async fn scan_schema(
        &self,
        ctx: CallContext,
        request: ScanSchemaRequest,
    ) -> Result<ScanSchemaResponse, ExecutorError>;
}

/// Serves any [`ExecutorApi`] as the generated `ops.executor.v1.Executor` gRPC service.
pub struct ExecutorGrpcAdapter<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> std::fmt::Debug for ExecutorGrpcAdapter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorGrpcAdapter")
    }
}

fn call_context(metadata: &MetadataMap) -> CallContext {
    CallContext {
        timeout: metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout),
        trace_id: metadata
            .get(TRACE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect(),
    }
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[async_trait::async_trait]
impl<T: ExecutorApi + ?Sized> executor_server::Executor for ExecutorGrpcAdapter<T> {
    async fn execute(
        &self,
        request: tonic::Request<ExecuteRequest>,
    ) -> Result<tonic::Response<ExecuteResponse>, tonic::Status> {
        let ctx = call_context(request.metadata());
        Ok(tonic::Response::new(
            self.0.execute(ctx, request.into_inner()).await?,
        ))
    }

    async fn describe(
        &self,
        request: tonic::Request<DescribeRequest>,
    ) -> Result<tonic::Response<DescribeResponse>, tonic::Status> {
        let ctx = call_context(request.metadata());
        Ok(tonic::Response::new(self.0.describe(ctx).await?))
    }

    async fn test_connection(
        &self,
        request: tonic::Request<TestConnectionRequest>,
    ) -> Result<tonic::Response<TestConnectionResponse>, tonic::Status> {
        let ctx = call_context(request.metadata());
        Ok(tonic::Response::new(
            self.0.test_connection(ctx, request.into_inner()).await?,
        ))
    }

    async fn scan_schema(
        &self,
        request: tonic::Request<ScanSchemaRequest>,
    ) -> Result<tonic::Response<ScanSchemaResponse>, tonic::Status> {
        let ctx = call_context(request.metadata());
        Ok(tonic::Response::new(
            self.0.scan_schema(ctx, request.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_parse() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
    }

    #[test]
    fn status_round_trip_keeps_kind_and_field() {
        let error = ExecutorError::invalid("sql.sql", "two statements");
        let back = ExecutorError::from(tonic::Status::from(error.clone()));
        assert_eq!(back, error);
        assert!(ExecutorError::unavailable("down").is_retryable());
        assert!(!ExecutorError::invalid("x", "y").is_retryable());
    }
}
