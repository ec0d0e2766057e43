//! Backtest: what a candidate rule set and route tree would have decided
//! over a stretch of the stored log, against what was decided.
//!
//! Owns an isolated copy of the deciding stages (views, rules, dispatcher,
//! escalator) in memory, fed the log's inputs (Kubernetes events, probe
//! results, heartbeats, alerts from outside, silences, acknowledgements) in
//! the batches the writer committed them in, with the time of each batch
//! and each timer as the clock. It must never append to the log, send, or
//! read a clock: the log is opened read-only, decisions stay in memory, and
//! the outbox is not run at all.
//!
//! The recorded decisions (the rules' alerts, the dispatcher's and the
//! escalator's) are what it compares against, so they are not fed: the
//! candidate decides them again. State before `from` is built by running
//! the whole log before it, so windows, `for` and `absent` timers and
//! firing alerts stand at `from` as they would have.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration as Elapsed, Instant};

use chrono::{DateTime, Utc};

use super::dispatch::Dispatcher;
use super::rules::{RuleSet, RulesView};
use crate::config::Config;
use crate::escalate::escalator::Escalator;
use crate::eventlog::{
    CompactText, Decider, Event, EventKind, EventLog, LogError, NewEvent, Projection,
};
use crate::pipeline::Views;

/// Events read and decoded per page.
const PAGE: u64 = 8192;
/// The most timer passes at one instant (a stage that keeps asking).
const MAX_PASSES_AT_ONCE: usize = 16;
/// Rounds of decisions on decisions, as the writer runs them.
const ROUNDS: usize = 4;

/// The instants of a run of timer passes, as each thread paces them: a
/// pass is never earlier than the last one (time only moves on), and no
/// more than [`MAX_PASSES_AT_ONCE`] run at one instant.
#[derive(Default)]
struct PassInstants {
    last: Option<DateTime<Utc>>,
    at_once: usize,
}

impl PassInstants {
    /// The instant of the pass for a timer due at `due`; `None` once the
    /// instant has had its most passes.
    fn next(&mut self, due: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = self.last.map_or(due, |l| due.max(l));
        if self.last == Some(at) {
            self.at_once += 1;
            if self.at_once >= MAX_PASSES_AT_ONCE {
                return None;
            }
        } else {
            self.at_once = 0;
        }
        self.last = Some(at);
        Some(at)
    }
}

/// Actual and candidate counts of one thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pair {
    pub actual: u64,
    pub candidate: u64,
}

/// The difference between what happened and what the candidate would have
/// done, within `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Input events fed to the candidate (the whole log before `to`).
    pub events: u64,
    /// Alerts fired by rules, by alertname.
    pub alerts: BTreeMap<String, Pair>,
    /// Rule alerts (alertname and labels) only the candidate fired.
    pub gained: Vec<String>,
    /// Rule alerts only the recorded rules fired.
    pub lost: Vec<String>,
    /// Due notifications, by receiver.
    pub pages_by_receiver: BTreeMap<String, Pair>,
    /// Due notifications, by hour (UTC, `YYYY-MM-DD HH:00`).
    pub pages_by_hour: BTreeMap<String, Pair>,
    /// Alerts left out of due notifications because a silence or an
    /// inhibition muted them, by receiver.
    pub muted_by_receiver: BTreeMap<String, Pair>,
}

/// Where a backtest's time went, for the benchmark that must say it. Only
/// measured and reported: nothing is decided by it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// The reader thread reading and decoding pages (alongside the rest).
    pub read_decode: Elapsed,
    /// The folding thread waiting for the next page.
    pub waiting_for_pages: Elapsed,
    /// The rule engine folding events (inputs and its own decisions).
    pub rules_fold: Elapsed,
    /// The rule engine evaluating.
    pub rules_decide: Elapsed,
    /// Every other view folding (alerts, groups, incidents, …).
    pub other_folds: Elapsed,
    /// The dispatcher's passes.
    pub dispatcher: Elapsed,
    /// The escalator's passes.
    pub escalator: Elapsed,
    /// Timer passes run between batches.
    pub timer_passes: u64,
    /// With the rules on a thread of their own: the stages after them
    /// waiting for the rules' next step.
    pub waiting_for_rules: Elapsed,
    /// Whether the rules ran on a thread of their own.
    pub two_threads: bool,
}

/// What one side decided.
#[derive(Default)]
struct Tally {
    alerts: BTreeMap<String, u64>,
    fired: BTreeSet<String>,
    by_receiver: BTreeMap<String, u64>,
    by_hour: BTreeMap<String, u64>,
    muted: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts a decision recorded at `at`.
    fn count(&mut self, event: &Event) {
        match &event.kind {
            EventKind::AlertReceived(r) if is_rule_decision(event) => {
                let name = r.labels.get("alertname").unwrap_or_default().to_string();
                *self.alerts.entry(name).or_default() += 1;
                self.fired.insert(super::route::label_set_string(&r.labels));
            }
            EventKind::NotificationDue(n) => {
                *self
                    .by_receiver
                    .entry(n.group.receiver.clone())
                    .or_default() += 1;
                let hour = event.recorded_at.format("%Y-%m-%d %H:00").to_string();
                *self.by_hour.entry(hour).or_default() += 1;
                if !n.muted.is_empty() {
                    *self.muted.entry(n.group.receiver.clone()).or_default() +=
                        n.muted.len() as u64;
                }
            }
            _ => {}
        }
    }
}

