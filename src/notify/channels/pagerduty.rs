//! PagerDuty Events API v2: Alertmanager's `pagerduty_configs`.
//!
//! One event per message: `trigger` while any alert of the group fires,
//! `resolve` once all are resolved, deduplicated by the SHA-256 (hex) of the
//! group key, as Alertmanager does, so an incident opened by Alertmanager is
//! resolved by Fenghuo and the other way round.
//!
//! Accepted from Alertmanager: `routing_key` / `routing_key_file`, `url`
//! (default `global.pagerduty_url`, else PagerDuty's enqueue URL),
//! `send_resolved` (default `true`), `client` (default `Fenghuo`),
//! `client_url` (default `notify.external_url`), `description` (default the
//! message title; cut to 1024 characters), `severity` (default: the most
//! urgent `severity` label of the alerts, mapped to critical / error /
//! warning / info, else `error`), `source` (default: `client`, as in
//! Alertmanager), `class`, `component`, `group`, `details` (added to, or
//! replacing, the default `firing`, `resolved`, `num_firing`,
//! `num_resolved`), `links`, `images`, and `http_config` credentials.
//! These are sent as written: a value with an Alertmanager Go template
//! (`{{ ... }}`) is refused. `service_key` (Events API v1) is refused.
//!
//! The routing key must travel in the body, and a payload's body is shown
//! by its `Debug` and by `fenghuo template render`: so `render` writes
//! `"routing_key":"<secret>"` and `send` puts the key in just before the
//! request.
//!
//! PagerDuty answers 202; 400 (an invalid event) is not retried; 429 and
//! 5xx are.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::common::{self, HttpConfig};
use super::{http, parse};
use crate::notify::config::BuildEnv;
use crate::notify::{
    AlertData, Delivered, DeliveryError, Message, Notifier, Payload, Rendered, Secret, Templates,
    severity_rank,
};

pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// PagerDuty's limit on `payload.summary`, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// Cap on each alert list in `custom_details`, keeping the event well under
/// PagerDuty's 512 KB.
const MAX_DETAIL_BYTES: usize = 100_000;
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
/// What a rendered payload holds in place of the routing key.
pub const ROUTING_KEY_PLACEHOLDER: &str = "<secret>";
const PLACEHOLDER_FIELD: &str = "\"routing_key\":\"<secret>\"";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    #[serde(default = "common::yes")]
    pub send_resolved: bool,
    pub routing_key: Option<Secret>,
    pub routing_key_file: Option<String>,
    /// Events API v1: refused.
    service_key: Option<serde_json::Value>,
    service_key_file: Option<serde_json::Value>,
    pub url: Option<String>,
    pub client: Option<String>,
    pub client_url: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub source: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub(crate) http_config: HttpConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub src: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
}

/// An Events API v2 event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagerdutyEvent {
    pub routing_key: String,
    pub event_action: String,
    pub dedup_key: String,
    pub payload: EventPayload,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPayload {
    pub summary: String,
    pub source: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub custom_details: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct PagerdutyNotifier {
    url: String,
    routing_key: Secret,
    send_resolved: bool,
    client: String,
    client_url: Option<String>,
    description: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    class: String,
    component: String,
    group: String,
    details: BTreeMap<String, String>,
    links: Vec<Link>,
    images: Vec<Image>,
    headers: Vec<(String, Secret)>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: PagerdutyConfig = parse(value)?;
    if config.service_key.is_some() || config.service_key_file.is_some() {
        return Err(
            "service_key: PagerDuty Events API v1 is not supported; create an Events \
                    API v2 integration and set `routing_key` (or `routing_key_file`)"
                .into(),
        );
    }
    let routing_key = crate::notify::secret::one_of(
        "routing_key",
        config.routing_key,
        config.routing_key_file.as_deref(),
    )?
    .ok_or("missing field `routing_key` (or `routing_key_file`)")?;
    if routing_key.expose().trim().is_empty() {
        return Err("routing_key: is empty".into());
    }
    let url = config
        .url
        .or_else(|| env.global.pagerduty_url.clone())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    common::check_url("url", &Secret::new(url.clone()))?;
    for (name, value) in [
        ("client", &config.client),
        ("client_url", &config.client_url),
        ("description", &config.description),
        ("severity", &config.severity),
        ("source", &config.source),
        ("class", &config.class),
        ("component", &config.component),
        ("group", &config.group),
    ] {
        common::no_go_template(name, value.as_deref())?;
    }
    for (key, value) in &config.details {
        common::no_go_template(&format!("details.{key}"), Some(value))?;
    }
    for (i, link) in config.links.iter().enumerate() {
        common::no_go_template(&format!("links[{i}].href"), Some(&link.href))?;
        common::no_go_template(&format!("links[{i}].text"), Some(&link.text))?;
    }
    if let Some(severity) = &config.severity
        && !SEVERITIES.contains(&severity.as_str())
    {
        return Err(format!(
            "severity: {severity:?} is not one of {}",
            SEVERITIES.join(", ")
        ));
    }
    let headers = config.http_config.headers()?;
    Ok(Arc::new(PagerdutyNotifier {
        url,
        routing_key,
        send_resolved: config.send_resolved,
        client: config.client.unwrap_or_else(|| "Fenghuo".to_string()),
        client_url: config.client_url,
        description: config.description,
        severity: config.severity,
        source: config.source,
        class: config.class.unwrap_or_default(),
        component: config.component.unwrap_or_default(),
        group: config.group.unwrap_or_default(),
        details: config.details,
        links: config.links,
        images: config.images,
        headers,
        http: env.http.clone(),
    }))
}

/// Alertmanager's dedup key: the SHA-256 of the group key, in hex.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The PagerDuty severity for a message: its most urgent alert's.
pub fn severity_of(msg: &Message) -> &'static str {
    let firing: Vec<&AlertData> = msg.alerts.iter().filter(|a| a.status == "firing").collect();
    let pool = if firing.is_empty() {
        msg.alerts.iter().collect()
    } else {
        firing
    };
    let rank = pool
        .into_iter()
        .map(|a| {
            let s = a.labels.get("severity").unwrap_or(&a.severity);
            severity_rank(s)
        })
        .min()
        .or_else(|| msg.common_labels.get("severity").map(severity_rank))
        .unwrap_or(4);
    match rank {
        0 => "critical",
        2 => "warning",
        3 => "info",
        _ => "error",
    }
}

