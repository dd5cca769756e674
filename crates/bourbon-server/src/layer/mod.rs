//! What the server answers or adds around every interface's handler, without Python.
//!
//! `health` answers the health-check paths itself.

pub mod health;
