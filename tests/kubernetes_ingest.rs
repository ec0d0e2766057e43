//! `POST /ingest/kubernetes` as senders use it, over real HTTP on
//! 127.0.0.1 to a pipeline on a real SQLite file: each body shape the
//! Kubernetes API reference and kubernetes-event-exporter define
//! (`tests/fixtures/kubernetes/`), re-sends that change nothing, bad bodies
//! refused naming the field, and the shipped rules paging on a
//! crash-looping pod. Also `FenghuoSourceQuiet`, driven by a manual clock.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{Event, EventKind, EventQuery, K8sWatchProgress};
use fenghuo::pipeline::Pipeline;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/kubernetes/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T03:00:00Z".parse().unwrap()
}

/// A pipeline served over real HTTP.
struct Server {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    url: String,
    http: reqwest::Client,
    seen: u64,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    async fn start(dir: &std::path::Path, yaml: &str) -> Server {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.join("data");
        let clock = ManualClock::new(t0());
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router = app(AppState::new(pipeline.clone(), stopped));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let seen = pipeline.log.last_seq();
        Server {
            clock,
            pipeline,
            url,
            http: reqwest::Client::new(),
            seen,
            _stop: stop,
        }
    }

    fn at(&self, secs: i64) {
        self.clock.set(t0() + Duration::seconds(secs));
    }

    async fn post(&self, path: &str, body: impl Into<String>) -> (u16, Value) {
        self.post_as(path, "application/json", body).await
    }

    async fn post_as(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<String>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn events_after(&self, after: u64) -> Vec<Event> {
        let log = self.pipeline.log.clone();
        tokio::task::spawn_blocking(move || {
            log.read(&EventQuery {
                after,
                ..EventQuery::default()
            })
            .unwrap()
        })
        .await
        .unwrap()
    }

    /// What was stored since the last call, a line each.
    async fn news(&mut self) -> Vec<String> {
        let events = self.events_after(self.seen).await;
        if let Some(last) = events.last() {
            self.seen = last.seq;
        }
        events.iter().map(line).collect()
    }
}

fn line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::K8sEvent(k) => format!(
            "{} {}/{} {} x{}",
            k.cluster, k.namespace, k.involved_object.name, k.reason, k.count
        ),
        EventKind::AlertReceived(r) => format!(
            "{} {}",
            r.labels.get("alertname").unwrap_or(""),
            r.labels
                .get("pod")
                .or(r.labels.get("cluster"))
                .unwrap_or("")
        ),
        EventKind::AlertResolved(r) => r.reason.clone(),
        EventKind::K8sWatchProgressed(w) => format!("{} at {}", w.cluster, w.resource_version),
        EventKind::GroupScheduled(g) => g.due_at.format("%H:%M:%S").to_string(),
        _ => String::new(),
    };
    format!("{} {} {}", e.kind.name(), e.source, what)
        .trim()
        .to_string()
}

fn lines(want: &[&str]) -> Vec<String> {
    want.iter().map(|s| s.to_string()).collect()
}

