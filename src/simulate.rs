//! `fenghuo simulate`: a scenario — a timeline of alerts and Kubernetes
//! events with the incidents it contains — run through the real pipeline on
//! a manual clock, and what it paged measured against the yardstick of the
//! platform teams: no over-alerting, no missed incidents, no late pages.
//!
//! Owns the scenario format and the report. It opens a real [`Pipeline`]
//! in a temporary directory and drives it the way the world would:
//! alerts are posted the way Prometheus posts them (re-sent every `resend`
//! with `endsAt` four re-sends ahead, and once more with `endsAt` = now when
//! they resolve), timers run at their instants. It must never send: the
//! outbox is not run, pages are the `notification.due` decisions in the log.
//!
//! ```yaml
//! name: node failure
//! config: node-failure.tuned.yaml     # relative to the scenario file
//! duration: 30m
//! timeline:
//!   - at: 0s
//!     fire: [{alertname: NodeNotReady, node: node-7, severity: critical}]
//!   - at: 20s
//!     fire: [{alertname: PodNotReady, node: node-7, pod: "web-{1..40}"}]
//!   - at: 10m
//!     resolve: [{alertname: NodeNotReady, node: node-7}]
//! incidents:
//!   - name: node-7 down
//!     root: {alertname: NodeNotReady, node: node-7}
//!     at: 0s
//!     deadline: 31s
//! expect: {firing_pages: 2, missed: 0, duplicates: 0}
//! ```
//!
//! A label value `name-{1..40}` stands for 40 label sets; so does a
//! Kubernetes event's `involved_object.name` (its message may repeat the
//! range: `Successfully assigned shop/web-{1..40} to node-7`). A step's
//! `release: [{id, app, env, version, by, status: started}]` records a
//! release as a release platform would (`{id, status}` alone changes one);
//! hooks it leads to are decided, never called.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::clock::{Clock, ManualClock};
use crate::config::{Config, PromDuration};
use crate::evaluate::Fingerprint;
use crate::eventlog::{Event, EventKind, EventQuery, K8sEvent, LabelSet, NewEvent};
use crate::ingest::IncomingAlert;
use crate::pipeline::Pipeline;

/// A scenario as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The config to run, relative to the scenario file.
    pub config: PathBuf,
    /// How long the scenario runs after its start.
    pub duration: PromDuration,
    /// How often a firing alert is posted again, as Prometheus'
    /// `resend_delay` (1m); its `endsAt` is four re-sends ahead.
    #[serde(default = "one_minute")]
    pub resend: PromDuration,
    pub timeline: Vec<Step>,
    #[serde(default)]
    pub incidents: Vec<Incident>,
    #[serde(default)]
    pub expect: Expect,
}

fn one_minute() -> PromDuration {
    PromDuration(Duration::minutes(1))
}

/// What happens at one instant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: PromDuration,
    /// Alerts that start firing (or fire again), by their labels.
    #[serde(default)]
    pub fire: Vec<BTreeMap<String, String>>,
    /// Alerts that resolve.
    #[serde(default)]
    pub resolve: Vec<BTreeMap<String, String>>,
    /// Kubernetes events, in the log's shape.
    #[serde(default)]
    pub k8s: Vec<K8sEvent>,
    /// Heartbeats by name.
    #[serde(default)]
    pub heartbeat: Vec<String>,
    /// Releases recorded, or a recorded one changing status, as a release
    /// platform does through `/api/v1/releases`.
    #[serde(default)]
    pub release: Vec<ReleaseStep>,
}

/// A release platform's call: a new release (with `app`, `env`,
/// `version`), or a status for the release `id` names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStep {
    pub id: String,
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub by: String,
    /// `started`, `succeeded`, `failed`, `rolled_back`.
    #[serde(default)]
    pub status: Option<String>,
}

/// An incident the scenario contains: the alert that names its cause, and
/// by when a page naming it must have been decided.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    pub name: String,
    /// Labels the root-cause alert has (all of them, equal).
    pub root: BTreeMap<String, String>,
    pub at: PromDuration,
    pub deadline: PromDuration,
}

