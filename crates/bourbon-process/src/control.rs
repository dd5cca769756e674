//! The master's control socket: a unix socket on which it answers `bourbon status` and
//! `bourbon top` with a snapshot of its workers, and the client's side of finding and
//! reading it.
//!
//! It owns the socket's life (where it lives, its mode, its removal), the protocol and the
//! snapshot's JSON schema (documented in `docs/status.md`). What goes into a snapshot is
//! gathered by the master's loop (`master/run.rs`), which knows the workers and their slots.
//!
//! The protocol is one-way: a client connects, and the master writes one JSON document
//! and closes the connection. The client sends nothing, so the master never waits to read.
//!
//! The master is single-threaded and supervision must not wait for a client: the listening
//! socket and every connection are non-blocking, polled from the master's own loop; a reply
//! is written as far as the client's socket takes it, the rest at the next wake-up; a client
//! that has not taken its whole reply within [`CLIENT_TIME`] is dropped, at most
//! [`MAX_CLIENTS`] are served at once (more are closed at once), and a reply is at most
//! [`MAX_REPLY`] bytes (the calls listed per worker are capped to stay under it).
//!
//! Who may read: the socket file is made 0600 by the user the master runs as (after
//! `--user`/`--group`), under a name it then renames into place, and each connection's
//! peer credentials (`SO_PEERCRED`) must be that user's or root's.
#![allow(unsafe_code)]

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourbon_config::ControlSocket;
use bourbon_server::log;

/// How long a client has to take its whole reply.
pub const CLIENT_TIME: Duration = Duration::from_secs(2);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// The largest reply the master writes.
pub const MAX_REPLY: usize = 1 << 20;
/// The calls listed per worker, at most (a worker has one per thread).
pub const MAX_CALLS: usize = 64;
/// The largest reply a client reads.
const CLIENT_MAX: u64 = 4 * MAX_REPLY as u64;

/// The version of the snapshot's schema (`"schema"`); it grows only by new keys.
pub const SCHEMA: u64 = 1;

/// The euid of this process.
fn euid() -> u32 {
    // SAFETY: geteuid only reads a process attribute.
    unsafe { libc::geteuid() }
}

/// The directories a master puts its socket in by default, first the preferred one:
/// `$XDG_RUNTIME_DIR/bourbon` when that directory is the user's, and `/tmp/bourbon-UID`.
fn default_dirs(uid: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        let xdg = PathBuf::from(xdg);
        if std::fs::metadata(&xdg).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
            dirs.push(xdg.join("bourbon"));
        }
    }
    dirs.push(PathBuf::from(format!("/tmp/bourbon-{uid}")));
    dirs
}

/// Make `dir` (mode 0700) or check that it is a directory of ours that no one else can
/// write into (a user must not be able to put a socket where `bourbon status` would trust
/// it).
fn private_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(std::io::Error::other(format!(
            "{} exists and is not a directory owned by uid {uid}",
            dir.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Where this master's socket goes for `setting` (`None`: off).
fn server_path(setting: &ControlSocket) -> std::io::Result<Option<PathBuf>> {
    match setting {
        ControlSocket::Off => Ok(None),
        ControlSocket::Path(p) => Ok(Some(p.clone())),
        ControlSocket::Default => {
            let uid = euid();
            let dir = default_dirs(uid)
                .into_iter()
                .next()
                .ok_or_else(|| std::io::Error::other("no directory"))?;
            private_dir(&dir, uid)?;
            Ok(Some(dir.join(format!("{}.sock", std::process::id()))))
        }
    }
}

/// One client being answered.
struct Client {
    stream: UnixStream,
    reply: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// The master's control socket. Dropping it in the master removes the file, unless another
/// master has put its own there since (a USR2 upgrade with a fixed `--control-socket`).
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode, to tell it from a newer master's.
    file: (u64, u64),
    /// The master's pid: a forked worker that drops this does not remove the file.
    owner: u32,
    clients: Vec<Client>,
}

impl Control {
    /// Create the socket for `setting`; `None` when it is off or cannot be made (logged with
    /// the setting to change: the server runs without it).
    pub fn open(setting: &ControlSocket) -> Option<Control> {
        let path = match server_path(setting) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                log::warn(format_args!(
                    "control socket: {e}; `bourbon status` will not reach this server \
                     (set --control-socket PATH, or --control-socket off)"
                ));
                return None;
            }
        };
        match Control::bind(&path) {
            Ok(c) => {
                log::debug(format_args!("control socket at {}", path.display()));
                Some(c)
            }
            Err(e) => {
                log::warn(format_args!(
                    "control socket: cannot create {}: {e}; `bourbon status` will not reach \
                     this server (set --control-socket PATH to a writable place, or \
                     --control-socket off)",
                    path.display()
                ));
                None
            }
        }
    }

    /// Bind under a temporary name, make it 0600, then rename it into place: the socket is
    /// never reachable at `path` with a wider mode, and an older master's socket there is
    /// replaced at once.
    fn bind(path: &Path) -> std::io::Result<Control> {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the path names no file"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        listener.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Control {
            listener,
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            owner: std::process::id(),
            clients: Vec::new(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the socket again at the same path (a new master of a USR2 upgrade took the
    /// path, then exited and removed it: this master serves on).
    pub fn rebind(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file) {
            return;
        }
        match Control::bind(&self.path) {
            Ok(new) => *self = new,
            Err(e) => log::warn(format_args!(
                "control socket: cannot create {} again: {e}",
                self.path.display()
            )),
        }
    }

    /// The descriptors the master's wait should wake for: the listener while there is room
    /// for a client, every client with a reply left to write.
    pub fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut fds = Vec::with_capacity(self.clients.len() + 1);
        fds.push(libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(self.clients.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }));
        fds
    }

    /// The longest the master may wait before it must drop a slow client.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.clients
            .iter()
            .map(|c| c.deadline.saturating_duration_since(now))
            .min()
    }

    /// Accept whoever connected, and write as much of each reply as the clients take,
    /// without waiting. `snapshot` is called at most once, when a client was accepted.
    pub fn serve(&mut self, now: Instant, snapshot: &mut dyn FnMut() -> Vec<u8>) {
        let mut reply: Option<Vec<u8>> = None;
        // Bounded: at most the room left plus one refusal per call; the rest wait in the
        // backlog for the next turn.
        for _ in 0..MAX_CLIENTS + 1 {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug(format_args!("control socket: accept: {e}"));
                    break;
                }
            };
            if self.clients.len() >= MAX_CLIENTS || !allowed(&stream) {
                continue; // closed at once
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let reply = reply.get_or_insert_with(&mut *snapshot).clone();
            self.clients.push(Client {
                stream,
                reply,
                sent: 0,
                deadline: now + CLIENT_TIME,
            });
        }
        self.clients.retain_mut(|c| !c.write(now));
    }
}

