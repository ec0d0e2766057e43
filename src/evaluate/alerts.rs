//! `AlertStore`: every alert as Alertmanager shows it — labels, annotations,
//! times, and whether it is firing — as a fold over the `alert.*` events,
//! and what ingest asks of each alert to tell a change from a re-send (the
//! index facet, read through [`crate::ingest::AlertIndex`]).
//!
//! State follows Alertmanager: an alert fires from `startsAt` until its
//! `endsAt` passes or a source resolves it. The store only folds; deciding
//! (routing, silencing, notifying) happens elsewhere, and reads it.
//!
//! It owns one record per alert: 100,000 alerts were once kept three times
//! over (this store, the ingest index and the dispatcher's orders, each a
//! hash table keyed by fingerprint with most of the same fields), ~27 MB of
//! a 100,000-alert server's heap. Records sit in fixed pages (no copy and
//! no doubling slack as alerts arrive), found through a table of 4-byte
//! record numbers; the dispatcher's two orders are sorted vectors of record
//! numbers. It must never hold what a source did not report or the log did
//! not decide (the only exception, `seen_ends`, is written down by the
//! lease checkpoint and never snapshotted).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use hashbrown::HashTable;
use parking_lot::RwLock;

use super::{Fingerprint, FingerprintHashing, FingerprintMap};
use crate::eventlog::{AlertReport, Event, EventKind, Projection};
use crate::ingest::index::{IndexedAlert, content_hash};

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

/// One alert, as every reader of alerts needs it: 64 bytes.
struct Record {
    fp: u64,
    report: Arc<AlertReport>,
    version: u64,
    /// The index facet's newest `endsAt` a re-send brought that the log
    /// does not hold yet, in nanoseconds ([`NO_SEEN_ENDS`]: none). Not a
    /// fold; atomic, so ingest notes it under the read lock.
    seen_ends: AtomicI64,
    ends_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    /// [`RESOLVED`], [`FIRED`], [`ACKED`], [`HAS_ACKED_BY`].
    flags: u8,
}

/// A source resolved it (`StoredAlert::resolved`).
const RESOLVED: u8 = 1;
/// `alert.fired` is recorded for this episode (`StoredAlert::fired`).
const FIRED: u8 = 2;
/// Acknowledged since its last report (`IndexedAlert::acked`: a resolve
/// without a report keeps it, unlike `acked_by`).
const ACKED: u8 = 4;
/// `acked_by` holds who acknowledged it (`StoredAlert::acked_by`).
const HAS_ACKED_BY: u8 = 8;

const NO_SEEN_ENDS: i64 = i64::MIN;

impl Record {
    fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    fn firing_at(&self, now: DateTime<Utc>) -> bool {
        !self.is(RESOLVED) && self.ends_at.is_none_or(|e| e > now)
    }

    fn seen_ends(&self) -> Option<DateTime<Utc>> {
        match self.seen_ends.load(Ordering::Relaxed) {
            NO_SEEN_ENDS => None,
            n => Some(DateTime::from_timestamp_nanos(n)),
        }
    }

    fn set_seen_ends(&mut self, seen: Option<DateTime<Utc>>) {
        *self.seen_ends.get_mut() = seen
            .and_then(|s| s.timestamp_nanos_opt())
            .unwrap_or(NO_SEEN_ENDS);
    }
}

/// Records per page: pages never move, so a growing store copies nothing
/// and wastes at most one page.
const PAGE: usize = 4096;

/// The alerts, with the two orders the dispatcher asks for at every pass:
/// scanning every alert for them cost most of a pass once thousands were
/// stored.
#[derive(Default)]
struct Alerts {
    /// Record numbers, hashed by their record's fingerprint.
    slots: HashTable<u32>,
    hashing: FingerprintHashing,
    /// Record `i` is `pages[i / PAGE][i % PAGE]`. Alerts are never removed.
    pages: Vec<Vec<Record>>,
    /// Who acknowledged, for the few alerts with [`HAS_ACKED_BY`].
    acked_by: FingerprintMap<String>,
    /// Brought up to date when read, not at every fold: a replay folds a
    /// million events and reads them once (keeping them current cost a
    /// third of replay time in B-tree updates for lease extensions).
    order: parking_lot::Mutex<Order>,
}

impl Alerts {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn rec(&self, i: u32) -> &Record {
        &self.pages[i as usize / PAGE][i as usize % PAGE]
    }

