//! The email channel against a real SMTP server: Python's aiosmtpd, run by
//! `tests/support/smtp_server.py` on a free loopback port, which writes
//! every message it receives (envelope, decoded headers, MIME parts) to a
//! JSON file. TLS uses a throwaway CA and server certificate made with the
//! `openssl` command.
//!
//! `.ci/run` installs aiosmtpd (`python3 -m pip install aiosmtpd`). On a
//! machine without python3, aiosmtpd or openssl these tests say so and
//! pass, unless `CI` is set, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::smtp::{Smtp, tools_present};

use fenghuo::config::PromDuration;
use fenghuo::evaluate::route::ReceiverConfig;
use fenghuo::notify::config::NotifyConfig;
use fenghuo::notify::{DeliveryError, Message, Notifier, Payload, Receivers, Templates};
use serde_json::{Value, json};

const HOSTILE: &str = "<script>alert(1)</script>";
const PASSWORD: &str = "c0rrect-h0rse-battery";

/// A throwaway CA and a certificate for 127.0.0.1 / localhost signed by
/// it (webpki refuses a CA certificate as the server's own).
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let p = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("server.ext"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=Fenghuo test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "2",
        "-extfile",
        &s(&ext),
    ]);
    Certs { ca, cert, key }
}

/// The email integration of a receiver built from `config` the way
/// `fenghuo.yaml` is compiled.
fn email_with(
    config: Value,
    notify: NotifyConfig,
) -> (std::sync::Arc<dyn Notifier>, std::sync::Arc<Templates>) {
    let receiver: ReceiverConfig =
        serde_json::from_value(json!({"name": "mail", "email_configs": [config]})).unwrap();
    let receivers = Receivers::build(&[receiver], None, &notify, None).unwrap();
    let notifier = receivers.get("mail").unwrap().integrations[0]
        .notifier
        .clone();
    (notifier, receivers.templates.clone())
}

fn message() -> Message {
    let mut msg = Templates::sample_message();
    msg.alerts[0].labels.insert("pod".into(), HOSTILE.into());
    msg.alerts[0]
        .annotations
        .insert("description".into(), "磁盘使用率过高，请检查 /data".into());
    msg
}

async fn send(config: Value) -> Result<u16, DeliveryError> {
    send_with(config, NotifyConfig::default()).await
}

async fn send_with(config: Value, notify: NotifyConfig) -> Result<u16, DeliveryError> {
    let (notifier, templates) = email_with(config, notify);
    // Fixed: the Date header and signatures come from the clock given.
    let now = "2026-11-25T19:00:00Z".parse().unwrap();
    let rendered = notifier.render(&message(), &templates, now);
    assert_eq!(rendered.fallback, None);
    assert!(matches!(rendered.payload, Payload::Email(_)));
    notifier.send(&rendered.payload).await.map(|d| d.status)
}

fn header(record: &Value, name: &str) -> String {
    record["headers"][name][0]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} header in {}", record["raw"]))
        .to_string()
}

fn part(record: &Value, content_type: &str) -> String {
    record["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {}", record["raw"]))["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn plain_smtp_delivers_a_multipart_message() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path(), &[]);
    let status = send(json!({
        "to": "On-call <oncall@example.com>, sre@example.com",
        "cc": ["lead@example.com"],
        "from": "Fenghuo <alerts@example.com>",
        "smarthost": format!("127.0.0.1:{}", smtp.port),
        "require_tls": false,
        "subject": "{{ title }} · 磁盘告警",
        "headers": {"X-Team": "payments"},
    }))
    .await
    .expect("delivered");
    assert_eq!(status, 250);

    let got = smtp.received();
    assert_eq!(got["mail_from"], "alerts@example.com");
    assert_eq!(
        got["rcpt_tos"],
        json!(["oncall@example.com", "sre@example.com", "lead@example.com"])
    );
    assert_eq!(got["tls"], false);
    assert_eq!(header(&got, "From"), "Fenghuo <alerts@example.com>");
    assert_eq!(
        header(&got, "To"),
        "On-call <oncall@example.com>, sre@example.com"
    );
    assert_eq!(header(&got, "Cc"), "lead@example.com");
    assert_eq!(
        header(&got, "Subject"),
        "[FIRING:3] namespace=prod · 磁盘告警"
    );
    assert_eq!(header(&got, "X-Team"), "payments");
    assert_eq!(header(&got, "Auto-Submitted"), "auto-generated");
    assert!(header(&got, "Message-ID").starts_with("<fenghuo.4211."));
    assert_eq!(got["content_type"], "multipart/alternative");

    let text = part(&got, "text/plain");
    let html = part(&got, "text/html");
    assert!(text.contains("磁盘使用率过高，请检查 /data"), "{text}");
    assert!(
        text.contains("Checkout API 5xx error rate above 5%"),
        "{text}"
    );
    assert!(html.contains("磁盘使用率过高，请检查 /data"), "{html}");
    assert!(!html.contains(HOSTILE), "the label went into the HTML raw");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    // The text part is not HTML: the value is shown as it is.
    assert!(text.contains(HOSTILE));
}

