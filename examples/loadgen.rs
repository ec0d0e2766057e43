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
//!
//! ```text
//! cargo run --release --example loadgen -- --target http://127.0.0.1:9797 \
//!     --mode resend --batch 100 --concurrency 32 --duration 10 --pid 1234
//! ```
//!
//! Prints one figure a line, then one `RESULT {json}` line. Throughput counts
//! only requests answered 2xx; `errors` counts non-2xx answers, timeouts and
//! transport failures. Only loopback targets are accepted, and every phase
//! ends by its deadline (or `--requests`) on its own.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri, header};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
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
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Resend => "resend",
            Mode::New => "new",
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
    /// Workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Distinct alerts in the resend universe.
    #[arg(long, default_value_t = 10_000)]
    alerts: usize,
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
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
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
    if args.batch == 0 || args.concurrency == 0 || args.threads == 0 {
        bail!("--batch, --concurrency and --threads must be at least 1");
    }
    if args.mode == Mode::Resend && args.alerts == 0 {
        bail!("--alerts must be at least 1 in resend mode");
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
        Mode::Resend => (0..args.alerts)
            .map(|i| resend_alert(i, args.group_size, started))
            .collect(),
        Mode::New => Vec::new(),
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

    let mut conns = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        conns.push(Some(
            connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?,
        ));
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
    println!("concurrency: {}", args.concurrency);
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
        "concurrency": args.concurrency,
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
