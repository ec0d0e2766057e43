//! `AlertStore`: every alert as Alertmanager shows it — labels, annotations,
//! times, and whether it is firing — as a fold over the `alert.*` events.
//!
//! State follows Alertmanager: an alert fires from `startsAt` until its
//! `endsAt` passes or a source resolves it. The store only folds; deciding
//! (routing, silencing, notifying) happens elsewhere, and reads it.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::{Fingerprint, FingerprintMap, FingerprintSet};
use crate::eventlog::{AlertReport, Event, EventKind, Projection};

/// One alert as the log knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredAlert {
    /// The last report a source sent (labels, annotations, start, …).
    pub report: Arc<AlertReport>,
    /// The `endsAt` the log holds: reported, extended by leases, or the
    /// resolve time. `None` = until a source resolves it.
    pub ends_at: Option<DateTime<Utc>>,
    /// When the log last changed this alert (Alertmanager's `updatedAt`).
    pub updated_at: DateTime<Utc>,
    /// A source said it is resolved (as opposed to `endsAt` merely passing).
    pub resolved: bool,
    pub acked_by: Option<String>,
    /// `seq` of the last event that changed the alert (its version, for
    /// decisions that must not race a newer report).
    pub version: u64,
    /// The dispatcher has recorded `alert.fired` for this firing episode.
    #[serde(default)]
    pub fired: bool,
}

impl StoredAlert {
    /// Firing at `now`: not resolved, and `endsAt` unset or still ahead.
    pub fn firing_at(&self, now: DateTime<Utc>) -> bool {
        !self.resolved && self.ends_at.is_none_or(|e| e > now)
    }
}

#[derive(Default)]
pub struct AlertStore {
    alerts: RwLock<Alerts>,
    /// Alerts changed since the dispatcher last asked, so it can redo the
    /// groups of those alone.
    changes: parking_lot::Mutex<Changes>,
}

/// The alerts by fingerprint, with the two orders the dispatcher asks for
/// at every pass: scanning every alert for them cost most of a pass once
/// thousands were stored.
#[derive(Default)]
struct Alerts {
    by_fp: FingerprintMap<StoredAlert>,
    /// Brought up to date when read, not at every fold: a replay folds a
    /// million events and reads them once (keeping them current cost a
    /// third of replay time in B-tree updates for lease extensions).
    order: parking_lot::Mutex<Order>,
}

/// The dispatcher's two orders over the alerts.
#[derive(Default)]
struct Order {
    /// Not resolved, and `alert.fired` not recorded for this episode.
    unfired: BTreeSet<u64>,
    /// Not resolved, by `endsAt`.
    ends: BTreeSet<(DateTime<Utc>, u64)>,
    /// The `endsAt` each alert is filed under in `ends`.
    filed_end: FingerprintMap<DateTime<Utc>>,
    /// Alerts changed since the orders were last brought up to date.
    stale: FingerprintSet,
    /// So many changed (a replay, a restore) that filing everything again
    /// is cheaper: done at the next read.
    rebuild: bool,
}

/// Beyond this many changed alerts between two reads, rebuild instead.
const STALE_KEPT: usize = 50_000;

impl Order {
    fn touch(&mut self, fp: u64) {
        if self.rebuild {
            return;
        }
        self.stale.insert(fp);
        if self.stale.len() > STALE_KEPT {
            self.stale = FingerprintSet::default();
            self.rebuild = true;
        }
    }

    fn unfile(&mut self, fp: u64) {
        self.unfired.remove(&fp);
        if let Some(e) = self.filed_end.remove(&fp) {
            self.ends.remove(&(e, fp));
        }
    }

    fn file(&mut self, fp: u64, a: &StoredAlert) {
        if !a.fired && !a.resolved {
            self.unfired.insert(fp);
        }
        if let (false, Some(e)) = (a.resolved, a.ends_at) {
            self.ends.insert((e, fp));
            self.filed_end.insert(fp, e);
        }
    }

