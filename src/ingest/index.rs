//! `AlertIndex`: what the log already says about each alert, so ingest can
//! tell a change from a re-send.
//!
//! It is a view of the alert store's records ([`AlertStore`], the index
//! facet): the store folds the `alert.*` events once for both, so 100,000
//! alerts are held once, not in a second table of their own. In a pipeline
//! the index reads the pipeline's store ([`AlertIndex::of`]) and folds
//! nothing; on its own ([`AlertIndex::new`], for ingest without the rest)
//! it owns a store and folds into it. The only state that is not a fold is
//! `seen_ends`, the newest `endsAt` a re-send brought that the log does not
//! hold yet; the lease checkpoint writes it down. This module must never
//! keep per-alert state of its own.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use rapidhash::v3::{RapidSecrets, RapidStreamHasherV3};

use crate::evaluate::Fingerprint;
use crate::evaluate::alerts::AlertStore;
use crate::eventlog::{AlertReport, Event, Projection};

/// What the log holds about one alert (a copy, made when asked).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedAlert {
    /// Hash of labels and annotations: a change of either is stored.
    pub content: u64,
    pub starts_at: DateTime<Utc>,
    /// The last stored report or resolve said firing.
    pub firing: bool,
    /// The `endsAt` the log holds; `None` = until a source resolves it.
    pub stored_ends: Option<DateTime<Utc>>,
    /// `seq` of the last event that changed this entry.
    pub last_seq: u64,
    pub acked: bool,
    /// Newest `endsAt` seen in a re-send and not yet stored (not a fold,
    /// so not in snapshots).
    pub seen_ends: Option<DateTime<Utc>>,
}

impl IndexedAlert {
    /// Firing as of `now`: reported firing and its stored `endsAt` not passed.
    pub fn firing_at(&self, now: DateTime<Utc>) -> bool {
        self.firing && self.stored_ends.is_none_or(|e| e > now)
    }
}

/// The hash that decides whether a report changed the alert: rapidhash
/// (its v3, whose output the crate keeps stable across versions and
/// platforms) of the two label sets' encoded texts. Those texts are
/// canonical (sorted, length-prefixed), so equal content hashes equal, and
/// the `0xff` between them (a byte UTF-8 never holds) keeps a pair moved
/// from the labels to the annotations a change. Computed when ingest asks
/// (once per report it receives), not kept: FNV, byte by byte, cost several
/// times more on reports of ~300 bytes.
pub fn content_hash(report: &AlertReport) -> u64 {
    const SECRETS: RapidSecrets = RapidSecrets::seed(0x0fe0_9b40);
    let mut h = RapidStreamHasherV3::new(&SECRETS);
    h.write(report.labels.encoded().as_bytes());
    h.write(&[0xff]);
    h.write(report.annotations.encoded().as_bytes());
    h.finish()
}

pub struct AlertIndex {
    store: Arc<AlertStore>,
    /// The store is this index's own: folding it is the index's job.
    folds: bool,
}

impl Default for AlertIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertIndex {
    /// An index with a store of its own, which it folds.
    pub fn new() -> Self {
        AlertIndex {
            store: Arc::new(AlertStore::new()),
            folds: true,
        }
    }

    /// The index facet of `store`, which another registration folds.
    pub fn of(store: Arc<AlertStore>) -> Self {
        AlertIndex {
            store,
            folds: false,
        }
    }

    pub fn get(&self, fp: Fingerprint) -> Option<IndexedAlert> {
        self.store.indexed(fp)
    }

    /// Remembers a re-sent `endsAt` for the next lease checkpoint.
    pub fn note_seen_ends(&self, fp: Fingerprint, ends: DateTime<Utc>) {
        self.store.note_seen_ends(fp, ends)
    }

    pub fn fingerprint_of_dedup_key(&self, key: &str) -> Option<Fingerprint> {
        self.store.fingerprint_of_dedup_key(key)
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts firing as of `now`.
    pub fn firing_count(&self, now: DateTime<Utc>) -> usize {
        self.store.firing_count(now)
    }

    /// Firing alerts whose re-sent `endsAt` is newer than the stored one and
    /// whose stored one runs out before `deadline`: the leases to write now.
    pub fn leases_due(&self, deadline: DateTime<Utc>) -> Vec<(Fingerprint, DateTime<Utc>)> {
        self.store.leases_due(deadline)
    }

    /// Every entry, for comparing a live index with a replayed one.
    pub fn snapshot(&self) -> Vec<(u64, IndexedAlert)> {
        self.store.index_snapshot()
    }
}

impl Projection for AlertIndex {
    fn name(&self) -> &'static str {
        "alert-index"
    }

    fn apply(&self, event: &Event) {
        if self.folds {
            self.store.apply(event);
        }
    }

    fn apply_all(&self, events: &[&Event]) {
        if self.folds {
            self.store.apply_all(events);
        }
    }

    /// An alert's version is the `seq` of the last event that changed it.
    fn version(&self, key: &str) -> Option<u64> {
        let fp = Fingerprint::parse(key)?;
        Some(self.store.version_of(fp))
    }

    fn reset(&self) {
        if self.folds {
            self.store.reset();
        }
    }

    fn snapshot_items(&self) -> usize {
        match self.folds {
            true => self.store.snapshot_items(),
            false => 0,
        }
    }

    /// A view of another's store snapshots nothing (`null`): that store's
    /// own snapshot holds it.
    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        match self.folds {
            true => self.store.snapshot_json(),
            false => Some(Box::new(|out: &mut dyn std::io::Write| {
                serde_json::to_writer(out, &())
            })),
        }
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        match self.folds {
            true => self.store.restore_json(state),
            false => serde_json::from_str::<()>(state).map_err(|e| e.to_string()),
        }
    }
}
