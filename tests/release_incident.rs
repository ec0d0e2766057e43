//! A bad release heads its incident, through the real pipeline on a
//! manual clock: under `releases.alert`, the first alert of an app firing
//! in a release's bake window raises `ReleaseSuspected` for the release (a
//! recorded decision, `alert.received` from Fenghuo); an inhibit rule
//! `through: release` mutes the app's warnings suspected of it as its
//! symptoms; the release pages once with the stuck rollout, its pods
//! summarised; pods that crash after that page reach it as an update in
//! place that says the count grew, never as a page; and the release's
//! alert resolves when nothing suspected of it fires. Then the log is
//! replayed (from snapshots, and from the log alone) and must give the
//! same views, and a pass at the same instant decides nothing new.

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::event::{Release, ReleaseStatusChange};
use fenghuo::eventlog::{Event, EventKind, LabelSet, NewEvent};

mod support;
use support::timeline::{Timeline, notifications};

const CONFIG: &str = r#"
route:
  receiver: oncall
  group_by: [alertname, cluster, app]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['alertname=~"ReleaseSuspected|KubeDeploymentRolloutStuck"']
      group_by: [cluster, app]
      group_wait: 1m
receivers:
  - name: oncall
inhibit_rules:
  - source_matchers: ['alertname="ReleaseSuspected"']
    target_matchers: ['alertname!="ReleaseSuspected"', 'severity="warning"']
    through: release
releases:
  bake_window: 30m
  alert: {severity: warning}
storage:
  snapshot_every: 5
"#;

