//! Validators of a static file and the conditional request headers evaluated against them.
//!
//! This module owns the two validators bourbon sends for a file (RFC 9110 §8.8): a strong
//! entity tag built from the file's metadata ([`ETag`]) and its modification time, sent as
//! `Last-Modified` at whole-second precision ([`http_date`]); and the evaluation of
//! `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in the order of
//! RFC 9110 §13.2.2 ([`evaluate`]). `If-Range` belongs to [`super::range`], which uses the
//! parsers here. It is pure: the caller reads the file's metadata and the request's fields.
//!
//! Decisions where the RFC leaves room:
//!
//! - An entity-tag list (§8.8.3, `1#entity-tag`) is read member by member; at the first
//!   member that is not a well-formed entity tag the reading stops, and only the members
//!   before it can match. So a garbled `If-None-Match` never yields a 304 and a garbled
//!   `If-Match` never lets a request through: a condition that cannot be read as true is
//!   false, and for `If-None-Match` false means "send the representation".
//! - A field whose value is empty is a list of zero tags: `If-Match:` fails (412),
//!   `If-None-Match:` passes.
//! - A date that is not a valid HTTP-date (any of the three formats of §5.6.7, weekday
//!   included), or that is a list of dates, is ignored as if the field were absent
//!   (§13.1.3, §13.1.4).
//! - Several field lines of the same name: the caller passes the first one. (For the list
//!   fields RFC 9110 §5.3 would combine them; clients do not split these fields in practice,
//!   and the first line alone still gives a safe answer: a tag that would have matched in a
//!   later line only costs a full response.)

use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// The validators of one representation (a file, or one of its pre-compressed variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Validators {
    /// The strong entity tag sent as `ETag`.
    pub etag: ETag,
    /// The file's modification time; compared and sent at whole-second precision.
    pub last_modified: SystemTime,
}

impl Validators {
    /// `last_modified` as whole seconds since the Unix epoch (floor, so negative before
    /// 1970): the value `Last-Modified` states and every date comparison uses.
    pub fn modified_secs(&self) -> i64 {
        unix_secs(self.last_modified)
    }
}

/// Longest opaque suffix [`ETag::from_metadata`] keeps.
const SUFFIX_MAX: usize = 16;
/// `"` + `-` + 16 hex (seconds) + `.` + 8 hex (nanos < 10^9) + `-` + 16 hex (length) +
/// suffix + `"` = 45 + [`SUFFIX_MAX`] = 61 bytes at most.
const ETAG_CAP: usize = 64;

/// A strong entity tag, stored with its quotes: `"abc"`.
///
/// Made from the file's metadata, not its bytes, so it costs no read: `"<mtime unix seconds
/// hex>.<mtime nanoseconds hex>-<length hex><suffix>"`, lowercase hex without padding. A
/// modification time before 1970 gets a `-` before the seconds (counted backwards). Stored
/// inline (no allocation), so it is `Copy` and cheap to keep in a metadata cache.
#[derive(Clone, Copy)]
pub struct ETag {
    buf: [u8; ETAG_CAP],
    len: u8,
}

impl ETag {
    /// The tag of a file with this modification time and length. `suffix` tells variants of
    /// one file apart (`""`, `"-br"`, `"-gz"`); bytes of it that may not appear in an entity
    /// tag (RFC 9110 §8.8.3 `etagc`: `"`, space, controls, non-ASCII) are dropped, and only
    /// its first 16 bytes are kept.
    pub fn from_metadata(mtime: SystemTime, len: u64, suffix: &str) -> ETag {
        let mut tag = ETag {
            buf: [0; ETAG_CAP],
            len: 0,
        };
        tag.push(b'"');
        let since = match mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => d,
            Err(before) => {
                tag.push(b'-');
                before.duration()
            }
        };
        tag.push_hex(since.as_secs());
        tag.push(b'.');
        tag.push_hex(u64::from(since.subsec_nanos()));
        tag.push(b'-');
        tag.push_hex(len);
        for &b in suffix
            .as_bytes()
            .iter()
            .filter(|&&b| b == 0x21 || (0x23..=0x7e).contains(&b))
            .take(SUFFIX_MAX)
        {
            tag.push(b);
        }
        tag.push(b'"');
        tag
    }

    /// The tag as sent in `ETag`, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn push(&mut self, b: u8) {
        // The bound is proved by ETAG_CAP's arithmetic; `get_mut` keeps a mistake from being
        // a panic on the request path.
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_hex(&mut self, v: u64) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = if v == 0 {
            1
        } else {
            16 - v.leading_zeros() / 4
        };
        for i in (0..digits).rev() {
            self.push(DIGITS[((v >> (i * 4)) & 0xf) as usize]);
        }
    }
}

