//! [`RuleEngine`]: rule evaluation as a fold over the log.
//!
//! Per rule and group (the values of its `group_by`) the engine keeps only
//! the evidence the rule's condition needs, all of it taken from events'
//! `occurred_at`:
//!
//! | mode | evidence | holds at `now` when |
//! | --- | --- | --- |
//! | match | the latest selected event met the condition | it did (and, with `resolve.after`, less than that long ago) |
//! | count / rate | times of events that met it, within the window | at least N of them in `(now - window, now]` |
//! | distinct | the last time each distinct value was seen | at least N values seen in the window |
//! | absent | when the group was last seen | nothing for `absent` since |
//! | threshold | above (or below) the fire level, until past the clear level | the value crossed `fire` and has not crossed `clear` back |
//!
//! An episode of holding starts at an event and ends at an event or when
//! evidence ages out of a window, so its start and end are instants of the
//! inputs — which is what makes replay give the same decisions as live.
//!
//! An evaluation looks only at the groups that changed since the last one
//! and those whose wake (the next instant their status can change without
//! an event) has come; the first evaluation of a state built by replay or
//! from a snapshot looks at all of them. With thousands of groups, looking
//! at every one on every batch was what limited throughput.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::RuleSet;
use super::expr::Input;
use super::language::{GroupBy, Mode, Rule, Selector, Text};
use crate::evaluate::Fingerprint;
use crate::evaluate::matcher::{MatchOp, Matcher};
use crate::eventlog::{AlertReport, AlertResolution, Event, EventKind, LabelSet, NewEvent};
use crate::ingest::IncomingAlert;

/// A group's key as the engine's tables hold it: the values of its rule's
/// `group_by`, each as its length (4 bytes, little-endian) then its bytes,
/// in one allocation. An event's key is written into a reused buffer from
/// the event's borrowed fields, hashed and compared as one byte string, and
/// allocated only for a group not seen before: a key of `Arc<[String]>`
/// was three allocations per new group (and a count's groups come and go
/// with nearly every event), hashed string by string — a fifth of folding.
type GroupKey = Arc<[u8]>;

/// A group key as its values: what snapshots hold and alerts show.
type KeyValues = Arc<[String]>;

/// Appends `value` to a key being written (see [`GroupKey`]).
fn push_key_part(key: &mut Vec<u8>, value: &str) {
    let len = u32::try_from(value.len()).expect("a group value under 4 GiB");
    key.extend_from_slice(&len.to_le_bytes());
    key.extend_from_slice(value.as_bytes());
}

/// The values of an encoded key, in order.
#[derive(Clone)]
struct KeyParts<'a>(&'a [u8]);

impl<'a> Iterator for KeyParts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let (value, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        self.0 = rest;
        Some(std::str::from_utf8(value).expect("a key is written from strs"))
    }
}

fn encode_key<S: AsRef<str>>(values: &[S]) -> Vec<u8> {
    let mut key = Vec::new();
    for v in values {
        push_key_part(&mut key, v.as_ref());
    }
    key
}

fn key_values(key: &[u8]) -> KeyValues {
    KeyParts(key).map(str::to_string).collect()
}

/// The key of a released slot (no allocation per release).
static NO_KEY: std::sync::LazyLock<GroupKey> = std::sync::LazyLock::new(|| GroupKey::from(&[][..]));

/// What the engine decided: an alert of a rule fires or resolves.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `rule/{group}/{alert}`: the source the alert is recorded under.
    pub source: String,
    pub fingerprint: String,
    /// When it became due (a `for` elapsed, a window expired, an event
    /// arrived), which can be before the evaluation that noticed it.
    pub at: DateTime<Utc>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `report.extra.rule` says which rule, which group and why.
    Fire(AlertReport),
    Resolve {
        reason: String,
        /// The report it fired with.
        report: AlertReport,
    },
}

impl Decision {
    /// The event that records the decision: `alert.received` or
    /// `alert.resolved`, as ingest records a Prometheus alert.
    pub fn to_event(&self) -> NewEvent {
        let kind = match &self.change {
            Change::Fire(report) => EventKind::AlertReceived(Arc::new(report.clone())),
            Change::Resolve { reason, report } => EventKind::AlertResolved(AlertResolution {
                fingerprint: self.fingerprint.clone(),
                ends_at: self.at,
                reason: reason.clone(),
                report: Some(report.clone()),
            }),
        };
        NewEvent::new(self.at, &self.source, &self.fingerprint, kind)
    }

    /// [`Self::to_event`], taking the decision: its report moves into the
    /// event rather than being copied.
    pub fn into_event(self) -> NewEvent {
        let kind = match self.change {
            Change::Fire(report) => EventKind::AlertReceived(Arc::new(report)),
            Change::Resolve { reason, report } => EventKind::AlertResolved(AlertResolution {
                fingerprint: self.fingerprint.clone(),
                ends_at: self.at,
                reason,
                report: Some(report),
            }),
        };
        NewEvent::new(self.at, &self.source, &self.fingerprint, kind)
    }

    /// The decision as an alert from a sender, for [`crate::ingest::Ingest::alerts`]
    /// with `self.source` (which also versions it against concurrent reports).
    pub fn to_incoming(&self) -> IncomingAlert {
        match &self.change {
            Change::Fire(report) => IncomingAlert {
                fingerprint: Fingerprint::of(&report.labels),
                report: report.clone(),
                resolved: false,
            },
            Change::Resolve { report, .. } => {
                let mut report = report.clone();
                report.ends_at = Some(self.at);
                IncomingAlert {
                    fingerprint: Fingerprint::of(&report.labels),
                    report,
                    resolved: true,
                }
            }
        }
    }

    pub fn is_fire(&self) -> bool {
        matches!(self.change, Change::Fire(_))
    }

    pub fn labels(&self) -> &LabelSet {
        match &self.change {
            Change::Fire(r) | Change::Resolve { report: r, .. } => &r.labels,
        }
    }
}

/// The evidence for one rule and group.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct GroupState {
    /// Match: the latest selected event met the condition.
    met: bool,
    last_met: Option<DateTime<Utc>>,
    /// Count: times of events that met the condition, oldest first.
    times: VecDeque<DateTime<Utc>>,
    /// Distinct: value → when last seen.
    values: HashMap<String, DateTime<Utc>>,
    /// Absent: when last seen (or, for a rule without `group_by`, when
    /// the engine started).
    last_seen: Option<DateTime<Utc>>,
    /// Threshold: past the fire level.
    crossed: bool,
    last_value: Option<f64>,
    /// Start of the current episode of holding.
    since: Option<DateTime<Utc>>,
    /// End of the last episode.
    ended: Option<DateTime<Utc>>,
    /// A recovery event arrived after the last evidence.
    recovered: Option<DateTime<Utc>>,
    /// The payload of the last event that met the condition, for templates
    /// (kept only for rules whose templates can read it: see
    /// `RuleSet::keeps_payload`).
    last_payload: Option<Arc<serde_json::Value>>,
}

