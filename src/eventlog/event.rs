//! The event envelope and the one enum of event kinds.
//!
//! Every fact and every decision Fenghuo knows is an [`Event`]. Kinds are named
//! in the past tense and live in one serde-tagged enum, [`EventKind`], so a new
//! kind is one variant and the compiler points at every fold that must handle
//! it. The enum is stored as two columns: `kind` (the dotted tag) and `payload`
//! (the variant's fields as JSON).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::labels::LabelSet;
pub use super::text::CompactText;

/// An event as stored: the envelope and its typed kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the log, strictly increasing, never reused.
    pub seq: u64,
    /// Held in place, as `source` and `key` are ([`CompactText`]): no
    /// allocation per event replay decodes.
    pub id: CompactText,
    /// When it happened, per its source.
    pub occurred_at: DateTime<Utc>,
    /// When the log committed it.
    pub recorded_at: DateTime<Utc>,
    /// Who said so: `alertmanager`, `prometheus`, `pagerduty`, `fenghuo`, …
    pub source: CompactText,
    /// The entity it is about: an alert fingerprint, a silence id, a release id.
    pub key: CompactText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An event before the log has given it a `seq` and a `recorded_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub key: String,
    /// A second append with the same key stores nothing and answers the
    /// original `seq`.
    pub idempotency_key: Option<String>,
    /// Optimistic concurrency: store only if the projection that versions
    /// `key` still says this (see [`Projection::version`]); otherwise nothing
    /// is stored and the answer carries the current version.
    ///
    /// [`Projection::version`]: super::Projection::version
    pub expected_version: Option<u64>,
    pub kind: EventKind,
}

impl NewEvent {
    pub fn new(
        occurred_at: DateTime<Utc>,
        source: impl Into<String>,
        key: impl Into<String>,
        kind: EventKind,
    ) -> Self {
        NewEvent {
            id: uuid::Uuid::new_v4().simple().to_string(),
            occurred_at,
            source: source.into(),
            key: key.into(),
            idempotency_key: None,
            expected_version: None,
            kind,
        }
    }

    pub fn idempotent(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Stores the event only if `key` is still at `version`.
    pub fn expecting(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }
}

/// Every kind of event, in the past tense. `#[serde(rename)]` gives the dotted
/// name stored in the `kind` column; the fields are the `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum EventKind {
    /// A source reported an alert that is new, or whose labels, annotations,
    /// start or generator changed. Re-sends of the same alert are not stored.
    #[serde(rename = "alert.received")]
    AlertReceived(#[serde(deserialize_with = "shared")] std::sync::Arc<AlertReport>),

    /// The evaluate stage took a received alert as firing: it is routed,
    /// grouped and may page from here on. Decided once per firing episode.
    #[serde(rename = "alert.fired")]
    AlertFired { fingerprint: String },

    /// Sources extended the `endsAt` of alerts already stored (Prometheus
    /// re-sends). Many alerts share one event, so re-sends cost O(1) events per
    /// checkpoint rather than one per alert per minute.
    #[serde(rename = "alert.refreshed")]
    AlertRefreshed { leases: Vec<Lease> },

    /// The alert is resolved: a source said so, or a newer report replaced it.
    #[serde(rename = "alert.resolved")]
    AlertResolved(AlertResolution),

    /// The alert changed state (fired, resolved) so often that it is taken
    /// as flapping: one notice, then its flips are recorded but not paged
    /// until it has been stable for the period the payload names.
    #[serde(rename = "alert.flapping_started")]
    AlertFlappingStarted(FlapChange),

    /// A flapping alert has kept its state (firing or resolved) for the
    /// stable period: it pages as any other alert again.
    #[serde(rename = "alert.flapping_stopped")]
    AlertFlappingStopped(FlapChange),

    /// A silence was created (Alertmanager API v2 `POST /api/v2/silences`).
    #[serde(rename = "silence.created")]
    SilenceCreated(SilenceSpec),

    /// An existing silence was changed in place (a POST with its id).
    #[serde(rename = "silence.updated")]
    SilenceUpdated(SilenceSpec),

    /// A silence was ended early (`DELETE /api/v2/silence/{id}`).
    #[serde(rename = "silence.expired")]
    SilenceExpired {
        id: String,
        #[serde(deserialize_with = "stored_time::required")]
        ends_at: DateTime<Utc>,
    },

    /// A group's next flush was scheduled: a durable timer (group_wait for a
    /// new group, group_interval after a flush).
    #[serde(rename = "group.scheduled")]
    GroupScheduled(GroupTimer),

    /// A group has no alerts left and nothing more to say: its timer and
    /// memory of what was notified are dropped.
    #[serde(rename = "group.closed")]
    GroupClosed(GroupRef),

    /// A group is due a notification: what fires, what resolved since the
    /// last one, what is new, and what was left out because it is muted.
    #[serde(rename = "notification.due")]
    NotificationDue(NotificationDue),

    /// One integration of a receiver accepted a message (HTTP 2xx, SMTP 250).
    #[serde(rename = "notification.sent")]
    NotificationSent(DeliverySent),

    /// A delivery attempt failed: retried at `retry_at`, or given up and
    /// handed to the `fallback` receiver.
    #[serde(rename = "notification.failed")]
    NotificationFailed(DeliveryFailed),

    /// A due notification was not sent to an integration on purpose (only
    /// resolved alerts and `send_resolved: false`; the integration is no
    /// longer configured).
    #[serde(rename = "notification.skipped")]
    NotificationSkipped(DeliverySkipped),

    /// Someone acknowledged the alert (today: a PagerDuty-style
    /// `acknowledge` event).
    #[serde(rename = "alert.acked")]
    AlertAcked {
        fingerprint: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dedup_key: Option<String>,
    },

    /// The escalation stage took a step of an incident's policy (paged
    /// someone, began a wait, found a condition false, finished), or
    /// re-paged the acknowledger because a new alert joined.
    #[serde(rename = "escalation.stepped")]
    EscalationStepped(EscalationStep),

    /// Someone took an incident: its escalation stops.
    #[serde(rename = "incident.acknowledged")]
    IncidentAcknowledged(IncidentAction),

    /// An acknowledgement was taken back, by someone or because it timed
    /// out: escalation resumes with the next step.
    #[serde(rename = "incident.unacknowledged")]
    IncidentUnacknowledged(IncidentAction),

    /// Someone declared an incident resolved: no more escalation.
    #[serde(rename = "incident.resolved")]
    IncidentResolved(IncidentAction),

    /// Someone put an incident's escalation off until `until`.
    #[serde(rename = "incident.snoozed")]
    IncidentSnoozed(IncidentAction),
    /// A Kubernetes event, normalized from whichever shape it arrived in
    /// (core/v1, events.k8s.io/v1, kubernetes-event-exporter). Key: the
    /// Kubernetes Event object, `k8s/{cluster}/{namespace}/{name}`. A
    /// re-emitted event with a higher `count` is stored as a new
    /// `k8s.event` carrying the new count; a re-send that changes nothing
    /// is not stored.
    #[serde(rename = "k8s.event")]
    K8sEvent(#[serde(deserialize_with = "shared")] std::sync::Arc<K8sEvent>),

    /// One run of a probe (HTTP, TCP, Prometheus scrape) and what it
    /// measured. Key: the probe's name.
    #[serde(rename = "probe.result")]
    ProbeResult(#[serde(deserialize_with = "shared")] std::sync::Arc<ProbeResult>),

    /// A heartbeat arrived (a batch job or cron job saying it is alive).
    /// Key: the heartbeat's name.
    #[serde(rename = "heartbeat.received")]
    HeartbeatReceived(Heartbeat),

    /// A rule set took effect: at start-up when it differs from the last
    /// one recorded, and at each accepted reload. History then shows which
    /// rules decided what. Key: `rules`.
    #[serde(rename = "rules.loaded")]
    RulesLoaded(RulesLoaded),

    /// A watch of a Kubernetes API server got this far: the
    /// `resourceVersion` to resume from, recorded with the events of a
    /// batch and at bookmarks, so a restart resumes without gaps or
    /// duplicates. Key: `k8s-watch/{cluster}/{namespace}`.
    #[serde(rename = "k8s.watch.progressed")]
    K8sWatchProgressed(K8sWatchProgress),
    /// A release of one app was recorded (API, or a Kubernetes rollout seen
    /// by the watch). Key: the release id.
    #[serde(rename = "release.recorded")]
    ReleaseRecorded(Release),

    /// A release started, succeeded, failed or was rolled back. Key: the
    /// release id.
    #[serde(rename = "release.status_changed")]
    ReleaseStatusChanged(ReleaseStatusChange),

    /// The release gate answered allow or deny, with its reasons. Key:
    /// `gate:{app}/{env}/{cluster}`.
    #[serde(rename = "release.gate_decided")]
    ReleaseGateDecided(GateDecision),

    /// Something that went wrong in a release's bake window was linked to
    /// the release (an alert, a Warning Kubernetes event, a failed probe).
    /// Key: what is suspected of it (an alert's fingerprint, an object's
    /// uid, a probe's name), so the history of an alert shows its release.
    #[serde(rename = "release.suspected")]
    ReleaseSuspected(ReleaseSuspicion),

    /// A remediation hook is to be called: the rendered request, committed
    /// before the call. Key: the remediation id (`{action}:{scope}`).
    #[serde(rename = "remediation.due")]
    RemediationDue(RemediationDue),

    /// Someone approved a remediation that waits for a person.
    #[serde(rename = "remediation.approved")]
    RemediationApproved(RemediationApproval),

    /// A remediation in `dry_run` mode: what would have been called.
    #[serde(rename = "remediation.dry_run")]
    RemediationDryRun(RemediationDue),

    /// A remediation was not run: a guard refused it (host not allowed,
    /// too many runs this hour).
    #[serde(rename = "remediation.refused")]
    RemediationRefused(RemediationRefusal),

    /// The hook's target answered 2xx.
    #[serde(rename = "remediation.succeeded")]
    RemediationSucceeded(RemediationCall),

    /// A call of the hook failed: retried at `retry_at`, or given up.
    #[serde(rename = "remediation.failed")]
    RemediationFailed(RemediationCall),
}

impl EventKind {
    /// The dotted name stored in the `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AlertReceived(_) => "alert.received",
            EventKind::AlertFired { .. } => "alert.fired",
            EventKind::AlertRefreshed { .. } => "alert.refreshed",
            EventKind::AlertResolved(_) => "alert.resolved",
            EventKind::AlertAcked { .. } => "alert.acked",
            EventKind::AlertFlappingStarted(_) => "alert.flapping_started",
            EventKind::AlertFlappingStopped(_) => "alert.flapping_stopped",
            EventKind::SilenceCreated(_) => "silence.created",
            EventKind::SilenceUpdated(_) => "silence.updated",
            EventKind::SilenceExpired { .. } => "silence.expired",
            EventKind::GroupScheduled(_) => "group.scheduled",
            EventKind::GroupClosed(_) => "group.closed",
            EventKind::NotificationDue(_) => "notification.due",
            EventKind::NotificationSent(_) => "notification.sent",
            EventKind::NotificationFailed(_) => "notification.failed",
            EventKind::NotificationSkipped(_) => "notification.skipped",
            EventKind::EscalationStepped(_) => "escalation.stepped",
            EventKind::IncidentAcknowledged(_) => "incident.acknowledged",
            EventKind::IncidentUnacknowledged(_) => "incident.unacknowledged",
            EventKind::IncidentResolved(_) => "incident.resolved",
            EventKind::IncidentSnoozed(_) => "incident.snoozed",
            EventKind::K8sEvent(_) => "k8s.event",
            EventKind::ProbeResult(_) => "probe.result",
            EventKind::HeartbeatReceived(_) => "heartbeat.received",
            EventKind::RulesLoaded(_) => "rules.loaded",
            EventKind::K8sWatchProgressed(_) => "k8s.watch.progressed",
            EventKind::ReleaseRecorded(_) => "release.recorded",
            EventKind::ReleaseStatusChanged(_) => "release.status_changed",
            EventKind::ReleaseGateDecided(_) => "release.gate_decided",
            EventKind::ReleaseSuspected(_) => "release.suspected",
            EventKind::RemediationDue(_) => "remediation.due",
            EventKind::RemediationApproved(_) => "remediation.approved",
            EventKind::RemediationDryRun(_) => "remediation.dry_run",
            EventKind::RemediationRefused(_) => "remediation.refused",
            EventKind::RemediationSucceeded(_) => "remediation.succeeded",
            EventKind::RemediationFailed(_) => "remediation.failed",
        }
    }

    /// Every dotted name, for validating `?kind=` filters.
    pub const NAMES: &'static [&'static str] = &[
        "alert.received",
        "alert.fired",
        "alert.refreshed",
        "alert.resolved",
        "alert.acked",
        "alert.flapping_started",
        "alert.flapping_stopped",
        "silence.created",
        "silence.updated",
        "silence.expired",
        "group.scheduled",
        "group.closed",
        "notification.due",
        "notification.sent",
        "notification.failed",
        "notification.skipped",
        "escalation.stepped",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.snoozed",
        "k8s.event",
        "probe.result",
        "heartbeat.received",
        "rules.loaded",
        "k8s.watch.progressed",
        "release.recorded",
        "release.status_changed",
        "release.gate_decided",
        "release.suspected",
        "remediation.due",
        "remediation.approved",
        "remediation.dry_run",
        "remediation.refused",
        "remediation.succeeded",
        "remediation.failed",
    ];

    /// The payload column: the variant's fields, without the tag.
    pub fn payload_json(&self) -> String {
        // An adjacently tagged enum serialises as {"kind":"<name>","payload":P};
        // cut P out of that rather than building a JSON tree first.
        let mut doc = serde_json::to_string(self).expect("event kinds serialise");
        let prefix = "{\"kind\":\"".len() + self.name().len() + "\",\"payload\":".len();
        debug_assert!(doc.starts_with("{\"kind\":\"") && doc.ends_with('}'));
        doc.truncate(doc.len() - 1);
        doc.split_off(prefix)
    }

    /// Rebuilds a kind from its two stored columns.
    pub fn decode(kind: &str, payload: &str) -> Result<EventKind, serde_json::Error> {
        // The hottest kinds, in the form the log writes them, are read
        // without serde; anything else (and any error) is serde's to decode.
        match super::canonical::decode(kind, payload) {
            Some(decoded) => Ok(decoded),
            None => Self::decode_with_serde(kind, payload),
        }
    }

    /// [`decode`](Self::decode) through serde alone: what the canonical
    /// reader must agree with.
    pub(super) fn decode_with_serde(
        kind: &str,
        payload: &str,
    ) -> Result<EventKind, serde_json::Error> {
        // The two columns are handed to serde as the map `{"kind": …,
        // "payload": …}` it expects, the payload parsed where it lies: no
        // document is assembled (a copy of every payload replay reads).
        // `kind` comes first, so serde never buffers the payload.
        let mut payload = serde_json::Deserializer::from_str(payload);
        let decoded = EventKind::deserialize(columns::Columns {
            kind,
            payload: &mut payload,
        })?;
        payload.end()?;
        Ok(decoded)
    }
}

