//! The master process: forks the workers, replaces the ones that die, supervises them and
//! turns the operator's signals into actions on them, as gunicorn's arbiter does. Every run
//! has one, also with a single worker, so that timeouts and recycling always apply.
//!
//! It owns the worker table and the master loop. The master is single-threaded and never
//! builds a runtime: the sockets are bound (and `--chdir`, `--pythonpath`, `-e` applied)
//! before it starts, and each worker loads the application after fork, through CPython's
//! fork protocol (`PyOS_BeforeFork` / `PyOS_AfterFork_*`), unless `--preload` had the
//! master import it before the first fork (`preload.rs`). With `--reload` the loop also
//! polls the file watcher (`reloader.rs`) and reloads as on SIGHUP when a file changed.
//! Signal handlers only write the signal number to a pipe; everything else, logging included,
//! happens in the loop, which also wakes at least twice a second to look at each worker's
//! shared slot (`scoreboard.rs`) and judge it (`watchdog.rs`): a stuck worker has its Python
//! stacks dumped and is killed and replaced; a worker due for recycling gets its replacement
//! first and is then stopped gracefully.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourbon_config::Config;
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;
use pyo3::prelude::*;

use crate::compat::{self, Arg, Outcome};
use crate::reloader::Reloader;
use crate::scoreboard::{now_ns, Slot};
use crate::startup::{announce, serve_here, EXIT_BOOT};
use crate::supervise::DUMP_SIGNAL;
use crate::watchdog;

/// gunicorn's exit code when the application cannot be loaded.
const EXIT_APP_LOAD: i32 = 4;
/// How long a fast stop waits before killing.
const FAST_STOP: Duration = Duration::from_secs(5);
/// A worker told to stop gracefully gets `--graceful-timeout` for its requests, then this
/// much more to exit on its own before it is killed.
const EXIT_MARGIN: Duration = Duration::from_millis(500);
/// How often the master looks at its workers when nothing else wakes it.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a timed-out worker may take to write its stacks before it is killed anyway
/// (faulthandler writes them inside the signal handler, so this is only a bound).
const DUMP_WAIT: Duration = Duration::from_secs(1);
/// How often to look for the "stacks written" flag while a dump is pending.
const DUMP_POLL: Duration = Duration::from_millis(10);
/// How long a timed-out worker may run gunicorn's `worker_abort` hook before it is killed.
const ABORT_WAIT: Duration = Duration::from_secs(1);
/// The signals the master acts on.
const SIGNALS: [libc::c_int; 10] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// The write end of the self-pipe, for the signal handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = u8::try_from(sig).unwrap_or(0);
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte. A full pipe
        // drops the byte, which is fine: the loop also reaps and re-checks on its timeout.
        unsafe {
            libc::write(fd, std::ptr::from_ref(&byte).cast(), 1);
        }
    }
}

/// What a fork returned, seen from each side.
enum Forked {
    Parent(libc::pid_t, Slot),
    /// In the child, after it served and stopped: its exit code.
    Child(i32),
}

/// Where a worker is in its life, as the master sees it.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Counts towards the number of workers.
    Serving,
    /// Told to stop gracefully (SIGTERM); killed if still there at `deadline`.
    Retiring { deadline: Instant },
    /// Timed out and asked to write its stacks; killed once it has, or at `deadline`.
    Dumping { deadline: Instant },
    /// Timed out, stacks written, running the `worker_abort` hook; killed at `deadline`.
    Aborting { deadline: Instant },
    /// Sent SIGKILL; waiting to be reaped.
    Killed,
}

/// One worker process.
struct Child {
    started: Instant,
    slot: Slot,
    /// Its `--max-requests` with its jitter; 0 = no limit.
    request_limit: u64,
    phase: Phase,
    /// The `worker` object passed to gunicorn's hooks, when hooks are defined.
    hook_worker: Option<Py<PyAny>>,
}

