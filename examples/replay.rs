//! Replay benchmark: fills a log with a realistic mix of alert events, then
//! folds it through every projection, as start-up and `fenghuo replay` do, and
//! prints events/s. Not a test: run it with
//!
//! ```text
//! cargo run --release --example replay -- --events 1000000 --runs 3
//! ```
//!
//! The mix: 100,000 distinct alerts (7 labels, 2 annotations, like a node
//! exporter alert), each received, changed, resolved and re-fired over time,
//! with lease refreshes every 50 events; about 330 bytes of payload a row.

use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use fenghuo::clock::{Clock, ManualClock, SharedClock};
use fenghuo::evaluate::Fingerprint;
use fenghuo::eventlog::{
    AlertReport, AlertResolution, EventKind, EventLog, LabelSet, Lease, LogOptions, NewEvent,
    ReplayThreads, Synchronous, replay, replay_using,
};
use fenghuo::pipeline::Views;

#[derive(Parser)]
struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Replays to time; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Reuse (or keep) the log at this path instead of a temp file.
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// Also time a replay into a projection that does nothing, and folding
    /// events already decoded in memory into the views on one thread, to
    /// tell the cost of reading and decoding from the cost of folding.
    #[arg(long)]
    noop: bool,
    /// Time the full replays only (no one-thread scans first), e.g. under
    /// a profiler.
    #[arg(long)]
    replay_only: bool,
    /// Threads that read and decode (default: what replay picks for this
    /// machine).
    #[arg(long)]
    readers: Option<usize>,
    /// Threads that fold, 1 or 2 (default: what replay picks).
    #[arg(long)]
    folders: Option<usize>,
    /// `seq`s a reader reads and decodes at a time (default: replay's).
    #[arg(long)]
    range: Option<u64>,
}

/// CPU time (user + system) this process has used so far, in seconds:
/// on a machine shared with other work, wall time alone says little.
fn cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// CPU time of the calling thread, in seconds: the replay folds on it.
fn thread_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/thread-self/stat")
}

fn cpu_seconds_of(stat: &str) -> f64 {
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks,
    // counted after the command name, which ends at the last ')'.
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    ticks.iter().sum::<f64>() / 100.0
}

struct Noop;

impl fenghuo::eventlog::Projection for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn apply(&self, _: &fenghuo::eventlog::Event) {}
    fn reset(&self) {}
}

fn report(i: u64, t: DateTime<Utc>, rev: u64) -> AlertReport {
    let mut labels = LabelSet::new();
    labels.insert("alertname".into(), format!("NodeAlert{}", i % 20));
    labels.insert("cluster".into(), format!("prod-{}", i % 4));
    labels.insert("instance".into(), format!("host-{i}:9100"));
    labels.insert("job".into(), "node".into());
    labels.insert(
        "severity".into(),
        if i.is_multiple_of(3) {
            "critical"
        } else {
            "warning"
        }
        .into(),
    );
    labels.insert("team".into(), format!("team-{}", i % 12));
    labels.insert(
        "device".into(),
        format!("sd{}", (b'a' + (i % 8) as u8) as char),
    );
    let mut annotations = LabelSet::new();
    annotations.insert("summary".into(), format!("Disk almost full on host-{i}"));
    annotations.insert(
        "description".into(),
        format!("{}% used (revision {rev})", 90 + i % 10),
    );
    AlertReport {
        fingerprint: Fingerprint::of(&labels).to_string().into(),
        labels,
        annotations,
        starts_at: t,
        ends_at: Some(t + Duration::minutes(4)),
        generator_url: format!(
            "http://prometheus:9090/graph?g0.expr=disk_used%7Binstance%3D%22host-{i}%22%7D"
        ),
        extra: Default::default(),
    }
}

