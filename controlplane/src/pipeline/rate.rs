//! The Policy's rate limits, per tenant and per principal, in fixed minute and hour windows
//! aligned to the clock. On PostgreSQL (the scale-out storage) the windows are counted in the
//! shared database, so the limits hold across every replica; on SQLite (one machine, one
//! process) they are counted in memory.
//!
//! A refused request does not use up the window: only admitted requests count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_proto::v1::RateLimit;
use sqlx::Row;

use super::error::PipelineError;
use crate::storage::{Backend, Db, unix_micros};

/// Shared windows older than this are deleted (by whichever replica sweeps first).
const KEEP_SECONDS: i64 = 2 * 3600;
/// Past this many in-memory windows, those of past windows are dropped.
const MAX_LOCAL_WINDOWS: usize = 10_000;
/// How often one process sweeps old shared windows.
const SWEEP_EVERY_SECONDS: i64 = 600;

/// One limit the request counts against.
#[derive(Debug, Clone)]
struct Bucket {
    key: String,
    /// Window length in seconds (60 or 3600).
    length: i64,
    limit: u32,
    /// "tenant acme" / "principal kim of tenant acme".
    who: String,
}

impl Bucket {
    fn start(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.length)
    }

    fn refusal(&self, now: i64) -> PipelineError {
        let retry = (self.start(now) + self.length - now).max(1);
        let per = if self.length == 60 { "minute" } else { "hour" };
        PipelineError::ResourceExhausted {
            message: format!(
                "{} reached its policy's limit of {} requests per {per}; retry in {retry} s",
                self.who, self.limit
            ),
            retry_after: Some(Duration::from_secs(retry.unsigned_abs())),
        }
    }
}

/// The refusal of a request that found `full` buckets full: the one whose window ends last,
/// so a retry at the hinted time can pass.
fn refusal(full: &[&Bucket], now: i64) -> PipelineError {
    let longest = full.iter().max_by_key(|b| b.start(now) + b.length).copied();
    match longest {
        Some(bucket) => bucket.refusal(now),
        None => PipelineError::Internal("a refusal without a full bucket".into()),
    }
}

/// The buckets a request of `principal` in `tenant` counts against (limits of 0 are none).
fn buckets(tenant: &str, principal: &str, limit: &RateLimit) -> Vec<Bucket> {
    let tenant_who = format!("tenant {tenant}");
    let principal_who = format!("principal {principal} of tenant {tenant}");
    [
        (
            format!("t:{tenant}:m"),
            60,
            limit.requests_per_minute,
            &tenant_who,
        ),
        (
            format!("t:{tenant}:h"),
            3600,
            limit.requests_per_hour,
            &tenant_who,
        ),
        (
            format!("p:{tenant}:{principal}:m"),
            60,
            limit.principal_requests_per_minute,
            &principal_who,
        ),
        (
            format!("p:{tenant}:{principal}:h"),
            3600,
            limit.principal_requests_per_hour,
            &principal_who,
        ),
    ]
    .into_iter()
    .filter(|(_, _, limit, _)| *limit > 0)
    .map(|(key, length, limit, who)| Bucket {
        key,
        length,
        limit,
        who: who.clone(),
    })
    .collect()
}

#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    /// bucket key → (window start, admitted requests).
    local: Arc<Mutex<HashMap<String, (i64, u32)>>>,
    /// The database that counts for every replica (PostgreSQL only).
    shared: Option<Db>,
    last_sweep: Arc<AtomicI64>,
}

impl RateLimiter {
    /// Counts in `db` when it is PostgreSQL (shared by replicas), else in this process.
    pub fn new(db: &Db) -> Self {
        Self {
            shared: (db.backend() == Backend::Postgres).then(|| db.clone()),
            ..Self::default()
        }
    }

    /// Admits one request of `principal` in `tenant`, or refuses it with the time to retry.
    pub async fn check(
        &self,
        tenant: &str,
        principal: &str,
        limit: &RateLimit,
    ) -> Result<(), PipelineError> {
        let buckets = buckets(tenant, principal, limit);
        if buckets.is_empty() {
            return Ok(());
        }
        let now = unix_micros() / 1_000_000;
        match &self.shared {
            Some(db) => self.check_shared(db, &buckets, now).await,
            None => self.check_local(&buckets, now),
        }
    }

    fn check_local(&self, buckets: &[Bucket], now: i64) -> Result<(), PipelineError> {
        let mut windows = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let full: Vec<&Bucket> = buckets
            .iter()
            .filter(|bucket| match windows.get(&bucket.key) {
                Some((at, count)) => *at == bucket.start(now) && *count >= bucket.limit,
                None => false,
            })
            .collect();
        if !full.is_empty() {
            return Err(refusal(&full, now));
        }
        // Windows of callers gone quiet are dropped, so the map holds about one per caller
        // active in the last hour.
        if windows.len() >= MAX_LOCAL_WINDOWS {
            windows.retain(|key, (at, _)| {
                let length = if key.ends_with(":h") { 3600 } else { 60 };
                *at == now - now.rem_euclid(length)
            });
        }
        for bucket in buckets {
            let start = bucket.start(now);
            let window = windows.entry(bucket.key.clone()).or_insert((start, 0));
            if window.0 != start {
                *window = (start, 0);
            }
            window.1 += 1;
        }
        Ok(())
    }

