//! On-call schedules from `fenghuo.yaml`: rotation tables, layers and
//! restrictions, overrides, handoffs across DST, and the config's refusals.
//! Every answer is a function of the config and the instant asked about.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use fenghuo::config::Config;
use fenghuo::escalate::{Schedule, Shift};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

const PEOPLE: &str = "
people:
  - name: alice
    email: alice@example.org
  - name: bob
  - name: carol
  - name: dave
  - name: erin
";

/// The one schedule of a config made of [`PEOPLE`] and `rest`.
fn schedule(rest: &str) -> Schedule {
    let yaml = format!("{PEOPLE}{rest}");
    let config = Config::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let oncall = config.oncall().unwrap();
    let mut all = oncall.schedules();
    let s = all.next().expect("one schedule").clone();
    assert!(all.next().is_none());
    s
}

fn who(s: &Schedule, at: &str) -> String {
    s.on_call(utc(at))
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Checks `(instant, who)` rows, `""` for nobody.
fn table(s: &Schedule, rows: &[(&str, &str)]) {
    for (at, want) in rows {
        assert_eq!(who(s, at), *want, "at {at}");
    }
}

/// A timeline as `(start, end, who)` in the zone's local time, for tables
/// that read like a handoff view.
fn timeline(s: &Schedule, from: &str, to: &str) -> Vec<(String, String, String)> {
    let zone: Tz = s.zone().0;
    let show = |t: DateTime<Utc>| t.with_timezone(&zone).format("%m-%d %H:%M").to_string();
    s.shifts(utc(from), utc(to))
        .iter()
        .map(|sh| {
            (
                show(sh.start),
                show(sh.end),
                sh.people
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
            )
        })
        .collect()
}

fn rows(r: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    r.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// The timeline agrees with `on_call` at the start and just before the end
/// of every shift, and neighbours differ.
fn consistent(s: &Schedule, shifts: &[Shift]) {
    for w in shifts.windows(2) {
        assert_eq!(w[0].end, w[1].start);
        assert_ne!(w[0].people, w[1].people, "{w:?}");
    }
    for sh in shifts {
        assert_eq!(s.on_call(sh.start), sh.people, "{sh:?}");
        assert_eq!(
            s.on_call(sh.end - Duration::seconds(1)),
            sh.people,
            "{sh:?}"
        );
    }
}

#[test]
fn daily_rotation_hands_off_at_the_handoff_time() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: UTC
    layers:
      - rotation: daily
        handoff: '09:00'
        start: 2026-01-05
        people: [alice, bob, carol]
",
    );
    table(
        &s,
        &[
            // Before the first handoff the layer has nobody.
            ("2026-01-05T08:59:59Z", ""),
            ("2026-01-05T09:00:00Z", "alice"),
            ("2026-01-06T08:59:59Z", "alice"),
            ("2026-01-06T09:00:00Z", "bob"),
            ("2026-01-07T12:00:00Z", "carol"),
            // Round again.
            ("2026-01-08T09:00:00Z", "alice"),
            // A hundred days on: 100 mod 3 = 1.
            ("2026-04-15T09:00:00Z", "bob"),
        ],
    );
}

#[test]
fn weekly_rotation_counts_weeks_from_the_handoff_weekday() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: Asia/Shanghai
    layers:
      - rotation: weekly
        handoff: '10:00'
        handoff_weekday: monday
        # A Thursday: the first handoff is the Monday after.
        start: 2026-01-01
        people: [alice, bob]
",
    );
    table(
        &s,
        &[
            ("2026-01-04T12:00:00+08:00", ""),
            ("2026-01-05T09:59:00+08:00", ""),
            ("2026-01-05T10:00:00+08:00", "alice"),
            ("2026-01-11T23:00:00+08:00", "alice"),
            ("2026-01-12T09:59:59+08:00", "alice"),
            ("2026-01-12T10:00:00+08:00", "bob"),
            ("2026-01-19T10:00:00+08:00", "alice"),
            // The same instant written in UTC.
            ("2026-01-19T02:00:00Z", "alice"),
            ("2026-01-19T01:59:59Z", "bob"),
        ],
    );
    // Without handoff_weekday, the start date's weekday is the handoff day.
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: UTC
    layers:
      - rotation: weekly
        handoff: '10:00'
        start: 2026-01-01
        people: [alice, bob]
