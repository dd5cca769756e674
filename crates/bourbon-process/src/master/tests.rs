//! The master's decisions, with a made-up clock and no process: what gunicorn's arbiter
//! tests check, and what bourbon adds (boot failures, `--reload`, the stack dump before a
//! kill, recycling).
#![allow(clippy::unwrap_used)]

use super::*;

fn cfg(workers: u32) -> Config {
    Config {
        workers,
        graceful_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(30),
        max_requests: 0,
        max_requests_jitter: 0,
        max_worker_lifetime: Duration::ZERO,
        max_worker_memory: 0,
        reload: false,
        ..Config::default()
    }
}

/// A fixed moment to count from (an `Instant` cannot be built from a number).
fn t0() -> Instant {
    thread_local!(static T0: Instant = Instant::now());
    T0.with(|t| *t)
}

fn at(secs: f64) -> Instant {
    t0() + Duration::from_secs_f64(secs)
}

/// A master with its first workers forked at time 0, pids 101, 102, ...
fn started(cfg: Config) -> Master {
    let mut m = Master::new(cfg);
    let forks = m.fill();
    assert!(forks.iter().all(|o| *o == Output::Fork));
    for i in 0..forks.len() {
        fork(&mut m, 101 + Pid::try_from(i).unwrap(), 0.0, 0);
    }
    m
}

fn fork(m: &mut Master, pid: Pid, secs: f64, limit: u64) {
    let id = m.next_id();
    m.forked(pid, id, at(secs), limit);
}

fn exited(pid: Pid, code: i32, booted: bool) -> Reaped {
    Reaped {
        pid,
        ended: Ended::Exited(code),
        booted,
        private: None,
    }
}

fn killed(pid: Pid, sig: libc::c_int) -> Reaped {
    Reaped {
        pid,
        ended: Ended::Signaled(sig),
        booted: true,
        private: None,
    }
}

fn logs(out: &[Output]) -> Vec<(Level, &str)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log(l, t) => Some((*l, t.as_str())),
            _ => None,
        })
        .collect()
}

fn sends(out: &[Output]) -> Vec<(Pid, libc::c_int)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p, s) => Some((*p, *s)),
            _ => None,
        })
        .collect()
}

fn stop_of(out: &[Output]) -> Option<(libc::c_int, Duration, i32)> {
    out.iter().find_map(|o| match o {
        Output::Stop {
            sig,
            patience,
            exit,
        } => Some((*sig, *patience, *exit)),
        _ => None,
    })
}

fn phase(m: &Master, pid: Pid) -> Phase {
    m.worker(pid).unwrap().phase
}

fn stuck_look() -> Look {
    Look {
        stuck: Some(Stuck::Silent { secs: 31.0 }),
        ..Look::default()
    }
}

// ---- 1. reaping ----

#[test]
fn a_boot_failure_stops_everyone_with_its_code() {
    for code in [EXIT_BOOT, EXIT_APP_LOAD] {
        let mut m = started(cfg(3));
        let out = m.reaped(&[exited(101, code, false)]);
        assert_eq!(
            stop_of(&out),
            Some((libc::SIGTERM, FAST_STOP, code)),
            "code {code}"
        );
        assert!(logs(&out)[0].1.contains("failed to boot (exit code"));
    }
}

#[test]
fn the_same_codes_after_boot_are_a_crash_and_the_worker_is_replaced() {
    let mut m = started(cfg(2));
    let out = m.reaped(&[exited(101, EXIT_APP_LOAD, true)]);
    assert_eq!(stop_of(&out), None);
    assert_eq!(logs(&out)[0].0, Level::Error);
    assert!(logs(&out)[0].1.contains("after it booted"));
    assert_eq!(m.fill(), vec![Output::Fork]);
}

