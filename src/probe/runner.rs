//! Runs the configured probes when their schedules say, at most
//! `probe_concurrency` at once, and appends the runs [`compact`] says to
//! store.
//!
//! Time is the clock's: [`ProbeRunner::start_due`] starts what is due at
//! the clock's `now`, so a test drives a day of schedules with a manual
//! clock, and `fenghuo serve` calls it from [`ProbeRunner::run`], which
//! waits in real time only between passes. A probe whose previous run is
//! still going when it is due again skips that run (counted in
//! `fenghuo_probe_runs_skipped_total`) rather than piling up. This module
//! never decides alerts and never logs a header value.
//!
//! [`compact`]: super::compact

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};

use super::compact::{self, Compaction, ProbeStates, Window};
use super::config::{Check, ProbeConfig};
use super::{Outcome, http, scrape, tcp};
use crate::clock::SharedClock;
use crate::eventlog::{EventKind, EventLog, NewEvent, ProbeResult};
use crate::metrics as names;

/// One probe as the runner holds it.
struct Probe {
    config: ProbeConfig,
    /// `http` and `scrape`: built once, so connections are reused.
    client: Option<reqwest::Client>,
    window: Mutex<Window>,
    busy: AtomicBool,
}

/// (next run, probe index), earliest first.
type RunQueue = BinaryHeap<Reverse<(DateTime<Utc>, usize)>>;

/// The probes of a config and when each runs next.
pub struct ProbeRunner {
    probes: Vec<Probe>,
    log: EventLog,
    clock: SharedClock,
    states: Arc<ProbeStates>,
    permits: Arc<Semaphore>,
    queue: Mutex<RunQueue>,
}

impl ProbeRunner {
    /// Schedules `probes` from the clock's `now`. `concurrency`: the most
    /// runs in flight at once.
    pub fn new(
        probes: &[ProbeConfig],
        concurrency: usize,
        log: EventLog,
        clock: SharedClock,
        states: Arc<ProbeStates>,
    ) -> Result<Arc<ProbeRunner>, String> {
        let now = clock.now();
        let mut queue = BinaryHeap::new();
        let mut held = Vec::with_capacity(probes.len());
        for (i, config) in probes.iter().enumerate() {
            let client = match &config.check {
                Check::Http(c) => Some(http::client(&c.request, config.timeout)?),
                Check::Scrape(c) => Some(http::client(&c.request, config.timeout)?),
                Check::Tcp(_) => None,
            };
            if let Some(at) = config.schedule.next_after(&config.name, now) {
                queue.push(Reverse((at, i)));
            }
            held.push(Probe {
                config: config.clone(),
                client,
                window: Mutex::new(Window::default()),
                busy: AtomicBool::new(false),
            });
        }
        Ok(Arc::new(ProbeRunner {
            probes: held,
            log,
            clock,
            states,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            queue: Mutex::new(queue),
        }))
    }

    pub fn len(&self) -> usize {
        self.probes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// When the next run is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.queue.lock().peek().map(|Reverse((at, _))| *at)
    }

    /// Starts every run due at the clock's `now` and schedules each probe's
    /// next one. The runs wait for a permit; their handles say when they
    /// are stored.
    pub fn start_due(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let now = self.clock.now();
        let mut due = Vec::new();
        {
            let mut queue = self.queue.lock();
            while let Some(Reverse((at, i))) = queue.peek().copied() {
                if at > now {
                    break;
                }
                queue.pop();
                due.push(i);
                // From now, not from `at`: after a stall, runs missed are
                // not made up in a burst.
                let probe = &self.probes[i].config;
                if let Some(next) = probe.schedule.next_after(&probe.name, now.max(at)) {
                    queue.push(Reverse((next, i)));
                }
            }
        }
        let mut started = Vec::with_capacity(due.len());
        for i in due {
            let probe = &self.probes[i];
            if probe.busy.swap(true, Ordering::AcqRel) {
                metrics::counter!(names::PROBE_RUNS_SKIPPED, "probe" => probe.config.name.clone())
                    .increment(1);
                tracing::debug!(probe = %probe.config.name, "previous run still going; skipped");
                continue;
            }
            let runner = self.clone();
            started.push(tokio::spawn(async move {
                runner.run_one(i).await;
                runner.probes[i].busy.store(false, Ordering::Release);
            }));
        }
        started
    }

