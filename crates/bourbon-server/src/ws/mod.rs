//! WebSockets (RFC 6455) with permessage-deflate (RFC 7692), in the server's role.
//!
//! placeholder
pub mod close;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod utf8;
