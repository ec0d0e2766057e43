//! Escalation as timelines: a manual clock moves time, alerts arrive "at
//! 0s", and steps are wanted "at 5m". What each instant decided is read
//! from the log (decisions are committed with their cause, or by the pass
//! the background loop runs at each instant, called here).

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::escalate::actions::{ActError, Action, Request, act};
use fenghuo::eventlog::{EventKind, EventQuery};
use fenghuo::ingest::alertmanager::parse_v2;
use fenghuo::pipeline::Pipeline;

/// Pages go through blackhole receivers: what is decided is the subject
/// here, not the sending (see notify_outbox.rs).
const CONFIG: &str = r#"
route:
  receiver: team
  group_by: [team]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  escalation: platform
receivers:
  - name: team
  - name: primary-im
  - name: secondary-mail
  - name: lead-mail
escalation_policies:
  - name: platform
    steps:
      - notify: {via: [primary-im]}
      - wait: 5m
      - notify: {via: [secondary-mail]}
      - wait: 10m
      - notify: {via: [lead-mail]}
"#;

struct Timeline {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    t0: chrono::DateTime<chrono::Utc>,
    seen: std::sync::atomic::AtomicU64,
    _dir: Option<tempfile::TempDir>,
}

impl Timeline {
    fn open(yaml: &str, dir: &Path, clock: &ManualClock) -> Timeline {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.to_path_buf();
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let seen = pipeline.log.last_seq().into();
        Timeline {
            clock: clock.clone(),
            pipeline,
            t0: t0(),
            seen,
            _dir: None,
        }
    }

    /// A pipeline on `yaml` in a fresh directory where "Down" fired at 0s
    /// and the first step was taken: most timelines start here.
    async fn paged(yaml: &str) -> Timeline {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(t0());
        let mut t = Timeline::open(yaml, dir.path(), &clock);
        t._dir = Some(dir);
        t.at(0);
        t.fire(&["Down"]).await;
        t.step().await;
        t
    }

    fn at(&self, secs: i64) {
        self.clock.set(self.t0 + Duration::seconds(secs));
    }

    async fn fire(&self, names: &[&str]) {
        let alerts: Vec<String> = names
            .iter()
            .map(|name| {
                format!(
                    r#"{{"labels":{{"alertname":"{name}","team":"x"}},"startsAt":"{}","endsAt":"{}"}}"#,
                    self.t0.to_rfc3339(),
                    (self.t0 + Duration::hours(3)).to_rfc3339()
                )
            })
            .collect();
        let body = format!("[{}]", alerts.join(","));
        let alerts = parse_v2(body.as_bytes(), self.clock.now(), Duration::minutes(5)).unwrap();
        self.pipeline
            .ingest
            .alerts("prometheus", alerts)
            .await
            .unwrap();
    }

    async fn act(&self, action: Action, by: &str) -> Result<(), ActError> {
        let incident = self.incident();
        act(
            &self.pipeline.log,
            &self.pipeline.incidents,
            Request {
                incident: incident.clone(),
                action,
                by: by.into(),
                via: "api".into(),
                until: (action == Action::Snooze).then(|| self.clock.now() + Duration::minutes(20)),
                token: None,
                reason: String::new(),
            },
            self.clock.now(),
            self.pipeline.escalator().ack_timeout(&incident),
        )
        .await
        .map(|_| ())
    }

    fn incident(&self) -> String {
        self.pipeline.incidents.all()[0].id.clone()
    }

