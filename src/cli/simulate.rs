//! `fenghuo simulate SCENARIO…`: runs scenarios through the real pipeline
//! on a manual clock (see [`crate::simulate`]) and prints what was paged.
//! Exits 1 when a scenario exceeds its `expect` bounds, so CI can hold them.

use std::path::PathBuf;

use crate::simulate::{Scenario, run};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Scenario files (YAML).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Run with this config instead of each scenario's own (to compare a
    /// naive and a tuned one); bounds are then reported, not enforced.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print every page: when, to whom, which group, how many alerts.
    #[arg(long)]
    pub pages: bool,
}

pub fn run_args(args: SimulateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = false;
    for path in &args.scenarios {
        let scenario = Scenario::load(path)?;
        let report = runtime.block_on(run(&scenario, args.config.as_deref()))?;
        println!("scenario: {}", report.name);
        println!(
            "  pages: {} firing, {} resolved, {} updates in place, {} digests of resolved; alerts carried: {}; duplicates: {}",
            report.firing_pages,
            report.resolved_pages,
            report.updates_in_place,
            report.resolved_digests,
            report.alerts_carried,
            report.duplicates
        );
        if args.pages {
            for page in &report.pages {
                println!("  {page}");
            }
        }
        if report.suspected > 0 {
            println!(
                "  linked to a release in its bake window: {}",
                report.suspected
            );
        }
        for r in &report.remediations {
            println!("  remediation decided: {r}");
        }
        for (receiver, n) in &report.by_receiver {
            println!("  receiver {receiver}: {n} pages");
        }
        for (name, first) in &report.incidents {
            match first {
                Some(secs) => println!("  incident {name}: first page after {secs:.1} s"),
                None => {
                    println!("  incident {name}: MISSED (no page naming its cause by its deadline)")
                }
            }
        }
        let violations = report.violations(&scenario.expect);
        for v in &violations {
            println!("  over bound: {v}");
        }
        if args.config.is_none() && !violations.is_empty() {
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
