//! The `--pid` file: written once the sockets are bound, removed at exit, and moved aside to
//! `PIDFILE.oldbin` while a re-executed master (SIGUSR2) takes the name.
//!
//! The file is always a fresh one with mode [`PID_FILE_MODE`]: it is written to a temporary
//! file next to it and renamed over the name, so a reader never sees it half written, a file
//! or symlink already at the name is replaced rather than written through, and neither the
//! umask (0 by default, as in gunicorn) nor an old file's mode decides who may change it.
//!
//! Removal: the process that wrote it removes it at a clean exit (not the forked workers,
//! which return through the same code). With `--user`, the master gives up root right after
//! writing the file and may no longer unlink it (a root-owned directory such as `/run`), so
//! before the switch it forks a *keeper*: a small process that stays root, holds nothing but
//! one end of a pipe whose other end only the master holds, and ignores the stop signals.
//! When the master is gone, whatever the way (a clean stop, a crash, SIGKILL), the kernel
//! closes the master's end, the keeper reads end-of-file, removes the file if it still holds
//! the master's pid (after a binary upgrade it holds the new master's, which is left alone),
//! and exits. The keeper never runs Python and never touches a socket; the application never
//! runs as root (see `docs/architecture.md`, "Operations plumbing", for the alternatives).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// The pid file's mode: everyone may read it (monitoring, `kill $(cat FILE)` by the
/// operator), only its owner may change it; a world-writable pid file would let any local
/// user choose which process the operator's `kill` hits.
pub const PID_FILE_MODE: u32 = 0o644;

/// The configured path, where the file is now, and the process that owns it.
struct State {
    configured: PathBuf,
    current: PathBuf,
    owner: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The master's end of the keeper's pipe (-1: no keeper). Closed in every worker right after
/// the fork, and close-on-exec, so only the master holds it.
static KEEPER_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Removes the pid file when dropped in the process that wrote it.
pub struct PidFile(());

/// Write this process's id to `path`.
pub fn create(path: &Path) -> io::Result<PidFile> {
    let owner = std::process::id();
    write(path, owner).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    // Absolute: `--chdir` comes later, and the file must still be found to be removed.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Ok(mut s) = STATE.lock() {
        *s = Some(State {
            configured: path.clone(),
            current: path,
            owner,
        });
    }
    Ok(PidFile(()))
}

/// Write `pid` to `path` as a fresh file with [`PID_FILE_MODE`] (see the module docs). In a
/// directory we may not write but with a file we may (an operator created it for us), the
/// file is written in place instead, keeping its mode.
fn write(path: &Path, pid: u32) -> io::Result<()> {
    let content = format!("{pid}\n");
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{pid}.tmp"));
    let tmp = dir.join(tmp_name);
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PID_FILE_MODE)
            .open(&tmp)
    };
    let file = match open() {
        // Left by an earlier process with our pid, or planted: ours to replace (O_EXCL never
        // follows a symlink, and unlinking one removes the link, not its target).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            open()
        }
        r => r,
    };
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // Without such a file, the directory's permission is what to report.
            let mut f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .map_err(|_| e)?;
            return f.write_all(content.as_bytes());
        }
        Err(e) => return Err(e),
    };
    let written = file
        .set_permissions(Permissions::from_mode(PID_FILE_MODE))
        .and_then(|()| file.write_all(content.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Move the file to `PIDFILE.oldbin` (a new master is about to write `PIDFILE`); returns
/// the new path. Nothing happens without a pid file.
pub fn move_aside() -> io::Result<Option<PathBuf>> {
    let Ok(mut guard) = STATE.lock() else {
        return Ok(None);
    };
    let Some(s) = guard.as_mut() else {
        return Ok(None);
    };
    let mut name = s.configured.clone().into_os_string();
    name.push(".oldbin");
    let aside = PathBuf::from(name);
    std::fs::rename(&s.current, &aside)?;
    s.current.clone_from(&aside);
    Ok(Some(aside))
}

/// Put the file back under its configured name (the new master died), rewriting it in
/// case the other master removed or replaced it.
pub fn restore() {
    let Ok(mut guard) = STATE.lock() else {
        return;
    };
    if let Some(s) = guard.as_mut() {
        if s.current != s.configured {
            let _ = std::fs::remove_file(&s.current);
            let _ = write(&s.configured, s.owner);
            s.current.clone_from(&s.configured);
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Ok(guard) = STATE.lock() {
            if let Some(s) = guard.as_ref() {
                if s.owner == std::process::id() {
                    // Without the right to (after `--user`), the keeper does it.
                    let _ = std::fs::remove_file(&s.current);
                }
            }
        }
    }
}

/// Before this process gives up root: start the keeper that removes the pid file once this
/// process is gone (see the module docs). Nothing to do without a pid file. Call while the
/// process is single-threaded (start-up, before the master forks anything).
pub fn start_keeper(title: &str) -> io::Result<()> {
    let (path, owner) = match STATE.lock().ok().as_deref() {
        Some(Some(s)) => (s.configured.clone(), s.owner),
        _ => return Ok(()),
    };
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into our array. Close-on-exec: a new master
    // started by SIGUSR2 must not hold the master's end (nor the application's programs).
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // A double fork: the keeper is not this process's child, so the master's children stay
    // its workers (and `waitpid(-1)` never collects the keeper); the middle process exits at
    // once and is collected here.
    // SAFETY: the process is single-threaded here (start-up, see the caller), so the child
    // may run ordinary code; neither child returns into Python or our callers: the middle
    // one leaves with `_exit`, the keeper with `_exit` from `keep`.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        let err = io::Error::last_os_error();
        close(read_end);
        close(write_end);
        return Err(err);
    }
    if middle == 0 {
        // SAFETY: see above; fork and _exit are async-signal-safe.
        unsafe {
            match libc::fork() {
                0 => keep(read_end, &path, owner, title),
                pid if pid > 0 => libc::_exit(0),
                _ => libc::_exit(1),
            }
        }
    }
    close(read_end);
    let mut status: libc::c_int = 0;
    // SAFETY: a blocking wait for the middle process, our own child, which exits at once.
    let waited = unsafe { libc::waitpid(middle, &mut status, 0) };
    if waited != middle || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        close(write_end);
        return Err(io::Error::other("the keeper process could not be started"));
    }
    KEEPER_PIPE.store(write_end, Ordering::Relaxed);
    Ok(())
}

/// In a freshly forked worker: let go of the keeper's pipe, so that only the master's exit
/// closes it.
pub fn forget_keeper() {
    let fd = KEEPER_PIPE.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        close(fd);
    }
}

fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this process owns and no longer uses.
    unsafe {
        libc::close(fd);
    }
}

/// The keeper's whole life: wait until the master is gone, remove its pid file, exit.
fn keep(pipe: RawFd, path: &CString, owner: u32, title: &str) -> ! {
    crate::proctitle::set(title);
    // Stop signals reach it with the master's process group (a terminal's Ctrl-C, a
    // service manager's TERM): it must outlive the master, and ends right after it anyway.
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGWINCH,
        libc::SIGPIPE,
        libc::SIGALRM,
    ] {
        // SAFETY: setting a disposition to "ignore" in this process.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    close_all_but(pipe);
    // Pin no directory (an unmount must not find it busy); `path` is absolute.
    // SAFETY: a static NUL-terminated path.
    unsafe {
        libc::chdir(c"/".as_ptr());
    }
    let mut byte = 0u8;
    loop {
        // SAFETY: reading at most one byte into our local from the pipe we kept.
        let n = unsafe { libc::read(pipe, std::ptr::from_mut(&mut byte).cast(), 1) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
    }
    if holds_pid(path, owner) {
        // SAFETY: `path` is a valid NUL-terminated string.
        unsafe {
            libc::unlink(path.as_ptr());
        }
    }
    // SAFETY: leaving without running any destructor or exit handler (they belong to the
    // master's state, copied by the fork).
    unsafe { libc::_exit(0) }
}

/// Whether the file at `path` holds `pid` (and nothing else but a newline).
fn holds_pid(path: &CString, pid: u32) -> bool {
    // SAFETY: `path` is NUL-terminated; O_NOFOLLOW: a symlink put at the name is not ours.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 24];
    // SAFETY: reading at most `buf.len()` bytes into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    close(fd);
    let Ok(n) = usize::try_from(n) else {
        return false;
    };
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(pid)
}

/// Close every descriptor but `keep`: the keeper must hold no socket (a listener it held
/// would keep the port open after the master is gone) and no log file.
fn close_all_but(kept: RawFd) {
    let kept = libc::c_uint::try_from(kept).unwrap_or(0);
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        // SAFETY: close_range(2) only closes descriptors of this process.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                libc::c_long::from(first),
                libc::c_long::from(last),
                0 as libc::c_long,
            ) == 0
        }
    };
    if (kept == 0 || close_range(0, kept - 1)) && close_range(kept + 1, libc::c_uint::MAX) {
        return;
    }
    // Kernels before 5.9: one by one, up to the descriptor limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into our local.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        libc::c_int::try_from(limit.rlim_cur).unwrap_or(1 << 20)
    } else {
        1024
    };
    let kept = libc::c_int::try_from(kept).unwrap_or(-1);
    for fd in (0..max.min(1 << 20)).filter(|&fd| fd != kept) {
        close(fd);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_file_is_fresh_with_its_mode_whatever_was_there() {
        let dir = std::env::temp_dir().join(format!("bourbon-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.pid");
        let target = dir.join("target");
        std::fs::write(&target, b"untouched").unwrap();
        // A symlink at the name is replaced, not written through.
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write(&path, 1234).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1234\n");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, PID_FILE_MODE);
        // A world-writable old file is replaced by a fresh one.
        std::fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
        write(&path, 99).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, PID_FILE_MODE);
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        assert!(holds_pid(&c, 99));
        assert!(!holds_pid(&c, 9));
        // Only the pid file and the target are left: no temporary file stays behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
