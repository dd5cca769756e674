//! bourbon's Python-free serving core.
//!
//! It owns the listening sockets ([`listener`]), the request guard that validates and locates
//! the parts of HTTP/1.1 messages in one pass ([`guard`]), the HTTP/1.1 connection driver with
//! its deadlines (`h1`), the request and response types at the handler seam ([`request`],
//! [`body`]: bytes and file-region chunks), socket primitives, sendfile and the connection
//! hand-over after a 101 ([`io`]), coalesced response writes and the worker's runtime
//! ([`cork`]), the accept loops with graceful drain ([`serve`]), proxy trust, request ids and
//! health checks answered without any handler ([`layer`]), the PROXY protocol ([`transport`]),
//! static files ([`static_files`]), WebSockets after the handshake ([`ws`]), and the error and access logs ([`log`], [`access_log`]), the latter
//! written by the driver for every response, and the request metrics each worker shares with
//! the master and sends to StatsD ([`metrics`]). Applications plug in through
//! [`serve::Handler`]; the Python adapter lives in the `bourbon-py` crate, so everything here
//! builds and is tested without an interpreter.

pub mod access_log;
pub mod body;
pub mod cork;
pub mod guard;
mod h1;
pub mod io;
pub mod layer;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod request;
pub mod serve;
pub mod static_files;
pub mod transport;
pub mod wake;
pub mod ws;
