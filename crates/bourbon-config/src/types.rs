//! Typed values that settings resolve to, and the string parsers that build
//! them.
//!
//! This module owns the shape of [`Config`] and the value types it holds
//! ([`Bind`], [`AppSpec`], [`LogLevel`], [`LogTarget`]). It deliberately holds
//! no defaults and no documentation of individual settings: those live once,
//! in the registry, which fills a `Config` through the parsers defined here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fully resolved configuration of one bourbon run.
///
/// Every field corresponds to exactly one setting in the registry; see
/// `docs/settings.md` (or `bourbon --help`) for what each one means, its
/// default, and how to set it. [`Config::default()`] is built by applying
/// each registry default, so it cannot drift from the documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The WSGI application to serve (`APP`); `None` until one is given.
    pub app: Option<AppSpec>,
    /// The TOML config file that was loaded, if any (informational).
    pub config: Option<PathBuf>,
    /// Directory to change into before loading the application.
    pub chdir: Option<PathBuf>,
    /// Directories to prepend to Python's `sys.path`.
    pub pythonpath: Vec<PathBuf>,
    /// Where to write the server's process id.
    pub pid: Option<PathBuf>,
    /// Where the master serves `bourbon status` (`--control-socket`).
    pub control_socket: ControlSocket,
    /// Extra `(KEY, VALUE)` pairs to set in the process environment.
    pub env: Vec<(String, String)>,
    /// Addresses to listen on.
    pub bind: Vec<Bind>,
    /// Number of worker processes.
    pub workers: u32,
    /// Number of threads per worker serving requests.
    pub threads: u32,
    /// A worker whose oldest application call (or whose heartbeat) is older than this is
    /// killed and replaced; zero disables the check.
    pub timeout: Duration,
    /// How long a stopping or retiring worker may finish its requests before it is killed.
    pub graceful_timeout: Duration,
    /// Connections a worker holds at once before it stops accepting; 0: no limit.
    pub worker_connections: u64,
    /// Requests a worker serves before it is replaced; 0 disables recycling by count.
    pub max_requests: u64,
    /// Up to this many requests are added to `max_requests` per worker, at random.
    pub max_requests_jitter: u64,
    /// Age after which a worker is replaced; zero disables it.
    pub max_worker_lifetime: Duration,
    /// Resident memory in MiB above which a worker is replaced; 0 disables it.
    pub max_worker_memory: u64,
    /// Import the application in the master before forking the workers (`--preload`).
    pub preload: bool,
    /// Watch the project's Python files and reload the workers when one changes.
    pub reload: bool,
    /// Further files whose change reloads the workers under `reload`.
    pub reload_extra_file: Vec<PathBuf>,
    /// How long an idle keep-alive connection is held open; zero disables
    /// keep-alive.
    pub keep_alive: Duration,
    /// Listen queue length passed to `listen(2)`.
    pub backlog: u32,
    /// Maximum size of the HTTP request line in bytes (0 in input has already
    /// been turned into the maximum, 8190).
    pub limit_request_line: usize,
    /// Maximum number of header fields in a request (0 in input has already
    /// been turned into the maximum, 32768).
    pub limit_request_fields: usize,
    /// Maximum size of one header field in bytes; 0 means no per-field limit.
    pub limit_request_field_size: usize,
    /// Maximum request body size in bytes; 0 means unlimited.
    pub limit_request_body: u64,
    /// Time allowed for a complete request head to arrive.
    pub header_timeout: Duration,
    /// A response write making no progress for this long closes the
    /// connection.
    pub write_timeout: Duration,
    /// How long a finished response may be held on a busy worker to be written together
    /// with others; zero writes each at once.
    pub write_coalesce: Duration,
    /// Request bodies up to this many bytes are read fully before the app is
    /// called; 0 disables buffering.
    pub post_buffering: u64,
    /// Memory per response for body bytes the client has not read yet; past it the rest
    /// goes to a temporary file.
    pub response_buffer_size: u64,
    /// Bytes per response that may wait in its temporary file; past it the application's
    /// iteration pauses until the client reads. 0 = no temporary files.
    pub max_temp_file_size: u64,
    /// Where response temporary files are made (`None`: `$TMPDIR`, else `/tmp`).
    pub temp_path: Option<PathBuf>,
    /// Directories served as static files, by URL prefix.
    pub static_mounts: Vec<StaticMount>,
    /// Locations the application may hand files from (`X-Accel-Redirect`, `X-Sendfile`).
    pub static_internal: Vec<StaticMount>,
    /// Peers whose forwarding headers (`X-Forwarded-*`, `Forwarded`, `X-Request-ID`) are
    /// believed.
    pub forwarded_allow_ips: crate::IpAllow,
    /// Read a PROXY protocol header (v1 or v2) at the start of each connection.
    pub proxy_protocol: bool,
    /// Peers allowed to send a PROXY protocol header.
    pub proxy_allow_ips: crate::IpAllow,
    /// The request-id header ("" = no request ids).
    pub request_id_header: String,
    /// `max-age` for static files whose names are not hashed.
    pub static_max_age: u64,
    /// Follow symlinks out of a static root.
    pub static_follow_symlinks: bool,
    /// The file served for a directory URL ("" = none).
    pub static_index: String,
    /// A missing static file goes to the application (else 404).
    pub static_missing_to_app: bool,
    /// `SCRIPT_NAME` prefix the application is mounted under ("" or
    /// `/path` without a trailing slash).
    pub root_path: String,
    /// Which interface the application speaks.
    pub interface: Interface,
    /// An ASGI application served beside the WSGI one (`--asgi`), for WebSockets and the
    /// `asgi_path` prefixes.
    pub asgi: Option<AppSpec>,
    /// URL path prefixes sent to the `asgi` application (each ends with `/`).
    pub asgi_path: Vec<String>,
    /// Whether ASGI lifespan events are sent.
    pub lifespan: Lifespan,
    /// The event loop an ASGI worker runs.
    pub event_loop: EventLoop,
    /// The largest WebSocket message accepted, in bytes.
    pub ws_max_size: u64,
    /// WebSocket messages read ahead of the application, per connection.
    pub ws_max_queue: usize,
    /// How often an idle WebSocket is pinged; zero disables pings.
    pub ws_ping_interval: Duration,
    /// How long a ping may wait for its pong before the connection is closed.
    pub ws_ping_timeout: Duration,
    /// How long a WebSocket may stay open before bourbon closes it; zero means forever.
    pub ws_max_lifetime: Duration,
    /// Offer permessage-deflate (RFC 7692) to WebSocket clients.
    pub ws_per_message_deflate: bool,
    /// Give Django's per-request sync threads (ASGI) from a pool.
    pub django_sync_pool: bool,
    /// Minimum severity written to the error log.
    pub log_level: LogLevel,
    /// Where the error log goes.
    pub error_logfile: LogTarget,
    /// How the server's own error log lines are written.
    pub log_format: ErrorLogFormat,
    /// Send the application's standard output and error (descriptors 1 and 2) to the error
    /// log file.
    pub capture_output: bool,
    /// A Python logging configuration file (dictConfig from JSON or TOML, fileConfig INI).
    pub log_config: Option<PathBuf>,
    /// Where the access log goes; `None` disables access logging.
    pub access_logfile: Option<LogTarget>,
    /// Access log line format (gunicorn `%(x)s` syntax).
    pub access_logformat: String,
    /// The readiness path answered by the server itself ("" = none).
    pub health_path: String,
    /// The liveness path answered by the server itself ("" = none).
    pub liveness_path: String,
    /// Write health-check requests to the access log too.
    pub health_access_log: bool,
    /// Where the master serves `GET /metrics` (Prometheus); `None`: no metrics endpoint.
    pub metrics_bind: Option<Bind>,
    /// The StatsD server the request metrics go to (gunicorn's `--statsd-host`).
    pub statsd_host: Option<Bind>,
    /// Prepended to every StatsD metric name, with a dot (gunicorn's `--statsd-prefix`).
    pub statsd_prefix: String,
    /// DogStatsD tags added to every StatsD line (`k:v,k2:v2`); empty: plain StatsD.
    pub dogstatsd_tags: String,
    /// The process umask set before anything is bound or written (unix socket files get
    /// `0o777 & !umask`).
    pub umask: u32,
    /// Run as this user (a name or a numeric id) once the sockets are bound.
    pub user: Option<String>,
    /// Run as this group (a name or a numeric id) once the sockets are bound.
    pub group: Option<String>,
    /// Detach from the terminal and run in the background.
    pub daemon: bool,
    /// The name shown in process titles instead of the application (`--proc-name`).
    pub proc_name: Option<String>,
    /// Set `SO_REUSEPORT` on TCP listeners.
    pub reuse_port: bool,
    /// The mode unix socket files get once bound (`--chmod-socket`); `None` leaves the
    /// umask's.
    pub chmod_socket: Option<u32>,
    /// Validate the configuration and exit instead of serving.
    pub check_config: bool,
    /// Print the effective configuration as TOML and exit.
    pub print_config: bool,
}

