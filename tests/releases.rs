//! Releases as timelines over the HTTP API: a platform records releases and
//! their status, reads the history and the rollback target, asks the gate
//! (deny while critical alerts fire, during a freeze, while a release
//! bakes; allow otherwise; every answer recorded), and alerts, Warning
//! Kubernetes events and failed probes in a bake window are linked to the
//! release. A manual clock moves time; the log is a real SQLite file.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::event::{InvolvedObject, K8sEvent, ProbeResult};
use fenghuo::eventlog::{EventKind, EventQuery, NewEvent};
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

/// Thursday 2026-11-26 10:00 UTC.
fn t0() -> DateTime<Utc> {
    "2026-11-26T10:00:00Z".parse().unwrap()
}

const CONFIG: &str = r#"
route:
  receiver: team
  group_by: [app]
  group_wait: 0s
receivers:
  - name: team
time_intervals:
  - name: friday-evening
    time_intervals:
      - weekdays: [friday]
        times: [{start_time: "18:00", end_time: "24:00"}]
releases:
  bake_window: 30m
  from_kubernetes: true
  kubernetes_env: prod
  gate:
    prod:
      freeze: [friday-evening]
      freeze_cron:
        - {name: new-year, cron: "0 0 1 1 *", duration: 24h}
    staging:
      checks: [critical_alerts]
"#;

mod support;

use support::router::Server;

impl Server {
    fn at_min(&self, minutes: i64) {
        self.clock.set(t0() + Duration::minutes(minutes));
    }

