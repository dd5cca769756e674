//! `bourbon._bourbon`: the only crate that links Python.
//!
//! This file only registers the module's functions and classes; the WSGI adapter lives in
//! [`wsgi`], starting a server from the command line in [`run`] (`startup.rs`). The master
//! and everything around it is `bourbon-process`, which knows nothing of Python: `boot.rs`
//! is what it asks of Python (CPython's fork protocol, gunicorn's hooks, `--preload` in
//! `preload.rs`, the worker's life), `ops.rs` the start-up steps that need the
//! interpreter's view of the environment, and `supervise.rs` the worker's side of
//! supervision (stack dumps, the request-path record). An ASGI application is recognised
//! and refused in `appkind.rs`.

mod appkind;
mod asgi;
mod boot;
mod compat;
mod ops;
mod pool;
mod preload;
mod pylog;
mod startup;
mod statics;
mod supervise;
mod wsgi;

// The process model's modules under the names the rest of this crate uses.
use bourbon_process::{notify, scoreboard};

use pyo3::prelude::*;

/// `SERVER_SOFTWARE` in the environ.
pub(crate) const SERVER_SOFTWARE: &str = concat!("bourbon/", env!("CARGO_PKG_VERSION"));

/// Run the server with command-line arguments (without the program name); returns the exit
/// code: 0 on a clean stop, 1 when a socket cannot be bound, 2 for a bad setting, 4 when the
/// application cannot be imported (gunicorn's code).
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    startup::run(py, &argv)
}

/// Write to bourbon's error log, for the `log` object of gunicorn's server hooks and the
/// ASGI glue: `level` is `debug`, `info`, `warning`, `error` or `critical`, with the
/// `traceback` that goes with the message if any; `raw` writes text as an application's
/// error stream would (`wsgi.errors`).
#[pyfunction]
#[pyo3(signature = (level, message, traceback=None))]
fn _log(level: &str, message: &str, traceback: Option<&str>) {
    use bourbon_server::log;
    let level = match level {
        "debug" => log::Level::Debug,
        "info" => log::Level::Info,
        "warning" => log::Level::Warning,
        "error" => log::Level::Error,
        "critical" => log::Level::Critical,
        _ => {
            log::write_stream(message);
            log::flush_stream();
            return;
        }
    };
    log::record(level, None, message, traceback);
}

#[pymodule]
fn _bourbon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(_log, m)?)?;
    m.add_function(wrap_pyfunction!(pylog::_log_record, m)?)?;
    m.add_function(wrap_pyfunction!(asgi::engine::_asgi_wait, m)?)?;
    m.add_function(wrap_pyfunction!(asgi::engine::_asgi_serve, m)?)?;
    m.add_function(wrap_pyfunction!(asgi::engine::_asgi_runtime_fd, m)?)?;
    m.add_class::<asgi::cycle::Receive>()?;
    m.add_class::<asgi::handle::CallSoon>()?;
    m.add_class::<asgi::handle::CallSoonThreadsafe>()?;
    m.add_class::<asgi::handle::Handle>()?;
    m.add_class::<asgi::handle::TaskSetAdd>()?;
    m.add_class::<asgi::cycle::Send>()?;
    m.add_class::<asgi::websocket::WsReceive>()?;
    m.add_class::<asgi::websocket::WsSend>()?;
    m.add_class::<wsgi::input::InputStream>()?;
    m.add_class::<wsgi::start_response::StartResponse>()?;
    m.add_class::<wsgi::streams::ErrorsStream>()?;
    m.add_class::<wsgi::streams::FileWrapper>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<wsgi::input::ClientDisconnected>(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
