//! Load generator for `POST /api/v2/alerts`, the endpoint Prometheus posts to.
//!
//! Speaks plain HTTP/1.1 with one keep-alive connection per worker, so the
//! client costs little next to the server on a small machine. Two kinds of
//! traffic:
//!
//! * `--mode resend` (default): a fixed universe of `--alerts` label sets,
//!   re-sent over and over exactly as Prometheus does: same labels,
//!   annotations and `startsAt` every time, `endsAt` = now + 4m per send.
//!   Before the warm-up, every alert of the universe is sent once, so the
//!   measured phase is pure re-sends.
//! * `--mode new`: every alert is a label set never seen before (a unique `id`
//!   label), so every alert is a write.
//! * `--mode delivery`: end to end, from `POST /api/v2/alerts` to the webhook.
//!   Loadgen runs the webhook receiver itself on `--listen` (the server under
//!   test is configured to send there) and, per round, posts `--alerts`
//!   (default 1,000) new firing alerts spread over `--groups` (50) groups,
//!   all alerts of one group in one POST, `--concurrency` (default 1) POSTs
//!   in flight. It records when each POST was sent and when each alert first
//!   arrived in a webhook body (`alerts[].labels`), waits until every alert
//!   has arrived or `--timeout` passed, then `--settle` more seconds to catch
//!   duplicates. Latency of an alert = its first arrival − the send instant
//!   of its POST. Every round has its own random `run` label, and the
//!   `group` label (`g<N>-<run>`) is new each round too: with `group_by:
//!   [group]` and `group_wait: 0s` each POST then opens and flushes a fresh
//!   aggregation group, where reusing `g0..g49` would add the alerts of
//!   round 2 to groups that already flushed (held for `group_interval`).
//!   Percentiles count delivered alerts only; `groups_incomplete` counts
//!   groups with an alert still missing when the round stopped waiting (it
//!   missed its group's first flush). All alerts of a POST share one send
//!   instant and usually one webhook, so with 20 alerts a group the p99 over
//!   1,000 alerts is the slowest group's latency.
//!
//! ```text
//! cargo run --release --example loadgen -- --target http://127.0.0.1:9797 \
//!     --mode resend --batch 100 --concurrency 32 --duration 10 --pid 1234
//! cargo run --release --example loadgen -- --target http://127.0.0.1:9797 \
//!     --mode delivery --listen 127.0.0.1:9799 --alerts 1000 --groups 50 --rounds 5
//! ```
//!
//! Prints one figure a line, then one `RESULT {json}` line. Throughput counts
//! only requests answered 2xx; `errors` counts non-2xx answers, timeouts and
//! transport failures. Only loopback targets are accepted, and every phase
//! ends by its deadline (or `--requests`) on its own. `--mode delivery`
//! prints a `ROUND {json}` line per round and a `RESULT {json}` line with the
//! medians over rounds.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{DefaultBodyLimit, State};
use axum::serve::ListenerExt;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri, header};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;

/// What Prometheus uses: `endsAt` = now + 4 × the resend interval (1m).
const ENDS_IN: chrono::Duration = chrono::Duration::minutes(4);
/// A run given only `--requests` still stops after this long.
const SAFETY_CAP: Duration = Duration::from_secs(600);
/// How many error answers are printed.
const ERROR_SAMPLES: usize = 3;

