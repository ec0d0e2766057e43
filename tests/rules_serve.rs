//! Rule files in a running pipeline, as timelines with a manual clock: the
//! rules of `rule_files:` turn events into alerts committed with their
//! cause, the dispatcher groups them, notifications come due; `absent`
//! timers wake the pipeline; a restart continues them. What each instant
//! decided is read from the log.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::ManualClock;
use fenghuo::config::Config;
use fenghuo::eventlog::{
    Event, EventKind, EventQuery, Heartbeat, InvolvedObject, K8sEvent, LabelSet, NewEvent,
};
use fenghuo::pipeline::Pipeline;
use tower::ServiceExt;

const RULES: &str = r#"
groups:
  - name: pods
    labels: { team: platform }
    rules:
      - alert: PodCrashLooping
        select:
          kind: k8s.event
          matchers: ['reason="BackOff"']
        group_by: [namespace, { pod: payload.involved_object.name }]
        count: { window: 10m, above: 2 }
        labels: { severity: warning }
        annotations:
          summary: "{{ labels.namespace }}/{{ labels.pod }} is crash-looping"
  - name: heartbeats
    labels: { team: platform }
    rules:
      - alert: HeartbeatStopped
        select: { kind: heartbeat.received }
        group_by: [name]
        absent: 15m
        labels: { severity: warning }
"#;

