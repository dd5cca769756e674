//! The master: forks the workers, replaces the ones that die, supervises them and turns
//! the operator's signals into actions on them.

mod run;

pub use run::run;
