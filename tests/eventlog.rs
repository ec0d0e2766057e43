//! The event log against a real SQLite file in a temp dir.
//!
//! Each test reads as a timeline: what is appended, what the clock says, and
//! what the log must answer afterwards. Nothing here sleeps: `recorded_at`
//! comes from a `ManualClock`, and the only waits are bounded guards against a
//! hang (`within`), which a passing test never reaches.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock, SharedClock};
use fenghuo::evaluate::Fingerprint;
use fenghuo::eventlog::{
    self, AlertReport, AlertResolution, Event, EventKind, EventLog, EventQuery, LabelSet, Lease,
    LogError, LogOptions, NewEvent, Projection, Synchronous,
};
use fenghuo::ingest::{
    AlertIndex, Ingest, IngestSettings, alertmanager, pagerduty, pagerduty::PagerDutyEvent,
};
use futures::StreamExt;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("valid RFC 3339 instant")
}

/// A temp dir holding `fenghuo.db`, and the clock every open of it runs on.
struct Store {
    dir: TempDir,
    clock: ManualClock,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("temp dir"),
            clock: ManualClock::new(t("2026-03-01T08:00:00Z")),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fenghuo.db")
    }

    fn shared_clock(&self) -> SharedClock {
        Arc::new(self.clock.clone())
    }

    /// Opens with the production defaults (`synchronous = full`).
    fn open(&self) -> EventLog {
        self.open_with(LogOptions::default(), Vec::new())
    }

    fn open_with(&self, options: LogOptions, projections: Vec<Arc<dyn Projection>>) -> EventLog {
        EventLog::open(&self.path(), options, self.shared_clock(), projections)
            .expect("open event log")
    }
}

