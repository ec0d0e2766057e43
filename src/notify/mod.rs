//! Notify: turns `notification.due` decisions into messages people read.
//!
//! This module owns the channels (one file each under [`channels`], split
//! into its config and its sending), the tera [`templates`], and the
//! delivery [`outbox`]: the worker that takes due notifications from the log
//! and records `notification.sent` / `notification.failed` for each attempt.
//!
//! It must never decide *whether* to notify (the evaluate stage did, and the
//! decision is in the log), never read HTTP requests, and never read the wall
//! clock: every signature timestamp and retry time comes from the clock it is
//! given, and every outcome is an event, so replay folds what happened
//! without sending anything again.
//!
//! The contract of a channel is [`Notifier`]: `render` builds the outgoing
//! [`Payload`] from a [`Message`] (pure, so `fenghuo template render` can
//! preview it), and `send` delivers a payload and classifies the outcome
//! ([`Delivered`] or a [`DeliveryError`] that says whether to retry).

pub mod channels;
pub mod config;
pub mod outbox;
pub mod secret;
pub mod templates;
pub mod threads;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use config::{ReceiverRuntime, Receivers};
pub use secret::Secret;
pub use templates::Templates;

use crate::eventlog::event::LabelSet;

/// What a message is about: one group's alerts at one flush, or a digest of
/// several. This is the context every template gets; its fields are named
/// for tera (snake_case), and the webhook channel maps them to
/// Alertmanager's webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub receiver: String,
    /// `firing` if any alert in the message fires, else `resolved`.
    pub status: String,
    /// Firing alerts first (new ones first among them), then resolved.
    pub alerts: Vec<AlertData>,
    pub group_key: String,
    pub group_labels: LabelSet,
    /// Labels and annotations every alert in the message shares.
    pub common_labels: LabelSet,
    pub common_annotations: LabelSet,
    /// Where Fenghuo is reachable, for links back (`notify.external_url`).
    pub external_url: String,
    /// Counts of what the message carries and what changed since the last
    /// message of this group.
    pub counts: Counts,
    /// Nothing changed since the last message; `repeat_interval` passed.
    pub repeat: bool,
    /// A one-line summary, e.g. `[FIRING:3] HighLatency (api prod)`.
    pub title: String,
    /// Set when this message folds several due notifications into one
    /// because the receiver hit its rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Links the on-call engineer can act on (acknowledge, silence, …),
    /// filled by the escalation stage; empty until then.
    #[serde(default)]
    pub actions: Vec<ActionLink>,
    /// `seq` of the `notification.due` event(s) this message delivers.
    pub due_seqs: Vec<u64>,
    /// Whom an escalation page is for: mentioned in IM, recipients of an
    /// email. Empty for a route's own message.
    #[serde(default)]
    pub to: Vec<crate::eventlog::event::Recipient>,
    /// The incident the message belongs to, as of sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentNote>,
    /// What the firing alerts' symptoms muted with them amount to, e.g.
    /// `40 pods and 5 services affected`; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub symptoms: String,
    /// How the message follows the group's earlier ones (templates see
    /// its fields at the top level: `changes_only`, `unchanged_count`,
    /// `in_place`).
    #[serde(flatten, default)]
    pub follow_up: FollowUp,
}

/// How a message follows the group's earlier ones. All false and zero for
/// a group's first page, a repeat, a digest: those list everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// A follow-up page listing in full only what changed (new and
    /// resolved alerts, flapping notices); the alerts marked `unchanged`
    /// are counted, not listed (route `pages.follow_ups: changes`).
    #[serde(default)]
    pub changes_only: bool,
    /// Firing alerts the group's previous message already listed, with
    /// nothing new to say about them.
    #[serde(default)]
    pub unchanged_count: usize,
    /// The message edits the group's last message where the channel can
    /// (`pages.update_in_place`); it lists the group's whole state.
    #[serde(default)]
    pub in_place: bool,
}

/// An incident as a message shows it: who took it, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentNote {
    pub id: String,
    /// `open`, `acknowledged`, `snoozed`, `resolved`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<DateTime<Utc>>,
}

/// One alert as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertData {
    /// `firing` or `resolved`.
    pub status: String,
    pub fingerprint: String,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    /// Not in the previous message of its group.
    pub is_new: bool,
    /// `labels.severity`, for templates that colour by it.
    pub severity: String,
    /// `annotations.runbook_url` (or `runbook`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// `annotations.summary`, else `description`, else the alert name.
    pub summary: String,
    /// How long it has been firing at the time of the message, e.g. `3m`.
    pub duration: String,
    /// Firing and listed by the group's previous message, with nothing new
    /// to say (no flapping notice): a changes-only follow-up counts it
    /// instead of listing it.
    #[serde(default)]
    pub unchanged: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub firing: usize,
    pub resolved: usize,
    /// Firing and not in the previous message.
    pub new: usize,
}

