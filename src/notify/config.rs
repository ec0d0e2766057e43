//! The notify stage's configuration: the `notify:` section, the channel
//! fields of Alertmanager's `global:`, and `receivers:` compiled into
//! notifiers.
//!
//! Compiling reads every secret and every receiver template, so a config
//! whose secrets or templates are broken is refused at load, and the
//! running one stays.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Notifier;
use super::channels;
use super::secret::{self, Secret};
use super::templates::Templates;
use crate::config::PromDuration;
use crate::evaluate::route::ReceiverConfig;

/// `notify:` in `fenghuo.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where people reach Fenghuo, for links in messages.
    pub external_url: String,
    /// One delivery attempt may take this long.
    pub timeout: PromDuration,
    /// A due notification is retried this long after it was decided; then
    /// it goes to the receiver's `fallback` (or is given up and recorded).
    pub retry_for: PromDuration,
    /// First wait before a retry; doubles per attempt, with jitter, up to
    /// `max_backoff`.
    pub initial_backoff: PromDuration,
    pub max_backoff: PromDuration,
    /// Requests to the far ends in flight at once, over all receivers.
    /// The serving loop also starts at most 8 times this many deliveries
    /// per wake (oldest first), so a backlog drains in work proportional
    /// to its size.
    pub concurrency: usize,
    /// Consecutive failed attempts of one integration after which Fenghuo
    /// raises `FenghuoNotificationsFailing` about it.
    pub failing_after: u32,
    /// Receiver templates given by relative path are looked up here
    /// (relative to the config file's directory if itself relative).
    pub templates_dir: Option<PathBuf>,
    /// Key that signs action links (acknowledge from the page). Unset: a
    /// random key kept in the data directory (`link.key`).
    pub link_secret: Option<crate::notify::Secret>,
    /// How long an action link works.
    pub link_ttl: PromDuration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let d = |s: i64| PromDuration(chrono::Duration::seconds(s));
        NotifyConfig {
            external_url: String::new(),
            timeout: d(10),
            retry_for: d(600),
            initial_backoff: d(1),
            max_backoff: d(60),
            concurrency: 32,
            failing_after: 3,
            templates_dir: None,
            link_secret: None,
            link_ttl: d(86_400),
        }
    }
}

impl NotifyConfig {
    pub fn timeout(&self) -> Duration {
        self.timeout.0.to_std().unwrap_or(Duration::from_secs(10))
    }
}

/// The channel defaults of Alertmanager's `global:` section. Fields
/// Fenghuo does not use are accepted and ignored, so an alertmanager.yml
/// loads unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GlobalConfig {
    pub smtp_from: Option<String>,
    pub smtp_hello: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<Secret>,
    pub smtp_auth_password_file: Option<String>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_require_tls: Option<bool>,
    pub slack_api_url: Option<Secret>,
    pub slack_api_url_file: Option<String>,
    pub pagerduty_url: Option<String>,
}

impl GlobalConfig {
    pub fn from_value(value: Option<&serde_json::Value>) -> Result<GlobalConfig, String> {
        let mut global: GlobalConfig = match value {
            Some(v) => serde_path_to_error::deserialize(v).map_err(|e| format!("global.{e}"))?,
            None => GlobalConfig::default(),
        };
        global.smtp_auth_password = secret::one_of(
            "global.smtp_auth_password",
            global.smtp_auth_password.take(),
            global.smtp_auth_password_file.as_deref(),
        )?;
        global.slack_api_url = secret::one_of(
            "global.slack_api_url",
            global.slack_api_url.take(),
            global.slack_api_url_file.as_deref(),
        )?;
        Ok(global)
    }
}

/// `rate_limit:` of a receiver: at most `messages` per `per`, per
/// integration. The surplus waits for the next free slot and goes out
/// folded into one digest message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub messages: u32,
    #[serde(with = "prom_duration_serde")]
    pub per: PromDuration,
}

mod prom_duration_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::PromDuration;

    pub fn serialize<S: Serializer>(d: &PromDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.0.num_seconds()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PromDuration, D::Error> {
        PromDuration::deserialize(d)
    }
}

