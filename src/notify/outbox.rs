//! The delivery outbox: from `notification.due` to a message that arrived.
//!
//! [`OutboxState`] is a fold over the log: which due notifications still
//! owe a delivery to which receiver, how often each integration was tried,
//! when the next try is due, and what each integration sent recently (for
//! rate limits). [`Outbox`] is the worker: it starts what is ready, sends,
//! and records each outcome as `notification.sent`, `notification.failed`
//! or `notification.skipped`. Nothing here decides whether to notify; that
//! decision is already in the log.
//!
//! Guarantees, and how they are kept:
//! - **Never duplicated by a restart**: an outcome is an event; after a
//!   restart the fold knows what was sent and only what has no outcome is
//!   sent. (A crash between the far end's 2xx and the commit of
//!   `notification.sent` sends once more: at-least-once, as every outbox.)
//! - **Retried through outages**: retryable failures (timeouts, connection
//!   errors, 5xx, 429 with `Retry-After`) back off exponentially with jitter
//!   until `notify.retry_for` after the decision; then the receiver's
//!   `fallback` gets it. The retry time is in the event, so a restart keeps it.
//! - **No storm**: a group with a newer due notification replaces its older
//!   undelivered one (carrying over what resolved), and a receiver over its
//!   `rate_limit` gets one digest of the surplus at the next free slot.
//! - **The alerting system watches itself**: an integration that keeps
//!   failing raises `FenghuoNotificationsFailing`, routed like any alert.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::config::{Integration, NotifyConfig, ReceiverRuntime, Receivers};
use super::{
    AlertData, Counts, Digest, DigestGroup, DigestReason, Message, common_pairs, humanize_since,
};
use crate::clock::SharedClock;
use crate::evaluate::alerts::AlertStore;
use crate::evaluate::fingerprint::Fingerprint;
use crate::eventlog::event::{
    DeliveryFailed, DeliverySent, DeliverySkipped, DeliveryTarget, LabelSet,
};
use crate::eventlog::{
    Event, EventKind, EventLog, LogError, NewEvent, NotificationDue, Projection,
};
use crate::ingest::{IncomingAlert, Ingest};

/// The alert Fenghuo raises about itself when an integration keeps failing.
pub const FAILING_ALERT: &str = "FenghuoNotificationsFailing";

/// How long a due notification is remembered at all, counted in log time:
/// beyond it, one whose integrations no longer exist is forgotten.
const FORGET_AFTER_HOURS: i64 = 24;
/// Sends remembered per integration for rate limits.
const RECENT_SENDS_KEPT: usize = 1024;
/// Alerts listed in full in a digest message.
const DIGEST_ALERTS: usize = 20;
const DIGEST_GROUPS: usize = 20;

/// A pending delivery ready for one integration: its attempt number, and
/// whether it goes in the receiver's digest of resolved alerts.
type ReadyItem = (Pending, u32, bool);

/// One due notification that still owes deliveries to one receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub due_seq: u64,
    pub receiver: String,
    /// When the evaluate stage decided it: retries are bounded from here.
    pub decided_at: DateTime<Utc>,
    pub due: NotificationDue,
    /// Receivers that gave it up before this one (fallback chain).
    #[serde(default)]
    pub via: Vec<String>,
    /// Per integration id: its attempts so far. Absent: not tried yet.
    #[serde(default)]
    pub integrations: BTreeMap<String, Attempts>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempts {
    pub attempts: u32,
    #[serde(default)]
    pub next_at: Option<DateTime<Utc>>,
    /// Sent, skipped, or given up: nothing more to do.
    #[serde(default)]
    pub done: bool,
}

/// What one integration did lately.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntegrationHistory {
    pub recent_sends: VecDeque<DateTime<Utc>>,
    pub consecutive_failures: u32,
    #[serde(default)]
    pub last_failure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Inner {
    /// `{due seq}/{receiver}` → pending.
    pending: BTreeMap<String, Pending>,
    /// `{group}/{receiver}` → key in `pending` of its latest due.
    latest: BTreeMap<String, String>,
    /// `{receiver}/{integration}` → history.
    integrations: BTreeMap<String, IntegrationHistory>,
    /// Log time of the last event folded.
    now: Option<DateTime<Utc>>,
}

fn pending_key(seq: u64, receiver: &str) -> String {
    format!("{seq:020}/{receiver}")
}

fn integration_key(receiver: &str, integration: &str) -> String {
    format!("{receiver}/{integration}")
}

/// The outbox as a fold over the log.
#[derive(Default)]
pub struct OutboxState {
    inner: RwLock<Inner>,
    /// Woken when something the worker acts on changed and was committed.
    changed: tokio::sync::Notify,
    /// Something the worker acts on was folded and not yet committed.
    dirty: std::sync::atomic::AtomicBool,
    /// The last `seq` known committed: a notification decided in a batch
    /// still being committed is not sent before the decision is durable.
    committed_through: std::sync::atomic::AtomicU64,
}

impl OutboxState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every delivery still owed, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.inner.read().pending.values().cloned().collect()
    }

    pub fn history(&self, receiver: &str, integration: &str) -> IntegrationHistory {
        self.inner
            .read()
            .integrations
            .get(&integration_key(receiver, integration))
            .cloned()
            .unwrap_or_default()
    }

    /// Resolves when a due notification or an outcome was committed.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn add_pending(inner: &mut Inner, mut p: Pending) {
        // Escalation pages are each addressed to someone: none replaces
        // another, nor the group's own message.
        let latest_key = match &p.due.escalation {
            None => format!("{}/{}", p.due.group.group, p.receiver),
            Some(e) => format!(
                "{}/{}/{}/{}/{}",
                p.due.group.group, p.receiver, e.incident, e.iteration, e.step
            ),
        };
        let key = pending_key(p.due_seq, &p.receiver);
        if let Some(older_key) = inner.latest.insert(latest_key, key.clone())
            && older_key != key
            && let Some(older) = inner.pending.remove(&older_key)
        {
            let older_update = older.due.update_in_place;
            let older_follows = older.due.changes_only || older_update;
            // A newer message for the group replaces the undelivered older
            // one; what resolved in between must not be lost with it.
            let firing: HashSet<&String> = p.due.firing.iter().collect();
            let mut resolved: BTreeSet<String> = p.due.resolved.iter().cloned().collect();
            resolved.extend(
                older
                    .due
                    .resolved
                    .into_iter()
                    .filter(|fp| !firing.contains(fp)),
            );
            p.due.resolved = resolved.into_iter().collect();
            let mut new: BTreeSet<String> = p.due.new.iter().cloned().collect();
            new.extend(older.due.new.into_iter().filter(|fp| firing.contains(fp)));
            p.due.new = new.into_iter().collect();
            p.due.repeat = p.due.repeat && older.due.repeat;
            // A page replaced by an update is still a page; the group's
            // first page (neither a follow-up nor an update) still lists
            // everything.
            // Held for a digest only while every part of it is; the
            // earliest digest time wins.
            p.due.digest_at = match (p.due.digest_at, older.due.digest_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
            let update = p.due.update_in_place && older_update;
            p.due.changes_only =
                !update && (p.due.changes_only || p.due.update_in_place) && older_follows;
            p.due.update_in_place = update;
        }
        inner.pending.insert(key, p);
    }

    fn attempts<'a>(
        inner: &'a mut Inner,
        seq: u64,
        target: &DeliveryTarget,
    ) -> Option<&'a mut Attempts> {
        inner
            .pending
            .get_mut(&pending_key(seq, &target.receiver))
            .map(|p| {
                p.integrations
                    .entry(target.integration.clone())
                    .or_default()
            })
    }

    /// Forget the delivery of `seq` to the target's receiver once every
    /// integration the receiver had has an outcome.
    fn complete_if_done(inner: &mut Inner, seq: u64, target: &DeliveryTarget) {
        let key = pending_key(seq, &target.receiver);
        let done = inner.pending.get(&key).is_some_and(|p| {
            (!target.integrations.is_empty() || target.integration.is_empty())
                && target
                    .integrations
                    .iter()
                    .all(|i| p.integrations.get(i).is_some_and(|a| a.done))
        });
        if done && let Some(p) = inner.pending.remove(&key) {
            // Escalation pages are each addressed to someone: none replaces
            // another, nor the group's own message.
            let latest_key = match &p.due.escalation {
                None => format!("{}/{}", p.due.group.group, p.receiver),
                Some(e) => format!(
                    "{}/{}/{}/{}/{}",
                    p.due.group.group, p.receiver, e.incident, e.iteration, e.step
                ),
            };
            if inner.latest.get(&latest_key) == Some(&key) {
                inner.latest.remove(&latest_key);
            }
        }
    }

    fn forget_old(inner: &mut Inner, now: DateTime<Utc>) {
        let horizon = now - Duration::hours(FORGET_AFTER_HOURS);
        // Oldest first: stop at the first one inside the horizon.
        let old: Vec<String> = inner
            .pending
            .iter()
            .take_while(|(_, p)| p.decided_at < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            if let Some(p) = inner.pending.remove(&k) {
                // Escalation pages are each addressed to someone: none replaces
                // another, nor the group's own message.
                let latest_key = match &p.due.escalation {
                    None => format!("{}/{}", p.due.group.group, p.receiver),
                    Some(e) => format!(
                        "{}/{}/{}/{}/{}",
                        p.due.group.group, p.receiver, e.incident, e.iteration, e.step
                    ),
                };
                if inner.latest.get(&latest_key) == Some(&k) {
                    inner.latest.remove(&latest_key);
                }
            }
        }
    }
}

