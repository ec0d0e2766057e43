//! Alertmanager's label matcher language, the one parser used by silences,
//! inhibition, routes and the API filter.
//!
//! A matcher is `name op value` with `op` one of `=`, `!=`, `=~`, `!~`; a list
//! of them is written `{a="b", c=~"d|e"}` (braces optional, one trailing comma
//! allowed). Matching follows Alertmanager exactly:
//!
//! * a label that is missing has the value `""`, so `foo=""` matches an alert
//!   without `foo` and `foo!=""` requires `foo` to be set;
//! * regular expressions are fully anchored: `=~"a|b"` is compiled as
//!   `^(?:a|b)$`, so it matches `a` but not `ab`;
//! * a list matches when every matcher in it matches.
//!
//! # Two syntaxes, three modes
//!
//! Alertmanager has two matcher parsers, and so does this module:
//!
//! * the **UTF-8 parser** (Alertmanager ≥ 0.27, `matcher/parse`): names and
//!   values are unquoted literals (any UTF-8 but whitespace and
//!   ``{ } ! = ~ , \ " ' ` ``) or double-quoted strings with Go's escapes
//!   (`\"`, `\\`, `\n`, `\t`, `\xHH`, `\u…`, …). Errors carry the columns of the
//!   offending text and say what was expected;
//! * the **classic parser** (Alertmanager ≤ 0.26, `pkg/labels`): the name must
//!   match `[a-zA-Z_:][a-zA-Z0-9_:]*`, the value may be unquoted and runs to the
//!   end of the matcher, and only `\"`, `\\` and `\n` are escapes.
//!
//! [`ParseMode::Fallback`], the default and Alertmanager's default, tries the
//! UTF-8 parser first and falls back to the classic one when only the classic
//! one accepts the input (or when both accept it with different meanings, in
//! which case the classic reading wins, as in Alertmanager). That is what makes
//! an existing `alertmanager.yml` load unchanged. The [`CompatWarning`] that
//! Alertmanager would log is returned by [`parse_matchers`] / [`parse_matcher`]
//! so `fenghuo check` can show it.
//!
//! Differences from Alertmanager, all deliberate:
//!
//! * when the input is invalid in both syntaxes the UTF-8 parser's error is
//!   returned (it has a position and names what was expected); Alertmanager
//!   returns the classic parser's `bad matcher format: …`;
//! * "end of input" errors carry the column of the end of the input;
//! * an empty label name (`""="x"`) is refused in every mode;
//! * regular expressions use Rust's `regex` crate. Its syntax is RE2's, as Go's
//!   is, except that `\d`, `\w`, `\s` and `\b` are Unicode-aware here (Go's are
//!   ASCII-only) and `\Q…\E` is not supported.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::eventlog::LabelSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Matcher
// ---------------------------------------------------------------------------

/// The operator of a matcher. The order is Alertmanager's (`MatchType`), which
/// is the last key when sorting matchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    /// `=~` and `!~`.
    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    /// `=` and `=~` (the API's `isEqual`).
    pub fn is_equal(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }

    /// The operator from the API's `isRegex` / `isEqual` flags.
    pub fn from_flags(is_regex: bool, is_equal: bool) -> MatchOp {
        match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label matcher. Equality, hashing and ordering look at name, operator
/// and value only; ordering is Alertmanager's (name, then value, then
/// operator).
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// `^(?:value)$`, for `=~` and `!~`.
    re: Option<Regex>,
}

impl Matcher {
    /// A matcher; compiles the anchored regex for `=~` / `!~`. Fails on an
    /// empty name or an invalid regex.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        if name.is_empty() {
            return Err(MatcherError::new("label name must not be empty"));
        }
        let re = if op.is_regex() {
            Some(compile_anchored(&value)?)
        } else {
            None
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// Parses exactly one matcher (`foo="bar"`, no braces) the way
    /// Alertmanager parses an API filter or an amtool argument. Same as
    /// [`parse_one`].
    pub fn parse(input: &str) -> Result<Matcher, MatcherError> {
        parse_one(input)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the label set satisfies this matcher; a missing label has the
    /// value `""`.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether a label value (`""` for a missing label) satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex_matches(value),
            MatchOp::NotRegex => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        self.re.as_ref().is_some_and(|re| re.is_match(value))
    }

    /// A matcher from Alertmanager API v2's `{name, value, isRegex, isEqual}`.
    /// Validates as Alertmanager validates a silence's matchers: the name must
    /// not be empty and a regex must compile.
    pub fn from_api(
        name: &str,
        value: &str,
        is_regex: bool,
        is_equal: bool,
    ) -> Result<Matcher, MatcherError> {
        Matcher::new(MatchOp::from_flags(is_regex, is_equal), name, value)
    }

    /// The API v2 object for this matcher.
    pub fn to_api(&self) -> ApiMatcher {
        ApiMatcher {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: self.op.is_regex(),
            is_equal: self.op.is_equal(),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Hash for Matcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.op.hash(state);
        self.value.hash(state);
    }
}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Matcher {
    /// Alertmanager's `Matchers.Less`: name, then value, then operator.
    fn cmp(&self, other: &Self) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.value.cmp(&other.value))
            .then_with(|| self.op.cmp(&other.op))
    }
}

impl fmt::Display for Matcher {
    /// Alertmanager's `Matcher.String()`: `name="value"` with the value
    /// OpenMetrics-escaped (`\\`, `\n`, `\"`); when the name holds a character
    /// that is reserved in the UTF-8 syntax, name and value are both written as
    /// Go string literals (`"a b"="c"`). The output parses back to the same
    /// matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.chars().any(is_reserved) {
            write!(
                f,
                "{}{}{}",
                go_quote(&self.name),
                self.op,
                go_quote(&self.value)
            )
        } else {
            write!(
                f,
                "{}{}\"{}\"",
                self.name,
                self.op,
                open_metrics_escape(&self.value)
            )
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_one(s)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    /// One matcher from a string, as [`parse_one`] reads it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        match parse_matcher(&s, ParseMode::Fallback) {
            Ok(parsed) => {
                log_warning(&s, parsed.warning.as_ref());
                Ok(parsed.value)
            }
            Err(e) => Err(de::Error::custom(format!("invalid matcher {s:?}: {e}"))),
        }
    }
}

/// A matcher in Alertmanager API v2's JSON shape. `isEqual` defaults to `true`
/// when absent, as in Alertmanager's OpenAPI spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "default_true")]
    pub is_equal: bool,
}

fn default_true() -> bool {
    true
}

impl TryFrom<ApiMatcher> for Matcher {
    type Error = MatcherError;

    fn try_from(m: ApiMatcher) -> Result<Self, Self::Error> {
        Matcher::new(MatchOp::from_flags(m.is_regex, m.is_equal), m.name, m.value)
    }
}

impl TryFrom<&ApiMatcher> for Matcher {
    type Error = MatcherError;

    fn try_from(m: &ApiMatcher) -> Result<Self, Self::Error> {
        Matcher::from_api(&m.name, &m.value, m.is_regex, m.is_equal)
    }
}

impl From<&Matcher> for ApiMatcher {
    fn from(m: &Matcher) -> Self {
        m.to_api()
    }
}

// ---------------------------------------------------------------------------
// Matchers
// ---------------------------------------------------------------------------