    fn rec_mut(&mut self, i: u32) -> &mut Record {
        &mut self.pages[i as usize / PAGE][i as usize % PAGE]
    }

    fn find(&self, fp: u64) -> Option<u32> {
        let hash = std::hash::BuildHasher::hash_one(&self.hashing, fp);
        self.slots.find(hash, |&i| self.rec(i).fp == fp).copied()
    }

    fn get(&self, fp: u64) -> Option<&Record> {
        self.find(fp).map(|i| self.rec(i))
    }

    fn records(&self) -> impl Iterator<Item = &Record> {
        self.pages.iter().flatten()
    }

    /// Adds a record for an alert not held yet; its number.
    fn push(&mut self, record: Record) -> u32 {
        let i = self.len() as u32;
        if self.pages.last().is_none_or(|p| p.len() == PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        let fp = record.fp;
        self.pages.last_mut().expect("a page").push(record);
        let (hashing, pages) = (self.hashing, &self.pages);
        let hash_of = |&j: &u32| {
            std::hash::BuildHasher::hash_one(
                &hashing,
                pages[j as usize / PAGE][j as usize % PAGE].fp,
            )
        };
        self.slots
            .insert_unique(std::hash::BuildHasher::hash_one(&hashing, fp), i, hash_of);
        self.order.get_mut().touch(i);
        i
    }

    /// Changes the alert at `fp`, if there is one, keeping the orders.
    fn update(&mut self, fp: u64, f: impl FnOnce(&mut Record)) {
        if let Some(i) = self.find(fp) {
            f(self.rec_mut(i));
            self.order.get_mut().touch(i);
        }
    }

    fn acked_by(&mut self, fp: u64, by: Option<&str>) {
        match by {
            Some(by) => {
                self.acked_by.insert(fp, by.to_string());
            }
            None => {
                self.acked_by.remove(&fp);
            }
        }
    }

    fn stored(&self, r: &Record) -> StoredAlert {
        StoredAlert {
            report: r.report.clone(),
            ends_at: r.ends_at,
            updated_at: r.updated_at,
            resolved: r.is(RESOLVED),
            acked_by: match r.is(HAS_ACKED_BY) {
                true => self.acked_by.get(&r.fp).cloned(),
                false => None,
            },
            version: r.version,
            fired: r.is(FIRED),
        }
    }

    /// The index facet of a record.
    fn indexed(&self, r: &Record) -> IndexedAlert {
        IndexedAlert {
            content: content_hash(&r.report),
            starts_at: r.report.starts_at,
            firing: !r.is(RESOLVED),
            stored_ends: r.ends_at,
            last_seq: r.version,
            acked: r.is(ACKED),
            seen_ends: r.seen_ends(),
        }
    }

    /// The orders, up to date.
    fn order(&self) -> parking_lot::MutexGuard<'_, Order> {
        let mut order = self.order.lock();
        order.refresh(self);
        order
    }

    fn cloned(&self, records: impl IntoIterator<Item = u32>) -> Vec<(Fingerprint, StoredAlert)> {
        let mut out: Vec<_> = records
            .into_iter()
            .map(|i| {
                let r = self.rec(i);
                (Fingerprint(r.fp), self.stored(r))
            })
            .collect();
        out.sort_by_key(|(fp, _)| *fp);
        out
    }
}

/// The dispatcher's two orders over the alerts, as record numbers.
#[derive(Default)]
struct Order {
    /// Not resolved, and `alert.fired` not recorded for this episode; in
    /// no order.
    unfired: Vec<u32>,
    /// Not resolved, by `endsAt`.
    ends: Vec<(DateTime<Utc>, u32)>,
    /// Records changed since the orders were last brought up to date, each
    /// once: `stale_bits` has their bits set.
    stale: Vec<u32>,
    stale_bits: Vec<u64>,
    /// So many changed (a replay, a restore) that filing everything again
    /// is cheaper: done at the next read.
    rebuild: bool,
}

/// Beyond this many changed alerts between two reads, rebuild instead.
const STALE_KEPT: usize = 50_000;

impl Order {
    fn touch(&mut self, i: u32) {
        if self.rebuild {
            return;
        }
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        if self.stale_bits.len() <= word {
            self.stale_bits.resize(word + 1, 0);
        }
        if self.stale_bits[word] & bit != 0 {
            return;
        }
        self.stale_bits[word] |= bit;
        self.stale.push(i);
        if self.stale.len() > STALE_KEPT {
            self.stale = Vec::new();
            self.stale_bits = Vec::new();
            self.rebuild = true;
        }
    }