struct Master<'a> {
    cfg: Config,
    /// The command line, to re-read the settings on HUP.
    argv: &'a [String],
    listeners: &'a [Listener],
    access_log: Option<Arc<AccessLog>>,
    read_fd: RawFd,
    write_fd: RawFd,
    /// Every worker not yet reaped, by pid.
    children: HashMap<libc::pid_t, Child>,
    target: usize,
    /// Set once a stop began: workers exiting are then expected, not news.
    stopping: bool,
    /// The application imported by the master (`--preload`), served by every worker.
    app: Option<Py<PyAny>>,
    /// The file watcher (`--reload`).
    reloader: Option<Reloader>,
    /// With `--reload`, a worker could not import the application: no worker is forked
    /// until the next change (instead of stopping the server, or forking in a loop).
    broken: bool,
    /// A worker found an ASGI application and the line saying so was written: the other
    /// workers that find it too add nothing.
    asgi_reported: bool,
    /// Workers forked so far (gunicorn's `worker.age` of the last one).
    age: u64,
}

/// Run the master until it is stopped; returns the exit code (in a forked worker: the
/// worker's exit code, as the worker returns through here).
pub(crate) fn run(
    py: Python<'_>,
    cfg: &Config,
    argv: &[String],
    listeners: &[Listener],
    access_log: Option<Arc<AccessLog>>,
) -> i32 {
    // Before the master's signal handlers: a stop during a long import ends the process
    // as it would before the server started (TERM by its default action, INT as Python's
    // KeyboardInterrupt, which fails the import).
    let app = if cfg.preload {
        match crate::preload::load(py, cfg) {
            Ok(app) => Some(app),
            Err(code) => return code,
        }
    } else {
        None
    };
    let (read_fd, write_fd) = match self_pipe() {
        Ok(p) => p,
        Err(e) => {
            log::error(format_args!("cannot create the signal pipe: {e}"));
            return 1;
        }
    };
    SIGNAL_PIPE.store(write_fd, Ordering::Relaxed);
    for sig in SIGNALS {
        install(sig, on_signal as *const () as libc::sighandler_t);
    }
    for l in listeners {
        defer_accept(l);
    }
    let threads = usize::try_from(cfg.threads.max(1)).unwrap_or(1);
    announce(listeners, threads);
    log::info(format_args!("Arbiter booted: {} workers", cfg.workers));
    let target = usize::try_from(cfg.workers).unwrap_or(1);
    // gunicorn's moment: listening, before the first worker. A failure stops the server
    // before it serves, as there.
    compat::server_state(py, target, &crate::ops::app_name(cfg));
    if compat::call(py, "when_ready", vec![Arg::Server]) == Outcome::Raised {
        log::error(format_args!("when_ready hook failed; stopping"));
        return 1;
    }
    let master_pid = std::process::id();
    let reloader = if cfg.reload {
        Reloader::start(py, cfg)
    } else {
        None
    };
    let mut master = Master {
        cfg: cfg.clone(),
        argv,
        listeners,
        access_log,
        read_fd,
        write_fd,
        children: HashMap::new(),
        target,
        stopping: false,
        app,
        reloader,
        broken: false,
        asgi_reported: false,
        age: 0,
    };
    let code = master.run(py);
    // Forked workers return through here too; the hook is the master's.
    if std::process::id() == master_pid {
        compat::call(py, "on_exit", vec![Arg::Server]);
    }
    code
}

fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: signalling our own child, which is not reaped yet (so the pid is still ours).
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Master<'_> {
    fn serving(&self) -> usize {
        self.children
            .values()
            .filter(|c| c.phase == Phase::Serving)
            .count()
    }

    fn run(&mut self, py: Python<'_>) -> i32 {
        if let Some(code) = self.spawn_missing(py) {
            return code;
        }
        crate::ops::master_ready(self.target);
        loop {
            if let Some(code) = self.spawn_missing(py) {
                return code;
            }
            let dumping = self
                .children
                .values()
                .any(|c| matches!(c.phase, Phase::Dumping { .. }));
            let mut wait = if dumping { DUMP_POLL } else { CHECK_EVERY };
            if let Some(due) = self.reloader.as_ref().and_then(|r| r.wait(Instant::now())) {
                wait = wait.min(due);
            }
            let watch = self.reloader.as_ref().map(Reloader::fd);
            let read_fd = self.read_fd;
            let (signals, changed) = py.detach(|| wait_signals(read_fd, watch, wait));
            if changed {
                if let Some(Err(e)) = self.reloader.as_mut().map(Reloader::read) {
                    log::error(format_args!("reload: cannot read file changes: {e}; off"));
                    self.reloader = None;
                }
            }
            if let Some(code) = self.reap(py) {
                return self.halt(py, code);
            }
            for sig in signals {
                match sig {
                    libc::SIGTERM => {
                        crate::notify::stopping();
                        log::info(format_args!("Handling signal: term; stopping workers"));
                        let patience = self.cfg.graceful_timeout + EXIT_MARGIN;
                        return self.stop(py, libc::SIGTERM, patience);
                    }
                    libc::SIGINT | libc::SIGQUIT => {
                        crate::notify::stopping();
                        log::info(format_args!("Handling signal: int/quit; stopping workers"));
                        return self.stop(py, libc::SIGINT, FAST_STOP);
                    }
                    libc::SIGTTIN => {
                        self.target += 1;
                        log::info(format_args!(
                            "Handling signal: ttin; {} workers",
                            self.target
                        ));
                        self.workers_changed(py, self.target - 1);
                    }
                    libc::SIGTTOU => {
                        let old = self.target;
                        if self.target > 1 {
                            self.target -= 1;
                        }
                        log::info(format_args!(
                            "Handling signal: ttou; {} workers",
                            self.target
                        ));
                        if old != self.target {
                            self.workers_changed(py, old);
                        }
                        self.retire_extra();
                    }
                    libc::SIGHUP => {
                        log::info(format_args!("Handling signal: hup; reloading"));
                        crate::notify::reloading();
                        if let Some(code) = self.reload(py) {
                            return code;
                        }
                        crate::ops::master_ready(self.target);
                    }
                    libc::SIGUSR1 => crate::ops::master_usr1(
                        self.access_log.as_deref(),
                        self.children.keys().copied(),
                    ),
                    libc::SIGUSR2 => {
                        compat::call(py, "pre_exec", vec![Arg::Server]);
                        crate::upgrade::reexec(&crate::ops::fds(self.listeners));
                    }
                    libc::SIGWINCH if crate::upgrade::winch_is_an_order() => {
                        log::info(format_args!("Handling signal: winch; stopping workers"));
                        self.target = 0;
                        self.retire_extra();
                    }
                    _ => {}
                }
            }
            // --reload: a file changed (and things have been quiet since): as on HUP.
            if let Some(change) = self.reloader.as_mut().and_then(|r| r.due(Instant::now())) {
                change.announce();
                crate::notify::reloading();
                if let Some(code) = self.reload(py) {
                    return code;
                }
                crate::ops::master_ready(self.target);
            }
            self.supervise();
        }
    }

    /// gunicorn's `nworkers_changed(server, new, old)`.
    fn workers_changed(&self, py: Python<'_>, old: usize) {
        compat::server_state(py, self.target, &crate::ops::app_name(&self.cfg));
        let new = i64::try_from(self.target).unwrap_or(i64::MAX);
        let old = i64::try_from(old).unwrap_or(i64::MAX);
        compat::call(
            py,
            "nworkers_changed",
            vec![Arg::Server, Arg::Int(new), Arg::Int(old)],
        );
    }

    /// Fork workers until `target` of them serve. In a child, returns its exit code.
    fn spawn_missing(&mut self, py: Python<'_>) -> Option<i32> {
        while !self.broken && self.serving() < self.target {
            self.age += 1;
            let hook_worker = compat::new_worker(py, self.age);
            if let Some(w) = &hook_worker {
                compat::call(
                    py,
                    "pre_fork",
                    vec![Arg::Server, Arg::Worker(Some(w.clone_ref(py)))],
                );
            }
            match self.fork_worker(py, hook_worker.as_ref()) {
                Ok(Forked::Parent(pid, slot)) => {
                    let request_limit = watchdog::request_limit(
                        self.cfg.max_requests,
                        self.cfg.max_requests_jitter,
                    );
                    self.children.insert(
                        pid,
                        Child {
                            started: Instant::now(),
                            slot,
                            request_limit,
                            phase: Phase::Serving,
                            hook_worker,
                        },
                    );
                }
                Ok(Forked::Child(code)) => return Some(code),
                Err(e) => {
                    log::error(format_args!("cannot fork a worker: {e}"));
                    break;
                }
            }
        }
        None
    }

    fn fork_worker(
        &self,
        py: Python<'_>,
        hook_worker: Option<&Py<PyAny>>,
    ) -> std::io::Result<Forked> {
        // The slot exists before the fork so both processes share it. One record per thread
        // that may call the application: the Python threads and the connection thread.
        let threads = usize::try_from(self.cfg.threads.max(1)).unwrap_or(1);
        let slot = Slot::new(threads + 1, now_ns())?;
        if self.app.is_some() {
            crate::preload::freeze(py);
        }
        // Signals are blocked across fork: a TERM sent to the whole process group at that
        // moment must neither run the master's handler in the child (the child would swallow
        // it) nor be lost. Each side unblocks once its handlers are right.
        let blocked = block_signals();
        // SAFETY: the master is single-threaded (no runtime, no Python threads of ours) and
        // holds the GIL here, which is what CPython's fork protocol requires around fork().
        let pid = unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            let pid = libc::fork();
            if pid == 0 {
                pyo3::ffi::PyOS_AfterFork_Child();
            } else {
                pyo3::ffi::PyOS_AfterFork_Parent();
            }
            pid
        };
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            unblock_signals(&blocked);
            return Err(err);
        }
        if pid > 0 {
            unblock_signals(&blocked);
            if let Some(w) = hook_worker {
                compat::worker_forked(py, w, u32::try_from(pid).unwrap_or(0), false);
            }
            return Ok(Forked::Parent(pid, slot));
        }
        // The child: give the signals back to their defaults (the worker installs its own),
        // and let go of the master's pipe.
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        for sig in SIGNALS {
            install(sig, libc::SIG_DFL);
        }
        crate::ops::worker_after_fork(&self.cfg);
        unblock_signals(&blocked);
        // SAFETY: closing descriptors this process owns and no longer uses.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
        if let Some(r) = &self.reloader {
            r.close_in_child();
        }
        // As gunicorn, before the application is loaded.
        log::info(format_args!(
            "Booting worker with pid: {}",
            std::process::id()
        ));
        crate::supervise::enter_worker(py, slot, &self.cfg);
        if let Some(w) = hook_worker {
            compat::worker_forked(py, w, std::process::id(), true);
            // A failing post_fork is a failed boot, as in gunicorn.
            if compat::call(py, "post_fork", vec![Arg::Server, Arg::Worker(None)])
                == Outcome::Raised
            {
                return Ok(Forked::Child(EXIT_BOOT));
            }
            if compat::defined("worker_abort") {
                crate::supervise::arm_abort_hook();
            }
        }
        let code = serve_here(
            py,
            &self.cfg,
            self.listeners,
            self.access_log.clone(),
            self.app.as_ref(),
        );
        if hook_worker.is_some() {
            log::info(format_args!("Worker exiting (pid: {})", std::process::id()));
            compat::call(py, "worker_exit", vec![Arg::Server, Arg::Worker(None)]);
        }
        Ok(Forked::Child(code))
    }

    /// Collect exited workers. Returns an exit code when one failed in a way that must stop
    /// the master rather than be retried: it exited 4 (cannot load the app) or 3 (cannot
    /// boot) before it told its slot it serves. The same codes later are a crash.
    fn reap(&mut self, py: Python<'_>) -> Option<i32> {
        let mut halt = None;
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes the status into our local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if crate::upgrade::reaped(pid, status) {
                continue;
            }
            let Some(child) = self.children.remove(&pid) else {
                continue;
            };
            // Read before the slot goes (its mapping is dropped with `child`).
            let booted = child.slot.booted();
            if let Some(w) = child.hook_worker.as_ref() {
                compat::call(
                    py,
                    "child_exit",
                    vec![Arg::Server, Arg::Worker(Some(w.clone_ref(py)))],
                );
            }
            let expected = self.stopping || child.phase != Phase::Serving;
            if libc::WIFEXITED(status) {
                let code = libc::WEXITSTATUS(status);
                let boot_failure = !booted && (code == EXIT_APP_LOAD || code == EXIT_BOOT);
                if !booted && code == crate::appkind::EXIT_WORKER_ASGI {
                    // An ASGI application: the worker wrote nothing, the line is written here,
                    // once for all the workers that find it, and it says everything. (After
                    // boot the code means nothing special: a crash like any other, below.)
                    let first = !self.asgi_reported;
                    if first {
                        if let Some(spec) = &self.cfg.app {
                            crate::appkind::report(spec);
                        }
                        self.asgi_reported = true;
                    }
                    if self.cfg.reload && !self.stopping {
                        if first {
                            log::error(format_args!(
                                "waiting for a file change to try again (--reload)"
                            ));
                        }
                        self.broken = true;
                    } else if !self.stopping {
                        halt = Some(EXIT_APP_LOAD);
                    }
                } else if !booted && code == crate::statics::EXIT_WORKER_SETTINGS {
                    // The worker said which setting and how to fix it; a settings error
                    // stops the server with 2 (under --reload, the fix reloads).
                    if self.cfg.reload && !self.stopping {
                        self.broken = true;
                    } else if !self.stopping {
                        halt = Some(2);
                    }
                } else if boot_failure && code == EXIT_APP_LOAD && self.cfg.reload && !self.stopping
                {
                    // Development: a typo must not stop the server; the fix reloads.
                    log::error(format_args!(
                        "Worker (pid:{pid}) cannot load the application; \
                         waiting for a file change to try again (--reload)"
                    ));
                    self.broken = true;
                } else if boot_failure {
                    // gunicorn's meaning of 3 and 4: forking again would fail the same way.
                    log::error(format_args!(
                        "Worker (pid:{pid}) failed to boot (exit code {code}); stopping"
                    ));
                    halt = Some(code);
                } else if code == EXIT_APP_LOAD || code == EXIT_BOOT {
                    // The same codes from a worker that served (an application calling
                    // os._exit(4), a C extension's exit(3)) are a crash like any other: only
                    // this worker is lost, and it is replaced.
                    log::error(format_args!(
                        "Worker (pid:{pid}) exited with code {code} after it booted \
                         (a crash, not a boot failure); replacing it"
                    ));
                } else if code != 0 || !expected {
                    log::warn(format_args!("Worker (pid:{pid}) exited with code {code}"));
                }
            } else if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                // Our own SIGKILL was announced when it was sent; a stop signal arriving
                // before a booting worker installed its handlers is part of the stop.
                let ours = child.phase == Phase::Killed
                    || (self.stopping && matches!(sig, libc::SIGTERM | libc::SIGINT));
                if !ours {
                    log::error(format_args!(
                        "Worker (pid:{pid}) was killed by signal {sig}"
                    ));
                }
            }
        }
        halt
    }

    /// Look at every worker: kill the stuck ones (after their stack dump), replace the ones
    /// due for recycling, and kill the ones that overstayed a graceful stop.
    fn supervise(&mut self) {
        let now = Instant::now();
        let mono = now_ns();
        let graceful = self.cfg.graceful_timeout + EXIT_MARGIN;
        let abort_hook = compat::defined("worker_abort");
        for (&pid, child) in &mut self.children {
            match child.phase {
                Phase::Serving | Phase::Retiring { .. } => {
                    let serving = child.phase == Phase::Serving;
                    if let Some(why) = watchdog::stuck(&child.slot, mono, self.cfg.timeout, serving)
                    {
                        log::log(
                            log::Level::Critical,
                            format_args!(
                                "WORKER TIMEOUT (pid:{pid}): {why} (timeout {} s); \
                                 writing its Python stacks, then killing it",
                                self.cfg.timeout.as_secs_f64()
                            ),
                        );
                        signal(pid, DUMP_SIGNAL);
                        child.phase = Phase::Dumping {
                            deadline: now + DUMP_WAIT,
                        };
                        continue;
                    }
                    match child.phase {
                        Phase::Retiring { deadline } if now >= deadline => {
                            log::warn(format_args!(
                                "Worker (pid:{pid}) did not stop in time; killing it"
                            ));
                            signal(pid, libc::SIGKILL);
                            child.phase = Phase::Killed;
                        }
                        Phase::Serving => {
                            if let Some(reason) = watchdog::recycle_reason(
                                &self.cfg,
                                pid,
                                &child.slot,
                                child.started,
                                child.request_limit,
                            ) {
                                log::info(format_args!(
                                    "Autorestarting worker after current request. \
                                     (pid:{pid}: {reason})"
                                ));
                                signal(pid, libc::SIGTERM);
                                child.phase = Phase::Retiring {
                                    deadline: now + graceful,
                                };
                            }
                        }
                        _ => {}
                    }
                }
                Phase::Dumping { deadline } => {
                    if child.slot.dumped() && abort_hook {
                        // The worker calls worker_abort and exits; killed if it lingers.
                        child.phase = Phase::Aborting {
                            deadline: now + ABORT_WAIT,
                        };
                    } else if child.slot.dumped() || now >= deadline {
                        signal(pid, libc::SIGKILL);
                        child.phase = Phase::Killed;
                    }
                }
                Phase::Aborting { deadline } => {
                    if now >= deadline {
                        signal(pid, libc::SIGKILL);
                        child.phase = Phase::Killed;
                    }
                }
                Phase::Killed => {}
            }
        }
    }

    /// Tell a serving worker to finish its requests and exit.
    fn retire(&mut self, pid: libc::pid_t) {
        let deadline = Instant::now() + self.cfg.graceful_timeout + EXIT_MARGIN;
        if let Some(child) = self.children.get_mut(&pid) {
            child.phase = Phase::Retiring { deadline };
            signal(pid, libc::SIGTERM);
        }
    }

    /// HUP, as gunicorn: re-read the settings (command line, environment, config file),
    /// start a full set of new workers with them, then retire the old workers gracefully, so
    /// requests keep being served throughout. The sockets stay as they are. Invalid new
    /// settings are logged and the old ones kept. A preloaded application is kept: the new
    /// workers are forked from this process, which holds its modules. `--reload` does the
    /// same on a file change. In a forked child, returns its exit code.
    fn reload(&mut self, py: Python<'_>) -> Option<i32> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let old_target = self.target;
        match compat::load(py, self.argv, &env, true).map(|l| {
            compat::log_notes(&l);
            l.action
        }) {
            Ok(bourbon_config::Action::Run(cfg)) => {
                if cfg.preload && self.app.is_none() {
                    // Turned on since the start: preload now, or keep everything as it is.
                    match crate::preload::load(py, &cfg) {
                        Ok(app) => self.app = Some(app),
                        Err(_) => {
                            log::error(format_args!(
                                "reload: cannot preload the application; \
                                 keeping the current settings"
                            ));
                            return None;
                        }
                    }
                }
                if !cfg.reload {
                    self.reloader = None;
                } else if !self.reloader.as_ref().is_some_and(|r| r.same_files(&cfg)) {
                    self.reloader = None; // its watches go before the new ones are made
                    self.reloader = Reloader::start(py, &cfg);
                }
                self.target = usize::try_from(cfg.workers).unwrap_or(1);
                self.cfg = cfg;
            }
            Ok(_) => {}
            Err(e) => {
                let e = e.strip_prefix("error: ").unwrap_or(&e);
                log::error(format_args!("reload: {e}; keeping the current settings"));
                return None;
            }
        }
        // gunicorn's order: the new settings are in, the new workers are not forked yet.
        self.workers_changed(py, old_target);
        compat::call(py, "on_reload", vec![Arg::Server]);
        if self.app.is_some() {
            log::info(format_args!(
                "reload: the application was preloaded, so its code is not reloaded \
                 (restart, or send USR2, to load new code)"
            ));
        }
        self.broken = false;
        self.asgi_reported = false;
        let old: Vec<libc::pid_t> = self
            .children
            .iter()
            .filter(|(_, c)| c.phase == Phase::Serving)
            .map(|(&pid, _)| pid)
            .collect();
        // Out of the count first, so that a full new set is forked before any old one
        // stops.
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        for pid in &old {
            if let Some(c) = self.children.get_mut(pid) {
                c.phase = Phase::Retiring { deadline: far };
            }
        }
        if let Some(code) = self.spawn_missing(py) {
            return Some(code);
        }
        for pid in old {
            self.retire(pid);
        }
        None
    }

    /// TTOU: ask the oldest workers beyond the target to finish and exit.
    fn retire_extra(&mut self) {
        while self.serving() > self.target {
            let Some(pid) = self
                .children
                .iter()
                .filter(|(_, c)| c.phase == Phase::Serving)
                .min_by_key(|(_, c)| c.started)
                .map(|(&pid, _)| pid)
            else {
                break;
            };
            self.retire(pid);
        }
    }

    /// A worker could not boot: stop the others and exit with its code.
    fn halt(&mut self, py: Python<'_>, code: i32) -> i32 {
        let _ = self.stop(py, libc::SIGTERM, FAST_STOP);
        code
    }

    /// Tell every worker to stop with `sig`, wait up to `patience`, then kill the rest.
    fn stop(&mut self, py: Python<'_>, sig: libc::c_int, patience: Duration) -> i32 {
        self.stopping = true;
        // The master holds the sockets too: closed here first, connections that arrive while
        // the workers drain are refused at once (or go to a new master that shares the
        // sockets, or to another server on a SO_REUSEPORT port) instead of waiting for the
        // drain and being reset at its end.
        for l in self.listeners {
            if let Err(e) = l.close_here() {
                log::warn(format_args!("cannot close {}: {e}", l.describe()));
            }
        }
        for (&pid, child) in &self.children {
            if child.phase != Phase::Killed {
                signal(pid, sig);
            }
        }
        let deadline = Instant::now() + patience;
        let read_fd = self.read_fd;
        while !self.children.is_empty() && Instant::now() < deadline {
            let _ = py.detach(|| wait_signals(read_fd, None, Duration::from_millis(100)));
            let _ = self.reap(py);
        }
        for (&pid, child) in &mut self.children {
            if child.phase != Phase::Killed {
                log::warn(format_args!(
                    "Worker (pid:{pid}) did not stop in time; killing it"
                ));
                signal(pid, libc::SIGKILL);
                child.phase = Phase::Killed;
            }
        }
        while !self.children.is_empty() {
            let mut status: libc::c_int = 0;
            // SAFETY: blocking wait for our own children, which were just killed.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid <= 0 {
                break;
            }
            if let Some(child) = self.children.remove(&pid) {
                if let Some(w) = child.hook_worker.as_ref() {
                    compat::call(
                        py,
                        "child_exit",
                        vec![Arg::Server, Arg::Worker(Some(w.clone_ref(py)))],
                    );
                }
            }
        }
        log::info(format_args!("Shutting down: Master"));
        0
    }
}

