//! Probes against real servers on 127.0.0.1 (HTTP, HTTPS with a
//! self-signed certificate, TCP, Prometheus text), and the pipeline they
//! feed: a probe that goes down fires the shipped `ServiceInstanceDown`
//! rule, a heartbeat that stops fires `HeartbeatStopped`, a restart
//! compares with what the log holds. Time is a manual clock; the only real
//! waits are the servers' I/O (and a probe timeout against a server that
//! never answers).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{Event, EventKind, EventQuery};
use fenghuo::pipeline::Pipeline;
use fenghuo::probe::config::Check;
use fenghuo::probe::{Outcome, http, scrape, tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `router` on a free loopback port until the handle is aborted
/// (then connections are refused: probes open a fresh one each run).
async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, task)
}

/// [`serve`] for a test that stops the server: once the returned task has
/// ended after `stop`, every connection is closed too. An aborted server
/// leaves its connections' tasks behind, and a socket one of them still
/// holds (a probe's last connection, its close not yet read) keeps the
/// port: `hold_port` then failed with "Address already in use".
async fn serve_stoppable(
    router: Router,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, task)
}

/// A port nothing listens on, held (bound, not listening) for as long as
/// the socket lives: a port merely left free can be handed to another
/// test's server running in parallel, which then answers the probe.
fn closed_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// Holds `addr` (bound, not listening) after its server stopped, so
/// connections to it are refused rather than answered by whatever test
/// server is given the port next.
fn hold_port(addr: SocketAddr) -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("holding {addr} after its server stopped: {e}"));
    socket
}

