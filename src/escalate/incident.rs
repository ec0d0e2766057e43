//! [`Incidents`]: every incident as a fold over the log.
//!
//! An incident is one paging episode of a notification group. It opens
//! with the group's first `notification.due` that has firing alerts, takes
//! the alerts of each later one, and closes when a notification carries
//! only resolved alerts, when the group closes, or when someone resolves
//! it. Its id is `inc-` and the `seq` of the notification that opened it,
//! so it is the same after a replay. Escalation progress, acknowledgements
//! and snoozes come from `escalation.stepped` and `incident.*` events.
//! This view only folds: deciding is the escalator's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::evaluate::dispatch::shared_group;
use crate::evaluate::fingerprints::FingerprintList;
use crate::eventlog::{Event, EventKind, GroupRef, Projection};

/// Closed incidents are kept this long (log time), so a late click on an
/// action link is answered "already resolved", not "unknown".
const KEEP_CLOSED_HOURS: i64 = 48;

/// One per notified group (tens of thousands open at once): the group's
/// names are the copy all views share ([`shared_group`]), the fingerprint
/// lists compact, the acknowledgement (rare) boxed. Serialises as the plain
/// `GroupRef`, lists of strings and `Ack` it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub group: std::sync::Arc<GroupRef>,
    pub opened_at: DateTime<Utc>,
    /// Fingerprints firing as of the group's last notification.
    pub firing: FingerprintList,
    /// Firing alerts that joined after an acknowledgement and have not been
    /// re-paged to the acknowledger yet.
    #[serde(default)]
    pub joined_since_ack: FingerprintList,
    pub ack: Option<Box<Ack>>,
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Set once closed: resolved by someone, or its alerts all ended.
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub escalation: Progress,
    /// Person → receivers that paged them, for re-paging an acknowledger.
    #[serde(default)]
    pub paged: BTreeMap<String, Vec<String>>,
    /// Action-link tokens already used.
    #[serde(default)]
    pub used_tokens: BTreeSet<String>,
    /// Alerts its pages listed as symptoms of its alerts (joined through
    /// the topology, not paged on their own), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symptoms: Vec<crate::eventlog::Symptom>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: DateTime<Utc>,
    /// When it lapses (`ack_timeout`).
    pub until: Option<DateTime<Utc>>,
}

/// Where an incident's escalation stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The policy it follows, once a first step was taken.
    pub policy: Option<String>,
    pub iteration: u32,
    /// The next step to take (index into the policy's steps).
    pub next_step: usize,
    /// When the next step is due (after a wait).
    pub next_at: Option<DateTime<Utc>>,
    pub finished: bool,
    pub steps_taken: u32,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// `open`, `acknowledged`, `snoozed` (at `now`) or `resolved`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if !self.is_open() {
            "resolved"
        } else if self.ack.is_some() {
            "acknowledged"
        } else if self.snoozed_until.is_some_and(|u| u > now) {
            "snoozed"
        } else {
            "open"
        }
    }
}

#[derive(Default)]
pub struct Incidents {
    inner: RwLock<Inner>,
    /// A number that moves whenever any incident may have changed (an
    /// event about incidents folded, a reset, a restore), so the escalator
    /// can keep what it found until it does. Not state: neither
    /// snapshotted nor compared.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    /// Boxed: the table has a slot per incident and as many empty ones
    /// again, each the size of its value (~300 bytes unboxed).
    by_id: HashMap<String, Box<Incident>>,
    /// Group → its open incident.
    open: HashMap<String, String>,
    now: Option<DateTime<Utc>>,
}

