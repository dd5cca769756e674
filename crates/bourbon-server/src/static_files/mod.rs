//! Static files served from Rust (issue #12), and the tooling that prepares a static tree.
//!
//! [`compress`] is `bourbon compress DIR`: it writes the `NAME.br` / `NAME.gz` variants that
//! the serving layer sends to clients accepting those codings.

pub mod compress;