const ALERTNAMES: [&str; 8] = [
    "InstanceDown",
    "HighCpuUsage",
    "HighMemoryUsage",
    "DiskWillFillIn4Hours",
    "NodeFilesystemAlmostFull",
    "RpcErrorRateHigh",
    "PodCrashLooping",
    "HostNetworkReceiveErrors",
];
const JOBS: [&str; 4] = ["node", "api", "rpc", "kubelet"];
const SEVERITIES: [&str; 3] = ["warning", "critical", "info"];
const CLUSTERS: [&str; 4] = ["prod-bj-1", "prod-sh-2", "prod-gz-1", "staging"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Re-send a fixed universe of alerts (Prometheus' steady state).
    Resend,
    /// Every alert a new label set (every alert is a write).
    New,
    /// Firing alerts in groups, timed through to a webhook receiver run here.
    Delivery,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Resend => "resend",
            Mode::New => "new",
            Mode::Delivery => "delivery",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Posts Alertmanager API v2 alerts to a loopback server and measures it")]
struct Args {
    /// Base URL of the server, loopback only (http://127.0.0.1:PORT).
    #[arg(long)]
    target: String,
    /// Kind of traffic.
    #[arg(long, value_enum, default_value_t = Mode::Resend)]
    mode: Mode,
    /// Alerts per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Workers, each with its own keep-alive connection (default 32; 1 with
    /// --mode delivery, i.e. one POST at a time).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Distinct alerts in the resend universe (default 10000); alerts per
    /// round with --mode delivery (default 1000).
    #[arg(long)]
    alerts: Option<usize>,
    /// Measured seconds (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Measured requests; with --duration, whichever comes first.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured seconds before measuring (after the resend universe is sent once).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Server process whose VmHWM and VmRSS are read at the end.
    #[arg(long)]
    pid: Option<u32>,
    /// Exit non-zero when any request failed (non-2xx or transport).
    #[arg(long)]
    check_2xx: bool,
    /// Adds a `group` label shared by this many consecutive alerts of the
    /// universe (0: no `group` label).
    #[arg(long, default_value_t = 0)]
    group_size: usize,
    /// Client runtime threads (1 leaves the other core to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds one request may take before it counts as an error; with
    /// --mode delivery also how long a round waits, from its first POST, for
    /// every alert to arrive.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// --mode delivery: where the webhook receiver listens, loopback only
    /// (127.0.0.1:PORT); the server under test must send there.
    #[arg(long)]
    listen: Option<String>,
    /// --mode delivery: groups per round (a `group` label each; one POST each).
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// --mode delivery: rounds against the same server, each with a new `run`.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// --mode delivery: seconds a round keeps listening after its last alert
    /// arrived, to count duplicates.
    #[arg(long, default_value_t = 0.5)]
    settle: f64,
}

impl Args {
    fn alerts(&self) -> usize {
        self.alerts.unwrap_or(match self.mode {
            Mode::Delivery => 1_000,
            Mode::Resend | Mode::New => 10_000,
        })
    }

    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(match self.mode {
            Mode::Delivery => 1,
            Mode::Resend | Mode::New => 32,
        })
    }
}

type Conn = SendRequest<Full<Bytes>>;

/// What every worker shares.
struct Shared {
    addr: SocketAddr,
    host: String,
    path: Uri,
    mode: Mode,
    batch: usize,
    timeout: Duration,
    /// Each resend alert's JSON up to the value of `endsAt`.
    universe: Vec<String>,
    /// Next batch of the resend rotation (across phases).
    resend_cursor: AtomicU64,
    /// Next `id` of `--mode new` (across phases).
    next_id: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseKind {
    /// Every alert of the universe once.
    Prime,
    Traffic,
}

struct Phase {
    kind: PhaseKind,
    deadline: Instant,
    max_requests: Option<u64>,
    issued: AtomicU64,
    /// Next chunk of the universe (`Prime`).
    chunk: AtomicU64,
    record: bool,
}

#[derive(Default)]
struct Stats {
    ok_requests: u64,
    ok_alerts: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.ok_requests += other.ok_requests;
        self.ok_alerts += other.ok_alerts;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.batch == 0 || args.concurrency() == 0 || args.threads == 0 {
        bail!("--batch, --concurrency and --threads must be at least 1");
    }
    if args.mode == Mode::Resend && args.alerts() == 0 {
        bail!("--alerts must be at least 1 in resend mode");
    }
    if args.mode == Mode::Delivery {
        if args.listen.is_none() {
            bail!("--mode delivery needs --listen 127.0.0.1:PORT for its webhook receiver");
        }
        if args.groups == 0 || args.rounds == 0 || args.groups > args.alerts() {
            bail!("--mode delivery needs 1 <= --groups <= --alerts and --rounds >= 1");
        }
        if !(args.settle >= 0.0 && args.timeout > 0.0) {
            bail!("--settle must be >= 0 and --timeout > 0");
        }
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (addr, host) = loopback_target(&args.target).await?;
    let path: Uri = "/api/v2/alerts".parse()?;
    let started = Utc::now();
    let universe = match args.mode {
        Mode::Resend => (0..args.alerts())
            .map(|i| resend_alert(i, args.group_size, started))
            .collect(),
        Mode::New | Mode::Delivery => Vec::new(),
    };
    let shared = Arc::new(Shared {
        addr,
        host,
        path,
        mode: args.mode,
        batch: args.batch,
        timeout: Duration::from_secs_f64(args.timeout),
        universe,
        resend_cursor: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        error_samples: Mutex::new(Vec::new()),
    });

    let mut conns = Vec::with_capacity(args.concurrency());
    for _ in 0..args.concurrency() {
        conns.push(Some(
            connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?,
        ));
    }
    if args.mode == Mode::Delivery {
        return delivery(&args, &shared, conns).await;
    }

    let mut errors = 0;
    let warm_start = Instant::now();
    let warm_end = warm_start + Duration::from_secs_f64(args.warmup);
    if args.mode == Mode::Resend {
        let (c, prime, elapsed) = phase(
            &shared,
            conns,
            PhaseKind::Prime,
            warm_start + SAFETY_CAP,
            None,
            false,
        )
        .await;
        conns = c;
        errors += prime.errors;
        println!(
            "prime: {} alerts in {:.2}s ({:.0} alerts/s), {} errors",
            prime.ok_alerts,
            elapsed.as_secs_f64(),
            per_sec(prime.ok_alerts, elapsed),
            prime.errors
        );
    }
    if Instant::now() < warm_end {
        let (c, warm, elapsed) =
            phase(&shared, conns, PhaseKind::Traffic, warm_end, None, false).await;
        conns = c;
        errors += warm.errors;
        println!(
            "warmup: {:.2}s, {:.0} alerts/s, {} errors",
            elapsed.as_secs_f64(),
            per_sec(warm.ok_alerts, elapsed),
            warm.errors
        );
    }

    let limit = match (args.duration, args.requests) {
        (Some(d), _) => Duration::from_secs_f64(d).min(SAFETY_CAP),
        (None, Some(_)) => SAFETY_CAP,
        (None, None) => Duration::from_secs(10),
    };
    let (_conns, mut stats, elapsed) = phase(
        &shared,
        conns,
        PhaseKind::Traffic,
        Instant::now() + limit,
        args.requests,
        true,
    )
    .await;
    let unmeasured_errors = errors;
    stats.latencies_us.sort_unstable();
    let lat = |q: f64| percentile_ms(&stats.latencies_us, q);
    let requests = stats.ok_requests + stats.errors;
    let rps = per_sec(stats.ok_requests, elapsed);
    let aps = per_sec(stats.ok_alerts, elapsed);
    let mem = args.pid.map(read_memory);

    println!("target: {}", args.target);
    println!("mode: {}", args.mode.name());
    println!("batch: {}", args.batch);
    println!("concurrency: {}", args.concurrency());
    println!("elapsed_s: {:.3}", elapsed.as_secs_f64());
    println!("requests: {requests}");
    println!("alerts: {}", stats.ok_alerts);
    println!("errors: {}", stats.errors);
    println!("requests_per_s: {rps:.1}");
    println!("alerts_per_s: {aps:.1}");
    println!("latency_p50_ms: {:.3}", lat(0.50));
    println!("latency_p90_ms: {:.3}", lat(0.90));
    println!("latency_p99_ms: {:.3}", lat(0.99));
    println!("latency_max_ms: {:.3}", lat(1.0));
    let mut result = json!({
        "target": args.target,
        "mode": args.mode.name(),
        "batch": args.batch,
        "concurrency": args.concurrency(),
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "requests": requests,
        "alerts": stats.ok_alerts,
        "errors": stats.errors,
        "warmup_errors": unmeasured_errors,
        "requests_per_s": round3(rps),
        "alerts_per_s": round3(aps),
        "latency_p50_ms": round3(lat(0.50)),
        "latency_p90_ms": round3(lat(0.90)),
        "latency_p99_ms": round3(lat(0.99)),
        "latency_max_ms": round3(lat(1.0)),
    });
    if let Some(mem) = mem {
        match mem {
            Ok((hwm_kib, rss_kib)) => {
                println!("server_peak_rss_mib: {:.1}", hwm_kib as f64 / 1024.0);
                println!("server_rss_mib: {:.1}", rss_kib as f64 / 1024.0);
                result["server_peak_rss_mib"] = json!(round3(hwm_kib as f64 / 1024.0));
                result["server_rss_mib"] = json!(round3(rss_kib as f64 / 1024.0));
            }
            Err(e) => eprintln!("warning: reading server memory: {e:#}"),
        }
    }
    for (i, body) in shared.error_samples.lock().iter().enumerate() {
        eprintln!("error {}: {body}", i + 1);
    }
    println!("RESULT {result}");
    if args.check_2xx && stats.errors + unmeasured_errors > 0 {
        bail!(
            "{} requests failed ({} before measuring)",
            stats.errors + unmeasured_errors,
            unmeasured_errors
        );
    }
    Ok(())
}

/// Runs one phase on every connection; hands the connections back with the
/// merged figures and the time from start until the last worker stopped.
async fn phase(
    shared: &Arc<Shared>,
    conns: Vec<Option<Conn>>,
    kind: PhaseKind,
    deadline: Instant,
    max_requests: Option<u64>,
    record: bool,
) -> (Vec<Option<Conn>>, Stats, Duration) {
    let phase = Arc::new(Phase {
        kind,
        deadline,
        max_requests,
        issued: AtomicU64::new(0),
        chunk: AtomicU64::new(0),
        record,
    });
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(worker(conn, shared.clone(), phase.clone())))
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut stats = Stats::default();
    for task in tasks {
        match task.await {
            Ok((conn, s)) => {
                conns.push(conn);
                stats.merge(s);
            }
            Err(e) => {
                eprintln!("worker failed: {e}");
                conns.push(None);
            }
        }
    }
    (conns, stats, start.elapsed())
}

async fn worker(
    mut conn: Option<Conn>,
    shared: Arc<Shared>,
    phase: Arc<Phase>,
) -> (Option<Conn>, Stats) {
    let mut stats = Stats::default();
    let mut body = String::new();
    loop {
        if Instant::now() >= phase.deadline {
            break;
        }
        if let Some(max) = phase.max_requests
            && phase.issued.fetch_add(1, Ordering::Relaxed) >= max
        {
            break;
        }
        body.clear();
        let Some(alerts) = next_body(&shared, &phase, &mut body) else {
            break;
        };
        let sender = match conn.as_mut() {
            Some(c) => c,
            None => match connect(shared.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.errors += 1;
                    sample_error(&shared, format!("connect: {e}"));
                    // Pacing: the server is gone or refusing; do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(shared.path.clone())
            .header(header::HOST, shared.host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(std::mem::take(&mut body))))
            .expect("static request parts are valid");
        let sent = Instant::now();
        let answer = tokio::time::timeout(shared.timeout, send(sender, request)).await;
        let took = sent.elapsed();
        match answer {
            Ok(Ok((status, _))) if status.is_success() => {
                stats.ok_requests += 1;
                stats.ok_alerts += alerts as u64;
                if phase.record {
                    stats
                        .latencies_us
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(Ok((status, answer_body))) => {
                stats.errors += 1;
                sample_error(
                    &shared,
                    format!("{status}: {}", String::from_utf8_lossy(&answer_body)),
                );
            }
            Ok(Err(e)) => {
                stats.errors += 1;
                sample_error(&shared, format!("transport: {e}"));
                conn = None;
            }
            Err(_) => {
                stats.errors += 1;
                sample_error(&shared, format!("timeout after {:?}", shared.timeout));
                conn = None;
            }
        }
    }
    (conn, stats)
}

async fn send(
    sender: &mut Conn,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes.
        let _ = connection.await;
    });
    Ok(sender)
}

fn sample_error(shared: &Shared, message: String) {
    let mut samples = shared.error_samples.lock();
    if samples.len() < ERROR_SAMPLES {
        let mut message = message;
        message.truncate(500);
        samples.push(message);
    }
}

/// Writes the next request body of this phase into `body`; returns how many
/// alerts it holds, or `None` when the phase has no more to send.
fn next_body(shared: &Shared, phase: &Phase, body: &mut String) -> Option<usize> {
    let now = Utc::now();
    let ends_at = timestamp(now + ENDS_IN);
    let n = shared.universe.len();
    body.push('[');
    let count = match (phase.kind, shared.mode) {
        (PhaseKind::Prime, _) => {
            let chunk = phase.chunk.fetch_add(1, Ordering::Relaxed) as usize;
            let start = chunk.checked_mul(shared.batch).filter(|s| *s < n)?;
            let end = (start + shared.batch).min(n);
            for i in start..end {
                push_resend(body, &shared.universe[i], &ends_at, i == start);
            }
            end - start
        }
        (PhaseKind::Traffic, Mode::Resend) => {
            let k = shared.resend_cursor.fetch_add(1, Ordering::Relaxed);
            let start = (k as usize).wrapping_mul(shared.batch) % n;
            for j in 0..shared.batch {
                push_resend(body, &shared.universe[(start + j) % n], &ends_at, j == 0);
            }
            shared.batch
        }
        (PhaseKind::Traffic, Mode::New) => {
            let first = shared
                .next_id
                .fetch_add(shared.batch as u64, Ordering::Relaxed);
            let starts_at = timestamp(now);
            for id in first..first + shared.batch as u64 {
                if id != first {
                    body.push(',');
                }
                push_new(body, id, &starts_at, &ends_at);
            }
            shared.batch
        }
        // Delivery rounds build their bodies up front (`delivery_bodies`).
        (PhaseKind::Traffic, Mode::Delivery) => return None,
    };
    body.push(']');
    Some(count)
}

fn push_resend(body: &mut String, prefix: &str, ends_at: &str, first: bool) {
    if !first {
        body.push(',');
    }
    body.push_str(prefix);
    body.push_str(ends_at);
    body.push_str("\"}");
}

/// The JSON of resend alert `i` up to the value of `endsAt`: the same bytes
/// at every send, as Prometheus' re-sends are.
fn resend_alert(i: usize, group_size: usize, started: DateTime<Utc>) -> String {
    let alertname = ALERTNAMES[i % ALERTNAMES.len()];
    let instance = format!("host-{i}:9100");
    let mut labels = json!({
        "alertname": alertname,
        "instance": instance,
        "job": JOBS[i % JOBS.len()],
        "severity": SEVERITIES[i % SEVERITIES.len()],
        "cluster": CLUSTERS[(i / 7) % CLUSTERS.len()],
    });
    if let Some(group) = i.checked_div(group_size) {
        labels["group"] = json!(format!("g{group}"));
    }
    let alert = json!({
        "labels": labels,
        "annotations": {
            "summary": format!("{alertname} on {instance}"),
            "description": format!(
                "{instance} of job {} has been in this state for more than 5 minutes.",
                JOBS[i % JOBS.len()]
            ),
        },
        "startsAt": timestamp(started),
        "generatorURL": format!("http://prometheus:9090/graph?g0.expr=up%7Binstance%3D%22{instance}%22%7D&g0.tab=1"),
    });
    let mut s = alert.to_string();
    assert_eq!(s.pop(), Some('}'));
    s.push_str(",\"endsAt\":\"");
    s
}

/// A never-seen alert: the `id` label makes its label set unique.
fn push_new(body: &mut String, id: u64, starts_at: &str, ends_at: &str) {
    let i = id as usize;
    let alertname = ALERTNAMES[i % ALERTNAMES.len()];
    let job = JOBS[i % JOBS.len()];
    // Only safe characters go in, so no escaping is needed.
    let _ = write!(
        body,
        "{{\"labels\":{{\"alertname\":\"{alertname}\",\"instance\":\"host-{host}:9100\",\"job\":\"{job}\",\
         \"severity\":\"{sev}\",\"cluster\":\"{cluster}\",\"id\":\"{id}\"}},\
         \"annotations\":{{\"summary\":\"{alertname} on host-{host}:9100\",\
         \"description\":\"host-{host}:9100 of job {job} has been in this state for more than 5 minutes.\"}},\
         \"startsAt\":\"{starts_at}\",\"endsAt\":\"{ends_at}\",\
         \"generatorURL\":\"http://prometheus:9090/graph?g0.expr=up&g0.tab=1\"}}",
        host = i % 10_000,
        sev = SEVERITIES[i % SEVERITIES.len()],
        cluster = CLUSTERS[(i / 7) % CLUSTERS.len()],
    );
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Resolves `target` and refuses anything that is not loopback. Returns the
/// address and the `Host` header.
async fn loopback_target(target: &str) -> anyhow::Result<(SocketAddr, String)> {
    let uri: Uri = target
        .parse()
        .with_context(|| format!("--target {target:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--target must be an http:// URL");
    }
    let authority = uri.authority().context("--target has no host")?.to_string();
    let host = uri.host().context("--target has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        bail!("{host} resolves to nothing");
    };
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!("--target must be a loopback address (127.0.0.0/8, ::1), got {addrs:?}");
    }
    Ok((addr, authority))
}

/// `VmHWM` and `VmRSS` of `pid`, in KiB.
fn read_memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing from {path}"))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {line:?}"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// --- --mode delivery ---------------------------------------------------------

/// What the webhook receiver knows of one round, found by its `run` label.
struct RoundState {
    expected: usize,
    /// Signalled (a stored permit) when every alert of the round has arrived.
    done: tokio::sync::Notify,
    arrivals: Mutex<Arrivals>,
}

#[derive(Default)]
struct Arrivals {
    /// First arrival of each alert (by its `id` label) as firing.
    first: Vec<Option<Instant>>,
    delivered: usize,
    /// (receiver, id) pairs seen: a second arrival is a duplicate.
    seen: HashSet<(String, usize)>,
    duplicates: u64,
    /// Webhook requests carrying at least one alert of this round.
    requests: u64,
    /// Alerts of this round that arrived as resolved (none should).
    resolved: u64,
    /// Alerts of this round with no valid `id` label.
    unknown: u64,
}

/// Shared between the round loop and the receiver's thread.
#[derive(Default)]
struct Receiver {
    rounds: Mutex<HashMap<String, Arc<RoundState>>>,
    /// Requests with no alert of an open round (late, or someone else's).
    stray_requests: AtomicU64,
    /// Bodies that are not webhook JSON.
    bad_requests: AtomicU64,
}

/// The parts of Alertmanager's webhook body (version 4) that are read.
#[derive(Deserialize)]
struct Webhook {
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
struct WebhookAlert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
}

/// One POST of a round.
struct Posted {
    group: usize,
    /// When the request was handed to the connection (after it was ready).
    sent: Instant,
    took: Duration,
    ok: bool,
}

/// Any path, any method: the webhook body is timed when fully read.
async fn receive(State(rx): State<Arc<Receiver>>, body: Bytes) -> hyper::StatusCode {
    let now = Instant::now();
    let Ok(hook) = serde_json::from_slice::<Webhook>(&body) else {
        rx.bad_requests.fetch_add(1, Ordering::Relaxed);
        return hyper::StatusCode::BAD_REQUEST;
    };
    let mut counted: Vec<Arc<RoundState>> = Vec::new();
    for alert in &hook.alerts {
        let Some(run) = alert.labels.get("run") else {
            continue;
        };
        let Some(round) = rx.rounds.lock().get(run).cloned() else {
            continue;
        };
        let mut a = round.arrivals.lock();
        if !counted.iter().any(|r| Arc::ptr_eq(r, &round)) {
            a.requests += 1;
            counted.push(round.clone());
        }
        if alert.status != "firing" {
            a.resolved += 1;
            continue;
        }
        let Some(id) = alert
            .labels
            .get("id")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&id| id < round.expected)
        else {
            a.unknown += 1;
            continue;
        };
        if !a.seen.insert((hook.receiver.clone(), id)) {
            a.duplicates += 1;
        }
        if a.first[id].is_none() {
            a.first[id] = Some(now);
            a.delivered += 1;
            if a.delivered == round.expected {
                round.done.notify_one();
            }
        }
    }
    if counted.is_empty() {
        rx.stray_requests.fetch_add(1, Ordering::Relaxed);
    }
    hyper::StatusCode::OK
}

/// Binds `listen` (loopback only) and serves the receiver on its own thread,
/// so that arrivals are timed without waiting for the POSTing side.
fn spawn_receiver(listen: &str, receiver: Arc<Receiver>) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not IP:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("--listen must be a loopback address (127.0.0.0/8, ::1), got {addr}");
    }
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::disable())
        .with_state(receiver);
    std::thread::Builder::new()
        .name("webhook-receiver".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?.tap_io(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        });
                        axum::serve(listener, app).await
                    })
                });
            if let Err(e) = served {
                eprintln!("webhook receiver stopped: {e}");
            }
        })?;
    Ok(bound)
}

