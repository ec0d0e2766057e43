//! Snapshots streamed into the log in pieces: no piece is larger than
//! `snapshot_part_bytes`, the views come back from the pieces exactly, and
//! snapshots are spaced by the state's size once it outgrows
//! `snapshot_every`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::evaluate::Fingerprint;
use fenghuo::eventlog::{
    AlertReport, EventKind, EventLog, LabelSet, LogOptions, NewEvent, Synchronous,
};
use fenghuo::pipeline::Views;

fn t0() -> DateTime<Utc> {
    "2026-11-26T13:00:00Z".parse().unwrap()
}

fn options(snapshot_every: u64, snapshot_part_bytes: usize) -> LogOptions {
    LogOptions {
        synchronous: Synchronous::Normal,
        snapshot_every,
        snapshot_part_bytes,
        ..LogOptions::default()
    }
}

fn open(db: &Path, clock: &ManualClock, options: LogOptions, views: &Views) -> EventLog {
    EventLog::open(db, options, Arc::new(clock.clone()), views.projections()).unwrap()
}

/// `alert.received` for alert `n`, one of 50 per `group`.
fn received(n: usize, at: DateTime<Utc>) -> NewEvent {
    let labels: LabelSet = [
        ("alertname".to_string(), "DiskFull".to_string()),
        ("group".to_string(), format!("g{}", n / 50)),
        ("instance".to_string(), format!("db-{n}:9100")),
    ]
    .into_iter()
    .collect();
    let report = AlertReport {
        fingerprint: Fingerprint::of(&labels).to_string().into(),
        labels,
        annotations: [("summary".to_string(), format!("disk {n} is full"))]
            .into_iter()
            .collect(),
        starts_at: at,
        ends_at: Some(at + Duration::hours(1)),
        generator_url: format!("http://prometheus:9090/graph?n={n}"),
        extra: Default::default(),
    };
    NewEvent::new(
        at,
        "prometheus",
        report.fingerprint.clone(),
        EventKind::AlertReceived(Arc::new(report)),
    )
}

/// Alerts `from..to`, 100 per append.
fn append_alerts(log: &EventLog, clock: &ManualClock, from: usize, to: usize) {
    for start in (from..to).step_by(100) {
        let batch = (start..(start + 100).min(to))
            .map(|n| received(n, clock.now()))
            .collect();
        log.append_blocking(batch).unwrap();
    }
}

/// What the big views hold, comparable.
fn state(views: &Views) -> (String, String, String) {
    (
        format!("{:?}", views.alerts.all()),
        format!("{:?}", views.alert_index.snapshot()),
        format!("{:?}", views.groups.all()),
    )
}

/// (seq, version) of every snapshot row, and (seq, view, part, bytes) of
/// every piece.
#[allow(clippy::type_complexity)]
fn stored(db: &Path) -> (Vec<(i64, String)>, Vec<(i64, String, i64, i64)>) {
    let db = rusqlite::Connection::open(db).unwrap();
    let snapshots = db
        .prepare("SELECT seq, version FROM snapshots ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let parts = db
        .prepare(
            "SELECT seq, view, part, length(data) FROM snapshot_parts ORDER BY seq, view, part",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (snapshots, parts)
}

/// Timeline: 3,000 alerts appended with a snapshot due every 1,000 events
/// and pieces of at most 4 KiB → closed → the snapshot is one row and
/// pieces of ≤ 4 KiB, numbered from 0 per view, only for that snapshot →
/// the events it covers are deleted and the log opened again: the views
/// come back equal from the pieces alone.
#[test]
fn a_snapshot_of_thousands_of_alerts_is_stored_in_small_pieces_and_restores_the_same_views() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fenghuo.db");
    let clock = ManualClock::new(t0());
    let views = Views::new();
    let log = open(&db, &clock, options(1_000, 4096), &views);
    append_alerts(&log, &clock, 0, 3_000);
    let before = state(&views);
    log.close();

    let (snapshots, parts) = stored(&db);
    assert_eq!(snapshots.len(), 1, "older snapshots are replaced");
    let (seq, version) = &snapshots[0];
    assert_eq!(version, fenghuo::eventlog::store::SNAPSHOT_VERSION);
    assert!(
        parts.iter().all(|(s, ..)| s == seq),
        "pieces of older snapshots are deleted"
    );
    let largest = parts.iter().map(|p| p.3).max().unwrap();
    assert!(largest <= 4096, "a piece of {largest} bytes");
    let store_pieces: Vec<i64> = parts
        .iter()
        .filter(|p| p.1 == "alert-store")
        .map(|p| p.2)
        .collect();
    assert!(store_pieces.len() > 10, "{} pieces", store_pieces.len());
    assert_eq!(
        store_pieces,
        (0..store_pieces.len() as i64).collect::<Vec<_>>()
    );

    // Only the snapshot can bring back what these events said.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM events WHERE seq < ?1", [seq])
        .unwrap();
    let restored = Views::new();
    let log = open(&db, &clock, options(1_000, 4096), &restored);
    assert_eq!(state(&restored), before);
    log.close();
}

/// Timeline: snapshot_every 100, 1,300 alerts in appends of 100. The first
/// snapshot falls at event 100; it holds 100 alerts (in the alert store;
/// the alert index reads the store's records and writes none), so the next
/// falls 200 events later (twice the items), at 300, the next 600 later,
/// at 900, and the one after only 1,800 events after that: with a fixed
/// spacing of 100 it would be at 1,300.
#[test]
fn snapshots_are_spaced_by_twice_the_views_items_once_they_outgrow_snapshot_every() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fenghuo.db");
    let clock = ManualClock::new(t0());
    let views = Views::new();
    let log = open(&db, &clock, options(100, 1 << 20), &views);
    for start in (0..1_300).step_by(100) {
        append_alerts(&log, &clock, start, start + 100);
        // A snapshot still being written when the next falls due makes that
        // one wait for a later commit (one at a time): where it lands would
        // depend on the machine's load.
        log.wait_for_snapshot();
    }
    log.close();

    let (snapshots, _) = stored(&db);
    let newest = snapshots.last().unwrap().0;
    assert_eq!(newest, 900, "with a fixed spacing of 100 it would be 1,300");
}

/// A crash half-way through a snapshot leaves pieces without their row:
/// start-up does not restore from them (it replays), and the next
/// snapshot deletes them.
#[test]
fn pieces_without_their_snapshot_row_are_not_restored_and_are_cleared_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fenghuo.db");
    let clock = ManualClock::new(t0());
    let views = Views::new();
    let log = open(&db, &clock, options(0, 4096), &views);
    append_alerts(&log, &clock, 0, 300);
    let before = state(&views);
    log.close();

    // A half-written snapshot at 300 whose alert store is empty.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO snapshot_parts (seq, view, part, data) VALUES (300, 'alert-store', 0, CAST('[]' AS BLOB))",
        [],
    )
    .unwrap();
    drop(conn);

    let reopened = Views::new();
    let log = open(&db, &clock, options(100, 4096), &reopened);
    assert_eq!(state(&reopened), before, "replayed, not restored");
    // 300 alerts in two views: the next snapshot falls 1,200 events on.
    append_alerts(&log, &clock, 300, 2_000);
    log.close();
    let (snapshots, parts) = stored(&db);
    let newest = snapshots.last().unwrap().0;
    assert!(parts.iter().all(|(s, ..)| *s == newest), "{parts:?}");
}
