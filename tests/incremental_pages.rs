//! Incremental pages and updates in place, as timelines through the real
//! pipeline (manual clock, real SQLite log) and a real local HTTP server
//! standing in for Slack's Web API (`chat.postMessage`, `chat.update`),
//! which records every call.
//!
//! What is checked: the group's first page is posted; news only about
//! alerts already paged (a resolve) edits that message; a new alert is a
//! follow-up page listing only what changed; after a restart, rebuilt from
//! the log, the next update still edits the recorded message; an edit Slack
//! refuses (the message was deleted) becomes a new message, recorded.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{EventKind, EventQuery};
use fenghuo::ingest::alertmanager::parse_v2;
use fenghuo::pipeline::Pipeline;
use parking_lot::Mutex;
use serde_json::Value;

const TOKEN: &str = "xoxb-1234-secret-bot-token";

/// One call Slack received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    authorization: String,
    body: Value,
}

/// A Slack Web API that answers `ok` with a channel id and a new `ts` per
/// posted message; `chat.update` answers `refuse_updates` when set.
#[derive(Clone, Default)]
struct Slack {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Messages posted so far: each gets the next `ts`.
    posted: Arc<std::sync::atomic::AtomicUsize>,
    refuse_updates: Arc<Mutex<Option<&'static str>>>,
}

async fn api(
    State(slack): State<Slack>,
    axum::extract::Path(method): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> String {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut calls = slack.calls.lock();
    calls.push(Call {
        method: method.clone(),
        authorization,
        body: body.clone(),
    });
    match method.as_str() {
        "chat.postMessage" => {
            let posted = 1 + slack
                .posted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            format!(r#"{{"ok":true,"channel":"C0FENG","ts":"1700000000.00000{posted}"}}"#)
        }
        "chat.update" => match *slack.refuse_updates.lock() {
            Some(error) => format!(r#"{{"ok":false,"error":"{error}"}}"#),
            None => format!(
                r#"{{"ok":true,"channel":"C0FENG","ts":{},"text":"updated"}}"#,
                body["ts"]
            ),
        },
        _ => r#"{"ok":false,"error":"unknown_method"}"#.into(),
    }
}

impl Slack {
    async fn start() -> (Slack, String) {
        let slack = Slack::default();
        let app = Router::new()
            .route("/api/{method}", post(api))
            .with_state(slack.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (slack, base)
    }

    /// The calls since the last look.
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock())
    }
}

fn config(base: &str, pages: &str) -> String {
    format!(
        "route:\n  receiver: ops\n  group_by: [team]\n  group_wait: 30s\n  group_interval: 5m\n  \
         repeat_interval: 4h\n{pages}receivers:\n  - name: ops\n    slack_configs:\n      \
         - app_token: {TOKEN}\n        app_url: {base}/api/chat.postMessage\n        \
         channel: '#ops'\n        send_resolved: true\n"
    )
}

struct Timeline {
    clock: ManualClock,
    pipeline: Arc<Pipeline>,
    t0: DateTime<Utc>,
}

impl Timeline {
    fn open(yaml: &str, dir: &Path, clock: &ManualClock, t0: DateTime<Utc>) -> Timeline {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.to_path_buf();
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        Timeline {
            clock: clock.clone(),
            pipeline,
            t0,
        }
    }

    fn at(&self, secs: i64) {
        self.clock.set(self.t0 + Duration::seconds(secs));
    }

    /// Alert `name` of team x: firing for hours, or resolved now.
    async fn alert(&self, name: &str, firing: bool) {
        let ends = if firing {
            self.t0 + Duration::hours(4)
        } else {
            self.clock.now()
        };
        let body = format!(
            r#"[{{"labels":{{"alertname":"{name}","team":"x"}},"annotations":{{"summary":"{name} is broken"}},"startsAt":"{}","endsAt":"{}"}}]"#,
            self.t0.to_rfc3339(),
            ends.to_rfc3339()
        );
        let alerts = parse_v2(body.as_bytes(), self.clock.now(), Duration::minutes(5)).unwrap();
        self.pipeline
            .ingest
            .alerts("prometheus", alerts)
            .await
            .unwrap();
        // What the dispatch loop does right after a commit, at this same
        // instant: a commit decides on the alerts it brings only while
        // passes are quick (`Dispatcher::wants` has a wall-clock budget), so
        // on a loaded machine the decisions come from the loop instead.
        self.pipeline.dispatcher.step().await.unwrap();
    }

    /// A dispatcher pass and an outbox step, as the background loops run
    /// them at this instant.
    async fn run(&self) {
        self.pipeline.dispatcher.step().await.unwrap();
        self.pipeline.outbox.step().await.unwrap();
    }

    /// `(message_ref, updated)` of every `notification.sent` so far.
    fn sent(&self) -> Vec<(Option<String>, bool)> {
        self.pipeline
            .log
            .read(&EventQuery {
                after: 0,
                limit: 10_000,
                ..EventQuery::default()
            })
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::NotificationSent(s) => Some((s.message_ref, s.updated)),
                _ => None,
            })
            .collect()
    }
}

