//! The delivery outbox as timelines: alerts fire, the dispatcher decides,
//! the outbox sends to a real HTTP server on 127.0.0.1 that answers as
//! scripted (503s, 429 with Retry-After, a dead port). A manual clock moves
//! time; `Outbox::step` is what the background loop runs, called at each
//! instant of the timeline. No sleeps.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{EventKind, EventQuery};
use fenghuo::ingest::alertmanager::parse_v2;
use fenghuo::notify::outbox::StepReport;
use fenghuo::pipeline::Pipeline;
use parking_lot::Mutex;

/// A scripted answer: status and `Retry-After` seconds.
type Answer = (u16, Option<u64>);

/// A webhook endpoint: records every body per path and answers from a
/// script (status, Retry-After), then 200 once the script runs out.
#[derive(Clone, Default)]
struct Endpoint {
    received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Endpoint {
    async fn start() -> (Endpoint, String) {
        let endpoint = Endpoint::default();
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (endpoint, url)
    }

    fn answer(&self, answers: &[Answer]) {
        self.script.lock().extend(answers.iter().copied());
    }

    /// Bodies accepted (2xx) at `path`.
    fn delivered(&self, path: &str) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

async fn receive(
    State(endpoint): State<Endpoint>,
    UrlPath(path): UrlPath<String>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let (status, retry_after) = endpoint.script.lock().pop_front().unwrap_or((200, None));
    if (200..300).contains(&status) {
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        endpoint.received.lock().push((path, body));
    }
    let mut headers = HeaderMap::new();
    if let Some(secs) = retry_after {
        headers.insert("retry-after", secs.to_string().parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, "")
}

/// A port nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn config(team_url: &str, backup_url: &str, extra_team: &str) -> String {
    format!(
        r#"
notify:
  retry_for: 1m
  initial_backoff: 1s
  max_backoff: 8s
  failing_after: 2
  timeout: 2s
route:
  receiver: team
  group_by: [team]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['alertname="FenghuoNotificationsFailing"']
      receiver: backup
receivers:
  - name: team
    fallback: backup
{extra_team}    webhook_configs:
      - url: {team_url}/team
  - name: backup
    webhook_configs:
      - url: {backup_url}/backup
"#
    )
}

struct Timeline {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    t0: DateTime<Utc>,
}

impl Timeline {
    fn open(yaml: &str, dir: &Path, clock: &ManualClock, t0: DateTime<Utc>) -> Timeline {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.to_path_buf();
        Timeline {
            clock: clock.clone(),
            pipeline: Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap()),
            t0,
        }
    }

    fn at_ms(&self, ms: i64) {
        self.clock.set(self.t0 + Duration::milliseconds(ms));
    }

    fn at(&self, secs: i64) {
        self.at_ms(secs * 1000);
    }

    /// Alert `name` of `team`, firing for an hour, in a POST of its own.
    async fn fire(&self, name: &str, team: &str) {
        self.fire_all(&[(name, team)]).await
    }

    /// Alerts `(name, team)`, firing for an hour, in one POST, as Prometheus
    /// sends what it evaluated together: with `group_wait: 0s` a group is
    /// flushed in the commit of the POST that opens it.
    async fn fire_all(&self, alerts: &[(&str, &str)]) {
        let body: Vec<String> = alerts
            .iter()
            .map(|(name, team)| {
                format!(
                    r#"{{"labels":{{"alertname":"{name}","team":"{team}","severity":"critical"}},"annotations":{{"summary":"{name} on {team}"}},"startsAt":"{}","endsAt":"{}"}}"#,
                    self.clock.now().to_rfc3339(),
                    (self.clock.now() + Duration::hours(1)).to_rfc3339()
                )
            })
            .collect();
        let body = format!("[{}]", body.join(","));
        let alerts = parse_v2(body.as_bytes(), self.clock.now(), Duration::minutes(5)).unwrap();
        self.pipeline
            .ingest
            .alerts("prometheus", alerts)
            .await
            .unwrap();
    }

    async fn resolve(&self, name: &str, team: &str) {
        let body = format!(
            r#"[{{"labels":{{"alertname":"{name}","team":"{team}","severity":"critical"}},"annotations":{{"summary":"{name} on {team}"}},"startsAt":"{}","endsAt":"{}"}}]"#,
            self.t0.to_rfc3339(),
            self.clock.now().to_rfc3339()
        );
        let alerts = parse_v2(body.as_bytes(), self.clock.now(), Duration::minutes(5)).unwrap();
        self.pipeline
            .ingest
            .alerts("prometheus", alerts)
            .await
            .unwrap();
    }

    /// The dispatcher decides, then the outbox delivers what is ready.
    async fn step(&self) -> StepReport {
        self.pipeline.dispatcher.step().await.unwrap();
        self.pipeline.outbox.step().await.unwrap()
    }

    /// Outcomes recorded so far, one line each.
    fn outcomes(&self) -> Vec<String> {
        let events = self
            .pipeline
            .log
            .read(&EventQuery {
                limit: 10_000,
                ..Default::default()
            })
            .unwrap();
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::NotificationSent(s) => Some(format!(
                    "sent {} attempt {}{}",
                    s.target.receiver,
                    s.attempt,
                    if s.digest {
                        format!(" digest of {}", s.target.due_seqs.len())
                    } else {
                        String::new()
                    }
                )),
                EventKind::NotificationFailed(f) => Some(format!(
                    "failed {} attempt {} {}{}{}",
                    f.target.receiver,
                    f.attempt,
                    f.class,
                    if f.retry_at.is_some() {
                        " retry"
                    } else {
                        " gave up"
                    },
                    f.fallback
                        .as_ref()
                        .map(|r| format!(" -> {r}"))
                        .unwrap_or_default()
                )),
                EventKind::NotificationSkipped(s) => {
                    Some(format!("skipped {} ({})", s.target.receiver, s.reason))
                }
                _ => None,
            })
            .collect()
    }

    fn retry_at(&self) -> Option<DateTime<Utc>> {
        let events = self
            .pipeline
            .log
            .read(&EventQuery {
                limit: 10_000,
                ..Default::default()
            })
            .unwrap();
        events.iter().rev().find_map(|e| match &e.kind {
            EventKind::NotificationFailed(f) => f.retry_at,
            _ => None,
        })
    }

    fn close(self) {
        self.pipeline.close();
    }
}

