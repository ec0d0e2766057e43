//! Rule benchmark: with 200 rules loaded, how many events per second go
//! through rule evaluation, and how long a backtest of a million stored
//! events takes. Not a test: run it with
//!
//! ```text
//! cargo run --release --example rules_bench -- --events 1000000 --runs 3
//! ```
//!
//! The rules (generated, in the shapes of the shipped library): 100 `count`
//! rules on Kubernetes event reasons (10 of them selecting by regex, so they
//! meet every event), 50 `threshold` rules with hysteresis and `for` on
//! probe values, 30 `match` rules with a CEL condition and a quiet period,
//! 20 `absent` heartbeat rules. The events: 70% Kubernetes events (80
//! reasons, 5,000 pods), 25% probe results (100 probes), 5% heartbeats
//! (40 jobs), one every 20 ms of event time.
//!
//! *evaluation*: the engine alone, in memory, as the writer runs it — every
//! event observed, an evaluation after every batch of `--batch` events.
//! *backtest*: `fenghuo backtest`'s engine over a log of `--events` stored
//! events (written first, in batches of `--batch`), routed through a
//! route tree; reading and decoding included. Each run prints where its
//! time went (reading and decoding on the reader thread, the rules' folds
//! and evaluations, the other views, the dispatcher, the escalator; with
//! the rules on a thread of their own, each thread's share and its
//! waits). `--one-thread` runs the stages on one thread, to compare.
//!
//! The log goes under `BENCH_TMPDIR` when set (a million events is about
//! 370 MB); `--log FILE` keeps it there and reuses it on the next run, so
//! two builds can take turns on the same file:
//!
//! ```text
//! BENCH_TMPDIR=/big/disk cargo run --release --example rules_bench -- \
//!     --events 100000 --runs 3 --no-evaluation --log /big/disk/log-100k.db
//! ```

use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use fenghuo::clock::{ManualClock, SharedClock};
use fenghuo::config::Config;
use fenghuo::evaluate::rules::{RuleEngine, RuleSet};
use fenghuo::eventlog::{
    Event, EventKind, EventLog, Heartbeat, InvolvedObject, K8sEvent, LabelSet, LogOptions,
    NewEvent, ProbeResult, Synchronous,
};

#[derive(Parser)]
struct Args {
    /// Events for the evaluation run and in the backtested log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events per writer batch (evaluations happen once per batch).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Skip the backtest (only the evaluation figure).
    #[arg(long)]
    no_backtest: bool,
    /// Skip the evaluation run (only the backtest figure).
    #[arg(long)]
    no_evaluation: bool,
    /// Run the backtest's stages on one thread (by default the rules run
    /// on a thread of their own when nothing after them feeds them).
    #[arg(long)]
    one_thread: bool,
    /// Distinct pods the Kubernetes events are about: with the default,
    /// about 150,000 rule alerts fire at once (every pod trips the `match`
    /// rules); fewer pods, fewer alerts.
    #[arg(long, default_value_t = 5000)]
    pods: u64,
    /// Keep the stored log in this file and reuse it when it is there
    /// (written for the same `--events`, `--pods` and `--batch`), so runs
    /// that compare builds backtest the same file without writing it again.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// Write the rules (`DIR/rules/bench.yaml`) and the route tree
    /// (`DIR/fenghuo.yaml`) and stop: to time `fenghuo backtest` itself,
    /// with the binary's own allocator settings, on a log kept by `--log`.
    #[arg(long, value_name = "DIR")]
    export: Option<std::path::PathBuf>,
}

