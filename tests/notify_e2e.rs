//! The newcomer's path, end to end with the real binary: `fenghuo serve`
//! with a DingTalk robot (signed) and an SMTP server in `fenghuo.yaml`; an
//! alert is posted; one well-formatted message per group arrives on each,
//! retried through an outage, and a `kill -9` and restart sends nothing
//! twice.
//!
//! The DingTalk robot is a local HTTP server that checks the signature as
//! DingTalk documents it; the SMTP server is the real aiosmtpd.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine;
use hmac::{KeyInit, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use support::smtp::{Smtp, tools_present};

const SECRET: &str = "SEC0123456789abcdef";

/// A DingTalk custom robot: verifies `timestamp` + `sign`, answers 503 to
/// the first `outage` posts, then `{"errcode":0}`.
#[derive(Clone, Default)]
struct Robot {
    accepted: Arc<Mutex<Vec<Value>>>,
    refused: Arc<Mutex<usize>>,
    outage: Arc<Mutex<usize>>,
}

async fn robot(
    State(robot): State<Robot>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let ts = q.get("timestamp").cloned().unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}\n{SECRET}").as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if q.get("sign") != Some(&want) || q.get("access_token").map(String::as_str) != Some("tok") {
        return (
            StatusCode::OK,
            r#"{"errcode":310000,"errmsg":"sign not match"}"#.into(),
        );
    }
    {
        let mut outage = robot.outage.lock();
        if *outage > 0 {
            *outage -= 1;
            *robot.refused.lock() += 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "busy".into());
        }
    }
    robot
        .accepted
        .lock()
        .push(serde_json::from_slice(&body).unwrap());
    (StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.into())
}

struct Server {
    child: tokio::process::Child,
    base: String,
}

impl Server {
    async fn start(config: &Path, data: &Path) -> Server {
        let (child, base) = support::binary::serve(config, data).await;
        Server { child, base }
    }

    async fn post(&self, alerts: Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn events(&self, kind: &str) -> Vec<Value> {
        let page: Value = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/events?kind={kind}&limit=1000",
                self.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["events"].as_array().unwrap().clone()
    }
}

impl Server {
    /// The events of `kind` once there are at least `n` (polled for up to
    /// 20 s of real time).
    async fn events_at_least(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events(kind).await;
            if events.len() >= n || Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `done` until it holds or `secs` pass (real time: the server runs
/// on the wall clock).
async fn eventually(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dingtalk_and_email_one_message_per_group_retried_and_never_duplicated() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), &[]);
    let robot_state = Robot::default();
    *robot_state.outage.lock() = 1;
    let app = axum::Router::new()
        .route("/robot/send", axum::routing::post(robot))
        .with_state(robot_state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let robot_url = format!(
        "http://{}/robot/send?access_token=tok",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    std::fs::write(dir.path().join("dingtalk-secret"), format!("{SECRET}\n")).unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
notify:
  initial_backoff: 200ms
  max_backoff: 1s
  external_url: https://fenghuo.example.com
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: oncall
    dingtalk_configs:
      - webhook_url: {robot_url}
        secret: {{ file: dingtalk-secret }}
        at: {{ mobiles: ['13800000000'] }}
    email_configs:
      - to: oncall@example.com
        from: fenghuo@example.com
        smarthost: 127.0.0.1:{port}
        require_tls: false
"#,
            port = smtp.port
        ),
    )
    .unwrap();
    let data = dir.path().join("data");

    let mut server = Server::start(&config, &data).await;
    let now = chrono::Utc::now();
    let alert = |name: &str, instance: &str| {
        serde_json::json!({
            "labels": {"alertname": name, "instance": instance, "severity": "critical"},
            "annotations": {"summary": format!("{name} on {instance}"), "description": "磁盘使用率过高"},
            "startsAt": now.to_rfc3339(),
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=up"
        })
    };
    // Two groups (by alertname): DiskFull with two alerts, NodeDown with one.
    server
        .post(serde_json::json!([
            alert("DiskFull", "db-1:9100"),
            alert("DiskFull", "db-2:9100"),
            alert("NodeDown", "web-3:9100")
        ]))
        .await;

    // One message per group on each channel; the robot's first answer was a
    // 503, retried.
    eventually("two DingTalk messages", 20, || {
        robot_state.accepted.lock().len() >= 2
    })
    .await;
    eventually("two emails", 20, || smtp.count() >= 2).await;
    assert_eq!(*robot_state.refused.lock(), 1);
    let texts: Vec<String> = robot_state
        .accepted
        .lock()
        .iter()
        .map(|b| {
            assert_eq!(b["msgtype"], "markdown");
            assert_eq!(b["at"]["atMobiles"][0], "13800000000");
            b["markdown"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    let disk = texts
        .iter()
        .find(|t| t.contains("DiskFull"))
        .expect("DiskFull message");
    assert!(disk.contains("[FIRING:2] DiskFull"), "{disk}");
    assert!(
        disk.contains("db-1:9100") && disk.contains("db-2:9100"),
        "{disk}"
    );
    assert!(disk.contains("磁盘使用率过高"), "{disk}");
    assert!(disk.contains("@13800000000"), "{disk}");
    assert!(
        texts.iter().any(|t| t.contains("[FIRING:1] NodeDown")),
        "{texts:?}"
    );

    // A delivery is recorded after its answer arrives: wait for the record
    // (and before the kill below, or the restart would rightly send again).
    let sent = server.events_at_least("notification.sent", 4).await;
    let failed = server.events("notification.failed").await;
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["payload"]["class"], "http_5xx");
    assert!(
        !serde_json::to_string(&failed).unwrap().contains("tok"),
        "no token in the log"
    );

    // Fenghuo's own metrics count it, by receiver type and failure class.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for wanted in [
        r#"fenghuo_notifications_sent_total{integration="dingtalk",receiver="oncall"} 2"#,
        r#"fenghuo_notifications_sent_total{integration="email",receiver="oncall"} 2"#,
        r#"fenghuo_notifications_failed_total{integration="dingtalk",receiver="oncall",reason="http_5xx"} 1"#,
        "fenghuo_notification_latency_seconds_bucket",
        "fenghuo_notification_queue_depth",
    ] {
        assert!(metrics.contains(wanted), "{wanted} missing from\n{metrics}");
    }
    assert!(!metrics.contains("tok"), "no token in the metrics");

    // kill -9 and restart: everything was recorded as sent, nothing goes
    // out again. A canary alert posted after the restart is delivered after
    // the outbox has looked at what it carried over, so once the canary
    // arrives, anything re-sent would have arrived too.
    server.child.kill().await.unwrap();
    let server = Server::start(&config, &data).await;
    server
        .post(serde_json::json!([alert("Canary", "web-9:9100")]))
        .await;
    eventually("the canary on DingTalk", 20, || {
        robot_state.accepted.lock().len() >= 3
    })
    .await;
    eventually("the canary by email", 20, || smtp.count() >= 3).await;
    let texts: Vec<String> = robot_state
        .accepted
        .lock()
        .iter()
        .map(|b| b["markdown"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts.len(),
        3,
        "nothing sent twice after a restart: {texts:?}"
    );
    assert!(texts[2].contains("Canary"), "{texts:?}");
    assert_eq!(smtp.count(), 3, "no email sent twice after a restart");
    assert_eq!(
        server.events_at_least("notification.sent", 6).await.len(),
        6
    );

    // The status page shows the config with the secret hidden.
    let status: Value = reqwest::get(format!("{}/api/v2/status", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = status["config"]["original"].as_str().unwrap();
    assert!(!shown.contains("access_token=tok"), "{shown}");
}
