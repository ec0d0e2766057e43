//! The escalate stage: who must react to an incident, and what happens
//! when nobody does.
//!
//! - [`people`] — the people who can be paged and their contact points;
//! - [`schedule`] — on-call schedules (rotations, layers, restrictions,
//!   overrides): who is on call at an instant;
//! - [`policy`] — escalation policies as configured, checked at load;
//! - [`incident`] — incidents (one paging episode of a notification group)
//!   as a fold over the log, with their escalation progress, acks, snoozes;
//! - [`escalator`] — takes the due steps and records them as events, with
//!   the pages they imply (`notification.due` addressed to people);
//! - [`link`] — signed, expiring action links (acknowledge from the page);
//! - [`actions`] — acknowledge, unacknowledge, resolve, snooze, checked
//!   the same way from the API, the CLI, links and PagerDuty events;
//! - [`stats`] — MTTA/MTTR, pages per person, noisiest alerts, from the log.
//!
//! This stage decides and records; it never sends (the outbox does) and
//! never reads the wall clock (callers pass the time).

pub mod actions;
pub mod escalator;
pub mod incident;
pub mod link;
pub mod people;
pub mod policy;
pub mod schedule;
pub mod stats;

pub use people::{Person, PersonName};
pub use schedule::{OnCall, Schedule, ScheduleConfig, Shift};
