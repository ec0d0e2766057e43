//! `fenghuo template render`: what a receiver would send, printed instead
//! of sent — for every integration of the receiver, from a sample.
//!
//! The sample is an Alertmanager webhook body (what Alertmanager would have
//! sent; `tests/fixtures/` has real ones), a JSON array of alerts as posted
//! to `/api/v2/alerts`, or, without `--sample`, a built-in one.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ConfigArgs;
use crate::eventlog::event::LabelSet;
use crate::notify::outbox::{alert_data, finish_message};
use crate::notify::{Message, Templates};

#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    pub command: TemplateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TemplateCommand {
    /// Print what a receiver would send for a sample of alerts.
    Render(RenderArgs),
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The receiver, as named in `receivers:`.
    #[arg(long)]
    pub receiver: String,
    /// A JSON file: an Alertmanager webhook body or an array of alerts.
    #[arg(long)]
    pub sample: Option<PathBuf>,
}

pub fn run(args: TemplateArgs) -> anyhow::Result<()> {
    match args.command {
        TemplateCommand::Render(args) => render(args),
    }
}

fn render(args: RenderArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let receivers = config
        .receivers()
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let Some(receiver) = receivers.get(&args.receiver) else {
        let known: Vec<&String> = receivers.by_name.keys().collect();
        anyhow::bail!(
            "no receiver named {:?} (configured: {known:?})",
            args.receiver
        );
    };
    // The one place the CLI reads the wall clock: "since" and signatures of
    // a preview are about now.
    let now = Utc::now();
    let mut msg = match &args.sample {
        Some(path) => {
            let text =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            sample_message(&text, now).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Templates::sample_message(),
    };
    msg.receiver = receiver.name.clone();
    if msg.external_url.is_empty() {
        msg.external_url = config.notify.external_url.clone();
    }
    if receiver.integrations.is_empty() {
        println!(
            "receiver {:?} has no integrations: nothing would be sent",
            receiver.name
        );
    }
    for integration in &receiver.integrations {
        let rendered = integration.notifier.render(&msg, &receivers.templates, now);
        println!("=== {} {} ===", receiver.name, integration.id);
        if let Some(reason) = &rendered.fallback {
            println!("(the receiver's template failed; the default was used: {reason})");
        }
        println!("{}", rendered.payload.preview());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SampleAlert {
    #[serde(default)]
    status: Option<String>,
    labels: LabelSet,
    #[serde(default)]
    annotations: LabelSet,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SampleWebhook {
    alerts: Vec<SampleAlert>,
    #[serde(default)]
    group_labels: LabelSet,
    #[serde(default)]
    group_key: String,
    #[serde(default, rename = "externalURL")]
    external_url: String,
}

/// A sample file as a message.
pub fn sample_message(text: &[u8], now: DateTime<Utc>) -> Result<Message, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let webhook: SampleWebhook = if value.is_array() {
        SampleWebhook {
            alerts: serde_json::from_value(value).map_err(|e| format!("alerts: {e}"))?,
            group_labels: LabelSet::new(),
            group_key: String::new(),
            external_url: String::new(),
        }
    } else {
        serde_json::from_value(value).map_err(|e| format!("webhook body: {e}"))?
    };
    let alerts = webhook
        .alerts
        .iter()
        .map(|a| {
            let starts_at = a.starts_at.unwrap_or(now);
            // Go's zero time means "no end".
            let ends_at = a.ends_at.filter(|t| t.timestamp() > 0);
            let firing = match a.status.as_deref() {
                Some(s) => s == "firing",
                None => ends_at.is_none_or(|t| t > now),
            };
            let fp = crate::evaluate::Fingerprint::of(&a.labels).to_string();
            alert_data(
                &fp,
                &a.labels,
                &a.annotations,
                starts_at,
                ends_at,
                &a.generator_url,
                firing,
                false,
                now,
            )
        })
        .collect();
    Ok(finish_message(
        "",
        webhook.group_key,
        webhook.group_labels,
        alerts,
        false,
        &webhook.external_url,
        Vec::new(),
    ))
}
