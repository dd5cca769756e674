//! The ASGI worker's runner: builds the runtime and the serving loop (not yet started), makes
//! them the selector's ([`Engine::install`]), then hands the thread to Python
//! (`bourbon._asgi.run`), which runs the event loop: lifespan startup, serving (started by
//! `_asgi_serve`), the stop, lifespan shutdown. Stop signals arrive through the runtime as in
//! the WSGI worker and end in the loop's `done` future.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bourbon_config::{Config, EventLoop, Lifespan};
use bourbon_server::access_log::AccessLog;
use bourbon_server::listener::Listener;
use bourbon_server::log;
use bourbon_server::serve::serve;
use bourbon_server::static_files::{StaticConfig, StaticFiles};
use pyo3::prelude::*;
use tokio::sync::watch;

use super::engine::{self, Engine, Work};
use super::handler::AsgiHandler;
use super::router::Router;
use super::scope::ScopeCtx;
use crate::startup::{Settings, Stop, StopSignals, WsgiSide, EXIT_BOOT};

/// The applications a worker with an event loop serves.
pub(crate) struct Apps<'py> {
    /// The ASGI application.
    pub(crate) asgi: Bound<'py, PyAny>,
    /// It is an ASGI 2 application.
    pub(crate) asgi2: bool,
    /// With `--asgi`: the WSGI application beside it.
    pub(crate) wsgi: Option<WsgiSide>,
}

/// Serve `apps` on `listeners` until stopped; the worker's exit code.
pub(crate) fn run(
    py: Python<'_>,
    cfg: &Config,
    listeners: &[Listener],
    access_log: Option<Arc<AccessLog>>,
    apps: Apps<'_>,
    statics: Option<StaticConfig>,
) -> i32 {
    let Apps {
        asgi: app,
        asgi2,
        wsgi,
    } = apps;
    // No held writes: asyncio keeps the runtime in short rounds, and a response is written
    // in the round after the application sent it anyway.
    let before = epoll_fds();
    let runtime = match bourbon_server::cork::runtime(Duration::ZERO) {
        Ok(rt) => rt,
        Err(e) => {
            log::error(format_args!("cannot start the runtime: {e}"));
            return EXIT_BOOT;
        }
    };
    // The runtime's epoll: the one that appeared with it (tokio does not name it).
    let runtime_fd = runtime_epoll(&before);
    let mut signals = match StopSignals::install(&runtime, access_log.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::error(format_args!("cannot install signal handlers: {e}"));
            return EXIT_BOOT;
        }
    };
    // The serving loop owns copies of the listeners (it outlives this frame's borrow, in
    // the runtime); closing them at the stop closes these copies, and the originals are
    // closed here when the worker ends.
    let owned: Vec<Listener> = match listeners.iter().map(Listener::try_clone).collect() {
        Ok(v) => v,
        Err(e) => {
            log::error(format_args!("cannot share the listening sockets: {e}"));
            return EXIT_BOOT;
        }
    };
    let mut settings = Settings::from(cfg);
    // Kept to write what is still buffered once everything (WebSocket sessions included)
    // has ended, however the worker stopped.
    let final_log = access_log.clone();
    settings.serve.access_log = access_log;
    crate::supervise::arm_task_dump();
    bourbon_server::metrics::set_interface(bourbon_server::metrics::Interface::Asgi);
    let local = tokio::task::LocalSet::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    local.spawn_local(crate::supervise::heartbeat(settings.heartbeat));
    local.spawn_local(async move {
        let first = signals.next().await;
        let _ = stop_tx.send(true);
        match first {
            Stop::Graceful => {
                log::info(format_args!(
                    "Handling signal: term; finishing requests in flight"
                ));
                // INT or QUIT then stops at once; another TERM (the master forwards the
                // one a process-group kill also sent us) changes nothing.
                while signals.next().await == Stop::Graceful {}
            }
            Stop::Fast => {
                log::info(format_args!("Handling signal: int/quit; stopping now"));
                if crate::compat::defined("worker_int") {
                    Python::attach(|py| {
                        crate::compat::call(
                            py,
                            "worker_int",
                            vec![crate::compat::Arg::Worker(None)],
                        )
                    });
                }
            }
        }
        engine::push(Work::Stopped { fast: true });
        // Keep the stop flag's sender until the worker ends.
        std::future::pending::<()>().await;
        drop(stop_tx);
    });
    let handler = AsgiHandler {
        post_buffering: cfg.post_buffering,
        ws: Rc::new(super::websocket::WsSettings::from(cfg)),
    };
    let serve_cfg = settings.serve;
    let busy = wsgi.as_ref().map(|w| w.busy.clone());
    let serving = match wsgi {
        Some(side) => serving(
            &runtime,
            owned,
            Router {
                wsgi: side.handler,
                asgi: handler,
                prefixes: cfg.asgi_path.clone(),
            },
            statics,
            serve_cfg,
            stop_rx,
        ),
        None => serving(&runtime, owned, handler, statics, serve_cfg, stop_rx),
    };
    let Some(serving) = serving else {
        return EXIT_BOOT;
    };
    Engine::install(
        runtime,
        local,
        serving,
        ScopeCtx {
            root_path: cfg.root_path.clone(),
        },
        runtime_fd,
    );
    let lifespan = match cfg.lifespan {
        Lifespan::Auto => "auto",
        Lifespan::On => "on",
        Lifespan::Off => "off",
    };
    let event_loop = match cfg.event_loop {
        EventLoop::Uvloop => "uvloop",
        EventLoop::Auto | EventLoop::Asyncio => "asyncio",
    };
    let outcome = py.import("bourbon._asgi").and_then(|m| {
        m.call_method1(
            "run",
            (
                app,
                lifespan,
                cfg.graceful_timeout.as_secs_f64(),
                asgi2,
                event_loop,
                cfg.django_sync_pool,
            ),
        )?
        .extract::<i32>()
    });
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            crate::wsgi::call::log_exception(py, &e, "The ASGI worker failed");
            1
        }
    };
    // The runtime and its tasks go before the interpreter does; with them the WSGI queue's
    // senders, so its Python threads see the queue close and return.
    if let Some(engine) = Engine::uninstall() {
        let moved = SameThreadDrop(engine);
        py.detach(move || moved.drop_here());
    }
    if let Some(busy) = busy {
        py.detach(|| busy.join_threads());
    }
    if let Some(log) = final_log {
        log.flush();
    }
    code
}

