//! Cause and symptom without a shared label, through the real pipeline on
//! a manual clock: Kubernetes' events place pods on a node; an inhibit rule
//! with `through: placement` mutes the pods and services on a failed node
//! as its symptoms, the node's page summarises them, and a symptom that
//! outlives the node by the grace pages on its own. Then the log is
//! replayed (and restored from a snapshot) and must give the same view and
//! the same reasons.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::evaluate::inhibit::{Source, inhibitions_at};
use fenghuo::evaluate::topology::Scope;
use fenghuo::eventlog::{EventKind, InvolvedObject, K8sEvent, LabelSet, NewEvent, OwnerReference};

mod support;
use support::timeline::{Timeline, notifications};

const CONFIG: &str = r#"
route:
  receiver: oncall
  group_by: [alertname, node, service]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: oncall
inhibit_rules:
  - source_matchers: [alertname="NodeNotReady"]
    target_matchers: ['alertname=~"PodNotReady|ServiceDegraded"']
    equal: [cluster]
    through: placement
    grace: 10m
storage:
  snapshot_every: 5
"#;

fn t0() -> DateTime<Utc> {
    "2026-11-26T03:00:00Z".parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The scheduler's event placing `pod` (of Deployment `workload`) on `node`.
fn scheduled(pod: &str, workload: &str, node: &str) -> NewEvent {
    let rs = format!("{workload}-7d9f8c6b5");
    NewEvent::new(
        t0(),
        "kubernetes",
        format!("k8s/prod/shop/{pod}.1"),
        EventKind::K8sEvent(Arc::new(K8sEvent {
            cluster: "prod".into(),
            namespace: "shop".into(),
            involved_object: InvolvedObject {
                kind: "Pod".into(),
                name: pod.into(),
                owner_references: vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: rs,
                    controller: true,
                }],
                ..Default::default()
            },
            reason: "Scheduled".into(),
            message: format!("Successfully assigned shop/{pod} to {node}"),
            event_type: "Normal".into(),
            count: 1,
            reporting_controller: "default-scheduler".into(),
            ..Default::default()
        })),
    )
}

/// Why each alert is inhibited now, as the running pipeline explains
/// it (the history API's `inhibitedBy`).
fn reasons(t: &Timeline) -> BTreeMap<String, Vec<String>> {
    let now = t.clock.now();
    let routing = t.pipeline.routing();
    let joins = t.pipeline.dispatcher.joins(&routing);
    let all = t.pipeline.store.all();
    let mut out = BTreeMap::new();
    for (fp, alert) in all.iter().filter(|(_, a)| a.firing_at(now)) {
        let fps: Vec<String> = all.iter().map(|(f, _)| f.to_string()).collect();
        let sources = all.iter().zip(&fps).map(|((_, a), f)| Source {
            fingerprint: f,
            labels: &a.report.labels,
            resolved_at: if a.firing_at(now) { None } else { a.ends_at },
        });
        let why = inhibitions_at(
            &routing.inhibit_rules,
            (&fp.to_string(), &alert.report.labels),
            sources,
            now,
            Some(&joins),
        );
        out.insert(
            fp.to_string(),
            why.iter().map(ToString::to_string).collect(),
        );
    }
    out
}

fn fp(l: &LabelSet) -> String {
    fenghuo::evaluate::Fingerprint::of(l).to_string()
}

