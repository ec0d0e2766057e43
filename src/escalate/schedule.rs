//! On-call schedules: who is on call at an instant, and the timeline of
//! handoffs.
//!
//! ```yaml
//! schedules:
//!   - name: platform
//!     time_zone: Europe/Berlin
//!     layers:
//!       # Around the clock: a weekly rotation handing off Monday 09:00.
//!       - name: primary
//!         rotation: weekly          # daily | weekly | a length: 12h, 3d
//!         handoff: "09:00"          # in the schedule's time zone
//!         handoff_weekday: monday   # weekly only; default: start's weekday
//!         start: 2026-01-05         # date of the first handoff
//!         people: [alice, bob, [carol, dave]]   # a list is a pair on call together
//!       # Office hours: later layers win where they have someone.
//!       - name: office
//!         rotation: daily
//!         handoff: "09:00"
//!         start: 2026-01-05
//!         people: [erin, frank]
//!         restrictions:
//!           - time_interval: office-hours   # from `time_intervals:`
//!           - cron: "0 9 * * 6"             # 5-field Unix cron, in the schedule's zone
//!             duration: 4h
//!     overrides:
//!       - person: alice
//!         replaces: bob             # optional: without it, alice alone is on call
//!         from: 2026-03-07T09:00:00+01:00
//!         to: 2026-03-08T09:00:00+01:00
//! ```
//!
//! # What is on call
//!
//! A layer's rotation cycles through its turns, one turn per rotation
//! length, from the first handoff on. Before it, the layer has nobody. A
//! layer with restrictions has somebody only inside at least one of them;
//! the rotation keeps turning outside them (as PagerDuty's restrictions do:
//! a hidden turn is not postponed). Where a layer has nobody, the layers
//! below it show through; where the last layer that has somebody is found,
//! its turn is on call. Overrides are applied last, in order, and win over
//! every layer: one without `replaces` puts its person alone on call; one
//! with `replaces` swaps that person for its own wherever the replaced
//! person is on call, keeping the others, and changes nothing elsewhere.
//!
//! # Local time and daylight saving time
//!
//! Rotations are counted on the wall clock of the schedule's zone: handoff
//! `k` is at the local date-time `first handoff + k × length`, so a daily
//! 09:00 handoff stays at 09:00 across a DST change (that shift lasts 23 or
//! 25 hours), a weekly one counts local dates, and a `12h` one hands off at
//! 09:00 and 21:00 local. Where that local time does not exist or exists
//! twice, the handoff happens **the first time the local clock reads the
//! handoff time or later**:
//!
//! * a time skipped by spring-forward (02:30 on 31 March 2024 in Berlin)
//!   happens when the clock jumps past it, at 03:00 local;
//! * a time repeated by fall-back (02:30 on 27 October 2024 in Berlin)
//!   happens at its first occurrence, in summer time.
//!
//! Cron restrictions follow the same rule for their start times (the `cron`
//! crate alone would skip a window that starts in a spring-forward gap and
//! start one twice in a fall-back), and last their `duration` in elapsed
//! time. Time-interval restrictions are Alertmanager's, read on the local
//! clock of their own `location`.
//!
//! # Cron
//!
//! Restrictions take 5-field Unix cron (`minute hour day-of-month month
//! day-of-week`) and the `@yearly` … `@hourly` macros, translated for the
//! `cron` crate, which wants seconds first, numbers Sunday 1 and ANDs the
//! two day fields. As in Vixie cron, `0` and `7` are Sunday, and when both
//! day fields are restricted (neither starts with `*`) a day matches if
//! either does. `L`, `W`, `#`, `?`, `@every` and `@reboot` are refused.
//!
//! This module never reads the wall clock, never sends, and never touches
//! the log: every answer is a function of the config and the instant
//! passed in.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::people::{Person, PersonName, Zone};
use crate::config::PromDuration;
use crate::evaluate::time_interval::{TimeInterval, TimeIntervalSet};

/// The shortest rotation: shorter turns cannot be handed over by people,
/// and would make timelines needlessly long.
const MIN_ROTATION: Duration = Duration::hours(1);

/// How far [`Schedule::shift_at`] and [`Schedule::upcoming`] look for a
/// change before they say "not within the horizon".
pub const HORIZON: Duration = Duration::days(366);

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// One entry of `schedules:`, checked field by field as it is read (so
/// errors carry their line and column). Names are resolved by
/// [`OnCall::compile`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawSchedule")]
pub struct ScheduleConfig {
    pub name: String,
    pub time_zone: Zone,
    pub layers: Vec<LayerConfig>,
    pub overrides: Vec<OverrideConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    name: String,
    time_zone: Zone,
    #[serde(default)]
    layers: Vec<LayerConfig>,
    #[serde(default)]
    overrides: Vec<OverrideConfig>,
}

impl TryFrom<RawSchedule> for ScheduleConfig {
    type Error = String;

    fn try_from(raw: RawSchedule) -> Result<Self, String> {
        if raw.name.trim().is_empty() {
            return Err("a schedule needs a name".into());
        }
        if raw.layers.is_empty() {
            return Err(format!(
                "schedule {:?} has no layers: give at least one rotation",
                raw.name
            ));
        }
        Ok(ScheduleConfig {
            name: raw.name,
            time_zone: raw.time_zone,
            layers: raw.layers,
            overrides: raw.overrides,
        })
    }
}

/// One layer: a rotation of turns, optionally restricted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawLayer")]
pub struct LayerConfig {
    pub name: Option<String>,
    pub rotation: RotationLength,
    pub handoff: HandoffTime,
    pub handoff_weekday: Option<Weekday>,
    pub start: StartDate,
    /// Each turn: one person, or several on call together.
    pub people: Vec<Vec<PersonName>>,
    pub restrictions: Vec<RestrictionConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    #[serde(default)]
    name: Option<String>,
    rotation: RotationLength,
    handoff: HandoffTime,
    #[serde(default)]
    handoff_weekday: Option<WeekdayName>,
    start: StartDate,
    people: Vec<Turn>,
    #[serde(default)]
    restrictions: Vec<RestrictionConfig>,
}

