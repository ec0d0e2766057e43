//! The HTTP API as senders see it: the router from `fenghuo::api::app` over a
//! pipeline on a real SQLite file, driven with `tower::ServiceExt::oneshot`.
//!
//! Tests read as timelines (what is posted at which clock time, what the log
//! holds afterwards) and tables (one row per bad input, with a comment). The
//! clock is a `ManualClock`; the lease checkpoint that `fenghuo serve` runs
//! every 30 s is called by hand at each 30 s of clock time.
//!
//! The metrics recorder is process-global, so no test asserts a metric value.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::{ByteSize, Config};
use fenghuo::evaluate::Fingerprint;
use fenghuo::eventlog::{Event, EventKind, EventQuery, LabelSet};
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const FIRING: &str = include_str!("fixtures/alertmanager-0.25-webhook-firing.json");
const PARTIAL: &str = include_str!("fixtures/alertmanager-0.25-webhook-partial-resolved.json");
const RESOLVED: &str = include_str!("fixtures/alertmanager-0.25-webhook-resolved.json");

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("valid RFC 3339 instant")
}

/// How Go's `encoding/json` writes a `time.Time` (RFC 3339, UTC `Z`).
fn go_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One running pipeline and its router.
struct Server {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    app: Router,
    shutdown: watch::Sender<bool>,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    /// Opens a pipeline in `dir` on `clock`, with `tweak` applied to the
    /// defaults.
    fn open(dir: &Path, clock: &ManualClock, tweak: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let pipeline =
            Arc::new(Pipeline::open(config, Arc::new(clock.clone())).expect("open pipeline"));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = app(AppState::new(pipeline.clone(), shutdown_rx));
        Server {
            clock: clock.clone(),
            pipeline,
            app,
            shutdown,
        }
    }

    /// Stops the pipeline as `fenghuo serve` does on SIGTERM and lets go of
    /// the data directory, so it can be opened again.
    fn stop(self) {
        let Server { pipeline, app, .. } = self;
        drop(app);
        pipeline.close();
        assert_eq!(
            Arc::strong_count(&pipeline),
            1,
            "nothing else holds the pipeline"
        );
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn call(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// A JSON POST, as Prometheus, Alertmanager and PagerDuty clients send it.
    async fn post(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.call(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    fn events_after(&self, after: u64) -> Vec<Event> {
        self.pipeline
            .log
            .read(&EventQuery {
                after,
                ..Default::default()
            })
            .expect("read log")
    }

    fn all_events(&self) -> Vec<Event> {
        self.events_after(0)
    }

    fn last_seq(&self) -> u64 {
        self.pipeline.log.last_seq()
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Prometheus 2.x alert for instance `i` of a 1,000-node fleet.
fn fleet_alert(i: usize, starts: DateTime<Utc>, ends: DateTime<Utc>) -> Value {
    json!({
        "labels": {"alertname": "NodeDown", "instance": format!("node-{i:04}:9100"), "job": "node", "severity": "page"},
        "annotations": {"summary": format!("node-{i:04} is down")},
        "startsAt": go_time(starts),
        "endsAt": go_time(ends),
        "generatorURL": "http://prometheus-0:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
    })
}

fn fleet_fingerprint(i: usize) -> Fingerprint {
    Fingerprint::of(&labels(&[
        ("alertname", "NodeDown"),
        ("instance", &format!("node-{i:04}:9100")),
        ("job", "node"),
        ("severity", "page"),
    ]))
}

// ---------------------------------------------------------------------------
// Each ingest format with a real payload
// ---------------------------------------------------------------------------

/// Alertmanager 0.25 webhooks, as captured: a group of three fires, one
/// resolves, then the other two. Fenghuo stores 3 receives, 1 resolve, 2
/// resolves, under the fingerprints Alertmanager itself sent; Alertmanager's
/// repeat of an unchanged notification stores nothing.
#[tokio::test]
async fn alertmanager_webhook_fixtures_fire_partly_resolve_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T18:49:34Z"));
    let s = Server::open(dir.path(), &clock, |_| {});

    let fixture: Value = serde_json::from_str(FIRING).unwrap();
    let fixture_alerts = fixture["alerts"].as_array().unwrap();
    let fingerprints: Vec<&str> = fixture_alerts
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();

    // 18:49:34 — the group fires: three alert.received.
    let r = s.post("/ingest/alertmanager", FIRING).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"status": "success", "alerts": 3, "stored": 3})
    );
    let fired = s.all_events();
    assert_eq!(kinds(&fired), ["alert.received"; 3]);
    for (event, sent) in fired.iter().zip(fixture_alerts) {
        let EventKind::AlertReceived(report) = &event.kind else {
            unreachable!()
        };
        assert_eq!(event.source, "alertmanager");
        assert_eq!(event.key, sent["fingerprint"].as_str().unwrap());
        assert_eq!(report.fingerprint, event.key);
        assert_eq!(json!(report.labels), sent["labels"]);
        assert_eq!(json!(report.annotations), sent["annotations"]);
        assert_eq!(report.starts_at, t("2026-11-25T18:49:33.566Z"));
        assert_eq!(report.ends_at, None, "a firing webhook alert has no end");
        assert_eq!(report.generator_url, sent["generatorURL"].as_str().unwrap());
        assert_eq!(report.extra["webhook"]["receiver"], "bench-webhook");
        assert!(!report.extra.contains_key("sourceFingerprint"));
    }

    // 18:53:34 — Alertmanager repeats the same notification: nothing new.
    clock.advance(Duration::minutes(4));
    let r = s.post("/ingest/alertmanager", FIRING).await;
    assert_eq!(r.json()["stored"], 0);
    assert_eq!(s.last_seq(), 3);

    // 18:54:34 — sda resolves (the others are still firing in the same body).
    clock.advance(Duration::minutes(1));
    let r = s.post("/ingest/alertmanager", PARTIAL).await;
    assert_eq!(
        r.json(),
        json!({"status": "success", "alerts": 3, "stored": 1})
    );
    let resolved = s.events_after(3);
    assert_eq!(kinds(&resolved), ["alert.resolved"]);
    let EventKind::AlertResolved(res) = &resolved[0].kind else {
        unreachable!()
    };
    assert_eq!(res.fingerprint, fingerprints[0]);
    assert_eq!(resolved[0].key, fingerprints[0]);
    assert_eq!(
        res.ends_at,
        t("2026-11-25T18:49:33.569Z"),
        "the source's endsAt"
    );

    // 18:55:34 — the rest resolves.
    clock.advance(Duration::minutes(1));
    let r = s.post("/ingest/alertmanager", RESOLVED).await;
    assert_eq!(r.json()["stored"], 2);
    let rest = s.events_after(4);
    assert_eq!(kinds(&rest), ["alert.resolved"; 2]);
    let keys: Vec<&str> = rest.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, &fingerprints[1..]);

    // Resent resolved notification: nothing new; nothing is firing.
    let r = s.post("/ingest/alertmanager", RESOLVED).await;
    assert_eq!(r.json()["stored"], 0);
    assert_eq!(s.pipeline.log.count().unwrap(), 6);
    assert_eq!(s.pipeline.alerts.firing_count(s.now()), 0);
    assert_eq!(s.pipeline.alerts.len(), 3);
}

/// `POST /api/v2/alerts` exactly as Prometheus 2.x's notifier sends it: a JSON
/// array, fields in Go's struct order, `&` escaped as `\u0026`, times in
/// RFC 3339 with nanoseconds, `endsAt` = evaluation + 4 × resend delay. A
/// resolved alert (endsAt in the past) rides in the same body.
#[tokio::test]
async fn prometheus_posts_alerts_as_prometheus_2_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00.5Z"));
    let s = Server::open(dir.path(), &clock, |_| {});