/// A shared payload decoded straight into its `Arc`. Serde's own impl
/// decodes into a `Box` and moves that into a second allocation, twice the
/// allocator's work for most events replay reads.
fn shared<'de, D, T>(d: D) -> Result<std::sync::Arc<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(std::sync::Arc::new)
}

/// The stored `kind` and `payload` columns as one serde map, for
/// [`EventKind::decode`].
mod columns {
    use serde::de::value::BorrowedStrDeserializer;
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
    use serde_json::de::StrRead;

    pub struct Columns<'de, 'p> {
        pub kind: &'de str,
        pub payload: &'p mut serde_json::Deserializer<StrRead<'de>>,
    }

    impl<'de> Deserializer<'de> for Columns<'de, '_> {
        type Error = serde_json::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.visit_map(Entries {
                columns: self,
                next: 0,
            })
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    /// Yields `kind`, then `payload`.
    struct Entries<'de, 'p> {
        columns: Columns<'de, 'p>,
        next: u8,
    }

    impl<'de> MapAccess<'de> for Entries<'de, '_> {
        type Error = serde_json::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Self::Error> {
            let name = match self.next {
                0 => "kind",
                1 => "payload",
                _ => return Ok(None),
            };
            seed.deserialize(BorrowedStrDeserializer::new(name))
                .map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, Self::Error> {
            self.next += 1;
            match self.next {
                1 => seed.deserialize(BorrowedStrDeserializer::new(self.columns.kind)),
                _ => seed.deserialize(&mut *self.columns.payload),
            }
        }

        fn size_hint(&self) -> Option<usize> {
            Some(2 - self.next as usize)
        }
    }
}

/// Reading timestamps back from payloads. Replay decodes millions of them,
/// and chrono's general RFC 3339 parser is a tenth of that time; the log
/// itself writes one shape only (`2026-11-25T19:00:00.123456789Z`), which
/// this reads directly and hands anything else to chrono.
pub(super) mod stored_time {
    use chrono::{DateTime, NaiveDate, Utc};
    use serde::Deserializer;
    use serde::de::Visitor;

    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u32)
        })
    }

    fn fast(s: &str) -> Option<DateTime<Utc>> {
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || *b.last()? != b'Z'
        {
            return None;
        }
        let nanos = match &b[19..b.len() - 1] {
            [] => 0,
            [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
                digits(frac)? * 10u32.pow(9 - frac.len() as u32)
            }
            _ => return None,
        };
        let date = NaiveDate::from_ymd_opt(
            digits(&b[0..4])? as i32,
            digits(&b[5..7])?,
            digits(&b[8..10])?,
        )?;
        let time = date.and_hms_nano_opt(
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
            nanos,
        )?;
        Some(time.and_utc())
    }

    /// What [`required`] reads from the string `s`, or `None` where it
    /// answers an error.
    pub fn parsed(s: &str) -> Option<DateTime<Utc>> {
        fast(s).or_else(|| s.parse().ok())
    }

    fn parse<E: serde::de::Error>(s: &str) -> Result<DateTime<Utc>, E> {
        match fast(s) {
            Some(t) => Ok(t),
            None => s.parse().map_err(E::custom),
        }
    }

    /// Parses the string where the deserializer has it: no copy of it.
    struct Time;

    impl Visitor<'_> for Time {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
            parse(s)
        }
    }

    struct OptionalTime;

    impl<'de> Visitor<'de> for OptionalTime {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            required(d).map(Some)
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(Time)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionalTime)
    }

    #[cfg(test)]
    #[test]
    fn the_fast_path_agrees_with_chrono() {
        for s in [
            "2026-11-25T19:00:00Z",
            "2026-11-25T19:00:00.5Z",
            "2026-11-25T19:00:00.123456789Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.000001Z",
        ] {
            assert_eq!(fast(s), Some(s.parse().unwrap()), "{s}");
        }
        // Not the stored shape: left to chrono.
        for s in [
            "2026-11-25T19:00:00+08:00",
            "2026-02-30T00:00:00Z",
            "2026-11-25 19:00:00Z",
        ] {
            assert_eq!(fast(s), None, "{s}");
        }
    }
}