impl Config {
    /// A config with every field at its "nothing chosen" value. It is only a
    /// canvas for the registry defaults to be painted onto; it is never
    /// returned to callers as-is.
    pub(crate) fn blank() -> Self {
        Config {
            app: None,
            config: None,
            chdir: None,
            pid: None,
            control_socket: ControlSocket::Default,
            pythonpath: Vec::new(),
            env: Vec::new(),
            bind: Vec::new(),
            workers: 0,
            threads: 0,
            timeout: Duration::ZERO,
            graceful_timeout: Duration::ZERO,
            worker_connections: 0,
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_lifetime: Duration::ZERO,
            max_worker_memory: 0,
            preload: false,
            reload: false,
            reload_extra_file: Vec::new(),
            keep_alive: Duration::ZERO,
            backlog: 0,
            limit_request_line: 0,
            limit_request_fields: 0,
            limit_request_field_size: 0,
            limit_request_body: 0,
            header_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
            write_coalesce: Duration::ZERO,
            post_buffering: 0,
            response_buffer_size: 0,
            max_temp_file_size: 0,
            temp_path: None,
            static_mounts: Vec::new(),
            static_internal: Vec::new(),
            forwarded_allow_ips: crate::IpAllow::nobody(),
            proxy_protocol: false,
            proxy_allow_ips: crate::IpAllow::nobody(),
            request_id_header: String::new(),
            static_max_age: 0,
            static_follow_symlinks: false,
            static_index: String::new(),
            static_missing_to_app: true,
            root_path: String::new(),
            interface: Interface::Auto,
            asgi: None,
            asgi_path: Vec::new(),
            lifespan: Lifespan::Auto,
            event_loop: EventLoop::Auto,
            ws_max_size: 0,
            ws_max_queue: 0,
            ws_ping_interval: Duration::ZERO,
            ws_ping_timeout: Duration::ZERO,
            ws_max_lifetime: Duration::ZERO,
            ws_per_message_deflate: false,
            django_sync_pool: false,
            log_level: LogLevel::Info,
            error_logfile: LogTarget::Stderr,
            log_format: ErrorLogFormat::Text,
            capture_output: false,
            log_config: None,
            access_logfile: None,
            access_logformat: String::new(),
            health_path: String::new(),
            liveness_path: String::new(),
            health_access_log: false,
            metrics_bind: None,
            statsd_host: None,
            statsd_prefix: String::new(),
            dogstatsd_tags: String::new(),
            umask: 0,
            user: None,
            group: None,
            daemon: false,
            proc_name: None,
            reuse_port: false,
            chmod_socket: None,
            check_config: false,
            print_config: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        crate::registry::defaults()
    }
}

/// Where the master's control socket (`bourbon status`) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlSocket {
    /// `$XDG_RUNTIME_DIR/bourbon/PID.sock`, else `/tmp/bourbon-UID/PID.sock`.
    Default,
    /// No control socket.
    Off,
    /// This path.
    Path(PathBuf),
}

