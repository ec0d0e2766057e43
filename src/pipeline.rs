//! The whole pipeline, assembled in one place.
//!
//! ```text
//! sources ──► log ──► evaluate ──► escalate ──► notify / act
//! ```
//!
//! Each stage has one contract: ingest turns payloads into [`NewEvent`]s and
//! appends them; every view is a [`Projection`] the log keeps current; the
//! deciding stages (the dispatcher, then the escalator) are one
//! [`Decider`](crate::eventlog::Decider), [`Stages`], whose decisions are
//! committed with the events that caused them; the outbox delivers what
//! was decided. This file is where they are wired together, so a reader
//! finds the chain here and nowhere else.
//!
//! [`NewEvent`]: crate::eventlog::NewEvent

use std::fs::File;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::config::{Config, Routing};
use crate::escalate::escalator::Escalator;
use crate::escalate::incident::Incidents;
use crate::evaluate::alerts::AlertStore;
use crate::evaluate::dispatch::{Dispatcher, GroupStates};
use crate::evaluate::silence::SilenceStore;
use crate::eventlog::{Decider, Event, EventLog, LogOptions, NewEvent, Projection};
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
    /// Takes escalation steps of open incidents.
    pub escalator: Arc<Escalator>,
    pub incidents: Arc<Incidents>,
    /// Signs and checks the action links in pages.
    pub links: crate::escalate::link::LinkSigner,
    /// The deciding stages as the writer runs them.
    stages: Arc<Stages>,
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
    pub incidents: Arc<Incidents>,
}

impl Views {
    pub fn new() -> Self {
        Views {
            alert_index: Arc::new(AlertIndex::new()),
            alerts: Arc::new(AlertStore::new()),
            silences: Arc::new(SilenceStore::new()),
            groups: Arc::new(GroupStates::new()),
            outbox: Arc::new(OutboxState::new()),
            incidents: Arc::new(Incidents::new()),
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
            self.incidents.clone(),
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
            routing.clone(),
            views.alerts.clone(),
            views.silences.clone(),
            views.groups.clone(),
        ));
        let oncall = config
            .oncall()
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let escalator = Arc::new(Escalator::new(
            &config.escalation_policies,
            routing.clone(),
            Arc::new(oncall),
            views.incidents.clone(),
        ));
        // Alerts and silences are decided on in the commit that brings them.
        let stages = Arc::new(Stages {
            dispatcher: dispatcher.clone(),
            escalator: escalator.clone(),
        });
        let decider: Arc<dyn Decider> = stages.clone();
        log.set_decider(&decider);
        // Action links in pages: signed with the configured key or the one
        // kept in the data directory, pointing at where people reach us.
        let key = crate::escalate::link::LinkSigner::key_for(
            config.notify.link_secret.as_ref().map(|s| s.expose()),
            &config.data_dir,
        )
        .context("reading or creating the action link key")?;
        let external_url = match config.notify.external_url.as_str() {
            "" => format!("http://{}", config.listen),
            url => url.to_string(),
        };
        let links =
            crate::escalate::link::LinkSigner::new(key, config.notify.link_ttl.0, &external_url);
        let outbox = Arc::new(
            Outbox::new(
                log.clone(),
                clock.clone(),
                views.outbox.clone(),
                views.alerts.clone(),
                receivers,
                config.notify.clone(),
                Some(ingest.clone()),
            )
            .with_action_links(crate::notify::outbox::ActionLinks {
                signer: links.clone(),
                incidents: views.incidents.clone(),
            }),
        );
        Ok(Pipeline {
            outbox,
            escalator,
            incidents: views.incidents.clone(),
            links,
            stages,
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
        let stages = self.stages.clone();
        let log = self.log.clone();
        let clock = self.clock.clone();
        let dispatch_shutdown = shutdown.clone();
        let deliver_shutdown = shutdown.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let delivering = tokio::spawn(deliver(outbox, clock.clone(), deliver_shutdown));
            let dispatching = tokio::spawn(dispatch(stages, log, clock, dispatch_shutdown));
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

/// Asks for a dispatcher pass when a timer is due (and at least every
/// second, for `endsAt`s that pass), and when alerts or silences arrived
/// that the commit bringing them did not decide on (it declines when
/// passes grow slow; see `Decider::wants`).
async fn dispatch(
    stages: Arc<Stages>,
    log: EventLog,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    let dispatcher = &stages.dispatcher;
    let mut live = log.subscribe();
    let mut pass = true;
    loop {
        if pass {
            if let Err(e) = dispatcher.step().await {
                tracing::warn!(error = %e, "dispatch step failed; retrying");
            }
            // A pass walks every alert. Under a burst of events, space
            // passes so deciding takes at most about half a core, instead
            // of re-deciding after every commit. Only the deciding counts:
            // the commit of its decisions is I/O, and counting it made big
            // passes sleep longer, which made the next pass bigger still.
            let spent = dispatcher.last_decide();
            if spent > std::time::Duration::from_millis(10) {
                let _ = tokio::time::timeout(spent, shutdown.changed()).await;
                if *shutdown.borrow() {
                    return;
                }
            }
        }
        // Until the next timer, and at most a second (alerts' `endsAt`s pass
        // without an event). A timer already past was just decided on.
        let wait = wait_until(stages.next_due(), clock.now());
        tokio::select! {
            woke = tokio::time::timeout(wait, next_input(&mut live)) => match woke {
                Err(_) => pass = true,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                Ok(Err(_)) => pass = true,
                Ok(Ok(seq)) => {
                    // Take everything already committed, then decide once,
                    // unless a pass already took all of it into account.
                    let mut newest = seq;
                    loop {
                        match live.try_recv() {
                            Ok(e) if crate::evaluate::dispatch::is_input(&e.kind) => {
                                newest = newest.max(e.seq)
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                                newest = u64::MAX
                            }
                            Err(_) => break,
                        }
                    }
                    pass = newest > dispatcher.decided_through();
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Waits for an event that can change what the dispatcher decides (alerts
/// and silences) and answers its `seq`. Its own decisions and the outbox's
/// outcomes cannot, and waking for them cost a pass that competed with the
/// next real one. Missed events (lagging) may have mattered: `u64::MAX`.
async fn next_input(
    live: &mut tokio::sync::broadcast::Receiver<Arc<crate::eventlog::Event>>,
) -> Result<u64, tokio::sync::broadcast::error::RecvError> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match live.recv().await {
            Ok(e) if crate::evaluate::dispatch::is_input(&e.kind) => return Ok(e.seq),
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => return Ok(u64::MAX),
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

/// The deciding stages, in the order they decide: the dispatcher (groups,
/// timers, due notifications), then the escalator (incident steps, which
/// may follow from the dispatcher's notifications in the same commit).
pub struct Stages {
    pub dispatcher: Arc<Dispatcher>,
    pub escalator: Arc<Escalator>,
}

impl Stages {
    /// The earliest timer of any stage.
    pub fn next_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        [
            self.dispatcher.groups().next_due(),
            self.escalator.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Decider for Stages {
    fn decide(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        seq: u64,
        folded: &[Arc<Event>],
        asked: bool,
    ) -> Vec<NewEvent> {
        let mut out = self.dispatcher.decide(now, seq, folded, asked);
        out.extend(self.escalator.follow(folded, now));
        if asked || self.escalator.wants(folded) {
            out.extend(self.escalator.decide(now));
        }
        out
    }
}
