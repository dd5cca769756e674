//! Media types of static files, by file-name extension.
//!
//! This module owns the `Content-Type` value a file is sent with ([`content_type`]) and
//! whether a type is worth compressing ([`is_compressible`], used by `bourbon compress`). The
//! table covers what a Django or single-page-app static tree holds; anything else is
//! `application/octet-stream` (RFC 9110 §8.3: a recipient may treat it as opaque data).
//!
//! Textual types carry `; charset=utf-8` (`text/*`, JavaScript, JSON, XML, SVG, the web app
//! manifest), since build tools write UTF-8 and browsers would otherwise guess. JavaScript
//! is `text/javascript` (RFC 9239 makes it the one to send; `application/javascript` is
//! obsolete). The table is sorted by extension and searched by binary search, the
//! extension lower-cased on the stack and packed into an integer key: no allocation, no
//! string comparison per probe.

use std::path::Path;

const UTF8_HTML: &str = "text/html; charset=utf-8";
const UTF8_JS: &str = "text/javascript; charset=utf-8";
const UTF8_JSON: &str = "application/json; charset=utf-8";
const OCTET_STREAM: &str = "application/octet-stream";

/// Extension (lowercase ASCII) → full `Content-Type` value, sorted by extension.
///
/// `.br` has no row: there is no registered media type for a bare brotli stream, so such a
/// file is opaque data. (A pre-compressed variant is sent with its original's type and
/// `Content-Encoding: br`, which the serving layer decides, not this table.)
const TYPES: &[(&str, &str)] = &[
    ("apng", "image/apng"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("cjs", UTF8_JS),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("eot", "application/vnd.ms-fontobject"),
    ("flac", "audio/flac"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", UTF8_HTML),
    ("html", UTF8_HTML),
    ("ico", "image/x-icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", UTF8_JS),
    ("json", UTF8_JSON),
    ("m4a", "audio/mp4"),
    // Source maps are JSON (ECMA-426).
    ("map", UTF8_JSON),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", UTF8_JS),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml; charset=utf-8"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json; charset=utf-8"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xml", "application/xml; charset=utf-8"),
    ("zip", "application/zip"),
];

/// Longer than any extension in [`TYPES`]; a longer extension is unknown without a look-up.
/// 16 bytes fit one `u128` key.
const MAX_EXT: usize = 16;

/// The extensions of [`TYPES`] as integers, in the same order: a look-up compares integers
/// instead of calling `memcmp` per probe.
static KEYS: [u128; TYPES.len()] = {
    let mut keys = [0; TYPES.len()];
    let mut i = 0;
    while i < TYPES.len() {
        keys[i] = key(TYPES[i].0.as_bytes());
        i += 1;
    }
    keys
};

/// Up to 16 bytes packed big-endian and zero-padded, so integer order is the bytes'
/// lexicographic order (no extension holds a NUL byte: Unix file names cannot).
const fn key(ext: &[u8]) -> u128 {
    let mut k: u128 = 0;
    let mut i = 0;
    while i < MAX_EXT {
        let b = if i < ext.len() { ext[i] } else { 0 };
        k = k << 8 | b as u128;
        i += 1;
    }
    k
}

/// The `Content-Type` value for a file, by its extension (ASCII case-insensitive), or
/// `application/octet-stream` when the extension is unknown or absent.
pub fn content_type(path: &Path) -> &'static str {
    let Some(ext) = extension(path.as_os_str().as_encoded_bytes()) else {
        return OCTET_STREAM;
    };
    if ext.len() > MAX_EXT {
        return OCTET_STREAM;
    }
    let mut lower = [0u8; MAX_EXT];
    lower[..ext.len()].copy_from_slice(ext);
    lower.make_ascii_lowercase();
    match KEYS.binary_search(&u128::from_be_bytes(lower)) {
        Ok(i) => TYPES[i].1,
        Err(_) => OCTET_STREAM,
    }
}

