//! The master: forks the workers, replaces the ones that die, supervises them and turns
//! the operator's signals into actions on them, as gunicorn's arbiter does.
//!
//! This file owns the master's *decisions*, as a state machine without I/O: [`Master`]
//! holds the worker table (pids, phases, deadlines), the target number of workers and the
//! stop/broken state, and each of its steps ([`Master::signal`], [`Master::reaped`],
//! [`Master::tick`], [`Master::reloaded`], the stop) takes what happened, with the time
//! passed in, and returns what to do as [`Output`]s. `run.rs` is the real loop: it turns
//! the self-pipe, `waitpid` and the workers' slots into those inputs and carries out the
//! outputs (fork through [`crate::Boot`], `kill(2)`, log lines, hooks). So every decision
//! below is tested with a made-up clock and no process (the tests at the end of this file,
//! in the manner of gunicorn's arbiter tests).

mod run;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bourbon_config::Config;
use bourbon_server::log::Level;

use crate::metrics::Restart;
use crate::watchdog::{self, Stuck};
use crate::{Hook, PrivateExit, WorkerId, DUMP_SIGNAL, EXIT_APP_LOAD, EXIT_BOOT};

pub use run::run;

/// A process id.
pub type Pid = libc::pid_t;

/// How long a fast stop (INT, QUIT, a failed boot) waits before killing.
pub const FAST_STOP: Duration = Duration::from_secs(5);
/// A worker told to stop gracefully gets `--graceful-timeout` for its requests, then this
/// much more to exit on its own before it is killed.
pub const EXIT_MARGIN: Duration = Duration::from_millis(500);
/// How long a timed-out worker may take to write its stacks before it is killed anyway
/// (faulthandler writes them inside the signal handler, so this is only a bound).
pub const DUMP_WAIT: Duration = Duration::from_secs(1);
/// How long a timed-out worker may run gunicorn's `worker_abort` hook before it is killed.
pub const ABORT_WAIT: Duration = Duration::from_secs(1);
/// How long the old workers of a reload wait, out of the count, for the new ones to be
/// forked before they are told to stop (they are told at once after; this only has to be
/// later than any fork).
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where a worker is in its life, as the master sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
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

/// One worker process, as the master sees it.
#[derive(Clone, Debug)]
pub struct Worker {
    /// Its number, by which the program knows it (gunicorn's `worker.age`).
    pub id: WorkerId,
    pub started: Instant,
    /// Its `--max-requests` with its jitter; 0 = no limit.
    pub request_limit: u64,
    pub phase: Phase,
}

/// How a collected worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(libc::c_int),
}

/// One collected worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub pid: Pid,
    pub ended: Ended,
    /// Whether it had told its slot it serves (see `Slot::mark_booted`).
    pub booted: bool,
    /// What the program says its exit code means, if it gave it a meaning.
    pub private: Option<PrivateExit>,
}

/// An operator's signal, as the master acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// Graceful stop.
    Term,
    /// INT or QUIT: fast stop.
    Int,
    /// One worker more.
    Ttin,
    /// One worker fewer, never below one.
    Ttou,
    /// Reload: new settings, new workers, the old ones retired.
    Hup,
    /// Reopen the log files, here and in every worker.
    Usr1,
    /// Start a new master on the same sockets.
    Usr2,
    /// Stop the workers (only when this master was replaced by a new one).
    Winch,
}

impl Sig {
    /// The master's meaning of signal number `sig`, if it has one (SIGCHLD has none: the
    /// loop reaps after every wake-up).
    pub fn from_raw(sig: libc::c_int) -> Option<Sig> {
        Some(match sig {
            libc::SIGTERM => Sig::Term,
            libc::SIGINT | libc::SIGQUIT => Sig::Int,
            libc::SIGTTIN => Sig::Ttin,
            libc::SIGTTOU => Sig::Ttou,
            libc::SIGHUP => Sig::Hup,
            libc::SIGUSR1 => Sig::Usr1,
            libc::SIGUSR2 => Sig::Usr2,
            libc::SIGWINCH => Sig::Winch,
            _ => return None,
        })
    }
}

/// What the master read about one worker, at a tick.
#[derive(Debug, Default)]
pub struct Look {
    /// `watchdog::stuck` on its slot (judged by calls only unless it is serving).
    pub stuck: Option<Stuck>,
    /// Requests it finished.
    pub requests: u64,
    /// Its resident size, read only with `--max-worker-memory`.
    pub rss_mib: Option<u64>,
    /// Its stack dump was written.
    pub dumped: bool,
}

