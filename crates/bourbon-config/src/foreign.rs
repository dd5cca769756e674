//! Other servers' words: gunicorn's settings (config-file names and flags), uWSGI's
//! options, and Daphne's and Uvicorn's command-line flags, each mapped onto a registry
//! setting or answered with one line.
//!
//! This module owns the declared table [`WORDS`] and what a word becomes ([`Becomes`]). It
//! declares no setting: a word that has a meaning here names a row of the registry
//! (`registry.rs`) and its value goes through that row's parser, after the small conversions
//! the other spellings need (a path given as an HTTP address is a unix socket; `module`,
//! `wsgi-file` and `callable` make up the application; `--host` and `--port` make up one
//! address; an ASGI worker class is `--interface asgi`). Words that combine are gathered
//! per source in [`Parts`] and put together once the source is read. A word with no meaning here is
//! accepted silently when bourbon already behaves so, draws a warning when it would change
//! something bourbon does not do, or is refused (exit 2) when serving without it would be
//! wrong, always with the fix. `docs/migrating.md`'s tables and the "also accepted" lines of
//! `docs/settings.md` are generated from this table.

use crate::cli::{push, Occurrence};
use crate::error::ConfigError;
use crate::registry::{by_name, Setting};

/// Whose word it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Dialect {
    Gunicorn,
    Uwsgi,
    /// Daphne's command line (it reads no config file).
    Daphne,
    /// Uvicorn's command line (its `UVICORN_*` variables and `uvicorn.run()` are not read).
    Uvicorn,
}

impl Dialect {
    /// Every dialect, in the order `docs/migrating.md` lists them.
    pub(crate) const ALL: [Dialect; 4] = [
        Dialect::Gunicorn,
        Dialect::Uwsgi,
        Dialect::Daphne,
        Dialect::Uvicorn,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Dialect::Gunicorn => "gunicorn",
            Dialect::Uwsgi => "uWSGI",
            Dialect::Daphne => "Daphne",
            Dialect::Uvicorn => "Uvicorn",
        }
    }
}

/// How the word's flag takes a value on a command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arity {
    /// `--flag` alone means true.
    Switch,
    /// `--flag VALUE`.
    Value,
    /// `--flag` alone, or `--flag=VALUE`.
    OptValue,
}

/// The parts of uWSGI's application options.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AppPart {
    /// `module = pkg.wsgi[:callable]`.
    Module,
    /// `wsgi-file = path/wsgi.py`.
    File,
    /// `callable = app` (default `application`).
    Callable,
}

/// The parts of Daphne's and Uvicorn's listening addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ListenPart {
    /// Uvicorn's `--host H`: `H:PORT` (port 8000 without `--port`).
    Host,
    /// `--port N`: the port of `--host` and of each portless `--bind`; alone,
    /// `127.0.0.1:N`.
    Port,
    /// Uvicorn's `--uds PATH`: uvicorn then listens on the socket only.
    Uds,
    /// Daphne's `--unix-socket PATH`: listened on beside any TCP address.
    UnixSocket,
    /// `--fd N`: an inherited listening socket.
    Fd,
}

