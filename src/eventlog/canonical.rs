//! The hottest payloads read in the form the log writes them, without serde.
//!
//! Replay decodes every stored event, and nearly all of them are
//! `alert.received`, `alert.resolved` and `alert.refreshed`. Through serde
//! each string of such a payload (about thirty in an alert report) costs a
//! round of whitespace skipping, peeking, identifier matching and visitor
//! calls; here it is one scan to its closing quote.
//!
//! The form read is serde_json's compact output of these payloads: no
//! whitespace, strings with at most the one-character escapes (`\n`, `\"`,
//! …), label names in order. Anything else — whitespace, `\u` escapes,
//! unknown, repeated or `null` fields, labels out of order, text after the
//! payload, a value serde would refuse — answers `None`, and
//! [`EventKind::decode`] decodes it through serde as before. So what a
//! payload decodes to never depends on which path read it; the tests hold
//! the two paths to that on every shape and on thousands of damaged ones.

use std::cell::RefCell;
use std::sync::Arc;

use super::event::stored_time;
use super::event::{AlertReport, AlertResolution, EventKind, Lease, LeaseFingerprints};
use super::labels::{LabelSet, SortedPairs};
use super::text::CompactText;

/// `kind`'s payload, when `kind` is one this module reads and `payload` is
/// in the log's own form; `None` for serde to decode.
pub(super) fn decode(kind: &str, payload: &str) -> Option<EventKind> {
    match kind {
        "alert.received" => with_reader(payload, |r| {
            let report = r.report()?;
            r.end()?;
            Some(EventKind::AlertReceived(Arc::new(report)))
        }),
        "alert.resolved" => with_reader(payload, |r| {
            let resolution = r.resolution()?;
            r.end()?;
            Some(EventKind::AlertResolved(resolution))
        }),
        "alert.refreshed" => with_reader(payload, |r| {
            let leases = r.refreshed()?;
            r.end()?;
            Some(EventKind::AlertRefreshed { leases })
        }),
        _ => None,
    }
}

/// Buffers a reader reuses from one payload to the next: the text of a
/// string with escapes, and a label set being encoded.
#[derive(Default)]
struct Scratch {
    unescaped: String,
    set: String,
}

fn with_reader<T>(payload: &str, read: impl FnOnce(&mut Reader<'_, '_>) -> Option<T>) -> Option<T> {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::default();
    }
    SCRATCH.with(|cell| {
        let mut own = Scratch::default();
        let mut borrowed = cell.try_borrow_mut();
        let scratch = match &mut borrowed {
            Ok(s) => &mut **s,
            Err(_) => &mut own,
        };
        read(&mut Reader {
            text: payload,
            at: 0,
            unescaped: &mut scratch.unescaped,
            set: &mut scratch.set,
        })
    })
}

/// The high bit of each byte of `word` (read little-endian) that is `"`,
/// `\` or below 0x20 — and maybe of bytes after the first such one, never
/// before it: the lowest bit set is always the first stop.
fn stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero (or, `below`, under `n`): the borrow of the
    // subtraction sets its high bit. Borrows only run upwards, so they
    // can mark later bytes falsely, never earlier ones.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | below(word, 0x20)
}

struct Reader<'a, 's> {
    text: &'a str,
    at: usize,
    unescaped: &'s mut String,
    set: &'s mut String,
}

