//! CEL expressions in rules: compiled once at load, run per event.
//!
//! A rule's `condition`, a threshold's `value`, a distinct-count's `of` and
//! named `group_by` entries are CEL (the `cel` crate, with the strings
//! extension for `split`, `lowerAscii`, …). They see two variables:
//!
//! * `payload`: the event's payload as the log stores it (for `k8s.event`:
//!   `payload.reason`, `payload.involved_object.name`, `payload.labels.app`);
//! * `event`: the envelope — `event.kind`, `event.source`, `event.key`.
//!
//! A field that is missing is an error in CEL; an expression that errors or
//! does not give the expected type counts as "not met" (test with
//! `has(payload.x)` first).

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};

use crate::eventlog::{Event, EventKind, LabelSet};

/// The environment every rule expression is compiled and run with.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension declares on the standard library");
    Arc::new(env)
});

/// A compiled CEL expression with its source (for messages).
pub struct Expr {
    pub source: String,
    program: Program,
    /// For an expression that only selects a payload field
    /// (`payload.involved_object.name`, the usual `group_by` entry): the
    /// field's path, read straight from the JSON payload with CEL's
    /// meaning (a missing field is an error). It gives what the program
    /// gives, without making the event's CEL values.
    path: Option<Vec<String>>,
    /// For a condition of the usual shape (see [`Conjunction`]): its
    /// parts, tested on the typed event without a CEL context.
    conjunction: Option<Conjunction>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// A CEL syntax error: where in the expression (1-based line and column)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        match ENV.compile(source) {
            Ok(program) => Ok(Expr {
                source: source.to_string(),
                program,
                path: payload_path(source),
                conjunction: Conjunction::parse(source),
            }),
            Err(errors) => {
                let first = errors.errors.first();
                Err(ExprError {
                    // Both from 1, as cel reports them.
                    line: first.map_or(1, |e| e.pos.0.max(1) as usize),
                    column: first.map_or(1, |e| e.pos.1.max(1) as usize),
                    message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                })
            }
        }
    }

    /// Runs the expression against one event.
    pub fn eval(&self, input: &Input) -> Result<Value, String> {
        if let Some(path) = &self.path {
            let value = match input.read(path) {
                Field::Str(s) => Some(Value::from(s.to_string())),
                Field::Scalar(v) => Some(to_cel(&v)),
                Field::Missing => None,
                Field::Compound => input.lookup(path).map(to_cel),
            };
            return value.ok_or_else(|| format!("no such key: {}", path.join(".")));
        }
        self.program.execute(input.cel()).map_err(|e| e.to_string())
    }

    /// [`Self::label`] written into `out` (cleared first): a field
    /// selection that is a string is copied without making a CEL value.
    pub fn label_into(&self, input: &Input, out: &mut String) {
        out.clear();
        if let Some(path) = &self.path
            && let Field::Str(s) = input.read(path)
        {
            out.push_str(s);
            return;
        }
        out.push_str(&self.label(input));
    }

    /// True only when the expression gives `true`.
    pub fn test(&self, input: &Input) -> bool {
        if let Some(conjunction) = &self.conjunction
            && let Some(holds) = conjunction.holds(input)
        {
            return holds;
        }
        matches!(self.eval(input), Ok(Value::Bool(true)))
    }

    /// A number, when the expression gives one.
    pub fn number(&self, input: &Input) -> Option<f64> {
        match self.eval(input).ok()? {
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The value as a label value: strings as they are, numbers and bools
    /// written out, anything else (missing, errors, lists) as `""`.
    pub fn label(&self, input: &Input) -> String {
        match self.eval(input) {
            Ok(v) => scalar_text(&v),
            Err(_) => String::new(),
        }
    }
}

/// A condition of the usual shape, `has(payload.a.b)`, `payload.ok` and
/// `payload.a.b OP literal` (`==`, `!=`, `<`, `<=`, `>`, `>=`; an int,
/// float, plain quoted string or bool) joined by `&&`: tested on the typed
/// event, without binding the payload as CEL values, which cost more than
/// the rest of folding such an event. CEL's `a && b` gives `true` only
/// when both give `true` (an error or a non-bool on either side is not
/// `true`, whichever side it is on), so the whole is `true` exactly when
/// every part is. A part this cannot settle (a field the typed reader
/// does not know, a literal of another type than the field: CEL compares
/// across numeric types) sends the condition to CEL
/// (`a_fast_condition_gives_what_cel_gives` tests both ways agree).
#[derive(Debug, Clone, PartialEq)]
struct Conjunction(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// `has(payload.a.b)`: the field is there.
    Has(Vec<String>),
    /// `payload.a.b`: the field is `true`.
    True(Vec<String>),
    Compare {
        path: Vec<String>,
        op: Compare,
        literal: Literal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `payload.a.b`: the segments after `payload`.
    Path(Vec<String>),
    /// A lone identifier (`has`).
    Ident(String),
    Literal(Literal),
    Op(Compare),
    And,
    Open,
    Close,
}

impl Conjunction {
    /// The parts of `source`, when it is of the shape; `None` otherwise
    /// (CEL runs it).
    fn parse(source: &str) -> Option<Conjunction> {
        let tokens = tokens(source)?;
        let mut parts = Vec::new();
        let mut rest = tokens.as_slice();
        loop {
            let (part, after) = match rest {
                [
                    Token::Ident(has),
                    Token::Open,
                    Token::Path(p),
                    Token::Close,
                    after @ ..,
                ] if has == "has" => (Part::Has(p.clone()), after),
                [Token::Path(p), Token::Op(op), Token::Literal(l), after @ ..] => (
                    Part::Compare {
                        path: p.clone(),
                        op: *op,
                        literal: l.clone(),
                    },
                    after,
                ),
                [Token::Path(p), after @ ..] => (Part::True(p.clone()), after),
                _ => return None,
            };
            parts.push(part);
            match after {
                [] => return Some(Conjunction(parts)),
                [Token::And, more @ ..] => rest = more,
                _ => return None,
            }
        }
    }

    /// Whether the condition gives `true` for `input`; `None`: ask CEL.
    fn holds(&self, input: &Input) -> Option<bool> {
        let mut settled = true;
        for part in &self.0 {
            match part.holds(input) {
                Some(false) => return Some(false),
                Some(true) => {}
                None => settled = false,
            }
        }
        settled.then_some(true)
    }
}

impl Part {
    fn holds(&self, input: &Input) -> Option<bool> {
        use serde_json::Value as J;
        match self {
            Part::Has(path) => match input.read(path) {
                Field::Missing => Some(false),
                Field::Str(_) | Field::Scalar(_) => Some(true),
                Field::Compound => None,
            },
            Part::True(path) => match input.read(path) {
                Field::Scalar(J::Bool(b)) => Some(b),
                Field::Missing | Field::Str(_) | Field::Scalar(_) => Some(false),
                Field::Compound => None,
            },
            Part::Compare { path, op, literal } => {
                let ordering = match (input.read(path), literal) {
                    // No such key: an error, not `true`.
                    (Field::Missing, _) => return Some(false),
                    (Field::Str(s), Literal::Str(l)) => {
                        return match op {
                            Compare::Eq => Some(s == l.as_str()),
                            Compare::Ne => Some(s != l.as_str()),
                            _ => None,
                        };
                    }
                    (Field::Scalar(J::Bool(b)), Literal::Bool(l)) => {
                        return match op {
                            Compare::Eq => Some(b == *l),
                            Compare::Ne => Some(b != *l),
                            _ => None,
                        };
                    }
                    // Whole numbers are CEL ints when they fit (see `to_cel`).
                    (Field::Scalar(J::Number(n)), Literal::Int(l)) => n.as_i64()?.cmp(l),
                    (Field::Scalar(J::Number(n)), Literal::Float(l))
                        if n.as_i64().is_none() && n.as_u64().is_none() =>
                    {
                        n.as_f64()?.partial_cmp(l)?
                    }
                    _ => return None,
                };
                use std::cmp::Ordering::{Equal, Greater, Less};
                Some(match op {
                    Compare::Eq => ordering == Equal,
                    Compare::Ne => ordering != Equal,
                    Compare::Lt => ordering == Less,
                    Compare::Le => ordering != Greater,
                    Compare::Gt => ordering == Greater,
                    Compare::Ge => ordering != Less,
                })
            }
        }
    }
}

/// The tokens of a condition of [`Conjunction`]'s shape; `None` at
/// anything else (escapes, other operators, raw or byte strings, …).
fn tokens(source: &str) -> Option<Vec<Token>> {
    let b = source.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2).unwrap_or(&[]);
        if c.is_ascii_whitespace() {
            i += 1;
        } else if two == b"&&" {
            out.push(Token::And);
            i += 2;
        } else if let Some(op) = [
            (&b"=="[..], Compare::Eq),
            (b"!=", Compare::Ne),
            (b"<=", Compare::Le),
            (b">=", Compare::Ge),
        ]
        .iter()
        .find(|(text, _)| *text == two)
        .map(|(_, op)| *op)
        {
            out.push(Token::Op(op));
            i += 2;
        } else if c == b'<' || c == b'>' {
            out.push(Token::Op(if c == b'<' { Compare::Lt } else { Compare::Gt }));
            i += 1;
        } else if c == b'(' || c == b')' {
            out.push(if c == b'(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let end = i + 1 + b[i + 1..].iter().position(|x| *x == c)?;
            let text = &source[i + 1..end];
            if text.contains(['\\', '\n', '\r']) {
                return None;
            }
            out.push(Token::Literal(Literal::Str(text.to_string())));
            i = end + 1;
        } else if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let float = b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if float {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            // `5u`, `1e3`, `0x1f`, `1.5.x`: not of the shape.
            if b.get(i).is_some_and(|x| ident(*x) || *x == b'.') {
                return None;
            }
            let text = &source[start..i];
            out.push(Token::Literal(if float {
                Literal::Float(text.parse().ok()?)
            } else {
                Literal::Int(text.parse().ok()?)
            }));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
            let text = &source[start..i];
            let segments: Vec<&str> = text.split('.').collect();
            let well_formed = segments
                .iter()
                .all(|s| s.bytes().next().is_some_and(|x| !x.is_ascii_digit()));
            if !well_formed {
                return None;
            }
            out.push(match segments.as_slice() {
                ["true"] => Token::Literal(Literal::Bool(true)),
                ["false"] => Token::Literal(Literal::Bool(false)),
                ["payload", rest @ ..] if !rest.is_empty() => {
                    Token::Path(rest.iter().map(|s| s.to_string()).collect())
                }
                [one] => Token::Ident(one.to_string()),
                _ => return None,
            });
        } else {
            return None;
        }
    }
    Some(out)
}

pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// The field path of `source` when it is nothing but `payload.a.b…`
/// (identifiers joined by dots, as CEL writes a field selection).
fn payload_path(source: &str) -> Option<Vec<String>> {
    let rest = source.trim().strip_prefix("payload.")?;
    let parts: Vec<String> = rest.split('.').map(str::to_string).collect();
    let ident = |p: &String| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts.iter().all(ident).then_some(parts)
}

/// What a set of expressions can read of an event, so each event's CEL
/// context binds only that: converting the whole payload to CEL values
/// (maps of strings, every label) cost more than running the programs.
/// Found from the expressions' text, conservatively: every `payload` that
/// is not directly followed by `.field` means the whole payload, and any
/// `event` at all means the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// The payload's top-level fields read; `None`: all of it.
    payload: Option<std::collections::BTreeSet<String>>,
    envelope: bool,
}

