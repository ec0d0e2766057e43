//! Checks shared by every alert source, as Alertmanager applies them.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use super::IngestError;
use crate::eventlog::LabelSet;

/// Alertmanager 0.25's (and Prometheus') label name rule:
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Labels must be a non-empty set of valid names.
pub fn labels(labels: Option<LabelSet>, field: &str) -> Result<LabelSet, IngestError> {
    let labels = labels.unwrap_or_default();
    if labels.is_empty() {
        return Err(IngestError::new(field, "at least one label pair required"));
    }
    names(&labels, field)?;
    Ok(labels)
}

/// Annotation names follow the label name rule too.
pub fn names(set: &LabelSet, field: &str) -> Result<(), IngestError> {
    for name in set.keys() {
        if !is_valid_label_name(name) {
            return Err(IngestError::new(
                format!("{field}.{name}"),
                format!("invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
    }
    Ok(())
}

/// A timestamp from a sender: Go's zero time (`0001-01-01T00:00:00Z`) means
/// unset; anything outside what the log stores (1678–2261) is refused.
pub fn timestamp(
    t: Option<DateTime<FixedOffset>>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, IngestError> {
    let Some(t) = t else { return Ok(None) };
    if t.year() <= 1 {
        return Ok(None);
    }
    let t = t.with_timezone(&Utc);
    if t.timestamp_nanos_opt().is_none() {
        return Err(IngestError::new(
            field,
            format!("timestamp {t} is out of range (years 1678 to 2261)"),
        ));
    }
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_alertmanager() {
        // (name, valid?) — one row per rule of the grammar.
        let table = [
            ("alertname", true),
            ("_private", true),
            ("a1_b2", true),
            ("A", true),
            ("", false),        // empty
            ("1abc", false),    // starts with a digit
            ("foo-bar", false), // dash
            ("foo.bar", false), // dot (UTF-8 names came only in Prometheus 3)
            ("ümlaut", false),  // non-ASCII
            ("with space", false),
        ];
        for (name, want) in table {
            assert_eq!(is_valid_label_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn go_zero_time_means_unset() {
        let zero: DateTime<FixedOffset> = "0001-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(timestamp(Some(zero), "x").unwrap(), None);
        let far: DateTime<FixedOffset> = "9999-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(timestamp(Some(far), "x").unwrap_err().field, "x");
    }
}