/// Several groups' notifications in one message: what a rate-limited
/// receiver gets instead of one message per group, and the resolves held
/// for a receiver's digest (`pages: {resolved: digest}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// Groups folded into this message, first (oldest) first.
    pub groups: Vec<DigestGroup>,
    /// Alerts and groups beyond those the message lists in full.
    pub more_alerts: usize,
    pub more_groups: usize,
    /// Why they were folded together; templates word the message by it.
    #[serde(default)]
    pub reason: DigestReason,
    /// For a digest of resolves: the end of the window it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Why a [`Digest`] was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestReason {
    /// The receiver is over its `rate_limit`: the surplus goes in one message.
    #[default]
    RateLimit,
    /// Resolves held until the end of the receiver's digest window.
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestGroup {
    pub group_labels: LabelSet,
    pub firing: usize,
    pub resolved: usize,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLink {
    /// `Acknowledge`, `Resolve`, `Silence 1h`, …
    pub label: String,
    pub url: String,
}

/// What a channel sends, built by [`Notifier::render`].
#[derive(Clone, PartialEq)]
pub enum Payload {
    /// A POST of `body` to `url` (which may hold a token: never print it).
    Http {
        url: String,
        content_type: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Email(EmailMessage),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Http {
                content_type, body, ..
            } => f
                .debug_struct("Http")
                .field("url", &"<secret>")
                .field("content_type", content_type)
                .field("body", &String::from_utf8_lossy(body))
                .finish(),
            Payload::Email(m) => m.fmt(f),
        }
    }
}

impl Payload {
    /// The payload as `fenghuo template render` prints it: the body, with
    /// the destination left out (webhook URLs carry tokens).
    pub fn preview(&self) -> String {
        match self {
            Payload::Http {
                content_type, body, ..
            } => {
                let body = String::from_utf8_lossy(body);
                let pretty = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok());
                format!(
                    "POST <url hidden>\nContent-Type: {content_type}\n\n{}\n",
                    pretty.as_deref().unwrap_or(&body)
                )
            }
            Payload::Email(m) => format!(
                "From: {}\nTo: {}\n{}Subject: {}\n\n--- text/plain ---\n{}\n--- text/html ---\n{}\n",
                m.from,
                m.to.join(", "),
                if m.cc.is_empty() {
                    String::new()
                } else {
                    format!("Cc: {}\n", m.cc.join(", "))
                },
                m.subject,
                m.text,
                m.html
            ),
        }
    }
}

/// A payload and why, if at all, it was not built from the configured
/// template.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub payload: Payload,
    /// The configured template failed and the default was used: the error,
    /// recorded with the delivery. A page is never dropped for a template.
    pub fallback: Option<String>,
}

/// A delivery the far end accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// HTTP status, or the SMTP reply code.
    pub status: u16,
    /// The far end's id of the message posted or updated, where the
    /// channel can edit it later (see [`Notifier::send_update`]).
    pub message_ref: Option<String>,
}

/// A delivery that did not go through, classified for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// Short and free of secrets: it is stored in the log and exported as a
    /// metric label (`reason`), so it must not hold a URL or a token.
    pub reason: String,
    /// What kind of failure, for metrics: `timeout`, `connect`, `http_5xx`,
    /// `http_4xx`, `rate_limited`, `smtp`, `rejected`, `render`, `panic`.
    pub class: &'static str,
    pub status: Option<u16>,
    /// Worth trying again (timeouts, connection errors, 5xx, 429).
    pub retryable: bool,
    /// The far end asked for this wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// One channel of one receiver: a `slack_configs` entry, an
/// `email_configs` entry, ….
pub trait Notifier: Send + Sync {
    /// The receiver type, as in `fenghuo.yaml` without `_configs`: `email`,
    /// `slack`, `dingtalk`, `wecom`, `feishu`, `webhook`, `pagerduty`.
    fn kind(&self) -> &'static str;

    /// Alertmanager's `send_resolved`: whether a message that only
    /// resolves alerts is sent at all.
    fn send_resolved(&self) -> bool;

    /// Build the payload. Pure: no I/O; `now` is the clock's time, for
    /// signatures that carry a timestamp (DingTalk, Feishu).
    fn render(&self, msg: &Message, templates: &Templates, now: DateTime<Utc>) -> Rendered;

    /// Deliver a payload built by this notifier's `render`.
    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>>;

    /// Whether this integration edits its messages in place (configured to,
    /// and its API allows it: Slack with an app token, Feishu through an
    /// app, DingTalk interactive cards). Others send every message anew.
    fn updates_in_place(&self) -> bool {
        false
    }

    /// Deliver a payload built by `render` as an edit of the message
    /// `message_ref` (from an earlier [`Delivered::message_ref`]). A
    /// non-retryable error means the message cannot be edited (deleted,
    /// too old): the outbox then sends it anew.
    fn send_update<'a>(
        &'a self,
        payload: &'a Payload,
        message_ref: &'a str,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let _ = message_ref;
        self.send(payload)
    }
}

/// Order of severities for sorting and colouring: 0 is the most urgent;
/// unknown severities sort last.
pub fn severity_rank(severity: &str) -> u8 {
    match severity.to_ascii_lowercase().as_str() {
        "critical" | "page" | "p1" | "emergency" | "fatal" => 0,
        "error" | "high" | "major" | "p2" => 1,
        "warning" | "warn" | "medium" | "p3" => 2,
        "info" | "low" | "minor" | "p4" | "notice" => 3,
        _ => 4,
    }
}

/// Common labels of a set of label sets: the pairs every one has.
pub fn common_pairs<'a>(sets: impl IntoIterator<Item = &'a LabelSet>) -> LabelSet {
    let mut iter = sets.into_iter();
    let Some(first) = iter.next() else {
        return LabelSet::new();
    };
    let mut common = first.clone();
    for set in iter {
        common.retain(|k, v| set.get(k) == Some(v));
        if common.is_empty() {
            break;
        }
    }
    common
}

/// `3m`, `2h5m`, `4d3h`: how long since `since`, for messages.
pub fn humanize_since(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// Key/value pairs of a label set, e.g. for `BTreeMap` → `Vec` in tests.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> LabelSet {
    pairs.into_iter().collect()
}
