//! `--reload`: the master watches the project's source files (for Python, `*.py`: the
//! program says which, [`Watch`]) with inotify and reloads the
//! workers (as SIGHUP does) when one changes. For development.
//!
//! It owns the inotify descriptor, the table of watched directories, and the debounce:
//! changes are gathered until nothing has changed for [`QUIET`] (an editor's save is often
//! several events: write a temporary file, rename it over the old one), and at most for
//! [`MAX_DELAY`] (a tool writing without pause still gets its reload). The master polls the
//! descriptor beside its signal pipe and asks [`Reloader::due`] after each wake-up.
//!
//! Directories are watched, never files: an editor that saves by renaming a new file over
//! the old one replaces the inode, which would end a watch on the file. What is watched:
//! - the project directory (the current directory, which `--chdir` set) and every
//!   directory under it, except the ones [`ignored`] names (caches, version control,
//!   virtualenvs, build output); a source file there counts. Directories created later are
//!   added as they appear.
//! - the directory of the application module's file and of each `--reload-extra-file`,
//!   where only that exact name counts.
//!
//! Watching a large tree stays bounded: at most [`MAX_DIRS`] directories (a warning names
//! the limit when more were left out), walked breadth-first so the top of the tree is
//! watched first; the kernel's own limit (`fs.inotify.max_user_watches`) is reported the
//! same way. The master is not slowed by the tree's size afterwards: inotify only reports
//! what changed.
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourbon_config::Config;
use bourbon_server::log;

/// How long nothing must change before the reload happens.
const QUIET: Duration = Duration::from_millis(200);
/// The longest a change waits for the quiet period.
const MAX_DELAY: Duration = Duration::from_secs(2);
/// The most directories watched.
const MAX_DIRS: usize = 10_000;
/// Changed files named in the log per reload; more are counted.
const MAX_NAMED: usize = 8;
/// Reads of the descriptor per wake-up, so a storm of events cannot hold the master.
const MAX_READS: usize = 64;

/// What a directory watch is for.
const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_CREATE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// Events that mean a file's content changed (or the file came or went).
const CHANGED: u32 =
    libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;

/// One watched directory.
struct Dir {
    path: PathBuf,
    /// Part of the project tree: every source file counts and new subdirectories are added.
    tree: bool,
    /// Names that count here whatever their suffix (the app module, extra files).
    files: HashSet<OsString>,
}

/// Changes seen and not yet acted on.
struct Pending {
    first: Instant,
    last: Instant,
    change: Change,
}

/// What changed, for the log.
#[derive(Default)]
pub struct Change {
    /// The first few changed files, in order.
    named: Vec<PathBuf>,
    /// Every distinct changed file (bounded: beyond it files are only counted once each
    /// time they are seen, which only matters for the number in the log).
    seen: HashSet<PathBuf>,
    total: usize,
}

/// The most distinct files remembered per reload.
const MAX_SEEN: usize = 100_000;

/// How long after `now` changes seen first at `first` and last at `last` are due: after
/// [`QUIET`] without a change, and at most [`MAX_DELAY`] after the first.
pub fn due_in(first: Instant, last: Instant, now: Instant) -> Duration {
    (last + QUIET)
        .min(first + MAX_DELAY)
        .saturating_duration_since(now)
}

/// What the program asks `--reload` to watch beyond the project directory and
/// `--reload-extra-file`.
pub struct Watch {
    /// Files (the application's module), each watched by its exact name.
    pub files: Vec<PathBuf>,
    /// The extension of the project's source files (`py`): a change to such a file
    /// anywhere in the project tree reloads.
    pub source_extension: &'static str,
}

/// The master's file watcher.
pub struct Reloader {
    fd: RawFd,
    /// The process that created the descriptor, the only one that closes it on drop (a
    /// forked worker closes its copy at once with [`Reloader::close_in_child`]).
    owner: u32,
    dirs: HashMap<libc::c_int, Dir>,
    /// Whether the directory limit was already reported.
    warned: bool,
    pending: Option<Pending>,
    /// The extra files it was started with, to know on SIGHUP whether to start anew.
    extra: Vec<PathBuf>,
    /// The extension that makes a file in the project tree count.
    source_extension: &'static OsStr,
}

