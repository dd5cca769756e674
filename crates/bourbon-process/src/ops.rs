//! Operations plumbing around start-up and the master's signals: the order in which the
//! umask, sockets, daemonizing, the pid file and the switch of user happen, and what
//! SIGUSR1 (reopen the logs) does in each process.
//!
//! It owns that order and nothing else: each step lives in its own module
//! ([`crate::privileges`], [`crate::daemon`], [`crate::pidfile`], [`crate::notify`],
//! [`crate::upgrade`], [`crate::proctitle`]). The program's start-up (bourbon-py's
//! `startup.rs`, through its `ops.rs`) and the master call in here with one line per hook.
//!
//! The order, and why:
//! 1. `NOTIFY_SOCKET` and the command line are recorded, accounts looked up (a typo exits
//!    2 before anything happens), the umask set (it decides the socket files' mode).
//! 2. Sockets: inherited from an old master (`BOURBON_FDS`), from systemd (`LISTEN_FDS`),
//!    or bound (`--reuse-port` applies here). A bind failure exits 1 in the foreground.
//! 3. Unix socket files are given to `--user`/`--group`.
//! 4. `--daemon` detaches (so the pid file gets the daemon's pid).
//! 5. The pid file is written (with `--user`, the root keeper that removes it at exit is
//!    forked, see [`crate::pidfile`]); the log files are given to the user.
//! 6. The user is switched; the master's title is set.

use std::os::fd::RawFd;

use bourbon_config::{Config, LogTarget};
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::{self, BindOptions, Listener};
use bourbon_server::log;

use crate::pidfile::PidFile;
use crate::privileges::Accounts;

/// The exit code for a socket that cannot be bound.
const EXIT_BIND: i32 = 1;
/// The exit code for a bad setting.
const EXIT_CONFIG: i32 = 2;

/// Step 1. Returns the accounts to switch to later.
/// The program has already taken `NOTIFY_SOCKET` ([`crate::notify::init`]) and recorded
/// how it was started ([`crate::upgrade::record`]), both of which need its own view of the
/// environment and command line.
pub fn before_bind(cfg: &Config) -> Result<Accounts, i32> {
    let accounts = Accounts::resolve(cfg).map_err(|e| {
        log::error(format_args!("{e}"));
        eprintln!("error: {e}");
        EXIT_CONFIG
    })?;
    crate::privileges::set_umask(cfg.umask);
    Ok(accounts)
}

/// Where the sockets came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Handed over by the master that re-executed us (SIGUSR2).
    OldMaster,
    /// systemd socket activation.
    Systemd,
    /// Bound here from `--bind`.
    Bound,
}

/// Step 2: every listening socket, or the exit code.
/// The variables that handed the sockets over are removed from the environment; the
/// program removes them from its own copy too (see [`handover_vars`]).
pub fn open_listeners(cfg: &Config) -> Result<(Vec<Listener>, Origin), i32> {
    if let Some(inherited) = crate::upgrade::inherited() {
        return inherited.map(|l| (l, Origin::OldMaster)).map_err(|e| {
            log::error(format_args!("{e}"));
            eprintln!("error: {e}");
            EXIT_BIND
        });
    }
    match listener::systemd_listeners_named() {
        Some(Ok(named)) => {
            let mut listeners = Vec::with_capacity(named.len());
            for (l, name) in named {
                if let Some(name) = name {
                    log::info(format_args!(
                        "systemd socket fd {} is named '{name}': {}",
                        l.raw_fd(),
                        l.describe()
                    ));
                }
                listeners.push(l);
            }
            Ok((listeners, Origin::Systemd))
        }
        Some(Err(e)) => {
            log::error(format_args!("systemd sockets (LISTEN_FDS): {e}"));
            eprintln!("error: LISTEN_FDS: {e}");
            Err(EXIT_BIND)
        }
        None => {
            let opts = BindOptions {
                backlog: cfg.backlog,
                reuse_port: cfg.reuse_port,
                unix_mode: cfg.chmod_socket,
            };
            listener::bind_all_with(&cfg.bind, opts)
                .map(|l| (l, Origin::Bound))
                .map_err(|e| {
                    log::error(format_args!("{e}"));
                    eprintln!("error: --bind: {e}");
                    EXIT_BIND
                })
        }
    }
}

/// The environment variables that handed the sockets over from `origin`, which the
/// application must not see. The process's own environment no longer has them; a program
/// that copied it at start (Python's `os.environ`) removes them from its copy.
pub fn handover_vars(origin: Origin) -> &'static [&'static str] {
    match origin {
        Origin::OldMaster => &[crate::upgrade::FDS_VAR],
        Origin::Systemd => &["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"],
        Origin::Bound => &[],
    }
}

/// Held by start-up until the server stops: removes the pid file and, in a master started
/// by SIGUSR2, decides whether the unix socket files stay (see [`crate::upgrade::at_exit`]).
/// Dropped before the listeners, which is when the files are removed.
pub struct ExitGuard {
    _pidfile: Option<PidFile>,
    owner: u32,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // Workers return through the same code; only the master decides.
        if std::process::id() == self.owner {
            crate::upgrade::at_exit();
        }
    }
}

