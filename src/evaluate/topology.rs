//! Topology: what runs where and what depends on what, so an inhibit rule
//! can join a cause and its symptoms that share no label.
//!
//! Owns three things:
//!
//! * [`Topology`], a view folded from `k8s.event`s: which pod runs on which
//!   node (the scheduler's `Scheduled` event, "Successfully assigned ns/pod
//!   to node-7", and the node a kubelet reports a pod's events from) and
//!   which workload it belongs to (its controller owner reference, a
//!   ReplicaSet `web-7d9f8c6b5` standing for the Deployment `web`, and its
//!   `app.kubernetes.io/name` / `app` label). A pod the sender saw deleted,
//!   a node removed, and a pod not heard of for [`FORGET_AFTER_DAYS`] (log
//!   time) are forgotten, and at most [`PODS_KEPT`] pods are kept, so the
//!   view does not grow without bound and a replay forgets the same ones.
//! * [`TopologyConfig`], the `topology:` section: which alert labels name a
//!   workload, and the dependencies declared between services.
//! * [`Joins`], what an inhibit rule's `through:` asks of them (with the
//!   release suspicion the act stage records, [`Releases`]): whether a
//!   target is a symptom of a source, and through what, in words `fenghuo
//!   why` can show ("node-7 placement").
//!
//! It never decides and never appends: the dispatcher asks it while it
//! decides, and what it answered is recorded in the `notification.due`
//! (`muted` reasons and `symptoms`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::matcher::Matchers;
use crate::act::release::Releases;
use crate::eventlog::{Event, EventKind, K8sEvent, LabelSet, Projection};

/// A pod not heard of for this long (log time) is forgotten: most pods
/// live shorter, and the scheduler's event is not repeated.
pub const FORGET_AFTER_DAYS: i64 = 7;
/// The most pods kept; the longest unheard-of go first.
pub const PODS_KEPT: usize = 200_000;
/// Forgetting runs at most this often (log time).
const PRUNE_EVERY_MINUTES: i64 = 60;

/// Where a pod runs and what it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// Empty until an event says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The workload's name (a Deployment's, StatefulSet's, DaemonSet's,
    /// Job's), from the controller owner reference.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// `Deployment`, `StatefulSet`, … (the owner's kind, a ReplicaSet read
    /// as its Deployment).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_kind: String,
    /// The pod's `app.kubernetes.io/name` (or `app`) label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// The last event about it.
    pub seen_at: DateTime<Utc>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Inner {
    /// `{cluster}/{namespace}/{pod}` → the pod.
    pods: BTreeMap<String, Pod>,
    last_pruned: Option<DateTime<Utc>>,
    /// Pod name → keys (alerts name pods, not always their namespace).
    #[serde(skip)]
    by_name: BTreeMap<String, BTreeSet<String>>,
    /// Workload name and app label → keys.
    #[serde(skip)]
    by_workload: BTreeMap<String, BTreeSet<String>>,
}

impl Inner {
    fn index(&mut self, key: &str, pod: &Pod) {
        self.by_name
            .entry(pod.name.clone())
            .or_default()
            .insert(key.to_string());
        for w in [&pod.workload, &pod.app] {
            if !w.is_empty() {
                self.by_workload
                    .entry(w.clone())
                    .or_default()
                    .insert(key.to_string());
            }
        }
    }

    fn unindex(&mut self, key: &str, pod: &Pod) {
        let drop_key = |map: &mut BTreeMap<String, BTreeSet<String>>, name: &str| {
            if let Some(keys) = map.get_mut(name) {
                keys.remove(key);
                if keys.is_empty() {
                    map.remove(name);
                }
            }
        };
        drop_key(&mut self.by_name, &pod.name);
        drop_key(&mut self.by_workload, &pod.workload);
        drop_key(&mut self.by_workload, &pod.app);
    }

    fn remove(&mut self, key: &str) {
        if let Some(pod) = self.pods.remove(key) {
            self.unindex(key, &pod);
        }
    }

    fn put(&mut self, key: String, pod: Pod) {
        if let Some(old) = self.pods.get(&key).cloned() {
            self.unindex(&key, &old);
        }
        self.index(&key, &pod);
        self.pods.insert(key, pod);
    }

    fn reindex(&mut self) {
        self.by_name.clear();
        self.by_workload.clear();
        let pods: Vec<(String, Pod)> = self
            .pods
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (k, p) in &pods {
            self.index(k, p);
        }
    }

    /// Forgets pods unheard of for too long, and the oldest beyond the cap.
    fn prune(&mut self, now: DateTime<Utc>) {
        if self
            .last_pruned
            .is_some_and(|at| now < at + Duration::minutes(PRUNE_EVERY_MINUTES))
            && self.pods.len() <= PODS_KEPT
        {
            return;
        }
        self.last_pruned = Some(now);
        let horizon = now - Duration::days(FORGET_AFTER_DAYS);
        let mut old: Vec<(DateTime<Utc>, String)> = self
            .pods
            .iter()
            .map(|(k, p)| (p.seen_at, k.clone()))
            .collect();
        old.sort();
        let over = self.pods.len().saturating_sub(PODS_KEPT);
        for (i, (seen, key)) in old.into_iter().enumerate() {
            if seen >= horizon && i >= over {
                break;
            }
            self.remove(&key);
        }
    }
}

