//! A pipeline on a manual clock in a temporary data directory, driven as
//! a timeline: post Prometheus alerts, move the clock, run a dispatcher
//! pass, and read what the log gained since the last look.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::config::Config;
use fenghuo::eventlog::{Event, EventKind, EventQuery, LabelSet, NotificationDue};
use fenghuo::ingest::IncomingAlert;
use fenghuo::pipeline::Pipeline;

pub struct Timeline {
    pub clock: ManualClock,
    pub pipeline: Pipeline,
    /// When second 0 of the timeline is.
    pub t0: DateTime<Utc>,
    /// The last seq read.
    read: u64,
}

impl Timeline {
    /// Opens the pipeline of `yaml` over `dir`; what is already in its log
    /// counts as read.
    pub fn open(dir: &std::path::Path, clock: &ManualClock, t0: DateTime<Utc>, yaml: &str) -> Self {
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.to_path_buf();
        let pipeline = Pipeline::open(config, Arc::new(clock.clone())).unwrap();
        Timeline {
            clock: clock.clone(),
            read: pipeline.log.last_seq(),
            pipeline,
            t0,
        }
    }

    /// Prometheus posts `alerts` now, started at `starts_at`: firing for
    /// hours, or resolved now.
    pub async fn post(&self, alerts: &[&LabelSet], starts_at: DateTime<Utc>, resolved: bool) {
        let now = self.clock.now();
        let ends_at = if resolved {
            now
        } else {
            now + Duration::hours(4)
        };
        let alerts = alerts
            .iter()
            .map(|l| {
                IncomingAlert::new(
                    (*l).clone(),
                    LabelSet::new(),
                    starts_at,
                    Some(ends_at),
                    String::new(),
                    Default::default(),
                    resolved,
                )
            })
            .collect();
        self.pipeline
            .ingest
            .alerts("prometheus", alerts)
            .await
            .unwrap();
        // What the dispatch loop does right after a commit, at this same
        // instant: a commit decides on the alerts it brings only while
        // passes are quick (`Dispatcher::wants` has a wall-clock budget), so
        // on a loaded machine the decisions come from the loop instead.
        self.pipeline.dispatcher.step().await.unwrap();
    }

    /// Moves the clock to `secs` from t0, runs a dispatcher pass, and
    /// answers every event since the last look.
    pub async fn at(&mut self, secs: i64) -> Vec<Event> {
        self.clock.set(self.t0 + Duration::seconds(secs));
        self.pipeline.dispatcher.step().await.unwrap();
        let events = self
            .pipeline
            .log
            .read(&EventQuery {
                after: self.read,
                limit: 100_000,
                ..EventQuery::default()
            })
            .unwrap();
        if let Some(last) = events.last() {
            self.read = last.seq;
        }
        events
    }
}

/// The notifications among `events`.
pub fn notifications(events: &[Event]) -> Vec<NotificationDue> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::NotificationDue(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}
