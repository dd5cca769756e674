//! One WSGI request on a Python thread: call the application, iterate its result, send the
//! response to the connection task, and always call `close()` (PEP 3333 "Specification
//! Details").
//!
//! It owns the order of events the PEP prescribes: headers go out with the first non-empty
//! chunk (so a generator may call `start_response` late); each chunk is sent as it is produced
//! (streaming responses flush per chunk); an exception before the head gives a 500 and the
//! traceback in the error log, after the head it closes the connection; `close()` runs exactly
//! once in every case, including when the client has gone.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};

use super::environ::request_environ;
use super::input::InputStream;
use super::message::{BodySource, Closer, FileSlice, Job, Msg, Reply};
use super::spool::{Offer, Resume};
use super::start_response::{chunk_bytes, send, StartResponse};
use super::streams::FileWrapper;

/// Lists of chunks up to this size are joined into one body with a Content-Length.
const JOIN_LIMIT: usize = 64 * 1024;

/// What the worker's Python threads share.
pub(crate) struct AppContext {
    pub(crate) app: Py<PyAny>,
    pub(crate) base: Py<PyDict>,
    pub(crate) root_path: String,
    /// The `wsgi.input` of every request without a body: always at its end, so one object
    /// serves them all.
    pub(crate) empty_input: Py<InputStream>,
    /// Puts parked iterations back on the pool's queue; set once the pool exists.
    pub(crate) resumer: OnceLock<Resumer>,
}

/// Hands a parked response back to the Python threads (see `spool.rs`).
#[derive(Clone)]
pub(crate) struct Resumer {
    pub(crate) tx: tokio::sync::mpsc::UnboundedSender<crate::pool::Work>,
    pub(crate) busy: crate::pool::Busy,
}

impl Resumer {
    fn resume(&self, handoff: Handoff) {
        self.busy.enter();
        if self.tx.send(crate::pool::Work::Continue(handoff)).is_err() {
            // The pool is gone (the worker is exiting): nothing can iterate it any more.
            self.busy.leave();
        }
    }
}

/// A response whose iteration must continue on a Python thread: the application was called
/// inline (on the connection thread) and returned something that may block while it is
/// iterated (a generator, a custom iterable).
///
/// Also a response whose iteration was parked because its client had not read enough yet
/// (see `spool.rs`): then `pending` is the chunk that did not fit.
pub(crate) struct Handoff {
    result: Py<PyAny>,
    iterator: Option<Py<PyAny>>,
    start_response: Py<StartResponse>,
    reply: Reply,
    path: Bytes,
    pending: Option<Bytes>,
}