impl Reads {
    /// Nothing read.
    pub fn nothing() -> Reads {
        Reads {
            payload: Some(Default::default()),
            envelope: false,
        }
    }

    /// Everything bound, as for an expression not known in advance.
    pub fn everything() -> Reads {
        Reads {
            payload: None,
            envelope: true,
        }
    }

    /// Adds what `source` reads.
    pub fn add(&mut self, source: &str) {
        let b = source.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let word_at = |i: usize, word: &str| {
            b[i..].starts_with(word.as_bytes())
                && (i == 0 || !ident(b[i - 1]))
                && b.get(i + word.len()).is_none_or(|c| !ident(*c))
        };
        for i in 0..b.len() {
            if word_at(i, "event") {
                self.envelope = true;
            }
            if !word_at(i, "payload") {
                continue;
            }
            let rest = &source[i + "payload".len()..];
            let field: String = rest
                .strip_prefix('.')
                .unwrap_or("")
                .bytes()
                .take_while(|c| ident(*c))
                .map(char::from)
                .collect();
            let starts_ident = field.bytes().next().is_some_and(|c| !c.is_ascii_digit());
            match &mut self.payload {
                Some(fields) if starts_ident => {
                    fields.insert(field);
                }
                _ => self.payload = None,
            }
        }
    }
}

