//! `LabelSet`: a label or annotation map, compact and immutable in place.
//!
//! Every stored alert keeps two of these, so at 100,000 alerts their shape
//! is most of the memory, and decoding them is most of a replay. A
//! `BTreeMap<String, String>` costs a B-tree node (about 0.5 KiB) and two
//! allocations per pair; a `LabelSet` is **one shared allocation** holding
//! the pairs sorted by name, each name and value prefixed with its length in
//! decimal and a `:` (`9:alertname4:Down8:instance…`), the whole being one
//! `str`. Cloning it shares that allocation (an `Arc`), so the views that
//! hold the same alert hold one copy of its labels.
//!
//! It reads like the map it replaces: sorted iteration, `get` by name,
//! serialising as a JSON object with sorted keys (the same bytes as the
//! `BTreeMap` did), and deserialising straight from JSON with one allocation
//! per set (no allocation per name or value). Changing a set (`insert`,
//! `remove`) rebuilds it; only notification messages do that, and they are
//! small.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A label or annotation map. Sorted by name, so its JSON and its
/// fingerprint are stable. See the module docs for the representation.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(Option<Arc<str>>);

/// Appends one length-prefixed string to an encoded set.
fn push_str(out: &mut String, s: &str) {
    // Decimal digits of the length, most significant first (no formatter:
    // this runs for every name and value replay decodes).
    let n = s.len();
    out.reserve(n + 4);
    if n < 100 {
        // Names and values are nearly all shorter than 100 bytes.
        if n >= 10 {
            out.push((b'0' + (n / 10) as u8) as char);
        }
        out.push((b'0' + (n % 10) as u8) as char);
    } else {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            out.push(d as char);
        }
    }
    out.push(':');
    out.push_str(s);
}

/// Reads one length-prefixed string from the front of `rest`.
fn take_str<'a>(rest: &mut &'a str) -> &'a str {
    let bytes = rest.as_bytes();
    let mut len = 0usize;
    let mut colon = 0;
    while bytes[colon] != b':' {
        debug_assert!(bytes[colon].is_ascii_digit(), "label set encoding");
        len = len * 10 + (bytes[colon] - b'0') as usize;
        colon += 1;
    }
    let s = &rest[colon + 1..colon + 1 + len];
    *rest = &rest[colon + 1 + len..];
    s
}

fn encoded_len(s: &str) -> usize {
    let mut digits = 1;
    let mut n = s.len();
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits + 1 + s.len()
}

impl LabelSet {
    pub const fn new() -> Self {
        LabelSet(None)
    }

    /// Builds a set from pairs already sorted by name with no name twice.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let len: usize = pairs
            .clone()
            .map(|(k, v)| encoded_len(k) + encoded_len(v))
            .sum();
        if len == 0 {
            return LabelSet(None);
        }
        let mut out = String::with_capacity(len);
        for (k, v) in pairs {
            push_str(&mut out, k);
            push_str(&mut out, v);
        }
        LabelSet(Some(Arc::from(out)))
    }

    /// Builds a set from pairs in any order; of pairs with the same name the
    /// last wins (as inserting them into a map in turn would).
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: Vec<(K, V)>) -> Self {
        let mut refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        Self::normalise(&mut refs);
        Self::from_sorted(refs.iter().copied())
    }

    /// Sorts by name (stable) and keeps the last pair of each name.
    fn normalise(pairs: &mut Vec<(&str, &str)>) {
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return;
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for &(k, v) in pairs.iter() {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        *pairs = out;
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: self.0.as_deref().unwrap_or(""),
        }
    }

    /// The set as one text, in the length-prefixed form the module docs
    /// describe: equal sets give equal texts and different sets different
    /// ones, so a hash of a set can hash this at once instead of pair by
    /// pair. The empty set is the empty text.
    pub fn encoded(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_key_value(name).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, name: &str) -> Option<(&str, &str)> {
        for (k, v) in self.iter() {
            match k.cmp(name) {
                Ordering::Less => continue,
                Ordering::Equal => return Some((k, v)),
                Ordering::Greater => return None,
            }
        }
        None
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`; the previous value, if any. Rebuilds the set.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let (name, value) = (name.as_str(), value.as_str());
        let old = self.get(name).map(str::to_string);
        let mut pairs: Vec<(&str, &str)> = self.iter().filter(|(k, _)| *k != name).collect();
        let at = pairs.partition_point(|(k, _)| *k < name);
        pairs.insert(at, (name, value));
        *self = Self::from_sorted(pairs.into_iter());
        old
    }

    /// Removes `name`; its value, if it was there. Rebuilds the set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let old = self.get(name).map(str::to_string)?;
        let rebuilt = Self::from_sorted(self.iter().filter(|(k, _)| *k != name));
        *self = rebuilt;
        Some(old)
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Keeps the pairs `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let pairs: Vec<(&str, &str)> = self.iter().filter(|(k, v)| keep(k, v)).collect();
        *self = Self::from_sorted(pairs.into_iter());
    }

    /// Bytes this set holds on the heap (its one allocation, without the
    /// allocator's rounding), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |s| s.len() + 2 * size_of::<usize>())
    }
}

