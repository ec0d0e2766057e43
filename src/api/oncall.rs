//! `GET /api/v1/oncall?schedule=NAME&at=RFC3339&shifts=N`: who is on call,
//! how to reach them, and the shift they are in (plus the next `N`).
//!
//! `at` defaults to the server clock's now. The answer is computed from the
//! config the server runs on; nothing is read from or written to the log.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppError, AppState};
use crate::escalate::{OnCall, PersonName, Shift};

/// The most upcoming shifts one request may list.
pub const MAX_SHIFTS: usize = 100;

#[derive(Debug, Deserialize, Default)]
pub struct OnCallParams {
    schedule: Option<String>,
    at: Option<String>,
    shifts: Option<String>,
}

fn bad(param: &str, message: impl Into<String>) -> AppError {
    AppError::BadQuery {
        param: param.into(),
        message: message.into(),
    }
}

pub async fn get(
    State(state): State<AppState>,
    Query(params): Query<OnCallParams>,
) -> Result<Json<Value>, AppError> {
    // Compiling is microseconds for any real config, and the config was
    // checked when it was loaded.
    let oncall = state.pipeline.config().oncall().map_err(|e| {
        bad(
            "schedule",
            format!("the configured schedules are invalid: {e}"),
        )
    })?;
    let known = || oncall.schedule_names().join(", ");
    let name = params
        .schedule
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("schedule", format!("required; schedules: {}", known())))?;
    let schedule = oncall
        .schedule(name)
        .ok_or_else(|| AppError::NotFound(format!("schedule {name:?} (schedules: {})", known())))?;
    let at = match params.at.as_deref() {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad("at", format!("not an RFC 3339 time ({e})")))?,
        None => state.pipeline.clock.now(),
    };
    let n = match params.shifts.as_deref() {
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n <= MAX_SHIFTS => n,
            _ => return Err(bad("shifts", format!("must be 0 to {MAX_SHIFTS}"))),
        },
        None => 0,
    };
    let current = schedule.shift_at(at);
    let next: Vec<Value> = schedule
        .upcoming(at, n)
        .iter()
        .map(|s| shift(&oncall, s))
        .collect();
    Ok(Json(json!({
        "schedule": schedule.name(),
        "time_zone": schedule.zone().name(),
        "at": rfc3339(at),
        "on_call": people(&oncall, &current.people),
        "shift": {
            "start": current.start.map(rfc3339),
            "end": current.end.map(rfc3339),
        },
        "next": next,
    })))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// People with their contact points (none of which is a secret).
fn people(oncall: &OnCall, names: &[PersonName]) -> Vec<Value> {
    names
        .iter()
        .map(|n| match oncall.person(n) {
            Some(p) => serde_json::to_value(p).unwrap_or_else(|_| json!({ "name": n })),
            None => json!({ "name": n }),
        })
        .collect()
}

fn shift(oncall: &OnCall, s: &Shift) -> Value {
    json!({
        "start": rfc3339(s.start),
        "end": rfc3339(s.end),
        "on_call": people(oncall, &s.people),
    })
}