impl fmt::Display for ControlSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlSocket::Default => Ok(()),
            ControlSocket::Off => f.write_str("off"),
            ControlSocket::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The interface an application speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// Decided from the application object once it is loaded (see `docs/asgi.md`).
    Auto,
    /// PEP 3333.
    Wsgi,
    /// ASGI 3: `async def app(scope, receive, send)`.
    Asgi3,
    /// ASGI 2: `app(scope)` returns an object whose `__call__(receive, send)` is a coroutine.
    Asgi2,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interface::Auto => "auto",
            Interface::Wsgi => "wsgi",
            Interface::Asgi3 => "asgi",
            Interface::Asgi2 => "asgi2",
        })
    }
}

/// Whether ASGI lifespan events are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifespan {
    /// Sent; an application that refuses them is served without them.
    Auto,
    /// Sent; an application that refuses them does not boot.
    On,
    /// Not sent.
    Off,
}

impl fmt::Display for Lifespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lifespan::Auto => "auto",
            Lifespan::On => "on",
            Lifespan::Off => "off",
        })
    }
}

/// The event loop of an ASGI worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventLoop {
    /// The standard library's loop over bourbon's selector (see `docs/asgi.md`).
    Auto,
    /// The same, said outright.
    Asyncio,
    /// uvloop, with bourbon's runtime watched as one of its descriptors.
    Uvloop,
}