/// Handle one request. Never raises: every failure is logged and turned into a response.
///
/// `inline` says the call runs on the connection thread: then nothing here may wait, so a
/// result whose iteration could block is returned as a [`Handoff`] for a Python thread.
pub(crate) fn handle(
    py: Python<'_>,
    ctx: &AppContext,
    mut job: Job,
    inline: bool,
) -> Option<Handoff> {
    let reply = job.reply.clone();
    // The target is kept for error messages only: a shared slice, not a copy.
    let path = job.head.target_bytes();
    let body = std::mem::replace(&mut job.body, BodySource::Buffered(Bytes::new()));
    let input = match body {
        BodySource::Buffered(b) if b.is_empty() => ctx.empty_input.bind(py).clone(),
        body => match Bound::new(py, InputStream::new(body)) {
            Ok(i) => i,
            Err(e) => return fail_before_head(py, &e, &reply, &path),
        },
    };
    let environ = match request_environ(
        py,
        ctx.base.bind(py),
        &job,
        &ctx.root_path,
        input.into_any(),
    ) {
        Ok(e) => e,
        Err(e) => return fail_before_head(py, &e, &reply, &path),
    };
    let start_response = match Bound::new(py, StartResponse::new(reply.clone(), inline)) {
        Ok(s) => s,
        Err(e) => return fail_before_head(py, &e, &reply, &path),
    };
    let call = crate::supervise::call_started(&job.head, inline);
    let called = ctx.app.bind(py).call1((environ, start_response.clone()));
    drop(call);
    let result = match called {
        Ok(r) => r,
        Err(e) => {
            log_exception(py, &e, &request_headline(&path));
            let held = start_response.borrow_mut().take_held();
            let msg = if start_response.borrow().sent() && held.is_none() {
                Msg::Abort
            } else {
                Msg::Error
            };
            let _ = send(py, &reply, msg);
            return None;
        }
    };
    let iterator = if inline {
        match inline_iterator(py, &result, &start_response) {
            Ok(Inline::Now(it)) => it,
            Ok(Inline::Later(it)) => {
                return Some(Handoff {
                    result: result.unbind(),
                    iterator: it.map(Bound::unbind),
                    start_response: start_response.unbind(),
                    reply,
                    path,
                    pending: None,
                })
            }
            Err(e) => {
                finish_with(py, Err(e), &result, &start_response, &reply, &path);
                return None;
            }
        }
    } else {
        None
    };
    let holding = start_response.borrow().is_holding();
    let outcome = match (iterator, holding) {
        (Some(it), true) => drive_held(py, &it, &start_response, &reply).map(|()| None),
        (it, _) => drive(py, &result, it, None, &start_response, &reply),
    };
    let outcome = match outcome {
        Ok(Some((chunk, it))) => {
            park(
                ctx,
                Handoff {
                    result: result.unbind(),
                    iterator: Some(it.into_any().unbind()),
                    start_response: start_response.unbind(),
                    reply,
                    path,
                    pending: Some(chunk),
                },
            );
            return None;
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if inline && outcome.is_ok() && has_close(py, &result) {
        // The response is complete and queued for the connection. Its `close()` (for Django,
        // the request_finished signal and its database clean-up) runs after the bytes are
        // written, as a blocking server would do it, so the client's next request overlaps
        // with it instead of waiting for it (PEP 3333 only asks that close() be called).
        reply.defer_close(Closer {
            result: result.unbind(),
            target: path,
        });
        return None;
    }
    finish_with(py, outcome, &result, &start_response, &reply, &path);
    None
}

/// Whether `result` has a `close()` to call (never asked of lists and tuples).
fn has_close(py: Python<'_>, result: &Bound<'_, PyAny>) -> bool {
    !(result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>())
        && matches!(result.getattr_opt(intern!(py, "close")), Ok(Some(_)))
}

/// Call a deferred `close()` and log what it raises (the response is already sent).
pub(crate) fn run_deferred_close(py: Python<'_>, closer: Closer) {
    let result = closer.result.into_bound(py);
    if let Err(e) = call_close(py, &result) {
        log_exception(py, &e, &request_headline(&closer.target));
    }
}

/// Continue a handed-off (or parked) response on a Python thread.
pub(crate) fn continue_handoff(py: Python<'_>, ctx: &AppContext, h: Handoff) {
    let result = h.result.into_bound(py);
    let sr = h.start_response.into_bound(py);
    let iterator = h.iterator.map(|i| i.into_bound(py));
    let outcome = flush_held(py, &sr, &h.reply)
        .and_then(|()| drive(py, &result, iterator, h.pending, &sr, &h.reply));
    match outcome {
        Ok(Some((chunk, it))) => park(
            ctx,
            Handoff {
                result: result.unbind(),
                iterator: Some(it.into_any().unbind()),
                start_response: sr.unbind(),
                reply: h.reply,
                path: h.path,
                pending: Some(chunk),
            },
        ),
        Ok(None) => finish_with(py, Ok(()), &result, &sr, &h.reply, &h.path),
        Err(e) => finish_with(py, Err(e), &result, &sr, &h.reply, &h.path),
    }
}

/// Leave a response whose client has not made room for its next chunk with its stream, to
/// be resumed on the pool when there is room; the calling thread is free meanwhile.
fn park(ctx: &AppContext, h: Handoff) {
    let len = h.pending.as_ref().map_or(0, Bytes::len);
    let (Some(stream), Some(resumer)) = (h.reply.stream().cloned(), ctx.resumer.get().cloned())
    else {
        // Unreachable (a chunk only waits on a stream, and the pool exists): the response
        // is dropped, which cuts it off.
        return;
    };
    let resume: Resume = Box::new(move || resumer.resume(h));
    if let Err(resume) = stream.park(len, resume) {
        // Room was made meanwhile: back on the queue at once.
        resume();
    }
}

/// Where an inline call's result is iterated.
enum Inline<'py> {
    /// Now, on the connection thread: iterating cannot block (a list, a tuple, a list or
    /// tuple iterator). Carries the iterator when one was made.
    Now(Option<Bound<'py, PyAny>>),
    /// On a Python thread.
    Later(Option<Bound<'py, PyAny>>),
}

fn inline_iterator<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
    sr: &Bound<'py, StartResponse>,
) -> PyResult<Inline<'py>> {
    let holding = sr.borrow().is_holding();
    if result.cast::<PyList>().is_ok() || result.cast::<PyTuple>().is_ok() {
        return Ok(if holding {
            Inline::Now(Some(result.try_iter()?.into_any()))
        } else {
            Inline::Now(None)
        });
    }
    if result.cast::<FileWrapper>().is_ok() {
        // Its file-like object may be a pipe or a socket whose reads block; a Python thread
        // decides between the zero-copy path and plain iteration.
        return Ok(Inline::Later(None));
    }
    // Django's HttpResponse iterates its content list: a list iterator never blocks.
    let it = result.try_iter()?.into_any();
    if is_sized_iterator(py, &it) {
        Ok(Inline::Now(Some(it)))
    } else {
        Ok(Inline::Later(Some(it)))
    }
}

/// Send what an inline call's `write()` held, now that waiting is allowed.
fn flush_held(py: Python<'_>, sr: &Bound<'_, StartResponse>, reply: &Reply) -> PyResult<()> {
    let held = sr.borrow_mut().take_held();
    if let Some((head, chunks)) = held {
        if !send(py, reply, Msg::Head(head, None)) {
            return Ok(());
        }
        let Some(stream) = reply.stream() else {
            return Ok(());
        };
        // Already produced, so already in memory: queued whatever the budget.
        for c in chunks.into_iter().filter(|c| !c.is_empty()) {
            if !stream.force(c) {
                break;
            }
        }
    }
    Ok(())
}

/// Inline, after `write()`: the held chunks and the (non-blocking) rest go out as one body.
fn drive_held(
    py: Python<'_>,
    it: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
    reply: &Reply,
) -> PyResult<()> {
    let Some((head, mut chunks)) = sr.borrow_mut().take_held() else {
        return Ok(());
    };
    for item in it.try_iter()? {
        chunks.push(chunk_bytes(&item?)?);
    }
    let total = chunks.iter().map(Bytes::len).sum();
    let mut body = BytesMut::with_capacity(total);
    for c in chunks {
        body.extend_from_slice(&c);
    }
    let _ = send(py, reply, Msg::Full(head, body.freeze()));
    Ok(())
}

/// Call close() (PEP 3333: whatever happened) and turn a failure into a 500 or a close.
fn finish_with(
    py: Python<'_>,
    outcome: PyResult<()>,
    result: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
    reply: &Reply,
    path: &[u8],
) {
    if let Err(e) = call_close(py, result) {
        log_exception(py, &e, &request_headline(path));
    }
    if let Err(e) = outcome {
        log_exception(py, &e, &request_headline(path));
        let held = sr.borrow_mut().take_held();
        let msg = if sr.borrow().sent() && held.is_none() {
            Msg::Abort
        } else {
            Msg::Error
        };
        let _ = send(py, reply, msg);
    }
}

fn fail_before_head(py: Python<'_>, e: &PyErr, reply: &Reply, path: &[u8]) -> Option<Handoff> {
    log_exception(py, e, &request_headline(path));
    let _ = send(py, reply, Msg::Error);
    None
}

fn request_headline(target: &[u8]) -> String {
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    format!("Error handling request {}", String::from_utf8_lossy(path))
}

fn call_close(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    // Lists and tuples have no close(); asking would cost an AttributeError per request.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = result.getattr_opt(intern!(py, "close"))? {
        close.call0()?;
    }
    Ok(())
}

