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
//!   lingering close so the client reads it instead of a reset;
//! - zero-copy file bodies: a response body may carry *placeholder* bytes (see
//!   [`file_placeholder`]) that stand for a file region queued with [`ConnShared::queue_file`];
//!   when hyper writes them, the bytes go from the page cache to the socket with sendfile(2),
//!   while hyper still frames the response (Content-Length, keep-alive) as usual.
//!
//! It knows nothing about Python or about what the application answers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::guard::{Guard, Phase, Reject};

/// The read size for one socket read; a request head of typical size arrives in one read.
const READ_CHUNK: usize = 16 * 1024;
/// How long, and how much, we keep reading after answering a rejected request, so the client
/// sees our answer rather than a TCP reset caused by its unread bytes.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// How many placeholder bytes one body frame may carry.
pub const PLACEHOLDER_LEN: usize = 1 << 20;

/// Zero bytes that are never sent: a slice of this static in a write means "the next bytes of
/// the queued file". Being all zeros it lives in `.bss` and costs no memory until read, and
/// nothing reads it: hyper queues body buffers without copying when writev is on.
static FILE_PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// A body frame standing for `len` (at most [`PLACEHOLDER_LEN`]) bytes of the queued file.
pub fn file_placeholder(len: usize) -> Bytes {
    Bytes::from_static(&FILE_PLACEHOLDER[..len.min(PLACEHOLDER_LEN)])
}

fn is_placeholder(slice: &[u8]) -> bool {
    let start = FILE_PLACEHOLDER.as_ptr() as usize;
    let p = slice.as_ptr() as usize;
    !slice.is_empty() && p >= start && p < start + PLACEHOLDER_LEN
}

/// A file region waiting to be sent with sendfile(2).
#[derive(Debug)]
struct FileJob {
    fd: Arc<OwnedFd>,
    offset: u64,
    remaining: u64,
}

/// A client socket: tokio I/O plus zero-copy file sending.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Send up to `len` bytes of `file` from `offset` with sendfile(2), when writable.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: RawFd,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>>;
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
            fn poll_sendfile(
                &self,
                cx: &mut Context<'_>,
                file: RawFd,
                offset: u64,
                len: usize,
            ) -> Poll<io::Result<usize>> {
                loop {
                    match self.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                    let sock = self.as_raw_fd();
                    match self.try_io(tokio::io::Interest::WRITABLE, || {
                        sendfile_once(sock, file, offset, len)
                    }) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        res => return Poll::Ready(res),
                    }
                }
            }
        }
    };
}

socket_impl!(tokio::net::TcpStream);
socket_impl!(tokio::net::UnixStream);

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
    files: RefCell<VecDeque<FileJob>>,
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

    /// Queue a file region; the placeholder bytes of the response body that follow stand for
    /// it, in order.
    pub fn queue_file(&self, fd: Arc<OwnedFd>, offset: u64, len: u64) {
        if len > 0 {
            self.files.borrow_mut().push_back(FileJob {
                fd,
                offset,
                remaining: len,
            });
        }
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

impl<S: Socket> hyper::rt::Read for GuardedIo<S> {
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

impl<S: Socket> GuardedIo<S> {
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

impl<S: Socket> GuardedIo<S> {
    /// Send the file bytes that a placeholder slice of `len` bytes stands for.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        let job = {
            let files = self.shared.files.borrow();
            files.front().map(|j| (j.fd.clone(), j.offset, j.remaining))
        };
        let Some((fd, offset, remaining)) = job else {
            return Poll::Ready(Err(io::Error::other(
                "file placeholder without a queued file",
            )));
        };
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(len);
        let res = self.stream.poll_sendfile(cx, fd.as_raw_fd(), offset, want);
        match self.on_write_result(cx, res) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its Content-Length",
            ))),
            Poll::Ready(Ok(n)) => {
                let mut files = self.shared.files.borrow_mut();
                if let Some(front) = files.front_mut() {
                    front.offset += n as u64;
                    front.remaining -= (n as u64).min(front.remaining);
                    if front.remaining == 0 {
                        files.pop_front();
                    }
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
}

impl<S: Socket> hyper::rt::Write for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if is_placeholder(buf) {
            return this.poll_send_file(cx, buf.len());
        }
        let res = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.on_write_result(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Plain bytes up to the first placeholder go out with writev; a placeholder at the
        // front goes out with sendfile. Either way a short count is fine: hyper advances its
        // buffers by what we report and calls again.
        match bufs.iter().position(|b| is_placeholder(b)) {
            Some(0) => this.poll_send_file(cx, bufs[0].len()),
            Some(i) => {
                let res = Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..i]);
                this.on_write_result(cx, res)
            }
            None => {
                let res = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
                this.on_write_result(cx, res)
            }
        }
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
