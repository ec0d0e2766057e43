//! Email: Alertmanager's `email_configs`, sent over SMTP with lettre.
//!
//! Field names are Alertmanager's (`to`, `from`, `smarthost`, `hello`,
//! `auth_*`, `require_tls`, `tls_config`, `headers`, `send_resolved`), with
//! the SMTP defaults of `global:` (`smtp_from`, `smtp_smarthost`, …) as in
//! Alertmanager. Alertmanager's `html`/`text` are Go templates, which tera
//! cannot read: they are refused with a pointer to Fenghuo's own fields:
//!
//! | field | what |
//! | --- | --- |
//! | `html_template`, `text_template` | a tera template file (`.html`; `.txt`/`.md`), relative to `notify.templates_dir`; default the shipped `email.html` / `email.txt` |
//! | `subject` | a tera template string (default the message title); `headers.Subject` is the same thing |
//! | `cc` | more recipients, shown in `Cc` (a list, or a comma-separated string) |
//! | `tls` | `starttls`, `implicit` (port 465 style), `opportunistic` or `none`; default implicit on port 465 (or with Alertmanager's `force_implicit_tls`), else STARTTLS when `require_tls` (default true), else none, as Alertmanager does |
//!
//! The password is sent only over TLS (or to a loopback smarthost), never
//! appears in an error, and is scrubbed from whatever the server answers.
//! Delivery: 250 is delivered; 4xx replies, connection errors and timeouts
//! are retried; 5xx replies (a wrong password, a refused recipient) are not.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use lettre::{AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Deserializer};

use crate::notify::config::BuildEnv;
use crate::notify::secret::{self, Secret};
use crate::notify::templates::inline_name;
use crate::notify::{
    Delivered, DeliveryError, EmailMessage, Message, Notifier, Payload, Rendered, Templates,
};

/// One `email_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Alertmanager's default for email is `false`.
    pub send_resolved: Option<bool>,
    /// Recipients, comma-separated as in Alertmanager.
    pub to: Option<String>,
    pub from: Option<String>,
    /// `host:port`.
    pub smarthost: Option<String>,
    /// The name in EHLO.
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    pub auth_password_file: Option<String>,
    /// CRAM-MD5, which Fenghuo does not speak; accepted so an
    /// alertmanager.yml loads, refused when it is the only credential.
    pub auth_secret: Option<Secret>,
    pub auth_secret_file: Option<String>,
    /// The PLAIN authorization identity; only an empty one or the user
    /// name itself is supported.
    pub auth_identity: Option<String>,
    pub require_tls: Option<bool>,
    /// Alertmanager ≥ 0.28: TLS from the first byte, whatever the port.
    pub force_implicit_tls: Option<bool>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Alertmanager's Go template strings: refused, see the module docs.
    pub html: Option<String>,
    pub text: Option<String>,
    pub html_template: Option<String>,
    pub text_template: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub tls: Option<TlsMode>,
}

/// Alertmanager's `tls_config`, the parts that apply to SMTP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` or `TLS13`.
    pub min_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must be offered.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// STARTTLS if the server offers it, else plain.
    Opportunistic,
    /// Plain SMTP.
    None,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Headers Fenghuo writes itself; setting them would break the message.
const RESERVED_HEADERS: [&str; 6] = [
    "Content-Type",
    "Content-Transfer-Encoding",
    "Mime-Version",
    "Message-Id",
    "Date",
    "Bcc",
];

pub struct EmailNotifier {
    send_resolved: bool,
    /// The envelope sender (`MAIL FROM`) and, unless `headers.From` says
    /// otherwise, the `From` header.
    from: Mailbox,
    header_from: Option<Mailboxes>,
    to: Vec<Mailbox>,
    header_to: Option<Mailboxes>,
    cc: Vec<Mailbox>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    /// Extra headers: name and the inline template of the value.
    headers: Vec<(String, String)>,
    host: String,
    port: u16,
    tls: TlsMode,
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's pool starts a task, which needs the
    /// runtime that `build` (run by `fenghuo check` too) may not have.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    timeout: Duration,
    /// Strings that must never reach a reason: the password and the
    /// AUTH PLAIN / LOGIN forms of it.
    scrub: Vec<String>,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("smarthost", &format!("{}:{}", self.host, self.port))
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .field("cc", &self.cc.len())
            .field("auth", &(!self.scrub.is_empty()))
            .finish()
    }
}

