//! gunicorn compatibility on the Python side: reading the settings (executing a gunicorn
//! Python config file when `-c` names one) and calling gunicorn's server hooks.
//!
//! It owns the load of the settings for start-up and SIGHUP ([`load`]): which config
//! file, if a Python one, is executed by `bourbon._gunicorn.read_config` (as gunicorn
//! does: a fresh `__config__` module), the module-level names that are gunicorn settings
//! are handed to `bourbon-config` as a source, and the functions named after server hooks
//! are kept here ([`Hooks`]). The master (through `boot.rs`) and the workers
//! (`startup.rs`) call [`call`] at gunicorn's moments; with no hook defined that is one relaxed atomic load.
//! The `server` and `worker` objects passed are small Python classes in
//! `bourbon/_gunicorn.py`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bourbon_config::{Config, Loaded, NoteLevel, PyValue, PythonConfig, SettingValue};
use bourbon_server::log;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::wsgi::call::log_exception;

/// Whether any hook is defined: the fast "no" every call point asks first.
static ANY: AtomicBool = AtomicBool::new(false);
/// The hooks of the settings in force.
static HOOKS: Mutex<Option<Arc<Hooks>>> = Mutex::new(None);

/// The server hooks a gunicorn config file defined, with the objects passed to them.
pub(crate) struct Hooks {
    funcs: HashMap<&'static str, Py<PyAny>>,
    /// `bourbon._gunicorn`.
    shim: Py<PyModule>,
    /// The `server` object (the master's), made on first use.
    server: Mutex<Option<Py<PyAny>>>,
    /// The `cfg` object of the settings in force.
    cfg: Py<PyAny>,
    /// This worker's `worker` object (in a worker process).
    worker: Mutex<Option<Py<PyAny>>>,
}

/// Read the settings: the command line, the environment and the config file, executing
/// it first if it is a gunicorn Python file; keep the hooks it defined. `logging` says
/// whether the error log is open (on SIGHUP) or not yet (at start, when tracebacks go to
/// stderr). The error is the one line to print; exit 2.
pub(crate) fn load(
    py: Python<'_>,
    argv: &[String],
    env: &HashMap<String, String>,
    logging: bool,
) -> Result<Loaded, String> {
    let location = bourbon_config::python_config_location(argv, env).map_err(|e| e.to_string())?;
    let mut namespace = None;
    let python = match location {
        Some(location) => {
            let (config, ns) = read_python(py, &location, logging)?;
            namespace = Some(ns);
            Some(config)
        }
        None => None,
    };
    let loaded =
        bourbon_config::load_with(argv, env, python.as_ref()).map_err(|e| e.to_string())?;
    let cfg = match &loaded.action {
        bourbon_config::Action::Run(c) | bourbon_config::Action::CheckConfig(c) => Some(c),
        _ => None,
    };
    let hooks = match (namespace, cfg) {
        (Some(ns), Some(cfg)) if !loaded.hooks.is_empty() => Some(Arc::new(
            Hooks::new(py, &ns, &loaded.hooks, cfg)
                .map_err(|e| format!("error: cannot prepare the server hooks: {e}"))?,
        )),
        _ => None,
    };
    ANY.store(hooks.is_some(), Ordering::Relaxed);
    if let Ok(mut slot) = HOOKS.lock() {
        *slot = hooks;
    }
    Ok(loaded)
}

/// Log the loader's notes (once the error log is open).
pub(crate) fn log_notes(loaded: &Loaded) {
    for n in &loaded.notes {
        match n.level {
            NoteLevel::Warning => log::warn(format_args!("{}", n.text)),
            NoteLevel::Debug => log::debug(format_args!("{}", n.text)),
        }
    }
}

