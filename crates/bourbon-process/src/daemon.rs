//! `--daemon`: detach from the terminal and go on in the background.
//!
//! This module owns the classic double fork (fork, setsid, fork) and pointing the standard
//! streams away from the terminal. It runs once the sockets are bound, so a bad bind still
//! fails in the foreground with its exit code, and before the pid file is written, so the
//! file holds the daemon's pid. Each fork goes through the program's fork protocol
//! (CPython's, see [`ForkProtocol`]); the
//! parents leave with `_exit` so that neither Python's exit handlers nor our destructors
//! (which would remove the unix socket files) run in them.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ForkProtocol;

/// Whether stderr was pointed at the error log file, so USR1 must point it at the new one.
static STDERR_IS_LOG: AtomicBool = AtomicBool::new(false);

/// Detach. Returns in the daemon only; the original process exits 0.
pub fn daemonize(error_log: Option<&Path>, fork: &mut dyn ForkProtocol) -> io::Result<()> {
    fork_and_leave(fork)?;
    // SAFETY: setsid only changes this process's session; it cannot fail in a child that
    // is not a process group leader, which a freshly forked child never is.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    // The second fork: the daemon is not a session leader, so opening a terminal can never
    // make it acquire a controlling terminal again.
    fork_and_leave(fork)?;
    redirect_stdio(error_log)
}

/// Fork; the parent exits 0 at once, the child returns.
fn fork_and_leave(fork: &mut dyn ForkProtocol) -> io::Result<()> {
    fork.before_fork();
    // SAFETY: called while the process is single-threaded (before the runtime and any
    // worker exist), inside the program's fork protocol. The parent only calls `_exit`,
    // which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = io::Error::last_os_error();
        fork.after_fork_parent();
        return Err(err);
    }
    if pid > 0 {
        // SAFETY: ending the parent at once is the point; `_exit` runs no handlers.
        unsafe { libc::_exit(0) };
    }
    fork.after_fork_child();
    Ok(())
}

/// stdin and stdout to /dev/null; stderr to the error log file when there is one (so a
/// crash's last words are kept), else to /dev/null.
fn redirect_stdio(error_log: Option<&Path>) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup_onto(null.as_raw_fd(), 0)?;
    dup_onto(null.as_raw_fd(), 1)?;
    match error_log {
        Some(path) => {
            let file = open_append(path)?;
            dup_onto(file.as_raw_fd(), 2)?;
            STDERR_IS_LOG.store(true, Ordering::Relaxed);
        }
        None => dup_onto(null.as_raw_fd(), 2)?,
    }
    Ok(())
}

/// After the error log was reopened (USR1), point stderr at the new file too.
pub fn reopen_stderr(error_log: Option<&Path>) -> io::Result<()> {
    if let (true, Some(path)) = (STDERR_IS_LOG.load(Ordering::Relaxed), error_log) {
        let file = open_append(path)?;
        dup_onto(file.as_raw_fd(), 2)?;
    }
    Ok(())
}

/// The error log file, opened (or created) as the log itself opens it, with its mode.
fn open_append(path: &Path) -> io::Result<std::fs::File> {
    bourbon_server::log::open_log_file(path)
}

fn dup_onto(from: libc::c_int, to: libc::c_int) -> io::Result<()> {
    // SAFETY: dup2 on descriptors we own; `to` is one of the standard streams, which this
    // process owns and means to replace.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
