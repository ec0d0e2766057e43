//! [`ActStage`]: the deciding part of releases and remediation, run by the
//! log writer with the other stages so its decisions commit with their
//! causes.
//!
//! From what was just folded it decides:
//! - `release.recorded` / `release.status_changed` for a Deployment's first
//!   scale-up of a new ReplicaSet (`releases.from_kubernetes`);
//! - `release.suspected` for a new alert, a Warning Kubernetes event or a
//!   failed probe of an app with a release in its bake window;
//! - under `releases.alert`, the `ReleaseSuspected` alert of a release
//!   that alerts are suspected of (`alert.received`, raised once while
//!   any of them fires; `alert.resolved` when none fires any more), so the
//!   release can head their incident and inhibit them `through: release`;
//! - `remediation.due` (or `.dry_run`, or `.refused` by a guard) for
//!   auto-rollback of a release suspected by a critical alert, and for the
//!   actions remediation routes or an alert's `remediation` annotation name.
//!
//! It never calls anything (the executor in [`super::remediation`] does)
//! and never reads the wall clock: `now` is the writer's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::config::{ReleasesConfig, RemediationConfig};
use super::hook::{Templates, check_host};
use super::release::{Releases, rollout_key};
use super::remediation::Remediations;
use crate::escalate::incident::Incidents;
use crate::evaluate::Fingerprint;
use crate::evaluate::alerts::AlertStore;
use crate::eventlog::event::{
    K8sEvent, Release, ReleaseStatusChange, ReleaseSuspicion, RemediationDue, RemediationRefusal,
};
use crate::eventlog::{Event, EventKind, NewEvent};

/// The annotation by which an alert (so a rule) names remediation actions,
/// comma-separated.
pub const ACTION_ANNOTATION: &str = "remediation";

pub struct ActStage {
    releases_config: ReleasesConfig,
    remediation: RemediationConfig,
    templates: BTreeMap<String, Templates>,
    releases: Arc<Releases>,
    remediations: Arc<Remediations>,
    alerts: Arc<AlertStore>,
    incidents: Arc<Incidents>,
}

/// What one `decide` call has decided so far: the views see it only after
/// the round is folded.
#[derive(Default)]
struct Round {
    out: Vec<NewEvent>,
    suspected: HashMap<String, ReleaseSuspicion>,
    runs: HashSet<String>,
    counts: HashMap<String, u32>,
    rollouts: HashSet<String>,
    /// Releases whose `ReleaseSuspected` alert was looked at this round
    /// (raised or found firing; checked for its end).
    raised: HashSet<String>,
    ended: HashSet<String>,
}

/// One run to decide: which action, for what, and the template context.
struct RunRequest<'a> {
    action: &'a str,
    scope: String,
    app: String,
    env: String,
    trigger: String,
    release: Option<String>,
    rollback_to: Option<String>,
    reason: String,
    context: serde_json::Value,
}

impl ActStage {
    pub fn new(
        releases_config: ReleasesConfig,
        remediation: RemediationConfig,
        releases: Arc<Releases>,
        remediations: Arc<Remediations>,
        alerts: Arc<AlertStore>,
        incidents: Arc<Incidents>,
    ) -> Result<ActStage, String> {
        let mut templates = BTreeMap::new();
        for a in &remediation.actions {
            templates.insert(
                a.name.clone(),
                Templates::compile(a)
                    .map_err(|e| format!("remediation.actions.{}: {e}", a.name))?,
            );
        }
        Ok(ActStage {
            releases_config,
            remediation,
            templates,
            releases,
            remediations,
            alerts,
            incidents,
        })
    }

    /// The `releases:` section this stage runs with (the gate reads it, so
    /// a reload changes both at once).
    pub fn releases_config(&self) -> &ReleasesConfig {
        &self.releases_config
    }

    /// The same stage over the same views with another config (a reload).
    pub fn with_config(
        &self,
        releases_config: ReleasesConfig,
        remediation: RemediationConfig,
    ) -> Result<ActStage, String> {
        ActStage::new(
            releases_config,
            remediation,
            self.releases.clone(),
            self.remediations.clone(),
            self.alerts.clone(),
            self.incidents.clone(),
        )
    }

