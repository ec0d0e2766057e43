//! Heartbeats: `POST /api/v1/heartbeats/{name}` says a job is alive. Each
//! one is a `heartbeat.received` event; rules with `absent:` (a dead man's
//! switch) alert when they stop. The body is optional: `{"labels": {…}}`
//! adds labels the rules may group on.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::IngestError;
use crate::eventlog::{EventKind, Heartbeat, LabelSet, NewEvent};

/// The longest heartbeat name taken.
pub const MAX_NAME: usize = 128;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    labels: LabelSet,
}

/// The event a heartbeat named `name` with `body` (empty, or JSON) records.
pub fn parse(name: &str, body: &[u8], now: DateTime<Utc>) -> Result<NewEvent, IngestError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(IngestError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(IngestError::new(
            "name",
            format!("{c:?} is not allowed: use letters, digits, '.', '_', '-', ':'"),
        ));
    }
    let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        super::error::parse_json(body)?
    };
    super::validate::names(&body.labels, "labels")?;
    Ok(NewEvent::new(
        now,
        "api",
        name,
        EventKind::HeartbeatReceived(Heartbeat {
            name: name.to_string(),
            labels: body.labels,
        }),
    ))
}
