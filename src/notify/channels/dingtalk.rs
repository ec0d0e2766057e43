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
    let url = common::required_url(
        "webhook_url",
        config.webhook_url,
        config.webhook_url_file.as_deref(),
    )?;
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
    Ok(Arc::new(DingtalkNotifier {
        url,
        secret,
        send_resolved: config.send_resolved,
        at: config.at,
        template,
        http: env.http.clone(),
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
        Box::pin(http::post(
            &self.http,
            payload,
            Some(|body| http::im_error_code(body, &[RATE_LIMITED])),
        ))
    }
}