#[tokio::test]
async fn starttls_with_auth() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let auth = format!("alerts:{PASSWORD}");
    let smtp = Smtp::start(
        dir.path(),
        &[
            "--starttls",
            certs.cert.to_str().unwrap(),
            certs.key.to_str().unwrap(),
            "--auth",
            &auth,
        ],
    );
    let status = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("127.0.0.1:{}", smtp.port),
        "auth_username": "alerts",
        "auth_password": PASSWORD,
        "tls_config": {"ca_file": certs.ca},
    }))
    .await
    .expect("delivered");
    assert_eq!(status, 250);
    let got = smtp.received();
    assert_eq!(got["tls"], true);
    assert_eq!(got["authenticated"], true);
    assert_eq!(got["auth_user"], "alerts");
    assert_eq!(got["content_type"], "multipart/alternative");
    assert!(part(&got, "text/plain").contains("磁盘使用率过高"));
}

#[tokio::test]
async fn implicit_tls() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let smtp = Smtp::start(
        dir.path(),
        &[
            "--implicit-tls",
            certs.cert.to_str().unwrap(),
            certs.key.to_str().unwrap(),
        ],
    );
    let status = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("localhost:{}", smtp.port),
        "tls": "implicit",
        "tls_config": {"ca_file": certs.ca},
    }))
    .await
    .expect("delivered");
    assert_eq!(status, 250);
    let got = smtp.received();
    assert_eq!(got["tls"], true);
    assert_eq!(header(&got, "To"), "oncall@example.com");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let smtp = Smtp::start(
        dir.path(),
        &[
            "--starttls",
            certs.cert.to_str().unwrap(),
            certs.key.to_str().unwrap(),
        ],
    );
    // No ca_file: the system roots do not know the test CA.
    let err = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("127.0.0.1:{}", smtp.port),
    }))
    .await
    .expect_err("an unknown CA must not be trusted");
    assert_eq!(err.class, "connect", "{err:?}");
    assert!(err.reason.contains("certificate"), "{err:?}");
    assert_eq!(smtp.count(), 0);

    // STARTTLS required, the server does not offer it: refused, not sent
    // in the clear.
    let plain = Smtp::start(dir.path(), &[]);
    let err = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("127.0.0.1:{}", plain.port),
        "tls": "starttls",
        "tls_config": {"ca_file": certs.ca},
    }))
    .await
    .expect_err("no STARTTLS, no delivery");
    assert!(!err.retryable, "{err:?}");
    assert!(err.reason.contains("STARTTLS"), "{err:?}");
    assert_eq!(plain.count(), 0);
}

#[tokio::test]
async fn wrong_password_is_not_retried_and_not_printed() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let auth = format!("alerts:{PASSWORD}");
    let smtp = Smtp::start(
        dir.path(),
        &[
            "--starttls",
            certs.cert.to_str().unwrap(),
            certs.key.to_str().unwrap(),
            "--auth",
            &auth,
        ],
    );
    let wrong = "wr0ng-Pa55word-xyz";
    let err = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("127.0.0.1:{}", smtp.port),
        "auth_username": "alerts",
        "auth_password": wrong,
        "tls_config": {"ca_file": certs.ca},
    }))
    .await
    .expect_err("a wrong password is refused");
    assert_eq!(err.class, "smtp", "{err:?}");
    assert_eq!(err.status, Some(535), "{err:?}");
    assert!(!err.retryable, "{err:?}");
    let shown = format!("{err:?} {}", err.reason);
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert_eq!(smtp.count(), 0);
}

#[tokio::test]
async fn server_down_is_a_retryable_connect_error() {
    // Needs no tools: nothing listens.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = send(json!({
        "to": "oncall@example.com",
        "from": "alerts@example.com",
        "smarthost": format!("127.0.0.1:{port}"),
        "require_tls": false,
    }))
    .await
    .expect_err("nothing listens");
    assert_eq!(err.class, "connect", "{err:?}");
    assert!(err.retryable, "{err:?}");
    assert_eq!(err.status, None);
    assert!(
        err.reason
            .starts_with(&format!("connect 127.0.0.1:{port}: ")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_a_retryable_timeout() {
    // The kernel accepts the connection; nobody ever says 220.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let notify = NotifyConfig {
        timeout: PromDuration(chrono::Duration::seconds(1)),
        ..NotifyConfig::default()
    };
    let started = Instant::now();
    let err = send_with(
        json!({
            "to": "oncall@example.com",
            "from": "alerts@example.com",
            "smarthost": format!("127.0.0.1:{port}"),
            "require_tls": false,
        }),
        notify,
    )
    .await
    .expect_err("nobody answers");
    assert_eq!(err.class, "timeout", "{err:?}");
    assert!(err.retryable, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}
