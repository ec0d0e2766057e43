//! Rule language errors as a table, and each time condition as a timeline
//! driven by explicit instants (no clock, no sleeps).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;
use crate::eventlog::{EventKind, Heartbeat, InvolvedObject, K8sEvent, ProbeResult};

fn set(yaml: &str) -> Result<RuleSet, Vec<Problem>> {
    RuleSet::from_sources(&[(PathBuf::from("r.yaml"), yaml.to_string())])
}

#[test]
fn problems_name_file_line_column_and_what_would_be_right() {
    // (rule file, line, column, words the message must contain)
    let cases: &[(&str, u64, u64, &str)] = &[
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        selct: {kind: k8s.event}\n",
            5,
            9,
            "unknown field `selct`",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.evnt}\n",
            5,
            24,
            "unknown event kind \"k8s.evnt\"; one of: ",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        for: 5 minutes\n",
            6,
            14,
            "for: invalid duration \"5 minutes\": use Prometheus notation such as 30s, 5m, 1h30m",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        count: {window: 10, above: 3}\n",
            6,
            25,
            "count.window: invalid duration \"10\"",
        ),
        // CEL error: at the column inside the expression, in the file.
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        condition: payload.count >> 3\n",
            6,
            35,
            "invalid CEL at 1:16",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        condition: \"payload.reason == 'x' &&& true\"\n",
            6,
            45,
            "token recognition error",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        condition: |\n          payload.count > 1 &&\n            payload.reason ==\n",
            8,
            30,
            "invalid CEL at 2:20",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select:\n          kind: k8s.event\n          matchers: ['reason=~\"(\"']\n",
            7,
            31,
            "bad matcher",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        count: {window: 1m, above: 1}\n        absent: 5m\n",
            4,
            16,
            "has count and absent: a rule has at most one of",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: probe.result}\n        threshold: {value: payload.latency_ms, fire_above: 10, clear_below: 20}\n",
            6,
            20,
            "clear_below (20) must not be above fire_above (10)",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        annotations:\n          summary: '{{ labels.pod '\n",
            7,
            34,
            "annotations.summary: bad template: Unexpected end of input",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: Bad-Name\n        select: {kind: k8s.event}\n",
            4,
            16,
            "not a valid alert name",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n      - alert: A\n        select: {kind: k8s.event}\n",
            6,
            16,
            "already defined in this group at line 4",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: k8s.event}\n        labels: {alertname: B}\n",
            6,
            29,
            "alertname is the rule's `alert`",
        ),
    ];
    for (yaml, line, column, words) in cases {
        let problems = set(yaml).expect_err(yaml);
        let p = &problems[0];
        assert!(p.message.contains(words), "{yaml}\nwanted {words:?} in {p}");
        assert_eq!((p.line, p.column), (*line, *column), "{yaml}\n{p}");
        assert!(
            p.to_string()
                .starts_with(&format!("r.yaml:{line}:{column}: ")),
            "{p}"
        );
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        select: {kind: nope}\n      - alert: B\n        select: {kind: k8s.event}\n        condition: payload.x ==\n";
    let problems = set(yaml).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].line, 5);
    assert_eq!(problems[1].line, 8);
}

// ---------------------------------------------------------------------------
// Timelines
// ---------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    t0() + crate::config::PromDuration::parse(s).unwrap().0
}

fn k8s(reason: &str, pod: &str) -> EventKind {
    EventKind::K8sEvent(Arc::new(K8sEvent {
        cluster: "prod".into(),
        namespace: "shop".into(),
        involved_object: InvolvedObject {
            kind: "Pod".into(),
            name: pod.into(),
            uid: format!("uid-{pod}"),
            ..Default::default()
        },
        reason: reason.into(),
        message: format!(
            "Successfully assigned shop/{pod} to node-{}",
            &pod[pod.len() - 1..]
        ),
        event_type: "Warning".into(),
        count: 1,
        first_seen: None,
        last_seen: None,
        reporting_controller: "kubelet".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    }))
}

fn probe(name: &str, ok: bool, cpu: f64) -> EventKind {
    EventKind::ProbeResult(Arc::new(ProbeResult {
        probe: name.into(),
        probe_type: "scrape".into(),
        target: format!("http://{name}:9100/metrics"),
        ok,
        latency_ms: Some(5.0),
        status: Some(200),
        values: [("cpu".to_string(), cpu)].into(),
        error: None,
        labels: Default::default(),
        summary: None,
    }))
}

/// An engine and the log it folds: inputs and its own decisions.
struct Timeline {
    engine: RuleEngine,
    log: Vec<Event>,
}

impl Timeline {
    fn new(yaml: &str) -> Timeline {
        let set = Arc::new(set(yaml).unwrap_or_else(|p| panic!("{p:?}")));
        Timeline {
            engine: RuleEngine::new(set, t0()),
            log: Vec::new(),
        }
    }