pub fn build(
    value: &serde_json::Value,
    env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    let cfg: EmailConfig = super::parse(value)?;
    EmailNotifier::new(cfg, env).map(|n| Arc::new(n) as Arc<dyn Notifier>)
}

impl EmailNotifier {
    pub fn new(cfg: EmailConfig, env: &mut BuildEnv<'_>) -> Result<EmailNotifier, String> {
        let global = env.global;
        for (field, value) in [("html", &cfg.html), ("text", &cfg.text)] {
            if value.is_some() {
                return Err(format!(
                    "{field}: Alertmanager's {field} is a Go template, which Fenghuo cannot \
                     read; put a tera template in a file and set {field}_template: PATH \
                     (or leave both out to use the shipped email.{})",
                    if field == "html" { "html" } else { "txt" }
                ));
            }
        }

        // Addresses.
        let to_text = cfg.to.as_deref().map(str::trim).unwrap_or_default();
        if to_text.is_empty() {
            return Err("to: missing: whom to send to (comma-separated addresses)".into());
        }
        let to = parse_mailboxes("to", to_text)?;
        let from_text = cfg
            .from
            .as_deref()
            .or(global.smtp_from.as_deref())
            .map(str::trim)
            .unwrap_or_default();
        if from_text.is_empty() {
            return Err("from: missing (here or as global.smtp_from)".into());
        }
        let from = parse_mailbox("from", from_text)?;
        let mut cc = Vec::new();
        for (i, c) in cfg.cc.iter().enumerate() {
            cc.extend(parse_mailboxes(&format!("cc[{i}]"), c)?);
        }

        // Headers, named as Alertmanager normalises them.
        let mut headers = BTreeMap::new();
        for (name, value) in &cfg.headers {
            let canonical = canonical_header(name);
            if HeaderName::new_from_ascii(canonical.clone()).is_err() || canonical.is_empty() {
                return Err(format!("headers.{name}: not a valid header name"));
            }
            if headers.insert(canonical.clone(), value.clone()).is_some() {
                return Err(format!("headers: duplicate header {canonical:?}"));
            }
        }
        let mut subject_source = cfg.subject.clone();
        if let Some(s) = headers.remove("Subject") {
            if subject_source.is_some() {
                return Err("headers.Subject and subject: set one of them".into());
            }
            subject_source = Some(s);
        }
        let mut header_to = None;
        let mut header_from = None;
        if let Some(v) = headers.remove("To") {
            header_to = Some(Mailboxes::from(parse_mailboxes("headers.To", &v)?));
        }
        if let Some(v) = headers.remove("From") {
            header_from = Some(Mailboxes::from(parse_mailboxes("headers.From", &v)?));
        }
        if let Some(v) = headers.remove("Cc") {
            cc.extend(parse_mailboxes("headers.Cc", &v)?);
        }

        // Templates.
        let subject = match subject_source {
            Some(src) => {
                refuse_go_template("subject", &src)?;
                let name = inline_name("email.subject", &src, "txt");
                env.templates
                    .add_inline(&name, &src)
                    .map_err(|e| format!("subject: {}", e.replacen(&name, "subject", 1)))?;
                Some(name)
            }
            None => None,
        };
        let mut extra = Vec::new();
        for (name, value) in headers {
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&name))
            {
                return Err(format!("headers.{name}: Fenghuo sets this header itself"));
            }
            let field = format!("headers.{name}");
            refuse_go_template(&field, &value)?;
            let tpl = inline_name("email.header", &value, "txt");
            env.templates
                .add_inline(&tpl, &value)
                .map_err(|e| format!("{field}: {}", e.replacen(&tpl, &field, 1)))?;
            extra.push((name, tpl));
        }
        let html = template_file(
            env,
            "html_template",
            cfg.html_template.as_deref(),
            &["html", "htm"],
        )?;
        let text = template_file(
            env,
            "text_template",
            cfg.text_template.as_deref(),
            &["txt", "md", "text"],
        )?;

        // Where and how to connect.
        let smarthost = cfg
            .smarthost
            .as_deref()
            .or(global.smtp_smarthost.as_deref())
            .map(str::trim)
            .unwrap_or_default();
        if smarthost.is_empty() {
            return Err("smarthost: missing (host:port, here or as global.smtp_smarthost)".into());
        }
        let (host, port) = split_host_port(smarthost)?;
        let require_tls = cfg.require_tls.or(global.smtp_require_tls).unwrap_or(true);
        let tls_mode = match (cfg.tls, cfg.force_implicit_tls) {
            (Some(TlsMode::Implicit), Some(false))
            | (Some(TlsMode::Starttls | TlsMode::Opportunistic | TlsMode::None), Some(true)) => {
                return Err("tls and force_implicit_tls disagree: set one of them".into());
            }
            (Some(mode), _) => mode,
            (None, Some(true)) => TlsMode::Implicit,
            (None, Some(false)) if require_tls => TlsMode::Starttls,
            (None, None) if port == 465 => TlsMode::Implicit,
            (None, _) if require_tls => TlsMode::Starttls,
            (None, _) => TlsMode::None,
        };
        if cfg.require_tls == Some(true)
            && matches!(tls_mode, TlsMode::None | TlsMode::Opportunistic)
        {
            return Err(format!(
                "require_tls is true but tls is {}: set one of them",
                if tls_mode == TlsMode::None {
                    "none"
                } else {
                    "opportunistic"
                }
            ));
        }

        // Credentials: the receiver's, else the global ones (as Alertmanager).
        let username = cfg
            .auth_username
            .clone()
            .or_else(|| global.smtp_auth_username.clone())
            .filter(|u| !u.is_empty());
        let local_password = secret::one_of(
            "auth_password",
            cfg.auth_password.clone(),
            cfg.auth_password_file.as_deref(),
        )?;
        let local_secret = secret::one_of(
            "auth_secret",
            cfg.auth_secret.clone(),
            cfg.auth_secret_file.as_deref(),
        )?;
        let password = local_password.or_else(|| global.smtp_auth_password.clone());
        let identity = cfg
            .auth_identity
            .clone()
            .or_else(|| global.smtp_auth_identity.clone())
            .filter(|i| !i.is_empty());
        let credentials = match (&username, &password) {
            (None, None) if local_secret.is_none() => None,
            (None, _) => {
                return Err("auth_password is set but auth_username is not".into());
            }
            (Some(_), None) if local_secret.is_some() => {
                return Err("auth_secret: CRAM-MD5 is not supported; set auth_password \
                            (AUTH PLAIN or LOGIN, over TLS)"
                    .into());
            }
            (Some(_), None) => {
                return Err("auth_username is set but there is no auth_password \
                            (or auth_password_file, or global.smtp_auth_password)"
                    .into());
            }
            (Some(user), Some(pass)) => {
                if let Some(id) = &identity
                    && id != user
                {
                    return Err("auth_identity: only an empty identity or the user name \
                                itself is supported"
                        .into());
                }
                Some((user.clone(), pass.clone()))
            }
        };
        if credentials.is_some()
            && matches!(tls_mode, TlsMode::None | TlsMode::Opportunistic)
            && !is_loopback(&host)
        {
            return Err(format!(
                "refusing to send the SMTP password to {host} unencrypted: use tls: starttls \
                 or implicit (require_tls: true), or drop auth_username"
            ));
        }

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(env.timeout))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        if let Some(hello) = cfg.hello.as_deref().or(global.smtp_hello.as_deref()) {
            builder = builder.hello_name(ClientId::Domain(hello.to_string()));
        }
        let mut scrub = Vec::new();
        if let Some((user, pass)) = &credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
            if !pass.is_empty() {
                let b64 = base64::engine::general_purpose::STANDARD;
                scrub.push(pass.expose().to_string());
                scrub.push(b64.encode(pass.expose()));
                scrub.push(b64.encode(format!("\0{user}\0{}", pass.expose())));
            }
        }
        if tls_mode != TlsMode::None {
            let params = tls_parameters(&cfg.tls_config, &host)?;
            builder = builder.tls(match tls_mode {
                TlsMode::Starttls => Tls::Required(params),
                TlsMode::Implicit => Tls::Wrapper(params),
                TlsMode::Opportunistic => Tls::Opportunistic(params),
                TlsMode::None => Tls::None,
            });
        } else {
            builder = builder.tls(Tls::None);
        }

        Ok(EmailNotifier {
            send_resolved: cfg.send_resolved.unwrap_or(false),
            from,
            header_from,
            to,
            header_to,
            cc,
            subject,
            html,
            text,
            headers: extra,
            host,
            port,
            tls: tls_mode,
            builder,
            transport: OnceLock::new(),
            timeout: env.timeout,
            scrub,
        })
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }

    fn scrubbed(&self, text: String) -> String {
        let mut text = text;
        for s in &self.scrub {
            if !s.is_empty() && text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "<secret>");
            }
        }
        text
    }

    async fn deliver(&self, m: &EmailMessage) -> Result<Delivered, DeliveryError> {
        let message = compose(m, self.header_from.as_ref(), self.header_to.as_ref())?;
        let envelope = message.envelope().clone();
        let raw = message.formatted();
        let sent =
            tokio::time::timeout(self.timeout, self.transport().send_raw(&envelope, &raw)).await;
        match sent {
            Ok(Ok(response)) => Ok(Delivered {
                status: u16::from(response.code()),
                message_ref: None,
            }),
            Ok(Err(e)) => {
                let mut err = classify(&e);
                err.reason = self.scrubbed(if err.class == "connect" {
                    err.reason.replacen(
                        "connect",
                        &format!("connect {}:{}", self.host, self.port),
                        1,
                    )
                } else {
                    err.reason
                });
                Err(err)
            }
            Err(_) => Err(DeliveryError {
                reason: format!(
                    "timeout: no answer from {}:{} within {:?}",
                    self.host, self.port, self.timeout
                ),
                class: "timeout",
                status: None,
                retryable: true,
                retry_after: None,
            }),
        }
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn render(&self, msg: &Message, templates: &Templates, now: DateTime<Utc>) -> Rendered {
        let mut reasons = Vec::new();
        let (subject, why) = templates.render(self.subject.as_deref(), "email.subject.txt", msg);
        reasons.extend(why.map(|w| format!("subject: {w}")));
        let (text, why) = templates.render(self.text.as_deref(), "email.txt", msg);
        reasons.extend(why.map(|w| format!("text: {w}")));
        let (html, why) = templates.render(self.html.as_deref(), "email.html", msg);
        reasons.extend(why.map(|w| format!("html: {w}")));

        let mut subject = one_line(&subject, 250);
        if subject.is_empty() {
            subject = one_line(&msg.title, 250);
        }
        let domain = self.from.email.domain().to_string();
        let group = short_hash(&msg.group_key);
        let seqs: Vec<String> = msg.due_seqs.iter().map(|s| s.to_string()).collect();
        let id = if seqs.is_empty() {
            format!("{group}.{}", now.timestamp_millis())
        } else {
            seqs.join(".")
        };
        let thread = format!("<fenghuo.group.{group}@{domain}>");
        let mut headers = vec![
            ("Date".to_string(), now.to_rfc2822()),
            (
                "Message-ID".to_string(),
                format!("<fenghuo.{id}.{group}@{domain}>"),
            ),
            ("References".to_string(), thread.clone()),
            ("In-Reply-To".to_string(), thread),
            ("Auto-Submitted".to_string(), "auto-generated".to_string()),
            (
                "X-Fenghuo-Receiver".to_string(),
                one_line(&msg.receiver, 200),
            ),
            (
                "X-Fenghuo-Group-Key".to_string(),
                one_line(&msg.group_key, 500),
            ),
            ("X-Fenghuo-Status".to_string(), msg.status.clone()),
        ];
        for (name, tpl) in &self.headers {
            let (value, why) = templates.render(Some(tpl), tpl, msg);
            reasons.extend(why.map(|w| format!("headers.{name}: {w}")));
            headers.push((name.clone(), one_line(&value, 900)));
        }
        Rendered {
            payload: Payload::Email(EmailMessage {
                from: self.from.to_string(),
                to: match people_addresses(msg) {
                    // A page addressed to people goes to them, not to the
                    // receiver's list: escalating to the lead must not mail
                    // the whole team again.
                    people if !people.is_empty() => people,
                    _ => self.to.iter().map(|m| m.to_string()).collect(),
                },
                cc: self.cc.iter().map(|m| m.to_string()).collect(),
                subject,
                text,
                html,
                headers,
            }),
            fallback: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }

    fn send<'a>(&'a self, payload: &'a Payload) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            match payload {
                Payload::Email(m) => self.deliver(m).await,
                Payload::Http { .. } => Err(DeliveryError {
                    reason: "payload is not an email".into(),
                    class: "render",
                    status: None,
                    retryable: false,
                    retry_after: None,
                }),
            }
        })
    }
}

