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
        let mut kind = None;
        if let Some(pod) = labels.get("pod").filter(|p| !p.is_empty()) {
            kind = Some("pod".to_string());
            for p in self.topology.pods_named(pod, &scope) {
                if !p.node.is_empty() {
                    facts.nodes.insert(p.node);
                }
                for w in [p.workload, p.app] {
                    if !w.is_empty() {
                        facts.workloads.insert(w);
                    }
                }
            }
        }
        for label in &self.config.workload_labels {
            let Some(workload) = labels.get(label).filter(|w| !w.is_empty()) else {
                continue;
            };
            kind.get_or_insert_with(|| label.clone());
            facts.workloads.insert(workload.to_string());
            for p in self.topology.pods_of(workload, &scope) {
                if !p.node.is_empty() {
                    facts.nodes.insert(p.node);
                }
            }
        }
        facts.kind = kind.unwrap_or_else(|| "alert".into());
        facts.release = self
            .releases
            .suspicion_of(fingerprint)
            .map(|s| s.release);
        facts
    }

    /// Whether the target is a symptom of the source `through` this join,
    /// and through what, in words (`node-7 placement`, `workload web`,
    /// `dependency "checkout needs orders-db"`, `release rel-142`).
    pub fn join(
        &self,
        through: Through,
        target: (&LabelSet, &Facts),
        source: (&LabelSet, &dyn Fn() -> Facts),
    ) -> Option<String> {
        match through {
            Through::Placement => {
                let node = source.0.get("node").filter(|n| !n.is_empty())?;
                target
                    .1
                    .nodes
                    .contains(node)
                    .then(|| format!("{node} placement"))
            }
            Through::Workload => {
                let facts = (source.1)();
                let shared = target.1.workloads.intersection(&facts.workloads).next()?;
                Some(format!("workload {shared}"))
            }
            Through::Dependency => self
                .config
                .dependencies
                .iter()
                .position(|d| d.matchers.matches(target.0) && d.depends_on.matches(source.0))
                .map(|i| format!("dependency {:?}", self.config.dependency_name(i))),
            Through::Release => {
                let release = target.1.release.as_ref()?;
                ((source.1)().release.as_ref() == Some(release))
                    .then(|| format!("release {release}"))
            }
        }
    }
}

/// "40 pods and 5 services affected": symptoms counted by kind, most
/// first (then by name); empty when there are none.
pub fn summary<'a>(kinds: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds {
        *counts.entry(k).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = counts
        .iter()
        .map(|(kind, n)| match (*kind, *n) {
            (k, 1) => format!("1 {k}"),
            (k, n) if k.ends_with('s') => format!("{n} {k}es"),
            (k, n) => format!("{n} {k}s"),
        })
        .collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => format!("{one} affected"),
        [init @ .., last] => format!("{} and {last} affected", init.join(", ")),
    }
}