/// Whether `it` is a list or tuple iterator, whose remaining length is known exactly.
fn is_sized_iterator(py: Python<'_>, it: &Bound<'_, PyAny>) -> bool {
    static TYPES: PyOnceLock<(Py<PyType>, Py<PyType>)> = PyOnceLock::new();
    let Ok(types) = TYPES.get_or_try_init(py, || -> PyResult<_> {
        let l = PyList::empty(py).try_iter()?.get_type().unbind();
        let t = PyTuple::empty(py).try_iter()?.get_type().unbind();
        Ok((l, t))
    }) else {
        return false;
    };
    let ty = it.get_type();
    ty.is(types.0.bind(py)) || ty.is(types.1.bind(py))
}

fn remaining_hint(py: Python<'_>, it: &Bound<'_, PyAny>) -> Option<usize> {
    it.call_method0(intern!(py, "__length_hint__"))
        .ok()?
        .extract::<usize>()
        .ok()
}

/// Send the head with `first`; `last` says the body is complete with it.
fn send_first(
    py: Python<'_>,
    sr: &Bound<'_, StartResponse>,
    reply: &Reply,
    first: Bytes,
    last: bool,
) -> PyResult<bool> {
    let Some(head) = sr.borrow_mut().take_head() else {
        return Err(pyo3::exceptions::PyAssertionError::new_err(
            "the application produced a body before calling start_response()",
        ));
    };
    let msg = if last {
        Msg::Full(head, first)
    } else {
        Msg::Head(head, Some(first).filter(|b| !b.is_empty()))
    };
    Ok(send(py, reply, msg))
}

