//! Alertmanager's routing tree: the `route:` and `receivers:` sections of an
//! `alertmanager.yml`, read unchanged, validated as Alertmanager validates
//! them, and compiled into a [`RouteTree`] that says which routes an alert
//! goes to ([`RouteTree::matching`]) and which aggregation group it joins
//! there ([`group_labels`], [`group_key`]).
//!
//! ```yaml
//! route:
//!   receiver: default
//!   group_by: [alertname]
//!   routes:
//!     - matchers: ['team="db"', 'severity=~"critical|page"']
//!       receiver: db-pager
//!       group_by: ['...']
//!       continue: true
//!     - match_re: {service: 'api|web'}
//!       receiver: web
//!       repeat_interval: 1h
//!       mute_time_intervals: [offhours]
//! receivers:
//!   - name: default
//!   - name: db-pager
//!     pagerduty_configs: [{routing_key: '…'}]
//!   - name: web
//!     webhook_configs: [{url: 'http://…'}]
//! ```
//!
//! Semantics are Alertmanager's (`dispatch/route.go`, `config/config.go`):
//!
//! * **Inheritance** (`NewRoute`): a route starts from its parent's options
//!   (the root from `group_wait: 30s`, `group_interval: 5m`,
//!   `repeat_interval: 4h`, no grouping labels) and overrides what it sets.
//!   An empty `receiver` inherits. `group_by` overrides only when it names at
//!   least one label; `group_by: ['...']` groups by all labels;
//!   `group_by: []` inherits (as in Alertmanager, where an empty list is
//!   indistinguishable from an absent one). `mute_time_intervals` and
//!   `active_time_intervals` are **not** inherited: each route has exactly
//!   the ones it names.
//! * **Matchers**: legacy `match` (`=`) and `match_re` (`=~`) entries are
//!   combined with `matchers` and sorted. As in Alertmanager, a `match_re`
//!   value is stored anchored, `^(?:value)$`, which shows in route keys and
//!   therefore in group keys (`{owner=~"^(?:team-(B|C))$"}`); matching is
//!   unaffected.
//! * **Matching** (`Route.Match`): depth first, left to right. A node whose
//!   matchers do not match yields nothing. Otherwise its children are tried
//!   in order; after a child that matched, the search stops unless that child
//!   has `continue: true`. If no child matched, the node itself is the match.
//! * **Keys**: [`RouteNode::key`] is `Route.Key()` (the parent's key, `/`,
//!   this route's matchers, the root being `{}`), used in group keys;
//!   [`RouteNode::id`] is `Route.ID()` (the parent's id, `/`, the matchers,
//!   `/`, the position among the siblings), unique in the tree.
//! * **Groups**: the group labels of an alert on a route are its labels named
//!   in `group_by` (all of them for `...`); the group key is
//!   `{route key}:{group labels}` with the labels printed as Prometheus'
//!   `model.LabelSet.String()` does: `{a="b", c="d"}`, sorted by name, values
//!   quoted as Go's `strconv.Quote`.
//!
//! Fenghuo's own route options, all optional and inherited, so an
//! Alertmanager config reads unchanged: `escalation` (a policy name),
//! `late_joiners` (`wait` | `severity` | `always`, default `severity`: see
//! the dispatcher), `severity_label` (default `severity`) and
//! `severity_order` (default `[critical, error, warning, info]`, the most
//! severe first), `flap` (`changes: 4`, `window: 10m`, `stable: 10m`; see
//! [`crate::evaluate::flap`]), `pages` (`follow_ups: changes | full`,
//! `update_in_place: true`, `resolved: page | fold | digest`,
//! `digest_interval: 1h`; see [`PagesOpts`]).
//!
//! Validation is Alertmanager's, with the same messages, each prefixed with
//! the path of the offending node (`route.routes[1].routes[0]: …`): the root
//! needs a receiver and may have no matchers, no time intervals and no
//! `continue`; every receiver a route names exists; receiver names are
//! present and unique; every time interval a route names exists; `group_by`
//! has no duplicates, no empty name, and `...` only alone; `group_interval`
//! and `repeat_interval` are not zero; `match` / `match_re` keys are classic
//! label names and `match_re` values valid regular expressions.
//!
//! Receivers keep their integrations (`email_configs`, `webhook_configs`, …,
//! any `*_configs` key) as opaque JSON values for now, so an existing
//! `alertmanager.yml` loads; the notification issue gives them types.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::matcher::{Matchers, from_match_re, is_valid_classic_label_name};
use super::time_interval::TimeIntervalSet;
use crate::config::PromDuration;
use crate::eventlog::LabelSet;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// One node of Alertmanager's `route:` block, as written. Unknown fields are
/// refused; [`RouteTree::build`] validates and compiles it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name; empty means "the parent's".
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub receiver: String,
    /// Labels to group by; `['...']` alone means all labels. `None` (or an
    /// empty list) inherits the parent's grouping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Keep matching the following siblings after this route matched.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub r#continue: bool,
    /// Matchers, each string holding one or more (`'{a="b", c=~"d"}'`).
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub matchers: Matchers,
    /// Deprecated in Alertmanager, still accepted: label → exact value.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub r#match: BTreeMap<String, String>,
    /// Deprecated in Alertmanager, still accepted: label → regex (anchored).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_re: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub group_wait: Option<PromDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub group_interval: Option<PromDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub repeat_interval: Option<PromDuration>,
    /// Names of time intervals during which this route sends nothing.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which this route sends nothing.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub active_time_intervals: Vec<String>,
    /// Fenghuo: the escalation policy for incidents of this route's groups
    /// (inherited by child routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Fenghuo: when a new alert joining a group that has already notified
    /// is notified: at the next `group_interval` flush (`wait`, as
    /// Alertmanager), within `group_wait` when it is more severe than what
    /// the group paged (`severity`, the default), or always within
    /// `group_wait` (`always`). Inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_joiners: Option<LateJoiners>,
    /// Fenghuo: the label holding an alert's severity (default `severity`).
    /// Inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_label: Option<String>,
    /// Fenghuo: severities from the most severe down (default `[critical,
    /// error, warning, info]`); a value not listed ranks below all of them.
    /// Inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_order: Option<Vec<String>>,
    /// Fenghuo: flap damping for the alerts this route is the first match
    /// of. Each field inherited on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<FlapConfig>,
    /// Fenghuo: what follow-up messages of a group list, whether they
    /// update its last message in place, and whether resolved alerts are a
    /// page of their own. Each field inherited on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PagesConfig>,
    /// Child routes, tried in order.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub routes: Vec<RouteConfig>,
}

/// `flap:` as written: an alert that changes state (fires, resolves)
/// `changes` times within `window` is flapping until it keeps one state for
/// `stable`. `changes: 0` turns damping off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlapConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub window: Option<PromDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub stable: Option<PromDuration>,
}

/// `pages:` as written (see [`PagesOpts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagesConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_ups: Option<FollowUps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_in_place: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedPages>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_duration"
    )]
    pub digest_interval: Option<PromDuration>,
}

/// What a group's follow-up message (not its first, not a repeat) lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUps {
    /// New and resolved alerts in full, the unchanged firing ones as a
    /// count: a growing group does not re-send every alert.
    #[default]
    Changes,
    /// Every alert, as Alertmanager's messages.
    Full,
}

/// Whether resolved alerts of a group that still fires are a page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedPages {
    /// Each flush where something resolved notifies (Alertmanager).
    #[default]
    Page,
    /// Carried in the group's next page (or its last message updated in
    /// place); the group's final resolve, with nothing left firing, is
    /// still sent: no page would follow it.
    Fold,
    /// Held for the receiver's digest of resolved alerts, sent once per
    /// `digest_interval` (windows aligned to the interval in UTC: on the
    /// hour for `1h`), with every group that resolved in the window; a
    /// page of the group before then carries them instead. An edit in
    /// place still happens at once where the channel can edit.
    Digest,
}

/// The pages of a route's groups, in force after inheritance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagesOpts {
    pub follow_ups: FollowUps,
    /// News about alerts the group has already paged (what resolved, a
    /// flapping notice, an alert settling) updates the group's last
    /// message where the channel can, instead of a new page.
    pub update_in_place: bool,
    pub resolved: ResolvedPages,
    /// With `resolved: digest`: how often the digest of resolved alerts
    /// goes out.
    pub digest_interval: Duration,
}

