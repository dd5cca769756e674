//! What crosses between a Python thread and the connection's task for one request.
//!
//! This module owns the request job (everything the Python side needs, owned and `Send`) and the
//! response messages (head, chunks, file, end, abort). The request body comes through a bounded
//! channel; a streamed response through its [`Stream`](super::spool::Stream), whose memory is
//! bounded and whose overflow waits in a temporary file (see `spool.rs`), so a slow client or a
//! fast app can never grow memory without limit.

use std::sync::Arc;

use bourbon_server::request::HeaderBlock;
use bourbon_server::request::RequestHead;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, Notify};

use super::spool::{Offer, Stream, StreamReader};

/// How many request-body chunks the reader may fetch ahead of the application.
pub(crate) const BODY_QUEUE: usize = 4;

/// A request, handed from the connection task to a Python thread.
pub(crate) struct Job {
    pub(crate) head: RequestHead,
    pub(crate) remote: std::sync::Arc<bourbon_server::serve::Remote>,
    pub(crate) local: Local,
    /// `wsgi.url_scheme`.
    pub(crate) scheme: bourbon_server::serve::Scheme,
    pub(crate) body: BodySource,
    pub(crate) reply: Reply,
}

/// The listener a request came in on, for SERVER_NAME/SERVER_PORT fallbacks.
pub(crate) use bourbon_server::serve::Local;

/// Where `wsgi.input` reads from.
pub(crate) enum BodySource {
    /// The whole body, already read by Rust (small bodies, or none).
    Buffered(Bytes),
    /// A prefix already read (`first`), then chunks fetched on demand. The reader task waits
    /// on `demand` before its first fetch, so `Expect: 100-continue` is answered only when the
    /// application actually reads (RFC 9110 §10.1.1).
    Streaming {
        first: Vec<Bytes>,
        demand: Arc<Demand>,
        chunks: mpsc::Receiver<Result<Bytes, BodyError>>,
    },
}

/// The application's first read of a streamed body: it starts the reader task, and tells
/// the connection whether the body was ever wanted.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    notify: Notify,
    asked: AtomicBool,
}

impl Demand {
    /// Ask for the body (idempotent).
    pub(crate) fn ask(&self) {
        if !self.asked.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Whether the body was asked for.
    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    /// Wait until the body is asked for.
    pub(crate) async fn wait(&self) {
        if !self.asked() {
            self.notify.notified().await;
        }
    }
}

/// Why a request body could not be read to its end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodyError {
    /// The client closed or stalled, or broke the framing.
    Broken,
    /// The guard rejected the rest of the body (bad chunking, over the size limit).
    Rejected(u16),
}

/// A response head as validated by `start_response`.
pub(crate) struct Head {
    pub(crate) status: u16,
    /// The reason phrase when it differs from the standard one.
    pub(crate) reason: Option<Bytes>,
    /// The fields, validated and encoded.
    pub(crate) headers: HeaderBlock,
    /// The Content-Length the application declared, if any.
    pub(crate) content_length: Option<u64>,
    /// The application asked for `Connection: close`.
    pub(crate) close: bool,
    /// What the application's `X-Accel-Buffering` said (nginx's convention; the field is
    /// not sent on): `Some(false)` for `no`, `Some(true)` for `yes`.
    pub(crate) buffering: Option<bool>,
    /// The body is a server-sent event stream (`Content-Type: text/event-stream`).
    pub(crate) event_stream: bool,
}

impl Head {
    /// Whether body bytes may wait for a slow client (see `spool.rs`): not for event streams
    /// and long polls, which must reach the client as they are produced, unless the
    /// application says otherwise.
    pub(crate) fn buffered(&self) -> bool {
        self.buffering.unwrap_or(!self.event_stream)
    }
}

/// A file region to send as (part of) the body: from `wsgi.file_wrapper`, or a region of a
/// response's temporary file.
pub(crate) struct FileSlice {
    pub(crate) fd: Arc<std::fs::File>,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// A region of the temporary file, whose space is given back once it is sent.
    pub(crate) spooled: bool,
}

