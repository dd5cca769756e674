//! Building the WSGI `environ` dict (PEP 3333 "environ Variables").
//!
//! It owns the base environ (the keys that never change in a worker, built once and copied per
//! request) and the per-request keys: CGI variables from the request line, the Host header and
//! the socket; `HTTP_*` from the headers with repeats joined; `wsgi.input`. Keys are interned
//! Python strings. Nothing from `os.environ` is ever copied in.
//!
//! Where the values come from (`docs/architecture.md`, "The WSGI environ"):
//!
//! - `HTTP_HOST` is the host the request is for: the authority of an absolute-form target,
//!   which wins over the Host field (RFC 9112 §3.2.2), else the Host field.
//! - `SERVER_NAME` and `SERVER_PORT` say where the connection arrived (PEP 3333, RFC 3875
//!   §4.1.14–15): on a TCP listener its address and port, never guessed from Host (an IPv6
//!   address in brackets, so that `SERVER_NAME:SERVER_PORT` is a URL authority). A unix
//!   socket has no port: there, as gunicorn does, they come from the request's host (its
//!   port, else 80, the scheme's default), or, without one, the socket path and "".
//! - Repeated fields are joined in one pass over the fields (a hash of their names beyond a
//!   few fields), so a head with thousands of fields costs time in proportion to their number.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::message::{Job, Local};

/// What the environ needs that is fixed for the worker's life.
#[derive(Clone, Debug)]
pub(crate) struct EnvironConfig {
    pub(crate) root_path: String,
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
}

/// Build the base environ: the keys shared by every request.
pub(crate) fn base_environ<'py>(
    py: Python<'py>,
    cfg: &EnvironConfig,
    errors: Bound<'py, PyAny>,
    file_wrapper: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    d.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
    d.set_item(intern!(py, "wsgi.errors"), errors)?;
    d.set_item(intern!(py, "wsgi.multithread"), cfg.multithread)?;
    d.set_item(intern!(py, "wsgi.multiprocess"), cfg.multiprocess)?;
    d.set_item(intern!(py, "wsgi.run_once"), false)?;
    d.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    d.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
    d.set_item(intern!(py, "SCRIPT_NAME"), cfg.root_path.as_str())?;
    d.set_item(intern!(py, "SERVER_SOFTWARE"), crate::SERVER_SOFTWARE)?;
    // Every request sets these; having them in the base already means the per-request copy
    // (which keeps the base's table size) only overwrites values, and the base's table is
    // then large enough that adding the HTTP_* keys does not resize it.
    for key in [
        intern!(py, "REQUEST_METHOD"),
        intern!(py, "SERVER_PROTOCOL"),
        intern!(py, "RAW_URI"),
        intern!(py, "QUERY_STRING"),
        intern!(py, "PATH_INFO"),
        intern!(py, "SERVER_NAME"),
        intern!(py, "SERVER_PORT"),
        intern!(py, "REMOTE_ADDR"),
        intern!(py, "REMOTE_PORT"),
        intern!(py, "wsgi.input"),
    ] {
        d.set_item(key, intern!(py, ""))?;
    }
    Ok(d)
}

/// A Python str holding `bytes` as latin-1 (PEP 3333 "Unicode Issues": native strings whose
/// code points are the bytes).
#[allow(unsafe_code)]
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    let len = pyo3::ffi::Py_ssize_t::try_from(bytes.len()).unwrap_or(0);
    // CPython builds a latin-1 str by a copy (no UTF-8 decoding, no intermediate String).
    // SAFETY: the pointer and length describe `bytes`, alive for the call; a null `errors`
    // means "strict", which cannot fail for latin-1. The GIL is held (we have `py`).
    let ptr =
        unsafe { pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null()) };
    // SAFETY: `ptr` is a new reference to a str, or null with an exception set (out of
    // memory), which `from_owned_ptr_or_err` turns into an error.
    match unsafe { Bound::from_owned_ptr_or_err(py, ptr) } {
        Ok(s) => s
            .cast_into::<PyString>()
            .unwrap_or_else(|_| PyString::new(py, "")),
        Err(_) => PyString::new(py, ""),
    }
}