impl Incidents {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves whenever an incident may have changed; equal readings mean
    /// nothing did in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn get(&self, id: &str) -> Option<Incident> {
        self.inner.read().by_id.get(id).map(|i| Incident::clone(i))
    }

    /// The open incident of a group, if any.
    pub fn of_group(&self, group: &str) -> Option<Incident> {
        let inner = self.inner.read();
        inner
            .open
            .get(group)
            .and_then(|id| inner.by_id.get(id))
            .map(|i| Incident::clone(i))
    }

    /// Open incidents, oldest first.
    pub fn open(&self) -> Vec<Incident> {
        let inner = self.inner.read();
        let mut v: Vec<Incident> = inner
            .open
            .values()
            .filter_map(|id| inner.by_id.get(id))
            .map(|i| Incident::clone(i))
            .collect();
        v.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        v
    }

    /// Open incidents `keep` selects, oldest first. Only those kept are
    /// copied: a pass over hundreds of open incidents that acts on a few
    /// must not clone them all.
    pub fn open_where(&self, mut keep: impl FnMut(&Incident) -> bool) -> Vec<Incident> {
        let inner = self.inner.read();
        let mut v: Vec<Incident> = inner
            .open
            .values()
            .filter_map(|id| inner.by_id.get(id))
            .filter(|i| keep(i))
            .map(|i| Incident::clone(i))
            .collect();
        v.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        v
    }

    /// The least of `f` over the open incidents, read in place.
    pub fn min_open<T: Ord>(&self, mut f: impl FnMut(&Incident) -> Option<T>) -> Option<T> {
        let inner = self.inner.read();
        inner
            .open
            .values()
            .filter_map(|id| inner.by_id.get(id))
            .filter_map(|i| f(i))
            .min()
    }

    /// Every incident still remembered, newest first.
    pub fn all(&self) -> Vec<Incident> {
        let mut v: Vec<Incident> = self
            .inner
            .read()
            .by_id
            .values()
            .map(|i| Incident::clone(i))
            .collect();
        v.sort_by(|a, b| (b.opened_at, &b.id).cmp(&(a.opened_at, &a.id)));
        v
    }

    fn close(inner: &mut Inner, id: &str, at: DateTime<Utc>, by: &str) {
        if let Some(i) = inner.by_id.get_mut(id)
            && i.closed_at.is_none()
        {
            i.closed_at = Some(at);
            i.closed_by = Some(by.to_string());
            i.escalation.next_at = None;
            inner.open.remove(&i.group.group);
        }
    }
}