fn t0() -> DateTime<Utc> {
    "2026-11-25T19:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn one_message_per_group_and_nothing_twice() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url, &url, ""), dir.path(), &clock, t0());

    t.at(0);
    t.fire_all(&[("DiskFull", "x"), ("HighLatency", "x"), ("DiskFull", "y")])
        .await;
    assert_eq!(t.step().await.sent, 2, "one message per group");
    assert_eq!(
        t.step().await,
        StepReport::default(),
        "nothing is sent twice"
    );

    let bodies = endpoint.delivered("team");
    assert_eq!(bodies.len(), 2);
    let x = bodies
        .iter()
        .find(|b| b["groupLabels"]["team"] == "x")
        .unwrap();
    assert_eq!(x["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(x["status"], "firing");
    assert_eq!(x["version"], "4");
    assert_eq!(
        t.outcomes(),
        vec!["sent team attempt 1", "sent team attempt 1"]
    );
    // Delivered everywhere: the outbox carries nothing more.
    assert!(t.pipeline.outbox.state().pending().is_empty());
    t.close();
}

#[tokio::test]
async fn retried_with_backoff_through_an_outage() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url, &url, ""), dir.path(), &clock, t0());
    endpoint.answer(&[(503, None), (502, None)]);

    // (at ms, outcomes wanted so far)
    t.at(0);
    t.fire("DiskFull", "x").await;
    t.step().await;
    assert_eq!(t.outcomes(), vec!["failed team attempt 1 http_5xx retry"]);
    // First backoff is 1s ± 20%: nothing before 0.8s.
    let first_retry = t.retry_at().unwrap();
    assert!(
        first_retry >= t0() + Duration::milliseconds(800)
            && first_retry <= t0() + Duration::milliseconds(1200)
    );
    t.at_ms(700);
    assert_eq!(t.step().await, StepReport::default());
    t.clock.set(first_retry);
    t.step().await;
    // Second backoff is 2s ± 20%.
    let second_retry = t.retry_at().unwrap();
    let gap = second_retry - first_retry;
    assert!(
        gap >= Duration::milliseconds(1600) && gap <= Duration::milliseconds(2400),
        "{gap}"
    );
    t.clock.set(second_retry);
    t.step().await;
    assert_eq!(
        t.outcomes(),
        vec![
            "failed team attempt 1 http_5xx retry",
            "failed team attempt 2 http_5xx retry",
            // failing_after: 2 — Fenghuo pages about itself, via its route.
            "sent backup attempt 1",
            "sent team attempt 3",
        ]
    );
    assert_eq!(endpoint.delivered("team").len(), 1);
    let backup = endpoint.delivered("backup");
    assert_eq!(backup.len(), 1);
    assert_eq!(
        backup[0]["commonLabels"]["alertname"],
        "FenghuoNotificationsFailing"
    );
    // The success resolved it: its resolve goes out at the group's next
    // flush (group_interval 5m).
    let fp = fenghuo::evaluate::Fingerprint::of(
        &[
            ("alertname", "FenghuoNotificationsFailing"),
            ("integration", "webhook[0]"),
            ("receiver", "team"),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let alert = t.pipeline.store.get(fp).unwrap();
    assert!(!alert.firing_at(t.clock.now()), "resolved by the success");
    t.at(400);
    t.step().await;
    let backup = endpoint.delivered("backup");
    assert_eq!(backup.len(), 2);
    assert_eq!(backup[1]["status"], "resolved");
    t.close();
}

#[tokio::test]
async fn rate_limited_429_waits_for_retry_after() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url, &url, ""), dir.path(), &clock, t0());
    endpoint.answer(&[(429, Some(30))]);

    t.at(0);
    t.fire("DiskFull", "x").await;
    t.step().await;
    assert!(t.retry_at().unwrap() >= t0() + Duration::seconds(30));
    t.at(29);
    assert_eq!(
        t.step().await,
        StepReport::default(),
        "Retry-After is honoured"
    );
    t.at(31);
    assert_eq!(t.step().await.sent, 1);
    assert_eq!(
        t.outcomes(),
        vec![
            "failed team attempt 1 rate_limited retry",
            "sent team attempt 2"
        ]
    );
    t.close();
}

