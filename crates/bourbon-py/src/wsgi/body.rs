//! The response body handed to the connection driver for a WSGI response.
//!
//! It owns turning the Python thread's messages into body frames: it enforces the declared
//! Content-Length (a longer body is cut, a shorter one closes the connection; both are
//! logged), streams `wsgi.file_wrapper` regions (sendfile placeholders, or positioned reads),
//! keeps the request "in flight" for the keep-alive clock until it is dropped, and writes the
//! access-log line when the response is over.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bourbon_server::access_log::{AccessLog, Entry};
use bourbon_server::io::ConnShared;
use bourbon_server::log;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use super::call::run_deferred_close;
use super::handler::BodyReader;
use super::handler::Pool;
use super::message::{Closer, FileSlice, Msg};
use super::spool::StreamReader;
use crate::pool::Work;
use pyo3::Python;

/// Size of one read from a file sent through `wsgi.file_wrapper` without sendfile.
const FILE_CHUNK: usize = 256 * 1024;

/// What the access log needs about a request, captured only when the log is on.
pub(crate) struct AccessRecord {
    pub(crate) log: Arc<AccessLog>,
    pub(crate) remote: String,
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: &'static str,
    pub(crate) request_headers: http::HeaderMap,
    pub(crate) response_headers: Option<http::HeaderMap>,
    pub(crate) status: u16,
    pub(crate) started: std::time::SystemTime,
    pub(crate) clock: std::time::Instant,
}

impl AccessRecord {
    fn write(&self, sent: u64) {
        self.log.write(&Entry {
            remote: &self.remote,
            method: &self.method,
            target: &self.target,
            version: self.version,
            status: self.status,
            response_bytes: Some(sent),
            request_headers: &self.request_headers,
            response_headers: self.response_headers.as_ref(),
            started: self.started,
            duration: self.clock.elapsed(),
        });
    }
}

/// Marks a request as in flight on its connection until the response body is dropped
/// (written out or abandoned), which is when the keep-alive clock may start.
pub(crate) struct InflightToken(pub(crate) Rc<ConnShared>);

impl InflightToken {
    pub(crate) fn new(shared: &Rc<ConnShared>) -> Self {
        shared.request_started();
        InflightToken(shared.clone())
    }
}

impl Drop for InflightToken {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Ends a response body early: the driver closes the connection, so the client sees a truncated
/// response rather than a silently wrong one.
#[derive(Debug)]
pub(crate) struct BodyAbort(&'static str);

impl std::fmt::Display for BodyAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyAbort {}

pub(crate) enum BodyKind {
    Full(Option<Bytes>),
    Stream {
        rx: StreamReader,
        first: Option<Bytes>,
        file: Option<FileStream>,
    },
}

impl BodyKind {
    /// A body that follows the Python thread's messages, starting with `first`.
    pub(crate) fn stream(rx: StreamReader, first: Option<Bytes>) -> Self {
        BodyKind::Stream {
            rx,
            first,
            file: None,
        }
    }
}

/// The response body handed to the connection driver.
pub(crate) struct ResponseBody {
    pub(crate) kind: BodyKind,
    /// Set when file regions may go out with sendfile(2) on this connection; unset for HEAD
    /// and for statuses without a body, whose bodies the driver never writes.
    pub(crate) sendfile: Option<Rc<ConnShared>>,
    /// Bytes still owed under the declared Content-Length, if one was declared.
    pub(crate) owed: Option<u64>,
    pub(crate) truncated: bool,
    pub(crate) done: bool,
    /// Bytes handed to the driver, for the access log.
    pub(crate) sent: u64,
    pub(crate) access: Option<Box<AccessRecord>>,
    pub(crate) reader: Option<BodyReader>,
    /// The application's `close()`, left for after the response is written (inline calls).
    pub(crate) close: Option<DeferredClose>,
    pub(crate) _token: InflightToken,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The body is dropped when it is written out or abandoned: the request is over.
        if let Some(record) = self.access.take() {
            record.write(self.sent);
        }
        if let Some(close) = self.close.take() {
            close.run();
        }
    }
}

/// A `close()` to call once the response is written: here, on the connection thread, when
/// no Python thread is busy (so taking the GIL does not wait), else on a Python thread.
pub(crate) struct DeferredClose {
    pub(crate) closer: Closer,
    pub(crate) pool: Rc<Pool>,
}

impl DeferredClose {
    fn run(self) {
        let DeferredClose { closer, pool } = self;
        if !pool.busy.idle() {
            pool.busy.enter();
            match pool.work.try_send(Work::Close(closer)) {
                Ok(()) => return,
                Err(e) => {
                    pool.busy.leave();
                    let closer = match e.into_inner() {
                        Work::Close(c) => c,
                        _ => return,
                    };
                    Python::attach(|py| run_deferred_close(py, closer));
                    return;
                }
            }
        }
        Python::attach(|py| run_deferred_close(py, closer));
    }
}

impl ResponseBody {
    pub(crate) fn new(kind: BodyKind, declared: Option<u64>, token: InflightToken) -> Self {
        ResponseBody {
            kind,
            sendfile: None,
            owed: declared,
            truncated: false,
            done: false,
            sent: 0,
            access: None,
            reader: None,
            close: None,
            _token: token,
        }
    }

