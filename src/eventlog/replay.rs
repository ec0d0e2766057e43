//! Replay: rebuild projections by folding the stored log from the start.
//!
//! Replay never decides and never sends; it only calls
//! [`Projection::apply`] on events that are already facts.
//!
//! Reading and decoding payloads is most of the cost and needs no order, so
//! a few workers each read and decode disjoint `seq` ranges on their own
//! connection, while the calling thread folds the decoded ranges strictly in
//! `seq` order. Views are independent folds, so with a second core the
//! views are split between the calling thread and a second folding thread,
//! each folding its views over every range in order. Folded ranges go back
//! to the workers to be freed, so the threads that fold only fold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

use super::event::Event;
use super::projection::Projection;
use super::store::{EventLog, LogError};

/// `seq`s read and decoded by one worker at a time.
const RANGE: u64 = 4096;

/// Emptied range buffers a worker keeps for its next ranges: about as
/// many as it has in flight (queued, waiting to be folded, being folded).
const SPARE_BUFFERS: usize = 4;

/// Ranges folded view by view and timed before the views are split
/// between two folding threads. A view's cost is its fastest range:
/// preemption on a busy machine only ever adds time.
const TIMED_RANGES: u64 = 4;

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

/// [`replay`] with the threads and range size given rather than chosen for
/// this machine: for the benchmark, which compares them. What is folded is
/// the same whatever the threads.
pub fn replay_using(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    threads: Threads,
    progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    reset(projections);
    replay_with(log, projections, 0, |_| true, progress, threads)
}

fn replay_where(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    after: u64,
    keep: impl Fn(&Event) -> bool + Sync,
    progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    replay_with(
        log,
        projections,
        after,
        keep,
        progress,
        Threads::for_this_machine(),
    )
}

/// How many threads read and decode, how many fold (1 or 2), and how many
/// `seq`s a reader takes at a time.
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    pub readers: usize,
    pub folders: usize,
    pub range: u64,
}

impl Threads {
    /// What replay uses: as many readers as cores (at most 4), and a
    /// second folding thread when there is a second core.
    pub fn for_this_machine() -> Threads {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Threads {
            readers: cores.clamp(1, 4),
            folders: if cores >= 2 { 2 } else { 1 },
            range: RANGE,
        }
    }
}

