//! bourbon's process model: the master that forks workers and supervises them, the signals
//! an operator sends it, and the operations plumbing around it (privileges, daemon, pid
//! file, sd_notify, process titles, the binary upgrade, `--reload`'s file watcher). It is
//! the same for every kind of application: it knows nothing of WSGI, ASGI or Python.
//!
//! What it needs from the program it runs (in bourbon, the Python extension) is the
//! [`Boot`] trait: the fork protocol around each `fork()`, gunicorn's server hooks, loading
//! the application in the master (`--preload`), the worker's whole life, re-reading the
//! settings, and running a blocking wait with the program's lock (the GIL) released.
//!
//! Layout: [`master`] holds the master's decisions as a state machine without I/O
//! (`master/mod.rs`, tested with a fake clock and no processes) and the real loop that
//! drives it (`master/run.rs`: self-pipe, `waitpid`, `kill(2)`, fork); [`signals`] the
//! masks and the self-pipe; [`scoreboard`] the memory each worker shares with the master,
//! and [`watchdog`] the master's judgement of it; [`metrics`] the counters each worker shares
//! with the master, their totals and the `GET /metrics` endpoint; the rest are the operations
//! steps that [`ops`] puts in order; [`control`] is the master's control socket and [`status`]
//! the `bourbon status` and `bourbon top` commands that read it.

pub mod control;
pub mod daemon;
pub mod master;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod pidfile;
pub mod privileges;
pub mod proctitle;
pub mod reloader;
pub mod scoreboard;
pub mod signals;
pub mod status;
pub mod upgrade;
pub mod watchdog;

use std::sync::Arc;

use bourbon_config::Config;
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;

pub use scoreboard::Slot;

/// The signal the master sends a timed-out worker to make it write its stacks: SIGURG.
/// It is not part of gunicorn's signal contract, its default action is to ignore it
/// (harmless if it arrives before the worker installed a handler), and the kernel never
/// raises it for us (no socket of ours has an owner set with F_SETOWN).
pub const DUMP_SIGNAL: libc::c_int = libc::SIGURG;

/// gunicorn's exit code for a worker that failed to boot.
pub const EXIT_BOOT: i32 = 3;
/// gunicorn's exit code when the application cannot be loaded.
pub const EXIT_APP_LOAD: i32 = 4;

/// The program's side of `fork()`. CPython requires `PyOS_BeforeFork` before it and
/// `PyOS_AfterFork_Parent`/`_Child` after it, with the GIL held; a program without such a
/// protocol does nothing.
pub trait ForkProtocol {
    /// Right before `fork()`.
    fn before_fork(&mut self);
    /// Right after `fork()` (or its failure) in the parent.
    fn after_fork_parent(&mut self);
    /// Right after `fork()` in the child, before anything else runs there.
    fn after_fork_child(&mut self);
}

/// Numbers a worker for its whole life (gunicorn's `worker.age`): 1 for the first forked.
pub type WorkerId = u64;

/// gunicorn's server hooks, at gunicorn's moments. The program decides whether a hook is
/// defined and what it is given; [`Boot::hook`] returns whether it raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Listening, before the first worker (`when_ready(server)`).
    WhenReady,
    /// The master exits (`on_exit(server)`).
    OnExit,
    /// The number of workers changed (`nworkers_changed(server, new, old)`).
    WorkersChanged { new: usize, old: usize },
    /// Right before a worker is forked (`pre_fork(server, worker)`).
    PreFork(WorkerId),
    /// Before a new master is executed, SIGUSR2 (`pre_exec(server)`).
    PreExec,
    /// HUP, the new settings in, the new workers not forked yet (`on_reload(server)`).
    OnReload,
    /// A worker was collected (`child_exit(server, worker)`).
    ChildExit(WorkerId),
}

/// A server hook raised (the program logged the traceback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookRaised;

/// A worker's exit code that the program gave its own meaning, for a worker that had not
/// booted (bourbon's Python side: 6, a bad setting found in the worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateExit {
    /// The master's exit code when this stops it.
    pub exit: i32,
    /// Under `--reload`, say (once) that the master waits for a file change: the line
    /// the worker or [`Boot::report_private`] wrote does not say so.
    pub announce_wait: bool,
}

/// What a forked worker gets to serve with.
pub struct WorkerCtx<'a> {
    pub id: WorkerId,
    /// Its slot, shared with the master (the worker reports into it).
    pub slot: Slot,
    pub cfg: &'a Config,
    pub listeners: &'a [Listener],
    pub access_log: Option<Arc<AccessLog>>,
}

/// What the process model asks of the program it runs (bourbon-py: Python).
pub trait Boot: ForkProtocol {
    /// The readiness lines, once the master listens ("Listening at:", the worker kind).
    fn announce(&mut self, listeners: &[Listener], cfg: &Config);
    /// `--preload`: load the application in the master, at start or when a HUP turns it
    /// on. `Err` is the exit code (the failure is reported).
    fn preload(&mut self, cfg: &Config) -> Result<(), i32>;
    /// Whether the master holds a preloaded application.
    fn preloaded(&self) -> bool;
    /// The number of workers and the process name the hooks' `server` object shows.
    fn set_server_state(&mut self, workers: usize, cfg: &Config);
    /// Call a server hook (when it is defined).
    fn hook(&mut self, hook: Hook) -> Result<(), HookRaised>;
    /// Whether gunicorn's `worker_abort` hook is defined (a timed-out worker then gets a
    /// moment to run it before it is killed).
    fn has_abort_hook(&self) -> bool;
    /// The master, before worker `id` is forked: make its hook object, run `pre_fork`,
    /// and `gc.freeze()` when preloaded.
    fn prepare_worker(&mut self, id: WorkerId);
    /// The master, after worker `id` was forked as `pid`, or (`pid` `None`) could not be.
    fn worker_forked(&mut self, id: WorkerId, pid: Option<libc::pid_t>);
    /// The master let go of worker `id` (it was collected): forget what it kept for it.
    fn forget_worker(&mut self, id: WorkerId);
    /// The worker's whole life, in the forked child: report into `ctx.slot`, run the
    /// worker hooks, load the application (unless preloaded), serve `ctx.listeners` until
    /// stopped. Returns the worker's exit code.
    fn work(&mut self, ctx: WorkerCtx<'_>) -> i32;
    /// HUP: the settings read again from every source. `Ok(None)` when they ask for no
    /// run (a `--version` left in a config file: nothing changes); `Err` is the message.
    fn reread_settings(&mut self) -> Result<Option<Config>, String>;
    /// What `--reload` watches beyond the project directory and `--reload-extra-file`
    /// (the application's module file), and which files in the project count.
    fn watch(&mut self, cfg: &Config) -> reloader::Watch;
    /// What a program-private exit code means, for a worker that had not booted.
    fn private_exit(&self, code: i32) -> Option<PrivateExit>;
    /// Write the program's line about private exit `code`: once after each (re)load,
    /// however many workers exit with it.
    fn report_private(&mut self, code: i32, cfg: &Config);
    /// Run a blocking wait with the program's lock (the GIL) released.
    fn unlocked(&mut self, wait: &mut (dyn FnMut() + Send));
}
