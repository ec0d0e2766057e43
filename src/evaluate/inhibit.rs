//! Alertmanager's `inhibit_rules`: a firing alert (the source) mutes others
//! (the targets) that share some labels with it.
//!
//! ```yaml
//! inhibit_rules:
//!   - source_matchers: [severity="critical"]
//!     target_matchers: [severity="warning"]
//!     equal: [alertname, cluster]
//! ```
//!
//! Semantics are Alertmanager's (`inhibit/inhibit.go`):
//!
//! * a rule applies to a target when the target matches `target_matchers`;
//! * a firing alert inhibits the target through the rule when it matches
//!   `source_matchers` and every label in `equal` has the same value on both
//!   (a label missing on one side has the value `""`, so a label missing on
//!   both counts as equal);
//! * when the target also matches `source_matchers`, sources that also match
//!   `target_matchers` are disregarded (`excludeTwoSidedMatch`): alerts on
//!   both sides of a rule do not inhibit each other, and so an alert never
//!   inhibits itself;
//! * legacy `source_match` / `target_match` (`=`) and `source_match_re` /
//!   `target_match_re` (`=~`, anchored) are combined with the matchers, their
//!   keys must be classic label names; `equal` names must not be empty.
//!
//! Sources are all firing alerts, whether or not they are themselves
//! silenced or inhibited: Alertmanager's source cache holds every alert that
//! matches the source side until it resolves.
//!
//! Fenghuo's addition, **inhibition with memory** (a deliberate difference):
//! when a source resolves while its targets still fire, Alertmanager
//! releases them at once, so a symptom that would have recovered with its
//! cause pages anyway. Here a rule's `grace` (default 10m, twice
//! Alertmanager's default `group_interval`; `grace: 0s` is Alertmanager's
//! behaviour) keeps a resolved source inhibiting for that long after it
//! resolved: its targets stay muted with the reason `<fp> (cause resolved at
//! T, grace until T+g)`, page only if they still fire after it, and never
//! page if they recover inside it. The resolve time is the source's `endsAt`
//! as the log holds it, so this is state derived from the log and replay
//! decides nothing.
//!
//! Fenghuo's addition, **joining through the topology**: a rule with
//! `through: placement | workload | dependency | release` inhibits only a
//! target that is the source's symptom that way (see
//! [`super::topology`]): a pod or service running on the node a
//! NodeNotReady is about shares no label with it. The reason names the
//! join: `<fp> through node-7 placement`. Only [`inhibitions_at`] with the
//! topology joins; the label-only functions ([`inhibitors`],
//! [`InhibitRule::inhibits`], [`inhibitors_at`]) leave such rules out.
//!
//! One deliberate difference: [`inhibitors`] returns every inhibiting alert,
//! over all rules, sorted. Alertmanager stops at the first rule that has one
//! and records a single, arbitrary one (its cache is a Go map). The decision
//! (inhibited or not) is the same; Fenghuo's record of why is complete and
//! does not depend on iteration order, so replay gives the same answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Duration, Utc};

use super::matcher::Matchers;
use super::route::{legacy_matchers, nullable};
use super::topology::{Facts, Joins, Through};
use crate::config::PromDuration;
use crate::eventlog::LabelSet;

/// One entry of `inhibit_rules:`, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Optional name (accepted by recent Alertmanager versions), shown in
    /// explanations.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub source_matchers: Matchers,
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub target_matchers: Matchers,
    /// Labels whose values must be equal on source and target.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub equal: Vec<String>,
    /// Deprecated in Alertmanager, still accepted: label → exact value.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub source_match: BTreeMap<String, String>,
    /// Deprecated in Alertmanager, still accepted: label → regex (anchored).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub target_match: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub target_match_re: BTreeMap<String, String>,
    /// Fenghuo: how long a resolved source keeps inhibiting (default 10m;
    /// `0s` releases the targets at once, as Alertmanager does).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_grace"
    )]
    pub grace: Option<PromDuration>,
    /// Fenghuo: the source must also be the target's cause through the
    /// topology (see [`super::topology::Through`]): `placement`,
    /// `workload`, `dependency` or `release`. Without it, `equal` alone
    /// joins them, as in Alertmanager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Through>,
}