/// A list of matchers that all must match.
///
/// As YAML/JSON it is a list of strings, each holding one or more matchers
/// (`['severity="critical"', '{env=~"prod|staging", team!="x"}']`); reading
/// it concatenates them and sorts the result, as Alertmanager's config loader
/// does. It is written back as one canonical string per matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn new() -> Matchers {
        Matchers(Vec::new())
    }

    /// Parses `{a="b", c=~"d|e", f!="g"}`, with or without braces, in
    /// Alertmanager's default (fallback) mode. The order of the input is kept.
    pub fn parse(input: &str) -> Result<Matchers, MatcherError> {
        parse_matchers(input, ParseMode::Fallback).map(|p| p.value)
    }

    /// Parses in the given mode.
    pub fn parse_with(input: &str, mode: ParseMode) -> Result<Matchers, MatcherError> {
        parse_matchers(input, mode).map(|p| p.value)
    }

    /// True when every matcher matches (so the empty list matches everything).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    /// Sorts as Alertmanager sorts (name, value, operator).
    pub fn sort(&mut self) {
        self.0.sort();
    }

    /// Route-style legacy `match:` (name → exact value) and `match_re:`
    /// (name → regex) maps, plus new-style `matchers`, combined and sorted the
    /// way Alertmanager builds a route's matchers.
    pub fn from_legacy(
        match_: &BTreeMap<String, String>,
        match_re: &BTreeMap<String, String>,
        matchers: &Matchers,
    ) -> Result<Matchers, MatcherError> {
        let mut out = from_match(match_)?;
        out.0.extend(from_match_re(match_re)?.0);
        out.0.extend(matchers.0.iter().cloned());
        out.sort();
        Ok(out)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Legacy `match:` / `source_match:` / `target_match:`: one `=` matcher per
/// entry. The label names must not be empty.
pub fn from_match(map: &BTreeMap<String, String>) -> Result<Matchers, MatcherError> {
    map.iter()
        .map(|(name, value)| {
            Matcher::new(MatchOp::Equal, name, value)
                .map_err(|e| e.prefixed(&format!("match {name:?}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Matchers)
}

/// Legacy `match_re:` / `source_match_re:` / `target_match_re:`: one `=~`
/// matcher per entry, anchored like every matcher regex.
pub fn from_match_re(map: &BTreeMap<String, String>) -> Result<Matchers, MatcherError> {
    map.iter()
        .map(|(name, value)| {
            Matcher::new(MatchOp::Regex, name, value)
                .map_err(|e| e.prefixed(&format!("match_re {name:?}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Matchers)
}

impl fmt::Display for Matchers {
    /// Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl FromStr for Matchers {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Matchers::parse(s)
    }
}

impl From<Vec<Matcher>> for Matchers {
    fn from(v: Vec<Matcher>) -> Self {
        Matchers(v)
    }
}

impl FromIterator<Matcher> for Matchers {
    fn from_iter<I: IntoIterator<Item = Matcher>>(iter: I) -> Self {
        Matchers(iter.into_iter().collect())
    }
}

impl IntoIterator for Matchers {
    type Item = Matcher;
    type IntoIter = std::vec::IntoIter<Matcher>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Matchers {
    type Item = &'a Matcher;
    type IntoIter = std::slice::Iter<'a, Matcher>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for m in &self.0 {
            seq.serialize_element(&m.to_string())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LinesVisitor;

        impl<'de> Visitor<'de> for LinesVisitor {
            type Value = Matchers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of matcher strings such as ['severity=\"critical\"']")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Matchers, E> {
                Ok(Matchers::new())
            }

            fn visit_none<E: de::Error>(self) -> Result<Matchers, E> {
                Ok(Matchers::new())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Matchers, A::Error> {
                let mut out = Vec::new();
                while let Some(line) = seq.next_element::<String>()? {
                    match parse_matchers(&line, ParseMode::Fallback) {
                        Ok(parsed) => {
                            log_warning(&line, parsed.warning.as_ref());
                            out.extend(parsed.value.0);
                        }
                        Err(e) => {
                            return Err(de::Error::custom(format!(
                                "invalid matcher {line:?}: {e}"
                            )));
                        }
                    }
                }
                let mut out = Matchers(out);
                out.sort();
                Ok(out)
            }
        }

        deserializer.deserialize_any(LinesVisitor)
    }
}

fn log_warning(input: &str, warning: Option<&CompatWarning>) {
    if let Some(w) = warning {
        tracing::warn!(input, origin = "config", "{w}");
    }
}

// ---------------------------------------------------------------------------
// Parsing entry points
// ---------------------------------------------------------------------------

/// Which of Alertmanager's matcher syntaxes to accept (its
/// `--enable-feature` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Alertmanager's default: UTF-8 syntax, falling back to the classic one.
    #[default]
    Fallback,
    /// `utf8-strict-mode`: the UTF-8 syntax only.
    Utf8Strict,
    /// `classic-mode`: the syntax of Alertmanager 0.26 and older.
    Classic,
}

/// A parse result together with the warning Alertmanager would log in
/// fallback mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub value: T,
    pub warning: Option<CompatWarning>,
}

/// Why fallback mode used the classic parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatWarning {
    /// Only the classic syntax accepts the input; Alertmanager in UTF-8 strict
    /// mode refuses it. `suggestion` is the same matchers in the UTF-8 syntax.
    ClassicOnly {
        utf8_error: MatcherError,
        suggestion: String,
    },
    /// Both syntaxes accept the input with different meanings; the classic
    /// reading is used (as Alertmanager does).
    Disagreement { utf8: String, classic: String },
}

impl fmt::Display for CompatWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatWarning::ClassicOnly {
                utf8_error,
                suggestion,
            } => write!(
                f,
                "matcher is valid only in Alertmanager's classic syntax ({utf8_error}); \
                 it was read with the classic parser; write it as {suggestion} \
                 (double-quote values and regular expressions, escape backslashes)"
            ),
            CompatWarning::Disagreement { utf8, classic } => write!(
                f,
                "matcher means {classic} in the classic syntax but {utf8} in the UTF-8 syntax; \
                 the classic reading is used"
            ),
        }
    }
}

/// Parses a list of matchers (`{a="b", c=~"d"}`, braces optional) in Alertmanager's
/// default mode. Same as [`Matchers::parse`].
pub fn parse(input: &str) -> Result<Matchers, MatcherError> {
    Matchers::parse(input)
}

/// Parses exactly one matcher in Alertmanager's default mode, as it parses an
/// API `filter` entry or an amtool argument: braces are refused, and `a=b,c=d`
/// is an error (or, through the classic fallback, one matcher with the value
/// `b,c=d`, as in Alertmanager).
pub fn parse_one(input: &str) -> Result<Matcher, MatcherError> {
    parse_matcher(input, ParseMode::Fallback).map(|p| p.value)
}

/// Parses a list of matchers in the given mode, with the fallback warning.
pub fn parse_matchers(input: &str, mode: ParseMode) -> Result<Parsed<Matchers>, MatcherError> {
    let plain = |value| Parsed {
        value,
        warning: None,
    };
    match mode {
        ParseMode::Utf8Strict => utf8::parse_matchers(input).map(plain),
        ParseMode::Classic => classic::parse_matchers(input).map(plain),
        ParseMode::Fallback => {
            let utf8 = utf8::parse_matchers(input);
            let classic = classic::parse_matchers(input);
            match (utf8, classic) {
                (Err(e), Err(_)) => Err(e),
                (Err(e), Ok(c)) => {
                    let suggestion = c
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(",");
                    Ok(Parsed {
                        value: c,
                        warning: Some(CompatWarning::ClassicOnly {
                            utf8_error: e,
                            suggestion,
                        }),
                    })
                }
                (Ok(u), Ok(c)) if u != c => Ok(Parsed {
                    warning: Some(CompatWarning::Disagreement {
                        utf8: u.to_string(),
                        classic: c.to_string(),
                    }),
                    value: c,
                }),
                (Ok(u), _) => Ok(plain(u)),
            }
        }
    }
}

/// Parses exactly one matcher in the given mode, with the fallback warning.
pub fn parse_matcher(input: &str, mode: ParseMode) -> Result<Parsed<Matcher>, MatcherError> {
    let plain = |value| Parsed {
        value,
        warning: None,
    };
    let no_braces = || {
        if input.starts_with('{') || input.ends_with('}') {
            Err(MatcherError::new(format!(
                "unexpected open or close brace: {input} (a single matcher is written without braces)"
            )))
        } else {
            Ok(())
        }
    };
    match mode {
        ParseMode::Classic => classic::parse_matcher(input).map(plain),
        ParseMode::Utf8Strict => {
            no_braces()?;
            utf8::parse_matcher(input).map(plain)
        }
        ParseMode::Fallback => {
            no_braces()?;
            let utf8 = utf8::parse_matcher(input);
            let classic = classic::parse_matcher(input);
            match (utf8, classic) {
                (Err(e), Err(_)) => Err(e),
                (Err(e), Ok(c)) => Ok(Parsed {
                    warning: Some(CompatWarning::ClassicOnly {
                        utf8_error: e,
                        suggestion: c.to_string(),
                    }),
                    value: c,
                }),
                (Ok(u), Ok(c)) if u != c => Ok(Parsed {
                    warning: Some(CompatWarning::Disagreement {
                        utf8: u.to_string(),
                        classic: c.to_string(),
                    }),
                    value: c,
                }),
                (Ok(u), _) => Ok(plain(u)),
            }
        }
    }
}

/// A classic Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`. (The classic
/// matcher syntax also allows `:` in names; Prometheus' label names do not.)
pub fn is_valid_classic_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A matcher that could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherError {
    /// Columns (characters from 0, end exclusive) of the offending text, when
    /// known. Displayed first, as `start:end:`, as Alertmanager does.
    pub span: Option<(usize, usize)>,
    pub message: String,
}

impl MatcherError {
    fn new(message: impl Into<String>) -> MatcherError {
        MatcherError {
            span: None,
            message: message.into(),
        }
    }

    fn at(start: usize, end: usize, message: impl Into<String>) -> MatcherError {
        MatcherError {
            span: Some((start, end)),
            message: message.into(),
        }
    }

    /// The column where the problem starts, when known.
    pub fn column(&self) -> Option<usize> {
        self.span.map(|(start, _)| start)
    }

    fn suffixed(mut self, what: &str) -> MatcherError {
        self.message = format!("{}: {what}", self.message);
        self
    }

    fn prefixed(mut self, what: &str) -> MatcherError {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some((start, end)) => write!(f, "{start}:{end}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for MatcherError {}

// ---------------------------------------------------------------------------
// Helpers shared by both parsers and by Display
// ---------------------------------------------------------------------------

fn compile_anchored(pattern: &str) -> Result<Regex, MatcherError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        MatcherError::new(format!(
            "invalid regular expression {pattern:?}: {}",
            regex_error_summary(&e)
        ))
    })
}

/// The one-line reason from the regex crate's multi-line error.
fn regex_error_summary(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .map(str::to_owned)
            .unwrap_or_else(|| s.split_whitespace().collect::<Vec<_>>().join(" ")),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regular expression exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Characters that cannot appear in an unquoted UTF-8 literal.
fn is_reserved(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '!' | '=' | '~' | ',' | '\\' | '"' | '\'' | '`'
        )
}

/// OpenMetrics escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
fn open_metrics_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Go's `strconv.Quote`. Printability follows Go's `strconv.IsPrint`
/// approximately (control, non-space whitespace, format and private-use
/// characters are escaped). Also prints label sets the way Prometheus does.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_char = matches!(
        u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
            | 0xFFF9..=0xFFFB | 0x110BD | 0xE0001 | 0xE0020..=0xE007F
    );
    let private_use = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    let non_character = (u & 0xFFFE) == 0xFFFE || (0xFDD0..=0xFDEF).contains(&u);
    !(format_char || private_use || non_character)
}

// ---------------------------------------------------------------------------
// The UTF-8 parser (Alertmanager's matcher/parse: lexer.go, parse.go)
// ---------------------------------------------------------------------------

mod utf8 {
    use super::{MatchOp, Matcher, MatcherError, Matchers, is_reserved};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Eof,
        OpenBrace,
        CloseBrace,
        Comma,
        Equals,
        NotEquals,
        Matches,
        NotMatches,
        Quoted,
        Unquoted,
    }

    #[derive(Debug, Clone, Copy)]
    struct Token<'a> {
        kind: Kind,
        value: &'a str,
        col_start: usize,
        col_end: usize,
    }

    impl Token<'_> {
        fn eof() -> Self {
            Token {
                kind: Kind::Eof,
                value: "",
                col_start: 0,
                col_end: 0,
            }
        }

        /// The text the token stands for: quoted strings are unescaped with
        /// Go's rules (`strconv.Unquote`) and must be valid UTF-8.
        fn unquote(&self) -> Result<String, MatcherError> {
            let invalid = || {
                MatcherError::at(
                    self.col_start,
                    self.col_end,
                    format!("{}: invalid input", self.value),
                )
            };
            match self.kind {
                Kind::Quoted => go_unquote(self.value).ok_or_else(invalid),
                _ => Ok(self.value.to_owned()),
            }
        }
    }

    /// Go's `strconv.Unquote` for a double-quoted string.
    fn go_unquote(s: &str) -> Option<String> {
        let inner = s.strip_prefix('"')?.strip_suffix('"')?;
        let mut out: Vec<u8> = Vec::with_capacity(inner.len());
        let mut rest = inner;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '\n' | '"' => return None,
                '\\' => {}
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            }
            let e = rest.chars().next()?;
            rest = &rest[e.len_utf8()..];
            let simple = match e {
                'a' => Some(0x07),
                'b' => Some(0x08),
                'f' => Some(0x0c),
                'n' => Some(b'\n'),
                'r' => Some(b'\r'),
                't' => Some(b'\t'),
                'v' => Some(0x0b),
                '\\' => Some(b'\\'),
                '"' => Some(b'"'),
                _ => None,
            };
            if let Some(b) = simple {
                out.push(b);
                continue;
            }
            match e {
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let digits = rest.get(..n)?;
                    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    let v = u32::from_str_radix(digits, 16).ok()?;
                    rest = &rest[n..];
                    if e == 'x' {
                        out.push(v as u8);
                    } else {
                        let c = char::from_u32(v)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                '0'..='7' => {
                    let digits = rest.get(..2)?;
                    let mut v = e as u32 - '0' as u32;
                    for b in digits.bytes() {
                        if !(b'0'..=b'7').contains(&b) {
                            return None;
                        }
                        v = (v << 3) | u32::from(b - b'0');
                    }
                    if v > 255 {
                        return None;
                    }
                    rest = &rest[2..];
                    out.push(v as u8);
                }
                _ => return None,
            }
        }
        String::from_utf8(out).ok()
    }

    struct Lexer<'a> {
        input: &'a str,
        err: Option<MatcherError>,
        /// Byte offset where the current token starts.
        start: usize,
        /// Byte offset of the cursor.
        pos: usize,
        /// Width in bytes of the last character read.
        width: usize,
        /// Column (in characters) where the current token starts.
        column: usize,
        /// Characters read so far.
        cols: usize,
    }

    impl<'a> Lexer<'a> {
        fn new(input: &'a str) -> Self {
            Lexer {
                input,
                err: None,
                start: 0,
                pos: 0,
                width: 0,
                column: 0,
                cols: 0,
            }
        }

        fn scan(&mut self) -> Result<Token<'a>, MatcherError> {
            if let Some(e) = &self.err {
                return Err(e.clone());
            }
            while let Some(c) = self.next() {
                let result = match c {
                    '{' => return Ok(self.emit(Kind::OpenBrace)),
                    '}' => return Ok(self.emit(Kind::CloseBrace)),
                    ',' => return Ok(self.emit(Kind::Comma)),
                    '=' | '!' => {
                        self.rewind();
                        self.scan_operator()
                    }
                    '"' => {
                        self.rewind();
                        self.scan_quoted()
                    }
                    c if !is_reserved(c) => {
                        self.rewind();
                        Ok(self.scan_unquoted())
                    }
                    c if c.is_whitespace() => {
                        self.skip();
                        continue;
                    }
                    _ => Err(self.error("invalid input")),
                };
                if let Err(e) = &result {
                    self.err = Some(e.clone());
                }
                return result;
            }
            Ok(Token::eof())
        }

        fn scan_operator(&mut self) -> Result<Token<'a>, MatcherError> {
            if self.accept("!") {
                if self.accept("=") {
                    return Ok(self.emit(Kind::NotEquals));
                }
                if self.accept("~") {
                    return Ok(self.emit(Kind::NotMatches));
                }
                return Err(self.expected("=~"));
            }
            if self.accept("=") {
                if self.accept("~") {
                    return Ok(self.emit(Kind::Matches));
                }
                return Ok(self.emit(Kind::Equals));
            }
            Err(self.expected("!="))
        }

        fn scan_quoted(&mut self) -> Result<Token<'a>, MatcherError> {
            if !self.accept("\"") {
                return Err(self.expected("\""));
            }
            let mut escaped = false;
            while let Some(c) = self.next() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    self.rewind();
                    break;
                }
            }
            if !self.accept("\"") {
                return Err(self.error("missing end \""));
            }
            Ok(self.emit(Kind::Quoted))
        }

        fn scan_unquoted(&mut self) -> Token<'a> {
            while let Some(c) = self.next() {
                if is_reserved(c) {
                    self.rewind();
                    break;
                }
            }
            self.emit(Kind::Unquoted)
        }

        /// The next token without consuming it. A lexing error stays sticky.
        fn peek(&mut self) -> Result<Token<'a>, MatcherError> {
            let saved = (self.start, self.pos, self.width, self.column, self.cols);
            let t = self.scan();
            (self.start, self.pos, self.width, self.column, self.cols) = saved;
            t
        }

        fn accept(&mut self, valid: &str) -> bool {
            match self.next() {
                Some(c) if valid.contains(c) => true,
                _ => {
                    self.rewind();
                    false
                }
            }
        }

        fn emit(&mut self, kind: Kind) -> Token<'a> {
            let t = Token {
                kind,
                value: &self.input[self.start..self.pos],
                col_start: self.column,
                col_end: self.cols,
            };
            self.start = self.pos;
            self.column = self.cols;
            t
        }

        fn next(&mut self) -> Option<char> {
            match self.input[self.pos..].chars().next() {
                None => {
                    self.width = 0;
                    None
                }
                Some(c) => {
                    self.width = c.len_utf8();
                    self.pos += self.width;
                    self.cols += 1;
                    Some(c)
                }
            }
        }

        fn rewind(&mut self) {
            self.pos -= self.width;
            if self.width > 0 {
                self.cols -= 1;
            }
        }

        fn skip(&mut self) {
            self.start = self.pos;
            self.column = self.cols;
        }

        /// `<text>: <what>` over the text scanned for the current token.
        fn error(&self, what: &str) -> MatcherError {
            MatcherError::at(
                self.column,
                self.cols,
                format!("{}: {what}", &self.input[self.start..self.pos]),
            )
        }

        fn expected(&self, expected: &str) -> MatcherError {
            if self.pos >= self.input.len() {
                MatcherError::at(
                    self.column,
                    self.cols,
                    format!("unexpected end of input, expected one of '{expected}'"),
                )
            } else {
                self.error(&format!("expected one of '{expected}'"))
            }
        }
    }

    /// A parser failure before wrapping: end of input, or an error.
    enum Fail {
        Eof,
        Err(MatcherError),
    }

    #[derive(Clone, Copy)]
    enum State {
        OpenBrace,
        CloseBrace,
        Matcher,
        EndOfMatcher,
        Comma,
        Eof,
    }

    struct Parser<'a> {
        lexer: Lexer<'a>,
        matchers: Vec<Matcher>,
        has_open_brace: bool,
        /// Characters in the input: the column of "end of input".
        len_cols: usize,
    }

    pub(super) fn parse_matchers(input: &str) -> Result<Matchers, MatcherError> {
        let mut p = Parser {
            lexer: Lexer::new(input),
            matchers: Vec::new(),
            has_open_brace: false,
            len_cols: input.chars().count(),
        };
        let mut state = Some(State::OpenBrace);
        while let Some(s) = state {
            state = match s {
                State::OpenBrace => p.open_brace()?,
                State::CloseBrace => p.close_brace()?,
                State::Matcher => p.matcher()?,
                State::EndOfMatcher => p.end_of_matcher()?,
                State::Comma => p.comma()?,
                State::Eof => p.eof()?,
            };
        }
        Ok(Matchers(p.matchers))
    }

    pub(super) fn parse_matcher(input: &str) -> Result<Matcher, MatcherError> {
        let mut ms = parse_matchers(input)?.0;
        match ms.len() {
            1 => Ok(ms.remove(0)),
            0 => Err(MatcherError::new("no matchers")),
            n => Err(MatcherError::new(format!("expected 1 matcher, found {n}"))),
        }
    }

    impl<'a> Parser<'a> {
        fn wrap(&self, fail: Fail, what: &str) -> MatcherError {
            match fail {
                Fail::Eof => MatcherError::at(
                    self.len_cols,
                    self.len_cols,
                    format!("end of input: {what}"),
                ),
                Fail::Err(e) => e.suffixed(what),
            }
        }

        fn open_brace(&mut self) -> Result<Option<State>, MatcherError> {
            match self.accept(&[Kind::OpenBrace]) {
                Ok(b) => self.has_open_brace = b,
                Err(Fail::Eof) => return Ok(Some(State::Eof)),
                Err(Fail::Err(e)) => return Err(e),
            }
            match self.accept_peek(&[Kind::CloseBrace]) {
                Ok(true) => Ok(Some(State::CloseBrace)),
                Ok(false) => Ok(Some(State::Matcher)),
                Err(Fail::Eof) => Ok(Some(State::CloseBrace)),
                Err(Fail::Err(e)) => Err(e),
            }
        }

        fn close_brace(&mut self) -> Result<Option<State>, MatcherError> {
            let found = self.expect(&[Kind::CloseBrace]);
            let end = self.lexer.cols;
            if self.has_open_brace {
                if let Err(fail) = found {
                    let what = match fail {
                        Fail::Eof => "end of input".to_owned(),
                        Fail::Err(e) => e.to_string(),
                    };
                    return Err(MatcherError::at(
                        0,
                        end,
                        format!("{what}: expected close brace"),
                    ));
                }
            } else if found.is_ok() {
                return Err(MatcherError::at(0, end, "}: expected opening brace"));
            }
            Ok(Some(State::Eof))
        }

        fn matcher(&mut self) -> Result<Option<State>, MatcherError> {
            let t = self
                .expect(&[Kind::Quoted, Kind::Unquoted])
                .map_err(|f| self.wrap(f, "expected label name"))?;
            let name = t.unquote()?;
            if name.is_empty() {
                return Err(MatcherError::at(
                    t.col_start,
                    t.col_end,
                    format!("{}: label name must not be empty", t.value),
                ));
            }
            let t = self
                .expect(&[
                    Kind::Equals,
                    Kind::NotEquals,
                    Kind::Matches,
                    Kind::NotMatches,
                ])
                .map_err(|f| {
                    self.wrap(f, "expected an operator such as '=', '!=', '=~' or '!~'")
                })?;
            let op = match t.kind {
                Kind::Equals => MatchOp::Equal,
                Kind::NotEquals => MatchOp::NotEqual,
                Kind::Matches => MatchOp::Regex,
                _ => MatchOp::NotRegex,
            };
            let t = self
                .expect(&[Kind::Unquoted, Kind::Quoted])
                .map_err(|f| self.wrap(f, "expected label value"))?;
            let value = t.unquote()?;
            let m = Matcher::new(op, name, value).map_err(|e| {
                MatcherError::at(
                    t.col_start,
                    t.col_end,
                    format!("failed to create matcher: {}", e.message),
                )
            })?;
            self.matchers.push(m);
            Ok(Some(State::EndOfMatcher))
        }

        fn end_of_matcher(&mut self) -> Result<Option<State>, MatcherError> {
            match self.expect_peek(&[Kind::Comma, Kind::CloseBrace]) {
                Err(Fail::Eof) => Ok(Some(State::CloseBrace)),
                Err(f) => Err(self.wrap(f, "expected a comma or close brace")),
                Ok(t) if t.kind == Kind::Comma => Ok(Some(State::Comma)),
                Ok(_) => Ok(Some(State::CloseBrace)),
            }
        }

        fn comma(&mut self) -> Result<Option<State>, MatcherError> {
            self.expect(&[Kind::Comma])
                .map_err(|f| self.wrap(f, "expected a comma"))?;
            match self.expect_peek(&[Kind::CloseBrace, Kind::Unquoted, Kind::Quoted]) {
                Err(Fail::Eof) => Ok(Some(State::CloseBrace)),
                Err(f) => Err(self.wrap(f, "expected a matcher or close brace after comma")),
                Ok(t) if t.kind == Kind::CloseBrace => Ok(Some(State::CloseBrace)),
                Ok(_) => Ok(Some(State::Matcher)),
            }
        }

        fn eof(&mut self) -> Result<Option<State>, MatcherError> {
            let t = self
                .lexer
                .scan()
                .map_err(|e| e.suffixed("expected end of input"))?;
            if t.kind != Kind::Eof {
                return Err(MatcherError::at(
                    t.col_start,
                    t.col_end,
                    format!("{}: expected end of input", t.value),
                ));
            }
            Ok(None)
        }

        /// Whether the next token is one of `kinds`; consumes it if so.
        fn accept(&mut self, kinds: &[Kind]) -> Result<bool, Fail> {
            let ok = self.accept_peek(kinds)?;
            if ok {
                self.lexer.scan().map_err(Fail::Err)?;
            }
            Ok(ok)
        }

        fn accept_peek(&mut self, kinds: &[Kind]) -> Result<bool, Fail> {
            let t = self.lexer.peek().map_err(Fail::Err)?;
            if t.kind == Kind::Eof {
                return Err(Fail::Eof);
            }
            Ok(kinds.contains(&t.kind))
        }

        /// The next token, which must be one of `kinds`; consumes it.
        fn expect(&mut self, kinds: &[Kind]) -> Result<Token<'a>, Fail> {
            let t = self.expect_peek(kinds)?;
            self.lexer.scan().map_err(Fail::Err)?;
            Ok(t)
        }

        fn expect_peek(&mut self, kinds: &[Kind]) -> Result<Token<'a>, Fail> {
            let t = self.lexer.peek().map_err(Fail::Err)?;
            if t.kind == Kind::Eof {
                return Err(Fail::Eof);
            }
            if !kinds.contains(&t.kind) {
                return Err(Fail::Err(MatcherError::at(
                    t.col_start,
                    t.col_end,
                    format!("unexpected {}", t.value),
                )));
            }
            Ok(t)
        }
    }
}

