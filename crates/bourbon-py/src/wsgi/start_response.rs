//! `start_response` and the `write()` callable it returns (PEP 3333 "The start_response()
//! Callable").
//!
//! It owns validating the status and headers the application gives (native strings,
//! latin-1, tokens for names, no CR/LF/NUL, no hop-by-hop headers), the `exc_info` rules
//! (replace a head not yet sent; re-raise once it is sent), and the "headers sent" state shared
//! with the response loop. Headers are sent with the first non-empty chunk, never before.

use std::borrow::Cow;

use bourbon_server::request::{HeaderBlock, HeaderError};
use bytes::Bytes;
use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::input::ClientDisconnected;
use super::message::{Head, Msg, Reply};
use super::spool::Offer;

/// The callable passed to the application.
#[pyclass(module = "bourbon._bourbon", name = "StartResponse")]
pub(crate) struct StartResponse {
    head: Option<Head>,
    sent: bool,
    reply: Reply,
    /// Inline calls (the app runs on the connection thread) must never wait on the response
    /// queue, so `write()` data is held here and goes out when the call returns.
    inline: bool,
    held: Option<(Head, Vec<Bytes>)>,
}

impl StartResponse {
    pub(crate) fn new(reply: Reply, inline: bool) -> Self {
        StartResponse {
            head: None,
            sent: false,
            reply,
            inline,
            held: None,
        }
    }

    /// The head and chunks `write()` produced during an inline call, if any.
    pub(crate) fn take_held(&mut self) -> Option<(Head, Vec<Bytes>)> {
        self.held.take()
    }

    /// Whether `write()` data is being held (inline call).
    pub(crate) fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// Whether the head has gone to the client (or is on its way).
    pub(crate) fn sent(&self) -> bool {
        self.sent
    }

    /// Take the head to send it; afterwards `exc_info` must re-raise.
    pub(crate) fn take_head(&mut self) -> Option<Head> {
        let head = self.head.take();
        if head.is_some() {
            self.sent = true;
        }
        head
    }

    /// Whether `start_response` has been called (and the head not yet taken).
    pub(crate) fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Declare a Content-Length the application did not (a file of known size).
    pub(crate) fn declare_length(&mut self, len: u64) {
        if let Some(head) = self.head.as_mut() {
            if head.content_length.is_none() {
                head.content_length = Some(len);
                let digits = itoa::Buffer::new().format(len).as_bytes().to_vec();
                // A name and digits: always a valid field.
                let _ = head.headers.push(b"Content-Length", &digits);
            }
        }
    }

    /// The declared Content-Length, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.head.as_ref().and_then(|h| h.content_length)
    }
}

