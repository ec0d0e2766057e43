//! The read side of Alertmanager's API v2, in Alertmanager's shapes, so
//! `amtool` and dashboards such as karma work against Fenghuo unchanged.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde_json::{Value, json};

use super::{AppError, AppState};
use crate::evaluate::alerts::StoredAlert;
use crate::evaluate::matcher::{Matchers, parse as parse_matchers};

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Go's zero time: how Alertmanager writes an unset `endsAt`.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

fn bool_param(params: &[(String, String)], name: &str) -> Result<bool, AppError> {
    match params.iter().rev().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => v.parse().map_err(|_| AppError::BadQuery {
            param: name.into(),
            message: format!("must be true or false, not {v:?}"),
        }),
    }
}

/// The matchers of every `filter=` parameter, as Alertmanager reads them.
pub(super) fn filter_param(params: &[(String, String)]) -> Result<Matchers, AppError> {
    let mut filter = Matchers::new();
    for (_, f) in params.iter().filter(|(k, _)| k == "filter") {
        let parsed = parse_matchers(f).map_err(|e| AppError::BadQuery {
            param: "filter".into(),
            message: format!("bad matcher format {f:?}: {e}"),
        })?;
        filter.0.extend(parsed.0);
    }
    Ok(filter)
}

/// Alerts firing at `now`, with their fingerprints as text.
fn firing_at(state: &AppState, now: DateTime<Utc>) -> Vec<(String, StoredAlert)> {
    state
        .pipeline
        .store
        .all()
        .into_iter()
        .filter(|(_, a)| a.firing_at(now))
        .map(|(fp, a)| (fp.to_string(), a))
        .collect()
}

/// Alerts resolved recently enough to still inhibit under some rule's
/// `grace`, with their fingerprints as text.
fn remembered_at(state: &AppState, now: DateTime<Utc>) -> Vec<(String, StoredAlert)> {
    let rules = &state.pipeline.routing().inhibit_rules;
    if rules.is_empty() {
        return Vec::new();
    }
    let since = now - crate::evaluate::inhibit::longest_grace(rules);
    state
        .pipeline
        .store
        .filtered(|a| !a.firing_at(now) && a.ends_at.is_some_and(|e| e > since))
        .into_iter()
        .map(|(fp, a)| (fp.to_string(), a))
        .collect()
}

/// What inhibits `alert` under the configured rules, as the dispatcher
/// sees it: firing sources by fingerprint, sources resolved within their
/// grace with when and until when.
fn inhibited_by(
    state: &AppState,
    alert: &StoredAlert,
    firing: &[(String, StoredAlert)],
    remembered: &[(String, StoredAlert)],
    now: DateTime<Utc>,
) -> Vec<String> {
    use crate::evaluate::inhibit::Source;
    let routing = state.pipeline.routing();
    let joins = state.pipeline.dispatcher.joins(&routing);
    crate::evaluate::inhibit::inhibitions_at(
        &routing.inhibit_rules,
        (&alert.report.fingerprint, &alert.report.labels),
        firing
            .iter()
            .map(|(f, a)| Source {
                fingerprint: f,
                labels: &a.report.labels,
                resolved_at: None,
            })
            .chain(remembered.iter().map(|(f, a)| Source {
                fingerprint: f,
                labels: &a.report.labels,
                resolved_at: a.ends_at,
            })),
        now,
        Some(&joins),
    )
    .into_iter()
    .map(|i| i.to_string())
    .collect()
}

/// The receivers an alert's labels route to, in routing order.
fn receivers_of(state: &AppState, alert: &StoredAlert) -> Vec<String> {
    let routing = state.pipeline.routing();
    let Some(tree) = &routing.tree else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for route in tree.matching(&alert.report.labels) {
        if !names.iter().any(|n| n == route.receiver()) {
            names.push(route.receiver().to_string());
        }
    }
    names
}

