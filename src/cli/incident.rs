//! `fenghuo stats` (MTTA/MTTR, pages per person, noisiest alerts, for a
//! period, from a data directory or a running server) and `fenghuo
//! incident` (list, ack, unack, resolve, snooze through a running server).

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use super::ConfigArgs;
use crate::clock::{Clock, SystemClock};
use crate::escalate::stats;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Start of the period, RFC 3339; default: a week before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period, RFC 3339; default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// Ask a running server instead of reading the data directory.
    #[arg(long)]
    pub server: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

fn time(flag: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--{flag} {s:?}: expected RFC 3339, e.g. 2026-11-18T00:00:00Z"))?
        .with_timezone(&Utc))
}

/// The period a command asks about: `[from, to)`.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let to = to.map(|s| time("to", s)).transpose()?.unwrap_or(now);
    let from = from
        .map(|s| time("from", s))
        .transpose()?
        .unwrap_or(to - chrono::Duration::days(7));
    if from >= to {
        bail!("--from must be before --to");
    }
    Ok((from, to))
}

pub fn run_stats(args: StatsArgs) -> anyhow::Result<()> {
    // The command line is where "now" comes from.
    let (from, to) = period(args.from.as_deref(), args.to.as_deref(), SystemClock.now())?;
    let stats: serde_json::Value = match &args.server {
        Some(server) => {
            let url = format!("{}/api/v1/stats", server.trim_end_matches('/'));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let resp = reqwest::Client::new()
                    .get(&url)
                    .query(&[("from", from.to_rfc3339()), ("to", to.to_rfc3339())])
                    .send()
                    .await?;
                let status = resp.status();
                let body: serde_json::Value = resp.json().await?;
                if !status.is_success() {
                    bail!("{status}: {}", body["error"]);
                }
                Ok(body)
            })?
        }
        None => {
            let config = args.config.load()?;
            let oncall = config.oncall().map_err(anyhow::Error::msg)?;
            let log = args.config.open_log()?;
            let zone = |p: &str| {
                oncall
                    .person(&crate::escalate::PersonName::from(p))
                    .and_then(|p| p.time_zone)
                    .map(|z| z.0)
            };
            serde_json::to_value(stats::compute(&log, from, to, &zone)?)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let stats: StatsView = serde_json::from_value(stats)?;
    print!("{}", stats.table());
    Ok(())
}

/// What `fenghuo stats` prints, read back from the JSON either source gives.
#[derive(serde::Deserialize)]
struct StatsView {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    overall: ResponseView,
    by_route: std::collections::BTreeMap<String, ResponseView>,
    by_receiver: std::collections::BTreeMap<String, ResponseView>,
    by_service: std::collections::BTreeMap<String, ResponseView>,
    by_team: std::collections::BTreeMap<String, ResponseView>,
    pages_by_person: std::collections::BTreeMap<String, PagesView>,
    noisiest: Vec<NoisyView>,
}

#[derive(serde::Deserialize)]
struct ResponseView {
    incidents: usize,
    acknowledged: usize,
    resolved: usize,
    mtta_seconds: Option<f64>,
    mttr_seconds: Option<f64>,
    never_acknowledged: usize,
}

#[derive(serde::Deserialize)]
struct PagesView {
    pages: usize,
    night_pages: usize,
}

#[derive(serde::Deserialize)]
struct NoisyView {
    alertname: String,
    fired: usize,
    most_episodes_of_one: usize,
    never_acknowledged: usize,
}

impl StatsView {
    fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Period {} .. {}\n",
            self.from.to_rfc3339(),
            self.to.to_rfc3339()
        );
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>6} {:>9} {:>9} {:>10}",
            "", "incidents", "acked", "MTTA", "MTTR", "never ack"
        );
        let row = |out: &mut String, name: &str, r: &ResponseView| {
            let _ = writeln!(
                out,
                "{:<28} {:>9} {:>6} {:>9} {:>9} {:>10}",
                name,
                r.incidents,
                r.acknowledged,
                stats::human(r.mtta_seconds),
                stats::human(r.mttr_seconds),
                r.never_acknowledged
            );
            let _ = r.resolved;
        };
        row(&mut out, "all", &self.overall);
        for (title, map) in [
            ("route", &self.by_route),
            ("receiver", &self.by_receiver),
            ("service", &self.by_service),
            ("team", &self.by_team),
        ] {
            for (k, r) in map {
                row(&mut out, &format!("{title} {k}"), r);
            }
        }
        if !self.pages_by_person.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<28} {:>6} {:>12}",
                "person", "pages", "night pages"
            );
            for (p, n) in &self.pages_by_person {
                let _ = writeln!(out, "{:<28} {:>6} {:>12}", p, n.pages, n.night_pages);
            }
        }
        if !self.noisiest.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<28} {:>6} {:>14} {:>10}",
                "noisiest alerts", "fired", "most of one", "never ack"
            );
            for n in &self.noisiest {
                let _ = writeln!(
                    out,
                    "{:<28} {:>6} {:>14} {:>10}",
                    n.alertname, n.fired, n.most_episodes_of_one, n.never_acknowledged
                );
            }
        }
        out
    }
}

#[derive(Debug, clap::Args)]
pub struct IncidentArgs {
    /// `list`, `ack`, `unack`, `resolve` or `snooze`.
    pub action: String,
    /// The incident id (`inc-…`); not for `list`.
    pub id: Option<String>,
    /// Who acts (recorded with the action).
    #[arg(long, env = "USER")]
    pub by: Option<String>,
    /// For `snooze`: how long, e.g. 30m, 2h.
    #[arg(long)]
    pub r#for: Option<String>,
    /// Why, recorded with the action.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The running server.
    #[arg(long, env = "FENGHUO_SERVER", default_value = "http://127.0.0.1:9797")]
    pub server: String,
}

pub fn run_incident(args: IncidentArgs) -> anyhow::Result<()> {
    let server = args.server.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let resp = if args.action == "list" {
            client
                .get(format!("{server}/api/v1/incidents"))
                .send()
                .await?
        } else {
            let Some(id) = &args.id else {
                bail!("{} needs an incident id", args.action);
            };
            if crate::escalate::actions::Action::parse(&args.action).is_none() {
                bail!(
                    "unknown action {:?}: list, ack, unack, resolve, snooze",
                    args.action
                );
            }
            let until = match &args.r#for {
                Some(d) => {
                    let d = crate::config::PromDuration::parse(d).map_err(anyhow::Error::msg)?;
                    Some(SystemClock.now() + d.0)
                }
                None => None,
            };
            let by = args.by.clone().unwrap_or_default();
            client
                .post(format!("{server}/api/v1/incidents/{id}/{}", args.action))
                .json(&serde_json::json!({"by": by, "until": until, "reason": args.reason}))
                .send()
                .await?
        };
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{status}: {}", body["error"].as_str().unwrap_or("failed"));
        }
        println!("{}", serde_json::to_string_pretty(&body)?);
        Ok(())
    })
}
