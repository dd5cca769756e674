//! The guarded connection I/O that hyper reads from and writes to.
//!
//! This module owns everything between the client socket and hyper's HTTP/1 machinery:
//! - every byte read passes the request [`Guard`](crate::guard::Guard), which releases a request
//!   head to hyper only once the whole head has arrived and been validated, and stops the flow
//!   (an EOF at a message boundary) at the first violation, so two requests are never read from
//!   one (RFC 9112 §11.2);
//! - the per-connection deadlines: the header timeout (slowloris), the keep-alive idle timeout
//!   (armed only when no response is in flight), the body stall timeout and the write timeout (a
//!   client that stops reading cannot pin a response, and so a Python thread, forever);
//! - after hyper is done, our own short 4xx answer for a rejected request, followed by a
//!   lingering close so the client reads it instead of a reset.
//!
//! It knows nothing about Python or about what the application answers.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::guard::{Guard, Phase, Reject};

/// The read size for one socket read; a request head of typical size arrives in one read.
const READ_CHUNK: usize = 16 * 1024;
/// How long, and how much, we keep reading after answering a rejected request, so the client
/// sees our answer rather than a TCP reset caused by its unread bytes.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

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
    read_waker: Cell<Option<Waker>>,
    reject: Cell<Option<Reject>>,
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
    /// A request was handed to the application.
    pub fn request_started(&self) {
        self.inflight.set(self.inflight.get() + 1);
    }

    /// A response was completely written (or abandoned). When nothing is left in flight the
    /// keep-alive timer must start, so the reader is woken to arm it.
    pub fn request_finished(&self) {
        let n = self.inflight.get().saturating_sub(1);
        self.inflight.set(n);
        if n == 0 {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
    }

    /// The violation the guard found, if any: a request body cut short by it (chunk framing
    /// error, body over the limit) is answered with this status instead of a 500.
    pub fn reject(&self) -> Option<Reject> {
        self.reject.get()
    }

    fn inflight(&self) -> u32 {
        self.inflight.get()
    }
}

/// Which deadline the reader is currently under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadClock {
    /// Waiting for the application: no read deadline.
    None,
    /// The first request head (from accept) or a later head (from its first byte).
    Head(u64),
    /// Idle between requests.
    KeepAlive(u64),
    /// Inside a request body; re-armed on every byte.
    Body,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    NotStarted,
    WritingReject(usize),
    Lingering,
    Done,
}

/// A client stream wrapped with the request guard and the connection deadlines.
pub struct GuardedIo<S> {
    stream: S,
    guard: Guard,
    /// Bytes read from the socket and not yet handed to hyper; the first `released` of them
    /// have passed the guard.
    pending: BytesMut,
    released: usize,
    /// The guard needs more bytes before it can release anything.
    need_more: bool,
    eof: bool,
    rejected: Option<Reject>,
    /// The rejection came between requests, so nobody else answers it: we do, at shutdown.
    answer_on_shutdown: bool,
    shared: Rc<ConnShared>,
    timeouts: Timeouts,
    read_clock: ReadClock,
    read_sleep: Pin<Box<Sleep>>,
    read_armed: bool,
    write_sleep: Pin<Box<Sleep>>,
    write_armed: bool,
    shutdown: Shutdown,
    linger_read: usize,
    timed_out: bool,
}

impl<S> GuardedIo<S> {
    /// Wrap a freshly accepted stream.
    pub fn new(stream: S, guard: Guard, shared: Rc<ConnShared>, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        GuardedIo {
            stream,
            guard,
            pending: BytesMut::with_capacity(READ_CHUNK),
            released: 0,
            need_more: true,
            eof: false,
            rejected: None,
            answer_on_shutdown: false,
            shared,
            timeouts,
            read_clock: ReadClock::Head(0),
            read_sleep: Box::pin(tokio::time::sleep_until(now + timeouts.header)),
            read_armed: true,
            write_sleep: Box::pin(tokio::time::sleep_until(now + timeouts.write)),
            write_armed: false,
            shutdown: Shutdown::NotStarted,
            linger_read: 0,
            timed_out: false,
        }
    }

    /// Whether a read deadline closed this connection.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The violation found on this connection, if any.
    pub fn rejected(&self) -> Option<Reject> {
        self.rejected
    }

    fn clock_now(&self) -> ReadClock {
        let heads = self.guard.heads_released();
        match self.guard.phase() {
            Phase::Head => ReadClock::Head(heads),
            Phase::Body => ReadClock::Body,
            Phase::Idle if heads == 0 => ReadClock::Head(0),
            Phase::Idle if self.shared.inflight() > 0 => ReadClock::None,
            Phase::Idle => ReadClock::KeepAlive(heads),
        }
    }