fn serialize_grace<S: serde::Serializer>(
    d: &Option<PromDuration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

/// How long a resolved source keeps inhibiting when a rule does not say:
/// twice Alertmanager's default `group_interval`, so a symptom gets two
/// flushes to recover with its cause.
pub const DEFAULT_GRACE_SECS: i64 = 600;

/// An inhibit rule that Alertmanager would refuse; `path` is
/// `inhibit_rules[i]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InhibitRuleError {
    pub path: String,
    pub message: String,
}

/// A compiled inhibit rule (Alertmanager's `InhibitRule`).
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    name: String,
    source_matchers: Matchers,
    target_matchers: Matchers,
    equal: BTreeSet<String>,
    grace: Duration,
    through: Option<Through>,
}

impl InhibitRule {
    /// Validates and compiles one rule (Alertmanager's `NewInhibitRule` and
    /// the checks of `InhibitRule.UnmarshalYAML`). The error has no path;
    /// [`InhibitRule::compile`] adds it.
    pub fn new(cfg: &InhibitRuleConfig) -> Result<InhibitRule, String> {
        let source_matchers = legacy_matchers(
            "source_",
            &cfg.source_match,
            &cfg.source_match_re,
            &cfg.source_matchers,
        )?;
        let target_matchers = legacy_matchers(
            "target_",
            &cfg.target_match,
            &cfg.target_match_re,
            &cfg.target_matchers,
        )?;
        let mut equal = BTreeSet::new();
        for name in &cfg.equal {
            if name.is_empty() {
                return Err(format!("invalid label name {name:?} in equal list"));
            }
            equal.insert(name.clone());
        }
        let grace = match cfg.grace {
            Some(d) if d.0 < Duration::zero() => return Err("grace cannot be negative".into()),
            Some(d) => d.0,
            None => Duration::seconds(DEFAULT_GRACE_SECS),
        };
        Ok(InhibitRule {
            name: cfg.name.clone(),
            source_matchers,
            target_matchers,
            equal,
            grace,
            through: cfg.through,
        })
    }

    /// Compiles the `inhibit_rules` section, naming the first bad rule.
    pub fn compile(cfgs: &[InhibitRuleConfig]) -> Result<Vec<InhibitRule>, InhibitRuleError> {
        cfgs.iter()
            .enumerate()
            .map(|(i, cfg)| {
                InhibitRule::new(cfg).map_err(|message| InhibitRuleError {
                    path: format!("inhibit_rules[{i}]"),
                    message,
                })
            })
            .collect()
    }

    /// The rule's `name` (empty when not given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `source_match`, `source_match_re` and `source_matchers`, combined.
    pub fn source_matchers(&self) -> &Matchers {
        &self.source_matchers
    }

    /// `target_match`, `target_match_re` and `target_matchers`, combined.
    pub fn target_matchers(&self) -> &Matchers {
        &self.target_matchers
    }

    pub fn equal(&self) -> &BTreeSet<String> {
        &self.equal
    }

    /// How long a resolved source keeps inhibiting.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The topology join the rule requires beyond `equal`, if any.
    pub fn through(&self) -> Option<Through> {
        self.through
    }

    /// Whether a firing alert with labels `source` inhibits `target` through
    /// this rule.
    pub fn inhibits(&self, target: &LabelSet, source: &LabelSet) -> bool {
        self.through.is_none()
            && self.target_matchers.matches(target)
            && self.source_matchers.matches(source)
            && self.has_equal(target, source, self.source_matchers.matches(target))
    }

    /// Alertmanager's `hasEqual` for one source that matched the source
    /// side: the `equal` labels agree, and with `exclude_two_sided_match`
    /// the source does not also match the target side.
    fn has_equal(
        &self,
        target: &LabelSet,
        source: &LabelSet,
        exclude_two_sided_match: bool,
    ) -> bool {
        self.equal
            .iter()
            .all(|name| value(source, name) == value(target, name))
            && !(exclude_two_sided_match && self.target_matchers.matches(source))
    }
}

/// A label's value, `""` when missing (as in Prometheus' model).
fn value<'a>(labels: &'a LabelSet, name: &str) -> &'a str {
    labels.get(name).unwrap_or("")
}