#[test]
fn a_private_code_before_boot_is_reported_once_and_stops_with_its_exit() {
    let private = Some(PrivateExit {
        exit: 2,
        announce_wait: false,
    });
    let mut m = started(cfg(2));
    let out = m.reaped(&[
        Reaped {
            private,
            ..exited(101, 6, false)
        },
        Reaped {
            private,
            ..exited(102, 6, false)
        },
    ]);
    let reports = out.iter().filter(|o| **o == Output::Report(6)).count();
    assert_eq!(reports, 1);
    assert_eq!(stop_of(&out), Some((libc::SIGTERM, FAST_STOP, 2)));
    // After boot the program's meaning does not apply: a plain non-zero exit.
    let mut m = started(cfg(1));
    let out = m.reaped(&[Reaped {
        private,
        ..exited(101, 6, true)
    }]);
    assert_eq!(stop_of(&out), None);
    assert!(!out.contains(&Output::Report(6)));
    assert_eq!(
        logs(&out),
        vec![(Level::Warning, "Worker (pid:101) exited with code 6")]
    );
}

#[test]
fn a_foreign_signal_is_logged_our_own_kill_is_not() {
    let mut m = started(cfg(2));
    let out = m.reaped(&[killed(101, libc::SIGSEGV)]);
    assert_eq!(
        logs(&out),
        vec![(Level::Error, "Worker (pid:101) was killed by signal 11")]
    );
    // 102 timed out, dumped, and was killed by us.
    m.tick(at(40.0), &[(102, stuck_look())], false);
    let dumped = Look {
        dumped: true,
        ..Look::default()
    };
    m.tick(at(40.1), &[(102, dumped)], false);
    assert_eq!(phase(&m, 102), Phase::Killed);
    let out = m.reaped(&[killed(102, libc::SIGKILL)]);
    assert!(logs(&out).is_empty());
}

#[test]
fn exits_during_a_stop_or_a_retirement_are_quiet() {
    let mut m = started(cfg(3));
    m.signal(Sig::Ttou, at(1.0));
    // The oldest (101) retires and exits 0: expected.
    let out = m.reaped(&[exited(101, 0, true)]);
    assert!(logs(&out).is_empty());
    // A serving worker exiting 0 on its own is news.
    let out = m.reaped(&[exited(102, 0, true)]);
    assert_eq!(logs(&out).len(), 1);
    // During a stop: TERM before a booting worker installed its handler is part of it.
    let _ = m.stop_signals(libc::SIGTERM);
    let out = m.reaped(&[killed(103, libc::SIGTERM)]);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(m.missing(), 0, "nothing is forked while stopping");
}

#[test]
fn a_boot_failure_during_a_stop_does_not_stop_again() {
    let mut m = started(cfg(1));
    let _ = m.stop_signals(libc::SIGTERM);
    let out = m.reaped(&[exited(101, EXIT_BOOT, false)]);
    assert_eq!(stop_of(&out), None);
}

// ---- 2. --reload ----

#[test]
fn under_reload_a_boot_failure_waits_for_a_change_instead_of_stopping() {
    let mut c = cfg(2);
    c.reload = true;
    let mut m = started(c.clone());
    let out = m.reaped(&[exited(101, EXIT_APP_LOAD, false)]);
    assert_eq!(stop_of(&out), None);
    assert!(logs(&out)[0].1.contains("waiting for a file change"));
    assert_eq!(m.missing(), 0, "no fork while broken");
    // A fixed file: the reload forks a new generation.
    let out = m.reloaded(Ok(Some(c)), false, at(5.0));
    assert_eq!(out.iter().filter(|o| **o == Output::Fork).count(), 2);
}

#[test]
fn under_reload_a_private_code_says_once_that_it_waits() {
    let mut c = cfg(2);
    c.reload = true;
    let private = Some(PrivateExit {
        exit: EXIT_APP_LOAD,
        announce_wait: true,
    });
    let mut m = started(c);
    let out = m.reaped(&[
        Reaped {
            private,
            ..exited(101, 5, false)
        },
        Reaped {
            private,
            ..exited(102, 5, false)
        },
    ]);
    assert_eq!(stop_of(&out), None);
    assert_eq!(logs(&out).len(), 1);
    assert_eq!(out.iter().filter(|o| **o == Output::Report(5)).count(), 1);
    assert_eq!(m.missing(), 0);
    // A reload forgets what was reported: the next failure is told again.
    m.reloaded(Ok(None), false, at(3.0));
    fork(&mut m, 201, 3.0, 0);
    let out = m.reaped(&[Reaped {
        private,
        ..exited(201, 5, false)
    }]);
    assert!(out.contains(&Output::Report(5)));
}