    let body = r#"[{"labels":{"alertname":"HighRequestLatency","env":"prod","instance":"api-1:8080","job":"api","severity":"page"},"annotations":{"description":"99th percentile latency is 1.7s","summary":"High request latency on api-1:8080"},"startsAt":"2026-11-25T18:45:30.123456789Z","endsAt":"2026-11-25T19:04:00.5Z","generatorURL":"http://prometheus-0:9090/graph?g0.expr=job%3Aapi_latency_seconds%3Ap99+%3E+1\u0026g0.tab=1"},{"labels":{"alertname":"CertExpiring","env":"prod","instance":"api-1:8080","job":"blackbox"},"annotations":{"summary":"certificate renewed"},"startsAt":"2026-11-25T17:00:00Z","endsAt":"2026-11-25T18:59:30Z","generatorURL":"http://prometheus-0:9090/graph?g0.expr=probe_ssl_earliest_cert_expiry\u0026g0.tab=1"}]"#;
    let r = s
        .call(
            Request::post("/api/v2/alerts")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::USER_AGENT, "Prometheus/2.53.1")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body.is_empty(), "Alertmanager answers 200 with no body");

    let events = s.all_events();
    assert_eq!(kinds(&events), ["alert.received", "alert.resolved"]);

    // The firing alert, as sent.
    let want_labels = labels(&[
        ("alertname", "HighRequestLatency"),
        ("env", "prod"),
        ("instance", "api-1:8080"),
        ("job", "api"),
        ("severity", "page"),
    ]);
    let EventKind::AlertReceived(report) = &events[0].kind else {
        unreachable!()
    };
    assert_eq!(events[0].source, "prometheus");
    assert_eq!(events[0].key, Fingerprint::of(&want_labels).to_string());
    assert_eq!(report.labels, want_labels);
    assert_eq!(
        &report.annotations["summary"],
        "High request latency on api-1:8080"
    );
    assert_eq!(report.starts_at, t("2026-11-25T18:45:30.123456789Z"));
    assert_eq!(report.ends_at, Some(t("2026-11-25T19:04:00.5Z")));
    assert_eq!(
        report.generator_url,
        "http://prometheus-0:9090/graph?g0.expr=job%3Aapi_latency_seconds%3Ap99+%3E+1&g0.tab=1"
    );
    assert_eq!(events[0].occurred_at, clock.now());

    // The resolved one, first seen resolved: stored as a resolve with its report.
    let EventKind::AlertResolved(res) = &events[1].kind else {
        unreachable!()
    };
    assert_eq!(res.ends_at, t("2026-11-25T18:59:30Z"));
    assert_eq!(res.reason, "first seen resolved");
    assert_eq!(
        &res.report.as_ref().unwrap().labels["alertname"],
        "CertExpiring"
    );

    let a = s
        .pipeline
        .alerts
        .get(Fingerprint::of(&want_labels))
        .unwrap();
    assert!(a.firing_at(clock.now()));
    assert_eq!(a.stored_ends, Some(t("2026-11-25T19:04:00.5Z")));
}