/// The timeline: pods placed at 0 s; node-7 fails at 60 s, its pod and its
/// service follow, and an unrelated service on node-3 degrades too. The
/// node pages at group_wait with its symptoms summarised; the unrelated
/// service pages on its own; the node recovers at 10 min, the pod with it,
/// but web stays degraded past the grace and pages at 20 min.
#[tokio::test]
async fn symptoms_join_the_cause_through_placement_and_outliving_ones_page_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let mut t = Timeline::open(dir.path(), &clock, t0(), CONFIG);
    t.pipeline
        .log
        .append(vec![
            scheduled("web-7d9f8c6b5-a", "web", "node-7"),
            scheduled("web-7d9f8c6b5-b", "web", "node-7"),
            scheduled("api-7d9f8c6b5-a", "api", "node-3"),
        ])
        .await
        .unwrap();
    let node = labels(&[
        ("alertname", "NodeNotReady"),
        ("node", "node-7"),
        ("cluster", "prod"),
    ]);
    let pod_a = labels(&[
        ("alertname", "PodNotReady"),
        ("pod", "web-7d9f8c6b5-a"),
        ("namespace", "shop"),
        ("cluster", "prod"),
    ]);
    let pod_b = labels(&[
        ("alertname", "PodNotReady"),
        ("pod", "web-7d9f8c6b5-b"),
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
    assert_eq!(notifications(&t.at(0).await), vec![]);

    t.clock.set(t0() + Duration::seconds(60));
    t.post(&[&node], t0(), false).await;
    t.clock.set(t0() + Duration::seconds(65));
    t.post(&[&pod_a, &pod_b], t0(), false).await;
    t.clock.set(t0() + Duration::seconds(75));
    t.post(&[&web, &api], t0(), false).await;
    assert_eq!(notifications(&t.at(80).await), vec![]);

    // Muted, and why: through node-7's placement.
    let inhibited = reasons(&t);
    let through = format!("{} through node-7 placement", fp(&node));
    for symptom in [&pod_a, &pod_b, &web] {
        assert_eq!(
            inhibited[&fp(symptom)],
            vec![through.clone()],
            "{symptom:?}"
        );
    }
    assert_eq!(inhibited[&fp(&api)], Vec::<String>::new());

    // group_wait after the node: one page for it, its symptoms listed.
    let pages = notifications(&t.at(90).await);
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].firing, vec![fp(&node)]);
    let mut symptoms: Vec<(String, String, String)> = pages[0]
        .symptoms
        .iter()
        .map(|s| (s.fingerprint.clone(), s.kind.clone(), s.through.clone()))
        .collect();
    symptoms.sort();
    let mut want = vec![
        (
            fp(&pod_a),
            "pod".to_string(),
            "node-7 placement".to_string(),
        ),
        (
            fp(&pod_b),
            "pod".to_string(),
            "node-7 placement".to_string(),
        ),
        (
            fp(&web),
            "service".to_string(),
            "node-7 placement".to_string(),
        ),
    ];
    want.sort();
    assert_eq!(symptoms, want);
    assert_eq!(
        fenghuo::evaluate::topology::summary(pages[0].symptoms.iter().map(|s| s.kind.as_str())),
        "2 pods and 1 service affected"
    );
    // The node's incident keeps them.
    let incident = t
        .pipeline
        .incidents
        .of_group(&pages[0].group.group)
        .unwrap();
    assert_eq!(incident.symptoms.len(), 3, "{incident:#?}");
    // The unrelated service: on its own, within group_wait of its start.
    let pages = notifications(&t.at(105).await);
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].firing, vec![fp(&api)]);
    // Nothing pages for the symptoms.
    assert_eq!(notifications(&t.at(300).await), vec![]);

    // The node and the pods recover at 10 min; web does not.
    t.clock.set(t0() + Duration::minutes(10));
    t.post(&[&node, &pod_a, &pod_b], t0(), true).await;
    let during = notifications(&t.at(600 + 60).await);
    assert!(
        during.iter().all(|n| !n.firing.contains(&fp(&web))),
        "{during:#?}"
    );
    assert!(
        reasons(&t)[&fp(&web)][0].ends_with(
            "through node-7 placement (cause resolved at 2026-11-26T03:10:00Z, grace until 2026-11-26T03:20:00Z)"
        ),
        "{:?}",
        reasons(&t)
    );
    // The grace ends at 20 min: web is its own incident, paged within
    // group_wait.
    assert!(
        notifications(&t.at(20 * 60 - 1).await)
            .iter()
            .all(|n| !n.firing.contains(&fp(&web)))
    );
    assert_eq!(notifications(&t.at(20 * 60).await), vec![]);
    let pages = notifications(&t.at(20 * 60 + 30).await);
    assert_eq!(
        pages.iter().map(|n| n.firing.clone()).collect::<Vec<_>>(),
        vec![vec![fp(&web)]],
        "{pages:#?}"
    );

    // Replay equals live: the view rebuilt from the log (snapshots taken
    // every 5 events, so restored from one and the tail replayed) places
    // the same pods and gives the same reasons; a pass at the same instant
    // decides nothing new.
    let live_reasons = reasons(&t);
    let live_pods: Vec<_> = ["web", "api"]
        .iter()
        .map(|w| t.pipeline.topology.pods_of(w, &Scope::default()))
        .collect();
    assert_eq!(live_pods[0].len(), 2);
    t.pipeline.close();
    drop(t);
    let mut again = Timeline::open(dir.path(), &clock, t0(), CONFIG);
    let replayed_pods: Vec<_> = ["web", "api"]
        .iter()
        .map(|w| again.pipeline.topology.pods_of(w, &Scope::default()))
        .collect();
    assert_eq!(replayed_pods, live_pods);
    assert_eq!(reasons(&again), live_reasons);
    assert_eq!(notifications(&again.at(20 * 60 + 30).await), vec![]);
    // And from the log alone, without snapshots.
    let views = fenghuo::pipeline::Views::new();
    fenghuo::eventlog::replay(&again.pipeline.log, &views.projections(), |_, _| {}).unwrap();
    assert_eq!(
        views.topology.pods_of("web", &Scope::default()),
        live_pods[0]
    );
    // What `fenghuo why` says offline, from those views: at 15 min web was
    // muted within the grace; at 21 min it is not.
    let routing = again.pipeline.routing();
    let why = |minutes| {
        fenghuo::cli::inhibited_as_of(
            &views,
            &routing,
            &fp(&web),
            t0() + Duration::minutes(minutes),
        )
    };
    assert_eq!(
        why(15),
        Some(format!(
            "inhibited by {} through node-7 placement (cause resolved at 2026-11-26T03:10:00Z, grace until 2026-11-26T03:20:00Z)",
            fp(&node)
        ))
    );
    assert_eq!(why(21), None);
}

