//! The one failover path for every read a run makes — EXECUTE's tasks and the snapshot's
//! knowledge reads: the primary source first, then the Policy's fallback sources of the same
//! dialect (a generated statement is in the primary's dialect), with sources that just failed
//! tried last. A source is left for the next one only on a retryable failure or a failure of
//! its own settings; any other error is the request's and is returned at once.

use std::time::{Duration, Instant};

use ops_proto::executor::{ExecuteRequest, ExecuteResponse, execute_request};
use ops_proto::executor_api::{CallContext, ExecutorApi, ExecutorError, ExecutorErrorKind};

use super::ExecutorClient;
use super::source_health::SourceHealth;
use crate::model::snapshot::SourceBinding;

/// The sources to try, in order: the primary, then same-dialect fallbacks, healthy ones first.
pub fn chain<'a>(
    primary: &'a SourceBinding,
    fallbacks: &'a [SourceBinding],
    health: &SourceHealth,
) -> Vec<&'a SourceBinding> {
    let sources = std::iter::once(primary)
        .chain(fallbacks.iter().filter(|f| f.dialect == primary.dialect))
        .collect();
    health.order(sources, |s| s.applied.label())
}

/// A response and the source that gave it.
#[derive(Debug)]
pub struct Answered {
    pub response: ExecuteResponse,
    /// `source:name@version` of the source that answered.
    pub source: String,
    /// Sources tried, this one included.
    pub attempts: u32,
}

/// How long one read may take.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The run's deadline; `None` leaves it to the client's default timeout.
    pub deadline: Option<Instant>,
    /// The Tool's own timeout (0 = none).
    pub timeout_ms: u32,
}

/// Sends `request` to the first source in `sources` that answers.
pub async fn execute(
    client: &ExecutorClient,
    health: &SourceHealth,
    sources: &[&SourceBinding],
    request: &execute_request::Request,
    trace_id: &str,
    budget: Budget,
) -> Result<Answered, (ExecutorError, u32)> {
    let mut attempts = 0;
    let mut last = None;
    for source in sources {
        attempts += 1;
        let timeout = match budget.deadline {
            Some(deadline) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err((
                        ExecutorError::new(
                            ExecutorErrorKind::DeadlineExceeded,
                            "the policy's time budget ran out before this tool ran",
                        ),
                        attempts,
                    ));
                }
                Some(match budget.timeout_ms {
                    0 => remaining,
                    ms => remaining.min(Duration::from_millis(u64::from(ms))),
                })
            }
            None => {
                (budget.timeout_ms > 0).then(|| Duration::from_millis(u64::from(budget.timeout_ms)))
            }
        };
        let message = ExecuteRequest {
            source: Some(source.config.clone()),
            request: Some(request.clone()),
            trace_id: trace_id.to_owned(),
        };
        let ctx = CallContext {
            timeout,
            trace_id: trace_id.to_owned(),
        };
        let label = source.applied.label();
        match client.execute(ctx, message).await {
            Ok(response) => {
                health.mark_up(&label);
                return Ok(Answered {
                    response,
                    source: label,
                    attempts,
                });
            }
            Err(e) if e.is_retryable() || e.is_source_setting() => {
                health.mark_down(&label);
                tracing::warn!(trace_id, source = %label, error = %e, "source failed; trying the policy's next source");
                last = Some(e);
            }
            Err(e) => return Err((e, attempts)),
        }
    }
    Err((
        last.unwrap_or_else(|| ExecutorError::internal("no source was tried")),
        attempts,
    ))
}
