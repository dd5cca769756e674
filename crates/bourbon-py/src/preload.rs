//! `--preload`: the application imported once, in the master, and shared with the workers
//! through fork.
//!
//! It owns the import in the master and what is done to CPython's garbage collector around
//! it so that the memory the import filled stays shared (copy-on-write) between the
//! workers:
//!
//! - While the application is imported, automatic collection is paused by setting the
//!   first collection threshold to 0 (`gc.set_threshold(0, ...)`). A collection during the
//!   import would free objects and leave holes in the master's memory pages; the workers'
//!   allocations later fill those holes and each write copies a page that was shared.
//!   Pausing through the threshold rather than `gc.disable()` leaves `gc.isenabled()` to
//!   the application: one that disables collection itself at import time keeps it disabled,
//!   and one that sets its own thresholds keeps them (we only put ours back if they are
//!   still the paused ones).
//! - Right before every fork, `gc.freeze()` moves every object the master tracks into the
//!   permanent generation. A worker's collections then never traverse those objects, and
//!   so never write to their headers (a collection writes the reference-count copy in each
//!   object's header, which would copy every page holding a long-lived object). Freezing
//!   before each fork, not only once after the import, also covers what the master created
//!   since (it creates very little); the call only splices lists, so it costs nothing.
//!
//! Freezing keeps any garbage the import left in the master for good; it is a bounded, one-
//! time amount, shared by every worker, so that is the better trade than collecting it.
//! Without `--preload` nothing here runs and the workers' collectors are left as they are.

use bourbon_config::Config;
use pyo3::prelude::*;

/// Import the application in the master, with automatic collection paused; on failure the
/// traceback and summary are printed (as in a worker) and the exit code returned.
pub(crate) fn load(py: Python<'_>, cfg: &Config) -> Result<Py<PyAny>, i32> {
    let paused = pause_collection(py);
    let app = crate::startup::load_app(py, cfg).map(Bound::unbind);
    if let Some(saved) = paused {
        resume_collection(py, saved);
    }
    app
}

/// Before a fork in a master holding a preloaded application: freeze every tracked object.
pub(crate) fn freeze(py: Python<'_>) {
    if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("freeze")) {
        bourbon_server::log::warn(format_args!("gc.freeze() failed: {e}"));
    }
}

/// The thresholds as they were, once collection is paused; `None` if that failed (the
/// import then runs with collection as it was, which only costs some sharing).
fn pause_collection(py: Python<'_>) -> Option<(i64, i64, i64)> {
    let result = (|| -> PyResult<(i64, i64, i64)> {
        let gc = py.import("gc")?;
        let saved: (i64, i64, i64) = gc.call_method0("get_threshold")?.extract()?;
        gc.call_method1("set_threshold", (0, saved.1, saved.2))?;
        Ok(saved)
    })();
    result
        .map_err(|e| bourbon_server::log::debug(format_args!("cannot pause gc: {e}")))
        .ok()
}

/// Put the thresholds back, unless the application set its own while it was imported.
fn resume_collection(py: Python<'_>, saved: (i64, i64, i64)) {
    let result = (|| -> PyResult<()> {
        let gc = py.import("gc")?;
        let now: (i64, i64, i64) = gc.call_method0("get_threshold")?.extract()?;
        if now == (0, saved.1, saved.2) {
            gc.call_method1("set_threshold", saved)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        bourbon_server::log::warn(format_args!("cannot restore the gc thresholds: {e}"));
    }
}
