//! Incidents over HTTP: list and show them, act on them (`POST
//! /api/v1/incidents/{id}/{ack|unack|resolve|snooze}`), and the pages behind
//! action links (`GET /act/{token}` confirms, `POST /act/{token}` acts).
//!
//! Link pages are HTML for people; everything they echo is escaped. A GET
//! never changes anything: chat apps fetch every link they see.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppError, AppState};
use crate::escalate::actions::{self, ActError, Action, Request};
use crate::escalate::incident::Incident;
use crate::escalate::link::LinkError;

fn show(i: &Incident, now: DateTime<Utc>) -> Value {
    json!({
        "id": i.id,
        "status": i.status(now),
        "group": i.group.group_key,
        "groupLabels": i.group.group_labels,
        "route": i.group.route,
        "receiver": i.group.receiver,
        "openedAt": i.opened_at,
        "firing": i.firing.len(),
        "acknowledgedBy": i.ack.as_ref().map(|a| &a.by),
        "acknowledgedAt": i.ack.as_ref().map(|a| a.at),
        "acknowledgedUntil": i.ack.as_ref().and_then(|a| a.until),
        "snoozedUntil": i.snoozed_until.filter(|u| *u > now),
        "closedAt": i.closed_at,
        "closedBy": i.closed_by,
        "escalation": {
            "policy": i.escalation.policy,
            "pass": i.escalation.iteration,
            "nextStep": i.escalation.next_step,
            "nextAt": i.escalation.next_at,
            "finished": i.escalation.finished,
        },
        "paged": i.paged,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// `open` (default) or `all` (the recently closed too).
    status: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let now = state.pipeline.clock.now();
    let incidents = match q.status.as_deref().unwrap_or("open") {
        "open" => state.pipeline.incidents.open(),
        "all" => state.pipeline.incidents.all(),
        other => {
            return Err(AppError::BadQuery {
                param: "status".into(),
                message: format!("{other:?}: want open or all"),
            });
        }
    };
    Ok(Json(Value::Array(
        incidents.iter().map(|i| show(i, now)).collect(),
    )))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let now = state.pipeline.clock.now();
    let i = state
        .pipeline
        .incidents
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("incident {id:?}")))?;
    Ok(Json(show(&i, now)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    by: Option<String>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: String,
}

impl From<ActError> for AppError {
    fn from(e: ActError) -> Self {
        match e {
            ActError::Unknown(id) => AppError::NotFound(format!("incident {id:?}")),
            ActError::Log(e) => AppError::from(e),
            ActError::Invalid(why) => AppError::BadQuery {
                param: "body".into(),
                message: why,
            },
            other => AppError::Conflict(other.to_string()),
        }
    }
}

/// Runs `req` with the incident's policy's ack timeout.
async fn run(state: &AppState, req: Request) -> Result<(), ActError> {
    let now = state.pipeline.clock.now();
    let timeout = state.pipeline.escalator().ack_timeout(&req.incident);
    actions::act(
        &state.pipeline.log,
        &state.pipeline.incidents,
        req,
        now,
        timeout,
    )
    .await
    .map(|_| ())
}

pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    let action = Action::parse(&action).ok_or_else(|| {
        AppError::NotFound(format!("action {action:?} (ack, unack, resolve, snooze)"))
    })?;
    let body: ActBody = if body.is_empty() {
        ActBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadQuery {
            param: "body".into(),
            message: e.to_string(),
        })?
    };
    let by = body
        .by
        .filter(|b| !b.trim().is_empty())
        .ok_or(AppError::BadQuery {
            param: "by".into(),
            message: "who acts is required".into(),
        })?;
    run(
        &state,
        Request {
            incident: id.clone(),
            action,
            by,
            via: "api".into(),
            until: body.until,
            token: None,
            reason: body.reason,
        },
    )
    .await?;
    get(State(state), Path(id)).await
}

/// A small page, everything escaped.
pub(super) fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title></head>\
         <body style=\"font-family:-apple-system,'Segoe UI',Helvetica,Arial,'PingFang SC',sans-serif;\
         max-width:560px;margin:40px auto;padding:0 16px;color:#1f2328;line-height:1.5\">\
         <h2>{}</h2>{body_html}</body></html>",
        esc(title),
        esc(title)
    );
    (status, Html(html)).into_response()
}

pub(super) fn esc(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let _ = tera::escape_html(s, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn link_refused(e: &LinkError) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This link cannot be used",
        &format!(
            "<p>{}.</p><p>Open the incident in Fenghuo or ask for a new page.</p>",
            esc(&e.to_string())
        ),
    )
}

