//! The webhook-style channels against a real local HTTP server: each test
//! starts an axum server on 127.0.0.1:0 that records what it receives and
//! answers as scripted, and builds its notifiers from YAML through
//! `channels::build`, so config parsing is exercised too.
//!
//! 1. Conformance: one table of outcomes run over every channel (like
//!    Alertmanager's notify/test): accepted, retried on 5xx / 429 /
//!    connection refused / timeout, not retried on 4xx, IM error codes, and
//!    no secret in any failure reason.
//! 2. Body shapes per channel, the webhook's byte for byte against real
//!    Alertmanager 0.25 captures.
//! 3. DingTalk's and Feishu's signatures, checked by the server with an
//!    independent implementation of the documented algorithms.
//! 4. Config errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use fenghuo::notify::channels::{self, webhook::WebhookBody};
use fenghuo::notify::config::{BuildEnv, GlobalConfig, http_client};
use fenghuo::notify::{AlertData, Counts, Message, Notifier, Payload, Templates, labels};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------
// The recording server.

#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    /// Accept the request and never answer: the client's timeout must end it.
    silent: bool,
}

impl Reply {
    fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
            silent: false,
        }
    }
}

/// Checks a request as the real far end would; `Some(body)` is the 200
/// error answer when it fails.
type Verify = Arc<dyn Fn(&Recorded) -> Option<String> + Send + Sync>;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    reply: Arc<Mutex<Reply>>,
    verify: Arc<Mutex<Option<Verify>>>,
}

struct Server {
    addr: SocketAddr,
    shared: Shared,
}

