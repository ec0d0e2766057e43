//! DingTalk (钉钉) custom group robots (自定义机器人), markdown messages.
//!
//! ```yaml
//! dingtalk_configs:
//!   - webhook_url: { file: /run/secrets/dingtalk-url }  # …/robot/send?access_token=XXX
//!     secret: { env: DINGTALK_SECRET }                   # SEC…, when 加签 is on
//!     at: { mobiles: ["13800000000"], user_ids: [], all: false }
//!     template: dingtalk-ops.md                          # default: dingtalk.md
//! ```
//!
//! With `secret`, each request carries `timestamp` (milliseconds, from the
//! clock) and `sign` = url-encoded base64(HMAC-SHA256(key = secret,
//! message = `"<timestamp>\n<secret>"`)) in the query, as DingTalk documents.
//! DingTalk only notifies a mentioned person whose `@mobile` / `@userid` is
//! also in the text, so the mentions are appended to it.
//!
//! DingTalk answers 200 with `{"errcode": 0}`; any other code is an error,
//! retried only for 130101 (sending too fast).
//!
//! **Through an app's robot** (`app_key`, `app_secret`,
//! `open_conversation_id` instead of `webhook_url`; `robot_code` defaults
//! to the app key, as for an in-house app's robot; `api_url` defaults to
//! `https://api.dingtalk.com`), a message is an interactive card
//! (互动卡片, the `StandardCard` template: the title as its header, the
//! rendered markdown as its body) and can be edited:
//!
//! 1. each call first gets an access token (`POST /v1.0/oauth2/accessToken`
//!    with `appKey` and `appSecret`), sent as `x-acs-dingtalk-access-token`;
//! 2. a message is `POST /v1.0/im/v1.0/robot/interactiveCards/send` to the
//!    group conversation, under a `cardBizId` Fenghuo chooses: derived
//!    from the notification's `seq`, the receiver and the conversation, so
//!    a retried send names the same card and DingTalk keeps one. That id
//!    is recorded with the delivery;
//! 3. a group's update in place (`update_in_place`, default true) is `PUT
//!    /v1.0/im/robots/interactiveCards` with that `cardBizId` and the new
//!    card data.
//!
//! The open API answers errors as HTTP 4xx/5xx with `{"code", "message"}`;
//! a refused edit (the card is gone) makes the outbox post a new card.
//! Cards mention people by DingTalk user id (`at.user_ids` and escalation
//! recipients' `dingtalk_user`); mobiles cannot be mentioned on a card.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::common;
use super::{http, parse};
use crate::notify::config::BuildEnv;
use crate::notify::secret;
use crate::notify::{
    Delivered, DeliveryError, Message, Notifier, Payload, Rendered, Secret, Templates,
};

/// DingTalk refuses messages over 20000 bytes; the text is cut before
/// that, leaving room for the title and the JSON around it.
pub const MAX_TEXT_BYTES: usize = 18_000;
/// `errcode` of "send too fast" (at most 20 messages a minute per robot).
pub const RATE_LIMITED: i64 = 130101;
/// DingTalk's open API.
pub const DEFAULT_API_URL: &str = "https://api.dingtalk.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkConfig {
    #[serde(default = "common::yes")]
    pub send_resolved: bool,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    /// The robot's signing secret (`SEC…`).
    pub secret: Option<Secret>,
    pub secret_file: Option<String>,
    #[serde(default)]
    pub at: At,
    /// A tera template rendering the markdown text.
    pub template: Option<String>,
    /// Send interactive cards through an app's robot (its key and secret)
    /// to a group conversation, instead of a custom robot's webhook:
    /// messages can then be edited.
    pub app_key: Option<String>,
    pub app_secret: Option<Secret>,
    pub app_secret_file: Option<String>,
    /// The robot's code (default: the app key).
    pub robot_code: Option<String>,
    /// The group conversation (`cid…`) the robot posts to.
    pub open_conversation_id: Option<String>,
    /// The open API's base URL (with `app_key`).
    pub api_url: Option<String>,
    /// Edit the group's last card for an update in place (with `app_key`;
    /// default true).
    #[serde(default = "common::yes")]
    pub update_in_place: bool,
}

