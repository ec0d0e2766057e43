//! The whole pipeline, assembled in one place.
//!
//! ```text
//! sources ──► log ──► evaluate ──► escalate ──► notify / act
//! ```
//!
//! Each stage has one contract: ingest turns payloads into [`NewEvent`]s and
//! appends them; every view is a [`Projection`] the log keeps current; later
//! stages read the log through a tail and append their decisions. This file
//! is where they are wired together, so a reader finds the chain here and
//! nowhere else.
//!
//! [`NewEvent`]: crate::eventlog::NewEvent

use std::fs::File;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::config::{Config, Routing};
use crate::evaluate::alerts::AlertStore;
use crate::evaluate::dispatch::{Dispatcher, GroupStates};
use crate::evaluate::silence::SilenceStore;
use crate::eventlog::{EventLog, LogOptions, Projection};
use crate::ingest::{AlertIndex, Ingest};
use crate::notify::outbox::{Outbox, OutboxState};

/// The running stages and the views they share.
pub struct Pipeline {
    pub config: Config,
    pub clock: SharedClock,
    pub log: EventLog,
    /// Ingest's view: what the log holds per alert, to tell changes from
    /// re-sends.
    pub alerts: Arc<AlertIndex>,
    /// Every alert as Alertmanager shows it.
    pub store: Arc<AlertStore>,
    pub silences: Arc<SilenceStore>,
    pub groups: Arc<GroupStates>,
    /// Decides group timers and due notifications.
    pub dispatcher: Arc<Dispatcher>,
    /// The routing sections of the config, compiled.
    pub routing: Routing,
    pub ingest: Ingest,
    /// Delivers due notifications and records their outcomes.
    pub outbox: Arc<Outbox>,
    /// Held for the life of the process: one server per data directory.
    _lock: Option<File>,
}

/// Every view the log keeps current.
#[derive(Clone, Default)]
pub struct Views {
    pub alert_index: Arc<AlertIndex>,
    pub alerts: Arc<AlertStore>,
    pub silences: Arc<SilenceStore>,
    pub groups: Arc<GroupStates>,
    pub outbox: Arc<OutboxState>,
}

impl Views {
    pub fn new() -> Self {
        Views {
            alert_index: Arc::new(AlertIndex::new()),
            alerts: Arc::new(AlertStore::new()),
            silences: Arc::new(SilenceStore::new()),
            groups: Arc::new(GroupStates::new()),
            outbox: Arc::new(OutboxState::new()),
        }
    }

    /// Every projection, in the order the writer applies them.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        vec![
            self.alert_index.clone(),
            self.alerts.clone(),
            self.silences.clone(),
            self.groups.clone(),
            self.outbox.clone(),
        ]
    }
}

impl Pipeline {
    /// Opens the log in `config.data_dir` (creating it), replays it into the
    /// projections and builds the stages. Refuses a data directory another
    /// process is serving.
    pub fn open(config: Config, clock: SharedClock) -> anyhow::Result<Pipeline> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock_path = config.data_dir.join("LOCK");
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "{} is in use by another fenghuo process",
                config.data_dir.display()
            )
        })?;

        let routing = config
            .routing()
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let receivers = Arc::new(
            config
                .receivers()
                .map_err(|e| anyhow::anyhow!("config: {e}"))?,
        );
        let views = Views::new();
        let options = LogOptions {
            synchronous: config.storage.synchronous,
            max_batch: config.storage.max_batch,
            snapshot_every: config.storage.snapshot_every,
            ..LogOptions::default()
        };
        let log = EventLog::open(
            &config.db_path(),
            options,
            clock.clone(),
            views.projections(),
        )
        .with_context(|| format!("opening event log {}", config.db_path().display()))?;
        let ingest = Ingest::new(
            log.clone(),
            views.alert_index.clone(),
            clock.clone(),
            config.ingest.settings(),
        );
        let dispatcher = Arc::new(Dispatcher::new(
            log.clone(),
            clock.clone(),
            routing.clone(),
            views.alerts.clone(),
            views.silences.clone(),
            views.groups.clone(),
        ));
        let outbox = Arc::new(Outbox::new(
            log.clone(),
            clock.clone(),
            views.outbox.clone(),
            views.alerts.clone(),
            receivers,
            config.notify.clone(),
            Some(ingest.clone()),
        ));
        Ok(Pipeline {
            outbox,
            config,
            clock,
            log,
            alerts: views.alert_index,
            dispatcher,
            store: views.alerts,
            silences: views.silences,
            groups: views.groups,
            routing,
            ingest,
            _lock: Some(lock),
        })
    }

    /// Starts the background stages; they stop when `shutdown` turns true.
    pub fn spawn_background(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let ingest = self.ingest.clone();
        let dispatcher = self.dispatcher.clone();
        let log = self.log.clone();
        let clock = self.clock.clone();
        let dispatch_shutdown = shutdown.clone();
        let deliver_shutdown = shutdown.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let delivering = tokio::spawn(deliver(outbox, clock.clone(), deliver_shutdown));
            let dispatching = tokio::spawn(dispatch(dispatcher, log, clock, dispatch_shutdown));
            lease_checkpoints(ingest, shutdown).await;
            let _ = dispatching.await;
            let _ = delivering.await;
        })
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        self.log.close();
    }
}

