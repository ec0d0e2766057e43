//! Secrets in `fenghuo.yaml`: webhook URLs with tokens, signing keys, SMTP
//! passwords, routing keys.
//!
//! A secret is written inline, or as `{ file: PATH }` (a mounted Kubernetes
//! Secret) or `{ env: NAME }`; Alertmanager's `*_file` fields are accepted
//! beside it where Alertmanager has them. It is read once when the config is
//! loaded, so a missing file or variable refuses the config rather than a
//! page. A relative file path is relative to the config file's directory,
//! as in Alertmanager. The value never leaves through `Debug`, `Display` or `Serialize`:
//! logs, metrics and `/api/v2/status` show `<secret>`.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// The config file's directory while its receivers are compiled: serde
    /// gives a deserializer no context, and `{ file: PATH }` needs it.
    static BASE_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `f` with relative secret files resolved against `dir`.
pub fn with_base_dir<T>(dir: Option<&Path>, f: impl FnOnce() -> T) -> T {
    let previous = BASE_DIR.with(|b| b.replace(dir.map(Path::to_path_buf)));
    let out = f();
    BASE_DIR.with(|b| *b.borrow_mut() = previous);
    out
}

/// `path` against the config's directory, if relative and one is set.
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    BASE_DIR
        .with(|b| b.borrow().as_ref().map(|dir| dir.join(path)))
        .unwrap_or_else(|| path.to_path_buf())
}

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `*_file` field: the file's content without the trailing newline
    /// `kubectl create secret` and editors leave.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let path = resolve(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
        Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
    }
}

/// How a secret is written in YAML, before it is read.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Inline(String),
    File { file: String },
    Env { env: String },
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match SecretSource::deserialize(deserializer).map_err(|_| {
            D::Error::custom("expected a string, `{ file: PATH }` or `{ env: NAME }`")
        })? {
            SecretSource::Inline(s) => Ok(Secret(s)),
            SecretSource::File { file } => {
                Secret::from_file(Path::new(&file)).map_err(D::Error::custom)
            }
            SecretSource::Env { env } => std::env::var(&env)
                .map(Secret)
                .map_err(|_| D::Error::custom(format!("environment variable {env} is not set"))),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<secret>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A secret given either inline (`field`) or as Alertmanager's `field_file`;
/// both at once is an error, as in Alertmanager.
pub fn one_of(
    name: &str,
    inline: Option<Secret>,
    file: Option<&str>,
) -> Result<Option<Secret>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "at most one of {name} and {name}_file must be configured"
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => Secret::from_file(Path::new(path)).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<secret>\"");
    }

    #[test]
    fn from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let s: Secret = serde_json::from_value(serde_json::json!({ "file": path })).unwrap();
        assert_eq!(s.expose(), "abc123");
        let err = serde_json::from_value::<Secret>(
            serde_json::json!({ "env": "FENGHUO_TEST_UNSET_VAR" }),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("FENGHUO_TEST_UNSET_VAR is not set"), "{err}");
    }

    #[test]
    fn relative_files_are_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret").unwrap();
        let s = with_base_dir(Some(dir.path()), || {
            serde_json::from_value::<Secret>(serde_json::json!({ "file": "pw" })).unwrap()
        });
        assert_eq!(s.expose(), "s3cret");
        let s = with_base_dir(Some(dir.path()), || {
            one_of("password", None, Some("pw")).unwrap()
        });
        assert_eq!(s.unwrap().expose(), "s3cret");
    }

    #[test]
    fn inline_and_file_both_refused() {
        let err = one_of("api_url", Some(Secret::new("x")), Some("/f")).unwrap_err();
        assert!(err.contains("at most one of api_url and api_url_file"));
    }
}
