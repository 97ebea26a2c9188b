//! Durable traces with group commit. Each request hands its trace to one writer task and waits
//! for the commit before answering; the writer takes every trace waiting at that moment and
//! commits them in one transaction, so under load one fsync serves many requests.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_proto::v1::Trace;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::orchestration::{self, Retention};
use crate::storage::{Db, unix_micros};

/// Most traces committed in one transaction.
const MAX_BATCH: usize = 256;
/// Retention runs at most this often per tenant.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

struct Pending {
    trace: Box<Trace>,
    retention: Retention,
    committed: oneshot::Sender<Result<(), String>>,
}

/// Hands traces to the writer task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TraceWriter {
    queue: mpsc::Sender<Pending>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceWriteError {
    #[error("the trace writer has stopped")]
    Stopped,
    #[error("trace commit failed: {0}")]
    Commit(String),
}

impl TraceWriter {
    /// Starts the writer task on `db`. It stops once every handle is dropped and the queue is
    /// drained, so no accepted trace is lost on shutdown.
    pub fn start(db: Db) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        let handle = tokio::spawn(run(db, rx));
        (Self { queue }, handle)
    }

    /// Persists `trace` and returns once it is committed.
    pub async fn commit(&self, trace: Trace, retention: Retention) -> Result<(), TraceWriteError> {
        let (committed, done) = oneshot::channel();
        self.queue
            .send(Pending {
                trace: Box::new(trace),
                retention,
                committed,
            })
            .await
            .map_err(|_| TraceWriteError::Stopped)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TraceWriteError::Commit(e)),
            Err(_) => Err(TraceWriteError::Stopped),
        }
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_retention: BTreeMap<String, std::time::Instant> = BTreeMap::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = write_batch(&db, &batch).await;
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        if let Err(error) = &result {
            tracing::error!(%error, traces = batch.len(), "trace batch commit failed");
        }
        let mut due: BTreeMap<String, Retention> = BTreeMap::new();
        for pending in batch.drain(..) {
            let tenant = pending.trace.tenant.clone();
            let fresh = last_retention
                .get(&tenant)
                .is_some_and(|t| t.elapsed() < RETENTION_INTERVAL);
            if !fresh {
                due.insert(tenant, pending.retention);
            }
            // The requester may have gone (client cancelled); the trace is committed anyway.
            let _ = pending.committed.send(outcome.clone());
        }
        for (tenant, retention) in due {
            last_retention.insert(tenant.clone(), std::time::Instant::now());
            match orchestration::apply_retention(&db, &tenant, retention, unix_micros()).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(tenant, removed, "trace retention applied"),
                Err(error) => tracing::warn!(tenant, %error, "trace retention failed"),
            }
        }
    }
    tracing::debug!("trace writer drained and stopped");
}

async fn write_batch(db: &Db, batch: &[Pending]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    for pending in batch {
        write_trace(&mut tx, &pending.trace).await?;
    }
    tx.commit().await
}

async fn write_trace(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    trace: &Trace,
) -> Result<(), sqlx::Error> {
    let started = trace
        .started_at
        .as_ref()
        .map_or(0, ops_proto::convert::micros);
    let route = ops_proto::v1::Route::try_from(trace.route)
        .map(|r| super::enum_slug(r.as_str_name(), "ROUTE_"))
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO traces (trace_id, parent_trace_id, tenant_id, principal, question, mode, route, status, started_at, duration_ms, replans, test_mode, answer, trace) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&trace.trace_id)
    .bind((!trace.parent_trace_id.is_empty()).then(|| trace.parent_trace_id.clone()))
    .bind(&trace.tenant)
    .bind(&trace.principal)
    .bind(&trace.question)
    .bind(&trace.mode)
    .bind(&route)
    .bind(super::writer_status(trace.status))
    .bind(started)
    .bind(trace.duration_ms)
    .bind(trace.replan_events.iter().filter(|e| e.decision == "replan").count() as i64)
    .bind(trace.test_mode)
    .bind(&trace.answer)
    .bind(trace.encode_to_vec())
    .execute(&mut **tx)
    .await?;
    if !trace.applied_assets.is_empty() {
        // One statement for every asset: a round trip per row is most of a small trace's cost.
        let sql = format!(
            "INSERT INTO trace_assets (trace_id, asset_type, name, version) VALUES {} \
             ON CONFLICT (trace_id, asset_type, name) DO NOTHING",
            orchestration::values_clause(trace.applied_assets.len(), 4)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for asset in &trace.applied_assets {
            let t = ops_proto::v1::AssetType::try_from(asset.r#type)
                .unwrap_or(ops_proto::v1::AssetType::Unspecified);
            query = query
                .bind(&trace.trace_id)
                .bind(crate::model::refs::type_slug(t))
                .bind(&asset.name)
                .bind(i64::from(asset.version));
        }
        query.execute(&mut **tx).await?;
    }
    orchestration::mirror(tx, trace, started).await
}