fn services() -> Router {
    Router::new()
        .route("/healthz", get(|| async { r#"{"status":"ok"}"# }))
        .route("/degraded", get(|| async { r#"{"status":"degraded"}"# }))
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        )
        .route("/created", get(|| async { (StatusCode::CREATED, "made") }))
        // Answers only with the right token; says nothing of what it got.
        .route(
            "/private",
            get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer s3cr3t-token")
                {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        )
        // Never answers: a hung backend.
        .route(
            "/slow",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
}

/// The probe `yaml` describes (one entry of `probes:`).
fn probe(yaml: &str) -> fenghuo::probe::ProbeConfig {
    let config = Config::parse(&format!(
        "probes:\n  - {}\n",
        yaml.trim().replace('\n', "\n    ")
    ))
    .unwrap_or_else(|e| panic!("{yaml}: {e}"));
    config.probes.into_iter().next().unwrap()
}

async fn run_once(config: &fenghuo::probe::ProbeConfig) -> Outcome {
    let run = async {
        match &config.check {
            Check::Http(c) => {
                let client = http::client(&c.request, config.timeout).unwrap();
                http::run(&client, c).await
            }
            Check::Scrape(c) => {
                let client = http::client(&c.request, config.timeout).unwrap();
                scrape::run(&client, c).await
            }
            Check::Tcp(c) => tcp::run(c).await,
        }
    };
    // As the runner bounds a run (tcp has no client timeout of its own).
    match tokio::time::timeout(config.timeout, run).await {
        Ok(o) => o,
        Err(_) => Outcome::failed(config.timeout, None, "timed out".into()),
    }
}

/// (probe, ok, status, error containing)
#[tokio::test]
async fn http_probes_tell_up_from_down_slow_and_wrong() {
    let (addr, _server) = serve(services()).await;
    let (closed, _held) = closed_port();
    let table: Vec<(String, bool, Option<u16>, &str)> = vec![
        (
            format!(
                "{{name: up, type: http, every: 30s, url: 'http://{addr}/healthz', body_regex: '\"status\":\\s*\"ok\"'}}"
            ),
            true,
            Some(200),
            "",
        ),
        (
            format!(
                "{{name: wrong-body, type: http, every: 30s, url: 'http://{addr}/degraded', body_regex: '\"status\":\\s*\"ok\"'}}"
            ),
            false,
            Some(200),
            "body does not match",
        ),
        (
            format!(
                "{{name: unavailable, type: http, every: 30s, url: 'http://{addr}/unavailable'}}"
            ),
            false,
            Some(503),
            "status 503 Service Unavailable, expected 2xx",
        ),
        (
            format!(
                "{{name: expected-201, type: http, every: 30s, url: 'http://{addr}/created', expect_status: [201]}}"
            ),
            true,
            Some(201),
            "",
        ),
        (
            format!(
                "{{name: not-expected, type: http, every: 30s, url: 'http://{addr}/healthz', expect_status: [204]}}"
            ),
            false,
            Some(200),
            "expected [204]",
        ),
        (
            format!(
                "{{name: with-token, type: http, every: 30s, url: 'http://{addr}/private', headers: {{Authorization: 'Bearer s3cr3t-token'}}}}"
            ),
            true,
            Some(200),
            "",
        ),
        (
            format!("{{name: down, type: http, every: 30s, url: 'http://{closed}/healthz'}}"),
            false,
            None,
            "connect failed",
        ),
        (
            format!(
                "{{name: slow, type: http, every: 30s, timeout: 300ms, url: 'http://{addr}/slow'}}"
            ),
            false,
            None,
            "timed out",
        ),
    ];
    for (yaml, ok, status, error) in table {
        let config = probe(&yaml);
        let outcome = run_once(&config).await;
        assert_eq!(outcome.ok, ok, "{}: {outcome:?}", config.name);
        assert_eq!(outcome.status, status, "{}: {outcome:?}", config.name);
        let got = outcome.error.clone().unwrap_or_default();
        assert!(
            got.contains(error),
            "{}: {got:?} lacks {error:?}",
            config.name
        );
        assert!(!got.contains("s3cr3t"), "{}: {got}", config.name);
        if config.name == "slow" {
            assert!(
                outcome.latency < StdDuration::from_secs(5),
                "bounded by the timeout"
            );
        }
    }
}

/// An HTTPS server with a self-signed certificate (tests/fixtures/tls).
async fn tls_server() -> SocketAddr {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        vec![CertificateDer::from_pem_slice(include_bytes!("fixtures/tls/cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/tls/key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake is the point of one of the rows.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_self_signed_certificate_fails_unless_verification_is_off() {
    let addr = tls_server().await;
    let verified = probe(&format!(
        "{{name: tls, type: http, every: 30s, url: 'https://127.0.0.1:{}/'}}",
        addr.port()
    ));
    let outcome = run_once(&verified).await;
    assert!(!outcome.ok, "{outcome:?}");
    let error = outcome.error.unwrap();
    assert!(
        error.contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );

    let unverified = probe(&format!(
        "{{name: tls, type: http, every: 30s, tls_verify: false, url: 'https://127.0.0.1:{}/'}}",
        addr.port()
    ));
    let outcome = run_once(&unverified).await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.status, Some(200));
}

/// A line protocol server: answers `PING` with `+PONG`, anything else by
/// closing.
async fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if buf[..n].starts_with(b"PING") {
                    let _ = stream.write_all(b"+PONG\r\n").await;
                }
            });
        }
    });
    addr
}

/// (probe, ok, error containing)
#[tokio::test]
async fn tcp_probes_connect_and_optionally_talk() {
    let pong = pong_server().await;
    let (closed, _held) = closed_port();
    let table: Vec<(String, bool, &str)> = vec![
        (
            format!("{{name: connect, type: tcp, every: 30s, address: '{pong}'}}"),
            true,
            "",
        ),
        (
            format!(
                "{{name: ping, type: tcp, every: 30s, address: '{pong}', send: \"PING\\r\\n\", expect: '^\\+PONG'}}"
            ),
            true,
            "",
        ),
        (
            format!(
                "{{name: wrong-greeting, type: tcp, every: 30s, address: '{pong}', send: \"HELLO\\r\\n\", expect: '^\\+PONG'}}"
            ),
            false,
            "connection closed before an answer",
        ),
        (
            format!("{{name: down, type: tcp, every: 30s, address: '{closed}'}}"),
            false,
            "connect failed",
        ),
    ];
    for (yaml, ok, error) in table {
        let config = probe(&yaml);
        let outcome = run_once(&config).await;
        assert_eq!(outcome.ok, ok, "{}: {outcome:?}", config.name);
        let got = outcome.error.unwrap_or_default();
        assert!(
            got.contains(error),
            "{}: {got:?} lacks {error:?}",
            config.name
        );
    }
}

/// Real Prometheus 2.42 output (its own /metrics and /federate) and
/// node_exporter-shaped text with escaped label values, served over HTTP.
#[tokio::test]
async fn scrape_takes_series_from_real_prometheus_text() {
    let router = Router::new()
        .route(
            "/metrics",
            get(|| async { include_str!("fixtures/prometheus-2.42-metrics.txt") }),
        )
        .route(
            "/federate",
            get(|| async { include_str!("fixtures/prometheus-2.42-federate.txt") }),
        )
        .route(
            "/node",
            get(|| async { include_str!("fixtures/node-exporter-escaped-labels.prom") }),
        )
        .route("/html", get(|| async { "<html><body>login</body></html>" }));
    let (addr, _server) = serve(router).await;

    let prometheus = probe(&format!(
        r#"{{name: prom, type: scrape, every: 15s, url: 'http://{addr}/metrics', values: [
            process_resident_memory_bytes,
            {{name: metrics_fast, metric: prometheus_http_request_duration_seconds_bucket, labels: {{handler: /federate, le: '0.1'}}}},
            {{name: metrics_all, metric: prometheus_http_request_duration_seconds_bucket, labels: {{handler: /federate, le: +Inf}}}},
            {{name: metrics_count, metric: prometheus_http_request_duration_seconds_count, labels: {{handler: /federate}}}},
            {{name: gc_median, metric: go_gc_duration_seconds, labels: {{quantile: '0.5'}}}},
            no_such_series]}}"#
    ));
    let outcome = run_once(&prometheus).await;
    assert!(outcome.ok, "{outcome:?}");
    let v = &outcome.values;
    assert_eq!(v["process_resident_memory_bytes"], 4.3810816e+07);
    assert_eq!(v["gc_median"], 0.005794221);
    assert!(
        v["metrics_fast"] >= 1.0 && v["metrics_fast"] <= v["metrics_all"],
        "{v:?}"
    );
    assert_eq!(v["metrics_all"], v["metrics_count"]);
    assert_eq!(
        outcome.error.as_deref(),
        Some("series not found: no_such_series")
    );

    let federate = probe(&format!(
        "{{name: fed, type: scrape, every: 15s, url: 'http://{addr}/federate', values: [up]}}"
    ));
    let outcome = run_once(&federate).await;
    assert_eq!(outcome.values["up"], 1.0, "{outcome:?}");

    // (selector, value or None when not found)
    let node = probe(&format!(
        r#"{{name: node, type: scrape, every: 15s, url: 'http://{addr}/node', values: [
            {{name: root_avail, metric: node_filesystem_avail_bytes, labels: {{mountpoint: /}}}},
            {{name: all_avail, metric: node_filesystem_avail_bytes}},
            {{name: swap_active, metric: node_systemd_unit_state, labels: {{name: 'dev-disk-by\x2duuid-0a1b.swap', state: active}}}},
            {{name: nightly, metric: node_textfile_backup_last_success_timestamp_seconds, labels: {{job: 'nightly "full" backup', path: 'C:\backups'}}}},
            {{name: monthly, metric: node_textfile_backup_last_success_timestamp_seconds, labels: {{note: "line one\nline two"}}}},
            {{name: weekly, metric: node_textfile_backup_last_success_timestamp_seconds, labels: {{note: 'a=b, c=d'}}}},
            node_load1]}}"#
    ));
    let outcome = run_once(&node).await;
    let table: &[(&str, Option<f64>)] = &[
        ("root_avail", Some(1.2345678848e+10)),
        ("all_avail", Some(1.2345678848e+10 + 5.36870912e+09)),
        ("swap_active", Some(1.0)),
        ("nightly", Some(1.7956e+09)),
        ("monthly", Some(1.7901e+09)),
        // prometheus-parse splits on ',' inside quotes: not found, never
        // another series' value.
        ("weekly", None),
        ("node_load1", Some(0.42)),
    ];
    for (name, want) in table {
        assert_eq!(
            outcome.values.get(*name).copied(),
            *want,
            "{name}: {outcome:?}"
        );
    }

    let html = probe(&format!(
        "{{name: html, type: scrape, every: 15s, url: 'http://{addr}/html', values: [up]}}"
    ));
    let outcome = run_once(&html).await;
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().contains("no samples"));
}