/// What a channel needs while it is built from its YAML.
pub struct BuildEnv<'a> {
    pub http: reqwest::Client,
    pub global: &'a GlobalConfig,
    /// Receiver templates are added here as the channels are built.
    pub templates: &'a mut Templates,
    pub templates_dir: PathBuf,
    pub timeout: Duration,
}

/// One integration of a receiver, with its place for names and metrics.
#[derive(Clone)]
pub struct Integration {
    /// `dingtalk[0]`: kind and index within the receiver, as Alertmanager
    /// names integrations.
    pub id: String,
    pub notifier: Arc<dyn Notifier>,
}

/// A receiver ready to send.
#[derive(Clone)]
pub struct ReceiverRuntime {
    pub name: String,
    pub integrations: Vec<Integration>,
    pub fallback: Option<String>,
    pub rate_limit: Option<RateLimit>,
}

/// Every receiver, compiled, and the templates they render with.
#[derive(Clone, Default)]
pub struct Receivers {
    pub by_name: BTreeMap<String, ReceiverRuntime>,
    pub templates: Arc<Templates>,
}

impl std::fmt::Debug for Receivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Receivers {
    /// Compile `receivers:`. Errors name the receiver and the integration:
    /// `receivers[ops].dingtalk_configs[0]: missing field `webhook_url``.
    pub fn build(
        receivers: &[ReceiverConfig],
        global: Option<&serde_json::Value>,
        notify: &NotifyConfig,
        base_dir: Option<&std::path::Path>,
    ) -> Result<Receivers, String> {
        secret::with_base_dir(base_dir, || {
            Self::build_in(receivers, global, notify, base_dir)
        })
    }

    fn build_in(
        receivers: &[ReceiverConfig],
        global: Option<&serde_json::Value>,
        notify: &NotifyConfig,
        base_dir: Option<&std::path::Path>,
    ) -> Result<Receivers, String> {
        let global = GlobalConfig::from_value(global)?;
        let mut templates = Templates::builtin();
        let templates_dir = match (&notify.templates_dir, base_dir) {
            (Some(d), Some(base)) if d.is_relative() => base.join(d),
            (Some(d), _) => d.clone(),
            (None, Some(base)) => base.to_path_buf(),
            (None, None) => PathBuf::from("."),
        };
        let http = http_client(notify.timeout())?;
        let mut by_name = BTreeMap::new();
        for receiver in receivers {
            let mut integrations = Vec::new();
            for (key, list) in &receiver.integrations {
                let kind = key.trim_end_matches("_configs");
                for (i, value) in list.iter().enumerate() {
                    let mut env = BuildEnv {
                        http: http.clone(),
                        global: &global,
                        templates: &mut templates,
                        templates_dir: templates_dir.clone(),
                        timeout: notify.timeout(),
                    };
                    let notifier = channels::build(key, value, &mut env)
                        .map_err(|e| format!("receivers[{}].{key}[{i}]: {e}", receiver.name))?;
                    integrations.push(Integration {
                        id: format!("{kind}[{i}]"),
                        notifier,
                    });
                }
            }
            by_name.insert(
                receiver.name.clone(),
                ReceiverRuntime {
                    name: receiver.name.clone(),
                    integrations,
                    fallback: receiver.fallback.clone(),
                    rate_limit: receiver.rate_limit,
                },
            );
        }
        for r in by_name.values() {
            if let Some(fallback) = &r.fallback {
                if fallback == &r.name {
                    return Err(format!(
                        "receivers[{}].fallback: a receiver cannot be its own fallback",
                        r.name
                    ));
                }
                if !by_name.contains_key(fallback) {
                    return Err(format!(
                        "receivers[{}].fallback: unknown receiver {fallback:?}",
                        r.name
                    ));
                }
            }
            if let Some(limit) = r.rate_limit
                && (limit.messages == 0 || limit.per.0 <= chrono::Duration::zero())
            {
                return Err(format!(
                    "receivers[{}].rate_limit: messages and per must be positive",
                    r.name
                ));
            }
        }
        Ok(Receivers {
            by_name,
            templates: Arc::new(templates),
        })
    }

    pub fn get(&self, name: &str) -> Option<&ReceiverRuntime> {
        self.by_name.get(name)
    }
}

/// The one HTTP client every channel shares (connection reuse matters
/// under a storm). rustls with aws-lc-rs; no system TLS library.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("fenghuo/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
