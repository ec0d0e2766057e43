//! Slack (and Slack-compatible) incoming webhooks: Alertmanager's
//! `slack_configs`.
//!
//! The body is rendered whole by the `slack.json` template (or the
//! receiver's own `template: FILE`); `channel`, `username`, `icon_emoji`,
//! `icon_url` and `link_names`, when configured, are set over what the
//! template wrote.
//!
//! Accepted from Alertmanager: `api_url` / `api_url_file` (else
//! `global.slack_api_url` / `global.slack_api_url_file`), `send_resolved`
//! (default `false`, as in Alertmanager), `channel`, `username`,
//! `icon_emoji`, `icon_url`, `link_names`, and `http_config` credentials
//! (see `common::HttpConfig`: client settings such as `tls_config`
//! or `proxy_url` are refused).
//!
//! Refused with a message: Alertmanager's Go-template message fields
//! (`title`, `text`, `color`, `fields`, `actions`, …). Fenghuo renders the
//! message with tera; dropping them silently would change what on-call
//! reads, so the config names them and points to `template:`.
//!
//! Slack answers 200 `ok`; errors are 4xx with a word (`invalid_payload`,
//! `channel_not_found`), not retried; 429 carries `Retry-After`.
//!
//! **With a Slack app's bot token** (`app_token` / `app_token_file`, as
//! Alertmanager 0.28), messages go through the Web API instead:
//! `chat.postMessage` at `app_url` (default
//! `https://slack.com/api/chat.postMessage`) to `channel` (required), with
//! the token as `Authorization: Bearer`. Slack answers 200 with `{"ok":
//! true, "channel": "C…", "ts": "…"}`; that `channel ts` is recorded with
//! the delivery, and a group's update in place (`update_in_place`, default
//! true) calls `chat.update` (beside `chat.postMessage` in `app_url`) with
//! them. `{"ok": false, "error": …}` is an error, retried only for
//! `ratelimited`; an edit refused (`message_not_found`,
//! `cant_update_message`, `edit_window_closed`) makes the outbox post a new
//! message. An incoming webhook cannot edit what it posted: every message
//! is new.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::common::{self, HttpConfig};
use super::{http, parse};
use crate::notify::config::BuildEnv;
use crate::notify::{
    Delivered, DeliveryError, Message, Notifier, Payload, Rendered, Secret, Templates,
};

/// One `slack_configs` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub send_resolved: bool,
    pub api_url: Option<Secret>,
    pub api_url_file: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub link_names: Option<bool>,
    /// A Slack app's bot token (`xoxb-…`): send through `chat.postMessage`
    /// and edit with `chat.update` instead of an incoming webhook.
    pub app_token: Option<Secret>,
    pub app_token_file: Option<String>,
    /// The Web API's `chat.postMessage` URL (with `app_token`).
    pub app_url: Option<String>,
    /// Edit the group's last message for an update in place (with
    /// `app_token`; default true).
    #[serde(default = "common::yes")]
    pub update_in_place: bool,
    /// A tera template rendering the whole webhook body (JSON).
    pub template: Option<String>,
    #[serde(default)]
    pub(crate) http_config: HttpConfig,
    // Alertmanager's Go-template message fields: refused in `build`.
    title: Option<serde_json::Value>,
    title_link: Option<serde_json::Value>,
    pretext: Option<serde_json::Value>,
    text: Option<serde_json::Value>,
    fields: Option<serde_json::Value>,
    short_fields: Option<serde_json::Value>,
    footer: Option<serde_json::Value>,
    fallback: Option<serde_json::Value>,
    callback_id: Option<serde_json::Value>,
    color: Option<serde_json::Value>,
    image_url: Option<serde_json::Value>,
    thumb_url: Option<serde_json::Value>,
    mrkdwn_in: Option<serde_json::Value>,
    actions: Option<serde_json::Value>,
}