impl TryFrom<RawLayer> for LayerConfig {
    type Error = String;

    fn try_from(raw: RawLayer) -> Result<Self, String> {
        let layer = raw.name.as_deref().unwrap_or("layer");
        if raw.people.is_empty() {
            return Err(format!(
                "{layer}: people is empty: a rotation needs someone"
            ));
        }
        if raw.handoff_weekday.is_some() && raw.rotation != RotationLength::Weekly {
            return Err(format!(
                "{layer}: handoff_weekday is for weekly rotations, and this one is {}",
                raw.rotation
            ));
        }
        Ok(LayerConfig {
            name: raw.name,
            rotation: raw.rotation,
            handoff: raw.handoff,
            handoff_weekday: raw.handoff_weekday.map(|w| w.0),
            start: raw.start,
            people: raw.people.into_iter().map(|t| t.0).collect(),
            restrictions: raw.restrictions,
        })
    }
}

/// How long one turn lasts, on the schedule's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationLength {
    Daily,
    Weekly,
    /// A length such as `12h` or `3d`: whole minutes, at least an hour.
    Every(Duration),
}

impl RotationLength {
    pub fn duration(self) -> Duration {
        match self {
            RotationLength::Daily => Duration::days(1),
            RotationLength::Weekly => Duration::weeks(1),
            RotationLength::Every(d) => d,
        }
    }
}

impl fmt::Display for RotationLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationLength::Daily => f.write_str("daily"),
            RotationLength::Weekly => f.write_str("weekly"),
            RotationLength::Every(d) => write!(f, "{}", PromDuration(*d)),
        }
    }
}

impl FromStr for RotationLength {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "daily" => return Ok(RotationLength::Daily),
            "weekly" => return Ok(RotationLength::Weekly),
            _ => {}
        }
        let d = PromDuration::parse(s)
            .map_err(|_| {
                format!(
                    "invalid rotation {s:?}: expected daily, weekly, or a length such as 12h or 3d"
                )
            })?
            .0;
        if d < MIN_ROTATION {
            return Err(format!("invalid rotation {s:?}: a turn lasts at least 1h"));
        }
        if d.num_milliseconds() % 60_000 != 0 {
            return Err(format!(
                "invalid rotation {s:?}: a turn lasts whole minutes"
            ));
        }
        Ok(RotationLength::Every(d))
    }
}

/// A handoff time of day, `HH:MM` on the schedule's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffTime(pub NaiveTime);

impl FromStr for HandoffTime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        let ok =
            b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
        let time = ok
            .then(|| NaiveTime::from_hms_opt(s[..2].parse().ok()?, s[3..].parse().ok()?, 0))
            .flatten();
        time.map(HandoffTime).ok_or_else(|| {
            format!("invalid handoff time {s:?}: expected HH:MM from 00:00 to 23:59")
        })
    }
}

/// The date of a layer's first handoff, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartDate(pub NaiveDate);

impl FromStr for StartDate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(StartDate)
            .map_err(|_| format!("invalid start date {s:?}: expected YYYY-MM-DD"))
    }
}

/// A weekday by its English name, in any case (`monday`, `Mon`).
struct WeekdayName(Weekday);

impl FromStr for WeekdayName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<Weekday>().map(WeekdayName).map_err(|_| {
            format!("invalid handoff_weekday {s:?}: expected a day name such as monday")
        })
    }
}

/// One turn of a rotation: a name, or a list of names on call together.
struct Turn(Vec<PersonName>);

impl<'de> Deserialize<'de> for Turn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Several(Vec<String>),
        }
        let names = match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("a turn is a person's name or a list of names"))?
        {
            Raw::One(n) => vec![n],
            Raw::Several(ns) => ns,
        };
        if names.is_empty() {
            return Err(de::Error::custom("a turn needs at least one person"));
        }
        names
            .into_iter()
            .map(|n| known_person(n).map_err(de::Error::custom))
            .collect::<Result<_, _>>()
            .map(Turn)
    }
}

/// Where a layer has somebody: inside a named time interval, or inside a
/// window of `duration` starting at each time a cron expression matches.
#[derive(Debug, Clone, PartialEq)]
pub enum RestrictionConfig {
    TimeInterval(String),
    Cron { cron: UnixCron, duration: Duration },
}

impl<'de> Deserialize<'de> for RestrictionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            time_interval: Option<String>,
            cron: Option<String>,
            duration: Option<PromDuration>,
        }
        let raw = Raw::deserialize(d)?;
        let e = |m: String| <D::Error as de::Error>::custom(m);
        match (raw.time_interval, raw.cron, raw.duration) {
            (Some(name), None, None) => known_interval(name)
                .map(RestrictionConfig::TimeInterval)
                .map_err(e),
            (Some(_), None, Some(_)) => Err(e(
                "a time_interval restriction has no duration: the interval says when it ends"
                    .into(),
            )),
            (None, Some(expr), Some(PromDuration(duration))) => {
                if duration <= Duration::zero() {
                    return Err(e(format!("cron {expr:?}: duration must be more than 0s")));
                }
                let cron = UnixCron::parse(&expr).map_err(e)?;
                Ok(RestrictionConfig::Cron { cron, duration })
            }
            (None, Some(expr), None) => Err(e(format!(
                "cron {expr:?} needs a duration: how long each window lasts, e.g. 8h"
            ))),
            _ => Err(e(
                "a restriction is either {time_interval: NAME} or {cron: EXPRESSION, duration: LENGTH}"
                    .into(),
            )),
        }
    }
}

/// One override: `person` is on call from `from` to `to`, instead of
/// everyone or instead of `replaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawOverride")]
pub struct OverrideConfig {
    pub person: PersonName,
    pub replaces: Option<PersonName>,
    pub from: DateTime<FixedOffset>,
    pub to: DateTime<FixedOffset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    person: PersonRef,
    #[serde(default)]
    replaces: Option<PersonRef>,
    from: Instant,
    to: Instant,
}