    /// Point the read timer at the deadline for the current state. Returns false when no
    /// deadline applies.
    fn arm_read_clock(&mut self) -> bool {
        let clock = self.clock_now();
        if clock != self.read_clock || !self.read_armed {
            let wait = match clock {
                ReadClock::None => None,
                ReadClock::Head(_) => Some(self.timeouts.header),
                ReadClock::KeepAlive(_) => Some(self.timeouts.keep_alive),
                ReadClock::Body => Some(self.timeouts.body_stall),
            };
            self.read_clock = clock;
            match wait {
                Some(d) => {
                    self.read_sleep.as_mut().reset(Instant::now() + d);
                    self.read_armed = true;
                }
                None => self.read_armed = false,
            }
        }
        self.read_armed
    }
}

impl<S: AsyncRead + Unpin> GuardedIo<S> {
    /// Read more bytes from the socket into `pending`.
    #[allow(unsafe_code)]
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.pending.reserve(READ_CHUNK);
        let spare = self.pending.spare_capacity_mut();
        let mut buf = ReadBuf::uninit(spare);
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                let len = self.pending.len();
                // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity,
                // which directly follows the current length.
                unsafe { self.pending.set_len(len + n) };
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.released > 0 {
                let n = this.released.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.released -= n;
                return Poll::Ready(Ok(()));
            }
            if this.rejected.is_some() || this.eof || this.guard.is_closed() {
                // EOF for hyper: it finishes what is in flight and then shuts the connection
                // down, which is when the rejection is written (see poll_shutdown). After a
                // message that ends the connection (`Connection: close`, HTTP/1.0) nothing more
                // is read at all.
                return Poll::Ready(Ok(()));
            }
            if !this.pending.is_empty() && !this.need_more {
                let in_body = this.guard.phase() == Phase::Body;
                match this.guard.scan(&this.pending) {
                    Ok(0) => this.need_more = true,
                    Ok(n) => this.released = n,
                    Err(reject) => {
                        this.rejected = Some(reject);
                        if in_body {
                            // The request is already with the application: its body read
                            // fails and the service answers with this status.
                            this.shared.reject.set(Some(reject));
                        } else {
                            this.answer_on_shutdown = true;
                        }
                    }
                }
                continue;
            }
            match this.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    this.eof = true;
                    if let Err(reject) = this.guard.at_eof() {
                        // The client went away inside a body: nobody is left to answer, but
                        // the application's body read must fail rather than see a short body.
                        this.shared.reject.set(Some(reject));
                    }
                }
                Poll::Ready(Ok(_)) => {
                    this.need_more = false;
                    if this.read_clock == ReadClock::Body {
                        // Progress inside a body re-arms the stall deadline.
                        this.read_armed = false;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.arm_read_clock() {
                        if this.read_sleep.as_mut().poll(cx).is_ready() {
                            this.timed_out = true;
                            this.eof = true;
                            continue;
                        }
                    } else {
                        // Waiting on the application: wake when it finishes so the
                        // keep-alive deadline can be armed.
                        this.shared.read_waker.set(Some(cx.waker().clone()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> GuardedIo<S> {
    fn on_write_result<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match res {
            Poll::Pending => {
                if !self.write_armed {
                    self.write_sleep
                        .as_mut()
                        .reset(Instant::now() + self.timeouts.write);
                    self.write_armed = true;
                }
                if self.write_sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading (write timeout)",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_armed = false;
                ready
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Write for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.on_write_result(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.on_write_result(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_flush(cx);
        this.on_write_result(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.shutdown {
                Shutdown::NotStarted => {
                    this.shutdown = if this.answer_on_shutdown {
                        Shutdown::WritingReject(0)
                    } else {
                        Shutdown::Done
                    };
                }
                Shutdown::WritingReject(done) => {
                    let bytes = match this.rejected {
                        Some(r) => r.response_bytes(),
                        None => Vec::new(),
                    };
                    if done >= bytes.len() {
                        match Pin::new(&mut this.stream).poll_shutdown(cx) {
                            Poll::Ready(_) => {}
                            Poll::Pending => return Poll::Pending,
                        }
                        this.shutdown = Shutdown::Lingering;
                        this.read_sleep.as_mut().reset(Instant::now() + LINGER_TIME);
                        continue;
                    }
                    let res = Pin::new(&mut this.stream).poll_write(cx, &bytes[done..]);
                    match this.on_write_result(cx, res) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => this.shutdown = Shutdown::Done,
                        Poll::Ready(Ok(n)) => this.shutdown = Shutdown::WritingReject(done + n),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Shutdown::Lingering => {
                    // Discard what the client still sends until it closes, for a bounded
                    // time and amount, so our answer is not destroyed by a reset.
                    if this.linger_read > LINGER_BYTES
                        || this.read_sleep.as_mut().poll(cx).is_ready()
                    {
                        this.shutdown = Shutdown::Done;
                        continue;
                    }
                    this.pending.clear();
                    match this.poll_fill(cx) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => this.shutdown = Shutdown::Done,
                        Poll::Ready(Ok(n)) => this.linger_read += n,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Shutdown::Done => {
                    return match Pin::new(&mut this.stream).poll_shutdown(cx) {
                        Poll::Ready(_) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}