    /// Files what changed since the last read.
    fn refresh(&mut self, by_fp: &FingerprintMap<StoredAlert>) {
        if self.rebuild {
            *self = Order::default();
            for (fp, a) in by_fp {
                self.file(*fp, a);
            }
            return;
        }
        for fp in std::mem::take(&mut self.stale) {
            self.unfile(fp);
            if let Some(a) = by_fp.get(&fp) {
                self.file(fp, a);
            }
        }
    }
}

impl Alerts {
    fn insert(&mut self, fp: u64, alert: StoredAlert) {
        self.by_fp.insert(fp, alert);
        self.order.get_mut().touch(fp);
    }

    /// Changes the alert at `fp`, if there is one, keeping the orders.
    fn update(&mut self, fp: u64, f: impl FnOnce(&mut StoredAlert)) {
        if let Some(a) = self.by_fp.get_mut(&fp) {
            f(a);
            self.order.get_mut().touch(fp);
        }
    }

    fn from_map(by_fp: FingerprintMap<StoredAlert>) -> Alerts {
        Alerts {
            by_fp,
            order: parking_lot::Mutex::new(Order {
                rebuild: true,
                ..Order::default()
            }),
        }
    }

    /// The orders, up to date.
    fn order(&self) -> parking_lot::MutexGuard<'_, Order> {
        let mut order = self.order.lock();
        order.refresh(&self.by_fp);
        order
    }

    fn cloned(&self, fps: impl IntoIterator<Item = u64>) -> Vec<(Fingerprint, StoredAlert)> {
        let mut out: Vec<_> = fps
            .into_iter()
            .filter_map(|fp| self.by_fp.get(&fp).map(|a| (Fingerprint(fp), a.clone())))
            .collect();
        out.sort_by_key(|(fp, _)| *fp);
        out
    }
}

/// What changed since [`AlertStore::take_changes`] was last called.
#[derive(Debug, Default)]
pub struct Changes {
    /// Fingerprints whose state changed.
    pub fingerprints: Vec<Fingerprint>,
    /// Too many to list, or the store was reset or restored: start over.
    pub everything: bool,
}

/// Beyond this many unclaimed changes, nobody is asking (a replay): stop
/// listing them.
const CHANGES_KEPT: usize = 200_000;