/// Options for tests about ordering rather than durability: no fsync per
/// commit, so thousands of small commits stay fast.
fn no_fsync() -> LogOptions {
    LogOptions {
        synchronous: Synchronous::Normal,
        ..LogOptions::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn report(n: usize, starts_at: DateTime<Utc>) -> AlertReport {
    let identity = labels(&[
        ("alertname", "DiskFull"),
        ("instance", &format!("db-{n}:9100")),
    ]);
    AlertReport {
        fingerprint: Fingerprint::of(&identity).to_string().into(),
        labels: identity,
        annotations: labels(&[("summary", &format!("disk {n} is full"))]),
        starts_at,
        ends_at: Some(starts_at + Duration::minutes(4)),
        generator_url: format!("http://prometheus:9090/graph?g0.expr=disk&n={n}"),
        extra: Default::default(),
    }
}

/// An `alert.received` for alert `n`, occurring at `at`.
fn received(n: usize, at: DateTime<Utc>) -> NewEvent {
    let r = report(n, at);
    NewEvent::new(
        at,
        "prometheus",
        r.fingerprint.clone(),
        EventKind::AlertReceived(Arc::new(r)),
    )
}

/// A small event of the given kind about `key`, for ordering tests.
fn acked(key: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent::new(
        at,
        "pagerduty",
        key,
        EventKind::AlertAcked {
            fingerprint: key.to_string(),
            by: "test".into(),
            dedup_key: None,
        },
    )
}

/// What the log must hold for `new` once it answered `seq` at `recorded_at`.
fn stored(new: &NewEvent, seq: u64, recorded_at: DateTime<Utc>) -> Event {
    Event {
        seq,
        id: new.id.as_str().into(),
        occurred_at: new.occurred_at,
        recorded_at,
        source: new.source.as_str().into(),
        key: new.key.as_str().into(),
        idempotency_key: new.idempotency_key.clone(),
        kind: new.kind.clone(),
    }
}

fn read_all(log: &EventLog) -> Vec<Event> {
    log.read(&EventQuery::default())
        .expect("read the whole log")
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Guards an await against a hang; a passing test never waits this long.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------

/// Close and reopen: every event reads back identical — seq, id, both
/// timestamps to the nanosecond, source, key, idempotency key and payload.
#[tokio::test]
async fn appends_survive_a_restart() {
    let store = Store::new();
    let log = store.open();

    // 08:00:00 — one batch with every kind, nanosecond timestamps, a
    // non-ASCII annotation, an unknown field kept in `extra`, and an
    // idempotency key.
    let mut r = report(1, t("2026-03-01T07:59:58.123456789Z"));
    r.annotations
        .insert("description".into(), "磁盘已满 — disk full ✓".into());
    r.extra
        .insert("values".into(), serde_json::json!({"B": 3.5}));
    let fp = r.fingerprint.clone();
    let batch = vec![
        NewEvent::new(
            r.starts_at,
            "prometheus",
            &fp,
            EventKind::AlertReceived(Arc::new(r.clone())),
        )
        .idempotent(format!("alert:{fp}:0:received")),
        NewEvent::new(
            t("2026-03-01T07:59:59.000000001Z"),
            "fenghuo",
            "alert-leases",
            EventKind::AlertRefreshed {
                leases: vec![Lease {
                    ends_at: t("2026-03-01T08:06:00.5Z"),
                    fingerprints: vec![fp.clone()].into(),
                }],
            },
        ),
        acked(&fp, t("2026-03-01T07:59:59.999999999Z")),
    ];
    let answers = log.append(batch.clone()).await.unwrap();
    let first_recorded = store.clock.now();
    let mut expected: Vec<Event> = batch
        .iter()
        .zip(&answers)
        .map(|(e, a)| stored(e, a.seq, first_recorded))
        .collect();
    assert_eq!(seqs(&expected), vec![1, 2, 3]);
    assert!(answers.iter().all(|a| !a.duplicate));

    // 08:01:00 — a resolve carrying the full report, in its own commit.
    store.clock.advance(Duration::minutes(1));
    let resolve = NewEvent::new(
        store.clock.now(),
        "prometheus",
        &fp,
        EventKind::AlertResolved(AlertResolution {
            fingerprint: fp.to_string(),
            ends_at: store.clock.now(),
            reason: "resolved by source".into(),
            report: Some(r),
        }),
    );
    let a = log.append(vec![resolve.clone()]).await.unwrap();
    expected.push(stored(&resolve, a[0].seq, store.clock.now()));
    assert_eq!(a[0].seq, 4);

    assert_eq!(read_all(&log), expected, "read back before the restart");
    assert_eq!(log.last_seq(), 4);

    // Close: appends are refused from then on.
    log.close();
    assert!(log.is_closed());
    let refused = log.append(vec![acked(&fp, store.clock.now())]).await;
    assert!(
        matches!(refused.as_ref().map_err(|e| &**e), Err(LogError::Closed)),
        "{refused:?}"
    );

    // Reopen the same file: the same four events, and seq continues at 5.
    store.clock.advance(Duration::hours(1));
    let log = store.open();
    assert_eq!(log.last_seq(), 4);
    assert_eq!(log.count().unwrap(), 4);
    assert_eq!(read_all(&log), expected, "read back after the restart");
    let a = log
        .append(vec![acked(&fp, store.clock.now())])
        .await
        .unwrap();
    assert_eq!(a[0].seq, 5, "seq continues after a restart, never reused");
    log.close();
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// 16 tasks × 200 appends of one event each, all at once. Every append gets
/// its own seq; commit order (the live broadcast) is strictly increasing;
/// the log holds exactly the 3,200 events, each at the seq it was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_distinct_seqs_in_commit_order() {
    const TASKS: usize = 16;
    const EACH: usize = 200;
    const TOTAL: usize = TASKS * EACH;

    let store = Store::new();
    let log = store.open();

    // Commit order as the writer publishes it; subscribed before any append.
    let mut live = log.subscribe();
    let committed = tokio::spawn(async move {
        let mut order = Vec::with_capacity(TOTAL);
        while order.len() < TOTAL {
            let e = live.recv().await.expect("live subscriber keeps up");
            order.push(e.seq);
        }
        order
    });

    let appenders: Vec<_> = (0..TASKS)
        .map(|task| {
            let log = log.clone();
            let clock = store.clock.clone();
            tokio::spawn(async move {
                let mut mine = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let ev = acked(&format!("task-{task}"), clock.now());
                    let id = ev.id.clone();
                    let answer = log.append(vec![ev]).await.expect("append");
                    assert_eq!(answer.len(), 1);
                    assert!(!answer[0].duplicate, "task {task} append {i}");
                    mine.push((answer[0].seq, id));
                }
                mine
            })
        })
        .collect();

    let mut answered: HashMap<u64, String> = HashMap::new();
    for (task, handle) in appenders.into_iter().enumerate() {
        let mine = within("appender", handle).await.unwrap();
        // One task's appends are sequential, so their seqs increase.
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "task {task} got seqs out of order"
        );
        for (seq, id) in mine {
            assert!(answered.insert(seq, id).is_none(), "seq {seq} given twice");
        }
    }
    assert_eq!(answered.len(), TOTAL);
    assert_eq!(
        answered.keys().copied().collect::<BTreeSet<_>>(),
        (1..=TOTAL as u64).collect::<BTreeSet<_>>(),
        "seqs are exactly 1..=3200"
    );

    let order = within("live broadcast", committed).await.unwrap();
    assert_eq!(
        order,
        (1..=TOTAL as u64).collect::<Vec<_>>(),
        "commit order is seq order"
    );

    let all = read_all(&log);
    assert_eq!(all.len(), TOTAL);
    assert_eq!(log.count().unwrap(), TOTAL as u64);
    assert_eq!(log.last_seq(), TOTAL as u64);
    for e in &all {
        assert_eq!(answered[&e.seq], e.id, "seq {} holds another event", e.seq);
    }
    log.close();
}

// ---------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------

/// A delivery that comes twice is stored once, whether the copy is in the same
/// batch, a later batch, or arrives after a restart; the copy is answered
/// with the original's seq and `duplicate: true`, and consumes no seq.
#[tokio::test]
async fn a_duplicate_idempotency_key_is_stored_once() {
    let store = Store::new();
    let log = store.open();
    let now = store.clock.now();
    let first = acked("a", now).idempotent("delivery-1");

    // Same batch: the first copy wins, the second answers its seq.
    let answers = log
        .append(vec![
            first.clone(),
            acked("a-copy", now).idempotent("delivery-1"),
            acked("b", now).idempotent("delivery-2"),
        ])
        .await
        .unwrap();
    let pairs: Vec<(u64, bool)> = answers.iter().map(|a| (a.seq, a.duplicate)).collect();
    assert_eq!(pairs, vec![(1, false), (1, true), (2, false)]);

    // A later batch: both keys again, plus one new event, which takes seq 3
    // (the duplicates consumed no seq).
    let answers = log
        .append(vec![
            acked("b-again", now).idempotent("delivery-2"),
            acked("c", now),
            acked("a-again", now).idempotent("delivery-1"),
        ])
        .await
        .unwrap();
    let pairs: Vec<(u64, bool)> = answers.iter().map(|a| (a.seq, a.duplicate)).collect();
    assert_eq!(pairs, vec![(2, true), (3, false), (1, true)]);

    // A batch of nothing but duplicates publishes nothing and moves nothing.
    let mut live = log.subscribe();
    let answers = log
        .append(vec![acked("x", now).idempotent("delivery-1")])
        .await
        .unwrap();
    assert_eq!((answers[0].seq, answers[0].duplicate), (1, true));
    assert!(live.try_recv().is_err(), "a duplicate is not broadcast");
    assert_eq!(log.last_seq(), 3);

    // After a restart the keys are still known.
    log.close();
    let log = store.open();
    let answers = log
        .append(vec![
            acked("a-after-restart", now).idempotent("delivery-1"),
            acked("d", now).idempotent("delivery-3"),
        ])
        .await
        .unwrap();
    let pairs: Vec<(u64, bool)> = answers.iter().map(|a| (a.seq, a.duplicate)).collect();
    assert_eq!(pairs, vec![(1, true), (4, false)]);

    // Stored: exactly one event per key, the first copy's.
    let all = read_all(&log);
    assert_eq!(seqs(&all), vec![1, 2, 3, 4]);
    assert_eq!(all[0], stored(&first, 1, now));
    assert_eq!(all[0].key, "a");
    assert_eq!(log.seq_of_idempotency_key("delivery-1").unwrap(), Some(1));
    assert_eq!(log.seq_of_idempotency_key("delivery-2").unwrap(), Some(2));
    assert_eq!(log.seq_of_idempotency_key("delivery-3").unwrap(), Some(4));
    assert_eq!(log.seq_of_idempotency_key("never-sent").unwrap(), None);
    log.close();
}

// ---------------------------------------------------------------------------
// Tails
// ---------------------------------------------------------------------------

/// Appends `n` events in appends of `per` each, keys cycling over `keys`.
async fn append_many(log: &EventLog, clock: &ManualClock, n: usize, per: usize, keys: usize) {
    let mut done = 0;
    while done < n {
        let batch: Vec<NewEvent> = (done..(done + per).min(n))
            .map(|i| acked(&format!("k{}", i % keys), clock.now()))
            .collect();
        done += batch.len();
        log.append(batch).await.expect("append");
    }
}

/// Collects a tail until it delivers `last`; returns the seqs in order.
async fn collect_until(
    stream: &mut (impl futures::Stream<Item = Result<Arc<Event>, Arc<LogError>>> + Unpin),
    last: u64,
) -> Vec<u64> {
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let e = stream
            .next()
            .await
            .expect("tail ended early")
            .expect("tail error");
        got.push(e.seq);
    }
    got
}

