//! The memory one worker shares with the master: its liveness and request counts.
//!
//! The master maps one small anonymous `MAP_SHARED` region per worker just before forking it,
//! so both processes see the same bytes and nothing touches the filesystem (gunicorn's
//! heartbeat files are a known source of trouble on slow or full disks). The region holds
//! only atomics:
//!
//! - a heartbeat, the `CLOCK_MONOTONIC` time at which the worker's event loop last ran;
//! - the number of application calls the worker has finished;
//! - one record per thread that may call the application: the start time of the call in
//!   progress (0 when there is none) and its request line, truncated to [`LINE_MAX`] bytes;
//! - a flag the worker raises once it has loaded the application and serves (so the master
//!   can tell a worker that failed to boot from one that crashed later);
//! - a flag the worker raises once it has written its Python stacks;
//! - the interface the worker serves (WSGI or ASGI), for `bourbon status`.
//!
//! A record is written like a seqlock: the start time is stored last (release) and cleared
//! when the call ends, and the master re-reads it after copying the line, discarding the copy
//! if it changed meanwhile. `CLOCK_MONOTONIC` is system-wide, so times compare across the two
//! processes.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Bytes of a request line kept for the timeout report.
pub const LINE_MAX: usize = 200;
const LINE_WORDS: usize = LINE_MAX / 8;

#[repr(C)]
struct Header {
    heartbeat: AtomicU64,
    requests: AtomicU64,
    /// Records handed out to threads so far (may exceed `records`: those threads get none).
    claimed: AtomicU32,
    /// How many records follow; written by the master before the fork, then only read.
    records: AtomicU32,
    /// Raised by the worker's signal handler after the Python stacks were written.
    dumped: AtomicU32,
    /// Raised by the worker once the application is loaded and it serves.
    booted: AtomicU32,
    /// The interface the worker serves ([`Interface`] as a number; 0 until it booted).
    interface: AtomicU32,
}

/// The interface a worker serves, as it reports it (`--interface auto` is decided in the
/// worker, once the application is loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    Wsgi = 1,
    Asgi = 2,
}

#[repr(C)]
struct Record {
    /// Start of the call in progress (monotonic nanoseconds), 0 when idle.
    started: AtomicU64,
    len: AtomicU32,
    line: [AtomicU64; LINE_WORDS],
}

/// Records start at this offset, which keeps them 8-byte aligned and off the header's line.
const RECORDS_AT: usize = 64;

