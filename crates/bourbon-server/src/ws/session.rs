//! One WebSocket connection after the handshake: the I/O around the sans-I/O codec, on the
//! worker's single thread.
//!
//! [`Session::start`] returns a handle for the application side and the driver future, which
//! the caller spawns with `tokio::task::spawn_local`. The driver does all the I/O:
//!
//! - it reads frames only while the inbox has room for another message (`max_queue`), so a
//!   slow application slows the client through TCP rather than growing memory;
//! - it answers pings itself (the application never sees them), sends a ping every
//!   `ping_interval` and fails the connection with 1011 when no pong comes within
//!   `ping_timeout` (the application is told 1006: the peer is gone, as far as it knows);
//! - it drops the connection when queued frames make no progress for `write_timeout` (the
//!   client stopped reading; the application is told 1006), pings or not;
//! - it writes the outbox, control frames ahead of queued data (but never inside a frame);
//! - it runs the closing handshake (RFC 6455 §7): a peer's Close is echoed at once with the
//!   same code, without waiting for the application; after Closes both ways the server sends
//!   its FIN first (§7.1.1) and waits, at most `close_timeout`, for the client's;
//! - it fails the connection on a protocol violation (1002), invalid UTF-8 (1007) or a
//!   message over `max_size` (1009): Close with that code, FIN, and no further reading of
//!   frames (§7.1.7). Messages that arrived before the violation and wait in the inbox are
//!   left to the application first (bounded by `close_timeout`), so what the client sent
//!   before its mistake is answered before the Close;
//! - on the worker's graceful stop (when started from [`Switched`]) it sends Close 1012
//!   (service restart) and waits for the client's Close at most `close_timeout`; it holds
//!   the connection's live token until it ends, so the drain waits for it.
//!
//! What the application is told when the connection ends ([`Closed`]): the peer's code and
//! reason when it closed first (1005 when its Close had no code); the code and reason it gave
//! itself to [`Session::close`]; the code of a failure we detected (1002/1007/1009) with the
//! reason; 1012 on a graceful stop; 1006 when the connection ended without a Close or the
//! peer stopped answering pings. Messages already in the inbox are delivered before it.
//! Dropping the last handle without closing closes with 1000.
//!
//! Memory while idle (a worker may hold ten thousand such connections): reads go into one
//! per-thread scratch buffer, and only bytes of an incomplete frame header or control frame
//! (at most 131), or frames held back while the inbox is full, stay with the session; data
//! payloads are appended to their message as they arrive. The outbox holds frames, not a
//! buffer. Compression streams are allocated on first use (see `deflate.rs`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::close::{ABNORMAL, NO_STATUS};
use super::deflate::DeflateParams;
use super::message::{Encoder, Event, Fail, Message, OutFrame, Receiver};
use crate::access_log::SessionLog;
use crate::io::{LiveGuard, Switched, Upgraded};

/// The size of the per-thread read buffer.
const READ_SIZE: usize = 64 * 1024;

/// Most slices gathered into one write.
const MAX_IOV: usize = 64;

/// The settings of a session.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message accepted, in bytes (inflated); larger fails with 1009.
    pub max_size: usize,
    /// Messages received and not yet taken by the application before reading stops.
    pub max_queue: usize,
    /// Send a ping this often (none: never).
    pub ping_interval: Option<Duration>,
    /// Fail the connection when a ping is not answered within this (none: the interval).
    pub ping_timeout: Option<Duration>,
    /// How long to wait for the peer's part of the closing handshake.
    pub close_timeout: Duration,
    /// Drop the connection when writing queued frames makes no progress for this long
    /// (none: wait as long as it takes).
    pub write_timeout: Option<Duration>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_size: 16 * 1024 * 1024,
            max_queue: 32,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            close_timeout: Duration::from_secs(10),
            write_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// How the connection ended, as the application is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close code (see the module docs for which).
    pub code: u16,
    /// The reason, possibly empty.
    pub reason: String,
}

