//! `fenghuo test [FILE…]`: run rule unit tests, as `promtool test rules`
//! does. Each failure prints what was expected against what fired; exit
//! status 0 when every test passed, 1 otherwise.

use std::path::PathBuf;

use crate::evaluate::rules::unit_test;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Rule test files (YAML with `rule_files:` and `tests:`), or
    /// directories: every `*test*.yaml` / `*test*.yml` in them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Returns the process exit code.
pub fn run(args: TestArgs) -> i32 {
    let files = collect(&args.files);
    if files.is_empty() {
        println!("no rule test files found");
        return 1;
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        match unit_test::run_file(file) {
            Ok(report) => {
                for (name, failures) in &report.tests {
                    if failures.is_empty() {
                        passed += 1;
                        println!("{}: ok   {name}", file.display());
                    } else {
                        failed += 1;
                        println!("{}: FAIL {name}", file.display());
                        for f in failures {
                            println!("  {}", f.replace('\n', "\n  "));
                        }
                    }
                }
            }
            Err(problems) => {
                failed += 1;
                for p in problems {
                    println!("{p}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}

/// Files as given; directories contribute their test files, sorted.
pub fn collect(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    crate::evaluate::rules::is_test_file(p)
                        && p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    out
}