#[tokio::test]
async fn receiver_down_past_retry_for_goes_to_fallback_and_raises_self_alert() {
    let (endpoint, url) = Endpoint::start().await;
    let dead = dead_url();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&dead, &url, ""), dir.path(), &clock, t0());

    t.at(0);
    t.fire("DiskFull", "x").await;
    // Walk time forward a second at a time past retry_for (1m).
    for s in 0..=70 {
        t.at(s);
        t.step().await;
    }
    let outcomes = t.outcomes();
    let team_failures = outcomes
        .iter()
        .filter(|o| o.starts_with("failed team"))
        .count();
    assert!(
        (8..=12).contains(&team_failures),
        "backoff 1, 2, 4, then 8 (max_backoff) ±20% until retry_for (1m): {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.starts_with("failed team") && o.ends_with("gave up -> backup")),
        "{outcomes:?}"
    );
    // The page reached the fallback receiver, once.
    let backup = endpoint.delivered("backup");
    let pages: Vec<_> = backup
        .iter()
        .filter(|b| b["commonLabels"]["alertname"] == "DiskFull")
        .collect();
    assert_eq!(pages.len(), 1, "{backup:?}");
    // And Fenghuo paged about itself, through the route for its own alert.
    let selfs: Vec<_> = backup
        .iter()
        .filter(|b| b["commonLabels"]["alertname"] == "FenghuoNotificationsFailing")
        .collect();
    assert_eq!(selfs.len(), 1, "{backup:?}");
    assert_eq!(selfs[0]["commonLabels"]["receiver"], "team");
    assert_eq!(selfs[0]["commonLabels"]["integration"], "webhook[0]");
    t.close();
}

