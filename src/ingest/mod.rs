//! Ingest: turning outside payloads into events.
//!
//! Owns the parsers of what senders post (Alertmanager API v2 and webhook,
//! PagerDuty Events v2) and the rule for what of it is worth a log entry: a
//! new alert, changed labels or annotations, a resolve, or an `endsAt` that
//! the log must hold before the stored one runs out — never a plain re-send.
//! Kubernetes events (`POST /ingest/kubernetes` and the API watch) are in
//! [`kubernetes`].
//! Ingest decides nothing about alerting: no routing, silencing or paging.

pub mod alertmanager;
pub mod error;
pub mod heartbeat;
pub mod index;
pub mod kubernetes;
pub mod pagerduty;
pub mod validate;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

pub use error::IngestError;
pub use index::AlertIndex;

use crate::clock::SharedClock;
use crate::evaluate::Fingerprint;
use crate::eventlog::{
    AlertReport, AlertResolution, EventKind, EventLog, LabelSet, Lease, LogError, NewEvent,
};

/// Ingest settings (`ingest:` in `fenghuo.yaml`).
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// `endsAt` of an API v2 alert posted without one (Alertmanager's
    /// `resolve_timeout`).
    pub resolve_timeout: Duration,
    /// When a re-send is answered, the log holds its alert's `endsAt` at
    /// least this far ahead (or the re-sent `endsAt` itself, if nearer). It
    /// must exceed the senders' re-send gap plus a restart: Prometheus with
    /// the default 1m evaluation and 1m resend delay re-sends every ~2m.
    pub lease_horizon: Duration,
    /// How often re-sent `endsAt`s are written down, in one event.
    pub lease_checkpoint: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            resolve_timeout: Duration::minutes(5),
            lease_horizon: Duration::seconds(150),
            lease_checkpoint: Duration::seconds(30),
        }
    }
}

/// One alert as a sender reported it, validated.
#[derive(Debug, Clone)]
pub struct IncomingAlert {
    pub report: AlertReport,
    pub fingerprint: Fingerprint,
    /// The sender says it is over (webhook `status: resolved`, or an `endsAt`
    /// not after now).
    pub resolved: bool,
}

impl IncomingAlert {
    pub fn new(
        labels: LabelSet,
        annotations: LabelSet,
        starts_at: DateTime<Utc>,
        ends_at: Option<DateTime<Utc>>,
        generator_url: String,
        extra: serde_json::Map<String, serde_json::Value>,
        resolved: bool,
    ) -> Self {
        let fingerprint = Fingerprint::of(&labels);
        IncomingAlert {
            report: AlertReport {
                fingerprint: fingerprint.to_string().into(),
                labels,
                annotations,
                starts_at,
                ends_at,
                generator_url,
                extra,
            },
            fingerprint,
            resolved,
        }
    }
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub alerts: usize,
    /// Events this call added to the log (duplicates of concurrent deliveries
    /// excluded).
    pub stored: usize,
}

/// The ingest stage: validated alerts in, events appended.
#[derive(Clone)]
pub struct Ingest {
    log: EventLog,
    index: Arc<AlertIndex>,
    clock: SharedClock,
    pub settings: IngestSettings,
}