/// Runs the dispatcher whenever the log changes or its next timer is due
/// (and at least every second, for `endsAt`s that pass).
async fn dispatch(
    dispatcher: Arc<Dispatcher>,
    log: EventLog,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut live = log.subscribe();
    loop {
        if let Err(e) = dispatcher.step().await {
            tracing::warn!(error = %e, "dispatch step failed; retrying");
        }
        // A pass walks every alert. Under a burst of events, space passes so
        // deciding takes at most about half a core, instead of re-deciding
        // after every commit. Only the deciding counts: the commit of its
        // decisions is I/O, and counting it made big passes sleep longer,
        // which made the next pass bigger still.
        let spent = dispatcher.last_decide();
        if spent > std::time::Duration::from_millis(10) {
            let _ = tokio::time::timeout(spent, shutdown.changed()).await;
            if *shutdown.borrow() {
                return;
            }
        }
        // Until the next timer, and at most a second (alerts' `endsAt`s pass
        // without an event). A timer already past was just decided on.
        let wait = wait_until(dispatcher.groups().next_due(), clock.now());
        tokio::select! {
            woke = tokio::time::timeout(wait, next_input(&mut live)) => {
                if let Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) = woke {
                    return;
                }
                // Take everything already committed, then decide once.
                while live.try_recv().is_ok() {}
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Waits for an event that can change what the dispatcher decides: alerts
/// and silences. Its own decisions (`alert.fired`, `group.*`) and the
/// outbox's outcomes cannot, and waking for them cost a pass that competed
/// with the next real one.
async fn next_input(
    live: &mut tokio::sync::broadcast::Receiver<Arc<crate::eventlog::Event>>,
) -> Result<(), tokio::sync::broadcast::error::RecvError> {
    use crate::eventlog::EventKind as K;
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match live.recv().await {
            Ok(e) => match e.kind {
                K::AlertReceived(_)
                | K::AlertRefreshed { .. }
                | K::AlertResolved(_)
                | K::AlertAcked { .. }
                | K::SilenceCreated(_)
                | K::SilenceUpdated(_)
                | K::SilenceExpired { .. } => return Ok(()),
                K::AlertFired { .. }
                | K::GroupScheduled(_)
                | K::GroupClosed(_)
                | K::NotificationDue(_)
                | K::NotificationSent(_)
                | K::NotificationFailed(_)
                | K::NotificationSkipped(_)
                // Rule inputs: the rule engine turns them into `alert.*`.
                | K::K8sEvent(_)
                | K::ProbeResult(_)
                | K::HeartbeatReceived(_) => continue,
            },
            // Missed some: one of them may matter.
            Err(RecvError::Lagged(_)) => return Ok(()),
            Err(RecvError::Closed) => return Err(RecvError::Closed),
        }
    }
}

/// How long a background loop may sleep: until its next timer, and at most
/// a second. A timer already past was just acted on.
fn wait_until(
    next: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> std::time::Duration {
    next.filter(|at| *at > now)
        .and_then(|at| (at - now).to_std().ok())
        .unwrap_or(std::time::Duration::from_secs(1))
        .clamp(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_secs(1),
        )
}

/// Runs the outbox whenever a due notification or an outcome is folded, or
/// a retry or rate-limit slot comes due. Sends run on their own tasks; their
/// outcomes wake this loop through the log.
async fn deliver(outbox: Arc<Outbox>, clock: SharedClock, mut shutdown: watch::Receiver<bool>) {
    loop {
        // Detached: each records its outcome, which wakes this loop.
        drop(outbox.start_ready());
        let wait = wait_until(outbox.next_wake(), clock.now());
        tokio::select! {
            _ = tokio::time::timeout(wait, outbox.state().changed()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes re-sent `endsAt`s down every `lease_checkpoint`. The interval is the
/// edge where real time enters; what is due is decided from the clock.
async fn lease_checkpoints(ingest: Ingest, mut shutdown: watch::Receiver<bool>) {
    let period = ingest
        .settings
        .lease_checkpoint
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match ingest.checkpoint_leases().await {
                    Ok(n) => {
                        metrics::counter!(crate::metrics::LEASES_WRITTEN).increment(n as u64);
                        metrics::gauge!(crate::metrics::ALERTS_INDEXED).set(ingest.index().len() as f64);
                    }
                    Err(e) => tracing::warn!(error = %e, "lease checkpoint failed; retrying next tick"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