/// What the master does; `run.rs` carries these out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write a line to the error log.
    Log(Level, String),
    /// Fork one worker (it is entered into the table with [`Master::forked`]).
    Fork,
    /// Send a signal to a worker.
    Send(Pid, libc::c_int),
    /// Call a server hook (for [`Hook::WorkersChanged`], the program's `server` object is
    /// updated first).
    Hook(Hook),
    /// Write the program's line about a private exit code ([`crate::Boot::report_private`]).
    Report(i32),
    /// Reopen the master's own log files (the workers are sent SIGUSR1 by [`Output::Send`]).
    ReopenLogs,
    /// Start a new master on the same sockets (SIGUSR2).
    Reexec,
    /// Re-read the settings and hand them to [`Master::reloaded`].
    Reload,
    /// Tell systemd the server is stopping.
    NotifyStopping,
    /// Stop: close the listeners, send every worker `sig`, wait up to `patience`, kill the
    /// rest ([`Master::stop_signals`], [`Master::overdue`]), then exit with `exit`.
    Stop {
        sig: libc::c_int,
        patience: Duration,
        exit: i32,
    },
}

/// The master's state and decisions.
pub struct Master {
    cfg: Config,
    /// Every worker not yet reaped, by pid.
    workers: HashMap<Pid, Worker>,
    target: usize,
    /// Set once a stop began: workers exiting are then expected, not news.
    stopping: bool,
    /// With `--reload`, a worker could not load the application: no worker is forked
    /// until the next change (instead of stopping the server, or forking in a loop).
    broken: bool,
    /// The private exit codes reported since the last (re)load.
    reported: Vec<i32>,
    /// Workers forked so far (gunicorn's `worker.age` of the last one).
    age: u64,
    /// Workers replaced so far, by [`Restart::index`] (the metrics' restart counts).
    restarts: [u64; Restart::ALL.len()],
}

impl Master {
    pub fn new(cfg: Config) -> Master {
        Master {
            target: usize::try_from(cfg.workers).unwrap_or(1),
            cfg,
            workers: HashMap::new(),
            stopping: false,
            broken: false,
            reported: Vec::new(),
            age: 0,
            restarts: [0; Restart::ALL.len()],
        }
    }

    /// Workers replaced so far, by [`Restart::index`]: counted when the master decides to
    /// replace one (timeout, recycling, reload) or finds it dead (crash).
    pub fn restarts(&self) -> [u64; Restart::ALL.len()] {
        self.restarts
    }

    fn restarted(&mut self, why: Restart) {
        self.restarts[why.index()] += 1;
    }

    /// The settings in force.
    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// How many workers should serve.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Whether a stop began.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// How many workers count towards the target.
    pub fn serving(&self) -> usize {
        self.workers
            .values()
            .filter(|w| w.phase == Phase::Serving)
            .count()
    }

    /// The worker with this pid, if it is ours and not yet reaped.
    pub fn worker(&self, pid: Pid) -> Option<&Worker> {
        self.workers.get(&pid)
    }

    /// Every worker not yet reaped.
    pub fn workers(&self) -> impl Iterator<Item = (Pid, &Worker)> {
        self.workers.iter().map(|(&pid, w)| (pid, w))
    }

    /// Whether a worker is writing its stacks (the loop then looks more often).
    pub fn dumping(&self) -> bool {
        self.workers
            .values()
            .any(|w| matches!(w.phase, Phase::Dumping { .. }))
    }

    /// Forks owed: none while broken or stopping, else up to the target.
    pub fn missing(&self) -> usize {
        if self.broken || self.stopping {
            return 0;
        }
        self.target.saturating_sub(self.serving())
    }

    /// The forks owed, as outputs.
    pub fn fill(&self) -> Vec<Output> {
        vec![Output::Fork; self.missing()]
    }

    /// The number of the next worker to fork.
    pub fn next_id(&mut self) -> WorkerId {
        self.age += 1;
        self.age
    }

    /// Worker `id` was forked as `pid` at `now`, with its request limit (`--max-requests`
    /// plus its jitter, drawn once for it by `watchdog::request_limit`).
    pub fn forked(&mut self, pid: Pid, id: WorkerId, now: Instant, request_limit: u64) {
        self.workers.insert(
            pid,
            Worker {
                id,
                started: now,
                request_limit,
                phase: Phase::Serving,
            },
        );
    }