    /// Starts what is due and waits until it is run and stored.
    pub async fn run_due(self: &Arc<Self>) -> usize {
        let started = self.start_due();
        let n = started.len();
        for handle in started {
            let _ = handle.await;
        }
        n
    }

    /// Runs probes until `shutdown` turns true. Real time enters only here,
    /// as the wait until the next run is due (at most a second, so a clock
    /// that jumps is followed).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(probes = self.len(), "probing");
        loop {
            drop(self.start_due());
            let now = self.clock.now();
            let wait = self
                .next_due()
                .and_then(|at| (at - now).to_std().ok())
                .unwrap_or(std::time::Duration::from_secs(1))
                .clamp(
                    std::time::Duration::from_millis(1),
                    std::time::Duration::from_secs(1),
                );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One run of probe `i`: check, count, and store if compaction says so.
    async fn run_one(&self, i: usize) {
        let probe = &self.probes[i];
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let config = &probe.config;
        let at = self.clock.now();
        let outcome = check(probe).await;
        record_metrics(&config.name, &outcome);

        let last = self.states.get(&config.name);
        let how = Compaction {
            summary_every: config.summary_every,
            value_interval: config.value_interval,
            tolerance: config.tolerance,
        };
        let summary = compact::consider(last.as_ref(), &mut probe.window.lock(), &outcome, at, how);
        let Some(summary) = summary else { return };
        metrics::counter!(names::PROBE_RESULTS_STORED, "reason" => summary.reason.clone())
            .increment(1);
        let event = NewEvent::new(
            at,
            "probe",
            config.name.clone(),
            EventKind::ProbeResult(Arc::new(ProbeResult {
                probe: config.name.clone(),
                probe_type: config.check.type_name().to_string(),
                target: target(&config.check),
                ok: outcome.ok,
                latency_ms: Some((outcome.latency.as_secs_f64() * 1e6).round() / 1e3),
                status: outcome.status,
                values: outcome.values,
                error: outcome.error,
                labels: config.labels.clone(),
                summary: Some(summary),
            })),
        )
        .idempotent(format!("probe/{}/{}", config.name, at.timestamp_millis()));
        if let Err(e) = self.log.append(vec![event]).await {
            tracing::warn!(probe = %config.name, error = %e, "storing a probe result failed");
        }
    }
}

/// Runs the check of `probe` within its timeout.
async fn check(probe: &Probe) -> Outcome {
    let config = &probe.config;
    let started = std::time::Instant::now();
    let run = async {
        match (&config.check, &probe.client) {
            (Check::Http(c), Some(client)) => http::run(client, c).await,
            (Check::Scrape(c), Some(client)) => scrape::run(client, c).await,
            (Check::Tcp(c), _) => tcp::run(c).await,
            (_, None) => unreachable!("http and scrape probes have a client"),
        }
    };
    match tokio::time::timeout(config.timeout, run).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::failed(
            started.elapsed(),
            None,
            format!("timed out after {:?}", config.timeout),
        ),
    }
}

/// What the result names as probed: a URL without its password, or
/// `host:port`.
pub fn target(check: &Check) -> String {
    match check {
        Check::Http(c) => c.request.target(),
        Check::Scrape(c) => c.request.target(),
        Check::Tcp(c) => c.address.clone(),
    }
}

fn record_metrics(probe: &str, outcome: &Outcome) {
    let result = if outcome.ok { "ok" } else { "fail" };
    metrics::counter!(names::PROBE_RUNS, "probe" => probe.to_string(), "result" => result)
        .increment(1);
    metrics::gauge!(names::PROBE_UP, "probe" => probe.to_string()).set(if outcome.ok {
        1.0
    } else {
        0.0
    });
    metrics::gauge!(names::PROBE_DURATION_SECONDS, "probe" => probe.to_string())
        .set(outcome.latency.as_secs_f64());
}
