//! The worker's serving loop: accept on every listener, drive each connection (see
//! [`crate::h1`]), and drain on shutdown.
//!
//! This module owns the connection lifecycle (accept → HTTP/1.1 driver → close) and the
//! graceful drain (stop accepting, let each connection finish its in-flight request, then
//! close; a connection that switched protocols counts until its handler lets it go). It is generic over a [`Handler`], so it runs and is tested without Python; it must
//! run inside a `tokio::task::LocalSet` on a current-thread runtime built after fork.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::access_log::AccessLog;
use crate::guard::Limits;
use crate::io::{ConnShared, LiveGuard, Socket, Timeouts};
use crate::layer::forwarded::ProxyConfig;
use crate::layer::health::Health;
use crate::listener::Listener;
use crate::request::{Request, Response};
use crate::transport::proxy_protocol::{self, Addresses};

/// Where a connection came from.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A unix-socket client (no address).
    Unix,
}

/// Where a connection arrived.
#[derive(Clone, Debug)]
pub enum Local {
    /// A TCP listener's address.
    Tcp(SocketAddr),
    /// A unix listener's path.
    Unix(Arc<str>),
    /// The host a trusted proxy says the request was for (`X-Forwarded-Host`, `Forwarded:
    /// host=`, see [`crate::layer::forwarded`]): the name and the port (given, or the
    /// scheme's default), for `SERVER_NAME`/`SERVER_PORT` and the ASGI `server`.
    Proxied {
        /// A host name or an IP address (IPv6 in brackets).
        name: Arc<str>,
        /// The port.
        port: u16,
    },
}

/// The URI scheme requests on a connection have (RFC 9110 §4.2): `https` once TLS
/// terminates here; an adapter reports it (`wsgi.url_scheme`, the ASGI scope's `scheme`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP or a unix socket.
    Http,
    /// TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What a handler knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client.
    pub peer: Peer,
    /// The scheme of its requests.
    pub scheme: Scheme,
    /// The listener.
    pub local: Local,
    /// State shared with the connection's I/O.
    pub shared: Rc<ConnShared>,
    /// The client's address and port as text ("" for unix sockets), made once per
    /// connection rather than per request. Behind one `Arc`: a request takes it with one
    /// reference count, not three.
    pub remote: Arc<Remote>,
    /// The peer is in `--forwarded-allow-ips` (or on a unix socket): its forwarding headers
    /// and request id are believed.
    pub trusted: bool,
}

/// A client address as text, plus a place for an adapter's per-connection values.
#[derive(Clone, Debug, Default)]
pub struct Remote {
    /// The IP address, e.g. `127.0.0.1` ("" for unix sockets).
    pub ip: Arc<str>,
    /// The port, e.g. `52100` ("" for unix sockets).
    pub port: Arc<str>,
    /// Values an adapter derives once per connection rather than per request (the WSGI
    /// adapter keeps the Python strings of the address and the Host here).
    pub cache: Arc<ConnCache>,
}

impl Remote {
    pub(crate) fn of(addr: SocketAddr) -> Self {
        Remote {
            ip: Arc::from(addr.ip().to_string()),
            port: Arc::from(addr.port().to_string()),
            cache: Arc::default(),
        }
    }
}

/// One value of any type, made on first use, per connection. It travels with requests to
/// whichever thread serves them, hence `Send` and a lock (never contended: a connection has
/// one request at a time).
#[derive(Default)]
pub struct ConnCache(std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>);

impl ConnCache {
    /// Run `f` on the cached `T`, making it with `init` first if there is none (or if what
    /// is there is of another type).
    pub fn with<T: std::any::Any + Send, R>(
        &self,
        init: impl FnOnce() -> T,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut slot = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(value) = slot.as_mut().and_then(|b| b.downcast_mut::<T>()) {
            return f(value);
        }
        let mut value = Box::new(init());
        let out = f(&mut value);
        *slot = Some(value);
        out
    }
}

impl std::fmt::Debug for ConnCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnCache")
    }
}