    /// Take a worker out of the table without judging its end (the final collection of a
    /// stop); returns its number.
    pub fn forget(&mut self, pid: Pid) -> Option<WorkerId> {
        self.workers.remove(&pid).map(|w| w.id)
    }

    fn graceful(&self) -> Duration {
        self.cfg.graceful_timeout + EXIT_MARGIN
    }

    /// An operator's signal at `now`.
    pub fn signal(&mut self, sig: Sig, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match sig {
            Sig::Term => {
                out.push(Output::NotifyStopping);
                out.push(info("Handling signal: term; stopping workers"));
                out.push(Output::Stop {
                    sig: libc::SIGTERM,
                    patience: self.graceful(),
                    exit: 0,
                });
            }
            Sig::Int => {
                out.push(Output::NotifyStopping);
                out.push(info("Handling signal: int/quit; stopping workers"));
                out.push(Output::Stop {
                    sig: libc::SIGINT,
                    patience: FAST_STOP,
                    exit: 0,
                });
            }
            Sig::Ttin => {
                self.target += 1;
                out.push(info(format!(
                    "Handling signal: ttin; {} workers",
                    self.target
                )));
                out.push(Output::Hook(Hook::WorkersChanged {
                    new: self.target,
                    old: self.target - 1,
                }));
            }
            Sig::Ttou => {
                let old = self.target;
                if self.target > 1 {
                    self.target -= 1;
                }
                out.push(info(format!(
                    "Handling signal: ttou; {} workers",
                    self.target
                )));
                if old != self.target {
                    out.push(Output::Hook(Hook::WorkersChanged {
                        new: self.target,
                        old,
                    }));
                }
                self.retire_extra(now, &mut out);
            }
            Sig::Hup => {
                out.push(info("Handling signal: hup; reloading"));
                out.push(Output::Reload);
            }
            Sig::Usr1 => {
                out.push(Output::ReopenLogs);
                out.extend(
                    self.workers
                        .keys()
                        .map(|&pid| Output::Send(pid, libc::SIGUSR1)),
                );
            }
            Sig::Usr2 => {
                out.push(Output::Hook(Hook::PreExec));
                out.push(Output::Reexec);
            }
            Sig::Winch => {
                out.push(info("Handling signal: winch; stopping workers"));
                self.target = 0;
                self.retire_extra(now, &mut out);
            }
        }
        out
    }