fn is_rule_decision(event: &Event) -> bool {
    event.source.starts_with("rule/")
}

/// Whether a stored event is a decision (recorded by a deciding stage, or a
/// delivery outcome), which the candidate decides again, rather than an
/// input it is fed.
fn is_decision(event: &Event) -> bool {
    use EventKind as K;
    match &event.kind {
        K::AlertReceived(_) => is_rule_decision(event),
        // Rules' resolves, and the dispatcher's expiries (`endsAt` passed).
        K::AlertResolved(_) => is_rule_decision(event) || event.source == "fenghuo",
        K::AlertFired { .. }
        | K::AlertFlappingStarted(_)
        | K::AlertFlappingStopped(_)
        | K::GroupScheduled(_)
        | K::GroupClosed(_)
        | K::NotificationDue(_)
        | K::NotificationSent(_)
        | K::NotificationFailed(_)
        | K::NotificationSkipped(_)
        | K::EscalationStepped(_)
        | K::RulesLoaded(_) => true,
        // People acting on incidents are inputs; the escalator's own
        // (an acknowledgement timing out, a PagerDuty event followed) are
        // decisions the candidate makes again.
        K::IncidentAcknowledged(_)
        | K::IncidentUnacknowledged(_)
        | K::IncidentResolved(_)
        | K::IncidentSnoozed(_) => event.source == "fenghuo",
        K::AlertRefreshed { .. }
        | K::AlertAcked { .. }
        | K::SilenceCreated(_)
        | K::SilenceUpdated(_)
        | K::SilenceExpired { .. }
        | K::K8sEvent(_)
        | K::ProbeResult(_)
        | K::HeartbeatReceived(_)
        | K::K8sWatchProgressed(_) => false,
        // Releases a platform records and people's approvals are inputs;
        // what the act stage decides (a rollout seen in Kubernetes,
        // suspicion, hook runs and their outcomes) is decided again.
        K::ReleaseRecorded(_) | K::ReleaseStatusChanged(_) => event.source == "kubernetes",
        K::ReleaseGateDecided(_) | K::RemediationApproved(_) => false,
        K::ReleaseSuspected(_)
        | K::RemediationDue(_)
        | K::RemediationDryRun(_)
        | K::RemediationRefused(_)
        | K::RemediationSucceeded(_)
        | K::RemediationFailed(_) => true,
    }
}

/// The views the candidate's stages read, in the pipeline's order: the
/// others (the outbox, message threads, Kubernetes event and watch indexes,
/// probe states, remediations) are folded live for the API and the stages
/// a backtest does not run, and cost a third of the folding time of a
/// backtest for nothing. Placement and releases are read only by inhibit
/// rules that join `through:` the topology.
fn read_views(views: &Views, routing: &crate::config::Routing) -> Vec<Arc<dyn Projection>> {
    let mut read: Vec<Arc<dyn Projection>> = vec![
        // Versions of alerts, which the dispatcher's decisions expect.
        views.alert_index.clone(),
        views.alerts.clone(),
        views.silences.clone(),
        views.groups.clone(),
        views.flaps.clone(),
        views.incidents.clone(),
        views.rules.clone(),
    ];
    if routing.inhibit_rules.iter().any(|r| r.through().is_some()) {
        read.push(views.releases.clone());
        read.push(views.topology.clone());
    }
    read
}

/// How many threads decide in a backtest (reading and decoding has its own
/// either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// Two when the rules do not read what the stages after them decide
    /// (see [`rules_stand_alone`]), else one.
    #[default]
    Auto,
    /// One thread runs every stage.
    One,
}

/// The kinds the stages after the rules (dispatcher, flap detection,
/// escalator) decide.
const DECIDED_DOWNSTREAM: &[&str] = &[
    "alert.fired",
    "alert.resolved",
    "alert.flapping_started",
    "alert.flapping_stopped",
    "group.scheduled",
    "group.closed",
    "notification.due",
    "escalation.stepped",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.snoozed",
];

/// Whether the rules can run on a thread of their own, ahead of the stages
/// they feed: no rule selects (or is recovered by) a kind those stages
/// decide, so what they decide never reaches the rules. The one way left
/// (a resolve of a rule's alert by someone other than the rule) is caught
/// as it happens, and the backtest is run again on one thread.
pub fn rules_stand_alone(rules: &RuleSet) -> bool {
    !DECIDED_DOWNSTREAM.iter().any(|k| rules.reads_kind(k))
}