/// Ranges are folded in `seq` order, each view by one thread only. With
/// two folding threads the views are split between them by what each cost
/// to fold the first [`TIMED_RANGES`] ranges (measured while folding them):
/// every view still sees every event in order, and views never read each
/// other, so the split changes how fast, never what is folded.
fn replay_with(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    after: u64,
    keep: impl Fn(&Event) -> bool + Sync,
    mut progress: impl FnMut(u64, u64),
    threads: Threads,
) -> Result<u64, LogError> {
    let total = log.last_seq().saturating_sub(after);
    if total == 0 {
        progress(0, 0);
        return Ok(0);
    }
    let threads = Threads {
        readers: threads.readers.max(1),
        folders: threads.folders,
        range: threads.range.max(1),
    };
    let workers = threads.readers;
    let ranges = total.div_ceil(threads.range);
    let next_range = AtomicU64::new(0);
    let keep = &keep;

    std::thread::scope(|scope| {
        let (decoded_tx, decoded_rx) = sync_channel::<Decoded>(workers);
        // Each worker frees the ranges it decoded: memory goes back to the
        // thread that allocated it, the allocator's cheap path. A range
        // folded on two threads is freed when the second one is done.
        let mut trash = Vec::with_capacity(workers);
        for worker in 0..workers {
            let decoded_tx = decoded_tx.clone();
            let (trash_tx, trash_rx) = channel::<Arc<Vec<Event>>>();
            trash.push(trash_tx);
            let next_range = &next_range;
            std::thread::Builder::new()
                .name(format!("replay-{worker}"))
                .spawn_scoped(scope, move || {
                    read_ranges(
                        log,
                        after,
                        threads.range,
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

        // The views this thread folds, and the queue of the second folding
        // thread, once the first `TIMED_RANGES` ranges have told how to
        // split them.
        let mut mine: Lane = projections.iter().collect();
        let mut helper: Option<SyncSender<(usize, Arc<Vec<Event>>)>> = None;
        let mut helper_thread = None;
        let mut costs: Vec<Duration> = Vec::new();

        // Ranges arrive out of order; fold them in order.
        let mut waiting: BTreeMap<u64, (usize, Vec<Event>)> = BTreeMap::new();
        let mut next = 0u64;
        let mut done = 0u64;
        for (i, worker, decoded) in decoded_rx {
            // On failure, returning drops the receiver and the helper's
            // queue: the workers' next send fails and they stop, and the
            // helper stops after what it has.
            waiting.insert(i, (worker, decoded?));
            while let Some((worker, events)) = waiting.remove(&next) {
                let events = Arc::new(events);
                let split = threads.folders > 1 && ranges > TIMED_RANGES && projections.len() > 1;
                if split && next < TIMED_RANGES {
                    // Folded here, view by view, timed.
                    let took = fold_timed(projections, &events, keep);
                    costs = match next {
                        0 => took,
                        _ => costs.iter().zip(took).map(|(a, b)| (*a).min(b)).collect(),
                    };
                    if next + 1 == TIMED_RANGES {
                        let theirs;
                        (mine, theirs) = split_by_cost(projections, &costs);
                        let (tx, rx) = sync_channel::<(usize, Arc<Vec<Event>>)>(workers * 2);
                        let trash = trash.clone();
                        helper = Some(tx);
                        helper_thread = Some(
                            std::thread::Builder::new()
                                .name("replay-fold".into())
                                .spawn_scoped(scope, move || {
                                    for (worker, events) in rx {
                                        fold(&theirs, &events, keep);
                                        let _ = trash[worker].send(events);
                                    }
                                })
                                .expect("spawn replay fold thread"),
                        );
                    }
                } else {
                    if let Some(helper) = &helper {
                        // Fails only if the helper panicked: the scope
                        // passes that panic on.
                        let _ = helper.send((worker, events.clone()));
                    }
                    fold(&mine, &events, keep);
                }
                done += events.len() as u64;
                next += 1;
                let _ = trash[worker].send(events);
                if next.is_multiple_of(8) {
                    progress(done, total);
                }
            }
        }
        // Done only once the helper has folded everything it was given.
        drop(helper);
        if let Some(thread) = helper_thread
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        progress(done, total);
        Ok(done)
    })
}

/// Events a view folds at a time before the next view folds them: few
/// enough that they are still in cache for the next view, enough that a
/// view locking once for them all ([`Projection::apply_all`]) saves most
/// of its locks.
const CHUNK: usize = 64;

fn fold(views: &Lane, events: &[Event], keep: &impl Fn(&Event) -> bool) {
    let mut chunk: Vec<&Event> = Vec::with_capacity(CHUNK);
    let mut kept = events.iter().filter(|e| keep(e));
    loop {
        chunk.clear();
        chunk.extend(kept.by_ref().take(CHUNK));
        if chunk.is_empty() {
            return;
        }
        // Views never read each other: each still sees every event in
        // order, whichever view folds a chunk first.
        for view in views {
            view.apply_all(&chunk);
        }
    }
}

/// Folds `events` into each view in turn (each still sees them in order)
/// and answers what each view took. Timed with the monotonic clock only to
/// balance threads; nothing folded depends on it.
fn fold_timed(
    views: &[Arc<dyn Projection>],
    events: &[Event],
    keep: &impl Fn(&Event) -> bool,
) -> Vec<Duration> {
    views
        .iter()
        .map(|view| {
            let started = Instant::now();
            for event in events.iter().filter(|e| keep(e)) {
                view.apply(event);
            }
            started.elapsed()
        })
        .collect()
}

/// The views one folding thread folds.
type Lane<'v> = Vec<&'v Arc<dyn Projection>>;

/// Splits the views in two sets of about equal cost, costliest first, each
/// set in the views' own order.
fn split_by_cost<'v>(views: &'v [Arc<dyn Projection>], costs: &[Duration]) -> (Lane<'v>, Lane<'v>) {
    let mut by_cost: Vec<usize> = (0..views.len()).collect();
    by_cost.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    let mut lane = vec![0u8; views.len()];
    let mut load = [Duration::ZERO; 2];
    for i in by_cost {
        let lighter = usize::from(load[1] < load[0]);
        lane[i] = lighter as u8;
        load[lighter] += costs[i];
    }
    let pick = |l: u8| {
        views
            .iter()
            .zip(&lane)
            .filter(|(_, lane)| **lane == l)
            .map(|(v, _)| v)
            .collect()
    };
    (pick(0), pick(1))
}

/// A range's number, the worker that decoded it, and its events.
type Decoded = (u64, usize, Result<Vec<Event>, LogError>);

#[allow(clippy::too_many_arguments)]
fn read_ranges(
    log: &EventLog,
    after: u64,
    range: u64,
    worker: usize,
    next_range: &AtomicU64,
    ranges: u64,
    decoded_tx: &SyncSender<Decoded>,
    trash_rx: &Receiver<Arc<Vec<Event>>>,
) {
    // Buffers of folded ranges, emptied here and filled again: a range's
    // events take about a megabyte, which the allocator would otherwise
    // give back and the kernel zero again for the next range.
    let mut spare: Vec<Vec<Event>> = Vec::new();
    loop {
        while let Ok(folded) = trash_rx.try_recv() {
            // The last holder of a range gives the buffer back; the events
            // in it are freed here, on the thread that allocated them.
            if let Ok(mut buffer) = Arc::try_unwrap(folded) {
                buffer.clear();
                if spare.len() < SPARE_BUFFERS {
                    spare.push(buffer);
                }
            }
        }
        let i = next_range.fetch_add(1, Ordering::Relaxed);
        if i >= ranges {
            return;
        }
        let mut events = spare.pop().unwrap_or_default();
        let decoded = log
            .read_range_into(after + i * range, after + (i + 1) * range, &mut events)
            .map(|()| events);
        let failed = decoded.is_err();
        if decoded_tx.send((i, worker, decoded)).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::clock::ManualClock;
    use crate::evaluate::Fingerprint;
    use crate::eventlog::{
        AlertReport, AlertResolution, EventKind, FlapChange, LabelSet, Lease, LogOptions, NewEvent,
    };
    use crate::pipeline::Views;

    fn report(i: u64, t: DateTime<Utc>, rev: u64) -> AlertReport {
        let mut labels = LabelSet::new();
        labels.insert("alertname".into(), format!("A{}", i % 7));
        labels.insert("instance".into(), format!("host-{i}"));
        labels.insert("team".into(), format!("t{}", i % 3));
        let mut annotations = LabelSet::new();
        annotations.insert("rev".into(), rev.to_string());
        AlertReport {
            fingerprint: Fingerprint::of(&labels).to_string().into(),
            labels,
            annotations,
            starts_at: t,
            ends_at: Some(t + Duration::minutes(4)),
            generator_url: String::new(),
            extra: Default::default(),
        }
    }

    /// A timeline of 3,000 events over 150 alerts: reports, changes,
    /// resolves, leases, fired and flapping decisions, acks.
    fn timeline(t0: DateTime<Utc>) -> Vec<NewEvent> {
        (0..3000u64)
            .map(|n| {
                let t = t0 + Duration::seconds(n as i64);
                let i = (n * 7) % 150;
                let fp = report(i, t, 0).fingerprint.to_string();
                let kind = match n % 11 {
                    0..=3 => EventKind::AlertReceived(Arc::new(report(i, t, n % 3))),
                    4 | 5 => EventKind::AlertResolved(AlertResolution {
                        fingerprint: fp.clone(),
                        ends_at: t,
                        reason: "resolved by source".into(),
                        report: (n % 2 == 0).then(|| report(i, t, 9)),
                    }),
                    6 => EventKind::AlertRefreshed {
                        leases: vec![Lease {
                            ends_at: t + Duration::minutes(10),
                            fingerprints: (0..20)
                                .map(|k| report((i + k) % 150, t, 0).fingerprint)
                                .collect(),
                        }],
                    },
                    7 => EventKind::AlertFired {
                        fingerprint: fp.clone(),
                    },
                    8 | 9 => {
                        let change = FlapChange {
                            fingerprint: fp.clone(),
                            changes: 4,
                            window_secs: 600,
                            stable_secs: 300,
                            firing: true,
                        };
                        if n % 11 == 8 {
                            EventKind::AlertFlappingStarted(change)
                        } else {
                            EventKind::AlertFlappingStopped(change)
                        }
                    }
                    _ => EventKind::AlertAcked {
                        fingerprint: fp.clone(),
                        by: "ops".into(),
                        dedup_key: None,
                    },
                };
                NewEvent::new(t, "test", fp, kind)
            })
            .collect()
    }

    /// Every view's snapshot as a JSON tree, by view name. Hash tables
    /// are written in their (seeded, so per table) order: objects compare
    /// whatever their order, and lists of `[key, value]` pairs are sorted
    /// by key here.
    fn states(views: &Views) -> Vec<(&'static str, serde_json::Value)> {
        fn sort_pairs(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Array(items) => {
                    items.iter_mut().for_each(sort_pairs);
                    let key = |item: &serde_json::Value| match item {
                        serde_json::Value::Array(pair) if pair.len() == 2 => match &pair[0] {
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            serde_json::Value::String(s) => Some(s.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    if items.iter().all(|i| key(i).is_some()) {
                        items.sort_by_key(|i| key(i));
                    }
                }
                serde_json::Value::Object(fields) => fields.values_mut().for_each(sort_pairs),
                _ => {}
            }
        }
        views
            .projections()
            .iter()
            .filter_map(|p| {
                let write = p.snapshot_json()?;
                let mut text = Vec::new();
                write(&mut text).unwrap();
                let mut state = serde_json::from_slice(&text).unwrap();
                sort_pairs(&mut state);
                Some((p.name(), state))
            })
            .collect()
    }

    #[test]
    fn views_split_over_two_folding_threads_equal_the_views_folded_live() {
        let dir = tempfile::tempdir().unwrap();
        let t0: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        let live = Views::new();
        let log = EventLog::open(
            &dir.path().join("events.db"),
            LogOptions::default(),
            Arc::new(ManualClock::new(t0)),
            live.projections(),
        )
        .unwrap();
        for batch in timeline(t0).chunks(500) {
            log.append_blocking(batch.to_vec()).unwrap();
        }
        let expected = states(&live);
        assert!(
            ["alert-index", "alert-store", "flaps"]
                .iter()
                .all(|name| expected.iter().any(|(n, _)| n == name)),
            "the views this fold is about are compared"
        );
        assert!(live.alerts.len() > 100, "the timeline fills the views");

        // Ranges of 64 `seq`s: 47 of them, the first four timed and every
        // later one folded on two threads.
        for (readers, folders) in [(2, 2), (1, 2), (3, 1)] {
            let replayed = Views::new();
            let folded = replay_with(
                &log,
                &replayed.projections(),
                0,
                |_| true,
                |_, _| {},
                Threads {
                    readers,
                    folders,
                    range: 64,
                },
            )
            .unwrap();
            assert_eq!(folded, 3000);
            let got = states(&replayed);
            for ((name, want), (_, got)) in expected.iter().zip(&got) {
                assert_eq!(
                    want, got,
                    "{name} with {readers} readers, {folders} folding threads"
                );
            }
        }
        log.close();
    }

    struct Named(&'static str);

    impl Projection for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn apply(&self, _: &Event) {}
        fn reset(&self) {}
    }

    #[test]
    fn split_by_cost_gives_each_thread_about_half_in_the_views_order() {
        let views: Vec<Arc<dyn Projection>> = ["index", "store", "groups", "flaps", "outbox"]
            .into_iter()
            .map(|n| Arc::new(Named(n)) as Arc<dyn Projection>)
            .collect();
        let ms = std::time::Duration::from_millis;
        let names = |lane: Vec<&Arc<dyn Projection>>| -> Vec<&str> {
            lane.iter().map(|v| v.name()).collect()
        };
        // | view   | cost | lane |
        // | index  | 9    | 0    |
        // | store  | 3    | 1    |
        // | groups | 1    | 1    |
        // | flaps  | 4    | 1    |
        // | outbox | 1    | 1    |
        let (mine, theirs) = split_by_cost(&views, &[ms(9), ms(3), ms(1), ms(4), ms(1)]);
        assert_eq!(names(mine), ["index"]);
        assert_eq!(names(theirs), ["store", "groups", "flaps", "outbox"]);
        // Equal costs alternate.
        let (mine, theirs) = split_by_cost(&views, &[ms(2); 5]);
        assert_eq!(names(mine), ["index", "groups", "outbox"]);
        assert_eq!(names(theirs), ["store", "flaps"]);
    }
}