#[tokio::test]
async fn client_error_is_not_retried_and_falls_back_at_once() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url, &url, ""), dir.path(), &clock, t0());
    endpoint.answer(&[(400, None)]);

    t.at(0);
    t.fire("DiskFull", "x").await;
    t.step().await;
    t.step().await;
    assert_eq!(
        t.outcomes(),
        vec![
            "failed team attempt 1 http_4xx gave up -> backup",
            "sent backup attempt 1"
        ]
    );
    assert_eq!(endpoint.delivered("backup").len(), 1);
    t.close();
}

/// Regression: a restart while a delivery waits for its retry must send it
/// once — not drop it, not send it twice.
#[tokio::test]
async fn restart_mid_retry_sends_once() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = config(&url, &url, "");
    endpoint.answer(&[(503, None)]);

    let t = Timeline::open(&yaml, dir.path(), &clock, t0());
    t.at(0);
    t.fire("DiskFull", "x").await;
    t.step().await;
    assert_eq!(t.outcomes(), vec!["failed team attempt 1 http_5xx retry"]);
    t.close();

    // Restarted: the retry time came from the log.
    let t = Timeline::open(&yaml, dir.path(), &clock, t0());
    t.at_ms(500);
    assert_eq!(
        t.step().await,
        StepReport::default(),
        "the retry time survives the restart"
    );
    t.at(2);
    assert_eq!(t.step().await.sent, 1);
    t.close();

    // Restarted again: already sent, so nothing goes out.
    let t = Timeline::open(&yaml, dir.path(), &clock, t0());
    t.at(3);
    assert_eq!(t.step().await, StepReport::default());
    assert_eq!(
        t.outcomes(),
        vec![
            "failed team attempt 1 http_5xx retry",
            "sent team attempt 2"
        ]
    );
    assert_eq!(endpoint.delivered("team").len(), 1);
    t.close();
}

#[tokio::test]
async fn rate_limit_folds_the_surplus_into_one_digest() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let limit = "    rate_limit: { messages: 2, per: 1m }\n";
    let t = Timeline::open(&config(&url, &url, limit), dir.path(), &clock, t0());

    // At 0s, five groups fire at once: one message of the first, one digest
    // of the other four — two messages, the limit.
    t.at(0);
    for team in ["a", "b", "c", "d", "e"] {
        t.fire("DiskFull", team).await;
    }
    assert_eq!(t.step().await.sent, 2);
    assert_eq!(
        t.outcomes(),
        vec!["sent team attempt 1", "sent team attempt 1 digest of 4"]
    );
    let bodies = endpoint.delivered("team");
    assert_eq!(bodies.len(), 2);
    let digest = &bodies[1];
    assert_eq!(digest["alerts"].as_array().unwrap().len(), 4);

    // At 10s, three more groups: the limit is used up until 60s.
    t.at(10);
    for team in ["f", "g", "h"] {
        t.fire("DiskFull", team).await;
    }
    assert_eq!(t.step().await, StepReport::default());
    t.at(59);
    assert_eq!(t.step().await, StepReport::default());
    // At 60s both slots free: one single and nothing to fold… the three are
    // more than the two free slots, so one message and one digest of two.
    t.at(60);
    assert_eq!(t.step().await.sent, 2);
    assert_eq!(endpoint.delivered("team").len(), 4);
    let outcomes = t.outcomes();
    assert_eq!(
        &outcomes[2..],
        ["sent team attempt 1", "sent team attempt 1 digest of 2"]
    );
    t.close();
}

#[tokio::test]
async fn resolved_only_message_is_skipped_when_send_resolved_is_false() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = config(&url, &url, "").replace(
        "      - url: URL/team".replace("URL", &url).as_str(),
        &format!("      - url: {url}/team\n        send_resolved: false"),
    );
    let t = Timeline::open(&yaml, dir.path(), &clock, t0());

    t.at(0);
    t.fire("DiskFull", "x").await;
    t.step().await;
    t.at(10);
    t.resolve("DiskFull", "x").await;
    // group_interval is 5m: the resolved notification is due then.
    t.at(301);
    t.step().await;
    assert_eq!(
        t.outcomes(),
        vec![
            "sent team attempt 1",
            "skipped team (only resolved alerts and send_resolved is false)"
        ]
    );
    assert_eq!(endpoint.delivered("team").len(), 1);
    t.close();
}