/// The fingerprints of the firing alerts that inhibit `target`, over all
/// rules, sorted and without duplicates; empty when `target` is not
/// inhibited. `firing_sources` are all firing alerts (fingerprint, labels);
/// the target itself may be among them, it never inhibits itself.
pub fn inhibitors<'a>(
    rules: &[InhibitRule],
    target: &LabelSet,
    firing_sources: impl Iterator<Item = (&'a str, &'a LabelSet)>,
) -> Vec<String> {
    // The rules whose target side matches, each with Alertmanager's
    // `excludeTwoSidedMatch` for this target.
    let applicable: Vec<(&InhibitRule, bool)> = rules
        .iter()
        .filter(|r| r.through.is_none() && r.target_matchers.matches(target))
        .map(|r| (r, r.source_matchers.matches(target)))
        .collect();
    if applicable.is_empty() {
        return Vec::new();
    }
    let found: BTreeSet<&str> = firing_sources
        .filter(|(_, source)| {
            applicable.iter().any(|(rule, exclude)| {
                rule.source_matchers.matches(source) && rule.has_equal(target, source, *exclude)
            })
        })
        .map(|(fingerprint, _)| fingerprint)
        .collect();
    found.into_iter().map(str::to_owned).collect()
}

/// A possible source: firing (`resolved_at` is `None`), or resolved at a
/// time.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub fingerprint: &'a str,
    pub labels: &'a LabelSet,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The longest grace of `rules`: sources resolved longer ago than this
/// inhibit nothing.
pub fn longest_grace(rules: &[InhibitRule]) -> Duration {
    rules
        .iter()
        .map(|r| r.grace)
        .max()
        .unwrap_or(Duration::zero())
}

/// One alert inhibiting another: which, through what join of the
/// topology (none for a rule joining by `equal` alone), and, for a source
/// that resolved, when and until when its grace runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Inhibition {
    pub source: String,
    /// `node-7 placement`, `workload web`, …
    pub through: Option<String>,
    /// (resolved at, grace until) of a resolved source.
    pub resolved: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl std::fmt::Display for Inhibition {
    /// The reason recorded in `notification.due.muted`: `<fp>`, `<fp>
    /// through node-7 placement`, then ` (cause resolved at T, grace until
    /// T+g)` for a resolved source.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)?;
        if let Some(through) = &self.through {
            write!(f, " through {through}")?;
        }
        if let Some((at, until)) = self.resolved {
            write!(
                f,
                " (cause resolved at {}, grace until {})",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                until.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )?;
        }
        Ok(())
    }
}

/// Why `target` is inhibited at `now`, over all rules, sorted and without
/// duplicates; empty when it is not. A firing source is named by its
/// fingerprint (as [`inhibitors`] does); a source resolved within a rule's
/// grace by `<fp> (cause resolved at T, grace until T+g)`, with the longest
/// grace of the rules it inhibits the target through. Rules with
/// `through:` join nothing here (no topology): see [`inhibitions_at`].
pub fn inhibitors_at<'a>(
    rules: &[InhibitRule],
    target: &LabelSet,
    sources: impl Iterator<Item = Source<'a>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    inhibitions_at(rules, ("", target), sources, now, None)
        .into_iter()
        .map(|i| i.to_string())
        .collect()
}

