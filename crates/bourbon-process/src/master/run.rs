//! The master's real loop: it turns the self-pipe, `waitpid`, the workers' slots and the
//! file watcher into inputs for [`Master`] (the decisions, `mod.rs`) and carries out what
//! it returns: forks (through the program's fork protocol, [`Boot`]), signals, log lines,
//! hooks, reloads and the stop. Every run has a master, also with a single worker, so that
//! timeouts and recycling always apply.
//!
//! The master is single-threaded and never builds a runtime: the sockets are bound before
//! it starts, and each worker loads the application after the fork, unless `--preload` had
//! the master load it first. Signal handlers only write the signal number to a pipe;
//! everything else, logging included, happens here. The loop wakes at least twice a second
//! (every 10 ms while a stack dump is pending) to read each worker's slot
//! (`scoreboard.rs`), which the master then judges. With `--reload` it also polls the file
//! watcher (`reloader.rs`) and reloads as on SIGHUP when a file changed. It also serves
//! the control socket (`control.rs`) from the same wait, never blocking on a client.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourbon_config::Config;
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;

use super::{Ended, Look, Master, Output, Phase, Pid, Reaped, Sig};
use crate::control::{CallInfo, Control, MasterInfo, WorkerInfo};
use crate::metrics::{Endpoint, Extra, Region};
use crate::reloader::Reloader;
use crate::scoreboard::{now_ns, Interface, Slot};
use crate::signals::{block_signals, route_to_pipe, self_pipe, unblock_signals, wait_signals};
use crate::{watchdog, Boot, Hook, WorkerCtx, WorkerId};

/// How often the master looks at its workers when nothing else wakes it.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often to look for the "stacks written" flag while a dump is pending.
const DUMP_POLL: Duration = Duration::from_millis(10);

/// What a fork returned, seen from each side.
enum Forked {
    Parent(Pid, Slot),
    /// In the child, after it served and stopped: its exit code.
    Child(i32),
}

/// Whether to go on after carrying out some outputs, or return this exit code (the
/// master's after a stop, or a forked worker's).
enum Flow {
    Go,
    Return(i32),
}

/// The loop and what it holds that the decisions do not: the program, descriptors,
/// sockets, the workers' shared slots, the file watcher.
struct Driver<'a, B: Boot> {
    boot: &'a mut B,
    master: Master,
    listeners: &'a [Listener],
    access_log: Option<Arc<AccessLog>>,
    read_fd: RawFd,
    write_fd: RawFd,
    /// Each worker's slot, by pid (dropped, and unmapped, when the worker is collected).
    slots: HashMap<Pid, Slot>,
    /// The file watcher (`--reload`).
    reloader: Option<Reloader>,
    /// Every booted worker is saturated, as last published for readiness probes.
    all_stuck: bool,
    /// The control socket (`bourbon status`), made once the master runs as its user.
    control: Option<Control>,
    /// When the master started, for its uptime.
    started: Instant,
    /// `--metrics-bind`: the endpoint, and the counters it serves.
    endpoint: Option<Endpoint>,
    metrics: Option<Metrics>,
}

/// The master's metrics: the exited workers' totals and each live worker's region, by pid.
struct Metrics {
    totals: Region,
    regions: HashMap<Pid, Region>,
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
    // Before the readiness lines, so that a server that says it listens can be asked.
    let control = Control::open(&cfg.control_socket);
    for l in listeners {
        defer_accept(l);
    }
    // The health board: mapped before any worker is forked, so all of them share it.
    if let Err(e) = bourbon_server::layer::health::map_board() {
        log::warn(format_args!(
            "cannot map the health board: {e}; probes will not see a stop or stuck workers"
        ));
    }
    // Before the readiness lines: once they are out, the endpoint answers.
    let (endpoint, metrics) = match start_metrics(cfg) {
        Ok(Some((e, m))) => (Some(e), Some(m)),
        Ok(None) => (None, None),
        Err(code) => return code,
    };
    boot.announce(listeners, cfg);
    log::info(format_args!("Arbiter booted: {} workers", cfg.workers));
    let master = Master::new(cfg.clone());
    // gunicorn's moment: listening, before the first worker. A failure stops the server
    // before it serves, as there.
    boot.set_server_state(master.target(), cfg);
    if boot.hook(Hook::WhenReady).is_err() {
        log::error(format_args!("when_ready hook failed; stopping"));
        return 1;
    }
    let master_pid = std::process::id();
    let reloader = if cfg.reload {
        Reloader::start(cfg, &boot.watch(cfg))
    } else {
        None
    };
    let mut driver = Driver {
        boot,
        master,
        listeners,
        access_log,
        read_fd,
        write_fd,
        slots: HashMap::new(),
        reloader,
        all_stuck: false,
        control,
        started: Instant::now(),
        endpoint,
        metrics,
    };
    let code = driver.run();
    // Forked workers return through here too; the hook is the master's.
    if std::process::id() == master_pid {
        let _ = driver.boot.hook(Hook::OnExit);
    }
    code
}

