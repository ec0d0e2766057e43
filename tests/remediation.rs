//! Remediation hooks as timelines against a real HTTP server on 127.0.0.1
//! standing in for the release platform (it records every request and
//! answers as scripted). A manual clock moves time; `Remediator::step` is
//! what the background loop runs, called at each instant. No sleeps.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use chrono::{DateTime, Duration, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{Event, EventKind, EventQuery};
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

mod support;

const SECRET: &str = "s3cret-deploy-token";

/// One request the platform received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    idempotency_key: String,
    authorization: String,
    body: String,
}

/// The release platform: records every request, answers from a script of
/// statuses, then 200.
#[derive(Clone, Default)]
struct Platform {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Woken at each request, for tests against the real process.
    arrived: Arc<tokio::sync::Notify>,
}

impl Platform {
    async fn start() -> (Platform, String) {
        let platform = Platform::default();
        let me = platform.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move {
                    let h = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    me.calls.lock().push(Call {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        idempotency_key: h("idempotency-key"),
                        authorization: h("authorization"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    // `/moved` sends the caller to another host (same
                    // port, by name instead of address).
                    if uri.path() == "/moved" {
                        let port = headers
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .and_then(|h| h.rsplit_once(':'))
                            .map(|(_, p)| p.to_string())
                            .unwrap_or_default();
                        let mut out = HeaderMap::new();
                        out.insert(
                            header::LOCATION,
                            format!("http://localhost:{port}/elsewhere")
                                .parse()
                                .unwrap(),
                        );
                        return (StatusCode::FOUND, out, "");
                    }
                    me.arrived.notify_one();
                    let mut status = me.script.lock().pop_front().unwrap_or(200);
                    if status == 0 {
                        // Scripted as 0: a platform that hangs, then
                        // answers 200 long after any caller gave up.
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        status = 200;
                    }
                    (
                        StatusCode::from_u16(status).unwrap(),
                        HeaderMap::new(),
                        "{\"ok\":true}",
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (platform, format!("http://{addr}"))
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    fn answer(&self, statuses: &[u16]) {
        self.script.lock().extend(statuses);
    }
}

fn config(url: &str) -> String {
    let host = url.trim_start_matches("http://");
    r#"
route:
  receiver: team
  group_by: [app, pod]
  group_wait: 0s
receivers:
  - name: team
releases:
  bake_window: 30m
  auto_rollback: {action: rollback}
remediation:
  allowed_hosts: ["HOST"]
  initial_backoff: 1s
  retry_for: 1m
  actions:
    - name: rollback
      url: "URL/apps/{{ app }}/rollback"
      headers: {Authorization: "Bearer SECRET"}
      body: '{"env": "{{ env }}", "to": "{{ rollback_to }}", "release": "{{ release.id }}"}'
    - name: restart-pod
      url: "URL/restart/{{ alert.labels.pod }}"
      max_runs_per_hour: 2
    - name: scale-up
      url: "http://{{ alert.labels.target }}/scale"
    - name: flush-cache
      url: "URL/flush"
      dry_run: true
    - name: drain
      url: "URL/drain/{{ alert.labels.node }}"
      require_ack: true
    - name: moved
      url: "URL/moved"
  routes:
    - matchers: ['alertname="PodCrashLooping"']
      actions: [restart-pod]
    - matchers: ['alertname="QueueBacklog"']
      actions: [scale-up]
    - matchers: ['alertname="CacheStale"']
      actions: [flush-cache]
    - matchers: ['alertname="NodeBad"']
      actions: [drain]
    - matchers: ['alertname="Moved"']
      actions: [moved]
"#
    .replace("HOST", host)
    .replace("URL", url)
    .replace("SECRET", SECRET)
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T10:00:00Z".parse().unwrap()
}

struct Timeline {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    router: axum::Router,
    _shutdown: watch::Sender<bool>,
}

impl Timeline {
    fn open(yaml: &str, dir: &Path, clock: &ManualClock) -> Timeline {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.to_path_buf();
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (tx, rx) = watch::channel(false);
        Timeline {
            clock: clock.clone(),
            router: app(AppState::new(pipeline.clone(), rx)),
            pipeline,
            _shutdown: tx,
        }
    }

    fn at_min(&self, minutes: i64) {
        self.clock.set(t0() + Duration::minutes(minutes));
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .router
            .clone()
            .oneshot(
                Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn release(&self, version: &str, by: &str, statuses: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/api/v1/releases",
                json!({"app": "checkout", "env": "prod", "version": version, "by": by}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let id = body["id"].as_str().unwrap().to_string();
        for s in statuses {
            let (status, _) = self
                .post(
                    &format!("/api/v1/releases/{id}/status"),
                    json!({"status": s}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        id
    }

    /// Alerts firing from now, each given as its labels, in one POST.
    async fn fire(&self, alerts: &[Value]) {
        let body: Vec<Value> = alerts
            .iter()
            .map(|labels| json!({"labels": labels, "startsAt": self.clock.now().to_rfc3339()}))
            .collect();
        let (status, body) = self.post("/api/v2/alerts", Value::Array(body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // What the dispatch loop does right after a commit, at this same
        // instant: a commit decides on the alerts it brings only while
        // passes are quick (`Dispatcher::wants` has a wall-clock budget), so
        // on a loaded machine the decisions come from the loop instead.
        self.pipeline.dispatcher.step().await.unwrap();
    }

    /// Calls what is ready now; answers how many calls were made.
    async fn step(&self) -> usize {
        self.pipeline.remediator.step().await.unwrap()
    }

    fn events(&self) -> Vec<Event> {
        self.pipeline
            .log
            .read(&EventQuery {
                limit: 1_000_000,
                ..Default::default()
            })
            .unwrap()
    }

    fn kinds(&self, kind: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.kind.name() == kind)
            .collect()
    }
}

/// A bad release of checkout: v1.4.1 succeeded two hours ago, v1.4.2
/// started now by alice.
async fn bad_release(t: &Timeline) -> (String, String) {
    t.at_min(-120);
    let good = t.release("v1.4.1", "bob", &["started", "succeeded"]).await;
    t.at_min(0);
    let bad = t.release("v1.4.2", "alice", &["started"]).await;
    (good, bad)
}

fn checkout_critical(i: usize) -> Value {
    json!({"alertname": "HighErrorRate", "app": "checkout", "env": "prod",
           "severity": "critical", "instance": format!("10.0.{}.{}:8080", i / 250, i % 250)})
}

#[tokio::test]
async fn a_storm_of_500_alerts_after_a_bad_release_rolls_back_once_to_the_last_good_version() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    let (good, bad) = bad_release(&t).await;

    // 3 minutes in, 500 critical alerts in five POSTs; the executor runs
    // after each, as the background loop would.
    t.at_min(3);
    let mut calls = 0;
    for batch in 0..5 {
        let alerts: Vec<Value> = (batch * 100..batch * 100 + 100)
            .map(checkout_critical)
            .collect();
        t.fire(&alerts).await;
        calls += t.step().await;
    }
    t.at_min(4);
    calls += t.step().await;
    assert_eq!(calls, 1);
    // Meanwhile the gate holds the next release back.
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::get("/api/v1/releases/gate?app=checkout&env=prod")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let gate: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(
        gate["message"]
            .as_str()
            .unwrap()
            .starts_with("deny: 500 critical alerts firing for checkout in prod"),
        "{gate}"
    );

    // Exactly one rollback call, to the last good version, with the key
    // and the secret header.
    let received = platform.calls();
    assert_eq!(received.len(), 1, "{received:#?}");
    let call = &received[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/apps/checkout/rollback")
    );
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body, json!({"env": "prod", "to": "v1.4.1", "release": bad}));
    assert_eq!(call.idempotency_key, format!("fenghuo-rollback:{bad}"));
    assert_eq!(call.authorization, format!("Bearer {SECRET}"));
    assert_ne!(good, bad);

    // The whole chain is in the log, in order.
    let chain: Vec<String> = t
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ReleaseRecorded(_)
                    | EventKind::ReleaseStatusChanged(_)
                    | EventKind::RemediationDue(_)
                    | EventKind::RemediationSucceeded(_)
            ) || (e.kind.name() == "release.suspected" && e.seq == first_suspected(&t))
        })
        .map(|e| format!("{} {}", e.kind.name(), e.key))
        .collect();
    let rollback = format!("rollback:{bad}");
    let first_fp = t.kinds("release.suspected")[0].key.clone();
    assert_eq!(
        chain,
        vec![
            format!("release.recorded {good}"),
            format!("release.status_changed {good}"),
            format!("release.status_changed {good}"),
            format!("release.recorded {bad}"),
            format!("release.status_changed {bad}"),
            format!("release.suspected {first_fp}"),
            format!("remediation.due {rollback}"),
            format!("remediation.succeeded {rollback}"),
        ]
    );
    assert_eq!(t.kinds("release.suspected").len(), 500);
    assert!(t.kinds("remediation.refused").is_empty());
    let EventKind::RemediationDue(due) = &t.kinds("remediation.due")[0].kind else {
        unreachable!()
    };
    assert_eq!(due.rollback_to.as_deref(), Some("v1.4.1"));
    assert_eq!(due.request.header_names, vec!["Authorization".to_string()]);
    assert!(due.reason.starts_with("auto-rollback: HighErrorRate severity=critical started 3 min after checkout v1.4.2 by alice"), "{}", due.reason);

    // The secret is in no event and no API answer.
    assert!(
        t.events()
            .iter()
            .all(|e| !e.kind.payload_json().contains(SECRET))
    );
    let resp = t
        .router
        .clone()
        .oneshot(
            Request::get("/api/v1/remediations")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let listed = resp.into_body().collect().await.unwrap().to_bytes();
    let listed = String::from_utf8_lossy(&listed);
    assert!(!listed.contains(SECRET));
    assert!(listed.contains("\"status\":\"succeeded\""), "{listed}");

    // Replay folds the decisions and outcomes into the same state, and
    // calls nothing.
    let rebuilt = fenghuo::pipeline::Views::new();
    fenghuo::eventlog::replay(&t.pipeline.log, &rebuilt.projections(), |_, _| {}).unwrap();
    assert_eq!(
        rebuilt.releases.history("checkout", "prod"),
        t.pipeline.releases.history("checkout", "prod")
    );
    assert_eq!(
        rebuilt.remediations.all(),
        t.pipeline.remediator.state().all()
    );
    assert_eq!(platform.calls().len(), 1);
}

fn first_suspected(t: &Timeline) -> u64 {
    t.kinds("release.suspected")[0].seq
}

#[tokio::test]
async fn a_restart_between_decision_and_call_neither_skips_nor_repeats_the_call() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    let (_, bad) = bad_release(&t).await;
    t.at_min(3);
    t.fire(&[checkout_critical(1)]).await;
    // Decided and committed; the process stops before calling.
    assert_eq!(t.kinds("remediation.due").len(), 1);
    assert!(platform.calls().is_empty());
    t.pipeline.close();
    drop(t);

    // Restarted: the decision is called once, and only once.
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    assert_eq!(t.step().await, 1);
    assert_eq!(t.step().await, 0);
    t.fire(&[checkout_critical(2)]).await;
    assert_eq!(t.step().await, 0);
    t.pipeline.close();
    drop(t);

    // And again: nothing more.
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    assert_eq!(t.step().await, 0);
    let calls = platform.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].idempotency_key, format!("fenghuo-rollback:{bad}"));
    assert_eq!(t.kinds("remediation.due").len(), 1);
    assert_eq!(t.kinds("remediation.succeeded").len(), 1);
}

#[tokio::test]
async fn a_failed_call_is_retried_with_the_same_idempotency_key_until_it_succeeds() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    let (_, bad) = bad_release(&t).await;
    platform.answer(&[503, 502]);
    t.at_min(3);
    t.fire(&[checkout_critical(1)]).await;
    assert_eq!(t.step().await, 1); // 503
    assert_eq!(t.step().await, 0); // not before its retry time
    clock.advance(Duration::seconds(1));
    assert_eq!(t.step().await, 1); // 502
    clock.advance(Duration::seconds(1));
    assert_eq!(t.step().await, 0); // backoff doubled: 2s
    clock.advance(Duration::seconds(1));
    assert_eq!(t.step().await, 1); // 200
    clock.advance(Duration::minutes(5));
    assert_eq!(t.step().await, 0);
    let keys: Vec<String> = platform
        .calls()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys, vec![format!("fenghuo-rollback:{bad}"); 3]);
    let outcomes: Vec<String> = t
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RemediationFailed(c) => Some(format!(
                "failed {} {:?} retry={}",
                c.attempt,
                c.status,
                c.retry_at.is_some()
            )),
            EventKind::RemediationSucceeded(c) => Some(format!(
                "succeeded {} {:?} body={}",
                c.attempt, c.status, c.body
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "failed 1 Some(503) retry=true",
            "failed 2 Some(502) retry=true",
            "succeeded 3 Some(200) body={\"ok\":true}",
        ]
    );
}

/// A platform that hangs must not hold the executor: the call is given up
/// at `remediation.timeout`, recorded as a timeout, and retried.
#[tokio::test]
async fn a_call_to_a_platform_that_hangs_times_out_and_is_retried() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = config(&url).replace(
        "  initial_backoff: 1s\n",
        "  initial_backoff: 1s\n  timeout: 300ms\n",
    );
    assert!(yaml.contains("timeout: 300ms"));
    let t = Timeline::open(&yaml, dir.path(), &clock);
    let (_, bad) = bad_release(&t).await;
    platform.answer(&[0]);
    t.at_min(3);
    t.fire(&[checkout_critical(1)]).await;
    let started = std::time::Instant::now();
    assert_eq!(t.step().await, 1); // hangs: given up
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the call waited for the platform instead of timing out"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(t.step().await, 1); // answered at once this time
    let outcomes: Vec<String> = t
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RemediationFailed(c) => Some(format!(
                "failed {} {} retry={}",
                c.attempt,
                c.error,
                c.retry_at.is_some()
            )),
            EventKind::RemediationSucceeded(c) => Some(format!("succeeded {}", c.attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes[0].starts_with("failed 1 ")
            && outcomes[0].contains("tim")
            && outcomes[0].ends_with("retry=true"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], "succeeded 2");
    let keys: Vec<String> = platform
        .calls()
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys, vec![format!("fenghuo-rollback:{bad}"); 2]);
}

#[tokio::test]
async fn a_template_rendering_a_host_outside_the_allow_list_is_refused_and_recorded() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    t.fire(&[json!({"alertname": "QueueBacklog", "app": "orders",
                    "target": "evil.example.com"})])
        .await;
    assert_eq!(t.step().await, 0);
    assert!(platform.calls().is_empty());
    let refused = t.kinds("remediation.refused");
    assert_eq!(refused.len(), 1);
    let EventKind::RemediationRefused(r) = &refused[0].kind else {
        unreachable!()
    };
    assert_eq!(r.action, "scale-up");
    assert_eq!(
        r.reason,
        "host \"evil.example.com\" is not in remediation.allowed_hosts"
    );
    assert_eq!(
        r.request.as_ref().unwrap().url,
        "http://evil.example.com/scale"
    );
    assert!(t.kinds("remediation.due").is_empty());
}

#[tokio::test]
async fn dry_run_records_what_would_be_called_and_calls_nothing() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    t.fire(&[json!({"alertname": "CacheStale", "app": "catalog"})])
        .await;
    assert_eq!(t.step().await, 0);
    assert!(platform.calls().is_empty());
    let dry = t.kinds("remediation.dry_run");
    assert_eq!(dry.len(), 1);
    let EventKind::RemediationDryRun(d) = &dry[0].kind else {
        unreachable!()
    };
    assert_eq!(d.request.url, format!("{url}/flush"));
    assert!(t.kinds("remediation.due").is_empty());
}

#[tokio::test]
async fn require_ack_waits_for_a_persons_approval() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    t.fire(&[json!({"alertname": "NodeBad", "app": "infra", "node": "node-7"})])
        .await;
    let EventKind::RemediationDue(due) = &t.kinds("remediation.due")[0].kind else {
        unreachable!()
    };
    assert!(due.require_ack);
    let id = due.id.clone();

