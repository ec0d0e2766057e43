//! `fenghuo check` and `fenghuo template render`, run as the real binary.

use std::path::Path;
use std::process::Command;

fn fenghuo(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(args)
        .current_dir(dir)
        .env_remove("FENGHUO_CONFIG")
        .env("DINGTALK_TEST_SECRET", "SECtopsecret")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const CONFIG: &str = r#"
route:
  receiver: oncall
receivers:
  - name: oncall
    dingtalk_configs:
      - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=tok-do-not-print
        secret: { env: DINGTALK_TEST_SECRET }
    wecom_configs:
      - webhook_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=key-do-not-print
        template: own.md
"#;

#[test]
fn template_render_prints_every_integration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fenghuo.yaml"), CONFIG).unwrap();
    std::fs::write(
        dir.path().join("own.md"),
        "## {{ title }}\n{% for a in alerts %}- {{ a.labels.alertname }}: {{ a.summary }}\n{% endfor %}",
    )
    .unwrap();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/alertmanager-0.25-webhook-firing.json"
    );
    let (code, out) = fenghuo(
        &[
            "template",
            "render",
            "--config",
            "fenghuo.yaml",
            "--receiver",
            "oncall",
            "--sample",
            sample,
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("=== oncall dingtalk[0] ==="), "{out}");
    assert!(out.contains("=== oncall wecom[0] ==="), "{out}");
    // The fixture's alerts, through the default DingTalk template and the
    // receiver's own WeCom template.
    assert!(out.contains("BenchCapture"), "{out}");
    assert!(
        out.contains("- BenchCapture: BenchCapture on capture-host:9100"),
        "{out}"
    );
    for secret in ["tok-do-not-print", "key-do-not-print", "SECtopsecret"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
}

#[test]
fn template_render_names_an_unknown_receiver() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fenghuo.yaml"),
        CONFIG.replace("        template: own.md\n", ""),
    )
    .unwrap();
    let (code, out) = fenghuo(
        &[
            "template",
            "render",
            "--config",
            "fenghuo.yaml",
            "--receiver",
            "nobody",
        ],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(out.contains("no receiver named \"nobody\""), "{out}");
    assert!(out.contains("oncall"), "{out}");
}

/// One row per broken input: the file, what `check` must say about it.
#[test]
fn check_names_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        // A template with a syntax error: file and line.
        (
            "broken.md",
            "line one\n{% for a in alerts %}\n{{ a.labels.alertname \n",
            "broken.md:3",
        ),
        // A config with a typo in a channel field.
        (
            "typo.yaml",
            "route:\n  receiver: r\nreceivers:\n  - name: r\n    dingtalk_configs:\n      - webhook_url: https://x.invalid/\n        secrte: abc\n",
            "secrte",
        ),
        // A receiver type Fenghuo cannot send to is refused, not dropped.
        (
            "opsgenie.yaml",
            "route:\n  receiver: r\nreceivers:\n  - name: r\n    opsgenie_configs:\n      - api_key: abc\n",
            "opsgenie_configs",
        ),
        // A fallback that does not exist.
        (
            "fallback.yaml",
            "route:\n  receiver: r\nreceivers:\n  - name: r\n    fallback: nobody\n",
            "unknown receiver \"nobody\"",
        ),
        // A secret file that is missing refuses the config.
        (
            "secretfile.yaml",
            "route:\n  receiver: r\nreceivers:\n  - name: r\n    wecom_configs:\n      - webhook_url_file: /nonexistent/wecom\n",
            "/nonexistent/wecom",
        ),
    ];
    for (file, content, wanted) in cases {
        std::fs::write(dir.path().join(file), content).unwrap();
        let (code, out) = fenghuo(&["check", file], dir.path());
        assert_eq!(code, 1, "{file}: {out}");
        assert!(out.contains(file), "{file}: {out}");
        assert!(out.contains(wanted), "{file}: wanted {wanted:?} in\n{out}");
    }
}

#[test]
fn check_passes_the_shipped_templates_and_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fenghuo.yaml"),
        CONFIG.replace("        template: own.md\n", ""),
    )
    .unwrap();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    let (code, out) = fenghuo(&["check", "fenghuo.yaml", templates], dir.path());
    assert_eq!(code, 0, "{out}");
    for t in [
        "email.html",
        "email.txt",
        "slack.json",
        "dingtalk.md",
        "wecom.md",
        "feishu.json",
    ] {
        assert!(out.contains(&format!("{t}: ok")), "{t}: {out}");
    }
}
