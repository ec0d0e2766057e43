//! The `releases:` and `remediation:` sections of `fenghuo.yaml`.
//!
//! This module owns their shape, their defaults and their checks at load
//! (time interval names that exist, cron that parses, templates that
//! compile, actions that exist). It never decides and never calls out.
//!
//! ```yaml
//! releases:
//!   app_label: app            # falls back to `service`
//!   env_label: env            # falls back to `environment`
//!   cluster_label: cluster
//!   bake_window: 30m
//!   from_kubernetes: true     # a Deployment's new ReplicaSet is a release
//!   gate:
//!     prod:                   # per environment; `default` for the others
//!       freeze: [friday-evening, holidays]      # names in time_intervals
//!       freeze_cron: [{cron: "0 18 * * 5", duration: 62h, time_zone: Asia/Shanghai}]
//!   auto_rollback: {action: rollback}
//!   alert: {severity: warning}  # raise ReleaseSuspected to head its incident
//! remediation:
//!   allowed_hosts: [deploy.example.com]
//!   actions:
//!     - name: rollback
//!       url: "https://deploy.example.com/api/apps/{{ app }}/rollback"
//!       headers: {Authorization: {env: DEPLOY_TOKEN}}
//!       body: '{"version": "{{ rollback_to }}", "env": "{{ env }}"}'
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::PromDuration;
use crate::escalate::schedule::UnixCron;
use crate::evaluate::matcher::Matchers;
use crate::evaluate::time_interval::TimeIntervalSet;
use crate::eventlog::LabelSet;
use crate::notify::secret::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasesConfig {
    /// The alert label naming the app (then `service`).
    pub app_label: String,
    /// The alert label naming the environment (then `environment`).
    pub env_label: String,
    pub cluster_label: String,
    /// How long after a release starts new trouble of its app is linked
    /// to it.
    pub bake_window: PromDuration,
    /// Record a Deployment's first scale-up of a new ReplicaSet as a
    /// release.
    pub from_kubernetes: bool,
    /// The environment of releases seen in Kubernetes; empty: the
    /// namespace.
    pub kubernetes_env: String,
    /// Gate rules by environment; `default` for environments not named.
    pub gate: BTreeMap<String, GateRules>,
    pub auto_rollback: Option<AutoRollback>,
    /// Raise `ReleaseSuspected` for a release whose bake window alerts of
    /// its app fire in, so the release can head their incident (off when
    /// absent).
    pub alert: Option<ReleaseAlertConfig>,
}

/// `releases.alert`: Fenghuo's own alert for a suspected release.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseAlertConfig {
    /// Its `severity` label (routes and late joiners read it).
    #[serde(default = "warning")]
    pub severity: String,
}

fn warning() -> String {
    "warning".into()
}

impl Default for ReleasesConfig {
    fn default() -> Self {
        ReleasesConfig {
            app_label: "app".into(),
            env_label: "env".into(),
            cluster_label: "cluster".into(),
            bake_window: PromDuration(chrono::Duration::minutes(30)),
            from_kubernetes: false,
            kubernetes_env: String::new(),
            gate: BTreeMap::new(),
            auto_rollback: None,
            alert: None,
        }
    }
}

/// What the gate checks for one environment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateRules {
    pub checks: Vec<GateCheck>,
    /// Names of `time_intervals` during which nothing is released.
    pub freeze: Vec<String>,
    pub freeze_cron: Vec<FreezeCron>,
    /// Alerts with `severity` in this list count as critical.
    pub critical_severities: Vec<String>,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            checks: vec![
                GateCheck::CriticalAlerts,
                GateCheck::UnackedIncidents,
                GateCheck::Freeze,
                GateCheck::Baking,
            ],
            freeze: Vec::new(),
            freeze_cron: Vec::new(),
            critical_severities: vec!["critical".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateCheck {
    CriticalAlerts,
    UnackedIncidents,
    Freeze,
    Baking,
}

/// A freeze that starts when a 5-field Unix cron expression matches and
/// lasts `duration`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FreezeCron {
    pub cron: String,
    pub duration: PromDuration,
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Shown in the gate's reason; the expression if empty.
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    /// The remediation action to call with the rollback target.
    pub action: String,
    /// Severities that trigger it.
    #[serde(default = "critical")]
    pub severities: Vec<String>,
}

