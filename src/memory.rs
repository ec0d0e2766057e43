//! Handing memory freed after a burst back to the operating system.
//!
//! Owns two moments at which freed memory is worth returning — the log's
//! writer going idle (its queue stayed empty for [`WRITER_IDLE`]) and a
//! runtime worker thread parking — and the hook the binary fills in with
//! its allocator's calls. It never decides anything and never changes what
//! the program computes: with no hook set (tests, the library alone) every
//! call here does nothing.
//!
//! Why: the allocator (mimalloc) keeps per-thread heaps. Blocks freed by
//! another thread (events dropped by the API and outbox after the writer
//! allocated them, request bodies handed to the writer) are only taken back
//! by the owning thread when it next allocates from that page, and pages
//! that became empty are only returned when their thread runs the
//! allocator's slow path again. A thread that goes quiet after a burst so
//! keeps tens of MiB resident that nothing uses. SQLite's caches live in
//! the C allocator, which keeps freed memory of its per-thread arenas until
//! trimmed. A collect costs a walk of the thread's pages, so it runs when a
//! thread has nothing else to do, at most once per [`PARK_COLLECT_EVERY`]
//! per worker.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What a quiet thread calls to give back memory it freed: `thorough` when
/// the whole program may be idle (the writer), also returning what other
/// threads left behind; otherwise only the calling thread's own heap.
pub type ReleaseHook = fn(thorough: bool);

static HOOK: OnceLock<ReleaseHook> = OnceLock::new();

/// How long the writer's queue must stay empty before it counts as idle:
/// longer than the gap between two batches of a steady stream, so a
/// stream under way never pays for a collect.
pub const WRITER_IDLE: Duration = Duration::from_millis(200);

/// A worker thread collects at most this often when it parks (it parks
/// between every two bursts of tasks, thousands of times a second under
/// load).
pub const PARK_COLLECT_EVERY: Duration = Duration::from_millis(500);

/// Sets the hook (once; later calls are ignored). The binary sets it at
/// start-up, before the runtime or the log starts.
pub fn set_release_hook(hook: ReleaseHook) {
    let _ = HOOK.set(hook);
}

/// The log's writer went idle: give back what the burst freed.
pub fn writer_idle() {
    if let Some(hook) = HOOK.get() {
        hook(true);
    }
}

/// A runtime worker thread is about to park.
pub fn worker_parked() {
    let Some(hook) = HOOK.get() else {
        return;
    };
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    // A monotonic clock paces housekeeping here; no decision reads it.
    let now = Instant::now();
    if LAST.with(|last| collect_due(last, now)) {
        hook(false);
    }
}

/// Whether a worker that last collected at `last` collects when it parks
/// at `now`; if so, `now` becomes its last collect.
fn collect_due(last: &Cell<Option<Instant>>, now: Instant) -> bool {
    match last.get() {
        Some(t) if now.saturating_duration_since(t) < PARK_COLLECT_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parking_worker_collects_at_most_once_per_period() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let last = Cell::new(None);
        let period = PARK_COLLECT_EVERY.as_millis() as u64;
        // (parks at, collects) — in order, as one worker parks.
        let table = [
            (0, true),           // a fresh worker has not collected yet
            (1, false),          // parks again at once
            (period - 1, false), // still within the period
            (period, true),      // a period after its last collect
            (period + 10, false),
            (3 * period, true), // after a long quiet, once
            (3 * period, false),
        ];
        for (ms, collects) in table {
            assert_eq!(collect_due(&last, at(ms)), collects, "park at {ms} ms");
        }
    }
}