/// Pods by node and workload, folded from `k8s.event`s.
#[derive(Default)]
pub struct Topology {
    inner: RwLock<Inner>,
}

/// `{cluster}/{namespace}/{pod}`.
fn pod_key(cluster: &str, namespace: &str, name: &str) -> String {
    format!("{cluster}/{namespace}/{name}")
}

/// The node of "Successfully assigned shop/web-1 to node-7" (the
/// scheduler's `Scheduled` message).
pub fn scheduled_node(message: &str) -> Option<&str> {
    let (_, node) = message.rsplit_once(" to ")?;
    let node = node.trim().trim_end_matches('.');
    (!node.is_empty() && !node.contains(' ')).then_some(node)
}

/// The workload an owner reference stands for: a ReplicaSet
/// `web-7d9f8c6b5` is the Deployment `web` (its pod-template hash
/// stripped); StatefulSets, DaemonSets, Jobs and the rest are themselves.
pub fn workload_of(owner_kind: &str, owner_name: &str) -> (String, String) {
    if owner_kind == "ReplicaSet"
        && let Some((deployment, hash)) = owner_name.rsplit_once('-')
        && !deployment.is_empty()
        && (5..=10).contains(&hash.len())
        && hash
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return ("Deployment".into(), deployment.into());
    }
    (owner_kind.to_string(), owner_name.to_string())
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    /// The pods an alert's `pod` label names (in its `namespace` and
    /// `cluster` when it has them).
    pub fn pods_named(&self, name: &str, scope: &Scope) -> Vec<Pod> {
        let inner = self.inner.read();
        Self::select(&inner, inner.by_name.get(name), scope)
    }

    /// The pods of a workload (by its name or its app label).
    pub fn pods_of(&self, workload: &str, scope: &Scope) -> Vec<Pod> {
        let inner = self.inner.read();
        Self::select(&inner, inner.by_workload.get(workload), scope)
    }

    fn select(inner: &Inner, keys: Option<&BTreeSet<String>>, scope: &Scope) -> Vec<Pod> {
        keys.into_iter()
            .flatten()
            .filter_map(|k| inner.pods.get(k))
            .filter(|p| scope.admits(p))
            .cloned()
            .collect()
    }

    /// The nodes and workloads of the pod named `pod` and of the pods of
    /// `workloads`, added to `facts` under one read of the view, copying
    /// only what is new to it (a pass asks this of every target).
    fn gather(&self, pod: Option<&str>, workloads: &[&str], scope: &Scope, facts: &mut Facts) {
        let inner = self.inner.read();
        let add = |set: &mut BTreeSet<String>, value: &str| {
            if !value.is_empty() && !set.contains(value) {
                set.insert(value.to_string());
            }
        };
        let named = pod.and_then(|p| inner.by_name.get(p));
        for p in named
            .into_iter()
            .flatten()
            .filter_map(|k| inner.pods.get(k))
            .filter(|p| scope.admits(p))
        {
            add(&mut facts.nodes, &p.node);
            add(&mut facts.workloads, &p.workload);
            add(&mut facts.workloads, &p.app);
        }
        for w in workloads {
            for p in inner
                .by_workload
                .get(*w)
                .into_iter()
                .flatten()
                .filter_map(|k| inner.pods.get(k))
                .filter(|p| scope.admits(p))
            {
                add(&mut facts.nodes, &p.node);
            }
        }
    }

    /// How many pods it knows.
    pub fn len(&self) -> usize {
        self.inner.read().pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fold(&self, at: DateTime<Utc>, k: &K8sEvent) {
        let mut inner = self.inner.write();
        let object = &k.involved_object;
        match object.kind.as_str() {
            "Pod" => {
                let key = pod_key(&k.cluster, &k.namespace, &object.name);
                if object.deleted {
                    inner.remove(&key);
                } else {
                    let mut pod = inner.pods.get(&key).cloned().unwrap_or_else(|| Pod {
                        cluster: k.cluster.clone(),
                        namespace: k.namespace.clone(),
                        name: object.name.clone(),
                        ..Pod::default()
                    });
                    let known = inner.pods.contains_key(&key);
                    let node = match k.reason.as_str() {
                        "Scheduled" => scheduled_node(&k.message),
                        _ => None,
                    }
                    .or((!k.host.is_empty()).then_some(k.host.as_str()));
                    if let Some(node) = node {
                        pod.node = node.to_string();
                    }
                    let owner = object
                        .owner_references
                        .iter()
                        .find(|o| o.controller)
                        .or(object.owner_references.first());
                    if let Some(owner) = owner {
                        (pod.workload_kind, pod.workload) = workload_of(&owner.kind, &owner.name);
                    }
                    if let Some(app) = k
                        .labels
                        .get("app.kubernetes.io/name")
                        .or(k.labels.get("app"))
                    {
                        pod.app = app.to_string();
                    }
                    // A pod it learns nothing about is not worth keeping.
                    if known
                        || !(pod.node.is_empty() && pod.workload.is_empty() && pod.app.is_empty())
                    {
                        pod.seen_at = at;
                        inner.put(key, pod);
                    }
                }
            }
            // The node controller's event when a node is deleted: its pods
            // are gone with it.
            "Node" if object.deleted || k.reason == "RemovingNode" => {
                let gone: Vec<String> = inner
                    .pods
                    .iter()
                    .filter(|(_, p)| p.node == object.name && p.cluster == k.cluster)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in gone {
                    inner.remove(&key);
                }
            }
            _ => {}
        }
        inner.prune(at);
    }
}