/// The addresses of the people a page is for (those that have one, and
/// that parse as a mailbox).
fn people_addresses(msg: &Message) -> Vec<String> {
    msg.to
        .iter()
        .filter_map(|p| p.email.as_deref())
        .filter(|e| e.parse::<Mailbox>().is_ok())
        .map(str::to_string)
        .collect()
}

/// The lettre message of a rendered email: multipart/alternative with the
/// text and the HTML part, the envelope from `from`, `to` and `cc`.
fn compose(
    m: &EmailMessage,
    header_from: Option<&Mailboxes>,
    header_to: Option<&Mailboxes>,
) -> Result<lettre::Message, DeliveryError> {
    let bad = |what: String| DeliveryError {
        reason: what,
        class: "render",
        status: None,
        retryable: false,
        retry_after: None,
    };
    let from: Mailbox = m.from.parse().map_err(|e| bad(format!("from: {e}")))?;
    let parse_all = |list: &[String], field: &str| -> Result<Vec<Mailbox>, DeliveryError> {
        list.iter()
            .map(|s| {
                s.parse::<Mailbox>()
                    .map_err(|e| bad(format!("{field}: {s}: {e}")))
            })
            .collect()
    };
    let to = parse_all(&m.to, "to")?;
    let cc = parse_all(&m.cc, "cc")?;
    let recipients: Vec<lettre::Address> = to.iter().chain(&cc).map(|b| b.email.clone()).collect();
    let envelope = lettre::address::Envelope::new(Some(from.email.clone()), recipients)
        .map_err(|e| bad(format!("envelope: {e}")))?;

    let mut builder = lettre::Message::builder().envelope(envelope);
    match header_from {
        Some(list) => {
            for mbox in list.iter() {
                builder = builder.from(mbox.clone());
            }
            builder = builder.sender(from.clone());
        }
        None => builder = builder.from(from.clone()),
    }
    match header_to {
        Some(list) => {
            for mbox in list.iter() {
                builder = builder.to(mbox.clone());
            }
        }
        None => {
            for mbox in &to {
                builder = builder.to(mbox.clone());
            }
        }
    }
    for mbox in &cc {
        builder = builder.cc(mbox.clone());
    }
    builder = builder.subject(m.subject.clone());
    for (name, value) in &m.headers {
        match name.as_str() {
            "Date" => {
                if let Ok(t) = DateTime::parse_from_rfc2822(value) {
                    let t: SystemTime = t.with_timezone(&Utc).into();
                    builder = builder.date(t);
                }
            }
            "Message-ID" => builder = builder.message_id(Some(value.clone())),
            _ => {
                let header = HeaderName::new_from_ascii(name.clone())
                    .map_err(|e| bad(format!("header {name}: {e}")))?;
                builder = builder.raw_header(HeaderValue::new(header, value.clone()));
            }
        }
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            m.html.clone(),
        ))
        .map_err(|e| bad(format!("cannot build the message: {e}")))
}

