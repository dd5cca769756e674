//! Starting a server from the command line: settings → sockets → application → serve.
//!
//! It owns the start-up order that gunicorn users rely on (bind every socket before the
//! application is imported, so a bad bind fails fast and the sockets exist independently of
//! any worker), the exit codes (1 bind failure, 2 bad setting, 4 application cannot be
//! imported), and what a worker does once the master (`arbiter.rs`) forked it: load the
//! application, build its runtime (never before the fork), handle its own signals (TERM
//! graceful, INT/QUIT fast) and serve.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bourbon_config::{Action, AppSpec, Config, ErrorLogFormat, Interface, LogLevel, LogTarget};

use crate::appkind::Kind;
use bourbon_server::access_log::{AccessFormat, AccessLog, Target as AccessTarget};
use bourbon_server::guard::Limits;
use bourbon_server::io::Timeouts;
use bourbon_server::layer::health::Health;
use bourbon_server::listener::{self, Listener};
use bourbon_server::log;
use bourbon_server::serve::{serve, ServeConfig};
use bourbon_server::static_files::{StaticConfig, StaticFiles};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::rc::Rc;
use tokio::sync::{mpsc, watch};

use crate::pool;
use crate::wsgi::call::{log_exception, AppContext};
use crate::wsgi::environ::{base_environ, EnvironConfig};
use crate::wsgi::handler::{HandlerConfig, Pool, WsgiHandler};
use crate::wsgi::streams::{ErrorsStream, FileWrapper};

/// gunicorn's exit code when the application cannot be loaded.
const EXIT_APP_LOAD: i32 = 4;

pub(crate) fn run(py: Python<'_>, argv: &[String]) -> i32 {
    // `bourbon compress DIR` is a tool, not a server. Only the bare word: an application
    // module named `compress` is still served as `bourbon compress:app`.
    if argv.first().is_some_and(|a| a == "compress") {
        return compress(py, &argv[1..]);
    }
    // `bourbon status` and `bourbon top` read a running master's control socket; the same
    // rule: only the bare word (`bourbon status:app` serves a module named `status`).
    match argv.first().map(String::as_str) {
        Some("status") => return py.detach(|| bourbon_process::status::status_main(&argv[1..])),
        Some("top") => return py.detach(|| bourbon_process::status::top_main(&argv[1..])),
        _ => {}
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    // Executes a gunicorn Python config file when `-c` names one.
    let loaded = match crate::compat::load(py, argv, &env, false) {
        Ok(l) => l,
        Err(line) => {
            eprintln!("{line}");
            return 2;
        }
    };
    let notes = loaded.clone();
    match loaded.action {
        Action::Help(text) | Action::Version(text) | Action::PrintConfig(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            0
        }
        Action::CheckConfig(cfg) => {
            init_log(&cfg);
            crate::compat::log_notes(&notes);
            if let Err(code) = prepare_python(py, &cfg) {
                return code;
            }
            if let Err(code) = crate::pylog::setup(py, &cfg, false) {
                return code;
            }
            match load_app(py, &cfg) {
                Ok(_) => {
                    println!("bourbon: configuration and application OK");
                    0
                }
                Err(code) => code,
            }
        }
        Action::Run(cfg) => {
            init_log(&cfg);
            crate::compat::log_notes(&notes);
            serve_forever(py, &cfg, argv)
        }
    }
}

/// Run `bourbon compress` with Ctrl-C stopping it at once: Python's own SIGINT handler
/// would only set a flag that nobody checks until the whole tree is done. Its temporary
/// files are dotfiles, which the static file server never serves.
fn compress(py: Python<'_>, args: &[String]) -> i32 {
    let restored = py.import("signal").and_then(|signal| {
        signal.call_method1(
            "signal",
            (signal.getattr("SIGINT")?, signal.getattr("SIG_DFL")?),
        )
    });
    if let Err(e) = restored {
        eprintln!("warning: bourbon compress: Ctrl-C will not interrupt it: {e}");
    }
    bourbon_server::static_files::compress::main(args)
}

fn init_log(cfg: &Config) {
    let level = match cfg.log_level {
        LogLevel::Debug => log::Level::Debug,
        LogLevel::Info => log::Level::Info,
        LogLevel::Warning => log::Level::Warning,
        LogLevel::Error => log::Level::Error,
        LogLevel::Critical => log::Level::Critical,
    };
    let file = match &cfg.error_logfile {
        LogTarget::File(p) => Some(p.as_path()),
        LogTarget::Stderr | LogTarget::Stdout => None,
    };
    let format = match cfg.log_format {
        ErrorLogFormat::Text => log::Format::Text,
        ErrorLogFormat::Json => log::Format::Json,
    };
    if let Err(e) = log::init(level, format, file) {
        eprintln!(
            "error: --error-logfile: cannot open {}: {e}",
            cfg.error_logfile
        );
    }
}

/// Apply `--chdir`, `--pythonpath` and `--env` the way gunicorn does, so imports resolve
/// from the project directory.
fn prepare_python(py: Python<'_>, cfg: &Config) -> Result<(), i32> {
    let result = (|| -> PyResult<()> {
        let os = py.import("os")?;
        if let Some(dir) = &cfg.chdir {
            os.call_method1("chdir", (dir.to_string_lossy().as_ref(),))?;
        }
        let environ = os.getattr("environ")?;
        for (k, v) in &cfg.env {
            environ.set_item(k, v)?;
        }
        let sys_path = py.import("sys")?.getattr("path")?;
        let sys_path = sys_path.cast::<PyList>()?;
        for p in cfg.pythonpath.iter().rev() {
            sys_path.insert(0, p.to_string_lossy().as_ref())?;
        }
        let cwd = os.call_method0("getcwd")?;
        if !sys_path.contains(&cwd)? {
            sys_path.insert(0, cwd)?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        log::error(format_args!("cannot prepare the Python environment: {e}"));
        1
    })
}

/// Why an application could not be loaded.
pub(crate) enum LoadError {
    /// Already reported (traceback and summary, or a usage error); exit with this code.
    Reported(i32),
    /// It is an ASGI application; not reported yet (see `appkind`).
    Asgi,
}

/// Import the application; on failure print the traceback and a one-line summary, and for an
/// ASGI application given as WSGI the line that says so.
pub(crate) fn load_app<'py>(py: Python<'py>, cfg: &Config) -> Result<Bound<'py, PyAny>, i32> {
    load_any(py, cfg).map(|(app, _)| app).map_err(|e| match e {
        LoadError::Reported(code) => code,
        LoadError::Asgi => {
            if let Some(spec) = &cfg.app {
                crate::appkind::report(spec);
            }
            EXIT_APP_LOAD
        }
    })
}