    /// Apply the declared length: a longer body is cut (PEP 3333 lets the server truncate; the
    /// framing stays right, so keep-alive survives), and the cut is logged once.
    fn limit(&mut self, mut data: Bytes) -> Option<Bytes> {
        if let Some(owed) = self.owed.as_mut() {
            let len = data.len() as u64;
            if len > *owed {
                if !self.truncated {
                    self.truncated = true;
                    log::warn(format_args!(
                        "response body longer than its Content-Length; extra bytes dropped"
                    ));
                }
                data.truncate(usize::try_from(*owed).unwrap_or(usize::MAX));
            }
            *owed -= data.len() as u64;
        }
        if data.is_empty() {
            None
        } else {
            Some(data)
        }
    }

    /// The body ended: if it is shorter than declared the connection must close (RFC 9112
    /// §6.3: the client would otherwise wait for bytes that never come).
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        self.done = true;
        match self.owed {
            Some(n) if n > 0 => {
                log::warn(format_args!(
                    "response body shorter than its Content-Length by {n} bytes; closing the connection"
                ));
                Poll::Ready(Some(Err(BodyAbort("body shorter than Content-Length"))))
            }
            _ => Poll::Ready(None),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyAbort;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let next = match &mut this.kind {
                BodyKind::Full(bytes) => match bytes.take() {
                    Some(b) => Step::Data(b),
                    None => Step::End,
                },
                BodyKind::Stream { rx, first, file } => {
                    if let Some(b) = first.take() {
                        Step::Data(b)
                    } else if let Some(f) = file {
                        match f.poll_chunk(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(Some(b))) => Step::Data(b),
                            Poll::Ready(Ok(None)) => {
                                // Every frame of it has been written by now (the driver
                                // writes a file frame before it polls again).
                                if let Some(f) = file.take() {
                                    f.finished();
                                }
                                continue;
                            }
                            Poll::Ready(Err(e)) => {
                                log::error(format_args!("file_wrapper read failed: {e}"));
                                Step::Abort
                            }
                        }
                    } else {
                        match rx.poll_recv(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Some(Msg::Data(b))) => Step::Data(b),
                            Poll::Ready(Some(Msg::File(mut slice))) => {
                                if let Some(owed) = this.owed {
                                    slice.len = slice.len.min(owed);
                                }
                                if slice.len > 0 {
                                    *file = Some(FileStream::new(slice, this.sendfile.as_ref()));
                                }
                                continue;
                            }
                            Poll::Ready(Some(Msg::End)) => Step::End,
                            Poll::Ready(Some(_)) | Poll::Ready(None) => Step::Abort,
                        }
                    }
                }
            };
            match next {
                Step::Data(b) => {
                    if let Some(b) = this.limit(b) {
                        this.sent += b.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                    if this.owed == Some(0) && matches!(this.kind, BodyKind::Full(_)) {
                        return this.finish();
                    }
                }
                Step::End => return this.finish(),
                Step::Abort => {
                    this.done = true;
                    return Poll::Ready(Some(Err(BodyAbort("application error mid-response"))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A body still owing bytes is not at its end: the driver must poll once more so that
        // `finish` sees the shortfall, logs it and closes the connection.
        self.done || (matches!(self.kind, BodyKind::Full(None)) && self.owed.unwrap_or(0) == 0)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.kind, self.owed) {
            (_, Some(n)) => SizeHint::with_exact(n),
            (BodyKind::Full(Some(b)), None) => SizeHint::with_exact(b.len() as u64),
            (BodyKind::Full(None), None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

enum Step {
    Data(Bytes),
    End,
    Abort,
}

/// Sends a file region. On a plain socket the region is queued on the connection and the body
/// yields placeholder bytes that the connection turns into sendfile(2) calls (or a buffered
/// copy for a client on this machine), and memory stays flat however large the file.
/// Elsewhere it falls back to positioned reads on the blocking pool, one bounded chunk at a
/// time, never blocking the runtime thread.
pub(crate) struct FileStream {
    fd: Arc<std::fs::File>,
    /// Where the region starts, and its length.
    start: u64,
    len: u64,
    offset: u64,
    remaining: u64,
    zero_copy: bool,
    /// A region of the response's temporary file: its space is released once sent.
    spooled: bool,
    inflight: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileStream {
    fn new(slice: FileSlice, sendfile: Option<&Rc<ConnShared>>) -> Self {
        let fd = slice.fd;
        if let Some(shared) = sendfile {
            shared.queue_file(fd.clone(), slice.offset, slice.len);
        }
        FileStream {
            fd,
            start: slice.offset,
            len: slice.len,
            offset: slice.offset,
            remaining: slice.len,
            zero_copy: sendfile.is_some(),
            spooled: slice.spooled,
            inflight: None,
        }
    }

    /// The region has been sent: a spooled one gives its disk space back.
    fn finished(self) {
        if self.spooled {
            super::spool::release(&self.fd, self.start, self.len);
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.zero_copy {
            if self.remaining == 0 {
                return Poll::Ready(Ok(None));
            }
            let n = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(bourbon_server::io::PLACEHOLDER_LEN);
            self.remaining -= n as u64;
            return Poll::Ready(Ok(Some(bourbon_server::io::file_placeholder(n))));
        }
        loop {
            if let Some(handle) = self.inflight.as_mut() {
                let res = match Pin::new(handle).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(r)) => r,
                    Poll::Ready(Err(e)) => Err(io::Error::other(e)),
                };
                self.inflight = None;
                let bytes = res?;
                if bytes.is_empty() {
                    // The file shrank under us: what was promised cannot be sent.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than expected",
                    )));
                }
                self.offset += bytes.len() as u64;
                self.remaining -= (bytes.len() as u64).min(self.remaining);
                return Poll::Ready(Ok(Some(bytes)));
            }
            if self.remaining == 0 {
                return Poll::Ready(Ok(None));
            }
            let fd = self.fd.clone();
            let offset = self.offset;
            let want = usize::try_from(self.remaining.min(FILE_CHUNK as u64)).unwrap_or(FILE_CHUNK);
            self.inflight = Some(tokio::task::spawn_blocking(move || {
                pread(&fd, offset, want)
            }));
        }
    }
}

fn pread(fd: &std::fs::File, offset: u64, want: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; want];
    let n = fd.read_at(&mut buf, offset)?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}