    /// Runs the loop's pass, then answers the escalation decisions made
    /// since the last look, one line each: `notify primary-im (opened…)`.
    async fn step(&self) -> Vec<String> {
        use std::sync::atomic::Ordering;
        self.pipeline.dispatcher.step().await.unwrap();
        let events = self
            .pipeline
            .log
            .read(&EventQuery {
                after: self.seen.load(Ordering::Acquire),
                limit: 10_000,
                ..EventQuery::default()
            })
            .unwrap();
        if let Some(last) = events.last() {
            self.seen.store(last.seq, Ordering::Release);
        }
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::EscalationStepped(s) => Some(match s.action.as_str() {
                    "notify" | "renotify" => {
                        format!("{} {}", s.action, s.receivers.join(","))
                    }
                    other => format!("{other} ({})", s.reason),
                }),
                EventKind::IncidentUnacknowledged(a) => Some(format!("unack ({})", a.reason)),
                _ => None,
            })
            .collect()
    }
}

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-25T19:00:00Z".parse().unwrap()
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A three-step policy takes each step on time, and an acknowledgement at
/// minute 7 stops the third.
#[tokio::test]
async fn a_three_step_policy_escalates_on_time_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(CONFIG, dir.path(), &clock);

    // (second, alerts to fire, escalation wanted then)
    let timeline: Vec<(i64, Vec<&str>, Vec<&str>)> = vec![
        (
            0,
            vec!["Down"],
            vec!["notify primary-im", "wait (waiting 5m)"],
        ),
        (299, vec![], vec![]),
        (
            300,
            vec![],
            vec!["notify secondary-mail", "wait (waiting 10m)"],
        ),
        (420, vec![], vec![]),
    ];
    for (second, fire, want) in timeline {
        t.at(second);
        if !fire.is_empty() {
            t.fire(&fire).await;
        }
        assert_eq!(t.step().await, lines(&want), "at {second}s");
    }
    // 7m: acknowledged; 15m, when the third step was due: nothing.
    t.act(Action::Ack, "alice").await.unwrap();
    for second in [900, 1800, 7200] {
        t.at(second);
        assert_eq!(t.step().await, Vec::<String>::new(), "at {second}s");
    }
    let incident = t.pipeline.incidents.get(&t.incident()).unwrap();
    assert_eq!(incident.ack.as_ref().unwrap().by, "alice");
    assert_eq!(incident.status(clock.now()), "acknowledged");
}

/// Without an acknowledgement the policy runs to its end, and says so.
#[tokio::test]
async fn an_unanswered_policy_runs_to_its_end() {
    let t = Timeline::paged(CONFIG).await;
    t.at(300);
    t.step().await;
    t.at(900);
    assert_eq!(
        t.step().await,
        lines(&[
            "notify lead-mail",
            "finished (every step taken; nobody acknowledged)"
        ])
    );
    t.at(3600);
    assert_eq!(t.step().await, Vec::<String>::new());
}

/// The next step's due time is in the log: a restart in the middle of a
/// wait takes the step once, on time.
#[tokio::test]
async fn a_restart_between_steps_neither_skips_nor_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    {
        let t = Timeline::open(CONFIG, dir.path(), &clock);
        t.at(0);
        t.fire(&["Down"]).await;
        assert_eq!(t.step().await.len(), 2);
        t.at(180);
        t.pipeline.close();
    }
    let t = Timeline::open(CONFIG, dir.path(), &clock);
    t.at(200);
    assert_eq!(t.step().await, Vec::<String>::new(), "nothing repeated");
    t.at(300);
    assert_eq!(
        t.step().await,
        lines(&["notify secondary-mail", "wait (waiting 10m)"]),
        "nothing skipped"
    );
    assert_eq!(t.step().await, Vec::<String>::new(), "once");
}

/// An acknowledgement can lapse (`ack_timeout`): escalation resumes with
/// the next step.
#[tokio::test]
async fn an_acknowledgement_times_out_and_escalation_resumes() {
    let yaml = CONFIG.replace(
        "  - name: platform\n",
        "  - name: platform\n    ack_timeout: 30m\n",
    );
    let t = Timeline::paged(&yaml).await;
    t.at(60);
    t.act(Action::Ack, "alice").await.unwrap();
    t.at(60 + 1799);
    assert_eq!(t.step().await, Vec::<String>::new());
    t.at(60 + 1800);
    assert_eq!(
        t.step().await,
        lines(&[
            "unack (acknowledgement by alice timed out)",
            "notify secondary-mail",
            "wait (waiting 10m)"
        ])
    );
}

/// A new alert joining an acknowledged incident pages the acknowledger
/// again, through the channel that reached them.
#[tokio::test]
async fn a_new_alert_in_an_acknowledged_incident_renotifies_the_acknowledger() {
    let t = Timeline::paged(CONFIG).await;
    t.at(60);
    t.act(Action::Ack, "alice").await.unwrap();
    // The group's next flush (group_interval 5m) carries the new alert.
    t.at(120);
    t.fire(&["Down", "Slow"]).await;
    assert_eq!(t.step().await, Vec::<String>::new(), "before the flush");
    t.at(300);
    assert_eq!(t.step().await, lines(&["renotify primary-im"]));
    t.at(600);
    assert_eq!(t.step().await, Vec::<String>::new(), "once");
}

