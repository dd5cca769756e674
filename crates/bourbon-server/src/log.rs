//! The error log: one process-wide sink (stderr or a file) with gunicorn's line format,
//! `[2026-11-25 12:00:00 +0000] [pid] [LEVEL] message`, or with `--log-format json` one JSON
//! object per line (`{"time":…,"level":…,"pid":…,"logger":…,"message":…,"traceback":…}`).
//!
//! This module owns where diagnostic lines go, how they are written and which levels pass,
//! where the process's standard output and error go with `--capture-output`
//! ([`capture_stdio`]), and how bourbon opens a
//! log file ([`open_log_file`], also used for the access log): created with mode
//! [`LOG_FILE_MODE`] whatever the umask, an existing file left as it is. It is deliberately
//! tiny and lock-based: it is off the request hot path (nothing is logged per successful
//! request here; the access log is a separate concern).
//!
//! The error log file keeps one descriptor number for the life of the process: [`reopen`]
//! opens the new file onto it (`dup2`), so whoever else writes to that number (faulthandler's
//! stack dumps, registered with [`file_fd`]) follows the rotation too, and so do descriptors
//! 1 and 2 when they were captured.
//!
//! Writers: [`log`] for the server's own lines, [`record`] for a line with a logger name
//! and a traceback (Python `logging` records, exceptions), [`write_stream`] for text an
//! application writes to a stream (`wsgi.errors`), [`write_raw`] for bytes as they are.

use std::fmt::Arguments;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The mode of a log file bourbon creates (error log, access log): the owner writes, the
/// group (`--group` when set) reads, others nothing. Logs hold request lines with their
/// query strings, client addresses and tracebacks, which are not for every local user.
pub const LOG_FILE_MODE: u32 = 0o640;

/// Log levels, in gunicorn's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Verbose diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unusual that the server handled.
    Warning,
    /// A failure of one request or connection.
    Error,
    /// A failure of the server.
    Critical,
}

