//! Response statistics from the log: MTTA and MTTR per route, receiver,
//! service and team; pages and night-time pages per person; the noisiest
//! alerts. Everything is recomputed from the events, so any past period
//! can be asked about again and gives the same answer.
//!
//! An incident counts in a period if it opened in it. Time to acknowledge
//! is from opening to the first acknowledgement; time to resolve is from
//! opening to closing (its alerts resolved, or someone resolved it).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use super::incident::{Incident, Incidents};
use crate::eventlog::{Event, EventKind, EventLog, EventQuery, LogError, Projection};

/// Night, in each person's own time zone: from 22:00 to 07:00.
const NIGHT_STARTS: u32 = 22;
const NIGHT_ENDS: u32 = 7;

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Response {
    pub incidents: usize,
    pub acknowledged: usize,
    pub resolved: usize,
    /// Mean seconds from opening to the first acknowledgement.
    pub mtta_seconds: Option<f64>,
    /// Mean seconds from opening to closing.
    pub mttr_seconds: Option<f64>,
    /// Closed without anyone acknowledging.
    pub never_acknowledged: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Pages {
    pub pages: usize,
    pub night_pages: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Noisy {
    pub alertname: String,
    /// Firing episodes (`alert.fired`).
    pub fired: usize,
    /// The most episodes of one alert (one label set): flapping.
    pub most_episodes_of_one: usize,
    /// Incidents of this alert closed without an acknowledgement.
    pub never_acknowledged: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overall: Response,
    pub by_route: BTreeMap<String, Response>,
    pub by_receiver: BTreeMap<String, Response>,
    pub by_service: BTreeMap<String, Response>,
    pub by_team: BTreeMap<String, Response>,
    pub pages_by_person: BTreeMap<String, Pages>,
    /// Most fired first, at most 20.
    pub noisiest: Vec<Noisy>,
}

/// Sums for one bucket.
#[derive(Default)]
struct Acc {
    incidents: usize,
    acked: Vec<f64>,
    resolved: Vec<f64>,
    never_acked: usize,
}

impl Acc {
    fn add(&mut self, i: &Incident, first_ack: Option<DateTime<Utc>>) {
        self.incidents += 1;
        if let Some(at) = first_ack {
            self.acked
                .push((at - i.opened_at).num_milliseconds() as f64 / 1000.0);
        }
        if let Some(at) = i.closed_at {
            self.resolved
                .push((at - i.opened_at).num_milliseconds() as f64 / 1000.0);
            if first_ack.is_none() {
                self.never_acked += 1;
            }
        }
    }

    fn done(&self) -> Response {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Response {
            incidents: self.incidents,
            acknowledged: self.acked.len(),
            resolved: self.resolved.len(),
            mtta_seconds: mean(&self.acked),
            mttr_seconds: mean(&self.resolved),
            never_acknowledged: self.never_acked,
        }
    }
}

/// The kinds that make up incidents.
const INCIDENT_KINDS: &[&str] = &[
    "notification.due",
    "group.closed",
    "escalation.stepped",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.snoozed",
];

/// Computes the statistics of `[from, to)` from `log`. `zone_of` gives a
/// person's time zone for night-time pages (UTC if unknown).
pub fn compute(
    log: &EventLog,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone_of: &dyn Fn(&str) -> Option<chrono_tz::Tz>,
) -> Result<Stats, LogError> {
    // Incidents are folded from the start of the log (their kinds only):
    // a group already paging before `from` must not count as opening in
    // the period when it next notifies.
    let fold = Incidents::new();
    let mut first_ack: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut pages: BTreeMap<String, Pages> = BTreeMap::new();
    // Alert names come from reports up to a day before the period.
    let margin = from - chrono::Duration::days(1);
    for_each(log, INCIDENT_KINDS, DateTime::<Utc>::MIN_UTC, to, |e| {
        fold.apply(e);
        match &e.kind {
            EventKind::IncidentAcknowledged(a) => {
                first_ack.entry(a.incident.clone()).or_insert(e.occurred_at);
            }
            EventKind::NotificationDue(d) if d.escalation.is_some() && e.occurred_at >= from => {
                for p in &d.to {
                    let entry = pages.entry(p.name.clone()).or_default();
                    entry.pages += 1;
                    let zone = zone_of(&p.name).unwrap_or(chrono_tz::UTC);
                    let hour = e.occurred_at.with_timezone(&zone).hour();
                    if !(NIGHT_ENDS..NIGHT_STARTS).contains(&hour) {
                        entry.night_pages += 1;
                    }
                }
            }
            _ => {}
        }
    })?;

    // Alert names and episodes, from the period's alerts.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut episodes: HashMap<String, usize> = HashMap::new();
    for_each(
        log,
        &["alert.received", "alert.fired"],
        margin,
        to,
        |e| match &e.kind {
            EventKind::AlertReceived(r) => {
                if let Some(n) = r.labels.get("alertname") {
                    names.insert(r.fingerprint.to_string(), n.to_string());
                }
            }
            EventKind::AlertFired { fingerprint } if e.occurred_at >= from => {
                *episodes.entry(fingerprint.clone()).or_default() += 1;
            }
            _ => {}
        },
    )?;

    let mut overall = Acc::default();
    let mut by: [BTreeMap<String, Acc>; 4] = Default::default();
    let mut never_acked_by_name: HashMap<String, usize> = HashMap::new();
    for i in fold.all() {
        if i.opened_at < from || i.opened_at >= to {
            continue;
        }
        let ack = first_ack.get(&i.id).copied();
        overall.add(&i, ack);
        let labels = &i.group.group_labels;
        let service = labels.get("service").unwrap_or("-").to_string();
        let team = labels.get("team").unwrap_or("-").to_string();
        for (map, key) in by.iter_mut().zip([
            i.group.route.clone(),
            i.group.receiver.clone(),
            service,
            team,
        ]) {
            map.entry(key).or_default().add(&i, ack);
        }
        if i.closed_at.is_some() && ack.is_none() {
            let name = labels
                .get("alertname")
                .map(str::to_string)
                .or_else(|| i.firing.first().and_then(|fp| names.get(&fp).cloned()))
                .unwrap_or_else(|| "-".into());
            *never_acked_by_name.entry(name).or_default() += 1;
        }
    }

    let mut noisy: HashMap<String, Noisy> = HashMap::new();
    for (fp, n) in &episodes {
        let name = names.get(fp).cloned().unwrap_or_else(|| "-".into());
        let e = noisy.entry(name.clone()).or_insert_with(|| Noisy {
            alertname: name,
            ..Noisy::default()
        });
        e.fired += n;
        e.most_episodes_of_one = e.most_episodes_of_one.max(*n);
    }
    for (name, n) in never_acked_by_name {
        noisy
            .entry(name.clone())
            .or_insert_with(|| Noisy {
                alertname: name,
                ..Noisy::default()
            })
            .never_acknowledged = n;
    }
    let mut noisiest: Vec<Noisy> = noisy.into_values().collect();
    noisiest.sort_by(|a, b| {
        (b.fired, b.never_acknowledged, &a.alertname).cmp(&(
            a.fired,
            a.never_acknowledged,
            &b.alertname,
        ))
    });
    noisiest.truncate(20);

    let [route, receiver, service, team] = by;
    let done = |m: BTreeMap<String, Acc>| m.into_iter().map(|(k, a)| (k, a.done())).collect();
    Ok(Stats {
        from,
        to,
        overall: overall.done(),
        by_route: done(route),
        by_receiver: done(receiver),
        by_service: done(service),
        by_team: done(team),
        pages_by_person: pages,
        noisiest,
    })
}

/// Every event of `kinds` in `[since, until)`, in pages.
fn for_each(
    log: &EventLog,
    kinds: &[&str],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    mut f: impl FnMut(&Event),
) -> Result<(), LogError> {
    let mut after = 0;
    loop {
        let page = log.read(&EventQuery {
            after,
            limit: 10_000,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            since: Some(since),
            until: Some(until),
            ..EventQuery::default()
        })?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        for e in &page {
            f(e);
        }
    }
}

/// Seconds as `4m12s`, for people.
pub fn human(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let s = s.round() as i64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}