/// Send a message, waiting with the GIL released while the response has no room for it
/// (only the legacy `write()` and the end of a response wait; iteration parks instead, see
/// `spool.rs`). False when the client is gone.
pub(crate) fn send(py: Python<'_>, reply: &Reply, mut msg: Msg) -> bool {
    loop {
        match reply.offer(py, msg) {
            Offer::Taken => return true,
            Offer::Gone => return false,
            Offer::Full(back) => {
                let len = match &back {
                    Msg::Data(b) => b.len(),
                    _ => 0,
                };
                let Some(stream) = reply.stream() else {
                    return false;
                };
                stream.wait_room(py, len);
                msg = back;
            }
        }
    }
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, headers, exc_info=None)`, which returns this same object as
    /// the `write()` callable: called with the data alone, it writes. A bound `write` method
    /// made for every request (and thrown away by nearly every application) cost an
    /// attribute lookup and an object; the `write` method stays for whoever asks for it.
    #[pyo3(signature = (status, headers=None, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: Option<&Bound<'py, PyAny>>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(headers) = headers else {
            if status.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(
                    "start_response() needs the response headers (a list of (name, value) tuples)",
                ));
            }
            slf.borrow_mut().write(slf.py(), status)?;
            return Ok(slf.py().None().into_bound(slf.py()));
        };
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut this = slf.borrow_mut();
            if let Some(info) = exc_info {
                if this.sent {
                    // PEP 3333: once headers are sent, start_response with exc_info re-raises.
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if this.head.is_some() || this.sent {
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info",
                ));
            }
            this.head = Some(parse_head(status, headers)?);
        }
        Ok(slf.clone().into_any())
    }

    /// The legacy `write()` callable: sends `data` at once, after the head if needed.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = chunk_bytes(data)?;
        if self.inline {
            if let Some((_, chunks)) = self.held.as_mut() {
                chunks.push(bytes);
                return Ok(());
            }
            if !self.sent {
                let Some(head) = self.take_head() else {
                    return Err(PyAssertionError::new_err(
                        "write() called before start_response()",
                    ));
                };
                self.held = Some((head, vec![bytes]));
                return Ok(());
            }
        }
        let msg = if self.sent {
            if bytes.is_empty() {
                return Ok(());
            }
            Msg::Data(bytes)
        } else {
            match self.take_head() {
                Some(head) => Msg::Head(head, Some(bytes).filter(|b| !b.is_empty())),
                None => {
                    return Err(PyAssertionError::new_err(
                        "write() called before start_response()",
                    ))
                }
            }
        };
        if send(py, &self.reply, msg) {
            Ok(())
        } else {
            Err(ClientDisconnected::new_err("client disconnected"))
        }
    }
}

/// A response chunk must be `bytes` (PEP 3333 "Unicode Issues").
pub(crate) fn chunk_bytes(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    match data.cast::<pyo3::types::PyBytes>() {
        Ok(b) => Ok(super::lent::bytes_of(b)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "WSGI response chunks must be bytes, not {}",
            data.get_type().name()?
        ))),
    }
}

/// A native string holding only latin-1 code points, as bytes: borrowed from the string
/// itself when it is ASCII (the common case), so no copy is made.
fn latin1<'a>(s: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    let s = s
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str")))?;
    let text = s.to_cow()?;
    if text.is_ascii() {
        return Ok(match text {
            Cow::Borrowed(t) => Cow::Borrowed(t.as_bytes()),
            Cow::Owned(t) => Cow::Owned(t.into_bytes()),
        });
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<Vec<u8>, _>>()
        .map(Cow::Owned)
        .map_err(|_| PyValueError::new_err(format!("{what} must be latin-1 text: {text:?}")))
}

/// Hop-by-hop headers belong to the server, not the application (PEP 3333 "Other HTTP
/// Features"; RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &[u8]) -> bool {
    let hop: &[u8] = match name.len() {
        2 => b"te",
        7 if name[0].eq_ignore_ascii_case(&b't') => b"trailer",
        7 => b"upgrade",
        10 if name[0].eq_ignore_ascii_case(&b'c') => b"connection",
        10 => b"keep-alive",
        17 => b"transfer-encoding",
        18 => b"proxy-authenticate",
        19 => b"proxy-authorization",
        _ => return false,
    };
    name.eq_ignore_ascii_case(hop)
}

fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let status = latin1(status, "status")?;
    // "200 OK": three digits, a space, a reason phrase without control characters.
    let ok = status.len() >= 4
        && status[..3].iter().all(u8::is_ascii_digit)
        && status[3] == b' '
        && status[4..]
            .iter()
            .all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f));
    if !ok {
        return Err(PyValueError::new_err(format!(
            "invalid status {:?}: expected e.g. \"200 OK\"",
            String::from_utf8_lossy(&status)
        )));
    }
    let code = u16::from(status[0] - b'0') * 100
        + u16::from(status[1] - b'0') * 10
        + u16::from(status[2] - b'0');
    if code < 200 {
        return Err(PyValueError::new_err(format!(
            "invalid status {code}: a WSGI response must be final (200 or above)"
        )));
    }
    let reason = &status[4..];
    let canonical = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(str::as_bytes);
    let reason = if canonical == Some(reason) {
        None
    } else {
        Some(Bytes::copy_from_slice(reason))
    };

    let Ok(list) = headers.cast::<PyList>() else {
        return Err(PyTypeError::new_err("response headers must be a list"));
    };
    let mut block = HeaderBlock::with_capacity(32 + 48 * list.len());
    let mut content_length = None;
    let mut close = false;
    let mut buffering = None;
    let mut event_stream = false;
    for item in list.iter() {
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err("each response header must be a (name, value) tuple")
        })?;
        if pair.len() != 2 {
            return Err(PyTypeError::new_err(
                "each response header must be a (name, value) tuple",
            ));
        }
        let (name_obj, value_obj) = (pair.get_item(0)?, pair.get_item(1)?);
        let name = latin1(&name_obj, "header name")?;
        let value = latin1(&value_obj, "header value")?;
        if is_hop_by_hop(&name) {
            if name.eq_ignore_ascii_case(b"connection")
                && value.trim_ascii().eq_ignore_ascii_case(b"close")
            {
                close = true;
                continue;
            }
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {:?} is not allowed in a WSGI response (PEP 3333)",
                String::from_utf8_lossy(&name)
            )));
        }
        if name.eq_ignore_ascii_case(b"x-accel-buffering") {
            // nginx's convention for "send this as it is produced" (or, with `yes`, "buffer
            // it after all"); it is for the server, so it is not sent on.
            let v = value.trim_ascii();
            if v.eq_ignore_ascii_case(b"no") {
                buffering = Some(false);
            } else if v.eq_ignore_ascii_case(b"yes") {
                buffering = Some(true);
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            let media = value.split(|&c| c == b';').next().unwrap_or_default();
            event_stream = media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream");
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = std::str::from_utf8(&value).unwrap_or("");
            let n = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|_| text.trim().bytes().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| PyValueError::new_err(format!("invalid Content-Length {text:?}")))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(PyValueError::new_err("conflicting Content-Length headers"));
            }
            if content_length.is_some() {
                continue;
            }
            content_length = Some(n);
        }
        block.push(&name, &value).map_err(|e| match e {
            HeaderError::Name => PyValueError::new_err(format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&name)
            )),
            HeaderError::Value => PyValueError::new_err(format!(
                "header {:?} has a CR, LF or NUL in its value",
                String::from_utf8_lossy(&name)
            )),
        })?;
    }
    Ok(Head {
        status: code,
        reason,
        headers: block,
        content_length,
        close,
        buffering,
        event_stream,
    })
}
