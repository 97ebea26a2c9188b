//! Errors of the pipeline service: a small closed set, mapped to gRPC codes in one place.
//!
//! A question the pipeline can answer — even with "this is missing" or "this is refused" — is
//! never an error: it is an answer with a trace. These are the failures of the service itself.

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request is malformed; `field` names the request field.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The tenant's assets do not allow answering (no catalog, a broken planner asset).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The Policy's rate limit refused the request; `retry_after`: when a retry may pass.
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// A dependency (executor, source) cannot be reached; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error(transparent)]
    Registry(#[from] crate::registry::error::RegistryError),
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    #[error("internal: {0}")]
    Internal(String),
}