impl Projection for Incidents {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn apply(&self, event: &Event) {
        // Most events are not about incidents: no lock for them (replay
        // folds millions).
        match &event.kind {
            EventKind::NotificationDue(d) if d.escalation.is_none() => {}
            EventKind::GroupClosed(_)
            | EventKind::EscalationStepped(_)
            | EventKind::IncidentAcknowledged(_)
            | EventKind::IncidentUnacknowledged(_)
            | EventKind::IncidentSnoozed(_)
            | EventKind::IncidentResolved(_) => {}
            _ => return,
        }
        let mut inner = self.inner.write();
        self.changed();
        let at = event.occurred_at;
        inner.now = Some(inner.now.map_or(at, |n| n.max(at)));
        match &event.kind {
            EventKind::NotificationDue(due) if due.escalation.is_none() => {
                let group = due.group.group.clone();
                match inner.open.get(&group).cloned() {
                    None if !due.firing.is_empty() => {
                        let id = format!("inc-{}", event.seq);
                        inner.open.insert(group, id.clone());
                        inner.by_id.insert(
                            id.clone(),
                            Box::new(Incident {
                                id,
                                group: shared_group(&due.group),
                                opened_at: at,
                                firing: FingerprintList::of(&due.firing),
                                joined_since_ack: FingerprintList::default(),
                                ack: None,
                                snoozed_until: None,
                                closed_at: None,
                                closed_by: None,
                                escalation: Progress::default(),
                                paged: BTreeMap::new(),
                                used_tokens: BTreeSet::new(),
                                symptoms: due.symptoms.clone(),
                            }),
                        );
                    }
                    None => {}
                    Some(id) if due.firing.is_empty() => {
                        Incidents::close(&mut inner, &id, at, "alerts resolved");
                    }
                    Some(id) => {
                        if let Some(i) = inner.by_id.get_mut(&id) {
                            i.firing = FingerprintList::of(&due.firing);
                            for s in &due.symptoms {
                                if !i.symptoms.iter().any(|k| k.fingerprint == s.fingerprint) {
                                    i.symptoms.push(s.clone());
                                }
                            }
                            if i.ack.is_some() {
                                for fp in &due.new {
                                    if !i.joined_since_ack.contains_str(fp) {
                                        i.joined_since_ack.push_str(fp);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            EventKind::GroupClosed(g) => {
                if let Some(id) = inner.open.get(&g.group).cloned() {
                    Incidents::close(&mut inner, &id, at, "alerts resolved");
                }
            }
            EventKind::EscalationStepped(step) => {
                if let Some(i) = inner.by_id.get_mut(&step.incident) {
                    let e = &mut i.escalation;
                    e.policy = Some(step.policy.clone());
                    e.steps_taken += 1;
                    match step.action.as_str() {
                        "renotify" => i.joined_since_ack.clear(),
                        "finished" => {
                            e.finished = true;
                            e.next_at = None;
                        }
                        // A false condition ends the pass: the next one
                        // (if `repeat` allows) starts at its first step.
                        "condition_false" => {
                            e.iteration = step.iteration + 1;
                            e.next_step = 0;
                            e.next_at = step.next_at;
                        }
                        _ => {
                            e.iteration = step.iteration;
                            e.next_step = step.step + 1;
                            e.next_at = step.next_at;
                        }
                    }
                    for person in &step.people {
                        let via = i.paged.entry(person.clone()).or_default();
                        for r in &step.receivers {
                            if !via.contains(r) {
                                via.push(r.clone());
                            }
                        }
                    }
                }
            }
            EventKind::IncidentAcknowledged(a) => {
                if let Some(i) = inner.by_id.get_mut(&a.incident) {
                    i.ack = Some(Box::new(Ack {
                        by: a.by.clone(),
                        at,
                        until: a.until,
                    }));
                    i.joined_since_ack.clear();
                    i.used_tokens.extend(a.token.clone());
                }
            }
            EventKind::IncidentUnacknowledged(a) => {
                if let Some(i) = inner.by_id.get_mut(&a.incident) {
                    i.ack = None;
                    i.joined_since_ack.clear();
                    i.used_tokens.extend(a.token.clone());
                    // Escalation resumes with the next step, now.
                    if !i.escalation.finished {
                        i.escalation.next_at = Some(at);
                    }
                }
            }
            EventKind::IncidentSnoozed(a) => {
                if let Some(i) = inner.by_id.get_mut(&a.incident) {
                    i.snoozed_until = a.until;
                    i.used_tokens.extend(a.token.clone());
                }
            }
            EventKind::IncidentResolved(a) => {
                if let Some(i) = inner.by_id.get_mut(&a.incident) {
                    i.used_tokens.extend(a.token.clone());
                }
                let by = a.by.clone();
                Incidents::close(&mut inner, &a.incident, at, &by);
            }
            _ => return,
        }
        // Forget incidents closed long ago (log time, so replay agrees).
        if inner.by_id.len() > inner.open.len() + 256
            && let Some(now) = inner.now
        {
            let horizon = now - chrono::Duration::hours(KEEP_CLOSED_HOURS);
            inner
                .by_id
                .retain(|_, i| i.closed_at.is_none_or(|c| c > horizon));
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
        self.changed();
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.inner.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        let mut inner: Inner = crate::eventlog::projection::restored(state)?;
        // The one copy of each group's names the other views hold too.
        for i in inner.by_id.values_mut() {
            i.group = shared_group(&i.group);
        }
        *self.inner.write() = inner;
        self.changed();
        Ok(())
    }
}
