//! [`Escalator`]: takes the steps of escalation policies for open,
//! unacknowledged incidents, and records each as `escalation.stepped`
//! with the pages (`notification.due` addressed to people) it implies.
//!
//! It decides inside the writer's commit like the dispatcher (see
//! [`crate::eventlog::Decider`]): a notification that opens an incident
//! and the incident's first page are committed together. What is due
//! later (after a `wait`, when a snooze or an acknowledgement lapses) is
//! a durable timer in the log: the `next_at` of the last step, so a
//! restart neither skips nor repeats a step. Never sends, never reads the
//! wall clock: `now` is passed in.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::incident::{Incident, Incidents, KeptIncident};
use super::policy::{Condition, PolicyConfig, StepConfig};
use crate::config::Routing;
use crate::eventlog::event::{EscalationRef, EscalationStep, IncidentAction, Recipient};
use crate::eventlog::{Event, EventKind, NewEvent, NotificationDue};

/// People and who is on call: what a notify step resolves its targets with.
pub trait Directory: Send + Sync {
    /// A person's contact points; `None` if unknown.
    fn person(&self, name: &str) -> Option<Recipient>;
    /// Who a schedule has on call at `at`.
    fn on_call(&self, schedule: &str, at: DateTime<Utc>) -> Vec<String>;
}

/// People and schedules as configured answer who a notify step pages.
impl Directory for super::schedule::OnCall {
    fn person(&self, name: &str) -> Option<Recipient> {
        let p = super::schedule::OnCall::person(self, &super::PersonName::from(name))?;
        let mut mentions = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                mentions.insert(k.to_string(), v.clone());
            }
        };
        if let Some(d) = &p.dingtalk {
            put("dingtalk_mobile", d.mobile.as_ref());
            put("dingtalk_user", d.user_id.as_ref());
        }
        if let Some(w) = &p.wecom {
            put("wecom_user", Some(&w.user_id));
        }
        if let Some(f) = &p.feishu {
            put("feishu_user", f.open_id.as_ref().or(f.user_id.as_ref()));
        }
        if let Some(sl) = &p.slack {
            put("slack_user", Some(&sl.user_id));
        }
        Some(Recipient {
            name: name.to_string(),
            email: p.email.clone(),
            mentions,
        })
    }

    fn on_call(&self, schedule: &str, at: DateTime<Utc>) -> Vec<String> {
        self.schedule(schedule)
            .map(|s| s.on_call(at).into_iter().map(|p| p.0).collect())
            .unwrap_or_default()
    }
}

pub struct Escalator {
    policies: BTreeMap<String, PolicyConfig>,
    routing: Routing,
    directory: Arc<dyn Directory>,
    incidents: Arc<Incidents>,
    /// What the last look at the incidents found, kept until they change
    /// (their generation moves): a timer loop asks at every pass, and most
    /// passes are woken by other stages with no incident changed.
    quiet: parking_lot::Mutex<Quiet>,
}

/// The escalator's answers as of an incidents generation. Not state: a
/// cache of what the fold says, dropped when it moves.
#[derive(Default)]
struct Quiet {
    /// [`Escalator::next_due`], and the generation it was computed at.
    next_due: Option<(u64, Option<DateTime<Utc>>)>,
    /// A pass at this instant found no incident needing one, at this
    /// generation: until the generation moves or `next_due` comes, none
    /// does (every reason for a pass other than time is a change of an
    /// incident, and the times are what `next_due` is the least of).
    idle: Option<(u64, DateTime<Utc>)>,
}

/// The most steps one incident takes in one pass: a policy with no wait
/// between its steps is walked in one go, but never forever.
const MAX_STEPS_PER_PASS: usize = 64;

impl Escalator {
    pub fn new(
        policies: &[PolicyConfig],
        routing: Routing,
        directory: Arc<dyn Directory>,
        incidents: Arc<Incidents>,
    ) -> Self {
        Escalator {
            policies: policies
                .iter()
                .map(|p| (p.name.clone(), p.clone()))
                .collect(),
            routing,
            directory,
            incidents,
            quiet: Default::default(),
        }
    }

    pub fn incidents(&self) -> &Arc<Incidents> {
        &self.incidents
    }

    /// The policy of an incident: the one its escalation began with, or
    /// its route's (children inherit `escalation:`).
    fn policy_of(&self, incident: &Incident) -> Option<&PolicyConfig> {
        self.policy_for(incident.escalation.policy.as_deref(), &incident.group.route)
    }

    /// [`Self::policy_of`] an incident as the view keeps it, read in place.
    fn policy_of_kept(&self, incident: &KeptIncident) -> Option<&PolicyConfig> {
        self.policy_for(
            incident.escalation().policy.as_deref(),
            &incident.group().route,
        )
    }

