//! The ASGI 3 adapter (HTTP and lifespan; the ASGI spec's "HTTP & WebSocket" message format
//! 2.x), beside `wsgi/` on the same interface-neutral seam.
//!
//! One thread per worker runs everything: asyncio's standard event loop owns the thread and
//! calls its selector's `select()` whenever it would wait; our selector (`bourbon/_asgi.py`)
//! calls [`engine::asgi_wait`], which releases the GIL and runs the tokio runtime that owns the
//! sockets until the loop has something to do. Connection tasks never call Python: they queue
//! work ([`engine::Work`]) that the selector hands to Python in the same `select()`, before
//! asyncio runs its ready callbacks. So a request costs no thread switch, and the GIL is never
//! held while waiting on a socket.
//!
//! - [`engine`]: the runtime, the work queue and the selector's wait.
//! - [`cycle`]: one HTTP request/response cycle, shared by its connection task and its
//!   Python task, with `receive`/`send`.
//! - [`scope`]: the HTTP connection scope.
//! - [`websocket`]: one WebSocket connection (handshake, `receive`/`send`, the session).
//! - [`handler`]: the [`bourbon_server::serve::Handler`] that starts cycles.
//! - [`router`]: both interfaces from one listener (`--asgi`).
//! - [`run`]: the worker's runner: the runtime, signals, then the Python side
//!   (`bourbon._asgi.run`: the loop, lifespan, the stop).

pub(crate) mod cycle;
pub(crate) mod engine;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod router;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod websocket;