/// The `seq` of the last event of each key folded in a batch, for the
/// versions decisions expect. Keyed by the events' own keys (a copy of a
/// key is in place, not an allocation) and hashed with rapidhash: a
/// `String` and SipHash per event were most of numbering them.
type Touched = HashMap<CompactText, u64, rapidhash::fast::GlobalState>;

/// The isolated copy of the deciding stages.
struct Sim {
    views: Views,
    projections: Vec<Arc<dyn Projection>>,
    dispatcher: Dispatcher,
    escalator: Escalator,
    seq: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tally: Tally,
    /// Position of the rules' view in `projections`, timed apart.
    rules_at: usize,
    spent: Spent,
    /// With the rules on their own thread: their next wake as of their
    /// last step (see [`Step`]); and the rules' alerts firing, by
    /// fingerprint, to catch a resolve by anyone else (which the rules
    /// would have folded).
    rules_apart: Option<RulesApart>,
}

/// What the stages after the rules know of the rules running apart.
#[derive(Default)]
struct RulesApart {
    wake: Option<DateTime<Utc>>,
    firing: std::collections::HashSet<String>,
    /// Something happened that the rules would have read: this run cannot
    /// equal a run on one thread.
    diverged: bool,
}

impl Sim {
    /// Folds one event as the writer would: a new `seq`, unless it expects
    /// a version that no longer holds.
    fn put(
        &mut self,
        ev: NewEvent,
        now: DateTime<Utc>,
        touched: &mut Touched,
    ) -> Option<Arc<Event>> {
        if let Some(expected) = ev.expected_version {
            let current = touched.get(ev.key.as_str()).copied().unwrap_or_else(|| {
                self.projections
                    .iter()
                    .find_map(|p| p.version(&ev.key))
                    .unwrap_or(0)
            });
            if current != expected {
                return None;
            }
        }
        self.seq += 1;
        touched.insert(CompactText::from(&ev.key), self.seq);
        Some(Arc::new(Event {
            seq: self.seq,
            id: ev.id.into(),
            occurred_at: ev.occurred_at,
            recorded_at: now,
            source: ev.source.into(),
            key: ev.key.into(),
            idempotency_key: ev.idempotency_key,
            kind: ev.kind,
        }))
    }

    /// [`Self::put`] for an event made before it is folded (inputs, and
    /// the rules' decisions when the rules run on their own thread; none
    /// expects a version): it takes its `seq` here, in the order the
    /// writer would have given it.
    fn put_folded(&mut self, mut event: Arc<Event>, touched: &mut Touched) -> Arc<Event> {
        self.seq += 1;
        touched.insert(event.key.clone(), self.seq);
        match Arc::get_mut(&mut event) {
            Some(e) => e.seq = self.seq,
            None => {
                let mut e = Event::clone(&event);
                e.seq = self.seq;
                event = Arc::new(e);
            }
        }
        event
    }

    fn fold(&mut self, events: &[Arc<Event>]) {
        // Most timer passes fold nothing: no clock reads for them (reading
        // it was ~2% of the run).
        if events.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut rules = Elapsed::ZERO;
        for e in events {
            for (i, p) in self.projections.iter().enumerate() {
                if i == self.rules_at {
                    let at = Instant::now();
                    p.apply(e);
                    rules += at.elapsed();
                } else {
                    p.apply(e);
                }
            }
            if let Some(apart) = &mut self.rules_apart {
                apart.watch(e);
            }
        }
        self.spent.rules_fold += rules;
        self.spent.other_folds += started.elapsed().saturating_sub(rules);
    }

    /// One batch at `now`: its inputs folded, then rounds of decisions.
    /// The dispatcher decides whenever inputs arrived: live, a pass it
    /// declines inside a commit is run by the dispatch loop right after.
    /// With the rules on their own thread, `ruled` is what they decided in
    /// each round (the inputs they folded already).
    fn batch(
        &mut self,
        inputs: Vec<Arc<Event>>,
        now: DateTime<Utc>,
        asked: bool,
        ruled: Option<Vec<Vec<Arc<Event>>>>,
    ) {
        let mut touched = Touched::default();
        let folded: Vec<Arc<Event>> = inputs
            .into_iter()
            .map(|e| self.put_folded(e, &mut touched))
            .collect();
        self.rounds(folded, touched, now, asked, ruled);
    }

