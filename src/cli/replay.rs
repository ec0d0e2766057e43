//! `fenghuo replay`: fold the whole log through every projection, as start-up
//! does, with a progress bar, and report how fast it went.

use std::time::Instant;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use crate::eventlog::{EventLog, replay, replay_as_of};
use crate::pipeline::Views;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
    /// Time travel: rebuild the views as they were at this RFC 3339 time and
    /// print the alerts firing and silences active then.
    #[arg(long)]
    pub at: Option<String>,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let path = config.db_path();
    if !path.exists() {
        bail!("no event log at {}", path.display());
    }
    let log = EventLog::open_read_only(&path)?;
    let state = Views::new();
    let views = state.projections();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(log.last_seq())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let at = match &args.at {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| anyhow::anyhow!("--at {t:?}: not an RFC 3339 time ({e})"))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let started = Instant::now();
    let n = match at {
        Some(at) => replay_as_of(&log, &views, at, |done, _| bar.set_position(done))?,
        None => replay(&log, &views, |done, _| bar.set_position(done))?,
    };
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    println!(
        "replayed {n} events in {secs:.3}s ({:.0} events/s) through {} projection(s)",
        n as f64 / secs.max(1e-9),
        views.len()
    );
    let now = at.unwrap_or_else(chrono::Utc::now);
    let firing = state
        .alerts
        .all()
        .iter()
        .filter(|(_, a)| a.firing_at(now))
        .count();
    println!(
        "alerts known: {}, firing at {now}: {firing}",
        state.alerts.len()
    );
    if at.is_some() {
        for (fp, a) in state.alerts.all().iter().filter(|(_, a)| a.firing_at(now)) {
            let muted = state.silences.muting(&a.report.labels, now);
            let muted = if muted.is_empty() {
                String::new()
            } else {
                format!("  silenced by {}", muted.join(", "))
            };
            println!("  firing  {fp}  {:?}{muted}", a.report.labels);
        }
        for s in state.silences.all() {
            println!(
                "  silence {}  {}  until {}  by {}: {}",
                s.spec.id,
                s.state_at(now).as_str(),
                s.spec.ends_at.to_rfc3339(),
                s.spec.created_by,
                s.spec.comment
            );
        }
    }
    Ok(())
}