/// Every shape, normalized into the one `k8s.event`; the key is the Event
/// object, so the same object from two shapes is one entity.
#[tokio::test]
async fn each_body_shape_becomes_one_normalized_k8s_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), "").await;
    // (fixture, query, events in the body)
    let table = [
        ("core-v1-event.json", "?cluster=prod-sh", 1),
        ("events-k8s-io-v1-event.json", "?cluster=prod-sh", 1),
        ("core-v1-eventlist.json", "?cluster=prod-sh", 2),
        ("kubernetes-event-exporter-backoff.json", "", 1),
    ];
    for (name, query, n) in table {
        let (status, body) = s
            .post(&format!("/ingest/kubernetes{query}"), fixture(name))
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["events"], n, "{name}: {body}");
    }
    let stored = s.events_after(0).await;
    let payloads: Vec<(String, Value)> = stored
        .iter()
        .filter(|e| e.kind.name() == "k8s.event")
        .map(|e| {
            let doc = serde_json::to_value(e).unwrap();
            (e.key.to_string(), doc["payload"].clone())
        })
        .collect();
    let want = [
        // core/v1: count, first/last timestamps, source.component.
        (
            "k8s/prod-sh/shop/web-7d4b9c6f5-x2x9k.187b2c3d4e5f6a7b",
            json!({
                "cluster": "prod-sh", "namespace": "shop",
                "involved_object": {"kind": "Pod", "name": "web-7d4b9c6f5-x2x9k", "uid": "8f0e6a52-3c1d-4b7a-9e2f-5d6c7b8a9f01"},
                "reason": "BackOff",
                "message": "Back-off restarting failed container web in pod web-7d4b9c6f5-x2x9k_shop(8f0e6a52-3c1d-4b7a-9e2f-5d6c7b8a9f01)",
                "type": "Warning", "count": 7,
                "first_seen": "2026-11-26T02:51:10Z", "last_seen": "2026-11-26T02:58:42Z",
                "reporting_controller": "kubelet",
                // source.host: the node the pod runs on (topology).
                "host": "node-3"
            }),
        ),
        // events.k8s.io/v1: note, series.count and lastObservedTime,
        // eventTime as first seen, reportingController.
        (
            "k8s/prod-sh/jobs/batch-worker-0.187b2c1a2b3c4d5e",
            json!({
                "cluster": "prod-sh", "namespace": "jobs",
                "involved_object": {"kind": "Pod", "name": "batch-worker-0", "uid": "5e4d3c2b-1a09-4f8e-7d6c-5b4a39281706"},
                "reason": "FailedScheduling",
                "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                "type": "Warning", "count": 4,
                "first_seen": "2026-11-26T02:50:01.123456Z", "last_seen": "2026-11-26T02:55:01.654321Z",
                "reporting_controller": "default-scheduler"
            }),
        ),
        // EventList item about a node: no namespace of its own, though the
        // Event object lives in `default`.
        (
            "k8s/prod-sh/default/node-2.187b2b0f1e2d3c4b",
            json!({
                "cluster": "prod-sh", "namespace": "",
                "involved_object": {"kind": "Node", "name": "node-2", "uid": "node-2"},
                "reason": "NodeNotReady", "message": "Node node-2 status is now: NodeNotReady",
                "type": "Normal", "count": 1,
                "first_seen": "2026-11-26T02:40:00Z", "last_seen": "2026-11-26T02:40:00Z",
                "reporting_controller": "node-controller"
            }),
        ),
        // An empty reportingComponent falls back to source.component.
        (
            "k8s/prod-sh/shop/db-0.187b2b24a5b6c7d8",
            json!({
                "cluster": "prod-sh", "namespace": "shop",
                "involved_object": {"kind": "Pod", "name": "db-0", "uid": "3c2b1a09-8f7e-4d6c-5b4a-392817060504"},
                "reason": "OOMKilling",
                "message": "Memory cgroup out of memory: Killed process 4242 (postgres) total-vm:2097152kB, anon-rss:1048576kB",
                "type": "Warning", "count": 1,
                "first_seen": "2026-11-26T02:41:30Z", "last_seen": "2026-11-26T02:41:30Z",
                "reporting_controller": "kernel-monitor",
                "host": "node-1"
            }),
        ),
        // The exporter's body: clusterName and the pod's labels. Same
        // Event object as the first row but another count: a change.
        (
            "k8s/prod-sh/shop/web-7d4b9c6f5-x2x9k.187b2c3d4e5f6a7b",
            json!({
                "cluster": "prod-sh", "namespace": "shop",
                // The pod's owner: where topology learns its workload.
                "involved_object": {
                    "kind": "Pod", "name": "web-7d4b9c6f5-x2x9k", "uid": "8f0e6a52-3c1d-4b7a-9e2f-5d6c7b8a9f01",
                    "owner_references": [{"kind": "ReplicaSet", "name": "web-7d4b9c6f5", "controller": true}]
                },
                "reason": "BackOff",
                "message": "Back-off restarting failed container web in pod web-7d4b9c6f5-x2x9k_shop(8f0e6a52-3c1d-4b7a-9e2f-5d6c7b8a9f01)",
                "type": "Warning", "count": 5,
                "first_seen": "2026-11-26T02:51:10Z", "last_seen": "2026-11-26T02:58:42Z",
                "reporting_controller": "kubelet",
                "host": "node-3",
                "labels": {"app": "web", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d4b9c6f5"}
            }),
        ),
    ];
    assert_eq!(payloads.len(), want.len(), "{payloads:#?}");
    for ((key, payload), (want_key, want_payload)) in payloads.iter().zip(want) {
        assert_eq!(key, want_key);
        assert_eq!(payload, &want_payload, "{key}");
    }
    s.news().await;

    // Posting them again stores nothing: none of them changed. (The
    // core/v1 fixture is left out: its count differs from the exporter's
    // body for the same Event object, the last stored.)
    for (name, query, _) in &table[1..] {
        let (status, body) = s
            .post(&format!("/ingest/kubernetes{query}"), fixture(name))
            .await;
        assert_eq!(
            (status, &body["stored"]),
            (200, &json!(0)),
            "{name}: {body}"
        );
    }
    assert_eq!(s.news().await, Vec::<String>::new());
}