/// [`load_app`] with the interface it speaks, leaving an ASGI application given as WSGI to
/// the caller to report.
pub(crate) fn load_any<'py>(
    py: Python<'py>,
    cfg: &Config,
) -> Result<(Bound<'py, PyAny>, Kind), LoadError> {
    let Some(spec) = cfg.app.as_ref() else {
        eprintln!("error: no application given: pass APP as module:callable, e.g. bourbon mysite.wsgi:application");
        return Err(LoadError::Reported(2));
    };
    let app = import_app(py, spec).map_err(|e| {
        log_exception(py, &e, &format!("Cannot load application {spec}"));
        let summary = e.to_string();
        eprintln!("error: cannot load application {spec}: {summary}");
        LoadError::Reported(EXIT_APP_LOAD)
    })?;
    // After the import, so that what the application configured (Django's LOGGING,
    // basicConfig) is found and kept.
    crate::pylog::adopt_root(py, cfg);
    let kind = kind_of(py, cfg, &app)?;
    Ok((app, kind))
}

/// The interface `app` is served with: `--interface`, or what `auto` detects.
pub(crate) fn kind_of(
    py: Python<'_>,
    cfg: &Config,
    app: &Bound<'_, PyAny>,
) -> Result<Kind, LoadError> {
    match cfg.interface {
        Interface::Wsgi if crate::appkind::is_asgi(py, app) => Err(LoadError::Asgi),
        Interface::Wsgi => Ok(Kind::Wsgi),
        Interface::Asgi3 => Ok(Kind::Asgi3),
        Interface::Asgi2 => Ok(Kind::Asgi2),
        Interface::Auto => Ok(crate::appkind::detect(py, app)),
    }
}

