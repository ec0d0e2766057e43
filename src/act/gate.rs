//! The release gate: may `app` be released to `env` (and `cluster`) now?
//!
//! The answer is allow, or deny with every reason that applies: critical
//! alerts firing for the app, an open incident of the app nobody has
//! acknowledged, a freeze window (named time intervals or cron), a release
//! of the same app still baking. Which of these count is configured per
//! environment. This module reads the views and answers; recording the
//! answer (`release.gate_decided`) before it is given is the API's.

use chrono::{DateTime, Utc};

use super::config::{GateCheck, ReleasesConfig};
use super::release::Releases;
use crate::escalate::incident::Incidents;
use crate::escalate::schedule::UnixCron;
use crate::evaluate::Fingerprint;
use crate::evaluate::alerts::AlertStore;
use crate::evaluate::time_interval::TimeIntervalSet;
use crate::eventlog::LabelSet;
use crate::eventlog::event::GateDecision;

/// What the gate reads.
pub struct GateViews<'a> {
    pub config: &'a ReleasesConfig,
    pub intervals: &'a TimeIntervalSet,
    pub alerts: &'a AlertStore,
    pub incidents: &'a Incidents,
    pub releases: &'a Releases,
}

/// Whether labels are about `app` in `env` (and `cluster`): a label the
/// alert does not carry does not rule it out.
fn about(config: &ReleasesConfig, labels: &LabelSet, app: &str, env: &str, cluster: &str) -> bool {
    config.app_of(labels) == Some(app)
        && config.env_of(labels).is_none_or(|e| e == env)
        && (cluster.is_empty() || config.cluster_of(labels).is_none_or(|c| c == cluster))
}

/// The gate's answer at `now`.
pub fn decide(
    views: &GateViews<'_>,
    app: &str,
    env: &str,
    cluster: &str,
    now: DateTime<Utc>,
) -> GateDecision {
    let config = views.config;
    let rules = config.gate_rules(env);
    let mut reasons = Vec::new();
    for check in &rules.checks {
        match check {
            GateCheck::CriticalAlerts => {
                let firing = views.alerts.filtered(|a| {
                    a.firing_at(now)
                        && about(config, &a.report.labels, app, env, cluster)
                        && a.report
                            .labels
                            .get("severity")
                            .is_some_and(|s| rules.critical_severities.iter().any(|c| c == s))
                });
                if !firing.is_empty() {
                    let names: Vec<&str> = firing
                        .iter()
                        .filter_map(|(_, a)| a.report.labels.get("alertname"))
                        .take(5)
                        .collect();
                    reasons.push(format!(
                        "{} critical alert{} firing for {app} in {env} ({})",
                        firing.len(),
                        if firing.len() == 1 { "" } else { "s" },
                        names.join(", ")
                    ));
                }
            }
            GateCheck::UnackedIncidents => {
                for incident in views.incidents.open() {
                    if incident.ack.is_some() {
                        continue;
                    }
                    let of_app = incident.firing.strings().any(|fp| {
                        Fingerprint::parse(&fp)
                            .and_then(|fp| views.alerts.get(fp))
                            .is_some_and(|a| about(config, &a.report.labels, app, env, cluster))
                    });
                    if of_app {
                        reasons.push(format!(
                            "incident {} of {app} is open and unacknowledged",
                            incident.id
                        ));
                    }
                }
            }
            GateCheck::Freeze => {
                if let Ok(names) = views
                    .intervals
                    .containing(rules.freeze.iter().map(String::as_str), now)
                {
                    for name in names {
                        reasons.push(format!("freeze window {name:?} is in force"));
                    }
                }
                for f in &rules.freeze_cron {
                    if let Some(until) =
                        cron_freeze_until(&f.cron, f.time_zone.as_deref(), f.duration.0, now)
                    {
                        let name = if f.name.is_empty() { &f.cron } else { &f.name };
                        reasons.push(format!(
                            "freeze window {name:?} is in force until {}",
                            until.to_rfc3339()
                        ));
                    }
                }
            }
            GateCheck::Baking => {
                let window = config.bake_window.0;
                let cluster = (!cluster.is_empty()).then_some(cluster);
                for r in views.releases.baking(app, Some(env), cluster, now, window) {
                    let until = r.started_at.map(|s| s + window).unwrap_or(now);
                    reasons.push(format!(
                        "release {} of {app} ({}{}) is still baking until {}",
                        r.release.id,
                        r.release.version,
                        if r.release.by.is_empty() {
                            String::new()
                        } else {
                            format!(" by {}", r.release.by)
                        },
                        until.to_rfc3339()
                    ));
                }
            }
        }
    }
    GateDecision {
        app: app.to_string(),
        env: env.to_string(),
        cluster: cluster.to_string(),
        allowed: reasons.is_empty(),
        reasons,
        asked_by: String::new(),
    }
}

/// When a cron freeze in force at `now` ends: it started at the latest
/// match of `expr` (in `zone`) at or before `now` and lasts `duration`.
pub fn cron_freeze_until(
    expr: &str,
    zone: Option<&str>,
    duration: chrono::Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let cron = UnixCron::parse(expr).ok()?;
    let tz: chrono_tz::Tz = zone.unwrap_or("UTC").parse().ok()?;
    let local = now.with_timezone(&tz).naive_local();
    let start = cron.matches_at_or_before(local).next()?;
    let end_local = start + duration;
    (local < end_local).then(|| {
        end_local
            .and_local_timezone(tz)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fridays from 18:00 for 62 hours, in Shanghai: one row per instant.
    #[test]
    fn a_cron_freeze_holds_from_its_match_for_its_duration() {
        let d = chrono::Duration::hours(62);
        let cases = [
            // UTC instant, frozen? (Friday 2026-11-27 18:00 +08 = 10:00Z)
            ("2026-11-27T09:59:00Z", false),
            ("2026-11-27T10:00:00Z", true),
            ("2026-11-29T23:59:00Z", true),
            ("2026-11-30T00:00:00Z", false),
            ("2026-11-25T12:00:00Z", false),
        ];
        for (at, frozen) in cases {
            let got =
                cron_freeze_until("0 18 * * 5", Some("Asia/Shanghai"), d, at.parse().unwrap());
            assert_eq!(got.is_some(), frozen, "{at}");
        }
    }
}