    pub fn decide(&self, now: DateTime<Utc>, folded: &[Arc<Event>]) -> Vec<NewEvent> {
        let mut round = Round::default();
        for event in folded {
            match &event.kind {
                EventKind::AlertReceived(report) => {
                    self.alert_received(&mut round, now, event.seq, report)
                }
                EventKind::AlertResolved(r) => {
                    self.suspect_resolved(&mut round, now, &r.fingerprint)
                }
                EventKind::NotificationDue(due) if due.escalation.is_none() => {
                    for fp in &due.new {
                        self.routed_actions(&mut round, now, fp, &due.group.group);
                    }
                }
                EventKind::K8sEvent(k) => {
                    if self.releases_config.from_kubernetes {
                        self.rollout(&mut round, now, k);
                    }
                    if k.event_type == "Warning" {
                        self.k8s_warning(&mut round, now, event.seq, k);
                    }
                }
                EventKind::ProbeResult(p) if !p.ok => {
                    if let Some(app) = self.releases_config.app_of(&p.labels) {
                        let env = self.releases_config.env_of(&p.labels);
                        let evidence = format!(
                            "probe {} failed{}",
                            p.probe,
                            p.error
                                .as_ref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        );
                        self.suspect(
                            &mut round,
                            (now, now),
                            event.seq,
                            app,
                            env,
                            None,
                            "probe.result",
                            &p.probe,
                            evidence,
                            "warning",
                        );
                    }
                }
                _ => {}
            }
        }
        round.out
    }

    /// Links `subject` to the newest release of `app` baking at `now`, once.
    #[allow(clippy::too_many_arguments)]
    fn suspect(
        &self,
        round: &mut Round,
        (now, at): (DateTime<Utc>, DateTime<Utc>),
        seq: u64,
        app: &str,
        env: Option<&str>,
        cluster: Option<&str>,
        kind: &str,
        subject: &str,
        evidence: String,
        severity: &str,
    ) -> Option<ReleaseSuspicion> {
        let window = self.releases_config.bake_window.0;
        let release = self
            .releases
            .baking(app, env, cluster, at, window)
            .into_iter()
            .next()?;
        let id = &release.release.id;
        let local = format!("{subject}\u{0}{id}");
        if self.releases.is_suspected(subject, id) || round.suspected.contains_key(&local) {
            return None;
        }
        let s = ReleaseSuspicion {
            release: id.clone(),
            app: app.to_string(),
            env: release.release.env.clone(),
            version: release.release.version.clone(),
            released_by: release.release.by.clone(),
            evidence_kind: kind.to_string(),
            subject: subject.to_string(),
            evidence,
            evidence_seq: seq,
            after_secs: release.started_at.map_or(0, |s| (now - s).num_seconds()),
            severity: severity.to_string(),
        };
        round.suspected.insert(local, s.clone());
        round.suspected.insert(subject.to_string(), s.clone());
        round.out.push(
            NewEvent::new(
                now,
                "fenghuo",
                subject,
                EventKind::ReleaseSuspected(s.clone()),
            )
            .idempotent(format!("suspected:{id}:{subject}")),
        );
        Some(s)
    }