/// What a word becomes here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Becomes {
    /// The registry setting of this name; the value means the same.
    Setting(&'static str),
    /// `bind`, from uWSGI's address syntax: `:8000` is every interface, a path is a unix
    /// socket.
    UwsgiAddr,
    /// Part of the application (uWSGI).
    App(AppPart),
    /// Part of a listening address (Daphne, Uvicorn): `bind`, put together at the end of
    /// the source.
    Listen(ListenPart),
    /// gunicorn's worker class: bourbon's own classes are accepted, an ASGI worker class
    /// (uvicorn's) sets `interface` to `asgi`, any other is refused.
    WorkerClass,
    /// Uvicorn's `--factory`: `APP` names a factory to call (`module:factory()`).
    Factory,
    /// The registry setting of this name, where that server's `-1` (never) is bourbon's
    /// `0`.
    Forever(&'static str),
    /// Accepted quietly when the value is one of these (case-insensitive), as bourbon works
    /// that way; any other value has no effect (a warning with the text).
    Unless(&'static [&'static str], &'static str),
    /// A gunicorn server hook: a function in a Python config file, called at gunicorn's
    /// moment.
    Hook,
    /// A hook of a gunicorn feature bourbon does not have: never called (a warning).
    DeadHook(&'static str),
    /// Accepted when the value is one of these (case-insensitive), as bourbon works that
    /// way; any other value is refused with the text.
    Only(&'static [&'static str], &'static str),
    /// Accepted; bourbon already behaves so (the text says how). A debug line.
    Already(&'static str),
    /// Has no effect here; a warning line with the text (what to use instead).
    Ignored(&'static str),
    /// Refused with the text (what to use instead): exit 2.
    Refused(&'static str),
}

/// One word of another server.
pub(crate) struct Word {
    pub(crate) dialect: Dialect,
    /// The name in that server's config files (gunicorn's Python/TOML name, uWSGI's ini
    /// key, written with dashes).
    pub(crate) name: &'static str,
    /// Its command-line flags; for uWSGI, `--` + the name, and any short one.
    pub(crate) flags: &'static [&'static str],
    pub(crate) arity: Arity,
    /// The group it is listed under in `docs/migrating.md`.
    pub(crate) group: &'static str,
    pub(crate) becomes: Becomes,
    /// Anything more the migration table should say.
    pub(crate) note: &'static str,
}

const fn w(
    dialect: Dialect,
    group: &'static str,
    name: &'static str,
    flags: &'static [&'static str],
    arity: Arity,
    becomes: Becomes,
) -> Word {
    Word {
        dialect,
        name,
        flags,
        arity,
        group,
        becomes,
        note: "",
    }
}

const fn noted(word: Word, note: &'static str) -> Word {
    Word { note, ..word }
}

use Arity::{OptValue, Switch, Value};
use Becomes::{
    Already, App, DeadHook, Factory, Forever, Hook, Ignored, Listen, Only, Refused, Setting as S,
    Unless, UwsgiAddr, WorkerClass,
};
use Dialect::{Daphne as D, Gunicorn as G, Uvicorn as V, Uwsgi as U};

const TLS: &str = "bourbon does not terminate TLS: put it behind a proxy or load balancer \
that does, and bind bourbon to loopback or a unix socket";
pub(crate) const ONE_WORKER_TYPE: &str =
    "bourbon has one worker type (WSGI on threads, ASGI on an \
asyncio loop): drop -k/worker_class (give --threads N for WSGI concurrency within a worker, \
--interface asgi for an ASGI application)";
const NO_SYSLOG: &str = "bourbon logs to stderr or --error-logfile; let journald or the \
container runtime forward it";
const NO_METRICS: &str = "bourbon has no such metric: --metrics-bind serves Prometheus metrics, \
--statsd-host sends gunicorn's StatsD metrics";
const NOT_TUNABLE: &str = "bourbon has no such setting";
const FORWARDED: &str = "forwarded headers (Forwarded, X-Forwarded-For, -Proto, -Host, \
-Port) are read from the peers in --forwarded-allow-ips (default 127.0.0.1,::1 and unix \
sockets) and passed untouched from anyone else";
const PROXY_HEADERS: &str = "forwarded headers are read from the peers in \
--forwarded-allow-ips (127.0.0.1, ::1 and unix sockets by default)";
const ENDPOINT: &str = "give each address as --bind: tcp:PORT:interface=HOST is --bind \
HOST:PORT, unix:PATH is --bind unix:PATH, fd:fileno=N is --bind fd://N";
const SERVER_HEADER: &str = "responses carry Server: bourbon unless the application sets \
its own";
const DATE_HEADER: &str = "responses carry a Date unless the application sets its own (RFC \
9110, section 6.6.1)";
const ACCESS_LOG: &str = "requests are logged only with --access-logfile (- for stdout)";
const RELOAD_WATCH: &str = "--reload watches every *.py file under the project directory \
(--chdir); add others with --reload-extra-file";
const NO_UWSGI_PROTOCOL: &str = "the uwsgi protocol is not served yet: speak HTTP to \
bourbon (--http-socket ADDR or -b ADDR; nginx: proxy_pass instead of uwsgi_pass)";
const STATIC_MAP2: &str = "bourbon maps a prefix onto a directory: for uWSGI's \
--static-map2 /media=/var/www give --static /media/=/var/www/media";
const CHECK_STATIC: &str = "bourbon serves a directory under a prefix: for uWSGI's \
--check-static DIR give --static /=DIR (missing files still reach the application)";
const NO_DIRTY: &str = "bourbon has no dirty arbiters; run such work in the application \
or a task queue";
const NO_PASTE: &str = "bourbon loads a WSGI callable: give APP as module:callable";
const LOGGING: &str = "bourbon's logs are set with --log-level, --error-logfile, \
--log-format and --access-logfile; Python logging with --log-config";
const LOGCONFIG_DICT: &str = "write the dictionary to a JSON or TOML file and give it as \
--log-config FILE";

/// gunicorn's worker classes that are bourbon's own way of working (`-k`).
pub(crate) const THREAD_WORKERS: &[&str] = &[
    "sync",
    "gthread",
    "gunicorn.workers.sync.SyncWorker",
    "gunicorn.workers.gthread.ThreadWorker",
    "egg:gunicorn#sync",
    "egg:gunicorn#gthread",
];

/// gunicorn's ASGI worker classes (`-k`): gunicorn's own and uvicorn's, in the old
/// `uvicorn.workers` module and the `uvicorn-worker` package. They mean `--interface asgi`.
/// A subclass of one (a project's own module) is refused like any unknown class: what it
/// changes cannot be seen from here.
pub(crate) const ASGI_WORKERS: &[&str] = &[
    "asgi",
    "gunicorn.workers.gasgi.ASGIWorker",
    "egg:gunicorn#asgi",
    "uvicorn.workers.UvicornWorker",
    "uvicorn.workers.UvicornH11Worker",
    "uvicorn_worker.UvicornWorker",
    "uvicorn_worker.UvicornH11Worker",
];

/// Every word: gunicorn's in the order of its settings reference, then uWSGI's, Daphne's
/// and Uvicorn's.
pub(crate) static WORDS: &[Word] = &[
    // ---- gunicorn: config file ----
    w(G, "Config file", "config", &["-c", "--config"], Value, S("config")),
    w(G, "Config file", "wsgi_app", &[], Value, S("app")),
    // ---- gunicorn: server socket ----
    w(G, "Server socket", "bind", &["-b", "--bind"], Value, S("bind")),
    w(G, "Server socket", "backlog", &["--backlog"], Value, S("backlog")),
    // ---- gunicorn: worker processes ----
    w(G, "Worker processes", "workers", &["-w", "--workers"], Value, S("workers")),
    w(
        G,
        "Worker processes",
        "worker_class",
        &["-k", "--worker-class"],
        Value,
        WorkerClass,
    ),
    w(G, "Worker processes", "threads", &["--threads"], Value, S("threads")),
    w(
        G,
        "Worker processes",
        "worker_connections",
        &["--worker-connections"],
        Value,
        S("worker_connections"),
    ),
    w(G, "Worker processes", "max_requests", &["--max-requests"], Value, S("max_requests")),
    w(
        G,
        "Worker processes",
        "max_requests_jitter",
        &["--max-requests-jitter"],
        Value,
        S("max_requests_jitter"),
    ),
    w(G, "Worker processes", "timeout", &["-t", "--timeout"], Value, S("timeout")),
    w(
        G,
        "Worker processes",
        "graceful_timeout",
        &["--graceful-timeout"],
        Value,
        S("graceful_timeout"),
    ),
    w(G, "Worker processes", "keepalive", &["--keep-alive"], Value, S("keep_alive")),
    w(
        G,
        "Worker processes",
        "asgi_loop",
        &["--asgi-loop"],
        Value,
        S("loop"),
    ),
    w(G, "Worker processes", "asgi_lifespan", &["--asgi-lifespan"], Value, S("lifespan")),
    w(
        G,
        "Worker processes",
        "asgi_disconnect_grace_period",
        &["--asgi-disconnect-grace-period"],
        Value,
        Ignored(NOT_TUNABLE),
    ),
    w(
        G,
        "Worker processes",
        "http_parser",
        &["--http-parser"],
        Value,
        Ignored("bourbon has one HTTP parser, its own (strict, RFC 9112)"),
    ),
    // ---- gunicorn: security ----
    w(
        G,
        "Security",
        "limit_request_line",
        &["--limit-request-line"],
        Value,
        S("limit_request_line"),
    ),
    w(
        G,
        "Security",
        "limit_request_fields",
        &["--limit-request-fields"],
        Value,
        S("limit_request_fields"),
    ),
    w(
        G,
        "Security",
        "limit_request_field_size",
        &["--limit-request-field_size"],
        Value,
        S("limit_request_field_size"),
    ),
    // ---- gunicorn: debugging ----
    w(G, "Debugging", "reload", &["--reload"], Switch, S("reload")),
    w(
        G,
        "Debugging",
        "reload_engine",
        &["--reload-engine"],
        Value,
        Already("--reload always uses inotify"),
    ),
    w(
        G,
        "Debugging",
        "reload_extra_files",
        &["--reload-extra-file"],
        Value,
        S("reload_extra_file"),
    ),
    w(
        G,
        "Debugging",
        "spew",
        &["--spew"],
        Switch,
        Ignored("no tracing of every line; use a debugger or sys.settrace in the application"),
    ),
    w(G, "Debugging", "check_config", &["--check-config"], Switch, S("check_config")),
    w(G, "Debugging", "print_config", &["--print-config"], Switch, S("print_config")),
    // ---- gunicorn: server mechanics ----
    w(G, "Server mechanics", "preload_app", &["--preload"], Switch, S("preload")),
    w(
        G,
        "Server mechanics",
        "sendfile",
        &["--no-sendfile"],
        Switch,
        Already("bourbon sends wsgi.file_wrapper bodies and static files with sendfile(2)"),
    ),
    w(G, "Server mechanics", "reuse_port", &["--reuse-port"], Switch, S("reuse_port")),
    w(G, "Server mechanics", "chdir", &["--chdir"], Value, S("chdir")),
    w(G, "Server mechanics", "daemon", &["-D", "--daemon"], Switch, S("daemon")),
    w(G, "Server mechanics", "raw_env", &["-e", "--env"], Value, S("env")),
    w(G, "Server mechanics", "pidfile", &["-p", "--pid"], Value, S("pid")),
    w(
        G,
        "Server mechanics",
        "worker_tmp_dir",
        &["--worker-tmp-dir"],
        Value,
        Already("workers report to the master through shared memory, not a file"),
    ),
    w(G, "Server mechanics", "user", &["-u", "--user"], Value, S("user")),
    w(G, "Server mechanics", "group", &["-g", "--group"], Value, S("group")),
    w(G, "Server mechanics", "umask", &["-m", "--umask"], Value, S("umask")),
    w(
        G,
        "Server mechanics",
        "initgroups",
        &["--initgroups"],
        Switch,
        Already("--user always takes the user's supplementary groups"),
    ),
    w(
        G,
        "Server mechanics",
        "tmp_upload_dir",
        &[],
        Value,
        Ignored("request bodies are not spooled to files; the application reads wsgi.input"),
    ),
    w(
        G,
        "Server mechanics",
        "secure_scheme_headers",
        &[],
        Value,
        Ignored("the secure-scheme headers are fixed: X-Forwarded-Proto, X-Forwarded-Protocol: ssl and X-Forwarded-Ssl: on (gunicorn's defaults), and Forwarded's proto=, from --forwarded-allow-ips peers"),
    ),
    w(
        G,
        "Server mechanics",
        "forwarded_allow_ips",
        &["--forwarded-allow-ips"],
        Value,
        S("forwarded_allow_ips"),
    ),
    w(G, "Server mechanics", "pythonpath", &["--pythonpath"], Value, S("pythonpath")),
    w(G, "Server mechanics", "paste", &["--paste", "--paster"], Value, Refused(NO_PASTE)),
    w(
        G,
        "Server mechanics",
        "proxy_protocol",
        &["--proxy-protocol"],
        Switch,
        S("proxy_protocol"),
    ),
    w(
        G,
        "Server mechanics",
        "proxy_allow_ips",
        &["--proxy-allow-from"],
        Value,
        S("proxy_allow_ips"),
    ),
    w(
        G,
        "Server mechanics",
        "protocol",
        &["--protocol"],
        Value,
        Only(&["http"], NO_UWSGI_PROTOCOL),
    ),
    w(
        G,
        "Server mechanics",
        "uwsgi_allow_ips",
        &["--uwsgi-allow-from"],
        Value,
        Ignored(NO_UWSGI_PROTOCOL),
    ),
    w(
        G,
        "Server mechanics",
        "raw_paste_global_conf",
        &["--paste-global"],
        Value,
        Refused(NO_PASTE),
    ),
    w(
        G,
        "Server mechanics",
        "permit_obsolete_folding",
        &["--permit-obsolete-folding"],
        Switch,
        Ignored("folded header lines are always refused (RFC 9112, section 5.2)"),
    ),
    w(
        G,
        "Server mechanics",
        "strip_header_spaces",
        &["--strip-header-spaces"],
        Switch,
        Ignored("whitespace before a header field's colon is always refused (RFC 9112, section 5.1)"),
    ),
    w(
        G,
        "Server mechanics",
        "permit_unconventional_http_method",
        &["--permit-unconventional-http-method"],
        Switch,
        Ignored("methods are checked against RFC 9110's token syntax only"),
    ),
    w(
        G,
        "Server mechanics",
        "permit_unconventional_http_version",
        &["--permit-unconventional-http-version"],
        Switch,
        Ignored("only HTTP/1.0 and HTTP/1.1 are served"),
    ),
    w(
        G,
        "Server mechanics",
        "casefold_http_method",
        &["--casefold-http-method"],
        Switch,
        Ignored("methods are case-sensitive (RFC 9110, section 9.1) and passed as sent"),
    ),
    w(
        G,
        "Server mechanics",
        "forwarder_headers",
        &["--forwarder-headers"],
        Value,
        Ignored("SCRIPT_NAME comes from --root-path, not from a header"),
    ),
    w(
        G,
        "Server mechanics",
        "header_map",
        &["--header-map"],
        Value,
        Ignored("header fields whose names contain '_' are dropped, as gunicorn's default does"),
    ),
    w(G, "Server mechanics", "root_path", &["--root-path"], Value, S("root_path")),
    // ---- gunicorn: logging ----
    w(G, "Logging", "accesslog", &["--access-logfile"], Value, S("access_logfile")),
    w(
        G,
        "Logging",
        "disable_redirect_access_to_syslog",
        &["--disable-redirect-access-to-syslog"],
        Switch,
        Already(NO_SYSLOG),
    ),
    w(
        G,
        "Logging",
        "access_log_format",
        &["--access-logformat"],
        Value,
        S("access_logformat"),
    ),
    w(G, "Logging", "errorlog", &["--error-logfile", "--log-file"], Value, S("error_logfile")),
    w(G, "Logging", "loglevel", &["--log-level"], Value, S("log_level")),
    w(G, "Logging", "capture_output", &["--capture-output"], Switch, S("capture_output")),
    w(G, "Logging", "logger_class", &["--logger-class"], Value, Ignored(LOGGING)),
    w(G, "Logging", "logconfig", &["--log-config"], Value, S("log_config")),
    w(G, "Logging", "logconfig_dict", &[], Value, Ignored(LOGCONFIG_DICT)),
    w(G, "Logging", "logconfig_json", &["--log-config-json"], Value, S("log_config")),
    w(G, "Logging", "syslog_addr", &["--log-syslog-to"], Value, Ignored(NO_SYSLOG)),
    w(G, "Logging", "syslog", &["--log-syslog"], Switch, Ignored(NO_SYSLOG)),
    w(G, "Logging", "syslog_prefix", &["--log-syslog-prefix"], Value, Ignored(NO_SYSLOG)),
    w(
        G,
        "Logging",
        "syslog_facility",
        &["--log-syslog-facility"],
        Value,
        Ignored(NO_SYSLOG),
    ),
    w(
        G,
        "Logging",
        "enable_stdio_inheritance",
        &["-R", "--enable-stdio-inheritance"],
        Switch,
        Already("the workers always inherit the server's stdio"),
    ),
    w(G, "Logging", "statsd_host", &["--statsd-host"], Value, S("statsd_host")),
    w(G, "Logging", "dogstatsd_tags", &["--dogstatsd-tags"], Value, S("dogstatsd_tags")),
    w(G, "Logging", "statsd_prefix", &["--statsd-prefix"], Value, S("statsd_prefix")),
    w(
        G,
        "Logging",
        "enable_backlog_metric",
        &["--enable-backlog-metric"],
        Switch,
        Ignored(NO_METRICS),
    ),
    // ---- gunicorn: process naming ----
    w(G, "Process naming", "proc_name", &["-n", "--name"], Value, S("proc_name")),
    w(
        G,
        "Process naming",
        "default_proc_name",
        &[],
        Value,
        Already("titles read `bourbon: master [APP]` unless --proc-name is set"),
    ),
    // ---- gunicorn: server hooks ----
    w(G, "Server hooks", "on_starting", &[], Value, Hook),
    w(G, "Server hooks", "on_reload", &[], Value, Hook),
    w(G, "Server hooks", "when_ready", &[], Value, Hook),
    w(G, "Server hooks", "pre_fork", &[], Value, Hook),
    w(G, "Server hooks", "post_fork", &[], Value, Hook),
    w(G, "Server hooks", "post_worker_init", &[], Value, Hook),
    w(G, "Server hooks", "worker_int", &[], Value, Hook),
    w(G, "Server hooks", "worker_abort", &[], Value, Hook),
    w(G, "Server hooks", "pre_exec", &[], Value, Hook),
    w(G, "Server hooks", "pre_request", &[], Value, Hook),
    w(G, "Server hooks", "post_request", &[], Value, Hook),
    w(G, "Server hooks", "child_exit", &[], Value, Hook),
    w(G, "Server hooks", "worker_exit", &[], Value, Hook),
    w(G, "Server hooks", "nworkers_changed", &[], Value, Hook),
    w(G, "Server hooks", "on_exit", &[], Value, Hook),
    w(G, "Server hooks", "ssl_context", &[], Value, DeadHook(TLS)),
    // ---- gunicorn: SSL ----
    w(G, "SSL", "keyfile", &["--keyfile"], Value, Refused(TLS)),
    w(G, "SSL", "certfile", &["--certfile"], Value, Refused(TLS)),
    w(G, "SSL", "ssl_version", &["--ssl-version"], Value, Ignored(TLS)),
    w(G, "SSL", "cert_reqs", &["--cert-reqs"], Value, Ignored(TLS)),
    w(G, "SSL", "ca_certs", &["--ca-certs"], Value, Ignored(TLS)),
    w(
        G,
        "SSL",
        "suppress_ragged_eofs",
        &["--suppress-ragged-eofs"],
        Switch,
        Ignored(TLS),
    ),
    w(
        G,
        "SSL",
        "do_handshake_on_connect",
        &["--do-handshake-on-connect"],
        Switch,
        Ignored(TLS),
    ),
    w(G, "SSL", "ciphers", &["--ciphers"], Value, Ignored(TLS)),
    // ---- gunicorn: HTTP/2 ----
    w(
        G,
        "HTTP/2",
        "http_protocols",
        &["--http-protocols"],
        Value,
        Only(&["h1"], "HTTP/2 is not served yet: serve HTTP/1.1 (h1) and let the proxy speak HTTP/2 to clients"),
    ),
    w(
        G,
        "HTTP/2",
        "http2_cleartext",
        &["--http2-cleartext"],
        Value,
        Only(&["off", "false", "0"], "HTTP/2 is not served yet: let the proxy speak HTTP/2 to clients"),
    ),
    w(
        G,
        "HTTP/2",
        "http2_max_concurrent_streams",
        &["--http2-max-concurrent-streams"],
        Value,
        Ignored("HTTP/2 is not served yet"),
    ),
    w(
        G,
        "HTTP/2",
        "http2_initial_window_size",
        &["--http2-initial-window-size"],
        Value,
        Ignored("HTTP/2 is not served yet"),
    ),
    w(
        G,
        "HTTP/2",
        "http2_max_frame_size",
        &["--http2-max-frame-size"],
        Value,
        Ignored("HTTP/2 is not served yet"),
    ),
    w(
        G,
        "HTTP/2",
        "http2_max_header_list_size",
        &["--http2-max-header-list-size"],
        Value,
        Ignored("HTTP/2 is not served yet"),
    ),
    // ---- gunicorn: dirty arbiters ----
    w(G, "Dirty arbiters", "dirty_apps", &["--dirty-app"], Value, Refused(NO_DIRTY)),
    w(
        G,
        "Dirty arbiters",
        "dirty_workers",
        &["--dirty-workers"],
        Value,
        Only(&["0"], NO_DIRTY),
    ),
    w(G, "Dirty arbiters", "dirty_timeout", &["--dirty-timeout"], Value, Ignored(NO_DIRTY)),
    w(G, "Dirty arbiters", "dirty_threads", &["--dirty-threads"], Value, Ignored(NO_DIRTY)),
    w(
        G,
        "Dirty arbiters",
        "dirty_graceful_timeout",
        &["--dirty-graceful-timeout"],
        Value,
        Ignored(NO_DIRTY),
    ),
    w(G, "Dirty arbiters", "on_dirty_starting", &[], Value, DeadHook(NO_DIRTY)),
    w(G, "Dirty arbiters", "dirty_post_fork", &[], Value, DeadHook(NO_DIRTY)),
    w(G, "Dirty arbiters", "dirty_worker_init", &[], Value, DeadHook(NO_DIRTY)),
    w(G, "Dirty arbiters", "dirty_worker_exit", &[], Value, DeadHook(NO_DIRTY)),
    // ---- gunicorn: control ----
    w(
        G,
        "Control",
        "control_socket",
        &["--control-socket"],
        Value,
        S("control_socket"),
    ),
    w(
        G,
        "Control",
        "control_socket_mode",
        &["--control-socket-mode"],
        Value,
        Ignored("the control socket is always 0600, its user's (docs/status.md)"),
    ),
    w(
        G,
        "Control",
        "control_socket_disable",
        &["--no-control-socket"],
        Switch,
        Ignored("use --control-socket off"),
    ),
    // ---- uWSGI: loading the application ----
    w(U, "Application", "module", &["--module"], Value, App(AppPart::Module)),
    w(U, "Application", "wsgi", &["--wsgi"], Value, App(AppPart::Module)),
    noted(
        w(U, "Application", "wsgi-file", &["--wsgi-file"], Value, App(AppPart::File)),
        "its directory joins `pythonpath` and the file is imported as a module, so its name must be a Python identifier",
    ),
    w(U, "Application", "file", &["--file"], Value, App(AppPart::File)),
    w(U, "Application", "callable", &["--callable"], Value, App(AppPart::Callable)),
    w(U, "Application", "chdir", &["--chdir"], Value, S("chdir")),
    w(U, "Application", "pythonpath", &["--pythonpath"], Value, S("pythonpath")),
    w(U, "Application", "python-path", &["--python-path"], Value, S("pythonpath")),
    w(U, "Application", "pp", &["--pp"], Value, S("pythonpath")),
    w(U, "Application", "env", &["--env"], Value, S("env")),
    w(
        U,
        "Application",
        "home",
        &["--home"],
        Value,
        Refused("bourbon runs in the Python environment it is installed in: start the virtualenv's bin/bourbon"),
    ),
    w(
        U,
        "Application",
        "virtualenv",
        &["--virtualenv"],
        Value,
        Refused("bourbon runs in the Python environment it is installed in: start the virtualenv's bin/bourbon"),
    ),
    w(
        U,
        "Application",
        "venv",
        &["--venv"],
        Value,
        Refused("bourbon runs in the Python environment it is installed in: start the virtualenv's bin/bourbon"),
    ),
    w(
        U,
        "Application",
        "need-app",
        &["--need-app"],
        Switch,
        Already("a worker that cannot load the application stops the server (exit 4)"),
    ),
    w(
        U,
        "Application",
        "lazy-apps",
        &["--lazy-apps"],
        Switch,
        Already("each worker loads the application after the fork unless --preload is given"),
    ),
    w(
        U,
        "Application",
        "single-interpreter",
        &["--single-interpreter"],
        Switch,
        Already("there is one interpreter per process"),
    ),
    w(
        U,
        "Application",
        "plugins",
        &["--plugins", "--plugin"],
        Value,
        Already("Python WSGI is built in"),
    ),
    w(
        U,
        "Application",
        "mount",
        &["--mount"],
        Value,
        Refused("bourbon serves one application: use --root-path for its prefix, and one bourbon per application"),
    ),
    w(
        U,
        "Application",
        "manage-script-name",
        &["--manage-script-name"],
        Switch,
        Already("SCRIPT_NAME comes from --root-path"),
    ),
    // ---- uWSGI: sockets ----
    noted(
        w(U, "Sockets", "http-socket", &["--http-socket"], Value, UwsgiAddr),
        "`:8000` means every interface; a path is a unix socket",
    ),
    noted(
        w(U, "Sockets", "http", &["--http"], Value, UwsgiAddr),
        "uWSGI puts a router process in front; bourbon's workers accept the connections themselves, as with --http-socket",
    ),
    w(U, "Sockets", "socket", &["--socket", "-s"], Value, Refused(NO_UWSGI_PROTOCOL)),
    w(U, "Sockets", "uwsgi-socket", &["--uwsgi-socket"], Value, Refused(NO_UWSGI_PROTOCOL)),
    w(
        U,
        "Sockets",
        "https",
        &["--https", "--https-socket"],
        Value,
        Refused(TLS),
    ),
    w(
        U,
        "Sockets",
        "http2",
        &["--http2"],
        Switch,
        Refused("HTTP/2 is not served yet: serve HTTP/1.1 and let the proxy speak HTTP/2 to clients"),
    ),
    w(U, "Sockets", "chmod-socket", &["--chmod-socket"], OptValue, S("chmod_socket")),
    w(U, "Sockets", "listen", &["--listen"], Value, S("backlog")),
    w(U, "Sockets", "reuse-port", &["--reuse-port"], Switch, S("reuse_port")),
    w(
        U,
        "Sockets",
        "vacuum",
        &["--vacuum"],
        Switch,
        Already("unix socket files and the pid file are always removed at exit"),
    ),
    // ---- uWSGI: processes ----
    w(U, "Processes", "processes", &["--processes"], Value, S("workers")),
    w(U, "Processes", "workers", &["--workers"], Value, S("workers")),
    w(U, "Processes", "threads", &["--threads"], Value, S("threads")),
    w(
        U,
        "Processes",
        "master",
        &["--master", "-M"],
        Switch,
        Already("there is always a master"),
    ),
    w(
        U,
        "Processes",
        "enable-threads",
        &["--enable-threads"],
        Switch,
        Already("the application may always start threads"),
    ),
    w(
        U,
        "Processes",
        "die-on-term",
        &["--die-on-term"],
        Switch,
        Already("SIGTERM stops the server gracefully (SIGHUP reloads)"),
    ),
    w(
        U,
        "Processes",
        "thunder-lock",
        &["--thunder-lock"],
        Switch,
        Already("the workers share one accept queue and wait their turn"),
    ),
    w(U, "Processes", "max-requests", &["--max-requests"], Value, S("max_requests")),
    w(
        U,
        "Processes",
        "max-worker-lifetime",
        &["--max-worker-lifetime"],
        Value,
        S("max_worker_lifetime"),
    ),
    noted(
        w(U, "Processes", "reload-on-rss", &["--reload-on-rss"], Value, S("max_worker_memory")),
        "in MiB, as in uWSGI",
    ),
    noted(
        w(U, "Processes", "harakiri", &["--harakiri"], Value, S("timeout")),
        "in seconds; the stuck worker's Python stacks are logged before it is killed",
    ),
    w(
        U,
        "Processes",
        "harakiri-verbose",
        &["--harakiri-verbose"],
        Switch,
        Already("a timed-out worker's request line and Python stacks are always logged"),
    ),
    w(
        U,
        "Processes",
        "cheaper",
        &["--cheaper"],
        Value,
        Ignored("the number of workers is fixed: set --workers, and use SIGTTIN/SIGTTOU to change it"),
    ),
    w(
        U,
        "Processes",
        "gevent",
        &["--gevent"],
        Value,
        Refused(ONE_WORKER_TYPE),
    ),
    w(U, "Processes", "async", &["--async"], Value, Refused(ONE_WORKER_TYPE)),
    w(
        U,
        "Processes",
        "py-autoreload",
        &["--py-autoreload"],
        Value,
        Ignored("use --reload (inotify) instead"),
    ),
    w(
        U,
        "Processes",
        "touch-reload",
        &["--touch-reload"],
        Value,
        Ignored("send SIGHUP to the master to reload, or use --reload with --reload-extra-file"),
    ),
    // ---- uWSGI: process ownership ----
    w(U, "Process ownership", "uid", &["--uid"], Value, S("user")),
    w(U, "Process ownership", "gid", &["--gid"], Value, S("group")),
    w(U, "Process ownership", "umask", &["--umask"], Value, S("umask")),
    w(U, "Process ownership", "pidfile", &["--pidfile"], Value, S("pid")),
    w(
        U,
        "Process ownership",
        "daemonize",
        &["--daemonize"],
        Value,
        Refused("use --daemon with --error-logfile FILE"),
    ),
    w(U, "Process ownership", "procname", &["--procname"], Value, S("proc_name")),
    w(
        U,
        "Process ownership",
        "auto-procname",
        &["--auto-procname"],
        Switch,
        Already("titles read `bourbon: master [APP]` and `bourbon: worker [APP]`"),
    ),
    // ---- uWSGI: requests ----
    w(U, "Requests", "post-buffering", &["--post-buffering"], Value, S("post_buffering")),
    w(U, "Requests", "limit-post", &["--limit-post"], Value, S("limit_request_body")),
    w(
        U,
        "Requests",
        "buffer-size",
        &["--buffer-size"],
        Value,
        Ignored("set --limit-request-line and --limit-request-field-size instead"),
    ),
    w(
        U,
        "Requests",
        "static-map",
        &["--static-map"],
        Value,
        S("static"),
    ),
    w(U, "Requests", "static-map2", &["--static-map2"], Value, Refused(STATIC_MAP2)),
    w(U, "Requests", "check-static", &["--check-static"], Value, Refused(CHECK_STATIC)),
    w(
        U,
        "Requests",
        "offload-threads",
        &["--offload-threads"],
        Value,
        Already("file bodies go out with sendfile(2) from the connection thread"),
    ),
    // ---- uWSGI: logging ----
    w(U, "Logging", "logto", &["--logto"], Value, S("error_logfile")),
    w(
        U,
        "Logging",
        "disable-logging",
        &["--disable-logging"],
        Switch,
        Already("requests are logged only with --access-logfile"),
    ),
    // Only as an ini key: on the command line, --log-format is bourbon's error log format.
    w(
        U,
        "Logging",
        "log-format",
        &[],
        Value,
        Ignored("set --access-logfile and --access-logformat (gunicorn's %(h)s atoms)"),
    ),
    w(
        U,
        "Logging",
        "stats",
        &["--stats"],
        Value,
        Ignored(NO_METRICS),
    ),
    w(
        U,
        "Logging",
        "memory-report",
        &["--memory-report"],
        Switch,
        Ignored(NO_METRICS),
    ),
    // ---- uWSGI: config files ----
    w(U, "Config files", "ini", &["--ini"], Value, S("config")),
    w(
        U,
        "Config files",
        "strict",
        &["--strict"],
        Switch,
        Already("unknown settings are always refused on the command line and warned about in ini files"),
    ),
    // ---- Daphne (long flags only: its -p, -u, -e, -t, -v, -s are gunicorn's or bourbon's) ----
    noted(
        w(D, "Sockets", "bind", &["--bind"], Value, S("bind")),
        "a host without a port takes `--port` (8000 without it); Daphne's `-b` is `-b` here too",
    ),
    noted(
        w(D, "Sockets", "port", &["--port"], Value, Listen(ListenPart::Port)),
        "Daphne's `-p` is gunicorn's pid file here: `-p 8000` is refused, give `--port 8000`",
    ),
    noted(
        w(D, "Sockets", "unix-socket", &["--unix-socket"], Value, Listen(ListenPart::UnixSocket)),
        "Daphne's `-u` is gunicorn's `--user` here: `-u PATH` is refused, give `--unix-socket PATH`",
    ),
    w(D, "Sockets", "fd", &["--fd"], Value, Listen(ListenPart::Fd)),
    w(D, "Sockets", "endpoint", &["--endpoint"], Value, Refused(ENDPOINT)),
    w(D, "Application", "root-path", &["--root-path"], Value, S("root_path")),
    noted(
        w(D, "WebSockets", "ping-interval", &["--ping-interval"], Value, S("ws_ping_interval")),
        "Daphne pings an idle WebSocket; bourbon pings every one this often",
    ),
    noted(
        w(D, "WebSockets", "ping-timeout", &["--ping-timeout"], Value, S("ws_ping_timeout")),
        "Daphne's default is 30, bourbon's 20",
    ),
    w(
        D,
        "WebSockets",
        "websocket_timeout",
        &["--websocket_timeout"],
        Value,
        Forever("ws_max_lifetime"),
    ),
    w(
        D,
        "WebSockets",
        "websocket_connect_timeout",
        &["--websocket_connect_timeout"],
        Value,
        Ignored(NOT_TUNABLE),
    ),
    noted(
        w(
            D,
            "WebSockets",
            "websocket-max-message-size",
            &["--websocket-max-message-size"],
            Value,
            S("ws_max_size"),
        ),
        "Daphne's default is 1 MiB, bourbon's 16 MiB; `0` (Daphne: no limit) is refused",
    ),
    w(
        D,
        "WebSockets",
        "websocket-max-frame-size",
        &["--websocket-max-frame-size"],
        Value,
        Already("a frame is bounded by --ws-max-size, as its message is"),
    ),
    w(
        D,
        "WebSockets",
        "application-close-timeout",
        &["--application-close-timeout"],
        Value,
        Ignored(NOT_TUNABLE),
    ),
    w(
        D,
        "HTTP",
        "http-timeout",
        &["--http-timeout"],
        Value,
        Ignored("there is no deadline on a response; --timeout replaces a worker that stops responding"),
    ),
    w(D, "Proxies", "proxy-headers", &["--proxy-headers"], Switch, Already(PROXY_HEADERS)),
    w(D, "Proxies", "proxy-headers-host", &["--proxy-headers-host"], Value, Ignored(FORWARDED)),
    w(D, "Proxies", "proxy-headers-port", &["--proxy-headers-port"], Value, Ignored(FORWARDED)),
    w(
        D,
        "HTTP",
        "server-name",
        &["--server-name"],
        Value,
        Ignored(SERVER_HEADER),
    ),
    w(
        D,
        "HTTP",
        "no-server-name",
        &["--no-server-name"],
        Switch,
        Ignored(SERVER_HEADER),
    ),
    noted(
        w(D, "Logging", "access-log", &["--access-log"], Value, S("access_logfile")),
        "Daphne logs requests to stdout by default; bourbon only with this",
    ),
    w(
        D,
        "Logging",
        "verbosity",
        &["--verbosity"],
        Value,
        Ignored("give --log-level (Daphne's 0 is warning, 1 info, 2 debug) and --access-logfile - for the request lines"),
    ),
    w(
        D,
        "Logging",
        "log-fmt",
        &["--log-fmt"],
        Value,
        Ignored("the error log's format is gunicorn's"),
    ),
    // ---- Uvicorn ----
    w(V, "Sockets", "host", &["--host"], Value, Listen(ListenPart::Host)),
    w(V, "Sockets", "port", &["--port"], Value, Listen(ListenPart::Port)),
    noted(
        w(V, "Sockets", "uds", &["--uds"], Value, Listen(ListenPart::Uds)),
        "uvicorn then ignores `--host`/`--port`: together they are refused",
    ),
    noted(
        w(V, "Sockets", "fd", &["--fd"], Value, Listen(ListenPart::Fd)),
        "uvicorn then ignores `--host` and `--port`: beside `--host` it is refused; beside `--port` alone both are listened on, as Daphne does",
    ),
    w(V, "Sockets", "backlog", &["--backlog"], Value, S("backlog")),
    w(V, "Application", "interface", &["--interface"], Value, S("interface")),
    w(V, "Application", "factory", &["--factory"], Switch, Factory),
    w(V, "Application", "app-dir", &["--app-dir"], Value, S("pythonpath")),
    w(V, "Application", "root-path", &["--root-path"], Value, S("root_path")),
    w(V, "Application", "lifespan", &["--lifespan"], Value, S("lifespan")),
    w(
        V,
        "Application",
        "env-file",
        &["--env-file"],
        Value,
        Refused("give each variable as -e KEY=VALUE (or export them from the file in the shell that starts bourbon)"),
    ),
    noted(
        w(V, "Processes", "workers", &["--workers"], Value, S("workers")),
        "uvicorn runs one process by default, bourbon one per CPU: give `-w 1` to keep one",
    ),
    w(V, "Processes", "reload", &["--reload"], Switch, S("reload")),
    w(V, "Processes", "reload-dir", &["--reload-dir"], Value, Ignored(RELOAD_WATCH)),
    w(V, "Processes", "reload-include", &["--reload-include"], Value, Ignored(RELOAD_WATCH)),
    w(V, "Processes", "reload-exclude", &["--reload-exclude"], Value, Ignored(RELOAD_WATCH)),
    w(
        V,
        "Processes",
        "reload-delay",
        &["--reload-delay"],
        Value,
        Ignored("--reload waits until nothing has changed for 0.2 s"),
    ),
    w(V, "Processes", "limit-max-requests", &["--limit-max-requests"], Value, S("max_requests")),
    w(
        V,
        "Processes",
        "limit-concurrency",
        &["--limit-concurrency"],
        Value,
        Ignored("bourbon does not answer 503 past a limit; --worker-connections N caps each worker's connections and leaves the rest in the listen queue for other workers"),
    ),
    w(
        V,
        "Processes",
        "timeout-graceful-shutdown",
        &["--timeout-graceful-shutdown"],
        Value,
        S("graceful_timeout"),
    ),
    w(
        V,
        "Processes",
        "loop",
        &["--loop"],
        Value,
        S("loop"),
    ),
    noted(
        w(V, "HTTP", "timeout-keep-alive", &["--timeout-keep-alive"], Value, S("keep_alive")),
        "uvicorn's default is 5, bourbon's 2",
    ),
    w(
        V,
        "HTTP",
        "http",
        &["--http"],
        Value,
        Unless(&["auto", "h11", "httptools"], "bourbon parses HTTP/1.1 itself (strict, RFC 9112)"),
    ),
    w(
        V,
        "HTTP",
        "h11-max-incomplete-event-size",
        &["--h11-max-incomplete-event-size"],
        Value,
        Ignored("set --limit-request-line and --limit-request-field_size instead"),
    ),
    w(
        V,
        "HTTP",
        "server-header",
        &["--server-header"],
        Switch,
        Already(SERVER_HEADER),
    ),
    w(
        V,
        "HTTP",
        "no-server-header",
        &["--no-server-header"],
        Switch,
        Ignored(SERVER_HEADER),
    ),
    w(V, "HTTP", "date-header", &["--date-header"], Switch, Already(DATE_HEADER)),
    w(
        V,
        "HTTP",
        "no-date-header",
        &["--no-date-header"],
        Switch,
        Ignored(DATE_HEADER),
    ),
    w(
        V,
        "HTTP",
        "header",
        &["--header"],
        Value,
        Ignored("set default response headers in the application or the proxy"),
    ),
    w(
        V,
        "WebSockets",
        "ws",
        &["--ws"],
        Value,
        Unless(
            &["auto", "websockets", "websockets-sansio", "wsproto"],
            "bourbon frames WebSockets itself and serves them whenever the ASGI application accepts them",
        ),
    ),
    w(V, "WebSockets", "ws-max-size", &["--ws-max-size"], Value, S("ws_max_size")),
    w(V, "WebSockets", "ws-max-queue", &["--ws-max-queue"], Value, S("ws_max_queue")),
    w(V, "WebSockets", "ws-ping-interval", &["--ws-ping-interval"], Value, S("ws_ping_interval")),
    w(V, "WebSockets", "ws-ping-timeout", &["--ws-ping-timeout"], Value, S("ws_ping_timeout")),
    w(
        V,
        "WebSockets",
        "ws-per-message-deflate",
        &["--ws-per-message-deflate"],
        Value,
        S("ws_per_message_deflate"),
    ),
    noted(
        w(
            V,
            "Proxies",
            "proxy-headers",
            &["--proxy-headers"],
            Switch,
            Already(PROXY_HEADERS),
        ),
        "the client is the rightmost untrusted X-Forwarded-For address, as in uvicorn",
    ),
    w(
        V,
        "Proxies",
        "no-proxy-headers",
        &["--no-proxy-headers"],
        Switch,
        Ignored("give --forwarded-allow-ips '' to trust no TCP peer"),
    ),
    w(
        V,
        "Proxies",
        "forwarded-allow-ips",
        &["--forwarded-allow-ips"],
        Value,
        S("forwarded_allow_ips"),
    ),
    w(V, "Logging", "log-level", &["--log-level"], Value, S("log_level")),
    noted(
        w(V, "Logging", "log-config", &["--log-config"], Value, S("log_config")),
        "a .json or .ini file as uvicorn reads it; YAML is not read: write it as JSON or TOML",
    ),
    noted(
        w(V, "Logging", "no-access-log", &["--no-access-log"], Switch, Already(ACCESS_LOG)),
        "uvicorn's `--access-log` (on by default) is `--access-logfile -` here; `--access-log` itself is Daphne's, taking a file",
    ),
    w(
        V,
        "Logging",
        "use-colors",
        &["--use-colors", "--no-use-colors"],
        Switch,
        Already("the error log has no colours"),
    ),
    w(V, "TLS", "ssl-keyfile", &["--ssl-keyfile"], Value, Refused(TLS)),
    w(V, "TLS", "ssl-certfile", &["--ssl-certfile"], Value, Refused(TLS)),
    w(V, "TLS", "ssl-keyfile-password", &["--ssl-keyfile-password"], Value, Ignored(TLS)),
    w(V, "TLS", "ssl-version", &["--ssl-version"], Value, Ignored(TLS)),
    w(V, "TLS", "ssl-cert-reqs", &["--ssl-cert-reqs"], Value, Ignored(TLS)),
    w(V, "TLS", "ssl-ca-certs", &["--ssl-ca-certs"], Value, Ignored(TLS)),
    w(V, "TLS", "ssl-ciphers", &["--ssl-ciphers"], Value, Ignored(TLS)),
];

/// The word a command-line flag spells, if another server's.
pub(crate) fn by_flag(flag: &str) -> Option<&'static Word> {
    WORDS.iter().find(|w| w.flags.contains(&flag))
}

/// The word a command-line flag spells with this value: a flag two servers share with
/// different meanings is told apart by its value (uWSGI's `--http :8000` is an address,
/// Uvicorn's `--http h11` a parser), the word whose values it is winning.
pub(crate) fn by_flag_value(word: &'static Word, flag: &str, value: &str) -> &'static Word {
    WORDS
        .iter()
        .filter(|w| w.flags.contains(&flag) && w.arity == word.arity)
        .find(|w| match w.becomes {
            Becomes::Unless(values, _) => values
                .iter()
                .any(|ok| ok.eq_ignore_ascii_case(value.trim())),
            _ => false,
        })
        .unwrap_or(word)
}

/// The gunicorn setting of this config-file name.
pub(crate) fn gunicorn(name: &str) -> Option<&'static Word> {
    WORDS
        .iter()
        .find(|w| w.dialect == Dialect::Gunicorn && w.name == name)
}

/// The uWSGI option of this name (underscores accepted for dashes).
pub(crate) fn uwsgi(name: &str) -> Option<&'static Word> {
    let name = name.replace('_', "-");
    WORDS
        .iter()
        .find(|w| w.dialect == Dialect::Uwsgi && w.name == name)
}

/// Every gunicorn setting name, hooks included: what a Python config file is read for.
pub(crate) fn gunicorn_names() -> impl Iterator<Item = &'static str> {
    WORDS
        .iter()
        .filter(|w| w.dialect == Dialect::Gunicorn)
        .map(|w| w.name)
}

