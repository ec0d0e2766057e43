//! `fenghuo events`: print the log, from a data directory or a running
//! server, optionally following it live.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;

use super::ConfigArgs;
use crate::eventlog::{Event, EventKind, EventQuery};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Read from a running server instead of the data directory.
    #[arg(long, env = "FENGHUO_SERVER")]
    pub server: Option<String>,
    /// Start after this seq.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Print at most this many (without --follow).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only these kinds (repeatable), e.g. alert.received.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only events about this key (an alert fingerprint, …).
    #[arg(long)]
    pub key: Option<String>,
    /// Keep printing new events as they are committed.
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EventsArgs) -> anyhow::Result<()> {
    for k in &args.kinds {
        if !EventKind::NAMES.contains(&k.as_str()) {
            bail!("unknown kind {k:?}; known: {}", EventKind::NAMES.join(", "));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match &args.server {
        Some(server) => rt.block_on(from_server(server.trim_end_matches('/'), &args)),
        None => rt.block_on(from_data_dir(&args)),
    }
}

/// One line per event: seq, time, kind, key, and what it says.
pub fn describe(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::AlertReceived(r) => {
            let name = r.labels.get("alertname").unwrap_or("");
            let rest: Vec<String> = r
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            format!(
                "{name} {{{}}} firing since {}",
                rest.join(", "),
                r.starts_at.to_rfc3339()
            )
        }
        EventKind::AlertFired { .. } => "fired: routed and grouped from here on".to_string(),
        EventKind::AlertResolved(r) => {
            format!("resolved at {} ({})", r.ends_at.to_rfc3339(), r.reason)
        }
        EventKind::AlertRefreshed { leases } => {
            let n: usize = leases.iter().map(|l| l.fingerprints.len()).sum();
            format!("{n} alerts' endsAt extended")
        }
        EventKind::AlertAcked { by, .. } => format!("acknowledged by {by}"),
        EventKind::AlertFlappingStarted(f) => format!(
            "flapping: {} state changes within {}s; paged again after {}s stable",
            f.changes, f.window_secs, f.stable_secs
        ),
        EventKind::AlertFlappingStopped(f) => format!(
            "stopped flapping: {} for {}s",
            if f.firing { "firing" } else { "resolved" },
            f.stable_secs
        ),
        EventKind::EscalationStepped(st) => {
            let mut line = format!(
                "incident {} {} {} step {}: {}",
                st.incident, st.policy, st.action, st.step, st.reason
            );
            if !st.people.is_empty() {
                line.push_str(&format!(" → {}", st.people.join(", ")));
            }
            if let Some(next) = st.next_at {
                line.push_str(&format!("; next at {}", next.to_rfc3339()));
            }
            line
        }
        EventKind::IncidentAcknowledged(a) => {
            format!(
                "incident {} acknowledged by {} via {}",
                a.incident, a.by, a.via
            )
        }
        EventKind::IncidentUnacknowledged(a) => format!(
            "incident {} unacknowledged by {} via {}{}",
            a.incident,
            a.by,
            a.via,
            if a.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.reason)
            }
        ),
        EventKind::IncidentResolved(a) => {
            format!("incident {} resolved by {} via {}", a.incident, a.by, a.via)
        }
        EventKind::IncidentSnoozed(a) => format!(
            "incident {} snoozed by {} until {}",
            a.incident,
            a.by,
            a.until.map(|u| u.to_rfc3339()).unwrap_or_default()
        ),
        EventKind::SilenceCreated(s) | EventKind::SilenceUpdated(s) => {
            let matchers: Vec<String> = s
                .matchers
                .iter()
                .map(|m| {
                    let op = match (m.is_regex, m.is_equal) {
                        (false, true) => "=",
                        (false, false) => "!=",
                        (true, true) => "=~",
                        (true, false) => "!~",
                    };
                    format!("{}{op}{:?}", m.name, m.value)
                })
                .collect();
            format!(
                "{{{}}} until {} by {}: {}",
                matchers.join(", "),
                s.ends_at.to_rfc3339(),
                s.created_by,
                s.comment
            )
        }
        EventKind::SilenceExpired { ends_at, .. } => format!("expired at {}", ends_at.to_rfc3339()),
        EventKind::GroupScheduled(t) => format!(
            "{} to {}: next flush at {} ({})",
            t.group.group_key,
            t.group.receiver,
            t.due_at.to_rfc3339(),
            t.reason
        ),
        EventKind::GroupClosed(g) => {
            format!("{} to {}: closed, no alerts left", g.group_key, g.receiver)
        }
        EventKind::NotificationDue(n) => format!(
            "{} to {}: {} firing ({} new), {} resolved{}{}{}",
            n.group.group_key,
            n.group.receiver,
            n.firing.len(),
            n.new.len(),
            n.resolved.len(),
            if n.repeat { ", repeat" } else { "" },
            if n.muted.is_empty() {
                String::new()
            } else {
                let flapping = n
                    .muted
                    .values()
                    .filter(|why| why.iter().any(|w| w == crate::evaluate::flap::FLAPPING))
                    .count();
                match flapping {
                    0 => format!(", {} muted", n.muted.len()),
                    f => format!(", {} muted ({f} flapping)", n.muted.len()),
                }
            },
            if n.flapping.is_empty() {
                String::new()
            } else {
                format!(", flapping notice for {}", n.flapping.join(", "))
            }
        ),
        EventKind::NotificationSent(d) => format!(
            "{} {}: sent (attempt {}, {} in {} ms){}{}",
            d.target.receiver,
            d.target.integration,
            d.attempt,
            d.status,
            d.latency_ms,
            if d.digest {
                format!(", digest of {} notifications", d.target.due_seqs.len())
            } else {
                String::new()
            },
            d.template_fallback
                .as_ref()
                .map(|r| format!(", default template used: {r}"))
                .unwrap_or_default()
        ),
        EventKind::NotificationFailed(d) => format!(
            "{} {}: attempt {} failed: {}{}",
            d.target.receiver,
            d.target.integration,
            d.attempt,
            d.reason,
            match (&d.retry_at, &d.fallback) {
                (Some(at), _) => format!("; retry at {}", at.to_rfc3339()),
                (None, Some(f)) => format!("; gave up, handed to {f}"),
                (None, None) => "; gave up".to_string(),
            }
        ),
        EventKind::NotificationSkipped(d) => format!(
            "{} {}: not sent: {}",
            d.target.receiver, d.target.integration, d.reason
        ),
        EventKind::K8sEvent(k) => format!(
            "{} {}/{} {} {}: {} (x{})",
            k.event_type,
            k.namespace,
            k.involved_object.name,
            k.involved_object.kind,
            k.reason,
            k.message,
            k.count
        ),
        EventKind::ProbeResult(p) => format!(
            "{} {} {}{}",
            p.probe,
            p.target,
            if p.ok { "ok" } else { "failed" },
            p.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        EventKind::HeartbeatReceived(h) => format!("heartbeat {}", h.name),
        EventKind::RulesLoaded(l) => format!(
            "{} rules ({} files) hash {} by {}",
            l.rules,
            l.files.len(),
            l.hash,
            l.by
        ),
        EventKind::K8sWatchProgressed(w) => format!(
            "watch of {}/{} at resourceVersion {} ({})",
            w.cluster,
            if w.namespace.is_empty() {
                "*"
            } else {
                &w.namespace
            },
            w.resource_version,
            w.by
        ),
        EventKind::ReleaseRecorded(r) => format!(
            "release {} of {} {} {} version {} by {}",
            r.id, r.app, r.env, r.cluster, r.version, r.by
        ),
        EventKind::ReleaseStatusChanged(s) => format!("release {} {}", s.id, s.status),
        EventKind::ReleaseGateDecided(g) => format!(
            "gate {} {} {}: {}{}",
            g.app,
            g.env,
            g.cluster,
            if g.allowed { "allow" } else { "deny" },
            if g.reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", g.reasons.join("; "))
            }
        ),
        EventKind::ReleaseSuspected(s) => format!(
            "suspected of release {}: {}",
            s.release,
            crate::act::release::suspicion_note(s)
        ),
        EventKind::RemediationDue(d) => format!(
            "remediation {} due: {} {}{} ({})",
            d.id,
            d.request.method,
            d.request.url,
            if d.require_ack {
                ", waits for approval"
            } else {
                ""
            },
            d.reason
        ),
        EventKind::RemediationApproved(a) => {
            format!("remediation {} approved by {} via {}", a.id, a.by, a.via)
        }
        EventKind::RemediationDryRun(d) => format!(
            "remediation {} dry run: would call {} {}",
            d.id, d.request.method, d.request.url
        ),
        EventKind::RemediationRefused(r) => {
            format!("remediation {} refused: {}", r.id, r.reason)
        }
        EventKind::RemediationSucceeded(c) => format!(
            "remediation {} attempt {} answered {} in {} ms",
            c.id,
            c.attempt,
            c.status.unwrap_or(0),
            c.latency_ms
        ),
        EventKind::RemediationFailed(c) => format!(
            "remediation {} attempt {} failed: {}{}",
            c.id,
            c.attempt,
            c.error,
            if c.gave_up { " (gave up)" } else { "" }
        ),
    };
    format!(
        "{:>8}  {}  {:<15} {:<16} {:<12} {}",
        e.seq,
        e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        e.kind.name(),
        e.key,
        e.source,
        what
    )
}

