//! The master's judgement of one worker, read from its shared slot and from `/proc`: is it
//! stuck (`--timeout`), or due to be replaced (`--max-requests`, `--max-worker-lifetime`,
//! `--max-worker-memory`)? Judging lives here; what the master does about it in
//! `master/mod.rs`, and the signals and forks in `master/run.rs`.

use std::time::Duration;

use bourbon_config::Config;

use crate::metrics::Restart;
use crate::scoreboard::Slot;

/// Why a worker is considered stuck.
#[derive(Debug)]
pub enum Stuck {
    /// An application call has run longer than the timeout.
    Call { line: String, secs: f64 },
    /// The worker's event loop has not run for longer than the timeout.
    Silent { secs: f64 },
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stuck::Call { line, secs } => {
                write!(
                    f,
                    "request \"{}\" running for {secs:.1} s",
                    line.escape_debug()
                )
            }
            Stuck::Silent { secs } => write!(f, "no heartbeat for {secs:.1} s"),
        }
    }
}

fn secs_between(earlier: u64, now: u64) -> f64 {
    Duration::from_nanos(now.saturating_sub(earlier)).as_secs_f64()
}

/// Whether the worker behind `slot` is stuck at monotonic time `now`. A worker that is
/// finishing up (retiring) is only judged by its calls: its event loop may already be gone.
///
/// Two clocks, each counted from the last moment its subject was known to be alive:
/// - an application call, from its start;
/// - the event loop, from its last heartbeat. A call on the loop's own thread (inline)
///   stamps the heartbeat when it starts and ends (`Slot::begin_on_loop`), so while it runs
///   the loop's silence is exactly the call's age and the call is judged by its own clock;
///   a heartbeat from before the call is never held against it. A call on a Python thread
///   stamps nothing: it says nothing about the loop.
pub fn stuck(slot: &Slot, now: u64, timeout: Duration, serving: bool) -> Option<Stuck> {
    if timeout.is_zero() {
        return None;
    }
    let limit = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    if let Some(call) = slot.oldest_call() {
        if now.saturating_sub(call.started) > limit {
            return Some(Stuck::Call {
                line: call.line,
                secs: secs_between(call.started, now),
            });
        }
    }
    let beat = slot.heartbeat();
    if serving && now.saturating_sub(beat) > limit {
        return Some(Stuck::Silent {
            secs: secs_between(beat, now),
        });
    }
    None
}

/// Whether the worker behind `slot` has been unable to take work for longer than `limit` at
/// `now`, for the readiness probe (`--health-path`): each of its `threads` application
/// threads in a call that started before then, or its event loop silent since then. Judged
/// at half of `--timeout` (see [`readiness_limit`]), before the master kills the worker.
pub fn saturated(slot: &Slot, now: u64, limit: Duration, threads: usize) -> bool {
    if limit.is_zero() {
        return false;
    }
    let limit = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    let since = now.saturating_sub(limit);
    slot.heartbeat() < since || slot.calls_started_before(since) >= threads.max(1)
}

/// How long a worker must have been saturated for the readiness probe to call it stuck:
/// half of `--timeout`. At the full timeout the master kills it, so a flag raised only then
/// would be seen by nobody; `0` (no timeout) means never.
pub fn readiness_limit(timeout: Duration) -> Duration {
    timeout / 2
}

/// Whether the server is stuck for the readiness probe, from each serving worker's
/// `(booted, saturated)`: at least one booted worker, all of them saturated. Workers still
/// booting count neither way (they cannot take work yet, but are not stuck either).
pub fn all_stuck(workers: impl IntoIterator<Item = (bool, bool)>) -> bool {
    let mut any = false;
    for (booted, saturated) in workers {
        if booted {
            if !saturated {
                return false;
            }
            any = true;
        }
    }
    any
}

/// The per-worker request limit: `max_requests` plus a random 0..=`jitter` (0 = no limit),
/// drawn once for each worker, when it is forked.
pub fn request_limit(max_requests: u64, jitter: u64) -> u64 {
    limit_with(max_requests, jitter, random_u64())
}

/// [`request_limit`] with the random number given.
fn limit_with(max_requests: u64, jitter: u64, random: u64) -> u64 {
    if max_requests == 0 {
        return 0;
    }
    max_requests.saturating_add(random % jitter.saturating_add(1).max(1))
}

/// Why a serving worker should be replaced now, if it should: it has run for `age`,
/// finished `requests` against its `request_limit` (0 = none), and is `rss_mib` resident
/// (read only with `--max-worker-memory`).
pub fn recycle_reason(
    cfg: &Config,
    age: Duration,
    requests: u64,
    request_limit: u64,
    rss_mib: Option<u64>,
) -> Option<(Restart, String)> {
    if request_limit > 0 && requests >= request_limit {
        return Some((
            Restart::MaxRequests,
            format!("{requests} requests served, max-requests {request_limit}"),
        ));
    }
    let lifetime = cfg.max_worker_lifetime;
    if !lifetime.is_zero() && age >= lifetime {
        return Some((
            Restart::Lifetime,
            format!(
                "running for {:.1} s, max-worker-lifetime {} s",
                age.as_secs_f64(),
                lifetime.as_secs_f64()
            ),
        ));
    }
    if cfg.max_worker_memory > 0 {
        if let Some(rss) = rss_mib {
            if rss > cfg.max_worker_memory {
                return Some((
                    Restart::Memory,
                    format!(
                        "{rss} MiB resident, max-worker-memory {} MiB",
                        cfg.max_worker_memory
                    ),
                ));
            }
        }
    }
    None
}

/// The resident set size of `pid` in MiB, from `/proc/PID/statm` (its second field, in pages).
pub fn rss_mib(pid: libc::pid_t) -> Option<u64> {
    rss_bytes(pid).map(|b| b / (1024 * 1024))
}