/// JSON as CEL values. Whole numbers become `int` when they fit (serde
/// writes non-negative numbers as unsigned, and CEL has no `uint * int`),
/// so `payload.count * 2` and `payload.count > 3` work as written.
fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::from(s.clone()),
        J::Array(items) => Value::from(items.iter().map(to_cel).collect::<Vec<Value>>()),
        J::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<std::collections::HashMap<String, Value>>(),
        ),
    }
}

/// A payload field as [`typed_field`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    /// Not in the payload (as the log stores it: a field serde skips when
    /// empty is missing too).
    Missing,
    Str(&'a str),
    /// A number, bool or null, as `serde_json` would write it.
    Scalar(serde_json::Value),
    /// A map or list, or a field the typed reader does not know: read the
    /// payload's JSON.
    Compound,
}

/// A payload field read from the typed event, without serialising the
/// payload: for the kinds rules are mostly written on (Kubernetes events,
/// probe results, heartbeats), giving exactly what the JSON the log stores
/// gives (field names as serde renames them, fields it skips when empty
/// missing, floats as `serde_json` numbers, names the payload does not
/// have missing); [`Field::Compound`] for anything else. Making each event's JSON copy was most of the cost of
/// folding an event (tested against the JSON in `typed_fields_read_what_the_json_holds`).
pub fn typed_field<'a>(kind: &'a EventKind, path: &[String]) -> Field<'a> {
    use Field::{Compound, Missing, Scalar, Str};
    fn text<'a>(s: &'a str, rest: &[String]) -> Field<'a> {
        // A further step into a string finds nothing.
        if rest.is_empty() { Str(s) } else { Missing }
    }
    fn scalar<'a>(v: serde_json::Value, rest: &[String]) -> Field<'a> {
        if rest.is_empty() { Scalar(v) } else { Missing }
    }
    fn number(v: f64) -> serde_json::Value {
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
    fn label<'a>(labels: &'a LabelSet, rest: &[String]) -> Field<'a> {
        match rest {
            [] => Compound,
            [name, more @ ..] => labels.get(name.as_str()).map_or(Missing, |v| text(v, more)),
        }
    }
    let Some((first, rest)) = path.split_first() else {
        return Compound;
    };
    match kind {
        EventKind::K8sEvent(e) => match first.as_str() {
            "cluster" => text(&e.cluster, rest),
            "namespace" => text(&e.namespace, rest),
            "reason" => text(&e.reason, rest),
            "message" => text(&e.message, rest),
            "type" => text(&e.event_type, rest),
            "count" => scalar(e.count.into(), rest),
            "reporting_controller" => text(&e.reporting_controller, rest),
            "labels" => label(&e.labels, rest),
            "involved_object" => {
                let o = &e.involved_object;
                match rest {
                    [f, more @ ..] if f == "kind" => text(&o.kind, more),
                    [f, more @ ..] if f == "name" => text(&o.name, more),
                    [f, more @ ..] if f == "uid" => text(&o.uid, more),
                    [f, more @ ..] if f == "deleted" => {
                        if o.deleted {
                            scalar(true.into(), more)
                        } else {
                            Missing
                        }
                    }
                    [] => Compound,
                    [f, ..] if f == "owner_references" => Compound,
                    _ => Missing,
                }
            }
            // Fields the log stores that are not read here.
            "first_seen" | "last_seen" | "host" => Compound,
            // Not a field of the payload at all: binding `payload.values`
            // of a Kubernetes event made the event's whole JSON to find it
            // missing.
            _ => Missing,
        },
        EventKind::ProbeResult(p) => match first.as_str() {
            "probe" => text(&p.probe, rest),
            "type" => text(&p.probe_type, rest),
            "target" => text(&p.target, rest),
            "ok" => scalar(p.ok.into(), rest),
            "latency_ms" => p.latency_ms.map_or(Missing, |v| scalar(number(v), rest)),
            "status" => p.status.map_or(Missing, |v| scalar(v.into(), rest)),
            "error" => p.error.as_deref().map_or(Missing, |v| text(v, rest)),
            "labels" => label(&p.labels, rest),
            "values" => match rest {
                [] => Compound,
                [name, more @ ..] => p
                    .values
                    .get(name.as_str())
                    .map_or(Missing, |v| scalar(number(*v), more)),
            },
            "summary" => Compound,
            _ => Missing,
        },
        EventKind::HeartbeatReceived(h) => match first.as_str() {
            "name" => text(&h.name, rest),
            "labels" => label(&h.labels, rest),
            _ => Missing,
        },
        _ => Compound,
    }
}

