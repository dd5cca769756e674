//! The binary upgrade (SIGUSR2, then SIGWINCH and SIGTERM to the old master), as gunicorn
//! and nginx do it.
//!
//! This module owns starting a new master from the installed program with the same
//! command line, handing it the listening sockets (their descriptors stay open across
//! exec, and `BOURBON_FDS=3,4` says which they are, in bind order), taking them over on
//! the other side, and the bookkeeping while both masters run: the old pid file moves to
//! `PIDFILE.oldbin`, unix socket files are no longer removed by the old master, and if the
//! new master dies the old one takes its name back.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::OnceLock;

use bourbon_server::listener::{self, Listener};
use bourbon_server::log;

/// The variable naming the inherited listening descriptors.
pub const FDS_VAR: &str = "BOURBON_FDS";
/// The environment variable that names the metrics endpoint's listening descriptor handed to
/// the new master (`--metrics-bind`), apart from the serving sockets.
pub const METRICS_FD_VAR: &str = "BOURBON_METRICS_FD";

/// How this process was started, recorded before `--chdir`: the program, its arguments
/// (for Python: the `bourbon` script or `-m bourbon`, then ours) and the directory.
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
}

static LAUNCH: OnceLock<Launch> = OnceLock::new();
/// The new master we started and that has not exited yet (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The old master that started us, while it may still be running (0: none).
static PARENT: AtomicU32 = AtomicU32::new(0);

/// Remember how to start this program again. Call before `--chdir` is applied.
pub fn record(launch: Launch) {
    let _ = LAUNCH.set(launch);
}

/// The listeners handed over by the master that re-executed us, if `BOURBON_FDS` is set.
/// The variable is removed, so workers and the application never see it (the program
/// removes it from its own copy of the environment too when this returns `Some`).
pub fn inherited() -> Option<Result<Vec<Listener>, String>> {
    let value = std::env::var(FDS_VAR).ok()?;
    std::env::remove_var(FDS_VAR);
    // SAFETY: getppid only reads a process attribute.
    PARENT.store(
        u32::try_from(unsafe { libc::getppid() }).unwrap_or(0),
        Ordering::Relaxed,
    );
    let result = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let fd: RawFd = s
                .parse()
                .map_err(|_| format!("{FDS_VAR}: '{s}' is not a descriptor number"))?;
            listener::inherit(fd, true).map_err(|e| format!("{FDS_VAR}: descriptor {fd}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>();
    Some(result)
}

/// Whether we were started by a master that is still running (and so must not start yet
/// another one).
fn parent_alive() -> bool {
    let parent = PARENT.load(Ordering::Relaxed);
    // SAFETY: getppid only reads a process attribute.
    let ppid = u32::try_from(unsafe { libc::getppid() }).unwrap_or(0);
    if parent != 0 && parent == ppid {
        return true;
    }
    PARENT.store(0, Ordering::Relaxed);
    false
}

/// The new master's pid, while it runs. A new master that has exited is collected here
/// (the master's reaping loop would collect it too, through [`reaped`]).
pub fn child() -> Option<libc::pid_t> {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid <= 0 {
        return None;
    }
    let mut status: libc::c_int = 0;
    // SAFETY: a non-blocking wait for our own child, writing into a local.
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
        reaped(pid, status);
        return None;
    }
    Some(pid)
}

/// SIGUSR2: start a new master from the installed program with the same command line,
/// passing it `fds`, the listening sockets, and `metrics`, the metrics endpoint's. This
/// process goes on serving; the operator then stops its workers (WINCH) and itself (TERM),
/// or the new master (TERM) to roll back.
pub fn reexec(fds: &[RawFd], metrics: Option<RawFd>) {
    if let Some(pid) = child() {
        log::warn(format_args!(
            "Handling signal: usr2; ignored, a new master (pid:{pid}) is already running"
        ));
        return;
    }
    if parent_alive() {
        log::warn(format_args!(
            "Handling signal: usr2; ignored, the old master is still running"
        ));
        return;
    }
    let Some(launch) = LAUNCH.get() else {
        log::error(format_args!(
            "Handling signal: usr2; cannot re-execute: the command line is unknown"
        ));
        return;
    };
    let moved = match crate::pidfile::move_aside() {
        Ok(m) => m,
        Err(e) => {
            log::error(format_args!(
                "Handling signal: usr2; cannot move the pid file aside: {e}"
            ));
            return;
        }
    };
    let list: Vec<String> = fds.iter().map(ToString::to_string).collect();
    let mut cmd = std::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .env(FDS_VAR, list.join(","));
    if let Some(addr) = crate::notify::address() {
        cmd.env("NOTIFY_SOCKET", addr);
    }
    if let Some(fd) = metrics {
        cmd.env(METRICS_FD_VAR, fd.to_string());
    }
    let mut inherit = fds.to_vec();
    inherit.extend(metrics);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2),
    // which is async-signal-safe; it allocates nothing (`inherit` was built before fork).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => {
            let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
            CHILD.store(pid, Ordering::Relaxed);
            // The sockets now belong to both masters: whichever exits must leave the
            // files to the other.
            listener::keep_socket_files(true);
            let note = moved
                .map(|p| format!("; pid file moved to {}", p.display()))
                .unwrap_or_default();
            log::info(format_args!(
                "Handling signal: usr2; started a new master (pid:{pid}){note}"
            ));
        }
        Err(e) => {
            crate::pidfile::restore();
            log::error(format_args!(
                "Handling signal: usr2; cannot start {}: {e}",
                launch.program.display()
            ));
        }
    }
}

/// Called for every child the master reaps: true if it was the new master, which is then
/// forgotten (this master takes its pid file back and owns the socket files again).
pub fn reaped(pid: libc::pid_t, status: libc::c_int) -> bool {
    if pid <= 0 || CHILD.load(Ordering::Relaxed) != pid {
        return false;
    }
    CHILD.store(0, Ordering::Relaxed);
    crate::pidfile::restore();
    listener::keep_socket_files(false);
    let how = if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    };
    log::warn(format_args!(
        "New master (pid:{pid}) {how}; this master keeps serving (send HUP if its workers were stopped)"
    ));
    true
}

/// When a master stops: a new master whose old master still runs (a roll-back) leaves the
/// unix socket files to it; once the old one is gone the files are ours to remove.
pub fn at_exit() {
    if PARENT.load(Ordering::Relaxed) != 0 {
        listener::keep_socket_files(parent_alive());
    }
}

/// Whether SIGWINCH means "stop the workers" here. A terminal sends WINCH to its
/// foreground processes whenever it is resized, so, as gunicorn does, it is only taken as
/// an order by a master that has no controlling terminal (daemonized, or started by a
/// service manager) or that is in the middle of an upgrade.
pub fn winch_is_an_order() -> bool {
    if child().is_some() {
        return true;
    }
    // SAFETY: opening /dev/tty with a static NUL-terminated path; the fd is closed at once.
    let fd = unsafe { libc::open(c"/dev/tty".as_ptr(), libc::O_RDONLY | libc::O_NOCTTY) };
    if fd >= 0 {
        // SAFETY: closing the descriptor we just opened.
        unsafe {
            libc::close(fd);
        }
        return false;
    }
    true
}
