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
use super::rules::RuleSet;
use crate::config::Config;
use crate::escalate::escalator::Escalator;
use crate::eventlog::{Decider, Event, EventKind, EventLog, LogError, NewEvent, Projection};
use crate::pipeline::Views;

/// Events read and decoded per page.
const PAGE: u64 = 8192;
/// The most timer passes at one instant (a stage that keeps asking).
const MAX_PASSES_AT_ONCE: usize = 16;
/// Rounds of decisions on decisions, as the writer runs them.
const ROUNDS: usize = 4;

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
}

impl Sim {
    /// Folds one event as the writer would: a new `seq`, unless it expects
    /// a version that no longer holds.
    fn put(
        &mut self,
        ev: NewEvent,
        now: DateTime<Utc>,
        touched: &mut HashMap<String, u64>,
    ) -> Option<Arc<Event>> {
        if let Some(expected) = ev.expected_version {
            let current = touched.get(&ev.key).copied().unwrap_or_else(|| {
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
        touched.insert(ev.key.clone(), self.seq);
        Some(Arc::new(Event {
            seq: self.seq,
            id: ev.id,
            occurred_at: ev.occurred_at,
            recorded_at: now,
            source: ev.source,
            key: ev.key,
            idempotency_key: ev.idempotency_key,
            kind: ev.kind,
        }))
    }

    fn fold(&mut self, events: &[Arc<Event>]) {
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
        }
        self.spent.rules_fold += rules;
        self.spent.other_folds += started.elapsed().saturating_sub(rules);
    }

    /// One batch at `now`: its inputs folded, then rounds of decisions.
    /// The dispatcher decides whenever inputs arrived: live, a pass it
    /// declines inside a commit is run by the dispatch loop right after.
    fn batch(&mut self, inputs: Vec<NewEvent>, now: DateTime<Utc>, asked: bool) -> usize {
        let mut touched = HashMap::new();
        let mut folded: Vec<Arc<Event>> = inputs
            .into_iter()
            .filter_map(|e| self.put(e, now, &mut touched))
            .collect();
        self.fold(&folded);
        let mut decided = 0;
        for round in 0..ROUNDS {
            let asked = asked && round == 0;
            let started = Instant::now();
            let mut out = if asked || self.views.rules.wants(&folded) {
                self.views.rules.decide(now)
            } else {
                Vec::new()
            };
            let ruled = Instant::now();
            self.spent.rules_decide += ruled - started;
            let dispatch = asked || folded.iter().any(|e| super::dispatch::is_input(&e.kind));
            out.extend(Decider::decide(
                &self.dispatcher,
                now,
                self.seq,
                &folded,
                dispatch,
            ));
            let dispatched = Instant::now();
            self.spent.dispatcher += dispatched - ruled;
            if asked || self.escalator.wants(&folded) {
                out.extend(self.escalator.decide(now));
            }
            self.spent.escalator += dispatched.elapsed();
            if out.is_empty() {
                break;
            }
            folded = out
                .into_iter()
                .filter_map(|e| self.put(e, now, &mut touched))
                .collect();
            self.fold(&folded);
            decided += folded.len();
            if now >= self.from && now < self.to {
                for e in &folded {
                    self.tally.count(e);
                }
            }
        }
        decided
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        [
            self.views.rules.next_wake(),
            self.dispatcher.groups().next_due(),
            self.escalator.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the passes timers ask for, up to and including `until`.
    fn timers_until(&mut self, until: DateTime<Utc>) {
        let mut last: Option<DateTime<Utc>> = None;
        let mut at_once = 0;
        while let Some(due) = self.next_due().filter(|d| *d <= until) {
            // A timer is never earlier than the last pass: time only moves on.
            let at = last.map_or(due, |l| due.max(l));
            if last == Some(at) {
                at_once += 1;
                if at_once >= MAX_PASSES_AT_ONCE {
                    break;
                }
            } else {
                at_once = 0;
            }
            self.batch(Vec::new(), at, true);
            self.spent.timer_passes += 1;
            last = Some(at);
            if at >= until {
                break;
            }
        }
    }
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
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<(Report, Spent)> {
    let routing = config
        .routing()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let views = Views::with_rules(rules.clone());
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
        routing,
        // Pages are decided for the people of the candidate config.
        Arc::new(config.oncall().map_err(anyhow::Error::msg)?),
        views.incidents.clone(),
    );
    let projections = views.projections();
    let rules_at = projections
        .iter()
        .position(|p| p.name() == "rules")
        .unwrap_or(usize::MAX);
    let mut sim = Sim {
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
    };
    let mut actual = Tally::default();
    let total = log.last_seq();
    let mut started = false;
    let mut fed = 0u64;
    let mut done = false;

    // One thread reads and decodes pages while this one folds.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Event>, LogError>>(2);
        let reader = scope.spawn(move || {
            let mut after = 0;
            let mut busy = Elapsed::ZERO;
            while after < total {
                let started = Instant::now();
                let page = log.read_range(after, (after + PAGE).min(total));
                busy += started.elapsed();
                let failed = page.is_err();
                if tx.send(page).is_err() || failed {
                    break;
                }
                after += PAGE;
            }
            busy
        });
        let mut pending: Vec<NewEvent> = Vec::new();
        let mut pending_at: Option<DateTime<Utc>> = None;
        let mut rx = rx.into_iter();
        loop {
            let waited = Instant::now();
            let Some(page) = rx.next() else { break };
            sim.spent.waiting_for_pages += waited.elapsed();
            let page = page?;
            progress(page.last().map_or(0, |e| e.seq), total);
            if done {
                continue; // drain: the reader stops at the end
            }
            for event in page {
                let at = event.recorded_at;
                if at >= to {
                    done = true;
                    break;
                }
                if at >= from && at < to && is_decision(&event) {
                    actual.count(&event);
                }
                // The writer's batches: events committed together share
                // their `recorded_at`.
                if pending_at.is_some_and(|p| p != at) && !pending.is_empty() {
                    let batch_at = pending_at.expect("checked");
                    sim.timers_until(batch_at);
                    fed += pending.len() as u64;
                    sim.batch(std::mem::take(&mut pending), batch_at, false);
                }
                if !started {
                    started = true;
                    // The candidate is in force from the start of the log.
                    let loaded = crate::pipeline::rules_loaded(&rules, at, "backtest");
                    sim.batch(vec![loaded], at, false);
                }
                pending_at = Some(at);
                if !is_decision(&event) {
                    pending.push(NewEvent {
                        id: event.id,
                        occurred_at: event.occurred_at,
                        source: event.source,
                        key: event.key,
                        idempotency_key: event.idempotency_key,
                        expected_version: None,
                        kind: event.kind,
                    });
                }
            }
        }
        if let Some(at) = pending_at.filter(|_| !pending.is_empty()) {
            sim.timers_until(at);
            fed += pending.len() as u64;
            sim.batch(std::mem::take(&mut pending), at, false);
        }
        sim.spent.read_decode = reader.join().unwrap_or_default();
        Ok(())
    })?;
    // Time runs on to the end of the period: timers still fire.
    if started {
        sim.timers_until(to - chrono::Duration::nanoseconds(1));
    }

    let spent = sim.spent;
    let candidate = sim.tally;
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
    let report = Report {
        from,
        to,
        events: fed,
        alerts: pair(&actual.alerts, &candidate.alerts),
        gained: candidate.fired.difference(&actual.fired).cloned().collect(),
        lost: actual.fired.difference(&candidate.fired).cloned().collect(),
        pages_by_receiver: pair(&actual.by_receiver, &candidate.by_receiver),
        pages_by_hour: pair(&actual.by_hour, &candidate.by_hour),
        muted_by_receiver: pair(&actual.muted, &candidate.muted),
    };
    Ok((report, spent))
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
