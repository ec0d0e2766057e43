//! Rule files: turning raw events (Kubernetes events, probe results,
//! heartbeats, alerts) into alerts, in the same lifecycle as Prometheus'.
//!
//! # The pieces
//!
//! * [`language`]: the YAML language (groups of rules with a selector, a
//!   CEL condition, one time condition, `for`, `resolve`, labels and
//!   annotations) and its compiler. Every problem is a [`Problem`] with
//!   `FILE:LINE:COL`.
//! * [`RuleSet`]: the compiled rules of some files, indexed by event kind
//!   (and by the value of an equality matcher) so an event meets only the
//!   rules that can select it; CEL and templates compiled once.
//! * [`RuleEngine`]: the evaluation, as a fold. It owns per rule and group
//!   the evidence its condition needs (event times in a window, distinct
//!   values, the latest value, when the group was last seen) and which
//!   alerts its rules have fired, as the log says.
//! * [`unit_test`]: `fenghuo test` files (inputs at offsets, expected
//!   alerts at times) and their runner.
//!
//! # The engine's contract
//!
//! ```text
//! let set = RuleSet::load(&paths)?;               // Err(Vec<Problem>): keep the old set
//! let mut engine = RuleEngine::new(Arc::new(set), started_at);
//! for event in log { engine.observe(&event); }    // replay, then live tail
//! loop {
//!     for d in engine.evaluate(clock.now()) { append(d.to_event()) }   // or Ingest
//!     sleep until engine.next_wake() or the next event
//! }
//! ```
//!
//! * State is derived from the log only: [`RuleEngine::observe`] folds input
//!   events (by their `occurred_at`) and the engine's own decisions (the
//!   `alert.received` / `alert.resolved` whose source is `rule/…`), so a
//!   restart that folds the log continues windows, `for` and `absent`
//!   timers, and does not fire again what already fired.
//! * Time is an input: [`RuleEngine::evaluate`] takes `now`, nothing reads
//!   a clock. A decision carries the instant it became due (`for` elapsed,
//!   a window expired), not the instant it was noticed.
//! * It never appends, sends or reads HTTP: it returns [`Decision`]s. Fold
//!   them back (observe the events they became) before relying on its view
//!   of what fires; until then it will not decide the same thing twice.
//! * Alerts raised by rules are not inputs to rules (no rule feeds on its
//!   own output).

pub mod engine;
pub mod expr;
pub mod language;
pub mod unit_test;
pub mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use engine::{Change, Decision, RuleEngine};
pub use language::{Problem, Rule};
pub use view::RulesView;

use crate::eventlog::Event;
use expr::{Input, Known};
use language::Compiled;

/// The rules of a set of files, compiled and indexed.
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Label and annotation templates, by `{rule index}/{labels|annotations}/{name}`.
    templates: tera::Tera,
    /// Per event kind: which rules can select (or be recovered by) it.
    by_kind: FastMap<&'static str, KindIndex>,
    /// What the rules' CEL reads of an event: all an event's context binds.
    reads: expr::Reads,
    files: Vec<PathBuf>,
    hash: String,
    /// Per rule: its templates can read `payload` (see [`Self::keeps_payload`]).
    keeps_payload: Vec<bool>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("files", &self.files)
            .finish()
    }
}

/// The hasher of the tables every event is looked up in (its kind, then
/// the values of equality matchers): rapidhash, as the engine's tables;
/// SipHash there was half of finding an event's candidate rules.
type FastMap<K, V> = HashMap<K, V, rapidhash::fast::GlobalState>;

type RulesByValue = FastMap<String, Vec<usize>>;

/// Rules of one kind. Most rules select on an equality (`reason="BackOff"`):
/// they are found by that field's value, so 200 rules on `k8s.event` cost
/// an event a few hash lookups, not 200 matcher walks.
#[derive(Default)]
struct KindIndex {
    /// Rules to try on every event of the kind.
    always: Vec<usize>,
    /// Field path → value → rules with `path="value"`.
    by_field: Vec<(Vec<String>, Known, RulesByValue)>,
}

