//! The plugin host's errors: a closed set, each with one gRPC code.

use tonic::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// An upload (or a stored component) that is not an acceptable plugin.
    #[error("{field}: {message}")]
    InvalidPlugin {
        field: &'static str,
        message: String,
    },
    #[error("plugin {digest} is not uploaded for this tenant")]
    NotFound { digest: String },
    #[error("plugin {plugin} ran past its cpu budget of {budget_ms} ms and was stopped")]
    DeadlineExceeded { plugin: String, budget_ms: u32 },
    #[error("plugin {plugin} tried to grow its memory past the limit of {limit_bytes} bytes")]
    MemoryExhausted { plugin: String, limit_bytes: u64 },
    #[error("plugin {plugin} overflowed its stack of {limit_bytes} bytes (runaway recursion?)")]
    StackExhausted { plugin: String, limit_bytes: usize },
    /// A trap: a panic (Rust guests abort with `unreachable`), an out-of-bounds access...
    #[error("plugin {plugin} trapped: {message}")]
    Trapped {
        plugin: String,
        message: String,
        backtrace: String,
    },
    #[error("plugin {plugin} returned malformed output: {path}: {message}")]
    MalformedOutput {
        plugin: String,
        path: String,
        message: String,
    },
    /// The plugin returned its own error (bad config, input it cannot map).
    #[error("plugin {plugin} refused: {code}: {message}")]
    Refused {
        plugin: String,
        code: String,
        message: String,
    },
    #[error(
        "plugin {plugin} is disabled for {retry_after_ms} ms after {failures} consecutive failures"
    )]
    CircuitOpen {
        plugin: String,
        failures: u32,
        retry_after_ms: u64,
    },
    #[error("plugin host: {0}")]
    Internal(String),
}

pub type PluginResult<T> = Result<T, PluginError>;

impl PluginError {
    /// Failures that count against a plugin version's circuit breaker: the plugin misbehaved.
    /// A refusal is the plugin working as written, and an open circuit is not a new failure.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Self::DeadlineExceeded { .. }
                | Self::MemoryExhausted { .. }
                | Self::StackExhausted { .. }
                | Self::Trapped { .. }
                | Self::MalformedOutput { .. }
        )
    }

    /// How a call ended, as the plugin metrics label it.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidPlugin { .. } => "invalid",
            Self::NotFound { .. } => "not_found",
            Self::DeadlineExceeded { .. } => "deadline",
            Self::MemoryExhausted { .. } => "memory",
            Self::StackExhausted { .. } => "stack",
            Self::Trapped { .. } => "trap",
            Self::MalformedOutput { .. } => "malformed",
            Self::Refused { .. } => "refused",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Internal(_) => "internal",
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidPlugin { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::MemoryExhausted { .. } | Self::StackExhausted { .. } => Code::ResourceExhausted,
            Self::Refused { .. } => Code::FailedPrecondition,
            Self::CircuitOpen { .. } => Code::Unavailable,
            Self::Trapped { .. } | Self::MalformedOutput { .. } | Self::Internal(_) => {
                Code::Internal
            }
        }
    }

    /// The guest backtrace of a trap, for stage diagnostics.
    pub fn backtrace(&self) -> Option<&str> {
        match self {
            Self::Trapped { backtrace, .. } if !backtrace.is_empty() => Some(backtrace),
            _ => None,
        }
    }
}
