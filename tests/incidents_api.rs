//! Acting on incidents over HTTP: the API, and the action links inside
//! every page (a GET confirms and changes nothing; the POST acts, once; a
//! forged, expired or reused link is refused with a page that says so).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Duration;
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

const CONFIG: &str = r#"
notify:
  external_url: https://fenghuo.example.com/
route:
  receiver: team
  group_by: [team]
  group_wait: 0s
  escalation: platform
receivers:
  - name: team
  - name: primary
escalation_policies:
  - name: platform
    steps:
      - notify: {via: [primary]}
      - wait: 5m
      - notify: {via: [primary]}
"#;

struct Server {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    router: axum::Router,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse(CONFIG).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let clock = ManualClock::new("2026-11-25T19:00:00Z".parse().unwrap());
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (tx, rx) = watch::channel(false);
        let s = Server {
            clock,
            router: app(AppState::new(pipeline.clone(), rx)),
            pipeline,
            _shutdown: tx,
            _dir: dir,
        };
        let (status, _) = s
            .send(
                Request::post("/api/v2/alerts")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        json!([{"labels": {"alertname": "Down", "team": "<script>alert(1)</script>"}}])
                            .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // What the dispatch loop does right after a commit, at this same
        // instant: a commit decides on the alerts it brings only while
        // passes are quick (`Dispatcher::wants` has a wall-clock budget), so
        // on a loaded machine the decisions come from the loop instead.
        s.pipeline.dispatcher.step().await.unwrap();
        s
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn post_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (status, text) = self
            .send(
                Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await;
        // What the dispatch loop does right after a commit, at this same
        // instant: a commit decides on the alerts it brings only while
        // passes are quick (`Dispatcher::wants` has a wall-clock budget), so
        // on a loaded machine the decisions come from the loop instead.
        self.pipeline.dispatcher.step().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn incident(&self) -> fenghuo::escalate::incident::Incident {
        self.pipeline.incidents.all().remove(0)
    }

    /// The action links of the escalation page to `primary`, by label, as
    /// paths on this server.
    fn links(&self) -> Vec<(String, String)> {
        let now = self.clock.now();
        let pending = self.pipeline.outbox.state().pending();
        let page = pending
            .iter()
            .find(|p| p.receiver == "primary")
            .expect("an escalation page is due");
        let msg = self.pipeline.outbox.message(page, now);
        msg.actions
            .iter()
            .map(|l| {
                let path = l
                    .url
                    .strip_prefix("https://fenghuo.example.com")
                    .expect("links point at external_url")
                    .to_string();
                (l.label.clone(), path)
            })
            .collect()
    }
}

#[tokio::test]
async fn a_page_link_confirms_on_get_and_acts_once_on_post() {
    let s = Server::new().await;
    let links = s.links();
    let labels: Vec<&str> = links.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["Acknowledge", "Snooze 1h", "Resolve"]);
    let ack = links[0].1.clone();

    // A link preview fetches it: a confirmation page, nothing changes.
    let (status, html) = s
        .send(Request::get(&ack).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert!(html.contains("As <b>primary</b>"), "{html}");
    assert!(!html.contains("<script>alert"), "escaped: {html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(s.incident().ack.is_none(), "a GET acknowledges nothing");

    // The click.
    let (status, html) = s
        .send(Request::post(&ack).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let incident = s.incident();
    assert_eq!(incident.ack.as_ref().unwrap().by, "primary");
    // Later messages of the incident show it, and offer what fits now.
    let msg_links: Vec<String> = s.links().into_iter().map(|(l, _)| l).collect();
    assert_eq!(msg_links, ["Unacknowledge", "Resolve"]);

    // (what is sent, the status wanted, what the page must say)
    let mut forged = ack.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        (ack.clone(), StatusCode::CONFLICT, "already used"),
        (forged, StatusCode::FORBIDDEN, "not valid"),
        (
            "/act/garbage".to_string(),
            StatusCode::FORBIDDEN,
            "not valid",
        ),
    ];
    let before = s.pipeline.log.last_seq();
    for (path, want, says) in cases {
        let (status, html) = s
            .send(Request::post(&path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, want, "{path}: {html}");
        assert!(html.contains(says), "{path}: {html}");
    }
    assert_eq!(s.pipeline.log.last_seq(), before, "nothing stored");
}

#[tokio::test]
async fn an_expired_link_is_refused_with_a_page_that_says_so() {
    let s = Server::new().await;
    let resolve = s.links()[2].1.clone();
    s.clock.advance(Duration::hours(25));
    for req in [
        Request::get(&resolve).body(Body::empty()).unwrap(),
        Request::post(&resolve).body(Body::empty()).unwrap(),
    ] {
        let (status, html) = s.send(req).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("expired"), "{html}");
    }
    assert!(s.incident().is_open());
}

/// (request, the status wanted, what the answer names).
#[tokio::test]
async fn the_incident_api_acts_and_refuses_what_does_not_fit() {
    let s = Server::new().await;
    let id = s.incident().id;
    let (status, list) = s
        .send(
            Request::get("/api/v1/incidents")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "open");
    assert_eq!(list[0]["escalation"]["policy"], "platform");

    let cases = [
        (
            format!("/api/v1/incidents/{id}/ack"),
            json!({}),
            StatusCode::BAD_REQUEST,
            "by",
        ),
        (
            format!("/api/v1/incidents/{id}/ack"),
            json!({"by": "bob"}),
            StatusCode::OK,
            "",
        ),
        (
            format!("/api/v1/incidents/{id}/ack"),
            json!({"by": "eve"}),
            StatusCode::CONFLICT,
            "already acknowledged by bob",
        ),
        (
            format!("/api/v1/incidents/{id}/shrug"),
            json!({"by": "eve"}),
            StatusCode::NOT_FOUND,
            "action",
        ),
        (
            "/api/v1/incidents/inc-999/ack".to_string(),
            json!({"by": "eve"}),
            StatusCode::NOT_FOUND,
            "inc-999",
        ),
        (
            format!("/api/v1/incidents/{id}/snooze"),
            json!({"by": "bob"}),
            StatusCode::BAD_REQUEST,
            "until",
        ),
        (
            format!("/api/v1/incidents/{id}/resolve"),
            json!({"by": "bob", "reason": "fixed"}),
            StatusCode::OK,
            "",
        ),
        (
            format!("/api/v1/incidents/{id}/unack"),
            json!({"by": "bob"}),
            StatusCode::CONFLICT,
            "already resolved",
        ),
    ];
    for (uri, body, want, names) in cases {
        let (status, answer) = s.post_json(&uri, body.clone()).await;
        assert_eq!(status, want, "{uri} {body}: {answer}");
        assert!(answer.to_string().contains(names), "{uri} {body}: {answer}");
    }
    let (_, shown) = s
        .send(
            Request::get(format!("/api/v1/incidents/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["closedBy"], "bob");
}

/// A PagerDuty-style `acknowledge` on /api/v1/events acknowledges the
/// incident of its alert; `resolve` of its last alert resolves it.
#[tokio::test]
async fn pagerduty_acknowledge_and_resolve_act_on_the_incident() {
    let s = Server::new().await;
    let event = |action: &str| {
        json!({
            "routing_key": "k",
            "event_action": action,
            "dedup_key": "disk-7",
            "payload": {"summary": "disk full", "source": "node-7", "severity": "critical"}
        })
    };
    let (status, answer) = s.post_json("/api/v1/events", event("trigger")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let pd = s
        .pipeline
        .incidents
        .open()
        .into_iter()
        .find(|i| i.group.group_labels.values().all(|v| !v.contains("script")))
        .expect("the PagerDuty alert opened an incident");
    let (status, _) = s.post_json("/api/v1/events", event("acknowledge")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let acked = s.pipeline.incidents.get(&pd.id).unwrap();
    assert_eq!(acked.ack.as_ref().unwrap().by, "pagerduty-event");
    let (status, _) = s.post_json("/api/v1/events", event("resolve")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!s.pipeline.incidents.get(&pd.id).unwrap().is_open());
}
