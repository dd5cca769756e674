//! `Accept-Encoding` negotiation for pre-compressed variants (RFC 9110 §12.5.3).
//!
//! This module owns one decision: which of the content codings bourbon can serve from a
//! file beside the original (`NAME.br`, `NAME.gz`) a client accepts, best first
//! ([`preferred`]). Whether such a file exists is the serving layer's business; identity
//! (the original file) is always the fallback and needs no entry here.
//!
//! Reading of the field:
//!
//! - members are `codings [ OWS ";" OWS "q=" qvalue ]`, separated by commas with optional
//!   whitespace; empty members are skipped (§5.6.1.2);
//! - coding names are case-insensitive (§8.4.1); `x-gzip` is `gzip` (§8.4.1.3);
//! - `q` (case-insensitive) takes `0`–`1` with at most three decimals (§12.4.2); `q=0` means
//!   "not acceptable";
//! - a member that does not fit that grammar (a bad q-value, another parameter, stray
//!   characters) is treated as absent, as if the client had not sent it: it neither grants
//!   nor refuses a coding;
//! - `*` gives its weight to every coding not named elsewhere in the field;
//! - when a coding is named more than once, its first well-formed member counts;
//! - no field at all means identity only (RFC 9110 would allow any coding, but a client that
//!   says nothing gets the plain file, as nginx's `gzip_static` does); an empty field means
//!   identity only too (§12.5.3).
//!
//! The highest weight wins; on a tie brotli goes first (it is smaller than gzip for the same
//! text).

/// A content coding bourbon can serve from a pre-compressed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br` (RFC 7932), from `NAME.br`.
    Br,
    /// `gzip` (RFC 9110 §8.4.1.3), from `NAME.gz`.
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// What the pre-compressed file's name adds to the original's: `.br` / `.gz`.
    pub fn file_suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// What the variant's entity tag adds inside the quotes: `-br` / `-gz`.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "-br",
            Coding::Gzip => "-gz",
        }
    }
}

/// The codings a client accepts, best first; at most one entry per [`Coding`]. `Copy`, no
/// allocation; iterate it with `for coding in prefs` or [`CodingPrefs::iter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodingPrefs {
    codings: [Option<Coding>; 2],
}

impl CodingPrefs {
    /// The codings in order of preference.
    pub fn iter(&self) -> CodingIter {
        CodingIter {
            prefs: *self,
            next: 0,
        }
    }

    /// The most preferred coding, if any is acceptable.
    pub fn first(&self) -> Option<Coding> {
        self.codings[0]
    }

    /// Whether the client accepts `coding` at all.
    pub fn contains(&self, coding: Coding) -> bool {
        self.codings.contains(&Some(coding))
    }

    /// How many codings are acceptable (0–2).
    pub fn len(&self) -> usize {
        self.codings.iter().flatten().count()
    }

    /// Identity only.
    pub fn is_empty(&self) -> bool {
        self.codings[0].is_none()
    }
}

impl IntoIterator for CodingPrefs {
    type Item = Coding;
    type IntoIter = CodingIter;

    fn into_iter(self) -> CodingIter {
        self.iter()
    }
}

impl IntoIterator for &CodingPrefs {
    type Item = Coding;
    type IntoIter = CodingIter;

    fn into_iter(self) -> CodingIter {
        self.iter()
    }
}

/// The iterator of [`CodingPrefs`].
#[derive(Clone, Debug)]
pub struct CodingIter {
    prefs: CodingPrefs,
    next: usize,
}

impl Iterator for CodingIter {
    type Item = Coding;

    fn next(&mut self) -> Option<Coding> {
        let coding = (*self.prefs.codings.get(self.next)?)?;
        self.next += 1;
        Some(coding)
    }
}

/// The codings the client accepts, best first (highest q; brotli before gzip on a tie),
/// excluding q=0; `*` applies to codings not named. `None` header → empty (identity only).
pub fn preferred(accept_encoding: Option<&[u8]>) -> CodingPrefs {
    let Some(value) = accept_encoding else {
        return CodingPrefs::default();
    };
    // Weights in thousandths; None = not named.
    let (mut br, mut gzip, mut star) = (None, None, None);
    for member in value.split(|&b| b == b',') {
        let Some((name, q)) = parse_member(member) else {
            continue;
        };
        let slot = match name.len() {
            1 if name == b"*" => &mut star,
            2 if name.eq_ignore_ascii_case(b"br") => &mut br,
            4 if name.eq_ignore_ascii_case(b"gzip") => &mut gzip,
            6 if name.eq_ignore_ascii_case(b"x-gzip") => &mut gzip,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(q);
        }
    }
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    let mut prefs = CodingPrefs::default();
    let mut order = [(br, Coding::Br), (gzip, Coding::Gzip)];
    // Stable: brotli stays first on a tie.
    if gzip > br {
        order.swap(0, 1);
    }
    let mut n = 0;
    for (q, coding) in order {
        if q > 0 {
            prefs.codings[n] = Some(coding);
            n += 1;
        }
    }
    prefs
}