/// Which aggregation group: a route (by id) and the values of its
/// `group_by` labels. Alertmanager's group key is kept for display and
/// webhooks; it can repeat across sibling routes, the id cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRef {
    /// Route id and group labels, `{route id}:{labels}`: unique.
    pub group: String,
    pub route: String,
    pub receiver: String,
    /// Alertmanager's `groupKey`.
    pub group_key: String,
    pub group_labels: LabelSet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupTimer {
    #[serde(flatten)]
    pub group: GroupRef,
    #[serde(deserialize_with = "stored_time::required")]
    pub due_at: DateTime<Utc>,
    /// `group_wait` or `group_interval`.
    pub reason: String,
    /// Alerts of the group muted (silenced or inhibited) at the flush that
    /// set this timer: when they come back, they are news again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub muted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDue {
    #[serde(flatten)]
    pub group: GroupRef,
    /// Fingerprints firing and not muted: what the message lists.
    pub firing: Vec<String>,
    /// Notified as firing before, resolved since.
    pub resolved: Vec<String>,
    /// Firing and not in the previous notification.
    pub new: Vec<String>,
    /// Nothing changed; `repeat_interval` passed.
    pub repeat: bool,
    /// Firing but left out: fingerprint → silences or inhibitors muting it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub muted: BTreeMap<String, Vec<String>>,
    /// A page of an incident's escalation (not the route's own message):
    /// the incident and the step that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationRef>,
    /// Whom the page is for: mentioned in IM, the recipients of an email.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Recipient>,
    /// Alerts this notification lists as firing because they started
    /// flapping: the one notice; their later flips are muted (`flapping`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flapping: Vec<String>,
    /// A follow-up of the group's earlier page that lists in full only
    /// what changed (new and resolved alerts) and counts the unchanged
    /// (route `pages.follow_ups: changes`). The alerts it carries are all
    /// of them still: webhook and PagerDuty payloads stay Alertmanager's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changes_only: bool,
    /// Not a page: it updates the group's last message in place (route
    /// `pages.update_in_place`), because it brings no alert the group has
    /// not paged (what resolved, a flapping notice or settling of an alert
    /// already paged). A channel that cannot update sends it as a new
    /// message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub update_in_place: bool,
    /// Alerts muted as symptoms of this group's firing alerts, joined to
    /// them through the topology (an inhibit rule's `through:`): not paged
    /// on their own, summarised in this page ("40 pods and 5 services
    /// affected").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symptoms: Vec<Symptom>,
    /// Only resolves, under a route's `pages.resolved: digest`: held for
    /// the receiver's digest of resolved alerts, sent at this time with
    /// every other one held until then (an edit in place still goes at
    /// once). A later page of the group carries them instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_at: Option<DateTime<Utc>>,
}

