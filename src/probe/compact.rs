//! Which probe runs are stored: the changes, and a summary when nothing
//! changed for a while, not every identical success.
//!
//! A run is stored when, against the last result the log holds for its
//! probe:
//!
//! | reason | what changed |
//! | --- | --- |
//! | `first` | the log holds no result of this probe |
//! | `state` | ok ↔ failing |
//! | `status` | the HTTP status |
//! | `error` | the error text (another cause of failure) |
//! | `values` | a value appeared, vanished, or moved by more than `tolerance` of itself, and `value_interval` (default 1m) passed since the last stored result |
//! | `summary` | nothing of the above for `summary_every` (default 10m) |
//!
//! Each stored result carries a [`ProbeSummary`] of the runs it stands for
//! (count, failures, min/mean/max latency), so the log still tells how a
//! probe did between its stored results.
//!
//! # The bound
//!
//! The summary clock restarts at every stored result, so a probe stores at
//! most `1 + changes + 1 day / summary_every` results a day, whatever its
//! interval, where changes of values count at most once per
//! `value_interval` (a counter that grows by more than `tolerance` each
//! run is stored once a minute, not every run): 500 probes every 15 s for
//! 24 h run 2,880,000 times; a stable fleet stores 500 × 144 = 72,000
//! results (one per probe per 10 minutes), each state, status or error
//! change adds one, and values at most 1,440 a probe a day.
//! `tests/probe_day.rs` checks this over a simulated day.
//!
//! The last stored result per probe is a projection ([`ProbeStates`]), a
//! fold of the log: a restart compares against what the log holds, so it
//! neither stores everything again nor misses a change that happened while
//! it was down. The run counts between stored results live in memory
//! ([`Window`]); a restart starts a new window. Nothing here runs probes,
//! reads a clock or appends.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::eventlog::projection::SnapshotFn;
use crate::eventlog::{Event, EventKind, ProbeResult, ProbeSummary, Projection};

/// What the log last holds of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub values: BTreeMap<String, f64>,
    /// When that result's run happened.
    pub at: DateTime<Utc>,
}

impl Stored {
    fn of(result: &ProbeResult, at: DateTime<Utc>) -> Stored {
        Stored {
            ok: result.ok,
            status: result.status,
            error: result.error.clone(),
            values: result.values.clone(),
            at,
        }
    }
}

/// The runs of one probe since its last stored result.
#[derive(Debug, Clone, Default)]
pub struct Window {
    since: Option<DateTime<Utc>>,
    runs: u64,
    failures: u64,
    latency_min_ms: f64,
    latency_max_ms: f64,
    latency_sum_ms: f64,
}

impl Window {
    fn add(&mut self, outcome: &Outcome, at: DateTime<Utc>) {
        let ms = outcome.latency.as_secs_f64() * 1000.0;
        if self.runs == 0 {
            self.since = Some(at);
            self.latency_min_ms = ms;
            self.latency_max_ms = ms;
        }
        self.runs += 1;
        self.failures += u64::from(!outcome.ok);
        self.latency_min_ms = self.latency_min_ms.min(ms);
        self.latency_max_ms = self.latency_max_ms.max(ms);
        self.latency_sum_ms += ms;
    }

    fn take(&mut self, reason: &str, at: DateTime<Utc>) -> ProbeSummary {
        let w = std::mem::take(self);
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        ProbeSummary {
            reason: reason.to_string(),
            since: w.since.unwrap_or(at),
            runs: w.runs,
            failures: w.failures,
            latency_min_ms: round(w.latency_min_ms),
            latency_max_ms: round(w.latency_max_ms),
            latency_mean_ms: round(w.latency_sum_ms / w.runs.max(1) as f64),
        }
    }
}

/// How a probe compacts its runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    pub summary_every: Duration,
    /// The least time between two results stored because values moved.
    pub value_interval: Duration,
    /// Relative change of a value that is stored; 0 stores any change.
    pub tolerance: f64,
}

/// Why a run must be stored, or `None` when the log already says what it
/// found and the summary is not yet due.
pub fn reason(
    last: Option<&Stored>,
    outcome: &Outcome,
    at: DateTime<Utc>,
    how: Compaction,
) -> Option<&'static str> {
    let Some(last) = last else {
        return Some("first");
    };
    if last.ok != outcome.ok {
        Some("state")
    } else if last.status != outcome.status {
        Some("status")
    } else if last.error != outcome.error {
        Some("error")
    } else if at - last.at >= how.value_interval
        && values_moved(&last.values, &outcome.values, how.tolerance)
    {
        Some("values")
    } else if at - last.at >= how.summary_every {
        Some("summary")
    } else {
        None
    }
}

/// Adds `outcome` to `window` and, when it must be stored, answers the
/// summary the stored result carries (the window starts again).
pub fn consider(
    last: Option<&Stored>,
    window: &mut Window,
    outcome: &Outcome,
    at: DateTime<Utc>,
    how: Compaction,
) -> Option<ProbeSummary> {
    window.add(outcome, at);
    reason(last, outcome, at, how).map(|r| window.take(r, at))
}

