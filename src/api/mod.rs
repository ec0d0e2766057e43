//! The HTTP API: one [`app`] builds the whole router, so every route and the
//! state it sees are in one place.
//!
//! Handlers parse and answer; what a payload means belongs to `src/ingest/`,
//! what the log holds to `src/eventlog/`. Errors are one [`AppError`].

mod alertmanager;
mod error;
mod events;
mod incidents;
mod ingest;
mod kubernetes;
mod oncall;
mod releases;
mod silences;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

pub use error::AppError;

use crate::pipeline::Pipeline;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    /// False until the log is replayed, and again once shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Turns true when the process starts shutting down; long-lived streams end.
    pub shutdown: watch::Receiver<bool>,
    /// When this server started, by its clock (Alertmanager's `uptime`).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    pub fn new(pipeline: Arc<Pipeline>, shutdown: watch::Receiver<bool>) -> Self {
        let max_body_bytes = pipeline.config().ingest.max_body_bytes.0;
        AppState {
            metrics: crate::metrics::install(),
            max_body_bytes,
            ready: Arc::new(AtomicBool::new(true)),
            shutdown,
            started_at: pipeline.clock.now(),
            pipeline,
        }
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Builds the router over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/metrics", get(render_metrics))
        // Ingest.
        .route("/ingest/alertmanager", post(ingest::alertmanager_webhook))
        .route(
            "/api/v1/events",
            post(ingest::pagerduty_event).get(events::list),
        )
        .route("/v2/enqueue", post(ingest::pagerduty_event))
        .route(
            "/api/v1/heartbeats/{name}",
            post(ingest::heartbeat).get(ingest::heartbeat_get),
        )
        .route("/ingest/kubernetes", post(kubernetes::ingest))
        // Reading the log.
        .route("/api/v1/events/stream", get(events::stream))
        // Alertmanager API v2, read side.
        .route(
            "/api/v2/alerts",
            get(alertmanager::alerts).post(ingest::alertmanager_v2),
        )
        .route("/api/v2/alerts/groups", get(alertmanager::groups))
        .route("/api/v2/status", get(alertmanager::status))
        .route("/api/v2/receivers", get(alertmanager::receivers))
        .route("/api/v2/silences", get(silences::list).post(silences::post))
        .route(
            "/api/v1/alerts/{fingerprint}/history",
            get(alertmanager::history),
        )
        .route("/api/v1/state", get(alertmanager::state_at))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/stats", get(incidents::stats))
        .route("/api/v1/incidents/{id}", get(incidents::get))
        .route("/api/v1/incidents/{id}/{action}", post(incidents::act))
        .route(
            "/act/{token}",
            get(incidents::confirm).post(incidents::perform),
        )
        // Escalation.
        .route("/api/v1/oncall", get(oncall::get))
        // Releases and remediation.
        .route(
            "/api/v1/releases",
            get(releases::history).post(releases::record),
        )
        .route("/api/v1/releases/gate", get(releases::gate))
        .route("/api/v1/releases/{id}", get(releases::get))
        .route("/api/v1/releases/{id}/status", post(releases::set_status))
        .route("/api/v1/remediations", get(releases::remediations))
        .route("/api/v1/remediations/{id}", get(releases::remediation))
        .route("/api/v1/remediations/{id}/approve", post(releases::approve))
        .route(
            "/api/v2/silence/{id}",
            get(silences::get).delete(silences::expire),
        )
        .with_state(state)
}

async fn healthy() -> &'static str {
    "Fenghuo is Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) && !state.shutting_down() {
        (StatusCode::OK, "Fenghuo is Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Fenghuo is not ready.\n")
    }
}

/// `POST /-/reload` (Prometheus' and Alertmanager's endpoint): loads the
/// rule files and config again. 200 once the new set is in force and
/// recorded; 400 with every problem (`FILE:LINE:COL: …`) when any is
/// found, and the running set stays in force.
async fn reload(State(state): State<AppState>) -> axum::response::Response {
    if state.shutting_down() {
        return AppError::Unavailable.into_response();
    }
    match state.pipeline.reload("POST /-/reload").await {
        Ok(r) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "success",
                "rules": r.rules,
                "hash": r.hash,
                "files": r.files,
            })),
        )
            .into_response(),
        Err(errors) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "status": "error",
                "error": format!("reload refused; the running rules and config stay in force: {}", errors.join("; ")),
                "errors": errors,
            })),
        )
            .into_response(),
    }
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let now = state.pipeline.clock.now();
    metrics::gauge!(crate::metrics::ALERTS_INDEXED).set(state.pipeline.alerts.len() as f64);
    metrics::gauge!("fenghuo_alerts_firing").set(state.pipeline.alerts.firing_count(now) as f64);
    metrics::gauge!("fenghuo_log_last_seq").set(state.pipeline.log.last_seq() as f64);
    kubernetes::export_metrics(&state, now);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
