//! 烽火 Fenghuo: an event-sourced alerting pipeline.
//!
//! # Layout
//!
//! Every fact enters as an event in one append-only log; every view is a fold
//! over it. The folders follow the pipeline:
//!
//! ```text
//! ingest, probe ──► eventlog ──► evaluate ──► escalate ──► notify / act
//! ```
//!
//! The deciding stages (rules, the dispatcher, quiet sources, the
//! escalator, the act stage) decide inside
//! the log writer's commit of the events that cause their decisions
//! ([`eventlog::Decider`], assembled in [`pipeline`]), so a cause and what
//! it decided are durable together before anything is sent.
//!
//! * [`ingest`]: outside payloads (Alertmanager API v2 and webhook, PagerDuty
//!   Events v2, Kubernetes events posted or watched from API servers)
//!   become events; re-sends that change nothing are not stored.
//! * [`eventlog`]: the envelope, the one enum of kinds, the SQLite store with
//!   group commit, tails and replay through projections.
//! * [`evaluate`]: what is an alert and who must hear of it — rule files
//!   (CEL conditions over events, windows, `for`, `absent`), fingerprints,
//!   matchers, silences, inhibition (with a grace after the cause resolves),
//!   flap damping, the routing tree, time intervals, and the dispatcher that
//!   turns groups into `notification.due` decisions on durable timers.
//! * [`escalate`]: what happens when nobody reacts — incidents, escalation
//!   policies and their steps, acknowledgements (API, CLI, signed action
//!   links, PagerDuty events), people and on-call schedules, statistics.
//! * [`notify`]: who hears of it and how — channels (email, Slack, DingTalk,
//!   WeCom, Feishu, webhook, PagerDuty), tera templates, and the outbox that
//!   delivers each `notification.due` and records `notification.sent` /
//!   `notification.failed`, with retries, fallback and rate-limit digests.
//! * [`probe`]: scheduled HTTP, TCP and Prometheus-scrape probes that record
//!   `probe.result` events, compacted to changes and periodic summaries.
//! * [`act`]: releases (history, rollback targets, the gate, bake-window
//!   suspicion) and guarded remediation hooks with their executor.
//! * [`pipeline`]: the one place where the stages are assembled.
//! * [`api`]: the HTTP router (`fn app(state) -> Router`); [`cli`]: the
//!   `fenghuo` command.
//! * [`clock`]: time is an input; logic never reads the wall clock.

pub mod act;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod escalate;
pub mod evaluate;
pub mod eventlog;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod probe;
pub mod simulate;
