//! Durable traces with group commit. Each request hands its trace to one writer task and waits
//! for the commit before answering; the writer takes every trace waiting at that moment and
//! commits them in one transaction, so under load one commit serves many requests. How far a
//! commit reaches (the write-ahead log, or the disk) is `[storage] trace_sync`.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_proto::v1::{AuditKind, AuditOutcome, AuditRecord, Trace, TraceStatus};
use prost::Message;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::orchestration::{self, Retention};
use crate::audit;
use crate::storage::{Backend, Db, TraceSync, unix_micros};

/// Most traces committed in one transaction.
const MAX_BATCH: usize = 256;
/// Retention runs at most this often per tenant.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

struct Pending {
    trace: Box<Trace>,
    retention: Retention,
    /// The RPC the run answered, when its ask is audited (Ask, AskStream, UiAction).
    audited_as: Option<&'static str>,
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
    pub fn start(db: Db, sync: TraceSync) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        let sink = Sink {
            db,
            sync,
            own: None,
        };
        let handle = tokio::spawn(run(sink, rx));
        (Self { queue }, handle)
    }

    /// Persists `trace` and returns once it is committed; with `audited_as` (the RPC that
    /// asked), its audit record is written in the same transaction.
    pub async fn commit(
        &self,
        trace: Trace,
        retention: Retention,
        audited_as: Option<&'static str>,
    ) -> Result<(), TraceWriteError> {
        let (committed, done) = oneshot::channel();
        self.queue
            .send(Pending {
                trace: Box::new(trace),
                retention,
                audited_as,
                committed,
            })
            .await
            .map_err(|_| TraceWriteError::Stopped)?;
        crate::metrics::get()
            .trace_queue
            .set((self.queue.max_capacity() - self.queue.capacity()) as i64);
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TraceWriteError::Commit(e)),
            Err(_) => Err(TraceWriteError::Stopped),
        }
    }
}

async fn run(mut sink: Sink, mut rx: mpsc::Receiver<Pending>) {
    // A crash between a batch's commit and its mirror leaves traces without their rows.
    if let Err(error) = sink.backfill_mirror().await {
        tracing::warn!(%error, "mirroring earlier traces failed");
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_retention: BTreeMap<String, std::time::Instant> = BTreeMap::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let traces: Vec<&Trace> = batch.iter().map(|p| &*p.trace).collect();
        let audits: Vec<AuditRecord> = batch
            .iter()
            .filter_map(|p| p.audited_as.map(|rpc| audit_record(&p.trace, rpc)))
            .collect();
        let metrics = crate::metrics::get();
        metrics.trace_queue.set(rx.len() as i64);
        let started = std::time::Instant::now();
        let result = sink.transaction(Work::Traces(&traces, &audits)).await;
        metrics
            .trace_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics
            .traces_committed
            .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
            .inc_by(traces.len() as u64);
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        if let Err(error) = &result {
            tracing::error!(%error, traces = batch.len(), "trace batch commit failed");
        }
        let mut due: BTreeMap<String, Retention> = BTreeMap::new();
        let mut committed = Vec::with_capacity(batch.len());
        for pending in batch.drain(..) {
            let tenant = pending.trace.tenant.clone();
            let fresh = last_retention
                .get(&tenant)
                .is_some_and(|t| t.elapsed() < RETENTION_INTERVAL);
            if !fresh {
                // A run without the tenant's Policy (an RCA of a tenant without assets)
                // carries no retention; another run's Policy wins over it.
                let set = |r: &Retention| r.days > 0 || r.max_traces > 0 || r.audit_days > 0;
                let kept = due.entry(tenant).or_insert(pending.retention);
                if !set(kept) {
                    *kept = pending.retention;
                }
            }
            // The requester may have gone (client cancelled); the trace is committed anyway.
            let _ = pending.committed.send(outcome.clone());
            committed.push(pending.trace);
        }
        // The answers are out; the mirror rows follow (nobody waits for them).
        if result.is_ok() {
            let traces: Vec<&Trace> = committed.iter().map(|t| &**t).collect();
            if let Err(error) = sink.transaction(Work::Mirror(&traces)).await {
                tracing::warn!(%error, traces = traces.len(), "trace mirror rows failed; retried at the next start");
            }
        }
        for (tenant, retention) in due {
            last_retention.insert(tenant.clone(), std::time::Instant::now());
            match orchestration::apply_retention(&sink.db, &tenant, retention, unix_micros()).await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(tenant, removed, "trace retention applied"),
                Err(error) => tracing::warn!(tenant, %error, "trace retention failed"),
            }
            match audit::store::apply_retention(
                &sink.db,
                &tenant,
                retention.audit_days,
                unix_micros(),
            )
            .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(tenant, removed, "audit retention applied"),
                Err(error) => tracing::warn!(tenant, %error, "audit retention failed"),
            }
        }
    }
    tracing::debug!("trace writer drained and stopped");
}

