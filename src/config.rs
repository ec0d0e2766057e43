//! `fenghuo.yaml`: what the process runs with.
//!
//! Built-in defaults serve a team with no file at all. Precedence, lowest
//! first: defaults, the file (`--config`), `FENGHUO_*` variables, flags. A
//! file with an unknown field, a bad duration or a bad size is refused with
//! its line and column, and nothing starts on it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::escalate::Person;
use crate::escalate::schedule::{OnCall, ScheduleConfig, with_known_names};
use crate::evaluate::inhibit::{InhibitRule, InhibitRuleConfig};
use crate::evaluate::route::{ReceiverConfig, RouteConfig, RouteTree};
use crate::evaluate::time_interval::{TimeInterval, TimeIntervalSet};
use crate::eventlog::Synchronous;
use crate::ingest::IngestSettings;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the log (`fenghuo.db`) and everything derived from it live.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,

    // Alertmanager's sections, accepted unchanged so that migrating is a
    // copy of alertmanager.yml. Validated at load as Alertmanager does.
    pub route: Option<RouteConfig>,
    pub receivers: Vec<ReceiverConfig>,
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// What inhibit rules' `through:` joins by beyond what the log teaches
    /// (see `evaluate::topology`): workload labels, declared dependencies.
    pub topology: crate::evaluate::topology::TopologyConfig,
    pub time_intervals: Vec<TimeInterval>,
    pub mute_time_intervals: Vec<TimeInterval>,
    /// Alertmanager's `global:` and `templates:`, kept for the notification
    /// stage; accepted so an alertmanager.yml loads as it is.
    pub global: Option<serde_json::Value>,
    pub templates: Vec<String>,

    /// Delivery: retries, fallback timing, templates, links.
    pub notify: crate::notify::config::NotifyConfig,

    /// What happens while nobody acknowledges; routes name them with
    /// `escalation:`.
    pub escalation_policies: Vec<crate::escalate::policy::PolicyConfig>,

    /// Rule files, as Prometheus' `rule_files:`: paths or globs (`*`, `?`
    /// in any path segment), relative to this file's directory.
    pub rule_files: Vec<String>,

    /// Who can be paged, with their contact points.
    pub people: Vec<Person>,
    /// On-call schedules over `people` (see `escalate::schedule`).
    pub schedules: Vec<ScheduleConfig>,

    /// Services Fenghuo checks itself (see `probe`); a change needs a
    /// restart.
    pub probes: Vec<crate::probe::ProbeConfig>,
    /// The most probe runs in flight at once.
    pub probe_concurrency: usize,
    /// Kubernetes API servers to watch for events.
    pub kubernetes: crate::ingest::kubernetes::watch::KubernetesConfig,
    /// Releases: labels naming the app, bake window, gate rules,
    /// auto-rollback (see `act::config`).
    pub releases: crate::act::config::ReleasesConfig,
    /// Remediation hooks and their guards.
    pub remediation: crate::act::config::RemediationConfig,

    /// The directory of the config file: relative template and secret
    /// paths are resolved against it.
    #[serde(skip)]
    pub dir: Option<PathBuf>,

    /// The config file it was loaded from: what a reload reads again.
    #[serde(skip)]
    pub path: Option<PathBuf>,

    /// The file as written, for `GET /api/v2/status` (shown with secrets
    /// redacted, see [`Config::redacted`]).
    #[serde(skip)]
    pub source: Option<String>,
}

