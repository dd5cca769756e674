//! The HTTP/1.1 connection driver: one task per connection, on the request guard's parser.
//!
//! This module owns the life of a connection: read a request head (the [`Guard`] validates
//! and locates its parts in one pass, RFC 9112 §2–§6), hand the request to the [`Handler`],
//! read the body when the handler pulls it (answering `Expect: 100-continue` on the first
//! pull, RFC 9110 §10.1.1), write the response with the framing it needs (RFC 9112 §6:
//! `Content-Length`, chunked, or close-delimited for HTTP/1.0), then go on with the next
//! request on the same connection or close it. It also owns the connection's deadlines
//! (header, keep-alive, body stall, write), the short 4xx answer and lingering close after a
//! rejected request, and sendfile(2) for file placeholders in a response body.
//!
//! Why our own driver rather than hyper's: the guard must see every byte first anyway (gunicorn's
//! limits and error answers, no request smuggling), and with hyper behind it each head was
//! parsed twice and copied into a `HeaderMap` nobody needed; the WSGI environ is built straight
//! from the guard's offsets instead. The driver is sequential: one request at a time per
//! connection, responses in order, which is what HTTP/1.1 allows (§9.3.2).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::access_log::Pending;
use crate::body::{Body, Chunk, FileRegion};
use crate::cork;
use crate::guard::{Guard, Phase, Reject};
use crate::io::{ConnShared, Socket, Timeouts};
use crate::request::{BodyError, BodySource, Request, RequestBody, RequestHead, Response};
use crate::serve::{stop_signalled, ConnInfo, Handler, ServeConfig};

/// One socket read; a typical request head arrives in one.
const READ_CHUNK: usize = 16 * 1024;
/// Reads inside a large body use bigger buffers: fewer syscalls per megabyte.
const BODY_READ_CHUNK: usize = 64 * 1024;
/// After a rejected request, how long and how much we keep reading (and discarding) so the
/// client reads our answer instead of a reset caused by its unread bytes.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;
/// A body the application left unread is drained (so the connection can be kept) only when
/// its rest arrives promptly and is at most this large; otherwise the connection closes.
const DRAIN_BYTES: u64 = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);
/// When a stop comes while a keep-alive connection is idle, how long it may still bring a
/// request: the client may have sent one an instant before it could know (RFC 9112 §9.6
/// warns of this race); answering it with `Connection: close` beats a reset.
const STOP_IDLE_GRACE: Duration = Duration::from_millis(500);
/// At most this many further chunks, or about this many bytes, go out in one writev.
const MAX_GATHER: usize = 32;
const MAX_GATHER_BYTES: usize = 256 * 1024;
/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The connection state shared by the driver and the request body.
struct Conn<S> {
    stream: S,
    rd: RefCell<Reader>,
    shared: Rc<ConnShared>,
    timeouts: Timeouts,
    /// Bytes of the `100 Continue` answer still to send before the body is read (0 = none
    /// owed).
    continue_owed: Cell<usize>,
    /// The current response's head has started to go out: a `100 Continue` would now be
    /// out of place.
    responding: Cell<bool>,
    /// A complete response waiting to be written with others (see [`crate::cork`]).
    held: RefCell<HeldWrite>,
    /// The header/keep-alive deadline timer and the deadline it is set for (see
    /// [`Conn::poll_deadline`]).
    deadline: RefCell<Option<(Pin<Box<Sleep>>, Instant)>>,
    /// The last response waited for the client to take bytes: its end is read from the clock
    /// rather than taken from the end of the application call.
    write_waited: Cell<bool>,
    /// Body bytes of the current response handed to the socket so far.
    body_sent: Cell<u64>,
}

/// The stop signal as a connection waits for it between requests: one registration kept for
/// the connection's life, where a fresh `changed()` per request took a lock to join the
/// waiter list and another to leave it.
struct StopWait {
    rx: watch::Receiver<bool>,
    changed: Option<Pin<Box<dyn Future<Output = bool>>>>,
}

impl StopWait {
    fn new(rx: &watch::Receiver<bool>) -> Self {
        StopWait {
            rx: rx.clone(),
            changed: None,
        }
    }

    /// Ready(true) when the value changed, Ready(false) when the sender is gone.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let rx = &self.rx;
        let changed = self.changed.get_or_insert_with(|| {
            let mut rx = rx.clone();
            Box::pin(async move { rx.changed().await.is_ok() })
        });
        let res = changed.as_mut().poll(cx);
        if res.is_ready() {
            // A finished future must not be polled again; a later wait starts a new one.
            self.changed = None;
        }
        res
    }
}

/// A response handed to [`crate::cork`]: the connection's task moves on (to read the next
/// request) and learns how the write went at its next use of the socket.
#[derive(Default)]
struct HeldWrite {
    state: Held,
    head: Vec<u8>,
    body: Bytes,
    /// The task waiting to read on this connection, woken if the write needs it.
    waker: Option<Waker>,
}