impl Default for PagesOpts {
    fn default() -> Self {
        PagesOpts {
            follow_ups: FollowUps::Changes,
            update_in_place: true,
            resolved: ResolvedPages::Page,
            digest_interval: Duration::hours(1),
        }
    }
}

impl PagesOpts {
    /// When resolves decided at `now` go out in a digest: the end of the
    /// `digest_interval` window `now` is in, windows counted from the Unix
    /// epoch so every route of one interval shares them.
    pub fn digest_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let step = self.digest_interval.num_milliseconds().max(1000);
        let t = now.timestamp_millis();
        let end = (t.div_euclid(step) + 1) * step;
        DateTime::from_timestamp_millis(end).unwrap_or(now)
    }
}

/// One entry of `receivers:`: a name and its integrations, kept as written
/// (`integrations["webhook_configs"]` is the list under `webhook_configs`).
///
/// Any key ending in `_configs` is accepted and must hold a list (or
/// nothing); any other key but `name` is refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiverConfig {
    pub name: String,
    pub integrations: BTreeMap<String, Vec<serde_json::Value>>,
    /// Fenghuo: the receiver that gets a notification this one could not
    /// deliver within `notify.retry_for`.
    pub fallback: Option<String>,
    /// Fenghuo: at most so many messages per period, per integration.
    pub rate_limit: Option<crate::notify::config::RateLimit>,
}

impl ReceiverConfig {
    /// A receiver with no integrations (Alertmanager's "blackhole").
    pub fn new(name: impl Into<String>) -> ReceiverConfig {
        ReceiverConfig {
            name: name.into(),
            integrations: BTreeMap::new(),
            fallback: None,
            rate_limit: None,
        }
    }
}

impl<'de> Deserialize<'de> for ReceiverConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReceiverVisitor;

        impl<'de> Visitor<'de> for ReceiverVisitor {
            type Value = ReceiverConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a receiver: `name` and integration lists such as `webhook_configs`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReceiverConfig, A::Error> {
                let mut name: Option<String> = None;
                let mut seen = BTreeSet::new();
                let mut integrations = BTreeMap::new();
                let (mut fallback, mut rate_limit) = (None, None);
                while let Some(key) = map.next_key_seed(ReceiverKey { seen: &seen })? {
                    seen.insert(key.clone());
                    if key == "name" {
                        name = Some(map.next_value::<Option<String>>()?.unwrap_or_default());
                    } else if key == "fallback" {
                        fallback = map.next_value::<Option<String>>()?;
                    } else if key == "rate_limit" {
                        rate_limit = map.next_value()?;
                    } else if let Some(list) = map.next_value::<Option<Vec<serde_json::Value>>>()? {
                        integrations.insert(key, list);
                    }
                }
                match name {
                    Some(name) if !name.is_empty() => Ok(ReceiverConfig {
                        name,
                        integrations,
                        fallback,
                        rate_limit,
                    }),
                    _ => Err(de::Error::custom("missing name in receiver")),
                }
            }
        }

        deserializer.deserialize_map(ReceiverVisitor)
    }
}

/// A key of a receiver: `name` or `*_configs`, each at most once. Checked
/// while the key is read, so an error carries the key's line.
struct ReceiverKey<'s> {
    seen: &'s BTreeSet<String>,
}

impl<'de> de::DeserializeSeed<'de> for ReceiverKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        // Checked inside the visitor, so that yaml_serde gives the error the
        // key's position rather than the receiver's.
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for ReceiverKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`name` or an integration list such as `webhook_configs`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        let integration = key.len() > "_configs".len() && key.ends_with("_configs");
        if !matches!(key, "name" | "fallback" | "rate_limit") && !integration {
            return Err(E::custom(format!(
                "unknown field `{key}` in receiver, expected `name`, `fallback`, `rate_limit` or an integration list \
                 such as `webhook_configs`"
            )));
        }
        if self.seen.contains(key) {
            return Err(E::custom(format!("duplicate field `{key}`")));
        }
        Ok(key.to_owned())
    }
}

impl Serialize for ReceiverConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + self.integrations.len()))?;
        map.serialize_entry("name", &self.name)?;
        for (key, list) in &self.integrations {
            map.serialize_entry(key, list)?;
        }
        if let Some(fallback) = &self.fallback {
            map.serialize_entry("fallback", fallback)?;
        }
        if let Some(limit) = &self.rate_limit {
            map.serialize_entry("rate_limit", limit)?;
        }
        map.end()
    }
}

/// A field that YAML may give as `~` (or leave empty) to mean its default, as
/// Go's yaml.v2 reads it.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn serialize_duration<S: Serializer>(d: &Option<PromDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

/// Legacy `match` / `match_re` maps and `matchers`, combined as Alertmanager
/// combines them for routes and inhibit rules: `match` keys and `match_re`
/// keys must be classic label names, `match_re` values valid regexes, stored
/// anchored (`^(?:value)$`) as Alertmanager stores them. `prefix` names the
/// side in errors (`""`, `"source_"`, `"target_"`).
pub(crate) fn legacy_matchers(
    prefix: &str,
    match_: &BTreeMap<String, String>,
    match_re: &BTreeMap<String, String>,
    matchers: &Matchers,
) -> Result<Matchers, String> {
    for name in match_.keys().chain(match_re.keys()) {
        if !is_valid_classic_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
    }
    // Validate as written, so an error shows the regex the user wrote, not
    // the anchored one.
    from_match_re(match_re).map_err(|e| format!("{prefix}{e}"))?;
    let anchored: BTreeMap<String, String> = match_re
        .iter()
        .map(|(name, re)| (name.clone(), format!("^(?:{re})$")))
        .collect();
    Matchers::from_legacy(match_, &anchored, matchers).map_err(|e| format!("{prefix}{e}"))
}

// ---------------------------------------------------------------------------
// Compiled tree
// ---------------------------------------------------------------------------

/// Alertmanager's `DefaultRouteOpts`: what the root inherits.
pub const DEFAULT_GROUP_WAIT_SECS: i64 = 30;
pub const DEFAULT_GROUP_INTERVAL_SECS: i64 = 5 * 60;
pub const DEFAULT_REPEAT_INTERVAL_SECS: i64 = 4 * 60 * 60;

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label; each distinct label set is a group.
    All,
    /// These labels (possibly none: one group for the route).
    Labels(BTreeSet<String>),
}

impl GroupBy {
    /// Whether label `name` is part of the group labels.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            GroupBy::All => true,
            GroupBy::Labels(names) => names.contains(name),
        }
    }
}

/// The effective options of a route, after inheritance (Alertmanager's
/// `RouteOpts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOpts {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// This route's own `mute_time_intervals` (never inherited).
    pub mute_time_intervals: Vec<String>,
    /// This route's own `active_time_intervals` (never inherited).
    pub active_time_intervals: Vec<String>,
    /// The escalation policy (inherited).
    pub escalation: Option<String>,
    /// When a new alert joining a group that has notified is notified
    /// (inherited; default [`LateJoiners::Severity`]).
    pub late_joiners: LateJoiners,
    /// How severities rank (inherited).
    pub severity: SeverityOrder,
    /// Flap damping (inherited).
    pub flap: FlapOpts,
    /// Follow-ups, updates in place, resolved pages (inherited).
    pub pages: PagesOpts,
}

/// Flap damping in force: an alert with `changes` state changes within
/// `window` is flapping until it keeps one state for `stable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapOpts {
    /// 0: no damping.
    pub changes: u32,
    pub window: Duration,
    pub stable: Duration,
}

/// Fire, resolve, fire, resolve within ten minutes: flapping; quiet again
/// after ten minutes in one state. Most real problems change state once or
/// twice in that time; four changes is a sensor, not an outage, and paging
/// each is noise.
impl Default for FlapOpts {
    fn default() -> Self {
        FlapOpts {
            changes: 4,
            window: Duration::minutes(10),
            stable: Duration::minutes(10),
        }
    }
}

/// When an alert joining a group that has already notified is notified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LateJoiners {
    /// At the group's next flush, up to a whole `group_interval` later
    /// (Alertmanager).
    Wait,
    /// Within `group_wait` of joining when more severe than every alert the
    /// group's last notification listed as firing; else as `wait`.
    #[default]
    Severity,
    /// Always within `group_wait` of joining.
    Always,
}

/// The label that holds a severity and its values from the most severe
/// down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityOrder {
    pub label: String,
    pub order: Vec<String>,
}

