//! Acting on what the log knows: releases and remediation.
//!
//! A release system records releases here (`release.recorded`,
//! `release.status_changed`), asks the gate whether it may release
//! (`release.gate_decided`), and gets rolled back when a release breaks
//! its app. What goes wrong in a release's bake window is linked to it
//! (`release.suspected`); remediation hooks (HTTP calls with guards) run
//! once per incident or release, after approval where required.
//!
//! * [`release`]: the releases as a fold (history, rollback targets,
//!   bake windows).
//! * [`gate`]: allow or deny, with reasons.
//! * [`stage`]: the deciding stage, run by the log writer with the others.
//! * [`remediation`]: runs as a fold, and the executor that calls them.
//! * [`hook`]: templates, the host allow-list, one HTTP attempt.
//! * [`config`]: the `releases:` and `remediation:` sections.
//!
//! Nothing here reads the wall clock, and nothing calls out except the
//! executor, on decisions already committed.

pub mod config;
pub mod gate;
pub mod hook;
pub mod release;
pub mod remediation;
pub mod stage;