impl TryFrom<RawOverride> for OverrideConfig {
    type Error = String;

    fn try_from(raw: RawOverride) -> Result<Self, String> {
        if raw.to.0 <= raw.from.0 {
            return Err(format!(
                "override for {}: to {} is not after from {}",
                raw.person.0,
                raw.to.0.to_rfc3339(),
                raw.from.0.to_rfc3339()
            ));
        }
        Ok(OverrideConfig {
            person: raw.person.0,
            replaces: raw.replaces.map(|r| r.0),
            from: raw.from.0,
            to: raw.to.0,
        })
    }
}

/// A reference to a person by name.
struct PersonRef(PersonName);

impl<'de> Deserialize<'de> for PersonRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        known_person(String::deserialize(d)?)
            .map(PersonRef)
            .map_err(de::Error::custom)
    }
}

/// An instant written with its offset (RFC 3339).
struct Instant(DateTime<FixedOffset>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(Instant).map_err(|_| {
            de::Error::custom(format!(
                "invalid time {s:?}: expected RFC 3339 with an offset, such as 2026-03-07T09:00:00+01:00"
            ))
        })
    }
}

macro_rules! from_str_serde {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

from_str_serde!(RotationLength, HandoffTime, StartDate, WeekdayName);

// ---------------------------------------------------------------------------
// Names known while reading: references refused where they are written
// ---------------------------------------------------------------------------

/// The names a config defines, while it is read a second time.
struct KnownNames {
    people: BTreeSet<String>,
    intervals: BTreeSet<String>,
}

thread_local! {
    static KNOWN: RefCell<Option<KnownNames>> = const { RefCell::new(None) };
}

/// Runs `read` (a deserialization of the config) knowing which people and
/// time intervals exist, so a reference to an unknown one fails *while it is
/// read*, and the YAML error carries its line and column. Serde's derive
/// offers no other way to hand a deserializer context; the names are set
/// for this thread only, for the length of `read`.
pub fn with_known_names<'a, R>(
    people: &[Person],
    intervals: impl IntoIterator<Item = &'a str>,
    read: impl FnOnce() -> R,
) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            KNOWN.with(|k| *k.borrow_mut() = None);
        }
    }
    KNOWN.with(|k| {
        *k.borrow_mut() = Some(KnownNames {
            people: people.iter().map(|p| p.name.0.clone()).collect(),
            intervals: intervals.into_iter().map(str::to_owned).collect(),
        })
    });
    let _reset = Reset;
    read()
}

fn known_person(name: String) -> Result<PersonName, String> {
    KNOWN.with(|k| match &*k.borrow() {
        Some(known) if !known.people.contains(&name) => Err(unknown_person(&name, &known.people)),
        _ => Ok(PersonName(name)),
    })
}

fn known_interval(name: String) -> Result<String, String> {
    KNOWN.with(|k| match &*k.borrow() {
        Some(known) if !known.intervals.contains(&name) => {
            Err(undefined_interval(&name, &known.intervals))
        }
        _ => Ok(name),
    })
}

fn unknown_person<'a>(name: &str, people: impl IntoIterator<Item = &'a String>) -> String {
    let people: Vec<&str> = people.into_iter().map(String::as_str).collect();
    if people.is_empty() {
        format!("unknown person {name:?}: `people:` defines nobody")
    } else {
        format!("unknown person {name:?} (people: {})", people.join(", "))
    }
}

