//! Static files served from Rust (issue #12).
//!
//! The pure, I/O-free pieces each live in a module of their own: URL path to safe relative
//! path ([`resolve`]), validators and preconditions ([`conditional`]), byte ranges
//! ([`range`]), media types ([`mime`]) and `Accept-Encoding` negotiation ([`encoding`]).

pub mod conditional;
pub mod encoding;
pub mod mime;
pub mod range;
pub mod resolve;
