//! The rule file language: YAML groups of rules, parsed with positions and
//! compiled (matchers, CEL, durations, templates) once, at load.
//!
//! ```yaml
//! groups:
//!   - name: kubernetes-pods
//!     labels: { team: platform }          # added to every alert of the group
//!     rules:
//!       - alert: PodCrashLooping
//!         select:
//!           kind: k8s.event               # or a list of kinds
//!           source: kubernetes            # optional, or a list
//!           matchers: ['reason=~"BackOff|CrashLoopBackOff"', 'involved_object.kind="Pod"']
//!         condition: payload.type == 'Warning'     # CEL over the payload
//!         group_by: [cluster, namespace, { pod: payload.involved_object.name }]
//!         count: { window: 10m, above: 3 }
//!         for: 0s
//!         resolve: { after: 15m }
//!         labels: { severity: warning }
//!         annotations:
//!           summary: "{{ labels.pod }} restarted {{ count }} times in 10m"
//! ```
//!
//! Every problem is a [`Problem`] with file, line and column. A file that
//! is not YAML of this shape stops at its first problem; past that, every
//! rule is checked and all problems are reported.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::Duration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::expr::{Expr, Known};
use crate::config::PromDuration;
use crate::evaluate::matcher::{self, Matcher};
use crate::eventlog::EventKind;

/// Something wrong in a rule (or rule test) file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// From 1; 0 when the position is unknown.
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