/// The registry setting a word sets, if it sets one.
pub(crate) fn target(w: &Word) -> Option<&'static Setting> {
    match w.becomes {
        Becomes::Setting(name) | Becomes::Forever(name) => by_name(name),
        Becomes::UwsgiAddr | Becomes::Listen(_) => by_name("bind"),
        Becomes::App(_) => by_name("app"),
        _ => None,
    }
}

/// How bad a note is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteLevel {
    /// Worth knowing when debugging (a word accepted that changes nothing here).
    Debug,
    /// Something the user asked for will not happen.
    Warning,
}

/// One line the loader has to say without failing; the caller logs it once the log is
/// open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// How bad it is.
    pub level: NoteLevel,
    /// The line, naming where the word was written.
    pub text: String,
}

impl Note {
    pub(crate) fn warn(text: String) -> Self {
        Note {
            level: NoteLevel::Warning,
            text,
        }
    }
    pub(crate) fn debug(text: String) -> Self {
        Note {
            level: NoteLevel::Debug,
            text,
        }
    }
}

/// Values that say "not set": a word with no meaning here given one of them is no news.
fn is_off(items: &[String]) -> bool {
    items.iter().all(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off" | "none"
        )
    })
}

/// uWSGI's address syntax for bourbon's `bind`: a path (with a `/`, and no port) is a unix
/// socket; `:8000` and `host:port` are TCP, as in `bind`.
pub(crate) fn uwsgi_addr(v: &str) -> String {
    let t = v.trim();
    if t.starts_with("unix:") || t.starts_with("fd://") || t.starts_with("tcp://") {
        return t.to_string();
    }
    if t.contains('/') || t.ends_with(".sock") {
        return format!("unix:{t}");
    }
    t.to_string()
}

