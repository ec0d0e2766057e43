//! `fenghuo check [PATH…]`: validate configs, rule files, rule tests and
//! templates before they are deployed, as `promtool check` does. Every
//! problem names its file (and line and column where the parser knows
//! them). Exit status 0 when all is well, 1 when problems were found.
//!
//! A YAML file is a rule test when its name ends in `test.yaml`, a rule
//! file when it has `groups:` at the top, and a config otherwise; a
//! config's `rule_files:` are checked with it.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::evaluate::rules::{self, Problem, RuleSet};
use crate::notify::Templates;

/// A YAML file whose top level has `groups:` (a config never does).
fn is_rule_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| l.starts_with("groups:") || l.starts_with("\"groups\":"))
    })
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or directories: `fenghuo.yaml` (or any .yaml/.yml config), rule
    /// files, rule tests and templates (.html, .txt, .json, .md).
    /// Directories are walked.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Returns the process exit code.
pub fn run(args: CheckArgs) -> i32 {
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, &mut files);
    }
    let mut problems = 0;
    for file in &files {
        match check_file(file) {
            Ok(what) => println!("{}: ok ({what})", file.display()),
            Err(e) => {
                problems += 1;
                println!("{}", e.trim_end());
            }
        }
    }
    if files.is_empty() {
        println!("nothing to check");
        return 1;
    }
    if problems > 0 {
        println!("{problems} of {} files have problems", files.len());
        1
    } else {
        0
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || kind(&e).is_some() {
                collect(&e, out);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn kind(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "yaml" | "yml" => Some("config"),
        "html" | "txt" | "json" | "md" => Some("template"),
        _ => None,
    }
}

fn check_file(path: &Path) -> Result<String, String> {
    let lines = |problems: Vec<Problem>| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    match kind(path) {
        Some("config") if rules::is_test_file(path) => {
            let n = rules::unit_test::check_file(path).map_err(lines)?;
            Ok(format!("rule tests: {n}"))
        }
        Some("config") if is_rule_file(path) => {
            let set = RuleSet::load(&[path.to_path_buf()]).map_err(lines)?;
            Ok(format!("rules: {}", set.len()))
        }
        Some("config") => {
            // Loading validates everything: routes, matchers, time
            // intervals, receivers with their secrets and templates.
            let config = Config::load(path).map_err(|e| e.to_string())?;
            let paths = config
                .rule_paths()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if paths.is_empty() {
                return Ok("config".into());
            }
            let set = RuleSet::load(&paths).map_err(lines)?;
            Ok(format!(
                "config, {} rules in {} rule files",
                set.len(),
                paths.len()
            ))
        }
        Some(_) => Templates::check_file(path).map(|()| "template".into()),
        None => Err(format!(
            "{}: unknown file type (expected .yaml/.yml configs or .html/.txt/.json/.md templates)",
            path.display()
        )),
    }
}