/// A value appeared or vanished, or moved by more than `tolerance` of the
/// larger of the two magnitudes.
pub fn values_moved(
    old: &BTreeMap<String, f64>,
    new: &BTreeMap<String, f64>,
    tolerance: f64,
) -> bool {
    if old.len() != new.len() || old.keys().ne(new.keys()) {
        return true;
    }
    old.values().zip(new.values()).any(|(a, b)| {
        let scale = a.abs().max(b.abs());
        (a - b).abs() > tolerance * scale || (tolerance == 0.0 && a != b)
    })
}

/// The last stored result of each probe, folded from `probe.result`
/// events.
#[derive(Default)]
pub struct ProbeStates {
    by_probe: RwLock<HashMap<String, Stored>>,
}

impl ProbeStates {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, probe: &str) -> Option<Stored> {
        self.by_probe.read().get(probe).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_probe.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Projection for ProbeStates {
    fn name(&self) -> &'static str {
        "probe_states"
    }

    fn apply(&self, event: &Event) {
        if let EventKind::ProbeResult(result) = &event.kind {
            self.by_probe
                .write()
                .insert(result.probe.clone(), Stored::of(result, event.occurred_at));
        }
    }

    fn reset(&self) {
        self.by_probe.write().clear();
    }

    fn snapshot(&self) -> Option<SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.by_probe.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        *self.by_probe.write() = crate::eventlog::projection::restored(state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> Outcome {
        Outcome::up(std::time::Duration::from_millis(ms), Some(200))
    }

    fn down(error: &str) -> Outcome {
        Outcome::failed(std::time::Duration::from_millis(1), None, error.into())
    }

    fn with(values: &[(&str, f64)]) -> Outcome {
        let mut o = ok(1);
        o.values = values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        o
    }

    /// One probe's runs, 15 s apart, each with whether it is stored and why.
    #[test]
    fn a_probe_stores_its_changes_and_a_summary_every_ten_minutes() {
        let how = Compaction {
            summary_every: Duration::minutes(10),
            value_interval: Duration::seconds(30),
            tolerance: 0.01,
        };
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        // (seconds, outcome, stored because)
        let table: Vec<(i64, Outcome, Option<&str>)> = vec![
            (0, ok(5), Some("first")),
            (15, ok(7), None),
            (30, ok(6), None),
            (45, down("connect failed: refused"), Some("state")),
            (60, down("connect failed: refused"), None),
            (75, down("timed out"), Some("error")),
            (90, ok(5), Some("state")),
            (105, with(&[("up", 1.0)]), None), // 15 s after the last: held
            (120, with(&[("up", 1.0)]), Some("values")),
            (135, with(&[("up", 1.005)]), None), // within 1%
            (150, with(&[("up", 0.0)]), Some("values")),
            (165, with(&[("up", 5.0)]), None), // held until 30 s passed
            (180, with(&[("up", 5.0)]), Some("values")),
            (180 + 599, with(&[("up", 5.0)]), None),
            (180 + 600, with(&[("up", 5.0)]), Some("summary")),
        ];
        let mut last: Option<Stored> = None;
        let mut window = Window::default();
        for (secs, outcome, want) in table {
            let at = t0 + Duration::seconds(secs);
            let got = consider(last.as_ref(), &mut window, &outcome, at, how);
            assert_eq!(got.as_ref().map(|s| s.reason.as_str()), want, "at {secs}s");
            if let Some(summary) = got {
                // The two runs between the first and the failure are counted.
                if secs == 45 {
                    assert_eq!((summary.runs, summary.failures), (3, 1));
                    assert_eq!(summary.latency_min_ms, 1.0);
                    assert_eq!(summary.latency_max_ms, 7.0);
                    assert_eq!(summary.since, t0 + Duration::seconds(15));
                }
                last = Some(Stored {
                    ok: outcome.ok,
                    status: outcome.status,
                    error: outcome.error.clone(),
                    values: outcome.values.clone(),
                    at,
                });
            }
        }
    }

    #[test]
    fn values_move_by_tolerance_of_their_magnitude() {
        let m = |v: f64| BTreeMap::from([("x".to_string(), v)]);
        // (old, new, tolerance, moved)
        let table = [
            (100.0, 100.9, 0.01, false),
            (100.0, 101.1, 0.01, true),
            (0.0, 0.0, 0.01, false),
            (0.0, 1e-9, 0.01, true),
            (5.0, 5.0, 0.0, false),
            (5.0, 5.000001, 0.0, true),
        ];
        for (a, b, tol, want) in table {
            assert_eq!(values_moved(&m(a), &m(b), tol), want, "{a} -> {b} at {tol}");
        }
        assert!(values_moved(&m(1.0), &BTreeMap::new(), 0.5));
    }
}