impl Projection for Topology {
    fn name(&self) -> &'static str {
        "topology"
    }

    fn apply(&self, event: &Event) {
        if let EventKind::K8sEvent(k) = &event.kind {
            self.fold(event.occurred_at, k);
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.inner.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        let mut inner: Inner = crate::eventlog::projection::restored(state)?;
        inner.reindex();
        *self.inner.write() = inner;
        Ok(())
    }
}

/// The `namespace` and `cluster` an alert names, narrowing which pods its
/// `pod` or workload labels mean.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub namespace: Option<String>,
    pub cluster: Option<String>,
}

impl Scope {
    pub fn of(labels: &LabelSet) -> Scope {
        let get = |name: &str| labels.get(name).filter(|v| !v.is_empty()).map(String::from);
        Scope {
            namespace: get("namespace"),
            cluster: get("cluster"),
        }
    }

    fn admits(&self, pod: &Pod) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == pod.namespace)
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| pod.cluster.is_empty() || *c == pod.cluster)
    }
}

/// The `topology:` section.
///
/// ```yaml
/// topology:
///   workload_labels: [workload, deployment, statefulset, daemonset, service, app]
///   dependencies:
///     - name: checkout needs orders-db
///       matchers: ['service=~"checkout|cart"']
///       depends_on: ['database="orders-db"']
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// Alert labels whose value names a workload (a Deployment,
    /// StatefulSet, DaemonSet or Job, or a pod's app label), tried in
    /// order.
    pub workload_labels: Vec<String>,
    /// Declared dependencies: alerts matching `matchers` depend on what
    /// matches `depends_on`.
    pub dependencies: Vec<DependencyConfig>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            workload_labels: [
                "workload",
                "deployment",
                "statefulset",
                "daemonset",
                "service",
                "app",
            ]
            .map(String::from)
            .to_vec(),
            dependencies: Vec::new(),
        }
    }
}

/// One declared dependency.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyConfig {
    /// Shown in explanations; `dependencies[i]` when not given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The dependents: alerts of the services that depend.
    pub matchers: Matchers,
    /// What they depend on: alerts of the dependency.
    pub depends_on: Matchers,
}

impl TopologyConfig {
    /// Refuses what would join everything to everything, naming the field.
    pub fn check(&self) -> Result<(), String> {
        for (i, l) in self.workload_labels.iter().enumerate() {
            if l.is_empty() {
                return Err(format!("topology.workload_labels[{i}]: must not be empty"));
            }
        }
        let mut names = BTreeSet::new();
        for (i, d) in self.dependencies.iter().enumerate() {
            let at = format!("topology.dependencies[{i}]");
            if d.matchers.is_empty() {
                return Err(format!(
                    "{at}.matchers: must not be empty (every alert would depend on {})",
                    d.depends_on
                ));
            }
            if d.depends_on.is_empty() {
                return Err(format!(
                    "{at}.depends_on: must not be empty (every alert would be a dependency of {})",
                    d.matchers
                ));
            }
            if !d.name.is_empty() && !names.insert(d.name.as_str()) {
                return Err(format!("{at}.name: {:?} is used twice", d.name));
            }
        }
        Ok(())
    }

    fn dependency_name(&self, i: usize) -> String {
        match self.dependencies[i].name.as_str() {
            "" => format!("dependencies[{i}]"),
            name => name.to_string(),
        }
    }
}

/// How an inhibit rule's `through:` joins a source (the cause) and a target
/// (the symptom), beyond `equal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Through {
    /// The target runs on the node the source is about (its `node`
    /// label): a pod placed there, a workload with a pod there, or a
    /// `node` label of its own.
    Placement,
    /// Source and target belong to the same workload (by their workload
    /// labels, or their pods').
    Workload,
    /// The target matches a declared dependency whose `depends_on` the
    /// source matches.
    Dependency,
    /// Both are suspected of the same release (started in its bake
    /// window).
    Release,
}

/// What the topology knows of one alert, gathered once per alert and pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Nodes it runs on: its `node` label, its pod's, its workload's pods'.
    pub nodes: BTreeSet<String>,
    /// Workloads it belongs to: named by its labels, or its pod's.
    pub workloads: BTreeSet<String>,
    /// The release it is suspected of.
    pub release: Option<String>,
    /// What it is about, for the cause's summary: `pod`, or the workload
    /// label that names it (`service`), or `alert`.
    pub kind: String,
}

/// The views and the config joins are asked of.
#[derive(Clone, Default)]
pub struct Joins {
    pub topology: Arc<Topology>,
    pub releases: Arc<Releases>,
    pub config: Arc<TopologyConfig>,
}

