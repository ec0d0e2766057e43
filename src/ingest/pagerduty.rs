//! PagerDuty Events API v2 (`POST /api/v1/events`, `POST /v2/enqueue`), so an
//! existing PagerDuty integration can point at Fenghuo unchanged.
//!
//! A trigger becomes an alert whose labels are the event's identity
//! (`dedup_key`, `severity`, `source`, `component`, `group`, `class`);
//! acknowledge and resolve find that alert by `dedup_key`.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{IncomingAlert, Ingest, IngestError, validate};
use crate::evaluate::{Fingerprint, Fnv64};
use crate::eventlog::{AlertResolution, EventKind, LabelSet, LogError, NewEvent};

/// The label holding the event's `dedup_key`.
pub const DEDUP_LABEL: &str = "dedup_key";
/// The `extra` entry marking an alert as PagerDuty-sourced.
pub const EXTRA_KEY: &str = "pagerduty";

#[derive(Debug, Deserialize)]
struct Body {
    routing_key: Option<String>,
    event_action: Option<String>,
    dedup_key: Option<String>,
    payload: Option<Payload>,
    #[serde(default)]
    links: Option<Vec<Value>>,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    client_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    summary: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    timestamp: Option<DateTime<FixedOffset>>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<Value>,
}

/// A parsed, valid event.
#[derive(Debug, Clone)]
pub enum PagerDutyEvent {
    Trigger {
        dedup_key: String,
        alert: Box<IncomingAlert>,
    },
    Acknowledge {
        dedup_key: String,
    },
    Resolve {
        dedup_key: String,
    },
}

impl PagerDutyEvent {
    pub fn dedup_key(&self) -> &str {
        match self {
            PagerDutyEvent::Trigger { dedup_key, .. }
            | PagerDutyEvent::Acknowledge { dedup_key }
            | PagerDutyEvent::Resolve { dedup_key } => dedup_key,
        }
    }
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn missing(field: &str) -> IngestError {
    IngestError::new(field, format!("'{field}' is missing or blank"))
}

/// Parses and validates an Events API v2 body with PagerDuty's rules.
/// `new_dedup_key` supplies the key of a trigger that brings none.
pub fn parse(
    body: &[u8],
    now: DateTime<Utc>,
    new_dedup_key: impl FnOnce() -> String,
) -> Result<PagerDutyEvent, IngestError> {
    let b: Body = super::error::parse_json(body)?;
    if blank(&b.routing_key) {
        return Err(missing("routing_key"));
    }
    let action = b.event_action.clone().unwrap_or_default();
    match action.as_str() {
        "trigger" => {}
        "acknowledge" | "resolve" => {
            if blank(&b.dedup_key) {
                return Err(missing("dedup_key"));
            }
            let dedup_key = b.dedup_key.unwrap_or_default();
            return Ok(if action == "acknowledge" {
                PagerDutyEvent::Acknowledge { dedup_key }
            } else {
                PagerDutyEvent::Resolve { dedup_key }
            });
        }
        "" => return Err(missing("event_action")),
        other => {
            return Err(IngestError::new(
                "event_action",
                format!("'event_action' must be trigger, acknowledge or resolve, not {other:?}"),
            ));
        }
    }
    let Some(p) = b.payload else {
        return Err(missing("payload"));
    };
    for (field, value) in [
        ("payload.summary", &p.summary),
        ("payload.source", &p.source),
        ("payload.severity", &p.severity),
    ] {
        if blank(value) {
            return Err(missing(field));
        }
    }
    let severity = p.severity.clone().unwrap_or_default();
    if !matches!(severity.as_str(), "critical" | "error" | "warning" | "info") {
        return Err(IngestError::new(
            "payload.severity",
            format!(
                "'payload.severity' must be critical, error, warning or info, not {severity:?}"
            ),
        ));
    }
    if p.summary
        .as_deref()
        .is_some_and(|s| s.chars().count() > 1024)
    {
        return Err(IngestError::new(
            "payload.summary",
            "'payload.summary' is longer than 1024 characters",
        ));
    }
    let occurred = validate::timestamp(p.timestamp, "payload.timestamp")?.unwrap_or(now);
    let dedup_key = match b.dedup_key {
        Some(k) if !k.trim().is_empty() => k,
        _ => new_dedup_key(),
    };
    if dedup_key.len() > 255 {
        return Err(IngestError::new(
            "dedup_key",
            "'dedup_key' is longer than 255 characters",
        ));
    }

    let mut labels = LabelSet::new();
    labels.insert(
        "alertname".into(),
        p.class.clone().unwrap_or_else(|| "PagerDutyEvent".into()),
    );
    labels.insert(DEDUP_LABEL.into(), dedup_key.clone());
    labels.insert("severity".into(), severity);
    labels.insert("source".into(), p.source.unwrap_or_default());
    for (name, value) in [
        ("component", p.component),
        ("group", p.group),
        ("class", p.class),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.into(), v);
        }
    }
    let mut annotations = LabelSet::new();
    annotations.insert("summary".into(), p.summary.unwrap_or_default());
    match p.custom_details {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            annotations.insert("custom_details".into(), s);
        }
        Some(other) => {
            annotations.insert("custom_details".into(), other.to_string());
        }
    }
    // The routing key is a credential: keep only a hash that tells
    // integrations apart.
    let mut h = Fnv64::new();
    h.write(b.routing_key.unwrap_or_default().as_bytes());
    let mut meta = Map::new();
    meta.insert(
        "routing_key_hash".into(),
        format!("{:016x}", h.finish()).into(),
    );
    for (k, v) in [
        ("links", b.links.map(Value::from)),
        ("images", b.images.map(Value::from)),
        ("client", b.client.map(Value::from)),
        ("client_url", b.client_url.map(Value::from)),
    ] {
        if let Some(v) = v {
            meta.insert(k.into(), v);
        }
    }
    let mut extra = Map::new();
    extra.insert(EXTRA_KEY.into(), Value::Object(meta));
    let alert = IncomingAlert::new(
        labels,
        annotations,
        occurred,
        None,
        String::new(),
        extra,
        false,
    );
    Ok(PagerDutyEvent::Trigger {
        dedup_key,
        alert: Box::new(alert),
    })
}