/// PagerDuty Events API v2: trigger, acknowledge and resolve by `dedup_key`,
/// answered 202 with PagerDuty's own body. A trigger without a `dedup_key`
/// gets a generated one, which later events use.
#[tokio::test]
async fn pagerduty_trigger_acknowledge_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let s = Server::open(dir.path(), &clock, |_| {});
    let accepted =
        |key: &str| json!({"status": "success", "message": "Event processed", "dedup_key": key});

    let trigger = json!({
        "routing_key": "R0UTINGKEY00000000000000000000AB",
        "event_action": "trigger",
        "dedup_key": "srv01/HTTP",
        "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "timestamp": "2026-11-25T18:58:42.045+00:00",
            "severity": "critical",
            "source": "prod-datapipe03.example.com",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75}
        },
        "links": [{"href": "https://example.com/", "text": "Link text"}],
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.example.com"
    })
    .to_string();
    let ack = json!({"routing_key": "R0UTINGKEY00000000000000000000AB", "event_action": "acknowledge", "dedup_key": "srv01/HTTP"}).to_string();
    let resolve = json!({"routing_key": "R0UTINGKEY00000000000000000000AB", "event_action": "resolve", "dedup_key": "srv01/HTTP"}).to_string();

    // (step, body, kinds it adds) — each answered 202 with PagerDuty's body.
    let timeline: &[(&str, &str, &[&str])] = &[
        ("trigger", &trigger, &["alert.received"]),
        ("the monitor re-triggers: nothing new", &trigger, &[]),
        ("acknowledge", &ack, &["alert.acked"]),
        ("acknowledged twice: nothing new", &ack, &[]),
        ("resolve", &resolve, &["alert.resolved"]),
        ("resolved twice: nothing new", &resolve, &[]),
    ];
    for (step, body, adds) in timeline {
        let before = s.last_seq();
        let r = s.post("/v2/enqueue", body.to_string()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{step}: {}", r.text());
        assert_eq!(r.json(), accepted("srv01/HTTP"), "{step}");
        let added = s.events_after(before);
        assert_eq!(kinds(&added), *adds, "{step}");
        assert!(added.iter().all(|e| e.source == "pagerduty"), "{step}");
        clock.advance(Duration::minutes(1));
    }
    let events = s.all_events();
    let EventKind::AlertReceived(report) = &events[0].kind else {
        unreachable!()
    };
    assert_eq!(&report.labels["dedup_key"], "srv01/HTTP");
    assert_eq!(&report.labels["severity"], "critical");
    assert_eq!(
        report.starts_at,
        t("2026-11-25T18:58:42.045Z"),
        "payload.timestamp"
    );
    assert!(
        events.iter().all(|e| e.key == report.fingerprint),
        "all three are about one alert"
    );
    let stored = serde_json::to_string(&events).unwrap();
    assert!(
        !stored.contains("R0UTINGKEY"),
        "the routing key is a credential and is not stored"
    );

    // A trigger without dedup_key: the answer carries a generated one...
    let r = s
        .post(
            "/api/v1/events",
            json!({
                "routing_key": "R0UTINGKEY00000000000000000000AB",
                "event_action": "trigger",
                "payload": {"summary": "queue backlog", "source": "mq-1", "severity": "warning"}
            })
            .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let reply = r.json();
    let generated = reply["dedup_key"].as_str().unwrap().to_string();
    assert_eq!(reply, accepted(&generated));
    assert!(
        generated.len() >= 16 && generated.chars().all(|c| c.is_ascii_alphanumeric()),
        "generated dedup_key {generated:?}"
    );
    let added = s.events_after(3);
    assert_eq!(kinds(&added), ["alert.received"]);
    let EventKind::AlertReceived(report) = &added[0].kind else {
        unreachable!()
    };
    assert_eq!(report.labels["dedup_key"], generated);

    // ...which resolves it.
    let r = s
        .post(
            "/api/v1/events",
            json!({"routing_key": "R0UTINGKEY00000000000000000000AB", "event_action": "resolve", "dedup_key": generated}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(kinds(&s.events_after(4)), ["alert.resolved"]);
    assert_eq!(s.events_after(4)[0].key, report.fingerprint);

    // Acknowledge and resolve of a key never triggered: 202, nothing stored
    // (PagerDuty accepts and ignores them too).
    for action in ["acknowledge", "resolve"] {
        let r = s
            .post(
                "/api/v1/events",
                json!({"routing_key": "R0UTINGKEY00000000000000000000AB", "event_action": action, "dedup_key": "never-triggered"}).to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{action}");
        assert_eq!(r.json(), accepted("never-triggered"));
    }
    assert_eq!(s.last_seq(), 5);
}

// ---------------------------------------------------------------------------
// Bad input costs nothing
// ---------------------------------------------------------------------------

struct Bad {
    what: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Body,
    status: StatusCode,
    /// The JSON body's `field`; `None`: no field (malformed body or a limit).
    field: Option<&'static str>,
    /// Part of the JSON body's `error`.
    says: &'static str,
}

fn bad(
    what: &'static str,
    path: &'static str,
    body: impl Into<Body>,
    status: StatusCode,
    field: Option<&'static str>,
    says: &'static str,
) -> Bad {
    Bad {
        what,
        path,
        content_type: Some("application/json"),
        body: body.into(),
        status,
        field,
        says,
    }
}

/// Every refusal: the status, an `error` (and `field` or `limit`) naming the
/// problem, and a log, index and `last_seq` exactly as before.
#[tokio::test]
async fn bad_input_is_refused_by_name_and_stores_nothing() {
    const LIMIT: usize = 1024;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let s = Server::open(dir.path(), &clock, |c| {
        c.ingest.max_body_bytes = ByteSize(LIMIT)
    });

    // Something accepted before, which must stay exactly as it is.
    let ok = json!([fleet_alert(
        1,
        clock.now(),
        clock.now() + Duration::minutes(4)
    )])
    .to_string();
    assert_eq!(s.post("/api/v2/alerts", ok).await.status, StatusCode::OK);
    let pd_ok = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d1",
        "payload": {"summary": "s", "source": "h", "severity": "info"}});
    assert_eq!(
        s.post("/api/v1/events", pd_ok.to_string()).await.status,
        StatusCode::ACCEPTED
    );
    let before = s.all_events();
    let before_index = s.pipeline.alerts.snapshot();
    assert_eq!(before.len(), 2);

    let v2 = "/api/v2/alerts";
    let hook = "/ingest/alertmanager";
    let pd = "/api/v1/events";
    let bad_request = StatusCode::BAD_REQUEST;
    let big_alerts =
        json!([{"labels": {"alertname": "Big", "blob": "x".repeat(2 * LIMIT)}}]).to_string();
    let big_chunks: Vec<Result<Bytes, std::io::Error>> = (0..8)
        .map(|_| Ok(Bytes::from(vec![b' '; LIMIT / 4])))
        .collect();

    let table = vec![
        // Not JSON at all: no field to name, the parser's complaint instead.
        bad(
            "malformed JSON",
            v2,
            "{not json",
            bad_request,
            None,
            "malformed body",
        ),
        // A valid array followed by garbage is malformed too.
        bad(
            "trailing garbage",
            v2,
            "[] []",
            bad_request,
            None,
            "trailing characters",
        ),
        // The body cut off inside the first alert (serde_path_to_error writes
        // the key it never got to as `?`); the message has line and column.
        bad(
            "truncated body",
            v2,
            r#"[{"labels":{"alertname":"A"}"#,
            bad_request,
            Some("[0].?"),
            "EOF while parsing an object at line 1 column 28",
        ),
        // An object where Prometheus sends an array.
        bad(
            "object instead of array",
            v2,
            r#"{"labels":{"alertname":"A"}}"#,
            bad_request,
            None,
            "expected a sequence",
        ),
        // A label value that is a number.
        bad(
            "label value of the wrong type",
            v2,
            r#"[{"labels":{"alertname":"A","port":9100}}]"#,
            bad_request,
            Some("[0].labels.port"),
            "invalid type",
        ),
        // startsAt as a Unix timestamp.
        bad(
            "startsAt of the wrong type",
            v2,
            r#"[{"labels":{"alertname":"A"},"startsAt":1764097200}]"#,
            bad_request,
            Some("[0].startsAt"),
            "invalid type",
        ),
        // No labels: Alertmanager's own message.
        bad(
            "missing labels",
            v2,
            r#"[{"annotations":{"summary":"s"}}]"#,
            bad_request,
            Some("[0].labels"),
            "at least one label pair required",
        ),
        // Empty labels, in the second alert: the first (valid) is not stored either.
        bad(
            "empty labels in the second alert",
            v2,
            r#"[{"labels":{"alertname":"Fine"}},{"labels":{}}]"#,
            bad_request,
            Some("[1].labels"),
            "at least one label pair required",
        ),
        // A label name with a dot (UTF-8 names came only in Prometheus 3).
        bad(
            "invalid label name",
            v2,
            r#"[{"labels":{"alertname":"A","k8s.pod":"p"}}]"#,
            bad_request,
            Some("[0].labels.k8s.pod"),
            "invalid label name",
        ),
        // Annotation names follow the label rule too.
        bad(
            "invalid annotation name",
            v2,
            r#"[{"labels":{"alertname":"A"},"annotations":{"run-book":"x"}}]"#,
            bad_request,
            Some("[0].annotations.run-book"),
            "invalid label name",
        ),
        // A timestamp in words.
        bad(
            "invalid timestamp",
            v2,
            r#"[{"labels":{"alertname":"A"},"startsAt":"yesterday"}]"#,
            bad_request,
            Some("[0].startsAt"),
            "input contains invalid characters",
        ),
        // Month 13.
        bad(
            "impossible date",
            v2,
            r#"[{"labels":{"alertname":"A"},"endsAt":"2026-13-01T00:00:00Z"}]"#,
            bad_request,
            Some("[0].endsAt"),
            "out of range",
        ),
        // Beyond what the log stores (nanoseconds since 1970 in an i64).
        bad(
            "timestamp beyond 2262",
            v2,
            r#"[{"labels":{"alertname":"A"},"endsAt":"9999-01-01T00:00:00Z"}]"#,
            bad_request,
            Some("[0].endsAt"),
            "out of range",
        ),
        // Ends before it starts.
        bad(
            "startsAt after endsAt",
            v2,
            r#"[{"labels":{"alertname":"A"},"startsAt":"2026-11-25T19:00:00Z","endsAt":"2026-11-25T18:00:00Z"}]"#,
            bad_request,
            Some("[0].endsAt"),
            "start time must be before end time",
        ),
        // Over ingest.max_body_bytes, declared by Content-Length.
        Bad {
            what: "over the limit, with Content-Length",
            path: v2,
            content_type: Some("application/json"),
            body: Body::from(big_alerts.clone()),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            field: None,
            says: "1024 bytes",
        },
        // Over the limit, streamed without Content-Length (chunked).
        Bad {
            what: "over the limit, chunked",
            path: hook,
            content_type: Some("application/json"),
            body: Body::from_stream(futures::stream::iter(big_chunks)),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            field: None,
            says: "ingest.max_body_bytes",
        },
        // PagerDuty's endpoint has the same limit.
        bad(
            "PagerDuty body over the limit",
            pd,
            big_alerts.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "1024 bytes",
        ),
        // A form post.
        Bad {
            what: "form content type",
            path: v2,
            content_type: Some("application/x-www-form-urlencoded"),
            body: Body::from(r#"[{"labels":{"alertname":"A"}}]"#),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            field: None,
            says: "application/json",
        },
        // Plain text to the webhook.
        Bad {
            what: "text/plain to the webhook",
            path: hook,
            content_type: Some("text/plain; charset=utf-8"),
            body: Body::from(PARTIAL),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            field: None,
            says: "text/plain",
        },
        // A webhook alert may be firing or resolved, never pending.
        bad(
            "webhook alert pending",
            hook,
            r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}},{"status":"pending","labels":{"alertname":"B"}}]}"#,
            bad_request,
            Some("alerts[1].status"),
            "pending",
        ),
        // A webhook without its alerts.
        bad(
            "webhook without alerts",
            hook,
            r#"{"version":"4","status":"firing"}"#,
            bad_request,
            None,
            "missing field `alerts`",
        ),
        // A webhook alert without labels.
        bad(
            "webhook alert without labels",
            hook,
            r#"{"alerts":[{"status":"firing","annotations":{"a":"b"}}]}"#,
            bad_request,
            Some("alerts[0].labels"),
            "at least one label pair",
        ),
        // PagerDuty: no routing_key.
        bad(
            "PagerDuty without routing_key",
            pd,
            r#"{"event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info"}}"#,
            bad_request,
            Some("routing_key"),
            "'routing_key' is missing",
        ),
        // PagerDuty: a severity it does not know.
        bad(
            "PagerDuty bad severity",
            pd,
            r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"disaster"}}"#,
            bad_request,
            Some("payload.severity"),
            "must be critical, error, warning or info",
        ),
        // PagerDuty: an action it does not know.
        bad(
            "PagerDuty unknown action",
            pd,
            r#"{"routing_key":"k","event_action":"snooze","dedup_key":"d1"}"#,
            bad_request,
            Some("event_action"),
            "snooze",
        ),
        // PagerDuty: resolve needs a dedup_key.
        bad(
            "PagerDuty resolve without dedup_key",
            pd,
            r#"{"routing_key":"k","event_action":"resolve"}"#,
            bad_request,
            Some("dedup_key"),
            "'dedup_key' is missing",
        ),
        // PagerDuty: summary missing from a trigger.
        bad(
            "PagerDuty trigger without summary",
            "/v2/enqueue",
            r#"{"routing_key":"k","event_action":"trigger","payload":{"source":"h","severity":"info"}}"#,
            bad_request,
            Some("payload.summary"),
            "missing",
        ),
    ];

    for case in table {
        let mut req = Request::post(case.path);
        if let Some(ct) = case.content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let r = s.call(req.body(case.body).unwrap()).await;
        let what = case.what;
        assert_eq!(r.status, case.status, "{what}: {}", r.text());
        assert!(
            r.content_type.starts_with("application/json"),
            "{what}: {}",
            r.content_type
        );
        let body = r.json();
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error in {body}"));
        assert!(
            error.contains(case.says),
            "{what}: error {error:?} should say {:?}",
            case.says
        );
        assert_eq!(body["field"].as_str(), case.field, "{what}: {body}");
        if let Some(field) = case.field {
            assert!(
                error.starts_with(field),
                "{what}: error {error:?} names {field:?} first"
            );
        }
        if case.status == StatusCode::PAYLOAD_TOO_LARGE {
            assert_eq!(body["limit"], LIMIT, "{what}");
        }
        if case.path != v2 && case.path != hook && case.status == bad_request {
            // PagerDuty's own error shape, beside Fenghuo's.
            assert_eq!(body["status"], "invalid event", "{what}");
            assert_eq!(body["message"], "Event object is invalid", "{what}");
            assert_eq!(body["errors"][0], error, "{what}");
        }
        // Nothing stored, nothing changed.
        assert_eq!(s.last_seq(), 2, "{what}: last_seq moved");
        assert_eq!(s.pipeline.log.count().unwrap(), 2, "{what}: count changed");
        assert_eq!(s.all_events(), before, "{what}: stored events changed");
        assert_eq!(
            s.pipeline.alerts.snapshot(),
            before_index,
            "{what}: index changed"
        );
    }

    // Still serving: the next good post is stored.
    let next = json!([fleet_alert(
        2,
        clock.now(),
        clock.now() + Duration::minutes(4)
    )])
    .to_string();
    assert_eq!(s.post(v2, next).await.status, StatusCode::OK);
    assert_eq!(s.last_seq(), 3);
}