/// The words of one source that combine: uWSGI's application options (in any order), the
/// parts of Daphne's and Uvicorn's addresses, Uvicorn's `--factory`. Each is kept with the
/// label it was spelled at.
#[derive(Default)]
pub(crate) struct Parts {
    module: Option<(String, String)>,
    file: Option<(String, String)>,
    callable: Option<(String, String)>,
    host: Option<(String, String)>,
    port: Option<(String, String)>,
    /// `--uds`, `--unix-socket` and `--fd`, in order, already written as `bind` values.
    sockets: Vec<(String, ListenPart, String)>,
    factory: Option<String>,
}

/// The default port of a host given without one (bourbon's, Daphne's and Uvicorn's).
const DEFAULT_PORT: u16 = 8000;

/// `HOST:PORT`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host of a `bind` value that names a TCP host without a port (`0.0.0.0`,
/// `localhost`, `[::1]`, `::1`); `None` for anything else.
fn portless_host(v: &str) -> Option<&str> {
    let t = v.trim();
    if t.is_empty() || t.starts_with("unix:") || t.starts_with("fd://") {
        return None;
    }
    let t = t.strip_prefix("tcp://").unwrap_or(t);
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Some(inner);
    }
    if t.parse::<std::net::Ipv6Addr>().is_ok() || !t.contains(':') {
        return Some(t);
    }
    None
}