#[derive(Default)]
enum Held {
    /// Nothing held (`head` may keep a buffer for reuse).
    #[default]
    Idle,
    /// Waiting in the queue to be written.
    Queued,
    /// The flush wrote this many bytes; the socket took no more. The task writes the rest.
    Partial(usize),
    /// The flush failed; the connection is over.
    Failed(io::Error),
}

impl<S: Socket> cork::Held for Conn<S> {
    fn write_held(&self) {
        let mut held = self.held.borrow_mut();
        if !matches!(held.state, Held::Queued) {
            // Already written by the task itself (it needed the socket first).
            return;
        }
        let total = held.head.len() + held.body.len();
        let bufs = [IoSlice::new(&held.head), IoSlice::new(&held.body)];
        held.state = match self.stream.try_write_vectored(&bufs) {
            Ok(n) if n >= total => {
                held.head.clear();
                held.body = Bytes::new();
                Held::Idle
            }
            Ok(n) => Held::Partial(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Held::Partial(0),
            Err(e) => Held::Failed(e),
        };
        if !matches!(held.state, Held::Idle) {
            if let Some(waker) = held.waker.take() {
                waker.wake();
            }
        }
    }
}

struct Reader {
    buf: BytesMut,
    guard: Guard,
    /// The buffer holds bytes the guard has not judged since they arrived.
    unscanned: bool,
    eof: bool,
    /// The current request's body is read to its end (or it has none).
    body_done: bool,
    body_failed: Option<BodyError>,
    /// The body-stall deadline, re-armed on every byte.
    stall: Option<Pin<Box<Sleep>>>,
    stall_armed: bool,
    /// Scratch: where the payload is among the bytes the guard released.
    data: Vec<(usize, usize)>,
}

enum HeadRead {
    Head(RequestHead),
    /// End of the connection: EOF, a deadline, an I/O error or a stop.
    Close,
    Reject(Reject),
}

/// What the response writer needs to know about the request.
#[derive(Clone, Copy)]
struct ReqFacts {
    is_head: bool,
    http10: bool,
    http10_keep_alive: bool,
}

/// How the body is delimited on the wire (RFC 9112 §6.1–§6.3).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body at all (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the body ends with the connection.
    Eof,
}

