//! The event log: the one source of truth.
//!
//! Owns the event envelope and kinds ([`event`]), the SQLite store with group
//! commit ([`store`]) and the decider committed with it ([`decider`]), live tails ([`tail`](mod@tail)) and replay through projections
//! ([`replay`](mod@replay), [`projection`]). Only this module touches the `events` table;
//! it never interprets what an event means.

mod canonical;
pub mod decider;
pub mod event;
pub mod labels;
pub mod projection;
pub mod replay;
pub mod store;
pub mod tail;
pub mod text;

pub use decider::Decider;
pub use event::{
    AlertReport, AlertResolution, CompactText, Event, EventKind, FlapChange, GroupRef, GroupTimer,
    Heartbeat, InvolvedObject, K8sEvent, K8sWatchProgress, LabelSet, Lease, LeaseFingerprints,
    NewEvent, NotificationDue, OwnerReference, ProbeResult, ProbeSummary, RulesLoaded, SilenceSpec,
    Symptom,
};
pub use projection::Projection;
pub use replay::{Threads as ReplayThreads, replay, replay_as_of, replay_using};
pub use store::{Appended, EventLog, EventQuery, LogError, LogOptions, RawEvent, Synchronous};
pub use tail::tail;
