//! [`Decider`]: the one stage whose decisions are committed together with
//! the events that caused them.
//!
//! A decision recorded in a separate transaction after its cause costs a
//! second sync to disk and a hand-off between threads before anything can
//! be sent; with `group_wait: 0s` that doubled the time from an alert's POST
//! to its page. So the writer, after folding a batch into the views and
//! before committing it, asks the decider whether the batch can change a
//! decision and, if so, appends its decisions to the same transaction. One
//! commit makes cause and decision durable together.
//!
//! The views then briefly hold events that are not yet committed. Nothing
//! may act outside the process on them before the commit: the outbox sends
//! only what [`Projection::committed`](super::Projection::committed) has
//! covered. If the commit fails, the writer rebuilds every view from the
//! log, so what is folded always equals what is stored.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::event::{Event, NewEvent};

pub trait Decider: Send + Sync {
    /// Whether a pass is worth running inside the commit of `events` (just
    /// folded): they can change a decision, and a pass is cheap enough not
    /// to hold up the commit. A declined batch is decided by a pass the
    /// dispatch loop asks for.
    fn wants(&self, events: &[Arc<Event>]) -> bool;

    /// The decisions due at `now` from the views as folded through `seq`.
    /// Runs on the writer thread, inside the transaction: it must not
    /// append, wait on the log, or take the views lock.
    fn decide(&self, now: DateTime<Utc>, seq: u64) -> Vec<NewEvent>;
}