/// One body per group `g`: the round's alerts `i` with `i % groups == g`,
/// firing since `now`, labelled with the round's `run` and their `id`.
fn delivery_bodies(alerts: usize, groups: usize, run: &str, now: DateTime<Utc>) -> Vec<Bytes> {
    let starts_at = timestamp(now);
    let ends_at = timestamp(now + ENDS_IN);
    (0..groups)
        .map(|g| {
            let mut body = String::from("[");
            for i in (g..alerts).step_by(groups) {
                if i != g {
                    body.push(',');
                }
                let alertname = ALERTNAMES[i % ALERTNAMES.len()];
                let job = JOBS[i % JOBS.len()];
                // Only safe characters go in, so no escaping is needed.
                let _ = write!(
                    body,
                    "{{\"labels\":{{\"alertname\":\"{alertname}\",\"instance\":\"host-{i}:9100\",\
                     \"job\":\"{job}\",\"severity\":\"{sev}\",\"cluster\":\"{cluster}\",\
                     \"group\":\"g{g}-{run}\",\"run\":\"{run}\",\"id\":\"{i}\"}},\
                     \"annotations\":{{\"summary\":\"{alertname} on host-{i}:9100\",\
                     \"description\":\"host-{i}:9100 of job {job} has been in this state for more than 5 minutes.\"}},\
                     \"startsAt\":\"{starts_at}\",\"endsAt\":\"{ends_at}\",\
                     \"generatorURL\":\"http://prometheus:9090/graph?g0.expr=up&g0.tab=1\"}}",
                    sev = SEVERITIES[i % SEVERITIES.len()],
                    cluster = CLUSTERS[(i / 7) % CLUSTERS.len()],
                );
            }
            body.push(']');
            Bytes::from(body)
        })
        .collect()
}