    /// Files record `i` in the orders it belongs to; its `endsAt` goes to
    /// `ends`.
    fn file(unfired: &mut Vec<u32>, ends: &mut Vec<(DateTime<Utc>, u32)>, i: u32, r: &Record) {
        if r.is(RESOLVED) {
            return;
        }
        if !r.is(FIRED) {
            unfired.push(i);
        }
        if let Some(e) = r.ends_at {
            ends.push((e, i));
        }
    }

    /// Files what changed since the last read.
    fn refresh(&mut self, alerts: &Alerts) {
        if self.rebuild {
            *self = Order::default();
            for (i, r) in alerts.records().enumerate() {
                Self::file(&mut self.unfired, &mut self.ends, i as u32, r);
            }
            self.ends.sort_unstable();
            return;
        }
        if self.stale.is_empty() {
            return;
        }
        let bits = &self.stale_bits;
        let stale = |i: u32| bits[i as usize / 64] & (1u64 << (i % 64)) != 0;
        self.unfired.retain(|i| !stale(*i));
        self.ends.retain(|(_, i)| !stale(*i));
        let mut ends = Vec::new();
        for &i in &self.stale {
            Self::file(&mut self.unfired, &mut ends, i, alerts.rec(i));
        }
        ends.sort_unstable();
        merge_into(&mut self.ends, &ends);
        for i in std::mem::take(&mut self.stale) {
            self.stale_bits[i as usize / 64] = 0;
        }
    }

    /// Records whose `endsAt` is after `after` (any, with `None`) and at
    /// or before `until`.
    fn ending_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = u32> + '_ {
        let from = after.map_or(0, |a| self.ends.partition_point(|(e, _)| *e <= a));
        let to = self.ends.partition_point(|(e, _)| *e <= until);
        self.ends[from..to.max(from)].iter().map(|(_, i)| *i)
    }
}

/// Merges the sorted `new` into the sorted `into`, in place, from the back.
/// A sort of the two runs (the stable sort merges them) took a scratch
/// buffer as large as the order at every dispatcher pass that found a
/// change: ~1.6 MB allocated and freed a pass for 100,000 alerts, which the
/// allocator kept around as ~20 MiB more resident memory.
fn merge_into<T: Ord + Copy>(into: &mut Vec<T>, new: &[T]) {
    let Some(&first) = new.first() else {
        return;
    };
    let mut old = into.len();
    into.resize(old + new.len(), first);
    let mut new_left = new.len();
    let mut out = into.len();
    while new_left > 0 {
        out -= 1;
        if old > 0 && into[old - 1] > new[new_left - 1] {
            old -= 1;
            into[out] = into[old];
        } else {
            new_left -= 1;
            into[out] = new[new_left];
        }
    }
}