/// `codings [ OWS ";" OWS "q=" qvalue ]` with optional whitespace around it: the coding
/// name and its weight in thousandths (1000 without `q`). `None` for an empty or malformed
/// member.
fn parse_member(member: &[u8]) -> Option<(&[u8], u16)> {
    let member = trim_ows(member);
    let name_len = member
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(member.len());
    let (name, rest) = member.split_at(name_len);
    if name.is_empty() {
        return None;
    }
    let rest = trim_ows(rest);
    if rest.is_empty() {
        return Some((name, 1000));
    }
    let weight = trim_ows(rest.strip_prefix(b";")?);
    let [b'q' | b'Q', b'=', v @ ..] = weight else {
        return None;
    };
    Some((name, parse_qvalue(v)?))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (&int, rest) = v.split_first()?;
    let decimals = match rest {
        [] => &[][..],
        [b'.', d @ ..] if d.len() <= 3 && d.iter().all(u8::is_ascii_digit) => d,
        _ => return None,
    };
    let mut frac: u16 = 0;
    for i in 0..3 {
        frac = frac * 10 + decimals.get(i).map_or(0, |&d| u16::from(d - b'0'));
    }
    match int {
        b'0' => Some(frac),
        b'1' if frac == 0 => Some(1000),
        _ => None,
    }
}

use crate::guard::is_tchar;

