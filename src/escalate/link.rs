//! Signed, expiring action links: "Acknowledge" inside a page.
//!
//! A link is `{external_url}/act/{token}`; the token is
//! `base64url(claims) "." base64url(HMAC-SHA256(key, base64url(claims)))`,
//! the claims naming the incident, the action, the person the page was sent
//! to, the expiry and a random id. Opening the link (GET) only shows a
//! confirmation page; the action happens on its POST, so link-preview bots
//! that fetch every URL in a chat acknowledge nothing. The id is recorded
//! with the action, so a link works once.
//!
//! This module signs and verifies; it never acts (see [`super::actions`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::actions::Action;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Incident id.
    pub i: String,
    pub a: Action,
    /// The person (or receiver) the page went to: who acts.
    pub p: String,
    /// Expiry, Unix seconds.
    pub e: i64,
    /// Random id: the link works once.
    pub n: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not valid (it was changed, cut short, or signed with another key)")]
    Forged,
    #[error("this link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// Signs and checks action links with one key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    ttl: chrono::Duration,
    base: String,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("key", &"<secret>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl LinkSigner {
    pub fn new(key: Vec<u8>, ttl: chrono::Duration, external_url: &str) -> LinkSigner {
        LinkSigner {
            key,
            ttl,
            base: external_url.trim_end_matches('/').to_string(),
        }
    }

    /// The configured key, or the one kept in `data_dir/link.key` (made
    /// on first start, readable by the owner only).
    pub fn key_for(configured: Option<&str>, data_dir: &Path) -> std::io::Result<Vec<u8>> {
        if let Some(k) = configured {
            return Ok(k.as_bytes().to_vec());
        }
        let path = data_dir.join("link.key");
        match std::fs::read(&path) {
            Ok(k) if k.len() >= 32 => Ok(k),
            _ => {
                let key: [u8; 32] = rand::random();
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&path, hex.as_bytes())?;
                Ok(hex.into_bytes())
            }
        }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `action` on `incident` by `person`, valid from `now`
    /// for the configured time.
    pub fn token(
        &self,
        incident: &str,
        action: Action,
        person: &str,
        now: DateTime<Utc>,
    ) -> String {
        let nonce: [u8; 12] = rand::random();
        let claims = Claims {
            i: incident.to_string(),
            a: action,
            p: person.to_string(),
            e: (now + self.ttl).timestamp(),
            n: URL_SAFE_NO_PAD.encode(nonce),
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let sig = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()));
        format!("{body}.{sig}")
    }

    pub fn url(&self, token: &str) -> String {
        format!("{}/act/{token}", self.base)
    }

    /// The claims of a token this key signed and that has not expired.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, LinkError> {
        let (body, sig) = token.split_once('.').ok_or(LinkError::Forged)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Forged)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body.as_bytes());
        // Constant time: a forger learns nothing from how long it took.
        mac.verify_slice(&sig).map_err(|_| LinkError::Forged)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| LinkError::Forged)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| LinkError::Forged)?;
        let expires = DateTime::from_timestamp(claims.e, 0).ok_or(LinkError::Forged)?;
        if expires <= now {
            return Err(LinkError::Expired(expires));
        }
        Ok(claims)
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// (what is done to a good token, the error wanted).
    #[test]
    fn tokens_verify_only_as_signed_and_until_they_expire() {
        let signer = LinkSigner::new(b"k1".to_vec(), chrono::Duration::hours(1), "https://fh/");
        let now = t("2026-11-25T19:00:00Z");
        let token = signer.token("inc-7", Action::Ack, "alice", now);
        let claims = signer.verify(&token, now).unwrap();
        assert_eq!(
            (claims.i.as_str(), claims.a, claims.p.as_str()),
            ("inc-7", Action::Ack, "alice")
        );
        assert!(signer.url(&token).starts_with("https://fh/act/"));

        let other = LinkSigner::new(b"k2".to_vec(), chrono::Duration::hours(1), "https://fh");
        let (body, sig) = token.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                p: "mallory".into(),
                ..claims.clone()
            })
            .unwrap(),
        );
        let cases: Vec<(String, &LinkSigner, DateTime<Utc>, LinkError)> = vec![
            // Another person's name in the claims, old signature.
            (
                format!("{forged_claims}.{sig}"),
                &signer,
                now,
                LinkError::Forged,
            ),
            // Signed with another key.
            (token.clone(), &other, now, LinkError::Forged),
            // Cut short.
            (body.to_string(), &signer, now, LinkError::Forged),
            (
                format!("{body}.{}", &sig[..10]),
                &signer,
                now,
                LinkError::Forged,
            ),
            // Garbage.
            ("..".into(), &signer, now, LinkError::Forged),
            // An hour later.
            (
                token.clone(),
                &signer,
                t("2026-11-25T20:00:00Z"),
                LinkError::Expired(t("2026-11-25T20:00:00Z")),
            ),
        ];
        for (token, signer, at, want) in cases {
            assert_eq!(signer.verify(&token, at), Err(want), "{token}");
        }
    }

    #[test]
    fn a_kept_key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = LinkSigner::key_for(None, dir.path()).unwrap();
        let k2 = LinkSigner::key_for(None, dir.path()).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("link.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            LinkSigner::key_for(Some("configured"), dir.path()).unwrap(),
            b"configured"
        );
    }
}