fn t0() -> DateTime<Utc> {
    "2026-11-26T03:00:00Z".parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fp(l: &LabelSet) -> String {
    fenghuo::evaluate::Fingerprint::of(l).to_string()
}

fn pod(n: u32) -> LabelSet {
    labels(&[
        ("alertname", "PodCrashLooping"),
        ("app", "checkout"),
        ("env", "prod"),
        ("cluster", "prod"),
        ("pod", &format!("checkout-{n}")),
        ("severity", "warning"),
    ])
}

fn rollout_stuck() -> LabelSet {
    labels(&[
        ("alertname", "KubeDeploymentRolloutStuck"),
        ("app", "checkout"),
        ("env", "prod"),
        ("cluster", "prod"),
        ("severity", "critical"),
    ])
}

/// The alert Fenghuo raises for rel-142.
fn release_alert() -> LabelSet {
    labels(&[
        ("alertname", "ReleaseSuspected"),
        ("release", "rel-142"),
        ("app", "checkout"),
        ("env", "prod"),
        ("cluster", "prod"),
        ("version", "v1.4.2"),
        ("severity", "warning"),
    ])
}

/// A release platform's calls at `at`: the release, then its statuses.
fn release(
    at: DateTime<Utc>,
    (id, version, by): (&str, &str, &str),
    statuses: &[&str],
) -> Vec<NewEvent> {
    let mut out = vec![NewEvent::new(
        at,
        "api",
        id,
        EventKind::ReleaseRecorded(Release {
            id: id.into(),
            app: "checkout".into(),
            env: "prod".into(),
            cluster: "prod".into(),
            version: version.into(),
            by: by.into(),
            change_url: String::new(),
            strategy: String::new(),
            via: "api".into(),
        }),
    )];
    for status in statuses {
        out.push(NewEvent::new(
            at,
            "api",
            id,
            EventKind::ReleaseStatusChanged(ReleaseStatusChange {
                id: id.into(),
                status: status.to_string(),
                by: by.into(),
                reason: String::new(),
            }),
        ));
    }
    out
}

/// Prometheus posts `alerts` at `secs`, started then: firing for hours,
/// or resolved then.
async fn post(t: &Timeline, secs: i64, alerts: &[LabelSet], resolved: bool) {
    t.clock.set(t0() + Duration::seconds(secs));
    let refs: Vec<&LabelSet> = alerts.iter().collect();
    t.post(&refs, t.clock.now(), resolved).await;
}

/// What Fenghuo decided about its release alert: `raised` or `resolved
/// (reason)`, with the instant.
fn release_alert_decisions(events: &[Event]) -> Vec<String> {
    let key = fp(&release_alert());
    events
        .iter()
        .filter(|e| e.key == key)
        .filter_map(|e| match &e.kind {
            EventKind::AlertReceived(_) => Some(format!("{} raised", e.occurred_at.time())),
            EventKind::AlertResolved(r) => {
                Some(format!("{} resolved ({})", e.occurred_at.time(), r.reason))
            }
            _ => None,
        })
        .collect()
}

/// The timeline of `bad-release.yaml`, small: v1.4.1 succeeded; v1.4.2
/// starts at 1 s; 3 pods crash-loop at 30 s; the rollout is reported stuck
/// at 60 s; 2 more pods at 90 s, just after the page. (Before the release
/// could head its incident, the pods paged at 60 s, the instant the
/// rollout was reported stuck, and the rollout at 90 s: two pages.)
#[tokio::test]
async fn a_bad_release_pages_once_headed_by_itself_and_late_pods_reach_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let mut t = Timeline::open(dir.path(), &clock, t0(), CONFIG);
    t.pipeline
        .log
        .append(release(
            t0(),
            ("rel-141", "v1.4.1", "bob"),
            &["started", "succeeded"],
        ))
        .await
        .unwrap();
    t.clock.set(t0() + Duration::seconds(1));
    t.pipeline
        .log
        .append(release(
            t.clock.now(),
            ("rel-142", "v1.4.2", "alice"),
            &["started"],
        ))
        .await
        .unwrap();
    assert_eq!(
        release_alert_decisions(&t.at(1).await),
        Vec::<String>::new()
    );

    // 30 s: the first pods crash; the release is suspected, and raised.
    let first: Vec<LabelSet> = (1..=3).map(pod).collect();
    post(&t, 30, &first, false).await;
    let events = t.at(30).await;
    assert_eq!(release_alert_decisions(&events), vec!["03:00:30 raised"]);
    let raised = t
        .pipeline
        .store
        .get(fenghuo::evaluate::Fingerprint::parse(&fp(&release_alert())).unwrap())
        .unwrap();
    assert_eq!(
        raised.report.annotations.get("summary"),
        Some(
            "checkout v1.4.2 by alice, started 29 s ago, is suspected: PodCrashLooping severity=warning"
        )
    );
    assert!(
        raised
            .report
            .annotations
            .get("description")
            .unwrap()
            .contains("Rollback target: v1.4.1 (rel-141)."),
        "{:?}",
        raised.report.annotations
    );
    // The pods' own group flushes at 60 s with all of them muted: nothing.
    post(&t, 60, &[rollout_stuck()], false).await;
    assert_eq!(notifications(&t.at(60).await), vec![]);
    assert_eq!(notifications(&t.at(89).await), vec![]);

    // 90 s: one page, the release and its stuck rollout, the pods
    // summarised under the release.
    let pages = notifications(&t.at(90).await);
    assert_eq!(pages.len(), 1, "{pages:#?}");
    let mut firing = pages[0].firing.clone();
    firing.sort();
    let mut want = vec![fp(&release_alert()), fp(&rollout_stuck())];
    want.sort();
    assert_eq!(firing, want);
    assert!(!pages[0].update_in_place);
    let mut symptoms: Vec<(String, String, String, bool)> = pages[0]
        .symptoms
        .iter()
        .map(|s| {
            (
                s.fingerprint.clone(),
                s.cause.clone(),
                s.through.clone(),
                s.new,
            )
        })
        .collect();
    symptoms.sort();
    let mut want: Vec<_> = first
        .iter()
        .map(|p| {
            (
                fp(p),
                fp(&release_alert()),
                "release rel-142".to_string(),
                false,
            )
        })
        .collect();
    want.sort();
    assert_eq!(symptoms, want);
    assert_eq!(
        fenghuo::evaluate::topology::summary_of(&pages[0].symptoms),
        "3 pods affected"
    );

    // Just after the page, 2 more pods crash: muted as they come, and no
    // page for them at any flush.
    let late: Vec<LabelSet> = (4..=5).map(pod).collect();
    post(&t, 90, &late, false).await;
    assert_eq!(notifications(&t.at(91).await), vec![]);
    assert_eq!(notifications(&t.at(389).await), vec![]);

    // 390 s, the release group's next flush: its message is edited to say
    // the count grew, and which are new.
    let events = t.at(390).await;
    let updates = notifications(&events);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let update = &updates[0];
    assert!(update.update_in_place, "{update:#?}");
    assert_eq!(update.new, Vec::<String>::new());
    assert_eq!(update.symptoms.len(), 5);
    assert_eq!(
        fenghuo::evaluate::topology::summary_of(&update.symptoms),
        "5 pods affected (new: 2 pods)"
    );
    // `fenghuo why` for a late pod: not paged on its own, and why.
    let due = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::NotificationDue(_)))
        .unwrap();
    assert_eq!(
        fenghuo::cli::fate_in(due, &fp(&late[0])).as_deref(),
        Some(
            format!(
                "not paged on its own: a symptom of {} through release rel-142, summarised in its page",
                fp(&release_alert())
            )
            .as_str()
        )
    );
    // The incident carries all five.
    let incident = t.pipeline.incidents.of_group(&update.group.group).unwrap();
    assert_eq!(incident.symptoms.len(), 5, "{incident:#?}");
    // Nothing more until something changes.
    assert_eq!(notifications(&t.at(689).await), vec![]);

    // 12 min: everything recovers; the release's alert resolves with them.
    let everything: Vec<LabelSet> = first
        .iter()
        .chain(&late)
        .cloned()
        .chain([rollout_stuck()])
        .collect();
    post(&t, 720, &everything, true).await;
    let events = t.at(720).await;
    assert_eq!(
        release_alert_decisions(&events),
        vec!["03:12:00 resolved (no alert suspected of release rel-142 fires any more)"]
    );
    // 13 min, still in the bake window: a pod crashes again, so does the
    // release's alert.
    post(&t, 780, &[pod(1)], false).await;
    assert_eq!(
        release_alert_decisions(&t.at(780).await),
        vec!["03:13:00 raised"]
    );

    // Replay equals live: reopened (restored from a snapshot taken every
    // 5 events, the tail replayed), the views agree and a pass at the same
    // instant decides nothing; from the log alone too.
    let live_groups = t.pipeline.groups.all();
    let live_alert = t.pipeline.releases.alert_of("rel-142");
    let live_subjects = t.pipeline.releases.subjects_of("rel-142");
    assert_eq!(live_alert, Some(fp(&release_alert())));
    assert_eq!(live_subjects.len(), 6, "5 pods and the rollout");
    t.pipeline.close();
    drop(t);
    let mut again = Timeline::open(dir.path(), &clock, t0(), CONFIG);
    assert_eq!(again.pipeline.groups.all(), live_groups);
    assert_eq!(again.pipeline.releases.alert_of("rel-142"), live_alert);
    assert_eq!(
        again.pipeline.releases.subjects_of("rel-142"),
        live_subjects
    );
    assert_eq!(again.at(780).await, vec![]);
    let views = fenghuo::pipeline::Views::new();
    fenghuo::eventlog::replay(&again.pipeline.log, &views.projections(), |_, _| {}).unwrap();
    assert_eq!(views.groups.all(), live_groups);
    assert_eq!(views.releases.alert_of("rel-142"), live_alert);
    assert_eq!(views.releases.subjects_of("rel-142"), live_subjects);
}