// ---------------------------------------------------------------------------
// Re-sends cost O(changes)
// ---------------------------------------------------------------------------

/// Posts the fleet (1,000 alerts, 10 batches of 100) as Prometheus does each
/// evaluation: unchanged labels, annotations and startsAt, endsAt = now + 4m.
async fn send_fleet(s: &Server, starts: DateTime<Utc>) {
    let ends = s.now() + Duration::minutes(4);
    for batch in 0..10 {
        let body: Vec<Value> = (batch * 100..(batch + 1) * 100)
            .map(|i| fleet_alert(i, starts, ends))
            .collect();
        let r = s
            .post("/api/v2/alerts", Value::Array(body).to_string())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
}

/// Every alert is firing, and the log holds an endsAt at least
/// `lease_horizon` ahead: a restart at this instant would not show it expired.
fn assert_leases_hold(s: &Server, when: &str) {
    let now = s.now();
    let horizon = s.pipeline.ingest.settings.lease_horizon;
    let snapshot = s.pipeline.alerts.snapshot();
    assert_eq!(snapshot.len(), 1_000, "{when}");
    for (fp, a) in &snapshot {
        assert!(a.firing_at(now), "{when}: {fp:016x} not firing at {now}");
        let stored = a.stored_ends.expect("API v2 alerts have an end");
        assert!(
            stored >= now + horizon,
            "{when}: {fp:016x} stored endsAt {stored} is less than {horizon} ahead of {now}"
        );
    }
}

/// Timeline: 19:00 a fleet of 1,000 alerts fires → every minute for an hour
/// Prometheus re-sends all of them with endsAt = now + 4m, the lease
/// checkpoint runs every 30 s → the log grows by O(changes), not by 60,000
/// events; at every step the stored endsAt stays ≥ now + lease_horizon; a
/// restart half-way (right after a re-send, before its checkpoint) and one at
/// the end show every alert still firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_of_unchanged_alerts_add_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let mut s = Server::open(dir.path(), &clock, |_| {});
    let starts = clock.now() - Duration::seconds(45);

    // 19:00 — the fleet fires: 1,000 alert.received.
    send_fleet(&s, starts).await;
    assert_eq!(s.pipeline.log.count().unwrap(), 1_000);
    assert!(
        kinds(&s.all_events())
            .iter()
            .all(|k| *k == "alert.received")
    );
    assert_leases_hold(&s, "after the first send");

    // 19:00–20:00 — re-sent every minute, checkpoints every 30 s.
    let mut checkpoints = 0;
    for minute in 1..=60 {
        clock.advance(Duration::seconds(30));
        s.pipeline.ingest.checkpoint_leases().await.unwrap();
        checkpoints += 1;
        assert_leases_hold(&s, &format!("minute {minute}, half-way checkpoint"));

        clock.advance(Duration::seconds(30));
        send_fleet(&s, starts).await;
        assert_leases_hold(&s, &format!("minute {minute}, after the re-send"));

        if minute == 30 {
            // 19:30 — restart between a re-send and its checkpoint: what the
            // re-send brought and the log does not hold yet is gone.
            s.stop();
            s = Server::open(dir.path(), &clock, |_| {});
            assert_leases_hold(&s, "right after the restart at 19:30");
        }

        s.pipeline.ingest.checkpoint_leases().await.unwrap();
        checkpoints += 1;
        assert_leases_hold(&s, &format!("minute {minute}, checkpoint"));
    }

    let events = s.all_events();
    let extra = &events[1_000..];
    assert!(
        extra.iter().all(|e| e.kind.name() == "alert.refreshed"),
        "re-sends add only lease refreshes: {:?}",
        kinds(extra)
    );
    assert!(
        extra.len() <= 2 * checkpoints,
        "{} refresh events for {checkpoints} checkpoints",
        extra.len()
    );
    assert!(
        extra.len() < 100,
        "60,000 re-sent alerts cost {} events",
        extra.len()
    );

    // 20:00 — restart: every alert is still firing, and will be for at least
    // lease_horizon more.
    let now = clock.now();
    let horizon = s.pipeline.ingest.settings.lease_horizon;
    s.stop();
    let s = Server::open(dir.path(), &clock, |_| {});
    assert_eq!(s.pipeline.alerts.len(), 1_000);
    assert_eq!(s.pipeline.alerts.firing_count(now), 1_000);
    assert_eq!(
        s.pipeline
            .alerts
            .firing_count(now + horizon - Duration::seconds(1)),
        1_000
    );
    for i in 0..1_000 {
        let a = s
            .pipeline
            .alerts
            .get(fleet_fingerprint(i))
            .expect("indexed");
        assert!(a.firing_at(now), "alert {i} looks expired after a restart");
    }
    assert_leases_hold(&s, "after the restart at 20:00");
}

