//! The dispatcher: alerts into aggregation groups, groups into
//! `notification.due` decisions, on durable timers.
//!
//! Semantics are Alertmanager's: an alert joins one group per route it
//! matches (route id + `group_by` values). A new group waits `group_wait`
//! before its first notification; after that it is flushed every
//! `group_interval`, and a flush notifies only when something changed (new
//! firing alerts, or alerts notified before that have resolved) or when
//! `repeat_interval` has passed since the last notification. Silenced and
//! inhibited alerts are left out and said so; a route's mute time intervals
//! skip its flushes, active time intervals limit them.
//!
//! Where Fenghuo deliberately differs: an alert joining a group that has
//! already notified waits for the next `group_interval` flush only under
//! `late_joiners: wait`. Under the default `severity`, a joiner more severe
//! than everything the last notification listed as firing brings the flush
//! forward to `group_wait` after the pass that saw it join; under `always`,
//! any joiner does. The timer says why (`late joiner <fp>: severity
//! critical above warning`).
//!
//! Flapping alerts (see [`super::flap`]) are muted with the reason
//! `flapping`, whether firing or resolved between flips, so neither their
//! fires nor their resolves page. The group's first notification after one
//! starts flapping is its one notice: the alert is listed as firing and
//! named in `flapping`. When it stops flapping it is notified as any alert
//! coming back from a mute: as new if firing, as resolved if it settled
//! resolved. The flapping decisions are made first, alone in their round,
//! so the change that makes an alert flapping never pages.
//!
//! Alerts inhibited through the topology (an inhibit rule's `through:`)
//! are their cause's symptoms: the cause's group lists them in its
//! notification's `symptoms`, so its page says what else it brought down.
//! Symptoms that join after that page are news for an update in place
//! (never a page): its `symptoms` marks them `new`.
//!
//! Every decision is an event: `group.scheduled` (the timer, so a restart
//! neither drops nor repeats a due flush and a waiting group keeps waiting
//! only the time left) and `notification.due`. [`GroupStates`] folds them;
//! [`Dispatcher::step`] decides from the folds and the clock, and never
//! sends anything.

use crate::evaluate::Fingerprint;
use crate::evaluate::fingerprints::{SortedFingerprints, canonical};
use crate::evaluate::route::RouteTree;
use crate::eventlog::LabelSet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::alerts::{AlertStore, StoredAlert};
use super::flap::{FLAPPING, FlapView};
use super::route::{LateJoiners, group_key, group_labels, label_set_string};
use super::silence::SilenceStore;
use crate::config::Routing;
use crate::eventlog::{
    Decider, Event, EventKind, EventLog, GroupRef, GroupTimer, LogError, NewEvent, NotificationDue,
    Projection,
};

/// What the log says about one group. Kept for every group (tens of
/// thousands): the fingerprint sets are compact (`u64`s, not strings), the
/// three that are nearly always empty share one box, absent while they
/// are, and the group's names are the one copy all views share (see
/// [`shared_group`]); the JSON is that of the string sets and the plain
/// `GroupRef` ([`PlainGroupState`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "PlainGroupState", into = "PlainGroupState")]
pub struct GroupState {
    /// The group as the last decision about it named it.
    pub group: Option<Arc<GroupRef>>,
    pub next_due: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Fingerprints the last notification listed as firing.
    pub last_firing: SortedFingerprints,
    /// `None` while all three of its sets are empty.
    muting: Option<Box<Muting>>,
}

/// The sets of a [`GroupState`] only a group with muted, flapping or
/// symptom alerts has.
#[derive(Debug, Clone, Default, PartialEq)]
struct Muting {
    last_muted: SortedFingerprints,
    flapping_noticed: SortedFingerprints,
    last_symptoms: SortedFingerprints,
}

static NO_FINGERPRINTS: std::sync::LazyLock<SortedFingerprints> =
    std::sync::LazyLock::new(SortedFingerprints::default);

impl GroupState {
    /// Fingerprints muted at the last flush: when they come back while
    /// still firing, they are notified again (Alertmanager stays silent).
    pub fn last_muted(&self) -> &SortedFingerprints {
        self.muting
            .as_ref()
            .map_or(&NO_FINGERPRINTS, |m| &m.last_muted)
    }

    /// Flapping alerts the group has had its one notice about and still
    /// mutes as flapping: when one stops flapping resolved, the resolve is
    /// sent.
    pub fn flapping_noticed(&self) -> &SortedFingerprints {
        self.muting
            .as_ref()
            .map_or(&NO_FINGERPRINTS, |m| &m.flapping_noticed)
    }

    /// Symptoms the last notification summarised: one joining later is
    /// news for an update in place, never a page.
    pub fn last_symptoms(&self) -> &SortedFingerprints {
        self.muting
            .as_ref()
            .map_or(&NO_FINGERPRINTS, |m| &m.last_symptoms)
    }

    /// Sets the three sets (the box only if one is not empty).
    fn set_muting(
        &mut self,
        last_muted: SortedFingerprints,
        flapping_noticed: SortedFingerprints,
        last_symptoms: SortedFingerprints,
    ) {
        let muting = Muting {
            last_muted,
            flapping_noticed,
            last_symptoms,
        };
        self.muting = (muting != Muting::default()).then(|| Box::new(muting));
    }

    fn set_last_muted(&mut self, last_muted: SortedFingerprints) {
        let (flapping, symptoms) = match self.muting.take() {
            Some(m) => (m.flapping_noticed, m.last_symptoms),
            None => Default::default(),
        };
        self.set_muting(last_muted, flapping, symptoms);
    }
}

/// A [`GroupState`] as snapshots and the API have always written it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct PlainGroupState {
    group: Option<Arc<GroupRef>>,
    next_due: Option<DateTime<Utc>>,
    last_notified_at: Option<DateTime<Utc>>,
    last_firing: SortedFingerprints,
    last_muted: SortedFingerprints,
    #[serde(default)]
    flapping_noticed: SortedFingerprints,
    #[serde(default)]
    last_symptoms: SortedFingerprints,
}

impl From<PlainGroupState> for GroupState {
    fn from(p: PlainGroupState) -> Self {
        let mut g = GroupState {
            group: p.group,
            next_due: p.next_due,
            last_notified_at: p.last_notified_at,
            last_firing: p.last_firing,
            muting: None,
        };
        g.set_muting(p.last_muted, p.flapping_noticed, p.last_symptoms);
        g
    }
}

impl From<GroupState> for PlainGroupState {
    fn from(g: GroupState) -> Self {
        let m = g.muting.map(|m| *m).unwrap_or_default();
        PlainGroupState {
            group: g.group,
            next_due: g.next_due,
            last_notified_at: g.last_notified_at,
            last_firing: g.last_firing,
            last_muted: m.last_muted,
            flapping_noticed: m.flapping_noticed,
            last_symptoms: m.last_symptoms,
        }
    }
}

/// A group's `GroupRef`, keyed, compared and hashed by its id alone, so
/// that tables of groups can be keyed by the one shared copy (looked up by
/// `&str`) instead of a `String` of the id each.
#[derive(Debug, Clone)]
pub(crate) struct GroupById(pub(crate) Arc<GroupRef>);

impl GroupById {
    /// The group's id (`GroupRef::group`).
    pub(crate) fn id(&self) -> &str {
        &self.0.group
    }
}

impl std::borrow::Borrow<str> for GroupById {
    fn borrow(&self) -> &str {
        &self.0.group
    }
}

impl PartialEq for GroupById {
    fn eq(&self, other: &Self) -> bool {
        self.0.group == other.0.group
    }
}

impl Eq for GroupById {}

impl PartialOrd for GroupById {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupById {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.group.cmp(&other.0.group)
    }
}

impl std::hash::Hash for GroupById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.group.as_str().hash(state)
    }
}

/// The groups' shared `GroupRef`s, see [`shared_group`].
struct SharedGroups {
    by_id: std::collections::HashSet<GroupById>,
    /// Entries nobody else holds are dropped when the table reaches this.
    prune_at: usize,
}

static SHARED_GROUPS: std::sync::LazyLock<parking_lot::Mutex<SharedGroups>> =
    std::sync::LazyLock::new(|| {
        parking_lot::Mutex::new(SharedGroups {
            by_id: Default::default(),
            prune_at: 1024,
        })
    });