impl Parts {
    /// Turn the parts into the occurrences of this source: `app` (and, for a uWSGI file,
    /// `pythonpath`), the addresses `--host`, `--port`, `--uds`, `--unix-socket` and `--fd`
    /// make, and `APP` called for `--factory`. Also refuses Daphne's short flags where
    /// gunicorn's mean something else.
    pub(crate) fn finish(
        self,
        out: &mut Vec<Occurrence>,
        notes: &mut Vec<Note>,
    ) -> Result<(), ConfigError> {
        daphne_short_flags(out)?;
        listen(self.host, self.port, self.sockets, out)?;
        if let Some(label) = &self.factory {
            factory(label, out)?;
        }
        let callable = self.callable.as_ref().map(|(_, c)| c.trim().to_string());
        let (Some(app), Some(pythonpath)) = (by_name("app"), by_name("pythonpath")) else {
            return Ok(());
        };
        if let Some((label, module)) = self.module {
            let module = module.trim();
            let spec = match (module.contains(':'), &callable) {
                (false, Some(c)) => format!("{module}:{c}"),
                _ => module.to_string(),
            };
            push(out, app, &label, spec, true);
        } else if let Some((label, file)) = self.file {
            let path = std::path::Path::new(file.trim());
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let identifier = stem
                .chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_alphabetic())
                && stem.chars().all(|c| c == '_' || c.is_alphanumeric());
            if !identifier || path.extension().is_some_and(|e| e != "py") {
                return Err(ConfigError::new(format_args!(
                    "{label}: '{file}': bourbon imports the file as a Python module, so it must be a .py file whose name is an identifier (rename it, or give module = package.module:callable)"
                )));
            }
            let dir = match path.parent().map(|p| p.display().to_string()) {
                Some(d) if !d.is_empty() => d,
                _ => ".".to_string(),
            };
            let attr = callable.unwrap_or_else(|| "application".to_string());
            push(out, pythonpath, &label, dir, true);
            push(out, app, &label, format!("{stem}:{attr}"), true);
        } else if let Some((label, _)) = self.callable {
            notes.push(Note::warn(format!(
                "{label}: ignored without module or wsgi-file (give APP as module:callable)"
            )));
        }
        Ok(())
    }
}

