//! A simulated day of 500 probes every 15 s, on a manual clock: the runs
//! come from the probes' schedules (as the runner takes them), their
//! outcomes are made up here (2.88 million real requests would prove
//! nothing more), and compaction decides what is stored, as the runner
//! does. The bound in `probe::compact` must hold, every state change must
//! be stored, and the runs must be spread over each second of the
//! interval.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Timelike, Utc};
use fenghuo::clock::{Clock, ManualClock};
use fenghuo::probe::Outcome;
use fenghuo::probe::compact::{self, Compaction, Stored, Window};
use fenghuo::probe::schedule::Every;

const PROBES: usize = 500;

/// What probe `i` finds at `t` (seconds into the day):
/// * probes 0–9 go down for 3 minutes every 2 hours (at their own phase);
/// * probes 10–19 report a memory value that wobbles within 0.5% and
///   steps up 5% every 30 minutes;
/// * probes 20–29 report a counter that grows 2% every run (stored at
///   most once per `value_interval`, not every run);
/// * every probe's latency varies from run to run;
/// * the rest answer the same every time.
fn outcome(i: usize, t: i64) -> Outcome {
    let latency =
        StdDuration::from_micros(2_000 + ((i as u64 * 7919 + t as u64 * 104_729) % 30_000));
    let mut o = Outcome::up(latency, Some(200));
    if i < 10 {
        let phase = (t + i as i64 * 700).rem_euclid(2 * 3600);
        if phase < 180 {
            o = Outcome::failed(latency, None, "connect failed: Connection refused".into());
        }
    } else if i < 20 {
        let steps = t / 1800;
        let wobble = 1.0 + 0.005 * (((t / 15) % 3) as f64 - 1.0);
        let mem = 1e9 * 1.05f64.powi(steps as i32) * wobble;
        o.values = BTreeMap::from([("memory_bytes".to_string(), mem)]);
    } else if i < 30 {
        let counter = 1.02f64.powi((t / 15) as i32);
        o.values = BTreeMap::from([("requests_total".to_string(), counter)]);
    }
    o
}

#[test]
fn a_day_of_500_probes_every_15s_stores_changes_and_summaries_only() {
    let start: DateTime<Utc> = "2026-11-25T00:00:00Z".parse().unwrap();
    let end = start + Duration::days(1);
    let clock = ManualClock::new(start);
    let every = Every::interval(Duration::seconds(15)).unwrap();
    let how = Compaction {
        summary_every: Duration::minutes(10),
        value_interval: Duration::minutes(1),
        tolerance: 0.01,
    };
    let names: Vec<String> = (0..PROBES).map(|i| format!("svc-{i}")).collect();

    let mut queue = BinaryHeap::new();
    for (i, name) in names.iter().enumerate() {
        queue.push(Reverse((every.next_after(name, clock.now()).unwrap(), i)));
    }
    let mut last: Vec<Option<Stored>> = vec![None; PROBES];
    let mut windows: Vec<Window> = vec![Window::default(); PROBES];
    let mut previous_ok: Vec<Option<bool>> = vec![None; PROBES];
    let mut runs = 0u64;
    let mut stored = 0u64;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut state_changes = 0u64;
    let mut value_changes = 0u64;
    let mut counter_stores = 0u64;
    let mut runs_per_second = vec![0u32; 15];

    while let Some(Reverse((at, i))) = queue.pop() {
        if at >= end {
            break;
        }
        clock.set(at);
        queue.push(Reverse((
            every.next_after(&names[i], clock.now()).unwrap(),
            i,
        )));
        let t = (at - start).num_seconds();
        let o = outcome(i, t);
        runs += 1;
        runs_per_second[(at.second() % 15) as usize] += 1;

        let changed = previous_ok[i].is_some_and(|ok| ok != o.ok);
        state_changes += u64::from(changed);
        previous_ok[i] = Some(o.ok);

        let Some(summary) = compact::consider(last[i].as_ref(), &mut windows[i], &o, at, how)
        else {
            assert!(
                !changed,
                "svc-{i} changed state at {at} and it was not stored"
            );
            continue;
        };
        if summary.reason == "values" {
            if i < 20 {
                value_changes += 1;
            } else {
                counter_stores += 1;
            }
        }
        *by_reason.entry(summary.reason.clone()).or_default() += 1;
        stored += 1;
        if changed {
            assert_eq!(summary.reason, "state", "svc-{i} at {at}");
        }
        last[i] = Some(Stored {
            ok: o.ok,
            status: o.status,
            error: o.error.clone(),
            values: o.values.clone(),
            at,
        });
    }

    // The runs themselves: every probe every 15 s for a day.
    assert_eq!(runs, PROBES as u64 * 5760);
    // The bound: per probe, its first result, its changes, and one summary
    // per 10 minutes.
    let summaries_a_day = 24 * 6;
    let bound =
        PROBES as u64 * (1 + summaries_a_day) + state_changes + value_changes + counter_stores;
    eprintln!(
        "{runs} runs, {stored} stored (bound {bound}; {state_changes} state changes, {value_changes} value moves, {counter_stores} counter stores): {by_reason:?}"
    );
    assert!(stored <= bound, "{stored} > {bound}");
    // 10 flapping probes, 12 outages each, down and up again; svc-0
    // starts the day in an outage (its first result is a failure).
    assert_eq!(state_changes, 10 * 12 * 2 - 1);
    // 10 memory values, each stepping 47 times; the 0.5% wobble is not
    // stored.
    assert_eq!(value_changes, 10 * 47);
    // Counters that move every run are stored once a minute, not 5,760
    // times a day.
    assert!(counter_stores <= 10 * 1440, "{counter_stores}");
    assert!(counter_stores >= 10 * 1400, "{counter_stores}");
    assert_eq!(by_reason["state"], state_changes);
    // Summaries are what a stable fleet costs: about 72,000 a day.
    assert!(by_reason["summary"] <= PROBES as u64 * summaries_a_day);
    assert!(stored < 90_000, "{stored}");

    // Runs are spread over the 15 seconds: no second takes much more than
    // its share (500 / 15 ≈ 33 probes).
    let most = *runs_per_second.iter().max().unwrap() as f64 / 5760.0;
    assert!(most < 60.0, "{runs_per_second:?}");
}
