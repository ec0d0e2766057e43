//! The `fenghuo` command: one subcommand per file.

mod backtest;
mod check;
mod events;
mod incident;
pub use incident::period as incident_period;
mod oncall;
mod replay;
mod serve;
mod simulate;
mod template;
mod test;
mod why;
pub use why::{fate_in, inhibited_as_of};

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "fenghuo",
    version,
    about = "烽火 Fenghuo: event-sourced alerting"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the process finds its settings; shared by every subcommand.
#[derive(Debug, clap::Args, Clone, Default)]
pub struct ConfigArgs {
    /// YAML config file (fenghuo.yaml).
    #[arg(long, env = "FENGHUO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory holding fenghuo.db.
    #[arg(long, env = "FENGHUO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// Defaults, then the file, then variables and flags.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        Ok(config)
    }

    /// Opens the data directory's log for reading, beside a running server.
    pub fn open_log(&self) -> anyhow::Result<crate::eventlog::EventLog> {
        let path = self.load()?.db_path();
        if !path.exists() {
            anyhow::bail!(
                "no event log at {}: pass --data-dir DIR or --server URL",
                path.display()
            );
        }
        Ok(crate::eventlog::EventLog::open_read_only(&path)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Print events from a data directory or a running server.
    Events(events::EventsArgs),
    /// Rebuild every view from the log and report the speed.
    Replay(replay::ReplayArgs),
    /// Replay a period of the stored log through candidate rules and routes,
    /// and print what would have differed (read-only; nothing is sent).
    Backtest(backtest::BacktestArgs),
    /// Explain an alert: its state, what mutes it, and its history.
    Why(why::WhyArgs),
    /// Validate configs, rule files, rule tests and templates (exit 1 on problems).
    Check(check::CheckArgs),
    /// Run rule unit tests (exit 1 on failures).
    Test(test::TestArgs),
    /// Preview notification templates.
    Template(template::TemplateArgs),
    /// Who is on call now or at a time, and the next handoffs.
    Oncall(oncall::OnCallArgs),
    /// MTTA/MTTR, pages per person and the noisiest alerts over a period.
    Stats(incident::StatsArgs),
    /// List incidents, or acknowledge, unacknowledge, resolve or snooze one.
    Incident(incident::IncidentArgs),
    /// Run scenarios (timelines of alerts and events) through the real
    /// pipeline on a manual clock and report pages, incidents missed and
    /// time to first page (exit 1 when over the scenario's bounds).
    Simulate(simulate::SimulateArgs),
}

/// Sets up logging on stderr, in text or JSON.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FENGHUO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn main() -> anyhow::Result<()> {
    run(Cli::parse())
}

impl Cli {
    /// Whether this is the long-running server: the binary tunes its
    /// allocator for a server's settled memory only then (the batch
    /// commands, `backtest` and `replay`, would pay for it in time).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Events(args) => events::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Why(args) => why::run(args),
        Command::Check(args) => std::process::exit(check::run(args)),
        Command::Test(args) => std::process::exit(test::run(args)),
        Command::Template(args) => template::run(args),
        Command::Oncall(args) => oncall::run(args),
        Command::Stats(args) => incident::run_stats(args),
        Command::Incident(args) => incident::run_incident(args),
        Command::Simulate(args) => simulate::run_args(args),
    }
}
