//! Health checks answered by the server itself (`--health-path`, `--liveness-path`).
//!
//! This module owns the two probe paths, their answers and the small page of shared memory
//! through which the master tells every worker what it knows about the whole server. The
//! connection driver asks [`Health::answer`] about each request head before static files
//! and before any interface's handler, so a probe never enters Python: it is answered while
//! every application thread is busy, is not counted as a request (`--max-requests`, the
//! scoreboard) and, by default, is not written to the access log.
//!
//! - Readiness (`--health-path`): `200 ok` while this server can take work; `503 draining`
//!   once the master is stopping (TERM, INT or QUIT), so a load balancer takes the server out
//!   of rotation while it finishes what it holds; `503 stuck` when every worker has been busy
//!   past half of `--timeout` (every application thread in one call that long, or the event
//!   loop silent that long). The master kills a worker stuck past the full `--timeout`, so
//!   a flag raised only then would be seen by nobody; half of it is still clearly stuck.
//! - Liveness (`--liveness-path`): `200 ok` whenever the process answers. The master
//!   replaces stuck workers itself, so an orchestrator should restart the whole server only
//!   when nothing answers at all.
//!
//! The board is one anonymous `MAP_SHARED` page the master maps before it forks any worker,
//! so every worker (and every replacement) inherits the same memory. It holds one word of
//! flags: the master stores, a probe loads. A worker told to stop on its own (recycling,
//! a reload, TTOU) is not "draining" for readiness: the server still takes work through its
//! other workers, so the probe is answered `200`, and with `Connection: close` (every response
//! of a stopping worker says so), so the next probe reaches a worker that stays.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use bytes::Bytes;

use crate::body::Full;
use crate::request::{RequestHead, Response};

/// The master is stopping the server.
const DRAINING: u32 = 1;
/// Every serving worker is stuck.
const STUCK: u32 = 2;

/// The board's word, once the master mapped it (inherited by every worker at fork).
static BOARD: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());

/// Map the board, once per process: the master calls this before it forks its first worker.
/// Later calls (a reload) keep the page already there, which the workers share.
#[allow(unsafe_code)]
pub fn map_board() -> std::io::Result<()> {
    if !BOARD.load(Ordering::Acquire).is_null() {
        return Ok(());
    }
    // SAFETY: an anonymous shared mapping of one page; the kernel zero-fills it, and zero is
    // a valid `AtomicU32`. It is never unmapped, so the pointer stays valid for the life of
    // this process and of every process forked from it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    BOARD.store(ptr.cast::<AtomicU32>(), Ordering::Release);
    Ok(())
}

fn board() -> Option<&'static AtomicU32> {
    let ptr = BOARD.load(Ordering::Acquire);
    // SAFETY: a non-null pointer was stored by `map_board` (in this process or in the master
    // before the fork) and points to a page that is never unmapped.
    #[allow(unsafe_code)]
    unsafe {
        ptr.as_ref()
    }
}

/// The master's view, for every worker's probes: is the server stopping, is every worker
/// stuck. Nothing happens before [`map_board`].
pub fn publish(draining: bool, stuck: bool) {
    if let Some(word) = board() {
        let flags = if draining { DRAINING } else { 0 } | if stuck { STUCK } else { 0 };
        word.store(flags, Ordering::Release);
    }
}

/// What a readiness probe answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The server can take work.
    Ready,
    /// The server is stopping.
    Draining,
    /// Every worker is stuck.
    Stuck,
}

/// Readiness now. `stopping_here`: this process was told to stop. Without a board (a server
/// run without a master, as in this crate's tests) that stop is the server's.
pub fn readiness(stopping_here: bool) -> Readiness {
    match board() {
        Some(word) => {
            let flags = word.load(Ordering::Acquire);
            if flags & DRAINING != 0 {
                Readiness::Draining
            } else if flags & STUCK != 0 {
                Readiness::Stuck
            } else {
                Readiness::Ready
            }
        }
        None if stopping_here => Readiness::Draining,
        None => Readiness::Ready,
    }
}

/// Which probe a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Ready,
    Live,
}

/// The probe paths of one worker.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Option<Box<[u8]>>,
    live: Option<Box<[u8]>>,
    log: bool,
}

/// A probe's response, and whether it goes to the access log.
pub struct Answer {
    /// The response.
    pub response: Response<Full>,
    /// Write it to the access log (`--health-access-log`).
    pub log: bool,
}