/// Timeline: 5,000 events stored → a tail starts from 0 → as soon as it has
/// delivered the first one (catch-up from disk under way), another task
/// appends 5,000 more. The tail delivers exactly 1..=10,000: no gap and no
/// duplicate where catch-up hands over to live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tail_from_zero_switches_from_disk_to_live_without_gap_or_duplicate() {
    let store = Store::new();
    let log = store.open_with(no_fsync(), Vec::new());
    append_many(&log, &store.clock, 5_000, 100, 7).await;
    assert_eq!(log.last_seq(), 5_000);

    let mut tail = eventlog::tail(&log, 0, |_| true);
    let first = within("first tailed event", tail.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.seq, 1);

    let appender = {
        let log = log.clone();
        let clock = store.clock.clone();
        tokio::spawn(async move { append_many(&log, &clock, 5_000, 10, 7).await })
    };
    let mut got = vec![first.seq];
    got.extend(within("tail to reach 10,000", collect_until(&mut tail, 10_000)).await);
    appender.await.unwrap();

    assert_eq!(got, (1..=10_000).collect::<Vec<u64>>());
    log.close();
}

/// Regression: a tail whose reader stalls falls behind the live buffer (16
/// events here) and must re-read the missed range from disk, not skip it.
/// Timeline: 5,000 stored → tail from 0, read up to 5,000 (catch-up done, the
/// tail is live) → the reader stops reading while 5,000 more are appended in
/// appends of 10 → the reader resumes: 5,001..=10,000, no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_that_falls_behind_the_live_buffer_rereads_from_disk() {
    let store = Store::new();
    let log = store.open_with(
        LogOptions {
            tail_buffer: 16,
            ..no_fsync()
        },
        Vec::new(),
    );
    append_many(&log, &store.clock, 5_000, 100, 7).await;

    let mut tail = eventlog::tail(&log, 0, |_| true);
    let caught_up = within("catch-up to 5,000", collect_until(&mut tail, 5_000)).await;
    assert_eq!(caught_up, (1..=5_000).collect::<Vec<u64>>());

    // The reader is stalled for the whole of these appends: 500 live events
    // pass a buffer of 16.
    append_many(&log, &store.clock, 5_000, 10, 7).await;

    let rest = within("tail to reach 10,000", collect_until(&mut tail, 10_000)).await;
    assert_eq!(rest, (5_001..=10_000).collect::<Vec<u64>>());
    log.close();
}

