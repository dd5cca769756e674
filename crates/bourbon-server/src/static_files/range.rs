//! Byte-range requests: `Range` and `If-Range` (RFC 9110 §14, §13.1.5).
//!
//! This module owns the decision between a whole response (200), one part (206) and
//! "range not satisfiable" (416), and the text of `Content-Range`. It is pure: the caller
//! applies it only to GET (RFC 9110 §14.2: Range is defined for GET; HEAD ignores it) and
//! only after the preconditions of [`super::conditional`] have let the request proceed.
//!
//! Decisions (RFC 9110 lets a server ignore `Range`, §14.2, and bourbon uses that freedom to
//! stay simple):
//!
//! - Only the `bytes` unit (case-insensitive) is understood; any other unit, and any
//!   syntax error anywhere in the range set (including an `int-range` whose last-pos is below
//!   its first-pos, §14.1.1), makes the field ignored: the whole representation, 200.
//! - One satisfiable range gives a 206; several range-specs give the whole representation
//!   (no `multipart/byteranges`), unless none of them is satisfiable, which is a 416.
//! - Satisfiable (§14.1.1): an `int-range` whose first-pos is below the length, or a
//!   `suffix-range` with a non-zero length. A last-pos at or beyond the end is cut to the
//!   last byte; a suffix longer than the representation asks for all of it (a 206 of
//!   `0-(len-1)`).
//! - A zero-length representation: its only satisfiable form, a non-zero suffix, selects
//!   zero bytes, which `Content-Range` cannot express, so it is answered [`RangeOutcome::Full`]
//!   (a 200 with an empty body); every other byte range set is unsatisfiable.
//! - Numbers of any length are read without overflow: a first-pos beyond `u64` cannot be
//!   below the length (unsatisfiable); a last-pos or suffix beyond it is cut as above.
//! - `If-Range` (§13.1.5) holds for a strong entity tag equal to the current one (a weak tag
//!   never matches) or an HTTP-date equal to `Last-Modified` at whole-second precision;
//!   anything else, malformed values included, makes the `Range` ignored (200 whole).
//!   `If-Range` without `Range` is ignored.

use super::conditional::{parse_date, parse_entity_tag, trim_ows, Validators};

/// What a GET with these `Range` / `If-Range` fields gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with the bytes `start..=end`; always `start <= end < len`.
    Partial {
        start: u64,
        end: u64, /* inclusive */
    },
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// `range`: the Range field; `if_range`: the If-Range field; `len`: the representation's length.
pub fn evaluate(
    range: Option<&[u8]>,
    if_range: Option<&[u8]>,
    len: u64,
    v: &Validators,
) -> RangeOutcome {
    let Some(range) = range else {
        return RangeOutcome::Full;
    };
    if let Some(if_range) = if_range {
        if !if_range_holds(if_range, v) {
            return RangeOutcome::Full;
        }
    }
    select(range, len)
}

/// `bytes START-END/LEN`
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    let mut s = String::with_capacity(6 + 3 * 20 + 2);
    let mut buf = itoa::Buffer::new();
    s.push_str("bytes ");
    s.push_str(buf.format(start));
    s.push('-');
    s.push_str(buf.format(end));
    s.push('/');
    s.push_str(buf.format(len));
    s
}

/// `bytes */LEN`
pub fn unsatisfied_range(len: u64) -> String {
    let mut s = String::with_capacity(8 + 20);
    s.push_str("bytes */");
    s.push_str(itoa::Buffer::new().format(len));
    s
}

/// RFC 9110 §13.1.5: an entity tag is compared strongly; a date must equal Last-Modified.
fn if_range_holds(value: &[u8], v: &Validators) -> bool {
    let value = trim_ows(value);
    // Fast path: the tag we sent, as clients send it back.
    if value == v.etag.as_bytes() {
        return true;
    }
    if value.first() == Some(&b'"') || value.starts_with(b"W/") {
        return parse_entity_tag(value)
            .is_some_and(|tag| !tag.weak && tag.opaque == v.etag.as_bytes());
    }
    parse_date(value).is_some_and(|date| date == v.modified_secs())
}

/// One `range-spec` of the `bytes` unit (RFC 9110 §14.1.1), numbers saturated at `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-pos "-" [ last-pos ]`
    Int { first: u64, last: Option<u64> },
    /// `"-" suffix-length`
    Suffix(u64),
}

