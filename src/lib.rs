//! 烽火 Fenghuo: an event-sourced alerting pipeline.
//!
//! # Layout
//!
//! Every fact enters as an event in one append-only log; every view is a fold
//! over it. The folders follow the pipeline:
//!
//! ```text
//! ingest ──► eventlog ──► evaluate ──► (escalate) ──► notify / (act)
//! ```
//!
//! * [`ingest`]: outside payloads (Alertmanager API v2 and webhook, PagerDuty
//!   Events v2) become events; re-sends that change nothing are not stored.
//! * [`eventlog`]: the envelope, the one enum of kinds, the SQLite store with
//!   group commit, tails and replay through projections.
//! * [`evaluate`]: what is an alert and who must hear of it — fingerprints,
//!   matchers, silences, inhibition, the routing tree, time intervals, and
//!   the dispatcher that turns groups into `notification.due` decisions on
//!   durable timers.
//! * [`escalate`]: people and on-call schedules — who is on call at an
//!   instant, across layers, restrictions, overrides and DST.
//! * [`notify`]: who hears of it and how — channels (email, Slack, DingTalk,
//!   WeCom, Feishu, webhook, PagerDuty), tera templates, and the outbox that
//!   delivers each `notification.due` and records `notification.sent` /
//!   `notification.failed`, with retries, fallback and rate-limit digests.
//! * [`pipeline`]: the one place where the stages are assembled.
//! * [`api`]: the HTTP router (`fn app(state) -> Router`); [`cli`]: the
//!   `fenghuo` command.
//! * [`clock`]: time is an input; logic never reads the wall clock.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod escalate;
pub mod evaluate;
pub mod eventlog;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod pipeline;
