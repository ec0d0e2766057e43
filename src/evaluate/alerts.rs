//! `AlertStore`: every alert as Alertmanager shows it — labels, annotations,
//! times, and whether it is firing — as a fold over the `alert.*` events.
//!
//! State follows Alertmanager: an alert fires from `startsAt` until its
//! `endsAt` passes or a source resolves it. The store only folds; deciding
//! (routing, silencing, notifying) happens elsewhere, and reads it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::Fingerprint;
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
    alerts: RwLock<HashMap<u64, StoredAlert>>,
    /// Alerts changed since the dispatcher last asked, so it can redo the
    /// groups of those alone.
    changes: parking_lot::Mutex<Changes>,
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
        self.alerts.read().get(&fp.0).cloned()
    }

    /// Every alert, sorted by fingerprint (a stable order for APIs).
    pub fn all(&self) -> Vec<(Fingerprint, StoredAlert)> {
        let mut all: Vec<_> = self
            .alerts
            .read()
            .iter()
            .map(|(fp, a)| (Fingerprint(*fp), a.clone()))
            .collect();
        all.sort_by_key(|(fp, _)| *fp);
        all
    }

    /// The alerts `keep` accepts, sorted by fingerprint. Only those are
    /// cloned: the writer waits for this lock, so a scan must stay short.
    pub fn filtered(&self, keep: impl Fn(&StoredAlert) -> bool) -> Vec<(Fingerprint, StoredAlert)> {
        let mut out: Vec<_> = self
            .alerts
            .read()
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|(fp, a)| (Fingerprint(*fp), a.clone()))
            .collect();
        out.sort_by_key(|(fp, _)| *fp);
        out
    }

    pub fn len(&self) -> usize {
        self.alerts.read().len()
    }

    /// The changes since the last call, for the one consumer (the
    /// dispatcher).
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
        match &event.kind {
            EventKind::AlertReceived(r) => self.changed(Fingerprint::parse(&r.fingerprint)),
            EventKind::AlertResolved(r) => self.changed(Fingerprint::parse(&r.fingerprint)),
            EventKind::AlertRefreshed { leases } => self.changed(leases.iter().flat_map(|l| {
                l.fingerprints
                    .iter()
                    .filter_map(|fp| Fingerprint::parse(fp))
            })),
            _ => {}
        }
        let mut alerts = self.alerts.write();
        match &event.kind {
            EventKind::AlertReceived(report) => {
                let Some(fp) = Fingerprint::parse(&report.fingerprint) else {
                    return;
                };
                // A changed report of a firing alert is the same episode; a
                // report after a resolve starts a new one.
                let fired = alerts.get(&fp.0).is_some_and(|a| a.fired && !a.resolved);
                alerts.insert(
                    fp.0,
                    StoredAlert {
                        fired,
                        ends_at: report.ends_at,
                        report: report.clone(),
                        updated_at: at,
                        resolved: false,
                        acked_by: None,
                        version: event.seq,
                    },
                );
            }
            EventKind::AlertRefreshed { leases } => {
                for lease in leases {
                    for fp in &lease.fingerprints {
                        let Some(fp) = Fingerprint::parse(fp) else {
                            continue;
                        };
                        if let Some(a) = alerts.get_mut(&fp.0)
                            && !a.resolved
                            && a.ends_at.is_some_and(|e| e < lease.ends_at)
                        {
                            a.ends_at = Some(lease.ends_at);
                        }
                    }
                }
            }
            EventKind::AlertResolved(res) => {
                let Some(fp) = Fingerprint::parse(&res.fingerprint) else {
                    return;
                };
                let previous = alerts.remove(&fp.0);
                let report = match (&res.report, previous) {
                    (Some(r), _) => Arc::new(r.clone()),
                    (None, Some(p)) => p.report,
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
                if let Some(fp) = Fingerprint::parse(fingerprint)
                    && let Some(a) = alerts.get_mut(&fp.0)
                {
                    a.acked_by = Some(by.clone());
                    a.updated_at = at;
                    a.version = event.seq;
                }
            }
            EventKind::AlertFired { fingerprint } => {
                if let Some(fp) = Fingerprint::parse(fingerprint)
                    && let Some(a) = alerts.get_mut(&fp.0)
                {
                    a.fired = true;
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
        }
    }

    fn reset(&self) {
        self.alerts.write().clear();
        self.changed_everything();
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        // Copies share each alert's report; serialising writes text
        // directly (a JSON tree of every alert would cost far more).
        let all: Vec<(u64, StoredAlert)> = self
            .alerts
            .read()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Some(Box::new(move |out: &mut Vec<u8>| {
            serde_json::to_writer(out, &all)
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let all: Vec<(u64, StoredAlert)> =
            serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.alerts.write() = all.into_iter().collect();
        self.changed_everything();
        Ok(())
    }
}
