//! What the log already holds about Kubernetes: per Event object, a hash of
//! what was last stored (so a re-send that changes nothing is not stored
//! again); per watch, the `resourceVersion` to resume from and when it last
//! showed life. Both are projections: replay builds them as live did.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::evaluate::Fnv64;
use crate::eventlog::{Event, EventKind, K8sEvent, Projection};

/// Kubernetes keeps events for an hour (`--event-ttl`); an entry not
/// changed for three is forgotten, so the index stays the size of the
/// cluster's recent events rather than growing for ever.
const FORGET_AFTER_HOURS: i64 = 3;
/// Forgetting runs every so many folded `k8s.event`s.
const FORGET_EVERY: u64 = 4096;

/// The hash that decides whether a re-sent event changed: what a reader or
/// a rule sees of it. Only these change when Kubernetes re-emits an event.
pub fn content_hash(e: &K8sEvent) -> u64 {
    let mut h = Fnv64::new();
    for part in [
        e.reason.as_str(),
        e.message.as_str(),
        e.event_type.as_str(),
        &e.count.to_string(),
        &e.last_seen.map(|t| t.to_rfc3339()).unwrap_or_default(),
        &e.involved_object.kind,
        &e.involved_object.name,
    ] {
        h.write(part.as_bytes());
        h.write_byte(0xff);
    }
    h.finish()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedEvent {
    pub content: u64,
    /// `seq` of the last stored change: the version appends expect.
    pub last_seq: u64,
    /// When that change was recorded.
    pub at: DateTime<Utc>,
}

/// Per Kubernetes Event object (key `k8s/…`), what the log last stored.
#[derive(Default)]
pub struct K8sEventIndex {
    events: RwLock<HashMap<String, IndexedEvent>>,
    folded: AtomicU64,
}

impl K8sEventIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<IndexedEvent> {
        self.events.read().get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.events.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Projection for K8sEventIndex {
    fn name(&self) -> &'static str {
        "k8s-event-index"
    }

    fn apply(&self, event: &Event) {
        let EventKind::K8sEvent(k) = &event.kind else {
            return;
        };
        let mut events = self.events.write();
        events.insert(
            event.key.to_string(),
            IndexedEvent {
                content: content_hash(k),
                last_seq: event.seq,
                at: event.recorded_at,
            },
        );
        let folded = self.folded.fetch_add(1, Ordering::Relaxed) + 1;
        if folded.is_multiple_of(FORGET_EVERY) {
            let horizon = event.recorded_at - Duration::hours(FORGET_AFTER_HOURS);
            events.retain(|_, e| e.at >= horizon);
        }
    }

    /// A Kubernetes event's version is the `seq` of its last stored change.
    fn version(&self, key: &str) -> Option<u64> {
        key.starts_with("k8s/")
            .then(|| self.events.read().get(key).map_or(0, |e| e.last_seq))
    }

    fn reset(&self) {
        self.events.write().clear();
        self.folded.store(0, Ordering::Relaxed);
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let copy: Vec<(String, IndexedEvent)> = self
            .events
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let folded = self.folded.load(Ordering::Relaxed);
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &(copy, folded))
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let (copy, folded): (Vec<(String, IndexedEvent)>, u64) =
            serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.events.write() = copy.into_iter().collect();
        self.folded.store(folded, Ordering::Relaxed);
        Ok(())
    }
}

/// Where one watch (a cluster, and a namespace or all of them) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchPosition {
    pub resource_version: String,
    /// When the watch last recorded progress (its events or a bookmark).
    pub at: DateTime<Utc>,
}

/// Per watch `(cluster, namespace)`, the last recorded progress; per
/// cluster, when its watches last recorded anything (progress or events).
#[derive(Default)]
pub struct WatchProgressView {
    watches: RwLock<HashMap<(String, String), WatchPosition>>,
    heard: RwLock<HashMap<String, DateTime<Utc>>>,
}

/// Sources of events a cluster's watch records: `kubernetes-watch/{cluster}`.
pub const WATCH_SOURCE_PREFIX: &str = "kubernetes-watch/";

/// The cluster whose watch `event` shows alive: its progress, or an event
/// it stored.
pub fn watched_cluster(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::K8sWatchProgressed(p) => Some(&p.cluster),
        EventKind::K8sEvent(k) if event.source.starts_with(WATCH_SOURCE_PREFIX) => Some(&k.cluster),
        _ => None,
    }
}

impl WatchProgressView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the watch of `namespace` (empty: all) in `cluster` resumes.
    pub fn position(&self, cluster: &str, namespace: &str) -> Option<WatchPosition> {
        self.watches
            .read()
            .get(&(cluster.to_string(), namespace.to_string()))
            .cloned()
    }

    /// When any watch of `cluster` last recorded progress or an event.
    pub fn last_heard(&self, cluster: &str) -> Option<DateTime<Utc>> {
        self.heard.read().get(cluster).copied()
    }
}