impl Server {
    async fn start() -> Server {
        let shared = Shared {
            requests: Arc::default(),
            reply: Arc::new(Mutex::new(Reply::new(200, "ok"))),
            verify: Arc::default(),
        };
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, shared }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn reply(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    fn verify(&self, verify: Verify) {
        *self.shared.verify.lock().unwrap() = Some(verify);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    fn last(&self) -> Recorded {
        self.requests().pop().expect("a request was received")
    }
}

async fn record(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let recorded = Recorded {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body,
    };
    shared.requests.lock().unwrap().push(recorded.clone());
    let reply = shared.reply.lock().unwrap().clone();
    if reply.silent {
        std::future::pending::<()>().await;
    }
    let verify = shared.verify.lock().unwrap().clone();
    if let Some(error) = verify.and_then(|v| v(&recorded)) {
        return (StatusCode::OK, error).into_response();
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------
// Building notifiers from YAML.

const TIMEOUT: Duration = Duration::from_millis(300);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(123)
}

struct Env {
    templates: Templates,
    global: GlobalConfig,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            templates: Templates::builtin(),
            global: GlobalConfig::default(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn build(&mut self, key: &str, yaml: &str) -> Result<Arc<dyn Notifier>, String> {
        let value: Value = yaml_serde::from_str(yaml).expect("test YAML parses");
        let mut env = BuildEnv {
            http: http_client(TIMEOUT).unwrap(),
            global: &self.global,
            templates: &mut self.templates,
            templates_dir: self.dir.path().to_path_buf(),
            timeout: TIMEOUT,
        };
        channels::build(key, &value, &mut env)
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }
}

fn message(status: &str, alerts: Vec<AlertData>) -> Message {
    let firing = alerts.iter().filter(|a| a.status == "firing").count();
    let resolved = alerts.len() - firing;
    Message {
        receiver: "ops".into(),
        status: status.into(),
        group_key: "{}/{team=\"ops\"}:{alertname=\"HighLatency\"}".into(),
        group_labels: labels([("alertname", "HighLatency")]),
        common_labels: labels([("alertname", "HighLatency"), ("team", "ops")]),
        common_annotations: Default::default(),
        external_url: "http://fenghuo.example:9797".into(),
        counts: Counts {
            firing,
            resolved,
            new: firing,
        },
        alerts,
        repeat: false,
        title: format!("[{}:{firing}] HighLatency (ops)", status.to_uppercase()),
        digest: None,
        actions: Vec::new(),
        due_seqs: vec![7],
        to: Vec::new(),
        incident: None,
        follow_up: Default::default(),
        symptoms: String::new(),
    }
}

fn alert(status: &str, instance: &str, severity: &str, summary: &str) -> AlertData {
    let starts_at = Utc.with_ymd_and_hms(2023, 12, 31, 23, 50, 0).unwrap();
    AlertData {
        status: status.into(),
        fingerprint: format!("{:016x}", instance.len() * 7919),
        labels: labels([
            ("alertname", "HighLatency"),
            ("instance", instance),
            ("severity", severity),
            ("team", "ops"),
        ]),
        annotations: labels([("summary", summary)]),
        starts_at,
        ends_at: (status == "resolved").then(|| starts_at + chrono::Duration::minutes(5)),
        generator_url: "http://prometheus.example:9090/graph?g0.expr=latency&g0.tab=1".into(),
        is_new: true,
        severity: severity.into(),
        runbook_url: None,
        summary: summary.into(),
        duration: "10m".into(),
        unchanged: false,
    }
}

fn firing_message() -> Message {
    message(
        "firing",
        vec![
            alert("firing", "api-1:9100", "warning", "p99 latency above 1s"),
            alert("firing", "api-2:9100", "critical", "p99 latency above 5s"),
        ],
    )
}

async fn send(
    n: &Arc<dyn Notifier>,
    msg: &Message,
    templates: &Templates,
) -> Result<u16, fenghuo::notify::DeliveryError> {
    let rendered = n.render(msg, templates, now());
    n.send(&rendered.payload).await.map(|d| d.status)
}

// ---------------------------------------------------------------------
// 1. Conformance.

struct Channel {
    key: &'static str,
    /// The integration's YAML, pointed at `base`.
    yaml: fn(&str) -> String,
    ok: Reply,
    /// (rate-limited, other error) bodies of a 200 for the IM robots.
    im_errors: Option<(&'static str, &'static str)>,
    secrets: &'static [&'static str],
}

fn channels_under_test() -> Vec<Channel> {
    vec![
        Channel {
            key: "slack_configs",
            yaml: |base| {
                format!("api_url: {base}/services/T0/B0/SLACKTOKEN0123\nsend_resolved: true\n")
            },
            ok: Reply::new(200, "ok"),
            im_errors: None,
            secrets: &["SLACKTOKEN0123"],
        },
        Channel {
            key: "dingtalk_configs",
            yaml: |base| {
                format!(
                    "webhook_url: {base}/robot/send?access_token=DINGTOKEN0123\n\
                     secret: SECDINGSECRET0456\n"
                )
            },
            ok: Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
            im_errors: Some((
                r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
                r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
            )),
            secrets: &["DINGTOKEN0123", "SECDINGSECRET0456"],
        },
        Channel {
            key: "wecom_configs",
            yaml: |base| format!("webhook_url: {base}/cgi-bin/webhook/send?key=WECOMKEY0123\n"),
            ok: Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
            im_errors: Some((
                r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
            )),
            secrets: &["WECOMKEY0123"],
        },
        Channel {
            key: "feishu_configs",
            yaml: |base| {
                format!(
                    "webhook_url: {base}/open-apis/bot/v2/hook/FEISHUHOOK0123\n\
                     secret: FEISHUSECRET0456\n"
                )
            },
            ok: Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#),
            im_errors: Some((
                r#"{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}"#,
                r#"{"code":19024,"msg":"Key Words Not Found"}"#,
            )),
            secrets: &["FEISHUHOOK0123", "FEISHUSECRET0456"],
        },
        Channel {
            key: "webhook_configs",
            yaml: |base| {
                format!(
                    "url: {base}/hooks/WEBHOOKTOKEN0123\n\
                     http_config:\n  authorization:\n    credentials: WEBHOOKBEARER0456\n"
                )
            },
            ok: Reply::new(200, ""),
            im_errors: None,
            secrets: &["WEBHOOKTOKEN0123", "WEBHOOKBEARER0456"],
        },
        Channel {
            key: "pagerduty_configs",
            yaml: |base| format!("url: {base}/v2/enqueue\nrouting_key: PDROUTINGKEY0123456789\n"),
            ok: Reply::new(
                202,
                r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
            ),
            im_errors: None,
            secrets: &["PDROUTINGKEY0123456789"],
        },
    ]
}

/// What a case expects: delivered, or failed with (retryable, class,
/// retry_after).
#[derive(Debug)]
enum Expect {
    Delivered,
    Failed(bool, &'static str, Option<Duration>),
}

fn check_outcome(
    channel: &Channel,
    case: &str,
    outcome: Result<u16, fenghuo::notify::DeliveryError>,
    expect: Expect,
) {
    let what = format!("{} / {case}", channel.key);
    match (outcome, expect) {
        (Ok(_), Expect::Delivered) => {}
        (Err(e), Expect::Failed(retryable, class, retry_after)) => {
            assert_eq!(e.retryable, retryable, "{what}: retryable ({e:?})");
            assert_eq!(e.class, class, "{what}: class ({e:?})");
            assert_eq!(e.retry_after, retry_after, "{what}: retry_after ({e:?})");
            for secret in channel.secrets {
                assert!(
                    !e.reason.contains(secret),
                    "{what}: reason leaks a secret: {e:?}"
                );
            }
            assert!(
                !e.reason.contains("127.0.0.1"),
                "{what}: reason holds the URL: {e:?}"
            );
            assert!(
                !e.reason.contains("http://"),
                "{what}: reason holds a URL: {e:?}"
            );
        }
        (outcome, expect) => panic!("{what}: got {outcome:?}, expected {expect:?}"),
    }
}

#[tokio::test]
async fn conformance_every_channel_classifies_outcomes_alike() {
    let msg = firing_message();
    for channel in channels_under_test() {
        let server = Server::start().await;
        let mut env = Env::new();
        let n = env
            .build(channel.key, &(channel.yaml)(&server.base()))
            .unwrap();
        let t = &env.templates;

        let rendered = n.render(&msg, t, now());
        let debug = format!("{:?} {}", rendered.payload, rendered.payload.preview());
        for secret in channel.secrets {
            // The signing secret never travels; tokens stay out of Debug.
            assert!(
                !debug.contains(secret),
                "{}: payload Debug leaks {secret}",
                channel.key
            );
        }

        let mut cases: Vec<(&str, Reply, Expect)> = vec![
            ("2xx", channel.ok.clone(), Expect::Delivered),
            (
                "500",
                Reply::new(500, "internal error"),
                Expect::Failed(true, "http_5xx", None),
            ),
            (
                "503",
                Reply::new(503, ""),
                Expect::Failed(true, "http_5xx", None),
            ),
            (
                "429",
                Reply {
                    headers: vec![("retry-after", "7".into())],
                    ..Reply::new(429, "rate_limited")
                },
                Expect::Failed(true, "rate_limited", Some(Duration::from_secs(7))),
            ),
            (
                "400",
                Reply::new(400, "invalid_payload"),
                Expect::Failed(false, "http_4xx", None),
            ),
            (
                "404",
                Reply::new(404, "channel_not_found"),
                Expect::Failed(false, "http_4xx", None),
            ),
        ];
        if let Some((limited, other)) = channel.im_errors {
            cases.push((
                "200 + rate-limit code",
                Reply::new(200, limited),
                Expect::Failed(true, "rate_limited", Some(Duration::from_secs(60))),
            ));
            cases.push((
                "200 + error code",
                Reply::new(200, other),
                Expect::Failed(false, "rejected", None),
            ));
        }
        for (i, (case, reply, expect)) in cases.into_iter().enumerate() {
            server.reply(reply);
            let outcome = send(&n, &msg, t).await;
            check_outcome(&channel, case, outcome, expect);
            assert_eq!(
                server.requests().len(),
                i + 1,
                "{} / {case}: one request",
                channel.key
            );
        }

        // Connection refused.
        let closed = format!("http://127.0.0.1:{}", closed_port());
        let refused = env.build(channel.key, &(channel.yaml)(&closed)).unwrap();
        let outcome = send(&refused, &msg, &env.templates).await;
        check_outcome(
            &channel,
            "connection refused",
            outcome,
            Expect::Failed(true, "connect", None),
        );

        // A server that does not answer within the timeout.
        server.reply(Reply {
            silent: true,
            ..channel.ok.clone()
        });
        let started = std::time::Instant::now();
        let outcome = send(&n, &msg, &env.templates).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}: timeout honoured",
            channel.key
        );
        check_outcome(
            &channel,
            "timeout",
            outcome,
            Expect::Failed(true, "timeout", None),
        );
    }
}

#[tokio::test]
async fn send_resolved_defaults_follow_alertmanager() {
    let mut env = Env::new();
    let base = "http://127.0.0.1:9";
    let expected = [
        ("slack_configs", format!("api_url: {base}/x"), false),
        ("webhook_configs", format!("url: {base}/x"), true),
        ("pagerduty_configs", "routing_key: abc".to_string(), true),
        ("dingtalk_configs", format!("webhook_url: {base}/x"), true),
        ("wecom_configs", format!("webhook_url: {base}/x"), true),
        ("feishu_configs", format!("webhook_url: {base}/x"), true),
    ];
    for (key, yaml, default) in expected {
        let n = env.build(key, &yaml).unwrap();
        assert_eq!(n.send_resolved(), default, "{key}");
        assert_eq!(format!("{}_configs", n.kind()), key);
        let flipped = env
            .build(key, &format!("{yaml}\nsend_resolved: {}", !default))
            .unwrap();
        assert_eq!(flipped.send_resolved(), !default, "{key}");
    }
}

// ---------------------------------------------------------------------
// 2. Body shapes.

#[tokio::test]
async fn dingtalk_markdown_with_mentions() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    let mut env = Env::new();
    let yaml = format!(
        "webhook_url: {}/robot/send?access_token=TOKEN\n\
         at:\n  mobiles: ['13800000000', '13900000000']\n  user_ids: [manager01]\n  all: false\n",
        server.base()
    );
    let n = env.build("dingtalk_configs", &yaml).unwrap();
    let msg = firing_message();
    send(&n, &msg, &env.templates).await.unwrap();
    let req = server.last();
    assert_eq!(req.path, "/robot/send");
    assert_eq!(
        req.query, "access_token=TOKEN",
        "no signature without a secret"
    );
    assert!(req.headers["content-type"].starts_with("application/json"));
    let body = req.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["title"], msg.title);
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("p99 latency above 5s"), "{text}");
    assert!(
        text.ends_with("@13800000000 @13900000000 @manager01"),
        "mentions are in the text: {text}"
    );
    assert_eq!(
        body["at"]["atMobiles"],
        json!(["13800000000", "13900000000"])
    );
    assert_eq!(body["at"]["atUserIds"], json!(["manager01"]));
    assert_eq!(body["at"]["isAtAll"], json!(false));
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

