//! When each probe runs next: `every: 30s` or a cron expression.
//!
//! An interval probe runs at a stable offset within its interval, taken
//! from a hash of its name, so 500 probes `every: 15s` start spread over
//! the 15 seconds instead of all at once, and keep their slots across
//! restarts. A cron probe runs when its expression says (that is what a
//! cron expression asks for). Time comes in as an argument: this module
//! never reads a clock and never sleeps.
//!
//! Cron: 5-field Unix expressions (`*/5 * * * *`), in UTC, read as the
//! on-call schedules read theirs ([`UnixCron`]: translated for the `cron`
//! crate, `0` and `7` are Sunday, and day-of-month and day-of-week are
//! ORed as in Vixie cron).

use chrono::{DateTime, Duration, Utc};

use crate::escalate::schedule::UnixCron;

/// A probe's schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Every {
    Interval(Duration),
    /// A 5-field Unix cron expression, in UTC.
    Cron(UnixCron),
}

/// The shortest interval taken.
pub const MIN_INTERVAL: Duration = Duration::seconds(1);

impl Every {
    pub fn interval(every: Duration) -> Result<Every, String> {
        if every < MIN_INTERVAL {
            return Err("every: must be at least 1s".into());
        }
        Ok(Every::Interval(every))
    }

    pub fn cron(text: &str) -> Result<Every, String> {
        UnixCron::parse(text).map(Every::Cron)
    }

    /// The interval of an `every:` schedule.
    pub fn interval_of(&self) -> Option<Duration> {
        match self {
            Every::Interval(d) => Some(*d),
            Every::Cron(_) => None,
        }
    }

    /// The first run of probe `name` strictly after `after`. `None`: a cron
    /// expression that never fires again.
    pub fn next_after(&self, name: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Every::Interval(every) => {
                let every_ms = every.num_milliseconds();
                let offset = offset_ms(name, every_ms);
                let at = after.timestamp_millis();
                let k = (at - offset).div_euclid(every_ms) + 1;
                DateTime::from_timestamp_millis(k * every_ms + offset)
            }
            Every::Cron(cron) => cron
                .matches_after(after.naive_utc())
                .next()
                .map(|t| t.and_utc()),
        }
    }
}

/// Where within an interval of `every_ms` the probe `name` runs: FNV-1a of
/// the name, so it is the same on every build and every restart.
pub fn offset_ms(name: &str, every_ms: i64) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % every_ms.max(1) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn interval_runs_keep_their_slot_and_spread_over_the_interval() {
        let every = Every::interval(Duration::seconds(15)).unwrap();
        let t0 = at("2026-01-01T00:00:00Z");
        let first = every.next_after("api", t0).unwrap();
        assert!(first > t0 && first <= t0 + Duration::seconds(15));
        // Then exactly every 15 s.
        let second = every.next_after("api", first).unwrap();
        assert_eq!(second - first, Duration::seconds(15));
        // 500 probes: no second of the 15 holds more than a small share.
        let mut per_second = [0usize; 15];
        for i in 0..500 {
            let next = every.next_after(&format!("probe-{i}"), t0).unwrap();
            per_second[((next - t0).num_seconds() as usize).min(14)] += 1;
        }
        assert!(
            per_second.iter().all(|n| *n < 60),
            "runs bunch up: {per_second:?}"
        );
    }

    /// Unix expression, after, the next runs.
    #[test]
    fn unix_cron_is_translated() {
        let table: &[(&str, &str, &[&str])] = &[
            (
                "*/5 * * * *",
                "2026-01-01T00:01:00Z",
                &["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"],
            ),
            // 1-5 is Monday to Friday; 2026-01-02 is a Friday.
            (
                "0 9 * * 1-5",
                "2026-01-02T10:00:00Z",
                &["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"],
            ),
            // 0 and 7 are both Sunday (2026-01-04).
            (
                "30 2 * * 0",
                "2026-01-01T00:00:00Z",
                &["2026-01-04T02:30:00Z"],
            ),
            (
                "30 2 * * 7",
                "2026-01-01T00:00:00Z",
                &["2026-01-04T02:30:00Z"],
            ),
            // 5-7: Friday, Saturday, Sunday.
            (
                "0 0 * * 5-7",
                "2026-01-01T12:00:00Z",
                &[
                    "2026-01-02T00:00:00Z",
                    "2026-01-03T00:00:00Z",
                    "2026-01-04T00:00:00Z",
                    "2026-01-09T00:00:00Z",
                ],
            ),
            // Day of month OR Monday: the 15th (a Thursday) and Mondays.
            (
                "0 0 15 1 1",
                "2026-01-01T00:00:00Z",
                &[
                    "2026-01-05T00:00:00Z",
                    "2026-01-12T00:00:00Z",
                    "2026-01-15T00:00:00Z",
                    "2026-01-19T00:00:00Z",
                ],
            ),
        ];
        for (text, after, want) in table {
            let every = Every::cron(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut t = at(after);
            for w in *want {
                t = every.next_after("x", t).unwrap();
                assert_eq!(t, at(w), "{text} after {after}");
            }
        }
    }

    #[test]
    fn bad_cron_is_refused() {
        for text in ["* * *", "61 * * * *", "0 0 * * 8", "every day"] {
            assert!(Every::cron(text).is_err(), "{text}");
        }
    }
}