/// Bad bodies: 4xx naming the field or limit, and nothing stored.
#[tokio::test]
async fn bad_bodies_are_refused_naming_the_field_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "ingest:\n  max_body_bytes: 64KiB\n").await;
    let core: Value = serde_json::from_str(&fixture("core-v1-event.json")).unwrap();
    let v1: Value = serde_json::from_str(&fixture("events-k8s-io-v1-event.json")).unwrap();
    let list: Value = serde_json::from_str(&fixture("core-v1-eventlist.json")).unwrap();
    let with = |doc: &Value, pointer: &str, value: Value| {
        let mut doc = doc.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        doc.to_string()
    };
    let without = |doc: &Value, parent: &str, field: &str| {
        let mut doc = doc.clone();
        doc.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(field);
        doc.to_string()
    };
    let before = s.pipeline.log.last_seq();
    // (why, path, body, status, the field or words the answer names)
    let table: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "not an event",
            "/ingest/kubernetes",
            json!({"kind": "Pod", "apiVersion": "v1"}).to_string(),
            400,
            "kind",
        ),
        (
            "unknown API version",
            "/ingest/kubernetes",
            with(&core, "/apiVersion", json!("events.k8s.io/v2")),
            400,
            "apiVersion",
        ),
        (
            "no involved object name",
            "/ingest/kubernetes",
            without(&core, "/involvedObject", "name"),
            400,
            "involvedObject.name",
        ),
        (
            "no regarding object",
            "/ingest/kubernetes",
            without(&v1, "", "regarding"),
            400,
            "regarding",
        ),
        (
            "no event name: no key",
            "/ingest/kubernetes",
            without(&core, "/metadata", "name"),
            400,
            "metadata.name",
        ),
        (
            "a time that is not RFC 3339",
            "/ingest/kubernetes",
            with(&v1, "/eventTime", json!("yesterday")),
            400,
            "eventTime",
        ),
        (
            "a count that is not a number",
            "/ingest/kubernetes",
            with(&core, "/count", json!("seven")),
            400,
            "count",
        ),
        (
            "the second item of a list is bad",
            "/ingest/kubernetes",
            without(&list, "/items/1/involvedObject", "kind"),
            400,
            "items[1].involvedObject.kind",
        ),
        (
            "no kind and no object",
            "/ingest/kubernetes",
            json!({"reason": "BackOff"}).to_string(),
            400,
            "kind",
        ),
        (
            "an array",
            "/ingest/kubernetes",
            "[]".to_string(),
            400,
            "JSON object",
        ),
        (
            "not JSON",
            "/ingest/kubernetes",
            "{\"kind\": \"Event\",".to_string(),
            400,
            "malformed",
        ),
        (
            "a cluster name with a slash",
            "/ingest/kubernetes?cluster=a/b",
            fixture("core-v1-event.json"),
            400,
            "cluster",
        ),
        (
            "over ingest.max_body_bytes",
            "/ingest/kubernetes",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)),
            413,
            "65536",
        ),
    ];
    for (why, path, body, status, names) in &table {
        let (got, answer) = s.post(path, body.clone()).await;
        assert_eq!(got, *status, "{why}: {answer}");
        let field = answer["field"].as_str().unwrap_or("");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            field == *names || error.contains(names),
            "{why}: want {names:?} in {answer}"
        );
    }
    let (got, answer) = s
        .post_as(
            "/ingest/kubernetes",
            "text/plain",
            fixture("core-v1-event.json"),
        )
        .await;
    assert_eq!(got, 415, "{answer}");
    assert_eq!(s.pipeline.log.last_seq(), before, "nothing stored");
    // And the process still takes a good one.
    let (got, _) = s
        .post("/ingest/kubernetes", fixture("core-v1-event.json"))
        .await;
    assert_eq!(got, 200);
}

