//! [`Releases`]: every release as a fold over the log.
//!
//! A release is recorded (`release.recorded`), then moves through
//! `started`, `succeeded`, `failed` or `rolled_back`
//! (`release.status_changed`); what went wrong in its bake window is linked
//! to it (`release.suspected`). The history of an app in an environment,
//! its rollback target and the releases still baking are read from here,
//! and which alerts are suspected of a release, and which `ReleaseSuspected`
//! alert (raised by the act stage under `releases.alert`) stands for it.
//! This view only folds: deciding is the act stage's, answering the API's.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::eventlog::event::{Release, ReleaseSuspicion};
use crate::eventlog::{Event, EventKind, Projection};

/// Evidence kept per release for the API (the count goes on).
const EVIDENCE_KEPT: usize = 50;
/// Which release a subject is suspected of is remembered this long (log
/// time) for notifications, once more than `SUSPECTS_KEPT` are known.
const KEEP_SUSPECTS_HOURS: i64 = 48;
const SUSPECTS_KEPT: usize = 10_000;
/// Statuses a release can be moved to.
pub const STATUSES: &[&str] = &["started", "succeeded", "failed", "rolled_back"];
/// `alertname` of Fenghuo's own alert for a suspected release: the cause
/// that heads the incident of the alerts suspected of it.
pub const RELEASE_ALERT: &str = "ReleaseSuspected";
/// The label of a `ReleaseSuspected` alert naming the release's id.
pub const RELEASE_LABEL: &str = "release";

/// The release a `ReleaseSuspected` alert stands for; `None` for any
/// other alert (a `release` label of someone else's, Helm's for one, names
/// no release of ours).
pub fn release_of_alert(labels: &crate::eventlog::LabelSet) -> Option<&str> {
    (labels.get("alertname") == Some(RELEASE_ALERT))
        .then(|| labels.get(RELEASE_LABEL))
        .flatten()
        .filter(|r| !r.is_empty())
}

/// A release and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    #[serde(flatten)]
    pub release: Release,
    /// `recorded`, `started`, `succeeded`, `failed`, `rolled_back`.
    pub status: String,
    pub recorded_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `succeeded`, `failed` or `rolled_back`.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many things were suspected of it, and the first of them.
    pub suspected: usize,
    pub evidence: Vec<ReleaseSuspicion>,
    /// `seq` of `release.recorded`: orders releases the same on replay.
    pub seq: u64,
}