    /// The policy named `begun_with`, or else route `route`'s.
    fn policy_for(&self, begun_with: Option<&str>, route: &str) -> Option<&PolicyConfig> {
        match begun_with {
            Some(name) => self.policies.get(name),
            None => {
                let tree = self.routing.tree.as_ref()?;
                let name = tree.get(route)?.opts().escalation.as_deref()?;
                self.policies.get(name)
            }
        }
    }

    /// How long an acknowledgement of `incident` holds (its policy's
    /// `ack_timeout`); `None`: until taken back.
    pub fn ack_timeout(&self, incident: &str) -> Option<chrono::Duration> {
        let incident = self.incidents.get(incident)?;
        self.policy_of(&incident)?.ack_timeout.map(|d| d.0)
    }

    /// Whether these just-folded events can make a step due now.
    pub fn wants(&self, events: &[Arc<Event>]) -> bool {
        !self.policies.is_empty()
            && events.iter().any(|e| match &e.kind {
                EventKind::NotificationDue(d) => d.escalation.is_none(),
                EventKind::IncidentAcknowledged(_)
                | EventKind::IncidentUnacknowledged(_)
                | EventKind::IncidentSnoozed(_)
                | EventKind::IncidentResolved(_) => true,
                _ => false,
            })
    }

    /// PagerDuty-style events do to incidents what they do in PagerDuty:
    /// `acknowledge` of an alert acknowledges its open incident, and
    /// `resolve` of its last firing alert resolves it.
    pub fn follow(&self, folded: &[Arc<Event>], now: DateTime<Utc>) -> Vec<NewEvent> {
        let mut out = Vec::new();
        for e in folded.iter().filter(|e| e.source == "pagerduty") {
            let (fingerprint, resolve) = match &e.kind {
                EventKind::AlertAcked { fingerprint, .. } => (fingerprint, false),
                EventKind::AlertResolved(r) => (&r.fingerprint, true),
                _ => continue,
            };
            let Some(incident) = self
                .incidents
                .open()
                .into_iter()
                .find(|i| i.firing.contains_str(fingerprint))
            else {
                continue;
            };
            let action = IncidentAction {
                incident: incident.id.clone(),
                by: "pagerduty-event".into(),
                via: "pagerduty".into(),
                until: None,
                token: None,
                reason: format!(
                    "{} of alert {fingerprint}",
                    if resolve { "resolve" } else { "acknowledge" }
                ),
            };
            let kind = match resolve {
                true if incident.firing.len() == 1 => EventKind::IncidentResolved(action),
                true => continue,
                false if incident.ack.is_none() => {
                    EventKind::IncidentAcknowledged(IncidentAction {
                        until: self
                            .policy_of(&incident)
                            .and_then(|p| p.ack_timeout)
                            .map(|t| now + t.0),
                        ..action
                    })
                }
                false => continue,
            };
            out.push(NewEvent::new(now, "fenghuo", incident.id.clone(), kind));
        }
        out
    }

