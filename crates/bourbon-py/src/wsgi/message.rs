//! What crosses between a Python thread and the connection's task for one request.
//!
//! This module owns the request job (everything the Python side needs, owned and `Send`) and the
//! response messages (head, chunks, file, end, abort). Both directions are bounded channels, so
//! a slow client or a fast app can never grow memory without limit.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use bourbon_server::request::HeaderBlock;
use bourbon_server::request::RequestHead;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, Notify};

/// How many response messages may wait between the Python thread and the socket before the
/// Python thread blocks (with the GIL released).
pub(crate) const RESPONSE_QUEUE: usize = 16;
/// How many request-body chunks the reader may fetch ahead of the application.
pub(crate) const BODY_QUEUE: usize = 4;

/// A request, handed from the connection task to a Python thread.
pub(crate) struct Job {
    pub(crate) head: RequestHead,
    pub(crate) remote: std::sync::Arc<bourbon_server::serve::Remote>,
    pub(crate) local: Local,
    pub(crate) body: BodySource,
    pub(crate) reply: Reply,
}

/// The listener a request came in on, for SERVER_NAME/SERVER_PORT fallbacks.
#[derive(Clone, Debug)]
pub(crate) enum Local {
    Tcp(std::net::SocketAddr),
    Unix(Arc<str>),
}

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
}

/// A file to send as (part of) the body, from `wsgi.file_wrapper`.
pub(crate) struct FileSlice {
    pub(crate) fd: OwnedFd,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// The first answer about a response, which is all most responses need.
pub(crate) enum First {
    /// The head with the whole body.
    Full(Head, Bytes),
    /// The head and first chunk; the rest follows on the receiver.
    Stream(Head, Option<Bytes>, mpsc::Receiver<Msg>),
    /// The application failed before a head: answer 500 (or the guard's status).
    Error,
}

/// The sending side of one response. The first answer goes through a oneshot; only a
/// streamed response gets a (bounded) channel, created when its head is sent. Most
/// responses are one message, and a channel costs an allocation of several kilobytes.
#[derive(Clone)]
pub(crate) struct Reply(Arc<ReplyState>);

struct ReplyState {
    first: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<First>>>,
    stream: std::sync::OnceLock<mpsc::Sender<Msg>>,
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

    /// Route `msg`: head messages go first, the rest follow on the stream.
    pub(crate) fn try_send(&self, msg: Msg) -> Sent {
        match msg {
            Msg::Full(head, body) => Sent::Done(self.send_first(First::Full(head, body))),
            Msg::Error => Sent::Done(self.send_first(First::Error)),
            Msg::Head(head, first) => {
                let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
                let _ = self.0.stream.set(tx);
                Sent::Done(self.send_first(First::Stream(head, first, rx)))
            }
            other => match self.0.stream.get() {
                None => Sent::Done(false),
                Some(tx) => match tx.try_send(other) {
                    Ok(()) => Sent::Done(true),
                    Err(mpsc::error::TrySendError::Closed(_)) => Sent::Done(false),
                    Err(mpsc::error::TrySendError::Full(msg)) => Sent::Full(tx.clone(), msg),
                },
            },
        }
    }
}

/// What happened to a message given to [`Reply::try_send`].
pub(crate) enum Sent {
    /// Delivered (true) or the client is gone (false).
    Done(bool),
    /// The stream is full: the message comes back with its channel, so the caller can wait
    /// for room without the GIL.
    Full(mpsc::Sender<Msg>, Msg),
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
