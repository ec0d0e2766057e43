//! Fenghuo against the real Prometheus tools: Debian's `prometheus` (2.42)
//! sending alerts straight to Fenghuo's API v2, and `prometheus-alertmanager`
//! (0.25) sending its webhook to `/ingest/alertmanager`. Everything on
//! loopback, each server on its own temp dir.
//!
//! `.ci/run` installs both packages. On a machine without them these tests
//! say so and pass, unless `CI` is set, where a missing peer is a failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::time::{Instant, interval, timeout};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const AMTOOL: &str = "/usr/bin/amtool";

fn have(bin: &str) -> bool {
    if Path::new(bin).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{bin} is missing; .ci/run installs it (apt-get install prometheus prometheus-alertmanager)"
    );
    eprintln!(
        "skipping: {bin} is not installed (apt-get install prometheus prometheus-alertmanager)"
    );
    false
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Alertmanager on loopback with `config`, gossip off.
fn start_alertmanager(config: &Path, storage: &Path, port: u16) -> Proc {
    Proc(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `fenghuo serve` on a free port; returns it and its base URL.
fn start_fenghuo(dir: &Path) -> (Proc, String) {
    start_fenghuo_with(dir, &[])
}

fn start_fenghuo_with(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("FENGHUO_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fenghuo");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), url)
}

/// Polls `url` until it answers 2xx, at most `limit`.
async fn wait_ready(client: &reqwest::Client, url: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut tick = interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready within {limit:?}"
        );
    }
}