",
    );
    table(
        &s,
        &[
            ("2026-01-01T10:00:00Z", "alice"),
            ("2026-01-08T09:59:00Z", "alice"),
            ("2026-01-08T10:00:00Z", "bob"),
        ],
    );
}

#[test]
fn custom_lengths_and_turns_of_several() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: UTC
    layers:
      - rotation: 12h
        handoff: '08:00'
        start: 2026-01-05
        people: [alice, [bob, carol]]
",
    );
    table(
        &s,
        &[
            ("2026-01-05T08:00:00Z", "alice"),
            ("2026-01-05T19:59:59Z", "alice"),
            ("2026-01-05T20:00:00Z", "bob+carol"),
            ("2026-01-06T08:00:00Z", "alice"),
        ],
    );
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: UTC
    layers:
      - rotation: 3d
        handoff: '00:00'
        start: 2026-01-01
        people: [alice, bob, carol, dave]
",
    );
    table(
        &s,
        &[
            ("2026-01-01T00:00:00Z", "alice"),
            ("2026-01-03T23:59:59Z", "alice"),
            ("2026-01-04T00:00:00Z", "bob"),
            ("2026-01-07T00:00:00Z", "carol"),
            ("2026-01-10T00:00:00Z", "dave"),
            ("2026-01-13T00:00:00Z", "alice"),
        ],
    );
}

const OFFICE_HOURS: &str = "
time_intervals:
  - name: office-hours
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '09:00', end_time: '17:00'}]
        location: Europe/Berlin
";

/// A weekday-daytime layer over a 24/7 layer: the daytime layer wins in
/// office hours, the 24/7 one shows through outside them.
#[test]
fn a_restricted_layer_over_a_round_the_clock_layer() {
    let layers = "
schedules:
  - name: platform
    time_zone: Europe/Berlin
    layers:
      - name: around-the-clock
        rotation: weekly
        handoff: '09:00'
        start: 2026-03-02
        people: [alice, bob]
      - name: office
        rotation: daily
        handoff: '09:00'
        start: 2026-03-02
        people: [carol, dave]
        restrictions:
";
    let by_interval = schedule(&format!(
        "{OFFICE_HOURS}{layers}          - time_interval: office-hours\n"
    ));
    let by_cron = schedule(&format!(
        "{OFFICE_HOURS}{layers}          - cron: '0 9 * * 1-5'\n            duration: 8h\n"
    ));
    // 2 March 2026 is a Monday; Berlin is on CET (+01:00).
    let rows: &[(&str, &str)] = &[
        ("2026-03-02T08:59:00+01:00", ""),
        ("2026-03-02T09:00:00+01:00", "carol"),
        ("2026-03-02T16:59:59+01:00", "carol"),
        ("2026-03-02T17:00:00+01:00", "alice"),
        ("2026-03-03T08:59:00+01:00", "alice"),
        ("2026-03-03T09:00:00+01:00", "dave"),
        ("2026-03-03T12:00:00+01:00", "dave"),
        ("2026-03-06T12:00:00+01:00", "carol"),
        // The weekend: the office layer has nobody.
        ("2026-03-07T12:00:00+01:00", "alice"),
        ("2026-03-09T08:00:00+01:00", "alice"),
        // Second week of the 24/7 layer; the office layer's eighth turn.
        ("2026-03-09T09:00:00+01:00", "dave"),
        ("2026-03-09T18:00:00+01:00", "bob"),
    ];
    table(&by_interval, rows);
    table(&by_cron, rows);
    let want = rows_of_week();
    let from = "2026-03-02T00:00:00+01:00";
    let to = "2026-03-09T12:00:00+01:00";
    assert_eq!(timeline(&by_interval, from, to), want);
    assert_eq!(timeline(&by_cron, from, to), want);
    consistent(&by_interval, &by_interval.shifts(utc(from), utc(to)));
    consistent(&by_cron, &by_cron.shifts(utc(from), utc(to)));
}

