//! The real `fenghuo` binary, killed and restarted.
//!
//! "Accepted means durable": a 2xx from an ingest endpoint means the event is
//! on disk. These tests start `fenghuo serve` on `127.0.0.1:0` with a temp data
//! dir, keep 16 concurrent clients posting new alerts, stop the process
//! (SIGKILL mid-request, or SIGTERM), start it again on the same dir and read
//! the log back over HTTP. The only waits are for the process to print its
//! address, for HTTP answers and for the process to exit, each bounded.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

/// Upper bound for every wait: start-up, a burst of requests, an exit.
const BOUND: Duration = Duration::from_secs(60);
const CLIENTS: usize = 16;
const BATCH: usize = 10;

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {BOUND:?}: {what}"))
}

/// A running `fenghuo serve`.
struct Fenghuo {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

fn command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fenghuo"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("FENGHUO_CONFIG")
        .env_remove("FENGHUO_LISTEN")
        .env_remove("FENGHUO_DATA_DIR")
        .env_remove("FENGHUO_LOG_FORMAT")
        .env("FENGHUO_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Copies a pipe into `into` until it closes, so the process never blocks
/// on a full pipe and its output is there for failure messages.
fn drain(pipe: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut buf = into.lock().await;
            buf.push_str(&line);
            buf.push('\n');
        }
    });
}

impl Fenghuo {
    /// Starts the server and waits for `listening on http://ADDR`.
    async fn start(data_dir: &Path) -> Fenghuo {
        let mut child = command(data_dir).spawn().expect("spawn fenghuo");
        let stderr = Arc::new(Mutex::new(String::new()));
        drain(child.stderr.take().unwrap(), stderr.clone());
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = within("fenghuo to print its address", async {
            while let Some(line) = stdout.next_line().await.expect("read stdout") {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    return Some(addr.trim().to_string());
                }
            }
            None
        })
        .await;
        let Some(addr) = addr else {
            let status = child.wait().await;
            panic!(
                "fenghuo exited ({status:?}) without listening:\n{}",
                stderr.lock().await
            );
        };
        drain(stdout.into_inner(), Arc::new(Mutex::new(String::new())));
        Fenghuo {
            child,
            base: format!("http://{addr}"),
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// SIGKILL: no chance to commit or clean up.
    async fn kill_9(&mut self) {
        within("SIGKILL", self.child.kill()).await.expect("kill -9");
    }

    /// SIGTERM, as systemd or Kubernetes stop it; returns the exit status.
    async fn terminate(&mut self) -> ExitStatus {
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        within("exit after SIGTERM", self.child.wait())
            .await
            .expect("wait")
    }

    /// Every event, paged through `GET /api/v1/events` with after/limit.
    async fn read_log(&self) -> Vec<Value> {
        let client = reqwest::Client::new();
        let mut after = 0u64;
        let mut all = Vec::new();
        loop {
            let resp = within(
                "GET /api/v1/events",
                client
                    .get(format!("{}/api/v1/events", self.base))
                    .query(&[("after", after.to_string()), ("limit", "1000".into())])
                    .send(),
            )
            .await
            .expect("GET /api/v1/events");
            assert!(resp.status().is_success(), "{}", resp.status());
            let page: Value = resp.json().await.unwrap();
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                assert_eq!(page["head"], after, "paged to the head");
                return all;
            }
            after = page["next_after"].as_u64().unwrap();
            all.extend(events);
        }
    }
}

/// What the clients saw.
#[derive(Default)]
struct Outcome {
    /// `id` label of every alert in a request answered 2xx.
    acked: Vec<String>,
    /// Statuses other than 2xx.
    refused: Vec<u16>,
}

