//! [`RulesView`]: the running rule engine, kept current by the log writer
//! and evaluated by it.
//!
//! Owns the engine of the rule set in force: as a [`Projection`] it folds
//! every event the rules read and the rules' own alerts; as the first of
//! the deciding stages (see `crate::pipeline::Stages`) it evaluates when a
//! batch brings events its rules read, or when a pass is asked for (timers:
//! `for`, `absent`, windows running out), and hands its decisions back to
//! the writer, which commits them with the events that caused them. It
//! never appends, sends or reads a clock; the time is the writer's.
//!
//! A set decides only once the log records it in force (a `rules.loaded`
//! with its hash), and `absent` rules without `group_by` count from then:
//! so a restart that folds the log continues their timers instead of
//! starting them over, and replay gives what live gave.
//!
//! On reload a new view is built by folding the log through the new set,
//! then [`RulesView::adopt`] catches it up with what this one folded
//! meanwhile and takes its place, between two folds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::RuleSet;
use super::engine::{Decision, EngineState, RuleEngine};
use crate::eventlog::projection::SnapshotFn;
use crate::eventlog::{Event, EventKind, NewEvent, Projection};

/// The rule engine as a view of the log; see the module docs.
pub struct RulesView {
    inner: Mutex<Inner>,
}

struct Inner {
    engine: RuleEngine,
    /// The log says this set is in force: the last `rules.loaded` folded
    /// has its hash.
    in_force: bool,
    /// The hash of the last `rules.loaded` folded.
    last_loaded: Option<String>,
    /// While a reload builds a new view: what this one folded since, for
    /// the new one to catch up with before it takes over.
    recording: Option<Vec<Event>>,
}

/// The snapshot of a [`RulesView`].
#[derive(serde::Serialize, serde::Deserialize)]
struct ViewState {
    engine: EngineState,
    in_force: bool,
    last_loaded: Option<String>,
}

impl Inner {
    fn new(set: Arc<RuleSet>) -> Inner {
        Inner {
            engine: RuleEngine::unstarted(set, DateTime::UNIX_EPOCH),
            in_force: false,
            last_loaded: None,
            recording: None,
        }
    }

    fn fold(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RulesLoaded(loaded) => {
                let ours = loaded.hash == self.engine.rules().hash();
                if ours && !self.in_force {
                    self.engine.start(event.occurred_at);
                }
                self.in_force = ours;
                self.last_loaded = Some(loaded.hash.clone());
            }
            _ => self.engine.observe(event),
        }
    }
}

/// Whether rules can read an event of this kind: their inputs, their own
/// alerts and others' resolves of them, and which set is in force. What a
/// reload folds into the new set, and what the view records meanwhile.
pub fn may_read(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::K8sEvent(_)
            | EventKind::ProbeResult(_)
            | EventKind::HeartbeatReceived(_)
            | EventKind::AlertReceived(_)
            | EventKind::AlertResolved(_)
            | EventKind::RulesLoaded(_)
    )
}

/// The kinds of [`may_read`], as stored.
pub const READ_KINDS: &[&str] = &[
    "k8s.event",
    "probe.result",
    "heartbeat.received",
    "alert.received",
    "alert.resolved",
    "rules.loaded",
];

impl RulesView {
    pub fn new(set: Arc<RuleSet>) -> RulesView {
        RulesView {
            inner: Mutex::new(Inner::new(set)),
        }
    }

