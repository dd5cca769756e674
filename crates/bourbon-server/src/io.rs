//! Socket primitives for the connection driver: the `Socket` trait (readiness-based reads and
//! writes through `&self`, so a request body and the response writer can share one socket),
//! sendfile(2), the per-connection deadlines, the state shared between a connection and
//! the handler answering on it, and what a handler receives when a connection switches
//! protocols ([`Switched`]).
//!
//! It knows nothing about HTTP or Python.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;

use crate::guard::Reject;

/// A client socket, used through `&self` so the request body and the response writer can
/// both reach it. Reads and writes are readiness-based (`poll_*_ready`, then `try_*`).
pub trait Socket: AsRawFd + std::os::fd::AsFd + 'static {
    /// Wait until the socket may be readable.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Wait until the socket may be writable.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Read what is available into `buf`'s spare capacity (`WouldBlock` when nothing is).
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Forget the cached "readable" state without a system call, after a read that drained
    /// the socket; see `h1::Conn::poll_fill`.
    fn clear_read_ready(&self);
    /// Write from `bufs` (`WouldBlock` when the send buffer is full).
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
    /// Send up to `len` bytes of `file` from `offset` with sendfile(2) (`WouldBlock` when
    /// the send buffer is full).
    fn try_sendfile(&self, file: RawFd, offset: u64, len: usize) -> io::Result<usize>;
}

#[allow(unsafe_code)]
fn sendfile_once(sock: RawFd, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: both descriptors are open for the duration of the call (the socket is owned by
    // the stream we borrow, the file by the queued job's Arc) and `off` is a valid pointer.
    let n = unsafe { libc::sendfile(sock, file, &mut off, len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

macro_rules! socket_impl {
    ($ty:ty) => {
        impl Socket for $ty {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$ty>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$ty>::poll_write_ready(self, cx)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$ty>::try_read_buf(self, buf)
            }
            fn clear_read_ready(&self) {
                // A closure reporting WouldBlock is how tokio lets us clear readiness.
                let _ = self.try_io(tokio::io::Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            // Every byte a client connection is sent passes one of these two (responses,
            // interim responses, chunk framing, WebSocket frames): the metrics' bytes-out
            // counter is kept here, once, for all of them.
            fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                let res = <$ty>::try_write_vectored(self, bufs);
                if let Ok(n) = res {
                    crate::metrics::bytes_out(n);
                }
                res
            }
            fn try_sendfile(&self, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
                let sock = self.as_raw_fd();
                let res = self.try_io(tokio::io::Interest::WRITABLE, || {
                    sendfile_once(sock, file, offset, len)
                });
                if let Ok(n) = res {
                    crate::metrics::bytes_out(n);
                }
                res
            }
        }
    };
}

socket_impl!(tokio::net::TcpStream);
socket_impl!(tokio::net::UnixStream);

/// A connection a handler took over after `101 Switching Protocols` (RFC 9110 §15.2.2;
/// WebSockets, RFC 6455 §4): raw bytes both ways, through `&self` so a reader and a writer can
/// share it. The first read returns what the client sent after the request that switched,
/// which the driver had already read; the driver's read buffer is freed then, and later
/// reads go straight into the caller's buffer, so an idle switched connection holds none.
pub trait Upgraded {
    /// Read what is available into `buf`'s spare capacity (reserving some if it has none);
    /// `Ok(0)` at the end of the client's stream.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;
    /// Write from `bufs`, waiting for room.
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>])
        -> Poll<io::Result<usize>>;
    /// Send our FIN (the peer may still send).
    fn shutdown_write(&self);
}

/// Keeps a switched connection counted among the worker's live connections, so a graceful
/// stop waits for it (bounded by the graceful timeout) as for one still speaking HTTP. Drop
/// it when the connection is done.
pub struct LiveGuard(#[allow(dead_code)] Option<Box<dyn std::any::Any>>);

impl LiveGuard {
    pub(crate) fn new(token: impl std::any::Any) -> Self {
        LiveGuard(Some(Box::new(token)))
    }

    /// A guard that counts nothing (a connection not served by [`crate::serve::serve`]).
    pub fn detached() -> Self {
        LiveGuard(None)
    }
}

impl std::fmt::Debug for LiveGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveGuard")
    }
}

/// What a handler receives once its `101` is on the wire: the connection, its place among
/// the live connections, and the worker's stop signal (true once a graceful stop began:
/// a WebSocket then says goodbye with Close 1012, RFC 6455 §7.4.1 and the IANA registry).
pub struct Switched {
    /// The connection.
    pub io: Rc<dyn Upgraded>,
    /// Hold while the connection lives.
    pub live: LiveGuard,
    /// The stop signal.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The access-log line of the request that switched, written when the session ends
    /// (`None` without an access log). A WebSocket session counts into it.
    pub log: Option<crate::access_log::SessionLog>,
}

impl std::fmt::Debug for Switched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switched")
            .field("stop", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

/// The deadlines of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// The whole request head must arrive within this time of its first byte (or of accept).
    pub header: Duration,
    /// An idle keep-alive connection (no request in flight) is closed after this; zero closes at once.
    pub keep_alive: Duration,
    /// A request body that makes no progress for this long ends the connection.
    pub body_stall: Duration,
    /// A response write that makes no progress for this long ends the connection.
    pub write: Duration,
}

/// State shared by the connection's I/O and the service answering its requests.
///
/// Single-threaded: each connection lives on the worker's one runtime thread.
#[derive(Default)]
pub struct ConnShared {
    inflight: Cell<u32>,
    pub(crate) reject: Cell<Option<Reject>>,
}

impl std::fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnShared")
            .field("inflight", &self.inflight.get())
            .field("reject", &self.reject.get())
            .finish_non_exhaustive()
    }
}

impl ConnShared {
    /// A request was handed to the handler (counted by the driver).
    pub(crate) fn request_started(&self) {
        self.inflight.set(self.inflight.get() + 1);
    }

    /// A response was completely written (or abandoned).
    pub(crate) fn request_finished(&self) {
        self.inflight.set(self.inflight.get().saturating_sub(1));
    }

    /// The violation the guard found, if any: a request body cut short by it (chunk framing
    /// error, body over the limit) is answered with this status instead of a 500.
    pub fn reject(&self) -> Option<Reject> {
        self.reject.get()
    }

    /// Requests handed to the application whose responses are not finished.
    pub fn inflight(&self) -> u32 {
        self.inflight.get()
    }
}