impl fmt::Display for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventLoop::Auto => "auto",
            EventLoop::Asyncio => "asyncio",
            EventLoop::Uvloop => "uvloop",
        })
    }
}

/// Parse `--loop` (uvicorn's `none` means its default, asyncio).
pub(crate) fn parse_event_loop(s: &str) -> Result<EventLoop, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(EventLoop::Auto),
        "asyncio" | "none" => Ok(EventLoop::Asyncio),
        "uvloop" => Ok(EventLoop::Uvloop),
        other => Err(Bad::form(format!(
            "'{other}' is not one of auto, asyncio, uvloop"
        ))),
    }
}

/// Parse `--interface`.
pub(crate) fn parse_interface(s: &str) -> Result<Interface, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Interface::Auto),
        "wsgi" => Ok(Interface::Wsgi),
        "asgi" | "asgi3" => Ok(Interface::Asgi3),
        "asgi2" => Ok(Interface::Asgi2),
        other => Err(Bad::form(format!(
            "'{other}' is not one of auto, wsgi, asgi, asgi3, asgi2"
        ))),
    }
}

/// Parse `--lifespan`.
pub(crate) fn parse_lifespan(s: &str) -> Result<Lifespan, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Lifespan::Auto),
        "on" => Ok(Lifespan::On),
        "off" => Ok(Lifespan::Off),
        other => Err(Bad::form(format!("'{other}' is not one of auto, on, off"))),
    }
}

/// Parse one `--asgi-path` prefix: a URL path starting with `/`, kept with a trailing `/`
/// so that `/ws` does not also take `/wsx`.
pub(crate) fn parse_url_prefix(s: &str) -> Result<String, Bad> {
    let t = s.trim();
    if !t.starts_with('/') || t.contains(['?', '#', '\\', ' ']) || t.contains("..") {
        return Err(Bad::form(format!(
            "'{t}' is not a URL path prefix (it must start with '/')"
        )));
    }
    let mut prefix = t.to_owned();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}

/// Which WSGI application to load: `module:attr`, optionally a factory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    /// Dotted Python module path, e.g. `mysite.wsgi`.
    pub module: String,
    /// Attribute of the module holding the app (or the factory).
    pub attr: String,
    /// When true, `attr` is called with no arguments to obtain the app.
    pub factory: bool,
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = if self.factory { "()" } else { "" };
        write!(f, "{}:{}{}", self.module, self.attr, call)
    }
}

/// One listening address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// A TCP socket. `host` may be a name (e.g. `localhost`), an IPv4
    /// address or an IPv6 address (without brackets); the server resolves it.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port number (0 lets the OS choose).
        port: u16,
    },
    /// A Unix domain socket at this path.
    Unix(PathBuf),
    /// An already-open listening socket inherited as this file descriptor.
    Fd(i32),
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Bind::Tcp { host, port } => write!(f, "{host}:{port}"),
            Bind::Unix(path) => write!(f, "unix:{}", path.display()),
            Bind::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

/// Error log severity threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including per-request diagnostics.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that bourbon recovered from.
    Warning,
    /// A request or worker failed.
    Error,
    /// The server cannot continue.
    Critical,
}

impl LogLevel {
    /// The lowercase name used in config input and output.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the error log's lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorLogFormat {
    /// gunicorn's `[time] [pid] [LEVEL] message` lines, tracebacks as they are.
    Text,
    /// One JSON object per line (time, level, pid, logger, message, traceback).
    Json,
}

impl fmt::Display for ErrorLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorLogFormat::Text => "text",
            ErrorLogFormat::Json => "json",
        })
    }
}

