//! Why a payload was refused. Every refusal names the field (as a path into
//! the body, e.g. `[3].labels.0name`) or the limit, so a sender can fix it.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IngestError {
    /// Path into the body: `[0].startsAt`, `alerts[2].status`, `payload.summary`.
    pub field: String,
    pub message: String,
}

impl IngestError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A body that is not the JSON it should be: the path serde stopped at,
    /// and its complaint.
    pub fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path == "." { String::new() } else { path };
        IngestError {
            field,
            message: inner.to_string(),
        }
    }
}

/// Deserialises `body` as `T`, naming the field on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(IngestError::from_json)?;
    // Trailing garbage after the document is malformed input too.
    de.end().map_err(|e| IngestError::new("", e.to_string()))?;
    Ok(value)
}
