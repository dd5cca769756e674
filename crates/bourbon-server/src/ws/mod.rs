//! WebSockets (RFC 6455) with permessage-deflate (RFC 7692), in the server's role.
//!
//! This module owns the protocol after (and including) the opening handshake; an adapter
//! decides whether to accept, builds the 101 with [`handshake::Handshake::response_headers`],
//! and, once the connection is handed over ([`crate::io::Switched`]), runs a
//! [`session::Session`] on it.
//!
//! The codec is sans-I/O, pure and tested without sockets, like [`crate::guard`]:
//! [`frame`] (headers, unmasking), [`message`] (reassembly and its rules, framing ours),
//! [`utf8`] (incremental validation), [`close`] (Close payloads and codes), [`handshake`]
//! (the upgrade request, `Sec-WebSocket-Accept`, subprotocols) and [`deflate`] (negotiation,
//! per-message compression). [`session`] is the only part that does I/O.
pub mod close;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod session;
pub mod utf8;
