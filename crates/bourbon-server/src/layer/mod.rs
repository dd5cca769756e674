//! What the server answers or adds around every interface's handler, without Python:
//! health checks answered before any handler ([`health`]), proxy trust and request ids
//! ([`forwarded`]).

pub mod forwarded;
pub mod health;