impl SlackConfig {
    fn refused_field(&self) -> Option<&'static str> {
        [
            ("title", &self.title),
            ("title_link", &self.title_link),
            ("pretext", &self.pretext),
            ("text", &self.text),
            ("fields", &self.fields),
            ("short_fields", &self.short_fields),
            ("footer", &self.footer),
            ("fallback", &self.fallback),
            ("callback_id", &self.callback_id),
            ("color", &self.color),
            ("image_url", &self.image_url),
            ("thumb_url", &self.thumb_url),
            ("mrkdwn_in", &self.mrkdwn_in),
            ("actions", &self.actions),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some())
        .map(|(name, _)| name)
    }
}

/// Slack's Web API `chat.postMessage`.
pub const DEFAULT_APP_URL: &str = "https://slack.com/api/chat.postMessage";

#[derive(Debug)]
pub struct SlackNotifier {
    url: Secret,
    /// Through the Web API with a bot token: messages can be edited.
    app: Option<SlackApp>,
    send_resolved: bool,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    link_names: Option<bool>,
    template: Option<String>,
    headers: Vec<(String, Secret)>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: SlackConfig = parse(value)?;
    if let Some(field) = config.refused_field() {
        return Err(format!(
            "{field}: Alertmanager's Go-template message fields are not supported; Fenghuo \
             renders the Slack body from a tera template: set `template: FILE` (the default \
             is slack.json)"
        ));
    }
    for (name, value) in [
        ("channel", &config.channel),
        ("username", &config.username),
        ("icon_emoji", &config.icon_emoji),
        ("icon_url", &config.icon_url),
    ] {
        common::no_go_template(name, value.as_deref())?;
    }
    let app_token = crate::notify::secret::one_of(
        "app_token",
        config.app_token.clone(),
        config.app_token_file.as_deref(),
    )?;
    let (url, app) = match app_token {
        Some(token) => {
            if token.is_empty() {
                return Err("app_token: is empty".into());
            }
            if config.api_url.is_some() || config.api_url_file.is_some() {
                return Err("api_url: at most one of api_url (an incoming webhook) and \
                            app_token (a bot token) must be configured"
                    .into());
            }
            if config.channel.as_deref().is_none_or(str::is_empty) {
                return Err("channel: required with app_token (chat.postMessage posts \
                            to a channel)"
                    .into());
            }
            let post = config.app_url.as_deref().unwrap_or(DEFAULT_APP_URL);
            let post_url = Secret::new(post);
            common::check_url("app_url", &post_url)?;
            let update_url = match post.rsplit_once('/') {
                Some((base, "chat.postMessage")) => format!("{base}/chat.update"),
                _ => {
                    return Err("app_url: must end in /chat.postMessage (chat.update is \
                                called beside it)"
                        .into());
                }
            };
            let app = SlackApp {
                token,
                update_url,
                update_in_place: config.update_in_place,
            };
            (post_url, Some(app))
        }
        None => match api_url(&config, env)? {
            Some(url) => (url, None),
            None => {
                return Err("missing field `api_url` (or `api_url_file`, or \
                            `global.slack_api_url`, or `app_token`)"
                    .into());
            }
        },
    };
    let mut headers = config.http_config.headers()?;
    if let Some(app) = &app {
        if !headers.is_empty() {
            return Err(
                "http_config: credentials cannot be set with app_token (the bot \
                        token is the Authorization header)"
                    .into(),
            );
        }
        headers.push((
            "Authorization".to_string(),
            Secret::new(format!("Bearer {}", app.token.expose())),
        ));
    }
    let template = common::load_template(env, config.template.as_deref())?;
    Ok(Arc::new(SlackNotifier {
        url,
        app,
        send_resolved: config.send_resolved,
        channel: config.channel,
        username: config.username,
        icon_emoji: config.icon_emoji,
        icon_url: config.icon_url,
        link_names: config.link_names,
        template,
        headers,
        http: env.http.clone(),
    }))
}