/// The mrkdwn and plain text of a Slack body, to look for alerts in.
fn text_of(body: &Value) -> String {
    body.to_string()
}

#[tokio::test]
async fn a_group_posts_once_then_edits_its_message_across_a_restart() {
    let (slack, base) = Slack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let yaml = config(&base, "");
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);

    // 0s: A and B fire. 30s: the group's first page is posted.
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    let calls = slack.take();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(calls[0].authorization, format!("Bearer {TOKEN}"));
    assert_eq!(calls[0].body["channel"], "#ops");
    let first = text_of(&calls[0].body);
    assert!(first.contains("A is broken") && first.contains("B is broken"));
    assert_eq!(
        t.sent(),
        vec![(Some("C0FENG 1700000000.000001".into()), false)]
    );

    // 60s: B resolves. 330s: the flush edits the first message in place:
    // A still firing, B resolved.
    t.at(60);
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    let calls = slack.take();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "chat.update");
    assert_eq!(calls[0].body["channel"], "C0FENG");
    assert_eq!(calls[0].body["ts"], "1700000000.000001");
    let edited = text_of(&calls[0].body);
    assert!(edited.contains("A is broken"), "{edited}");
    assert!(edited.contains("Resolved (1)"), "{edited}");
    assert!(edited.contains("updated"), "{edited}");

    // 340s: C joins. 630s: a follow-up page, posted anew, lists C in full
    // and counts A, unchanged.
    t.at(340);
    t.alert("C", true).await;
    t.at(630);
    t.run().await;
    let calls = slack.take();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "chat.postMessage");
    let follow_up = text_of(&calls[0].body);
    assert!(follow_up.contains("C is broken"), "{follow_up}");
    assert!(!follow_up.contains("A is broken"), "{follow_up}");
    assert!(
        follow_up.contains("+ *1* still firing, unchanged"),
        "{follow_up}"
    );
    assert!(follow_up.contains("*2* firing"), "{follow_up}");

    // A restart: every view rebuilt from the log.
    t.pipeline.close();
    drop(t);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);

    // 700s: A and C resolve. 930s: the group's last word edits its last
    // message, as recorded before the restart.
    t.at(700);
    t.alert("A", false).await;
    t.alert("C", false).await;
    t.at(930);
    t.run().await;
    let calls = slack.take();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "chat.update");
    assert_eq!(calls[0].body["ts"], "1700000000.000002");
    assert!(text_of(&calls[0].body).contains("Resolved (2)"));
    assert_eq!(
        t.sent(),
        vec![
            (Some("C0FENG 1700000000.000001".into()), false),
            (Some("C0FENG 1700000000.000001".into()), true),
            (Some("C0FENG 1700000000.000002".into()), false),
            (Some("C0FENG 1700000000.000002".into()), true),
        ]
    );
    // The bot token is a header, never in the log.
    let log = serde_json::to_string(
        &t.pipeline
            .log
            .read(&EventQuery {
                after: 0,
                limit: 10_000,
                ..EventQuery::default()
            })
            .unwrap(),
    )
    .unwrap();
    assert!(!log.contains(TOKEN));
}