impl Projection for OutboxState {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn apply(&self, event: &Event) {
        let mut inner = self.inner.write();
        let touched = match &event.kind {
            EventKind::NotificationDue(due) => {
                let p = Pending {
                    due_seq: event.seq,
                    receiver: due.group.receiver.clone(),
                    decided_at: event.occurred_at,
                    due: due.clone(),
                    via: Vec::new(),
                    integrations: BTreeMap::new(),
                };
                OutboxState::add_pending(&mut inner, p);
                true
            }
            EventKind::NotificationSent(sent) => {
                for &seq in &sent.target.due_seqs {
                    if let Some(a) = OutboxState::attempts(&mut inner, seq, &sent.target) {
                        a.attempts = a.attempts.max(sent.attempt);
                        a.done = true;
                        a.next_at = None;
                    }
                    OutboxState::complete_if_done(&mut inner, seq, &sent.target);
                }
                let h = inner
                    .integrations
                    .entry(integration_key(
                        &sent.target.receiver,
                        &sent.target.integration,
                    ))
                    .or_default();
                h.recent_sends.push_back(event.occurred_at);
                if h.recent_sends.len() > RECENT_SENDS_KEPT {
                    h.recent_sends.pop_front();
                }
                h.consecutive_failures = 0;
                h.last_failure = None;
                true
            }
            EventKind::NotificationFailed(failed) => {
                for &seq in &failed.target.due_seqs {
                    if let Some(a) = OutboxState::attempts(&mut inner, seq, &failed.target) {
                        a.attempts = a.attempts.max(failed.attempt);
                        a.next_at = failed.retry_at;
                        a.done = failed.gave_up;
                    }
                    if let Some(fallback) = &failed.fallback {
                        let key = pending_key(seq, &failed.target.receiver);
                        let source = inner.pending.get(&key).cloned();
                        if let Some(source) = source {
                            let mut via = source.via.clone();
                            via.push(source.receiver.clone());
                            let mut due = source.due.clone();
                            due.group.receiver = fallback.clone();
                            let p = Pending {
                                due_seq: seq,
                                receiver: fallback.clone(),
                                decided_at: source.decided_at,
                                due,
                                via,
                                integrations: BTreeMap::new(),
                            };
                            inner.pending.entry(pending_key(seq, fallback)).or_insert(p);
                        }
                    }
                    if failed.gave_up {
                        OutboxState::complete_if_done(&mut inner, seq, &failed.target);
                    }
                }
                let h = inner
                    .integrations
                    .entry(integration_key(
                        &failed.target.receiver,
                        &failed.target.integration,
                    ))
                    .or_default();
                h.consecutive_failures += 1;
                h.last_failure = Some(failed.reason.clone());
                true
            }
            EventKind::NotificationSkipped(skipped) => {
                for &seq in &skipped.target.due_seqs {
                    if let Some(a) = OutboxState::attempts(&mut inner, seq, &skipped.target) {
                        a.done = true;
                        a.next_at = None;
                    }
                    OutboxState::complete_if_done(&mut inner, seq, &skipped.target);
                }
                true
            }
            _ => false,
        };
        inner.now = Some(
            inner
                .now
                .map_or(event.occurred_at, |n| n.max(event.occurred_at)),
        );
        if touched {
            let now = inner.now.unwrap_or(event.occurred_at);
            OutboxState::forget_old(&mut inner, now);
            drop(inner);
            self.dirty.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn committed(&self, seq: u64) {
        use std::sync::atomic::Ordering;
        self.committed_through.store(seq, Ordering::Release);
        if self.dirty.swap(false, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.inner.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        *self.inner.write() = crate::eventlog::projection::restored(state)?;
        Ok(())
    }
}

/// One thing the worker will do now.
#[derive(Debug, Clone)]
enum Job {
    /// Send these due notifications (one, or several as a digest) to one
    /// integration.
    Send {
        receiver: String,
        integration: String,
        items: Vec<Pending>,
        attempt: u32,
    },
    Skip {
        receiver: String,
        integration: String,
        item: Box<Pending>,
        reason: String,
    },
}

/// What one [`Outbox::step`] did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub sent: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Jobs the serving loop keeps started per send slot (`notify.concurrency`):
/// a job holds its slot only while it sends, then waits for its outcome's
/// commit, and under an ingest burst a commit cycle takes long enough for
/// many sends to finish. Bounded, so the planner's walk is too.
const JOBS_PER_SEND_SLOT: usize = 8;

/// One of the `notify.concurrency` send slots, held while a job sends and
/// freed once the far end has answered (or there is nothing to send),
/// before the outcome is recorded.
type SendSlot = Option<tokio::sync::OwnedSemaphorePermit>;

/// How much looking the planner did since the worker started: a backlog
/// must drain in work proportional to its size, not to its square.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlanWork {
    /// Times the planner looked for ready deliveries.
    pub plans: u64,
    /// Pending deliveries it looked at, over all those times.
    pub visited: u64,
}

/// A started job: its outcome once recorded.
pub type JobHandle = tokio::task::JoinHandle<Result<Outcome, Arc<LogError>>>;

/// A started job's place in the outbox, held by its task: dropping it
/// releases the job, so a task that ends in any way (an outcome, an error,
/// a panic, cancellation) frees its deliveries to be planned again.
struct JobPlace {
    outbox: Arc<Outbox>,
    job: Job,
}

impl Drop for JobPlace {
    fn drop(&mut self) {
        self.outbox.release(&self.job);
    }
}

/// What one walk of the planner saw besides its jobs.
#[derive(Debug, Default)]
struct Walk {
    /// The earliest retry time, or digest time of resolves held for a
    /// digest, among the deliveries it looked at.
    earliest_retry: Option<DateTime<Utc>>,
}

/// `{due seq}` → `(receiver, integration)`s being sent right now: looked up
/// for every pending delivery the planner visits, so without building a
/// key per visit.
#[derive(Default)]
struct InFlight(HashMap<u64, Vec<(String, String)>>);

impl InFlight {
    fn contains(&self, seq: u64, receiver: &str, integration: &str) -> bool {
        self.0
            .get(&seq)
            .is_some_and(|v| v.iter().any(|(r, i)| r == receiver && i == integration))
    }

