//! A streamed response's body on its way from a Python thread to the connection, and the
//! spool that lets the application finish before a slow client has read it (nginx's
//! response buffering, built in).
//!
//! This module owns the queue between the two sides of one streamed response and its
//! policy. The Python side offers chunks; the connection side takes them as the client
//! reads. While the client keeps up, chunks pass through memory. When it does not, up to
//! `--response-buffer-size` bytes wait in memory and the rest is written to a temporary file
//! (unlinked as it is made) and queued as file regions, which the connection sends like any
//! file body. The application therefore finishes iterating, its `close()` runs and its
//! Python thread goes back to the pool, whatever the client does.
//!
//! Past `--max-temp-file-size` (or for a response that must not be buffered: server-sent
//! events, `X-Accel-Buffering: no`) a chunk does not fit. The iterating thread then *parks*
//! the iteration here instead of waiting: it gives the rest of the response to this queue as
//! a [`Resume`] and returns to the pool. The connection side runs the `Resume` when room has
//! been made (or when the client is gone), which puts the iteration back on the pool's queue.
//! So no Python thread ever waits on a client, and a worker whose threads would all be
//! waiting keeps accepting and serving. Only the legacy `write()` callable, which returns
//! into the application, has to wait (with the GIL released).
//!
//! Memory per response stays within `--response-buffer-size` plus one chunk (a queue that is
//! empty always takes the next chunk, or nothing could ever pass) plus what the connection
//! gathers for one write.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bourbon_server::log;
use bytes::Bytes;
use pyo3::Python;

use super::message::{FileSlice, Msg};

/// Bookkeeping per queued chunk, counted against the memory budget so that a stream of tiny
/// chunks is bounded too.
const ITEM_COST: usize = 64;
/// A response that is not buffered holds at most this many chunks between the application
/// and the socket.
const UNBUFFERED_ITEMS: usize = 16;
/// Consecutive spooled chunks are sent as one file region of at most this many bytes; the
/// file's space is released region by region as the client reads.
const REGION_MAX: u64 = 1 << 20;

/// The worker's buffering settings.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Bytes of a response that may wait in memory.
    pub(crate) memory: usize,
    /// Bytes of a response that may wait in its temporary file.
    pub(crate) file: u64,
    /// Where temporary files are made.
    pub(crate) dir: PathBuf,
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Set this worker's limits (once, before it serves).
pub(crate) fn configure(cfg: &bourbon_config::Config) {
    let dir = cfg
        .temp_path
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let _ = LIMITS.set(Limits {
        memory: usize::try_from(cfg.response_buffer_size).unwrap_or(usize::MAX),
        file: cfg.max_temp_file_size,
        dir,
    });
}

fn limits() -> &'static Limits {
    LIMITS.get_or_init(|| Limits {
        memory: 64 * 1024,
        file: 1 << 30,
        dir: PathBuf::from("/tmp"),
    })
}

/// The rest of a parked response: puts its iteration back on the pool's queue.
pub(crate) type Resume = Box<dyn FnOnce() + Send>;

/// What became of an offered message.
pub(crate) enum Offer {
    /// Queued (in memory or in the temporary file).
    Taken,
    /// The client is gone: stop producing.
    Gone,
    /// No room: the message comes back.
    Full(Msg),
}

