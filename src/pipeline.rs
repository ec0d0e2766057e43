//! The whole pipeline, assembled in one place.
//!
//! ```text
//! sources ──► log ──► evaluate ──► escalate ──► notify / act
//! ```
//!
//! Each stage has one contract: ingest turns payloads into [`NewEvent`]s and
//! appends them; every view is a [`Projection`] the log keeps current; the
//! deciding stages (the rules, then the dispatcher, then the escalator) are one
//! [`Decider`], [`Stages`], whose decisions are
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
use crate::evaluate::rules::{RuleSet, RulesView};
use crate::evaluate::silence::SilenceStore;
use crate::eventlog::{Decider, Event, EventLog, LogOptions, NewEvent, Projection};
use crate::ingest::{AlertIndex, Ingest};
use crate::notify::outbox::{Outbox, OutboxState};
use crate::probe::{ProbeRunner, ProbeStates};

/// The running stages and the views they share.
pub struct Pipeline {
    /// The config in force: what the process started with, with the
    /// sections a reload puts in force swapped (see [`Pipeline::config`]).
    config: parking_lot::RwLock<Arc<Config>>,
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
    pub incidents: Arc<Incidents>,
    /// Signs and checks the action links in pages.
    pub links: crate::escalate::link::LinkSigner,
    /// The rule engine of the set in force, folded and evaluated by the
    /// writer.
    pub rules: Arc<RulesView>,
    /// The deciding stages as the writer runs them.
    stages: Arc<Stages>,
    pub ingest: Ingest,
    /// Kubernetes events (HTTP and watch) into the log, each change once.
    pub kubernetes: crate::ingest::kubernetes::KubernetesIngest,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Delivers due notifications and records their outcomes.
    pub outbox: Arc<Outbox>,
    /// What the log last holds of each probe: what its next run is
    /// compared with.
    pub probe_states: Arc<ProbeStates>,
    /// Releases, their history and bake windows.
    pub releases: Arc<crate::act::release::Releases>,
    /// Which pod runs on which node, of which workload (from `k8s.event`s).
    pub topology: Arc<crate::evaluate::topology::Topology>,
    /// Calls decided remediation hooks and records their outcomes.
    pub remediator: Arc<crate::act::remediation::Remediator>,
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
    /// Alert state changes and flapping.
    pub flaps: Arc<crate::evaluate::flap::FlapView>,
    pub outbox: Arc<OutboxState>,
    /// Per group and integration, the message updates in place edit.
    pub threads: Arc<crate::notify::threads::MessageThreads>,
    pub incidents: Arc<Incidents>,
    pub rules: Arc<RulesView>,
    pub probe_states: Arc<ProbeStates>,
    /// Per Kubernetes Event object, what the log last stored.
    pub k8s_events: Arc<crate::ingest::kubernetes::K8sEventIndex>,
    /// Per Kubernetes watch, where it resumes and when it last progressed.
    pub k8s_watches: Arc<crate::ingest::kubernetes::WatchProgressView>,
    pub releases: Arc<crate::act::release::Releases>,
    pub remediations: Arc<crate::act::remediation::Remediations>,
    /// Pods by node and workload, for inhibit rules' `through:`.
    pub topology: Arc<crate::evaluate::topology::Topology>,
}

impl Views {
    /// Views with no rules loaded.
    pub fn new() -> Self {
        Self::with_rules(Arc::new(RuleSet::empty()))
    }

    /// Views whose rule engine evaluates `rules`.
    pub fn with_rules(rules: Arc<RuleSet>) -> Self {
        // One table of alerts: the index reads the store's records.
        let alerts = Arc::new(AlertStore::new());
        Views {
            rules: Arc::new(RulesView::new(rules)),
            alert_index: Arc::new(AlertIndex::of(alerts.clone())),
            alerts,
            silences: Arc::new(SilenceStore::new()),
            groups: Arc::new(GroupStates::new()),
            flaps: Default::default(),
            outbox: Arc::new(OutboxState::new()),
            threads: Default::default(),
            incidents: Arc::new(Incidents::new()),
            probe_states: Arc::new(ProbeStates::new()),
            k8s_events: Default::default(),
            k8s_watches: Default::default(),
            releases: Default::default(),
            remediations: Default::default(),
            topology: Default::default(),
        }
    }