fn fill(log: &EventLog, n: u64, start: DateTime<Utc>) {
    let alerts = 100_000u64;
    let mut batch = Vec::with_capacity(4096);
    let started = Instant::now();
    for seq in 0..n {
        let t = start + Duration::milliseconds(seq as i64 * 10);
        let i = seq % alerts;
        let round = seq / alerts;
        let kind = if seq % 50 == 49 {
            EventKind::AlertRefreshed {
                leases: vec![Lease {
                    ends_at: t + Duration::minutes(4),
                    fingerprints: (0..100)
                        .map(|k| {
                            Fingerprint::of(&report((i + k) % alerts, t, 0).labels).to_string()
                        })
                        .collect(),
                }],
            }
        } else if round % 4 == 2 {
            let r = report(i, t, round);
            EventKind::AlertResolved(AlertResolution {
                fingerprint: r.fingerprint.to_string(),
                ends_at: t,
                reason: "resolved by source".into(),
                report: None,
            })
        } else {
            EventKind::AlertReceived(Arc::new(report(i, t, round)))
        };
        let key = match &kind {
            EventKind::AlertReceived(r) => r.fingerprint.to_string(),
            EventKind::AlertResolved(r) => r.fingerprint.clone(),
            _ => "alert-leases".into(),
        };
        batch.push(NewEvent::new(t, "prometheus", key, kind));
        if batch.len() == 4096 {
            log.append_blocking(std::mem::take(&mut batch))
                .expect("append");
        }
    }
    if !batch.is_empty() {
        log.append_blocking(batch).expect("append");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {n} events in {secs:.1}s ({:.0} events/s appended)",
        n as f64 / secs
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("fenghuo.db"));
    let clock = ManualClock::at_epoch();
    let shared: SharedClock = Arc::new(clock.clone());
    {
        let log = EventLog::open(
            &path,
            LogOptions {
                synchronous: Synchronous::Normal,
                ..LogOptions::default()
            },
            shared.clone(),
            vec![],
        )?;
        let have = log.last_seq();
        if have < args.events {
            fill(&log, args.events - have, clock.now());
        }
        log.close();
    }
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "log: {} ({:.0} MiB)",
        path.display(),
        bytes as f64 / (1 << 20) as f64
    );

    let log = EventLog::open_read_only(&path)?;
    // Where the time goes: reading rows alone, and reading plus decoding on
    // one thread, before the full pipelined replay.
    if !args.replay_only {
        scans(&log, args.noop)?;
    }
    let mut threads = ReplayThreads::for_this_machine();
    threads.readers = args.readers.unwrap_or(threads.readers);
    threads.folders = args.folders.unwrap_or(threads.folders);
    threads.range = args.range.unwrap_or(threads.range);
    println!(
        "replay threads: {} reading, {} folding, {} events a range",
        threads.readers, threads.folders, threads.range
    );
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let state = Views::new();
        let views = state.projections();
        let cpu = cpu_seconds();
        let main_cpu = thread_cpu_seconds();
        let started = Instant::now();
        let n = replay_using(&log, &views, threads, |_, _| {})?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let main_cpu = thread_cpu_seconds() - main_cpu;
        let rate = n as f64 / secs;
        let per_event = |s: f64| s * 1e6 / n as f64;
        println!(
            "run {run}: replayed {n} events in {secs:.3}s = {rate:.0} events/s, CPU {cpu:.2}s ({:.2} µs/event: {:.2} on the calling thread, {:.2} on the others) ({} alerts indexed)",
            per_event(cpu),
            per_event(main_cpu),
            per_event(cpu - main_cpu),
            state.alerts.len()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "RESULT replay events={} median_events_per_s={median:.0}",
        log.last_seq()
    );
    Ok(())
}

/// The one-thread measurements: rows only, rows and decoding, and with
/// `noop`, a replay into nothing and the fold alone.
fn scans(log: &EventLog, noop: bool) -> anyhow::Result<()> {
    // One-thread figures, with that thread's CPU time: on a busy machine
    // the CPU per event is the figure that does not move with the load.
    let timed = |what: &str, f: &mut dyn FnMut() -> anyhow::Result<u64>| -> anyhow::Result<()> {
        let cpu = thread_cpu_seconds();
        let started = Instant::now();
        let n = f()?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds() - cpu;
        println!(
            "{what}: {:.0} events/s, CPU {:.2} µs/event on this thread",
            n as f64 / secs,
            cpu * 1e6 / n as f64
        );
        Ok(())
    };
    timed("read rows only, one thread", &mut || {
        Ok(log.scan_raw(0, |_| Ok(()))?)
    })?;
    timed("read + decode, one thread", &mut || {
        Ok(log.scan_raw(0, |raw| raw.decode().map(drop))?)
    })?;
    if noop {
        let views: Vec<Arc<dyn fenghuo::eventlog::Projection>> = vec![Arc::new(Noop)];
        let started = Instant::now();
        let n = replay(log, &views, |_, _| {})?;
        println!(
            "replay into a no-op projection: {:.0} events/s",
            n as f64 / started.elapsed().as_secs_f64()
        );
        // Folding alone: every event decoded first, then folded on this
        // thread into the views, as the replay's folding threads do.
        let mut decoded = Vec::new();
        let mut at = 0;
        while at < log.last_seq() {
            decoded.push(log.read_range(at, at + 65_536)?);
            at += 65_536;
        }
        let state = Views::new();
        let views = state.projections();
        timed(
            "fold decoded events into the views, one thread",
            &mut || {
                let mut n = 0u64;
                for event in decoded.iter().flatten() {
                    for view in &views {
                        view.apply(event);
                    }
                    n += 1;
                }
                Ok(n)
            },
        )?;
    }
    Ok(())
}