/// Decode `%XX` escapes; invalid escapes stay as they are (as gunicorn and wsgiref do).
fn percent_decode(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hi = (raw[i + 1] as char).to_digit(16);
            let lo = (raw[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn method_str<'py>(py: Python<'py>, m: &[u8]) -> Bound<'py, PyString> {
    match m {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        b"PUT" => intern!(py, "PUT").clone(),
        b"DELETE" => intern!(py, "DELETE").clone(),
        b"OPTIONS" => intern!(py, "OPTIONS").clone(),
        b"PATCH" => intern!(py, "PATCH").clone(),
        // The guard only lets tokens through: ASCII.
        _ => latin1_str(py, m),
    }
}

/// The environ key for a request header, or None for headers WSGI drops: names containing
/// `_` are dropped, as gunicorn does by default, because `X-Foo_Bar` and `X-Foo-Bar` would
/// both become `HTTP_X_FOO_BAR` and a client could spoof a header a proxy set.
fn header_key<'py>(py: Python<'py>, name: &[u8]) -> Option<Bound<'py, PyString>> {
    // The common names map to interned keys: no string is built for them per request.
    let known = |n: &[u8]| name.eq_ignore_ascii_case(n);
    let key = match name.len() {
        4 if known(b"host") => Some(intern!(py, "HTTP_HOST")),
        6 if known(b"accept") => Some(intern!(py, "HTTP_ACCEPT")),
        6 if known(b"cookie") => Some(intern!(py, "HTTP_COOKIE")),
        6 if known(b"origin") => Some(intern!(py, "HTTP_ORIGIN")),
        7 if known(b"referer") => Some(intern!(py, "HTTP_REFERER")),
        10 if known(b"user-agent") => Some(intern!(py, "HTTP_USER_AGENT")),
        10 if known(b"connection") => Some(intern!(py, "HTTP_CONNECTION")),
        12 if known(b"content-type") => Some(intern!(py, "CONTENT_TYPE")),
        // Every request has one (layer/forwarded.rs).
        12 if known(b"x-request-id") => Some(intern!(py, "HTTP_X_REQUEST_ID")),
        15 if known(b"x-forwarded-for") => Some(intern!(py, "HTTP_X_FORWARDED_FOR")),
        17 if known(b"x-forwarded-proto") => Some(intern!(py, "HTTP_X_FORWARDED_PROTO")),
        13 if known(b"cache-control") => Some(intern!(py, "HTTP_CACHE_CONTROL")),
        13 if known(b"authorization") => Some(intern!(py, "HTTP_AUTHORIZATION")),
        13 if known(b"if-none-match") => Some(intern!(py, "HTTP_IF_NONE_MATCH")),
        14 if known(b"content-length") => Some(intern!(py, "CONTENT_LENGTH")),
        15 if known(b"accept-encoding") => Some(intern!(py, "HTTP_ACCEPT_ENCODING")),
        15 if known(b"accept-language") => Some(intern!(py, "HTTP_ACCEPT_LANGUAGE")),
        17 if known(b"if-modified-since") => Some(intern!(py, "HTTP_IF_MODIFIED_SINCE")),
        _ => None,
    };
    if let Some(key) = key {
        return Some(key.clone());
    }
    if name.contains(&b'_') {
        return None;
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    for &c in name {
        key.push(if c == b'-' {
            '_'
        } else {
            char::from(c.to_ascii_uppercase())
        });
    }
    Some(PyString::new(py, &key))
}

