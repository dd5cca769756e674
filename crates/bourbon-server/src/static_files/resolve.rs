//! From a request target to a relative file path that cannot leave the mount's directory.
//!
//! This module owns two decisions: where the path of a request target is
//! ([`target_path`]), and whether the part of that path after a mount's prefix names a file
//! under the mount at all ([`relative_path`]). It is pure: it never touches the file system,
//! so it cannot judge symlinks; the serving layer checks those after opening.
//!
//! The rules (docs: the static-files design for issue #12):
//!
//! - the rest of the path is percent-decoded exactly once (RFC 3986 §2.1), segment by
//!   segment, so `%252e%252e` is the literal name `%2e%2e`, never `..`;
//! - **400** ([`Refusal::BadRequest`]): a `%` not followed by two hex digits, and any control
//!   byte (`0x00`–`0x1f`, `0x7f`), raw or encoded (`%00`, `%0a`, …): no file name needs
//!   one, and some would split a log line or cut a C string;
//! - **404** ([`Refusal::NotFound`]): a segment that starts with `.` after decoding (this
//!   covers `.`, `..`, `%2e%2e`, and dotfiles such as `.env`, `.git`, `.htaccess`); a
//!   backslash, raw or `%5C` (a path separator on Windows, and a traversal trick against
//!   servers that treat it as one); an encoded slash `%2F` (a `/` inside one segment would be
//!   a second, unchecked separator once the name reaches the file system);
//! - empty segments (`//`, a leading `/`) are skipped, so the result is always relative;
//! - when a path has reasons for both refusals, 400 wins: the request is malformed whatever
//!   the file system holds.
//!
//! Bytes at or above `0x80` (raw or decoded) pass through unchanged: file names on Unix are
//! bytes, and the result is built through `OsStr`, not `str`. An overlong UTF-8 encoding of
//! `.` (`%c0%ae`) therefore stays the two bytes `0xC0 0xAE`, which the kernel never reads as
//! a dot.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Why a request path cannot name a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed percent-encoding, an encoded or raw NUL, any other control byte.
    BadRequest,
    /// 404: a `.` / `..` / dot-leading segment, a backslash (raw or `%5C`), an encoded `/`.
    NotFound,
}

/// A request path made safe to join onto a mount's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Relative (never starts with `/`), components joined with `/`, none empty, none
    /// starting with `.`, no NUL, control byte or backslash. Empty for the mount's root.
    pub path: PathBuf,
    /// The URL named a directory: it ended with `/`, or it was the mount's root (an empty
    /// rest, which a prefix treated as ending with `/` leaves only for `PREFIX/`).
    pub trailing_slash: bool,
}

/// `rest` is the part of the request path after the mount prefix, still percent-encoded,
/// WITHOUT the query (the caller strips `?...`).
///
/// Returns the decoded relative path (components joined with '/', no leading '/', empty
/// segments skipped), or a refusal. `trailing_slash` in the result tells whether `rest` ended
/// with '/' (a directory URL); an empty `rest` counts as one.
pub fn relative_path(rest: &[u8]) -> Result<Resolved, Refusal> {
    // Decoding never lengthens, so one allocation of the input's size is enough.
    let mut out: Vec<u8> = Vec::with_capacity(rest.len());
    // A 404 reason does not stop the loop: a malformed byte later on still makes it a 400.
    let mut not_found = false;
    // The next byte begins a segment (the output then needs a separator first).
    let mut at_start = true;
    let mut i = 0;
    while let Some(&raw) = rest.get(i) {
        if !at_start && PLAIN[usize::from(raw)] {
            // The common case: a run of bytes that need no decoding or check, copied at once.
            let run = rest[i..]
                .iter()
                .position(|&b| !PLAIN[usize::from(b)])
                .unwrap_or(rest.len() - i);
            out.extend_from_slice(&rest[i..i + run]);
            i += run;
            continue;
        }
        let byte = match raw {
            b'/' => {
                at_start = true;
                i += 1;
                continue;
            }
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    rest.get(i + 1).copied().and_then(hex_value),
                    rest.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(Refusal::BadRequest);
                };
                i += 3;
                let byte = hi << 4 | lo;
                // An encoded `/` would be a separator nobody checked.
                not_found |= byte == b'/';
                byte
            }
            _ => {
                i += 1;
                raw
            }
        };
        if is_control(byte) {
            return Err(Refusal::BadRequest);
        }
        not_found |= byte == b'\\';
        if at_start {
            at_start = false;
            if !out.is_empty() {
                out.push(b'/');
            }
            // `.`, `..` and every dotfile.
            not_found |= byte == b'.';
        }
        out.push(byte);
    }
    if not_found {
        return Err(Refusal::NotFound);
    }
    Ok(Resolved {
        path: PathBuf::from(OsString::from_vec(out)),
        trailing_slash: rest.last().is_none_or(|&b| b == b'/'),
    })
}