/// An SMTP failure as the outbox needs it. The reason is scrubbed of the
/// password by the caller.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    if let Some(code) = e.status() {
        let status = u16::from(code);
        // lettre says "permanent error (535): 5.7.8 …": keep what the server said.
        let text = one_line(&e.to_string(), 300);
        let said = text
            .split_once("): ")
            .map_or(text.as_str(), |(_, said)| said);
        return DeliveryError {
            reason: format!("SMTP {status}: {said}"),
            class: "smtp",
            status: Some(status),
            // 4xx: try again later; 5xx: the server said no for good.
            retryable: e.is_transient(),
            retry_after: None,
        };
    }
    let cause = one_line(&root_cause(e), 300);
    if e.is_timeout() {
        return DeliveryError {
            reason: format!("timeout: {cause}"),
            class: "timeout",
            status: None,
            retryable: true,
            retry_after: None,
        };
    }
    if e.is_client() {
        // lettre's own refusals: STARTTLS required but not offered, no
        // common AUTH mechanism, a bad address. Configuration, not luck.
        return DeliveryError {
            reason: format!("smtp: {cause}"),
            class: "smtp",
            status: None,
            retryable: false,
            retry_after: None,
        };
    }
    // Connection refused or reset, a TLS handshake or certificate failure,
    // a garbled reply: the server or the path to it may recover.
    DeliveryError {
        reason: format!("connect: {cause}"),
        class: "connect",
        status: None,
        retryable: true,
        retry_after: None,
    }
}