    fn input(&mut self, when: &str, kind: EventKind) {
        let event = Event {
            seq: self.log.len() as u64 + 1,
            id: format!("e{}", self.log.len()).into(),
            occurred_at: at(when),
            recorded_at: at(when),
            source: "kubernetes".into(),
            key: Default::default(),
            idempotency_key: None,
            kind,
        };
        self.engine.observe(&event);
        self.log.push(event);
    }

    /// Evaluates at `when`, records the decisions, returns them as
    /// `+Alert{labels}` / `-Alert{labels}` at their instant.
    fn eval(&mut self, when: &str) -> Vec<String> {
        let decisions = self.engine.evaluate(at(when));
        let mut out = Vec::new();
        for d in decisions {
            let labels: Vec<String> = d
                .labels()
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(format!(
                "{}{} {} @{}",
                if d.is_fire() { "+" } else { "-" },
                &d.labels()["alertname"],
                labels.join(","),
                crate::config::PromDuration(d.at - t0())
            ));
            let e = d.to_event();
            let event = Event {
                seq: self.log.len() as u64 + 1,
                id: e.id.into(),
                occurred_at: e.occurred_at,
                recorded_at: at(when),
                source: e.source.into(),
                key: e.key.into(),
                idempotency_key: None,
                kind: e.kind,
            };
            self.engine.observe(&event);
            self.log.push(event);
        }
        out
    }

    /// A new engine folded from the log, as after a restart.
    fn restart(&mut self) {
        let mut engine = RuleEngine::new(self.engine.rules().clone(), t0());
        for e in &self.log {
            engine.observe(e);
        }
        self.engine = engine;
    }
}

const CRASHLOOP: &str = r#"
groups:
  - name: pods
    rules:
      - alert: PodCrashLooping
        select:
          kind: k8s.event
          matchers: ['reason="BackOff"']
        group_by: [namespace, {pod: payload.involved_object.name}]
        count: {window: 10m, above: 3}
        labels: {severity: warning}
        annotations:
          summary: "{{ labels.pod }} backed off {{ count }} times in 10m"
"#;

#[test]
fn count_in_a_window_per_group_fires_and_resolves_as_the_window_slides() {
    let mut tl = Timeline::new(CRASHLOOP);
    // at 0s, 2m, 4m: three back-offs of web-1: not more than 3 yet.
    for t in ["0s", "2m", "4m"] {
        tl.input(t, k8s("BackOff", "web-1"));
    }
    tl.input("4m", k8s("BackOff", "web-2"));
    tl.input("5m", k8s("Pulled", "web-1"));
    assert!(tl.eval("5m").is_empty());
    // at 6m the fourth: fires for web-1 only.
    tl.input("6m", k8s("BackOff", "web-1"));
    assert_eq!(
        tl.eval("6m"),
        ["+PodCrashLooping namespace=shop,pod=web-1,severity=warning @6m"]
    );
    let report = tl.engine.firing()[0].clone();
    assert_eq!(
        &report.annotations["summary"],
        "web-1 backed off 4 times in 10m"
    );
    assert_eq!(
        report.extra["rule"]["reason"],
        "4 events in 10m (at least 4)"
    );
    // The 0s event leaves the window at 10m: the condition stops holding.
    assert_eq!(tl.engine.next_wake(), Some(at("10m")));
    assert!(tl.eval("9m59s").is_empty());
    assert_eq!(
        tl.eval("10m"),
        ["-PodCrashLooping namespace=shop,pod=web-1,severity=warning @10m"]
    );
    assert!(tl.engine.firing().is_empty());
}

#[test]
fn a_restart_mid_window_continues_the_window() {
    let mut tl = Timeline::new(CRASHLOOP);
    for t in ["0s", "3m", "6m"] {
        tl.input(t, k8s("BackOff", "web-1"));
    }
    assert!(tl.eval("6m").is_empty());
    // Restart at 7m: the window is rebuilt from the log.
    tl.restart();
    tl.input("8m", k8s("BackOff", "web-1"));
    assert_eq!(
        tl.eval("8m"),
        ["+PodCrashLooping namespace=shop,pod=web-1,severity=warning @8m"]
    );
    // Restart while firing: nothing is fired again.
    tl.restart();
    assert!(tl.eval("9m").is_empty());
    assert_eq!(tl.engine.firing().len(), 1);
    assert_eq!(
        tl.eval("10m"),
        ["-PodCrashLooping namespace=shop,pod=web-1,severity=warning @10m"]
    );
}

