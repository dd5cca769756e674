//! The `bourbon status` and `bourbon top` commands: find the master's control socket
//! ([`crate::control`]), read one snapshot, and print it as a table, as JSON, or (`top`) as
//! a view refreshed in the terminal.
//!
//! Exit codes follow the LSB's for a service's `status` action, so scripts and health
//! checks can tell the cases apart: 0 the status was read, 2 a bad flag, 3 no server (no
//! socket, nobody listening on it, the pid file's process gone), 4 a server whose status
//! cannot be read (permissions, no reply in time, several servers and none named).
#![allow(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::control::{self, FindError, Locator};

/// The status was read.
pub const EXIT_OK: i32 = 0;
/// A bad flag.
pub const EXIT_USAGE: i32 = 2;
/// No server (LSB: "program is not running").
pub const EXIT_NO_SERVER: i32 = 3;
/// A server whose status cannot be read (LSB: "status is unknown").
pub const EXIT_UNKNOWN: i32 = 4;

/// How long a client waits for the master's reply.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// `bourbon top --interval`'s bounds and default, in seconds.
const INTERVAL_MIN: f64 = 0.2;
const INTERVAL_MAX: f64 = 60.0;
const INTERVAL_DEFAULT: f64 = 1.0;

const STATUS_HELP: &str = "\
usage: bourbon status [--json] [--control-socket PATH | --pid FILE]

Show each worker of a running bourbon server: pid, state, age, requests served, the
requests in progress with their age, resident memory, Python threads busy/total.

  --json                 print the master's JSON snapshot (schema: docs/status.md)
  --control-socket PATH  the master's control socket (default: BOURBON_CONTROL_SOCKET, else
                         found from --pid, else the only server of this user)
  --pid FILE             the master's pid file (default: BOURBON_PID)

Exit codes: 0 shown, 2 bad flag, 3 no server, 4 a server whose status cannot be read.
";

const TOP_HELP: &str = "\
usage: bourbon top [--interval SECS] [--once] [--control-socket PATH | --pid FILE]

The view of `bourbon status`, refreshed in the terminal; q or Ctrl-C quits.

  --interval SECS        seconds between refreshes, 0.2 to 60 (default 1)
  --once                 print one view and exit (also when stdout is not a terminal)
  --control-socket PATH  as for `bourbon status`
  --pid FILE             as for `bourbon status`

Exit codes: 0 quit, 2 bad flag, 3 no server (or it went away), 4 unreadable status.
";

/// What the command line asked for.
struct Args {
    loc: Locator,
    json: bool,
    once: bool,
    interval: f64,
}

/// Parse `args`; `Err` is the exit code after the help or the error line was printed.
fn parse(args: &[String], top: bool) -> Result<Args, i32> {
    let cmd = if top { "top" } else { "status" };
    let mut out = Args {
        loc: Locator::default(),
        json: false,
        once: false,
        interval: INTERVAL_DEFAULT,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, i32> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| {
                    eprintln!("error: bourbon {cmd}: {name} needs a value");
                    EXIT_USAGE
                })
        };
        match flag {
            "-h" | "--help" => {
                print!("{}", if top { TOP_HELP } else { STATUS_HELP });
                return Err(EXIT_OK);
            }
            "--json" if !top => out.json = true,
            "--once" if top => out.once = true,
            "--interval" if top => {
                let v = value("--interval")?;
                match v.parse::<f64>() {
                    Ok(s) if (INTERVAL_MIN..=INTERVAL_MAX).contains(&s) => out.interval = s,
                    _ => {
                        eprintln!(
                            "error: bourbon top: --interval '{v}': give seconds from \
                             {INTERVAL_MIN} to {INTERVAL_MAX}, e.g. --interval 2"
                        );
                        return Err(EXIT_USAGE);
                    }
                }
            }
            "--control-socket" => out.loc.socket = Some(PathBuf::from(value(flag)?)),
            "--pid" | "-p" => out.loc.pid_file = Some(PathBuf::from(value(flag)?)),
            other => {
                eprintln!(
                    "error: bourbon {cmd}: unknown argument '{other}' (see bourbon {cmd} --help)"
                );
                return Err(EXIT_USAGE);
            }
        }
    }
    // The server's own variables, so a shell (or a container) that has them finds it.
    if out.loc.socket.is_none() && out.loc.pid_file.is_none() {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        match env("BOURBON_CONTROL_SOCKET") {
            Some(v) if v == "off" => {}
            Some(v) => out.loc.socket = Some(PathBuf::from(v)),
            None => out.loc.pid_file = env("BOURBON_PID").map(PathBuf::from),
        }
    }
    Ok(out)
}

fn fail(e: &FindError) -> i32 {
    eprintln!("bourbon: {e}");
    match e {
        FindError::NoServer(_) => EXIT_NO_SERVER,
        FindError::Unknown(_) => EXIT_UNKNOWN,
    }
}

