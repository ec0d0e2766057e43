//! Flap damping: which alerts change state so often that paging each
//! change is noise.
//!
//! [`FlapView`] folds the state changes of every alert (`alert.received`
//! that makes it firing, `alert.resolved` that ends it) and the decisions
//! `alert.flapping_started` / `alert.flapping_stopped`. [`decide`] makes
//! those decisions from the view and the clock: an alert with `changes`
//! state changes within `window` starts flapping; a flapping alert that has
//! kept one state (firing or resolved) for `stable` stops. The options are
//! those of the first route the alert matches (`flap:` on the route, see
//! [`crate::evaluate::route::FlapOpts`]); the started decision carries them,
//! so the stop is decided from the log alone and a reload does not move it.
//!
//! This module owns the counting and those two decisions. It never decides
//! what is paged: the dispatcher mutes flapping alerts (reason `flapping`)
//! after one notice. Replay folds the decisions and never decides again.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::alerts::AlertStore;
use super::route::RouteTree;
use super::{Fingerprint, FingerprintMap};
use crate::eventlog::{Event, EventKind, FlapChange, NewEvent, Projection};

/// The most state changes kept per alert: `flap.changes` may not exceed it.
pub const CHANGES_KEPT: usize = 64;

/// Changes older than this are forgotten whatever the window: `flap.window`
/// may not exceed it.
pub const LONGEST_WINDOW_SECS: i64 = 24 * 3600;

/// The mute reason the dispatcher gives a flapping alert.
pub const FLAPPING: &str = "flapping";

/// What the log says about one alert's changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlapState {
    /// Firing as of the last change.
    pub firing: bool,
    /// When it changed state, oldest first, at most [`CHANGES_KEPT`].
    pub changes: VecDeque<DateTime<Utc>>,
    /// Since when it is flapping, and with which options.
    pub flapping: Option<Flapping>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flapping {
    pub since: DateTime<Utc>,
    pub changes: u32,
    pub window_secs: i64,
    pub stable_secs: i64,
}

impl FlapState {
    /// When a flapping alert will have been stable long enough.
    pub fn stable_at(&self) -> Option<DateTime<Utc>> {
        let f = self.flapping.as_ref()?;
        let last = self.changes.back().copied().unwrap_or(f.since).max(f.since);
        Some(last + Duration::seconds(f.stable_secs))
    }

    fn changed(&mut self, firing: bool, at: DateTime<Utc>) {
        if self.firing == firing {
            return;
        }
        self.firing = firing;
        self.changes.push_back(at);
        let horizon = at - Duration::seconds(LONGEST_WINDOW_SECS);
        while self.changes.len() > CHANGES_KEPT
            || self.changes.front().is_some_and(|t| *t < horizon)
        {
            self.changes.pop_front();
        }
    }
}

/// Fold of alert state changes and flapping decisions, per fingerprint.
#[derive(Default)]
pub struct FlapView {
    inner: RwLock<Inner>,
}

#[derive(Default, Serialize, Deserialize)]
struct Inner {
    /// Keyed by the parsed fingerprint: replay folds every state change
    /// into this table, and a `u64` key is neither hashed with SipHash nor
    /// allocated. A fingerprint that does not parse is not an alert the
    /// alert store holds either, so it has no state here. Holds the alerts
    /// that changed state more than once (or were decided on); see
    /// `fired_once` for the rest.
    by_fp: FingerprintMap<FlapState>,
    /// Alerts whose only change so far is their first fire, with its time
    /// in nanoseconds since 1970: the state `FlapState { firing: true,
    /// changes: [at], flapping: None }` in 16 bytes instead of a `FlapState`
    /// (~80 bytes in the table and a `VecDeque` allocation) or a time (24).
    /// Nearly every alert is here (100,000 firing alerts that never flipped
    /// cost 15 MB as full states). An alert is in at most one of the two
    /// tables; its second change (or a first fire nanoseconds cannot hold,
    /// after 2262) puts it in `by_fp`.
    #[serde(default)]
    fired_once: FingerprintMap<i64>,
    /// Fingerprints flapping now.
    flapping: BTreeSet<String>,
    /// Bumped whenever `flapping` changes, so the dispatcher knows its
    /// group membership is stale.
    version: u64,
}

impl Inner {
    /// The state of alert `fp`, whichever table holds it.
    fn state(&self, fp: u64) -> Option<FlapState> {
        match self.by_fp.get(&fp) {
            Some(s) => Some(s.clone()),
            None => self.fired_once.get(&fp).map(|at| fired_once(*at)),
        }
    }

