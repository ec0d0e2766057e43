//! Escalate: who must react to an incident, and when.
//!
//! Owns the people who can be paged and their contact points
//! ([`people`]), and on-call schedules — rotations, layers, restrictions and
//! overrides — that say who is on call at an instant ([`schedule`]).
//!
//! Everything here is a pure function of the configuration and the instant
//! it is asked about: it never reads the wall clock (callers pass the time,
//! from their [`crate::clock::Clock`]), never sends anything, and never
//! touches the log or HTTP requests.

pub mod people;
pub mod schedule;

pub use people::{Person, PersonName};
pub use schedule::{OnCall, Schedule, ScheduleConfig, Shift};