    /// Records a release of checkout in prod and moves it to `statuses`.
    async fn release(&self, version: &str, by: &str, statuses: &[&str]) -> String {
        let (status, body) = self
            .post_json(
                "/api/v1/releases",
                &json!({"app": "checkout", "env": "prod", "cluster": "bj-1",
                        "version": version, "by": by, "strategy": "rolling",
                        "change_url": "https://git.example.com/checkout/pull/7"})
                .to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        for s in statuses {
            let (status, body) = self
                .post_json(
                    &format!("/api/v1/releases/{id}/status"),
                    &json!({"status": s, "by": by}).to_string(),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        id
    }

    /// Alerts `(name, app, severity)` firing from now, in one POST.
    async fn fire(&self, alerts: &[(&str, &str, &str)]) {
        let body: Vec<Value> = alerts
            .iter()
            .map(|(name, app, severity)| {
                json!({"labels": {"alertname": name, "app": app, "env": "prod",
                                  "severity": severity},
                       "startsAt": self.clock.now().to_rfc3339()})
            })
            .collect();
        let (status, body) = self
            .post_json("/api/v2/alerts", &Value::Array(body).to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn resolve(&self, name: &str, app: &str, severity: &str) {
        let body = json!([{"labels": {"alertname": name, "app": app, "env": "prod",
                                       "severity": severity},
                           "startsAt": (t0() - Duration::hours(1)).to_rfc3339(),
                           "endsAt": self.clock.now().to_rfc3339()}]);
        let (status, _) = self.post_json("/api/v2/alerts", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn gate(&self, query: &str) -> (bool, String) {
        let (status, body) = self.get(&format!("/api/v1/releases/gate?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["allowed"].as_bool().unwrap(),
            body["message"].as_str().unwrap().to_string(),
        )
    }

    fn events(&self, kind: &str) -> Vec<fenghuo::eventlog::Event> {
        self.pipeline
            .log
            .read(&EventQuery {
                kinds: vec![kind.to_string()],
                limit: 100_000,
                ..Default::default()
            })
            .unwrap()
    }
}

#[tokio::test]
async fn history_lists_releases_newest_first_with_the_last_succeeded_as_rollback_target() {
    let s = Server::new(CONFIG, t0());
    s.at_min(-300);
    let v1 = s
        .release("v1.4.0", "alice", &["started", "succeeded"])
        .await;
    s.at_min(-200);
    let v2 = s.release("v1.4.1", "bob", &["started", "succeeded"]).await;
    s.at_min(-100);
    let v3 = s.release("v1.4.2", "alice", &["started"]).await;

    let (status, body) = s.get("/api/v1/releases?app=checkout&env=prod").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(&str, &str)> = body["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (v3.as_str(), "started"),
            (v2.as_str(), "succeeded"),
            (v1.as_str(), "succeeded")
        ]
    );
    assert_eq!(body["rollbackTarget"]["version"], "v1.4.1");
    assert_eq!(body["releases"][0]["by"], "alice");
    assert_eq!(
        body["releases"][0]["changeUrl"],
        "https://git.example.com/checkout/pull/7"
    );

    // Another env has its own history.
    let (_, other) = s.get("/api/v1/releases?app=checkout&env=staging").await;
    assert_eq!(other["releases"].as_array().unwrap().len(), 0);
    assert!(other["rollbackTarget"].is_null());

    // All of it is events, and a replay of the log gives the same history.
    assert_eq!(s.events("release.recorded").len(), 3);
    assert_eq!(s.events("release.status_changed").len(), 5);
    let replayed = fenghuo::act::release::Releases::new();
    for e in s
        .pipeline
        .log
        .read(&EventQuery {
            limit: 100_000,
            ..Default::default()
        })
        .unwrap()
    {
        fenghuo::eventlog::Projection::apply(&replayed, &e);
    }
    assert_eq!(
        replayed.history("checkout", "prod"),
        s.pipeline.releases.history("checkout", "prod")
    );
}

#[tokio::test]
async fn bad_release_requests_get_a_4xx_naming_the_field_and_store_nothing() {
    let s = Server::new(CONFIG, t0());
    let id = s.release("v1", "alice", &["started"]).await;
    let before = s.pipeline.log.last_seq();
    let cases: &[(&str, &str, &str, StatusCode, &str)] = &[
        // uri, body, what the error names, status, field
        (
            "/api/v1/releases",
            r#"{"app":"checkout","env":"prod"}"#,
            "version",
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "/api/v1/releases",
            r#"{"app":"","env":"prod","version":"v2"}"#,
            "app",
            StatusCode::BAD_REQUEST,
            "app",
        ),
        (
            "/api/v1/releases",
            r#"{"app":"checkout","env":"prod","version":"v2","colour":"red"}"#,
            "colour",
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "/api/v1/releases",
            r#"{"app":"checkout","env":"prod","version":"v2","change_url":"not a url"}"#,
            "change_url",
            StatusCode::BAD_REQUEST,
            "change_url",
        ),
        (
            "/api/v1/releases",
            r#"{"app":"checkout","env":"prod","version":"v2","status":"succeeded"}"#,
            "status",
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            "/api/v1/releases",
            r#"{"app":"checkout","#,
            "EOF",
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "/api/v1/releases/rel-nope/status",
            r#"{"status":"started"}"#,
            "not found",
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "/api/v1/releases/{id}/status",
            r#"{"status":"done"}"#,
            "status",
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            "/api/v1/releases/{id}/status",
            r#"{"status":"started","by":7}"#,
            "by",
            StatusCode::BAD_REQUEST,
            "by",
        ),
    ];
    for (uri, body, names, want, field) in cases {
        let uri = uri.replace("{id}", &id);
        let (status, answer) = s.post_json(&uri, body).await;
        assert_eq!(status, *want, "{uri} {body}: {answer}");
        let message = answer["error"].as_str().unwrap_or("");
        assert!(message.contains(names), "{uri} {body}: {message}");
        if !field.is_empty() {
            assert_eq!(answer["field"], *field, "{uri} {body}");
        }
    }
    // A status that cannot follow: 409, and nothing stored.
    s.release("v0", "bob", &[]).await;
    let before_conflict = s.pipeline.log.last_seq();
    let (status, answer) = s
        .post_json(
            &format!("/api/v1/releases/{id}/status"),
            r#"{"status":"succeeded"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = s
        .post_json(
            &format!("/api/v1/releases/{id}/status"),
            r#"{"status":"started"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("succeeded"));
    assert_eq!(s.pipeline.log.last_seq(), before_conflict + 1);
    assert!(before < before_conflict);
    // A field over its limit: 400 naming it; a body over the limit: 413.
    let long = format!(
        r#"{{"app":"checkout","env":"prod","version":"{}"}}"#,
        "x".repeat(300)
    );
    let (status, answer) = s.post_json("/api/v1/releases", &long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "version");
    let huge = format!(
        r#"{{"app":"checkout","env":"prod","version":"{}"}}"#,
        "x".repeat(5 << 20)
    );
    let (status, _) = s.post_json("/api/v1/releases", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.pipeline.log.last_seq(), before_conflict + 1);
}

#[tokio::test]
async fn a_release_resent_with_its_idempotency_key_is_stored_once() {
    let s = Server::new(CONFIG, t0());
    let post = || {
        Request::post("/api/v1/releases")
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "deploy-8812")
            .body(Body::from(
                r#"{"app":"checkout","env":"prod","version":"v9","status":"started"}"#,
            ))
            .unwrap()
    };
    let (first, a) = s.send(post()).await;
    let (second, b) = s.send(post()).await;
    assert_eq!((first, second), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(s.events("release.recorded").len(), 1);
    assert_eq!(s.events("release.status_changed").len(), 1);
}

#[tokio::test]
async fn the_gate_denies_while_critical_alerts_fire_during_a_freeze_and_while_baking() {
    let s = Server::new(CONFIG, t0());
    let q = "app=checkout&env=prod&cluster=bj-1&by=deployer";

    // Thursday 10:00, nothing wrong: allow.
    assert_eq!(s.gate(q).await, (true, "allow".to_string()));

    // Two critical alerts for checkout in prod, a warning and another
    // app's critical: deny, naming the two.
    s.at_min(1);
    s.fire(&[
        ("HighErrorRate", "checkout", "critical"),
        ("PodsDown", "checkout", "critical"),
        ("SlowRequests", "checkout", "warning"),
        ("HighErrorRate", "payments", "critical"),
    ])
    .await;
    let (allowed, message) = s.gate(q).await;
    assert!(!allowed);
    assert!(
        message.starts_with("deny: 2 critical alerts firing for checkout in prod"),
        "{message}"
    );
    // Another app is not held up by them.
    assert!(s.gate("app=search&env=prod").await.0);

    // Resolved; but the incident they opened is still open and nobody
    // took it: deny, until the on-call engineer acknowledges it.
    s.at_min(2);
    s.resolve("HighErrorRate", "checkout", "critical").await;
    s.resolve("PodsDown", "checkout", "critical").await;
    let incident = s
        .pipeline
        .incidents
        .open()
        .into_iter()
        .find(|i| i.group.group_labels.get("app") == Some("checkout"))
        .unwrap();
    let (allowed, message) = s.gate(q).await;
    assert!(!allowed);
    assert_eq!(
        message,
        format!(
            "deny: incident {} of checkout is open and unacknowledged",
            incident.id
        )
    );
    let (status, _) = s
        .post_json(
            &format!("/api/v1/incidents/{}/ack", incident.id),
            r#"{"by":"oncall"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.gate(q).await, (true, "allow".to_string()));

    // A release of checkout starts: the next one waits for it to bake.
    s.at_min(3);
    let id = s.release("v1.4.2", "alice", &["started"]).await;
    let (allowed, message) = s.gate(q).await;
    assert!(!allowed);
    assert!(
        message.contains(&format!(
            "release {id} of checkout (v1.4.2 by alice) is still baking"
        )),
        "{message}"
    );
    // Staging only checks critical alerts.
    assert!(s.gate("app=checkout&env=staging").await.0);
    s.at_min(3 + 30);
    assert_eq!(s.gate(q).await, (true, "allow".to_string()));

    // Friday 18:30 UTC: the freeze window is in force.
    s.clock.set("2026-11-27T18:30:00Z".parse().unwrap());
    let (allowed, message) = s.gate(q).await;
    assert!(!allowed);
    assert!(
        message.contains("freeze window \"friday-evening\""),
        "{message}"
    );
    // New year's day, by cron.
    s.clock.set("2027-01-01T09:00:00Z".parse().unwrap());
    let (allowed, message) = s.gate(q).await;
    assert!(!allowed);
    assert!(
        message.contains("freeze window \"new-year\" is in force until 2027-01-02T00:00:00+00:00"),
        "{message}"
    );

    // Every answer is recorded, with who asked.
    let decisions = s.events("release.gate_decided");
    assert_eq!(decisions.len(), 10);
    let EventKind::ReleaseGateDecided(first_deny) = &decisions[1].kind else {
        panic!()
    };
    assert!(!first_deny.allowed);
    assert_eq!(first_deny.asked_by, "deployer");
    assert_eq!(decisions[1].key, "gate:checkout/prod/bj-1");
}

#[tokio::test]
async fn a_gate_question_without_app_or_env_is_refused_and_not_recorded() {
    let s = Server::new(CONFIG, t0());
    for (query, field) in [
        ("env=prod", "app"),
        ("app=checkout", "env"),
        ("app=&env=prod", "app"),
    ] {
        let (status, body) = s.get(&format!("/api/v1/releases/gate?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["field"], field, "{query}");
    }
    assert!(s.events("release.gate_decided").is_empty());
}

#[tokio::test]
async fn trouble_in_the_bake_window_is_linked_to_the_release_and_said_in_why() {
    let s = Server::new(CONFIG, t0());
    s.at_min(0);
    let id = s.release("v1.4.2", "alice", &["started"]).await;

    // 3 minutes in: a new alert of checkout, a Warning event of one of its
    // pods, a failed probe of it; and an alert of another app.
    s.at_min(3);
    s.fire(&[
        ("HighErrorRate", "checkout", "critical"),
        ("Slow", "search", "warning"),
    ])
    .await;
    let now = s.clock.now();
    s.pipeline
        .log
        .append(vec![
            NewEvent::new(
                now,
                "kubernetes",
                "pod-uid-1",
                EventKind::K8sEvent(Arc::new(K8sEvent {
                    cluster: "bj-1".into(),
                    namespace: "shop".into(),
                    involved_object: InvolvedObject {
                        kind: "Pod".into(),
                        name: "checkout-7d9f8c6b5-x2x".into(),
                        uid: "pod-uid-1".into(),
                        ..Default::default()
                    },
                    reason: "BackOff".into(),
                    message: "Back-off restarting failed container".into(),
                    event_type: "Warning".into(),
                    count: 1,
                    first_seen: None,
                    last_seen: None,
                    reporting_controller: "kubelet".into(),
                    labels: [("app", "checkout")].into(),
                    ..Default::default()
                })),
            ),
            NewEvent::new(
                now,
                "probe",
                "checkout-health",
                EventKind::ProbeResult(Arc::new(ProbeResult {
                    probe: "checkout-health".into(),
                    probe_type: "http".into(),
                    target: "http://checkout/healthz".into(),
                    ok: false,
                    latency_ms: None,
                    status: Some(503),
                    values: Default::default(),
                    error: Some("HTTP 503".into()),
                    labels: [("app", "checkout")].into(),
                    summary: None,
                })),
            ),
        ])
        .await
        .unwrap();

    // The alert's notification says so.
    let pending = s.pipeline.outbox.state().pending();
    let checkout = pending
        .iter()
        .find(|p| p.due.group.group_labels.get("app") == Some("checkout"))
        .expect("checkout's notification is due");
    let msg = s.pipeline.outbox.message(checkout, s.clock.now());
    let alert = msg
        .alerts
        .iter()
        .find(|a| a.labels.get("alertname") == Some("HighErrorRate"))
        .unwrap();
    assert_eq!(
        alert.summary,
        "HighErrorRate (started 3 min after checkout v1.4.2 by alice)"
    );
    assert_eq!(
        alert.annotations.get("suspected_release"),
        Some("started 3 min after checkout v1.4.2 by alice")
    );
    let search = pending
        .iter()
        .find(|p| p.due.group.group_labels.get("app") == Some("search"))
        .unwrap();
    assert!(
        !s.pipeline.outbox.message(search, s.clock.now()).alerts[0]
            .summary
            .contains("started")
    );

    let suspected: Vec<(String, String)> = s
        .events("release.suspected")
        .iter()
        .map(|e| match &e.kind {
            EventKind::ReleaseSuspected(x) => {
                assert_eq!(x.release, id);
                assert_eq!(e.key, x.subject);
                (
                    x.evidence_kind.clone(),
                    fenghuo::act::release::suspicion_note(x),
                )
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        suspected,
        vec![
            (
                "alert".to_string(),
                "started 3 min after checkout v1.4.2 by alice".to_string()
            ),
            (
                "k8s.event".to_string(),
                "started 3 min after checkout v1.4.2 by alice".to_string()
            ),
            (
                "probe.result".to_string(),
                "started 3 min after checkout v1.4.2 by alice".to_string()
            ),
        ]
    );
    let (_, release) = s.get(&format!("/api/v1/releases/{id}")).await;
    assert_eq!(release["suspected"], 3);
    assert_eq!(
        release["evidence"][0]["evidence"],
        "HighErrorRate severity=critical"
    );

    // After the window: not linked.
    s.at_min(31);
    s.fire(&[("LateAlert", "checkout", "critical")]).await;

    // `fenghuo why FINGERPRINT` shows it.
    let fp = match &s.events("release.suspected")[0].kind {
        EventKind::ReleaseSuspected(x) => x.subject.clone(),
        _ => unreachable!(),
    };
    s.pipeline.close();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(["why", &fp, "--data-dir"])
        .arg(&s.pipeline.config().data_dir)
        .env_remove("FENGHUO_CONFIG")
        .env_remove("FENGHUO_SERVER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "suspected of release {id}: started 3 min after checkout v1.4.2 by alice"
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_deployments_new_replica_set_is_recorded_as_a_release_once() {
    let s = Server::new(CONFIG, t0());
    let scaled = |rs: &str, n: u32| {
        NewEvent::new(
            s.clock.now(),
            "kubernetes",
            "deploy-uid",
            EventKind::K8sEvent(Arc::new(K8sEvent {
                cluster: "bj-1".into(),
                namespace: "shop".into(),
                involved_object: InvolvedObject {
                    kind: "Deployment".into(),
                    name: "checkout".into(),
                    uid: "deploy-uid".into(),
                    ..Default::default()
                },
                reason: "ScalingReplicaSet".into(),
                message: format!("Scaled up replica set {rs} to {n}"),
                event_type: "Normal".into(),
                count: 1,
                first_seen: None,
                last_seen: None,
                reporting_controller: "deployment-controller".into(),
                labels: Default::default(),
                ..Default::default()
            })),
        )
    };
    s.pipeline
        .log
        .append(vec![scaled("checkout-7d9f8c6b5", 1)])
        .await
        .unwrap();
    s.at_min(1);
    s.pipeline
        .log
        .append(vec![scaled("checkout-7d9f8c6b5", 3)])
        .await
        .unwrap();
    let history = s.pipeline.releases.history("checkout", "prod");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].release.version, "7d9f8c6b5");
    assert_eq!(history[0].release.via, "kubernetes");
    assert_eq!(history[0].release.cluster, "bj-1");
    assert_eq!(history[0].status, "started");
    s.at_min(2);
    s.pipeline
        .log
        .append(vec![scaled("checkout-55c4f9b7d8", 1)])
        .await
        .unwrap();
    assert_eq!(s.pipeline.releases.history("checkout", "prod").len(), 2);
}

#[tokio::test]
async fn a_reload_puts_new_gate_rules_in_force_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fenghuo.yaml");
    std::fs::write(&file, CONFIG).unwrap();
    let mut config = Config::load(&file).unwrap();
    config.data_dir = dir.path().join("data");
    let clock = ManualClock::new(t0());
    let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
    let (_tx, rx) = watch::channel(false);
    let router = app(AppState::new(pipeline.clone(), rx));
    let gate = || async {
        let resp = router
            .clone()
            .oneshot(
                Request::get("/api/v1/releases/gate?app=checkout&env=prod")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&body).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(gate().await, "allow");

    // Thursdays are frozen from now on.
    let frozen = CONFIG.replace(
        "        - {name: new-year, cron: \"0 0 1 1 *\", duration: 24h}",
        "        - {name: thursday, cron: \"0 0 * * 4\", duration: 24h}",
    );
    assert_ne!(frozen, CONFIG);
    std::fs::write(&file, &frozen).unwrap();
    pipeline.reload("test").await.unwrap();
    assert!(gate().await.starts_with("deny: freeze window \"thursday\""));

    // A broken section is refused; the thursday freeze stays.
    std::fs::write(
        &file,
        format!("{frozen}  auto_rollback: {{action: nope}}\n"),
    )
    .unwrap();
    let problems = pipeline.reload("test").await.unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("undefined remediation action")),
        "{problems:?}"
    );
    assert!(gate().await.starts_with("deny: freeze window \"thursday\""));
}
