//! The audit log: who asked what (written with each answer's trace, in its transaction), which
//! calls were refused and which changed something (written by [`AuditLog`]'s background task,
//! so a refused call never waits for the database), readable per tenant with filters.

pub mod store;
pub mod usage;

use ops_proto::convert::from_micros;
use ops_proto::v1::{AuditKind, AuditOutcome, AuditRecord};
use tokio::sync::mpsc;

use crate::storage::{Db, unix_micros};

/// The RPCs whose runs are audited as asks, with their traces.
pub const ASK: &str = "ops.v1.OpsService/Ask";
pub const ASK_STREAM: &str = "ops.v1.OpsService/AskStream";
pub const UI_ACTION: &str = "ops.v1.OpsService/UiAction";

/// Where refusals of calls without a verified credential are filed: not a tenant id (`*`
/// fails `validate_tenant`), so no tenant's log holds them; platform admins read them.
pub const UNAUTHENTICATED: &str = "*";
/// Days those records are kept.
const UNAUTHENTICATED_RETENTION_DAYS: u32 = 30;
/// How often the writer applies that retention.
const UNAUTHENTICATED_SWEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Records waiting for the writer; beyond this a record is dropped (counted and logged).
const QUEUE: usize = 8192;
/// Most records written in one statement.
const MAX_BATCH: usize = 512;
/// A reason or target is cut to this many characters.
const MAX_REASON_CHARS: usize = 500;

/// What a service names as the object of a change, for the change's audit record: put into a
/// response's extensions, read by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget(pub String);

/// Hands refused calls and changes to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
}

impl AuditLog {
    /// Starts the writer task on `db`; it stops once every handle is dropped and the queue is
    /// written.
    pub fn start(db: Db) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (Self { queue }, tokio::spawn(write_queued(db, rx)))
    }

    /// Queues `record` without waiting.
    pub fn record(&self, record: AuditRecord) {
        if let Err(error) = self.queue.try_send(record) {
            crate::metrics::get().audit_dropped.inc();
            let record = match &error {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            tracing::error!(
                rpc = record.rpc,
                tenant = record.tenant,
                principal = record.principal,
                "audit record dropped: the audit writer is behind or stopped"
            );
        }
    }
}

async fn write_queued(db: Db, mut rx: mpsc::Receiver<AuditRecord>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut swept: Option<std::time::Instant> = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Tenants' records follow their Policy (applied with their traces); the
        // unauthenticated refusals' here.
        if swept.is_none_or(|at| at.elapsed() > UNAUTHENTICATED_SWEEP) {
            swept = Some(std::time::Instant::now());
            let removed = store::apply_retention(
                &db,
                UNAUTHENTICATED,
                UNAUTHENTICATED_RETENTION_DAYS,
                unix_micros(),
            )
            .await;
            if let Err(error) = removed {
                tracing::warn!(%error, "retention of unauthenticated refusals failed");
            }
        }
        let written = async {
            let mut tx = db.begin_write().await?;
            store::insert(&mut tx, &batch).await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = written {
            crate::metrics::get()
                .audit_dropped
                .inc_by(batch.len() as u64);
            tracing::error!(%error, records = batch.len(), "audit records not written");
        }
        batch.clear();
    }
}

/// `text` cut to [`MAX_REASON_CHARS`] characters (reasons, targets).
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A record of `kind` for `rpc` ("ops.v1.Service/Method"), now.
pub fn record(
    kind: AuditKind,
    outcome: AuditOutcome,
    tenant: &str,
    principal: &str,
    rpc: &str,
) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: Some(from_micros(unix_micros())),
        kind: kind as i32,
        outcome: outcome as i32,
        tenant: tenant.to_owned(),
        principal: principal.to_owned(),
        rpc: rpc.trim_start_matches('/').to_owned(),
        code: "OK".to_owned(),
        ..AuditRecord::default()
    }
}

/// A call ended with the status `code` (its name, e.g. "PERMISSION_DENIED") and `reason`.
pub fn with_status(mut record: AuditRecord, code: &str, reason: &str) -> AuditRecord {
    code.clone_into(&mut record.code);
    record.reason = cut(reason);
    record
}

/// Whether a status code means the caller was refused (rather than the call failing).
pub fn is_denial(code: &str) -> bool {
    matches!(code, "PERMISSION_DENIED" | "UNAUTHENTICATED")
}