/// Daphne's `-p PORT` and `-u PATH` read as gunicorn's `-p PIDFILE` and `-u USER` would
/// serve on the wrong address, silently: refused with the long flag to use. A pid file
/// named by digits alone and a user name with a `/` are not worth that risk.
fn daphne_short_flags(out: &[Occurrence]) -> Result<(), ConfigError> {
    for o in out.iter().filter(|o| !o.foreign) {
        let Some(v) = o.items.last() else { continue };
        let v = v.trim();
        if o.label == "-p"
            && o.setting.name == "pid"
            && !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ConfigError::new(format_args!(
                "-p {v}: -p is the pid file (gunicorn's); for Daphne's port give --port {v} (or --pid {v} for a pid file of that name)"
            )));
        }
        if o.label == "-u" && o.setting.name == "user" && v.contains('/') {
            return Err(ConfigError::new(format_args!(
                "-u {v}: -u is the user to run as (gunicorn's); for Daphne's unix socket give --unix-socket {v}"
            )));
        }
    }
    Ok(())
}

/// Put Daphne's and Uvicorn's address parts together into `bind` values of this source:
/// `--port` completes `--host` and every `--bind` host given without a port (Daphne's
/// `-b HOST -p PORT`); `--host` alone listens on port 8000 and `--port` alone on
/// `127.0.0.1` (both servers' defaults); the sockets are listened on beside them, as
/// Daphne does. Uvicorn's `--uds` (and `--fd` beside `--host`) make uvicorn ignore
/// `--host`/`--port`, so that pair is refused rather than bourbon listening on an address
/// uvicorn never opened.
fn listen(
    host: Option<(String, String)>,
    port: Option<(String, String)>,
    sockets: Vec<(String, ListenPart, String)>,
    out: &mut Vec<Occurrence>,
) -> Result<(), ConfigError> {
    if host.is_none() && port.is_none() && sockets.is_empty() {
        return Ok(());
    }
    let Some(bind) = by_name("bind") else {
        return Ok(());
    };
    let ignored_by_uvicorn = sockets.iter().find_map(|(label, part, _)| match part {
        ListenPart::Uds => host.as_ref().or(port.as_ref()).map(|o| (label, o)),
        ListenPart::Fd => host.as_ref().map(|o| (label, o)),
        _ => None,
    });
    if let Some((label, (other, _))) = ignored_by_uvicorn {
        return Err(ConfigError::new(format_args!(
            "{label}: uvicorn listens only there and ignores {other}: drop {other} (to listen on both, give each address as --bind)"
        )));
    }
    let port = match port {
        Some((label, v)) => {
            let n = crate::types::parse_whole(&v)
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    ConfigError::new(format_args!(
                        "{label}: '{}' is not a port number (0-65535)",
                        v.trim()
                    ))
                })?;
            Some((label, n))
        }
        None => None,
    };
    // The port completes each `--bind` host without one, in place.
    let mut completed = false;
    let mut full = false;
    if let Some(o) = out.iter_mut().find(|o| std::ptr::eq(o.setting, bind)) {
        for item in &mut o.items {
            match (portless_host(item), &port) {
                (Some(h), Some((_, n))) => {
                    *item = host_port(h, *n);
                    completed = true;
                }
                (Some(_), None) => {}
                (None, _) => full = true,
            }
        }
    }
    let mut add: Vec<(String, String)> = Vec::new();
    match (&host, &port) {
        (Some((label, h)), p) => {
            let n = p.as_ref().map_or(DEFAULT_PORT, |(_, n)| *n);
            add.push((label.clone(), host_port(h.trim(), n)));
        }
        (None, Some((label, n))) if !completed => {
            if full {
                return Err(ConfigError::new(format_args!(
                    "{label} {n}: every --bind address has its port already: drop {label}, or give --bind HOST for it to complete"
                )));
            }
            add.push((label.clone(), host_port("127.0.0.1", *n)));
        }
        _ => {}
    }
    add.extend(sockets.into_iter().map(|(label, _, v)| (label, v)));
    for (label, v) in add {
        // Checked here, so that the error names the flag that gave the value.
        crate::types::parse_bind(&v)
            .map_err(|b| ConfigError::new(format_args!("{label}: {}", b.msg)))?;
        push(out, bind, &label, v, true);
    }
    Ok(())
}