impl Default for SeverityOrder {
    fn default() -> Self {
        SeverityOrder {
            label: "severity".into(),
            order: ["critical", "error", "warning", "info"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl SeverityOrder {
    /// The rank of an alert's severity, 0 the most severe; `None` when it
    /// has none or one not listed (below every listed one).
    pub fn rank(&self, labels: &LabelSet) -> Option<usize> {
        let value = labels.get(self.label.as_str())?;
        self.order.iter().position(|s| s == value)
    }
}

impl Default for RouteOpts {
    /// Alertmanager's `DefaultRouteOpts`.
    fn default() -> Self {
        RouteOpts {
            receiver: String::new(),
            group_by: GroupBy::Labels(BTreeSet::new()),
            group_wait: Duration::seconds(DEFAULT_GROUP_WAIT_SECS),
            group_interval: Duration::seconds(DEFAULT_GROUP_INTERVAL_SECS),
            repeat_interval: Duration::seconds(DEFAULT_REPEAT_INTERVAL_SECS),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            escalation: None,
            late_joiners: LateJoiners::default(),
            severity: SeverityOrder::default(),
            flap: FlapOpts::default(),
            pages: PagesOpts::default(),
        }
    }
}

/// One route of a [`RouteTree`].
#[derive(Debug, Clone, PartialEq)]
pub struct RouteNode {
    id: String,
    key: String,
    index: usize,
    parent: Option<usize>,
    position: usize,
    children: Vec<usize>,
    matchers: Matchers,
    r#continue: bool,
    opts: RouteOpts,
}

impl RouteNode {
    /// Alertmanager's `Route.ID()`: `{}` for the root, else the parent's id,
    /// `/`, this route's matchers, `/`, its position among its siblings
    /// (`{}/{foo="bar"}/0/{bar="baz"}/0`). Unique in the tree; it changes
    /// only when this route's matchers or position, or those of an ancestor,
    /// change. State kept per route (aggregation groups) should be keyed by
    /// it, not by [`RouteNode::key`].
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Alertmanager's `Route.Key()`: `{}` for the root, else the parent's key,
    /// `/`, this route's matchers (`{}/{owner="team-A"}/{env="testing"}`).
    /// Not unique in general; it is the route part of a group key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Position in [`RouteTree::nodes`] (depth-first order; the root is 0).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The parent's position in [`RouteTree::nodes`]; `None` for the root.
    pub fn parent(&self) -> Option<usize> {
        self.parent
    }

    /// Position among the parent's children (0 for the root).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The children's positions in [`RouteTree::nodes`], in order.
    pub fn children(&self) -> &[usize] {
        &self.children
    }

    /// This route's own matchers, sorted (empty for the root).
    pub fn matchers(&self) -> &Matchers {
        &self.matchers
    }

    /// `continue: true`.
    pub fn continues(&self) -> bool {
        self.r#continue
    }

    /// Effective options, inheritance applied.
    pub fn opts(&self) -> &RouteOpts {
        &self.opts
    }

    pub fn receiver(&self) -> &str {
        &self.opts.receiver
    }
}

/// A validated routing tree (Alertmanager's `dispatch.Route` tree).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTree {
    /// Depth-first, parents before children (Alertmanager's `Route.Walk`).
    nodes: Vec<RouteNode>,
    by_id: BTreeMap<String, usize>,
}

/// A routing configuration that Alertmanager would refuse. `path` names the
/// node or receiver (`route.routes[2]`, `receivers[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RouteError {
    pub path: String,
    pub message: String,
}

impl RouteError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> RouteError {
        RouteError {
            path: path.into(),
            message: message.into(),
        }
    }
}

struct BuildContext<'a> {
    receivers: BTreeSet<&'a str>,
    intervals: &'a TimeIntervalSet,
}

impl RouteTree {
    /// Validates the `route` and `receivers` sections as Alertmanager does and
    /// compiles the tree. `intervals` are the configuration's time intervals
    /// (`time_intervals` and the deprecated `mute_time_intervals`).
    pub fn build(
        root: &RouteConfig,
        receivers: &[ReceiverConfig],
        intervals: &TimeIntervalSet,
    ) -> Result<RouteTree, RouteError> {
        let mut names = BTreeSet::new();
        for (i, r) in receivers.iter().enumerate() {
            let path = format!("receivers[{i}]");
            if r.name.is_empty() {
                return Err(RouteError::new(path, "missing name in receiver"));
            }
            if !names.insert(r.name.as_str()) {
                return Err(RouteError::new(
                    path,
                    format!("notification config name {:?} is not unique", r.name),
                ));
            }
        }

        let path = "route";
        if root.receiver.is_empty() {
            return Err(RouteError::new(
                path,
                "root route must specify a default receiver",
            ));
        }
        if !root.r#match.is_empty() || !root.match_re.is_empty() || !root.matchers.is_empty() {
            return Err(RouteError::new(
                path,
                "root route must not have any matchers",
            ));
        }
        if !root.mute_time_intervals.is_empty() {
            return Err(RouteError::new(
                path,
                "root route must not have any mute time intervals",
            ));
        }
        if !root.active_time_intervals.is_empty() {
            return Err(RouteError::new(
                path,
                "root route must not have any active time intervals",
            ));
        }
        if root.r#continue {
            return Err(RouteError::new(path, "cannot have continue in root route"));
        }

        let ctx = BuildContext {
            receivers: names,
            intervals,
        };
        let mut tree = RouteTree {
            nodes: Vec::new(),
            by_id: BTreeMap::new(),
        };
        tree.add(root, None, 0, path.to_owned(), &ctx)?;
        tree.by_id = tree.nodes.iter().map(|n| (n.id.clone(), n.index)).collect();
        Ok(tree)
    }

    /// Compiles one node (Alertmanager's `NewRoute`) and its children.
    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: Option<usize>,
        position: usize,
        path: String,
        ctx: &BuildContext<'_>,
    ) -> Result<usize, RouteError> {
        let fail = |message: String| RouteError::new(path.clone(), message);

        let mut opts = match parent {
            Some(p) => self.nodes[p].opts.clone(),
            None => RouteOpts::default(),
        };

        if !cfg.receiver.is_empty() {
            if !ctx.receivers.contains(cfg.receiver.as_str()) {
                return Err(fail(format!(
                    "undefined receiver {:?} used in route",
                    cfg.receiver
                )));
            }
            opts.receiver = cfg.receiver.clone();
        }

        if let Some(group_by) = &cfg.group_by {
            let mut all = false;
            let mut labels = BTreeSet::new();
            for name in group_by {
                if name == "..." {
                    all = true;
                } else if name.is_empty() {
                    return Err(fail(format!(
                        "invalid label name {name:?} in group_by list"
                    )));
                } else if !labels.insert(name.clone()) {
                    return Err(fail(format!("duplicated label {name:?} in group_by")));
                }
            }
            if all && !labels.is_empty() {
                return Err(fail(
                    "cannot have wildcard group_by (`...`) and other labels at the same time"
                        .into(),
                ));
            }
            if !labels.is_empty() {
                opts.group_by = GroupBy::Labels(labels);
            } else if all {
                opts.group_by = GroupBy::All;
            }
        }

        if let Some(d) = cfg.group_wait {
            opts.group_wait = d.0;
        }
        if let Some(policy) = &cfg.escalation {
            opts.escalation = Some(policy.clone());
        }
        if let Some(late) = cfg.late_joiners {
            opts.late_joiners = late;
        }
        if let Some(label) = &cfg.severity_label {
            if label.is_empty() {
                return Err(fail("severity_label cannot be empty".into()));
            }
            opts.severity.label = label.clone();
        }
        if let Some(order) = &cfg.severity_order {
            opts.severity.order = order.clone();
        }
        if let Some(flap) = &cfg.flap {
            if let Some(n) = flap.changes {
                if n == 1 || n as usize > super::flap::CHANGES_KEPT {
                    return Err(fail(format!(
                        "flap.changes must be 0 (off) or from 2 to {}",
                        super::flap::CHANGES_KEPT
                    )));
                }
                opts.flap.changes = n;
            }
            if let Some(d) = flap.window {
                if d.0 <= Duration::zero()
                    || d.0 > Duration::seconds(super::flap::LONGEST_WINDOW_SECS)
                {
                    return Err(fail("flap.window must be positive and at most 1d".into()));
                }
                opts.flap.window = d.0;
            }
            if let Some(d) = flap.stable {
                if d.0 <= Duration::zero() {
                    return Err(fail("flap.stable must be positive".into()));
                }
                opts.flap.stable = d.0;
            }
        }
        if let Some(pages) = &cfg.pages {
            if let Some(f) = pages.follow_ups {
                opts.pages.follow_ups = f;
            }
            if let Some(u) = pages.update_in_place {
                opts.pages.update_in_place = u;
            }
            if let Some(r) = pages.resolved {
                opts.pages.resolved = r;
            }
            if let Some(d) = pages.digest_interval {
                if d.0 < Duration::minutes(1) {
                    return Err(fail(
                        "pages.digest_interval must be at least 1m (a digest more often \
                         is a page each)"
                            .into(),
                    ));
                }
                opts.pages.digest_interval = d.0;
            }
        }
        if let Some(d) = cfg.group_interval {
            if d.0.is_zero() {
                return Err(fail("group_interval cannot be zero".into()));
            }
            opts.group_interval = d.0;
        }
        if let Some(d) = cfg.repeat_interval {
            if d.0.is_zero() {
                return Err(fail("repeat_interval cannot be zero".into()));
            }
            opts.repeat_interval = d.0;
        }

        ctx.intervals
            .check_defined(
                cfg.active_time_intervals
                    .iter()
                    .chain(&cfg.mute_time_intervals)
                    .map(String::as_str),
            )
            .map_err(|e| fail(e.to_string()))?;
        opts.mute_time_intervals = cfg.mute_time_intervals.clone();
        opts.active_time_intervals = cfg.active_time_intervals.clone();

        let matchers =
            legacy_matchers("", &cfg.r#match, &cfg.match_re, &cfg.matchers).map_err(fail)?;

        let (key, id) = match parent {
            None => (matchers.to_string(), matchers.to_string()),
            Some(p) => {
                let parent = &self.nodes[p];
                (
                    format!("{}/{matchers}", parent.key),
                    format!("{}/{matchers}/{position}", parent.id),
                )
            }
        };

        let index = self.nodes.len();
        self.nodes.push(RouteNode {
            id,
            key,
            index,
            parent,
            position,
            children: Vec::with_capacity(cfg.routes.len()),
            matchers,
            r#continue: cfg.r#continue,
            opts,
        });
        for (i, child) in cfg.routes.iter().enumerate() {
            let c = self.add(child, Some(index), i, format!("{path}.routes[{i}]"), ctx)?;
            self.nodes[index].children.push(c);
        }
        Ok(index)
    }

    pub fn root(&self) -> &RouteNode {
        &self.nodes[0]
    }

    /// Every route, depth first, parents before children (the order of
    /// Alertmanager's `Route.Walk`).
    pub fn nodes(&self) -> &[RouteNode] {
        &self.nodes
    }

    /// The route with this [`RouteNode::id`].
    pub fn get(&self, id: &str) -> Option<&RouteNode> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    pub fn parent(&self, node: &RouteNode) -> Option<&RouteNode> {
        node.parent.map(|p| &self.nodes[p])
    }

    pub fn children<'a>(&'a self, node: &'a RouteNode) -> impl Iterator<Item = &'a RouteNode> {
        node.children.iter().map(|&c| &self.nodes[c])
    }

    /// The routes an alert with these labels goes to, in order
    /// (Alertmanager's `Route.Match` on the root). Never empty: the root
    /// matches everything.
    pub fn matching(&self, labels: &LabelSet) -> Vec<&RouteNode> {
        let mut out = Vec::new();
        self.match_into(0, labels, &mut out);
        out
    }

    fn match_into<'a>(&'a self, index: usize, labels: &LabelSet, out: &mut Vec<&'a RouteNode>) {
        let node = &self.nodes[index];
        if !node.matchers.matches(labels) {
            return;
        }
        let start = out.len();
        for &child in &node.children {
            let before = out.len();
            self.match_into(child, labels, out);
            if out.len() > before && !self.nodes[child].r#continue {
                break;
            }
        }
        if out.len() == start {
            out.push(node);
        }
    }
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