/// The routing sections compiled: what the evaluate stage runs on.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub tree: Option<RouteTree>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub intervals: TimeIntervalSet,
    /// The `topology:` section inhibit rules' `through:` joins with.
    pub topology: std::sync::Arc<crate::evaluate::topology::TopologyConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9797".into(),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Text,
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            route: None,
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            topology: Default::default(),
            time_intervals: Vec::new(),
            mute_time_intervals: Vec::new(),
            global: None,
            templates: Vec::new(),
            notify: Default::default(),
            escalation_policies: Vec::new(),
            rule_files: Vec::new(),
            people: Vec::new(),
            schedules: Vec::new(),
            probes: Vec::new(),
            probe_concurrency: 32,
            kubernetes: Default::default(),
            releases: Default::default(),
            remediation: Default::default(),
            dir: None,
            path: None,
            source: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `full` (default): every acknowledged event survives power loss.
    /// `normal`: survives a crash of the process, not of the machine.
    pub synchronous: Synchronous,
    /// The most events committed in one transaction.
    pub max_batch: usize,
    /// Snapshot the views every this many events (0: never), so start-up
    /// replays only the tail of the log; once the views hold more than half
    /// as many items (alerts, groups), every twice their number instead.
    pub snapshot_every: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            synchronous: Synchronous::Full,
            max_batch: 4096,
            snapshot_every: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: ByteSize,
    /// `endsAt` given to API v2 alerts posted without one.
    pub resolve_timeout: PromDuration,
    /// How far ahead the log always holds a re-sent alert's `endsAt`.
    pub lease_horizon: PromDuration,
    /// How often re-sent `endsAt`s are written down.
    pub lease_checkpoint: PromDuration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let d = IngestSettings::default();
        IngestConfig {
            max_body_bytes: ByteSize(4 << 20),
            resolve_timeout: PromDuration(d.resolve_timeout),
            lease_horizon: PromDuration(d.lease_horizon),
            lease_checkpoint: PromDuration(d.lease_checkpoint),
        }
    }
}