    /// Every alert's state, in no order.
    fn states(&self) -> impl Iterator<Item = (u64, FlapState)> + '_ {
        let full = self.by_fp.iter().map(|(k, v)| (*k, v.clone()));
        let once = self.fired_once.iter().map(|(k, at)| (*k, fired_once(*at)));
        full.chain(once)
    }

    /// The full state of `fp`, moving it out of `fired_once` (or starting
    /// it empty) first.
    fn full_state(&mut self, fp: u64) -> &mut FlapState {
        let moved = self.fired_once.remove(&fp).map(fired_once);
        self.by_fp
            .entry(fp)
            .or_insert_with(|| moved.unwrap_or_default())
    }

    /// Folds a report or resolve that leaves `fp` firing or not at `at`.
    fn changed(&mut self, fp: u64, firing: bool, at: DateTime<Utc>) {
        if let Some(s) = self.by_fp.get_mut(&fp) {
            s.changed(firing, at);
        } else if let Some(first) = self.fired_once.get(&fp) {
            // Still firing: a re-send, no change. Otherwise its second change.
            if !firing {
                let mut s = fired_once(*first);
                s.changed(firing, at);
                self.fired_once.remove(&fp);
                self.by_fp.insert(fp, s);
            }
        } else if firing {
            // Its first fire. An alert first seen resolved never fired:
            // nothing to count.
            match at.timestamp_nanos_opt() {
                Some(nanos) => {
                    self.fired_once.insert(fp, nanos);
                }
                None => self.by_fp.entry(fp).or_default().changed(firing, at),
            }
        }
    }
}

impl Inner {
    /// Folds one event: what `apply` does under the view's lock.
    fn fold(&mut self, event: &Event) {
        let at = event.occurred_at;
        match &event.kind {
            EventKind::AlertReceived(r) => {
                let Some(fp) = Fingerprint::parse(&r.fingerprint) else {
                    return;
                };
                let firing = r.ends_at.is_none_or(|e| e > at);
                self.changed(fp.0, firing, at);
            }
            EventKind::AlertResolved(r) => {
                let Some(fp) = Fingerprint::parse(&r.fingerprint) else {
                    return;
                };
                self.changed(fp.0, false, at);
            }
            EventKind::AlertFlappingStarted(f) => {
                if let Some(fp) = Fingerprint::parse(&f.fingerprint) {
                    self.full_state(fp.0).flapping = Some(Flapping {
                        since: at,
                        changes: f.changes,
                        window_secs: f.window_secs,
                        stable_secs: f.stable_secs,
                    });
                }
                self.flapping.insert(f.fingerprint.clone());
                self.version += 1;
            }
            EventKind::AlertFlappingStopped(f) => {
                if let Some(fp) = Fingerprint::parse(&f.fingerprint)
                    && let Some(s) = self.by_fp.get_mut(&fp.0)
                {
                    s.flapping = None;
                }
                self.flapping.remove(&f.fingerprint);
                self.version += 1;
            }
            _ => {}
        }
    }
}

/// The state of an alert whose only change was its first fire, `at`
/// nanoseconds since 1970.
fn fired_once(at: i64) -> FlapState {
    FlapState {
        firing: true,
        changes: VecDeque::from([DateTime::from_timestamp_nanos(at)]),
        flapping: None,
    }
}

impl FlapView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, fp: &str) -> Option<FlapState> {
        let fp = Fingerprint::parse(fp)?;
        self.inner.read().state(fp.0)
    }

    /// Whether `fp` is flapping now.
    pub fn is_flapping(&self, fp: &str) -> bool {
        self.inner.read().flapping.contains(fp)
    }

    /// The alerts flapping now.
    pub fn flapping(&self) -> BTreeSet<String> {
        self.inner.read().flapping.clone()
    }

    /// Every alert's state, sorted by fingerprint.
    pub fn all(&self) -> Vec<(String, FlapState)> {
        let inner = self.inner.read();
        let mut all: Vec<_> = inner.states().collect();
        // Numeric order is the order of the fixed-width hex form.
        all.sort_by_key(|(k, _)| *k);
        all.into_iter()
            .map(|(k, v)| (Fingerprint(k).to_string(), v))
            .collect()
    }

    pub fn version(&self) -> u64 {
        self.inner.read().version
    }

    /// The earliest instant a flapping alert may stop, for the timer loop.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let inner = self.inner.read();
        inner
            .flapping
            .iter()
            .filter_map(|fp| inner.by_fp.get(&Fingerprint::parse(fp)?.0)?.stable_at())
            .min()
    }
}