    /// Counts the request in every bucket in one transaction (buckets locked in key order, so
    /// two requests never wait on each other crosswise); if one is over its limit the
    /// transaction is rolled back, so a refused request counts nowhere and one cancelled
    /// midway leaves nothing behind.
    async fn check_shared(
        &self,
        db: &Db,
        buckets: &[Bucket],
        now: i64,
    ) -> Result<(), PipelineError> {
        self.sweep(db, now);
        let mut sorted: Vec<&Bucket> = buckets.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let values: Vec<String> = (0..sorted.len())
            .map(|i| format!("(${}, ${}, 1)", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO rate_counts (bucket, window_start, hits) VALUES {} \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counts.hits + 1 \
             RETURNING bucket, hits",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bucket in &sorted {
            query = query.bind(&bucket.key).bind(bucket.start(now));
        }
        let mut tx = db.pool().begin().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        let mut over = Vec::new();
        for row in &rows {
            let key: String = row.try_get(0)?;
            let hits: i64 = row.try_get(1)?;
            over.extend(
                buckets
                    .iter()
                    .filter(|b| b.key == key && hits > i64::from(b.limit)),
            );
        }
        if over.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        tx.rollback().await?;
        Err(refusal(&over, now))
    }

    /// Deletes old shared windows in the background, at most every few minutes per process.
    fn sweep(&self, db: &Db, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_SECONDS
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let db = db.clone();
        tokio::spawn(async move {
            let swept = sqlx::query("DELETE FROM rate_counts WHERE window_start < $1")
                .bind(now - KEEP_SECONDS)
                .execute(db.pool())
                .await;
            if let Err(error) = swept {
                tracing::warn!(%error, "old rate-limit windows not deleted");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_minute: u32, principal_per_minute: u32) -> RateLimit {
        RateLimit {
            requests_per_minute: per_minute,
            principal_requests_per_minute: principal_per_minute,
            ..RateLimit::default()
        }
    }

    fn check(
        limiter: &RateLimiter,
        tenant: &str,
        principal: &str,
        l: &RateLimit,
        now: i64,
    ) -> Result<(), PipelineError> {
        limiter.check_local(&buckets(tenant, principal, l), now)
    }

    #[test]
    fn the_minute_limit_refuses_with_a_retry_hint_then_resets() {
        let limiter = RateLimiter::default();
        let l = limit(2, 0);
        // 15 s into a minute (1_800_000_000 is a whole minute).
        let t0 = 1_800_000_000 + 15;
        assert!(check(&limiter, "acme", "kim", &l, t0).is_ok());
        assert!(check(&limiter, "acme", "lee", &l, t0).is_ok());
        let refused = check(&limiter, "acme", "kim", &l, t0);
        assert!(
            matches!(&refused, Err(PipelineError::ResourceExhausted { message, retry_after })
                if message.contains("tenant acme") && message.contains("2 requests per minute")
                    && *retry_after == Some(Duration::from_secs(45))),
            "{refused:?}"
        );
        assert!(
            check(&limiter, "globex", "kim", &l, t0).is_ok(),
            "tenants are counted apart"
        );
        assert!(
            check(&limiter, "acme", "kim", &l, t0 + 45).is_ok(),
            "a new minute"
        );
    }

    #[test]
    fn when_minute_and_hour_are_both_full_the_hint_is_the_hours() {
        let limiter = RateLimiter::default();
        let l = RateLimit {
            requests_per_minute: 1,
            requests_per_hour: 1,
            ..RateLimit::default()
        };
        // 10 minutes and 15 s into an hour (1_800_000_000 is a whole hour).
        let t0 = 1_800_000_000 + 615;
        assert!(check(&limiter, "acme", "kim", &l, t0).is_ok());
        let refused = check(&limiter, "acme", "kim", &l, t0);
        assert!(
            matches!(&refused, Err(PipelineError::ResourceExhausted { retry_after, .. })
                if *retry_after == Some(Duration::from_secs(3600 - 615))),
            "{refused:?}"
        );
    }

    #[test]
    fn a_principal_limit_leaves_the_tenants_other_callers_alone() {
        let limiter = RateLimiter::default();
        let l = limit(10, 1);
        let t0 = 1_800_000_000;
        assert!(check(&limiter, "acme", "kim", &l, t0).is_ok());
        let refused = check(&limiter, "acme", "kim", &l, t0);
        assert!(
            matches!(&refused, Err(PipelineError::ResourceExhausted { message, .. })
                if message.contains("principal kim of tenant acme")),
            "{refused:?}"
        );
        assert!(check(&limiter, "acme", "lee", &l, t0).is_ok());
        // The refused request did not count against the tenant: 8 more fit in its 10.
        for _ in 0..8 {
            assert!(check(&limiter, "acme", &format!("p{}", t0), &limit(10, 0), t0).is_ok());
        }
        assert!(check(&limiter, "acme", "x", &limit(10, 0), t0).is_err());
    }
}
