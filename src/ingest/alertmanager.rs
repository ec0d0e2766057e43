//! The two Alertmanager shapes: the API v2 body Prometheus posts
//! (`POST /api/v2/alerts`) and the webhook Alertmanager sends
//! (`webhook_configs`, version "4"; Grafana's "1" too).

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate;
use super::{IncomingAlert, IngestError};
use crate::eventlog::LabelSet;

/// One alert of an API v2 `postableAlerts` body. Unknown fields are ignored,
/// as Alertmanager ignores them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: Option<LabelSet>,
    #[serde(default)]
    annotations: Option<LabelSet>,
    starts_at: Option<DateTime<FixedOffset>>,
    ends_at: Option<DateTime<FixedOffset>>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
}

/// Parses and validates an API v2 body as Alertmanager does: labels required
/// and valid; a missing `startsAt` is now (or `endsAt` if only that is set); a
/// missing `endsAt` is now + `resolve_timeout`; `startsAt` not after `endsAt`.
/// Unlike Alertmanager, one invalid alert refuses the whole body, so a 400
/// means nothing was stored.
pub fn parse_v2(
    body: &[u8],
    now: DateTime<Utc>,
    resolve_timeout: chrono::Duration,
) -> Result<Vec<IncomingAlert>, IngestError> {
    let posted: Vec<PostableAlert> = super::error::parse_json(body)?;
    let mut alerts = Vec::with_capacity(posted.len());
    for (i, a) in posted.into_iter().enumerate() {
        let labels = validate::labels(a.labels, &format!("[{i}].labels"))?;
        let annotations = a.annotations.unwrap_or_default();
        validate::names(&annotations, &format!("[{i}].annotations"))?;
        let starts = validate::timestamp(a.starts_at, &format!("[{i}].startsAt"))?;
        let ends = validate::timestamp(a.ends_at, &format!("[{i}].endsAt"))?;
        let starts_at = starts.or(ends).unwrap_or(now);
        let ends_at = ends.unwrap_or(now + resolve_timeout);
        if ends_at < starts_at {
            return Err(IngestError::new(
                format!("[{i}].endsAt"),
                "start time must be before end time",
            ));
        }
        alerts.push(IncomingAlert::new(
            labels,
            annotations,
            starts_at,
            Some(ends_at),
            a.generator_url.unwrap_or_default(),
            Map::new(),
            ends_at <= now,
        ));
    }
    Ok(alerts)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookMessage {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    truncated_alerts: Option<u64>,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(rename = "externalURL", default)]
    external_url: Option<String>,
    alerts: Vec<WebhookAlert>,
    /// `status`, `groupLabels`, `commonLabels`, `commonAnnotations` are
    /// derived from the alerts; they and any unknown field (Grafana's `orgId`,
    /// `title`, …) are kept verbatim.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: String,
    labels: Option<LabelSet>,
    #[serde(default)]
    annotations: Option<LabelSet>,
    starts_at: Option<DateTime<FixedOffset>>,
    ends_at: Option<DateTime<FixedOffset>>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    /// Grafana's `values`, `silenceURL`, `dashboardURL`, … kept verbatim.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Parses a webhook body. Each alert keeps the notification it came in
/// (`receiver`, `groupKey`, `externalURL`, unknown group fields) under
/// `extra.webhook`, and its own unknown fields in `extra`.
pub fn parse_webhook(body: &[u8], now: DateTime<Utc>) -> Result<Vec<IncomingAlert>, IngestError> {
    let msg: WebhookMessage = super::error::parse_json(body)?;
    let mut group = msg.rest;
    for derived in ["status", "groupLabels", "commonLabels", "commonAnnotations"] {
        group.remove(derived);
    }
    let mut via = Map::new();
    let fields = [
        ("version", msg.version.map(Value::from)),
        ("receiver", msg.receiver.map(Value::from)),
        ("groupKey", msg.group_key.map(Value::from)),
        ("externalURL", msg.external_url.map(Value::from)),
        ("truncatedAlerts", msg.truncated_alerts.map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            via.insert(k.into(), v);
        }
    }
    via.extend(group);

    let mut alerts = Vec::with_capacity(msg.alerts.len());
    for (i, a) in msg.alerts.into_iter().enumerate() {
        let resolved = match a.status.as_str() {
            "firing" => false,
            "resolved" => true,
            other => {
                return Err(IngestError::new(
                    format!("alerts[{i}].status"),
                    format!("must be \"firing\" or \"resolved\", not {other:?}"),
                ));
            }
        };
        let labels = validate::labels(a.labels, &format!("alerts[{i}].labels"))?;
        let annotations = a.annotations.unwrap_or_default();
        validate::names(&annotations, &format!("alerts[{i}].annotations"))?;
        let starts = validate::timestamp(a.starts_at, &format!("alerts[{i}].startsAt"))?;
        let ends = validate::timestamp(a.ends_at, &format!("alerts[{i}].endsAt"))?;
        if let (Some(s), Some(e)) = (starts, ends)
            && e < s
        {
            return Err(IngestError::new(
                format!("alerts[{i}].endsAt"),
                "start time must be before end time",
            ));
        }
        let mut extra = a.rest;
        extra.insert("webhook".into(), Value::Object(via.clone()));
        // A firing webhook alert has no end: it fires until a resolved one.
        let ends_at = if resolved {
            Some(ends.unwrap_or(now))
        } else {
            None
        };
        let alert = IncomingAlert::new(
            labels,
            annotations,
            starts.unwrap_or(now),
            ends_at,
            a.generator_url.unwrap_or_default(),
            extra,
            resolved,
        );
        if let Some(theirs) = a.fingerprint
            && theirs != alert.report.fingerprint
        {
            let mut alert = alert;
            alert
                .report
                .extra
                .insert("sourceFingerprint".into(), Value::from(theirs));
            alerts.push(alert);
            continue;
        }
        alerts.push(alert);
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T19:00:00Z".parse().unwrap()
    }

    #[test]
    fn v2_defaults_missing_times_like_alertmanager() {
        let body = br#"[{"labels":{"alertname":"A"}},{"labels":{"alertname":"B"},"endsAt":"2026-11-25T18:00:00Z"}]"#;
        let alerts = parse_v2(body, now(), chrono::Duration::minutes(5)).unwrap();
        // No times: starts now, ends now + resolve_timeout, firing.
        assert_eq!(alerts[0].report.starts_at, now());
        assert_eq!(
            alerts[0].report.ends_at,
            Some(now() + chrono::Duration::minutes(5))
        );
        assert!(!alerts[0].resolved);
        // Only endsAt, in the past: starts at endsAt, resolved.
        assert_eq!(
            alerts[1].report.starts_at,
            "2026-11-25T18:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(alerts[1].resolved);
    }

    #[test]
    fn v2_refusals_name_the_field() {
        // (body, field, part of the message) — one row per rule.
        let table: &[(&[u8], &str, &str)] = &[
            (br#"[{"annotations":{}}]"#, "[0].labels", "at least one label pair"),
            (br#"[{"labels":{}}]"#, "[0].labels", "at least one label pair"),
            (br#"[{"labels":{"a":"1"}},{"labels":{"0bad":"x"}}]"#, "[1].labels.0bad", "invalid label name"),
            (br#"[{"labels":{"a":"1"},"annotations":{"bad-name":"x"}}]"#, "[0].annotations.bad-name", "invalid label name"),
            (br#"[{"labels":{"a":"1"},"startsAt":"2026-11-25T19:00:00Z","endsAt":"2026-11-25T18:00:00Z"}]"#, "[0].endsAt", "start time must be before end time"),
            (br#"[{"labels":{"a":"1"},"startsAt":"yesterday"}]"#, "[0].startsAt", "input contains invalid characters"),
            (br#"[{"labels":{"a":1}}]"#, "[0].labels.a", "invalid type"),
            (br#"{"labels":{"a":"1"}}"#, "", "invalid type: map, expected a sequence"),
            (br#"[{"labels":"#, "[0].labels", "EOF"),
            (br#"[] []"#, "", "trailing characters"),
        ];
        for (body, field, msg) in table {
            let err = parse_v2(body, now(), chrono::Duration::minutes(5)).unwrap_err();
            assert_eq!(&err.field, field, "{}", String::from_utf8_lossy(body));
            assert!(err.message.contains(msg), "{err:?} should say {msg:?}");
        }
    }

    #[test]
    fn webhook_fixture_keeps_group_fields_and_alertmanager_fingerprints() {
        let body = include_bytes!("../../tests/fixtures/alertmanager-0.25-webhook-firing.json");
        let alerts = parse_webhook(body, now()).unwrap();
        assert_eq!(alerts.len(), 3);
        let a = &alerts[0];
        assert_eq!(a.report.fingerprint, "01381f054fec484f");
        assert!(!a.resolved);
        assert_eq!(a.report.ends_at, None);
        assert!(!a.report.extra.contains_key("sourceFingerprint"));
        let via = &a.report.extra["webhook"];
        assert_eq!(via["receiver"], "bench-webhook");
        assert_eq!(via["version"], "4");
        assert_eq!(via["externalURL"], "http://vm:19093");
        assert!(via["groupKey"].as_str().unwrap().contains("bench_route"));
        assert!(a.report.generator_url.contains("&g0.tab=1"));
    }

    #[test]
    fn webhook_keeps_unknown_fields_grafana_and_newer_alertmanagers_add() {
        let body = br#"{"version":"1","orgId":1,"title":"[FIRING:1]","notification_reason":"new",
            "status":"firing","alerts":[{"status":"firing","labels":{"alertname":"G"},
            "values":{"B":3.5},"silenceURL":"http://grafana/silence","fingerprint":"ffffffffffffffff"}]}"#;
        let alerts = parse_webhook(body, now()).unwrap();
        let extra = &alerts[0].report.extra;
        assert_eq!(extra["values"]["B"], 3.5);
        assert_eq!(extra["silenceURL"], "http://grafana/silence");
        assert_eq!(extra["sourceFingerprint"], "ffffffffffffffff");
        assert_eq!(extra["webhook"]["orgId"], 1);
        assert_eq!(extra["webhook"]["notification_reason"], "new");
        assert!(extra["webhook"].get("status").is_none());
    }

    #[test]
    fn webhook_refuses_unknown_status() {
        let body = br#"{"alerts":[{"status":"pending","labels":{"a":"b"}}]}"#;
        let err = parse_webhook(body, now()).unwrap_err();
        assert_eq!(err.field, "alerts[0].status");
    }
}