fn import_app<'py>(py: Python<'py>, spec: &AppSpec) -> PyResult<Bound<'py, PyAny>> {
    let module = py.import(spec.module.as_str())?;
    let attr = module.getattr(spec.attr.as_str()).map_err(|_| {
        pyo3::exceptions::PyAttributeError::new_err(format!(
            "module '{}' has no attribute '{}'",
            spec.module, spec.attr
        ))
    })?;
    let app = if spec.factory { attr.call0()? } else { attr };
    if !app.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{spec} is not callable (got {})",
            app.get_type().name()?
        )));
    }
    Ok(app)
}

fn serve_forever(py: Python<'_>, cfg: &Config, argv: &[String]) -> i32 {
    // A panic is a bug, but one that must cost only the connection it happened on (tokio
    // isolates tasks) and must be told in the error log, not on a stderr nobody reads.
    std::panic::set_hook(Box::new(|info| {
        log::error(format_args!(
            "internal error (please report): {info}; the affected connection was closed"
        ));
    }));
    let accounts = match crate::ops::before_bind(py, cfg) {
        Ok(a) => a,
        Err(code) => return code,
    };
    // gunicorn's order: the number of workers is set (nworkers_changed with no old value),
    // then on_starting, before the sockets. A failing on_starting stops the start.
    {
        use crate::compat::{call, server_state, Arg, Outcome};
        let workers = usize::try_from(cfg.workers).unwrap_or(1);
        server_state(py, workers, &crate::ops::app_name(cfg));
        let new = i64::from(cfg.workers);
        call(
            py,
            "nworkers_changed",
            vec![Arg::Server, Arg::Int(new), Arg::None],
        );
        if call(py, "on_starting", vec![Arg::Server]) == Outcome::Raised {
            log::error(format_args!("on_starting hook failed; not starting"));
            return 1;
        }
    }
    let access_log = match open_access_log(cfg) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (listeners, origin) = match crate::ops::open_listeners(py, cfg) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let _exit_guard =
        match crate::ops::after_bind(cfg, &listeners, origin, &accounts, access_log.as_deref()) {
            Ok(p) => p,
            Err(code) => return code,
        };
    if let Err(code) = prepare_python(py, cfg) {
        return code;
    }
    if let Err(code) = crate::pylog::setup(py, cfg, true) {
        return code;
    }
    // Raised in the master, so every worker inherits it.
    match listener::raise_nofile_limit() {
        Ok(n) => log::debug(format_args!("open files limit: {n}")),
        Err(e) => log::warn(format_args!("cannot raise the open files limit: {e}")),
    }
    // Always a master, as gunicorn: timeouts and recycling need someone outside the worker.
    crate::boot::run_master(py, cfg, argv, &listeners, access_log)
}

/// gunicorn's exit code for a worker that failed to boot.
pub(crate) const EXIT_BOOT: i32 = 3;