fn rows_of_week() -> Vec<(String, String, String)> {
    rows(&[
        ("03-02 00:00", "03-02 09:00", ""),
        ("03-02 09:00", "03-02 17:00", "carol"),
        ("03-02 17:00", "03-03 09:00", "alice"),
        ("03-03 09:00", "03-03 17:00", "dave"),
        ("03-03 17:00", "03-04 09:00", "alice"),
        ("03-04 09:00", "03-04 17:00", "carol"),
        ("03-04 17:00", "03-05 09:00", "alice"),
        ("03-05 09:00", "03-05 17:00", "dave"),
        ("03-05 17:00", "03-06 09:00", "alice"),
        ("03-06 09:00", "03-06 17:00", "carol"),
        // Friday evening to Monday morning: the 24/7 layer alone.
        ("03-06 17:00", "03-09 09:00", "alice"),
        ("03-09 09:00", "03-09 12:00", "dave"),
    ])
}

const TWO_LAYERS_WITH_OVERRIDES: &str = "
schedules:
  - name: ops
    time_zone: UTC
    layers:
      - rotation: daily
        handoff: '09:00'
        start: 2026-03-02
        people: [alice, [bob, carol]]
    overrides:
      # Whole: erin alone, over a turn boundary (03-03 09:00).
      - person: erin
        from: 2026-03-02T21:00:00Z
        to: 2026-03-03T12:00:00Z
      # Partial: dave covers carol for two hours; bob stays on call.
      - person: dave
        replaces: carol
        from: 2026-03-03T14:00:00Z
        to: 2026-03-03T16:00:00Z
      # Replacing someone who is not on call then changes nothing.
      - person: dave
        replaces: bob
        from: 2026-03-04T10:00:00+00:00
        to: 2026-03-04T11:00:00+00:00
      # Covering someone who is already on call with you: once each.
      - person: bob
        replaces: carol
        from: 2026-03-05T10:00:00Z
        to: 2026-03-05T11:00:00Z
";

#[test]
fn overrides_win_over_every_layer() {
    let s = schedule(TWO_LAYERS_WITH_OVERRIDES);
    table(
        &s,
        &[
            ("2026-03-02T20:59:59Z", "alice"),
            ("2026-03-02T21:00:00Z", "erin"),
            ("2026-03-03T11:59:59Z", "erin"),
            ("2026-03-03T12:00:00Z", "bob+carol"),
            ("2026-03-03T14:00:00Z", "bob+dave"),
            ("2026-03-03T16:00:00Z", "bob+carol"),
            ("2026-03-04T10:30:00Z", "alice"),
            ("2026-03-05T10:30:00Z", "bob"),
            ("2026-03-05T11:00:00Z", "bob+carol"),
        ],
    );
    let from = "2026-03-02T09:00:00Z";
    let to = "2026-03-04T12:00:00Z";
    assert_eq!(
        timeline(&s, from, to),
        rows(&[
            ("03-02 09:00", "03-02 21:00", "alice"),
            ("03-02 21:00", "03-03 12:00", "erin"),
            ("03-03 12:00", "03-03 14:00", "bob+carol"),
            ("03-03 14:00", "03-03 16:00", "bob+dave"),
            ("03-03 16:00", "03-04 09:00", "bob+carol"),
            // The override of bob at 10:00 does nothing: alice is on call.
            ("03-04 09:00", "03-04 12:00", "alice"),
        ])
    );
    consistent(&s, &s.shifts(utc(from), utc(to)));
    // The current shift has its true bounds, wherever the question falls.
    let current = s.shift_at(utc("2026-03-03T01:00:00Z"));
    assert_eq!(current.start, Some(utc("2026-03-02T21:00:00Z")));
    assert_eq!(current.end, Some(utc("2026-03-03T12:00:00Z")));
    // The next handoffs after an instant.
    let next = s.upcoming(utc("2026-03-03T13:00:00Z"), 2);
    assert_eq!(next.len(), 2);
    assert_eq!(next[0].start, utc("2026-03-03T14:00:00Z"));
    assert_eq!(next[1].start, utc("2026-03-03T16:00:00Z"));
    assert_eq!(next[1].end, utc("2026-03-04T09:00:00Z"));
}

