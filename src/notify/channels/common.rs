//! What the webhook-style channels share: reading a destination URL that is
//! a secret, loading a receiver's own template, Alertmanager's
//! `http_config` (the part a shared client can honour), truncation on a
//! character boundary, HMAC-SHA256 for the IM robots' signatures, and the
//! plain-text message used when a rendered body is not usable.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::notify::config::BuildEnv;
use crate::notify::secret::{self, Secret};
use crate::notify::{Message, Payload};

/// A destination URL given as `name` (a secret: inline, `{file:}`,
/// `{env:}`) or as `name_file`, required and checked. Errors never show the
/// value: such URLs carry tokens.
pub(crate) fn required_url(
    name: &str,
    inline: Option<Secret>,
    file: Option<&str>,
) -> Result<Secret, String> {
    let url = secret::one_of(name, inline, file)?
        .ok_or_else(|| format!("missing field `{name}` (or `{name}_file`)"))?;
    check_url(name, &url)?;
    Ok(url)
}

/// An `http(s)://` URL with a host; the error names the field, not the
/// value.
pub(crate) fn check_url(name: &str, url: &Secret) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url.expose().trim())
        .map_err(|e| format!("{name}: not a valid URL ({e}); the value is not shown"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{name}: must be an http:// or https:// URL with a host; the value is not shown"
        ));
    }
    Ok(())
}

/// Register a receiver's `template: FILE` (relative paths are looked up in
/// `notify.templates_dir`); the name to render it by.
pub(crate) fn load_template(
    env: &mut BuildEnv<'_>,
    file: Option<&str>,
) -> Result<Option<String>, String> {
    let Some(file) = file else {
        return Ok(None);
    };
    let path = Path::new(file);
    let path = if path.is_relative() {
        env.templates_dir.join(path)
    } else {
        path.to_path_buf()
    };
    env.templates
        .add_file(&path)
        .map(Some)
        .map_err(|e| format!("template: {e}"))
}

/// Refuse an Alertmanager Go template where Fenghuo sends the text as
/// written, so a migrated config does not page with `{{ ... }}` in it.
pub(crate) fn no_go_template(field: &str, value: Option<&str>) -> Result<(), String> {
    match value {
        Some(v) if v.contains("{{") => Err(format!(
            "{field}: Alertmanager Go templates are not supported here (the value is sent as \
             written); write the text, or render the whole message with `template: FILE`"
        )),
        _ => Ok(()),
    }
}

