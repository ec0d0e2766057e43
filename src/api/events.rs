//! Reading the log over HTTP: pages by `seq` and a Server-Sent Events tail.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState};
use crate::eventlog::{EventKind, EventQuery, tail};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// `?after=SEQ&limit=N&kind=K[,K…]&key=KEY&since=T&until=T`
#[derive(Debug, Deserialize, Default)]
pub struct EventsParams {
    after: Option<String>,
    limit: Option<String>,
    kind: Option<String>,
    key: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn bad(param: &str, message: impl Into<String>) -> AppError {
    AppError::BadQuery {
        param: param.into(),
        message: message.into(),
    }
}

fn time(param: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    v.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(param, format!("not an RFC 3339 time ({e})")))
        })
        .transpose()
}

impl EventsParams {
    fn query(&self, default_after: u64) -> Result<EventQuery, AppError> {
        let after = match &self.after {
            Some(s) => s
                .parse()
                .map_err(|_| bad("after", "must be a non-negative integer seq"))?,
            None => default_after,
        };
        let limit = match &self.limit {
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(bad("limit", format!("must be 1 to {MAX_LIMIT}"))),
            },
            None => DEFAULT_LIMIT,
        };
        let mut kinds = Vec::new();
        for k in self
            .kind
            .iter()
            .flat_map(|k| k.split(','))
            .filter(|k| !k.is_empty())
        {
            if !EventKind::NAMES.contains(&k) {
                return Err(bad(
                    "kind",
                    format!("unknown kind {k:?}; known: {}", EventKind::NAMES.join(", ")),
                ));
            }
            kinds.push(k.to_string());
        }
        Ok(EventQuery {
            after,
            limit,
            kinds,
            key: self.key.clone().filter(|k| !k.is_empty()),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            mentions: None,
        })
    }
}

/// `GET /api/v1/events`: one page; `next_after` continues it.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<EventsParams>,
) -> Result<Json<serde_json::Value>, AppError> {
    let query = params.query(0)?;
    let log = state.pipeline.log.clone();
    let q = query.clone();
    let events = tokio::task::spawn_blocking(move || log.read(&q))
        .await
        .map_err(|_| AppError::Unavailable)??;
    let next_after = events.last().map_or(query.after, |e| e.seq);
    Ok(Json(json!({
        "events": events,
        "next_after": next_after,
        "head": state.pipeline.log.last_seq(),
    })))
}

/// `GET /api/v1/events/stream`: every event after `after` (or the
/// `Last-Event-ID` a reconnecting client sends), then live ones. Each SSE
/// message has `id: seq`, `event: kind` and the event as JSON.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, AppError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let default_after = resume.unwrap_or_else(|| state.pipeline.log.last_seq());
    let query = params.query(default_after)?;
    let after = resume.unwrap_or(query.after);
    let kinds = query.kinds;
    let key = query.key;
    let events = tail(&state.pipeline.log, after, move |e| {
        (kinds.is_empty() || kinds.iter().any(|k| k == e.kind.name()))
            && key.as_ref().is_none_or(|k| *k == e.key)
    });
    let mut shutdown = state.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let stream = events.take_until(Box::pin(stop)).map(|item| {
        Ok(match item {
            Ok(event) => sse::Event::default()
                .id(event.seq.to_string())
                .event(event.kind.name())
                .json_data(&*event)
                .unwrap_or_else(|_| sse::Event::default().comment("unserialisable event")),
            Err(e) => sse::Event::default().event("error").data(e.to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
