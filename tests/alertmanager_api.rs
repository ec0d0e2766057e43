//! Alertmanager API v2, read side, through the router: what `amtool` and
//! karma read. A manual clock decides what is still firing.

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

struct Server {
    clock: ManualClock,
    router: axum::Router,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn new(yaml: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let clock = ManualClock::new("2026-11-25T19:00:00Z".parse().unwrap());
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (tx, rx) = watch::channel(false);
        Server {
            clock,
            router: app(AppState::new(pipeline, rx)),
            _shutdown: tx,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, body: Value) {
        let req = Request::post("/api/v2/alerts")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        assert_eq!(self.send(req).await.0, StatusCode::OK);
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

const ROUTES: &str = "route:\n  receiver: oncall\n  routes:\n    - matchers: ['team=\"db\"']\n      receiver: db\n      continue: true\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n\
receivers:\n  - name: oncall\n  - name: db\n  - name: pager\n";

#[tokio::test]
async fn alerts_are_listed_in_alertmanager_shape_until_they_end() {
    let s = Server::new(ROUTES);
    let now = s.clock.now();
    // t=0: three alerts; C ends at t+2m.
    s.post(json!([
        {"labels": {"alertname": "A", "team": "db", "severity": "critical"}},
        {"labels": {"alertname": "B", "team": "web"}, "annotations": {"summary": "b"}},
        {"labels": {"alertname": "C"}, "endsAt": (now + Duration::minutes(2)).to_rfc3339()},
    ]))
    .await;

    let (status, all) = s.get("/api/v2/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&all), ["A", "B", "C"]);
    let a = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "A")
        .unwrap();
    // A goes to db (continue) and then to pager; fingerprint is Alertmanager's.
    assert_eq!(a["receivers"], json!([{"name": "db"}, {"name": "pager"}]));
    assert_eq!(
        a["status"],
        json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(a["startsAt"], "2026-11-25T19:00:00.000Z");

    // (query, alerts listed) — one row per filter.
    let table: &[(&str, &[&str])] = &[
        ("filter=team%3D%22db%22", &["A"]),
        ("filter=team%3D~%22db%7Cweb%22", &["A", "B"]),
        ("filter=alertname%21%3DA&filter=alertname%21%3DB", &["C"]),
        ("receiver=pager", &["A"]),
        ("receiver=oncall", &["B", "C"]),
        ("active=false", &[]),
        ("silenced=false&inhibited=false", &["A", "B", "C"]),
    ];
    for (query, want) in table {
        let (status, list) = s.get(&format!("/api/v2/alerts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(names(&list), *want, "{query}");
    }

    // t+3m: C's endsAt has passed; it is no longer listed.
    s.clock.advance(Duration::minutes(3));
    let (_, later) = s.get("/api/v2/alerts").await;
    assert_eq!(names(&later), ["A", "B"]);
}

#[tokio::test]
async fn bad_filters_are_refused_by_name() {
    let s = Server::new("");
    // (query, param named in the answer)
    let table = [
        ("filter=team%3D~%22%28%22", "filter"), // a regex that does not compile
        ("receiver=%28", "receiver"),
        ("active=maybe", "active"),
    ];
    for (query, param) in table {
        let (status, body) = s.get(&format!("/api/v2/alerts?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["field"], param, "{query}: {body}");
    }
}

#[tokio::test]
async fn status_and_receivers_show_the_config_without_secrets() {
    let yaml = format!(
        "{ROUTES}  - name: hook\n    webhook_configs:\n      - url: http://hooks.invalid/s3cr3t-token\n"
    );
    let yaml = yaml.replace("receiver: oncall\n  routes", "receiver: hook\n  routes");
    let s = Server::new(&yaml);
    let (status, receivers) = s.get("/api/v2/receivers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        receivers,
        json!([{"name": "oncall"}, {"name": "db"}, {"name": "pager"}, {"name": "hook"}])
    );
    let (_, st) = s.get("/api/v2/status").await;
    let original = st["config"]["original"].as_str().unwrap();
    assert!(original.contains("receiver: hook"), "{original}");
    assert!(!original.contains("s3cr3t"), "{original}");
    assert_eq!(st["cluster"]["status"], "disabled");
}