impl Change {
    fn add(&mut self, path: PathBuf) {
        if self.seen.contains(&path) {
            return;
        }
        self.total += 1;
        if self.named.len() < MAX_NAMED {
            self.named.push(path.clone());
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(path);
        }
    }

    /// Log the reload, gunicorn's way: one line per changed file (the first few).
    pub fn announce(&self) {
        for f in &self.named {
            log::info(format_args!("Worker reloading: {} modified", f.display()));
        }
        if self.total > self.named.len() {
            log::info(format_args!(
                "Worker reloading: {} more files modified",
                self.total - self.named.len()
            ));
        }
    }
}

/// Directory names never watched: caches, version control, virtualenvs, build output and
/// JavaScript dependencies. None holds the project's own code, and some are huge.
pub fn ignored(name: &OsStr, path: &Path) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    matches!(
        name,
        "__pycache__" | ".git" | ".hg" | ".svn" | "node_modules" | "target" | ".tox" | ".nox"
    ) || name.starts_with(".venv")
        || (name.starts_with('.') && name.ends_with("_cache"))
        || path.join("pyvenv.cfg").exists()
}

impl Reloader {
    /// Start watching for `cfg` (the process is already in the project directory); `None`,
    /// after logging why, when inotify is not available.
    /// `watch` is what the program adds (see [`Watch`]).
    pub fn start(cfg: &Config, watch: &Watch) -> Option<Reloader> {
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            log::error(format_args!(
                "reload: cannot watch files (inotify): {}; reloading is off",
                std::io::Error::last_os_error()
            ));
            return None;
        }
        let mut r = Reloader {
            fd,
            owner: std::process::id(),
            dirs: HashMap::new(),
            warned: false,
            pending: None,
            extra: cfg.reload_extra_file.clone(),
            source_extension: OsStr::new(watch.source_extension),
        };
        let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        r.add_tree(&root);
        for f in &watch.files {
            r.add_file(f);
        }
        for f in &cfg.reload_extra_file {
            r.add_file(&root.join(f));
        }
        let n = r.dirs.len();
        log::info(format_args!(
            "reload: watching {n} director{} under {} for changes",
            if n == 1 { "y" } else { "ies" },
            root.display()
        ));
        Some(r)
    }

    /// The descriptor the master polls.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Whether these settings ask for the same watch as this one.
    pub fn same_files(&self, cfg: &Config) -> bool {
        self.extra == cfg.reload_extra_file
    }

    /// In a freshly forked worker: close the inherited descriptor (the worker never reads
    /// it, and its events must all go to the master).
    pub fn close_in_child(&self) {
        // SAFETY: closing our copy of a descriptor this process inherited and never uses;
        // `Drop` does not close it again in this process (it is not the owner).
        unsafe {
            libc::close(self.fd);
        }
    }

    /// How long until the pending changes are due; `None` when there are none.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.pending.as_ref().map(|p| due_in(p.first, p.last, now))
    }

    /// What changed, once it is due.
    pub fn due(&mut self, now: Instant) -> Option<Change> {
        if self.wait(now)? > Duration::ZERO {
            return None;
        }
        self.pending.take().map(|p| p.change)
    }

    /// Read every event waiting on the descriptor; an error other than "nothing more to
    /// read" means the watcher is broken (the master then drops it rather than spin).
    pub fn read(&mut self) -> std::io::Result<()> {
        // u64 elements so the buffer is aligned for the event headers.
        let mut buf = [0u64; 1024];
        let size = std::mem::size_of_val(&buf);
        for _ in 0..MAX_READS {
            // SAFETY: reading into our own buffer, at most its size.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), size) };
            let Ok(n) = usize::try_from(n) else {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(err),
                };
            };
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the first `n` bytes of `buf` were just written by read(2); u8 has no
            // alignment or validity requirements.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            self.parse(bytes);
        }
        Ok(())
    }

    fn parse(&mut self, bytes: &[u8]) {
        let head = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0;
        while at + head <= bytes.len() {
            // SAFETY: `head` bytes are in bounds from `at`; read_unaligned makes no
            // alignment assumption, and every bit pattern is a valid inotify_event.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(at).cast()) };
            let len = usize::try_from(ev.len).unwrap_or(0);
            let end = (at + head + len).min(bytes.len());
            let raw = &bytes[at + head..end];
            let name = OsStr::from_bytes(raw.split(|&b| b == 0).next().unwrap_or(&[]));
            self.event(ev.wd, ev.mask, name);
            at = end;
        }
    }

    fn event(&mut self, wd: libc::c_int, mask: u32, name: &OsStr) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost; one of them may have been a change.
            log::warn(format_args!("reload: too many changes at once; reloading"));
            let root = std::env::current_dir().unwrap_or_default();
            self.note(root);
            return;
        }
        if mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&wd);
            return;
        }
        if mask & libc::IN_MOVE_SELF != 0 {
            // Its path is stale now; if it moved within the tree, its new parent reports
            // it and it is added again under its new name.
            // SAFETY: removing a watch of our own descriptor; IN_IGNORED follows.
            unsafe {
                libc::inotify_rm_watch(self.fd, wd);
            }
            return;
        }
        let Some(dir) = self.dirs.get(&wd) else {
            return;
        };
        let path = dir.path.join(name);
        if mask & libc::IN_ISDIR != 0 {
            let added = mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0;
            if added && dir.tree && !ignored(name, &path) {
                log::debug(format_args!(
                    "reload: watching new directory {}",
                    path.display()
                ));
                self.add_tree(&path);
            }
            return;
        }
        if mask & CHANGED == 0 {
            return;
        }
        let counts = (dir.tree && Path::new(name).extension() == Some(self.source_extension))
            || dir.files.contains(name);
        if counts {
            self.note(path);
        }
    }

    fn note(&mut self, path: PathBuf) {
        let now = Instant::now();
        let p = self.pending.get_or_insert_with(|| Pending {
            first: now,
            last: now,
            change: Change::default(),
        });
        p.last = now;
        p.change.add(path);
    }

    /// Watch `root` and the directories under it, breadth-first, within the limit.
    fn add_tree(&mut self, root: &Path) {
        let mut queue = VecDeque::from([root.to_path_buf()]);
        while let Some(dir) = queue.pop_front() {
            if !self.add_dir(&dir, true, None) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // file_type() does not follow symbolic links, so a link cannot loop.
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let path = entry.path();
                if is_dir && !ignored(&entry.file_name(), &path) {
                    queue.push_back(path);
                }
            }
        }
    }

    /// Watch the directory of `file` for that name.
    fn add_file(&mut self, file: &Path) {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return;
        };
        if !dir.is_dir() {
            log::warn(format_args!(
                "reload: cannot watch {}: {} is not a directory",
                file.display(),
                dir.display()
            ));
            return;
        }
        self.add_dir(dir, false, Some(name));
    }

    /// Add (or extend) a watch; false once no more can be added.
    fn add_dir(&mut self, dir: &Path, tree: bool, name: Option<&OsStr>) -> bool {
        if self.dirs.len() >= MAX_DIRS && !self.dirs.values().any(|d| d.path == dir) {
            self.limit(format_args!(
                "only the first {MAX_DIRS} directories are watched"
            ));
            return false;
        }
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return true;
        };
        // SAFETY: a NUL-terminated path we own, and our own inotify descriptor.
        let wd = unsafe { libc::inotify_add_watch(self.fd, c.as_ptr(), MASK) };
        if wd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOSPC) {
                self.limit(format_args!(
                    "the system's limit on watches was reached \
                     (raise fs.inotify.max_user_watches)"
                ));
                return false;
            }
            // Gone meanwhile, or not readable: nothing to watch there.
            log::debug(format_args!(
                "reload: cannot watch {}: {err}",
                dir.display()
            ));
            return true;
        }
        // Watching a directory twice gives the same descriptor: merge what it is for.
        let entry = self.dirs.entry(wd).or_insert_with(|| Dir {
            path: dir.to_path_buf(),
            tree: false,
            files: HashSet::new(),
        });
        entry.tree |= tree;
        if let Some(n) = name {
            entry.files.insert(n.to_os_string());
        }
        true
    }

    fn limit(&mut self, why: std::fmt::Arguments<'_>) {
        if !self.warned {
            self.warned = true;
            log::warn(format_args!(
                "reload: {why}; changes elsewhere are not seen \
                 (a large tree? see the ignored directories in docs/settings.md)"
            ));
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            // SAFETY: closing the descriptor this process created and owns.
            unsafe {
                libc::close(self.fd);
            }
        }
    }
}