/// The first answer about a response, which is all most responses need.
pub(crate) enum First {
    /// The head with the whole body.
    Full(Head, Bytes),
    /// The head and first chunk; the rest follows on the stream.
    Stream(Head, Option<Bytes>, StreamReader),
    /// The application failed before a head: answer 500 (or the guard's status).
    Error,
}

/// The sending side of one response. The first answer goes through a oneshot; only a
/// streamed response gets a [`Stream`], created when its head is sent. Most responses are
/// one message.
#[derive(Clone)]
pub(crate) struct Reply(Arc<ReplyState>);

struct ReplyState {
    first: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<First>>>,
    stream: std::sync::OnceLock<Arc<Stream>>,
    /// The application's result, when its `close()` is left for after the response is
    /// written (inline calls; see `wsgi/body.rs`).
    closer: std::sync::Mutex<Option<Closer>>,
}

/// A response iterable whose `close()` is still to be called, with the request target for
/// the error log.
pub(crate) struct Closer {
    pub(crate) result: pyo3::Py<pyo3::PyAny>,
    pub(crate) target: Bytes,
}

impl Reply {
    /// A new reply and the receiver of its first answer.
    pub(crate) fn new() -> (Reply, tokio::sync::oneshot::Receiver<First>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = ReplyState {
            first: std::sync::Mutex::new(Some(tx)),
            stream: std::sync::OnceLock::new(),
            closer: std::sync::Mutex::new(None),
        };
        (Reply(Arc::new(state)), rx)
    }

    /// Leave `close()` of the application's result to whoever writes the response.
    pub(crate) fn defer_close(&self, closer: Closer) {
        if let Ok(mut slot) = self.0.closer.lock() {
            *slot = Some(closer);
        }
    }

    /// The deferred `close()`, if one was left.
    pub(crate) fn take_closer(&self) -> Option<Closer> {
        self.0.closer.lock().ok().and_then(|mut slot| slot.take())
    }

    fn send_first(&self, first: First) -> bool {
        let tx = match self.0.first.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        tx.is_some_and(|tx| tx.send(first).is_ok())
    }

    /// Route `msg`: head messages go first, the rest follow on the stream (see
    /// [`Stream::offer`]).
    pub(crate) fn offer(&self, py: pyo3::Python<'_>, msg: Msg) -> Offer {
        let done = |delivered| if delivered { Offer::Taken } else { Offer::Gone };
        match msg {
            Msg::Full(head, body) => done(self.send_first(First::Full(head, body))),
            Msg::Error => done(self.send_first(First::Error)),
            Msg::Head(head, first) => {
                let stream = Stream::new(head.buffered());
                let reader = StreamReader(stream.clone());
                let _ = self.0.stream.set(stream);
                done(self.send_first(First::Stream(head, first, reader)))
            }
            other => match self.0.stream.get() {
                None => Offer::Gone,
                Some(stream) => stream.offer(py, other),
            },
        }
    }

    /// The response's stream, once its head is sent.
    pub(crate) fn stream(&self) -> Option<&Arc<Stream>> {
        self.0.stream.get()
    }
}

impl Drop for ReplyState {
    fn drop(&mut self) {
        // Every sender is gone: a stream that was not ended is cut off.
        if let Some(stream) = self.stream.get() {
            stream.producer_done();
        }
    }
}

/// A message from the Python thread about the response.
pub(crate) enum Msg {
    /// The head with the whole body: the common case (Django's HttpResponse).
    Full(Head, Bytes),
    /// The head and the first chunk; more messages follow.
    Head(Head, Option<Bytes>),
    /// The next chunk.
    Data(Bytes),
    /// A file region.
    File(FileSlice),
    /// The body is complete.
    End,
    /// The application failed after the head was sent: the connection must close.
    Abort,
    /// The application failed before a head was sent: answer 500 (or the guard's status).
    Error,
}
