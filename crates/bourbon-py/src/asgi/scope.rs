//! The HTTP connection scope (ASGI spec, "HTTP" → "Connection Scope"), built from the head
//! the guard already validated: nothing is parsed twice.

use bourbon_server::request::RequestHead;
use bourbon_server::serve::{ConnInfo, Local};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// The ASGI version and the spec version we implement. 2.4: `send()` on a closed connection
/// raises an `OSError` (our `ClientDisconnected`).
pub(crate) const SPEC_VERSION: &str = "2.4";

/// What every scope of this worker shares.
pub(crate) struct ScopeCtx {
    /// `--root-path`: the prefix the application is mounted under ("" or `/path`).
    pub(crate) root_path: String,
}

/// Decode `%XX` sequences once (RFC 3986 §2.1); a `%` not followed by two hex digits stays.
pub(crate) fn percent_decode(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The path and query of a request target: origin-form as it is; absolute-form from its path
/// (RFC 9112 §3.2.2); `*` as it is.
fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let mut path_and_query = target;
    if !target.starts_with(b"/") && target != b"*" {
        // absolute-form: scheme "://" authority path
        if let Some(pos) = memchr::memmem::find(target, b"://") {
            let rest = &target[pos + 3..];
            path_and_query = match memchr::memchr2(b'/', b'?', rest) {
                Some(i) => &rest[i..],
                None => b"/",
            };
        }
    }
    match memchr::memchr(b'?', path_and_query) {
        Some(i) => (&path_and_query[..i], &path_and_query[i + 1..]),
        None => (path_and_query, b""),
    }
}

/// The client's address pair, `None` for a unix client: from the connection's address
/// strings, which a trusted proxy may have set (layer/forwarded.rs; an obfuscated `for=`
/// identifier is kept as the host, a port nobody gave is 0, as in uvicorn).
fn client<'py>(py: Python<'py>, conn: &ConnInfo) -> PyResult<Bound<'py, PyAny>> {
    if conn.remote.ip.is_empty() {
        return Ok(py.None().into_bound(py));
    }
    let port: u16 = conn.remote.port.parse().unwrap_or(0);
    Ok(PyTuple::new(
        py,
        [
            PyString::new(py, &conn.remote.ip).into_any(),
            port.into_pyobject(py)?.into_any(),
        ],
    )?
    .into_any())
}

fn server<'py>(py: Python<'py>, conn: &ConnInfo) -> PyResult<Bound<'py, PyAny>> {
    Ok(match &conn.local {
        Local::Tcp(addr) => PyTuple::new(
            py,
            [
                addr.ip().to_string().into_pyobject(py)?.into_any(),
                addr.port().into_pyobject(py)?.into_any(),
            ],
        )?
        .into_any(),
        Local::Unix(path) => PyTuple::new(
            py,
            [PyString::new(py, path).into_any(), py.None().into_bound(py)],
        )?
        .into_any(),
        Local::Proxied { name, port } => PyTuple::new(
            py,
            [
                PyString::new(py, name).into_any(),
                port.into_pyobject(py)?.into_any(),
            ],
        )?
        .into_any(),
    })
}

/// The request's header fields as `[(name, value)]` byte pairs, names lower-cased, in order,
/// duplicates kept.
fn headers<'py>(py: Python<'py>, head: &RequestHead) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let mut lower = Vec::with_capacity(32);
    for (name, value) in head.fields() {
        lower.clear();
        lower.extend(name.iter().map(u8::to_ascii_lowercase));
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, &lower).into_any(),
                PyBytes::new(py, value).into_any(),
            ],
        )?;
        list.append(pair)?;
    }
    Ok(list)
}

/// What every scope on one connection has in common, made once per connection and copied
/// (a `dict.copy()`) for each request.
struct Base(Option<Py<PyDict>>);

fn base<'py>(py: Python<'py>, conn: &ConnInfo, ctx: &ScopeCtx) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), SPEC_VERSION)?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    scope.set_item(intern!(py, "scheme"), conn.scheme.as_str())?;
    scope.set_item(intern!(py, "root_path"), &ctx.root_path)?;
    scope.set_item(intern!(py, "client"), client(py, conn)?)?;
    scope.set_item(intern!(py, "server"), server(py, conn)?)?;
    let ext = PyDict::new(py);
    for name in [
        intern!(py, "http.response.trailers"),
        intern!(py, "http.response.pathsend"),
        intern!(py, "http.response.zerocopysend"),
        intern!(py, "http.response.early_hint"),
    ] {
        ext.set_item(name, PyDict::new(py))?;
    }
    scope.set_item(intern!(py, "extensions"), ext)?;
    // The keys every request sets, present already (each request's copy replaces them): the
    // copy then has the room for all of them, where adding them one by one would grow the
    // table of the new dict twice.
    for key in [
        intern!(py, "http_version"),
        intern!(py, "method"),
        intern!(py, "path"),
        intern!(py, "raw_path"),
        intern!(py, "query_string"),
        intern!(py, "headers"),
    ] {
        scope.set_item(key, py.None())?;
    }
    Ok(scope)
}