/// What follows the last `.` of the last component, as `Path::extension` reads it for the
/// paths [`super::resolve`] makes, without its component parsing (this runs per request):
/// `None` for a name without a dot, or whose only dot leads it (`.env`).
fn extension(path: &[u8]) -> Option<&[u8]> {
    let path = match path.iter().rposition(|&b| b != b'/') {
        Some(last) => &path[..=last],
        None => return None,
    };
    let name = match memchr::memrchr(b'/', path) {
        Some(slash) => &path[slash + 1..],
        None => path,
    };
    match memchr::memrchr(b'.', name) {
        _ if name == b".." => None,
        Some(0) | None => None,
        Some(dot) => Some(&name[dot + 1..]),
    }
}

/// Whether content of this type (a `Content-Type` value; parameters and case ignored) shrinks
/// under gzip or brotli: text, JavaScript, JSON, XML (`+json` / `+xml` types included, so
/// SVG and the web app manifest), WebAssembly, uncompressed font formats (TrueType,
/// OpenType, EOT), icons and bitmaps. Not formats that are already compressed: PNG, JPEG,
/// GIF, WebP, AVIF, WOFF/WOFF2, archives, audio and video.
pub fn is_compressible(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or(ct).trim_matches([' ', '\t']);
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    if top.eq_ignore_ascii_case("text") {
        return true;
    }
    let suffix_of = |s: &str| {
        sub.len() > s.len()
            && sub.as_bytes()[sub.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
    };
    // RFC 6839 structured-syntax suffixes: SVG, the manifest, RSS/Atom, JSON-LD, ...
    if suffix_of("+json") || suffix_of("+xml") {
        return true;
    }
    const COMPRESSIBLE: &[(&str, &str)] = &[
        ("application", "ecmascript"),
        ("application", "javascript"),
        ("application", "json"),
        ("application", "vnd.ms-fontobject"),
        ("application", "wasm"),
        ("application", "x-javascript"),
        ("application", "xml"),
        ("font", "otf"),
        ("font", "ttf"),
        ("image", "bmp"),
        ("image", "vnd.microsoft.icon"),
        ("image", "x-icon"),
    ];
    COMPRESSIBLE
        .iter()
        .any(|(t, s)| top.eq_ignore_ascii_case(t) && sub.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn ct(name: &str) -> &'static str {
        content_type(Path::new(name))
    }

    #[test]
    fn table_is_sorted_unique_and_lowercase() {
        for pair in TYPES.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{:?} before {:?}",
                pair[0].0,
                pair[1].0
            );
        }
        for pair in KEYS.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for (ext, ty) in TYPES {
            assert!(!ext.is_empty() && !ext.contains('\0'));
            assert_eq!(*ext, ext.to_ascii_lowercase());
            assert!(ext.len() <= MAX_EXT);
            assert!(ty.is_ascii() && ty.contains('/'));
        }
    }

    #[test]
    fn a_django_or_spa_tree() {
        let expected = [
            ("app.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("app.js.map", "application/json; charset=utf-8"),
            ("index.html", "text/html; charset=utf-8"),
            ("old.htm", "text/html; charset=utf-8"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("feed.xml", "application/xml; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("favicon.ico", "image/x-icon"),
            ("a.bmp", "image/bmp"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("f.eot", "application/vnd.ms-fontobject"),
            ("doc.pdf", "application/pdf"),
            ("a.zip", "application/zip"),
            ("a.tar.gz", "application/gzip"),
            ("m.wasm", "application/wasm"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("s.ogg", "audio/ogg"),
            ("s.mp3", "audio/mpeg"),
            ("s.wav", "audio/wav"),
            ("t.csv", "text/csv; charset=utf-8"),
            ("README.md", "text/markdown; charset=utf-8"),
            (
                "site.webmanifest",
                "application/manifest+json; charset=utf-8",
            ),
        ];
        for (name, ty) in expected {
            assert_eq!(ct(name), ty, "{name}");
        }
    }

    #[test]
    fn extensions_are_case_insensitive() {
        assert_eq!(ct("A.CSS"), "text/css; charset=utf-8");
        assert_eq!(ct("photo.JpG"), "image/jpeg");
        assert_eq!(
            ct("x.WebManifest"),
            "application/manifest+json; charset=utf-8"
        );
    }

    #[test]
    fn unknown_or_missing_extensions_are_octet_stream() {
        for name in [
            "Makefile",
            "a.exe",
            "a.",
            "a.br",
            "app.css.br",
            "a.verylongextensionthatisnotinthetable",
            "dir/",
            "",
            ".css",
            "a.c ss",
            "a.cs",
            "a.csss",
        ] {
            assert_eq!(ct(name), OCTET_STREAM, "{name:?}");
        }
        // `.css` alone is a dotfile named ".css" with no extension (Path's rule); the last
        // extension decides for pre-compressed names.
        assert_eq!(ct("app.css.gz"), "application/gzip");
        // Non-UTF-8 names still work.
        let odd = Path::new(OsStr::from_bytes(b"\xff\xfe.PNG"));
        assert_eq!(content_type(odd), "image/png");
        let odd = Path::new(OsStr::from_bytes(b"a.\xffng"));
        assert_eq!(content_type(odd), OCTET_STREAM);
    }

    #[test]
    fn extension_agrees_with_path_extension() {
        for name in [
            "a.css",
            "a.b.c",
            "dir/a.js",
            "dir.d/a",
            "dir.d/a.png",
            ".env",
            "a/.env",
            "a.",
            "a",
            "",
            "/",
            "a/",
            "a.css/",
            "//a.css//",
            "..",
            "a/..",
            "a..b",
            "...",
            ".a.b",
            "/x/y.z",
        ] {
            let ours = extension(name.as_bytes());
            let std = Path::new(name).extension().map(|e| e.as_encoded_bytes());
            assert_eq!(ours, std, "{name:?}");
        }
    }

    #[test]
    fn textual_types_carry_a_charset() {
        for (ext, ty) in TYPES {
            let textual = ty.starts_with("text/")
                || ty.contains("json")
                || ty.contains("xml")
                || ty.contains("javascript");
            assert_eq!(ty.ends_with("; charset=utf-8"), textual, "{ext}: {ty}");
        }
    }

    #[test]
    fn compressible_types() {
        for ty in [
            "text/css; charset=utf-8",
            "text/html",
            "TEXT/PLAIN; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/javascript",
            "application/json; charset=utf-8",
            "application/xml",
            "image/svg+xml; charset=utf-8",
            "application/manifest+json; charset=utf-8",
            "application/rss+xml",
            "application/ld+json",
            "application/wasm",
            "font/ttf",
            "font/otf",
            "application/vnd.ms-fontobject",
            "image/x-icon",
            "image/vnd.microsoft.icon",
            "image/bmp",
            " text/csv ",
        ] {
            assert!(is_compressible(ty), "{ty}");
        }
        for ty in [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/avif",
            "font/woff",
            "font/woff2",
            "application/zip",
            "application/gzip",
            "application/octet-stream",
            "video/mp4",
            "video/webm",
            "audio/mpeg",
            "audio/ogg",
            "application/pdf",
            "",
            "text",
            "+json",
            "application/+json",
            "json",
        ] {
            assert!(!is_compressible(ty), "{ty}");
        }
        // Every type the table gives has a decided answer consistent with the lists above.
        for (ext, ty) in TYPES {
            let expect = !matches!(
                *ext,
                "apng"
                    | "avif"
                    | "flac"
                    | "gif"
                    | "gz"
                    | "jpeg"
                    | "jpg"
                    | "m4a"
                    | "mp3"
                    | "mp4"
                    | "oga"
                    | "ogg"
                    | "ogv"
                    | "opus"
                    | "pdf"
                    | "png"
                    | "tif"
                    | "tiff"
                    | "wav"
                    | "webm"
                    | "webp"
                    | "woff"
                    | "woff2"
                    | "zip"
            );
            assert_eq!(is_compressible(ty), expect, "{ext}: {ty}");
        }
    }
}