/// Alertmanager's `pagerduty.default.instances`: each alert's labels,
/// annotations and source.
fn instances<'a>(alerts: impl Iterator<Item = &'a AlertData>) -> String {
    let mut out = String::new();
    for a in alerts {
        out.push_str("Labels:\n");
        for (k, v) in &a.labels {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str("Annotations:\n");
        for (k, v) in &a.annotations {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str(&format!("Source: {}\n", a.generator_url));
    }
    common::truncate_utf8(&out, MAX_DETAIL_BYTES, "\n…(truncated)")
}

impl PagerdutyNotifier {
    /// The event for a message, with [`ROUTING_KEY_PLACEHOLDER`] for the
    /// routing key.
    pub fn event(&self, msg: &Message) -> PagerdutyEvent {
        let resolved = msg.status == "resolved";
        let firing = msg.alerts.iter().filter(|a| a.status == "firing");
        let mut details = BTreeMap::from([
            ("firing".to_string(), instances(firing.clone())),
            (
                "resolved".to_string(),
                instances(msg.alerts.iter().filter(|a| a.status == "resolved")),
            ),
            ("num_firing".to_string(), msg.counts.firing.to_string()),
            ("num_resolved".to_string(), msg.counts.resolved.to_string()),
        ]);
        details.extend(self.details.clone());
        let timestamp = (!resolved)
            .then(|| firing.map(|a| a.starts_at).min())
            .flatten()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
        let mut links = self.links.clone();
        let mut seen = Vec::new();
        for a in &msg.alerts {
            if a.generator_url.is_empty() || seen.contains(&&a.generator_url) || seen.len() >= 5 {
                continue;
            }
            seen.push(&a.generator_url);
            let name = a.labels.get("alertname").unwrap_or("alert");
            links.push(Link {
                href: a.generator_url.clone(),
                text: format!("Source of {name}"),
            });
        }
        for action in &msg.actions {
            links.push(Link {
                href: action.url.clone(),
                text: action.label.clone(),
            });
        }
        let summary = self.description.as_deref().unwrap_or(&msg.title);
        PagerdutyEvent {
            routing_key: ROUTING_KEY_PLACEHOLDER.to_string(),
            event_action: if resolved { "resolve" } else { "trigger" }.into(),
            dedup_key: dedup_key(&msg.group_key),
            payload: EventPayload {
                summary: common::truncate_chars(summary, MAX_SUMMARY_CHARS),
                source: self.source.clone().unwrap_or_else(|| self.client.clone()),
                severity: self
                    .severity
                    .clone()
                    .unwrap_or_else(|| severity_of(msg).to_string()),
                timestamp,
                class: self.class.clone(),
                component: self.component.clone(),
                group: self.group.clone(),
                custom_details: details,
            },
            client: self.client.clone(),
            client_url: self
                .client_url
                .clone()
                .unwrap_or_else(|| msg.external_url.clone()),
            links,
            images: self.images.clone(),
        }
    }
}

impl Notifier for PagerdutyNotifier {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, _templates: &Templates, _now: DateTime<Utc>) -> Rendered {
        let event = self.event(msg);
        Rendered {
            payload: Payload::Http {
                url: self.url.clone(),
                content_type: "application/json",
                headers: common::expose_headers(&self.headers),
                body: serde_json::to_vec(&event).unwrap_or_default(),
            },
            fallback: None,
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let payload = self.with_routing_key(payload);
            http::post(&self.http, &payload, None).await
        })
    }
}

impl PagerdutyNotifier {
    /// The payload as sent: the placeholder replaced by the routing key. The
    /// placeholder is the event's first field, and a quote inside a JSON
    /// string is escaped, so the first match is the field itself.
    fn with_routing_key(&self, payload: &Payload) -> Payload {
        let mut payload = payload.clone();
        if let Payload::Http { body, .. } = &mut payload {
            let key = serde_json::to_string(self.routing_key.expose().trim()).unwrap_or_default();
            let text = String::from_utf8_lossy(body);
            *body = text
                .replacen(PLACEHOLDER_FIELD, &format!("\"routing_key\":{key}"), 1)
                .into_bytes();
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_is_sha256_hex() {
        assert_eq!(
            dedup_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