/// The labels that identify an alert's group on a route (Alertmanager's
/// `getGroupLabels`): those named in `group_by`, or all for `...`.
pub fn group_labels(route: &RouteNode, alert_labels: &LabelSet) -> LabelSet {
    match &route.opts.group_by {
        GroupBy::All => alert_labels.clone(),
        GroupBy::Labels(names) => names
            .iter()
            .filter_map(|n| alert_labels.get_key_value(n))
            .collect(),
    }
}

/// Alertmanager's group key (`aggrGroup.GroupKey()`):
/// `{route key}:{group labels}`, e.g.
/// `{}/{env="prod"}:{alertname="HighErrorRate", cluster="aa"}`. Equal to the
/// one Alertmanager puts in its webhook's `groupKey`. Like Alertmanager's, it
/// is not unique: sibling routes with the same matchers give the same key, so
/// an aggregation group is identified by the route's [`RouteNode::id`] and
/// the group labels, and this key is what is shown and sent.
pub fn group_key(route: &RouteNode, group_labels: &LabelSet) -> String {
    format!("{}:{}", route.key, label_set_string(group_labels))
}

/// Prometheus' `model.LabelSet.String()`: `{a="b", c="d"}`, sorted by name,
/// values quoted as Go's `strconv.Quote`; `{}` when empty.
pub fn label_set_string(labels: &LabelSet) -> String {
    let mut out = String::with_capacity(2 + labels.len() * 16);
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&super::matcher::go_quote(value));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod digest_window_tests {
    use super::*;

    #[test]
    fn digests_go_out_at_the_end_of_their_window() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        let rows = [
            // (interval, decided at, digest at)
            (
                Duration::hours(1),
                "2026-11-26T08:00:00Z",
                "2026-11-26T09:00:00Z",
            ),
            (
                Duration::hours(1),
                "2026-11-26T08:59:59.999Z",
                "2026-11-26T09:00:00Z",
            ),
            (
                Duration::minutes(15),
                "2026-11-26T08:16:00Z",
                "2026-11-26T08:30:00Z",
            ),
            // Daily windows end at midnight UTC.
            (
                Duration::days(1),
                "2026-11-26T23:10:00Z",
                "2026-11-27T00:00:00Z",
            ),
        ];
        for (interval, decided, want) in rows {
            let opts = PagesOpts {
                resolved: ResolvedPages::Digest,
                digest_interval: interval,
                ..PagesOpts::default()
            };
            assert_eq!(
                opts.digest_at(at(decided)),
                at(want),
                "{interval} {decided}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::time_interval::TimeInterval;

    /// Label pairs as written in a table.
    type Pairs = &'static [(&'static str, &'static str)];

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn receivers(names: &[&str]) -> Vec<ReceiverConfig> {
        names.iter().map(|n| ReceiverConfig::new(*n)).collect()
    }

    fn parse(yaml: &str) -> RouteConfig {
        yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
    }

    fn tree(yaml: &str, names: &[&str]) -> RouteTree {
        RouteTree::build(&parse(yaml), &receivers(names), &TimeIntervalSet::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn by(names: &[&str]) -> GroupBy {
        GroupBy::Labels(names.iter().map(|s| s.to_string()).collect())
    }

    fn secs(s: i64) -> Duration {
        Duration::seconds(s)
    }

    /// `RouteOpts` as in route_test.go: receiver, grouping, timers.
    fn opts(receiver: &str, group_by: GroupBy, wait: i64, interval: i64, repeat: i64) -> RouteOpts {
        RouteOpts {
            receiver: receiver.into(),
            group_by,
            group_wait: secs(wait),
            group_interval: secs(interval),
            repeat_interval: secs(repeat),
            mute_time_intervals: vec![],
            active_time_intervals: vec![],
            escalation: None,
            late_joiners: LateJoiners::default(),
            severity: SeverityOrder::default(),
            flap: FlapOpts::default(),
            pages: PagesOpts::default(),
        }
    }

    const DEF_WAIT: i64 = 30;
    const DEF_INTERVAL: i64 = 300;
    const DEF_REPEAT: i64 = 4 * 3600;

    const RECEIVERS: &[&str] = &[
        "notify-def",
        "notify-A",
        "notify-testing",
        "notify-productionA",
        "notify-productionB",
        "notify-BC",
    ];

    /// route_test.go TestRouteMatch's tree (legacy `match` / `match_re`).
    const MATCH_TREE: &str = r#"
receiver: 'notify-def'

routes:
- match:
    owner: 'team-A'

  receiver: 'notify-A'

  routes:
  - match:
      env: 'testing'

    receiver: 'notify-testing'
    group_by: [...]

  - match:
      env: "production"

    receiver: 'notify-productionA'
    group_wait: 1m

    continue: true

  - match_re:
      env: "produ.*"
      job: ".*"

    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']

- match_re:
    owner: 'team-(B|C)'

  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'

- match:
    group_by: 'role'
  group_by: ['role']

  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    routes:
    - match:
        wait: 'long'
      group_wait: 2m
"#;

    /// route_test.go TestRouteMatchers's tree: the same with `matchers`.
    const MATCHERS_TREE: &str = r#"
receiver: 'notify-def'

routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']

  receiver: 'notify-A'

  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']

    receiver: 'notify-testing'
    group_by: [...]

  - matchers: ['{env="production"}']

    receiver: 'notify-productionA'
    group_wait: 1m

    continue: true

  - matchers: [ env=~"produ.*", job=~".*"]

    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']


- matchers: [owner=~"team-(B|C)"]

  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'

- matchers: [group_by="role"]
  group_by: ['role']

  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"#;

    /// route_test.go TestRouteMatchersAndMatch's tree: both styles mixed.
    const MIXED_TREE: &str = r#"
receiver: 'notify-def'

routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']

  receiver: 'notify-A'

  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']

    receiver: 'notify-testing'
    group_by: [...]

  - match:
      env: "production"

    receiver: 'notify-productionA'
    group_wait: 1m

    continue: true

  - matchers: [ env=~"produ.*", job=~".*"]

    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']

- match_re:
    owner: 'team-(B|C)'

  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'

- matchers: [group_by="role"]
  group_by: ['role']

  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"#;

    /// The eight rows shared by TestRouteMatch, TestRouteMatchers and
    /// TestRouteMatchersAndMatch: input labels and the matched routes'
    /// options. The keys differ per tree and are passed in.
    fn check_route_match(yaml: &str, keys: [&[&str]; 8]) {
        let tree = tree(yaml, RECEIVERS);
        let rows: [(LabelSet, Vec<RouteOpts>); 8] = [
            // team-A but no child matches (env is unset): team-A's route itself.
            (
                labels(&[("owner", "team-A")]),
                vec![opts(
                    "notify-A",
                    by(&[]),
                    DEF_WAIT,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // An env no child matches: still team-A's route.
            (
                labels(&[("owner", "team-A"), ("env", "unset")]),
                vec![opts(
                    "notify-A",
                    by(&[]),
                    DEF_WAIT,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // team-C matches the team-(B|C) regex, anchored.
            (
                labels(&[("owner", "team-C")]),
                vec![opts(
                    "notify-BC",
                    by(&["foo", "bar"]),
                    120,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // team-A testing: the `...` child, grouping by all labels.
            (
                labels(&[("owner", "team-A"), ("env", "testing")]),
                vec![opts(
                    "notify-testing",
                    GroupBy::All,
                    DEF_WAIT,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // team-A production: productionA has continue, so productionB
            // (env=~produ.*) matches too, in order.
            (
                labels(&[("owner", "team-A"), ("env", "production")]),
                vec![
                    opts("notify-productionA", by(&[]), 60, DEF_INTERVAL, DEF_REPEAT),
                    opts("notify-productionB", by(&["job"]), 30, 300, 3600),
                ],
            ),
            // A label named group_by: the third top-level route, receiver
            // inherited from the root.
            (
                labels(&[("group_by", "role")]),
                vec![opts(
                    "notify-def",
                    by(&["role"]),
                    DEF_WAIT,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // Its testing child inherits group_by [role].
            (
                labels(&[("env", "testing"), ("group_by", "role")]),
                vec![opts(
                    "notify-testing",
                    by(&["role"]),
                    DEF_WAIT,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
            // Three levels down: receiver and group_by inherited, group_wait own.
            (
                labels(&[("env", "testing"), ("group_by", "role"), ("wait", "long")]),
                vec![opts(
                    "notify-testing",
                    by(&["role"]),
                    120,
                    DEF_INTERVAL,
                    DEF_REPEAT,
                )],
            ),
        ];
        for ((input, want_opts), want_keys) in rows.iter().zip(keys) {
            let matched = tree.matching(input);
            let got_opts: Vec<RouteOpts> = matched.iter().map(|n| n.opts().clone()).collect();
            let got_keys: Vec<&str> = matched.iter().map(|n| n.key()).collect();
            assert_eq!(&got_opts, want_opts, "{input:?}");
            assert_eq!(got_keys, want_keys, "{input:?}");
        }
    }

    /// route_test.go TestRouteMatch.
    #[test]
    fn route_match_legacy() {
        check_route_match(
            MATCH_TREE,
            [
                &[r#"{}/{owner="team-A"}"#],
                &[r#"{}/{owner="team-A"}"#],
                // match_re values are stored anchored, as in Alertmanager.
                &[r#"{}/{owner=~"^(?:team-(B|C))$"}"#],
                &[r#"{}/{owner="team-A"}/{env="testing"}"#],
                &[
                    r#"{}/{owner="team-A"}/{env="production"}"#,
                    r#"{}/{owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}"#,
                ],
                &[r#"{}/{group_by="role"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#],
            ],
        );
    }

    /// route_test.go TestRouteMatchers.
    #[test]
    fn route_match_matchers() {
        check_route_match(
            MATCHERS_TREE,
            [
                &[r#"{}/{level!="critical",owner="team-A"}"#],
                &[r#"{}/{level!="critical",owner="team-A"}"#],
                &[r#"{}/{owner=~"team-(B|C)"}"#],
                &[r#"{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}"#],
                &[
                    r#"{}/{level!="critical",owner="team-A"}/{env="production"}"#,
                    r#"{}/{level!="critical",owner="team-A"}/{env=~"produ.*",job=~".*"}"#,
                ],
                &[r#"{}/{group_by="role"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#],
            ],
        );
    }

    /// route_test.go TestRouteMatchersAndMatch.
    #[test]
    fn route_match_mixed() {
        check_route_match(
            MIXED_TREE,
            [
                &[r#"{}/{level!="critical",owner="team-A"}"#],
                &[r#"{}/{level!="critical",owner="team-A"}"#],
                &[r#"{}/{owner=~"^(?:team-(B|C))$"}"#],
                &[r#"{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}"#],
                &[
                    r#"{}/{level!="critical",owner="team-A"}/{env="production"}"#,
                    r#"{}/{level!="critical",owner="team-A"}/{env=~"produ.*",job=~".*"}"#,
                ],
                &[r#"{}/{group_by="role"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}"#],
                &[r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#],
            ],
        );
    }

    /// route_test.go TestRouteWalk: `nodes()` is depth first, parents first.
    #[test]
    fn walk_order() {
        let tree = tree(MATCH_TREE, RECEIVERS);
        let got: Vec<&str> = tree.nodes().iter().map(|n| n.receiver()).collect();
        assert_eq!(
            got,
            [
                "notify-def",
                "notify-A",
                "notify-testing",
                "notify-productionA",
                "notify-productionB",
                "notify-BC",
                "notify-def",
                "notify-testing",
                "notify-testing",
            ]
        );
        // Parent and child links agree with the order.
        for node in tree.nodes() {
            for child in tree.children(node) {
                assert_eq!(tree.parent(child).unwrap().index(), node.index());
                assert!(child.index() > node.index());
            }
        }
    }

    /// route_test.go TestInheritParentGroupByAll.
    #[test]
    fn inherit_group_by_all() {
        let tree = tree(
            r#"
receiver: r
routes:
- match:
    env: 'parent'
  group_by: ['...']

  routes:
  - match:
      env: 'child1'

  - match:
      env: 'child2'
    group_by: ['foo']
"#,
            &["r"],
        );
        let parent = &tree.nodes()[1];
        let child1 = &tree.nodes()[2];
        let child2 = &tree.nodes()[3];
        // The parent groups by all labels…
        assert_eq!(parent.opts().group_by, GroupBy::All);
        // …a child without group_by inherits that…
        assert_eq!(child1.opts().group_by, GroupBy::All);
        // …and a child with its own group_by does not.
        assert_eq!(child2.opts().group_by, by(&["foo"]));
    }

    /// route_test.go TestRouteID: ids add the position among siblings, so
    /// identical siblings get distinct ids while their keys are equal.
    #[test]
    fn route_ids() {
        let tree = tree(
            r#"
receiver: default
routes:
- continue: true
  matchers:
  - foo=bar
  receiver: test1
  routes:
  - matchers:
    - bar=baz
- continue: true
  matchers:
  - foo=bar
  receiver: test1
  routes:
  - matchers:
    - bar=baz
- continue: true
  matchers:
  - foo=bar
  receiver: test2
  routes:
  - matchers:
    - bar=baz
- continue: true
  matchers:
  - bar=baz
  receiver: test3
  routes:
  - matchers:
    - baz=qux
  - matchers:
    - qux=corge
- continue: true
  matchers:
  - qux=~"[a-zA-Z0-9]+"
- continue: true
  matchers:
  - corge!~"[0-9]+"
"#,
            &["default", "test1", "test2", "test3"],
        );
        let ids: Vec<&str> = tree.nodes().iter().map(|n| n.id()).collect();
        assert_eq!(
            ids,
            [
                r#"{}"#,
                r#"{}/{foo="bar"}/0"#,
                r#"{}/{foo="bar"}/0/{bar="baz"}/0"#,
                r#"{}/{foo="bar"}/1"#,
                r#"{}/{foo="bar"}/1/{bar="baz"}/0"#,
                r#"{}/{foo="bar"}/2"#,
                r#"{}/{foo="bar"}/2/{bar="baz"}/0"#,
                r#"{}/{bar="baz"}/3"#,
                r#"{}/{bar="baz"}/3/{baz="qux"}/0"#,
                r#"{}/{bar="baz"}/3/{qux="corge"}/1"#,
                r#"{}/{qux=~"[a-zA-Z0-9]+"}/4"#,
                r#"{}/{corge!~"[0-9]+"}/5"#,
            ]
        );
        // Keys leave the position out, so the three foo=bar routes share one.
        assert_eq!(tree.nodes()[1].key(), r#"{}/{foo="bar"}"#);
        assert_eq!(tree.nodes()[3].key(), r#"{}/{foo="bar"}"#);
        assert_eq!(tree.nodes()[2].key(), r#"{}/{foo="bar"}/{bar="baz"}"#);
        // Lookup by id.
        for node in tree.nodes() {
            assert_eq!(tree.get(node.id()).unwrap().index(), node.index());
        }
        assert!(tree.get("{}/nope").is_none());
        // Every route continues, so an alert with all labels matches many.
        let all = labels(&[
            ("foo", "bar"),
            ("bar", "baz"),
            ("baz", "qux"),
            ("qux", "corge"),
        ]);
        let got: Vec<&str> = tree.matching(&all).iter().map(|n| n.id()).collect();
        assert_eq!(
            got,
            [
                r#"{}/{foo="bar"}/0/{bar="baz"}/0"#,
                r#"{}/{foo="bar"}/1/{bar="baz"}/0"#,
                r#"{}/{foo="bar"}/2/{bar="baz"}/0"#,
                // bar=baz's first child matches and does not continue.
                r#"{}/{bar="baz"}/3/{baz="qux"}/0"#,
                r#"{}/{qux=~"[a-zA-Z0-9]+"}/4"#,
                // corge is "" which does not match [0-9]+.
                r#"{}/{corge!~"[0-9]+"}/5"#,
            ]
        );
    }

    /// dispatch_test.go TestGroups: routes, group keys and route ids of the
    /// groups each alert joins.
    #[test]
    fn groups_and_keys() {
        let tree = tree(
            r#"
group_by: ['alertname']
group_wait: 10ms
group_interval: 10ms
receiver: 'prod'
routes:
- match:
    env: 'testing'
  receiver: 'testing'
  group_by: ['alertname', 'service']
- match:
    env: 'prod'
  receiver: 'prod'
  group_by: ['alertname', 'service', 'cluster']
  continue: true
- match:
    kafka: 'yes'
  receiver: 'kafka'
  group_by: ['alertname', 'service', 'cluster']
"#,
            &["kafka", "prod", "testing"],
        );
        // (alert labels, [(receiver, group key, route id)])
        /// (receiver, group key, route id)
        type Group = (&'static str, &'static str, &'static str);
        let rows: &[(Pairs, &[Group])] = &[
            // Matches the parent route only.
            (
                &[
                    ("alertname", "OtherAlert"),
                    ("cluster", "cc"),
                    ("service", "dd"),
                ],
                &[("prod", r#"{}:{alertname="OtherAlert"}"#, "{}")],
            ),
            // Matches the first sub-route.
            (
                &[
                    ("env", "testing"),
                    ("alertname", "TestingAlert"),
                    ("service", "api"),
                    ("instance", "inst1"),
                ],
                &[(
                    "testing",
                    r#"{}/{env="testing"}:{alertname="TestingAlert", service="api"}"#,
                    r#"{}/{env="testing"}/0"#,
                )],
            ),
            // Matches the second sub-route.
            (
                &[
                    ("env", "prod"),
                    ("alertname", "HighErrorRate"),
                    ("cluster", "aa"),
                    ("service", "api"),
                    ("instance", "inst1"),
                ],
                &[(
                    "prod",
                    r#"{}/{env="prod"}:{alertname="HighErrorRate", cluster="aa", service="api"}"#,
                    r#"{}/{env="prod"}/1"#,
                )],
            ),
            // Another instance: the same group.
            (
                &[
                    ("env", "prod"),
                    ("alertname", "HighErrorRate"),
                    ("cluster", "aa"),
                    ("service", "api"),
                    ("instance", "inst2"),
                ],
                &[(
                    "prod",
                    r#"{}/{env="prod"}:{alertname="HighErrorRate", cluster="aa", service="api"}"#,
                    r#"{}/{env="prod"}/1"#,
                )],
            ),
            // Another cluster: another group on the same route.
            (
                &[
                    ("env", "prod"),
                    ("alertname", "HighErrorRate"),
                    ("cluster", "bb"),
                    ("service", "api"),
                    ("instance", "inst1"),
                ],
                &[(
                    "prod",
                    r#"{}/{env="prod"}:{alertname="HighErrorRate", cluster="bb", service="api"}"#,
                    r#"{}/{env="prod"}/1"#,
                )],
            ),
            // Matches the second (continue) and third sub-routes.
            (
                &[
                    ("env", "prod"),
                    ("alertname", "HighLatency"),
                    ("cluster", "bb"),
                    ("service", "db"),
                    ("kafka", "yes"),
                    ("instance", "inst3"),
                ],
                &[
                    (
                        "prod",
                        r#"{}/{env="prod"}:{alertname="HighLatency", cluster="bb", service="db"}"#,
                        r#"{}/{env="prod"}/1"#,
                    ),
                    (
                        "kafka",
                        r#"{}/{kafka="yes"}:{alertname="HighLatency", cluster="bb", service="db"}"#,
                        r#"{}/{kafka="yes"}/2"#,
                    ),
                ],
            ),
        ];
        for (alert, want) in rows {
            let alert = labels(alert);
            let got: Vec<(String, String, String)> = tree
                .matching(&alert)
                .into_iter()
                .map(|route| {
                    let gl = group_labels(route, &alert);
                    (
                        route.receiver().to_owned(),
                        group_key(route, &gl),
                        route.id().to_owned(),
                    )
                })
                .collect();
            let want: Vec<(String, String, String)> = want
                .iter()
                .map(|(r, k, i)| (r.to_string(), k.to_string(), i.to_string()))
                .collect();
            assert_eq!(got, want, "{alert:?}");
        }
        // The root's own timers came from the file.
        assert_eq!(tree.root().opts().group_wait, Duration::milliseconds(10));
        assert_eq!(
            tree.nodes()[1].opts().group_interval,
            Duration::milliseconds(10)
        );
    }

    /// dispatch_test.go TestGroupLabels and TestGroupByAllLabels.
    #[test]
    fn group_labels_by_route() {
        let tree = tree(
            "receiver: r\nroutes:\n- matchers: [x=1]\n  group_by: [a, b]\n- matchers: [x=2]\n  group_by: ['...']\n- matchers: [x=3]\n",
            &["r"],
        );
        let alert = |x: &str| labels(&[("a", "v1"), ("b", "v2"), ("c", "v3"), ("x", x)]);
        // (alert, group labels, group key)
        let rows: &[(LabelSet, LabelSet, &str)] = &[
            // group_by [a, b]: those two.
            (
                alert("1"),
                labels(&[("a", "v1"), ("b", "v2")]),
                r#"{}/{x="1"}:{a="v1", b="v2"}"#,
            ),
            // group_by ['...']: every label.
            (
                alert("2"),
                alert("2"),
                r#"{}/{x="2"}:{a="v1", b="v2", c="v3", x="2"}"#,
            ),
            // No group_by anywhere: one group for the route, `{}`.
            (alert("3"), labels(&[]), r#"{}/{x="3"}:{}"#),
            // A group_by label the alert lacks is left out, not "".
            (
                labels(&[("a", "v1"), ("x", "1")]),
                labels(&[("a", "v1")]),
                r#"{}/{x="1"}:{a="v1"}"#,
            ),
        ];
        for (alert, want_labels, want_key) in rows {
            let route = tree.matching(alert)[0];
            let gl = group_labels(route, alert);
            assert_eq!(&gl, want_labels, "{alert:?}");
            assert_eq!(group_key(route, &gl), *want_key);
        }
    }

    /// `model.LabelSet.String()`: sorted, `, `-separated, Go-quoted values.
    #[test]
    fn label_set_strings() {
        let rows: &[(&[(&str, &str)], &str)] = &[
            // Empty.
            (&[], "{}"),
            // Sorted by name, not by insertion.
            (&[("c", "d"), ("a", "b")], r#"{a="b", c="d"}"#),
            // Quotes and backslashes escaped.
            (&[("a", r#"x"y\z"#)], r#"{a="x\"y\\z"}"#),
            // Control characters as Go writes them.
            (
                &[("a", "1\n2\t3\r\u{7}\u{1}\u{7f}")],
                r#"{a="1\n2\t3\r\a\x01\x7f"}"#,
            ),
            // Printable UTF-8 kept, invisible format characters escaped.
            (&[("a", "烽火🙂\u{200b}")], r#"{a="烽火🙂\u200b"}"#),
            // Empty value.
            (&[("a", "")], r#"{a=""}"#),
        ];
        for (pairs, want) in rows {
            assert_eq!(label_set_string(&labels(pairs)), *want);
        }
    }

    /// Inheritance as in `NewRoute`, beyond what route_test.go covers.
    #[test]
    fn inheritance() {
        let offhours: TimeInterval =
            yaml_serde::from_str("name: offhours\ntime_intervals:\n  - weekdays: [saturday]\n")
                .unwrap();
        let business: TimeInterval =
            yaml_serde::from_str("name: business\ntime_intervals:\n  - weekdays: [monday]\n")
                .unwrap();
        let intervals = TimeIntervalSet::from_config(&[offhours, business], &[]).unwrap();
        let cfg = parse(
            r#"
receiver: root
group_by: [alertname]
group_wait: 1m
group_interval: 10m
repeat_interval: 12h
routes:
- matchers: [team=a]
  receiver: a
  group_by: []
  repeat_interval: 1h
  mute_time_intervals: [offhours]
  active_time_intervals: [business]
  routes:
  - matchers: [sev=page]
    receiver: ''
    group_wait: 0s
"#,
        );
        let tree = RouteTree::build(&cfg, &receivers(&["root", "a"]), &intervals).unwrap();
        let [root, a, page] = tree.nodes() else {
            panic!("three routes")
        };
        assert_eq!(
            root.opts(),
            &opts("root", by(&["alertname"]), 60, 600, 12 * 3600)
        );
        // group_by: [] inherits (Alertmanager cannot tell it from absent);
        // own repeat_interval; other timers inherited.
        let mut want = opts("a", by(&["alertname"]), 60, 600, 3600);
        want.mute_time_intervals = vec!["offhours".into()];
        want.active_time_intervals = vec!["business".into()];
        assert_eq!(a.opts(), &want);
        // An empty receiver inherits; group_wait 0s is allowed; time
        // intervals are NOT inherited.
        assert_eq!(page.opts(), &opts("a", by(&["alertname"]), 0, 600, 3600));
        // The root has no matchers and matches everything.
        assert!(root.matchers().is_empty());
        assert_eq!(root.key(), "{}");
        assert_eq!(tree.matching(&labels(&[]))[0].index(), 0);
        assert_eq!(
            tree.matching(&labels(&[("team", "a"), ("sev", "page")]))[0].id(),
            r#"{}/{team="a"}/0/{sev="page"}/0"#
        );
    }

    /// Alertmanager's validation, one rule per row.
    #[test]
    fn validation_errors() {
        let weekends: TimeInterval =
            yaml_serde::from_str("name: weekends\ntime_intervals:\n  - weekdays: [saturday]\n")
                .unwrap();
        let intervals = TimeIntervalSet::from_config(&[weekends], &[]).unwrap();
        // (route yaml, receivers, expected error)
        let rows: &[(&str, &[&str], &str)] = &[
            // The root needs a receiver.
            (
                "group_by: [a]",
                &["r"],
                "route: root route must specify a default receiver",
            ),
            // The root may have no matchers, of any style.
            (
                "receiver: r\nmatchers: ['a=b']",
                &["r"],
                "route: root route must not have any matchers",
            ),
            (
                "receiver: r\nmatch: {a: b}",
                &["r"],
                "route: root route must not have any matchers",
            ),
            (
                "receiver: r\nmatch_re: {a: b}",
                &["r"],
                "route: root route must not have any matchers",
            ),
            // …no time intervals…
            (
                "receiver: r\nmute_time_intervals: [weekends]",
                &["r"],
                "route: root route must not have any mute time intervals",
            ),
            (
                "receiver: r\nactive_time_intervals: [weekends]",
                &["r"],
                "route: root route must not have any active time intervals",
            ),
            // …and no continue.
            (
                "receiver: r\ncontinue: true",
                &["r"],
                "route: cannot have continue in root route",
            ),
            // Receivers must exist, at the root…
            (
                "receiver: nope",
                &["r"],
                r#"route: undefined receiver "nope" used in route"#,
            ),
            // …and below, with the path of the route.
            (
                "receiver: r\nroutes:\n- matchers: [a=b]\n- matchers: [a=c]\n  routes:\n  - receiver: nope\n",
                &["r"],
                r#"route.routes[1].routes[0]: undefined receiver "nope" used in route"#,
            ),
            // Receiver names are unique.
            (
                "receiver: r",
                &["r", "x", "r"],
                r#"receivers[2]: notification config name "r" is not unique"#,
            ),
            // Receiver names are present.
            (
                "receiver: r",
                &["r", ""],
                "receivers[1]: missing name in receiver",
            ),
            // Time intervals must exist.
            (
                "receiver: r\nroutes:\n- mute_time_intervals: [weekends, holidays]\n",
                &["r"],
                r#"route.routes[0]: undefined time interval "holidays" used in route"#,
            ),
            (
                "receiver: r\nroutes:\n- active_time_intervals: [nights]\n",
                &["r"],
                r#"route.routes[0]: undefined time interval "nights" used in route"#,
            ),
            // group_by: no duplicates…
            (
                "receiver: r\ngroup_by: [a, b, a]",
                &["r"],
                r#"route: duplicated label "a" in group_by"#,
            ),
            // …`...` only alone…
            (
                "receiver: r\ngroup_by: ['...', a]",
                &["r"],
                "route: cannot have wildcard group_by (`...`) and other labels at the same time",
            ),
            // …no empty names.
            (
                "receiver: r\ngroup_by: ['']",
                &["r"],
                r#"route: invalid label name "" in group_by list"#,
            ),
            // group_interval and repeat_interval cannot be zero.
            (
                "receiver: r\nroutes:\n- group_interval: 0s\n",
                &["r"],
                "route.routes[0]: group_interval cannot be zero",
            ),
            (
                "receiver: r\nrepeat_interval: 0s",
                &["r"],
                "route: repeat_interval cannot be zero",
            ),
            // Fenghuo's flap option: one change is just firing; more
            // changes than are kept could never be counted.
            (
                "receiver: r\nflap: {changes: 1}",
                &["r"],
                "route: flap.changes must be 0 (off) or from 2 to 64",
            ),
            (
                "receiver: r\nroutes:\n- flap: {changes: 65}\n",
                &["r"],
                "route.routes[0]: flap.changes must be 0 (off) or from 2 to 64",
            ),
            (
                "receiver: r\nflap: {window: 2d}",
                &["r"],
                "route: flap.window must be positive and at most 1d",
            ),
            (
                "receiver: r\nflap: {stable: 0s}",
                &["r"],
                "route: flap.stable must be positive",
            ),
            // A digest of resolved alerts more often than a minute is a
            // page each.
            (
                "receiver: r\nroutes:\n- pages: {resolved: digest, digest_interval: 30s}\n",
                &["r"],
                "route.routes[0]: pages.digest_interval must be at least 1m (a digest more \
                 often is a page each)",
            ),
            // match / match_re keys are classic label names.
            (
                "receiver: r\nroutes:\n- match: {'a-b': x}\n",
                &["r"],
                r#"route.routes[0]: invalid label name "a-b""#,
            ),
            (
                "receiver: r\nroutes:\n- match_re: {'0a': x}\n",
                &["r"],
                r#"route.routes[0]: invalid label name "0a""#,
            ),
        ];
        for (yaml, names, want) in rows {
            let err = RouteTree::build(&parse(yaml), &receivers(names), &intervals)
                .expect_err(yaml)
                .to_string();
            assert_eq!(&err, want, "{yaml}");
        }
        // An invalid match_re regex names the label and the regex as written.
        let err = RouteTree::build(
            &parse("receiver: r\nroutes:\n- match_re: {a: '(x'}\n"),
            &receivers(&["r"]),
            &intervals,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(r#"route.routes[0]: match_re "a": invalid regular expression "(x""#),
            "{err}"
        );
    }

    /// The YAML itself: unknown fields, bad durations and bad matchers are
    /// refused with line and column; nulls mean "not set" as in Go's yaml.
    #[test]
    fn yaml_parsing() {
        // (yaml, substrings of the error)
        let rows: &[(&str, &[&str])] = &[
            // A misspelt field.
            (
                "receiver: r\nroutes:\n  - recevier: x\n",
                &["unknown field `recevier`", "line 3"],
            ),
            // A duration in the wrong notation (yaml_serde gives the line
            // of the enclosing mapping for such errors).
            (
                "receiver: r\nroutes:\n  - group_wait: 30 seconds\n",
                &["routes[0]", "invalid duration", "line 3"],
            ),
            // A matcher that parses in neither syntax.
            (
                "receiver: r\nroutes:\n  - matchers: ['foo!bar']\n",
                &["invalid matcher", "line 3"],
            ),
            // `matchers` must be a list.
            ("receiver: r\nroutes:\n  - matchers: 'a=b'\n", &["line 3"]),
            // Fenghuo's options: an unknown late_joiners value, a misspelt
            // flap field.
            (
                "receiver: r\nlate_joiners: sometimes\n",
                &[
                    "unknown variant `sometimes`",
                    "`wait`, `severity`, `always`",
                    "line 2",
                ],
            ),
            (
                "receiver: r\nflap: {changez: 3}\n",
                &["unknown field `changez`"],
            ),
        ];
        for (yaml, wants) in rows {
            let err = yaml_serde::from_str::<RouteConfig>(yaml)
                .expect_err(yaml)
                .to_string();
            for want in *wants {
                assert!(err.contains(want), "{yaml}: {err}");
            }
        }

        // Nulls and empty values read as unset.
        let cfg = parse(
            "receiver: r\ngroup_by:\ncontinue:\nmatch:\nmatch_re: ~\nmatchers:\nmute_time_intervals:\nroutes:\n",
        );
        assert_eq!(
            cfg,
            RouteConfig {
                receiver: "r".into(),
                ..RouteConfig::default()
            }
        );
        // A bare 0 is a duration, as in Alertmanager.
        let cfg = parse("receiver: r\ngroup_wait: 0\n");
        assert_eq!(cfg.group_wait, Some(PromDuration(Duration::zero())));
        // Unquoted numbers and booleans in `match` are strings, as in Go's yaml.
        let cfg =
            parse("receiver: r\nroutes:\n- match: {code: 500, page: true}\n  group_by: [1]\n");
        assert_eq!(cfg.routes[0].r#match["code"], "500");
        assert_eq!(cfg.routes[0].r#match["page"], "true");
        assert_eq!(cfg.routes[0].group_by, Some(vec!["1".to_string()]));
    }

    /// Written back, a route reads the same (match_re as written, not
    /// anchored).
    #[test]
    fn serialization_round_trips() {
        let cfg = parse(MIXED_TREE);
        let yaml = yaml_serde::to_string(&cfg).unwrap();
        assert!(yaml.contains("team-(B|C)"), "{yaml}");
        assert!(!yaml.contains("^(?:"), "{yaml}");
        assert_eq!(parse(&yaml), cfg);
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["routes"][0]["routes"][1]["continue"], true);
        assert_eq!(json["routes"][0]["routes"][1]["group_wait"], "1m");
        assert_eq!(
            json["routes"][0]["matchers"],
            serde_json::json!(["level!=\"critical\"", "owner=\"team-A\""])
        );
    }

    /// Receivers from a real alertmanager.yml load unchanged; integrations
    /// are kept as written.
    #[test]
    fn receivers_load() {
        let yaml = r#"
- name: 'team-x-mails'
  email_configs:
  - to: 'team-X+alerts@example.org'
    send_resolved: true
- name: 'team-x-pager'
  email_configs:
  - to: 'team-X+alerts-critical@example.org'
  pagerduty_configs:
  - routing_key: <team-X-key>
- name: 'team-DB-pager'
  pagerduty_configs:
  - routing_key: <team-DB-key>
    details: {cluster: '{{ .CommonLabels.cluster }}'}
- name: 'slack'
  slack_configs:
  - api_url: https://hooks.slack.com/services/x
    channel: '#alerts'
    actions:
    - type: button
      text: 'Runbook'
      url: '{{ (index .Alerts 0).Annotations.runbook }}'
- name: 'wechat'
  wechat_configs:
  - corp_id: ww1
    to_party: '2'
- name: 'hook'
  webhook_configs:
  - url: 'http://127.0.0.1:9797/ingest/alertmanager'
    max_alerts: 10
    http_config: {basic_auth: {username: u, password: p}}
- name: 'blackhole'
- name: 'future'
  dingtalk_configs: []
  opsgenie_configs:
"#;
        let rs: Vec<ReceiverConfig> = yaml_serde::from_str(yaml).unwrap();
        let names: Vec<&str> = rs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "team-x-mails",
                "team-x-pager",
                "team-DB-pager",
                "slack",
                "wechat",
                "hook",
                "blackhole",
                "future"
            ]
        );
        assert_eq!(
            rs[0].integrations["email_configs"][0]["send_resolved"],
            true
        );
        assert_eq!(
            rs[1].integrations.keys().collect::<Vec<_>>(),
            ["email_configs", "pagerduty_configs"]
        );
        assert_eq!(
            rs[3].integrations["slack_configs"][0]["actions"][0]["text"],
            "Runbook"
        );
        assert_eq!(rs[5].integrations["webhook_configs"][0]["max_alerts"], 10);
        assert!(rs[6].integrations.is_empty());
        // An empty list is kept, a null one is dropped.
        assert_eq!(
            rs[7].integrations.keys().collect::<Vec<_>>(),
            ["dingtalk_configs"]
        );
        // Round trip.
        let back: Vec<ReceiverConfig> =
            yaml_serde::from_str(&yaml_serde::to_string(&rs).unwrap()).unwrap();
        assert_eq!(back, rs);

        // (yaml, substrings of the error)
        let rows: &[(&str, &[&str])] = &[
            // Neither `name` nor an integration list.
            (
                "- name: x\n  emial_configs: []\n  sent_resolved: true\n",
                &["unknown field `sent_resolved`", "line 3"],
            ),
            // No name.
            ("- email_configs: []\n", &["missing name in receiver"]),
            // An empty name.
            ("- name: ''\n", &["missing name in receiver"]),
            // An integration that is not a list.
            (
                "- name: x\n  webhook_configs: {url: 'http://x'}\n",
                &["webhook_configs", "line 2"],
            ),
            // Twice the same key.
            (
                "- name: x\n  webhook_configs: []\n  webhook_configs: []\n",
                &["duplicate field `webhook_configs`", "line 3"],
            ),
            (
                "- name: x\n  name: y\n",
                &["duplicate field `name`", "line 2"],
            ),
        ];
        for (yaml, wants) in rows {
            let err = yaml_serde::from_str::<Vec<ReceiverConfig>>(yaml)
                .expect_err(yaml)
                .to_string();
            for want in *wants {
                assert!(err.contains(want), "{yaml}: {err}");
            }
        }
    }
}