/// An alert muted as the symptom of a cause paged in the same
/// notification.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Symptom {
    pub fingerprint: String,
    /// The cause's fingerprint.
    pub cause: String,
    /// How it is joined to the cause: `node-7 placement`, `workload web`,
    /// `dependency "checkout needs orders-db"`, `release rel-142`.
    pub through: String,
    /// What it is about, for the summary: `pod`, `service`, `alert`, …
    pub kind: String,
    /// Joined since the group's last message summarised its symptoms (a
    /// late symptom: the update says the count grew).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationRef {
    pub incident: String,
    pub iteration: u32,
    pub step: usize,
}

/// Someone (or a timeout) acting on an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentAction {
    pub incident: String,
    /// A person's name, an API caller, or `fenghuo` for a timeout.
    pub by: String,
    /// `api`, `cli`, `link`, `pagerduty`, `timeout`.
    pub via: String,
    /// Snoozed until; for an acknowledgement, when it times out.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub until: Option<DateTime<Utc>>,
    /// The action link's token id: a link works once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One step of an escalation policy, as taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationStep {
    pub incident: String,
    pub policy: String,
    /// Which pass through the policy (0 first; `repeat` allows more).
    pub iteration: u32,
    /// Index of the step in the policy.
    pub step: usize,
    /// `notify`, `wait`, `condition`, `finished`, `renotify`.
    pub action: String,
    /// Why this step, in words (`wait 5m over`, `outside office`, …).
    pub reason: String,
    /// People paged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    /// Receivers the page went through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    /// When the next step is due: the durable timer.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub next_at: Option<DateTime<Utc>>,
}

/// A person a page is addressed to, with the contact points the channels
/// use to reach or mention them, as they were when the page was decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Channel → id to mention (`dingtalk_mobile`, `dingtalk_user`,
    /// `wecom_user`, `feishu_user`, `slack_user`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mentions: BTreeMap<String, String>,
}

/// Which delivery an outcome is about: one integration of one receiver,
/// for one due notification (or several folded into a digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTarget {
    pub receiver: String,
    /// `dingtalk[0]`: the receiver type and its index in the receiver.
    pub integration: String,
    pub group: String,
    /// `seq` of the `notification.due` event(s) delivered.
    pub due_seqs: Vec<u64>,
    /// Every integration of the receiver when this was recorded: once each
    /// has an outcome, the delivery is complete and the outbox forgets it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySent {
    #[serde(flatten)]
    pub target: DeliveryTarget,
    /// 1 for the first try.
    pub attempt: u32,
    /// HTTP status or SMTP reply code.
    pub status: u16,
    pub latency_ms: u64,
    /// The receiver's own template failed and the default was sent: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_fallback: Option<String>,
    /// Several due notifications went out as one rate-limit digest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest: bool,
    /// The far end's id of the message this delivery posted or updated
    /// (Slack `channel ts`, a Feishu `message_id`, a DingTalk card's
    /// `outTrackId`): what the group's next update in place edits, after a
    /// restart too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ref: Option<String>,
    /// This delivery edited `message_ref` in place instead of posting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub updated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailed {
    #[serde(flatten)]
    pub target: DeliveryTarget,
    pub attempt: u32,
    /// What went wrong, free of secrets.
    pub reason: String,
    /// `timeout`, `connect`, `http_5xx`, `http_4xx`, `rate_limited`, ….
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub retryable: bool,
    /// When the next attempt is due; `None` once given up.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub retry_at: Option<DateTime<Utc>>,
    /// No more attempts on this integration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
    /// Given up, and handed to this receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySkipped {
    #[serde(flatten)]
    pub target: DeliveryTarget,
    pub reason: String,
}

/// A silence as Alertmanager's API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceSpec {
    pub id: String,
    /// Alertmanager API matcher objects (`name`, `value`, `isRegex`,
    /// `isEqual`), kept exactly as posted.
    pub matchers: Vec<crate::evaluate::matcher::ApiMatcher>,
    #[serde(deserialize_with = "stored_time::required")]
    pub starts_at: DateTime<Utc>,
    #[serde(deserialize_with = "stored_time::required")]
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// An alert as a source reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    /// Alertmanager's fingerprint of `labels`, 16 hex digits, held in
    /// place ([`CompactText`]): no allocation per report decoded.
    pub fingerprint: CompactText,
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: LabelSet,
    #[serde(deserialize_with = "stored_time::required")]
    pub starts_at: DateTime<Utc>,
    /// `None`: firing until a source resolves it (webhook alerts, PagerDuty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
    /// Fields the source sent that Fenghuo does not interpret (Grafana's
    /// `values`, `silenceURL`, PagerDuty's `links`, …), kept verbatim.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A Kubernetes event in one shape, whatever the API version or exporter