/// A payload path resolved once, when the rule is loaded, to the text field
/// of a typed event it names: matchers, group keys and the rule index read
/// these on every event, and matching the path's strings per event and rule
/// in [`typed_field`] showed in profiles. [`Known::Other`]: any other path,
/// read by [`typed_field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Cluster,
    Namespace,
    Reason,
    Message,
    Type,
    ReportingController,
    ObjectKind,
    ObjectName,
    ObjectUid,
    Probe,
    Target,
    Name,
    Other,
}

impl Known {
    pub fn of(path: &[String]) -> Known {
        match path {
            [one] => match one.as_str() {
                "cluster" => Known::Cluster,
                "namespace" => Known::Namespace,
                "reason" => Known::Reason,
                "message" => Known::Message,
                "type" => Known::Type,
                "reporting_controller" => Known::ReportingController,
                "probe" => Known::Probe,
                "target" => Known::Target,
                "name" => Known::Name,
                _ => Known::Other,
            },
            [object, field] if object == "involved_object" => match field.as_str() {
                "kind" => Known::ObjectKind,
                "name" => Known::ObjectName,
                "uid" => Known::ObjectUid,
                _ => Known::Other,
            },
            _ => Known::Other,
        }
    }

    /// The field in `kind`'s payload, where it is one of its text fields
    /// (what [`typed_field`] gives as [`Field::Str`] for the path); `None`
    /// for anything else.
    fn text(self, kind: &EventKind) -> Option<&str> {
        Some(match (kind, self) {
            (EventKind::K8sEvent(e), Known::Cluster) => &e.cluster,
            (EventKind::K8sEvent(e), Known::Namespace) => &e.namespace,
            (EventKind::K8sEvent(e), Known::Reason) => &e.reason,
            (EventKind::K8sEvent(e), Known::Message) => &e.message,
            (EventKind::K8sEvent(e), Known::Type) => &e.event_type,
            (EventKind::K8sEvent(e), Known::ReportingController) => &e.reporting_controller,
            (EventKind::K8sEvent(e), Known::ObjectKind) => &e.involved_object.kind,
            (EventKind::K8sEvent(e), Known::ObjectName) => &e.involved_object.name,
            (EventKind::K8sEvent(e), Known::ObjectUid) => &e.involved_object.uid,
            (EventKind::ProbeResult(p), Known::Probe) => &p.probe,
            (EventKind::ProbeResult(p), Known::Type) => &p.probe_type,
            (EventKind::ProbeResult(p), Known::Target) => &p.target,
            (EventKind::HeartbeatReceived(h), Known::Name) => &h.name,
            _ => return None,
        })
    }
}

/// The maps of a typed event's payload that conditions read whole
/// (`has(payload.values.cpu)`, `payload.labels.app == 'web'`) as the CEL
/// values the JSON would give (non-finite floats as null), without the
/// JSON; `None` for any other field, or one the log leaves out (empty).
fn typed_map(kind: &EventKind, field: &str) -> Option<Value> {
    let labels = |l: &LabelSet| {
        (!l.is_empty()).then(|| {
            Value::from(
                l.iter()
                    .map(|(k, v)| (k.to_string(), Value::from(v.to_string())))
                    .collect::<std::collections::HashMap<String, Value>>(),
            )
        })
    };
    match (kind, field) {
        (EventKind::ProbeResult(p), "values") => (!p.values.is_empty()).then(|| {
            Value::from(
                p.values
                    .iter()
                    .map(|(k, v)| (k.clone(), to_cel(&serde_json::Value::from(*v))))
                    .collect::<std::collections::HashMap<String, Value>>(),
            )
        }),
        (EventKind::ProbeResult(p), "labels") => labels(&p.labels),
        (EventKind::K8sEvent(e), "labels") => labels(&e.labels),
        (EventKind::HeartbeatReceived(h), "labels") => labels(&h.labels),
        _ => None,
    }
}

/// A scalar JSON value as a field's text (see [`Input::field`]).
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// One event prepared for rules. Fields are read from the typed event
/// where [`typed_field`] can; the payload as JSON (for other fields and
/// templates; shared, so the evidence a rule keeps for its templates is
/// not a copy) and as CEL values are made on first use — most events meet
/// only matchers and field selections, and converting the payload cost
/// more than the matching.
pub struct Input<'a> {
    pub event: &'a Event,
    json: std::cell::OnceCell<Arc<serde_json::Value>>,
    /// What the expressions run on this input can read.
    reads: &'a Reads,
    /// The CEL context with `payload` and `event` bound, made once per
    /// event and shared by every rule's expression: binding converts the
    /// whole payload, which cost more than running the programs.
    cel: std::cell::OnceCell<Context<'static, 'static>>,
}