// ---------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: Spanned<String>,
    select: Spanned<RawSelect>,
    #[serde(default)]
    condition: Option<Spanned<String>>,
    #[serde(default)]
    group_by: Vec<Spanned<RawGroupBy>>,
    #[serde(default)]
    count: Option<Spanned<RawCount>>,
    #[serde(default)]
    rate: Option<Spanned<RawCount>>,
    #[serde(default)]
    distinct: Option<Spanned<RawDistinct>>,
    #[serde(default)]
    absent: Option<Spanned<String>>,
    #[serde(default)]
    threshold: Option<Spanned<RawThreshold>>,
    #[serde(default, rename = "for")]
    for_: Option<Spanned<String>>,
    #[serde(default)]
    resolve: Option<RawResolve>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelect {
    kind: Spanned<OneOrMany>,
    #[serde(default)]
    source: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    matchers: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawGroupBy {
    Path(String),
    Named(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCount {
    window: Spanned<String>,
    above: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDistinct {
    of: Spanned<String>,
    window: Spanned<String>,
    above: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    value: Spanned<String>,
    #[serde(default)]
    fire_above: Option<f64>,
    #[serde(default)]
    clear_below: Option<f64>,
    #[serde(default)]
    fire_below: Option<f64>,
    #[serde(default)]
    clear_above: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResolve {
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    on: Option<Spanned<RawRecovery>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecovery {
    kind: Spanned<OneOrMany>,
    #[serde(default)]
    source: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    condition: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Compiled rules
// ---------------------------------------------------------------------------

/// Which events a rule (or its recovery) looks at.
#[derive(Debug)]
pub struct Selector {
    /// Dotted kind names (`k8s.event`).
    pub kinds: Vec<&'static str>,
    /// Sources; empty: any.
    pub sources: Vec<String>,
    pub matchers: Vec<FieldMatcher>,
    pub condition: Option<Expr>,
}

/// An Alertmanager matcher whose name is a dotted payload path.
#[derive(Debug)]
pub struct FieldMatcher {
    pub path: Vec<String>,
    /// `path` resolved once (see [`Known`]).
    pub known: Known,
    pub matcher: Matcher,
}

/// One label of an alert's group: its name and where its value comes from.
#[derive(Debug)]
pub enum GroupBy {
    /// A payload path; the label is named after its last segment.
    Path {
        label: String,
        path: Vec<String>,
        /// `path` resolved once (see [`Known`]).
        known: Known,
    },
    /// `{label: CEL}`.
    Expr { label: String, expr: Expr },
}

impl GroupBy {
    pub fn label(&self) -> &str {
        match self {
            GroupBy::Path { label, .. } | GroupBy::Expr { label, .. } => label,
        }
    }
}

/// What makes a rule's condition hold for a group.
#[derive(Debug)]
pub enum Mode {
    /// The latest selected event of the group meets the condition.
    Match,
    /// At least `at_least` events met the condition within `window`
    /// (`count: {above: N}` is `at_least: N+1`; `rate` is turned into a
    /// count over its window).
    Count { window: Duration, at_least: usize },
    /// At least `at_least` distinct values of `of` within `window`.
    Distinct {
        of: Expr,
        window: Duration,
        at_least: usize,
    },
    /// No event met the condition for `after`.
    Absent { after: Duration },
    /// A value crossed `fire` and has not come back past `clear`.
    Threshold {
        value: Expr,
        /// Fires above `fire` (else below).
        rising: bool,
        fire: f64,
        clear: f64,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Match => "match",
            Mode::Count { .. } => "count",
            Mode::Distinct { .. } => "distinct",
            Mode::Absent { .. } => "absent",
            Mode::Threshold { .. } => "threshold",
        }
    }
}

/// A label or annotation value: literal, or a tera template.
#[derive(Debug)]
pub enum Text {
    Literal(String),
    /// The name the template was added to the set's tera under.
    Template(String),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Position in the set (stable while the set is loaded).
    pub index: usize,
    pub group: String,
    pub name: String,
    /// `rule/{group}/{alert}`: the `source` of the alerts it raises.
    pub source: String,
    pub file: PathBuf,
    pub line: u64,
    pub select: Selector,
    pub group_by: Vec<GroupBy>,
    pub mode: Mode,
    pub for_: Duration,
    /// Quiet period before resolving (see the module doc).
    pub resolve_after: Option<Duration>,
    pub recovery: Option<Selector>,
    pub labels: Vec<(String, Text)>,
    pub annotations: Vec<(String, Text)>,
}

/// What compiling collects besides rules: tera templates to add.
pub(super) struct Compiled {
    pub rules: Vec<Rule>,
    pub templates: Vec<(String, String)>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn at<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
        });
    }

    fn duration(&mut self, d: &Spanned<String>, what: &str) -> Option<Duration> {
        match PromDuration::parse(&d.value) {
            Ok(p) if p.0 > Duration::zero() => Some(p.0),
            Ok(_) => {
                self.at(d, format!("{what}: must be more than 0s"));
                None
            }
            Err(e) => {
                self.at(d, format!("{what}: {e}"));
                None
            }
        }
    }

    /// Compiles CEL; a syntax error is placed at its line and column in the
    /// file, not only in the expression.
    fn expr(&mut self, src: &Spanned<String>, what: &str) -> Option<Expr> {
        // A block scalar ends in a newline; an error "at the end" belongs
        // on the last line written, not below it.
        match Expr::compile(src.value.trim_end()) {
            Ok(e) => Some(e),
            Err(e) => {
                let (line, column) = self.inside(src, e.line, e.column);
                self.problems.push(Problem {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    message: format!(
                        "{what}: invalid CEL at {}:{} of the expression: {} (in `{}`)",
                        e.line,
                        e.column,
                        e.message,
                        src.value.trim()
                    ),
                });
                None
            }
        }
    }

    /// The file position of line/column (from 1) inside a scalar that
    /// starts at `at`: past the opening quote of a quoted scalar, on the
    /// lines below a block scalar (`|`, `>`).
    fn inside<T>(&self, at: &Spanned<T>, line: usize, column: usize) -> (u64, u64) {
        let (l0, c0) = (at.referenced.line(), at.referenced.column());
        let first = self
            .text
            .lines()
            .nth(l0.saturating_sub(1) as usize)
            .unwrap_or("");
        let opening = first.chars().nth(c0.saturating_sub(1) as usize);
        match opening {
            Some('|') | Some('>') => {
                // The block's indentation is its first line's; deeper
                // lines keep their extra spaces in the expression.
                let body = self.text.lines().nth(l0 as usize).unwrap_or("");
                let indent = body.len() - body.trim_start().len();
                (l0 + line as u64, (indent + column) as u64)
            }
            Some('"') | Some('\'') if line == 1 => (l0, c0 + column as u64),
            _ if line == 1 => (l0, c0 + column as u64 - 1),
            // A block scalar's position is its first content line: the
            // lines below share its indentation.
            _ => (l0 + line as u64 - 1, c0 + column as u64 - 1),
        }
    }

    fn selector(
        &mut self,
        kind: &Spanned<OneOrMany>,
        source: &Option<Spanned<OneOrMany>>,
        matchers: &[Spanned<String>],
        condition: &Option<Spanned<String>>,
        what: &str,
    ) -> Option<Selector> {
        let mut ok = true;
        let mut kinds = Vec::new();
        for k in kind.value.items() {
            match EventKind::NAMES.iter().find(|n| **n == k) {
                Some(n) => kinds.push(*n),
                None => {
                    ok = false;
                    self.at(
                        kind,
                        format!(
                            "{what}.kind: unknown event kind {k:?}; one of: {}",
                            EventKind::NAMES.join(", ")
                        ),
                    );
                }
            }
        }
        if kinds.is_empty() && ok {
            ok = false;
            self.at(kind, format!("{what}.kind: name at least one event kind"));
        }
        let mut fields = Vec::new();
        for m in matchers {
            match matcher::parse(&m.value) {
                Ok(parsed) => {
                    for matcher in parsed {
                        let path: Vec<String> =
                            matcher.name().split('.').map(str::to_string).collect();
                        fields.push(FieldMatcher {
                            known: Known::of(&path),
                            path,
                            matcher,
                        });
                    }
                }
                Err(e) => {
                    ok = false;
                    let col = e.column().unwrap_or(0) + 1;
                    let (line, column) = self.inside(m, 1, col);
                    self.problems.push(Problem {
                        file: self.file.to_path_buf(),
                        line,
                        column,
                        message: format!(
                            "{what}.matchers: bad matcher {:?}: {}; write e.g. reason=\"BackOff\" or involved_object.kind=~\"Pod|Node\"",
                            m.value, e.message
                        ),
                    });
                }
            }
        }
        let condition = match condition {
            Some(c) => match self.expr(c, "condition") {
                Some(e) => Some(e),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        ok.then(|| Selector {
            kinds,
            sources: source.as_ref().map(|s| s.value.items()).unwrap_or_default(),
            matchers: fields,
            condition,
        })
    }
}

/// Reads and compiles one rule file. `first_index` numbers its rules after
/// those of the files before it.
pub(super) fn compile_file(
    file: &Path,
    text: &str,
    first_index: usize,
) -> Result<Compiled, Vec<Problem>> {
    let raw: RawFile = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(vec![yaml_problem(file, &e)]),
    };
    let mut ctx = Ctx {
        file,
        text,
        problems: Vec::new(),
    };
    let mut rules = Vec::new();
    let mut templates = Vec::new();
    let mut seen_groups: BTreeMap<String, u64> = BTreeMap::new();
    for group in &raw.groups {
        if group.name.value.is_empty() {
            ctx.at(&group.name, "group name must not be empty");
        }
        if let Some(line) =
            seen_groups.insert(group.name.value.clone(), group.name.referenced.line())
        {
            ctx.at(
                &group.name,
                format!(
                    "group {:?} is already defined at line {line}; group names must be unique in a file",
                    group.name.value
                ),
            );
        }
        let mut seen_rules: BTreeMap<String, u64> = BTreeMap::new();
        for raw_rule in &group.rules {
            let index = first_index + rules.len();
            if let Some(line) = seen_rules.insert(
                raw_rule.alert.value.clone(),
                raw_rule.alert.referenced.line(),
            ) {
                ctx.at(
                    &raw_rule.alert,
                    format!(
                        "alert {:?} is already defined in this group at line {line}",
                        raw_rule.alert.value
                    ),
                );
            }
            if let Some(rule) = compile_rule(&mut ctx, group, raw_rule, index, &mut templates) {
                rules.push(rule);
            }
        }
    }
    if ctx.problems.is_empty() {
        Ok(Compiled { rules, templates })
    } else {
        Err(ctx.problems)
    }
}

fn compile_rule(
    ctx: &mut Ctx,
    group: &RawGroup,
    raw: &RawRule,
    index: usize,
    templates: &mut Vec<(String, String)>,
) -> Option<Rule> {
    let before = ctx.problems.len();
    let name = raw.alert.value.clone();
    if !matcher::is_valid_classic_label_name(&name) {
        ctx.at(
            &raw.alert,
            format!("alert: {name:?} is not a valid alert name; use letters, digits and _ (e.g. PodCrashLooping)"),
        );
    }
    let s = &raw.select.value;
    let select = ctx.selector(&s.kind, &s.source, &s.matchers, &raw.condition, "select");

    let mut group_by = Vec::new();
    for g in &raw.group_by {
        match &g.value {
            RawGroupBy::Path(path) => {
                let parts: Vec<String> = path.split('.').map(str::to_string).collect();
                if parts.iter().any(|p| p.is_empty()) {
                    ctx.at(g, format!("group_by: {path:?} is not a field path; write e.g. namespace or involved_object.name"));
                    continue;
                }
                let label = parts.last().cloned().unwrap_or_default();
                group_by.push(GroupBy::Path {
                    label,
                    known: Known::of(&parts),
                    path: parts,
                });
            }
            RawGroupBy::Named(map) if map.len() == 1 => {
                let (label, src) = map.iter().next().expect("one entry");
                let spanned = Spanned::new(src.clone(), g.referenced, g.defined);
                if let Some(expr) = ctx.expr(&spanned, &format!("group_by.{label}")) {
                    group_by.push(GroupBy::Expr {
                        label: label.clone(),
                        expr,
                    });
                }
            }
            RawGroupBy::Named(_) => ctx.at(
                g,
                "group_by: a named entry has exactly one label, e.g. { pod: payload.involved_object.name }",
            ),
        }
    }

    let mut modes: Vec<(&str, Option<Mode>)> = Vec::new();
    if let Some(c) = &raw.count {
        let window = ctx.duration(&c.value.window, "count.window");
        modes.push((
            "count",
            window.and_then(|w| {
                at_least(ctx, c, c.value.above, "count.above").map(|n| Mode::Count {
                    window: w,
                    at_least: n,
                })
            }),
        ));
    }
    if let Some(r) = &raw.rate {
        let window = ctx.duration(&r.value.window, "rate.window");
        modes.push((
            "rate",
            window.and_then(|w| {
                // A rate per second over the window is a count over it.
                let per_window = r.value.above * w.num_milliseconds() as f64 / 1000.0;
                at_least(ctx, r, per_window, "rate.above").map(|n| Mode::Count {
                    window: w,
                    at_least: n,
                })
            }),
        ));
    }
    if let Some(d) = &raw.distinct {
        let window = ctx.duration(&d.value.window, "distinct.window");
        let of = ctx.expr(&d.value.of, "distinct.of");
        let n = at_least(ctx, d, d.value.above, "distinct.above");
        modes.push((
            "distinct",
            match (window, of, n) {
                (Some(window), Some(of), Some(at_least)) => Some(Mode::Distinct {
                    of,
                    window,
                    at_least,
                }),
                _ => None,
            },
        ));
    }
    if let Some(a) = &raw.absent {
        modes.push((
            "absent",
            ctx.duration(a, "absent")
                .map(|after| Mode::Absent { after }),
        ));
    }
    if let Some(t) = &raw.threshold {
        let value = ctx.expr(&t.value.value, "threshold.value");
        let tv = &t.value;
        let levels = match (tv.fire_above, tv.clear_below, tv.fire_below, tv.clear_above) {
            (Some(fire), clear, None, None) => {
                let clear = clear.unwrap_or(fire);
                if clear > fire {
                    ctx.at(
                        t,
                        format!(
                            "threshold: clear_below ({clear}) must not be above fire_above ({fire})"
                        ),
                    );
                    None
                } else {
                    Some((true, fire, clear))
                }
            }
            (None, None, Some(fire), clear) => {
                let clear = clear.unwrap_or(fire);
                if clear < fire {
                    ctx.at(
                        t,
                        format!(
                            "threshold: clear_above ({clear}) must not be below fire_below ({fire})"
                        ),
                    );
                    None
                } else {
                    Some((false, fire, clear))
                }
            }
            _ => {
                ctx.at(t, "threshold: give fire_above (and optionally clear_below), or fire_below (and optionally clear_above)");
                None
            }
        };
        modes.push((
            "threshold",
            match (value, levels) {
                (Some(value), Some((rising, fire, clear))) => Some(Mode::Threshold {
                    value,
                    rising,
                    fire,
                    clear,
                }),
                _ => None,
            },
        ));
    }
    let mode = match modes.len() {
        0 => Some(Mode::Match),
        1 => modes.pop().and_then(|(_, m)| m),
        _ => {
            let names: Vec<&str> = modes.iter().map(|(n, _)| *n).collect();
            ctx.at(
                &raw.alert,
                format!("alert {name:?} has {}: a rule has at most one of count, rate, distinct, absent, threshold", names.join(" and ")),
            );
            None
        }
    };

    let for_ = match &raw.for_ {
        Some(d) => match PromDuration::parse(&d.value) {
            Ok(p) => Some(p.0),
            Err(e) => {
                ctx.at(d, format!("for: {e}"));
                None
            }
        },
        None => Some(Duration::zero()),
    };
    let mut resolve_after = None;
    let mut recovery = None;
    if let Some(r) = &raw.resolve {
        if let Some(a) = &r.after {
            resolve_after = ctx.duration(a, "resolve.after");
        }
        if let Some(on) = &r.on {
            let o = &on.value;
            recovery = ctx.selector(&o.kind, &o.source, &o.matchers, &o.condition, "resolve.on");
        }
    }

    let mut labels = Vec::new();
    let mut all_labels: BTreeMap<&String, &Spanned<String>> = group.labels.iter().collect();
    all_labels.extend(raw.labels.iter());
    for (k, v) in all_labels {
        if k == "alertname" {
            ctx.at(
                v,
                "labels: alertname is the rule's `alert`; do not set it here",
            );
            continue;
        }
        if !matcher::is_valid_classic_label_name(k) {
            ctx.at(v, format!("labels: {k:?} is not a valid label name"));
            continue;
        }
        labels.push((
            k.clone(),
            text(ctx, v, format!("{index}/labels/{k}"), templates),
        ));
    }
    let mut annotations = Vec::new();
    for (k, v) in &raw.annotations {
        annotations.push((
            k.clone(),
            text(ctx, v, format!("{index}/annotations/{k}"), templates),
        ));
    }

    if ctx.problems.len() > before {
        return None;
    }
    Some(Rule {
        index,
        group: group.name.value.clone(),
        source: format!("rule/{}/{}", group.name.value, name),
        name,
        file: ctx.file.to_path_buf(),
        line: raw.alert.referenced.line(),
        select: select?,
        group_by,
        mode: mode?,
        for_: for_?,
        resolve_after,
        recovery,
        labels,
        annotations,
    })
}

fn at_least<T>(ctx: &mut Ctx, at: &Spanned<T>, above: f64, what: &str) -> Option<usize> {
    if !above.is_finite() || above < 0.0 {
        ctx.at(at, format!("{what}: must be a number of at least 0"));
        return None;
    }
    // "more than `above`" for a whole count of events.
    Some(above.floor() as usize + 1)
}

/// A label or annotation: checked as a tera template when it is one.
fn text(
    ctx: &mut Ctx,
    v: &Spanned<String>,
    name: String,
    templates: &mut Vec<(String, String)>,
) -> Text {
    if !(v.value.contains("{{") || v.value.contains("{%")) {
        return Text::Literal(v.value.clone());
    }
    let mut probe = tera::Tera::new();
    if let Err(e) = probe.add_raw_template(&name, &v.value) {
        let (line, col, message) = match e.kind() {
            tera::ErrorKind::SyntaxError(report) => {
                let span = report.span();
                (
                    span.start_line,
                    span.start_col + 1,
                    report.message().to_string(),
                )
            }
            _ => (1, 1, e.to_string()),
        };
        let (line, column) = ctx.inside(v, line, col);
        ctx.problems.push(Problem {
            file: ctx.file.to_path_buf(),
            line,
            column,
            message: format!(
                "{}: bad template: {message}; templates are tera, e.g. {{{{ labels.pod }}}}",
                name.split_once('/')
                    .map_or(name.as_str(), |(_, what)| what)
                    .replace('/', ".")
            ),
        });
    }
    templates.push((name.clone(), v.value.clone()));
    Text::Template(name)
}

/// A YAML or shape error from serde-saphyr as a problem with its position.
pub(super) fn yaml_problem(file: &Path, e: &serde_saphyr::Error) -> Problem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = e.without_snippet().to_string();
    // The message ends with its own "at line L column C"; ours is in front.
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    Problem {
        file: file.to_path_buf(),
        line,
        column,
        message: message.trim().to_string(),
    }
}