impl Spec {
    /// RFC 9110 §14.1.1.
    fn satisfiable(self, len: u64) -> bool {
        match self {
            Spec::Int { first, .. } => first < len,
            Spec::Suffix(n) => n > 0,
        }
    }

    /// The inclusive byte positions of a satisfiable spec on a non-empty representation.
    fn positions(self, len: u64) -> (u64, u64) {
        let last_byte = len - 1;
        match self {
            Spec::Int { first, last } => (first, last.map_or(last_byte, |l| l.min(last_byte))),
            Spec::Suffix(n) => (len - n.min(len), last_byte),
        }
    }
}

/// Reads `bytes=range-set` and picks the outcome; a syntax error anywhere means Full.
fn select(range: &[u8], len: u64) -> RangeOutcome {
    let value = trim_ows(range);
    // Short fields: a plain scan beats memchr's set-up.
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeOutcome::Full;
    };
    // `range-unit "=" range-set`, no whitespace around "=" (§14.2); units are
    // case-insensitive (§14.1).
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return RangeOutcome::Full;
    }
    let mut specs = 0usize;
    let mut satisfiable: Option<Spec> = None;
    // `1#range-spec`: empty members and whitespace around commas are allowed (§5.6.1.2).
    for member in value[eq + 1..].split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        let Some(spec) = parse_spec(member) else {
            return RangeOutcome::Full;
        };
        specs += 1;
        if satisfiable.is_none() && spec.satisfiable(len) {
            satisfiable = Some(spec);
        }
        if specs > 1 && satisfiable.is_some() {
            // Several ranges, one of them satisfiable: the whole file whatever follows.
            return RangeOutcome::Full;
        }
    }
    match satisfiable {
        _ if specs == 0 => RangeOutcome::Full,
        None => RangeOutcome::Unsatisfiable,
        // A satisfiable range of nothing (a suffix of an empty file).
        Some(_) if len == 0 => RangeOutcome::Full,
        Some(spec) => {
            let (start, end) = spec.positions(len);
            RangeOutcome::Partial { start, end }
        }
    }
}

/// `int-range = first-pos "-" [ last-pos ]`, `suffix-range = "-" suffix-length`.
fn parse_spec(s: &[u8]) -> Option<Spec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(parse_digits(last)?));
    }
    let first_pos = parse_digits(first)?;
    if last.is_empty() {
        return Some(Spec::Int {
            first: first_pos,
            last: None,
        });
    }
    let last_pos = parse_digits(last)?;
    // §14.1.1: invalid when last-pos < first-pos. Compared on the digits, since either
    // number may be beyond u64 (saturated above).
    if decimal_less(last, first) {
        return None;
    }
    Some(Spec::Int {
        first: first_pos,
        last: Some(last_pos),
    })
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n)
}