impl Joins {
    /// What is known of the alert `fingerprint` with `labels`.
    pub fn facts(&self, fingerprint: &str, labels: &LabelSet) -> Facts {
        let scope = Scope::of(labels);
        let mut facts = Facts::default();
        if let Some(node) = labels.get("node").filter(|n| !n.is_empty()) {
            facts.nodes.insert(node.to_string());
        }
        let pod = labels.get("pod").filter(|p| !p.is_empty());
        let mut kind = pod.map(|_| "pod".to_string());
        let mut workloads = Vec::new();
        for label in &self.config.workload_labels {
            let Some(workload) = labels.get(label).filter(|w| !w.is_empty()) else {
                continue;
            };
            kind.get_or_insert_with(|| label.clone());
            if !facts.workloads.contains(workload) {
                facts.workloads.insert(workload.to_string());
            }
            workloads.push(workload);
        }
        self.topology.gather(pod, &workloads, &scope, &mut facts);
        facts.kind = kind.unwrap_or_else(|| "alert".into());
        // Fenghuo's `ReleaseSuspected` alert is about the release it names.
        facts.release = crate::act::release::release_of_alert(labels)
            .map(str::to_string)
            .or_else(|| self.releases.suspicion_of(fingerprint).map(|s| s.release));
        facts
    }

    /// Whether the target is a symptom of the source `through` this join,
    /// and through what, in words (`node-7 placement`, `workload web`,
    /// `dependency "checkout needs orders-db"`, `release rel-142`).
    ///
    /// `source` is its fingerprint and labels: what else is known of it is
    /// looked up only for the joins that need it.
    pub fn join(
        &self,
        through: Through,
        target: (&LabelSet, &Facts),
        (source_fp, source): (&str, &LabelSet),
    ) -> Option<String> {
        match through {
            Through::Placement => {
                let node = source.get("node").filter(|n| !n.is_empty())?;
                target
                    .1
                    .nodes
                    .contains(node)
                    .then(|| format!("{node} placement"))
            }
            Through::Workload => {
                let facts = self.facts(source_fp, source);
                let shared = target.1.workloads.intersection(&facts.workloads).next()?;
                Some(format!("workload {shared}"))
            }
            Through::Dependency => self
                .config
                .dependencies
                .iter()
                .position(|d| d.matchers.matches(target.0) && d.depends_on.matches(source))
                .map(|i| format!("dependency {:?}", self.config.dependency_name(i))),
            Through::Release => {
                let release = target.1.release.as_ref()?;
                (self.facts(source_fp, source).release.as_ref() == Some(release))
                    .then(|| format!("release {release}"))
            }
        }
    }
}

/// A page's symptoms in words: [`summary`], then what joined since the
/// group's last message when some had been summarised before: "200 pods
/// affected (new: 100 pods)". Empty when there are none.
pub fn summary_of(symptoms: &[crate::eventlog::Symptom]) -> String {
    let all = summary(symptoms.iter().map(|s| s.kind.as_str()));
    let new: Vec<&str> = symptoms
        .iter()
        .filter(|s| s.new)
        .map(|s| s.kind.as_str())
        .collect();
    if new.is_empty() || new.len() == symptoms.len() {
        return all;
    }
    let counted = counts(new.into_iter());
    format!("{all} (new: {})", counted.join(", "))
}

/// "40 pods and 5 services affected": symptoms counted by kind, most
/// first (then by name); empty when there are none.
pub fn summary<'a>(kinds: impl Iterator<Item = &'a str>) -> String {
    let parts = counts(kinds);
    match parts.as_slice() {
        [] => String::new(),
        [one] => format!("{one} affected"),
        [init @ .., last] => format!("{} and {last} affected", init.join(", ")),
    }
}

