//! Releases and remediation over HTTP: record a release and its status,
//! read an app's history and rollback target, ask the gate (the answer is
//! recorded before it is given), list remediation runs and approve one.
//!
//! Handlers check the body and hand it to the log; what a release means
//! and what the gate weighs belong to `src/act/`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ingest::json_body;
use super::{AppError, AppState};
use crate::act::release::{ReleaseState, STATUSES};
use crate::act::remediation::{ApproveError, Run};
use crate::eventlog::event::{Release, ReleaseStatusChange};
use crate::eventlog::{EventKind, NewEvent};
use crate::ingest::IngestError;

/// Longest app, env, cluster, version or name accepted.
const MAX_FIELD: usize = 256;

fn show(r: &ReleaseState) -> Value {
    json!({
        "id": r.release.id,
        "app": r.release.app,
        "env": r.release.env,
        "cluster": r.release.cluster,
        "version": r.release.version,
        "by": r.release.by,
        "changeUrl": r.release.change_url,
        "strategy": r.release.strategy,
        "via": r.release.via,
        "status": r.status,
        "recordedAt": r.recorded_at,
        "startedAt": r.started_at,
        "finishedAt": r.finished_at,
        "suspected": r.suspected,
        "evidence": r.evidence.iter().map(|s| json!({
            "kind": s.evidence_kind,
            "subject": s.subject,
            "evidence": s.evidence,
            "severity": s.severity,
            "afterSecs": s.after_secs,
            "seq": s.evidence_seq,
        })).collect::<Vec<_>>(),
    })
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid(IngestError::new(field, message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRelease {
    app: String,
    #[serde(alias = "environment")]
    env: String,
    #[serde(default)]
    cluster: String,
    version: String,
    #[serde(default)]
    by: String,
    #[serde(default, alias = "changeUrl")]
    change_url: String,
    #[serde(default)]
    strategy: String,
    /// `started` to record and start at once.
    #[serde(default)]
    status: Option<String>,
}

fn required(field: &str, value: &str) -> Result<(), AppError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    short(field, value)
}

fn short(field: &str, value: &str) -> Result<(), AppError> {
    if value.len() > MAX_FIELD {
        return Err(invalid(field, format!("longer than {MAX_FIELD} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// `POST /api/v1/releases`: 201 with the release once it is committed. An
/// `Idempotency-Key` header makes a re-sent request answer the same
/// release and store nothing.
pub async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let bytes = json_body(&state, &headers, body).await?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let new: NewRelease = serde_path_to_error::deserialize(de).map_err(IngestError::from_json)?;
    required("app", &new.app)?;
    required("env", &new.env)?;
    required("version", &new.version)?;
    short("cluster", &new.cluster)?;
    short("by", &new.by)?;
    short("strategy", &new.strategy)?;
    if new.change_url.len() > 2048 {
        return Err(invalid("change_url", "longer than 2048 bytes"));
    }
    if !new.change_url.is_empty() && reqwest::Url::parse(&new.change_url).is_err() {
        return Err(invalid("change_url", "is not a URL"));
    }
    match new.status.as_deref() {
        None | Some("started") => {}
        Some(other) => {
            return Err(invalid(
                "status",
                format!("{other:?}: a new release may only be `started`"),
            ));
        }
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty());
    let id = match key {
        Some(k) => format!("rel-{}", crate::act::stage::short_hash(k)),
        None => format!("rel-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    if key.is_some()
        && let Some(existing) = state.pipeline.releases.get(&id)
    {
        return Ok((StatusCode::OK, Json(show(&existing))));
    }
    let now = state.pipeline.clock.now();
    let mut events = vec![
        NewEvent::new(
            now,
            "api",
            id.clone(),
            EventKind::ReleaseRecorded(Release {
                id: id.clone(),
                app: new.app,
                env: new.env,
                cluster: new.cluster,
                version: new.version,
                by: new.by.clone(),
                change_url: new.change_url,
                strategy: new.strategy,
                via: "api".into(),
            }),
        )
        .idempotent(format!("release:{id}")),
    ];
    if new.status.is_some() {
        events.push(NewEvent::new(
            now,
            "api",
            id.clone(),
            EventKind::ReleaseStatusChanged(ReleaseStatusChange {
                id: id.clone(),
                status: "started".into(),
                by: new.by,
                reason: String::new(),
            }),
        ));
    }
    state.pipeline.log.append(events).await?;
    let stored = state
        .pipeline
        .releases
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("release {id:?}")))?;
    Ok((StatusCode::CREATED, Json(show(&stored))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    reason: String,
}

/// Which status may follow which.
fn may_follow(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("recorded", "started" | "succeeded" | "failed")
            | ("started", "succeeded" | "failed" | "rolled_back")
            | ("succeeded" | "failed", "rolled_back")
    )
}

/// `POST /api/v1/releases/{id}/status`: `started`, `succeeded`, `failed`
/// or `rolled_back`. The same status again changes nothing (a retry).
pub async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let bytes = json_body(&state, &headers, body).await?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let body: StatusBody = serde_path_to_error::deserialize(de).map_err(IngestError::from_json)?;
    if !STATUSES.contains(&body.status.as_str()) {
        return Err(invalid(
            "status",
            format!("{:?}: want one of {}", body.status, STATUSES.join(", ")),
        ));
    }
    short("by", &body.by)?;
    if body.reason.len() > 4096 {
        return Err(invalid("reason", "longer than 4096 bytes"));
    }
    let release = state
        .pipeline
        .releases
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("release {id:?}")))?;
    if release.status == body.status {
        return Ok(Json(show(&release)));
    }
    if !may_follow(&release.status, &body.status) {
        return Err(AppError::Conflict(format!(
            "release {id} is {}; it cannot become {}",
            release.status, body.status
        )));
    }
    let now = state.pipeline.clock.now();
    state
        .pipeline
        .log
        .append(vec![NewEvent::new(
            now,
            "api",
            id.clone(),
            EventKind::ReleaseStatusChanged(ReleaseStatusChange {
                id: id.clone(),
                status: body.status,
                by: body.by,
                reason: body.reason,
            }),
        )])
        .await?;
    let stored = state
        .pipeline
        .releases
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("release {id:?}")))?;
    Ok(Json(show(&stored)))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    app: Option<String>,
    env: Option<String>,
}

/// `GET /api/v1/releases?app=&env=`: newest first, with the rollback
/// target (the last succeeded release before the newest one).
pub async fn history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, AppError> {
    let app = q.app.unwrap_or_default();
    let env = q.env.unwrap_or_default();
    let releases = state.pipeline.releases.history(&app, &env);
    let target = (!app.is_empty() && !env.is_empty())
        .then(|| state.pipeline.releases.rollback_target(&app, &env))
        .flatten();
    Ok(Json(json!({
        "app": app,
        "env": env,
        "rollbackTarget": target.as_ref().map(|t| json!({
            "id": t.release.id,
            "version": t.release.version,
        })),
        "releases": releases.iter().map(show).collect::<Vec<_>>(),
    })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let r = state
        .pipeline
        .releases
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("release {id:?}")))?;
    let mut out = show(&r);
    out["rollbackTarget"] = json!(
        state
            .pipeline
            .releases
            .rollback_target_of(&id)
            .map(|t| json!({"id": t.release.id, "version": t.release.version}))
    );
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct GateQuery {
    app: Option<String>,
    env: Option<String>,
    cluster: Option<String>,
    by: Option<String>,
}

/// `GET /api/v1/releases/gate?app=&env=&cluster=`: allow or deny with the
/// reasons, answered once the decision is recorded.
pub async fn gate(
    State(state): State<AppState>,
    Query(q): Query<GateQuery>,
) -> Result<Json<Value>, AppError> {
    if state.shutting_down() {
        return Err(AppError::Unavailable);
    }
    let param = |name: &str, v: Option<String>, required: bool| -> Result<String, AppError> {
        let v = v.unwrap_or_default();
        if required && v.trim().is_empty() {
            return Err(AppError::BadQuery {
                param: name.into(),
                message: "is required".into(),
            });
        }
        if v.len() > MAX_FIELD || v.chars().any(char::is_control) {
            return Err(AppError::BadQuery {
                param: name.into(),
                message: format!("at most {MAX_FIELD} bytes, no control characters"),
            });
        }
        Ok(v)
    };
    let app = param("app", q.app, true)?;
    let env = param("env", q.env, true)?;
    let cluster = param("cluster", q.cluster, false)?;
    let by = param("by", q.by, false)?;
    let pipeline = &state.pipeline;
    let now = pipeline.clock.now();
    let routing = pipeline.routing();
    let act = pipeline.act();
    let mut decision = crate::act::gate::decide(
        &crate::act::gate::GateViews {
            config: act.releases_config(),
            intervals: &routing.intervals,
            alerts: &pipeline.store,
            incidents: &pipeline.incidents,
            releases: &pipeline.releases,
        },
        &app,
        &env,
        &cluster,
        now,
    );
    decision.asked_by = by;
    let appended = pipeline
        .log
        .append(vec![NewEvent::new(
            now,
            "api",
            format!("gate:{app}/{env}/{cluster}"),
            EventKind::ReleaseGateDecided(decision.clone()),
        )])
        .await?;
    let verdict = if decision.allowed { "allow" } else { "deny" };
    let message = if decision.allowed {
        "allow".to_string()
    } else {
        format!("deny: {}", decision.reasons.join("; "))
    };
    Ok(Json(json!({
        "decision": verdict,
        "allowed": decision.allowed,
        "reasons": decision.reasons,
        "message": message,
        "seq": appended.first().map(|a| a.seq),
    })))
}

fn show_run(r: &Run) -> Value {
    json!({
        "id": r.due.id,
        "action": r.due.action,
        "app": r.due.app,
        "env": r.due.env,
        "scope": r.due.scope,
        "release": r.due.release,
        "rollbackTo": r.due.rollback_to,
        "reason": r.due.reason,
        "trigger": r.due.trigger,
        "request": {
            "method": r.due.request.method,
            "url": r.due.request.url,
            "headers": r.due.request.header_names,
        },
        "requireAck": r.due.require_ack,
        "status": r.status,
        "approvedBy": r.approved_by,
        "attempts": r.attempts,
        "nextAt": r.next_at,
        "lastStatus": r.last_status,
        "lastError": r.last_error,
        "decidedAt": r.decided_at,
    })
}

/// `GET /api/v1/remediations`: every run remembered, newest first.
pub async fn remediations(State(state): State<AppState>) -> Json<Value> {
    let runs = state.pipeline.remediator.state().all();
    Json(Value::Array(runs.iter().map(show_run).collect()))
}

pub async fn remediation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let run = state
        .pipeline
        .remediator
        .state()
        .get(&id)
        .ok_or_else(|| AppError::NotFound(format!("remediation {id:?}")))?;
    Ok(Json(show_run(&run)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    #[serde(default)]
    by: String,
}

impl From<ApproveError> for AppError {
    fn from(e: ApproveError) -> Self {
        match e {
            ApproveError::Unknown(id) => AppError::NotFound(format!("remediation {id:?}")),
            ApproveError::NoApprover => invalid("by", "who approves is required"),
            ApproveError::Log(e) => AppError::from(e),
            other => AppError::Conflict(other.to_string()),
        }
    }
}

/// `POST /api/v1/remediations/{id}/approve` with `{"by": "alice"}`.
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let bytes = json_body(&state, &headers, body).await?;
    let body: ApproveBody = if bytes.is_empty() {
        ApproveBody::default()
    } else {
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map_err(IngestError::from_json)?
    };
    short("by", &body.by)?;
    let now = state.pipeline.clock.now();
    crate::act::remediation::approve(
        &state.pipeline.log,
        state.pipeline.remediator.state(),
        &id,
        &body.by,
        "api",
        None,
        now,
    )
    .await?;
    remediation(State(state), Path(id)).await
}

/// `GET /act/{token}` of an "Approve" link: what would be called, and a
/// button that POSTs it. Changes nothing.
pub(super) fn confirm_approval(
    state: &AppState,
    claims: &crate::escalate::link::Claims,
) -> axum::response::Response {
    use super::incidents::{esc, page};
    let Some(run) = state.pipeline.remediator.state().get(&claims.i) else {
        return page(
            StatusCode::NOT_FOUND,
            "Remediation not found",
            "<p>It may be long gone.</p>",
        );
    };
    if run.status != "waiting_approval" {
        return page(
            StatusCode::CONFLICT,
            "Nothing to approve",
            &format!(
                "<p>{} is {}{}.</p>",
                esc(&run.due.id),
                esc(&run.status),
                run.approved_by
                    .as_ref()
                    .map(|b| format!(" (approved by {})", esc(b)))
                    .unwrap_or_default()
            ),
        );
    }
    page(
        StatusCode::OK,
        &format!("Approve {}?", run.due.action),
        &format!(
            "<p>{}</p><p><code>{} {}</code></p><p>As <b>{}</b>.</p>\
             <form method=\"post\"><button type=\"submit\" style=\"padding:10px 20px;font-size:16px;\
             background:#1f6feb;color:#fff;border:0;border-radius:6px\">Approve</button></form>",
            esc(&run.due.reason),
            esc(&run.due.request.method),
            esc(&run.due.request.url),
            esc(&claims.p),
        ),
    )
}

/// `POST /act/{token}` of an "Approve" link: approves the run as the person
/// the page was sent to. A run is approved once.
pub(super) async fn approve_by_link(
    state: &AppState,
    claims: &crate::escalate::link::Claims,
) -> axum::response::Response {
    use super::incidents::{esc, page};
    let now = state.pipeline.clock.now();
    match crate::act::remediation::approve(
        &state.pipeline.log,
        state.pipeline.remediator.state(),
        &claims.i,
        &claims.p,
        "link",
        Some(claims.n.clone()),
        now,
    )
    .await
    {
        Ok(_) => page(
            StatusCode::OK,
            &format!("Approved: {}", claims.i),
            &format!(
                "<p>Recorded as <b>{}</b>. The call follows.</p>",
                esc(&claims.p)
            ),
        ),
        Err(ApproveError::Log(_)) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not recorded",
            "<p>Fenghuo could not record this right now; nothing changed. Try again.</p>",
        ),
        Err(e) => page(
            StatusCode::CONFLICT,
            "Nothing to approve",
            &format!("<p>{}.</p>", esc(&e.to_string())),
        ),
    }
}