fn undefined_interval<'a>(name: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        format!("time interval {name:?} is not defined: `time_intervals:` is empty")
    } else {
        format!(
            "time interval {name:?} is not defined (time_intervals: {})",
            names.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------
// Unix cron, translated
// ---------------------------------------------------------------------------

/// A 5-field Unix cron expression, with the `cron` crate's schedules that
/// together fire exactly when it does (two when both day fields are
/// restricted: Unix ORs them, the crate ANDs them).
#[derive(Debug, Clone)]
pub struct UnixCron {
    source: String,
    translated: Vec<String>,
    schedules: Vec<cron::Schedule>,
}

impl PartialEq for UnixCron {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for UnixCron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl UnixCron {
    pub fn parse(expr: &str) -> Result<UnixCron, String> {
        let translated = translate_cron(expr).map_err(|e| format!("cron {expr:?}: {e}"))?;
        let schedules = translated
            .iter()
            .map(|t| {
                cron::Schedule::from_str(t)
                    .map_err(|e| format!("cron {expr:?} (translated to {t:?}): {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(UnixCron {
            source: expr.to_owned(),
            translated,
            schedules,
        })
    }

    /// The expressions handed to the `cron` crate.
    pub fn translated(&self) -> &[String] {
        &self.translated
    }

    /// Local date-times at or before `local` at which the expression
    /// matches, latest first.
    pub(crate) fn matches_at_or_before(
        &self,
        local: NaiveDateTime,
    ) -> impl Iterator<Item = NaiveDateTime> + '_ {
        // The crate iterates backwards from an instant, exclusive of it.
        let probe = local.and_utc() + Duration::seconds(1);
        merge_unique(
            self.schedules
                .iter()
                .map(|s| s.after_owned(probe).rev().map(|t| t.naive_utc()))
                .collect(),
            |a, b| a > b,
        )
    }

    /// Local date-times after `local` at which the expression matches, in
    /// order.
    pub(crate) fn matches_after(
        &self,
        local: NaiveDateTime,
    ) -> impl Iterator<Item = NaiveDateTime> + '_ {
        // Each schedule is iterated on a zone without DST, so every local
        // date-time it matches is seen exactly once; the zone's gaps and
        // folds are resolved by the caller, as handoffs are.
        let start = local.and_utc();
        merge_unique(
            self.schedules
                .iter()
                .map(|s| s.after_owned(start).map(|t| t.naive_utc()))
                .collect(),
            |a, b| a < b,
        )
    }
}

/// Merges sorted streams into one, each value once (the two schedules of an
/// ORed expression may match the same minute). `first(a, b)`: a comes
/// before b.
fn merge_unique<I: Iterator<Item = NaiveDateTime>>(
    streams: Vec<I>,
    first: fn(&NaiveDateTime, &NaiveDateTime) -> bool,
) -> impl Iterator<Item = NaiveDateTime> {
    let mut streams: Vec<_> = streams.into_iter().map(Iterator::peekable).collect();
    std::iter::from_fn(move || {
        let mut next: Option<NaiveDateTime> = None;
        for s in streams.iter_mut() {
            if let Some(t) = s.peek()
                && next.is_none_or(|n| first(t, &n))
            {
                next = Some(*t);
            }
        }
        let next = next?;
        for s in streams.iter_mut() {
            while s.peek() == Some(&next) {
                s.next();
            }
        }
        Some(next)
    })
}

/// A Unix cron field's values and whether it was written starting with `*`
/// (which decides how the two day fields combine, as in Vixie cron).
struct CronField {
    values: BTreeSet<u32>,
    star: bool,
}

const CRON_MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const CRON_DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Unix cron to the `cron` crate: seconds `0` first; minutes, hours, days
/// of the month and months as explicit lists; days of the week by name
/// (the crate numbers Sunday 1, Unix 0 or 7). Two expressions when both
/// day fields are restricted, since Unix ORs them and the crate ANDs them.
fn translate_cron(expr: &str) -> Result<Vec<String>, String> {
    let expr = expr.trim();
    let expanded = match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
        "@monthly" => "0 0 1 * *".to_owned(),
        "@weekly" => "0 0 * * 0".to_owned(),
        "@daily" | "@midnight" => "0 0 * * *".to_owned(),
        "@hourly" => "0 * * * *".to_owned(),
        "@reboot" => return Err("@reboot is not a time: a restriction needs times".into()),
        e if e.starts_with("@every") => {
            return Err(
                "@every is not supported: write the times as cron fields, e.g. */15 * * * *".into(),
            );
        }
        e if e.starts_with('@') => {
            return Err("unknown macro: use @yearly, @monthly, @weekly, @daily or @hourly".into());
        }
        _ => expr.to_owned(),
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), got {}{}",
            fields.len(),
            if fields.len() > 5 {
                ": seconds and years are not Unix cron"
            } else {
                ""
            }
        ));
    }
    let minute = cron_field(fields[0], "minute", 0, 59, &[])?;
    let hour = cron_field(fields[1], "hour", 0, 23, &[])?;
    let dom = cron_field(fields[2], "day-of-month", 1, 31, &[])?;
    let month = cron_field(fields[3], "month", 1, 12, &CRON_MONTHS)?;
    let mut dow = cron_field(fields[4], "day-of-week", 0, 7, &CRON_DAYS)?;
    // Unix: 7 is Sunday too.
    if dow.values.remove(&7) {
        dow.values.insert(0);
    }
    let list = |f: &CronField, all: usize| {
        if f.values.len() == all {
            "*".to_owned()
        } else {
            f.values
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let days = |f: &CronField| {
        if f.values.len() == 7 {
            "*".to_owned()
        } else {
            f.values
                .iter()
                .map(|&d| CRON_DAYS[d as usize].to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let head = format!("0 {} {}", list(&minute, 60), list(&hour, 24));
    let (dom_s, month_s, dow_s) = (list(&dom, 31), list(&month, 12), days(&dow));
    if !dom.star && !dow.star {
        // Vixie cron: with both day fields restricted a day matches if
        // either does.
        Ok(vec![
            format!("{head} {dom_s} {month_s} *"),
            format!("{head} * {month_s} {dow_s}"),
        ])
    } else {
        Ok(vec![format!("{head} {dom_s} {month_s} {dow_s}")])
    }
}

/// One field: a comma-separated list of `*`, `N`, `N-M`, each optionally
/// `/STEP` (`N/STEP` runs to the field's maximum).
fn cron_field(
    text: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<CronField, String> {
    // Letters that are part of a name (the W of wed, the L of jul) are
    // not cron operators.
    let operators = names
        .iter()
        .fold(text.to_ascii_lowercase(), |t, n| t.replace(n, ""))
        .to_ascii_uppercase();
    for (c, why) in [
        (
            'L',
            "L (last) is not supported: use a time interval with days_of_month: ['-1']",
        ),
        ('W', "W (nearest weekday) is not supported"),
        ('#', "# (nth weekday of the month) is not supported"),
        ('?', "? is not Unix cron: use *"),
    ] {
        if operators.contains(c) {
            return Err(format!("{what} {text:?}: {why}"));
        }
    }
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(min + i as u32);
        }
        match s.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) => Err(format!("{what} {n} is out of range ({min}-{max})")),
            Err(_) => Err(format!(
                "{what} {s:?} is not a number{}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" or a name ({})", names.join(", "))
                }
            )),
        }
    };
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 =
                    s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{what} {item:?}: the step must be a number above 0")
                    })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!(
                    "{what} range {range:?} runs backwards: write it as two ranges"
                ));
            }
            (a, b)
        } else if range.is_empty() {
            return Err(format!("{what} {text:?} has an empty item"));
        } else {
            let a = value(range)?;
            (a, if step.is_some() { max } else { a })
        };
        values.extend((lo..=hi).step_by(step.unwrap_or(1) as usize));
    }
    Ok(CronField {
        values,
        star: text.starts_with('*'),
    })
}

// ---------------------------------------------------------------------------
// Local wall-clock times
// ---------------------------------------------------------------------------

