//! The shipped rule library (`rules/`): every `*test.yaml` passes, as
//! `fenghuo test rules/` runs it, and a failing test reads as a diff.

use std::path::Path;

use fenghuo::evaluate::rules::{RuleSet, is_test_file, unit_test};

#[test]
fn every_shipped_rule_test_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_test_file(p))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "rule tests in {}: {files:?}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        match unit_test::run_file(file) {
            Ok(report) => {
                assert!(!report.tests.is_empty(), "{}: no tests", file.display());
                for (name, f) in report.tests {
                    if !f.is_empty() {
                        failures.push(format!("{}: {name}:\n{}", file.display(), f.join("\n")));
                    }
                }
            }
            Err(problems) => failures.extend(problems.iter().map(ToString::to_string)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_rule_file_loads_and_is_tested() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rule_files =
        fenghuo::evaluate::rules::expand_rule_files(Some(&dir), &["*.yaml".into()]).unwrap();
    let set = RuleSet::load(&rule_files).unwrap_or_else(|p| panic!("{p:?}"));
    assert!(set.len() >= 16, "{} rules", set.len());
    // Each rule's alert name appears in some test's expectations.
    let tests: String = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_test_file(p))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for rule in set.rules() {
        assert!(
            tests.contains(&format!("alertname: {}", rule.name)),
            "{} has no test",
            rule.name
        );
    }
}

#[test]
fn a_failing_rule_test_shows_what_was_expected_against_what_fired() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        select: {kind: probe.result}\n        condition: '!payload.ok'\n        group_by: [probe]\n        annotations: {summary: '{{ labels.probe }} is down'}\n",
    )
    .unwrap();
    let test = dir.path().join("r.test.yaml");
    std::fs::write(
        &test,
        "rule_files: [r.yaml]\ntests:\n  - name: wrong\n    input:\n      - {at: 0s, kind: probe.result, payload: {probe: api, type: http, ok: false}}\n    expect:\n      - at: 1m\n        firing:\n          - labels: {alertname: Down, probe: web}\n          - labels: {alertname: Down, probe: api}\n            annotations: {summary: api is up}\n",
    )
    .unwrap();
    let report = unit_test::run_file(&test).unwrap();
    assert_eq!(report.failed(), 1);
    let text = report.tests[0].1.join("\n");
    for want in [
        "at 1m (line 7)",
        "expected 2 firing, got 1",
        "- missing:    {alertname=\"Down\", probe=\"web\"}",
        "-   summary: \"api is up\"",
        "+   summary: \"api is down\"",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    // A problem in the test file itself is placed.
    std::fs::write(&test, "rule_files: [r.yaml]\ntests:\n  - name: x\n    input:\n      - {at: soon, kind: probe.result, payload: {}}\n").unwrap();
    let problems = unit_test::run_file(&test).unwrap_err();
    assert!(
        problems[0]
            .to_string()
            .contains("r.test.yaml:5:14: invalid duration \"soon\""),
        "{problems:?}"
    );
}