#[test]
fn file_changes_are_debounced() {
    use crate::reloader::due_in;
    let first = at(0.0);
    // Quiet for 0.2 s after the last change...
    assert_eq!(due_in(first, at(0.1), at(0.1)), Duration::from_millis(200));
    assert_eq!(due_in(first, at(0.1), at(0.3)), Duration::ZERO);
    // ...but never later than 2 s after the first, however busy.
    assert_eq!(due_in(first, at(1.9), at(1.9)), Duration::from_millis(100));
    assert_eq!(due_in(first, at(2.5), at(2.5)), Duration::ZERO);
}

// ---- 3. timeout ----

#[test]
fn a_stuck_worker_is_dumped_then_killed_at_the_dump_deadline() {
    let mut m = started(cfg(2));
    let out = m.tick(
        at(31.0),
        &[(101, stuck_look()), (102, Look::default())],
        false,
    );
    assert_eq!(logs(&out)[0].0, Level::Critical);
    assert!(logs(&out)[0]
        .1
        .starts_with("WORKER TIMEOUT (pid:101): no heartbeat"));
    assert_eq!(sends(&out), vec![(101, DUMP_SIGNAL)]);
    assert_eq!(
        phase(&m, 101),
        Phase::Dumping {
            deadline: at(31.0) + DUMP_WAIT
        }
    );
    assert!(m.dumping());
    // Not dumped yet, before the deadline: wait.
    let out = m.tick(at(31.5), &[(101, Look::default())], false);
    assert!(out.is_empty());
    // The deadline passed without the stacks: killed anyway.
    let out = m.tick(at(32.0), &[(101, Look::default())], false);
    assert_eq!(sends(&out), vec![(101, libc::SIGKILL)]);
    assert_eq!(phase(&m, 101), Phase::Killed);
    // It no longer counts: its replacement is owed at once.
    assert_eq!(m.missing(), 1);
}

#[test]
fn stacks_written_kill_at_once_or_after_the_abort_hook() {
    let dumped = || Look {
        dumped: true,
        ..Look::default()
    };
    let mut m = started(cfg(1));
    m.tick(at(31.0), &[(101, stuck_look())], false);
    let out = m.tick(at(31.01), &[(101, dumped())], false);
    assert_eq!(sends(&out), vec![(101, libc::SIGKILL)]);

    let mut m = started(cfg(1));
    m.tick(at(31.0), &[(101, stuck_look())], true);
    let out = m.tick(at(31.01), &[(101, dumped())], true);
    assert!(out.is_empty(), "worker_abort gets its moment");
    assert_eq!(
        phase(&m, 101),
        Phase::Aborting {
            deadline: at(31.01) + ABORT_WAIT
        }
    );
    assert!(m.tick(at(31.5), &[(101, dumped())], true).is_empty());
    let out = m.tick(at(32.01), &[(101, dumped())], true);
    assert_eq!(sends(&out), vec![(101, libc::SIGKILL)]);
}

#[test]
fn a_retiring_worker_that_overstays_is_killed() {
    let mut m = started(cfg(2));
    let out = m.signal(Sig::Ttou, at(1.0));
    assert_eq!(sends(&out), vec![(101, libc::SIGTERM)]);
    let deadline = at(1.0) + Duration::from_secs(30) + EXIT_MARGIN;
    assert_eq!(phase(&m, 101), Phase::Retiring { deadline });
    assert!(m
        .tick(at(30.0), &[(101, Look::default())], false)
        .is_empty());
    let out = m.tick(at(31.5), &[(101, Look::default())], false);
    assert_eq!(sends(&out), vec![(101, libc::SIGKILL)]);
    assert!(logs(&out)[0].1.contains("did not stop in time"));
}