fn rules_yaml() -> String {
    let mut y = String::from("groups:\n");
    y.push_str("  - name: counts\n    rules:\n");
    for i in 0..100 {
        let matcher = if i % 10 == 0 {
            format!("'reason=~\"Reason{}.*\"'", i / 10)
        } else {
            format!("'reason=\"Reason{}\"'", i % 80)
        };
        y.push_str(&format!(
            "      - alert: Count{i}\n        select: {{ kind: k8s.event, matchers: [{matcher}, 'involved_object.kind=\"Pod\"'] }}\n        group_by: [namespace, {{ pod: payload.involved_object.name }}]\n        count: {{ window: 10m, above: 3 }}\n        resolve: {{ after: 10m }}\n        labels: {{ severity: warning }}\n        annotations: {{ summary: \"{{{{ labels.pod }}}} {{{{ count }}}} in 10m\" }}\n"
        ));
    }
    y.push_str("  - name: thresholds\n    rules:\n");
    for i in 0..50 {
        y.push_str(&format!(
            "      - alert: Cpu{i}\n        select: {{ kind: probe.result, matchers: ['probe=\"svc{}\"'] }}\n        condition: has(payload.values.cpu)\n        group_by: [probe]\n        threshold: {{ value: payload.values.cpu, fire_above: 0.9, clear_below: 0.8 }}\n        for: 5m\n        labels: {{ severity: warning }}\n",
            i * 2
        ));
    }
    y.push_str("  - name: matches\n    rules:\n");
    for i in 0..30 {
        y.push_str(&format!(
            "      - alert: Match{i}\n        select: {{ kind: k8s.event, matchers: ['reason=\"Reason{}\"'] }}\n        condition: payload.count > 5 && payload.type == 'Warning'\n        group_by: [namespace, {{ pod: payload.involved_object.name }}]\n        resolve: {{ after: 30m }}\n        labels: {{ severity: critical }}\n",
            50 + i
        ));
    }
    y.push_str("  - name: heartbeats\n    rules:\n");
    for i in 0..20 {
        y.push_str(&format!(
            "      - alert: Heartbeat{i}\n        select: {{ kind: heartbeat.received, matchers: ['name=\"job{i}\"'] }}\n        group_by: [name]\n        absent: 15m\n        labels: {{ severity: warning }}\n"
        ));
    }
    y
}

const CONFIG: &str = "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\nreceivers:\n  - name: team\n  - name: pager\n";

/// A small, fixed generator (64-bit LCG).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn t0() -> DateTime<Utc> {
    "2026-11-25T00:00:00Z".parse().unwrap()
}

fn kind(rng: &mut Rng, pods: u64) -> (String, EventKind) {
    match rng.below(20) {
        0..=13 => {
            let pod = rng.below(pods);
            let reason = rng.below(80);
            (
                format!("uid-{pod}"),
                EventKind::K8sEvent(Arc::new(K8sEvent {
                    cluster: "prod".into(),
                    namespace: format!("ns{}", pod % 20),
                    involved_object: InvolvedObject {
                        kind: "Pod".into(),
                        name: format!("pod-{pod}"),
                        uid: format!("uid-{pod}"),
                        ..Default::default()
                    },
                    reason: format!("Reason{reason}"),
                    message: "Back-off restarting failed container".into(),
                    event_type: "Warning".into(),
                    count: 1 + rng.below(10),
                    first_seen: None,
                    last_seen: None,
                    reporting_controller: "kubelet".into(),
                    labels: LabelSet::new(),
                    ..Default::default()
                })),
            )
        }
        14..=18 => {
            let probe = rng.below(100);
            let mut values = std::collections::BTreeMap::new();
            values.insert("cpu".to_string(), rng.below(100) as f64 / 100.0);
            (
                format!("svc{probe}"),
                EventKind::ProbeResult(Arc::new(ProbeResult {
                    probe: format!("svc{probe}"),
                    probe_type: "scrape".into(),
                    target: format!("http://svc{probe}:9100/metrics"),
                    ok: true,
                    latency_ms: Some(3.0),
                    status: Some(200),
                    values,
                    error: None,
                    labels: LabelSet::new(),
                    summary: None,
                })),
            )
        }
        _ => {
            let job = rng.below(40);
            (
                format!("job{job}"),
                EventKind::HeartbeatReceived(Heartbeat {
                    name: format!("job{job}"),
                    labels: LabelSet::new(),
                }),
            )
        }
    }
}

fn events(n: u64, pods: u64) -> Vec<Event> {
    let mut rng = Rng(7);
    (0..n)
        .map(|i| {
            let at = t0() + Duration::milliseconds(20 * i as i64);
            let (key, kind) = kind(&mut rng, pods);
            Event {
                seq: i + 1,
                id: format!("e{i}").into(),
                occurred_at: at,
                recorded_at: at,
                source: "bench".into(),
                key: key.into(),
                idempotency_key: None,
                kind,
            }
        })
        .collect()
}

