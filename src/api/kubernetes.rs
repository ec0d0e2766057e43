//! `POST /ingest/kubernetes`: Kubernetes Event objects (core/v1,
//! events.k8s.io/v1, an `EventList`, or kubernetes-event-exporter's webhook
//! body). 200 once what changed is committed, with how many events came
//! and how many were stored; 4xx naming the field, and nothing stored, for
//! a body that is not one of those.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::ingest::{count, json_body};
use super::{AppError, AppState};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KubernetesQuery {
    /// The cluster the events come from, when the body does not say
    /// (kubernetes-event-exporter's `clusterName` wins).
    #[serde(default)]
    cluster: String,
}

pub async fn ingest(
    State(state): State<AppState>,
    query: Result<Query<KubernetesQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, AppError> {
    let result = async {
        let Query(query) = query.map_err(|e| AppError::BadQuery {
            param: "cluster".into(),
            message: e.body_text(),
        })?;
        if query.cluster.contains('/') {
            return Err(AppError::BadQuery {
                param: "cluster".into(),
                message: "must not contain '/'".into(),
            });
        }
        let bytes = json_body(&state, &headers, body).await?;
        let events = crate::ingest::kubernetes::parse(&bytes, &query.cluster)?;
        Ok(state
            .pipeline
            .kubernetes
            .store("kubernetes", events, None)
            .await?)
    }
    .await;
    count("kubernetes", result.as_ref().map(|o| o.events));
    let outcome = result?;
    Ok(Json(json!({
        "status": "success",
        "events": outcome.events,
        "stored": outcome.stored,
    })))
}

/// Watch health for `/metrics`: when each cluster last progressed, how
/// long it has been quiet, and the size of the dedup index.
pub fn export_metrics(state: &AppState, now: chrono::DateTime<chrono::Utc>) {
    let pipeline = &state.pipeline;
    for cluster in &pipeline.config().kubernetes.clusters {
        if let Some(at) = pipeline.kubernetes.watches().last_heard(&cluster.name) {
            metrics::gauge!(crate::metrics::K8S_WATCH_LAST_PROGRESS, "cluster" => cluster.name.clone())
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
    }
    for (cluster, secs) in pipeline.quiet_seconds(now) {
        metrics::gauge!(crate::metrics::K8S_WATCH_QUIET_SECONDS, "cluster" => cluster).set(secs);
    }
    metrics::gauge!(crate::metrics::K8S_EVENTS_INDEXED)
        .set(pipeline.kubernetes.index().len() as f64);
}