/// One `Arc` of each group's `GroupRef` (equal content), for the views that
/// keep one per group: the dispatcher's routes and memo, the group states
/// and the incidents. Each kept a copy of the group's five strings, ~5 MB
/// per view for 20,000 groups. Only a memory saving: what a caller gets is
/// equal to what it gave, whoever else holds it. Process-wide (the views
/// are built apart); entries only this table holds are dropped as it grows.
pub fn shared_group(group: &GroupRef) -> Arc<GroupRef> {
    let mut shared = SHARED_GROUPS.lock();
    if let Some(known) = shared.by_id.get(group.group.as_str())
        && *known.0 == *group
    {
        return known.0.clone();
    }
    let new = Arc::new(group.clone());
    shared.by_id.replace(GroupById(new.clone()));
    if shared.by_id.len() >= shared.prune_at {
        shared.by_id.retain(|g| Arc::strong_count(&g.0) > 1);
        shared.prune_at = (2 * shared.by_id.len()).max(1024);
    }
    new
}

/// Fold of `group.scheduled` and `notification.due`.
#[derive(Default)]
pub struct GroupStates {
    /// Boxed: the table has a slot per group and as many empty ones again,
    /// each the size of its value. Keyed by the group's id, one copy of
    /// which `listed` and `timers` share.
    groups: RwLock<HashMap<Arc<str>, Box<GroupState>>>,
    /// Which version of each group's `last_firing` is in force: a number
    /// unique in this view's life, new whenever that set may have changed
    /// (a notification folded, a restore). The dispatcher keeps each
    /// group's late joiners relative to it and starts over when it moves.
    /// Not state: neither snapshotted nor compared.
    listed: RwLock<HashMap<Arc<str>, u64>>,
    /// The last number handed out in `listed`; never reset.
    stamps: std::sync::atomic::AtomicU64,
    /// Every group's `next_due`, ordered: the earliest is read at every
    /// timer pass, and the groups due at a pass are visited by it (a scan
    /// of every group there was a cost of each pass). Kept with `groups`.
    timers: parking_lot::Mutex<BTreeSet<(DateTime<Utc>, Arc<str>)>>,
    /// Groups whose state changed since the dispatcher last took them:
    /// with the groups whose membership changed and those due, what a
    /// pass visits. Not state: neither snapshotted nor compared.
    touched: parking_lot::Mutex<Touched>,
}

/// Groups changed since [`GroupStates::take_touched`] was last called.
#[derive(Default)]
struct Touched {
    ids: BTreeSet<String>,
    /// Too many to list (a replay nobody decides in), or a reset or a
    /// restore: every group is to be visited.
    everything: bool,
}

/// Beyond this many groups changed between two passes, every group is
/// visited instead.
const TOUCHED_GROUPS_KEPT: usize = 100_000;

/// Moves group `id`'s timer from `old` to `new` in `timers`.
fn refile(
    timers: &mut BTreeSet<(DateTime<Utc>, Arc<str>)>,
    id: &Arc<str>,
    old: Option<DateTime<Utc>>,
    new: Option<DateTime<Utc>>,
) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        timers.remove(&(old, id.clone()));
    }
    if let Some(new) = new {
        timers.insert((new, id.clone()));
    }
}

impl GroupStates {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, group: &str) -> Option<GroupState> {
        self.groups.read().get(group).map(|g| GroupState::clone(g))
    }

    /// The entry of group `id` (created empty), with the key `listed` and
    /// `timers` share.
    fn entry<'a>(
        groups: &'a mut HashMap<Arc<str>, Box<GroupState>>,
        id: &str,
    ) -> (Arc<str>, &'a mut GroupState) {
        let key = match groups.get_key_value(id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(id),
        };
        let state = groups.entry(key.clone()).or_default();
        (key, state)
    }

    /// Every group with its state, sorted by id.
    pub fn all(&self) -> Vec<(String, GroupState)> {
        let mut all: Vec<_> = self
            .groups
            .read()
            .iter()
            .map(|(k, v)| (k.to_string(), GroupState::clone(v)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The earliest pending timer, for the loop that wakes the dispatcher.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let due = self.timers.lock().first().map(|(at, _)| *at);
        // Tests run debug builds: the kept order is checked against every
        // group's timer.
        #[cfg(debug_assertions)]
        assert_eq!(
            due,
            self.groups.read().values().filter_map(|g| g.next_due).min(),
            "kept group timers diverged"
        );
        due
    }

    /// `timers` from every group (after a reset or a restore).
    fn refile_all(&self) {
        let mut timers = BTreeSet::new();
        for (id, g) in self.groups.read().iter() {
            refile(&mut timers, id, None, g.next_due);
        }
        *self.timers.lock() = timers;
    }

    /// The groups whose timer is due at `now`.
    fn due_by(&self, now: DateTime<Utc>) -> Vec<String> {
        self.timers
            .lock()
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.to_string())
            .collect()
    }

    fn touch(&self, id: &str) {
        let mut touched = self.touched.lock();
        if touched.everything {
            return;
        }
        touched.ids.insert(id.to_string());
        if touched.ids.len() > TOUCHED_GROUPS_KEPT {
            *touched = Touched {
                ids: BTreeSet::new(),
                everything: true,
            };
        }
    }

    fn touch_everything(&self) {
        *self.touched.lock() = Touched {
            ids: BTreeSet::new(),
            everything: true,
        };
    }

    /// The groups whose state changed since the last call; `None`: every
    /// group may have.
    fn take_touched(&self) -> Option<BTreeSet<String>> {
        let touched = std::mem::take(&mut *self.touched.lock());
        (!touched.everything).then_some(touched.ids)
    }

    fn stamp(&self) -> u64 {
        self.stamps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// New `listed` stamps for every group (after a reset or a restore).
    fn restamp(&self) {
        let ids: Vec<Arc<str>> = self.groups.read().keys().cloned().collect();
        *self.listed.write() = ids.into_iter().map(|id| (id, self.stamp())).collect();
    }
}

impl Projection for GroupStates {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn apply(&self, event: &Event) {
        match &event.kind {
            EventKind::GroupScheduled(t) => {
                let mut groups = self.groups.write();
                let (id, g) = Self::entry(&mut groups, &t.group.group);
                refile(&mut self.timers.lock(), &id, g.next_due, Some(t.due_at));
                self.touch(&t.group.group);
                if g.group.as_deref() != Some(&t.group) {
                    g.group = Some(shared_group(&t.group));
                }
                g.next_due = Some(t.due_at);
                g.set_last_muted(SortedFingerprints::of(&t.muted));
            }
            // An escalation page is not the group's own notification.
            EventKind::NotificationDue(n) if n.escalation.is_none() => {
                let mut groups = self.groups.write();
                let (id, g) = Self::entry(&mut groups, &n.group.group);
                self.listed.write().insert(id.clone(), self.stamp());
                refile(&mut self.timers.lock(), &id, g.next_due, None);
                self.touch(&n.group.group);
                if g.group.as_deref() != Some(&n.group) {
                    g.group = Some(shared_group(&n.group));
                }
                g.next_due = None;
                g.last_notified_at = Some(event.occurred_at);
                g.last_firing = SortedFingerprints::of(&n.firing);
                let still = g.flapping_noticed().strings().filter(|fp| {
                    n.muted
                        .get(fp.as_ref())
                        .is_some_and(|w| w.iter().any(|w| w == FLAPPING))
                });
                let flapping_noticed = SortedFingerprints::of(
                    still
                        .map(|fp| fp.into_owned())
                        .chain(n.flapping.iter().cloned())
                        .collect::<Vec<String>>(),
                );
                g.set_muting(
                    SortedFingerprints::of(n.muted.keys()),
                    flapping_noticed,
                    SortedFingerprints::of(n.symptoms.iter().map(|s| &s.fingerprint)),
                );
            }
            EventKind::GroupClosed(g) => {
                let closed = self.groups.write().remove_entry(g.group.as_str());
                if let Some((id, closed)) = closed {
                    refile(&mut self.timers.lock(), &id, closed.next_due, None);
                }
                self.touch(&g.group);
                self.listed.write().remove(g.group.as_str());
            }
            _ => {}
        }
    }

    fn reset(&self) {
        self.groups.write().clear();
        self.timers.lock().clear();
        self.touch_everything();
        self.restamp();
    }

    fn snapshot_items(&self) -> usize {
        self.groups.read().len()
    }

    fn snapshot_json(&self) -> Option<crate::eventlog::projection::SnapshotWriter> {
        let all = self.all();
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &all)
        }))
    }

    fn restore_json(&self, state: &str) -> Result<(), String> {
        let all: Vec<(String, GroupState)> =
            serde_json::from_str(state).map_err(|e| e.to_string())?;
        *self.groups.write() = all
            .into_iter()
            .map(|(id, mut g)| {
                g.group = g.group.map(|g| shared_group(&g));
                (Arc::from(id), Box::new(g))
            })
            .collect();
        self.refile_all();
        self.touch_everything();
        self.restamp();
        Ok(())
    }
}

