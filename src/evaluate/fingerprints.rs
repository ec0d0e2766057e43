//! Compact lists of fingerprints, for the views that keep one or more per
//! group or incident (the dispatcher's group states, incidents): tens of
//! thousands of small lists, where a `String` per fingerprint (24 bytes and
//! a heap block of its 16 characters) and a B-tree node per set were most
//! of what those views held.
//!
//! A list holds its fingerprints as `u64`s when every entry is in the
//! canonical form (`Fingerprint`'s `%016x`, which is what the dispatcher
//! writes into its decisions), and as text otherwise, so that any list an
//! event carries comes back exactly as it went in. It serialises, compares
//! and prints as the list of strings it stands for: never a different JSON
//! shape from the `Vec<String>`/`BTreeSet<String>` it replaces.
//!
//! Must never reorder an ordered list, nor yield a string that was not in
//! the list given.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Fingerprint;

/// The fingerprint `s` is the canonical form of, if any.
pub fn canonical(s: &str) -> Option<Fingerprint> {
    // `Fingerprint::parse` also takes upper-case digits, which print back
    // otherwise.
    Fingerprint::parse(s).filter(|_| !s.bytes().any(|b| b.is_ascii_uppercase()))
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Compact(Box<[Fingerprint]>),
    Text(Box<[String]>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Compact(Box::new([]))
    }
}

impl Repr {
    /// In the order given.
    fn of<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Repr {
        let items: Vec<S> = items.into_iter().collect();
        let compact: Option<Box<[Fingerprint]>> =
            items.iter().map(|s| canonical(s.as_ref())).collect();
        match compact {
            Some(c) => Repr::Compact(c),
            None => Repr::Text(items.iter().map(|s| s.as_ref().to_string()).collect()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Repr::Compact(c) => c.len(),
            Repr::Text(t) => t.len(),
        }
    }

    fn strings(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        let (c, t) = match self {
            Repr::Compact(c) => (&c[..], &[][..]),
            Repr::Text(t) => (&[][..], &t[..]),
        };
        c.iter()
            .map(|fp| Cow::Owned(fp.to_string()))
            .chain(t.iter().map(|s| Cow::Borrowed(s.as_str())))
    }

    fn entries(&self) -> impl Iterator<Item = Option<Fingerprint>> + '_ {
        let (c, t) = match self {
            Repr::Compact(c) => (&c[..], &[][..]),
            Repr::Text(t) => (&[][..], &t[..]),
        };
        c.iter()
            .map(|fp| Some(*fp))
            .chain(t.iter().map(|s| canonical(s)))
    }
}

/// A sorted set of fingerprints (what a `BTreeSet<String>` of them was):
/// built once from a decision and read until the next one.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SortedFingerprints(Repr);

impl SortedFingerprints {
    /// The set of `items`, sorted as their strings sort (for canonical
    /// fingerprints, as their numbers do).
    pub fn of<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        SortedFingerprints(match Repr::of(items) {
            Repr::Compact(c) => {
                let mut c = c.into_vec();
                c.sort_unstable();
                c.dedup();
                Repr::Compact(c.into_boxed_slice())
            }
            Repr::Text(t) => {
                let mut t = t.into_vec();
                t.sort_unstable();
                t.dedup();
                Repr::Text(t.into_boxed_slice())
            }
        })
    }

    /// The set of fingerprints `fps`.
    pub fn of_fingerprints(fps: impl IntoIterator<Item = Fingerprint>) -> Self {
        let mut c: Vec<Fingerprint> = fps.into_iter().collect();
        c.sort_unstable();
        c.dedup();
        SortedFingerprints(Repr::Compact(c.into_boxed_slice()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, fp: Fingerprint) -> bool {
        match &self.0 {
            Repr::Compact(c) => c.binary_search(&fp).is_ok(),
            Repr::Text(t) => t.binary_search(&fp.to_string()).is_ok(),
        }
    }

    pub fn contains_str(&self, s: &str) -> bool {
        match &self.0 {
            Repr::Compact(c) => canonical(s).is_some_and(|fp| c.binary_search(&fp).is_ok()),
            Repr::Text(t) => t.binary_search_by(|x| x.as_str().cmp(s)).is_ok(),
        }
    }

    /// The members as strings, sorted.
    pub fn strings(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.0.strings()
    }

    /// The members in order, each as the fingerprint it is the canonical
    /// form of (`None`: a string that is none, so no alert's).
    pub fn entries(&self) -> impl Iterator<Item = Option<Fingerprint>> + '_ {
        self.0.entries()
    }
}

