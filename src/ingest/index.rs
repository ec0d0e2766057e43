//! `AlertIndex`: what the log already says about each alert, so ingest can
//! tell a change from a re-send.
//!
//! It is a projection (a fold over `alert.*` events), kept small on purpose:
//! a content hash instead of labels and annotations, so 100,000 alerts cost a
//! few MiB. The only state that is not a fold is `seen_ends`, the newest
//! `endsAt` a re-send brought that the log does not hold yet; the lease
//! checkpoint writes it down.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use rapidhash::v3::{RapidSecrets, RapidStreamHasherV3};

use crate::evaluate::{Fingerprint, FingerprintMap};
use crate::eventlog::{AlertReport, Event, EventKind, Projection};

const SHARDS: usize = 64;

/// What the log holds about one alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    #[serde(skip)]
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
/// from the labels to the annotations a change. It runs for every report
/// ingest receives and replay folds; FNV, byte by byte, cost several times
/// more on reports of ~300 bytes.
pub fn content_hash(report: &AlertReport) -> u64 {
    const SECRETS: RapidSecrets = RapidSecrets::seed(0x0fe0_9b40);
    let mut h = RapidStreamHasherV3::new(&SECRETS);
    h.write(report.labels.encoded().as_bytes());
    h.write(&[0xff]);
    h.write(report.annotations.encoded().as_bytes());
    h.finish()
}

#[derive(Default)]
pub struct AlertIndex {
    shards: Vec<RwLock<FingerprintMap<IndexedAlert>>>,
    /// PagerDuty-style `dedup_key` → fingerprint of its current alert.
    dedup_keys: RwLock<HashMap<String, u64>>,
}