const CONFIG: &str = r#"
rule_files: [rules/*.yaml]
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: team
"#;

fn t0() -> DateTime<Utc> {
    "2026-11-25T19:00:00Z".parse().unwrap()
}

fn write_rules(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/platform.yaml"), text).unwrap();
}

fn config(dir: &Path) -> Config {
    std::fs::write(dir.join("fenghuo.yaml"), CONFIG).unwrap();
    let mut config = Config::load(&dir.join("fenghuo.yaml")).unwrap();
    config.data_dir = dir.join("data");
    config
}

struct Timeline {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    seen: u64,
}

impl Timeline {
    fn open(dir: &Path, clock: &ManualClock) -> Timeline {
        let pipeline = Arc::new(Pipeline::open(config(dir), Arc::new(clock.clone())).unwrap());
        Timeline {
            clock: clock.clone(),
            pipeline,
            seen: 0,
        }
    }

    fn at(&self, secs: i64) {
        self.clock.set(t0() + Duration::seconds(secs));
    }

    async fn backoff(&self, pod: &str) {
        let event = backoff_event(pod);
        let now = fenghuo::clock::Clock::now(&self.clock);
        self.pipeline
            .log
            .append(vec![NewEvent::new(
                now,
                "test",
                format!("uid-{pod}"),
                EventKind::K8sEvent(Arc::new(event)),
            )])
            .await
            .unwrap();
    }
    async fn heartbeat(&self, name: &str) {
        let now = fenghuo::clock::Clock::now(&self.clock);
        self.pipeline
            .log
            .append(vec![NewEvent::new(
                now,
                "test",
                name,
                EventKind::HeartbeatReceived(Heartbeat {
                    name: name.into(),
                    labels: LabelSet::new(),
                }),
            )])
            .await
            .unwrap();
    }

    /// Runs the pass the background loop runs when a timer is due.
    async fn step(&self) {
        // Passes until nothing more is decided, as the dispatch loop runs
        // them at this instant: what a pass commits (a rule's alert) is
        // decided on inside that commit only while passes are quick
        // (`Dispatcher::wants` has a wall-clock budget); on a loaded
        // machine the loop's next pass does it.
        while !self.pipeline.dispatcher.step().await.unwrap().is_empty() {}
    }

    /// Events recorded since the last call, one line each.
    async fn news(&mut self) -> Vec<String> {
        let events = self.events_after(self.seen).await;
        if let Some(last) = events.last() {
            self.seen = last.seq;
        }
        events.iter().map(line).collect()
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
}

fn backoff_event(pod: &str) -> K8sEvent {
    K8sEvent {
        cluster: String::new(),
        namespace: "shop".into(),
        involved_object: InvolvedObject {
            kind: "Pod".into(),
            name: pod.into(),
            uid: format!("uid-{pod}"),
            ..Default::default()
        },
        reason: "BackOff".into(),
        message: "Back-off restarting failed container".into(),
        event_type: "Warning".into(),
        count: 1,
        first_seen: None,
        last_seen: None,
        reporting_controller: "kubelet".into(),
        labels: LabelSet::new(),
        ..Default::default()
    }
}

fn line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::AlertReceived(r) => format!(
            "{} {} {}",
            &r.labels["alertname"],
            r.labels.get("pod").or(r.labels.get("name")).unwrap(),
            r.starts_at.format("%H:%M:%S")
        ),
        EventKind::AlertResolved(r) => r.reason.clone(),
        EventKind::NotificationDue(n) => format!("{} firing={}", n.group.receiver, n.firing.len()),
        EventKind::GroupScheduled(g) => g.due_at.format("%H:%M:%S").to_string(),
        EventKind::RulesLoaded(l) => format!("{} rules by {}", l.rules, l.by),
        EventKind::K8sEvent(k) => k.involved_object.name.clone(),
        EventKind::HeartbeatReceived(h) => h.name.clone(),
        _ => String::new(),
    };
    format!("{} {} {}", e.kind.name(), e.source, what)
        .trim()
        .to_string()
}

fn lines(want: &[&str]) -> Vec<String> {
    want.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_rule_alert_is_committed_with_its_cause_grouped_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), RULES);
    let clock = ManualClock::new(t0());
    let mut t = Timeline::open(dir.path(), &clock);
    assert_eq!(
        t.news().await,
        lines(&["rules.loaded fenghuo 2 rules by start-up"])
    );

    t.at(0);
    t.backoff("web-1").await;
    t.at(60);
    t.backoff("web-1").await;
    assert_eq!(
        t.news().await,
        lines(&["k8s.event test web-1", "k8s.event test web-1"])
    );
    // The third back-off in 10 minutes: the alert, its firing and its
    // group's timer are committed with it, in one transaction.
    t.at(120);
    t.backoff("web-1").await;
    let events = t.events_after(t.seen).await;
    assert!(
        events
            .iter()
            .all(|e| e.recorded_at == events[0].recorded_at),
        "one commit: {events:?}"
    );
    assert_eq!(
        t.news().await,
        lines(&[
            "k8s.event test web-1",
            "alert.received rule/pods/PodCrashLooping PodCrashLooping web-1 19:02:00",
            "alert.fired fenghuo",
            "group.scheduled fenghuo 19:02:30",
        ])
    );
    // The rule's alert is in the alert store like any other.
    let alerts = t.pipeline.store.all();
    assert_eq!(alerts.len(), 1);
    assert_eq!(&alerts[0].1.report.labels["team"], "platform");
    // The timer joins the stages' next wake; at group_wait, a page.
    assert_eq!(
        t.pipeline.dispatcher.groups().next_due(),
        Some(t0() + Duration::seconds(150))
    );
    t.at(150);
    t.step().await;
    assert_eq!(
        t.news().await,
        lines(&[
            "notification.due fenghuo team firing=1",
            "group.scheduled fenghuo 19:07:30"
        ])
    );
    t.at(450);
    t.step().await;
    assert_eq!(t.news().await, lines(&["group.scheduled fenghuo 19:12:30"]));
    // The back-offs leave the window: the alert resolves when the third
    // latest does (at 0s + 10m), decided by the pass that timer asks for.
    assert_eq!(
        t.pipeline.rules.next_wake(),
        Some(t0() + Duration::minutes(10))
    );
    t.at(600);
    t.step().await;
    assert_eq!(
        t.news().await,
        lines(&[
            "alert.resolved rule/pods/PodCrashLooping PodCrashLooping: condition no longer holds"
        ])
    );
}

#[tokio::test]
async fn a_heartbeat_that_stops_fires_and_a_restart_continues_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), RULES);
    let clock = ManualClock::new(t0());
    {
        let mut t = Timeline::open(dir.path(), &clock);
        t.news().await;
        t.at(0);
        t.heartbeat("backup").await;
        t.at(600);
        t.heartbeat("backup").await;
        // The absent timer is what the dispatch loop sleeps until.
        assert_eq!(
            t.pipeline.rules.next_wake(),
            Some(t0() + Duration::minutes(25))
        );
        t.pipeline.close();
    }
    // Restarted with the same rules: nothing new is recorded, and the
    // timer continues from the log (the last heartbeat at 10m).
    let mut t = Timeline::open(dir.path(), &clock);
    t.seen = t.pipeline.log.last_seq();
    t.at(24 * 60);
    t.step().await;
    assert_eq!(t.news().await, Vec::<String>::new());
    t.at(25 * 60);
    t.step().await;
    assert_eq!(
        t.news().await,
        lines(&[
            "alert.received rule/heartbeats/HeartbeatStopped HeartbeatStopped backup 19:25:00",
            "alert.fired fenghuo",
            "group.scheduled fenghuo 19:25:30",
        ])
    );
    // The heartbeat comes back through the API: the alert resolves in the
    // commit that records it.
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let router = app(AppState::new(t.pipeline.clone(), rx));
    t.at(25 * 60 + 10);
    let resp = router
        .clone()
        .oneshot(
            Request::post("/api/v1/heartbeats/backup")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        t.news().await,
        lines(&[
            "heartbeat.received api backup",
            "alert.resolved rule/heartbeats/HeartbeatStopped HeartbeatStopped: condition no longer holds",
        ])
    );
    // A bad name is refused, naming the field; nothing is stored.
    let before = t.pipeline.log.last_seq();
    let resp = router
        .oneshot(
            Request::post("/api/v1/heartbeats/bad%20name")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["field"], "name", "{body}");
    assert_eq!(t.pipeline.log.last_seq(), before);
}

#[tokio::test]
async fn a_bad_rule_file_refuses_to_start_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(
        dir.path(),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: { kind: k8s.event }\n        condition: 'payload.reason =='\n",
    );
    let clock = ManualClock::new(t0());
    let err = Pipeline::open(config(dir.path()), Arc::new(clock))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("rules/platform.yaml:6:"), "{err}");
}

const OOM_RULE: &str = r#"
  - name: oom
    rules:
      - alert: PodOOMKilled
        select:
          kind: k8s.event
          matchers: ['reason="OOMKilling"']
        group_by: [namespace, { pod: payload.involved_object.name }]
        resolve: { after: 30m }
        labels: { severity: warning }
"#;

async fn post_reload(router: &axum::Router) -> (StatusCode, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::post("/-/reload").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn reload_refuses_a_broken_set_and_puts_a_good_one_in_force() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), RULES);
    let clock = ManualClock::new(t0());
    let mut t = Timeline::open(dir.path(), &clock);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let router = app(AppState::new(t.pipeline.clone(), rx));
    for s in [0, 10, 20] {
        t.at(s);
        t.backoff("web-1").await;
    }
    t.news().await;
    let old_hash = t.pipeline.rules.rules().hash().to_string();
    assert_eq!(t.pipeline.rules.firing().len(), 1);

    // A typo: refused with the place, over HTTP and directly; the old set
    // and its alert stay, and nothing is recorded.
    write_rules(
        dir.path(),
        &format!(
            "{RULES}  - name: broken\n    rules:\n      - alert: X\n        select: {{ kind: k8s.event }}\n        condition: 'payload.reason =='\n"
        ),
    );
    let (status, body) = post_reload(&router).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let errors = body["errors"].to_string();
    assert!(errors.contains("rules/platform.yaml:"), "{body}");
    let problems = t.pipeline.reload("test").await.unwrap_err();
    assert!(problems[0].contains("platform.yaml:"), "{problems:?}");
    assert_eq!(t.pipeline.rules.rules().hash(), old_hash);
    assert_eq!(t.pipeline.rules.firing().len(), 1);
    assert_eq!(t.news().await, Vec::<String>::new());
    // The old set still decides.
    t.at(30);
    t.backoff("web-2").await;
    t.at(40);
    t.backoff("web-2").await;
    t.at(50);
    t.backoff("web-2").await;
    assert!(t.news().await.contains(
        &"alert.received rule/pods/PodCrashLooping PodCrashLooping web-2 19:00:50".to_string()
    ));

    // A good set with a new rule: in force, recorded, and it evaluates;
    // the alerts of the rules kept stay firing (their evidence is in the log).
    write_rules(dir.path(), &format!("{RULES}{OOM_RULE}"));
    t.at(60);
    let (status, body) = post_reload(&router).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rules"], 3);
    assert_eq!(
        t.news().await,
        lines(&["rules.loaded fenghuo 3 rules by POST /-/reload"])
    );
    assert_eq!(t.pipeline.rules.firing().len(), 2);
    t.at(70);
    let oom = K8sEvent {
        reason: "OOMKilling".into(),
        ..backoff_event("web-3")
    };
    t.pipeline
        .log
        .append(vec![NewEvent::new(
            t0() + Duration::seconds(70),
            "test",
            "uid-web-3",
            EventKind::K8sEvent(Arc::new(oom)),
        )])
        .await
        .unwrap();
    let news = t.news().await;
    assert_eq!(news[0], "k8s.event test web-3");
    assert_eq!(
        news[1],
        "alert.received rule/oom/PodOOMKilled PodOOMKilled web-3 19:01:10"
    );
    assert_eq!(t.pipeline.rules.firing().len(), 3);

    // Removing a rule resolves its alerts, in the commit recording the set.
    write_rules(dir.path(), &format!("groups:{}", OOM_RULE));
    t.at(80);
    t.pipeline.reload("test").await.unwrap();
    let news = t.news().await;
    assert_eq!(news[0], "rules.loaded fenghuo 1 rules by test");
    assert_eq!(
        news.iter()
            .filter(|l| l.ends_with("rule no longer loaded"))
            .count(),
        2,
        "{news:?}"
    );
}

async fn get_json(router: &axum::Router, uri: &str) -> serde_json::Value {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Regression: after a reload, `/api/v2/status` and `/api/v2/receivers`
/// still showed the config the process started with, so an operator
/// checking what runs was shown what ran before.
#[tokio::test]
async fn status_shows_the_reloaded_config_not_the_one_started_with() {
    let dir = tempfile::tempdir().unwrap();
    write_rules(dir.path(), RULES);
    let clock = ManualClock::new(t0());
    let t = Timeline::open(dir.path(), &clock);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let router = app(AppState::new(t.pipeline.clone(), rx));
    let receivers = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        receivers(get_json(&router, "/api/v2/receivers").await),
        ["team"]
    );

    // A new receiver and route: in force and shown.
    let edited = CONFIG
        .replace("receiver: team", "receiver: oncall")
        .replace("  - name: team", "  - name: team\n  - name: oncall");
    std::fs::write(dir.path().join("fenghuo.yaml"), &edited).unwrap();
    let (status, body) = post_reload(&router).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        receivers(get_json(&router, "/api/v2/receivers").await),
        ["team", "oncall"]
    );
    let status = get_json(&router, "/api/v2/status").await;
    let original = status["config"]["original"].as_str().unwrap();
    assert!(original.contains("receiver: oncall"), "{original}");
    // What only a restart changes is still what the process runs with.
    assert_eq!(t.pipeline.config().data_dir, dir.path().join("data"));

    // A broken file is refused and the status keeps showing what runs.
    std::fs::write(dir.path().join("fenghuo.yaml"), "route: [\n").unwrap();
    let (status, _) = post_reload(&router).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status = get_json(&router, "/api/v2/status").await;
    assert!(
        status["config"]["original"]
            .as_str()
            .unwrap()
            .contains("receiver: oncall")
    );
}