/// A chunk that found no room, and the iterator to resume after it.
type Parked<'py> = (Bytes, Bound<'py, pyo3::types::PyIterator>);

/// Iterate the result and send the response, starting with `pending` (a chunk left over when
/// the iteration was parked). Ok(None) when done, also when the client went away;
/// Ok(Some(..)) when the client has not made room for the next chunk yet: the caller parks
/// the iteration (see `spool.rs`).
fn drive<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
    iterator: Option<Bound<'py, PyAny>>,
    pending: Option<Bytes>,
    sr: &Bound<'py, StartResponse>,
    reply: &Reply,
) -> PyResult<Option<Parked<'py>>> {
    if pending.is_none() && drive_whole(py, result, sr, reply)? {
        return Ok(None);
    }
    let mut it = match iterator {
        Some(it) => it.try_iter()?,
        None => result.try_iter()?,
    };
    // A list or tuple is in memory already: its chunks are queued whatever the budget, and
    // never park (this may be an inline call, which must not leave its thread's work).
    let sized = is_sized_iterator(py, it.as_any());
    let mut next = pending;
    loop {
        let chunk = match next.take() {
            Some(c) => c,
            None => match it.next() {
                None => break,
                Some(item) => chunk_bytes(&item?)?,
            },
        };
        if chunk.is_empty() {
            continue;
        }
        if !sr.borrow().sent() {
            let last = sized && remaining_hint(py, it.as_any()) == Some(0);
            let ok = send_first(py, sr, reply, chunk, last)?;
            if last || !ok {
                return Ok(None);
            }
            continue;
        }
        let offered = if sized {
            match reply.stream() {
                Some(stream) if stream.force(chunk) => Offer::Taken,
                _ => Offer::Gone,
            }
        } else {
            reply.offer(py, Msg::Data(chunk))
        };
        match offered {
            Offer::Taken => {}
            // The client is gone: stop producing; close() is still called by the caller.
            Offer::Gone => return Ok(None),
            Offer::Full(Msg::Data(chunk)) => return Ok(Some((chunk, it))),
            Offer::Full(_) => return Ok(None),
        }
    }
    if sr.borrow().sent() {
        let _ = send(py, reply, Msg::End);
    } else {
        send_first(py, sr, reply, Bytes::new(), true)?;
    }
    Ok(None)
}