impl RuleSet {
    /// Reads and compiles rule files. All problems of all files are
    /// returned together; a set with any problem is not built.
    pub fn load(paths: &[PathBuf]) -> Result<RuleSet, Vec<Problem>> {
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            match std::fs::read_to_string(path) {
                Ok(text) => sources.push((path.clone(), text)),
                Err(e) => problems.push(Problem {
                    file: path.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Self::from_sources(&sources)
    }

    /// Compiles rule files given as (name, text).
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet, Vec<Problem>> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut templates = Vec::new();
        let mut problems = Vec::new();
        let mut hash = crate::evaluate::Fnv64::new();
        for (path, text) in sources {
            hash.write(path.to_string_lossy().as_bytes());
            hash.write(&[0]);
            hash.write(text.as_bytes());
            hash.write(&[0]);
            match language::compile_file(path, text, rules.len()) {
                Ok(Compiled {
                    rules: more,
                    templates: t,
                }) => {
                    rules.extend(more);
                    templates.extend(t);
                }
                Err(p) => problems.extend(p),
            }
        }
        let mut seen: HashMap<&str, &Rule> = HashMap::new();
        for rule in &rules {
            if let Some(first) = seen.insert(&rule.source, rule) {
                problems.push(Problem {
                    file: rule.file.clone(),
                    line: rule.line,
                    column: 1,
                    message: format!(
                        "group {:?} alert {:?} is also defined at {}:{}; a group's name must be unique across files",
                        rule.group,
                        rule.name,
                        first.file.display(),
                        first.line
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let keeps_payload = templates_reading_payload(&rules, &templates);
        let mut tera = tera::Tera::new();
        tera.autoescape_on(Vec::<&'static str>::new());
        if let Err(e) = tera.add_raw_templates(templates) {
            // Each template was checked alone while compiling.
            return Err(vec![Problem {
                file: sources.first().map(|s| s.0.clone()).unwrap_or_default(),
                line: 0,
                column: 0,
                message: format!("templates: {e}"),
            }]);
        }
        let by_kind = index(&rules);
        let reads = reads(&rules);
        Ok(RuleSet {
            rules,
            templates: tera,
            by_kind,
            reads,
            files: sources.iter().map(|s| s.0.clone()).collect(),
            hash: format!("{:016x}", hash.finish()),
            keeps_payload,
        })
    }

    /// No rules at all.
    pub fn empty() -> RuleSet {
        Self::from_sources(&[]).expect("an empty set compiles")
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// A hash of the files' names and contents: which rules decided.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether any rule selects (or is recovered by) events of `kind`.
    pub fn reads_kind(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules that might select or be recovered by `event`, each once, in
    /// order.
    #[cfg(test)]
    fn candidates(&self, event: &Event, input: &Input) -> Vec<usize> {
        let mut out = Vec::new();
        self.candidates_into(event, input, &mut out);
        out
    }

    /// [`Self::candidates`] into `out` (cleared first), a buffer the
    /// engine reuses from event to event.
    fn candidates_into(&self, event: &Event, input: &Input, out: &mut Vec<usize>) {
        out.clear();
        let Some(ix) = self.by_kind.get(event.kind.name()) else {
            return;
        };
        out.extend_from_slice(&ix.always);
        for (path, known, values) in &ix.by_field {
            if let Some(rules) = values.get(&*input.known_text(*known, path)) {
                out.extend_from_slice(rules);
            }
        }
        if !ix.by_field.is_empty() {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Whether rule `index`'s templates can read `payload`: only then does
    /// a group keep the payload of its last event (which costs making the
    /// event's JSON).
    fn keeps_payload(&self, index: usize) -> bool {
        self.keeps_payload[index]
    }

    /// An event prepared for these rules (its CEL context binds only what
    /// their expressions read).
    fn input<'a>(&'a self, event: &'a Event) -> Input<'a> {
        Input::reading(event, &self.reads)
    }

    pub(crate) fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, String> {
        self.templates.render(name, ctx).map_err(|e| e.to_string())
    }
}

/// Per rule, whether a template of it can read `payload`, judged from the
/// templates' text (templates are named `{rule index}/…`): conservatively,
/// any mention of `payload` or of the whole context, and every rule as soon
/// as one template can pull in another (`include`, `import`, `extends`).
fn templates_reading_payload(rules: &[Rule], templates: &[(String, String)]) -> Vec<bool> {
    let mut keeps = vec![false; rules.len()];
    for (name, text) in templates {
        if ["include", "import", "extends"]
            .iter()
            .any(|w| text.contains(w))
        {
            return vec![true; rules.len()];
        }
        if (text.contains("payload") || text.contains("__tera_context"))
            && let Some(i) = name
                .split('/')
                .next()
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < keeps.len())
        {
            keeps[i] = true;
        }
    }
    keeps
}

/// What every expression of `rules` reads, together.
fn reads(rules: &[Rule]) -> expr::Reads {
    use language::{GroupBy, Mode};
    let mut reads = expr::Reads::nothing();
    for rule in rules {
        let selectors = std::iter::once(&rule.select).chain(&rule.recovery);
        let conditions = selectors.filter_map(|s| s.condition.as_ref());
        let groups = rule.group_by.iter().filter_map(|g| match g {
            GroupBy::Expr { expr, .. } => Some(expr),
            GroupBy::Path { .. } => None,
        });
        let modes = match &rule.mode {
            Mode::Distinct { of: e, .. } | Mode::Threshold { value: e, .. } => Some(e),
            _ => None,
        };
        for e in conditions.chain(groups).chain(modes) {
            reads.add(&e.source);
        }
    }
    reads
}

fn index(rules: &[Rule]) -> FastMap<&'static str, KindIndex> {
    let mut by_kind: FastMap<&'static str, KindIndex> = FastMap::default();
    for rule in rules {
        let eq = rule.select.matchers.iter().find(|m| {
            m.matcher.op() == crate::evaluate::matcher::MatchOp::Equal
                && !m.matcher.value().is_empty()
        });
        for kind in &rule.select.kinds {
            let ix = by_kind.entry(kind).or_default();
            match eq {
                Some(m) => {
                    let slot = match ix.by_field.iter().position(|(p, _, _)| *p == m.path) {
                        Some(i) => i,
                        None => {
                            ix.by_field
                                .push((m.path.clone(), m.known, FastMap::default()));
                            ix.by_field.len() - 1
                        }
                    };
                    ix.by_field[slot]
                        .2
                        .entry(m.matcher.value().to_string())
                        .or_default()
                        .push(rule.index);
                }
                None => ix.always.push(rule.index),
            }
        }
        if let Some(recovery) = &rule.recovery {
            for kind in &recovery.kinds {
                let ix = by_kind.entry(kind).or_default();
                if !ix.always.contains(&rule.index) {
                    ix.always.push(rule.index);
                }
            }
        }
    }
    by_kind
}

/// Whether a path names a rule test file rather than a rule file: it ends
/// in `test.yaml` or `test.yml` (`pods.test.yaml`, `pods_test.yaml`), as
/// the shipped library names them beside the rules they test.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("test.yaml") || n.ends_with("test.yml"))
}

/// Expands `rule_files:` patterns relative to `base` (the config's
/// directory). `*` and `?` match within one path segment, as Go's
/// `filepath.Glob` (which Prometheus uses) does; there is no `**`. A glob
/// skips rule test files (see [`is_test_file`]), so `rules/*.yaml` loads
/// the rules and not the tests kept beside them.
pub fn expand_rule_files(base: Option<&Path>, patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for pattern in patterns {
        let full = match base {
            Some(b) if Path::new(pattern).is_relative() => b.join(pattern),
            _ => PathBuf::from(pattern),
        };
        if !pattern.contains(['*', '?']) {
            if !full.is_file() {
                return Err(format!("rule_files: {} does not exist", full.display()));
            }
            out.push(full);
            continue;
        }
        let mut found = vec![PathBuf::new()];
        for part in full.components() {
            let part = part.as_os_str().to_string_lossy().to_string();
            let mut next = Vec::new();
            for at in &found {
                if part.contains(['*', '?']) {
                    let dir = if at.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        at.as_path()
                    };
                    let mut names: Vec<String> = std::fs::read_dir(dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| {
                            (part.starts_with('.') || !n.starts_with('.')) && wildcard(&part, n)
                        })
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| at.join(n)));
                } else {
                    next.push(at.join(&part));
                }
            }
            found = next;
        }
        out.extend(
            found
                .into_iter()
                .filter(|p| p.is_file() && !is_test_file(p)),
        );
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

/// `*` (any run of characters) and `?` (one character).
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_within_a_segment() {
        assert!(wildcard("*.yaml", "pods.yaml"));
        assert!(wildcard("pod?.yaml", "pods.yaml"));
        assert!(!wildcard("*.yaml", "pods.yml"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
    }

    #[test]
    fn rule_files_expand_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for f in ["b.yaml", "a.yaml", "a.test.yaml", "notes.txt"] {
            std::fs::write(dir.path().join("rules").join(f), "groups: []").unwrap();
        }
        let got = expand_rule_files(
            Some(dir.path()),
            &["rules/*.yaml".into(), "rules/a.yaml".into()],
        )
        .unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml"]);
        let missing = expand_rule_files(Some(dir.path()), &["rules/nope.yaml".into()]).unwrap_err();
        assert!(missing.contains("nope.yaml does not exist"), "{missing}");
        // A glob that matches nothing is not an error (Prometheus).
        assert!(
            expand_rule_files(Some(dir.path()), &["none/*.yaml".into()])
                .unwrap()
                .is_empty()
        );
    }
}

#[cfg(test)]
mod timeline_tests;
