//! Alertmanager's `time_intervals` (and the deprecated top-level
//! `mute_time_intervals`): named sets of times that routes reference in
//! `mute_time_intervals` and `active_time_intervals`.
//!
//! The YAML is Alertmanager's, unchanged:
//!
//! ```yaml
//! time_intervals:
//!   - name: offhours
//!     time_intervals:
//!       - times:
//!           - start_time: '17:00'
//!             end_time: '24:00'
//!         weekdays: ['monday:friday']
//!         location: Europe/Berlin
//!       - weekdays: [saturday, sunday]
//! ```
//!
//! A [`TimeInterval`] contains an instant when ANY of its specs does; a
//! [`TimeIntervalSpec`] contains it when EVERY field it gives does, each field
//! being satisfied by ANY of its ranges; an absent field matches everything.
//! As in Alertmanager, a field given as an empty list (`weekdays: []`) matches
//! nothing.
//!
//! Fields are evaluated in the spec's `location` (UTC when absent):
//! `times` against the local wall clock (start inclusive, end exclusive,
//! `24:00` allowed as an end), `weekdays` (`sunday`…`saturday`, ranges like
//! `monday:friday`), `days_of_month` (`1`…`31`, or `-1` for the last day,
//! ranges like `1:5` and `-3:-1`, clamped to the month's length), `months`
//! (names or numbers, ranges) and `years` (ranges).
//!
//! Differences from Alertmanager, all deliberate:
//!
//! * `location: Local` means UTC. Alertmanager uses the zone of the machine it
//!   runs on; Fenghuo's decisions must replay identically on any machine, so
//!   the machine's zone is never consulted. Write the IANA name instead.
//! * The length of a month is its calendar length. Alertmanager computes it as
//!   the hours between the first of the month and the first of the next,
//!   divided by 24 and truncated, which in a zone that springs forward makes
//!   March 30 days long (so `-1` meant March 30 and `31` never matched).
//! * Month numbers outside 1…12 are refused (Alertmanager accepts them and
//!   they never match).
//! * Error messages say which value is wrong and what is expected.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// A time interval definition that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeIntervalError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, TimeIntervalError> {
    Err(TimeIntervalError(message.into()))
}

// ---------------------------------------------------------------------------
// Named intervals
// ---------------------------------------------------------------------------

/// A named time interval: one entry of `time_intervals:` (or of the
/// deprecated `mute_time_intervals:`, which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTimeInterval")]
pub struct TimeInterval {
    pub name: String,
    pub time_intervals: Vec<TimeIntervalSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeInterval {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_intervals: Option<Vec<TimeIntervalSpec>>,
}

impl TryFrom<RawTimeInterval> for TimeInterval {
    type Error = TimeIntervalError;

    fn try_from(raw: RawTimeInterval) -> Result<Self, Self::Error> {
        if raw.name.is_empty() {
            return err("missing name in time interval");
        }
        Ok(TimeInterval {
            name: raw.name,
            time_intervals: raw.time_intervals.unwrap_or_default(),
        })
    }
}

impl TimeInterval {
    /// Whether any of the specs contains the instant (Alertmanager's
    /// `Intervener`: an interval with no specs contains nothing).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.time_intervals.iter().any(|spec| spec.contains(t))
    }
}

/// The time intervals of a configuration, by name: `time_intervals` and the
/// deprecated `mute_time_intervals` together, as routes see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIntervalSet {
    by_name: BTreeMap<String, TimeInterval>,
}