    /// Tell the oldest serving workers beyond the target to finish and exit.
    fn retire_extra(&mut self, now: Instant, out: &mut Vec<Output>) {
        let mut serving: Vec<(Instant, WorkerId, Pid)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.phase == Phase::Serving)
            .map(|(&pid, w)| (w.started, w.id, pid))
            .collect();
        serving.sort_unstable();
        let extra = serving.len().saturating_sub(self.target);
        for &(_, _, pid) in serving.iter().take(extra) {
            self.retire(pid, now, out);
        }
    }

    /// Tell a worker to finish its requests and exit, by `--graceful-timeout` (and a margin).
    fn retire(&mut self, pid: Pid, now: Instant, out: &mut Vec<Output>) {
        let deadline = now + self.graceful();
        if let Some(w) = self.workers.get_mut(&pid) {
            w.phase = Phase::Retiring { deadline };
            out.push(Output::Send(pid, libc::SIGTERM));
        }
    }

    /// Whether a private exit `code` has not been reported since the last (re)load.
    fn first_report(&mut self, code: i32) -> bool {
        if self.reported.contains(&code) {
            return false;
        }
        self.reported.push(code);
        true
    }

    /// Workers were collected. A worker that exited 4 (cannot load the application) or 3
    /// (cannot boot) before it booted stops the master with that code, as in gunicorn:
    /// forking again would fail the same way; under `--reload` the master waits for a file
    /// change instead. The same codes after boot are a crash like any other, and the worker
    /// is replaced (by [`Master::fill`]).
    pub fn reaped(&mut self, batch: &[Reaped]) -> Vec<Output> {
        let mut out = Vec::new();
        let mut halt = None;
        let reload = self.cfg.reload;
        for r in batch {
            let pid = r.pid;
            let Some(w) = self.workers.remove(&pid) else {
                continue;
            };
            let expected = self.stopping || w.phase != Phase::Serving;
            // A booted worker that ended while it should have served is replaced: a crash.
            // (One that failed to boot stops the server, or waits for a file change.)
            if !expected && r.booted {
                self.restarted(Restart::Crash);
            }
            match r.ended {
                Ended::Exited(code) => {
                    let boot_failure = !r.booted && (code == EXIT_APP_LOAD || code == EXIT_BOOT);
                    let private = if r.booted { None } else { r.private };
                    if let Some(private) = private {
                        let first = self.first_report(code);
                        if first {
                            out.push(Output::Report(code));
                        }
                        if reload && !self.stopping {
                            if first && private.announce_wait {
                                out.push(error(
                                    "waiting for a file change to try again (--reload)",
                                ));
                            }
                            self.broken = true;
                        } else if !self.stopping {
                            halt = Some(private.exit);
                        }
                    } else if boot_failure && code == EXIT_APP_LOAD && reload && !self.stopping {
                        // Development: a typo must not stop the server; the fix reloads.
                        out.push(error(format!(
                            "Worker (pid:{pid}) cannot load the application; \
                             waiting for a file change to try again (--reload)"
                        )));
                        self.broken = true;
                    } else if boot_failure {
                        out.push(error(format!(
                            "Worker (pid:{pid}) failed to boot (exit code {code}); stopping"
                        )));
                        halt = Some(code);
                    } else if code == EXIT_APP_LOAD || code == EXIT_BOOT {
                        // An application calling os._exit(4), a C extension's exit(3): only
                        // this worker is lost, and it is replaced.
                        out.push(error(format!(
                            "Worker (pid:{pid}) exited with code {code} after it booted \
                             (a crash, not a boot failure); replacing it"
                        )));
                    } else if code != 0 || !expected {
                        out.push(Output::Log(
                            Level::Warning,
                            format!("Worker (pid:{pid}) exited with code {code}"),
                        ));
                    }
                }
                Ended::Signaled(sig) => {
                    // Our own SIGKILL was announced when it was sent; a stop signal arriving
                    // before a booting worker installed its handlers is part of the stop.
                    let ours = w.phase == Phase::Killed
                        || (self.stopping && matches!(sig, libc::SIGTERM | libc::SIGINT));
                    if !ours {
                        out.push(error(format!(
                            "Worker (pid:{pid}) was killed by signal {sig}"
                        )));
                    }
                }
            }
        }
        if let Some(exit) = halt.filter(|_| !self.stopping) {
            out.push(Output::Stop {
                sig: libc::SIGTERM,
                patience: FAST_STOP,
                exit,
            });
        }
        out
    }

    /// Look at every worker at `now`: a stuck one has its stacks dumped, then (with
    /// `abort_hook`, after gunicorn's `worker_abort` ran) is killed, each step with its
    /// deadline; a worker due for recycling is out of the count at once, its replacement
    /// forked, and then it is told to stop gracefully; a worker that overstayed a graceful
    /// stop is killed.
    pub fn tick(&mut self, now: Instant, looks: &[(Pid, Look)], abort_hook: bool) -> Vec<Output> {
        let mut out = Vec::new();
        let mut retiring = Vec::new();
        let graceful = self.graceful();
        for (pid, look) in looks {
            let pid = *pid;
            let Some(w) = self.workers.get_mut(&pid) else {
                continue;
            };
            match w.phase {
                Phase::Serving | Phase::Retiring { .. } => {
                    if let Some(why) = &look.stuck {
                        out.push(Output::Log(
                            Level::Critical,
                            format!(
                                "WORKER TIMEOUT (pid:{pid}): {why} (timeout {} s); \
                                 writing its Python stacks, then killing it",
                                self.cfg.timeout.as_secs_f64()
                            ),
                        ));
                        out.push(Output::Send(pid, DUMP_SIGNAL));
                        self.restarts[Restart::Timeout.index()] += 1;
                        w.phase = Phase::Dumping {
                            deadline: now + DUMP_WAIT,
                        };
                        continue;
                    }
                    match w.phase {
                        Phase::Retiring { deadline } if now >= deadline => {
                            out.push(Output::Log(
                                Level::Warning,
                                format!("Worker (pid:{pid}) did not stop in time; killing it"),
                            ));
                            out.push(Output::Send(pid, libc::SIGKILL));
                            w.phase = Phase::Killed;
                        }
                        Phase::Serving => {
                            let age = now.saturating_duration_since(w.started);
                            if let Some((why, reason)) = watchdog::recycle_reason(
                                &self.cfg,
                                age,
                                look.requests,
                                w.request_limit,
                                look.rss_mib,
                            ) {
                                self.restarts[why.index()] += 1;
                                out.push(info(format!(
                                    "Autorestarting worker after current request. \
                                     (pid:{pid}: {reason})"
                                )));
                                w.phase = Phase::Retiring {
                                    deadline: now + graceful,
                                };
                                retiring.push(pid);
                            }
                        }
                        _ => {}
                    }
                }
                Phase::Dumping { deadline } => {
                    if look.dumped && abort_hook {
                        // The worker calls worker_abort and exits; killed if it lingers.
                        w.phase = Phase::Aborting {
                            deadline: now + ABORT_WAIT,
                        };
                    } else if look.dumped || now >= deadline {
                        out.push(Output::Send(pid, libc::SIGKILL));
                        w.phase = Phase::Killed;
                    }
                }
                Phase::Aborting { deadline } => {
                    if now >= deadline {
                        out.push(Output::Send(pid, libc::SIGKILL));
                        w.phase = Phase::Killed;
                    }
                }
                Phase::Killed => {}
            }
        }
        if !retiring.is_empty() {
            // The replacements first, so that capacity is asked for before it is given up.
            out.extend(self.fill());
            out.extend(
                retiring
                    .into_iter()
                    .map(|pid| Output::Send(pid, libc::SIGTERM)),
            );
        }
        out
    }

    /// The settings were read again (HUP, or `--reload` saw a change), at `now`: `Err` is
    /// why they cannot be used (logged, and everything stays as it is). Otherwise, as
    /// gunicorn: the new settings are in, a full set of new workers is forked, then the old
    /// ones are retired gracefully, so requests are served throughout. `preloaded` says
    /// whether the master holds the application, whose code is then not reloaded.
    pub fn reloaded(
        &mut self,
        settings: Result<Option<Config>, String>,
        preloaded: bool,
        now: Instant,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let old_target = self.target;
        match settings {
            Ok(Some(cfg)) => {
                self.target = usize::try_from(cfg.workers).unwrap_or(1);
                self.cfg = cfg;
            }
            Ok(None) => {}
            Err(e) => {
                let e = e.strip_prefix("error: ").unwrap_or(&e);
                out.push(error(format!("reload: {e}; keeping the current settings")));
                return out;
            }
        }
        // gunicorn's order: the new settings are in, the new workers are not forked yet.
        out.push(Output::Hook(Hook::WorkersChanged {
            new: self.target,
            old: old_target,
        }));
        out.push(Output::Hook(Hook::OnReload));
        if preloaded {
            out.push(info(
                "reload: the application was preloaded, so its code is not reloaded \
                 (restart, or send USR2, to load new code)",
            ));
        }
        self.broken = false;
        self.reported.clear();
        // Out of the count first, so that a full new set is forked before any old one
        // stops.
        let mut old: Vec<(WorkerId, Pid)> = Vec::new();
        for (&pid, w) in &mut self.workers {
            if w.phase == Phase::Serving {
                w.phase = Phase::Retiring {
                    deadline: now + FAR,
                };
                old.push((w.id, pid));
            }
        }
        self.restarts[Restart::Reload.index()] += old.len() as u64;
        old.sort_unstable();
        out.extend(self.fill());
        for (_, pid) in old {
            self.retire(pid, now, &mut out);
        }
        out
    }

    /// The stop begins: every worker not already killed is sent `sig`.
    pub fn stop_signals(&mut self, sig: libc::c_int) -> Vec<Output> {
        self.stopping = true;
        let mut pids: Vec<Pid> = self
            .workers
            .iter()
            .filter(|(_, w)| w.phase != Phase::Killed)
            .map(|(&pid, _)| pid)
            .collect();
        pids.sort_unstable();
        pids.into_iter().map(|pid| Output::Send(pid, sig)).collect()
    }

    /// The stop's patience ran out: every worker still there is killed.
    pub fn overdue(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let mut pids: Vec<Pid> = self.workers.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            if let Some(w) = self.workers.get_mut(&pid) {
                if w.phase != Phase::Killed {
                    out.push(Output::Log(
                        Level::Warning,
                        format!("Worker (pid:{pid}) did not stop in time; killing it"),
                    ));
                    out.push(Output::Send(pid, libc::SIGKILL));
                    w.phase = Phase::Killed;
                }
            }
        }
        out
    }
}

fn info(text: impl Into<String>) -> Output {
    Output::Log(Level::Info, text.into())
}

fn error(text: impl Into<String>) -> Output {
    Output::Log(Level::Error, text.into())
}

#[cfg(test)]
mod tests;