/// `GET /api/v2/alerts?filter=…&active=&silenced=&inhibited=&unprocessed=&receiver=`
pub async fn alerts(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AppError> {
    let listed = listed_alerts(&state, &params)?;
    Ok(Json(Value::Array(
        listed.into_iter().map(|l| l.json).collect(),
    )))
}

/// An alert as the API lists it.
struct Listed {
    alert: StoredAlert,
    json: Value,
}

/// The alerts `params` select (`filter`, `active`, `silenced`, `inhibited`,
/// `receiver`), in fingerprint order, each in Alertmanager's JSON shape.
fn listed_alerts(state: &AppState, params: &[(String, String)]) -> Result<Vec<Listed>, AppError> {
    let filter = filter_param(params)?;
    let active = bool_param(params, "active")?;
    let silenced = bool_param(params, "silenced")?;
    let inhibited = bool_param(params, "inhibited")?;
    // Nothing is unprocessed: an alert is evaluated as soon as it is read.
    bool_param(params, "unprocessed")?;
    let receiver = match params.iter().rev().find(|(k, _)| k == "receiver") {
        Some((_, r)) => {
            Some(
                Regex::new(&format!("^(?:{r})$")).map_err(|e| AppError::BadQuery {
                    param: "receiver".into(),
                    message: format!("bad regex: {e}"),
                })?,
            )
        }
        None => None,
    };

    let now = state.pipeline.clock.now();
    // Alertmanager lists what has not ended.
    let firing = firing_at(state, now);
    let remembered = remembered_at(state, now);
    let mut out = Vec::new();
    for (fp, alert) in &firing {
        if !filter.matches(&alert.report.labels) {
            continue;
        }
        let silenced_by = state.pipeline.silences.muting(&alert.report.labels, now);
        // Alertmanager's shape: fingerprints only, also of causes resolved
        // within their grace.
        let inhibited_by: Vec<String> = inhibited_by(state, alert, &firing, &remembered, now)
            .into_iter()
            .map(|why| why.split(' ').next().unwrap_or_default().to_string())
            .collect();
        let suppressed = !silenced_by.is_empty() || !inhibited_by.is_empty();
        if (!silenced_by.is_empty() && !silenced)
            || (!inhibited_by.is_empty() && !inhibited)
            || (!suppressed && !active)
        {
            continue;
        }
        let receivers = receivers_of(state, alert);
        if let Some(re) = &receiver
            && !receivers.iter().any(|r| re.is_match(r))
        {
            continue;
        }
        let r = &alert.report;
        out.push(Listed {
            json: json!({
                "annotations": r.annotations,
                "endsAt": alert.ends_at.map(time).unwrap_or_else(|| GO_ZERO_TIME.into()),
                "fingerprint": fp,
                "receivers": receivers.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                "startsAt": time(r.starts_at),
                "status": {
                    "inhibitedBy": inhibited_by,
                    "silencedBy": silenced_by,
                    "state": if suppressed { "suppressed" } else { "active" },
                },
                "updatedAt": time(alert.updated_at),
                "generatorURL": r.generator_url,
                "labels": r.labels,
            }),
            alert: alert.clone(),
        });
    }
    Ok(out)
}

/// `GET /api/v2/alerts/groups`: the listed alerts grouped as the routing
/// tree groups them (one group per route and `group_by` label values),
/// as karma and Alertmanager's UI read them.
pub async fn groups(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AppError> {
    let routing = state.pipeline.routing();
    let Some(tree) = &routing.tree else {
        return Ok(Json(json!([])));
    };
    let receiver = params
        .iter()
        .rev()
        .find(|(k, _)| k == "receiver")
        .map(|(_, r)| r.clone());
    // Keyed by route id and group labels: AM's group keys can repeat
    // across sibling routes with equal matchers.
    let mut groups: std::collections::BTreeMap<(String, String), (String, Value, Vec<Value>)> =
        std::collections::BTreeMap::new();
    let without_receiver: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "receiver")
        .cloned()
        .collect();
    let receiver_re = match &receiver {
        Some(r) => Some(
            Regex::new(&format!("^(?:{r})$")).map_err(|e| AppError::BadQuery {
                param: "receiver".into(),
                message: format!("bad regex: {e}"),
            })?,
        ),
        None => None,
    };
    for listed in listed_alerts(&state, &without_receiver)? {
        for route in tree.matching(&listed.alert.report.labels) {
            if receiver_re
                .as_ref()
                .is_some_and(|re| !re.is_match(route.receiver()))
            {
                continue;
            }
            let labels = crate::evaluate::route::group_labels(route, &listed.alert.report.labels);
            let key = crate::evaluate::route::label_set_string(&labels);
            groups
                .entry((route.id().to_string(), key))
                .or_insert_with(|| (route.receiver().to_string(), json!(labels), Vec::new()))
                .2
                .push(listed.json.clone());
        }
    }
    let out: Vec<Value> = groups
        .into_values()
        .map(|(receiver, labels, alerts)| {
            json!({"labels": labels, "receiver": {"name": receiver}, "alerts": alerts})
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `GET /api/v2/status` (what `amtool config show` reads), with the
/// configuration's secrets redacted.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "cluster": {"name": "", "peers": [], "status": "disabled"},
        "config": {"original": state.pipeline.config().redacted()},
        "uptime": time(state.started_at),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": concat!("fenghuo-", env!("CARGO_PKG_VERSION")),
        },
    }))
}

