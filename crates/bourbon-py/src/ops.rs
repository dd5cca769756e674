//! The Python side of the operations steps in `bourbon_process::ops`: what needs the
//! interpreter's own view of the process. Python copied the environment and the command
//! line at start, so the variables the process model takes out of the environment
//! (`NOTIFY_SOCKET`, `BOURBON_FDS`, systemd's `LISTEN_*`) are removed from `os.environ`
//! too, and the program to re-execute on SIGUSR2 is `sys.executable` with `sys.orig_argv`.
//! Everything else is re-exported as it is.

use std::path::PathBuf;

use bourbon_config::Config;
use bourbon_process::privileges::Accounts;
use bourbon_process::upgrade::Launch;
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;
use pyo3::prelude::*;

pub(crate) use bourbon_process::ops::{app_name, reopen_logs, ExitGuard, Origin};

/// Step 1 (see `bourbon_process::ops`). Returns the accounts to switch to later.
pub(crate) fn before_bind(py: Python<'_>, cfg: &Config) -> Result<Accounts, i32> {
    if bourbon_process::notify::init() {
        forget_env(py, &[bourbon_process::notify::NOTIFY_VAR]);
    }
    record_launch(py);
    bourbon_process::ops::before_bind(cfg)
}

/// Step 2: every listening socket, or the exit code.
pub(crate) fn open_listeners(py: Python<'_>, cfg: &Config) -> Result<(Vec<Listener>, Origin), i32> {
    let handed_over = std::env::var_os(bourbon_process::upgrade::FDS_VAR).is_some();
    let result = bourbon_process::ops::open_listeners(cfg);
    if handed_over {
        // Taken out whether or not the descriptors were usable, as the process model did.
        forget_env(py, &[bourbon_process::upgrade::FDS_VAR]);
    }
    if let Ok((_, origin)) = &result {
        forget_env(py, bourbon_process::ops::handover_vars(*origin));
    }
    result
}

/// Steps 3 to 6. Returns the exit guard, or the exit code.
pub(crate) fn after_bind(
    cfg: &Config,
    listeners: &[Listener],
    origin: Origin,
    accounts: &Accounts,
    access_log: Option<&AccessLog>,
) -> Result<ExitGuard, i32> {
    // Start-up holds the GIL here; this only gets its token, for the fork protocol.
    Python::attach(|py| {
        let mut fork = crate::boot::CPythonFork(py);
        bourbon_process::ops::after_bind(cfg, listeners, origin, accounts, access_log, &mut fork)
    })
}

/// Remove `vars` from `os.environ` (the process's environment no longer has them).
fn forget_env(py: Python<'_>, vars: &[&str]) {
    let _ = py.import("os").and_then(|os| {
        let environ = os.getattr("environ")?;
        for var in vars {
            environ.call_method1("pop", (*var, py.None()))?;
        }
        Ok(())
    });
}

/// Remember how this program was started, for SIGUSR2. Call before `--chdir` is applied.
fn record_launch(py: Python<'_>) {
    let launch = (|| -> PyResult<Launch> {
        let sys = py.import("sys")?;
        let program: String = sys.getattr("executable")?.extract()?;
        let orig: Vec<String> = sys.getattr("orig_argv")?.extract()?;
        let cwd: String = py.import("os")?.call_method0("getcwd")?.extract()?;
        Ok(Launch {
            program: PathBuf::from(program),
            args: orig.into_iter().skip(1).collect(),
            cwd: PathBuf::from(cwd),
        })
    })();
    match launch {
        Ok(l) => bourbon_process::upgrade::record(l),
        Err(e) => log::debug(format_args!("cannot record the command line: {e}")),
    }
}