/// One group's members as of now, by fingerprint (numbers: a `String` of
/// each was most of the memo's memory).
#[derive(Debug, Default, PartialEq)]
struct Members {
    group: Option<Arc<GroupRef>>,
    firing: BTreeSet<Fingerprint>,
    muted: BTreeMap<Fingerprint, Vec<String>>,
    /// Alerts muted as symptoms of the group's firing alerts, joined
    /// through the topology, by fingerprint.
    symptoms: BTreeMap<String, crate::eventlog::Symptom>,
}

impl Members {
    /// Firing or muted.
    fn is_member(&self, fp: Fingerprint) -> bool {
        self.firing.contains(&fp) || self.muted.contains_key(&fp)
    }
}

/// Decides; owns no state of its own beyond what the log folds into (and a
/// cache of what never changes).
pub struct Dispatcher {
    log: EventLog,
    /// The routing sections in force. Read once per pass; replaced by
    /// [`Dispatcher::set_routing`] between writer batches (a reload).
    routing: parking_lot::RwLock<Arc<Routing>>,
    alerts: Arc<AlertStore>,
    silences: Arc<SilenceStore>,
    groups: Arc<GroupStates>,
    /// Which alerts are flapping (muted after one notice).
    flaps: Arc<FlapView>,
    /// Flapping decisions went out alone in the last round: the group
    /// decisions are owed to the next, whatever the budget.
    owed: std::sync::atomic::AtomicBool,
    /// The groups each alert belongs to, by fingerprint. A fingerprint
    /// fixes the labels and the config fixes the tree, so an entry never
    /// goes stale; it only spares walking the tree and building group keys
    /// for every alert at every step.
    routes: parking_lot::Mutex<RouteCache>,
    /// How long the last decision pass took, for the loop's pacing.
    last_decide: parking_lot::Mutex<std::time::Duration>,
    /// Group membership as of the last pass, brought up to date with the
    /// alerts that changed since, instead of rebuilt from every alert.
    memo: parking_lot::Mutex<Option<Memo>>,
    /// The last `seq` folded when a pass ran.
    decided_through: std::sync::atomic::AtomicU64,
    /// What inhibit rules with `through:` join by: placement, releases
    /// (the config part comes with the routing).
    topology: Arc<super::topology::Topology>,
    releases: Arc<crate::act::release::Releases>,
}

/// The groups of each alert, with one shared `GroupRef` per group: the
/// alerts of a group (often thousands) point at one copy of its labels and
/// keys.
///
/// An alert in one group (nearly all) shares that group's one-element
/// list: one allocation per group, not per alert.
#[derive(Default)]
struct RouteCache {
    by_alert: HashMap<Fingerprint, Arc<[Arc<GroupRef>]>, crate::evaluate::FingerprintHashing>,
    /// Every group seen, with the list of it alone.
    groups: HashMap<GroupById, Arc<[Arc<GroupRef>]>>,
}

/// Membership and what it was computed from.
struct Memo {
    members: BTreeMap<GroupById, Members>,
    /// Each group's late joiners, kept as its membership changes (only for
    /// groups a late-joiner check has read). Boxed: most are empty, and a
    /// table slot the size of one was most of their memory.
    joiners: HashMap<GroupById, Box<Joiners>>,
    /// The last pass.
    at: DateTime<Utc>,
    silences_version: u64,
    flaps_version: u64,
    /// The alerts flapping at the last pass: those that start or stop are
    /// looked at again.
    flapping: BTreeSet<String>,
    /// Groups whose membership changed since the last pass that decided;
    /// `None`: membership was rebuilt, every group is to be visited.
    changed: Option<BTreeSet<String>>,
}

/// What a group's late-joiner check reads, kept up to date as membership
/// and the group's last notification change, so that the check at every
/// pass reads this instead of walking the group (groups of thousands of
/// alerts, at every pass, were most of a backtest).
#[derive(Debug, Default, PartialEq)]
struct Joiners {
    /// The `GroupStates::listed` stamp of the last notification this is
    /// relative to; `None`: to be computed afresh from the group.
    against: Option<u64>,
    /// Alerts whose membership changed since, to be taken in at the next
    /// read.
    touched: Vec<Fingerprint>,
    /// Firing members the last notification did not list.
    unlisted: BTreeSet<Fingerprint>,
    /// Those with a rank in the route's severity order, by rank (filled
    /// under `late_joiners: severity` only).
    ranked: BTreeSet<(usize, Fingerprint)>,
    /// The most severe rank the last notification listed (under
    /// `late_joiners: severity`; `None` when nothing it listed is ranked).
    paged: Option<usize>,
}

/// A pass that took longer than this is not run inside a commit: every
/// append would wait for it. The dispatch loop asks for one instead, paced.
const IN_COMMIT_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);

/// Beyond this many alerts changed in a group since its late joiners were
/// last read, they are computed afresh from the group instead.
const TOUCHED_KEPT: usize = 4096;

/// Groups whose members and last listed alerts number at most this have
/// their late joiners found afresh at each read instead of kept: walking
/// them costs about what keeping them up to date does.
const JOINERS_KEPT_ABOVE: usize = 32;

impl Dispatcher {
    pub fn new(
        log: EventLog,
        routing: Routing,
        alerts: Arc<AlertStore>,
        silences: Arc<SilenceStore>,
        groups: Arc<GroupStates>,
        flaps: Arc<FlapView>,
    ) -> Self {
        Dispatcher {
            log,
            routing: parking_lot::RwLock::new(Arc::new(routing)),
            alerts,
            silences,
            groups,
            flaps,
            owed: std::sync::atomic::AtomicBool::new(false),
            routes: parking_lot::Mutex::new(RouteCache::default()),
            last_decide: parking_lot::Mutex::new(std::time::Duration::ZERO),
            memo: parking_lot::Mutex::new(None),
            decided_through: std::sync::atomic::AtomicU64::new(0),
            topology: Default::default(),
            releases: Default::default(),
        }
    }

    /// The same dispatcher joining inhibit rules' `through:` by these
    /// views (without them, such rules join nothing).
    pub fn with_topology(
        mut self,
        topology: Arc<super::topology::Topology>,
        releases: Arc<crate::act::release::Releases>,
    ) -> Self {
        self.topology = topology;
        self.releases = releases;
        self
    }

    /// What inhibit rules with `through:` are joined by, with `routing`'s
    /// `topology:` section.
    pub fn joins(&self, routing: &Routing) -> super::topology::Joins {
        super::topology::Joins {
            topology: self.topology.clone(),
            releases: self.releases.clone(),
            config: routing.topology.clone(),
        }
    }