/// The resident set size of `pid` in bytes, from `/proc/PID/statm`.
pub fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096);
    Some(pages * page)
}

/// A random number from the kernel (falls back to the clock: jitter needs no strength).
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into our buffer.
    #[allow(unsafe_code)]
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        u64::from_le_bytes(buf)
    } else {
        crate::scoreboard::now_ns()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_with_jitter_stay_in_range() {
        assert_eq!(request_limit(0, 10), 0);
        assert_eq!(request_limit(5, 0), 5);
        for _ in 0..100 {
            let l = request_limit(100, 10);
            assert!((100..=110).contains(&l), "{l}");
        }
    }

    #[test]
    fn a_stuck_call_is_reported_before_a_silent_loop() {
        let slot = Slot::new(1, 1).unwrap();
        let sec = 1_000_000_000u64;
        let t = Duration::from_secs(2);
        assert!(stuck(&slot, sec, t, true).is_none());
        assert!(matches!(
            stuck(&slot, 4 * sec, t, true),
            Some(Stuck::Silent { .. })
        ));
        assert!(stuck(&slot, 4 * sec, t, false).is_none());
        assert!(stuck(&slot, 4 * sec, Duration::ZERO, true).is_none());
        let i = slot.claim().unwrap();
        slot.begin(i, sec, [b"GET", b"/loop", b"HTTP/1.1"]);
        let s = stuck(&slot, 4 * sec, t, false).unwrap();
        assert_eq!(
            s.to_string(),
            "request \"GET /loop HTTP/1.1\" running for 3.0 s"
        );
    }

    #[test]
    fn saturated_needs_every_thread_busy_or_a_silent_loop() {
        let sec = 1_000_000_000u64;
        let half = readiness_limit(Duration::from_secs(4));
        assert_eq!(half, Duration::from_secs(2));
        let slot = Slot::new(3, 10 * sec).unwrap();
        slot.beat(20 * sec);
        assert!(!saturated(&slot, 21 * sec, half, 2));
        let a = slot.claim().unwrap();
        slot.begin(a, 15 * sec, [b"GET", b"/a", b"HTTP/1.1"]);
        // One of two threads busy long enough: still room.
        assert!(!saturated(&slot, 21 * sec, half, 2));
        let b = slot.claim().unwrap();
        slot.begin(b, 19 * sec + 1, [b"GET", b"/b", b"HTTP/1.1"]);
        // Both busy, but the second not for long enough yet.
        assert!(!saturated(&slot, 21 * sec, half, 2));
        assert!(saturated(&slot, 21 * sec + 2, half, 2));
        slot.end(Some(b));
        assert!(!saturated(&slot, 22 * sec, half, 2));
        // The event loop silent past the limit.
        assert!(saturated(&slot, 23 * sec, half, 2));
        // No timeout: never.
        assert!(!saturated(&slot, 100 * sec, Duration::ZERO, 2));
    }

    #[test]
    fn all_stuck_needs_one_booted_worker_and_no_free_one() {
        assert!(!all_stuck([]));
        assert!(!all_stuck([(false, true)]));
        assert!(all_stuck([(true, true)]));
        assert!(all_stuck([(true, true), (false, false)]));
        assert!(!all_stuck([(true, true), (true, false)]));
    }

    /// Milliseconds on the monotonic clock, as the slot stores them (nanoseconds).
    fn ms(n: u64) -> u64 {
        n * 1_000_000
    }

    #[test]
    fn an_inline_call_is_judged_by_its_own_age_not_by_an_older_heartbeat() {
        let t = Duration::from_secs(2);
        let slot = Slot::new(2, ms(1)).unwrap();
        let line = [&b"GET"[..], b"/slow", b"HTTP/1.1"];
        // The loop's last periodic beat, then an inline call 0.5 s later (the beat period
        // at --timeout 2): the call runs 1.9 s, the loop has then been silent 2.4 s since
        // that beat, and neither is held against the worker.
        slot.beat(ms(1000));
        let i = slot.claim();
        slot.begin_on_loop(i, ms(1500), line);
        assert!(stuck(&slot, ms(3400), t, true).is_none());
        // The call ends; the loop is alive then, and is judged from there.
        slot.end_on_loop(i, ms(3450));
        assert!(stuck(&slot, ms(5400), t, true).is_none());
        assert!(matches!(
            stuck(&slot, ms(5500), t, true),
            Some(Stuck::Silent { .. })
        ));
        // A call past the timeout is still caught, by its own clock, and named.
        slot.begin_on_loop(i, ms(6000), line);
        assert!(stuck(&slot, ms(8000), t, true).is_none());
        let s = stuck(&slot, ms(8100), t, true).unwrap();
        assert_eq!(
            s.to_string(),
            "request \"GET /slow HTTP/1.1\" running for 2.1 s"
        );
    }

    #[test]
    fn a_call_on_a_python_thread_says_nothing_about_the_loop() {
        let t = Duration::from_secs(2);
        let slot = Slot::new(2, ms(1)).unwrap();
        slot.beat(ms(1000));
        let i = slot.claim().unwrap();
        slot.begin(i, ms(2500), [b"GET", b"/", b"HTTP/1.1"]);
        // The call is young, but the loop has not beaten for 2.1 s: it is stuck elsewhere.
        assert!(matches!(
            stuck(&slot, ms(3100), t, true),
            Some(Stuck::Silent { .. })
        ));
        // A retiring worker's loop may be gone: only its calls count.
        assert!(stuck(&slot, ms(3100), t, false).is_none());
    }

    #[test]
    fn own_rss_is_read() {
        let pid = libc::pid_t::try_from(std::process::id()).unwrap();
        assert!(rss_mib(pid).is_some());
    }
}