/// The receiver's `api_url` / `api_url_file`, else the global one.
fn api_url(config: &SlackConfig, env: &BuildEnv<'_>) -> Result<Option<Secret>, String> {
    let own = crate::notify::secret::one_of(
        "api_url",
        config.api_url.clone(),
        config.api_url_file.as_deref(),
    )?;
    match own {
        Some(url) => {
            common::check_url("api_url", &url)?;
            Ok(Some(url))
        }
        None => match &env.global.slack_api_url {
            Some(url) => {
                common::check_url("global.slack_api_url", url)?;
                Ok(Some(url.clone()))
            }
            None => Ok(None),
        },
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, templates: &Templates, _now: DateTime<Utc>) -> Rendered {
        let (text, mut fallback) = templates.render(self.template.as_deref(), "slack.json", msg);
        let mut body = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(body)) => body,
            other => {
                let why = match other {
                    Err(e) => format!("the Slack template did not render JSON ({e})"),
                    Ok(_) => "the Slack template did not render a JSON object".to_string(),
                };
                fallback = Some(match fallback {
                    Some(earlier) => format!("{earlier}; {why}; sent as plain text"),
                    None => format!("{why}; sent as plain text"),
                });
                let mut body = serde_json::Map::new();
                body.insert("text".into(), common::plain_text(msg).into());
                body
            }
        };
        let overrides = [
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
            ("icon_url", &self.icon_url),
        ];
        for (key, value) in overrides {
            if let Some(value) = value {
                body.insert(key.into(), value.clone().into());
            }
        }
        if let Some(link_names) = self.link_names {
            body.insert("link_names".into(), link_names.into());
        }
        Rendered {
            payload: common::json_post(
                self.url.expose().to_string(),
                common::expose_headers(&self.headers),
                &serde_json::Value::Object(body),
            ),
            fallback,
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        match &self.app {
            None => Box::pin(http::post(&self.http, payload, None)),
            Some(_) => Box::pin(web_api(&self.http, payload.clone())),
        }
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
            let update = update_payload(payload, &app.update_url, message_ref)?;
            web_api(&self.http, update).await
        })
    }
}

/// The Web API side of a Slack app.
#[derive(Debug)]
struct SlackApp {
    token: Secret,
    /// `chat.update`, beside `chat.postMessage`.
    update_url: String,
    update_in_place: bool,
}

/// Calls a Slack Web API method with `payload` and reads the `channel ts`
/// of the message it posted or edited.
async fn web_api(client: &reqwest::Client, payload: Payload) -> Result<Delivered, DeliveryError> {
    let (mut delivered, body) =
        http::post_reading(client, &payload, reqwest::Method::POST, Some(web_api_error)).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let (Some(channel), Some(ts)) = (answer["channel"].as_str(), answer["ts"].as_str()) {
        delivered.message_ref = Some(format!("{channel} {ts}"));
    }
    Ok(delivered)
}

/// The Web API answers 200 with `{"ok": false, "error": "…"}`; only
/// `ratelimited` is worth another try.
fn web_api_error(body: &[u8]) -> Result<(), DeliveryError> {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if answer["ok"].as_bool() == Some(true) {
        return Ok(());
    }
    let error = answer["error"].as_str().unwrap_or("not ok").to_string();
    let limited = error == "ratelimited";
    Err(DeliveryError {
        reason: format!("Slack error: {}", common::truncate_chars(&error, 100)),
        class: if limited { "rate_limited" } else { "rejected" },
        status: None,
        retryable: limited,
        retry_after: limited.then(|| std::time::Duration::from_secs(60)),
    })
}

/// The `chat.update` call for a rendered `chat.postMessage`: the same
/// text and blocks, for the message `channel ts`. `chat.update` takes no
/// `username` or icons.
fn update_payload(
    payload: &Payload,
    update_url: &str,
    message_ref: &str,
) -> Result<Payload, DeliveryError> {
    let Payload::Http { headers, body, .. } = payload else {
        return Err(common::unsendable("payload is not an HTTP request"));
    };
    let (channel, ts) = message_ref
        .split_once(' ')
        .ok_or_else(|| common::unsendable("the recorded Slack message is not `channel ts`"))?;
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|_| common::unsendable("the Slack body is not JSON"))?;
    for key in ["username", "icon_emoji", "icon_url"] {
        body.remove(key);
    }
    body.insert("channel".into(), channel.into());
    body.insert("ts".into(), ts.into());
    Ok(common::json_post(
        update_url.to_string(),
        headers.clone(),
        &serde_json::Value::Object(body),
    ))
}
