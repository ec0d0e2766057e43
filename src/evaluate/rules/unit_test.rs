//! Rule unit tests (`fenghuo test`), in the spirit of `promtool test rules`.
//!
//! ```yaml
//! rule_files: [kubernetes-pods.yaml]      # relative to this file
//! start: 2026-01-01T00:00:00Z             # optional; offsets count from it
//! tests:
//!   - name: four back-offs in ten minutes page
//!     input:
//!       - at: 0s
//!         kind: k8s.event
//!         source: kubernetes               # optional (default "test")
//!         repeat: { every: 2m, times: 4 }  # optional: the same event again
//!         payload: { namespace: shop, reason: BackOff, involved_object: { kind: Pod, name: web-1 } }
//!     expect:
//!       - at: 5m
//!         alertname: PodCrashLooping       # optional: only this alert's
//!         firing: []
//!       - at: 7m
//!         firing:
//!           - labels: { alertname: PodCrashLooping, namespace: shop, pod: web-1, severity: warning }
//!             annotations: { summary: "…" }   # compared when given
//! ```
//!
//! Inputs go through the engine exactly as the log would feed it; between
//! them it is evaluated at every `next_wake()`, its decisions are folded
//! back as events, and at each expectation what fires is compared. At each
//! expectation the runner also folds the whole log so far into a fresh
//! engine and checks that it agrees (replay equals live) and decides
//! nothing new (a restart does not fire twice).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::language::{Problem, yaml_problem};
use super::{Decision, RuleEngine, RuleSet};
use crate::config::PromDuration;
use crate::eventlog::{AlertReport, Event, EventKind, LabelSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    rule_files: Vec<Spanned<String>>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    tests: Vec<RawTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    #[serde(default)]
    input: Vec<RawInput>,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    at: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    repeat: Option<RawRepeat>,
    payload: Spanned<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepeat {
    every: Spanned<String>,
    times: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    at: Spanned<String>,
    #[serde(default)]
    alertname: Option<String>,
    firing: Vec<RawAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    labels: LabelSet,
    #[serde(default)]
    annotations: Option<LabelSet>,
}

/// The outcome of one test file.
#[derive(Debug)]
pub struct FileReport {
    pub file: PathBuf,
    /// Each test's name and its failures (empty: passed).
    pub tests: Vec<(String, Vec<String>)>,
}

impl FileReport {
    pub fn failed(&self) -> usize {
        self.tests.iter().filter(|(_, f)| !f.is_empty()).count()
    }
}

fn offset(at: &Spanned<String>, file: &Path, problems: &mut Vec<Problem>) -> Duration {
    match PromDuration::parse(&at.value) {
        Ok(d) => d.0,
        Err(e) => {
            problems.push(Problem {
                file: file.to_path_buf(),
                line: at.referenced.line(),
                column: at.referenced.column(),
                message: e,
            });
            Duration::zero()
        }
    }
}

struct Test {
    name: String,
    inputs: Vec<(Duration, Event)>,
    expects: Vec<(Duration, Option<String>, Vec<RawAlert>, u64)>,
}

/// Reads a test file and the rule files it names; problems with either
/// are reported with their positions.
/// A test file read: its rules, its start instant and its tests.
type Loaded = (Arc<RuleSet>, DateTime<Utc>, Vec<Test>);

fn load(file: &Path) -> Result<Loaded, Vec<Problem>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![Problem {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let raw: RawTestFile =
        serde_saphyr::from_str(&text).map_err(|e| vec![yaml_problem(file, &e)])?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let start = match &raw.start {
        Some(s) => match s.value.parse::<DateTime<Utc>>() {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    file: file.to_path_buf(),
                    line: s.referenced.line(),
                    column: s.referenced.column(),
                    message: format!("start: {e}; write e.g. 2026-01-01T00:00:00Z"),
                });
                DateTime::<Utc>::UNIX_EPOCH
            }
        },
        None => "2026-01-01T00:00:00Z".parse().expect("a valid instant"),
    };
    let mut tests = Vec::new();
    let mut seq = 0u64;
    for t in raw.tests {
        let mut inputs = Vec::new();
        for input in t.input {
            let at = offset(&input.at, file, &mut problems);
            let payload = serde_json::to_string(&input.payload.value).unwrap_or_default();
            let kind = match EventKind::decode(&input.kind.value, &payload) {
                Ok(k) => k,
                Err(e) => {
                    let (at_span, message) =
                        if EventKind::NAMES.contains(&input.kind.value.as_str()) {
                            (
                                &input.payload.referenced,
                                format!("payload is not a {} payload: {e}", input.kind.value),
                            )
                        } else {
                            (
                                &input.kind.referenced,
                                format!(
                                    "unknown event kind {:?}; one of: {}",
                                    input.kind.value,
                                    EventKind::NAMES.join(", ")
                                ),
                            )
                        };
                    problems.push(Problem {
                        file: file.to_path_buf(),
                        line: at_span.line(),
                        column: at_span.column(),
                        message,
                    });
                    continue;
                }
            };
            let (every, times) = match &input.repeat {
                Some(r) => (offset(&r.every, file, &mut problems), r.times.max(1)),
                None => (Duration::zero(), 1),
            };
            for i in 0..times {
                let when = at + every * i as i32;
                seq += 1;
                inputs.push((
                    when,
                    Event {
                        seq,
                        id: format!("test-{seq}").into(),
                        occurred_at: start + when,
                        recorded_at: start + when,
                        source: input.source.clone().unwrap_or_else(|| "test".into()).into(),
                        key: input.key.clone().unwrap_or_default().into(),
                        idempotency_key: None,
                        kind: kind.clone(),
                    },
                ));
            }
        }
        inputs.sort_by_key(|(at, e)| (*at, e.seq));
        let mut expects = Vec::new();
        for e in t.expect {
            let at = offset(&e.at, file, &mut problems);
            expects.push((at, e.alertname, e.firing, e.at.referenced.line()));
        }
        expects.sort_by_key(|e| e.0);
        tests.push(Test {
            name: t.name,
            inputs,
            expects,
        });
    }
    let paths: Vec<PathBuf> = raw.rule_files.iter().map(|p| dir.join(&p.value)).collect();
    for (p, raw) in paths.iter().zip(&raw.rule_files) {
        if !p.exists() {
            problems.push(Problem {
                file: file.to_path_buf(),
                line: raw.referenced.line(),
                column: raw.referenced.column(),
                message: format!("rule file {} does not exist", p.display()),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let set = RuleSet::load(&paths)?;
    Ok((Arc::new(set), start, tests))
}

/// Checks a test file without running it.
pub fn check_file(file: &Path) -> Result<usize, Vec<Problem>> {
    load(file).map(|(_, _, tests)| tests.len())
}

/// Runs every test of a file.
pub fn run_file(file: &Path) -> Result<FileReport, Vec<Problem>> {
    let (set, start, tests) = load(file)?;
    let mut report = FileReport {
        file: file.to_path_buf(),
        tests: Vec::new(),
    };
    for test in tests {
        let failures = run_test(&set, start, &test);
        report.tests.push((test.name, failures));
    }
    Ok(report)
}

/// The engine and the log it has folded, as `serve` would have them.
struct Timeline {
    engine: RuleEngine,
    log: Vec<Event>,
    seq: u64,
}

impl Timeline {
    fn record(&mut self, decisions: Vec<Decision>) {
        for d in decisions {
            let e = d.to_event();
            self.seq += 1;
            let event = Event {
                seq: self.seq,
                id: e.id.into(),
                occurred_at: e.occurred_at,
                recorded_at: e.occurred_at,
                source: e.source.into(),
                key: e.key.into(),
                idempotency_key: None,
                kind: e.kind,
            };
            self.engine.observe(&event);
            self.log.push(event);
        }
    }

    /// Evaluates at every wake-up up to and including `t`, then at `t`.
    fn advance(&mut self, t: DateTime<Utc>) {
        for _ in 0..100_000 {
            match self.engine.next_wake() {
                Some(w) if w <= t => {
                    let d = self.engine.evaluate(w);
                    self.record(d);
                }
                _ => break,
            }
        }
        let d = self.engine.evaluate(t);
        self.record(d);
    }
}

fn run_test(set: &Arc<RuleSet>, start: DateTime<Utc>, test: &Test) -> Vec<String> {
    let mut tl = Timeline {
        engine: RuleEngine::new(set.clone(), start),
        log: Vec::new(),
        seq: 1_000_000,
    };
    let mut failures = Vec::new();
    let mut inputs = test.inputs.iter().peekable();
    for (at, alertname, want, line) in &test.expects {
        let t = start + *at;
        while let Some((when, event)) = inputs.next_if(|(when, _)| *when <= *at) {
            tl.advance(start + *when - Duration::nanoseconds(1));
            tl.engine.observe(event);
            tl.log.push(event.clone());
            tl.advance(start + *when);
        }
        tl.advance(t);
        let got: Vec<&AlertReport> = tl
            .engine
            .firing()
            .into_iter()
            .filter(|r| {
                alertname
                    .as_ref()
                    .is_none_or(|n| r.labels.get("alertname") == Some(n))
            })
            .collect();
        let heading = format!(
            "at {} (line {line}){}",
            PromDuration(*at),
            alertname
                .as_ref()
                .map(|n| format!(", alertname {n}"))
                .unwrap_or_default()
        );
        if let Some(diff) = compare(want, &got) {
            failures.push(format!("{heading}:\n{diff}"));
        }
        // Replay equals live, and a restart decides nothing again.
        let mut fresh = RuleEngine::new(set.clone(), start);
        for e in &tl.log {
            fresh.observe(e);
        }
        let again = fresh.evaluate(t);
        let live: Vec<_> = tl.engine.firing().into_iter().map(|r| &r.labels).collect();
        let replayed: Vec<_> = fresh.firing().into_iter().map(|r| &r.labels).collect();
        if !again.is_empty() || live != replayed {
            failures.push(format!(
                "{heading}: an engine rebuilt from the log disagrees: it would decide {:?}",
                again
                    .iter()
                    .map(|d| (d.is_fire(), d.labels()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    failures
}

fn show_labels(labels: &LabelSet) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// A readable difference, or `None` when `got` is what was expected.
fn compare(want: &[RawAlert], got: &[&AlertReport]) -> Option<String> {
    let mut lines = Vec::new();
    let got_by: BTreeMap<&LabelSet, &AlertReport> = got.iter().map(|r| (&r.labels, *r)).collect();
    let want_by: BTreeMap<&LabelSet, &RawAlert> = want.iter().map(|a| (&a.labels, a)).collect();
    for (labels, w) in &want_by {
        match got_by.get(labels) {
            None => lines.push(format!("  - missing:    {}", show_labels(labels))),
            Some(r) => {
                if let Some(ann) = &w.annotations
                    && *ann != r.annotations
                {
                    lines.push(format!("    annotations of {}:", show_labels(labels)));
                    let keys: std::collections::BTreeSet<&str> =
                        ann.keys().chain(r.annotations.keys()).collect();
                    for k in keys {
                        match (ann.get(k), r.annotations.get(k)) {
                            (Some(a), Some(b)) if a == b => {}
                            (a, b) => {
                                if let Some(a) = a {
                                    lines.push(format!("  -   {k}: {a:?}"));
                                }
                                if let Some(b) = b {
                                    lines.push(format!("  +   {k}: {b:?}"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for labels in got_by.keys() {
        if !want_by.contains_key(labels) {
            lines.push(format!("  + unexpected: {}", show_labels(labels)));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let mut out = format!("    expected {} firing, got {}:\n", want.len(), got.len());
    out.push_str(&lines.join("\n"));
    Some(out)
}