impl Projection for FlapView {
    fn name(&self) -> &'static str {
        "flaps"
    }

    fn apply(&self, event: &Event) {
        self.inner.write().fold(event);
    }

    /// Replay's ranges: the lock taken once for many events.
    fn apply_all(&self, events: &[&Event]) {
        let mut inner = self.inner.write();
        for event in events {
            inner.fold(event);
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let inner = self.inner.read();
        let copy = Inner {
            by_fp: inner.by_fp.clone(),
            fired_once: inner.fired_once.clone(),
            flapping: inner.flapping.clone(),
            version: inner.version,
        };
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &copy)
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let inner: Inner = serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.inner.write() = inner;
        Ok(())
    }
}

/// The flapping decisions due at `now`: starts for alerts that changed
/// state in `folded` and crossed their route's threshold, stops for
/// flapping alerts stable for their period. Deterministic in the views and
/// `now`; once folded, the same call decides nothing again.
pub fn decide(
    view: &FlapView,
    alerts: &AlertStore,
    tree: &RouteTree,
    now: DateTime<Utc>,
    folded: &[std::sync::Arc<Event>],
) -> Vec<NewEvent> {
    let mut out = Vec::new();
    let changed: BTreeSet<&str> = folded
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AlertReceived(r) => Some(r.fingerprint.as_str()),
            EventKind::AlertResolved(r) => Some(r.fingerprint.as_str()),
            _ => None,
        })
        .collect();
    for fp in changed {
        let Some(state) = view.get(fp) else {
            continue;
        };
        // Most alerts change state once or twice: no route lookup for them.
        if state.flapping.is_some() || state.changes.len() < 2 {
            continue;
        }
        let Some(alert) = Fingerprint::parse(fp).and_then(|f| alerts.get(f)) else {
            continue;
        };
        let Some(route) = tree.matching(&alert.report.labels).into_iter().next() else {
            continue;
        };
        let opts = route.opts().flap;
        if opts.changes == 0 {
            continue;
        }
        let since = now - opts.window;
        let n = state.changes.iter().filter(|t| **t > since).count() as u32;
        if n >= opts.changes {
            out.push(NewEvent::new(
                now,
                "fenghuo",
                fp,
                EventKind::AlertFlappingStarted(FlapChange {
                    fingerprint: fp.to_string(),
                    changes: n,
                    window_secs: opts.window.num_seconds(),
                    stable_secs: opts.stable.num_seconds(),
                    firing: state.firing,
                }),
            ));
        }
    }
    for fp in view.flapping() {
        let Some(state) = view.get(&fp) else {
            continue;
        };
        let (Some(stable_at), Some(f)) = (state.stable_at(), state.flapping.as_ref()) else {
            continue;
        };
        if now >= stable_at {
            out.push(NewEvent::new(
                now,
                "fenghuo",
                fp.clone(),
                EventKind::AlertFlappingStopped(FlapChange {
                    fingerprint: fp,
                    changes: 0,
                    window_secs: f.window_secs,
                    stable_secs: f.stable_secs,
                    firing: state.firing,
                }),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::alerts::tests::{received, t};
    use crate::eventlog::{AlertResolution, LabelSet};

    fn fp(name: &str) -> String {
        let labels: LabelSet = [("alertname", name)].into();
        Fingerprint::of(&labels).to_string()
    }

    fn event(seq: u64, at: i64, kind: EventKind) -> Event {
        Event {
            seq,
            id: seq.to_string().into(),
            occurred_at: t(at),
            recorded_at: t(at),
            source: "test".into(),
            key: Default::default(),
            idempotency_key: None,
            kind,
        }
    }

    fn resolved(name: &str, at: i64) -> EventKind {
        EventKind::AlertResolved(AlertResolution {
            fingerprint: fp(name),
            ends_at: t(at),
            reason: "resolved".into(),
            report: None,
        })
    }

    fn flap(name: &str, started: bool) -> EventKind {
        let f = FlapChange {
            fingerprint: fp(name),
            changes: if started { 3 } else { 0 },
            window_secs: 600,
            stable_secs: 300,
            firing: true,
        };
        if started {
            EventKind::AlertFlappingStarted(f)
        } else {
            EventKind::AlertFlappingStopped(f)
        }
    }

    /// The fold as it was before `fired_once`: a full state for every alert
    /// from its first fire. The view must answer exactly what this answers.
    fn reference_fold(states: &mut FingerprintMap<FlapState>, event: &Event) {
        let at = event.occurred_at;
        match &event.kind {
            EventKind::AlertReceived(r) => {
                let fp = Fingerprint::parse(&r.fingerprint).unwrap().0;
                let firing = r.ends_at.is_none_or(|e| e > at);
                match states.get_mut(&fp) {
                    Some(s) => s.changed(firing, at),
                    None if firing => states.entry(fp).or_default().changed(firing, at),
                    None => {}
                }
            }
            EventKind::AlertResolved(r) => {
                let fp = Fingerprint::parse(&r.fingerprint).unwrap().0;
                if let Some(s) = states.get_mut(&fp) {
                    s.changed(false, at);
                }
            }
            EventKind::AlertFlappingStarted(f) => {
                let fp = Fingerprint::parse(&f.fingerprint).unwrap().0;
                states.entry(fp).or_default().flapping = Some(Flapping {
                    since: at,
                    changes: f.changes,
                    window_secs: f.window_secs,
                    stable_secs: f.stable_secs,
                });
            }
            EventKind::AlertFlappingStopped(f) => {
                let fp = Fingerprint::parse(&f.fingerprint).unwrap().0;
                if let Some(s) = states.get_mut(&fp) {
                    s.flapping = None;
                }
            }
            _ => {}
        }
    }

    /// (seconds, event, alerts then held in full — the rest fired once).
    #[test]
    fn an_alert_that_never_flipped_has_no_full_state_yet_flaps_as_before() {
        let timeline: Vec<(i64, EventKind, &[&str])> = vec![
            (0, received("steady", None), &[]),
            (0, received("flips", Some(600)), &[]),
            // First seen resolved: never fired, nothing kept at all.
            (5, received("born-resolved", Some(1)), &[]),
            // Re-sends of a firing alert are no change.
            (60, received("steady", None), &[]),
            (60, received("flips", Some(900)), &[]),
            // The second change moves the alert to a full state.
            (120, resolved("flips", 120), &["flips"]),
            (180, received("flips", None), &["flips"]),
            (240, resolved("flips", 240), &["flips"]),
            // A decision about an alert that fired once gives it a full state
            // holding its first fire.
            (250, received("decided", None), &["flips"]),
            (260, flap("decided", true), &["decided", "flips"]),
            (300, flap("decided", false), &["decided", "flips"]),
            // The first fire is forgotten after a day, as before.
            (
                LONGEST_WINDOW_SECS + 1,
                resolved("steady", LONGEST_WINDOW_SECS + 1),
                &["decided", "flips", "steady"],
            ),
        ];
        let view = FlapView::new();
        let mut reference = FingerprintMap::default();
        for (i, (at, kind, full)) in timeline.into_iter().enumerate() {
            let e = event(i as u64 + 1, at, kind);
            view.apply(&e);
            reference_fold(&mut reference, &e);
            let mut want: Vec<(String, FlapState)> = reference
                .iter()
                .map(|(k, v)| (Fingerprint(*k).to_string(), v.clone()))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(view.all(), want, "step {i}: the states");
            for (k, v) in &want {
                assert_eq!(view.get(k).as_ref(), Some(v), "step {i}: get {k}");
            }
            assert_eq!(view.get(&fp("born-resolved")), None);
            let inner = view.inner.read();
            let mut held: Vec<u64> = inner.by_fp.keys().copied().collect();
            let mut want_held: Vec<u64> = full
                .iter()
                .map(|n| Fingerprint::parse(&fp(n)).unwrap().0)
                .collect();
            held.sort();
            want_held.sort();
            assert_eq!(held, want_held, "step {i}: alerts held in full");
            assert_eq!(
                inner.by_fp.len() + inner.fired_once.len(),
                want.len(),
                "step {i}: an alert is in one table only"
            );
        }
        assert_eq!(
            view.get(&fp("steady")).unwrap().changes,
            VecDeque::from([t(LONGEST_WINDOW_SECS + 1)]),
            "the first fire, older than a day, is forgotten at the second change"
        );

        // A snapshot restores both tables exactly.
        let restored = FlapView::new();
        crate::eventlog::projection::restore_from_snapshot(&view, &restored);
        assert_eq!(restored.all(), view.all());
        assert_eq!(
            restored.inner.read().fired_once.len(),
            view.inner.read().fired_once.len()
        );
        assert_eq!(restored.version(), view.version());
    }
}
