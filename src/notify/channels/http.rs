//! The POST every webhook-style channel makes, and how its outcome is
//! classified for the outbox: 2xx delivered; 429 and 5xx, timeouts and
//! connection errors retried (honouring `Retry-After`); other 4xx not
//! retried. IM robots answer 200 with an error code in the body (DingTalk
//! `errcode`, WeCom `errcode`, Feishu `code`); each channel passes a check
//! for that.
//!
//! Errors never carry the URL: webhook URLs hold tokens.

use std::time::Duration;

use super::super::{Delivered, DeliveryError, Payload};

/// Checks a 2xx body for an application-level error.
pub type BodyCheck = fn(&[u8]) -> Result<(), DeliveryError>;

pub async fn post(
    client: &reqwest::Client,
    payload: &Payload,
    check: Option<BodyCheck>,
) -> Result<Delivered, DeliveryError> {
    post_reading(client, payload, reqwest::Method::POST, check)
        .await
        .map(|(delivered, _)| delivered)
}

/// [`post`] with another method (Feishu edits with `PATCH`), answering the
/// accepted response's body too (where a message id is).
pub async fn post_reading(
    client: &reqwest::Client,
    payload: &Payload,
    method: reqwest::Method,
    check: Option<BodyCheck>,
) -> Result<(Delivered, Vec<u8>), DeliveryError> {
    let Payload::Http {
        url,
        content_type,
        headers,
        body,
    } = payload
    else {
        return Err(DeliveryError {
            reason: "payload is not an HTTP request".into(),
            class: "render",
            status: None,
            retryable: false,
            retry_after: None,
        });
    };
    let mut request = client
        .request(method, url.as_str())
        .header(reqwest::header::CONTENT_TYPE, *content_type)
        .body(body.clone());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.bytes().await.map_err(transport_error)?;
    classify(status, retry_after, &body, check).map(|d| (d, body.to_vec()))
}

/// Status and body to outcome; separate from the I/O so it is testable as
/// a table.
pub fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    check: Option<BodyCheck>,
) -> Result<Delivered, DeliveryError> {
    match status {
        200..=299 => {
            if let Some(check) = check {
                check(body).map_err(|mut e| {
                    e.status = Some(status);
                    e
                })?;
            }
            Ok(Delivered {
                status,
                message_ref: None,
            })
        }
        429 => Err(DeliveryError {
            reason: format!("HTTP 429{}", snippet(body)),
            class: "rate_limited",
            status: Some(status),
            retryable: true,
            retry_after,
        }),
        500..=599 => Err(DeliveryError {
            reason: format!("HTTP {status}{}", snippet(body)),
            class: "http_5xx",
            status: Some(status),
            retryable: true,
            retry_after,
        }),
        // 408 is the far end timing out, worth another try.
        408 => Err(DeliveryError {
            reason: format!("HTTP 408{}", snippet(body)),
            class: "timeout",
            status: Some(status),
            retryable: true,
            retry_after,
        }),
        _ => Err(DeliveryError {
            reason: format!("HTTP {status}{}", snippet(body)),
            class: "http_4xx",
            status: Some(status),
            retryable: false,
            retry_after: None,
        }),
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from webhook endpoints and
/// would need the wall clock; they are treated as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn transport_error(e: reqwest::Error) -> DeliveryError {
    // reqwest's Display includes the URL; build the reason without it.
    let e = e.without_url();
    let class = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    DeliveryError {
        reason: format!("{class}: {}", root_cause(&e)),
        class,
        status: None,
        retryable: true,
        retry_after: None,
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The start of a response body for the failure reason: what the far end
/// said is the most useful thing to debug with.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(200).collect();
    format!(": {cut}")
}

/// The body check of the Chinese IM robots: `{"errcode": 0}` (DingTalk,
/// WeCom) or `{"code": 0}` / `{"StatusCode": 0}` (Feishu) means delivered;
/// any other code is an error, retried only if it is a rate limit.
pub fn im_error_code(body: &[u8], rate_limit_codes: &[i64]) -> Result<(), DeliveryError> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // not JSON: the 2xx is all we have
    };
    let code = ["errcode", "code", "StatusCode"]
        .iter()
        .find_map(|k| value.get(*k).and_then(|v| v.as_i64()));
    match code {
        None | Some(0) => Ok(()),
        Some(code) => {
            let msg = ["errmsg", "msg", "StatusMessage"]
                .iter()
                .find_map(|k| value.get(*k).and_then(|v| v.as_str()))
                .unwrap_or("");
            let limited = rate_limit_codes.contains(&code);
            Err(DeliveryError {
                reason: format!("error code {code}: {msg}"),
                class: if limited { "rate_limited" } else { "rejected" },
                status: None,
                retryable: limited,
                retry_after: limited.then(|| Duration::from_secs(60)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcome per response, one row per case.
    #[test]
    fn classify_table() {
        let cases: &[(u16, &[u8], bool, bool)] = &[
            // status, body, delivered, retryable
            (200, b"ok", true, false),
            (204, b"", true, false),
            (429, b"slow down", false, true),
            (500, b"boom", false, true),
            (503, b"", false, true),
            (408, b"", false, true),
            (400, b"bad", false, false),
            (403, b"forbidden", false, false),
            (404, b"", false, false),
        ];
        for &(status, body, delivered, retryable) in cases {
            match classify(status, None, body, None) {
                Ok(d) => {
                    assert!(delivered, "{status} should fail");
                    assert_eq!(d.status, status);
                }
                Err(e) => {
                    assert!(!delivered, "{status} should be delivered");
                    assert_eq!(e.retryable, retryable, "{status}");
                    assert_eq!(e.status, Some(status));
                }
            }
        }
    }

    #[test]
    fn retry_after_is_kept_for_429() {
        let e = classify(429, Some(Duration::from_secs(7)), b"", None).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn im_codes() {
        let dingtalk_ok = br#"{"errcode":0,"errmsg":"ok"}"#;
        assert!(im_error_code(dingtalk_ok, &[130101]).is_ok());
        let limited = im_error_code(br#"{"errcode":130101,"errmsg":"send too fast"}"#, &[130101])
            .unwrap_err();
        assert!(limited.retryable);
        assert_eq!(limited.class, "rate_limited");
        let bad_token = im_error_code(
            br#"{"errcode":310000,"errmsg":"sign not match"}"#,
            &[130101],
        )
        .unwrap_err();
        assert!(!bad_token.retryable);
        assert!(bad_token.reason.contains("sign not match"));
        assert!(im_error_code(br#"{"code":0,"msg":"success","data":{}}"#, &[]).is_ok());
        assert!(im_error_code(br#"{"StatusCode":0,"StatusMessage":"success"}"#, &[]).is_ok());
        assert!(im_error_code(br#"{"code":19021,"msg":"sign match fail"}"#, &[]).is_err());
    }
}