/// Without `releases.alert` (the default) a release is never raised as an
/// alert: the suspicion is recorded, the pods page as before.
#[tokio::test]
async fn without_releases_alert_no_release_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let config = CONFIG
        .replace("  alert: {severity: warning}\n", "")
        .replace(
            "source_matchers: ['alertname=\"ReleaseSuspected\"']",
            "source_matchers: ['alertname=\"Other\"']",
        );
    let mut t = Timeline::open(dir.path(), &clock, t0(), &config);
    t.pipeline
        .log
        .append(release(t0(), ("rel-142", "v1.4.2", "alice"), &["started"]))
        .await
        .unwrap();
    post(&t, 30, &[pod(1)], false).await;
    let events = t.at(30).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ReleaseSuspected(_)))
    );
    assert_eq!(release_alert_decisions(&events), Vec::<String>::new());
    let pages = notifications(&t.at(60).await);
    assert_eq!(
        pages.iter().map(|n| n.firing.clone()).collect::<Vec<_>>(),
        vec![vec![fp(&pod(1))]]
    );
}

/// A bad `releases.alert`, or a rule whose cause is the release's alert
/// while none is raised, is refused naming the field.
#[test]
fn a_bad_release_alert_is_refused_naming_the_field() {
    let rows = [
        (
            "  alert: {severity: \"\"}\n",
            "releases.alert.severity: must not be empty",
        ),
        ("  alert: {severity: warning, sevrity: x}\n", "sevrity"),
        (
            "",
            "inhibit_rules[0].source_matchers: alertname=\"ReleaseSuspected\", but releases.alert is not set, so no such alert is raised",
        ),
    ];
    for (alert, named) in rows {
        let text = CONFIG.replace("  alert: {severity: warning}\n", alert);
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains(named), "{named}: {err}");
    }
}