/// Where a group stands at an instant.
struct Status {
    holding: bool,
    since: Option<DateTime<Utc>>,
    ended: Option<DateTime<Utc>>,
    /// How much evidence: events in the window, distinct values, the value.
    amount: f64,
}

/// An alert the log says a rule fired and has not resolved.
#[derive(Debug, Clone)]
struct Firing {
    fingerprint: String,
    /// Shared with the event that recorded it: folding a decision back
    /// copied the whole report (its `extra` a JSON tree).
    report: Arc<AlertReport>,
}

/// The hasher of the engine's tables: rapidhash (a dependency already)
/// instead of SipHash, which was 5% of folding and evaluating. Its keys
/// are integers, fingerprints and group keys; one process-wide random
/// seed is enough for those.
type Fast = rapidhash::fast::GlobalState;
type FastMap<K, V> = HashMap<K, V, Fast>;

/// A group, as the engine's tables key it: (source, group id). Sources
/// below the set's length are its rules (by index); the others are
/// sources of rule alerts in the log whose rule is not loaded. A group id
/// is given to a group key at first sight (see [`Groups`]).
type At = (u32, u32);

/// The groups of one source. Each group key gets an id when first seen,
/// so that the wake, dirty, firing and in-flight tables key by integers:
/// hashing and comparing the keys' strings at every evaluation (B-tree
/// and hash lookups, `(source, key)` pairs allocated per due group) was a
/// third of the engine's time. An id is given back when its group holds
/// nothing, fires nothing and has nothing in flight, so a churn of pods
/// does not grow the table.
#[derive(Default)]
struct Groups {
    ids: FastMap<GroupKey, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Ids whose group was left without evidence: given back in sweeps
    /// (see `RuleEngine::release_if_unused`), not one by one, because a
    /// count's group usually comes back with the next events of its pod
    /// and forgetting and re-learning its key cost more than keeping it.
    stale: Vec<u32>,
}

struct Slot {
    key: GroupKey,
    /// None: no evidence (the key is known for an alert the log says
    /// fires, or for a decision in flight).
    state: Option<GroupState>,
    /// Its entry in `RuleEngine::wakes`.
    wake: Option<DateTime<Utc>>,
    /// In `RuleEngine::dirty`.
    dirty: bool,
}

impl Groups {
    fn id(&self, key: &[u8]) -> Option<u32> {
        self.ids.get(key).copied()
    }

    fn intern(&mut self, key: &[u8]) -> u32 {
        if let Some(id) = self.id(key) {
            return id;
        }
        let key = GroupKey::from(key);
        let slot = Slot {
            key: key.clone(),
            state: None,
            wake: None,
            dirty: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(key, id);
        id
    }

    fn slot(&self, id: u32) -> &Slot {
        &self.slots[id as usize]
    }

    fn slot_mut(&mut self, id: u32) -> &mut Slot {
        &mut self.slots[id as usize]
    }

    fn state(&self, id: u32) -> Option<&GroupState> {
        self.slots[id as usize].state.as_ref()
    }

    /// Gives `id` back: the caller checked that nothing refers to it.
    fn release(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.state.is_none() && slot.wake.is_none() && !slot.dirty);
        // One lookup of the key, not two (a count's groups come and go
        // with nearly every event).
        match self.ids.remove_entry(&slot.key) {
            Some((_, owner)) if owner == id => {
                slot.key = NO_KEY.clone();
                self.free.push(id);
            }
            // Given back already (an id can be listed stale twice), and its
            // key now another group's.
            Some((key, owner)) => {
                self.ids.insert(key, owner);
            }
            None => {}
        }
    }

    /// Groups with evidence.
    fn live(&self) -> impl Iterator<Item = (u32, &Slot, &GroupState)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((id as u32, s, s.state.as_ref()?)))
    }
}

/// Rule evaluation as a fold; see the module docs of [`super`].
pub struct RuleEngine {
    set: Arc<RuleSet>,
    started: DateTime<Utc>,
    /// Per source (rules by index, then sources no longer loaded), per
    /// group.
    groups: Vec<Groups>,
    /// The sources past the rules, in order.
    strays: Vec<String>,
    /// Source index by source (`rule/{group}/{alert}`).
    by_source: FastMap<String, u32>,
    /// What the log says fires.
    firing: FastMap<At, Firing>,
    by_fingerprint: FastMap<String, At>,
    /// Decisions handed out and not yet folded back: not decided again
    /// (for a minute, in case they were never recorded).
    in_flight: FastMap<At, DateTime<Utc>>,
    /// No decision in flight was handed out before this: the table is
    /// walked for ones to give up on only when one can be due.
    in_flight_oldest: Option<DateTime<Utc>>,
    last_evaluated: Option<DateTime<Utc>>,
    /// Groups whose evidence or alert changed since the last evaluation:
    /// what `evaluate` looks at, with the groups whose wake is due, instead
    /// of every group of every rule (each flagged `dirty` in its slot).
    dirty: Vec<At>,
    /// Per group, the next instant its status can change without an event
    /// (as of its last evaluation), ordered by time; each slot holds its own.
    wakes: std::collections::BTreeSet<(DateTime<Utc>, u32, u32)>,
    /// Every group has been evaluated once since the state was built (a
    /// new engine, a snapshot): until then, look at all of them.
    scanned: bool,
    /// Firing alerts to check for a rule or group that is gone.
    orphans: std::collections::HashSet<At, Fast>,
    /// Buffers reused from event to event: the candidate rules, a group
    /// key, a value of it computed by an expression.
    candidates: Vec<usize>,
    key: Vec<u8>,
    label: String,
    regex_memos: RegexMemos,
    /// CEL errors and template failures seen (a rule that errors on every
    /// event never fires; this says so).
    pub errors: u64,
}

impl RuleEngine {
    /// An engine for `set` that starts counting `absent` (of rules without
    /// `group_by`) at `started`: pass when the rule set took effect.
    pub fn new(set: Arc<RuleSet>, started: DateTime<Utc>) -> RuleEngine {
        let mut engine = RuleEngine::unstarted(set, started);
        engine.start(started);
        engine
    }