/// SERVER_NAME and SERVER_PORT: the TCP listener's address and port; on a unix socket the
/// request's host (validated by the guard: `uri-host [":" port]`) with its port or 80, else
/// the socket path and no port (see the module docs).
fn server_name_port(host: Option<&[u8]>, local: &Local) -> (String, String) {
    let path = match local {
        Local::Tcp(addr) => {
            let name = match addr.ip() {
                // RFC 3875 §4.1.14: server-name = hostname | ipv4-address | "[" ipv6-address "]"
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                std::net::IpAddr::V4(ip) => ip.to_string(),
            };
            return (name, addr.port().to_string());
        }
        Local::Unix(path) => path,
        // What a trusted proxy said (layer/forwarded.rs): the host the client asked for.
        Local::Proxied { name, port } => return (name.to_string(), port.to_string()),
    };
    let host = host
        .filter(|h| !h.is_empty())
        .and_then(|h| std::str::from_utf8(h).ok());
    let Some(host) = host else {
        return (path.to_string(), String::new());
    };
    // The port follows the last colon after an IPv6 literal's closing bracket.
    let name_end = host.rfind(']').map_or(0, |i| i + 1);
    match host[name_end..].rfind(':').map(|i| name_end + i) {
        Some(colon) if colon + 1 < host.len() => {
            (host[..colon].to_owned(), host[colon + 1..].to_owned())
        }
        Some(colon) => (host[..colon].to_owned(), "80".to_owned()),
        None => (host.to_owned(), "80".to_owned()),
    }
}

/// The end of a chain in [`link_repeats`].
const NO_NEXT: u32 = 0x7fff_ffff;
/// Set in a link when the field is not the first of its name.
const REPEAT: u32 = 0x8000_0000;
/// Up to this many fields, repeats are found by comparing names pairwise (at most a few
/// hundred length comparisons, cheaper than hashing); beyond it, by a hash of the names.
const PAIRWISE_MAX: usize = 32;

/// Link each header field to the next one with the same name (ASCII case-insensitive), so
/// that repeats can be joined in one pass: `links[i] & !REPEAT` is the index of the next field
/// named like field `i` (or `NO_NEXT`), and `links[i] & REPEAT` says an earlier field has that
/// name. `name(i)` is field `i`'s name; it is asked for O(links.len()) times in all, however
/// the names repeat (field counts are bounded by the guard, far below 2^31).
fn link_repeats<'a>(links: &mut [u32], name: impl Fn(usize) -> &'a [u8]) {
    links.fill(NO_NEXT);
    let n = links.len();
    let link = |links: &mut [u32], from: usize, to: usize| {
        links[from] = (links[from] & REPEAT) | to as u32;
        links[to] |= REPEAT;
    };
    if n <= PAIRWISE_MAX {
        for i in 0..n {
            if links[i] & REPEAT != 0 {
                continue;
            }
            let first = name(i);
            let mut last = i;
            for j in i + 1..n {
                let other = name(j);
                if other.len() == first.len() && other.eq_ignore_ascii_case(first) {
                    link(links, last, j);
                    last = j;
                }
            }
        }
        return;
    }
    // The names come from the client: std's hasher is keyed per process, so they cannot be
    // chosen to collide.
    let mut last: std::collections::HashMap<FieldName<'a>, usize> =
        std::collections::HashMap::with_capacity(n);
    for i in 0..n {
        match last.entry(FieldName(name(i))) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                link(links, *e.get(), i);
                e.insert(i);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }
}

/// A field name compared and hashed ASCII case-insensitively (RFC 9110 §5.1).
struct FieldName<'a>(&'a [u8]);

impl PartialEq for FieldName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(other.0)
    }
}

impl Eq for FieldName<'_> {}

impl std::hash::Hash for FieldName<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut lower = [0u8; 64];
        for chunk in self.0.chunks(lower.len()) {
            let lower = &mut lower[..chunk.len()];
            lower.copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            state.write(lower);
        }
        state.write_usize(self.0.len());
    }
}

/// The path and query of a request target (RFC 9112 §3.2): origin-form `/p?q`, absolute-form
/// `http://host/p?q` (path "/" when empty), asterisk-form `*`. A fragment is not part of
/// either.
fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let target = match memchr::memchr(b'#', target) {
        Some(i) => &target[..i],
        None => target,
    };
    let (before, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    if before.first() == Some(&b'/') || before == b"*" {
        return (before, query);
    }
    // absolute-form: skip "scheme://authority".
    let after_scheme = memchr::memmem::find(before, b"://").map_or(0, |i| i + 3);
    match memchr::memchr(b'/', &before[after_scheme..]) {
        Some(i) => (&before[after_scheme + i..], query),
        None => (&b"/"[..], query),
    }
}

