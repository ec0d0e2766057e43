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