    /// The rounds of decisions on decisions after `folded`, as the writer
    /// runs them: the rules decide here unless `ruled` brings what they
    /// decided in each round.
    fn rounds(
        &mut self,
        mut folded: Vec<Arc<Event>>,
        mut touched: Touched,
        now: DateTime<Utc>,
        asked: bool,
        ruled: Option<Vec<Vec<Arc<Event>>>>,
    ) {
        self.fold(&folded);
        let mut ruled = ruled.map(Vec::into_iter);
        for round in 0..ROUNDS {
            let asked = asked && round == 0;
            let started = Instant::now();
            let (from_rules, mut out) = match &mut ruled {
                Some(ruled) => (ruled.next().unwrap_or_default(), Vec::new()),
                None if asked || self.views.rules.wants(&folded) => {
                    (Vec::new(), self.views.rules.decide(now))
                }
                None => (Vec::new(), Vec::new()),
            };
            // With the rules apart, what they decided is only taken here.
            let ruled_at = if ruled.is_some() {
                started
            } else {
                Instant::now()
            };
            self.spent.rules_decide += ruled_at - started;
            let dispatch = asked || folded.iter().any(|e| super::dispatch::is_input(&e.kind));
            out.extend(Decider::decide(
                &self.dispatcher,
                now,
                self.seq,
                &folded,
                dispatch,
            ));
            let dispatched = Instant::now();
            self.spent.dispatcher += dispatched - ruled_at;
            if asked || self.escalator.wants(&folded) {
                out.extend(self.escalator.decide(now));
            }
            self.spent.escalator += dispatched.elapsed();
            if from_rules.is_empty() && out.is_empty() {
                break;
            }
            folded = Vec::with_capacity(from_rules.len() + out.len());
            for e in from_rules {
                folded.push(self.put_folded(e, &mut touched));
            }
            for e in out {
                if let Some(e) = self.put(e, now, &mut touched) {
                    folded.push(e);
                }
            }
            self.fold(&folded);
            if now >= self.from && now < self.to {
                for e in &folded {
                    self.tally.count(e);
                }
            }
        }
        // The rules decided in a round the writer would not have run.
        if let (Some(mut left), Some(apart)) = (ruled, &mut self.rules_apart)
            && left.any(|r| !r.is_empty())
        {
            apart.diverged = true;
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        let rules = match &self.rules_apart {
            Some(apart) => apart.wake,
            None => self.views.rules.next_wake(),
        };
        [
            rules,
            self.dispatcher.groups().next_due(),
            self.escalator.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the passes timers ask for, up to and including `until`.
    fn timers_until(&mut self, until: DateTime<Utc>) {
        let mut passes = PassInstants::default();
        while let Some(due) = self.next_due().filter(|d| *d <= until) {
            let Some(at) = passes.next(due) else { break };
            self.batch(Vec::new(), at, true, None);
            self.spent.timer_passes += 1;
            if at >= until {
                break;
            }
        }
    }

    /// [`Self::timers_until`] with the rules on their own thread: at each
    /// pass the rules ran (the next of `steps`, at that instant) what they
    /// decided is taken in; the other passes are the dispatcher's or the
    /// escalator's, where the rules had nothing due and decide nothing.
    /// Anything else (the rules due at a pass they did not run, or passes
    /// of theirs left over) means the two threads did not run the same
    /// passes: marked diverged.
    fn timers_until_ruled(&mut self, until: DateTime<Utc>, steps: &mut Steps) {
        let mut passes = PassInstants::default();
        while let Some(due) = self.next_due().filter(|d| *d <= until) {
            let Some(at) = passes.next(due) else {
                // The rules' thread counts only its own passes.
                self.diverge();
                return;
            };
            match steps.pass_at(at) {
                Some((ruled, wake)) => {
                    self.batch(Vec::new(), at, true, Some(ruled));
                    self.set_rules_wake(wake);
                }
                None if self.rules_wake().is_some_and(|w| w <= at) => {
                    self.diverge();
                    return;
                }
                None => self.batch(Vec::new(), at, true, Some(Vec::new())),
            }
            self.spent.timer_passes += 1;
            if at >= until {
                break;
            }
        }
        if steps.pass_next() {
            self.diverge();
        }
    }

    fn rules_wake(&self) -> Option<DateTime<Utc>> {
        self.rules_apart.as_ref().and_then(|a| a.wake)
    }

    fn set_rules_wake(&mut self, wake: Option<DateTime<Utc>>) {
        if let Some(apart) = &mut self.rules_apart {
            apart.wake = wake;
        }
    }

    fn diverge(&mut self) {
        if let Some(apart) = &mut self.rules_apart {
            apart.diverged = true;
        }
    }

    fn diverged(&self) -> bool {
        self.rules_apart.as_ref().is_some_and(|a| a.diverged)
    }
}

impl RulesApart {
    /// Keeps the rules' firing alerts, and marks the run diverged at a
    /// resolve of one by anyone else: the rules read it (their alert ends),
    /// which their thread, ahead, did not see at this point.
    fn watch(&mut self, event: &Event) {
        match &event.kind {
            EventKind::AlertReceived(r) if is_rule_decision(event) => {
                self.firing.insert(r.fingerprint.to_string());
            }
            EventKind::AlertResolved(r) => {
                let was_firing = self.firing.remove(&r.fingerprint);
                self.diverged |= was_firing && !is_rule_decision(event);
            }
            _ => {}
        }
    }
}

/// One step of the rules' thread, for the stages after the rules.
enum Step {
    /// Timer passes up to and including `until` start (the writer runs
    /// them before each batch).
    Timers { until: DateTime<Utc> },
    /// A timer pass of the rules at `at`: what they decided in each round,
    /// and their next wake after it.
    Pass {
        at: DateTime<Utc>,
        ruled: Vec<Vec<Arc<Event>>>,
        wake: Option<DateTime<Utc>>,
    },
    /// A batch of inputs at `at`, folded by the rules, with what they
    /// decided in each round and their next wake after it.
    Batch {
        at: DateTime<Utc>,
        inputs: Vec<Arc<Event>>,
        ruled: Vec<Vec<Arc<Event>>>,
        wake: Option<DateTime<Utc>>,
    },
}

/// Steps sent in one message: a pass is small, and a message per pass cost
/// more than the pass.
const STEPS_PER_MESSAGE: usize = 256;
/// Events carried by the steps of one message, at most (about): with
/// [`MESSAGES_AHEAD`], what the rules' thread may be ahead by.
const EVENTS_PER_MESSAGE: usize = 4096;
/// Messages the rules' thread may be ahead by.
const MESSAGES_AHEAD: usize = 4;

/// The steps as the stages after the rules read them, one ahead.
struct Steps {
    rx: std::sync::mpsc::Receiver<Vec<Step>>,
    buffered: std::collections::VecDeque<Step>,
    /// Time spent waiting for the rules' thread.
    waited: Elapsed,
}

impl Steps {
    fn peek(&mut self) -> Option<&Step> {
        if self.buffered.is_empty() {
            let started = Instant::now();
            let steps = self.rx.recv().ok()?;
            self.waited += started.elapsed();
            self.buffered.extend(steps);
        }
        self.buffered.front()
    }

    fn next(&mut self) -> Option<Step> {
        self.peek()?;
        self.buffered.pop_front()
    }

    /// The rules' pass at `at`, if the next step is one.
    #[allow(clippy::type_complexity)]
    fn pass_at(
        &mut self,
        at: DateTime<Utc>,
    ) -> Option<(Vec<Vec<Arc<Event>>>, Option<DateTime<Utc>>)> {
        if !matches!(self.peek(), Some(Step::Pass { at: p, .. }) if *p == at) {
            return None;
        }
        match self.next() {
            Some(Step::Pass { ruled, wake, .. }) => Some((ruled, wake)),
            _ => None,
        }
    }

    fn pass_next(&mut self) -> bool {
        matches!(self.peek(), Some(Step::Pass { .. }))
    }
}

/// The rules on a thread of their own: they fold the inputs and their own
/// decisions, decide at each batch and at their own timers, and send each
/// step to the thread of the stages after them.
struct RulesAhead {
    rules: Arc<RulesView>,
    tx: std::sync::mpsc::SyncSender<Vec<Step>>,
    pending: Vec<Step>,
    /// Events the pending steps carry.
    pending_events: usize,
    /// The other thread stopped (it diverged): nothing more to do.
    stopped: bool,
    /// The rules' next wake, as of their last step.
    wake: Option<DateTime<Utc>>,
    fold: Elapsed,
    decide: Elapsed,
}

impl RulesAhead {
    /// Sends `step` (carrying `events`) with the next message.
    fn send(&mut self, step: Step, events: usize) {
        self.pending.push(step);
        self.pending_events += events;
        if self.pending.len() >= STEPS_PER_MESSAGE || self.pending_events >= EVENTS_PER_MESSAGE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.pending_events = 0;
        if !self.pending.is_empty() && !self.stopped {
            let steps = std::mem::take(&mut self.pending);
            self.stopped = self.tx.send(steps).is_err();
        }
    }

    fn fold(&mut self, events: &[Arc<Event>]) {
        if events.is_empty() {
            return;
        }
        let started = Instant::now();
        for e in events {
            self.rules.apply(e);
        }
        self.fold += started.elapsed();
    }

    /// The rules' part of [`Sim::batch`]: what they decide in each round,
    /// folded back. They run a round while the last one folded something
    /// they read; the stages after them never bring them anything (see
    /// [`rules_stand_alone`]), so a round of theirs that decides nothing
    /// is their last.
    fn rounds(
        &mut self,
        inputs: &[Arc<Event>],
        now: DateTime<Utc>,
        asked: bool,
    ) -> Vec<Vec<Arc<Event>>> {
        self.fold(inputs);
        let mut ruled: Vec<Vec<Arc<Event>>> = Vec::new();
        for round in 0..ROUNDS {
            let last = ruled.last().map_or(inputs, Vec::as_slice);
            let started = Instant::now();
            let decided = if (asked && round == 0) || self.rules.wants(last) {
                self.rules.decide(now)
            } else {
                Vec::new()
            };
            self.decide += started.elapsed();
            if decided.is_empty() {
                break;
            }
            let folded: Vec<Arc<Event>> = decided
                .into_iter()
                .map(|e| Arc::new(unnumbered(e, now)))
                .collect();
            self.fold(&folded);
            ruled.push(folded);
        }
        ruled
    }
}

/// An event as the writer would record it at `now`, before it has a
/// `seq` (the other thread numbers it).
fn unnumbered(e: NewEvent, now: DateTime<Utc>) -> Event {
    Event {
        seq: 0,
        id: e.id.into(),
        occurred_at: e.occurred_at,
        recorded_at: now,
        source: e.source.into(),
        key: e.key.into(),
        idempotency_key: e.idempotency_key,
        kind: e.kind,
    }
}

/// What the reading loop drives: timer passes, then a batch.
trait Feed {
    fn timers_until(&mut self, until: DateTime<Utc>);
    fn batch(&mut self, inputs: Vec<Arc<Event>>, at: DateTime<Utc>);
    /// Nothing more is wanted: the reading stops.
    fn stopped(&self) -> bool {
        false
    }
}

impl Feed for Sim {
    fn timers_until(&mut self, until: DateTime<Utc>) {
        Sim::timers_until(self, until)
    }

    fn batch(&mut self, inputs: Vec<Arc<Event>>, at: DateTime<Utc>) {
        Sim::batch(self, inputs, at, false, None)
    }
}

impl Feed for RulesAhead {
    fn timers_until(&mut self, until: DateTime<Utc>) {
        self.send(Step::Timers { until }, 0);
        let mut passes = PassInstants::default();
        while let Some(due) = self.wake.filter(|d| *d <= until) {
            let Some(at) = passes.next(due) else { break };
            let ruled = self.rounds(&[], at, true);
            let wake = self.rules.next_wake();
            self.wake = wake;
            self.send(Step::Pass { at, ruled, wake }, 0);
            if at >= until || self.stopped {
                break;
            }
        }
    }

    fn batch(&mut self, inputs: Vec<Arc<Event>>, at: DateTime<Utc>) {
        let ruled = self.rounds(&inputs, at, false);
        let wake = self.rules.next_wake();
        self.wake = wake;
        let events = inputs.len() + ruled.iter().map(Vec::len).sum::<usize>();
        self.send(
            Step::Batch {
                at,
                inputs,
                ruled,
                wake,
            },
            events,
        );
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

/// What the reading loop found in the log besides the inputs it fed.
#[derive(Default)]
struct Read {
    /// The recorded decisions within the period.
    actual: Tally,
    /// Inputs fed.
    fed: u64,
    /// Whether anything was fed (the log is not empty before `to`).
    started: bool,
    read_decode: Elapsed,
    waiting_for_pages: Elapsed,
}

/// One page of the log as the reading loop takes it: each event's
/// `recorded_at` (the writer's batches: events committed together share
/// it), with the inputs among them ready to fold (no `seq` yet).
struct Page {
    last_seq: u64,
    events: Vec<(DateTime<Utc>, Option<Arc<Event>>)>,
}

/// Reads the log on a thread of its own, page by page, and feeds its
/// inputs to `feed` in the writer's batches, timers before each; the
/// candidate rule set is recorded in force at the first. The reader
/// thread also tells inputs from decisions, counts the recorded decisions
/// and makes each input an event to fold: work taken off the thread that
/// feeds, which runs the rules.
fn read_and_feed(
    log: &EventLog,
    rules: &RuleSet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    feed: &mut impl Feed,
    progress: &mut impl FnMut(u64, u64),
) -> anyhow::Result<Read> {
    let mut read = Read::default();
    let total = log.last_seq();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Page, LogError>>(2);
        let reader = scope.spawn(move || {
            let mut after = 0;
            let mut busy = Elapsed::ZERO;
            let mut actual = Tally::default();
            while after < total {
                let started = Instant::now();
                let page = log.read_range(after, (after + PAGE).min(total));
                let mut ended = false;
                let page = page.map(|page| Page {
                    last_seq: page.last().map_or(0, |e| e.seq),
                    events: page
                        .into_iter()
                        .take_while(|e| {
                            ended |= e.recorded_at >= to;
                            !ended
                        })
                        .map(|event| {
                            let at = event.recorded_at;
                            if !is_decision(&event) {
                                return (at, Some(Arc::new(Event { seq: 0, ..event })));
                            }
                            if at >= from {
                                actual.count(&event);
                            }
                            (at, None)
                        })
                        .collect(),
                });
                busy += started.elapsed();
                let failed = page.is_err();
                if tx.send(page).is_err() || failed || ended {
                    break;
                }
                after += PAGE;
            }
            (busy, actual)
        });
        let mut pending: Vec<Arc<Event>> = Vec::new();
        let mut pending_at: Option<DateTime<Utc>> = None;
        let mut rx = rx.into_iter();
        loop {
            let waited = Instant::now();
            let Some(page) = rx.next() else { break };
            read.waiting_for_pages += waited.elapsed();
            let page = page?;
            progress(page.last_seq, total);
            if feed.stopped() {
                break; // the reader stops when `rx` is dropped
            }
            for (at, input) in page.events {
                if pending_at.is_some_and(|p| p != at) && !pending.is_empty() {
                    let batch_at = pending_at.expect("checked");
                    feed.timers_until(batch_at);
                    read.fed += pending.len() as u64;
                    feed.batch(std::mem::take(&mut pending), batch_at);
                }
                if !read.started {
                    read.started = true;
                    // The candidate is in force from the start of the log.
                    let loaded = crate::pipeline::rules_loaded(rules, at, "backtest");
                    feed.batch(vec![Arc::new(unnumbered(loaded, at))], at);
                }
                pending_at = Some(at);
                pending.extend(input);
            }
        }
        drop(rx);
        if let Some(at) = pending_at.filter(|_| !pending.is_empty() && !feed.stopped()) {
            feed.timers_until(at);
            read.fed += pending.len() as u64;
            feed.batch(std::mem::take(&mut pending), at);
        }
        (read.read_decode, read.actual) = reader.join().unwrap_or_default();
        Ok(())
    })?;
    // Time runs on to the end of the period: timers still fire.
    if read.started && !feed.stopped() {
        feed.timers_until(to - chrono::Duration::nanoseconds(1));
    }
    Ok(read)
}

/// Replays the log's inputs through `rules` and `config`'s route tree,
/// inhibit rules, time intervals and escalation policies, and compares what
/// they decide within `[from, to)` with what was recorded.
/// `progress(done, total)` is called every page.
pub fn run(
    log: &EventLog,
    rules: Arc<RuleSet>,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<Report> {
    run_measured(log, rules, config, from, to, progress).map(|(report, _)| report)
}

/// [`run`], and where its time went.
pub fn run_measured(
    log: &EventLog,
    rules: Arc<RuleSet>,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<(Report, Spent)> {
    run_on(log, rules, config, from, to, Threads::Auto, progress)
}

/// [`run_measured`] on as many threads as `threads` says. Both ways
/// decide the same (a run on two threads that finds the rules read what
/// came after them is run again on one).
pub fn run_on(
    log: &EventLog,
    rules: Arc<RuleSet>,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    threads: Threads,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<(Report, Spent)> {
    if threads == Threads::Auto && rules_stand_alone(&rules) {
        if let Some(done) = two_threads(log, rules.clone(), config, from, to, &mut progress)? {
            return Ok(done);
        }
        tracing::info!("backtest: the rules read what came after them; run again on one thread");
    }
    let mut sim = sim(log, rules.clone(), config, from, to, None)?;
    let read = read_and_feed(log, &rules, from, to, &mut sim, &mut progress)?;
    sim.spent.read_decode = read.read_decode;
    sim.spent.waiting_for_pages = read.waiting_for_pages;
    let report = report(from, to, read.fed, &read.actual, &sim.tally);
    Ok((report, sim.spent))
}

/// The stages a backtest runs, over views of their own; the rules' view
/// left out of the folds when `rules_apart` (they run on another thread).
fn sim(
    log: &EventLog,
    rules: Arc<RuleSet>,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rules_apart: Option<RulesApart>,
) -> anyhow::Result<Sim> {
    let routing = config
        .routing()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let views = Views::with_rules(rules);
    let dispatcher = Dispatcher::new(
        log.clone(),
        routing.clone(),
        views.alerts.clone(),
        views.silences.clone(),
        views.groups.clone(),
        views.flaps.clone(),
    )
    .with_topology(views.topology.clone(), views.releases.clone());
    let escalator = Escalator::new(
        &config.escalation_policies,
        routing.clone(),
        // Pages are decided for the people of the candidate config.
        Arc::new(config.oncall().map_err(anyhow::Error::msg)?),
        views.incidents.clone(),
    );
    let mut projections = read_views(&views, &routing);
    if rules_apart.is_some() {
        projections.retain(|p| p.name() != "rules");
    }
    let rules_at = projections
        .iter()
        .position(|p| p.name() == "rules")
        .unwrap_or(usize::MAX);
    Ok(Sim {
        projections,
        rules_at,
        spent: Spent::default(),
        views,
        dispatcher,
        escalator,
        seq: 0,
        from,
        to,
        tally: Tally::default(),
        rules_apart,
    })
}

/// The backtest with the rules on one thread and the stages after them on
/// another; `None` if it diverged from what one thread decides (the rules
/// would have read something decided after them).
fn two_threads(
    log: &EventLog,
    rules: Arc<RuleSet>,
    config: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: &mut impl FnMut(u64, u64),
) -> anyhow::Result<Option<(Report, Spent)>> {
    let mut sim = sim(
        log,
        rules.clone(),
        config,
        from,
        to,
        Some(RulesApart::default()),
    )?;
    let rules_view = sim.views.rules.clone();
    // A few thousand steps ahead at most: enough to ride out the
    // difference in pace between the two threads.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Step>>(MESSAGES_AHEAD);
    let mut ahead = RulesAhead {
        rules: rules_view,
        tx,
        pending: Vec::new(),
        pending_events: 0,
        stopped: false,
        wake: None,
        fold: Elapsed::ZERO,
        decide: Elapsed::ZERO,
    };
    let (read, (rules_fold, rules_decide), (mut sim, waited)) = std::thread::scope(|scope| {
        let downstream = scope.spawn(move || {
            let mut steps = Steps {
                rx,
                buffered: Default::default(),
                waited: Elapsed::ZERO,
            };
            while let Some(step) = steps.next() {
                match step {
                    Step::Timers { until } => sim.timers_until_ruled(until, &mut steps),
                    Step::Batch {
                        at,
                        inputs,
                        ruled,
                        wake,
                    } => {
                        sim.batch(inputs, at, false, Some(ruled));
                        sim.set_rules_wake(wake);
                    }
                    // A pass outside the timers of a batch.
                    Step::Pass { .. } => sim.diverge(),
                }
                if sim.diverged() {
                    break; // dropping `steps` stops the rules' thread
                }
            }
            (sim, steps.waited)
        });
        let read = read_and_feed(log, &rules, from, to, &mut ahead, progress);
        ahead.flush();
        let spent = (ahead.fold, ahead.decide);
        drop(ahead); // closes the channel: the stages' thread finishes
        let downstream = downstream
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, spent, downstream)
    });
    let read = read?;
    if sim.diverged() {
        return Ok(None);
    }
    sim.spent.read_decode = read.read_decode;
    sim.spent.waiting_for_pages = read.waiting_for_pages;
    sim.spent.rules_fold = rules_fold;
    sim.spent.rules_decide = rules_decide;
    sim.spent.waiting_for_rules = waited;
    sim.spent.two_threads = true;
    let report = report(from, to, read.fed, &read.actual, &sim.tally);
    Ok(Some((report, sim.spent)))
}

/// The difference between what was recorded and what the candidate decided.
fn report(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    fed: u64,
    actual: &Tally,
    candidate: &Tally,
) -> Report {
    let pair = |a: &BTreeMap<String, u64>, c: &BTreeMap<String, u64>| {
        let mut out: BTreeMap<String, Pair> = BTreeMap::new();
        for (k, n) in a {
            out.entry(k.clone()).or_default().actual = *n;
        }
        for (k, n) in c {
            out.entry(k.clone()).or_default().candidate = *n;
        }
        out
    };
    Report {
        from,
        to,
        events: fed,
        alerts: pair(&actual.alerts, &candidate.alerts),
        gained: candidate.fired.difference(&actual.fired).cloned().collect(),
        lost: actual.fired.difference(&candidate.fired).cloned().collect(),
        pages_by_receiver: pair(&actual.by_receiver, &candidate.by_receiver),
        pages_by_hour: pair(&actual.by_hour, &candidate.by_hour),
        muted_by_receiver: pair(&actual.muted, &candidate.muted),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "backtest {} .. {} ({} input events replayed)",
            self.from.to_rfc3339(),
            self.to.to_rfc3339(),
            self.events
        )?;
        let table = |f: &mut fmt::Formatter<'_>, title: &str, rows: &BTreeMap<String, Pair>| {
            writeln!(f, "\n{title}")?;
            if rows.is_empty() {
                return writeln!(f, "  (none)");
            }
            writeln!(
                f,
                "  {:<40} {:>8} {:>10} {:>7}",
                "", "actual", "candidate", "diff"
            )?;
            for (k, p) in rows {
                let diff = p.candidate as i64 - p.actual as i64;
                writeln!(
                    f,
                    "  {:<40} {:>8} {:>10} {:>+7}",
                    if k.is_empty() { "(none)" } else { k },
                    p.actual,
                    p.candidate,
                    diff
                )?;
            }
            Ok(())
        };
        table(f, "rule alerts fired, by alertname", &self.alerts)?;
        writeln!(f, "\nalerts gained ({}):", self.gained.len())?;
        for a in &self.gained {
            writeln!(f, "  + {a}")?;
        }
        writeln!(f, "alerts lost ({}):", self.lost.len())?;
        for a in &self.lost {
            writeln!(f, "  - {a}")?;
        }
        table(
            f,
            "pages (notification.due), by receiver",
            &self.pages_by_receiver,
        )?;
        table(f, "pages, by hour (UTC)", &self.pages_by_hour)?;
        table(
            f,
            "alerts muted in pages (silenced or inhibited), by receiver",
            &self.muted_by_receiver,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::event::IncidentAction;

    /// (who recorded an incident action, whether the candidate decides it
    /// again rather than being fed it).
    #[test]
    fn incident_actions_are_inputs_from_people_and_decisions_from_fenghuo() {
        let action = IncidentAction {
            incident: "inc-1".into(),
            by: "alice".into(),
            via: "api".into(),
            until: None,
            token: None,
            reason: String::new(),
        };
        for (source, decision) in [("api", false), ("fenghuo", true)] {
            let event = Event {
                seq: 1,
                id: "x".into(),
                occurred_at: chrono::DateTime::UNIX_EPOCH,
                recorded_at: chrono::DateTime::UNIX_EPOCH,
                source: source.into(),
                key: "inc-1".into(),
                idempotency_key: None,
                kind: EventKind::IncidentUnacknowledged(action.clone()),
            };
            assert_eq!(is_decision(&event), decision, "{source}");
        }
    }
}