/// The pairs of a [`LabelSet`], sorted by name.
#[derive(Clone)]
pub struct Iter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let k = take_str(&mut self.rest);
        let v = take_str(&mut self.rest);
        Some((k, v))
    }
}

impl<'a> IntoIterator for &'a LabelSet {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(iter.into_iter().collect())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for LabelSet {
    fn from(pairs: [(K, V); N]) -> Self {
        Self::from_pairs(Vec::from(pairs))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for LabelSet {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let added: Vec<(K, V)> = iter.into_iter().collect();
        if added.is_empty() {
            return;
        }
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        pairs.extend(added.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        Self::normalise(&mut pairs);
        *self = Self::from_sorted(pairs.into_iter());
    }
}

impl From<&std::collections::BTreeMap<String, String>> for LabelSet {
    fn from(map: &std::collections::BTreeMap<String, String>) -> Self {
        Self::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<&LabelSet> for std::collections::BTreeMap<String, String> {
    fn from(set: &LabelSet) -> Self {
        set.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// `set["name"]`: the value, or a panic when there is none (as for a map).
impl std::ops::Index<&str> for LabelSet {
    type Output = str;

    fn index(&self, name: &str) -> &str {
        self.get(name).expect("no such label")
    }
}

/// Ordered as the sorted maps it replaces: pair by pair.
impl Ord for LabelSet {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for LabelSet {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Builds a set from names and values given in turn, sorted by name, in a
/// buffer the caller reuses: the log's own payload reader
/// (`eventlog::canonical`) encodes as the deserializer does, without serde.
pub(super) struct SortedPairs<'b> {
    buf: &'b mut String,
    prev: Option<std::ops::Range<usize>>,
}

impl<'b> SortedPairs<'b> {
    pub(super) fn new(buf: &'b mut String) -> Self {
        buf.clear();
        SortedPairs { buf, prev: None }
    }

    /// Appends a name; `false` (and nothing appended) if it does not sort
    /// after the previous one, a set the caller must build otherwise.
    pub(super) fn name(&mut self, name: &str) -> bool {
        if let Some(prev) = &self.prev
            && self.buf[prev.clone()] >= *name
        {
            return false;
        }
        push_str(self.buf, name);
        self.prev = Some(self.buf.len() - name.len()..self.buf.len());
        true
    }

    pub(super) fn value(&mut self, value: &str) {
        push_str(self.buf, value);
    }

    pub(super) fn finish(self) -> LabelSet {
        if self.buf.is_empty() {
            LabelSet(None)
        } else {
            LabelSet(Some(Arc::from(self.buf.as_str())))
        }
    }
}

/// Appends the string it is given to an encoded set, without allocating.
struct Append<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        push_str(self.0, s);
        Ok(())
    }
}

struct SetVisitor;

impl<'de> Visitor<'de> for SetVisitor {
    type Value = LabelSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelSet, A::Error> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        // Decode into a reused buffer, then copy it once into the set's own
        // allocation. Stored sets arrive sorted; anything else is sorted after.
        let mut own = String::new();
        SCRATCH.with(|cell| {
            let mut borrowed = cell.try_borrow_mut();
            let buf: &mut String = match &mut borrowed {
                Ok(b) => b,
                Err(_) => &mut own,
            };
            buf.clear();
            let mut sorted = true;
            let mut prev: Option<std::ops::Range<usize>> = None;
            loop {
                let start = buf.len();
                if map.next_key_seed(Append(buf))?.is_none() {
                    break;
                }
                let colon = start
                    + buf.as_bytes()[start..]
                        .iter()
                        .position(|&b| b == b':')
                        .expect("length prefix");
                let key = colon + 1..buf.len();
                if let Some(p) = prev
                    && buf[p] >= buf[key.clone()]
                {
                    sorted = false;
                }
                prev = Some(key);
                map.next_value_seed(Append(buf))?;
            }
            let set = if sorted {
                if buf.is_empty() {
                    LabelSet(None)
                } else {
                    LabelSet(Some(Arc::from(buf.as_str())))
                }
            } else {
                let mut rest = buf.as_str();
                let mut pairs = Vec::new();
                while !rest.is_empty() {
                    let k = take_str(&mut rest);
                    let v = take_str(&mut rest);
                    pairs.push((k, v));
                }
                LabelSet::from_pairs(pairs)
            };
            Ok(set)
        })
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cases() -> Vec<BTreeMap<String, String>> {
        vec![
            map(&[]),
            map(&[("alertname", "Up")]),
            map(&[("a", ""), ("", "x"), ("b:c", "1:2"), ("zz", "9:9:9")]),
            map(&[
                ("alertname", "HighLatency"),
                ("instance", "host-7:9100"),
                ("job", "node"),
                ("severity", "critical"),
                ("summary", "ünïcödé ✓ \"quoted\" \\ back\nslash"),
                ("long", &"x".repeat(1234)),
            ]),
        ]
    }

    #[test]
    fn reads_like_the_sorted_map_it_replaces() {
        for m in cases() {
            let set = LabelSet::from(&m);
            let pairs: Vec<(&str, &str)> = set.iter().collect();
            let want: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(pairs, want);
            assert_eq!(set.len(), m.len());
            assert_eq!(set.is_empty(), m.is_empty());
            for (k, v) in &m {
                assert_eq!(set.get(k), Some(v.as_str()));
                assert!(set.contains_key(k));
            }
            assert_eq!(set.get("not-there"), None);
            assert_eq!(BTreeMap::from(&set), m);
            assert_eq!(format!("{set:?}"), format!("{m:?}"));
        }
    }

    #[test]
    fn json_is_byte_for_byte_the_maps_json() {
        for m in cases() {
            let set = LabelSet::from(&m);
            let json = serde_json::to_string(&set).unwrap();
            assert_eq!(json, serde_json::to_string(&m).unwrap());
            let back: LabelSet = serde_json::from_str(&json).unwrap();
            assert_eq!(back, set);
        }
    }

    #[test]
    fn unsorted_and_repeated_json_keys_decode_as_a_map_would() {
        let json = r#"{"b":"2","a":"1","c":"3","a":"again","\u0061b":"esc"}"#;
        let set: LabelSet = serde_json::from_str(json).unwrap();
        let m: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        assert_eq!(BTreeMap::from(&set), m);
        assert_eq!(set, LabelSet::from(&m));
        // Not a map of strings: refused, as the map refuses it.
        assert!(serde_json::from_str::<LabelSet>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<LabelSet>(r#"["a"]"#).is_err());
        let empty: LabelSet = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty, LabelSet::new());
    }

    #[test]
    fn changes_rebuild_a_sorted_set() {
        let mut set: LabelSet = [("b", "2"), ("a", "1")].into();
        assert_eq!(set.insert("c".into(), "3".into()), None);
        assert_eq!(set.insert("a".into(), "one".into()), Some("1".to_string()));
        assert_eq!(set.insert("".into(), "empty name".into()), None);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![("", "empty name"), ("a", "one"), ("b", "2"), ("c", "3")]
        );
        assert_eq!(set.remove("b"), Some("2".to_string()));
        assert_eq!(set.remove("b"), None);
        set.retain(|k, _| !k.is_empty());
        assert_eq!(set.keys().collect::<Vec<_>>(), vec!["a", "c"]);
        set.extend([("d", "4"), ("a", "uno")]);
        assert_eq!(set.get("a"), Some("uno"));
        assert_eq!(set.values().collect::<Vec<_>>(), vec!["uno", "3", "4"]);
        set.clear();
        assert!(set.is_empty());
        // Last of a repeated name wins, as in a map built by inserting.
        let set: LabelSet = vec![("a", "1"), ("a", "2")].into_iter().collect();
        assert_eq!(set.get("a"), Some("2"));
    }

    #[test]
    fn ordered_and_equal_as_the_maps() {
        let all = cases();
        for a in &all {
            for b in &all {
                let (sa, sb) = (LabelSet::from(a), LabelSet::from(b));
                assert_eq!(sa.cmp(&sb), a.cmp(b));
                assert_eq!(sa == sb, a == b);
            }
        }
    }
}