/// The app side of a DingTalk integration.
#[derive(Debug)]
struct DingtalkApp {
    app_key: String,
    app_secret: Secret,
    robot_code: String,
    open_conversation_id: String,
    /// Without a trailing `/`.
    api_url: String,
    update_in_place: bool,
}

/// Whom the message mentions.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    #[serde(default)]
    pub mobiles: Vec<String>,
    #[serde(default)]
    pub user_ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug)]
pub struct DingtalkNotifier {
    url: Secret,
    app: Option<DingtalkApp>,
    secret: Option<Secret>,
    send_resolved: bool,
    at: At,
    template: Option<String>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: DingtalkConfig = parse(value)?;
    let app = app_of(&config)?;
    let url = match &app {
        Some(app) => Secret::new(format!(
            "{}/v1.0/im/v1.0/robot/interactiveCards/send",
            app.api_url
        )),
        None => common::required_url(
            "webhook_url",
            config.webhook_url,
            config.webhook_url_file.as_deref(),
        )?,
    };
    let secret = secret::one_of("secret", config.secret, config.secret_file.as_deref())?;
    if secret.as_ref().is_some_and(|s| s.is_empty()) {
        return Err("secret: is empty".into());
    }
    for (i, m) in config.at.mobiles.iter().enumerate() {
        if m.is_empty() || m.contains(char::is_whitespace) {
            return Err(format!(
                "at.mobiles[{i}]: must be a phone number without spaces"
            ));
        }
    }
    let template = common::load_template(env, config.template.as_deref())?;
    if app.is_some() && !config.at.mobiles.is_empty() {
        return Err(
            "at.mobiles: a card mentions people by user id; use at.user_ids \
                    with app_key"
                .into(),
        );
    }
    if app.is_some() && secret.is_some() {
        return Err("secret: signs a custom robot's webhook; an app's robot \
                    (app_key) authenticates with app_secret"
            .into());
    }
    Ok(Arc::new(DingtalkNotifier {
        url,
        app,
        secret,
        send_resolved: config.send_resolved,
        at: config.at,
        template,
        http: env.http.clone(),
    }))
}

/// The app's robot, when `app_key` is set: every field it needs, checked.
fn app_of(config: &DingtalkConfig) -> Result<Option<DingtalkApp>, String> {
    let Some(app_key) = &config.app_key else {
        for (name, set) in [
            (
                "app_secret",
                config.app_secret.is_some() || config.app_secret_file.is_some(),
            ),
            ("robot_code", config.robot_code.is_some()),
            (
                "open_conversation_id",
                config.open_conversation_id.is_some(),
            ),
            ("api_url", config.api_url.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name}: only with app_key (sending through an app's robot)"
                ));
            }
        }
        return Ok(None);
    };
    if config.webhook_url.is_some() || config.webhook_url_file.is_some() {
        return Err(
            "webhook_url: at most one of webhook_url (a custom robot) and app_key \
             (an app's robot) must be configured"
                .into(),
        );
    }
    if app_key.trim().is_empty() {
        return Err("app_key: is empty".into());
    }
    let app_secret = secret::one_of(
        "app_secret",
        config.app_secret.clone(),
        config.app_secret_file.as_deref(),
    )?
    .filter(|s| !s.is_empty())
    .ok_or("app_secret: required with app_key (or app_secret_file)")?;
    let open_conversation_id = config
        .open_conversation_id
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or("open_conversation_id: required with app_key (the group the robot posts to)")?;
    let robot_code = match &config.robot_code {
        Some(code) if code.trim().is_empty() => return Err("robot_code: is empty".into()),
        Some(code) => code.clone(),
        None => app_key.clone(),
    };
    let api_url = config
        .api_url
        .clone()
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    common::check_url("api_url", &Secret::new(api_url.clone()))?;
    Ok(Some(DingtalkApp {
        app_key: app_key.clone(),
        app_secret,
        robot_code,
        open_conversation_id,
        api_url: api_url.trim_end_matches('/').to_string(),
        update_in_place: config.update_in_place,
    }))
}

