//! `fenghuo backtest`: what candidate rules (and a candidate route tree)
//! would have decided over a stretch of the stored log, against what was
//! decided. Reads the log only; nothing is appended or sent (see
//! [`crate::evaluate::backtest`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::PromDuration;
use crate::evaluate::rules::{RuleSet, is_test_file};
use crate::eventlog::EventLog;

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// The candidate rules: a directory (its `*.yaml`/`*.yml`, tests
    /// excluded) or one rule file.
    #[arg(long)]
    pub rules: PathBuf,
    /// `--config` is the candidate route tree, inhibit rules, time
    /// intervals and escalation policies (none: nothing is routed, so no
    /// pages); `--data-dir` (or the config's) holds the log.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Start of the period: RFC 3339, or a duration before now (`7d`).
    #[arg(long)]
    pub from: String,
    /// End of the period (exclusive): RFC 3339, a duration before now, or
    /// `now` (the default).
    #[arg(long, default_value = "now")]
    pub to: String,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

/// An instant on the command line: RFC 3339, `now`, or a Prometheus
/// duration meaning that long before `now`.
pub fn parse_instant(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = text.strip_prefix("now-").unwrap_or(text);
    PromDuration::parse(ago).map(|d| now - d.0).map_err(|_| {
        format!(
            "{text:?}: use RFC 3339 (2026-11-25T19:00:00Z), `now`, or a duration before now (7d)"
        )
    })
}

/// The rule files of a directory (sorted, tests excluded), or the file.
fn rule_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("--rules {}", path.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && !is_test_file(p))
        .collect();
    files.sort();
    Ok(files)
}

pub fn run(args: BacktestArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let now = SystemClock.now();
    let from = parse_instant(&args.from, now).map_err(|e| anyhow::anyhow!("--from {e}"))?;
    let to = parse_instant(&args.to, now).map_err(|e| anyhow::anyhow!("--to {e}"))?;
    if from >= to {
        bail!("--from must be before --to");
    }
    let rules = RuleSet::load(&rule_files(&args.rules)?).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("candidate rules have problems:\n{}", lines.join("\n"))
    })?;
    let path = config.db_path();
    if !path.exists() {
        bail!("no event log at {}: pass --data-dir DIR", path.display());
    }
    let log = EventLog::open_read_only(&path)?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(log.last_seq())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} {eta}")
            .expect("static template"),
    );
    let report =
        crate::evaluate::backtest::run(&log, Arc::new(rules), &config, from, to, |done, _| {
            bar.set_position(done)
        })?;
    bar.finish_and_clear();
    print!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_now_or_a_duration_ago() {
        let now: DateTime<Utc> = "2026-11-25T19:00:00Z".parse().unwrap();
        assert_eq!(parse_instant("now", now).unwrap(), now);
        assert_eq!(
            parse_instant("7d", now).unwrap(),
            "2026-11-18T19:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_instant("now-1h", now).unwrap(),
            "2026-11-25T18:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_instant("2026-11-25T10:00:00+08:00", now).unwrap(),
            "2026-11-25T02:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(
            parse_instant("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
