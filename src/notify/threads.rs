//! Message threads: per group, receiver and integration, the far end's id
//! of the message the group's updates in place edit.
//!
//! [`MessageThreads`] folds `notification.sent` events that carry a
//! `message_ref` (the Slack `channel ts`, Feishu `message_id` or DingTalk
//! `outTrackId` of what was posted or edited): the latest one is the
//! thread. It is a view like any other, snapshotted and rebuilt from the
//! log, so after a restart or in replay the next update still edits the
//! same message. A group that closed keeps its thread for a day of log
//! time, since its final resolve is delivered after it closes; a group
//! opening again starts a new message with its first page.
//!
//! This module owns only that fold. It never sends and never decides
//! whether a notification is an update: the dispatcher did
//! (`notification.due` `update_in_place`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::eventlog::{Event, EventKind, Projection};

/// How long the thread of a closed group is kept, in log time.
const KEEP_CLOSED_HOURS: i64 = 24;

/// The message a group's updates edit, on one integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    pub message_ref: String,
    /// When it was last posted or edited.
    pub at: DateTime<Utc>,
    /// When its group closed; `None` while open.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Inner {
    /// `{group}\u{1f}{receiver}\u{1f}{integration}` → thread.
    threads: BTreeMap<String, Thread>,
}

fn key(group: &str, receiver: &str, integration: &str) -> String {
    format!("{group}\u{1f}{receiver}\u{1f}{integration}")
}

/// The fold of message ids, per group, receiver and integration.
#[derive(Default)]
pub struct MessageThreads {
    inner: RwLock<Inner>,
}

impl MessageThreads {
    pub fn new() -> Self {
        Self::default()
    }

    /// The message the group's next update edits on this integration.
    pub fn get(&self, group: &str, receiver: &str, integration: &str) -> Option<Thread> {
        self.inner
            .read()
            .threads
            .get(&key(group, receiver, integration))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Projection for MessageThreads {
    fn name(&self) -> &'static str {
        "message_threads"
    }

    fn apply(&self, event: &Event) {
        match &event.kind {
            EventKind::NotificationSent(sent) => {
                let Some(message_ref) = &sent.message_ref else {
                    return;
                };
                let t = &sent.target;
                self.inner.write().threads.insert(
                    key(&t.group, &t.receiver, &t.integration),
                    Thread {
                        message_ref: message_ref.clone(),
                        at: event.occurred_at,
                        closed_at: None,
                    },
                );
            }
            EventKind::GroupClosed(g) => {
                let mut inner = self.inner.write();
                let prefix = format!("{}\u{1f}", g.group);
                for (_, thread) in inner
                    .threads
                    .range_mut(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                {
                    thread.closed_at = Some(event.occurred_at);
                }
                let horizon = event.occurred_at - Duration::hours(KEEP_CLOSED_HOURS);
                inner
                    .threads
                    .retain(|_, t| t.closed_at.is_none_or(|at| at > horizon));
            }
            _ => {}
        }
    }

    fn reset(&self) {
        *self.inner.write() = Inner::default();
    }

    fn snapshot(&self) -> Option<crate::eventlog::projection::SnapshotFn> {
        crate::eventlog::projection::snapshot_of(self.inner.read().clone())
    }

    fn restore(&self, state: serde_json::Value) -> Result<(), String> {
        *self.inner.write() = crate::eventlog::projection::restored(state)?;
        Ok(())
    }
}