/// Parse `--log-format` (case-insensitive).
pub(crate) fn parse_error_log_format(s: &str) -> Result<ErrorLogFormat, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(ErrorLogFormat::Text),
        "json" => Ok(ErrorLogFormat::Json),
        _ => Err(Bad::form(format!(
            "'{s}' is not an error log format (text, json; the access log's is --access-logformat)"
        ))),
    }
}

/// Check `--log-config`: a file name whose extension says how it is read. The file itself
/// is read by Python at start-up (its handlers name Python classes).
pub(crate) fn parse_log_config(s: &str) -> Result<Option<PathBuf>, Bad> {
    if s.is_empty() {
        return Ok(None);
    }
    let ext = Path::new(s)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json" | "toml" | "ini" | "conf" | "cfg") => Ok(Some(PathBuf::from(s))),
        _ => Err(Bad::form(format!(
            "'{s}' must end in .json or .toml (logging.config.dictConfig) or .ini, .conf, \
.cfg (logging.config.fileConfig)"
        ))),
    }
}

/// Where a log stream is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (`-` for the access log).
    Stdout,
    /// Standard error (`-` for the error log).
    Stderr,
    /// Append to this file.
    File(PathBuf),
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Both streams are spelled "-" because that is what each log
            // setting accepts as "its" standard stream.
            LogTarget::Stdout | LogTarget::Stderr => f.write_str("-"),
            LogTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Why a value was rejected. `hint` says whether an example of correct input
/// helps (malformed input) or not (well-formed but out of range).
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) msg: String,
    pub(crate) hint: bool,
}

impl Bad {
    /// Malformed input: the message gets an "expected e.g." example appended.
    pub(crate) fn form(msg: impl Into<String>) -> Self {
        Bad {
            msg: msg.into(),
            hint: true,
        }
    }
    /// Well-formed but unacceptable input: the message stands alone.
    pub(crate) fn range(msg: impl Into<String>) -> Self {
        Bad {
            msg: msg.into(),
            hint: false,
        }
    }
}

/// A static-file mount: a directory served under a URL prefix, or Django's
/// `STATIC_URL` → `STATIC_ROOT`, read from the application's settings once it is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaticMount {
    /// `PREFIX=DIR`.
    Dir {
        /// URL prefix, starting and ending with `/`.
        prefix: String,
        /// The directory.
        root: PathBuf,
    },
    /// `django`.
    Django,
}

impl fmt::Display for StaticMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticMount::Dir { prefix, root } => write!(f, "{prefix}={}", root.display()),
            StaticMount::Django => f.write_str("django"),
        }
    }
}

/// Parse `PREFIX=DIR` (or `django`, when `django_ok`). The directory must exist.
pub(crate) fn parse_static_mount(s: &str, django_ok: bool) -> Result<StaticMount, Bad> {
    let t = s.trim();
    if django_ok && t.eq_ignore_ascii_case("django") {
        return Ok(StaticMount::Django);
    }
    let Some((prefix, dir)) = t.split_once('=') else {
        return Err(Bad::form(format!("'{t}' is not PREFIX=DIR")));
    };
    let (prefix, dir) = (prefix.trim(), dir.trim());
    if !prefix.starts_with('/') || prefix.contains(['?', '#', '\\']) || prefix.contains("..") {
        return Err(Bad::form(format!(
            "'{prefix}' is not a URL path prefix (it must start with '/')"
        )));
    }
    if dir.is_empty() || !std::path::Path::new(dir).is_dir() {
        return Err(Bad::range(format!(
            "'{dir}' is not a directory (give the directory to serve, e.g. the STATIC_ROOT collectstatic filled)"
        )));
    }
    let mut prefix = prefix.to_owned();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let root = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
    Ok(StaticMount::Dir { prefix, root })
}

/// Parse a non-negative whole number.
pub(crate) fn parse_whole(s: &str) -> Result<u64, Bad> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad::form(format!("'{s}' is not a whole number")));
    }
    t.parse::<u64>()
        .map_err(|_| Bad::range(format!("'{s}' is too large")))
}

