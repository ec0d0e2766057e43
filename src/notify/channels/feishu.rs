//! Feishu / Lark (飞书) custom bots (自定义机器人), interactive cards.
//!
//! ```yaml
//! feishu_configs:
//!   - webhook_url: { file: /run/secrets/feishu-url }  # …/open-apis/bot/v2/hook/XXX
//!     secret: { env: FEISHU_SECRET }                   # when 签名校验 is on
//!     template: feishu-ops.json                        # default: feishu.json
//! ```
//!
//! The template renders the `card` object. If what it renders is not a JSON
//! object, or the request would pass Feishu's 20 KB limit, the message goes
//! out as plain text instead and the delivery records why
//! ([`Rendered::fallback`]): a page is never lost to a template.
//!
//! With `secret`, the body carries `timestamp` (seconds, from the clock, as
//! a string) and `sign` = base64(HMAC-SHA256(key = `"<timestamp>\n<secret>"`,
//! message = empty)), as Feishu documents: the key and message roles are
//! the reverse of DingTalk's.
//!
//! Feishu answers 200 with `{"code": 0}` (older: `{"StatusCode": 0}`); any
//! other code is an error, retried only when it is a frequency limit
//! (11232, 9499, 99991400).
//!
//! **Through an app** (`app_id`, `app_secret`, `chat_id` instead of
//! `webhook_url`; `api_url` defaults to `https://open.feishu.cn`, Lark's is
//! `https://open.larksuite.com`), each send first gets a
//! `tenant_access_token` (`POST /open-apis/auth/v3/tenant_access_token/internal`),
//! then posts the card to the chat (`POST
//! /open-apis/im/v1/messages?receive_id_type=chat_id`, the card as the
//! `content` string, `config.update_multi` set so an edit shows to
//! everyone). Feishu answers the `message_id`, recorded with the delivery;
//! a group's update in place (`update_in_place`, default true) edits it
//! with `PATCH /open-apis/im/v1/messages/{message_id}`. A custom bot's
//! webhook cannot edit: every message is new.

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

/// Feishu refuses request bodies over 20 KB.
pub const MAX_BODY_BYTES: usize = 20_000;
/// Codes Feishu answers when a bot sends too often.
pub const RATE_LIMITED: [i64; 3] = [11232, 9499, 99991400];
/// Feishu's open platform.
pub const DEFAULT_API_URL: &str = "https://open.feishu.cn";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    #[serde(default = "common::yes")]
    pub send_resolved: bool,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    /// The bot's signing secret.
    pub secret: Option<Secret>,
    pub secret_file: Option<String>,
    /// A tera template rendering the card (JSON).
    pub template: Option<String>,
    /// Send through an app (its id and secret) to a chat, instead of a
    /// custom bot's webhook: messages can then be edited.
    pub app_id: Option<String>,
    pub app_secret: Option<Secret>,
    pub app_secret_file: Option<String>,
    /// The chat (`oc_…`) the app posts to.
    pub chat_id: Option<String>,
    /// The open platform's base URL (with `app_id`).
    pub api_url: Option<String>,
    /// Edit the group's last card for an update in place (with `app_id`;
    /// default true).
    #[serde(default = "common::yes")]
    pub update_in_place: bool,
}

/// The app side of a Feishu integration.
#[derive(Debug)]
struct FeishuApp {
    app_id: String,
    app_secret: Secret,
    chat_id: String,
    /// Without a trailing `/`.
    api_url: String,
    update_in_place: bool,
}