impl Level {
    /// The level a Python `logging` level number falls in (a custom level between two
    /// standard ones counts as the lower one).
    pub fn from_python(levelno: i64) -> Level {
        match levelno {
            i64::MIN..=19 => Level::Debug,
            20..=29 => Level::Info,
            30..=39 => Level::Warning,
            40..=49 => Level::Error,
            _ => Level::Critical,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Where lines go.
enum Sink {
    Stderr,
    File(File),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) {
        match self {
            Sink::Stderr => {
                let _ = io::stderr().lock().write_all(bytes);
            }
            // Unbuffered: one write(2) per line, nothing held back.
            Sink::File(f) => {
                let _ = f.write_all(bytes);
            }
        }
    }
}

/// How lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// gunicorn's text lines.
    Text,
    /// One JSON object per line.
    Json,
}

struct Logger {
    level: Level,
    format: Format,
    sink: Mutex<Sink>,
    /// The file behind `sink`, if it is one: what [`reopen`] opens again.
    path: Option<PathBuf>,
    /// The descriptor of that file, which [`reopen`] keeps.
    fd: Option<RawFd>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set the level, the format and the destination (`-` or `None` = stderr). Only the first
/// call counts.
pub fn init(level: Level, format: Format, file: Option<&Path>) -> io::Result<()> {
    let path = file.filter(|p| p.as_os_str() != "-");
    let (sink, fd) = match path {
        Some(p) => {
            let f = open_log_file(p)?;
            let fd = f.as_raw_fd();
            (Sink::File(f), Some(fd))
        }
        None => (Sink::Stderr, None),
    };
    let _ = LOGGER.set(Logger {
        level,
        format,
        sink: Mutex::new(sink),
        path: path.map(Path::to_path_buf),
        fd,
    });
    Ok(())
}

/// Open a log file for appending. A file that does not exist is created with mode
/// [`LOG_FILE_MODE`] exactly: the mode is set again after creation (`fchmod`), because the
/// process umask (`--umask`, 0 by default as in gunicorn) is meant for the unix socket and
/// must neither widen nor narrow a log file. An existing file is opened as it is, its mode
/// and owner untouched: an operator (or logrotate's `create`) who chose them keeps them, and
/// nothing here ever makes a file more permissive.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    // A file removed between the two opens (a rotation at that very moment) is created on
    // the next round; three rounds are plenty.
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for _ in 0..3 {
        match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(LOG_FILE_MODE)
            .open(path)
        {
            Ok(f) => {
                f.set_permissions(Permissions::from_mode(LOG_FILE_MODE))?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match OpenOptions::new().append(true).open(path) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The error log file, when the log goes to a file (not stderr).
pub fn file_path() -> Option<&'static Path> {
    logger().path.as_deref()
}

/// The descriptor of the error log file, when the log goes to a file. It stays the same
/// across [`reopen`], which makes it fit for a writer that holds the number (faulthandler).
pub fn file_fd() -> Option<RawFd> {
    logger().fd
}

/// Open the error log file again (SIGUSR1, after logrotate moved it away): lines written
/// from now on go to a file at the configured path. The new file is opened onto the
/// descriptor already in use, so every holder of that number writes to the new file. With
/// stderr this does nothing. On failure the old file is kept.
pub fn reopen() -> io::Result<()> {
    let l = logger();
    if let Some(path) = &l.path {
        let file = open_log_file(path)?;
        // The lock keeps our own lines off the descriptor while it changes; a stack dump
        // written from a signal handler meanwhile goes whole to the old or the new file.
        let sink = l
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Sink::File(current) = &*sink {
            dup_onto(&file, current.as_raw_fd())?;
            if CAPTURED.load(Ordering::Relaxed) {
                for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
                    dup_onto(current, fd)?;
                }
            }
        }
    }
    Ok(())
}

/// Set once [`capture_stdio`] pointed descriptors 1 and 2 at the error log file.
static CAPTURED: AtomicBool = AtomicBool::new(false);

/// `--capture-output`: make descriptors 1 and 2 (standard output and error) refer to the
/// error log file, so that what the application, its C extensions and its subprocesses write
/// there lands in the error log, as gunicorn's `--capture-output` does. Called in the master
/// before it forks, so every worker inherits it; [`reopen`] keeps it across rotations.
/// Returns whether it did anything: with stderr as the error log, nothing is changed (as in
/// gunicorn).
pub fn capture_stdio() -> io::Result<bool> {
    let l = logger();
    let sink = l
        .sink
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Sink::File(file) = &*sink else {
        return Ok(false);
    };
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        dup_onto(file, fd)?;
    }
    CAPTURED.store(true, Ordering::Relaxed);
    Ok(true)
}

/// Whether descriptors 1 and 2 go to the error log file ([`capture_stdio`]).
pub fn captured() -> bool {
    CAPTURED.load(Ordering::Relaxed)
}

/// Set by SIGUSR1 once [`watch_reopen_signal`] was called.
static REOPEN_ASKED: AtomicBool = AtomicBool::new(false);

/// Note SIGUSR1 as it arrives (alongside whatever else handles it), for a process that cannot
/// act on it yet: a worker still loading the application, which must reopen its log files as
/// soon as it serves ([`take_reopen_request`]) rather than write to the rotated file until
/// the next rotation. From then on USR1 no longer ends the process by its default action.
#[allow(unsafe_code)]
pub fn watch_reopen_signal() -> io::Result<()> {
    // SAFETY: the action only stores to an atomic, which is async-signal-safe; the registry
    // chains it with the runtime's own handler for the same signal.
    unsafe {
        signal_hook_registry::register(libc::SIGUSR1, || {
            REOPEN_ASKED.store(true, Ordering::Relaxed);
        })
    }?;
    Ok(())
}

/// Whether SIGUSR1 arrived since [`watch_reopen_signal`] (or since the last call); clears it.
pub fn take_reopen_request() -> bool {
    REOPEN_ASKED.swap(false, Ordering::Relaxed)
}

/// Make descriptor `to` refer to the file `from` is open on (`dup2`), closing what `to` was.
/// Used for the error log's own descriptor and for stderr redirected to it (`--daemon`).
#[allow(unsafe_code)]
pub fn dup_onto(from: &File, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on a descriptor `from` owns and a descriptor number the caller owns and
    // means to replace; dup2 closes the old one atomically, and no Rust object is invalidated
    // (the `File` owning `to`, if any, now owns a descriptor for the new file).
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        level: Level::Info,
        format: Format::Text,
        sink: Mutex::new(Sink::Stderr),
        path: None,
        fd: None,
    })
}

