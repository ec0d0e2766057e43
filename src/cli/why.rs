//! `fenghuo why FINGERPRINT`: an alert's fate — its state, what mutes it,
//! where it routes — and every event about it, in order, with what each
//! notification decided about it (muted and why, or paged with its cause
//! as a symptom, joined through the topology).

use anyhow::{Context, bail};

use super::ConfigArgs;
use super::events::describe;
use crate::eventlog::{Event, EventQuery};

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The alert's fingerprint (16 hex digits, as Alertmanager shows it).
    pub fingerprint: String,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Ask a running server (adds current mute reasons and receivers).
    #[arg(long, env = "FENGHUO_SERVER")]
    pub server: Option<String>,
}

pub fn run(args: WhyArgs) -> anyhow::Result<()> {
    if crate::evaluate::Fingerprint::parse(&args.fingerprint).is_none() {
        bail!(
            "{:?} is not a fingerprint (16 hex digits)",
            args.fingerprint
        );
    }
    match &args.server {
        Some(server) => from_server(server.trim_end_matches('/'), &args.fingerprint),
        None => from_data_dir(&args),
    }
}

fn list(values: &serde_json::Value) -> String {
    let items: Vec<&str> = values
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn from_server(server: &str, fingerprint: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body: serde_json::Value = rt.block_on(async {
        let resp = reqwest::get(format!("{server}/api/v1/alerts/{fingerprint}/history"))
            .await
            .with_context(|| format!("asking {server}"))?;
        if !resp.status().is_success() {
            bail!(
                "{server} answered {}: {}",
                resp.status(),
                resp.text().await?
            );
        }
        Ok(resp.json().await?)
    })?;
    println!("alert {fingerprint} {}", body["labels"]);
    println!("  state:        {}", body["state"].as_str().unwrap_or("?"));
    let receivers: Vec<&str> = body["receivers"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    println!(
        "  routes to:    {}",
        if receivers.is_empty() {
            "no receiver (no route configured)".to_string()
        } else {
            receivers.join(", ")
        }
    );
    println!("  silenced by:  {}", list(&body["silencedBy"]));
    println!("  inhibited by: {}", list(&body["inhibitedBy"]));
    let flapping = &body["flapping"];
    if flapping.is_object() {
        println!(
            "  flapping:     since {} ({} state changes within {}s); paged again after {}s without a change",
            flapping["since"].as_str().unwrap_or("?"),
            flapping["changes"],
            flapping["window_secs"],
            flapping["stable_secs"]
        );
    } else {
        println!("  flapping:     no");
    }
    println!("  history:");
    let events: Vec<Event> = serde_json::from_value(body["events"].clone())?;
    for e in &events {
        println!("  {}", describe(e));
        if let Some(fate) = fate_in(e, fingerprint) {
            println!("      {fate}");
        }
    }
    Ok(())
}

fn from_data_dir(args: &WhyArgs) -> anyhow::Result<()> {
    let log = args.config.open_log()?;
    let mut events = log.read(&EventQuery {
        key: Some(args.fingerprint.clone()),
        ..Default::default()
    })?;
    events.extend(log.read(&EventQuery {
        kinds: vec!["notification.due".into()],
        mentions: Some(args.fingerprint.clone()),
        ..Default::default()
    })?);
    events.sort_by_key(|e| e.seq);
    if events.is_empty() {
        bail!(
            "no event about alert {} in {}",
            args.fingerprint,
            log.path().display()
        );
    }
    println!(
        "alert {} — history (ask --server for current mute reasons):",
        args.fingerprint
    );
    for e in &events {
        println!("  {}", describe(e));
        if let Some(fate) = fate_in(e, &args.fingerprint) {
            println!("      {fate}");
        }
    }
    // A symptom muted from the start may be in no notification: what
    // inhibits it as of the log's last event, from the views rebuilt
    // from the log and the config's inhibit rules.
    let routing = args
        .config
        .load()?
        .routing()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    if !routing.inhibit_rules.is_empty() {
        let views = crate::pipeline::Views::new();
        crate::eventlog::replay(&log, &views.projections(), |_, _| {})?;
        let last = log.read_range(log.last_seq().saturating_sub(1), log.last_seq())?;
        if let Some(now) = last.first().map(|e| e.occurred_at)
            && let Some(why) = inhibited_as_of(&views, &routing, &args.fingerprint, now)
        {
            println!("  as of the log's last event ({}): {why}", now.to_rfc3339());
        }
    }
    Ok(())
}

/// Why the firing alert `fingerprint` is inhibited at `now` in `views`
/// under `routing` (topology joins included); `None` when it is not firing
/// or not inhibited.
pub fn inhibited_as_of(
    views: &crate::pipeline::Views,
    routing: &crate::config::Routing,
    fingerprint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let alert = views
        .alerts
        .get(crate::evaluate::Fingerprint::parse(fingerprint)?)?;
    if !alert.firing_at(now) {
        return None;
    }
    let since = now - crate::evaluate::inhibit::longest_grace(&routing.inhibit_rules);
    let all = views
        .alerts
        .filtered(|a| a.firing_at(now) || a.ends_at.is_some_and(|e| e > since && e <= now));
    let fps: Vec<String> = all.iter().map(|(f, _)| f.to_string()).collect();
    let joins = crate::evaluate::topology::Joins {
        topology: views.topology.clone(),
        releases: views.releases.clone(),
        config: routing.topology.clone(),
    };
    let found = crate::evaluate::inhibit::inhibitions_at(
        &routing.inhibit_rules,
        (fingerprint, &alert.report.labels),
        all.iter()
            .zip(&fps)
            .map(|((_, a), f)| crate::evaluate::inhibit::Source {
                fingerprint: f,
                labels: &a.report.labels,
                resolved_at: if a.firing_at(now) { None } else { a.ends_at },
            }),
        now,
        Some(&joins),
    );
    (!found.is_empty()).then(|| {
        let reasons: Vec<String> = found.iter().map(ToString::to_string).collect();
        format!("inhibited by {}", reasons.join("; "))
    })
}

/// What a notification decided about `fingerprint`: why it was left out
/// (its mute reasons), or whose symptom it was; `None` when it was listed
/// (or the event is no notification).
pub fn fate_in(event: &Event, fingerprint: &str) -> Option<String> {
    let crate::eventlog::EventKind::NotificationDue(n) = &event.kind else {
        return None;
    };
    if let Some(s) = n.symptoms.iter().find(|s| s.fingerprint == fingerprint) {
        return Some(format!(
            "not paged on its own: a symptom of {} through {}, summarised in its page",
            s.cause, s.through
        ));
    }
    if let Some(at) = n.digest_at
        && !n.update_in_place
        && n.resolved.iter().any(|fp| fp == fingerprint)
    {
        return Some(format!(
            "resolve not paged on its own: held for {}'s digest of resolved alerts at {} \
             (pages.resolved: digest)",
            n.group.receiver,
            at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    n.muted
        .get(fingerprint)
        .map(|why| format!("not paged: muted by {}", why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::{EventKind, GroupRef, NotificationDue, Symptom};

    /// Each notification's fate of an alert, in words: a symptom of a
    /// cause, muted and why, or nothing (listed, or not in it).
    #[test]
    fn a_notification_says_why_an_alert_was_not_paged() {
        let at = "2026-11-26T03:00:00Z".parse().unwrap();
        let due = NotificationDue {
            group: GroupRef {
                group: "g".into(),
                route: "0".into(),
                receiver: "oncall".into(),
                group_key: "{}:{}".into(),
                group_labels: Default::default(),
            },
            firing: vec!["node".into()],
            resolved: vec![],
            new: vec!["node".into()],
            repeat: false,
            muted: [
                (
                    "pod".to_string(),
                    vec!["node through node-7 placement".to_string()],
                ),
                ("quiet".to_string(), vec!["silence-1".to_string()]),
            ]
            .into(),
            escalation: None,
            to: vec![],
            flapping: vec![],
            changes_only: false,
            update_in_place: false,
            symptoms: vec![Symptom {
                fingerprint: "pod".into(),
                cause: "node".into(),
                through: "node-7 placement".into(),
                kind: "pod".into(),
                new: false,
            }],
            digest_at: None,
        };
        let event = Event {
            seq: 1,
            id: "e1".into(),
            occurred_at: at,
            recorded_at: at,
            source: "fenghuo".into(),
            key: "g".into(),
            idempotency_key: None,
            kind: EventKind::NotificationDue(due),
        };
        // (fingerprint, its fate)
        let rows = [
            (
                "pod",
                Some(
                    "not paged on its own: a symptom of node through node-7 placement, summarised in its page",
                ),
            ),
            ("quiet", Some("not paged: muted by silence-1")),
            ("node", None),
            ("absent", None),
        ];
        for (fp, want) in rows {
            assert_eq!(fate_in(&event, fp).as_deref(), want, "{fp}");
        }
        // A resolve held for the digest says when it goes out.
        let mut held = event.clone();
        if let EventKind::NotificationDue(n) = &mut held.kind {
            n.resolved = vec!["gone".into()];
            n.digest_at = Some("2026-11-26T04:00:00Z".parse().unwrap());
        }
        assert_eq!(
            fate_in(&held, "gone").as_deref(),
            Some(
                "resolve not paged on its own: held for oncall's digest of resolved alerts at \
                 2026-11-26 04:00 UTC (pages.resolved: digest)"
            )
        );
    }
}