/// A filtered tail (kind and key) sees exactly the matching events, from disk
/// and then live, in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_tail_sees_only_matching_events_from_disk_then_live() {
    let store = Store::new();
    let log = store.open_with(no_fsync(), Vec::new());
    let now = store.clock.now();

    // Before the tail: acks about k0..k4 and receives about alerts 0..9.
    let mut before = Vec::new();
    for i in 0..50 {
        before.push(acked(&format!("k{}", i % 5), now));
        before.push(received(i % 10, now));
    }
    log.append(before).await.unwrap();

    let mut tail = eventlog::tail(&log, 0, |e| e.kind.name() == "alert.acked" && e.key == "k3");

    // After the tail started: more of both, then a final matching sentinel.
    let mut after = Vec::new();
    for i in 0..50 {
        after.push(acked(&format!("k{}", i % 5), now));
        after.push(received(i % 10, now));
    }
    log.append(after).await.unwrap();
    let sentinel = log.append(vec![acked("k3", now)]).await.unwrap()[0].seq;

    let got = within("filtered tail", collect_until(&mut tail, sentinel)).await;
    let want: Vec<u64> = read_all(&log)
        .into_iter()
        .filter(|e| e.kind.name() == "alert.acked" && e.key == "k3")
        .map(|e| e.seq)
        .collect();
    assert_eq!(want.len(), 21, "10 before, 10 after, the sentinel");
    assert_eq!(got, want);
    log.close();
}

/// The tail's contract: it streams "until the receiver is dropped or the log
/// closes". After `close()` the stream must end (yield `None`) instead of
/// waiting forever for events that cannot come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_ends_when_the_log_closes() {
    let store = Store::new();
    let log = store.open_with(no_fsync(), Vec::new());
    append_many(&log, &store.clock, 3, 3, 1).await;

    let mut tail = eventlog::tail(&log, 0, |_| true);
    assert_eq!(
        within("caught-up tail", collect_until(&mut tail, 3)).await,
        vec![1, 2, 3]
    );

    log.close();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), tail.next()).await;
    match end {
        Ok(None) => {}
        Ok(Some(item)) => panic!("tail delivered after close: {item:?}"),
        Err(_) => panic!("tail still open 5 s after the log closed: it never ends"),
    }
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

fn v2(body: &str, now: DateTime<Utc>) -> Vec<fenghuo::ingest::IncomingAlert> {
    alertmanager::parse_v2(body.as_bytes(), now, Duration::minutes(5)).expect("valid v2 body")
}

/// A Prometheus-style API v2 body for alerts `ids`, ending at `ends`.
fn prometheus_body(
    ids: impl IntoIterator<Item = usize>,
    summary: &str,
    ends: DateTime<Utc>,
) -> String {
    let alerts: Vec<serde_json::Value> = ids
        .into_iter()
        .map(|i| {
            serde_json::json!({
                "labels": {"alertname": "HighCPU", "instance": format!("node-{i}:9100"), "job": "node"},
                "annotations": {"summary": summary},
                "startsAt": "2026-03-01T07:55:00Z",
                "endsAt": ends.to_rfc3339(),
                "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
            })
        })
        .collect();
    serde_json::Value::Array(alerts).to_string()
}

fn pd(body: serde_json::Value, now: DateTime<Utc>) -> PagerDutyEvent {
    pagerduty::parse(body.to_string().as_bytes(), now, || "generated-key".into())
        .expect("valid PagerDuty event")
}