    /// False if it was in flight already.
    fn insert(&mut self, seq: u64, receiver: &str, integration: &str) -> bool {
        if self.contains(seq, receiver, integration) {
            return false;
        }
        self.0
            .entry(seq)
            .or_default()
            .push((receiver.to_string(), integration.to_string()));
        true
    }

    fn remove(&mut self, seq: u64, receiver: &str, integration: &str) {
        if let Some(v) = self.0.get_mut(&seq) {
            v.retain(|(r, i)| !(r == receiver && i == integration));
            if v.is_empty() {
                self.0.remove(&seq);
            }
        }
    }
}

/// The delivery worker.
pub struct Outbox {
    log: EventLog,
    clock: SharedClock,
    state: Arc<OutboxState>,
    store: Arc<AlertStore>,
    /// Swapped on reload (see [`Outbox::set_receivers`]).
    receivers: parking_lot::RwLock<Arc<Receivers>>,
    settings: NotifyConfig,
    ingest: Option<Ingest>,
    /// Deliveries being sent right now.
    in_flight: Mutex<InFlight>,
    /// Jobs started and not yet finished (sending, or waiting for their
    /// outcome's commit). The serving loop keeps no more than
    /// [`JOBS_PER_SEND_SLOT`] × `notify.concurrency` started: a backlog of
    /// 20,000 waits as pending deliveries (in the fold), not as 20,000
    /// tasks each holding a copy of its delivery.
    running: AtomicUsize,
    plans: AtomicU64,
    visited: AtomicU64,
    /// Integrations with a send in flight, per integration key, for rate
    /// limits.
    in_flight_per_integration: Mutex<BTreeMap<String, usize>>,
    permits: Arc<Semaphore>,
    /// Incidents and the link signer, for "Acknowledge" in every page.
    action_links: Option<ActionLinks>,
    /// Releases, to say which one a firing alert is suspected of.
    releases: Option<Arc<crate::act::release::Releases>>,
    /// Remediation runs, for "Approve" links of those waiting for a person.
    remediations: Option<Arc<crate::act::remediation::Remediations>>,
    /// The message each group's updates in place edit; without it, every
    /// message is sent anew.
    threads: Option<Arc<super::threads::MessageThreads>>,
}

/// A signed "Approve {action}" link for every remediation run that waits
/// for approval and was triggered by an alert of the message.
fn approval_links(
    msg: &mut Message,
    signer: &crate::escalate::link::LinkSigner,
    runs: &crate::act::remediation::Remediations,
    now: DateTime<Utc>,
) {
    let person = match msg.to.as_slice() {
        [one] => one.name.clone(),
        _ => msg.receiver.clone(),
    };
    let waiting = runs.waiting_approval();
    for run in waiting {
        let ours = msg
            .alerts
            .iter()
            .any(|a| a.status == "firing" && a.fingerprint == run.due.trigger)
            || msg.incident.as_ref().is_some_and(|i| i.id == run.due.scope);
        if ours {
            let token = signer.token(
                &run.due.id,
                crate::escalate::actions::Action::Approve,
                &person,
                now,
            );
            msg.actions.push(crate::notify::ActionLink {
                label: format!("Approve {}", run.due.action),
                url: signer.url(&token),
            });
        }
    }
}

/// Firing alerts suspected of a release say so in their summary and in a
/// `suspected_release` annotation: "started 3 min after checkout v1.4.2
/// by alice".
fn note_releases(msg: &mut Message, releases: &crate::act::release::Releases) {
    for alert in msg.alerts.iter_mut().filter(|a| a.status == "firing") {
        if let Some(s) = releases.suspicion_of(&alert.fingerprint) {
            let note = crate::act::release::suspicion_note(&s);
            alert.summary = format!("{} ({note})", alert.summary);
            alert
                .annotations
                .insert("suspected_release".to_string(), note);
        }
    }
}

/// What a message needs to show its incident and carry action links.
pub struct ActionLinks {
    pub signer: crate::escalate::link::LinkSigner,
    pub incidents: Arc<crate::escalate::incident::Incidents>,
}

impl ActionLinks {
    /// Shows the message's incident (who acknowledged it) and adds signed
    /// links for what can be done to it now, for whom the page is: the one
    /// person it is addressed to, else the receiver.
    pub fn annotate(&self, msg: &mut Message, due: &NotificationDue, now: DateTime<Utc>) {
        use crate::escalate::actions::Action;
        let incident = match &due.escalation {
            Some(e) => self.incidents.get(&e.incident),
            None => self.incidents.of_group(&due.group.group),
        };
        let Some(incident) = incident else {
            return;
        };
        msg.incident = Some(crate::notify::IncidentNote {
            id: incident.id.clone(),
            status: incident.status(now).to_string(),
            acked_by: incident.ack.as_ref().map(|a| a.by.clone()),
            acked_at: incident.ack.as_ref().map(|a| a.at),
        });
        if !incident.is_open() {
            return;
        }
        let person = match msg.to.as_slice() {
            [one] => one.name.clone(),
            _ => msg.receiver.clone(),
        };
        let actions: &[Action] = if incident.ack.is_some() {
            &[Action::Unack, Action::Resolve]
        } else {
            &[Action::Ack, Action::Snooze, Action::Resolve]
        };
        msg.actions = actions
            .iter()
            .map(|&a| crate::notify::ActionLink {
                label: a.label().to_string(),
                url: self
                    .signer
                    .url(&self.signer.token(&incident.id, a, &person, now)),
            })
            .collect();
    }
}

impl Outbox {
    /// Makes every message show its incident and carry action links.
    pub fn with_action_links(mut self, links: ActionLinks) -> Outbox {
        self.action_links = Some(links);
        self
    }

    /// Makes updates in place edit the group's last message where the
    /// integration can (see [`super::threads`]).
    pub fn with_threads(mut self, threads: Arc<super::threads::MessageThreads>) -> Outbox {
        self.threads = Some(threads);
        self
    }

    /// Makes messages say which release a firing alert is suspected of.
    pub fn with_release_notes(mut self, releases: Arc<crate::act::release::Releases>) -> Outbox {
        self.releases = Some(releases);
        self
    }

    /// Makes messages carry "Approve" links of remediation runs waiting
    /// for a person (with action links on).
    pub fn with_approval_links(
        mut self,
        runs: Arc<crate::act::remediation::Remediations>,
    ) -> Outbox {
        self.remediations = Some(runs);
        self
    }

