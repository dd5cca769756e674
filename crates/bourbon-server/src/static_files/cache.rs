//! What the static-file layer knows about files on disk: open descriptors, metadata, the
//! precomputed validators and headers, and the bytes of small files — kept per worker and
//! invalidated by inotify(7), so a file changed on disk is served with its new bytes, length
//! and validators on the next request while an unchanged one costs no system call at all.
//!
//! This module owns the lookups (done on the blocking pool: opening and stat never run on
//! the event loop, RFC-free), the cache and its invalidation; it decides nothing about HTTP.
//!
//! Invalidation: before a lookup is served from the cache, the inotify queue is drained if
//! the reactor has seen it readable. A change made before a request was sent has queued its
//! event before the request's bytes arrived, so the reactor reports both in the same wake-up
//! at the latest, and the request is answered from the disk's new state. Every directory from
//! the root down to a cached file is watched (and the directory the file really lives in,
//! when a symlink led elsewhere); an event naming a file drops the entries that depend on it,
//! an event about a directory (renamed, deleted) or a full queue drops everything. A lookup
//! that raced with any event is served but not kept.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustix::fs::{inotify, Mode, OFlags, ResolveFlags};
use tokio::io::unix::AsyncFd;

use super::conditional::{http_date, ETag, Validators};

/// Files up to this size are kept in memory: such a response goes out in one write with its
/// head, where a file region costs a second system call (or two, copied to a local client).
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Bounds on what the cache holds; past either, it starts over (cheaper than tracking use,
/// and a static tree larger than this is rare).
const MAX_ENTRIES: usize = 16 * 1024;
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// One representation of a file: the file itself or a pre-compressed variant of it.
#[derive(Debug)]
pub(crate) struct Rep {
    pub(crate) file: Arc<File>,
    pub(crate) len: u64,
    pub(crate) validators: Validators,
    /// `Last-Modified` as sent.
    pub(crate) last_modified: String,
    /// The whole file, when it is small.
    pub(crate) bytes: Option<Bytes>,
}

/// A file found under a root, with its variants.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) identity: Rep,
    pub(crate) br: Option<Rep>,
    pub(crate) gz: Option<Rep>,
}

impl Entry {
    /// A `.br` or `.gz` variant exists, so responses for this file vary by Accept-Encoding.
    pub(crate) fn has_variants(&self) -> bool {
        self.br.is_some() || self.gz.is_some()
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Found {
    File(Rc<Entry>),
    /// A directory; `index` tells whether it holds the configured index file.
    Dir {
        index: bool,
    },
    Missing,
    /// Something there that must not be served: a symlink leading out of the root, a
    /// special file, a permission error.
    Refused,
}

/// How files under a root are opened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenRules {
    /// Follow symlinks wherever they lead (else resolution must stay beneath the root).
    pub(crate) follow_symlinks: bool,
}

/// A root directory files are served from. Held by its path, not an open descriptor: each
/// lookup opens the path again, so a release directory renamed into place (or a `current`
/// symlink flipped to another) is served from the next request on.
#[derive(Debug)]
pub(crate) struct Root {
    pub(crate) path: PathBuf,
}

impl Root {
    /// Check that `path` is a directory (at start: may block).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        open_dir(path)?;
        Ok(Root {
            path: path.to_path_buf(),
        })
    }
}

fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// A cached file: its mount, and its path under the mount's root as bytes.
type Key = (usize, Box<[u8]>);
/// A name in a watched directory: (watch descriptor, name).
type Dep = (i32, Box<[u8]>);
/// One mount's entries, by relative path.
type Entries = HashMap<Box<[u8]>, Rc<Entry>>;