#[test]
fn for_delays_firing_and_a_restart_keeps_the_pending_time() {
    let yaml = r#"
groups:
  - name: probes
    rules:
      - alert: ServiceDown
        select: {kind: probe.result}
        condition: "!payload.ok"
        group_by: [probe]
        for: 2m
"#;
    let mut tl = Timeline::new(yaml);
    tl.input("0s", probe("api", false, 0.0));
    assert!(tl.eval("0s").is_empty());
    assert_eq!(tl.engine.next_wake(), Some(at("2m")));
    tl.input("1m", probe("api", false, 0.0));
    tl.restart();
    assert!(tl.eval("1m30s").is_empty());
    // Due at 2m; noticed at 2m30s; recorded as of 2m.
    assert_eq!(tl.eval("2m30s"), ["+ServiceDown probe=api @2m"]);
    // An ok result: the latest no longer meets the condition.
    tl.input("3m", probe("api", true, 0.0));
    assert_eq!(tl.eval("3m"), ["-ServiceDown probe=api @3m"]);
    // A failure that clears before `for` never fires.
    tl.input("4m", probe("api", false, 0.0));
    tl.input("5m", probe("api", true, 0.0));
    assert!(tl.eval("7m").is_empty());
}

#[test]
fn absent_fires_when_a_group_goes_quiet_and_resolves_when_it_comes_back() {
    let yaml = r#"
groups:
  - name: heartbeats
    rules:
      - alert: HeartbeatMissing
        select: {kind: heartbeat.received}
        group_by: [name]
        absent: 5m
        resolve:
          on: {kind: k8s.event, matchers: ['reason="HeartbeatRetired"']}
      - alert: NothingAtAll
        select: {kind: heartbeat.received}
        absent: 10m
"#;
    let mut tl = Timeline::new(yaml);
    let hb = |n: &str| {
        EventKind::HeartbeatReceived(Heartbeat {
            name: n.into(),
            labels: Default::default(),
        })
    };
    tl.input("0s", hb("backup"));
    tl.input("1m", hb("report"));
    assert_eq!(tl.engine.next_wake(), Some(at("5m")));
    assert_eq!(tl.eval("5m"), ["+HeartbeatMissing name=backup @5m"]);
    tl.input("5m30s", hb("report"));
    assert!(tl.eval("6m").is_empty());
    tl.input("7m", hb("backup"));
    assert_eq!(tl.eval("7m"), ["-HeartbeatMissing name=backup @7m"]);
    // Without group_by, absence counts from when the engine started.
    assert_eq!(tl.eval("10m"), Vec::<String>::new());
    assert_eq!(tl.eval("10m30s"), ["+HeartbeatMissing name=report @10m30s"]);
}

#[test]
fn absent_without_group_by_counts_from_the_start() {
    let yaml = r#"
groups:
  - name: deadman
    rules:
      - alert: NoProbesAtAll
        select: {kind: probe.result}
        absent: 10m
"#;
    let mut tl = Timeline::new(yaml);
    assert_eq!(tl.engine.next_wake(), Some(at("10m")));
    assert_eq!(tl.eval("10m"), ["+NoProbesAtAll  @10m"]);
    tl.input("11m", probe("api", true, 0.0));
    assert_eq!(tl.eval("11m"), ["-NoProbesAtAll  @11m"]);
}

#[test]
fn threshold_with_hysteresis_does_not_flap_near_the_line() {
    let yaml = r#"
groups:
  - name: saturation
    rules:
      - alert: CPUSaturated
        select: {kind: probe.result}
        group_by: [probe]
        threshold: {value: payload.values.cpu, fire_above: 0.9, clear_below: 0.8}
        annotations: {summary: "cpu at {{ value }}"}
"#;
    let mut tl = Timeline::new(yaml);
    tl.input("0s", probe("db", true, 0.85));
    assert!(tl.eval("0s").is_empty());
    tl.input("1m", probe("db", true, 0.95));
    assert_eq!(tl.eval("1m"), ["+CPUSaturated probe=db @1m"]);
    assert_eq!(&tl.engine.firing()[0].annotations["summary"], "cpu at 0.95");
    // Between the levels: stays firing.
    for (t, v) in [("2m", 0.85), ("3m", 0.91), ("4m", 0.82)] {
        tl.input(t, probe("db", true, v));
        assert!(tl.eval(t).is_empty(), "{t}");
    }
    tl.input("5m", probe("db", true, 0.79));
    assert_eq!(tl.eval("5m"), ["-CPUSaturated probe=db @5m"]);
    // Back between the levels: does not fire again.
    tl.input("6m", probe("db", true, 0.89));
    assert!(tl.eval("6m").is_empty());
}

