//! The worker's `loop.call_soon`, in Rust.
//!
//! asyncio schedules every step of every task and every future's callbacks through
//! `loop.call_soon`, which in CPython before 3.14 is Python code four calls deep
//! (`call_soon` → `_check_closed` → `_call_soon` → `Handle.__init__` → `get_debug`), then
//! runs each through the Python `Handle._run`. On an ASGI hello that was 6,100 of 53,000
//! instructions per request (callgrind, CPython 3.11). The worker's loop (`_Loop` in
//! `bourbon/_asgi.py`) puts a [`CallSoon`] in its instance `__dict__`, where both the C
//! `Task`/`Future` and Python code find it before the class's method, and it appends a
//! [`Handle`] to the loop's `_ready` queue exactly as the stdlib does. `_run_once` reads
//! only `_cancelled` and calls `_run()`, which both have.
//!
//! [`TaskSetAdd`] does the same for the other Python code every task runs through: its
//! registration in asyncio's set of tasks (a `WeakSet`), and the removal when it is freed.
//!
//! [`start_eagerly`] runs a new request task's first step at once, where the worker hands the
//! request to Python, instead of queueing it for the loop's next round: the step `call_soon`
//! is asked to schedule is caught instead of queued (CPython 3.12's `eager_start`, for every
//! version the worker runs on).
//!
//! What it leaves to the stdlib: debug mode (`_Loop` does not install it when the loop is
//! in debug mode, and removes it on `set_debug(True)`), the closed check (removed by
//! `_Loop.close()`, so a closed loop refuses as before), and timers
//! (`call_later`/`call_at`, whose `TimerHandle`s stay the stdlib's).
//! [`CallSoonThreadsafe`] is the same for `call_soon_threadsafe`, which other threads call.

use std::cell::RefCell;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// Whether this thread's next `call_soon` is a new task's first step to run at once.
enum Eager {
    Off,
    Armed,
    /// The step's callback, arguments and context: no `Handle` is made for it, since the
    /// task's constructor drops the one `call_soon` returns.
    Caught(Py<PyAny>, Py<PyTuple>, Py<PyAny>),
}

thread_local! {
    static EAGER: RefCell<Eager> = const { RefCell::new(Eager::Off) };
    /// A `SystemExit` or `KeyboardInterrupt` an eager step raised: the worker's selector
    /// raises it on its way back to the loop, which stops as it would have had the loop run
    /// the step itself.
    static ESCAPED: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Create a task with `make` (a C `asyncio.Task`, whose constructor ends by scheduling its
/// first step with the loop's `call_soon`) and run that first step now rather than on the
/// loop's next round, as CPython 3.12's `Task(eager_start=True)` does. The task is the same
/// object either way: the step enters it as the current task, so `asyncio.current_task()`
/// and everything built on it (anyio's cancel scopes, sniffio) see it, and a step that waits
/// leaves it scheduled as usual. A request whose application completes without waiting (a
/// hello, a cached page) is answered before the loop's next round, without a queued handle.
///
/// The caller must not be inside a task step (the worker calls it from its selector's wait,
/// where none runs). With the stdlib's own `call_soon` (debug mode, another loop) nothing is
/// caught and the task is scheduled as usual.
pub(crate) fn start_eagerly(
    py: Python<'_>,
    make: impl FnOnce() -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    EAGER.with(|e| *e.borrow_mut() = Eager::Armed);
    let task = make();
    let caught = EAGER.with(|e| std::mem::replace(&mut *e.borrow_mut(), Eager::Off));
    if let Eager::Caught(callback, args, context) = caught {
        let handle = Handle {
            call: Some((callback, args)),
            context,
            event_loop: py.None(),
            _cancelled: false,
        };
        if let Err(err) = handle.run(py, None) {
            ESCAPED.with(|e| *e.borrow_mut() = Some(err));
        }
    }
    task
}

/// The `SystemExit`/`KeyboardInterrupt` an eager step raised, if any (see [`start_eagerly`]).
pub(crate) fn take_escaped() -> Option<PyErr> {
    ESCAPED.with(|e| e.borrow_mut().take())
}

/// A callback scheduled with `call_soon` (asyncio's `Handle`, the parts the loop and its
/// callers use: `cancel()`, `cancelled()`, `get_context()`, `_run()`, `_cancelled`).
#[pyclass(module = "bourbon._bourbon", name = "Handle")]
pub(crate) struct Handle {
    /// The callback and its arguments, dropped on `cancel()` as the stdlib drops them.
    call: Option<(Py<PyAny>, Py<PyTuple>)>,
    context: Py<PyAny>,
    event_loop: Py<PyAny>,
    #[pyo3(get)]
    _cancelled: bool,
}

#[pymethods]
impl Handle {
    fn cancel(&mut self) {
        if !self._cancelled {
            self._cancelled = true;
            self.call = None;
        }
    }

    fn cancelled(&self) -> bool {
        self._cancelled
    }

    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// Run the callback in its context; an exception goes to the loop's exception handler,
    /// as `asyncio.Handle._run` does (SystemExit and KeyboardInterrupt propagate).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (call, context, event_loop) = {
            let me = slf.borrow();
            let Some((callback, args)) = &me.call else {
                return Ok(());
            };
            (
                Some((callback.clone_ref(py), args.clone_ref(py))),
                me.context.clone_ref(py),
                me.event_loop.clone_ref(py),
            )
        };
        // A copy, so that the callback may cancel this handle (a borrow would be held).
        let copy = Handle {
            call,
            context,
            event_loop,
            _cancelled: false,
        };
        copy.run(py, Some(slf))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = if self._cancelled {
            "cancelled"
        } else {
            "pending"
        };
        match &self.call {
            Some((callback, _)) => Ok(format!("<Handle {state} {}>", callback.bind(py).repr()?)),
            None => Ok(format!("<Handle {state}>")),
        }
    }
}