    // Time passes; nobody approved: nothing is called.
    for _ in 0..3 {
        clock.advance(Duration::minutes(10));
        assert_eq!(t.step().await, 0);
    }
    assert!(platform.calls().is_empty());

    // Approval without a name is refused and stores nothing.
    let before = t.pipeline.log.last_seq();
    let (status, body) = t
        .post(&format!("/api/v1/remediations/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "by");
    assert_eq!(t.pipeline.log.last_seq(), before);

    let (status, body) = t
        .post(
            &format!("/api/v1/remediations/{id}/approve"),
            json!({"by": "bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approvedBy"], "bob");
    assert_eq!(t.step().await, 1);
    let calls = platform.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/drain/node-7");

    // A second approval changes nothing.
    let (status, _) = t
        .post(
            &format!("/api/v1/remediations/{id}/approve"),
            json!({"by": "carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(t.step().await, 0);
    assert_eq!(t.kinds("remediation.approved").len(), 1);
}

#[tokio::test]
async fn an_action_runs_once_per_incident_and_at_most_n_times_per_app_per_hour() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    let crashing =
        |pod: &str| json!({"alertname": "PodCrashLooping", "app": "checkout", "pod": pod});

    // Pod a: its incident gets one restart, however often it is re-sent.
    t.fire(&[crashing("a")]).await;
    t.fire(&[crashing("a")]).await;
    assert_eq!(t.step().await, 1);
    // Pods b and c: separate incidents; the limit is 2 per hour for
    // checkout, so c is refused.
    clock.advance(Duration::minutes(1));
    t.fire(&[crashing("b")]).await;
    clock.advance(Duration::minutes(1));
    t.fire(&[crashing("c")]).await;
    assert_eq!(t.step().await, 1);
    let refused = t.kinds("remediation.refused");
    assert_eq!(refused.len(), 1);
    let EventKind::RemediationRefused(r) = &refused[0].kind else {
        unreachable!()
    };
    assert_eq!(
        r.reason,
        "rate limit: 2 runs of restart-pod for checkout in the last hour (at most 2)"
    );
    // An hour later, pod d is restarted again.
    clock.advance(Duration::minutes(61));
    t.fire(&[crashing("d")]).await;
    assert_eq!(t.step().await, 1);
    let paths: Vec<String> = platform.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(paths, vec!["/restart/a", "/restart/b", "/restart/d"]);
}

#[test]
fn a_config_naming_an_undefined_action_or_a_broken_template_is_refused() {
    let cases = [
        (
            "releases: {auto_rollback: {action: nope}}",
            "releases.auto_rollback.action: undefined remediation action \"nope\"",
        ),
        (
            "remediation: {routes: [{matchers: ['a=\"b\"'], actions: [nope]}]}",
            "remediation.routes[0].actions: undefined action \"nope\"",
        ),
        (
            "remediation: {actions: [{name: x, url: 'http://h/{{ app '}]}",
            "remediation.actions.x: url:1:",
        ),
        (
            "remediation: {actions: [{name: x, url: 'http://h/', method: 'GE T'}]}",
            "remediation.actions.x.method",
        ),
        (
            "releases: {gate: {prod: {freeze: [nope]}}}",
            "releases.gate.prod.freeze: undefined time interval \"nope\"",
        ),
        (
            "releases: {gate: {prod: {freeze_cron: [{cron: '0 18 * *', duration: 1h}]}}}",
            "releases.gate.prod.freeze_cron: cron",
        ),
        ("releases: {bake_windo: 1h}", "unknown field `bake_windo`"),
    ];
    for (yaml, want) in cases {
        let err = Config::parse(yaml).unwrap_err();
        assert!(err.contains(want), "{yaml}: {err}");
    }
    // A YAML error names its line and column.
    let err = Config::parse("remediation:\n  allowed_hosts: [a]\n  max_runs_per_hour: lots\n")
        .unwrap_err();
    assert!(err.contains("line 3") || err.contains("3:"), "{err}");
}

#[tokio::test]
async fn require_ack_is_approved_from_the_pages_signed_link_once() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    t.fire(&[json!({"alertname": "NodeBad", "app": "infra", "node": "node-<7>"})])
        .await;

    // The page of the alert carries "Approve drain".
    let pending = t.pipeline.outbox.state().pending();
    let msg = t.pipeline.outbox.message(&pending[0], clock.now());
    let link = msg
        .actions
        .iter()
        .find(|l| l.label == "Approve drain")
        .expect("an approve link in the page");
    let path = &link.url[link.url.find("/act/").unwrap()..];
    let send = |method: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    };

    // Opening it shows what would be called, escaped, and changes nothing.
    let resp = t.router.clone().oneshot(send("GET")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("/drain/node-&lt;7&gt;"), "{page}");
    assert_eq!(t.step().await, 0);
    assert!(t.kinds("remediation.approved").is_empty());

    // Its POST approves, as the receiver the page went to; then the call.
    let resp = t.router.clone().oneshot(send("POST")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(t.step().await, 1);
    assert_eq!(platform.calls().len(), 1);
    let approved = t.kinds("remediation.approved");
    let EventKind::RemediationApproved(a) = &approved[0].kind else {
        unreachable!()
    };
    assert_eq!((a.by.as_str(), a.via.as_str()), ("team", "link"));

    // The link works once; a forged one not at all.
    let resp = t.router.clone().oneshot(send("POST")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let forged = format!("{}x", path);
    let resp = t
        .router
        .clone()
        .oneshot(Request::post(forged).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(t.kinds("remediation.approved").len(), 1);
    assert_eq!(t.step().await, 0);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url), dir.path(), &clock);
    t.fire(&[json!({"alertname": "Moved", "app": "web"})]).await;
    assert_eq!(t.step().await, 1);
    clock.advance(Duration::minutes(5));
    assert_eq!(t.step().await, 0);
    // One request, to the allowed host; none to where it pointed.
    let paths: Vec<String> = platform.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(paths, vec!["/moved"]);
    let failed = t.kinds("remediation.failed");
    let EventKind::RemediationFailed(c) = &failed[0].kind else {
        unreachable!()
    };
    assert_eq!((c.status, c.gave_up), (Some(302), true));
}

/// The real `fenghuo serve`, its background executor and a config file
/// with the token in a secret file: a bad release is rolled back once,
/// and the secret shows in no API answer.
#[tokio::test]
async fn the_served_process_rolls_back_a_bad_release_on_its_own() {
    let (platform, url) = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("Bearer {SECRET}\n")).unwrap();
    let yaml = config(&url).replace(
        &format!("headers: {{Authorization: \"Bearer {SECRET}\"}}"),
        "headers: {Authorization: {file: token}}",
    );
    assert!(yaml.contains("{file: "));
    let file = dir.path().join("fenghuo.yaml");
    std::fs::write(&file, yaml).unwrap();
    let (_child, base) = support::binary::serve(&file, &dir.path().join("data")).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();
    let good: Value = post(
        "/api/v1/releases",
        json!({"app": "checkout", "env": "prod", "version": "v1", "status": "started"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let r = post(
        &format!("/api/v1/releases/{}/status", good["id"].as_str().unwrap()),
        json!({"status": "succeeded"}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let bad: Value = post("/api/v1/releases", json!({"app": "checkout", "env": "prod", "version": "v2", "by": "alice", "status": "started"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alerts: Vec<Value> = (0..50)
        .map(|i| json!({"labels": checkout_critical(i)}))
        .collect();
    let r = post("/api/v2/alerts", Value::Array(alerts)).await.unwrap();
    assert!(r.status().is_success());

    // The executor calls on its own; wait for the request (real I/O).
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        platform.arrived.notified(),
    )
    .await
    .expect("the rollback is called");
    let calls = platform.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].authorization, format!("Bearer {SECRET}"));
    assert!(
        calls[0].body.contains("\"to\": \"v1\""),
        "{}",
        calls[0].body
    );
    assert_eq!(
        calls[0].idempotency_key,
        format!("fenghuo-rollback:{}", bad["id"].as_str().unwrap())
    );

    // The outcome is recorded; nothing secret is shown.
    // The outcome commits right after the answer: ask until it shows.
    let runs = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let runs: Value = client
                .get(format!("{base}/api/v1/remediations"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if runs[0]["status"] == "succeeded" {
                break runs;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the outcome is recorded");
    assert!(!runs.to_string().contains(SECRET));
    let status = client
        .get(format!("{base}/api/v2/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains(SECRET));
    assert_eq!(platform.calls().len(), 1);
}