/// The Python strings a connection's requests share: the client's address, and what the
/// listener and the request's host give (SERVER_NAME, SERVER_PORT, HTTP_HOST), remade only
/// when a request is for another host than the one before.
struct ConnStrings {
    ip: Py<PyString>,
    port: Py<PyString>,
    /// The Host value the strings below were made from; `None` before the first request.
    host: Option<Option<Vec<u8>>>,
    server_name: Py<PyString>,
    server_port: Py<PyString>,
    host_value: Option<Py<PyString>>,
}

impl ConnStrings {
    fn new(py: Python<'_>, remote: &bourbon_server::serve::Remote) -> Self {
        let empty = intern!(py, "").clone().unbind();
        ConnStrings {
            ip: PyString::new(py, &remote.ip).unbind(),
            port: PyString::new(py, &remote.port).unbind(),
            host: None,
            server_name: empty.clone_ref(py),
            server_port: empty,
            host_value: None,
        }
    }

    fn refresh_host(&mut self, py: Python<'_>, host: Option<&[u8]>, local: &Local) {
        if self.host.as_ref().is_some_and(|h| h.as_deref() == host) {
            return;
        }
        let (name, port) = server_name_port(host, local);
        self.server_name = PyString::new(py, &name).unbind();
        self.server_port = PyString::new(py, &port).unbind();
        self.host_value = host.map(|h| latin1_str(py, h).unbind());
        self.host = Some(host.map(<[u8]>::to_vec));
    }
}

/// The environ for one request: a copy of the base plus the request's keys.
pub(crate) fn request_environ<'py>(
    py: Python<'py>,
    base: &Bound<'py, PyDict>,
    job: &Job,
    root_path: &str,
    input: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let head = &job.head;
    let env = base.copy()?;
    env.set_item(intern!(py, "REQUEST_METHOD"), method_str(py, head.method()))?;
    env.set_item(
        intern!(py, "SERVER_PROTOCOL"),
        if head.http10() {
            intern!(py, "HTTP/1.0")
        } else {
            intern!(py, "HTTP/1.1")
        },
    )?;
    set_uri_keys(py, &env, head.target(), root_path)?;

    // The address and Host strings are made once per connection (see `ConnStrings`).
    let host = head.host();
    let (remote_ip, remote_port, server_name, server_port, host_value) = job.remote.cache.with(
        || ConnStrings::new(py, &job.remote),
        |c| {
            c.refresh_host(py, host, &job.local);
            (
                c.ip.clone_ref(py),
                c.port.clone_ref(py),
                c.server_name.clone_ref(py),
                c.server_port.clone_ref(py),
                c.host_value.as_ref().map(|h| h.clone_ref(py)),
            )
        },
    );
    if job.scheme == bourbon_server::serve::Scheme::Https {
        // The base environ says "http"; only a TLS listener changes it.
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    env.set_item(intern!(py, "SERVER_PORT"), server_port)?;
    env.set_item(intern!(py, "REMOTE_ADDR"), remote_ip)?;
    env.set_item(intern!(py, "REMOTE_PORT"), remote_port)?;
    env.set_item(intern!(py, "wsgi.input"), input)?;
    // HTTP_HOST is the request's host, which for an absolute-form target is not the Host
    // field (the guard allows one Host field at most, so there is nothing to join).
    if let Some(host) = host_value {
        env.set_item(intern!(py, "HTTP_HOST"), host)?;
    }

    let count = head.field_count();
    let mut small = [0u32; PAIRWISE_MAX];
    let mut large = Vec::new();
    let links: &mut [u32] = if count <= PAIRWISE_MAX {
        &mut small[..count]
    } else {
        large.resize(count, 0);
        &mut large
    };
    link_repeats(links, |i| head.field(i).map_or(&b""[..], |(n, _)| n));
    for i in 0..count {
        // A repeated field was joined when the first of its name was met.
        if links[i] & REPEAT != 0 {
            continue;
        }
        let Some((name, value)) = head.field(i) else {
            continue;
        };
        if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        let Some(key) = header_key(py, name) else {
            continue;
        };
        let mut next = links[i] & !REPEAT;
        if next == NO_NEXT {
            env.set_item(key, latin1_str(py, value))?;
            continue;
        }
        // Repeated fields are joined as one list (RFC 9110 §5.3); cookies with "; " because
        // that is the Cookie header's own separator (RFC 6265 §5.4).
        let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b", "
        };
        let mut joined = value.to_vec();
        while next != NO_NEXT {
            let j = next as usize;
            if let Some((_, v)) = head.field(j) {
                joined.extend_from_slice(sep);
                joined.extend_from_slice(v);
            }
            next = links.get(j).map_or(NO_NEXT, |l| l & !REPEAT);
        }
        env.set_item(key, latin1_str(py, &joined))?;
    }
    Ok(env)
}