/// One worker's shared region, owned: dropping it unmaps the region in this process. Each
/// process has its own view after the fork: the master drops its view once the worker is
/// reaped; the worker keeps its own for its whole life (in a static, see `supervise.rs`).
pub struct Slot {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is only ever accessed through atomics.
unsafe impl Send for Slot {}
// SAFETY: as above; every access is an atomic operation on shared memory.
unsafe impl Sync for Slot {}

/// The current `CLOCK_MONOTONIC` time in nanoseconds (never 0): the metrics' clock, so the
/// scoreboard's and the metrics' times compare.
pub use bourbon_server::metrics::now_ns;

/// A call in progress, as the master sees it.
pub struct Call {
    /// Monotonic start time, nanoseconds.
    pub started: u64,
    /// The request line, possibly truncated.
    pub line: String,
}

impl Slot {
    /// Map a zeroed region with room for `records` calls; its heartbeat starts at `now`, so a
    /// worker that never gets to serve is still judged by `--timeout`.
    pub fn new(records: usize, now: u64) -> std::io::Result<Slot> {
        let records = records.clamp(1, 4096);
        let len = RECORDS_AT + records * std::mem::size_of::<Record>();
        // SAFETY: an anonymous shared mapping of `len` bytes; the kernel zero-fills it, and
        // all-zero bytes are valid atomics.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(std::io::Error::last_os_error)?;
        let slot = Slot { base, len };
        let h = slot.header();
        h.records
            .store(u32::try_from(records).unwrap_or(1), Ordering::Relaxed);
        h.heartbeat.store(now, Ordering::Relaxed);
        Ok(slot)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a `Header` (zeroed atomics are valid), is page
        // aligned, and lives as long as `self` (only `Drop` unmaps it).
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    fn record(&self, i: usize) -> Option<&Record> {
        let n = usize::try_from(self.header().records.load(Ordering::Relaxed)).unwrap_or(0);
        if i >= n {
            return None;
        }
        // SAFETY: record `i < n` lies inside the mapping (its length was computed from `n`),
        // at an 8-byte aligned offset; zeroed atomics are valid.
        Some(unsafe {
            &*self
                .base
                .as_ptr()
                .add(RECORDS_AT + i * std::mem::size_of::<Record>())
                .cast::<Record>()
        })
    }

    // ---- worker side ----

    /// The event loop is alive at `now`.
    pub fn beat(&self, now: u64) {
        self.header().heartbeat.store(now, Ordering::Relaxed);
    }

    /// The application is loaded and the worker serves: from now on an exit is a crash, not
    /// a failure to boot.
    pub fn mark_booted(&self) {
        self.header().booted.store(1, Ordering::Release);
    }

    /// The worker serves `interface` (written once, at boot).
    pub fn set_interface(&self, interface: Interface) {
        self.header()
            .interface
            .store(interface as u32, Ordering::Relaxed);
    }

    /// Give the calling thread a record of its own, if any are left.
    pub fn claim(&self) -> Option<usize> {
        let i = self.header().claimed.fetch_add(1, Ordering::Relaxed);
        let i = usize::try_from(i).ok()?;
        self.record(i).map(|_| i)
    }

    /// A call starts on the event loop's own thread (an inline call, `--threads 1`), on
    /// record `i` if the thread has one. The loop is alive at this moment, so the heartbeat
    /// is stamped too: from here the loop's silence is the call's own age, which `--timeout`
    /// judges, and never the age of a beat from before the call (which would kill a call
    /// that has run less than the timeout).
    pub fn begin_on_loop(&self, i: Option<usize>, now: u64, parts: [&[u8]; 3]) {
        self.beat(now);
        if let Some(i) = i {
            self.begin(i, now, parts);
        }
    }

    /// The call started by [`Slot::begin_on_loop`] ended at `now`: count it, and stamp the
    /// heartbeat, since the loop is running again.
    pub fn end_on_loop(&self, i: Option<usize>, now: u64) {
        self.end(i);
        self.beat(now);
    }

    /// A call starts on record `i`: store its request line (`parts` joined by spaces,
    /// truncated), then its start time.
    pub fn begin(&self, i: usize, now: u64, parts: [&[u8]; 3]) {
        let Some(r) = self.record(i) else { return };
        // Marked idle before the line changes, so a reader that sees a new byte also sees
        // the start time change (the seqlock's "write in progress").
        r.started.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        let mut bytes = parts[0]
            .iter()
            .chain(b" ")
            .chain(parts[1])
            .chain(b" ")
            .chain(parts[2])
            .copied()
            .take(LINE_MAX);
        let mut len = 0u32;
        for word in &r.line {
            let mut buf = [0u8; 8];
            let mut n = 0;
            for (b, byte) in buf.iter_mut().zip(bytes.by_ref()) {
                *b = byte;
                n += 1;
            }
            if n == 0 {
                break;
            }
            word.store(u64::from_le_bytes(buf), Ordering::Relaxed);
            len += n;
        }
        r.len.store(len, Ordering::Relaxed);
        r.started.store(now, Ordering::Release);
    }

    /// The call on record `i` (if any) ended; count it.
    pub fn end(&self, i: Option<usize>) {
        if let Some(r) = i.and_then(|i| self.record(i)) {
            r.started.store(0, Ordering::Release);
        }
        self.header().requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The Python stacks were written (called from a signal handler: one atomic store).
    pub fn mark_dumped(&self) {
        self.header().dumped.store(1, Ordering::Release);
    }

    // ---- master side ----

    /// When the worker's event loop last ran (monotonic nanoseconds).
    pub fn heartbeat(&self) -> u64 {
        self.header().heartbeat.load(Ordering::Relaxed)
    }

    /// Application calls finished so far.
    pub fn requests(&self) -> u64 {
        self.header().requests.load(Ordering::Relaxed)
    }

    /// Whether the worker loaded the application and began serving.
    pub fn booted(&self) -> bool {
        self.header().booted.load(Ordering::Acquire) != 0
    }

    /// The interface the worker said it serves, once it booted.
    pub fn interface(&self) -> Option<Interface> {
        match self.header().interface.load(Ordering::Relaxed) {
            1 => Some(Interface::Wsgi),
            2 => Some(Interface::Asgi),
            _ => None,
        }
    }

    /// Every call in progress, oldest first (for `bourbon status`); torn copies are left out,
    /// as in [`Slot::oldest_call`].
    pub fn calls(&self) -> Vec<Call> {
        let n = usize::try_from(self.header().records.load(Ordering::Relaxed)).unwrap_or(0);
        let mut calls: Vec<Call> = (0..n)
            .filter_map(|i| self.record(i))
            .filter_map(|r| copy_call(r, &mut || {}))
            .collect();
        calls.sort_by_key(|c| c.started);
        calls
    }

    /// Whether the worker has written its stacks since it was asked.
    pub fn dumped(&self) -> bool {
        self.header().dumped.load(Ordering::Acquire) != 0
    }

    /// How many calls in progress started before `before` (monotonic nanoseconds).
    pub fn calls_started_before(&self, before: u64) -> usize {
        let n = usize::try_from(self.header().records.load(Ordering::Relaxed)).unwrap_or(0);
        (0..n)
            .filter_map(|i| self.record(i))
            .filter(|r| {
                let started = r.started.load(Ordering::Acquire);
                started != 0 && started < before
            })
            .count()
    }

    /// The oldest call in progress, with its request line.
    pub fn oldest_call(&self) -> Option<Call> {
        self.oldest_call_with(&mut |_| {})
    }

    /// [`Slot::oldest_call`], running `copied(i)` after record `i`'s line was copied and
    /// before its start time is read again (the tests put a writer there).
    fn oldest_call_with(&self, copied: &mut dyn FnMut(usize)) -> Option<Call> {
        let n = usize::try_from(self.header().records.load(Ordering::Relaxed)).unwrap_or(0);
        let mut oldest: Option<Call> = None;
        for (i, r) in (0..n).filter_map(|i| self.record(i).map(|r| (i, r))) {
            let started = r.started.load(Ordering::Acquire);
            if started == 0 || oldest.as_ref().is_some_and(|o| o.started <= started) {
                continue;
            }
            if let Some(call) = copy_call(r, &mut || copied(i)) {
                oldest = Some(call);
            }
        }
        oldest
    }
}

/// Copy record `r`'s call in progress, if any and if it did not change while it was copied
/// (`copied` runs between the copy and the second read of the start time).
fn copy_call(r: &Record, copied: &mut dyn FnMut()) -> Option<Call> {
    let started = r.started.load(Ordering::Acquire);
    if started == 0 {
        return None;
    }
    let len = usize::try_from(r.len.load(Ordering::Relaxed))
        .unwrap_or(0)
        .min(LINE_MAX);
    let mut bytes = Vec::with_capacity(len);
    for word in &r.line {
        bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        if bytes.len() >= len {
            break;
        }
    }
    bytes.truncate(len);
    copied();
    fence(Ordering::Acquire);
    if r.started.load(Ordering::Relaxed) != started {
        // The call ended (and maybe another began) while we copied.
        return None;
    }
    Some(Call {
        started,
        line: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned, and every reference into the
        // region borrows `self`, so none outlives this call.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_line_torn_by_a_new_call_is_discarded() {
        let slot = Slot::new(1, 1).unwrap();
        slot.begin(0, 10, [b"GET", b"/old", b"HTTP/1.1"]);
        // The call ends and another begins while the master copies the line: what it
        // copied may mix both, so it is not reported (the new call is young anyway).
        let torn = slot.oldest_call_with(&mut |i| {
            slot.end(Some(i));
            slot.begin(i, 20, [b"POST", b"/new", b"HTTP/1.1"]);
        });
        assert!(torn.is_none());
        let call = slot.oldest_call().unwrap();
        assert_eq!(
            (call.started, call.line.as_str()),
            (20, "POST /new HTTP/1.1")
        );
        // Ended while copied, and nothing began: nothing to report either.
        assert!(slot.oldest_call_with(&mut |i| slot.end(Some(i))).is_none());
    }

    #[test]
    fn calls_are_recorded_truncated_and_cleared() {
        let slot = Slot::new(2, 5).unwrap();
        assert_eq!(slot.heartbeat(), 5);
        let a = slot.claim().unwrap();
        let b = slot.claim().unwrap();
        assert_eq!(slot.claim(), None);
        assert!(slot.oldest_call().is_none());
        slot.begin(a, 100, [b"GET", b"/x?y=1", b"HTTP/1.1"]);
        let long = vec![b'a'; 500];
        slot.begin(b, 50, [b"POST", &long, b"HTTP/1.0"]);
        let c = slot.oldest_call().unwrap();
        assert_eq!(c.started, 50);
        assert_eq!(c.line.len(), LINE_MAX);
        assert!(c.line.starts_with("POST aaaa"));
        slot.end(Some(b));
        let c = slot.oldest_call().unwrap();
        assert_eq!((c.started, c.line.as_str()), (100, "GET /x?y=1 HTTP/1.1"));
        slot.end(Some(a));
        slot.end(None);
        assert!(slot.oldest_call().is_none());
        assert_eq!(slot.requests(), 3);
        assert!(!slot.dumped());
        slot.mark_dumped();
        assert!(slot.dumped());
        assert!(!slot.booted());
        slot.mark_booted();
        assert!(slot.booted());
    }

    #[test]
    fn every_call_in_progress_is_listed_oldest_first() {
        let slot = Slot::new(3, 1).unwrap();
        assert!(slot.calls().is_empty());
        assert_eq!(slot.interface(), None);
        slot.set_interface(Interface::Asgi);
        assert_eq!(slot.interface(), Some(Interface::Asgi));
        slot.begin(0, 30, [b"GET", b"/a", b"HTTP/1.1"]);
        slot.begin(2, 10, [b"GET", b"/c", b"HTTP/1.0"]);
        let lines: Vec<(u64, String)> = slot
            .calls()
            .into_iter()
            .map(|c| (c.started, c.line))
            .collect();
        assert_eq!(
            lines,
            vec![
                (10, "GET /c HTTP/1.0".to_owned()),
                (30, "GET /a HTTP/1.1".to_owned())
            ]
        );
        slot.end(Some(2));
        assert_eq!(slot.calls().len(), 1);
    }

    #[test]
    fn calls_on_the_loop_thread_stamp_the_heartbeat() {
        let slot = Slot::new(1, 5).unwrap();
        let i = slot.claim();
        slot.begin_on_loop(i, 100, [b"GET", b"/", b"HTTP/1.1"]);
        assert_eq!(slot.heartbeat(), 100);
        assert_eq!(slot.oldest_call().unwrap().started, 100);
        slot.end_on_loop(i, 250);
        assert_eq!(slot.heartbeat(), 250);
        assert!(slot.oldest_call().is_none());
        assert_eq!(slot.requests(), 1);
        // A pool thread's call says nothing about the loop.
        slot.begin(0, 300, [b"GET", b"/", b"HTTP/1.1"]);
        assert_eq!(slot.heartbeat(), 250);
    }
}
