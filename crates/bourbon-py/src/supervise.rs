//! The worker's side of supervision: what it writes into its shared [`Slot`] so the master
//! can tell a stuck worker from a busy one, and the stack dump it writes when asked.
//!
//! - [`call_started`] is called once per application call (see `wsgi/call.rs`) and returns a
//!   guard whose drop ends the call, so the start time and the request line are in the slot
//!   exactly while the application runs, even when it raises. Its cost is a clock read and a
//!   copy of at most [`crate::scoreboard::LINE_MAX`] bytes; there is no allocation.
//!   A call made on the event loop's own thread (an inline call) also stamps the heartbeat
//!   when it starts and when it ends (one more clock read): the loop is alive at both
//!   moments, and its silence in between is the call's, judged by the call's own age.
//! - [`heartbeat`] is a task on the worker's event loop that stamps the slot while the loop
//!   runs.
//! - [`booted`] tells the master the worker serves: an exit with 3 or 4 after that is a
//!   crash, not a failure to boot.
//! - [`enter_worker`], right after the fork, has CPython's `faulthandler` write every
//!   thread's Python stack to the error log on [`DUMP_SIGNAL`]. faulthandler does it inside
//!   its C signal handler, so it works while a thread spins in pure Python holding the GIL or
//!   waits in C with it released. It then chains to our own handler, which flags the slot so
//!   the master can kill the worker at once instead of after a fixed wait.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use bourbon_config::{Config, LogTarget};
use bourbon_server::log;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::scoreboard::{now_ns, Slot};

/// The signal the master sends a timed-out worker to make it write its Python stacks.
pub(crate) use bourbon_process::DUMP_SIGNAL;

/// This worker's slot; unset in the master.
static SLOT: OnceLock<Slot> = OnceLock::new();

thread_local! {
    /// The record of the calling thread: not asked yet (`None`), or what `claim` gave.
    static RECORD: Cell<Option<Option<usize>>> = const { Cell::new(None) };
}

/// Make this freshly forked process report into `slot`, and arrange the stack dump.
pub(crate) fn enter_worker(py: Python<'_>, slot: Slot, cfg: &Config) {
    let _ = SLOT.set(slot);
    // Our handler first: faulthandler (with chain=True) calls it after writing the stacks.
    // SAFETY: a zeroed sigaction is valid; the handler only does an atomic store.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_dumped as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(DUMP_SIGNAL, &action, std::ptr::null_mut());
    }
    let fd = error_log_fd(cfg);
    let registered = (|| -> PyResult<()> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("file", fd)?;
        kwargs.set_item("all_threads", true)?;
        kwargs.set_item("chain", true)?;
        py.import("faulthandler")?
            .call_method("register", (DUMP_SIGNAL,), Some(&kwargs))?;
        Ok(())
    })();
    if let Err(e) = registered {
        log::warn(format_args!(
            "cannot arrange stack dumps on timeout (faulthandler): {e}"
        ));
    }
}

/// The descriptor faulthandler writes the stacks to (with write(2), from a signal handler):
/// the error log's own descriptor. Its number never changes: SIGUSR1 opens the new file onto
/// it (`log::reopen`), so after logrotate the stacks go to the new file like every other line.
fn error_log_fd(cfg: &Config) -> i32 {
    match &cfg.error_logfile {
        LogTarget::File(_) => log::file_fd().unwrap_or(libc::STDERR_FILENO),
        LogTarget::Stdout => libc::STDOUT_FILENO,
        LogTarget::Stderr => libc::STDERR_FILENO,
    }
}

/// The application is loaded and this worker is about to serve: from now on an exit with
/// 3 or 4 is a crash to replace, not a failure to boot that stops the master. `interface`
/// is what it serves, shown by `bourbon status`.
pub(crate) fn booted(interface: crate::scoreboard::Interface) {
    if let Some(slot) = SLOT.get() {
        slot.set_interface(interface);
        slot.mark_booted();
    }
}

/// The write end of the pipe the `worker_abort` thread waits on; -1 when that hook is not
/// defined.
static ABORT_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The write end of the pipe the asyncio task dumper waits on (ASGI workers); -1 otherwise.
static TASK_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_dumped(_sig: libc::c_int) {
    // An event loop's tasks are not threads: faulthandler has written the thread stacks,
    // and the task dumper writes the tasks' before the stacks count as written.
    let tasks = TASK_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if tasks >= 0 {
        write_byte(tasks);
        return;
    }
    dumped();
}

/// The stacks are written: flag the slot (the master may kill now) and wake the
/// `worker_abort` thread. Async-signal-safe.
fn dumped() {
    if let Some(slot) = SLOT.get() {
        slot.mark_dumped();
    }
    let fd = ABORT_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        write_byte(fd);
    }
}

fn write_byte(fd: libc::c_int) {
    let byte = 1u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
    unsafe {
        libc::write(fd, std::ptr::from_ref(&byte).cast(), 1);
    }
}