fn exporter_backoff(count: u64, last_seen: &str) -> String {
    let mut doc: Value =
        serde_json::from_str(&fixture("kubernetes-event-exporter-backoff.json")).unwrap();
    doc["count"] = json!(count);
    doc["lastTimestamp"] = json!(last_seen);
    doc.to_string()
}

fn shipped_rules_config() -> String {
    let rules = format!("{}/rules", env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
rule_files:
  - {rules}/kubernetes-pods.yaml
  - {rules}/kubernetes-nodes.yaml
  - {rules}/workloads.yaml
  - {rules}/services.yaml
route:
  receiver: platform
  group_by: [alertname, cluster]
  group_wait: 30s
receivers:
  - name: platform
"#
    )
}

/// Done-when of issue 7: kubernetes-event-exporter posts a crash-looping
/// pod's BackOff with a rising count; each rise is stored once, a re-send
/// is not, and the shipped `PodCrashLooping` fires in the commit of the
/// fourth back-off in ten minutes.
#[tokio::test]
async fn a_crash_looping_pod_from_kubernetes_event_exporter_fires_the_shipped_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &shipped_rules_config()).await;
    s.news().await;
    // (seconds after t0, count, lastTimestamp, what the log then holds)
    let pod = "prod-sh shop/web-7d4b9c6f5-x2x9k BackOff";
    let timeline: Vec<(i64, u64, &str, Vec<String>)> = vec![
        (
            0,
            5,
            "2026-11-26T03:00:00Z",
            vec![format!("k8s.event kubernetes {pod} x5")],
        ),
        (
            120,
            6,
            "2026-11-26T03:02:00Z",
            vec![format!("k8s.event kubernetes {pod} x6")],
        ),
        (
            240,
            7,
            "2026-11-26T03:04:00Z",
            vec![format!("k8s.event kubernetes {pod} x7")],
        ),
        // The exporter re-sends the same state: nothing to store.
        (250, 7, "2026-11-26T03:04:00Z", vec![]),
        (
            360,
            8,
            "2026-11-26T03:06:00Z",
            lines(&[
                &format!("k8s.event kubernetes {pod} x8"),
                "alert.received rule/kubernetes-pods/PodCrashLooping PodCrashLooping web-7d4b9c6f5-x2x9k",
                "alert.fired fenghuo",
                "group.scheduled fenghuo 03:06:30",
            ]),
        ),
    ];
    for (at, count, last_seen, want) in timeline {
        s.at(at);
        let (status, body) = s
            .post("/ingest/kubernetes", exporter_backoff(count, last_seen))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(s.news().await, want, "at {at}s");
    }
    let alerts = s.pipeline.store.all();
    assert_eq!(alerts.len(), 1);
    let labels = &alerts[0].1.report.labels;
    let want: Vec<(&str, &str)> = vec![
        ("alertname", "PodCrashLooping"),
        ("cluster", "prod-sh"),
        ("namespace", "shop"),
        ("pod", "web-7d4b9c6f5-x2x9k"),
        ("severity", "warning"),
        ("team", "platform"),
    ];
    let got: Vec<(&str, &str)> = labels.iter().collect();
    assert_eq!(got, want);
    assert_eq!(
        alerts[0].1.report.annotations.get("summary"),
        Some("Pod shop/web-7d4b9c6f5-x2x9k is crash-looping (4 back-offs in 10m)")
    );
}