impl AlertIndex {
    pub fn new() -> Self {
        AlertIndex {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(FingerprintMap::default()))
                .collect(),
            dedup_keys: RwLock::new(HashMap::new()),
        }
    }

    fn shard(&self, fp: u64) -> &RwLock<FingerprintMap<IndexedAlert>> {
        // Fingerprints are FNV hashes: the low bits are already well mixed.
        &self.shards[(fp as usize) % SHARDS]
    }

    pub fn get(&self, fp: Fingerprint) -> Option<IndexedAlert> {
        self.shard(fp.0).read().get(&fp.0).cloned()
    }

    /// Remembers a re-sent `endsAt` for the next lease checkpoint.
    pub fn note_seen_ends(&self, fp: Fingerprint, ends: DateTime<Utc>) {
        if let Some(e) = self.shard(fp.0).write().get_mut(&fp.0)
            && e.seen_ends.is_none_or(|s| s < ends)
        {
            e.seen_ends = Some(ends);
        }
    }

    pub fn fingerprint_of_dedup_key(&self, key: &str) -> Option<Fingerprint> {
        self.dedup_keys.read().get(key).copied().map(Fingerprint)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts firing as of `now`.
    pub fn firing_count(&self, now: DateTime<Utc>) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().values().filter(|a| a.firing_at(now)).count())
            .sum()
    }

    /// Firing alerts whose re-sent `endsAt` is newer than the stored one and
    /// whose stored one runs out before `deadline`: the leases to write now.
    pub fn leases_due(&self, deadline: DateTime<Utc>) -> Vec<(Fingerprint, DateTime<Utc>)> {
        let mut due = Vec::new();
        for shard in &self.shards {
            for (fp, a) in shard.read().iter() {
                if let (true, Some(stored), Some(seen)) = (a.firing, a.stored_ends, a.seen_ends)
                    && seen > stored
                    && stored < deadline
                {
                    due.push((Fingerprint(*fp), seen));
                }
            }
        }
        due
    }

    /// Every entry, for comparing a live index with a replayed one.
    pub fn snapshot(&self) -> Vec<(u64, IndexedAlert)> {
        let mut all: Vec<(u64, IndexedAlert)> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .iter()
                    .map(|(k, v)| {
                        let mut v = v.clone();
                        v.seen_ends = None;
                        (*k, v)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    fn upsert_report(&self, seq: u64, report: &AlertReport, firing: bool) {
        let Some(fp) = Fingerprint::parse(&report.fingerprint) else {
            return;
        };
        // Only PagerDuty reports carry the extra key: most reports are
        // done after one lookup in an (empty) map, not a label search.
        // The key → fingerprint map is the only place the key is kept: the
        // entry itself does not repeat it (24 bytes × every alert, for a
        // field only PagerDuty alerts use and nothing read).
        if report.extra.contains_key(super::pagerduty::EXTRA_KEY)
            && let Some(k) = report.labels.get(super::pagerduty::DEDUP_LABEL)
        {
            self.dedup_keys.write().insert(k.to_string(), fp.0);
        }
        let indexed = |seen_ends: Option<DateTime<Utc>>| IndexedAlert {
            content: content_hash(report),
            starts_at: report.starts_at,
            firing,
            stored_ends: report.ends_at,
            last_seq: seq,
            acked: false,
            seen_ends: seen_ends.filter(|s| report.ends_at.is_some_and(|e| *s > e)),
        };
        // One lookup, whether the alert is new or replaced.
        match self.shard(fp.0).write().entry(fp.0) {
            Entry::Occupied(mut e) => {
                let seen_ends = e.get().seen_ends;
                e.insert(indexed(seen_ends));
            }
            Entry::Vacant(e) => {
                e.insert(indexed(None));
            }
        }
    }
}

impl Projection for AlertIndex {
    fn name(&self) -> &'static str {
        "alert-index"
    }

    fn apply(&self, event: &Event) {
        match &event.kind {
            EventKind::AlertReceived(report) => self.upsert_report(event.seq, report, true),
            EventKind::AlertResolved(res) => {
                if let Some(report) = &res.report {
                    self.upsert_report(event.seq, report, false);
                }
                let Some(fp) = Fingerprint::parse(&res.fingerprint) else {
                    return;
                };
                if let Some(e) = self.shard(fp.0).write().get_mut(&fp.0) {
                    e.firing = false;
                    e.stored_ends = Some(res.ends_at);
                    e.seen_ends = None;
                    e.last_seq = event.seq;
                }
            }
            EventKind::AlertRefreshed { leases } => {
                for lease in leases {
                    for fp in lease.fingerprints.values().flatten() {
                        if let Some(e) = self.shard(fp).write().get_mut(&fp) {
                            // A lease written just before a resolve committed
                            // must not revive the resolved end.
                            if e.firing && e.stored_ends.is_some_and(|s| s < lease.ends_at) {
                                e.stored_ends = Some(lease.ends_at);
                            }
                            if e.seen_ends.is_some_and(|s| s <= lease.ends_at) {
                                e.seen_ends = None;
                            }
                        }
                    }
                }
            }
            EventKind::AlertAcked { fingerprint, .. } => {
                let Some(fp) = Fingerprint::parse(fingerprint) else {
                    return;
                };
                if let Some(e) = self.shard(fp.0).write().get_mut(&fp.0) {
                    e.acked = true;
                    e.last_seq = event.seq;
                }
            }
            // Not about what a source reported.
            EventKind::AlertFired { .. }
            | EventKind::SilenceCreated(_)
            | EventKind::SilenceUpdated(_)
            | EventKind::SilenceExpired { .. }
            | EventKind::GroupScheduled(_)
            | EventKind::GroupClosed(_)
            | EventKind::NotificationDue(_)
            | EventKind::NotificationSent(_)
            | EventKind::NotificationFailed(_)
            | EventKind::NotificationSkipped(_)
            | EventKind::EscalationStepped(_)
            | EventKind::IncidentAcknowledged(_)
            | EventKind::IncidentUnacknowledged(_)
            | EventKind::IncidentResolved(_)
            | EventKind::IncidentSnoozed(_)
            | EventKind::K8sEvent(_)
            | EventKind::ProbeResult(_)
            | EventKind::HeartbeatReceived(_)
            | EventKind::RulesLoaded(_)
            | EventKind::K8sWatchProgressed(_)
            | EventKind::ReleaseRecorded(_)
            | EventKind::ReleaseStatusChanged(_)
            | EventKind::ReleaseGateDecided(_)
            | EventKind::ReleaseSuspected(_)
            | EventKind::RemediationDue(_)
            | EventKind::RemediationApproved(_)
            | EventKind::RemediationDryRun(_)
            | EventKind::RemediationRefused(_)
            | EventKind::RemediationSucceeded(_)
            | EventKind::RemediationFailed(_)
            | EventKind::AlertFlappingStarted(_)
            | EventKind::AlertFlappingStopped(_) => {}
        }
    }

    /// An alert's version is the `seq` of the last event that changed it.
    fn version(&self, key: &str) -> Option<u64> {
        let fp = Fingerprint::parse(key)?;
        Some(self.shard(fp.0).read().get(&fp.0).map_or(0, |a| a.last_seq))
    }

    fn reset(&self) {
        for s in &self.shards {
            s.write().clear();
        }
        self.dedup_keys.write().clear();
    }

    fn snapshot_items(&self) -> usize {
        self.len()
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let alerts: Vec<(u64, IndexedAlert)> = self.snapshot();
        let dedup: HashMap<String, u64> = self.dedup_keys.read().clone();
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &(alerts, dedup))
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let (alerts, dedup): (Vec<(u64, IndexedAlert)>, HashMap<String, u64>) =
            serde_json::from_str(state).map_err(|e| e.to_string())?;
        Projection::reset(self);
        for (fp, a) in alerts {
            self.shard(fp).write().insert(fp, a);
        }
        *self.dedup_keys.write() = dedup;
        Ok(())
    }
}