impl AlertStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, fp: Fingerprint) -> Option<StoredAlert> {
        self.alerts.read().by_fp.get(&fp.0).cloned()
    }

    /// Every alert, sorted by fingerprint (a stable order for APIs).
    pub fn all(&self) -> Vec<(Fingerprint, StoredAlert)> {
        let mut all: Vec<_> = self
            .alerts
            .read()
            .by_fp
            .iter()
            .map(|(fp, a)| (Fingerprint(*fp), a.clone()))
            .collect();
        all.sort_by_key(|(fp, _)| *fp);
        all
    }

    /// Alerts firing at `now` whose `alert.fired` is not recorded, sorted
    /// by fingerprint.
    pub fn unfired_firing(&self, now: DateTime<Utc>) -> Vec<(Fingerprint, StoredAlert)> {
        let alerts = self.alerts.read();
        let fps: Vec<u64> = alerts
            .order()
            .unfired
            .iter()
            .copied()
            .filter(|fp| alerts.by_fp.get(fp).is_some_and(|a| a.firing_at(now)))
            .collect();
        alerts.cloned(fps)
    }

    /// Alerts not resolved whose `endsAt` is after `after` (any, with
    /// `None`) and at or before `until`, sorted by fingerprint.
    pub fn ending_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Vec<(Fingerprint, StoredAlert)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        if after.is_some_and(|a| a >= until) {
            return Vec::new();
        }
        let alerts = self.alerts.read();
        let from = match after {
            // Past every fingerprint ending exactly at `after`.
            Some(a) => Excluded((a, u64::MAX)),
            None => Unbounded,
        };
        let fps: Vec<u64> = alerts
            .order()
            .ends
            .range((from, Included((until, u64::MAX))))
            .map(|(_, fp)| *fp)
            .collect();
        alerts.cloned(fps)
    }

    /// Whether [`Self::unfired_firing`] would return any, without copying
    /// them: the dispatcher's idle check asks at every timer pass.
    pub fn any_unfired_firing(&self, now: DateTime<Utc>) -> bool {
        let alerts = self.alerts.read();
        alerts
            .order()
            .unfired
            .iter()
            .any(|fp| alerts.by_fp.get(fp).is_some_and(|a| a.firing_at(now)))
    }

    /// Whether [`Self::ending_between`] would return any, without copying
    /// them.
    pub fn any_ending_between(&self, after: Option<DateTime<Utc>>, until: DateTime<Utc>) -> bool {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        if after.is_some_and(|a| a >= until) {
            return false;
        }
        let from = match after {
            Some(a) => Excluded((a, u64::MAX)),
            None => Unbounded,
        };
        let alerts = self.alerts.read();
        alerts
            .order()
            .ends
            .range((from, Included((until, u64::MAX))))
            .next()
            .is_some()
    }

    /// The alerts `keep` accepts, sorted by fingerprint. Only those are
    /// cloned: the writer waits for this lock, so a scan must stay short.
    pub fn filtered(&self, keep: impl Fn(&StoredAlert) -> bool) -> Vec<(Fingerprint, StoredAlert)> {
        let mut out: Vec<_> = self
            .alerts
            .read()
            .by_fp
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|(fp, a)| (Fingerprint(*fp), a.clone()))
            .collect();
        out.sort_by_key(|(fp, _)| *fp);
        out
    }

    pub fn len(&self) -> usize {
        self.alerts.read().by_fp.len()
    }

    /// The changes since the last call, for the one consumer (the
    /// dispatcher).
    /// Whether any alert changed since the last [`Self::take_changes`].
    pub fn has_changes(&self) -> bool {
        let changes = self.changes.lock();
        changes.everything || !changes.fingerprints.is_empty()
    }

    pub fn take_changes(&self) -> Changes {
        std::mem::take(&mut *self.changes.lock())
    }

    fn changed(&self, fps: impl IntoIterator<Item = Fingerprint>) {
        let mut changes = self.changes.lock();
        if changes.everything {
            return;
        }
        changes.fingerprints.extend(fps);
        if changes.fingerprints.len() > CHANGES_KEPT {
            changes.fingerprints = Vec::new();
            changes.everything = true;
        }
    }

    fn changed_everything(&self) {
        let mut changes = self.changes.lock();
        changes.fingerprints = Vec::new();
        changes.everything = true;
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Projection for AlertStore {
    fn name(&self) -> &'static str {
        "alert-store"
    }

    fn apply(&self, event: &Event) {
        let at = event.recorded_at;
        // Changes are listed before the alerts change (a dispatcher that
        // takes them and reads early sees the alert again next pass).
        let mut extended = Vec::new();
        match &event.kind {
            EventKind::AlertReceived(r) => self.changed(Fingerprint::parse(&r.fingerprint)),
            EventKind::AlertResolved(r) => self.changed(Fingerprint::parse(&r.fingerprint)),
            EventKind::AlertRefreshed { leases } => {
                // Parsed once, for the change list and the fold below.
                extended = leases
                    .iter()
                    .flat_map(|l| {
                        l.fingerprints
                            .values()
                            .flatten()
                            .map(|fp| (Fingerprint(fp), l.ends_at))
                    })
                    .collect();
                self.changed(extended.iter().map(|(fp, _)| *fp));
            }
            _ => {}
        }
        let mut alerts = self.alerts.write();
        match &event.kind {
            EventKind::AlertReceived(report) => {
                let Some(fp) = Fingerprint::parse(&report.fingerprint) else {
                    return;
                };
                let stored = |fired| StoredAlert {
                    fired,
                    ends_at: report.ends_at,
                    report: report.clone(),
                    updated_at: at,
                    resolved: false,
                    acked_by: None,
                    version: event.seq,
                };
                match alerts.by_fp.get_mut(&fp.0) {
                    // A changed report of a firing alert is the same
                    // episode; a report after a resolve starts a new one.
                    Some(a) => *a = stored(a.fired && !a.resolved),
                    None => {
                        alerts.by_fp.insert(fp.0, stored(false));
                    }
                }
                alerts.order.get_mut().touch(fp.0);
            }
            EventKind::AlertRefreshed { .. } => {
                let alerts = &mut *alerts;
                for (fp, ends_at) in extended {
                    if let Some(a) = alerts.by_fp.get_mut(&fp.0)
                        && !a.resolved
                        && a.ends_at.is_some_and(|e| e < ends_at)
                    {
                        a.ends_at = Some(ends_at);
                        alerts.order.get_mut().touch(fp.0);
                    }
                }
            }
            EventKind::AlertResolved(res) => {
                let Some(fp) = Fingerprint::parse(&res.fingerprint) else {
                    return;
                };
                let previous = alerts.by_fp.get(&fp.0).map(|a| a.report.clone());
                let report = match (&res.report, previous) {
                    (Some(r), _) => Arc::new(r.clone()),
                    (None, Some(p)) => p,
                    (None, None) => return,
                };
                alerts.insert(
                    fp.0,
                    StoredAlert {
                        fired: false,
                        report,
                        ends_at: Some(res.ends_at),
                        updated_at: at,
                        resolved: true,
                        acked_by: None,
                        version: event.seq,
                    },
                );
            }
            EventKind::AlertAcked {
                fingerprint, by, ..
            } => {
                if let Some(fp) = Fingerprint::parse(fingerprint) {
                    alerts.update(fp.0, |a| {
                        a.acked_by = Some(by.clone());
                        a.updated_at = at;
                        a.version = event.seq;
                    });
                }
            }
            EventKind::AlertFired { fingerprint } => {
                if let Some(fp) = Fingerprint::parse(fingerprint) {
                    alerts.update(fp.0, |a| a.fired = true);
                }
            }
            // Silences mute alerts at read and decision time; they do not
            // change what the source said.
            EventKind::SilenceCreated(_)
            | EventKind::SilenceUpdated(_)
            | EventKind::SilenceExpired { .. } => {}
            // Decisions about groups; they do not change an alert.
            EventKind::GroupScheduled(_)
            | EventKind::GroupClosed(_)
            | EventKind::NotificationDue(_)
            | EventKind::NotificationSent(_)
            | EventKind::NotificationFailed(_)
            | EventKind::NotificationSkipped(_)
            | EventKind::EscalationStepped(_)
            | EventKind::IncidentAcknowledged(_)
            | EventKind::IncidentUnacknowledged(_)
            | EventKind::IncidentResolved(_)
            | EventKind::IncidentSnoozed(_) => {}
            // Inputs of the rule engine; its alerts arrive as `alert.*`.
            EventKind::K8sEvent(_)
            | EventKind::ProbeResult(_)
            | EventKind::HeartbeatReceived(_)
            | EventKind::RulesLoaded(_) => {}
            EventKind::K8sWatchProgressed(_) => {}
            // Releases and remediation: the act stage's.
            EventKind::ReleaseRecorded(_)
            | EventKind::ReleaseStatusChanged(_)
            | EventKind::ReleaseGateDecided(_)
            | EventKind::ReleaseSuspected(_)
            | EventKind::RemediationDue(_)
            | EventKind::RemediationApproved(_)
            | EventKind::RemediationDryRun(_)
            | EventKind::RemediationRefused(_)
            | EventKind::RemediationSucceeded(_)
            | EventKind::RemediationFailed(_) => {}
            // Flapping is the flap view's; the alert itself is unchanged.
            EventKind::AlertFlappingStarted(_) | EventKind::AlertFlappingStopped(_) => {}
        }
    }

    fn reset(&self) {
        *self.alerts.write() = Alerts::default();
        self.changed_everything();
    }

    fn snapshot_items(&self) -> usize {
        self.len()
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        // Copies share each alert's report; serialising writes text
        // directly (a JSON tree of every alert would cost far more).
        let all: Vec<(u64, StoredAlert)> = self
            .alerts
            .read()
            .by_fp
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &all)
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let all: Vec<(u64, StoredAlert)> =
            serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.alerts.write() = Alerts::from_map(all.into_iter().collect());
        self.changed_everything();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::eventlog::{AlertResolution, Lease};

    pub(crate) fn t(secs: i64) -> DateTime<Utc> {
        "2026-11-26T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(secs)
    }

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            id: seq.to_string().into(),
            occurred_at: t(0),
            recorded_at: t(0),
            source: "test".into(),
            key: Default::default(),
            idempotency_key: None,
            kind,
        }
    }

    /// A report of `name` started at 0 s; `ends` in seconds, `None` =
    /// until resolved (also the flap view's tests').
    pub(crate) fn received(name: &str, ends: Option<i64>) -> EventKind {
        let labels: LabelSet = [("alertname".to_string(), name.to_string())].into();
        EventKind::AlertReceived(Arc::new(AlertReport {
            fingerprint: Fingerprint::of(&labels).to_string().into(),
            labels,
            annotations: LabelSet::new(),
            starts_at: t(0),
            ends_at: ends.map(t),
            generator_url: String::new(),
            extra: Default::default(),
        }))
    }

    fn fp(name: &str) -> String {
        let labels: LabelSet = [("alertname".to_string(), name.to_string())].into();
        Fingerprint::of(&labels).to_string()
    }

    use crate::eventlog::LabelSet;

    /// The orders the store keeps answer what a scan of every alert
    /// answers, through every change an alert goes through.
    #[test]
    fn the_kept_orders_answer_what_a_scan_answers() {
        let store = AlertStore::new();
        let steps = vec![
            received("a", Some(100)),
            received("b", Some(50)),
            received("c", None),
            EventKind::AlertFired {
                fingerprint: fp("a"),
            },
            // A lease moves b's end.
            EventKind::AlertRefreshed {
                leases: vec![Lease {
                    ends_at: t(200),
                    fingerprints: vec![fp("b")].into(),
                }],
            },
            EventKind::AlertResolved(AlertResolution {
                fingerprint: fp("a"),
                ends_at: t(60),
                reason: "resolved".into(),
                report: None,
            }),
            // A new episode of a, and c re-sent with an end.
            received("a", Some(300)),
            received("c", Some(40)),
            EventKind::AlertFired {
                fingerprint: fp("c"),
            },
        ];
        let names = |v: Vec<(Fingerprint, StoredAlert)>| -> Vec<Fingerprint> {
            v.into_iter().map(|(f, _)| f).collect()
        };
        let check = |store: &AlertStore, i: usize| {
            for now in [0, 45, 55, 150, 250, 400] {
                let now = t(now);
                assert_eq!(
                    names(store.unfired_firing(now)),
                    names(store.filtered(|a| !a.fired && a.firing_at(now))),
                    "step {i}"
                );
                assert_eq!(
                    names(store.ending_between(None, now)),
                    names(store.filtered(|a| !a.resolved && a.ends_at.is_some_and(|e| e <= now))),
                    "step {i}"
                );
                let since = t(45);
                assert_eq!(
                    names(store.ending_between(Some(since), now)),
                    names(store.filtered(|a| {
                        !a.resolved && a.ends_at.is_some_and(|e| e > since && e <= now)
                    })),
                    "step {i}"
                );
            }
        };
        let unread = AlertStore::new();
        for (i, kind) in steps.into_iter().enumerate() {
            unread.apply(&event(i as u64 + 1, kind.clone()));
            store.apply(&event(i as u64 + 1, kind));
            // Read after every change, and (below) only at the end: the
            // orders are brought up to date when read.
            check(&store, i);
        }
        check(&unread, 98);
        // A restored store files everything again at its first read.
        let restored = AlertStore::new();
        crate::eventlog::projection::restore_from_snapshot(&store, &restored);
        check(&restored, 99);
    }
}