enum Item {
    Data(Bytes),
    /// A region of the temporary file.
    Spooled {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
    File(FileSlice),
    End,
    Abort,
}

struct State {
    items: VecDeque<Item>,
    /// Bytes of the `Data` items, plus [`ITEM_COST`] each.
    memory: usize,
    /// Bytes of the `Spooled` items.
    spooled: u64,
    /// The Python side let go without ending the body (it failed): abort after the queue.
    producer_gone: bool,
    /// The connection let go (written out, or the client is gone).
    consumer_gone: bool,
    /// The connection's task, waiting for an item.
    waker: Option<Waker>,
    /// A `write()` caller waits on [`Stream::room`].
    waiting: bool,
    /// A parked iteration and the size of the chunk it waits to queue.
    parked: Option<(usize, Resume)>,
    /// The temporary file could not be made or written: memory only from then on.
    file_failed: bool,
}

/// The queue of one streamed response, shared by its two sides.
pub(crate) struct Stream {
    state: Mutex<State>,
    room: Condvar,
    /// Whether bytes may wait for the client (false: server-sent events and the like).
    buffered: bool,
    /// The temporary file and where its next byte goes; only the Python side touches it.
    file: Mutex<Option<(Arc<File>, u64)>>,
}

impl Stream {
    /// A new stream; `buffered` is false for responses that must reach the client as they
    /// are produced.
    pub(crate) fn new(buffered: bool) -> Arc<Stream> {
        Arc::new(Stream {
            state: Mutex::new(State {
                items: VecDeque::new(),
                memory: 0,
                spooled: 0,
                producer_gone: false,
                consumer_gone: false,
                waker: None,
                waiting: false,
                parked: None,
                file_failed: false,
            }),
            room: Condvar::new(),
            buffered,
            file: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether a chunk of `len` bytes may wait in memory now.
    fn fits_memory(&self, st: &State, len: usize) -> bool {
        if st.items.is_empty() {
            return true;
        }
        let fits = st.memory + len + ITEM_COST <= limits().memory;
        fits && (self.buffered || st.items.len() < UNBUFFERED_ITEMS)
    }

    /// Whether a chunk of `len` bytes may wait in the temporary file now.
    fn fits_file(&self, st: &State, len: usize) -> bool {
        self.buffered && !st.file_failed && st.spooled + len as u64 <= limits().file
    }

    fn has_room(&self, st: &State, len: usize) -> bool {
        self.fits_memory(st, len) || self.fits_file(st, len)
    }

    fn push(&self, mut st: MutexGuard<'_, State>, item: Item) {
        match &item {
            Item::Data(b) => st.memory += b.len() + ITEM_COST,
            Item::Spooled { len, .. } => st.spooled += len,
            _ => {}
        }
        st.items.push_back(item);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Offer a message from the Python side (which holds the GIL; it is released while a
    /// chunk is written to the temporary file).
    pub(crate) fn offer(&self, py: Python<'_>, msg: Msg) -> Offer {
        let st = self.lock();
        if st.consumer_gone {
            return Offer::Gone;
        }
        let data = match msg {
            Msg::Data(data) => data,
            Msg::File(f) => {
                self.push(st, Item::File(f));
                return Offer::Taken;
            }
            Msg::End => {
                self.push(st, Item::End);
                return Offer::Taken;
            }
            // A head cannot come twice; anything else ends the body.
            _ => {
                self.push(st, Item::Abort);
                return Offer::Taken;
            }
        };
        if self.fits_memory(&st, data.len()) {
            self.push(st, Item::Data(data));
            return Offer::Taken;
        }
        if !self.fits_file(&st, data.len()) {
            return Offer::Full(Msg::Data(data));
        }
        drop(st);
        // Only this (Python) side writes the file, so the region is fixed before it is
        // queued and the connection side never reads bytes still being written.
        match py.detach(|| self.spool(&data)) {
            Ok((file, offset)) => {
                let mut st = self.lock();
                if st.consumer_gone {
                    return Offer::Gone;
                }
                let len = data.len() as u64;
                // Next to the region before it: one larger region, one file frame.
                if let Some(Item::Spooled {
                    file: last,
                    offset: o,
                    len: l,
                }) = st.items.back_mut()
                {
                    if Arc::ptr_eq(last, &file) && *o + *l == offset && *l + len <= REGION_MAX {
                        *l += len;
                        st.spooled += len;
                        let waker = st.waker.take();
                        drop(st);
                        if let Some(w) = waker {
                            w.wake();
                        }
                        return Offer::Taken;
                    }
                }
                self.push(st, Item::Spooled { file, offset, len });
                Offer::Taken
            }
            Err(e) => {
                log::error(format_args!(
                    "cannot write a response temporary file in {}: {e}; this response now \
                     waits for its client (see --temp-path)",
                    limits().dir.display()
                ));
                let mut st = self.lock();
                st.file_failed = true;
                if st.consumer_gone {
                    return Offer::Gone;
                }
                Offer::Full(Msg::Data(data))
            }
        }
    }

    /// Queue `data` regardless of the budget (what an inline call's `write()` already
    /// produced: it is in memory anyway). False when the client is gone.
    pub(crate) fn force(&self, data: Bytes) -> bool {
        let st = self.lock();
        if st.consumer_gone {
            return false;
        }
        self.push(st, Item::Data(data));
        true
    }

    /// Append `data` to the temporary file (made on first use); returns the file and where
    /// the data starts.
    fn spool(&self, data: &[u8]) -> io::Result<(Arc<File>, u64)> {
        use std::os::unix::fs::FileExt;
        let mut slot = match self.file.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_none() {
            *slot = Some((Arc::new(temp_file(&limits().dir)?), 0));
        }
        let Some((file, end)) = slot.as_mut() else {
            return Err(io::Error::other("no temporary file"));
        };
        let offset = *end;
        file.write_all_at(data, offset)?;
        *end += data.len() as u64;
        Ok((file.clone(), offset))
    }

    /// The Python side cannot queue a chunk of `len` bytes: leave the rest of the iteration
    /// here. `Err(resume)` when there is room after all (or the client is gone): the caller
    /// runs it.
    pub(crate) fn park(&self, len: usize, resume: Resume) -> Result<(), Resume> {
        let mut st = self.lock();
        if st.consumer_gone || self.has_room(&st, len) {
            return Err(resume);
        }
        st.parked = Some((len, resume));
        Ok(())
    }

    /// Wait (without the GIL) until a chunk of `len` bytes fits, or the client is gone.
    pub(crate) fn wait_room(&self, py: Python<'_>, len: usize) {
        py.detach(|| {
            let mut st = self.lock();
            while !st.consumer_gone && !self.has_room(&st, len) {
                st.waiting = true;
                st = match self.room.wait(st) {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
            st.waiting = false;
        });
    }

    /// The Python side is done with the stream. Without an end queued first, the body is
    /// cut off (the connection closes).
    pub(crate) fn producer_done(&self) {
        let mut st = self.lock();
        st.producer_gone = true;
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The connection's side: the next message, in order.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        let mut st = self.lock();
        let Some(item) = st.items.pop_front() else {
            if st.producer_gone {
                return Poll::Ready(None);
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        let msg = match item {
            Item::Data(b) => {
                st.memory -= b.len() + ITEM_COST;
                Msg::Data(b)
            }
            Item::Spooled { file, offset, len } => {
                st.spooled -= len;
                Msg::File(FileSlice {
                    fd: file,
                    offset,
                    len,
                    spooled: true,
                })
            }
            Item::File(f) => Msg::File(f),
            Item::End => Msg::End,
            Item::Abort => Msg::Abort,
        };
        let resume = match &st.parked {
            Some((len, _)) if self.has_room(&st, *len) => st.parked.take().map(|(_, r)| r),
            _ => None,
        };
        if st.waiting {
            self.room.notify_all();
        }
        drop(st);
        if let Some(resume) = resume {
            resume();
        }
        Poll::Ready(Some(msg))
    }

    /// The connection is done with the stream (the body was written, or the client is
    /// gone): what is queued is dropped (and with it the temporary file), and a parked or
    /// waiting Python side is let go, so that it stops and calls `close()`.
    pub(crate) fn consumer_done(&self) {
        let mut st = self.lock();
        st.consumer_gone = true;
        let items = std::mem::take(&mut st.items);
        st.memory = 0;
        st.spooled = 0;
        let resume = st.parked.take().map(|(_, r)| r);
        if st.waiting {
            self.room.notify_all();
        }
        drop(st);
        drop(items);
        if let Some(resume) = resume {
            resume();
        }
    }
}

/// The connection's end of a stream: lets go of it when dropped.
pub(crate) struct StreamReader(pub(crate) Arc<Stream>);

impl StreamReader {
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        self.0.poll_next(cx)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.0.consumer_done();
    }
}

/// A new temporary file in `dir` that has no name: `O_TMPFILE` where the file system has
/// it, else a fresh name unlinked at once. Readable and writable by this process only.
fn temp_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(target_os = "linux")]
    {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
        {
            Ok(f) => return Ok(f),
            // Not supported by this file system (or kernel): fall back to a named file.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {}
            Err(e) => return Err(e),
        }
    }
    for attempt in 0u32..16 {
        let name = dir.join(format!(
            ".bourbon-response-{}-{}-{attempt}",
            std::process::id(),
            unique()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&name)
        {
            Ok(f) => {
                std::fs::remove_file(&name)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Give back the disk space of a region the client has been sent (the file keeps its size;
/// the region reads as zeros). Best effort: a file system without hole punching keeps the
/// space until the response ends.
pub(crate) fn release(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return;
        };
        // SAFETY: fallocate(2) on a descriptor this process owns (kept open by `file` for the
        // call); it only changes the file's allocation, never memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_temporary_file_has_no_name_and_reads_back() {
        use std::os::unix::fs::FileExt;
        let dir = std::env::temp_dir().join(format!("bourbon-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = temp_file(&dir).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        let mut buf = [0u8; 5];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        release(&f, 0, 5);
        std::fs::remove_dir(&dir).unwrap();
    }
}
