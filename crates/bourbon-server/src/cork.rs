//! Coalesced response writes ("corking") and the runtime that supports them.
//!
//! Writing a response to a client that sleeps in `epoll_wait` wakes it; on a busy worker that
//! wake is most of the kernel time a request costs (measured on this project's bench VM at
//! c=64 with a Django view: 10 of the 20 µs of system time per request, the inter-processor
//! interrupt that wakes the client's thread). When several responses leave close together the
//! client wakes once for all of them. So while the worker is busy (it has served a request
//! since it last waited for events), a complete, small keep-alive response is not written at
//! once: it is *held*, and the connection's task goes on to read its next request. Held
//! responses are written together
//!
//! - when the worker's thread has nothing else to do (the runtime is about to park), or
//! - before the next application call, when the oldest held response has waited, or would
//!   by the end of that call, the hold time (`--write-coalesce`, by default [`HOLD_FOR`]).
//!   The call's length is predicted from the recent calls (a moving average), so responses
//!   are held across short calls only: a worker whose views take milliseconds writes every
//!   response at once. A call much slower than the recent ones delays the few responses held
//!   before it; that is the price of the prediction.
//!
//! This owns the per-thread queue of held responses and [`runtime`], which builds the
//! current-thread runtime with the park hook that flushes it. Holding is enabled only on a
//! thread whose runtime was built by [`runtime`]; elsewhere responses are written at once.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a held response may wait for company while the worker is busy, by default.
pub const HOLD_FOR: Duration = Duration::from_millis(2);
/// A response larger than this is written at once: one wake is small beside its copy.
pub(crate) const HOLD_MAX_BYTES: usize = 64 * 1024;
/// At most this many responses are held at a time.
const HOLD_MAX: usize = 128;

/// A connection with a held response.
pub(crate) trait Held {
    /// Write the held response now, without blocking; if the socket did not take all of it,
    /// or the write failed, wake the connection's task to deal with it.
    fn write_held(&self);
}

struct Queue {
    enabled: bool,
    hold_for: Duration,
    held: Vec<Rc<dyn Held>>,
    oldest: Option<Instant>,
    /// Moving average of recent application calls made on this thread, in nanoseconds.
    call_ns: u64,
    /// Responses finished since the thread last went idle. The first after a wake is written
    /// at once: a lone request (c=1) must not wait for anything.
    since_idle: u32,
}

thread_local! {
    static QUEUE: RefCell<Queue> = const {
        RefCell::new(Queue {
            enabled: false,
            hold_for: HOLD_FOR,
            held: Vec::new(),
            oldest: None,
            call_ns: 0,
            since_idle: 0,
        })
    };
}

/// Build the current-thread runtime a worker serves on, with write coalescing enabled for
/// this thread (the runtime must be driven from the thread that built it).
///
/// `hold_for` zero disables holding.
pub fn runtime(hold_for: Duration) -> io::Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(on_park)
        .build()?;
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.enabled = !hold_for.is_zero();
        q.hold_for = hold_for;
    });
    Ok(rt)
}

/// Queue `conn`'s response to be written with others. False when holding is off on this
/// thread or the queue is full: the caller writes at once.
pub(crate) fn hold(conn: Rc<dyn Held>) -> bool {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.since_idle = q.since_idle.saturating_add(1);
        if !q.enabled || q.since_idle == 1 || q.held.len() >= HOLD_MAX {
            return false;
        }
        if q.held.is_empty() {
            q.oldest = Some(Instant::now());
        }
        q.held.push(conn);
        true
    })
}

/// The runtime is about to wait for events: nothing else to do, so write what is held.
fn on_park() {
    QUEUE.with(|q| q.borrow_mut().since_idle = 0);
    flush();
}

/// Write every held response now.
pub fn flush() {
    let held = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.oldest = None;
        std::mem::take(&mut q.held)
    });
    for conn in &held {
        conn.write_held();
    }
    // Give the (now empty) vector back so the next batch does not allocate.
    let mut held = held;
    held.clear();
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.held.is_empty() && q.held.capacity() < held.capacity() {
            q.held = held;
        }
    });
}

/// Called before an application call: write the held responses if the oldest would have
/// waited [`HOLD_FOR`] by the end of the call. Returns when the call starts, for
/// [`call_done`] (None when holding is off).
pub(crate) fn before_call() -> Option<Instant> {
    let (now, due) = QUEUE.with(|q| {
        let q = q.borrow();
        if !q.enabled {
            return (None, false);
        }
        let now = Instant::now();
        let due = q.oldest.is_some_and(|t| {
            now.saturating_duration_since(t) + Duration::from_nanos(q.call_ns) >= q.hold_for
        });
        (Some(now), due)
    });
    if due {
        flush();
    }
    now
}

/// Record how long an application call took (from [`before_call`]). Returns when the call
/// ended (read here in any case): the connection uses it as the start of its keep-alive wait
/// and for the `Date` header, instead of reading the clock again.
pub(crate) fn call_done(started: Option<Instant>) -> Instant {
    let now = Instant::now();
    let Some(started) = started else { return now };
    let ns = u64::try_from(now.saturating_duration_since(started).as_nanos()).unwrap_or(u64::MAX);
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        // An average over about the last eight calls: quick to follow a change of workload.
        q.call_ns = q.call_ns - q.call_ns / 8 + ns / 8;
    });
    now
}
