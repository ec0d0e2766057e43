//! Evaluate: deciding what is an alert and who must hear of it.
//!
//! Owns fingerprints, the matcher language, silences, inhibition, flap
//! damping, the routing tree and time intervals, the alert store, and the
//! dispatcher that groups alerts and decides when a group is due a
//! notification. It reads the log and appends decisions; it never sends
//! anything and never reads HTTP requests.

pub mod alerts;
pub mod backtest;
pub mod dispatch;
pub mod fingerprint;
pub mod fingerprints;
pub mod flap;
pub mod inhibit;
pub mod matcher;
pub mod route;
pub mod rules;
pub mod silence;
pub mod source_quiet;
pub mod time_interval;
pub mod topology;

pub use fingerprint::{Fingerprint, FingerprintHashing, FingerprintMap, FingerprintSet, Fnv64};
