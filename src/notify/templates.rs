//! Notification templates: tera 2, one engine per output format.
//!
//! Every template gets the [`Message`] as its context (field names as in
//! the struct: `title`, `status`, `alerts`, `counts`, `digest`, `actions`,
//! …), plus a few helpers computed from it:
//!
//! | variable | what |
//! | --- | --- |
//! | `firing_alerts`, `resolved_alerts` | `alerts` split by status, in message order; in a changes-only follow-up, `firing_alerts` leaves out the `unchanged` |
//! | `changes_only`, `unchanged_count` | a follow-up page listing only what changed, and how many firing alerts it counts instead of listing (`+ 37 still firing, unchanged`) |
//! | `in_place` | the message edits the group's last message (lists its whole state) |
//! | `top_severity` | the most urgent `severity` among the firing alerts (`""` if none) |
//! | `key_labels` | the label names worth a line of their own: `alertname`, `severity`, `namespace`, `pod`, `instance`, `job`, `service` |
//!
//! Optional fields (`digest`, an alert's `ends_at` and `runbook_url`) are
//! always present, `null` when unset, so `{% if digest %}` works.
//!
//! Filters beside tera's own:
//!
//! | filter | does |
//! | --- | --- |
//! | `json` | the value as a JSON literal (`"a\"b"`, `[1,2]`), marked safe; `<`, `>`, `&` as `\u003c`… |
//! | `datetime` | an RFC 3339 time as `2006-01-02 15:04:05 UTC`; `tz="Asia/Shanghai"` and `format="%H:%M"` (strftime) optional |
//! | `items` | a label map as a list of `{name, value}` sorted by name; `omit=[…]` leaves names out |
//! | `pick` | `keys=[…]`: those labels that exist, as `{name, value}`, in that order |
//! | `severity_emoji` | 🔴 critical/error, 🟠 warning, 🔵 info, ⚪ anything else |
//! | `severity_color` | a colour for a severity (`resolved` is green): `palette="hex"` (default), `"feishu"` (card header template) or `"wecom"` (`<font color>`) |
//! | `slack_escape` | `&`, `<`, `>` as Slack wants them in mrkdwn |
//! | `truncate_bytes` | `length=N`: at most N bytes, cut at a line break where possible (`{% filter truncate_bytes(length=4000) %}…{% endfilter %}`) |
//!
//! Escaping follows the template's extension: `.html` escapes every
//! `{{ }}` for HTML; `.json` escapes every `{{ }}` as the inside of a JSON
//! string (so a label value cannot break the structure; write `"{{ x }}"`,
//! or `{{ x | json }}` for a whole value) and the output must parse as JSON
//! (it is sent compacted); `.md` and `.txt` are not escaped.
//!
//! A page is never dropped because of a template: [`Templates::render`]
//! falls back to the shipped default, and if even that fails, to a plain
//! list of the alerts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use tera::{Context, ErrorKind, Kwargs, State, Tera, Value};

use super::{ActionLink, AlertData, Counts, Message, labels, severity_rank};

/// The shipped templates, by name.
const BUILTIN: [(&str, &str); 7] = [
    ("email.html", include_str!("../../templates/email.html")),
    ("email.txt", include_str!("../../templates/email.txt")),
    (
        "email.subject.txt",
        include_str!("../../templates/email.subject.txt"),
    ),
    ("slack.json", include_str!("../../templates/slack.json")),
    ("dingtalk.md", include_str!("../../templates/dingtalk.md")),
    ("wecom.md", include_str!("../../templates/wecom.md")),
    ("feishu.json", include_str!("../../templates/feishu.json")),
];

/// Labels a message shows on their own line; the rest are listed briefly.
pub const KEY_LABELS: [&str; 7] = [
    "alertname",
    "severity",
    "namespace",
    "pod",
    "instance",
    "job",
    "service",
];

/// A reason stored with a delivery stays short.
const MAX_REASON: usize = 400;

/// How a template's output is escaped, from its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Html,
    Json,
    Text,
}

impl Format {
    fn of(name: &str) -> Result<Format, String> {
        let ext = Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "html" | "htm" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            "txt" | "text" | "md" | "markdown" => Ok(Format::Text),
            _ => Err(format!(
                "the template format comes from the file extension: .html, .json, .md or .txt \
                 (got {name:?})"
            )),
        }
    }
}

/// The templates of every receiver: the shipped defaults and the ones the
/// config names. Shared by all deliveries (`Arc<Templates>`).
pub struct Templates {
    html: Tera,
    json: Tera,
    text: Tera,
}

impl Default for Templates {
    /// No templates yet, engines configured (escaping, filters).
    fn default() -> Self {
        Templates {
            html: engine(Format::Html),
            json: engine(Format::Json),
            text: engine(Format::Text),
        }
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self
            .html
            .get_template_names()
            .chain(self.json.get_template_names())
            .chain(self.text.get_template_names())
            .collect();
        names.sort_unstable();
        f.debug_struct("Templates").field("names", &names).finish()
    }
}

impl Templates {
    /// The shipped defaults, compiled into the binary from `templates/`:
    /// `email.html`, `email.txt`, `email.subject.txt`, `slack.json`,
    /// `dingtalk.md`, `wecom.md`, `feishu.json`.
    pub fn builtin() -> Templates {
        let mut t = Templates::default();
        for (name, source) in BUILTIN {
            // A broken shipped template is a bug the unit tests catch; at run
            // time it would fall back to the plain list, never panic.
            if let Err(e) = t.add_source(name, source) {
                tracing::error!(template = name, error = %e, "shipped template does not parse");
            }
        }
        t
    }