fn read(loc: &Locator) -> Result<Value, FindError> {
    let path = control::find(loc)?;
    control::fetch(&path, READ_TIMEOUT)
}

/// `bourbon status ARGS`; returns the exit code.
pub fn status_main(args: &[String]) -> i32 {
    let args = match parse(args, false) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let snap = match read(&args.loc) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let text = if args.json {
        format!("{snap}\n")
    } else {
        render(&snap, None)
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    EXIT_OK
}

/// `bourbon top ARGS`; returns the exit code.
pub fn top_main(args: &[String]) -> i32 {
    let args = match parse(args, true) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let path = match control::find(&args.loc) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    // SAFETY: isatty only queries a descriptor.
    let tty = unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 };
    if args.once || !tty {
        return match control::fetch(&path, READ_TIMEOUT) {
            Ok(snap) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(render(&snap, None).as_bytes());
                let _ = stdout.flush();
                EXIT_OK
            }
            Err(e) => fail(&e),
        };
    }
    let _signals = QuitSignals::install();
    let raw = RawInput::enter();
    let mut stdout = std::io::stdout();
    // The alternate screen, cursor hidden: the terminal comes back as it was.
    let _ = stdout.write_all(b"\x1b[?1049h\x1b[?25l");
    let interval = Duration::from_secs_f64(args.interval);
    let code = loop {
        let snap = match control::fetch(&path, READ_TIMEOUT) {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        let view = render(&snap, Some(args.interval));
        // Home, the view with each line's rest cleared, then the rest of the screen.
        let mut frame = String::from("\x1b[H");
        for line in view.lines() {
            frame.push_str(line);
            frame.push_str("\x1b[K\n");
        }
        frame.push_str("\x1b[J");
        let _ = stdout.write_all(frame.as_bytes());
        let _ = stdout.flush();
        if wait_for_quit(raw.is_some(), interval) {
            break Ok(());
        }
    };
    let _ = stdout.write_all(b"\x1b[?25h\x1b[?1049l");
    let _ = stdout.flush();
    drop(raw);
    match code {
        Ok(()) => EXIT_OK,
        Err(e) => fail(&e),
    }
}

/// The terminal's input without line buffering, echo or signal keys (Ctrl-C arrives as a
/// byte, so `top` restores the terminal itself), restored on drop.
struct RawInput {
    saved: libc::termios,
}

impl RawInput {
    fn enter() -> Option<RawInput> {
        // SAFETY: tcgetattr/tcsetattr on stdin with termios structs we own.
        unsafe {
            if libc::isatty(libc::STDIN_FILENO) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
            raw.c_cc[libc::VMIN] = 0;
            raw.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawInput { saved })
        }
    }
}

/// Set by a SIGINT, SIGTERM or SIGHUP while `top` runs (with the terminal in raw mode,
/// Ctrl-C arrives as a key instead).
static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_quit(_sig: libc::c_int) {
    QUIT.store(true, Ordering::Relaxed);
}

/// `top`'s own handlers for the stop signals (the process's, Python's, are put back on
/// drop): the loop is in Rust, where Python's handler would only set a flag no one reads.
struct QuitSignals {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl QuitSignals {
    fn install() -> QuitSignals {
        let mut saved = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction is valid; the handler only stores an atomic. No
            // SA_RESTART, so a wait in poll(2) returns at once.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_quit as *const () as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        QuitSignals { saved }
    }
}

impl Drop for QuitSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restoring the action saved for this signal.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// Wait up to `wait`; whether to quit: a stop signal, or (`keys`: stdin is the raw
/// terminal) q, Q or Ctrl-C typed.
fn wait_for_quit(keys: bool, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    // Bounded: every turn reads a key, is woken by a signal, or waits to the deadline.
    for _ in 0..1000 {
        if QUIT.load(Ordering::Relaxed) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: if keys { libc::STDIN_FILENO } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(1000);
        // SAFETY: poll on one pollfd we own (a negative fd is skipped: a plain wait).
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 || !keys {
            continue;
        }
        let mut buf = [0u8; 32];
        // SAFETY: reading into our buffer from stdin (VMIN 0: never blocks).
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return true; // the terminal went away
        }
        let n = usize::try_from(n).unwrap_or(0);
        if buf[..n].iter().any(|&b| matches!(b, b'q' | b'Q' | 0x03)) {
            return true;
        }
    }
    false
}

impl Drop for RawInput {
    fn drop(&mut self) {
        // SAFETY: restoring the termios saved from this same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

fn fmt_secs(v: &Value) -> String {
    let Some(s) = v.as_f64() else {
        return "-".to_owned();
    };
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 172_800.0 {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d{:02}h",
            (s / 86400.0) as u64,
            ((s % 86400.0) / 3600.0) as u64
        )
    }
}

fn fmt_bytes(v: &Value) -> String {
    let Some(b) = v.as_u64() else {
        return "-".to_owned();
    };
    let mib = b as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1}G", mib / 1024.0)
    } else {
        format!("{mib:.1}M")
    }
}

