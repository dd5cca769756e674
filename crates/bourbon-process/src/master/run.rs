//! The master process: forks the workers, replaces the ones that die, supervises them and
//! turns the operator's signals into actions on them, as gunicorn's arbiter does. Every run
//! has one, also with a single worker, so that timeouts and recycling always apply.
//!
//! It owns the worker table and the master loop. The master is single-threaded and never
//! builds a runtime: the sockets are bound (and `--chdir`, `--pythonpath`, `-e` applied)
//! before it starts, and each worker loads the application after fork, through CPython's
//! program's fork protocol ([`Boot`]: CPython's `PyOS_BeforeFork` / `PyOS_AfterFork_*`),
//! unless `--preload` had the master load it before the first fork. With `--reload` the loop
//! also polls the file watcher (`reloader.rs`) and reloads as on SIGHUP when a file changed.
//! Signal handlers only write the signal number to a pipe; everything else, logging included,
//! happens in the loop, which also wakes at least twice a second to look at each worker's
//! shared slot (`scoreboard.rs`) and judge it (`watchdog.rs`): a stuck worker has its Python
//! stacks dumped and is killed and replaced; a worker due for recycling gets its replacement
//! first and is then stopped gracefully.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourbon_config::Config;
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;

use crate::reloader::Reloader;
use crate::scoreboard::{now_ns, Slot};
use crate::signals::{block_signals, route_to_pipe, self_pipe, unblock_signals, wait_signals};
use crate::{watchdog, Boot, Hook, WorkerCtx, WorkerId, DUMP_SIGNAL, EXIT_APP_LOAD, EXIT_BOOT};
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
    /// Its number, by which the program knows it (gunicorn's `worker.age`).
    id: WorkerId,
}

struct Master<'a, B: Boot> {
    boot: &'a mut B,
    cfg: Config,
    listeners: &'a [Listener],
    access_log: Option<Arc<AccessLog>>,
    read_fd: RawFd,
    write_fd: RawFd,
    /// Every worker not yet reaped, by pid.
    children: HashMap<libc::pid_t, Child>,
    target: usize,
    /// Set once a stop began: workers exiting are then expected, not news.
    stopping: bool,
    /// The file watcher (`--reload`).
    reloader: Option<Reloader>,
    /// With `--reload`, a worker could not import the application: no worker is forked
    /// until the next change (instead of stopping the server, or forking in a loop).
    broken: bool,
    /// The private exit codes (see [`Boot::private_exit`]) met since the last (re)load:
    /// the program's line about one is written once, however many workers exit with it.
    reported: Vec<i32>,
    /// Workers forked so far (gunicorn's `worker.age` of the last one).
    age: u64,
}

/// Run the master until it is stopped; returns the exit code (in a forked worker: the
/// worker's exit code, as the worker returns through here).
pub fn run<B: Boot>(
    boot: &mut B,
    cfg: &Config,
    listeners: &[Listener],
    access_log: Option<Arc<AccessLog>>,
) -> i32 {
    // Before the master's signal handlers: a stop during a long import ends the process
    // as it would before the server started (TERM by its default action, INT as Python's
    // KeyboardInterrupt, which fails the import).
    if cfg.preload {
        if let Err(code) = boot.preload(cfg) {
            return code;
        }
    }
    let (read_fd, write_fd) = match self_pipe() {
        Ok(p) => p,
        Err(e) => {
            log::error(format_args!("cannot create the signal pipe: {e}"));
            return 1;
        }
    };
    route_to_pipe(write_fd);
    for l in listeners {
        defer_accept(l);
    }
    boot.announce(listeners, cfg);
    log::info(format_args!("Arbiter booted: {} workers", cfg.workers));
    let target = usize::try_from(cfg.workers).unwrap_or(1);
    // gunicorn's moment: listening, before the first worker. A failure stops the server
    // before it serves, as there.
    boot.set_server_state(target, cfg);
    if boot.hook(Hook::WhenReady).is_err() {
        log::error(format_args!("when_ready hook failed; stopping"));
        return 1;
    }
    let master_pid = std::process::id();
    let reloader = if cfg.reload {
        Reloader::start(cfg, &boot.watched_paths(cfg))
    } else {
        None
    };
    let mut master = Master {
        boot,
        cfg: cfg.clone(),
        listeners,
        access_log,
        read_fd,
        write_fd,
        children: HashMap::new(),
        target,
        stopping: false,
        reloader,
        broken: false,
        reported: Vec::new(),
        age: 0,
    };
    let code = master.run();
    // Forked workers return through here too; the hook is the master's.
    if std::process::id() == master_pid {
        let _ = master.boot.hook(Hook::OnExit);
    }
    code
}

fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: signalling our own child, which is not reaped yet (so the pid is still ours).
    unsafe {
        libc::kill(pid, sig);
    }
}

impl<B: Boot> Master<'_, B> {
    fn serving(&self) -> usize {
        self.children
            .values()
            .filter(|c| c.phase == Phase::Serving)
            .count()
    }

    fn run(&mut self) -> i32 {
        if let Some(code) = self.spawn_missing() {
            return code;
        }
        crate::ops::master_ready(self.target);
        loop {
            if let Some(code) = self.spawn_missing() {
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
            let (mut signals, mut changed) = (Vec::new(), false);
            self.boot
                .unlocked(&mut || (signals, changed) = wait_signals(read_fd, watch, wait));
            if changed {
                if let Some(Err(e)) = self.reloader.as_mut().map(Reloader::read) {
                    log::error(format_args!("reload: cannot read file changes: {e}; off"));
                    self.reloader = None;
                }
            }
            if let Some(code) = self.reap() {
                return self.halt(code);
            }
            for sig in signals {
                match sig {
                    libc::SIGTERM => {
                        crate::notify::stopping();
                        log::info(format_args!("Handling signal: term; stopping workers"));
                        let patience = self.cfg.graceful_timeout + EXIT_MARGIN;
                        return self.stop(libc::SIGTERM, patience);
                    }
                    libc::SIGINT | libc::SIGQUIT => {
                        crate::notify::stopping();
                        log::info(format_args!("Handling signal: int/quit; stopping workers"));
                        return self.stop(libc::SIGINT, FAST_STOP);
                    }
                    libc::SIGTTIN => {
                        self.target += 1;
                        log::info(format_args!(
                            "Handling signal: ttin; {} workers",
                            self.target
                        ));
                        self.workers_changed(self.target - 1);
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
                            self.workers_changed(old);
                        }
                        self.retire_extra();
                    }
                    libc::SIGHUP => {
                        log::info(format_args!("Handling signal: hup; reloading"));
                        crate::notify::reloading();
                        if let Some(code) = self.reload() {
                            return code;
                        }
                        crate::ops::master_ready(self.target);
                    }
                    libc::SIGUSR1 => crate::ops::master_usr1(
                        self.access_log.as_deref(),
                        self.children.keys().copied(),
                    ),
                    libc::SIGUSR2 => {
                        let _ = self.boot.hook(Hook::PreExec);
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
                if let Some(code) = self.reload() {
                    return code;
                }
                crate::ops::master_ready(self.target);
            }
            self.supervise();
        }
    }

    /// gunicorn's `nworkers_changed(server, new, old)`.
    fn workers_changed(&mut self, old: usize) {
        self.boot.set_server_state(self.target, &self.cfg);
        let new = self.target;
        let _ = self.boot.hook(Hook::WorkersChanged { new, old });
    }

    /// Fork workers until `target` of them serve. In a child, returns its exit code.
    fn spawn_missing(&mut self) -> Option<i32> {
        while !self.broken && self.serving() < self.target {
            self.age += 1;
            let id = self.age;
            match self.fork_worker(id) {
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
                            id,
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

    fn fork_worker(&mut self, id: WorkerId) -> std::io::Result<Forked> {
        // The slot exists before the fork so both processes share it. One record per thread
        // that may call the application: the Python threads and the connection thread.
        let threads = usize::try_from(self.cfg.threads.max(1)).unwrap_or(1);
        let slot = Slot::new(threads + 1, now_ns())?;
        // The `pre_fork` hook, and `gc.freeze()` when preloaded.
        self.boot.prepare_worker(id);
        // Signals are blocked across fork: a TERM sent to the whole process group at that
        // moment must neither run the master's handler in the child (the child would swallow
        // it) nor be lost. Each side unblocks once its handlers are right.
        let blocked = block_signals();
        self.boot.before_fork();
        // SAFETY: the master is single-threaded (no runtime, no threads of ours), and the
        // program's fork protocol runs on both sides (CPython's requires the GIL, held here).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            self.boot.after_fork_child();
        } else {
            self.boot.after_fork_parent();
        }
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            unblock_signals(&blocked);
            self.boot.worker_forked(id, None);
            return Err(err);
        }
        if pid > 0 {
            unblock_signals(&blocked);
            self.boot.worker_forked(id, Some(pid));
            return Ok(Forked::Parent(pid, slot));
        }
        // The child: give the signals back to their defaults (the worker installs its own),
        // and let go of the master's pipe.
        crate::signals::reset_in_child();
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
        let code = self.boot.work(WorkerCtx {
            id,
            slot,
            cfg: &self.cfg,
            listeners: self.listeners,
            access_log: self.access_log.clone(),
        });
        Ok(Forked::Child(code))
    }

    /// Collect exited workers. Returns an exit code when one failed in a way that must stop
    /// the master rather than be retried: it exited 4 (cannot load the app) or 3 (cannot
    /// boot) before it told its slot it serves. The same codes later are a crash.
    fn reap(&mut self) -> Option<i32> {
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
            let _ = self.boot.hook(Hook::ChildExit(child.id));
            self.boot.forget_worker(child.id);
            let expected = self.stopping || child.phase != Phase::Serving;
            if libc::WIFEXITED(status) {
                let code = libc::WEXITSTATUS(status);
                let boot_failure = !booted && (code == EXIT_APP_LOAD || code == EXIT_BOOT);
                let first = !self.reported.contains(&code);
                let private = if booted {
                    None
                } else {
                    self.boot.private_exit(code)
                };
                if let Some(private) = private {
                    // A code the program gave its own meaning (the worker, or the program
                    // here, once for all the workers that exit with it, said what it is).
                    // After boot the code means nothing special: a crash like any other.
                    if first {
                        self.reported.push(code);
                        self.boot.report_private(code, &self.cfg);
                    }
                    if self.cfg.reload && !self.stopping {
                        if first && private.announce_wait {
                            log::error(format_args!(
                                "waiting for a file change to try again (--reload)"
                            ));
                        }
                        self.broken = true;
                    } else if !self.stopping {
                        halt = Some(private.exit);
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
        let abort_hook = self.boot.has_abort_hook();
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
    fn reload(&mut self) -> Option<i32> {
        let old_target = self.target;
        match self.boot.reread_settings() {
            Ok(Some(cfg)) => {
                if cfg.preload && !self.boot.preloaded() {
                    // Turned on since the start: preload now, or keep everything as it is.
                    match self.boot.preload(&cfg) {
                        Ok(()) => {}
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
                    let paths = self.boot.watched_paths(&cfg);
                    self.reloader = Reloader::start(&cfg, &paths);
                }
                self.target = usize::try_from(cfg.workers).unwrap_or(1);
                self.cfg = cfg;
            }
            Ok(None) => {}
            Err(e) => {
                let e = e.strip_prefix("error: ").unwrap_or(&e);
                log::error(format_args!("reload: {e}; keeping the current settings"));
                return None;
            }
        }
        // gunicorn's order: the new settings are in, the new workers are not forked yet.
        self.workers_changed(old_target);
        let _ = self.boot.hook(Hook::OnReload);
        if self.boot.preloaded() {
            log::info(format_args!(
                "reload: the application was preloaded, so its code is not reloaded \
                 (restart, or send USR2, to load new code)"
            ));
        }
        self.broken = false;
        self.reported.clear();
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
        if let Some(code) = self.spawn_missing() {
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
    fn halt(&mut self, code: i32) -> i32 {
        let _ = self.stop(libc::SIGTERM, FAST_STOP);
        code
    }

    /// Tell every worker to stop with `sig`, wait up to `patience`, then kill the rest.
    fn stop(&mut self, sig: libc::c_int, patience: Duration) -> i32 {
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
            self.boot.unlocked(&mut || {
                let _ = wait_signals(read_fd, None, Duration::from_millis(100));
            });
            let _ = self.reap();
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
                let _ = self.boot.hook(Hook::ChildExit(child.id));
                self.boot.forget_worker(child.id);
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