/// The per-worker cache. Single-threaded: it lives on the worker's event loop.
pub(crate) struct Cache {
    /// Per mount: relative path → entry.
    entries: RefCell<Vec<Entries>>,
    bytes: Cell<usize>,
    /// Which entries depend on a name in a watched directory.
    deps: RefCell<HashMap<Dep, Vec<Key>>>,
    /// Directories under watch, by watch descriptor.
    watched: RefCell<HashMap<i32, PathBuf>>,
    /// Counts invalidations: a lookup that saw it change while it ran is not kept.
    epoch: Cell<u64>,
    inotify: Option<Arc<AsyncFd<OwnedFd>>>,
    /// Names whose change means a root's manifest must be read again: (mount, path).
    pub(crate) manifests: RefCell<Vec<(usize, PathBuf)>>,
    /// Set when a manifest changed; the layer reloads it.
    pub(crate) manifest_dirty: RefCell<Vec<usize>>,
    /// Each root's name in its parent directory's watch: a change there (the root renamed,
    /// replaced, a symlink to it flipped) changes every file under it.
    roots: RefCell<Vec<Dep>>,
}

const WATCH_MASK: inotify::WatchFlags = inotify::WatchFlags::CLOSE_WRITE
    .union(inotify::WatchFlags::MODIFY)
    .union(inotify::WatchFlags::ATTRIB)
    .union(inotify::WatchFlags::MOVED_FROM)
    .union(inotify::WatchFlags::MOVED_TO)
    .union(inotify::WatchFlags::CREATE)
    .union(inotify::WatchFlags::DELETE)
    .union(inotify::WatchFlags::DELETE_SELF)
    .union(inotify::WatchFlags::MOVE_SELF);

impl Cache {
    /// A cache. Without inotify (unavailable, or out of instances) nothing is kept: every
    /// request looks the file up again, which is correct, only slower.
    pub(crate) fn new(mounts: usize) -> Cache {
        let inotify =
            match inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                .map_err(io::Error::from)
                .and_then(register)
            {
                Ok(fd) => Some(Arc::new(fd)),
                Err(e) => {
                    crate::log::warn(format_args!(
                    "static files: cannot watch for changes ({e}); every request reads the disk"
                ));
                    None
                }
            };
        Cache {
            entries: RefCell::new(vec![HashMap::new(); mounts]),
            bytes: Cell::new(0),
            deps: RefCell::default(),
            watched: RefCell::default(),
            epoch: Cell::new(0),
            inotify,
            manifests: RefCell::default(),
            manifest_dirty: RefCell::default(),
            roots: RefCell::default(),
        }
    }

    /// Watch a root and the name it has in its parent (at start: may block).
    pub(crate) fn watch_root(&self, root: &Path) {
        self.watch_now(root);
        let (Some(fd), Some(parent), Some(name)) = (&self.inotify, root.parent(), root.file_name())
        else {
            return;
        };
        if let Ok(wd) = inotify::add_watch(fd.get_ref(), parent, WATCH_MASK) {
            self.watched.borrow_mut().insert(wd, parent.to_path_buf());
            self.roots.borrow_mut().push((wd, name.as_bytes().into()));
        }
    }

    /// Watch a directory now (at start, for the roots: may block).
    pub(crate) fn watch_now(&self, dir: &Path) {
        if let Some(fd) = &self.inotify {
            if let Ok(wd) = inotify::add_watch(fd.get_ref(), dir, WATCH_MASK) {
                self.watched.borrow_mut().insert(wd, dir.to_path_buf());
            }
        }
    }

