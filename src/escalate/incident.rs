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
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::evaluate::dispatch::{GroupById, shared_group};
use crate::evaluate::fingerprints::FingerprintList;
use crate::eventlog::{Event, EventKind, GroupRef, NotificationDue, Projection};

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

/// An incident as [`Incidents`] keeps it (tens of thousands open at once,
/// most never acknowledged, snoozed or escalated): what every incident
/// has inline, everything only later events set in one box, absent until
/// one does. Read by the escalator's scans in place; everyone else gets
/// the plain [`Incident`] it stands for ([`KeptIncident::to_incident`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeptIncident {
    /// The `seq` of the notification that opened it: its id is `inc-` and
    /// this number.
    seq: u64,
    group: Arc<GroupRef>,
    opened_at: DateTime<Utc>,
    firing: FingerprintList,
    later: Option<Box<Later>>,
}

/// The fields of an [`Incident`] a fresh, unacknowledged one leaves at
/// their defaults (~200 bytes, where a fresh incident needs ~60).
#[derive(Debug, Clone, Default, PartialEq)]
struct Later {
    joined_since_ack: FingerprintList,
    ack: Option<Ack>,
    snoozed_until: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    closed_by: Option<String>,
    escalation: Progress,
    paged: BTreeMap<String, Vec<String>>,
    used_tokens: BTreeSet<String>,
    symptoms: Vec<crate::eventlog::Symptom>,
}

/// The progress of an incident no step was taken for.
static NO_PROGRESS: Progress = Progress {
    policy: None,
    iteration: 0,
    next_step: 0,
    next_at: None,
    finished: false,
    steps_taken: 0,
};

