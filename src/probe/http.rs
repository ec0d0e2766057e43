//! An `http` probe, run once: send the request, check the status and the
//! body, measure the latency. Pure of scheduling and of storing: it answers
//! an [`Outcome`]. Header values are secrets and appear in no outcome, log
//! or error.

use std::time::{Duration, Instant};

use super::Outcome;
use super::config::{HttpCheck, HttpRequest};

/// The most of a body read to match `body_regex` against.
pub const MAX_BODY: usize = 1 << 20;

/// A client for `request`: TLS verification as configured, at most
/// `timeout` per run. Built once per probe. No idle connections are kept:
/// each run connects anew, so a run measures (and fails on) the connect and
/// the handshake, as a user's first request would, and a listener that went
/// away is seen at once rather than through a pooled connection.
pub fn client(request: &HttpRequest, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("fenghuo-probe/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!request.tls_verify)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `request` and answers the response with its latency (until the
/// headers arrived), or why there was none.
pub async fn send(
    client: &reqwest::Client,
    request: &HttpRequest,
) -> Result<(reqwest::Response, Duration), String> {
    let mut builder = client.request(request.method.clone(), request.url.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value.expose());
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let started = Instant::now();
    let response = builder.send().await.map_err(|e| describe(&e))?;
    Ok((response, started.elapsed()))
}

/// Reads at most `limit` bytes of the body (a probe must not be made to
/// hold a huge answer in memory).
pub async fn read_body(response: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// Runs `check` once.
pub async fn run(client: &reqwest::Client, check: &HttpCheck) -> Outcome {
    let started = Instant::now();
    let (mut response, latency) = match send(client, &check.request).await {
        Ok(r) => r,
        Err(error) => return Outcome::failed(started.elapsed(), None, error),
    };
    let status = response.status();
    let code = Some(status.as_u16());
    let expected = if check.expect_status.is_empty() {
        status.is_success()
    } else {
        check.expect_status.contains(&status.as_u16())
    };
    if !expected {
        let want = if check.expect_status.is_empty() {
            "2xx".to_string()
        } else {
            format!("{:?}", check.expect_status)
        };
        return Outcome::failed(latency, code, format!("status {status}, expected {want}"));
    }
    if let Some(pattern) = &check.body_regex {
        let body = match read_body(&mut response, MAX_BODY).await {
            Ok(b) => b,
            Err(error) => return Outcome::failed(latency, code, error),
        };
        if !pattern.0.is_match(&String::from_utf8_lossy(&body)) {
            return Outcome::failed(
                latency,
                code,
                format!("body does not match {:?}", pattern.0.as_str()),
            );
        }
    }
    Outcome {
        ok: true,
        latency,
        status: code,
        values: Default::default(),
        error: None,
    }
}

/// What went wrong, without the URL (it may carry credentials) and with
/// the underlying cause (refused, reset, certificate, DNS).
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut out = if e.is_connect() {
        "connect failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "reading the body failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and rustls repeat their cause in their own message.
        if !text.is_empty() && !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    out
}
