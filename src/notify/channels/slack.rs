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

#[derive(Debug)]
pub struct SlackNotifier {
    url: Secret,
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
    let url = match api_url(&config, env)? {
        Some(url) => url,
        None => {
            return Err("missing field `api_url` (or `api_url_file`, or \
                        `global.slack_api_url`)"
                .into());
        }
    };
    let headers = config.http_config.headers()?;
    let template = common::load_template(env, config.template.as_deref())?;
    Ok(Arc::new(SlackNotifier {
        url,
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
        Box::pin(http::post(&self.http, payload, None))
    }
}