/// The first instant at which `zone`'s clock reads `local` or later: the
/// instant itself when it exists once, its first occurrence when a
/// fall-back repeats it, and the end of the gap when a spring-forward skips
/// it. Never earlier for a later `local`, so handoffs stay in order.
pub fn first_reaching(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: find the jump. Offsets lie within -12h…+14h, so the
            // clock reads earlier than `local` 15 hours before it (as UTC)
            // and later 15 hours after; between the two it only jumps
            // forward here.
            let clock = |ts: i64| {
                DateTime::from_timestamp(ts, 0)
                    .map(|t| t.with_timezone(&zone).naive_local())
                    .unwrap_or(NaiveDateTime::MAX)
            };
            let target = local.and_utc().timestamp();
            let (mut lo, mut hi) = (target - 15 * 3600, target + 15 * 3600);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if clock(mid) >= local {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
        }
    }
}

/// A reading of `zone`'s clock no earlier than any it showed up to `t`:
/// `t`'s own, or later by the drop of a fall-back in the hours before.
fn latest_reading_until(zone: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    let now = t.with_timezone(&zone);
    let offset = |t: DateTime<Utc>| {
        i64::from(
            zone.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    // A fall-back in the last few hours set the clock back by the offset's
    // drop; none is longer than that.
    let drop = (offset(t - Duration::hours(3)) - offset(t)).max(0);
    now.naive_local() + Duration::seconds(drop)
}

// ---------------------------------------------------------------------------
// Compiled
// ---------------------------------------------------------------------------

/// People and schedules, compiled and checked: what `/api/v1/oncall` and
/// `fenghuo oncall` answer from.
#[derive(Debug, Clone, Default)]
pub struct OnCall {
    people: BTreeMap<PersonName, Person>,
    schedules: BTreeMap<String, Schedule>,
}

impl OnCall {
    /// Checks names across the sections: people unique, schedules unique,
    /// every person and time interval referred to defined.
    pub fn compile(
        people: &[Person],
        schedules: &[ScheduleConfig],
        intervals: &TimeIntervalSet,
    ) -> Result<OnCall, String> {
        let mut by_name = BTreeMap::new();
        for (i, p) in people.iter().enumerate() {
            p.check().map_err(|e| format!("people[{i}]: {e}"))?;
            if by_name.insert(p.name.clone(), p.clone()).is_some() {
                return Err(format!(
                    "people[{i}]: person {:?} is defined twice",
                    p.name.0
                ));
            }
        }
        let names: Vec<String> = by_name.keys().map(|n| n.0.clone()).collect();
        let person = |n: &PersonName| {
            if by_name.contains_key(n) {
                Ok(n.clone())
            } else {
                Err(unknown_person(&n.0, &names))
            }
        };
        let mut compiled = BTreeMap::new();
        for (si, s) in schedules.iter().enumerate() {
            let at = format!("schedules[{si}] ({})", s.name);
            let zone = s.time_zone.0;
            let mut layers = Vec::new();
            for (li, l) in s.layers.iter().enumerate() {
                let name = l
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("layer {}", li + 1));
                let at = format!("{at}.layers[{li}] ({name})");
                let turns = l
                    .people
                    .iter()
                    .map(|turn| turn.iter().map(&person).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{at}: {e}"))?;
                let mut restrictions = Vec::new();
                for r in &l.restrictions {
                    restrictions.push(match r {
                        RestrictionConfig::TimeInterval(n) => {
                            Restriction::Interval(intervals.get(n).cloned().ok_or_else(|| {
                                let defined: Vec<String> =
                                    intervals.names().map(str::to_owned).collect();
                                format!("{at}: {}", undefined_interval(n, &defined))
                            })?)
                        }
                        RestrictionConfig::Cron { cron, duration } => Restriction::Cron {
                            cron: cron.clone(),
                            duration: *duration,
                        },
                    });
                }
                layers.push(Layer {
                    rotation: Rotation::new(zone, l, turns),
                    restrictions,
                });
            }
            let mut overrides = Vec::new();
            for (oi, o) in s.overrides.iter().enumerate() {
                let at = format!("{at}.overrides[{oi}]");
                let p = person(&o.person).map_err(|e| format!("{at}: {e}"))?;
                let r = o
                    .replaces
                    .as_ref()
                    .map(&person)
                    .transpose()
                    .map_err(|e| format!("{at}: replaces: {e}"))?;
                overrides.push(Override {
                    person: p,
                    replaces: r,
                    from: o.from.with_timezone(&Utc),
                    to: o.to.with_timezone(&Utc),
                });
            }
            let schedule = Schedule {
                name: s.name.clone(),
                zone: s.time_zone,
                layers,
                overrides,
            };
            if compiled.insert(s.name.clone(), schedule).is_some() {
                return Err(format!("{at}: schedule {:?} is defined twice", s.name));
            }
        }
        Ok(OnCall {
            people: by_name,
            schedules: compiled,
        })
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    pub fn schedule_names(&self) -> Vec<&str> {
        self.schedules.keys().map(String::as_str).collect()
    }

    pub fn person(&self, name: &PersonName) -> Option<&Person> {
        self.people.get(name)
    }
}

/// A schedule: layers of rotations, and overrides over them.
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    zone: Zone,
    layers: Vec<Layer>,
    overrides: Vec<Override>,
}

/// A stretch of time during which the same people are on call. `people` is
/// empty where nobody is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub people: Vec<PersonName>,
}

/// The shift an instant falls in. A bound is `None` when the same people
/// are on call for all of [`HORIZON`] on that side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentShift {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub people: Vec<PersonName>,
}