/// The index the writer keeps current equals the index rebuilt by replaying
/// the log — after a history with every kind of change: new alerts, re-sends
/// and lease checkpoints, changed annotations, resolves, re-fires, webhook
/// batches, PagerDuty trigger / acknowledge / supersede / resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_the_index_the_writer_kept_live() {
    let store = Store::new();
    let live = Arc::new(AlertIndex::new());
    let log = store.open_with(LogOptions::default(), vec![live.clone()]);
    let clock = store.clock.clone();
    let ingest = Ingest::new(
        log.clone(),
        live.clone(),
        store.shared_clock(),
        IngestSettings::default(),
    );

    // 08:00 — 20 Prometheus alerts fire.
    let now = clock.now();
    ingest
        .alerts(
            "prometheus",
            v2(
                &prometheus_body(0..20, "hot", now + Duration::minutes(4)),
                now,
            ),
        )
        .await
        .unwrap();

    // 08:00–08:10 — re-sent every minute, lease checkpoints every 30 s.
    for _ in 0..10 {
        clock.advance(Duration::seconds(30));
        ingest.checkpoint_leases().await.unwrap();
        clock.advance(Duration::seconds(30));
        let now = clock.now();
        ingest
            .alerts(
                "prometheus",
                v2(
                    &prometheus_body(0..20, "hot", now + Duration::minutes(4)),
                    now,
                ),
            )
            .await
            .unwrap();
        ingest.checkpoint_leases().await.unwrap();
    }

    // 08:10 — three change their annotations; four resolve; two re-fire.
    let now = clock.now();
    let ends = now + Duration::minutes(4);
    ingest
        .alerts(
            "prometheus",
            v2(&prometheus_body(0..3, "hotter", ends), now),
        )
        .await
        .unwrap();
    ingest
        .alerts(
            "prometheus",
            v2(
                &prometheus_body(10..14, "hot", now - Duration::seconds(1)),
                now,
            ),
        )
        .await
        .unwrap();
    clock.advance(Duration::minutes(1));
    let now = clock.now();
    ingest
        .alerts(
            "prometheus",
            v2(
                &prometheus_body(10..12, "hot", now + Duration::minutes(4)),
                now,
            ),
        )
        .await
        .unwrap();

    // 08:11 — an Alertmanager webhook group fires, partly resolves, resolves.
    for fixture in [
        include_str!("fixtures/alertmanager-0.25-webhook-firing.json"),
        include_str!("fixtures/alertmanager-0.25-webhook-partial-resolved.json"),
        include_str!("fixtures/alertmanager-0.25-webhook-resolved.json"),
    ] {
        let alerts = alertmanager::parse_webhook(fixture.as_bytes(), clock.now()).unwrap();
        ingest.alerts("alertmanager", alerts).await.unwrap();
    }

    // 08:12 — PagerDuty: trigger, acknowledge, re-trigger with another
    // severity (the old alert resolves), resolve; a second incident stays.
    let now = clock.now();
    let trigger = |severity: &str, key: &str| {
        serde_json::json!({
            "routing_key": "R0UTING", "event_action": "trigger", "dedup_key": key,
            "payload": {"summary": "disk full", "source": "db-1", "severity": severity}
        })
    };
    for event in [
        trigger("warning", "db-1/disk"),
        serde_json::json!({"routing_key": "R0UTING", "event_action": "acknowledge", "dedup_key": "db-1/disk"}),
        trigger("critical", "db-1/disk"),
        serde_json::json!({"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": "db-1/disk"}),
        trigger("error", "db-2/disk"),
        serde_json::json!({"routing_key": "R0UTING", "event_action": "acknowledge", "dedup_key": "db-2/disk"}),
    ] {
        ingest.pagerduty(pd(event, now)).await.unwrap();
    }

    let kinds: BTreeSet<&str> = read_all(&log).iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        EventKind::NAMES
            .iter()
            .copied()
            // alert.fired and flapping are the dispatcher's decisions; the
            // index ignores them.
            .filter(|k| {
                k.starts_with("alert.")
                    && !matches!(
                        *k,
                        "alert.fired" | "alert.flapping_started" | "alert.flapping_stopped"
                    )
            })
            .collect(),
        "the history covers every alert kind the index folds"
    );
    let live_snapshot = live.snapshot();
    // 20 Prometheus, 3 webhook, 3 PagerDuty (db-1 twice: its labels changed).
    assert_eq!(live_snapshot.len(), 20 + 3 + 3);

    // Replay into a fresh index: equal to the live one.
    let rebuilt = Arc::new(AlertIndex::new());
    let mut last_progress = (0, 0);
    let folded = eventlog::replay(
        &log,
        &[rebuilt.clone() as Arc<dyn Projection>],
        |done, total| last_progress = (done, total),
    )
    .unwrap();
    assert_eq!(folded, log.last_seq());
    assert_eq!(last_progress, (log.last_seq(), log.last_seq()));
    assert_eq!(
        rebuilt.snapshot(),
        live_snapshot,
        "replayed index == live index"
    );
    for key in ["db-1/disk", "db-2/disk"] {
        assert_eq!(
            rebuilt.fingerprint_of_dedup_key(key),
            live.fingerprint_of_dedup_key(key),
            "dedup key {key}"
        );
    }

    // Replaying into the live index itself resets it first: still equal.
    eventlog::replay(&log, &[live.clone() as Arc<dyn Projection>], |_, _| {}).unwrap();
    assert_eq!(live.snapshot(), live_snapshot, "replay is not additive");

    // And a restart, which replays on open, gives the same index.
    log.close();
    let reopened = Arc::new(AlertIndex::new());
    let log = store.open_with(LogOptions::default(), vec![reopened.clone()]);
    assert_eq!(reopened.snapshot(), live_snapshot, "index after restart");
    log.close();
}