    /// Whether a template of that name is loaded.
    pub fn contains(&self, name: &str) -> bool {
        match Format::of(name) {
            Ok(format) => self.engine(format).contains_template(name),
            Err(_) => false,
        }
    }

    /// Load a receiver's own template file (format from its extension:
    /// `.html`, `.txt`, `.json`, `.md`); returns the name to render it by.
    /// Errors read `PATH:LINE:COL: what is wrong`.
    pub fn add_file(&mut self, path: &Path) -> Result<String, String> {
        let display = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| format!("{display}: cannot read template: {e}"))?;
        let mut name = display.clone();
        if BUILTIN.iter().any(|(b, _)| *b == name) {
            name = format!("./{name}");
        }
        self.add_source(&name, &source)
            .map_err(|e| e.replacen(&name, &display, 1))?;
        Ok(name)
    }

    /// An inline template string from config (an email `subject`), format
    /// from `name`'s extension (use `.txt`). Errors read
    /// `NAME:LINE:COL: what is wrong`.
    pub fn add_inline(&mut self, name: &str, source: &str) -> Result<(), String> {
        self.add_source(name, source)
    }

    /// For `fenghuo check`: parse a template file, and render it once with
    /// [`Templates::sample_message`] so unknown filters, bad variable paths
    /// and (for `.json`) output that is not JSON are found too, without
    /// keeping it. Errors as in [`Templates::add_file`].
    pub fn check_file(path: &Path) -> Result<(), String> {
        let mut t = Templates::default();
        let name = t.add_file(path)?;
        let display = path.display().to_string();
        let ctx = context(&Templates::sample_message()).map_err(|e| format!("{display}: {e}"))?;
        t.render_one(&name, &ctx)
            .map(drop)
            .map_err(|e| e.replacen(&name, &display, 1))
    }

    /// Render `custom` if given, else `default`. If `custom` fails (a render
    /// error, or a `.json` template whose output is not JSON), `default` is
    /// rendered instead and the reason returned: a page is never dropped
    /// because of a template. A failing default is a bug: the result is a
    /// plain list of the alerts (inside `{"text": …}` for a `.json`
    /// default), with the reason.
    pub fn render(
        &self,
        custom: Option<&str>,
        default: &str,
        msg: &Message,
    ) -> (String, Option<String>) {
        let ctx = match context(msg) {
            Ok(ctx) => ctx,
            Err(e) => {
                return (
                    plain_fallback(msg, default),
                    Some(short(format!("cannot build the template context: {e}"))),
                );
            }
        };
        let mut reason = None;
        if let Some(custom) = custom {
            match self.render_one(custom, &ctx) {
                Ok(out) => return (out, None),
                Err(e) => reason = Some(format!("template {e}; used the default {default}")),
            }
        }
        match self.render_one(default, &ctx) {
            Ok(out) => (out, reason.map(short)),
            Err(e) => {
                let why = match reason {
                    Some(r) => format!("{r}, which failed too: {e}"),
                    None => format!("default template {e}"),
                };
                (plain_fallback(msg, default), Some(short(why)))
            }
        }
    }

    /// A sample message for tests, `fenghuo check` and previews: three
    /// firing alerts (one new), one resolved, realistic labels and
    /// annotations, runbook and source links, action links.
    pub fn sample_message() -> Message {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default()
        };
        let prom = "http://prometheus.example.com:9090/graph?g0.expr=";
        let alerts = vec![
            AlertData {
                status: "firing".into(),
                fingerprint: "3f1c2a9be0d4a7c1".into(),
                labels: labels([
                    ("alertname", "HighErrorRate"),
                    ("severity", "critical"),
                    ("namespace", "prod"),
                    ("service", "checkout-api"),
                    ("pod", "checkout-api-7d9f8b6c5-x2x4q"),
                    ("job", "checkout-api"),
                    ("team", "payments"),
                    ("cluster", "cn-north-1"),
                ]),
                annotations: labels([
                    ("summary", "Checkout API 5xx error rate above 5%"),
                    (
                        "description",
                        "5.3% of requests to checkout-api failed over the last 5 minutes \
                         (threshold 5%). Most errors are 503 from the payments upstream.",
                    ),
                    (
                        "runbook_url",
                        "https://runbooks.example.com/payments/high-error-rate",
                    ),
                ]),
                starts_at: t("2025-06-01T07:57:00Z"),
                ends_at: None,
                generator_url: format!(
                    "{prom}sum(rate(http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D))&g0.tab=1"
                ),
                is_new: true,
                severity: "critical".into(),
                runbook_url: Some("https://runbooks.example.com/payments/high-error-rate".into()),
                summary: "Checkout API 5xx error rate above 5%".into(),
                duration: "3m".into(),
                unchanged: false,
            },
            AlertData {
                status: "firing".into(),
                fingerprint: "9a8b7c6d5e4f3a2b".into(),
                labels: labels([
                    ("alertname", "KubePodCrashLooping"),
                    ("severity", "warning"),
                    ("namespace", "prod"),
                    ("pod", "payments-worker-5c8d7f9b4-k7m2p"),
                    ("container", "worker"),
                    ("job", "kube-state-metrics"),
                    ("instance", "10.12.3.41:8080"),
                    ("team", "payments"),
                ]),
                annotations: labels([
                    (
                        "summary",
                        "Pod prod/payments-worker-5c8d7f9b4-k7m2p is crash looping",
                    ),
                    (
                        "description",
                        "Container worker restarted 7 times in the last 15 minutes \
                         (last exit: OOMKilled).",
                    ),
                ]),
                starts_at: t("2025-06-01T07:13:00Z"),
                ends_at: None,
                generator_url: format!(
                    "{prom}increase(kube_pod_container_status_restarts_total%5B15m%5D)%3E3&g0.tab=1"
                ),
                is_new: false,
                severity: "warning".into(),
                runbook_url: None,
                summary: "Pod prod/payments-worker-5c8d7f9b4-k7m2p is crash looping".into(),
                duration: "47m".into(),
                unchanged: false,
            },
            AlertData {
                status: "firing".into(),
                fingerprint: "0b1c2d3e4f5a6b7c".into(),
                labels: labels([
                    ("alertname", "NodeFilesystemAlmostFull"),
                    ("severity", "warning"),
                    ("namespace", "prod"),
                    ("instance", "node-07.cn-north-1.internal:9100"),
                    ("job", "node-exporter"),
                    ("device", "/dev/nvme1n1"),
                    ("mountpoint", "/data"),
                ]),
                annotations: labels([
                    ("summary", "磁盘使用率过高: node-07 /data 已使用 91%"),
                    (
                        "description",
                        "Filesystem /data on node-07 is 91% full and will fill up within \
                         6 hours at the current rate.",
                    ),
                    (
                        "runbook_url",
                        "https://runbooks.example.com/node/filesystem-almost-full",
                    ),
                ]),
                starts_at: t("2025-06-01T05:55:00Z"),
                ends_at: None,
                generator_url: format!(
                    "{prom}node_filesystem_avail_bytes%2Fnode_filesystem_size_bytes%3C0.1&g0.tab=1"
                ),
                is_new: false,
                severity: "warning".into(),
                runbook_url: Some(
                    "https://runbooks.example.com/node/filesystem-almost-full".into(),
                ),
                summary: "磁盘使用率过高: node-07 /data 已使用 91%".into(),
                duration: "2h5m".into(),
                unchanged: false,
            },
            AlertData {
                status: "resolved".into(),
                fingerprint: "7e6d5c4b3a2f1e0d".into(),
                labels: labels([
                    ("alertname", "HighLatency"),
                    ("severity", "warning"),
                    ("namespace", "prod"),
                    ("service", "search-api"),
                    ("job", "search-api"),
                ]),
                annotations: labels([
                    ("summary", "search-api p99 latency above 800ms"),
                    (
                        "description",
                        "p99 latency of search-api was 1.2s over 10 minutes.",
                    ),
                ]),
                starts_at: t("2025-06-01T07:20:00Z"),
                ends_at: Some(t("2025-06-01T07:52:00Z")),
                generator_url: format!(
                    "{prom}histogram_quantile(0.99%2C%20rate(http_request_duration_seconds_bucket%5B5m%5D))&g0.tab=1"
                ),
                is_new: false,
                severity: "warning".into(),
                runbook_url: None,
                summary: "search-api p99 latency above 800ms".into(),
                duration: "32m".into(),
                unchanged: false,
            },
        ];
        let common_labels = super::common_pairs(alerts.iter().map(|a| &a.labels));
        let common_annotations = super::common_pairs(alerts.iter().map(|a| &a.annotations));
        Message {
            receiver: "payments-oncall".into(),
            status: "firing".into(),
            group_key: "{}/{team=\"payments\"}:{namespace=\"prod\"}".into(),
            group_labels: labels([("namespace", "prod")]),
            common_labels,
            common_annotations,
            external_url: "https://fenghuo.example.com".into(),
            counts: Counts {
                firing: 3,
                resolved: 1,
                new: 1,
            },
            repeat: false,
            title: "[FIRING:3] namespace=prod".into(),
            digest: None,
            actions: vec![
                ActionLink {
                    label: "Acknowledge".into(),
                    url: "https://fenghuo.example.com/act/eyJpIjoiaW5jLTQyMTEifQ.c2ln".into(),
                },
                ActionLink {
                    label: "Silence 1h".into(),
                    url: "https://fenghuo.example.com/silence/new?group=8f2c1e&for=1h".into(),
                },
                ActionLink {
                    label: "Open incident".into(),
                    url: "https://fenghuo.example.com/incidents/8f2c1e".into(),
                },
            ],
            due_seqs: vec![4211],
            alerts,
            to: Vec::new(),
            follow_up: Default::default(),
            incident: Some(crate::notify::IncidentNote {
                id: "inc-4211".into(),
                status: "acknowledged".into(),
                acked_by: Some("bob".into()),
                acked_at: Some("2026-11-25T19:07:00Z".parse().unwrap()),
            }),
            symptoms: "12 pods and 2 services affected".into(),
        }
    }

    fn engine(&self, format: Format) -> &Tera {
        match format {
            Format::Html => &self.html,
            Format::Json => &self.json,
            Format::Text => &self.text,
        }
    }

    fn add_source(&mut self, name: &str, source: &str) -> Result<(), String> {
        let format = Format::of(name).map_err(|e| format!("{name}: {e}"))?;
        let engine = match format {
            Format::Html => &mut self.html,
            Format::Json => &mut self.json,
            Format::Text => &mut self.text,
        };
        engine
            .add_raw_template(name, source)
            .map_err(|e| describe(name, &e))
    }

    /// Render one template; `.json` output must parse and is compacted.
    /// Errors start with the template name (`NAME:LINE:COL: …`).
    fn render_one(&self, name: &str, ctx: &Context) -> Result<String, String> {
        let format = Format::of(name).map_err(|e| format!("{name}: {e}"))?;
        let engine = self.engine(format);
        if !engine.contains_template(name) {
            return Err(format!("{name}: no such template is loaded"));
        }
        let out = engine.render(name, ctx).map_err(|e| describe(name, &e))?;
        if format == Format::Json {
            let value: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
                format!(
                    "{name}: the output is not valid JSON (output line {} column {}: {e})",
                    e.line(),
                    e.column()
                )
            })?;
            return serde_json::to_string(&value).map_err(|e| format!("{name}: {e}"));
        }
        Ok(out)
    }
}