/// A JSON POST.
pub(crate) fn json_post(
    url: String,
    headers: Vec<(String, String)>,
    body: &serde_json::Value,
) -> Payload {
    Payload::Http {
        url,
        content_type: "application/json",
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// At most `max` bytes of UTF-8, cut on a character boundary; when cut, the
/// text ends with `marker` (counted in `max`).
pub(crate) fn truncate_utf8(text: &str, max: usize, marker: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max.saturating_sub(marker.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{marker}", &text[..cut])
}

/// At most `max` characters; when cut, the last one is `…`.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// for a query value.
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The message as plain text: the title and one line per alert. Sent when
/// a rendered body cannot be used, so a page is never lost to a template.
pub(crate) fn plain_text(msg: &Message) -> String {
    let mut out = msg.title.clone();
    for alert in &msg.alerts {
        out.push_str(&format!("\n[{}] {}", alert.status, alert.summary));
        if let Some(instance) = alert.labels.get("instance") {
            out.push_str(&format!(" ({instance})"));
        }
    }
    if !msg.external_url.is_empty() {
        out.push_str(&format!("\n{}", msg.external_url));
    }
    out
}

/// Alertmanager's `http_config`, the part a client shared by every channel
/// can honour: credentials sent as an `Authorization` header. Settings of
/// the client itself (TLS, proxies, OAuth2) are refused with a message
/// rather than ignored, since ignoring them would fail at the first page.
/// `follow_redirects: true` and `enable_http2` are accepted (the shared
/// client follows redirects and negotiates HTTP/2 itself).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    authorization: Option<Authorization>,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
    // Known to Alertmanager, refused by `headers` with a reason.
    oauth2: Option<serde_json::Value>,
    tls_config: Option<serde_json::Value>,
    proxy_url: Option<serde_json::Value>,
    no_proxy: Option<serde_json::Value>,
    proxy_from_environment: Option<serde_json::Value>,
    proxy_connect_header: Option<serde_json::Value>,
    http_headers: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Authorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<Secret>,
    credentials_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: Option<String>,
    username_file: Option<String>,
    password: Option<Secret>,
    password_file: Option<String>,
}

impl HttpConfig {
    /// Check the config and read its secrets: the headers to send.
    pub(crate) fn headers(&self) -> Result<Vec<(String, Secret)>, String> {
        let _ = self.enable_http2;
        let refused = [
            ("oauth2", self.oauth2.is_some()),
            ("tls_config", self.tls_config.is_some()),
            ("proxy_url", self.proxy_url.is_some()),
            ("no_proxy", self.no_proxy.is_some()),
            (
                "proxy_from_environment",
                self.proxy_from_environment.is_some(),
            ),
            ("proxy_connect_header", self.proxy_connect_header.is_some()),
            ("http_headers", self.http_headers.is_some()),
        ];
        if let Some((name, _)) = refused.iter().find(|(_, set)| *set) {
            return Err(format!(
                "http_config.{name}: not supported; Fenghuo sends every notification through \
                 one shared HTTP client, so only credentials (authorization, basic_auth, \
                 bearer_token) can be set per integration"
            ));
        }
        if self.follow_redirects == Some(false) {
            return Err(
                "http_config.follow_redirects: `false` is not supported (the shared \
                        HTTP client follows redirects)"
                    .into(),
            );
        }
        let bearer = secret::one_of(
            "http_config.bearer_token",
            self.bearer_token.clone(),
            self.bearer_token_file.as_deref(),
        )?;
        let schemes = [
            self.authorization.is_some(),
            self.basic_auth.is_some(),
            bearer.is_some(),
        ];
        if schemes.iter().filter(|s| **s).count() > 1 {
            return Err("http_config: at most one of basic_auth, bearer_token & \
                        bearer_token_file, authorization must be configured"
                .into());
        }
        let value = if let Some(token) = bearer {
            Some(format!("Bearer {}", token.expose()))
        } else if let Some(auth) = &self.authorization {
            let kind = auth.kind.as_deref().unwrap_or("Bearer");
            if kind.eq_ignore_ascii_case("basic") {
                return Err("http_config.authorization.type: cannot be \"Basic\", use \
                            http_config.basic_auth instead"
                    .into());
            }
            if kind.is_empty() || kind.contains(char::is_whitespace) {
                return Err("http_config.authorization.type: must be one word, e.g. Bearer".into());
            }
            let credentials = secret::one_of(
                "http_config.authorization.credentials",
                auth.credentials.clone(),
                auth.credentials_file.as_deref(),
            )?
            .ok_or("http_config.authorization: missing credentials (or credentials_file)")?;
            Some(format!("{kind} {}", credentials.expose()))
        } else if let Some(basic) = &self.basic_auth {
            let username = match (&basic.username, &basic.username_file) {
                (Some(_), Some(_)) => {
                    return Err("http_config.basic_auth: at most one of username and \
                                username_file must be configured"
                        .into());
                }
                (Some(u), None) => u.clone(),
                (None, Some(f)) => Secret::from_file(Path::new(f))?.expose().to_string(),
                (None, None) => String::new(),
            };
            let password = secret::one_of(
                "http_config.basic_auth.password",
                basic.password.clone(),
                basic.password_file.as_deref(),
            )?
            .unwrap_or_else(|| Secret::new(""));
            Some(format!(
                "Basic {}",
                base64(format!("{username}:{}", password.expose()).as_bytes())
            ))
        } else {
            None
        };
        Ok(value
            .map(|v| vec![("Authorization".to_string(), Secret::new(v))])
            .unwrap_or_default())
    }
}

/// Headers with their secret values, as the payload carries them.
pub(crate) fn expose_headers(headers: &[(String, Secret)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect()
}

/// `send_resolved` defaults to true for most channels, as in Alertmanager.
pub fn yes() -> bool {
    true
}

/// A payload this channel cannot send as it is (not its kind, not JSON, no
/// id to edit): never worth another try.
pub(crate) fn unsendable(reason: &str) -> crate::notify::DeliveryError {
    crate::notify::DeliveryError {
        reason: reason.to_string(),
        class: "render",
        status: None,
        retryable: false,
        retry_after: None,
    }
}

/// `payload` with one more header (an API token fetched at send time,
/// never part of what `render` built).
pub(crate) fn with_header(payload: Payload, name: &str, value: String) -> Payload {
    match payload {
        Payload::Http {
            url,
            content_type,
            mut headers,
            body,
        } => {
            headers.push((name.to_string(), value));
            Payload::Http {
                url,
                content_type,
                headers,
                body,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_utf8("abc", 3, "…"), "abc");
        let cut = truncate_utf8("烽火烽火烽火", 10, "~");
        assert!(cut.len() <= 10, "{cut}");
        assert_eq!(cut, "烽火烽~");
        assert_eq!(truncate_chars("abcdef", 4), "abc…");
    }

    #[test]
    fn percent_encoding_of_base64() {
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
    }

    #[test]
    fn http_config_credentials() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<HttpConfig>(v)
                .unwrap()
                .headers()
                .map(|h| expose_headers(&h))
        };
        assert_eq!(
            parse(serde_json::json!({"authorization": {"credentials": "t0k"}})).unwrap(),
            [("Authorization".to_string(), "Bearer t0k".to_string())]
        );
        assert_eq!(
            parse(serde_json::json!({"basic_auth": {"username": "u", "password": "p"}})).unwrap(),
            [("Authorization".to_string(), "Basic dTpw".to_string())]
        );
        let err =
            parse(serde_json::json!({"tls_config": {"insecure_skip_verify": true}})).unwrap_err();
        assert!(err.contains("http_config.tls_config"), "{err}");
        let err = parse(serde_json::json!({
            "authorization": {"credentials": "a"}, "bearer_token": "b"
        }))
        .unwrap_err();
        assert!(err.contains("at most one"), "{err}");
    }
}