/// Regression guard: a message deleted in Slack (or too old to edit) must
/// not swallow the update: it is posted anew and becomes the thread.
#[tokio::test]
async fn an_edit_slack_refuses_is_posted_as_a_new_message() {
    let (slack, base) = Slack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let t = Timeline::open(&config(&base, ""), dir.path(), &clock, t0);
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    slack.take();
    *slack.refuse_updates.lock() = Some("message_not_found");
    t.at(60);
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    let methods: Vec<String> = slack.take().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["chat.update", "chat.postMessage"]);
    assert_eq!(
        t.sent().last(),
        Some(&(Some("C0FENG 1700000000.000002".into()), false))
    );
}

/// Where the route asks for no updates in place, a resolve is a message
/// of its own, and a follow-up lists every alert when asked for in full.
#[tokio::test]
async fn without_updates_in_place_every_message_is_posted() {
    let (slack, base) = Slack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let pages = "  pages: {update_in_place: false, follow_ups: full}\n";
    let t = Timeline::open(&config(&base, pages), dir.path(), &clock, t0);
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    t.at(60);
    t.alert("B", false).await;
    t.alert("C", true).await;
    t.at(330);
    t.run().await;
    let calls = slack.take();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["chat.postMessage", "chat.postMessage"]);
    let follow_up = text_of(&calls[1].body);
    assert!(follow_up.contains("A is broken"), "{follow_up}");
    assert!(follow_up.contains("C is broken"), "{follow_up}");
    assert!(
        !follow_up.contains("still firing, unchanged"),
        "{follow_up}"
    );
}

/// A Feishu open platform: issues a tenant token for the app's id and
/// secret, posts cards to a chat answering `om_N`, and edits them.
/// One call to Feishu: method, URI, `Authorization`, body.
type FeishuCall = (String, String, String, Value);

#[derive(Clone, Default)]
struct Feishu {
    calls: Arc<Mutex<Vec<FeishuCall>>>,
    posted: Arc<std::sync::atomic::AtomicUsize>,
}

async fn feishu(
    State(f): State<Feishu>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> String {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = uri.path().to_string();
    f.calls.lock().push((
        method.to_string(),
        uri.to_string(),
        auth.clone(),
        body.clone(),
    ));
    if path == "/open-apis/auth/v3/tenant_access_token/internal" {
        return if body == serde_json::json!({"app_id": "cli_a1", "app_secret": "s3cret-app"}) {
            r#"{"code":0,"msg":"ok","tenant_access_token":"t-tenant","expire":7200}"#.into()
        } else {
            r#"{"code":10014,"msg":"app secret invalid"}"#.into()
        };
    }
    if auth != "Bearer t-tenant" {
        return r#"{"code":99991663,"msg":"Invalid access token"}"#.into();
    }
    if method == axum::http::Method::POST {
        let n = 1 + f.posted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!(r#"{{"code":0,"msg":"success","data":{{"message_id":"om_{n}"}}}}"#)
    } else {
        r#"{"code":0,"msg":"success","data":{}}"#.into()
    }
}

#[tokio::test]
async fn a_feishu_app_posts_a_card_then_patches_it_across_a_restart() {
    let f = Feishu::default();
    let app = Router::new().fallback(feishu).with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = format!(
        "route:\n  receiver: ops\n  group_by: [team]\n  group_wait: 30s\n  group_interval: 5m\n\
         receivers:\n  - name: ops\n    feishu_configs:\n      - app_id: cli_a1\n        \
         app_secret: s3cret-app\n        chat_id: oc_ops\n        api_url: {base}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    let take = || std::mem::take(&mut *f.calls.lock());

    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    let calls = take();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let (method, uri, _, body) = &calls[1];
    assert_eq!(
        (method.as_str(), uri.as_str()),
        ("POST", "/open-apis/im/v1/messages?receive_id_type=chat_id")
    );
    assert_eq!(body["receive_id"], "oc_ops");
    assert_eq!(body["msg_type"], "interactive");
    let card: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
    assert_eq!(card["config"]["update_multi"], true);
    assert!(card.to_string().contains("B is broken"));

    t.at(60);
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    let calls = take();
    let (method, uri, _, body) = &calls[1];
    assert_eq!(
        (method.as_str(), uri.as_str()),
        ("PATCH", "/open-apis/im/v1/messages/om_1")
    );
    assert!(body["content"].as_str().unwrap().contains("Resolved (1)"));

    t.pipeline.close();
    drop(t);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    t.at(400);
    t.alert("A", false).await;
    t.at(630);
    t.run().await;
    let calls = take();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[1].0, "PATCH");
    assert_eq!(calls[1].1, "/open-apis/im/v1/messages/om_1");
    assert_eq!(
        t.sent(),
        vec![
            (Some("om_1".into()), false),
            (Some("om_1".into()), true),
            (Some("om_1".into()), true),
        ]
    );
}

/// `(firing, new, resolved, update_in_place)` of every `notification.due`
/// so far, by alert name.
fn dues(t: &Timeline) -> Vec<(String, String, String, bool)> {
    let events = t
        .pipeline
        .log
        .read(&EventQuery {
            after: 0,
            limit: 10_000,
            ..EventQuery::default()
        })
        .unwrap();
    let names = |fps: &[String]| {
        let mut n: Vec<String> = fps
            .iter()
            .map(|fp| {
                let fp = fenghuo::evaluate::Fingerprint::parse(fp).unwrap();
                t.pipeline.store.get(fp).unwrap().report.labels["alertname"].to_string()
            })
            .collect();
        n.sort();
        n.join(",")
    };
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::NotificationDue(n) => Some((
                names(&n.firing),
                names(&n.new),
                names(&n.resolved),
                n.update_in_place,
            )),
            _ => None,
        })
        .collect()
}

