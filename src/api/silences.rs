//! Silences over Alertmanager's API v2: create, update, list, get, expire.
//! Every change is an event; what the API shows is the `SilenceStore` fold.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppError, AppState};
use crate::evaluate::matcher::ApiMatcher;
use crate::evaluate::silence::{self, Silence, SilenceState};
use crate::eventlog::{EventKind, NewEvent, SilenceSpec};
use crate::ingest::IngestError;
use crate::ingest::error::parse_json;

/// `postableSilence`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<ApiMatcher>,
    starts_at: DateTime<FixedOffset>,
    ends_at: DateTime<FixedOffset>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `gettableSilence`.
pub fn gettable(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.spec.id,
        "status": {"state": s.state_at(now).as_str()},
        "updatedAt": time(s.updated_at),
        "comment": s.spec.comment,
        "createdBy": s.spec.created_by,
        "endsAt": time(s.spec.ends_at),
        "matchers": s.spec.matchers,
        "startsAt": time(s.spec.starts_at),
    })
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid(IngestError::new(field, message))
}

/// Alertmanager's rule for changing a silence in place: a pending one may
/// change freely; an active one only its end, comment and author, and not
/// into the past; an expired one not at all (a new silence replaces it).
fn can_update(prev: &Silence, next: &SilenceSpec, now: DateTime<Utc>) -> bool {
    match prev.state_at(now) {
        SilenceState::Pending => next.starts_at >= now,
        SilenceState::Active => {
            next.starts_at == prev.spec.starts_at
                && next.matchers == prev.spec.matchers
                && next.ends_at > now
        }
        SilenceState::Expired => false,
    }
}

/// `POST /api/v2/silences` → `{"silenceID": …}`.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let bytes = super::ingest::json_body(&state, &headers, body).await?;
    let posted: PostableSilence = parse_json(&bytes)?;
    let now = state.pipeline.clock.now();
    let mut spec = SilenceSpec {
        id: posted.id.clone().unwrap_or_default(),
        matchers: posted.matchers,
        // A start in the past means "now", as in Alertmanager.
        starts_at: posted.starts_at.with_timezone(&Utc).max(now),
        ends_at: posted.ends_at.with_timezone(&Utc),
        created_by: posted.created_by,
        comment: posted.comment,
    };
    silence::validate(&spec, now).map_err(|(field, message)| invalid(&field, message))?;

    let mut events = Vec::new();
    let previous = match posted.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => Some(find(&state, id)?),
        None => None,
    };
    match previous {
        Some(prev) if can_update(&prev, &spec, now) => {
            events.push(NewEvent::new(
                now,
                "api",
                spec.id.clone(),
                EventKind::SilenceUpdated(spec.clone()),
            ));
        }
        other => {
            // A change Alertmanager cannot make in place ends the old
            // silence (if still running) and starts a new one.
            if let Some(prev) = other
                && prev.state_at(now) != SilenceState::Expired
            {
                events.push(NewEvent::new(
                    now,
                    "api",
                    prev.spec.id.clone(),
                    EventKind::SilenceExpired {
                        id: prev.spec.id.clone(),
                        ends_at: now,
                    },
                ));
            }
            spec.id = uuid::Uuid::new_v4().to_string();
            events.push(NewEvent::new(
                now,
                "api",
                spec.id.clone(),
                EventKind::SilenceCreated(spec.clone()),
            ));
        }
    }
    state.pipeline.log.append(events).await?;
    Ok(Json(json!({ "silenceID": spec.id })))
}

/// `GET /api/v2/silences?filter=…`: a silence is listed when every filter
/// matcher matches the labels its own equality matchers describe.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AppError> {
    let filter = super::alertmanager::filter_param(&params)?;
    let now = state.pipeline.clock.now();
    let out: Vec<Value> = state
        .pipeline
        .silences
        .all()
        .iter()
        .filter(|s| {
            let described = s
                .spec
                .matchers
                .iter()
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            filter.matches(&described)
        })
        .map(|s| gettable(s, now))
        .collect();
    Ok(Json(Value::Array(out)))
}

fn find(state: &AppState, id: &str) -> Result<Silence, AppError> {
    state
        .pipeline
        .silences
        .get(id)
        .ok_or_else(|| AppError::NotFound(format!("silence {id}")))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let s = find(&state, &id)?;
    Ok(Json(gettable(&s, state.pipeline.clock.now())))
}

/// `DELETE /api/v2/silence/{id}`: ends it now.
pub async fn expire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let s = find(&state, &id)?;
    let now = state.pipeline.clock.now();
    if s.state_at(now) == SilenceState::Expired {
        return Err(invalid("id", format!("silence {id} already expired")));
    }
    state
        .pipeline
        .log
        .append(vec![NewEvent::new(
            now,
            "api",
            id.clone(),
            EventKind::SilenceExpired { id, ends_at: now },
        )])
        .await?;
    Ok(Json(Value::Null))
}