/// A daily 09:00 handoff stays at 09:00 local across both DST changes, in
/// two zones that change on different dates; the shift across the change
/// lasts 23 or 25 hours.
#[test]
fn daily_handoffs_stay_at_local_time_across_dst() {
    // (zone, from, to, the day before the change, the day of it)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // Berlin springs forward on Sunday 29 March 2026.
        (
            "Europe/Berlin",
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
            "03-28",
            "03-29",
        ),
        // …and falls back on Sunday 25 October 2026.
        (
            "Europe/Berlin",
            "2026-10-23T12:00:00Z",
            "2026-10-27T12:00:00Z",
            "10-24",
            "10-25",
        ),
        // New York springs forward on 8 March 2026, falls back on 1 November.
        (
            "America/New_York",
            "2026-03-06T18:00:00Z",
            "2026-03-10T18:00:00Z",
            "03-07",
            "03-08",
        ),
        (
            "America/New_York",
            "2026-10-30T18:00:00Z",
            "2026-11-03T18:00:00Z",
            "10-31",
            "11-01",
        ),
    ];
    for (zone, from, to, before, day) in cases {
        let s = schedule(&format!(
            "
schedules:
  - name: ops
    time_zone: {zone}
    layers:
      - rotation: daily
        handoff: '09:00'
        start: 2026-01-01
        people: [alice, bob]
"
        ));
        let shifts = s.shifts(utc(from), utc(to));
        consistent(&s, &shifts);
        let tz: Tz = zone.parse().unwrap();
        // Every handoff inside the window is at 09:00 local.
        for sh in &shifts[1..] {
            assert_eq!(
                sh.start.with_timezone(&tz).format("%H:%M").to_string(),
                "09:00",
                "{zone}: {sh:?}"
            );
        }
        let lengths: Vec<(String, i64)> = shifts[1..shifts.len() - 1]
            .iter()
            .map(|sh| {
                (
                    sh.start.with_timezone(&tz).format("%m-%d").to_string(),
                    (sh.end - sh.start).num_hours(),
                )
            })
            .collect();
        let changed = if before.starts_with("03") { 23 } else { 25 };
        let before_len = lengths.iter().find(|(d, _)| d == before).unwrap().1;
        assert_eq!(before_len, changed, "{zone} {before}: {lengths:?}");
        let day_len = lengths.iter().find(|(d, _)| d == day).unwrap().1;
        assert_eq!(day_len, 24, "{zone} {day}: {lengths:?}");
    }
}

/// Weekly rotations count local weeks: the week across the change is 167
/// or 169 hours, and the handoff stays Monday 09:00.
#[test]
fn weekly_handoffs_count_local_weeks_across_dst() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: America/New_York
    layers:
      - rotation: weekly
        handoff: '09:00'
        handoff_weekday: monday
        start: 2026-01-05
        people: [alice, bob]
",
    );
    let shifts = s.shifts(utc("2026-03-02T12:00:00Z"), utc("2026-03-17T12:00:00Z"));
    let summary: Vec<(String, i64, String)> = shifts
        .iter()
        .map(|sh| {
            (
                sh.start
                    .with_timezone(&Tz::America__New_York)
                    .format("%a %m-%d %H:%M")
                    .to_string(),
                (sh.end - sh.start).num_hours(),
                sh.people[0].to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            // The window starts at 07:00 EST on Monday 2 March (clipped).
            ("Mon 03-02 07:00".to_string(), 2, "bob".to_string()),
            // Across the spring-forward of 8 March: 167 hours.
            ("Mon 03-02 09:00".to_string(), 167, "alice".to_string()),
            ("Mon 03-09 09:00".to_string(), 168, "bob".to_string()),
            // Clipped at the window's end (08:00 EDT on 17 March).
            ("Mon 03-16 09:00".to_string(), 23, "alice".to_string()),
        ]
    );
}

