//! Cron schedules of the Policy (`regression_schedule`): five fields (minute hour day-of-month
//! month day-of-week) or six with seconds first, evaluated in UTC.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses a cron expression; the error says what is wrong in words a person can act on.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "a cron schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; {expression:?} has {fields}"
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map(Self)
            .map_err(|e| format!("{expression:?} is not a valid cron schedule: {e}"))
    }

    /// The latest occurrence in `(after, until]`, in unix microseconds: a scheduler that
    /// fell behind runs once, not once per missed occurrence.
    pub fn latest_between(&self, after_micros: i64, until_micros: i64) -> Option<i64> {
        let until = utc(until_micros)?;
        let latest = self.0.find_previous_occurrence(&until, true).ok()?;
        let latest = latest.timestamp_micros();
        (latest > after_micros).then_some(latest)
    }

    /// The first occurrence after `after_micros`.
    pub fn next_after(&self, after_micros: i64) -> Option<i64> {
        let after = utc(after_micros)?;
        self.0
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_micros())
    }
}

fn utc(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    #[test]
    fn five_and_six_fields_parse_and_others_are_refused() {
        assert!(Schedule::parse("0 6 * * *").is_ok());
        assert!(Schedule::parse("*/2 * * * * *").is_ok());
        let four = Schedule::parse("0 6 * *").err().unwrap_or_default();
        assert!(four.contains("has 4"), "{four}");
        let bad = Schedule::parse("0 25 * * *").err().unwrap_or_default();
        assert!(bad.contains("not a valid cron schedule"), "{bad}");
    }

    #[test]
    fn the_latest_occurrence_in_a_window_is_found_once() {
        let every_quarter = Schedule::parse("*/15 * * * *").unwrap_or_else(|e| panic!("{e}"));
        // 2026-01-01T00:00:00Z
        let midnight = 1_767_225_600_000_000;
        assert_eq!(
            every_quarter.latest_between(midnight - MINUTE, midnight + 40 * MINUTE),
            Some(midnight + 30 * MINUTE),
            "two occurrences were missed: only the latest runs"
        );
        assert_eq!(
            every_quarter.latest_between(midnight + 30 * MINUTE, midnight + 44 * MINUTE),
            None,
            "an occurrence already handled does not fire again"
        );
        assert_eq!(
            every_quarter.next_after(midnight),
            Some(midnight + 15 * MINUTE)
        );
    }
}
