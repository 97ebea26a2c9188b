//! The Policy's per-tenant rate limit, counted in fixed minute and hour windows on this
//! replica (each replica enforces the limit on the requests it serves).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_proto::v1::RateLimit;

use super::error::PipelineError;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    /// Counts one request; false when the window is already full.
    fn admit(&mut self, now: Instant, length: Duration, limit: u32) -> bool {
        if now.duration_since(self.started) >= length {
            *self = Window {
                started: now,
                count: 0,
            };
        }
        if limit > 0 && self.count >= limit {
            return false;
        }
        self.count += 1;
        true
    }
}

#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    tenants: Arc<Mutex<HashMap<String, (Window, Window)>>>,
}

impl RateLimiter {
    pub fn check(&self, tenant: &str, limit: &RateLimit) -> Result<(), PipelineError> {
        self.check_at(tenant, limit, Instant::now())
    }

    fn check_at(&self, tenant: &str, limit: &RateLimit, now: Instant) -> Result<(), PipelineError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = Window {
            started: now,
            count: 0,
        };
        let (minute, hour) = tenants.entry(tenant.to_owned()).or_insert((fresh, fresh));
        if !minute.admit(now, Duration::from_secs(60), limit.requests_per_minute) {
            return Err(PipelineError::ResourceExhausted(format!(
                "tenant {tenant} reached its policy's limit of {} requests per minute; retry in a minute",
                limit.requests_per_minute
            )));
        }
        if !hour.admit(now, Duration::from_secs(3600), limit.requests_per_hour) {
            minute.count -= 1;
            return Err(PipelineError::ResourceExhausted(format!(
                "tenant {tenant} reached its policy's limit of {} requests per hour",
                limit.requests_per_hour
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_limit_refuses_then_resets() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            requests_per_minute: 2,
            requests_per_hour: 0,
        };
        let t0 = Instant::now();
        assert!(limiter.check_at("acme", &limit, t0).is_ok());
        assert!(limiter.check_at("acme", &limit, t0).is_ok());
        let refused = limiter.check_at("acme", &limit, t0);
        assert!(
            matches!(refused, Err(PipelineError::ResourceExhausted(m)) if m.contains("2 requests per minute"))
        );
        assert!(
            limiter.check_at("globex", &limit, t0).is_ok(),
            "tenants are counted apart"
        );
        assert!(
            limiter
                .check_at("acme", &limit, t0 + Duration::from_secs(61))
                .is_ok()
        );
    }
}