/// Follows Fenghuo's SSE tail until `want` accepts an event, at most `limit`.
async fn wait_for_event(
    client: &reqwest::Client,
    fenghuo: &str,
    limit: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let resp = client
        .get(format!("{fenghuo}/api/v1/events/stream?after=0"))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let found = timeout(limit, async {
        while let Some(chunk) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buf.find("\n\n") {
                let msg: String = buf.drain(..end + 2).collect();
                for line in msg.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let event: Value = serde_json::from_str(data.trim_start()).unwrap();
                        if want(&event) {
                            return Some(event);
                        }
                    }
                }
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no matching event within {limit:?}"))
}

async fn events(client: &reqwest::Client, fenghuo: &str, query: &str) -> Vec<Value> {
    let page: Value = client
        .get(format!("{fenghuo}/api/v1/events?limit=10000&{query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn alertmanager_webhook_delivers_firing_and_resolved_alerts() {
    if !have(ALERTMANAGER) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_fenghuo, fenghuo) = start_fenghuo(&dir.path().join("fenghuo"));
    let am_port = free_port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: fenghuo\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: fenghuo\n    webhook_configs:\n      - url: {fenghuo}/ingest/alertmanager\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let _am = start_alertmanager(&config, &dir.path().join("am"), am_port);
    let am = format!("http://127.0.0.1:{am_port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("{am}/-/ready"), Duration::from_secs(20)).await;

    // t=0: an alert enters Alertmanager; its webhook brings it to Fenghuo.
    let alert = serde_json::json!([{
        "labels": {"alertname": "RealPeer", "instance": "db-1:9100", "severity": "critical"},
        "annotations": {"summary": "db-1 & friends are down"},
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=up&g0.tab=1"
    }]);
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let fired = wait_for_event(&client, &fenghuo, Duration::from_secs(20), |e| {
        e["kind"] == "alert.received" && e["payload"]["labels"]["alertname"] == "RealPeer"
    })
    .await;
    assert_eq!(fired["source"], "alertmanager");
    assert_eq!(
        fired["payload"]["annotations"]["summary"],
        "db-1 & friends are down"
    );
    assert_eq!(fired["payload"]["extra"]["webhook"]["receiver"], "fenghuo");
    assert_eq!(fired["payload"]["extra"]["webhook"]["version"], "4");
    let fp = fired["key"].as_str().unwrap().to_string();

    // Alertmanager's own view has the same fingerprint.
    let am_alerts: Value = client
        .get(format!("{am}/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(am_alerts[0]["fingerprint"], fp.as_str(), "{am_alerts:#}");

    // Then it resolves in Alertmanager; the resolved webhook becomes a resolve.
    let now = chrono::Utc::now().to_rfc3339();
    let mut resolved = alert.clone();
    resolved[0]["endsAt"] = Value::from(now);
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&resolved)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let ended = wait_for_event(&client, &fenghuo, Duration::from_secs(20), |e| {
        e["kind"] == "alert.resolved" && e["key"] == fp.as_str()
    })
    .await;
    assert_eq!(ended["payload"]["reason"], "resolved by source");
}

#[tokio::test]
async fn prometheus_posts_alerts_and_its_resends_are_not_stored() {
    if !have(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_fenghuo, fenghuo) = start_fenghuo(&dir.path().join("fenghuo"));
    let target = fenghuo.trim_start_matches("http://");
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: e2e\n    interval: 1s\n    rules:\n      - alert: FenghuoE2E\n        expr: vector(1)\n        labels:\n          severity: page\n        annotations:\n          summary: always firing\n",
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: [\"{target}\"]\n",
            dir.path().join("rules.yml").display()
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let client = reqwest::Client::new();

    let fired = wait_for_event(&client, &fenghuo, Duration::from_secs(30), |e| {
        e["kind"] == "alert.received" && e["payload"]["labels"]["alertname"] == "FenghuoE2E"
    })
    .await;
    assert_eq!(fired["source"], "prometheus");
    let fp = fired["key"].as_str().unwrap().to_string();

    // Let Prometheus re-send the same alert several more times (it counts
    // what it sent), then check Fenghuo stored it once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tick = interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let metrics = client
            .get(format!("{prom}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sent: f64 = metrics
            .lines()
            .find(|l| l.starts_with("prometheus_notifications_sent_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if sent >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus sent only {sent} notifications"
        );
    }
    let received = events(&client, &fenghuo, &format!("kind=alert.received&key={fp}")).await;
    assert_eq!(received.len(), 1, "re-sends were stored: {received:#?}");
    let errors = client
        .get(format!("{prom}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed = errors
        .lines()
        .find(|l| l.starts_with("prometheus_notifications_errors_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert_eq!(failed, 0.0, "Prometheus saw errors posting to Fenghuo");
}

/// `amtool config show` reads Fenghuo's `/api/v2/status`: it sees the routing
/// tree copied from an alertmanager.yml, and not the token in a webhook URL.
#[tokio::test]
async fn amtool_config_show_sees_the_routing_tree_without_secrets() {
    if !have(AMTOOL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(
        &config,
        "route:\n  receiver: oncall\n  group_by: [alertname]\n  routes:\n    - matchers: ['team=\"db\"']\n      receiver: db\n\
         receivers:\n  - name: oncall\n    webhook_configs:\n      - url: http://hooks.invalid/T0KEN-s3cr3t\n  - name: db\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (_fenghuo, fenghuo) =
        start_fenghuo_with(&dir.path().join("data"), &["--config", config.as_str()]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(AMTOOL)
            .arg(format!("--alertmanager.url={fenghuo}"))
            .args(["config", "show"])
            .output()
            .expect("run amtool")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "amtool failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("receiver: oncall"), "{stdout}");
    assert!(
        stdout.contains("team=\\\"db\\\"") || stdout.contains("team=\"db\""),
        "{stdout}"
    );
    assert!(!stdout.contains("T0KEN"), "a secret leaked: {stdout}");
    assert!(stdout.contains("<secret>"), "{stdout}");
}

/// `amtool alert query` against Fenghuo lists what Prometheus posted, with
/// Alertmanager's fingerprints, filters by matchers and shows receivers from
/// the routing tree copied from an alertmanager.yml.
#[tokio::test]
async fn amtool_alert_query_lists_and_filters_alerts() {
    if !have(AMTOOL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(
        &config,
        "route:\n  receiver: oncall\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n\
         receivers:\n  - name: oncall\n  - name: pager\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (_fenghuo, fenghuo) =
        start_fenghuo_with(&dir.path().join("data"), &["--config", config.as_str()]);
    let client = reqwest::Client::new();
    let alerts = serde_json::json!([
        {"labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
         "annotations": {"summary": "disk / is 97% full"}},
        {"labels": {"alertname": "HighLoad", "instance": "web-1:9100", "severity": "warning"},
         "annotations": {"summary": "load 12"}},
    ]);
    let r = client
        .post(format!("{fenghuo}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let amtool = |args: Vec<String>| {
        let out = Command::new(AMTOOL)
            .args(&args)
            .output()
            .expect("run amtool");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = format!("--alertmanager.url={fenghuo}");
    let all = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            amtool(vec![
                url,
                "alert".into(),
                "query".into(),
                "-o".into(),
                "json".into(),
            ])
        })
        .await
        .unwrap()
    };
    let listed: Value = serde_json::from_str(&all).unwrap();
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["DiskFull", "HighLoad"]);
    let disk = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap();
    assert_eq!(disk["receivers"][0]["name"], "pager");
    assert_eq!(disk["status"]["state"], "active");

    let critical = tokio::task::spawn_blocking(move || {
        amtool(vec![
            url,
            "alert".into(),
            "query".into(),
            "severity=critical".into(),
        ])
    })
    .await
    .unwrap();
    assert!(critical.contains("DiskFull"), "{critical}");
    assert!(!critical.contains("HighLoad"), "{critical}");
}

/// `amtool silence add / query / expire` against Fenghuo: the silence mutes
/// the alert it matches (amtool's alert query shows it suppressed) until it
/// is expired.
#[tokio::test]
async fn amtool_silences_add_query_expire() {
    if !have(AMTOOL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_fenghuo, fenghuo) = start_fenghuo(&dir.path().join("data"));
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{fenghuo}/api/v2/alerts"))
        .json(&serde_json::json!([
            {"labels": {"alertname": "DiskFull", "instance": "db-1:9100"}},
            {"labels": {"alertname": "HighLoad", "instance": "web-1:9100"}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let url = format!("--alertmanager.url={fenghuo}");
    let amtool = move |args: &[&str]| {
        let out = Command::new(AMTOOL)
            .arg(&url)
            .args(args)
            .output()
            .expect("run amtool");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (id, listed, alerts, expired, after) = tokio::task::spawn_blocking(move || {
        let id = amtool(&[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=disk swap",
            "--author=alice",
            "--duration=2h",
        ]);
        let listed = amtool(&["silence", "query", "-o", "json"]);
        let alerts = amtool(&["alert", "query", "-s", "-o", "json"]);
        amtool(&["silence", "expire", &id]);
        let expired = amtool(&["silence", "query", "--expired", "-o", "json"]);
        let after = amtool(&["alert", "query", "-o", "json"]);
        (id, listed, alerts, expired, after)
    })
    .await
    .unwrap();

    assert_eq!(id.len(), 36, "a UUID: {id}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["createdBy"], "alice");
    assert_eq!(listed[0]["status"]["state"], "active");

    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    let disk = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap();
    assert_eq!(disk["status"]["state"], "suppressed");
    assert_eq!(disk["status"]["silencedBy"][0], id.as_str());

    let expired: Value = serde_json::from_str(&expired).unwrap();
    assert_eq!(expired[0]["status"]["state"], "expired");
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(
        after.as_array().unwrap().len(),
        2,
        "both alerts active again: {after:#}"
    );
}

/// The same alertmanager.yml, the same alerts and the same silence, given to
/// a real Alertmanager 0.25 and to Fenghuo: both form the same groups for
/// the same receivers, and silence and inhibit the same alerts.
#[tokio::test]
async fn fenghuo_groups_silences_and_inhibits_like_alertmanager() {
    if !have(ALERTMANAGER) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: default\n  group_by: [alertname]\n  routes:\n\
         \x20   - matchers: ['severity=\"critical\"']\n      receiver: pager\n      group_by: [cluster, alertname]\n      continue: true\n\
         \x20   - matchers: ['team=~\"db|storage\"']\n      receiver: db\n      group_by: ['...']\n\
         receivers:\n  - name: default\n  - name: pager\n  - name: db\n\
         inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [cluster]\n",
    )
    .unwrap();
    let am_port = free_port();
    let _am = start_alertmanager(&config, &dir.path().join("am"), am_port);
    let am = format!("http://127.0.0.1:{am_port}");
    let config_arg = config.display().to_string();
    let (_fenghuo, fenghuo) =
        start_fenghuo_with(&dir.path().join("data"), &["--config", config_arg.as_str()]);
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("{am}/-/ready"), Duration::from_secs(20)).await;

    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let alert = |name: &str, cluster: &str, severity: &str, team: &str| {
        serde_json::json!({"labels": {"alertname": name, "cluster": cluster, "severity": severity, "team": team},
                           "endsAt": ends})
    };
    let alerts = serde_json::json!([
        alert("Down", "a", "critical", "web"),
        alert("Slow", "a", "warning", "web"),
        alert("Slow", "b", "warning", "web"),
        alert("DiskFull", "a", "critical", "db"),
        alert("Lag", "b", "warning", "storage"),
        alert("Noisy", "c", "info", "web"),
        alert("Noisy", "d", "info", "db"),
    ]);
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "Noisy", "isRegex": false, "isEqual": true}],
        "startsAt": chrono::Utc::now().to_rfc3339(),
        "endsAt": ends,
        "createdBy": "test",
        "comment": "same silence on both",
    });
    for base in [&am, &fenghuo] {
        let r = client
            .post(format!("{base}/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{base}: {}", r.status());
        let r = client
            .post(format!("{base}/api/v2/silences"))
            .json(&silence)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{base}: {}", r.status());
    }

    // Alertmanager marks alerts asynchronously: wait until none is
    // unprocessed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tick = interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let list: Value = client
            .get(format!("{am}/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = list.as_array().unwrap();
        if list.len() == 7 && list.iter().all(|a| a["status"]["state"] != "unprocessed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not process the alerts"
        );
    }

    // Per alert: state, whether silenced, who inhibits it, where it routes.
    let states = |list: &Value| -> Vec<String> {
        let mut out: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let mut receivers: Vec<&str> = a["receivers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap())
                    .collect();
                receivers.sort();
                // Alertmanager names the first inhibitor it finds; Fenghuo
                // names all of them (checked below), so compare whether.
                format!(
                    "{} {} {} silenced={} inhibited={} receivers={:?}",
                    a["fingerprint"].as_str().unwrap(),
                    a["labels"],
                    a["status"]["state"].as_str().unwrap(),
                    !a["status"]["silencedBy"].as_array().unwrap().is_empty(),
                    !a["status"]["inhibitedBy"].as_array().unwrap().is_empty(),
                    receivers
                )
            })
            .collect();
        out.sort();
        out
    };
    // Groups: receiver, group labels, member fingerprints.
    let groups = |list: &Value| -> Vec<String> {
        let mut out: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let mut fps: Vec<&str> = g["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["fingerprint"].as_str().unwrap())
                    .collect();
                fps.sort();
                format!(
                    "{} {} {:?}",
                    g["receiver"]["name"].as_str().unwrap(),
                    g["labels"],
                    fps
                )
            })
            .collect();
        out.sort();
        out
    };
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let am_alerts = get(format!("{am}/api/v2/alerts")).await;
    let fh_alerts = get(format!("{fenghuo}/api/v2/alerts")).await;
    assert_eq!(states(&fh_alerts), states(&am_alerts));
    // Every inhibitor Alertmanager names, Fenghuo names too.
    for a in am_alerts.as_array().unwrap() {
        let fp = &a["fingerprint"];
        let ours = fh_alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|x| &x["fingerprint"] == fp)
            .unwrap();
        for inhibitor in a["status"]["inhibitedBy"].as_array().unwrap() {
            assert!(
                ours["status"]["inhibitedBy"]
                    .as_array()
                    .unwrap()
                    .contains(inhibitor),
                "{fp}: Alertmanager's inhibitor {inhibitor} missing from {ours}"
            );
        }
    }
    let am_groups = get(format!("{am}/api/v2/alerts/groups")).await;
    let fh_groups = get(format!("{fenghuo}/api/v2/alerts/groups")).await;
    assert_eq!(groups(&fh_groups), groups(&am_groups));
    // The scenario is not trivial: something is silenced and something inhibited.
    let all = states(&am_alerts).join("\n");
    assert!(
        all.contains("silenced=true") && all.contains("inhibited=true"),
        "{all}"
    );
}