impl TimeIntervalSet {
    /// No interval defined (so no route mutes or activates by time).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Both sections; a name may appear only once across them (Alertmanager's
    /// config check).
    pub fn from_config(
        time_intervals: &[TimeInterval],
        mute_time_intervals: &[TimeInterval],
    ) -> Result<TimeIntervalSet, TimeIntervalError> {
        let mut by_name = BTreeMap::new();
        for (section, list) in [
            ("mute time interval", mute_time_intervals),
            ("time interval", time_intervals),
        ] {
            for ti in list {
                if by_name.insert(ti.name.clone(), ti.clone()).is_some() {
                    return err(format!("{section} {:?} is not unique", ti.name));
                }
            }
        }
        Ok(TimeIntervalSet { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&TimeInterval> {
        self.by_name.get(name)
    }

    pub fn contains_name(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every name that is not defined, for the config check
    /// (`undefined time interval "x" used in route`).
    pub fn check_defined<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), TimeIntervalError> {
        for name in names {
            if !self.contains_name(name) {
                return err(format!("undefined time interval {name:?} used in route"));
            }
        }
        Ok(())
    }

    /// Of the given names, those whose interval contains `t` (Alertmanager's
    /// `Intervener.Mutes`). A route is muted when this is non-empty for its
    /// `mute_time_intervals`, and active when it is non-empty for its
    /// `active_time_intervals` (or that list is empty).
    pub fn containing<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        t: DateTime<Utc>,
    ) -> Result<Vec<String>, TimeIntervalError> {
        let mut out = Vec::new();
        for name in names {
            let ti = self.by_name.get(name).ok_or_else(|| {
                TimeIntervalError(format!("time interval {name:?} doesn't exist in config"))
            })?;
            if ti.contains(t) {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// One spec
// ---------------------------------------------------------------------------

/// One `time_interval_spec`: all given fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<Vec<TimeRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<WeekdayRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_of_month: Option<Vec<DayOfMonthRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<Vec<MonthRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<Vec<YearRange>>,
    /// The zone the other fields are read in; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl TimeIntervalSpec {
    /// Whether the instant falls in this spec (Alertmanager's
    /// `TimeInterval.ContainsTime`).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let tz = self.location.as_ref().map_or(Tz::UTC, |l| l.tz);
        let local = t.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        let (year, month, day) = (local.year(), local.month(), local.day());
        let weekday = local.weekday().num_days_from_sunday();

        if let Some(times) = &self.times
            && !times.iter().any(|r| r.contains_minute(minute))
        {
            return false;
        }
        if let Some(days) = &self.days_of_month {
            let length = days_in_month(year, month);
            if !days.iter().any(|r| r.contains_day(day, length)) {
                return false;
            }
        }
        if let Some(months) = &self.months
            && !months.iter().any(|r| (r.begin..=r.end).contains(&month))
        {
            return false;
        }
        if let Some(weekdays) = &self.weekdays
            && !weekdays
                .iter()
                .any(|r| (u32::from(r.begin)..=u32::from(r.end)).contains(&weekday))
        {
            return false;
        }
        if let Some(years) = &self.years
            && !years.iter().any(|r| (r.begin..=r.end).contains(&year))
        {
            return false;
        }
        true
    }
}

/// The calendar length of a month.
fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

/// Minutes of the day, `[start_minute, end_minute)`; 0…1440. Written as
/// `{start_time: "HH:MM", end_time: "HH:MM"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl TimeRange {
    /// From `HH:MM` strings (`24:00` allowed as the end).
    pub fn parse(start_time: &str, end_time: &str) -> Result<TimeRange, TimeIntervalError> {
        if start_time.is_empty() || end_time.is_empty() {
            return err("both start_time and end_time must be provided");
        }
        let start_minute = parse_hh_mm(start_time)?;
        let end_minute = parse_hh_mm(end_time)?;
        if start_minute >= end_minute {
            return err(format!(
                "start_time {start_time} must be before end_time {end_time} \
                 (a range cannot cross midnight: split it in two)"
            ));
        }
        Ok(TimeRange {
            start_minute,
            end_minute,
        })
    }

    pub fn contains_minute(&self, minute: u32) -> bool {
        minute >= self.start_minute && minute < self.end_minute
    }
}

fn parse_hh_mm(s: &str) -> Result<u32, TimeIntervalError> {
    let invalid = || {
        err(format!(
            "couldn't parse time {s:?}: expected HH:MM from 00:00 to 23:59, or 24:00"
        ))
    };
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return invalid();
    }
    let hours = u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0');
    let minutes = u32::from(b[3] - b'0') * 10 + u32::from(b[4] - b'0');
    if (hours < 24 && minutes < 60) || (hours == 24 && minutes == 0) {
        Ok(hours * 60 + minutes)
    } else {
        invalid()
    }
}

fn format_hh_mm(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TimeRange", 2)?;
        s.serialize_field("start_time", &format_hh_mm(self.start_minute))?;
        s.serialize_field("end_time", &format_hh_mm(self.end_minute))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            start_time: Option<ScalarString>,
            #[serde(default)]
            end_time: Option<ScalarString>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let start = raw.start_time.map(|s| s.0).unwrap_or_default();
        let end = raw.end_time.map(|s| s.0).unwrap_or_default();
        TimeRange::parse(&start, &end).map_err(de::Error::custom)
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Splits `a:b` or `a` (lower-cased, as Alertmanager does) into its ends.
fn split_range(input: &str) -> Result<(String, String), TimeIntervalError> {
    let lower = input.to_lowercase();
    match lower.split_once(':') {
        None => Ok((lower.clone(), lower)),
        Some((a, b)) if !b.contains(':') => Ok((a.to_owned(), b.to_owned())),
        Some(_) => err(format!(
            "couldn't parse range {input:?}: expected a single value or <start>:<end>"
        )),
    }
}

/// Days of the week, inclusive; 0 is Sunday. Written by name: `monday:friday`,
/// `saturday`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeekdayRange {
    pub begin: u8,
    pub end: u8,
}

impl FromStr for WeekdayRange {
    type Err = TimeIntervalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (a, b) = split_range(input)?;
        let day = |s: &str| match WEEKDAYS.iter().position(|d| *d == s) {
            Some(i) => Ok(i as u8),
            None => err(format!(
                "{s} is not a valid weekday (expected a day name such as \"monday\", \
                 or a range such as \"monday:friday\")"
            )),
        };
        let (begin, end) = (day(&a)?, day(&b)?);
        if begin > end {
            return err(format!(
                "start day {a} is after end day {b} in {input:?} (the week runs sunday to saturday)"
            ));
        }
        Ok(WeekdayRange { begin, end })
    }
}

impl fmt::Display for WeekdayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |i: u8| WEEKDAYS.get(usize::from(i)).copied().unwrap_or("?");
        if self.begin == self.end {
            f.write_str(name(self.begin))
        } else {
            write!(f, "{}:{}", name(self.begin), name(self.end))
        }
    }
}

/// Days of the month, inclusive; negative counts from the end (`-1` is the
/// last day). Written `1:5`, `-3:-1`, `15`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayOfMonthRange {
    pub begin: i32,
    pub end: i32,
}

