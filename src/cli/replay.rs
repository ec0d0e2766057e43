//! `fenghuo replay`: fold the whole log through every projection, as start-up
//! does, with a progress bar, and report how fast it went.

use std::time::Instant;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
use crate::eventlog::{EventLog, replay};
use crate::pipeline::Views;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// No progress bar (for scripts).
    #[arg(long)]
    pub quiet: bool,
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
    let started = Instant::now();
    let n = replay(&log, &views, |done, _| bar.set_position(done))?;
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    println!(
        "replayed {n} events in {secs:.3}s ({:.0} events/s) through {} projection(s)",
        n as f64 / secs.max(1e-9),
        views.len()
    );
    let now = chrono::Utc::now();
    let firing = state
        .alerts
        .all()
        .iter()
        .filter(|(_, a)| a.firing_at(now))
        .count();
    println!("alerts known: {}, firing now: {firing}", state.alerts.len());
    Ok(())
}