#[test]
fn timeout_judgement() {
    use crate::scoreboard::Slot;
    use crate::watchdog::stuck;
    let s = 1_000_000_000u64;
    let timeout = Duration::from_secs(30);
    // A booting worker counts from its fork (the slot's heartbeat starts then).
    let slot = Slot::new(2, 10 * s).unwrap();
    assert!(stuck(&slot, 40 * s, timeout, true).is_none());
    assert!(matches!(
        stuck(&slot, 41 * s, timeout, true),
        Some(Stuck::Silent { .. })
    ));
    // A retiring worker is judged by its calls only (its loop may be gone).
    assert!(stuck(&slot, 41 * s, timeout, false).is_none());
    slot.begin(0, 12 * s, [b"GET", b"/slow", b"HTTP/1.1"]);
    assert!(matches!(
        stuck(&slot, 43 * s, timeout, false),
        Some(Stuck::Call { .. })
    ));
    // 0 = off.
    assert!(stuck(&slot, 1000 * s, Duration::ZERO, true).is_none());
}

// ---- 4. recycling ----

#[test]
fn max_requests_recycles_with_the_replacement_forked_before_the_stop() {
    let mut c = cfg(2);
    c.max_requests = 100;
    let mut m = Master::new(c);
    fork(&mut m, 101, 0.0, 105); // its limit, with jitter, drawn at fork
    fork(&mut m, 102, 0.0, 110);
    let look = |requests| Look {
        requests,
        ..Look::default()
    };
    assert!(m
        .tick(at(1.0), &[(101, look(104)), (102, look(108))], false)
        .is_empty());
    let out = m.tick(at(2.0), &[(101, look(105)), (102, look(109))], false);
    assert!(logs(&out)[0]
        .1
        .starts_with("Autorestarting worker after current request. (pid:101: 105 requests"));
    let fork_at = out.iter().position(|o| *o == Output::Fork).unwrap();
    let term_at = out
        .iter()
        .position(|o| *o == Output::Send(101, libc::SIGTERM))
        .unwrap();
    assert!(fork_at < term_at, "{out:?}");
    assert_eq!(out.iter().filter(|o| **o == Output::Fork).count(), 1);
    assert!(matches!(phase(&m, 101), Phase::Retiring { .. }));
}

#[test]
fn the_jitter_is_drawn_within_its_range() {
    use crate::watchdog::request_limit;
    assert_eq!(request_limit(0, 10), 0, "0 = no limit, jitter or not");
    assert_eq!(request_limit(100, 0), 100);
    let limits: Vec<u64> = (0..200).map(|_| request_limit(100, 10)).collect();
    assert!(limits.iter().all(|l| (100..=110).contains(l)));
    assert!(limits.iter().any(|&l| l != limits[0]), "drawn per worker");
}

#[test]
fn lifetime_and_memory_recycle() {
    let mut c = cfg(1);
    c.max_worker_lifetime = Duration::from_secs(60);
    let mut m = started(c);
    assert!(m
        .tick(at(59.0), &[(101, Look::default())], false)
        .is_empty());
    let out = m.tick(at(60.0), &[(101, Look::default())], false);
    assert!(logs(&out)[0].1.contains("max-worker-lifetime 60 s"));

    let mut c = cfg(1);
    c.max_worker_memory = 200;
    let mut m = started(c);
    let rss = |mib| Look {
        rss_mib: Some(mib),
        ..Look::default()
    };
    assert!(m.tick(at(1.0), &[(101, rss(200))], false).is_empty());
    let out = m.tick(at(2.0), &[(101, rss(201))], false);
    assert!(logs(&out)[0]
        .1
        .contains("201 MiB resident, max-worker-memory 200 MiB"));
}

#[test]
fn a_stuck_worker_is_not_recycled_but_dumped() {
    let mut c = cfg(1);
    c.max_requests = 1;
    let mut m = Master::new(c);
    fork(&mut m, 101, 0.0, 1);
    let look = Look {
        requests: 5,
        ..stuck_look()
    };
    let out = m.tick(at(31.0), &[(101, look)], false);
    assert_eq!(sends(&out), vec![(101, DUMP_SIGNAL)]);
}

