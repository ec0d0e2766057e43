//! Remediation runs: [`Remediations`], their fold over the log, and
//! [`Remediator`], the executor that calls what was decided.
//!
//! The same pattern as the notification outbox: a `remediation.due` is
//! committed before the call; the executor calls only what a commit
//! covers, only once approved when the action requires it, and records
//! each attempt as `remediation.succeeded` or `remediation.failed` (with
//! its retry time). After a restart the fold knows which runs have no
//! outcome and only those are called; a crash between the target's answer
//! and the commit of the outcome calls once more with the same
//! `Idempotency-Key`, which the target deduplicates.
//!
//! Nothing here decides whether to remediate (the act stage does), and
//! nothing here calls anything the log does not already hold.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::config::RemediationConfig;
use super::hook;
use crate::clock::SharedClock;
use crate::eventlog::event::{RemediationApproval, RemediationCall, RemediationDue};
use crate::eventlog::{Event, EventKind, EventLog, LogError, NewEvent, Projection};

/// Runs remembered per action and app for the hourly limit.
const RECENT_KEPT: usize = 256;
/// Finished runs (and the ids of refused ones) are remembered this long
/// (log time) once more than `RUNS_KEPT` are known. Scopes are releases in
/// their bake window and open incidents, which do not come back after it.
const KEEP_DONE_HOURS: i64 = 48;
const RUNS_KEPT: usize = 1024;

/// One remediation run and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub due: RemediationDue,
    /// `seq` of the decision: not called before it is committed.
    pub seq: u64,
    pub decided_at: DateTime<Utc>,
    /// `waiting_approval`, `pending`, `retrying`, `succeeded`, `failed`,
    /// `dry_run`.
    pub status: String,
    pub attempts: u32,
    pub next_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: String,
}

impl Run {
    pub fn done(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "dry_run")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Inner {
    runs: BTreeMap<String, Run>,
    /// Ids decided in any way (due, dry run, refused) and when: one run
    /// each.
    decided: BTreeMap<String, DateTime<Utc>>,
    /// `{action}/{app}` → when runs were decided, for the hourly limit.
    recent: BTreeMap<String, VecDeque<DateTime<Utc>>>,
}

/// Every remediation run as a fold over the log.
#[derive(Default)]
pub struct Remediations {
    inner: RwLock<Inner>,
    changed: tokio::sync::Notify,
    dirty: AtomicBool,
    committed_through: AtomicU64,
}

impl Remediations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<Run> {
        self.inner.read().runs.get(id).cloned()
    }

    /// Every run, newest decision first.
    pub fn all(&self) -> Vec<Run> {
        let mut v: Vec<Run> = self.inner.read().runs.values().cloned().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.seq));
        v
    }

    /// Runs waiting for a person's approval, oldest first.
    pub fn waiting_approval(&self) -> Vec<Run> {
        let mut v: Vec<Run> = self
            .inner
            .read()
            .runs
            .values()
            .filter(|r| r.status == "waiting_approval")
            .cloned()
            .collect();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Whether a run with this id was decided (due, dry run or refused).
    pub fn decided(&self, id: &str) -> bool {
        self.inner.read().decided.contains_key(id)
    }

    /// Runs of `action` for `app` decided in the hour before `now`.
    pub fn runs_in_last_hour(&self, action: &str, app: &str, now: DateTime<Utc>) -> u32 {
        let horizon = now - Duration::hours(1);
        self.inner
            .read()
            .recent
            .get(&format!("{action}/{app}"))
            .map_or(0, |q| q.iter().filter(|t| **t > horizon).count() as u32)
    }

    /// Resolves when a decision or an outcome was committed.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Forgets finished runs and refusals decided long ago (log time, so a
    /// replay forgets the same ones), once there are many.
    fn forget_old(inner: &mut Inner, now: DateTime<Utc>) {
        if inner.decided.len() <= RUNS_KEPT {
            return;
        }
        let horizon = now - Duration::hours(KEEP_DONE_HOURS);
        let Inner { runs, decided, .. } = inner;
        decided.retain(|id, at| *at >= horizon || runs.get(id).is_some_and(|r| !r.done()));
        runs.retain(|id, _| decided.contains_key(id));
    }

    fn count(inner: &mut Inner, due: &RemediationDue, at: DateTime<Utc>) {
        let q = inner
            .recent
            .entry(format!("{}/{}", due.action, due.app))
            .or_default();
        q.push_back(at);
        while q.len() > RECENT_KEPT {
            q.pop_front();
        }
    }
}