/// that delivered it. Field names are the log's (snake case); rules select
/// and group on them (`reason`, `involved_object.name`, `labels.app`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct K8sEvent {
    /// The cluster's configured name (`clusterName` from the exporter, or
    /// the `kubernetes:` watch's name); empty when unknown.
    #[serde(default)]
    pub cluster: String,
    /// Namespace of the involved object (empty for cluster-scoped ones
    /// such as nodes).
    #[serde(default)]
    pub namespace: String,
    pub involved_object: InvolvedObject,
    /// `BackOff`, `OOMKilling`, `FailedScheduling`, `NodeNotReady`, …
    pub reason: String,
    /// `message` (core/v1) or `note` (events.k8s.io/v1).
    #[serde(default)]
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub event_type: String,
    /// How many times Kubernetes saw it (`count`, or `series.count`).
    #[serde(default = "one")]
    pub count: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub first_seen: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub last_seen: Option<DateTime<Utc>>,
    /// `reportingController` / `source.component` (`kubelet`,
    /// `default-scheduler`, …).
    #[serde(default)]
    pub reporting_controller: String,
    /// The involved object's labels, when the sender includes them
    /// (kubernetes-event-exporter does).
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
    /// The node the reporting component runs on (`source.host`, or a
    /// kubelet's `reportingInstance`): for a kubelet's event about a pod,
    /// the node the pod runs on. Empty when not sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

fn one() -> u64 {
    1
}

/// The object a Kubernetes event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvolvedObject {
    /// `Pod`, `Node`, `Deployment`, …
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
    /// The object's owners, when the sender includes them
    /// (kubernetes-event-exporter does): a pod's ReplicaSet, StatefulSet,
    /// DaemonSet or Job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// The sender saw the object deleted (kubernetes-event-exporter's
    /// `deleted`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One of an object's `metadata.ownerReferences`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerReference {
    /// `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, …
    pub kind: String,
    pub name: String,
    /// The managing controller (at most one owner is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub controller: bool,
}

/// How far a Kubernetes watch got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sWatchProgress {
    /// The cluster's name in `kubernetes.clusters`.
    pub cluster: String,
    /// The namespace watched; empty when the watch covers all namespaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Opaque to everyone but the API server: where to resume.
    pub resource_version: String,
    /// What brought it: `list`, `events` or `bookmark`.
    pub by: String,
}

/// What one probe run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probe's name in `probes:`.
    pub probe: String,
    /// `http`, `tcp` or `scrape`.
    #[serde(rename = "type")]
    pub probe_type: String,
    /// What was probed: a URL or `host:port`.
    #[serde(default)]
    pub target: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Values measured, by name: scraped series (`up`,
    /// `process_resident_memory_bytes`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The probe's configured labels (`service`, `team`, …).
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
    /// Why this run was stored and the runs it stands for: a probe stores
    /// changes and a periodic summary, not every identical run (see
    /// `probe::compact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ProbeSummary>,
}

/// The runs of a probe since its previous stored result, this one included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// `first`, `state`, `status`, `error`, `values` (a change) or
    /// `summary` (nothing changed for `summary_every`).
    pub reason: String,
    /// When the first of these runs started.
    pub since: DateTime<Utc>,
    pub runs: u64,
    pub failures: u64,
    pub latency_min_ms: f64,
    pub latency_max_ms: f64,
    pub latency_mean_ms: f64,
}

/// A heartbeat: someone said they are alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub name: String,
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
}

/// Which rule set took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesLoaded {
    /// A hash of the files' names and contents (see `RuleSet::hash`).
    pub hash: String,
    /// The rule files, as the config named them after globbing.
    pub files: Vec<String>,
    /// How many rules the set holds.
    pub rules: usize,
    /// What loaded it: `start-up`, `SIGHUP`, `POST /-/reload`.
    pub by: String,
}

/// One release of one app: the four-tuple (app, environment, cluster,
/// version) and who made it how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub app: String,
    pub env: String,
    #[serde(default)]
    pub cluster: String,
    /// An image tag or a commit; for a Kubernetes rollout, the new
    /// ReplicaSet's pod-template hash.
    pub version: String,
    #[serde(default)]
    pub by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change_url: String,
    /// `rolling`, `canary`, `blue-green`, … as the platform names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub strategy: String,
    /// `api` or `kubernetes`.
    pub via: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStatusChange {
    pub id: String,
    /// `started`, `succeeded`, `failed` or `rolled_back`.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    pub app: String,
    pub env: String,
    #[serde(default)]
    pub cluster: String,
    pub allowed: bool,
    /// Why not, one line each (empty when allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Who asked (the caller's `by`), if they said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub asked_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSuspicion {
    pub release: String,
    pub app: String,
    pub env: String,
    pub version: String,
    /// Who released it.
    #[serde(default)]
    pub released_by: String,
    /// `alert`, `k8s.event` or `probe.result`.
    pub evidence_kind: String,
    /// The alert's fingerprint, the object's uid, the probe's name.
    pub subject: String,
    /// What happened, in words (`HighErrorRate severity=critical`).
    pub evidence: String,
    /// `seq` of the event that is the evidence.
    pub evidence_seq: u64,
    /// Seconds between the release's start and the evidence.
    pub after_secs: i64,
    /// The evidence's severity (`labels.severity`; `warning` for
    /// Kubernetes Warning events and failed probes).
    #[serde(default)]
    pub severity: String,
}

/// An outbound HTTP call as rendered: header names only, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationRequest {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationDue {
    /// `{action}:{scope}`: one run per incident or release.
    pub id: String,
    pub action: String,
    pub app: String,
    #[serde(default)]
    pub env: String,
    /// The release or incident the run is for.
    pub scope: String,
    /// Why, in words (`auto-rollback: HighErrorRate critical 3m after …`).
    pub reason: String,
    /// The alert fingerprint (or other subject) that triggered it.
    #[serde(default)]
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// For a rollback: the version rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
    pub request: RemediationRequest,
    /// Sent as the `Idempotency-Key` header on every attempt.
    pub idempotency_key: String,
    /// Waits for `remediation.approved` before the call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_ack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationApproval {
    pub id: String,
    pub by: String,
    /// `api` or `link`.
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationRefusal {
    pub id: String,
    pub action: String,
    pub app: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RemediationRequest>,
}

/// One attempt of a remediation call and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationCall {
    pub id: String,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The start of the response body (at most 1 KiB).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// What went wrong, free of secrets.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stored_time::optional"
    )]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
}

