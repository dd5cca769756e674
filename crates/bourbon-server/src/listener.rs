//! Listening sockets: binding every `--bind` once, before any worker exists.
//!
//! This module owns turning bind specs into open, listening std sockets (TCP on IPv4/IPv6,
//! unix-domain sockets, inherited descriptors) and removing unix socket files at exit. It does
//! not accept connections: a worker turns these std listeners into tokio listeners after it has
//! built its runtime, so the same sockets can later be shared by forked workers (issue 4).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bourbon_config::Bind;
use socket2::{Domain, Socket, Type};

/// One bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket (IPv4 or IPv6).
    Tcp(std::net::TcpListener),
    /// A unix-domain socket; `path` is removed again when the listener is dropped.
    Unix {
        /// The listening socket.
        listener: StdUnixListener,
        /// The socket file we created.
        path: PathBuf,
        /// Whether we created the file and so must remove it (false for inherited fds).
        owned: bool,
    },
}

impl Listener {
    /// Another handle on the same listening socket (`dup(2)`), e.g. for a serving loop that
    /// must own its listeners. The copy never removes a unix socket's file.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix { listener, path, .. } => Listener::Unix {
                listener: listener.try_clone()?,
                path: path.clone(),
                owned: false,
            },
        })
    }

    /// A human-readable address, used in the "Listening at" log line.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "tcp:?".to_owned(),
            },
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }

    /// The local TCP address, if this is a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// The raw descriptor (for handing to workers and for tests).
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
        }
    }

    /// Stop listening in this process, at once: its descriptor is pointed at `/dev/null`.
    ///
    /// A stopping process must not keep a listening socket open: the kernel goes on
    /// completing handshakes into its queue, and those clients would wait for the whole drain
    /// and then be reset. Once no process of this server holds the socket, new connections
    /// are refused at once (or, with `SO_REUSEPORT`, go to another server on the same port);
    /// while a sibling worker or a new master (SIGUSR2) still holds it, they go there. The
    /// descriptor number stays taken (by `/dev/null`) until the listener is dropped, so the
    /// later close cannot hit a descriptor opened meanwhile by someone else. A unix socket's
    /// file stays until its owner drops the listener.
    pub fn close_here(&self) -> io::Result<()> {
        let null = std::fs::File::open("/dev/null")?;
        // SAFETY: dup2(2) onto a descriptor this listener owns; it atomically closes the
        // socket in this process and leaves the number valid (now /dev/null) for the owner.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::dup2(null.as_raw_fd(), self.raw_fd()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The process that bound (or was handed) the unix sockets it owns: only it removes their
/// files. Forked workers drop copies of the listeners when they exit, and a worker that
/// removed the file would leave the master listening on a socket nobody can reach.
static SOCKET_OWNER: AtomicU32 = AtomicU32::new(0);
/// Set while another server (a re-executed master, SIGUSR2) serves on these same sockets:
/// their files then stay when this process exits.
static KEEP_SOCKET_FILES: AtomicBool = AtomicBool::new(false);

/// Keep (true) or remove (false, the default) unix socket files when this process's
/// listeners are dropped. A master that handed its sockets to a new master keeps them.
pub fn keep_socket_files(keep: bool) {
    KEEP_SOCKET_FILES.store(keep, Ordering::Relaxed);
}

/// Make this process the one that removes the unix socket files at exit (after
/// daemonizing, the process that bound them is gone).
pub fn adopt_socket_files() {
    SOCKET_OWNER.store(std::process::id(), Ordering::Relaxed);
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix {
            path, owned: true, ..
        } = self
        {
            if SOCKET_OWNER.load(Ordering::Relaxed) != std::process::id()
                || KEEP_SOCKET_FILES.load(Ordering::Relaxed)
            {
                return;
            }
            // Removing the socket file at exit lets the next start bind without a stale file.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Bind every spec, in order. Any failure is returned with the spec that caused it.
pub fn bind_all(binds: &[Bind], backlog: u32) -> Result<Vec<Listener>, BindError> {
    bind_all_with(
        binds,
        BindOptions {
            backlog,
            reuse_port: false,
            unix_mode: None,
        },
    )
}

/// How sockets are bound.
#[derive(Clone, Copy, Debug)]
pub struct BindOptions {
    /// The `listen(2)` queue length.
    pub backlog: u32,
    /// Set `SO_REUSEPORT` on TCP sockets before binding (`--reuse-port`).
    pub reuse_port: bool,
    /// Give unix socket files this mode once bound (`--chmod-socket`); `None` leaves the
    /// mode the umask gave them.
    pub unix_mode: Option<u32>,
}

/// [`bind_all`] with every option.
pub fn bind_all_with(binds: &[Bind], opts: BindOptions) -> Result<Vec<Listener>, BindError> {
    binds
        .iter()
        .map(|b| {
            bind_with(b, opts).map_err(|source| BindError {
                spec: b.to_string(),
                source,
            })
        })
        .collect()
}

/// A bind that failed, naming the spec.
#[derive(Debug)]
pub struct BindError {
    spec: String,
    source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot bind {}: {}", self.spec, self.source)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn backlog_i32(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

/// Bind one spec.
pub fn bind(spec: &Bind, backlog: u32) -> io::Result<Listener> {
    bind_with(
        spec,
        BindOptions {
            backlog,
            reuse_port: false,
            unix_mode: None,
        },
    )
}

fn bind_with(spec: &Bind, opts: BindOptions) -> io::Result<Listener> {
    match spec {
        Bind::Tcp { host, port } => bind_tcp(host, *port, opts),
        Bind::Unix(path) => bind_unix(path, opts),
        Bind::Fd(fd) => from_fd(*fd),
    }
}

fn bind_tcp(host: &str, port: u16, opts: BindOptions) -> io::Result<Listener> {
    let mut last_err = None;
    for addr in (host, port).to_socket_addrs()? {
        match bind_tcp_addr(addr, opts) {
            Ok(l) => return Ok(Listener::Tcp(l)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::AddrNotAvailable, "host resolves to nothing")
    }))
}

fn bind_tcp_addr(addr: SocketAddr, opts: BindOptions) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT,
    // as every peer server does.
    socket.set_reuse_address(true)?;
    if opts.reuse_port {
        // Must be set before bind(2), on every socket that shares the port.
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // `[::]:port` should mean IPv6 only, so that `0.0.0.0:port` can be bound beside it.
        socket.set_only_v6(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog_i32(opts.backlog))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path, opts: BindOptions) -> io::Result<Listener> {
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    if let Some(mode) = opts.unix_mode {
        // Before listen(2): no client can connect while the file still has the umask's
        // mode. Connecting needs write permission on the socket file (unix(7)).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    socket.listen(backlog_i32(opts.backlog))?;
    socket.set_nonblocking(true)?;
    let fd: OwnedFd = socket.into();
    SOCKET_OWNER.store(std::process::id(), Ordering::Relaxed);
    Ok(Listener::Unix {
        listener: StdUnixListener::from(fd),
        path: path.to_owned(),
        owned: true,
    })
}

/// A socket file left by a server that died is removed; one that still has a live server
/// behind it is not (binding then fails with "address in use", which is the truth).
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_err() {
                std::fs::remove_file(path)?;
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "path exists and is not a socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[allow(unsafe_code)]
fn from_fd(fd: RawFd) -> io::Result<Listener> {
    // Validate before taking ownership: the fd must be an open, listening stream socket.
    // SAFETY: fcntl(F_GETFD) only inspects the descriptor table; an invalid fd yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and was handed to us by the user or the
    // service manager for exactly this purpose; from here on the Socket owns and closes it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    if !socket.is_listener()? {
        // Give the fd back to the caller's world: do not close what we did not accept.
        let _ = socket.into_raw_fd_leak();
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptor is not a listening socket",
        ));
    }
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    if local.is_unix() {
        let path = local
            .as_pathname()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let fd: OwnedFd = socket.into();
        Ok(Listener::Unix {
            listener: StdUnixListener::from(fd),
            path,
            owned: false,
        })
    } else {
        // As on the listeners we bind: connections accepted from it inherit TCP_NODELAY (on
        // Linux), which spares a system call per connection. Not fatal: without it they are
        // set one by one.
        let _ = socket.set_tcp_nodelay(true);
        Ok(Listener::Tcp(socket.into()))
    }
}

trait IntoRawFdLeak {
    fn into_raw_fd_leak(self) -> RawFd;
}

impl IntoRawFdLeak for Socket {
    fn into_raw_fd_leak(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self)
    }
}

/// Take over a listening socket inherited from the master that re-executed us (SIGUSR2).
/// With `owned`, a unix socket's file is removed when this process exits, as if it had
/// bound it itself; the file is never removed or re-created on the way in, so clients
/// keep connecting throughout.
pub fn inherit(fd: RawFd, owned: bool) -> io::Result<Listener> {
    let mut l = from_fd(fd)?;
    if let Listener::Unix { owned: o, path, .. } = &mut l {
        *o = owned && !path.as_os_str().is_empty();
        if *o {
            SOCKET_OWNER.store(std::process::id(), Ordering::Relaxed);
        }
    }
    Ok(l)
}

/// A systemd socket and its `FileDescriptorName=`, if it has one.
pub type NamedListener = (Listener, Option<String>);

/// [`systemd_listeners`], with the name systemd gave each socket (`LISTEN_FDNAMES`, from
/// `FileDescriptorName=`; `None` where none was given).
pub fn systemd_listeners_named() -> Option<io::Result<Vec<NamedListener>>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let listeners = systemd_listeners()?;
    Some(listeners.map(|ls| {
        ls.into_iter()
            .enumerate()
            .map(|(i, l)| {
                let name = names.get(i).filter(|n| !n.is_empty()).cloned();
                (l, name)
            })
            .collect()
    }))
}

