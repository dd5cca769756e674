//! What the process model (`bourbon-process`) asks of Python: [`PyBoot`] implements its
//! `Boot` trait. It owns the Python side of the master and of each fork: CPython's fork
//! protocol, gunicorn's server hooks and their `worker` objects, `--preload` and
//! `gc.freeze()`, re-reading the settings (a gunicorn config file is Python), the worker's
//! life after the fork (stack dumps, worker hooks, then `startup::serve_here`), and the GIL
//! released around the master's waits.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bourbon_config::Config;
use bourbon_process::reloader::Watch;
use bourbon_process::{Boot, ForkProtocol, Hook, HookRaised, PrivateExit, WorkerCtx, WorkerId};
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;
use pyo3::prelude::*;

use crate::compat::{self, Arg, Outcome};
use crate::startup::{announce, serve_here, EXIT_BOOT};

/// gunicorn's exit code when the application cannot be loaded.
const EXIT_APP_LOAD: i32 = 4;

/// Run the master (`bourbon_process::master`) for this Python program; returns the exit
/// code (in a forked worker: the worker's exit code, as the worker returns through here).
pub(crate) fn run_master(
    py: Python<'_>,
    cfg: &Config,
    argv: &[String],
    listeners: &[Listener],
    access_log: Option<Arc<AccessLog>>,
) -> i32 {
    let mut boot = PyBoot {
        py,
        argv,
        app: None,
        workers: HashMap::new(),
    };
    bourbon_process::master::run(&mut boot, cfg, listeners, access_log)
}

/// CPython's fork protocol, for a fork outside the master loop (`--daemon`). Holding a
/// `Python` token proves the GIL is held, which the protocol requires.
pub(crate) struct CPythonFork<'py>(pub(crate) Python<'py>);

impl ForkProtocol for CPythonFork<'_> {
    fn before_fork(&mut self) {
        // SAFETY: the GIL is held (we hold a `Python` token) and the process is
        // single-threaded, as `PyOS_BeforeFork` requires.
        unsafe { pyo3::ffi::PyOS_BeforeFork() }
    }

    fn after_fork_parent(&mut self) {
        // SAFETY: called in the parent right after the fork that `before_fork` preceded.
        unsafe { pyo3::ffi::PyOS_AfterFork_Parent() }
    }

    fn after_fork_child(&mut self) {
        // SAFETY: called in the child right after the fork that `before_fork` preceded.
        unsafe { pyo3::ffi::PyOS_AfterFork_Child() }
    }
}

/// The Python program, as the master sees it.
pub(crate) struct PyBoot<'py, 'a> {
    py: Python<'py>,
    /// The command line, to re-read the settings on HUP.
    argv: &'a [String],
    /// The application imported by the master (`--preload`), served by every worker.
    app: Option<Py<PyAny>>,
    /// The `worker` objects passed to gunicorn's hooks (only when hooks are defined), by
    /// worker number.
    workers: HashMap<WorkerId, Py<PyAny>>,
}

impl PyBoot<'_, '_> {
    fn worker_arg(&self, id: WorkerId) -> Option<Arg> {
        self.workers
            .get(&id)
            .map(|w| Arg::Worker(Some(w.clone_ref(self.py))))
    }
}

impl ForkProtocol for PyBoot<'_, '_> {
    fn before_fork(&mut self) {
        CPythonFork(self.py).before_fork();
    }

    fn after_fork_parent(&mut self) {
        CPythonFork(self.py).after_fork_parent();
    }

    fn after_fork_child(&mut self) {
        CPythonFork(self.py).after_fork_child();
    }
}

impl Boot for PyBoot<'_, '_> {
    fn announce(&mut self, listeners: &[Listener], cfg: &Config) {
        let threads = usize::try_from(cfg.threads.max(1)).unwrap_or(1);
        announce(listeners, threads);
    }

    fn preload(&mut self, cfg: &Config) -> Result<(), i32> {
        self.app = Some(crate::preload::load(self.py, cfg)?);
        Ok(())
    }

    fn preloaded(&self) -> bool {
        self.app.is_some()
    }

    fn set_server_state(&mut self, workers: usize, cfg: &Config) {
        compat::server_state(self.py, workers, &bourbon_process::ops::app_name(cfg));
    }

    fn hook(&mut self, hook: Hook) -> Result<(), HookRaised> {
        let py = self.py;
        let outcome = match hook {
            Hook::WhenReady => compat::call(py, "when_ready", vec![Arg::Server]),
            Hook::OnExit => compat::call(py, "on_exit", vec![Arg::Server]),
            Hook::PreExec => compat::call(py, "pre_exec", vec![Arg::Server]),
            Hook::OnReload => compat::call(py, "on_reload", vec![Arg::Server]),
            Hook::WorkersChanged { new, old } => {
                let new = i64::try_from(new).unwrap_or(i64::MAX);
                let old = i64::try_from(old).unwrap_or(i64::MAX);
                compat::call(
                    py,
                    "nworkers_changed",
                    vec![Arg::Server, Arg::Int(new), Arg::Int(old)],
                )
            }
            // Only with a `worker` object, that is when hooks are defined.
            Hook::PreFork(id) => match self.worker_arg(id) {
                Some(w) => compat::call(py, "pre_fork", vec![Arg::Server, w]),
                None => Outcome::Absent,
            },
            Hook::ChildExit(id) => match self.worker_arg(id) {
                Some(w) => compat::call(py, "child_exit", vec![Arg::Server, w]),
                None => Outcome::Absent,
            },
        };
        if outcome == Outcome::Raised {
            Err(HookRaised)
        } else {
            Ok(())
        }
    }

