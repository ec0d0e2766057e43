//! The on-call engineer's commands against the real binary: `fenghuo
//! incident list|ack` through a running server, and `fenghuo stats` from the
//! server and from its data directory.

mod support;

use serde_json::{Value, json};

const CONFIG: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  escalation: platform
receivers:
  - name: team
  - name: primary
escalation_policies:
  - name: platform
    steps:
      - notify: {via: [primary]}
      - wait: 5m
      - notify: {via: [primary]}
"#;

fn fenghuo(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(args)
        .env_remove("FENGHUO_CONFIG")
        .env_remove("FENGHUO_SERVER")
        .output()
        .unwrap()
}

#[tokio::test]
async fn acknowledge_from_the_command_line_and_read_the_stats() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");
    let (mut child, base) = support::binary::serve(&config, &data).await;

    // group_wait 0s: the incident opens in the commit the 200 answers for
    // when the dispatcher's last pass was quick, or in the dispatch loop's
    // pass right after it when the machine is loaded (`Dispatcher::wants`'s
    // budget): list until it is there, within a bound (a real server, real
    // time).
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([{"labels": {"alertname": "Down", "service": "api"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut incidents = Value::Null;
    for _ in 0..100 {
        let list = tokio::task::spawn_blocking({
            let base = base.clone();
            move || fenghuo(&["incident", "list", "--server", &base])
        })
        .await
        .unwrap();
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        incidents = serde_json::from_slice(&list.stdout).unwrap();
        if incidents.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let id = incidents[0]["id"].as_str().unwrap().to_string();
    assert_eq!(incidents[0]["status"], "open");

    let (ack, again) = tokio::task::spawn_blocking({
        let base = base.clone();
        let id = id.clone();
        move || {
            let args = ["incident", "ack", &id, "--by", "alice", "--server", &base];
            (fenghuo(&args), fenghuo(&args))
        }
    })
    .await
    .unwrap();
    assert!(
        ack.status.success(),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
    let shown: Value = serde_json::from_slice(&ack.stdout).unwrap();
    assert_eq!(shown["acknowledgedBy"], "alice");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already acknowledged by alice"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Stats of a period holding the incident, from the server and from the
    // data directory beside it (read-only); both give the same figures.
    let (from_server, from_dir) = tokio::task::spawn_blocking({
        let base = base.clone();
        let data = data.display().to_string();
        move || {
            let period = [
                "--from",
                "2000-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
            ];
            let mut a = vec!["stats", "--json", "--server", base.as_str()];
            a.extend(period);
            let mut b = vec!["stats", "--json", "--data-dir", data.as_str()];
            b.extend(period);
            (fenghuo(&a), fenghuo(&b))
        }
    })
    .await
    .unwrap();
    for out in [&from_server, &from_dir] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(stats["overall"]["incidents"], 1, "{stats}");
        assert_eq!(stats["overall"]["acknowledged"], 1, "{stats}");
        assert_eq!(stats["by_service"]["-"]["incidents"], 1, "{stats}");
        assert!(stats["overall"]["mtta_seconds"].as_f64().unwrap() >= 0.0);
    }
    // The table a person reads.
    let table = tokio::task::spawn_blocking(move || {
        fenghuo(&[
            "stats",
            "--server",
            &base,
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("MTTA") && text.contains("route "), "{text}");
    child.kill().await.unwrap();
}
