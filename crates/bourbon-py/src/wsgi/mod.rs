//! The WSGI adapter (PEP 3333): the connection-side [`handler`] and response [`body`], the request/response
//! [`message`]s between threads, and the Python-side pieces ([`environ`], [`input`],
//! [`start_response`], [`streams`], [`call`]).

pub(crate) mod body;
pub(crate) mod call;
pub(crate) mod environ;
pub(crate) mod handler;
pub(crate) mod input;
pub(crate) mod lent;
pub(crate) mod message;
pub(crate) mod spool;
pub(crate) mod start_response;
pub(crate) mod streams;
