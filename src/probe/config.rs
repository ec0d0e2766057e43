//! The `probes:` section of `fenghuo.yaml`: what to probe, how and when.
//!
//! Each probe is read from a flat mapping (`type:` says which fields apply)
//! and checked while it is read, so a mistake (an unknown field, a field of
//! another type, a bad URL, regex, duration or cron expression) refuses the
//! whole config with the file, line and column yaml_serde reports. This
//! module only describes probes; it never runs one.

use std::collections::BTreeMap;
use std::fmt;

use chrono::Duration;
use serde::Deserialize;

use super::schedule::Every;
use crate::config::PromDuration;
use crate::eventlog::LabelSet;
use crate::notify::secret::Secret;

/// How long a probe may take when `timeout:` is not given.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often an unchanged probe stores a summary when `summary_every:` is
/// not given (see `compact`).
pub const DEFAULT_SUMMARY_EVERY: i64 = 600;
/// The least time between two results stored because values moved, when
/// `value_interval:` is not given (see `compact`).
pub const DEFAULT_VALUE_INTERVAL: i64 = 60;
/// How far a value must move, relative to the last stored one, to be
/// stored again when `tolerance:` is not given.
pub const DEFAULT_TOLERANCE: f64 = 0.01;

/// One configured probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawProbe")]
pub struct ProbeConfig {
    pub name: String,
    pub schedule: Every,
    pub timeout: std::time::Duration,
    /// Copied into each result's `labels` (`service`, `team`, …).
    pub labels: LabelSet,
    /// At least one result per this period, even when nothing changed.
    pub summary_every: Duration,
    /// Relative change of a value that is stored (0: any change).
    pub tolerance: f64,
    /// At most one result stored for moved values per this period.
    pub value_interval: Duration,
    pub check: Check,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Scrape(ScrapeCheck),
}

impl Check {
    /// `http`, `tcp` or `scrape`: the result's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Tcp(_) => "tcp",
            Check::Scrape(_) => "scrape",
        }
    }
}

/// An HTTP request and what its answer must look like.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub request: HttpRequest,
    /// Status codes that count as up; empty: any 2xx.
    pub expect_status: Vec<u16>,
    /// The body must match this.
    pub body_regex: Option<Pattern>,
}

/// The request of an `http` or `scrape` probe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    /// Values are secrets (`Authorization`): never logged, stored or shown.
    pub headers: BTreeMap<String, Secret>,
    pub body: Option<String>,
    pub tls_verify: bool,
}

impl HttpRequest {
    /// The URL as results show it: without a password.
    pub fn target(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        url.to_string()
    }
}

/// A TCP connect, optionally followed by a line sent and an answer expected.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
    pub send: Option<String>,
    pub expect: Option<Pattern>,
}

/// A Prometheus text-format endpoint and the series taken from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeCheck {
    pub request: HttpRequest,
    pub values: Vec<SeriesValue>,
}

/// One value a scrape extracts: the sum of the samples of `metric` whose
/// labels include `labels`, stored as `values.<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawSeries")]
pub struct SeriesValue {
    pub name: String,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSeries {
    Metric(String),
    Selector(RawSelector),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    name: Option<String>,
    metric: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl From<RawSeries> for SeriesValue {
    fn from(raw: RawSeries) -> Self {
        match raw {
            RawSeries::Metric(metric) => SeriesValue {
                name: metric.clone(),
                metric,
                labels: BTreeMap::new(),
            },
            RawSeries::Selector(s) => SeriesValue {
                name: s.name.unwrap_or_else(|| s.metric.clone()),
                metric: s.metric,
                labels: s.labels,
            },
        }
    }
}

/// A compiled regex that compares by its source (configs are compared on
/// reload).
#[derive(Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

/// The mapping as written. Every field of every type is here, so that
/// `deny_unknown_fields` catches misspellings; which apply is checked in
/// `TryFrom`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: String,
    #[serde(rename = "type")]
    probe_type: String,
    every: Option<PromDuration>,
    cron: Option<String>,
    timeout: Option<PromDuration>,
    #[serde(default)]
    labels: LabelSet,
    summary_every: Option<PromDuration>,
    tolerance: Option<f64>,
    value_interval: Option<PromDuration>,
    // http and scrape
    url: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
    body: Option<String>,
    tls_verify: Option<bool>,
    // http
    #[serde(default)]
    expect_status: Vec<u16>,
    body_regex: Option<String>,
    // tcp
    address: Option<String>,
    send: Option<String>,
    expect: Option<String>,
    // scrape
    #[serde(default)]
    values: Vec<SeriesValue>,
}

impl TryFrom<RawProbe> for ProbeConfig {
    type Error = String;