fn print(e: &Event, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, e)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", describe(e))?;
    }
    Ok(())
}

async fn from_data_dir(args: &EventsArgs) -> anyhow::Result<()> {
    let log = args.config.open_log()?;
    let mut after = args.after;
    let mut left = args.limit.unwrap_or(usize::MAX);
    loop {
        let query = EventQuery {
            after,
            limit: left.min(1000),
            kinds: args.kinds.clone(),
            key: args.key.clone(),
            ..Default::default()
        };
        let l = log.clone();
        let page = tokio::task::spawn_blocking(move || l.read(&query)).await??;
        // Filters skip events, so continue from the newest seq seen.
        if let Some(last) = page.last() {
            after = last.seq;
        }
        left = left.saturating_sub(page.len());
        for e in &page {
            print(e, args.json)?;
        }
        if left == 0 {
            return Ok(());
        }
        if page.is_empty() {
            if !args.follow {
                return Ok(());
            }
            // Another process writes this file: poll it.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn from_server(server: &str, args: &EventsArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut after = args.after;
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut filters: Vec<(&str, String)> = Vec::new();
    if !args.kinds.is_empty() {
        filters.push(("kind", args.kinds.join(",")));
    }
    if let Some(k) = &args.key {
        filters.push(("key", k.clone()));
    }
    loop {
        let mut q = filters.clone();
        q.push(("after", after.to_string()));
        q.push(("limit", left.min(1000).to_string()));
        let resp = client
            .get(format!("{server}/api/v1/events"))
            .query(&q)
            .send()
            .await
            .with_context(|| format!("reading {server}"))?;
        if !resp.status().is_success() {
            bail!(
                "{server} answered {}: {}",
                resp.status(),
                resp.text().await?
            );
        }
        let page: serde_json::Value = resp.json().await?;
        let events: Vec<Event> = serde_json::from_value(page["events"].clone())?;
        for e in &events {
            print(e, args.json)?;
        }
        left = left.saturating_sub(events.len());
        after = page["next_after"].as_u64().unwrap_or(after);
        if events.is_empty() || left == 0 {
            break;
        }
    }
    if !args.follow || left == 0 {
        return Ok(());
    }
    let mut q = filters;
    q.push(("after", after.to_string()));
    let resp = client
        .get(format!("{server}/api/v1/events/stream"))
        .query(&q)
        .send()
        .await?
        .error_for_status()?;
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        // SSE messages end with a blank line; `data:` carries the event.
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            for line in message.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(e) = serde_json::from_str::<Event>(data.trim_start())
                {
                    print(&e, args.json)?;
                }
            }
        }
    }
    Ok(())
}