/// The `seq` in incident id `id`, if it is one this view hands out
/// (`inc-` and the number as `format!` writes it: no sign, no leading
/// zeros).
fn seq_of(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("inc-")?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

fn id_of(seq: u64) -> String {
    format!("inc-{seq}")
}

impl KeptIncident {
    fn opened(seq: u64, due: &NotificationDue, at: DateTime<Utc>) -> Self {
        let mut kept = KeptIncident {
            seq,
            group: shared_group(&due.group),
            opened_at: at,
            firing: FingerprintList::of(&due.firing),
            later: None,
        };
        if !due.symptoms.is_empty() {
            kept.later_mut().symptoms = due.symptoms.clone();
        }
        kept
    }

    pub fn group(&self) -> &GroupRef {
        &self.group
    }

    pub fn ack(&self) -> Option<&Ack> {
        self.later.as_ref()?.ack.as_ref()
    }

    pub fn snoozed_until(&self) -> Option<DateTime<Utc>> {
        self.later.as_ref()?.snoozed_until
    }

    pub fn escalation(&self) -> &Progress {
        self.later.as_ref().map_or(&NO_PROGRESS, |l| &l.escalation)
    }

    pub fn has_joined_since_ack(&self) -> bool {
        self.later
            .as_ref()
            .is_some_and(|l| !l.joined_since_ack.is_empty())
    }

    fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.later.as_ref()?.closed_at
    }

    fn is_open(&self) -> bool {
        self.closed_at().is_none()
    }

    /// The box of later fields, created empty if absent; [`Self::tidy`]
    /// drops it again if it is left empty.
    fn later_mut(&mut self) -> &mut Later {
        self.later.get_or_insert_with(Default::default)
    }

    /// One shape for one state: no box of defaults (a replay, a restore
    /// and the live fold end equal however they got there).
    fn tidy(&mut self) {
        if self
            .later
            .as_deref()
            .is_some_and(|l| *l == Later::default())
        {
            self.later = None;
        }
    }

    /// The plain incident this stands for.
    pub fn to_incident(&self) -> Incident {
        let later = self.later.as_deref();
        Incident {
            id: id_of(self.seq),
            group: self.group.clone(),
            opened_at: self.opened_at,
            firing: self.firing.clone(),
            joined_since_ack: later
                .map(|l| l.joined_since_ack.clone())
                .unwrap_or_default(),
            ack: later.and_then(|l| l.ack.clone()).map(Box::new),
            snoozed_until: later.and_then(|l| l.snoozed_until),
            closed_at: later.and_then(|l| l.closed_at),
            closed_by: later.and_then(|l| l.closed_by.clone()),
            escalation: later.map(|l| l.escalation.clone()).unwrap_or_default(),
            paged: later.map(|l| l.paged.clone()).unwrap_or_default(),
            used_tokens: later.map(|l| l.used_tokens.clone()).unwrap_or_default(),
            symptoms: later.map(|l| l.symptoms.clone()).unwrap_or_default(),
        }
    }

    /// What `incident` stands for, if its id is one this view hands out.
    fn of_incident(incident: Incident) -> Option<Self> {
        let Incident {
            id,
            group,
            opened_at,
            firing,
            joined_since_ack,
            ack,
            snoozed_until,
            closed_at,
            closed_by,
            escalation,
            paged,
            used_tokens,
            symptoms,
        } = incident;
        let mut kept = KeptIncident {
            seq: seq_of(&id)?,
            group: shared_group(&group),
            opened_at,
            firing,
            later: Some(Box::new(Later {
                joined_since_ack,
                ack: ack.map(|a| *a),
                snoozed_until,
                closed_at,
                closed_by,
                escalation,
                paged,
                used_tokens,
                symptoms,
            })),
        };
        kept.tidy();
        Some(kept)
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

/// The state. Its snapshot has the shape of the plain incidents by id and
/// the open ones by group (`views-5`): see the `Serialize` impl.
#[derive(Default, Clone)]
struct Inner {
    /// By the `seq` in their id. Unboxed: a kept incident is small.
    by_seq: HashMap<u64, KeptIncident>,
    /// Group → the `seq` of its open incident: derived from `by_seq` (the
    /// incidents not closed), kept for the lookup by group. Keyed by the
    /// incident's shared group, not a copy of its id.
    open: HashMap<GroupById, u64>,
    now: Option<DateTime<Utc>>,
}

/// The snapshot's shape (the state before incidents were kept compact).
#[derive(Deserialize)]
struct Stored {
    by_id: HashMap<String, Incident>,
    #[allow(dead_code)] // derived again from `by_id`
    open: HashMap<String, String>,
    now: Option<DateTime<Utc>>,
}

impl Serialize for Inner {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};
        struct ById<'a>(&'a HashMap<u64, KeptIncident>);
        impl Serialize for ById<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (seq, kept) in self.0 {
                    map.serialize_entry(&id_of(*seq), &kept.to_incident())?;
                }
                map.end()
            }
        }
        struct Open<'a>(&'a HashMap<GroupById, u64>);
        impl Serialize for Open<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (group, seq) in self.0 {
                    map.serialize_entry(group.id(), &id_of(*seq))?;
                }
                map.end()
            }
        }
        let mut s = serializer.serialize_struct("Inner", 3)?;
        s.serialize_field("by_id", &ById(&self.by_seq))?;
        s.serialize_field("open", &Open(&self.open))?;
        s.serialize_field("now", &self.now)?;
        s.end()
    }
}

impl TryFrom<Stored> for Inner {
    type Error = String;