impl IngestConfig {
    pub fn settings(&self) -> IngestSettings {
        IngestSettings {
            resolve_timeout: self.resolve_timeout.0,
            lease_horizon: self.lease_horizon.0,
            lease_checkpoint: self.lease_checkpoint.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// yaml_serde's message carries the line and column.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Parses a config file; the error names the file, line and column.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // Relative `{ file: … }` secrets (hook headers, the link key) are
        // read relative to the config file, as receivers' are.
        let mut config = crate::notify::secret::with_base_dir(path.parent(), || Self::parse(&text))
            .map_err(invalid)?;
        config.dir = path.parent().map(Path::to_path_buf);
        config.path = Some(path.to_path_buf());
        // Secrets and receiver templates are read now, so a config whose
        // secret file is missing or whose template is broken never starts.
        config.receivers().map_err(invalid)?;
        Ok(config)
    }

    /// `receivers:` compiled into notifiers, with their templates and
    /// secrets read.
    pub fn receivers(&self) -> Result<crate::notify::Receivers, String> {
        crate::notify::Receivers::build(
            &self.receivers,
            self.global.as_ref(),
            &self.notify,
            self.dir.as_deref(),
        )
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut config: Config = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        if !config.schedules.is_empty() {
            // Read again knowing every defined name, so that a schedule
            // naming an unknown person or time interval is refused with the
            // line and column of the name.
            let intervals = config
                .time_intervals
                .iter()
                .chain(&config.mute_time_intervals)
                .map(|ti| ti.name.as_str());
            with_known_names(&config.people, intervals, || {
                yaml_serde::from_str::<Config>(text)
            })
            .map_err(|e| e.to_string())?;
        }
        config.check()?;
        config.source = Some(text.to_string());
        Ok(config)
    }

    /// The configuration as YAML with every secret-looking value (passwords,
    /// tokens, keys, webhook URLs, which carry tokens) replaced by
    /// `<secret>`, as Alertmanager shows its config.
    pub fn redacted(&self) -> String {
        fn is_secret(key: &str) -> bool {
            let k = key.to_ascii_lowercase();
            if k.ends_with("_file") {
                return false; // a path, not the secret
            }
            ["password", "secret", "token", "credential"]
                .iter()
                .any(|s| k.contains(s))
                || k == "key"
                || k.ends_with("_key")
                || k == "url"
                || k.ends_with("api_url")
                || k.ends_with("webhook_url")
        }
        fn walk(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        // Probe headers (`Authorization`, API keys): every value.
                        if k == "headers"
                            && let serde_json::Value::Object(headers) = v
                        {
                            for value in headers.values_mut() {
                                *value = serde_json::Value::from("<secret>");
                            }
                        } else if is_secret(k) && !v.is_null() && !v.is_object() {
                            *v = serde_json::Value::from("<secret>");
                        } else {
                            walk(v);
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
                _ => {}
            }
        }
        let mut doc: serde_json::Value = match &self.source {
            Some(text) => yaml_serde::from_str(text).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        };
        if doc.is_null() {
            return String::new();
        }
        walk(&mut doc);
        yaml_serde::to_string(&doc).unwrap_or_default()
    }

    fn check(&self) -> Result<(), String> {
        if self.ingest.lease_checkpoint.0 <= chrono::Duration::zero() {
            return Err("ingest.lease_checkpoint: must be more than 0s".into());
        }
        if self.ingest.resolve_timeout.0 <= chrono::Duration::zero() {
            return Err("ingest.resolve_timeout: must be more than 0s".into());
        }
        if self.probe_concurrency == 0 {
            return Err("probe_concurrency: must be at least 1".into());
        }
        crate::probe::config::check_names(&self.probes)?;
        if self.storage.max_batch == 0 {
            return Err("storage.max_batch: must be at least 1".into());
        }
        self.kubernetes.check()?;
        let routing = self.routing()?;
        self.oncall()?;
        self.check_escalation(&routing)?;
        self.remediation.check()?;
        self.releases.check(&routing.intervals, &self.remediation)?;
        Ok(())
    }

    /// Escalation policies refer to receivers, time intervals, people and
    /// schedules that exist, and every policy a route names is defined.
    fn check_escalation(&self, routing: &Routing) -> Result<(), String> {
        let receivers = |r: &str| self.receivers.iter().any(|c| c.name == r);
        let intervals = |i: &str| routing.intervals.contains_name(i);
        let people = |p: &str| self.people.iter().any(|c| c.name.as_str() == p);
        let schedules = |s: &str| self.schedules.iter().any(|c| c.name == s);
        crate::escalate::policy::check(
            &self.escalation_policies,
            &crate::escalate::policy::Names {
                receivers: &receivers,
                intervals: &intervals,
                people: &people,
                schedules: &schedules,
            },
        )?;
        if let Some(tree) = &routing.tree {
            for node in tree.nodes() {
                if let Some(p) = &node.opts().escalation
                    && !self.escalation_policies.iter().any(|c| &c.name == p)
                {
                    return Err(format!(
                        "route {}: undefined escalation policy {p:?}",
                        node.id()
                    ));
                }
            }
        }
        Ok(())
    }

    /// `people:` and `schedules:` compiled: who is on call when.
    pub fn oncall(&self) -> Result<OnCall, String> {
        let intervals =
            TimeIntervalSet::from_config(&self.time_intervals, &self.mute_time_intervals)
                .map_err(|e| e.to_string())?;
        OnCall::compile(&self.people, &self.schedules, &intervals)
    }

    /// Compiles the routing sections with Alertmanager's validation: every
    /// receiver a route names exists, time interval names resolve, matchers
    /// and inhibit rules are well-formed.
    pub fn routing(&self) -> Result<Routing, String> {
        let intervals =
            TimeIntervalSet::from_config(&self.time_intervals, &self.mute_time_intervals)
                .map_err(|e| e.to_string())?;
        let tree = match &self.route {
            Some(root) => Some(
                RouteTree::build(root, &self.receivers, &intervals).map_err(|e| e.to_string())?,
            ),
            None if !self.receivers.is_empty() => {
                return Err("route: receivers are configured but no route sends to them".into());
            }
            None => None,
        };
        let inhibit_rules = InhibitRule::compile(&self.inhibit_rules).map_err(|e| e.to_string())?;
        self.topology.check()?;
        for (i, rule) in inhibit_rules.iter().enumerate() {
            if rule.through() == Some(crate::evaluate::topology::Through::Dependency)
                && self.topology.dependencies.is_empty()
            {
                return Err(format!(
                    "inhibit_rules[{i}].through: dependency, but topology.dependencies declares none"
                ));
            }
            // A cause that is never raised would mute nothing, silently.
            if self.releases.alert.is_none()
                && rule.source_matchers().iter().any(|m| {
                    m.name() == "alertname"
                        && m.op() == crate::evaluate::matcher::MatchOp::Equal
                        && m.value() == crate::act::release::RELEASE_ALERT
                })
            {
                return Err(format!(
                    "inhibit_rules[{i}].source_matchers: alertname=\"{}\", but releases.alert is not set, so no such alert is raised",
                    crate::act::release::RELEASE_ALERT
                ));
            }
        }
        Ok(Routing {
            tree,
            inhibit_rules,
            intervals,
            topology: std::sync::Arc::new(self.topology.clone()),
        })
    }

    /// The files `rule_files:` names, globs expanded (sorted, each once).
    /// A pattern without wildcards must name an existing file; a glob may
    /// match nothing, as in Prometheus.
    pub fn rule_paths(&self) -> Result<Vec<PathBuf>, String> {
        crate::evaluate::rules::expand_rule_files(self.dir.as_deref(), &self.rule_files)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("fenghuo.db")
    }
}

/// A duration in Prometheus' notation: `1h30m`, `5m`, `90s`, `250ms`, `1d`,
/// `1w`, `1y` (units in decreasing order, each at most once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromDuration(pub chrono::Duration);

impl PromDuration {
    pub fn parse(s: &str) -> Result<PromDuration, String> {
        const UNITS: [(&str, i64); 8] = [
            ("y", 365 * 86_400_000),
            ("w", 7 * 86_400_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("ms", 1),
            ("m", 60_000),
            ("s", 1_000),
            ("", 0),
        ];
        // Order in which units may appear (ms after s).
        const ORDER: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
        let bad =
            || format!("invalid duration {s:?}: use Prometheus notation such as 30s, 5m, 1h30m");
        if s.is_empty() {
            return Err(bad());
        }
        if s == "0" {
            return Ok(PromDuration(chrono::Duration::zero()));
        }
        let mut rest = s;
        let mut total: i64 = 0;
        let mut last_rank: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, ms) = UNITS
                .iter()
                .find(|(u, _)| !u.is_empty() && rest.starts_with(u))
                .ok_or_else(bad)?;
            let rank = ORDER
                .iter()
                .position(|o| o == unit)
                .expect("unit is ordered");
            if last_rank.is_some_and(|r| r >= rank) {
                return Err(bad());
            }
            last_rank = Some(rank);
            total = n
                .checked_mul(*ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            rest = &rest[unit.len()..];
        }
        Ok(PromDuration(chrono::Duration::milliseconds(total)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.num_milliseconds();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PromDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes: a number, or `512KiB`, `4MiB`, `1GiB`, `10MB`, `64KB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let bad = || format!("invalid size {s:?}: use a number of bytes or e.g. 512KiB, 4MiB");
        let n: usize = s[..digits].parse().map_err(|_| bad())?;
        let mult: usize = match s[digits..].trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(usize),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        // (text, milliseconds or None for refused)
        let table: &[(&str, Option<i64>)] = &[
            ("30s", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("250ms", Some(250)),
            ("1d", Some(86_400_000)),
            ("2w", Some(14 * 86_400_000)),
            ("1m30s500ms", Some(90_500)),
            ("0", Some(0)),
            ("", None),
            ("5", None),     // no unit
            ("m5", None),    // unit first
            ("30s1m", None), // units out of order
            ("1m1m", None),  // repeated unit
            ("1.5h", None),  // no fractions in Prometheus notation
            ("-5m", None),
        ];
        for (text, want) in table {
            let got = PromDuration::parse(text)
                .ok()
                .map(|d| d.0.num_milliseconds());
            assert_eq!(got, *want, "{text:?}");
        }
        assert_eq!(PromDuration::parse("1h30m").unwrap().to_string(), "1h30m");
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("4MiB").unwrap().0, 4 << 20);
        assert_eq!(ByteSize::parse("1000").unwrap().0, 1000);
        assert_eq!(ByteSize::parse("64KB").unwrap().0, 64_000);
        assert!(ByteSize::parse("4 parsecs").is_err());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(Config::default().listen, "127.0.0.1:9797");
    }

    #[test]
    fn refusals_carry_line_and_column() {
        let err = Config::parse("listen: 0.0.0.0:1\ningest:\n  resolve_timout: 5m\n").unwrap_err();
        assert!(err.contains("resolve_timout"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = Config::parse("ingest:\n  resolve_timeout: 5 minutes\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    /// An alertmanager.yml as teams run it loads unchanged; its mistakes are
    /// refused the way Alertmanager refuses them.
    #[test]
    fn alertmanager_sections_load_unchanged_and_are_validated() {
        let am = r#"
global:
  resolve_timeout: 5m
  smtp_smarthost: smtp.example.org:587
templates: ['/etc/alertmanager/*.tmpl']
route:
  receiver: team-ops
  group_by: [alertname, cluster]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"', 'env=~"prod|staging"']
      receiver: pager
      continue: true
      mute_time_intervals: [weekends]
    - match:
        team: db
      receiver: team-db
receivers:
  - name: team-ops
    email_configs:
      - to: ops@example.org
  - name: pager
    webhook_configs:
      - url: http://pager.example.org/hook
  - name: team-db
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, cluster]
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
"#;
        let config = Config::parse(am).expect("an alertmanager.yml loads");
        let routing = config.routing().unwrap();
        assert_eq!(routing.tree.unwrap().nodes().len(), 3);
        assert_eq!(routing.inhibit_rules.len(), 1);

        // Shown back without secrets: the webhook URL may carry a token.
        let shown = config.redacted();
        assert!(shown.contains("ops@example.org"), "{shown}");
        assert!(!shown.contains("pager.example.org"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");

        // (text replaced, replacement, what the refusal must mention)
        let table: [(&str, &str, &str); 4] = [
            // a route sends to a receiver that does not exist
            ("receiver: pager\n", "receiver: nobody\n", "nobody"),
            // a route mutes by an interval that is not defined
            ("[weekends]", "[holidays]", "holidays"),
            // a matcher whose regex does not compile
            (r#"env=~"prod|staging""#, r#"env=~"(prod""#, "env"),
            // a misspelt field in an inhibit rule
            (
                "equal: [alertname, cluster]",
                "equal: [alertname, cluster]\n    bogus: 1",
                "bogus",
            ),
        ];
        for (from, to, mention) in table {
            let broken = am.replacen(from, to, 1);
            assert_ne!(broken, am, "the row must change the file: {from:?}");
            let err = Config::parse(&broken).expect_err(to);
            assert!(err.contains(mention), "{to:?}: {err}");
        }
    }

    #[test]
    fn a_full_file_parses() {
        let c = Config::parse(
            "listen: 0.0.0.0:9797\ndata_dir: /var/lib/fenghuo\nlog_format: json\nstorage:\n  synchronous: normal\n  max_batch: 100\ningest:\n  max_body_bytes: 1MiB\n  resolve_timeout: 10m\n",
        )
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.storage.synchronous, Synchronous::Normal);
        assert_eq!(c.ingest.max_body_bytes.0, 1 << 20);
        assert_eq!(c.ingest.resolve_timeout.0, chrono::Duration::minutes(10));
    }
}