impl Schedule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// Who is on call at `at`: the turn of the last layer that has
    /// somebody then, with the overrides applied. Usually one person;
    /// several for a turn of several; nobody where no layer has anyone.
    pub fn on_call(&self, at: DateTime<Utc>) -> Vec<PersonName> {
        let mut people = self
            .layers
            .iter()
            .rev()
            .find_map(|l| l.on_call(at))
            .map(<[PersonName]>::to_vec)
            .unwrap_or_default();
        for o in self.overrides.iter().filter(|o| o.from <= at && at < o.to) {
            match &o.replaces {
                None => people = vec![o.person.clone()],
                Some(replaced) => {
                    if people.contains(replaced) {
                        people = people
                            .iter()
                            .map(|p| if p == replaced { &o.person } else { p })
                            .cloned()
                            .collect();
                    }
                }
            }
            dedup_keeping_order(&mut people);
        }
        people
    }

    /// The timeline from `from` to `to`: consecutive shifts, each with
    /// different people from the one before, the first starting at `from`
    /// and the last ending at `to` (both clipped there).
    pub fn shifts(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Shift> {
        if from >= to {
            return Vec::new();
        }
        let mut cuts = BTreeSet::from([from]);
        for layer in &self.layers {
            layer.changes(from, to, &mut cuts);
        }
        for o in &self.overrides {
            cuts.extend([o.from, o.to].into_iter().filter(|t| from < *t && *t < to));
        }
        let cuts: Vec<_> = cuts.into_iter().collect();
        let mut out: Vec<Shift> = Vec::new();
        for (i, &start) in cuts.iter().enumerate() {
            let end = cuts.get(i + 1).copied().unwrap_or(to);
            let people = self.on_call(start);
            match out.last_mut() {
                Some(last) if last.people == people => last.end = end,
                _ => out.push(Shift { start, end, people }),
            }
        }
        out
    }

    /// The shift `at` falls in, with its true start and end (looked for up
    /// to [`HORIZON`] away).
    pub fn shift_at(&self, at: DateTime<Utc>) -> CurrentShift {
        let people = self.on_call(at);
        let mut reach = Duration::days(1);
        loop {
            let (from, to) = (at - reach, at + reach);
            let timeline = self.shifts(from, to);
            let current = timeline
                .iter()
                .find(|s| s.start <= at && at < s.end)
                .expect("a timeline covers every instant in it");
            let start = (current.start > from).then_some(current.start);
            let end = (current.end < to).then_some(current.end);
            if (start.is_some() && end.is_some()) || reach >= HORIZON {
                return CurrentShift { start, end, people };
            }
            reach = (reach * 4).min(HORIZON);
        }
    }

    /// The next `n` shifts after the one `at` falls in, within [`HORIZON`].
    pub fn upcoming(&self, at: DateTime<Utc>, n: usize) -> Vec<Shift> {
        if n == 0 {
            return Vec::new();
        }
        let mut reach = Duration::days(7);
        loop {
            let timeline = self.shifts(at, at + reach);
            // The first entry is the current shift; the last may be cut
            // short by the window, so it counts only at the horizon.
            let complete = timeline
                .len()
                .saturating_sub(if reach >= HORIZON { 1 } else { 2 });
            if complete >= n || reach >= HORIZON {
                return timeline.into_iter().skip(1).take(n).collect();
            }
            reach = (reach * 4).min(HORIZON);
        }
    }
}

fn dedup_keeping_order(people: &mut Vec<PersonName>) {
    let mut seen = BTreeSet::new();
    people.retain(|p| seen.insert(p.clone()));
}

#[derive(Debug, Clone)]
struct Layer {
    rotation: Rotation,
    restrictions: Vec<Restriction>,
}

impl Layer {
    fn on_call(&self, at: DateTime<Utc>) -> Option<&[PersonName]> {
        if !self.restrictions.is_empty()
            && !self
                .restrictions
                .iter()
                .any(|r| r.contains(self.rotation.zone, at))
        {
            return None;
        }
        self.rotation
            .turn_at(at)
            .map(|(k, _)| self.rotation.people(k))
    }

    /// Every instant in `(from, to)` at which this layer's answer may change.
    fn changes(&self, from: DateTime<Utc>, to: DateTime<Utc>, out: &mut BTreeSet<DateTime<Utc>>) {
        self.rotation.handoffs(from, to, out);
        for r in &self.restrictions {
            r.changes(self.rotation.zone, from, to, out);
        }
    }
}

/// Turns counted on the schedule's wall clock from the first handoff.
#[derive(Debug, Clone)]
struct Rotation {
    zone: Tz,
    first: NaiveDateTime,
    length: Duration,
    turns: Vec<Vec<PersonName>>,
}

impl Rotation {
    fn new(zone: Tz, layer: &LayerConfig, turns: Vec<Vec<PersonName>>) -> Rotation {
        let mut date = layer.start.0;
        if let Some(weekday) = layer.handoff_weekday {
            // The first handoff is on the first such weekday from `start`.
            let ahead =
                (7 + weekday.num_days_from_monday() - date.weekday().num_days_from_monday()) % 7;
            date = date
                .checked_add_days(chrono::Days::new(u64::from(ahead)))
                .unwrap_or(date);
        }
        Rotation {
            zone,
            first: date.and_time(layer.handoff.0),
            length: layer.rotation.duration(),
            turns,
        }
    }

    /// When turn `k` begins.
    fn handoff(&self, k: i64) -> DateTime<Utc> {
        let local = self
            .length
            .num_seconds()
            .checked_mul(k)
            .and_then(Duration::try_seconds)
            .and_then(|d| self.first.checked_add_signed(d));
        match local {
            Some(local) => first_reaching(self.zone, local),
            None if k < 0 => DateTime::<Utc>::MIN_UTC,
            None => DateTime::<Utc>::MAX_UTC,
        }
    }

    /// The turn `at` falls in and when it ends; `None` before the first
    /// handoff.
    fn turn_at(&self, at: DateTime<Utc>) -> Option<(i64, DateTime<Utc>)> {
        let local = at.with_timezone(&self.zone).naive_local();
        // The wall clock gives the turn to within one; DST corrects it.
        let mut k = (local - self.first)
            .num_seconds()
            .div_euclid(self.length.num_seconds())
            .max(-1);
        while k >= 0 && self.handoff(k) > at {
            k -= 1;
        }
        while self.handoff(k + 1) <= at {
            k += 1;
        }
        (k >= 0).then(|| (k, self.handoff(k + 1)))
    }