/// The innermost error: lettre's own layers repeat "Connection error".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn tls_parameters(cfg: &TlsConfig, host: &str) -> Result<TlsParameters, String> {
    let domain = cfg.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut b = TlsParameters::builder(domain);
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(crate::notify::secret::resolve(std::path::Path::new(path)))
            .map_err(|e| format!("tls_config.ca_file: cannot read {path}: {e}"))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("tls_config.ca_file: {path} is not a PEM certificate: {e}"))?;
        // As in Go (and so Alertmanager): a CA file replaces the system roots.
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem =
                std::fs::read(crate::notify::secret::resolve(std::path::Path::new(cert)))
                    .map_err(|e| format!("tls_config.cert_file: cannot read {cert}: {e}"))?;
            let key_pem = std::fs::read(crate::notify::secret::resolve(std::path::Path::new(key)))
                .map_err(|e| format!("tls_config.key_file: cannot read {key}: {e}"))?;
            let id = Identity::from_pem(&cert_pem, &key_pem)
                .map_err(|e| format!("tls_config: cert_file/key_file: {e}"))?;
            b = b.identify_with(id);
        }
        (None, None) => {}
        _ => return Err("tls_config: cert_file and key_file go together".into()),
    }
    if let Some(v) = &cfg.min_version {
        b = b.set_min_tls_version(match v.to_ascii_uppercase().as_str() {
            "TLS12" => TlsVersion::Tlsv12,
            "TLS13" => TlsVersion::Tlsv13,
            _ => {
                return Err(format!(
                    "tls_config.min_version: {v:?} is not supported (TLS12 or TLS13)"
                ));
            }
        });
    }
    if cfg.insecure_skip_verify {
        b = b.dangerous_accept_invalid_certs(true);
    }
    b.build().map_err(|e| format!("tls_config: {e}"))
}