/// Set from the signal handler itself the moment TERM, INT or QUIT arrives, before the
/// runtime gets to run the task that turns the signal into a stop. An application call runs
/// on the runtime thread (inline calls), so without this a response finished during a long
/// call would not know the connection is about to close and would not say so.
static STOP_SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Note TERM, INT and QUIT in [`STOP_SIGNALLED`] as they arrive (alongside whatever else
/// handles them). Call once in each serving process, right after fork: from then on these
/// signals no longer end the process by their default action, so whoever calls this must
/// also act on [`stop_signal_seen`] (a stop that came before anything else listened).
#[allow(unsafe_code)]
pub fn watch_stop_signals() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: the action only stores to an atomic, which is async-signal-safe; the
        // registry chains it with the runtime's own handler for the same signal.
        unsafe {
            signal_hook_registry::register(sig, || {
                STOP_SIGNALLED.store(true, std::sync::atomic::Ordering::Relaxed);
            })
        }?;
    }
    Ok(())
}

/// Whether TERM, INT or QUIT has arrived since [`watch_stop_signals`] was called.
pub fn stop_signal_seen() -> bool {
    STOP_SIGNALLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether a stop was signalled, even if the serving loop has not seen it yet.
pub(crate) fn stop_signalled(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || STOP_SIGNALLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The boxed future a handler returns.
pub type HandlerFuture<B> = Pin<Box<dyn Future<Output = Response<B>>>>;

/// The application side of the server: one call per request. Errors are responses.
pub trait Handler: 'static {
    /// The response body type. A body error ends the connection (e.g. a body shorter than
    /// declared), so the client sees the response cut off.
    type Body: crate::body::Body + 'static;
    /// Answer one request.
    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<Self::Body>;

    /// Whether the handler can take more work now. While it cannot, the worker accepts no
    /// new connection, so that the connections waiting in the listeners' queue (shared by
    /// all workers) go to a worker that can serve them.
    fn has_capacity(&self) -> bool {
        true
    }

    /// Resolves when `has_capacity` may have changed, either way. The future must be
    /// registered when this is called, not when first polled.
    fn capacity_changed(&self) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(std::future::pending())
    }
}

/// Wait until `handler` has room for more work.
async fn wait_capacity<H: Handler>(handler: &H) {
    while !handler.has_capacity() {
        let changed = handler.capacity_changed();
        // Asked again after registering, so a change in between is not missed.
        if handler.has_capacity() {
            break;
        }
        changed.await;
    }
}

/// The settings of the serving loop, and the services every interface shares.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Request-head and body limits, enforced by the guard.
    pub limits: Limits,
    /// Connection deadlines.
    pub timeouts: Timeouts,
    /// How long a graceful stop waits for in-flight requests before returning anyway.
    pub graceful_timeout: Duration,
    /// Where each finished response is logged, if anywhere: written by the driver once a
    /// response's body has ended, whichever handler answered.
    pub access_log: Option<Arc<AccessLog>>,
    /// The health-check paths, answered by the driver before any handler sees the request.
    pub health: Option<Arc<Health>>,
    /// Proxy trust, the PROXY protocol and request ids.
    pub proxy: Arc<ProxyConfig>,
    /// The most connections this worker holds at once (`--worker-connections`); at the
    /// limit it stops accepting and new connections wait in the listen queue, where other
    /// workers take them. 0: no limit.
    pub max_connections: usize,
}

/// Counts live connections so a drain knows when it is done, and the accept loops when
/// there is room again.
#[derive(Default)]
struct Live {
    count: Cell<usize>,
    idle: Notify,
    /// Whether an accept loop waits for a connection to close (told through `freed`).
    full: Cell<bool>,
    freed: Notify,
    /// Whether the limit was reported already (once per worker: at the limit under load it
    /// would be reached again with every connection that closes).
    warned: Cell<bool>,
}

impl Live {
    /// Wait until fewer than `max` connections are live (0: no limit). The first wait logs
    /// a warning: the operator sees why new connections queue. Each listener's loop waits
    /// here, then for a connection: with several listeners the worker may go past `max` by
    /// one connection per further listener.
    async fn room(&self, max: usize) {
        if max == 0 {
            return;
        }
        loop {
            let freed = self.freed.notified();
            if self.count.get() < max {
                return;
            }
            self.full.set(true);
            if !self.warned.replace(true) {
                crate::log::warn(format_args!(
                    "worker_connections reached ({max} connections): new connections wait \
                     in the listen queue until one of this worker's closes"
                ));
            }
            freed.await;
        }
    }
}