/// The end of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertResolution {
    pub fingerprint: String,
    #[serde(deserialize_with = "stored_time::required")]
    pub ends_at: DateTime<Utc>,
    /// Why it ended, in words (`resolved by source`, `labels changed`, …).
    pub reason: String,
    /// The full report, when the source sent one (a resolved webhook alert,
    /// or an alert first seen already resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AlertReport>,
}

/// An alert going into or out of flapping, and the numbers that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlapChange {
    pub fingerprint: String,
    /// State changes counted within `window_secs` (started), or 0 (stopped).
    pub changes: u32,
    pub window_secs: i64,
    /// How long the alert must keep its state to stop flapping.
    pub stable_secs: i64,
    /// Whether the alert was firing at the decision.
    pub firing: bool,
}

/// A new `endsAt` for stored alerts. Alerts evaluated together share their
/// `endsAt`, so grouping by it keeps a refresh of 10,000 alerts small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(deserialize_with = "stored_time::required")]
    pub ends_at: DateTime<Utc>,
    pub fingerprints: LeaseFingerprints,
}

/// The fingerprints a lease names, in order, written and read as a JSON
/// list of strings. One in Alertmanager's form (16 lowercase hex digits,
/// what Fenghuo writes) is held as its 64-bit value: replay decodes a lease
/// of 100 alerts without 100 allocations, and the views that fold it read
/// the values without parsing the text again. Anything else is held as
/// written. Either way it is written back exactly as it was read.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LeaseFingerprints(Vec<LeaseFingerprint>);

#[derive(Clone, PartialEq, Eq)]
enum LeaseFingerprint {
    /// 16 lowercase hex digits, as their value.
    Hex(u64),
    /// Anything else, as written.
    Text(String),
}

/// Each byte's value as a lowercase hex digit, or 0x80 for any other byte.
const HEX_DIGIT: [u8; 256] = {
    let mut table = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

impl LeaseFingerprint {
    fn of(text: &str) -> LeaseFingerprint {
        // One pass: checks the form and reads the value together (a lease
        // carries a hundred of these, replay reads every one).
        let value = match text.len() {
            16 => {
                // Without a branch per digit: any byte not a lowercase hex
                // digit sets the high bit of `bad`.
                let (value, bad) = text.bytes().fold((0u64, 0u8), |(value, bad), b| {
                    let digit = HEX_DIGIT[b as usize];
                    (value << 4 | u64::from(digit & 0xf), bad | digit)
                });
                (bad & 0x80 == 0).then_some(value)
            }
            _ => None,
        };
        match value {
            Some(value) => LeaseFingerprint::Hex(value),
            None => LeaseFingerprint::Text(text.to_owned()),
        }
    }

    fn of_string(text: String) -> LeaseFingerprint {
        match LeaseFingerprint::of(&text) {
            LeaseFingerprint::Text(_) => LeaseFingerprint::Text(text),
            hex => hex,
        }
    }
}

impl std::fmt::Display for LeaseFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseFingerprint::Hex(v) => write!(f, "{v:016x}"),
            LeaseFingerprint::Text(s) => f.write_str(s),
        }
    }
}

impl LeaseFingerprints {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, fingerprint: String) {
        self.0.push(LeaseFingerprint::of_string(fingerprint));
    }

    /// [`push`](Self::push) of a text where it lies: a copy only of one
    /// not in Alertmanager's form.
    pub(super) fn push_str(&mut self, fingerprint: &str) {
        self.0.push(LeaseFingerprint::of(fingerprint));
    }

    pub(super) fn with_capacity(n: usize) -> Self {
        LeaseFingerprints(Vec::with_capacity(n))
    }

    /// Each fingerprint's 64-bit value, in order, or `None` for one that is
    /// not 16 hex digits: what `Fingerprint::parse` answers for its text.
    pub fn values(&self) -> impl Iterator<Item = Option<u64>> + '_ {
        self.0.iter().map(|fp| match fp {
            LeaseFingerprint::Hex(v) => Some(*v),
            // Upper case, a sign, another length: parsed as the views
            // always have.
            LeaseFingerprint::Text(s) if s.len() == 16 => u64::from_str_radix(s, 16).ok(),
            LeaseFingerprint::Text(_) => None,
        })
    }

    /// Each fingerprint as it was written.
    pub fn texts(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|fp| fp.to_string())
    }
}

impl std::fmt::Debug for LeaseFingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.texts()).finish()
    }
}

impl<T: AsRef<str>> From<Vec<T>> for LeaseFingerprints {
    fn from(texts: Vec<T>) -> LeaseFingerprints {
        texts.into_iter().collect()
    }
}

/// From `String`s or [`CompactText`]s (an alert report's fingerprint).
impl<T: AsRef<str>> FromIterator<T> for LeaseFingerprints {
    fn from_iter<I: IntoIterator<Item = T>>(texts: I) -> LeaseFingerprints {
        LeaseFingerprints(
            texts
                .into_iter()
                .map(|t| LeaseFingerprint::of(t.as_ref()))
                .collect(),
        )
    }
}