/// Posts every body once, `conns.len()` at a time.
async fn post_groups(
    shared: &Arc<Shared>,
    conns: Vec<Option<Conn>>,
    bodies: Arc<Vec<Bytes>>,
) -> (Vec<Option<Conn>>, Vec<Posted>) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(post_worker(
                conn,
                shared.clone(),
                bodies.clone(),
                next.clone(),
            ))
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut posted = Vec::with_capacity(bodies.len());
    for task in tasks {
        match task.await {
            Ok((conn, p)) => {
                conns.push(conn);
                posted.extend(p);
            }
            Err(e) => {
                eprintln!("worker failed: {e}");
                conns.push(None);
            }
        }
    }
    (conns, posted)
}

async fn post_worker(
    mut conn: Option<Conn>,
    shared: Arc<Shared>,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> (Option<Conn>, Vec<Posted>) {
    let mut posted = Vec::new();
    loop {
        let group = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(group) else {
            break;
        };
        let mut sent = Instant::now();
        let sender = match conn.as_mut() {
            Some(c) => c,
            None => match connect(shared.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    sample_error(&shared, format!("connect: {e}"));
                    posted.push(Posted {
                        group,
                        sent,
                        took: sent.elapsed(),
                        ok: false,
                    });
                    continue;
                }
            },
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(shared.path.clone())
            .header(header::HOST, shared.host.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("static request parts are valid");
        let answer = tokio::time::timeout(shared.timeout, async {
            sender.ready().await?;
            sent = Instant::now();
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await;
        let took = sent.elapsed();
        let ok = match answer {
            Ok(Ok((status, _))) if status.is_success() => true,
            Ok(Ok((status, answer_body))) => {
                sample_error(
                    &shared,
                    format!("{status}: {}", String::from_utf8_lossy(&answer_body)),
                );
                false
            }
            Ok(Err(e)) => {
                sample_error(&shared, format!("transport: {e}"));
                conn = None;
                false
            }
            Err(_) => {
                sample_error(&shared, format!("timeout after {:?}", shared.timeout));
                conn = None;
                false
            }
        };
        posted.push(Posted {
            group,
            sent,
            took,
            ok,
        });
    }
    (conn, posted)
}

/// The figures of one round, as printed on its `ROUND` line.
struct RoundFigures {
    json: serde_json::Value,
    latencies_us: Vec<u32>,
    post_errors: u64,
    complete: bool,
}

async fn delivery(
    args: &Args,
    shared: &Arc<Shared>,
    mut conns: Vec<Option<Conn>>,
) -> anyhow::Result<()> {
    let receiver = Arc::new(Receiver::default());
    let listen = spawn_receiver(args.listen.as_deref().unwrap_or_default(), receiver.clone())?;
    let (alerts, groups) = (args.alerts(), args.groups);
    println!("target: {}", args.target);
    println!("mode: {}", args.mode.name());
    println!("listen: http://{listen}/");
    println!("alerts: {alerts} in {groups} groups, one POST per group");
    println!("concurrency: {}", args.concurrency());
    println!("rounds: {}", args.rounds);

    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let figures = delivery_round(args, shared, &receiver, &mut conns, round).await;
        println!("round {round}: {}", describe_delivery(&figures.json));
        println!("ROUND {}", figures.json);
        rounds.push(figures);
    }

    let med = |key: &str| {
        json!(median(rounds.iter().filter_map(|r| r.json[key].as_f64()).collect()).map(round3))
    };
    let sum = |key: &str| -> u64 { rounds.iter().filter_map(|r| r.json[key].as_u64()).sum() };
    let mut pooled: Vec<u32> = rounds
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    pooled.sort_unstable();
    let post_errors: u64 = rounds.iter().map(|r| r.post_errors).sum();
    let complete = rounds.iter().filter(|r| r.complete).count();
    let mut result = json!({
        "target": args.target,
        "mode": args.mode.name(),
        "listen": format!("http://{listen}/"),
        "alerts": alerts,
        "groups": groups,
        "concurrency": args.concurrency(),
        "rounds": args.rounds,
        "complete_rounds": complete,
        "expected": alerts * args.rounds,
        "delivered": sum("delivered"),
        "webhook_requests": sum("webhook_requests"),
        "groups_incomplete": sum("groups_incomplete"),
        "duplicates": sum("duplicates"),
        "resolved": sum("resolved"),
        "post_errors": post_errors,
        "stray_requests": receiver.stray_requests.load(Ordering::Relaxed),
        "bad_requests": receiver.bad_requests.load(Ordering::Relaxed),
        "latency_p50_ms": med("latency_p50_ms"),
        "latency_p90_ms": med("latency_p90_ms"),
        "latency_p99_ms": med("latency_p99_ms"),
        "latency_max_ms": med("latency_max_ms"),
        "last_delivery_ms": med("last_delivery_ms"),
        "deliveries_per_s": med("deliveries_per_s"),
        "alerts_per_s": med("alerts_per_s"),
        "posts_ms": med("posts_ms"),
        "post_p99_ms": med("post_p99_ms"),
        "pooled_latency_p50_ms": pooled_ms(&pooled, 0.50),
        "pooled_latency_p99_ms": pooled_ms(&pooled, 0.99),
        "pooled_latency_max_ms": pooled_ms(&pooled, 1.0),
    });
    println!(
        "medians of {} rounds: {}; {} stray webhooks",
        args.rounds,
        describe_delivery(&result),
        result["stray_requests"],
    );
    if let Some(pid) = args.pid {
        match read_memory(pid) {
            Ok((hwm_kib, rss_kib)) => {
                result["server_peak_rss_mib"] = json!(round3(hwm_kib as f64 / 1024.0));
                result["server_rss_mib"] = json!(round3(rss_kib as f64 / 1024.0));
            }
            Err(e) => eprintln!("warning: reading server memory: {e:#}"),
        }
    }
    for (i, body) in shared.error_samples.lock().iter().enumerate() {
        eprintln!("error {}: {body}", i + 1);
    }
    println!("RESULT {result}");
    if args.check_2xx && post_errors > 0 {
        bail!("{post_errors} POSTs failed");
    }
    Ok(())
}

/// Posts one round, waits for its deliveries, and times them.
async fn delivery_round(
    args: &Args,
    shared: &Arc<Shared>,
    receiver: &Receiver,
    conns: &mut Vec<Option<Conn>>,
    round: usize,
) -> RoundFigures {
    let (alerts, groups) = (args.alerts(), args.groups);
    let run = format!("{:08x}", rand::random::<u32>());
    let bodies = Arc::new(delivery_bodies(alerts, groups, &run, Utc::now()));
    let state = Arc::new(RoundState {
        expected: alerts,
        done: tokio::sync::Notify::new(),
        arrivals: Mutex::new(Arrivals {
            first: vec![None; alerts],
            ..Arrivals::default()
        }),
    });
    receiver.rounds.lock().insert(run.clone(), state.clone());

    let (c, posted) = post_groups(shared, std::mem::take(conns), bodies).await;
    *conns = c;
    let mut sent_at = vec![None; groups];
    for p in &posted {
        sent_at[p.group] = Some(p.sent);
    }
    let first_post = posted
        .iter()
        .map(|p| p.sent)
        .min()
        .unwrap_or_else(Instant::now);
    let posts_done = posted
        .iter()
        .map(|p| p.sent + p.took)
        .max()
        .unwrap_or(first_post);
    let mut post_us: Vec<u32> = posted.iter().map(|p| micros(p.took)).collect();
    post_us.sort_unstable();
    let post_errors = posted.iter().filter(|p| !p.ok).count() as u64;

    let deadline =
        tokio::time::Instant::from_std(first_post + Duration::from_secs_f64(args.timeout));
    let _ = tokio::time::timeout_at(deadline, state.done.notified()).await;
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    receiver.rounds.lock().remove(&run);
    let a = std::mem::take(&mut *state.arrivals.lock());

    let mut latencies_us = Vec::with_capacity(a.delivered);
    let mut last = None;
    for (i, first) in a.first.iter().enumerate() {
        if let (Some(at), Some(sent)) = (*first, sent_at[i % groups]) {
            latencies_us.push(micros(at.saturating_duration_since(sent)));
            last = last.max(Some(at));
        }
    }
    latencies_us.sort_unstable();
    let span = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(first_post));
    let lat = |q: f64| pooled_ms(&latencies_us, q);
    // Groups whose alerts did not all arrive: with group_wait 0 an alert that
    // missed its group's first flush waits group_interval.
    let groups_incomplete = (0..groups)
        .filter(|&g| (g..alerts).step_by(groups).any(|i| a.first[i].is_none()))
        .count();
    let json = json!({
        "round": round,
        "run": run,
        "expected": alerts,
        "delivered": a.delivered,
        "webhook_requests": a.requests,
        "groups_incomplete": groups_incomplete,
        "duplicates": a.duplicates,
        "resolved": a.resolved,
        "unknown": a.unknown,
        "post_errors": post_errors,
        "latency_p50_ms": lat(0.50),
        "latency_p90_ms": lat(0.90),
        "latency_p99_ms": lat(0.99),
        "latency_max_ms": lat(1.0),
        "last_delivery_ms": last.map(|_| round3(span.as_secs_f64() * 1000.0)),
        "deliveries_per_s": round3(per_sec(a.requests, span)),
        "alerts_per_s": round3(per_sec(a.delivered as u64, span)),
        "posts_ms": round3(posts_done.saturating_duration_since(first_post).as_secs_f64() * 1000.0),
        "post_p99_ms": round3(percentile_ms(&post_us, 0.99)),
    });
    RoundFigures {
        json,
        latencies_us,
        post_errors,
        complete: a.delivered == alerts,
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The median, the mean of the middle two for an even count.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A latency percentile in ms, `null` when nothing arrived.
fn pooled_ms(sorted_us: &[u32], q: f64) -> serde_json::Value {
    if sorted_us.is_empty() {
        serde_json::Value::Null
    } else {
        json!(round3(percentile_ms(sorted_us, q)))
    }
}

/// One line for a `ROUND` or the summary `RESULT` of --mode delivery.
fn describe_delivery(j: &serde_json::Value) -> String {
    let num = |key: &str, decimals: usize| match j[key].as_f64() {
        Some(x) => format!("{x:.decimals$}"),
        None => "-".to_owned(),
    };
    format!(
        "{}/{} alerts in {} webhooks ({} groups incomplete, {} duplicates, {} POST errors), \
         p50 {} p90 {} p99 {} max {} ms, last delivery {} ms after the first POST, \
         {} webhooks/s, {} alerts/s",
        j["delivered"],
        j["expected"],
        j["webhook_requests"],
        j["groups_incomplete"],
        j["duplicates"],
        j["post_errors"],
        num("latency_p50_ms", 3),
        num("latency_p90_ms", 3),
        num("latency_p99_ms", 3),
        num("latency_max_ms", 3),
        num("last_delivery_ms", 1),
        num("deliveries_per_s", 1),
        num("alerts_per_s", 0),
    )
}