    fn try_from(stored: Stored) -> Result<Self, String> {
        let mut inner = Inner {
            now: stored.now,
            ..Inner::default()
        };
        for (id, incident) in stored.by_id {
            let kept = KeptIncident::of_incident(incident)
                .ok_or_else(|| format!("incident id {id:?} is not one this view hands out"))?;
            if id_of(kept.seq) != id {
                return Err(format!("incident {id:?} is filed under another id"));
            }
            if kept.is_open()
                && let Some(other) = inner.open.insert(GroupById(kept.group.clone()), kept.seq)
            {
                return Err(format!(
                    "group {:?} has two open incidents, {} and {id}",
                    kept.group.group,
                    id_of(other)
                ));
            }
            inner.by_seq.insert(kept.seq, kept);
        }
        Ok(inner)
    }
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
        let seq = seq_of(id)?;
        self.inner
            .read()
            .by_seq
            .get(&seq)
            .map(KeptIncident::to_incident)
    }

    /// The open incident of a group, if any.
    pub fn of_group(&self, group: &str) -> Option<Incident> {
        let inner = self.inner.read();
        inner
            .open
            .get(group)
            .and_then(|seq| inner.by_seq.get(seq))
            .map(KeptIncident::to_incident)
    }

    /// Open incidents, oldest first.
    pub fn open(&self) -> Vec<Incident> {
        self.open_where(|_| true)
    }

    /// Open incidents `keep` selects, oldest first. Only those kept are
    /// copied: a pass over hundreds of open incidents that acts on a few
    /// must not clone them all.
    pub fn open_where(&self, mut keep: impl FnMut(&KeptIncident) -> bool) -> Vec<Incident> {
        let inner = self.inner.read();
        let mut v: Vec<&KeptIncident> = inner
            .open
            .values()
            .filter_map(|seq| inner.by_seq.get(seq))
            .filter(|i| keep(i))
            .collect();
        // Ids are `inc-<seq>`: the order of (opened_at, id) as strings.
        v.sort_by_cached_key(|i| (i.opened_at, id_of(i.seq)));
        v.into_iter().map(KeptIncident::to_incident).collect()
    }

    /// The least of `f` over the open incidents, read in place.
    pub fn min_open<T: Ord>(&self, f: impl FnMut(&KeptIncident) -> Option<T>) -> Option<T> {
        let inner = self.inner.read();
        inner
            .open
            .values()
            .filter_map(|seq| inner.by_seq.get(seq))
            .filter_map(f)
            .min()
    }

    /// Every incident still remembered, newest first.
    pub fn all(&self) -> Vec<Incident> {
        let mut v: Vec<Incident> = self
            .inner
            .read()
            .by_seq
            .values()
            .map(KeptIncident::to_incident)
            .collect();
        v.sort_by(|a, b| (b.opened_at, &b.id).cmp(&(a.opened_at, &a.id)));
        v
    }

    fn close(inner: &mut Inner, seq: u64, at: DateTime<Utc>, by: &str) {
        if let Some(i) = inner.by_seq.get_mut(&seq)
            && i.is_open()
        {
            let later = i.later_mut();
            later.closed_at = Some(at);
            later.closed_by = Some(by.to_string());
            later.escalation.next_at = None;
            inner.open.remove(i.group.group.as_str());
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
                match inner.open.get(due.group.group.as_str()).copied() {
                    None if !due.firing.is_empty() => {
                        let kept = KeptIncident::opened(event.seq, due, at);
                        inner.open.insert(GroupById(kept.group.clone()), kept.seq);
                        inner.by_seq.insert(kept.seq, kept);
                    }
                    None => {}
                    Some(seq) if due.firing.is_empty() => {
                        Incidents::close(&mut inner, seq, at, "alerts resolved");
                    }
                    Some(seq) => {
                        if let Some(i) = inner.by_seq.get_mut(&seq) {
                            i.firing = FingerprintList::of(&due.firing);
                            let acknowledged = i.ack().is_some();
                            if !due.symptoms.is_empty() || acknowledged {
                                let later = i.later_mut();
                                for s in &due.symptoms {
                                    if !later
                                        .symptoms
                                        .iter()
                                        .any(|k| k.fingerprint == s.fingerprint)
                                    {
                                        later.symptoms.push(s.clone());
                                    }
                                }
                                if acknowledged {
                                    for fp in &due.new {
                                        if !later.joined_since_ack.contains_str(fp) {
                                            later.joined_since_ack.push_str(fp);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            EventKind::GroupClosed(g) => {
                if let Some(seq) = inner.open.get(g.group.as_str()).copied() {
                    Incidents::close(&mut inner, seq, at, "alerts resolved");
                }
            }
            EventKind::EscalationStepped(step) => {
                if let Some(i) = seq_of(&step.incident).and_then(|seq| inner.by_seq.get_mut(&seq)) {
                    let later = i.later_mut();
                    let e = &mut later.escalation;
                    e.policy = Some(step.policy.clone());
                    e.steps_taken += 1;
                    match step.action.as_str() {
                        "renotify" => later.joined_since_ack.clear(),
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
                        let via = later.paged.entry(person.clone()).or_default();
                        for r in &step.receivers {
                            if !via.contains(r) {
                                via.push(r.clone());
                            }
                        }
                    }
                }
            }
            EventKind::IncidentAcknowledged(a) => {
                if let Some(i) = seq_of(&a.incident).and_then(|seq| inner.by_seq.get_mut(&seq)) {
                    let later = i.later_mut();
                    later.ack = Some(Ack {
                        by: a.by.clone(),
                        at,
                        until: a.until,
                    });
                    later.joined_since_ack.clear();
                    later.used_tokens.extend(a.token.clone());
                }
            }
            EventKind::IncidentUnacknowledged(a) => {
                if let Some(i) = seq_of(&a.incident).and_then(|seq| inner.by_seq.get_mut(&seq)) {
                    let later = i.later_mut();
                    later.ack = None;
                    later.joined_since_ack.clear();
                    later.used_tokens.extend(a.token.clone());
                    // Escalation resumes with the next step, now.
                    if !later.escalation.finished {
                        later.escalation.next_at = Some(at);
                    }
                    i.tidy();
                }
            }
            EventKind::IncidentSnoozed(a) => {
                if let Some(i) = seq_of(&a.incident).and_then(|seq| inner.by_seq.get_mut(&seq)) {
                    let later = i.later_mut();
                    later.snoozed_until = a.until;
                    later.used_tokens.extend(a.token.clone());
                    i.tidy();
                }
            }
            EventKind::IncidentResolved(a) => {
                if let Some(seq) = seq_of(&a.incident) {
                    if let Some(i) = inner.by_seq.get_mut(&seq) {
                        i.later_mut().used_tokens.extend(a.token.clone());
                        i.tidy();
                    }
                    Incidents::close(&mut inner, seq, at, &a.by);
                }
            }
            _ => return,
        }
        // Forget incidents closed long ago (log time, so replay agrees).
        if inner.by_seq.len() > inner.open.len() + 256
            && let Some(now) = inner.now
        {
            let horizon = now - chrono::Duration::hours(KEEP_CLOSED_HOURS);
            inner
                .by_seq
                .retain(|_, i| i.closed_at().is_none_or(|c| c > horizon));
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
        let stored: Stored = crate::eventlog::projection::restored(state)?;
        // (Each group becomes the one copy the other views hold too.)
        *self.inner.write() = Inner::try_from(stored)?;
        self.changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap()
    }

    fn event(seq: u64, minute: u32, kind: serde_json::Value) -> Event {
        let mut e = serde_json::json!({
            "seq": seq, "id": format!("e{seq}"), "occurred_at": t(minute),
            "recorded_at": t(minute), "source": "test", "key": "k",
        });
        e.as_object_mut()
            .unwrap()
            .extend(kind.as_object().unwrap().clone());
        serde_json::from_value(e).unwrap()
    }

    fn due(group: &str, firing: &[&str]) -> serde_json::Value {
        serde_json::json!({"kind": "notification.due", "payload": {
            "group": group, "route": "r", "receiver": "sink", "group_key": "{}:{}",
            "group_labels": {}, "firing": firing, "resolved": [], "new": firing,
            "repeat": false,
        }})
    }

    fn action(kind: &str, incident: &str) -> serde_json::Value {
        serde_json::json!({"kind": kind, "payload": {
            "incident": incident, "by": "ana", "via": "api",
        }})
    }

    fn has_box(incidents: &Incidents, id: &str) -> bool {
        incidents.inner.read().by_seq[&seq_of(id).unwrap()]
            .later
            .is_some()
    }

    #[test]
    fn incident_ids_are_read_back_only_in_the_form_they_are_written() {
        let table = [
            ("inc-7", Some(7)),
            ("inc-0", Some(0)),
            ("inc-18446744073709551615", Some(u64::MAX)),
            ("inc-007", None), // `inc-7` is another id
            ("inc-+7", None),
            ("inc-", None),
            ("inc-7x", None),
            ("7", None),
            ("INC-7", None),
            ("inc-18446744073709551616", None),
        ];
        for (id, seq) in table {
            assert_eq!(seq_of(id), seq, "{id}");
            if let Some(seq) = seq {
                assert_eq!(id_of(seq), id);
            }
        }
    }

    /// A timeline: a fresh incident keeps only its inline fields; an
    /// acknowledgement boxes the rest, taking it back leaves escalation
    /// progress (still boxed); resolving closes it. What readers get is
    /// the plain incident throughout.
    #[test]
    fn an_unacknowledged_incident_keeps_no_box_of_later_fields() {
        let incidents = Incidents::new();
        incidents.apply(&event(10, 0, due("g1", &["00000000000000a1"])));
        incidents.apply(&event(11, 0, due("g2", &["00000000000000b2"])));
        let fresh = incidents.of_group("g1").unwrap();
        assert_eq!(fresh.id, "inc-10");
        assert_eq!(fresh.status(t(0)), "open");
        assert_eq!(fresh.escalation, Progress::default());
        assert!(!has_box(&incidents, "inc-10"));

        incidents.apply(&event(
            12,
            1,
            due("g1", &["00000000000000a1", "00000000000000c3"]),
        ));
        assert_eq!(incidents.get("inc-10").unwrap().firing.len(), 2);
        assert!(
            !has_box(&incidents, "inc-10"),
            "a repeat sets nothing later"
        );

        incidents.apply(&event(13, 2, action("incident.acknowledged", "inc-10")));
        let acked = incidents.get("inc-10").unwrap();
        assert_eq!(acked.status(t(2)), "acknowledged");
        assert_eq!(acked.ack.as_ref().unwrap().by, "ana");
        assert!(has_box(&incidents, "inc-10"));

        incidents.apply(&event(14, 3, action("incident.unacknowledged", "inc-10")));
        let unacked = incidents.get("inc-10").unwrap();
        assert_eq!(unacked.status(t(3)), "open");
        assert_eq!(unacked.escalation.next_at, Some(t(3)));

        incidents.apply(&event(15, 4, action("incident.resolved", "inc-10")));
        let resolved = incidents.get("inc-10").unwrap();
        assert_eq!(resolved.closed_at, Some(t(4)));
        assert_eq!(resolved.closed_by.as_deref(), Some("ana"));
        assert!(incidents.of_group("g1").is_none());
        let open: Vec<String> = incidents.open().into_iter().map(|i| i.id).collect();
        assert_eq!(open, ["inc-11"]);
        assert!(!has_box(&incidents, "inc-11"));
        assert_eq!(incidents.get("inc-010"), None);
    }

    /// The snapshot keeps the shape of the plain incidents by id and the
    /// open ones by group; restoring it gives back the same state, the
    /// open map derived from the incidents.
    #[test]
    fn the_snapshot_is_the_plain_incidents_and_restores_exactly() {
        let incidents = Incidents::new();
        incidents.apply(&event(10, 0, due("g1", &["00000000000000a1"])));
        incidents.apply(&event(11, 0, due("g2", &["not-a-fingerprint"])));
        incidents.apply(&event(12, 1, action("incident.acknowledged", "inc-11")));
        incidents.apply(&event(13, 2, due("g1", &[])));
        let json = (incidents.snapshot().unwrap())();
        assert_eq!(json["open"], serde_json::json!({"g2": "inc-11"}));
        assert_eq!(json["by_id"]["inc-11"]["ack"]["by"], "ana");
        assert_eq!(
            json["by_id"]["inc-11"]["firing"],
            serde_json::json!(["not-a-fingerprint"])
        );
        assert_eq!(json["by_id"]["inc-10"]["closed_by"], "alerts resolved");
        let plain: Incident = serde_json::from_value(json["by_id"]["inc-10"].clone()).unwrap();
        assert_eq!(plain, incidents.get("inc-10").unwrap());

        let restored = Incidents::new();
        restored.restore(json.clone()).unwrap();
        assert_eq!(restored.all(), incidents.all());
        assert_eq!(restored.open(), incidents.open());
        assert_eq!(restored.of_group("g2"), incidents.of_group("g2"));
        // The same kept form, boxes included, not only the same readings.
        assert_eq!(restored.inner.read().by_seq, incidents.inner.read().by_seq);
        assert_eq!(restored.inner.read().open, incidents.inner.read().open);
        assert_eq!((restored.snapshot().unwrap())(), json);

        // An id this view never hands out is refused, not read as another.
        let mut foreign = json.clone();
        let by_id = foreign["by_id"].as_object_mut().unwrap();
        let i = by_id.remove("inc-11").unwrap();
        by_id.insert("inc-011".into(), i);
        assert!(Incidents::new().restore(foreign).is_err());
    }
}
