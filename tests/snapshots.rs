//! Snapshots: start-up restores the views from the newest snapshot this
//! version of the code wrote and folds only the events after it; a snapshot
//! from another version is ignored and the log replayed in full.

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::ingest::alertmanager::parse_v2;
use fenghuo::pipeline::Pipeline;

const CONFIG: &str = "route:\n  receiver: team\n  group_by: [team]\n  group_wait: 30s\nreceivers:\n  - name: team\nstorage:\n  snapshot_every: 50\n";

fn open(dir: &Path, clock: &ManualClock) -> Pipeline {
    let mut config = Config::parse(CONFIG).unwrap();
    config.data_dir = dir.to_path_buf();
    Pipeline::open(config, Arc::new(clock.clone())).unwrap()
}

/// Everything the views hold, in a stable order.
fn state(p: &Pipeline) -> Vec<String> {
    let now = p.clock.now();
    let mut out: Vec<String> = p
        .store
        .all()
        .iter()
        .map(|(fp, a)| format!("{fp} {a:?} {}", a.firing_at(now)))
        .collect();
    out.extend(p.groups.all().iter().map(|g| format!("{g:?}")));
    out.extend(p.alerts.snapshot().iter().map(|a| format!("{a:?}")));
    out
}

/// 130 events: alerts of 13 teams changing ten times each, with the
/// dispatcher deciding as time passes.
async fn history(p: &Pipeline, clock: &ManualClock) {
    let p = Arc::new(p);
    for round in 0..10 {
        for team in 0..13 {
            let now = clock.now();
            let body = format!(
                r#"[{{"labels":{{"alertname":"A","team":"t{team}"}},"annotations":{{"round":"{round}"}},"endsAt":"{}"}}]"#,
                (now + Duration::hours(1)).to_rfc3339()
            );
            let alerts = parse_v2(body.as_bytes(), now, Duration::minutes(5)).unwrap();
            p.ingest.alerts("prometheus", alerts).await.unwrap();
        }
        clock.advance(Duration::seconds(40));
        p.dispatcher.step().await.unwrap();
    }
}

fn newest_snapshot(db: &rusqlite::Connection) -> (i64, String) {
    db.query_row(
        "SELECT seq, version FROM snapshots ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test]
async fn start_up_restores_the_newest_snapshot_and_folds_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-11-25T19:00:00Z".parse().unwrap());
    let p = open(dir.path(), &clock);
    history(&p, &clock).await;
    let before = state(&p);
    let head = p.log.last_seq();
    p.close();
    drop(p);

    let db = rusqlite::Connection::open(dir.path().join("fenghuo.db")).unwrap();
    let (seq, version) = newest_snapshot(&db);
    // Every 50 events, one written at a time: a late one may be skipped
    // while the previous is still being written.
    assert!(
        seq >= 50 && (seq as u64) <= head,
        "snapshot at {seq} of {head}"
    );
    assert_eq!(version, fenghuo::eventlog::store::SNAPSHOT_VERSION);
    let older: i64 = db
        .query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(older, 1, "older snapshots are replaced");

    // Prove start-up used it: the events it covers are gone, yet the views
    // come back whole (a full replay would have lost them). The event at
    // its seq stays: a snapshot ahead of the log is never trusted.
    db.execute("DELETE FROM events WHERE seq < ?1", [seq])
        .unwrap();
    let p = open(dir.path(), &clock);
    assert_eq!(state(&p), before);
    p.close();
}

#[tokio::test]
async fn a_snapshot_from_another_version_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-11-25T19:00:00Z".parse().unwrap());
    let p = open(dir.path(), &clock);
    history(&p, &clock).await;
    let before = state(&p);
    p.close();
    drop(p);

    // An "older version" snapshot whose alert store is empty: trusting it
    // would lose every alert it covers.
    let db = rusqlite::Connection::open(dir.path().join("fenghuo.db")).unwrap();
    let (seq, _) = newest_snapshot(&db);
    db.execute(
        "DELETE FROM snapshot_parts WHERE seq = ?1 AND view = 'alert-store'",
        [seq],
    )
    .unwrap();
    db.execute(
        "INSERT INTO snapshot_parts (seq, view, part, data) VALUES (?1, 'alert-store', 0, CAST('[]' AS BLOB))",
        [seq],
    )
    .unwrap();
    db.execute(
        "UPDATE snapshots SET version = '0.0.1/views-0' WHERE seq = ?1",
        [seq],
    )
    .unwrap();

    let p = open(dir.path(), &clock);
    assert_eq!(state(&p), before);
    p.close();
}