/// Bind the metrics endpoint (`--metrics-bind`) and open the StatsD socket
/// (`--statsd-host`); `Err` is the exit code.
fn start_metrics(cfg: &Config) -> Result<Option<(Endpoint, Metrics)>, i32> {
    if let Some(target) = &cfg.statsd_host {
        let started = match target {
            bourbon_config::Bind::Tcp { host, port } => bourbon_server::metrics::start_statsd(
                bourbon_server::metrics::StatsdTarget::Udp(host, *port),
                &cfg.statsd_prefix,
                &cfg.dogstatsd_tags,
            ),
            bourbon_config::Bind::Unix(path) => bourbon_server::metrics::start_statsd(
                bourbon_server::metrics::StatsdTarget::Unix(path),
                &cfg.statsd_prefix,
                &cfg.dogstatsd_tags,
            ),
            bourbon_config::Bind::Fd(_) => Ok(()),
        };
        // As gunicorn: metrics that cannot be sent never stop the server.
        if let Err(e) = started {
            log::warn(format_args!("statsd_host {target}: {e}; no StatsD metrics"));
        }
    }
    let Some(bind) = &cfg.metrics_bind else {
        return Ok(None);
    };
    // A binary upgrade hands the old master's endpoint over, as it does the serving
    // sockets: the address is then served throughout, and never bound twice.
    let inherited = std::env::var(crate::upgrade::METRICS_FD_VAR).ok();
    std::env::remove_var(crate::upgrade::METRICS_FD_VAR);
    let endpoint = match inherited.and_then(|v| v.parse::<RawFd>().ok()) {
        Some(fd) => Endpoint::inherit(fd, bind),
        None => Endpoint::bind(bind),
    }
    .map_err(|e| {
        log::error(format_args!("metrics_bind: cannot listen at {bind}: {e}"));
        1
    })?;
    let totals = Region::new(false).map_err(|e| {
        log::error(format_args!("metrics: cannot map the counters: {e}"));
        1
    })?;
    log::info(format_args!(
        "Serving metrics at: http://{}/metrics",
        endpoint.describe()
    ));
    Ok(Some((
        endpoint,
        Metrics {
            totals,
            regions: HashMap::new(),
        },
    )))
}

impl Metrics {
    /// The exposition, now.
    fn page(&self, master: &Master) -> String {
        let extra = Extra {
            restarts: master.restarts(),
            workers: master.workers().count(),
        };
        crate::metrics::render(
            self.totals.counters(),
            self.regions.values().map(Region::counters),
            &extra,
        )
    }

    /// Worker `pid` was collected: its counts join the totals.
    fn fold(&mut self, pid: Pid) {
        if let Some(region) = self.regions.remove(&pid) {
            self.totals.counters().absorb(region.counters());
        }
    }
}

fn signal(pid: Pid, sig: libc::c_int) {
    // SAFETY: signalling our own child, which is not reaped yet (so the pid is still ours).
    unsafe {
        libc::kill(pid, sig);
    }
}