impl PartialEq for ETag {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ETag {}

impl Hash for ETag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What to do before selecting the representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the request as if it had no preconditions.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The conditional request fields, raw values (first field line of each name), `None` when
/// absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditions<'a> {
    /// `If-Match` (RFC 9110 §13.1.1): `*` or a list of entity tags.
    pub if_match: Option<&'a [u8]>,
    /// `If-None-Match` (§13.1.2): `*` or a list of entity tags.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since` (§13.1.3): an HTTP-date.
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Unmodified-Since` (§13.1.4): an HTTP-date.
    pub if_unmodified_since: Option<&'a [u8]>,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2 order, for a resource that exists.
/// `get_or_head` is whether the method is GET or HEAD.
///
/// 1. `If-Match` (strong comparison, `*` matches) false → 412;
/// 2. else, when `If-Match` is absent, `If-Unmodified-Since` with a date earlier than
///    `Last-Modified` → 412;
/// 3. `If-None-Match` (weak comparison, `*` matches) true → 304 for GET/HEAD, 412 otherwise;
/// 4. else, when `If-None-Match` is absent and the method is GET/HEAD, `If-Modified-Since`
///    with a date not earlier than `Last-Modified` → 304;
/// 5. otherwise proceed (the caller then looks at `Range` / `If-Range`).
pub fn evaluate(c: &Conditions<'_>, get_or_head: bool, v: &Validators) -> Precondition {
    let etag = v.etag.as_bytes();
    if let Some(value) = c.if_match {
        // §13.1.1: strong comparison; a weak tag never matches.
        if !list_matches(value, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = c.if_unmodified_since.and_then(parse_date) {
        // §13.1.4: false when the representation was modified after the date.
        if v.modified_secs() > date {
            return Precondition::Failed;
        }
    }
    if let Some(value) = c.if_none_match {
        // §13.1.2: weak comparison.
        if list_matches(value, etag, Comparison::Weak) {
            return match get_or_head {
                true => Precondition::NotModified,
                false => Precondition::Failed,
            };
        }
    } else if get_or_head {
        // §13.1.3: only for GET and HEAD, and only without If-None-Match.
        if let Some(date) = c.if_modified_since.and_then(parse_date) {
            if v.modified_secs() <= date {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Last-Modified as an IMF-fixdate (whole seconds).
///
/// A time before 1970 is sent as the epoch, and one after the year 9999 as the last second
/// of 9999: an HTTP-date cannot say either (`httpdate` would panic on them). Formatted here
/// with the error log's calendar routine into one 29-byte buffer: about a quarter fewer
/// instructions than `httpdate::fmt_http_date`, which the tests check it agrees with.
pub fn http_date(t: SystemTime) -> String {
    // 253402300800 is 10000-01-01T00:00:00Z.
    const LAST: u64 = 253_402_300_799;
    const WDAY: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST);
    let (year, month, day, hour, min, sec) = crate::log::civil_from_unix(secs);
    // RFC 9110 §5.6.7: `Sun, 06 Nov 1994 08:49:37 GMT`; 1970-01-01 was a Thursday.
    let mut buf = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    buf[..3].copy_from_slice(WDAY[(secs / 86_400 % 7) as usize].as_bytes());
    put_digits(&mut buf[5..7], u64::from(day));
    buf[8..11].copy_from_slice(MON[(month as usize).saturating_sub(1) % 12].as_bytes());
    put_digits(&mut buf[12..16], year.unsigned_abs());
    put_digits(&mut buf[17..19], u64::from(hour));
    put_digits(&mut buf[20..22], u64::from(min));
    put_digits(&mut buf[23..25], u64::from(sec));
    // Only ASCII was written, so this never falls back to the empty string.
    String::from_utf8(buf.to_vec()).unwrap_or_default()
}

/// The last `out.len()` decimal digits of `v`, zero-padded.
fn put_digits(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Whole seconds since the epoch, rounded down (toward the past).
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => -secs,
                _ => -secs - 1,
            }
        }
    }
}

/// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, obsolete RFC 850 or asctime format) as
/// seconds since the epoch; `None` when the value is not exactly one valid date.
pub(crate) fn parse_date(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let t = httpdate::parse_http_date(text).ok()?;
    Some(unix_secs(t))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// §8.8.3.2: both tags strong and their opaque-tags equal.
    Strong,
    /// §8.8.3.2: opaque-tags equal, either or both may be weak.
    Weak,
}

/// Whether an `If-Match` / `If-None-Match` value matches the current (strong) tag `etag`,
/// quotes included. `*` matches any current representation (§13.1.1, §13.1.2).
fn list_matches(value: &[u8], etag: &[u8], how: Comparison) -> bool {
    let trimmed = trim_ows(value);
    // Fast path: the field is the tag we sent, as browsers send it back.
    if trimmed == etag {
        return true;
    }
    if trimmed == b"*" {
        return true;
    }
    EntityTags { rest: value }
        .any(|tag| tag.opaque == etag && (how == Comparison::Weak || !tag.weak))
}

/// One entity tag as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    /// It had the `W/` prefix.
    pub(crate) weak: bool,
    /// The opaque-tag, quotes included.
    pub(crate) opaque: &'a [u8],
}

/// A field value that is exactly one entity tag (with optional surrounding whitespace), as in
/// `If-Range`.
pub(crate) fn parse_entity_tag(value: &[u8]) -> Option<EntityTag<'_>> {
    let (tag, rest) = entity_tag_prefix(trim_ows(value))?;
    rest.is_empty().then_some(tag)
}

/// `entity-tag = [ weak ] opaque-tag`, `weak = %s"W/"`, `opaque-tag = DQUOTE *etagc DQUOTE`,
/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3): the tag at the start of `s` and
/// what follows it. A comma is an `etagc`, so `"a,b"` is one tag.
fn entity_tag_prefix(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    // `W/` is case-sensitive (%s).
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = s.strip_prefix(b"\"")?;
    let close = inner.iter().position(|&b| !is_etagc(b))?;
    if inner[close] != b'"' {
        return None;
    }
    let (opaque, rest) = s.split_at(close + 2);
    Some((EntityTag { weak, opaque }, rest))
}

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// The members of a `#entity-tag` list (RFC 9110 §5.6.1.2: empty members and whitespace
/// around commas allowed), stopping for good at the first malformed member.
struct EntityTags<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = EntityTag<'a>;