/// A handoff time that does not exist that day happens when the clock
/// jumps past it; one that exists twice happens the first time.
#[test]
fn handoffs_at_a_time_skipped_or_repeated_by_dst() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: Europe/Berlin
    layers:
      - rotation: daily
        handoff: '02:30'
        start: 2026-01-01
        people: [alice, bob]
",
    );
    // Spring forward: 29 March 2026, 02:00 CET → 03:00 CEST at 01:00 UTC.
    // Fall back: 25 October 2026, 03:00 CEST → 02:00 CET at 01:00 UTC.
    let handoffs: Vec<DateTime<Utc>> = s
        .shifts(utc("2026-03-28T00:00:00Z"), utc("2026-03-31T00:00:00Z"))
        .iter()
        .skip(1)
        .map(|sh| sh.start)
        .chain(
            s.shifts(utc("2026-10-24T00:00:00Z"), utc("2026-10-27T00:00:00Z"))
                .iter()
                .skip(1)
                .map(|sh| sh.start),
        )
        .collect();
    assert_eq!(
        handoffs,
        [
            // 02:30 CET.
            "2026-03-28T01:30:00Z",
            // 02:30 does not exist: the clock jumps from 02:00 to 03:00.
            "2026-03-29T01:00:00Z",
            // 02:30 CEST.
            "2026-03-30T00:30:00Z",
            "2026-10-24T00:30:00Z",
            // 02:30 happens twice; the first time is CEST.
            "2026-10-25T00:30:00Z",
            // 02:30 CET.
            "2026-10-26T01:30:00Z",
        ]
        .map(utc)
    );
}

/// Hourly turns lose the hour spring-forward skips (that turn is empty and
/// goes by unseen) and get a two-hour turn at fall-back.
#[test]
fn hourly_turns_across_dst() {
    let s = schedule(
        "
schedules:
  - name: ops
    time_zone: Europe/Berlin
    layers:
      - rotation: 1h
        handoff: '00:00'
        start: 2026-03-29
        people: [alice, bob, carol]
",
    );
    assert_eq!(
        timeline(&s, "2026-03-28T23:00:00Z", "2026-03-29T02:00:00Z"),
        rows(&[
            ("03-29 00:00", "03-29 01:00", "alice"),
            ("03-29 01:00", "03-29 03:00", "bob"),
            // carol's turn (02:00–03:00) does not exist; alice's is next.
            ("03-29 03:00", "03-29 04:00", "alice"),
        ])
    );
}

