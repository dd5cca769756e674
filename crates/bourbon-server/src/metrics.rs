//! Request metrics: what one worker counts, in memory it shares with the master, and the
//! StatsD lines it sends.
//!
//! This module owns the layout of a worker's [`Counters`] (the master maps the region and
//! sums it, see `bourbon-process`'s `metrics.rs`) and the recording calls the connection
//! driver, the static files, the WebSocket sessions and the application adapters make. It is
//! on the hot path, so:
//! - with `--metrics-bind` and `--statsd-host` unset, every call is one load of a null
//!   pointer and a branch, and no clock is read;
//! - otherwise a request costs a dozen relaxed atomic adds on memory no other process
//!   writes (the master only reads it), and two reads of the monotonic clock.
//!
//! The region holds only `u64`/`i64` atomics in two flat arrays, so the master can add one
//! worker's counters to its totals by index without knowing what each one means. Counters
//! only grow (Prometheus counters must be monotonic); gauges go up and down and die with
//! the worker.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::log::Level;

/// The interface that answered a request, a label of the request metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Interface {
    Wsgi = 0,
    Asgi = 1,
    /// A static file answered by bourbon itself (`--static`), before the application.
    Static = 2,
}

/// The label values of [`Interface`], by index.
pub const INTERFACES: [&str; 3] = ["wsgi", "asgi", "static"];
/// The methods counted by name; any other is `other` (a label must not take unbounded
/// values from clients).
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// Status classes, by index (`status / 100 - 1`; a status above 599 counts as 5xx).
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds of the duration histograms' buckets, in nanoseconds (the last bucket,
/// `+Inf`, has none).
pub const BOUNDS_NS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
/// Slots of one histogram: a bucket per bound, `+Inf`, then the sum in nanoseconds.
pub const HIST: usize = BOUNDS_NS.len() + 2;

/// Index of `requests{interface, method, status}`.
pub const fn req_index(iface: usize, method: usize, class: usize) -> usize {
    (iface * METHODS.len() + method) * CLASSES.len() + class
}
/// First index of the request duration histogram of interface `iface`.
pub const fn duration_index(iface: usize) -> usize {
    DURATION + iface * HIST
}
/// First index of the queue time histogram of interface `iface` (WSGI or ASGI).
pub const fn queue_index(iface: usize) -> usize {
    QUEUE + iface * HIST
}
const REQUESTS: usize = 0;
const DURATION: usize = REQUESTS + INTERFACES.len() * METHODS.len() * CLASSES.len();
const QUEUE: usize = DURATION + INTERFACES.len() * HIST;
/// Bytes read from clients' connections (heads, bodies, WebSocket frames).
pub const BYTES_IN: usize = QUEUE + 2 * HIST;
/// Response bytes handed to the clients' sockets: heads and bodies (chunk framing and
/// WebSocket frames aside).
pub const BYTES_OUT: usize = BYTES_IN + 1;
/// Static files answered (a `200` or `206` with a file, a `304`).
pub const STATIC_FILES: usize = BYTES_OUT + 1;
/// Connections accepted.
pub const CONNECTIONS_OPENED: usize = STATIC_FILES + 1;
/// WebSocket sessions opened.
pub const WEBSOCKETS_OPENED: usize = CONNECTIONS_OPENED + 1;
/// Requests refused by the request guard before any interface saw them, by status class
/// (first of [`CLASSES`]`.len()`).
pub const REJECTED: usize = WEBSOCKETS_OPENED + 1;
/// How many counters a region holds.
pub const N_COUNTERS: usize = REJECTED + CLASSES.len();

/// Requests between head and end of response.
pub const IN_FLIGHT: usize = 0;
/// HTTP connections being served (a connection switched to WebSocket leaves this count).
pub const CONNECTIONS: usize = 1;
/// WebSocket sessions open.
pub const WEBSOCKETS: usize = 2;
/// Python threads inside an application call (WSGI).
pub const THREADS_BUSY: usize = 3;
/// Python threads that may call the application (WSGI: `--threads`).
pub const THREADS: usize = 4;
/// How many gauges a region holds.
pub const N_GAUGES: usize = 5;

/// One worker's counters and gauges. All-zero bytes are a valid, empty value, so a
/// zero-filled mapping is one.
#[repr(C)]
pub struct Counters {
    pub counters: [AtomicU64; N_COUNTERS],
    pub gauges: [AtomicI64; N_GAUGES],
}

impl Counters {
    #[inline]
    fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.counters.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    fn gauge(&self, i: usize, d: i64) {
        if let Some(g) = self.gauges.get(i) {
            g.fetch_add(d, Ordering::Relaxed);
        }
    }