/// `resolved: fold`: a resolve while the group still fires is no page of
/// its own; the group's next page carries it, and the group's last resolve
/// is still sent.
#[tokio::test]
async fn folded_resolves_ride_with_the_next_page() {
    let yaml = "route:\n  receiver: ops\n  group_by: [team]\n  group_wait: 30s\n  \
                group_interval: 5m\n  pages: {resolved: fold, update_in_place: false}\n\
                receivers:\n  - name: ops\n";
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let t = Timeline::open(yaml, dir.path(), &clock, t0);
    let due = |f: &str, n: &str, r: &str| (f.to_string(), n.to_string(), r.to_string(), false);
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    assert_eq!(dues(&t), vec![due("A,B", "A,B", "")]);
    // B resolves: nothing at the 330s flush.
    t.at(60);
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    assert_eq!(dues(&t).len(), 1);
    // C joins: the 630s page carries C and B's resolve.
    t.at(400);
    t.alert("C", true).await;
    t.at(630);
    t.run().await;
    assert_eq!(dues(&t)[1], due("A,C", "C", "B"));
    // The last resolves close the group with a message of their own.
    t.at(700);
    t.alert("A", false).await;
    t.alert("C", false).await;
    t.at(930);
    t.run().await;
    assert_eq!(dues(&t)[2], due("", "", "A,C"));
}

/// One call to DingTalk: method, path, access token header, body.
type DingtalkCall = (String, String, String, Value);