/// Appends `events` in appends of 1,000.
fn append_in_thousands(log: &EventLog, events: Vec<NewEvent>) {
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<NewEvent> = events.by_ref().take(1_000).collect();
        log.append_blocking(batch).expect("append");
    }
}

/// Replay decodes chunks in parallel and must still fold them in seq order.
/// A history of 20,000 events (several replay chunks) where order decides
/// the outcome: 8,000 alerts fire, all resolve, half fire again with a new
/// annotation. Folded out of order, some would end resolved or with the old
/// content.
#[test]
fn replay_of_many_chunks_folds_in_seq_order() {
    let store = Store::new();
    let live = Arc::new(AlertIndex::new());
    let log = store.open_with(no_fsync(), vec![live.clone()]);
    let at = store.clock.now();

    let fire: Vec<NewEvent> = (0..8_000).map(|i| received(i, at)).collect();
    let resolve: Vec<NewEvent> = (0..8_000)
        .map(|i| {
            let fp = report(i, at).fingerprint;
            NewEvent::new(
                at,
                "prometheus",
                &fp,
                EventKind::AlertResolved(AlertResolution {
                    fingerprint: fp.to_string(),
                    ends_at: at + Duration::minutes(1),
                    reason: "resolved by source".into(),
                    report: None,
                }),
            )
        })
        .collect();
    let refire: Vec<NewEvent> = (0..8_000)
        .step_by(2)
        .map(|i| {
            let mut r = report(i, at + Duration::minutes(2));
            r.annotations.insert("summary".into(), "again".into());
            NewEvent::new(
                r.starts_at,
                "prometheus",
                r.fingerprint.clone(),
                EventKind::AlertReceived(Arc::new(r)),
            )
        })
        .collect();
    append_in_thousands(&log, fire);
    append_in_thousands(&log, resolve);
    append_in_thousands(&log, refire);
    assert_eq!(log.last_seq(), 20_000);
    let now = at + Duration::minutes(3);
    assert_eq!(live.firing_count(now), 4_000);

    let rebuilt = Arc::new(AlertIndex::new());
    let mut progress = Vec::new();
    let folded = eventlog::replay(
        &log,
        &[rebuilt.clone() as Arc<dyn Projection>],
        |done, total| progress.push((done, total)),
    )
    .unwrap();
    assert_eq!(folded, 20_000);
    assert_eq!(progress.last(), Some(&(20_000, 20_000)));
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress only moves forward: {progress:?}"
    );
    assert_eq!(rebuilt.firing_count(now), 4_000);
    assert_eq!(rebuilt.snapshot(), live.snapshot());
    log.close();
}