    /// The routing sections in force.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.read().clone()
    }

    /// Puts `routing` in force from the next pass on. Call between writer
    /// batches (see [`EventLog::between_batches`]): passes run inside them.
    /// Group membership is recomputed from every alert on the next pass;
    /// groups of routes that are gone flush what they owe and close.
    pub fn set_routing(&self, routing: Routing) {
        *self.routing.write() = Arc::new(routing);
        *self.routes.lock() = RouteCache::default();
        *self.memo.lock() = None;
    }

    /// How long the last decision pass took (not counting its commit).
    pub fn last_decide(&self) -> std::time::Duration {
        *self.last_decide.lock()
    }

    pub fn groups(&self) -> &GroupStates {
        &self.groups
    }

    pub fn flaps(&self) -> &Arc<FlapView> {
        &self.flaps
    }

    /// The groups an alert belongs to (cached: they never change for a
    /// fingerprint).
    fn groups_of(
        &self,
        tree: &RouteTree,
        fp: Fingerprint,
        labels: &LabelSet,
    ) -> Arc<[Arc<GroupRef>]> {
        let mut cache = self.routes.lock();
        if let Some(groups) = cache.by_alert.get(&fp) {
            return groups.clone();
        }
        // The group of `route`, as the list of it alone.
        let mut alone = |route: &super::route::RouteNode| {
            let glabels = group_labels(route, labels);
            let id = format!("{}:{}", route.id(), label_set_string(&glabels));
            if let Some(alone) = cache.groups.get(id.as_str()) {
                return alone.clone();
            }
            let group = shared_group(&GroupRef {
                group: id,
                route: route.id().to_string(),
                receiver: route.receiver().to_string(),
                group_key: group_key(route, &glabels),
                group_labels: glabels,
            });
            let alone: Arc<[Arc<GroupRef>]> = Arc::from([group.clone()]);
            cache.groups.insert(GroupById(group), alone.clone());
            alone
        };
        let routes = tree.matching(labels);
        let groups: Arc<[Arc<GroupRef>]> = match routes.as_slice() {
            [route] => alone(route),
            routes => routes.iter().map(|route| alone(route)[0].clone()).collect(),
        };
        cache.by_alert.insert(fp, groups.clone());
        groups
    }

    /// Runs `f` over the current membership of every group that has firing
    /// alerts, with the groups' late-joiner bookkeeping. Only the alerts
    /// that changed since the last pass are looked at, and only their
    /// groups touched: the change list is the work. Membership is rebuilt
    /// from every alert only when what mutes could have changed for alerts
    /// that did not change (silences changed, or one started or ended),
    /// with inhibition (which ties alerts to each other), after a reset or
    /// a reload, and when the change list overflowed. Alerts that start or
    /// stop flapping are changes like any other (a rebuild at every pass
    /// while one flapped was most of a million-event backtest).
    /// Debug builds check every incremental pass against a rebuild.
    fn with_members<R>(
        &self,
        routing: &Routing,
        now: DateTime<Utc>,
        f: impl FnOnce(
            &BTreeMap<GroupById, Members>,
            &mut HashMap<GroupById, Box<Joiners>>,
            Option<BTreeSet<String>>,
        ) -> R,
    ) -> R {
        let changes = self.alerts.take_changes();
        let silences_version = self.silences.version();
        let flaps_version = self.flaps.version();
        let mut memo = self.memo.lock();
        let incremental = memo.as_ref().is_some_and(|m| {
            !changes.everything
                && routing.inhibit_rules.is_empty()
                && m.silences_version == silences_version
                && now >= m.at
                && !self.silences.boundary_between(m.at, now)
        });
        match (incremental, memo.as_mut(), &routing.tree) {
            (true, Some(m), Some(tree)) => {
                // Changed by events, and ended by time since the last pass.
                let since = m.at;
                let mut dirty: BTreeSet<Fingerprint> = changes.fingerprints.into_iter().collect();
                dirty.extend(
                    self.alerts
                        .ending_between(Some(since), now)
                        .into_iter()
                        .map(|(fp, _)| fp),
                );
                if m.flaps_version != flaps_version {
                    let flapping = self.flaps.flapping();
                    dirty.extend(
                        flapping
                            .symmetric_difference(&m.flapping)
                            .filter_map(|fp| Fingerprint::parse(fp)),
                    );
                    m.flapping = flapping;
                    m.flaps_version = flaps_version;
                }
                for fp in dirty {
                    let Some(alert) = self.alerts.get(fp) else {
                        continue;
                    };
                    let labels = &alert.report.labels;
                    let groups = self.groups_of(tree, fp, labels);
                    let firing = alert.firing_at(now);
                    // As `members` has it: a firing alert is muted by the
                    // silences that match it and for flapping; one between
                    // flips of its flapping stays a member, muted for that.
                    let flapping = !m.flapping.is_empty() && m.flapping.contains(&fp.to_string());
                    let mutes = match (firing, flapping) {
                        (true, _) => {
                            let mut mutes = self.silences.muting(labels, now);
                            if flapping {
                                mutes.push(FLAPPING.to_string());
                            }
                            Some(mutes)
                        }
                        (false, true) => Some(vec![FLAPPING.to_string()]),
                        (false, false) => None,
                    };
                    for group in groups.iter() {
                        if let Some(changed) = &mut m.changed
                            && !changed.contains(&group.group)
                        {
                            changed.insert(group.group.clone());
                        }
                        if let Some(members) = m.members.get_mut(group.group.as_str()) {
                            members.firing.remove(&fp);
                            members.muted.remove(&fp);
                        }
                        if let Some(joiners) = m.joiners.get_mut(group.group.as_str())
                            && joiners.against.is_some()
                        {
                            if joiners.touched.len() < TOUCHED_KEPT {
                                joiners.touched.push(fp);
                            } else {
                                // Cheaper found afresh at the next read.
                                **joiners = Joiners::default();
                            }
                        }
                        if let Some(mutes) = &mutes {
                            let members = match m.members.get_mut(group.group.as_str()) {
                                Some(members) => members,
                                None => m.members.entry(GroupById(group.clone())).or_default(),
                            };
                            if members.group.is_none() {
                                members.group = Some(group.clone());
                            }
                            if mutes.is_empty() {
                                members.firing.insert(fp);
                            } else {
                                members.muted.insert(fp, mutes.clone());
                            }
                        } else if m
                            .members
                            .get(group.group.as_str())
                            .is_some_and(|g| g.firing.is_empty() && g.muted.is_empty())
                        {
                            m.members.remove(group.group.as_str());
                            m.joiners.remove(group.group.as_str());
                        }
                    }
                    if mutes.is_none() {
                        // Its groups are found again if it fires again: the
                        // cache stays the size of what fires.
                        self.routes.lock().by_alert.remove(&fp);
                    }
                }
                m.at = now;
                // Tests run debug builds: every incremental pass is checked
                // against a rebuild.
                #[cfg(debug_assertions)]
                {
                    let rebuilt = self.members(routing, now);
                    assert_eq!(m.members, rebuilt, "incremental group membership diverged");
                }
            }
            _ => {
                *memo = Some(Memo {
                    members: self.members(routing, now),
                    joiners: HashMap::new(),
                    at: now,
                    silences_version,
                    flaps_version,
                    flapping: self.flaps.flapping(),
                    changed: None,
                });
            }
        }
        let memo = memo.as_mut().expect("set above");
        // What the pass visits: groups whose membership or state changed,
        // and those whose timer is due.
        let visit = match (memo.changed.take(), self.groups.take_touched()) {
            (Some(mut changed), Some(touched)) => {
                changed.extend(touched);
                changed.extend(self.groups.due_by(now));
                Some(changed)
            }
            _ => None,
        };
        memo.changed = Some(BTreeSet::new());
        f(&memo.members, &mut memo.joiners, visit)
    }

    /// Membership of every group that has firing alerts, from every alert.
    fn members(&self, routing: &Routing, now: DateTime<Utc>) -> BTreeMap<GroupById, Members> {
        let mut out: BTreeMap<GroupById, Members> = BTreeMap::new();
        let Some(tree) = &routing.tree else {
            return out;
        };
        // Sources that resolved within the longest grace still inhibit (see
        // `inhibit`): taken in the same walk over the alerts.
        let remembered = match routing.inhibit_rules.is_empty() {
            true => None,
            false => Some(now - super::inhibit::longest_grace(&routing.inhibit_rules)),
        };
        let (firing, resolved): (Vec<_>, Vec<_>) = self
            .alerts
            .filtered(|a| {
                a.firing_at(now)
                    || remembered
                        .is_some_and(|since| a.ends_at.is_some_and(|e| e > since && e <= now))
            })
            .into_iter()
            .map(|(fp, a)| (fp, fp.to_string(), a))
            .partition(|(_, _, a)| a.firing_at(now));
        let firing: Vec<(Fingerprint, String, StoredAlert)> = firing;
        {
            // Alerts that ended may have left entries behind (a rebuild
            // after a reset or with inhibition, a flap): keep the entries of
            // the firing, which are nearly all of it, rather than start
            // afresh and route every alert again.
            let mut cache = self.routes.lock();
            if cache.by_alert.len() > firing.len() {
                cache
                    .by_alert
                    .retain(|fp, _| firing.binary_search_by_key(fp, |(f, _, _)| *f).is_ok());
            }
        }
        let joins = self.joins(routing);
        // Symptoms by cause: attached to the causes' groups below.
        let mut symptoms: HashMap<String, Vec<crate::eventlog::Symptom>> = HashMap::new();
        for (fingerprint, fp, alert) in &firing {
            let labels = &alert.report.labels;
            let mut mutes = self.silences.muting(labels, now);
            if !routing.inhibit_rules.is_empty() {
                let sources = firing
                    .iter()
                    .map(|(_, f, a)| super::inhibit::Source {
                        fingerprint: f,
                        labels: &a.report.labels,
                        resolved_at: None,
                    })
                    .chain(resolved.iter().map(|(_, f, a)| super::inhibit::Source {
                        fingerprint: f,
                        labels: &a.report.labels,
                        resolved_at: a.ends_at,
                    }));
                let inhibitions = super::inhibit::inhibitions_at(
                    &routing.inhibit_rules,
                    (fp, labels),
                    sources,
                    now,
                    Some(&joins),
                );
                // A symptom of a firing cause (unresolved sources are the
                // firing ones), joined through the topology: the cause's
                // page summarises it.
                if let Some(i) = inhibitions
                    .iter()
                    .find(|i| i.resolved.is_none() && i.through.is_some())
                {
                    symptoms
                        .entry(i.source.clone())
                        .or_default()
                        .push(crate::eventlog::Symptom {
                            fingerprint: fp.clone(),
                            cause: i.source.clone(),
                            through: i.through.clone().unwrap_or_default(),
                            kind: joins.facts(fp, labels).kind,
                            new: false,
                        });
                }
                mutes.extend(inhibitions.iter().map(ToString::to_string));
            }
            if self.flaps.is_flapping(fp) {
                mutes.push(FLAPPING.to_string());
            }
            let groups = self.groups_of(tree, *fingerprint, labels);
            for group in groups.iter() {
                let m = match out.get_mut(group.group.as_str()) {
                    Some(m) => m,
                    None => out.entry(GroupById(group.clone())).or_default(),
                };
                if m.group.is_none() {
                    m.group = Some(group.clone());
                }
                if mutes.is_empty() {
                    m.firing.insert(*fingerprint);
                } else {
                    m.muted.insert(*fingerprint, mutes.clone());
                }
            }
        }
        for (fingerprint, fp, alert) in &firing {
            let Some(of_cause) = symptoms.get(fp) else {
                continue;
            };
            for group in self
                .groups_of(tree, *fingerprint, &alert.report.labels)
                .iter()
            {
                if let Some(m) = out.get_mut(group.group.as_str()) {
                    for s in of_cause {
                        m.symptoms.insert(s.fingerprint.clone(), s.clone());
                    }
                }
            }
        }
        // Flapping alerts between flips stay members, muted: their resolve
        // is a flip like any other, not news.
        for fp in self.flaps.flapping() {
            let Some(fingerprint) = Fingerprint::parse(&fp) else {
                continue;
            };
            let Some(alert) = self.alerts.get(fingerprint) else {
                continue;
            };
            if alert.firing_at(now) {
                continue; // done above
            }
            for group in self
                .groups_of(tree, fingerprint, &alert.report.labels)
                .iter()
            {
                let m = out.entry(GroupById(group.clone())).or_default();
                if m.group.is_none() {
                    m.group = Some(group.clone());
                }
                m.muted.insert(fingerprint, vec![FLAPPING.to_string()]);
            }
        }
        out
    }

    /// Decides what is due at the clock's now, in a batch of its own, and
    /// returns the decisions committed. Deterministic in the log and the
    /// time: running it twice at the same instant decides nothing the
    /// second time. Alerts and silences are usually decided on inside the
    /// commit that brings them (see [`Decider`]); this is for what time
    /// alone makes due, and for batches too big to decide inside a commit.
    pub async fn step(&self) -> Result<Vec<EventKind>, std::sync::Arc<LogError>> {
        Ok(self
            .log
            .decide()
            .await?
            .iter()
            .map(|e| e.kind.clone())
            .collect())
    }

    /// Whether a pass should run inside the commit of `events`: they can
    /// change a decision (alerts and silences, not the dispatcher's own
    /// decisions or delivery outcomes), and passes are quick enough.
    pub fn wants(&self, events: &[Arc<Event>]) -> bool {
        self.routing.read().tree.is_some()
            && self.last_decide() <= IN_COMMIT_BUDGET
            && events.iter().any(|e| is_input(&e.kind))
    }

    /// The last `seq` a pass has taken into account.
    pub fn decided_through(&self) -> u64 {
        self.decided_through
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn decisions(&self, now: DateTime<Utc>) -> Vec<NewEvent> {
        let started = std::time::Instant::now();
        let decisions = self.decide(now);
        *self.last_decide.lock() = started.elapsed();
        decisions
            .into_iter()
            .map(|(k, version)| {
                let key = match &k {
                    EventKind::GroupScheduled(t) => t.group.group.clone(),
                    EventKind::NotificationDue(n) => n.group.group.clone(),
                    EventKind::GroupClosed(g) => g.group.clone(),
                    EventKind::AlertResolved(r) => r.fingerprint.clone(),
                    EventKind::AlertFired { fingerprint } => fingerprint.clone(),
                    _ => String::new(),
                };
                // An expiry that lost to a newer report is simply not
                // stored; the next pass sees the newer state.
                let event = NewEvent::new(now, "fenghuo", key, k);
                match version {
                    Some(v) => event.expecting(v),
                    None => event,
                }
            })
            .collect()
    }

    /// Alerts whose `endsAt` has passed without a resolve: the decision that
    /// they resolved, recorded so history says when and why.
    fn expiries(&self, now: DateTime<Utc>) -> Vec<(EventKind, Option<u64>)> {
        self.alerts
            .ending_between(None, now)
            .into_iter()
            .filter_map(|(fp, a)| {
                let ends = a.ends_at?;
                Some((
                    EventKind::AlertResolved(crate::eventlog::AlertResolution {
                        fingerprint: fp.to_string(),
                        ends_at: ends,
                        reason: "endsAt passed".into(),
                        report: None,
                    }),
                    Some(a.version),
                ))
            })
            .collect()
    }

    /// Alerts firing that the evaluate stage has not taken up yet: the
    /// decision that they fire, once per episode. Only with a routing tree:
    /// without one nothing is evaluated, and every new alert would cost a
    /// second write for nothing.
    fn fired(&self, routing: &Routing, now: DateTime<Utc>) -> Vec<(EventKind, Option<u64>)> {
        if routing.tree.is_none() {
            return Vec::new();
        }
        self.alerts
            .unfired_firing(now)
            .into_iter()
            .map(|(fp, a)| {
                (
                    EventKind::AlertFired {
                        fingerprint: fp.to_string(),
                    },
                    Some(a.version),
                )
            })
            .collect()
    }

    fn decide(&self, now: DateTime<Utc>) -> Vec<(EventKind, Option<u64>)> {
        // One routing for the whole pass, whatever a reload does meanwhile.
        let routing = self.routing();
        let mut decided = self.fired(&routing, now);
        decided.extend(self.expiries(now));
        decided.extend(
            self.decide_groups(&routing, now)
                .into_iter()
                .map(|k| (k, None)),
        );
        decided
    }

    fn decide_groups(&self, routing: &Routing, now: DateTime<Utc>) -> Vec<EventKind> {
        if routing.tree.is_none() {
            return Vec::new();
        }
        self.with_members(routing, now, |members, joiners, visit| {
            let decided = self.decide_for(routing, now, members, joiners, visit.as_ref());
            // Tests run debug builds: a pass over the changed groups is
            // checked against the walk of every group.
            #[cfg(debug_assertions)]
            if visit.is_some() {
                let walked = self.decide_for(routing, now, members, joiners, None);
                assert_eq!(
                    decided, walked,
                    "a pass over the changed groups decided otherwise than the walk of every group"
                );
            }
            decided
        })
    }

    fn decide_for(
        &self,
        routing: &Routing,
        now: DateTime<Utc>,
        members: &BTreeMap<GroupById, Members>,
        joiners: &mut HashMap<GroupById, Box<Joiners>>,
        visit: Option<&BTreeSet<String>>,
    ) -> Vec<EventKind> {
        let Some(tree) = &routing.tree else {
            return Vec::new();
        };
        let mut decisions = Vec::new();
        // Read in place: cloning every group's state at every pass was most
        // of a pass's allocations. The writer does not fold while a pass
        // runs (see `step`), so holding the lock costs it nothing more.
        let groups = self.groups.groups.read();
        let listed = self.groups.listed.read();
        let no_state = GroupState::default();
        // The groups that can decide anything (see `with_members`), in the
        // order of the walk of every group.
        let visited: Box<dyn Iterator<Item = (&GroupById, &Members)>> = match visit {
            None => Box::new(members.iter()),
            Some(ids) => Box::new(
                ids.iter()
                    .filter_map(|id| members.get_key_value(id.as_str())),
            ),
        };
        for (key, m) in visited {
            let id: &str = &key.0.group;
            let Some(state_group) = m.group.as_ref() else {
                continue;
            };
            let Some(route) = tree.get(&state_group.route) else {
                continue;
            };
            let opts = route.opts();
            let state = groups.get(id).map_or(&no_state, |g| &**g);
            let mut late_joiner = || {
                let stamp = listed.get(id).copied().unwrap_or(0);
                if m.firing.len() + state.last_firing.len() <= JOINERS_KEPT_ABOVE {
                    // A small group is found afresh each time: kept, the
                    // joiners of 20,000 groups of 5 were 2.6 MB.
                    joiners.remove(id);
                    return self.late_joiner(opts, m, state, &mut Joiners::default(), stamp);
                }
                let joiners = match joiners.get_mut(id) {
                    Some(j) => j,
                    None => joiners.entry(key.clone()).or_default(),
                };
                self.late_joiner(opts, m, state, joiners, stamp)
            };
            if let Some(due) = state.next_due
                && due > now
            {
                // A timer is pending: nothing to decide before it, unless a
                // late joiner brings it forward to within `group_wait`.
                if let Some(reason) = late_joiner() {
                    let early = now + opts.group_wait;
                    if early <= now {
                        let group = GroupRef::clone(state_group);
                        decisions.extend(self.flush(routing, group, m, state, now, opts));
                    } else if early < due {
                        decisions.push(EventKind::GroupScheduled(GroupTimer {
                            group: GroupRef::clone(state_group),
                            due_at: early,
                            reason,
                            // Still what the last flush muted: those coming
                            // back stay news.
                            muted: state.last_muted().strings().map(Into::into).collect(),
                        }));
                    }
                }
                continue;
            }
            let group = GroupRef::clone(state_group);
            match state.next_due {
                // A group with news and no timer: start one.
                None => {
                    let news = m.firing.iter().any(|fp| !state.last_firing.contains(*fp))
                        || state
                            .last_firing
                            .entries()
                            .chain(state.flapping_noticed().entries())
                            .any(|fp| !fp.is_some_and(|fp| m.is_member(fp)))
                        || !flapping_notice(m, state).is_empty();
                    if !news {
                        continue;
                    }
                    let (mut due_at, mut reason) = match state.last_notified_at {
                        None => (now + opts.group_wait, "group_wait".to_string()),
                        Some(last) => (
                            (last + opts.group_interval).max(now),
                            "group_interval".to_string(),
                        ),
                    };
                    if let Some(late) = late_joiner()
                        && now + opts.group_wait < due_at
                    {
                        (due_at, reason) = (now + opts.group_wait, late);
                    }
                    if due_at <= now {
                        // `group_wait: 0s`, or the interval passed long ago:
                        // flush in this pass. A timer due now would cost a
                        // second commit and a second step before the page.
                        decisions.extend(self.flush(routing, group, m, state, now, opts));
                        continue;
                    }
                    decisions.push(EventKind::GroupScheduled(GroupTimer {
                        group,
                        due_at,
                        reason,
                        muted: m.muted.keys().map(ToString::to_string).collect(),
                    }));
                }
                Some(due) if due <= now => {
                    decisions.extend(self.flush(routing, group, m, state, now, opts));
                }
                Some(_) => {}
            }
        }
        // Groups whose alerts all ended: at their flush, the resolved are
        // sent (if any were notified as firing) and the group closes.
        let mut unseen: Vec<(&str, &GroupState)> = match visit {
            None => groups
                .iter()
                .filter(|(id, _)| !members.contains_key(&***id))
                .map(|(id, g)| (&**id, &**g))
                .collect(),
            Some(ids) => ids
                .iter()
                .filter(|id| !members.contains_key(id.as_str()))
                .filter_map(|id| groups.get_key_value(id.as_str()))
                .map(|(id, g)| (&**id, &**g))
                .collect(),
        };
        unseen.sort_by(|a, b| a.0.cmp(b.0));
        for &(_, state) in &unseen {
            if state.next_due.is_none_or(|due| due > now) {
                continue;
            }
            let Some(group) = state.group.as_deref().cloned() else {
                continue;
            };
            if let Some(route) = tree.get(&group.route)
                && !(state.last_firing.is_empty() && state.flapping_noticed().is_empty())
            {
                decisions.extend(self.flush(
                    routing,
                    group.clone(),
                    &Members::default(),
                    state,
                    now,
                    route.opts(),
                ));
            }
            decisions.push(EventKind::GroupClosed(group));
        }
        // A group that was notified as firing and lost all its alerts with no
        // timer pending gets one, so the resolve is sent.
        for &(_, state) in &unseen {
            if (state.last_firing.is_empty() && state.flapping_noticed().is_empty())
                || state.next_due.is_some()
            {
                continue;
            }
            let Some(group) = state.group.as_deref().cloned() else {
                continue;
            };
            let Some(route) = tree.get(&group.route) else {
                continue;
            };
            let last = state.last_notified_at.unwrap_or(now);
            decisions.push(EventKind::GroupScheduled(GroupTimer {
                group,
                due_at: (last + route.opts().group_interval).max(now),
                reason: "group_interval".into(),
                muted: Vec::new(),
            }));
        }
        decisions
    }

    /// Why a group that has notified should flush within `group_wait`
    /// rather than at its next `group_interval` flush: an alert firing that
    /// its last notification did not list qualifies under the route's
    /// `late_joiners` (see [`LateJoiners`]). `None` for a group that has
    /// not notified yet: it is in `group_wait` already. Reads the group's
    /// `joiners`, brought up to date first (`stamp`: the group's
    /// `GroupStates::listed`).
    fn late_joiner(
        &self,
        opts: &super::route::RouteOpts,
        m: &Members,
        state: &GroupState,
        joiners: &mut Joiners,
        stamp: u64,
    ) -> Option<String> {
        state.last_notified_at?;
        if opts.late_joiners == LateJoiners::Wait {
            return None;
        }
        self.bring_up_to_date(joiners, opts, m, state, stamp);
        // Tests run debug builds: the kept joiners are checked against the
        // group's, found afresh.
        #[cfg(debug_assertions)]
        {
            let mut afresh = Joiners::default();
            self.bring_up_to_date(&mut afresh, opts, m, state, stamp);
            assert_eq!(*joiners, afresh, "late joiners kept diverged");
        }
        let found = match opts.late_joiners {
            LateJoiners::Wait => None,
            LateJoiners::Always => joiners
                .unlisted
                .first()
                .map(|fp| format!("late joiner {fp} (late_joiners: always)")),
            LateJoiners::Severity => {
                // Nothing joins above the most severe the group has paged
                // (`paged`; any rank does when nothing it paged is ranked).
                let (joined, fp) = joiners
                    .ranked
                    .first()
                    .filter(|(r, _)| joiners.paged.is_none_or(|p| *r < p))?;
                let order = &opts.severity.order;
                Some(format!(
                    "late joiner {fp}: {} {} above {}",
                    opts.severity.label,
                    order[*joined],
                    joiners.paged.map_or("none listed", |p| order[p].as_str())
                ))
            }
        };
        #[cfg(debug_assertions)]
        assert_eq!(found, self.late_joiner_by_scan(opts, m, state));
        found
    }

    /// [`Self::late_joiner`] by walking the group, as it was found before
    /// joiners were kept: what debug builds check the kept ones against.
    #[cfg(debug_assertions)]
    fn late_joiner_by_scan(
        &self,
        opts: &super::route::RouteOpts,
        m: &Members,
        state: &GroupState,
    ) -> Option<String> {
        state.last_notified_at?;
        let mut joiners = m
            .firing
            .iter()
            .filter(|fp| !state.last_firing.contains(**fp))
            .peekable();
        joiners.peek()?;
        match opts.late_joiners {
            LateJoiners::Wait => None,
            LateJoiners::Always => joiners
                .next()
                .map(|fp| format!("late joiner {fp} (late_joiners: always)")),
            LateJoiners::Severity => {
                let rank = |fp: Fingerprint| {
                    self.alerts
                        .get(fp)
                        .and_then(|a| opts.severity.rank(&a.report.labels))
                };
                let paged = state.last_firing.entries().flatten().filter_map(rank).min();
                let (joined, fp) = joiners
                    .filter_map(|fp| rank(*fp).map(|r| (r, fp)))
                    .filter(|(r, _)| paged.is_none_or(|p| *r < p))
                    .min()?;
                let order = &opts.severity.order;
                Some(format!(
                    "late joiner {fp}: {} {} above {}",
                    opts.severity.label,
                    order[joined],
                    paged.map_or("none listed", |p| order[p].as_str())
                ))
            }
        }
    }

    /// Takes into `joiners` the alerts touched since it was last read, or
    /// computes it afresh from the group when its last notification changed
    /// (`stamp` moved) or too many were touched.
    fn bring_up_to_date(
        &self,
        joiners: &mut Joiners,
        opts: &super::route::RouteOpts,
        m: &Members,
        state: &GroupState,
        stamp: u64,
    ) {
        let severity = opts.late_joiners == LateJoiners::Severity;
        // A fingerprint fixes the labels, so an alert's rank never changes.
        let rank_of = |fp: Fingerprint| {
            self.alerts
                .get(fp)
                .and_then(|a| opts.severity.rank(&a.report.labels))
        };
        let joins = |fp: Fingerprint| m.firing.contains(&fp) && !state.last_firing.contains(fp);
        if joiners.against == Some(stamp) {
            for fp in std::mem::take(&mut joiners.touched) {
                let rank = if severity { rank_of(fp) } else { None };
                joiners.unlisted.remove(&fp);
                if let Some(r) = rank {
                    joiners.ranked.remove(&(r, fp));
                }
                if joins(fp) {
                    if let Some(r) = rank {
                        joiners.ranked.insert((r, fp));
                    }
                    joiners.unlisted.insert(fp);
                }
            }
            return;
        }
        *joiners = Joiners {
            against: Some(stamp),
            ..Joiners::default()
        };
        joiners.unlisted = m.firing.iter().copied().filter(|fp| joins(*fp)).collect();
        if severity {
            joiners.ranked = joiners
                .unlisted
                .iter()
                .filter_map(|fp| rank_of(*fp).map(|r| (r, *fp)))
                .collect();
            // Stops at the most severe rank, which nothing is above.
            for r in state.last_firing.entries().flatten().filter_map(rank_of) {
                joiners.paged = Some(joiners.paged.map_or(r, |p| p.min(r)));
                if r == 0 {
                    break;
                }
            }
        }
    }

    /// A due flush: notify if something changed or the repeat is due, then
    /// schedule the next flush while the group has alerts.
    #[allow(clippy::too_many_arguments)]
    fn flush(
        &self,
        routing: &Routing,
        group: GroupRef,
        m: &Members,
        state: &GroupState,
        now: DateTime<Utc>,
        opts: &super::route::RouteOpts,
    ) -> Vec<EventKind> {
        let mut out = Vec::new();
        let muted_by_time = !opts.mute_time_intervals.is_empty()
            && !routing
                .intervals
                .containing(opts.mute_time_intervals.iter().map(String::as_str), now)
                .unwrap_or_default()
                .is_empty();
        let outside_active = !opts.active_time_intervals.is_empty()
            && routing
                .intervals
                .containing(opts.active_time_intervals.iter().map(String::as_str), now)
                .unwrap_or_default()
                .is_empty();
        // The one notice of alerts that started flapping: listed as firing
        // (a flapping alert is a problem, whichever state it is in now)
        // this once, muted from then on.
        let notice = flapping_notice(m, state);
        let mut muted = m.muted.clone();
        let mut listed = m.firing.clone();
        for fp in &notice {
            muted.remove(fp);
            listed.insert(*fp);
        }
        // Fingerprints sort as their `%016x` strings do: the lists come out
        // in the order the string sets gave.
        let firing: Vec<String> = listed.iter().map(ToString::to_string).collect();
        // Noticed as flapping and now firing, no longer muted: they settled
        // in the state the notice already said they were in (firing). Not
        // news worth a page; with updates in place, the message says so.
        let settled = listed
            .iter()
            .any(|fp| state.flapping_noticed().contains(*fp));
        // New: not in the last notification, or back from being muted (a
        // silence that hid it ended, its inhibitor resolved).
        let new: Vec<String> = listed
            .iter()
            .filter(|fp| !state.last_firing.contains(**fp) || state.last_muted().contains(**fp))
            .filter(|fp| !state.flapping_noticed().contains(**fp))
            .map(ToString::to_string)
            .collect();
        // A flapping alert the group had its notice about and that settled
        // resolved is resolved like any other.
        let resolved: Vec<String> = state
            .last_firing
            .strings()
            .chain(state.flapping_noticed().strings())
            .filter(|fp| {
                !canonical(fp).is_some_and(|fp| listed.contains(&fp) || muted.contains_key(&fp))
            })
            .map(|fp| fp.into_owned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let repeat_due = state
            .last_notified_at
            .is_none_or(|last| now >= last + opts.repeat_interval);
        let changed = !new.is_empty() || !resolved.is_empty() || !notice.is_empty();
        // Symptoms that joined since the group's last message (a late
        // symptom, muted as it came): the cause's message says the count
        // grew, in place; never a page of its own.
        let symptoms: Vec<crate::eventlog::Symptom> = m
            .symptoms
            .values()
            .map(|s| crate::eventlog::Symptom {
                new: state.last_notified_at.is_some()
                    && !state.last_symptoms().contains_str(&s.fingerprint),
                ..s.clone()
            })
            .collect();
        let grew = symptoms.iter().any(|s| s.new);
        let reminder = !firing.is_empty() && repeat_due;
        // News only about alerts the group has paged (what resolved, the
        // flapping notice of one it listed firing, one settling, symptoms
        // joining its cause) edits the
        // group's last message instead of paging; a new alert, or a
        // `repeat_interval` reminder, is a page.
        let pages = opts.pages;
        let update = pages.update_in_place
            && state.last_notified_at.is_some()
            && new.is_empty()
            && notice.iter().all(|fp| state.last_firing.contains(*fp))
            && (changed || settled || grew)
            && !reminder;
        // Only resolves while the group still fires: under `resolved:
        // fold` they wait for the group's next page (they stay owed: the
        // group's state changes only with a notification).
        let folded = pages.resolved == super::route::ResolvedPages::Fold
            && new.is_empty()
            && notice.is_empty()
            && !firing.is_empty();
        // Only resolves under `resolved: digest`: decided now (the group
        // moves on), sent in the receiver's next digest of resolved alerts;
        // where a channel edits in place, the edit still goes at once.
        let digest_at = (pages.resolved == super::route::ResolvedPages::Digest
            && new.is_empty()
            && notice.is_empty()
            && !grew
            && !resolved.is_empty()
            && !reminder)
            .then(|| pages.digest_at(now));
        if !muted_by_time && !outside_active && (update || (changed && !folded) || reminder) {
            let follow_up = state.last_notified_at.is_some() && !update && changed;
            out.push(EventKind::NotificationDue(NotificationDue {
                escalation: None,
                to: Vec::new(),
                group: group.clone(),
                firing: firing.clone(),
                resolved,
                repeat: !changed && !update,
                new,
                muted: muted
                    .into_iter()
                    .map(|(fp, why)| (fp.to_string(), why))
                    .collect(),
                flapping: notice.iter().map(ToString::to_string).collect(),
                changes_only: follow_up && pages.follow_ups == super::route::FollowUps::Changes,
                update_in_place: update,
                symptoms,
                digest_at,
            }));
        }
        if !m.firing.is_empty() || !m.muted.is_empty() {
            out.push(EventKind::GroupScheduled(GroupTimer {
                group,
                due_at: now + opts.group_interval,
                reason: "group_interval".into(),
                muted: m.muted.keys().map(ToString::to_string).collect(),
            }));
        }
        out
    }
}

/// Alerts of the group muted only for flapping that it has not had its one
/// notice about.
fn flapping_notice(m: &Members, state: &GroupState) -> Vec<Fingerprint> {
    m.muted
        .iter()
        .filter(|(fp, why)| {
            why.len() == 1 && why[0] == FLAPPING && !state.flapping_noticed().contains(**fp)
        })
        .map(|(fp, _)| *fp)
        .collect()
}

impl Dispatcher {
    /// Whether a pass at `now` would decide nothing because nothing it
    /// reads changed since the last pass: no alert, silence or flap
    /// changed, and no time boundary passed (a group's timer, an `endsAt`,
    /// the end of an inhibition grace, a silence starting or ending, a
    /// flap's stable period). Conservative: routes with time intervals,
    /// and inhibit rules joining through the topology (placement and bake
    /// windows move with events this store does not track), always pass.
    /// Timer passes woken by other stages (a rule's window, an escalation
    /// step) were most of a backtest: each walked every group.
    fn idle_at(&self, routing: &Routing, now: DateTime<Utc>) -> bool {
        let memo = self.memo.lock();
        let Some(m) = memo.as_ref() else {
            return false;
        };
        let due = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at <= now);
        routing.tree.is_some()
            && now >= m.at
            && routing.intervals.is_empty()
            && routing.inhibit_rules.iter().all(|r| r.through().is_none())
            && !self.alerts.has_changes()
            && m.silences_version == self.silences.version()
            && !self.silences.boundary_between(m.at, now)
            // An alert flapping is muted the same way until its flap
            // stops (a new version) or its stable period ends (`next_due`):
            // while ~150,000 fire, one nearly always flaps, and every pass
            // ran.
            && m.flaps_version == self.flaps.version()
            && !due(self.flaps.next_due())
            && !due(self.groups().next_due())
            && !self.alerts.any_ending_between(None, now)
            && (routing.inhibit_rules.is_empty() || {
                let grace = super::inhibit::longest_grace(&routing.inhibit_rules);
                !self
                    .alerts
                    .any_ending_between(Some(m.at - grace), now - grace)
            })
            && !self.alerts.any_unfired_firing(now)
    }
}