/// What one writer transaction does.
enum Work<'a> {
    /// The traces, their asset versions, their LLM calls' usage rows and their asks' audit
    /// records: the answers wait for this commit.
    Traces(&'a [&'a Trace], &'a [AuditRecord]),
    /// The orchestration rows of traces already committed.
    Mirror(&'a [&'a Trace]),
}

impl Work<'_> {
    async fn run(&self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        match self {
            Work::Traces(traces, audits) => {
                write_traces(conn, traces).await?;
                audit::usage::insert(conn, traces).await?;
                audit::store::insert(conn, audits).await
            }
            Work::Mirror(traces) => orchestration::mirror(conn, traces).await,
        }
    }
}

/// Where batches go: a SQLite file's own connection when traces skip the fsync, else the pool.
struct Sink {
    db: Db,
    sync: TraceSync,
    /// Opened on first use; dropped after a failed batch and opened again for the next.
    own: Option<sqlx::AnyConnection>,
}

impl Sink {
    async fn transaction(&mut self, work: Work<'_>) -> Result<(), sqlx::Error> {
        if self.own.is_none() {
            self.own = self.db.trace_connection(self.sync).await?;
        }
        if let Some(conn) = self.own.as_mut() {
            let result = async {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                work.run(&mut tx).await?;
                tx.commit().await
            }
            .await;
            if result.is_err() {
                self.own = None;
            }
            return result;
        }
        let mut tx = self.db.begin_write().await?;
        if self.db.backend() == Backend::Postgres && self.sync == TraceSync::Normal {
            sqlx::query("SET LOCAL synchronous_commit TO off")
                .execute(&mut *tx)
                .await?;
        }
        work.run(&mut tx).await?;
        tx.commit().await
    }

    /// Mirrors every trace that has no task row yet, a batch at a time.
    async fn backfill_mirror(&mut self) -> Result<(), sqlx::Error> {
        let mut mirrored = 0usize;
        loop {
            let stored: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT t.trace FROM traces t WHERE NOT EXISTS \
                 (SELECT 1 FROM tasks k WHERE k.task_id = t.trace_id) LIMIT $1",
            )
            .bind(MAX_BATCH as i64)
            .fetch_all(self.db.pool())
            .await?;
            let traces: Vec<Trace> = stored
                .iter()
                .filter_map(|bytes| Trace::decode(bytes.as_slice()).ok())
                .collect();
            if traces.is_empty() {
                break;
            }
            let refs: Vec<&Trace> = traces.iter().collect();
            self.transaction(Work::Mirror(&refs)).await?;
            mirrored += traces.len();
            if stored.len() < MAX_BATCH || traces.len() < stored.len() {
                break;
            }
        }
        if mirrored > 0 {
            tracing::info!(
                traces = mirrored,
                "mirrored traces committed before a restart"
            );
        }
        Ok(())
    }
}