// ---------------------------------------------------------------------------
// The classic parser (Alertmanager's pkg/labels / matcher/oldparse)
// ---------------------------------------------------------------------------

mod classic {
    use super::{LazyLock, MatchOp, Matcher, MatcherError, Matchers, Regex};

    /// `=~` comes before `=` so that `=~` is not read as `=` and a value
    /// starting with `~`. `\s` is Go's ASCII `\s`.
    static MATCHER_RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*((?s).*?)[\t\n\f\r ]*$",
        )
        .expect("classic matcher regex compiles")
    });

    pub(super) fn parse_matchers(input: &str) -> Result<Matchers, MatcherError> {
        let s = input.strip_prefix('{').unwrap_or(input);
        let s = s.strip_suffix('}').unwrap_or(s);

        let mut inside_quotes = false;
        let mut escaped = false;
        let mut token = String::new();
        let mut tokens = Vec::new();
        for c in s.chars() {
            match c {
                ',' => {
                    if !inside_quotes {
                        tokens.push(std::mem::take(&mut token));
                        continue;
                    }
                }
                '"' => {
                    if !escaped {
                        inside_quotes = !inside_quotes;
                    } else {
                        escaped = false;
                    }
                }
                '\\' => escaped = !escaped,
                _ => escaped = false,
            }
            token.push(c);
        }
        let last = token.trim();
        if !last.is_empty() {
            tokens.push(last.to_owned());
        }
        tokens
            .iter()
            .map(|t| parse_matcher(t))
            .collect::<Result<Vec<_>, _>>()
            .map(Matchers)
    }

    pub(super) fn parse_matcher(s: &str) -> Result<Matcher, MatcherError> {
        let caps = MATCHER_RE.captures(s).ok_or_else(|| {
            MatcherError::new(format!(
                "bad matcher format: {s} (expected <label name><operator><value>, \
                 with a label name matching [a-zA-Z_:][a-zA-Z0-9_:]* and \
                 an operator of =, !=, =~ or !~)"
            ))
        })?;
        let name = &caps[1];
        let op = match &caps[2] {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Regex,
            _ => MatchOp::NotRegex,
        };
        let raw_all = &caps[3];
        let (raw, mut expect_trailing_quote) = match raw_all.strip_prefix('"') {
            Some(rest) => (rest, true),
            None => (raw_all, false),
        };
        let unescaped_quote = || {
            MatcherError::new(format!(
                "matcher value contains unescaped double quote: {raw_all}"
            ))
        };

        let mut value = String::with_capacity(raw.len());
        let mut escaped = false;
        for (i, c) in raw.char_indices() {
            if escaped {
                escaped = false;
                match c {
                    'n' => value.push('\n'),
                    '"' | '\\' => value.push(c),
                    // A spurious escape: the backslash is literal.
                    c => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                continue;
            }
            match c {
                '\\' => {
                    if i < raw.len() - 1 {
                        escaped = true;
                        continue;
                    }
                    // A backslash as the last character is literal.
                    value.push('\\');
                }
                '"' => {
                    if !expect_trailing_quote || i < raw.len() - 1 {
                        return Err(unescaped_quote());
                    }
                    expect_trailing_quote = false;
                }
                c => value.push(c),
            }
        }
        if expect_trailing_quote {
            return Err(unescaped_quote());
        }
        Matcher::new(op, name, value)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected result of a table row: a value or an error's text.
    type Want<T> = Result<T, &'static str>;

    /// Label pairs of a table row.
    type Labels = &'static [(&'static str, &'static str)];

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    fn eq(name: &str, value: &str) -> Matcher {
        m(MatchOp::Equal, name, value)
    }

    fn ne(name: &str, value: &str) -> Matcher {
        m(MatchOp::NotEqual, name, value)
    }

    fn re(name: &str, value: &str) -> Matcher {
        m(MatchOp::Regex, name, value)
    }

    fn nre(name: &str, value: &str) -> Matcher {
        m(MatchOp::NotRegex, name, value)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().copied().collect()
    }

    /// Valid lists in the default (fallback) mode: Alertmanager's UTF-8 parser
    /// tests (matcher/parse/parse_test.go), classic parser tests
    /// (pkg/labels/parse_test.go) and the configuration.md examples.
    #[test]
    fn parses_valid_lists() {
        let cases: Vec<(&str, Vec<Matcher>)> = vec![
            // Empty input: no matchers.
            ("", vec![]),
            // Braces around nothing.
            ("{}", vec![]),
            // Unquoted equals.
            ("{foo=bar}", vec![eq("foo", "bar")]),
            // Trailing comma inside braces.
            ("{foo=bar,}", vec![eq("foo", "bar")]),
            // Unquoted not-equals.
            ("{foo!=bar}", vec![ne("foo", "bar")]),
            // Unquoted regex.
            ("{foo=~[a-z]+}", vec![re("foo", "[a-z]+")]),
            // Unquoted negative regex.
            ("{foo!~[a-z]+}", vec![nre("foo", "[a-z]+")]),
            // Emoji as an unquoted value.
            ("{foo=🙂}", vec![eq("foo", "🙂")]),
            // Emoji followed by text.
            ("{foo=🙂bar}", vec![eq("foo", "🙂bar")]),
            // No braces.
            ("foo=bar", vec![eq("foo", "bar")]),
            // No braces, trailing comma.
            ("foo=bar,", vec![eq("foo", "bar")]),
            // No braces, regex.
            ("foo=~[a-z]+", vec![re("foo", "[a-z]+")]),
            // Quoted name and value.
            (r#"{"foo"="bar"}"#, vec![eq("foo", "bar")]),
            // Quoted, trailing comma.
            (r#"{"foo"="bar",}"#, vec![eq("foo", "bar")]),
            // Quoted not-equals.
            (r#"{"foo"!="bar"}"#, vec![ne("foo", "bar")]),
            // Quoted regex.
            (r#"{"foo"=~"[a-z]+"}"#, vec![re("foo", "[a-z]+")]),
            // Quoted negative regex.
            (r#"{"foo"!~"[a-z]+"}"#, vec![nre("foo", "[a-z]+")]),
            // Emoji in quotes.
            (r#"{"foo"="🙂"}"#, vec![eq("foo", "🙂")]),
            // Emoji as \U code point.
            (r#"{"foo"="\U0001f642"}"#, vec![eq("foo", "🙂")]),
            // Escaped newline in quotes.
            (r#"{"foo"="bar\n"}"#, vec![eq("foo", "bar\n")]),
            // Escaped tab in quotes.
            (r#"{"foo"="bar\t"}"#, vec![eq("foo", "bar\t")]),
            // Escaped quotes in quotes.
            (r#"{"foo"="\"bar\""}"#, vec![eq("foo", "\"bar\"")]),
            // Escaped backslash in quotes.
            (r#"{"foo"="bar\\"}"#, vec![eq("foo", "bar\\")]),
            // Two matchers.
            (
                "{foo=bar,bar!=baz}",
                vec![eq("foo", "bar"), ne("bar", "baz")],
            ),
            // Two matchers, no braces, quoted values.
            (
                r#"foo="bar",bar!="baz""#,
                vec![eq("foo", "bar"), ne("bar", "baz")],
            ),
            // pkg/labels: quoted regex.
            (r#"{foo=~"bar.*"}"#, vec![re("foo", "bar.*")]),
            // pkg/labels: three matchers mixing operators.
            (
                r#"{foo="bar",baz!~".*quux", derp="wat"}"#,
                vec![eq("foo", "bar"), nre("baz", ".*quux"), eq("derp", "wat")],
            ),
            // pkg/labels: empty quoted value.
            (r#"{foo=""}"#, vec![eq("foo", "")]),
            // pkg/labels: comma inside quotes is not a separator.
            (
                r#"{foo="bar,quux", job="job1"}"#,
                vec![eq("foo", "bar,quux"), eq("job", "job1")],
            ),
            // pkg/labels: spaces around operators and a trailing ", ".
            (
                r#"{foo = "bar", dings != "bums", }"#,
                vec![eq("foo", "bar"), ne("dings", "bums")],
            ),
            // pkg/labels: unquoted, no braces.
            (
                "foo=bar,dings!=bums",
                vec![eq("foo", "bar"), ne("dings", "bums")],
            ),
            // pkg/labels: escaped quotes and a non-ASCII ellipsis.
            (
                r#"{quote="She said: \"Hi, ladies! That's gender-neutral…\""}"#,
                vec![eq(
                    "quote",
                    "She said: \"Hi, ladies! That's gender-neutral…\"",
                )],
            ),
            // pkg/labels: regex with dots.
            (r#"statuscode=~"5..""#, vec![re("statuscode", "5..")]),
            // pkg/labels: classic only, the value is `~~` (fallback).
            ("tricky=~~~", vec![re("tricky", "~~")]),
            // pkg/labels: classic only, spurious escapes kept literally.
            (r#"trickier==\\=\=\""#, vec![eq("trickier", r#"=\=\=""#)]),
            // pkg/labels: spaces everywhere, quote and comma in values.
            (
                r#"contains_quote != "\"" , contains_comma !~ "foo,bar" , "#,
                vec![ne("contains_quote", "\""), nre("contains_comma", "foo,bar")],
            ),
            // configuration.md: the composed example.
            (
                r#"{alertname="Watchdog", severity=~"warning|critical"}"#,
                vec![
                    eq("alertname", "Watchdog"),
                    re("severity", "warning|critical"),
                ],
            ),
            // configuration.md: a single trailing comma is permitted.
            (
                r#"{alertname="Watchdog", severity=~"warning|critical",}"#,
                vec![
                    eq("alertname", "Watchdog"),
                    re("severity", "warning|critical"),
                ],
            ),
            // configuration.md: braces are optional.
            (
                r#"alertname="Watchdog", severity=~"warning|critical""#,
                vec![
                    eq("alertname", "Watchdog"),
                    re("severity", "warning|critical"),
                ],
            ),
            // configuration.md: whitespace, tabs and newlines outside quotes.
            (
                "{\n   alertname = \"Watchdog\",\n\tseverity =~ \"warning|critical\",\n}",
                vec![
                    eq("alertname", "Watchdog"),
                    re("severity", "warning|critical"),
                ],
            ),
            // configuration.md: unquoted UTF-8 literal (Greek).
            ("name=Προμηθεύς", vec![eq("name", "Προμηθεύς")]),
            // configuration.md: `\d` must be written `\\d` in quotes.
            (r#"code=~"\\d+""#, vec![re("code", r"\d+")]),
            // configuration.md: reserved characters are fine in quotes.
            (
                r#"a="foo!", b="bar,baz", c="\"baz qux\"""#,
                vec![eq("a", "foo!"), eq("b", "bar,baz"), eq("c", "\"baz qux\"")],
            ),
            // configuration.md: YAML block example, trailing newline included.
            (
                "{quote=~\"She said: \\\"Hi, all!( How're you…)?\\\"\"}\n",
                vec![re("quote", "She said: \"Hi, all!( How're you…)?\"")],
            ),
            // UTF-8 label name, unquoted (accepted by Alertmanager ≥ 0.27).
            ("foo🙂=bar", vec![eq("foo🙂", "bar")]),
            // Quoted label name with a dot and a space.
            (
                r#"{"service.name x"="api"}"#,
                vec![eq("service.name x", "api")],
            ),
            // Classic only: the value runs to the end (`!bar` and `$baz\n`).
            (
                r"{foo=!bar,bar=$baz\n}",
                vec![eq("foo", "!bar"), eq("bar", "$baz\n")],
            ),
            // Classic only: missing value means "" (Alertmanager's docs example).
            ("job=", vec![eq("job", "")]),
        ];
        for (input, want) in cases {
            let got = Matchers::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.0, want, "input {input:?}");
        }
    }

    /// Invalid UTF-8-syntax input (Alertmanager's matcher/parse/parse_test.go
    /// and configuration.md): the error says where and what was expected.
    #[test]
    fn rejects_invalid_utf8_syntax() {
        let cases: &[(&str, &str)] = &[
            // A lone comma.
            (",", "0:1: unexpected ,: expected label name"),
            // A comma inside braces.
            ("{,}", "1:2: unexpected ,: expected label name"),
            // Open brace, nothing else.
            ("{", "0:1: end of input: expected close brace"),
            // Close brace without open brace.
            ("}", "0:1: }: expected opening brace"),
            // configuration.md: no open brace.
            ("foo=bar}", "0:8: }: expected opening brace"),
            // configuration.md: no close brace.
            ("{foo=bar", "0:8: end of input: expected close brace"),
            // configuration.md: duplicate braces.
            (
                r#"{{alertname="Watchdog"}}"#,
                "1:2: unexpected {: expected label name",
            ),
            // Junk between operator and quoted value.
            (
                r#"{foo=:"bar"}"#,
                "6:11: unexpected \"bar\": expected a comma or close brace",
            ),
            // Invalid escape in a quoted string (`\w` is not a Go escape).
            (r#"{foo="bar\w"}"#, r#"5:12: "bar\w": invalid input"#),
            // No escapes outside quotes.
            (
                r"{foo=bar\n}",
                r"8:9: \: invalid input: expected a comma or close brace",
            ),
            // Bytes that are not UTF-8.
            (
                r#"{"foo"="\xf0\x9f"}"#,
                r#"7:17: "\xf0\x9f": invalid input"#,
            ),
            // Missing operator.
            (
                "{foo bar}",
                "5:8: unexpected bar: expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // Missing operator at the end of input.
            (
                "foo",
                "3:3: end of input: expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // `!` must be followed by `=` or `~`.
            (
                "foo!bar",
                "3:4: !: expected one of '=~': expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // Missing value (valid classic syntax: `foo=""`).
            ("job=", "4:4: end of input: expected label value"),
            // Unterminated quote.
            (
                r#"job="value"#,
                r#"4:10: "value: missing end ": expected label value"#,
            ),
            // A stray quote after an unquoted value.
            (
                r#"job=value""#,
                r#"9:10: ": missing end ": expected a comma or close brace"#,
            ),
            // An unescaped quote inside an unquoted value.
            (
                r#"contains_unescaped_quote = foo"bar"#,
                r#"30:34: "bar: missing end ": expected a comma or close brace"#,
            ),
            // Double-escaped input (pkg/labels test): one quoted name, no operator.
            (
                r#""foo=\"bar""#,
                "11:11: end of input: expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // Empty quoted label name.
            (r#"""="x""#, r#"0:2: "": label name must not be empty"#),
            // Two matchers without a comma.
            (
                "a=b c=d",
                "4:5: unexpected c: expected a comma or close brace",
            ),
            // Something after the close brace.
            ("{a=b}x", "5:6: x: expected end of input"),
        ];
        for (input, want) in cases {
            match Matchers::parse_with(input, ParseMode::Utf8Strict) {
                Ok(ms) => panic!("{input:?} parsed as {ms}, want error {want:?}"),
                Err(e) => assert_eq!(e.to_string(), *want, "input {input:?}"),
            }
        }
    }

    /// Input that neither syntax accepts is refused in the default mode too,
    /// with the UTF-8 parser's positioned error.
    #[test]
    fn rejects_invalid_in_every_mode() {
        let cases: &[(&str, &str)] = &[
            // A lone comma.
            (",", "0:1: unexpected ,: expected label name"),
            // Duplicate braces.
            (
                r#"{{alertname="Watchdog"}}"#,
                "1:2: unexpected {: expected label name",
            ),
            // Missing operator.
            (
                "{foo bar}",
                "5:8: unexpected bar: expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // Only a name.
            (
                "foo",
                "3:3: end of input: expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // `!` alone is no operator (compat/parse_test.go).
            (
                "foo!bar",
                "3:4: !: expected one of '=~': expected an operator such as '=', '!=', '=~' or '!~'",
            ),
            // Unterminated quote (pkg/labels test).
            (
                r#"job="value"#,
                r#"4:10: "value: missing end ": expected label value"#,
            ),
            // Stray quote (pkg/labels test).
            (
                r#"job=value""#,
                r#"9:10: ": missing end ": expected a comma or close brace"#,
            ),
            // Unescaped quote (pkg/labels test).
            (
                r#"contains_unescaped_quote = foo"bar"#,
                r#"30:34: "bar: missing end ": expected a comma or close brace"#,
            ),
            // Invalid UTF-8 bytes with a quoted name.
            (
                r#"{"foo"="\xf0\x9f"}"#,
                r#"7:17: "\xf0\x9f": invalid input"#,
            ),
            // Empty label name.
            (r#"""="x""#, r#"0:2: "": label name must not be empty"#),
            // Junk after the operator.
            (
                r#"{foo=:"bar"}"#,
                "6:11: unexpected \"bar\": expected a comma or close brace",
            ),
        ];
        for (input, want) in cases {
            match Matchers::parse(input) {
                Ok(ms) => panic!("{input:?} parsed as {ms}, want error {want:?}"),
                Err(e) => assert_eq!(e.to_string(), *want, "input {input:?}"),
            }
        }
    }

    /// Errors carry their position apart from the text.
    #[test]
    fn error_has_position() {
        let e = Matchers::parse("{foo bar}").unwrap_err();
        assert_eq!(e.span, Some((5, 8)));
        assert_eq!(e.column(), Some(5));
        assert_eq!(
            e.message,
            "unexpected bar: expected an operator such as '=', '!=', '=~' or '!~'"
        );
        // In UTF-8 strict mode a second value is an error (classic would read
        // `bar baz` as the value).
        let e = Matchers::parse_with("{foo=bar baz}", ParseMode::Utf8Strict).unwrap_err();
        assert_eq!(e.span, Some((9, 12)));
        assert!(e.message.contains("expected a comma or close brace"), "{e}");
    }

    /// A regex that does not compile is refused, with the value's position.
    #[test]
    fn rejects_bad_regex() {
        let e = Matchers::parse(r#"{foo=~"invalid[regexp"}"#).unwrap_err();
        assert_eq!(e.span, Some((6, 22)), "{e}");
        assert!(
            e.message.starts_with(
                r#"failed to create matcher: invalid regular expression "invalid[regexp": "#
            ),
            "{e}"
        );
        assert!(e.message.contains("unclosed character class"), "{e}");
        // The same through the API and the legacy map.
        let e = Matcher::from_api("foo", "(", true, true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid regular expression \"(\""),
            "{e}"
        );
        let e = from_match_re(&labels(&[("foo", "a)")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("match_re \"foo\": invalid regular expression"),
            "{e}"
        );
    }

    /// The three modes on inputs where Alertmanager's parsers differ.
    #[test]
    fn modes() {
        use ParseMode::*;
        let cases: &[(&str, ParseMode, Want<Vec<Matcher>>)] = &[
            // pkg/labels: a label name with `-` is invalid in the classic syntax…
            (
                r#"{invalid-name = "valid label"}"#,
                Classic,
                Err("bad matcher format: invalid-name = \"valid label\""),
            ),
            // …but an unquoted UTF-8 literal, so Alertmanager ≥ 0.27 accepts it.
            (
                r#"{invalid-name = "valid label"}"#,
                Fallback,
                Ok(vec![eq("invalid-name", "valid label")]),
            ),
            // A label name starting with a digit: classic refuses it.
            ("0foo=bar", Classic, Err("bad matcher format: 0foo=bar")),
            // pkg/labels: missing value is "" in classic mode…
            ("job=", Classic, Ok(vec![eq("job", "")])),
            // …and an error in UTF-8 strict mode.
            (
                "job=",
                Utf8Strict,
                Err("4:4: end of input: expected label value"),
            ),
            // pkg/labels: unterminated quote (classic message).
            (
                r#"job="value"#,
                Classic,
                Err(r#"matcher value contains unescaped double quote: "value"#),
            ),
            // pkg/labels: trailing stray quote (classic message).
            (
                r#"job=value""#,
                Classic,
                Err(r#"matcher value contains unescaped double quote: value""#),
            ),
            // pkg/labels: quote after escapes.
            (
                r#"trickier==\\=\=\"""#,
                Classic,
                Err(r#"matcher value contains unescaped double quote: =\\=\=\"""#),
            ),
            // pkg/labels: unescaped quote in an unquoted value.
            (
                r#"contains_unescaped_quote = foo"bar"#,
                Classic,
                Err(r#"matcher value contains unescaped double quote: foo"bar"#),
            ),
            // pkg/labels: double-escaped strings are a bad format.
            (
                r#""{foo=\"bar"}"#,
                Classic,
                Err(r#"bad matcher format: "{foo=\"bar""#),
            ),
            (
                r#""foo=\"bar\"""#,
                Classic,
                Err(r#"bad matcher format: "foo=\"bar\"""#),
            ),
            (
                r#""foo="bar"""#,
                Classic,
                Err(r#"bad matcher format: "foo="bar"""#),
            ),
            // Classic: only `\"`, `\\` and `\n` are escapes; `\t` stays literal.
            (r#"foo="a\tb""#, Classic, Ok(vec![eq("foo", r"a\tb")])),
            // UTF-8: `\t` is a tab.
            (r#"foo="a\tb""#, Utf8Strict, Ok(vec![eq("foo", "a\tb")])),
            // Classic: a `:` in a name is allowed.
            ("a:b=c", Classic, Ok(vec![eq("a:b", "c")])),
            // UTF-8 strict: unquoted values cannot hold reserved characters.
            (
                r"{foo=bar\n}",
                Utf8Strict,
                Err(r"8:9: \: invalid input: expected a comma or close brace"),
            ),
            // Disagreement: the classic reading (literal backslashes) wins.
            (
                r#"qux="\xf0\x9f\x99\x82""#,
                Fallback,
                Ok(vec![eq("qux", r"\xf0\x9f\x99\x82")]),
            ),
            // Incomplete braces are a classic-syntax input: accepted by fallback…
            ("{foo=bar", Fallback, Ok(vec![eq("foo", "bar")])),
            ("foo=bar}", Fallback, Ok(vec![eq("foo", "bar")])),
            // …refused by UTF-8 strict mode.
            (
                "{foo=bar",
                Utf8Strict,
                Err("0:8: end of input: expected close brace"),
            ),
            // A lone brace is an empty classic list.
            ("{", Fallback, Ok(vec![])),
            // `\w` is a spurious, literal escape in the classic syntax.
            (r#"{foo="bar\w"}"#, Fallback, Ok(vec![eq("foo", r"bar\w")])),
            // Classic: the value runs to the end, spaces included.
            ("a=b c=d", Fallback, Ok(vec![eq("a", "b c=d")])),
            // …while UTF-8 strict reads the bytes of 🙂.
            (
                r#"qux="\xf0\x9f\x99\x82""#,
                Utf8Strict,
                Ok(vec![eq("qux", "🙂")]),
            ),
        ];
        for (input, mode, want) in cases {
            let got = Matchers::parse_with(input, *mode);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got.0, want, "{input:?} in {mode:?}"),
                // Classic errors carry a hint after Alertmanager's text.
                (Err(e), Err(want)) => assert!(
                    e.to_string().starts_with(want),
                    "{input:?} in {mode:?}: got {e}, want {want}"
                ),
                (got, want) => panic!("{input:?} in {mode:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Fallback mode reports what Alertmanager would log.
    #[test]
    fn fallback_warnings() {
        // configuration.md: `foo=` parses as classic, suggestion `foo=""`.
        let p = parse_matchers("foo=", ParseMode::Fallback).unwrap();
        match p.warning {
            Some(CompatWarning::ClassicOnly {
                utf8_error,
                suggestion,
            }) => {
                assert_eq!(suggestion, r#"foo="""#);
                assert_eq!(utf8_error.message, "end of input: expected label value");
            }
            other => panic!("{other:?}"),
        }
        // configuration.md: disagreement on `\xf0\x9f\x99\x82`.
        let p = parse_matchers(r#"qux="\xf0\x9f\x99\x82""#, ParseMode::Fallback).unwrap();
        assert!(
            matches!(p.warning, Some(CompatWarning::Disagreement { .. })),
            "{:?}",
            p.warning
        );
        // A UTF-8-compatible input has no warning.
        let p = parse_matchers(r#"{foo="bar"}"#, ParseMode::Fallback).unwrap();
        assert_eq!(p.warning, None);
        // The empty input is no disagreement.
        let p = parse_matchers("", ParseMode::Fallback).unwrap();
        assert_eq!(p.warning, None);
    }

    /// Single matchers, as API filters and amtool arguments are parsed.
    #[test]
    fn parses_one() {
        let cases: &[(&str, Result<Matcher, &str>)] = &[
            // Plain.
            ("foo=bar", Ok(eq("foo", "bar"))),
            // Trailing comma: the classic parser reads a single matcher's value
            // to the end (`bar,`), disagreeing with the UTF-8 parser; as in
            // Alertmanager the classic reading wins.
            ("foo=bar,", Ok(eq("foo", "bar,"))),
            // Quoted regex with spaces around the operator.
            (r#"env =~ "prod|staging""#, Ok(re("env", "prod|staging"))),
            // Emoji as \x bytes, a single matcher: classic and UTF-8 disagree;
            // the classic reading wins (compat/parse_test.go).
            (
                r#"foo="\xf0\x9f\x99\x82""#,
                Ok(eq("foo", r"\xf0\x9f\x99\x82")),
            ),
            // Classic only (compat/parse_test.go).
            (r"foo=!bar\n", Ok(eq("foo", "!bar\n"))),
            // UTF-8 only (compat/parse_test.go).
            ("foo🙂=bar", Ok(eq("foo🙂", "bar"))),
            // Braces are refused for a single matcher.
            (
                "{foo=bar}",
                Err(
                    "unexpected open or close brace: {foo=bar} (a single matcher is written without braces)",
                ),
            ),
            // Nothing.
            ("", Err("no matchers")),
            // Invalid in both (compat/parse_test.go).
            (
                "foo!bar",
                Err(
                    "3:4: !: expected one of '=~': expected an operator such as '=', '!=', '=~' or '!~'",
                ),
            ),
            // Two matchers are one classic matcher with value `bar,bar=baz`.
            ("foo=bar,bar=baz", Ok(eq("foo", "bar,bar=baz"))),
        ];
        for (input, want) in cases {
            match (parse_one(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input:?}"),
                (Err(e), Err(want)) => assert_eq!(e.to_string(), *want, "{input:?}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        // UTF-8 strict: more than one matcher is an error.
        let e = parse_matcher("foo=bar,bar=baz", ParseMode::Utf8Strict).unwrap_err();
        assert_eq!(e.to_string(), "expected 1 matcher, found 2");
        // UTF-8 strict: invalid unicode in a single matcher.
        let e = parse_matcher(r#"foo="\xf0\x9f""#, ParseMode::Utf8Strict).unwrap_err();
        assert_eq!(e.to_string(), r#"4:14: "\xf0\x9f": invalid input"#);
    }

    /// Matching: missing label is "", regexes are anchored, all must match.
    #[test]
    fn matching() {
        let cases: &[(&str, Labels, bool)] = &[
            // configuration.md: Watchdog with severity critical matches…
            (
                r#"{alertname="Watchdog", severity=~"warning|critical"}"#,
                &[("alertname", "Watchdog"), ("severity", "critical")],
                true,
            ),
            // …but not with severity none.
            (
                r#"{alertname="Watchdog", severity=~"warning|critical"}"#,
                &[("alertname", "Watchdog"), ("severity", "none")],
                false,
            ),
            // Missing label equals "".
            (r#"foo="""#, &[("bar", "x")], true),
            // A set label is not "".
            (r#"foo="""#, &[("foo", "x")], false),
            // `!=""` requires the label.
            (r#"foo!="""#, &[("bar", "x")], false),
            (r#"foo!="""#, &[("foo", "x")], true),
            // `!=` matches a missing label.
            (r#"foo!="bar""#, &[], true),
            // `=` does not match a missing label unless the value is "".
            (r#"foo="bar""#, &[], false),
            // `=~".*"` matches a missing label.
            (r#"foo=~".*""#, &[], true),
            // `=~".+"` does not.
            (r#"foo=~".+""#, &[], false),
            // `!~".+"` does (the label is "").
            (r#"foo!~".+""#, &[], true),
            // Anchoring: a substring does not match.
            (r#"foo=~"bar""#, &[("foo", "foobar")], false),
            (r#"foo=~"bar""#, &[("foo", "barfoo")], false),
            (r#"foo=~"bar""#, &[("foo", "bar")], true),
            // Anchoring covers every alternative: `^(?:a|b)$`.
            (r#"foo=~"a|b""#, &[("foo", "b")], true),
            (r#"foo=~"a|b""#, &[("foo", "ab")], false),
            (r#"foo=~"a|b""#, &[("foo", "xb")], false),
            // Negative regex, anchored too: `!~"bar"` matches `foobar`.
            (r#"foo!~"bar""#, &[("foo", "foobar")], true),
            (r#"foo!~"bar""#, &[("foo", "bar")], false),
            // Regex on UTF-8.
            (r#"name=~"Προ.*""#, &[("name", "Προμηθεύς")], true),
            // Case matters unless `(?i)`.
            (r#"env=~"prod""#, &[("env", "PROD")], false),
            (r#"env=~"(?i)prod""#, &[("env", "PROD")], true),
            // The empty list matches everything.
            ("{}", &[("a", "b")], true),
            // Every matcher must match.
            (r#"a="1", b="2""#, &[("a", "1"), ("b", "3")], false),
            (r#"a="1", b="2""#, &[("a", "1"), ("b", "2")], true),
        ];
        for (input, pairs, want) in cases {
            let ms = Matchers::parse(input).unwrap();
            assert_eq!(ms.matches(&set(pairs)), *want, "{input} against {pairs:?}");
        }
    }

    /// `Display` is Alertmanager's `Matcher.String()` and parses back.
    #[test]
    fn display_round_trips() {
        let cases: &[(Matcher, &str)] = &[
            // Plain.
            (eq("foo", "bar"), r#"foo="bar""#),
            // All four operators.
            (ne("foo", "bar"), r#"foo!="bar""#),
            (re("foo", "a|b"), r#"foo=~"a|b""#),
            (nre("foo", "a|b"), r#"foo!~"a|b""#),
            // OpenMetrics escapes.
            (eq("foo", "a\"b\\c\nd"), r#"foo="a\"b\\c\nd""#),
            // A regex with a backslash.
            (re("code", r"\d+"), r#"code=~"\\d+""#),
            // Empty value.
            (eq("foo", ""), r#"foo="""#),
            // UTF-8 value.
            (eq("foo", "🙂"), r#"foo="🙂""#),
            // A reserved character in the name quotes both sides, Go style.
            (eq("service name", "a\tb"), r#""service name"="a\tb""#),
            (eq("a=b", "\u{1}"), r#""a=b"="\x01""#),
            // A name that is not a classic label name but has no reserved characters.
            (eq("foo.bar", "x"), r#"foo.bar="x""#),
        ];
        for (matcher, want) in cases {
            assert_eq!(matcher.to_string(), *want);
            let back = parse_matcher(want, ParseMode::Fallback).unwrap();
            assert_eq!(&back.value, matcher, "{want} parses back");
        }
        let ms = Matchers(vec![eq("a", "b"), re("c", "d|e")]);
        assert_eq!(ms.to_string(), r#"{a="b",c=~"d|e"}"#);
        assert_eq!(Matchers::parse(&ms.to_string()).unwrap(), ms);
    }

    /// YAML `matchers:` lists, as in routes and inhibit rules.
    #[test]
    fn yaml() {
        #[derive(Deserialize, Serialize)]
        struct Route {
            #[serde(default)]
            matchers: Matchers,
        }
        let cases: &[(&str, Vec<Matcher>)] = &[
            // The brief's example; sorted by name.
            (
                "matchers: ['severity=\"critical\"', 'env=~\"prod|staging\"']",
                vec![re("env", "prod|staging"), eq("severity", "critical")],
            ),
            // configuration.md: a block list with spaces.
            (
                "matchers:\n  - alertname = Watchdog\n  - severity =~ \"warning|critical\"\n",
                vec![
                    eq("alertname", "Watchdog"),
                    re("severity", "warning|critical"),
                ],
            ),
            // configuration.md example 1.
            (
                "matchers:\n  - foo = bar\n  - dings != bums\n",
                vec![ne("dings", "bums"), eq("foo", "bar")],
            ),
            // configuration.md example 2: short form.
            (
                "matchers: [ foo = bar, dings != bums ]",
                vec![ne("dings", "bums"), eq("foo", "bar")],
            ),
            // configuration.md example 2: double-quoted, comma in a value.
            (
                r#"matchers: [ "foo = \"bar,baz\"", "dings != bums" ]"#,
                vec![ne("dings", "bums"), eq("foo", "bar,baz")],
            ),
            // configuration.md example 3: several matchers in one string.
            (
                r#"matchers: [ '{foo="bar", dings!="bums"}' ]"#,
                vec![ne("dings", "bums"), eq("foo", "bar")],
            ),
            // configuration.md example 4: a YAML block.
            (
                "matchers:\n  - |\n      {quote=~\"She said: \\\"Hi, all!( How're you…)?\\\"\"}\n",
                vec![re("quote", "She said: \"Hi, all!( How're you…)?\"")],
            ),
            // An empty key.
            ("matchers:", vec![]),
            // No key at all.
            ("{}", vec![]),
        ];
        for (yaml, want) in cases {
            let r: Route = yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(&r.matchers.0, want, "{yaml}");
        }

        // Written back as one canonical string per matcher.
        let r: Route =
            yaml_serde::from_str("matchers: ['severity=\"critical\"', 'env=~\"prod|staging\"']")
                .unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"matchers": ["env=~\"prod|staging\"", "severity=\"critical\""]})
        );
        let back: Route = serde_json::from_value(json).unwrap();
        assert_eq!(back.matchers, r.matchers);

        // A bad matcher names the line's text and the problem.
        let e = yaml_serde::from_str::<Route>("matchers:\n  - 'foo=~\"(\"'\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid matcher"), "{e}");
        assert!(e.contains("invalid regular expression"), "{e}");
        // A single string is not a list (as in Alertmanager).
        assert!(yaml_serde::from_str::<Route>("matchers: 'foo=bar'").is_err());

        // A single `Matcher` reads from one string.
        let one: Matcher = serde_json::from_str(r#""env=~\"prod|staging\"""#).unwrap();
        assert_eq!(one, re("env", "prod|staging"));
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#""env=~\"prod|staging\"""#
        );
    }

    /// API v2 matcher objects.
    #[test]
    fn api_objects() {
        let cases: &[(bool, bool, MatchOp)] = &[
            // isRegex false, isEqual true: `=`.
            (false, true, MatchOp::Equal),
            // isRegex false, isEqual false: `!=`.
            (false, false, MatchOp::NotEqual),
            // isRegex true, isEqual true: `=~`.
            (true, true, MatchOp::Regex),
            // isRegex true, isEqual false: `!~`.
            (true, false, MatchOp::NotRegex),
        ];
        for (is_regex, is_equal, op) in cases {
            let m = Matcher::from_api("env", "prod", *is_regex, *is_equal).unwrap();
            assert_eq!(m.op(), *op);
            let api = m.to_api();
            assert_eq!((api.is_regex, api.is_equal), (*is_regex, *is_equal));
            assert_eq!(Matcher::try_from(&api).unwrap(), m);
        }
        // JSON shape, `isEqual` defaulting to true.
        let api: ApiMatcher =
            serde_json::from_str(r#"{"name":"env","value":"prod|dev","isRegex":true}"#).unwrap();
        let m = Matcher::try_from(api).unwrap();
        assert_eq!(m, re("env", "prod|dev"));
        assert_eq!(
            serde_json::to_value(m.to_api()).unwrap(),
            serde_json::json!({"name":"env","value":"prod|dev","isRegex":true,"isEqual":true})
        );
        // An empty name is refused.
        let e = Matcher::from_api("", "x", false, true).unwrap_err();
        assert_eq!(e.to_string(), "label name must not be empty");
    }

    /// Legacy `match:` and `match_re:` maps.
    #[test]
    fn legacy_maps() {
        let ms = Matchers::from_legacy(
            &labels(&[("service", "api"), ("env", "prod")]),
            &labels(&[("team", "front.*")]),
            &Matchers::parse(r#"alertname="X""#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            ms.0,
            vec![
                eq("alertname", "X"),
                eq("env", "prod"),
                eq("service", "api"),
                re("team", "front.*")
            ]
        );
        // match_re values are anchored like any matcher regex.
        assert!(ms.matches(&set(&[
            ("alertname", "X"),
            ("env", "prod"),
            ("service", "api"),
            ("team", "frontend")
        ])));
        assert!(!ms.matches(&set(&[
            ("alertname", "X"),
            ("env", "prod"),
            ("service", "api"),
            ("team", "the-frontend")
        ])));
        // An empty label name is refused.
        let e = from_match(&labels(&[("", "x")])).unwrap_err();
        assert_eq!(e.to_string(), "match \"\": label name must not be empty");
    }

    /// Sorting follows Alertmanager: name, value, operator.
    #[test]
    fn sort_order() {
        let mut ms = Matchers(vec![
            nre("b", "1"),
            eq("b", "1"),
            eq("a", "2"),
            ne("b", "0"),
        ]);
        ms.sort();
        assert_eq!(
            ms.0,
            vec![eq("a", "2"), ne("b", "0"), eq("b", "1"), nre("b", "1")]
        );
    }

    #[test]
    fn classic_label_names() {
        let cases: &[(&str, bool)] = &[
            // compat/parse_test.go cases.
            ("foo", true),
            ("_foo1", true),
            ("", false),
            ("0foo", false),
            ("foo🙂", false),
            // Colons are not Prometheus label characters.
            ("a:b", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_valid_classic_label_name(name), *want, "{name:?}");
        }
    }
}
