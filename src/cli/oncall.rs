//! `fenghuo oncall`: who is on call now or at a time, from the config's
//! schedules, and the next handoffs.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::ConfigArgs;
use crate::clock::{Clock, SystemClock};
use crate::escalate::{OnCall, Person, PersonName, Schedule};

#[derive(Debug, clap::Args)]
pub struct OnCallArgs {
    /// The schedule to ask about (default: every schedule).
    #[arg(long)]
    pub schedule: Option<String>,
    /// The instant to ask about, RFC 3339 (e.g. 2026-03-07T10:00:00+01:00);
    /// default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Also list the next N handoffs.
    #[arg(long, default_value_t = 0)]
    pub shifts: usize,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: OnCallArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let oncall = config.oncall().map_err(anyhow::Error::msg)?;
    let at = match &args.at {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--at {s:?}: expected RFC 3339, e.g. 2026-03-07T10:00:00+01:00")
            })?
            .with_timezone(&Utc),
        // The command line is where "now" comes from.
        None => SystemClock.now(),
    };
    let schedules: Vec<&Schedule> = match &args.schedule {
        Some(name) => match oncall.schedule(name) {
            Some(s) => vec![s],
            None => bail!(
                "no schedule named {name:?}; schedules: {}",
                list_or_none(&oncall.schedule_names())
            ),
        },
        None => oncall.schedules().collect(),
    };
    if schedules.is_empty() {
        bail!("no schedules configured (pass --config FILE with a `schedules:` section)");
    }
    for (i, schedule) in schedules.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_schedule(&oncall, schedule, at, args.shifts);
    }
    Ok(())
}

fn print_schedule(oncall: &OnCall, schedule: &Schedule, at: DateTime<Utc>, shifts: usize) {
    let zone = schedule.zone().0;
    println!(
        "{} ({}) at {}",
        schedule.name(),
        zone.name(),
        local(zone, at)
    );
    let current = schedule.shift_at(at);
    if current.people.is_empty() {
        println!("  on call: nobody");
    }
    for name in &current.people {
        println!("  on call: {}", contact(oncall, name));
    }
    let bound =
        |t: Option<DateTime<Utc>>, none: &str| t.map_or(none.to_owned(), |t| local(zone, t));
    println!(
        "  shift:   {} → {}",
        bound(current.start, "(over a year ago)"),
        bound(current.end, "(over a year away)")
    );
    if shifts > 0 {
        let next = schedule.upcoming(at, shifts);
        if next.is_empty() {
            println!("  no handoff within a year");
        } else {
            println!("  next handoffs:");
        }
        for s in next {
            println!(
                "    {} → {}  {}",
                local(zone, s.start),
                local(zone, s.end),
                names(&s.people)
            );
        }
    }
}

fn local(zone: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

fn names(people: &[PersonName]) -> String {
    if people.is_empty() {
        "nobody".into()
    } else {
        people
            .iter()
            .map(PersonName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A person and every way to reach them, on one line.
fn contact(oncall: &OnCall, name: &PersonName) -> String {
    let Some(p) = oncall.person(name) else {
        return name.to_string();
    };
    let Person {
        email,
        time_zone,
        dingtalk,
        wecom,
        feishu,
        slack,
        ..
    } = p;
    let mut parts = vec![name.to_string()];
    if let Some(e) = email {
        parts.push(format!("<{e}>"));
    }
    if let Some(d) = dingtalk {
        for (what, v) in [("mobile", &d.mobile), ("user_id", &d.user_id)] {
            if let Some(v) = v {
                parts.push(format!("dingtalk {what} {v}"));
            }
        }
    }
    if let Some(w) = wecom {
        parts.push(format!("wecom {}", w.user_id));
    }
    if let Some(f) = feishu {
        for (what, v) in [("open_id", &f.open_id), ("user_id", &f.user_id)] {
            if let Some(v) = v {
                parts.push(format!("feishu {what} {v}"));
            }
        }
    }
    if let Some(s) = slack {
        parts.push(format!("slack {}", s.user_id));
    }
    if let Some(z) = time_zone {
        parts.push(format!("(lives in {z})"));
    }
    parts.join("  ")
}
