//! WeCom (企业微信) group robots (群机器人), markdown messages.
//!
//! ```yaml
//! wecom_configs:
//!   - webhook_url: { file: /run/secrets/wecom-url }  # …/cgi-bin/webhook/send?key=XXX
//!     mentioned_list: ["zhangsan"]                    # WeCom user ids
//!     template: wecom-ops.md                          # default: wecom.md
//! ```
//!
//! A markdown message mentions people by user id only, written `<@userid>`
//! in the content; Fenghuo appends one per `mentioned_list` entry.
//! WeCom's `mentioned_mobile_list` (and `@all`) work only for `text`
//! messages, so they are refused here rather than silently not mentioning
//! anyone.
//!
//! The content may hold at most 4096 bytes of UTF-8: longer content is cut
//! on a character boundary and marked `…(truncated)`.
//!
//! WeCom answers 200 with `{"errcode": 0}`; any other code is an error,
//! retried only for 45009 (over the robot's 20 messages a minute).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use super::common;
use super::{http, parse};
use crate::notify::config::BuildEnv;
use crate::notify::{
    Delivered, DeliveryError, Message, Notifier, Payload, Rendered, Secret, Templates,
};

/// WeCom's limit on `markdown.content`, in bytes of UTF-8.
pub const MAX_CONTENT_BYTES: usize = 4096;
/// `errcode` of "api freq out of limit".
pub const RATE_LIMITED: i64 = 45009;
pub const TRUNCATED: &str = "\n…(truncated)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    #[serde(default = "common::yes")]
    pub send_resolved: bool,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    /// WeCom user ids to mention.
    #[serde(default)]
    pub mentioned_list: Vec<String>,
    /// Refused: markdown messages cannot mention by mobile number.
    mentioned_mobile_list: Option<serde_json::Value>,
    /// A tera template rendering the markdown content.
    pub template: Option<String>,
}

#[derive(Debug)]
pub struct WecomNotifier {
    url: Secret,
    send_resolved: bool,
    mentioned: Vec<String>,
    template: Option<String>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: WecomConfig = parse(value)?;
    if config.mentioned_mobile_list.is_some() {
        return Err(
            "mentioned_mobile_list: WeCom markdown messages cannot mention by mobile \
                    number; list WeCom user ids in `mentioned_list` instead (sent as <@userid>)"
                .into(),
        );
    }
    let url = common::required_url(
        "webhook_url",
        config.webhook_url,
        config.webhook_url_file.as_deref(),
    )?;
    for (i, id) in config.mentioned_list.iter().enumerate() {
        if id == "@all" {
            return Err(format!(
                "mentioned_list[{i}]: WeCom markdown messages cannot mention @all; list user ids"
            ));
        }
        if id.is_empty() || id.contains(['<', '>', '@', ' ']) {
            return Err(format!("mentioned_list[{i}]: not a WeCom user id"));
        }
    }
    let template = common::load_template(env, config.template.as_deref())?;
    Ok(Arc::new(WecomNotifier {
        url,
        send_resolved: config.send_resolved,
        mentioned: config.mentioned_list,
        template,
        http: env.http.clone(),
    }))
}

impl Notifier for WecomNotifier {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, templates: &Templates, _now: DateTime<Utc>) -> Rendered {
        let (text, fallback) = templates.render(self.template.as_deref(), "wecom.md", msg);
        let mut text = text.trim_end().to_string();
        if text.is_empty() {
            text = common::plain_text(msg);
        }
        // The configured mentions and the people an escalation page is for.
        let people = msg.to.iter().filter_map(|p| p.mentions.get("wecom_user"));
        let mentions = self
            .mentioned
            .iter()
            .chain(people)
            .map(|id| format!("<@{id}>"))
            .collect::<Vec<_>>()
            .join(" ");
        let content = if mentions.is_empty() {
            common::truncate_utf8(&text, MAX_CONTENT_BYTES, TRUNCATED)
        } else {
            let room = MAX_CONTENT_BYTES.saturating_sub(mentions.len() + 2);
            format!(
                "{}\n\n{mentions}",
                common::truncate_utf8(&text, room, TRUNCATED)
            )
        };
        let body = serde_json::json!({
            "msgtype": "markdown",
            "markdown": { "content": content },
        });
        Rendered {
            payload: common::json_post(self.url.expose().trim().to_string(), Vec::new(), &body),
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