impl Handle {
    /// [`Handle::_run`]'s work. `slf`: the Python handle to report to the exception handler
    /// (an eager step has none: the loop of the task is asked, and the report carries no
    /// handle).
    fn run(&self, py: Python<'_>, slf: Option<&Bound<'_, Self>>) -> PyResult<()> {
        let Some((callback, args)) = &self.call else {
            return Ok(());
        };
        let callback = callback.bind(py);
        let Err(err) = run_in(py, &self.context, callback, args.bind(py)) else {
            return Ok(());
        };
        if err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py) {
            return Err(err);
        }
        let info = PyDict::new(py);
        info.set_item(
            "message",
            format!("Exception in callback {}", callback.repr()?),
        )?;
        info.set_item("exception", err.value(py))?;
        let event_loop = match slf {
            Some(slf) => {
                info.set_item("handle", slf)?;
                self.event_loop.bind(py).clone()
            }
            None => py
                .import("asyncio")?
                .call_method0(pyo3::intern!(py, "get_running_loop"))?,
        };
        event_loop.call_method1(pyo3::intern!(py, "call_exception_handler"), (info,))?;
        Ok(())
    }
}

/// A loop's ready queue, where both `call_soon`s append their [`Handle`].
struct Ready {
    event_loop: Py<PyAny>,
    /// The loop's `_ready` deque.
    ready: Py<PyAny>,
}

impl Ready {
    fn of(event_loop: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            ready: event_loop.getattr("_ready")?.unbind(),
            event_loop: event_loop.clone().unbind(),
        })
    }

    /// Append a handle for `callback(*args)` in `context` (the caller's when none is given,
    /// as asyncio's `Handle` does) and return it.
    fn append(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let handle = Py::new(
            py,
            Handle {
                call: Some((callback, args)),
                context,
                event_loop: self.event_loop.clone_ref(py),
                _cancelled: false,
            },
        )?;
        self.ready
            .bind(py)
            .call_method1(pyo3::intern!(py, "append"), (handle.clone_ref(py),))?;
        Ok(handle.into_any())
    }
}

/// The `context=` argument, or a copy of the caller's context.
fn given_or_copied(py: Python<'_>, context: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    match context {
        Some(context) if !context.is_none() => Ok(context.unbind()),
        _ => copy_context(py),
    }
}

/// The loop's `call_soon_threadsafe(callback, *args, context=None)`, which other threads
/// call (asgiref's executor hands back each `sync_to_async` call through it, about fifteen
/// times per Django request): the same [`Handle`] as `call_soon`, appended to `_ready` (a
/// `deque`, whose `append` is atomic under the GIL), then the loop is woken through its
/// `_write_to_self` unless a wake is already on its way (`_Loop._wake_pending`). A closed
/// loop refuses, as the stdlib's does. Never a new task's eager step: that is `call_soon`'s,
/// on the loop's own thread.
#[pyclass(module = "bourbon._bourbon", name = "CallSoonThreadsafe")]
pub(crate) struct CallSoonThreadsafe(Ready);

#[pymethods]
impl CallSoonThreadsafe {
    #[new]
    fn new(event_loop: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ready::of(event_loop).map(Self)
    }

    #[pyo3(signature = (callback, *args, context=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let event_loop = self.0.event_loop.bind(py);
        if event_loop
            .getattr(pyo3::intern!(py, "_closed"))?
            .is_truthy()?
        {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "Event loop is closed",
            ));
        }
        let context = given_or_copied(py, context)?;
        let handle = self
            .0
            .append(py, callback.unbind(), args.unbind(), context)?;
        if !event_loop
            .getattr(pyo3::intern!(py, "_wake_pending"))?
            .is_truthy()?
        {
            event_loop.call_method0(pyo3::intern!(py, "_write_to_self"))?;
        }
        Ok(handle)
    }
}

