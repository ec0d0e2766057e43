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

use crate::eventlog::Event;

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
            return match input.lookup(path) {
                Some(v) => Ok(to_cel(v)),
                None => Err(format!("no such key: {}", path.join("."))),
            };
        }
        self.program.execute(input.cel()).map_err(|e| e.to_string())
    }

    /// True only when the expression gives `true`.
    pub fn test(&self, input: &Input) -> bool {
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

/// One event prepared for rules: its payload as JSON (for matchers and
/// templates; shared, so the evidence a rule keeps for its templates is not
/// a copy) and, made on first use, as CEL values — most events meet only
/// matchers, and converting to CEL cost as much as the matching.
pub struct Input<'a> {
    pub event: &'a Event,
    pub json: Arc<serde_json::Value>,
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
        let json = match serde_json::to_value(&event.kind) {
            Ok(serde_json::Value::Object(mut doc)) => {
                doc.remove("payload").unwrap_or(serde_json::Value::Null)
            }
            _ => serde_json::Value::Null,
        };
        Input {
            event,
            json: Arc::new(json),
            reads,
            cel: std::cell::OnceCell::new(),
        }
    }

    /// The context with `payload` and `event` bound, made on first use.
    fn cel(&self) -> &Context<'static, 'static> {
        self.cel.get_or_init(|| {
            let mut ctx = Context::with_env(ENV.clone());
            let payload = match (&self.reads.payload, &*self.json) {
                (Some(fields), serde_json::Value::Object(map)) => Value::from(
                    fields
                        .iter()
                        .filter_map(|f| Some((f.clone(), to_cel(map.get(f)?))))
                        .collect::<std::collections::HashMap<String, Value>>(),
                ),
                _ => to_cel(&self.json),
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

    /// The payload field at `path`, if there is one.
    fn lookup(&self, path: &[String]) -> Option<&serde_json::Value> {
        path.iter().try_fold(&*self.json, |at, part| at.get(part))
    }

    /// A payload field by dotted path (`involved_object.name`), as text:
    /// strings as they are, numbers and bools written out, missing as `""`
    /// (as a missing label is in Alertmanager's matchers). `source`, `kind`
    /// and `key` not found in the payload are the envelope's.
    pub fn field(&self, path: &[String]) -> String {
        let mut at: &serde_json::Value = &self.json;
        for part in path {
            match at.get(part) {
                Some(next) => at = next,
                None => {
                    return match (path.len(), path[0].as_str()) {
                        (1, "source") => self.event.source.clone(),
                        (1, "kind") => self.event.kind.name().to_string(),
                        (1, "key") => self.event.key.clone(),
                        _ => String::new(),
                    };
                }
            }
        }
        match at {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
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