    #[inline]
    fn observe(&self, first: usize, ns: u64) {
        let bucket = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        self.add(first + bucket, 1);
        self.add(first + HIST - 1, ns);
    }

    /// Counter `i` (0 past the end).
    pub fn counter(&self, i: usize) -> u64 {
        self.counters
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Gauge `i` (0 past the end).
    pub fn gauge_value(&self, i: usize) -> i64 {
        self.gauges.get(i).map_or(0, |g| g.load(Ordering::Relaxed))
    }

    /// Add every counter of `other` to this one's (the master folding an exited worker's
    /// counts into its totals). Gauges are not added: they died with the worker.
    pub fn absorb(&self, other: &Counters) {
        for (mine, theirs) in self.counters.iter().zip(&other.counters) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// This process's counters; null when metrics are off (and in the master).
static COUNTERS: AtomicPtr<Counters> = AtomicPtr::new(std::ptr::null_mut());
/// The worker's application interface.
static IFACE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// Set by the static files layer when it answered the request the driver awaits: the
    /// handler's future completes in the same poll, on the same thread, so nothing runs
    /// in between.
    static STATIC_ANSWER: Cell<bool> = const { Cell::new(false) };
}

/// Count into `counters` from now on, requests answered by the application as `iface`.
/// Called once in a worker, before it serves.
pub fn install(counters: &'static Counters, iface: Interface) {
    IFACE.store(iface as u8, Ordering::Relaxed);
    COUNTERS.store(std::ptr::from_ref(counters).cast_mut(), Ordering::Release);
}

/// The worker's application speaks `iface` (set once it is known, before serving).
pub fn set_interface(iface: Interface) {
    IFACE.store(iface as u8, Ordering::Relaxed);
}

#[inline]
fn counters() -> Option<&'static Counters> {
    let p = COUNTERS.load(Ordering::Relaxed);
    // SAFETY: the pointer is null or was made from a `&'static Counters` by `install`.
    unsafe { p.as_ref() }
}

/// Whether request metrics are recorded in this process (counters or StatsD).
#[inline]
pub fn enabled() -> bool {
    !COUNTERS.load(Ordering::Relaxed).is_null() || STATSD.get().is_some()
}

/// The current `CLOCK_MONOTONIC` time in nanoseconds (system-wide, so comparable across
/// threads and processes; never 0, which callers here and in the scoreboard use for "not
/// recorded").
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    (secs * 1_000_000_000 + nanos).max(1)
}

/// The request guard refused a request with `status` (RFC 9112 framing, limits): no
/// interface saw it.
pub fn rejected(status: u16) {
    if let Some(c) = counters() {
        c.add(REJECTED + class_index(status), 1);
    }
}

/// `n` bytes were handed to a client's connection (counted where every write passes,
/// `io::Socket`).
#[inline]
pub fn bytes_out(n: usize) {
    if let Some(c) = counters() {
        c.add(BYTES_OUT, n as u64);
    }
}

/// Bytes read from a client's connection.
#[inline]
pub fn bytes_in(n: usize) {
    if let Some(c) = counters() {
        c.add(BYTES_IN, n as u64);
    }
}

/// A connection is served while the guard lives.
pub struct ConnectionGauge(bool);

/// A connection was accepted and is served until the returned guard drops.
#[inline]
pub fn connection_opened() -> ConnectionGauge {
    match counters() {
        Some(c) => {
            c.add(CONNECTIONS_OPENED, 1);
            c.gauge(CONNECTIONS, 1);
            ConnectionGauge(true)
        }
        None => ConnectionGauge(false),
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        if self.0 {
            if let Some(c) = counters() {
                c.gauge(CONNECTIONS, -1);
            }
        }
    }
}

/// A WebSocket session is open while the guard lives.
pub struct WebSocketGauge(bool);

/// A WebSocket session opened (the handshake's 101 went out).
pub fn websocket_opened() -> WebSocketGauge {
    match counters() {
        Some(c) => {
            c.add(WEBSOCKETS_OPENED, 1);
            c.gauge(WEBSOCKETS, 1);
            WebSocketGauge(true)
        }
        None => WebSocketGauge(false),
    }
}

impl Drop for WebSocketGauge {
    fn drop(&mut self) {
        if self.0 {
            if let Some(c) = counters() {
                c.gauge(WEBSOCKETS, -1);
            }
        }
    }
}

/// A request head was read: returns when (monotonic ns), or 0 when nothing is recorded.
/// The driver passes it to [`request_done`] and the head carries it to the application
/// adapter for the queue time.
#[inline]
pub fn request_started() -> u64 {
    if !enabled() {
        return 0;
    }
    STATIC_ANSWER.with(|s| s.set(false));
    if let Some(c) = counters() {
        c.gauge(IN_FLIGHT, 1);
    }
    now_ns()
}

