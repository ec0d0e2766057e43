//! Escalation policies as configured (`escalation_policies:` in
//! `fenghuo.yaml`), checked at load: what happens, step by step, while an
//! incident stays unacknowledged.
//!
//! ```yaml
//! escalation_policies:
//!   - name: platform
//!     repeat: 1                  # run the steps once more after the last
//!     ack_timeout: 1h            # an acknowledgement lapses after an hour
//!     steps:
//!       - notify: {schedules: [primary], via: [sre-dingtalk]}
//!       - wait: 5m
//!       - notify: {schedules: [primary, secondary], via: [oncall-email]}
//!       - wait: 15m
//!       - only_if: {outside: [office-hours]}
//!       - notify: {people: [lead], via: [oncall-email]}
//! ```
//!
//! A route names its policy with `escalation: platform` (children inherit
//! it). This module owns the shape and its validation only; taking steps is
//! [`super::escalator`]'s.

use serde::Deserialize;

use crate::config::PromDuration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// How many more times the steps run after the last one (0: once).
    #[serde(default)]
    pub repeat: u32,
    /// An acknowledgement taken this long ago lapses and escalation resumes
    /// with the next step. Unset: acknowledgements hold.
    #[serde(default)]
    pub ack_timeout: Option<PromDuration>,
    /// A new alert joining an acknowledged incident pages whoever
    /// acknowledged it, through the channels that reached them.
    #[serde(default = "yes")]
    pub renotify_acknowledger: bool,
    pub steps: Vec<StepConfig>,
}

fn yes() -> bool {
    true
}

/// One step; written as a one-key map (`- wait: 5m`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "StepKeys")]
pub enum StepConfig {
    /// Page people (by name, or whoever a schedule has on call) through
    /// receivers; with no people, the receivers alone (a team channel).
    Notify(NotifyStep),
    /// Hold the next step this long.
    Wait(PromDuration),
    /// The steps after this one run only while the condition holds; when
    /// it does not, this pass through the policy ends here.
    OnlyIf(Condition),
}

/// The YAML of a step: exactly one of its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepKeys {
    notify: Option<NotifyStep>,
    wait: Option<PromDuration>,
    only_if: Option<Condition>,
}

impl TryFrom<StepKeys> for StepConfig {
    type Error = String;