/// In a worker the master forked: load the application (unless the master preloaded it)
/// and serve on `listeners` until stopped.
pub(crate) fn serve_here(
    py: Python<'_>,
    cfg: &Config,
    listeners: &[Listener],
    access_log: Option<Arc<AccessLog>>,
    preloaded: Option<&Py<PyAny>>,
) -> i32 {
    // From here a TERM (a retirement, or a stop of everything) is noted rather than fatal,
    // and acted upon as a graceful stop as soon as the worker can listen for it: a worker
    // told to stop while it boots exits 0 like the others.
    if let Err(e) = bourbon_server::serve::watch_stop_signals() {
        log::warn(format_args!("cannot watch stop signals: {e}"));
    }
    // A worker that fails before serving exits with 3 (boot) or 4 (app), which stops the
    // master instead of making it respawn in a loop (once it serves, see `booted`, the same
    // codes are a crash and the worker is replaced); an ASGI application is left to the
    // master to report, once for all the workers.
    let (app, kind) = match preloaded {
        Some(app) => {
            let app = app.bind(py).clone();
            match kind_of(py, cfg, &app) {
                Ok(kind) => (app, kind),
                Err(_) => return crate::appkind::EXIT_WORKER_ASGI,
            }
        }
        None => match load_any(py, cfg) {
            Ok(a) => a,
            Err(LoadError::Reported(code)) => return code,
            Err(LoadError::Asgi) => return crate::appkind::EXIT_WORKER_ASGI,
        },
    };
    // `--asgi`: the positional application is WSGI, and this one serves beside it.
    let mut asgi_app = None;
    if let Some(spec) = cfg.asgi.as_ref() {
        if kind != Kind::Wsgi {
            log::error(format_args!(
                "--asgi {spec}: the positional application must then be the WSGI one, \
                 but {} is an ASGI application",
                cfg.app
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ));
            return crate::statics::EXIT_WORKER_SETTINGS;
        }
        let app = match import_app(py, spec) {
            Ok(app) => app,
            Err(e) => {
                log_exception(py, &e, &format!("Cannot load application {spec}"));
                eprintln!("error: cannot load application {spec}: {e}");
                return EXIT_APP_LOAD;
            }
        };
        let kind = match cfg.interface {
            Interface::Asgi2 => Kind::Asgi2,
            _ if crate::appkind::detect(py, &app) == Kind::Asgi2 => Kind::Asgi2,
            _ => Kind::Asgi3,
        };
        asgi_app = Some((app, kind));
    }
    if kind != Kind::Wsgi || asgi_app.is_some() {
        if crate::compat::hooks().is_some() {
            use crate::compat::{call, Arg, Outcome};
            if call(py, "post_worker_init", vec![Arg::Worker(None)]) == Outcome::Raised {
                return EXIT_BOOT;
            }
        }
        let statics = match crate::statics::config(py, cfg) {
            Ok(s) => s,
            Err(msg) => {
                log::error(format_args!("{msg}"));
                return crate::statics::EXIT_WORKER_SETTINGS;
            }
        };
        let (asgi, asgi_kind, wsgi) = match asgi_app {
            Some((asgi, asgi_kind)) => match wsgi_side(py, cfg, app) {
                Ok(side) => (asgi, asgi_kind, Some(side)),
                Err(code) => return code,
            },
            None => (app, kind, None),
        };
        return crate::asgi::run::run(
            py,
            cfg,
            listeners,
            access_log,
            crate::asgi::run::Apps {
                asgi,
                asgi2: asgi_kind == Kind::Asgi2,
                wsgi,
            },
            statics,
        );
    }
    // gunicorn's hooks: after the load (a failure is a failed boot, as there), and around
    // each request when pre_request/post_request are defined (otherwise the application is
    // served as it is).
    let app = if crate::compat::hooks().is_some() {
        use crate::compat::{call, wrap_app, Arg, Outcome};
        if call(py, "post_worker_init", vec![Arg::Worker(None)]) == Outcome::Raised {
            return EXIT_BOOT;
        }
        match wrap_app(py, app) {
            Ok(a) => a,
            Err(e) => {
                log_exception(
                    py,
                    &e,
                    "Cannot wrap the application for pre_request/post_request",
                );
                return EXIT_BOOT;
            }
        }
    } else {
        app
    };
    let statics = match crate::statics::config(py, cfg) {
        Ok(s) => s,
        Err(msg) => {
            log::error(format_args!("{msg}"));
            return crate::statics::EXIT_WORKER_SETTINGS;
        }
    };
    let threads = usize::try_from(cfg.threads.max(1)).unwrap_or(1);
    let ctx = match build_context(py, cfg, app, threads) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log_exception(py, &e, "Cannot prepare the worker");
            return EXIT_BOOT;
        }
    };
    // A TERM that arrived while the application loaded was noted by the flag above; the
    // signal streams below report it first (see `StopSignals::next`).
    let runtime = match bourbon_server::cork::runtime(cfg.write_coalesce) {
        Ok(rt) => rt,
        Err(e) => {
            log::error(format_args!("cannot start the runtime: {e}"));
            return EXIT_BOOT;
        }
    };
    let signals = match StopSignals::install(&runtime, access_log.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::error(format_args!("cannot install signal handlers: {e}"));
            return EXIT_BOOT;
        }
    };
    let settings = Settings::from(cfg);
    crate::wsgi::spool::configure(cfg);
    // Everything below waits on sockets, so it runs without the GIL; the Python threads
    // take it when they run the application.
    let worker = Worker {
        runtime,
        signals,
        threads,
        settings,
        access_log,
        statics,
    };
    py.detach(move || worker.run(listeners, ctx))
}

/// The WSGI application's side of a worker whose thread runs an event loop (`--asgi`): its
/// handler, always on the Python thread pool (an inline call would stall every WebSocket
/// for as long as a view runs).
pub(crate) struct WsgiSide {
    pub(crate) handler: WsgiHandler,
    pub(crate) busy: pool::Busy,
}

