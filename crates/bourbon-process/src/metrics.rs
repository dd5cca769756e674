//! The master's side of the metrics: each worker's shared counters, the totals that
//! outlive workers, the `GET /metrics` endpoint and its Prometheus text.
//!
//! Like the scoreboard (`scoreboard.rs`), the master maps one anonymous `MAP_SHARED`
//! region per worker just before forking it; the worker counts into it with relaxed atomic
//! adds (`bourbon_server::metrics` owns the layout and the recording) and the master only
//! reads it. When the master collects an exited worker it adds the worker's counters to
//! its own totals before unmapping the region, so a count never goes backwards across a
//! crash, a `--max-requests` recycle or a HUP (Prometheus requires counters to be
//! monotonic; a worker cannot count after it was reaped). Gauges (in flight, connections,
//! WebSockets, threads) are summed over the live workers only.
//!
//! The endpoint is served by the master's own single-threaded loop: the listening socket
//! and at most [`MAX_SCRAPES`] scrapes at a time are non-blocking descriptors polled with
//! the signal pipe, each scrape with a deadline, so a slow or silent client never delays
//! supervision. The exposition is the Prometheus text format 0.0.4.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bourbon_config::Bind;
use bourbon_server::metrics::{
    duration_index, queue_index, req_index, Counters, BOUNDS_NS, BYTES_IN, BYTES_OUT, CLASSES,
    CONNECTIONS, CONNECTIONS_OPENED, HIST, INTERFACES, IN_FLIGHT, METHODS, REJECTED, STATIC_FILES,
    THREADS, THREADS_BUSY, WEBSOCKETS, WEBSOCKETS_OPENED,
};

/// Why a worker was replaced: the label of `bourbon_worker_restarts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// It died without being asked to (a signal, an exit while serving).
    Crash,
    /// It was stuck past `--timeout` and killed.
    Timeout,
    /// `--max-requests` (with its jitter).
    MaxRequests,
    /// `--max-worker-lifetime`.
    Lifetime,
    /// `--max-worker-memory`.
    Memory,
    /// HUP or `--reload`.
    Reload,
}

impl Restart {
    /// Every reason, in the order of [`Restart::index`].
    pub const ALL: [Restart; 6] = [
        Restart::Crash,
        Restart::Timeout,
        Restart::MaxRequests,
        Restart::Lifetime,
        Restart::Memory,
        Restart::Reload,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Restart::Crash => "crash",
            Restart::Timeout => "timeout",
            Restart::MaxRequests => "max-requests",
            Restart::Lifetime => "max-lifetime",
            Restart::Memory => "memory",
            Restart::Reload => "reload",
        }
    }

    /// Its index in [`Restart::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One mapping of a [`Counters`], owned: dropping it unmaps it in this process.
pub struct Region {
    base: NonNull<Counters>,
}

// SAFETY: the region is only ever accessed through atomics.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

const LEN: usize = std::mem::size_of::<Counters>();

impl Region {
    /// Map a zeroed region: `shared` with the worker about to be forked, or private (the
    /// master's totals).
    pub fn new(shared: bool) -> io::Result<Region> {
        let kind = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        // SAFETY: an anonymous mapping of LEN bytes; the kernel zero-fills it, and all-zero
        // bytes are a valid `Counters` (atomics only).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                kind | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<Counters>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Region { base })
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        // SAFETY: the mapping holds a `Counters` (page aligned, zero-filled or written only
        // through atomics) and lives as long as `self`.
        unsafe { self.base.as_ref() }
    }

    /// The worker's view, kept for the life of the process (the worker counts into it
    /// until it exits).
    pub fn leak(self) -> &'static Counters {
        let base = self.base;
        std::mem::forget(self);
        // SAFETY: never unmapped now (its owner was forgotten), so `'static` holds.
        unsafe { base.as_ref() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: base/LEN are what mmap returned, and every reference into the region
        // borrows `self`, so none outlives this call.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), LEN);
        }
    }
}