    fn people(&self, k: i64) -> &[PersonName] {
        &self.turns[k.rem_euclid(self.turns.len() as i64) as usize]
    }

    fn handoffs(&self, from: DateTime<Utc>, to: DateTime<Utc>, out: &mut BTreeSet<DateTime<Utc>>) {
        let mut k = self.turn_at(from).map_or(0, |(k, _)| k + 1);
        loop {
            let t = self.handoff(k);
            if t >= to {
                break;
            }
            if t > from {
                out.insert(t);
            }
            k += 1;
        }
    }
}

#[derive(Debug, Clone)]
enum Restriction {
    Interval(TimeInterval),
    Cron { cron: UnixCron, duration: Duration },
}

impl Restriction {
    fn contains(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        match self {
            Restriction::Interval(ti) => ti.contains(at),
            Restriction::Cron { cron, duration } => {
                // The window that started last before `at` reaches furthest,
                // since all last as long. Matches the clock has not reached
                // by `at` (in a repeated hour) are passed over.
                cron.matches_at_or_before(latest_reading_until(zone, at))
                    .map(|m| first_reaching(zone, m))
                    .find(|start| *start <= at)
                    .is_some_and(|start| at < start + *duration)
            }
        }
    }

    fn changes(
        &self,
        zone: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        out: &mut BTreeSet<DateTime<Utc>>,
    ) {
        let mut add = |t: DateTime<Utc>| {
            if from < t && t < to {
                out.insert(t);
            }
        };
        match self {
            Restriction::Interval(ti) => {
                // Time intervals are written in whole minutes of local time,
                // and zones in use are whole minutes off UTC: membership
                // changes only on a minute.
                let mut t = ceil_minute(from);
                let mut inside = ti.contains(t - Duration::minutes(1));
                while t < to {
                    let now = ti.contains(t);
                    if now != inside {
                        add(t);
                        inside = now;
                    }
                    t += Duration::minutes(1);
                }
            }
            Restriction::Cron { cron, duration } => {
                // Windows that started up to `duration` before `from` may
                // still end inside; a fall-back can make a start up to a few
                // hours earlier in local time than the instant it resolves to.
                let local_from = (from - *duration).with_timezone(&zone).naive_local()
                    - Duration::hours(3)
                    - Duration::seconds(1);
                for m in cron.matches_after(local_from) {
                    let start = first_reaching(zone, m);
                    if start >= to {
                        break;
                    }
                    add(start);
                    add(start + *duration);
                }
            }
        }
    }
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = t
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t);
    if floor == t {
        t
    } else {
        floor + Duration::minutes(1)
    }
}

#[derive(Debug, Clone)]
struct Override {
    person: PersonName,
    replaces: Option<PersonName>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    /// (zone, local time, the instant it resolves to): the rule is "the
    /// first time the clock reads it or later".
    #[test]
    fn local_times_resolve_to_when_the_clock_first_reaches_them() {
        let cases: &[(Tz, &str, &str)] = &[
            // Ordinary times.
            (
                Tz::Europe__Berlin,
                "2024-03-30 09:00",
                "2024-03-30T08:00:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-03-31 09:00",
                "2024-03-31T07:00:00Z",
            ),
            // Spring forward: 02:00 CET becomes 03:00 CEST at 01:00 UTC, so
            // 02:00 and 02:30 happen when the clock jumps.
            (
                Tz::Europe__Berlin,
                "2024-03-31 02:00",
                "2024-03-31T01:00:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-03-31 02:30",
                "2024-03-31T01:00:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-03-31 03:00",
                "2024-03-31T01:00:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-03-31 01:59",
                "2024-03-31T00:59:00Z",
            ),
            // Fall back: 02:00–03:00 happens twice; the first time counts.
            (
                Tz::Europe__Berlin,
                "2024-10-27 02:30",
                "2024-10-27T00:30:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-10-27 03:00",
                "2024-10-27T02:00:00Z",
            ),
            // New York: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
            (
                Tz::America__New_York,
                "2024-03-10 02:30",
                "2024-03-10T07:00:00Z",
            ),
            (
                Tz::America__New_York,
                "2024-11-03 01:30",
                "2024-11-03T05:30:00Z",
            ),
            // Lord Howe moves by half an hour.
            (
                Tz::Australia__Lord_Howe,
                "2024-10-06 02:15",
                "2024-10-05T15:30:00Z",
            ),
            // Samoa skipped 30 December 2011 altogether.
            (
                Tz::Pacific__Apia,
                "2011-12-30 09:00",
                "2011-12-30T10:00:00Z",
            ),
        ];
        for (zone, l, want) in cases {
            assert_eq!(first_reaching(*zone, local(l)), utc(want), "{zone} {l}");
        }
    }

