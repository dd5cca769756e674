//! The master's signals: which ones it acts on, the self-pipe their handler writes to (the
//! handler does nothing else; the loop reads the pipe), and masking them across `fork()`.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signals the master acts on.
pub const SIGNALS: [libc::c_int; 10] = [
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

/// Route the master's signals to the self-pipe whose write end is `write_fd`.
pub fn route_to_pipe(write_fd: RawFd) {
    SIGNAL_PIPE.store(write_fd, Ordering::Relaxed);
    for sig in SIGNALS {
        install(sig, on_signal as *const () as libc::sighandler_t);
    }
}

/// In a freshly forked worker: the master's signals back to their defaults (the worker
/// installs its own), and the pipe let go.
pub fn reset_in_child() {
    SIGNAL_PIPE.store(-1, Ordering::Relaxed);
    for sig in SIGNALS {
        install(sig, libc::SIG_DFL);
    }
}

/// Block the master's signals; returns the previous mask.
pub fn block_signals() -> libc::sigset_t {
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
pub fn unblock_signals(old: &libc::sigset_t) {
    // SAFETY: restoring a mask we saved.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

pub fn self_pipe() -> std::io::Result<(RawFd, RawFd)> {
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

/// Wait up to `timeout` for signal bytes on the pipe, for `watch` (the file watcher) to
/// become readable, or for an event on one of `extra` (the control socket, the metrics
/// endpoint and their clients, which the caller then serves without looking at which); return the signals read and
/// whether `watch` is readable.
pub fn wait_signals(
    fd: RawFd,
    watch: Option<RawFd>,
    extra: &[libc::pollfd],
    timeout: Duration,
) -> (Vec<libc::c_int>, bool) {
    let mut pfds = Vec::with_capacity(2 + extra.len());
    pfds.push(libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    pfds.push(libc::pollfd {
        // A negative descriptor is skipped by poll(2).
        fd: watch.unwrap_or(-1),
        events: libc::POLLIN,
        revents: 0,
    });
    pfds.extend_from_slice(extra);
    // Rounded up, so a deadline a fraction of a millisecond away is not a busy loop.
    let ms = libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(1000);
    let n = libc::nfds_t::try_from(pfds.len()).unwrap_or(2);
    // SAFETY: poll reads and writes the `n` pollfds of the vector we own.
    let ready = unsafe { libc::poll(pfds.as_mut_ptr(), n, ms) };
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