/// A list of fingerprints in the order given (what a `Vec<String>` of them
/// was).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FingerprintList(Repr);

impl FingerprintList {
    pub fn of<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        FingerprintList(Repr::of(items))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_str(&self, s: &str) -> bool {
        match &self.0 {
            Repr::Compact(c) => canonical(s).is_some_and(|fp| c.contains(&fp)),
            Repr::Text(t) => t.iter().any(|x| x == s),
        }
    }

    /// The entries as strings, in order.
    pub fn strings(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.0.strings()
    }

    pub fn first(&self) -> Option<String> {
        self.strings().next().map(Cow::into_owned)
    }

    /// The entries as the `Vec<String>` they stand for.
    pub fn to_strings(&self) -> Vec<String> {
        self.strings().map(Cow::into_owned).collect()
    }

    /// `s` appended (a copy of the list: appends are rare).
    pub fn push_str(&mut self, s: &str) {
        let mut all = self.to_strings();
        all.push(s.to_string());
        *self = FingerprintList::of(all);
    }

    pub fn clear(&mut self) {
        *self = FingerprintList::default();
    }
}

impl Serialize for Repr {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_seq(self.strings())
    }
}

impl Serialize for SortedFingerprints {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.0.serialize(serializer)
    }
}

impl Serialize for FingerprintList {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SortedFingerprints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(SortedFingerprints::of(Vec::<String>::deserialize(
            deserializer,
        )?))
    }
}

impl<'de> Deserialize<'de> for FingerprintList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(FingerprintList::of(Vec::<String>::deserialize(
            deserializer,
        )?))
    }
}

impl std::fmt::Debug for Repr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.strings()).finish()
    }
}

impl std::fmt::Debug for SortedFingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for FingerprintList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_fingerprints_are_kept_as_numbers_and_print_back_the_same() {
        let fps = ["00000000000000ff", "0123456789abcdef", "fedcba9876543210"];
        let set = SortedFingerprints::of([fps[2], fps[0], fps[1], fps[0]]);
        assert!(matches!(set.0, Repr::Compact(_)));
        assert_eq!(set.strings().collect::<Vec<_>>(), fps);
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            serde_json::to_string(&fps).unwrap()
        );
        assert!(set.contains(Fingerprint(0xff)));
        assert!(set.contains_str("0123456789abcdef"));
        assert!(!set.contains_str("0123456789ABCDEF"));
        let list = FingerprintList::of([fps[2], fps[0]]);
        assert_eq!(list.to_strings(), [fps[2], fps[0]]);
        assert_eq!(
            serde_json::from_str::<FingerprintList>(r#"["fedcba9876543210","00000000000000ff"]"#)
                .unwrap(),
            list
        );
    }

    #[test]
    fn lists_with_any_other_string_are_kept_as_text_in_the_same_order() {
        // Upper-case digits parse as a fingerprint but print otherwise.
        let list = FingerprintList::of(["b", "00000000000000FF", "a"]);
        assert!(matches!(list.0, Repr::Text(_)));
        assert_eq!(list.to_strings(), ["b", "00000000000000FF", "a"]);
        assert!(list.contains_str("a") && !list.contains_str("00000000000000ff"));
        let set = SortedFingerprints::of(["b", "00000000000000ff", "a", "b"]);
        assert_eq!(
            set.strings().collect::<Vec<_>>(),
            ["00000000000000ff", "a", "b"]
        );
        assert!(set.contains(Fingerprint(0xff)) && set.contains_str("a"));
        assert_eq!(
            set.entries().collect::<Vec<_>>(),
            [Some(Fingerprint(0xff)), None, None]
        );
        let mut pushed = FingerprintList::of(["00000000000000ff"]);
        pushed.push_str("x");
        assert_eq!(pushed.to_strings(), ["00000000000000ff", "x"]);
    }
}