impl<B: Boot> Driver<'_, B> {
    fn run(&mut self) -> i32 {
        if let Flow::Return(code) = self.execute(self.master.fill()) {
            return code;
        }
        crate::ops::master_ready(self.master.target());
        loop {
            if let Flow::Return(code) = self.execute(self.master.fill()) {
                return code;
            }
            let mut wait = if self.master.dumping() {
                DUMP_POLL
            } else {
                CHECK_EVERY
            };
            if let Some(due) = self.reloader.as_ref().and_then(|r| r.wait(Instant::now())) {
                wait = wait.min(due);
            }
            if let Some(due) = self.control.as_ref().and_then(|c| c.wait(Instant::now())) {
                wait = wait.min(due);
            }
            if let Some(due) = self.endpoint.as_ref().and_then(Endpoint::next_deadline) {
                wait = wait.min(due.saturating_duration_since(Instant::now()));
            }
            let watch = self.reloader.as_ref().map(Reloader::fd);
            let read_fd = self.read_fd;
            let extra = self.extra_pollfds();
            let (mut signals, mut changed) = (Vec::new(), false);
            self.boot.unlocked(&mut || {
                (signals, changed) = wait_signals(read_fd, watch, &extra, wait);
            });
            self.serve_control();
            self.serve_metrics();
            if changed {
                if let Some(Err(e)) = self.reloader.as_mut().map(Reloader::read) {
                    log::error(format_args!("reload: cannot read file changes: {e}; off"));
                    self.reloader = None;
                }
            }
            let reaped = self.collect();
            let out = self.master.reaped(&reaped);
            if let Flow::Return(code) = self.execute(out) {
                return code;
            }
            for sig in signals {
                let Some(sig) = Sig::from_raw(sig) else {
                    continue;
                };
                // WINCH is an order only to a master that a new one replaced.
                if sig == Sig::Winch && !crate::upgrade::winch_is_an_order() {
                    continue;
                }
                let out = self.master.signal(sig, Instant::now());
                if let Flow::Return(code) = self.execute(out) {
                    return code;
                }
            }
            // --reload: a file changed (and things have been quiet since): as on HUP.
            if let Some(change) = self.reloader.as_mut().and_then(|r| r.due(Instant::now())) {
                change.announce();
                if let Flow::Return(code) = self.execute(vec![Output::Reload]) {
                    return code;
                }
            }
            let out = self.look();
            if let Flow::Return(code) = self.execute(out) {
                return code;
            }
        }
    }

    /// Serve the metrics scrapes that can progress without waiting.
    fn serve_metrics(&mut self) {
        if let (Some(endpoint), Some(m)) = (self.endpoint.as_mut(), self.metrics.as_ref()) {
            let master = &self.master;
            endpoint.service(&mut || m.page(master));
        }
    }

    /// Carry out `outputs` in order.
    fn execute(&mut self, outputs: Vec<Output>) -> Flow {
        let mut fork_failed = false;
        for o in outputs {
            match o {
                Output::Log(level, text) => log::log(level, format_args!("{text}")),
                Output::Fork => {
                    // After a failed fork the rest of this batch is not tried; the loop
                    // tries again at its next turn.
                    if fork_failed {
                        continue;
                    }
                    match self.fork_worker() {
                        Ok(None) => {}
                        Ok(Some(code)) => return Flow::Return(code),
                        Err(e) => {
                            log::error(format_args!("cannot fork a worker: {e}"));
                            fork_failed = true;
                        }
                    }
                }
                Output::Send(pid, sig) => signal(pid, sig),
                Output::Hook(hook) => {
                    if let Hook::WorkersChanged { new, .. } = hook {
                        self.boot.set_server_state(new, self.master.cfg());
                    }
                    let _ = self.boot.hook(hook);
                }
                Output::Report(code) => self.boot.report_private(code, self.master.cfg()),
                Output::ReopenLogs => crate::ops::reopen_logs(self.access_log.as_deref()),
                Output::Reexec => crate::upgrade::reexec(
                    &crate::ops::fds(self.listeners),
                    self.endpoint.as_ref().map(Endpoint::fd),
                ),
                Output::Reload => {
                    if let Flow::Return(code) = self.reload() {
                        return Flow::Return(code);
                    }
                }
                Output::NotifyStopping => crate::notify::stopping(),
                Output::Stop {
                    sig,
                    patience,
                    exit,
                } => {
                    self.stop(sig, patience);
                    return Flow::Return(exit);
                }
            }
        }
        Flow::Go
    }

    /// Fork one worker. `Ok(Some(code))` in the child, once it served and stopped.
    fn fork_worker(&mut self) -> std::io::Result<Option<i32>> {
        let id = self.master.next_id();
        match self.fork(id)? {
            Forked::Parent(pid, slot) => {
                let cfg = self.master.cfg();
                let limit = watchdog::request_limit(cfg.max_requests, cfg.max_requests_jitter);
                self.master.forked(pid, id, Instant::now(), limit);
                self.slots.insert(pid, slot);
                Ok(None)
            }
            Forked::Child(code) => Ok(Some(code)),
        }
    }

    fn fork(&mut self, id: WorkerId) -> std::io::Result<Forked> {
        // The slot exists before the fork so both processes share it. One record per thread
        // that may call the application: the Python threads and the connection thread.
        let threads = usize::try_from(self.master.cfg().threads.max(1)).unwrap_or(1);
        let slot = Slot::new(threads + 1, now_ns())?;
        // Likewise the worker's counters, when metrics are served.
        let region = match &self.metrics {
            Some(_) => Some(Region::new(true)?),
            None => None,
        };
        // Lines the master buffered for StatsD go now, or the child would send them too.
        bourbon_server::metrics::flush_statsd();
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
            if let (Some(m), Some(region)) = (self.metrics.as_mut(), region) {
                m.regions.insert(pid, region);
            }
            return Ok(Forked::Parent(pid, slot));
        }
        // The child: give the signals back to their defaults (the worker installs its own),
        // and let go of the master's pipe.
        crate::signals::reset_in_child();
        crate::ops::worker_after_fork(self.master.cfg());
        unblock_signals(&blocked);
        // SAFETY: closing descriptors this process owns and no longer uses.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
        if let Some(r) = &self.reloader {
            r.close_in_child();
        }
        // The other workers' slots are the master's; each is unmapped by its one owner.
        self.slots.clear();
        // The control socket too (its file stays: it is the master's).
        self.control = None;
        // So are the metrics endpoint and the totals; this worker counts into its region.
        self.endpoint = None;
        self.metrics = None;
        bourbon_server::metrics::statsd_after_fork();
        if let Some(region) = region {
            bourbon_server::metrics::install(
                region.leak(),
                bourbon_server::metrics::Interface::Wsgi,
            );
        }
        // As gunicorn, before the application is loaded.
        log::info(format_args!(
            "Booting worker with pid: {}",
            std::process::id()
        ));
        let code = self.boot.work(WorkerCtx {
            id,
            slot,
            cfg: self.master.cfg(),
            listeners: self.listeners,
            access_log: self.access_log.clone(),
        });
        bourbon_server::metrics::flush_statsd();
        Ok(Forked::Child(code))
    }

    /// Collect the exited workers: each one's `child_exit` hook runs, and its slot is read
    /// (has it booted?) and let go.
    fn collect(&mut self) -> Vec<Reaped> {
        let mut reaped = Vec::new();
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes the status into our local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if crate::upgrade::reaped(pid, status) {
                // A new master that took a fixed --control-socket path removed it at exit.
                if let Some(c) = self.control.as_mut() {
                    c.rebind();
                }
                continue;
            }
            let Some(id) = self.master.worker(pid).map(|w| w.id) else {
                continue;
            };
            let booted = self.slots.remove(&pid).is_some_and(|s| s.booted());
            if let Some(m) = self.metrics.as_mut() {
                m.fold(pid);
            }
            let _ = self.boot.hook(Hook::ChildExit(id));
            self.boot.forget_worker(id);
            // Without WUNTRACED/WCONTINUED, waitpid reports only ended children.
            let ended = if libc::WIFSIGNALED(status) {
                Ended::Signaled(libc::WTERMSIG(status))
            } else {
                Ended::Exited(libc::WEXITSTATUS(status))
            };
            let private = match ended {
                Ended::Exited(code) if !booted => self.boot.private_exit(code),
                _ => None,
            };
            reaped.push(Reaped {
                pid,
                ended,
                booted,
                private,
            });
        }
        reaped
    }

    /// Read every worker's slot, and let the master judge.
    fn look(&mut self) -> Vec<Output> {
        let mono = now_ns();
        let cfg = self.master.cfg();
        let mut looks = Vec::with_capacity(self.slots.len());
        for (pid, w) in self.master.workers() {
            let Some(slot) = self.slots.get(&pid) else {
                continue;
            };
            let mut look = Look {
                requests: slot.requests(),
                dumped: slot.dumped(),
                ..Look::default()
            };
            match w.phase {
                Phase::Serving | Phase::Retiring { .. } => {
                    let serving = w.phase == Phase::Serving;
                    look.stuck = watchdog::stuck(slot, mono, cfg.timeout, serving);
                    if serving && look.stuck.is_none() && cfg.max_worker_memory > 0 {
                        look.rss_mib = watchdog::rss_mib(pid);
                    }
                }
                _ => {}
            }
            looks.push((pid, look));
        }
        // The readiness probe's view: every booted serving worker saturated.
        let threads = usize::try_from(cfg.threads.max(1)).unwrap_or(1);
        let limit = watchdog::readiness_limit(cfg.timeout);
        let stuck = watchdog::all_stuck(
            self.master
                .workers()
                .filter(|(_, w)| w.phase == Phase::Serving)
                .filter_map(|(pid, _)| self.slots.get(&pid))
                .map(|slot| {
                    (
                        slot.booted(),
                        watchdog::saturated(slot, mono, limit, threads),
                    )
                }),
        );
        bourbon_server::layer::health::publish(false, stuck);
        if stuck != self.all_stuck {
            self.all_stuck = stuck;
            if stuck {
                log::warn(format_args!(
                    "every worker has been busy for more than {} s; readiness probes answer 503",
                    limit.as_secs_f64()
                ));
            } else {
                log::info(format_args!(
                    "a worker can take work again; readiness probes answer 200"
                ));
            }
        }
        // gunicorn's gauge, sent each time the master looks at its workers.
        bourbon_server::metrics::statsd_workers(self.master.workers().count());
        bourbon_server::metrics::flush_statsd();
        let abort_hook = self.boot.has_abort_hook();
        self.master.tick(Instant::now(), &looks, abort_hook)
    }

    /// What the master's wait watches besides its signals and the file watcher: the control
    /// socket's and the metrics endpoint's descriptors.
    fn extra_pollfds(&self) -> Vec<libc::pollfd> {
        let mut fds = self
            .control
            .as_ref()
            .map(Control::pollfds)
            .unwrap_or_default();
        if let Some(e) = &self.endpoint {
            fds.extend(e.pollfds());
        }
        fds
    }

    /// Answer the control socket's clients, if any (the snapshot is made only when one
    /// connected).
    fn serve_control(&mut self) {
        let Some(mut control) = self.control.take() else {
            return;
        };
        control.serve(Instant::now(), &mut || self.snapshot());
        self.control = Some(control);
    }

    /// What `bourbon status` shows: the master and each worker, read from its slot and
    /// from `/proc`.
    fn snapshot(&self) -> Vec<u8> {
        let mono = now_ns();
        let cfg = self.master.cfg();
        let ago = |t: u64| Duration::from_nanos(mono.saturating_sub(t));
        let mut workers: Vec<WorkerInfo> = Vec::with_capacity(self.slots.len());
        for (pid, w) in self.master.workers() {
            let Some(slot) = self.slots.get(&pid) else {
                continue;
            };
            let calls = slot.calls();
            let interface = slot.interface();
            let state = match w.phase {
                Phase::Dumping { .. } | Phase::Aborting { .. } => "stuck",
                Phase::Retiring { .. } | Phase::Killed => "draining",
                Phase::Serving if self.master.stopping() => "draining",
                Phase::Serving if !slot.booted() => "booting",
                Phase::Serving if watchdog::stuck(slot, mono, cfg.timeout, true).is_some() => {
                    "stuck"
                }
                // An ASGI worker's event loop serves many requests at once, without a
                // record per request: it is only known to serve.
                Phase::Serving if interface == Some(Interface::Asgi) => "serving",
                Phase::Serving if calls.is_empty() => "idle",
                Phase::Serving => "busy",
            };
            workers.push(WorkerInfo {
                pid,
                id: w.id,
                state,
                age: w.started.elapsed(),
                requests: slot.requests(),
                rss_bytes: watchdog::rss_bytes(pid),
                interface: interface.map(|i| match i {
                    Interface::Wsgi => "wsgi",
                    Interface::Asgi => "asgi",
                }),
                threads: (interface == Some(Interface::Wsgi))
                    .then(|| (calls.len(), cfg.threads.max(1))),
                heartbeat_age: ago(slot.heartbeat()),
                calls: calls
                    .into_iter()
                    .map(|c| CallInfo {
                        line: c.line,
                        age: ago(c.started),
                    })
                    .collect(),
            });
        }
        workers.sort_by_key(|w| w.id);
        let master = MasterInfo {
            pid: std::process::id(),
            app: crate::ops::app_name(cfg),
            uptime: self.started.elapsed(),
            workers_target: self.master.target(),
            interface: cfg.interface.to_string(),
            threads: cfg.threads.max(1),
            timeout: cfg.timeout,
            stopping: self.master.stopping(),
        };
        crate::control::snapshot_json(&master, &workers)
    }

    /// HUP, or `--reload` saw a change: re-read the settings (command line, environment,
    /// config file) and hand them to the master. A preloaded application is kept (the new
    /// workers are forked from this process, which holds its modules); `--preload` turned
    /// on since the start preloads now, or everything stays as it is.
    fn reload(&mut self) -> Flow {
        crate::notify::reloading();
        let settings = match self.boot.reread_settings() {
            Ok(Some(cfg)) => self.adopt(cfg).map(Some),
            other => other,
        };
        let preloaded = self.boot.preloaded();
        let out = self.master.reloaded(settings, preloaded, Instant::now());
        if let Flow::Return(code) = self.execute(out) {
            return Flow::Return(code);
        }
        crate::ops::master_ready(self.master.target());
        Flow::Go
    }

    /// What new settings need before the master takes them: the preload, the watcher.
    fn adopt(&mut self, cfg: Config) -> Result<Config, String> {
        if cfg.preload && !self.boot.preloaded() && self.boot.preload(&cfg).is_err() {
            return Err("cannot preload the application".to_owned());
        }
        if !cfg.reload {
            self.reloader = None;
        } else if !self.reloader.as_ref().is_some_and(|r| r.same_files(&cfg)) {
            self.reloader = None; // its watches go before the new ones are made
            let watch = self.boot.watch(&cfg);
            self.reloader = Reloader::start(&cfg, &watch);
        }
        Ok(cfg)
    }

    /// Tell every worker to stop with `sig`, wait up to `patience`, then kill the rest.
    fn stop(&mut self, sig: libc::c_int, patience: Duration) {
        // The master holds the sockets too: closed here first, connections that arrive while
        // the workers drain are refused at once (or go to a new master that shares the
        // sockets, or to another server on a SO_REUSEPORT port) instead of waiting for the
        // drain and being reset at its end.
        for l in self.listeners {
            if let Err(e) = l.close_here() {
                log::warn(format_args!("cannot close {}: {e}", l.describe()));
            }
        }
        // Before any worker hears of the stop: a probe it answers from now on says
        // "draining" (`--health-path`).
        bourbon_server::layer::health::publish(true, false);
        let out = self.master.stop_signals(sig);
        let _ = self.execute(out);
        let deadline = Instant::now() + patience;
        let read_fd = self.read_fd;
        while self.master.workers().next().is_some() && Instant::now() < deadline {
            let extra = self
                .control
                .as_ref()
                .map(Control::pollfds)
                .unwrap_or_default();
            self.boot.unlocked(&mut || {
                let _ = wait_signals(read_fd, None, &extra, Duration::from_millis(100));
            });
            // `bourbon status` shows the drain.
            self.serve_control();
            let reaped = self.collect();
            // Only log lines while stopping: nothing is forked and nothing stops again.
            let out = self.master.reaped(&reaped);
            let _ = self.execute(out);
        }
        let out = self.master.overdue();
        let _ = self.execute(out);
        while self.master.workers().next().is_some() {
            let mut status: libc::c_int = 0;
            // SAFETY: blocking wait for our own children, which were just killed.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid <= 0 {
                break;
            }
            self.slots.remove(&pid);
            if let Some(m) = self.metrics.as_mut() {
                m.fold(pid);
            }
            if let Some(id) = self.master.forget(pid) {
                let _ = self.boot.hook(Hook::ChildExit(id));
                self.boot.forget_worker(id);
            }
        }
        if let Some(e) = &self.endpoint {
            e.remove_file();
        }
        bourbon_server::metrics::flush_statsd();
        log::info(format_args!("Shutting down: Master"));
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
