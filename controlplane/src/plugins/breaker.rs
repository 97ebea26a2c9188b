//! A circuit breaker per plugin version (digest): after `failures` consecutive faults the
//! plugin is not called for `cooldown`; then one trial call decides whether it closes again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::{PluginError, PluginResult};

#[derive(Debug)]
pub struct Breakers {
    failures: u32,
    cooldown: Duration,
    states: Mutex<HashMap<String, State>>,
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    trial_running: bool,
}

impl Breakers {
    pub fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cooldown,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `digest` may be called now.
    pub fn admit(&self, digest: &str, plugin: &str) -> PluginResult<()> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = states.get_mut(digest) else {
            return Ok(());
        };
        let Some(open_until) = state.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= open_until && !state.trial_running {
            state.trial_running = true;
            return Ok(());
        }
        Err(PluginError::CircuitOpen {
            plugin: plugin.to_owned(),
            failures: state.consecutive,
            retry_after_ms: u64::try_from(open_until.saturating_duration_since(now).as_millis())
                .unwrap_or(u64::MAX),
        })
    }

    /// Records how a call ended: a success closes the circuit, a fault counts towards opening.
    /// `plugin` labels the breaker's state in the metrics.
    pub fn record(&self, digest: &str, plugin: &str, error: Option<&PluginError>) {
        let open = crate::metrics::get()
            .plugin_breaker_open
            .with_label_values(&[plugin]);
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) if e.is_fault() => {
                let state = states.entry(digest.to_owned()).or_default();
                state.consecutive += 1;
                state.trial_running = false;
                if state.consecutive >= self.failures {
                    state.open_until = Some(Instant::now() + self.cooldown);
                    open.set(1);
                    tracing::warn!(
                        digest,
                        failures = state.consecutive,
                        "plugin circuit opened"
                    );
                }
            }
            _ => {
                if states
                    .remove(digest)
                    .is_some_and(|s| s.open_until.is_some())
                {
                    open.set(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> PluginError {
        PluginError::Trapped {
            plugin: "p".into(),
            message: "x".into(),
            backtrace: String::new(),
        }
    }

    #[test]
    fn opens_after_consecutive_faults_and_closes_after_a_good_trial() {
        let breakers = Breakers::new(2, Duration::from_millis(30));
        breakers.record("d", "p", Some(&fault()));
        assert!(breakers.admit("d", "p").is_ok(), "one fault does not open");
        breakers.record("d", "p", Some(&fault()));
        let refused = breakers.admit("d", "p");
        assert!(matches!(
            refused,
            Err(PluginError::CircuitOpen { failures: 2, .. })
        ));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            breakers.admit("d", "p").is_ok(),
            "a trial call after the cooldown"
        );
        assert!(
            breakers.admit("d", "p").is_err(),
            "only one trial at a time"
        );
        breakers.record("d", "p", None);
        assert!(breakers.admit("d", "p").is_ok());
    }

    #[test]
    fn refusals_do_not_count() {
        let breakers = Breakers::new(1, Duration::from_secs(60));
        let refusal = PluginError::Refused {
            plugin: "p".into(),
            code: "c".into(),
            message: "m".into(),
        };
        breakers.record("d", "p", Some(&refusal));
        assert!(breakers.admit("d", "p").is_ok());
    }
}
