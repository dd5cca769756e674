//! bourbon's Python-free serving core.
//!
//! It owns the listening sockets ([`listener`]), the request guard that validates HTTP/1.1
//! framing before hyper sees a byte ([`guard`]), the guarded connection I/O with its deadlines
//! ([`io`]), the accept-and-drive loop with graceful drain ([`serve`]) and the error log
//! ([`log`]). Applications plug in through [`serve::Handler`]; the Python adapter lives in the
//! `bourbon-py` crate, so everything here builds and is tested without an interpreter.

pub mod access_log;
pub mod guard;
pub mod io;
pub mod listener;
pub mod log;
pub mod serve;
