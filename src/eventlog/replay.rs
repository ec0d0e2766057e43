//! Replay: rebuild projections by folding the stored log from the start.
//!
//! Replay never decides and never sends; it only calls
//! [`Projection::apply`] on events that are already facts.
//!
//! Reading and decoding payloads is most of the cost and needs no order, so
//! a few workers each read and decode disjoint `seq` ranges on their own
//! connection, while the calling thread folds the decoded ranges strictly in
//! `seq` order. Folded ranges go back to the workers to be freed, so the one
//! thread that cannot be parallel only folds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use super::event::Event;
use super::projection::Projection;
use super::store::{EventLog, LogError};

/// `seq`s read and decoded by one worker at a time.
const RANGE: u64 = 4096;

/// Resets `projections` and folds every stored event through them.
/// `progress(done, total)` is called every few thousand events.
pub fn replay(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    reset(projections);
    replay_where(log, projections, 0, |_| true, progress)
}

/// Folds the events after `after` into projections restored from a
/// snapshot taken at `after`.
pub(crate) fn replay_after(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    after: u64,
) -> Result<u64, LogError> {
    replay_where(log, projections, after, |_| true, |_, _| {})
}

fn reset(projections: &[Arc<dyn Projection>]) {
    for p in projections {
        p.reset();
    }
}

/// Time travel: the views as they were at `at`, folding only the events the
/// log had recorded by then.
pub fn replay_as_of(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    at: chrono::DateTime<chrono::Utc>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    reset(projections);
    replay_where(log, projections, 0, |e| e.recorded_at <= at, progress)
}

fn replay_where(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    after: u64,
    keep: impl Fn(&Event) -> bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    let total = log.last_seq().saturating_sub(after);
    if total == 0 {
        progress(0, 0);
        return Ok(0);
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let ranges = total.div_ceil(RANGE);
    let next_range = AtomicU64::new(0);

    std::thread::scope(|scope| {
        let (decoded_tx, decoded_rx) = sync_channel::<Decoded>(workers);
        // Each worker frees the ranges it decoded: memory goes back to the
        // thread that allocated it, the allocator's cheap path.
        let mut trash = Vec::with_capacity(workers);
        for worker in 0..workers {
            let decoded_tx = decoded_tx.clone();
            let (trash_tx, trash_rx) = channel::<Vec<Event>>();
            trash.push(trash_tx);
            let next_range = &next_range;
            std::thread::Builder::new()
                .name(format!("replay-{worker}"))
                .spawn_scoped(scope, move || {
                    read_ranges(
                        log,
                        after,
                        worker,
                        next_range,
                        ranges,
                        &decoded_tx,
                        &trash_rx,
                    )
                })
                .expect("spawn replay worker");
        }
        drop(decoded_tx);

        // Ranges arrive out of order; fold them in order.
        let mut waiting: BTreeMap<u64, (usize, Vec<Event>)> = BTreeMap::new();
        let mut next = 0u64;
        let mut done = 0u64;
        for (i, worker, decoded) in decoded_rx {
            // On failure, returning drops the receiver: the workers' next
            // send fails and they stop.
            waiting.insert(i, (worker, decoded?));
            while let Some((worker, events)) = waiting.remove(&next) {
                for event in events.iter().filter(|e| keep(e)) {
                    for p in projections {
                        p.apply(event);
                    }
                }
                done += events.len() as u64;
                next += 1;
                let _ = trash[worker].send(events);
                if next.is_multiple_of(8) {
                    progress(done, total);
                }
            }
        }
        progress(done, total);
        Ok(done)
    })
}

/// A range's number, the worker that decoded it, and its events.
type Decoded = (u64, usize, Result<Vec<Event>, LogError>);

fn read_ranges(
    log: &EventLog,
    after: u64,
    worker: usize,
    next_range: &AtomicU64,
    ranges: u64,
    decoded_tx: &SyncSender<Decoded>,
    trash_rx: &Receiver<Vec<Event>>,
) {
    loop {
        while let Ok(folded) = trash_rx.try_recv() {
            drop(folded);
        }
        let i = next_range.fetch_add(1, Ordering::Relaxed);
        if i >= ranges {
            return;
        }
        let decoded = log.read_range(after + i * RANGE, after + (i + 1) * RANGE);
        let failed = decoded.is_err();
        if decoded_tx.send((i, worker, decoded)).is_err() || failed {
            return;
        }
    }
}