impl Projection for WatchProgressView {
    fn name(&self) -> &'static str {
        "k8s-watch-progress"
    }

    fn apply(&self, event: &Event) {
        if let Some(cluster) = watched_cluster(event) {
            let mut heard = self.heard.write();
            match heard.get_mut(cluster) {
                Some(at) => *at = (*at).max(event.recorded_at),
                None => {
                    heard.insert(cluster.to_string(), event.recorded_at);
                }
            }
        }
        if let EventKind::K8sWatchProgressed(p) = &event.kind {
            self.watches.write().insert(
                (p.cluster.clone(), p.namespace.clone()),
                WatchPosition {
                    resource_version: p.resource_version.clone(),
                    at: event.recorded_at,
                },
            );
        }
    }

    fn reset(&self) {
        self.watches.write().clear();
        self.heard.write().clear();
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let copy: Vec<((String, String), WatchPosition)> = self
            .watches
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let heard: Vec<(String, DateTime<Utc>)> = self
            .heard
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &(copy, heard))
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        type State = (
            Vec<((String, String), WatchPosition)>,
            Vec<(String, DateTime<Utc>)>,
        );
        let (copy, heard): State = serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.watches.write() = copy.into_iter().collect();
        *self.heard.write() = heard.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::eventlog::{InvolvedObject, K8sWatchProgress, LabelSet};

    fn event(seq: u64, key: &str, at: &str, kind: EventKind) -> Event {
        Event {
            seq,
            id: format!("e{seq}").into(),
            occurred_at: at.parse().unwrap(),
            recorded_at: at.parse().unwrap(),
            source: "test".into(),
            key: key.into(),
            idempotency_key: None,
            kind,
        }
    }

    fn backoff(count: u64) -> EventKind {
        EventKind::K8sEvent(Arc::new(K8sEvent {
            cluster: "prod".into(),
            namespace: "shop".into(),
            involved_object: InvolvedObject {
                kind: "Pod".into(),
                name: "web-1".into(),
                uid: "u1".into(),
                ..Default::default()
            },
            reason: "BackOff".into(),
            message: "Back-off restarting failed container".into(),
            event_type: "Warning".into(),
            count,
            first_seen: None,
            last_seen: None,
            reporting_controller: "kubelet".into(),
            labels: LabelSet::new(),
            ..Default::default()
        }))
    }

    fn progress(rv: &str) -> EventKind {
        EventKind::K8sWatchProgressed(K8sWatchProgress {
            cluster: "prod".into(),
            namespace: String::new(),
            resource_version: rv.into(),
            by: "events".into(),
        })
    }

    #[test]
    fn a_snapshot_restores_what_the_fold_built() {
        let (index, watches) = (K8sEventIndex::new(), WatchProgressView::new());
        let log = [
            event(
                1,
                "k8s/prod/shop/web-1.a",
                "2026-01-01T00:00:00Z",
                backoff(1),
            ),
            event(2, "k8s-watch/prod/", "2026-01-01T00:00:00Z", progress("10")),
            event(
                3,
                "k8s/prod/shop/web-1.a",
                "2026-01-01T00:02:00Z",
                backoff(2),
            ),
            event(4, "k8s-watch/prod/", "2026-01-01T00:02:00Z", progress("12")),
        ];
        for e in &log {
            index.apply(e);
            watches.apply(e);
        }
        assert_eq!(index.version("k8s/prod/shop/web-1.a"), Some(3));
        assert_eq!(index.version("k8s/prod/shop/other"), Some(0));
        assert_eq!(
            index.version("0123456789abcdef"),
            None,
            "not a Kubernetes key"
        );
        let (copy, back) = (K8sEventIndex::new(), WatchProgressView::new());
        let mut text = Vec::new();
        (index.snapshot_json().unwrap())(&mut text).unwrap();
        copy.restore_json(std::str::from_utf8(&text).unwrap())
            .unwrap();
        let mut text = Vec::new();
        (watches.snapshot_json().unwrap())(&mut text).unwrap();
        back.restore_json(std::str::from_utf8(&text).unwrap())
            .unwrap();
        assert_eq!(
            copy.get("k8s/prod/shop/web-1.a"),
            index.get("k8s/prod/shop/web-1.a")
        );
        assert_eq!(back.position("prod", ""), watches.position("prod", ""));
        assert_eq!(
            back.last_heard("prod"),
            Some("2026-01-01T00:02:00Z".parse().unwrap())
        );
    }
}