impl Decider for Dispatcher {
    fn decide(
        &self,
        now: DateTime<Utc>,
        seq: u64,
        folded: &[Arc<Event>],
        asked: bool,
    ) -> Vec<NewEvent> {
        use std::sync::atomic::Ordering;
        // Flapping first, and alone: the flip that makes an alert flapping
        // must not page in the pass that sees it. The group decisions follow
        // in the next round, with these folded.
        if let Some(tree) = &self.routing().tree {
            let flaps = super::flap::decide(&self.flaps, &self.alerts, tree, now, folded);
            if !flaps.is_empty() {
                self.owed
                    .fetch_or(asked || self.wants(folded), Ordering::AcqRel);
                return flaps;
            }
        }
        let owed = self.owed.swap(false, Ordering::AcqRel);
        if !(asked || owed || self.wants(folded)) {
            return Vec::new();
        }
        if !owed && !folded.iter().any(|e| is_input(&e.kind)) && self.idle_at(&self.routing(), now)
        {
            // Tests run debug builds: every pass skipped is checked to
            // decide nothing.
            #[cfg(debug_assertions)]
            {
                let skipped = self.decide(now);
                assert!(
                    skipped.is_empty(),
                    "a pass skipped as idle would have decided {skipped:?}"
                );
            }
            self.decided_through.store(seq, Ordering::Release);
            return Vec::new();
        }
        let decisions = self.decisions(now);
        self.decided_through
            .store(seq, std::sync::atomic::Ordering::Release);
        decisions
    }
}