#[derive(Debug)]
pub struct FeishuNotifier {
    url: Secret,
    app: Option<FeishuApp>,
    secret: Option<Secret>,
    send_resolved: bool,
    template: Option<String>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: FeishuConfig = parse(value)?;
    let app = match &config.app_id {
        None => None,
        Some(app_id) => {
            if config.webhook_url.is_some() || config.webhook_url_file.is_some() {
                return Err(
                    "webhook_url: at most one of webhook_url (a custom bot) and \
                            app_id (an app) must be configured"
                        .into(),
                );
            }
            if app_id.is_empty() {
                return Err("app_id: is empty".into());
            }
            let app_secret = secret::one_of(
                "app_secret",
                config.app_secret.clone(),
                config.app_secret_file.as_deref(),
            )?
            .filter(|s| !s.is_empty())
            .ok_or("app_secret: required with app_id (or app_secret_file)")?;
            let chat_id = config
                .chat_id
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or("chat_id: required with app_id (the chat the app posts to)")?;
            let api_url = config
                .api_url
                .clone()
                .unwrap_or_else(|| DEFAULT_API_URL.to_string());
            common::check_url("api_url", &Secret::new(api_url.clone()))?;
            Some(FeishuApp {
                app_id: app_id.clone(),
                app_secret,
                chat_id,
                api_url: api_url.trim_end_matches('/').to_string(),
                update_in_place: config.update_in_place,
            })
        }
    };
    let url = match &app {
        Some(app) => Secret::new(format!(
            "{}/open-apis/im/v1/messages?receive_id_type=chat_id",
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
    let template = common::load_template(env, config.template.as_deref())?;
    Ok(Arc::new(FeishuNotifier {
        url,
        app,
        secret,
        send_resolved: config.send_resolved,
        template,
        http: env.http.clone(),
    }))
}

/// Feishu's signature: base64(HMAC-SHA256(key = `"<timestamp_s>\n<secret>"`,
/// message = empty)).
pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    common::base64(&common::hmac_sha256(key.as_bytes(), b""))
}

fn text_body(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert("msg_type".into(), "text".into());
    body.insert("content".into(), serde_json::json!({ "text": text }));
    body
}

impl Notifier for FeishuNotifier {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, templates: &Templates, now: DateTime<Utc>) -> Rendered {
        let (card, mut fallback) = templates.render(self.template.as_deref(), "feishu.json", msg);
        let mut add_reason = |why: String| {
            fallback = Some(match fallback.take() {
                Some(earlier) => format!("{earlier}; {why}"),
                None => why,
            });
        };
        let mut body = match serde_json::from_str::<serde_json::Value>(&card) {
            Ok(card @ serde_json::Value::Object(_)) => {
                let mut body = serde_json::Map::new();
                body.insert("msg_type".into(), "interactive".into());
                body.insert("card".into(), card);
                body
            }
            Ok(_) => {
                add_reason(
                    "the Feishu card template did not render a JSON object; sent as text".into(),
                );
                text_body(&common::plain_text(msg))
            }
            Err(e) => {
                add_reason(format!(
                    "the Feishu card template did not render JSON ({e}); sent as text"
                ));
                text_body(&common::plain_text(msg))
            }
        };
        // Room for the signature fields and some slack.
        let limit = MAX_BODY_BYTES - 200;
        let size = serde_json::to_vec(&body).map(|b| b.len()).unwrap_or(0);
        if size > limit {
            add_reason(format!(
                "the Feishu message is {size} bytes, over the 20 KB limit; sent as text"
            ));
            let text = common::plain_text(msg);
            // JSON escaping can grow the text up to 6x; cut on the safe side.
            let mut max = limit - 64;
            body = loop {
                let candidate = text_body(&common::truncate_utf8(&text, max, "\n…(truncated)"));
                let len = serde_json::to_vec(&candidate).map(|b| b.len()).unwrap_or(0);
                if len <= limit || max < 256 {
                    break candidate;
                }
                max = max * 3 / 4;
            };
        }
        if let Some(app) = &self.app {
            body = app_message(app, body);
        } else if let Some(secret) = &self.secret {
            let timestamp = now.timestamp();
            body.insert("timestamp".into(), timestamp.to_string().into());
            body.insert("sign".into(), sign(secret.expose(), timestamp).into());
        }
        Rendered {
            payload: common::json_post(
                self.url.expose().trim().to_string(),
                Vec::new(),
                &serde_json::Value::Object(body),
            ),
            fallback,
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let Some(app) = &self.app else {
            return Box::pin(http::post(
                &self.http,
                payload,
                Some(|body| http::im_error_code(body, &RATE_LIMITED)),
            ));
        };
        Box::pin(async move {
            let token = tenant_token(&self.http, app).await?;
            let payload = with_token(payload.clone(), &token);
            open_api(&self.http, &payload, reqwest::Method::POST).await
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
            let edit = edit_payload(app, payload, message_ref)?;
            let token = tenant_token(&self.http, app).await?;
            let mut delivered = open_api(
                &self.http,
                &with_token(edit, &token),
                reqwest::Method::PATCH,
            )
            .await?;
            delivered.message_ref = Some(message_ref.to_string());
            Ok(delivered)
        })
    }
}

/// The bot-webhook body as an app's message to the chat: the card (made
/// editable for everyone) or the text, as the `content` string.
fn app_message(
    app: &FeishuApp,
    mut body: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let msg_type = body
        .get("msg_type")
        .and_then(|t| t.as_str())
        .unwrap_or("text")
        .to_string();
    let content = if msg_type == "interactive" {
        let mut card = body.remove("card").unwrap_or_default();
        if let Some(card) = card.as_object_mut() {
            let config = card
                .entry("config")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(config) = config.as_object_mut() {
                config.insert("update_multi".into(), true.into());
            }
        }
        card
    } else {
        body.remove("content").unwrap_or_default()
    };
    let mut out = serde_json::Map::new();
    out.insert("receive_id".into(), app.chat_id.clone().into());
    out.insert("msg_type".into(), msg_type.into());
    out.insert("content".into(), content.to_string().into());
    out
}

/// The `PATCH` of a rendered app message onto `message_id`: cards only
/// (Feishu edits no other kind; the outbox then posts anew).
fn edit_payload(
    app: &FeishuApp,
    payload: &Payload,
    message_id: &str,
) -> Result<Payload, DeliveryError> {
    let Payload::Http { body, .. } = payload else {
        return Err(common::unsendable("payload is not an HTTP request"));
    };
    let body: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| common::unsendable("the Feishu body is not JSON"))?;
    if body["msg_type"] != "interactive" {
        return Err(common::unsendable(
            "only cards can be edited; sent as a new message",
        ));
    }
    if message_id.is_empty()
        || !message_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(common::unsendable(
            "the recorded Feishu message id is not one",
        ));
    }
    Ok(common::json_post(
        format!("{}/open-apis/im/v1/messages/{message_id}", app.api_url),
        Vec::new(),
        &serde_json::json!({ "content": body["content"] }),
    ))
}