/// (what is done to the incident, in what state, the error wanted).
#[tokio::test]
async fn actions_that_do_not_fit_the_incident_are_refused() {
    let t = Timeline::paged(CONFIG).await;
    assert!(matches!(
        t.act(Action::Unack, "bob").await,
        Err(ActError::NotAcked(_))
    ));
    t.act(Action::Ack, "alice").await.unwrap();
    assert!(matches!(
        t.act(Action::Ack, "bob").await,
        Err(ActError::AlreadyAcked { by, .. }) if by == "alice"
    ));
    t.act(Action::Resolve, "alice").await.unwrap();
    assert!(matches!(
        t.act(Action::Ack, "bob").await,
        Err(ActError::Resolved(_))
    ));
    let before = t.pipeline.log.last_seq();
    assert!(t.act(Action::Snooze, "bob").await.is_err());
    assert_eq!(t.pipeline.log.last_seq(), before, "nothing stored");
}

/// A snooze holds the escalation until it ends; then the next step.
#[tokio::test]
async fn a_snooze_holds_escalation_until_it_ends() {
    let t = Timeline::paged(CONFIG).await;
    t.at(120);
    t.act(Action::Snooze, "alice").await.unwrap(); // until 22m
    t.at(300);
    assert_eq!(t.step().await, Vec::<String>::new(), "snoozed");
    t.at(120 + 1200);
    assert_eq!(
        t.step().await,
        lines(&["notify secondary-mail", "wait (waiting 10m)"])
    );
}

/// `only_if` gates the steps after it; `repeat` runs the policy again.
#[tokio::test]
async fn conditions_gate_later_steps_and_repeat_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = CONFIG.replace(
        "    steps:\n      - notify: {via: [primary-im]}\n      - wait: 5m\n      - notify: {via: [secondary-mail]}\n      - wait: 10m\n      - notify: {via: [lead-mail]}\n",
        "    repeat: 1\n    steps:\n      - notify: {via: [primary-im]}\n      - wait: 5m\n      - only_if: {alerts_more_than: 1}\n      - notify: {via: [lead-mail]}\n",
    );
    let t = Timeline::open(&yaml, dir.path(), &clock);
    t.at(0);
    t.fire(&["Down"]).await;
    assert_eq!(
        t.step().await,
        lines(&["notify primary-im", "wait (waiting 5m)"])
    );
    t.at(300);
    assert_eq!(
        t.step().await,
        lines(&["condition_false (1 firing, not more than 1)"])
    );
    // The repetition starts a pass's waits later, and the group has grown.
    t.at(400);
    t.fire(&["Down", "Slow"]).await;
    t.at(600);
    assert_eq!(
        t.step().await,
        lines(&["notify primary-im", "wait (waiting 5m)"])
    );
    t.at(900);
    assert_eq!(
        t.step().await,
        lines(&[
            "condition (condition holds)",
            "notify lead-mail",
            "finished (every step taken; nobody acknowledged)"
        ])
    );
}