/// The loop's `call_soon(callback, *args, context=None)`.
#[pyclass(module = "bourbon._bourbon", name = "CallSoon")]
pub(crate) struct CallSoon(Ready);

#[pymethods]
impl CallSoon {
    #[new]
    fn new(event_loop: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ready::of(event_loop).map(Self)
    }

    #[pyo3(signature = (callback, *args, context=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let context = given_or_copied(py, context)?;
        let (callback, args, context) = match EAGER.with(|e| {
            let mut e = e.borrow_mut();
            if matches!(*e, Eager::Armed) {
                *e = Eager::Caught(callback.unbind(), args.unbind(), context);
                None
            } else {
                Some((callback, args, context))
            }
        }) {
            Some(call) => call,
            // The task's constructor drops what `call_soon` returns.
            None => return Ok(py.None()),
        };
        self.0.append(py, callback.unbind(), args.unbind(), context)
    }
}

/// `contextvars.copy_context()`.
#[allow(unsafe_code)]
fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: the GIL is held (`py`); PyContext_CopyCurrent returns a new reference or NULL
    // with an exception set, which `from_owned_ptr_or_err` turns into a PyErr.
    unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent()) }
        .map(Bound::unbind)
}

/// `context.run(callback, *args)`, without the bound method and the argument tuple.
#[allow(unsafe_code)]
fn run_in(
    py: Python<'_>,
    context: &Py<PyAny>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    // SAFETY: the GIL is held; `context` is a live object we hold a reference to for the
    // whole call. PyContext_Enter type-checks it (a TypeError for a non-Context, which
    // `call_soon` cannot store) and fails, with an exception set, if it is already entered.
    if unsafe { pyo3::ffi::PyContext_Enter(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let result = callback.call1(args.clone());
    // SAFETY: the same context, entered just above by this thread and not yet exited.
    if unsafe { pyo3::ffi::PyContext_Exit(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    result.map(drop)
}

/// `WeakSet.add` for the set asyncio's C `Task` registers every new task in (`_all_tasks` in
/// CPython 3.11, `_scheduled_tasks` in 3.12 and 3.13), set on that set's instance `__dict__`,
/// where the C code's method lookup finds it before the class's. It stores what the stdlib's
/// `add` stores (a weak reference in the set's `data`, with a callback that removes it when
/// the task is freed, deferred while the set is iterated), without the two Python calls per
/// task (the `add`, then the callback): about 4,400 instructions of an ASGI hello's 50,700
/// on 3.11 (callgrind). `asyncio.all_tasks()` reads the same `data`.
///
/// The set is the process's, not the worker loop's: any thread creates and frees tasks
/// through it (Django's `async_to_sync` runs a loop of its own in a WSGI thread in the
/// combined mode), so these types are not `unsendable`; they hold only Python references,
/// used under the GIL as the stdlib's own `add` is.
#[pyclass(module = "bourbon._bourbon", name = "TaskSetAdd")]
pub(crate) struct TaskSetAdd {
    set: Py<PyAny>,
    data: Py<pyo3::types::PySet>,
    pending: Py<pyo3::types::PyList>,
    remove: Py<TaskSetRemove>,
}

#[pymethods]
impl TaskSetAdd {
    #[new]
    fn new(py: Python<'_>, set: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = set.getattr("data")?.cast_into::<pyo3::types::PySet>()?;
        let pending = set
            .getattr("_pending_removals")?
            .cast_into::<pyo3::types::PyList>()?;
        let iterating = set
            .getattr("_iterating")?
            .cast_into::<pyo3::types::PySet>()?;
        let remove = Py::new(
            py,
            TaskSetRemove {
                data: data.clone().unbind(),
                pending: pending.clone().unbind(),
                iterating: iterating.unbind(),
            },
        )?;
        Ok(Self {
            set: set.clone().unbind(),
            data: data.unbind(),
            pending: pending.unbind(),
            remove,
        })
    }

    fn __call__(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.pending.bind(py).is_empty() {
            self.set
                .bind(py)
                .call_method0(pyo3::intern!(py, "_commit_removals"))?;
        }
        let remove = self.remove.bind(py);
        let weak = pyo3::types::PyWeakrefReference::new_with(item, remove)?;
        self.data.bind(py).add(weak)
    }
}

/// The weak references' callback: the task was freed.
#[pyclass(module = "bourbon._bourbon", name = "TaskSetRemove")]
pub(crate) struct TaskSetRemove {
    data: Py<pyo3::types::PySet>,
    pending: Py<pyo3::types::PyList>,
    iterating: Py<pyo3::types::PySet>,
}

#[pymethods]
impl TaskSetRemove {
    fn __call__(&self, py: Python<'_>, weak: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.iterating.bind(py).is_empty() {
            self.data.bind(py).discard(weak).map(drop)
        } else {
            self.pending.bind(py).append(weak)
        }
    }
}
