//! Python's side of the error log: `--log-config`, `--capture-output`, and Python `logging`
//! records reaching the error log (`python/bourbon/_logging.py` holds the Python half).
//!
//! The error log is `bourbon-server`'s (`log.rs`); this module decides when Python's
//! `logging` is connected to it. In the master, before any application is imported
//! ([`setup`]): the standard streams are captured, `--log-config` is applied (so workers
//! inherit it, as under gunicorn), and records no handler takes go to the error log. Right
//! after the application is imported ([`adopt_root`]): the root logger gets the error log
//! handler unless the application (Django's `LOGGING`, `basicConfig()`) configured it, so
//! what the application configured at import is never replaced, and never with
//! `--log-config` (the file says where records go).

use bourbon_config::{Config, LogLevel};
use bourbon_server::log;
use pyo3::prelude::*;

/// The exit code for a bad setting.
const EXIT_CONFIG: i32 = 2;

/// Python's number for `--log-level`.
fn python_level(level: LogLevel) -> i32 {
    match level {
        LogLevel::Debug => 10,
        LogLevel::Info => 20,
        LogLevel::Warning => 30,
        LogLevel::Error => 40,
        LogLevel::Critical => 50,
    }
}

/// In the master (or `--check-config`), after `--chdir` and `--pythonpath` (a log
/// configuration may name the project's handler classes): capture the standard streams
/// when `capture` (not for `--check-config`, whose verdict is for the terminal), apply
/// `--log-config`, route records without a handler to the error log. A log configuration
/// that cannot be applied is one line naming it, and exit 2.
pub(crate) fn setup(py: Python<'_>, cfg: &Config, capture: bool) -> Result<(), i32> {
    let module = match py.import("bourbon._logging") {
        Ok(m) => m,
        Err(e) => {
            log::error(format_args!("cannot import bourbon._logging: {e}"));
            return Err(1);
        }
    };
    if capture && cfg.capture_output {
        let _ = module.call_method0("capture_prepare");
        match log::capture_stdio() {
            Ok(true) => {
                let _ = module.call_method0("capture_done");
            }
            Ok(false) => log::info(format_args!(
                "--capture-output: the error log is standard error already; nothing to capture"
            )),
            Err(e) => log::warn(format_args!("--capture-output: {e}")),
        }
    }
    if let Some(path) = &cfg.log_config {
        let shown = path.display().to_string();
        if let Err(e) = module.call_method1("configure", (shown.as_str(),)) {
            let why = e
                .value(py)
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| e.to_string());
            let line = format!(
                "--log-config {shown}: {why}; fix the file or drop --log-config (docs/logging.md)"
            );
            log::error(format_args!("{line}"));
            // The one line on the terminal too, when the error log is a file.
            if log::file_path().is_some() && !log::captured() {
                eprintln!("error: {line}");
            }
            return Err(EXIT_CONFIG);
        }
    }
    if let Err(e) = module.call_method1("install", (python_level(cfg.log_level),)) {
        log::warn(format_args!(
            "Python logging records without a handler will go to stderr: {e}"
        ));
    }
    Ok(())
}

/// Right after the application was imported: give the root logger the error log handler
/// unless something configured it. Idempotent (a preloaded application's workers call it
/// again and find the handler there). With `--log-config` the file is the whole
/// configuration: a logger it sent to `bourbon.ErrorLogHandler` would otherwise be written
/// twice, once more through the root.
pub(crate) fn adopt_root(py: Python<'_>, cfg: &Config) {
    if cfg.log_config.is_some() {
        return;
    }
    let adopted = py.import("bourbon._logging").and_then(|m| {
        m.call_method1("adopt_root", (python_level(cfg.log_level),))?
            .extract::<bool>()
    });
    match adopted {
        Ok(true) => log::debug(format_args!(
            "Python logging: the root logger writes to the error log"
        )),
        Ok(false) => log::debug(format_args!(
            "Python logging: the root logger keeps the handlers the application configured"
        )),
        Err(e) => log::warn(format_args!("Python logging is not connected: {e}")),
    }
}

/// A Python `logging` record for the error log (`bourbon.ErrorLogHandler.emit`).
#[pyfunction]
#[pyo3(signature = (levelno, name, message, traceback=None))]
pub(crate) fn _log_record(levelno: i64, name: &str, message: &str, traceback: Option<&str>) {
    log::record(
        log::Level::from_python(levelno),
        Some(name),
        message,
        traceback,
    );
}
