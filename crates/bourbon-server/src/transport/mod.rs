//! What happens on a connection before HTTP: today, HAProxy's PROXY protocol
//! ([`proxy_protocol`]).

pub mod proxy_protocol;