    /// Apply whatever changes the kernel has reported since the last look. No system call
    /// unless the reactor has seen the queue readable.
    fn refresh(&self) {
        let Some(fd) = &self.inotify else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(mut ready)) = fd.poll_read_ready(&mut cx) else {
            return;
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(fd.get_ref(), &mut buf);
        let mut drop_all = false;
        let mut names: Vec<(i32, Box<[u8]>)> = Vec::new();
        loop {
            match reader.next() {
                Ok(ev) => {
                    let mask = ev.events();
                    if mask.intersects(
                        inotify::ReadFlags::QUEUE_OVERFLOW
                            | inotify::ReadFlags::ISDIR
                            | inotify::ReadFlags::DELETE_SELF
                            | inotify::ReadFlags::MOVE_SELF
                            | inotify::ReadFlags::IGNORED,
                    ) {
                        drop_all = true;
                        continue;
                    }
                    if let Some(name) = ev.file_name() {
                        names.push((ev.wd(), name.to_bytes().into()));
                    }
                }
                Err(rustix::io::Errno::AGAIN) => {
                    ready.clear_ready();
                    break;
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    ready.clear_ready();
                    drop_all = true;
                    break;
                }
            }
        }
        self.epoch.set(self.epoch.get() + 1);
        self.note_manifests(&names);
        if !drop_all {
            let roots = self.roots.borrow();
            drop_all = names.iter().any(|n| roots.contains(n));
        }
        if drop_all {
            self.clear();
            return;
        }
        let mut entries = self.entries.borrow_mut();
        let mut deps = self.deps.borrow_mut();
        for (wd, name) in names {
            for key in [Some(name.clone()), strip_variant(&name)]
                .into_iter()
                .flatten()
            {
                if let Some(keys) = deps.remove(&(wd, key)) {
                    for (mount, rel) in keys {
                        let removed = entries.get_mut(mount).and_then(|m| m.remove(&rel));
                        if let Some(e) = removed {
                            self.bytes
                                .set(self.bytes.get().saturating_sub(cached_bytes(&e)));
                        }
                    }
                }
            }
        }
    }

    fn note_manifests(&self, names: &[(i32, Box<[u8]>)]) {
        let manifests = self.manifests.borrow();
        if manifests.is_empty() {
            return;
        }
        let watched = self.watched.borrow();
        for (wd, name) in names {
            let Some(dir) = watched.get(wd) else { continue };
            let path = dir.join(OsStr::from_bytes(name));
            for (mount, manifest) in manifests.iter() {
                if *manifest == path {
                    self.manifest_dirty.borrow_mut().push(*mount);
                }
            }
        }
    }

    /// Forget everything (the watches stay: they cost nothing while nothing changes).
    pub(crate) fn clear(&self) {
        for m in self.entries.borrow_mut().iter_mut() {
            m.clear();
        }
        self.deps.borrow_mut().clear();
        self.bytes.set(0);
        self.epoch.set(self.epoch.get() + 1);
    }

    /// The cached entry for `rel` under mount `mount`, after applying pending changes.
    pub(crate) fn get(&self, mount: usize, rel: &Path) -> Option<Rc<Entry>> {
        self.refresh();
        self.inotify.as_ref()?;
        self.entries
            .borrow()
            .get(mount)?
            .get(rel.as_os_str().as_bytes())
            .cloned()
    }

    /// Look `rel` up on the blocking pool, then keep what was found if nothing changed
    /// meanwhile.
    pub(crate) async fn lookup(
        self: &Rc<Self>,
        mount: usize,
        root: &Root,
        rel: &Path,
        index: Option<&str>,
        rules: OpenRules,
    ) -> Found {
        let epoch = self.epoch.get();
        let job = Lookup {
            root_dir: None,
            root_path: root.path.clone(),
            rel: rel.to_path_buf(),
            index: index.map(str::to_owned),
            rules,
            inotify: self.inotify.clone(),
        };
        let done = match tokio::task::spawn_blocking(move || job.run()).await {
            Ok(done) => done,
            Err(_) => return Found::Refused,
        };
        // Changes reported while the lookup ran: apply them, then judge whether it raced.
        self.refresh();
        let fresh = self.epoch.get() == epoch && self.inotify.is_some();
        {
            let mut watched = self.watched.borrow_mut();
            for (wd, dir) in &done.watches {
                watched.insert(*wd, dir.clone());
            }
        }
        match done.found {
            Looked::File(entry) => {
                let entry = Rc::new(*entry);
                if fresh {
                    self.keep(mount, rel, &entry, &done.deps);
                }
                Found::File(entry)
            }
            Looked::Dir { index } => Found::Dir { index },
            Looked::Missing => Found::Missing,
            Looked::Refused => Found::Refused,
        }
    }