/// The responses sent whole, without iterating: a regular file (`wsgi.file_wrapper`), and a
/// list or tuple of few or small chunks (joined into one body with a Content-Length).
/// True when sent (or the client is gone), false when the result must be iterated.
fn drive_whole(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
    reply: &Reply,
) -> PyResult<bool> {
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some(slice) = file_slice(py, &wrapper.borrow().filelike.bind(py).clone(), sr)? {
            if !sr.borrow().sent() && !sr.borrow().has_head() {
                return Err(pyo3::exceptions::PyAssertionError::new_err(
                    "start_response() was not called",
                ));
            }
            sr.borrow_mut().declare_length(slice.len);
            if !sr.borrow().sent() && !send_first(py, sr, reply, Bytes::new(), false)? {
                return Ok(true);
            }
            if send(py, reply, Msg::File(slice)) {
                let _ = send(py, reply, Msg::End);
            }
            return Ok(true);
        }
    }
    // A list or tuple: every chunk is known now, so small bodies go out whole with a
    // Content-Length.
    if let Ok(list) = result.cast::<PyList>() {
        if !sr.borrow().sent() {
            let mut total = 0usize;
            let mut all_bytes = true;
            for item in list.iter() {
                match item.cast::<PyBytes>() {
                    Ok(b) => total += b.as_bytes().len(),
                    Err(_) => all_bytes = false,
                }
            }
            if all_bytes && (total <= JOIN_LIMIT || list.len() == 1) {
                let body = if list.len() == 1 {
                    chunk_bytes(&list.get_item(0)?)?
                } else {
                    let mut buf = BytesMut::with_capacity(total);
                    for item in list.iter() {
                        buf.extend_from_slice(item.cast::<PyBytes>()?.as_bytes());
                    }
                    buf.freeze()
                };
                send_first(py, sr, reply, body, true)?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The fast path for `wsgi.file_wrapper`: a regular file with a descriptor is sent by Rust
/// from its current position. Anything else (no fileno, a pipe, a BytesIO) returns None and
/// is iterated in Python like any other iterable.
#[allow(unsafe_code)]
fn file_slice(
    py: Python<'_>,
    filelike: &Bound<'_, PyAny>,
    sr: &Bound<'_, StartResponse>,
) -> PyResult<Option<FileSlice>> {
    let Ok(fileno) = filelike.call_method0(intern!(py, "fileno")) else {
        return Ok(None);
    };
    let Ok(fd) = fileno.extract::<i32>() else {
        return Ok(None);
    };
    // The logical position of a buffered Python file may differ from the descriptor's.
    let offset: u64 = match filelike.call_method0(intern!(py, "tell")) {
        Ok(pos) => pos.extract().unwrap_or(0),
        Err(_) => 0,
    };
    // SAFETY: `fd` is the descriptor of a file object that stays open for this borrow
    // (the application has not closed it; we hold a reference to the object).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut st: libc::stat = unsafe_zeroed_stat();
    // SAFETY: fstat writes into `st`, which we own; an invalid fd returns -1.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Ok(None);
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let mut len = size.saturating_sub(offset);
    if let Some(cl) = sr.borrow().content_length() {
        len = len.min(cl);
    }
    // Our own descriptor: the application closes its file object as soon as we return.
    let owned: OwnedFd = borrowed.try_clone_to_owned()?;
    Ok(Some(FileSlice {
        fd: Arc::new(std::fs::File::from(owned)),
        offset,
        len,
        spooled: false,
    }))
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: `stat` is a plain C struct for which all-zero bytes is a valid value.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

/// Write an exception and its traceback to the error log, under a one-line `headline`.
pub(crate) fn log_exception(py: Python<'_>, e: &PyErr, headline: &str) {
    static FORMAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let formatted = FORMAT
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("traceback")?
                .getattr("format_exception")?
                .unbind())
        })
        .and_then(|f| {
            let lines = f
                .bind(py)
                .call1((e.get_type(py), e.value(py), e.traceback(py)))?;
            let joined: String = join_lines(py, &lines)?;
            Ok(joined)
        });
    // The headline and its traceback in one write (one JSON object with --log-format json).
    match formatted {
        Ok(text) => bourbon_server::log::exception(headline, &text),
        Err(_) => bourbon_server::log::exception(headline, &format!("{e}\n")),
    }
}

fn join_lines(py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<String> {
    let empty = pyo3::types::PyString::new(py, "");
    empty.call_method1(intern!(py, "join"), (lines,))?.extract()
}
