//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` services.
//!
//! This module owns the `NOTIFY_SOCKET` address: it is taken out of the environment at
//! start (so neither the application nor anything it starts sees it or answers in our
//! name) and datagrams such as `READY=1` are sent to it. Only the master (every run has
//! one) sends: workers never do. Without `NOTIFY_SOCKET` every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use bourbon_server::log;

/// The address from `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket), and the
/// process that took it: forked workers inherit this memory but must stay silent.
static SOCKET: OnceLock<Option<(String, u32)>> = OnceLock::new();

/// The variable systemd passes the address in.
pub const NOTIFY_VAR: &str = "NOTIFY_SOCKET";

/// Take `NOTIFY_SOCKET` out of the environment and keep it for [`send`]. Call once, early,
/// while the process is single-threaded. Returns whether it was there: the program then
/// removes it from its own copy of the environment too (Python's `os.environ`).
pub fn init() -> bool {
    let addr = std::env::var(NOTIFY_VAR).ok().filter(|a| !a.is_empty());
    let found = addr.is_some();
    if found {
        std::env::remove_var(NOTIFY_VAR);
    }
    let _ = SOCKET.set(addr.map(|a| (a, std::process::id())));
    found
}

/// After daemonizing: this process (the daemon) is now the one that speaks.
pub fn adopt() {
    if let Some(Some((addr, _))) = SOCKET.get() {
        OWNER_OVERRIDE.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        log::debug(format_args!("sd_notify to {addr} from the daemon"));
    }
}

/// Set by [`adopt`]: the daemon's pid, which replaces the recorded owner.
static OWNER_OVERRIDE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The saved address, to hand on to a re-executed master.
pub fn address() -> Option<&'static str> {
    SOCKET
        .get()
        .and_then(Option::as_ref)
        .map(|(a, _)| a.as_str())
}

/// Send one notification (`KEY=VALUE` lines), from the process that took the address only.
/// Failures are logged at debug level only: a service manager that went away must not stop
/// the server.
pub fn send(state: &str) {
    let Some((addr, owner)) = SOCKET.get().and_then(Option::as_ref) else {
        return;
    };
    let adopted = OWNER_OVERRIDE.load(std::sync::atomic::Ordering::Relaxed);
    let owner = if adopted != 0 { adopted } else { *owner };
    if owner != std::process::id() {
        return;
    }
    if let Err(e) = send_to(addr, state) {
        log::debug(format_args!("sd_notify to {addr} failed: {e}"));
    }
}

fn send_to(addr: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &sa)?;
    } else {
        sock.send_to(state.as_bytes(), addr)?;
    }
    Ok(())
}

/// `READY=1` with the main pid and a status line.
pub fn ready(status: &str) {
    send(&format!(
        "READY=1\nMAINPID={}\nSTATUS={status}",
        std::process::id()
    ));
}

/// `RELOADING=1` (SIGHUP), with the monotonic time systemd's `Type=notify-reload` asks for.
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading",
        monotonic_usec()
    ));
}

/// `STOPPING=1` (TERM, INT, QUIT).
pub fn stopping() {
    send("STOPPING=1\nSTATUS=Stopping");
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd's `MONOTONIC_USEC=` wants it.
fn monotonic_usec() -> u64 {
    crate::scoreboard::now_ns() / 1000
}