/// The engine, dropped without the GIL (the WSGI threads may need it to finish): `detach`
/// runs the closure at once on this thread.
struct SameThreadDrop(Rc<Engine>);

// SAFETY: the value only moves into a closure that `Python::detach` runs synchronously on
// this same thread, where it is dropped.
#[allow(unsafe_code)]
unsafe impl Send for SameThreadDrop {}

impl SameThreadDrop {
    fn drop_here(self) {
        drop(self.0);
    }
}

/// The serving loop for `handler` (with static files in front when configured), not yet
/// started; `None` (logged) when static files cannot be served.
fn serving<H>(
    runtime: &tokio::runtime::Runtime,
    listeners: Vec<Listener>,
    handler: H,
    statics: Option<StaticConfig>,
    cfg: bourbon_server::serve::ServeConfig,
    stop: watch::Receiver<bool>,
) -> Option<Pin<Box<dyn Future<Output = ()>>>>
where
    H: bourbon_server::serve::Handler,
    H::Body: Unpin,
{
    Some(match statics {
        Some(st) => {
            let layer = {
                let _ctx = runtime.enter();
                StaticFiles::new(handler, &st)
            };
            match layer {
                Ok(layer) => Box::pin(async move {
                    report(serve(&listeners, Rc::new(layer), cfg, stop).await);
                }),
                Err(e) => {
                    log::error(format_args!("cannot serve static files: {e}"));
                    return None;
                }
            }
        }
        None => Box::pin(async move {
            report(serve(&listeners, Rc::new(handler), cfg, stop).await);
        }),
    })
}

/// The runtime's epoll: what appeared with it. tokio keeps two descriptors of the same epoll
/// (its registry is cloned); they are told to be the same by their registrations
/// (`/proc/self/fdinfo`). `None` when that is not what is seen.
fn runtime_epoll(
    before: &std::collections::HashSet<std::os::fd::RawFd>,
) -> Option<std::os::fd::RawFd> {
    let after = epoll_fds();
    let mut new: Vec<_> = after.difference(before).copied().collect();
    new.sort_unstable();
    let watched = |fd: std::os::fd::RawFd| -> Option<Vec<String>> {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        Some(
            info.lines()
                .filter(|l| l.starts_with("tfd:"))
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                .collect(),
        )
    };
    let first = *new.first()?;
    let same = watched(first)?;
    new.iter()
        .all(|&fd| watched(fd).as_ref() == Some(&same))
        .then_some(first)
}

/// This process's epoll descriptors (from `/proc/self/fd`).
fn epoll_fds() -> std::collections::HashSet<std::os::fd::RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Default::default();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:[eventpoll]")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn report(res: std::io::Result<()>) {
    if let Err(e) = res {
        log::error(format_args!("server error: {e}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtimes_epoll_is_found() {
        let before = super::epoll_fds();
        let rt = bourbon_server::cork::runtime(std::time::Duration::ZERO);
        assert!(rt.is_ok());
        let found = super::runtime_epoll(&before);
        assert!(found.is_some(), "{:?}", super::epoll_fds());
        assert!(!before.contains(&found.unwrap_or(-1)));
    }
}