/// Bytes copied as they are in the middle of a segment: not `/`, `%`, `\`, a control byte
/// or DEL. (`.` is plain here; only a segment's first byte is checked for it.)
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let b = i as u8;
        t[i] = !(is_control(b) || b == b'/' || b == b'%' || b == b'\\');
        i += 1;
    }
    t
};

/// C0 controls (NUL included) and DEL.
const fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Split a request target (origin-form `/a/b?q`, or absolute-form `http://host/a/b?q`) into
/// (path, query) without decoding; None for `*` or anything else.
///
/// A fragment (`#...`, which clients do not send, RFC 9112 §3.2) is dropped first, as the
/// WSGI adapter does for `PATH_INFO`, so a static mount and the app see the same path. An
/// absolute-form target with an empty path has the path `/` (RFC 9110 §4.2.3). The query is
/// `Some` whenever a `?` is present, even an empty one, so that a redirect can keep it as sent.
pub fn target_path(target: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let target = match memchr::memchr(b'#', target) {
        Some(i) => &target[..i],
        None => target,
    };
    let (before, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    if before.first() == Some(&b'/') {
        return Some((before, query));
    }
    // absolute-form: scheme "://" authority [path-abempty] (RFC 9112 §3.2.2, RFC 3986 §3).
    let colon = memchr::memchr(b':', before)?;
    let scheme = &before[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let after = before[colon + 1..].strip_prefix(b"//")?;
    if !scheme_ok {
        return None;
    }
    match memchr::memchr(b'/', after) {
        Some(i) => Some((&after[i..], query)),
        None => Some((b"/", query)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Component;

    use super::*;

    fn ok(rest: &str) -> (String, bool) {
        let r = relative_path(rest.as_bytes()).unwrap();
        (r.path.to_str().unwrap().to_owned(), r.trailing_slash)
    }

    fn path(rest: &str) -> String {
        ok(rest).0
    }

    fn refused(rest: &[u8]) -> Refusal {
        relative_path(rest).unwrap_err()
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("css/app.css"), ("css/app.css".into(), false));
        assert_eq!(ok("img/"), ("img".into(), true));
        assert_eq!(ok("a/b/c.js"), ("a/b/c.js".into(), false));
        assert_eq!(ok("file"), ("file".into(), false));
        // Names with inner or trailing dots are ordinary names.
        assert_eq!(path("app.min.js"), "app.min.js");
        assert_eq!(path("a/b../c"), "a/b../c");
    }

    #[test]
    fn the_mount_root_is_a_directory_url() {
        assert_eq!(ok(""), (String::new(), true));
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("///"), (String::new(), true));
    }

    #[test]
    fn empty_segments_are_skipped_and_the_result_stays_relative() {
        assert_eq!(ok("//a///b//"), ("a/b".into(), true));
        // An absolute-looking rest is only an empty first segment: still under the mount.
        let r = relative_path(b"/etc/passwd").unwrap();
        assert_eq!(r.path, PathBuf::from("etc/passwd"));
        assert!(r.path.is_relative());
        assert!(relative_path(b"//etc//passwd").unwrap().path.is_relative());
    }

    #[test]
    fn percent_decoding_happens_once() {
        assert_eq!(path("a%20b.txt"), "a b.txt");
        assert_eq!(path("caf%C3%A9.css"), "café.css");
        assert_eq!(path("caf%c3%a9.css"), "café.css");
        assert_eq!(path("100%25.txt"), "100%.txt");
        // `%252e%252e` is the literal name `%2e%2e` (which will not exist), never `..`.
        assert_eq!(path("%252e%252e/etc/passwd"), "%2e%2e/etc/passwd");
        assert_eq!(path("%252f"), "%2f");
        // Reserved characters other than `/` decode to themselves.
        assert_eq!(path("a%3Fb%23c%3B"), "a?b#c;");
        assert_eq!(path("%7e"), "~");
    }

    #[test]
    fn traversal_is_not_found() {
        for rest in [
            "..",
            "../etc/passwd",
            "a/../../etc/passwd",
            "a/..",
            "a/../b",
            "%2e%2e/etc/passwd",
            "%2E%2E/etc/passwd",
            ".%2e/x",
            "%2e./x",
            "a/%2e%2e",
            "..%2f",
            "..%2F..%2Fetc%2Fpasswd",
            "a%2f..%2fb",
            "..\\",
            "..\\..\\windows\\win.ini",
            "%5c..",
            "%5C..%5Cx",
            "a\\b",
            "a%5cb",
        ] {
            assert_eq!(refused(rest.as_bytes()), Refusal::NotFound, "{rest:?}");
        }
    }

    #[test]
    fn single_dot_segments_are_not_found() {
        for rest in [".", "./a", "a/./b", "a/.", "%2e/a", "a/%2E/b"] {
            assert_eq!(refused(rest.as_bytes()), Refusal::NotFound, "{rest:?}");
        }
    }

    #[test]
    fn dotfiles_are_not_found() {
        for rest in [
            ".env",
            ".git/config",
            "a/.git/HEAD",
            ".htaccess",
            "sub/.hidden/",
            "%2eenv",
            "%2Egit/config",
            ".well-known/x",
            "...",
            "a/.../b",
        ] {
            assert_eq!(refused(rest.as_bytes()), Refusal::NotFound, "{rest:?}");
        }
    }

    #[test]
    fn an_encoded_slash_is_not_found() {
        for rest in ["a%2fb", "a%2Fb", "%2f", "a/b%2F", "%2Fetc%2Fpasswd"] {
            assert_eq!(refused(rest.as_bytes()), Refusal::NotFound, "{rest:?}");
        }
    }

    #[test]
    fn malformed_percent_encoding_is_bad_request() {
        for rest in [
            "%", "a%", "a%2", "%zz", "%2g", "%g2", "a/%/b", "%%", "%%41", "%-1", "% 1", "%+1",
        ] {
            assert_eq!(refused(rest.as_bytes()), Refusal::BadRequest, "{rest:?}");
        }
    }

    #[test]
    fn nul_and_control_bytes_are_bad_request() {
        for rest in [
            &b"%00"[..],
            b"a%00.txt",
            b"a.txt%00.png",
            b"a\0b",
            b"a\nb",
            b"a\rb",
            b"a\tb",
            b"a\x7fb",
            b"%0a",
            b"%0D%0Aset-cookie",
            b"%1f",
            b"%7F",
            b"%7f",
        ] {
            assert_eq!(refused(rest), Refusal::BadRequest, "{rest:?}");
        }
        // Space and the bytes just above the controls are fine.
        assert_eq!(path("%20"), " ");
        assert_eq!(path("%21"), "!");
    }

    #[test]
    fn bad_request_wins_over_not_found() {
        // The malformed byte comes after the traversal: still 400, not 404.
        assert_eq!(refused(b"../a%zz"), Refusal::BadRequest);
        assert_eq!(refused(b".env/%00"), Refusal::BadRequest);
        assert_eq!(refused(b"a\\b%"), Refusal::BadRequest);
        assert_eq!(refused(b"a%2fb/\x01"), Refusal::BadRequest);
        // And before it.
        assert_eq!(refused(b"%zz/.."), Refusal::BadRequest);
    }

    #[test]
    fn overlong_utf8_dot_is_a_literal_name_not_a_dot() {
        // `%c0%ae` is an overlong (invalid) UTF-8 encoding of `.`. Decoded once it is the two
        // bytes 0xC0 0xAE: not a dot to the kernel, so `%c0%ae%c0%ae/etc/passwd` looks for a
        // directory literally named "\xC0\xAE\xC0\xAE" under the mount. Safe to pass on.
        let r = relative_path(b"%c0%ae%c0%ae/etc/passwd").unwrap();
        assert_eq!(
            r.path.as_os_str().as_encoded_bytes(),
            b"\xc0\xae\xc0\xae/etc/passwd"
        );
        assert!(r
            .path
            .components()
            .all(|c| matches!(c, Component::Normal(_))));
        // Raw non-ASCII bytes pass through too (file names are bytes, not UTF-8).
        let r = relative_path(b"\xff\xfe.bin").unwrap();
        assert_eq!(r.path.as_os_str().as_encoded_bytes(), b"\xff\xfe.bin");
    }

    #[test]
    fn result_components_are_all_normal() {
        let r = relative_path(b"/a//b/c.d/").unwrap();
        let parts: Vec<_> = r.path.components().collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))));
    }

    #[test]
    fn target_path_origin_form() {
        assert_eq!(target_path(b"/a/b"), Some((&b"/a/b"[..], None)));
        assert_eq!(
            target_path(b"/a/b?x=1&y"),
            Some((&b"/a/b"[..], Some(&b"x=1&y"[..])))
        );
        assert_eq!(target_path(b"/?"), Some((&b"/"[..], Some(&b""[..]))));
        assert_eq!(
            target_path(b"/a?b?c"),
            Some((&b"/a"[..], Some(&b"b?c"[..])))
        );
        // Not decoded: an encoded `?` stays in the path.
        assert_eq!(target_path(b"/a%3Fb"), Some((&b"/a%3Fb"[..], None)));
        // A fragment is not part of the path or the query.
        assert_eq!(target_path(b"/a#frag?x"), Some((&b"/a"[..], None)));
        assert_eq!(
            target_path(b"/a?x#frag"),
            Some((&b"/a"[..], Some(&b"x"[..])))
        );
    }

    #[test]
    fn target_path_absolute_form() {
        assert_eq!(
            target_path(b"http://example.com/static/a.css?v=2"),
            Some((&b"/static/a.css"[..], Some(&b"v=2"[..])))
        );
        assert_eq!(
            target_path(b"HTTPS://example.com:8443/x"),
            Some((&b"/x"[..], None))
        );
        assert_eq!(
            target_path(b"http://user:pw@example.com/x"),
            Some((&b"/x"[..], None))
        );
        // RFC 9110 §4.2.3: an empty path is "/".
        assert_eq!(target_path(b"http://example.com"), Some((&b"/"[..], None)));
        assert_eq!(
            target_path(b"http://example.com?q"),
            Some((&b"/"[..], Some(&b"q"[..])))
        );
        assert_eq!(
            target_path(b"http://[::1]:8000/a"),
            Some((&b"/a"[..], None))
        );
    }

    #[test]
    fn target_path_other_forms_are_none() {
        assert_eq!(target_path(b"*"), None);
        assert_eq!(target_path(b""), None);
        assert_eq!(target_path(b"example.com:443"), None);
        assert_eq!(target_path(b"a/b"), None);
        assert_eq!(target_path(b"http:/x"), None);
        assert_eq!(target_path(b"1http://h/x"), None);
        assert_eq!(target_path(b"ht_tp://h/x"), None);
        assert_eq!(target_path(b"://h/x"), None);
        assert_eq!(target_path(b"?x"), None);
    }

    use crate::static_files::testutil::XorShift;

    #[test]
    fn property_no_escape_from_the_mount() {
        // Pieces chosen to meet the rules: dots, slashes, escapes of both, controls, bytes
        // that are not UTF-8, and malformed escapes.
        const PIECES: &[&[u8]] = &[
            b"/",
            b"/",
            b".",
            b"..",
            b"a",
            b"bc",
            b"%2e",
            b"%2E",
            b"%2f",
            b"%2F",
            b"%5c",
            b"%5C",
            b"\\",
            b"%25",
            b"%00",
            b"\0",
            b"%",
            b"%2",
            b"%zz",
            b"%c0%ae",
            b"\xc0\xae",
            b"%0a",
            b"\n",
            b"\x7f",
            b"%7f",
            b" ",
            b"%20",
            b"~",
            b"?",
            b"e",
            b"2",
            b"5",
            b"c",
            b"\xff",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut input = Vec::new();
        let mut accepted = 0;
        for _ in 0..20_000 {
            input.clear();
            for _ in 0..rng.below(12) {
                input.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
            // Some fully random bytes as well.
            if rng.below(4) == 0 {
                for _ in 0..rng.below(8) {
                    input.push(rng.next() as u8);
                }
            }
            let Ok(r) = relative_path(&input) else {
                continue;
            };
            accepted += 1;
            let bytes = r.path.as_os_str().as_encoded_bytes();
            assert!(!bytes.contains(&b'\\'), "{input:?} -> {bytes:?}");
            assert!(!bytes.iter().any(|&b| is_control(b)), "{input:?}");
            assert!(r.path.is_relative(), "{input:?}");
            for part in bytes.split(|&b| b == b'/').filter(|_| !bytes.is_empty()) {
                assert!(!part.is_empty(), "{input:?} -> {bytes:?}");
                assert_ne!(part[0], b'.', "{input:?} -> {bytes:?}");
            }
            assert!(
                r.path
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))),
                "{input:?}"
            );
            assert_eq!(r.trailing_slash, input.last().is_none_or(|&b| b == b'/'));
        }
        // The generator must reach the accepting side too, or the assertions above test
        // nothing.
        assert!(accepted > 1_000, "only {accepted} inputs accepted");
    }
}