pub(crate) fn engine(format: Format) -> Tera {
    let mut tera = Tera::new();
    match format {
        // An empty suffix matches every name: escaping follows the engine,
        // so `X.HTML` or `x.htm` cannot slip through unescaped.
        Format::Html => tera.autoescape_on([""]),
        Format::Json => {
            tera.autoescape_on([""]);
            tera.set_escape_fn(escape_json);
        }
        Format::Text => tera.autoescape_on(Vec::<&'static str>::new()),
    }
    tera.register_filter("json", filter_json);
    tera.register_filter("datetime", filter_datetime);
    tera.register_filter("items", filter_items);
    tera.register_filter("pick", filter_pick);
    tera.register_filter("severity_emoji", filter_severity_emoji);
    tera.register_filter("severity_color", filter_severity_color);
    tera.register_filter("slack_escape", filter_slack_escape);
    tera.register_filter("truncate_bytes", filter_truncate_bytes);
    tera
}

/// `PATH:LINE:COL: message` for a tera error (tera's own report draws the
/// source with arrows, which does not fit a log line or a config error).
pub(crate) fn describe(name: &str, e: &tera::Error) -> String {
    match e.kind() {
        ErrorKind::SyntaxError(report) | ErrorKind::RenderingError(report) => {
            let span = report.span();
            let file = if report.filename().is_empty() {
                name
            } else {
                report.filename()
            };
            format!(
                "{file}:{}:{}: {}",
                span.start_line,
                span.start_col + 1,
                report.message()
            )
        }
        // Errors found after parsing (unknown filter, test, function,
        // include) come as tera's rendered reports: take message and place
        // from them.
        ErrorKind::Msg(text) => {
            let mut out = Vec::new();
            let mut message = None;
            for line in text.lines() {
                if let Some(m) = line.strip_prefix("error: ") {
                    message = Some(m.to_string());
                } else if let Some(at) = line.trim_start().strip_prefix("--> ")
                    && let Some(m) = message.take()
                {
                    let mut parts = at.rsplitn(3, ':');
                    let (col, line_no, file) = (parts.next(), parts.next(), parts.next());
                    match (col, line_no, file) {
                        (Some(c), Some(l), Some(f)) => out.push(format!("{f}:{l}:{c}: {m}")),
                        _ => out.push(format!("{name}: {m}")),
                    }
                }
            }
            if let Some(m) = message {
                out.push(format!("{name}: {m}"));
            }
            if out.is_empty() {
                format!("{name}: {text}")
            } else {
                out.join("; ")
            }
        }
        _ => format!("{name}: {e}"),
    }
}

fn short(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The context every template gets: the message, optional fields as
/// `null`, and the helpers listed in the module docs.
fn context(msg: &Message) -> Result<Context, String> {
    let mut value = serde_json::to_value(msg).map_err(|e| e.to_string())?;
    let map = value
        .as_object_mut()
        .ok_or("a message serialises to an object")?;
    map.entry("digest").or_insert(serde_json::Value::Null);
    map.entry("symptoms").or_insert(serde_json::Value::from(""));
    let mut firing = Vec::new();
    let mut resolved = Vec::new();
    if let Some(alerts) = map.get_mut("alerts").and_then(|a| a.as_array_mut()) {
        for alert in alerts.iter_mut() {
            if let Some(a) = alert.as_object_mut() {
                a.entry("ends_at").or_insert(serde_json::Value::Null);
                a.entry("runbook_url").or_insert(serde_json::Value::Null);
            }
            if alert.get("status").and_then(|s| s.as_str()) == Some("resolved") {
                resolved.push(alert.clone());
            } else if !(msg.follow_up.changes_only
                && alert.get("unchanged").and_then(|u| u.as_bool()) == Some(true))
            {
                // A changes-only follow-up counts the unchanged instead.
                firing.push(alert.clone());
            }
        }
    }
    let top_severity = msg
        .alerts
        .iter()
        .filter(|a| a.status != "resolved")
        .min_by_key(|a| severity_rank(&a.severity))
        .map(|a| a.severity.clone())
        .unwrap_or_default();
    map.insert("firing_alerts".into(), firing.into());
    map.insert("resolved_alerts".into(), resolved.into());
    map.insert("top_severity".into(), top_severity.into());
    map.insert(
        "key_labels".into(),
        KEY_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    Context::from_serialize(&value).map_err(|e| e.to_string())
}

/// What is sent when even the shipped template fails (a bug): every alert
/// on a line, so the page still says what is wrong.
fn plain_fallback(msg: &Message, default: &str) -> String {
    let mut text = format!("{}\n", msg.title);
    for a in &msg.alerts {
        let _ = write!(
            text,
            "\n[{}] {} ({}) since {}",
            a.status.to_uppercase(),
            a.summary,
            a.severity,
            a.starts_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        let pairs: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(text, "\n  {}", pairs.join(", "));
        if !a.generator_url.is_empty() {
            let _ = write!(text, "\n  source: {}", a.generator_url);
        }
    }
    for action in &msg.actions {
        let _ = write!(text, "\n{}: {}", action.label, action.url);
    }
    if !msg.external_url.is_empty() {
        let _ = write!(text, "\n\n{}", msg.external_url);
    }
    text.push('\n');
    match Format::of(default) {
        Ok(Format::Json) => serde_json::json!({ "text": text }).to_string(),
        Ok(Format::Html) => {
            let mut escaped = Vec::new();
            let _ = tera::escape_html(&text, &mut escaped);
            format!(
                "<pre style=\"font-family:monospace;white-space:pre-wrap\">{}</pre>",
                String::from_utf8_lossy(&escaped)
            )
        }
        _ => text,
    }
}

/// `.json` templates: every `{{ }}` is written as the inside of a JSON
/// string literal.
fn escape_json(input: &str, out: &mut dyn io::Write) -> io::Result<()> {
    let mut buf = String::with_capacity(input.len() + 8);
    push_json_escaped(&mut buf, input);
    out.write_all(buf.as_bytes())
}

fn push_json_escaped(buf: &mut String, input: &str) {
    for c in input.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            // Harmless in JSON, and keeps the output safe to embed in HTML.
            '<' => buf.push_str("\\u003c"),
            '>' => buf.push_str("\\u003e"),
            '&' => buf.push_str("\\u0026"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
}

fn filter_json(value: &Value, kwargs: Kwargs, _: &State) -> tera::TeraResult<Value> {
    let pretty = kwargs.get::<bool>("pretty")?.unwrap_or(false);
    let json = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| tera::Error::message(format!("json: {e}")))?;
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    Ok(Value::safe_string(&json))
}

fn filter_datetime(value: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let time = DateTime::parse_from_rfc3339(value)
        .map_err(|e| {
            tera::Error::message(format!(
                "datetime: expected an RFC 3339 time, got {value:?} ({e})"
            ))
        })?
        .with_timezone(&Utc);
    let format = kwargs.get::<&str>("format")?;
    let tz = kwargs.get::<&str>("tz")?;
    if let Some(f) = format
        && chrono::format::StrftimeItems::new(f)
            .any(|item| matches!(item, chrono::format::Item::Error))
    {
        return Err(tera::Error::message(format!(
            "datetime: bad format {f:?} (strftime, e.g. \"%Y-%m-%d %H:%M\")"
        )));
    }
    let mut out = String::new();
    let written = match tz {
        None | Some("UTC") => write!(
            out,
            "{}",
            time.format(format.unwrap_or("%Y-%m-%d %H:%M:%S UTC"))
        ),
        Some(name) => {
            let zone: chrono_tz::Tz = name.parse().map_err(|_| {
                tera::Error::message(format!("datetime: unknown time zone {name:?}"))
            })?;
            write!(
                out,
                "{}",
                time.with_timezone(&zone)
                    .format(format.unwrap_or("%Y-%m-%d %H:%M:%S %Z"))
            )
        }
    };
    written.map_err(|_| tera::Error::message("datetime: cannot format"))?;
    Ok(out)
}

fn label_pairs<'a>(
    value: &'a Value,
    filter: &str,
) -> tera::TeraResult<BTreeMap<String, &'a Value>> {
    let map = value.as_map().ok_or_else(|| {
        tera::Error::message(format!(
            "{filter}: expected a map of labels, got a {}",
            value.name()
        ))
    })?;
    Ok(map
        .iter()
        .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v)))
        .collect())
}