    fn try_from(k: StepKeys) -> Result<Self, String> {
        match (k.notify, k.wait, k.only_if) {
            (Some(n), None, None) => Ok(StepConfig::Notify(n)),
            (None, Some(d), None) => Ok(StepConfig::Wait(d)),
            (None, None, Some(c)) => Ok(StepConfig::OnlyIf(c)),
            (None, None, None) => Err("a step needs one of notify, wait, only_if".into()),
            _ => Err("a step is one of notify, wait, only_if; write each as its own step".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyStep {
    #[serde(default)]
    pub people: Vec<String>,
    #[serde(default)]
    pub schedules: Vec<String>,
    /// Receivers the page goes through: each person is mentioned there (IM)
    /// or is the recipient (email).
    pub via: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Holds only inside one of these time intervals.
    #[serde(default)]
    pub within: Vec<String>,
    /// Holds only outside all of these time intervals.
    #[serde(default)]
    pub outside: Vec<String>,
    /// Holds only if the incident has more than this many firing alerts.
    #[serde(default)]
    pub alerts_more_than: Option<usize>,
}

/// What a policy may refer to, for checking it.
pub struct Names<'a> {
    pub receivers: &'a dyn Fn(&str) -> bool,
    pub intervals: &'a dyn Fn(&str) -> bool,
    pub people: &'a dyn Fn(&str) -> bool,
    pub schedules: &'a dyn Fn(&str) -> bool,
}

/// Checks every policy: unique names, known receivers, people, schedules
/// and time intervals, waits longer than zero, and a `repeat` only where a
/// wait keeps the repetition from paging in a tight loop.
pub fn check(policies: &[PolicyConfig], names: &Names<'_>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for p in policies {
        let at = format!("escalation_policies: {:?}", p.name);
        if p.name.is_empty() {
            return Err("escalation_policies: a policy needs a name".into());
        }
        if !seen.insert(p.name.as_str()) {
            return Err(format!("{at}: defined twice"));
        }
        if p.steps.is_empty() {
            return Err(format!("{at}: has no steps"));
        }
        if let Some(t) = p.ack_timeout
            && t.0 <= chrono::Duration::zero()
        {
            return Err(format!("{at}: ack_timeout must be more than 0s"));
        }
        let mut waits = false;
        for (i, step) in p.steps.iter().enumerate() {
            let at = format!("{at}: step {}", i + 1);
            match step {
                StepConfig::Notify(n) => {
                    if n.via.is_empty() {
                        return Err(format!(
                            "{at}: notify needs `via:` (the receivers to page through)"
                        ));
                    }
                    for r in &n.via {
                        if !(names.receivers)(r) {
                            return Err(format!("{at}: undefined receiver {r:?}"));
                        }
                    }
                    for person in &n.people {
                        if !(names.people)(person) {
                            return Err(format!("{at}: unknown person {person:?} (see people:)"));
                        }
                    }
                    for s in &n.schedules {
                        if !(names.schedules)(s) {
                            return Err(format!("{at}: unknown schedule {s:?} (see schedules:)"));
                        }
                    }
                }
                StepConfig::Wait(d) => {
                    if d.0 <= chrono::Duration::zero() {
                        return Err(format!("{at}: wait must be more than 0s"));
                    }
                    waits = true;
                }
                StepConfig::OnlyIf(c) => {
                    if c.within.is_empty() && c.outside.is_empty() && c.alerts_more_than.is_none() {
                        return Err(format!(
                            "{at}: only_if needs within, outside or alerts_more_than"
                        ));
                    }
                    for name in c.within.iter().chain(&c.outside) {
                        if !(names.intervals)(name) {
                            return Err(format!("{at}: undefined time interval {name:?}"));
                        }
                    }
                }
            }
        }
        if p.repeat > 0 && !waits {
            return Err(format!(
                "{at}: repeat needs a wait step, or every repetition pages at once"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<PolicyConfig>, String> {
        let policies: Vec<PolicyConfig> = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        let known = |s: &str| !s.starts_with("unknown");
        check(
            &policies,
            &Names {
                receivers: &known,
                intervals: &known,
                people: &known,
                schedules: &known,
            },
        )?;
        Ok(policies)
    }

    #[test]
    fn steps_are_one_key_maps() {
        let p = parse(
            "- name: p\n  steps:\n    - notify: {people: [alice], via: [mail]}\n    - wait: 5m\n    - only_if: {outside: [office]}\n    - notify: {schedules: [primary], via: [mail, im]}\n",
        )
        .unwrap();
        assert_eq!(p[0].steps.len(), 4);
        assert_eq!(
            p[0].steps[1],
            StepConfig::Wait(PromDuration(chrono::Duration::minutes(5)))
        );
        assert!(p[0].renotify_acknowledger);
    }

    /// (policy, the error wanted).
    #[test]
    fn bad_policies_are_refused_with_where_and_why() {
        let cases = [
            ("- name: p\n  steps: []\n", "has no steps"),
            (
                "- name: p\n  steps:\n    - notify: {people: [a]}\n",
                "missing field `via`",
            ),
            (
                "- name: p\n  steps:\n    - notify: {people: [a], via: []}\n",
                "notify needs `via:`",
            ),
            (
                "- name: p\n  steps:\n    - notify: {via: [unknown-r]}\n",
                "undefined receiver",
            ),
            (
                "- name: p\n  steps:\n    - notify: {people: [unknown-p], via: [r]}\n",
                "unknown person",
            ),
            (
                "- name: p\n  steps:\n    - notify: {schedules: [unknown-s], via: [r]}\n",
                "unknown schedule",
            ),
            (
                "- name: p\n  steps:\n    - wait: 0s\n",
                "wait must be more than 0s",
            ),
            (
                "- name: p\n  steps:\n    - wait: soon\n",
                "invalid duration \"soon\"",
            ),
            ("- name: p\n  steps:\n    - only_if: {}\n", "only_if needs"),
            (
                "- name: p\n  steps:\n    - only_if: {within: [unknown-i]}\n",
                "undefined time interval",
            ),
            (
                "- name: p\n  repeat: 2\n  steps:\n    - notify: {via: [r]}\n",
                "repeat needs a wait",
            ),
            (
                "- name: p\n  steps:\n    - shout: loud\n",
                "unknown field `shout`",
            ),
            (
                "- name: p\n  steps:\n    - {wait: 1m, notify: {via: [r]}}\n",
                "write each as its own step",
            ),
            (
                "- name: p\n  steps:\n    - wait: 1m\n- name: p\n  steps:\n    - wait: 1m\n",
                "defined twice",
            ),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
