//! One file per channel, each split into its config (what `fenghuo.yaml`
//! says, keeping Alertmanager's field names where Alertmanager has the
//! channel) and its sending (a [`Notifier`]). [`build`] is the one place a
//! `*_configs` key becomes a notifier.
//!
//! Every channel runs the same conformance tests (`tests/notify_channels.rs`):
//! accepted, retried on 5xx/429/timeouts, not retried on 4xx, secrets kept
//! out of errors.

mod common;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod http;
pub mod pagerduty;
pub mod slack;
pub mod webhook;
pub mod wecom;

use std::sync::Arc;

use super::Notifier;
use super::config::BuildEnv;

/// Receiver types Fenghuo sends to, as `fenghuo.yaml` keys.
pub const KINDS: [&str; 7] = [
    "email_configs",
    "slack_configs",
    "dingtalk_configs",
    "wecom_configs",
    "feishu_configs",
    "webhook_configs",
    "pagerduty_configs",
];

/// Build one integration from its YAML. The error says which field is wrong.
pub fn build(
    key: &str,
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    match key {
        "email_configs" => email::build(value, env),
        "slack_configs" => slack::build(value, env),
        "dingtalk_configs" => dingtalk::build(value, env),
        "wecom_configs" => wecom::build(value, env),
        "feishu_configs" => feishu::build(value, env),
        "webhook_configs" => webhook::build(value, env),
        "pagerduty_configs" => pagerduty::build(value, env),
        other => Err(format!(
            "receiver type `{other}` is not supported (supported: {}); a receiver Fenghuo \
             cannot send to would drop pages silently, so the config is refused",
            KINDS.join(", ")
        )),
    }
}

/// Deserialize a channel's config with the path of a bad field in the error.
pub fn parse<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}