fn pair(name: &str, value: &Value) -> Value {
    let mut map = tera::Map::new();
    map.insert("name".to_string().into(), Value::from(name));
    map.insert("value".to_string().into(), value.clone());
    Value::from(map)
}

fn filter_items(value: &Value, kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<Value>> {
    let omit: Vec<String> = kwargs.get::<Vec<String>>("omit")?.unwrap_or_default();
    Ok(label_pairs(value, "items")?
        .into_iter()
        .filter(|(k, _)| !omit.contains(k))
        .map(|(k, v)| pair(&k, v))
        .collect())
}

fn filter_pick(value: &Value, kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<Value>> {
    let keys: Vec<String> = kwargs.must_get::<Vec<String>>("keys")?;
    let pairs = label_pairs(value, "pick")?;
    Ok(keys
        .iter()
        .filter_map(|k| pairs.get(k).map(|v| pair(k, v)))
        .collect())
}

fn filter_severity_emoji(value: &str, _: Kwargs, _: &State) -> &'static str {
    if value == "resolved" {
        return "✅";
    }
    match severity_rank(value) {
        0 | 1 => "🔴",
        2 => "🟠",
        3 => "🔵",
        _ => "⚪",
    }
}

fn filter_severity_color(value: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let palette = kwargs.get::<&str>("palette")?.unwrap_or("hex");
    // critical, error, warning, info, other, resolved
    let colours: [&str; 6] = match palette {
        "hex" => [
            "#d1242f", "#d1242f", "#e16f24", "#0969da", "#6e7781", "#1a7f37",
        ],
        "feishu" => ["red", "carmine", "orange", "blue", "grey", "green"],
        "wecom" => ["warning", "warning", "warning", "info", "comment", "info"],
        other => {
            return Err(tera::Error::message(format!(
                "severity_color: unknown palette {other:?} (hex, feishu, wecom)"
            )));
        }
    };
    let i = if value == "resolved" {
        5
    } else {
        match severity_rank(value) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 3,
            _ => 4,
        }
    };
    Ok(colours[i].to_string())
}