    /// A new alert (or a new report of one) that started firing in the
    /// bake window of a release of its app.
    fn alert_received(
        &self,
        round: &mut Round,
        now: DateTime<Utc>,
        seq: u64,
        report: &crate::eventlog::AlertReport,
    ) {
        if report.ends_at.is_some_and(|e| e <= now) {
            return;
        }
        let fingerprint = report.fingerprint.as_str();
        let labels = &report.labels;
        // Our own alert for a release is not evidence against it.
        if super::release::release_of_alert(labels).is_some() {
            return;
        }
        let started = report.starts_at.min(now);
        let config = &self.releases_config;
        let Some(app) = config.app_of(labels) else {
            return;
        };
        let severity = labels.get("severity").unwrap_or("");
        let evidence = format!(
            "{}{}",
            labels.get("alertname").unwrap_or("alert"),
            if severity.is_empty() {
                String::new()
            } else {
                format!(" severity={severity}")
            }
        );
        // Linked by when it started firing, not when it was received.
        let Some(s) = self.suspect(
            round,
            (now, started),
            seq,
            app,
            config.env_of(labels),
            config.cluster_of(labels),
            "alert",
            fingerprint,
            evidence,
            severity,
        ) else {
            // Linked before: a new episode of it fires its release's
            // alert again if that ended and the release still bakes.
            if let Some(s) = self.releases.suspicion_of(fingerprint)
                && s.evidence_kind == "alert"
            {
                self.raise_release_alert(round, (now, started), &s);
            }
            return;
        };
        self.raise_release_alert(round, (now, started), &s);
        let Some(auto) = &config.auto_rollback else {
            return;
        };
        if !auto.severities.iter().any(|v| v == severity) {
            return;
        }
        let target = self.releases.rollback_target_of(&s.release);
        let Some(release) = self.releases.get(&s.release) else {
            return;
        };
        let reason = format!(
            "auto-rollback: {} {}",
            s.evidence,
            super::release::suspicion_note(&s)
        );
        let id = format!("{}:{}", auto.action, s.release);
        let Some(target) = target else {
            self.refuse(
                round,
                now,
                &id,
                &auto.action,
                app,
                format!(
                    "no rollback target: no earlier succeeded release of {app} in {}",
                    s.env
                ),
                None,
            );
            return;
        };
        let context = json!({
            "app": app,
            "env": s.env,
            "cluster": release.release.cluster,
            "version": release.release.version,
            "release": release.release,
            "rollback_to": target.release.version,
            "rollback_release": target.release.id,
            "alert": {"fingerprint": fingerprint, "labels": labels, "annotations": report.annotations},
        });
        self.run(
            round,
            now,
            RunRequest {
                action: &auto.action,
                scope: s.release.clone(),
                app: app.to_string(),
                env: s.env.clone(),
                trigger: fingerprint.to_string(),
                release: Some(s.release.clone()),
                rollback_to: Some(target.release.version.clone()),
                reason,
                context,
            },
        );
    }