fn template_file(
    env: &mut BuildEnv<'_>,
    field: &str,
    path: Option<&str>,
    extensions: &[&str],
) -> Result<Option<String>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let mut full = PathBuf::from(path);
    if full.is_relative() {
        full = env.templates_dir.join(full);
    }
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !extensions.contains(&ext.as_str()) {
        return Err(format!(
            "{field}: {path}: expected a .{} file (the extension sets how values are escaped)",
            extensions.join(" or .")
        ));
    }
    env.templates
        .add_file(&full)
        .map(Some)
        .map_err(|e| format!("{field}: {e}"))
}

/// Alertmanager's configs carry Go templates (`{{ .CommonLabels.x }}`,
/// `{{ template "…" . }}`); tera would fail on them at every page.
fn refuse_go_template(field: &str, source: &str) -> Result<(), String> {
    static GO: OnceLock<regex::Regex> = OnceLock::new();
    let go = GO.get_or_init(|| {
        regex::Regex::new(r"\{\{-?\s*(\.|\$|template\s|range\s|with\s|define\s|end\s*-?\}\})")
            .expect("valid regex")
    });
    if go.is_match(source) {
        return Err(format!(
            "{field}: this is a Go template (Alertmanager's syntax); Fenghuo's templates are \
             tera: e.g. {{{{ title }}}}, {{{{ common_labels.alertname }}}}, \
             {{{{ alerts | length }}}}"
        ));
    }
    Ok(())
}

fn parse_mailbox(field: &str, text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>()
        .map_err(|e| format!("{field}: {text:?} is not an email address: {e}"))
}

fn parse_mailboxes(field: &str, text: &str) -> Result<Vec<Mailbox>, String> {
    if text.contains("{{") {
        return Err(format!("{field}: addresses are not templates here"));
    }
    let list = text
        .parse::<Mailboxes>()
        .map_err(|e| format!("{field}: {text:?} is not a list of email addresses: {e}"))?;
    let list: Vec<Mailbox> = list.into_iter().collect();
    if list.is_empty() {
        return Err(format!("{field}: no address in {text:?}"));
    }
    Ok(list)
}