    /// The set this view evaluates.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.lock().engine.rules().clone()
    }

    /// Whether the last `rules.loaded` folded is this view's set.
    pub fn in_force(&self) -> bool {
        self.inner.lock().in_force
    }

    /// The hash of the last `rules.loaded` folded, if any.
    pub fn last_loaded(&self) -> Option<String> {
        self.inner.lock().last_loaded.clone()
    }

    /// Whether a batch that folded `events` can change what the rules
    /// decide: it holds events they select, or a set took effect.
    pub fn wants(&self, events: &[Arc<Event>]) -> bool {
        let inner = self.inner.lock();
        let set = inner.engine.rules();
        !set.is_empty()
            && events.iter().any(|e| {
                set.reads_kind(e.kind.name())
                    || matches!(e.kind, EventKind::RulesLoaded(_))
                    || (e.source.starts_with("rule/")
                        && matches!(e.kind, EventKind::AlertResolved(_)))
            })
    }

    /// The alerts to fire and resolve at `now`, as the events that record
    /// them (`alert.received` / `alert.resolved` under `rule/{group}/{alert}`,
    /// keyed and fingerprinted as ingest keys a Prometheus alert, so the
    /// alert index and store take them as any other alert). Nothing while
    /// the log does not say this set is in force.
    ///
    /// No expected version: this runs on the writer thread against views
    /// folded through the batch, so nothing can have changed the alert
    /// between this decision and its commit.
    pub fn decide(&self, now: DateTime<Utc>) -> Vec<NewEvent> {
        let mut inner = self.inner.lock();
        if !inner.in_force {
            return Vec::new();
        }
        let decisions = inner.engine.evaluate(now);
        if inner.engine.errors > 0 {
            metrics::gauge!(crate::metrics::RULE_ERRORS).set(inner.engine.errors as f64);
        }
        decisions.into_iter().map(Decision::into_event).collect()
    }

    /// When a pass must run without any event (see [`RuleEngine::next_wake`]).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let inner = self.inner.lock();
        if !inner.in_force {
            return None;
        }
        inner.engine.next_wake()
    }

    /// Starts recording what this view folds, for a view being built to
    /// replace it (see [`Self::adopt`]).
    pub fn begin_recording(&self) {
        self.inner.lock().recording = Some(Vec::new());
    }

    /// Stops recording without a replacement (a reload that failed).
    pub fn stop_recording(&self) {
        self.inner.lock().recording = None;
    }

    /// Takes the place of this view's state with `next`'s, which folded the
    /// log through `through`: first `next` folds what this view recorded
    /// after that. Holding this view's lock, no fold happens in between.
    pub fn adopt(&self, next: RulesView, through: u64) {
        let mut inner = self.inner.lock();
        let mut next = next.inner.into_inner();
        for event in inner.recording.take().unwrap_or_default() {
            if event.seq > through {
                next.fold(&event);
            }
        }
        next.recording = None;
        *inner = next;
    }

    /// Alerts the rules have firing, as the log says.
    pub fn firing(&self) -> Vec<crate::eventlog::AlertReport> {
        self.inner
            .lock()
            .engine
            .firing()
            .into_iter()
            .cloned()
            .collect()
    }
}

impl Default for RulesView {
    fn default() -> Self {
        RulesView::new(Arc::new(RuleSet::empty()))
    }
}

impl Projection for RulesView {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn apply(&self, event: &Event) {
        let mut inner = self.inner.lock();
        if let Some(recorded) = &mut inner.recording
            && may_read(&event.kind)
        {
            recorded.push(event.clone());
        }
        inner.fold(event);
    }

    fn reset(&self) {
        let mut inner = self.inner.lock();
        let set = inner.engine.rules().clone();
        let recording = inner.recording.take().map(|_| Vec::new());
        *inner = Inner::new(set);
        inner.recording = recording;
    }

    fn snapshot(&self) -> Option<SnapshotFn> {
        let inner = self.inner.lock();
        let state = ViewState {
            engine: inner.engine.state(),
            in_force: inner.in_force,
            last_loaded: inner.last_loaded.clone(),
        };
        Some(Box::new(move || {
            serde_json::to_value(state).unwrap_or_default()
        }))
    }

    /// Refused when the snapshot was taken with another rule set: then the
    /// whole log is replayed through the loaded one (see
    /// [`RuleEngine::from_state`]).
    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        let state: ViewState = crate::eventlog::projection::restored(state)?;
        let mut inner = self.inner.lock();
        let set = inner.engine.rules().clone();
        inner.engine = RuleEngine::from_state(set, state.engine)?;
        inner.in_force = state.in_force;
        inner.last_loaded = state.last_loaded;
        Ok(())
    }
}