/// Regression: Prometheus with `evaluation_interval: 1m` and the default
/// `--rules.alert.resend-delay=1m` re-sends a firing alert every *2* minutes
/// (it re-sends only when `LastSentAt + resendDelay` is strictly before the
/// evaluation time, and evaluations are exactly 1m apart), each time with
/// endsAt = evaluation + 4m; the post lands 200 ms after the evaluation.
/// A restart right after such a re-send, before the next lease checkpoint
/// writes it down, must not make the alerts expire before Prometheus' next
/// re-send: the log held an endsAt only 2m ahead, while Prometheus had said 4m.
#[tokio::test]
async fn a_restart_after_a_resend_does_not_expire_alerts_at_prometheus_real_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let start = t("2026-11-25T19:00:00Z");
    let clock = ManualClock::new(start);
    let mut s = Server::open(dir.path(), &clock, |_| {});
    let starts = start - Duration::seconds(45);
    let post_delay = Duration::milliseconds(200);
    let fleet = |evaluated: DateTime<Utc>| {
        let body: Vec<Value> = (0..10)
            .map(|i| fleet_alert(i, starts, evaluated + Duration::minutes(4)))
            .collect();
        Value::Array(body).to_string()
    };
    let all_firing = |s: &Server, when: &str| {
        let now = s.now();
        for i in 0..10 {
            let a = s
                .pipeline
                .alerts
                .get(fleet_fingerprint(i))
                .expect("indexed");
            assert!(
                a.firing_at(now),
                "{when}: node-{i:04} looks expired at {now} (stored endsAt {:?}), \
                 though Prometheus' last re-send said it fires until later",
                a.stored_ends
            );
        }
    };

    // Every 30 s for 20 minutes: the checkpoint; at even minutes Prometheus'
    // evaluation re-sends, 200 ms later.
    for tick in 0..=40 {
        let at = start + Duration::seconds(30 * tick);
        clock.set(at);
        s.pipeline.ingest.checkpoint_leases().await.unwrap();
        if tick > 0 {
            all_firing(&s, &format!("checkpoint at {at}"));
        }
        if tick % 4 == 0 {
            clock.set(at + post_delay);
            if tick > 0 {
                all_firing(&s, &format!("just before the re-send evaluated at {at}"));
            }
            let r = s.post("/api/v2/alerts", fleet(at)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            all_firing(&s, &format!("after the re-send evaluated at {at}"));
            if at == start + Duration::minutes(10) {
                // 19:10:00.2 — restart before the 19:10:30 checkpoint.
                s.stop();
                s = Server::open(dir.path(), &clock, |_| {});
                all_firing(&s, "right after the restart");
            }
        }
    }
    let received = s
        .all_events()
        .iter()
        .filter(|e| e.kind.name() == "alert.received")
        .count();
    assert_eq!(received, 10, "no alert expired and fired again");
}

