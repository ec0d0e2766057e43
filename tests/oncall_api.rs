//! `GET /api/v1/oncall` through the router, on a manual clock.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use fenghuo::api::{AppState, app};
use fenghuo::clock::ManualClock;
use fenghuo::config::Config;
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

const CONFIG: &str = "
people:
  - name: alice
    email: alice@example.org
    time_zone: Europe/Berlin
    dingtalk: { mobile: '13800000000' }
    wecom: { user_id: alice.w }
  - name: bob
    feishu: { open_id: ou_bob }
    slack: { user_id: U0BOB }
schedules:
  - name: platform
    time_zone: Europe/Berlin
    layers:
      - rotation: daily
        handoff: '09:00'
        start: 2026-03-02
        people: [alice, bob]
    overrides:
      - person: bob
        replaces: alice
        from: 2026-03-04T12:00:00+01:00
        to: 2026-03-04T14:00:00+01:00
";

struct Server {
    clock: ManualClock,
    router: axum::Router,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse(CONFIG).unwrap();
        config.data_dir = dir.path().to_path_buf();
        // Monday 2 March 2026, 10:00 in Berlin.
        let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (tx, rx) = watch::channel(false);
        Server {
            clock,
            router: app(AppState::new(pipeline, rx)),
            _shutdown: tx,
            _dir: dir,
        }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn answers_who_is_on_call_now_with_contact_points_and_the_shift() {
    let s = Server::new();
    let (status, body) = s.get("/api/v1/oncall?schedule=platform").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "schedule": "platform",
            "time_zone": "Europe/Berlin",
            "at": "2026-03-02T09:00:00Z",
            "on_call": [{
                "name": "alice",
                "email": "alice@example.org",
                "time_zone": "Europe/Berlin",
                "dingtalk": {"mobile": "13800000000"},
                "wecom": {"user_id": "alice.w"},
            }],
            "shift": {"start": "2026-03-02T08:00:00Z", "end": "2026-03-03T08:00:00Z"},
            "next": [],
        })
    );
    // The clock moves on: bob's turn.
    s.clock.advance(Duration::days(1));
    let (_, body) = s.get("/api/v1/oncall?schedule=platform").await;
    assert_eq!(body["on_call"][0]["name"], "bob");
    assert_eq!(body["on_call"][0]["feishu"], json!({"open_id": "ou_bob"}));
    assert_eq!(body["on_call"][0]["slack"], json!({"user_id": "U0BOB"}));
}

#[tokio::test]
async fn at_a_given_time_with_the_next_handoffs() {
    let s = Server::new();
    // Wednesday 4 March, 12:30 in Berlin: bob covers alice until 14:00.
    let (status, body) = s
        .get("/api/v1/oncall?schedule=platform&at=2026-03-04T12:30:00%2B01:00&shifts=2")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["at"], "2026-03-04T11:30:00Z");
    assert_eq!(body["on_call"][0]["name"], "bob");
    assert_eq!(
        body["shift"],
        json!({"start": "2026-03-04T11:00:00Z", "end": "2026-03-04T13:00:00Z"})
    );
    let next: Vec<(&str, &str, &str)> = body["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["start"].as_str().unwrap(),
                n["end"].as_str().unwrap(),
                n["on_call"][0]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        next,
        vec![
            ("2026-03-04T13:00:00Z", "2026-03-05T08:00:00Z", "alice"),
            ("2026-03-05T08:00:00Z", "2026-03-06T08:00:00Z", "bob"),
        ]
    );
}

#[tokio::test]
async fn bad_questions_are_refused_by_name() {
    let s = Server::new();
    // (query, status, field or None, what the message says)
    let cases: &[(&str, StatusCode, Option<&str>, &str)] = &[
        (
            "",
            StatusCode::BAD_REQUEST,
            Some("schedule"),
            "required; schedules: platform",
        ),
        (
            "?schedule=nope",
            StatusCode::NOT_FOUND,
            None,
            "schedule \"nope\" (schedules: platform) not found",
        ),
        (
            "?schedule=platform&at=yesterday",
            StatusCode::BAD_REQUEST,
            Some("at"),
            "not an RFC 3339 time",
        ),
        (
            "?schedule=platform&shifts=1000",
            StatusCode::BAD_REQUEST,
            Some("shifts"),
            "must be 0 to 100",
        ),
    ];
    for (query, status, field, message) in cases {
        let (got, body) = s.get(&format!("/api/v1/oncall{query}")).await;
        assert_eq!(got, *status, "{query}: {body}");
        assert_eq!(body["field"].as_str(), *field, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(message), "{query}: {error}");
    }
}