fn critical() -> Vec<String> {
    vec!["critical".into()]
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// Hosts a hook may call; a rendered URL with any other host is
    /// refused and recorded. Empty: no hook may call anything.
    pub allowed_hosts: Vec<String>,
    /// Runs per action per app per hour, unless the action says.
    pub max_runs_per_hour: u32,
    pub timeout: PromDuration,
    /// Retries back off from `initial_backoff` up to `max_backoff`, for
    /// `retry_for` after the decision.
    pub retry_for: PromDuration,
    pub initial_backoff: PromDuration,
    pub max_backoff: PromDuration,
    pub actions: Vec<ActionConfig>,
    /// Alerts these match run these actions (once per incident, or per
    /// release when the alert is suspected of one).
    pub routes: Vec<RemediationRoute>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            allowed_hosts: Vec::new(),
            max_runs_per_hour: 3,
            timeout: PromDuration(chrono::Duration::seconds(10)),
            retry_for: PromDuration(chrono::Duration::minutes(10)),
            initial_backoff: PromDuration(chrono::Duration::seconds(1)),
            max_backoff: PromDuration(chrono::Duration::minutes(1)),
            actions: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// An HTTP call with method, URL, headers and body; URL and body are tera
/// templates, header values are secrets (never recorded).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    pub name: String,
    #[serde(default = "post")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub body: String,
    /// Record what would be called; call nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait for a person's approval (API or the page's link).
    #[serde(default)]
    pub require_ack: bool,
    #[serde(default)]
    pub max_runs_per_hour: Option<u32>,
    #[serde(default)]
    pub timeout: Option<PromDuration>,
}

fn post() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemediationRoute {
    #[serde(default)]
    pub matchers: Matchers,
    pub actions: Vec<String>,
}

impl ReleasesConfig {
    /// The gate rules of `env`: its own, else `default`, else built-in.
    pub fn gate_rules(&self, env: &str) -> GateRules {
        self.gate
            .get(env)
            .or_else(|| self.gate.get("default"))
            .cloned()
            .unwrap_or_default()
    }

    /// The app an alert (or event) with `labels` is about.
    pub fn app_of<'a>(&self, labels: &'a LabelSet) -> Option<&'a str> {
        first(labels, &[&self.app_label, "app", "service"])
    }

    pub fn env_of<'a>(&self, labels: &'a LabelSet) -> Option<&'a str> {
        first(labels, &[&self.env_label, "env", "environment"])
    }

    pub fn cluster_of<'a>(&self, labels: &'a LabelSet) -> Option<&'a str> {
        first(labels, &[&self.cluster_label, "cluster"])
    }

    /// Refuses names and expressions that do not resolve.
    pub fn check(
        &self,
        intervals: &TimeIntervalSet,
        remediation: &RemediationConfig,
    ) -> Result<(), String> {
        if self.bake_window.0 <= chrono::Duration::zero() {
            return Err("releases.bake_window: must be more than 0s".into());
        }
        for (env, rules) in &self.gate {
            for name in &rules.freeze {
                if !intervals.contains_name(name) {
                    return Err(format!(
                        "releases.gate.{env}.freeze: undefined time interval {name:?}"
                    ));
                }
            }
            for f in &rules.freeze_cron {
                UnixCron::parse(&f.cron)
                    .map_err(|e| format!("releases.gate.{env}.freeze_cron: {e}"))?;
                if let Some(tz) = &f.time_zone {
                    tz.parse::<chrono_tz::Tz>().map_err(|_| {
                        format!("releases.gate.{env}.freeze_cron: unknown time_zone {tz:?}")
                    })?;
                }
            }
        }
        if let Some(alert) = &self.alert
            && alert.severity.trim().is_empty()
        {
            return Err("releases.alert.severity: must not be empty".into());
        }
        if let Some(auto) = &self.auto_rollback
            && !remediation.actions.iter().any(|a| a.name == auto.action)
        {
            return Err(format!(
                "releases.auto_rollback.action: undefined remediation action {:?}",
                auto.action
            ));
        }
        Ok(())
    }
}

impl RemediationConfig {
    pub fn action(&self, name: &str) -> Option<&ActionConfig> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// Actions have unique names, templates that compile, methods HTTP
    /// knows; routes name actions that exist.
    pub fn check(&self) -> Result<(), String> {
        for (i, a) in self.actions.iter().enumerate() {
            if a.name.is_empty() {
                return Err(format!("remediation.actions[{i}]: name is required"));
            }
            if self.actions[..i].iter().any(|b| b.name == a.name) {
                return Err(format!(
                    "remediation.actions[{i}]: name {:?} is not unique",
                    a.name
                ));
            }
            reqwest::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes()).map_err(
                |_| {
                    format!(
                        "remediation.actions.{}.method: {:?} is not an HTTP method",
                        a.name, a.method
                    )
                },
            )?;
            for name in a.headers.keys() {
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    format!(
                        "remediation.actions.{}.headers: {name:?} is not a header name",
                        a.name
                    )
                })?;
            }
            super::hook::Templates::compile(a)
                .map_err(|e| format!("remediation.actions.{}: {e}", a.name))?;
        }
        for (i, r) in self.routes.iter().enumerate() {
            for name in &r.actions {
                if self.action(name).is_none() {
                    return Err(format!(
                        "remediation.routes[{i}].actions: undefined action {name:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn first<'a>(labels: &'a LabelSet, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .filter(|n| !n.is_empty())
        .find_map(|n| labels.get(n))
        .filter(|v| !v.is_empty())
}