#[derive(Default)]
pub struct AlertStore {
    alerts: RwLock<Alerts>,
    /// PagerDuty-style `dedup_key` → fingerprint of its current alert (the
    /// index facet's).
    dedup_keys: RwLock<HashMap<String, u64>>,
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

impl Changes {
    fn note(&mut self, fps: impl IntoIterator<Item = Fingerprint>) {
        if self.everything {
            return;
        }
        self.fingerprints.extend(fps);
        if self.fingerprints.len() > CHANGES_KEPT {
            self.fingerprints = Vec::new();
            self.everything = true;
        }
    }
}

/// Beyond this many unclaimed changes, nobody is asking (a replay): stop
/// listing them.
const CHANGES_KEPT: usize = 200_000;

impl AlertStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, fp: Fingerprint) -> Option<StoredAlert> {
        let alerts = self.alerts.read();
        alerts.get(fp.0).map(|r| alerts.stored(r))
    }

    /// Every alert, sorted by fingerprint (a stable order for APIs).
    pub fn all(&self) -> Vec<(Fingerprint, StoredAlert)> {
        self.filtered(|_| true)
    }

    /// Alerts firing at `now` whose `alert.fired` is not recorded, sorted
    /// by fingerprint.
    pub fn unfired_firing(&self, now: DateTime<Utc>) -> Vec<(Fingerprint, StoredAlert)> {
        let alerts = self.alerts.read();
        let records: Vec<u32> = alerts
            .order()
            .unfired
            .iter()
            .copied()
            .filter(|i| alerts.rec(*i).firing_at(now))
            .collect();
        alerts.cloned(records)
    }

    /// Alerts not resolved whose `endsAt` is after `after` (any, with
    /// `None`) and at or before `until`, sorted by fingerprint.
    pub fn ending_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Vec<(Fingerprint, StoredAlert)> {
        if after.is_some_and(|a| a >= until) {
            return Vec::new();
        }
        let alerts = self.alerts.read();
        let records: Vec<u32> = alerts.order().ending_between(after, until).collect();
        alerts.cloned(records)
    }

    /// Whether [`Self::unfired_firing`] would return any, without copying
    /// them: the dispatcher's idle check asks at every timer pass.
    pub fn any_unfired_firing(&self, now: DateTime<Utc>) -> bool {
        let alerts = self.alerts.read();
        alerts
            .order()
            .unfired
            .iter()
            .any(|i| alerts.rec(*i).firing_at(now))
    }

    /// Whether [`Self::ending_between`] would return any, without copying
    /// them.
    pub fn any_ending_between(&self, after: Option<DateTime<Utc>>, until: DateTime<Utc>) -> bool {
        if after.is_some_and(|a| a >= until) {
            return false;
        }
        let alerts = self.alerts.read();
        alerts.order().ending_between(after, until).next().is_some()
    }

    /// The alerts `keep` accepts, sorted by fingerprint. The writer waits
    /// for this lock, so a scan must stay short: each alert costs a copy of
    /// its record's few fields (the report is shared, not copied).
    pub fn filtered(&self, keep: impl Fn(&StoredAlert) -> bool) -> Vec<(Fingerprint, StoredAlert)> {
        let alerts = self.alerts.read();
        let mut out: Vec<_> = alerts
            .records()
            .map(|r| (Fingerprint(r.fp), alerts.stored(r)))
            .filter(|(_, a)| keep(a))
            .collect();
        out.sort_by_key(|(fp, _)| *fp);
        out
    }

    pub fn len(&self) -> usize {
        self.alerts.read().len()
    }

    /// Whether any alert changed since the last [`Self::take_changes`].
    pub fn has_changes(&self) -> bool {
        let changes = self.changes.lock();
        changes.everything || !changes.fingerprints.is_empty()
    }

    /// The changes since the last call, for the one consumer (the
    /// dispatcher).
    pub fn take_changes(&self) -> Changes {
        std::mem::take(&mut *self.changes.lock())
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

/// The index facet: what ingest asks to tell a change from a re-send
/// (through [`crate::ingest::AlertIndex`]).
impl AlertStore {
    pub(crate) fn indexed(&self, fp: Fingerprint) -> Option<IndexedAlert> {
        let alerts = self.alerts.read();
        alerts.get(fp.0).map(|r| alerts.indexed(r))
    }

    /// Remembers a re-sent `endsAt` for the next lease checkpoint (an end
    /// beyond what nanoseconds since 1970 hold, year 2262, is not kept).
    pub(crate) fn note_seen_ends(&self, fp: Fingerprint, ends: DateTime<Utc>) {
        let Some(nanos) = ends.timestamp_nanos_opt() else {
            return;
        };
        if let Some(r) = self.alerts.read().get(fp.0) {
            r.seen_ends.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    pub(crate) fn fingerprint_of_dedup_key(&self, key: &str) -> Option<Fingerprint> {
        self.dedup_keys.read().get(key).copied().map(Fingerprint)
    }

    /// Alerts the index calls firing as of `now`.
    pub(crate) fn firing_count(&self, now: DateTime<Utc>) -> usize {
        let alerts = self.alerts.read();
        alerts.records().filter(|r| r.firing_at(now)).count()
    }

    /// Firing alerts whose re-sent `endsAt` is newer than the stored one and
    /// whose stored one runs out before `deadline`: the leases to write now.
    pub(crate) fn leases_due(&self, deadline: DateTime<Utc>) -> Vec<(Fingerprint, DateTime<Utc>)> {
        let alerts = self.alerts.read();
        alerts
            .records()
            .filter_map(|r| match (r.is(RESOLVED), r.ends_at, r.seen_ends()) {
                (false, Some(stored), Some(seen)) if seen > stored && stored < deadline => {
                    Some((Fingerprint(r.fp), seen))
                }
                _ => None,
            })
            .collect()
    }

    /// Every alert's index facet without `seen_ends`, sorted by fingerprint.
    pub(crate) fn index_snapshot(&self) -> Vec<(u64, IndexedAlert)> {
        let alerts = self.alerts.read();
        let mut all: Vec<(u64, IndexedAlert)> = alerts
            .records()
            .map(|r| {
                let mut a = alerts.indexed(r);
                a.seen_ends = None;
                (r.fp, a)
            })
            .collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    /// An alert's version, the `seq` of the last event that changed it.
    pub(crate) fn version_of(&self, fp: Fingerprint) -> u64 {
        self.alerts.read().get(fp.0).map_or(0, |r| r.version)
    }

    /// Only PagerDuty reports carry the extra key: most reports are done
    /// after one lookup in an (empty) map, not a label search.
    fn note_dedup_key(&self, fp: u64, report: &AlertReport) {
        if report
            .extra
            .contains_key(crate::ingest::pagerduty::EXTRA_KEY)
            && let Some(k) = report.labels.get(crate::ingest::pagerduty::DEDUP_LABEL)
        {
            self.dedup_keys.write().insert(k.to_string(), fp);
        }
    }
}

impl AlertStore {
    /// Folds `event` with both locks held (changes first, the one order
    /// they are ever taken together in): a dispatcher sees a change listed
    /// and the alert changed at once.
    fn fold(&self, changes: &mut Changes, alerts: &mut Alerts, event: &Event) {
        let at = event.recorded_at;
        let mut extended = Vec::new();
        match &event.kind {
            EventKind::AlertReceived(r) => changes.note(Fingerprint::parse(&r.fingerprint)),
            EventKind::AlertResolved(r) => changes.note(Fingerprint::parse(&r.fingerprint)),
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
                changes.note(extended.iter().map(|(fp, _)| *fp));
            }
            _ => {}
        }
        match &event.kind {
            EventKind::AlertReceived(report) => {
                let Some(fp) = Fingerprint::parse(&report.fingerprint) else {
                    return;
                };
                self.note_dedup_key(fp.0, report);
                match alerts.find(fp.0) {
                    // A changed report of a firing alert is the same
                    // episode; a report after a resolve starts a new one.
                    Some(i) => {
                        let r = alerts.rec_mut(i);
                        let had_acked_by = r.is(HAS_ACKED_BY);
                        let fired = r.is(FIRED) && !r.is(RESOLVED);
                        // A re-sent end the log does not hold yet stays
                        // noted if still ahead of the one reported.
                        let seen = r
                            .seen_ends()
                            .filter(|s| report.ends_at.is_some_and(|e| *s > e));
                        r.report = report.clone();
                        r.ends_at = report.ends_at;
                        r.updated_at = at;
                        r.version = event.seq;
                        r.flags = if fired { FIRED } else { 0 };
                        r.set_seen_ends(seen);
                        if had_acked_by {
                            alerts.acked_by(fp.0, None);
                        }
                        alerts.order.get_mut().touch(i);
                    }
                    None => {
                        alerts.push(Record {
                            fp: fp.0,
                            report: report.clone(),
                            version: event.seq,
                            seen_ends: AtomicI64::new(NO_SEEN_ENDS),
                            ends_at: report.ends_at,
                            updated_at: at,
                            flags: 0,
                        });
                    }
                }
            }
            EventKind::AlertRefreshed { .. } => {
                for (fp, ends_at) in extended {
                    let Some(i) = alerts.find(fp.0) else {
                        continue;
                    };
                    let r = alerts.rec_mut(i);
                    if r.seen_ends().is_some_and(|s| s <= ends_at) {
                        r.set_seen_ends(None);
                    }
                    // A lease written just before a resolve committed
                    // must not revive the resolved end.
                    if !r.is(RESOLVED) && r.ends_at.is_some_and(|e| e < ends_at) {
                        r.ends_at = Some(ends_at);
                        alerts.order.get_mut().touch(i);
                    }
                }
            }
            EventKind::AlertResolved(res) => {
                let Some(fp) = Fingerprint::parse(&res.fingerprint) else {
                    return;
                };
                if let Some(r) = &res.report {
                    self.note_dedup_key(fp.0, r);
                }
                let resolved = |r: &mut Record| {
                    r.ends_at = Some(res.ends_at);
                    r.updated_at = at;
                    r.version = event.seq;
                    // The index's `acked` outlives a resolve without a
                    // report; `acked_by` does not.
                    let acked = r.is(ACKED) && res.report.is_none();
                    r.flags = RESOLVED;
                    r.set(ACKED, acked);
                    r.set_seen_ends(None);
                };
                match (alerts.find(fp.0), &res.report) {
                    (Some(i), report) => {
                        let r = alerts.rec_mut(i);
                        let had_acked_by = r.is(HAS_ACKED_BY);
                        if let Some(report) = report {
                            r.report = Arc::new(report.clone());
                        }
                        resolved(r);
                        if had_acked_by {
                            alerts.acked_by(fp.0, None);
                        }
                        alerts.order.get_mut().touch(i);
                    }
                    (None, Some(report)) => {
                        let mut r = Record {
                            fp: fp.0,
                            report: Arc::new(report.clone()),
                            version: event.seq,
                            seen_ends: AtomicI64::new(NO_SEEN_ENDS),
                            ends_at: None,
                            updated_at: at,
                            flags: 0,
                        };
                        resolved(&mut r);
                        alerts.push(r);
                    }
                    (None, None) => {}
                }
            }
            EventKind::AlertAcked {
                fingerprint, by, ..
            } => {
                if let Some(fp) = Fingerprint::parse(fingerprint)
                    && alerts.find(fp.0).is_some()
                {
                    alerts.update(fp.0, |r| {
                        r.set(ACKED | HAS_ACKED_BY, true);
                        r.updated_at = at;
                        r.version = event.seq;
                    });
                    alerts.acked_by(fp.0, Some(by));
                }
            }
            EventKind::AlertFired { fingerprint } => {
                if let Some(fp) = Fingerprint::parse(fingerprint) {
                    alerts.update(fp.0, |r| r.set(FIRED, true));
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
}

/// A snapshot: the alerts with their index facet's `acked` (`seen_ends` is
/// not a fold), and the dedup keys.
type Saved = (Vec<(u64, StoredAlert, bool)>, HashMap<String, u64>);

impl Projection for AlertStore {
    fn name(&self) -> &'static str {
        "alert-store"
    }

    fn apply(&self, event: &Event) {
        let mut changes = self.changes.lock();
        self.fold(&mut changes, &mut self.alerts.write(), event);
    }

    /// Replay's ranges: the locks taken once for many events.
    fn apply_all(&self, events: &[&Event]) {
        let mut changes = self.changes.lock();
        let mut alerts = self.alerts.write();
        for event in events {
            self.fold(&mut changes, &mut alerts, event);
        }
    }

    fn reset(&self) {
        *self.alerts.write() = Alerts::default();
        self.dedup_keys.write().clear();
        self.changed_everything();
    }

    fn snapshot_items(&self) -> usize {
        self.len()
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        // Copies share each alert's report; serialising writes text
        // directly (a JSON tree of every alert would cost far more).
        let alerts = self.alerts.read();
        let saved: Saved = (
            alerts
                .records()
                .map(|r| (r.fp, alerts.stored(r), r.is(ACKED)))
                .collect(),
            self.dedup_keys.read().clone(),
        );
        drop(alerts);
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &saved)
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let (saved, dedup_keys): Saved = serde_json::from_str(state).map_err(|e| e.to_string())?;
        let mut alerts = Alerts::default();
        // Filed all at once at the first read.
        alerts.order.get_mut().rebuild = true;
        for (fp, a, acked) in saved {
            if a.acked_by.is_some() {
                alerts.acked_by(fp, a.acked_by.as_deref());
            }
            let mut flags = 0;
            for (on, flag) in [
                (a.resolved, RESOLVED),
                (a.fired, FIRED),
                (acked, ACKED),
                (a.acked_by.is_some(), HAS_ACKED_BY),
            ] {
                if on {
                    flags |= flag;
                }
            }
            alerts.push(Record {
                fp,
                report: a.report,
                version: a.version,
                seen_ends: AtomicI64::new(NO_SEEN_ENDS),
                ends_at: a.ends_at,
                updated_at: a.updated_at,
                flags,
            });
        }
        *self.alerts.write() = alerts;
        *self.dedup_keys.write() = dedup_keys;
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

    use crate::ingest::AlertIndex;
    use crate::ingest::index::{IndexedAlert, content_hash};

    /// The ingest index as it was when it kept a table of its own (the
    /// fold of `alert.*` events into `IndexedAlert`s): the store's index
    /// facet must answer exactly what this answers.
    fn reference_index(index: &mut FingerprintMap<IndexedAlert>, event: &Event) {
        let upsert = |index: &mut FingerprintMap<IndexedAlert>, report: &AlertReport, firing| {
            let fp = Fingerprint::parse(&report.fingerprint).unwrap().0;
            let seen = index.get(&fp).and_then(|a| a.seen_ends);
            index.insert(
                fp,
                IndexedAlert {
                    content: content_hash(report),
                    starts_at: report.starts_at,
                    firing,
                    stored_ends: report.ends_at,
                    last_seq: event.seq,
                    acked: false,
                    seen_ends: seen.filter(|s| report.ends_at.is_some_and(|e| *s > e)),
                },
            );
        };
        match &event.kind {
            EventKind::AlertReceived(r) => upsert(index, r, true),
            EventKind::AlertResolved(res) => {
                if let Some(r) = &res.report {
                    upsert(index, r, false);
                }
                let fp = Fingerprint::parse(&res.fingerprint).unwrap().0;
                if let Some(e) = index.get_mut(&fp) {
                    e.firing = false;
                    e.stored_ends = Some(res.ends_at);
                    e.seen_ends = None;
                    e.last_seq = event.seq;
                }
            }
            EventKind::AlertRefreshed { leases } => {
                for lease in leases {
                    for fp in lease.fingerprints.values().flatten() {
                        if let Some(e) = index.get_mut(&fp) {
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
                let fp = Fingerprint::parse(fingerprint).unwrap().0;
                if let Some(e) = index.get_mut(&fp) {
                    e.acked = true;
                    e.last_seq = event.seq;
                }
            }
            _ => {}
        }
    }

    fn resolved(name: &str, at: i64, report: Option<EventKind>) -> EventKind {
        EventKind::AlertResolved(AlertResolution {
            fingerprint: fp(name),
            ends_at: t(at),
            reason: "resolved".into(),
            report: report.map(|r| match r {
                EventKind::AlertReceived(r) => (*r).clone(),
                _ => unreachable!(),
            }),
        })
    }

    fn acked(name: &str) -> EventKind {
        EventKind::AlertAcked {
            fingerprint: fp(name),
            by: "oncall@example.com".into(),
            dedup_key: None,
        }
    }

    fn lease(names: &[&str], ends: i64) -> EventKind {
        EventKind::AlertRefreshed {
            leases: vec![Lease {
                ends_at: t(ends),
                fingerprints: names.iter().map(|n| fp(n)).collect::<Vec<_>>().into(),
            }],
        }
    }

    /// Regression: the store, its index facet and its orders once were
    /// three tables; now one record answers for all three, through every
    /// change an alert goes through and a restore, as the three did.
    /// (step, event, re-sent ends noted before it: name and seconds).
    #[test]
    fn an_alerts_record_answers_as_the_store_and_the_index_did() {
        let steps: Vec<(EventKind, Option<(&str, i64)>)> = vec![
            (received("a", Some(100)), None),
            (received("b", None), None),
            // A re-send of a with a later end, noted, then leased.
            (lease(&["a"], 150), Some(("a", 200))),
            (lease(&["a"], 200), None),
            (acked("a"), None),
            // A resolve without a report keeps the index's `acked`, drops
            // `acked_by`.
            (resolved("a", 210, None), None),
            // A refire: a new episode, nothing acknowledged.
            (received("a", Some(400)), Some(("a", 500))),
            (acked("b"), None),
            // A resolve with a report clears both.
            (resolved("b", 300, Some(received("b", Some(300)))), None),
            // First seen resolved.
            (resolved("c", 50, Some(received("c", Some(50)))), None),
            // A lease after a resolve does not revive it.
            (lease(&["b", "a"], 600), None),
            (
                EventKind::AlertFired {
                    fingerprint: fp("a"),
                },
                None,
            ),
            (received("b", Some(700)), None),
        ];
        let store = Arc::new(AlertStore::new());
        let index = AlertIndex::of(store.clone());
        let own = AlertIndex::new();
        let mut reference = FingerprintMap::default();
        for (i, (kind, seen)) in steps.into_iter().enumerate() {
            if let Some((name, at)) = seen {
                let f = Fingerprint::parse(&fp(name)).unwrap();
                index.note_seen_ends(f, t(at));
                own.note_seen_ends(f, t(at));
                if let Some(e) = reference.get_mut(&f.0) {
                    let e: &mut IndexedAlert = e;
                    if e.seen_ends.is_none_or(|s| s < t(at)) {
                        e.seen_ends = Some(t(at));
                    }
                }
            }
            let e = event(i as u64 + 1, kind);
            store.apply(&e);
            own.apply(&e);
            reference_index(&mut reference, &e);
            let mut want: Vec<(u64, IndexedAlert)> =
                reference.iter().map(|(k, v)| (*k, v.clone())).collect();
            want.sort_by_key(|(k, _)| *k);
            for (k, v) in &want {
                assert_eq!(index.get(Fingerprint(*k)).as_ref(), Some(v), "step {i}");
                assert_eq!(own.get(Fingerprint(*k)).as_ref(), Some(v), "step {i}");
                let stored = store.get(Fingerprint(*k)).unwrap();
                assert_eq!(stored.version, v.last_seq, "step {i}");
                assert_eq!(stored.ends_at, v.stored_ends, "step {i}");
                assert_eq!(!stored.resolved, v.firing, "step {i}");
            }
            let unseen = |v: Vec<(u64, IndexedAlert)>| -> Vec<(u64, IndexedAlert)> {
                v.into_iter()
                    .map(|(k, mut a)| {
                        a.seen_ends = None;
                        (k, a)
                    })
                    .collect()
            };
            assert_eq!(index.snapshot(), unseen(want.clone()), "step {i}");
            let mut due: Vec<_> = want
                .iter()
                .filter_map(|(k, a)| match (a.firing, a.stored_ends, a.seen_ends) {
                    (true, Some(s), Some(seen)) if seen > s && s < t(1000) => {
                        Some((Fingerprint(*k), seen))
                    }
                    _ => None,
                })
                .collect();
            due.sort();
            let mut leases = index.leases_due(t(1000));
            leases.sort();
            assert_eq!(leases, due, "step {i}: leases due");
            assert_eq!(
                index.firing_count(t(250)),
                want.iter().filter(|(_, a)| a.firing_at(t(250))).count(),
                "step {i}"
            );
        }
        let a = store.get(Fingerprint::parse(&fp("a")).unwrap()).unwrap();
        assert!(a.fired && !a.resolved && a.acked_by.is_none());
        // A restored store answers the same, for the store and the index.
        let restored = Arc::new(AlertStore::new());
        crate::eventlog::projection::restore_from_snapshot(&*store, &*restored);
        assert_eq!(restored.all(), store.all());
        assert_eq!(
            AlertIndex::of(restored.clone()).snapshot(),
            index.snapshot()
        );
        let own_restored = AlertIndex::new();
        crate::eventlog::projection::restore_from_snapshot(&own, &own_restored);
        assert_eq!(own_restored.snapshot(), index.snapshot());
    }

    /// (order kept, new entries, merged): a merge in place, as a sort of
    /// both would give.
    #[test]
    fn merging_a_sorted_run_into_the_order_keeps_it_sorted() {
        let cases: Vec<(Vec<u32>, Vec<u32>)> = vec![
            (vec![], vec![]),
            (vec![], vec![1, 2]),
            (vec![1, 2], vec![]),
            (vec![1, 3, 5], vec![2, 4, 6]),
            (vec![4, 5, 6], vec![1, 2, 3]),
            (vec![1, 2, 3], vec![4, 5, 6]),
            (vec![1, 2, 2, 9], vec![2, 2, 8, 10]),
        ];
        for (mut into, new) in cases {
            let mut want = [into.clone(), new.clone()].concat();
            want.sort();
            merge_into(&mut into, &new);
            assert_eq!(into, want);
        }
    }

    /// Who acknowledged is kept beside the records, for the few alerts
    /// acknowledged: a refire or resolve forgets it, a snapshot keeps it.
    #[test]
    fn acked_by_is_kept_until_the_episode_ends_and_through_a_restore() {
        let store = AlertStore::new();
        let a = Fingerprint::parse(&fp("a")).unwrap();
        let who = |s: &AlertStore| s.get(a).unwrap().acked_by;
        store.apply(&event(1, received("a", None)));
        store.apply(&event(2, acked("a")));
        assert_eq!(who(&store).as_deref(), Some("oncall@example.com"));
        let restored = AlertStore::new();
        crate::eventlog::projection::restore_from_snapshot(&store, &restored);
        assert_eq!(who(&restored).as_deref(), Some("oncall@example.com"));
        store.apply(&event(3, received("a", Some(60))));
        assert_eq!(who(&store), None);
        store.apply(&event(4, acked("a")));
        store.apply(&event(5, resolved("a", 70, None)));
        assert_eq!(who(&store), None);
        assert!(store.alerts.read().acked_by.is_empty());
    }
}