/// Every refusal names the problem, and where the YAML parser knows it,
/// the line.
#[test]
fn config_errors() {
    let good = "
people:
  - name: alice
  - name: bob
time_intervals:
  - name: office-hours
    time_intervals:
      - weekdays: ['monday:friday']
schedules:
  - name: ops
    time_zone: Europe/Berlin
    layers:
      - name: base
        rotation: daily
        handoff: '09:00'
        start: 2026-01-05
        people: [alice, bob]
        restrictions:
          - time_interval: office-hours
          - cron: '0 18 * * 1-5'
            duration: 15h
    overrides:
      - person: bob
        replaces: alice
        from: 2026-03-07T09:00:00+01:00
        to: 2026-03-08T09:00:00+01:00
";
    Config::parse(good).expect("the good config parses");
    // (text replaced, replacement, what the refusal must say). yaml_serde
    // names the path of the bad value and places it at the start of the
    // entry (layer, override, list) that holds it.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "people: [alice, bob]",
            "people: [alice, carol]",
            &["unknown person \"carol\" (people: alice, bob)", "line 17"],
        ),
        (
            "person: bob",
            "person: zed",
            &["unknown person \"zed\"", "line 23"],
        ),
        (
            "replaces: alice",
            "replaces: alicia",
            &["unknown person \"alicia\"", "overrides[0]", "line 23"],
        ),
        (
            "time_zone: Europe/Berlin",
            "time_zone: Europe/Berlyn",
            &[
                "unknown time zone \"Europe/Berlyn\"",
                "schedules[0]",
                "line 10",
            ],
        ),
        (
            "handoff: '09:00'",
            "handoff: '25:00'",
            &["invalid handoff time \"25:00\"", "layers[0]", "line 13"],
        ),
        (
            "handoff: '09:00'",
            "handoff: 9am",
            &["invalid handoff time \"9am\": expected HH:MM"],
        ),
        (
            "rotation: daily",
            "rotation: fortnightly",
            &["invalid rotation \"fortnightly\"", "line 13"],
        ),
        (
            "rotation: daily",
            "rotation: 30m",
            &["a turn lasts at least 1h"],
        ),
        (
            "rotation: daily",
            "rotation: daily\n        handoff_weekday: monday",
            &["handoff_weekday is for weekly rotations"],
        ),
        (
            "start: 2026-01-05",
            "start: 2026-02-30",
            &["invalid start date \"2026-02-30\"", "line 13"],
        ),
        (
            "'0 18 * * 1-5'",
            "'0 18 * * 1-5L'",
            &["L (last) is not supported", "restrictions", "line 19"],
        ),
        (
            "'0 18 * * 1-5'",
            "'0 0 18 * * 1-5'",
            &["expected 5 fields", "seconds"],
        ),
        (
            "'0 18 * * 1-5'",
            "'@every 1h'",
            &["@every is not supported"],
        ),
        ("            duration: 15h\n", "", &["needs a duration"]),
        (
            "time_interval: office-hours",
            "time_interval: office-ours",
            &[
                "time interval \"office-ours\" is not defined (time_intervals: office-hours)",
                "line 19",
            ],
        ),
        (
            "to: 2026-03-08T09:00:00+01:00",
            "to: 2026-03-07T08:00:00+01:00",
            &["to 2026-03-07T08:00:00+01:00 is not after from 2026-03-07T09:00:00+01:00"],
        ),
        (
            "from: 2026-03-07T09:00:00+01:00",
            "from: 2026-03-07 09:00",
            &["invalid time \"2026-03-07 09:00\": expected RFC 3339 with an offset"],
        ),
        (
            "  - name: bob\n",
            "  - name: bob\n  - name: alice\n",
            &["person \"alice\" is defined twice"],
        ),
        (
            "        people: [alice, bob]\n",
            "        people: []\n",
            &["people is empty"],
        ),
        (
            "    time_zone: Europe/Berlin\n",
            "",
            &["missing field `time_zone`"],
        ),
        (
            "        handoff: '09:00'\n",
            "        handoff: '09:00'\n        hand_off_day: monday\n",
            &["unknown field `hand_off_day`"],
        ),
    ];
    for (from, to, wants) in cases {
        let broken = good.replacen(from, to, 1);
        assert_ne!(broken, good, "the row must change the file: {from:?}");
        let err = Config::parse(&broken).expect_err(to);
        for want in *wants {
            assert!(err.contains(want), "{to:?}: want {want:?} in {err:?}");
        }
    }
    // Two schedules of one name.
    let twice = format!(
        "{good}{}",
        &good[good.find("  - name: ops").unwrap()..good.find("    overrides:").unwrap()]
    );
    let err = Config::parse(&twice).unwrap_err();
    assert!(err.contains("schedule \"ops\" is defined twice"), "{err}");
}

/// The README's example parses and means what it says.
#[test]
fn the_readme_example() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let section = &readme[readme.find("## On-call schedules").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let config = Config::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    let oncall = config.oncall().unwrap();
    let s = oncall.schedule("platform").unwrap();
    table(
        s,
        &[
            // Monday, office hours: carol's turn of the office layer.
            ("2026-01-05T10:00:00+01:00", "carol"),
            // Monday evening: the around-the-clock layer.
            ("2026-01-05T18:00:00+01:00", "alice"),
            // Saturday 7 March, 10:30: the cron window shows the office
            // layer's turn (dave and bob), and alice covers bob.
            ("2026-03-07T10:30:00+01:00", "dave+alice"),
            ("2026-03-07T13:00:00+01:00", "alice"),
            // The override is over.
            ("2026-03-14T10:30:00+01:00", "carol"),
        ],
    );
}