/// `FenghuoSourceQuiet`: a configured cluster whose watch records nothing
/// for `quiet_after` raises it, through the normal alert lifecycle; the
/// watch's next event resolves it in the same commit. Seen in `/metrics`.
#[tokio::test]
async fn a_watch_gone_quiet_raises_fenghuo_source_quiet_and_its_next_event_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
kubernetes:
  clusters:
    - name: edge-quiet
      api_server: https://127.0.0.1:6443
      quiet_after: 10m
route:
  receiver: platform
  group_by: [alertname, cluster]
  group_wait: 30s
receivers:
  - name: platform
"#;
    let mut s = Server::start(dir.path(), config).await;
    let progress = |rv: &str| K8sWatchProgress {
        cluster: "edge-quiet".into(),
        namespace: String::new(),
        resource_version: rv.into(),
        by: "bookmark".into(),
    };
    let step = |s: &Server| {
        let dispatcher = s.pipeline.dispatcher.clone();
        // Passes until nothing more is decided, as the dispatch loop runs
        // them at this instant (an alert a pass records is decided on in
        // its commit only while passes are quick: `Dispatcher::wants`).
        async move { while !dispatcher.step().await.unwrap().is_empty() {} }
    };
    // Watching since t0; progress at 5m moves the deadline to 15m.
    assert_eq!(s.pipeline.next_due(), Some(t0() + Duration::minutes(10)));
    s.at(300);
    s.pipeline
        .kubernetes
        .store("kubernetes-watch/edge-quiet", vec![], Some(progress("100")))
        .await
        .unwrap();
    assert_eq!(
        s.news().await,
        lines(&["k8s.watch.progressed kubernetes-watch/edge-quiet edge-quiet at 100"])
    );
    assert_eq!(s.pipeline.next_due(), Some(t0() + Duration::minutes(15)));
    s.at(15 * 60 - 1);
    step(&s).await;
    assert_eq!(s.news().await, Vec::<String>::new());
    s.at(15 * 60);
    step(&s).await;
    assert_eq!(
        s.news().await,
        lines(&[
            "alert.received fenghuo FenghuoSourceQuiet edge-quiet",
            "alert.fired fenghuo",
            "group.scheduled fenghuo 03:15:30",
        ])
    );
    // Firing: no quiet timer of its own any more.
    assert_eq!(
        s.pipeline.next_due(),
        Some(t0() + Duration::minutes(15) + Duration::seconds(30))
    );
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fenghuo_kubernetes_watch_quiet_seconds{cluster=\"edge-quiet\"} 600"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "fenghuo_kubernetes_watch_last_progress_timestamp_seconds{cluster=\"edge-quiet\"}"
    ));
    // The watch stores an event: resolved in the commit that records it.
    s.at(16 * 60);
    let events =
        fenghuo::ingest::kubernetes::parse(fixture("core-v1-event.json").as_bytes(), "edge-quiet")
            .unwrap();
    s.pipeline
        .kubernetes
        .store("kubernetes-watch/edge-quiet", events, None)
        .await
        .unwrap();
    let news = s.news().await;
    assert_eq!(
        news[..2],
        lines(&[
            "k8s.event kubernetes-watch/edge-quiet edge-quiet shop/web-7d4b9c6f5-x2x9k BackOff x7",
            "alert.resolved fenghuo cluster edge-quiet heard from again",
        ])
    );
    // An event posted over HTTP for that cluster is not the watch: it
    // does not count as the watch being heard.
    assert_eq!(
        s.pipeline.kubernetes.watches().last_heard("edge-quiet"),
        Some(t0() + Duration::minutes(16))
    );
    s.at(17 * 60);
    let (status, _) = s
        .post(
            "/ingest/kubernetes?cluster=edge-quiet",
            fixture("events-k8s-io-v1-event.json"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.pipeline.kubernetes.watches().last_heard("edge-quiet"),
        Some(t0() + Duration::minutes(16))
    );
    let now = s.clock.now();
    assert_eq!(s.pipeline.alerts.firing_count(now), 0);
    // Quiet for the minute since the watch's event, not since the post.
    assert_eq!(
        s.pipeline.quiet_seconds(now),
        vec![("edge-quiet".to_string(), 60.0)]
    );
}