/// The batch's traces in one statement, their asset versions in another: a round trip per
/// row is most of a small trace's cost.
async fn write_traces(
    conn: &mut sqlx::AnyConnection,
    traces: &[&Trace],
) -> Result<(), sqlx::Error> {
    struct Row<'t> {
        trace: &'t Trace,
        started: i64,
        route: String,
        status: String,
        replans: i64,
        encoded: Vec<u8>,
        data_quality: String,
    }
    let rows: Vec<Row<'_>> = traces
        .iter()
        .map(|trace| Row {
            trace,
            started: trace
                .started_at
                .as_ref()
                .map_or(0, ops_proto::convert::micros),
            route: ops_proto::v1::Route::try_from(trace.route)
                .map(|r| super::enum_slug(r.as_str_name(), "ROUTE_"))
                .unwrap_or_default(),
            status: super::writer_status(trace.status),
            replans: trace
                .replan_events
                .iter()
                .filter(|e| e.decision == "replan")
                .count() as i64,
            data_quality: data_quality_column(&trace.data_quality),
            encoded: trace.encode_to_vec(),
        })
        .collect();
    crate::storage::insert_rows(
        conn,
        "traces (trace_id, parent_trace_id, tenant_id, principal, question, mode, route, status, started_at, duration_ms, replans, test_mode, answer, trace, data_quality)",
        "",
        15,
        &rows,
        |q, r| {
            q.bind(&r.trace.trace_id)
                .bind((!r.trace.parent_trace_id.is_empty()).then_some(&r.trace.parent_trace_id))
                .bind(&r.trace.tenant)
                .bind(&r.trace.principal)
                .bind(&r.trace.question)
                .bind(&r.trace.mode)
                .bind(&r.route)
                .bind(&r.status)
                .bind(r.started)
                .bind(r.trace.duration_ms)
                .bind(r.replans)
                .bind(r.trace.test_mode)
                .bind(&r.trace.answer)
                .bind(&r.encoded)
                .bind(&r.data_quality)
        },
    )
    .await?;
    let assets: Vec<(&Trace, &ops_proto::v1::AssetRef)> = traces
        .iter()
        .flat_map(|t| t.applied_assets.iter().map(move |a| (*t, a)))
        .collect();
    crate::storage::insert_rows(
        conn,
        "trace_assets (trace_id, asset_type, name, version)",
        "ON CONFLICT (trace_id, asset_type, name) DO NOTHING",
        4,
        &assets,
        |q, (trace, asset)| {
            let t = ops_proto::v1::AssetType::try_from(asset.r#type)
                .unwrap_or(ops_proto::v1::AssetType::Unspecified);
            q.bind(&trace.trace_id)
                .bind(crate::model::refs::type_slug(t))
                .bind(&asset.name)
                .bind(i64::from(asset.version))
        },
    )
    .await
}

/// `",fallback_source,truncated,"`: each flag delimited on both sides, so
/// `LIKE '%,flag,%'` matches exactly one flag.
pub fn data_quality_column(flags: &[String]) -> String {
    if flags.is_empty() {
        String::new()
    } else {
        format!(",{},", flags.join(","))
    }
}

/// The audit record of an answered ask, from its trace.
fn audit_record(trace: &Trace, rpc: &str) -> AuditRecord {
    let status = TraceStatus::try_from(trace.status).unwrap_or_default();
    let outcome = match status {
        TraceStatus::Rejected => AuditOutcome::Rejected,
        TraceStatus::Error => AuditOutcome::Failed,
        _ => AuditOutcome::Ok,
    };
    let mut rules: Vec<String> = Vec::new();
    for v in &trace.violations {
        if !v.rule.is_empty() && !rules.contains(&v.rule) {
            rules.push(v.rule.clone());
        }
    }
    AuditRecord {
        at: trace.started_at,
        route: ops_proto::v1::Route::try_from(trace.route)
            .map(|r| super::enum_slug(r.as_str_name(), "ROUTE_"))
            .unwrap_or_default(),
        status: super::writer_status(trace.status),
        violations: rules,
        trace_id: trace.trace_id.clone(),
        ..audit::record(
            AuditKind::Ask,
            outcome,
            &trace.tenant,
            &trace.principal,
            rpc,
        )
    }
}
