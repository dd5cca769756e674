//! The HTTP/1.1 connection driver: one task per connection, on the request guard's parser.
//!
//! This module owns the life of a connection: read a request head (the [`Guard`] validates
//! and locates its parts in one pass, RFC 9112 §2–§6), answer it at once if it is a health
//! probe ([`crate::layer::health`]), else hand the request to the [`Handler`],
//! read the body when the handler pulls it (answering `Expect: 100-continue` on the first
//! pull, RFC 9110 §10.1.1), write the response with the framing it needs (RFC 9112 §6:
//! `Content-Length`, chunked, or close-delimited for HTTP/1.0), then go on with the next
//! request on the same connection or close it. It also owns the connection's deadlines
//! (header, keep-alive, body stall, write), the short 4xx answer and lingering close after a
//! rejected request, and sendfile(2) for file regions in a response body.
//!
//! One concern per file: this one holds the connection's state and its loop ([`drive`]);
//! `read.rs` reads request heads and keeps the deadlines, `body.rs` the request body and
//! `100 Continue`, `write.rs` frames and writes responses (file regions included),
//! `held.rs` the responses held to be written together (see [`crate::cork`]), `reject.rs`
//! the answer to a rejected request and the lingering close, `encode.rs` the bytes of status
//! lines, chunk sizes and dates.
//!
//! Why our own driver rather than hyper's: the guard must see every byte first anyway (gunicorn's
//! limits and error answers, no request smuggling), and with hyper behind it each head was
//! parsed twice and copied into a `HeaderMap` nobody needed; the WSGI environ is built straight
//! from the guard's offsets instead. The driver is sequential: one request at a time per
//! connection, responses in order, which is what HTTP/1.1 allows (§9.3.2).

mod body;
mod encode;
mod held;
mod read;
mod reject;
mod upgrade;
mod write;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::access_log::{Pending, Responded, Scratch};
use crate::cork;
use crate::guard::{Guard, Reject};
use crate::io::{ConnShared, LiveGuard, Socket, Switched, Timeouts, Upgraded};
use crate::layer::forwarded::{self, Applied, ForwardState};
use crate::request::{
    BodyError, Interim, InterimSink, PeerSource, PeerWatch, Request, RequestHead,
};
use crate::serve::{stop_signalled, ConnInfo, Handler, ServeConfig};

use held::HeldWrite;

/// One socket read; a typical request head arrives in one.
const READ_CHUNK: usize = 16 * 1024;

/// When a stop comes while a keep-alive connection is idle, how long it may still bring a
/// request: the client may have sent one an instant before it could know (RFC 9112 §9.6
/// warns of this race); answering it with `Connection: close` beats a reset.
const STOP_IDLE_GRACE: Duration = Duration::from_millis(500);

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
    /// A TCP connection (TCP_CORK applies).
    tcp: bool,
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

/// How a connection starts: when it was accepted (the first head's deadline counts from
/// there), whether it is TCP, and bytes already read from it (after a PROXY header).
pub(crate) struct Start {
    pub accepted: Instant,
    pub tcp: bool,
    pub initial: BytesMut,
}

