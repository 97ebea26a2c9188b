//! Errors of the pipeline service: a small closed set, mapped to gRPC codes in one place.
//!
//! A question the pipeline can answer — even with "this is missing" or "this is refused" — is
//! never an error: it is an answer with a trace. These are the failures of the service itself.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request is malformed; `field` names the request field.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The tenant's assets do not allow answering (no catalog, a broken planner asset).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The Policy's rate limit refused the request.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (executor, source) cannot be reached; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error(transparent)]
    Registry(#[from] crate::registry::error::RegistryError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<PipelineError> for Status {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::InvalidArgument { field, message } => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: {message}"),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            PipelineError::FailedPrecondition(m) => Status::failed_precondition(m),
            PipelineError::ResourceExhausted(m) => Status::resource_exhausted(m),
            PipelineError::Unavailable(m) => Status::unavailable(m),
            PipelineError::NotFound(m) => Status::not_found(m),
            PipelineError::Registry(e) => e.into(),
            e @ (PipelineError::Storage(_) | PipelineError::Internal(_)) => {
                tracing::error!(error = %e, "pipeline failure");
                Status::internal(e.to_string())
            }
        }
    }
}