/// Regression: a newer notification of a group replaces an older one still
/// waiting for a retry, without losing what resolved in between.
#[tokio::test]
async fn newer_notification_replaces_the_undelivered_older_one() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = config(&url, &url, "")
        .replace("group_interval: 5m", "group_interval: 10s")
        .replace("retry_for: 1m", "retry_for: 10m")
        .replace("initial_backoff: 1s", "initial_backoff: 30s")
        .replace("max_backoff: 8s", "max_backoff: 60s");
    let t = Timeline::open(&yaml, dir.path(), &clock, t0());
    endpoint.answer(&[(503, None)]);

    t.at(0);
    t.fire_all(&[("A", "x"), ("B", "x")]).await;
    t.step().await; // A, B firing: 503, retry in ~30s
    t.at(5);
    t.resolve("B", "x").await;
    t.at(11);
    t.step().await; // group_interval: A firing, B resolved — replaces the first
    let bodies = endpoint.delivered("team");
    assert_eq!(
        bodies.len(),
        1,
        "one message, not the stale one and then this"
    );
    let statuses: Vec<(String, String)> = bodies[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("A".to_string(), "firing".to_string()),
            ("B".to_string(), "resolved".to_string())
        ]
    );
    // Later, the older one's retry time passes: nothing more is sent.
    t.at(60);
    t.step().await;
    assert_eq!(endpoint.delivered("team").len(), 1);
    t.close();
}

/// A receiver's own template that breaks at run time does not drop the
/// page: the default is sent and the reason recorded with the delivery.
#[tokio::test]
async fn a_broken_receiver_template_falls_back_to_the_default_and_says_why() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Parses, but fails when rendered: there is no `ticket` variable.
    std::fs::write(dir.path().join("own.md"), "## {{ ticket.title }}\n").unwrap();
    let yaml = config(&url, &url, "").replace(
        "    webhook_configs:\n      - url: URL/team\n".replace("URL", &url).as_str(),
        &format!(
            "    dingtalk_configs:\n      - webhook_url: {url}/ding?access_token=t\n        template: {}\n",
            dir.path().join("own.md").display()
        ),
    );
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&yaml, &dir.path().join("data"), &clock, t0());

    t.at(0);
    t.fire("DiskFull", "x").await;
    assert_eq!(t.step().await.sent, 1);
    let body = &endpoint.delivered("ding")[0];
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("[FIRING:1] DiskFull"),
        "the default template: {text}"
    );
    let events = t
        .pipeline
        .log
        .read(&EventQuery {
            kinds: vec!["notification.sent".into()],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let EventKind::NotificationSent(sent) = &events[0].kind else {
        panic!()
    };
    let reason = sent
        .template_fallback
        .as_deref()
        .expect("the reason is recorded");
    assert!(
        reason.contains("own.md") && reason.contains("ticket"),
        "{reason}"
    );
    t.close();
}

/// Regression: with 20,000 groups notified at once, the serving loop's
/// planner walked every pending delivery on every wake (each outcome's
/// commit wakes it) and started a task per delivery, so the backlog
/// drained in work quadratic in its size and held a copy of every
/// delivery in a task: Alertmanager had posted all 20,000 webhooks when
/// Fenghuo had posted 5,000–7,000. Driven here as the serving loop drives
/// it: start what is ready, wait to be woken, again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_thousands_drains_in_work_proportional_to_its_size() {
    const GROUPS: usize = 2_000;
    const CONCURRENCY: usize = 1;
    // Jobs started at once per send slot (`JOBS_PER_SEND_SLOT`): a job
    // sends, frees its slot, then waits for its outcome's commit.
    const JOBS: usize = 8 * CONCURRENCY;
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = config(&url, &url, "").replace(
        "notify:\n",
        &format!("notify:\n  concurrency: {CONCURRENCY}\n"),
    );
    let t = Timeline::open(&yaml, dir.path(), &clock, t0());

    t.at(0);
    let teams: Vec<String> = (0..GROUPS).map(|i| format!("team-{i}")).collect();
    let alerts: Vec<(&str, &str)> = teams
        .iter()
        .map(|team| ("DiskFull", team.as_str()))
        .collect();
    t.fire_all(&alerts).await;
    t.pipeline.dispatcher.step().await.unwrap();
    let outbox = &t.pipeline.outbox;
    assert_eq!(outbox.state().pending().len(), GROUPS, "one due per group");

    let drained = async {
        loop {
            outbox.start_ready_until_next();
            if outbox.state().pending().is_empty() {
                break;
            }
            outbox.state().changed().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), drained)
        .await
        .expect("the backlog drains");

    assert_eq!(endpoint.delivered("team").len(), GROUPS, "every group once");
    let work = outbox.plan_work();
    // Each wake looks at the jobs started plus at most JOBS more; a job
    // wakes the loop at most twice (its outcome's commit, its end).
    // Walking the whole backlog on each wake, as before, looked at 611,427
    // deliveries here.
    let bound = (2 * JOBS as u64) * (2 * GROUPS as u64 + 10);
    assert!(
        work.visited <= bound,
        "the planner looked at {} pending deliveries in {} plans to drain {GROUPS} (bound {bound})",
        work.visited,
        work.plans
    );
    t.close();
}