    fn has_abort_hook(&self) -> bool {
        compat::defined("worker_abort")
    }

    fn prepare_worker(&mut self, id: WorkerId) {
        if let Some(w) = compat::new_worker(self.py, id) {
            self.workers.insert(id, w);
            let _ = self.hook(Hook::PreFork(id));
        }
        if self.app.is_some() {
            crate::preload::freeze(self.py);
        }
    }

    fn worker_forked(&mut self, id: WorkerId, pid: Option<libc::pid_t>) {
        match pid {
            Some(pid) => {
                if let Some(w) = self.workers.get(&id) {
                    compat::worker_forked(self.py, w, u32::try_from(pid).unwrap_or(0), false);
                }
            }
            None => {
                self.workers.remove(&id);
            }
        }
    }

    fn forget_worker(&mut self, id: WorkerId) {
        self.workers.remove(&id);
    }

    fn work(&mut self, ctx: WorkerCtx<'_>) -> i32 {
        let py = self.py;
        crate::supervise::enter_worker(py, ctx.slot, ctx.cfg);
        let hook_worker = self.workers.remove(&ctx.id);
        if let Some(w) = &hook_worker {
            compat::worker_forked(py, w, std::process::id(), true);
            // A failing post_fork is a failed boot, as in gunicorn.
            if compat::call(py, "post_fork", vec![Arg::Server, Arg::Worker(None)])
                == Outcome::Raised
            {
                return EXIT_BOOT;
            }
            if compat::defined("worker_abort") {
                crate::supervise::arm_abort_hook();
            }
        }
        let code = serve_here(
            py,
            ctx.cfg,
            ctx.listeners,
            ctx.access_log,
            self.app.as_ref(),
        );
        if hook_worker.is_some() {
            log::info(format_args!("Worker exiting (pid: {})", std::process::id()));
            compat::call(py, "worker_exit", vec![Arg::Server, Arg::Worker(None)]);
        }
        code
    }

    fn reread_settings(&mut self) -> Result<Option<Config>, String> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let loaded = compat::load(self.py, self.argv, &env, true)?;
        compat::log_notes(&loaded);
        match loaded.action {
            bourbon_config::Action::Run(cfg) => Ok(Some(cfg)),
            _ => Ok(None),
        }
    }

    fn watch(&mut self, cfg: &Config) -> Watch {
        Watch {
            files: app_module_file(self.py, cfg).into_iter().collect(),
            source_extension: "py",
        }
    }

    fn private_exit(&self, code: i32) -> Option<PrivateExit> {
        if code == crate::appkind::EXIT_WORKER_ASGI {
            // An ASGI application: the worker wrote nothing (see `report_private`).
            return Some(PrivateExit {
                exit: EXIT_APP_LOAD,
                announce_wait: true,
            });
        }
        if code == crate::statics::EXIT_WORKER_SETTINGS {
            // The worker said which setting and how to fix it: a settings error stops the
            // server with 2 (under --reload, the fix reloads).
            return Some(PrivateExit {
                exit: 2,
                announce_wait: false,
            });
        }
        None
    }

    fn report_private(&mut self, code: i32, cfg: &Config) {
        // The line for an ASGI application, written here once for all the workers that
        // find it, says everything.
        if code == crate::appkind::EXIT_WORKER_ASGI {
            if let Some(spec) = &cfg.app {
                crate::appkind::report(spec);
            }
        }
    }

    fn unlocked(&mut self, wait: &mut (dyn FnMut() + Send)) {
        self.py.detach(wait);
    }
}

/// The application module's source file, found on `sys.path` the way the import system
/// would, without importing anything: the master must not hold the application's modules,
/// or the workers it forks would not import them afresh.
fn app_module_file(py: Python<'_>, cfg: &Config) -> Option<PathBuf> {
    let spec = cfg.app.as_ref()?;
    let sys_path: Vec<String> = py
        .import("sys")
        .and_then(|sys| sys.getattr("path"))
        .and_then(|p| p.extract())
        .ok()?;
    let rel: PathBuf = spec.module.split('.').collect();
    let cwd = std::env::current_dir().ok()?;
    for entry in sys_path {
        // "" is the current directory; relative entries are relative to it too.
        let base = cwd.join(entry);
        let module = base.join(&rel);
        let file = module.with_extension("py");
        if file.is_file() {
            return Some(file);
        }
        let init = module.join("__init__.py");
        if init.is_file() {
            return Some(init);
        }
    }
    None
}