impl Ingest {
    /// Stores what a PagerDuty-style event changes; answers its `dedup_key`.
    pub async fn pagerduty(&self, event: PagerDutyEvent) -> Result<String, Arc<LogError>> {
        let now = self.clock().now();
        let dedup_key = event.dedup_key().to_string();
        self.append_planned(|| self.plan_pagerduty(&event, now))
            .await?;
        Ok(dedup_key)
    }

    fn plan_pagerduty(&self, event: &PagerDutyEvent, now: DateTime<Utc>) -> Vec<NewEvent> {
        let current = self.index().fingerprint_of_dedup_key(event.dedup_key());
        let known = current.and_then(|fp| self.index().get(fp).map(|a| (fp, a)));
        let resolve = |fp: Fingerprint, version: u64, reason: &str| {
            NewEvent::new(
                now,
                "pagerduty",
                fp.to_string(),
                EventKind::AlertResolved(AlertResolution {
                    fingerprint: fp.to_string(),
                    ends_at: now,
                    reason: reason.into(),
                    report: None,
                }),
            )
            .expecting(version)
        };
        let mut events = Vec::new();
        match event {
            PagerDutyEvent::Trigger { alert, .. } => {
                // A re-trigger with other labels (say, a new severity) replaces
                // the alert: the old fingerprint resolves.
                if let Some((fp, a)) = &known
                    && *fp != alert.fingerprint
                    && a.firing
                {
                    events.push(resolve(
                        *fp,
                        a.last_seq,
                        "superseded by a trigger with other labels",
                    ));
                }
                events.extend(self.plan("pagerduty", now, std::iter::once(alert.as_ref())));
            }
            PagerDutyEvent::Acknowledge { dedup_key } => {
                // PagerDuty accepts acks of unknown or closed incidents and
                // ignores them; so does Fenghuo.
                if let Some((fp, a)) = known.filter(|(_, a)| a.firing && !a.acked) {
                    events.push(
                        NewEvent::new(
                            now,
                            "pagerduty",
                            fp.to_string(),
                            EventKind::AlertAcked {
                                fingerprint: fp.to_string(),
                                by: "pagerduty-event".into(),
                                dedup_key: Some(dedup_key.clone()),
                            },
                        )
                        .expecting(a.last_seq),
                    );
                }
            }
            PagerDutyEvent::Resolve { .. } => {
                if let Some((fp, a)) = known.filter(|(_, a)| a.firing) {
                    events.push(resolve(fp, a.last_seq, "resolved by source"));
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T19:00:00Z".parse().unwrap()
    }

    #[test]
    fn refusals_name_the_field_as_pagerduty_does() {
        // (body, field) — one row per rule.
        let table: &[(&str, &str)] = &[
            (r#"{"event_action":"trigger"}"#, "routing_key"),
            (r#"{"routing_key":"k"}"#, "event_action"),
            (
                r#"{"routing_key":"k","event_action":"explode"}"#,
                "event_action",
            ),
            (
                r#"{"routing_key":"k","event_action":"resolve"}"#,
                "dedup_key",
            ),
            (r#"{"routing_key":"k","event_action":"trigger"}"#, "payload"),
            (
                r#"{"routing_key":"k","event_action":"trigger","payload":{"source":"s","severity":"info"}}"#,
                "payload.summary",
            ),
            (
                r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","severity":"info"}}"#,
                "payload.source",
            ),
            (
                r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"bad"}}"#,
                "payload.severity",
            ),
            (
                r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info","timestamp":"soon"}}"#,
                "payload.timestamp",
            ),
            (r#"{"routing_key":7}"#, "routing_key"),
        ];
        for (body, field) in table {
            let err = parse(body.as_bytes(), now(), || "gen".into()).unwrap_err();
            assert_eq!(&err.field, field, "{body}");
        }
    }

    #[test]
    fn trigger_becomes_an_alert_keyed_by_dedup_key_without_the_routing_key() {
        let body = br#"{"routing_key":"R0UTINGKEY0000000000000000000000","event_action":"trigger",
          "payload":{"summary":"disk full on db-1","source":"db-1","severity":"critical",
          "component":"postgres","group":"prod-db","class":"disk","custom_details":{"free":"1%"}},
          "links":[{"href":"http://runbook","text":"runbook"}]}"#;
        let ev = parse(body, now(), || "generated".into()).unwrap();
        let PagerDutyEvent::Trigger { dedup_key, alert } = ev else {
            panic!("trigger expected")
        };
        assert_eq!(dedup_key, "generated");
        let r = &alert.report;
        assert_eq!(&r.labels["alertname"], "disk");
        assert_eq!(&r.labels["dedup_key"], "generated");
        assert_eq!(&r.labels["severity"], "critical");
        assert_eq!(&r.labels["component"], "postgres");
        assert_eq!(&r.annotations["summary"], "disk full on db-1");
        assert_eq!(&r.annotations["custom_details"], r#"{"free":"1%"}"#);
        let stored = serde_json::to_string(r).unwrap();
        assert!(
            !stored.contains("R0UTINGKEY"),
            "routing key leaked: {stored}"
        );
        assert_eq!(r.extra["pagerduty"]["links"][0]["text"], "runbook");
    }
}