#[test]
fn distinct_count_finds_replicas_of_one_app_on_one_node() {
    let yaml = r#"
groups:
  - name: placement
    rules:
      - alert: AntiAffinityViolated
        select: {kind: k8s.event, matchers: ['reason="Scheduled"']}
        group_by:
          - app: payload.labels.app
          - node: "payload.message.split(' to ')[1]"
        distinct: {of: payload.involved_object.name, window: 1h, above: 1}
"#;
    let mut tl = Timeline::new(yaml);
    tl.input("0s", k8s("Scheduled", "web-1")); // node-1
    tl.input("1m", k8s("Scheduled", "web-2")); // node-2
    tl.input("2m", k8s("Scheduled", "web-1")); // the same pod again: not distinct
    assert!(tl.eval("2m").is_empty());
    tl.input("3m", k8s("Scheduled", "api-1")); // node-1, the same app label
    assert_eq!(
        tl.eval("3m"),
        ["+AntiAffinityViolated app=web,node=node-1 @3m"]
    );
    // Both leave the window an hour after they were last seen.
    assert_eq!(tl.eval("1h1m"), Vec::<String>::new());
    assert_eq!(
        tl.eval("1h3m"),
        ["-AntiAffinityViolated app=web,node=node-1 @1h2m"]
    );
}

#[test]
fn rate_is_a_count_over_its_window() {
    let yaml = r#"
groups:
  - name: g
    rules:
      - alert: Mounting
        select: {kind: k8s.event, matchers: ['reason="FailedMount"']}
        rate: {window: 1m, above: 0.05}
"#;
    // 0.05/s over 60s = 3 events: fires on the fourth.
    let mut tl = Timeline::new(yaml);
    for t in ["0s", "10s", "20s"] {
        tl.input(t, k8s("FailedMount", "web-1"));
    }
    assert!(tl.eval("20s").is_empty());
    tl.input("30s", k8s("FailedMount", "web-1"));
    assert_eq!(tl.eval("30s"), ["+Mounting  @30s"]);
}

#[test]
fn resolve_after_a_quiet_period_and_on_a_recovery_event() {
    let yaml = r#"
groups:
  - name: g
    rules:
      - alert: OOMKilled
        select: {kind: k8s.event, matchers: ['reason="OOMKilling"']}
        group_by: [{pod: payload.involved_object.name}]
        resolve: {after: 30m}
      - alert: NodeNotReady
        select: {kind: k8s.event, matchers: ['reason="NodeNotReady"']}
        group_by: [{node: payload.involved_object.name}]
        resolve:
          on: {kind: k8s.event, matchers: ['reason="NodeReady"']}
"#;
    let mut tl = Timeline::new(yaml);
    tl.input("0s", k8s("OOMKilling", "web-1"));
    assert_eq!(tl.eval("0s"), ["+OOMKilled pod=web-1 @0s"]);
    tl.input("20m", k8s("OOMKilling", "web-1"));
    assert!(tl.eval("49m").is_empty());
    assert_eq!(tl.engine.next_wake(), Some(at("50m")));
    assert_eq!(tl.eval("50m"), ["-OOMKilled pod=web-1 @50m"]);

    tl.input("1h", k8s("NodeNotReady", "node-1"));
    assert_eq!(tl.eval("1h"), ["+NodeNotReady node=node-1 @1h"]);
    tl.input("1h5m", k8s("NodeReady", "node-2"));
    assert!(tl.eval("1h5m").is_empty(), "another node's recovery");
    tl.input("1h6m", k8s("NodeReady", "node-1"));
    assert_eq!(tl.eval("1h6m"), ["-NodeNotReady node=node-1 @1h6m"]);
}

#[test]
fn decisions_are_not_repeated_before_they_are_folded_back() {
    let mut tl = Timeline::new(CRASHLOOP);
    for t in ["0s", "1m", "2m", "3m"] {
        tl.input(t, k8s("BackOff", "web-1"));
    }
    let first = tl.engine.evaluate(at("3m"));
    assert_eq!(first.len(), 1);
    assert!(tl.engine.evaluate(at("3m1s")).is_empty());
    // As an event it is `alert.received` from the rule's source.
    let e = first[0].to_event();
    assert_eq!(e.source, "rule/pods/PodCrashLooping");
    assert_eq!(e.kind.name(), "alert.received");
}

#[test]
fn an_event_meets_only_the_rules_that_can_select_it() {
    let mut yaml = String::from("groups:\n  - name: many\n    rules:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "      - alert: R{i}\n        select: {{kind: k8s.event, matchers: ['reason=\"Reason{i}\"']}}\n"
        ));
    }
    let set = set(&yaml).unwrap();
    let e = Event {
        seq: 1,
        id: "x".into(),
        occurred_at: t0(),
        recorded_at: t0(),
        source: "kubernetes".into(),
        key: Default::default(),
        idempotency_key: None,
        kind: k8s("Reason7", "web-1"),
    };
    let input = expr::Input::new(&e);
    assert_eq!(set.candidates(&e, &input), [7]);
    let probe = Event {
        kind: probe("api", true, 0.0),
        ..e.clone()
    };
    assert!(set.candidates(&probe, &expr::Input::new(&probe)).is_empty());
}