/// A `tenant_access_token` for the app. Fetched per send: a send is rare,
/// and a cached token would need the wall clock to expire it.
async fn tenant_token(client: &reqwest::Client, app: &FeishuApp) -> Result<Secret, DeliveryError> {
    let request = common::json_post(
        format!(
            "{}/open-apis/auth/v3/tenant_access_token/internal",
            app.api_url
        ),
        Vec::new(),
        &serde_json::json!({ "app_id": app.app_id, "app_secret": app.app_secret.expose() }),
    );
    let (_, body) = http::post_reading(
        client,
        &request,
        reqwest::Method::POST,
        Some(|body| http::im_error_code(body, &RATE_LIMITED)),
    )
    .await
    .map_err(|mut e| {
        e.reason = format!("getting the app's tenant_access_token: {}", e.reason);
        e
    })?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    answer["tenant_access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| common::unsendable("Feishu answered no tenant_access_token"))
}

/// An open-platform call; the message id Feishu answers (`data.message_id`).
async fn open_api(
    client: &reqwest::Client,
    payload: &Payload,
    method: reqwest::Method,
) -> Result<Delivered, DeliveryError> {
    let (mut delivered, body) = http::post_reading(
        client,
        payload,
        method,
        Some(|body| http::im_error_code(body, &RATE_LIMITED)),
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    delivered.message_ref = answer["data"]["message_id"].as_str().map(str::to_string);
    Ok(delivered)
}

fn with_token(payload: Payload, token: &Secret) -> Payload {
    common::with_header(
        payload,
        "Authorization",
        format!("Bearer {}", token.expose()),
    )
}