/// `GET /api/v2/receivers`: the configured receivers' names.
pub async fn receivers(State(state): State<AppState>) -> Json<Value> {
    let names: Vec<Value> = state
        .pipeline
        .config()
        .receivers
        .iter()
        .map(|r| json!({ "name": r.name }))
        .collect();
    Json(Value::Array(names))
}

/// Why an alert is (not) paging, as far as the log can say today: its
/// current state and mute reasons, and every event about it in order.
/// `GET /api/v1/alerts/{fingerprint}/history`.
pub async fn history(
    State(state): State<AppState>,
    axum::extract::Path(fingerprint): axum::extract::Path<String>,
) -> Result<Json<Value>, AppError> {
    let fp =
        crate::evaluate::Fingerprint::parse(&fingerprint).ok_or_else(|| AppError::BadQuery {
            param: "fingerprint".into(),
            message: "must be 16 hex digits, as Alertmanager shows it".into(),
        })?;
    let log = state.pipeline.log.clone();
    let key = fp.to_string();
    let events = tokio::task::spawn_blocking(move || {
        // Its own events, and the group decisions that name it (grouped,
        // notified, left out as muted), merged in log order.
        let mut events = log.read(&crate::eventlog::EventQuery {
            key: Some(key.clone()),
            ..Default::default()
        })?;
        events.extend(log.read(&crate::eventlog::EventQuery {
            kinds: vec!["notification.due".into()],
            mentions: Some(key),
            ..Default::default()
        })?);
        events.sort_by_key(|e| e.seq);
        Ok::<_, crate::eventlog::LogError>(events)
    })
    .await
    .map_err(|_| AppError::Unavailable)??;
    let Some(alert) = state.pipeline.store.get(fp) else {
        return Err(AppError::NotFound(format!("alert {fp}")));
    };
    let now = state.pipeline.clock.now();
    let inhibited_by = if alert.firing_at(now) {
        inhibited_by(
            &state,
            &alert,
            &firing_at(&state, now),
            &remembered_at(&state, now),
            now,
        )
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "fingerprint": fp.to_string(),
        "labels": alert.report.labels,
        "state": if alert.firing_at(now) { "firing" } else { "resolved" },
        "endsAt": alert.ends_at.map(time),
        "receivers": receivers_of(&state, &alert),
        "silencedBy": state.pipeline.silences.muting(&alert.report.labels, now),
        "inhibitedBy": inhibited_by,
        // Flapping alerts are muted (reason `flapping`) after one notice.
        "flapping": state
            .pipeline
            .dispatcher
            .flaps()
            .get(&fp.to_string())
            .and_then(|s| s.flapping),
        "events": events,
    })))
}

#[derive(Debug, serde::Deserialize)]
pub struct AtParams {
    at: Option<String>,
}

/// Time travel: alerts and silences as they were at `?at=` (RFC 3339),
/// rebuilt from the events the log had recorded by then.
/// `GET /api/v1/state?at=TIME`.
pub async fn state_at(
    State(state): State<AppState>,
    Query(params): Query<AtParams>,
) -> Result<Json<Value>, AppError> {
    let at = match &params.at {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| AppError::BadQuery {
                param: "at".into(),
                message: format!("not an RFC 3339 time ({e})"),
            })?,
        None => state.pipeline.clock.now(),
    };
    let log = state.pipeline.log.clone();
    let views = tokio::task::spawn_blocking(move || {
        let views = crate::pipeline::Views::new();
        crate::eventlog::replay_as_of(&log, &views.projections(), at, |_, _| {}).map(|_| views)
    })
    .await
    .map_err(|_| AppError::Unavailable)??;
    let alerts: Vec<Value> = views
        .alerts
        .all()
        .iter()
        .filter(|(_, a)| a.firing_at(at))
        .map(|(fp, a)| {
            json!({
                "fingerprint": fp.to_string(),
                "labels": a.report.labels,
                "annotations": a.report.annotations,
                "startsAt": time(a.report.starts_at),
                "endsAt": a.ends_at.map(time),
                "silencedBy": views.silences.muting(&a.report.labels, at),
            })
        })
        .collect();
    let silences: Vec<Value> = views
        .silences
        .all()
        .iter()
        .map(|s| super::silences::gettable(s, at))
        .collect();
    Ok(Json(json!({
        "at": time(at),
        "alerts": alerts,
        "silences": silences,
        "alertsKnown": views.alerts.len(),
    })))
}