/// What is news is stored, one event per change; what is not, is not.
#[tokio::test]
async fn changes_resolves_and_refires_each_add_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let s = Server::open(dir.path(), &clock, |_| {});
    let t0 = clock.now();
    let alert = |summary: &str, starts: DateTime<Utc>, ends: DateTime<Utc>| {
        json!([{
            "labels": {"alertname": "HighCPU", "instance": "web-1:9100", "job": "node"},
            "annotations": {"summary": summary},
            "startsAt": go_time(starts),
            "endsAt": go_time(ends),
            "generatorURL": "http://prometheus-0:9090/graph?g0.expr=cpu",
        }])
        .to_string()
    };
    let four_min = Duration::minutes(4);

    // (minutes since 19:00, what happens, body at that time, kinds it adds)
    type Step<'a> = (
        i64,
        &'a str,
        Box<dyn Fn(DateTime<Utc>) -> String + 'a>,
        &'a [&'a str],
    );
    let timeline: Vec<Step> = vec![
        (
            0,
            "fires",
            Box::new(|now| alert("CPU at 91%", t0, now + four_min)),
            &["alert.received"],
        ),
        (
            1,
            "re-sent unchanged",
            Box::new(|now| alert("CPU at 91%", t0, now + four_min)),
            &[],
        ),
        (
            2,
            "annotation changed",
            Box::new(|now| alert("CPU at 97%", t0, now + four_min)),
            &["alert.received"],
        ),
        (
            3,
            "re-sent with the new annotation",
            Box::new(|now| alert("CPU at 97%", t0, now + four_min)),
            &[],
        ),
        (
            4,
            "the HA twin saw it start earlier",
            Box::new(|now| alert("CPU at 97%", t0 - Duration::minutes(1), now + four_min)),
            &["alert.received"],
        ),
        (
            4,
            "the first Prometheus again, later startsAt: not news",
            Box::new(|now| alert("CPU at 97%", t0, now + four_min)),
            &[],
        ),
        (
            5,
            "resolved: endsAt in the past",
            Box::new(|now| alert("CPU at 97%", t0, now - Duration::seconds(10))),
            &["alert.resolved"],
        ),
        (
            6,
            "the resolved alert re-sent",
            Box::new(|now| alert("CPU at 97%", t0, now - Duration::seconds(70))),
            &[],
        ),
        (
            10,
            "fires again",
            Box::new(|now| alert("CPU at 93%", now, now + four_min)),
            &["alert.received"],
        ),
        (
            11,
            "re-sent",
            Box::new(|now| alert("CPU at 93%", t0 + Duration::minutes(10), now + four_min)),
            &[],
        ),
        // Prometheus was down for 10 minutes: the stored endsAt (19:15) ran out.
        (
            21,
            "re-sent after its endsAt ran out",
            Box::new(|now| alert("CPU at 93%", t0 + Duration::minutes(10), now + four_min)),
            &["alert.received"],
        ),
    ];
    for (minute, what, body, adds) in timeline {
        clock.set(t0 + Duration::minutes(minute));
        let before = s.last_seq();
        let r = s.post("/api/v2/alerts", body(clock.now())).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
        let added = s.events_after(before);
        assert_eq!(kinds(&added), adds, "minute {minute}: {what}");
    }
    let fp = Fingerprint::of(&labels(&[
        ("alertname", "HighCPU"),
        ("instance", "web-1:9100"),
        ("job", "node"),
    ]));
    assert!(s.all_events().iter().all(|e| e.key == fp.to_string()));
    assert!(s.pipeline.alerts.get(fp).unwrap().firing_at(clock.now()));
}