    fn keep(&self, mount: usize, rel: &Path, entry: &Rc<Entry>, deps: &[(i32, Box<[u8]>)]) {
        let size = cached_bytes(entry);
        let count: usize = self.entries.borrow().iter().map(HashMap::len).sum();
        if count >= MAX_ENTRIES || self.bytes.get() + size > MAX_BYTES {
            self.clear();
        }
        let rel: Box<[u8]> = rel.as_os_str().as_bytes().into();
        let key = (mount, rel.clone());
        let mut dep_map = self.deps.borrow_mut();
        for dep in deps {
            dep_map.entry(dep.clone()).or_default().push(key.clone());
        }
        self.bytes.set(self.bytes.get() + size);
        if let Some(m) = self.entries.borrow_mut().get_mut(mount) {
            m.insert(rel, entry.clone());
        }
    }
}

fn cached_bytes(e: &Entry) -> usize {
    [Some(&e.identity), e.br.as_ref(), e.gz.as_ref()]
        .into_iter()
        .flatten()
        .map(|r| r.bytes.as_ref().map_or(0, Bytes::len) + 256)
        .sum()
}

/// Register the inotify descriptor with the reactor (for its readiness only).
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, which stays open and is the same
    // descriptor for as long as the AsyncFd lives (nothing else closes or replaces it).
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// `NAME.br` / `NAME.gz` → `NAME`: a change to a variant concerns its file's entry.
fn strip_variant(name: &[u8]) -> Option<Box<[u8]>> {
    name.strip_suffix(b".br")
        .or_else(|| name.strip_suffix(b".gz"))
        .map(Into::into)
}

/// A lookup, run on the blocking pool.
struct Lookup {
    /// The root, opened by the lookup itself.
    root_dir: Option<OwnedFd>,
    root_path: PathBuf,
    rel: PathBuf,
    index: Option<String>,
    rules: OpenRules,
    inotify: Option<Arc<AsyncFd<OwnedFd>>>,
}

enum Looked {
    File(Box<Entry>),
    Dir { index: bool },
    Missing,
    Refused,
}

struct Done {
    found: Looked,
    /// Watches added, and the directories they are on.
    watches: Vec<(i32, PathBuf)>,
    /// (watch, name) pairs whose change invalidates the entry.
    deps: Vec<(i32, Box<[u8]>)>,
}

impl Lookup {
    fn run(mut self) -> Done {
        let mut done = Done {
            found: Looked::Missing,
            watches: Vec::new(),
            deps: Vec::new(),
        };
        // Watch first, then look: a change after the look is then surely reported.
        self.watch_path(&self.rel, &mut done);
        match open_dir(&self.root_path) {
            Ok(dir) => self.root_dir = Some(dir),
            Err(_) => return done,
        }
        done.found = match self.open(&self.rel) {
            Opened::File(file, meta) => self.entry(file, &meta, &self.rel, &mut done),
            Opened::Dir => match &self.index {
                Some(index) => {
                    let inner = self.rel.join(index);
                    Looked::Dir {
                        index: matches!(self.open(&inner), Opened::File(..)),
                    }
                }
                None => Looked::Dir { index: false },
            },
            Opened::Missing => Looked::Missing,
            Opened::Refused => Looked::Refused,
        };
        done
    }

    /// Watch every directory from the root down to `rel`'s parent, and note that `rel`'s
    /// name in its directory is what the entry depends on.
    fn watch_path(&self, rel: &Path, done: &mut Done) {
        let Some(fd) = &self.inotify else {
            return;
        };
        let mut dir = self.root_path.clone();
        let mut parts = rel.components().peekable();
        let mut wd = self.add_watch(fd, &dir, done);
        while let Some(part) = parts.next() {
            let Component::Normal(name) = part else {
                return;
            };
            if let Some(wd) = wd {
                done.deps.push((wd, name.as_bytes().into()));
            }
            if parts.peek().is_none() {
                break;
            }
            dir.push(name);
            wd = self.add_watch(fd, &dir, done);
        }
    }

    fn add_watch(&self, fd: &AsyncFd<OwnedFd>, dir: &Path, done: &mut Done) -> Option<i32> {
        let wd = inotify::add_watch(fd.get_ref(), dir, WATCH_MASK).ok()?;
        done.watches.push((wd, dir.to_path_buf()));
        Some(wd)
    }