/// Regression: a stored event whose payload cannot be decoded (a damaged
/// file, a manual edit) makes opening the log fail with `Corrupt` naming its
/// seq — wherever in the log it is — instead of hanging. Opening replays the
/// log, so a hang here is a `fenghuo serve` that never starts and never says
/// why. (The test damages the row with SQL, as a disk fault would.)
#[test]
fn a_corrupt_payload_fails_open_naming_its_seq() {
    const TOTAL: i64 = 60_000;
    let store = Store::new();
    let log = store.open_with(no_fsync(), Vec::new());
    let at = store.clock.now();
    append_in_thousands(
        &log,
        (0..TOTAL).map(|i| acked(&format!("k{i}"), at)).collect(),
    );
    log.close();

    // (seq damaged, where that is) — the last rows first, so an early hang
    // does not hide the other answers.
    let table = [
        (TOTAL, "the last event: the whole log was read before it"),
        (TOTAL / 2, "the middle: half the log still to read"),
        (1, "the first event: nearly all the log still to read"),
    ];
    let db = rusqlite::Connection::open(store.path()).unwrap();
    for (seq, where_) in table {
        let original: String = db
            .query_row("SELECT payload FROM events WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .unwrap();
        db.execute(
            "UPDATE events SET payload = '{\"fingerprint\": 7' WHERE seq = ?1",
            [seq],
        )
        .unwrap();

        // Open on a thread of its own, so a hang fails the test, not the run.
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, clock) = (store.path(), store.shared_clock());
        std::thread::spawn(move || {
            // Replay (which decodes) runs only when something folds the log.
            let views: Vec<Arc<dyn Projection>> = vec![Arc::new(AlertIndex::new())];
            let opened = EventLog::open(&path, LogOptions::default(), clock, views);
            let _ = tx.send(opened.map(|log| log.close()));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(Err(LogError::Corrupt { seq: bad, .. })) => {
                assert_eq!(bad, seq as u64, "{where_}: the error names the damaged seq")
            }
            Ok(Err(e)) => panic!("{where_}: open failed with {e} instead of Corrupt"),
            Ok(Ok(())) => panic!("{where_}: a log with a damaged event opened"),
            Err(_) => panic!("{where_}: open (replay) still hangs after 10 s"),
        }

        db.execute(
            "UPDATE events SET payload = ?1 WHERE seq = ?2",
            rusqlite::params![original, seq],
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/// Reads by key, by kind and by `occurred_at` range, each compared with a
/// plain filter over what was appended. `occurred_at` is deliberately not in
/// seq order (sources report late), so a range read cannot lean on seq.
#[tokio::test]
async fn reads_by_key_kind_and_time_range() {
    let store = Store::new();
    let log = store.open();
    let base = t("2026-03-01T00:00:00Z");

    // 60 events: kind by i % 3, key by i % 4, occurred_at = base + (i*7 % 60) min.
    let mut batch = Vec::new();
    for i in 0..60usize {
        let at = base + Duration::minutes((i * 7 % 60) as i64);
        let key = format!("key-{}", i % 4);
        let ev = match i % 3 {
            0 => NewEvent::new(
                at,
                "prometheus",
                &key,
                EventKind::AlertReceived(Arc::new(report(i, at))),
            ),
            1 => acked(&key, at),
            _ => NewEvent::new(
                at,
                "prometheus",
                &key,
                EventKind::AlertResolved(AlertResolution {
                    fingerprint: key.clone(),
                    ends_at: at,
                    reason: "resolved by source".into(),
                    report: None,
                }),
            ),
        };
        batch.push(ev);
    }
    log.append(batch).await.unwrap();
    let all = read_all(&log);
    assert_eq!(all.len(), 60);

    let q = |f: &dyn Fn(&mut EventQuery)| {
        let mut query = EventQuery::default();
        f(&mut query);
        query
    };
    let at = |m: i64| base + Duration::minutes(m);
    // (what, query) — the expected answer is the same filter applied by hand.
    let table: Vec<(&str, EventQuery)> = vec![
        ("one key", q(&|x| x.key = Some("key-2".into()))),
        ("one kind", q(&|x| x.kinds = vec!["alert.acked".into()])),
        (
            "two kinds",
            q(&|x| x.kinds = vec!["alert.received".into(), "alert.resolved".into()]),
        ),
        (
            "a kind nothing has",
            q(&|x| x.kinds = vec!["alert.refreshed".into()]),
        ),
        ("an unknown key", q(&|x| x.key = Some("nope".into()))),
        ("since, inclusive", q(&|x| x.since = Some(at(30)))),
        ("until, exclusive", q(&|x| x.until = Some(at(30)))),
        (
            "a 10-minute window",
            q(&|x| {
                x.since = Some(at(10));
                x.until = Some(at(20));
            }),
        ),
        (
            "key, kind and window together",
            q(&|x| {
                x.key = Some("key-1".into());
                x.kinds = vec!["alert.acked".into()];
                x.since = Some(at(5));
                x.until = Some(at(50));
            }),
        ),
        (
            "a page: after 20, 15 at most, of one key",
            q(&|x| {
                x.after = 20;
                x.limit = 15;
                x.key = Some("key-0".into());
            }),
        ),
    ];
    for (what, query) in table {
        let got = log.read(&query).unwrap();
        let mut want: Vec<Event> = all
            .iter()
            .filter(|e| e.seq > query.after)
            .filter(|e| query.key.as_ref().is_none_or(|k| *k == e.key))
            .filter(|e| query.kinds.is_empty() || query.kinds.iter().any(|k| k == e.kind.name()))
            .filter(|e| query.since.is_none_or(|s| e.occurred_at >= s))
            .filter(|e| query.until.is_none_or(|u| e.occurred_at < u))
            .cloned()
            .collect();
        if query.limit > 0 {
            want.truncate(query.limit);
        }
        assert_eq!(seqs(&got), seqs(&want), "{what}");
        assert_eq!(got, want, "{what}");
    }

    // A few answers written out, so the oracle above is not the only check.
    let key2 = log.read(&q(&|x| x.key = Some("key-2".into()))).unwrap();
    assert_eq!(seqs(&key2), (3..=60).step_by(4).collect::<Vec<u64>>());
    let window = log
        .read(&q(&|x| {
            x.since = Some(at(0));
            x.until = Some(at(1));
        }))
        .unwrap();
    // Minute 0 is i = 0 and i = 60k only: seq 1.
    assert_eq!(seqs(&window), vec![1]);
    log.close();
}

/// Replay's workers read range after range into buffers they keep:
/// `read_range_into` appends exactly the events `read` answers for the
/// range, after whatever the buffer holds, and reuses its room.
#[test]
fn read_range_into_a_reused_buffer_appends_what_the_log_holds() {
    let store = Store::new();
    let log = store.open_with(no_fsync(), Vec::new());
    let at = store.clock.now();
    append_in_thousands(&log, (0..300).map(|i| received(i, at)).collect());
    let all = read_all(&log);

    // | call                      | buffer before | buffer after         |
    // | read_range(0, 200)        | —             | seqs 1..=200         |
    // | clear, into(200, 300)     | empty, room   | seqs 201..=300       |
    // | into(50, 52)              | 100 events    | … then seqs 51, 52   |
    // | into(300, 400)            | 102 events    | unchanged (past end) |
    let mut buffer = log.read_range(0, 200).unwrap();
    assert_eq!(buffer, all[..200]);
    let room = buffer.capacity();
    buffer.clear();
    log.read_range_into(200, 300, &mut buffer).unwrap();
    assert_eq!(buffer, all[200..]);
    assert_eq!(buffer.capacity(), room, "the buffer's room is reused");
    log.read_range_into(50, 52, &mut buffer).unwrap();
    assert_eq!(seqs(&buffer[100..]), [51, 52]);
    assert_eq!(buffer[100..], all[50..52]);
    log.read_range_into(300, 400, &mut buffer).unwrap();
    assert_eq!(buffer.len(), 102);
    log.close();
}

/// Lease fingerprints are held as 64-bit values when in Alertmanager's
/// form; whatever a stored lease says, it is written back exactly as read,
/// and folds the values `Fingerprint::parse` gave the views before.
#[test]
fn lease_fingerprints_are_written_back_as_read_and_parse_as_before() {
    // | stored text (JSON)     | note                                 |
    let stored = [
        r#""0123456789abcdef""#,      // Alertmanager's form: held as a value
        r#""ffffffffffffffff""#,      // the largest
        r#""0000000000000000""#,      // zero, leading zeros kept
        r#""0123456789ABCDEF""#,      // upper case: parses, kept as written
        r#""+123456789abcdef""#,      // a sign: u64's parser takes it
        r#""0123456789abcde""#,       // 15 digits: no value
        r#""zzzzzzzzzzzzzzzz""#,      // not hex
        r#""""#,                      // empty
        r#""ünïcödé ✓ \"x\"""#,       // escaped and non-ASCII text
        r#""\u0030123456789abcdef""#, // an escaped digit: the same string
    ];
    let list = format!("[{}]", stored.join(","));
    let as_strings: Vec<String> = serde_json::from_str(&list).unwrap();
    let held: fenghuo::eventlog::LeaseFingerprints = serde_json::from_str(&list).unwrap();
    assert_eq!(held.len(), stored.len());
    assert_eq!(
        serde_json::to_string(&held).unwrap(),
        serde_json::to_string(&as_strings).unwrap(),
        "written back as read"
    );
    assert_eq!(held.texts().collect::<Vec<_>>(), as_strings);
    assert_eq!(format!("{held:?}"), format!("{as_strings:?}"));
    let values: Vec<Option<u64>> = held.values().collect();
    let parsed: Vec<Option<u64>> = as_strings
        .iter()
        .map(|s| Fingerprint::parse(s).map(|f| f.0))
        .collect();
    assert_eq!(values, parsed, "the views fold what they parsed before");
    assert_eq!(values[0], Some(0x0123_4567_89ab_cdef));
    // Built from the same texts, equal to the decoded one.
    assert_eq!(
        fenghuo::eventlog::LeaseFingerprints::from(as_strings.clone()),
        held
    );
    // As a stored event's payload, through the log's decoder.
    let payload =
        format!(r#"{{"leases":[{{"ends_at":"2026-03-01T08:00:00Z","fingerprints":{list}}}]}}"#);
    let kind = EventKind::decode("alert.refreshed", &payload).unwrap();
    let EventKind::AlertRefreshed { leases } = &kind else {
        panic!("{kind:?}");
    };
    assert_eq!(leases[0].fingerprints, held);
    // Not a list of strings: refused, as a list of strings refuses it.
    for bad in ["[1]", r#"["a",null]"#, r#""a""#, "{}"] {
        assert!(serde_json::from_str::<Vec<String>>(bad).is_err());
        assert!(
            serde_json::from_str::<fenghuo::eventlog::LeaseFingerprints>(bad).is_err(),
            "{bad}"
        );
    }
}