// ---------------------------------------------------------------------------
// Reading the log over HTTP
// ---------------------------------------------------------------------------

/// `GET /api/v1/events` pages by seq (`after`, `limit`, `next_after`) and
/// filters by `kind`, `key`, `since`, `until`; bad parameters get 400 naming
/// the parameter.
#[tokio::test]
async fn events_api_pages_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T18:50:00Z"));
    let s = Server::open(dir.path(), &clock, |_| {});

    // 18:50 the webhook group fires (seq 1–3); 18:51 25 Prometheus alerts
    // (4–28); 18:52 the webhook group partly resolves (29), 18:53 resolves
    // (30, 31).
    s.post("/ingest/alertmanager", FIRING).await;
    clock.advance(Duration::minutes(1));
    let body: Vec<Value> = (0..25)
        .map(|i| fleet_alert(i, clock.now(), clock.now() + Duration::minutes(4)))
        .collect();
    s.post("/api/v2/alerts", Value::Array(body).to_string())
        .await;
    clock.advance(Duration::minutes(1));
    s.post("/ingest/alertmanager", PARTIAL).await;
    clock.advance(Duration::minutes(1));
    s.post("/ingest/alertmanager", RESOLVED).await;
    assert_eq!(s.last_seq(), 31);

    // Paging through with limit=10: 10, 10, 10, 1, then an empty page.
    let mut after = 0;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let r = s
            .get(&format!("/api/v1/events?after={after}&limit=10"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.json();
        assert_eq!(page["head"], 31);
        let events = page["events"].as_array().unwrap().clone();
        pages.push(events.len());
        if events.is_empty() {
            assert_eq!(page["next_after"], after, "an empty page stays put");
            break;
        }
        assert_eq!(page["next_after"], events.last().unwrap()["seq"]);
        after = page["next_after"].as_u64().unwrap();
        seen.extend(events);
    }
    assert_eq!(pages, [10, 10, 10, 1, 0]);
    assert_eq!(
        seen,
        serde_json::to_value(s.all_events())
            .unwrap()
            .as_array()
            .unwrap()
            .clone(),
        "pages put together are the log"
    );

    // Filters. (query, seqs it returns)
    let sda = "01381f054fec484f";
    let table: Vec<(String, Vec<u64>)> = vec![
        // Default limit (100) covers the whole log.
        ("".into(), (1..=31).collect()),
        ("kind=alert.resolved".into(), vec![29, 30, 31]),
        ("kind=alert.resolved,alert.acked".into(), vec![29, 30, 31]),
        (format!("key={sda}"), vec![1, 29]),
        (format!("key={sda}&kind=alert.received"), vec![1]),
        (
            "kind=alert.received&after=20&limit=3".into(),
            vec![21, 22, 23],
        ),
        // since is inclusive, until exclusive (occurred_at, URL-encoded).
        (
            "since=2026-11-25T18%3A51%3A00Z&until=2026-11-25T18%3A52%3A00Z".into(),
            (4..=28).collect(),
        ),
        (
            "since=2026-11-25T18%3A52%3A00%2B00%3A00".into(),
            vec![29, 30, 31],
        ),
        ("key=nobody".into(), vec![]),
    ];
    for (query, want) in table {
        let r = s.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        let got: Vec<u64> = r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(got, want, "?{query}");
    }

    // The stored event as JSON: envelope, kind and payload side by side.
    let r = s.get("/api/v1/events?limit=1").await;
    let e = &r.json()["events"][0];
    assert_eq!(e["seq"], 1);
    assert_eq!(e["kind"], "alert.received");
    assert_eq!(e["key"], sda);
    assert_eq!(e["source"], "alertmanager");
    assert_eq!(e["payload"]["fingerprint"], sda);
    assert_eq!(e["payload"]["labels"]["device"], "sda");

    // Bad parameters. (query, the parameter named)
    let table = [
        ("limit=0", "limit"),                             // a page of nothing
        ("limit=10001", "limit"),                         // over MAX_LIMIT
        ("limit=ten", "limit"),                           // not a number
        ("after=-1", "after"),                            // seqs are never negative
        ("after=1.5", "after"),                           // nor fractional
        ("kind=nope", "kind"),                            // not an event kind
        ("kind=alert.received,alert.fired_typo", "kind"), // one bad kind among good ones
        ("since=garbage", "since"),                       // not RFC 3339
        ("until=2026-11-25", "until"),                    // a date without a time
    ];
    for (query, param) in table {
        let r = s.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "?{query}: {}", r.text());
        let body = r.json();
        assert_eq!(body["field"], param, "?{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("{param}: ")),
            "?{query}: {error}"
        );
    }
    assert_eq!(s.last_seq(), 31);
}

