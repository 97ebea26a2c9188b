//! The Policy's daily LLM spend cap (`llm_daily_spend_usd`). The usage log holds what calls
//! cost once their traces commit; calls made on this replica whose traces have not committed
//! yet (the same ask's planner call, concurrent asks) are counted here meanwhile, so the cap
//! is overshot by at most the calls already in flight. A run dropped before its commit (its
//! caller went away) leaves its calls counted here until the day ends: they were paid for.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ops_proto::v1::{LlmCall, PolicySpec};
use time::OffsetDateTime;

use crate::audit::usage;
use crate::llm::Failure;
use crate::storage::Db;

#[derive(Debug)]
pub(super) struct SpendLedger {
    db: Db,
    /// USD of calls made whose traces are not committed yet, by tenant and UTC day start.
    unsaved: Mutex<BTreeMap<(String, i64), f64>>,
}

fn today() -> i64 {
    usage::day_start_micros(OffsetDateTime::now_utc())
}

impl SpendLedger {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            unsaved: Mutex::default(),
        }
    }

    fn unsaved(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i64), f64>> {
        self.unsaved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a call once the tenant's spend today reaches the Policy's cap.
    pub async fn within_cap(
        &self,
        policy: Option<&PolicySpec>,
        tenant: &str,
    ) -> Result<(), Failure> {
        let cap = policy.map_or(0.0, |p| p.llm_daily_spend_usd);
        if cap <= 0.0 {
            return Ok(());
        }
        let since = today();
        match usage::spent_since(&self.db, tenant, since).await {
            Ok(saved) => {
                let key = (tenant.to_owned(), since);
                let pending = self.unsaved().get(&key).copied().unwrap_or(0.0);
                if saved + pending >= cap {
                    Err(Failure::DailySpendCap)
                } else {
                    Ok(())
                }
            }
            Err(error) => {
                // Spend unknown: no call (a cap is a promise about cost).
                tracing::warn!(tenant, %error, "LLM spend could not be read; the call is skipped");
                Err(Failure::DailySpendCap)
            }
        }
    }

    /// A call was made; its trace is not committed yet.
    pub fn made(&self, tenant: &str, call: &LlmCall) {
        if call.cost_usd > 0.0 {
            let day = today();
            let mut unsaved = self.unsaved();
            unsaved.retain(|(_, d), _| *d >= day);
            *unsaved.entry((tenant.to_owned(), day)).or_insert(0.0) += call.cost_usd;
        }
    }

    /// The run's trace is committed (or lost): its calls are the usage log's to count.
    pub fn settled(&self, tenant: &str, calls: &[LlmCall]) {
        let cost: f64 = calls.iter().map(|c| c.cost_usd).sum();
        if cost <= 0.0 {
            return;
        }
        let key = (tenant.to_owned(), today());
        let mut unsaved = self.unsaved();
        if let Some(pending) = unsaved.get_mut(&key) {
            *pending -= cost;
            if *pending <= 1e-12 {
                unsaved.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsaved_calls_count_toward_the_cap_until_settled()
    -> Result<(), Box<dyn std::error::Error>> {
        let db = Db::open("sqlite::memory:", 1, None).await?;
        let ledger = SpendLedger::new(db);
        let policy = PolicySpec {
            llm_daily_spend_usd: 0.1,
            ..PolicySpec::default()
        };
        let call = LlmCall {
            cost_usd: 0.06,
            ..LlmCall::default()
        };
        assert!(ledger.within_cap(Some(&policy), "acme").await.is_ok());
        ledger.made("acme", &call);
        assert!(ledger.within_cap(Some(&policy), "acme").await.is_ok());
        ledger.made("acme", &call);
        assert_eq!(
            ledger.within_cap(Some(&policy), "acme").await,
            Err(Failure::DailySpendCap)
        );
        assert!(ledger.within_cap(Some(&policy), "globex").await.is_ok());
        ledger.settled("acme", &[call.clone(), call]);
        assert!(ledger.within_cap(Some(&policy), "acme").await.is_ok());
        assert!(ledger.within_cap(None, "acme").await.is_ok());
        Ok(())
    }
}