fn filter_slack_escape(value: &str, _: Kwargs, _: &State) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `length` bytes of UTF-8, cut at the last line break that keeps
/// at least half, else at a character boundary, and `end` (default `…`)
/// appended: for IM robots that refuse long messages.
fn filter_truncate_bytes(value: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<String> {
    let length = kwargs.must_get::<usize>("length")?;
    let end = kwargs.get::<&str>("end")?.unwrap_or("\n…");
    if value.len() <= length {
        return Ok(value.to_string());
    }
    let mut cut = length.saturating_sub(end.len());
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(nl) = value[..cut].rfind('\n')
        && nl >= cut / 2
    {
        cut = nl;
    }
    Ok(format!("{}{end}", &value[..cut]))
}

/// A name for an inline template derived from its content, so the same
/// string in two receivers is one template.
pub fn inline_name(prefix: &str, source: &str, extension: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    format!("{prefix}.{:016x}.{extension}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Digest, DigestGroup, DigestReason};

    const DEFAULTS: [&str; 7] = [
        "email.html",
        "email.txt",
        "email.subject.txt",
        "slack.json",
        "dingtalk.md",
        "wecom.md",
        "feishu.json",
    ];

    fn hostile() -> Message {
        let mut msg = Templates::sample_message();
        let a = &mut msg.alerts[0];
        a.labels.insert(
            "pod".into(),
            "<script>alert(1)</script>\"><img src=x onerror=alert(2)>".into(),
        );
        a.labels
            .insert("note".into(), "quote \" back\\slash\nnewline\ttab".into());
        a.summary = "evil \"}] summary <b>bold</b>\n{\"x\":1}".into();
        msg.symptoms = "3 <script>x</script>\"}] pods affected".into();
        msg
    }

    /// A changes-only follow-up: every shipped template that lists alerts
    /// lists the new and the resolved ones and counts the unchanged,
    /// instead of re-sending every alert of a growing group.
    #[test]
    fn a_follow_up_lists_what_changed_and_counts_the_unchanged() {
        let t = Templates::builtin();
        let mut msg = Templates::sample_message();
        for a in msg.alerts.iter_mut() {
            a.unchanged = a.status == "firing" && !a.is_new;
        }
        msg.follow_up = crate::notify::FollowUp {
            changes_only: true,
            unchanged_count: 2,
            in_place: false,
        };
        for name in DEFAULTS.iter().filter(|n| **n != "email.subject.txt") {
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
            assert!(
                out.contains("5xx error rate above 5"),
                "{name}: the new alert\n{out}"
            );
            assert!(
                out.contains("search-api p99 latency"),
                "{name}: the resolved\n{out}"
            );
            for unchanged in ["crash looping", "node-07"] {
                assert!(!out.contains(unchanged), "{name}: lists {unchanged}\n{out}");
            }
            assert!(out.contains("still firing, unchanged"), "{name}\n{out}");
            assert!(out.contains('2'), "{name}");
        }
        // The same message as a full follow-up lists them all.
        msg.follow_up.changes_only = false;
        for name in DEFAULTS.iter().filter(|n| **n != "email.subject.txt") {
            let (out, _) = t.render(None, name, &msg);
            assert!(out.contains("crash looping"), "{name}");
            assert!(!out.contains("still firing, unchanged"), "{name}");
        }
    }

    #[test]
    fn every_default_renders_the_sample() {
        let t = Templates::builtin();
        let msg = Templates::sample_message();
        for name in DEFAULTS {
            assert!(t.contains(name), "{name} not loaded");
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
            assert!(!out.trim().is_empty(), "{name} is empty");
            if name != "email.subject.txt" {
                assert!(out.contains("磁盘使用率过高"), "{name}: {out}");
                assert!(
                    out.contains("Checkout API 5xx error rate above 5%"),
                    "{name}"
                );
            }
            if name.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&out)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
            }
        }
    }

    #[test]
    fn resolved_only_and_minimal_messages_render() {
        let t = Templates::builtin();
        let mut msg = Templates::sample_message();
        msg.alerts.retain(|a| a.status == "resolved");
        msg.status = "resolved".into();
        msg.counts = Counts {
            firing: 0,
            resolved: 1,
            new: 0,
        };
        msg.actions.clear();
        msg.external_url.clear();
        msg.title = "[RESOLVED] namespace=prod".into();
        for name in DEFAULTS {
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}: {out}");
            assert!(
                out.contains("RESOLVED") || out.contains("Resolved"),
                "{name}"
            );
        }
        // An alert with no labels beyond its name, no annotations.
        let mut msg = Templates::sample_message();
        msg.alerts.truncate(1);
        let a = &mut msg.alerts[0];
        a.labels = labels([("alertname", "Bare")]);
        a.annotations.clear();
        a.runbook_url = None;
        a.generator_url.clear();
        a.severity.clear();
        a.summary = "Bare".into();
        for name in DEFAULTS {
            let (_, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
        }
    }

    #[test]
    fn html_escapes_a_hostile_label() {
        let t = Templates::builtin();
        let (out, fallback) = t.render(None, "email.html", &hostile());
        assert_eq!(fallback, None);
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains("<b>bold"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(out.contains("&quot;&gt;&lt;img"), "{out}");
    }

    #[test]
    fn json_escapes_a_hostile_label() {
        let t = Templates::builtin();
        let msg = hostile();
        for name in ["slack.json", "feishu.json"] {
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
            let value: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
            let all = collect_strings(&value).join("\n");
            assert!(
                all.contains("evil \"}] summary <b>bold</b>\n{\"x\":1}")
                    || all.contains("evil \"}] summary &lt;b&gt;bold&lt;/b&gt;\n{\"x\":1}"),
                "{name}: summary not intact: {all}"
            );
            assert!(
                all.contains("<script>alert(1)</script>\"><img src=x onerror=alert(2)>")
                    || all.contains(
                        "&lt;script&gt;alert(1)&lt;/script&gt;\"&gt;&lt;img src=x onerror=alert(2)&gt;"
                    ),
                "{name}: pod not intact: {all}"
            );
        }
        // A custom JSON template with a raw label inside a string.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.json");
        std::fs::write(
            &path,
            r#"{"pod": "{{ alerts[0].labels.pod }}", "note": "{{ alerts[0].labels.note }}", "n": {{ counts.firing }}, "labels": {{ alerts[0].labels | json }}}"#,
        )
        .unwrap();
        let mut t = Templates::builtin();
        let name = t.add_file(&path).unwrap();
        let (out, fallback) = t.render(Some(&name), "slack.json", &msg);
        assert_eq!(fallback, None, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["pod"], &msg.alerts[0].labels["pod"]);
        assert_eq!(v["note"], "quote \" back\\slash\nnewline\ttab");
        assert_eq!(v["n"], 3);
        assert_eq!(v["labels"]["note"], "quote \" back\\slash\nnewline\ttab");
    }

    fn collect_strings(v: &serde_json::Value) -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().flat_map(collect_strings).collect(),
            serde_json::Value::Object(o) => o.values().flat_map(collect_strings).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn syntax_error_is_refused_with_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.md");
        std::fs::write(
            &path,
            "# {{ title }}\n\n{% for a in alerts %}\n- {{ a.summary \n",
        )
        .unwrap();
        let mut t = Templates::builtin();
        let err = t.add_file(&path).unwrap_err();
        let prefix = format!("{}:4:", path.display());
        assert!(err.starts_with(&prefix), "{err}");
        assert!(
            Templates::check_file(&path)
                .unwrap_err()
                .starts_with(&prefix)
        );

        let path = dir.path().join("filter.txt");
        std::fs::write(&path, "ok\n{{ title | no_such_filter }}\n").unwrap();
        let err = t.add_file(&path).unwrap_err();
        assert!(
            err.starts_with(&format!("{}:2:", path.display())) && err.contains("no_such_filter"),
            "{err}"
        );

        let path = dir.path().join("mail.xml");
        std::fs::write(&path, "{{ title }}").unwrap();
        assert!(
            t.add_file(&path)
                .unwrap_err()
                .contains(".html, .json, .md or .txt")
        );
    }

    #[test]
    fn render_failure_falls_back_to_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Templates::builtin();
        // A bad variable path.
        let path = dir.path().join("bad.md");
        std::fs::write(
            &path,
            "# {{ title }}\n{{ alerts[0].labels.no_such_label }}\n",
        )
        .unwrap();
        let name = t.add_file(&path).unwrap();
        let msg = Templates::sample_message();
        let (out, reason) = t.render(Some(&name), "dingtalk.md", &msg);
        let (default, _) = t.render(None, "dingtalk.md", &msg);
        assert_eq!(out, default);
        let reason = reason.expect("a reason");
        assert!(
            reason.contains(&format!("{}:2:", path.display())),
            "{reason}"
        );
        assert!(reason.contains("dingtalk.md"), "{reason}");
        let err = Templates::check_file(&path).unwrap_err();
        assert!(err.starts_with(&format!("{}:2:", path.display())), "{err}");

        // A filter on the wrong type.
        let path = dir.path().join("type.txt");
        std::fs::write(&path, "{{ counts | datetime }}").unwrap();
        let name = t.add_file(&path).unwrap();
        let (out, reason) = t.render(Some(&name), "email.txt", &msg);
        assert!(out.contains("Checkout API"));
        assert!(reason.unwrap().contains("type.txt:1:"));

        // JSON that does not parse.
        let path = dir.path().join("notjson.json");
        std::fs::write(&path, r#"{"text": "{{ title }}",}"#).unwrap();
        let name = t.add_file(&path).unwrap();
        let (out, reason) = t.render(Some(&name), "slack.json", &msg);
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
        assert!(reason.unwrap().contains("not valid JSON"));
        assert!(
            Templates::check_file(&path)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn a_failing_default_gives_the_plain_list() {
        let mut t = Templates::default();
        t.add_inline("broken.json", "{{ nope }}").unwrap();
        let msg = Templates::sample_message();
        let (out, reason) = t.render(None, "broken.json", &msg);
        assert!(reason.unwrap().contains("broken.json"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(
            text.contains("[FIRING:3]") && text.contains("磁盘使用率过高"),
            "{text}"
        );
        let (out, reason) = t.render(None, "missing.txt", &msg);
        assert!(reason.unwrap().contains("missing.txt"));
        assert!(out.contains("HighErrorRate"));
    }

    #[test]
    fn digest_is_rendered() {
        let t = Templates::builtin();
        let mut msg = Templates::sample_message();
        msg.digest = Some(Digest {
            groups: vec![
                DigestGroup {
                    group_labels: labels([("namespace", "staging")]),
                    firing: 4,
                    resolved: 0,
                    title: "[FIRING:4] namespace=staging".into(),
                },
                DigestGroup {
                    group_labels: labels([("namespace", "dev")]),
                    firing: 0,
                    resolved: 2,
                    title: "[RESOLVED] namespace=dev".into(),
                },
            ],
            more_alerts: 17,
            more_groups: 5,
            reason: DigestReason::RateLimit,
            until: None,
        });
        for name in DEFAULTS.iter().filter(|n| **n != "email.subject.txt") {
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
            assert!(out.contains("17 more alerts in 5 groups"), "{name}: {out}");
            assert!(
                out.contains("[FIRING:4] namespace=staging"),
                "{name}: {out}"
            );
            assert!(out.to_lowercase().contains("also pending"), "{name}: {out}");
        }
        // The resolves held for the receiver's digest window say so, not
        // "also pending" as a rate limit's surplus does.
        msg.digest.as_mut().unwrap().reason = DigestReason::Resolved;
        for name in DEFAULTS.iter().filter(|n| **n != "email.subject.txt") {
            let (out, fallback) = t.render(None, name, &msg);
            assert_eq!(fallback, None, "{name}");
            assert!(
                out.to_lowercase().contains("resolved in this digest"),
                "{name}: {out}"
            );
            assert!(
                !out.to_lowercase().contains("also pending"),
                "{name}: {out}"
            );
        }
    }

    #[test]
    fn actions_and_links_are_rendered() {
        let t = Templates::builtin();
        let mut msg = Templates::sample_message();
        msg.to = vec![crate::eventlog::event::Recipient {
            name: "alice".into(),
            email: Some("alice@example.com".into()),
            mentions: [("dingtalk_mobile".to_string(), "13800000000".to_string())].into(),
        }];
        for name in DEFAULTS.iter().filter(|n| **n != "email.subject.txt") {
            let (out, _) = t.render(None, name, &msg);
            let out = out.replace("&amp;", "&").replace("\\u0026", "&");
            assert!(out.contains("Acknowledge"), "{name}");
            assert!(
                out.contains("https://fenghuo.example.com/act/eyJpIjoiaW5jLTQyMTEifQ.c2ln"),
                "{name}"
            );
            // Who took the incident, and whom the page is for.
            assert!(out.contains("acknowledged by"), "{name}: {out}");
            assert!(out.contains("bob"), "{name}: {out}");
            assert!(out.contains("alice"), "{name}: {out}");
            assert!(
                out.contains("https://runbooks.example.com/payments/high-error-rate"),
                "{name}"
            );
            assert!(out.contains("NEW"), "{name}");
        }
        let (slack, _) = t.render(None, "slack.json", &msg);
        let v: serde_json::Value = serde_json::from_str(&slack).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(actions["elements"][0]["url"], msg.actions[0].url);
        let (card, _) = t.render(None, "feishu.json", &msg);
        let v: serde_json::Value = serde_json::from_str(&card).unwrap();
        assert_eq!(v["header"]["template"], "red");
    }

    #[test]
    fn im_messages_stay_bounded() {
        let t = Templates::builtin();
        let mut msg = Templates::sample_message();
        let first = msg.alerts[2].clone();
        msg.alerts = (0..40)
            .map(|i| {
                let mut a = first.clone();
                a.labels.insert(
                    "pod".into(),
                    format!("storage-node-{i}-很长的名字-{}", "x".repeat(60)),
                );
                a.summary = format!("磁盘使用率过高 {i}: {}", "长".repeat(100));
                a.annotations
                    .insert("description".into(), "描述".repeat(200));
                a
            })
            .collect();
        msg.counts = Counts {
            firing: 40,
            resolved: 0,
            new: 0,
        };
        let (wecom, _) = t.render(None, "wecom.md", &msg);
        assert!(wecom.len() < 4096, "wecom is {} bytes", wecom.len());
        assert!(wecom.contains("more firing alerts"), "{wecom}");
        assert!(wecom.contains("[Acknowledge]("), "{wecom}");
        let (ding, _) = t.render(None, "dingtalk.md", &msg);
        assert!(ding.len() < 20_000, "dingtalk is {} bytes", ding.len());
        let (slack, fallback) = t.render(None, "slack.json", &msg);
        assert_eq!(fallback, None);
        let v: serde_json::Value = serde_json::from_str(&slack).unwrap();
        assert!(v["blocks"].as_array().unwrap().len() <= 50);
        let (card, fallback) = t.render(None, "feishu.json", &msg);
        assert_eq!(fallback, None);
        assert!(card.len() < 30_000);
    }

    #[test]
    fn filters() {
        let mut t = Templates::default();
        t.add_inline(
            "f.txt",
            "{{ alerts[0].starts_at | datetime }}|{{ alerts[0].starts_at | datetime(tz=\"Asia/Shanghai\", format=\"%m-%d %H:%M\") }}|\
             {% for l in alerts[0].labels | pick(keys=[\"severity\", \"nope\", \"alertname\"]) %}{{ l.name }}={{ l.value }},{% endfor %}|\
             {% for l in alerts[0].labels | items(omit=key_labels) %}{{ l.name }},{% endfor %}|\
             {{ \"critical\" | severity_emoji }}{{ \"warning\" | severity_emoji }}{{ \"info\" | severity_emoji }}|\
             {{ top_severity | severity_color(palette=\"feishu\") }}|{{ \"a<b>&\" | slack_escape }}|{{ group_labels | json }}",
        )
        .unwrap();
        let (out, reason) = t.render(None, "f.txt", &Templates::sample_message());
        assert_eq!(reason, None, "{out}");
        assert_eq!(
            out,
            "2025-06-01 07:57:00 UTC|06-01 15:57|severity=critical,alertname=HighErrorRate,|\
             cluster,team,|🔴🟠🔵|red|a&lt;b&gt;&amp;|{\"namespace\":\"prod\"}"
        );
        t.add_inline("bad.txt", "{{ title | datetime(format=\"%Q\") }}")
            .unwrap();
        assert!(
            t.render(None, "bad.txt", &Templates::sample_message())
                .1
                .is_some()
        );
    }

    #[test]
    fn templates_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Templates>();
    }

    #[test]
    fn inline_names_are_stable() {
        assert_eq!(
            inline_name("email.subject", "{{ title }}", "txt"),
            inline_name("email.subject", "{{ title }}", "txt")
        );
        assert!(inline_name("s", "a", "txt").ends_with(".txt"));
    }
}