/// DingTalk's signature: base64(HMAC-SHA256(key = secret, message =
/// `"<timestamp_ms>\n<secret>"`)), before url-encoding.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let message = format!("{timestamp_ms}\n{secret}");
    common::base64(&common::hmac_sha256(secret.as_bytes(), message.as_bytes()))
}

impl DingtalkNotifier {
    fn url(&self, now: DateTime<Utc>) -> String {
        let url = self.url.expose().trim();
        let Some(secret) = &self.secret else {
            return url.to_string();
        };
        let timestamp = now.timestamp_millis();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!(
            "{url}{sep}timestamp={timestamp}&sign={}",
            common::percent_encode(&sign(secret.expose(), timestamp))
        )
    }

    /// Whom the message mentions: the configured `at`, and the people an
    /// escalation page is for (by mobile, else by user id).
    fn at(&self, msg: &Message) -> (Vec<String>, Vec<String>) {
        let mut mobiles = self.at.mobiles.clone();
        let mut user_ids = self.at.user_ids.clone();
        for p in &msg.to {
            if let Some(m) = p.mentions.get("dingtalk_mobile") {
                if !mobiles.contains(m) {
                    mobiles.push(m.clone());
                }
            } else if let Some(u) = p.mentions.get("dingtalk_user")
                && !user_ids.contains(u)
            {
                user_ids.push(u.clone());
            }
        }
        (mobiles, user_ids)
    }
}

impl Notifier for DingtalkNotifier {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, templates: &Templates, now: DateTime<Utc>) -> Rendered {
        let (text, fallback) = templates.render(self.template.as_deref(), "dingtalk.md", msg);
        let (mobiles, user_ids) = self.at(msg);
        let mentions = mobiles
            .iter()
            .chain(&user_ids)
            .map(|who| format!("@{who}"))
            .collect::<Vec<_>>()
            .join(" ");
        let room = MAX_TEXT_BYTES.saturating_sub(mentions.len() + 2);
        let mut text = common::truncate_utf8(text.trim_end(), room, "\n\n…(truncated)");
        if text.is_empty() {
            text = common::plain_text(msg);
        }
        if !mentions.is_empty() {
            text.push_str("\n\n");
            text.push_str(&mentions);
        }
        if let Some(app) = &self.app {
            return Rendered {
                payload: common::json_post(
                    self.url.expose().to_string(),
                    Vec::new(),
                    &card_message(app, msg, &text, &user_ids, self.at.all),
                ),
                fallback,
            };
        }
        let body = serde_json::json!({
            "msgtype": "markdown",
            "markdown": { "title": msg.title, "text": text },
            "at": {
                "atMobiles": mobiles,
                "atUserIds": user_ids,
                "isAtAll": self.at.all,
            },
        });
        Rendered {
            payload: common::json_post(self.url(now), Vec::new(), &body),
            fallback,
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let Some(app) = &self.app else {
            return Box::pin(http::post(
                &self.http,
                payload,
                Some(|body| http::im_error_code(body, &[RATE_LIMITED])),
            ));
        };
        Box::pin(async move {
            let card = card_biz_id(payload)?;
            let token = access_token(&self.http, app).await?;
            let (mut delivered, _) = http::post_reading(
                &self.http,
                &with_token(payload.clone(), &token),
                reqwest::Method::POST,
                Some(open_api_error),
            )
            .await?;
            delivered.message_ref = Some(card);
            Ok(delivered)
        })
    }

    fn updates_in_place(&self) -> bool {
        self.app.as_ref().is_some_and(|a| a.update_in_place)
    }

    fn send_update<'a>(
        &'a self,
        payload: &'a Payload,
        message_ref: &'a str,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let Some(app) = &self.app else {
            return self.send(payload);
        };
        Box::pin(async move {
            let edit = update_payload(app, payload, message_ref)?;
            let token = access_token(&self.http, app).await?;
            let (mut delivered, _) = http::post_reading(
                &self.http,
                &with_token(edit, &token),
                reqwest::Method::PUT,
                Some(open_api_error),
            )
            .await?;
            delivered.message_ref = Some(message_ref.to_string());
            Ok(delivered)
        })
    }
}