    /// The entry for an open regular file, with its variants.
    fn entry(&self, file: OwnedFd, meta: &rustix::fs::Stat, rel: &Path, done: &mut Done) -> Looked {
        // A symlink may have led to another directory: watch the file where it lives.
        if let Some(fd) = &self.inotify {
            if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
                if let (Some(parent), Some(name)) = (real.parent(), real.file_name()) {
                    if let Some(wd) = self.add_watch(fd, parent, done) {
                        done.deps.push((wd, name.as_bytes().into()));
                    }
                }
            }
        }
        let identity = rep(file, meta, "");
        let variant = |ext: &str, suffix: &str| {
            let mut name = rel.as_os_str().to_owned();
            name.push(ext);
            match self.open(Path::new(&name)) {
                // A variant older than its file was made from an earlier version: not sent.
                Opened::File(f, m) if mtime(&m) >= identity.validators.last_modified => {
                    Some(rep(f, &m, suffix))
                }
                _ => None,
            }
        };
        let br = variant(".br", "-br");
        let gz = variant(".gz", "-gz");
        Looked::File(Box::new(Entry { identity, br, gz }))
    }

    /// Open `rel` under the root, by the rules: never through a symlink leading out of the
    /// root unless allowed. O_NONBLOCK, so a FIFO planted in the tree cannot hang the pool.
    fn open(&self, rel: &Path) -> Opened {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let Some(root_dir) = &self.root_dir else {
            return Opened::Missing;
        };
        let res = if self.rules.follow_symlinks {
            rustix::fs::openat(root_dir.as_fd(), rel, flags, Mode::empty())
        } else {
            match rustix::fs::openat2(
                root_dir.as_fd(),
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(rustix::io::Errno::NOSYS) => self.open_checked(rel, flags),
                other => other,
            }
        };
        let fd = match res {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Opened::Missing,
            Err(_) => return Opened::Refused,
        };
        let Ok(meta) = rustix::fs::fstat(&fd) else {
            return Opened::Refused;
        };
        match rustix::fs::FileType::from_raw_mode(meta.st_mode) {
            rustix::fs::FileType::RegularFile => Opened::File(fd, meta),
            rustix::fs::FileType::Directory => Opened::Dir,
            _ => Opened::Refused,
        }
    }

    /// Without openat2(2) (Linux before 5.6): open by the resolved path and check it lies
    /// under the root.
    fn open_checked(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let full = self.root_path.join(rel);
        let real = std::fs::canonicalize(&full).map_err(|e| {
            rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::NOENT)
        })?;
        let root = std::fs::canonicalize(&self.root_path).map_err(|_| rustix::io::Errno::NOENT)?;
        if !real.starts_with(&root) {
            return Err(rustix::io::Errno::XDEV);
        }
        rustix::fs::open(&real, flags, Mode::empty())
    }
}

enum Opened {
    File(OwnedFd, rustix::fs::Stat),
    Dir,
    Missing,
    Refused,
}

fn mtime(meta: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(meta.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(meta.st_mtime_nsec).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn rep(fd: OwnedFd, meta: &rustix::fs::Stat, suffix: &str) -> Rep {
    let len = u64::try_from(meta.st_size).unwrap_or(0);
    let modified = mtime(meta);
    let file = File::from(fd);
    let bytes = (len <= SMALL_FILE)
        .then(|| read_whole(&file, len))
        .flatten();
    Rep {
        file: Arc::new(file),
        len,
        last_modified: http_date(modified),
        validators: Validators {
            etag: ETag::from_metadata(modified, len, suffix),
            last_modified: modified,
        },
        bytes,
    }
}

/// The whole of a small file, or `None` if it did not read as `len` bytes (it is changing:
/// then it is sent from the descriptor and the change's event drops the entry).
fn read_whole(file: &File, len: u64) -> Option<Bytes> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(len).ok()?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(Bytes::from(buf))
}