/// Parse a umask the way gunicorn does: `0o077` and `0x3f` by their prefix, a leading
/// `0` (`077`) as octal, anything else as decimal; at most `0o777`.
pub(crate) fn parse_umask(s: &str) -> Result<u32, Bad> {
    let t = s.trim();
    let bad = || {
        Bad::form(format!(
            "'{s}' is not a umask (octal like 0o022 or 022, or decimal)"
        ))
    };
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = if let Some(r) = lower.strip_prefix("0o") {
        (r, 8)
    } else if let Some(r) = lower.strip_prefix("0x") {
        (r, 16)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (r, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    let v = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
    if v > 0o777 {
        return Err(Bad::range(format!("'{}' is larger than 0o777", t)));
    }
    Ok(v)
}

/// Parse a socket file mode for `chmod_socket`: octal digits as uWSGI takes them (`660`,
/// `0660`, `0o660`); `true` (the flag alone) means uWSGI's default, 666; `false` or empty
/// means leave the mode alone.
pub(crate) fn parse_socket_mode(s: &str) -> Result<Option<u32>, Bad> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "" | "false" | "no" | "off" => return Ok(None),
        "true" | "yes" | "on" => return Ok(Some(0o666)),
        _ => {}
    }
    let digits = t.strip_prefix("0o").unwrap_or(&t);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(Bad::form(format!(
            "'{s}' is not a file mode (octal digits, e.g. 660)"
        )));
    }
    let v = u32::from_str_radix(digits, 8).map_err(|_| Bad::form(format!("'{s}' is too large")))?;
    if v > 0o777 {
        return Err(Bad::range(format!("'{s}' is larger than 777")));
    }
    Ok(Some(v))
}

/// Parse a user or group: a name, or a numeric id. Whether it exists is checked when the
/// server starts, on the machine it runs on.
pub(crate) fn parse_account(s: &str) -> Result<Option<String>, Bad> {
    let t = s.trim();
    if t.contains(['\0', ':', '/']) || t.chars().any(char::is_whitespace) {
        return Err(Bad::form(format!(
            "'{s}' is not a user or group name or id"
        )));
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

/// Parse a whole number within `min..=max`.
pub(crate) fn parse_in(s: &str, min: u64, max: u64) -> Result<u64, Bad> {
    let v = parse_whole(s)?;
    if v < min {
        return Err(Bad::range(format!("'{}' must be at least {min}", s.trim())));
    }
    if v > max {
        return Err(Bad::range(format!("'{}' must be at most {max}", s.trim())));
    }
    Ok(v)
}

/// Parse a `u32` that must be at least 1 (worker and thread counts etc.).
pub(crate) fn parse_positive_u32(s: &str) -> Result<u32, Bad> {
    let v = parse_in(s, 1, u64::from(u32::MAX))?;
    u32::try_from(v).map_err(|_| Bad::range(format!("'{s}' is too large")))
}

/// Parse the number of workers: a whole number of at least 1, or `auto` for the number of
/// CPUs this process may use.
pub(crate) fn parse_workers(s: &str) -> Result<u32, Bad> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(crate::cpus::available_cpus());
    }
    parse_positive_u32(s)
}

/// Parse a usize within `min..=max`.
pub(crate) fn parse_usize_in(s: &str, min: usize, max: usize) -> Result<usize, Bad> {
    let v = parse_in(s, min as u64, max as u64)?;
    usize::try_from(v).map_err(|_| Bad::range(format!("'{s}' is too large")))
}

/// Parse seconds given as a decimal (`10`, `2.5`, `0.001`) into an exact
/// [`Duration`]. Floats are avoided so that `--print-config` output
/// round-trips to the identical value.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, Bad> {
    let bad = || Bad::form(format!("'{s}' is not a number of seconds"));
    let t = s.trim();
    let t = t.strip_suffix('s').unwrap_or(t);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(bad());
    }
    let secs: u64 = if int.is_empty() {
        0
    } else {
        int.parse()
            .map_err(|_| Bad::range(format!("'{s}' is too large")))?
    };
    // Digits beyond nanoseconds cannot be represented; dropping them is
    // harmless at timeout granularity.
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(Duration::new(secs, nanos))
}

/// Render a duration as the shortest exact decimal seconds string.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        return d.as_secs().to_string();
    }
    let frac = format!("{:09}", d.subsec_nanos());
    format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
}