use crate::guard::trim_ows;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Coding::{Br, Gzip};
    use super::*;

    fn prefs(value: &str) -> Vec<Coding> {
        preferred(Some(value.as_bytes())).into_iter().collect()
    }

    #[test]
    fn no_field_or_empty_field_is_identity_only() {
        assert!(preferred(None).is_empty());
        assert_eq!(preferred(None).len(), 0);
        assert_eq!(prefs(""), []);
        assert_eq!(prefs("  "), []);
        assert_eq!(prefs("identity"), []);
    }

    #[test]
    fn browsers() {
        // What current browsers send.
        assert_eq!(prefs("gzip, deflate, br, zstd"), [Br, Gzip]);
        assert_eq!(prefs("gzip, deflate, br"), [Br, Gzip]);
        assert_eq!(prefs("gzip, deflate"), [Gzip]);
        // curl --compressed
        assert_eq!(prefs("deflate, gzip, br, zstd"), [Br, Gzip]);
        assert_eq!(prefs("br"), [Br]);
    }

    #[test]
    fn rfc9110_examples() {
        // RFC 9110 §12.5.3.
        assert_eq!(prefs("compress, gzip"), [Gzip]);
        assert_eq!(prefs(""), []);
        assert_eq!(prefs("*"), [Br, Gzip]);
        assert_eq!(prefs("compress;q=0.5, gzip;q=1.0"), [Gzip]);
        assert_eq!(prefs("gzip;q=1.0, identity; q=0.5, *;q=0"), [Gzip]);
    }

    #[test]
    fn weights_order_and_ties() {
        assert_eq!(prefs("br;q=0.5, gzip"), [Gzip, Br]);
        assert_eq!(prefs("gzip;q=0.9, br;q=0.8"), [Gzip, Br]);
        assert_eq!(prefs("gzip;q=0.8, br;q=0.8"), [Br, Gzip]);
        assert_eq!(prefs("gzip, br"), [Br, Gzip]);
        assert_eq!(prefs("br;q=0.001, gzip;q=0.002"), [Gzip, Br]);
        assert_eq!(prefs("br;q=0.999, gzip;q=1"), [Gzip, Br]);
    }

    #[test]
    fn zero_means_no() {
        assert_eq!(prefs("br;q=0, gzip"), [Gzip]);
        assert_eq!(prefs("br;q=0.0, gzip;q=0.000"), []);
        assert_eq!(prefs("gzip;q=0"), []);
        // `*;q=0` refuses what is not named; named codings keep their weight.
        assert_eq!(prefs("*;q=0, gzip"), [Gzip]);
        assert_eq!(prefs("br, *;q=0"), [Br]);
    }

    #[test]
    fn star_covers_codings_not_named() {
        assert_eq!(prefs("*"), [Br, Gzip]);
        assert_eq!(prefs("gzip;q=0.5, *"), [Br, Gzip]);
        assert_eq!(prefs("gzip, *;q=0.5"), [Gzip, Br]);
        assert_eq!(prefs("br;q=0, *"), [Gzip]);
        assert_eq!(prefs("*;q=0.1, br;q=0.2"), [Br, Gzip]);
        // `*` does not override a named q=0.
        assert_eq!(prefs("gzip;q=0, *;q=1"), [Br]);
    }

    #[test]
    fn names_are_case_insensitive_and_x_gzip_is_gzip() {
        assert_eq!(prefs("GZIP, BR"), [Br, Gzip]);
        assert_eq!(prefs("Br;Q=0.5, GZip"), [Gzip, Br]);
        assert_eq!(prefs("x-gzip"), [Gzip]);
        assert_eq!(prefs("X-GZIP;q=0.3, br;q=0.2"), [Gzip, Br]);
    }

    #[test]
    fn whitespace_and_empty_members() {
        assert_eq!(prefs(" br ;  q=0.5 ,\tgzip\t"), [Gzip, Br]);
        assert_eq!(prefs(",,br,, ,"), [Br]);
        assert_eq!(prefs("br;q=0.5,gzip;q=0.6"), [Gzip, Br]);
    }

    #[test]
    fn malformed_members_are_absent() {
        // A malformed member neither grants nor refuses its coding.
        for bad in [
            "br;q=2",
            "br;q=1.5",
            "br;q=1.001",
            "br;q=0.1234",
            "br;q=.5",
            "br;q=",
            "br;q",
            "br;q=-1",
            "br;q=0.5x",
            "br;q= 0.5",
            "br;level=5",
            "br;",
            "br;q=0.5;q=0.6",
            "b r",
            "br\"",
            "\"br\"",
            "br/1",
            "br=1",
            ";q=1",
        ] {
            assert_eq!(prefs(bad), [], "{bad:?}");
            assert_eq!(prefs(&format!("{bad}, gzip")), [Gzip], "{bad:?}");
            // A later well-formed member for the same coding still counts.
            assert_eq!(prefs(&format!("{bad}, br;q=0.5")), [Br], "{bad:?}");
        }
        // A malformed q=0 does not refuse: `*` still applies.
        assert_eq!(prefs("br;q=0.0000, *"), [Br, Gzip]);
        // A decimal comma is two members: "br;q=0" (a refusal) and an unknown coding "5".
        assert_eq!(prefs("br;q=0,5, *"), [Gzip]);
    }

    #[test]
    fn qvalue_grammar() {
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0."), Some(0));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.05"), Some(50));
        assert_eq!(parse_qvalue(b"0.123"), Some(123));
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1."), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        for bad in [
            &b""[..],
            b"1.1",
            b"2",
            b"0.1234",
            b"00.1",
            b"0..1",
            b"0.a",
            b"+0",
            b"1e0",
        ] {
            assert_eq!(parse_qvalue(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tchar_table() {
        for b in 0..=255u8 {
            let expect = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), expect, "{b:#x}");
        }
    }

    #[test]
    fn first_occurrence_counts() {
        assert_eq!(prefs("gzip;q=0, gzip"), []);
        assert_eq!(prefs("gzip, gzip;q=0"), [Gzip]);
        assert_eq!(prefs("gzip;q=0.2, x-gzip;q=0.9, br;q=0.5"), [Br, Gzip]);
    }

    #[test]
    fn prefs_api() {
        let p = preferred(Some(b"gzip, br;q=0.5"));
        assert_eq!(p.first(), Some(Gzip));
        assert!(p.contains(Br) && p.contains(Gzip));
        assert_eq!(p.len(), 2);
        assert_eq!(p.iter().collect::<Vec<_>>(), [Gzip, Br]);
        let mut seen = Vec::new();
        for c in &p {
            seen.push(c);
        }
        assert_eq!(seen, [Gzip, Br]);
        let only = preferred(Some(b"br"));
        assert_eq!(only.first(), Some(Br));
        assert!(!only.contains(Gzip));
        assert_eq!(only.len(), 1);
        assert_eq!(preferred(None).first(), None);
        assert_eq!(Br.as_str(), "br");
        assert_eq!(Gzip.as_str(), "gzip");
        assert_eq!(Br.file_suffix(), ".br");
        assert_eq!(Gzip.file_suffix(), ".gz");
        assert_eq!(Br.etag_suffix(), "-br");
        assert_eq!(Gzip.etag_suffix(), "-gz");
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long = "br;q=0.5,".repeat(1000);
        assert_eq!(prefs(&long), [Br]);
        assert_eq!(
            preferred(Some(b"\xff\xfe;q=\xff,\x00")),
            CodingPrefs::default()
        );
        assert_eq!(prefs(";;;,,,===***"), []);
    }
}