/// A DingTalk open API: issues an access token for the app's key and
/// secret, sends robot interactive cards under the `cardBizId` the caller
/// chose (a re-send of one id keeps one card), and updates them by that id;
/// an update of a card it does not have is refused, as DingTalk does.
#[derive(Clone, Default)]
struct Dingtalk {
    calls: Arc<Mutex<Vec<DingtalkCall>>>,
    /// `cardBizId` → the card data last sent or set.
    cards: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

async fn dingtalk(
    State(d): State<Dingtalk>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    let body: Value = serde_json::from_slice(&body).unwrap();
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = uri.path().to_string();
    d.calls.lock().push((
        method.to_string(),
        path.clone(),
        token.clone(),
        body.clone(),
    ));
    if path == "/v1.0/oauth2/accessToken" {
        return if body == serde_json::json!({"appKey": "dingapp1", "appSecret": "s3cret-ding"}) {
            (
                StatusCode::OK,
                r#"{"accessToken":"dt-token","expireIn":7200}"#.into(),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                r#"{"code":"invalidClientIdOrSecret","message":"bad app"}"#.into(),
            )
        };
    }
    if token != "dt-token" {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"code":"InvalidAuthentication","message":"token invalid"}"#.into(),
        );
    }
    let id = body["cardBizId"].as_str().unwrap_or_default().to_string();
    let data = body["cardData"].as_str().unwrap_or_default().to_string();
    match (method.as_str(), path.as_str()) {
        ("POST", "/v1.0/im/v1.0/robot/interactiveCards/send") => {
            d.cards.lock().insert(id, data);
            (StatusCode::OK, r#"{"processQueryKey":"pqk-1"}"#.into())
        }
        ("PUT", "/v1.0/im/robots/interactiveCards") => match d.cards.lock().get_mut(&id) {
            Some(card) => {
                *card = data;
                (StatusCode::OK, r#"{"success":true,"result":true}"#.into())
            }
            None => (
                StatusCode::BAD_REQUEST,
                r#"{"code":"param.cardNotExist","message":"card not exist"}"#.into(),
            ),
        },
        _ => (StatusCode::NOT_FOUND, r#"{"code":"notFound"}"#.into()),
    }
}

/// A DingTalk app's robot sends the group's first page as an interactive
/// card, edits that card with what resolved (also after a restart, from the
/// id recorded in the log), and posts a new card when DingTalk no longer has
/// the old one.
#[tokio::test]
async fn a_dingtalk_app_sends_a_card_then_edits_it_across_a_restart() {
    let d = Dingtalk::default();
    let app = Router::new().fallback(dingtalk).with_state(d.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = format!(
        "route:\n  receiver: ops\n  group_by: [team]\n  group_wait: 30s\n  group_interval: 5m\n\
         receivers:\n  - name: ops\n    dingtalk_configs:\n      - app_key: dingapp1\n        \
         app_secret: s3cret-ding\n        open_conversation_id: cidOps==\n        \
         at: {{user_ids: [alice01]}}\n        api_url: {base}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    let take = || std::mem::take(&mut *d.calls.lock());

    // At 30 s the group's first page: a token, then the card.
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.at(30);
    t.run().await;
    let calls = take();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].1, "/v1.0/oauth2/accessToken");
    let (method, path, token, body) = &calls[1];
    assert_eq!(
        (method.as_str(), path.as_str(), token.as_str()),
        (
            "POST",
            "/v1.0/im/v1.0/robot/interactiveCards/send",
            "dt-token"
        )
    );
    assert_eq!(body["cardTemplateId"], "StandardCard");
    assert_eq!(body["openConversationId"], "cidOps==");
    assert_eq!(
        body["robotCode"], "dingapp1",
        "robot_code defaults to the app key"
    );
    assert_eq!(body["sendOptions"]["atAll"], false);
    assert!(
        body["sendOptions"]["atUserListJson"]
            .as_str()
            .unwrap()
            .contains("alice01")
    );
    let card: Value = serde_json::from_str(body["cardData"].as_str().unwrap()).unwrap();
    assert!(
        card["header"]["title"]["text"]
            .as_str()
            .unwrap()
            .contains("FIRING:2")
    );
    assert!(
        card["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("B is broken")
    );
    let card_id = body["cardBizId"].as_str().unwrap().to_string();
    assert!(card_id.starts_with("fenghuo-"), "{card_id}");

    // B resolves at 60 s; at the next flush (330 s) the card is edited.
    t.at(60);
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    let calls = take();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let (method, path, _, body) = &calls[1];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("PUT", "/v1.0/im/robots/interactiveCards")
    );
    assert_eq!(body["cardBizId"], card_id.as_str());
    assert!(body["cardData"].as_str().unwrap().contains("Resolved (1)"));
    assert!(d.cards.lock()[&card_id].contains("Resolved (1)"));

    // Restart: the next update still edits the recorded card.
    t.pipeline.close();
    drop(t);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    t.at(400);
    t.alert("A", false).await;
    t.at(630);
    t.run().await;
    let calls = take();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[1].0, "PUT");
    assert_eq!(calls[1].3["cardBizId"], card_id.as_str());

    // The card is gone (deleted in DingTalk); C and D fire, C resolves:
    // the edit is refused and a new card is sent instead, and recorded.
    d.cards.lock().clear();
    t.at(700);
    t.alert("C", true).await;
    t.alert("D", true).await;
    t.at(730);
    t.run().await;
    let first = take();
    let new_id = first.last().unwrap().3["cardBizId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, card_id);
    d.cards.lock().clear();
    t.at(760);
    t.alert("C", false).await;
    t.at(1030);
    t.run().await;
    let calls: Vec<(String, String)> = take().into_iter().map(|c| (c.0, c.1)).collect();
    assert!(
        calls.contains(&("PUT".into(), "/v1.0/im/robots/interactiveCards".into()))
            && calls.contains(&(
                "POST".into(),
                "/v1.0/im/v1.0/robot/interactiveCards/send".into()
            )),
        "a refused edit is sent as a new card: {calls:#?}"
    );
    let sent = t.sent();
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert_eq!(sent[0], (Some(card_id.clone()), false));
    assert_eq!(sent[1], (Some(card_id.clone()), true));
    assert_eq!(sent[2], (Some(card_id.clone()), true));
    assert_eq!(sent[3], (Some(new_id), false));
    assert!(!sent[4].1, "the refused edit went out as a new card");
}

/// `resolved: digest`: what resolves is decided at the group's flush (the
/// group moves on) but sent in the receiver's hourly digest, one message
/// for every group that resolved in the hour, also across a restart; a
/// page of the group before the digest carries its resolves instead.
#[tokio::test]
async fn resolves_wait_for_the_hourly_digest() {
    let hook = Arc::new(Mutex::new(Vec::<Value>::new()));
    let recorder = hook.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let recorder = recorder.clone();
            async move {
                recorder.lock().push(serde_json::from_slice(&body).unwrap());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = format!(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 30s\n  \
         group_interval: 5m\n  pages: {{resolved: digest, digest_interval: 1h}}\n\
         receivers:\n  - name: ops\n    webhook_configs:\n      - url: {base}/hook\n"
    );
    let dir = tempfile::tempdir().unwrap();
    // 08:00 UTC: the digest windows end on the hour.
    let t0: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    let take = || std::mem::take(&mut *hook.lock());
    let statuses = |bodies: &[Value]| -> Vec<String> {
        bodies
            .iter()
            .map(|b| {
                let mut names: Vec<String> = b["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        format!(
                            "{}:{}",
                            a["labels"]["alertname"].as_str().unwrap(),
                            a["status"].as_str().unwrap()
                        )
                    })
                    .collect();
                names.sort();
                names.join(" ")
            })
            .collect()
    };

    // 0 s: A, B and C fire, each its own group; paged at 30 s.
    t.alert("A", true).await;
    t.alert("B", true).await;
    t.alert("C", true).await;
    t.at(30);
    t.run().await;
    assert_eq!(take().len(), 3);

    // A and B resolve; their flushes at 330 s decide, and send nothing.
    t.at(60);
    t.alert("A", false).await;
    t.alert("B", false).await;
    t.at(330);
    t.run().await;
    assert_eq!(take(), Vec::<Value>::new(), "resolves wait for the digest");
    let held = dues(&t);
    assert_eq!(held.len(), 5, "{held:?}");

    // A restart before the hour: the held resolves are still owed.
    t.pipeline.close();
    drop(t);
    let t = Timeline::open(&yaml, dir.path(), &clock, t0);
    t.at(1800);
    t.run().await;
    assert_eq!(take(), Vec::<Value>::new());

    // 09:00: one digest with both groups' resolves.
    t.at(3600);
    t.run().await;
    let sent = take();
    assert_eq!(statuses(&sent), vec!["A:resolved B:resolved"], "{sent:#?}");

    // C resolves at 10 min past 9 (held for 10:00), then fires again: the
    // group's page at its next flush replaces the held resolve, and the
    // 10:00 digest has nothing left to say about C.
    t.at(3600 + 600);
    t.alert("C", false).await;
    t.at(3600 + 630);
    t.run().await;
    assert_eq!(take(), Vec::<Value>::new());
    t.at(3600 + 700);
    t.alert("C", true).await;
    t.at(3600 + 930);
    t.run().await;
    assert_eq!(statuses(&take()), vec!["C:firing"]);
    t.at(7200);
    t.run().await;
    assert_eq!(
        take(),
        Vec::<Value>::new(),
        "nothing stale in the next digest"
    );

    // C resolves for good: alone in its window, the digest is C's message.
    t.at(7300);
    t.alert("C", false).await;
    t.at(7500);
    t.run().await;
    assert_eq!(take(), Vec::<Value>::new());
    t.at(3 * 3600);
    t.run().await;
    assert_eq!(statuses(&take()), vec!["C:resolved"]);
}
