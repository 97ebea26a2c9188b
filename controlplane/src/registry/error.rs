//! The registry's closed set of errors (mapped to gRPC codes in `services::status`).

use ops_proto::v1::Violation;

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

pub(crate) fn summarize(violations: &[Violation]) -> String {
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