/// Have the kernel hand a TCP connection to `accept` only once its first bytes have arrived
/// (`TCP_DEFER_ACCEPT`, nginx's `deferred`). A worker told to stop closes the connections on
/// which no request has started; with this, a connection it accepted a moment before always
/// has its request waiting to be read, and is served. A connection that never sends a byte
/// is still accepted, after about a second, and meets the header timeout.
fn defer_accept(listener: &Listener) {
    use std::os::fd::AsRawFd;
    let Listener::Tcp(tcp) = listener else {
        return;
    };
    let secs: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, reading a c_int we own.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    if rc != 0 {
        log::debug(format_args!(
            "TCP_DEFER_ACCEPT: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// Block the master's signals; returns the previous mask.
fn block_signals() -> libc::sigset_t {
    // SAFETY: building a signal set in locals and swapping this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Restore the mask saved by [`block_signals`]; pending signals are delivered now.
fn unblock_signals(old: &libc::sigset_t) {
    // SAFETY: restoring a mask we saved.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

fn self_pipe() -> std::io::Result<(RawFd, RawFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn install(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction is valid; we set the handler and SA_RESTART so that blocking
    // calls in the master resume after a signal.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Wait up to `timeout` for signal bytes on the pipe, or for `watch` (the file watcher)
/// to become readable; return the signals read and whether `watch` is readable.
fn wait_signals(fd: RawFd, watch: Option<RawFd>, timeout: Duration) -> (Vec<libc::c_int>, bool) {
    let mut pfds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // A negative descriptor is skipped by poll(2).
            fd: watch.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Rounded up, so a deadline a fraction of a millisecond away is not a busy loop.
    let ms = libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(1000);
    // SAFETY: poll reads and writes the two pollfds we own.
    let ready = unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
    let mut out = Vec::new();
    // Any event, an error included, so that a broken watcher is read (and dropped) rather
    // than polled again at once.
    let watched = ready > 0 && pfds[1].revents != 0;
    if ready > 0 && pfds[0].revents & libc::POLLIN != 0 {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into our local buffer from our non-blocking pipe.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend(
                buf[..usize::try_from(n).unwrap_or(0)]
                    .iter()
                    .map(|&b| libc::c_int::from(b)),
            );
        }
    }
    (out, watched)
}