    /// When a pass must run without any event: the earliest step, snooze
    /// end or acknowledgement lapse.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let generation = self.incidents.generation();
        if let Some((g, due)) = self.quiet.lock().next_due
            && g == generation
        {
            #[cfg(debug_assertions)]
            assert_eq!(
                due,
                self.next_due_by_scan(),
                "kept escalation timer diverged"
            );
            return due;
        }
        let due = self.next_due_by_scan();
        self.quiet.lock().next_due = Some((generation, due));
        due
    }

    /// [`Self::next_due`] from every open incident.
    fn next_due_by_scan(&self) -> Option<DateTime<Utc>> {
        self.incidents.min_open(|i| {
            self.policy_of_kept(i)?;
            if let Some(ack) = i.ack() {
                return ack.until;
            }
            if i.escalation().finished {
                return None;
            }
            let step = i.escalation().next_at;
            match (step, i.snoozed_until()) {
                (Some(s), Some(z)) => Some(s.max(z)),
                (s, z) => s.or(z),
            }
        })
    }

    /// Whether a pass at `now` may decide anything for `incident`: the
    /// same tests `decide_incident` starts with, made before copying it.
    fn needs_pass(incident: &KeptIncident, policy: &PolicyConfig, now: DateTime<Utc>) -> bool {
        match incident.ack() {
            Some(ack) => {
                ack.until.is_some_and(|u| u <= now)
                    || (policy.renotify_acknowledger && incident.has_joined_since_ack())
            }
            None => {
                let progress = incident.escalation();
                !(progress.finished
                    || incident.snoozed_until().is_some_and(|u| u > now)
                    || progress.next_at.is_some_and(|t| t > now))
            }
        }
    }

    /// Every decision due at `now`.
    pub fn decide(&self, now: DateTime<Utc>) -> Vec<NewEvent> {
        let generation = self.incidents.generation();
        let idle = self
            .quiet
            .lock()
            .idle
            .is_some_and(|(g, at)| g == generation && now >= at);
        if idle && self.next_due().is_none_or(|due| due > now) {
            // Tests run debug builds: every pass skipped is checked to
            // decide nothing.
            #[cfg(debug_assertions)]
            {
                let (skipped, _) = self.decide_by_scan(now);
                assert!(
                    skipped.is_empty(),
                    "an escalation pass skipped as idle would have decided {skipped:?}"
                );
            }
            return Vec::new();
        }
        let (out, any_due) = self.decide_by_scan(now);
        // Only a pass that found no incident needing one is kept: whether
        // one that did decides again later may depend on time otherwise
        // than through `next_due` (who is on call).
        self.quiet.lock().idle = (!any_due).then_some((generation, now));
        out
    }

    /// [`Self::decide`] from every open incident, and whether any needed a
    /// pass.
    fn decide_by_scan(&self, now: DateTime<Utc>) -> (Vec<NewEvent>, bool) {
        let mut out = Vec::new();
        let due = self.incidents.open_where(|i| {
            self.policy_of_kept(i)
                .is_some_and(|p| Self::needs_pass(i, p, now))
        });
        let any_due = !due.is_empty();
        for incident in due {
            let Some(policy) = self.policy_of(&incident) else {
                continue;
            };
            self.decide_incident(&incident, policy, now, &mut out);
        }
        (out, any_due)
    }

    fn decide_incident(
        &self,
        incident: &Incident,
        policy: &PolicyConfig,
        now: DateTime<Utc>,
        out: &mut Vec<NewEvent>,
    ) {
        let event = |kind: EventKind| NewEvent::new(now, "fenghuo", incident.id.clone(), kind);
        if let Some(ack) = &incident.ack {
            if ack.until.is_some_and(|u| u <= now) {
                out.push(event(EventKind::IncidentUnacknowledged(IncidentAction {
                    incident: incident.id.clone(),
                    by: "fenghuo".into(),
                    via: "timeout".into(),
                    until: None,
                    token: None,
                    reason: format!("acknowledgement by {} timed out", ack.by),
                })));
            } else if policy.renotify_acknowledger && !incident.joined_since_ack.is_empty() {
                self.renotify(incident, policy, &ack.by, now, out);
            }
            return;
        }
        let progress = &incident.escalation;
        if progress.finished
            || incident.snoozed_until.is_some_and(|u| u > now)
            || progress.next_at.is_some_and(|t| t > now)
        {
            return;
        }
        let mut iteration = progress.iteration;
        let mut index = progress.next_step;
        let mut reason = match (progress.steps_taken, progress.next_at) {
            (0, _) => format!("incident opened ({} firing)", incident.firing.len()),
            (_, Some(_)) => "wait over".to_string(),
            _ => "escalation resumed".to_string(),
        };
        for _ in 0..MAX_STEPS_PER_PASS {
            if index >= policy.steps.len() {
                if iteration < policy.repeat {
                    iteration += 1;
                    index = 0;
                    reason = format!("repeat {} of {}", iteration, policy.repeat);
                    continue;
                }
                out.push(event(EventKind::EscalationStepped(EscalationStep {
                    incident: incident.id.clone(),
                    policy: policy.name.clone(),
                    iteration,
                    step: index,
                    action: "finished".into(),
                    reason: "every step taken; nobody acknowledged".into(),
                    people: Vec::new(),
                    receivers: Vec::new(),
                    next_at: None,
                })));
                return;
            }
            let step =
                |action: &str, reason: String, next_at: Option<DateTime<Utc>>| EscalationStep {
                    incident: incident.id.clone(),
                    policy: policy.name.clone(),
                    iteration,
                    step: index,
                    action: action.into(),
                    reason,
                    people: Vec::new(),
                    receivers: Vec::new(),
                    next_at,
                };
            match &policy.steps[index] {
                StepConfig::Notify(n) => {
                    let mut people: Vec<String> = n.people.clone();
                    for schedule in &n.schedules {
                        for p in self.directory.on_call(schedule, now) {
                            if !people.contains(&p) {
                                people.push(p);
                            }
                        }
                    }
                    let to: Vec<Recipient> = people
                        .iter()
                        .map(|p| {
                            self.directory.person(p).unwrap_or_else(|| Recipient {
                                name: p.clone(),
                                ..Recipient::default()
                            })
                        })
                        .collect();
                    let mut taken = step("notify", reason.clone(), None);
                    taken.people = people;
                    taken.receivers = n.via.clone();
                    out.push(event(EventKind::EscalationStepped(taken)));
                    for receiver in &n.via {
                        out.push(self.page(incident, receiver, &to, iteration, index, now));
                    }
                }
                StepConfig::Wait(d) => {
                    out.push(event(EventKind::EscalationStepped(step(
                        "wait",
                        format!("waiting {}", crate::notify::humanize_since(now - d.0, now)),
                        Some(now + d.0),
                    ))));
                    return;
                }
                StepConfig::OnlyIf(c) => {
                    let (holds, why) = self.condition(c, incident, now);
                    if !holds {
                        // The rest of this pass is skipped. A repetition
                        // starts after as long as a whole pass waits, so a
                        // condition that stays false does not page in a
                        // tight loop (`repeat` requires a wait).
                        let pass: chrono::Duration = policy
                            .steps
                            .iter()
                            .filter_map(|s| match s {
                                StepConfig::Wait(d) => Some(d.0),
                                _ => None,
                            })
                            .sum();
                        let next = (iteration < policy.repeat).then_some(now + pass);
                        out.push(event(EventKind::EscalationStepped(step(
                            "condition_false",
                            why,
                            next,
                        ))));
                        if next.is_none() {
                            out.push(event(EventKind::EscalationStepped(EscalationStep {
                                action: "finished".into(),
                                reason: "condition false on the last pass".into(),
                                step: index + 1,
                                ..step("finished", String::new(), None)
                            })));
                        }
                        return;
                    }
                    out.push(event(EventKind::EscalationStepped(step(
                        "condition",
                        why,
                        None,
                    ))));
                }
            }
            index += 1;
            reason = "next step".to_string();
        }
        tracing::warn!(incident = %incident.id, "escalation took too many steps in one pass");
    }

    fn condition(&self, c: &Condition, incident: &Incident, now: DateTime<Utc>) -> (bool, String) {
        let intervals = &self.routing.intervals;
        let inside = |name: &String| intervals.get(name).is_some_and(|i| i.contains(now));
        if !c.within.is_empty() && !c.within.iter().any(inside) {
            return (false, format!("outside {}", c.within.join(", ")));
        }
        if let Some(name) = c.outside.iter().find(|n| inside(n)) {
            return (false, format!("inside {name}"));
        }
        if let Some(n) = c.alerts_more_than
            && incident.firing.len() <= n
        {
            return (
                false,
                format!("{} firing, not more than {n}", incident.firing.len()),
            );
        }
        (true, "condition holds".into())
    }

    /// A page of `incident` through `receiver`, addressed to `to`.
    fn page(
        &self,
        incident: &Incident,
        receiver: &str,
        to: &[Recipient],
        iteration: u32,
        step: usize,
        now: DateTime<Utc>,
    ) -> NewEvent {
        let mut group = crate::eventlog::GroupRef::clone(&incident.group);
        group.receiver = receiver.to_string();
        NewEvent::new(
            now,
            "fenghuo",
            incident.group.group.clone(),
            EventKind::NotificationDue(NotificationDue {
                group,
                firing: incident.firing.to_strings(),
                resolved: Vec::new(),
                new: Vec::new(),
                repeat: false,
                muted: BTreeMap::new(),
                escalation: Some(EscalationRef {
                    incident: incident.id.clone(),
                    iteration,
                    step,
                }),
                to: to.to_vec(),
                flapping: Vec::new(),
                changes_only: false,
                update_in_place: false,
                symptoms: Vec::new(),
                digest_at: None,
            }),
        )
    }

    /// New alerts joined an acknowledged incident: page the acknowledger
    /// through whatever reached them before (or the first notify step's
    /// receivers if they were never paged).
    fn renotify(
        &self,
        incident: &Incident,
        policy: &PolicyConfig,
        by: &str,
        now: DateTime<Utc>,
        out: &mut Vec<NewEvent>,
    ) {
        let via = incident.paged.get(by).cloned().unwrap_or_else(|| {
            policy
                .steps
                .iter()
                .find_map(|s| match s {
                    StepConfig::Notify(n) => Some(n.via.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        });
        let to = vec![self.directory.person(by).unwrap_or_else(|| Recipient {
            name: by.to_string(),
            ..Recipient::default()
        })];
        let progress = &incident.escalation;
        out.push(NewEvent::new(
            now,
            "fenghuo",
            incident.id.clone(),
            EventKind::EscalationStepped(EscalationStep {
                incident: incident.id.clone(),
                policy: policy.name.clone(),
                iteration: progress.iteration,
                step: progress.next_step,
                action: "renotify".into(),
                reason: format!(
                    "{} new alert(s) joined the acknowledged incident",
                    incident.joined_since_ack.len()
                ),
                people: vec![by.to_string()],
                receivers: via.clone(),
                next_at: progress.next_at,
            }),
        ));
        for receiver in &via {
            let mut page = self.page(
                incident,
                receiver,
                &to,
                progress.iteration,
                progress.next_step,
                now,
            );
            if let EventKind::NotificationDue(d) = &mut page.kind {
                d.new = incident.joined_since_ack.to_strings();
            }
            out.push(page);
        }
    }
}