/// What the master adds to the workers' numbers when it renders.
pub struct Extra {
    /// Workers restarted, by [`Restart::index`].
    pub restarts: [u64; Restart::ALL.len()],
    /// Workers alive now.
    pub workers: usize,
}

/// Render the Prometheus text exposition (format 0.0.4) of `totals` (the exited workers'
/// counts) plus every live worker's region.
pub fn render<'a>(
    totals: &Counters,
    live: impl Iterator<Item = &'a Counters> + Clone,
    extra: &Extra,
) -> String {
    let counter = |i: usize| -> u64 {
        live.clone()
            .fold(totals.counter(i), |n, c| n.wrapping_add(c.counter(i)))
    };
    let gauge = |i: usize| -> i64 { live.clone().map(|c| c.gauge_value(i)).sum::<i64>().max(0) };
    let mut out = String::with_capacity(16 * 1024);
    head(
        &mut out,
        "bourbon_requests_total",
        "Requests answered, by interface, method and status class.",
        "counter",
    );
    for (i, iface) in INTERFACES.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = counter(req_index(i, m, c));
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "bourbon_requests_total{{interface=\"{}\",method=\"{}\",status=\"{}\"}} {n}",
                        escape(iface),
                        escape(method),
                        escape(class)
                    );
                }
            }
        }
    }
    head(
        &mut out,
        "bourbon_rejected_requests_total",
        "Requests refused by bourbon's HTTP parser before any interface saw them, by status class.",
        "counter",
    );
    for (c, class) in CLASSES.iter().enumerate() {
        let n = counter(REJECTED + c);
        if n > 0 {
            let _ = writeln!(
                out,
                "bourbon_rejected_requests_total{{status=\"{}\"}} {n}",
                escape(class)
            );
        }
    }
    head(
        &mut out,
        "bourbon_request_duration_seconds",
        "Time from the request head read to the response written, by interface.",
        "histogram",
    );
    for (i, iface) in INTERFACES.iter().enumerate() {
        histogram(
            &mut out,
            "bourbon_request_duration_seconds",
            iface,
            &counter,
            duration_index(i),
        );
    }
    head(
        &mut out,
        "bourbon_request_queue_seconds",
        "Time from the request head read to the application call, by interface.",
        "histogram",
    );
    for (i, iface) in INTERFACES.iter().take(2).enumerate() {
        histogram(
            &mut out,
            "bourbon_request_queue_seconds",
            iface,
            &counter,
            queue_index(i),
        );
    }
    let gauges = [
        (
            "bourbon_requests_in_flight",
            "Requests read and not yet answered.",
            IN_FLIGHT,
        ),
        (
            "bourbon_connections_open",
            "HTTP connections being served (a WebSocket leaves this count).",
            CONNECTIONS,
        ),
        (
            "bourbon_websockets_open",
            "WebSocket sessions open.",
            WEBSOCKETS,
        ),
    ];
    for (name, help, i) in gauges {
        head(&mut out, name, help, "gauge");
        let _ = writeln!(out, "{name} {}", gauge(i));
    }
    let busy = gauge(THREADS_BUSY);
    let threads = gauge(THREADS);
    head(
        &mut out,
        "bourbon_python_threads",
        "Python threads that call a WSGI application, busy in a call or idle.",
        "gauge",
    );
    let _ = writeln!(out, "bourbon_python_threads{{state=\"busy\"}} {busy}");
    let _ = writeln!(
        out,
        "bourbon_python_threads{{state=\"idle\"}} {}",
        (threads - busy).max(0)
    );
    let counters = [
        (
            "bourbon_received_bytes_total",
            "Bytes read from clients' connections (heads, bodies, WebSocket frames).",
            BYTES_IN,
        ),
        (
            "bourbon_sent_bytes_total",
            "Response bytes (heads and bodies) handed to clients' connections.",
            BYTES_OUT,
        ),
        (
            "bourbon_connections_total",
            "Connections accepted.",
            CONNECTIONS_OPENED,
        ),
        (
            "bourbon_websockets_total",
            "WebSocket sessions opened.",
            WEBSOCKETS_OPENED,
        ),
        (
            "bourbon_static_files_total",
            "Static files served by bourbon (200, 206 and 304 answers for a file).",
            STATIC_FILES,
        ),
    ];
    for (name, help, i) in counters {
        head(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {}", counter(i));
    }
    head(
        &mut out,
        "bourbon_worker_restarts_total",
        "Workers replaced, by reason.",
        "counter",
    );
    for r in Restart::ALL {
        let _ = writeln!(
            out,
            "bourbon_worker_restarts_total{{reason=\"{}\"}} {}",
            escape(r.label()),
            extra.restarts[r.index()]
        );
    }
    head(
        &mut out,
        "bourbon_workers",
        "Worker processes alive.",
        "gauge",
    );
    let _ = writeln!(out, "bourbon_workers {}", extra.workers);
    out
}