    pub fn new(
        log: EventLog,
        clock: SharedClock,
        state: Arc<OutboxState>,
        store: Arc<AlertStore>,
        receivers: Arc<Receivers>,
        settings: NotifyConfig,
        ingest: Option<Ingest>,
    ) -> Outbox {
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Outbox {
            log,
            clock,
            state,
            store,
            receivers: parking_lot::RwLock::new(receivers),
            settings,
            ingest,
            in_flight: Mutex::new(InFlight::default()),
            running: AtomicUsize::new(0),
            plans: AtomicU64::new(0),
            visited: AtomicU64::new(0),
            in_flight_per_integration: Mutex::new(BTreeMap::new()),
            permits,
            action_links: None,
            releases: None,
            remediations: None,
            threads: None,
        }
    }

    fn integration_ids(&self, receiver: &str) -> Vec<String> {
        self.receivers()
            .get(receiver)
            .map(|r| r.integrations.iter().map(|i| i.id.clone()).collect())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &Arc<OutboxState> {
        &self.state
    }

    pub fn receivers(&self) -> Arc<Receivers> {
        self.receivers.read().clone()
    }

    /// Puts reloaded receivers in force for the deliveries planned from now
    /// on; sends under way finish with the ones they started with.
    pub fn set_receivers(&self, receivers: Arc<Receivers>) {
        *self.receivers.write() = receivers;
    }

    /// Starts every delivery that is ready and waits for all their outcomes
    /// to be recorded. Tests drive this with a manual clock.
    pub async fn step(self: &Arc<Self>) -> Result<StepReport, Arc<LogError>> {
        let (handles, _) = self.start(None);
        let mut report = StepReport::default();
        for h in handles {
            match h.await {
                Ok(Ok(outcome)) => match outcome {
                    Outcome::Sent => report.sent += 1,
                    Outcome::Failed => report.failed += 1,
                    Outcome::Skipped => report.skipped += 1,
                },
                Ok(Err(e)) => return Err(e),
                Err(join) => tracing::error!(error = %join, "delivery task panicked"),
            }
        }
        Ok(report)
    }

    /// Starts deliveries that are ready now, each on its own task, up to
    /// [`JOBS_PER_SEND_SLOT`] × `notify.concurrency` started at once (at
    /// most `notify.concurrency` of them sending); the rest start as jobs
    /// finish (each finished job wakes [`OutboxState::changed`]).
    pub fn start_ready(self: &Arc<Self>) -> Vec<JobHandle> {
        self.start(Some(self.free_slots())).0
    }

    /// What the serving loop runs on each wake: [`start_ready`](Self::start_ready),
    /// then when to look again if nothing wakes it first (the earliest
    /// retry among what the planner looked at, or the earliest rate-limit
    /// slot). What the planner did not look at, because the slots were
    /// full, wakes the loop when a slot frees.
    pub fn start_ready_until_next(self: &Arc<Self>) -> Option<DateTime<Utc>> {
        let (handles, walk) = self.start(Some(self.free_slots()));
        drop(handles); // detached: each records its outcome
        let rate = self.next_rate_limit_slot();
        match (walk.earliest_retry, rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How much the planner looked since start (see [`PlanWork`]).
    pub fn plan_work(&self) -> PlanWork {
        PlanWork {
            plans: self.plans.load(Ordering::Relaxed),
            visited: self.visited.load(Ordering::Relaxed),
        }
    }

    fn free_slots(&self) -> usize {
        (self.settings.concurrency.max(1) * JOBS_PER_SEND_SLOT)
            .saturating_sub(self.running.load(Ordering::Acquire))
    }

    /// Plans (at most `limit` jobs, where a limit is given) and spawns.
    fn start(self: &Arc<Self>, limit: Option<usize>) -> (Vec<JobHandle>, Walk) {
        let now = self.clock.now();
        let (jobs, walk) = if limit == Some(0) {
            // Every slot is taken: a finishing job wakes the loop.
            (Vec::new(), Walk::default())
        } else {
            self.plan(now, limit)
        };
        let mut handles = Vec::with_capacity(jobs.len());
        for job in jobs {
            let me = self.clone();
            self.running.fetch_add(1, Ordering::AcqRel);
            handles.push(tokio::spawn(async move {
                // The job's place is freed however the task ends: a task
                // that panicked (or was cancelled) kept its deliveries in
                // flight for good — never planned again, never sent.
                let job = JobPlace { outbox: me, job };
                let mut slot: SendSlot = job.outbox.permits.clone().acquire_owned().await.ok();
                let result = job.outbox.run(&job.job, &mut slot).await;
                drop(slot);
                result
            }));
        }
        metrics::gauge!(crate::metrics::NOTIFY_QUEUE_DEPTH)
            .set(self.state.inner.read().pending.len() as f64);
        (handles, walk)
    }

    /// When the worker must look again without being woken by an event: the
    /// earliest retry, or the earliest rate-limit slot.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let inner = self.state.inner.read();
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| next = Some(next.map_or(t, |n| n.min(t)));
        for p in inner.pending.values() {
            for a in p.integrations.values() {
                if let (false, Some(at)) = (a.done, a.next_at) {
                    consider(at);
                }
            }
            if let Some(at) = p.due.digest_at {
                consider(at);
            }
        }
        drop(inner);
        if let Some(at) = self.next_rate_limit_slot() {
            consider(at);
        }
        next
    }

    /// When the earliest receiver over its rate limit gets a free slot.
    fn next_rate_limit_slot(&self) -> Option<DateTime<Utc>> {
        let inner = self.state.inner.read();
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| next = Some(next.map_or(t, |n| n.min(t)));
        for r in self.receivers().by_name.values() {
            if let Some(limit) = r.rate_limit {
                for i in &r.integrations {
                    if let Some(h) = inner.integrations.get(&integration_key(&r.name, &i.id))
                        && h.recent_sends.len() >= limit.messages as usize
                    {
                        let nth = h.recent_sends[h.recent_sends.len() - limit.messages as usize];
                        consider(nth + limit.per.0);
                    }
                }
            }
        }
        next
    }

    /// What to do now: every integration of every pending delivery that is
    /// not done, not in flight, not waiting for a retry time, folded into a
    /// digest where its receiver is over its rate limit.
    ///
    /// With a `limit`, at most that many deliveries to receivers without a
    /// rate limit are planned, and the walk (oldest first) stops there:
    /// each wake looks at what is in flight or waiting for a retry plus at
    /// most `limit` more, so a backlog drains in work proportional to its
    /// size. (With a rate-limited receiver configured the walk goes on to
    /// the end, as the surplus of such a receiver must go into one digest.)
    /// The walk stops, too, at the first delivery decided in a batch whose
    /// commit is under way: the pending deliveries are in `seq` order, and
    /// that commit wakes the worker.
    fn plan(&self, now: DateTime<Utc>, limit: Option<usize>) -> (Vec<Job>, Walk) {
        let receivers = self.receivers();
        let inner = self.state.inner.read();
        let mut in_flight = self.in_flight.lock();
        let mut per_integration = self.in_flight_per_integration.lock();
        // (receiver, integration) → ready items, oldest first, each marked
        // whether it goes in the receiver's digest of resolved alerts.
        let mut ready: BTreeMap<(String, String), Vec<ReadyItem>> = BTreeMap::new();
        let mut jobs = Vec::new();
        let mut walk = Walk::default();
        let committed = self.state.committed_through.load(Ordering::Acquire);
        let limit = limit.unwrap_or(usize::MAX);
        let walk_to_the_end =
            limit == usize::MAX || receivers.by_name.values().any(|r| r.rate_limit.is_some());
        // Deliveries planned that count against `limit`.
        let mut planned = 0usize;
        let mut visited = 0u64;
        for p in inner.pending.values() {
            if p.due_seq > committed {
                break; // decided in a batch whose commit is under way
            }
            if planned >= limit && !walk_to_the_end {
                break; // the rest waits for a free slot
            }
            visited += 1;
            let Some(receiver) = receivers.get(&p.receiver) else {
                continue; // receiver no longer configured: forgotten with age
            };
            let only_resolved = p.due.firing.is_empty();
            if receiver.integrations.is_empty() {
                // A receiver that sends nowhere (Alertmanager's blackhole):
                // recorded, so the outbox does not carry it.
                if planned < limit && in_flight.insert(p.due_seq, &p.receiver, "") {
                    planned += 1;
                    jobs.push(Job::Skip {
                        receiver: p.receiver.clone(),
                        integration: String::new(),
                        item: Box::new(p.clone()),
                        reason: "the receiver has no integrations".into(),
                    });
                }
                continue;
            }
            for integration in &receiver.integrations {
                let attempts = p.integrations.get(&integration.id);
                let (done, next_at, tried) =
                    attempts.map_or((false, None, 0), |a| (a.done, a.next_at, a.attempts));
                if done {
                    continue;
                }
                if let Some(at) = next_at {
                    walk.earliest_retry = Some(walk.earliest_retry.map_or(at, |e| e.min(at)));
                    if at > now {
                        continue;
                    }
                }
                if in_flight.contains(p.due_seq, &p.receiver, &integration.id) {
                    continue;
                }
                let counted = receiver.rate_limit.is_none();
                if counted && planned >= limit {
                    continue; // a free slot will wake the worker
                }
                // An edit in place is no notification: a message that said
                // "firing" is corrected even where resolves are not sent.
                let edits = p.due.update_in_place && integration.notifier.updates_in_place();
                if only_resolved && !integration.notifier.send_resolved() && !edits {
                    in_flight.insert(p.due_seq, &p.receiver, &integration.id);
                    planned += 1;
                    jobs.push(Job::Skip {
                        receiver: p.receiver.clone(),
                        integration: integration.id.clone(),
                        item: Box::new(p.clone()),
                        reason: "only resolved alerts and send_resolved is false".into(),
                    });
                    continue;
                }
                // Resolves held for the digest wait for its time (an edit
                // in place does not: it is no message of its own).
                let digest = !edits && p.due.digest_at.is_some();
                if let (true, Some(at)) = (digest, p.due.digest_at)
                    && at > now
                {
                    walk.earliest_retry = Some(walk.earliest_retry.map_or(at, |e| e.min(at)));
                    continue;
                }
                if counted {
                    planned += 1;
                }
                ready
                    .entry((p.receiver.clone(), integration.id.clone()))
                    .or_default()
                    .push((p.clone(), tried + 1, digest));
            }
        }
        self.plans.fetch_add(1, Ordering::Relaxed);
        self.visited.fetch_add(visited, Ordering::Relaxed);
        for ((receiver_name, integration), items) in ready {
            let receiver = receivers.get(&receiver_name).expect("checked above");
            let ikey = integration_key(&receiver_name, &integration);
            let flying = per_integration.get(&ikey).copied().unwrap_or(0);
            let free = match receiver.rate_limit {
                None => usize::MAX,
                Some(limit) => {
                    let since = now - limit.per.0;
                    let used = inner
                        .integrations
                        .get(&ikey)
                        .map_or(0, |h| h.recent_sends.iter().filter(|t| **t > since).count());
                    (limit.messages as usize).saturating_sub(used + flying)
                }
            };
            if free == 0 {
                continue; // next_wake says when a slot frees
            }
            // One message per item, except the resolves held for the
            // digest: one message together.
            let (held, single): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.2);
            let mut units: Vec<Vec<(Pending, u32)>> =
                single.into_iter().map(|(p, a, _)| vec![(p, a)]).collect();
            if !held.is_empty() {
                units.push(held.into_iter().map(|(p, a, _)| (p, a)).collect());
                units.sort_by_key(|u| u[0].0.due_seq);
            }
            let surplus: Vec<(Pending, u32)> = if units.len() > free {
                units.split_off(free - 1).into_iter().flatten().collect()
            } else {
                Vec::new()
            };
            let mut send = |batch: Vec<(Pending, u32)>| {
                for (p, _) in &batch {
                    in_flight.insert(p.due_seq, &p.receiver, &integration);
                }
                *per_integration.entry(ikey.clone()).or_default() += 1;
                let attempt = batch.iter().map(|(_, a)| *a).max().unwrap_or(1);
                jobs.push(Job::Send {
                    receiver: receiver_name.clone(),
                    integration: integration.clone(),
                    items: batch.into_iter().map(|(p, _)| p).collect(),
                    attempt,
                });
            };
            for unit in units {
                send(unit);
            }
            if !surplus.is_empty() {
                send(surplus);
            }
        }
        (jobs, walk)
    }

    /// Frees what `job` held: its deliveries' in-flight marks and its
    /// place among the running jobs. Called once, by [`JobPlace`]'s drop.
    fn release(&self, job: &Job) {
        {
            let mut in_flight = self.in_flight.lock();
            match job {
                Job::Send {
                    receiver,
                    integration,
                    items,
                    ..
                } => {
                    for p in items {
                        in_flight.remove(p.due_seq, receiver, integration);
                    }
                    let mut per = self.in_flight_per_integration.lock();
                    if let Some(n) = per.get_mut(&integration_key(receiver, integration)) {
                        *n = n.saturating_sub(1);
                    }
                }
                Job::Skip {
                    receiver,
                    integration,
                    item,
                    ..
                } => {
                    in_flight.remove(item.due_seq, receiver, integration);
                }
            }
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
        // A job's place is free: what waited for one can start.
        self.state.changed.notify_one();
    }

    async fn run(&self, job: &Job, slot: &mut SendSlot) -> Result<Outcome, Arc<LogError>> {
        let receivers = self.receivers();
        match job {
            Job::Skip {
                receiver,
                integration,
                item,
                reason,
            } => {
                *slot = None; // nothing to send
                let target = DeliveryTarget {
                    receiver: receiver.clone(),
                    integration: integration.clone(),
                    group: item.due.group.group.clone(),
                    due_seqs: vec![item.due_seq],
                    integrations: self.integration_ids(receiver),
                };
                let kind = EventKind::NotificationSkipped(DeliverySkipped {
                    target,
                    reason: reason.clone(),
                });
                self.record(kind, item.due.group.group.clone()).await?;
                Ok(Outcome::Skipped)
            }
            Job::Send {
                receiver,
                integration,
                items,
                attempt,
            } => {
                let Some(r) = receivers.get(receiver) else {
                    return Ok(Outcome::Skipped);
                };
                let Some(i) = r.integrations.iter().find(|i| &i.id == integration) else {
                    return Ok(Outcome::Skipped);
                };
                self.deliver(r, i, items, *attempt, slot).await
            }
        }
    }

    async fn deliver(
        &self,
        receiver: &ReceiverRuntime,
        integration: &Integration,
        items: &[Pending],
        attempt: u32,
        slot: &mut SendSlot,
    ) -> Result<Outcome, Arc<LogError>> {
        let now = self.clock.now();
        let msg = if items.len() == 1 {
            self.message(&items[0], now)
        } else {
            self.digest(items, now)
        };
        let rendered = integration
            .notifier
            .render(&msg, &self.receivers().templates, now);
        if let Some(reason) = &rendered.fallback {
            tracing::warn!(receiver = %receiver.name, integration = %integration.id, %reason,
                "receiver template failed; sent with the default template");
        }
        let started = Instant::now();
        // A sender that panics (a bug in a channel, or in what it calls)
        // is a failed attempt like any other: recorded, retried with
        // backoff, handed to the fallback in the end — not a lost page.
        let (result, updated) = std::panic::AssertUnwindSafe(self.send_or_update(
            receiver,
            integration,
            items,
            &rendered,
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(receiver = %receiver.name, integration = %integration.id,
                "the integration's sender panicked; recorded as a failed attempt");
            (
                Err(super::DeliveryError {
                    reason: "the sender panicked (a bug: see the server log)".into(),
                    class: "panic",
                    status: None,
                    retryable: true,
                    retry_after: None,
                }),
                false,
            )
        });
        let latency = started.elapsed();
        // The far end answered: the next delivery can go while this outcome
        // waits for its commit (the delivery stays in flight until then, so
        // it is not planned again). Holding the slot through the commit
        // made the drain as slow as the writer under an ingest burst:
        // `concurrency` outcomes per commit cycle.
        *slot = None;
        let kind_label = integration.notifier.kind();
        metrics::histogram!(crate::metrics::NOTIFY_ATTEMPT_SECONDS, "integration" => kind_label)
            .record(latency.as_secs_f64());
        let group = items[0].due.group.group.clone();
        let target = DeliveryTarget {
            receiver: receiver.name.clone(),
            integration: integration.id.clone(),
            group: group.clone(),
            due_seqs: items.iter().map(|p| p.due_seq).collect(),
            integrations: self.integration_ids(&receiver.name),
        };
        let done_at = self.clock.now();
        let was_failing = self
            .state
            .history(&receiver.name, &integration.id)
            .consecutive_failures;
        match result {
            Ok(delivered) => {
                metrics::counter!(crate::metrics::NOTIFY_SENT, "integration" => kind_label, "receiver" => receiver.name.clone())
                    .increment(1);
                for p in items {
                    let since = (done_at - p.decided_at).to_std().unwrap_or_default();
                    metrics::histogram!(crate::metrics::NOTIFY_LATENCY_SECONDS, "integration" => kind_label)
                        .record(since.as_secs_f64());
                }
                let kind = EventKind::NotificationSent(DeliverySent {
                    target,
                    attempt,
                    status: delivered.status,
                    latency_ms: latency.as_millis() as u64,
                    template_fallback: rendered.fallback,
                    digest: items.len() > 1,
                    message_ref: delivered.message_ref,
                    updated,
                });
                self.record(kind, group).await?;
                if was_failing >= self.settings.failing_after.max(1) {
                    self.raise_failing(receiver, integration, None, done_at)
                        .await;
                }
                Ok(Outcome::Sent)
            }
            Err(error) => {
                metrics::counter!(crate::metrics::NOTIFY_FAILED, "integration" => kind_label,
                    "receiver" => receiver.name.clone(), "reason" => error.class)
                .increment(1);
                let decided_at = items.iter().map(|p| p.decided_at).min().unwrap_or(done_at);
                let deadline = decided_at + self.settings.retry_for.0;
                let retry_at = error
                    .retryable
                    .then(|| done_at + self.backoff(attempt, error.retry_after))
                    .filter(|at| *at <= deadline);
                let fallback = match retry_at {
                    Some(_) => None,
                    None => receiver
                        .fallback
                        .clone()
                        .filter(|f| items.iter().all(|p| !p.via.contains(f) && &p.receiver != f)),
                };
                tracing::warn!(receiver = %receiver.name, integration = %integration.id, attempt,
                    reason = %error.reason, retry_at = ?retry_at, fallback = ?fallback,
                    "notification delivery failed");
                let kind = EventKind::NotificationFailed(DeliveryFailed {
                    target,
                    attempt,
                    reason: error.reason.clone(),
                    class: error.class.to_string(),
                    status: error.status,
                    retryable: error.retryable,
                    retry_at,
                    gave_up: retry_at.is_none(),
                    fallback,
                });
                self.record(kind, group).await?;
                if was_failing + 1 >= self.settings.failing_after.max(1) {
                    self.raise_failing(receiver, integration, Some(&error.reason), done_at)
                        .await;
                }
                Ok(Outcome::Failed)
            }
        }
    }

    /// Sends the rendered message: as an edit of the group's last message
    /// when the due is an update in place, the integration can edit and
    /// the thread has a message; else (or when the edit is refused: the
    /// message was deleted or is too old to edit) as a new message. Says
    /// whether it edited.
    async fn send_or_update(
        &self,
        receiver: &ReceiverRuntime,
        integration: &Integration,
        items: &[Pending],
        rendered: &super::Rendered,
    ) -> (Result<super::Delivered, super::DeliveryError>, bool) {
        let notifier = &integration.notifier;
        let thread = match (items, &self.threads) {
            ([one], Some(threads))
                if one.due.update_in_place
                    && one.due.escalation.is_none()
                    && notifier.updates_in_place() =>
            {
                threads.get(&one.due.group.group, &receiver.name, &integration.id)
            }
            _ => None,
        };
        let Some(thread) = thread else {
            return (notifier.send(&rendered.payload).await, false);
        };
        match notifier
            .send_update(&rendered.payload, &thread.message_ref)
            .await
        {
            Ok(mut delivered) => {
                // The edited message stays the thread.
                delivered.message_ref.get_or_insert(thread.message_ref);
                (Ok(delivered), true)
            }
            Err(e) if !e.retryable => {
                tracing::info!(receiver = %receiver.name, integration = %integration.id,
                    reason = %e.reason, "the message to update cannot be edited; sending a new one");
                (notifier.send(&rendered.payload).await, false)
            }
            Err(e) => (Err(e), false),
        }
    }

    /// Exponential backoff from `initial_backoff`, doubled per attempt, capped
    /// at `max_backoff`, with ±20% jitter so a recovering endpoint is not hit
    /// by every retry at once; at least what `Retry-After` asked.
    fn backoff(&self, attempt: u32, retry_after: Option<std::time::Duration>) -> Duration {
        let initial = self.settings.initial_backoff.0.num_milliseconds().max(1) as f64;
        let max = self.settings.max_backoff.0.num_milliseconds().max(1) as f64;
        let base = (initial * 2f64.powi(attempt.saturating_sub(1).min(30) as i32)).min(max);
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        let mut ms = (base * jitter) as i64;
        if let Some(after) = retry_after {
            ms = ms.max(after.as_millis() as i64);
        }
        Duration::milliseconds(ms.max(1))
    }

    async fn record(&self, kind: EventKind, key: String) -> Result<(), Arc<LogError>> {
        let event = NewEvent::new(self.clock.now(), "fenghuo", key, kind);
        self.log.append(vec![event]).await?;
        Ok(())
    }

    /// Raise (or, with `reason` None, resolve) `FenghuoNotificationsFailing`
    /// for one integration. Ingest stores only changes, so raising it again
    /// while it fires costs nothing.
    async fn raise_failing(
        &self,
        receiver: &ReceiverRuntime,
        integration: &Integration,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let Some(ingest) = &self.ingest else { return };
        let labels: LabelSet = [
            ("alertname", FAILING_ALERT),
            ("receiver", receiver.name.as_str()),
            ("integration", integration.id.as_str()),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut annotations = LabelSet::new();
        annotations.insert(
            "summary".into(),
            format!(
                "Notifications to {} ({}) keep failing",
                receiver.name, integration.id
            ),
        );
        if let Some(reason) = reason {
            annotations.insert("description".into(), format!("Last error: {reason}"));
        }
        let fp = Fingerprint::of(&labels);
        let starts_at = self
            .store
            .get(fp)
            .filter(|a| a.firing_at(now))
            .map_or(now, |a| a.report.starts_at);
        let alert = IncomingAlert::new(
            labels,
            annotations,
            starts_at,
            reason.is_none().then_some(now),
            String::new(),
            Default::default(),
            reason.is_none(),
        );
        if let Err(e) = ingest.alerts("fenghuo", vec![alert]).await {
            tracing::error!(error = %e, "could not record {FAILING_ALERT}");
        }
    }

    /// The message for one due notification, with the alerts as the store
    /// holds them now.
    pub fn message(&self, p: &Pending, now: DateTime<Utc>) -> Message {
        let mut msg = build_message(
            &p.due,
            &p.receiver,
            &self.store,
            &self.settings.external_url,
            vec![p.due_seq],
            now,
        );
        msg.to = p.due.to.clone();
        if let Some(links) = &self.action_links {
            links.annotate(&mut msg, &p.due, now);
        }
        if let Some(releases) = &self.releases {
            note_releases(&mut msg, releases);
        }
        if let (Some(links), Some(runs)) = (&self.action_links, &self.remediations) {
            approval_links(&mut msg, &links.signer, runs, now);
        }
        msg
    }

    /// One message for several due notifications of one receiver.
    fn digest(&self, items: &[Pending], now: DateTime<Utc>) -> Message {
        let messages: Vec<Message> = items.iter().map(|p| self.message(p, now)).collect();
        // Only resolves held for the digest window: its own wording.
        let held: Option<Vec<DateTime<Utc>>> = items.iter().map(|p| p.due.digest_at).collect();
        match held.and_then(|ends| ends.into_iter().max()) {
            Some(until) => digest_message(&messages, DigestReason::Resolved, Some(until)),
            None => digest_message(&messages, DigestReason::RateLimit, None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Failed,
    Skipped,
}

/// What the one notice of a flapping alert adds to its summary and to a
/// `flapping` annotation.
pub const FLAPPING_NOTE: &str =
    "flapping: further changes are recorded, not paged, until it is stable";

/// Build the message templates see from a due notification.
pub fn build_message(
    due: &NotificationDue,
    receiver: &str,
    store: &AlertStore,
    external_url: &str,
    due_seqs: Vec<u64>,
    now: DateTime<Utc>,
) -> Message {
    let new: HashSet<&String> = due.new.iter().collect();
    let mut alerts = Vec::with_capacity(due.firing.len() + due.resolved.len());
    for (fps, firing) in [(&due.firing, true), (&due.resolved, false)] {
        for fp in fps {
            let Some(stored) = Fingerprint::parse(fp).and_then(|f| store.get(f)) else {
                continue;
            };
            let r = &stored.report;
            alerts.push(alert_data(
                fp,
                &r.labels,
                &r.annotations,
                r.starts_at,
                if firing { None } else { stored.ends_at },
                &r.generator_url,
                firing,
                new.contains(fp),
                now,
            ));
        }
    }
    // The one notice of an alert that started flapping says so: its later
    // flips are not paged, and the reader must not wait for them.
    for alert in alerts
        .iter_mut()
        .filter(|a| a.status == "firing" && due.flapping.contains(&a.fingerprint))
    {
        let note = FLAPPING_NOTE.to_string();
        alert.summary = format!("{} ({note})", alert.summary);
        alert.annotations.insert("flapping".to_string(), note);
    }
    // Listed before and nothing new about it: a follow-up counts it. A
    // group's first message has nothing before it.
    let follows = due.changes_only || due.update_in_place;
    for alert in alerts.iter_mut() {
        alert.unchanged = follows
            && alert.status == "firing"
            && !alert.is_new
            && !due.flapping.contains(&alert.fingerprint);
    }
    alerts.sort_by(reading_order);
    let follow_up = super::FollowUp {
        changes_only: due.changes_only,
        unchanged_count: alerts.iter().filter(|a| a.unchanged).count(),
        in_place: due.update_in_place,
    };
    let mut message = finish_message(
        receiver,
        due.group.group_key.clone(),
        due.group.group_labels.clone(),
        alerts,
        due.repeat,
        external_url,
        due_seqs,
    );
    message.follow_up = follow_up;
    // Symptoms muted with their cause: counted, so the cause's page says
    // what else it brought down.
    message.symptoms = crate::evaluate::topology::summary_of(&due.symptoms);
    message
}

#[allow(clippy::too_many_arguments)]
pub fn alert_data(
    fingerprint: &str,
    labels: &LabelSet,
    annotations: &LabelSet,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    generator_url: &str,
    firing: bool,
    is_new: bool,
    now: DateTime<Utc>,
) -> AlertData {
    let summary = ["summary", "description", "message"]
        .iter()
        .find_map(|k| annotations.get(k))
        .or_else(|| labels.get("alertname"))
        .map(str::to_string)
        .unwrap_or_default();
    AlertData {
        status: if firing { "firing" } else { "resolved" }.to_string(),
        fingerprint: fingerprint.to_string(),
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at,
        ends_at,
        generator_url: generator_url.to_string(),
        is_new: firing && is_new,
        severity: labels
            .get("severity")
            .map(str::to_string)
            .unwrap_or_default(),
        runbook_url: annotations
            .get("runbook_url")
            .or_else(|| annotations.get("runbook"))
            .map(str::to_string),
        summary,
        duration: humanize_since(starts_at, ends_at.unwrap_or(now)),
        unchanged: false,
    }
}

/// Counts, common labels and the title, from the alerts.
pub fn finish_message(
    receiver: &str,
    group_key: String,
    group_labels: LabelSet,
    alerts: Vec<AlertData>,
    repeat: bool,
    external_url: &str,
    due_seqs: Vec<u64>,
) -> Message {
    let counts = Counts {
        firing: alerts.iter().filter(|a| a.status == "firing").count(),
        resolved: alerts.iter().filter(|a| a.status != "firing").count(),
        new: alerts.iter().filter(|a| a.is_new).count(),
    };
    let common_labels = common_pairs(alerts.iter().map(|a| &a.labels));
    let common_annotations = common_pairs(alerts.iter().map(|a| &a.annotations));
    let status = if counts.firing > 0 {
        "firing"
    } else {
        "resolved"
    };
    let title = title(status, &counts, &group_labels, &common_labels);
    Message {
        receiver: receiver.to_string(),
        status: status.to_string(),
        alerts,
        group_key,
        group_labels,
        common_labels,
        common_annotations,
        external_url: external_url.to_string(),
        counts,
        repeat,
        title,
        digest: None,
        actions: Vec::new(),
        due_seqs,
        to: Vec::new(),
        incident: None,
        follow_up: Default::default(),
        symptoms: String::new(),
    }
}

/// `[FIRING:3] HighLatency (api prod)`, as Alertmanager's default title.
fn title(status: &str, counts: &Counts, group_labels: &LabelSet, common: &LabelSet) -> String {
    let head = if status == "firing" {
        format!("[FIRING:{}]", counts.firing)
    } else {
        format!("[RESOLVED:{}]", counts.resolved)
    };
    let name = group_labels
        .get("alertname")
        .or_else(|| common.get("alertname"));
    let rest: Vec<&str> = group_labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .map(|(_, v)| v)
        .collect();
    match (name, rest.is_empty()) {
        (Some(n), true) => format!("{head} {n}"),
        (Some(n), false) => format!("{head} {n} ({})", rest.join(" ")),
        (None, false) => format!("{head} {}", rest.join(" ")),
        (None, true) => head,
    }
}

/// Firing before resolved, new before known, then by severity, then by
/// start: the top of a message is what the reader must look at.
fn reading_order(a: &AlertData, b: &AlertData) -> std::cmp::Ordering {
    let key = |x: &AlertData| {
        (
            x.status != "firing",
            !x.is_new,
            super::severity_rank(&x.severity),
            x.starts_at,
        )
    };
    key(a).cmp(&key(b))
}

/// Fold several messages of one receiver into a digest.
pub fn digest_message(
    messages: &[Message],
    reason: DigestReason,
    until: Option<DateTime<Utc>>,
) -> Message {
    let total_alerts: usize = messages.iter().map(|m| m.alerts.len()).sum();
    let mut alerts: Vec<AlertData> = messages
        .iter()
        .flat_map(|m| m.alerts.iter().cloned())
        .collect();
    alerts.sort_by(reading_order);
    let counts = Counts {
        firing: alerts.iter().filter(|a| a.status == "firing").count(),
        resolved: alerts.iter().filter(|a| a.status != "firing").count(),
        new: alerts.iter().filter(|a| a.is_new).count(),
    };
    alerts.truncate(DIGEST_ALERTS);
    let groups: Vec<DigestGroup> = messages
        .iter()
        .take(DIGEST_GROUPS)
        .map(|m| DigestGroup {
            group_labels: m.group_labels.clone(),
            firing: m.counts.firing,
            resolved: m.counts.resolved,
            title: m.title.clone(),
        })
        .collect();
    let first = &messages[0];
    let group_labels = common_pairs(messages.iter().map(|m| &m.group_labels));
    let common_labels = common_pairs(alerts.iter().map(|a| &a.labels));
    let common_annotations = common_pairs(alerts.iter().map(|a| &a.annotations));
    let status = if counts.firing > 0 {
        "firing"
    } else {
        "resolved"
    };
    let title = match (reason, until) {
        (DigestReason::Resolved, Some(until)) if counts.firing == 0 => format!(
            "[RESOLVED] {} alerts resolved in {} groups (digest to {} UTC)",
            counts.resolved,
            messages.len(),
            until.format("%H:%M")
        ),
        _ => format!(
            "[DIGEST] {} firing, {} resolved in {} groups",
            counts.firing,
            counts.resolved,
            messages.len()
        ),
    };
    // The symptoms of each message's causes, said once per group.
    let symptoms: Vec<&str> = messages
        .iter()
        .map(|m| m.symptoms.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    Message {
        symptoms: symptoms.join("; "),
        receiver: first.receiver.clone(),
        status: status.to_string(),
        digest: Some(Digest {
            more_alerts: total_alerts.saturating_sub(alerts.len()),
            more_groups: messages.len().saturating_sub(groups.len()),
            groups,
            reason,
            until,
        }),
        alerts,
        group_key: first.group_key.clone(),
        group_labels,
        common_labels,
        common_annotations,
        external_url: first.external_url.clone(),
        counts,
        repeat: false,
        title,
        actions: Vec::new(),
        due_seqs: messages
            .iter()
            .flat_map(|m| m.due_seqs.iter().copied())
            .collect(),
        // A digest is for the receiver, not a person or one incident.
        to: Vec::new(),
        incident: None,
        follow_up: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::event::GroupRef;

    /// The one notice of a flapping alert tells the reader why no more
    /// pages follow its flips; its other alerts are as they are.
    #[test]
    fn the_notice_of_a_flapping_alert_says_so() {
        let at: DateTime<Utc> = "2026-11-26T06:00:00Z".parse().unwrap();
        let store = AlertStore::new();
        let mut fps = Vec::new();
        for (seq, name) in [(1, "Flappy"), (2, "Steady")] {
            let labels: LabelSet = [("alertname", name)].into();
            let alert = IncomingAlert::new(
                labels,
                [("summary", format!("{name} is down"))].into(),
                at,
                None,
                String::new(),
                Default::default(),
                false,
            );
            fps.push(alert.fingerprint.to_string());
            store.apply(&Event {
                seq,
                id: seq.to_string().into(),
                occurred_at: at,
                recorded_at: at,
                source: "test".into(),
                key: alert.fingerprint.to_string().into(),
                idempotency_key: None,
                kind: EventKind::AlertReceived(Arc::new(alert.report)),
            });
        }
        let due = NotificationDue {
            group: GroupRef {
                group: "g".into(),
                route: "r".into(),
                receiver: "team".into(),
                group_key: "{}:{}".into(),
                group_labels: LabelSet::new(),
            },
            firing: fps.clone(),
            resolved: Vec::new(),
            new: Vec::new(),
            repeat: false,
            muted: Default::default(),
            escalation: None,
            to: Vec::new(),
            flapping: vec![fps[0].clone()],
            changes_only: false,
            update_in_place: false,
            symptoms: Vec::new(),
            digest_at: None,
        };
        let msg = build_message(&due, "team", &store, "", vec![3], at);
        let summary = |name: &str| {
            let a = msg
                .alerts
                .iter()
                .find(|a| a.labels.get("alertname") == Some(name))
                .unwrap();
            (
                a.summary.clone(),
                a.annotations.get("flapping").map(str::to_string),
            )
        };
        assert_eq!(
            summary("Flappy"),
            (
                format!("Flappy is down ({FLAPPING_NOTE})"),
                Some(FLAPPING_NOTE.to_string())
            )
        );
        assert_eq!(summary("Steady"), ("Steady is down".to_string(), None));
    }

    /// A digest of resolves held for the window names the window's end;
    /// a rate limit's surplus keeps its "[DIGEST]" wording.
    #[test]
    fn a_digest_of_held_resolves_is_worded_as_such() {
        let until: DateTime<Utc> = "2026-11-26T09:00:00Z".parse().unwrap();
        let mut messages = Vec::new();
        for (group, resolved) in [("db", 2), ("web", 1)] {
            let mut m = crate::notify::Templates::sample_message();
            m.group_labels = [("service", group)].into();
            m.alerts.retain(|a| a.status != "firing");
            m.alerts.truncate(resolved);
            while m.alerts.len() < resolved {
                let mut a = m.alerts[0].clone();
                a.fingerprint.push('x');
                m.alerts.push(a);
            }
            m.counts = Counts {
                firing: 0,
                resolved,
                new: 0,
            };
            messages.push(m);
        }
        let held = digest_message(&messages, DigestReason::Resolved, Some(until));
        assert_eq!(
            held.title,
            "[RESOLVED] 3 alerts resolved in 2 groups (digest to 09:00 UTC)"
        );
        assert_eq!(held.status, "resolved");
        let digest = held.digest.unwrap();
        assert_eq!(
            (digest.reason, digest.until),
            (DigestReason::Resolved, Some(until))
        );
        let surplus = digest_message(&messages, DigestReason::RateLimit, None);
        assert_eq!(surplus.title, "[DIGEST] 0 firing, 3 resolved in 2 groups");
    }
}