impl DayOfMonthRange {
    /// Whether `day` (1-based) of a month of `length` days is in the range
    /// (Alertmanager's resolution of negative days and clamping).
    pub fn contains_day(&self, day: u32, length: u32) -> bool {
        let (day, length) = (day as i32, length as i32);
        let resolve = |d: i32| if d < 0 { length + d + 1 } else { d };
        let begin = resolve(self.begin);
        let end = resolve(self.end);
        // A range that starts after the end of this month is not in it.
        if begin > length {
            return false;
        }
        let begin = begin.clamp(-length, length);
        let end = end.clamp(-length, length);
        day >= begin && day <= end
    }
}

impl FromStr for DayOfMonthRange {
    type Err = TimeIntervalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (a, b) = split_range(input)?;
        let day = |s: &str| match s.parse::<i32>() {
            Ok(0) | Err(_) => err(format!(
                "{s} is not a valid day of the month: expected 1 to 31, or -1 to -31 counting from the end"
            )),
            Ok(d) if !(-31..=31).contains(&d) => err(format!(
                "{d} is not a valid day of the month: out of range (1 to 31, or -1 to -31)"
            )),
            Ok(d) => Ok(d),
        };
        let (begin, end) = (day(&a)?, day(&b)?);
        if begin < 0 && end > 0 {
            return err(format!(
                "end day must be negative if start day is negative (in {input:?})"
            ));
        }
        // With negative days the order depends on the month; refuse what is
        // wrong in every month (taking the shortest, 28 days).
        let check = |d: i32| if d < 0 { 28 + d } else { d };
        if check(begin) > check(end) {
            return err(format!(
                "end day {end} is always before start day {begin} (in {input:?})"
            ));
        }
        Ok(DayOfMonthRange { begin, end })
    }
}

impl fmt::Display for DayOfMonthRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_inclusive(f, i64::from(self.begin), i64::from(self.end))
    }
}

/// Months, inclusive; 1 is January. Read from names or numbers
/// (`january:march`, `5`), written as numbers (as Alertmanager does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MonthRange {
    pub begin: u32,
    pub end: u32,
}

impl FromStr for MonthRange {
    type Err = TimeIntervalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (a, b) = split_range(input)?;
        let month = |s: &str| {
            if let Some(i) = MONTHS.iter().position(|m| *m == s) {
                return Ok(i as u32 + 1);
            }
            match s.parse::<i64>() {
                Ok(n) if (1..=12).contains(&n) => Ok(n as u32),
                Ok(n) => err(format!("{n} is not a valid month: out of range (1 to 12)")),
                Err(_) => err(format!(
                    "{s} is not a valid month (expected a name such as \"january\" or a number from 1 to 12)"
                )),
            }
        };
        let (begin, end) = (month(&a)?, month(&b)?);
        if begin > end {
            return err(format!(
                "end month {} is before start month {} (in {input:?})",
                MONTHS[end as usize - 1],
                MONTHS[begin as usize - 1]
            ));
        }
        Ok(MonthRange { begin, end })
    }
}

impl fmt::Display for MonthRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_inclusive(f, i64::from(self.begin), i64::from(self.end))
    }
}

/// Years, inclusive: `2020:2022`, `2030`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct YearRange {
    pub begin: i32,
    pub end: i32,
}

impl FromStr for YearRange {
    type Err = TimeIntervalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (a, b) = split_range(input)?;
        let year = |s: &str| {
            s.parse::<i32>().or_else(|_| {
                err(format!(
                    "{s} is not a valid year (expected a number such as 2024)"
                ))
            })
        };
        let (begin, end) = (year(&a)?, year(&b)?);
        if begin > end {
            return err(format!(
                "end year {end} is before start year {begin} (in {input:?})"
            ));
        }
        Ok(YearRange { begin, end })
    }
}

impl fmt::Display for YearRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_inclusive(f, i64::from(self.begin), i64::from(self.end))
    }
}

fn write_inclusive(f: &mut fmt::Formatter<'_>, begin: i64, end: i64) -> fmt::Result {
    if begin == end {
        write!(f, "{begin}")
    } else {
        write!(f, "{begin}:{end}")
    }
}

/// The zone a spec is read in: an IANA name (`Europe/Berlin`), `UTC`, or
/// `Local`.
///
/// `Local` is treated as UTC, not as the zone of the machine: a decision must
/// replay the same on every machine. The name is kept as written, so the
/// configuration reads back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    name: String,
    tz: Tz,
}

