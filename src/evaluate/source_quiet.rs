//! `FenghuoSourceQuiet`: Fenghuo's own alert when a configured source goes
//! quiet — a Kubernetes cluster whose watch has recorded nothing (no
//! events, no position; a healthy API server sends a bookmark about every
//! minute, which is recorded) for its `quiet_after`.
//!
//! A deciding stage like the rules: it reads the watch progress view and
//! the alert index, and its decisions (`alert.received` to raise,
//! `alert.resolved` when the watch records anything again) are committed
//! with their cause, or by the pass its timer asks for. The alert is then
//! routed, grouped and paged like any other. It never reads the wall clock
//! and never appends itself.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::evaluate::Fingerprint;
use crate::eventlog::{AlertReport, AlertResolution, EventKind, LabelSet, NewEvent};
use crate::ingest::AlertIndex;
use crate::ingest::kubernetes::WatchProgressView;

pub const QUIET_ALERT: &str = "FenghuoSourceQuiet";

/// One watched source and how long it may stay silent.
struct Source {
    cluster: String,
    after: Duration,
    labels: LabelSet,
    fingerprint: Fingerprint,
}

pub struct SourceQuiet {
    sources: Vec<Source>,
    watches: Arc<WatchProgressView>,
    alerts: Arc<AlertIndex>,
    /// When this process began watching: a source never heard since is
    /// quiet from here, not from the start of time.
    since: DateTime<Utc>,
}

impl SourceQuiet {
    /// Watches `clusters` (name, `quiet_after`) from `since`.
    pub fn new(
        clusters: Vec<(String, Duration)>,
        watches: Arc<WatchProgressView>,
        alerts: Arc<AlertIndex>,
        since: DateTime<Utc>,
    ) -> Self {
        let sources = clusters
            .into_iter()
            .map(|(cluster, after)| {
                let labels: LabelSet = [
                    ("alertname", QUIET_ALERT),
                    ("cluster", cluster.as_str()),
                    ("source", "kubernetes"),
                    ("severity", "warning"),
                ]
                .into_iter()
                .collect();
                Source {
                    fingerprint: Fingerprint::of(&labels),
                    cluster,
                    after,
                    labels,
                }
            })
            .collect();
        SourceQuiet {
            sources,
            watches,
            alerts,
            since,
        }
    }

    /// When the source was last heard from, or when watching began.
    fn heard(&self, s: &Source) -> DateTime<Utc> {
        self.watches
            .last_heard(&s.cluster)
            .map_or(self.since, |h| h.max(self.since))
    }

    fn firing(&self, s: &Source, now: DateTime<Utc>) -> Option<u64> {
        self.alerts
            .get(s.fingerprint)
            .filter(|a| a.firing_at(now))
            .map(|a| a.last_seq)
    }

    /// The next instant a source turns quiet, for the dispatch loop.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.sources
            .iter()
            .filter(|s| !self.alerts.get(s.fingerprint).is_some_and(|a| a.firing))
            .map(|s| self.heard(s) + s.after)
            .min()
    }

    /// Raises the alert of each source quiet at `now`, and resolves it for
    /// each that recorded progress within its `quiet_after`.
    pub fn decide(&self, now: DateTime<Utc>) -> Vec<NewEvent> {
        let mut out = Vec::new();
        for s in &self.sources {
            let key = s.fingerprint.to_string();
            match self.firing(s, now) {
                None => {
                    let heard = self.heard(s);
                    if now - heard < s.after {
                        continue;
                    }
                    let version = self.alerts.get(s.fingerprint).map_or(0, |a| a.last_seq);
                    let mut annotations = LabelSet::new();
                    annotations.insert(
                        "summary".into(),
                        format!(
                            "No Kubernetes events or bookmarks from cluster {} for {}",
                            s.cluster,
                            crate::config::PromDuration(s.after)
                        ),
                    );
                    annotations.insert(
                        "description".into(),
                        format!(
                            "The watch of {} has recorded nothing since {}: the API server is \
                             unreachable, refuses the token, or the watch is stuck. \
                             See fenghuo_kubernetes_watch_* in /metrics.",
                            s.cluster,
                            heard.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    );
                    let report = AlertReport {
                        fingerprint: key.clone().into(),
                        labels: s.labels.clone(),
                        annotations,
                        starts_at: now,
                        ends_at: None,
                        generator_url: String::new(),
                        extra: Default::default(),
                    };
                    out.push(
                        NewEvent::new(
                            now,
                            "fenghuo",
                            &key,
                            EventKind::AlertReceived(Arc::new(report)),
                        )
                        .expecting(version),
                    );
                }
                Some(version) => {
                    // Heard again: only real progress, not the start of
                    // this process, ends it.
                    let Some(heard) = self.watches.last_heard(&s.cluster) else {
                        continue;
                    };
                    if now - heard >= s.after {
                        continue;
                    }
                    out.push(
                        NewEvent::new(
                            now,
                            "fenghuo",
                            &key,
                            EventKind::AlertResolved(AlertResolution {
                                fingerprint: key.clone(),
                                ends_at: now,
                                reason: format!("cluster {} heard from again", s.cluster),
                                report: None,
                            }),
                        )
                        .expecting(version),
                    );
                }
            }
        }
        out
    }

    /// Seconds since each source was last heard from, for `/metrics`.
    pub fn quiet_seconds(&self, now: DateTime<Utc>) -> Vec<(String, f64)> {
        self.sources
            .iter()
            .map(|s| {
                let secs = (now - self.heard(s)).num_milliseconds() as f64 / 1000.0;
                (s.cluster.clone(), secs.max(0.0))
            })
            .collect()
    }
}
