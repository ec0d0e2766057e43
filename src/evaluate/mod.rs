//! Evaluate: deciding what is an alert.
//!
//! Owns fingerprints today; rules, silences, inhibition, routing and grouping
//! join it as they are built. It reads the log and appends decisions; it never
//! sends anything and never reads HTTP requests.

pub mod alerts;
pub mod dispatch;
pub mod fingerprint;
pub mod inhibit;
pub mod matcher;
pub mod route;
pub mod silence;
pub mod time_interval;

pub use fingerprint::{Fingerprint, Fnv64};
