//! A remediation hook as HTTP: its templates, the allow-list of hosts, and
//! the one request of one attempt.
//!
//! The URL and body are tera templates rendered when the run is decided,
//! so the log holds exactly what will be sent; the host is checked on the
//! rendered URL, whatever the template made of it, and again on every
//! redirect (a redirect to another host is not followed). Header values
//! are secrets from the config: they are added at call time and never
//! recorded, logged or shown — only their names are.
//!
//! This module renders and calls; deciding whether to call is the act
//! stage's, recording the outcome the executor's.

use std::time::{Duration, Instant};

use tera::{Context, Tera};

use super::config::ActionConfig;
use crate::eventlog::event::RemediationRequest;
use crate::notify::templates::{Format, describe, engine};

/// Bytes of a response body kept in `remediation.*` events.
pub const BODY_KEPT: usize = 1024;
/// The header carrying the run's idempotency key on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// An action's URL and body templates, compiled.
pub struct Templates {
    url: Tera,
    body: Option<(Tera, &'static str)>,
}

impl Templates {
    pub fn compile(action: &ActionConfig) -> Result<Templates, String> {
        let mut url = engine(Format::Text);
        url.add_raw_template("url", &action.url)
            .map_err(|e| describe("url", &e))?;
        let body = if action.body.is_empty() {
            None
        } else {
            // A JSON body has its values escaped as JSON strings.
            let trimmed = action.body.trim_start();
            let (format, name) = if trimmed.starts_with('{') || trimmed.starts_with('[') {
                (Format::Json, "body.json")
            } else {
                (Format::Text, "body")
            };
            let mut tera = engine(format);
            tera.add_raw_template(name, &action.body)
                .map_err(|e| describe(name, &e))?;
            Some((tera, name))
        };
        Ok(Templates { url, body })
    }

    /// The request `action` makes with `ctx`: method, URL, header names,
    /// body.
    pub fn render(
        &self,
        action: &ActionConfig,
        ctx: &serde_json::Value,
    ) -> Result<RemediationRequest, String> {
        let ctx = Context::from_serialize(ctx).map_err(|e| e.to_string())?;
        let url = self
            .url
            .render("url", &ctx)
            .map_err(|e| describe("url", &e))?
            .trim()
            .to_string();
        let body = match &self.body {
            None => String::new(),
            Some((tera, name)) => tera.render(name, &ctx).map_err(|e| describe(name, &e))?,
        };
        Ok(RemediationRequest {
            method: action.method.to_ascii_uppercase(),
            url,
            header_names: action.headers.keys().cloned().collect(),
            body,
        })
    }
}

/// The host of `url` if it is an http(s) URL whose host is in `allowed`
/// (`host` or `host:port`, case-insensitive); why not otherwise.
pub fn check_host(url: &str, allowed: &[String]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the URL does not parse: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL carries credentials; put them in headers".into());
    }
    let host = parsed
        .host_str()
        .ok_or("the URL has no host")?
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default();
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h == host && port == p.parse().ok(),
            _ => a == host,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!("host {host:?} is not in remediation.allowed_hosts"))
    }
}

/// A client that follows a redirect only to the same host, and only to a
/// host still on the allow-list.
pub fn client(allowed: Vec<String>) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if same_host && check_host(attempt.url().as_str(), &allowed).is_ok() {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .build()
        .expect("a reqwest client builds")
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub body: String,
    pub error: String,
    pub ok: bool,
    pub retryable: bool,
}

/// Makes one attempt of `request` with the action's secret headers and the
/// idempotency key.
pub async fn call(
    client: &reqwest::Client,
    action: &ActionConfig,
    request: &RemediationRequest,
    idempotency_key: &str,
    timeout: Duration,
) -> Answer {
    let started = Instant::now();
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut req = client
        .request(method, request.url.as_str())
        .timeout(timeout)
        .header(IDEMPOTENCY_HEADER, idempotency_key);
    for (name, value) in &action.headers {
        req = req.header(name.as_str(), value.expose());
    }
    if !request.body.is_empty() {
        let trimmed = request.body.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        req = req.body(request.body.clone());
    }
    let result = req.send().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Err(e) => {
            // reqwest's Display includes the URL; it may carry a token.
            let e = e.without_url();
            let class = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            Answer {
                status: None,
                latency_ms,
                body: String::new(),
                error: format!("{class}: {e}"),
                ok: false,
                retryable: true,
            }
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_default();
            let cut = &bytes[..bytes.len().min(BODY_KEPT)];
            let body = String::from_utf8_lossy(cut).into_owned();
            let ok = (200..300).contains(&status);
            Answer {
                status: Some(status),
                latency_ms,
                body,
                error: if ok {
                    String::new()
                } else {
                    format!("HTTP {status}")
                },
                ok,
                // A redirect not followed (another host) will not change.
                retryable: matches!(status, 408 | 429 | 500..=599),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_pass() {
        let allowed = vec![
            "deploy.example.com".to_string(),
            "127.0.0.1:8080".to_string(),
        ];
        let cases = [
            ("https://deploy.example.com/rollback", true),
            ("https://DEPLOY.example.com:443/x", true),
            ("https://deploy.example.com.evil.io/x", false),
            ("https://evil.io/?u=deploy.example.com", false),
            ("http://127.0.0.1:8080/x", true),
            ("http://127.0.0.1:8081/x", false),
            ("http://user:pw@deploy.example.com/", false),
            ("file:///etc/passwd", false),
            ("not a url", false),
        ];
        for (url, ok) in cases {
            assert_eq!(check_host(url, &allowed).is_ok(), ok, "{url}");
        }
    }
}
