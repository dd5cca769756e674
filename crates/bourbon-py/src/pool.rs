//! The worker's Python threads: `--threads` OS threads that take work from one bounded queue
//! (requests) and one queue of parked responses to resume (see `wsgi/spool.rs`), and run the
//! application.
//!
//! Each thread attaches to the interpreter once and releases the GIL while it waits, so idle
//! threads cost nothing and the runtime thread never waits on Python. A shared counter says
//! how much work is queued or running, so the connection side knows when it may call the
//! application inline instead (see `wsgi/handler.rs`).
//!
//! With one thread and inline calls the thread is started only when first needed (a request
//! whose body is still arriving, a response iterated while another waits): until then the
//! worker process has a single thread, and glibc, SQLite and CPython take their
//! single-threaded fast paths (plain stores instead of atomic instructions for every mutex
//! and malloc arena lock; measured on the Django ORM page: ~30 µs of a ~950 µs request).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use tokio::sync::mpsc;

use crate::wsgi::call::{continue_handoff, handle, run_deferred_close, AppContext, Handoff};
use crate::wsgi::message::{Closer, Job};

/// What a Python thread is asked to do.
// Requests travel through a bounded channel of a few slots; boxing the largest variant would
// cost an allocation per request to save a few hundred bytes of queue.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Work {
    /// Call the application for a request.
    Request(Job),
    /// Iterate a response whose application call already ran inline, or whose iteration
    /// was parked until its client made room.
    Continue(Handoff),
    /// Call the deferred `close()` of a response written by the connection thread.
    Close(Closer),
}

/// Counts work handed to the pool and not yet finished, and tells the accept loops when the
/// pool fills up and when it has room again.
#[derive(Clone)]
pub(crate) struct Busy(Arc<BusyState>);

struct BusyState {
    count: AtomicUsize,
    /// The Python threads: with this much work running, the worker is full.
    threads: usize,
    room: Arc<tokio::sync::Notify>,
    /// The threads are running (set once).
    started: AtomicBool,
    lazy: Mutex<Lazy>,
}

/// How to start the threads, until they are; then their handles.
#[derive(Default)]
struct Lazy {
    spawn: Option<Spawn>,
    handles: Vec<JoinHandle<()>>,
}

type Spawn = Box<dyn Fn(&Busy) -> std::io::Result<Vec<JoinHandle<()>>> + Send>;

impl Busy {
    /// A counter for a pool of `threads` Python threads.
    pub(crate) fn new(threads: usize) -> Self {
        Busy(Arc::new(BusyState {
            count: AtomicUsize::new(0),
            threads: threads.max(1),
            room: Arc::new(tokio::sync::Notify::new()),
            started: AtomicBool::new(false),
            lazy: Mutex::new(Lazy::default()),
        }))
    }

    /// Work is about to be queued.
    pub(crate) fn enter(&self) {
        if !self.0.started.load(Ordering::Acquire) {
            self.start_threads();
        }
        let before = self.0.count.fetch_add(1, Ordering::AcqRel);
        if before + 1 == self.0.threads {
            // From not full to full: the accept loops must stop.
            self.0.room.notify_waiters();
        }
    }

    /// Work finished (or was never taken).
    pub(crate) fn leave(&self) {
        let before = self.0.count.fetch_sub(1, Ordering::AcqRel);
        if before == self.0.threads {
            // From full to not full: the accept loops may go on.
            self.0.room.notify_waiters();
        }
    }

    /// No work is queued or running.
    pub(crate) fn idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    /// Every Python thread has work (queued work counts too).
    pub(crate) fn full(&self) -> bool {
        self.0.count.load(Ordering::Acquire) >= self.0.threads
    }