/// Uvicorn's `--factory`: the source's `APP` is called, as `module:factory()` says.
fn factory(label: &str, out: &mut [Occurrence]) -> Result<(), ConfigError> {
    let app = out
        .iter_mut()
        .find(|o| matches!(o.setting.kind, crate::registry::Kind::Positional(_)));
    match app.and_then(|o| o.items.last_mut()) {
        Some(spec) => {
            if !spec.trim_end().ends_with("()") {
                *spec = format!("{}()", spec.trim());
            }
            Ok(())
        }
        None => Err(ConfigError::new(format_args!(
            "{label}: give APP on the same command line (or write it as module:factory())"
        ))),
    }
}

/// Translate one use of `word` (its values `items`, spelled at `label`) into occurrences
/// of registry settings, notes, or the error that refuses it. `label` is how the error
/// names the place: the flag as typed, or `FILE: line N: name`.
pub(crate) fn translate(
    word: &'static Word,
    label: &str,
    items: Vec<String>,
    out: &mut Vec<Occurrence>,
    parts: &mut Parts,
    notes: &mut Vec<Note>,
) -> Result<(), ConfigError> {
    let shown = items.join(", ");
    match word.becomes {
        Becomes::Setting(_) | Becomes::UwsgiAddr | Becomes::Forever(_) => {
            let Some(setting) = target(word) else {
                return Ok(());
            };
            if items.len() > 1 && !matches!(setting.kind, crate::registry::Kind::List(_)) {
                return Err(ConfigError::new(format_args!(
                    "{label}: expected a single value, not a list"
                )));
            }
            for v in items {
                let v = match word.becomes {
                    Becomes::UwsgiAddr => uwsgi_addr(&v),
                    // Daphne's "-1 for infinite"; any negative number means the same there.
                    Becomes::Forever(_)
                        if v.trim().starts_with('-') && v.trim()[1..].parse::<f64>().is_ok() =>
                    {
                        "0".to_string()
                    }
                    _ => v,
                };
                push(out, setting, label, v, true);
            }
        }
        Becomes::Listen(part) => {
            for v in items {
                let v = v.trim().to_string();
                let label = label.to_string();
                match part {
                    ListenPart::Host => parts.host = Some((label, v)),
                    ListenPart::Port => parts.port = Some((label, v)),
                    ListenPart::Uds | ListenPart::UnixSocket | ListenPart::Fd => {
                        // One of each, the last given winning, as in Daphne and Uvicorn.
                        parts.sockets.retain(|(_, p, _)| *p != part);
                        let addr = match part {
                            ListenPart::Fd => format!("fd://{v}"),
                            _ => format!("unix:{v}"),
                        };
                        parts.sockets.push((label, part, addr));
                    }
                }
            }
        }
        Becomes::WorkerClass => {
            let known = |list: &[&str]| {
                items
                    .iter()
                    .all(|v| list.iter().any(|ok| ok.eq_ignore_ascii_case(v.trim())))
            };
            if known(THREAD_WORKERS) {
                notes.push(Note::debug(format!(
                    "{label} {shown}: accepted; bourbon works this way"
                )));
            } else if known(ASGI_WORKERS) {
                if let Some(interface) = by_name("interface") {
                    push(out, interface, label, "asgi".to_string(), true);
                }
                notes.push(Note::debug(format!(
                    "{label} {shown}: an ASGI worker: --interface asgi"
                )));
            } else {
                return Err(ConfigError::new(format_args!(
                    "{label} {shown}: {ONE_WORKER_TYPE}"
                )));
            }
        }
        Becomes::Factory => {
            if !is_off(&items) {
                parts.factory = Some(label.to_string());
            }
        }
        Becomes::Unless(values, why) => {
            for v in &items {
                if values.iter().any(|ok| ok.eq_ignore_ascii_case(v.trim())) {
                    notes.push(Note::debug(format!(
                        "{label} {v}: accepted; bourbon works this way"
                    )));
                } else {
                    notes.push(Note::warn(format!(
                        "{label} {v}: has no effect in bourbon: {why}"
                    )));
                }
            }
        }
        Becomes::App(part) => {
            let Some(v) = items.into_iter().last() else {
                return Ok(());
            };
            let slot = match part {
                AppPart::Module => &mut parts.module,
                AppPart::File => &mut parts.file,
                AppPart::Callable => &mut parts.callable,
            };
            *slot = Some((label.to_string(), v));
        }
        Becomes::Hook | Becomes::DeadHook(_) => {
            return Err(ConfigError::new(format_args!(
                "{label}: '{}' is a gunicorn server hook: define it as a function in a Python config file (-c gunicorn.conf.py)",
                word.name
            )));
        }
        Becomes::Only(values, why) => {
            let fine = items
                .iter()
                .all(|v| values.iter().any(|ok| ok.eq_ignore_ascii_case(v.trim())));
            if !fine {
                return Err(ConfigError::new(format_args!("{label} {shown}: {why}")));
            }
            notes.push(Note::debug(format!(
                "{label} {shown}: accepted; bourbon works this way"
            )));
        }
        Becomes::Already(why) => {
            notes.push(Note::debug(format!(
                "{label}: accepted, nothing to do: {why}"
            )));
        }
        Becomes::Ignored(why) => {
            let note = format!("{label}: has no effect in bourbon: {why}");
            notes.push(if is_off(&items) {
                Note::debug(note)
            } else {
                Note::warn(note)
            });
        }
        Becomes::Refused(why) => {
            if is_off(&items) {
                notes.push(Note::debug(format!("{label}: off; {why}")));
            } else {
                return Err(ConfigError::new(format_args!("{label}: {why}")));
            }
        }
    }
    Ok(())
}