impl Serialize for LeaseFingerprints {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for fp in &self.0 {
            match fp {
                LeaseFingerprint::Hex(v) => {
                    // Formatted on the stack: no String per fingerprint.
                    let mut buf = [0u8; 16];
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 0xf) as usize];
                    }
                    seq.serialize_element(std::str::from_utf8(&buf).expect("hex digits"))?;
                }
                LeaseFingerprint::Text(t) => seq.serialize_element(t)?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for LeaseFingerprints {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{SeqAccess, Visitor};

        /// One fingerprint, read where the deserializer has it.
        struct One(LeaseFingerprint);

        impl<'de> Deserialize<'de> for One {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl Visitor<'_> for Text {
                    type Value = One;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a fingerprint")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<One, E> {
                        Ok(One(LeaseFingerprint::of(v)))
                    }
                    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<One, E> {
                        Ok(One(LeaseFingerprint::of_string(v)))
                    }
                }
                d.deserialize_str(Text)
            }
        }

        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = LeaseFingerprints;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of fingerprints")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(One(fp)) = seq.next_element()? {
                    out.push(fp);
                }
                Ok(LeaseFingerprints(out))
            }
        }
        d.deserialize_seq(List)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AlertReport {
        AlertReport {
            fingerprint: "0123456789abcdef".into(),
            labels: [("alertname".to_string(), "Up".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            ends_at: None,
            generator_url: String::new(),
            extra: Default::default(),
        }
    }

    fn group_ref() -> GroupRef {
        GroupRef {
            group: "{}:{}".into(),
            route: "{}".into(),
            receiver: "team".into(),
            group_key: "{}:{}".into(),
            group_labels: LabelSet::new(),
        }
    }

    fn action() -> IncidentAction {
        IncidentAction {
            incident: "inc-7".into(),
            by: "alice".into(),
            via: "link".into(),
            until: Some("2026-01-01T01:00:00Z".parse().unwrap()),
            token: Some("t1".into()),
            reason: "on it".into(),
        }
    }

    fn target() -> DeliveryTarget {
        DeliveryTarget {
            receiver: "team".into(),
            integration: "dingtalk[0]".into(),
            group: "{}:{}".into(),
            due_seqs: vec![7, 9],
            integrations: vec!["dingtalk[0]".into(), "email[0]".into()],
        }
    }

    fn silence() -> SilenceSpec {
        SilenceSpec {
            id: "s1".into(),
            matchers: vec![crate::evaluate::matcher::ApiMatcher {
                name: "alertname".into(),
                value: "Up".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            ends_at: "2026-01-01T02:00:00Z".parse().unwrap(),
            created_by: "alice".into(),
            comment: "maintenance".into(),
        }
    }

    fn remediation_due() -> RemediationDue {
        RemediationDue {
            id: "rollback:rel-1".into(),
            action: "rollback".into(),
            app: "checkout".into(),
            env: "prod".into(),
            scope: "rel-1".into(),
            reason: "auto-rollback".into(),
            trigger: "0123456789abcdef".into(),
            release: Some("rel-1".into()),
            rollback_to: Some("v1.4.1".into()),
            request: RemediationRequest {
                method: "POST".into(),
                url: "http://deploy.example.com/rollback".into(),
                header_names: vec!["Authorization".into()],
                body: "{}".into(),
            },
            idempotency_key: "fenghuo-rollback-rel-1".into(),
            require_ack: true,
        }
    }

    fn remediation_call() -> RemediationCall {
        RemediationCall {
            id: "rollback:rel-1".into(),
            attempt: 1,
            status: Some(200),
            latency_ms: 12,
            body: "ok".into(),
            error: String::new(),
            retry_at: None,
            gave_up: false,
        }
    }

    #[test]
    fn kinds_round_trip_through_their_two_columns() {
        let kinds = vec![
            EventKind::AlertReceived(std::sync::Arc::new(report())),
            EventKind::AlertFired {
                fingerprint: "a".into(),
            },
            EventKind::AlertRefreshed {
                leases: vec![Lease {
                    ends_at: "2026-01-01T00:05:00Z".parse().unwrap(),
                    fingerprints: vec!["a".to_string(), "b".to_string()].into(),
                }],
            },
            EventKind::AlertResolved(AlertResolution {
                fingerprint: "a".into(),
                ends_at: "2026-01-01T00:05:00Z".parse().unwrap(),
                reason: "resolved by source".into(),
                report: Some(report()),
            }),
            EventKind::AlertAcked {
                fingerprint: "a".into(),
                by: "pagerduty".into(),
                dedup_key: Some("k".into()),
            },
            EventKind::SilenceCreated(silence()),
            EventKind::SilenceUpdated(silence()),
            EventKind::SilenceExpired {
                id: "s1".into(),
                ends_at: "2026-01-01T01:00:00Z".parse().unwrap(),
            },
            EventKind::GroupScheduled(GroupTimer {
                group: group_ref(),
                due_at: "2026-01-01T00:00:30Z".parse().unwrap(),
                reason: "group_wait".into(),
                muted: vec!["c".into()],
            }),
            EventKind::GroupClosed(group_ref()),
            EventKind::NotificationDue(NotificationDue {
                group: group_ref(),
                firing: vec!["a".into()],
                resolved: vec!["b".into()],
                new: vec!["a".into()],
                repeat: false,
                muted: [("c".to_string(), vec!["s1".to_string()])].into(),
                escalation: Some(EscalationRef {
                    incident: "inc-7".into(),
                    iteration: 1,
                    step: 2,
                }),
                to: vec![Recipient {
                    name: "alice".into(),
                    email: Some("alice@example.com".into()),
                    mentions: [("dingtalk_mobile".to_string(), "13800000000".to_string())].into(),
                }],
                flapping: Vec::new(),
                changes_only: true,
                update_in_place: false,
                symptoms: Vec::new(),
                digest_at: None,
            }),
            EventKind::NotificationSent(DeliverySent {
                target: target(),
                attempt: 2,
                status: 200,
                latency_ms: 12,
                template_fallback: Some("line 3: unknown variable".into()),
                digest: true,
                message_ref: Some("C024BE91L 1503435956.000247".into()),
                updated: true,
            }),
            EventKind::NotificationFailed(DeliveryFailed {
                target: target(),
                attempt: 1,
                reason: "HTTP 503".into(),
                class: "http_5xx".into(),
                status: Some(503),
                retryable: true,
                retry_at: Some("2026-01-01T00:00:02Z".parse().unwrap()),
                gave_up: false,
                fallback: None,
            }),
            EventKind::NotificationSkipped(DeliverySkipped {
                target: target(),
                reason: "send_resolved is false".into(),
            }),
            EventKind::EscalationStepped(EscalationStep {
                incident: "inc-7".into(),
                policy: "platform".into(),
                iteration: 0,
                step: 1,
                action: "wait".into(),
                reason: "waiting 5m".into(),
                people: vec!["alice".into()],
                receivers: vec!["im".into()],
                next_at: Some("2026-01-01T00:05:00Z".parse().unwrap()),
            }),
            EventKind::IncidentAcknowledged(action()),
            EventKind::IncidentUnacknowledged(action()),
            EventKind::IncidentResolved(action()),
            EventKind::IncidentSnoozed(action()),
            EventKind::K8sEvent(std::sync::Arc::new(K8sEvent {
                cluster: "prod".into(),
                namespace: "shop".into(),
                involved_object: InvolvedObject {
                    kind: "Pod".into(),
                    name: "web-1".into(),
                    uid: "u1".into(),
                    ..Default::default()
                },
                reason: "BackOff".into(),
                message: "Back-off restarting failed container".into(),
                event_type: "Warning".into(),
                count: 3,
                first_seen: Some("2026-01-01T00:00:00Z".parse().unwrap()),
                last_seen: Some("2026-01-01T00:02:00Z".parse().unwrap()),
                reporting_controller: "kubelet".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            })),
            EventKind::ProbeResult(std::sync::Arc::new(ProbeResult {
                probe: "api".into(),
                probe_type: "scrape".into(),
                target: "http://api:9100/metrics".into(),
                ok: true,
                latency_ms: Some(12.5),
                status: Some(200),
                values: [("up".to_string(), 1.0)].into(),
                error: None,
                labels: LabelSet::new(),
                summary: None,
            })),
            EventKind::HeartbeatReceived(Heartbeat {
                name: "backup".into(),
                labels: LabelSet::new(),
            }),
            EventKind::RulesLoaded(RulesLoaded {
                hash: "0123456789abcdef".into(),
                files: vec!["rules/pods.yaml".into()],
                rules: 12,
                by: "start-up".into(),
            }),
            EventKind::K8sWatchProgressed(K8sWatchProgress {
                cluster: "prod".into(),
                namespace: String::new(),
                resource_version: "12746".into(),
                by: "bookmark".into(),
            }),
            EventKind::ReleaseRecorded(Release {
                id: "rel-1".into(),
                app: "checkout".into(),
                env: "prod".into(),
                cluster: "bj-1".into(),
                version: "v1.4.2".into(),
                by: "alice".into(),
                change_url: "https://git.example.com/c/1".into(),
                strategy: "rolling".into(),
                via: "api".into(),
            }),
            EventKind::ReleaseStatusChanged(ReleaseStatusChange {
                id: "rel-1".into(),
                status: "started".into(),
                by: "alice".into(),
                reason: String::new(),
            }),
            EventKind::ReleaseGateDecided(GateDecision {
                app: "checkout".into(),
                env: "prod".into(),
                cluster: String::new(),
                allowed: false,
                reasons: vec!["2 critical alerts firing for checkout in prod".into()],
                asked_by: "deployer".into(),
            }),
            EventKind::ReleaseSuspected(ReleaseSuspicion {
                release: "rel-1".into(),
                app: "checkout".into(),
                env: "prod".into(),
                version: "v1.4.2".into(),
                released_by: "alice".into(),
                evidence_kind: "alert".into(),
                subject: "0123456789abcdef".into(),
                evidence: "HighErrorRate".into(),
                evidence_seq: 9,
                after_secs: 180,
                severity: "critical".into(),
            }),
            EventKind::RemediationDue(remediation_due()),
            EventKind::RemediationApproved(RemediationApproval {
                id: "rollback:rel-1".into(),
                by: "bob".into(),
                via: "link".into(),
                token: Some("t".into()),
            }),
            EventKind::RemediationDryRun(remediation_due()),
            EventKind::RemediationRefused(RemediationRefusal {
                id: "rollback:rel-1".into(),
                action: "rollback".into(),
                app: "checkout".into(),
                reason: "host evil.example.com is not in remediation.allowed_hosts".into(),
                request: Some(remediation_due().request),
            }),
            EventKind::RemediationSucceeded(remediation_call()),
            EventKind::RemediationFailed(RemediationCall {
                retry_at: Some("2026-01-01T00:00:02Z".parse().unwrap()),
                ..remediation_call()
            }),
            EventKind::AlertFlappingStarted(FlapChange {
                fingerprint: "a".into(),
                changes: 4,
                window_secs: 600,
                stable_secs: 600,
                firing: true,
            }),
            EventKind::AlertFlappingStopped(FlapChange {
                fingerprint: "a".into(),
                changes: 0,
                window_secs: 600,
                stable_secs: 600,
                firing: false,
            }),
        ];
        assert_eq!(kinds.len(), EventKind::NAMES.len());
        for kind in kinds {
            let back = EventKind::decode(kind.name(), &kind.payload_json()).unwrap();
            assert_eq!(back, kind);
            assert!(EventKind::NAMES.contains(&kind.name()));
        }
    }

    #[test]
    fn a_bad_kind_or_payload_is_refused() {
        let ok = EventKind::AlertFired {
            fingerprint: "a".into(),
        };
        let payload = ok.payload_json();
        assert_eq!(EventKind::decode("alert.fired", &payload).unwrap(), ok);
        for (kind, payload) in [
            ("alert.nonsense", payload.as_str()),
            ("alert.fired", "{\"fingerprint\":1}"),
            ("alert.fired", "{}"),
            ("alert.fired", "{\"fingerprint\":\"a\"} trailing"),
            ("alert.fired", "{\"fingerprint\":\"a\""),
            ("alert.fired", ""),
        ] {
            assert!(
                EventKind::decode(kind, payload).is_err(),
                "{kind} {payload} decoded"
            );
        }
    }

    #[test]
    fn an_event_serialises_with_kind_and_payload_beside_the_envelope() {
        let event = Event {
            seq: 7,
            id: "x".into(),
            occurred_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            recorded_at: "2026-01-01T00:00:01Z".parse().unwrap(),
            source: "prometheus".into(),
            key: "0123456789abcdef".into(),
            idempotency_key: None,
            kind: EventKind::AlertReceived(std::sync::Arc::new(report())),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "alert.received");
        assert_eq!(json["payload"]["labels"]["alertname"], "Up");
        assert_eq!(json["seq"], 7);
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
    /// The envelope's texts and the report's fingerprint became
    /// `CompactText`s (in place up to 38 bytes, shared beyond): the JSON of
    /// an event, and of its payload column, is byte for byte what the
    /// `String`s wrote, whether a text is short, long or needs escapes.
    #[test]
    fn compact_envelope_texts_write_the_json_strings_wrote() {
        let long = "x".repeat(super::super::text::INLINE + 5);
        for (id, source, key) in [
            (
                "4f1c0d9a8e7b6c5d4f1c0d9a8e7b6c5d",
                "prometheus",
                "0123456789abcdef",
            ),
            (long.as_str(), "a \"quoted\" \\ source\n", "ключ ✓"),
            ("", "", ""),
        ] {
            let mut r = report();
            r.fingerprint = key.into();
            let event = Event {
                seq: 7,
                id: id.into(),
                occurred_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                recorded_at: "2026-01-01T00:00:01Z".parse().unwrap(),
                source: source.into(),
                key: key.into(),
                idempotency_key: Some("idem".into()),
                kind: EventKind::AlertReceived(std::sync::Arc::new(r)),
            };
            let text = serde_json::to_string(&event).unwrap();
            let q = |s: &str| serde_json::to_string(s).unwrap();
            let want = format!(
                "{{\"seq\":7,\"id\":{},\"occurred_at\":\"2026-01-01T00:00:00Z\",\
                 \"recorded_at\":\"2026-01-01T00:00:01Z\",\"source\":{},\"key\":{},\
                 \"idempotency_key\":\"idem\",\"kind\":\"alert.received\",\"payload\":\
                 {{\"fingerprint\":{},\"labels\":{{\"alertname\":\"Up\"}},\"annotations\":{{}},\
                 \"starts_at\":\"2026-01-01T00:00:00Z\"}}}}",
                q(id),
                q(source),
                q(key),
                q(key)
            );
            assert_eq!(text, want);
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event);
            let payload = event.kind.payload_json();
            assert_eq!(
                EventKind::decode("alert.received", &payload).unwrap(),
                event.kind
            );
        }
    }
}