/// Start the Python threads for `app` and make its handler.
pub(crate) fn wsgi_side(
    py: Python<'_>,
    cfg: &Config,
    app: Bound<'_, PyAny>,
) -> Result<WsgiSide, i32> {
    let threads = usize::try_from(cfg.threads.max(1)).unwrap_or(1);
    let ctx = match build_context(py, cfg, app, threads) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log_exception(py, &e, "Cannot prepare the worker");
            return Err(EXIT_BOOT);
        }
    };
    crate::wsgi::spool::configure(cfg);
    let (work_tx, work_rx) = mpsc::channel(threads * 2);
    let busy = pool::Busy::new(threads);
    let (resume_tx, resume_rx) = mpsc::unbounded_channel();
    let _ = ctx.resumer.set(crate::wsgi::call::Resumer {
        tx: resume_tx,
        busy: busy.clone(),
    });
    let queues = pool::Queues {
        work: work_rx,
        resume: resume_rx,
    };
    if let Err(e) = pool::start(threads, ctx, queues, &busy, false) {
        log::error(format_args!("cannot start Python threads: {e}"));
        return Err(1);
    }
    let settings = Settings::from(cfg);
    Ok(WsgiSide {
        handler: WsgiHandler {
            pool: Rc::new(Pool {
                work: work_tx,
                inline: None,
                busy: busy.clone(),
            }),
            config: settings.handler,
        },
        busy,
    })
}

/// The readiness lines: every socket, then the worker kind. Tests and supervisors wait for
/// "Listening at:".
pub(crate) fn announce(listeners: &[Listener], threads: usize) {
    log::info(format_args!("Starting bourbon {}", bourbon_config::VERSION));
    for l in listeners {
        log::info(format_args!(
            "Listening at: {} ({})",
            l.describe(),
            std::process::id()
        ));
    }
    log::info(format_args!(
        "Using worker: threads ({threads} Python thread{})",
        if threads == 1 { "" } else { "s" }
    ));
}

fn build_context(
    py: Python<'_>,
    cfg: &Config,
    app: Bound<'_, PyAny>,
    threads: usize,
) -> PyResult<AppContext> {
    let errors = Bound::new(py, ErrorsStream)?.into_any();
    let file_wrapper = py.get_type::<FileWrapper>().into_any();
    let env_cfg = EnvironConfig {
        root_path: cfg.root_path.clone(),
        multithread: threads > 1,
        multiprocess: cfg.workers > 1,
    };
    let base = base_environ(py, &env_cfg, errors, file_wrapper)?;
    let empty_input = Py::new(
        py,
        crate::wsgi::input::InputStream::new(crate::wsgi::message::BodySource::Buffered(
            bytes::Bytes::new(),
        )),
    )?;
    Ok(AppContext {
        app: app.unbind(),
        base: base.unbind(),
        root_path: cfg.root_path.clone(),
        empty_input,
        resumer: std::sync::OnceLock::new(),
    })
}

/// The plain values the worker needs, copied out of the config so the closure run without
/// the GIL owns them.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) serve: ServeConfig,
    handler: HandlerConfig,
    /// How often the event loop tells the master it is alive.
    pub(crate) heartbeat: Duration,
}