/// A bad `topology:` section or `through:` is refused naming the field,
/// as the rest of the config is.
#[test]
fn config_mistakes_are_refused_naming_the_field() {
    let base = "route:\n  receiver: r\nreceivers:\n  - name: r\n";
    // (the rest of the file, what the error must contain)
    let rows = [
        (
            "inhibit_rules:\n  - source_matchers: [a=b]\n    target_matchers: [c=d]\n    through: dependency\n",
            "inhibit_rules[0].through: dependency, but topology.dependencies declares none",
        ),
        (
            "inhibit_rules:\n  - source_matchers: [a=b]\n    through: nodes\n",
            "unknown variant `nodes`, expected one of `placement`, `workload`, `dependency`, `release`",
        ),
        (
            "topology:\n  dependencies:\n    - {name: x, matchers: ['service=\"a\"'], depends_on: []}\n",
            "topology.dependencies[0].depends_on: must not be empty",
        ),
        (
            "topology:\n  dependency: []\n",
            "topology: unknown field `dependency`",
        ),
    ];
    for (rest, want) in rows {
        let err = Config::parse(&format!("{base}{rest}")).unwrap_err();
        assert!(err.contains(want), "{rest}\n{err}");
    }
    // A well-formed section loads, with the default workload labels.
    let config = Config::parse(&format!(
        "{base}topology:\n  dependencies:\n    - name: checkout needs orders-db\n      matchers: ['service=\"checkout\"']\n      depends_on: ['database=\"orders-db\"']\n"
    ))
    .unwrap();
    assert_eq!(config.topology.dependencies.len(), 1);
    assert!(
        config
            .topology
            .workload_labels
            .contains(&"service".to_string())
    );
}