    /// Raises the `ReleaseSuspected` alert of the release `s` links an
    /// alert to (started at `at`, within the bake window), unless it fires
    /// already: the cause its symptoms are inhibited by `through: release`
    /// and summarised under. Only under `releases.alert`.
    fn raise_release_alert(
        &self,
        round: &mut Round,
        (now, at): (DateTime<Utc>, DateTime<Utc>),
        s: &ReleaseSuspicion,
    ) {
        let Some(alert) = &self.releases_config.alert else {
            return;
        };
        if !round.raised.insert(s.release.clone()) {
            return;
        }
        let Some(release) = self.releases.get(&s.release) else {
            return;
        };
        let window = self.releases_config.bake_window.0;
        if !release.baking_at(at, window) {
            return;
        }
        let r = &release.release;
        let config = &self.releases_config;
        let mut labels = crate::eventlog::LabelSet::new();
        labels.insert("alertname".into(), super::release::RELEASE_ALERT.into());
        labels.insert(super::release::RELEASE_LABEL.into(), r.id.clone());
        labels.insert(config.app_label.clone(), r.app.clone());
        labels.insert("version".into(), r.version.clone());
        labels.insert("severity".into(), alert.severity.clone());
        for (name, value) in [
            (&config.env_label, &r.env),
            (&config.cluster_label, &r.cluster),
        ] {
            if !value.is_empty() {
                labels.insert(name.clone(), value.clone());
            }
        }
        let fingerprint = Fingerprint::of(&labels);
        let stored = self.alerts.get(fingerprint);
        if stored.as_ref().is_some_and(|a| a.firing_at(now)) {
            return;
        }
        let version = stored.map_or(0, |a| a.version);
        let by = if r.by.is_empty() {
            String::new()
        } else {
            format!(" by {}", r.by)
        };
        let started = release.started_at.unwrap_or(release.recorded_at);
        let mut annotations = crate::eventlog::LabelSet::new();
        annotations.insert(
            "summary".into(),
            format!(
                "{} {}{by}, started {} ago, is suspected: {}",
                r.app,
                r.version,
                ago(now - started),
                s.evidence
            ),
        );
        let rollback = self
            .releases
            .rollback_target_of(&r.id)
            .map(|t| {
                format!(
                    " Rollback target: {} ({}).",
                    t.release.version, t.release.id
                )
            })
            .unwrap_or_default();
        annotations.insert(
            "description".into(),
            format!(
                "Alerts of {} began firing within the bake window ({}) of release {} \
                 ({} {}{by}, started {}). They are its symptoms: summarised with it, \
                 not paged on their own; `fenghuo why` explains each.{rollback}",
                r.app,
                config.bake_window,
                r.id,
                r.app,
                r.version,
                started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        );
        let key = fingerprint.to_string();
        let report = crate::eventlog::AlertReport {
            fingerprint: key.clone().into(),
            labels,
            annotations,
            starts_at: now,
            ends_at: None,
            generator_url: String::new(),
            extra: Default::default(),
        };
        round.out.push(
            NewEvent::new(
                now,
                "fenghuo",
                &key,
                EventKind::AlertReceived(Arc::new(report)),
            )
            .expecting(version),
        );
    }

    /// An alert resolved: if it was suspected of a release whose
    /// `ReleaseSuspected` alert fires, and no alert suspected of that
    /// release fires any more, the release's alert resolves.
    fn suspect_resolved(&self, round: &mut Round, now: DateTime<Utc>, fingerprint: &str) {
        let Some(s) = self.releases.suspicion_of(fingerprint) else {
            return;
        };
        if !round.ended.insert(s.release.clone()) {
            return;
        }
        let Some(alert_fp) = self.releases.alert_of(&s.release) else {
            return;
        };
        let firing = |fp: &str| {
            Fingerprint::parse(fp)
                .and_then(|f| self.alerts.get(f))
                .filter(|a| a.firing_at(now))
        };
        let Some(alert) = firing(&alert_fp) else {
            return;
        };
        let subjects = self.releases.subjects_of(&s.release);
        if subjects
            .iter()
            .any(|subject| *subject != alert_fp && firing(subject).is_some())
        {
            return;
        }
        round.out.push(
            NewEvent::new(
                now,
                "fenghuo",
                &alert_fp,
                EventKind::AlertResolved(crate::eventlog::AlertResolution {
                    fingerprint: alert_fp.clone(),
                    ends_at: now,
                    reason: format!("no alert suspected of release {} fires any more", s.release),
                    report: None,
                }),
            )
            .expecting(alert.version),
        );
    }

    /// Actions remediation routes (and the alert's `remediation`
    /// annotation) name for a newly notified alert: once per release it is
    /// suspected of, else once per incident.
    fn routed_actions(
        &self,
        round: &mut Round,
        now: DateTime<Utc>,
        fingerprint: &str,
        group: &str,
    ) {
        if self.remediation.actions.is_empty() {
            return;
        }
        let Some(alert) = Fingerprint::parse(fingerprint).and_then(|fp| self.alerts.get(fp)) else {
            return;
        };
        let labels = &alert.report.labels;
        let mut names: Vec<String> = self
            .remediation
            .routes
            .iter()
            .filter(|r| r.matchers.matches(labels))
            .flat_map(|r| r.actions.iter().cloned())
            .collect();
        if let Some(list) = alert.report.annotations.get(ACTION_ANNOTATION) {
            names.extend(
                list.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
        }
        if names.is_empty() {
            return;
        }
        let config = &self.releases_config;
        let app = config.app_of(labels).unwrap_or("").to_string();
        let env = config.env_of(labels).unwrap_or("").to_string();
        let suspected = round
            .suspected
            .get(fingerprint)
            .cloned()
            .or_else(|| self.releases.suspicion_of(fingerprint));
        let incident = self.incidents.of_group(group).map(|i| i.id);
        let (scope, release) = match (&suspected, &incident) {
            (Some(s), _) => (s.release.clone(), self.releases.get(&s.release)),
            (None, Some(i)) => (i.clone(), None),
            (None, None) => (format!("alert-{fingerprint}"), None),
        };
        let rollback_to = release
            .as_ref()
            .and_then(|r| self.releases.rollback_target_of(&r.release.id))
            .map(|t| t.release.version);
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name.clone()) {
                continue;
            }
            let context = json!({
                "app": app,
                "env": env,
                "cluster": config.cluster_of(labels).unwrap_or(""),
                "incident": incident,
                "release": release.as_ref().map(|r| &r.release),
                "version": release.as_ref().map(|r| r.release.version.clone()),
                "rollback_to": rollback_to,
                "alert": {"fingerprint": fingerprint, "labels": labels, "annotations": alert.report.annotations},
            });
            if self.remediation.action(&name).is_none() {
                let id = format!("{name}:{scope}");
                self.refuse(
                    round,
                    now,
                    &id,
                    &name,
                    &app,
                    format!("undefined remediation action {name:?}"),
                    None,
                );
                continue;
            }
            self.run(
                round,
                now,
                RunRequest {
                    action: &name,
                    scope: scope.clone(),
                    app: app.clone(),
                    env: env.clone(),
                    trigger: fingerprint.to_string(),
                    release: release.as_ref().map(|r| r.release.id.clone()),
                    rollback_to: rollback_to.clone(),
                    reason: format!(
                        "{} matched a remediation route",
                        labels.get("alertname").unwrap_or("alert")
                    ),
                    context,
                },
            );
        }
    }

