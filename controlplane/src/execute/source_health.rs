//! Which sources failed recently. A source that just failed as unavailable is tried after the
//! Policy's fallbacks for a while, so requests do not each wait out its connect timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a failed source goes to the back of the line.
const DOWN_FOR: Duration = Duration::from_secs(30);

#[derive(Clone, Default, Debug)]
pub struct SourceHealth {
    down_since: Arc<Mutex<HashMap<String, Instant>>>,
}

impl SourceHealth {
    pub fn mark_down(&self, source: &str) {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        down.insert(source.to_owned(), Instant::now());
    }

    pub fn mark_up(&self, source: &str) {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        down.remove(source);
    }

    fn is_down(&self, source: &str) -> bool {
        let down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        down.get(source).is_some_and(|t| t.elapsed() < DOWN_FOR)
    }

    /// `sources` (named by `label`) with the recently failed ones moved last, order otherwise
    /// kept: they are still tried when nothing else answers.
    pub fn order<T>(&self, sources: Vec<T>, label: impl Fn(&T) -> String) -> Vec<T> {
        let (up, down): (Vec<T>, Vec<T>) =
            sources.into_iter().partition(|s| !self.is_down(&label(s)));
        up.into_iter().chain(down).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_source_moves_last_until_it_answers_again() {
        let health = SourceHealth::default();
        let order = |h: &SourceHealth| h.order(vec!["a", "b", "c"], |s| (*s).to_owned());
        assert_eq!(order(&health), ["a", "b", "c"]);
        health.mark_down("a");
        assert_eq!(order(&health), ["b", "c", "a"]);
        health.mark_up("a");
        assert_eq!(order(&health), ["a", "b", "c"]);
    }
}
