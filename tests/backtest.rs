//! Backtest on a recorded log: a pipeline records a few hours of events and
//! its decisions (manual clock, a pass at every timer, as the dispatch loop
//! runs them); then candidate rules are replayed over it, read-only, and
//! the difference is checked.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::evaluate::backtest::{Pair, Report, Spent, Threads, run, run_on};
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
        // Passes until nothing more is decided, as the dispatch loop runs
        // them at this instant: what a pass commits (a rule's alert) is
        // decided on inside that commit only while passes are quick
        // (`Dispatcher::wants` has a wall-clock budget); on a loaded
        // machine the loop's next pass does it.
        while !p.dispatcher.step().await.unwrap().is_empty() {}
        if p.next_due() == Some(due) {
            break;
        }
    }
    clock.set(until);
}

/// Someone resolves web-2's rule alert from the API at 20:05, a few
/// minutes after it fired.
async fn resolve_by_hand(p: &Pipeline, clock: &ManualClock) {
    let at = t0() + Duration::seconds(3900);
    run_until(p, clock, at).await;
    let fingerprint = p
        .log
        .read_range(0, p.log.last_seq())
        .unwrap()
        .into_iter()
        .find_map(|e| match &e.kind {
            EventKind::AlertReceived(r)
                if e.source.starts_with("rule/") && r.labels.get("pod") == Some("web-2") =>
            {
                Some(r.fingerprint.clone())
            }
            _ => None,
        })
        .expect("web-2 fired");
    p.log
        .append(vec![NewEvent::new(
            at,
            "api",
            fingerprint.clone(),
            EventKind::AlertResolved(fenghuo::eventlog::AlertResolution {
                fingerprint: fingerprint.to_string(),
                ends_at: at,
                reason: "resolved by hand".into(),
                report: None,
            }),
        )])
        .await
        .unwrap();
}

/// Records three hours: web-1 backs off 3 times (fires now, not with the
/// candidate), web-2 5 times (fires with both), web-3 is OOM-killed (only
/// the candidate has a rule for it).
async fn record(dir: &Path) {
    record_with(dir, false).await
}

/// [`record`]; with `by_hand`, also [`resolve_by_hand`].
async fn record_with(dir: &Path, by_hand: bool) {
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
        if by_hand && at == 7200 {
            resolve_by_hand(&p, &clock).await;
        }
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
        while !p.dispatcher.step().await.unwrap().is_empty() {}
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

/// Counts the group's notifications: a rule that reads what the
/// dispatcher decides, so the rules cannot run ahead of it.
const READS_NOTIFICATIONS: &str = r#"
groups:
  - name: pods
    rules:
      - alert: PodOOMKilled
        select:
          kind: k8s.event
          matchers: ['reason="OOMKilling"']
        group_by: [namespace, { pod: payload.involved_object.name }]
        resolve: { after: 30m }
        labels: { severity: critical }
      - alert: Paging
        select: { kind: notification.due }
        count: { window: 1h, above: 0 }
        labels: { severity: warning }
"#;

fn backtest_on(dir: &Path, rules: &str, threads: Threads) -> (Report, Spent) {
    let cdir = dir.join("candidate");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("pods.yaml"), rules).unwrap();
    let set = RuleSet::load(&[cdir.join("pods.yaml")]).unwrap();
    let log = EventLog::open_read_only(&dir.join("data/fenghuo.db")).unwrap();
    run_on(
        &log,
        Arc::new(set),
        &config(dir),
        t0(),
        t0() + Duration::hours(3),
        threads,
        |_, _| {},
    )
    .unwrap()
}

/// (candidate rules, whether they run on a thread of their own): the
/// report is the same either way.
#[tokio::test]
async fn two_threads_and_one_decide_the_same() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path()).await;
    for (rules, apart) in [
        (RULES, true),
        (CANDIDATE, true),
        (READS_NOTIFICATIONS, false),
    ] {
        let (one, spent) = backtest_on(dir.path(), rules, Threads::One);
        assert!(!spent.two_threads);
        let (auto, spent) = backtest_on(dir.path(), rules, Threads::Auto);
        assert_eq!(spent.two_threads, apart, "{rules}");
        assert_eq!(one, auto, "{rules}\none thread:\n{one}\nauto:\n{auto}");
        assert!(
            one.pages_by_receiver.values().any(|p| p.candidate > 0),
            "{one}"
        );
    }
}

/// Someone resolves a rule's alert by hand: the rules read that resolve,
/// which came after them, so a run with the rules ahead on their own
/// thread cannot be trusted; it is run again on one thread and decides
/// what one thread decides.
#[tokio::test]
async fn a_rule_alert_resolved_by_hand_is_backtested_on_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    record_with(dir.path(), true).await;
    let (one, _) = backtest_on(dir.path(), RULES, Threads::One);
    let (auto, spent) = backtest_on(dir.path(), RULES, Threads::Auto);
    assert!(!spent.two_threads, "diverged, run again on one thread");
    assert_eq!(one, auto, "one thread:\n{one}\nauto:\n{auto}");
}
