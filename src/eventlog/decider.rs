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
    /// The decisions due at `now`, from the views as folded through `seq`.
    /// `folded` is what was folded since the last call in this batch: the
    /// batch's events, then the decisions of the previous round (a stage
    /// may decide on another's decisions, up to a few rounds). `asked`: a
    /// pass was asked for (timers), so decide whatever `folded` holds.
    /// Returning nothing ends the rounds; declining a batch (a pass too slow
    /// to hold up the commit) leaves it to a pass the dispatch loop asks for.
    ///
    /// Runs on the writer thread, inside the transaction: it must not
    /// append, wait on the log, or take the views lock.
    fn decide(
        &self,
        now: DateTime<Utc>,
        seq: u64,
        folded: &[Arc<Event>],
        asked: bool,
    ) -> Vec<NewEvent>;
}