// ---------------------------------------------------------------------------
// Health, readiness, metrics
// ---------------------------------------------------------------------------

/// `/-/healthy` and `/-/ready` answer like Alertmanager's; `/metrics` is the
/// Prometheus text format and names the log and ingest counters once
/// something was posted. Once shutdown begins, not ready and ingest refused
/// with 503, nothing stored.
#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let s = Server::open(dir.path(), &clock, |_| {});

    let r = s.get("/-/healthy").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Healthy"), "{}", r.text());
    let r = s.get("/-/ready").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Ready"), "{}", r.text());

    // Some accepted and one refused post.
    let body = json!([fleet_alert(
        7,
        clock.now(),
        clock.now() + Duration::minutes(4)
    )])
    .to_string();
    assert_eq!(
        s.post("/api/v2/alerts", body.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.post("/ingest/alertmanager", FIRING).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.post("/api/v2/alerts", "nope").await.status,
        StatusCode::BAD_REQUEST
    );

    let r = s.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let text = r.text();
    for name in [
        "fenghuo_events_appended_total",
        "fenghuo_ingest_requests_total",
        "fenghuo_log_last_seq",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "/metrics lacks {name}:\n{text}"
        );
    }
    assert!(
        text.contains(r#"endpoint="alertmanager_v2""#),
        "requests are labelled by endpoint:\n{text}"
    );

    // Shutdown begins.
    s.shutdown.send(true).unwrap();
    let r = s.get("/-/ready").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.get("/-/healthy").await.status, StatusCode::OK);
    let before = s.last_seq();
    let later = json!([fleet_alert(
        8,
        clock.now(),
        clock.now() + Duration::minutes(4)
    )])
    .to_string();
    let r = s.post("/api/v2/alerts", later).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    assert_eq!(s.last_seq(), before);
}

/// The same delivery racing itself (a sender's retry while the first try is
/// still in flight, or two Alertmanagers of an HA pair) is stored once; two
/// racing *different* reports of one alert are both stored, in some order,
/// and the index ends on the one the log holds last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_are_stored_once_and_racing_changes_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t("2026-11-25T19:00:00Z"));
    let s = Arc::new(Server::open(dir.path(), &clock, |_| {}));
    let ends = clock.now() + Duration::minutes(4);
    let starts = clock.now();
    let body: Vec<Value> = (0..20).map(|i| fleet_alert(i, starts, ends)).collect();
    let body = Value::Array(body).to_string();

    // 16 identical deliveries of 20 new alerts at once: 20 events.
    let posts: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let body = body.clone();
            tokio::spawn(async move { s.post("/api/v2/alerts", body).await.status })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), StatusCode::OK);
    }
    let received = s
        .all_events()
        .iter()
        .filter(|e| e.kind.name() == "alert.received")
        .count();
    assert_eq!(
        received, 20,
        "identical racing deliveries stored more than once"
    );

    // 8 different summaries of alert 0 at once: each is a change, so each is
    // stored, and the index agrees with the last one in the log.
    let before = s.last_seq();
    let posts: Vec<_> = (0..8)
        .map(|n| {
            let s = s.clone();
            let mut alert = fleet_alert(0, starts, ends);
            alert["annotations"]["summary"] = Value::from(format!("revision {n}"));
            let body = Value::Array(vec![alert]).to_string();
            tokio::spawn(async move { s.post("/api/v2/alerts", body).await.status })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), StatusCode::OK);
    }
    let changes = s.events_after(before);
    assert_eq!(changes.len(), 8, "{:?}", kinds(&changes));
    let last = changes.last().unwrap();
    let indexed = s.pipeline.alerts.get(fleet_fingerprint(0)).unwrap();
    assert_eq!(indexed.last_seq, last.seq);
}