static EVERYTHING: LazyLock<Reads> = LazyLock::new(Reads::everything);

impl<'a> Input<'a> {
    /// An input whose CEL context binds everything.
    pub fn new(event: &'a Event) -> Input<'a> {
        Input::reading(event, &EVERYTHING)
    }

    /// An input for expressions that read no more than `reads`.
    pub fn reading(event: &'a Event, reads: &'a Reads) -> Input<'a> {
        Input {
            event,
            json: std::cell::OnceCell::new(),
            reads,
            cel: std::cell::OnceCell::new(),
        }
    }

    /// The payload as the log stores it, made on first use.
    pub fn json(&self) -> &Arc<serde_json::Value> {
        self.json.get_or_init(|| {
            let json = match serde_json::to_value(&self.event.kind) {
                Ok(serde_json::Value::Object(mut doc)) => {
                    doc.remove("payload").unwrap_or(serde_json::Value::Null)
                }
                _ => serde_json::Value::Null,
            };
            Arc::new(json)
        })
    }

    /// The payload field at `path`, typed where it can be.
    fn read(&self, path: &[String]) -> Field<'a> {
        typed_field(&self.event.kind, path)
    }

    /// The context with `payload` and `event` bound, made on first use.
    fn cel(&self) -> &Context<'static, 'static> {
        self.cel.get_or_init(|| {
            let mut ctx = Context::with_env(ENV.clone());
            let typed = matches!(
                self.event.kind,
                EventKind::K8sEvent(_)
                    | EventKind::ProbeResult(_)
                    | EventKind::HeartbeatReceived(_)
            );
            let payload = match &self.reads.payload {
                // The fields read, from the typed event where it can.
                Some(fields) if typed => {
                    let mut map = std::collections::HashMap::with_capacity(fields.len());
                    for f in fields {
                        let path = std::slice::from_ref(f);
                        let value = match self.read(path) {
                            Field::Missing => continue,
                            Field::Str(s) => Value::from(s.to_string()),
                            Field::Scalar(v) => to_cel(&v),
                            Field::Compound => match typed_map(&self.event.kind, f) {
                                Some(v) => v,
                                None => match self.lookup(path) {
                                    Some(v) => to_cel(v),
                                    None => continue,
                                },
                            },
                        };
                        map.insert(f.clone(), value);
                    }
                    Value::from(map)
                }
                Some(fields) => match &**self.json() {
                    serde_json::Value::Object(map) => Value::from(
                        fields
                            .iter()
                            .filter_map(|f| Some((f.clone(), to_cel(map.get(f)?))))
                            .collect::<std::collections::HashMap<String, Value>>(),
                    ),
                    other => to_cel(other),
                },
                None => to_cel(self.json()),
            };
            ctx.add_variable_from_value("payload", payload);
            if self.reads.envelope {
                let envelope = to_cel(&serde_json::json!({
                    "kind": self.event.kind.name(),
                    "source": self.event.source,
                    "key": self.event.key,
                    "occurred_at": self.event.occurred_at.to_rfc3339(),
                }));
                ctx.add_variable_from_value("event", envelope);
            }
            ctx
        })
    }

    /// The payload field at `path` in the JSON, if there is one.
    fn lookup(&self, path: &[String]) -> Option<&serde_json::Value> {
        path.iter()
            .try_fold(&**self.json(), |at, part| at.get(part))
    }

    /// A payload field by dotted path (`involved_object.name`), as text:
    /// strings as they are, numbers and bools written out, missing as `""`
    /// (as a missing label is in Alertmanager's matchers). `source`, `kind`
    /// and `key` not found in the payload are the envelope's.
    pub fn field(&self, path: &[String]) -> String {
        self.field_text(path).into_owned()
    }

    /// [`Self::field_text`] of `path`, resolved at load as `known`
    /// (`Known::of(path)`).
    pub fn known_text(&self, known: Known, path: &[String]) -> std::borrow::Cow<'a, str> {
        match known.text(&self.event.kind) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => self.field_text(path),
        }
    }

    /// [`Self::field`], borrowed from the event when it is a string there.
    pub fn field_text(&self, path: &[String]) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        let missing = || -> Cow<'a, str> {
            match (path.len(), path.first().map(String::as_str)) {
                (1, Some("source")) => Cow::Borrowed(&self.event.source),
                (1, Some("kind")) => Cow::Borrowed(self.event.kind.name()),
                (1, Some("key")) => Cow::Borrowed(&self.event.key),
                _ => Cow::Borrowed(""),
            }
        };
        match self.read(path) {
            Field::Str(s) => Cow::Borrowed(s),
            Field::Scalar(v) => Cow::Owned(json_text(&v)),
            Field::Missing => missing(),
            Field::Compound => match self.lookup(path) {
                Some(v) => Cow::Owned(json_text(v)),
                None => missing(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::{EventKind, InvolvedObject, K8sEvent};

    fn event() -> Event {
        Event {
            seq: 1,
            id: "x".into(),
            occurred_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            recorded_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            source: "kubernetes".into(),
            key: "uid-1".into(),
            idempotency_key: None,
            kind: EventKind::K8sEvent(Arc::new(K8sEvent {
                cluster: "prod".into(),
                namespace: "shop".into(),
                involved_object: InvolvedObject {
                    kind: "Pod".into(),
                    name: "web-1".into(),
                    uid: "uid-1".into(),
                    ..Default::default()
                },
                reason: "BackOff".into(),
                message: "Successfully assigned shop/web-1 to node-3".into(),
                event_type: "Warning".into(),
                count: 4,
                first_seen: None,
                last_seen: None,
                reporting_controller: "kubelet".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn conditions_see_the_payload_and_the_envelope() {
        let e = event();
        let input = Input::new(&e);
        let cases = [
            ("payload.reason == 'BackOff'", true),
            ("payload.count > 3", true),
            ("payload.count > 4", false),
            (
                "payload.labels.app == 'web' && payload.type == 'Warning'",
                true,
            ),
            ("payload.involved_object.kind in ['Pod', 'Node']", true),
            ("payload.reason.matches('^(CrashLoop)?BackOff$')", true),
            (
                "event.source == 'kubernetes' && event.kind == 'k8s.event'",
                true,
            ),
            ("has(payload.missing)", false),
            // An error (no such key) is "not met", never a panic.
            ("payload.missing == 1", false),
            // Not a bool: not met.
            ("payload.count", false),
        ];
        for (src, want) in cases {
            let expr = Expr::compile(src).unwrap();
            assert_eq!(expr.test(&input), want, "{src}");
        }
    }

    #[test]
    fn values_and_labels_come_out_as_numbers_and_text() {
        let e = event();
        let input = Input::new(&e);
        let n = Expr::compile("payload.count * 2").unwrap();
        assert_eq!(n.number(&input), Some(8.0));
        let node = Expr::compile("payload.message.split(' to ')[1]").unwrap();
        assert_eq!(node.label(&input), "node-3");
        assert_eq!(
            input.field(&["involved_object".into(), "name".into()]),
            "web-1"
        );
        assert_eq!(input.field(&["count".into()]), "4");
        assert_eq!(input.field(&["nope".into()]), "");
        assert_eq!(input.field(&["source".into()]), "kubernetes");
    }

    /// Field selections are read from the JSON, not run by CEL: both must
    /// give the same, missing fields and all.
    #[test]
    fn a_field_selection_gives_what_cel_gives() {
        let e = event();
        let input = Input::new(&e);
        for src in [
            "payload.involved_object.name",
            "payload.count",
            "payload.labels.app",
            "payload.labels.missing",
            "payload.missing.deeper",
            "payload.type",
            "payload.labels",
        ] {
            let fast = Expr::compile(src).unwrap();
            assert!(fast.path.is_some(), "{src}");
            let mut slow = Expr::compile(src).unwrap();
            slow.path = None;
            assert_eq!(fast.label(&input), slow.label(&input), "{src}");
            assert_eq!(fast.number(&input), slow.number(&input), "{src}");
            assert_eq!(fast.test(&input), slow.test(&input), "{src}");
        }
        for src in [
            "payload.count * 2",
            "payload['count']",
            "has(payload.count)",
        ] {
            assert!(Expr::compile(src).unwrap().path.is_none(), "{src}");
        }
    }

    /// A context that binds only what the expressions read gives what the
    /// whole one gives; anything but `payload.field` binds it all.
    #[test]
    fn binding_only_what_is_read_gives_the_same() {
        let e = event();
        let sources = [
            "payload.count > 3 && payload.type == 'Warning'",
            "has(payload.labels.app) && payload.labels.app == 'web'",
            "has(payload.missing)",
            "payload.missing == 1",
            "payload.involved_object.kind in ['Pod', 'Node']",
            "payload.message.split(' to ')[1]",
            "event.source == 'kubernetes'",
            "size(payload) > 3",
            "payload['reason'] == 'BackOff'",
        ];
        for src in sources {
            let mut reads = Reads::nothing();
            reads.add(src);
            let expr = Expr::compile(src).unwrap();
            let all = Input::new(&e);
            let some = Input::reading(&e, &reads);
            assert_eq!(
                format!("{:?}", expr.eval(&all)),
                format!("{:?}", expr.eval(&some)),
                "{src}"
            );
        }
        // Maps of the typed kinds bound from the event, not the JSON.
        for e in typed_events() {
            for src in [
                "has(payload.values.cpu) && payload.values.cpu > 0.9",
                "payload.values",
                "payload.values.nan",
                "size(payload.values) > 2",
                "payload.labels",
                "has(payload.labels.team) ? payload.labels.team : 'none'",
                "payload.labels.job == 'backup'",
                "has(payload.labels) || has(payload.values)",
            ] {
                let mut reads = Reads::nothing();
                reads.add(src);
                let expr = Expr::compile(src).unwrap();
                assert_eq!(
                    expr.eval(&Input::new(&e)).ok(),
                    expr.eval(&Input::reading(&e, &reads)).ok(),
                    "{} {src}",
                    e.kind.name()
                );
            }
        }
        let mut reads = Reads::nothing();
        reads.add("payload.count > 3 && has(payload.labels.app) && payloads.x");
        assert_eq!(
            reads.payload,
            Some(["count".to_string(), "labels".to_string()].into())
        );
        assert!(!reads.envelope);
        for whole in [
            "size(payload)",
            "payload['x']",
            "payload == {}",
            "payload.1",
        ] {
            let mut reads = Reads::nothing();
            reads.add(whole);
            assert_eq!(reads.payload, None, "{whole}");
        }
        let mut reads = Reads::nothing();
        reads.add("event.kind == 'k8s.event'");
        assert!(reads.envelope);
    }

    /// Events of each typed kind, every field filled, and with what serde
    /// skips (empty labels, `deleted: false`, no latency) left out.
    fn typed_events() -> Vec<Event> {
        use crate::eventlog::{Heartbeat, OwnerReference, ProbeResult, ProbeSummary};
        let base = event();
        let EventKind::K8sEvent(k8s) = &base.kind else {
            unreachable!()
        };
        let mut full = (**k8s).clone();
        full.involved_object.deleted = true;
        full.involved_object.owner_references = vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "web-5d".into(),
            controller: true,
        }];
        full.first_seen = Some(base.occurred_at);
        let mut bare = (**k8s).clone();
        bare.labels = LabelSet::default();
        bare.count = 0;
        let probe = ProbeResult {
            probe: "api".into(),
            probe_type: "http".into(),
            target: "http://api/healthz".into(),
            ok: false,
            latency_ms: Some(12.5),
            status: Some(503),
            values: [
                ("cpu".to_string(), 0.95),
                ("up".to_string(), 1.0),
                ("big".to_string(), 1e21),
                ("neg".to_string(), -3.0),
                ("nan".to_string(), f64::NAN),
            ]
            .into(),
            error: Some("HTTP 503".into()),
            labels: [("team", "core")].into_iter().collect(),
            summary: Some(ProbeSummary {
                reason: "state".into(),
                since: base.occurred_at,
                runs: 3,
                failures: 1,
                latency_min_ms: 1.0,
                latency_max_ms: 2.0,
                latency_mean_ms: 1.5,
            }),
        };
        let bare_probe = ProbeResult {
            latency_ms: None,
            status: None,
            values: Default::default(),
            error: None,
            labels: LabelSet::default(),
            summary: None,
            ok: true,
            ..probe.clone()
        };
        let kinds = [
            EventKind::K8sEvent(Arc::new(full)),
            EventKind::K8sEvent(Arc::new(bare)),
            EventKind::ProbeResult(Arc::new(probe)),
            EventKind::ProbeResult(Arc::new(bare_probe)),
            EventKind::HeartbeatReceived(Heartbeat {
                name: "nightly".into(),
                labels: [("job", "backup")].into_iter().collect(),
            }),
            EventKind::HeartbeatReceived(Heartbeat {
                name: "nightly".into(),
                labels: LabelSet::default(),
            }),
        ];
        kinds
            .into_iter()
            .map(|kind| Event {
                kind,
                ..base.clone()
            })
            .collect()
    }

    /// Every path into `v` (maps and lists too), each followed by one
    /// step that is not there.
    fn paths(v: &serde_json::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut nope = at.clone();
        nope.push("nope".into());
        out.push(nope);
        if !at.is_empty() {
            out.push(at.clone());
        }
        if let serde_json::Value::Object(map) = v {
            for (k, next) in map {
                let mut path = at.clone();
                path.push(k.clone());
                paths(next, path, out);
            }
        }
    }

    /// A path resolved at load reads what the path reads, on every typed
    /// kind and others, for every path `Known` names and some it does not.
    #[test]
    fn a_resolved_path_reads_what_the_path_reads() {
        let mut events = typed_events();
        let mut other = event();
        other.kind = EventKind::AlertResolved(crate::eventlog::AlertResolution {
            fingerprint: "0123456789abcdef".into(),
            ends_at: other.occurred_at,
            reason: "gone".into(),
            report: None,
        });
        events.push(other);
        let paths = [
            "cluster",
            "namespace",
            "reason",
            "message",
            "type",
            "reporting_controller",
            "involved_object.kind",
            "involved_object.name",
            "involved_object.uid",
            "involved_object.deleted",
            "probe",
            "target",
            "name",
            "count",
            "ok",
            "source",
            "kind",
            "key",
            "reason.more",
            "labels.app",
            "values.cpu",
            "involved_object",
        ];
        let mut resolved = 0;
        for e in &events {
            let input = Input::new(e);
            for p in paths {
                let path: Vec<String> = p.split('.').map(str::to_string).collect();
                let known = Known::of(&path);
                if known.text(&e.kind).is_some() {
                    resolved += 1;
                }
                assert_eq!(
                    input.known_text(known, &path),
                    input.field_text(&path),
                    "{p} of {}",
                    e.kind.name()
                );
            }
        }
        // Every typed kind had its text fields resolved (the test would
        // pass with nothing resolved at all otherwise).
        assert!(resolved >= 13, "{resolved} resolved");
    }

    /// The typed reading of a field is the JSON's: the same value, missing
    /// where the JSON has nothing (fields serde skips when empty included),
    /// floats as `serde_json` numbers (non-finite ones as null); as text
    /// for matchers, and as CEL values for field selections.
    #[test]
    fn typed_fields_read_what_the_json_holds() {
        for e in typed_events() {
            let input = Input::new(&e);
            let json = input.json().clone();
            let mut all = Vec::new();
            paths(&json, Vec::new(), &mut all);
            for extra in [
                "source",
                "kind",
                "key",
                "labels.missing",
                "labels.app.deeper",
                "values.missing",
                "values.cpu.deeper",
                "involved_object.deleted",
                "latency_ms",
                "status",
                "error",
                "count.deeper",
            ] {
                all.push(extra.split('.').map(str::to_string).collect());
            }
            let mut typed = 0;
            for path in &all {
                let from_json = path.iter().try_fold(&*json, |at, p| at.get(p));
                let what = format!("{} {}", e.kind.name(), path.join("."));
                match typed_field(&e.kind, path) {
                    Field::Compound => {}
                    Field::Missing => {
                        typed += 1;
                        assert_eq!(from_json, None, "{what}");
                    }
                    Field::Str(s) => {
                        typed += 1;
                        assert_eq!(from_json, Some(&serde_json::json!(s)), "{what}");
                    }
                    Field::Scalar(v) => {
                        typed += 1;
                        assert_eq!(from_json, Some(&v), "{what}");
                    }
                }
                // As a matcher or `group_by` reads it, envelope included.
                let text = match from_json {
                    Some(v) => json_text(v),
                    None => match path.join(".").as_str() {
                        "source" => e.source.to_string(),
                        "kind" => e.kind.name().to_string(),
                        "key" => e.key.to_string(),
                        _ => String::new(),
                    },
                };
                assert_eq!(input.field(path), text, "{what}");
                // As a CEL field selection, which reads the typed event.
                let source = format!("payload.{}", path.join("."));
                if let Ok(fast) = Expr::compile(&source)
                    && fast.path.is_some()
                {
                    let mut slow = Expr::compile(&source).unwrap();
                    slow.path = None;
                    let (fast_value, slow_value) = (fast.eval(&input).ok(), slow.eval(&input).ok());
                    assert_eq!(fast_value, slow_value, "{what}");
                    assert_eq!(fast.number(&input), slow.number(&input), "{what}");
                    let mut label = String::from("stale");
                    fast.label_into(&input, &mut label);
                    assert_eq!(label, slow.label(&input), "{what}");
                }
            }
            assert!(typed >= 4, "{}: {typed} paths read typed", e.kind.name());
        }
    }

    /// Conditions tested on the typed event give what CEL gives, on every
    /// typed kind: missing fields, fields of another type than the literal,
    /// nested paths past a string, `has`, and text CEL must still run.
    #[test]
    fn a_fast_condition_gives_what_cel_gives() {
        let fast = [
            "payload.count > 5 && payload.type == 'Warning'",
            "payload.count > 3",
            "payload.count >= 4 && payload.count <= 4 && payload.count != 5",
            "payload.count < -1",
            "payload.count == 4",
            "payload.count > 3.5",
            "payload.reason == \"BackOff\"",
            "payload.reason != 'BackOff'",
            "payload.reason < 'C'",
            "payload.labels.app == 'web'",
            "payload.labels.missing == 'web'",
            "payload.reason.deeper == 'x'",
            "payload.missing > 1",
            "payload.values == 1",
            "has(payload.values.cpu)",
            "has(payload.values.cpu) && payload.values.cpu > 0.9",
            "payload.values.cpu >= 0.95 && payload.values.cpu < 1.0",
            "payload.values.up == 1",
            "payload.values.up == 1.0",
            "payload.values.nan == 1.0",
            "payload.values.neg < 0",
            "payload.values.big > 1.0",
            "has(payload.labels.team)",
            "has(payload.missing)",
            "has(payload.labels)",
            "has(payload.involved_object.deleted)",
            "payload.involved_object.deleted",
            "payload.involved_object.deleted == true",
            "payload.ok",
            "payload.ok == false",
            "payload.ok && payload.status == 503",
            "payload.status >= 500 && payload.latency_ms > 10.0",
            "payload.error == 'HTTP 503'",
            "payload.name == 'nightly' && payload.labels.job == 'backup'",
            "payload.name",
            "payload.involved_object.name == 'web-1' && payload.cluster == 'prod'",
            "payload.first_seen == 'x'",
            "payload.summary.runs > 2",
        ];
        for src in fast {
            let expr = Expr::compile(src).unwrap();
            assert!(expr.conjunction.is_some(), "{src}");
            let mut slow = Expr::compile(src).unwrap();
            slow.conjunction = None;
            for e in typed_events() {
                let input = Input::new(&e);
                assert_eq!(
                    expr.test(&input),
                    slow.test(&input),
                    "{} {src}",
                    e.kind.name()
                );
            }
        }
        for cel_only in [
            "payload.count > 5 || payload.type == 'Warning'",
            "!has(payload.x)",
            "payload.reason == 'a && b'.upperAscii()",
            "payload.count + 1 > 5",
            "payload.count > 5u",
            "payload.count > 1e3",
            "payload.reason == r'x'",
            "payload.reason == 'it\\'s'",
            "payload.count == payload.status",
            "(payload.count > 5)",
            "event.kind == 'k8s.event'",
            "payload.reason in ['BackOff']",
            "size(payload) > 3",
            "payload['count'] > 3",
            "payload.count > 5 &&",
        ] {
            if let Ok(expr) = Expr::compile(cel_only) {
                assert!(expr.conjunction.is_none(), "{cel_only}");
            }
        }
        // A quoted `&&` is text, not a conjunction.
        let quoted = Expr::compile("payload.message == 'a && b'").unwrap();
        assert_eq!(
            quoted.conjunction,
            Some(Conjunction(vec![Part::Compare {
                path: vec!["message".into()],
                op: Compare::Eq,
                literal: Literal::Str("a && b".into()),
            }]))
        );
    }

    #[test]
    fn syntax_errors_carry_the_position_in_the_expression() {
        let cases = [
            ("payload.count >", 1, 16),
            ("payload.reason == 'x' &&& true", 1, 25),
            ("a +\n  (b", 2, 5),
        ];
        for (src, line, column) in cases {
            let err = Expr::compile(src).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{src}: {err:?}");
            assert!(!err.message.is_empty());
        }
    }
}
