//! Generic webhooks: Alertmanager's `webhook_configs`, sending exactly
//! Alertmanager's webhook body (version 4), byte for byte: the same fields
//! in the same order, Go's time format (`2024-01-01T00:00:00.123456789Z`,
//! trailing zeros dropped; `0001-01-01T00:00:00Z` for the `endsAt` of a
//! firing alert), `<`, `>` and `&` escaped as Go escapes them, and the
//! trailing newline of Go's JSON encoder. Whatever consumes Alertmanager's
//! webhooks consumes Fenghuo's. There is no template.
//!
//! Accepted from Alertmanager: `url` / `url_file` (a secret: such URLs
//! often carry a token), `send_resolved` (default `true`), `max_alerts`
//! (0 = all; the rest are counted in `truncatedAlerts`), and `http_config`
//! credentials (`authorization`, `basic_auth`, `bearer_token[_file]`; client
//! settings such as `tls_config` or `proxy_url` are refused, see
//! `common::HttpConfig`). Fenghuo adds `headers`: a map of extra
//! request headers whose values are secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::common::{self, HttpConfig};
use super::{http, parse};
use crate::eventlog::event::LabelSet;
use crate::notify::config::BuildEnv;
use crate::notify::{
    Delivered, DeliveryError, Message, Notifier, Payload, Rendered, Secret, Templates,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "common::yes")]
    pub send_resolved: bool,
    pub url: Option<Secret>,
    pub url_file: Option<String>,
    /// At most this many alerts per message; 0 sends them all.
    #[serde(default)]
    pub max_alerts: u64,
    #[serde(default)]
    pub(crate) http_config: HttpConfig,
    /// Fenghuo: extra request headers (values may be `{file:}` / `{env:}`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// Headers the request itself sets; a config cannot replace them.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

#[derive(Debug)]
pub struct WebhookNotifier {
    url: Secret,
    send_resolved: bool,
    max_alerts: u64,
    headers: Vec<(String, Secret)>,
    http: reqwest::Client,
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let config: WebhookConfig = parse(value)?;
    let url = common::required_url("url", config.url, config.url_file.as_deref())?;
    let mut headers = config.http_config.headers()?;
    for (name, value) in &config.headers {
        let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers.{name}: not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(format!(
                "headers.{name}: set by Fenghuo, cannot be configured"
            ));
        }
        if headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "headers.{name}: also set by http_config; configure credentials in one place"
            ));
        }
        reqwest::header::HeaderValue::from_str(value.expose())
            .map_err(|_| format!("headers.{name}: not a valid header value (not shown)"))?;
        headers.push((name.clone(), value.clone()));
    }
    Ok(Arc::new(WebhookNotifier {
        url,
        send_resolved: config.send_resolved,
        max_alerts: config.max_alerts,
        headers,
        http: env.http.clone(),
    }))
}

/// Alertmanager's webhook body, version 4 (`notify/webhook.Message`), field
/// for field and in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookBody {
    pub receiver: String,
    pub status: String,
    pub alerts: Vec<WebhookAlert>,
    pub group_labels: LabelSet,
    pub common_labels: LabelSet,
    pub common_annotations: LabelSet,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
}

/// One alert of [`WebhookBody`] (Alertmanager's `template.Alert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAlert {
    pub status: String,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    #[serde(with = "go_time")]
    pub starts_at: DateTime<Utc>,
    /// `None` is Go's zero time, `0001-01-01T00:00:00Z`.
    #[serde(with = "go_time_opt")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl WebhookBody {
    /// The body Alertmanager would send for this message; `max_alerts` 0
    /// keeps every alert.
    pub fn from_message(msg: &Message, max_alerts: u64) -> WebhookBody {
        let keep = if max_alerts == 0 {
            msg.alerts.len()
        } else {
            msg.alerts
                .len()
                .min(usize::try_from(max_alerts).unwrap_or(usize::MAX))
        };
        let alerts = msg.alerts[..keep]
            .iter()
            .map(|a| WebhookAlert {
                status: a.status.clone(),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                // Alertmanager shows a firing alert's end as the zero time.
                ends_at: if a.status == "firing" {
                    None
                } else {
                    a.ends_at
                },
                generator_url: a.generator_url.clone(),
                fingerprint: a.fingerprint.clone(),
            })
            .collect();
        WebhookBody {
            receiver: msg.receiver.clone(),
            status: msg.status.clone(),
            alerts,
            group_labels: msg.group_labels.clone(),
            common_labels: msg.common_labels.clone(),
            common_annotations: msg.common_annotations.clone(),
            external_url: msg.external_url.clone(),
            version: "4".into(),
            group_key: msg.group_key.clone(),
            truncated_alerts: (msg.alerts.len() - keep) as u64,
        }
    }

    /// The bytes Alertmanager's Go encoder writes for this body.
    pub fn to_go_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
        self.serialize(&mut ser)
            .expect("a webhook body always serializes");
        out.push(b'\n');
        out
    }
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 inside
/// strings (HTML-safe output); serde_json does not. Otherwise compact.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Go's `time.Time` in JSON: RFC 3339 with up to nine fractional digits,
/// trailing zeros dropped.
pub fn go_time_string(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Go's zero `time.Time`, as Alertmanager writes an unset `endsAt`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

mod go_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::go_time_string(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod go_time_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::go_time::serialize(t, s),
            None => s.serialize_str(super::GO_ZERO_TIME),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let t = super::go_time::deserialize(d)?;
        Ok((super::go_time_string(&t) != super::GO_ZERO_TIME).then_some(t))
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, _templates: &Templates, _now: DateTime<Utc>) -> Rendered {
        let body = WebhookBody::from_message(msg, self.max_alerts);
        Rendered {
            payload: Payload::Http {
                url: self.url.expose().trim().to_string(),
                content_type: "application/json",
                headers: common::expose_headers(&self.headers),
                body: body.to_go_json(),
            },
            fallback: None,
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(http::post(&self.http, payload, None))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn go_time_format() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(go_time_string(&t), "2024-01-01T00:00:00Z");
        let t = t + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(go_time_string(&t), "2024-01-01T00:00:00.123456789Z");
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::milliseconds(500);
        assert_eq!(go_time_string(&t), "2024-01-01T00:00:00.5Z");
    }

    #[test]
    fn go_escaping() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
        "a<b>&c\u{2028}\"\n".serialize(&mut ser).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\u003cb\u003e\u0026c\u2028\"\n""#
        );
    }
}