/// Bounds the scenario's test asserts; unset bounds are not checked.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub firing_pages: Option<u64>,
    pub resolved_pages: Option<u64>,
    pub missed: Option<u64>,
    pub duplicates: Option<u64>,
    pub alerts_carried: Option<u64>,
}

/// What a run paged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub name: String,
    /// `notification.due` with firing alerts.
    pub firing_pages: u64,
    /// `notification.due` with only resolved alerts.
    pub resolved_pages: u64,
    /// `notification.due` that edit the group's last message in place
    /// (`update_in_place`): not pages, counted apart.
    pub updates_in_place: u64,
    /// Digests of resolved alerts (`pages.resolved: digest`): one message
    /// per receiver and digest time, however many groups resolved.
    pub resolved_digests: u64,
    /// Firing alerts listed, summed over firing pages.
    pub alerts_carried: u64,
    /// Pages that repeat the group's previous page (the same firing and
    /// resolved alerts) with nothing new, no flapping notice, and no
    /// `repeat_interval` passed.
    pub duplicates: u64,
    /// Per declared incident: seconds from its start to the first page
    /// listing its root alert firing, or `None` if none came by its deadline.
    pub incidents: Vec<(String, Option<f64>)>,
    pub missed: u64,
    /// Pages by receiver.
    pub by_receiver: BTreeMap<String, u64>,
    /// Every page, one line each: when (from the start), receiver, group,
    /// and how many alerts it listed.
    pub pages: Vec<String>,
    /// Remediation hooks decided (`remediation.due`), one line each.
    pub remediations: Vec<String>,
    /// Alerts and events linked to a release in its bake window.
    pub suspected: u64,
}

impl Report {
    /// The bounds of `expect` this report exceeds, as sentences.
    pub fn violations(&self, expect: &Expect) -> Vec<String> {
        let checks = [
            ("firing pages", expect.firing_pages, self.firing_pages),
            ("resolved pages", expect.resolved_pages, self.resolved_pages),
            ("missed incidents", expect.missed, self.missed),
            ("duplicate pages", expect.duplicates, self.duplicates),
            ("alerts carried", expect.alerts_carried, self.alerts_carried),
        ];
        checks
            .into_iter()
            .filter_map(|(what, bound, got)| {
                bound
                    .filter(|b| got > *b)
                    .map(|b| format!("{what}: {got}, expected at most {b}"))
            })
            .collect()
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut scenario: Scenario = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if scenario.config.is_relative() {
            let dir = path.parent().unwrap_or(Path::new("."));
            scenario.config = dir.join(&scenario.config);
        }
        Ok(scenario)
    }
}