/// Steps 3 to 6. Returns the exit guard, or the exit code.
pub fn after_bind(
    cfg: &Config,
    listeners: &[Listener],
    origin: Origin,
    accounts: &Accounts,
    access_log: Option<&AccessLog>,
    fork: &mut dyn crate::ForkProtocol,
) -> Result<ExitGuard, i32> {
    if origin == Origin::Bound {
        for l in listeners {
            if let Listener::Unix { path, .. } = l {
                if let Err(e) = accounts.chown(path) {
                    log::warn(format_args!("cannot chown {}: {e}", path.display()));
                }
            }
        }
    }
    // A master started by an old one is already detached if that one was.
    if cfg.daemon && origin != Origin::OldMaster {
        let error_log = match &cfg.error_logfile {
            LogTarget::File(p) => Some(p.as_path()),
            LogTarget::Stderr | LogTarget::Stdout => None,
        };
        if let Err(e) = crate::daemon::daemonize(error_log, fork) {
            log::error(format_args!("cannot daemonize: {e}"));
            eprintln!("error: --daemon: {e}");
            return Err(1);
        }
        listener::adopt_socket_files();
        crate::notify::adopt();
    }
    let pidfile = match cfg.pid.as_deref().map(crate::pidfile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --pid: {e}");
            return Err(EXIT_CONFIG);
        }
    };
    if pidfile.is_some() && accounts.gives_up_root() {
        // The master cannot remove the file once it is not root any more: a root process
        // that holds nothing else does it when the master is gone.
        let title = crate::proctitle::title("keeper", &app_name(cfg));
        if let Err(e) = crate::pidfile::start_keeper(&title) {
            log::warn(format_args!(
                "--pid: {e}; the pid file may stay behind at exit"
            ));
        }
    }
    let logs = [log::file_path(), access_log.and_then(AccessLog::path)];
    for path in logs.into_iter().flatten() {
        if let Err(e) = accounts.chown(path) {
            log::warn(format_args!("cannot chown {}: {e}", path.display()));
        }
    }
    if let Err(e) = accounts.switch() {
        log::error(format_args!(
            "cannot switch to {}: {e}",
            accounts.describe()
        ));
        eprintln!(
            "error: --user/--group: cannot switch to {}: {e}",
            accounts.describe()
        );
        return Err(1);
    }
    if !accounts.is_empty() {
        log::info(format_args!("Running as {}", accounts.describe()));
    }
    crate::proctitle::set(&crate::proctitle::title("master", &app_name(cfg)));
    Ok(ExitGuard {
        _pidfile: pidfile,
        owner: std::process::id(),
    })
}

/// The name in process titles: `--proc-name`, else the application.
pub fn app_name(cfg: &Config) -> String {
    match (&cfg.proc_name, &cfg.app) {
        (Some(n), _) => n.clone(),
        (None, Some(app)) => app.to_string(),
        (None, None) => "bourbon".to_owned(),
    }
}

/// SIGUSR1 in any process: reopen the error log (and with it descriptors 1 and 2 when
/// `--capture-output` captured them, see `log::reopen`) and the access log files.
pub fn reopen_logs(access_log: Option<&AccessLog>) {
    let mut failed = Vec::new();
    if let Err(e) = log::reopen() {
        failed.push(format!("error log: {e}"));
    }
    if let Err(e) = crate::daemon::reopen_stderr(log::file_path()) {
        failed.push(format!("stderr: {e}"));
    }
    if let Some(a) = access_log {
        if let Err(e) = a.reopen() {
            failed.push(format!("access log: {e}"));
        }
    }
    if failed.is_empty() {
        log::info(format_args!("Handling signal: usr1; log files reopened"));
    } else {
        log::error(format_args!(
            "Handling signal: usr1; cannot reopen {}",
            failed.join(", ")
        ));
    }
}

/// SIGUSR1 in the master: reopen its own files, then tell every worker to do the same.
pub fn master_usr1(access_log: Option<&AccessLog>, workers: impl Iterator<Item = libc::pid_t>) {
    reopen_logs(access_log);
    for pid in workers {
        signal(pid, libc::SIGUSR1);
    }
}

/// The master is up: its sockets listen and its first workers are forked.
pub fn master_ready(workers: usize) {
    crate::notify::ready(&format!("bourbon master with {workers} workers"));
}

/// The descriptors of `listeners`, for handing to a new master.
pub fn fds(listeners: &[Listener]) -> Vec<RawFd> {
    listeners.iter().map(Listener::raw_fd).collect()
}

/// In a freshly forked worker: set its title, let go of the pid file keeper's pipe, and make
/// sure the signals the master relays do not kill the worker while it boots (their default
/// action is to terminate). A USR1 that arrives meanwhile is noted, and the logs reopened as
/// soon as the worker's runtime, which takes USR1 over, runs.
#[allow(unsafe_code)]
pub fn worker_after_fork(cfg: &Config) {
    crate::proctitle::set(&crate::proctitle::title("worker", &app_name(cfg)));
    // Only the master's exit may tell the pid file keeper to act.
    crate::pidfile::forget_keeper();
    let mut ignored = vec![libc::SIGUSR2, libc::SIGWINCH];
    if let Err(e) = log::watch_reopen_signal() {
        log::warn(format_args!("cannot watch SIGUSR1 while booting: {e}"));
        ignored.push(libc::SIGUSR1);
    }
    for sig in ignored {
        // SAFETY: setting a signal's disposition to "ignore" in this process.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

#[allow(unsafe_code)]
fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid of our own child.
    unsafe {
        libc::kill(pid, sig);
    }
}