impl Client {
    /// Write what the socket takes; `true` when this client is done (all sent, gone, or
    /// out of time).
    fn write(&mut self, now: Instant) -> bool {
        while self.sent < self.reply.len() {
            let rest = &self.reply[self.sent..];
            // SAFETY: send(2) reads `rest`, which we own, on a socket we own; MSG_NOSIGNAL
            // turns a client that went away into EPIPE instead of SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    ErrorKind::WouldBlock => now >= self.deadline,
                    ErrorKind::Interrupted => continue,
                    _ => true,
                };
            }
            self.sent += usize::try_from(n).unwrap_or(0);
        }
        true
    }
}

/// Whether the peer is the master's own user or root.
fn allowed(stream: &UnixStream) -> bool {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).unwrap_or(12);
    // SAFETY: getsockopt writes at most `len` bytes into the ucred we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    };
    rc == 0 && (cred.uid == 0 || cred.uid == euid())
}

impl Drop for Control {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return; // a forked worker: the file is the master's
        }
        // Only our own file: after a USR2 upgrade the path may hold the new master's.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

// ---- the snapshot ----

/// One call in progress.
pub struct CallInfo {
    pub line: String,
    pub age: Duration,
}

/// One worker, as `bourbon status` shows it.
pub struct WorkerInfo {
    pub pid: i32,
    pub id: u64,
    /// booting, idle, busy, stuck or draining.
    pub state: &'static str,
    pub age: Duration,
    pub requests: u64,
    pub rss_bytes: Option<u64>,
    /// "wsgi" or "asgi" once booted.
    pub interface: Option<&'static str>,
    /// Python threads calling the application now, and how many there are (WSGI).
    pub threads: Option<(usize, u32)>,
    /// Since the event loop last stamped its heartbeat.
    pub heartbeat_age: Duration,
    /// Oldest first, at most [`MAX_CALLS`].
    pub calls: Vec<CallInfo>,
}

/// The master, as `bourbon status` shows it.
pub struct MasterInfo {
    pub pid: u32,
    pub app: String,
    pub uptime: Duration,
    pub workers_target: usize,
    /// `--interface` as set (`auto` is decided by each worker).
    pub interface: String,
    pub threads: u32,
    pub timeout: Duration,
    pub stopping: bool,
}

