//! Backtest on a recorded log: a pipeline records a few hours of events and
//! its decisions (manual clock, a pass at every timer, as the dispatch loop
//! runs them); then candidate rules are replayed over it, read-only, and
//! the difference is checked.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::evaluate::backtest::{Pair, Report, run};
use fenghuo::evaluate::rules::RuleSet;
use fenghuo::eventlog::{EventKind, EventLog, InvolvedObject, K8sEvent, LabelSet, NewEvent};
use fenghuo::pipeline::Pipeline;

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
"#;

/// Stricter on back-offs (more than 3), and a new rule for OOM kills.
const CANDIDATE: &str = r#"
groups:
  - name: pods
    labels: { team: platform }
    rules:
      - alert: PodCrashLooping
        select:
          kind: k8s.event
          matchers: ['reason="BackOff"']
        group_by: [namespace, { pod: payload.involved_object.name }]
        count: { window: 10m, above: 3 }
        labels: { severity: warning }
      - alert: PodOOMKilled
        select:
          kind: k8s.event
          matchers: ['reason="OOMKilling"']
        group_by: [namespace, { pod: payload.involved_object.name }]
        resolve: { after: 30m }
        labels: { severity: critical }
"#;

const CONFIG: &str = r#"
rule_files: [rules/*.yaml]
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
receivers:
  - name: team
  - name: pager
"#;

fn t0() -> DateTime<Utc> {
    "2026-11-25T19:00:00Z".parse().unwrap()
}

fn k8s(pod: &str, reason: &str) -> EventKind {
    EventKind::K8sEvent(Arc::new(K8sEvent {
        cluster: String::new(),
        namespace: "shop".into(),
        involved_object: InvolvedObject {
            kind: "Pod".into(),
            name: pod.into(),
            uid: format!("uid-{pod}"),
            ..Default::default()
        },
        reason: reason.into(),
        message: String::new(),
        event_type: "Warning".into(),
        count: 1,
        first_seen: None,
        last_seen: None,
        reporting_controller: "kubelet".into(),
        labels: LabelSet::new(),
        ..Default::default()
    }))
}

fn config(dir: &Path) -> Config {
    std::fs::write(dir.join("fenghuo.yaml"), CONFIG).unwrap();
    let mut config = Config::load(&dir.join("fenghuo.yaml")).unwrap();
    config.data_dir = dir.join("data");
    config
}

/// Runs every pass due up to `until`, at its instant, then sets the clock
/// to `until`.
async fn run_until(p: &Pipeline, clock: &ManualClock, until: DateTime<Utc>) {
    while let Some(due) = p.next_due().filter(|d| *d <= until) {
        clock.set(due.max(clock.now()));
        p.dispatcher.step().await.unwrap();
        if p.next_due() == Some(due) {
            break;
        }
    }
    clock.set(until);
}

/// Records three hours: web-1 backs off 3 times (fires now, not with the
/// candidate), web-2 5 times (fires with both), web-3 is OOM-killed (only
/// the candidate has a rule for it).
async fn record(dir: &Path) {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/pods.yaml"), RULES).unwrap();
    let clock = ManualClock::new(t0());
    let p = Pipeline::open(config(dir), Arc::new(clock.clone())).unwrap();
    let inputs: Vec<(i64, &str, &str)> = vec![
        (0, "web-1", "BackOff"),
        (60, "web-1", "BackOff"),
        (120, "web-1", "BackOff"),
        (3600, "web-2", "BackOff"),
        (3660, "web-2", "BackOff"),
        (3720, "web-2", "BackOff"),
        (3780, "web-2", "BackOff"),
        (3840, "web-2", "BackOff"),
        (7200, "web-3", "OOMKilling"),
    ];
    for (at, pod, reason) in inputs {
        let at = t0() + Duration::seconds(at);
        run_until(&p, &clock, at).await;
        p.log
            .append(vec![NewEvent::new(
                at,
                "test",
                format!("uid-{pod}"),
                k8s(pod, reason),
            )])
            .await
            .unwrap();
    }
    run_until(&p, &clock, t0() + Duration::hours(3)).await;
    p.close();
}

fn backtest(dir: &Path, rules: &str) -> Report {
    let cdir = dir.join("candidate");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("pods.yaml"), rules).unwrap();
    let set = RuleSet::load(&[cdir.join("pods.yaml")]).unwrap();
    let log = EventLog::open_read_only(&dir.join("data/fenghuo.db")).unwrap();
    let before = log.last_seq();
    let report = run(
        &log,
        Arc::new(set),
        &config(dir),
        t0(),
        t0() + Duration::hours(3),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(log.last_seq(), before, "nothing appended");
    report
}

fn pair(actual: u64, candidate: u64) -> Pair {
    Pair { actual, candidate }
}

#[tokio::test]
async fn the_same_rules_and_routes_decide_what_was_decided() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path()).await;
    let report = backtest(dir.path(), RULES);
    assert!(
        report.gained.is_empty() && report.lost.is_empty(),
        "{report}"
    );
    for rows in [
        &report.alerts,
        &report.pages_by_receiver,
        &report.pages_by_hour,
        &report.muted_by_receiver,
    ] {
        for (k, p) in rows {
            assert_eq!(p.actual, p.candidate, "{k}:\n{report}");
        }
    }
    assert_eq!(report.alerts["PodCrashLooping"], pair(2, 2), "{report}");
    assert!(report.pages_by_receiver["team"].actual > 0, "{report}");
}

#[tokio::test]
async fn a_candidate_shows_alerts_and_pages_gained_and_lost() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path()).await;
    let report = backtest(dir.path(), CANDIDATE);
    let text = report.to_string();
    println!("{text}");
    assert_eq!(report.alerts["PodCrashLooping"], pair(2, 1), "{text}");
    assert_eq!(report.alerts["PodOOMKilled"], pair(0, 1), "{text}");
    assert_eq!(report.gained.len(), 1, "{text}");
    assert!(report.gained[0].contains("PodOOMKilled"), "{text}");
    assert_eq!(report.lost.len(), 1, "{text}");
    assert!(report.lost[0].contains("web-1"), "{text}");
    // The OOM kill pages the pager (critical), which nothing paged before:
    // when it fires and when it resolves, 30 minutes later.
    assert_eq!(report.pages_by_receiver["pager"], pair(0, 2), "{text}");
    assert_eq!(
        report.pages_by_hour["2026-11-25 21:00"],
        pair(0, 2),
        "{text}"
    );
    // web-2 pages both times (firing, resolved), a minute apart.
    assert_eq!(
        report.pages_by_hour["2026-11-25 20:00"],
        pair(2, 2),
        "{text}"
    );
    // web-1's page (fired, then resolved) is gone: 19:00 loses both.
    assert_eq!(
        report.pages_by_hour["2026-11-25 19:00"],
        pair(2, 0),
        "{text}"
    );
    assert_eq!(report.pages_by_receiver["team"], pair(4, 2), "{text}");
    assert!(text.contains("alerts gained (1)"), "{text}");
}