impl<'a> Reader<'a, '_> {
    /// Takes the next byte.
    fn next(&mut self) -> Option<u8> {
        let b = *self.text.as_bytes().get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// Takes `b`, which must come next.
    fn byte(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Nothing may follow the payload (serde would allow whitespace: it
    /// reads that one).
    fn end(&self) -> Option<()> {
        (self.at == self.text.len()).then_some(())
    }

    /// Takes `,` (`true`: another member follows) or `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        match self.next()? {
            b',' => Some(true),
            b if b == close => Some(false),
            _ => None,
        }
    }

    /// A string without escapes, where it lies (the names of fields).
    fn plain(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let end = start + self.run()?;
        if self.text.as_bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// Bytes from here to the first `"`, `\` or control character (which
    /// JSON forbids in strings: serde refuses them); `None` at the end of
    /// the text.
    fn run(&self) -> Option<usize> {
        let rest = &self.text.as_bytes()[self.at..];
        // Eight bytes at a time: most strings here are 5–50 bytes long.
        let mut i = 0;
        while let Some(word) = rest.get(i..i + 8) {
            let found = stops(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            if found != 0 {
                return Some(i + (found.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        rest[i..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map(|at| i + at)
    }

    /// A string: where it lies, or unescaped into the scratch buffer when
    /// it has escapes. `\u` escapes are left to serde.
    fn string(&mut self) -> Option<&str> {
        self.byte(b'"')?;
        let start = self.at;
        let mut end = start + self.run()?;
        let text = self.text;
        let bytes = text.as_bytes();
        match bytes[end] {
            b'"' => {
                self.at = end + 1;
                return Some(&self.text[start..end]);
            }
            b'\\' => {}
            _ => return None,
        }
        self.unescaped.clear();
        self.unescaped.push_str(&self.text[start..end]);
        loop {
            // `end` is at a backslash.
            let unescaped = match *bytes.get(end + 1)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                _ => return None,
            };
            self.unescaped.push(unescaped);
            self.at = end + 2;
            end = self.at + self.run()?;
            self.unescaped.push_str(&self.text[self.at..end]);
            match bytes[end] {
                b'"' => {
                    self.at = end + 1;
                    return Some(self.unescaped.as_str());
                }
                b'\\' => {}
                _ => return None,
            }
        }
    }

    /// `{"name":"value",…}` with the names in order.
    fn label_set(&mut self) -> Option<LabelSet> {
        self.byte(b'{')?;
        let mut set = std::mem::take(self.set);
        let built = self.pairs(&mut set);
        *self.set = set;
        built
    }

    fn pairs(&mut self, buf: &mut String) -> Option<LabelSet> {
        let mut pairs = SortedPairs::new(buf);
        if self.text.as_bytes().get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(pairs.finish());
        }
        loop {
            if !pairs.name(self.string()?) {
                return None;
            }
            self.byte(b':')?;
            pairs.value(self.string()?);
            if !self.more(b'}')? {
                return Some(pairs.finish());
            }
        }
    }

    fn time(&mut self) -> Option<chrono::DateTime<chrono::Utc>> {
        stored_time::parsed(self.string()?)
    }

    /// An [`AlertReport`] without `extra` fields.
    fn report(&mut self) -> Option<AlertReport> {
        self.byte(b'{')?;
        let mut fingerprint = None;
        let mut labels = None;
        let mut annotations = None;
        let mut starts_at = None;
        let mut ends_at = None;
        let mut generator_url = None;
        loop {
            let name = self.plain()?;
            self.byte(b':')?;
            // A field twice is an error to serde: left to it.
            match name {
                "fingerprint" if fingerprint.is_none() => {
                    fingerprint = Some(CompactText::from(self.string()?));
                }
                "labels" if labels.is_none() => labels = Some(self.label_set()?),
                "annotations" if annotations.is_none() => {
                    annotations = Some(self.label_set()?);
                }
                "starts_at" if starts_at.is_none() => starts_at = Some(self.time()?),
                "ends_at" if ends_at.is_none() => ends_at = Some(self.time()?),
                "generator_url" if generator_url.is_none() => {
                    generator_url = Some(self.string()?.to_owned());
                }
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        Some(AlertReport {
            fingerprint: fingerprint?,
            labels: labels?,
            annotations: annotations.unwrap_or_default(),
            starts_at: starts_at?,
            ends_at,
            generator_url: generator_url.unwrap_or_default(),
            extra: Default::default(),
        })
    }

    fn resolution(&mut self) -> Option<AlertResolution> {
        self.byte(b'{')?;
        let mut fingerprint = None;
        let mut ends_at = None;
        let mut reason = None;
        let mut report = None;
        loop {
            let name = self.plain()?;
            self.byte(b':')?;
            match name {
                "fingerprint" if fingerprint.is_none() => {
                    fingerprint = Some(self.string()?.to_owned());
                }
                "ends_at" if ends_at.is_none() => ends_at = Some(self.time()?),
                "reason" if reason.is_none() => reason = Some(self.string()?.to_owned()),
                "report" if report.is_none() => report = Some(self.report()?),
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        Some(AlertResolution {
            fingerprint: fingerprint?,
            ends_at: ends_at?,
            reason: reason?,
            report,
        })
    }

    /// `alert.refreshed`'s payload: `{"leases":[…]}`.
    fn refreshed(&mut self) -> Option<Vec<Lease>> {
        self.byte(b'{')?;
        if self.plain()? != "leases" {
            return None;
        }
        self.byte(b':')?;
        self.byte(b'[')?;
        let mut leases = Vec::new();
        if self.text.as_bytes().get(self.at) != Some(&b']') {
            loop {
                leases.push(self.lease()?);
                if !self.more(b']')? {
                    break;
                }
            }
        } else {
            self.at += 1;
        }
        self.byte(b'}')?;
        Some(leases)
    }

    fn lease(&mut self) -> Option<Lease> {
        self.byte(b'{')?;
        let mut ends_at = None;
        let mut fingerprints = None;
        loop {
            let name = self.plain()?;
            self.byte(b':')?;
            match name {
                "ends_at" if ends_at.is_none() => ends_at = Some(self.time()?),
                "fingerprints" if fingerprints.is_none() => {
                    fingerprints = Some(self.fingerprints()?);
                }
                _ => return None,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        Some(Lease {
            ends_at: ends_at?,
            fingerprints: fingerprints?,
        })
    }

    fn fingerprints(&mut self) -> Option<LeaseFingerprints> {
        self.byte(b'[')?;
        // Each one is 19 bytes written (`"…",`): room for them all at once.
        let mut out = LeaseFingerprints::with_capacity((self.text.len() - self.at) / 19);
        if self.text.as_bytes().get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(out);
        }
        loop {
            out.push_str(self.string()?);
            if !self.more(b']')? {
                return Some(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn report(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> AlertReport {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::milliseconds(10);
        AlertReport {
            fingerprint: "c1aa0b0a096d9f6c".into(),
            labels: labels.iter().copied().collect(),
            annotations: annotations.iter().copied().collect(),
            starts_at: t,
            ends_at: Some(t + Duration::minutes(4)),
            generator_url: "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22node%22%7D".into(),
            extra: Default::default(),
        }
    }

    /// Payloads as the log writes them, of every shape this module reads.
    fn written() -> Vec<EventKind> {
        let node = [
            ("alertname", "NodeDown"),
            ("cluster", "prod-0"),
            ("instance", "host-0:9100"),
            ("job", "node"),
        ];
        let notes = [("description", "90% used"), ("summary", "Disk full")];
        let mut out = vec![
            EventKind::AlertReceived(Arc::new(report(&node, &notes))),
            EventKind::AlertReceived(Arc::new(report(&node, &[]))),
            EventKind::AlertReceived(Arc::new(report(&[], &[]))),
            EventKind::AlertReceived(Arc::new(report(
                &[("alertname", "Quoted \"x\" \\ / back\\slash"), ("z", "")],
                &[
                    ("description", "line one\nline two\r\n\ttabbed \u{8}\u{c}"),
                    ("summary", "非 ASCII ✓ 烽火"),
                ],
            ))),
            EventKind::AlertReceived(Arc::new(report(
                &[("alertname", "\u{1}control\u{1f}")],
                &[],
            ))),
        ];
        let mut no_end = report(&node, &notes);
        no_end.ends_at = None;
        no_end.generator_url.clear();
        out.push(EventKind::AlertReceived(Arc::new(no_end.clone())));
        let mut with_extra = report(&node, &notes);
        with_extra
            .extra
            .insert("values".into(), serde_json::json!({"B": 1.5}));
        out.push(EventKind::AlertReceived(Arc::new(with_extra.clone())));
        let long = "x".repeat(200);
        out.push(EventKind::AlertReceived(Arc::new(AlertReport {
            fingerprint: long.as_str().into(),
            ..report(&[("alertname", &long), (&long, "v")], &[])
        })));
        let ends_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 4, 0).unwrap();
        for report in [None, Some(no_end), Some(with_extra)] {
            out.push(EventKind::AlertResolved(AlertResolution {
                fingerprint: "7d21ee2b9d6dec94".into(),
                ends_at,
                reason: "resolved by source".into(),
                report,
            }));
        }
        out.push(EventKind::AlertResolved(AlertResolution {
            fingerprint: "odd \"one\"".into(),
            ends_at,
            reason: String::new(),
            report: None,
        }));
        let fps = |texts: &[&str]| -> LeaseFingerprints { texts.iter().copied().collect() };
        out.push(EventKind::AlertRefreshed { leases: vec![] });
        out.push(EventKind::AlertRefreshed {
            leases: vec![
                Lease {
                    ends_at,
                    fingerprints: fps(&["c1aa0b0a096d9f6c", "7d21ee2b9d6dec94"]),
                },
                Lease {
                    ends_at: ends_at + Duration::seconds(1),
                    fingerprints: fps(&[]),
                },
                Lease {
                    ends_at,
                    fingerprints: fps(&["C1AA0B0A096D9F6C", "short", "q\"uoted", ""]),
                },
            ],
        });
        out
    }

    #[test]
    fn the_word_scan_finds_the_first_stop_as_a_byte_scan_does() {
        let bytes = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xe7, 0xff, b'\n',
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let word: [u8; 8] =
                std::array::from_fn(|i| bytes[(seed >> (i * 5)) as usize % bytes.len()]);
            let expected = word
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let found = stops(u64::from_le_bytes(word));
            let first = (found != 0).then(|| (found.trailing_zeros() / 8) as usize);
            assert_eq!(first, expected, "{word:?}");
        }
    }

    fn serde(kind: &str, payload: &str) -> Option<EventKind> {
        EventKind::decode_with_serde(kind, payload).ok()
    }

    #[test]
    fn written_payloads_read_as_serde_reads_them() {
        for kind in written() {
            let payload = kind.payload_json();
            let name = kind.name();
            let expected = serde(name, &payload).expect("serde reads what it wrote");
            assert_eq!(expected, kind, "{payload}");
            let has_extra = matches!(&kind, EventKind::AlertReceived(r) if !r.extra.is_empty())
                || matches!(&kind, EventKind::AlertResolved(r)
                    if r.report.as_ref().is_some_and(|r| !r.extra.is_empty()));
            match decode(name, &payload) {
                Some(fast) => assert_eq!(fast, expected, "{payload}"),
                // Only what it leaves to serde on purpose.
                None => assert!(has_extra || payload.contains("\\u"), "{payload}"),
            }
        }
    }

    /// Text serde reads differently from the log's own form, or refuses:
    /// the canonical reader leaves all of it to serde, or agrees.
    #[test]
    fn other_forms_are_left_to_serde_or_read_alike() {
        let fp = r#""fingerprint":"c1aa0b0a096d9f6c""#;
        let t = r#""starts_at":"2026-01-01T00:00:00Z""#;
        let cases: &[(&str, String)] = &[
            ("alert.received", format!(r#"{{ {fp},"labels":{{}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t}}} "#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t}}}x"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t},"unknown":1}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t},{fp}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"b":"1","a":"2"}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"a":"1","a":"2"}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"a":"\u00e9"}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"a":"\ud800"}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"a":"\x"}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{"a":1}},{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":null,{t}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t},"ends_at":null}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},"starts_at":"2026-02-30T00:00:00Z"}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},"starts_at":"2026-01-01T08:00:00+08:00"}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}}}}"#)),
            ("alert.received", format!(r#"{{"labels":{{}},{t},{fp}}}"#)),
            ("alert.received", format!(r#"{{{fp},"labels":{{}},{t},"generator_url":"a\"b"}}"#)),
            ("alert.received", format!(r#"{{"finger\u0070rint":"c1aa0b0a096d9f6c","labels":{{}},{t}}}"#)),
            ("alert.received", "{}".into()),
            ("alert.received", "".into()),
            ("alert.resolved", r#"{"fingerprint":"a","ends_at":"2026-01-01T00:00:00Z","reason":"r","report":null}"#.into()),
            ("alert.resolved", r#"{"fingerprint":"a","ends_at":"2026-01-01T00:00:00Z"}"#.into()),
            ("alert.resolved", r#"{"fingerprint":"a","ends_at":"2026-01-01T00:00:00Z","reason":"r","reason":"r"}"#.into()),
            ("alert.refreshed", r#"{"leases":[],"leases":[]}"#.into()),
            ("alert.refreshed", r#"{"leases":[{"ends_at":"2026-01-01T00:00:00Z"}]}"#.into()),
            ("alert.refreshed", r#"{"leases":[{"ends_at":"2026-01-01T00:00:00Z","fingerprints":["a",]}]}"#.into()),
            ("alert.refreshed", r#"{"leases":[{"ends_at":"2026-01-01T00:00:00Z","fingerprints":[1]}]}"#.into()),
            ("alert.refreshed", r#"{"leases":[{"ends_at":"2026-01-01T00:00:00Z","fingerprints":["c1aa0b0a096d9f6c"],"x":0}]}"#.into()),
            ("alert.refreshed", r#"{"leases":{}}"#.into()),
        ];
        for (kind, payload) in cases {
            if let Some(fast) = decode(kind, payload) {
                assert_eq!(Some(fast), serde(kind, payload), "{payload}");
            }
            assert_eq!(
                EventKind::decode(kind, payload).ok(),
                serde(kind, payload),
                "{payload}"
            );
        }
    }

    /// Every written payload with each byte deleted or replaced by each of
    /// a few characters that matter to JSON: wherever the canonical reader
    /// accepts the text, serde reads the same kind from it.
    #[test]
    fn damaged_payloads_are_read_as_serde_reads_them_or_left_to_it() {
        let mut accepted = 0;
        let mut checked = 0;
        for kind in written() {
            let name = kind.name();
            let payload = kind.payload_json().into_bytes();
            for at in 0..payload.len() {
                let mut variants = vec![];
                let mut deleted = payload.clone();
                deleted.remove(at);
                variants.push(deleted);
                for b in *br#"" \{}[],:0a\n"# {
                    let mut replaced = payload.clone();
                    replaced[at] = b;
                    variants.push(replaced);
                    let mut inserted = payload.clone();
                    inserted.insert(at, b);
                    variants.push(inserted);
                }
                for text in variants {
                    let Ok(text) = String::from_utf8(text) else {
                        continue;
                    };
                    checked += 1;
                    if let Some(fast) = decode(name, &text) {
                        accepted += 1;
                        assert_eq!(Some(fast), serde(name, &text), "{text}");
                    }
                }
            }
        }
        // The check means something only if damaged text is still read.
        assert!(
            accepted > 1000 && checked > 50_000,
            "{accepted} of {checked}"
        );
    }
}
