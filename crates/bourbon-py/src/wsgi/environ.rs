//! Building the WSGI `environ` dict (PEP 3333 "environ Variables").
//!
//! It owns the base environ (the keys that never change in a worker, built once and copied per
//! request) and the per-request keys: CGI variables from the request line, the Host header and
//! the socket; `HTTP_*` from the headers with repeats joined; `wsgi.input`. Keys are interned
//! Python strings. Nothing from `os.environ` is ever copied in.

use http::{HeaderMap, HeaderName, Method, Uri, Version};
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
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if s.is_ascii() {
            return PyString::new(py, s);
        }
    }
    let s: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &s)
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

fn method_str<'py>(py: Python<'py>, m: &Method) -> Bound<'py, PyString> {
    match *m {
        Method::GET => intern!(py, "GET").clone(),
        Method::POST => intern!(py, "POST").clone(),
        Method::HEAD => intern!(py, "HEAD").clone(),
        Method::PUT => intern!(py, "PUT").clone(),
        Method::DELETE => intern!(py, "DELETE").clone(),
        Method::OPTIONS => intern!(py, "OPTIONS").clone(),
        Method::PATCH => intern!(py, "PATCH").clone(),
        _ => PyString::new(py, m.as_str()),
    }
}

/// The environ key for a request header, or None for headers WSGI drops: names containing
/// `_` are dropped, as gunicorn does by default, because `X-Foo_Bar` and `X-Foo-Bar` would
/// both become `HTTP_X_FOO_BAR` and a client could spoof a header a proxy set.
fn header_key<'py>(py: Python<'py>, name: &HeaderName) -> Option<Bound<'py, PyString>> {
    use http::header as h;
    let key = if *name == h::HOST {
        intern!(py, "HTTP_HOST")
    } else if *name == h::USER_AGENT {
        intern!(py, "HTTP_USER_AGENT")
    } else if *name == h::ACCEPT {
        intern!(py, "HTTP_ACCEPT")
    } else if *name == h::ACCEPT_ENCODING {
        intern!(py, "HTTP_ACCEPT_ENCODING")
    } else if *name == h::ACCEPT_LANGUAGE {
        intern!(py, "HTTP_ACCEPT_LANGUAGE")
    } else if *name == h::CONNECTION {
        intern!(py, "HTTP_CONNECTION")
    } else if *name == h::COOKIE {
        intern!(py, "HTTP_COOKIE")
    } else if *name == h::REFERER {
        intern!(py, "HTTP_REFERER")
    } else if *name == h::CACHE_CONTROL {
        intern!(py, "HTTP_CACHE_CONTROL")
    } else if *name == h::ORIGIN {
        intern!(py, "HTTP_ORIGIN")
    } else if *name == h::AUTHORIZATION {
        intern!(py, "HTTP_AUTHORIZATION")
    } else if *name == h::IF_NONE_MATCH {
        intern!(py, "HTTP_IF_NONE_MATCH")
    } else if *name == h::IF_MODIFIED_SINCE {
        intern!(py, "HTTP_IF_MODIFIED_SINCE")
    } else if *name == h::CONTENT_TYPE {
        intern!(py, "CONTENT_TYPE")
    } else if *name == h::CONTENT_LENGTH {
        intern!(py, "CONTENT_LENGTH")
    } else {
        let n = name.as_str();
        if n.contains('_') {
            return None;
        }
        let mut key = String::with_capacity(5 + n.len());
        key.push_str("HTTP_");
        for c in n.chars() {
            key.push(if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            });
        }
        return Some(PyString::new(py, &key));
    };
    Some(key.clone())
}

/// SERVER_NAME and SERVER_PORT from the Host header, else from the listener.
fn server_name_port(headers: &HeaderMap, local: &Local) -> (String, String) {
    if let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        let host = host.trim();
        if let Some(rest) = host.strip_prefix('[') {
            // An IPv6 literal: "[::1]:8000".
            if let Some((addr, tail)) = rest.split_once(']') {
                let port = tail
                    .strip_prefix(':')
                    .filter(|p| !p.is_empty())
                    .unwrap_or("80");
                return (format!("[{addr}]"), port.to_owned());
            }
        } else if let Some((name, port)) = host.rsplit_once(':') {
            return (name.to_owned(), port.to_owned());
        } else if !host.is_empty() {
            return (host.to_owned(), "80".to_owned());
        }
    }
    match local {
        Local::Tcp(addr) => (addr.ip().to_string(), addr.port().to_string()),
        Local::Unix(path) => (path.to_string(), String::new()),
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
    let env = base.copy()?;
    env.set_item(intern!(py, "REQUEST_METHOD"), method_str(py, &job.method))?;
    env.set_item(
        intern!(py, "SERVER_PROTOCOL"),
        match job.version {
            Version::HTTP_10 => intern!(py, "HTTP/1.0"),
            _ => intern!(py, "HTTP/1.1"),
        },
    )?;
    set_uri_keys(py, &env, &job.uri, root_path)?;

    let (server_name, server_port) = server_name_port(&job.headers, &job.local);
    env.set_item(intern!(py, "SERVER_NAME"), server_name)?;
    env.set_item(intern!(py, "SERVER_PORT"), server_port)?;
    env.set_item(intern!(py, "REMOTE_ADDR"), &*job.remote.ip)?;
    env.set_item(intern!(py, "REMOTE_PORT"), &*job.remote.port)?;
    env.set_item(intern!(py, "wsgi.input"), input)?;

    for name in job.headers.keys() {
        let Some(key) = header_key(py, name) else {
            continue;
        };
        let mut values = job.headers.get_all(name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        match values.next() {
            None => env.set_item(key, latin1_str_value(py, first.as_bytes()))?,
            Some(second) => {
                // Repeated fields are joined as one list (RFC 9110 §5.3); cookies with "; "
                // because that is the Cookie header's own separator (RFC 6265 §5.4).
                let sep: &[u8] = if name == http::header::COOKIE {
                    b"; "
                } else {
                    b", "
                };
                let mut joined = first.as_bytes().to_vec();
                for v in std::iter::once(second).chain(values) {
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(v.as_bytes());
                }
                env.set_item(key, latin1_str(py, &joined))?;
            }
        }
    }
    Ok(env)
}

fn latin1_str_value<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    latin1_str(py, b)
}

fn set_uri_keys(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    uri: &Uri,
    root_path: &str,
) -> PyResult<()> {
    let raw_uri = if uri.scheme().is_some() {
        uri.to_string()
    } else {
        uri.path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
    };
    env.set_item(intern!(py, "RAW_URI"), latin1_str(py, raw_uri.as_bytes()))?;
    env.set_item(
        intern!(py, "QUERY_STRING"),
        latin1_str(py, uri.query().unwrap_or("").as_bytes()),
    )?;
    let decoded = percent_decode(uri.path().as_bytes());
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
mod tests {
    use super::percent_decode;

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