/// Whether lines at `level` are written.
pub fn enabled(level: Level) -> bool {
    level >= logger().level
}

/// Write one formatted line at `level`.
pub fn log(level: Level, args: Arguments<'_>) {
    crate::metrics::statsd_log(level);
    let l = logger();
    if level < l.level {
        return;
    }
    match l.format {
        Format::Text => {
            let now = httpdate_like_now();
            let line = format!(
                "[{now}] [{}] [{}] {args}\n",
                std::process::id(),
                level.name()
            );
            write_raw(line.as_bytes());
        }
        Format::Json => {
            let message = args.to_string();
            write_raw(json_line(level, None, &message, None).as_bytes());
        }
    }
}

/// Write one record at `level`: a message from the named `logger` (a Python logger's name;
/// `None` for the server's own lines) with the `traceback` that goes with it. As text, the
/// logger's name prefixes the message and the traceback follows the line as it is (the
/// gunicorn shape); as JSON, they are fields of the one object.
pub fn record(level: Level, logger_name: Option<&str>, message: &str, traceback: Option<&str>) {
    let l = logger();
    if level < l.level {
        return;
    }
    match l.format {
        Format::Text => {
            let mut line = String::with_capacity(message.len() + 64);
            line.push_str(&format!(
                "[{}] [{}] [{}] ",
                httpdate_like_now(),
                std::process::id(),
                level.name()
            ));
            if let Some(name) = logger_name {
                line.push_str(name);
                line.push_str(": ");
            }
            line.push_str(message);
            line.push('\n');
            if let Some(tb) = traceback.filter(|t| !t.is_empty()) {
                line.push_str(tb);
                if !tb.ends_with('\n') {
                    line.push('\n');
                }
            }
            // One write: the headline and its traceback are never split by another line.
            write_raw(line.as_bytes());
        }
        Format::Json => {
            let line = json_line(level, logger_name, message, traceback);
            write_raw(line.as_bytes());
        }
    }
}

/// An error with its traceback (`headline` names what failed).
pub fn exception(headline: &str, traceback: &str) {
    record(Level::Error, None, headline, Some(traceback));
}

/// One JSON object and its newline. Every string goes through serde_json, so quotes,
/// backslashes, control characters and newlines (a traceback's) are escaped and the object
/// stays on one line.
fn json_line(level: Level, logger_name: Option<&str>, message: &str, tb: Option<&str>) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_owned());
    let mut line = format!(
        "{{\"time\":\"{}\",\"level\":\"{}\",\"pid\":{}",
        rfc3339_now(),
        level.name(),
        std::process::id()
    );
    if let Some(name) = logger_name {
        line.push_str(",\"logger\":");
        line.push_str(&s(name));
    }
    line.push_str(",\"message\":");
    line.push_str(&s(message.strip_suffix('\n').unwrap_or(message)));
    if let Some(tb) = tb.filter(|t| !t.is_empty()) {
        line.push_str(",\"traceback\":");
        line.push_str(&s(tb.strip_suffix('\n').unwrap_or(tb)));
    }
    line.push_str("}\n");
    line
}

