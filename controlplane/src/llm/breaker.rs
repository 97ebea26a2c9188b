//! The LLM endpoint's circuit breaker: closed → open after `failures` failed calls within a
//! window → half-open after a cooldown, when one probe call decides (success closes it,
//! failure opens it again).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Times of the failures still inside the window (closed state).
    failures: VecDeque<Instant>,
    /// Set while open: when the cooldown ends.
    open_until: Option<Instant>,
    /// A half-open probe is in flight: every other call is refused until it reports.
    probing: bool,
    /// Bumped at every opening and closing: a call allowed before one reports nothing after
    /// it (a slow call from before an opening cannot close the breaker behind a probe).
    generation: u64,
}

/// One per endpoint; shared by every tenant's calls.
#[derive(Debug)]
pub struct Breaker {
    threshold: usize,
    window: Duration,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// Leave to call: report the call's result with [`Permit::record`]. A permit dropped without
/// a result (the caller went away mid-call) counts as a failed probe when it was the probe,
/// so the breaker never waits for a report that cannot come.
#[derive(Debug)]
#[must_use]
pub struct Permit<'b> {
    breaker: &'b Breaker,
    probe: bool,
    generation: u64,
    recorded: bool,
}

impl Permit<'_> {
    /// The result of the call this permit allowed.
    pub fn record(mut self, success: bool) {
        self.recorded = true;
        self.breaker.record(self.probe, self.generation, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.record(true, self.generation, false);
        }
    }
}

impl Breaker {
    pub fn new(failures: u32, window: Duration, cooldown: Duration) -> Self {
        Self {
            threshold: failures.max(1) as usize,
            window,
            cooldown,
            inner: Mutex::new(Inner {
                failures: VecDeque::new(),
                open_until: None,
                probing: false,
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves counters that are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        state_of(&self.lock(), Instant::now())
    }

    /// A permit to call, or None while the breaker is open (or a half-open probe is out).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let probe = match state_of(&inner, now) {
            BreakerState::Closed => Some(false),
            BreakerState::HalfOpen if !inner.probing => {
                inner.probing = true;
                Some(true)
            }
            BreakerState::HalfOpen | BreakerState::Open => None,
        };
        let generation = inner.generation;
        let permit = probe.map(|probe| Permit {
            breaker: self,
            probe,
            generation,
            recorded: false,
        });
        publish(state_of(&inner, now));
        permit
    }

    fn record(&self, probe: bool, generation: u64, success: bool) {
        let now = Instant::now();
        let mut inner = self.lock();
        if probe {
            inner.probing = false;
        }
        if generation != inner.generation {
            return;
        }
        if success {
            if probe {
                inner.open_until = None;
                inner.failures.clear();
                inner.generation += 1;
            }
        } else if probe {
            inner.open_until = Some(now + self.cooldown);
            inner.generation += 1;
        } else if inner.open_until.is_none() {
            while inner
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.window)
            {
                inner.failures.pop_front();
            }
            inner.failures.push_back(now);
            if inner.failures.len() >= self.threshold {
                inner.failures.clear();
                inner.open_until = Some(now + self.cooldown);
                inner.generation += 1;
                tracing::warn!(
                    failures = self.threshold,
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "the LLM endpoint's breaker opened"
                );
            }
        }
        publish(state_of(&inner, now));
    }
}

fn state_of(inner: &Inner, now: Instant) -> BreakerState {
    match inner.open_until {
        None => BreakerState::Closed,
        Some(until) if now < until => BreakerState::Open,
        Some(_) => BreakerState::HalfOpen,
    }
}

fn publish(state: BreakerState) {
    crate::metrics::get().llm_breaker_state.set(state.gauge());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown_ms: u64) -> Breaker {
        Breaker::new(
            3,
            Duration::from_secs(60),
            Duration::from_millis(cooldown_ms),
        )
    }

    fn fail(b: &Breaker) {
        let permit = b.try_acquire();
        assert!(permit.is_some(), "a closed breaker lets calls through");
        if let Some(p) = permit {
            p.record(false);
        }
    }

    #[test]
    fn failures_in_the_window_open_it_and_a_probe_closes_it() {
        let b = breaker(50);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none(), "open: no call");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire();
        assert!(probe.is_some(), "one probe after the cooldown");
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        if let Some(p) = probe {
            p.record(true);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = breaker(40);
        for _ in 0..3 {
            fail(&b);
        }
        std::thread::sleep(Duration::from_millis(50));
        if let Some(p) = b.try_acquire() {
            p.record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_call_from_before_the_opening_reports_nothing_after_it() {
        let b = breaker(30);
        let slow = b.try_acquire();
        for _ in 0..3 {
            fail(&b);
        }
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.try_acquire();
        assert!(probe.is_some());
        if let Some(p) = slow {
            p.record(true);
        }
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "the stale success closed nothing"
        );
        if let Some(p) = probe {
            p.record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_probe_whose_caller_went_away_does_not_hold_the_breaker_half_open() {
        let b = breaker(30);
        for _ in 0..3 {
            fail(&b);
        }
        std::thread::sleep(Duration::from_millis(40));
        drop(b.try_acquire());
        assert_eq!(b.state(), BreakerState::Open, "counted as a failed probe");
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            b.try_acquire().is_some(),
            "the next cooldown allows a probe"
        );
    }

    #[test]
    fn a_success_does_not_forget_failures_of_the_window_but_old_ones_expire() {
        let b = Breaker::new(2, Duration::from_millis(30), Duration::from_secs(60));
        fail(&b);
        std::thread::sleep(Duration::from_millis(40));
        fail(&b);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the first failure left the window"
        );
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