    /// Start the Python threads if they are not running yet.
    fn start_threads(&self) {
        let Ok(mut lazy) = self.0.lazy.lock() else {
            return;
        };
        if self.0.started.load(Ordering::Acquire) {
            return;
        }
        let Some(spawn) = lazy.spawn.as_ref() else {
            return;
        };
        match spawn(self) {
            Ok(handles) => {
                lazy.handles.extend(handles);
                lazy.spawn = None;
                self.0.started.store(true, Ordering::Release);
            }
            // Tried again with the next piece of work.
            Err(e) => bourbon_server::log::error(format_args!("cannot start Python threads: {e}")),
        }
    }

    /// Wait for the Python threads to return (their queue must be closed first).
    pub(crate) fn join_threads(&self) {
        let handles = match self.0.lazy.lock() {
            Ok(mut lazy) => std::mem::take(&mut lazy.handles),
            Err(_) => return,
        };
        for h in handles {
            let _ = h.join();
        }
    }

    /// Resolves at the next change between full and not full after this call (the waiter
    /// is registered here, not when first polled, so a change right after is not missed).
    pub(crate) fn changed(&self) -> tokio::sync::futures::OwnedNotified {
        self.0.room.clone().notified_owned()
    }
}

/// The two queues the Python threads take work from.
pub(crate) struct Queues {
    /// Requests (and deferred `close()` calls), bounded.
    pub(crate) work: mpsc::Receiver<Work>,
    /// Parked responses whose clients made room. Not bounded by a count of its own: each
    /// entry is a response already accepted, one per connection at most.
    pub(crate) resume: mpsc::UnboundedReceiver<Work>,
}

impl Queues {
    /// The next piece of work, resumed responses first (each holds a connection and its
    /// spool); None once the request queue is closed (the worker is stopping).
    fn next(&mut self, waker: &Waker) -> Option<Work> {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(Some(w)) = self.resume.poll_recv(&mut cx) {
                return Some(w);
            }
            if let Poll::Ready(w) = self.work.poll_recv(&mut cx) {
                return w;
            }
            // Woken by either queue's sender (spurious wake-ups just poll again).
            std::thread::park();
        }
    }
}

/// Wakes a Python thread parked in [`Queues::next`].
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Set up `n` Python threads serving `queues` until the request queue's senders are gone:
/// started now, or with `lazy` when the first work is queued (see the module docs).
pub(crate) fn start(
    n: usize,
    ctx: Arc<AppContext>,
    queues: Queues,
    busy: &Busy,
    lazy: bool,
) -> std::io::Result<()> {
    let work = Arc::new(Mutex::new(queues));
    let spawn: Spawn = Box::new(move |busy: &Busy| {
        (0..n)
            .map(|i| {
                let (ctx, work, busy) = (ctx.clone(), work.clone(), busy.clone());
                std::thread::Builder::new()
                    .name(format!("bourbon-py-{i}"))
                    .spawn(move || serve(&ctx, &work, &busy))
            })
            .collect()
    });
    match busy.0.lazy.lock() {
        Ok(mut l) => l.spawn = Some(spawn),
        Err(_) => return Err(std::io::Error::other("pool state poisoned")),
    }
    if lazy {
        return Ok(());
    }
    busy.start_threads();
    if busy.0.started.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(std::io::Error::other("the threads did not start"))
    }
}

fn serve(ctx: &AppContext, work: &Mutex<Queues>, busy: &Busy) {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    Python::attach(|py| loop {
        // Wait without the GIL; one thread at a time waits on the queues themselves.
        let next = py.detach(|| match work.lock() {
            Ok(mut q) => q.next(&waker),
            Err(_) => None,
        });
        match next {
            Some(Work::Request(job)) => {
                if let Some(handoff) = handle(py, ctx, job, false) {
                    // Not produced for non-inline calls; finish it here all the same.
                    continue_handoff(py, ctx, handoff);
                }
            }
            Some(Work::Continue(handoff)) => continue_handoff(py, ctx, handoff),
            Some(Work::Close(closer)) => run_deferred_close(py, closer),
            None => break,
        }
        busy.leave();
    });
}