/// The issue's team: primary via DingTalk, after 5 minutes primary and
/// secondary by email, after 15 more the team lead; who "primary" is comes
/// from the schedule at the time of each step, and each page carries the
/// people's contact points.
#[tokio::test]
async fn a_policy_pages_whoever_the_schedule_has_on_call() {
    let yaml = r#"
route:
  receiver: team
  group_by: [team]
  group_wait: 0s
  escalation: platform
receivers:
  - name: team
  - name: sre-dingtalk
  - name: oncall-email
people:
  - name: alice
    email: alice@example.org
    dingtalk: { mobile: "13800000000" }
  - name: bob
    email: bob@example.org
  - name: lead
    email: lead@example.org
schedules:
  - name: primary
    time_zone: UTC
    layers:
      - name: daily
        rotation: daily
        handoff: "19:10"
        start: 2026-11-24
        people: [alice, bob]
  - name: secondary
    time_zone: UTC
    layers:
      - name: weekly
        rotation: weekly
        handoff: "09:00"
        start: 2026-11-23
        people: [bob]
escalation_policies:
  - name: platform
    steps:
      - notify: {schedules: [primary], via: [sre-dingtalk]}
      - wait: 5m
      - notify: {schedules: [primary, secondary], via: [oncall-email]}
      - wait: 15m
      - notify: {people: [lead], via: [oncall-email]}
"#;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let t = Timeline::open(yaml, dir.path(), &clock);
    // Whom each page (escalation `notification.due`) is for, by receiver.
    let pages = |t: &Timeline, after: u64| -> Vec<String> {
        t.pipeline
            .log
            .read(&EventQuery {
                after,
                kinds: vec!["notification.due".into()],
                limit: 100,
                ..EventQuery::default()
            })
            .unwrap()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::NotificationDue(d) if d.escalation.is_some() => Some(format!(
                    "{} -> {}",
                    d.group.receiver,
                    d.to.iter()
                        .map(|p| format!(
                            "{} <{}>{}",
                            p.name,
                            p.email.as_deref().unwrap_or(""),
                            p.mentions
                                .get("dingtalk_mobile")
                                .map(|m| format!(" @{m}"))
                                .unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => None,
            })
            .collect()
    };
    // 19:00, a day after alice's turn began at 19:10 yesterday: alice.
    let before = t.pipeline.log.last_seq();
    t.at(0);
    t.fire(&["Down"]).await;
    t.step().await;
    assert_eq!(
        pages(&t, before),
        ["sre-dingtalk -> alice <alice@example.org> @13800000000"]
    );
    // 19:10 the primary hands over to bob; 5 minutes in, the second step.
    let before = t.pipeline.log.last_seq();
    t.at(600);
    t.step().await;
    assert_eq!(
        pages(&t, before),
        ["oncall-email -> bob <bob@example.org>"],
        "bob is primary and secondary: paged once"
    );
    let before = t.pipeline.log.last_seq();
    t.at(600 + 900);
    t.step().await;
    assert_eq!(
        pages(&t, before),
        ["oncall-email -> lead <lead@example.org>"]
    );
}

/// MTTA and MTTR of a scripted history, computed by hand: incident A opens
/// at 0s, is acknowledged at 7m and resolved at 30m; incident B opens at
/// 10m and is resolved at 50m, never acknowledged. MTTA = 7m (A only);
/// MTTR = (30m + 40m) / 2 = 35m.
#[tokio::test]
async fn stats_of_a_scripted_history_match_the_hand_computed_figures() {
    use fenghuo::escalate::stats::compute;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let yaml = CONFIG.replace("group_by: [team]", "group_by: [alertname]");
    let t = Timeline::open(&yaml, dir.path(), &clock);
    let act_on = |name: &'static str| {
        let t = &t;
        move |action: Action, by: &'static str| async move {
            let id = t
                .pipeline
                .incidents
                .all()
                .into_iter()
                .find(|i| &i.group.group_labels["alertname"] == name)
                .unwrap()
                .id;
            act(
                &t.pipeline.log,
                &t.pipeline.incidents,
                Request {
                    incident: id,
                    action,
                    by: by.into(),
                    via: "api".into(),
                    until: None,
                    token: None,
                    reason: String::new(),
                },
                t.clock.now(),
                None,
            )
            .await
            .unwrap();
        }
    };
    t.at(0);
    t.fire(&["A"]).await;
    t.at(420);
    act_on("A")(Action::Ack, "alice").await;
    t.at(600);
    t.fire(&["A", "B"]).await;
    t.step().await;
    t.at(1800);
    act_on("A")(Action::Resolve, "alice").await;
    t.at(3000);
    act_on("B")(Action::Resolve, "bob").await;

    let from = t0() - Duration::hours(1);
    let to = t0() + Duration::hours(1);
    let stats = compute(&t.pipeline.log, from, to, &|_| None).unwrap();
    assert_eq!(stats.overall.incidents, 2);
    assert_eq!(stats.overall.acknowledged, 1);
    assert_eq!(stats.overall.mtta_seconds, Some(420.0));
    assert_eq!(stats.overall.mttr_seconds, Some(2100.0));
    assert_eq!(stats.overall.never_acknowledged, 1);
    assert_eq!(stats.by_receiver["team"].incidents, 2);
    let b = stats.noisiest.iter().find(|n| n.alertname == "B").unwrap();
    assert_eq!((b.fired, b.never_acknowledged), (1, 1));
    // A period that holds neither opening counts nothing.
    let later = compute(&t.pipeline.log, to, to + Duration::hours(1), &|_| None).unwrap();
    assert_eq!(later.overall.incidents, 0);
}
