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
//! (11232, 9499).

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
pub const RATE_LIMITED: [i64; 2] = [11232, 9499];

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
}

#[derive(Debug)]
pub struct FeishuNotifier {
    url: Secret,
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
    let url = common::required_url(
        "webhook_url",
        config.webhook_url,
        config.webhook_url_file.as_deref(),
    )?;
    let secret = secret::one_of("secret", config.secret, config.secret_file.as_deref())?;
    if secret.as_ref().is_some_and(|s| s.is_empty()) {
        return Err("secret: is empty".into());
    }
    let template = common::load_template(env, config.template.as_deref())?;
    Ok(Arc::new(FeishuNotifier {
        url,
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
        if let Some(secret) = &self.secret {
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
        Box::pin(http::post(
            &self.http,
            payload,
            Some(|body| http::im_error_code(body, &RATE_LIMITED)),
        ))
    }
}
