//! `fenghuo::memory`: when quiet threads hand freed memory back.
//!
//! The hook is process-wide, so these tests have a binary of their own.
//! The writer's idleness is real time (its queue stayed empty for
//! `memory::WRITER_IDLE`: housekeeping, no decision reads it), so these
//! tests wait for the hook's calls on a condition variable, each wait
//! bounded; a worker's pacing is tested on given instants in
//! `src/memory.rs`.

use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fenghuo::clock::ManualClock;
use fenghuo::eventlog::{EventKind, EventLog, LogOptions, NewEvent, Synchronous};
use fenghuo::memory;

/// The hook's calls so far: (thorough, own heap).
static CALLS: Mutex<(usize, usize)> = Mutex::new((0, 0));
static CALLED: Condvar = Condvar::new();
/// The tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn counting_hook(thorough: bool) {
    let mut calls = CALLS.lock().unwrap();
    if thorough {
        calls.0 += 1;
    } else {
        calls.1 += 1;
    }
    CALLED.notify_all();
}

fn thorough() -> usize {
    CALLS.lock().unwrap().0
}

/// Waits up to `within` for the thorough releases to reach `n`; answers
/// how many there were then.
fn thorough_reaches(n: usize, within: Duration) -> usize {
    let calls = CALLS.lock().unwrap();
    let (calls, _) = CALLED
        .wait_timeout_while(calls, within, |c| c.0 < n)
        .unwrap();
    calls.0
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn heartbeat(n: usize) -> NewEvent {
    NewEvent::new(
        t("2026-03-01T08:00:00Z"),
        "test",
        format!("k{n}"),
        EventKind::AlertFired {
            fingerprint: format!("{n:016x}"),
        },
    )
}

#[test]
fn the_writer_hands_memory_back_once_per_burst_when_it_goes_idle() {
    let _one = SERIAL.lock().unwrap();
    memory::set_release_hook(counting_hook);
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(
        &dir.path().join("fenghuo.db"),
        LogOptions {
            synchronous: Synchronous::Normal,
            ..LogOptions::default()
        },
        Arc::new(ManualClock::new(t("2026-03-01T08:00:00Z"))),
        Vec::new(),
    )
    .unwrap();
    let before = thorough();

    // A burst (one batch, so no gap inside it), then quiet: one release.
    log.append_blocking((0..20).map(heartbeat).collect())
        .unwrap();
    assert_eq!(
        thorough_reaches(before + 1, Duration::from_secs(10)),
        before + 1,
        "the writer released after the burst"
    );
    // Quiet goes on: nothing more to release.
    assert_eq!(
        thorough_reaches(before + 2, memory::WRITER_IDLE * 3),
        before + 1,
        "released again while quiet"
    );

    // The next burst ends in one release again.
    log.append_blocking(vec![heartbeat(99)]).unwrap();
    assert_eq!(
        thorough_reaches(before + 2, Duration::from_secs(10)),
        before + 2,
        "the writer released after the second burst"
    );
}

#[test]
fn a_worker_parking_for_the_first_time_collects_its_own_heap() {
    let _one = SERIAL.lock().unwrap();
    memory::set_release_hook(counting_hook);
    let (before, after) = std::thread::spawn(|| {
        let before = *CALLS.lock().unwrap();
        memory::worker_parked();
        (before, *CALLS.lock().unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(after, (before.0, before.1 + 1), "own heap only, once");
}