thread_local! {
    /// Text written to a stream by this thread that does not end a line yet.
    static PARTIAL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The logger name of [`write_stream`]'s records.
const STREAM_LOGGER: &str = "wsgi.errors";

/// Text an application writes to its error stream (`wsgi.errors`). As text it goes out as
/// it is, at once. As JSON, each thread's writes are gathered into lines and the complete
/// lines of a write become one record (at ERROR, logger `wsgi.errors`), so that
/// `print(x, file=errors)`, which writes `x` and `\n` apart, makes one object, and a
/// traceback written at once stays one object; [`flush_stream`] writes what is left.
pub fn write_stream(text: &str) {
    let l = logger();
    if l.format == Format::Text {
        write_raw(text.as_bytes());
        return;
    }
    let complete = PARTIAL.with(|p| {
        let mut p = p.borrow_mut();
        p.push_str(text);
        let end = p.rfind('\n')? + 1;
        let rest = p.split_off(end);
        Some(std::mem::replace(&mut *p, rest))
    });
    if let Some(lines) = complete {
        record(Level::Error, Some(STREAM_LOGGER), &lines, None);
    }
}

/// Write what this thread left unfinished in [`write_stream`] (the stream's `flush()`).
pub fn flush_stream() {
    let rest = PARTIAL.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if !rest.is_empty() {
        record(Level::Error, Some(STREAM_LOGGER), &rest, None);
    }
}

/// Write bytes as they are, flushing at once so that a crash never loses them. With
/// `--log-format json` only JSON lines should come here; text goes through [`record`] or
/// [`write_stream`].
pub fn write_raw(bytes: &[u8]) {
    let l = logger();
    if let Ok(mut sink) = l.sink.lock() {
        sink.write_all(bytes);
    }
}

/// Debug line.
pub fn debug(args: Arguments<'_>) {
    log(Level::Debug, args);
}
/// Info line.
pub fn info(args: Arguments<'_>) {
    log(Level::Info, args);
}
/// Warning line.
pub fn warn(args: Arguments<'_>) {
    log(Level::Warning, args);
}
/// Error line.
pub fn error(args: Arguments<'_>) {
    log(Level::Error, args);
}

/// `2026-11-25 12:00:00 +0000` in UTC, as gunicorn's error log prints it.
fn httpdate_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000")
}

/// `2026-11-25T12:00:00.123Z`: RFC 3339 in UTC with milliseconds, for JSON lines.
fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil_from_unix(now.as_secs());
    let ms = now.subsec_millis();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Convert seconds since the epoch to a UTC civil date and time (days-from-civil inverse,
/// valid for the proleptic Gregorian calendar).
pub(crate) fn civil_from_unix(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (y, m as u32, d as u32, h as u32, mi as u32, s as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn umask(mask: libc::mode_t) -> libc::mode_t {
        // SAFETY: umask(2) only swaps a per-process value and cannot fail.
        #[allow(unsafe_code)]
        unsafe {
            libc::umask(mask)
        }
    }

    #[test]
    fn log_files_are_created_with_their_own_mode_and_existing_ones_keep_theirs() {
        let dir = std::env::temp_dir().join(format!("bourbon-log-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let new = dir.join("new.log");
        let old = dir.join("old.log");
        let _ = std::fs::remove_file(&new);
        std::fs::write(&old, b"kept\n").unwrap();
        std::fs::set_permissions(&old, Permissions::from_mode(0o600)).unwrap();
        // A umask that would narrow the mode: it is set back all the same. (umask 0, the
        // default, cannot widen it: the file is opened with 0640, not 0666.)
        let saved = umask(0o077);
        let created = open_log_file(&new);
        let existing = open_log_file(&old);
        umask(saved);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        created.unwrap().write_all(b"line\n").unwrap();
        existing.unwrap().write_all(b"more\n").unwrap();
        assert_eq!(mode(&new), LOG_FILE_MODE);
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"kept\nmore\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_lines_are_one_escaped_object_per_line() {
        let tb =
            "Traceback (most recent call last):\n  File \"app.py\", line 1\nValueError: a\tb\n";
        let line = json_line(Level::Error, Some("my.app"), "bad \"x\"\n", Some(tb));
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["logger"], "my.app");
        assert_eq!(v["message"], "bad \"x\"");
        assert_eq!(v["traceback"], tb.trim_end_matches('\n'));
        assert_eq!(v["pid"], u64::from(std::process::id()));
        let time = v["time"].as_str().unwrap();
        assert_eq!((time.len(), &time[10..11], &time[23..]), (24, "T", "Z"));
        let plain: serde_json::Value =
            serde_json::from_str(&json_line(Level::Info, None, "up", None)).unwrap();
        assert!(plain.get("logger").is_none() && plain.get("traceback").is_none());
    }

    #[test]
    fn python_levels() {
        let l = |n| Level::from_python(n);
        assert_eq!(
            [l(0), l(10), l(20), l(25), l(30), l(40), l(50), l(60)],
            [
                Level::Debug,
                Level::Debug,
                Level::Info,
                Level::Info,
                Level::Warning,
                Level::Error,
                Level::Critical,
                Level::Critical
            ]
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_609_380), (2026, 11, 25, 12, 23, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