/// Sockets passed by systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`, from fd 3), if
/// they are meant for this process. The variables are removed afterwards, as
/// sd_listen_fds(3) does, so that child processes do not take them for their own.
pub fn systemd_listeners() -> Option<io::Result<Vec<Listener>>> {
    let pid = std::env::var("LISTEN_PID").ok()?;
    let fds = std::env::var("LISTEN_FDS").ok()?;
    if pid.trim().parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let n: i32 = fds.trim().parse().ok()?;
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    // SD_LISTEN_FDS_START is 3.
    Some((3..3 + n.max(0)).map(from_fd).collect())
}

/// Raise the soft open-files limit to the hard limit, so that a thousand idle keep-alive
/// connections do not exhaust descriptors (the default soft limit is often 1024).
#[allow(unsafe_code)]
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn binds_tcp_on_port_zero() {
        let l = bind(
            &Bind::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            16,
        )
        .unwrap();
        assert!(l.local_addr().unwrap().port() != 0);
    }

    #[test]
    fn binds_ipv6_loopback() {
        let l = bind(
            &Bind::Tcp {
                host: "::1".into(),
                port: 0,
            },
            16,
        );
        if let Ok(l) = l {
            assert!(l.local_addr().unwrap().is_ipv6());
        }
    }

    /// Accept one connection from `l` (made by a client that has sent a byte), waiting at
    /// most 5 s for it, and tell whether it has TCP_NODELAY.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn accepted_has_nodelay(l: &Listener) -> bool {
        let Listener::Tcp(l) = l else {
            panic!("not a TCP listener")
        };
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        std::io::Write::write_all(&mut client, b"x").unwrap();
        let mut pfd = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the length of the call.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1, "no connection");
        let (conn, _) = l.accept().unwrap();
        socket2::SockRef::from(&conn).tcp_nodelay().unwrap()
    }

    /// The accept loop relies on connections inheriting TCP_NODELAY from the listener on
    /// Linux (it sets no option per connection there), so every TCP listener must carry it:
    /// the ones we bind and the ones handed to us (`fd://`, systemd, the binary upgrade).
    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_connections_inherit_nodelay_from_bound_and_adopted_listeners() {
        let tcp = Bind::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        };
        assert!(accepted_has_nodelay(&bind(&tcp, 16).unwrap()));

        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!socket2::SockRef::from(&plain).tcp_nodelay().unwrap());
        let fd = std::os::fd::IntoRawFd::into_raw_fd(plain);
        assert!(accepted_has_nodelay(&inherit(fd, false).unwrap()));
    }

    #[test]
    fn reuse_port_lets_two_sockets_share_a_port() {
        let opts = BindOptions {
            backlog: 16,
            reuse_port: true,
            unix_mode: None,
        };
        let tcp = |port| Bind::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let a = bind_with(&tcp(0), opts).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = bind_with(&tcp(port), opts).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
        // Without the option on the newcomer the port is taken.
        assert!(bind(&tcp(port), 16).is_err());
    }

    #[test]
    fn unix_socket_removed_on_drop_and_stale_file_replaced() {
        let dir = std::env::temp_dir().join(format!("bourbon-l-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        {
            let l = bind(&Bind::Unix(path.clone()), 16).unwrap();
            assert!(path.exists());
            // A second bind while the first is alive must fail: a live socket is not stale.
            assert!(bind(&Bind::Unix(path.clone()), 16).is_err());
            // Leak a stale socket file by forgetting to clean up.
            if let Listener::Unix { owned, .. } = &l {
                assert!(*owned);
            }
        }
        assert!(!path.exists());
        // Make a stale socket: bind with std and drop without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let _l = bind(&Bind::Unix(path.clone()), 16).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unix_socket_mode_is_set_when_asked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("bourbon-m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        let opts = BindOptions {
            backlog: 16,
            reuse_port: false,
            unix_mode: Some(0o660),
        };
        let l = bind_with(&Bind::Unix(path.clone()), opts).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o660);
        drop(l);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn refuses_to_clobber_a_regular_file() {
        let path = std::env::temp_dir().join(format!("bourbon-f-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        assert!(bind(&Bind::Unix(path.clone()), 16).is_err());
        std::fs::remove_file(&path).ok();
    }
}
