//! Acting on an incident: acknowledge, unacknowledge, resolve, snooze.
//! One entry point for the API, the CLI, action links and PagerDuty-style
//! events, so each checks the same things and records the same event.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::incident::Incidents;
use crate::eventlog::event::IncidentAction;
use crate::eventlog::{EventKind, EventLog, LogError, NewEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Ack,
    Unack,
    Resolve,
    Snooze,
    /// Approve a remediation run that waits for a person (its link names
    /// the run, not an incident; see `act::remediation`).
    Approve,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "ack" | "acknowledge" => Some(Action::Ack),
            "unack" | "unacknowledge" => Some(Action::Unack),
            "resolve" => Some(Action::Resolve),
            "snooze" => Some(Action::Snooze),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ack => "ack",
            Action::Unack => "unack",
            Action::Resolve => "resolve",
            Action::Snooze => "snooze",
            Action::Approve => "approve",
        }
    }

    /// For pages and buttons: `Acknowledge`, ….
    pub fn label(self) -> &'static str {
        match self {
            Action::Ack => "Acknowledge",
            Action::Unack => "Unacknowledge",
            Action::Resolve => "Resolve",
            Action::Snooze => "Snooze 1h",
            Action::Approve => "Approve",
        }
    }
}

/// Who acts, how, and with what.
#[derive(Debug, Clone)]
pub struct Request {
    pub incident: String,
    pub action: Action,
    pub by: String,
    /// `api`, `cli`, `link`, `pagerduty`.
    pub via: String,
    /// Snooze: until when (required).
    pub until: Option<DateTime<Utc>>,
    /// An action link's token id (refused if already used).
    pub token: Option<String>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("no incident {0:?}")]
    Unknown(String),
    #[error("incident {0} is already resolved")]
    Resolved(String),
    #[error("incident {id} is already acknowledged by {by}")]
    AlreadyAcked { id: String, by: String },
    #[error("incident {0} is not acknowledged")]
    NotAcked(String),
    #[error("this link was already used")]
    TokenUsed,
    #[error("{0}")]
    Invalid(String),
    #[error("event log: {0}")]
    Log(Arc<LogError>),
}

/// Checks `req` against the incident as the log has it and records it.
/// `ack_timeout` (from the incident's policy) sets when an ack lapses.
pub async fn act(
    log: &EventLog,
    incidents: &Incidents,
    req: Request,
    now: DateTime<Utc>,
    ack_timeout: Option<chrono::Duration>,
) -> Result<IncidentAction, ActError> {
    let Some(incident) = incidents.get(&req.incident) else {
        return Err(ActError::Unknown(req.incident));
    };
    if let Some(t) = &req.token
        && incident.used_tokens.contains(t)
    {
        return Err(ActError::TokenUsed);
    }
    if !incident.is_open() {
        return Err(ActError::Resolved(incident.id));
    }
    let mut until = None;
    match req.action {
        Action::Ack => {
            if let Some(ack) = &incident.ack {
                return Err(ActError::AlreadyAcked {
                    id: incident.id,
                    by: ack.by.clone(),
                });
            }
            until = ack_timeout.map(|t| now + t);
        }
        Action::Unack => {
            if incident.ack.is_none() {
                return Err(ActError::NotAcked(incident.id));
            }
        }
        Action::Snooze => match req.until {
            Some(u) if u > now => until = Some(u),
            _ => {
                return Err(ActError::Invalid(
                    "snooze needs `until` in the future".into(),
                ));
            }
        },
        Action::Resolve => {}
        Action::Approve => {
            return Err(ActError::Invalid(
                "approve applies to remediation runs, not incidents".into(),
            ));
        }
    }
    if req.by.trim().is_empty() {
        return Err(ActError::Invalid("`by` (who acts) is required".into()));
    }
    let action = IncidentAction {
        incident: incident.id.clone(),
        by: req.by,
        via: req.via,
        until,
        token: req.token,
        reason: req.reason,
    };
    let kind = match req.action {
        Action::Ack => EventKind::IncidentAcknowledged(action.clone()),
        Action::Unack => EventKind::IncidentUnacknowledged(action.clone()),
        Action::Resolve => EventKind::IncidentResolved(action.clone()),
        Action::Snooze => EventKind::IncidentSnoozed(action.clone()),
        Action::Approve => unreachable!("refused above"),
    };
    // A token is spent once: the idempotency key makes a racing second
    // click store nothing.
    let mut event = NewEvent::new(now, "api", incident.id.clone(), kind);
    if let Some(t) = &action.token {
        event = event.idempotent(format!("link:{t}"));
    }
    let stored = log.append(vec![event]).await.map_err(ActError::Log)?;
    if stored.first().is_some_and(|a| a.duplicate) {
        return Err(ActError::TokenUsed);
    }
    Ok(action)
}