impl Projection for Remediations {
    fn name(&self) -> &'static str {
        "remediations"
    }

    fn apply(&self, event: &Event) {
        let at = event.occurred_at;
        match &event.kind {
            EventKind::RemediationDue(due) => {
                let mut inner = self.inner.write();
                inner.decided.insert(due.id.clone(), at);
                Remediations::count(&mut inner, due, at);
                inner.runs.insert(
                    due.id.clone(),
                    Run {
                        due: due.clone(),
                        seq: event.seq,
                        decided_at: at,
                        status: if due.require_ack {
                            "waiting_approval".into()
                        } else {
                            "pending".into()
                        },
                        attempts: 0,
                        next_at: None,
                        approved_by: None,
                        last_status: None,
                        last_error: String::new(),
                    },
                );
                Remediations::forget_old(&mut inner, at);
            }
            EventKind::RemediationDryRun(due) => {
                let mut inner = self.inner.write();
                inner.decided.insert(due.id.clone(), at);
                Remediations::count(&mut inner, due, at);
                inner.runs.insert(
                    due.id.clone(),
                    Run {
                        due: due.clone(),
                        seq: event.seq,
                        decided_at: at,
                        status: "dry_run".into(),
                        attempts: 0,
                        next_at: None,
                        approved_by: None,
                        last_status: None,
                        last_error: String::new(),
                    },
                );
                Remediations::forget_old(&mut inner, at);
                return;
            }
            EventKind::RemediationRefused(r) => {
                let mut inner = self.inner.write();
                inner.decided.insert(r.id.clone(), at);
                Remediations::forget_old(&mut inner, at);
                return;
            }
            EventKind::RemediationApproved(a) => {
                let mut inner = self.inner.write();
                if let Some(run) = inner.runs.get_mut(&a.id)
                    && run.status == "waiting_approval"
                {
                    run.approved_by = Some(a.by.clone());
                    run.status = "pending".into();
                }
            }
            EventKind::RemediationSucceeded(c) | EventKind::RemediationFailed(c) => {
                let ok = matches!(event.kind, EventKind::RemediationSucceeded(_));
                let mut inner = self.inner.write();
                if let Some(run) = inner.runs.get_mut(&c.id) {
                    run.attempts = run.attempts.max(c.attempt);
                    run.last_status = c.status;
                    run.last_error = c.error.clone();
                    run.next_at = c.retry_at;
                    run.status = if ok {
                        "succeeded".into()
                    } else if c.gave_up || c.retry_at.is_none() {
                        "failed".into()
                    } else {
                        "retrying".into()
                    };
                }
            }
            _ => return,
        }
        self.dirty.store(true, Ordering::Release);
    }

    fn committed(&self, seq: u64) {
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

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no remediation {0:?}")]
    Unknown(String),
    #[error("remediation {0} does not wait for approval")]
    NotWaiting(String),
    #[error("`by` (who approves) is required")]
    NoApprover,
    #[error("event log: {0}")]
    Log(Arc<LogError>),
}

/// Records a person's approval of a run that waits for one. Approving
/// twice stores one approval.
pub async fn approve(
    log: &EventLog,
    runs: &Remediations,
    id: &str,
    by: &str,
    via: &str,
    token: Option<String>,
    now: DateTime<Utc>,
) -> Result<RemediationApproval, ApproveError> {
    let run = runs
        .get(id)
        .ok_or_else(|| ApproveError::Unknown(id.to_string()))?;
    if run.status != "waiting_approval" {
        return Err(ApproveError::NotWaiting(id.to_string()));
    }
    if by.trim().is_empty() {
        return Err(ApproveError::NoApprover);
    }
    let approval = RemediationApproval {
        id: id.to_string(),
        by: by.to_string(),
        via: via.to_string(),
        token,
    };
    let stored = log
        .append(vec![
            NewEvent::new(
                now,
                via,
                id,
                EventKind::RemediationApproved(approval.clone()),
            )
            .idempotent(format!("approve:{id}")),
        ])
        .await
        .map_err(ApproveError::Log)?;
    if stored.first().is_some_and(|a| a.duplicate) {
        return Err(ApproveError::NotWaiting(id.to_string()));
    }
    Ok(approval)
}