/// What the incident looks like, for the confirmation page.
fn describe(i: &Incident, now: DateTime<Utc>) -> String {
    let labels: Vec<String> = i
        .group
        .group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "<p><b>{}</b> · {} firing · {}<br>opened {}</p>",
        esc(&i.id),
        i.firing.len(),
        esc(i.status(now)),
        esc(&i.opened_at.format("%Y-%m-%d %H:%M UTC").to_string()),
    ) + &format!("<p><code>{}</code></p>", esc(&labels.join(", ")))
}

/// `GET /act/{token}`: shows what the link would do, and a button that
/// POSTs it. Changes nothing.
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = state.pipeline.clock.now();
    let claims = match state.pipeline.links.verify(&token, now) {
        Ok(c) => c,
        Err(e) => return link_refused(&e),
    };
    if claims.a == Action::Approve {
        return super::releases::confirm_approval(&state, &claims);
    }
    let Some(incident) = state.pipeline.incidents.get(&claims.i) else {
        return page(
            StatusCode::NOT_FOUND,
            "Incident not found",
            "<p>It may have been resolved long ago.</p>",
        );
    };
    if incident.used_tokens.contains(&claims.n) {
        return link_refused_used();
    }
    let label = claims.a.label();
    page(
        StatusCode::OK,
        &format!("{label} incident {}?", incident.id),
        &format!(
            "{}<p>As <b>{}</b>.</p>\
             <form method=\"post\"><button type=\"submit\" style=\"padding:10px 20px;font-size:16px;\
             background:#1f6feb;color:#fff;border:0;border-radius:6px\">{}</button></form>",
            describe(&incident, now),
            esc(&claims.p),
            esc(label)
        ),
    )
}

fn link_refused_used() -> Response {
    page(
        StatusCode::CONFLICT,
        "This link was already used",
        "<p>Each link works once. Open the incident in Fenghuo to see who acted.</p>",
    )
}

/// `POST /act/{token}`: does what the link says, as the person it was
/// sent to, once.
pub async fn perform(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = state.pipeline.clock.now();
    let claims = match state.pipeline.links.verify(&token, now) {
        Ok(c) => c,
        Err(e) => return link_refused(&e),
    };
    if claims.a == Action::Approve {
        return super::releases::approve_by_link(&state, &claims).await;
    }
    let req = Request {
        incident: claims.i.clone(),
        action: claims.a,
        by: claims.p.clone(),
        via: "link".into(),
        until: (claims.a == Action::Snooze).then(|| now + chrono::Duration::hours(1)),
        token: Some(claims.n.clone()),
        reason: String::new(),
    };
    match run(&state, req).await {
        Ok(()) => page(
            StatusCode::OK,
            &format!("Done: {} {}", claims.a.label(), claims.i),
            &format!(
                "<p>Recorded as <b>{}</b>. Escalation follows from here.</p>",
                esc(&claims.p)
            ),
        ),
        Err(ActError::TokenUsed) => link_refused_used(),
        Err(ActError::Log(_)) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not recorded",
            "<p>Fenghuo could not record this right now; nothing changed. Try again.</p>",
        ),
        Err(e) => page(
            StatusCode::CONFLICT,
            "Nothing to do",
            &format!("<p>{}.</p>", esc(&e.to_string())),
        ),
    }
}

#[derive(Deserialize)]
pub struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/stats?from=&to=`: the period's MTTA/MTTR, pages per person
/// and noisiest alerts, computed from the log (default: the last 7 days).
pub async fn stats(
    State(state): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, AppError> {
    let now = state.pipeline.clock.now();
    let (from, to) =
        crate::cli::incident_period(q.from.as_deref(), q.to.as_deref(), now).map_err(|e| {
            AppError::BadQuery {
                param: "from/to".into(),
                message: e.to_string(),
            }
        })?;
    let pipeline = state.pipeline.clone();
    let stats = tokio::task::spawn_blocking(move || {
        let oncall = pipeline.config().oncall().unwrap_or_default();
        let zone = |p: &str| {
            oncall
                .person(&crate::escalate::PersonName::from(p))
                .and_then(|p| p.time_zone)
                .map(|z| z.0)
        };
        crate::escalate::stats::compute(&pipeline.log, from, to, &zone)
    })
    .await
    .map_err(|_| AppError::Unavailable)??;
    Ok(Json(serde_json::to_value(stats).unwrap_or_default()))
}