/// Parse a byte count with an optional binary suffix: `512`, `64K`, `1M`,
/// `2G` (also `KB`, `KiB`, lowercase).
pub(crate) fn parse_size(s: &str) -> Result<u64, Bad> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, mult) = match body.as_bytes().last() {
        Some(b'k') => (&body[..body.len() - 1], 1u64 << 10),
        Some(b'm') => (&body[..body.len() - 1], 1u64 << 20),
        Some(b'g') => (&body[..body.len() - 1], 1u64 << 30),
        _ => (body, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad::form(format!("'{s}' is not a size in bytes")));
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| Bad::range(format!("'{s}' is too large")))
}

/// Parse a boolean the way people write them in env vars and config files.
/// A health-check path: empty (off), or an absolute path of visible ASCII without a query,
/// compared byte for byte with the request target's path.
pub(crate) fn parse_health_path(s: &str) -> Result<String, Bad> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if !s.starts_with('/') {
        return Err(Bad::form(format!(
            "'{s}' must start with '/' (e.g. /healthz)"
        )));
    }
    if s == "/" {
        return Err(Bad::form(
            "'/' would hide the application's root page; use a path of its own (e.g. /healthz)",
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !c.is_ascii_graphic() || c == '?' || c == '#')
    {
        return Err(Bad::form(format!(
            "'{s}' contains {c:?}; a path of visible ASCII without '?' or '#' (e.g. /healthz)"
        )));
    }
    Ok(s.to_owned())
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Bad::form(format!(
            "'{s}' is not a boolean (use true or false)"
        ))),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Parse `module`, `module:attr` or `module:factory()`.
pub(crate) fn parse_app(s: &str) -> Result<AppSpec, Bad> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Bad::form("the application must not be empty"));
    }
    let (module, rest) = t.split_once(':').unwrap_or((t, "application"));
    if !module.split('.').all(is_identifier) {
        return Err(Bad::form(format!(
            "'{s}': '{module}' is not a Python module path"
        )));
    }
    let (attr, factory) = match rest.find('(') {
        Some(open) => {
            if &rest[open..] != "()" {
                return Err(Bad::form(format!(
                    "'{s}': factory arguments are not supported; call it with no arguments as {module}:{}()",
                    &rest[..open]
                )));
            }
            (&rest[..open], true)
        }
        None => (rest, false),
    };
    if !is_identifier(attr) {
        return Err(Bad::form(format!(
            "'{s}': '{attr}' is not a Python identifier"
        )));
    }
    Ok(AppSpec {
        module: module.to_string(),
        attr: attr.to_string(),
        factory,
    })
}

fn parse_port(spec: &str, port: &str) -> Result<u16, Bad> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad::form(format!(
            "'{spec}': port '{port}' is not a number"
        )));
    }
    port.parse::<u16>()
        .map_err(|_| Bad::range(format!("'{spec}': port {port} is out of range (0-65535)")))
}

fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// Default port for a bare `host` bind, as in gunicorn.
const DEFAULT_PORT: u16 = 8000;

/// Parse one bind spec: `host:port`, `[ipv6]:port`, `host`, `unix:PATH`,
/// `fd://N` (an optional `tcp://` prefix is accepted).
/// An address the master listens on or sends to, other than the serving sockets:
/// `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH` (no inherited descriptor). A bare host gets
/// `default_port`. Empty means none.
pub(crate) fn parse_side_address(s: &str, default_port: u16) -> Result<Option<Bind>, Bad> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // gunicorn spells a unix socket `unix://PATH`; `parse_bind` takes both spellings.
    let bare_host =
        !t.starts_with("unix:") && !t.starts_with('[') && !t.contains(':') && !t.starts_with('/');
    if t.starts_with('/') {
        return Ok(Some(Bind::Unix(PathBuf::from(t))));
    }
    match parse_bind(t)? {
        Bind::Fd(_) => Err(Bad::range(format!(
            "'{s}': an inherited descriptor cannot be used here; give HOST:PORT or unix:PATH"
        ))),
        Bind::Tcp { host, .. } if bare_host => Ok(Some(Bind::Tcp {
            host,
            port: default_port,
        })),
        b => Ok(Some(b)),
    }
}