/// A channel whose first send panics (a bug in it or in what it calls),
/// then sends as the real one does.
struct PanicsOnce {
    inner: Arc<dyn fenghuo::notify::Notifier>,
    panicked: std::sync::atomic::AtomicBool,
}

impl fenghuo::notify::Notifier for PanicsOnce {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn send_resolved(&self) -> bool {
        self.inner.send_resolved()
    }
    fn render(
        &self,
        msg: &fenghuo::notify::Message,
        templates: &fenghuo::notify::Templates,
        now: DateTime<Utc>,
    ) -> fenghuo::notify::Rendered {
        self.inner.render(msg, templates, now)
    }
    fn send<'a>(
        &'a self,
        payload: &'a fenghuo::notify::Payload,
    ) -> futures::future::BoxFuture<
        'a,
        Result<fenghuo::notify::Delivered, fenghuo::notify::DeliveryError>,
    > {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("a bug in the channel");
        }
        self.inner.send(payload)
    }
}

/// Regression: a delivery task that panicked kept its delivery in flight
/// for good — never planned again, never sent, nothing in the log. A panic
/// is now a failed attempt: recorded, retried after its backoff, sent.
#[tokio::test]
async fn a_sender_that_panics_is_retried_not_stuck_in_flight() {
    let (endpoint, url) = Endpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(&config(&url, &url, ""), dir.path(), &clock, t0());
    let mut receivers = (*t.pipeline.outbox.receivers()).clone();
    let team = receivers.by_name.get_mut("team").unwrap();
    team.integrations[0].notifier = Arc::new(PanicsOnce {
        inner: team.integrations[0].notifier.clone(),
        panicked: Default::default(),
    });
    t.pipeline.outbox.set_receivers(Arc::new(receivers));

    t.at(0);
    t.fire("DiskFull", "x").await;
    let report = t.step().await;
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(t.outcomes(), vec!["failed team attempt 1 panic retry"]);
    assert!(endpoint.delivered("team").is_empty());

    // The backoff (1s ± 20%) passes: the same delivery goes out, once.
    t.clock.set(t.retry_at().unwrap());
    assert_eq!(t.step().await.sent, 1);
    assert_eq!(
        t.outcomes(),
        vec!["failed team attempt 1 panic retry", "sent team attempt 2"]
    );
    assert_eq!(endpoint.delivered("team").len(), 1);
    assert!(t.pipeline.outbox.state().pending().is_empty());
    t.close();
}