/// "40 pods", "5 services": per kind, most first (then by name).
fn counts<'a>(kinds: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds {
        *counts.entry(k).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(kind, n)| match (*kind, *n) {
            (k, 1) => format!("1 {k}"),
            (k, n) if k.ends_with('s') => format!("{n} {k}es"),
            (k, n) => format!("{n} {k}s"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::inhibit::{InhibitRule, InhibitRuleConfig, Source, inhibitions_at};
    use crate::eventlog::{InvolvedObject, OwnerReference};

    fn t0() -> DateTime<Utc> {
        "2026-11-26T03:00:00Z".parse().unwrap()
    }

    fn event(seq: u64, minutes: i64, k: K8sEvent) -> Event {
        Event {
            seq,
            id: format!("e{seq}").into(),
            occurred_at: t0() + Duration::minutes(minutes),
            recorded_at: t0() + Duration::minutes(minutes),
            source: "kubernetes".into(),
            key: format!("k8s/{seq}").into(),
            idempotency_key: None,
            kind: EventKind::K8sEvent(Arc::new(k)),
        }
    }

    /// A Pod event: `(reason, pod, message, host, owner (kind, name), app
    /// label, deleted)`.
    type PodEvent = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
        Option<&'static str>,
        bool,
    );

    /// (node, workload, app) of a pod.
    type Placement = (&'static str, &'static str, &'static str);

    fn pod_event(e: &PodEvent) -> K8sEvent {
        let (reason, pod, message, host, owner, app, deleted) = *e;
        K8sEvent {
            cluster: "prod".into(),
            namespace: "shop".into(),
            involved_object: InvolvedObject {
                kind: "Pod".into(),
                name: pod.into(),
                owner_references: owner
                    .map(|(kind, name)| OwnerReference {
                        kind: kind.into(),
                        name: name.into(),
                        controller: true,
                    })
                    .into_iter()
                    .collect(),
                deleted,
                ..Default::default()
            },
            reason: reason.into(),
            message: message.into(),
            host: host.into(),
            labels: app.map(|a| [("app", a)].into()).unwrap_or_default(),
            ..Default::default()
        }
    }

    fn placement(t: &Topology, pod: &str) -> Option<(String, String, String)> {
        let pods = t.pods_named(pod, &Scope::default());
        pods.first()
            .map(|p| (p.node.clone(), p.workload.clone(), p.app.clone()))
    }

    /// Events in, placement out: each row folds one more event and says
    /// what the pod it is about looks like afterwards.
    #[test]
    fn placement_is_folded_from_kubernetes_events() {
        let rs = Some(("ReplicaSet", "web-7d9f8c6b5"));
        // (event, pod asked about, (node, workload, app) or None: unknown)
        let rows: &[(PodEvent, &str, Option<Placement>)] = &[
            // The scheduler places a pod; the exporter adds its owner and
            // labels: ReplicaSet web-7d9f8c6b5 is Deployment web.
            (
                (
                    "Scheduled",
                    "web-7d9f8c6b5-x1",
                    "Successfully assigned shop/web-7d9f8c6b5-x1 to node-7",
                    "",
                    rs,
                    Some("web"),
                    false,
                ),
                "web-7d9f8c6b5-x1",
                Some(("node-7", "web", "web")),
            ),
            // A kubelet event on another pod: its node is the kubelet's.
            (
                (
                    "Pulled",
                    "db-0",
                    "image pulled",
                    "node-3",
                    Some(("StatefulSet", "db")),
                    None,
                    false,
                ),
                "db-0",
                Some(("node-3", "db", "")),
            ),
            // A later event that says nothing new keeps what was learned.
            (
                (
                    "BackOff",
                    "web-7d9f8c6b5-x1",
                    "Back-off restarting",
                    "",
                    None,
                    None,
                    false,
                ),
                "web-7d9f8c6b5-x1",
                Some(("node-7", "web", "web")),
            ),
            // A StatefulSet pod rescheduled (same name) to another node.
            (
                (
                    "Scheduled",
                    "db-0",
                    "Successfully assigned shop/db-0 to node-9",
                    "",
                    None,
                    None,
                    false,
                ),
                "db-0",
                Some(("node-9", "db", "")),
            ),
            // The exporter saw the pod deleted: forgotten.
            (
                (
                    "Killing",
                    "web-7d9f8c6b5-x1",
                    "Stopping container web",
                    "node-7",
                    rs,
                    None,
                    true,
                ),
                "web-7d9f8c6b5-x1",
                None,
            ),
            // An event that teaches nothing about an unknown pod keeps
            // nothing.
            (
                (
                    "FailedMount",
                    "lonely",
                    "MountVolume.SetUp failed",
                    "",
                    None,
                    None,
                    false,
                ),
                "lonely",
                None,
            ),
            // A Job's pod: the Job is its workload.
            (
                (
                    "Scheduled",
                    "backup-29-abcde",
                    "Successfully assigned shop/backup-29-abcde to node-2",
                    "",
                    Some(("Job", "backup-29")),
                    None,
                    false,
                ),
                "backup-29-abcde",
                Some(("node-2", "backup-29", "")),
            ),
        ];
        let t = Topology::new();
        for (i, (e, pod, want)) in rows.iter().enumerate() {
            t.apply(&event(i as u64 + 1, i as i64, pod_event(e)));
            let want = want.map(|(n, w, a)| (n.to_string(), w.to_string(), a.to_string()));
            assert_eq!(placement(&t, pod), want, "row {i}: {e:?}");
        }
        assert_eq!(t.len(), 2);
        // The workload index followed the deletion.
        assert!(t.pods_of("web", &Scope::default()).is_empty());
        assert_eq!(t.pods_of("db", &Scope::default()).len(), 1);
    }

    #[test]
    fn owner_references_and_scheduler_messages_are_read() {
        // (owner kind, owner name, workload kind, workload)
        let owners = [
            ("ReplicaSet", "web-7d9f8c6b5", "Deployment", "web"),
            (
                "ReplicaSet",
                "checkout-api-5b8c7d4f9",
                "Deployment",
                "checkout-api",
            ),
            // Not a pod-template hash: the ReplicaSet itself.
            ("ReplicaSet", "legacy-rs", "ReplicaSet", "legacy-rs"),
            ("ReplicaSet", "web-7D9F8", "ReplicaSet", "web-7D9F8"),
            ("StatefulSet", "db", "StatefulSet", "db"),
            ("DaemonSet", "node-exporter", "DaemonSet", "node-exporter"),
        ];
        for (kind, name, want_kind, want) in owners {
            assert_eq!(
                workload_of(kind, name),
                (want_kind.to_string(), want.to_string()),
                "{kind} {name}"
            );
        }
        // (message, node)
        let messages = [
            ("Successfully assigned shop/web-1 to node-7", Some("node-7")),
            (
                "Successfully assigned shop/web-1 to ip-10-0-1-7.ec2.internal",
                Some("ip-10-0-1-7.ec2.internal"),
            ),
            ("0/3 nodes are available: 3 Insufficient cpu.", None),
            ("Successfully assigned shop/web-1 to ", None),
        ];
        for (message, want) in messages {
            assert_eq!(scheduled_node(message), want, "{message}");
        }
    }

    /// Pods unheard of for a week are forgotten, in log time, so replay
    /// forgets the same ones; a removed node takes its pods with it.
    #[test]
    fn old_pods_and_removed_nodes_are_forgotten() {
        let t = Topology::new();
        let scheduled = |pod: &'static str, node: &str| {
            let mut e = pod_event(&("Scheduled", pod, "", "", None, Some("web"), false));
            e.message = format!("Successfully assigned shop/{pod} to {node}");
            e
        };
        t.apply(&event(1, 0, scheduled("old", "node-1")));
        t.apply(&event(2, 60 * 24 * 6, scheduled("young", "node-2")));
        t.apply(&event(3, 60 * 24 * 6, scheduled("other", "node-1")));
        assert_eq!(t.len(), 3);
        // Eight days after the first: "old" was last heard of 8 days ago.
        t.apply(&event(4, 60 * 24 * 8, scheduled("new", "node-3")));
        let mut names: Vec<String> = t
            .inner
            .read()
            .pods
            .values()
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["new", "other", "young"]);
        // node-1 is removed from the cluster.
        let removed = K8sEvent {
            cluster: "prod".into(),
            involved_object: InvolvedObject {
                kind: "Node".into(),
                name: "node-1".into(),
                ..Default::default()
            },
            reason: "RemovingNode".into(),
            message: "Node node-1 event: Removing Node node-1 from Controller".into(),
            ..Default::default()
        };
        t.apply(&event(5, 60 * 24 * 8, removed));
        assert!(t.pods_named("other", &Scope::default()).is_empty());
        assert_eq!(t.len(), 2);
    }

    /// A snapshot restores the same view, indexes included.
    #[test]
    fn a_snapshot_restores_the_same_view() {
        let t = Topology::new();
        t.apply(&event(
            1,
            0,
            pod_event(&(
                "Scheduled",
                "web-7d9f8c6b5-x1",
                "Successfully assigned shop/web-7d9f8c6b5-x1 to node-7",
                "",
                Some(("ReplicaSet", "web-7d9f8c6b5")),
                Some("web"),
                false,
            )),
        ));
        let state = (t.snapshot().unwrap())();
        let back = Topology::new();
        back.restore(state).unwrap();
        assert_eq!(
            back.pods_of("web", &Scope::default()),
            t.pods_of("web", &Scope::default())
        );
        assert_eq!(
            placement(&back, "web-7d9f8c6b5-x1"),
            placement(&t, "web-7d9f8c6b5-x1")
        );
    }

    #[test]
    fn a_summary_counts_symptoms_by_kind() {
        let rows: &[(&[&str], &str)] = &[
            (&[], ""),
            (&["pod"], "1 pod affected"),
            (&["service", "pod", "pod"], "2 pods and 1 service affected"),
            (&["pod"; 40], "40 pods affected"),
            (
                &["alert", "service", "service", "pod", "pod", "pod"],
                "3 pods, 2 services and 1 alert affected",
            ),
            (&["status", "status"], "2 statuses affected"),
        ];
        for (kinds, want) in rows {
            assert_eq!(summary(kinds.iter().copied()), *want, "{kinds:?}");
        }
    }

    /// A message's symptoms say what joined since the group's last
    /// message, when some had been summarised before.
    #[test]
    fn a_summary_says_which_symptoms_are_new() {
        let symptom = |kind: &str, new: bool| crate::eventlog::Symptom {
            fingerprint: String::new(),
            cause: String::new(),
            through: String::new(),
            kind: kind.into(),
            new,
        };
        // (symptoms as (kind, new), summary)
        let rows: &[(&[(&str, bool)], &str)] = &[
            (&[], ""),
            (&[("pod", false), ("pod", false)], "2 pods affected"),
            // All new: the first summary, nothing to compare with.
            (&[("pod", true), ("pod", true)], "2 pods affected"),
            (
                &[("pod", false), ("pod", true), ("pod", true)],
                "3 pods affected (new: 2 pods)",
            ),
            (
                &[("pod", false), ("service", true), ("pod", true)],
                "2 pods and 1 service affected (new: 1 pod, 1 service)",
            ),
        ];
        for (symptoms, want) in rows {
            let symptoms: Vec<_> = symptoms.iter().map(|(k, n)| symptom(k, *n)).collect();
            assert_eq!(summary_of(&symptoms), *want, "{symptoms:?}");
        }
    }

    /// Config mistakes are refused naming the field.
    #[test]
    fn config_mistakes_name_the_field() {
        // (yaml of the section, error or its start)
        let rows: &[(&str, &str)] = &[
            (
                "dependencies: [{matchers: [], depends_on: ['database=\"orders-db\"']}]",
                "topology.dependencies[0].matchers: must not be empty",
            ),
            (
                "dependencies: [{name: a, matchers: ['service=\"x\"'], depends_on: []}]",
                "topology.dependencies[0].depends_on: must not be empty",
            ),
            (
                "dependencies:\n  - {name: a, matchers: ['service=\"x\"'], depends_on: ['db=\"y\"']}\n  - {name: a, matchers: ['service=\"z\"'], depends_on: ['db=\"y\"']}",
                "topology.dependencies[1].name: \"a\" is used twice",
            ),
            (
                "workload_labels: [app, '']",
                "topology.workload_labels[1]: must not be empty",
            ),
        ];
        for (yaml, want) in rows {
            let config: TopologyConfig = yaml_serde::from_str(yaml).unwrap();
            let err = config.check().unwrap_err();
            assert!(err.starts_with(want), "{yaml}: {err}");
        }
        // Misspelt fields and bad matchers are YAML errors with the line.
        for (yaml, want) in [
            (
                "dependencies:\n  - {matchers: [a=b], depend_on: [c=d]}",
                "unknown field `depend_on`",
            ),
            (
                "dependencies:\n  - {matchers: ['a=~\"(\"'], depends_on: [c=d]}",
                "invalid matcher",
            ),
        ] {
            let err = yaml_serde::from_str::<TopologyConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want) && err.contains("line 2"),
                "{yaml}: {err}"
            );
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rules(yaml: &str) -> Vec<InhibitRule> {
        let cfgs: Vec<InhibitRuleConfig> = yaml_serde::from_str(yaml).unwrap();
        InhibitRule::compile(&cfgs).unwrap()
    }

    /// Inhibition through the topology, as a timeline: the node fails,
    /// its pod and service (no node label) are its symptoms; an unrelated
    /// service is not; the node resolves and the symptoms stay muted for
    /// the grace, then whatever still fires is on its own.
    #[test]
    fn symptoms_are_joined_to_their_cause_through_placement_until_the_grace_ends() {
        let topology = Arc::new(Topology::new());
        topology.apply(&event(
            1,
            0,
            pod_event(&(
                "Scheduled",
                "web-7d9f8c6b5-x1",
                "Successfully assigned shop/web-7d9f8c6b5-x1 to node-7",
                "",
                Some(("ReplicaSet", "web-7d9f8c6b5")),
                Some("web"),
                false,
            )),
        ));
        topology.apply(&event(
            2,
            0,
            pod_event(&(
                "Scheduled",
                "api-5b8c7d4f9-y1",
                "Successfully assigned shop/api-5b8c7d4f9-y1 to node-3",
                "",
                Some(("ReplicaSet", "api-5b8c7d4f9")),
                Some("api"),
                false,
            )),
        ));
        let joins = Joins {
            topology,
            ..Joins::default()
        };
        let rules = rules(
            "- source_matchers: [alertname=NodeNotReady]\n  target_matchers: ['alertname=~\"PodNotReady|ServiceDegraded\"']\n  equal: [cluster]\n  through: placement\n  grace: 10m\n",
        );
        let node = labels(&[
            ("alertname", "NodeNotReady"),
            ("node", "node-7"),
            ("cluster", "prod"),
        ]);
        let pod = labels(&[
            ("alertname", "PodNotReady"),
            ("pod", "web-7d9f8c6b5-x1"),
            ("namespace", "shop"),
            ("cluster", "prod"),
        ]);
        let web = labels(&[
            ("alertname", "ServiceDegraded"),
            ("service", "web"),
            ("cluster", "prod"),
        ]);
        let api = labels(&[
            ("alertname", "ServiceDegraded"),
            ("service", "api"),
            ("cluster", "prod"),
        ]);
        // Another cluster's web is not on this node-7.
        let web_eu = labels(&[
            ("alertname", "ServiceDegraded"),
            ("service", "web"),
            ("cluster", "eu"),
        ]);
        let at = |m: i64| t0() + Duration::minutes(m);
        // (minute, node resolved at (minute), target, why it is muted)
        let rows: &[(i64, Option<i64>, &LabelSet, &str)] = &[
            (1, None, &pod, "node through node-7 placement"),
            (1, None, &web, "node through node-7 placement"),
            (1, None, &api, ""),
            (1, None, &web_eu, ""),
            (1, None, &node, ""),
            // Resolved at 10m: muted through the grace, with when it ends.
            (
                15,
                Some(10),
                &web,
                "node through node-7 placement (cause resolved at 2026-11-26T03:10:00Z, grace until 2026-11-26T03:20:00Z)",
            ),
            // The grace is over: on its own.
            (20, Some(10), &web, ""),
        ];
        for (minute, resolved, target, want) in rows {
            let got = inhibitions_at(
                &rules,
                ("target", target),
                std::iter::once(Source {
                    fingerprint: "node",
                    labels: &node,
                    resolved_at: resolved.map(at),
                }),
                at(*minute),
                Some(&joins),
            );
            let got: Vec<String> = got.iter().map(ToString::to_string).collect();
            let want: Vec<String> = (!want.is_empty())
                .then(|| want.to_string())
                .into_iter()
                .collect();
            assert_eq!(got, want, "at {minute}m: {target:?}");
        }
        // Without the topology, a rule with `through:` joins nothing.
        let alone = inhibitions_at(
            &rules,
            ("target", &pod),
            std::iter::once(Source {
                fingerprint: "node",
                labels: &node,
                resolved_at: None,
            }),
            at(1),
            None,
        );
        assert!(alone.is_empty());
        // What each symptom is, for the cause's summary.
        assert_eq!(joins.facts("p", &pod).kind, "pod");
        assert_eq!(joins.facts("s", &web).kind, "service");
        assert_eq!(joins.facts("n", &node).kind, "alert");
    }

    /// Declared dependencies and shared workloads join too.
    #[test]
    fn dependencies_and_workloads_join_cause_and_symptom() {
        let config: TopologyConfig = yaml_serde::from_str(
            "dependencies:\n  - name: checkout needs orders-db\n    matchers: ['service=~\"checkout|cart\"']\n    depends_on: ['database=\"orders-db\"']\n",
        )
        .unwrap();
        let topology = Arc::new(Topology::new());
        topology.apply(&event(
            1,
            0,
            pod_event(&(
                "Scheduled",
                "web-7d9f8c6b5-x1",
                "Successfully assigned shop/web-7d9f8c6b5-x1 to node-7",
                "",
                Some(("ReplicaSet", "web-7d9f8c6b5")),
                None,
                false,
            )),
        ));
        let joins = Joins {
            topology,
            config: Arc::new(config),
            ..Joins::default()
        };
        let db = labels(&[("alertname", "PostgresDown"), ("database", "orders-db")]);
        let checkout = labels(&[("alertname", "HighErrorRate"), ("service", "checkout")]);
        let search = labels(&[("alertname", "HighErrorRate"), ("service", "search")]);
        let rollout = labels(&[
            ("alertname", "KubeDeploymentRolloutStuck"),
            ("deployment", "web"),
        ]);
        let crash = labels(&[
            ("alertname", "PodCrashLooping"),
            ("pod", "web-7d9f8c6b5-x1"),
        ]);
        let facts = |l: &LabelSet| joins.facts("x", l);
        // (through, target, source, joined through)
        let rows: &[(Through, &LabelSet, &LabelSet, Option<&str>)] = &[
            (
                Through::Dependency,
                &checkout,
                &db,
                Some("dependency \"checkout needs orders-db\""),
            ),
            (Through::Dependency, &search, &db, None),
            // Dependencies have a direction.
            (Through::Dependency, &db, &checkout, None),
            (Through::Workload, &crash, &rollout, Some("workload web")),
            (Through::Workload, &checkout, &rollout, None),
            // Neither is suspected of a release.
            (Through::Release, &crash, &rollout, None),
        ];
        for (through, target, source, want) in rows {
            let got = joins.join(*through, (target, &facts(target)), ("x", source));
            assert_eq!(got.as_deref(), *want, "{through:?} {target:?} {source:?}");
        }
    }

    /// Alerts suspected of the same release are joined through it; of
    /// another release, or none, not.
    #[test]
    fn alerts_suspected_of_one_release_are_joined_through_it() {
        use crate::eventlog::event::{Release, ReleaseSuspicion};
        let releases = Arc::new(Releases::new());
        let mut seq = 0;
        let mut fold = |kind: EventKind| {
            seq += 1;
            releases.apply(&Event {
                seq,
                id: format!("e{seq}").into(),
                occurred_at: t0(),
                recorded_at: t0(),
                source: "api".into(),
                key: Default::default(),
                idempotency_key: None,
                kind,
            });
        };
        for (id, version) in [("rel-142", "v1.4.2"), ("rel-9", "v9")] {
            fold(EventKind::ReleaseRecorded(Release {
                id: id.into(),
                app: if id == "rel-9" { "search" } else { "checkout" }.into(),
                env: "prod".into(),
                cluster: "prod".into(),
                version: version.into(),
                by: "alice".into(),
                change_url: String::new(),
                strategy: String::new(),
                via: "api".into(),
            }));
        }
        for (subject, release) in [
            ("stuck", "rel-142"),
            ("crash", "rel-142"),
            ("other", "rel-9"),
        ] {
            fold(EventKind::ReleaseSuspected(ReleaseSuspicion {
                release: release.into(),
                app: "checkout".into(),
                env: "prod".into(),
                version: "v1.4.2".into(),
                released_by: "alice".into(),
                evidence_kind: "alert".into(),
                subject: subject.into(),
                evidence: "PodCrashLooping".into(),
                evidence_seq: 1,
                after_secs: 30,
                severity: "warning".into(),
            }));
        }
        let joins = Joins {
            releases,
            ..Joins::default()
        };
        let l = labels(&[("alertname", "A")]);
        let join = |target: &str, source: &str| {
            joins.join(
                Through::Release,
                (&l, &joins.facts(target, &l)),
                (source, &l),
            )
        };
        assert_eq!(join("crash", "stuck").as_deref(), Some("release rel-142"));
        assert_eq!(join("crash", "other"), None);
        assert_eq!(join("unsuspected", "stuck"), None);
        // The release's own alert is about the release its label names
        // (it is not suspected of anything); a `release` label on another
        // alert (Helm's) names none of ours.
        let raised = labels(&[("alertname", "ReleaseSuspected"), ("release", "rel-142")]);
        let helm = labels(&[("alertname", "PodCrashLooping"), ("release", "rel-142")]);
        let from = |source: &LabelSet| {
            joins.join(
                Through::Release,
                (&l, &joins.facts("crash", &l)),
                ("raised", source),
            )
        };
        assert_eq!(from(&raised).as_deref(), Some("release rel-142"));
        assert_eq!(from(&helm), None);
    }
}