/// The executor: calls each committed, approved run that is due and
/// records what came back.
pub struct Remediator {
    log: EventLog,
    clock: SharedClock,
    state: Arc<Remediations>,
    /// Swapped on reload: the allow-list, actions and their secrets,
    /// timeouts; calls under way finish with the ones they started with.
    settings: RwLock<Arc<Settings>>,
    in_flight: Mutex<HashSet<String>>,
}

struct Settings {
    config: RemediationConfig,
    client: reqwest::Client,
}

impl Settings {
    fn new(config: RemediationConfig) -> Arc<Settings> {
        Arc::new(Settings {
            client: hook::client(config.allowed_hosts.clone()),
            config,
        })
    }
}

impl Remediator {
    pub fn new(
        log: EventLog,
        clock: SharedClock,
        state: Arc<Remediations>,
        config: RemediationConfig,
    ) -> Remediator {
        Remediator {
            settings: RwLock::new(Settings::new(config)),
            log,
            clock,
            state,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// Puts a reloaded `remediation:` section in force for the calls
    /// started from now on.
    pub fn set_config(&self, config: RemediationConfig) {
        *self.settings.write() = Settings::new(config);
    }

    pub fn state(&self) -> &Arc<Remediations> {
        &self.state
    }

    /// Runs ready at `now`: committed, approved if needed, retry time
    /// passed, not being called.
    fn ready(&self, now: DateTime<Utc>) -> Vec<Run> {
        let committed = self.state.committed_through.load(Ordering::Acquire);
        let inner = self.state.inner.read();
        let in_flight = self.in_flight.lock();
        inner
            .runs
            .values()
            .filter(|r| matches!(r.status.as_str(), "pending" | "retrying"))
            .filter(|r| r.seq <= committed)
            .filter(|r| r.next_at.is_none_or(|t| t <= now))
            .filter(|r| !in_flight.contains(&r.due.id))
            .cloned()
            .collect()
    }

    /// When a retry comes due.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.state
            .inner
            .read()
            .runs
            .values()
            .filter(|r| r.status == "retrying")
            .filter_map(|r| r.next_at)
            .min()
    }

    /// Calls every ready run, each on its own task.
    pub fn start_ready(
        self: &Arc<Self>,
    ) -> Vec<tokio::task::JoinHandle<Result<bool, Arc<LogError>>>> {
        let now = self.clock.now();
        let runs = self.ready(now);
        let mut handles = Vec::with_capacity(runs.len());
        for run in runs {
            self.in_flight.lock().insert(run.due.id.clone());
            let me = self.clone();
            handles.push(tokio::spawn(async move {
                let result = me.call(&run).await;
                me.in_flight.lock().remove(&run.due.id);
                result
            }));
        }
        handles
    }

    /// Calls every ready run and waits for their outcomes to be recorded;
    /// answers how many calls were made. Tests drive this.
    pub async fn step(self: &Arc<Self>) -> Result<usize, Arc<LogError>> {
        let handles = self.start_ready();
        let n = handles.len();
        for h in handles {
            match h.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(join) => tracing::error!(error = %join, "remediation task panicked"),
            }
        }
        Ok(n)
    }