    /// Every projection, in the order the writer applies them.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        vec![
            self.alert_index.clone(),
            self.alerts.clone(),
            self.silences.clone(),
            self.groups.clone(),
            self.flaps.clone(),
            self.outbox.clone(),
            self.threads.clone(),
            self.incidents.clone(),
            self.rules.clone(),
            self.probe_states.clone(),
            self.k8s_events.clone(),
            self.k8s_watches.clone(),
            self.releases.clone(),
            self.remediations.clone(),
            self.topology.clone(),
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
        let rules = Arc::new(load_rules(&config)?);
        let views = Views::with_rules(rules.clone());
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
        let dispatcher = Arc::new(
            Dispatcher::new(
                log.clone(),
                routing.clone(),
                views.alerts.clone(),
                views.silences.clone(),
                views.groups.clone(),
                views.flaps.clone(),
            )
            .with_topology(views.topology.clone(), views.releases.clone()),
        );
        let oncall = config
            .oncall()
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let escalator = Arc::new(Escalator::new(
            &config.escalation_policies,
            routing.clone(),
            Arc::new(oncall),
            views.incidents.clone(),
        ));
        let act = crate::act::stage::ActStage::new(
            config.releases.clone(),
            config.remediation.clone(),
            views.releases.clone(),
            views.remediations.clone(),
            views.alerts.clone(),
            views.incidents.clone(),
        )
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        // Alerts and silences are decided on in the commit that brings them.
        let stages = Arc::new(Stages {
            quiet: Arc::new(crate::evaluate::source_quiet::SourceQuiet::new(
                crate::ingest::kubernetes::watch::quiet_after(&config.kubernetes),
                views.k8s_watches.clone(),
                views.alert_index.clone(),
                clock.now(),
            )),
            rules: views.rules.clone(),
            dispatcher: dispatcher.clone(),
            escalator: parking_lot::RwLock::new(escalator),
            act: parking_lot::RwLock::new(Arc::new(act)),
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
            })
            .with_release_notes(views.releases.clone())
            .with_threads(views.threads.clone())
            .with_approval_links(views.remediations.clone()),
        );
        let remediator = Arc::new(crate::act::remediation::Remediator::new(
            log.clone(),
            clock.clone(),
            views.remediations.clone(),
            config.remediation.clone(),
        ));
        record_rules_loaded(&log, &views.rules, &rules, clock.now(), "start-up")?;
        let kubernetes = crate::ingest::kubernetes::KubernetesIngest::new(
            ingest.clone(),
            views.k8s_events.clone(),
            views.k8s_watches.clone(),
        );
        Ok(Pipeline {
            probe_states: views.probe_states.clone(),
            kubernetes,
            releases: views.releases.clone(),
            topology: views.topology.clone(),
            remediator,
            rules: views.rules.clone(),
            outbox,
            incidents: views.incidents.clone(),
            links,
            stages,
            config: parking_lot::RwLock::new(Arc::new(config)),
            clock,
            log,
            alerts: views.alert_index,
            dispatcher,
            store: views.alerts,
            silences: views.silences,
            groups: views.groups,
            ingest,
            reloading: tokio::sync::Mutex::new(()),
            _lock: Some(lock),
        })
    }

    /// The earliest timer of any deciding stage: when the dispatch loop
    /// next runs a pass without an event.
    pub fn next_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.stages.next_due()
    }

    /// Seconds since each watched source was last heard from.
    pub fn quiet_seconds(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<(String, f64)> {
        self.stages.quiet.quiet_seconds(now)
    }

    /// Decides release suspicion and remediation runs (swapped on reload).
    pub fn act(&self) -> Arc<crate::act::stage::ActStage> {
        self.stages.act()
    }

    /// Takes escalation steps of open incidents (swapped on reload).
    pub fn escalator(&self) -> Arc<Escalator> {
        self.stages.escalator()
    }

    /// The config in force. After a reload this is the reloaded file, with
    /// the settings only a restart changes (listen address, data
    /// directory, storage, ingest limits, delivery tuning) kept as the
    /// process started, so what `/api/v2/status` shows is what runs.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// The routing sections in force, compiled (swapped on reload).
    pub fn routing(&self) -> Arc<Routing> {
        self.dispatcher.routing()
    }

    /// Loads the rule files and the config file again (`SIGHUP`,
    /// `POST /-/reload`) and puts them in force: the rule set, the routing
    /// tree, inhibit rules, time intervals, receivers and escalation
    /// policies. A set with any problem is refused, with every problem
    /// (`FILE:LINE:COL: …` for rules), and what runs stays in force.
    /// Settings the process was started with (listen address, data
    /// directory, storage, ingest and delivery tuning) need a restart.
    ///
    /// The new rules are folded from the log off the writer thread; then,
    /// between two writer batches, they catch up with what was folded
    /// meanwhile and everything is swapped at once, so no pass decides
    /// with half of the old and half of the new. The set is then recorded
    /// as `rules.loaded`.
    pub async fn reload(&self, by: &str) -> Result<Reloaded, Vec<String>> {
        let _one = self.reloading.lock().await;
        let result = self.reload_now(by).await;
        let outcome = if result.is_ok() { "loaded" } else { "refused" };
        metrics::counter!(crate::metrics::RULE_LOADS, "outcome" => outcome).increment(1);
        result
    }

    async fn reload_now(&self, by: &str) -> Result<Reloaded, Vec<String>> {
        let running = self.config();
        let mut next = match &running.path {
            Some(path) => Config::load(path).map_err(|e| vec![format!("config: {e}")])?,
            None => (*running).clone(),
        };
        if next.probes != running.probes {
            // The runner holds the probes it started with.
            tracing::warn!("probes: changed in the config; they take effect at the next restart");
        }
        // What only a restart changes stays as the process started.
        next.listen = running.listen.clone();
        next.data_dir = running.data_dir.clone();
        next.storage = running.storage.clone();
        next.ingest = running.ingest.clone();
        next.notify = running.notify.clone();
        next.probes = running.probes.clone();
        next.probe_concurrency = running.probe_concurrency;
        next.kubernetes = running.kubernetes.clone();
        let mut problems = Vec::new();
        let routing = next
            .routing()
            .map_err(|e| problems.push(format!("config: {e}")))
            .ok();
        let receivers = next
            .receivers()
            .map_err(|e| problems.push(format!("config: {e}")))
            .ok();
        let rules = match next.rule_paths() {
            Err(e) => {
                problems.push(format!("config: {e}"));
                None
            }
            Ok(paths) => RuleSet::load(&paths)
                .map_err(|p| problems.extend(p.iter().map(|p| p.to_string())))
                .ok(),
        };
        let (Some(routing), Some(receivers), Some(rules), true) =
            (routing, receivers, rules, problems.is_empty())
        else {
            return Err(problems);
        };
        let rules = Arc::new(rules);
        // A config that loaded has people and schedules that compile.
        let oncall = next.oncall().map_err(|e| vec![format!("config: {e}")])?;
        let escalator = Arc::new(Escalator::new(
            &next.escalation_policies,
            routing.clone(),
            Arc::new(oncall),
            self.incidents.clone(),
        ));
        let act = Arc::new(
            self.stages
                .act()
                .with_config(next.releases.clone(), next.remediation.clone())
                .map_err(|e| vec![format!("config: {e}")])?,
        );
        let failed = |e: Arc<crate::eventlog::LogError>| vec![format!("event log: {e}")];

        // Everything through `through` is committed; what is folded after
        // it is recorded for the new rules to catch up with.
        let (view, log) = (self.rules.clone(), self.log.clone());
        let through = self
            .log
            .between_batches(move || {
                view.begin_recording();
                log.last_seq()
            })
            .await
            .map_err(failed)?;
        let (log, set) = (self.log.clone(), rules.clone());
        let folded = tokio::task::spawn_blocking(move || fold_rules(&log, set, through)).await;
        let fresh = match folded {
            Ok(Ok(view)) => view,
            Ok(Err(e)) => {
                self.rules.stop_recording();
                return Err(vec![format!("event log: {e}")]);
            }
            Err(e) => {
                self.rules.stop_recording();
                return Err(vec![format!("folding the log into the new rules: {e}")]);
            }
        };
        let (view, dispatcher, stages, outbox, remediator) = (
            self.rules.clone(),
            self.dispatcher.clone(),
            self.stages.clone(),
            self.outbox.clone(),
            self.remediator.clone(),
        );
        let remediation = next.remediation.clone();
        self.log
            .between_batches(move || {
                view.adopt(fresh, through);
                dispatcher.set_routing(routing);
                *stages.escalator.write() = escalator;
                *stages.act.write() = act;
                outbox.set_receivers(Arc::new(receivers));
                remediator.set_config(remediation);
            })
            .await
            .map_err(failed)?;
        *self.config.write() = Arc::new(next);
        self.log
            .append(vec![rules_loaded(&rules, self.clock.now(), by)])
            .await
            .map_err(failed)?;
        tracing::info!(
            by,
            rules = rules.len(),
            hash = rules.hash(),
            "rules and config reloaded"
        );
        Ok(Reloaded {
            rules: rules.len(),
            hash: rules.hash().to_string(),
            files: rules.files().to_vec(),
        })
    }

    /// The configured probes, scheduled from the clock's `now`, storing
    /// into this log.
    pub fn probe_runner(&self) -> anyhow::Result<Arc<ProbeRunner>> {
        let config = self.config();
        ProbeRunner::new(
            &config.probes,
            config.probe_concurrency,
            self.log.clone(),
            self.clock.clone(),
            self.probe_states.clone(),
        )
        .map_err(|e| anyhow::anyhow!("probes: {e}"))
    }

    /// Starts the background stages; they stop when `shutdown` turns true.
    pub fn spawn_background(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let probing = match self.probe_runner() {
            Ok(runner) if !runner.is_empty() => Some(tokio::spawn(runner.run(shutdown.clone()))),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "probes not started");
                None
            }
        };
        let ingest = self.ingest.clone();
        let stages = self.stages.clone();
        let log = self.log.clone();
        let clock = self.clock.clone();
        let dispatch_shutdown = shutdown.clone();
        let deliver_shutdown = shutdown.clone();
        let outbox = self.outbox.clone();
        let remediating = tokio::spawn(remediate(
            self.remediator.clone(),
            clock.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(async move {
            let delivering = tokio::spawn(deliver(outbox, clock.clone(), deliver_shutdown));
            let dispatching = tokio::spawn(dispatch(stages, log, clock, dispatch_shutdown));
            lease_checkpoints(ingest, shutdown).await;
            let _ = dispatching.await;
            let _ = delivering.await;
            if let Some(probing) = probing {
                let _ = probing.await;
            }
            let _ = remediating.await;
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
        // Sends are detached: each records its outcome and frees its slot,
        // which wakes this loop.
        let wait = wait_until(outbox.start_ready_until_next(), clock.now());
        tokio::select! {
            _ = tokio::time::timeout(wait, outbox.state().changed()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Calls remediation hooks whenever a decision, an approval or an outcome
/// is committed, or a retry comes due.
async fn remediate(
    remediator: Arc<crate::act::remediation::Remediator>,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Detached: each records its outcome, which wakes this loop.
        drop(remediator.start_ready());
        let wait = wait_until(remediator.next_wake(), clock.now());
        tokio::select! {
            _ = tokio::time::timeout(wait, remediator.state().changed()) => {}
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

/// What a reload put in force.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub rules: usize,
    pub hash: String,
    pub files: Vec<std::path::PathBuf>,
}

/// A rules view of `set` folded from the log through `through`.
fn fold_rules(
    log: &EventLog,
    set: Arc<RuleSet>,
    through: u64,
) -> Result<RulesView, crate::eventlog::LogError> {
    let view = RulesView::new(set);
    let mut after = 0;
    while after < through {
        let page = log.read(&crate::eventlog::EventQuery {
            after,
            limit: 16 * 1024,
            kinds: crate::evaluate::rules::view::READ_KINDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            ..Default::default()
        })?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in page.iter().filter(|e| e.seq <= through) {
            view.apply(event);
        }
    }
    Ok(view)
}

/// Compiles the rule files `config` names. Any problem refuses the whole
/// set, each problem on a line as `FILE:LINE:COL: what is wrong`.
pub fn load_rules(config: &Config) -> anyhow::Result<RuleSet> {
    let paths = config
        .rule_paths()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    RuleSet::load(&paths).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!(
            "rule files have {} problem(s):\n{}",
            lines.len(),
            lines.join("\n")
        )
    })
}

/// Records that `set` is in force, unless the log already says so (a
/// restart with the same rules continues their `absent` timers). No rules
/// and none ever recorded: nothing to say.
fn record_rules_loaded(
    log: &EventLog,
    view: &RulesView,
    set: &RuleSet,
    now: chrono::DateTime<chrono::Utc>,
    by: &str,
) -> anyhow::Result<()> {
    let last = view.last_loaded();
    if last.as_deref() == Some(set.hash()) || (last.is_none() && set.is_empty()) {
        return Ok(());
    }
    log.append_blocking(vec![rules_loaded(set, now, by)])
        .map_err(|e| anyhow::anyhow!("recording the rule set: {e}"))?;
    Ok(())
}

/// The `rules.loaded` event of `set`.
pub fn rules_loaded(set: &RuleSet, now: chrono::DateTime<chrono::Utc>, by: &str) -> NewEvent {
    NewEvent::new(
        now,
        "fenghuo",
        "rules",
        crate::eventlog::EventKind::RulesLoaded(crate::eventlog::RulesLoaded {
            hash: set.hash().to_string(),
            files: set
                .files()
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            rules: set.len(),
            by: by.to_string(),
        }),
    )
}

/// The deciding stages, in the order they decide: the rules (alerts from
/// raw events), the dispatcher (groups, timers, due notifications), then
/// the escalator (incident steps, which may follow from the dispatcher's
/// notifications in the same commit).
pub struct Stages {
    pub rules: Arc<RulesView>,
    pub dispatcher: Arc<Dispatcher>,
    /// Swapped on reload, between writer batches.
    escalator: parking_lot::RwLock<Arc<Escalator>>,
    /// `FenghuoSourceQuiet` for watched sources gone silent.
    pub quiet: Arc<crate::evaluate::source_quiet::SourceQuiet>,
    /// Releases and remediation: suspicion, rollouts, hook runs (swapped
    /// on reload, between writer batches).
    act: parking_lot::RwLock<Arc<crate::act::stage::ActStage>>,
}

impl Stages {
    pub fn escalator(&self) -> Arc<Escalator> {
        self.escalator.read().clone()
    }

    pub fn act(&self) -> Arc<crate::act::stage::ActStage> {
        self.act.read().clone()
    }

    /// The earliest timer of any stage.
    pub fn next_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        [
            self.quiet.next_due(),
            self.rules.next_wake(),
            self.dispatcher.groups().next_due(),
            self.dispatcher.flaps().next_due(),
            self.escalator().next_due(),
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
        // The rules' alerts are folded before the next round, where the
        // dispatcher groups them: alert and page commit together.
        let mut out = if asked || self.rules.wants(folded) {
            self.rules.decide(now)
        } else {
            Vec::new()
        };
        // Quiet sources: raised when their timer asks, resolved in the
        // commit of the watch's event or position that ends the silence.
        if asked
            || folded
                .iter()
                .any(|e| crate::ingest::kubernetes::index::watched_cluster(e).is_some())
        {
            out.extend(self.quiet.decide(now));
        }
        out.extend(self.dispatcher.decide(now, seq, folded, asked));
        let escalator = self.escalator();
        out.extend(escalator.follow(folded, now));
        if asked || escalator.wants(folded) {
            out.extend(escalator.decide(now));
        }
        out.extend(self.act().decide(now, folded));
        out
    }
}