/// 16 clients, each posting batches of 10 new alerts (a unique `id` label
/// each) to `/api/v2/alerts` until a request fails. `notify` fires once
/// `threshold` requests were acknowledged.
fn drive(
    base: &str,
    threshold: usize,
    notify: Arc<Notify>,
) -> (Arc<Mutex<Outcome>>, Vec<JoinHandle<()>>) {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let acked_requests = Arc::new(AtomicUsize::new(0));
    let handles = (0..CLIENTS)
        .map(|c| {
            let url = format!("{base}/api/v2/alerts");
            let outcome = outcome.clone();
            let acked_requests = acked_requests.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                for b in 0.. {
                    let ids: Vec<String> = (0..BATCH).map(|a| format!("c{c}-b{b}-a{a}")).collect();
                    let body: Vec<Value> = ids
                        .iter()
                        .map(|id| {
                            json!({
                                "labels": {"alertname": "CrashTest", "id": id, "job": "crash"},
                                "annotations": {"summary": format!("alert {id}")},
                                "generatorURL": "http://prometheus:9090/graph?g0.expr=crash",
                            })
                        })
                        .collect();
                    match client.post(&url).json(&body).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            outcome.lock().await.acked.extend(ids);
                            if acked_requests.fetch_add(1, Ordering::SeqCst) + 1 == threshold {
                                notify.notify_one();
                            }
                        }
                        Ok(resp) => {
                            outcome.lock().await.refused.push(resp.status().as_u16());
                            return;
                        }
                        // The server went away mid-request.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    (outcome, handles)
}

/// The `id` labels of stored `alert.received` events, checking on the way
/// that seqs strictly increase and no alert is stored twice.
fn stored_ids(events: &[Value]) -> HashSet<String> {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs strictly increase"
    );
    let mut ids: HashMap<String, u64> = HashMap::new();
    for e in events {
        assert_eq!(
            e["kind"], "alert.received",
            "only new alerts were sent: {e}"
        );
        let id = e["payload"]["labels"]["id"].as_str().unwrap().to_string();
        if let Some(first) = ids.insert(id.clone(), e["seq"].as_u64().unwrap()) {
            panic!("alert {id} stored twice (seq {first} and {})", e["seq"]);
        }
    }
    ids.into_keys().collect()
}

async fn assert_all_acked_are_stored(server: &Fenghuo, acked: &[String]) {
    let events = server.read_log().await;
    let stored = stored_ids(&events);
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged alerts are not in the log after the restart, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Timeline: 16 clients post new alerts → after 300 acknowledged requests
/// (3,000 alerts), `kill -9` with requests in flight → restart on the same
/// data dir → every alert that got a 2xx is in the log, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Fenghuo::start(dir.path()).await;

    let reached = Arc::new(Notify::new());
    let (outcome, clients) = drive(&server.base, 300, reached.clone());
    within("300 acknowledged requests", reached.notified()).await;
    server.kill_9().await;
    for client in clients {
        within("clients to stop", client).await.unwrap();
    }
    let outcome = std::mem::take(&mut *outcome.lock().await);
    assert!(
        outcome.refused.is_empty(),
        "requests refused before the kill: {:?}\n{}",
        outcome.refused,
        server.stderr.lock().await
    );
    assert!(outcome.acked.len() >= 300 * BATCH);

    let server = Fenghuo::start(dir.path()).await;
    assert_all_acked_are_stored(&server, &outcome.acked).await;
}

/// Timeline: 16 clients post new alerts → after 100 acknowledged requests,
/// SIGTERM with requests in flight → the process finishes what it accepted
/// and exits 0 (requests after the signal may get 503, nothing else) →
/// restart → every acknowledged alert is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_exits_0_and_keeps_every_acknowledged_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Fenghuo::start(dir.path()).await;

    let reached = Arc::new(Notify::new());
    let (outcome, clients) = drive(&server.base, 100, reached.clone());
    within("100 acknowledged requests", reached.notified()).await;
    let status = server.terminate().await;
    for client in clients {
        within("clients to stop", client).await.unwrap();
    }
    let stderr = server.stderr.lock().await.clone();
    assert_eq!(status.code(), Some(0), "exit status {status:?}\n{stderr}");
    let outcome = std::mem::take(&mut *outcome.lock().await);
    assert!(
        outcome.refused.iter().all(|s| *s == 503),
        "refusals during shutdown other than 503: {:?}",
        outcome.refused
    );
    assert!(outcome.acked.len() >= 100 * BATCH);

    let server = Fenghuo::start(dir.path()).await;
    assert_all_acked_are_stored(&server, &outcome.acked).await;
}

/// Two servers on one data dir would both write the log: the second refuses
/// to start, saying the directory is in use, and the first keeps serving.
/// Once the first has stopped, the directory can be served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Fenghuo::start(dir.path()).await;

    let second = command(dir.path()).spawn().expect("spawn second fenghuo");
    let out = within("the second server to exit", second.wait_with_output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second server: {:?}", out.status);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "the second server must not listen"
    );
    assert!(
        stderr.contains("in use"),
        "the error should say the directory is in use:\n{stderr}"
    );
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "the error should name the directory:\n{stderr}"
    );

    // The first is unaffected.
    let client = reqwest::Client::new();
    let resp = within(
        "POST to the first server",
        client
            .post(format!("{}/api/v2/alerts", first.base))
            .json(&json!([{"labels": {"alertname": "StillHere", "id": "x"}}]))
            .send(),
    )
    .await
    .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // Stopped, the directory is free again.
    let status = first.terminate().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut third = Fenghuo::start(dir.path()).await;
    assert_eq!(
        stored_ids(&third.read_log().await),
        HashSet::from(["x".to_string()])
    );
    assert_eq!(third.terminate().await.code(), Some(0));
}
