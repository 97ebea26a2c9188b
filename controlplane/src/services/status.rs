//! The one place the services' errors become `tonic::Status`: a closed set of codes per
//! service, field violations for bad input, and storage failures masked the same way
//! everywhere (the details go to the log, the caller gets a stable message).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::audit::store::AuditError;
use crate::auth::api_keys::ApiKeyError;
use crate::pipeline::PipelineError;
use crate::plugins::PluginError;
use crate::registry::{self, RegistryError};
use crate::trace::TraceError;
use crate::watch::WatchError;

/// A storage failure: logged with its details; the caller learns only whether retrying helps.
fn storage(service: &str, error: &sqlx::Error) -> Status {
    tracing::error!(service, error = %error, "storage error");
    if matches!(error, sqlx::Error::PoolTimedOut) {
        Status::unavailable(format!("{service} storage is busy; retry shortly"))
    } else {
        Status::internal(format!("{service} storage error; see the opsd log"))
    }
}

fn bad_request(field: String, message: String) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}

impl From<ApiKeyError> for Status {
    fn from(error: ApiKeyError) -> Self {
        match error {
            ApiKeyError::InvalidArgument { field, message } => bad_request(field, message),
            ApiKeyError::PermissionDenied(m) => Status::permission_denied(m),
            ApiKeyError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiKeyError::NotFound(m) => Status::not_found(m),
            ApiKeyError::AlreadyExists(m) => Status::already_exists(m),
            ApiKeyError::Storage(e) => storage("api keys", &e),
        }
    }
}

impl From<AuditError> for Status {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::InvalidArgument { field, message } => bad_request(field, message),
            AuditError::Storage(e) => storage("audit", &e),
        }
    }
}

impl From<PipelineError> for Status {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::InvalidArgument { field, message } => bad_request(field, message),
            PipelineError::FailedPrecondition(m) => Status::failed_precondition(m),
            PipelineError::ResourceExhausted {
                message,
                retry_after,
            } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(retry_after),
            ),
            PipelineError::Unavailable(m) => Status::unavailable(m),
            PipelineError::NotFound(m) => Status::not_found(m),
            PipelineError::Registry(e) => e.into(),
            PipelineError::Trace(e) => e.into(),
            PipelineError::Storage(e) => storage("pipeline", &e),
            PipelineError::Internal(m) => {
                tracing::error!(error = %m, "pipeline failure");
                Status::internal(format!("internal error: {m}"))
            }
        }
    }
}

impl From<WatchError> for Status {
    fn from(error: WatchError) -> Self {
        match error {
            WatchError::InvalidArgument { field, message } => bad_request(field, message),
            WatchError::NotFound(m) => Status::not_found(m),
            WatchError::AlreadyExists(m) => Status::already_exists(m),
            WatchError::Storage(e) => storage("alerts", &e),
            WatchError::Internal(m) => {
                tracing::error!(error = %m, "alerts failure");
                Status::internal("alerts internal error; see the opsd log")
            }
        }
    }
}

impl From<TraceError> for Status {
    fn from(error: TraceError) -> Self {
        match error {
            TraceError::InvalidArgument { field, message } => bad_request(field, message),
            TraceError::NotFound(m) => Status::not_found(m),
            TraceError::Storage(e) => storage("trace", &e),
            TraceError::Internal(m) => {
                tracing::error!(error = %m, "trace failure");
                Status::internal(format!("internal error: {m}"))
            }
        }
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
                Status::with_error_details(
                    Code::InvalidArgument,
                    registry::error::summarize(&violations),
                    details,
                )
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
                let message = format!("{message}: {}", registry::error::summarize(&violations));
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            RegistryError::Unimplemented(message) => Status::unimplemented(message),
            RegistryError::Unavailable(message) => Status::unavailable(message),
            RegistryError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            RegistryError::Storage(error) => storage("registry", &error),
            RegistryError::Internal(message) => {
                tracing::error!(error = %message, "registry internal error");
                Status::internal(format!("internal error: {message}"))
            }
            RegistryError::Plugin(error) => error.into(),
        }
    }
}

impl From<PluginError> for Status {
    fn from(error: PluginError) -> Self {
        let code = error.code();
        let message = error.to_string();
        match &error {
            PluginError::InvalidPlugin {
                field,
                message: why,
            } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(*field, why.clone());
                Status::with_error_details(code, message, details)
            }
            PluginError::Trapped { .. } if error.backtrace().is_some() => {
                let frames = error
                    .backtrace()
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned);
                let mut details = ErrorDetails::new();
                details.set_debug_info(frames.collect::<Vec<_>>(), message.clone());
                Status::with_error_details(code, message, details)
            }
            _ => Status::new(code, message),
        }
    }
}
