//! The error log: one process-wide sink (stderr or a file) with gunicorn's line format,
//! `[2026-11-25 12:00:00 +0000] [pid] [LEVEL] message`.
//!
//! This module owns where diagnostic lines go and which levels pass. It is deliberately tiny and
//! lock-based: it is off the request hot path (nothing is logged per successful request here;
//! the access log is a separate concern).

use std::fmt::Arguments;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

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

struct Logger {
    level: Level,
    sink: Mutex<Box<dyn Write + Send>>,
    /// The file behind `sink`, if it is one: what [`reopen`] opens again.
    path: Option<PathBuf>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set the level and the destination (`-` or `None` = stderr). Only the first call counts.
pub fn init(level: Level, file: Option<&Path>) -> std::io::Result<()> {
    let path = file.filter(|p| p.as_os_str() != "-");
    let sink: Box<dyn Write + Send> = match path {
        Some(p) => Box::new(open_append(p)?),
        None => Box::new(std::io::stderr()),
    };
    let _ = LOGGER.set(Logger {
        level,
        sink: Mutex::new(sink),
        path: path.map(Path::to_path_buf),
    });
    Ok(())
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The error log file, when the log goes to a file (not stderr).
pub fn file_path() -> Option<&'static Path> {
    logger().path.as_deref()
}

/// Open the error log file again (SIGUSR1, after logrotate moved it away): lines written
/// from now on go to a file at the configured path. With stderr this does nothing. On
/// failure the old file is kept.
pub fn reopen() -> std::io::Result<()> {
    let l = logger();
    if let Some(path) = &l.path {
        let file = open_append(path)?;
        if let Ok(mut sink) = l.sink.lock() {
            *sink = Box::new(file);
        }
    }
    Ok(())
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        level: Level::Info,
        sink: Mutex::new(Box::new(std::io::stderr())),
        path: None,
    })
}

/// Whether lines at `level` are written.
pub fn enabled(level: Level) -> bool {
    level >= logger().level
}

/// Write one formatted line at `level`.
pub fn log(level: Level, args: Arguments<'_>) {
    let l = logger();
    if level < l.level {
        return;
    }
    let now = httpdate_like_now();
    let line = format!(
        "[{now}] [{}] [{}] {args}\n",
        std::process::id(),
        level.name()
    );
    write_raw(line.as_bytes());
}

/// Write bytes as they are (tracebacks, `wsgi.errors`), flushing at once so that a crash
/// never loses them.
pub fn write_raw(bytes: &[u8]) {
    let l = logger();
    if let Ok(mut sink) = l.sink.lock() {
        let _ = sink.write_all(bytes);
        let _ = sink.flush();
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
    use super::civil_from_unix;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_609_380), (2026, 11, 25, 12, 23, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