impl Ingest {
    pub fn new(
        log: EventLog,
        index: Arc<AlertIndex>,
        clock: SharedClock,
        settings: IngestSettings,
    ) -> Self {
        Ingest {
            log,
            index,
            clock,
            settings,
        }
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn index(&self) -> &AlertIndex {
        &self.index
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Stores what `alerts` change and answers once it is committed.
    ///
    /// Each event expects its alert to be at the version the plan saw. When
    /// a concurrent request changed one first (the same delivery twice, or
    /// two senders), that event is not stored and the request is planned
    /// again against the new state — usually finding nothing left to say.
    pub async fn alerts(
        &self,
        source: &str,
        alerts: Vec<IncomingAlert>,
    ) -> Result<IngestOutcome, Arc<LogError>> {
        let now = self.clock.now();
        let stored = self
            .append_planned(|| self.plan(source, now, alerts.iter()))
            .await?;
        Ok(IngestOutcome {
            alerts: alerts.len(),
            stored,
        })
    }

    /// Appends what `plan` returns until no event lost a version race.
    pub(crate) async fn append_planned(
        &self,
        plan: impl Fn() -> Vec<NewEvent>,
    ) -> Result<usize, Arc<LogError>> {
        let mut stored = 0;
        // Each round can only lose to a request that changed the alert, and
        // then sees that change: a handful of rounds is plenty.
        for _ in 0..16 {
            let events = plan();
            if events.is_empty() {
                return Ok(stored);
            }
            let answers = self.log.append(events).await?;
            stored += answers.iter().filter(|a| !a.duplicate).count();
            if answers.iter().all(|a| !a.duplicate) {
                return Ok(stored);
            }
        }
        Err(Arc::new(LogError::Contended))
    }

    /// The events that `alerts` warrant, given what the log already holds.
    fn plan<'a>(
        &self,
        source: &str,
        now: DateTime<Utc>,
        alerts: impl Iterator<Item = &'a IncomingAlert>,
    ) -> Vec<NewEvent> {
        let mut events = Vec::new();
        let mut leases: Vec<(Fingerprint, DateTime<Utc>)> = Vec::new();
        let horizon = now + self.settings.lease_horizon;
        for alert in alerts {
            let fp = alert.fingerprint;
            let known = self.index.get(fp);
            let prev_seq = known.as_ref().map_or(0, |k| k.last_seq);
            let report = &alert.report;
            match (&known, alert.resolved) {
                // Already resolved in the log: nothing new to say.
                (Some(k), true) if !k.firing => {}
                (_, true) => {
                    let ends_at = report.ends_at.unwrap_or(now);
                    let reason = if known.is_some() {
                        "resolved by source"
                    } else {
                        "first seen resolved"
                    };
                    events.push(
                        NewEvent::new(
                            now,
                            source,
                            &report.fingerprint,
                            EventKind::AlertResolved(AlertResolution {
                                fingerprint: report.fingerprint.to_string(),
                                ends_at,
                                reason: reason.into(),
                                report: Some(report.clone()),
                            }),
                        )
                        .expecting(prev_seq),
                    );
                }
                (Some(k), false) if k.firing_at(now) && !changed(k, report) => {
                    // A re-send. Only a later `endsAt` matters, and only once
                    // the stored one is about to run out.
                    match (k.stored_ends, report.ends_at) {
                        (Some(stored), Some(new)) if new > stored => {
                            if stored < horizon {
                                leases.push((fp, new));
                            } else {
                                self.index.note_seen_ends(fp, new);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {
                    events.push(
                        NewEvent::new(
                            now,
                            source,
                            &report.fingerprint,
                            EventKind::AlertReceived(Arc::new(report.clone())),
                        )
                        .expecting(prev_seq),
                    );
                }
            }
        }
        if !leases.is_empty() {
            events.push(lease_event(now, leases));
        }
        events
    }

    /// Writes down, in one event, the re-sent `endsAt`s whose stored value
    /// runs out before the next checkpoint could. Call every
    /// `lease_checkpoint`; returns how many alerts it refreshed.
    pub async fn checkpoint_leases(&self) -> Result<usize, Arc<LogError>> {
        let now = self.clock.now();
        let deadline = now + self.settings.lease_horizon + self.settings.lease_checkpoint * 2;
        let due = self.index.leases_due(deadline);
        let n = due.len();
        if n > 0 {
            self.log.append(vec![lease_event(now, due)]).await?;
        }
        Ok(n)
    }
}

/// Does `report` say something the log does not hold yet? Labels are the
/// fingerprint, so only annotations can differ; an earlier `startsAt` (another
/// Prometheus of an HA pair saw it first) is kept, a later one is not news.
fn changed(known: &index::IndexedAlert, report: &AlertReport) -> bool {
    known.content != index::content_hash(report)
        || report.starts_at < known.starts_at
        || (known.stored_ends.is_some() && report.ends_at.is_none())
}

fn lease_event(now: DateTime<Utc>, mut due: Vec<(Fingerprint, DateTime<Utc>)>) -> NewEvent {
    due.sort_by_key(|(fp, ends)| (*ends, *fp));
    let mut leases: Vec<Lease> = Vec::new();
    for (fp, ends) in due {
        match leases.last_mut() {
            Some(l) if l.ends_at == ends => l.fingerprints.push(fp.to_string()),
            _ => leases.push(Lease {
                ends_at: ends,
                fingerprints: vec![fp.to_string()].into(),
            }),
        }
    }
    NewEvent::new(
        now,
        "fenghuo",
        "alert-leases",
        EventKind::AlertRefreshed { leases },
    )
}