/// The static files layer answered the current request itself, with a file (`file`: a
/// 200, 206 or 304 for a file found) or without (a 404, a redirect, a 405).
#[inline]
pub fn static_answered(file: bool) {
    if let Some(c) = counters() {
        if file {
            c.add(STATIC_FILES, 1);
        }
        STATIC_ANSWER.with(|s| s.set(true));
    }
}

/// The index in [`METHODS`] of a request's method.
pub fn method_index(method: &[u8]) -> usize {
    match method {
        b"GET" => 0,
        b"HEAD" => 1,
        b"POST" => 2,
        b"PUT" => 3,
        b"DELETE" => 4,
        b"PATCH" => 5,
        b"OPTIONS" => 6,
        _ => 7,
    }
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The request that started at `started` (from [`request_started`]; 0: not recorded) has
/// its response written: its method (index in [`METHODS`]) and `status`.
#[inline]
pub fn request_done(started: u64, method: usize, status: u16) {
    if started == 0 {
        return;
    }
    let ns = now_ns().saturating_sub(started);
    let stat = STATIC_ANSWER.with(|s| s.replace(false));
    if let Some(c) = counters() {
        let iface = if stat {
            Interface::Static as usize
        } else {
            usize::from(IFACE.load(Ordering::Relaxed))
        };
        c.add(
            req_index(iface, method.min(METHODS.len() - 1), class_index(status)),
            1,
        );
        c.observe(duration_index(iface), ns);
        c.gauge(IN_FLIGHT, -1);
    }
    if let Some(s) = STATSD.get() {
        s.request(status, ns);
    }
}

/// The application is called for a request whose head was read at `arrived` (0: not
/// recorded): the time it waited is the queue time.
#[inline]
pub fn app_called(arrived: u64) {
    if arrived == 0 {
        return;
    }
    if let Some(c) = counters() {
        let iface = usize::from(IFACE.load(Ordering::Relaxed)).min(1);
        c.observe(queue_index(iface), now_ns().saturating_sub(arrived));
    }
}

/// A Python thread is inside an application call while the guard lives.
pub struct BusyThread(bool);

/// A Python thread entered an application call.
pub fn thread_busy() -> BusyThread {
    match counters() {
        Some(c) => {
            c.gauge(THREADS_BUSY, 1);
            BusyThread(true)
        }
        None => BusyThread(false),
    }
}

impl Drop for BusyThread {
    fn drop(&mut self) {
        if self.0 {
            if let Some(c) = counters() {
                c.gauge(THREADS_BUSY, -1);
            }
        }
    }
}

/// How many Python threads may call the application in this worker.
pub fn set_threads(n: u32) {
    if let Some(c) = counters() {
        c.gauges[THREADS].store(i64::from(n), Ordering::Relaxed);
    }
}

// ---- StatsD ----

/// A datagram larger than this is sent before more is added (safe under the usual
/// 1500-byte MTU of loopback-free paths, with room for IP and UDP headers).
const DATAGRAM: usize = 1400;

enum StatsdSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// Where StatsD lines go: a non-blocking datagram socket and the lines waiting for it.
pub struct Statsd {
    socket: StatsdSocket,
    /// `prefix.` or empty.
    prefix: String,
    /// `|#tags` or empty.
    tags: String,
    buf: Mutex<Vec<u8>>,
}

static STATSD: OnceLock<Statsd> = OnceLock::new();

/// Where the StatsD lines go.
pub enum StatsdTarget<'a> {
    Udp(&'a str, u16),
    Unix(&'a std::path::Path),
}

/// Send gunicorn's StatsD metrics to `target` from now on, in this process and the
/// workers it forks. The socket is connected (a UDP host name is resolved once, here) and
/// non-blocking: a full socket buffer drops lines, it never waits.
pub fn start_statsd(target: StatsdTarget<'_>, prefix: &str, tags: &str) -> io::Result<()> {
    let socket = match target {
        StatsdTarget::Udp(host, port) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
            let local: std::net::SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local)?;
            s.connect(addr)?;
            s.set_nonblocking(true)?;
            StatsdSocket::Udp(s)
        }
        StatsdTarget::Unix(path) => {
            let s = UnixDatagram::unbound()?;
            s.connect(path)?;
            s.set_nonblocking(true)?;
            StatsdSocket::Unix(s)
        }
    };
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    };
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("|#{tags}")
    };
    let _ = STATSD.set(Statsd {
        socket,
        prefix,
        tags,
        buf: Mutex::new(Vec::with_capacity(DATAGRAM + 200)),
    });
    Ok(())
}