/// An escalation page is for people: each channel reaches them its own way
/// (DingTalk `at` by mobile or user id, WeCom `<@id>`, the email's To).
#[tokio::test]
async fn pages_for_people_mention_them_in_each_channel() {
    use fenghuo::eventlog::event::Recipient;
    let person = |name: &str, mentions: &[(&str, &str)]| Recipient {
        name: name.into(),
        email: Some(format!("{name}@example.com")),
        mentions: mentions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut msg = firing_message();
    msg.to = vec![
        person(
            "alice",
            &[
                ("dingtalk_mobile", "13700000000"),
                ("wecom_user", "alice.w"),
            ],
        ),
        person("bob", &[("dingtalk_user", "bob01")]),
    ];
    let server = Server::start().await;
    let mut env = Env::new();

    server.reply(Reply::new(200, r#"{"errcode":0}"#));
    let yaml = format!(
        "webhook_url: {}/robot/send?access_token=T\nat:\n  mobiles: ['13800000000']\n",
        server.base()
    );
    let n = env.build("dingtalk_configs", &yaml).unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    let body = server.last().json();
    assert_eq!(
        body["at"]["atMobiles"],
        json!(["13800000000", "13700000000"])
    );
    assert_eq!(body["at"]["atUserIds"], json!(["bob01"]));
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(text.ends_with("@13800000000 @13700000000 @bob01"), "{text}");
    assert!(text.contains("for **alice**, **bob**"), "{text}");

    server.reply(Reply::new(200, r#"{"errcode":0}"#));
    let n = env
        .build(
            "wecom_configs",
            &format!(
                "webhook_url: {}/cgi-bin/webhook/send?key=K\n",
                server.base()
            ),
        )
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    let content = server.last().json()["markdown"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.ends_with("<@alice.w>"), "{content}");

    let n = env
        .build(
            "email_configs",
            "to: team@example.com\nfrom: fenghuo@example.com\nsmarthost: 127.0.0.1:25\n",
        )
        .unwrap();
    let rendered = n.render(
        &msg,
        &env.templates,
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    );
    match rendered.payload {
        Payload::Email(m) => assert_eq!(m.to, ["alice@example.com", "bob@example.com"]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dingtalk_custom_template_from_templates_dir() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"errcode":0}"#));
    let mut env = Env::new();
    env.write("ops-dingtalk.md", "### Custom ops page\n");
    let yaml = format!(
        "webhook_url: {}/robot/send?access_token=T\ntemplate: ops-dingtalk.md\n",
        server.base()
    );
    let n = env.build("dingtalk_configs", &yaml).unwrap();
    let rendered = n.render(&firing_message(), &env.templates, now());
    assert_eq!(rendered.fallback, None);
    n.send(&rendered.payload).await.unwrap();
    let text = server.last().json()["markdown"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("### Custom ops page"), "{text}");

    let err = env
        .build(
            "dingtalk_configs",
            "webhook_url: http://127.0.0.1:9/x\ntemplate: missing.md\n",
        )
        .err()
        .unwrap();
    assert!(
        err.starts_with("template:") && err.contains("missing.md"),
        "{err}"
    );
}

#[tokio::test]
async fn wecom_markdown_is_cut_to_4096_bytes() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    let mut env = Env::new();
    let yaml = format!(
        "webhook_url: {}/cgi-bin/webhook/send?key=K\nmentioned_list: [zhangsan, lisi]\n",
        server.base()
    );
    let n = env.build("wecom_configs", &yaml).unwrap();

    // Short: whole, with the mentions.
    send(&n, &firing_message(), &env.templates).await.unwrap();
    let req = server.last();
    assert_eq!(req.query, "key=K");
    let body = req.json();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("p99 latency above 1s"), "{content}");
    assert!(content.ends_with("<@zhangsan> <@lisi>"), "{content}");
    assert!(!content.contains("(truncated)"));

    // The default template bounds itself (5 alerts, then "and N more"); a
    // receiver's own template that lists everything is cut by the channel:
    // on a character boundary, marked, mentions kept.
    env.write(
        "all.md",
        "{% for a in alerts %}- {{ a.summary }}\n{% endfor %}",
    );
    let n = env
        .build("wecom_configs", &format!("{yaml}template: all.md\n"))
        .unwrap();
    let alerts = (0..200)
        .map(|i| {
            alert(
                "firing",
                &format!("node-{i}:9100"),
                "critical",
                &format!("磁盘 /data 使用率超过 95%，请立即处理 (第 {i} 台)"),
            )
        })
        .collect();
    let long = message("firing", alerts);
    send(&n, &long, &env.templates).await.unwrap();
    let content = server.last().json()["markdown"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.len() <= 4096, "{} bytes", content.len());
    assert!(
        content.len() > 3500,
        "not cut more than needed: {}",
        content.len()
    );
    assert!(content.contains("…(truncated)"), "{content}");
    assert!(content.ends_with("<@zhangsan> <@lisi>"));
}

#[tokio::test]
async fn feishu_card_and_text_fallback() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#));
    let mut env = Env::new();
    let base = server.base();
    let n = env
        .build(
            "feishu_configs",
            &format!("webhook_url: {base}/open-apis/bot/v2/hook/HOOK\n"),
        )
        .unwrap();
    let msg = firing_message();
    let rendered = n.render(&msg, &env.templates, now());
    assert_eq!(rendered.fallback, None);
    n.send(&rendered.payload).await.unwrap();
    let req = server.last();
    assert_eq!(req.path, "/open-apis/bot/v2/hook/HOOK");
    let body = req.json();
    assert_eq!(body["msg_type"], "interactive");
    assert!(body["card"].is_object(), "{body}");
    assert!(body.get("sign").is_none() && body.get("timestamp").is_none());

    env.write("broken-card.json", "{ \"header\": oops");
    let n = env
        .build(
            "feishu_configs",
            &format!(
                "webhook_url: {base}/open-apis/bot/v2/hook/HOOK\ntemplate: broken-card.json\n"
            ),
        )
        .unwrap();
    // A custom card template that is not JSON: the default card is sent and
    // the reason kept.
    let rendered = n.render(&msg, &env.templates, now());
    let reason = rendered.fallback.clone().expect("fallback recorded");
    assert!(reason.contains("JSON"), "{reason}");
    n.send(&rendered.payload).await.unwrap();
    let body = server.last().json();
    assert_eq!(body["msg_type"], "interactive");
    let card = body["card"].to_string();
    assert!(card.contains("p99 latency above 5s"), "{card}");
}

#[tokio::test]
async fn slack_body_with_overrides() {
    let server = Server::start().await;
    let mut env = Env::new();
    let yaml = format!(
        "api_url: {}/services/T0/B0/XYZ\nchannel: '#ops'\nusername: fenghuo\n\
         icon_emoji: ':fire:'\nlink_names: true\n",
        server.base()
    );
    let n = env.build("slack_configs", &yaml).unwrap();
    assert!(!n.send_resolved());
    send(&n, &firing_message(), &env.templates).await.unwrap();
    let req = server.last();
    assert_eq!(req.path, "/services/T0/B0/XYZ");
    assert!(req.headers["content-type"].starts_with("application/json"));
    let body = req.json();
    assert!(
        body["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{body}"
    );
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["username"], "fenghuo");
    assert_eq!(body["icon_emoji"], ":fire:");
    assert_eq!(body["link_names"], true);
    assert!(body.get("icon_url").is_none());

    // The global api_url is the fallback.
    env.global.slack_api_url = Some(fenghuo::notify::Secret::new(format!(
        "{}/services/GLOBAL",
        server.base()
    )));
    let n = env.build("slack_configs", "channel: '#ops'\n").unwrap();
    send(&n, &firing_message(), &env.templates).await.unwrap();
    assert_eq!(server.last().path, "/services/GLOBAL");
}

fn sha256_hex(data: &str) -> String {
    Sha256::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn pagerduty_trigger_and_resolve() {
    let server = Server::start().await;
    server.reply(Reply::new(202, r#"{"status":"success"}"#));
    let mut env = Env::new();
    let yaml = format!(
        "url: {}/v2/enqueue\nrouting_key: R0123456789\nclass: latency\ncomponent: api\n\
         group: prod\ndetails:\n  team: ops\n",
        server.base()
    );
    let n = env.build("pagerduty_configs", &yaml).unwrap();
    let msg = firing_message();
    assert_eq!(send(&n, &msg, &env.templates).await.unwrap(), 202);
    let req = server.last();
    assert_eq!(req.path, "/v2/enqueue");
    let body = req.json();
    assert_eq!(body["routing_key"], "R0123456789");
    // The key is put in at send: previews and Debug show a placeholder.
    let preview = n.render(&msg, &env.templates, now()).payload.preview();
    assert!(
        preview.contains(r#""routing_key": "<secret>""#),
        "{preview}"
    );
    assert!(!preview.contains("R0123456789"));
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], sha256_hex(&msg.group_key));
    let payload = &body["payload"];
    assert_eq!(payload["summary"], msg.title);
    assert_eq!(
        payload["severity"], "critical",
        "most urgent alert's severity"
    );
    assert_eq!(payload["source"], "Fenghuo");
    assert_eq!(payload["class"], "latency");
    assert_eq!(payload["component"], "api");
    assert_eq!(payload["group"], "prod");
    assert_eq!(payload["timestamp"], "2023-12-31T23:50:00.000Z");
    let details = &payload["custom_details"];
    assert_eq!(details["num_firing"], "2");
    assert_eq!(details["num_resolved"], "0");
    assert_eq!(details["team"], "ops");
    assert!(
        details["firing"]
            .as_str()
            .unwrap()
            .contains(" - instance = api-2:9100")
    );
    assert_eq!(body["client"], "Fenghuo");
    assert_eq!(body["client_url"], msg.external_url);
    assert_eq!(
        body["links"][0]["href"],
        "http://prometheus.example:9090/graph?g0.expr=latency&g0.tab=1"
    );

    // All resolved: the same dedup key, resolve.
    let resolved = message(
        "resolved",
        vec![alert(
            "resolved",
            "api-1:9100",
            "warning",
            "p99 latency above 1s",
        )],
    );
    send(&n, &resolved, &env.templates).await.unwrap();
    let body = server.last().json();
    assert_eq!(body["event_action"], "resolve");
    assert_eq!(body["dedup_key"], sha256_hex(&msg.group_key));
    assert_eq!(body["payload"]["custom_details"]["num_resolved"], "1");

    // Severity mapping and summary length.
    let mut long = message(
        "firing",
        vec![alert("firing", "db-1:9100", "P3", "replication lag")],
    );
    long.title = "长".repeat(2000);
    send(&n, &long, &env.templates).await.unwrap();
    let body = server.last().json();
    assert_eq!(body["payload"]["severity"], "warning");
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    let unknown = message("firing", vec![alert("firing", "x", "whatever", "s")]);
    send(&n, &unknown, &env.templates).await.unwrap();
    assert_eq!(server.last().json()["payload"]["severity"], "error");

    let fixed = env
        .build(
            "pagerduty_configs",
            &format!(
                "url: {}/v2/enqueue\nrouting_key: R\nseverity: info\nsource: db-1\n",
                server.base()
            ),
        )
        .unwrap();
    send(&fixed, &msg, &env.templates).await.unwrap();
    let body = server.last().json();
    assert_eq!(body["payload"]["severity"], "info");
    assert_eq!(body["payload"]["source"], "db-1");
}

/// An Alertmanager webhook body as Fenghuo's message, the way the notify
/// stage fills it.
fn message_from_am(body: &WebhookBody) -> Message {
    let alerts: Vec<AlertData> = body
        .alerts
        .iter()
        .map(|a| AlertData {
            status: a.status.clone(),
            fingerprint: a.fingerprint.clone(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url.clone(),
            is_new: false,
            severity: a
                .labels
                .get("severity")
                .map(str::to_string)
                .unwrap_or_default(),
            runbook_url: None,
            summary: a
                .annotations
                .get("summary")
                .map(str::to_string)
                .unwrap_or_default(),
            duration: "1s".into(),
            unchanged: false,
        })
        .collect();
    let firing = alerts.iter().filter(|a| a.status == "firing").count();
    Message {
        receiver: body.receiver.clone(),
        status: body.status.clone(),
        counts: Counts {
            firing,
            resolved: alerts.len() - firing,
            new: 0,
        },
        alerts,
        group_key: body.group_key.clone(),
        group_labels: body.group_labels.clone(),
        common_labels: body.common_labels.clone(),
        common_annotations: body.common_annotations.clone(),
        external_url: body.external_url.clone(),
        repeat: false,
        title: "t".into(),
        digest: None,
        actions: Vec::new(),
        due_seqs: Vec::new(),
        to: Vec::new(),
        incident: None,
        follow_up: Default::default(),
        symptoms: String::new(),
    }
}

#[tokio::test]
async fn webhook_body_is_alertmanager_v4_byte_for_byte() {
    let server = Server::start().await;
    let mut env = Env::new();
    let n = env
        .build(
            "webhook_configs",
            &format!("url: {}/alerts\n", server.base()),
        )
        .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "alertmanager-0.25-webhook-firing.json",
        "alertmanager-0.25-webhook-partial-resolved.json",
        "alertmanager-0.25-webhook-resolved.json",
    ] {
        let capture = std::fs::read(fixtures.join(name)).unwrap();
        let decoded: WebhookBody = serde_json::from_slice(&capture).unwrap();
        // Decoding and encoding again gives the capture back, byte for byte.
        assert_eq!(
            String::from_utf8(decoded.to_go_json()).unwrap(),
            String::from_utf8(capture.clone()).unwrap(),
            "{name}: re-encoded"
        );
        // Through Fenghuo's message and the notifier: the same body.
        let msg = message_from_am(&decoded);
        send(&n, &msg, &env.templates).await.unwrap();
        let req = server.last();
        assert_eq!(req.path, "/alerts");
        assert_eq!(req.headers["content-type"], "application/json");
        let sent: Value = req.json();
        let want: Value = serde_json::from_slice(&capture).unwrap();
        // Field by field first, for a readable failure.
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(&sent[key], value, "{name}: field {key}");
        }
        assert_eq!(sent, want, "{name}: same JSON value");
        assert_eq!(req.body, capture, "{name}: same bytes");
    }
}

#[tokio::test]
async fn webhook_max_alerts_and_headers() {
    let server = Server::start().await;
    let mut env = Env::new();
    let pw = env.write("pw", "s3cret\n");
    let yaml = format!(
        "url: {}/alerts\nmax_alerts: 2\nhttp_config:\n  basic_auth:\n    username: am\n    \
         password_file: {pw}\nheaders:\n  X-Scope-OrgID: tenant-1\n",
        server.base()
    );
    let n = env.build("webhook_configs", &yaml).unwrap();
    let msg = message(
        "firing",
        (0..5)
            .map(|i| alert("firing", &format!("h{i}"), "critical", "s"))
            .collect(),
    );
    send(&n, &msg, &env.templates).await.unwrap();
    let req = server.last();
    assert_eq!(
        req.headers["authorization"],
        format!("Basic {}", BASE64.encode("am:s3cret"))
    );
    assert_eq!(req.headers["x-scope-orgid"], "tenant-1");
    let body = req.json();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(body["truncatedAlerts"], 3);
    assert_eq!(body["version"], "4");
    assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(body["alerts"][0]["startsAt"], "2023-12-31T23:50:00Z");
}

// ---------------------------------------------------------------------
// 3. Signatures, verified as DingTalk and Feishu verify them.

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone, independent of the `hmac`
/// crate the channels use.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[test]
fn independent_hmac_matches_rfc_4231() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(percent_decode("a%2Bb%2Fc%3D"), "a+b/c=");
}

const DINGTALK_SECRET: &str = "SEC7d5b1e2f0a9c4b8e6d3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1";

#[tokio::test]
async fn dingtalk_signature_verifies() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    // DingTalk's check: timestamp and sign from the query; sign is the
    // url-encoded base64 of HMAC-SHA256(secret, "<timestamp>\n<secret>").
    server.verify(Arc::new(|req: &Recorded| {
        let ok = (|| {
            let timestamp = query_param(&req.query, "timestamp")?;
            let sign = percent_decode(&query_param(&req.query, "sign")?);
            let expected = BASE64.encode(hmac_sha256(
                DINGTALK_SECRET.as_bytes(),
                format!("{timestamp}\n{DINGTALK_SECRET}").as_bytes(),
            ));
            (sign == expected).then_some(())
        })()
        .is_some();
        (!ok).then(|| r#"{"errcode":310000,"errmsg":"sign not match"}"#.to_string())
    }));
    let mut env = Env::new();
    let url = format!("{}/robot/send?access_token=TOKEN", server.base());
    let good = env
        .build(
            "dingtalk_configs",
            &format!("webhook_url: '{url}'\nsecret: {DINGTALK_SECRET}\n"),
        )
        .unwrap();
    assert_eq!(
        send(&good, &firing_message(), &env.templates)
            .await
            .unwrap(),
        200
    );
    let req = server.last();
    assert_eq!(query_param(&req.query, "access_token").unwrap(), "TOKEN");
    assert_eq!(
        query_param(&req.query, "timestamp").unwrap(),
        now().timestamp_millis().to_string(),
        "the timestamp is the clock's, in milliseconds"
    );
    let raw_sign = query_param(&req.query, "sign").unwrap();
    assert!(
        !raw_sign.contains(['+', '/', '=']),
        "the sign is percent-encoded: {raw_sign}"
    );

    let wrong = env
        .build(
            "dingtalk_configs",
            &format!("webhook_url: '{url}'\nsecret: SECnot-the-right-one\n"),
        )
        .unwrap();
    let err = send(&wrong, &firing_message(), &env.templates)
        .await
        .unwrap_err();
    assert!(!err.retryable);
    assert_eq!(err.class, "rejected");
    assert!(err.reason.contains("sign not match"), "{err:?}");
    assert!(!err.reason.contains("SECnot-the-right-one"));

    // A URL without a query gets `?timestamp=`.
    let bare = env
        .build(
            "dingtalk_configs",
            &format!(
                "webhook_url: '{}/robot/send'\nsecret: {DINGTALK_SECRET}\n",
                server.base()
            ),
        )
        .unwrap();
    send(&bare, &firing_message(), &env.templates)
        .await
        .unwrap();
    assert!(server.last().query.starts_with("timestamp="));
}

const FEISHU_SECRET: &str = "qJ5xY2nW8kL3pR7tV0zB4c";

#[tokio::test]
async fn feishu_signature_verifies() {
    let server = Server::start().await;
    server.reply(Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#));
    // Feishu's check: timestamp and sign from the body; sign is the base64
    // of HMAC-SHA256 keyed with "<timestamp>\n<secret>" over no data.
    server.verify(Arc::new(|req: &Recorded| {
        let ok = (|| {
            let body: Value = serde_json::from_slice(&req.body).ok()?;
            let timestamp = body.get("timestamp")?.as_str()?;
            let sign = body.get("sign")?.as_str()?;
            let key = format!("{timestamp}\n{FEISHU_SECRET}");
            (sign == BASE64.encode(hmac_sha256(key.as_bytes(), b""))).then_some(())
        })()
        .is_some();
        (!ok).then(|| {
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#
                .to_string()
        })
    }));
    let mut env = Env::new();
    let url = format!("{}/open-apis/bot/v2/hook/HOOK", server.base());
    let good = env
        .build(
            "feishu_configs",
            &format!("webhook_url: {url}\nsecret: {FEISHU_SECRET}\n"),
        )
        .unwrap();
    assert_eq!(
        send(&good, &firing_message(), &env.templates)
            .await
            .unwrap(),
        200
    );
    let body = server.last().json();
    assert_eq!(body["timestamp"], json!(now().timestamp().to_string()));
    assert_eq!(body["msg_type"], "interactive");

    let wrong = env
        .build(
            "feishu_configs",
            &format!("webhook_url: {url}\nsecret: wrong-secret\n"),
        )
        .unwrap();
    let err = send(&wrong, &firing_message(), &env.templates)
        .await
        .unwrap_err();
    assert!(!err.retryable);
    assert!(err.reason.contains("sign match fail"), "{err:?}");
}

// ---------------------------------------------------------------------
// 4. Config errors.

#[test]
fn config_errors_name_the_field() {
    let mut env = Env::new();
    let cases: &[(&str, &str, &[&str])] = &[
        // key, YAML, words the error must contain
        (
            "dingtalk_configs",
            "webhok_url: http://x/y\n",
            &["webhok_url", "unknown field"],
        ),
        ("dingtalk_configs", "secret: abc\n", &["webhook_url"]),
        ("wecom_configs", "mentioned_list: [a]\n", &["webhook_url"]),
        ("feishu_configs", "{}\n", &["webhook_url"]),
        ("webhook_configs", "send_resolved: true\n", &["url"]),
        (
            "slack_configs",
            "channel: '#x'\n",
            &["api_url", "global.slack_api_url"],
        ),
        (
            "pagerduty_configs",
            "url: http://127.0.0.1:9/\n",
            &["routing_key"],
        ),
        (
            "pagerduty_configs",
            "service_key: abc\n",
            &["service_key", "Events API v1"],
        ),
        (
            "pagerduty_configs",
            "routing_key: r\nseverity: urgent\n",
            &["severity", "critical, error, warning, info"],
        ),
        (
            "pagerduty_configs",
            "routing_key: r\ndescription: '{{ .CommonAnnotations.summary }}'\n",
            &["description", "Go templates"],
        ),
        (
            "slack_configs",
            "api_url: http://127.0.0.1:9/x\ntitle: '{{ template \"slack.default.title\" . }}'\n",
            &["title", "template: FILE"],
        ),
        (
            "webhook_configs",
            "url: http://127.0.0.1:9/x\nhttp_config:\n  tls_config:\n    insecure_skip_verify: true\n",
            &["http_config.tls_config", "not supported"],
        ),
        (
            "webhook_configs",
            "url: http://127.0.0.1:9/x\nhttp_config:\n  bogus: 1\n",
            &["http_config", "bogus"],
        ),
        (
            "wecom_configs",
            "webhook_url: http://127.0.0.1:9/x\nmentioned_mobile_list: ['13800000000']\n",
            &["mentioned_mobile_list", "mentioned_list"],
        ),
        (
            "wecom_configs",
            "webhook_url: http://127.0.0.1:9/x\nmentioned_list: ['@all']\n",
            &["mentioned_list[0]", "@all"],
        ),
        (
            "dingtalk_configs",
            "webhook_url: http://127.0.0.1:9/x\nat:\n  phones: [1]\n",
            &["at", "phones"],
        ),
        (
            "dingtalk_configs",
            "webhook_url: http://127.0.0.1:9/x\nwebhook_url_file: /nonexistent\n",
            &["at most one of webhook_url and webhook_url_file"],
        ),
        // A DingTalk app's robot: each missing or clashing field named.
        (
            "dingtalk_configs",
            "app_key: ding1\nopen_conversation_id: cid1\n",
            &["app_secret", "required with app_key"],
        ),
        (
            "dingtalk_configs",
            "app_key: ding1\napp_secret: s\n",
            &["open_conversation_id", "required with app_key"],
        ),
        (
            "dingtalk_configs",
            "webhook_url: http://127.0.0.1:9/x\napp_key: ding1\napp_secret: s\nopen_conversation_id: c\n",
            &["webhook_url", "at most one of"],
        ),
        (
            "dingtalk_configs",
            "webhook_url: http://127.0.0.1:9/x\nopen_conversation_id: c\n",
            &["open_conversation_id", "only with app_key"],
        ),
        (
            "dingtalk_configs",
            "app_key: ding1\napp_secret: s\nopen_conversation_id: c\nat:\n  mobiles: ['13800000000']\n",
            &["at.mobiles", "user_ids"],
        ),
        (
            "dingtalk_configs",
            "app_key: ding1\napp_secret: s\nopen_conversation_id: c\nsecret: SEC1\n",
            &["secret", "app_secret"],
        ),
        (
            "dingtalk_configs",
            "app_key: ding1\napp_secret: s\nopen_conversation_id: c\napi_url: not a url\n",
            &["api_url"],
        ),
        ("sms_configs", "to: x\n", &["sms_configs", "not supported"]),
    ];
    for (key, yaml, words) in cases {
        let err = env
            .build(key, yaml)
            .err()
            .unwrap_or_else(|| panic!("{key} {yaml} accepted"));
        for word in *words {
            assert!(
                err.contains(word),
                "{key} {yaml:?}: {err:?} should mention {word:?}"
            );
        }
    }
}

#[test]
fn bad_urls_are_refused_without_showing_them() {
    let mut env = Env::new();
    for (key, field) in [
        ("dingtalk_configs", "webhook_url"),
        ("wecom_configs", "webhook_url"),
        ("feishu_configs", "webhook_url"),
        ("webhook_configs", "url"),
        ("slack_configs", "api_url"),
    ] {
        for bad in [
            "oapi.dingtalk.com/robot/send?access_token=LEAKME1",
            "ftp://h/LEAKME1",
        ] {
            let err = env
                .build(key, &format!("{field}: '{bad}'\n"))
                .err()
                .unwrap();
            assert!(err.contains(field), "{key}: {err}");
            assert!(
                !err.contains("LEAKME1"),
                "{key}: error shows the URL: {err}"
            );
        }
    }
}

#[tokio::test]
async fn secrets_from_files_and_env() {
    let server = Server::start().await;
    let base = server.base();
    let mut env = Env::new();
    let ding_url = env.write(
        "ding-url",
        &format!("{base}/robot/send?access_token=FROMFILE1\n"),
    );
    let wecom_url = env.write(
        "wecom-url",
        &format!("{base}/cgi-bin/webhook/send?key=FROMFILE2"),
    );
    let slack_url = env.write("slack-url", &format!("{base}/services/FROMFILE3\n"));
    let pd_key = env.write("pd-key", "FROMFILE4\n");
    let hook_url = env.write("hook-url", &format!("{base}/hook/FROMFILE5\n"));
    let ding_secret = env.write("ding-secret", "FROMFILE6\n");

    let msg = firing_message();
    server.reply(Reply::new(200, r#"{"errcode":0}"#));
    let n = env
        .build(
            "dingtalk_configs",
            &format!("webhook_url: {{ file: {ding_url} }}\nsecret_file: {ding_secret}\n"),
        )
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    let query = server.last().query;
    assert!(
        query.starts_with("access_token=FROMFILE1&timestamp="),
        "{query}"
    );
    let timestamp = query_param(&query, "timestamp").unwrap();
    let sign = percent_decode(&query_param(&query, "sign").unwrap());
    let signed = format!("{timestamp}\nFROMFILE6");
    assert_eq!(
        sign,
        BASE64.encode(hmac_sha256(b"FROMFILE6", signed.as_bytes()))
    );

    let n = env
        .build("wecom_configs", &format!("webhook_url_file: {wecom_url}\n"))
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    assert_eq!(server.last().query, "key=FROMFILE2");

    let n = env
        .build("slack_configs", &format!("api_url_file: {slack_url}\n"))
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    assert_eq!(server.last().path, "/services/FROMFILE3");

    let n = env
        .build(
            "pagerduty_configs",
            &format!("url: {base}/v2/enqueue\nrouting_key_file: {pd_key}\n"),
        )
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    assert_eq!(server.last().json()["routing_key"], "FROMFILE4");

    let n = env
        .build("webhook_configs", &format!("url_file: {hook_url}\n"))
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    assert_eq!(server.last().path, "/hook/FROMFILE5");

    let n = env
        .build(
            "feishu_configs",
            // Cargo sets CARGO_PKG_NAME for the test process: `{ env: }`
            // is read without the test changing its own environment.
            &format!("webhook_url: {base}/hook/F\nsecret: {{ env: CARGO_PKG_NAME }}\n"),
        )
        .unwrap();
    send(&n, &msg, &env.templates).await.unwrap();
    let body = server.last().json();
    let key = format!(
        "{}\n{}",
        body["timestamp"].as_str().unwrap(),
        env!("CARGO_PKG_NAME")
    );
    assert_eq!(
        body["sign"],
        BASE64.encode(hmac_sha256(key.as_bytes(), b""))
    );

    let err = env
        .build(
            "slack_configs",
            "api_url: { file: /nonexistent/slack-url }\n",
        )
        .err()
        .unwrap();
    assert!(
        err.contains("api_url") && err.contains("/nonexistent/slack-url"),
        "{err}"
    );
}

#[test]
fn payload_debug_hides_the_url() {
    let mut env = Env::new();
    let n = env
        .build(
            "wecom_configs",
            "webhook_url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=HIDDENKEY\n",
        )
        .unwrap();
    let rendered = n.render(&firing_message(), &env.templates, now());
    let Payload::Http { url, .. } = &rendered.payload else {
        panic!("an HTTP payload")
    };
    assert!(url.ends_with("key=HIDDENKEY"));
    assert!(!format!("{:?}", rendered.payload).contains("HIDDENKEY"));
    assert!(!rendered.payload.preview().contains("HIDDENKEY"));
}