/// Drive one connection to its end.
pub(crate) async fn drive<S, H>(
    stream: S,
    info: Rc<ConnInfo>,
    handler: Rc<H>,
    cfg: ServeConfig,
    stop: watch::Receiver<bool>,
) where
    S: Socket,
    H: Handler,
{
    let accepted = Instant::now();
    let mut stop_wait = StopWait::new(&stop);
    let conn = Rc::new(Conn {
        stream,
        rd: RefCell::new(Reader {
            buf: BytesMut::with_capacity(READ_CHUNK),
            guard: Guard::new(cfg.limits),
            unscanned: false,
            eof: false,
            body_done: true,
            body_failed: None,
            stall: None,
            stall_armed: false,
            data: Vec::new(),
        }),
        shared: info.shared.clone(),
        timeouts: cfg.timeouts,
        continue_owed: Cell::new(0),
        responding: Cell::new(false),
        held: RefCell::new(HeldWrite::default()),
        deadline: RefCell::new(None),
        write_waited: Cell::new(false),
        body_sent: Cell::new(0),
    });
    let keep_alive = !cfg.timeouts.keep_alive.is_zero();
    let mut wbuf: Vec<u8> = Vec::with_capacity(512);
    // When the connection was last seen busy: the keep-alive wait counts from here.
    let mut idle_from = accepted;
    let mut first = true;
    loop {
        let head = match conn
            .read_head(first, accepted, idle_from, &stop, &mut stop_wait)
            .await
        {
            HeadRead::Head(head) => head,
            HeadRead::Close => break,
            HeadRead::Reject(reject) => {
                conn.answer_reject(reject).await;
                return;
            }
        };
        first = false;
        let facts = ReqFacts {
            is_head: head.is_head(),
            http10: head.http10(),
            http10_keep_alive: head.http10_keep_alive(),
        };
        let wants_close = head.wants_close();
        let body = conn.start_request(&head);
        // The access log's view of the request, taken before the handler owns the head.
        let pending = cfg.access_log.as_ref().map(|_| Pending::new(&head));
        info.shared.request_started();
        let started = cork::before_call();
        let resp = handler.call(Request { head, body }, &info).await;
        let done = cork::call_done(started);
        let close = wants_close || !keep_alive || stop_signalled(&stop);
        let logged = match (&cfg.access_log, pending) {
            (Some(log), Some(pending)) => Some((log, pending.responded(log, &resp))),
            _ => None,
        };
        conn.body_sent.set(0);
        let written = conn
            .write_response(&conn, resp, facts, close, &mut wbuf, done)
            .await;
        info.shared.request_finished();
        if let Some((log, record)) = logged {
            record.write(log, &info.remote.ip, conn.body_sent.get());
        }
        match written {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        // The response went out with the call's end as "now", unless it had to wait.
        idle_from = if conn.write_waited.replace(false) {
            Instant::now()
        } else {
            done.into()
        };
        if !conn.finish_body().await {
            conn.linger().await;
            return;
        }
    }
    // Dropping the last `Conn` closes the socket, which sends our FIN after whatever is still
    // queued: a separate shutdown(2) would add a system call per connection and protect
    // nothing (unread input makes close(2) reset the connection either way). Only when
    // something else still holds the connection (the write-coalescing queue until its next
    // flush) is the FIN sent now, so a client reading to the end is not kept waiting.
    if conn.settle_held(&mut wbuf).await.is_ok() && Rc::strong_count(&conn) > 1 {
        conn.shutdown_write();
    }
}

impl<S: Socket> Conn<S> {
    /// Read from the socket into the buffer.
    fn poll_fill(
        &self,
        rd: &mut Reader,
        cx: &mut Context<'_>,
        chunk: usize,
    ) -> Poll<io::Result<usize>> {
        if rd.buf.capacity() - rd.buf.len() < chunk / 4 {
            rd.buf.reserve(chunk);
        }
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let room = rd.buf.capacity() - rd.buf.len();
            match self.stream.try_read_buf(&mut rd.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) if n > 0 && n < room => {
                    // A short read emptied the socket. Without this the next read would be a
                    // wasted recv(2) returning EAGAIN before waiting (one per request on a
                    // keep-alive connection). Safe on this single-threaded runtime: bytes
                    // arriving from now on raise a new readiness event, which the reactor
                    // records after this.
                    self.stream.clear_read_ready();
                    return Poll::Ready(Ok(n));
                }
                res => return Poll::Ready(res),
            }
        }
    }

    /// Wait for the next request head. The first must arrive within the header timeout of
    /// accept; later ones within the keep-alive timeout of the last response (idle), then
    /// within the header timeout of their first byte.
    ///
    /// A head usually arrives whole in one read: the header deadline is only worked out (from
    /// the clock) when a part of one has to be waited for.
    async fn read_head(
        &self,
        first: bool,
        accepted: Instant,
        idle_from: Instant,
        stop: &watch::Receiver<bool>,
        stop_wait: &mut StopWait,
    ) -> HeadRead {
        let t = self.timeouts;
        let mut in_head = first || !self.rd.borrow().buf.is_empty();
        let mut stopping = false;
        // None: the header timeout, counted from when the wait starts.
        let mut deadline = if first {
            Some(accepted + t.header)
        } else if in_head {
            None
        } else {
            Some(idle_from + t.keep_alive)
        };
        loop {
            {
                let rd = &mut *self.rd.borrow_mut();
                if rd.guard.is_closed() {
                    return HeadRead::Close;
                }
                if rd.unscanned && !rd.buf.is_empty() {
                    rd.unscanned = false;
                    match rd.guard.scan(&rd.buf) {
                        Ok(0) => {}
                        Ok(n) => {
                            let Some(info) = rd.guard.take_head() else {
                                return HeadRead::Close;
                            };
                            let bytes = Bytes::copy_from_slice(&rd.buf[..n]);
                            rd.buf.advance(n);
                            rd.unscanned = true;
                            return HeadRead::Head(RequestHead::new(bytes, info));
                        }
                        Err(reject) => return HeadRead::Reject(reject),
                    }
                }
                if rd.eof {
                    return HeadRead::Close;
                }
            }
            if !in_head && !stopping && stop_signalled(stop) {
                // Stopping, between requests. A request the client has already sent, or
                // sends within a short grace, is served (with `Connection: close`) rather
                // than dropped: closing on bytes in flight would cut off a client that did
                // nothing wrong.
                stopping = true;
                let now = Instant::now();
                if self.peer_sent_bytes() {
                    in_head = true;
                    deadline = Some(now + t.header);
                } else {
                    let grace = now + STOP_IDLE_GRACE;
                    deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
                }
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + t.header);
            let fill = poll_fn(|cx| {
                if self.held_needs_task(cx) {
                    return Poll::Ready(None);
                }
                let rd = &mut *self.rd.borrow_mut();
                self.poll_fill(rd, cx, READ_CHUNK).map(Some)
            });
            let got = tokio::select! {
                biased;
                res = fill => match res {
                    Some(res) => Some(res),
                    None => {
                        // The previous response's flush left work (the client's socket
                        // was full) or failed.
                        if self.settle_held(&mut Vec::new()).await.is_err() {
                            return HeadRead::Close;
                        }
                        continue;
                    }
                },
                changed = poll_fn(|cx| stop_wait.poll(cx)), if !in_head && !stopping => {
                    if !changed {
                        return HeadRead::Close;
                    }
                    continue;
                }
                () = poll_fn(|cx| self.poll_deadline(until, cx)) => None,
            };
            let rd = &mut *self.rd.borrow_mut();
            match got {
                None | Some(Err(_)) => return HeadRead::Close,
                Some(Ok(0)) => rd.eof = true,
                Some(Ok(_)) => {
                    rd.unscanned = true;
                    if !in_head {
                        in_head = true;
                        deadline = None;
                    }
                }
            }
        }
    }

    /// Ready once `deadline` has passed.
    ///
    /// One timer serves the connection's life. Registering a tokio timer takes the driver's
    /// lock and a wheel insert, and dropping it another: per request that was about 700
    /// instructions of some 27,000 for a small response. Deadlines mostly move later (each
    /// request pushes the keep-alive wait out), so the timer stays set for the old one and,
    /// when it fires early, is moved to the current one; it is moved at once only when the
    /// deadline comes earlier than the one it is set for.
    fn poll_deadline(&self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.deadline.borrow_mut();
        let (timer, set_for) =
            slot.get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), deadline));
        if *set_for > deadline {
            timer.as_mut().reset(deadline);
            *set_for = deadline;
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if *set_for >= deadline => return Poll::Ready(()),
                Poll::Ready(()) => {
                    timer.as_mut().reset(deadline);
                    *set_for = deadline;
                }
            }
        }
    }

    /// Set up the body of a request whose head was just read.
    fn start_request(self: &Rc<Self>, head: &RequestHead) -> RequestBody {
        self.responding.set(false);
        let has_body = head.has_body();
        {
            let rd = &mut *self.rd.borrow_mut();
            rd.body_done = !has_body;
            rd.body_failed = None;
            rd.stall_armed = false;
        }
        if !has_body {
            return RequestBody::empty();
        }
        // HTTP/1.0 clients do not know 100 Continue (RFC 9110 §10.1.1).
        if head.expects_continue() && !head.http10() {
            self.continue_owed.set(CONTINUE.len());
        }
        RequestBody::new(self.clone() as Rc<dyn BodySource>)
    }

    /// Send what is owed of `100 Continue`.
    fn poll_continue(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_owed.get() > 0 {
            // A held response to the previous request goes before this interim one.
            match self.poll_settle_held(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if self.responding.get() {
                // The final response is already going out: no interim answer any more.
                self.continue_owed.set(0);
                break;
            }
            let owed = self.continue_owed.get();
            let rest = &CONTINUE[CONTINUE.len() - owed..];
            match self.stream.try_write_vectored(&[IoSlice::new(rest)]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.continue_owed.set(owed - n.min(owed)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The next piece of the current request's body.
    fn poll_body(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        match self.poll_continue(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Some(Err(BodyError::Broken))),
            Poll::Pending => return Poll::Pending,
        }
        let rd = &mut *self.rd.borrow_mut();
        loop {
            if let Some(e) = rd.body_failed {
                return Poll::Ready(Some(Err(e)));
            }
            if rd.body_done {
                return Poll::Ready(None);
            }
            if rd.unscanned && !rd.buf.is_empty() {
                rd.unscanned = false;
                rd.data.clear();
                match rd.guard.scan_data(&rd.buf, &mut rd.data) {
                    Ok(0) => {}
                    Ok(n) => {
                        let chunk = payload(&rd.buf[..n], &rd.data);
                        rd.buf.advance(n);
                        rd.unscanned = true;
                        if rd.guard.phase() != Phase::Body {
                            rd.body_done = true;
                        }
                        if !chunk.is_empty() {
                            return Poll::Ready(Some(Ok(chunk)));
                        }
                        continue;
                    }
                    Err(reject) => {
                        self.shared.reject.set(Some(reject));
                        rd.body_failed = Some(BodyError::Rejected(reject.status));
                        continue;
                    }
                }
            }
            if rd.eof {
                // The client closed inside the body: the request is truncated (400).
                let reject = rd.guard.at_eof().err().unwrap_or(Reject::INCOMPLETE_BODY);
                self.shared.reject.set(Some(reject));
                rd.body_failed = Some(BodyError::Rejected(reject.status));
                continue;
            }
            match self.poll_fill(rd, cx, BODY_READ_CHUNK) {
                Poll::Ready(Ok(0)) => rd.eof = true,
                Poll::Ready(Ok(_)) => {
                    rd.unscanned = true;
                    // Progress: the stall deadline starts again.
                    rd.stall_armed = false;
                }
                Poll::Ready(Err(_)) => rd.body_failed = Some(BodyError::Broken),
                Poll::Pending => {
                    let until = Instant::now() + self.timeouts.body_stall;
                    let armed = rd.stall_armed;
                    let sleep = rd
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if !armed {
                        sleep.as_mut().reset(until);
                        rd.stall_armed = true;
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        rd.body_failed = Some(BodyError::Broken);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// After the response: read the unread rest of the body, if that is cheap, so the
    /// connection can carry the next request. False when it must close instead.
    async fn finish_body(&self) -> bool {
        {
            let rd = self.rd.borrow();
            if rd.body_failed.is_some() {
                return false;
            }
            if rd.body_done {
                return true;
            }
        }
        if self.continue_owed.get() > 0 {
            // The client waits for our go-ahead and has sent no body: the framing of what it
            // sends next is unknowable (RFC 9110 §10.1.1 lets us close).
            return false;
        }
        let drain = async {
            let mut drained: u64 = 0;
            while let Some(chunk) = poll_fn(|cx| self.poll_body(cx)).await {
                match chunk {
                    Ok(bytes) => {
                        drained += bytes.len() as u64;
                        if drained > DRAIN_BYTES {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_TIME, drain)
            .await
            .unwrap_or(false)
    }

    /// Write a response. `Ok(true)` when the connection may carry another request.
    async fn write_response<B>(
        &self,
        me: &Rc<Self>,
        resp: Response<B>,
        req: ReqFacts,
        close_wanted: bool,
        wbuf: &mut Vec<u8>,
        now: std::time::Instant,
    ) -> io::Result<bool>
    where
        B: Body,
    {
        let Response {
            status,
            reason,
            headers,
            close,
            body,
        } = resp;
        let mut body = pin!(body);
        let mut close = close || close_wanted;
        let no_content = status == 204 || status == 304 || status < 200;
        let declared = headers.content_length();
        let exact = body.exact_len();
        let mut add_length = None;
        let framing = if req.is_head || no_content {
            // A HEAD response may tell the length a GET would have had (RFC 9110 §9.3.2).
            if req.is_head && !no_content && declared.is_none() {
                add_length = exact;
            }
            Framing::None
        } else if let Some(n) = declared {
            Framing::Length(n)
        } else if let Some(n) = exact {
            add_length = Some(n);
            Framing::Length(n)
        } else if !req.http10 {
            Framing::Chunked
        } else {
            // RFC 9112 §6.3: without a length, an HTTP/1.0 body ends when the connection does.
            close = true;
            Framing::Eof
        };
        if req.http10 && !req.http10_keep_alive {
            close = true;
        }

        // A response still held from the previous request (pipelining) goes first.
        self.settle_held(wbuf).await?;
        self.responding.set(true);
        wbuf.clear();
        encode_status(wbuf, status, reason.as_deref());
        wbuf.extend_from_slice(headers.as_bytes());
        if let Some(n) = add_length {
            wbuf.extend_from_slice(b"content-length: ");
            wbuf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            wbuf.extend_from_slice(b"\r\n");
        }
        if framing == Framing::Chunked {
            wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            wbuf.extend_from_slice(b"connection: close\r\n");
        } else if req.http10 {
            wbuf.extend_from_slice(b"connection: keep-alive\r\n");
        }
        if !headers.has_server() {
            wbuf.extend_from_slice(b"Server: bourbon\r\n");
        }
        if !headers.has_date() {
            wbuf.extend_from_slice(b"date: ");
            push_date(wbuf, now);
            wbuf.extend_from_slice(b"\r\n");
        }
        wbuf.extend_from_slice(b"\r\n");
        drop(headers);

        if framing == Framing::None {
            // The body is never polled: HEAD and 204/304 responses have none on the wire.
            if close {
                self.write_all(&mut [IoSlice::new(wbuf)]).await?;
            } else {
                self.write_last(me, wbuf, Bytes::new()).await?;
            }
            return Ok(!close);
        }
        let chunked = framing == Framing::Chunked;
        // What the declared Content-Length still allows: a longer body is cut (PEP 3333 lets
        // the server truncate, and the framing stays right), a shorter one closes the
        // connection (RFC 9112 §6.3: the client would wait for bytes that never come).
        let mut owed = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        // A chunk polled while gathering that could not join the batch (a file region, the
        // end, an error): it is handled first in the next round.
        let mut next = None;
        loop {
            let polled = match next.take() {
                Some(polled) => polled,
                None => poll_fn(|cx| body.as_mut().poll_chunk(cx)).await,
            };
            let chunk = match polled {
                None => break,
                Some(Err(_)) => {
                    // The body failed (app error mid-response): send what we have and close,
                    // so the client sees the response cut off.
                    let _ = self.write_all(&mut [IoSlice::new(wbuf)]).await;
                    return Ok(false);
                }
                Some(Ok(chunk)) => match limit(chunk, &mut owed) {
                    Some(chunk) => chunk,
                    None if owed == Some(0) => break,
                    None => continue,
                },
            };
            let data = match chunk {
                Chunk::File(region) => {
                    if chunked {
                        push_chunk_size(wbuf, usize::try_from(region.len).unwrap_or(usize::MAX));
                    }
                    self.write_all(&mut [IoSlice::new(wbuf)]).await?;
                    wbuf.clear();
                    self.send_region(&region).await?;
                    self.add_sent(region.len);
                    if chunked {
                        wbuf.extend_from_slice(b"\r\n");
                    }
                    continue;
                }
                Chunk::Data(data) => data,
            };
            self.add_sent(data.len() as u64);
            if chunked {
                push_chunk_size(wbuf, data.len());
            }
            let mut end = owed == Some(0) || body.is_end_stream();
            // Chunks the application has already produced go out together, in one writev:
            // PEP 3333 forbids holding a block back, not sending the ready ones at once.
            let mut more: Vec<Bytes> = Vec::new();
            let mut seps: Vec<u8> = Vec::new();
            let mut gathered = data.len();
            while !end && more.len() < MAX_GATHER && gathered < MAX_GATHER_BYTES {
                let polled = poll_fn(|cx| Poll::Ready(body.as_mut().poll_chunk(cx))).await;
                let polled = match polled {
                    Poll::Pending => break,
                    Poll::Ready(polled) => polled,
                };
                match polled {
                    Some(Ok(chunk)) => match limit(chunk, &mut owed) {
                        None => end = owed == Some(0) || body.is_end_stream(),
                        Some(chunk @ Chunk::File(_)) => {
                            next = Some(Some(Ok(chunk)));
                            break;
                        }
                        Some(Chunk::Data(d)) => {
                            self.add_sent(d.len() as u64);
                            gathered += d.len();
                            if chunked {
                                seps.extend_from_slice(b"\r\n");
                                push_chunk_size(&mut seps, d.len());
                            }
                            more.push(d);
                            end = owed == Some(0) || body.is_end_stream();
                        }
                    },
                    None => end = true,
                    Some(Err(e)) => {
                        next = Some(Some(Err(e)));
                        break;
                    }
                }
            }
            let short = end && length_short(owed);
            let tail: &[u8] = match (chunked, end) {
                (true, true) => b"\r\n0\r\n\r\n",
                (true, false) => b"\r\n",
                (false, _) => b"",
            };
            if more.is_empty() && end && !close && !short && tail.is_empty() {
                // The whole response, and the connection stays: it may wait for company.
                self.write_last(me, wbuf, data).await?;
            } else if more.is_empty() {
                self.write_all(&mut [IoSlice::new(wbuf), IoSlice::new(&data), IoSlice::new(tail)])
                    .await?;
            } else {
                let mut bufs = Vec::with_capacity(3 + 2 * more.len());
                bufs.push(IoSlice::new(wbuf));
                bufs.push(IoSlice::new(&data));
                let mut rest = &seps[..];
                for d in &more {
                    if chunked {
                        // "\r\n" + hex size + "\r\n" before each further chunk.
                        let len = 2 + hex_len(d.len()) + 2;
                        let (sep, after) = rest.split_at(len.min(rest.len()));
                        bufs.push(IoSlice::new(sep));
                        rest = after;
                    }
                    bufs.push(IoSlice::new(d));
                }
                bufs.push(IoSlice::new(tail));
                self.write_all(&mut bufs).await?;
            }
            wbuf.clear();
            if end {
                return Ok(!close && !short && framing != Framing::Eof);
            }
        }
        if chunked {
            wbuf.extend_from_slice(b"0\r\n\r\n");
        }
        self.write_all(&mut [IoSlice::new(wbuf)]).await?;
        Ok(!close && !length_short(owed) && framing != Framing::Eof)
    }

    /// Write a whole response (`head`, then `body`) on a connection that stays open: held to
    /// go out together with others when this thread is busy (see [`crate::cork`]), else at
    /// once. Either way `head`'s buffer comes back for the next response (see
    /// [`Conn::settle_held`]).
    async fn write_last(&self, me: &Rc<Self>, head: &mut Vec<u8>, body: Bytes) -> io::Result<()> {
        if head.len() + body.len() > cork::HOLD_MAX_BYTES {
            return self
                .write_all(&mut [IoSlice::new(head), IoSlice::new(&body)])
                .await;
        }
        {
            let mut held = self.held.borrow_mut();
            debug_assert!(matches!(held.state, Held::Idle));
            std::mem::swap(&mut held.head, head);
            held.body = body;
            held.state = Held::Queued;
        }
        if cork::hold(me.clone()) {
            return Ok(());
        }
        // Not held (the thread was idle, or holding is off): write it now.
        self.settle_held(head).await
    }

    /// Before anything else goes out on this connection (or it closes): make sure a held
    /// response is written completely, writing it here if the flush has not come yet. Hands
    /// the held response's buffer back into `spare` when that is empty.
    async fn settle_held(&self, spare: &mut Vec<u8>) -> io::Result<()> {
        if matches!(self.held.borrow().state, Held::Idle) {
            self.reclaim_held(spare);
            return Ok(());
        }
        self.write_waited.set(true);
        let done = poll_fn(|cx| self.poll_settle_held(cx));
        let res = match tokio::time::timeout(self.timeouts.write, done).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading (write timeout)",
            )),
        };
        self.reclaim_held(spare);
        res
    }

    fn reclaim_held(&self, spare: &mut Vec<u8>) {
        if spare.capacity() == 0 {
            let mut held = self.held.borrow_mut();
            if matches!(held.state, Held::Idle) {
                std::mem::swap(&mut held.head, spare);
            }
        }
    }

    /// Drive a held response out: write it if still queued, or its rest after a partial
    /// flush, waiting for room as needed; report a failed flush.
    fn poll_settle_held(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use cork::Held as _;
        if matches!(self.held.borrow().state, Held::Queued) {
            self.write_held();
        }
        loop {
            let mut held = self.held.borrow_mut();
            let held = &mut *held;
            let done = match std::mem::take(&mut held.state) {
                Held::Idle => return Poll::Ready(Ok(())),
                // Not reached (written just above); counts as nothing written yet.
                Held::Queued => 0,
                Held::Partial(n) => n,
                Held::Failed(e) => {
                    held.head.clear();
                    held.body = Bytes::new();
                    return Poll::Ready(Err(e));
                }
            };
            let mut bufs = [IoSlice::new(&held.head), IoSlice::new(&held.body)];
            let mut rest = &mut bufs[..];
            IoSlice::advance_slices(&mut rest, done);
            if rest.is_empty() {
                held.state = Held::Idle;
                held.head.clear();
                held.body = Bytes::new();
                return Poll::Ready(Ok(()));
            }
            match self.stream.try_write_vectored(rest) {
                Ok(0) => held.state = Held::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => held.state = Held::Partial(done + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    held.state = Held::Partial(done);
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => held.state = Held::Failed(e),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => held.state = Held::Failed(e),
            }
        }
    }

    /// Whether a held response needs this connection's task (a partial or failed flush);
    /// while it waits in the queue, remember who to wake if it will.
    fn held_needs_task(&self, cx: &Context<'_>) -> bool {
        let mut held = self.held.borrow_mut();
        match held.state {
            Held::Idle => false,
            Held::Queued => {
                if !held.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    held.waker = Some(cx.waker().clone());
                }
                false
            }
            Held::Partial(_) | Held::Failed(_) => true,
        }
    }

    /// Write all of `bufs`, waiting for room at most the write timeout at a time.
    async fn write_all(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match self.stream.try_write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Wait until the socket takes more bytes; a client that reads nothing for the write
    /// timeout loses the connection (it must not pin a response, and a Python thread, forever).
    async fn writable(&self) -> io::Result<()> {
        self.write_waited.set(true);
        let ready = poll_fn(|cx| self.stream.poll_write_ready(cx));
        match tokio::time::timeout(self.timeouts.write, ready).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading (write timeout)",
            )),
        }
    }

    /// Send a file region with sendfile(2): the bytes go from the page cache to the socket
    /// without passing through this process. (An earlier build copied regions through a
    /// buffer for clients on this machine; measured again with static files on loopback, one
    /// worker, c=16, sendfile(2) served 1 MiB files at about 1.7x and 3 MiB files at 1.4x
    /// the copy's rate, level with nginx, which uses it too.)
    async fn send_region(&self, region: &FileRegion) -> io::Result<()> {
        let mut offset = region.offset;
        let mut left = region.len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let sent = self
                .stream
                .try_sendfile(region.file.as_raw_fd(), offset, want);
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than its Content-Length",
                    ))
                }
                Ok(n) => {
                    offset += n as u64;
                    left -= (n as u64).min(left);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Count body bytes handed to the socket (for the access log).
    fn add_sent(&self, n: u64) {
        self.body_sent.set(self.body_sent.get() + n);
    }

    /// Answer a rejected request with its short 4xx and close gracefully.
    async fn answer_reject(&self, reject: Reject) {
        if self.settle_held(&mut Vec::new()).await.is_err() {
            return;
        }
        let bytes = reject.response_bytes();
        if self.write_all(&mut [IoSlice::new(&bytes)]).await.is_ok() {
            self.linger().await;
        }
    }

    /// Close our side, then read and discard what the client still sends, for a bounded
    /// time and amount, so our last answer is not destroyed by a TCP reset (RFC 9112 §9.6).
    async fn linger(&self) {
        if self.settle_held(&mut Vec::new()).await.is_err() {
            return;
        }
        self.shutdown_write();
        let discard = async {
            let mut seen = 0usize;
            loop {
                let res = poll_fn(|cx| {
                    let rd = &mut *self.rd.borrow_mut();
                    rd.buf.clear();
                    self.poll_fill(rd, cx, READ_CHUNK)
                })
                .await;
                match res {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        seen += n;
                        if seen > LINGER_BYTES {
                            break;
                        }
                    }
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, discard).await;
    }

    /// Whether the client's bytes wait in the socket (checked by the kernel, not by the
    /// runtime's cached readiness, which may not have seen them yet).
    fn peer_sent_bytes(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let sock = socket2::SockRef::from(&self.stream);
        matches!(sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT), Ok(n) if n > 0)
    }

    fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

impl<S: Socket> BodySource for Conn<S> {
    fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.poll_body(cx)
    }
}

/// Apply the declared length to a chunk: what goes beyond it is dropped (logged once per
/// response, when the cut happens). `None` when nothing of the chunk is left to send.
fn limit(chunk: Chunk, owed: &mut Option<u64>) -> Option<Chunk> {
    let Some(left) = owed.as_mut() else {
        return (!chunk.is_empty()).then_some(chunk);
    };
    let len = chunk.len();
    let chunk = if len > *left {
        if *left > 0 || len > 0 {
            crate::log::warn(format_args!(
                "response body longer than its Content-Length; extra bytes dropped"
            ));
        }
        match chunk {
            Chunk::Data(mut d) => {
                d.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                Chunk::Data(d)
            }
            Chunk::File(mut r) => {
                r.len = *left;
                Chunk::File(r)
            }
        }
    } else {
        chunk
    };
    *left -= chunk.len();
    (!chunk.is_empty()).then_some(chunk)
}

/// Whether a body ended short of its declared length; logged, since the connection must then
/// close (RFC 9112 §6.3).
fn length_short(owed: Option<u64>) -> bool {
    match owed {
        Some(n) if n > 0 => {
            crate::log::warn(format_args!(
                "response body shorter than its Content-Length by {n} bytes; closing the connection"
            ));
            true
        }
        _ => false,
    }
}

/// The payload among `released` bytes: one range is copied as is, several (chunked) are
/// joined.
fn payload(released: &[u8], ranges: &[(usize, usize)]) -> Bytes {
    match ranges {
        [] => Bytes::new(),
        [(a, b)] => Bytes::copy_from_slice(&released[*a..*b]),
        many => {
            let total = many.iter().map(|(a, b)| b - a).sum();
            let mut out = BytesMut::with_capacity(total);
            for (a, b) in many {
                out.extend_from_slice(&released[*a..*b]);
            }
            out.freeze()
        }
    }
}

/// The status line (RFC 9112 §4).
fn encode_status(out: &mut Vec<u8>, status: u16, reason: Option<&[u8]>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    match reason {
        Some(r) => out.extend_from_slice(r),
        None => {
            let canonical = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            out.extend_from_slice(canonical.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Digits of `len` in hexadecimal (as `push_chunk_size` writes them).
fn hex_len(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(4).max(1)
}

fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The IMF-fixdate of the current second, and the instant the second ends.
struct DateCache {
    until: Option<std::time::Instant>,
    text: [u8; 29],
}

thread_local! {
    static DATE_CACHE: RefCell<DateCache> = const {
        RefCell::new(DateCache { until: None, text: [b' '; 29] })
    };
}

/// Append the date at `now` (a recent instant) as an HTTP-date (RFC 9110 §5.6.7). The
/// calendar clock is read and the text formatted once a second, not per response.
fn push_date(out: &mut Vec<u8>, now: std::time::Instant) {
    DATE_CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let text = httpdate::fmt_http_date(wall);
            if text.len() == 29 {
                cache.text.copy_from_slice(text.as_bytes());
                let left = Duration::from_secs(1) - Duration::from_nanos(u64::from(into_second));
                cache.until = Some(std::time::Instant::now() + left);
            }
        }
        out.extend_from_slice(&cache.text);
    });
}

#[cfg(test)]
mod tests {
    use super::push_chunk_size;

    #[test]
    fn hex_len_counts_digits() {
        for n in [0usize, 1, 15, 16, 255, 256, 4095, 4096, 1 << 20, usize::MAX] {
            let mut out = Vec::new();
            super::push_chunk_size(&mut out, n);
            assert_eq!(super::hex_len(n), out.len() - 2, "{n}");
        }
    }

    #[test]
    fn chunk_sizes_are_lower_hex() {
        for (n, want) in [
            (0usize, "0\r\n"),
            (13, "d\r\n"),
            (4096, "1000\r\n"),
            (1 << 20, "100000\r\n"),
        ] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, n);
            assert_eq!(out, want.as_bytes());
        }
    }
}