    /// An engine whose `absent` rules without `group_by` do not count yet:
    /// the log says when the set took effect (see [`Self::start`]), and
    /// until it has been folded there is nothing to be absent since.
    /// `started` only bounds [`Self::next_wake`] until then.
    pub fn unstarted(set: Arc<RuleSet>, started: DateTime<Utc>) -> RuleEngine {
        let groups = (0..set.rules.len()).map(|_| Groups::default()).collect();
        RuleEngine {
            started,
            groups,
            strays: Vec::new(),
            firing: FastMap::default(),
            by_fingerprint: FastMap::default(),
            in_flight: FastMap::default(),
            in_flight_oldest: None,
            last_evaluated: None,
            dirty: Vec::new(),
            wakes: Default::default(),
            scanned: false,
            orphans: Default::default(),
            by_source: set
                .rules
                .iter()
                .map(|r| (r.source.clone(), r.index as u32))
                .collect(),
            candidates: Vec::new(),
            key: Vec::new(),
            label: String::new(),
            regex_memos: RegexMemos::new(&set),
            set,
            errors: 0,
        }
    }

    /// The set took effect at `at`: `absent` rules without `group_by` count
    /// from then (or from the last event they saw, if later).
    pub fn start(&mut self, at: DateTime<Utc>) {
        self.started = at;
        let set = self.set.clone();
        for rule in &set.rules {
            if matches!(rule.mode, Mode::Absent { .. }) && rule.group_by.is_empty() {
                let id = self.groups[rule.index].intern(&[]);
                self.mark_dirty((rule.index as u32, id));
                let state = self.groups[rule.index]
                    .slot_mut(id)
                    .state
                    .get_or_insert_default();
                if state.recovered.is_none() {
                    state.last_seen = Some(state.last_seen.map_or(at, |s| s.max(at)));
                }
            }
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.set
    }

    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// Folds one event from the log.
    pub fn observe(&mut self, event: &Event) {
        if event.source.starts_with("rule/") {
            self.observe_own(event);
            return;
        }
        if let EventKind::AlertResolved(r) = &event.kind {
            // Someone else (the API, an operator) ended a rule's alert.
            if let Some(at) = self.by_fingerprint.remove(&r.fingerprint) {
                self.firing.remove(&at);
                self.in_flight.remove(&at);
                self.touch(at);
            }
        }
        if self.set.by_kind.is_empty() || !self.set.by_kind.contains_key(event.kind.name()) {
            return;
        }
        let set = self.set.clone();
        let input = set.input(event);
        let mut candidates = std::mem::take(&mut self.candidates);
        set.candidates_into(event, &input, &mut candidates);
        for &index in &candidates {
            let rule = &set.rules[index];
            if let Some(recovery) = &rule.recovery
                && selects(
                    recovery,
                    event,
                    &input,
                    self.regex_memos.recovery(rule, recovery),
                )
            {
                fill_group_key(rule, &input, &mut self.key, &mut self.label);
                if let Some(id) = self.groups[index].id(&self.key)
                    && let Some(state) = self.groups[index].slot_mut(id).state.as_mut()
                {
                    recover(state, event.occurred_at);
                    self.mark_dirty((index as u32, id));
                }
            }
            if selects_without_condition(&rule.select, event, &input, self.regex_memos.select(rule))
            {
                let met = rule
                    .select
                    .condition
                    .as_ref()
                    .is_none_or(|c| c.test(&input));
                fill_group_key(rule, &input, &mut self.key, &mut self.label);
                let id = self.groups[index].intern(&self.key);
                self.mark_dirty((index as u32, id));
                let state = self.groups[index]
                    .slot_mut(id)
                    .state
                    .get_or_insert_default();
                apply(
                    rule,
                    state,
                    &input,
                    event.occurred_at,
                    met,
                    set.keeps_payload(index),
                    &mut self.errors,
                );
            }
        }
        self.candidates = candidates;
    }

    fn observe_own(&mut self, event: &Event) {
        match &event.kind {
            EventKind::AlertReceived(report) => {
                let key = recorded_group_key(report);
                let source = self.source_index(&event.source);
                let at = (source, self.groups[source as usize].intern(&key));
                self.in_flight.remove(&at);
                self.touch(at);
                self.orphans.insert(at);
                self.by_fingerprint
                    .insert(report.fingerprint.to_string(), at);
                self.firing.insert(
                    at,
                    Firing {
                        fingerprint: report.fingerprint.to_string(),
                        report: report.clone(),
                    },
                );
            }
            EventKind::AlertResolved(r) => {
                if let Some(at) = self.by_fingerprint.remove(&r.fingerprint) {
                    self.firing.remove(&at);
                    self.in_flight.remove(&at);
                    self.touch(at);
                }
            }
            _ => {}
        }
    }

    /// The index of `source`: its rule's, or one past the rules for a
    /// source no longer loaded (given at first sight).
    fn source_index(&mut self, source: &str) -> u32 {
        if let Some(&i) = self.by_source.get(source) {
            return i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(Groups::default());
        self.strays.push(source.to_string());
        self.by_source.insert(source.to_string(), i);
        i
    }

    fn source_name(&self, source: u32) -> &str {
        let i = source as usize;
        match self.set.rules.get(i) {
            Some(rule) => &rule.source,
            None => &self.strays[i - self.set.rules.len()],
        }
    }

    fn key(&self, (source, id): At) -> &GroupKey {
        &self.groups[source as usize].slot(id).key
    }

    /// The group `at` needs looking at in the next evaluation (if its
    /// source is a loaded rule).
    fn touch(&mut self, at: At) {
        if (at.0 as usize) < self.set.rules.len() {
            self.mark_dirty(at);
        }
    }

    fn mark_dirty(&mut self, at: At) {
        let slot = self.groups[at.0 as usize].slot_mut(at.1);
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(at);
        }
    }

    /// The groups an evaluation at `now` must look at: all of them the
    /// first time, then those changed since and those whose wake is due.
    fn due_groups(&mut self, now: DateTime<Utc>) -> Vec<At> {
        let mut due = std::mem::take(&mut self.dirty);
        for &(i, id) in &due {
            self.groups[i as usize].slot_mut(id).dirty = false;
        }
        if !self.scanned {
            self.scanned = true;
            self.orphans = self.firing.keys().copied().collect();
            self.wakes.clear();
            due.clear();
            for (i, groups) in self.groups.iter_mut().enumerate() {
                for (id, slot) in groups.slots.iter_mut().enumerate() {
                    slot.wake = None;
                    if slot.state.is_some() {
                        due.push((i as u32, id as u32));
                    }
                }
            }
            return due;
        }
        while let Some(first) = self.wakes.first() {
            if first.0 > now {
                break;
            }
            let (_, i, id) = self.wakes.pop_first().expect("checked");
            self.groups[i as usize].slot_mut(id).wake = None;
            due.push((i, id));
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Records when group `at` must next be looked at, after `now` (`None`:
    /// only an event can change it, or it is gone).
    fn set_wake(&mut self, at: At, wake: Option<DateTime<Utc>>) {
        let slot = self.groups[at.0 as usize].slot_mut(at.1);
        // Most evaluations leave a group's wake where it was: no B-tree
        // removal and insertion for those.
        if wake.is_some() && slot.wake == wake {
            return;
        }
        if let Some(old) = slot.wake.take() {
            self.wakes.remove(&(old, at.0, at.1));
        }
        if let Some(w) = wake {
            slot.wake = Some(w);
            self.wakes.insert((w, at.0, at.1));
        }
    }

    /// Group `at` was left without evidence: its id is given back in the
    /// next sweep of its rule's groups if it is still unused then. A sweep
    /// comes when the ids waiting outnumber half the groups (and 1,024),
    /// so a churn of pods keeps at most about twice the keys in use.
    fn release_if_unused(&mut self, at: At) {
        let groups = &mut self.groups[at.0 as usize];
        groups.stale.push(at.1);
        if groups.stale.len() < 1024.max(groups.slots.len() / 2) {
            return;
        }
        for id in std::mem::take(&mut groups.stale) {
            let at = (at.0, id);
            let slot = self.groups[at.0 as usize].slot(id);
            if slot.state.is_none()
                && slot.wake.is_none()
                && !slot.dirty
                && !self.firing.contains_key(&at)
                && !self.in_flight.contains_key(&at)
            {
                self.groups[at.0 as usize].release(id);
            }
        }
    }

    /// What is due at `now`: alerts to fire and to resolve. Decides nothing
    /// twice while its decisions are on their way into the log.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        self.last_evaluated = Some(now);
        if self
            .in_flight_oldest
            .is_some_and(|oldest| now - oldest >= Duration::minutes(1))
        {
            self.in_flight
                .retain(|_, at| now - *at < Duration::minutes(1));
            self.in_flight_oldest = self.in_flight.values().min().copied();
        }
        let set = self.set.clone();
        // Each decision with its group and whether it resolves an orphan:
        // what orders decisions of the same instant, alert and
        // fingerprint as before (groups in order, then orphans).
        let mut out: Vec<(Decision, At, bool)> = Vec::new();
        for at in self.due_groups(now) {
            let index = at.0 as usize;
            let Some(rule) = set.rules.get(index) else {
                continue;
            };
            let Some(state) = self.groups[index].state(at.1) else {
                self.set_wake(at, None);
                self.release_if_unused(at);
                continue;
            };
            let st = status(rule, state, now);
            let mut wake = group_wake(rule, state, now);
            if let Some(since) = self.in_flight.get(&at) {
                // Looked at again once the decision folds back (or is
                // given up on, after a minute).
                let retry = *since + Duration::minutes(1);
                wake = Some(wake.map_or(retry, |w| w.min(retry)));
                self.set_wake(at, wake);
                continue;
            }
            let mut gone = false;
            match self.firing.get(&at) {
                None => {
                    if let Some(since) = st.since.filter(|_| st.holding)
                        && now >= since + rule.for_
                    {
                        let key = self.key(at);
                        out.push((
                            self.fire(&set, rule, key, state, &st, since + rule.for_),
                            at,
                            false,
                        ));
                    } else if !st.holding && idle(rule, state, now) {
                        gone = true;
                    }
                }
                Some(f) if !st.holding => {
                    let due = match (state.recovered, rule.resolve_after, &rule.mode) {
                        (Some(at), _, _) => Some((at, "recovery event".to_string())),
                        // A match rule's quiet period is part of holding.
                        (None, Some(_), Mode::Match) | (None, None, _) => Some((
                            st.ended.unwrap_or(now).min(now),
                            "condition no longer holds".to_string(),
                        )),
                        (None, Some(quiet), _) => st
                            .ended
                            .map(|e| e + quiet)
                            .filter(|due| *due <= now)
                            .map(|due| (due, format!("quiet for {}", show(quiet)))),
                    };
                    if let Some((at_time, reason)) = due {
                        out.push((
                            Decision {
                                source: rule.source.clone(),
                                fingerprint: f.fingerprint.clone(),
                                at: at_time,
                                change: Change::Resolve {
                                    reason: format!("{}: {reason}", rule.name),
                                    report: (*f.report).clone(),
                                },
                            },
                            at,
                            false,
                        ));
                    }
                }
                Some(_) => {}
            }
            if gone {
                self.groups[index].slot_mut(at.1).state = None;
                self.set_wake(at, None);
                self.release_if_unused(at);
            } else {
                self.set_wake(at, wake);
            }
        }
        // Alerts whose rule or group is gone (a rule removed on reload, an
        // alert of the log whose evidence this set does not keep). Groups
        // of firing alerts are never dropped, so only alerts folded since
        // the last evaluation (and all of them the first time) can be such.
        let orphans: Vec<At> = self.orphans.drain().collect();
        for at in orphans {
            let Some(f) = self.firing.get(&at) else {
                continue;
            };
            let gone = if at.0 as usize >= set.rules.len() {
                Some("rule no longer loaded")
            } else if self.groups[at.0 as usize].state(at.1).is_none() {
                Some("condition no longer holds")
            } else {
                None
            };
            let Some(reason) = gone else { continue };
            if self.in_flight.contains_key(&at) {
                self.orphans.insert(at);
                continue;
            }
            let decision = Decision {
                source: self.source_name(at.0).to_string(),
                fingerprint: f.fingerprint.clone(),
                at: now,
                change: Change::Resolve {
                    reason: reason.to_string(),
                    report: (*f.report).clone(),
                },
            };
            out.push((decision, at, true));
        }
        for (d, own, _) in &out {
            let at = self
                .by_fingerprint
                .get(&d.fingerprint)
                .copied()
                .unwrap_or(*own);
            // Should the decision never fold back, look again when it is
            // given up on.
            if (at.0 as usize) < set.rules.len() {
                let retry = now + Duration::minutes(1);
                let wake = self.groups[at.0 as usize]
                    .slot(at.1)
                    .wake
                    .map_or(retry, |w| w.min(retry));
                self.set_wake(at, Some(wake));
            }
            self.in_flight.insert(at, now);
            self.in_flight_oldest = Some(self.in_flight_oldest.map_or(now, |o| o.min(now)));
        }
        out.sort_by(|(a, a_at, a_orphan), (b, b_at, b_orphan)| {
            (a.at, &a.source, &a.fingerprint, a_orphan)
                .cmp(&(b.at, &b.source, &b.fingerprint, b_orphan))
                .then_with(|| KeyParts(self.key(*a_at)).cmp(KeyParts(self.key(*b_at))))
        });
        out.into_iter().map(|(d, _, _)| d).collect()
    }

    fn fire<'a>(
        &self,
        set: &RuleSet,
        rule: &'a Rule,
        key: &'a [u8],
        state: &GroupState,
        st: &Status,
        at: DateTime<Utc>,
    ) -> Decision {
        // The labels as (name, value) pairs, later ones winning, made a
        // `LabelSet` once: inserting into one rebuilds it each time.
        let mut pairs: Vec<(&str, Cow<str>)> = rule
            .group_by
            .iter()
            .zip(KeyParts(key))
            .filter(|(_, value)| !value.is_empty())
            .map(|(g, value)| (g.label(), Cow::Borrowed(value)))
            .collect();
        let templated = rule
            .labels
            .iter()
            .chain(&rule.annotations)
            .any(|(_, t)| matches!(t, Text::Template(_)));
        // The templates' document, only for a rule that has templates: it
        // copies the payload, and most rules' labels are literal.
        let mut doc = if templated {
            let labels: LabelSet = pairs.iter().cloned().collect();
            let payload = state
                .last_payload
                .as_deref()
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            // Whole amounts (counts) print as `4`, not `4.0`.
            let amount = if st.amount.fract() == 0.0 && st.amount.abs() < 1e15 {
                serde_json::json!(st.amount as i64)
            } else {
                serde_json::json!(st.amount)
            };
            serde_json::json!({
                "labels": labels,
                "group": labels,
                "payload": payload,
                "value": amount,
                "count": amount,
                "since": st.since.map(|s| s.to_rfc3339()),
                "rule": { "name": rule.name, "group": rule.group },
            })
        } else {
            serde_json::Value::Null
        };
        let mut errors = Vec::new();
        let mut render = |text: &'a Text, doc: &serde_json::Value| -> Cow<'a, str> {
            match text {
                Text::Literal(s) => Cow::Borrowed(s),
                Text::Template(name) => {
                    let ctx = tera::Context::from_serialize(doc).unwrap_or_default();
                    Cow::Owned(set.render(name, &ctx).unwrap_or_else(|e| {
                        errors.push(format!("{name}: {e}"));
                        String::new()
                    }))
                }
            }
        };
        for (name, text) in &rule.labels {
            let value = render(text, &doc);
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        pairs.push(("alertname", Cow::Borrowed(&rule.name)));
        let labels: LabelSet = pairs.into_iter().collect();
        if templated {
            doc["labels"] = serde_json::json!(labels);
        }
        let annotations: LabelSet = rule
            .annotations
            .iter()
            .map(|(name, text)| (name, render(text, &doc)))
            .collect();
        let reason = describe(rule, st);
        let mut extra = serde_json::Map::new();
        extra.insert(
            "rule".into(),
            serde_json::json!({
                "group": rule.group,
                "name": rule.name,
                "file": rule.file.display().to_string(),
                "group_key": KeyParts(key).collect::<Vec<_>>(),
                "reason": reason,
                "template_errors": if errors.is_empty() { None } else { Some(&errors) },
            }),
        );
        let fingerprint = Fingerprint::of(&labels).to_string();
        Decision {
            source: rule.source.clone(),
            fingerprint: fingerprint.clone(),
            at,
            change: Change::Fire(AlertReport {
                fingerprint: fingerprint.into(),
                labels,
                annotations,
                starts_at: at,
                ends_at: None,
                generator_url: String::new(),
                extra,
            }),
        }
    }

    /// The next instant at which `evaluate` may decide something without
    /// a new event: a `for` elapsing, evidence leaving a window, an
    /// `absent` or quiet period running out. `None`: only events matter.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let after = self
            .last_evaluated
            .unwrap_or(self.started - Duration::seconds(1));
        let wake = |(i, id): At| {
            let rule = self.set.rules.get(i as usize)?;
            let state = self.groups[i as usize].state(id)?;
            group_wake(rule, state, after)
        };
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t.filter(|t| *t > after)
                && next.is_none_or(|n| t < n)
            {
                next = Some(t);
            }
        };
        if !self.scanned {
            for (i, groups) in self.groups.iter().enumerate() {
                for (id, _, _) in groups.live() {
                    consider(wake((i as u32, id)));
                }
            }
            return next;
        }
        // Groups changed since the last evaluation have no wake yet.
        for at in &self.dirty {
            consider(wake(*at));
        }
        // A dirty group's recorded wake is stale: its fresh one counted above.
        consider(
            self.wakes
                .iter()
                .find(|w| w.0 > after && !self.groups[w.1 as usize].slot(w.2).dirty)
                .map(|w| w.0),
        );
        next
    }

    /// Alerts the log says this engine's rules have firing, by fingerprint.
    pub fn firing(&self) -> Vec<&AlertReport> {
        let mut out: Vec<&AlertReport> = self.firing.values().map(|f| &*f.report).collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// The engine's state as a snapshot holds it: groups and firing alerts by
/// rule source (not index), and the hash of the set they were folded with.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    hash: String,
    started: DateTime<Utc>,
    last_evaluated: Option<DateTime<Utc>>,
    errors: u64,
    groups: Vec<(String, Vec<(KeyValues, GroupState)>)>,
    firing: Vec<(String, KeyValues, String, AlertReport)>,
}

impl RuleEngine {
    /// A copy of the state, for a snapshot. Decisions in flight are not
    /// kept: they are folded in the commit that decided them.
    pub fn state(&self) -> EngineState {
        let mut groups: Vec<(String, Vec<(KeyValues, GroupState)>)> = self
            .set
            .rules
            .iter()
            .map(|rule| {
                let mut g: Vec<_> = self.groups[rule.index]
                    .live()
                    .map(|(_, slot, s)| (key_values(&slot.key), s.clone()))
                    .collect();
                g.sort_by(|a, b| a.0.cmp(&b.0));
                (rule.source.clone(), g)
            })
            .collect();
        groups.retain(|(_, g)| !g.is_empty());
        let mut firing: Vec<_> = self
            .firing
            .iter()
            .map(|(at, f)| {
                (
                    self.source_name(at.0).to_string(),
                    key_values(self.key(*at)),
                    f.fingerprint.clone(),
                    (*f.report).clone(),
                )
            })
            .collect();
        firing.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        EngineState {
            hash: self.set.hash.clone(),
            started: self.started,
            last_evaluated: self.last_evaluated,
            errors: self.errors,
            groups,
            firing,
        }
    }

    /// An engine for `set` from a snapshot's state. Refused when the state
    /// was folded with other rules: group evidence depends on every rule's
    /// selector and condition, so only a replay can rebuild it.
    pub fn from_state(set: Arc<RuleSet>, state: EngineState) -> Result<RuleEngine, String> {
        if state.hash != set.hash {
            return Err(format!(
                "rule state was folded with rule set {}, not the loaded {}",
                state.hash, set.hash
            ));
        }
        let mut engine = RuleEngine::unstarted(set.clone(), state.started);
        engine.last_evaluated = state.last_evaluated;
        engine.errors = state.errors;
        for (source, groups) in state.groups {
            let i = set
                .rules
                .iter()
                .position(|r| r.source == source)
                .ok_or_else(|| format!("rule {source} is not in the set"))?;
            for (key, group) in groups {
                let id = engine.groups[i].intern(&encode_key(&key));
                engine.groups[i].slot_mut(id).state = Some(group);
            }
        }
        for (source, key, fingerprint, report) in state.firing {
            let i = engine.source_index(&source);
            let at = (i, engine.groups[i as usize].intern(&encode_key(&key)));
            engine.by_fingerprint.insert(fingerprint.clone(), at);
            engine.firing.insert(
                at,
                Firing {
                    fingerprint,
                    report: Arc::new(report),
                },
            );
        }
        Ok(engine)
    }
}

/// The next instant after `after` at which a group's status can change
/// without an event: a `for` elapsing, evidence leaving a window, an
/// `absent` or quiet period running out. Early is harmless (an evaluation
/// that decides nothing); late would delay an alert, so every candidate
/// counts, whether or not the group's alert fires.
fn group_wake(rule: &Rule, state: &GroupState, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut next: Option<DateTime<Utc>> = None;
    let mut consider = |t: DateTime<Utc>| {
        if t > after && next.is_none_or(|n| t < n) {
            next = Some(t);
        }
    };
    if let Some(since) = state.since {
        consider(since + rule.for_);
    }
    match &rule.mode {
        Mode::Match => {
            if let (true, Some(q), Some(last)) = (state.met, rule.resolve_after, state.last_met) {
                consider(last + q);
            }
        }
        Mode::Count { window, at_least } => {
            if let Some(end) = window_end(state.times.iter().copied(), *at_least, *window) {
                consider(end);
                // Holding ends there; a quiet period runs from then.
                if let Some(q) = rule.resolve_after {
                    consider(end + q);
                }
            }
            // When the last evidence ages out, the group can be dropped.
            if let Some(last) = state.times.back() {
                consider(*last + *window);
            }
        }
        Mode::Distinct {
            window, at_least, ..
        } => {
            let mut times: Vec<_> = state.values.values().copied().collect();
            times.sort_unstable();
            if let Some(last) = times.last() {
                consider(*last + *window);
            }
            if let Some(end) = window_end(times.into_iter(), *at_least, *window) {
                consider(end);
                if let Some(q) = rule.resolve_after {
                    consider(end + q);
                }
            }
        }
        Mode::Absent { after: quiet } => {
            if let Some(seen) = state.last_seen {
                consider(seen + *quiet);
                consider(seen + *quiet + rule.for_);
                if let Some(q) = rule.resolve_after {
                    consider(seen + q);
                }
            }
        }
        Mode::Threshold { .. } => {}
    }
    if let (Some(q), Some(end)) = (rule.resolve_after, state.ended) {
        consider(end + q);
    }
    next
}

/// The group an alert of a rule was fired for (`extra.rule.group_key`, a
/// list of strings); none if it is not there or not that.
fn recorded_group_key(report: &AlertReport) -> Vec<u8> {
    let values = report
        .extra
        .get("rule")
        .and_then(|r| r.get("group_key"))
        .and_then(|k| k.as_array());
    values
        .and_then(|values| {
            values
                .iter()
                .map(|v| v.as_str())
                .collect::<Option<Vec<&str>>>()
        })
        .map(|values| encode_key(&values))
        .unwrap_or_default()
}

fn show(d: Duration) -> String {
    crate::config::PromDuration(d).to_string()
}

/// Why the alert fires, in words, for `extra.rule.reason`.
fn describe(rule: &Rule, st: &Status) -> String {
    let for_ = if rule.for_ > Duration::zero() {
        format!(" for {}", show(rule.for_))
    } else {
        String::new()
    };
    match &rule.mode {
        Mode::Match => format!("condition met{for_}"),
        Mode::Count { window, at_least } => format!(
            "{:.0} events in {} (at least {at_least}){for_}",
            st.amount,
            show(*window)
        ),
        Mode::Distinct {
            window, at_least, ..
        } => format!(
            "{} distinct values in {} (at least {at_least}){for_}",
            st.amount,
            show(*window)
        ),
        Mode::Absent { after } => format!("nothing seen for {}{for_}", show(*after)),
        Mode::Threshold { rising, fire, .. } => format!(
            "value {} {} {fire}{for_}",
            st.amount,
            if *rising { ">" } else { "<" }
        ),
    }
}

/// `memos`: one per matcher of `sel` (see [`RegexMemo`]).
fn selects_without_condition(
    sel: &Selector,
    event: &Event,
    input: &Input,
    memos: &mut [RegexMemo],
) -> bool {
    sel.kinds.contains(&event.kind.name())
        && (sel.sources.is_empty() || sel.sources.iter().any(|s| *s == event.source))
        && sel.matchers.iter().zip(memos).all(|(m, memo)| {
            let value = input.known_text(m.known, &m.path);
            match m.matcher.op() {
                MatchOp::Regex | MatchOp::NotRegex => memo.matches(&m.matcher, &value),
                MatchOp::Equal | MatchOp::NotEqual => m.matcher.matches_value(&value),
            }
        })
}

fn selects(sel: &Selector, event: &Event, input: &Input, memos: &mut [RegexMemo]) -> bool {
    selects_without_condition(sel, event, input, memos)
        && sel.condition.as_ref().is_none_or(|c| c.test(input))
}

/// The values a regex matcher has met, with its answer for each, up to
/// [`RegexMemo::VALUES`] of them. The fields rules select by regex are
/// mostly of few values (reasons, kinds, namespaces, probe names), and a
/// rule selecting by regex meets every event of its kind: running the
/// regex was a quarter of folding (10 such rules, ~270 instructions a
/// match against ~40 for a lookup).
#[derive(Default)]
struct RegexMemo(FastMap<Box<str>, bool>);

impl RegexMemo {
    /// Values remembered at most, per matcher: a field of many values (pod
    /// names) stops adding once full, and the regex runs for the rest.
    const VALUES: usize = 4096;

    fn matches(&mut self, matcher: &Matcher, value: &str) -> bool {
        if let Some(&known) = self.0.get(value) {
            return known;
        }
        let matched = matcher.matches_value(value);
        if self.0.len() < Self::VALUES {
            self.0.insert(value.into(), matched);
        }
        matched
    }
}

/// Per rule, the [`RegexMemo`]s of its selector's matchers and of its
/// recovery's, in one table.
struct RegexMemos {
    memos: Vec<RegexMemo>,
    /// Per rule, where its selector's and its recovery's memos start.
    starts: Vec<(usize, usize)>,
}

impl RegexMemos {
    fn new(set: &RuleSet) -> RegexMemos {
        let mut starts = Vec::with_capacity(set.rules.len());
        let mut n = 0;
        for rule in &set.rules {
            let select = n;
            n += rule.select.matchers.len();
            let recovery = n;
            n += rule.recovery.as_ref().map_or(0, |r| r.matchers.len());
            starts.push((select, recovery));
        }
        RegexMemos {
            memos: (0..n).map(|_| RegexMemo::default()).collect(),
            starts,
        }
    }

    fn select(&mut self, rule: &Rule) -> &mut [RegexMemo] {
        let at = self.starts[rule.index].0;
        &mut self.memos[at..at + rule.select.matchers.len()]
    }

    fn recovery(&mut self, rule: &Rule, recovery: &Selector) -> &mut [RegexMemo] {
        let at = self.starts[rule.index].1;
        &mut self.memos[at..at + recovery.matchers.len()]
    }
}

/// The group `input` belongs to, encoded into `key` (see [`GroupKey`]),
/// from the event's fields as they are borrowed from it; `label` holds a
/// value an expression computes. Both buffers are reused from event to
/// event: most keys are of groups already known.
fn fill_group_key(rule: &Rule, input: &Input, key: &mut Vec<u8>, label: &mut String) {
    key.clear();
    for g in &rule.group_by {
        match g {
            GroupBy::Path { path, known, .. } => {
                push_key_part(key, &input.known_text(*known, path))
            }
            GroupBy::Expr { expr, .. } => {
                expr.label_into(input, label);
                push_key_part(key, label);
            }
        }
    }
}

/// When holding stops if nothing more arrives: the `at_least`-th latest
/// time leaves the window. `times` ascending.
fn window_end(
    times: impl DoubleEndedIterator<Item = DateTime<Utc>>,
    at_least: usize,
    window: Duration,
) -> Option<DateTime<Utc>> {
    times
        .rev()
        .nth(at_least.checked_sub(1)?)
        .map(|t| t + window)
}

fn in_window(
    times: impl Iterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
    window: Duration,
) -> usize {
    // Once, not per time (chrono's checked subtraction showed in profiles).
    let start = now - window;
    times.filter(|t| *t > start && *t <= now).count()
}

/// Folds one selected event into a group's evidence.
fn apply(
    rule: &Rule,
    state: &mut GroupState,
    input: &Input,
    t: DateTime<Utc>,
    met: bool,
    keep_payload: bool,
    errors: &mut u64,
) {
    if met {
        state.recovered = None;
        if keep_payload {
            state.last_payload = Some(input.json().clone());
        }
    }
    match &rule.mode {
        Mode::Match => {
            // With a quiet period, evidence older than it has lapsed.
            if let (true, Some(q), Some(last)) = (state.met, rule.resolve_after, state.last_met)
                && last + q <= t
            {
                state.met = false;
                state.since = None;
                state.ended = Some(last + q);
            }
            if met {
                if !state.met {
                    state.since = Some(t);
                }
                state.met = true;
                state.last_met = Some(t);
            } else if state.met {
                state.met = false;
                state.since = None;
                state.ended = Some(t);
            }
        }
        Mode::Count { window, at_least } => {
            if !met {
                return;
            }
            if state.since.is_some()
                && let Some(end) = window_end(state.times.iter().copied(), *at_least, *window)
                && end <= t
            {
                state.since = None;
                state.ended = Some(end);
            }
            let pos = state.times.partition_point(|x| *x <= t);
            state.times.insert(pos, t);
            let horizon = state.times.back().copied().unwrap_or(t) - *window;
            while state.times.front().is_some_and(|x| *x <= horizon) {
                state.times.pop_front();
            }
            if state.since.is_none()
                && in_window(state.times.iter().copied(), t, *window) >= *at_least
            {
                state.since = Some(t);
            }
        }
        Mode::Distinct {
            of,
            window,
            at_least,
        } => {
            if !met {
                return;
            }
            let value = of.label(input);
            if value.is_empty() {
                *errors += 1;
                return;
            }
            let mut times: Vec<_> = state.values.values().copied().collect();
            times.sort_unstable();
            if state.since.is_some()
                && let Some(end) = window_end(times.into_iter(), *at_least, *window)
                && end <= t
            {
                state.since = None;
                state.ended = Some(end);
            }
            let seen = state.values.entry(value).or_insert(t);
            *seen = (*seen).max(t);
            state.values.retain(|_, x| *x > t - *window);
            if state.since.is_none()
                && in_window(state.values.values().copied(), t, *window) >= *at_least
            {
                state.since = Some(t);
            }
        }
        Mode::Absent { after } => {
            if !met {
                return;
            }
            if let Some(seen) = state.last_seen
                && seen + *after <= t
            {
                state.ended = Some(t);
            }
            state.last_seen = Some(state.last_seen.map_or(t, |s| s.max(t)));
        }
        Mode::Threshold {
            value,
            rising,
            fire,
            clear,
        } => {
            if !met {
                return;
            }
            let Some(v) = value.number(input) else {
                *errors += 1;
                return;
            };
            state.last_value = Some(v);
            let (over, back) = if *rising {
                (v > *fire, v < *clear)
            } else {
                (v < *fire, v > *clear)
            };
            if !state.crossed && over {
                state.crossed = true;
                state.since = Some(t);
            } else if state.crossed && back {
                state.crossed = false;
                state.since = None;
                state.ended = Some(t);
            }
        }
    }
}

/// A recovery event: the group's evidence is dropped; its alert resolves.
fn recover(state: &mut GroupState, t: DateTime<Utc>) {
    *state = GroupState {
        ended: Some(t),
        recovered: Some(t),
        ..GroupState::default()
    };
}

fn status(rule: &Rule, state: &GroupState, now: DateTime<Utc>) -> Status {
    // After a recovery nothing holds until new evidence arrives (for an
    // absent rule: the group is retired, not counted as missing again).
    if state.recovered.is_some() {
        return Status {
            holding: false,
            since: None,
            ended: state.recovered,
            amount: 0.0,
        };
    }
    match &rule.mode {
        Mode::Match => {
            let lapsed = match (rule.resolve_after, state.last_met) {
                (Some(q), Some(last)) if state.met && last + q <= now => Some(last + q),
                _ => None,
            };
            Status {
                holding: state.met && lapsed.is_none(),
                since: state.since,
                ended: lapsed.or(state.ended),
                amount: 1.0,
            }
        }
        Mode::Count { window, at_least } => {
            let n = in_window(state.times.iter().copied(), now, *window);
            let end = window_end(state.times.iter().copied(), *at_least, *window);
            Status {
                holding: n >= *at_least && state.since.is_some(),
                since: state.since,
                ended: if state.since.is_some() {
                    end
                } else {
                    state.ended
                },
                amount: n as f64,
            }
        }
        Mode::Distinct {
            window, at_least, ..
        } => {
            let n = in_window(state.values.values().copied(), now, *window);
            let mut times: Vec<_> = state.values.values().copied().collect();
            times.sort_unstable();
            let end = window_end(times.into_iter(), *at_least, *window);
            Status {
                holding: n >= *at_least && state.since.is_some(),
                since: state.since,
                ended: if state.since.is_some() {
                    end
                } else {
                    state.ended
                },
                amount: n as f64,
            }
        }
        Mode::Absent { after } => {
            let since = state.last_seen.map(|s| s + *after);
            let holding = since.is_some_and(|s| now >= s);
            Status {
                holding,
                since,
                ended: state.last_seen,
                amount: state
                    .last_seen
                    .map_or(0.0, |s| (now - s).num_seconds() as f64),
            }
        }
        Mode::Threshold { .. } => Status {
            holding: state.crossed,
            since: state.since,
            ended: state.ended,
            amount: state.last_value.unwrap_or(0.0),
        },
    }
}

/// Nothing left worth keeping for a group that does not hold and whose
/// alert is not firing: dropping it is the same as never having seen it.
fn idle(rule: &Rule, state: &GroupState, now: DateTime<Utc>) -> bool {
    match &rule.mode {
        Mode::Match => !state.met,
        Mode::Count { window, .. } => state.times.back().is_none_or(|t| *t <= now - *window),
        Mode::Distinct { window, .. } => state.values.values().all(|t| *t <= now - *window),
        // Absent groups are what it watches; forgotten only on recovery.
        Mode::Absent { .. } => state.recovered.is_some(),
        Mode::Threshold { .. } => !state.crossed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::{InvolvedObject, K8sEvent};
    use std::path::PathBuf;

    fn backoff(pod: &str, at: DateTime<Utc>, seq: u64) -> Event {
        Event {
            seq,
            id: format!("e{seq}").into(),
            occurred_at: at,
            recorded_at: at,
            source: "kubernetes".into(),
            key: format!("uid-{pod}").into(),
            idempotency_key: None,
            kind: EventKind::K8sEvent(Arc::new(K8sEvent {
                namespace: "shop".into(),
                involved_object: InvolvedObject {
                    kind: "Pod".into(),
                    name: pod.into(),
                    ..Default::default()
                },
                reason: "BackOff".into(),
                count: 1,
                ..Default::default()
            })),
        }
    }

    /// Regression: group ids are given back when their groups are gone, so
    /// pods that come and go (a new name each rollout) do not grow the
    /// engine's key table; and an id given back and handed to another
    /// group decides for that group only.
    #[test]
    fn a_churn_of_pods_does_not_grow_the_group_table() {
        let yaml = "groups:\n  - name: pods\n    rules:\n      - alert: BackOffs\n        select: { kind: k8s.event, matchers: ['reason=\"BackOff\"'] }\n        group_by: [{ pod: payload.involved_object.name }]\n        count: { window: 1m, above: 2 }\n";
        let set = RuleSet::from_sources(&[(PathBuf::from("r.yaml"), yaml.to_string())]).unwrap();
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut engine = RuleEngine::new(Arc::new(set), t0);
        let mut seq = 0;
        // Rounds of 3,000 pods, one event each, 10 minutes apart: every
        // group is dropped once its window passes.
        for round in 0..6 {
            let start = t0 + Duration::minutes(10 * round);
            for i in 0..3000 {
                seq += 1;
                let pod = format!("web-{round}-{i}");
                engine.observe(&backoff(&pod, start + Duration::milliseconds(i), seq));
            }
            assert!(engine.evaluate(start + Duration::seconds(5)).is_empty());
            assert!(engine.evaluate(start + Duration::minutes(2)).is_empty());
            let groups = &engine.groups[0];
            assert!(groups.live().next().is_none(), "round {round}");
            assert!(
                groups.slots.len() <= 6000 + 1024 && groups.ids.len() <= 3000 + 1024,
                "round {round}: {} slots, {} keys",
                groups.slots.len(),
                groups.ids.len()
            );
        }
        assert!(engine.groups[0].free.len() > 1000, "ids were given back");
        // A pod on a recycled id fires as itself; its neighbour does not.
        let now = t0 + Duration::hours(2);
        for s in 0..3 {
            seq += 1;
            engine.observe(&backoff("api-0", now + Duration::seconds(s), seq));
        }
        seq += 1;
        engine.observe(&backoff("api-1", now, seq));
        let fired = engine.evaluate(now + Duration::seconds(3));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].labels().get("pod"), Some("api-0"));
        assert_eq!(
            engine.state().groups[0]
                .1
                .iter()
                .map(|(k, _)| k.to_vec())
                .collect::<Vec<_>>(),
            [vec!["api-0".to_string()], vec!["api-1".to_string()]]
        );
    }

    /// The answers a regex matcher's memo gives are its regex's, for `=~`
    /// and `!~`, remembered or not (past the memo's bound), asked once or
    /// again.
    #[test]
    fn remembered_regex_answers_are_the_regex_answers() {
        for op in [MatchOp::Regex, MatchOp::NotRegex] {
            let matcher = Matcher::new(op, "reason", "Reason1.*").unwrap();
            let mut memo = RegexMemo::default();
            for round in 0..2 {
                for i in 0..RegexMemo::VALUES + 100 {
                    let value = format!("Reason{i}");
                    assert_eq!(
                        memo.matches(&matcher, &value),
                        matcher.matches_value(&value),
                        "{op:?} {value} (round {round})"
                    );
                }
            }
            assert_eq!(memo.0.len(), RegexMemo::VALUES);
        }
    }

    /// Encoded group keys are one key per list of values (no two lists
    /// share an encoding, empty values and no values included) and order
    /// as the lists do: decisions of the same instant are ordered by key,
    /// as they were when keys were `[String]`.
    #[test]
    fn encoded_group_keys_are_unambiguous_and_order_as_their_values() {
        let lists: Vec<Vec<&str>> = vec![
            vec![],
            vec![""],
            vec!["", ""],
            vec!["a"],
            vec!["ab"],
            vec!["a", "b"],
            vec!["a", "", "b"],
            vec!["a\u{0}b"],
            vec!["b"],
            vec!["ns1", "pod-10"],
            vec!["ns1", "pod-9"],
            vec!["ns10", "pod-1"],
            vec!["日本", "x"],
        ];
        let keys: Vec<Vec<u8>> = lists.iter().map(|l| encode_key(l)).collect();
        for (i, (a, ka)) in lists.iter().zip(&keys).enumerate() {
            assert_eq!(&KeyParts(ka).collect::<Vec<_>>(), a);
            assert_eq!(&*key_values(ka), a.as_slice());
            for (b, kb) in lists.iter().zip(&keys).skip(i + 1) {
                assert_ne!(ka, kb, "{a:?} and {b:?}");
                assert_eq!(
                    KeyParts(ka).cmp(KeyParts(kb)),
                    a.cmp(b),
                    "{a:?} against {b:?}"
                );
            }
        }
    }
}