impl Health {
    /// The probes at `ready` and `live` ("" = none); `None` when neither is set, so the
    /// driver pays nothing per request. `log`: write probes to the access log.
    pub fn new(ready: &str, live: &str, log: bool) -> Option<Health> {
        let path = |p: &str| (!p.is_empty()).then(|| p.as_bytes().into());
        let health = Health {
            ready: path(ready),
            live: path(live),
            log,
        };
        (health.ready.is_some() || health.live.is_some()).then_some(health)
    }

    /// The answer to `head` if it is a probe; `stopping_here` is asked only then.
    pub fn answer(
        &self,
        head: &RequestHead,
        stopping_here: impl FnOnce() -> bool,
    ) -> Option<Answer> {
        let probe = self.probe(path_of(head.target()))?;
        let method = head.method();
        let response = if method != b"GET" && method != b"HEAD" {
            // RFC 9110 §15.5.6: a 405 lists the methods the target supports.
            reply(405, "method not allowed\n", Some(b"GET, HEAD"))
        } else {
            match probe {
                Probe::Live => reply(200, "ok\n", None),
                Probe::Ready => match readiness(stopping_here()) {
                    Readiness::Ready => reply(200, "ok\n", None),
                    Readiness::Draining => reply(503, "draining\n", None),
                    Readiness::Stuck => reply(503, "stuck\n", None),
                },
            }
        };
        Some(Answer {
            response,
            log: self.log,
        })
    }

    fn probe(&self, path: &[u8]) -> Option<Probe> {
        if self.ready.as_deref() == Some(path) {
            Some(Probe::Ready)
        } else if self.live.as_deref() == Some(path) {
            Some(Probe::Live)
        } else {
            None
        }
    }
}

/// The path of a request target (RFC 9112 §3.2): origin-form up to its query; an
/// absolute-form target's path after its authority; `*` and anything else as it is.
fn path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &t[scheme.len()..];
            t = rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |i| &rest[i..]);
            break;
        }
    }
    match t.iter().position(|&b| b == b'?') {
        Some(i) => &t[..i],
        None => t,
    }
}

fn reply(status: u16, body: &'static str, allow: Option<&[u8]>) -> Response<Full> {
    let mut resp = Response::new(status, Full::new(Bytes::from_static(body.as_bytes())));
    let h = &mut resp.headers;
    h.push_trusted(b"Content-Type", b"text/plain; charset=utf-8");
    // A probe's answer is about this moment: no cache may keep it (RFC 9111 §5.2.2.5).
    h.push_trusted(b"Cache-Control", b"no-store");
    if let Some(allow) = allow {
        h.push_trusted(b"Allow", allow);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_of_targets() {
        assert_eq!(path_of(b"/healthz"), b"/healthz");
        assert_eq!(path_of(b"/healthz?x=1"), b"/healthz");
        assert_eq!(path_of(b"http://example.com/healthz?x"), b"/healthz");
        assert_eq!(path_of(b"HTTPS://example.com:8443/readyz"), b"/readyz");
        assert_eq!(path_of(b"http://example.com"), b"/");
        assert_eq!(path_of(b"*"), b"*");
        assert_eq!(path_of(b"/healthz/"), b"/healthz/");
    }

    /// One test for the process-wide board, so no other test sees it half set.
    #[test]
    fn readiness_follows_the_board() {
        // No master (no board): this process's own stop is the server's.
        assert_eq!(readiness(false), Readiness::Ready);
        assert_eq!(readiness(true), Readiness::Draining);
        map_board().unwrap();
        map_board().unwrap(); // a reload keeps the page
                              // With the board, a worker stopping alone (recycling) leaves the server ready.
        assert_eq!(readiness(true), Readiness::Ready);
        publish(false, true);
        assert_eq!(readiness(false), Readiness::Stuck);
        publish(true, true);
        assert_eq!(readiness(false), Readiness::Draining);
        publish(false, false);
        assert_eq!(readiness(false), Readiness::Ready);
    }

    #[test]
    fn probes_need_a_path() {
        assert!(Health::new("", "", false).is_none());
        let h = Health::new("/readyz", "/livez", false).unwrap();
        assert_eq!(h.probe(b"/readyz"), Some(Probe::Ready));
        assert_eq!(h.probe(b"/livez"), Some(Probe::Live));
        assert_eq!(h.probe(b"/readyz/"), None);
        assert_eq!(h.probe(b"/"), None);
    }
}