impl Location {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone used for evaluation (UTC for `UTC`, `Local` and `""`).
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

impl FromStr for Location {
    type Err = TimeIntervalError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let tz = match name {
            // Go's time.LoadLocation: "" and "UTC" are UTC. "Local" is UTC
            // here (see above).
            "" | "UTC" | "Local" => Tz::UTC,
            _ => name.parse::<Tz>().or_else(|_| {
                err(format!(
                    "unknown time zone {name:?}: expected a name from the IANA time zone \
                     database such as \"Europe/Berlin\" (names are case-sensitive), or \"UTC\""
                ))
            })?,
        };
        let name = if name.is_empty() { "UTC" } else { name };
        Ok(Location {
            name: name.to_owned(),
            tz,
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

// ---------------------------------------------------------------------------
// serde: the range types and Location are strings
// ---------------------------------------------------------------------------

/// A scalar read as its text, as Go's YAML decoder does for a `string` field:
/// `years: [2020]` and `days_of_month: [-1]` are numbers in YAML.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = String;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
                Ok(v)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }

        deserializer.deserialize_any(V).map(ScalarString)
    }
}

macro_rules! string_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let ScalarString(s) = ScalarString::deserialize(deserializer)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

string_serde!(
    WeekdayRange,
    DayOfMonthRange,
    MonthRange,
    YearRange,
    Location
);

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// A table row's expected `[start, end)` minutes, `None` for an error.
    type Minutes = Option<(u32, u32)>;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
            .with_timezone(&Utc)
    }

    fn spec(yaml: &str) -> TimeIntervalSpec {
        yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    /// (spec YAML, instant, contained?) — Alertmanager's timeinterval_test.go
    /// cases first, then DST, leap years, 24:00 and the rest.
    #[test]
    fn contains() {
        const BUSINESS: &str =
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']";
        const EASTER_2020: &str = "days_of_month: ['4:6']\nmonths: ['4']\nyears: ['2020']";
        const LAST_3_DAYS: &str = "days_of_month: ['-3:-1']";
        const SYDNEY: &str = "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\nlocation: Australia/Sydney";
        const SYDNEY_NOV: &str = "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\nmonths: ['11']\nlocation: Australia/Sydney";
        const Q1_LAST_WEEK: &str = "weekdays: ['monday:friday', 'sunday']\nmonths: ['january:march']\ndays_of_month: ['-7:-1']\nyears: ['2020:2025', '2030:2035']\ntimes: [{start_time: '09:00', end_time: '17:00'}]";
        const COMPLETE: &str = "weekdays: ['monday:wednesday', 'saturday', 'sunday']\ntimes: [{start_time: '13:00', end_time: '15:00'}]\ndays_of_month: ['1', '10', '20:-1']\nyears: ['2020:2023']\nmonths: ['january:march']";
        const BERLIN_2_TO_3: &str =
            "times: [{start_time: '02:00', end_time: '03:00'}]\nlocation: Europe/Berlin";
        const BERLIN_LAST_DAY: &str = "days_of_month: ['-1']\nlocation: Europe/Berlin";
        const EVENING: &str = "times: [{start_time: '17:00', end_time: '24:00'}]";
        let cases: &[(&str, &str, bool)] = &[
            // An empty spec contains everything.
            ("{}", "2006-01-02T15:04:00Z", true),
            ("{}", "2007-01-03T10:04:00Z", true),
            // 9 to 5, Monday to Friday: Monday 15:04.
            (BUSINESS, "2020-05-04T15:04:00Z", true),
            // Tuesday 10:04 and 09:04.
            (BUSINESS, "2020-05-05T10:04:00Z", true),
            (BUSINESS, "2020-06-09T09:04:00Z", true),
            // Sunday.
            (BUSINESS, "2020-05-03T15:04:00Z", false),
            // Monday, before 9.
            (BUSINESS, "2020-05-04T08:59:00Z", false),
            (BUSINESS, "2020-05-05T05:00:00Z", false),
            // Start inclusive, end exclusive.
            (BUSINESS, "2020-05-04T09:00:00Z", true),
            (BUSINESS, "2020-05-04T16:59:59Z", true),
            (BUSINESS, "2020-05-04T17:00:00Z", false),
            // Easter 2020: April 4 to 6.
            (EASTER_2020, "2020-04-04T15:04:00Z", true),
            (EASTER_2020, "2020-04-05T00:00:00Z", true),
            (EASTER_2020, "2020-04-06T23:05:00Z", true),
            (EASTER_2020, "2018-05-03T15:04:00Z", false),
            (EASTER_2020, "2020-04-03T23:59:00Z", false),
            (EASTER_2020, "2020-06-04T23:59:00Z", false),
            (EASTER_2020, "2019-04-06T23:59:00Z", false),
            (EASTER_2020, "2020-04-07T00:00:00Z", false),
            // Last three days of each month.
            (LAST_3_DAYS, "2020-01-31T15:04:00Z", true),
            (LAST_3_DAYS, "2020-01-30T15:04:00Z", true),
            (LAST_3_DAYS, "2020-01-29T15:04:00Z", true),
            (LAST_3_DAYS, "2020-06-30T00:00:00Z", true),
            (LAST_3_DAYS, "2020-02-29T23:05:00Z", true),
            (LAST_3_DAYS, "2018-05-03T15:04:00Z", false),
            (LAST_3_DAYS, "2020-01-27T15:04:00Z", false),
            (LAST_3_DAYS, "2020-04-03T23:59:00Z", false),
            (LAST_3_DAYS, "2020-03-01T00:00:00Z", false),
            // Sydney business hours: 13:00 +10:00 is 03:00 UTC, a Tuesday.
            (SYDNEY, "2021-04-06T03:00:00Z", true),
            // 13:00 UTC is 23:00 in Sydney.
            (SYDNEY, "2021-04-06T13:00:00Z", false),
            // Sydney in daylight saving time (+11:00): Monday 1 Nov 09:00.
            (SYDNEY_NOV, "2021-10-31T22:00:00Z", true),
            // 21:00 UTC is 08:00 in Sydney.
            (SYDNEY_NOV, "2021-10-31T21:00:00Z", false),
            // Q1, last week, not Saturday, business hours, 2020–25 and 2030–35.
            (Q1_LAST_WEEK, "2021-01-27T09:00:00Z", true),
            (Q1_LAST_WEEK, "2021-01-28T16:59:00Z", true),
            (Q1_LAST_WEEK, "2021-01-29T13:00:00Z", true),
            (Q1_LAST_WEEK, "2025-03-31T13:00:00Z", true),
            (Q1_LAST_WEEK, "2035-01-31T13:00:00Z", true),
            // Saturday.
            (Q1_LAST_WEEK, "2021-01-30T13:00:00Z", false),
            // April.
            (Q1_LAST_WEEK, "2021-04-01T13:00:00Z", false),
            // 2026.
            (Q1_LAST_WEEK, "2026-01-30T13:00:00Z", false),
            // After 5 pm.
            (Q1_LAST_WEEK, "2035-01-31T17:01:00Z", false),
            // timeinterval_test.go's complete case: Sunday the 10th.
            (COMPLETE, "2021-01-10T13:00:00Z", true),
            // Saturday the 30th.
            (COMPLETE, "2021-01-30T14:24:00Z", true),
            // Saturday the 9th: day not listed.
            (COMPLETE, "2021-01-09T13:00:00Z", false),
            // Before 13:00.
            (COMPLETE, "2021-01-20T12:59:00Z", false),
            // Tuesday 2 Feb: day not listed.
            (COMPLETE, "2021-02-02T13:00:00Z", false),
            // 30:31 in February starts after the month ends: never.
            (
                "days_of_month: ['30:31']\nmonths: ['february']",
                "2021-02-28T13:00:00Z",
                false,
            ),
            // Berlin springs forward on 31 March 2024 at 01:00 UTC (02:00 CET
            // becomes 03:00 CEST): 02:00–03:00 local does not exist that day.
            (BERLIN_2_TO_3, "2024-03-31T00:59:00Z", false),
            (BERLIN_2_TO_3, "2024-03-31T01:00:00Z", false),
            (BERLIN_2_TO_3, "2024-03-31T01:30:00Z", false),
            // The day before, 02:30 CET is 01:30 UTC.
            (BERLIN_2_TO_3, "2024-03-30T01:30:00Z", true),
            // The day after, 02:30 CEST is 00:30 UTC.
            (BERLIN_2_TO_3, "2024-04-01T00:30:00Z", true),
            // Berlin falls back on 27 October 2024 at 01:00 UTC: 02:00–03:00
            // local happens twice, 00:00–01:00 UTC (CEST) and 01:00–02:00 UTC (CET).
            (BERLIN_2_TO_3, "2024-10-27T00:30:00Z", true),
            (BERLIN_2_TO_3, "2024-10-27T01:30:00Z", true),
            (BERLIN_2_TO_3, "2024-10-27T02:00:00Z", false),
            (BERLIN_2_TO_3, "2024-10-26T23:59:00Z", false),
            // A zone moves the date: 23:30 UTC Saturday is Sunday in Berlin.
            (
                "weekdays: [sunday]\nlocation: Europe/Berlin",
                "2024-03-30T23:30:00Z",
                true,
            ),
            ("weekdays: [sunday]", "2024-03-30T23:30:00Z", false),
            // The last day of March in Berlin is the 31st, DST or not
            // (Alertmanager's truncating month length would say the 30th).
            (BERLIN_LAST_DAY, "2024-03-31T12:00:00Z", true),
            (BERLIN_LAST_DAY, "2024-03-30T12:00:00Z", false),
            // 23:30 UTC on 30 April is 1 May in Berlin: not April's last day.
            (BERLIN_LAST_DAY, "2024-04-30T23:30:00Z", false),
            (BERLIN_LAST_DAY, "2024-04-30T21:30:00Z", true),
            // -1 in February of a leap year is the 29th…
            ("days_of_month: ['-1']", "2024-02-29T12:00:00Z", true),
            ("days_of_month: ['-1']", "2024-02-28T12:00:00Z", false),
            // …and the 28th otherwise.
            ("days_of_month: ['-1']", "2023-02-28T12:00:00Z", true),
            ("days_of_month: ['-1']", "2023-02-27T12:00:00Z", false),
            // -2:-1 is 28–29 in 2024 and 27–28 in 2023.
            ("days_of_month: ['-2:-1']", "2024-02-28T00:00:00Z", true),
            ("days_of_month: ['-2:-1']", "2024-02-27T00:00:00Z", false),
            ("days_of_month: ['-2:-1']", "2023-02-27T00:00:00Z", true),
            ("days_of_month: ['-2:-1']", "2023-02-26T00:00:00Z", false),
            // 29:31 is the 29th in a leap February, nothing otherwise.
            ("days_of_month: ['29:31']", "2024-02-29T00:00:00Z", true),
            ("days_of_month: ['29:31']", "2023-02-28T00:00:00Z", false),
            // 1:31 is clamped to the month's length.
            ("days_of_month: ['1:31']", "2023-02-28T00:00:00Z", true),
            // 1:-1 is the whole month.
            ("days_of_month: ['1:-1']", "2023-02-28T00:00:00Z", true),
            ("days_of_month: ['1:-1']", "2023-02-01T00:00:00Z", true),
            // -31:-29 in a 28-day February resolves to -2…0: days 1…0, i.e. none.
            ("days_of_month: ['-31:-29']", "2023-02-01T00:00:00Z", false),
            // …and in a 31-day month to days 1…3.
            ("days_of_month: ['-31:-29']", "2023-01-03T00:00:00Z", true),
            ("days_of_month: ['-31:-29']", "2023-01-04T00:00:00Z", false),
            // 17:00–24:00 runs to midnight.
            (EVENING, "2024-01-01T23:59:59Z", true),
            (EVENING, "2024-01-01T17:00:00Z", true),
            (EVENING, "2024-01-01T16:59:59Z", false),
            (EVENING, "2024-01-02T00:00:00Z", false),
            // 00:00–24:00 is the whole day.
            (
                "times: [{start_time: '00:00', end_time: '24:00'}]",
                "2024-01-02T00:00:00Z",
                true,
            ),
            // Several ranges in one field: any may match.
            (
                "times: [{start_time: '00:00', end_time: '01:00'}, {start_time: '12:00', end_time: '13:00'}]",
                "2024-01-02T12:30:00Z",
                true,
            ),
            // Month names are case-insensitive; numbers work too.
            ("months: ['May:AUGUST']", "2024-08-31T00:00:00Z", true),
            ("months: ['5:8']", "2024-09-01T00:00:00Z", false),
            // Weekday names are case-insensitive.
            ("weekdays: ['Saturday']", "2024-06-01T10:00:00Z", true),
            // An empty list matches nothing (Alertmanager: a non-nil, empty slice).
            ("weekdays: []", "2024-06-01T10:00:00Z", false),
            // A null field is absent and matches everything.
            ("weekdays:", "2024-06-01T10:00:00Z", true),
            // Years as YAML numbers.
            ("years: [2024]", "2024-06-01T10:00:00Z", true),
            ("years: [2020:2023]", "2024-06-01T10:00:00Z", false),
            // Days as YAML numbers, negative too.
            ("days_of_month: [1, -1]", "2024-06-30T10:00:00Z", true),
            // `Local` is UTC.
            (
                "times: [{start_time: '10:00', end_time: '11:00'}]\nlocation: Local",
                "2024-06-01T10:30:00Z",
                true,
            ),
            // `UTC` is UTC.
            (
                "times: [{start_time: '10:00', end_time: '11:00'}]\nlocation: UTC",
                "2024-06-01T11:00:00Z",
                false,
            ),
        ];
        for (yaml, instant, want) in cases {
            assert_eq!(
                spec(yaml).contains(at(instant)),
                *want,
                "{yaml}\nat {instant}"
            );
        }
    }

    /// Alertmanager builds this one directly (the parser refuses `-31:31`):
    /// out-of-bound days are clamped to the month.
    #[test]
    fn clamps_out_of_bound_days() {
        let s = TimeIntervalSpec {
            months: Some(vec![MonthRange { begin: 6, end: 6 }]),
            days_of_month: Some(vec![DayOfMonthRange {
                begin: -31,
                end: 31,
            }]),
            ..Default::default()
        };
        let cases: &[(&str, bool)] = &[
            ("2020-06-30T00:00:00Z", true),
            ("2020-06-01T00:00:00Z", true),
            ("2020-05-31T00:00:00Z", false),
            ("2020-07-01T00:00:00Z", false),
        ];
        for (instant, want) in cases {
            assert_eq!(s.contains(at(instant)), *want, "{instant}");
        }
    }

    /// Parsing: what Alertmanager accepts, and errors that say what is wrong.
    #[test]
    fn parses_specs() {
        let cases: &[(&str, Result<TimeIntervalSpec, &str>)] = &[
            // Business hours.
            (
                "weekdays: ['monday:friday']\ntimes:\n  - start_time: '09:00'\n    end_time: '17:00'",
                Ok(TimeIntervalSpec {
                    weekdays: Some(vec![WeekdayRange { begin: 1, end: 5 }]),
                    times: Some(vec![TimeRange {
                        start_minute: 540,
                        end_minute: 1020,
                    }]),
                    ..Default::default()
                }),
            ),
            // Unquoted times and ranges (YAML 1.2: strings, not base 60).
            (
                "times: [{start_time: 09:00, end_time: 17:00}]\ndays_of_month: [1:5, -3:-1]",
                Ok(TimeIntervalSpec {
                    times: Some(vec![TimeRange {
                        start_minute: 540,
                        end_minute: 1020,
                    }]),
                    days_of_month: Some(vec![
                        DayOfMonthRange { begin: 1, end: 5 },
                        DayOfMonthRange { begin: -3, end: -1 },
                    ]),
                    ..Default::default()
                }),
            ),
            // Every field.
            (
                "weekdays: ['monday:friday', 'sunday']\nmonths: ['january:march', 'december']\ndays_of_month: ['-7:-1']\nyears: ['2020:2025', '2030']\nlocation: 'Australia/Sydney'",
                Ok(TimeIntervalSpec {
                    weekdays: Some(vec![
                        WeekdayRange { begin: 1, end: 5 },
                        WeekdayRange { begin: 0, end: 0 },
                    ]),
                    months: Some(vec![
                        MonthRange { begin: 1, end: 3 },
                        MonthRange { begin: 12, end: 12 },
                    ]),
                    days_of_month: Some(vec![DayOfMonthRange { begin: -7, end: -1 }]),
                    years: Some(vec![
                        YearRange {
                            begin: 2020,
                            end: 2025,
                        },
                        YearRange {
                            begin: 2030,
                            end: 2030,
                        },
                    ]),
                    location: Some("Australia/Sydney".parse().unwrap()),
                    ..Default::default()
                }),
            ),
            // Months regardless of case.
            (
                "months: ['January:december']",
                Ok(TimeIntervalSpec {
                    months: Some(vec![MonthRange { begin: 1, end: 12 }]),
                    ..Default::default()
                }),
            ),
            // Negative end with positive start.
            (
                "days_of_month: ['1:-1']",
                Ok(TimeIntervalSpec {
                    days_of_month: Some(vec![DayOfMonthRange { begin: 1, end: -1 }]),
                    ..Default::default()
                }),
            ),
            // Invalid start time.
            (
                "times: [{start_time: '01:99', end_time: '23:59'}]",
                Err("couldn't parse time \"01:99\": expected HH:MM"),
            ),
            // Invalid end time.
            (
                "times: [{start_time: '00:00', end_time: '99:99'}]",
                Err("couldn't parse time \"99:99\""),
            ),
            // 24:01 is out of range.
            (
                "times: [{start_time: '12:30', end_time: '24:01'}]",
                Err("couldn't parse time \"24:01\""),
            ),
            // One-digit hours are not HH:MM.
            (
                "times: [{start_time: '9:00', end_time: '17:00'}]",
                Err("couldn't parse time \"9:00\""),
            ),
            // Equal start and end.
            (
                "times: [{start_time: '17:31', end_time: '17:31'}]",
                Err("start_time 17:31 must be before end_time 17:31"),
            ),
            // Start after end.
            (
                "times: [{start_time: '09:30', end_time: '07:41'}]",
                Err("start_time 09:30 must be before end_time 07:41"),
            ),
            // 24:00 as a start.
            (
                "times: [{start_time: '24:00', end_time: '17:41'}]",
                Err("start_time 24:00 must be before end_time 17:41"),
            ),
            // Missing end.
            (
                "times: [{start_time: '14:03'}]",
                Err("both start_time and end_time must be provided"),
            ),
            // Unknown key in a time range.
            (
                "times: [{start_time: '14:03', end: '15:00'}]",
                Err("unknown field `end`"),
            ),
            // Start day after end day.
            (
                "weekdays: ['friday:monday']",
                Err("start day friday is after end day monday"),
            ),
            // Invalid weekday.
            (
                "weekdays: ['blurgsday:flurgsday']",
                Err("blurgsday is not a valid weekday"),
            ),
            // Numeric weekdays aren't allowed.
            ("weekdays: ['1:3']", Err("1 is not a valid weekday")),
            // Negative numeric weekdays aren't allowed.
            ("weekdays: ['-2:-1']", Err("-2 is not a valid weekday")),
            // Three parts.
            (
                "weekdays: ['monday:tuesday:friday']",
                Err("couldn't parse range \"monday:tuesday:friday\""),
            ),
            // Day of month 0.
            (
                "days_of_month: ['0']",
                Err("0 is not a valid day of the month"),
            ),
            // Start day of month below -31.
            (
                "days_of_month: ['-50:-20']",
                Err("-50 is not a valid day of the month: out of range"),
            ),
            // End day of month above 31.
            (
                "days_of_month: ['1:50']",
                Err("50 is not a valid day of the month: out of range"),
            ),
            // Not a number.
            (
                "days_of_month: ['first']",
                Err("first is not a valid day of the month"),
            ),
            // Negative start needs a negative end.
            (
                "days_of_month: ['-15:5']",
                Err("end day must be negative if start day is negative"),
            ),
            // Negative end always before positive start.
            (
                "days_of_month: ['10:-25']",
                Err("end day -25 is always before start day 10"),
            ),
            // Invalid start month.
            (
                "months: ['martius:june']",
                Err("martius is not a valid month"),
            ),
            // Invalid end month.
            (
                "months: ['march:junius']",
                Err("junius is not a valid month"),
            ),
            // Month number out of range.
            (
                "months: ['13']",
                Err("13 is not a valid month: out of range"),
            ),
            // Start month after end month.
            (
                "months: ['december:january']",
                Err("end month january is before start month december"),
            ),
            // Start year after end year.
            (
                "years: ['2022:2020']",
                Err("end year 2020 is before start year 2022"),
            ),
            // Not a year.
            ("years: ['next']", Err("next is not a valid year")),
            // Unknown zone.
            (
                "location: Mars/Olympus_Mons",
                Err("unknown time zone \"Mars/Olympus_Mons\""),
            ),
            // Zone names are case-sensitive.
            (
                "location: europe/berlin",
                Err("unknown time zone \"europe/berlin\""),
            ),
            // The old field name is refused, not ignored.
            ("time_zone: Europe/Berlin", Err("unknown field `time_zone`")),
            // A single value where a list is expected.
            ("weekdays: monday", Err("invalid type")),
        ];
        for (yaml, want) in cases {
            let got = yaml_serde::from_str::<TimeIntervalSpec>(yaml);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{yaml}"),
                (Err(e), Err(want)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(want),
                        "{yaml}: got {e:?}, want it to contain {want:?}"
                    );
                }
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// `TimeRange` minutes, from timeinterval_test.go's time strings.
    #[test]
    fn time_ranges() {
        let cases: &[(&str, &str, Minutes)] = &[
            ("00:00", "24:00", Some((0, 1440))),
            ("01:35", "17:39", Some((95, 1059))),
            ("09:35", "09:39", Some((575, 579))),
            ("17:31", "17:31", None),
            ("12:30", "24:01", None),
            ("09:30", "07:41", None),
            ("24:00", "17:41", None),
            ("14:03", "", None),
            ("23:60", "24:00", None),
            ("0a:00", "24:00", None),
        ];
        for (start, end, want) in cases {
            let got = TimeRange::parse(start, end)
                .ok()
                .map(|r| (r.start_minute, r.end_minute));
            assert_eq!(got, *want, "{start}–{end}");
        }
    }

    /// The config sections: named intervals, ANY spec matches.
    #[test]
    fn named_intervals() {
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            time_intervals: Vec<TimeInterval>,
            #[serde(default)]
            mute_time_intervals: Vec<TimeInterval>,
        }
        let config: Config = yaml_serde::from_str(
            "
time_intervals:
  - name: offhours
    time_intervals:
      - times:
          - start_time: '17:00'
            end_time: '24:00'
        weekdays: ['monday:friday']
        location: Europe/Berlin
      - weekdays: [saturday, sunday]
        location: Europe/Berlin
  - name: never
mute_time_intervals:
  - name: holidays
    time_intervals:
      - months: ['december']
        days_of_month: ['24:26']
",
        )
        .unwrap();
        let set = TimeIntervalSet::from_config(&config.time_intervals, &config.mute_time_intervals)
            .unwrap();
        assert_eq!(
            set.names().collect::<Vec<_>>(),
            vec!["holidays", "never", "offhours"]
        );
        let offhours = set.get("offhours").unwrap();
        let cases: &[(&str, bool)] = &[
            // Wednesday 18:00 Berlin (16:00 UTC): first spec.
            ("2024-06-05T16:00:00Z", true),
            // Wednesday 12:00 Berlin: neither.
            ("2024-06-05T10:00:00Z", false),
            // Saturday noon: second spec.
            ("2024-06-08T10:00:00Z", true),
        ];
        for (instant, want) in cases {
            assert_eq!(offhours.contains(at(instant)), *want, "{instant}");
        }
        // An interval with no specs contains nothing.
        assert!(
            !set.get("never")
                .unwrap()
                .contains(at("2024-06-08T10:00:00Z"))
        );
        // Which of a route's intervals contain an instant.
        assert_eq!(
            set.containing(
                ["offhours", "holidays", "never"],
                at("2024-12-24T20:00:00Z")
            )
            .unwrap(),
            vec!["offhours", "holidays"]
        );
        assert!(
            set.containing(["nope"], at("2024-12-24T20:00:00Z"))
                .is_err()
        );
        assert!(set.check_defined(["offhours", "holidays"]).is_ok());
        assert_eq!(
            set.check_defined(["offhours", "weekend"])
                .unwrap_err()
                .to_string(),
            "undefined time interval \"weekend\" used in route"
        );

        // Names are unique across both sections.
        let dup = TimeIntervalSet::from_config(
            &config.time_intervals,
            &[TimeInterval {
                name: "offhours".into(),
                time_intervals: vec![],
            }],
        )
        .unwrap_err();
        assert_eq!(dup.to_string(), "time interval \"offhours\" is not unique");

        // A name is required; unknown keys are refused.
        let e = yaml_serde::from_str::<TimeInterval>("time_intervals: []")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("missing name in time interval"), "{e}");
        let e = yaml_serde::from_str::<TimeInterval>("name: x\nintervals: []")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown field `intervals`"), "{e}");
    }

    /// Written back in Alertmanager's shape, and read back the same.
    #[test]
    fn round_trips() {
        let ti: TimeInterval = yaml_serde::from_str(
            "
name: offhours
time_intervals:
  - times: [{start_time: '17:00', end_time: '24:00'}]
    weekdays: ['Monday:Friday', saturday]
    days_of_month: ['1:5', '-3:-1', 15]
    months: ['january:march', 'December']
    years: ['2020:2022', 2030]
    location: Local
  - weekdays: []
",
        )
        .unwrap();
        let json = serde_json::to_value(&ti).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "offhours",
                "time_intervals": [
                    {
                        "times": [{"start_time": "17:00", "end_time": "24:00"}],
                        "weekdays": ["monday:friday", "saturday"],
                        "days_of_month": ["1:5", "-3:-1", "15"],
                        "months": ["1:3", "12"],
                        "years": ["2020:2022", "2030"],
                        "location": "Local"
                    },
                    {"weekdays": []}
                ]
            })
        );
        let back: TimeInterval = serde_json::from_value(json).unwrap();
        assert_eq!(back, ti);
        let yaml = yaml_serde::to_string(&ti).unwrap();
        let back: TimeInterval = yaml_serde::from_str(&yaml).unwrap();
        assert_eq!(back, ti);
    }

    #[test]
    fn month_lengths() {
        let cases: &[(i32, u32, u32)] = &[
            (2024, 2, 29),
            (2023, 2, 28),
            (2000, 2, 29),
            (1900, 2, 28),
            (2024, 3, 31),
            (2024, 4, 30),
            (2024, 12, 31),
        ];
        for (year, month, want) in cases {
            assert_eq!(days_in_month(*year, *month), *want, "{year}-{month}");
        }
    }
}