/// `name-{1..40}` → `name-1` … `name-40`; anything else as it is.
fn expand(value: &str) -> Vec<String> {
    let range = value.find('{').and_then(|open| {
        let close = open + value[open..].find('}')?;
        let (a, b) = value[open + 1..close].split_once("..")?;
        Some((open, close, a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
    });
    match range {
        Some((open, close, a, b)) if a <= b => (a..=b)
            .map(|i| format!("{}{i}{}", &value[..open], &value[close + 1..]))
            .collect(),
        _ => vec![value.to_string()],
    }
}

/// Every Kubernetes event a written one stands for: a range in the
/// involved object's name (`web-{1..40}`) stands for one event per value,
/// with the same range replaced everywhere in the event (its message).
fn k8s_events(written: &K8sEvent) -> Vec<K8sEvent> {
    let name = &written.involved_object.name;
    let (Some(open), Some(close)) = (name.find('{'), name.find('}')) else {
        return vec![written.clone()];
    };
    let range = &name[open..=close];
    let values: Vec<String> = expand(name)
        .iter()
        .map(|n| n[open..n.len() - (name.len() - close - 1)].to_string())
        .collect();
    if values.len() <= 1 && values.first().map(String::as_str) == Some(range) {
        return vec![written.clone()];
    }
    let json = serde_json::to_string(written).expect("a K8sEvent serialises");
    values
        .iter()
        .filter_map(|v| serde_json::from_str(&json.replace(range, v)).ok())
        .collect()
}

/// Every label set a written one stands for.
fn label_sets(written: &BTreeMap<String, String>) -> Vec<LabelSet> {
    let mut sets: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, value) in written {
        let values = expand(value);
        sets = sets
            .into_iter()
            .flat_map(|set| {
                values.iter().map(move |v| {
                    let mut next = set.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    sets.into_iter().map(LabelSet::from_iter).collect()
}

/// Runs `scenario` with `config` (the scenario's own when `None`).
pub async fn run(scenario: &Scenario, config: Option<&Path>) -> anyhow::Result<Report> {
    let path = config.unwrap_or(&scenario.config);
    let mut config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let dir = tempfile::tempdir()?;
    config.data_dir = dir.path().to_path_buf();
    let t0: DateTime<Utc> = "2026-01-05T09:00:00Z".parse().expect("a valid time");
    let clock = ManualClock::new(t0);
    let pipeline = Pipeline::open(config, Arc::new(clock.clone()))?;
    let mut world = World {
        pipeline: &pipeline,
        clock: &clock,
        firing: HashMap::new(),
        resend: scenario.resend.0,
        next_resend: None,
    };
    let mut steps = scenario.timeline.clone();
    steps.sort_by_key(|s| s.at.0);
    for step in &steps {
        world.run_until(t0 + step.at.0).await?;
        world.apply(step).await?;
    }
    world.run_until(t0 + scenario.duration.0).await?;
    let events = pipeline.log.read(&EventQuery {
        after: 0,
        limit: usize::MAX,
        ..EventQuery::default()
    })?;
    pipeline.close();
    Ok(measure(scenario, t0, &events))
}

/// The outside world of a run: what Prometheus has firing.
struct World<'a> {
    pipeline: &'a Pipeline,
    clock: &'a ManualClock,
    /// Firing alerts by fingerprint, with when they started.
    firing: HashMap<Fingerprint, (LabelSet, DateTime<Utc>)>,
    resend: Duration,
    next_resend: Option<DateTime<Utc>>,
}

impl World<'_> {
    /// Runs every timer and re-send due up to `until`, in time order, then
    /// leaves the clock at `until`.
    async fn run_until(&mut self, until: DateTime<Utc>) -> anyhow::Result<()> {
        let mut passes_at_once = 0;
        let mut last_pass = None;
        loop {
            let timer = self.pipeline.next_due().filter(|t| *t <= until);
            let resend = self.next_resend.filter(|t| *t <= until);
            let next = match (timer, resend) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            let now = self.clock.now();
            // Time never goes back; a timer already due runs now.
            self.clock.set(next.max(now));
            if resend == Some(next) {
                self.post_firing().await?;
            }
            self.pipeline
                .dispatcher
                .step()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            // A timer that does not move would loop forever.
            passes_at_once = if last_pass == Some(next) {
                passes_at_once + 1
            } else {
                0
            };
            last_pass = Some(next);
            if passes_at_once > 16 {
                anyhow::bail!("a timer at {next} stays due after 16 passes");
            }
        }
        if self.clock.now() < until {
            self.clock.set(until);
        }
        Ok(())
    }

    fn alert(&self, labels: &LabelSet, starts: DateTime<Utc>, resolved: bool) -> IncomingAlert {
        let now = self.clock.now();
        let ends = if resolved { now } else { now + self.resend * 4 };
        IncomingAlert::new(
            labels.clone(),
            LabelSet::new(),
            starts,
            Some(ends),
            String::new(),
            Default::default(),
            resolved,
        )
    }

    async fn post(&self, alerts: Vec<IncomingAlert>) -> anyhow::Result<()> {
        if !alerts.is_empty() {
            self.pipeline
                .ingest
                .alerts("prometheus", alerts)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }

    /// Prometheus' re-send of everything firing.
    async fn post_firing(&mut self) -> anyhow::Result<()> {
        let mut firing: Vec<_> = self.firing.values().cloned().collect();
        firing.sort_by(|a, b| a.0.cmp(&b.0));
        let alerts = firing
            .iter()
            .map(|(labels, starts)| self.alert(labels, *starts, false))
            .collect();
        self.post(alerts).await?;
        self.next_resend = (!self.firing.is_empty()).then(|| self.clock.now() + self.resend);
        Ok(())
    }

    async fn apply(&mut self, step: &Step) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut alerts = Vec::new();
        for written in &step.fire {
            for labels in label_sets(written) {
                let fp = Fingerprint::of(&labels);
                let starts = self.firing.get(&fp).map_or(now, |f| f.1);
                alerts.push(self.alert(&labels, starts, false));
                self.firing.insert(fp, (labels, starts));
            }
        }
        for written in &step.resolve {
            for labels in label_sets(written) {
                if let Some((labels, starts)) = self.firing.remove(&Fingerprint::of(&labels)) {
                    alerts.push(self.alert(&labels, starts, true));
                }
            }
        }
        self.post(alerts).await?;
        let mut events = Vec::new();
        let k8s_events: Vec<K8sEvent> = step.k8s.iter().flat_map(k8s_events).collect();
        for (i, k8s) in k8s_events.iter().enumerate() {
            let key = format!(
                "k8s/{}/{}/{}-{i}",
                k8s.cluster, k8s.namespace, k8s.involved_object.name
            );
            events.push(NewEvent::new(
                now,
                "kubernetes",
                key,
                EventKind::K8sEvent(Arc::new(k8s.clone())),
            ));
        }
        for name in &step.heartbeat {
            events.push(NewEvent::new(
                now,
                "simulate",
                name.clone(),
                EventKind::HeartbeatReceived(crate::eventlog::Heartbeat {
                    name: name.clone(),
                    labels: LabelSet::new(),
                }),
            ));
        }
        for r in &step.release {
            if !r.app.is_empty() {
                events.push(NewEvent::new(
                    now,
                    "api",
                    r.id.clone(),
                    EventKind::ReleaseRecorded(crate::eventlog::event::Release {
                        id: r.id.clone(),
                        app: r.app.clone(),
                        env: r.env.clone(),
                        cluster: r.cluster.clone(),
                        version: r.version.clone(),
                        by: r.by.clone(),
                        change_url: String::new(),
                        strategy: String::new(),
                        via: "api".into(),
                    }),
                ));
            }
            if let Some(status) = &r.status {
                events.push(NewEvent::new(
                    now,
                    "api",
                    r.id.clone(),
                    EventKind::ReleaseStatusChanged(crate::eventlog::event::ReleaseStatusChange {
                        id: r.id.clone(),
                        status: status.clone(),
                        by: r.by.clone(),
                        reason: String::new(),
                    }),
                ));
            }
        }
        if !events.is_empty() {
            self.pipeline.log.append(events).await?;
        }
        if self.next_resend.is_none() && !self.firing.is_empty() {
            self.next_resend = Some(now + self.resend);
        }
        self.pipeline
            .dispatcher
            .step()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

/// Counts what the log says was paged.
fn measure(scenario: &Scenario, t0: DateTime<Utc>, events: &[Event]) -> Report {
    let mut report = Report {
        name: scenario.name.clone(),
        ..Report::default()
    };
    let mut labels: HashMap<String, LabelSet> = HashMap::new();
    let mut last: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    // Per incident, the first firing page naming its root.
    let mut first: Vec<Option<DateTime<Utc>>> = vec![None; scenario.incidents.len()];
    let mut digests = std::collections::BTreeSet::new();
    for event in events {
        match &event.kind {
            EventKind::AlertReceived(r) => {
                labels.insert(r.fingerprint.to_string(), r.labels.clone());
            }
            EventKind::ReleaseSuspected(_) => report.suspected += 1,
            EventKind::RemediationDue(d) => report.remediations.push(format!(
                "+{}s {} {} {}",
                (event.recorded_at - t0).num_seconds(),
                d.id,
                d.request.method,
                d.request.url
            )),
            EventKind::NotificationDue(n) => {
                report.pages.push(format!(
                    "{:>8} {} {}: {} firing, {} resolved, {} muted{}{}",
                    format!("+{}s", (event.recorded_at - t0).num_seconds()),
                    n.group.receiver,
                    n.group.group,
                    n.firing.len(),
                    n.resolved.len(),
                    n.muted.len(),
                    if n.update_in_place {
                        " (update in place)"
                    } else {
                        ""
                    },
                    match crate::evaluate::topology::summary_of(&n.symptoms) {
                        s if s.is_empty() => s,
                        s => format!(" — {s}"),
                    }
                ));
                if let (Some(at), false) = (n.digest_at, n.update_in_place) {
                    // Held for the receiver's digest: one message per
                    // digest time, not a page of the group's own.
                    if digests.insert((n.group.receiver.clone(), at)) {
                        report.resolved_digests += 1;
                    }
                    let mut content = (n.firing.clone(), n.resolved.clone());
                    content.0.sort();
                    content.1.sort();
                    last.insert(n.group.group.clone(), content);
                    continue;
                }
                if n.update_in_place {
                    // Edits the group's last message: not a page, nor a
                    // duplicate of one; what it shows is the group's state.
                    report.updates_in_place += 1;
                    let mut content = (n.firing.clone(), n.resolved.clone());
                    content.0.sort();
                    content.1.sort();
                    last.insert(n.group.group.clone(), content);
                    continue;
                }
                *report
                    .by_receiver
                    .entry(n.group.receiver.clone())
                    .or_default() += 1;
                if n.firing.is_empty() {
                    report.resolved_pages += 1;
                } else {
                    report.firing_pages += 1;
                    report.alerts_carried += n.firing.len() as u64;
                }
                let mut content = (n.firing.clone(), n.resolved.clone());
                content.0.sort();
                content.1.sort();
                if n.escalation.is_none() {
                    // Says nothing the group's last page did not: no new
                    // alert, no flapping notice, not a `repeat_interval`
                    // reminder.
                    let says_nothing_new = !n.repeat && n.new.is_empty() && n.flapping.is_empty();
                    if says_nothing_new && last.get(&n.group.group) == Some(&content) {
                        report.duplicates += 1;
                    }
                    last.insert(n.group.group.clone(), content);
                }
                for (i, incident) in scenario.incidents.iter().enumerate() {
                    let names_root = n.firing.iter().any(|fp| {
                        labels.get(fp).is_some_and(|l| {
                            incident
                                .root
                                .iter()
                                .all(|(k, v)| l.get(k) == Some(v.as_str()))
                        })
                    });
                    if names_root && first[i].is_none() {
                        first[i] = Some(event.recorded_at);
                    }
                }
            }
            _ => {}
        }
    }
    for (incident, first) in scenario.incidents.iter().zip(first) {
        let start = t0 + incident.at.0;
        let within = first
            .filter(|f| *f <= start + incident.deadline.0)
            .map(|f| (f - start).num_milliseconds() as f64 / 1000.0);
        if within.is_none() {
            report.missed += 1;
        }
        report.incidents.push((incident.name.clone(), within));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_in_a_label_value_stands_for_many_label_sets() {
        let cases: &[(&str, &[&str])] = &[
            ("web-{1..3}", &["web-1", "web-2", "web-3"]),
            ("{2..2}x", &["2x"]),
            // Not a range: as written.
            ("web-{a..b}", &["web-{a..b}"]),
            ("web-{3..1}", &["web-{3..1}"]),
            ("plain", &["plain"]),
        ];
        for (written, want) in cases {
            assert_eq!(expand(written), *want, "{written}");
        }
        let written: BTreeMap<String, String> = [
            ("alertname".to_string(), "PodDown".to_string()),
            ("pod".to_string(), "p{1..2}".to_string()),
            ("node".to_string(), "n{1..2}".to_string()),
        ]
        .into();
        assert_eq!(label_sets(&written).len(), 4);
    }

    #[test]
    fn a_range_in_a_kubernetes_objects_name_stands_for_one_event_each() {
        let written: K8sEvent = serde_json::from_value(serde_json::json!({
            "involved_object": {"kind": "Pod", "name": "web-{1..3}"},
            "reason": "Scheduled",
            "message": "Successfully assigned shop/web-{1..3} to node-7",
        }))
        .unwrap();
        let events = k8s_events(&written);
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.involved_object.name.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("web-1", "Successfully assigned shop/web-1 to node-7"),
                ("web-2", "Successfully assigned shop/web-2 to node-7"),
                ("web-3", "Successfully assigned shop/web-3 to node-7"),
            ]
        );
        // No range: as written.
        let plain: K8sEvent = serde_json::from_value(serde_json::json!({
            "involved_object": {"kind": "Node", "name": "node-7"}, "reason": "NodeNotReady",
        }))
        .unwrap();
        assert_eq!(k8s_events(&plain), vec![plain]);
    }
}
