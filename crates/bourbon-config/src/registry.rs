//! The settings registry: the one place every setting is declared.
//!
//! Each [`Setting`] row carries its name (which derives the TOML key and the
//! `BOURBON_*` environment variable), its CLI flags, section, default, docs,
//! and the functions that parse input into [`crate::Config`] and render it back.
//! The CLI parser, env/file loaders, `--help`, `--print-config` and
//! `docs/settings.md` are all generated from [`SETTINGS`]; nothing about an
//! individual setting is written anywhere else.

use std::path::PathBuf;

pub(crate) use crate::setting::{
    apply, by_long, by_name, by_short, defaults, did_you_mean, split_list, Kind, Section, Setting,
    Shown,
};
use crate::types::{
    format_duration, parse_account, parse_app, parse_bind, parse_bool, parse_dogstatsd_tags,
    parse_duration, parse_env_pair, parse_error_log_format, parse_event_loop, parse_health_path,
    parse_interface, parse_lifespan, parse_log_config, parse_log_format, parse_log_level,
    parse_positive_u32, parse_root_path, parse_side_address, parse_size, parse_socket_mode,
    parse_static_mount, parse_umask, parse_url_prefix, parse_usize_in, parse_whole, parse_workers,
    Bad, ControlSocket, LogTarget,
};