struct LiveToken(Rc<Live>);

impl LiveToken {
    fn new(live: &Rc<Live>) -> Self {
        live.count.set(live.count.get() + 1);
        LiveToken(live.clone())
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        let n = self.0.count.get().saturating_sub(1);
        self.0.count.set(n);
        if n == 0 {
            self.0.idle.notify_waiters();
        }
        if self.0.full.replace(false) {
            self.0.freed.notify_waiters();
        }
    }
}

/// Serve on `listeners` until `stop` turns true, then stop listening (the listeners are
/// closed in this process, see [`Listener::close_here`]) and drain for at most
/// `cfg.graceful_timeout`. Must be called inside a `LocalSet`.
pub async fn serve<H: Handler>(
    listeners: &[Listener],
    handler: Rc<H>,
    cfg: ServeConfig,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let live = Rc::new(Live::default());
    // Buffered access-log lines reach the sink within a second even when the worker is idle.
    let flusher = cfg
        .access_log
        .clone()
        .map(|log| tokio::task::spawn_local(log.run_flusher()));
    let mut accept_tasks = Vec::new();
    for l in listeners {
        let task = match l {
            Listener::Tcp(std) => {
                let listener = TcpAccept::new(tokio::net::TcpListener::from_std(std.try_clone()?)?);
                let local = Local::Tcp(listener.listener.local_addr()?);
                let (handler, live, stop) = (handler.clone(), live.clone(), stop.clone());
                let cfg = cfg.clone();
                tokio::task::spawn_local(async move {
                    accept_loop(listener, local, handler, cfg, live, stop).await;
                })
            }
            Listener::Unix { listener, path, .. } => {
                let listener = tokio::net::UnixListener::from_std(listener.try_clone()?)?;
                let local = Local::Unix(Arc::from(path.to_string_lossy().as_ref()));
                let (handler, live, stop) = (handler.clone(), live.clone(), stop.clone());
                let cfg = cfg.clone();
                tokio::task::spawn_local(async move {
                    accept_loop(listener, local, handler, cfg, live, stop).await;
                })
            }
        };
        accept_tasks.push(task);
    }
    // Run until told to stop.
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    // Stop accepting at once, here and in the kernel: the accept tasks (and with them this
    // runtime's copies of the sockets) go, and so do the listeners' own descriptors in this
    // process, so that a connection arriving during the drain goes to a process that still
    // listens, or is refused, instead of waiting in a queue nobody reads (see
    // `Listener::close_here`).
    for t in &accept_tasks {
        t.abort();
    }
    for t in accept_tasks {
        let _ = t.await;
    }
    for l in listeners {
        if let Err(e) = l.close_here() {
            crate::log::warn(format_args!("cannot close {}: {e}", l.describe()));
        }
    }
    crate::log::debug(format_args!(
        "stopped listening; draining {} connections",
        live.count.get()
    ));
    // Drain: connections see the stop signal themselves and close after their current
    // request; we wait for the count to reach zero, bounded by the graceful timeout.
    let drained = async {
        loop {
            let notified = live.idle.notified();
            if live.count.get() == 0 {
                break;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(cfg.graceful_timeout, drained).await;
    if let Some(flusher) = flusher {
        flusher.abort();
    }
    if let Some(log) = &cfg.access_log {
        log.flush();
    }
    Ok(())
}

/// A listener the accept loop can take connections from.
trait Accept {
    type Stream: Socket;
    /// Accept one connection: the stream and what the handler is told about its peer.
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Peer, Remote)>;
}

/// A TCP listener, and whether each accepted connection needs TCP_NODELAY set on it.
struct TcpAccept {
    listener: tokio::net::TcpListener,
    set_nodelay: bool,
}

impl TcpAccept {
    fn new(listener: tokio::net::TcpListener) -> Self {
        // Responses are written whole; Nagle would only delay the last segment. Linux copies
        // TCP_NODELAY from the listening socket to each connection it accepts, and our
        // listeners carry it (see `listener`), so there it costs no system call per
        // connection; elsewhere, or on a listener without it, it is set on each one.
        let inherited = cfg!(target_os = "linux")
            && socket2::SockRef::from(&listener)
                .tcp_nodelay()
                .unwrap_or(false);
        TcpAccept {
            listener,
            set_nodelay: !inherited,
        }
    }
}

impl Accept for TcpAccept {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Peer, Remote)> {
        let (stream, addr) = self.listener.accept().await?;
        if self.set_nodelay {
            let _ = stream.set_nodelay(true);
        }
        Ok((stream, Peer::Tcp(addr), Remote::of(addr)))
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Peer, Remote)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, Peer::Unix, Remote::default()))
    }
}