fn set_uri_keys(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    target: &[u8],
    root_path: &str,
) -> PyResult<()> {
    // RAW_URI is the target exactly as sent (gunicorn's meaning).
    env.set_item(intern!(py, "RAW_URI"), latin1_str(py, target))?;
    let (path, query) = split_target(target);
    env.set_item(intern!(py, "QUERY_STRING"), latin1_str(py, query))?;
    let decoded = percent_decode(path);
    let mut path: &[u8] = &decoded;
    if !root_path.is_empty() {
        // With a mount prefix, PATH_INFO is what follows SCRIPT_NAME (PEP 3333).
        if let Some(rest) = path.strip_prefix(root_path.as_bytes()) {
            if rest.is_empty() || rest.starts_with(b"/") {
                path = rest;
            }
        }
    }
    env.set_item(intern!(py, "PATH_INFO"), latin1_str(py, path))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::{
        link_repeats, percent_decode, server_name_port, split_target, Local, NO_NEXT, PAIRWISE_MAX,
        REPEAT,
    };

    /// The groups `link_repeats` finds, as lists of field indices in order, and how many
    /// times it asked for a name.
    fn groups(names: &[Vec<u8>]) -> (Vec<Vec<usize>>, usize) {
        let asked = Cell::new(0);
        let mut links = vec![0; names.len()];
        link_repeats(&mut links, |i| {
            asked.set(asked.get() + 1);
            &names[i][..]
        });
        let mut out = Vec::new();
        for i in 0..names.len() {
            if links[i] & REPEAT != 0 {
                continue;
            }
            let mut group = vec![i];
            let mut next = links[i] & !REPEAT;
            while next != NO_NEXT {
                group.push(next as usize);
                next = links[next as usize] & !REPEAT;
            }
            out.push(group);
        }
        (out, asked.get())
    }

    fn names(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn repeats_are_linked_case_insensitively_in_order() {
        let few = names(&["Host", "X-A", "Cookie", "x-a", "X-B", "cookie", "X-A"]);
        let expected = vec![vec![0], vec![1, 3, 6], vec![2, 5], vec![4]];
        assert_eq!(groups(&few).0, expected);
        // The same above the pairwise threshold (the hashed path).
        let mut many = few.clone();
        many.extend((0..PAIRWISE_MAX).map(|i| format!("Y-{i}").into_bytes()));
        many.push(b"COOKIE".to_vec());
        let (found, _) = groups(&many);
        assert_eq!(
            found[..4],
            [vec![0], vec![1, 3, 6], vec![2, 5, many.len() - 1], vec![4]]
        );
        assert_eq!(found.len(), 4 + PAIRWISE_MAX);
        // Names that differ only past the first 64 bytes, or by length, are different.
        let long_a = format!("{}a", "x".repeat(100));
        let long_b = format!("{}b", "X".repeat(100));
        let mut mixed = names(&[&long_a, &long_b, &long_a.to_uppercase(), "x", "xx"]);
        mixed.extend((0..PAIRWISE_MAX).map(|i| format!("Z-{i}").into_bytes()));
        assert_eq!(
            groups(&mixed).0[..4],
            [vec![0, 2], vec![1], vec![3], vec![4]]
        );
        assert_eq!(groups(&[]).0, Vec::<Vec<usize>>::new());
    }

    #[test]
    fn linking_is_linear_in_the_number_of_fields() {
        // 32,768 fields (the largest --limit-request-fields): the pairwise scan this replaced
        // compared names about n^2/2 = 537 million times (4 s of CPU holding the GIL). Each
        // name must now be asked for a bounded number of times, however they repeat.
        let n = 32_768;
        let distinct: Vec<Vec<u8>> = (0..n).map(|i| format!("X-F{i}").into_bytes()).collect();
        let same: Vec<Vec<u8>> = (0..n).map(|_| b"X-Same".to_vec()).collect();
        let halves: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("X-{}", i % 2).into_bytes())
            .collect();
        for (what, list, groups_expected) in [
            ("distinct", &distinct, n),
            ("all the same", &same, 1),
            ("two names", &halves, 2),
        ] {
            let (found, asked) = groups(list);
            assert_eq!(found.len(), groups_expected, "{what}");
            assert_eq!(found.iter().map(Vec::len).sum::<usize>(), n, "{what}");
            assert!(
                asked <= 2 * n,
                "{what}: {asked} name lookups for {n} fields"
            );
        }
    }

    #[test]
    fn server_name_and_port_say_where_the_connection_arrived() {
        let tcp4 = Local::Tcp("127.0.0.1:8000".parse().unwrap());
        let tcp6 = Local::Tcp("[::1]:8001".parse().unwrap());
        let unix = Local::Unix("/run/app.sock".into());
        let sp =
            |host: Option<&str>, local: &Local| server_name_port(host.map(str::as_bytes), local);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        // TCP: the listener, whatever Host says (PEP 3333, RFC 3875 §4.1.15).
        assert_eq!(sp(Some("localhost"), &tcp4), pair("127.0.0.1", "8000"));
        assert_eq!(
            sp(Some("example.com:8080"), &tcp4),
            pair("127.0.0.1", "8000")
        );
        assert_eq!(sp(None, &tcp4), pair("127.0.0.1", "8000"));
        assert_eq!(sp(Some("[::1]:9"), &tcp6), pair("[::1]", "8001"));
        // A unix socket has no port: the request's host, as gunicorn.
        assert_eq!(
            sp(Some("example.com:8443"), &unix),
            pair("example.com", "8443")
        );
        assert_eq!(sp(Some("example.com"), &unix), pair("example.com", "80"));
        assert_eq!(sp(Some("example.com:"), &unix), pair("example.com", "80"));
        assert_eq!(sp(Some("[::1]:8080"), &unix), pair("[::1]", "8080"));
        assert_eq!(sp(Some("[::1]"), &unix), pair("[::1]", "80"));
        assert_eq!(sp(Some(""), &unix), pair("/run/app.sock", ""));
        assert_eq!(sp(None, &unix), pair("/run/app.sock", ""));
    }

    #[test]
    fn splits_every_target_form() {
        let t = |s: &str| {
            let (p, q) = split_target(s.as_bytes());
            (
                String::from_utf8(p.to_vec()).unwrap(),
                String::from_utf8(q.to_vec()).unwrap(),
            )
        };
        assert_eq!(t("/a/b?x=1&y"), ("/a/b".into(), "x=1&y".into()));
        assert_eq!(t("/a#frag"), ("/a".into(), "".into()));
        assert_eq!(t("/a?q#frag"), ("/a".into(), "q".into()));
        assert_eq!(t("*"), ("*".into(), "".into()));
        assert_eq!(t("http://h:8/p/q?z"), ("/p/q".into(), "z".into()));
        assert_eq!(t("http://h"), ("/".into(), "".into()));
        assert_eq!(t("http://h?z=1"), ("/".into(), "z=1".into()));
    }

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(&*percent_decode(b"/a%20b"), b"/a b");
        assert_eq!(&*percent_decode(b"/%e2%82%ac"), b"/\xe2\x82\xac");
        assert_eq!(&*percent_decode(b"/bad%zz"), b"/bad%zz");
        assert_eq!(&*percent_decode(b"/end%2"), b"/end%2");
        assert_eq!(&*percent_decode(b"/end%"), b"/end%");
        assert_eq!(&*percent_decode(b"/x%2F"), b"/x/");
    }
}
