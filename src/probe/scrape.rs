//! A `scrape` probe, run once: fetch a Prometheus text-format endpoint,
//! parse it with `prometheus-parse`, and take the configured series as
//! values (`values.up`, `values.process_resident_memory_bytes`) for rules
//! to threshold. Pure of scheduling and of storing: it answers an
//! [`Outcome`].
//!
//! Selecting: a value is the sum of the samples named `metric` whose
//! labels include the configured ones. Histogram buckets are selected as
//! `<name>_bucket` with an `le` label, summary quantiles as `<name>` with
//! a `quantile` label (both compared as numbers, so `le: "0.5"` finds
//! `le="0.5"` and `+Inf` works); `_sum` and `_count` by their names.
//!
//! Label values are unescaped (`\\`, `\"`, `\n`), which prometheus-parse
//! leaves as written. Known limit of prometheus-parse 0.2: it splits label
//! pairs on `,` and `=` without honouring quotes, and skips a sample whose
//! label value holds `}`; selecting on such a label value finds nothing
//! (the value is reported missing).

use std::collections::BTreeMap;
use std::time::Instant;

use super::Outcome;
use super::config::{ScrapeCheck, SeriesValue};
use super::http;

/// The largest exposition read (a node exporter answers ~100 KiB).
pub const MAX_SCRAPE: usize = 16 << 20;

/// Runs `check` once.
pub async fn run(client: &reqwest::Client, check: &ScrapeCheck) -> Outcome {
    let started = Instant::now();
    let (mut response, _) = match http::send(client, &check.request).await {
        Ok(r) => r,
        Err(error) => return Outcome::failed(started.elapsed(), None, error),
    };
    let status = response.status();
    let code = Some(status.as_u16());
    if !status.is_success() {
        return Outcome::failed(
            started.elapsed(),
            code,
            format!("status {status}, expected 2xx"),
        );
    }
    let body = match http::read_body(&mut response, MAX_SCRAPE + 1).await {
        Ok(b) if b.len() > MAX_SCRAPE => {
            return Outcome::failed(
                started.elapsed(),
                code,
                format!("exposition larger than {MAX_SCRAPE} bytes"),
            );
        }
        Ok(b) => b,
        Err(error) => return Outcome::failed(started.elapsed(), code, error),
    };
    let latency = started.elapsed();
    let text = String::from_utf8_lossy(&body);
    match extract(&text, &check.values) {
        Ok((values, missing)) => Outcome {
            ok: true,
            latency,
            status: code,
            values,
            error: (!missing.is_empty())
                .then(|| format!("series not found: {}", missing.join(", "))),
        },
        Err(error) => Outcome::failed(latency, code, error),
    }
}

/// The configured values found in `text`, and the names of those not found
/// (or not finite: NaN has no place in a JSON payload).
pub fn extract(
    text: &str,
    wanted: &[SeriesValue],
) -> Result<(BTreeMap<String, f64>, Vec<String>), String> {
    // The timestamp is unused: samples are taken as of the probe's run.
    let scrape = prometheus_parse::Scrape::parse_at(
        text.lines().map(|l| Ok(l.to_string())),
        chrono::DateTime::UNIX_EPOCH,
    )
    .map_err(|e| format!("parsing the exposition: {e}"))?;
    if scrape.samples.is_empty() {
        return Err("no samples in the response: is it the Prometheus text format?".into());
    }
    let flat = flatten(&scrape.samples);
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for want in wanted {
        let mut found = false;
        let mut sum = 0.0;
        for (name, labels, value) in &flat {
            if *name == want.metric
                && want
                    .labels
                    .iter()
                    .all(|(k, v)| labels.get(k.as_str()).is_some_and(|got| same(k, v, got)))
            {
                found = true;
                sum += value;
            }
        }
        if found && sum.is_finite() {
            values.insert(want.name.clone(), sum);
        } else {
            missing.push(want.name.clone());
        }
    }
    Ok((values, missing))
}

type Flat<'a> = (String, BTreeMap<&'a str, String>, f64);

/// Each sample as (name, labels, value), buckets and quantiles as their own
/// series, the way they are written in the exposition.
fn flatten(samples: &[prometheus_parse::Sample]) -> Vec<Flat<'_>> {
    use prometheus_parse::Value;
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let labels: BTreeMap<&str, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), unescape(v)))
            .collect();
        match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                out.push((s.metric.clone(), labels, *v))
            }
            Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = labels.clone();
                    l.insert("le", b.less_than.to_string());
                    out.push((format!("{}_bucket", s.metric), l, b.count));
                }
            }
            Value::Summary(quantiles) => {
                for q in quantiles {
                    let mut l = labels.clone();
                    l.insert("quantile", q.quantile.to_string());
                    out.push((s.metric.clone(), l, q.count));
                }
            }
        }
    }
    out
}

/// A label value as written in the exposition (`\\`, `\"`, `\n`
/// escaped), as meant: prometheus-parse leaves the escapes in.
fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) | ('\\', Some('"')) => {
                out.push(chars.next().expect("peeked"));
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Label values equal; `le` and `quantile` as numbers (`0.50` is `0.5`,
/// `+Inf` is infinity).
fn same(label: &str, want: &str, got: &str) -> bool {
    if matches!(label, "le" | "quantile") {
        let num = |s: &str| match s.trim() {
            "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
            "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
            s => s.parse::<f64>().ok(),
        };
        if let (Some(a), Some(b)) = (num(want), num(got)) {
            return a == b;
        }
    }
    want == got
}
