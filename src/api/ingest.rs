//! The ingest endpoints: read the body within its limit, hand it to the
//! matching parser in `src/ingest/`, answer as the sender's own peer would
//! (Alertmanager: 200 and an empty body; PagerDuty: 202 and its JSON).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppError, AppState};
use crate::ingest::{alertmanager, pagerduty};

/// Reads a JSON body: `Content-Type` must be JSON when given (415), the size
/// within the limit (413).
pub(crate) async fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, AppError> {
    if state.shutting_down() {
        return Err(AppError::Unavailable);
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(AppError::UnsupportedMediaType {
                got: ct.to_string(),
            });
        }
    }
    let limit = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::TooLarge { limit })
}

pub(crate) fn count(endpoint: &'static str, result: Result<usize, &AppError>) {
    match result {
        Ok(alerts) => {
            metrics::counter!(crate::metrics::INGEST_REQUESTS, "endpoint" => endpoint, "outcome" => "accepted")
                .increment(1);
            metrics::counter!(crate::metrics::INGEST_ALERTS, "endpoint" => endpoint)
                .increment(alerts as u64);
        }
        Err(e) => {
            metrics::counter!(crate::metrics::INGEST_REQUESTS, "endpoint" => endpoint, "outcome" => "rejected")
                .increment(1);
            metrics::counter!(crate::metrics::INGEST_REJECTED, "endpoint" => endpoint, "reason" => e.reason())
                .increment(1);
            tracing::debug!(endpoint, reason = e.reason(), error = %e.message(), "ingest refused");
        }
    }
}

/// `POST /api/v2/alerts`: what Prometheus sends to an Alertmanager.
pub async fn alertmanager_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, AppError> {
    let result = async {
        let bytes = json_body(&state, &headers, body).await?;
        let ingest = &state.pipeline.ingest;
        let alerts = alertmanager::parse_v2(
            &bytes,
            ingest.clock().now(),
            ingest.settings.resolve_timeout,
        )?;
        Ok(ingest.alerts("prometheus", alerts).await?.alerts)
    }
    .await;
    count("alertmanager_v2", result.as_ref().copied());
    result.map(|_| StatusCode::OK)
}

/// `POST /ingest/alertmanager`: an Alertmanager (or Grafana) webhook.
pub async fn alertmanager_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, AppError> {
    let result = async {
        let bytes = json_body(&state, &headers, body).await?;
        let ingest = &state.pipeline.ingest;
        let alerts = alertmanager::parse_webhook(&bytes, ingest.clock().now())?;
        Ok(ingest.alerts("alertmanager", alerts).await?)
    }
    .await;
    count("alertmanager_webhook", result.as_ref().map(|o| o.alerts));
    let outcome = result?;
    Ok(Json(
        json!({"status": "success", "alerts": outcome.alerts, "stored": outcome.stored}),
    ))
}

/// `POST /api/v1/events` and `POST /v2/enqueue`: PagerDuty Events API v2.
/// Errors keep PagerDuty's shape (`status`, `message`, `errors`) and add
/// Fenghuo's `field`.
pub async fn pagerduty_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = json_body(&state, &headers, body).await?;
        let ingest = &state.pipeline.ingest;
        let event = pagerduty::parse(&bytes, ingest.clock().now(), || {
            uuid::Uuid::new_v4().simple().to_string()
        })?;
        Ok(ingest.pagerduty(event).await?)
    }
    .await;
    count("pagerduty", result.as_ref().map(|_| 1));
    match result {
        Ok(dedup_key) => (
            StatusCode::ACCEPTED,
            Json(
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
            ),
        )
            .into_response(),
        Err(e @ (AppError::Invalid(_) | AppError::UnsupportedMediaType { .. })) => {
            let mut body = e.body();
            body["status"] = json!("invalid event");
            body["message"] = json!("Event object is invalid");
            body["errors"] = json!([e.message()]);
            (e.status(), Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/heartbeats/{name}`: a job says it is alive. The body is
/// optional (`{"labels": {…}}`). 200 once the `heartbeat.received` event is
/// committed, with its `seq`.
pub async fn heartbeat(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let result = async {
        let bytes = json_body(&state, &headers, body).await?;
        record_heartbeat(&state, &name, &bytes).await
    }
    .await;
    count("heartbeat", result.as_ref().map(|_| 0));
    let seq = result?;
    Ok((
        StatusCode::OK,
        Json(json!({"status": "success", "seq": seq})),
    )
        .into_response())
}

/// `GET /api/v1/heartbeats/{name}`: the same heartbeat for cron jobs that
/// run `curl -fsS URL` (no body, no labels). It records, so it is not
/// safe to prefetch; 200 with one line of text once committed.
pub async fn heartbeat_get(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let result = if state.shutting_down() {
        Err(AppError::Unavailable)
    } else {
        record_heartbeat(&state, &name, b"").await
    };
    count("heartbeat", result.as_ref().map(|_| 0));
    let seq = result?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("heartbeat {name} recorded (seq {seq})\n"),
    )
        .into_response())
}

/// Records the heartbeat `name` with `body` (empty, or `{"labels": …}`);
/// its `seq` once committed.
async fn record_heartbeat(state: &AppState, name: &str, body: &[u8]) -> Result<u64, AppError> {
    let now = state.pipeline.clock.now();
    let event = crate::ingest::heartbeat::parse(name, body, now)?;
    let appended = state.pipeline.log.append(vec![event]).await?;
    Ok(appended[0].seq)
}