fn secs(d: Duration) -> serde_json::Value {
    // Milliseconds are plenty for a view refreshed every second or so.
    serde_json::json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The snapshot as the JSON document the master sends (schema in `docs/status.md`). Past
/// [`MAX_REPLY`] bytes the calls in progress are left out, and `"truncated"` says so.
pub fn snapshot_json(master: &MasterInfo, workers: &[WorkerInfo]) -> Vec<u8> {
    let out = snapshot_with(master, workers, MAX_CALLS);
    if out.len() <= MAX_REPLY {
        return out;
    }
    snapshot_with(master, workers, 0)
}

fn snapshot_with(master: &MasterInfo, workers: &[WorkerInfo], max_calls: usize) -> Vec<u8> {
    use serde_json::json;
    let workers: Vec<serde_json::Value> = workers
        .iter()
        .map(|w| {
            json!({
                "pid": w.pid,
                "id": w.id,
                "state": w.state,
                "age_s": secs(w.age),
                "requests": w.requests,
                "rss_bytes": w.rss_bytes,
                "interface": w.interface,
                "threads": w.threads.map(|(busy, total)| json!({"busy": busy, "total": total})),
                "heartbeat_age_s": secs(w.heartbeat_age),
                "current": w.calls.iter().take(max_calls).map(|c| json!({
                    "request": c.line,
                    "age_s": secs(c.age),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = json!({
        "schema": SCHEMA,
        "server": "bourbon",
        "version": env!("CARGO_PKG_VERSION"),
        "master": {
            "pid": master.pid,
            "app": master.app,
            "uptime_s": secs(master.uptime),
            "workers_target": master.workers_target,
            "interface": master.interface,
            "threads": master.threads,
            "timeout_s": secs(master.timeout),
            "stopping": master.stopping,
        },
        "workers": workers,
        "truncated": max_calls < MAX_CALLS,
    });
    let mut out = serde_json::to_vec(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

// ---- the client ----

/// Why a client found no status to show.
#[derive(Debug)]
pub enum FindError {
    /// No server there (no socket, nobody listening, the pid not running).
    NoServer(String),
    /// A server is there but its status cannot be read (permissions, several candidates, a
    /// bad reply).
    Unknown(String),
}

impl std::fmt::Display for FindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FindError::NoServer(s) | FindError::Unknown(s) => f.write_str(s),
        }
    }
}

/// Where a client looks for the master.
#[derive(Clone, Debug, Default)]
pub struct Locator {
    /// `--control-socket PATH`.
    pub socket: Option<PathBuf>,
    /// `--pid FILE`.
    pub pid_file: Option<PathBuf>,
}

/// Every directory a master may have put its socket in by default, as seen by this user:
/// its own, and for root every user's (`docker exec` and `sudo` run as root while the
/// server may run as someone else).
fn client_dirs() -> Vec<PathBuf> {
    let uid = euid();
    let mut dirs = default_dirs(uid);
    if uid == 0 {
        for (parent, prefix, sub) in [
            ("/tmp", "bourbon-", None),
            ("/run/user", "", Some("bourbon")),
        ] {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten().take(10_000) {
                let name = e.file_name();
                if !name.to_string_lossy().starts_with(prefix) {
                    continue;
                }
                let dir = match sub {
                    Some(s) => e.path().join(s),
                    None => e.path(),
                };
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    dirs
}

/// Find the master's socket: `--control-socket`, else `PID.sock` in the default places for
/// the pid in `--pid`, else the only live socket in the default places.
pub fn find(loc: &Locator) -> Result<PathBuf, FindError> {
    if let Some(p) = &loc.socket {
        return Ok(p.clone());
    }
    if let Some(file) = &loc.pid_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            FindError::NoServer(format!(
                "no server: cannot read pid file {}: {e}",
                file.display()
            ))
        })?;
        let pid: u32 = text.trim().parse().map_err(|_| {
            FindError::NoServer(format!(
                "no server: pid file {} holds no process id",
                file.display()
            ))
        })?;
        for dir in client_dirs() {
            let p = dir.join(format!("{pid}.sock"));
            if p.exists() {
                return Ok(p);
            }
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(FindError::NoServer(format!(
                "no server: pid file {} names {pid}, which is not running",
                file.display()
            )));
        }
        return Err(FindError::NoServer(format!(
            "no server: master {pid} has no control socket in the default places \
             (if it was started with --control-socket PATH, pass the same --control-socket)"
        )));
    }
    let mut live = Vec::new();
    for dir in client_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten().take(10_000) {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".sock") {
                continue;
            }
            // A socket nobody listens on is a crashed master's: not a server.
            if UnixStream::connect(&p).is_ok() {
                live.push(p);
            }
        }
    }
    match live.len() {
        0 => Err(FindError::NoServer(
            "no server: no bourbon master's control socket found (give --control-socket PATH \
             or --pid FILE)"
                .to_owned(),
        )),
        1 => Ok(live.remove(0)),
        _ => Err(FindError::Unknown(format!(
            "several bourbon masters run; name one with --control-socket: {}",
            live.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Read one snapshot from the socket at `path`, within `timeout`.
pub fn fetch(path: &Path, timeout: Duration) -> Result<serde_json::Value, FindError> {
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            FindError::NoServer(format!("no server at {}: {e}", path.display()))
        }
        _ => FindError::Unknown(format!("cannot connect to {}: {e}", path.display())),
    })?;
    let _ = stream.set_read_timeout(Some(timeout));
    let mut buf = Vec::new();
    (&mut stream)
        .take(CLIENT_MAX)
        .read_to_end(&mut buf)
        .map_err(|e| FindError::Unknown(format!("reading {}: {e}", path.display())))?;
    if buf.is_empty() {
        return Err(FindError::Unknown(format!(
            "{} closed without a status (not allowed, or too many clients)",
            path.display()
        )));
    }
    serde_json::from_slice(&buf)
        .map_err(|e| FindError::Unknown(format!("bad status from {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bourbon-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_client_reads_the_snapshot_and_a_silent_one_is_dropped() {
        let dir = tmpdir("serve");
        let path = dir.join("c.sock");
        let mut ctl = Control::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A client that never reads, with a reply bigger than any socket buffer.
        let _silent = UnixStream::connect(&path).unwrap();
        let big = vec![b'x'; MAX_REPLY];
        let start = Instant::now();
        ctl.serve(start, &mut || big.clone());
        assert_eq!(ctl.clients.len(), 1);
        // Nothing waits on it: the master's turn returned, and its time runs out.
        ctl.serve(start + CLIENT_TIME, &mut || Vec::new());
        assert!(ctl.clients.is_empty());
        // A reading client gets a whole document.
        let reader = std::thread::spawn({
            let path = path.clone();
            move || fetch(&path, Duration::from_secs(5))
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        while !reader.is_finished() && Instant::now() < deadline {
            ctl.serve(Instant::now(), &mut || {
                n += 1;
                b"{\"schema\": 1}\n".to_vec()
            });
            std::thread::yield_now();
        }
        let v = reader.join().unwrap().unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(n, 1);
        drop(ctl);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newer_masters_socket_is_not_removed() {
        let dir = tmpdir("upgrade");
        let path = dir.join("c.sock");
        let mut old = Control::bind(&path).unwrap();
        let new = Control::bind(&path).unwrap();
        drop(old_take(&mut old));
        assert!(path.exists(), "the old master removed the new one's socket");
        drop(new);
        assert!(!path.exists());
        // Roll-back: the old master makes it again.
        old.rebind();
        assert!(path.exists());
        drop(old);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A second handle on the same file, as an old master would hold.
    fn old_take(c: &mut Control) -> Control {
        Control {
            listener: c.listener.try_clone().unwrap(),
            path: c.path.clone(),
            file: c.file,
            owner: c.owner,
            clients: Vec::new(),
        }
    }

    #[test]
    fn a_huge_snapshot_leaves_the_calls_out() {
        let master = MasterInfo {
            pid: 1,
            app: "a:b".into(),
            uptime: Duration::ZERO,
            workers_target: 1,
            interface: "wsgi".into(),
            threads: 64,
            timeout: Duration::ZERO,
            stopping: false,
        };
        let worker = |id| WorkerInfo {
            pid: 2,
            id,
            state: "busy",
            age: Duration::ZERO,
            requests: 0,
            rss_bytes: None,
            interface: Some("wsgi"),
            threads: Some((64, 64)),
            heartbeat_age: Duration::ZERO,
            calls: (0..100)
                .map(|_| CallInfo {
                    line: "x".repeat(200),
                    age: Duration::ZERO,
                })
                .collect(),
        };
        let small: serde_json::Value =
            serde_json::from_slice(&snapshot_json(&master, &[worker(1)])).unwrap();
        assert_eq!(
            small["workers"][0]["current"].as_array().unwrap().len(),
            MAX_CALLS
        );
        assert_eq!(small["truncated"], false);
        let many: Vec<WorkerInfo> = (0..200).map(worker).collect();
        let out = snapshot_json(&master, &many);
        assert!(out.len() <= MAX_REPLY);
        let big: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(big["truncated"], true);
        assert_eq!(big["workers"].as_array().unwrap().len(), 200);
        assert!(big["workers"][0]["current"].as_array().unwrap().is_empty());
    }

    #[test]
    fn missing_servers_are_told_apart() {
        let dir = tmpdir("find");
        let loc = Locator {
            socket: Some(dir.join("none.sock")),
            pid_file: None,
        };
        let p = find(&loc).unwrap();
        assert!(matches!(
            fetch(&p, Duration::from_secs(1)),
            Err(FindError::NoServer(_))
        ));
        let pid_file = dir.join("x.pid");
        std::fs::write(&pid_file, "999999999\n").unwrap();
        let loc = Locator {
            socket: None,
            pid_file: Some(pid_file),
        };
        assert!(matches!(find(&loc), Err(FindError::NoServer(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
