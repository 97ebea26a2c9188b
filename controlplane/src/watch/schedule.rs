//! Scheduled regression runs: each tick, every tenant whose published Policy has a
//! `regression_schedule` runs its golden set once per cron occurrence. The occurrence is
//! claimed by inserting it into `scheduled_runs`, so among replicas exactly one runs it; a
//! replica that was down does not catch up on every missed occurrence, only the latest since
//! it started.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_proto::v1::{RegressionTrigger, RunRegressionRequest};
use tokio_util::sync::CancellationToken;

use crate::context::CallerContext;
use crate::model::schedule::Schedule;
use crate::pipeline::Pipeline;
use crate::storage::{Db, unix_micros};

/// The principal scheduled runs are recorded under.
pub const PRINCIPAL: &str = "opsd:schedule";

/// Checks schedules every `tick` until `stop`.
pub async fn run(pipeline: Pipeline, db: Db, tick: Duration, stop: CancellationToken) {
    let mut checked_until = unix_micros();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut runs = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        let now = unix_micros();
        match due(&db, checked_until, now).await {
            Ok(due) => {
                for (tenant, fire_at) in due {
                    let claimed = match lock(&running) {
                        Some(mut running) => running.insert(tenant.clone()),
                        None => false,
                    };
                    if !claimed {
                        tracing::warn!(%tenant, "the previous scheduled regression run is still going: this occurrence is skipped");
                        continue;
                    }
                    let (pipeline, db, running) = (pipeline.clone(), db.clone(), running.clone());
                    runs.spawn(async move {
                        run_one(&pipeline, &db, &tenant, fire_at).await;
                        if let Some(mut running) = lock(&running) {
                            running.remove(&tenant);
                        }
                    });
                }
            }
            Err(error) => tracing::error!(%error, "checking regression schedules failed"),
        }
        checked_until = now;
        while runs.try_join_next().is_some() {}
    }
    runs.shutdown().await;
}

fn lock(running: &Mutex<HashSet<String>>) -> Option<std::sync::MutexGuard<'_, HashSet<String>>> {
    running.lock().ok()
}

/// The tenants with an occurrence in `(after, now]` that this replica claimed.
async fn due(
    db: &Db,
    after: i64,
    now: i64,
) -> Result<Vec<(String, i64)>, Box<dyn std::error::Error + Send + Sync>> {
    let mut due = Vec::new();
    let policies = {
        let mut conn = db.pool().acquire().await?;
        crate::registry::store::published_policies(&mut conn).await?
    };
    let schedules = policies
        .into_iter()
        .filter(|(_, policy)| !policy.regression_schedule.trim().is_empty());
    for (tenant, policy) in schedules {
        let expression = policy.regression_schedule;
        let schedule = match Schedule::parse(&expression) {
            Ok(schedule) => schedule,
            // Validation refuses such a Policy; one published before that rule is skipped.
            Err(message) => {
                tracing::warn!(%tenant, %message, "regression_schedule ignored");
                continue;
            }
        };
        let Some(fire_at) = schedule.latest_between(after, now) else {
            continue;
        };
        if claim(db, &tenant, fire_at, now).await? {
            due.push((tenant, fire_at));
        }
    }
    Ok(due)
}

/// Claims one occurrence of a tenant's schedule: true for exactly one caller among replicas.
pub async fn claim(db: &Db, tenant: &str, fire_at: i64, now: i64) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO scheduled_runs (tenant_id, fire_at, claimed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, fire_at) DO NOTHING",
    )
    .bind(tenant)
    .bind(fire_at)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

async fn run_one(pipeline: &Pipeline, db: &Db, tenant: &str, fire_at: i64) {
    let ctx = CallerContext::new(tenant, PRINCIPAL);
    let request = RunRegressionRequest::default();
    match pipeline
        .run_regression(&ctx, request, RegressionTrigger::Schedule)
        .await
    {
        Ok(run) => {
            tracing::info!(%tenant, run = %run.id, passed = run.passed, warnings = run.warnings, failed = run.failed, "scheduled regression run");
            let recorded = sqlx::query(
                "UPDATE scheduled_runs SET run_id = $1 WHERE tenant_id = $2 AND fire_at = $3",
            )
            .bind(&run.id)
            .bind(tenant)
            .bind(fire_at)
            .execute(db.pool())
            .await;
            if let Err(error) = recorded {
                tracing::error!(%tenant, %error, "recording the scheduled run failed");
            }
        }
        Err(error) => tracing::error!(%tenant, %error, "scheduled regression run failed"),
    }
}