fn opt_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn show_opt_path(p: &Option<PathBuf>) -> Shown {
    Shown::Str(
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
}

/// An allow-list setting: entries may also be comma-separated within one item.
fn parse_allow(items: &[String]) -> Result<crate::IpAllow, Bad> {
    let entries: Vec<&str> = items.iter().flat_map(|i| i.split(',')).collect();
    crate::IpAllow::parse(&entries).map_err(Bad::form)
}

/// A header field name (RFC 9110 §5.1 token), or "" for none.
fn parse_header_name(s: &str) -> Result<String, Bad> {
    let t = s.trim();
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if t.chars().all(tchar) {
        Ok(t.to_owned())
    } else {
        Err(Bad::form(format!("'{t}' is not a header field name")))
    }
}

fn num(n: impl ToString) -> Shown {
    Shown::Num(n.to_string())
}

/// Limits taken from gunicorn; above them a request is surely hostile.
const MAX_REQUEST_LINE: usize = 8190;
const MAX_HEADER_FIELDS: usize = 32768;

/// Every setting, in help/docs order within each section.
pub(crate) static SETTINGS: &[Setting] = &[
    // ---- Application ----
    Setting {
        name: "app",
        long: &[],
        short: None,
        metavar: "APP",
        section: Section::Application,
        kind: Kind::Positional(|c, s| {
            c.app = Some(parse_app(s)?);
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: None,
        example: "mysite.wsgi:application",
        help: "the WSGI app: module:callable, module, or module:factory()",
        doc: "The WSGI application to serve, given as the positional argument. \
`module:callable` imports `module` and uses its attribute `callable`; a bare \
`module` means `module:application`; `module:factory()` calls `factory` with no \
arguments and serves what it returns. The module is a dotted Python path and the \
attribute a Python identifier. Required unless only printing the config.",
        show: |c| match &c.app {
            Some(a) => Shown::Str(a.to_string()),
            None => Shown::Unset,
        },
    },
    Setting {
        name: "interface",
        long: &["--interface"],
        short: None,
        metavar: "auto|wsgi|asgi",
        section: Section::Application,
        kind: Kind::Value(|c, s| {
            c.interface = parse_interface(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("auto"),
        example: "asgi",
        help: "the interface the app speaks: auto (decided from the app), wsgi, asgi",
        doc: "The interface the application speaks. `auto` decides once the application is \
loaded: a coroutine function, or an object whose `__call__` is one, is ASGI 3 (`async def \
app(scope, receive, send)`); a class whose `__call__` is a coroutine function is ASGI 2; \
anything else is WSGI (PEP 3333). `wsgi` and `asgi` (or `asgi3`) say so outright; `asgi2` \
serves an ASGI 2 application (`app(scope)` returning the coroutine's owner). An ASGI \
application given as `wsgi` is refused with exit 4. See [asgi.md](asgi.md).",
        show: |c| Shown::Str(c.interface.to_string()),
    },
    Setting {
        name: "config",
        long: &["--config"],
        short: Some('c'),
        metavar: "FILE",
        section: Section::Application,
        kind: Kind::Value(|c, s| {
            // The file itself is read by the loader before any setting is
            // applied; here we only record which file it was.
            c.config = opt_path(s);
            Ok(())
        }),
        from_env: true,
        from_file: false,
        default: None,
        example: "bourbon.toml",
        help: "load settings from this file (TOML; gunicorn .py; uWSGI .ini)",
        doc: "A TOML file of settings, keyed by the setting names on this page \
(underscores or dashes; gunicorn's names such as `accesslog` are accepted too). Values in \
it override defaults and are overridden by `GUNICORN_CMD_ARGS`, environment variables and \
command-line options. Only accepted on the command line, in `GUNICORN_CMD_ARGS` or as \
`BOURBON_CONFIG`; a missing file is an error. `bourbon --print-config` writes a file in \
this format. A file ending in `.py`, or `python:MODULE` / `file:PATH`, is a gunicorn \
config file, executed as gunicorn does, with its server hooks; a file ending in `.ini` \
(or any file given with `--ini`) is read for its `[uwsgi]` section. See \
[migrating.md](migrating.md).",
        show: |_| Shown::Unset,
    },
    Setting {
        name: "chdir",
        long: &["--chdir"],
        short: None,
        metavar: "DIR",
        section: Section::Application,
        kind: Kind::Value(|c, s| {
            if !s.is_empty() && !std::path::Path::new(s).is_dir() {
                return Err(Bad::range(format!("'{s}' is not a directory")));
            }
            c.chdir = opt_path(s);
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/srv/mysite",
        help: "change to this directory before loading the app",
        doc: "Directory to change into before the application is imported. Empty \
means stay in the directory bourbon was started from. The directory must exist.",
        show: |c| show_opt_path(&c.chdir),
    },
    Setting {
        name: "pid",
        long: &["--pid"],
        short: Some('p'),
        metavar: "FILE",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.pid = opt_path(s);
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/run/mysite.pid",
        help: "write the master's process id to this file",
        doc: "Write the process id of the master (the process to send signals to) to this \
file at start and remove it at exit. The file is written fresh (to a temporary file beside \
it, renamed over the name) with mode 0644 whatever the umask, so only its owner can change \
it. With `user`, a small process that stays root removes it once the master is gone, so it \
may live in a root-owned directory such as `/run`. Empty means no file.",
        show: |c| show_opt_path(&c.pid),
    },
    Setting {
        name: "control_socket",
        long: &["--control-socket"],
        short: None,
        metavar: "PATH",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.control_socket = match s {
                "" => ControlSocket::Default,
                "off" => ControlSocket::Off,
                // sockaddr_un holds 108 bytes, the terminating NUL included.
                p if p.len() > 107 => {
                    return Err(Bad::range(format!(
                        "'{p}' is {} bytes long; a unix socket path holds at most 107 \
                         (choose a shorter path)",
                        p.len()
                    )))
                }
                p => ControlSocket::Path(PathBuf::from(p)),
            };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/run/mysite/control.sock",
        help: "the master's control socket, read by `bourbon status` and `bourbon top` ('off': none)",
        doc: "The unix socket on which the master answers `bourbon status` and `bourbon top` \
(see `docs/status.md`). The master creates it once it runs as its final user (after `user` \
and `group`), with mode 0600, so only that user (and root) may read it; it is removed at \
exit, kept across HUP, and made again by the new master of a USR2 upgrade. Empty (the \
default) means `$XDG_RUNTIME_DIR/bourbon/PID.sock` when `XDG_RUNTIME_DIR` is set, else \
`/tmp/bourbon-UID/PID.sock` (PID the master's, UID its user's; the directory is made 0700). \
Under systemd give a path in the unit's `RuntimeDirectory=`. `off` turns it off. It is read \
at start: a HUP does not move it.",
        show: |c| Shown::Str(c.control_socket.to_string()),
    },
    Setting {
        name: "pythonpath",
        long: &["--pythonpath"],
        short: None,
        metavar: "DIRS",
        section: Section::Application,
        kind: Kind::List(|c, items| {
            c.pythonpath = items
                .iter()
                .flat_map(|i| i.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/srv/lib,/srv/site",
        help: "comma-separated directories to add to sys.path",
        doc: "Directories to prepend to Python's `sys.path` before importing the \
application, separated by commas. In a config file this may also be an array.",
        show: |c| {
            Shown::List(
                c.pythonpath
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            )
        },
    },
    Setting {
        name: "env",
        long: &["--env"],
        short: Some('e'),
        metavar: "KEY=VALUE",
        section: Section::Application,
        kind: Kind::List(|c, items| {
            c.env = items
                .iter()
                .map(|i| parse_env_pair(i))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "DJANGO_SETTINGS_MODULE=mysite.settings",
        help: "set an environment variable for the app (repeatable)",
        doc: "Set an environment variable in the server process before the \
application is loaded. Repeat the option for several variables. In \
`BOURBON_ENV` separate pairs with commas (values cannot then contain commas); in a \
config file use an array of `\"KEY=VALUE\"` strings.",
        show: |c| Shown::List(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
    },
    Setting {
        name: "root_path",
        long: &["--root-path"],
        short: None,
        metavar: "PATH",
        section: Section::Application,
        kind: Kind::Value(|c, s| {
            c.root_path = parse_root_path(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/app",
        help: "URL prefix the app is mounted under (SCRIPT_NAME)",
        doc: "The URL prefix the application is mounted under, passed to it as \
`SCRIPT_NAME`. Empty, or a path starting with `/` and not ending with `/`. \
Use it when a proxy forwards `/app/...` to bourbon and the application should \
generate URLs under `/app`.",
        show: |c| Shown::Str(c.root_path.clone()),
    },
    // ---- Server socket ----
    Setting {
        name: "bind",
        long: &["--bind"],
        short: Some('b'),
        metavar: "ADDR",
        section: Section::Socket,
        kind: Kind::List(|c, items| {
            if items.is_empty() {
                return Err(Bad::form("at least one address is required"));
            }
            c.bind = items
                .iter()
                .map(|i| parse_bind(i))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("127.0.0.1:8000"),
        example: "0.0.0.0:8000",
        help: "address to listen on (repeatable; 0.0.0.0:$PORT if PORT is set)",
        doc: "Where to listen. Accepted forms: `HOST:PORT`, `[IPV6]:PORT`, a bare \
`HOST` (port 8000), `unix:PATH` for a Unix socket, and `fd://N` for an \
inherited listening socket. `HOST` may be a name such as `localhost`. Repeat \
the option to listen on several addresses. A source that sets `bind` replaces \
the addresses from lower-precedence sources rather than adding to them. In \
`BOURBON_BIND` separate addresses with commas; in a config file use a string or \
an array. If no source sets it and the `PORT` environment variable is set, the \
default becomes `0.0.0.0:$PORT`.",
        show: |c| Shown::List(c.bind.iter().map(|b| b.to_string()).collect()),
    },
    Setting {
        name: "backlog",
        long: &["--backlog"],
        short: None,
        metavar: "N",
        section: Section::Socket,
        kind: Kind::Value(|c, s| {
            c.backlog = parse_positive_u32(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("2048"),
        example: "2048",
        help: "maximum number of pending connections",
        doc: "The length of the queue of connections waiting to be accepted. The \
operating system may cap it (e.g. `net.core.somaxconn` on Linux).",
        show: |c| num(c.backlog),
    },
    // ---- Worker processes ----
    Setting {
        name: "workers",
        long: &["--workers"],
        short: Some('w'),
        metavar: "N",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.workers = parse_workers(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("auto"),
        example: "4",
        help: "number of worker processes ($WEB_CONCURRENCY, else the CPUs available)",
        doc: "How many worker processes serve requests. At least 1. If no source \
sets it, the default is the `WEB_CONCURRENCY` environment variable when that is set, \
and otherwise `auto`: the number of CPUs this process may use, that is the CPUs in its \
affinity mask (`taskset`, a container's cpuset) capped by the cgroup v2 CPU quota \
(`cpu.max`, e.g. `docker --cpus 1.5`, rounded up), at least 1. `auto` may also be given \
explicitly; `bourbon --print-config` shows the number it resolves to. \
There is always a master process: it binds the sockets, forks the workers \
(each loads the application after the fork, unless `preload` is on), replaces a worker that dies or times out, \
recycles workers (`max_requests`, `max_worker_lifetime`, `max_worker_memory`), adds or \
removes one on SIGTTIN/SIGTTOU, replaces them all with freshly loaded ones on SIGHUP \
(after re-reading the settings), and stops them on SIGTERM (graceful) or SIGINT/SIGQUIT \
(fast). A worker that cannot load the application stops the master with exit code 4 \
instead of a crash loop.",
        show: |c| num(c.workers),
    },
    Setting {
        name: "threads",
        long: &["--threads"],
        short: None,
        metavar: "N",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.threads = parse_positive_u32(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("1"),
        example: "4",
        help: "threads per worker running the app",
        doc: "How many threads in each worker run the application concurrently. \
At least 1. With 1, a request whose body has fully arrived is run on the connection \
thread itself when the Python thread is free (no thread switch); generators and file \
wrappers are still iterated on the Python thread, and the application never runs on two \
threads at once, so `wsgi.multithread` is false. With more, requests go to a pool of that \
many threads and `wsgi.multithread` is true. Django opens one database connection per \
thread: keep threads × workers within the database's connection limit.",
        show: |c| num(c.threads),
    },
    Setting {
        name: "worker_connections",
        long: &["--worker-connections"],
        short: None,
        metavar: "N",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.worker_connections = parse_whole(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "1000",
        help: "most connections a worker holds at once (0 = no limit)",
        doc: "The most client connections one worker holds at once: idle keep-alive \
connections, requests in progress and WebSockets alike, as gunicorn's `gthread`, `gevent` \
and `eventlet` workers count them. A worker at the limit stops accepting until one of its \
connections closes; new connections wait in the listen queue (`backlog`), where the other \
workers take them, so a worker full of idle WebSockets does not refuse anyone while \
another has room. It also keeps a worker below its file-descriptor limit. A worker logs a \
warning the first time it reaches the limit. With several listeners a worker may hold one \
more connection per further listener. `0` (the default) sets no limit; gunicorn's default \
for its asynchronous workers is 1000.",
        show: |c| num(c.worker_connections),
    },
    Setting {
        name: "max_requests",
        long: &["--max-requests"],
        short: None,
        metavar: "N",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.max_requests = parse_whole(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "1000",
        help: "replace a worker after this many requests (0 = never)",
        doc: "After a worker has handled this many requests, the master starts its \
replacement and tells it to stop: it stops accepting, finishes the requests it holds \
(within `graceful_timeout`) and exits. The replacement is started before the old worker \
exits and the workers share one accept queue, so capacity never drops and no connection \
is lost. A simple defence against memory leaks in the application. The count is checked \
about twice a second, so a busy worker may serve a few more. `0` disables it.",
        show: |c| num(c.max_requests),
    },
    Setting {
        name: "max_requests_jitter",
        long: &["--max-requests-jitter"],
        short: None,
        metavar: "N",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.max_requests_jitter = parse_whole(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "50",
        help: "add a random 0..=N to max_requests for each worker",
        doc: "Each worker's `max_requests` is increased by a random number from 0 to \
this, chosen when it starts, so that workers started together are not all replaced at \
the same moment.",
        show: |c| num(c.max_requests_jitter),
    },
    Setting {
        name: "max_worker_lifetime",
        long: &["--max-worker-lifetime"],
        short: None,
        metavar: "SECS",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.max_worker_lifetime = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "3600",
        help: "replace a worker after it has run this many seconds (0 = never)",
        doc: "A worker older than this is replaced the way `max_requests` replaces one: \
its successor starts first, then it finishes its requests and exits. `0` disables it.",
        show: |c| Shown::Num(format_duration(c.max_worker_lifetime)),
    },
    Setting {
        name: "max_worker_memory",
        long: &["--max-worker-memory", "--reload-on-rss"],
        short: None,
        metavar: "MiB",
        section: Section::Workers,
        kind: Kind::Value(|c, s| {
            c.max_worker_memory = parse_whole(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "512",
        help: "replace a worker whose resident memory exceeds this many MiB (0 = never)",
        doc: "The master reads each worker's resident set size (`/proc/PID/statm`) about \
twice a second; a worker above this many mebibytes is replaced the way `max_requests` \
replaces one. `--reload-on-rss` (uWSGI's name) is accepted too. `0` disables it.",
        show: |c| num(c.max_worker_memory),
    },
    Setting {
        name: "preload",
        long: &["--preload", "--preload-app"],
        short: None,
        metavar: "",
        section: Section::Workers,
        kind: Kind::Switch(|c, s| {
            c.preload = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "import the app in the master before forking (shares its memory)",
        doc: "Import the application once in the master, after the sockets are bound and the \
user is switched and before the first worker is forked; every worker then serves that same \
application object instead of importing it again. Workers start faster, an application that \
cannot be imported stops the server (exit 4) before any worker exists, and the memory the \
import filled is shared by all workers through copy-on-write. To keep it shared, automatic \
garbage collection is paused while the application is imported (collecting then would free \
objects and leave holes that the workers' own allocations later fill, copying those pages), \
and `gc.freeze()` is called right before each fork, which moves every object the master \
holds to the permanent generation: the workers' collections then never write to those \
objects' headers, which would copy every page they touch. The pause sets the collection \
threshold to 0 and puts it back afterwards, so an application that calls `gc.disable()` or \
`gc.set_threshold()` while it is imported keeps its choice. Code that runs at import time \
runs once, in the master: a database connection, a thread or a random seed created then is \
inherited by every worker (Django opens its connections at the first request, so it is not \
affected). SIGHUP does not load new code when this is on (the workers are forked from the \
master, which holds the old modules): restart, or send SIGUSR2. Cannot be combined with \
`reload`. `--preload-app` is accepted too.",
        show: |c| Shown::Num(c.preload.to_string()),
    },
    // ---- Server mechanics ----
    Setting {
        name: "umask",
        long: &["--umask"],
        short: Some('m'),
        metavar: "INT",
        section: Section::Mechanics,
        kind: Kind::Value(|c, s| {
            c.umask = parse_umask(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "0o007",
        help: "process umask, set before binding (unix sockets get 0777 & ~umask)",
        doc: "The file mode creation mask of the server process, set before anything is \
bound or written, and kept by the workers. A unix socket file gets mode `0777 & ~umask`: \
with the default `0` it is `srwxrwxrwx` (anyone who can reach the directory may connect), \
`0o007` limits it to the owner and group, `0o077` to the owner. Accepts octal as `0o007` or \
`007` (a leading zero means octal, as in gunicorn), hexadecimal as `0x1f`, or decimal. \
Files the application creates get the same mask. It replaces the umask bourbon was started \
with (systemd's `UMask=` included). The files bourbon writes for itself do not follow it: \
the pid file is always 0644 and a log file it creates 0640 (an existing log file keeps its \
mode).",
        show: |c| Shown::Str(format!("0o{:03o}", c.umask)),
    },
    Setting {
        name: "user",
        long: &["--user"],
        short: Some('u'),
        metavar: "USER",
        section: Section::Mechanics,
        kind: Kind::Value(|c, s| {
            c.user = parse_account(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "www-data",
        help: "switch to this user (name or uid) after binding",
        doc: "Run as this user, given as a name or a numeric id, once the sockets are bound \
and the pid file is written. The master switches before it forks any worker (so the workers \
and the application never run as root): it takes the user's supplementary groups \
(initgroups), then the group (`--group`, or the user's primary group), then the user. Unix \
socket files and log files are first given to that user and group, so they can be removed \
and reopened later. Starting as root is needed to switch to another user. Unlike gunicorn, whose master \
stays root, the master itself switches, so the application never runs as root, also with \
`preload`: a log file created anew on SIGUSR1 needs a directory that user may write (as does \
the pid file's move to `.oldbin` on SIGUSR2); the pid file is removed at exit by a small \
process that stays root and does nothing else. Empty (the default) means stay the user \
bourbon was started as. An unknown user is an error at start (exit 2).",
        show: |c| Shown::Str(c.user.clone().unwrap_or_default()),
    },
    Setting {
        name: "group",
        long: &["--group"],
        short: Some('g'),
        metavar: "GROUP",
        section: Section::Mechanics,
        kind: Kind::Value(|c, s| {
            c.group = parse_account(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "www-data",
        help: "switch to this group (name or gid) after binding",
        doc: "Run as this group, given as a name or a numeric id, once the sockets are bound. \
Empty (the default) means the primary group of `--user`, or, without `--user`, the group \
bourbon was started as. An unknown group is an error at start (exit 2).",
        show: |c| Shown::Str(c.group.clone().unwrap_or_default()),
    },
    Setting {
        name: "daemon",
        long: &["--daemon"],
        short: Some('D'),
        metavar: "",
        section: Section::Mechanics,
        kind: Kind::Switch(|c, s| {
            c.daemon = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "detach and run in the background",
        doc: "Detach from the terminal and run in the background: the command returns \
(status 0) once the settings are valid, and the server goes on in a new session, in the \
same working directory. Standard input and output go to `/dev/null`, standard error to \
`--error-logfile` when that is a file (else to `/dev/null` too). Use `--pid` to know the \
daemon's process id. Under a service manager (systemd, supervisord, docker) do not use it.",
        show: |c| Shown::Num(c.daemon.to_string()),
    },
    Setting {
        name: "proc_name",
        long: &["--proc-name", "--name"],
        short: Some('n'),
        metavar: "NAME",
        section: Section::Mechanics,
        kind: Kind::Value(|c, s| {
            let t = s.trim();
            c.proc_name = (!t.is_empty()).then(|| t.to_string());
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "mysite",
        help: "name shown in process titles (default: the application)",
        doc: "The name in the process titles that `ps` and `top` show: \
`bourbon: master [NAME]` and `bourbon: worker [NAME]`. Empty (the default) means the \
application, as given (e.g. `mysite.wsgi:application`). Titles longer than the \
space the command line had are cut.",
        show: |c| Shown::Str(c.proc_name.clone().unwrap_or_default()),
    },
    Setting {
        name: "reuse_port",
        long: &["--reuse-port"],
        short: None,
        metavar: "",
        section: Section::Mechanics,
        kind: Kind::Switch(|c, s| {
            c.reuse_port = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "set SO_REUSEPORT on TCP sockets",
        doc: "Set `SO_REUSEPORT` on TCP listening sockets before binding them, so that \
several independent servers (each started with this option) can listen on the same address \
and port; the kernel spreads new connections between them. Without it a second server on a \
port in use fails to start (exit 1).",
        show: |c| Shown::Num(c.reuse_port.to_string()),
    },
    Setting {
        name: "chmod_socket",
        long: &["--chmod-socket"],
        short: None,
        metavar: "MODE",
        section: Section::Mechanics,
        kind: Kind::OptValue(|c, s| {
            c.chmod_socket = parse_socket_mode(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "660",
        help: "give unix socket files this mode (octal; the flag alone: 666)",
        doc: "Once a unix socket (`--bind unix:PATH`) is bound, and before it listens, its \
file is given this mode, in octal digits as uWSGI takes them: `660` lets the owner and \
the group connect (a proxy running in the socket's group), `666` anyone. The flag alone \
(`--chmod-socket`, uWSGI's spelling) means `666`; a value is attached to it \
(`--chmod-socket=660`). Empty (the default) leaves the mode the umask gave it \
(`0777 & ~umask`). Sockets inherited from systemd or an old master keep theirs.",
        show: |c| Shown::Str(c.chmod_socket.map(|m| format!("{m:03o}")).unwrap_or_default()),
    },
    Setting {
        name: "reload",
        long: &["--reload"],
        short: None,
        metavar: "",
        section: Section::Mechanics,
        kind: Kind::Switch(|c, s| {
            c.reload = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "reload the workers when a Python file changes (development)",
        doc: "For development: the master watches (with inotify) every `*.py` file under the \
project directory (`chdir`, else the directory bourbon was started in) and its \
subdirectories, the application module's file, and each `reload_extra_file`. When one is \
written, created, moved or deleted, it waits until nothing has changed for 0.2 s, logs \
`Worker reloading: FILE modified` and does what SIGHUP does: new workers import the fresh \
code, the old ones finish their requests and exit. Directories named `__pycache__`, \
`.git`, `.hg`, `.svn`, `node_modules`, `target`, `.tox`, `.nox` or `.venv*`, hidden \
caches (`.mypy_cache`, `.pytest_cache`, any `.*_cache`) and virtualenvs (a directory \
holding `pyvenv.cfg`) are not watched; at most 10000 directories are (a warning says when \
more were left out, or when the system's `fs.inotify.max_user_watches` is reached). New \
directories are watched as they appear. Only Linux (inotify). A worker that cannot import the application (at start or after a change) does not stop \
the server, as it would without this setting (exit 4): the error is logged and the master \
forks again at the next change. Cannot \
be combined with `preload` (exit 2), since preloaded code cannot be reloaded.",
        show: |c| Shown::Num(c.reload.to_string()),
    },
    Setting {
        name: "reload_extra_file",
        long: &["--reload-extra-file"],
        short: None,
        metavar: "FILE",
        section: Section::Mechanics,
        kind: Kind::List(|c, items| {
            c.reload_extra_file = items
                .iter()
                .map(|i| i.trim())
                .filter(|i| !i.is_empty())
                .map(PathBuf::from)
                .collect();
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "templates/base.html",
        help: "with --reload, also reload when this file changes (repeatable)",
        doc: "A file (a template, a settings file, ...) whose change reloads the workers when \
`reload` is on, like a Python file of the project. Repeat the option for several files; \
in `BOURBON_RELOAD_EXTRA_FILE` separate them with commas, in a config file use an array. \
A relative path is taken from the project directory (`chdir`). The file may be created \
later, but its directory must exist when bourbon starts.",
        show: |c| {
            Shown::List(
                c.reload_extra_file
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            )
        },
    },
    Setting {
        name: "forwarded_allow_ips",
        long: &["--forwarded-allow-ips"],
        short: None,
        metavar: "LIST",
        section: Section::Mechanics,
        kind: Kind::List(|c, items| {
            c.forwarded_allow_ips = parse_allow(items)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("127.0.0.1,::1"),
        example: "10.0.0.0/8,fd00::/8",
        help: "peers whose X-Forwarded-*, Forwarded and X-Request-ID are believed (IPs, CIDRs, *)",
        doc: "The proxies allowed to say who the client is: IP addresses, CIDR blocks \
(`10.0.0.0/8`, `fd00::/8`) or `*` for any peer, comma-separated. Only on a connection from \
one of them do `Forwarded` (RFC 7239), `X-Forwarded-For`, `X-Forwarded-Proto` (and \
gunicorn's `X-Forwarded-Protocol: ssl`, `X-Forwarded-Ssl: on`), `X-Forwarded-Host` and \
`X-Forwarded-Port` set the client address (`REMOTE_ADDR`, the ASGI `client`, the access \
log's `%(h)s`), the scheme (`wsgi.url_scheme`, the ASGI `scheme`) and the host \
(`HTTP_HOST`, `SERVER_NAME`, `SERVER_PORT`, the ASGI `server` and `host` header) the \
application sees, and is an `X-Request-ID` kept; from anyone else they reach the \
application untouched and change nothing. Peers on a unix socket are always trusted. As \
in gunicorn, the `FORWARDED_ALLOW_IPS` environment variable is the default when set. An \
empty value trusts no TCP peer. See [proxies.md](proxies.md).",
        show: |c| Shown::List(split_list(&c.forwarded_allow_ips.to_string())),
    },
    Setting {
        name: "proxy_protocol",
        long: &["--proxy-protocol"],
        short: None,
        metavar: "",
        section: Section::Mechanics,
        kind: Kind::Switch(|c, s| {
            c.proxy_protocol = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "read a PROXY protocol header (v1 or v2) from peers in --proxy-allow-from",
        doc: "Expect HAProxy's PROXY protocol (version 1, text, or 2, binary: told apart by \
their signatures) at the start of each connection from a peer in `proxy_allow_ips`, on TCP \
and unix listeners alike; the addresses it carries become the client address the \
application and the access log see. From an allowed peer the header is required; a \
connection from another peer that starts with one is closed, and one that does not is \
served as plain HTTP. A malformed header, or none within `header_timeout`, closes the \
connection without an answer (an HTTP answer would be read as the proxy's); other \
connections are not affected. `LOCAL` (health checks by the proxy) and `UNKNOWN` keep the \
real peer. See [proxies.md](proxies.md).",
        show: |c| Shown::Num(c.proxy_protocol.to_string()),
    },
    Setting {
        name: "proxy_allow_ips",
        long: &["--proxy-allow-from"],
        short: None,
        metavar: "LIST",
        section: Section::Mechanics,
        kind: Kind::List(|c, items| {
            c.proxy_allow_ips = parse_allow(items)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("127.0.0.1,::1"),
        example: "10.0.0.0/8",
        help: "peers allowed to send a PROXY protocol header (IPs, CIDRs, *)",
        doc: "With `proxy_protocol`, the peers that may send a PROXY header (the load \
balancers): IP addresses, CIDR blocks or `*`, comma-separated, as gunicorn's \
`--proxy-allow-from`. Peers on a unix socket are always allowed.",
        show: |c| Shown::List(split_list(&c.proxy_allow_ips.to_string())),
    },
    Setting {
        name: "request_id_header",
        long: &["--request-id-header"],
        short: None,
        metavar: "NAME",
        section: Section::Mechanics,
        kind: Kind::Value(|c, s| {
            c.request_id_header = parse_header_name(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("X-Request-ID"),
        example: "X-Correlation-ID",
        help: "the request-id header: kept from trusted proxies, else made; \"\" turns ids off",
        doc: "Every request gets an id in this header. One sent by a peer in \
`forwarded_allow_ips` is kept (if it is 1 to 200 visible ASCII characters); otherwise \
bourbon makes one (32 hex digits: a random per-worker prefix and a counter), replacing \
whatever the client sent. The application sees it as a request header \
(`HTTP_X_REQUEST_ID` in WSGI, `x-request-id` in the ASGI scope), and the response carries \
it back unless the application set the field itself, so the access log can show it with \
`%({x-request-id}o)s`. An empty value turns request ids off.",
        show: |c| Shown::Str(c.request_id_header.clone()),
    },
    // ---- Timeouts ----
    Setting {
        name: "timeout",
        long: &["--timeout", "--harakiri"],
        short: Some('t'),
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            c.timeout = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("30"),
        example: "30",
        help: "kill and replace a worker stuck this many seconds in one request (0 = off)",
        doc: "If a call of the application (until it returns its response iterable) has \
run longer than this, or a worker's event loop has not run for this long (a worker that \
is still starting counts from its fork), the master logs `WORKER TIMEOUT (pid:N)` at \
critical level with the request line and how long it ran, has the worker write the \
Python stack of every thread to the error log, kills it (SIGKILL) and starts a \
replacement. Other requests in flight on that worker are lost with it. The check runs \
about twice a second, and never kills a call that has run less than this: a call made on \
the event loop's own thread (`threads = 1`) is judged by its own age, not as the loop's \
silence. Iterating a streamed response is not limited (server-sent events \
may stream for hours); `write_timeout` guards the client side. `--harakiri` (uWSGI's \
name) is accepted too. `0` disables the check.",
        show: |c| Shown::Num(format_duration(c.timeout)),
    },
    Setting {
        name: "graceful_timeout",
        long: &["--graceful-timeout"],
        short: None,
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            c.graceful_timeout = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("30"),
        example: "30",
        help: "seconds a stopping worker may finish its requests before it is killed",
        doc: "When a worker is told to stop gracefully (SIGTERM to the master, a reload, \
SIGTTOU, recycling), it stops accepting and finishes the requests it holds for at most \
this long; the master kills a worker still running half a second after that.",
        show: |c| Shown::Num(format_duration(c.graceful_timeout)),
    },
    Setting {
        name: "keep_alive",
        long: &["--keep-alive"],
        short: None,
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            c.keep_alive = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("2"),
        example: "5",
        help: "seconds to hold an idle keep-alive connection; 0 disables keep-alive",
        doc: "How long, in seconds, an idle connection is kept open waiting for \
the next request. `0` closes every connection after its response. Fractions \
such as `0.5` are allowed.",
        show: |c| Shown::Num(format_duration(c.keep_alive)),
    },
    Setting {
        name: "header_timeout",
        long: &["--header-timeout"],
        short: None,
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            let d = parse_duration(s)?;
            if d.is_zero() {
                return Err(Bad::range(format!("'{s}' must be greater than 0")));
            }
            c.header_timeout = d;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("10"),
        example: "10",
        help: "seconds allowed for a whole request head to arrive",
        doc: "How long, in seconds, a client has to send the complete request line \
and headers once it starts a request. Protects against clients that trickle \
headers slowly. Must be greater than 0; fractions are allowed.",
        show: |c| Shown::Num(format_duration(c.header_timeout)),
    },
    Setting {
        name: "write_timeout",
        long: &["--write-timeout"],
        short: None,
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            let d = parse_duration(s)?;
            if d.is_zero() {
                return Err(Bad::range(format!("'{s}' must be greater than 0")));
            }
            c.write_timeout = d;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("30"),
        example: "30",
        help: "close a connection whose response write stalls this many seconds",
        doc: "If writing a response makes no progress for this many seconds (the \
client stopped reading), the connection is closed, which also frees the Python \
thread producing the response. The same bound applies to a request body that stops \
arriving while the application waits for it, and to WebSocket frames queued by an \
ASGI application (the connection is dropped and the application sees code 1006). \
Must be greater than 0; fractions are allowed.",
        show: |c| Shown::Num(format_duration(c.write_timeout)),
    },
    Setting {
        name: "write_coalesce",
        long: &["--write-coalesce"],
        short: None,
        metavar: "SECS",
        section: Section::Timeouts,
        kind: Kind::Value(|c, s| {
            let d = parse_duration(s)?;
            if d > std::time::Duration::from_secs(1) {
                return Err(Bad::range(format!("'{s}' must be at most 1 second")));
            }
            c.write_coalesce = d;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0.002"),
        example: "0",
        help: "seconds a finished response may wait to leave with others on a busy worker (0: never)",
        doc: "On a busy worker (one that has served a request since it last waited for \
network events), a small complete keep-alive response is held back for at most this \
long, and the held responses are written together: each write to a sleeping client \
wakes it, and one wake for several responses saves system time on both sides (in \
`bench/`, against 0.5 ms: 4-8% more Django requests per second from 8 connections up, \
p99 unchanged at 64). A worker with nothing else to do writes at once, so a lone \
request never waits; responses are held across an application call only when recent \
calls were short enough. With 2-4 clients and views of about a millisecond, a held \
response waits for one other call: p99 up to ~1.5 ms higher; a smaller value (or `0`, \
off) trades that throughput for latency.",
        show: |c| Shown::Num(format_duration(c.write_coalesce)),
    },
    // ---- Request limits ----
    Setting {
        name: "limit_request_line",
        long: &["--limit-request-line"],
        short: None,
        metavar: "BYTES",
        section: Section::Limits,
        kind: Kind::Value(|c, s| {
            let n = parse_usize_in(s, 0, MAX_REQUEST_LINE)?;
            // 0 traditionally means "unlimited"; an unbounded line is a memory
            // exhaustion vector, so it means "the largest allowed" instead.
            c.limit_request_line = if n == 0 { MAX_REQUEST_LINE } else { n };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("4094"),
        example: "4094",
        help: "maximum request line size in bytes (0 = maximum, 8190)",
        doc: "The largest HTTP request line (method, URL and version) accepted, in \
bytes. Longer lines get `414 URI Too Long`. From 0 to 8190; `0` means the \
maximum, 8190.",
        show: |c| num(c.limit_request_line),
    },
    Setting {
        name: "limit_request_fields",
        long: &["--limit-request-fields"],
        short: None,
        metavar: "N",
        section: Section::Limits,
        kind: Kind::Value(|c, s| {
            let n = parse_usize_in(s, 0, MAX_HEADER_FIELDS)?;
            c.limit_request_fields = if n == 0 { MAX_HEADER_FIELDS } else { n };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("100"),
        example: "100",
        help: "maximum number of request header fields (max 32768)",
        doc: "The most header fields a request may have. From 0 to 32768; `0` \
means the maximum, 32768.",
        show: |c| num(c.limit_request_fields),
    },
    Setting {
        name: "limit_request_field_size",
        long: &["--limit-request-field_size", "--limit-request-field-size"],
        short: None,
        metavar: "BYTES",
        section: Section::Limits,
        kind: Kind::Value(|c, s| {
            c.limit_request_field_size = parse_usize_in(s, 0, usize::MAX)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("8190"),
        example: "8190",
        help: "maximum size of one request header field in bytes (0 = no limit)",
        doc: "The largest single header field (name and value) accepted, in bytes. \
`0` removes the per-field limit. `--limit-request-field-size` is accepted as \
well as gunicorn's spelling.",
        show: |c| num(c.limit_request_field_size),
    },
    Setting {
        name: "limit_request_body",
        long: &["--limit-request-body"],
        short: None,
        metavar: "BYTES",
        section: Section::Limits,
        kind: Kind::Value(|c, s| {
            c.limit_request_body = parse_size(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "10M",
        help: "maximum request body size, e.g. 10M (0 = unlimited)",
        doc: "The largest request body accepted; larger ones get `413 Content Too \
Large`. A number of bytes, optionally with a `K`, `M` or `G` suffix (powers of \
1024). `0` means unlimited.",
        show: |c| num(c.limit_request_body),
    },
    Setting {
        name: "post_buffering",
        long: &["--post-buffering"],
        short: None,
        metavar: "BYTES",
        section: Section::Limits,
        kind: Kind::Value(|c, s| {
            c.post_buffering = parse_size(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("1M"),
        example: "1M",
        help: "read request bodies up to this size before calling the app (0 = off)",
        doc: "Request bodies up to this size are read completely before the \
application is called, so a slow client never ties up an application thread. \
Larger bodies are streamed to the application as they arrive. Accepts `K`, `M`, \
`G` suffixes; `0` disables buffering.",
        show: |c| num(c.post_buffering),
    },
    // ---- Response buffering ----
    Setting {
        name: "response_buffer_size",
        long: &["--response-buffer-size"],
        short: None,
        metavar: "BYTES",
        section: Section::Responses,
        kind: Kind::Value(|c, s| {
            c.response_buffer_size = parse_size(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("64K"),
        example: "64K",
        help: "memory per response for body bytes a slow client has not read yet",
        doc: "A streamed response (a generator, `StreamingHttpResponse`) is produced by the \
application faster than a slow client reads it. Up to this many of the bytes not yet sent \
are kept in memory per response; the rest goes to an unlinked temporary file (see \
`--max-temp-file-size`), so the application finishes iterating, its `close()` runs and its \
Python thread serves other requests while the connection sends the rest at the client's \
pace (nginx's `proxy_buffers`). Server-sent events (`Content-Type: text/event-stream`) and \
responses with the header `X-Accel-Buffering: no` are never buffered: they reach the client \
as produced, and the application pauses while the client does not read (without holding a \
thread). `X-Accel-Buffering` is never sent to the client; `yes` turns buffering on for an \
event stream. Accepts `K`, `M`, `G` suffixes.",
        show: |c| num(c.response_buffer_size),
    },
    Setting {
        name: "max_temp_file_size",
        long: &["--max-temp-file-size"],
        short: None,
        metavar: "BYTES",
        section: Section::Responses,
        kind: Kind::Value(|c, s| {
            c.max_temp_file_size = parse_size(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("1G"),
        example: "1G",
        help: "bytes per response that may wait in a temporary file (0 = none)",
        doc: "How many bytes of one response may wait for a slow client in its temporary \
file (nginx's `proxy_max_temp_file_size`). Past it the application's iteration pauses until \
the client has read some: the Python thread is given back to the worker meanwhile and the \
iteration resumes on a free thread. The file is unlinked as it is made and space the client \
has read is released as it goes, so nothing is left on disk however the response ends. `0` \
means memory only (`--response-buffer-size`). Accepts `K`, `M`, `G` suffixes.",
        show: |c| num(c.max_temp_file_size),
    },
    Setting {
        name: "temp_path",
        long: &["--temp-path"],
        short: None,
        metavar: "DIR",
        section: Section::Responses,
        kind: Kind::Value(|c, s| {
            if !s.is_empty() && !std::path::Path::new(s).is_dir() {
                return Err(Bad::range(format!("'{s}' is not a directory")));
            }
            c.temp_path = opt_path(s);
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/var/tmp",
        help: "directory for response temporary files (default: $TMPDIR, else /tmp)",
        doc: "The directory in which response temporary files are made (nginx's \
`proxy_temp_path`). Empty means `$TMPDIR`, else `/tmp`. The files are unlinked as soon as \
they are made (`O_TMPFILE` where the file system has it), so they never appear in a listing \
and never outlive their response; only the space they use shows, in `df`. Choose a disk \
file system rather than a memory-backed `tmpfs` if responses are large.",
        show: |c| show_opt_path(&c.temp_path),
    },
    // ---- Static files ----
    Setting {
        name: "static",
        long: &["--static"],
        short: None,
        metavar: "PREFIX=DIR",
        section: Section::Static,
        kind: Kind::List(|c, items| {
            c.static_mounts = items
                .iter()
                .map(|i| parse_static_mount(i, true))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: None,
        example: "/static/=/srv/mysite/static",
        help: "serve files under DIR at URL PREFIX from Rust (repeatable; `django` reads STATIC_URL/STATIC_ROOT)",
        doc: "Serve the files under `DIR` at URLs starting with `PREFIX`, from Rust, on the same \
listeners as the application and without entering Python: GET and HEAD, with \
`Content-Type`, `Content-Length`, `Last-Modified`, a strong `ETag`, conditional requests \
(304, 412), byte ranges (206, 416), pre-compressed `.br`/`.gz` variants (see `bourbon \
compress`) and `Cache-Control`. The word `django` instead of `PREFIX=DIR` serves Django's \
`STATIC_ROOT` at its `STATIC_URL`, read from the settings once the application is loaded; \
names listed in the `staticfiles.json` manifest that `ManifestStaticFilesStorage` writes are \
sent as immutable for a year. Repeat the option for several mounts; the longest prefix \
wins. Requests outside every prefix go to the application, and so does a missing file \
(see `static_missing`). Paths that would leave the directory, dotfiles and directory \
listings are refused. uWSGI's `--static-map PREFIX=DIR` is the same option. See \
[static-files.md](static-files.md).",
        show: |c| Shown::List(c.static_mounts.iter().map(ToString::to_string).collect()),
    },
    Setting {
        name: "static_max_age",
        long: &["--static-max-age"],
        short: None,
        metavar: "SECONDS",
        section: Section::Static,
        kind: Kind::Value(|c, s| {
            c.static_max_age = parse_whole(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("60"),
        example: "3600",
        help: "Cache-Control max-age for static files whose names are not hashed",
        doc: "How long clients and caches may keep a static file whose name does not change \
with its content: `Cache-Control: public, max-age=SECONDS`. Names known to be hashed (listed \
in a `staticfiles.json` manifest) get `public, max-age=315360000, immutable` instead. `0` \
sends `no-cache` (clients revalidate every time, cheaply, with the ETag).",
        show: |c| num(c.static_max_age),
    },
    Setting {
        name: "static_index",
        long: &["--static-index"],
        short: None,
        metavar: "NAME",
        section: Section::Static,
        kind: Kind::Value(|c, s| {
            let t = s.trim();
            if t.contains('/') || t.starts_with('.') {
                return Err(Bad::range(format!("'{t}' is not a file name (e.g. index.html)")));
            }
            c.static_index = t.to_owned();
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "index.html",
        help: "file served for a static directory URL ending in / (empty: none)",
        doc: "The file served for a URL that names a directory under a static prefix and ends \
with `/`; the same URL without the `/` is redirected (301) to it. Empty means a directory \
URL is treated as a missing file. Directory listings are never produced.",
        show: |c| Shown::Str(c.static_index.clone()),
    },
    Setting {
        name: "static_missing",
        long: &["--static-missing"],
        short: None,
        metavar: "app|404",
        section: Section::Static,
        kind: Kind::Value(|c, s| {
            c.static_missing_to_app = match s.trim() {
                "app" => true,
                "404" => false,
                other => {
                    return Err(Bad::form(format!("'{other}' is neither app nor 404")));
                }
            };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("app"),
        example: "404",
        help: "a missing file under a static prefix goes to the app, or gets 404 at once",
        doc: "What a request under a static prefix gets when no such file exists: `app` hands \
it to the application unchanged (the prefix's URL space is shared, as with WhiteNoise); \
`404` answers at once without entering Python (as nginx's `location` does). Refused paths \
(traversal, dotfiles) are answered 404 either way and never reach the application.",
        show: |c| Shown::Str(if c.static_missing_to_app { "app" } else { "404" }.into()),
    },
    Setting {
        name: "static_follow_symlinks",
        long: &["--static-follow-symlinks"],
        short: None,
        metavar: "",
        section: Section::Static,
        kind: Kind::Switch(|c, s| {
            c.static_follow_symlinks = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "follow symlinks that lead out of a static directory",
        doc: "By default a path is resolved beneath its static directory (`openat2` with \
`RESOLVE_BENEATH`): symlinks that stay inside it are followed, one that leads outside is \
refused (404). Turn this on when the tree is made of links to elsewhere, such as \
`collectstatic --link`.",
        show: |c| Shown::Num(c.static_follow_symlinks.to_string()),
    },
    Setting {
        name: "static_internal",
        long: &["--static-internal"],
        short: None,
        metavar: "PREFIX=DIR",
        section: Section::Static,
        kind: Kind::List(|c, items| {
            c.static_internal = items
                .iter()
                .map(|i| parse_static_mount(i, false))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: None,
        example: "/protected/=/srv/mysite/private",
        help: "files the app may send with X-Accel-Redirect: PREFIX/... or X-Sendfile: DIR/... (repeatable)",
        doc: "A location the application may hand files from, as nginx's `internal` locations \
serve Django's protected media: when a response carries `X-Accel-Redirect: PREFIX/name` \
(a URL path) or `X-Sendfile: DIR/name` (a file path), bourbon discards the application's \
body and sends that file instead, with validators, conditional requests and ranges judged \
against the original request, keeping the application's `Content-Type` (unless empty), \
`Content-Disposition`, `Cache-Control`, `Expires` and `Set-Cookie`. A name outside every \
such location gets a 500 and an error-log line, never the file. These locations are not \
served to clients directly.",
        show: |c| Shown::List(c.static_internal.iter().map(ToString::to_string).collect()),
    },
    // ---- ASGI and WebSockets ----
    Setting {
        name: "asgi",
        long: &["--asgi"],
        short: None,
        metavar: "APP",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.asgi = if s.trim().is_empty() {
                None
            } else {
                Some(parse_app(s)?)
            };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "mysite.asgi:application",
        help: "an ASGI app served beside the WSGI app: WebSockets and --asgi-path go to it",
        doc: "An ASGI application served by the same workers, on the same listeners, beside \
the WSGI application given as `APP`: WebSocket handshakes and requests under the \
`asgi_path` prefixes go to it, everything else to the WSGI application. Django projects \
keep their views on WSGI threads and their Channels consumers on ASGI with \
`bourbon mysite.wsgi:application --asgi mysite.asgi:application`. Written like `APP`. \
Empty means none. See [asgi.md](asgi.md).",
        show: |c| match &c.asgi {
            Some(a) => Shown::Str(a.to_string()),
            None => Shown::Str(String::new()),
        },
    },
    Setting {
        name: "asgi_path",
        long: &["--asgi-path"],
        short: None,
        metavar: "PREFIX",
        section: Section::Asgi,
        kind: Kind::List(|c, items| {
            c.asgi_path = items
                .iter()
                .map(|i| parse_url_prefix(i))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: None,
        example: "/api/",
        help: "with --asgi: requests under this URL prefix go to the ASGI app (repeatable)",
        doc: "With `asgi`, HTTP requests whose path starts with `PREFIX` go to the ASGI \
application rather than the WSGI one (the longest prefix wins; `/api` also takes `/api/` \
and below, not `/apix`). Repeat it for several prefixes. WebSocket handshakes go to the \
ASGI application whatever their path.",
        show: |c| Shown::List(c.asgi_path.clone()),
    },
    Setting {
        name: "lifespan",
        long: &["--lifespan"],
        short: None,
        metavar: "auto|on|off",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.lifespan = parse_lifespan(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("auto"),
        example: "on",
        help: "ASGI lifespan events: auto (if the app takes them), on, off",
        doc: "Whether each worker runs the ASGI application's lifespan protocol: \
`lifespan.startup` once the application is loaded and before the worker takes requests, \
`lifespan.shutdown` after its last request. `startup.failed` stops the server (exit 3, \
gunicorn's boot failure). With `auto`, an application that raises instead of answering \
the startup event (Django's does) is served without lifespan, quietly; with `on` that is \
a boot failure; `off` sends nothing. The `state` the application fills at startup is \
copied into every request's scope.",
        show: |c| Shown::Str(c.lifespan.to_string()),
    },
    Setting {
        name: "loop",
        long: &["--loop"],
        short: None,
        metavar: "auto|asyncio|uvloop",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.event_loop = parse_event_loop(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("auto"),
        example: "asyncio",
        help: "the ASGI event loop: auto, asyncio, uvloop",
        doc: "The event loop of an ASGI worker. `asyncio` is the standard library's loop over \
a selector of bourbon's, which runs bourbon's I/O while the loop waits: no thread switch \
per request. `uvloop` runs uvloop (it must be installed), which watches bourbon's I/O as one \
of its descriptors; timers of bourbon's own (keep-alive, pings) are then checked every \
20 ms. `auto` is `asyncio`, the faster of the two here, since bourbon does the I/O and \
HTTP parsing that uvloop would speed up (see performance.md). uvicorn's `--loop` and \
gunicorn's `--asgi-loop` are this setting; uvicorn's `none` means `asyncio`.",
        show: |c| Shown::Str(c.event_loop.to_string()),
    },
    Setting {
        name: "django_sync_pool",
        long: &["--django-sync-pool"],
        short: None,
        metavar: "BOOL",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.django_sync_pool = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("true"),
        example: "false",
        help: "keep Django's per-request sync threads in a pool (ASGI)",
        doc: "Under ASGI, Django runs each request's synchronous parts (middleware hooks, \
signal receivers, `sync_to_async` code) on a thread of that request's own, which asgiref \
starts for the request and joins after it. With this on, an ASGI worker serving Django's \
handler (directly or as the `http` route of Channels' `ProtocolTypeRouter`) gives each request \
a thread from a pool instead, kept for later requests: the same one thread per request, one \
call at a time, without starting and joining a thread each time. A thread that is still busy \
when its request ends is not reused; at most 128 idle threads are kept. Thread-local state \
then outlives a request, as it does under a WSGI server's threads (Django's database \
connections are closed at the end of each request unless `CONN_MAX_AGE` says otherwise). \
Other applications are not affected.",
        show: |c| Shown::Str(c.django_sync_pool.to_string()),
    },
    Setting {
        name: "ws_max_size",
        long: &["--ws-max-size"],
        short: None,
        metavar: "BYTES",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_max_size = parse_size(s)?;
            if c.ws_max_size == 0 {
                return Err(Bad::range("'0' leaves no room for any message"));
            }
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("16777216"),
        example: "1M",
        help: "largest WebSocket message accepted (bytes; larger ones close with 1009)",
        doc: "The largest WebSocket message a client may send, in bytes, counted after \
decompression and across fragments. A larger one closes the connection with code 1009 \
(message too big) before it is buffered whole. Suffixes `K`, `M`, `G` are accepted. The \
default is uvicorn's, 16 MiB.",
        show: |c| num(c.ws_max_size),
    },
    Setting {
        name: "ws_max_queue",
        long: &["--ws-max-queue"],
        short: None,
        metavar: "N",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_max_queue = parse_usize_in(s, 1, 1 << 20)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("32"),
        example: "16",
        help: "WebSocket messages read ahead of the app per connection",
        doc: "How many received WebSocket messages may wait for the application's \
`receive()` on one connection. Once that many wait, bourbon stops reading the socket, and \
TCP flow control slows the client down: memory per connection stays bounded.",
        show: |c| num(c.ws_max_queue),
    },
    Setting {
        name: "ws_ping_interval",
        long: &["--ws-ping-interval"],
        short: None,
        metavar: "SECONDS",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_ping_interval = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("20"),
        example: "30",
        help: "ping each WebSocket this often (0 = never)",
        doc: "How often bourbon sends a ping on each WebSocket (RFC 6455 §5.5.2), which keeps \
proxies from closing an idle connection and finds clients that vanished. `0` sends none. \
Pings are answered and sent by bourbon itself; the application never sees them.",
        show: |c| Shown::Num(format_duration(c.ws_ping_interval)),
    },
    Setting {
        name: "ws_ping_timeout",
        long: &["--ws-ping-timeout"],
        short: None,
        metavar: "SECONDS",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_ping_timeout = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("20"),
        example: "30",
        help: "close a WebSocket whose pong has not come within this time",
        doc: "A WebSocket whose pong has not arrived this long after bourbon's ping is closed \
(code 1011 to the client; the application sees 1006, the peer gone). `0` waits forever.",
        show: |c| Shown::Num(format_duration(c.ws_ping_timeout)),
    },
    Setting {
        name: "ws_max_lifetime",
        long: &["--ws-max-lifetime"],
        short: None,
        metavar: "SECONDS",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_max_lifetime = parse_duration(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("0"),
        example: "86400",
        help: "close a WebSocket open this long (0 = never)",
        doc: "The longest a WebSocket may stay open, counted from the handshake: then \
bourbon closes it with code 1000 (normal closure, RFC 6455 §7.4.1) and the application \
receives `websocket.disconnect`, as Daphne does with `--websocket_timeout`. `0`, the \
default (uvicorn's behaviour), never closes a WebSocket for its age; Daphne's default is a \
day (86400).",
        show: |c| Shown::Num(format_duration(c.ws_max_lifetime)),
    },
    Setting {
        name: "ws_per_message_deflate",
        long: &["--ws-per-message-deflate"],
        short: None,
        metavar: "BOOL",
        section: Section::Asgi,
        kind: Kind::Value(|c, s| {
            c.ws_per_message_deflate = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("true"),
        example: "false",
        help: "accept permessage-deflate compression from WebSocket clients",
        doc: "Whether a client's offer of the permessage-deflate extension (RFC 7692) is \
accepted. Compression saves bandwidth on text such as JSON at the cost of CPU and of \
memory per connection (allocated only while a connection compresses).",
        show: |c| Shown::Str(c.ws_per_message_deflate.to_string()),
    },
    // ---- Logging ----
    Setting {
        name: "log_level",
        long: &["--log-level"],
        short: None,
        metavar: "LEVEL",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.log_level = parse_log_level(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("info"),
        example: "info",
        help: "error log level: debug, info, warning, error, critical",
        doc: "The least severe messages written to the error log: `debug`, `info`, \
`warning`, `error` or `critical`.",
        show: |c| Shown::Str(c.log_level.to_string()),
    },
    Setting {
        name: "error_logfile",
        long: &["--error-logfile", "--log-file"],
        short: None,
        metavar: "FILE",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.error_logfile = match s {
                "" => return Err(Bad::form("the error log file name is empty")),
                "-" => LogTarget::Stderr,
                p => LogTarget::File(PathBuf::from(p)),
            };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("-"),
        example: "-",
        help: "where to write the error log ('-' = stderr)",
        doc: "File the error log is appended to. `-` means standard error. A file that does \
not exist is created with mode 0640 whatever the umask; an existing one keeps its mode. \
SIGUSR1 reopens it (after logrotate moved it), also for the stack dumps of timed-out \
workers. `--log-file` is accepted as an alias.",
        show: |c| Shown::Str(c.error_logfile.to_string()),
    },
    Setting {
        name: "log_format",
        long: &["--log-format"],
        short: None,
        metavar: "FORMAT",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.log_format = parse_error_log_format(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("text"),
        example: "json",
        help: "error log lines: text (gunicorn's) or json (one object per line)",
        doc: "How the error log's lines are written, in the master and every worker. \
`text` is gunicorn's `[time] [pid] [LEVEL] message`, a traceback following its headline \
as it is. `json` writes one JSON object per line with `time` (RFC 3339, UTC), `level`, \
`pid`, `message`, `logger` for the application's `logging` records and `traceback` when \
there is one (the whole traceback in one string). The access log has its own format \
(`--access-logformat`).",
        show: |c| Shown::Str(c.log_format.to_string()),
    },
    Setting {
        name: "capture_output",
        long: &["--capture-output"],
        short: None,
        metavar: "",
        section: Section::Logging,
        kind: Kind::Switch(|c, s| {
            c.capture_output = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "send the application's stdout and stderr to the error log file",
        doc: "Point standard output and standard error (descriptors 1 and 2) of the master \
and every worker at the `--error-logfile` file, as gunicorn's `--capture-output` does: \
`print()`, and what C extensions and subprocesses write to those descriptors, end up in \
the error log, and SIGUSR1 moves them to the reopened file. Python's `sys.stdout` is made \
line-buffered so that a `print()` arrives at once. It has no effect when the error log is \
standard error (`-`). Captured output is written as it is, also with `--log-format json`.",
        show: |c| Shown::Num(c.capture_output.to_string()),
    },
    Setting {
        name: "log_config",
        long: &["--log-config", "--log-config-json"],
        short: None,
        metavar: "FILE",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.log_config = parse_log_config(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "logging.toml",
        help: "configure Python logging from a file (.json/.toml dictConfig, .ini fileConfig)",
        doc: "A file that configures Python's `logging` in the master before any \
application is imported, so that workers inherit it: `.json` or `.toml` is a \
`logging.config.dictConfig` dictionary (`version = 1`, `formatters`, `handlers`, \
`loggers`, `root`), `.ini`, `.conf` or `.cfg` a `logging.config.fileConfig` file \
(gunicorn's `--log-config`, with existing loggers kept). A handler of class \
`bourbon.ErrorLogHandler` writes to bourbon's error log; the root logger is left as the \
file sets it. A file that cannot be read or applied stops the start with one line naming \
it (exit 2). See docs/logging.md.",
        show: |c| {
            Shown::Str(
                c.log_config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
        },
    },
    Setting {
        name: "access_logfile",
        long: &["--access-logfile"],
        short: None,
        metavar: "FILE",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.access_logfile = match s {
                "" => None,
                "-" => Some(LogTarget::Stdout),
                p => Some(LogTarget::File(PathBuf::from(p))),
            };
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "-",
        help: "where to write the access log ('-' = stdout; default: none)",
        doc: "File the access log is appended to. `-` means standard output. A file that \
does not exist is created with mode 0640 whatever the umask; an existing one keeps its mode. \
Lines are buffered in each worker and written within a second, and when the worker stops. \
SIGUSR1 reopens it. Empty (the default) means no access log. See docs/logging.md.",
        show: |c| {
            Shown::Str(
                c.access_logfile
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
        },
    },
    Setting {
        name: "access_logformat",
        long: &["--access-logformat"],
        short: None,
        metavar: "FMT",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.access_logformat = parse_log_format(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#),
        example: "%(h)s %(r)s %(s)s",
        help: "access log line format: a %(atom)s template, or common, combined or json",
        doc: "The format of each access log line: a preset, `common` (the Common Log \
Format), `combined` (nginx's and Apache's combined format, the default) or `json` (one \
JSON object per line with the keys `time`, `remote_addr`, `method`, `path`, `query`, \
`protocol`, `status`, `bytes_sent`, `duration_ms`, `referer`, `user_agent`, \
`request_id`, `pid`, `interface`, and for a WebSocket session `ws_messages_in`, \
`ws_messages_out`, `ws_close_code`); or a template with gunicorn's `%(name)s` atoms: \
`h` remote address, `l` `-`, `u` Basic-auth user, `t` time, `r` request line, `m` \
method, `U` path, `q` query, `H` protocol, `s` status, `B`/`b` body bytes (`0`/`-` when \
unknown), `f` referer, `a` user agent, `T`/`M`/`D`/`L` duration in seconds, \
milliseconds, microseconds, decimal seconds, `p` `<pid>`, `{header}i` and `{header}o` \
request and response fields, `{VAR}e` a CGI variable of the request (`REMOTE_PORT`, \
`HTTP_HOST`...) or else an environment variable. A WebSocket session is one line, written \
when it ends. Lines are buffered and written within a second. See docs/logging.md.",
        show: |c| Shown::Str(c.access_logformat.clone()),
    },
    // ---- Metrics ----
    Setting {
        name: "metrics_bind",
        long: &["--metrics-bind"],
        short: None,
        metavar: "ADDR",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.metrics_bind = parse_side_address(s, 9100)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "127.0.0.1:9100",
        help: "serve Prometheus metrics (GET /metrics) from the master at this address",
        doc: "Where the master serves `GET /metrics` in the Prometheus text format: \
`HOST:PORT`, `[IPV6]:PORT` or `unix:PATH`. The numbers are summed over every worker from \
memory each worker shares with the master, and survive worker restarts and HUP. The \
master binds it once at start (a HUP keeps the first address). Keep it on loopback, a \
unix socket or a private network: it has no authentication. Empty means no endpoint. \
The metrics are listed in `docs/metrics.md`.",
        show: |c| Shown::Str(c.metrics_bind.as_ref().map(ToString::to_string).unwrap_or_default()),
    },
    Setting {
        name: "statsd_host",
        long: &["--statsd-host"],
        short: None,
        metavar: "ADDR",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.statsd_host = parse_side_address(s, 8125)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "127.0.0.1:8125",
        help: "send gunicorn's StatsD metrics over UDP to this address",
        doc: "Send gunicorn's StatsD metrics (`gunicorn.requests`, \
`gunicorn.request.duration`, `gunicorn.request.status.<code>`, `gunicorn.workers`, \
`gunicorn.log.<level>`) as UDP datagrams to `HOST:PORT` (a bare `HOST` uses port 8125) or \
to a unix datagram socket `unix:PATH`. The lines are batched and sent without waiting: \
when the network or the daemon cannot keep up they are dropped, never the requests \
slowed. Empty means none.",
        show: |c| Shown::Str(c.statsd_host.as_ref().map(ToString::to_string).unwrap_or_default()),
    },
    Setting {
        name: "statsd_prefix",
        long: &["--statsd-prefix"],
        short: None,
        metavar: "PREFIX",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.statsd_prefix = s.trim().trim_end_matches('.').to_owned();
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "mysite",
        help: "prefix of every StatsD metric name",
        doc: "Put this in front of every StatsD metric name, with a dot \
(`mysite.gunicorn.requests`), as gunicorn does. Empty means no prefix.",
        show: |c| Shown::Str(c.statsd_prefix.clone()),
    },
    Setting {
        name: "dogstatsd_tags",
        long: &["--dogstatsd-tags"],
        short: None,
        metavar: "TAGS",
        section: Section::Logging,
        kind: Kind::Value(|c, s| {
            c.dogstatsd_tags = parse_dogstatsd_tags(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "env:prod,app:mysite",
        help: "DogStatsD tags added to every StatsD line",
        doc: "Comma-separated `key:value` tags added to every StatsD line in the \
DogStatsD form (`|#env:prod,app:mysite`), as gunicorn's `--dogstatsd-tags`. Empty means \
plain StatsD lines.",
        show: |c| Shown::Str(c.dogstatsd_tags.clone()),
    },
    // ---- Health checks ----
    Setting {
        name: "health_path",
        long: &["--health-path", "--readiness-path"],
        short: None,
        metavar: "PATH",
        section: Section::Health,
        kind: Kind::Value(|c, s| {
            c.health_path = parse_health_path(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/readyz",
        help: "answer this path from the server itself: 200 ready, 503 draining or stuck",
        doc: "A readiness check answered by the server itself, on every listener, before \
static files and before the application, which never sees these requests (so a busy \
application does not fail its health check, and the check does not count as a request). \
`GET` or `HEAD` of exactly this path (the query is ignored) gets `200` with the body `ok` \
while this server can take work; `503` with `draining` once it is stopping (SIGTERM, \
SIGINT or SIGQUIT to the master), with `Connection: close`; `503` with `stuck` when every \
worker has been busy for more than half of `timeout` (every application thread in a call \
that long, or the event loop blocked that long), which the master judges from the \
workers' shared slots about twice a second. Any other method gets `405`. Responses carry \
`Cache-Control: no-store` and are not written to the access log unless \
`health_access_log` is on. `--readiness-path` is accepted too. Empty means off. See \
docs/health.md.",
        show: |c| Shown::Str(c.health_path.clone()),
    },
    Setting {
        name: "liveness_path",
        long: &["--liveness-path"],
        short: None,
        metavar: "PATH",
        section: Section::Health,
        kind: Kind::Value(|c, s| {
            c.liveness_path = parse_health_path(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some(""),
        example: "/livez",
        help: "answer this path from the server itself: 200 whenever it answers at all",
        doc: "A liveness check answered by the server itself, like `health_path`, but \
always `200` with the body `ok`, also while the server drains or its workers are busy: \
the master already replaces a worker stuck past `timeout`, so an orchestrator should \
restart the whole server only when nothing answers. It must differ from `health_path`. \
Empty means off. See docs/health.md.",
        show: |c| Shown::Str(c.liveness_path.clone()),
    },
    Setting {
        name: "health_access_log",
        long: &["--health-access-log"],
        short: None,
        metavar: "",
        section: Section::Health,
        kind: Kind::Switch(|c, s| {
            c.health_access_log = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "write health-check requests to the access log too",
        doc: "Health checks come every few seconds from every load balancer and \
orchestrator, so by default they are not written to the access log. With this on they \
are, like any other request.",
        show: |c| Shown::Num(c.health_access_log.to_string()),
    },
    // ---- Actions ----
    Setting {
        name: "check_config",
        long: &["--check-config"],
        short: None,
        metavar: "",
        section: Section::Actions,
        kind: Kind::Switch(|c, s| {
            c.check_config = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "validate the configuration and exit",
        doc: "Load and validate every setting and import the application, then exit \
instead of serving: status 0 when all is well, 2 for an invalid setting, 4 when the \
application cannot be imported.",
        // An action, not a property of the server: writing it out would make
        // the printed file do something other than serve.
        show: |_| Shown::Unset,
    },
    Setting {
        name: "print_config",
        long: &["--print-config"],
        short: None,
        metavar: "",
        section: Section::Actions,
        kind: Kind::Switch(|c, s| {
            c.print_config = parse_bool(s)?;
            Ok(())
        }),
        from_env: true,
        from_file: true,
        default: Some("false"),
        example: "true",
        help: "print the effective configuration as TOML and exit",
        doc: "Print every setting's effective value, after combining defaults, \
config file, environment and command line, as a TOML file that `--config` \
accepts, then exit. Does not require `APP`.",
        show: |_| Shown::Unset,
    },
    Setting {
        name: "help",
        long: &["--help"],
        short: Some('h'),
        metavar: "",
        section: Section::Actions,
        kind: Kind::Help,
        from_env: false,
        from_file: false,
        default: None,
        example: "",
        help: "show this help and exit",
        doc: "Print a summary of the options and exit.",
        show: |_| Shown::Unset,
    },
    Setting {
        name: "version",
        long: &["--version"],
        short: Some('v'),
        metavar: "",
        section: Section::Actions,
        kind: Kind::Version,
        from_env: false,
        from_file: false,
        default: None,
        example: "",
        help: "show the version and exit",
        doc: "Print bourbon's version and exit.",
        show: |_| Shown::Unset,
    },
];