/// Drive one connection to its end. `live` counts it among the worker's connections; after
/// a `101` it goes with the connection to the handler (S1 in the ASGI design), so a graceful
/// stop waits for the switched connection too.
pub(crate) async fn drive<S, H>(
    stream: S,
    info: Rc<ConnInfo>,
    handler: Rc<H>,
    cfg: ServeConfig,
    stop: watch::Receiver<bool>,
    live: LiveGuard,
    start: Start,
) where
    S: Socket,
    H: Handler,
{
    let accepted = start.accepted;
    let _open = crate::metrics::connection_opened();
    let mut stop_wait = StopWait::new(&stop);
    let conn = Rc::new(Conn::new(
        stream,
        &cfg,
        info.shared.clone(),
        start.tcp,
        start.initial,
    ));
    let mut forward_state = ForwardState::default();
    let keep_alive = !cfg.timeouts.keep_alive.is_zero();
    let mut wbuf: Vec<u8> = Vec::with_capacity(512);
    // When the connection was last seen busy: the keep-alive wait counts from here.
    let mut idle_from = accepted;
    let mut first = true;
    // The access log's copy of each head, reused from one request to the next.
    let mut log_scratch = Scratch::default();
    loop {
        let head = match conn
            .read_head(first, accepted, idle_from, &stop, &mut stop_wait)
            .await
        {
            HeadRead::Head(head) => head,
            HeadRead::Close => break,
            HeadRead::Reject(reject) => {
                crate::metrics::rejected(reject.status);
                conn.answer_reject(reject).await;
                return;
            }
        };
        first = false;
        // When the head was read: the start of the request's duration and queue time.
        let arrived = crate::metrics::request_started();
        let mut head = head;
        head.set_arrived(arrived);
        // Proxy trust and the request id (layer/forwarded.rs): the head and the connection
        // as the application, and the access log, should see them.
        let Applied {
            head,
            conn: forwarded,
            request_id,
        } = forwarded::apply(&cfg.proxy, head, &info, &mut forward_state);
        let req_info = forwarded.as_ref().unwrap_or(&info);
        let facts = ReqFacts {
            is_head: head.is_head(),
            http10: head.http10(),
            http10_keep_alive: head.http10_keep_alive(),
        };
        let wants_close = head.wants_close();
        let method = if arrived == 0 {
            0
        } else {
            crate::metrics::method_index(head.method())
        };
        let body = conn.start_request(&head);
        // A health probe is answered here, before static files and before any interface's
        // handler: it never waits for an application thread or the GIL (see
        // `layer::health`), and it is not a request of the application's.
        if let Some(probe) = cfg
            .health
            .as_deref()
            .and_then(|h| h.answer(&head, || stop_signalled(&stop)))
        {
            drop(body);
            let pending = cfg
                .access_log
                .as_ref()
                .filter(|_| probe.log)
                .map(|_| Pending::new(&head, &mut log_scratch));
            let close = wants_close || !keep_alive || stop_signalled(&stop);
            let logged = match (&cfg.access_log, pending) {
                (Some(log), Some(pending)) => Some((log, pending.responded(log, &probe.response))),
                _ => None,
            };
            conn.body_sent.set(0);
            let now = std::time::Instant::now();
            let written = conn
                .write_response(&conn, probe.response, facts, close, &mut wbuf, now)
                .await;
            let done = Done {
                written,
                logged,
                now,
            };
            match done
                .settle(&conn, req_info, &mut log_scratch, &mut idle_from)
                .await
            {
                Next::Request => continue,
                Next::Close => break,
                Next::Gone => return,
            }
        }
        // The access log's view of the request, taken before the handler owns the head.
        let pending = cfg
            .access_log
            .as_ref()
            .map(|_| Pending::new(&head, &mut log_scratch));
        info.shared.request_started();
        let started = cork::before_call();
        // HTTP/1.0 clients get no informational responses (RFC 9110 §15.2).
        let interim = if facts.http10 {
            Interim::none()
        } else {
            Interim::new(conn.clone() as Rc<dyn InterimSink>)
        };
        let resp = handler
            .call(
                Request {
                    head,
                    body,
                    interim,
                    peer: PeerWatch::new(conn.clone() as Rc<dyn PeerSource>),
                },
                req_info,
            )
            .await;
        let done = cork::call_done(started);
        let mut resp = resp;
        if let (Some(id), Some(name)) = (&request_id, cfg.proxy.request_id.as_deref()) {
            // The response says which request it answers, unless the application did.
            if !resp.headers.has_field(name) {
                resp.headers.push_trusted(name, id.as_bytes());
            }
        }
        let close = wants_close || !keep_alive || stop_signalled(&stop);
        let logged = match (&cfg.access_log, pending) {
            (Some(log), Some(pending)) => Some((log, pending.responded(log, &resp))),
            _ => None,
        };
        // A switch of protocols (RFC 9110 §15.2.2): after the 101 the connection is the
        // handler's. HTTP/1.0 cannot switch (§7.8 applies to HTTP/1.1).
        let upgrade = match resp.upgrade.take() {
            Some(to) if resp.status == 101 && !facts.http10 => Some(to),
            _ => None,
        };
        let close = close && upgrade.is_none();
        let status = resp.status;
        conn.body_sent.set(0);
        let written = conn
            .write_response(&conn, resp, facts, close, &mut wbuf, done)
            .await;
        info.shared.request_finished();
        crate::metrics::request_done(arrived, method, status);
        if let Some(to) = upgrade {
            // The 101 must be on the wire before the new protocol's first byte. Its line is
            // written when the session ends, with what the session did (`SessionLog`).
            if written.is_ok() && conn.settle_held(&mut wbuf).await.is_ok() {
                let log = logged.map(|(log, record)| {
                    record.into_session(log.clone(), req_info.remote.clone(), req_info.scheme)
                });
                let _ = to.0.send(Switched {
                    io: conn.clone() as Rc<dyn Upgraded>,
                    live,
                    stop: stop.clone(),
                    log,
                });
            } else if let Some((log, record)) = logged {
                record.write(
                    log,
                    &req_info.remote,
                    req_info.scheme,
                    conn.body_sent.get(),
                    None,
                );
            }
            return;
        }
        let done = Done {
            written,
            logged,
            now: done,
        };
        match done
            .settle(&conn, req_info, &mut log_scratch, &mut idle_from)
            .await
        {
            Next::Request => {}
            Next::Close => break,
            Next::Gone => return,
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

/// What the driver does once a response is written.
enum Next {
    /// Read the next request.
    Request,
    /// Close the connection (the response said so, or writing failed).
    Close,
    /// The connection is over already (its request body could not be drained).
    Gone,
}

/// A response written (or not), with its access-log record and the time it went out: the
/// end every exchange shares, a health probe's and the application's alike.
struct Done<'a> {
    written: std::io::Result<bool>,
    logged: Option<(&'a std::sync::Arc<crate::access_log::AccessLog>, Responded)>,
    /// When the response was handed to the socket.
    now: std::time::Instant,
}

impl Done<'_> {
    /// Write the access-log line, then ready the connection for its next request: the
    /// keep-alive wait counts from the response's time unless the write had to wait, and the
    /// rest of an unread request body is drained first.
    async fn settle<S: Socket>(
        self,
        conn: &Rc<Conn<S>>,
        req_info: &ConnInfo,
        log_scratch: &mut Scratch,
        idle_from: &mut Instant,
    ) -> Next {
        if let Some((log, record)) = self.logged {
            *log_scratch = record.write_and_reuse(
                log,
                &req_info.remote,
                req_info.scheme,
                conn.body_sent.get(),
            );
        }
        match self.written {
            Ok(true) => {}
            Ok(false) | Err(_) => return Next::Close,
        }
        *idle_from = if conn.write_waited.replace(false) {
            Instant::now()
        } else {
            self.now.into()
        };
        if !conn.finish_body().await {
            conn.linger().await;
            return Next::Gone;
        }
        Next::Request
    }
}

impl<S: Socket> Conn<S> {
    /// A connection at its start, with an empty read buffer of one read's size.
    fn new(
        stream: S,
        cfg: &ServeConfig,
        shared: Rc<ConnShared>,
        tcp: bool,
        initial: BytesMut,
    ) -> Self {
        let unscanned = !initial.is_empty();
        let mut buf = initial;
        buf.reserve(READ_CHUNK);
        Conn {
            stream,
            rd: RefCell::new(Reader {
                buf,
                guard: Guard::new(cfg.limits),
                unscanned,
                eof: false,
                body_done: true,
                body_failed: None,
                stall: None,
                stall_armed: false,
                data: Vec::new(),
            }),
            shared,
            timeouts: cfg.timeouts,
            continue_owed: Cell::new(0),
            responding: Cell::new(false),
            held: RefCell::new(HeldWrite::default()),
            deadline: RefCell::new(None),
            write_waited: Cell::new(false),
            body_sent: Cell::new(0),
            tcp,
        }
    }

    /// Whether the client's bytes wait in the socket (checked by the kernel, not by the
    /// runtime's cached readiness, which may not have seen them yet).
    pub(super) fn peer_sent_bytes(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let sock = socket2::SockRef::from(&self.stream);
        matches!(sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT), Ok(n) if n > 0)
    }

    pub(super) fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}
