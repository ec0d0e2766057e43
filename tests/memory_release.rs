//! `fenghuo::memory`: when quiet threads hand freed memory back.
//!
//! The hook is process-wide, so these tests have a binary of their own.
//! The writer's idleness is real time (its queue stayed empty for
//! `memory::WRITER_IDLE`), so the waits here are bounded polls: a passing
//! test waits about that long, a failing one until its guard runs out.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fenghuo::clock::ManualClock;
use fenghuo::eventlog::{EventKind, EventLog, LogOptions, NewEvent, Synchronous};
use fenghuo::memory;

static THOROUGH: AtomicUsize = AtomicUsize::new(0);
static OWN_HEAP: AtomicUsize = AtomicUsize::new(0);
/// The tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn counting_hook(thorough: bool) {
    if thorough {
        THOROUGH.fetch_add(1, Ordering::SeqCst);
    } else {
        OWN_HEAP.fetch_add(1, Ordering::SeqCst);
    }
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

/// Waits until `f` holds, at most 10 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let before = THOROUGH.load(Ordering::SeqCst);

    // A burst (one batch, so no gap inside it), then quiet: one release.
    log.append_blocking((0..20).map(heartbeat).collect())
        .unwrap();
    eventually("the writer released after the burst", || {
        THOROUGH.load(Ordering::SeqCst) == before + 1
    });
    // Quiet goes on: nothing more to release.
    std::thread::sleep(memory::WRITER_IDLE * 3);
    assert_eq!(THOROUGH.load(Ordering::SeqCst), before + 1);

    // The next burst ends in one release again.
    log.append_blocking(vec![heartbeat(99)]).unwrap();
    eventually("the writer released after the second burst", || {
        THOROUGH.load(Ordering::SeqCst) == before + 2
    });
}

#[test]
fn a_parking_worker_collects_its_own_heap_at_most_once_per_period() {
    let _one = SERIAL.lock().unwrap();
    memory::set_release_hook(counting_hook);
    // A fresh thread has not collected yet.
    let counted = std::thread::spawn(|| {
        let before = OWN_HEAP.load(Ordering::SeqCst);
        let started = Instant::now();
        memory::worker_parked();
        memory::worker_parked();
        memory::worker_parked();
        let after_three = OWN_HEAP.load(Ordering::SeqCst) - before;
        // Only meaningful if the three calls fell within one period.
        let within = started.elapsed() < memory::PARK_COLLECT_EVERY;
        std::thread::sleep(memory::PARK_COLLECT_EVERY);
        memory::worker_parked();
        (
            after_three,
            within,
            OWN_HEAP.load(Ordering::SeqCst) - before,
        )
    })
    .join()
    .unwrap();
    let (after_three, within, after_period) = counted;
    if within {
        assert_eq!(after_three, 1, "three parks within a period collect once");
    }
    assert_eq!(
        after_period,
        after_three + 1,
        "a park a period later collects"
    );
}