impl Statsd {
    fn line(&self, buf: &mut Vec<u8>, name: &str, value: std::fmt::Arguments<'_>, kind: &str) {
        use std::io::Write;
        let _ = writeln!(buf, "{}{name}:{value}|{kind}{}", self.prefix, self.tags);
    }

    fn with_buf(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let Ok(mut buf) = self.buf.lock() else { return };
        f(&mut buf);
        if buf.len() >= DATAGRAM {
            self.send(&mut buf);
        }
    }

    fn send(&self, buf: &mut Vec<u8>) {
        // One datagram per batch, without the last newline; a line never straddles two.
        let mut start = 0;
        while start < buf.len() {
            let mut end = buf.len().min(start + DATAGRAM);
            if end < buf.len() {
                end = buf[start..end]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(end, |i| start + i + 1);
            }
            let mut chunk = &buf[start..end];
            if chunk.last() == Some(&b'\n') {
                chunk = &chunk[..chunk.len() - 1];
            }
            // Lost when the socket cannot take it now: StatsD is best effort by design.
            let _ = match &self.socket {
                StatsdSocket::Udp(s) => s.send(chunk),
                StatsdSocket::Unix(s) => s.send(chunk),
            };
            start = end;
        }
        buf.clear();
    }

    /// gunicorn's three lines for each request.
    fn request(&self, status: u16, ns: u64) {
        let ms = ns as f64 / 1e6;
        self.with_buf(|b| {
            self.line(
                b,
                "gunicorn.request.duration",
                format_args!("{ms:.3}"),
                "ms",
            );
            self.line(b, "gunicorn.requests", format_args!("1"), "c");
            let name = format!("gunicorn.request.status.{status}");
            self.line(b, &name, format_args!("1"), "c");
        });
    }
}

/// Send the StatsD lines waiting (called at least once a second by the worker's event loop
/// and by the master, and at exit).
pub fn flush_statsd() {
    if let Some(s) = STATSD.get() {
        if let Ok(mut buf) = s.buf.lock() {
            if !buf.is_empty() {
                s.send(&mut buf);
            }
        }
    }
}

/// In a freshly forked worker: forget the lines the master had not sent yet (the master
/// sends them).
pub fn statsd_after_fork() {
    if let Some(s) = STATSD.get() {
        if let Ok(mut buf) = s.buf.lock() {
            buf.clear();
        }
    }
}

/// gunicorn's `gunicorn.workers` gauge.
pub fn statsd_workers(n: usize) {
    if let Some(s) = STATSD.get() {
        s.with_buf(|b| s.line(b, "gunicorn.workers", format_args!("{n}"), "g"));
    }
}

/// gunicorn's `gunicorn.log.<level>` counter, for a line of the error log at `level`
/// (warning and above, as gunicorn counts them).
pub fn statsd_log(level: Level) {
    let name = match level {
        Level::Critical => "gunicorn.log.critical",
        Level::Error => "gunicorn.log.error",
        Level::Warning => "gunicorn.log.warning",
        _ => return,
    };
    if let Some(s) = STATSD.get() {
        s.with_buf(|b| s.line(b, name, format_args!("1"), "c"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn zeroed() -> Box<Counters> {
        // SAFETY: all-zero bytes are valid atomics.
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    fn layout_indexes_do_not_overlap() {
        assert_eq!(req_index(2, 7, 4) + 1, DURATION);
        assert_eq!(duration_index(2) + HIST, QUEUE);
        assert_eq!(queue_index(1) + HIST, BYTES_IN);
        assert_eq!(class_index(101), 0);
        assert_eq!(class_index(204), 1);
        assert_eq!(class_index(599), 4);
        assert_eq!(class_index(999), 4);
        assert_eq!(method_index(b"BREW"), 7);
    }

    #[test]
    fn observations_land_in_their_bucket_and_absorb_adds_counters_only() {
        let c = zeroed();
        c.observe(duration_index(0), 1_000_000); // on the bound: le="0.001"
        c.observe(duration_index(0), 1_000_001);
        c.observe(duration_index(0), 60_000_000_000); // +Inf
        assert_eq!(c.counter(duration_index(0)), 1);
        assert_eq!(c.counter(duration_index(0) + 1), 1);
        assert_eq!(c.counter(duration_index(0) + BOUNDS_NS.len()), 1);
        assert_eq!(c.counter(duration_index(0) + HIST - 1), 60_002_000_001);
        c.gauge(IN_FLIGHT, 3);
        let total = zeroed();
        total.absorb(&c);
        total.absorb(&c);
        assert_eq!(total.counter(duration_index(0) + 1), 2);
        assert_eq!(total.gauge_value(IN_FLIGHT), 0);
    }
}
