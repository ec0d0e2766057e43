//! Silences: the `silence.*` events folded into what is silenced when, and
//! the checks Alertmanager applies to a silence before it is accepted.
//!
//! This module never decides to notify; it answers "which silences mute
//! these labels at this time" for whoever asks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::matcher::{Matcher, Matchers};
use crate::eventlog::{Event, EventKind, LabelSet, Projection, SilenceSpec};

/// Alertmanager's three silence states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Silence {
    pub spec: SilenceSpec,
    pub matchers: Matchers,
    /// When the log last changed it (Alertmanager's `updatedAt`).
    pub updated_at: DateTime<Utc>,
}

impl Silence {
    /// Compiles a spec; the error names the matcher that is wrong.
    pub fn compile(spec: SilenceSpec, updated_at: DateTime<Utc>) -> Result<Silence, String> {
        let mut matchers = Vec::with_capacity(spec.matchers.len());
        for (i, m) in spec.matchers.iter().enumerate() {
            matchers.push(
                Matcher::from_api(&m.name, &m.value, m.is_regex, m.is_equal)
                    .map_err(|e| format!("matchers[{i}]: {e}"))?,
            );
        }
        Ok(Silence {
            spec,
            matchers: Matchers(matchers),
            updated_at,
        })
    }

    pub fn state_at(&self, now: DateTime<Utc>) -> SilenceState {
        if self.spec.ends_at <= now {
            SilenceState::Expired
        } else if self.spec.starts_at > now {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    pub fn mutes(&self, labels: &LabelSet, now: DateTime<Utc>) -> bool {
        self.state_at(now) == SilenceState::Active && self.matchers.matches(labels)
    }
}

/// Alertmanager's validation of a silence posted at `now`: matchers
/// present and not all matching the empty string, `endsAt` after
/// `startsAt`, and (for a new or changed silence) `endsAt` not past.
pub fn validate(spec: &SilenceSpec, now: DateTime<Utc>) -> Result<Silence, (String, String)> {
    if spec.matchers.is_empty() {
        return Err(("matchers".into(), "at least one matcher required".into()));
    }
    let silence = Silence::compile(spec.clone(), now).map_err(|e| ("matchers".into(), e))?;
    if silence.matchers.iter().all(|m| m.matches_value("")) {
        return Err((
            "matchers".into(),
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if spec.ends_at <= spec.starts_at {
        return Err((
            "endsAt".into(),
            "end time must not be before start time".into(),
        ));
    }
    if spec.ends_at <= now {
        return Err(("endsAt".into(), "end time can't be in the past".into()));
    }
    if spec.created_by.trim().is_empty() {
        return Err(("createdBy".into(), "creator information required".into()));
    }
    if spec.comment.trim().is_empty() {
        return Err(("comment".into(), "comment required".into()));
    }
    Ok(silence)
}

#[derive(Default)]
pub struct SilenceStore {
    silences: RwLock<HashMap<String, Silence>>,
    /// Bumped by every change, so a reader can tell its view is current.
    version: std::sync::atomic::AtomicU64,
}

impl SilenceStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.silences.read().get(id).cloned()
    }

    /// Every silence, newest change first (as `amtool silence query` lists).
    pub fn all(&self) -> Vec<Silence> {
        let mut all: Vec<Silence> = self.silences.read().values().cloned().collect();
        all.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(a.spec.id.cmp(&b.spec.id))
        });
        all
    }

    /// Ids of the silences muting `labels` at `now`, sorted.
    /// Changes whenever a silence is created, changed, expired, or the
    /// store is reset or restored.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether some silence starts or ends in `(after, until]`: what mutes
    /// an alert may have changed without an event.
    pub fn boundary_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        self.silences.read().values().any(|s| {
            (s.spec.starts_at > after && s.spec.starts_at <= until)
                || (s.spec.ends_at > after && s.spec.ends_at <= until)
        })
    }

    pub fn muting(&self, labels: &LabelSet, now: DateTime<Utc>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .silences
            .read()
            .values()
            .filter(|s| s.mutes(labels, now))
            .map(|s| s.spec.id.clone())
            .collect();
        ids.sort();
        ids
    }
}

impl Projection for SilenceStore {
    fn name(&self) -> &'static str {
        "silences"
    }

    fn apply(&self, event: &Event) {
        if matches!(
            event.kind,
            EventKind::SilenceCreated(_)
                | EventKind::SilenceUpdated(_)
                | EventKind::SilenceExpired { .. }
        ) {
            self.version
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        match &event.kind {
            EventKind::SilenceCreated(spec) | EventKind::SilenceUpdated(spec) => {
                // Validated before it was appended; a spec that no longer
                // compiles (a regex engine change) is kept out rather than
                // matching everything.
                match Silence::compile(spec.clone(), event.recorded_at) {
                    Ok(s) => {
                        self.silences.write().insert(spec.id.clone(), s);
                    }
                    Err(e) => {
                        tracing::warn!(silence = %spec.id, error = %e, "stored silence no longer compiles")
                    }
                }
            }
            EventKind::SilenceExpired { id, ends_at } => {
                if let Some(s) = self.silences.write().get_mut(id) {
                    s.spec.ends_at = *ends_at;
                    s.updated_at = event.recorded_at;
                }
            }
            _ => {}
        }
    }

    fn reset(&self) {
        self.silences.write().clear();
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        let all: Vec<(SilenceSpec, DateTime<Utc>)> = self
            .silences
            .read()
            .values()
            .map(|s| (s.spec.clone(), s.updated_at))
            .collect();
        crate::eventlog::projection::snapshot_of(all)
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        let all: Vec<(SilenceSpec, DateTime<Utc>)> = crate::eventlog::projection::restored(state)?;
        let mut silences = HashMap::new();
        for (spec, updated_at) in all {
            let id = spec.id.clone();
            silences.insert(id, Silence::compile(spec, updated_at)?);
        }
        *self.silences.write() = silences;
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }
}