    fn try_from(raw: RawProbe) -> Result<Self, String> {
        let name = raw.name.clone();
        let fail = |what: String| format!("probe {name:?}: {what}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        {
            return Err(fail(
                "name: use letters, digits, '.', '_', '-', ':' (at least one)".into(),
            ));
        }
        let schedule = match (&raw.every, &raw.cron) {
            (Some(every), None) => Every::interval(every.0).map_err(fail)?,
            (None, Some(cron)) => Every::cron(cron).map_err(fail)?,
            (None, None) => return Err(fail("needs `every:` (e.g. 30s) or `cron:`".into())),
            (Some(_), Some(_)) => return Err(fail("give `every:` or `cron:`, not both".into())),
        };
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) if t.0 <= Duration::zero() => {
                return Err(fail("timeout: must be more than 0s".into()));
            }
            Some(t) => t.0.to_std().map_err(|e| fail(format!("timeout: {e}")))?,
        };
        if let Some(interval) = schedule.interval_of()
            && timeout > interval.to_std().unwrap_or_default()
        {
            return Err(fail(format!(
                "timeout {} is longer than `every: {}`: runs would overlap",
                PromDuration(Duration::from_std(timeout).unwrap_or_default()),
                PromDuration(interval)
            )));
        }
        let summary_every = raw
            .summary_every
            .map_or(Duration::seconds(DEFAULT_SUMMARY_EVERY), |d| d.0);
        if summary_every <= Duration::zero() {
            return Err(fail("summary_every: must be more than 0s".into()));
        }
        let value_interval = raw
            .value_interval
            .map_or(Duration::seconds(DEFAULT_VALUE_INTERVAL), |d| d.0);
        if value_interval < Duration::zero() {
            return Err(fail("value_interval: must be 0s or more".into()));
        }
        let tolerance = raw.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if !(0.0..=1.0).contains(&tolerance) {
            return Err(fail(
                "tolerance: a relative change between 0 and 1 (0.01 is 1%)".into(),
            ));
        }
        crate::ingest::validate::names(&raw.labels, "labels")
            .map_err(|e| fail(format!("{}: {}", e.field, e.message)))?;

        // Fields that belong to another type are mistakes, not no-ops.
        let given: [(&str, bool); 11] = [
            ("url", raw.url.is_some()),
            ("method", raw.method.is_some()),
            ("headers", !raw.headers.is_empty()),
            ("body", raw.body.is_some()),
            ("tls_verify", raw.tls_verify.is_some()),
            ("expect_status", !raw.expect_status.is_empty()),
            ("body_regex", raw.body_regex.is_some()),
            ("address", raw.address.is_some()),
            ("send", raw.send.is_some()),
            ("expect", raw.expect.is_some()),
            ("values", !raw.values.is_empty()),
        ];
        let allowed: &[&str] = match raw.probe_type.as_str() {
            "http" => &[
                "url",
                "method",
                "headers",
                "body",
                "tls_verify",
                "expect_status",
                "body_regex",
            ],
            "tcp" => &["address", "send", "expect"],
            "scrape" => &["url", "method", "headers", "body", "tls_verify", "values"],
            other => {
                return Err(fail(format!(
                    "type: {other:?} is not a probe type (http, tcp, scrape)"
                )));
            }
        };
        if let Some((field, _)) = given
            .iter()
            .find(|(field, set)| *set && !allowed.contains(field))
        {
            return Err(fail(format!(
                "`{field}` does not apply to a {} probe",
                raw.probe_type
            )));
        }

        let pattern = |field: &str, text: &Option<String>| -> Result<Option<Pattern>, String> {
            text.as_deref()
                .map(|t| {
                    regex::Regex::new(t)
                        .map(Pattern)
                        .map_err(|e| fail(format!("{field}: {e}")))
                })
                .transpose()
        };
        let request = |raw: &RawProbe| -> Result<HttpRequest, String> {
            let url = raw
                .url
                .as_deref()
                .ok_or_else(|| fail("needs `url:`".into()))?;
            let url = reqwest::Url::parse(url).map_err(|e| fail(format!("url: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(fail(format!(
                    "url: scheme {:?} is not http or https",
                    url.scheme()
                )));
            }
            let method = raw.method.as_deref().unwrap_or("GET");
            let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| fail(format!("method: {method:?} is not an HTTP method")))?;
            for (header, value) in &raw.headers {
                reqwest::header::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| fail(format!("headers: {header:?} is not a header name")))?;
                // The value is a secret: say which header, never what it holds.
                reqwest::header::HeaderValue::from_str(value.expose())
                    .map_err(|_| fail(format!("headers.{header}: not a valid header value")))?;
            }
            Ok(HttpRequest {
                method,
                url,
                headers: raw.headers.clone(),
                body: raw.body.clone(),
                tls_verify: raw.tls_verify.unwrap_or(true),
            })
        };
        let check = match raw.probe_type.as_str() {
            "http" => {
                if let Some(bad) = raw.expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                    return Err(fail(format!("expect_status: {bad} is not an HTTP status")));
                }
                Check::Http(HttpCheck {
                    request: request(&raw)?,
                    expect_status: raw.expect_status.clone(),
                    body_regex: pattern("body_regex", &raw.body_regex)?,
                })
            }
            "tcp" => {
                let address = raw
                    .address
                    .clone()
                    .ok_or_else(|| fail("needs `address:` (host:port)".into()))?;
                match address.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                    _ => return Err(fail(format!("address: {address:?} is not host:port"))),
                }
                Check::Tcp(TcpCheck {
                    address,
                    send: raw.send.clone(),
                    expect: pattern("expect", &raw.expect)?,
                })
            }
            _ => {
                if raw.values.is_empty() {
                    return Err(fail(
                        "needs `values:`, the series to extract (e.g. [up, process_resident_memory_bytes])"
                            .into(),
                    ));
                }
                let mut seen = std::collections::BTreeSet::new();
                for v in &raw.values {
                    if !seen.insert(v.name.as_str()) {
                        return Err(fail(format!("values: {:?} is named twice", v.name)));
                    }
                }
                Check::Scrape(ScrapeCheck {
                    request: request(&raw)?,
                    values: raw.values.clone(),
                })
            }
        };
        Ok(ProbeConfig {
            name: raw.name,
            schedule,
            timeout,
            labels: raw.labels,
            summary_every,
            tolerance,
            value_interval,
            check,
        })
    }
}