/// The scope of one HTTP request.
pub(crate) fn http<'py>(
    py: Python<'py>,
    head: &RequestHead,
    conn: &ConnInfo,
    ctx: &ScopeCtx,
    state: Option<&Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = conn.remote.cache.with(
        || Base(None),
        |b: &mut Base| -> PyResult<Bound<'py, PyDict>> {
            let base = match &b.0 {
                Some(d) => d.bind(py).clone(),
                None => {
                    let d = base(py, conn, ctx)?;
                    b.0 = Some(d.clone().unbind());
                    d
                }
            };
            base.copy()
        },
    )?;
    scope.set_item(
        intern!(py, "http_version"),
        if head.http10() {
            intern!(py, "1.0")
        } else {
            intern!(py, "1.1")
        },
    )?;
    let method = head.method();
    let method = match method {
        b"GET" => intern!(py, "GET").clone(),
        b"POST" => intern!(py, "POST").clone(),
        b"HEAD" => intern!(py, "HEAD").clone(),
        _ => PyString::new(py, &String::from_utf8_lossy(method)),
    };
    scope.set_item(intern!(py, "method"), method)?;
    set_path(py, &scope, head, ctx)?;
    scope.set_item(intern!(py, "headers"), headers(py, head)?)?;
    if let Some(state) = state {
        scope.set_item(
            intern!(py, "state"),
            state.bind(py).call_method0(intern!(py, "copy"))?,
        )?;
    }
    Ok(scope)
}

/// The scope of a WebSocket connection (ASGI spec, "WebSocket" → "Connection Scope").
pub(crate) fn websocket<'py>(
    py: Python<'py>,
    head: &RequestHead,
    conn: &ConnInfo,
    ctx: &ScopeCtx,
    state: Option<&Py<PyAny>>,
    subprotocols: &[String],
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "websocket"))?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), SPEC_VERSION)?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    scope.set_item(intern!(py, "http_version"), intern!(py, "1.1"))?;
    let scheme = match conn.scheme {
        bourbon_server::serve::Scheme::Http => "ws",
        bourbon_server::serve::Scheme::Https => "wss",
    };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    set_path(py, &scope, head, ctx)?;
    scope.set_item(intern!(py, "root_path"), &ctx.root_path)?;
    scope.set_item(intern!(py, "headers"), headers(py, head)?)?;
    scope.set_item(intern!(py, "client"), client(py, conn)?)?;
    scope.set_item(intern!(py, "server"), server(py, conn)?)?;
    scope.set_item(intern!(py, "subprotocols"), PyList::new(py, subprotocols)?)?;
    if let Some(state) = state {
        scope.set_item(
            intern!(py, "state"),
            state.bind(py).call_method0(intern!(py, "copy"))?,
        )?;
    }
    let ext = PyDict::new(py);
    ext.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
    scope.set_item(intern!(py, "extensions"), ext)?;
    Ok(scope)
}

/// `path`, `raw_path` and `query_string`.
fn set_path(
    py: Python<'_>,
    scope: &Bound<'_, PyDict>,
    head: &RequestHead,
    ctx: &ScopeCtx,
) -> PyResult<()> {
    let (raw_path, query) = split_target(head.target());
    // uvicorn's way, which Starlette relies on: `path` and `raw_path` include `root_path`
    // (unless the proxy already left the prefix on the path).
    let root = ctx.root_path.as_bytes();
    let prefixed = !root.is_empty() && !raw_path.starts_with(root);
    let full_raw: std::borrow::Cow<'_, [u8]> = if prefixed {
        let mut v = root.to_vec();
        v.extend_from_slice(raw_path);
        v.into()
    } else {
        raw_path.into()
    };
    let decoded = percent_decode(&full_raw);
    let path = match std::str::from_utf8(&decoded) {
        Ok(p) => PyString::new(py, p),
        Err(_) => PyString::new(py, &String::from_utf8_lossy(&decoded)),
    };
    scope.set_item(intern!(py, "path"), path)?;
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, &full_raw))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, query))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, split_target};

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target(b"/a/b?x=1&y"), (&b"/a/b"[..], &b"x=1&y"[..]));
        assert_eq!(split_target(b"/a"), (&b"/a"[..], &b""[..]));
        assert_eq!(split_target(b"http://h:1/p?q"), (&b"/p"[..], &b"q"[..]));
        assert_eq!(split_target(b"http://h"), (&b"/"[..], &b""[..]));
        assert_eq!(split_target(b"*"), (&b"*"[..], &b""[..]));
    }

    #[test]
    fn percent_sequences_decode_once() {
        assert_eq!(&*percent_decode(b"/a%20b"), b"/a b");
        assert_eq!(&*percent_decode(b"/%2541"), b"/%41");
        assert_eq!(&*percent_decode(b"/bad%zz%4"), b"/bad%zz%4");
        assert_eq!(&*percent_decode(b"/%e2%82%ac"), "/€".as_bytes());
    }
}