/// `x-mailer` → `X-Mailer`, as Go's `CanonicalMIMEHeaderKey` (Alertmanager).
fn canonical_header(name: &str) -> String {
    name.trim()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("smarthost: expected host:port, got {s:?}");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Headers are one line: newlines (a label value with `\r\n`) would end
/// the header and start another.
fn one_line(s: &str, max_chars: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max_chars {
        return joined;
    }
    let mut out: String = joined.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn short_hash(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::GlobalConfig;
    use serde_json::json;

    fn env_with<'a>(
        global: &'a GlobalConfig,
        templates: &'a mut Templates,
        dir: &Path,
    ) -> BuildEnv<'a> {
        BuildEnv {
            http: reqwest::Client::new(),
            global,
            templates,
            templates_dir: dir.to_path_buf(),
            timeout: Duration::from_secs(5),
        }
    }

    fn build_err(value: serde_json::Value) -> String {
        let global = GlobalConfig::default();
        let mut templates = Templates::builtin();
        let dir = std::env::temp_dir();
        let mut env = env_with(&global, &mut templates, &dir);
        match build(&value, &mut env) {
            Ok(_) => panic!("accepted: {value}"),
            Err(e) => e,
        }
    }

    fn build_ok(value: serde_json::Value, global: &GlobalConfig) -> (EmailNotifier, Templates) {
        let mut templates = Templates::builtin();
        let dir = std::env::temp_dir();
        let cfg: EmailConfig = crate::notify::channels::parse(&value).unwrap();
        let n = {
            let mut env = env_with(global, &mut templates, &dir);
            EmailNotifier::new(cfg, &mut env).unwrap()
        };
        (n, templates)
    }

    #[test]
    fn refuses_what_cannot_work() {
        let base = json!({"to": "a@example.com", "from": "f@example.com", "smarthost": "smtp.example.com:587"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let cases = [
            (
                with("html", json!("{{ template \"email.default.html\" . }}")),
                "html_template",
            ),
            (with("text", json!("hi")), "text_template"),
            (with("nonsense", json!(1)), "unknown field `nonsense`"),
            (with("smarthost", json!("smtp.example.com")), "host:port"),
            (with("to", json!("")), "to: missing"),
            (with("to", json!("not an address")), "to:"),
            (
                with(
                    "subject",
                    json!("[{{ .Status }}] {{ .CommonLabels.alertname }}"),
                ),
                "Go template",
            ),
            (with("subject", json!("{{ title ")), "subject:1:"),
            (
                with("headers", json!({"Subject": "x", "subject": "y"})),
                "duplicate header",
            ),
            (
                with("headers", json!({"content-type": "text/plain"})),
                "sets this header itself",
            ),
            (with("tls", json!("sometimes")), "unknown variant"),
            (
                with("auth_password", json!("hunter2")),
                "auth_username is not",
            ),
            (
                with("tls_config", json!({"ca_file": "/nonexistent/ca.pem"})),
                "ca_file",
            ),
            (
                with("tls_config", json!({"verify": true})),
                "tls_config.verify: unknown field",
            ),
            (with("html_template", json!("mail.txt")), "expected a .html"),
            (
                with("html_template", json!("/nonexistent/mail.html")),
                "html_template: /nonexistent/mail.html",
            ),
        ];
        for (value, want) in cases {
            let err = build_err(value.clone());
            assert!(err.contains(want), "{value}: {err}");
        }
        let mut v = with("auth_username", json!("bot"));
        v["auth_password"] = json!("hunter2");
        v["tls"] = json!("none");
        let err = build_err(v);
        assert!(
            err.contains("unencrypted") && !err.contains("hunter2"),
            "{err}"
        );
        let mut v = with("auth_username", json!("bot"));
        v["auth_secret"] = json!("cram");
        assert!(build_err(v).contains("CRAM-MD5"));
        let mut v = base.clone();
        v["tls"] = json!("none");
        v["require_tls"] = json!(true);
        assert!(build_err(v).contains("require_tls is true"));
    }

    #[test]
    fn global_defaults_and_tls_choice() {
        let global = GlobalConfig {
            smtp_from: Some("Fenghuo <alerts@example.com>".into()),
            smtp_smarthost: Some("smtp.example.com:465".into()),
            smtp_auth_username: Some("alerts".into()),
            smtp_auth_password: Some(Secret::new("s3cr3t-pass")),
            smtp_hello: Some("fenghuo.example.com".into()),
            ..GlobalConfig::default()
        };
        let (n, _) = build_ok(
            json!({"to": "oncall@example.com, Ops <ops@example.com>"}),
            &global,
        );
        assert_eq!(n.tls, TlsMode::Implicit);
        assert_eq!(n.from.email.to_string(), "alerts@example.com");
        assert_eq!(n.to.len(), 2);
        assert!(!n.send_resolved);
        let debug = format!("{n:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");

        let (n, _) = build_ok(
            json!({"to": "a@example.com", "smarthost": "smtp.example.com:587", "cc": "b@example.com"}),
            &global,
        );
        assert_eq!(n.tls, TlsMode::Starttls);
        assert_eq!(n.cc.len(), 1);
        let (n, _) = build_ok(
            json!({"to": "a@example.com", "smarthost": "127.0.0.1:25", "require_tls": false, "send_resolved": true}),
            &global,
        );
        assert_eq!(n.tls, TlsMode::None);
        assert!(n.send_resolved);
    }

    #[test]
    fn renders_subject_headers_and_both_parts() {
        let global = GlobalConfig::default();
        let (n, templates) = build_ok(
            json!({
                "to": "oncall@example.com",
                "from": "Fenghuo <alerts@example.com>",
                "smarthost": "127.0.0.1:2525",
                "require_tls": false,
                "cc": ["lead@example.com"],
                "headers": {"x-team": "{{ common_labels.team | default(value='none') }}", "To": "On-call <oncall@example.com>"},
                "subject": "{{ counts.firing }} firing: {{ common_labels.namespace }}\nsecond line",
            }),
            &global,
        );
        let mut msg = Templates::sample_message();
        msg.group_key = format!("{{}}/{{team=\"支付\"}}:{{pod=\"{}\"}}", "p".repeat(600));
        let now = DateTime::parse_from_rfc3339("2025-06-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let rendered = n.render(&msg, &templates, now);
        assert_eq!(rendered.fallback, None);
        let Payload::Email(m) = &rendered.payload else {
            panic!()
        };
        assert_eq!(m.subject, "3 firing: prod second line");
        assert!(m.text.contains("磁盘使用率过高"));
        assert!(m.html.contains("<html"));
        assert_eq!(m.cc, vec!["lead@example.com".to_string()]);
        let header = |name: &str| {
            m.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("X-Team").as_deref(), Some("none"));
        assert!(header("Message-ID").unwrap().starts_with("<fenghuo.4211."));
        assert_eq!(
            header("Date").as_deref(),
            Some("Sun, 1 Jun 2025 08:00:00 +0000")
        );

        let message = compose(m, n.header_from.as_ref(), n.header_to.as_ref()).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("To: On-call <oncall@example.com>"), "{raw}");
        assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
        assert!(raw.lines().all(|l| l.len() <= 998), "a line over 998 bytes");
        assert!(raw.contains("X-Fenghuo-Group-Key:"), "{raw}");
        let rcpt: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(rcpt, ["oncall@example.com", "lead@example.com"]);
    }

    #[test]
    fn a_broken_custom_template_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mail.html"),
            "<p>{{ alerts[0].labels.nope }}</p>",
        )
        .unwrap();
        let global = GlobalConfig::default();
        let mut templates = Templates::builtin();
        let cfg: EmailConfig = crate::notify::channels::parse(&json!({
            "to": "a@example.com", "from": "f@example.com", "smarthost": "127.0.0.1:25",
            "require_tls": false, "html_template": "mail.html"
        }))
        .unwrap();
        let n = {
            let mut env = env_with(&global, &mut templates, dir.path());
            EmailNotifier::new(cfg, &mut env).unwrap()
        };
        let now = "2026-11-25T19:00:00Z".parse().unwrap();
        let rendered = n.render(&Templates::sample_message(), &templates, now);
        let reason = rendered.fallback.unwrap();
        assert!(reason.starts_with("html: template "), "{reason}");
        assert!(reason.contains("mail.html:1:"), "{reason}");
        let Payload::Email(m) = rendered.payload else {
            panic!()
        };
        assert!(m.html.contains("Checkout API"));
    }

    #[test]
    fn helpers() {
        assert_eq!(canonical_header("x-fenghuo-TEAM"), "X-Fenghuo-Team");
        assert_eq!(canonical_header("subject"), "Subject");
        assert_eq!(
            split_host_port("[::1]:25").unwrap(),
            ("::1".to_string(), 25)
        );
        assert!(split_host_port("host:abc").is_err());
        assert!(
            is_loopback("127.0.0.1")
                && is_loopback("localhost")
                && !is_loopback("smtp.example.com")
        );
        assert_eq!(one_line("a\r\nb\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
