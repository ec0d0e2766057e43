//! Kubernetes events into the log: the bodies of `POST /ingest/kubernetes`
//! ([`body`]), the watch of an API server ([`watch`]), and what the log
//! already holds about both ([`index`]).
//!
//! Owns the rule for what of a Kubernetes event is worth a log entry: a new
//! Event object, or a change to one (Kubernetes re-emits the same object
//! with a higher `count`) — never a re-send that changes nothing. It
//! decides nothing about alerting; the rules do that from `k8s.event`.

pub mod body;
pub mod index;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

pub use body::{KeyedEvent, event_key, parse};
pub use index::{K8sEventIndex, WatchProgressView};

use super::Ingest;
use crate::eventlog::{EventKind, K8sWatchProgress, LogError, NewEvent};

/// What one store call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredEvents {
    /// Kubernetes events received.
    pub events: usize,
    /// Events this call added to the log (progress included).
    pub stored: usize,
}

/// Kubernetes events into the log, each change once.
#[derive(Clone)]
pub struct KubernetesIngest {
    ingest: Ingest,
    index: Arc<K8sEventIndex>,
    watches: Arc<WatchProgressView>,
}

impl KubernetesIngest {
    pub fn new(ingest: Ingest, index: Arc<K8sEventIndex>, watches: Arc<WatchProgressView>) -> Self {
        KubernetesIngest {
            ingest,
            index,
            watches,
        }
    }

    pub fn index(&self) -> &K8sEventIndex {
        &self.index
    }

    pub fn watches(&self) -> &WatchProgressView {
        &self.watches
    }

    pub fn clock(&self) -> &crate::clock::SharedClock {
        self.ingest.clock()
    }

    /// Stores what `events` change, and `progress` with them in the same
    /// commit (so a restart resumes exactly after what was stored), and
    /// answers once it is committed.
    ///
    /// Of several versions of one Event object in `events` (a watch batch
    /// with its `ADDED` and `MODIFIED`), the last is what is stored.
    pub async fn store(
        &self,
        source: &str,
        events: Vec<KeyedEvent>,
        progress: Option<K8sWatchProgress>,
    ) -> Result<StoredEvents, Arc<LogError>> {
        let received = events.len();
        let now = self.ingest.clock().now();
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            last.insert(&e.key, i);
        }
        let latest: Vec<&KeyedEvent> = events
            .iter()
            .enumerate()
            .filter(|(i, e)| last[e.key.as_str()] == *i)
            .map(|(_, e)| e)
            .collect();
        // Progress goes with the first round only: later rounds re-plan
        // events that lost a race to a concurrent request.
        let progress = parking_lot::Mutex::new(progress.map(|p| {
            NewEvent::new(
                now,
                source,
                format!("k8s-watch/{}/{}", p.cluster, p.namespace),
                EventKind::K8sWatchProgressed(p),
            )
        }));
        let stored = self
            .ingest
            .append_planned(|| {
                let mut planned: Vec<NewEvent> = latest
                    .iter()
                    .filter_map(|e| {
                        let known = self.index.get(&e.key);
                        let content = index::content_hash(&e.event);
                        if known.as_ref().is_some_and(|k| k.content == content) {
                            return None;
                        }
                        Some(
                            NewEvent::new(
                                now,
                                source,
                                &e.key,
                                EventKind::K8sEvent(Arc::new(e.event.clone())),
                            )
                            .expecting(known.map_or(0, |k| k.last_seq)),
                        )
                    })
                    .collect();
                planned.extend(progress.lock().take());
                planned
            })
            .await?;
        Ok(StoredEvents {
            events: received,
            stored,
        })
    }
}