// ---- 5. TTIN / TTOU ----

#[test]
fn ttin_adds_a_worker_and_ttou_retires_the_oldest_never_below_one() {
    let mut m = Master::new(cfg(2));
    fork(&mut m, 101, 0.0, 0);
    fork(&mut m, 102, 1.0, 0);
    let out = m.signal(Sig::Ttin, at(2.0));
    assert_eq!(m.target(), 3);
    assert!(out.contains(&Output::Hook(Hook::WorkersChanged { new: 3, old: 2 })));
    assert_eq!(m.fill(), vec![Output::Fork]);
    fork(&mut m, 103, 2.0, 0);

    let out = m.signal(Sig::Ttou, at(3.0));
    assert_eq!(m.target(), 2);
    assert_eq!(sends(&out), vec![(101, libc::SIGTERM)], "the oldest first");
    let out = m.signal(Sig::Ttou, at(3.0));
    assert_eq!(sends(&out), vec![(102, libc::SIGTERM)]);
    assert_eq!(m.target(), 1);
    let out = m.signal(Sig::Ttou, at(4.0));
    assert_eq!(m.target(), 1, "never below one");
    assert!(sends(&out).is_empty());
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Hook(Hook::WorkersChanged { .. }))));
    assert_eq!(m.serving(), 1);
    assert_eq!(m.fill(), vec![]);
}

#[test]
fn winch_retires_every_worker() {
    let mut m = started(cfg(2));
    let out = m.signal(Sig::Winch, at(1.0));
    assert_eq!(
        sends(&out),
        vec![(101, libc::SIGTERM), (102, libc::SIGTERM)]
    );
    assert_eq!(m.missing(), 0);
}

// ---- 6. HUP ----

#[test]
fn hup_forks_a_new_generation_then_retires_the_old_one() {
    let mut m = started(cfg(2));
    let out = m.signal(Sig::Hup, at(1.0));
    assert_eq!(out.last(), Some(&Output::Reload));
    let mut new = cfg(3);
    new.graceful_timeout = Duration::from_secs(10);
    let out = m.reloaded(Ok(Some(new)), false, at(1.0));
    assert_eq!(
        out,
        vec![
            Output::Hook(Hook::WorkersChanged { new: 3, old: 2 }),
            Output::Hook(Hook::OnReload),
            Output::Fork,
            Output::Fork,
            Output::Fork,
            Output::Send(101, libc::SIGTERM),
            Output::Send(102, libc::SIGTERM),
        ]
    );
    // The old ones are retired with the new settings' graceful timeout.
    let deadline = at(1.0) + Duration::from_secs(10) + EXIT_MARGIN;
    assert_eq!(phase(&m, 101), Phase::Retiring { deadline });
}

#[test]
fn bad_settings_on_hup_keep_the_old_ones() {
    let mut m = started(cfg(2));
    let out = m.reloaded(
        Err("error: --workers: 'x' is not a number".to_owned()),
        false,
        at(1.0),
    );
    assert_eq!(
        logs(&out),
        vec![(
            Level::Error,
            "reload: --workers: 'x' is not a number; keeping the current settings"
        )]
    );
    assert_eq!(out.len(), 1);
    assert_eq!(m.serving(), 2);
    assert_eq!(m.cfg().workers, 2);
}

#[test]
fn a_preloaded_application_is_kept_and_says_so() {
    let mut m = started(cfg(1));
    let out = m.reloaded(Ok(None), true, at(1.0));
    assert!(logs(&out)[0]
        .1
        .contains("was preloaded, so its code is not reloaded"));
}

// ---- 7. stops ----

#[test]
fn stop_signals_and_their_patience() {
    let mut m = started(cfg(1));
    let out = m.signal(Sig::Term, at(1.0));
    assert_eq!(out[0], Output::NotifyStopping);
    assert_eq!(
        stop_of(&out),
        Some((libc::SIGTERM, Duration::from_secs(30) + EXIT_MARGIN, 0))
    );
    let out = m.signal(Sig::Int, at(1.0));
    assert_eq!(stop_of(&out), Some((libc::SIGINT, FAST_STOP, 0)));
    assert_eq!(Sig::from_raw(libc::SIGQUIT), Some(Sig::Int));
    assert_eq!(Sig::from_raw(libc::SIGCHLD), None);
}

