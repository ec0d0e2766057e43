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
    /// alert store holds either, so it has no state here.
    by_fp: FingerprintMap<FlapState>,
    /// Fingerprints flapping now.
    flapping: BTreeSet<String>,
    /// Bumped whenever `flapping` changes, so the dispatcher knows its
    /// group membership is stale.
    version: u64,
}

impl FlapView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, fp: &str) -> Option<FlapState> {
        let fp = Fingerprint::parse(fp)?;
        self.inner.read().by_fp.get(&fp.0).cloned()
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
        let mut all: Vec<_> = self
            .inner
            .read()
            .by_fp
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
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
        let at = event.occurred_at;
        match &event.kind {
            EventKind::AlertReceived(r) => {
                let Some(fp) = Fingerprint::parse(&r.fingerprint) else {
                    return;
                };
                let firing = r.ends_at.is_none_or(|e| e > at);
                let mut inner = self.inner.write();
                // An alert first seen resolved never fired: nothing to count.
                match inner.by_fp.get_mut(&fp.0) {
                    Some(s) => s.changed(firing, at),
                    None if firing => inner.by_fp.entry(fp.0).or_default().changed(firing, at),
                    None => {}
                }
            }
            EventKind::AlertResolved(r) => {
                let Some(fp) = Fingerprint::parse(&r.fingerprint) else {
                    return;
                };
                if let Some(s) = self.inner.write().by_fp.get_mut(&fp.0) {
                    s.changed(false, at);
                }
            }
            EventKind::AlertFlappingStarted(f) => {
                let mut inner = self.inner.write();
                if let Some(fp) = Fingerprint::parse(&f.fingerprint) {
                    inner.by_fp.entry(fp.0).or_default().flapping = Some(Flapping {
                        since: at,
                        changes: f.changes,
                        window_secs: f.window_secs,
                        stable_secs: f.stable_secs,
                    });
                }
                inner.flapping.insert(f.fingerprint.clone());
                inner.version += 1;
            }
            EventKind::AlertFlappingStopped(f) => {
                let mut inner = self.inner.write();
                if let Some(fp) = Fingerprint::parse(&f.fingerprint)
                    && let Some(s) = inner.by_fp.get_mut(&fp.0)
                {
                    s.flapping = None;
                }
                inner.flapping.remove(&f.fingerprint);
                inner.version += 1;
            }
            _ => {}
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let inner = self.inner.read();
        let copy = Inner {
            by_fp: inner.by_fp.clone(),
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