fn t0() -> DateTime<Utc> {
    "2026-11-25T19:00:00Z".parse().unwrap()
}

/// A pipeline with the shipped rules and `probes`, on a manual clock.
fn open(dir: &std::path::Path, probes: &str, clock: &ManualClock) -> Arc<Pipeline> {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/services.yaml");
    std::fs::write(
        dir.join("fenghuo.yaml"),
        format!("rule_files: ['{rules}']\nprobes:\n{probes}"),
    )
    .unwrap();
    let mut config = Config::load(&dir.join("fenghuo.yaml")).unwrap();
    config.data_dir = dir.join("data");
    Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap())
}

async fn events_after(pipeline: &Pipeline, after: u64) -> Vec<Event> {
    let log = pipeline.log.clone();
    tokio::task::spawn_blocking(move || {
        log.read(&EventQuery {
            after,
            ..EventQuery::default()
        })
        .unwrap()
    })
    .await
    .unwrap()
}

/// One line per event since `after`: probe results and rule alerts.
async fn news(pipeline: &Pipeline, after: &mut u64) -> Vec<String> {
    let events = events_after(pipeline, *after).await;
    if let Some(last) = events.last() {
        *after = last.seq;
    }
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProbeResult(r) => Some(format!(
                "{} probe.result {} ok={} ({})",
                e.occurred_at.format("%H:%M:%S"),
                r.probe,
                r.ok,
                r.summary.as_ref().map_or("", |s| s.reason.as_str())
            )),
            EventKind::AlertReceived(a) => Some(format!(
                "{} alert {} {}",
                e.occurred_at.format("%H:%M:%S"),
                &a.labels["alertname"],
                a.labels.get("probe").or(a.labels.get("name")).unwrap()
            )),
            EventKind::HeartbeatReceived(h) => Some(format!(
                "{} heartbeat {}",
                e.occurred_at.format("%H:%M:%S"),
                h.name
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_unreachable_service_and_a_stopped_heartbeat_fire_the_shipped_rules() {
    let (addr, stop, server) = serve_stoppable(services()).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let pipeline = open(
        dir.path(),
        &format!(
            "  - {{name: api, type: http, every: 15s, url: 'http://{addr}/private', headers: {{Authorization: 'Bearer s3cr3t-token'}}, labels: {{service: api}}}}\n"
        ),
        &clock,
    );
    let runner = pipeline.probe_runner().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let router = app(AppState::new(pipeline.clone(), rx));
    let mut seen = pipeline.log.last_seq();

    // Runs every 15 s at the probe's slot; runs the shipped rules' timers.
    let until = |secs: i64| {
        let (runner, pipeline, clock) = (runner.clone(), pipeline.clone(), clock.clone());
        async move {
            loop {
                let next = runner.next_due().unwrap();
                if next > t0() + Duration::seconds(secs) {
                    break;
                }
                clock.set(next);
                runner.run_due().await;
                pipeline.dispatcher.step().await.unwrap();
            }
            clock.set(t0() + Duration::seconds(secs));
            pipeline.dispatcher.step().await.unwrap();
        }
    };
    let heartbeat = |router: Router| async move {
        // Cron jobs use curl: a GET records too.
        let resp = router
            .oneshot(
                Request::get("/api/v1/heartbeats/nightly-backup")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).starts_with("heartbeat nightly-backup recorded"),
            "{body:?}"
        );
    };

    // 19:00–19:05: the service answers, the backup job beats at 19:00.
    heartbeat(router.clone()).await;
    until(5 * 60).await;
    let first = news(&pipeline, &mut seen).await;
    assert_eq!(first[0], "19:00:00 heartbeat nightly-backup");
    assert!(
        first[1].ends_with("probe.result api ok=true (first)"),
        "{first:?}"
    );
    // 20 runs, one stored: nothing changed.
    assert_eq!(first.len(), 2, "{first:?}");

    // 19:05: the service goes away. Its first failed run is stored; the
    // rule fires a minute later (`for: 1m`); failing runs after that are
    // not stored again.
    let _ = stop.send(());
    server.await.unwrap();
    let _held = hold_port(addr);
    until(8 * 60).await;
    let down = news(&pipeline, &mut seen).await;
    assert_eq!(down.len(), 2, "{down:?}");
    assert!(
        down[0].ends_with("probe.result api ok=false (state)"),
        "{down:?}"
    );
    let failed_at: DateTime<Utc> = format!("2026-11-25T{}Z", &down[0][..8]).parse().unwrap();
    assert_eq!(
        down[1],
        format!(
            "{} alert ServiceInstanceDown api",
            (failed_at + Duration::minutes(1)).format("%H:%M:%S")
        )
    );

    // 19:15 passes 15 minutes after the last heartbeat: the dead man's
    // switch fires.
    until(15 * 60).await;
    let quiet = news(&pipeline, &mut seen).await;
    assert_eq!(
        quiet,
        vec!["19:15:00 alert HeartbeatStopped nightly-backup"]
    );

    // A bad name is refused with the field named; nothing is stored.
    let before = pipeline.log.last_seq();
    let resp = router
        .clone()
        .oneshot(
            Request::get("/api/v1/heartbeats/bad%20name")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("name"), "{body:?}");
    assert_eq!(pipeline.log.last_seq(), before);

    // The token never reached the log, and /metrics shows the probe.
    let all = events_after(&pipeline, 0).await;
    let json = serde_json::to_string(&all).unwrap();
    assert!(!json.contains("s3cr3t"));
    let resp = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let metrics = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("fenghuo_probe_up{probe=\"api\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("fenghuo_probe_runs_total{probe=\"api\",result=\"fail\"}"));
    assert!(metrics.contains("fenghuo_probe_duration_seconds{probe=\"api\"}"));
    assert!(
        metrics
            .contains("fenghuo_ingest_requests_total{endpoint=\"heartbeat\",outcome=\"accepted\"}")
    );
    assert!(!metrics.contains("s3cr3t"));
}

/// What broke would be a restart that stores every probe again as `first`,
/// or forgets that the last stored result was a failure.
#[tokio::test]
async fn a_restart_compares_runs_with_what_the_log_holds() {
    let (addr, _server) = serve(services()).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    let probes = format!(
        "  - {{name: up, type: http, every: 30s, url: 'http://{addr}/healthz'}}\n  - {{name: broken, type: http, every: 30s, url: 'http://{addr}/unavailable'}}\n"
    );
    let run_a_minute = |pipeline: Arc<Pipeline>, clock: ManualClock| async move {
        let runner = pipeline.probe_runner().unwrap();
        let end = clock.now() + Duration::minutes(1);
        while let Some(next) = runner.next_due().filter(|n| *n <= end) {
            clock.set(next);
            runner.run_due().await;
        }
    };
    let pipeline = open(dir.path(), &probes, &clock);
    run_a_minute(pipeline.clone(), clock.clone()).await;
    let mut seen = 0;
    let before = news(&pipeline, &mut seen).await;
    assert_eq!(before.len(), 2, "{before:?}");
    pipeline.close();
    drop(pipeline);

    // Restarted: the same answers store nothing.
    let pipeline = open(dir.path(), &probes, &clock);
    assert_eq!(pipeline.probe_states.len(), 2);
    run_a_minute(pipeline.clone(), clock.clone()).await;
    assert_eq!(news(&pipeline, &mut seen).await, Vec::<String>::new());
    pipeline.close();
}

/// Six probes due in the same second run at most `probe_concurrency` (2)
/// at a time, and all of them run.
#[tokio::test]
async fn runs_due_together_are_bounded_in_concurrency() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        most: AtomicUsize,
        total: AtomicUsize,
    }
    let load = Arc::new(Load::default());
    let seen = load.clone();
    let router = Router::new().route(
        "/slow-ish",
        get(move || {
            let load = seen.clone();
            async move {
                let n = load.now.fetch_add(1, Ordering::SeqCst) + 1;
                load.most.fetch_max(n, Ordering::SeqCst);
                // A backend that takes a moment: the server's real I/O.
                tokio::time::sleep(StdDuration::from_millis(50)).await;
                load.now.fetch_sub(1, Ordering::SeqCst);
                load.total.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let (addr, _server) = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(t0());
    // Cron probes run on the minute, all together.
    let probes: String = (0..6)
        .map(|i| {
            format!(
                "  - {{name: p{i}, type: http, cron: '* * * * *', url: 'http://{addr}/slow-ish'}}\n"
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("fenghuo.yaml"),
        format!("probe_concurrency: 2\nprobes:\n{probes}"),
    )
    .unwrap();
    let mut config = Config::load(&dir.path().join("fenghuo.yaml")).unwrap();
    config.data_dir = dir.path().join("data");
    let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
    let runner = pipeline.probe_runner().unwrap();
    assert_eq!(runner.next_due(), Some(t0() + Duration::minutes(1)));
    clock.set(t0() + Duration::minutes(1));
    assert_eq!(runner.run_due().await, 6);
    assert_eq!(load.total.load(Ordering::SeqCst), 6);
    assert_eq!(load.most.load(Ordering::SeqCst), 2);
    let mut seen = 0;
    assert_eq!(news(&pipeline, &mut seen).await.len(), 6);
}

/// A running Prometheus (Debian's 2.42) scraped live: its `/metrics` is the
/// text format the scrape probe must read, histograms included.
#[tokio::test]
async fn scrape_a_running_prometheus() {
    const PROMETHEUS: &str = "/usr/bin/prometheus";
    if !std::path::Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{PROMETHEUS} is missing; .ci/run installs it"
        );
        eprintln!("skipping: {PROMETHEUS} is not installed");
        return;
    }
    struct Proc(std::process::Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port().0.port();
    std::fs::write(dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
    let _prom = Proc(
        std::process::Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let config = probe(&format!(
        r#"{{name: prom, type: scrape, every: 15s, timeout: 2s, url: 'http://127.0.0.1:{port}/metrics', values: [
            prometheus_build_info, process_resident_memory_bytes,
            {{name: ready_le_inf, metric: prometheus_http_request_duration_seconds_bucket, labels: {{handler: /-/ready, le: +Inf}}}}]}}"#
    ));
    // Poll until it serves, with a deadline (the edge of the test).
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    let ready = reqwest::Client::new();
    loop {
        let answer = ready
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus not ready in 30s"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let outcome = run_once(&config).await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.values["prometheus_build_info"], 1.0, "{outcome:?}");
    assert!(outcome.values["process_resident_memory_bytes"] > 1e6);
    assert!(outcome.values["ready_le_inf"] >= 1.0, "{outcome:?}");
}

/// The README's `probes:` example is a config that loads.
#[test]
fn the_readme_probes_example_loads() {
    let readme = include_str!("../README.md");
    let section = &readme[readme.find("## Probes").expect("a Probes section")..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let config = Config::parse(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert_eq!(config.probes.len(), 3);
    assert_eq!(config.probe_concurrency, 32);
}

/// `fenghuo serve` starts the probes of its config: a probe every second
/// against a local service is stored, and shows in `/metrics`. Real time,
/// at the edge: polled with a deadline.
#[tokio::test]
async fn fenghuo_serve_runs_the_configured_probes() {
    let (addr, _server) = serve(services()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(
        &config,
        format!(
            "probes:\n  - {{name: web, type: http, every: 5s, timeout: 5s, url: 'http://{addr}/healthz', labels: {{service: web}}}}\n"
        ),
    )
    .unwrap();
    let (_child, base) = support::binary::serve(&config, &dir.path().join("data")).await;
    let client = reqwest::Client::new();
    // Generous: under the whole suite on 2 cores a start takes seconds,
    // and a 1 s probe timeout once failed the first run.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    let event = loop {
        let page: serde_json::Value = client
            .get(format!("{base}/api/v1/events?kind=probe.result"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(e) = page["events"].as_array().and_then(|a| a.first()) {
            break e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no probe.result in 60s"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    assert_eq!(event["source"], "probe");
    assert_eq!(event["key"], "web");
    assert_eq!(event["payload"]["ok"], true);
    assert_eq!(event["payload"]["status"], 200);
    assert_eq!(event["payload"]["labels"]["service"], "web");
    assert_eq!(event["payload"]["summary"]["reason"], "first");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fenghuo_probe_up{probe=\"web\"} 1"),
        "{metrics}"
    );
}
