//! `AppError`: every way an HTTP request can fail, and the status and JSON
//! body each one gets. Bodies name the field or the limit; they never echo
//! secrets or internal paths.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::eventlog::LogError;
use crate::ingest::IngestError;

#[derive(Debug)]
pub enum AppError {
    /// The body is not what the endpoint takes (400), naming the field.
    Invalid(IngestError),
    /// A query parameter is wrong (400).
    BadQuery { param: String, message: String },
    /// The body is over `ingest.max_body_bytes` (413).
    TooLarge { limit: usize },
    /// The body is not JSON by its `Content-Type` (415).
    UnsupportedMediaType { got: String },
    /// The log could not commit; nothing was stored (503: retry later).
    Storage(Arc<LogError>),
    /// Shutting down (503).
    Unavailable,
    /// No such entity (404), e.g. a silence id.
    NotFound(String),
    /// The request does not fit the entity's state (409), e.g. an
    /// incident already acknowledged.
    Conflict(String),
}

impl AppError {
    /// A short, stable reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            AppError::Invalid(e) if e.field.is_empty() => "malformed",
            AppError::Invalid(_) => "invalid",
            AppError::BadQuery { .. } => "bad_query",
            AppError::TooLarge { .. } => "too_large",
            AppError::UnsupportedMediaType { .. } => "unsupported_media_type",
            AppError::Storage(_) => "storage",
            AppError::Unavailable => "unavailable",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) | AppError::BadQuery { .. } => StatusCode::BAD_REQUEST,
            AppError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Storage(_) | AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
        }
    }

    /// The message a sender reads.
    pub fn message(&self) -> String {
        match self {
            AppError::Invalid(e) if e.field.is_empty() => format!("malformed body: {}", e.message),
            AppError::Invalid(e) => format!("{}: {}", e.field, e.message),
            AppError::BadQuery { param, message } => format!("{param}: {message}"),
            AppError::TooLarge { limit } => {
                format!("body exceeds the limit of {limit} bytes (ingest.max_body_bytes)")
            }
            AppError::UnsupportedMediaType { got } => {
                format!("Content-Type must be application/json, not {got:?}")
            }
            AppError::Storage(_) => {
                "the event log could not commit; nothing was stored, retry".into()
            }
            AppError::Unavailable => "shutting down; retry against another instance".into(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::Conflict(why) => why.clone(),
        }
    }

    /// Fenghuo's own error body: `{"error": …}` plus `field` or `limit`.
    pub fn body(&self) -> Value {
        let mut body = json!({ "status": "error", "error": self.message() });
        match self {
            AppError::Invalid(e) if !e.field.is_empty() => body["field"] = json!(e.field),
            AppError::BadQuery { param, .. } => body["field"] = json!(param),
            AppError::TooLarge { limit } => body["limit"] = json!(limit),
            _ => {}
        }
        body
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        AppError::Invalid(e)
    }
}

impl From<Arc<LogError>> for AppError {
    fn from(e: Arc<LogError>) -> Self {
        match *e {
            LogError::Closed => AppError::Unavailable,
            _ => AppError::Storage(e),
        }
    }
}

impl From<LogError> for AppError {
    fn from(e: LogError) -> Self {
        AppError::from(Arc::new(e))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Storage(e) = &self {
            tracing::error!(error = %e, "request failed in the event log");
        }
        (self.status(), Json(self.body())).into_response()
    }
}