    /// Decides one run through the guards: once per id, at most N per
    /// action per app per hour, a template that renders, a host on the
    /// allow-list; then due, or dry run.
    fn run(&self, round: &mut Round, now: DateTime<Utc>, req: RunRequest<'_>) {
        let id = format!("{}:{}", req.action, req.scope);
        if self.remediations.decided(&id) || round.runs.contains(&id) {
            return;
        }
        let Some(action) = self.remediation.action(req.action) else {
            return;
        };
        let limit = action
            .max_runs_per_hour
            .unwrap_or(self.remediation.max_runs_per_hour);
        let count_key = format!("{}/{}", req.action, req.app);
        let ran = self
            .remediations
            .runs_in_last_hour(req.action, &req.app, now)
            + round.counts.get(&count_key).copied().unwrap_or(0);
        if ran >= limit {
            self.refuse(
                round,
                now,
                &id,
                req.action,
                &req.app,
                format!(
                    "rate limit: {ran} runs of {} for {} in the last hour (at most {limit})",
                    req.action, req.app
                ),
                None,
            );
            return;
        }
        let idempotency_key = format!("fenghuo-{id}");
        let mut context = req.context;
        context["idempotency_key"] = json!(idempotency_key);
        context["action"] = json!(req.action);
        let request = match self
            .templates
            .get(req.action)
            .ok_or_else(|| "no compiled template".to_string())
            .and_then(|t| t.render(action, &context))
        {
            Ok(r) => r,
            Err(e) => {
                self.refuse(
                    round,
                    now,
                    &id,
                    req.action,
                    &req.app,
                    format!("template: {e}"),
                    None,
                );
                return;
            }
        };
        if let Err(why) = check_host(&request.url, &self.remediation.allowed_hosts) {
            self.refuse(round, now, &id, req.action, &req.app, why, Some(request));
            return;
        }
        *round.counts.entry(count_key).or_default() += 1;
        round.runs.insert(id.clone());
        let due = RemediationDue {
            id: id.clone(),
            action: req.action.to_string(),
            app: req.app,
            env: req.env,
            scope: req.scope,
            reason: req.reason,
            trigger: req.trigger,
            release: req.release,
            rollback_to: req.rollback_to,
            request,
            idempotency_key,
            require_ack: action.require_ack && !action.dry_run,
        };
        let kind = if action.dry_run {
            EventKind::RemediationDryRun(due)
        } else {
            EventKind::RemediationDue(due)
        };
        round.out.push(
            NewEvent::new(now, "fenghuo", id.clone(), kind).idempotent(format!("remediation:{id}")),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &self,
        round: &mut Round,
        now: DateTime<Utc>,
        id: &str,
        action: &str,
        app: &str,
        reason: String,
        request: Option<crate::eventlog::event::RemediationRequest>,
    ) {
        if self.remediations.decided(id) || !round.runs.insert(id.to_string()) {
            return;
        }
        tracing::warn!(remediation = id, %reason, "remediation refused");
        round.out.push(
            NewEvent::new(
                now,
                "fenghuo",
                id,
                EventKind::RemediationRefused(RemediationRefusal {
                    id: id.to_string(),
                    action: action.to_string(),
                    app: app.to_string(),
                    reason,
                    request,
                }),
            )
            .idempotent(format!("remediation:{id}")),
        );
    }

    fn k8s_warning(&self, round: &mut Round, now: DateTime<Utc>, seq: u64, k: &K8sEvent) {
        let Some(app) = self.releases_config.app_of(&k.labels) else {
            return;
        };
        let subject = if k.involved_object.uid.is_empty() {
            format!(
                "{}/{}/{}",
                k.namespace, k.involved_object.kind, k.involved_object.name
            )
        } else {
            k.involved_object.uid.clone()
        };
        let evidence = format!(
            "{} {} {}/{}: {}",
            k.reason, k.involved_object.kind, k.namespace, k.involved_object.name, k.message
        );
        let cluster = (!k.cluster.is_empty()).then_some(k.cluster.as_str());
        self.suspect(
            round,
            (now, now),
            seq,
            app,
            None,
            cluster,
            "k8s.event",
            &subject,
            evidence,
            "warning",
        );
    }

    /// A Deployment's first scale-up of a new ReplicaSet
    /// (`Scaled up replica set checkout-7d9f8c6b5 to 3`) is a release of
    /// the Deployment whose version is the pod-template hash.
    fn rollout(&self, round: &mut Round, now: DateTime<Utc>, k: &K8sEvent) {
        if k.reason != "ScalingReplicaSet" || k.involved_object.kind != "Deployment" {
            return;
        }
        let Some(rest) = k.message.strip_prefix("Scaled up replica set ") else {
            return;
        };
        let Some(replica_set) = rest.split_whitespace().next() else {
            return;
        };
        let app = k.involved_object.name.as_str();
        let Some(hash) = replica_set
            .strip_prefix(app)
            .and_then(|h| h.strip_prefix('-'))
            .filter(|h| !h.is_empty())
        else {
            return;
        };
        let env = if self.releases_config.kubernetes_env.is_empty() {
            k.namespace.clone()
        } else {
            self.releases_config.kubernetes_env.clone()
        };
        let key = rollout_key(&k.cluster, &env, app, hash);
        if self.releases.rollout_seen(&key) || !round.rollouts.insert(key.clone()) {
            return;
        }
        let id = format!("rel-k8s-{}", short_hash(&key));
        round.out.push(
            NewEvent::new(
                now,
                "kubernetes",
                id.clone(),
                EventKind::ReleaseRecorded(Release {
                    id: id.clone(),
                    app: app.to_string(),
                    env,
                    cluster: k.cluster.clone(),
                    version: hash.to_string(),
                    by: k.reporting_controller.clone(),
                    change_url: String::new(),
                    strategy: "kubernetes-rollout".into(),
                    via: "kubernetes".into(),
                }),
            )
            .idempotent(format!("rollout:{key}")),
        );
        round.out.push(NewEvent::new(
            now,
            "kubernetes",
            id.clone(),
            EventKind::ReleaseStatusChanged(ReleaseStatusChange {
                id,
                status: "started".into(),
                by: k.reporting_controller.clone(),
                reason: k.message.clone(),
            }),
        ));
    }
}

/// 12 hex digits of a SHA-256: a stable id from a key.
/// "29 s", "4 min", "3 h": how long ago, for a summary.
fn ago(d: chrono::Duration) -> String {
    match d.num_seconds().max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

pub fn short_hash(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