impl From<&Config> for Settings {
    fn from(cfg: &Config) -> Self {
        let limits = Limits {
            request_line: cfg.limit_request_line,
            fields: cfg.limit_request_fields,
            // 0 means gunicorn's "unlimited"; the guard caps it so a held head stays bounded.
            field_size: cfg.limit_request_field_size,
            body: (cfg.limit_request_body > 0).then_some(cfg.limit_request_body),
        };
        let timeouts = Timeouts {
            header: cfg.header_timeout,
            keep_alive: cfg.keep_alive,
            body_stall: cfg.write_timeout,
            write: cfg.write_timeout,
        };
        Settings {
            serve: ServeConfig {
                limits,
                timeouts,
                graceful_timeout: cfg.graceful_timeout,
                max_connections: usize::try_from(cfg.worker_connections).unwrap_or(usize::MAX),
                access_log: None,
                health: Health::new(&cfg.health_path, &cfg.liveness_path, cfg.health_access_log)
                    .map(Arc::new),
                proxy: std::sync::Arc::new(bourbon_server::layer::forwarded::ProxyConfig {
                    forwarded_allow: cfg.forwarded_allow_ips.clone(),
                    proxy_protocol: cfg.proxy_protocol,
                    proxy_allow: cfg.proxy_allow_ips.clone(),
                    request_id: (!cfg.request_id_header.is_empty())
                        .then(|| cfg.request_id_header.as_bytes().into()),
                }),
            },
            handler: HandlerConfig {
                post_buffering: cfg.post_buffering,
            },
            heartbeat: crate::supervise::heartbeat_period(cfg.timeout),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Graceful,
    Fast,
}

/// The access log, when `--access-logfile` is set; a bad format is a settings error (exit 2).
pub(crate) fn open_access_log(cfg: &Config) -> Result<Option<Arc<AccessLog>>, i32> {
    let Some(target) = cfg.access_logfile.as_ref() else {
        return Ok(None);
    };
    let format = AccessFormat::compile(&cfg.access_logformat).map_err(|e| {
        eprintln!("error: --access-logformat: {e}");
        2
    })?;
    AccessLog::new(format, AccessTarget::from(target))
        .map(|log| Some(Arc::new(log)))
        .map_err(|e| {
            eprintln!("error: --access-logfile: cannot open {target}: {e}");
            2
        })
}

/// Everything the worker loop owns, prepared while the GIL is held.
struct Worker {
    runtime: tokio::runtime::Runtime,
    signals: StopSignals,
    threads: usize,
    settings: Settings,
    access_log: Option<Arc<AccessLog>>,
    statics: Option<StaticConfig>,
}

impl Worker {
    fn run(self, listeners: &[Listener], ctx: Arc<AppContext>) -> i32 {
        let Worker {
            runtime,
            mut signals,
            threads,
            settings: mut s,
            access_log,
            statics,
        } = self;
        // Kept to write what is still buffered once every connection has gone, however the
        // worker stopped (the serving loop flushes after a graceful drain itself).
        let final_log = access_log.clone();
        s.serve.access_log = access_log;
        // A bounded queue: when every Python thread is busy, connections wait here (and stop
        // reading more requests) instead of piling up work.
        let (work_tx, work_rx) = mpsc::channel(threads * 2);
        let busy = pool::Busy::new(threads);
        // Parked responses come back through their own queue (see `wsgi/spool.rs`).
        let (resume_tx, resume_rx) = mpsc::unbounded_channel();
        let _ = ctx.resumer.set(crate::wsgi::call::Resumer {
            tx: resume_tx,
            busy: busy.clone(),
        });
        let queues = pool::Queues {
            work: work_rx,
            resume: resume_rx,
        };
        // With one Python thread the app is called inline on this thread when it is free:
        // the common request then costs no thread switch at all.
        let inline = (threads == 1).then(|| ctx.clone());
        // One thread serving inline calls: it starts when first needed (see `pool`).
        let lazy = inline.is_some();
        let pool_busy = busy.clone();
        match pool::start(threads, ctx, queues, &busy, lazy) {
            Ok(()) => {}
            Err(e) => {
                log::error(format_args!("cannot start Python threads: {e}"));
                return 1;
            }
        };
        // Booted: the application is loaded and everything the worker needs exists. An exit
        // with 3 or 4 from here on (an application calling os._exit(4)) is a crash the
        // master replaces, not a failure to boot that stops it.
        crate::supervise::booted(crate::scoreboard::Interface::Wsgi);
        bourbon_server::metrics::set_threads(u32::try_from(threads).unwrap_or(u32::MAX));
        let local = tokio::task::LocalSet::new();
        let code = local.block_on(&runtime, async move {
            let (stop_tx, stop_rx) = watch::channel(false);
            // Tells the master (through the shared slot) that this loop is alive.
            let heartbeat = tokio::task::spawn_local(crate::supervise::heartbeat(s.heartbeat));
            let handler = WsgiHandler {
                pool: std::rc::Rc::new(Pool {
                    work: work_tx,
                    inline,
                    busy,
                }),
                config: s.handler,
            };
            // Signals are awaited in their own task: the future below is polled on every
            // tick of the runtime, and polling three signal streams per request adds up.
            let (sig_tx, mut sig_rx) = mpsc::unbounded_channel();
            let signal_task = tokio::task::spawn_local(async move {
                loop {
                    let stop = signals.next().await;
                    if sig_tx.send(stop).is_err() {
                        break;
                    }
                }
            });
            // Static files, when served, are a layer in front of the application; without
            // them the application's handler is the whole of it (no extra step per request).
            let server: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>>>> =
                match statics {
                    Some(st) => match StaticFiles::new(handler, &st) {
                        Ok(layer) => Box::pin(serve(listeners, Rc::new(layer), s.serve, stop_rx)),
                        Err(e) => {
                            log::error(format_args!("cannot serve static files: {e}"));
                            return EXIT_BOOT;
                        }
                    },
                    None => Box::pin(serve(listeners, Rc::new(handler), s.serve, stop_rx)),
                };
            let mut server = server;
            let first = tokio::select! {
                res = &mut server => return exit_code(res),
                stop = sig_rx.recv() => stop.unwrap_or(Stop::Fast),
            };
            let _ = stop_tx.send(true);
            let code = match first {
                Stop::Graceful => {
                    log::info(format_args!(
                        "Handling signal: term; finishing requests in flight"
                    ));
                    tokio::select! {
                        res = &mut server => exit_code(res),
                        _ = sig_rx.recv() => 0,
                    }
                }
                Stop::Fast => {
                    log::info(format_args!("Handling signal: int/quit; stopping now"));
                    if crate::compat::defined("worker_int") {
                        Python::attach(|py| {
                            crate::compat::call(
                                py,
                                "worker_int",
                                vec![crate::compat::Arg::Worker(None)],
                            )
                        });
                    }
                    0
                }
            };
            signal_task.abort();
            heartbeat.abort();
            code
        });
        // Dropping the runtime drops every connection task and with them the job senders,
        // so the Python threads see the queue close and return.
        drop(local);
        drop(runtime);
        pool_busy.join_threads();
        if let Some(log) = final_log {
            log.flush();
        }
        code
    }
}

fn exit_code(res: std::io::Result<()>) -> i32 {
    match res {
        Ok(()) => 0,
        Err(e) => {
            log::error(format_args!("server error: {e}"));
            1
        }
    }
}

/// The stop signals, registered with the runtime (and so replacing the default actions)
/// at start; USR1 (reopen the log files) is handled here too, and USR2 (the master's binary
/// upgrade) is ignored; neither stops anything.
pub(crate) struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    access_log: Option<Arc<AccessLog>>,
    /// Whether the stop flag has been checked for a stop that came during boot.
    boot_checked: bool,
}

/// Tell systemd a stop began. In a worker this sends nothing: `notify.rs` lets only the
/// master speak, and the master announces the stop itself.
fn stopping(stop: Stop) -> Stop {
    crate::notify::stopping();
    stop
}

impl StopSignals {
    pub(crate) fn install(
        runtime: &tokio::runtime::Runtime,
        access_log: Option<Arc<AccessLog>>,
    ) -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let _guard = runtime.enter();
        let signals = StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            access_log,
            boot_checked: false,
        };
        Ok(signals)
    }

    pub(crate) async fn next(&mut self) -> Stop {
        // On the first call only: a stop that arrived while the worker was booting (only the
        // flag saw it, the streams did not exist yet) is acted upon now, as a graceful stop.
        // Later stops come through the streams (the flag is set by them too).
        if !self.boot_checked {
            self.boot_checked = true;
            // Likewise a USR1 (log rotation) that came while the application loaded: the
            // worker still holds the files the master had when it forked.
            if log::take_reopen_request() {
                crate::ops::reopen_logs(self.access_log.as_deref());
            }
            if bourbon_server::serve::stop_signal_seen() {
                return stopping(Stop::Graceful);
            }
        }
        loop {
            tokio::select! {
                _ = self.term.recv() => return stopping(Stop::Graceful),
                _ = self.int.recv() => return stopping(Stop::Fast),
                _ = self.quit.recv() => return stopping(Stop::Fast),
                _ = self.usr1.recv() => crate::ops::reopen_logs(self.access_log.as_deref()),
                // USR2 (binary upgrade) is the master's business; a worker ignores it rather
                // than die of its default action.
                _ = self.usr2.recv() => {}
            }
        }
    }
}