/// Accept connections on one listener while the handler has room, and drive each in its
/// own task.
async fn accept_loop<L: Accept, H: Handler>(
    listener: L,
    local: Local,
    handler: Rc<H>,
    cfg: ServeConfig,
    live: Rc<Live>,
    stop: watch::Receiver<bool>,
) {
    loop {
        live.room(cfg.max_connections).await;
        wait_capacity(&*handler).await;
        // Stop waiting for a connection as soon as the handler fills up.
        let full = handler.capacity_changed();
        let accepted = tokio::select! {
            biased;
            () = full => continue,
            res = listener.accept_one() => res,
        };
        match accepted {
            Ok((stream, peer, remote)) => {
                let token = LiveToken::new(&live);
                let (handler, stop, cfg) = (handler.clone(), stop.clone(), cfg.clone());
                let local = local.clone();
                tokio::task::spawn_local(async move {
                    // The token ends with the connection: when `drive` returns, or, after a
                    // switch of protocols, when the handler drops the connection.
                    let live = LiveGuard::new(token);
                    let accepted = tokio::time::Instant::now();
                    let tcp = matches!(peer, Peer::Tcp(_));
                    let (peer, remote, start) = if cfg.proxy.proxy_protocol {
                        match proxy_header(&stream, peer, remote, &cfg).await {
                            Some(v) => v,
                            None => return,
                        }
                    } else {
                        (peer, remote, bytes::BytesMut::new())
                    };
                    let info = ConnInfo {
                        trusted: cfg.proxy.trusts(&peer),
                        peer,
                        scheme: Scheme::Http,
                        local,
                        shared: Rc::new(ConnShared::default()),
                        remote: Arc::new(remote),
                    };
                    let start = crate::h1::Start {
                        accepted,
                        tcp,
                        initial: start,
                    };
                    crate::h1::drive(stream, Rc::new(info), handler, cfg, stop, live, start).await;
                });
            }
            Err(e) => accept_backoff(&e).await,
        }
    }
}

/// Out of descriptors (EMFILE/ENFILE) or memory: log once per occurrence and pause briefly
/// instead of spinning on a listener that stays readable.
async fn accept_backoff(e: &std::io::Error) {
    crate::log::warn(format_args!("accept failed: {e}"));
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Read the PROXY header of a new connection (`--proxy-protocol`): the client it names
/// replaces the peer. `None`: the connection is refused (logged) and goes.
async fn proxy_header<S: Socket>(
    stream: &S,
    peer: Peer,
    remote: Remote,
    cfg: &ServeConfig,
) -> Option<(Peer, Remote, bytes::BytesMut)> {
    let allowed = cfg.proxy.proxy_allowed(&peer);
    match proxy_protocol::read(stream, allowed, cfg.timeouts.header).await {
        Ok((Some(Addresses::Proxied { src, .. }), rest)) => {
            Some((Peer::Tcp(src), Remote::of(src), rest))
        }
        Ok((_, rest)) => Some((peer, remote, rest)),
        Err(why) => {
            let from = match &peer {
                Peer::Tcp(addr) => addr.to_string(),
                Peer::Unix => "a unix-socket peer".to_owned(),
            };
            crate::log::warn(format_args!("closing a connection from {from}: {why}"));
            None
        }
    }
}
