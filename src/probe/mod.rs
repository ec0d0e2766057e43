//! Scheduled probes: Fenghuo checks services itself (HTTP, TCP, Prometheus
//! text-format scrapes) and records what it found as `probe.result`
//! events for the rules (`rules/services.yaml`) to alert on.
//!
//! * [`config`]: the `probes:` section, checked at load with line/column.
//! * [`http`], [`tcp`], [`scrape`]: one run of one probe → an [`Outcome`];
//!   they know nothing of schedules or the log.
//! * [`schedule`]: when each probe runs next (spread by a hash of its name,
//!   or a cron expression), as a function of the time it is given.
//! * [`compact`]: which runs are stored (changes and periodic summaries),
//!   and the projection of what the log last holds per probe.
//! * [`runner`]: runs what is due on the clock, at most `probe_concurrency`
//!   at once, and appends what `compact` says to store.
//!
//! Heartbeats (a job saying it is alive) are pushed to
//! `/api/v1/heartbeats/{name}`, see `ingest::heartbeat`. This module never
//! decides alerts: it only records facts.

pub mod compact;
pub mod config;
pub mod http;
pub mod runner;
pub mod schedule;
pub mod scrape;
pub mod tcp;

use std::collections::BTreeMap;
use std::time::Duration;

pub use compact::ProbeStates;
pub use config::ProbeConfig;
pub use runner::ProbeRunner;

/// What one run of a probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// For HTTP, until the response headers; for a scrape, until the body
    /// was read; for TCP, until connected (and answered, with `expect`).
    pub latency: Duration,
    pub status: Option<u16>,
    pub values: BTreeMap<String, f64>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn up(latency: Duration, status: Option<u16>) -> Outcome {
        Outcome {
            ok: true,
            latency,
            status,
            values: BTreeMap::new(),
            error: None,
        }
    }

    pub fn failed(latency: Duration, status: Option<u16>, error: String) -> Outcome {
        Outcome {
            ok: false,
            latency,
            status,
            values: BTreeMap::new(),
            error: Some(error),
        }
    }
}