fn head(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(
    out: &mut String,
    name: &str,
    iface: &str,
    counter: &dyn Fn(usize) -> u64,
    first: usize,
) {
    let label = escape(iface);
    let mut cumulative = 0u64;
    for (b, bound) in BOUNDS_NS.iter().enumerate() {
        cumulative += counter(first + b);
        let le = *bound as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{interface=\"{label}\",le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += counter(first + BOUNDS_NS.len());
    let _ = writeln!(
        out,
        "{name}_bucket{{interface=\"{label}\",le=\"+Inf\"}} {cumulative}"
    );
    let sum = counter(first + HIST - 1) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{interface=\"{label}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{interface=\"{label}\"}} {cumulative}");
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A `# HELP` text: `\` and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

// ---- the endpoint ----

/// Scrapes served at once; more connections wait in the listen queue.
pub const MAX_SCRAPES: usize = 8;
/// How long a scrape may take to send its request and read the answer.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

enum MListener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

trait Stream: Read + Write + AsRawFd {}
impl<T: Read + Write + AsRawFd> Stream for T {}

struct Scrape {
    stream: Box<dyn Stream>,
    deadline: Instant,
    head: Vec<u8>,
    /// The answer, once the head is in, and how much of it went out.
    out: Option<(Vec<u8>, usize)>,
}

/// The `GET /metrics` endpoint.
pub struct Endpoint {
    listener: MListener,
    scrapes: Vec<Scrape>,
}

impl Endpoint {
    /// Listen at `bind` (TCP or unix).
    pub fn bind(bind: &Bind) -> io::Result<Endpoint> {
        let listener = match bind {
            Bind::Tcp { host, port } => {
                let l = TcpListener::bind((host.as_str(), *port))?;
                l.set_nonblocking(true)?;
                MListener::Tcp(l)
            }
            Bind::Unix(path) => {
                // A socket file left by a previous run that is no longer listened on.
                if std::os::unix::net::UnixStream::connect(path).is_err() {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path)?;
                l.set_nonblocking(true)?;
                MListener::Unix(l, path.clone())
            }
            Bind::Fd(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an inherited descriptor cannot serve metrics",
                ))
            }
        };
        set_cloexec(listener_fd(&listener));
        Ok(Endpoint {
            listener,
            scrapes: Vec::new(),
        })
    }

    /// The listening socket `fd` that the master which re-executed this one handed over
    /// (a binary upgrade, USR2), serving `bind`.
    pub fn inherit(fd: RawFd, bind: &Bind) -> io::Result<Endpoint> {
        use std::os::fd::FromRawFd;
        let mut st: libc::sockaddr_storage =
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            unsafe { std::mem::zeroed() };
        let mut len =
            libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>()).unwrap_or(0);
        // SAFETY: getsockname writes at most `len` bytes into the storage we own; it fails
        // (EBADF, ENOTSOCK) on anything that is not a socket of ours.
        let rc = unsafe { libc::getsockname(fd, std::ptr::addr_of_mut!(st).cast(), &mut len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = match (i32::from(st.ss_family), bind) {
            (libc::AF_UNIX, Bind::Unix(path)) => {
                // SAFETY: a listening socket handed to this process, owned from now on.
                let l = unsafe { UnixListener::from_raw_fd(fd) };
                l.set_nonblocking(true)?;
                MListener::Unix(l, path.clone())
            }
            (libc::AF_INET | libc::AF_INET6, Bind::Tcp { .. }) => {
                // SAFETY: as above.
                let l = unsafe { TcpListener::from_raw_fd(fd) };
                l.set_nonblocking(true)?;
                MListener::Tcp(l)
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the inherited socket is not of the configured kind",
                ))
            }
        };
        set_cloexec(listener_fd(&listener));
        Ok(Endpoint {
            listener,
            scrapes: Vec::new(),
        })
    }

    /// The listening descriptor (handed to the new master of a binary upgrade).
    pub fn fd(&self) -> RawFd {
        listener_fd(&self.listener)
    }

    /// Where it listens, for the log.
    pub fn describe(&self) -> String {
        match &self.listener {
            MListener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            MListener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// The descriptors to poll and the events wanted on each.
    pub fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut v = Vec::with_capacity(1 + self.scrapes.len());
        if self.scrapes.len() < MAX_SCRAPES {
            v.push(pollfd(listener_fd(&self.listener), libc::POLLIN));
        }
        for s in &self.scrapes {
            let events = if s.out.is_some() {
                libc::POLLOUT
            } else {
                libc::POLLIN
            };
            v.push(pollfd(s.stream.as_raw_fd(), events));
        }
        v
    }

    /// The soonest scrape deadline, to bound the loop's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.scrapes.iter().map(|s| s.deadline).min()
    }

    /// Do what can be done without waiting: accept, read heads, answer with `page()`
    /// (called once per scrape), write, drop what is done or late.
    pub fn service(&mut self, page: &mut dyn FnMut() -> String) {
        let now = Instant::now();
        while self.scrapes.len() < MAX_SCRAPES {
            let stream: Box<dyn Stream> = match &self.listener {
                MListener::Tcp(l) => match l.accept() {
                    Ok((s, _)) => {
                        if s.set_nonblocking(true).is_err() {
                            continue;
                        }
                        Box::new(s)
                    }
                    Err(_) => break,
                },
                MListener::Unix(l, _) => match l.accept() {
                    Ok((s, _)) => {
                        if s.set_nonblocking(true).is_err() {
                            continue;
                        }
                        Box::new(s)
                    }
                    Err(_) => break,
                },
            };
            set_cloexec(stream.as_raw_fd());
            self.scrapes.push(Scrape {
                stream,
                deadline: now + SCRAPE_DEADLINE,
                head: Vec::new(),
                out: None,
            });
        }
        self.scrapes.retain_mut(|s| s.step(now, page));
    }

    /// In a forked worker: close the master's descriptors (without removing a socket file).
    pub fn close_in_child(self) {
        // Dropping closes the descriptors; a unix socket's file belongs to the master.
        drop(self);
    }

    /// The master exits: remove a unix socket's file, unless a new master (a binary
    /// upgrade) serves it too now.
    pub fn remove_file(&self) {
        if crate::upgrade::child().is_some() {
            return;
        }
        if let MListener::Unix(_, p) = &self.listener {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Scrape {
    /// Advance; `false` when the scrape is over (answered, failed or late).
    fn step(&mut self, now: Instant, page: &mut dyn FnMut() -> String) -> bool {
        if now >= self.deadline {
            return false;
        }
        if self.out.is_none() {
            let mut buf = [0u8; 2048];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        self.head.extend_from_slice(&buf[..n]);
                        if self.head.len() > MAX_HEAD {
                            self.out =
                                Some((answer(431, "text/plain", b"head too large\n", false), 0));
                            break;
                        }
                        if let Some(resp) = respond(&self.head, page) {
                            self.out = Some((resp, 0));
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        }
        let Some((out, sent)) = self.out.as_mut() else {
            return true;
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return false,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

/// The answer to a complete request head, or `None` while it is incomplete.
fn respond(head: &[u8], page: &mut dyn FnMut() -> String) -> Option<Vec<u8>> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Tolerate bare LF line ends from hand-written clients.
        head.windows(2).position(|w| w == b"\n\n")
    })?;
    let line = head[..end]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or("").trim_end();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let is_head = method == "HEAD";
    Some(match (method, path) {
        ("GET" | "HEAD", "/metrics") => answer(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            page().as_bytes(),
            is_head,
        ),
        ("GET" | "HEAD", _) => answer(404, "text/plain", b"not found: try /metrics\n", is_head),
        _ => answer(405, "text/plain", b"method not allowed\n", false),
    })
}

fn answer(status: u16, kind: &str, body: &[u8], is_head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    )
    .into_bytes();
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(body);
    }
    out
}

fn listener_fd(l: &MListener) -> RawFd {
    match l {
        MListener::Tcp(l) => l.as_raw_fd(),
        MListener::Unix(l, _) => l.as_raw_fd(),
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// The workers must not inherit the endpoint's descriptors through an exec (a binary
/// upgrade): mark them close-on-exec (Rust's std already does for what it opens; kept
/// explicit because the upgrade clears the flag on the serving sockets it passes on).
fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn totals_and_live_regions_add_up_and_buckets_are_cumulative() {
        let totals = Region::new(false).unwrap();
        let a = Region::new(true).unwrap();
        let b = Region::new(true).unwrap();
        for r in [&a, &b] {
            r.counters().counters[req_index(0, 0, 1)]
                .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
            r.counters().counters[duration_index(0) + 1]
                .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
            r.counters().gauges[IN_FLIGHT].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Worker b exits: its counters move to the totals, its gauges go.
        totals.counters().absorb(b.counters());
        drop(b);
        let extra = Extra {
            restarts: [1, 0, 0, 0, 0, 0],
            workers: 1,
        };
        let text = render(totals.counters(), [a.counters()].into_iter(), &extra);
        assert!(text.contains(
            "bourbon_requests_total{interface=\"wsgi\",method=\"GET\",status=\"2xx\"} 4\n"
        ));
        assert!(text.contains(
            "bourbon_request_duration_seconds_bucket{interface=\"wsgi\",le=\"0.001\"} 0\n"
        ));
        assert!(text.contains(
            "bourbon_request_duration_seconds_bucket{interface=\"wsgi\",le=\"0.0025\"} 4\n"
        ));
        assert!(text.contains(
            "bourbon_request_duration_seconds_bucket{interface=\"wsgi\",le=\"+Inf\"} 4\n"
        ));
        assert!(text.contains("bourbon_requests_in_flight 1\n"));
        assert!(text.contains("bourbon_worker_restarts_total{reason=\"crash\"} 1\n"));
    }

    #[test]
    fn the_endpoint_answers_get_metrics_and_refuses_the_rest() {
        let page = || "x 1\n".to_owned();
        let r = respond(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &mut { page }).unwrap();
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.ends_with("\r\n\r\nx 1\n"));
        assert!(respond(b"GET /metrics HTTP/1.1\r\n", &mut { page }).is_none());
        let r = respond(b"POST /metrics HTTP/1.1\r\n\r\n", &mut { page }).unwrap();
        assert!(r.starts_with(b"HTTP/1.1 405"));
        let r = respond(b"GET / HTTP/1.1\r\n\r\n", &mut { page }).unwrap();
        assert!(r.starts_with(b"HTTP/1.1 404"));
    }
}