/// Whether an event can change what the dispatcher decides.
pub fn is_input(kind: &EventKind) -> bool {
    use EventKind as K;
    match kind {
        K::AlertReceived(_)
        | K::AlertRefreshed { .. }
        | K::AlertResolved(_)
        | K::AlertAcked { .. }
        | K::SilenceCreated(_)
        | K::SilenceUpdated(_)
        | K::SilenceExpired { .. } => true,
        // Flapping changes who is muted: inputs to the group decisions.
        K::AlertFlappingStarted(_) | K::AlertFlappingStopped(_) => true,
        K::AlertFired { .. }
        | K::GroupScheduled(_)
        | K::GroupClosed(_)
        | K::NotificationDue(_)
        | K::NotificationSent(_)
        | K::NotificationFailed(_)
        | K::NotificationSkipped(_)
        | K::EscalationStepped(_)
        | K::IncidentAcknowledged(_)
        | K::IncidentUnacknowledged(_)
        | K::IncidentResolved(_)
        | K::IncidentSnoozed(_)
        // Rule inputs: the rule engine turns them into `alert.*`.
        | K::K8sEvent(_)
        | K::ProbeResult(_)
        | K::HeartbeatReceived(_)
        | K::RulesLoaded(_)
        | K::K8sWatchProgressed(_)
        // Releases and remediation: the act stage's.
        | K::ReleaseRecorded(_)
        | K::ReleaseStatusChanged(_)
        | K::ReleaseGateDecided(_)
        | K::ReleaseSuspected(_)
        | K::RemediationDue(_)
        | K::RemediationApproved(_)
        | K::RemediationDryRun(_)
        | K::RemediationRefused(_)
        | K::RemediationSucceeded(_)
        | K::RemediationFailed(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str) -> GroupRef {
        GroupRef {
            group: id.into(),
            route: "r".into(),
            receiver: "sink".into(),
            group_key: "{}:{}".into(),
            group_labels: LabelSet::default(),
        }
    }

    /// The snapshot of the group states kept its shape (`views-4`) when
    /// the sets became numbers, the `GroupRef` a shared one and the rarely
    /// set sets one box.
    #[test]
    fn group_state_json_is_that_of_string_sets_and_a_plain_group() {
        let state = GroupState::from(PlainGroupState {
            group: Some(shared_group(&group("r:{g=\"1\"}"))),
            next_due: None,
            last_notified_at: None,
            last_firing: SortedFingerprints::of(["00000000000000b2", "00000000000000a1"]),
            last_muted: SortedFingerprints::of(["not-a-fingerprint"]),
            flapping_noticed: SortedFingerprints::default(),
            last_symptoms: SortedFingerprints::default(),
        });
        let muted: Vec<String> = state
            .last_muted()
            .strings()
            .map(|s| s.into_owned())
            .collect();
        assert_eq!(muted, ["not-a-fingerprint"]);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            json,
            r#"{"group":{"group":"r:{g=\"1\"}","route":"r","receiver":"sink","group_key":"{}:{}","group_labels":{}},"next_due":null,"last_notified_at":null,"last_firing":["00000000000000a1","00000000000000b2"],"last_muted":["not-a-fingerprint"],"flapping_noticed":[],"last_symptoms":[]}"#
        );
        assert_eq!(serde_json::from_str::<GroupState>(&json).unwrap(), state);
    }

    /// A group with nothing muted, flapping or joined as a symptom (nearly
    /// all) keeps no box for those sets; setting them and clearing them
    /// again ends in the same state as never having set them.
    #[test]
    fn a_group_without_muted_alerts_keeps_no_box_for_them() {
        let mut state = GroupState {
            last_firing: SortedFingerprints::of(["00000000000000a1"]),
            ..GroupState::default()
        };
        let plain = state.clone();
        assert!(state.muting.is_none());
        assert!(state.last_muted().is_empty() && state.flapping_noticed().is_empty());
        state.set_last_muted(SortedFingerprints::of(["00000000000000b2"]));
        assert!(state.muting.is_some());
        assert!(state.last_muted().contains_str("00000000000000b2"));
        state.set_muting(
            SortedFingerprints::default(),
            SortedFingerprints::default(),
            SortedFingerprints::default(),
        );
        assert!(state.muting.is_none());
        assert_eq!(state, plain);
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.ends_with(r#""last_muted":[],"flapping_noticed":[],"last_symptoms":[]}"#));
        assert_eq!(serde_json::from_str::<GroupState>(&json).unwrap(), plain);
    }

    #[test]
    fn groups_of_equal_content_share_one_copy_and_a_changed_one_is_its_own() {
        let a = shared_group(&group("r:{g=\"shared\"}"));
        let b = shared_group(&group("r:{g=\"shared\"}"));
        assert!(Arc::ptr_eq(&a, &b));
        let mut moved = group("r:{g=\"shared\"}");
        moved.receiver = "other".into();
        let c = shared_group(&moved);
        assert_eq!(*c, moved);
        assert_eq!(
            *a,
            group("r:{g=\"shared\"}"),
            "a holder's copy never changes"
        );
    }
}
