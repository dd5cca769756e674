//! Telling an ASGI application from a WSGI one when it is loaded.
//!
//! With `--interface auto` (the default) this decides which adapter serves the application;
//! with `--interface wsgi`, an ASGI application (Django's `asgi.py`, a Starlette or FastAPI app)
//! is refused, since it imports fine and is callable, so the server would otherwise answer
//! every request with a 500 (calling it returns a coroutine, not an iterable). It is recognised
//! the way uvicorn picks its interface: an `async def` function, an object whose `__call__` is
//! one (ASGI 3), or a class whose instances' `__call__` is one (ASGI 2, where the class is
//! called with the scope). A WSGI application never is: its call must return an iterable
//! synchronously, which a coroutine function cannot.
//!
//! This module owns the check and the one line that reports it. Where the line is written
//! depends on who loaded the application: the process itself (`--check-config`, `--preload`),
//! or, for a worker, the master, which a worker tells by exiting with [`EXIT_WORKER_ASGI`], so
//! that the line appears once however many workers found it.

use bourbon_config::AppSpec;
use pyo3::prelude::*;

/// A worker's exit code meaning "the application is an ASGI application" (the worker writes
/// nothing itself). Only the master sees it: it reports the line once and exits with
/// gunicorn's application-load code, 4.
pub(crate) const EXIT_WORKER_ASGI: i32 = 5;

/// Whether `app` is an ASGI application (see the module docs). An object that cannot be
/// inspected is taken for WSGI, as before this check existed.
pub(crate) fn is_asgi(py: Python<'_>, app: &Bound<'_, PyAny>) -> bool {
    let Ok(inspect) = py.import("inspect") else {
        return false;
    };
    let coroutine_function = |obj: &Bound<'_, PyAny>| {
        inspect
            .call_method1("iscoroutinefunction", (obj,))
            .and_then(|r| r.is_truthy())
            .unwrap_or(false)
    };
    // For an instance `__call__` is its bound method; for a class, the function its
    // instances would call (the metaclass's `__call__` is found only when the class defines
    // none, and is never a coroutine function).
    coroutine_function(app)
        || app
            .getattr("__call__")
            .is_ok_and(|call| coroutine_function(&call))
}

/// The interface an application speaks, as served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PEP 3333.
    Wsgi,
    /// ASGI 3.
    Asgi3,
    /// ASGI 2: the class is called with the scope, its instance with `receive` and `send`.
    Asgi2,
}

/// The interface of `app` as `auto` decides it (see the module docs).
pub(crate) fn detect(py: Python<'_>, app: &Bound<'_, PyAny>) -> Kind {
    if !is_asgi(py, app) {
        return Kind::Wsgi;
    }
    let is_class = py
        .import("inspect")
        .and_then(|i| i.call_method1("isclass", (app,)))
        .and_then(|r| r.is_truthy())
        .unwrap_or(false);
    if is_class {
        Kind::Asgi2
    } else {
        Kind::Asgi3
    }
}

/// The one line saying that `spec` is an ASGI application given as WSGI
/// (`--interface wsgi`), and what to run instead.
pub(crate) fn report(spec: &AppSpec) {
    bourbon_server::log::error(format_args!(
        "{spec} is an ASGI application, but --interface wsgi was given. Drop --interface \
         (or give --interface asgi) to serve it as ASGI, or point bourbon at the project's \
         WSGI entry point, {}",
        suggestion(spec)
    ));
}

/// What to run instead: Django projects have `wsgi.py` beside `asgi.py`.
fn suggestion(spec: &AppSpec) -> String {
    let (parent, last) = match spec.module.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, spec.module.as_str()),
    };
    if last == "asgi" {
        let module = parent.map_or_else(|| "wsgi".to_owned(), |p| format!("{p}.wsgi"));
        format!("e.g. `bourbon {module}:application` (Django's wsgi.py beside asgi.py)")
    } else {
        "e.g. `bourbon mysite.wsgi:application` (Django) or `bourbon app:app` (Flask)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{suggestion, AppSpec};

    fn spec(module: &str, attr: &str) -> AppSpec {
        AppSpec {
            module: module.to_owned(),
            attr: attr.to_owned(),
            factory: false,
        }
    }

    #[test]
    fn suggests_the_wsgi_module_beside_an_asgi_one() {
        assert!(suggestion(&spec("mysite.asgi", "application"))
            .contains("`bourbon mysite.wsgi:application`"));
        assert!(suggestion(&spec("a.b.asgi", "app")).contains("`bourbon a.b.wsgi:application`"));
        assert!(suggestion(&spec("asgi", "app")).contains("`bourbon wsgi:application`"));
        assert!(suggestion(&spec("main", "app")).contains("mysite.wsgi:application"));
    }
}