    fn next(&mut self) -> Option<EntityTag<'a>> {
        let start = self
            .rest
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b','))?;
        let parsed = entity_tag_prefix(&self.rest[start..]).and_then(|(tag, after)| {
            let after = trim_ows_start(after);
            match after.first() {
                None | Some(b',') => Some((tag, after)),
                Some(_) => None,
            }
        });
        match parsed {
            Some((tag, after)) => {
                self.rest = after;
                Some(tag)
            }
            None => {
                self.rest = b"";
                None
            }
        }
    }
}

pub(crate) use crate::guard::trim_ows;
use crate::guard::trim_ows_start;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    /// 784111777 = Sun, 06 Nov 1994 08:49:37 GMT.
    const LM_SECS: u64 = 784_111_777;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// A file last modified at LM plus 250 ms, 1234 bytes long.
    fn validators() -> Validators {
        let mtime = at(LM_SECS, 250_000_000);
        Validators {
            etag: ETag::from_metadata(mtime, 1234, ""),
            last_modified: mtime,
        }
    }

    fn tag() -> String {
        String::from_utf8(validators().etag.as_bytes().to_vec()).unwrap()
    }

    fn eval(c: Conditions<'_>, get_or_head: bool) -> Precondition {
        evaluate(&c, get_or_head, &validators())
    }

    fn if_match(v: &str) -> Precondition {
        eval(
            Conditions {
                if_match: Some(v.as_bytes()),
                ..Conditions::default()
            },
            true,
        )
    }

    fn if_none_match(v: &str, get_or_head: bool) -> Precondition {
        eval(
            Conditions {
                if_none_match: Some(v.as_bytes()),
                ..Conditions::default()
            },
            get_or_head,
        )
    }

    fn if_modified_since(v: &str, get_or_head: bool) -> Precondition {
        eval(
            Conditions {
                if_modified_since: Some(v.as_bytes()),
                ..Conditions::default()
            },
            get_or_head,
        )
    }

    fn if_unmodified_since(v: &str) -> Precondition {
        eval(
            Conditions {
                if_unmodified_since: Some(v.as_bytes()),
                ..Conditions::default()
            },
            true,
        )
    }

    use Precondition::{Failed, NotModified, Proceed};

    #[test]
    fn etag_format() {
        let v = validators();
        // 784111777 = 0x2ebc98a1, 250000000 = 0xee6b280, 1234 = 0x4d2.
        assert_eq!(v.etag.as_bytes(), b"\"2ebc98a1.ee6b280-4d2\"");
        let br = ETag::from_metadata(v.last_modified, 99, "-br");
        assert_eq!(br.as_bytes(), b"\"2ebc98a1.ee6b280-63-br\"");
        let gz = ETag::from_metadata(v.last_modified, 99, "-gz");
        assert_eq!(gz.as_bytes(), b"\"2ebc98a1.ee6b280-63-gz\"");
        assert_eq!(
            ETag::from_metadata(UNIX_EPOCH, 0, "").as_bytes(),
            b"\"0.0-0\""
        );
    }

    #[test]
    fn etag_extremes_fit_and_stay_valid() {
        let max = UNIX_EPOCH + Duration::new(u64::MAX / 4, 999_999_999);
        let t = ETag::from_metadata(max, u64::MAX, "-gz");
        assert_eq!(
            t.as_bytes(),
            b"\"3fffffffffffffff.3b9ac9ff-ffffffffffffffff-gz\""
        );
        // Before 1970: a leading `-`, counted backwards.
        let before = UNIX_EPOCH - Duration::new(16, 5);
        assert_eq!(
            ETag::from_metadata(before, 1, "").as_bytes(),
            b"\"-10.5-1\""
        );
        // A hostile suffix cannot break out of the quotes or overflow the buffer.
        let t = ETag::from_metadata(max, u64::MAX, "\"x y\u{e9}\n0123456789abcdefXYZ");
        let b = t.as_bytes();
        assert_eq!(b.first(), Some(&b'"'));
        assert_eq!(b.last(), Some(&b'"'));
        assert_eq!(b.iter().filter(|&&c| c == b'"').count(), 2);
        assert!(b.iter().all(|&c| (0x21..0x7f).contains(&c)));
        assert!(b.ends_with(b"-ffffffffffffffffxy0123456789abcd\""));
        assert_eq!(
            parse_entity_tag(b),
            Some(EntityTag {
                weak: false,
                opaque: b
            })
        );
    }

    #[test]
    fn etag_changes_with_each_input() {
        let base = ETag::from_metadata(at(10, 0), 5, "");
        assert_ne!(base, ETag::from_metadata(at(11, 0), 5, ""));
        assert_ne!(base, ETag::from_metadata(at(10, 1), 5, ""));
        assert_ne!(base, ETag::from_metadata(at(10, 0), 6, ""));
        assert_ne!(base, ETag::from_metadata(at(10, 0), 5, "-br"));
        assert_eq!(base, ETag::from_metadata(at(10, 0), 5, ""));
        assert_eq!(format!("{base:?}"), "ETag(\"a.0-5\")");
    }

    #[test]
    fn http_date_is_imf_fixdate_in_whole_seconds() {
        assert_eq!(http_date(at(LM_SECS, 0)), LM);
        assert_eq!(http_date(at(LM_SECS, 999_999_999)), LM);
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        // Out of the HTTP-date range: clamped, never a panic.
        assert_eq!(
            http_date(UNIX_EPOCH - Duration::from_secs(5)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn http_date_agrees_with_httpdate() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over 1970..=9999, plus every day boundary of the first years.
            let secs = match i % 2 {
                0 => x % 253_402_300_800,
                _ => i * 86_400 - (x % 2),
            };
            let t = at(secs, (x % 1_000_000_000) as u32);
            assert_eq!(http_date(t), httpdate::fmt_http_date(at(secs, 0)), "{secs}");
        }
        // Leap days, and a century that is not a leap year.
        for date in [
            "Thu, 29 Feb 2024 12:00:00 GMT",
            "Tue, 29 Feb 2000 00:00:00 GMT",
            "Mon, 01 Mar 2100 23:59:59 GMT",
        ] {
            let t = httpdate::parse_http_date(date).unwrap();
            assert_eq!(http_date(t), date);
        }
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(Conditions::default(), true), Proceed);
        assert_eq!(eval(Conditions::default(), false), Proceed);
    }

    #[test]
    fn rfc9110_comparison_table() {
        // RFC 9110 §8.8.3.2, with our tag playing "1".
        let t = tag();
        // W/"1" vs "1": strong no, weak yes.
        assert_eq!(if_match(&format!("W/{t}")), Failed);
        assert_eq!(if_none_match(&format!("W/{t}"), true), NotModified);
        // "1" vs "1": strong yes, weak yes.
        assert_eq!(if_match(&t), Proceed);
        assert_eq!(if_none_match(&t, true), NotModified);
        // W/"2" vs "1": no, no.
        assert_eq!(if_match("W/\"2\""), Failed);
        assert_eq!(if_none_match("W/\"2\"", true), Proceed);
        assert_eq!(if_match("\"2\""), Failed);
        assert_eq!(if_none_match("\"2\"", true), Proceed);
    }

    #[test]
    fn if_match_examples() {
        let t = tag();
        // RFC 9110 §13.1.1 examples, with and without our tag among them.
        assert_eq!(if_match("\"xyzzy\""), Failed);
        assert_eq!(if_match("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""), Failed);
        assert_eq!(if_match(&format!("\"xyzzy\", {t}, \"c3piozzzz\"")), Proceed);
        assert_eq!(if_match("*"), Proceed);
        assert_eq!(if_match("  *  "), Proceed);
        // Weak tags never match If-Match, even in a list.
        assert_eq!(if_match(&format!("\"a\", W/{t}")), Failed);
        // Comparison is exact: case, quotes and whitespace inside the quotes matter.
        assert_eq!(if_match(&t.to_uppercase()), Failed);
        assert_eq!(if_match(t.trim_matches('"')), Failed);
        assert_eq!(if_match(&t.replace('"', "\" ")), Failed);
        assert_eq!(if_match("w/\"x\""), Failed);
    }

    #[test]
    fn if_match_fails_for_other_methods_alike() {
        let c = Conditions {
            if_match: Some(b"\"other\""),
            ..Conditions::default()
        };
        assert_eq!(eval(c, false), Failed);
    }

    #[test]
    fn if_none_match_examples() {
        let t = tag();
        // RFC 9110 §13.1.2 examples.
        assert_eq!(if_none_match("\"xyzzy\"", true), Proceed);
        assert_eq!(if_none_match("W/\"xyzzy\"", true), Proceed);
        assert_eq!(
            if_none_match("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"", true),
            Proceed
        );
        assert_eq!(if_none_match("W/\"xyzzy\", W/\"r2d2xxxx\"", true), Proceed);
        assert_eq!(if_none_match("*", true), NotModified);
        assert_eq!(
            if_none_match(&format!("W/\"xyzzy\", W/{t}"), true),
            NotModified
        );
        // 304 only for GET/HEAD; 412 for other methods.
        assert_eq!(if_none_match(&t, false), Failed);
        assert_eq!(if_none_match("*", false), Failed);
        assert_eq!(if_none_match("\"xyzzy\"", false), Proceed);
    }

    #[test]
    fn entity_tag_lists_are_parsed_properly() {
        let t = tag();
        // Whitespace and empty members around commas (RFC 9110 §5.6.1.2).
        assert_eq!(
            if_none_match(&format!(" ,\t, \"a\" ,, {t} ,"), true),
            NotModified
        );
        assert_eq!(if_none_match(&format!("\"a\",{t}"), true), NotModified);
        // A comma inside the quotes belongs to the tag: `"a,<tag>"` is one tag, not two.
        let inner = t.trim_matches('"');
        assert_eq!(if_none_match(&format!("\"a,{inner}\""), true), Proceed);
        assert_eq!(if_none_match(&format!("\"a, {t}"), true), Proceed);
        // A comma-containing tag is still one valid member; the next one is read.
        assert_eq!(if_none_match(&format!("\"a,b\", {t}"), true), NotModified);
        // Reading stops at the first malformed member: later tags do not count.
        for garbage in [
            "xyzzy",
            "\"open",
            "W/ \"a\"",
            "\"a\"b",
            "\"a\" \"b\"",
            "*",
            "W\"a\"",
        ] {
            assert_eq!(
                if_none_match(&format!("{garbage}, {t}"), true),
                Proceed,
                "{garbage:?}"
            );
            assert_eq!(if_match(&format!("{garbage}, {t}")), Failed, "{garbage:?}");
        }
        // Tags before the malformed member still count.
        assert_eq!(if_none_match(&format!("{t}, garbage"), true), NotModified);
        // `*` inside a list is not the wildcard.
        assert_eq!(if_match("\"a\", *"), Failed);
        // A DQUOTE or control byte cannot be part of a tag.
        assert_eq!(if_none_match("\"a\x01\"", true), Proceed);
        // Empty field: zero tags.
        assert_eq!(if_match(""), Failed);
        assert_eq!(if_none_match("", true), Proceed);
        assert_eq!(if_none_match(" , ", true), Proceed);
        // obs-text is allowed inside a tag.
        assert_eq!(
            parse_entity_tag(b"\"\xe9\""),
            Some(EntityTag {
                weak: false,
                opaque: b"\"\xe9\""
            })
        );
    }

    #[test]
    fn if_modified_since_not_older_is_304() {
        // Last-Modified is LM (the 250 ms are dropped).
        assert_eq!(if_modified_since(LM, true), NotModified);
        assert_eq!(
            if_modified_since("Sun, 06 Nov 1994 08:49:38 GMT", true),
            NotModified
        );
        assert_eq!(
            if_modified_since("Sun, 06 Nov 1994 08:49:36 GMT", true),
            Proceed
        );
        // The two obsolete formats a recipient must accept (RFC 9110 §5.6.7).
        assert_eq!(
            if_modified_since("Sunday, 06-Nov-94 08:49:37 GMT", true),
            NotModified
        );
        assert_eq!(
            if_modified_since("Sun Nov  6 08:49:37 1994", true),
            NotModified
        );
        // Only for GET/HEAD.
        assert_eq!(if_modified_since(LM, false), Proceed);
    }

    #[test]
    fn invalid_dates_are_ignored() {
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", // a list
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "\u{e9}",
            "784111777",
        ] {
            assert_eq!(if_modified_since(bad, true), Proceed, "{bad:?}");
            assert_eq!(if_unmodified_since(bad), Proceed, "{bad:?}");
        }
        assert_eq!(parse_date(b"\xff\xfe"), None);
        assert_eq!(parse_date(LM.as_bytes()), Some(LM_SECS as i64));
        assert_eq!(
            parse_date(format!("  {LM} ").as_bytes()),
            Some(LM_SECS as i64)
        );
    }

    #[test]
    fn if_unmodified_since_older_is_412() {
        assert_eq!(if_unmodified_since(LM), Proceed);
        assert_eq!(
            if_unmodified_since("Sun, 06 Nov 1994 08:49:38 GMT"),
            Proceed
        );
        assert_eq!(if_unmodified_since("Sun, 06 Nov 1994 08:49:36 GMT"), Failed);
        // Not limited to GET/HEAD.
        let c = Conditions {
            if_unmodified_since: Some(b"Sun, 06 Nov 1994 08:49:36 GMT"),
            ..Conditions::default()
        };
        assert_eq!(eval(c, false), Failed);
    }

    #[test]
    fn date_fields_yield_to_their_tag_fields() {
        let t = tag();
        let old = "Sat, 01 Jan 1994 00:00:00 GMT";
        // If-Unmodified-Since is ignored when If-Match is present.
        let c = Conditions {
            if_match: Some(t.as_bytes()),
            if_unmodified_since: Some(old.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), Proceed);
        // If-Modified-Since is ignored when If-None-Match is present, either way.
        let c = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(LM.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), Proceed);
        let c = Conditions {
            if_none_match: Some(t.as_bytes()),
            if_modified_since: Some(old.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), NotModified);
    }

    #[test]
    fn the_rfc_order_decides() {
        let t = tag();
        // A failed If-Match wins over a matching If-None-Match (412, not 304).
        let c = Conditions {
            if_match: Some(b"\"other\""),
            if_none_match: Some(t.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), Failed);
        // A failed If-Unmodified-Since wins over a true If-Modified-Since test.
        let c = Conditions {
            if_unmodified_since: Some(b"Sat, 01 Jan 1994 00:00:00 GMT"),
            if_modified_since: Some(LM.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), Failed);
        // Passing If-Match, then a matching If-None-Match: 304.
        let c = Conditions {
            if_match: Some(b"*"),
            if_none_match: Some(t.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(eval(c, true), NotModified);
    }

    #[test]
    fn sub_second_mtimes_compare_at_second_precision() {
        // The file changed 999 ms into the second the client's copy is dated: still 304,
        // because Last-Modified (what the client was sent) says that same second.
        let mtime = at(LM_SECS, 999_000_000);
        let v = Validators {
            etag: ETag::from_metadata(mtime, 1, ""),
            last_modified: mtime,
        };
        let c = Conditions {
            if_modified_since: Some(LM.as_bytes()),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&c, true, &v), NotModified);
        assert_eq!(v.modified_secs(), LM_SECS as i64);
        // Before the epoch, seconds round toward the past.
        let v = Validators {
            etag: ETag::from_metadata(UNIX_EPOCH, 1, ""),
            last_modified: UNIX_EPOCH - Duration::from_millis(1500),
        };
        assert_eq!(v.modified_secs(), -2);
        assert_eq!(
            evaluate(
                &Conditions {
                    if_modified_since: Some(b"Thu, 01 Jan 1970 00:00:00 GMT"),
                    ..Conditions::default()
                },
                true,
                &v
            ),
            NotModified
        );
    }

    #[test]
    fn single_entity_tag() {
        assert_eq!(
            parse_entity_tag(b" \"x\" "),
            Some(EntityTag {
                weak: false,
                opaque: b"\"x\""
            })
        );
        assert_eq!(
            parse_entity_tag(b"W/\"x\""),
            Some(EntityTag {
                weak: true,
                opaque: b"\"x\""
            })
        );
        assert_eq!(
            parse_entity_tag(b"\"\""),
            Some(EntityTag {
                weak: false,
                opaque: b"\"\""
            })
        );
        for bad in [
            &b""[..],
            b"x",
            b"\"x",
            b"\"x\", \"y\"",
            b"\"x\"y",
            b"w/\"x\"",
            b"W/x",
            b"\"",
        ] {
            assert_eq!(parse_entity_tag(bad), None, "{bad:?}");
        }
    }
}