/// The robot's card message: the `StandardCard` template with the title as
/// its header and the markdown as its one content block, under a
/// `cardBizId` derived from what is being delivered (the first due `seq`,
/// the receiver, the conversation), so every retry names the same card.
fn card_message(
    app: &DingtalkApp,
    msg: &Message,
    text: &str,
    user_ids: &[String],
    all: bool,
) -> serde_json::Value {
    let seq = msg.due_seqs.first().copied().unwrap_or_default();
    let digest = common::hmac_sha256(
        app.open_conversation_id.as_bytes(),
        format!("{}\n{}", msg.receiver, msg.group_key).as_bytes(),
    );
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let at_users: Vec<serde_json::Value> = user_ids
        .iter()
        .map(|u| serde_json::json!({ "nickName": u, "userId": u }))
        .collect();
    serde_json::json!({
        "cardTemplateId": "StandardCard",
        "openConversationId": app.open_conversation_id,
        "robotCode": app.robot_code,
        "cardBizId": format!("fenghuo-{seq}-{tag}"),
        "cardData": card_data(&msg.title, text),
        "sendOptions": {
            "atUserListJson": serde_json::Value::from(at_users).to_string(),
            "atAll": all,
        },
    })
}

/// `cardData` of a `StandardCard`, as the JSON string the API takes.
fn card_data(title: &str, text: &str) -> String {
    serde_json::json!({
        "config": { "autoLayout": true, "enableForward": true },
        "header": { "title": { "type": "text", "text": title } },
        "contents": [{ "type": "markdown", "text": text, "id": "fenghuo_text" }],
    })
    .to_string()
}

/// The `cardBizId` a rendered card message names.
fn card_biz_id(payload: &Payload) -> Result<String, DeliveryError> {
    let Payload::Http { body, .. } = payload else {
        return Err(common::unsendable("payload is not an HTTP request"));
    };
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| common::unsendable("the DingTalk card is not JSON"))?;
    body["cardBizId"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| common::unsendable("the DingTalk card has no cardBizId"))
}

/// The `PUT` of a rendered card's data onto the card `card_biz_id`.
fn update_payload(
    app: &DingtalkApp,
    payload: &Payload,
    card_biz_id: &str,
) -> Result<Payload, DeliveryError> {
    let Payload::Http { body, .. } = payload else {
        return Err(common::unsendable("payload is not an HTTP request"));
    };
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| common::unsendable("the DingTalk card is not JSON"))?;
    if card_biz_id.is_empty()
        || !card_biz_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(common::unsendable(
            "the recorded DingTalk card id is not one",
        ));
    }
    Ok(common::json_post(
        format!("{}/v1.0/im/robots/interactiveCards", app.api_url),
        Vec::new(),
        &serde_json::json!({
            "cardBizId": card_biz_id,
            "cardData": body["cardData"],
        }),
    ))
}

/// The open API answers success as 2xx; a 2xx body with `"success":
/// false` (some methods say so instead of a status) is an error too.
fn open_api_error(body: &[u8]) -> Result<(), DeliveryError> {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if answer["success"] == false {
        let code = answer["code"].as_str().unwrap_or("not successful");
        return Err(DeliveryError {
            reason: format!("DingTalk error: {}", common::truncate_chars(code, 100)),
            class: "rejected",
            status: None,
            retryable: false,
            retry_after: None,
        });
    }
    Ok(())
}

/// An access token for the app. Fetched per call: a send is rare, and a
/// cached token would need the wall clock to expire it.
async fn access_token(
    client: &reqwest::Client,
    app: &DingtalkApp,
) -> Result<Secret, DeliveryError> {
    let request = common::json_post(
        format!("{}/v1.0/oauth2/accessToken", app.api_url),
        Vec::new(),
        &serde_json::json!({ "appKey": app.app_key, "appSecret": app.app_secret.expose() }),
    );
    let (_, body) = http::post_reading(client, &request, reqwest::Method::POST, None)
        .await
        .map_err(|mut e| {
            e.reason = format!("getting the app's access token: {}", e.reason);
            e
        })?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    answer["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| common::unsendable("DingTalk answered no accessToken"))
}

fn with_token(payload: Payload, token: &Secret) -> Payload {
    common::with_header(
        payload,
        "x-acs-dingtalk-access-token",
        token.expose().to_string(),
    )
}