    /// (5-field expression, what the `cron` crate is handed) or the error.
    #[test]
    fn unix_cron_is_translated() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("* * * * *", Ok(&["0 * * * * *"])),
            ("0 9 * * 1-5", Ok(&["0 0 9 * * MON,TUE,WED,THU,FRI"])),
            // Sunday is 0 or 7 in Unix cron, 1 in the crate: names avoid it.
            ("0 9 * * 0", Ok(&["0 0 9 * * SUN"])),
            ("0 9 * * 7", Ok(&["0 0 9 * * SUN"])),
            ("0 9 * * 5-7", Ok(&["0 0 9 * * SUN,FRI,SAT"])),
            ("0 9 * * 0-7", Ok(&["0 0 9 * * *"])),
            ("0 9 * * sat,SUN", Ok(&["0 0 9 * * SUN,SAT"])),
            ("0 9 * * mon-fri", Ok(&["0 0 9 * * MON,TUE,WED,THU,FRI"])),
            // Both day fields restricted: Unix ORs them, so two schedules.
            ("0 9 1,15 * 1", Ok(&["0 0 9 1,15 * *", "0 0 9 * * MON"])),
            // A day field starting with * keeps Vixie's AND.
            ("0 9 */10 * 1", Ok(&["0 0 9 1,11,21,31 * MON"])),
            // Steps, ranges, lists, month names.
            ("*/20 8-10/2 * jan-mar *", Ok(&["0 0,20,40 8,10 * 1,2,3 *"])),
            ("5/20 * * * *", Ok(&["0 5,25,45 * * * *"])),
            ("@daily", Ok(&["0 0 0 * * *"])),
            ("@weekly", Ok(&["0 0 0 * * SUN"])),
            ("@hourly", Ok(&["0 0 * * * *"])),
            // Refused.
            ("0 0 9 * * 1", Err("expected 5 fields")),
            ("0 9 * *", Err("expected 5 fields")),
            ("0 9 L * *", Err("L (last) is not supported")),
            ("0 9 * * 5L", Err("L (last) is not supported")),
            (
                "0 9 * * 1#2",
                Err("# (nth weekday of the month) is not supported"),
            ),
            ("0 9 15W * *", Err("W (nearest weekday)")),
            ("0 9 ? * 1", Err("? is not Unix cron")),
            ("@every 5m", Err("@every is not supported")),
            ("@reboot", Err("@reboot is not a time")),
            ("60 * * * *", Err("minute 60 is out of range (0-59)")),
            ("0 24 * * *", Err("hour 24 is out of range (0-23)")),
            ("0 0 0 * *", Err("day-of-month 0 is out of range")),
            ("0 0 * 13 *", Err("month 13 is out of range")),
            ("0 0 * * 8", Err("day-of-week 8 is out of range (0-7)")),
            (
                "0 0 * * funday",
                Err("day-of-week \"funday\" is not a number or a name"),
            ),
            ("0 17-9 * * *", Err("runs backwards")),
            ("*/0 * * * *", Err("the step must be a number above 0")),
        ];
        for (expr, want) in cases {
            match (UnixCron::parse(expr), want) {
                (Ok(c), Ok(want)) => assert_eq!(c.translated(), *want, "{expr}"),
                (Err(e), Err(want)) => assert!(e.contains(want), "{expr}: {e}"),
                (got, want) => panic!("{expr}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// The translation fires when Unix cron would.
    #[test]
    fn unix_cron_fires_as_unix_cron_does() {
        // (expression, local date-times from 2024-06-01 00:00, first matches)
        let cases: &[(&str, &[&str])] = &[
            // 1 June 2024 is a Saturday; Sunday is 0 and 7.
            ("0 9 * * 0", &["2024-06-02 09:00", "2024-06-09 09:00"]),
            ("0 9 * * 7", &["2024-06-02 09:00", "2024-06-09 09:00"]),
            ("0 9 * * 1", &["2024-06-03 09:00", "2024-06-10 09:00"]),
            // The 5th or a Monday (the crate alone would want both).
            (
                "0 9 5 * 1",
                &["2024-06-03 09:00", "2024-06-05 09:00", "2024-06-10 09:00"],
            ),
            // Days 1, 14 and 27 that are Fridays: with `*` first in
            // day-of-month the fields AND (Vixie), so 14 June, not Friday
            // 7 June as ORing would give.
            ("0 0 */13 * 5", &["2024-06-14 00:00", "2024-09-27 00:00"]),
        ];
        for (expr, want) in cases {
            let cron = UnixCron::parse(expr).unwrap();
            let got: Vec<NaiveDateTime> = cron
                .matches_after(local("2024-06-01 00:00"))
                .take(want.len())
                .collect();
            let want: Vec<NaiveDateTime> = want.iter().map(|w| local(w)).collect();
            assert_eq!(got, want, "{expr}");
            // And backwards from the last one.
            let last = *want.last().unwrap();
            assert_eq!(cron.matches_at_or_before(last).next(), Some(last), "{expr}");
            assert_eq!(
                cron.matches_at_or_before(last - Duration::minutes(1))
                    .next(),
                want.iter().rev().nth(1).copied(),
                "{expr}"
            );
        }
    }

    /// A cron window that starts in the spring-forward gap starts when the
    /// clock jumps (the crate would skip that day); one in the repeated
    /// hour starts once.
    #[test]
    fn cron_windows_follow_the_handoff_rule_across_dst() {
        let r = Restriction::Cron {
            cron: UnixCron::parse("30 2 * * *").unwrap(),
            duration: Duration::hours(1),
        };
        let zone = Tz::Europe__Berlin;
        let cases: &[(&str, bool)] = &[
            // An ordinary day: 02:30–03:30 CET is 01:30–02:30 UTC.
            ("2024-03-30T01:30:00Z", true),
            ("2024-03-30T02:29:00Z", true),
            ("2024-03-30T02:30:00Z", false),
            // Spring forward: the window opens at the jump, 01:00 UTC.
            ("2024-03-31T00:59:00Z", false),
            ("2024-03-31T01:00:00Z", true),
            ("2024-03-31T01:59:00Z", true),
            ("2024-03-31T02:00:00Z", false),
            // Fall back: 02:30 CEST (00:30 UTC) only, for one hour.
            ("2024-10-27T00:29:00Z", false),
            ("2024-10-27T00:30:00Z", true),
            ("2024-10-27T01:29:00Z", true),
            ("2024-10-27T01:30:00Z", false),
            ("2024-10-27T02:00:00Z", false),
        ];
        for (t, want) in cases {
            assert_eq!(r.contains(zone, utc(t)), *want, "{t}");
        }
        let mut cuts = BTreeSet::new();
        r.changes(
            zone,
            utc("2024-10-26T12:00:00Z"),
            utc("2024-10-28T12:00:00Z"),
            &mut cuts,
        );
        assert_eq!(
            cuts.into_iter().collect::<Vec<_>>(),
            [
                "2024-10-27T00:30:00Z",
                "2024-10-27T01:30:00Z",
                "2024-10-28T01:30:00Z",
                "2024-10-28T02:30:00Z"
            ]
            .map(utc)
        );
    }
}