/// In an ASGI worker: a thread that, when the worker's stacks are asked for (a timeout),
/// writes the stack of every asyncio task to the error log (`bourbon._asgi._dump_tasks`),
/// then flags the stacks written. It takes the GIL from a loop stuck in Python bytecode
/// within the switch interval; a loop stuck in C holding the GIL never lets it in, and the
/// master's bound on the dump kills the worker anyway, with the thread stacks written.
pub(crate) fn arm_task_dump() {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let spawned = std::thread::Builder::new()
        .name("asgi-task-dump".into())
        .spawn(move || loop {
            let mut byte = 0u8;
            // SAFETY: a blocking read of one byte into our local from our own pipe.
            let n = unsafe { libc::read(read_fd, std::ptr::from_mut(&mut byte).cast(), 1) };
            if n != 1 {
                return;
            }
            Python::attach(|py| {
                if let Err(e) = py
                    .import("bourbon._asgi")
                    .and_then(|m| m.call_method0("_dump_tasks"))
                {
                    log::warn(format_args!("cannot write the asyncio tasks' stacks: {e}"));
                }
            });
            dumped();
        });
    if spawned.is_ok() {
        TASK_PIPE.store(write_fd, std::sync::atomic::Ordering::Relaxed);
    }
}

/// With gunicorn's `worker_abort` hook defined: a thread that waits until this worker's
/// stacks were written for a timeout, then calls the hook (and `worker_exit`, as gunicorn's
/// abort is an exit) and exits with 1, before the master's kill. Its own thread, because
/// the stuck call may be holding the connection thread; it gets the GIL in the stuck
/// thread's next switch interval (a call stuck in C holding the GIL is killed unheard).
pub(crate) fn arm_abort_hook() {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        log::warn(format_args!(
            "worker_abort: cannot create its pipe: {}",
            std::io::Error::last_os_error()
        ));
        return;
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let spawned = std::thread::Builder::new()
        .name("worker_abort".into())
        .spawn(move || {
            let mut byte = 0u8;
            // SAFETY: a blocking read of one byte into our local from our own pipe.
            let n = unsafe { libc::read(read_fd, std::ptr::from_mut(&mut byte).cast(), 1) };
            if n != 1 {
                return;
            }
            Python::attach(|py| {
                use crate::compat::{call, Arg};
                call(py, "worker_abort", vec![Arg::Worker(None)]);
                log::info(format_args!("Worker exiting (pid: {})", std::process::id()));
                call(py, "worker_exit", vec![Arg::Server, Arg::Worker(None)]);
            });
            // SAFETY: ending this process now is the point: its stuck call never returns.
            unsafe { libc::_exit(1) };
        });
    match spawned {
        Ok(_) => ABORT_PIPE.store(write_fd, std::sync::atomic::Ordering::Relaxed),
        Err(e) => log::warn(format_args!("worker_abort: cannot start its thread: {e}")),
    }
}

/// A request served without a call record (an ASGI cycle, whose task may live as long as its
/// client): counted for `--max-requests`. Its event loop's liveness is the heartbeat's.
pub(crate) fn request_done() {
    if let Some(slot) = SLOT.get() {
        slot.end(None);
    }
}

/// Marks one application call in the slot (and a busy thread in the metrics) while it
/// lives.
pub(crate) struct CallGuard {
    _busy: bourbon_server::metrics::BusyThread,
    slot: Option<&'static Slot>,
    record: Option<usize>,
    /// Made on the event loop's thread (inline): its end stamps the heartbeat too.
    on_loop: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            if self.on_loop {
                slot.end_on_loop(self.record, now_ns());
            } else {
                slot.end(self.record);
            }
        }
    }
}

/// An application call for this request begins; it ends when the guard is dropped.
/// `on_loop`: the call runs on the event loop's thread (an inline call), which is then
/// known to be alive at its start and at its end.
pub(crate) fn call_started(
    head: &bourbon_server::request::RequestHead,
    on_loop: bool,
) -> CallGuard {
    // The request waited from its head to here: its queue time.
    bourbon_server::metrics::app_called(head.arrived());
    let busy = bourbon_server::metrics::thread_busy();
    let Some(slot) = SLOT.get() else {
        return CallGuard {
            _busy: busy,
            slot: None,
            record: None,
            on_loop,
        };
    };
    let record = RECORD.with(|r| {
        r.get().unwrap_or_else(|| {
            let claimed = slot.claim();
            r.set(Some(claimed));
            claimed
        })
    });
    let parts = [head.method(), head.target(), head.version_str().as_bytes()];
    if on_loop {
        slot.begin_on_loop(record, now_ns(), parts);
    } else if let Some(i) = record {
        slot.begin(i, now_ns(), parts);
    }
    CallGuard {
        _busy: busy,
        slot: Some(slot),
        record,
        on_loop,
    }
}

/// How often the event loop stamps its heartbeat: often enough that a live worker is never
/// mistaken for a stuck one (a quarter of the timeout), at least once a second.
pub(crate) fn heartbeat_period(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Stamp the heartbeat every `every` for as long as the event loop runs.
pub(crate) async fn heartbeat(every: Duration) {
    let Some(slot) = SLOT.get() else { return };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        slot.beat(now_ns());
        // The StatsD lines of the last second go out (the loop's own thread made them).
        bourbon_server::metrics::flush_statsd();
    }
}