/// Execute the config file and pick out the gunicorn settings it defined.
fn read_python<'py>(
    py: Python<'py>,
    location: &str,
    logging: bool,
) -> Result<(PythonConfig, Bound<'py, PyDict>), String> {
    let read = || -> PyResult<Bound<'py, PyDict>> {
        let ns = py
            .import("bourbon._gunicorn")?
            .call_method1("read_config", (location,))?;
        Ok(ns.cast_into::<PyDict>()?)
    };
    let ns = read().map_err(|e| {
        if logging {
            log_exception(py, &e, &format!("Failed to read config file: {location}"));
        } else {
            e.print(py);
        }
        format!("error: {location}: cannot read the config file: {e} (see the traceback above)")
    })?;
    let names: Vec<&str> = bourbon_config::gunicorn_setting_names().collect();
    let mut values = Vec::new();
    for (k, v) in ns.iter() {
        let Ok(name) = k.extract::<String>() else {
            continue;
        };
        if !names.contains(&name.as_str()) {
            continue;
        }
        let value = py_value(&v).map_err(|e| format!("error: {location}: {name}: {e}"))?;
        values.push((name, value));
    }
    Ok((
        PythonConfig {
            location: location.to_string(),
            values,
        },
        ns,
    ))
}

/// A Python value as the text a command line would have given.
fn py_value(v: &Bound<'_, PyAny>) -> PyResult<PyValue> {
    if v.is_none() {
        return Ok(PyValue::Unset);
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(PyValue::Text(v.extract::<bool>()?.to_string()));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items = v
            .try_iter()?
            .map(|i| i.and_then(|i| text(&i)))
            .collect::<PyResult<Vec<String>>>()?;
        return Ok(PyValue::List(items));
    }
    if v.is_callable() && !v.is_instance_of::<pyo3::types::PyString>() {
        return Ok(PyValue::Callable);
    }
    Ok(PyValue::Text(text(v)?))
}

fn text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(v.extract::<bool>()?.to_string());
    }
    v.str()?.extract()
}

impl Hooks {
    fn new(
        py: Python<'_>,
        ns: &Bound<'_, PyDict>,
        names: &[&'static str],
        cfg: &Config,
    ) -> PyResult<Self> {
        let mut funcs = HashMap::new();
        for name in names {
            if let Some(f) = ns.get_item(name)? {
                funcs.insert(*name, f.unbind());
            }
        }
        let shim = py.import("bourbon._gunicorn")?;
        let cfg = cfg_object(py, &shim, cfg)?;
        Ok(Hooks {
            funcs,
            shim: shim.unbind(),
            server: Mutex::new(None),
            cfg,
            worker: Mutex::new(None),
        })
    }
}

fn cfg_object(py: Python<'_>, shim: &Bound<'_, PyModule>, cfg: &Config) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    for (name, v) in bourbon_config::setting_values(cfg) {
        match v {
            // gunicorn's unset paths and names are None, not "".
            SettingValue::Text(t) if t.is_empty() => d.set_item(name, py.None())?,
            SettingValue::Text(t) => d.set_item(name, t)?,
            SettingValue::Int(i) => d.set_item(name, i)?,
            SettingValue::Float(f) => d.set_item(name, f)?,
            SettingValue::Bool(b) => d.set_item(name, b)?,
            SettingValue::List(l) => d.set_item(name, l)?,
            SettingValue::Unset => d.set_item(name, py.None())?,
        }
    }
    Ok(shim.getattr("Config")?.call1((d,))?.unbind())
}

/// The hooks in force, if any are defined.
pub(crate) fn hooks() -> Option<Arc<Hooks>> {
    if !ANY.load(Ordering::Relaxed) {
        return None;
    }
    HOOKS.lock().ok().and_then(|h| h.clone())
}

/// Whether `name` is defined.
pub(crate) fn defined(name: &str) -> bool {
    hooks().is_some_and(|h| h.funcs.contains_key(name))
}

/// What a hook call came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    /// Not defined (or no hooks at all).
    Absent,
    /// Called and returned.
    Ran,
    /// Called and raised; the traceback was logged.
    Raised,
}