/// The snapshot as a table (`interval`: `top`'s header line says how often it refreshes).
fn render(snap: &Value, interval: Option<f64>) -> String {
    let m = &snap["master"];
    let workers = snap["workers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut out = format!(
        "bourbon {} · master {} · {} · up {} · {}/{} workers{}{}\n",
        snap["version"].as_str().unwrap_or("?"),
        m["pid"],
        m["app"].as_str().unwrap_or("?"),
        fmt_secs(&m["uptime_s"]),
        workers.len(),
        m["workers_target"],
        if m["stopping"].as_bool() == Some(true) {
            " · STOPPING"
        } else {
            ""
        },
        interval
            .map(|s| format!(" · every {s}s, q quits"))
            .unwrap_or_default(),
    );
    let total: u64 = workers.iter().filter_map(|w| w["requests"].as_u64()).sum();
    out.push_str(&format!("requests served: {total}\n\n"));
    out.push_str(&format!(
        "{:<8} {:>4} {:<9} {:>7} {:>9} {:>8} {:>7} {:>6}  {}\n",
        "PID", "ID", "STATE", "AGE", "REQUESTS", "RSS", "THREADS", "BEAT", "CURRENT (AGE REQUEST)"
    ));
    for w in workers {
        let threads = match (&w["threads"]["busy"], &w["threads"]["total"]) {
            (Value::Number(b), Value::Number(t)) => format!("{b}/{t}"),
            _ => w["interface"].as_str().unwrap_or("-").to_owned(),
        };
        let calls = w["current"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let call = |c: &Value| {
            format!(
                "{} {}",
                fmt_secs(&c["age_s"]),
                c["request"].as_str().unwrap_or("").escape_debug()
            )
        };
        out.push_str(&format!(
            "{:<8} {:>4} {:<9} {:>7} {:>9} {:>8} {:>7} {:>6}  {}\n",
            w["pid"].to_string(),
            w["id"].to_string(),
            w["state"].as_str().unwrap_or("?"),
            fmt_secs(&w["age_s"]),
            w["requests"].to_string(),
            fmt_bytes(&w["rss_bytes"]),
            threads,
            fmt_secs(&w["heartbeat_age_s"]),
            calls.first().map(call).unwrap_or_else(|| "-".to_owned()),
        ));
        for c in calls.iter().skip(1) {
            out.push_str(&format!("{:>76}{}\n", "", call(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_shows_each_worker_and_its_calls() {
        let snap: Value = serde_json::from_str(
            r#"{"schema":1,"version":"0.1.0","master":{"pid":10,"app":"m:app","uptime_s":3.0,
            "workers_target":2,"stopping":false},"workers":[
            {"pid":11,"id":1,"state":"busy","age_s":2.5,"requests":4,"rss_bytes":10485760,
             "interface":"wsgi","threads":{"busy":2,"total":4},"heartbeat_age_s":0.1,
             "current":[{"request":"GET /a HTTP/1.1","age_s":1.25},
                        {"request":"GET /b HTTP/1.1","age_s":0.5}]},
            {"pid":12,"id":2,"state":"serving","age_s":7300,"requests":0,"rss_bytes":null,
             "interface":"asgi","threads":null,"heartbeat_age_s":0.2,"current":[]}]}"#,
        )
        .unwrap();
        let text = render(&snap, None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("master 10") && lines[0].contains("2/2 workers"));
        assert!(lines[1].ends_with("requests served: 4"));
        assert!(lines[4].starts_with("11          1 busy "), "{}", lines[4]);
        assert!(lines[4].contains("2/4") && lines[4].contains("10.0M"));
        assert!(lines[4].ends_with("1.2s GET /a HTTP/1.1"), "{}", lines[4]);
        assert!(lines[5].trim() == "0.5s GET /b HTTP/1.1");
        assert!(lines[6].contains("serving") && lines[6].contains("asgi"));
        assert!(lines[6].contains("2h01m"));
    }

    #[test]
    fn bad_flags_exit_2() {
        let a = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse(&a(&["--bogus"]), false).err(), Some(EXIT_USAGE));
        assert_eq!(
            parse(&a(&["--interval", "0"]), true).err(),
            Some(EXIT_USAGE)
        );
        assert_eq!(parse(&a(&["--once"]), false).err(), Some(EXIT_USAGE));
        let ok = parse(&a(&["--interval=2", "--pid", "x.pid"]), true).unwrap();
        assert!((ok.interval - 2.0).abs() < f64::EPSILON);
        assert_eq!(ok.loc.pid_file, Some(PathBuf::from("x.pid")));
    }
}