/// What inhibits the target (fingerprint, labels) at `now`, over all
/// rules, one entry per source, sorted. Rules with `through:` join a
/// source and the target only when `joins` says the target is the
/// source's symptom that way; without `joins` they join nothing. A source
/// that inhibits through a rule with `equal` alone is named without a
/// join; otherwise with the first join (in rule order) that holds.
pub fn inhibitions_at<'a>(
    rules: &[InhibitRule],
    (fingerprint, target): (&str, &LabelSet),
    sources: impl Iterator<Item = Source<'a>>,
    now: DateTime<Utc>,
    joins: Option<&Joins>,
) -> Vec<Inhibition> {
    let applicable: Vec<(&InhibitRule, bool)> = rules
        .iter()
        .filter(|r| r.target_matchers.matches(target))
        .filter(|r| r.through.is_none() || joins.is_some())
        .map(|r| (r, r.source_matchers.matches(target)))
        .collect();
    if applicable.is_empty() {
        return Vec::new();
    }
    // What the topology knows of the target: asked once, and only when a
    // rule with `through:` gets that far.
    let target_facts: std::cell::OnceCell<Facts> = std::cell::OnceCell::new();
    let mut found: BTreeSet<Inhibition> = BTreeSet::new();
    // Every (target, source) pair passes here: nothing is built for a
    // pair until a rule's source side and `equal` hold.
    for source in sources {
        // The longest grace of the rules it inhibits the target through,
        // whether one of them joins by `equal` alone, else the first join.
        let mut grace: Option<Duration> = None;
        let mut by_equal = false;
        let mut how: Option<String> = None;
        for (rule, exclude) in &applicable {
            if !(rule.source_matchers.matches(source.labels)
                && rule.has_equal(target, source.labels, *exclude))
            {
                continue;
            }
            match (rule.through, joins) {
                (None, _) => by_equal = true,
                (Some(through), Some(joins)) => {
                    let facts = target_facts.get_or_init(|| joins.facts(fingerprint, target));
                    match joins.join(
                        through,
                        (target, facts),
                        (source.fingerprint, source.labels),
                    ) {
                        Some(joined) => {
                            how.get_or_insert(joined);
                        }
                        None => continue,
                    }
                }
                (Some(_), None) => continue,
            }
            grace = grace.max(Some(rule.grace));
        }
        let Some(grace) = grace else {
            continue;
        };
        let resolved = match source.resolved_at {
            None => None,
            Some(at) if now >= at + grace => continue,
            Some(at) => Some((at, at + grace)),
        };
        found.insert(Inhibition {
            source: source.fingerprint.to_string(),
            // By `equal` alone wins: it needs no topology to explain.
            through: if by_equal { None } else { how },
            resolved,
        });
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::Fingerprint;

    /// Label pairs as written in a table.
    type Pairs = &'static [(&'static str, &'static str)];

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fp(l: &LabelSet) -> String {
        Fingerprint::of(l).to_string()
    }

    fn rules(yaml: &str) -> Vec<InhibitRule> {
        let cfgs: Vec<InhibitRuleConfig> =
            yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"));
        InhibitRule::compile(&cfgs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `inhibitors` over a list of firing alerts, fingerprints computed.
    fn inhibited_by(rules: &[InhibitRule], target: &LabelSet, firing: &[LabelSet]) -> Vec<String> {
        let fps: Vec<String> = firing.iter().map(fp).collect();
        inhibitors(
            rules,
            target,
            fps.iter().map(String::as_str).zip(firing.iter()),
        )
    }

    /// inhibit_test.go TestInhibitRuleHasEqual: the `equal` check alone, on
    /// sources already known to match the source side (resolved sources are
    /// simply not firing, so not passed).
    #[test]
    fn has_equal() {
        // (firing sources, equal, target, inhibited)
        let rows: &[(&[Pairs], &[&str], Pairs, bool)] = &[
            // No source alerts at all.
            (&[], &[], &[("a", "b")], false),
            // No equal labels: any source alert satisfies the requirement.
            (&[&[]], &[], &[("a", "b")], true),
            // Matching but already resolved: no firing sources.
            (&[], &["a", "b"], &[("a", "b"), ("b", "c")], false),
            // Matching and unresolved (the second source; the first resolved).
            (&[&[("a", "b"), ("c", "f")]], &["a"], &[("a", "b")], true),
            // Equal label does not match.
            (
                &[&[("a", "c"), ("c", "d")], &[("a", "c"), ("c", "f")]],
                &["a"],
                &[("a", "b")],
                false,
            ),
            // A label missing on both sides counts as equal.
            (&[&[("x", "1")]], &["cluster"], &[("y", "2")], true),
            // Missing on one side is "" against a value: not equal.
            (&[&[("cluster", "eu")]], &["cluster"], &[("y", "2")], false),
        ];
        for (sources, equal, target, want) in rows {
            let rule = InhibitRule {
                name: String::new(),
                source_matchers: Matchers::new(),
                target_matchers: Matchers::new(),
                equal: equal.iter().map(|s| s.to_string()).collect(),
                grace: Duration::zero(),
                through: None,
            };
            let target = labels(target);
            let got = sources
                .iter()
                .any(|s| rule.has_equal(&target, &labels(s), false));
            assert_eq!(got, *want, "{sources:?} {equal:?} {target:?}");
        }
    }

    /// The targets of inhibit_test.go TestInhibitRuleMatches and
    /// TestInhibitRuleMatchers, with the two source alerts firing.
    fn check_rule_matches(rules: &[InhibitRule], want: [bool; 8]) {
        // Matches the source side of rule 1.
        let source1 = labels(&[("s1", "1"), ("t1", "2"), ("e", "1")]);
        // Matches the source _and_ the target side of rule 2.
        let source2 = labels(&[("s2", "1"), ("t2", "1"), ("e", "1")]);
        let firing = [source1.clone(), source2.clone()];
        let targets: [&[(&str, &str)]; 8] = [
            &[("t1", "1"), ("e", "1")],
            &[("t2", "1"), ("e", "1")],
            &[("t1", "1"), ("t3", "1"), ("e", "1")],
            &[("t1", "1"), ("t2", "1"), ("e", "1")],
            &[("t1", "0"), ("e", "1")],
            &[("s1", "1"), ("t1", "1"), ("e", "1")],
            &[("s2", "1"), ("t2", "1"), ("e", "1")],
            &[("t1", "1"), ("e", "0")],
        ];
        for (target, want) in targets.iter().zip(want) {
            let target = labels(target);
            let got = inhibited_by(rules, &target, &firing);
            assert_eq!(!got.is_empty(), want, "{target:?}: {got:?}");
            // Whoever inhibits is one of the two sources.
            for f in &got {
                assert!(*f == fp(&source1) || *f == fp(&source2));
            }
        }
    }

    /// inhibit_test.go TestInhibitRuleMatches (legacy `source_match` /
    /// `target_match`).
    #[test]
    fn rule_matches() {
        let rules = rules(
            "- source_match: {s1: '1'}\n  target_match: {t1: '1'}\n  equal: [e]\n\
             - source_match: {s2: '1'}\n  target_match: {t2: '1'}\n  equal: [e]\n",
        );
        check_rule_matches(
            &rules,
            [
                // Matches the target side of rule 1: inhibited.
                true, // Matches the target side of rule 2: inhibited.
                true, // Rule 1's target side plus noise: inhibited.
                true, // Both rules' target sides: inhibited.
                true, // No target side matches: not inhibited.
                false,
                // Both sides of rule 1: inhibited, source1 matches only the
                // source side.
                true,
                // Both sides of rule 2: not inhibited, source2 matches both
                // sides too.
                false, // Target side matches, equal label differs: not inhibited.
                false,
            ],
        );
    }

    /// inhibit_test.go TestInhibitRuleMatchers (rule 1's target is `t1!="1"`).
    #[test]
    fn rule_matchers() {
        let rules = rules(
            "- source_matchers: [s1=\"1\"]\n  target_matchers: [t1!=\"1\"]\n  equal: [e]\n\
             - source_matchers: [s2=\"1\"]\n  target_matchers: [t2=\"1\"]\n  equal: [e]\n",
        );
        check_rule_matches(
            &rules,
            [
                // t1="1" does not match t1!="1"; rule 2 does not apply.
                false, // Rule 2's target side, inhibited by source2.
                true,  // t1="1" plus noise: still not rule 1's target.
                false, // Rule 2's target side matches: inhibited.
                true,  // t1="0" matches t1!="1": inhibited by source1.
                true,  // Both sides of rule 1 but t1="1": not a target.
                false,
                // Both sides of rule 2: source2 is on both sides too, but
                // t1 is missing, so rule 1 applies: inhibited by source1.
                true, // Not a target of rule 1, equal label differs for rule 2.
                false,
            ],
        );
        // Row 7 is inhibited by source1 through rule 1, not by source2.
        let source1 = labels(&[("s1", "1"), ("t1", "2"), ("e", "1")]);
        let source2 = labels(&[("s2", "1"), ("t2", "1"), ("e", "1")]);
        let target = labels(&[("s2", "1"), ("t2", "1"), ("e", "1")]);
        assert_eq!(
            inhibited_by(&rules, &target, &[source1.clone(), source2]),
            vec![fp(&source1)]
        );
    }

    /// inhibit_test.go TestInhibit: alertOne is muted while alertTwo fires.
    #[test]
    fn inhibit_timeline() {
        let rules = rules("- source_match: {s: '1'}\n  target_match: {t: '1'}\n  equal: [e]\n");
        let one = labels(&[("t", "1"), ("e", "f")]);
        let two = labels(&[("s", "1"), ("e", "f")]);
        // (firing alerts, [(alert, muted)])
        type Expected<'a> = Vec<(&'a LabelSet, bool)>;
        let rows: [(Vec<LabelSet>, Expected); 3] = [
            // alertOne is not muted since alertTwo has not fired.
            (vec![one.clone()], vec![(&one, false)]),
            // alertOne is muted by alertTwo, which is firing; alertTwo is not.
            (
                vec![one.clone(), two.clone()],
                vec![(&one, true), (&two, false)],
            ),
            // alertTwo resolved: nothing is muted.
            (vec![one.clone()], vec![(&one, false), (&two, false)]),
        ];
        for (firing, expected) in &rows {
            for (alert, muted) in expected {
                let got = inhibited_by(&rules, alert, firing);
                assert_eq!(!got.is_empty(), *muted, "{alert:?} with {firing:?}");
                if *muted {
                    assert_eq!(got, vec![fp(&two)]);
                }
            }
        }
    }

    /// An alert on both sides of a rule never inhibits itself, and two such
    /// alerts do not inhibit each other; one on the source side only does.
    #[test]
    fn never_inhibits_itself() {
        let rules = rules(
            "- source_matchers: ['severity=~\"critical|warning\"']\n  \
               target_matchers: ['severity=~\"warning|info\"']\n  equal: [cluster]\n",
        );
        let warning_a = labels(&[("severity", "warning"), ("cluster", "a"), ("n", "1")]);
        let warning_b = labels(&[("severity", "warning"), ("cluster", "a"), ("n", "2")]);
        let critical = labels(&[("severity", "critical"), ("cluster", "a")]);
        let info = labels(&[("severity", "info"), ("cluster", "a")]);
        // (target, firing, inhibitors)
        let rows: &[(&LabelSet, Vec<LabelSet>, Vec<String>)] = &[
            // Alone, a warning (both sides) is not inhibited by itself.
            (&warning_a, vec![warning_a.clone()], vec![]),
            // Nor by another warning (also both sides).
            (
                &warning_a,
                vec![warning_a.clone(), warning_b.clone()],
                vec![],
            ),
            // A critical (source side only) inhibits it.
            (
                &warning_a,
                vec![warning_a.clone(), critical.clone()],
                vec![fp(&critical)],
            ),
            // An info (target side only) is inhibited by both warnings and
            // the critical, all listed, sorted.
            (
                &info,
                vec![
                    warning_a.clone(),
                    warning_b.clone(),
                    critical.clone(),
                    info.clone(),
                ],
                {
                    let mut v = vec![fp(&warning_a), fp(&warning_b), fp(&critical)];
                    v.sort();
                    v
                },
            ),
            // The critical is no target.
            (&critical, vec![warning_a.clone(), critical.clone()], vec![]),
        ];
        for (target, firing, want) in rows {
            assert_eq!(&inhibited_by(&rules, target, firing), want, "{target:?}");
        }
        // The pairwise check agrees.
        assert!(rules[0].inhibits(&warning_a, &critical));
        assert!(!rules[0].inhibits(&warning_a, &warning_b));
        assert!(!rules[0].inhibits(&warning_a, &warning_a));
        assert!(rules[0].inhibits(&info, &warning_a));
    }

    /// Several rules: the inhibitors of all rules together, each once.
    #[test]
    fn several_rules_union() {
        let rules = rules(
            "- source_matchers: [alertname=NodeDown]\n  target_matchers: [severity=warning]\n  equal: [instance]\n\
             - source_matchers: [alertname=ClusterDown]\n  target_matchers: ['severity=~\"warning|critical\"']\n  equal: [cluster]\n\
             - source_matchers: ['alertname=~\"NodeDown|ClusterDown\"']\n  target_matchers: [severity=warning]\n",
        );
        let node_down = labels(&[
            ("alertname", "NodeDown"),
            ("instance", "n1"),
            ("cluster", "c1"),
        ]);
        let cluster_down = labels(&[("alertname", "ClusterDown"), ("cluster", "c1")]);
        let other_cluster = labels(&[("alertname", "ClusterDown"), ("cluster", "c2")]);
        let target = labels(&[
            ("alertname", "DiskFull"),
            ("severity", "warning"),
            ("instance", "n1"),
            ("cluster", "c1"),
        ]);
        let firing = vec![
            node_down.clone(),
            cluster_down.clone(),
            other_cluster.clone(),
            node_down.clone(),
        ];
        let mut want = vec![fp(&node_down), fp(&cluster_down), fp(&other_cluster)];
        want.sort();
        // other_cluster only through the third rule (no `equal`); node_down
        // passed twice is listed once.
        assert_eq!(inhibited_by(&rules, &target, &firing), want);
        // A critical target: only the second rule applies.
        let critical = labels(&[("severity", "critical"), ("cluster", "c1")]);
        assert_eq!(
            inhibited_by(&rules, &critical, &firing),
            vec![fp(&cluster_down)]
        );
        // No rule applies: the sources are not even looked at.
        assert!(
            inhibitors(&rules, &labels(&[("severity", "info")]), std::iter::empty()).is_empty()
        );
    }

    /// Legacy `*_match_re` values are anchored like every matcher regex.
    #[test]
    fn legacy_regex_is_anchored() {
        let rules = rules(
            "- source_match_re: {alertname: 'Node.*'}\n  target_match_re: {severity: 'warn'}\n",
        );
        let source = labels(&[("alertname", "NodeDown")]);
        let not_source = labels(&[("alertname", "TheNodeDown")]);
        assert!(rules[0].inhibits(&labels(&[("severity", "warn")]), &source));
        assert!(!rules[0].inhibits(&labels(&[("severity", "warning")]), &source));
        assert!(!rules[0].inhibits(&labels(&[("severity", "warn")]), &not_source));
        assert_eq!(
            rules[0].source_matchers().to_string(),
            r#"{alertname=~"^(?:Node.*)$"}"#
        );
    }

    /// Configuration errors: Alertmanager's checks, with the rule's index.
    #[test]
    fn validation_errors() {
        // (yaml, expected error or its start)
        let rows: &[(&str, &str)] = &[
            // Legacy keys must be classic label names.
            (
                "- source_match: {'a.b': x}\n",
                r#"inhibit_rules[0]: invalid label name "a.b""#,
            ),
            (
                "- target_match: {ok: x}\n- target_match_re: {'-': x}\n",
                r#"inhibit_rules[1]: invalid label name "-""#,
            ),
            // `equal` names must not be empty.
            (
                "- equal: [cluster, '']\n",
                r#"inhibit_rules[0]: invalid label name "" in equal list"#,
            ),
            // A bad regex names the side, the label and the regex as written.
            (
                "- source_match_re: {a: '[x'}\n",
                r#"inhibit_rules[0]: source_match_re "a": invalid regular expression "[x""#,
            ),
            (
                "- target_match_re: {a: '(x'}\n",
                r#"inhibit_rules[0]: target_match_re "a": invalid regular expression "(x""#,
            ),
        ];
        for (yaml, want) in rows {
            let cfgs: Vec<InhibitRuleConfig> = yaml_serde::from_str(yaml).unwrap();
            let err = InhibitRule::compile(&cfgs).unwrap_err().to_string();
            assert!(err.starts_with(want), "{yaml}: {err}");
        }

        // YAML errors carry the line.
        // (yaml, substrings of the error)
        let rows: &[(&str, &[&str])] = &[
            // A misspelt field.
            (
                "- source_matchers: [a=b]\n  target_matcher: [c=d]\n",
                &["unknown field `target_matcher`", "line 2"],
            ),
            // A bad matcher.
            (
                "- source_matchers: [a=b]\n  target_matchers: ['c=~\"(\"']\n",
                &["invalid matcher", "line 2"],
            ),
        ];
        for (yaml, wants) in rows {
            let err = yaml_serde::from_str::<Vec<InhibitRuleConfig>>(yaml)
                .expect_err(yaml)
                .to_string();
            for want in *wants {
                assert!(err.contains(want), "{yaml}: {err}");
            }
        }
    }

    /// A rule from Alertmanager's documentation loads and round-trips.
    #[test]
    fn yaml_round_trip() {
        let yaml = r#"
- name: critical-mutes-warning
  source_matchers: [ severity="critical" ]
  target_matchers: [ severity="warning" ]
  equal: [ alertname, cluster, service ]
- source_match:
    severity: 'critical'
  target_match_re:
    severity: 'warning|info'
  equal: ['alertname']
"#;
        let cfgs: Vec<InhibitRuleConfig> = yaml_serde::from_str(yaml).unwrap();
        assert_eq!(cfgs[0].name, "critical-mutes-warning");
        assert_eq!(cfgs[1].target_match_re["severity"], "warning|info");
        let back: Vec<InhibitRuleConfig> =
            yaml_serde::from_str(&yaml_serde::to_string(&cfgs).unwrap()).unwrap();
        assert_eq!(back, cfgs);
        let rules = InhibitRule::compile(&cfgs).unwrap();
        assert_eq!(rules[0].name(), "critical-mutes-warning");
        assert_eq!(rules[0].equal().len(), 3);
        assert_eq!(rules[1].target_matchers().len(), 1);
    }

    /// Inhibition with memory: a resolved source inhibits for its rules'
    /// longest grace after it resolved, and says so; a firing one is named
    /// by its fingerprint alone.
    #[test]
    fn resolved_sources_inhibit_within_their_grace() {
        let rules = rules(
            "- source_matchers: ['severity=critical']\n  target_matchers: ['severity=warning']\n  grace: 10m\n\
             - source_matchers: ['severity=critical']\n  target_matchers: ['team=db']\n  grace: 30m\n",
        );
        let t0: DateTime<Utc> = "2026-11-25T19:00:00Z".parse().unwrap();
        let source = labels(&[("severity", "critical")]);
        let src = fp(&source);
        let at = |m: i64| t0 + Duration::minutes(m);
        // (target, source resolved at (minutes, None = firing), now
        // (minutes), why it is inhibited)
        let rows: Vec<(LabelSet, Option<i64>, i64, Vec<String>)> = vec![
            // A firing source: its fingerprint.
            (
                labels(&[("severity", "warning")]),
                None,
                5,
                vec![src.clone()],
            ),
            // Resolved 5 minutes ago, grace 10m: still inhibiting.
            (
                labels(&[("severity", "warning")]),
                Some(0),
                5,
                vec![format!(
                    "{src} (cause resolved at 2026-11-25T19:00:00Z, grace until 2026-11-25T19:10:00Z)"
                )],
            ),
            // The grace is over at 10m exactly.
            (labels(&[("severity", "warning")]), Some(0), 10, vec![]),
            // Through both rules: the longer grace counts.
            (
                labels(&[("severity", "warning"), ("team", "db")]),
                Some(0),
                20,
                vec![format!(
                    "{src} (cause resolved at 2026-11-25T19:00:00Z, grace until 2026-11-25T19:30:00Z)"
                )],
            ),
            // Not a target of either rule.
            (labels(&[("severity", "info")]), Some(0), 1, vec![]),
        ];
        for (target, resolved, now, want) in rows {
            let got = inhibitors_at(
                &rules,
                &target,
                std::iter::once(Source {
                    fingerprint: &src,
                    labels: &source,
                    resolved_at: resolved.map(at),
                }),
                at(now),
            );
            assert_eq!(got, want, "{target:?} resolved {resolved:?} now {now}m");
        }
        // Without `grace`, 10 minutes.
        let plain = rules_default();
        assert_eq!(plain[0].grace(), Duration::minutes(10));
    }

    fn rules_default() -> Vec<InhibitRule> {
        rules("- source_matchers: ['a=b']\n  target_matchers: ['c=d']\n")
    }
}