/// DogStatsD tags: `key:value` (or a bare `key`) items separated by commas, without the
/// characters that delimit a StatsD line (`|`, `#`, `,` inside a tag, newlines).
pub(crate) fn parse_dogstatsd_tags(s: &str) -> Result<String, Bad> {
    let mut out = Vec::new();
    for tag in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag
            .bytes()
            .any(|b| matches!(b, b'|' | b'#' | b'@') || b.is_ascii_control() || b == b' ')
        {
            return Err(Bad::form(format!(
                "'{tag}': a tag may not contain '|', '#', '@', spaces or control characters"
            )));
        }
        out.push(tag);
    }
    Ok(out.join(","))
}

pub(crate) fn parse_bind(s: &str) -> Result<Bind, Bad> {
    let t = s.trim();
    if let Some(path) = t.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(Bad::form(format!("'{s}': the unix socket path is empty")));
        }
        return Ok(Bind::Unix(PathBuf::from(path)));
    }
    if let Some(fd) = t.strip_prefix("fd://") {
        let n = parse_whole(fd)
            .map_err(|_| Bad::form(format!("'{s}': '{fd}' is not a file descriptor number")))?;
        let n = i32::try_from(n).map_err(|_| Bad::range(format!("'{s}': fd is too large")))?;
        return Ok(Bind::Fd(n));
    }
    let t = t.strip_prefix("tcp://").unwrap_or(t);
    if let Some(rest) = t.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(Bad::form(format!(
                "'{s}': missing ']' after the IPv6 address"
            )));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Bad::form(format!("'{s}': '{host}' is not an IPv6 address")));
        }
        let port = match after {
            "" => DEFAULT_PORT,
            _ => match after.strip_prefix(':') {
                Some(p) => parse_port(s, p)?,
                None => return Err(Bad::form(format!("'{s}': expected ':PORT' after ']'"))),
            },
        };
        return Ok(Bind::Tcp {
            host: host.to_string(),
            port,
        });
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => (h, parse_port(s, p)?),
        None => (t, DEFAULT_PORT),
    };
    if host.contains(':') {
        return Err(Bad::form(format!(
            "'{s}': put IPv6 addresses in brackets, e.g. [::1]:8000"
        )));
    }
    // ":8000" conventionally means every interface.
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if !is_host(host) {
        return Err(Bad::form(format!(
            "'{s}': '{host}' is not a host name or address"
        )));
    }
    Ok(Bind::Tcp {
        host: host.to_string(),
        port,
    })
}

/// Parse `KEY=VALUE` for the `env` setting.
pub(crate) fn parse_env_pair(s: &str) -> Result<(String, String), Bad> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        Some(_) => Err(Bad::form(format!("'{s}': the variable name is empty"))),
        None => Err(Bad::form(format!("'{s}' is not KEY=VALUE"))),
    }
}

/// Parse a log level name (case-insensitive; `warn` is accepted too).
pub(crate) fn parse_log_level(s: &str) -> Result<LogLevel, Bad> {
    match s.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warning" | "warn" => Ok(LogLevel::Warning),
        "error" => Ok(LogLevel::Error),
        "critical" => Ok(LogLevel::Critical),
        _ => Err(Bad::form(format!(
            "'{s}' is not a log level (debug, info, warning, error, critical)"
        ))),
    }
}

/// Check `root_path`: empty, or `/x` without a trailing slash.
pub(crate) fn parse_root_path(s: &str) -> Result<String, Bad> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if !s.starts_with('/') {
        return Err(Bad::form(format!("'{s}' must start with '/'")));
    }
    if s.ends_with('/') {
        let trimmed = s.trim_end_matches('/');
        return Err(Bad::form(format!(
            "'{s}' must not end with '/' (use '{trimmed}')"
        )));
    }
    Ok(s.to_string())
}

/// Check that every `%(` in an access log format is closed by `)s`, so a typo
/// is reported at startup rather than on every request.
pub(crate) fn parse_log_format(s: &str) -> Result<String, Bad> {
    let mut rest = s;
    while let Some(i) = rest.find("%(") {
        let after = &rest[i + 2..];
        match after.find(")s") {
            Some(j) if !after[..j].contains('(') && !after[..j].is_empty() => {
                rest = &after[j + 2..];
            }
            _ => {
                return Err(Bad::form(format!(
                    "'{s}': '%(' at byte {} is not closed by ')s'",
                    s.len() - rest.len() + i
                )))
            }
        }
    }
    Ok(s.to_string())
}
