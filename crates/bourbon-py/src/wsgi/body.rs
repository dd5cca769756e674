//! The response body handed to the connection driver for a WSGI response.
//!
//! It owns turning the Python thread's messages into body chunks: bytes, and
//! `wsgi.file_wrapper` regions as file-region chunks the driver sends itself. What every
//! interface needs (the declared Content-Length enforced, the access log, in-flight
//! accounting) is the driver's, not this adapter's.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bourbon_server::body::{Body, BodyAbort, Chunk, FileRegion};
use bytes::Bytes;

use super::call::run_deferred_close;
use super::handler::BodyReader;
use super::handler::Pool;
use super::message::{Closer, FileSlice, Msg};
use super::spool::StreamReader;
use crate::pool::Work;
use pyo3::Python;

pub(crate) enum BodyKind {
    Full(Option<Bytes>),
    Stream {
        rx: StreamReader,
        first: Option<Bytes>,
        file: Option<SentRegion>,
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
    pub(crate) done: bool,
    pub(crate) reader: Option<BodyReader>,
    /// The application's `close()`, left for after the response is written (inline calls).
    pub(crate) close: Option<DeferredClose>,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The body is dropped when it is written out or abandoned: the request is over.
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
    pub(crate) fn new(kind: BodyKind) -> Self {
        ResponseBody {
            kind,
            done: false,
            reader: None,
            close: None,
        }
    }
}

impl Body for ResponseBody {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let next = match &mut this.kind {
            BodyKind::Full(bytes) => match bytes.take() {
                Some(b) => Step::Data(b),
                None => Step::End,
            },
            BodyKind::Stream { rx, first, file } => {
                if let Some(b) = first.take() {
                    Step::Data(b)
                } else {
                    // A region handed out before has been written by now (the driver writes
                    // a chunk before it polls again): a spooled one gives its space back.
                    if let Some(f) = file.take() {
                        f.finished();
                    }
                    match rx.poll_recv(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Msg::Data(b))) => Step::Data(b),
                        Poll::Ready(Some(Msg::File(slice))) => {
                            let region = FileRegion {
                                file: slice.fd.clone(),
                                offset: slice.offset,
                                len: slice.len,
                                transient: slice.spooled,
                            };
                            *file = Some(SentRegion(slice));
                            return Poll::Ready(Some(Ok(Chunk::File(region))));
                        }
                        Poll::Ready(Some(Msg::End)) => Step::End,
                        Poll::Ready(Some(_)) | Poll::Ready(None) => Step::Abort,
                    }
                }
            }
        };
        match next {
            Step::Data(b) => Poll::Ready(Some(Ok(Chunk::Data(b)))),
            Step::End => {
                this.done = true;
                Poll::Ready(None)
            }
            Step::Abort => {
                this.done = true;
                Poll::Ready(Some(Err(BodyAbort("application error mid-response"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || matches!(self.kind, BodyKind::Full(None))
    }

    fn exact_len(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Full(Some(b)) => Some(b.len() as u64),
            BodyKind::Full(None) => Some(0),
            BodyKind::Stream { .. } => None,
        }
    }
}

enum Step {
    Data(Bytes),
    End,
    Abort,
}

/// A file region handed to the driver; once it has been sent, a region of the response's
/// temporary file gives its disk space back.
pub(crate) struct SentRegion(FileSlice);

impl SentRegion {
    fn finished(self) {
        if self.0.spooled {
            super::spool::release(&self.0.fd, self.0.offset, self.0.len);
        }
    }
}