    /// One attempt of `run`; the outcome is recorded before this returns.
    async fn call(&self, run: &Run) -> Result<bool, Arc<LogError>> {
        let attempt = run.attempts + 1;
        let due = &run.due;
        let settings = self.settings.read().clone();
        let (config, client) = (&settings.config, &settings.client);
        let outcome = match config.action(&due.action) {
            None => Err((
                "the action is no longer configured".to_string(),
                None,
                0,
                String::new(),
                false,
            )),
            Some(action) => match hook::check_host(&due.request.url, &config.allowed_hosts) {
                // The allow-list may have shrunk since the decision.
                Err(why) => Err((why, None, 0, String::new(), false)),
                Ok(()) => {
                    let timeout = action.timeout.unwrap_or(config.timeout).0;
                    let answer = hook::call(
                        client,
                        action,
                        &due.request,
                        &due.idempotency_key,
                        timeout
                            .to_std()
                            .unwrap_or(std::time::Duration::from_secs(10)),
                    )
                    .await;
                    if answer.ok {
                        Ok(answer)
                    } else {
                        Err((
                            answer.error,
                            answer.status,
                            answer.latency_ms,
                            answer.body,
                            answer.retryable,
                        ))
                    }
                }
            },
        };
        let now = self.clock.now();
        let (kind, ok) = match outcome {
            Ok(a) => {
                tracing::info!(remediation = %due.id, status = a.status, "remediation called");
                (
                    EventKind::RemediationSucceeded(RemediationCall {
                        id: due.id.clone(),
                        attempt,
                        status: a.status,
                        latency_ms: a.latency_ms,
                        body: a.body,
                        error: String::new(),
                        retry_at: None,
                        gave_up: false,
                    }),
                    true,
                )
            }
            Err((error, status, latency_ms, body, retryable)) => {
                let backoff = backoff(config, attempt);
                let retry_at = (retryable && now + backoff < run.decided_at + config.retry_for.0)
                    .then_some(now + backoff);
                tracing::warn!(remediation = %due.id, attempt, %error, "remediation call failed");
                (
                    EventKind::RemediationFailed(RemediationCall {
                        id: due.id.clone(),
                        attempt,
                        status,
                        latency_ms,
                        body,
                        error,
                        gave_up: retry_at.is_none(),
                        retry_at,
                    }),
                    false,
                )
            }
        };
        let outcome = if ok { "succeeded" } else { "failed" };
        metrics::counter!(crate::metrics::REMEDIATION_CALLS, "action" => due.action.clone(), "outcome" => outcome)
            .increment(1);
        self.log
            .append(vec![NewEvent::new(now, "fenghuo", due.id.clone(), kind)])
            .await?;
        Ok(ok)
    }
}

/// The wait before attempt `attempt + 1`: doubling from `initial_backoff`,
/// at most `max_backoff`.
fn backoff(config: &RemediationConfig, attempt: u32) -> Duration {
    let base = config.initial_backoff.0;
    let factor = 1i32 << attempt.saturating_sub(1).min(16);
    (base * factor).min(config.max_backoff.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::event::{RemediationRefusal, RemediationRequest};

    fn event(seq: u64, at: DateTime<Utc>, kind: EventKind) -> Event {
        Event {
            seq,
            id: seq.to_string().into(),
            occurred_at: at,
            recorded_at: at,
            source: "fenghuo".into(),
            key: Default::default(),
            idempotency_key: None,
            kind,
        }
    }

    /// Runs decided long ago are forgotten once there are many; a run
    /// still waiting is kept however old.
    #[test]
    fn old_finished_runs_are_forgotten_and_waiting_ones_kept() {
        let t0: DateTime<Utc> = "2026-11-26T00:00:00Z".parse().unwrap();
        let view = Remediations::new();
        let due = RemediationDue {
            id: "drain:inc-1".into(),
            action: "drain".into(),
            app: "infra".into(),
            env: String::new(),
            scope: "inc-1".into(),
            reason: String::new(),
            trigger: String::new(),
            release: None,
            rollback_to: None,
            request: RemediationRequest {
                method: "POST".into(),
                url: "http://h/".into(),
                header_names: vec![],
                body: String::new(),
            },
            idempotency_key: "k".into(),
            require_ack: true,
        };
        view.apply(&event(1, t0, EventKind::RemediationDue(due)));
        for n in 0..RUNS_KEPT as u64 + 10 {
            let refused = EventKind::RemediationRefused(RemediationRefusal {
                id: format!("restart:inc-{n}"),
                action: "restart".into(),
                app: "web".into(),
                reason: "rate limit".into(),
                request: None,
            });
            view.apply(&event(n + 2, t0, refused));
        }
        assert!(view.decided("restart:inc-0"));
        let later = EventKind::RemediationRefused(RemediationRefusal {
            id: "restart:inc-new".into(),
            action: "restart".into(),
            app: "web".into(),
            reason: "rate limit".into(),
            request: None,
        });
        view.apply(&event(5000, t0 + Duration::hours(49), later));
        assert!(!view.decided("restart:inc-0"));
        assert!(view.decided("restart:inc-new"));
        assert_eq!(view.get("drain:inc-1").unwrap().status, "waiting_approval");
        assert!(view.decided("drain:inc-1"));
    }
}