/// CPU seconds (user + system) this thread and the whole process have
/// used, from `/proc` (Linux; `None` elsewhere), in clock ticks of 10 ms.
/// The backtest runs its rules on the thread that calls it, so the
/// difference across a run is the rules' thread's CPU: a figure the load
/// of other processes moves less than the wall-clock split.
fn cpu_seconds() -> Option<(f64, f64)> {
    let ticks = |path: &str| -> Option<f64> {
        let stat = std::fs::read_to_string(path).ok()?;
        // Fields after the command name (which is in parentheses).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some((user + system) / 100.0)
    };
    Some((ticks("/proc/thread-self/stat")?, ticks("/proc/self/stat")?))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Writes the log the backtest reads: `--events` events in batches of
/// `--batch`, each committed at the time of its last event.
fn write_log(db: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    let clock = ManualClock::new(t0());
    let shared: SharedClock = Arc::new(clock.clone());
    let log = EventLog::open(
        db,
        LogOptions {
            synchronous: Synchronous::Normal,
            snapshot_every: 0,
            ..LogOptions::default()
        },
        shared,
        Vec::new(),
    )?;
    let started = Instant::now();
    let mut rng = Rng(7);
    let mut i = 0u64;
    while i < args.events {
        let n = (args.batch as u64).min(args.events - i);
        let batch: Vec<NewEvent> = (0..n)
            .map(|j| {
                let at = t0() + Duration::milliseconds(20 * (i + j) as i64);
                let (key, kind) = kind(&mut rng, args.pods);
                NewEvent::new(at, "bench", key, kind)
            })
            .collect();
        i += n;
        clock.set(t0() + Duration::milliseconds(20 * (i - 1) as i64));
        log.append_blocking(batch)?;
    }
    log.close();
    println!(
        "log written: {} events in {:.1} s",
        args.events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(out) = &args.export {
        std::fs::create_dir_all(out.join("rules"))?;
        std::fs::write(out.join("rules/bench.yaml"), rules_yaml())?;
        std::fs::write(out.join("fenghuo.yaml"), CONFIG)?;
        println!("rules and route tree written under {}", out.display());
        return Ok(());
    }
    // The log is large (about 1 GB for a million events): BENCH_TMPDIR puts
    // it on a disk that has room, as the other benchmarks do.
    let dir = match std::env::var_os("BENCH_TMPDIR") {
        Some(at) => tempfile::tempdir_in(at)?,
        None => tempfile::tempdir()?,
    };
    std::fs::write(dir.path().join("rules.yaml"), rules_yaml())?;
    let set = Arc::new(
        RuleSet::load(&[dir.path().join("rules.yaml")])
            .map_err(|p| anyhow::anyhow!("{:?}", p.first()))?,
    );
    println!("{} rules loaded", set.len());

    // Evaluation: the engine in memory, as the writer runs it.
    let input = if args.no_evaluation {
        Vec::new()
    } else {
        events(args.events, args.pods)
    };
    let mut rates = Vec::new();
    for run in 0..args.runs {
        if args.no_evaluation {
            break;
        }
        let mut engine = RuleEngine::new(set.clone(), t0());
        let started = Instant::now();
        let mut decisions = 0;
        for chunk in input.chunks(args.batch) {
            for e in chunk {
                engine.observe(e);
            }
            let now = chunk.last().expect("non-empty").recorded_at;
            let decided = engine.evaluate(now);
            decisions += decided.len();
            // Decisions are folded back, as the writer does.
            for (i, d) in decided.into_iter().enumerate() {
                let ev = d.to_event();
                engine.observe(&Event {
                    seq: i as u64,
                    id: ev.id.into(),
                    occurred_at: ev.occurred_at,
                    recorded_at: now,
                    source: ev.source.into(),
                    key: ev.key.into(),
                    idempotency_key: None,
                    kind: ev.kind,
                });
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = args.events as f64 / secs;
        println!(
            "evaluation run {}: {} events in {secs:.2} s = {rate:.0} events/s ({decisions} decisions, {} CEL/template errors)",
            run + 1,
            args.events,
            engine.errors
        );
        rates.push(rate);
    }
    if !rates.is_empty() {
        println!(
            "evaluation: median {:.0} events/s over {} runs (batches of {})",
            median(rates),
            args.runs,
            args.batch
        );
    }
    drop(input);
    if args.no_backtest {
        return Ok(());
    }

    // Backtest: a stored log of `events`, then the candidate over it.
    let db = match &args.log {
        Some(path) => path.clone(),
        None => dir.path().join("fenghuo.db"),
    };
    if args.log.is_some() && db.exists() {
        println!("log reused: {}", db.display());
    } else {
        write_log(&db, &args)?;
    }
    let config = Config::parse(CONFIG).map_err(|e| anyhow::anyhow!(e))?;
    let to = t0() + Duration::milliseconds(20 * args.events as i64 + 1);
    let mut times = Vec::new();
    for run in 0..args.runs {
        let log = EventLog::open_read_only(&db)?;
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let threads = match args.one_thread {
            true => fenghuo::evaluate::backtest::Threads::One,
            false => fenghuo::evaluate::backtest::Threads::Auto,
        };
        let (report, spent) = fenghuo::evaluate::backtest::run_on(
            &log,
            set.clone(),
            &config,
            t0(),
            to,
            threads,
            |_, _| {},
        )?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_before
            .zip(cpu_seconds())
            .map(|((thread0, all0), (thread1, all1))| (thread1 - thread0, all1 - all0));
        let fired: u64 = report.alerts.values().map(|p| p.candidate).sum();
        let pages: u64 = report.pages_by_receiver.values().map(|p| p.candidate).sum();
        println!(
            "backtest run {}: {} events in {secs:.2} s = {:.0} events/s ({fired} rule alerts fired, {pages} pages)",
            run + 1,
            report.events,
            report.events as f64 / secs
        );
        let s = |d: std::time::Duration| d.as_secs_f64();
        let stages = spent.other_folds + spent.dispatcher + spent.escalator;
        let rules = spent.rules_fold + spent.rules_decide;
        if spent.two_threads {
            println!(
                "  split (two threads): read+decode {:.2} s (reader thread); rules thread: waiting for pages {:.2} s, rules fold {:.2} s, rules evaluate {:.2} s, rest {:.2} s; stages thread: other views fold {:.2} s, dispatcher {:.2} s, escalator {:.2} s, waiting for the rules {:.2} s, rest {:.2} s; {} timer passes",
                s(spent.read_decode),
                s(spent.waiting_for_pages),
                s(spent.rules_fold),
                s(spent.rules_decide),
                secs - s(spent.waiting_for_pages + rules),
                s(spent.other_folds),
                s(spent.dispatcher),
                s(spent.escalator),
                s(spent.waiting_for_rules),
                secs - s(stages + spent.waiting_for_rules),
                spent.timer_passes
            );
        } else {
            println!(
                "  split (one thread): read+decode {:.2} s (reader thread, alongside), waiting for pages {:.2} s, rules fold {:.2} s, rules evaluate {:.2} s, other views fold {:.2} s, dispatcher {:.2} s, escalator {:.2} s, rest {:.2} s; {} timer passes",
                s(spent.read_decode),
                s(spent.waiting_for_pages),
                s(spent.rules_fold),
                s(spent.rules_decide),
                s(spent.other_folds),
                s(spent.dispatcher),
                s(spent.escalator),
                secs - s(spent.waiting_for_pages + rules + stages),
                spent.timer_passes
            );
        }
        if let Some((thread, all)) = cpu {
            println!(
                "  CPU: {all:.2} s in all ({:.2} µs per event), {thread:.2} s on the thread that fed the stages ({})",
                all * 1e6 / report.events.max(1) as f64,
                if spent.two_threads {
                    "the rules' thread"
                } else {
                    "rules and stages"
                }
            );
        }
        times.push(secs);
    }
    println!(
        "backtest: median {:.2} s for {} stored events over {} runs",
        median(times),
        args.events,
        args.runs
    );
    Ok(())
}