impl ReleaseState {
    /// Started and within `window` of its start at `at`.
    pub fn baking_at(&self, at: DateTime<Utc>, window: Duration) -> bool {
        self.status != "rolled_back" && self.started_at.is_some_and(|s| s <= at && at < s + window)
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    by_id: BTreeMap<String, ReleaseState>,
    /// `{app}/{env}` → release ids, oldest first.
    history: BTreeMap<String, Vec<String>>,
    /// `{cluster}/{env}/{app}/{version}` of releases seen in Kubernetes.
    rollouts: BTreeSet<String>,
    /// Subject (fingerprint, uid, probe) → release id → the suspicion.
    suspects: BTreeMap<String, BTreeMap<String, ReleaseSuspicion>>,
    /// When each subject was last suspected, oldest first by time.
    suspected_at: BTreeMap<String, DateTime<Utc>>,
    /// Release id → the subjects suspected of it (forgotten with them).
    #[serde(default)]
    subjects: BTreeMap<String, BTreeSet<String>>,
    /// Release id → the fingerprint of its `ReleaseSuspected` alert.
    #[serde(default)]
    alerts: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Releases {
    inner: RwLock<Inner>,
}

pub fn history_key(app: &str, env: &str) -> String {
    format!("{app}/{env}")
}

pub fn rollout_key(cluster: &str, env: &str, app: &str, version: &str) -> String {
    format!("{cluster}/{env}/{app}/{version}")
}

/// "started 3 min after checkout v1.4.2 by alice": how a notification
/// and `fenghuo why` name the release an alert is suspected of.
pub fn suspicion_note(s: &ReleaseSuspicion) -> String {
    let after = if s.after_secs < 60 {
        format!("{} s", s.after_secs.max(0))
    } else {
        format!("{} min", s.after_secs / 60)
    };
    let by = if s.released_by.is_empty() {
        String::new()
    } else {
        format!(" by {}", s.released_by)
    };
    format!("started {after} after {} {}{by}", s.app, s.version)
}

impl Releases {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<ReleaseState> {
        self.inner.read().by_id.get(id).cloned()
    }

    /// Releases of `app` in `env`, newest first; `env` empty: every env.
    pub fn history(&self, app: &str, env: &str) -> Vec<ReleaseState> {
        let inner = self.inner.read();
        let mut out: Vec<ReleaseState> = inner
            .by_id
            .values()
            .filter(|r| {
                (app.is_empty() || r.release.app == app) && (env.is_empty() || r.release.env == env)
            })
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        out
    }

    /// Where `app` in `env` goes back to if its newest release is rolled
    /// back: the last succeeded release before it with another version.
    pub fn rollback_target(&self, app: &str, env: &str) -> Option<ReleaseState> {
        let newest = self.history(app, env).into_iter().next()?;
        self.rollback_target_of(&newest.release.id)
    }

    /// The last succeeded release of the same app and env recorded before
    /// `id`, with another version.
    pub fn rollback_target_of(&self, id: &str) -> Option<ReleaseState> {
        let inner = self.inner.read();
        let this = inner.by_id.get(id)?;
        let ids = inner
            .history
            .get(&history_key(&this.release.app, &this.release.env))?;
        ids.iter()
            .rev()
            .filter_map(|i| inner.by_id.get(i))
            .filter(|r| r.seq < this.seq)
            .find(|r| r.status == "succeeded" && r.release.version != this.release.version)
            .cloned()
    }

    /// Releases of `app` (in `env` and `cluster` when given) baking at
    /// `at`, newest first.
    pub fn baking(
        &self,
        app: &str,
        env: Option<&str>,
        cluster: Option<&str>,
        at: DateTime<Utc>,
        window: Duration,
    ) -> Vec<ReleaseState> {
        let inner = self.inner.read();
        let mut out: Vec<ReleaseState> = inner
            .by_id
            .values()
            .filter(|r| r.release.app == app)
            .filter(|r| env.is_none_or(|e| r.release.env == e))
            .filter(|r| {
                cluster.is_none_or(|c| r.release.cluster.is_empty() || r.release.cluster == c)
            })
            .filter(|r| r.baking_at(at, window))
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        out
    }

    /// Whether `subject` is already linked to `release`.
    pub fn is_suspected(&self, subject: &str, release: &str) -> bool {
        self.inner
            .read()
            .suspects
            .get(subject)
            .is_some_and(|m| m.contains_key(release))
    }

    /// The newest release `subject` is suspected of.
    pub fn suspicion_of(&self, subject: &str) -> Option<ReleaseSuspicion> {
        let inner = self.inner.read();
        let m = inner.suspects.get(subject)?;
        m.keys()
            .filter_map(|id| inner.by_id.get(id).map(|r| (r.seq, id)))
            .max()
            .and_then(|(_, id)| m.get(id))
            .cloned()
    }

    /// Subjects (alert fingerprints, uids, probes) suspected of `release`.
    pub fn subjects_of(&self, release: &str) -> Vec<String> {
        self.inner
            .read()
            .subjects
            .get(release)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The fingerprint of the `ReleaseSuspected` alert raised for
    /// `release`, if one ever was.
    pub fn alert_of(&self, release: &str) -> Option<String> {
        self.inner.read().alerts.get(release).cloned()
    }

    /// A Kubernetes rollout already recorded as a release.
    pub fn rollout_seen(&self, key: &str) -> bool {
        self.inner.read().rollouts.contains(key)
    }
}

impl Projection for Releases {
    fn name(&self) -> &'static str {
        "releases"
    }

    fn apply(&self, event: &Event) {
        match &event.kind {
            EventKind::ReleaseRecorded(_)
            | EventKind::ReleaseStatusChanged(_)
            | EventKind::ReleaseSuspected(_) => {}
            EventKind::AlertReceived(report) => {
                if let Some(release) = release_of_alert(&report.labels) {
                    self.inner
                        .write()
                        .alerts
                        .insert(release.to_string(), report.fingerprint.to_string());
                }
                return;
            }
            _ => return,
        }
        let at = event.occurred_at;
        let mut inner = self.inner.write();
        match &event.kind {
            EventKind::ReleaseRecorded(r) => {
                if r.via == "kubernetes" {
                    inner
                        .rollouts
                        .insert(rollout_key(&r.cluster, &r.env, &r.app, &r.version));
                }
                inner
                    .history
                    .entry(history_key(&r.app, &r.env))
                    .or_default()
                    .push(r.id.clone());
                inner.by_id.insert(
                    r.id.clone(),
                    ReleaseState {
                        release: r.clone(),
                        status: "recorded".into(),
                        recorded_at: at,
                        started_at: None,
                        finished_at: None,
                        suspected: 0,
                        evidence: Vec::new(),
                        seq: event.seq,
                    },
                );
            }
            EventKind::ReleaseStatusChanged(s) => {
                if let Some(r) = inner.by_id.get_mut(&s.id) {
                    r.status = s.status.clone();
                    match s.status.as_str() {
                        "started" => r.started_at = Some(at),
                        _ => {
                            // A release reported done without a start
                            // started when it was recorded.
                            r.started_at.get_or_insert(r.recorded_at);
                            r.finished_at = Some(at);
                        }
                    }
                }
            }
            EventKind::ReleaseSuspected(s) => {
                if let Some(r) = inner.by_id.get_mut(&s.release) {
                    r.suspected += 1;
                    if r.evidence.len() < EVIDENCE_KEPT {
                        r.evidence.push(s.clone());
                    }
                }
                inner
                    .suspects
                    .entry(s.subject.clone())
                    .or_default()
                    .insert(s.release.clone(), s.clone());
                inner.suspected_at.insert(s.subject.clone(), at);
                inner
                    .subjects
                    .entry(s.release.clone())
                    .or_default()
                    .insert(s.subject.clone());
                if inner.suspects.len() > SUSPECTS_KEPT {
                    // Log time, so a replay forgets the same ones.
                    let horizon = at - Duration::hours(KEEP_SUSPECTS_HOURS);
                    let old: Vec<String> = inner
                        .suspected_at
                        .iter()
                        .filter(|(_, t)| **t < horizon)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in old {
                        inner.suspected_at.remove(&k);
                        for release in inner
                            .suspects
                            .remove(&k)
                            .into_iter()
                            .flat_map(|m| m.into_keys())
                        {
                            if let Some(subjects) = inner.subjects.get_mut(&release) {
                                subjects.remove(&k);
                                if subjects.is_empty() {
                                    inner.subjects.remove(&release);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.inner.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        *self.inner.write() = crate::eventlog::projection::restored(state)?;
        Ok(())
    }
}