#[test]
fn a_stop_signals_the_living_and_kills_the_overdue() {
    let mut m = started(cfg(3));
    // 103 is already killed (timed out): it gets nothing more.
    m.tick(at(31.0), &[(103, stuck_look())], false);
    m.tick(at(33.0), &[(103, Look::default())], false);
    assert_eq!(phase(&m, 103), Phase::Killed);
    let out = m.stop_signals(libc::SIGTERM);
    assert_eq!(
        out,
        vec![
            Output::Send(101, libc::SIGTERM),
            Output::Send(102, libc::SIGTERM)
        ]
    );
    m.reaped(&[exited(101, 0, true)]);
    let out = m.overdue();
    assert_eq!(sends(&out), vec![(102, libc::SIGKILL)]);
    assert_eq!(m.forget(103), Some(3));
    assert_eq!(m.forget(102), Some(2));
    assert!(m.workers().next().is_none());
}

// ---- 8. USR1 / USR2 ----

#[test]
fn usr1_reopens_here_and_in_every_worker_and_usr2_runs_pre_exec_first() {
    let mut m = started(cfg(2));
    let out = m.signal(Sig::Usr1, at(1.0));
    assert_eq!(out[0], Output::ReopenLogs);
    let mut to = sends(&out);
    to.sort_unstable();
    assert_eq!(to, vec![(101, libc::SIGUSR1), (102, libc::SIGUSR1)]);
    let out = m.signal(Sig::Usr2, at(1.0));
    assert_eq!(out, vec![Output::Hook(Hook::PreExec), Output::Reexec]);
}

#[test]
fn workers_are_numbered_in_fork_order() {
    let mut m = started(cfg(2));
    assert_eq!(m.worker(101).unwrap().id, 1);
    assert_eq!(m.worker(102).unwrap().id, 2);
    m.reaped(&[killed(101, libc::SIGSEGV)]);
    assert_eq!(m.next_id(), 3);
}

#[test]
fn restarts_are_counted_by_reason() {
    use crate::metrics::Restart;
    let count = |m: &Master, r: Restart| m.restarts()[r.index()];
    let mut c = cfg(2);
    c.max_requests = 10;
    c.max_worker_memory = 100;
    let mut m = Master::new(c);
    fork(&mut m, 101, 0.0, 10);
    fork(&mut m, 102, 0.0, 10);
    let look = |requests, rss| Look {
        requests,
        rss_mib: Some(rss),
        ..Look::default()
    };
    m.tick(at(1.0), &[(101, look(10, 1)), (102, look(1, 101))], false);
    assert_eq!(count(&m, Restart::MaxRequests), 1);
    assert_eq!(count(&m, Restart::Memory), 1);
    // The retired ones exit as asked: no crash.
    m.reaped(&[exited(101, 0, true), exited(102, 0, true)]);
    assert_eq!(count(&m, Restart::Crash), 0);
    fork(&mut m, 103, 1.0, 10);
    fork(&mut m, 104, 1.0, 10);
    m.tick(at(2.0), &[(103, stuck_look())], false);
    assert_eq!(count(&m, Restart::Timeout), 1);
    // Killed by someone else while serving: a crash; a worker that never booted: none.
    m.reaped(&[killed(104, libc::SIGKILL)]);
    assert_eq!(count(&m, Restart::Crash), 1);
    fork(&mut m, 105, 3.0, 10);
    m.reaped(&[exited(105, 1, false)]);
    assert_eq!(count(&m, Restart::Crash), 1);
    fork(&mut m, 106, 3.0, 10);
    // HUP: every serving worker is replaced (103 is dumping, not serving).
    m.reloaded(Ok(None), false, at(4.0));
    assert_eq!(count(&m, Restart::Reload), 1);
    assert_eq!(count(&m, Restart::Lifetime), 0);
}
