//! Alert fingerprints, computed exactly as Alertmanager and Prometheus compute
//! them (`model.LabelSet.Fingerprint`): FNV-1a 64 over the label pairs sorted
//! by name, each name and value followed by the separator byte 0xff. A
//! fingerprint here therefore equals the one Alertmanager, Prometheus and
//! karma show for the same labels.

use crate::eventlog::LabelSet;

const OFFSET64: u64 = 14695981039346656037;
const PRIME64: u64 = 1099511628211;
const SEPARATOR: u8 = 0xff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The fingerprint of a label set (sorted by name, as `LabelSet` is).
    pub fn of(labels: &LabelSet) -> Fingerprint {
        let mut h = Fnv64::new();
        for (name, value) in labels {
            h.write(name.as_bytes());
            h.write_byte(SEPARATOR);
            h.write(value.as_bytes());
            h.write_byte(SEPARATOR);
        }
        Fingerprint(h.finish())
    }

    /// Parses the 16-hex-digit form.
    pub fn parse(s: &str) -> Option<Fingerprint> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
}

impl std::fmt::Display for Fingerprint {
    /// Alertmanager's form: `%016x`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// FNV-1a, 64 bit. Also used for content hashes that must be stable across
/// processes and versions (std's hasher is neither).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    pub fn new() -> Self {
        Fnv64(OFFSET64)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    pub fn write_byte(&mut self, b: u8) {
        self.0 ^= b as u64;
        self.0 = self.0.wrapping_mul(PRIME64);
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Hashing for tables keyed by fingerprint (`u64`), which the views look
/// up several times per event replay folds. Fingerprints are already
/// hashes, so std's SipHash (a tenth of the alert store's fold) buys
/// nothing but time; one multiply with a per-table random seed spreads them
/// over buckets, and the seed keeps a sender from choosing label sets that
/// fill one bucket.
#[derive(Clone, Copy)]
pub struct FingerprintHashing {
    seed: u64,
}

/// A `HashMap` keyed by fingerprint.
pub type FingerprintMap<V> = std::collections::HashMap<u64, V, FingerprintHashing>;
/// A `HashSet` of fingerprints.
pub type FingerprintSet = std::collections::HashSet<u64, FingerprintHashing>;

impl Default for FingerprintHashing {
    fn default() -> Self {
        use std::hash::BuildHasher;
        FingerprintHashing {
            // Odd, so the multiply below is a bijection.
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64) | 1,
        }
    }
}

impl std::hash::BuildHasher for FingerprintHashing {
    type Hasher = FingerprintHasher;

    fn build_hasher(&self) -> FingerprintHasher {
        FingerprintHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

pub struct FingerprintHasher {
    seed: u64,
    hash: u64,
}

/// The 128-bit product folded to 64 bits: every input bit reaches both the
/// low bits (the bucket) and the high bits (hashbrown's tag).
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl std::hash::Hasher for FingerprintHasher {
    fn write_u64(&mut self, n: u64) {
        self.hash = folded_multiply(self.hash ^ n, self.seed);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Keys other than a fingerprint: eight bytes at a time.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_fingerprints_alertmanager_0_25_sent() {
        // From tests/fixtures/alertmanager-0.25-webhook-firing.json.
        let cases = [
            ("sda", "01381f054fec484f"),
            ("sdb", "03ed344886c863c4"),
            ("sdc", "29218fe5c41dcf09"),
        ];
        for (device, want) in cases {
            let ls = labels(&[
                ("alertname", "BenchCapture"),
                ("bench_phase", "capture"),
                ("bench_route", "gw0"),
                ("device", device),
                ("instance", "capture-host:9100"),
                ("job", "node"),
                ("severity", "critical"),
            ]);
            assert_eq!(Fingerprint::of(&ls).to_string(), want, "device {device}");
        }
    }

    #[test]
    fn empty_label_set_is_the_fnv_offset() {
        // Prometheus' emptyLabelSignature = hashNew().
        assert_eq!(Fingerprint::of(&LabelSet::new()).0, OFFSET64);
    }

    #[test]
    fn parse_round_trips_the_hex_form() {
        let fp = Fingerprint(0x01381f054fec484f);
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        assert_eq!(Fingerprint::parse("xyz"), None);
    }
}