/// `a < b` for two non-empty digit strings of any length.
fn decimal_less(a: &[u8], b: &[u8]) -> bool {
    fn significant(s: &[u8]) -> &[u8] {
        let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
        &s[start..]
    }
    let (a, b) = (significant(a), significant(b));
    (a.len(), a) < (b.len(), b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::super::conditional::{http_date, ETag};
    use super::*;
    use RangeOutcome::{Full, Partial, Unsatisfiable};

    fn validators() -> Validators {
        let mtime = UNIX_EPOCH + Duration::new(784_111_777, 123);
        Validators {
            etag: ETag::from_metadata(mtime, 10_000, ""),
            last_modified: mtime,
        }
    }

    fn range(value: &str, len: u64) -> RangeOutcome {
        evaluate(Some(value.as_bytes()), None, len, &validators())
    }

    fn partial(start: u64, end: u64) -> RangeOutcome {
        Partial { start, end }
    }

    #[test]
    fn no_range_is_full() {
        assert_eq!(evaluate(None, None, 10, &validators()), Full);
        // If-Range without Range is ignored.
        assert_eq!(evaluate(None, Some(b"\"x\""), 10, &validators()), Full);
    }

    #[test]
    fn rfc9110_examples() {
        // RFC 9110 §14.1.2, a representation of length 10000.
        assert_eq!(range("bytes=0-499", 10_000), partial(0, 499));
        assert_eq!(range("bytes=500-999", 10_000), partial(500, 999));
        assert_eq!(range("bytes=-500", 10_000), partial(9500, 9999));
        assert_eq!(range("bytes=9500-", 10_000), partial(9500, 9999));
        // Several ranges (first and last byte; overlapping ranges): the whole file.
        assert_eq!(range("bytes=0-0,-1", 10_000), Full);
        assert_eq!(range("bytes=500-600,601-999", 10_000), Full);
        assert_eq!(range("bytes=500-700,601-999", 10_000), Full);
    }

    #[test]
    fn single_ranges() {
        assert_eq!(range("bytes=0-0", 10), partial(0, 0));
        assert_eq!(range("bytes=9-9", 10), partial(9, 9));
        assert_eq!(range("bytes=0-", 10), partial(0, 9));
        assert_eq!(range("bytes=-1", 10), partial(9, 9));
        assert_eq!(range("bytes=-10", 10), partial(0, 9));
        // Leading zeros are digits like any other.
        assert_eq!(range("bytes=007-0008", 10), partial(7, 8));
    }

    #[test]
    fn ends_are_clamped() {
        // A last-pos beyond the end: up to the last byte.
        assert_eq!(range("bytes=5-100", 10), partial(5, 9));
        assert_eq!(range("bytes=0-18446744073709551615", 10), partial(0, 9));
        assert_eq!(
            range("bytes=0-99999999999999999999999999999999", 10),
            partial(0, 9)
        );
        // A suffix longer than the file: all of it, as a 206.
        assert_eq!(range("bytes=-11", 10), partial(0, 9));
        assert_eq!(
            range("bytes=-99999999999999999999999999", 10),
            partial(0, 9)
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(range("bytes=-000", 10), Unsatisfiable);
        assert_eq!(range("bytes=18446744073709551615-", 10), Unsatisfiable);
        assert_eq!(range("bytes=18446744073709551616-", 10), Unsatisfiable);
        assert_eq!(
            range("bytes=99999999999999999999999999-", u64::MAX),
            Unsatisfiable
        );
        // Every one of several specs unsatisfiable: still 416.
        assert_eq!(range("bytes=10-11, 20-, -0", 10), Unsatisfiable);
    }

    #[test]
    fn several_specs_with_one_satisfiable_are_full() {
        assert_eq!(range("bytes=0-1,20-30", 10), Full);
        assert_eq!(range("bytes=20-30, 0-1", 10), Full);
        // Even when a later member is malformed (which alone also means Full).
        assert_eq!(range("bytes=0-1,20-30,x", 10), Full);
    }

    #[test]
    fn syntax_and_units() {
        // Units are case-insensitive.
        assert_eq!(range("Bytes=0-1", 10), partial(0, 1));
        assert_eq!(range("BYTES=0-1", 10), partial(0, 1));
        // Whitespace around the field and around commas, and empty members, are allowed.
        assert_eq!(range("  bytes=0-1 \t", 10), partial(0, 1));
        assert_eq!(range("bytes= 0-1 ", 10), partial(0, 1));
        assert_eq!(range("bytes=,0-1,,", 10), partial(0, 1));
        assert_eq!(range("bytes=0-1 ,\t2-3", 10), Full);
        // Anything else is ignored: the whole file.
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes= , ",
            "bytes =0-1",
            "bytes= =0-1",
            "items=0-1",
            "bits=0-1",
            "bytes=0",
            "bytes=-",
            "bytes=--1",
            "bytes=1--2",
            "bytes=0-1-2",
            "bytes=a-b",
            "bytes=0-b",
            "bytes=0x10-",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes= 0 - 1",
            "bytes=0-1;q=1",
            "bytes=0-1 2-3",
            "bytes=5-4",
            "bytes=10-9",
            "bytes=\u{661}-2", // a non-ASCII digit
            "=0-1",
            "bytes==0-1",
        ] {
            assert_eq!(range(bad, 10), Full, "{bad:?}");
        }
    }

    #[test]
    fn last_below_first_is_invalid_even_beyond_u64() {
        // Both saturate to u64::MAX; the digits still say last < first: invalid, so Full.
        assert_eq!(
            range("bytes=99999999999999999999999-99999999999999999999998", 10),
            Full
        );
        assert_eq!(
            range("bytes=99999999999999999999998-99999999999999999999999", 10),
            Unsatisfiable
        );
        assert_eq!(range("bytes=0005-000000004", 10), Full);
        assert_eq!(range("bytes=0005-000000005", 10), partial(5, 5));
        assert!(decimal_less(b"9", b"10"));
        assert!(!decimal_less(b"10", b"9"));
        assert!(!decimal_less(b"000", b"0"));
        assert!(decimal_less(b"0", b"1"));
    }

    #[test]
    fn empty_representation() {
        // Only a non-zero suffix is satisfiable; it selects nothing, so a 200 of no bytes.
        assert_eq!(range("bytes=-1", 0), Full);
        assert_eq!(range("bytes=-500", 0), Full);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(range("bytes=-0", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-0,-1", 0), Full);
        assert_eq!(range("bytes=0-0,5-", 0), Unsatisfiable);
        assert_eq!(range("bytes=x", 0), Full);
    }

    #[test]
    fn huge_representation() {
        let max = u64::MAX;
        assert_eq!(range("bytes=0-", max), partial(0, max - 1));
        assert_eq!(range("bytes=-1", max), partial(max - 1, max - 1));
        assert_eq!(
            range("bytes=18446744073709551614-", max),
            partial(max - 1, max - 1)
        );
        assert_eq!(range("bytes=18446744073709551615-", max), Unsatisfiable);
        assert_eq!(
            range("bytes=-99999999999999999999999", max),
            partial(0, max - 1)
        );
    }

    #[test]
    fn if_range_with_an_entity_tag() {
        let v = validators();
        let tag = v.etag.as_bytes();
        let r = Some(&b"bytes=0-1"[..]);
        assert_eq!(evaluate(r, Some(tag), 10, &v), partial(0, 1));
        let spaced = [b" ", tag, b" "].concat();
        assert_eq!(evaluate(r, Some(&spaced), 10, &v), partial(0, 1));
        // A weak tag never matches, even with the same opaque-tag.
        let weak = [b"W/", tag].concat();
        assert_eq!(evaluate(r, Some(&weak), 10, &v), Full);
        // Another tag, a list, a malformed tag: the Range is ignored.
        assert_eq!(evaluate(r, Some(b"\"other\""), 10, &v), Full);
        let list = [tag, b", \"other\""].concat();
        assert_eq!(evaluate(r, Some(&list), 10, &v), Full);
        assert_eq!(evaluate(r, Some(&tag[..tag.len() - 1]), 10, &v), Full);
        assert_eq!(evaluate(r, Some(b"*"), 10, &v), Full);
        assert_eq!(evaluate(r, Some(b""), 10, &v), Full);
        // A failed If-Range turns even an unsatisfiable Range into the whole file.
        assert_eq!(
            evaluate(Some(b"bytes=50-"), Some(b"\"other\""), 10, &v),
            Full
        );
        assert_eq!(
            evaluate(Some(b"bytes=50-"), Some(tag), 10, &v),
            Unsatisfiable
        );
    }

    #[test]
    fn if_range_with_a_date() {
        let v = validators();
        let r = Some(&b"bytes=0-1"[..]);
        let lm = http_date(v.last_modified);
        assert_eq!(lm, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(evaluate(r, Some(lm.as_bytes()), 10, &v), partial(0, 1));
        // The same instant in an obsolete format.
        assert_eq!(
            evaluate(r, Some(b"Sunday, 06-Nov-94 08:49:37 GMT"), 10, &v),
            partial(0, 1)
        );
        // Equality only: a later date does not hold (unlike If-Unmodified-Since).
        assert_eq!(
            evaluate(r, Some(b"Sun, 06 Nov 1994 08:49:38 GMT"), 10, &v),
            Full
        );
        assert_eq!(
            evaluate(r, Some(b"Sun, 06 Nov 1994 08:49:36 GMT"), 10, &v),
            Full
        );
        assert_eq!(evaluate(r, Some(b"not a date"), 10, &v), Full);
    }

    #[test]
    fn header_texts() {
        assert_eq!(content_range(0, 499, 10_000), "bytes 0-499/10000");
        assert_eq!(
            content_range(u64::MAX - 1, u64::MAX - 1, u64::MAX),
            "bytes 18446744073709551614-18446744073709551614/18446744073709551615"
        );
        assert_eq!(unsatisfied_range(10_000), "bytes */10000");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }

    use crate::static_files::testutil::XorShift;

    /// A second, plainly written reading of the rules over u128, to compare against.
    fn model(value: &str, len: u64) -> RangeOutcome {
        fn num(s: &str) -> Option<u128> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Beyond u64 the exact value does not matter, only its order.
            let digits = s.trim_start_matches('0');
            if digits.len() > 30 {
                return Some(u128::MAX);
            }
            Some(digits.parse::<u128>().unwrap_or(0))
        }
        let Some((unit, set)) = value.trim_matches([' ', '\t']).split_once('=') else {
            return Full;
        };
        if !unit.eq_ignore_ascii_case("bytes") {
            return Full;
        }
        let len = u128::from(len);
        let mut found = Vec::new();
        for member in set.split(',').map(|m| m.trim_matches([' ', '\t'])) {
            if member.is_empty() {
                continue;
            }
            let Some((a, b)) = member.split_once('-') else {
                return Full;
            };
            let spec = if a.is_empty() {
                let Some(n) = num(b) else { return Full };
                (n > 0).then(|| (len - n.min(len), len.saturating_sub(1)))
            } else {
                let Some(first) = num(a) else { return Full };
                let last = if b.is_empty() {
                    u128::MAX
                } else {
                    match num(b) {
                        Some(l) if l >= first => l,
                        _ => return Full,
                    }
                };
                (first < len).then(|| (first, last.min(len - 1)))
            };
            found.push(spec);
        }
        let satisfiable: Vec<_> = found.iter().flatten().collect();
        match (found.len(), satisfiable.first()) {
            (0, _) => Full,
            (_, None) => Unsatisfiable,
            (1, Some(_)) if len == 0 => Full,
            (1, Some(&&(s, e))) => Partial {
                start: s as u64,
                end: e as u64,
            },
            _ => Full,
        }
    }

    #[test]
    fn property_never_panics_and_partials_are_in_bounds() {
        const PIECES: &[&str] = &[
            "bytes=",
            "bytes=",
            "Bytes=",
            "bytes",
            "=",
            "-",
            "-",
            ",",
            ", ",
            " ",
            "\t",
            "0",
            "1",
            "9",
            "10",
            "499",
            "00",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999",
            "x",
            ";",
            "*",
            "items=",
        ];
        const NUMS: &[&str] = &[
            "0",
            "00",
            "1",
            "499",
            "18446744073709551614",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999",
        ];
        let lens = [0, 1, 2, 10, 500, 10_000, u64::MAX - 1, u64::MAX];
        let v = validators();
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut text = String::new();
        let mut partials = 0;
        for i in 0..20_000 {
            text.clear();
            if i % 2 == 0 {
                // Well-formed range sets of one to three specs, small and huge numbers.
                text.push_str(["bytes=", "Bytes="][rng.below(2)]);
                for j in 0..1 + rng.below(3) / 2 {
                    if j > 0 {
                        text.push_str([",", " , "][rng.below(2)]);
                    }
                    let num = |rng: &mut XorShift| match rng.below(4) {
                        0 => rng.next().to_string(),
                        1 => (rng.next() % 20).to_string(),
                        2 => (rng.next() % 20_000).to_string(),
                        _ => NUMS[rng.below(NUMS.len())].to_owned(),
                    };
                    match rng.below(3) {
                        0 => text.push_str(&format!("{}-{}", num(&mut rng), num(&mut rng))),
                        1 => text.push_str(&format!("{}-", num(&mut rng))),
                        _ => text.push_str(&format!("-{}", num(&mut rng))),
                    }
                }
            } else {
                for _ in 0..rng.below(8) {
                    text.push_str(PIECES[rng.below(PIECES.len())]);
                }
            }
            let len = match rng.below(3) {
                0 => rng.next(),
                1 => rng.next() % 1000,
                _ => lens[rng.below(lens.len())],
            };
            let got = evaluate(Some(text.as_bytes()), None, len, &v);
            if let Partial { start, end } = got {
                partials += 1;
                assert!(start <= end && end < len, "{text:?} len {len}: {got:?}");
            }
            assert_eq!(got, model(&text, len), "{text:?} len {len}");
            // Arbitrary bytes, too, including non-UTF-8.
            let bytes: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
            if let Partial { start, end } = evaluate(Some(&bytes), Some(&bytes), len, &v) {
                assert!(start <= end && end < len);
            }
        }
        assert!(partials > 500, "only {partials} partial outcomes generated");
    }
}
