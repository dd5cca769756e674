//! What every interface gets from the server between the connection driver and the
//! application: today, proxy trust and request ids ([`forwarded`]).

pub mod forwarded;