/// Split a command line the way a POSIX shell does for words (for `GUNICORN_CMD_ARGS`):
/// blanks separate words; single quotes keep everything; double quotes keep everything but
/// a backslash before `"`, `\`, `$` or `` ` ``; a backslash outside quotes keeps the next
/// character. No expansion of any kind.
pub(crate) fn split_shell(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// One `key = value` line of a uWSGI ini file's `[uwsgi]` section.
pub(crate) struct IniEntry {
    pub(crate) line: usize,
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Read the `[uwsgi]` section of an ini file's text, with uWSGI's placeholders expanded:
/// `%d` the file's directory (with a trailing `/`), `%p` its path, `%s` its name, `%n` its
/// name without the extension, `%c` the name of its directory, `%%` a percent sign,
/// `%(key)` the value an earlier line gave `key`, and `$(VAR)` the environment variable
/// (empty when unset). A key alone on its line means `true`.
pub(crate) fn parse_ini(
    text: &str,
    path: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
) -> Vec<IniEntry> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let dir_slash = if dir.ends_with('/') {
        dir.clone()
    } else {
        format!("{dir}/")
    };
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = abs
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir_name = abs
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut section = String::new();
    let mut out: Vec<IniEntry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            section = rest.trim_end_matches(']').trim().to_string();
            continue;
        }
        if section != "uwsgi" {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, "true"),
        };
        let mut expanded = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(pos) = rest.find(['%', '$']) {
            expanded.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$(") {
                if let Some(end) = after.find(')') {
                    expanded.push_str(env.get(&after[..end]).map_or("", String::as_str));
                    rest = &after[end + 1..];
                    continue;
                }
            }
            if let Some(after) = tail.strip_prefix("%(") {
                if let Some(end) = after.find(')') {
                    let wanted = &after[..end];
                    if let Some(e) = out.iter().rev().find(|e| e.key == wanted) {
                        expanded.push_str(&e.value);
                    }
                    rest = &after[end + 1..];
                    continue;
                }
            }
            let mut two = tail.chars();
            two.next();
            let sub = match (tail.as_bytes()[0], two.next()) {
                (b'%', Some('d')) => Some(dir_slash.as_str()),
                (b'%', Some('p')) => Some(abs.to_str().unwrap_or_default()),
                (b'%', Some('s')) => Some(name.as_str()),
                (b'%', Some('n')) => Some(stem.as_str()),
                (b'%', Some('c')) => Some(dir_name.as_str()),
                (b'%', Some('%')) => Some("%"),
                _ => None,
            };
            match sub {
                Some(s) => {
                    expanded.push_str(s);
                    rest = &tail[2..];
                }
                None => {
                    expanded.push_str(&tail[..1]);
                    rest = &tail[1..];
                }
            }
        }
        expanded.push_str(rest);
        out.push(IniEntry {
            line: i + 1,
            key: key.to_string(),
            value: expanded,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn words_are_unique_and_agree_with_the_registry() {
        let mut names = std::collections::HashSet::new();
        let mut flags = std::collections::HashMap::new();
        for w in WORDS {
            assert!(
                names.insert((w.dialect, w.name)),
                "{} {} twice",
                w.dialect.title(),
                w.name
            );
            if let Becomes::Setting(n) = w.becomes {
                assert!(by_name(n).is_some(), "{} names no setting {n}", w.name);
            }
            for f in w.flags {
                // A flag the registry has must mean the same setting there.
                if let Some(s) = crate::registry::by_long(f) {
                    assert!(
                        target(w).is_some_and(|t| std::ptr::eq(t, s)),
                        "{f}: {} disagrees with the registry",
                        w.name
                    );
                }
                if let Some(prev) = flags.insert(*f, w) {
                    // Servers may share a flag only when both mean the same: the first
                    // word is the one that answers it.
                    // Or when one takes a few values the other would not (see by_flag_value).
                    let told_apart = prev.arity == w.arity
                        && matches!(w.becomes, Becomes::Unless(..))
                        && !matches!(prev.becomes, Becomes::Unless(..));
                    assert!(
                        told_apart || (prev.becomes == w.becomes && prev.arity == w.arity),
                        "{f}: {} {} and {} {} differ",
                        prev.dialect.title(),
                        prev.name,
                        w.dialect.title(),
                        w.name
                    );
                }
            }
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            split_shell(r#"--bind=127.0.0.1:8000 -w 3 --access-logformat '%(h)s "x"' "a b"\ c"#)
                .unwrap(),
            [
                "--bind=127.0.0.1:8000",
                "-w",
                "3",
                "--access-logformat",
                "%(h)s \"x\"",
                "a b c"
            ]
        );
        assert_eq!(split_shell("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_shell("''").unwrap(), [""]);
        assert!(split_shell("'open").is_err());
        assert!(split_shell("\"open").is_err());
    }

    #[test]
    fn portless_hosts() {
        for (v, want) in [
            ("0.0.0.0", Some("0.0.0.0")),
            ("localhost", Some("localhost")),
            ("tcp://h", Some("h")),
            ("::1", Some("::1")),
            ("[::1]", Some("::1")),
            ("[::1]:80", None),
            ("h:80", None),
            (":80", None),
            ("unix:/x", None),
            ("fd://3", None),
            ("", None),
        ] {
            assert_eq!(portless_host(v), want, "{v}");
        }
        assert_eq!(host_port("::", 8), "[::]:8");
        assert_eq!(host_port("h", 8), "h:8");
    }

    #[test]
    fn uwsgi_addresses() {
        assert_eq!(uwsgi_addr(":8000"), ":8000");
        assert_eq!(uwsgi_addr("127.0.0.1:8000"), "127.0.0.1:8000");
        assert_eq!(uwsgi_addr("/run/app.sock"), "unix:/run/app.sock");
        assert_eq!(uwsgi_addr("app.sock"), "unix:app.sock");
        assert_eq!(uwsgi_addr("unix:/x"), "unix:/x");
    }

    #[test]
    fn ini_section_and_placeholders() {
        let text = "; comment\n[other]\nprocesses = 9\n[uwsgi]\nbase = %dsite\n\
                    chdir = %(base)\nenv = HOME_DIR=$(HOME)\nenv = UNSET=$(BOURBON_SURELY_UNSET)\n\
                    master\nlogto = /var/log/%n.log\npct = 100%%\nodd = %z$x\n";
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), "/home/me".to_string())].into();
        let e = parse_ini(text, std::path::Path::new("/srv/app/uwsgi.ini"), &env);
        let got: Vec<(usize, &str, &str)> = e
            .iter()
            .map(|e| (e.line, e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, "base", "/srv/app/site"),
                (6, "chdir", "/srv/app/site"),
                (7, "env", "HOME_DIR=/home/me"),
                (8, "env", "UNSET="),
                (9, "master", "true"),
                (10, "logto", "/var/log/uwsgi.log"),
                (11, "pct", "100%"),
                (12, "odd", "%z$x"),
            ]
        );
    }
}
