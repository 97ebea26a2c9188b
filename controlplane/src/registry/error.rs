//! The registry's closed set of errors and their one mapping to `tonic::Status`.

use ops_proto::v1::Violation;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request itself is malformed; every violation names its field.
    #[error("{}", summarize(.0))]
    InvalidArgument(Vec<Violation>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but the stored state does not allow it (stale revision,
    /// nothing to publish, an unresolvable reference, an archived asset).
    #[error("{message}")]
    FailedPrecondition {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    Unimplemented(String),
    /// A dependency (an executor, a source) cannot be reached; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("internal: {0}")]
    Internal(String),
    #[error(transparent)]
    Plugin(#[from] crate::plugins::PluginError),
}

pub type RegistryResult<T> = Result<T, RegistryError>;

impl RegistryError {
    pub fn invalid(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![super::validate::violation(
            field, "request", rule, message,
        )])
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            message: message.into(),
            violations: Vec::new(),
        }
    }
}

fn summarize(violations: &[Violation]) -> String {
    let blocking: Vec<&Violation> = violations.iter().filter(|v| v.blocking).collect();
    let shown: Vec<String> = blocking
        .iter()
        .take(3)
        .map(|v| format!("{}: {} (rule {})", v.field, v.message, v.rule))
        .collect();
    let mut text = shown.join("; ");
    if blocking.len() > 3 {
        text.push_str(&format!("; and {} more", blocking.len() - 3));
    }
    if text.is_empty() {
        "invalid argument".to_owned()
    } else {
        text
    }
}

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations.iter().filter(|v| v.blocking) {
                    details.add_bad_request_violation(
                        v.field.clone(),
                        format!("{} (rule {})", v.message, v.rule),
                    );
                }
                Status::with_error_details(Code::InvalidArgument, summarize(&violations), details)
            }
            RegistryError::NotFound(message) => Status::not_found(message),
            RegistryError::AlreadyExists(message) => Status::already_exists(message),
            RegistryError::FailedPrecondition {
                message,
                violations,
            } => {
                if violations.is_empty() {
                    return Status::failed_precondition(message);
                }
                let mut details = ErrorDetails::new();
                for v in violations.iter().filter(|v| v.blocking) {
                    details.add_precondition_failure_violation(
                        v.rule.clone(),
                        v.field.clone(),
                        v.message.clone(),
                    );
                }
                let message = format!("{message}: {}", summarize(&violations));
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            RegistryError::Unimplemented(message) => Status::unimplemented(message),
            RegistryError::Unavailable(message) => Status::unavailable(message),
            RegistryError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            RegistryError::Storage(error) => {
                // Storage details stay in the server log; callers get a stable message.
                tracing::error!(error = %error, "registry storage error");
                if matches!(error, sqlx::Error::PoolTimedOut) {
                    Status::unavailable("registry storage is busy; retry shortly")
                } else {
                    Status::internal("registry storage error; see the opsd log")
                }
            }
            RegistryError::Internal(message) => {
                tracing::error!(error = %message, "registry internal error");
                Status::internal(format!("internal error: {message}"))
            }
            RegistryError::Plugin(error) => error.into(),
        }
    }
}