/// An argument of a hook call.
pub(crate) enum Arg {
    /// The master's `server` object.
    Server,
    /// This process's `worker` object (in a worker), or the one given.
    Worker(Option<Py<PyAny>>),
    /// A number.
    Int(i64),
    /// `None`.
    None,
}

/// Call the hook `name` with `args`, if it is defined; a raise is logged with its
/// traceback.
pub(crate) fn call(py: Python<'_>, name: &str, args: Vec<Arg>) -> Outcome {
    let Some(h) = hooks() else {
        return Outcome::Absent;
    };
    let Some(f) = h.funcs.get(name) else {
        return Outcome::Absent;
    };
    let result = (|| -> PyResult<()> {
        let mut items: Vec<Py<PyAny>> = Vec::with_capacity(args.len());
        for a in args {
            items.push(match a {
                Arg::Server => h.server(py)?,
                Arg::Worker(Some(w)) => w,
                Arg::Worker(None) => h.this_worker(py),
                Arg::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
                Arg::None => py.None(),
            });
        }
        let tuple = PyTuple::new(py, items)?;
        f.bind(py).call1(tuple)?;
        Ok(())
    })();
    match result {
        Ok(()) => Outcome::Ran,
        Err(e) => {
            log_exception(py, &e, &format!("Exception in {name} hook"));
            Outcome::Raised
        }
    }
}

impl Hooks {
    fn server(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut slot = self
            .server
            .lock()
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("hooks lock poisoned"))?;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone_ref(py));
        }
        let s = self
            .shim
            .bind(py)
            .getattr("Server")?
            .call1((std::process::id(), self.cfg.clone_ref(py), "", 0))?
            .unbind();
        *slot = Some(s.clone_ref(py));
        Ok(s)
    }

    fn this_worker(&self, py: Python<'_>) -> Py<PyAny> {
        self.worker
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|w| w.clone_ref(py)))
            .unwrap_or_else(|| py.None())
    }
}

/// Update the `server` object's plain attributes (its pid after a daemon fork, the
/// number of workers, the process name).
pub(crate) fn server_state(py: Python<'_>, num_workers: usize, proc_name: &str) {
    let Some(h) = hooks() else { return };
    let Ok(server) = h.server(py) else { return };
    let s = server.bind(py);
    let _ = s.setattr("pid", std::process::id());
    let _ = s.setattr("num_workers", num_workers);
    let _ = s.setattr("proc_name", proc_name);
}

/// A new `worker` object (in the master, before the fork), when hooks are defined.
pub(crate) fn new_worker(py: Python<'_>, age: u64) -> Option<Py<PyAny>> {
    let h = hooks()?;
    h.shim
        .bind(py)
        .getattr("Worker")
        .and_then(|c| c.call1((age, std::process::id(), h.cfg.clone_ref(py))))
        .map(Bound::unbind)
        .ok()
}

/// Set `worker.pid`; in the worker itself, also remember the object as this process's.
pub(crate) fn worker_forked(py: Python<'_>, worker: &Py<PyAny>, pid: u32, here: bool) {
    let _ = worker.bind(py).setattr("pid", pid);
    if here {
        if let Some(h) = hooks() {
            if let Ok(mut slot) = h.worker.lock() {
                *slot = Some(worker.clone_ref(py));
            }
        }
    }
}

/// The application wrapped in `pre_request`/`post_request` when either is defined (in a
/// worker); otherwise the application itself, untouched.
pub(crate) fn wrap_app<'py>(
    py: Python<'py>,
    app: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(h) = hooks() else {
        return Ok(app);
    };
    let pre = h.funcs.get("pre_request");
    let post = h.funcs.get("post_request");
    if pre.is_none() && post.is_none() {
        return Ok(app);
    }
    let none = || py.None();
    h.shim.bind(py).getattr("wrap_app")?.call1((
        app,
        h.this_worker(py),
        pre.map_or_else(none, |f| f.clone_ref(py)),
        post.map_or_else(none, |f| f.clone_ref(py)),
    ))
}
