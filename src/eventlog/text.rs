//! `CompactText`: the short strings of the event envelope, without an
//! allocation each.
//!
//! Every event carries an `id` (a UUID, 32 hex digits), a `source` (one of a
//! handful of names) and a `key` (mostly an alert fingerprint, 16 hex
//! digits), and an alert report its fingerprint. As `String`s they were
//! three or four allocations per event replay decodes, and as many frees,
//! mostly on another thread than the one that allocated them. A
//! `CompactText` holds up to [`INLINE`] bytes in place (every one of those)
//! and shares one allocation (`Arc<str>`) for anything longer, so cloning it
//! never copies a long text either.
//!
//! It reads as the `str` it holds (`Deref`), compares, orders and hashes as
//! that `str` (so it looks up `HashMap<CompactText, _>` by `&str`), and
//! serialises as that string: JSON, SQLite columns and `Debug` output are
//! byte for byte what the `String` gave. It owns no meaning: what the text
//! says is the envelope's business.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes held in place: a UUID in its simple form (32) with room to spare,
/// while the whole value stays 40 bytes (a `String` and its heap block are
/// 24 + 16 or more, and an allocation).
pub const INLINE: usize = 38;

/// A string held in place when short, shared when long. See the module docs.
#[derive(Clone)]
pub struct CompactText(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` bytes of `bytes`, copied from a `str` (so valid UTF-8).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl CompactText {
    pub const fn new() -> CompactText {
        CompactText(Repr::Inline {
            len: 0,
            bytes: [0; INLINE],
        })
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // Copied whole from a `str`: valid. Checking again costs a
                // few nanoseconds for at most 38 bytes, and needs no unsafe.
                std::str::from_utf8(&bytes[..*len as usize]).expect("copied from a str")
            }
            Repr::Shared(s) => s,
        }
    }

    /// Whether the text is held in place (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// Bytes this text holds on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Shared(s) => s.len() + 2 * size_of::<usize>(),
        }
    }
}

impl Default for CompactText {
    fn default() -> Self {
        CompactText::new()
    }
}

impl From<&str> for CompactText {
    fn from(s: &str) -> CompactText {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            CompactText(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            CompactText(Repr::Shared(Arc::from(s)))
        }
    }
}

impl From<String> for CompactText {
    fn from(s: String) -> CompactText {
        CompactText::from(s.as_str())
    }
}

impl From<&String> for CompactText {
    fn from(s: &String) -> CompactText {
        CompactText::from(s.as_str())
    }
}

impl From<&CompactText> for CompactText {
    fn from(s: &CompactText) -> CompactText {
        s.clone()
    }
}

impl From<CompactText> for String {
    fn from(s: CompactText) -> String {
        s.as_str().to_owned()
    }
}

impl From<&CompactText> for String {
    fn from(s: &CompactText) -> String {
        s.as_str().to_owned()
    }
}

impl Deref for CompactText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CompactText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for CompactText {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for CompactText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for CompactText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for CompactText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CompactText {}

impl Hash for CompactText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes: `Borrow<str>` lookups must find it.
        self.as_str().hash(state)
    }
}

impl Ord for CompactText {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for CompactText {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

macro_rules! eq_with {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for CompactText {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<CompactText> for $other {
            fn eq(&self, other: &CompactText) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}

eq_with!(str, &str, String);

impl Serialize for CompactText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CompactText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;

        impl Visitor<'_> for Text {
            type Value = CompactText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            // Read where the deserializer has it, borrowed or escaped into
            // its scratch buffer: no `String` in between.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CompactText, E> {
                Ok(CompactText::from(s))
            }
        }

        d.deserialize_str(Text)
    }
}

impl rusqlite::ToSql for CompactText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.as_str().to_sql()
    }
}

impl rusqlite::types::FromSql for CompactText {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        // Straight from SQLite's row buffer: no `String` per column.
        value.as_str().map(CompactText::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cases() -> Vec<String> {
        vec![
            String::new(),
            "prometheus".into(),
            "0123456789abcdef".into(),
            "4f1c0d9a8e7b6c5d4f1c0d9a8e7b6c5d".into(),
            "x".repeat(INLINE),
            "x".repeat(INLINE + 1),
            "ünïcödé ✓ \"quoted\" \\ back\nslash and then some more text".into(),
            "ünï".repeat(12),
        ]
    }

    #[test]
    fn reads_writes_and_compares_as_the_string_it_replaces() {
        for s in cases() {
            let t = CompactText::from(s.as_str());
            assert_eq!(t.as_str(), s);
            assert_eq!(t, s);
            assert_eq!(t, *s.as_str());
            assert_eq!(format!("{t}"), s);
            assert_eq!(format!("{t:?}"), format!("{s:?}"));
            assert_eq!(String::from(t.clone()), s);
            assert_eq!(t.is_inline(), s.len() <= INLINE, "{s}");
            assert_eq!(t.heap_bytes() == 0, t.is_inline());
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, serde_json::to_string(&s).unwrap());
            let back: CompactText = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
            // Owned strings (serde's buffered content, `from_value`) too.
            let back: CompactText =
                serde_json::from_value(serde_json::Value::String(s.clone())).unwrap();
            assert_eq!(back, t);
        }
        assert!(serde_json::from_str::<CompactText>("1").is_err());
        assert_eq!(CompactText::default(), "");
    }

    #[test]
    fn ordered_hashed_and_looked_up_as_str() {
        let all = cases();
        for a in &all {
            for b in &all {
                let (ta, tb) = (CompactText::from(a), CompactText::from(b));
                assert_eq!(ta.cmp(&tb), a.cmp(b));
                assert_eq!(ta == tb, a == b);
            }
        }
        let map: HashMap<CompactText, usize> = all
            .iter()
            .enumerate()
            .map(|(i, s)| (CompactText::from(s), i))
            .collect();
        for (i, s) in all.iter().enumerate() {
            assert_eq!(map.get(s.as_str()), Some(&i));
        }
    }

    #[test]
    fn escaped_json_text_is_unescaped_as_a_string_would_be() {
        let json = r#""a\"b\\c\u00e9\n""#;
        let t: CompactText = serde_json::from_str(json).unwrap();
        let s: String = serde_json::from_str(json).unwrap();
        assert_eq!(t, s);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            serde_json::to_string(&s).unwrap()
        );
    }

    #[test]
    fn sqlite_columns_read_and_write_the_same_text() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute("CREATE TABLE t (v TEXT)", []).unwrap();
        for s in cases() {
            conn.execute("DELETE FROM t", []).unwrap();
            conn.execute("INSERT INTO t VALUES (?1)", [CompactText::from(&s)])
                .unwrap();
            let stored: String = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(stored, s);
            let read: CompactText = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(read, s);
        }
    }
}
