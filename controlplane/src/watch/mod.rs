//! What opsd runs on its own, around the pipeline: the Policy's scheduled regression runs
//! (`schedule`), alert rules evaluated over the tenant's runs (`alerts`) and their webhook
//! delivery with retries and records (`webhook`), and the per-minute performance records
//! (`rollup`). Replicas share the work through the database: a cron occurrence and an alert
//! evaluation are each claimed by one replica, rollup rows are written once.

pub mod alerts;
pub mod rollup;
pub mod schedule;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WatchConfig;
use crate::pipeline::Pipeline;
use crate::storage::Db;

/// The watch service's errors; the gRPC adapter maps them to statuses in one place.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("internal: {0}")]
    Internal(String),
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> WatchError {
    WatchError::InvalidArgument {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Runs schedules (with a pipeline), the rollup and alert evaluation until `stop`; a run or
/// delivery still going then is abandoned (its claim row stays, so no replica repeats it; a
/// delivery cut short is marked failed by the next opsd to start).
pub async fn run(
    pipeline: Option<Pipeline>,
    db: Db,
    config: WatchConfig,
    stop: CancellationToken,
) -> Result<(), WatchError> {
    let webhooks = Arc::new(webhook::Webhooks::new(db.clone(), &config.webhook)?);
    match webhooks.close_abandoned().await {
        Ok(0) => {}
        Ok(closed) => tracing::warn!(
            closed,
            "alert deliveries an earlier opsd left unfinished are marked failed"
        ),
        Err(error) => tracing::error!(%error, "closing abandoned alert deliveries failed"),
    }
    let mut tasks = JoinSet::new();
    if let Some(pipeline) = pipeline {
        tasks.spawn(schedule::run(
            pipeline,
            db.clone(),
            Duration::from_millis(config.schedule_tick_ms),
            stop.clone(),
        ));
    }
    tasks.spawn(rollup::run(
        db.clone(),
        Duration::from_millis(config.rollup_interval_ms),
        stop.clone(),
    ));
    tasks.spawn(alerts::run(
        db,
        webhooks,
        Duration::from_millis(config.alert_interval_ms),
        stop.clone(),
    ));
    stop.cancelled().await;
    tasks.shutdown().await;
    Ok(())
}