impl Closed {
    fn new(code: u16, reason: &str) -> Self {
        Closed {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// We sent (or queued) our Close and wait for the peer's, reading and dropping data.
    Closing,
    /// Closes went both ways, or the connection failed: write what is queued, then FIN.
    Finishing,
    /// Our FIN is sent: wait for the peer's end of stream.
    Linger,
    Done,
}

struct Inner {
    cfg: WsConfig,
    rx: Receiver,
    enc: Encoder,
    /// Client bytes not yet consumed (an incomplete frame, or frames held while the inbox
    /// is full). Usually empty, with no allocation.
    pending: BytesMut,
    /// `pending` is an incomplete unit: more bytes are needed before it yields anything.
    pending_short: bool,
    inbox: VecDeque<Message>,
    out: VecDeque<OutFrame>,
    /// Bytes of the front frame already written.
    out_sent: usize,
    /// When the outbox, stalled since its last progress, fails the connection.
    write_stall: Option<Instant>,
    out_bytes: usize,
    /// Counts frames queued, so the driver sees that reading queued some.
    queued: u32,
    phase: Phase,
    close_sent: bool,
    /// A violation found after messages that are still in the inbox: the connection fails
    /// once the application has taken them (or `close_timeout` passed), so that what the
    /// client sent before its mistake is handled first.
    deferred_fail: Option<Fail>,
    /// What the application is told (set once).
    result: Option<Closed>,
    /// The deadline of the current phase (Closing, Finishing, Linger).
    deadline: Option<Instant>,
    next_ping: Option<Instant>,
    /// The payload of the ping awaiting its pong, and when it is late.
    awaiting_pong: Option<([u8; 4], Instant)>,
    pings_sent: u32,
    recv_waker: Option<Waker>,
    drain_waker: Option<(Waker, usize)>,
    driver_waker: Option<Waker>,
    /// The access-log line of the request that switched, counting what the session does;
    /// written when the driver ends (or, failing that, when this state goes).
    log: Option<SessionLog>,
}

thread_local! {
    /// The read buffer all sessions on this thread share (see the module docs).
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

impl Inner {
    fn wake_driver(&mut self) {
        // Through `wake`: the application side may call this from outside the runtime.
        if let Some(w) = self.driver_waker.take() {
            crate::wake::wake(w);
        }
    }

    fn wake_app(&mut self) {
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
        if let Some((w, _)) = self.drain_waker.take() {
            w.wake();
        }
    }

    fn set_result(&mut self, c: Closed) {
        if self.result.is_none() {
            self.result = Some(c);
        }
        self.wake_app();
    }

    fn queue(&mut self, f: OutFrame) {
        self.queued = self.queued.wrapping_add(1);
        self.out_bytes += f.len();
        self.out.push_back(f);
    }

    /// Queue a ping or pong ahead of queued messages, but after the frame being written
    /// and earlier control frames.
    fn queue_control(&mut self, f: OutFrame) {
        let mut i = usize::from(self.out_sent > 0);
        while i < self.out.len() && self.out[i].payload.len() <= 125 && is_ping_pong(&self.out[i]) {
            i += 1;
        }
        self.queued = self.queued.wrapping_add(1);
        self.out_bytes += f.len();
        self.out.insert(i.min(self.out.len()), f);
    }

    /// Queue our Close and enter `phase` (Closing to await the peer's, Finishing to end).
    fn send_close(&mut self, frame: OutFrame, phase: Phase) {
        if !self.close_sent {
            self.close_sent = true;
            self.queue(frame);
        }
        self.enter(phase);
    }

    fn enter(&mut self, phase: Phase) {
        if self.phase == phase {
            return;
        }
        self.phase = phase;
        self.deadline = match phase {
            Phase::Open | Phase::Done => None,
            _ => Some(Instant::now() + self.cfg.close_timeout),
        };
        if phase != Phase::Open {
            self.next_ping = None;
            self.awaiting_pong = None;
        }
        if phase == Phase::Done {
            self.set_result(Closed::new(ABNORMAL, ""));
            // Nothing more is read or written: free it all.
            self.out.clear();
            self.write_stall = None;
            self.out_bytes = 0;
            self.out_sent = 0;
            self.pending = BytesMut::new();
            self.rx.discard();
            self.enc.discard();
        }
        self.wake_app();
    }

    /// Whether the driver should read from the socket now.
    fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Open => self.inbox.len() < self.cfg.max_queue && self.deferred_fail.is_none(),
            Phase::Closing | Phase::Linger => true,
            Phase::Finishing | Phase::Done => false,
        }
    }

    /// Act on one event from the client.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Message(m) => {
                if self.phase == Phase::Open {
                    if let Some(log) = &mut self.log {
                        log.stats.messages_in += 1;
                    }
                    self.inbox.push_back(m);
                    if let Some(w) = self.recv_waker.take() {
                        w.wake();
                    }
                }
            }
            Event::Ping(p) => {
                if self.phase == Phase::Open {
                    self.queue_control(OutFrame::ping_pong(true, p));
                }
            }
            Event::Pong(p) => {
                if matches!(self.awaiting_pong, Some((want, _)) if p[..] == want[..]) {
                    self.awaiting_pong = None;
                }
            }
            Event::Close(code) => {
                let told = match &code {
                    Some((c, r)) => Closed::new(*c, r),
                    None => Closed::new(NO_STATUS, ""),
                };
                self.set_result(told);
                // Echo the peer's code at once (§5.5.1), then end: the server closes the
                // TCP connection first (§7.1.1).
                let echo = OutFrame::close(code.as_ref().map(|(c, _)| (*c, "")));
                self.send_close(echo, Phase::Finishing);
            }
        }
    }

    /// Consume complete frames from `buf`; returns how many bytes were used, and whether
    /// the rest is an incomplete unit (as opposed to held back for room in the inbox).
    fn consume(&mut self, buf: &mut [u8]) -> (usize, bool) {
        let mut at = 0;
        loop {
            if self.phase == Phase::Linger {
                // After both Closes, or a failure, frames are not read any more.
                return (buf.len(), false);
            }
            if !self.wants_read() {
                return (at, false);
            }
            match self.rx.feed(&mut buf[at..]) {
                Ok((n, ev)) => {
                    at += n;
                    match ev {
                        Some(ev) => self.on_event(ev),
                        None => return (at, true),
                    }
                    if self.phase == Phase::Finishing {
                        // Frames after the peer's Close are ignored.
                        return (buf.len(), false);
                    }
                }
                Err(f) => {
                    self.rx.discard();
                    if self.phase == Phase::Open && !self.inbox.is_empty() {
                        self.deferred_fail = Some(f);
                        self.deadline = Some(Instant::now() + self.cfg.close_timeout);
                    } else {
                        self.fail(f);
                    }
                    return (buf.len(), false);
                }
            }
        }
    }

    /// Fail the connection (§7.1.7): Close with the code, then our FIN.
    fn fail(&mut self, f: Fail) {
        self.deferred_fail = None;
        self.set_result(Closed::new(f.code, f.why));
        self.send_close(OutFrame::close(Some((f.code, ""))), Phase::Finishing);
    }

    /// Read and process client bytes while the inbox has room. Ready when the connection's
    /// reading side ended (EOF or error); Pending when waiting for bytes or room.
    fn poll_read_side(&mut self, io: &dyn Upgraded, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.wants_read() {
                return Poll::Pending;
            }
            if !self.pending.is_empty() && !self.pending_short {
                let mut pending = std::mem::take(&mut self.pending);
                let (used, short) = self.consume(&mut pending);
                pending.advance(used);
                self.pending_short = short;
                self.keep_pending(pending);
                continue;
            }
            let read = SCRATCH.with(|s| {
                let mut scratch = s.borrow_mut();
                scratch.clear();
                if scratch.capacity() < READ_SIZE {
                    scratch.reserve(READ_SIZE);
                }
                match io.poll_read(cx, &mut scratch) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(false),
                    Poll::Ready(Ok(_)) => {
                        if self.pending.is_empty() {
                            let (used, short) = self.consume(&mut scratch);
                            if used < scratch.len() {
                                self.pending_short = short;
                                let rest = BytesMut::from(&scratch[used..]);
                                self.keep_pending(rest);
                            }
                        } else {
                            // Join the incomplete unit with what follows it.
                            self.pending.extend_from_slice(&scratch);
                            self.pending_short = false;
                        }
                        Poll::Ready(true)
                    }
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(false) => return Poll::Ready(()),
                Poll::Ready(true) => {}
            }
        }
    }

    /// Keep `rest` as the pending bytes, in a buffer no larger than it needs.
    fn keep_pending(&mut self, rest: BytesMut) {
        self.pending = if rest.is_empty() {
            BytesMut::new()
        } else if rest.capacity() > 2 * rest.len() + 256 {
            BytesMut::from(&rest[..])
        } else {
            rest
        };
    }

    /// Write queued frames. Ready(Err) when the socket failed; Ready(Ok) once empty.
    fn poll_write_side(&mut self, io: &dyn Upgraded, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        while !self.out.is_empty() {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_IOV.min(2 * self.out.len()));
            let mut skip = self.out_sent;
            for f in &self.out {
                for part in [f.head(), &f.payload[..]] {
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    if slices.len() < MAX_IOV {
                        slices.push(IoSlice::new(&part[skip..]));
                    }
                    skip = 0;
                }
                if slices.len() >= MAX_IOV {
                    break;
                }
            }
            let n = match io.poll_write(cx, &slices) {
                Poll::Pending => {
                    if self.write_stall.is_none() {
                        self.write_stall = self.cfg.write_timeout.map(|t| Instant::now() + t);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(_)) | Poll::Ready(Ok(0)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => n,
            };
            drop(slices);
            self.write_stall = None;
            if let Some(log) = &mut self.log {
                log.stats.bytes_out += n as u64;
            }
            self.out_bytes -= n.min(self.out_bytes);
            let mut n = n + self.out_sent;
            while let Some(f) = self.out.front() {
                if n < f.len() {
                    break;
                }
                n -= f.len();
                self.out.pop_front();
            }
            self.out_sent = n;
            if let Some((_, below)) = &self.drain_waker {
                if self.out_bytes < *below {
                    if let Some((w, _)) = self.drain_waker.take() {
                        w.wake();
                    }
                }
            }
        }
        self.write_stall = None;
        if self.out.capacity() > 16 {
            self.out = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }

    /// The earliest timer the driver must wake for.
    fn next_timer(&self) -> Option<Instant> {
        [
            self.deadline,
            self.next_ping,
            self.awaiting_pong.map(|(_, t)| t),
            self.write_stall,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Act on timers that have passed.
    fn on_timers(&mut self, now: Instant) {
        if self.write_stall.is_some_and(|t| t <= now) {
            // The client stopped reading: no Close could reach it, so the connection is
            // dropped (1006 for the application), as a stalled HTTP response is.
            self.set_result(Closed::new(ABNORMAL, "write timeout"));
            self.enter(Phase::Done);
            return;
        }
        if let Some(f) = self.deferred_fail {
            if self.deadline.is_some_and(|d| d <= now) {
                // The application did not take its messages in time.
                self.fail(f);
                return;
            }
        }
        if self.deadline.is_some_and(|d| d <= now) {
            // The peer did not do its part in time: drop the connection.
            self.enter(Phase::Done);
            return;
        }
        if self.awaiting_pong.is_some_and(|(_, t)| t <= now) {
            // No pong: the peer is gone as far as the application can tell (1006), but it
            // is told why, in case it still listens (1011).
            self.set_result(Closed::new(ABNORMAL, "ping timeout"));
            self.send_close(
                OutFrame::close(Some((1011, "ping timeout"))),
                Phase::Finishing,
            );
            return;
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            if let Some(interval) = self.cfg.ping_interval {
                self.pings_sent = self.pings_sent.wrapping_add(1);
                let payload = self.pings_sent.to_be_bytes();
                self.queue_control(OutFrame::ping_pong(false, Bytes::copy_from_slice(&payload)));
                let timeout = self.cfg.ping_timeout.unwrap_or(interval);
                if self.awaiting_pong.is_none() {
                    self.awaiting_pong = Some((payload, now + timeout));
                }
                self.next_ping = Some(now + interval);
            }
        }
    }
}

fn is_ping_pong(f: &OutFrame) -> bool {
    matches!(f.head().first().map(|b| b & 0x0F), Some(0x9 | 0xA))
}

/// The application's handle on a session. Clones share it.
#[derive(Clone)]
pub struct Session(Rc<Handle>);

/// Closes with 1000 when the last handle goes without closing.
struct Handle(Rc<RefCell<Inner>>);

impl Drop for Handle {
    fn drop(&mut self) {
        let mut inner = self.0.borrow_mut();
        if inner.phase == Phase::Open {
            inner.set_result(Closed::new(1000, ""));
            inner.send_close(OutFrame::close(Some((1000, ""))), Phase::Closing);
        }
        inner.wake_driver();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.0 .0.borrow();
        f.debug_struct("Session")
            .field("phase", &inner.phase)
            .field("inbox", &inner.inbox.len())
            .field("buffered", &inner.out_bytes)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session on a connection the driver switched to us: it holds the connection's live
    /// token until it ends and closes with 1012 on the worker's graceful stop.
    pub fn start(
        sw: Switched,
        deflate: Option<DeflateParams>,
        cfg: WsConfig,
    ) -> (Session, impl Future<Output = Closed>) {
        Session::build(sw.io, deflate, cfg, Some(sw.stop), sw.live, sw.log)
    }

    /// A session on any upgraded connection, with no stop signal.
    pub fn new(
        io: Rc<dyn Upgraded>,
        deflate: Option<DeflateParams>,
        cfg: WsConfig,
    ) -> (Session, impl Future<Output = Closed>) {
        Session::build(io, deflate, cfg, None, LiveGuard::detached(), None)
    }

    fn build(
        io: Rc<dyn Upgraded>,
        deflate: Option<DeflateParams>,
        cfg: WsConfig,
        stop: Option<watch::Receiver<bool>>,
        live: LiveGuard,
        log: Option<SessionLog>,
    ) -> (Session, impl Future<Output = Closed>) {
        let next_ping = cfg.ping_interval.map(|i| Instant::now() + i);
        let inner = Rc::new(RefCell::new(Inner {
            rx: Receiver::new(cfg.max_size, deflate),
            enc: Encoder::new(deflate),
            cfg,
            pending: BytesMut::new(),
            pending_short: false,
            inbox: VecDeque::new(),
            out: VecDeque::new(),
            out_sent: 0,
            write_stall: None,
            out_bytes: 0,
            queued: 0,
            phase: Phase::Open,
            close_sent: false,
            deferred_fail: None,
            result: None,
            deadline: None,
            next_ping,
            awaiting_pong: None,
            pings_sent: 0,
            recv_waker: None,
            drain_waker: None,
            driver_waker: None,
            log,
        }));
        let driver = Driver {
            inner: inner.clone(),
            io,
            timer: None,
            stop: stop.map(|rx| {
                let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
                    let mut rx = rx;
                    while !*rx.borrow_and_update() {
                        if rx.changed().await.is_err() {
                            // No stop will come: wait forever.
                            std::future::pending::<()>().await;
                        }
                    }
                });
                fut
            }),
            _live: live,
            _open: crate::metrics::websocket_opened(),
        };
        (Session(Rc::new(Handle(inner))), driver.run())
    }

    fn inner(&self) -> std::cell::RefMut<'_, Inner> {
        self.0 .0.borrow_mut()
    }

    /// The next message, or how the connection ended once the inbox is empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message, Closed>> {
        let mut inner = self.inner();
        if let Some(m) = inner.inbox.pop_front() {
            if inner.inbox.len() + 1 >= inner.cfg.max_queue
                || (inner.inbox.is_empty() && inner.deferred_fail.is_some())
            {
                // There is room again: reading may resume (or a deferred failure proceed).
                inner.wake_driver();
            }
            if inner.inbox.is_empty() && inner.inbox.capacity() > 8 {
                inner.inbox = VecDeque::new();
            }
            return Poll::Ready(Ok(m));
        }
        if let Some(c) = &inner.result {
            return Poll::Ready(Err(c.clone()));
        }
        inner.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next message, or how the connection ended.
    pub async fn recv(&self) -> Result<Message, Closed> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queue a message (compressed if negotiated). `Err` once the connection is closing or
    /// closed: nothing more can be sent.
    pub fn send(&self, msg: Message) -> Result<(), Closed> {
        let mut inner = self.inner();
        if inner.close_sent || inner.phase != Phase::Open {
            return Err(inner
                .result
                .clone()
                .unwrap_or_else(|| Closed::new(ABNORMAL, "")));
        }
        let frame = inner.enc.message(msg);
        if let Some(log) = &mut inner.log {
            log.stats.messages_out += 1;
        }
        inner.queue(frame);
        inner.wake_driver();
        Ok(())
    }

    /// Bytes queued and not yet written (for the application's backpressure).
    pub fn buffered(&self) -> usize {
        self.inner().out_bytes
    }

    /// Ready once fewer than `below` bytes are queued, or the connection is closed.
    pub fn poll_drained(&self, cx: &mut Context<'_>, below: usize) -> Poll<()> {
        let mut inner = self.inner();
        if inner.out_bytes < below || inner.phase == Phase::Done || inner.result.is_some() {
            return Poll::Ready(());
        }
        inner.drain_waker = Some((cx.waker().clone(), below));
        Poll::Pending
    }

    /// Start the closing handshake with `code` and `reason` (cut to fit a control frame).
    /// Nothing happens if it already began.
    pub fn close(&self, code: u16, reason: &str) {
        let mut inner = self.inner();
        if inner.close_sent || inner.phase != Phase::Open {
            return;
        }
        inner.set_result(Closed::new(code, reason));
        inner.send_close(OutFrame::close(Some((code, reason))), Phase::Closing);
        inner.wake_driver();
    }

    /// How the connection ended, once it has.
    pub fn closed(&self) -> Option<Closed> {
        self.inner().result.clone()
    }
}

/// The driver future's state.
struct Driver {
    inner: Rc<RefCell<Inner>>,
    io: Rc<dyn Upgraded>,
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
    stop: Option<Pin<Box<dyn Future<Output = ()>>>>,
    _live: LiveGuard,
    /// Counts the session among the worker's open WebSockets while it lives.
    _open: crate::metrics::WebSocketGauge,
}

impl Driver {
    async fn run(mut self) -> Closed {
        std::future::poll_fn(|cx| self.poll(cx)).await;
        // Dropping the driver drops the connection and the live token.
        let mut inner = self.inner.borrow_mut();
        let closed = inner
            .result
            .clone()
            .unwrap_or_else(|| Closed::new(ABNORMAL, ""));
        if let Some(log) = inner.log.take() {
            log.finish(closed.code);
        }
        closed
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let io = self.io.clone();
        let mut inner = self.inner.borrow_mut();
        loop {
            if inner.phase == Phase::Done {
                return Poll::Ready(());
            }
            if let Some(f) = inner.deferred_fail {
                if inner.inbox.is_empty() {
                    inner.fail(f);
                }
            }
            // A graceful stop: say goodbye with 1012 (service restart).
            if let Some(stop) = &mut self.stop {
                if stop.as_mut().poll(cx).is_ready() {
                    self.stop = None;
                    if inner.phase == Phase::Open {
                        inner.set_result(Closed::new(1012, ""));
                        inner.send_close(OutFrame::close(Some((1012, ""))), Phase::Closing);
                    }
                }
            }
            let (phase, queued) = (inner.phase, inner.queued);
            match inner.poll_write_side(&*io, cx) {
                Poll::Ready(Err(())) => {
                    inner.enter(Phase::Done);
                    continue;
                }
                Poll::Ready(Ok(())) if inner.phase == Phase::Finishing => {
                    // Everything is written: our FIN first (§7.1.1), then wait for theirs.
                    io.shutdown_write();
                    inner.enter(Phase::Linger);
                    continue;
                }
                _ => {}
            }
            if let Poll::Ready(()) = inner.poll_read_side(&*io, cx) {
                // The client's stream ended (or failed). Without its Close that is an
                // abnormal closure (1006); in Linger it is the end we waited for.
                inner.set_result(Closed::new(ABNORMAL, ""));
                inner.enter(Phase::Done);
                continue;
            }
            if inner.phase != phase || inner.queued != queued {
                // Reading queued frames (a pong, a Close) or moved the phase on.
                continue;
            }
            let now = Instant::now();
            if inner.next_timer().is_some_and(|t| t <= now) {
                inner.on_timers(now);
                continue;
            }
            if let Some(at) = inner.next_timer() {
                let (timer, set) = self
                    .timer
                    .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(at)), at));
                if *set != at {
                    timer.as_mut().reset(at);
                    *set = at;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    continue;
                }
            } else {
                self.timer = None;
            }
            inner.driver_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// An in-memory connection: the client's bytes come in reads of at most `chunk`.
    #[derive(Default)]
    struct Mock {
        input: RefCell<VecDeque<u8>>,
        chunk: usize,
        eof: Cell<bool>,
        output: RefCell<Vec<u8>>,
        reader: RefCell<Option<Waker>>,
        shut: Cell<bool>,
        /// The client stopped reading: writes make no progress (and nothing wakes them).
        stuck: Cell<bool>,
    }

    impl Mock {
        fn push(&self, bytes: &[u8]) {
            self.input.borrow_mut().extend(bytes);
            if let Some(w) = self.reader.borrow_mut().take() {
                w.wake();
            }
        }
    }

    impl Upgraded for Mock {
        fn poll_read(
            &self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<std::io::Result<usize>> {
            let mut input = self.input.borrow_mut();
            if input.is_empty() {
                if self.eof.get() {
                    return Poll::Ready(Ok(0));
                }
                *self.reader.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = input.len().min(self.chunk.max(1));
            buf.extend(input.drain(..n));
            Poll::Ready(Ok(n))
        }
        fn poll_write(
            &self,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            if self.stuck.get() {
                return Poll::Pending;
            }
            let mut out = self.output.borrow_mut();
            let mut n = 0;
            for b in bufs {
                out.extend_from_slice(b);
                n += b.len();
            }
            Poll::Ready(Ok(n))
        }
        fn shutdown_write(&self) {
            self.shut.set(true);
        }
    }

    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let key = [9, 8, 7, 6];
        let mut v = vec![b0, 0x80 | payload.len() as u8];
        v.extend_from_slice(&key);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        v
    }

    fn run<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn cfg() -> WsConfig {
        WsConfig {
            max_queue: 4,
            ping_interval: None,
            close_timeout: Duration::from_millis(200),
            ..WsConfig::default()
        }
    }

    #[test]
    fn reading_stops_while_the_inbox_is_full_and_resumes() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            for i in 0..100u8 {
                mock.push(&frame(0x82, &[i; 20]));
            }
            let (s, driver) = Session::new(mock.clone(), None, cfg());
            let driver = tokio::task::spawn_local(driver);
            settle().await;
            // Four messages taken in, the rest left to the (TCP) sender; at most one read's
            // worth held by the session.
            assert_eq!(s.inner().inbox.len(), 4);
            assert!(!mock.input.borrow().is_empty());
            assert!(s.inner().pending.len() <= 1000);
            for i in 0..100u8 {
                assert_eq!(
                    s.recv().await.unwrap(),
                    Message::Binary(Bytes::from(vec![i; 20]))
                );
            }
            assert!(mock.input.borrow().is_empty());
            // Idle again: nothing held.
            settle().await;
            assert_eq!(s.inner().pending.capacity(), 0);
            mock.push(&frame(0x88, &1000u16.to_be_bytes()));
            mock.eof.set(true);
            assert_eq!(driver.await.unwrap(), Closed::new(1000, ""));
            assert_eq!(s.recv().await, Err(Closed::new(1000, "")));
            assert!(s.send(Message::Text(Bytes::from("late"))).is_err());
            // The Close was echoed and our FIN sent.
            assert!(mock.output.borrow().ends_with(&[0x88, 2, 0x03, 0xe8]));
            assert!(mock.shut.get());
        });
    }

    #[test]
    fn a_frame_split_across_reads_leaves_only_its_header_behind() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 3,
                ..Mock::default()
            });
            let (s, driver) = Session::new(mock.clone(), None, cfg());
            tokio::task::spawn_local(driver);
            let wire = frame(0x81, b"hello, world");
            // Part of the 6-byte header: kept, in a buffer its own size.
            mock.push(&wire[..4]);
            settle().await;
            assert_eq!(s.inner().pending.len(), 4);
            assert!(s.inner().pending.capacity() < 64);
            // The header and some payload: the payload goes to the message, nothing stays.
            mock.push(&wire[4..9]);
            settle().await;
            assert_eq!(s.inner().pending.capacity(), 0);
            mock.push(&wire[9..]);
            assert_eq!(
                s.recv().await.unwrap(),
                Message::Text(Bytes::from("hello, world"))
            );
        });
    }

    #[test]
    fn an_unanswered_ping_fails_with_1011_and_the_app_sees_1006() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            let cfg = WsConfig {
                ping_interval: Some(Duration::from_millis(30)),
                ping_timeout: Some(Duration::from_millis(60)),
                ..cfg()
            };
            let (s, driver) = Session::new(mock.clone(), None, cfg);
            let started = Instant::now();
            let closed = driver.await;
            assert_eq!(closed.code, ABNORMAL);
            assert!(started.elapsed() >= Duration::from_millis(90));
            assert_eq!(s.recv().await.unwrap_err().code, ABNORMAL);
            let out = mock.output.borrow();
            assert_eq!(out[0], 0x89, "a ping first");
            let close_at = out.iter().position(|&b| b == 0x88).unwrap();
            assert_eq!(out[close_at + 2..close_at + 4], 1011u16.to_be_bytes());
        });
    }

    #[test]
    fn a_stalled_outbox_drops_the_connection_after_the_write_timeout() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            let cfg = WsConfig {
                write_timeout: Some(Duration::from_millis(60)),
                ..cfg()
            };
            let (s, driver) = Session::new(mock.clone(), None, cfg);
            let driver = tokio::task::spawn_local(driver);
            // Writes that make progress never trip it, however long the session lives.
            s.send(Message::Text("first".into())).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(s.closed().is_none());
            mock.stuck.set(true);
            let started = Instant::now();
            s.send(Message::Text("stuck".into())).unwrap();
            let closed = driver.await.unwrap();
            assert!(started.elapsed() >= Duration::from_millis(60));
            assert_eq!(
                (closed.code, closed.reason.as_str()),
                (ABNORMAL, "write timeout")
            );
            assert_eq!(s.recv().await.unwrap_err().code, ABNORMAL);
            assert!(s.send(Message::Text("after".into())).is_err());
            assert_eq!(s.buffered(), 0, "the outbox is freed");
        });
    }

    #[test]
    fn answered_pings_keep_the_connection_and_pings_are_answered() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            let cfg = WsConfig {
                ping_interval: Some(Duration::from_millis(20)),
                ping_timeout: Some(Duration::from_millis(40)),
                ..cfg()
            };
            let (s, driver) = Session::new(mock.clone(), None, cfg);
            tokio::task::spawn_local(driver);
            mock.push(&frame(0x89, b"hi"));
            let mut answered = 0;
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
                // Answer every ping the server sent so far.
                let out = std::mem::take(&mut *mock.output.borrow_mut());
                let mut at = 0;
                while at + 2 <= out.len() {
                    let len = usize::from(out[at + 1]);
                    if out[at] == 0x89 {
                        mock.push(&frame(0x8A, &out[at + 2..at + 2 + len]));
                        answered += 1;
                    } else if out[at] == 0x8A {
                        assert_eq!(&out[at + 2..at + 2 + len], b"hi");
                    }
                    at += 2 + len;
                }
            }
            assert!(answered >= 3, "{answered}");
            assert_eq!(s.closed(), None);
        });
    }

    #[test]
    fn messages_before_a_violation_are_handled_before_the_failure() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            // A message and a frame with a reserved opcode, in one read (Autobahn 4.1.3).
            let mut wire = frame(0x81, b"hello");
            wire.extend(frame(0x85, b""));
            mock.push(&wire);
            let (s, driver) = Session::new(mock.clone(), None, cfg());
            let driver = tokio::task::spawn_local(driver);
            let msg = s.recv().await.unwrap();
            assert_eq!(msg, Message::Text(Bytes::from("hello")));
            // The application answers before the connection fails ...
            s.send(msg).unwrap();
            assert_eq!(s.recv().await.unwrap_err().code, 1002);
            mock.eof.set(true);
            assert_eq!(driver.await.unwrap().code, 1002);
            // ... so its answer goes out before the Close.
            let out = mock.output.borrow();
            assert_eq!(&out[..7], b"\x81\x05hello");
            assert_eq!(&out[7..11], &[0x88, 2, 0x03, 0xea]);
            assert!(mock.shut.get());
        });
    }

    #[test]
    fn dropping_the_last_handle_closes_with_1000() {
        run(async {
            let mock = Rc::new(Mock {
                chunk: 1000,
                ..Mock::default()
            });
            let (s, driver) = Session::new(mock.clone(), None, cfg());
            let s2 = s.clone();
            let driver = tokio::task::spawn_local(driver);
            drop(s);
            settle().await;
            assert!(mock.output.borrow().is_empty(), "a clone still holds it");
            drop(s2);
            settle().await;
            assert_eq!(&mock.output.borrow()[..], &[0x88, 2, 0x03, 0xe8]);
            // The peer answers; the server then closes first.
            mock.push(&frame(0x88, &1000u16.to_be_bytes()));
            mock.eof.set(true);
            assert_eq!(driver.await.unwrap().code, 1000);
            assert!(mock.shut.get());
        });
    }
}