/// The names of `probes` are unique: results are keyed by them.
pub fn check_names(probes: &[ProbeConfig]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for p in probes {
        if !seen.insert(p.name.as_str()) {
            return Err(format!("probes: {:?} is defined twice", p.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const GOOD: &str = r#"
probes:
  - name: api
    type: http
    every: 30s
    timeout: 5s
    labels: { service: api }
    url: https://user:hunter2@api.internal/healthz
    headers: { Authorization: "Bearer s3cr3t" }
    expect_status: [200, 204]
    body_regex: '"status":\s*"ok"'
  - name: db
    type: tcp
    cron: "*/5 * * * *"
    address: db.internal:5432
  - name: node
    type: scrape
    every: 15s
    url: http://node.internal:9100/metrics
    values:
      - up
      - { name: root_free, metric: node_filesystem_free_bytes, labels: { mountpoint: / } }
"#;

    #[test]
    fn a_probes_section_loads() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.probes.len(), 3);
        let api = &config.probes[0];
        let super::Check::Http(http) = &api.check else {
            panic!("http")
        };
        assert_eq!(http.expect_status, vec![200, 204]);
        // The target shown in results has no password.
        assert_eq!(http.request.target(), "https://user@api.internal/healthz");
        // Header values never show in Debug output (logs).
        let shown = format!("{:?}", config.probes);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        // Nor in the redacted config of /api/v2/status.
        let redacted = config.redacted();
        assert!(!redacted.contains("s3cr3t"), "{redacted}");
        assert!(!redacted.contains("hunter2"), "{redacted}");
    }

    /// (text replaced in GOOD, replacement, what the refusal must mention,
    /// the position it must name). yaml_serde places a field's syntax
    /// error at the probe (or the field), and a check across a probe's
    /// fields at the `probes:` list, with the probe's name in the message.
    #[test]
    fn mistakes_are_refused_with_line_and_column() {
        let table: &[(&str, &str, &str, &str)] = &[
            (
                "every: 30s",
                "every: 30 seconds",
                "invalid duration",
                "line 3 column 5",
            ),
            ("every: 30s", "evry: 30s", "evry", "line 5 column 5"),
            (
                "expect_status: [200, 204]",
                "expect_status: [200, 999]",
                "999",
                "line 3",
            ),
            (
                "'\"status\":\\s*\"ok\"'",
                "'(unclosed'",
                "body_regex",
                "line 3",
            ),
            (
                "cron: \"*/5 * * * *\"",
                "cron: \"every day\"",
                "cron",
                "line 3",
            ),
            (
                "address: db.internal:5432",
                "address: db.internal",
                "host:port",
                "line 3",
            ),
            ("type: tcp", "type: ping", "not a probe type", "line 3"),
            (
                "address: db.internal:5432",
                "address: db.internal:5432\n    body_regex: x",
                "`body_regex` does not apply to a tcp probe",
                "line 3",
            ),
            (
                "timeout: 5s",
                "timeout: 1m",
                "longer than `every: 30s`",
                "line 3",
            ),
            ("name: db", "name: api", "defined twice", ""),
        ];
        for (from, to, mention, line) in table {
            let broken = GOOD.replacen(from, to, 1);
            assert_ne!(broken, GOOD, "the row must change the file: {from:?}");
            let err = Config::parse(&broken).expect_err(to);
            assert!(err.contains(mention), "{to:?}: {err}");
            assert!(err.contains(line), "{to:?} should name {line}: {err}");
        }
    }
}
